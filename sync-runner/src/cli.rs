//! The command line: every setting is a flag and an environment variable.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lake_writer::WriterOptions;

/// Keeps an Xledger data lake in sync: typed Parquet files from Xledger's GraphQL API, a full load
/// first, then small change files from the `<entity>_deltas` feeds.
#[derive(Debug, Parser)]
#[command(name = "xledger-sync", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one sync pass: full loads where needed, otherwise the changes since the last pass.
    Sync(SyncArgs),
    /// Show each entity's phase, cursor, last success and lake files.
    Status,
    /// Forget the sync state of entities (the next pass does a full load). Files are kept.
    ResetState(EntityArgs),
    /// Delete entities' lake files and their sync state.
    Wipe(WipeArgs),
    /// The current-state Delta tables: rebuild them from the raw files, or show them.
    #[command(subcommand)]
    Tables(TablesCommand),
    /// Try it without a key: a built-in Xledger simulator, a full load, changes, an incremental pass.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Run as an Azure Functions custom handler (listens on FUNCTIONS_CUSTOMHANDLER_PORT).
    Serve,
}

impl Command {
    /// `serve` answers the Functions host mid-pass and `demo` runs its simulator in-process.
    pub fn needs_worker_threads(&self) -> bool {
        match self {
            Command::Serve => true,
            #[cfg(feature = "demo")]
            Command::Demo(_) => true,
            _ => false,
        }
    }

    /// The commands that move rows, where a terminal gets progress bars.
    pub fn shows_progress(&self) -> bool {
        match self {
            Command::Sync(_) => true,
            #[cfg(feature = "demo")]
            Command::Demo(_) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Rebuild entities' tables from the raw files alone (no request to Xledger).
    Rebuild(EntityArgs),
    /// Each table's version, rows, files, bytes and the last raw file applied.
    Status,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub entities: EntityArgs,
    /// Start a new full load even where the change feed could be used.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct EntityArgs {
    /// An entity to act on (repeatable); all entities when omitted.
    #[arg(long = "entity", value_name = "NAME")]
    pub entities: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WipeArgs {
    #[command(flatten)]
    pub entities: EntityArgs,
    /// Confirm the deletion.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Rows per entity in the simulator.
    #[arg(long, default_value_t = 2_000)]
    pub rows: usize,
    /// Changes applied between the full load and the incremental pass.
    #[arg(long, default_value_t = 500)]
    pub changes: usize,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Progress bars and text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Zstd,
    Snappy,
    None,
}

/// Settings shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Xledger GraphQL endpoint (http:// only on loopback).
    #[arg(long, env = "XLEDGER_ENDPOINT", default_value = "https://www.xledger.net/graphql", global = true)]
    pub endpoint: String,
    /// Xledger API key (sent as `Authorization: token <key>`).
    #[arg(long, env = "XLEDGER_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// The lake: a path, file://…, az://container/prefix or abfss://container@account.dfs.core.windows.net/prefix.
    #[arg(long, env = "XLEDGER_LAKE", default_value = "./lake", global = true)]
    pub lake: String,
    /// The current-state Delta tables: `current` (a sub-folder of the lake), another sub-folder, an
    /// absolute path or URL (`file://`, `az://`, `abfss://`), or `none` for no tables.
    #[arg(long, env = "XLEDGER_TABLES", default_value = "current", global = true)]
    pub tables: String,
    /// Rows per data file of a current-state table: a change rewrites only the files whose dbId range
    /// it touches, so smaller files rewrite less and make more files to compact.
    #[arg(long, env = "XLEDGER_TABLE_FILE_ROWS", default_value_t = 32_768, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub table_file_rows: u64,
    /// How long files a table no longer uses are kept for readers of older versions before vacuum deletes them.
    #[arg(long, env = "XLEDGER_TABLE_RETENTION", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub table_retention: Duration,
    /// Create the Azure container when it is missing.
    #[arg(long, env = "XLEDGER_CREATE_CONTAINER", global = true)]
    pub create_container: bool,
    /// Sync state: a file path, an App Configuration endpoint (`https://<name>.azconfig.io`, Entra ID)
    /// or connection string (Endpoint=…;Id=…;Secret=…).
    #[arg(
        long,
        env = "XLEDGER_STATE",
        default_value = "./.xledger-sync/state.json",
        hide_env_values = true,
        global = true
    )]
    pub state: String,
    /// Key prefix of the state in App Configuration.
    #[arg(long, env = "XLEDGER_STATE_PREFIX", default_value = "xledger-sync/", global = true)]
    pub state_prefix: String,
    /// Label of the state keys in App Configuration.
    #[arg(long, env = "XLEDGER_STATE_LABEL", global = true)]
    pub state_label: Option<String>,
    /// How long Xledger keeps change-feed entries; an older cursor triggers a full load.
    #[arg(long, env = "XLEDGER_DELTA_RETENTION", default_value = "3d", value_parser = humantime::parse_duration, global = true)]
    pub delta_retention: Duration,
    /// Records per request (`first`), at most 10000.
    #[arg(long, env = "XLEDGER_PAGE_SIZE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub page_size: u32,
    /// dbIds per `dbId_in` request.
    #[arg(long, env = "XLEDGER_DBID_CHUNK_SIZE", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub db_id_chunk_size: u32,
    /// Rows per full-load part file (each part is a checkpoint of the load).
    #[arg(long, env = "XLEDGER_PART_ROWS", default_value_t = WriterOptions::DEFAULT_PART_ROWS, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub part_rows: u64,
    /// Rows per Parquet row group.
    #[arg(long, env = "XLEDGER_ROW_GROUP_ROWS", default_value_t = WriterOptions::DEFAULT_ROW_GROUP_ROWS as u64, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub row_group_rows: u64,
    /// Parquet compression.
    #[arg(long, env = "XLEDGER_COMPRESSION", value_enum, default_value_t = CompressionArg::Zstd, global = true)]
    pub compression: CompressionArg,
    /// Entities synced at the same time.
    #[arg(long, env = "XLEDGER_ENTITY_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64), global = true)]
    pub entity_concurrency: u32,
    /// Requests in flight to Xledger at once (stay under its concurrency limit).
    #[arg(long, env = "XLEDGER_MAX_IN_FLIGHT", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64), global = true)]
    pub max_in_flight: u32,
    /// Stop at a page boundary after this long (state stays consistent; the next run resumes).
    #[arg(long, env = "XLEDGER_MAX_DURATION", value_parser = humantime::parse_duration, global = true)]
    pub max_duration: Option<Duration>,
    /// How long to wait for another process's lease on an entity.
    #[arg(long, env = "XLEDGER_LEASE_WAIT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub lease_wait: Duration,
    /// Lease time-to-live (renewed while running; a crashed holder's lease lapses after it).
    #[arg(long, env = "XLEDGER_LEASE_TTL", default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    pub lease_ttl: Duration,
    /// Longest wait for Xledger credits to return (`resetAt`); beyond it the pass is deferred.
    #[arg(long, env = "XLEDGER_MAX_CREDIT_WAIT", default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    pub max_credit_wait: Duration,
    /// Per-request timeout.
    #[arg(long, env = "XLEDGER_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Feed entries collapsed into one change file at most.
    #[arg(long, env = "XLEDGER_MAX_CHANGES_PER_FILE", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_changes_per_file: u64,
    /// Log format.
    #[arg(long, env = "XLEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    /// Hide progress bars even on a terminal.
    #[arg(long, env = "XLEDGER_NO_PROGRESS", global = true)]
    pub no_progress: bool,
}
