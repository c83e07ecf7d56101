//! `cargo xtask package`: the Azure Functions deployment zip.

/// Options of `package`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("package is being written (issue 8)")
}
