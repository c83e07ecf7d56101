//! `cargo xtask bench`: throughput, memory and API-cost benchmarks (issue 9).

/// Options of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the benchmarks.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("the benchmark suite is being written (issue 9)")
}
