//! The current-state tables, kept by the engine: each entity's table catches up with the raw
//! files after the entity's run (its raw commits and state saves are done by then), and the pass
//! appends one row per entity to `_sync_runs`.

use lake_tables::{RunRecord, TableError, Tables};
use lake_writer::Lake;
use sync_state::{LeaseHolder, StateStore};
use xledger_model::EntitySpec;

use crate::entity::EntityRun;
use crate::pass::{Engine, acquire_lease};
use crate::report::{EntityOutcome, PassReport, TableOutcome};
use crate::settings::Settings;

impl EntityRun<'_> {
    /// Brings the entity's table up to the raw files. Raw files are the record: a table that
    /// cannot be written is reported (and the pass fails), but the raw sync stands.
    /// A pass that stops early leaves the tables to the next one: a table commit (a full load's is
    /// the largest) must not run past the deadline.
    pub(crate) async fn catch_up_table(&self, tables: &Tables) -> TableOutcome {
        if self.stop.check().is_some() {
            return TableOutcome::Deferred;
        }
        catch_up(tables, self.engine, self.entity).await
    }
}

async fn catch_up(tables: &Tables, engine: &Engine, entity: &'static EntitySpec) -> TableOutcome {
    match tables.catch_up(&engine.lake, entity).await {
        Ok(done) if done.applied.is_empty() => TableOutcome::UpToDate { version: done.version },
        Ok(done) => {
            tracing::info!(
                entity = entity.name,
                table = %tables.describe(),
                applied = done.applied.len(),
                version = done.version,
                bytes_rewritten = done.bytes_rewritten,
                "current-state table caught up"
            );
            TableOutcome::Applied { files: done.applied.len() as u64, version: done.version }
        }
        Err(error) => {
            let hint = if error.needs_operator() { " (an operator must look)" } else { "" };
            tracing::error!(entity = entity.name, %error, "the current-state table was not updated{hint}");
            TableOutcome::Failed(error.to_string())
        }
    }
}

/// Rebuilds the tables of `entities` from the raw files alone (no request to Xledger), each under
/// its entity's lease (taken as `holder`) so that no pass writes the table meanwhile. Per entity
/// the new table version, or why it failed.
pub async fn rebuild_tables(
    lake: &Lake,
    state: &dyn StateStore,
    tables: &Tables,
    holder: &LeaseHolder,
    settings: &Settings,
    entities: &[&'static EntitySpec],
) -> Vec<(&'static str, Result<Option<u64>, String>)> {
    let mut out = Vec::new();
    for entity in entities {
        let result = match acquire_lease(state, holder, settings, entity).await {
            Err(message) => Err(message),
            Ok(lease) => {
                let rebuilt = tables.rebuild(lake, entity).await.map_err(|e: TableError| e.to_string());
                if let Err(error) = state.release_lease(lease).await {
                    tracing::warn!(entity = entity.name, %error, "could not release the lease (it will expire)");
                }
                rebuilt.map(|done| done.version)
            }
        };
        out.push((entity.name, result));
    }
    out
}

impl Engine {
    /// Appends the pass to `_sync_runs` (best effort: a failure is logged, the pass stands).
    pub(crate) async fn record_runs(&self, report: &PassReport, holder_instance: &str) {
        let Some(tables) = &self.tables else { return };
        let pass_id = format!("{}-{holder_instance}", report.started_at.format("%Y%m%dT%H%M%S%.6fZ"));
        let finished_at =
            report.started_at + chrono::Duration::from_std(report.duration).unwrap_or(chrono::TimeDelta::zero());
        let records: Vec<RunRecord> = report
            .entities
            .iter()
            .map(|e| RunRecord {
                pass_id: pass_id.clone(),
                entity: e.entity.to_string(),
                started_at: report.started_at,
                finished_at,
                mode: e.mode.as_str().to_string(),
                rows_added: e.counts.added,
                rows_updated: e.counts.updated,
                rows_deleted: e.counts.deleted,
                files: e.counts.files,
                requests: e.counts.requests,
                bytes: e.counts.bytes_received,
                outcome: match &e.outcome {
                    EntityOutcome::Synced => "synced",
                    EntityOutcome::Stopped(_) => "stopped",
                    EntityOutcome::Deferred(_) => "deferred",
                    EntityOutcome::LeaseHeld(_) => "lease held",
                    EntityOutcome::Failed(_) => "failed",
                }
                .to_string(),
                error: e.error_text(),
            })
            .collect();
        if let Err(error) = tables.append_runs(&records).await {
            tracing::warn!(%error, "could not append the pass to the _sync_runs table");
        }
    }
}
