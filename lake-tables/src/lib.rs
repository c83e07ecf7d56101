//! lake-tables: committed raw lake files → current-state Delta tables, exactly once.
//!
//! For each entity, `<tables>/<entity>/` is a Delta table equal to the lake contract's rebuild of the
//! raw files (newest complete full load, then later `sync_changes` files in `_synced_at` order;
//! ADDED/UPDATED upsert by dbId, DELETED removes). Columns are the entity's raw columns in order and
//! type, then `_synced_at`; no `mutationType`; one row per dbId. The raw files stay the record; a
//! table is a view that [`Tables::catch_up`] brings up to date and [`Tables::rebuild`] rebuilds from
//! them alone, with no API request.
//!
//! - **Exactly once**: every commit that applies a raw file carries the protocol's `txn` action
//!   (app id [`app_id`]`(entity)`, version = that file's `_synced_at` in µs, which strictly increases
//!   across an entity's runs) and names the file in `commitInfo.operationParameters`
//!   ([`APPLIED_PARAMETER`]). A full load replaces the contents in one commit; each change file is
//!   one commit. After a crash anywhere the next `catch_up` applies exactly the files whose
//!   `_synced_at` is beyond the txn version.
//! - **Bounded copy-on-write**: data files are sorted and clustered by dbId with min/max statistics;
//!   a change file rewrites only the files whose dbId range holds a changed row, plus one new file
//!   for rows past the end. Small files are compacted, the log is checkpointed, removed files are
//!   vacuumed after a retention (7 days by default).
//! - **Compatibility**: protocol reader 1 / writer 2 (no deletion vectors, column mapping or
//!   `timestampNtz`), decimals as `Decimal128`, timestamps UTC-aware.
//! - **Run history**: [`Tables::append_runs`] appends to `<tables>/_sync_runs/`.
//!
//! This crate must never: know about HTTP, the API or sync state; change a raw file; write a table
//! commit that is not atomic; touch a folder that is not its own table (it refuses with
//! [`TableError::ForeignTable`]).
//!
//! # Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use lake_tables::{Tables, TablesLocation, TableOptions};
//! use lake_writer::{FileKind, Lake, LakeOptions, PartSpec, RunStamp, WriterOptions};
//! use xledger_model::page::MutationType;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await?;
//! let customers = xledger_model::entity("customers").unwrap();
//! let stamp: RunStamp = "20240711_21_17_09".parse().unwrap();
//! let spec = PartSpec { kind: FileKind::FullSync, stamp, part: None, synced_at: stamp.as_datetime(),
//!     extra_metadata: vec![] };
//! let mut part = lake.create_part(customers, spec, &WriterOptions::default()).await?;
//! let node = r#"{"dbId": 7, "description": "Acme",
//!     "email": null, "code": "A1", "number": 1001, "company": null}"#;
//! part.write_nodes([(node, MutationType::Added)]).await?;
//! let file = part.finish().await?;
//! lake.write_manifest(customers, stamp, &[file]).await?;
//!
//! let location = TablesLocation::parse("current")?.unwrap();
//! let tables = Tables::open(&location, &lake, LakeOptions::default(), TableOptions::default()).await?;
//! let caught_up = tables.catch_up(&lake, customers).await?;
//! assert_eq!(caught_up.applied, ["full_sync-20240711_21_17_09-customers.manifest.json"]);
//! assert!(tables.catch_up(&lake, customers).await?.applied.is_empty()); // nothing left to apply
//! let status = tables.status(customers).await?.unwrap();
//! assert_eq!(status.rows, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod delta;
mod error;
mod raw;
mod runs;
mod tables;
mod vacuum;

pub use error::TableError;
pub use raw::STAMP_SLACK;
pub use runs::{RunRecord, SYNC_RUNS_TABLE, sync_runs_schema};
pub use tables::{
    APPLIED_PARAMETER, CatchUp, Clock, FINGERPRINT_PARAMETER, FULL_LOAD_PARAMETER, LAST_APPLIED_PARAMETER, SystemClock,
    TableOptions, TableStatus, Tables, TablesLocation, app_id,
};
