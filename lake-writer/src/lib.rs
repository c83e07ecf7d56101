//! lake-writer: pages of Xledger nodes → exact, typed Parquet files in a data lake.
//!
//! The sync engine hands this crate pages of raw JSON nodes (as the GraphQL API returned them)
//! and gets back committed Parquet files that follow the lake contract of `design.md`:
//!
//! - **Conversion** ([`PageConverter`]): each node's JSON text is read once through a plan derived from
//!   the entity's generated columns into Arrow builders (no per-entity code). Decimal strings
//!   become `Decimal128` exactly, Central European wall-clock date-times become UTC timestamps,
//!   dates `Date32`; a `null` parent nulls its flattened children. A missing field, a value of the
//!   wrong JSON type or a decimal that does not fit its scale fails the page with a
//!   [`ConvertError`] naming entity, dbId, column and value.
//! - **Files** ([`Lake::create_part`] → [`PartWriter`]): named `<kind>-<stamp>-<entity>[-NNNNN].parquet`,
//!   columns in schema order then `mutationType` and `_synced_at`, zstd by default, streamed with
//!   memory bounded by about one page plus one row group, key-value metadata (entity, kind, run
//!   stamp, schema fingerprint, synced-at, tool version, the engine's extras), visible only after
//!   [`PartWriter::finish`]. Full syncs complete with [`Lake::write_manifest`].
//! - **The lake** ([`Lake`]): a local directory (default `./lake`), Azure Blob / ADLS Gen2
//!   (`az://`, `abfss://`) or memory, behind `object_store`. Listing, metadata and `wipe`.
//! - **Reading back** ([`rebuild`]): the contract's current-state rebuild, for tests and `status`.
//!
//! This crate must never: know about HTTP to Xledger or sync state; round, cut or coerce a value;
//! drop a row silently; make a partial file visible; replace a committed file; create an Azure
//! container unless asked ([`LakeOptions::create_container`]); print a key or SAS token.
//!
//! # Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use lake_writer::{FileKind, Lake, LakeOptions, PartSpec, RunStamp, WriterOptions};
//! use xledger_model::page::MutationType;
//!
//! let lake = Lake::open("memory://", LakeOptions::default()).await?;
//! let customers = xledger_model::entity("customers").unwrap();
//! let stamp: RunStamp = "20240711_21_17_09".parse().unwrap();
//! let spec = PartSpec {
//!     kind: FileKind::FullSync,
//!     stamp,
//!     part: None,
//!     synced_at: stamp.as_datetime(),
//!     extra_metadata: vec![],
//! };
//! let mut part = lake.create_part(customers, spec, &WriterOptions::default()).await?;
//! let node = r#"{"dbId": 7, "description": "Acme", "email": null,
//!     "code": "A1", "number": 1001, "company": {"dbId": 1, "name": "Acme AS",
//!     "description": null, "email": null}}"#;
//! part.write_nodes([(node, MutationType::Added)]).await?;
//! let file = part.finish().await?;
//! assert_eq!(file.name, "full_sync-20240711_21_17_09-customers.parquet");
//! lake.write_manifest(customers, stamp, &[file]).await?;
//!
//! let state = lake_writer::rebuild::current_state(&lake, customers).await?;
//! assert_eq!(state[&7]["company.name"], "Acme AS");
//! # Ok::<(), lake_writer::LakeError>(())
//! # }).unwrap();
//! ```

mod azure;
mod convert;
mod error;
mod lake;
mod naming;
pub mod read;
pub mod rebuild;
mod writer;

pub use convert::PageConverter;
pub use error::{ConvertError, ConvertReason, LakeError};
pub use lake::{LOCAL_CHUNK_BYTES, Lake, LakeFile, LakeOptions, Manifest};
pub use naming::{BadRunStamp, FileKind, ParsedName, RunStamp, file_name, manifest_name, parse_file_name};
pub use writer::{CommittedFile, Compression, PartSpec, PartWriter, WriterOptions, metadata_keys};
