//! `cargo xtask fetch-schema`: introspect the live API and rewrite `schema/xledger.graphql`.

/// Options of `fetch-schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GraphQL endpoint to introspect.
    #[arg(long, default_value = "https://www.xledger.net/graphql")]
    pub endpoint: String,
}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("fetch-schema is being written (issue 2)")
}
