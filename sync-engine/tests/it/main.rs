//! The engine end to end against xledger-sim: every test ends with the lake, rebuilt by the
//! contract's rule, equal to the simulator's truth.

mod engine;
mod legacy;
mod tables;

use std::time::Duration;

use lake_writer::WriterOptions;
use sync_engine::{Engine, PassReport, PassRequest, Settings, StopSignal};
use test_support::env::SimEnv;

/// Small pages and parts, so runs have many pages and checkpoints.
pub fn test_settings() -> Settings {
    Settings {
        page_size: 100,
        db_id_chunk_size: 50,
        writer: WriterOptions { part_rows: 250, ..WriterOptions::default() },
        lease_wait: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(2),
        ..Settings::default()
    }
}

/// An engine on the simulator, the temporary lake and the state file, with `settings`.
pub async fn engine_with(env: &SimEnv, settings: Settings) -> Engine {
    Engine::new(env.client(), env.lake().await, env.state().await, settings)
}

pub async fn engine(env: &SimEnv) -> Engine {
    engine_with(env, test_settings()).await
}

/// One pass over every entity the simulator serves.
pub async fn pass(env: &SimEnv, engine: &Engine) -> PassReport {
    engine.run_pass(PassRequest::sync(env.sim.entities()), StopSignal::new(None)).await
}
