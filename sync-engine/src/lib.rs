//! The xledger-sync engine: keeps a lake of Parquet files in step with Xledger, each row exactly once.
//!
//! An [`Engine`] holds an Xledger client, a [`Lake`](lake_writer::Lake) and a
//! [`StateStore`](sync_state::StateStore); [`Engine::run_pass`] syncs the entities a
//! [`PassRequest`] names and returns a [`PassReport`] (per-entity mode, counts, outcome, and the
//! exit status it maps to). Per entity a pass:
//!
//! - **loads in full** when needed (first pass, `FullLoad::Forced`, a full-only entity, a gap in the
//!   change feed): the feed's head cursor first, then every page of items straight into part files
//!   with a checkpoint after each part, the manifest last; an interrupted load resumes with the
//!   same run stamp; once complete, the changes since the head are applied in the same pass;
//! - **follows the change feed** otherwise: one request probes every entity's feed, each range is
//!   collapsed to one net effect per dbId, the current rows are fetched by `dbId_in`, one
//!   `sync_changes` file is written, then the cursor moves.
//!
//! Invariants (the lake contract in `docs/lake-contract.md`):
//! - **state after data**: every file is committed through one primitive — record it as `pending`
//!   in state, commit it, save the state it leads to — so a crash anywhere neither loses nor
//!   repeats a range (at start-up a visible pending file is adopted, an invisible one redone);
//! - a full load is complete only when its manifest exists;
//! - stops (deadline, signal, credits, a lost lease) happen at page boundaries; unfinished files
//!   are aborted, never made visible;
//! - one process per entity (a lease, renewed while the pass runs).
//!
//! The engine converts no data itself (a page's nodes go to the lake writer as text) and never
//! knows which state backend or lake location it has. Time comes from an injected
//! [`Clock`](sync_state::Clock); progress goes to an [`Observer`].
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sync_engine::{Engine, PassRequest, Settings, StopSignal};
//! use xledger_client::{ApiKey, ClientConfig, XledgerClient};
//!
//! let client = XledgerClient::new(ClientConfig::new(
//!     "https://www.xledger.net/graphql".parse()?,
//!     ApiKey::new(std::env::var("XLEDGER_API_KEY")?),
//! ))?;
//! let lake = lake_writer::Lake::open("./lake", lake_writer::LakeOptions::default()).await?;
//! let state = sync_state::open_store("./state.json", sync_state::StoreOptions::default()).await?;
//! let engine = Engine::new(client, lake, state, Settings::default());
//!
//! let report = engine.run_pass(PassRequest::sync(xledger_model::entities().iter().collect()), StopSignal::new(None)).await;
//! print!("{}", report.render_table());
//! std::process::exit(i32::from(report.status().exit_code()));
//! # }
//! ```

pub mod collapse;
mod entity;
mod error;
mod full;
mod incremental;
mod observer;
mod pass;
mod report;
mod settings;
mod stop;
mod tables;

pub use error::EngineError;
pub use full::reason_text;
pub use observer::{Observer, Quiet};
pub use pass::Engine;
pub use report::{Counts, EntityOutcome, EntityReport, Mode, PassReport, PassStatus, TableOutcome, human_bytes};
pub use settings::{FullLoad, PassRequest, Settings};
pub use stop::{StopReason, StopSignal};
pub use tables::rebuild_tables;

/// Names the old app may have used for an entity's App Configuration keys: the entity's own, and
/// the singular of its feed (`timesheet_deltas` → `timesheet`), for
/// [`StoreOptions::legacy_aliases`](sync_state::StoreOptions::legacy_aliases).
pub fn legacy_key_aliases() -> std::collections::BTreeMap<String, Vec<String>> {
    xledger_model::entities()
        .iter()
        .filter_map(|e| {
            let singular = e.change_feed?.field.trim_end_matches("_deltas");
            (singular != e.name).then(|| (e.name.to_string(), vec![singular.to_string()]))
        })
        .collect()
}
