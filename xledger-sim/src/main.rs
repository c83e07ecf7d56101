//! `xledger-sim`: serves a seeded Xledger stand-in until Ctrl-C.
//!
//! ```text
//! xledger-sim --port 8080 --rows 10000 --seed 1 --api-key my-key --entity-rows timesheets=1000000
//! xledger-sim --port 8080 --data ledger   # repeating codes and names, like a real ledger
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use clap::Parser;
use xledger_sim::{DataProfile, SimConfig, Simulator};

#[derive(Debug, Parser)]
#[command(name = "xledger-sim", version, about = "A seeded Xledger GraphQL stand-in for tests, benchmarks and demos")]
struct Args {
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Initial rows per entity.
    #[arg(long, default_value_t = 1_000)]
    rows: usize,
    /// Per-entity row counts, e.g. `--entity-rows timesheets=1000000` (repeatable).
    #[arg(long = "entity-rows", value_parser = parse_entity_rows)]
    entity_rows: Vec<(String, usize)>,
    /// Seed of all generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The key clients must send as `Authorization: token <key>`.
    #[arg(long, env = "XLEDGER_SIM_API_KEY", hide_env_values = true, default_value = xledger_sim::DEFAULT_API_KEY)]
    api_key: String,
    /// How long change-feed entries are kept, e.g. `3d`, `12h`.
    #[arg(long, default_value = "3d", value_parser = humantime::parse_duration)]
    retention: std::time::Duration,
    /// Records per query at most.
    #[arg(long, default_value_t = xledger_sim::DEFAULT_PAGE_CAP)]
    page_cap: usize,
    /// Never gzip responses, even when asked.
    #[arg(long)]
    no_gzip: bool,
    /// Generated values: `stress` (near-unique, adversarial text everywhere: what tests use) or
    /// `ledger` (nested objects are repeating referenced records, like a real ledger's codes).
    #[arg(long, default_value = "stress")]
    data: DataProfile,
}

fn parse_entity_rows(text: &str) -> Result<(String, usize), String> {
    let (entity, rows) = text.split_once('=').ok_or_else(|| format!("expected ENTITY=ROWS, got {text:?}"))?;
    let rows = rows.parse().map_err(|e| format!("{rows:?} is not a row count: {e}"))?;
    Ok((entity.to_owned(), rows))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the endpoint line, for scripts and tests to read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let config = SimConfig {
        seed: args.seed,
        rows: args.rows,
        rows_per_entity: args.entity_rows.into_iter().collect::<BTreeMap<_, _>>(),
        api_key: args.api_key,
        page_cap: args.page_cap,
        retention: args.retention,
        gzip: !args.no_gzip,
        data: args.data,
        ..SimConfig::default()
    };
    let addr = SocketAddr::new(args.host, args.port);
    let sim = Simulator::start_on(addr, config).await.context("starting the simulator")?;
    println!("xledger-sim serving {} (admin API: {})", sim.endpoint(), sim.admin_url());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
