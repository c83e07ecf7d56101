//! What the engine is asked to do and how: a pass request and the settings every pass uses.

use std::time::Duration;

use lake_writer::WriterOptions;
use xledger_model::EntitySpec;

/// How the engine pages, writes, waits and limits itself. [`Settings::default`] are the command
/// line's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Items and change-feed page size (`first`), at most Xledger's 10 000.
    pub page_size: usize,
    /// dbIds per `dbId_in` request.
    pub db_id_chunk_size: usize,
    /// Parquet writer settings, including the part size (rows) of full loads.
    pub writer: WriterOptions,
    /// Entities synced at the same time.
    pub entity_concurrency: usize,
    /// How long the change feed keeps entries; a cursor older than this is a gap → full load.
    pub delta_retention: Duration,
    /// How long to wait for another process's lease before giving up on an entity.
    pub lease_wait: Duration,
    /// Lease time-to-live; renewed while the pass runs.
    pub lease_ttl: Duration,
    /// Feed entries collapsed into one `sync_changes` file at most; more make further files.
    pub max_changes_per_file: usize,
}

impl Settings {
    pub const DEFAULT_PAGE_SIZE: usize = xledger_client::XLEDGER_MAX_PAGE_SIZE;
    pub const DEFAULT_DB_ID_CHUNK_SIZE: usize = 1_000;
    pub const DEFAULT_ENTITY_CONCURRENCY: usize = 2;
    pub const DEFAULT_DELTA_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);
    pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(10);
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);
    pub const DEFAULT_MAX_CHANGES_PER_FILE: usize = 200_000;
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            page_size: Self::DEFAULT_PAGE_SIZE,
            db_id_chunk_size: Self::DEFAULT_DB_ID_CHUNK_SIZE,
            writer: WriterOptions::default(),
            entity_concurrency: Self::DEFAULT_ENTITY_CONCURRENCY,
            delta_retention: Self::DEFAULT_DELTA_RETENTION,
            lease_wait: Self::DEFAULT_LEASE_WAIT,
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            max_changes_per_file: Self::DEFAULT_MAX_CHANGES_PER_FILE,
        }
    }
}

/// Whether a pass may follow the change feed where it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullLoad {
    /// A full load only where one is needed: first pass, a gap in the feed, a schema change, a
    /// full-only entity, or a full load to resume.
    #[default]
    WhenNeeded,
    /// A new full load of every entity asked for (`sync --full`, the admin resync).
    Forced,
}

/// What one pass is asked to do.
#[derive(Debug, Clone)]
pub struct PassRequest {
    /// The entities to sync, each at most once.
    pub entities: Vec<&'static EntitySpec>,
    pub full_load: FullLoad,
}

impl PassRequest {
    /// A pass over `entities` that loads in full only where needed.
    pub fn sync(entities: Vec<&'static EntitySpec>) -> Self {
        PassRequest { entities, full_load: FullLoad::WhenNeeded }
    }
}
