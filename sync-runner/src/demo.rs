//! `xledger-sync demo`: the whole product on the built-in simulator, with no key and no Azure.
//!
//! Starts xledger-sim in-process, runs a full load into the lake (`./lake` unless `--lake`),
//! applies a batch of changes in the simulator, runs an incremental pass, and prints both
//! summaries and a DuckDB one-liner to look at the data. The demo keeps its own state file
//! (`.xledger-sync/demo-state.json` beside the lake) so it never touches a real sync's state.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use xledger_client::ApiKey;
use xledger_model::entities;
use xledger_sim::{SimConfig, Simulator};

use crate::app;
use crate::cli::{DemoArgs, GlobalArgs};
use crate::progress::Progress;
use sync_engine::{PassRequest, PassStatus, StopSignal};

/// Runs the demo and returns what to print.
pub async fn run(global: &GlobalArgs, args: &DemoArgs, progress: Progress) -> anyhow::Result<String> {
    let sim = Simulator::start(SimConfig { seed: args.seed, rows: args.rows, ..SimConfig::default() })
        .await
        .context("starting the built-in Xledger simulator")?;
    let mut out = String::new();
    let _ = writeln!(out, "Xledger simulator: {} ({} rows per entity, seed {})", sim.endpoint(), args.rows, args.seed);

    let demo_state = demo_state_path(&global.lake);
    let mut settings = GlobalArgs { state: demo_state, ..global.clone() };
    settings.endpoint = sim.endpoint();
    // A fresh demo each time: forget the previous demo's cursors (its files stay; newer runs win).
    let all: Vec<_> = entities().iter().collect();
    app::reset_state(&settings, &all).await?;

    let key = ApiKey::new(sim.api_key().to_string());
    let engine = app::engine(&settings, &settings.endpoint, key, None, progress).await?;
    let _ = writeln!(out, "lake:  {}\nstate: {}\n", engine.lake().describe(), engine.state_store().describe());

    let full = engine.run_pass(PassRequest::sync(all.clone()), StopSignal::new(None)).await;
    let _ = writeln!(out, "1. Full load\n{}", full.render_table());
    if full.status() != PassStatus::Completed {
        anyhow::bail!("the demo's full load did not complete:\n{}", full.render_table());
    }

    let changes = sim.random_changes(args.changes, args.seed.wrapping_add(1));
    let _ = writeln!(
        out,
        "2. Changes applied in the simulator: {} added, {} updated, {} deleted\n",
        changes.added, changes.updated, changes.deleted
    );

    let incremental = engine.run_pass(PassRequest::sync(all), StopSignal::new(None)).await;
    let _ = writeln!(out, "3. Incremental pass\n{}", incremental.render_table());
    if incremental.status() != PassStatus::Completed {
        anyhow::bail!("the demo's incremental pass did not complete:\n{}", incremental.render_table());
    }

    let (rows, hours) = timesheet_totals(&sim)?;
    match engine.tables() {
        Some(tables) => {
            let _ = writeln!(
                out,
                "4. The current state, one row per timesheet, straight from its Delta table (DuckDB with its delta extension):\n  {}\n  expected (the simulator's truth): {rows} timesheets, {hours} hours",
                current_state_query(&tables.describe())
            );
        }
        None => {
            let _ = writeln!(
                out,
                "4. The current-state tables are off (--tables none): rebuild the state from the raw files as docs/lake-contract.md says.\n  expected (the simulator's truth): {rows} timesheets, {hours} hours"
            );
        }
    }
    sim.shutdown().await;
    Ok(out)
}

/// The DuckDB command that reads the timesheets table under `tables` (its description: a path or
/// URL, perhaps followed by ` (endpoint …)`).
pub fn current_state_query(tables: &str) -> String {
    let location = tables.split_once(" (").map_or(tables, |(location, _)| location);
    let table = format!("{}/timesheets", location.trim_end_matches('/')).replace('\'', "''");
    format!(
        "duckdb -c \"INSTALL delta; LOAD delta; SELECT count(*) AS timesheets, sum(workingHours) AS hours FROM delta_scan('{table}')\""
    )
}

/// The simulator's timesheets: how many, and their hours summed exactly (at the column's scale).
fn timesheet_totals(sim: &xledger_sim::SimHandle) -> anyhow::Result<(usize, String)> {
    let truth = sim.truth("timesheets").context("reading the simulator's timesheets")?;
    let timesheets = xledger_model::entity("timesheets").context("the registry has timesheets")?;
    let Some(xledger_model::ColumnKind::Decimal { precision, scale }) =
        timesheets.column("workingHours").map(|c| c.kind)
    else {
        anyhow::bail!("timesheets.workingHours is not a decimal column");
    };
    let mut total: i128 = 0;
    for node in &truth {
        if let Some(text) = node["workingHours"].as_str() {
            total += xledger_model::decimal::parse_decimal(text, precision, scale)
                .map_err(|e| anyhow::anyhow!("the simulator's workingHours {text:?}: {e}"))?;
        }
    }
    Ok((truth.len(), xledger_model::decimal::format_decimal(total, scale)))
}

fn demo_state_path(lake: &str) -> String {
    let base = Path::new(lake);
    let parent = if lake.contains("://") { Path::new(".") } else { base.parent().unwrap_or(Path::new(".")) };
    parent.join(".xledger-sync").join("demo-state.json").display().to_string()
}
