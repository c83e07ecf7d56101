//! Turning validated settings into an engine, and the commands that use it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lake_tables::{TableOptions, Tables, TablesLocation};
use lake_writer::{Compression, Lake, LakeOptions, WriterOptions};
use sync_state::{Phase, StateStore, StoreOptions};
use tokio::time::Instant;
use xledger_client::{ApiKey, ClientConfig, XledgerClient};
use xledger_model::{EntitySpec, entities, entity};

use sync_engine::{Engine, PassReport, PassRequest, Settings, StopReason, StopSignal};

use crate::cli::{CompressionArg, GlobalArgs};
pub use crate::error::ConfigError;
use crate::progress::Progress;

/// The entities named on the command line (all when none), or an error naming the unknown one.
pub fn select_entities(names: &[String]) -> Result<Vec<&'static EntitySpec>, ConfigError> {
    if names.is_empty() {
        return Ok(entities().iter().collect());
    }
    let mut out: Vec<&'static EntitySpec> = Vec::new();
    for name in names {
        let spec = entity(name).ok_or_else(|| {
            let known: Vec<&str> = entities().iter().map(|e| e.name).collect();
            ConfigError::Invalid(format!("unknown entity `{name}` (known: {})", known.join(", ")))
        })?;
        if !out.iter().any(|e| e.name == spec.name) {
            out.push(spec);
        }
    }
    Ok(out)
}

/// Reads and checks the API key: present, and not an unresolved Key Vault reference.
pub fn api_key(global: &GlobalArgs) -> Result<ApiKey, ConfigError> {
    let key = global.api_key.as_deref().map(str::trim).unwrap_or_default();
    if key.is_empty() {
        return Err(ConfigError::Invalid(
            "XLEDGER_API_KEY is not set: set it (or --api-key) to an Xledger API key; try `xledger-sync demo` to run without one".into(),
        ));
    }
    if key.starts_with("@Microsoft.KeyVault(") {
        return Err(ConfigError::Invalid(
            "XLEDGER_API_KEY holds an unresolved Key Vault reference: the Function App cannot read the secret (check its managed identity has Key Vault Secrets User on the vault, and the reference's SecretUri)".into(),
        ));
    }
    Ok(ApiKey::new(key.to_string()))
}

pub fn client(
    global: &GlobalArgs,
    endpoint: &str,
    key: ApiKey,
    deadline: Option<Instant>,
) -> anyhow::Result<XledgerClient> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| ConfigError::Invalid(format!("XLEDGER_ENDPOINT `{endpoint}` is not a URL: {e}")))?;
    let mut config = ClientConfig::new(url, key);
    config.request_timeout = global.request_timeout;
    config.max_in_flight = global.max_in_flight as usize;
    config.retry.max_credit_wait = global.max_credit_wait;
    config.deadline = deadline;
    XledgerClient::new(config).map_err(|e| anyhow::Error::new(ConfigError::Invalid(e.to_string())))
}

pub async fn lake(global: &GlobalArgs) -> anyhow::Result<Lake> {
    Lake::open(&global.lake, LakeOptions { create_container: global.create_container, ..LakeOptions::default() })
        .await
        .with_context(|| format!("opening the lake {}", global.lake))
}

/// The current-state tables the settings ask for (`None` for `--tables none`).
pub async fn tables(global: &GlobalArgs, lake: &Lake) -> anyhow::Result<Option<Arc<Tables>>> {
    let Some(location) = TablesLocation::parse(&global.tables).map_err(|e| ConfigError::Invalid(e.to_string()))? else {
        return Ok(None);
    };
    let lake_options = LakeOptions { create_container: global.create_container, ..LakeOptions::default() };
    let defaults = TableOptions::default();
    let file_rows = global.table_file_rows as usize;
    let options = TableOptions {
        target_file_rows: file_rows,
        row_group_rows: defaults.row_group_rows.min(file_rows),
        retention: chrono::Duration::from_std(global.table_retention)
            .map_err(|_| ConfigError::Invalid("XLEDGER_TABLE_RETENTION is too long".into()))?,
        ..defaults
    };
    let tables = Tables::open(&location, lake, lake_options, options)
        .await
        .with_context(|| format!("opening the current-state tables {}", global.tables))?;
    Ok(Some(Arc::new(tables)))
}

pub async fn state(global: &GlobalArgs) -> anyhow::Result<Arc<dyn StateStore>> {
    let options = StoreOptions {
        key_prefix: global.state_prefix.clone(),
        label: global.state_label.clone(),
        legacy_aliases: sync_engine::legacy_key_aliases(),
        ..StoreOptions::default()
    };
    sync_state::open_store(&global.state, options).await.context("opening the sync state store")
}

/// The engine's settings from the command line's.
pub fn settings(global: &GlobalArgs) -> Settings {
    let compression = match global.compression {
        CompressionArg::Zstd => Compression::default(),
        CompressionArg::Snappy => Compression::Snappy,
        CompressionArg::None => Compression::Uncompressed,
    };
    let writer = WriterOptions {
        compression,
        row_group_rows: global.row_group_rows as usize,
        part_rows: global.part_rows,
        ..WriterOptions::default()
    };
    Settings {
        page_size: global.page_size as usize,
        db_id_chunk_size: global.db_id_chunk_size as usize,
        writer,
        entity_concurrency: global.entity_concurrency as usize,
        delta_retention: global.delta_retention,
        lease_wait: global.lease_wait,
        lease_ttl: global.lease_ttl,
        max_changes_per_file: global.max_changes_per_file as usize,
    }
}

/// Builds the engine for a real (or simulated) endpoint.
pub async fn engine(
    global: &GlobalArgs,
    endpoint: &str,
    key: ApiKey,
    deadline: Option<Instant>,
    progress: Progress,
) -> anyhow::Result<Engine> {
    let client = client(global, endpoint, key, deadline)?;
    let lake = lake(global).await?;
    let tables = tables(global, &lake).await?;
    let state = state(global).await?;
    let engine = Engine::new(client, lake, state, settings(global)).with_observer(Arc::new(progress));
    Ok(match tables {
        Some(tables) => engine.with_tables(tables),
        None => engine,
    })
}

/// Runs a pass with signal handling: the first Ctrl-C / SIGTERM stops at the next page boundary.
pub async fn run_pass_with_signals(engine: &Engine, request: PassRequest, stop: Arc<StopSignal>) -> PassReport {
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("signal received: stopping at the next page boundary (again to abort)");
            stop.stop(StopReason::Signal);
            wait_for_signal().await;
            tracing::error!("second signal: aborting; unfinished files stay invisible and are cleaned up next run");
            std::process::exit(130);
        })
    };
    let report = engine.run_pass(request, stop).await;
    watcher.abort();
    report
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The pass deadline from `--max-duration`.
pub fn deadline(max_duration: Option<Duration>) -> Option<Instant> {
    max_duration.map(|d| Instant::now() + d)
}

/// `status`: one line per entity.
pub async fn status(global: &GlobalArgs, selected: &[&'static EntitySpec]) -> anyhow::Result<String> {
    let state = state(global).await?;
    let lake = lake(global).await?;
    let tables = tables(global, &lake).await?;
    let now = chrono::Utc::now();
    let tables_line = tables.as_ref().map_or_else(|| "none".to_string(), |t| t.describe());
    let mut out = format!("state:  {}\nlake:   {}\ntables: {tables_line}\n\n", state.describe(), lake.describe());
    out.push_str(&format!(
        "{:<16} {:<22} {:<24} {:<26} {:>7}  {}\n",
        "entity", "phase", "cursor", "last success (age)", "files", "note"
    ));
    for e in selected {
        let current = state.get(e.name).await.with_context(|| format!("{}: reading state", e.name))?;
        let files = lake.list(e.name).await.with_context(|| format!("{}: listing lake files", e.name))?;
        let data_files = files.iter().filter(|f| !f.is_manifest && !f.is_temp).count();
        let (phase, cursor, last, note) = match current.map(|v| v.value.phase) {
            None | Some(Phase::NotStarted) => {
                ("not started".to_string(), "-".to_string(), "-".to_string(), "next pass does a full load".to_string())
            }
            Some(Phase::FullSync(p)) => (
                format!("full sync {}", p.run_stamp),
                p.items_cursor.clone().unwrap_or_else(|| "-".into()),
                "-".to_string(),
                format!("{} parts committed; resumes next pass", p.parts.len()),
            ),
            Some(Phase::Incremental(p)) => {
                let age = now.signed_duration_since(p.last_success).to_std().unwrap_or_default();
                let age_text = humantime::format_duration(Duration::from_secs(age.as_secs())).to_string();
                let note = if age >= global.delta_retention {
                    "WARNING: older than the feed retention: next pass does a full load".to_string()
                } else if age.as_secs_f64() >= global.delta_retention.as_secs_f64() * 0.75 {
                    format!(
                        "WARNING: nearing the {} feed retention",
                        humantime::format_duration(global.delta_retention)
                    )
                } else if p.imported_from_legacy {
                    "continues from the old app's cursor".to_string()
                } else {
                    String::new()
                };
                (
                    if e.has_change_feed() { "incremental".into() } else { "full-only".into() },
                    p.deltas_cursor.clone().unwrap_or_else(|| "(feed start)".into()),
                    format!("{} ({age_text})", p.last_success.format("%Y-%m-%d %H:%M:%SZ")),
                    note,
                )
            }
        };
        out.push_str(&format!(
            "{:<16} {:<22} {:<24} {:<26} {:>7}  {}\n",
            e.name,
            phase,
            truncate(&cursor, 24),
            last,
            data_files,
            note
        ));
        if let Some(tables) = &tables {
            out.push_str(&format!("{:<16} table {}\n", "", table_line(tables, e).await));
        }
    }
    Ok(out)
}

/// One table's line: version, rows, files, bytes and the last raw file applied (or why not).
async fn table_line(tables: &Tables, entity: &'static EntitySpec) -> String {
    match tables.status(entity).await {
        Ok(None) => "none yet (the next complete full load creates it)".to_string(),
        Ok(Some(t)) => format!(
            "v{}: {} rows in {} files, {}, last applied {}",
            t.version,
            t.rows,
            t.files,
            sync_engine::human_bytes(t.bytes),
            t.last_applied.as_deref().unwrap_or("-")
        ),
        Err(error) => format!("unreadable: {error}"),
    }
}

/// `tables status`: every selected entity's table.
pub async fn tables_status(global: &GlobalArgs, selected: &[&'static EntitySpec]) -> anyhow::Result<String> {
    let lake = lake(global).await?;
    let Some(tables) = tables(global, &lake).await? else {
        return Err(ConfigError::Invalid("the current-state tables are off (XLEDGER_TABLES=none)".into()).into());
    };
    let mut out = format!("tables: {}\n\n", tables.describe());
    for entity in selected {
        out.push_str(&format!("{:<16} {}\n", entity.name, table_line(&tables, entity).await));
    }
    Ok(out)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let head: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

/// `reset-state`: deletes the state of the selected entities.
pub async fn reset_state(global: &GlobalArgs, selected: &[&'static EntitySpec]) -> anyhow::Result<Vec<String>> {
    let state = state(global).await?;
    let mut done = Vec::new();
    for e in selected {
        state.delete(e.name).await.with_context(|| format!("{}: deleting state", e.name))?;
        done.push(e.name.to_string());
    }
    Ok(done)
}

/// `wipe`: deletes the selected entities' lake files, then their state (files without state
/// would be read as a finished load; state without files would skip the full load).
pub async fn wipe(global: &GlobalArgs, selected: &[&'static EntitySpec]) -> anyhow::Result<u64> {
    let lake = lake(global).await?;
    let state = state(global).await?;
    let mut deleted = 0;
    for e in selected {
        deleted += lake.delete_entity(e.name).await.with_context(|| format!("{}: deleting lake files", e.name))?;
        state.delete(e.name).await.with_context(|| format!("{}: deleting state", e.name))?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn the_command_lines_defaults_are_the_engines_and_the_tables() {
        let cli = Cli::try_parse_from(["xledger-sync", "status"]).expect("no arguments parse");
        assert_eq!(settings(&cli.global), Settings::default());
        let tables = TableOptions::default();
        assert_eq!(cli.global.table_file_rows as usize, tables.target_file_rows);
        assert_eq!(chrono::Duration::from_std(cli.global.table_retention).ok(), Some(tables.retention));
    }
}
