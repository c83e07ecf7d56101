//! What a pass did, per entity and in total: the summary table, the JSON event and the exit code.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sync_state::FullSyncReason;
use xledger_client::ClientStats;

use crate::stop::StopReason;

/// How an entity was synced in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new full load (first run, or `--full`).
    Full,
    /// A full load of an entity without a change feed (every pass).
    FullOnly,
    /// A full load continued from its last checkpoint.
    Resumed,
    /// Changes read from the feed and written.
    Incremental,
    /// A full load because the change feed had a gap.
    GapResync,
    /// The feed had nothing new.
    Idle,
    /// Not run (lease held elsewhere, unreadable state).
    Skipped,
}

impl Mode {
    pub fn for_reason(reason: &FullSyncReason) -> Mode {
        match reason {
            FullSyncReason::Gap { .. } => Mode::GapResync,
            FullSyncReason::FullOnly => Mode::FullOnly,
            _ => Mode::Full,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::FullOnly => "full-only",
            Mode::Resumed => "resumed",
            Mode::Incremental => "incremental",
            Mode::GapResync => "gap resync",
            Mode::Idle => "idle",
            Mode::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one entity's run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub files: u64,
    pub requests: u64,
    pub bytes_received: u64,
    pub bytes_written: u64,
}

/// How an entity's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityOutcome {
    /// Everything asked for is in the lake and the state.
    Synced,
    /// Stopped at a page boundary (deadline, signal, lease lost); the next pass continues.
    Stopped(StopReason),
    /// Xledger credits exhausted beyond the allowed wait; the next pass continues.
    Deferred(String),
    /// Another process holds the entity's lease.
    LeaseHeld(String),
    Failed(String),
}

impl fmt::Display for EntityOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityOutcome::Synced => f.write_str("synced"),
            EntityOutcome::Stopped(StopReason::Deadline) => f.write_str("stopped at the deadline; resumes next pass"),
            EntityOutcome::Stopped(StopReason::Signal) => f.write_str("stopped by a signal; resumes next pass"),
            EntityOutcome::Stopped(StopReason::CreditsExhausted) => {
                f.write_str("stopped: credits exhausted; resumes next pass")
            }
            EntityOutcome::Stopped(StopReason::LeaseLost) => f.write_str("stopped: lease lost"),
            EntityOutcome::Deferred(why) => write!(f, "deferred: {why}"),
            EntityOutcome::LeaseHeld(why) => write!(f, "skipped: {why}"),
            EntityOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// What the entity's current-state table did after its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOutcome {
    /// It already held every raw file (`version` is `None` for an entity with no complete load yet).
    UpToDate { version: Option<u64> },
    /// `files` raw files were applied, ending at table `version`.
    Applied { files: u64, version: Option<u64> },
    /// Not attempted: the pass stopped early (deadline, signal, credits), so the next pass catches up.
    Deferred,
    /// The table was not updated; the raw sync stands and the next pass tries again.
    Failed(String),
}

impl fmt::Display for TableOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = |v: &Option<u64>| v.map_or_else(|| "-".to_string(), |v| format!("v{v}"));
        match self {
            TableOutcome::UpToDate { version: v } => write!(f, "{} (up to date)", version(v)),
            TableOutcome::Applied { files, version: v } => write!(f, "{} (+{files} raw)", version(v)),
            TableOutcome::Deferred => f.write_str("deferred to the next pass (this one stopped early)"),
            TableOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// One entity's line of the summary.
#[derive(Debug, Clone)]
pub struct EntityReport {
    pub entity: &'static str,
    pub mode: Mode,
    pub counts: Counts,
    /// When the entity's run started (UTC).
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub outcome: EntityOutcome,
    /// The current-state table's step after the run; `None` when tables are off or the entity
    /// did not run.
    pub table: Option<TableOutcome>,
}

impl EntityReport {
    /// An entity that did not run (lease held elsewhere, state unreadable).
    pub fn failed(entity: &'static str, started_at: DateTime<Utc>, mode: Mode, outcome: EntityOutcome) -> Self {
        EntityReport {
            entity,
            mode,
            counts: Counts::default(),
            started_at,
            duration: Duration::ZERO,
            outcome,
            table: None,
        }
    }

    /// Why the run or its table failed, if either did (text without secrets).
    pub fn error_text(&self) -> Option<String> {
        match (&self.outcome, &self.table) {
            (EntityOutcome::Failed(why) | EntityOutcome::LeaseHeld(why) | EntityOutcome::Deferred(why), _) => {
                Some(why.clone())
            }
            (_, Some(TableOutcome::Failed(why))) => Some(format!("table: {why}")),
            _ => None,
        }
    }
}

/// The pass's overall result, which decides the exit code. Serialized in snake case
/// (`completed`, `lease_held`, …) where the Functions handler reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassStatus {
    /// Every entity asked for is synced. Exit 0.
    Completed,
    /// Stopped early (deadline, signal); state is consistent and the next pass continues. Exit 3.
    Partial,
    /// Credits exhausted; the next pass continues. Exit 4.
    Deferred,
    /// Another process holds a lease. Exit 5.
    LeaseHeld,
    /// Something failed. Exit 1.
    Failed,
}

impl PassStatus {
    pub fn exit_code(self) -> u8 {
        match self {
            PassStatus::Completed => 0,
            PassStatus::Failed => 1,
            PassStatus::Partial => 3,
            PassStatus::Deferred => 4,
            PassStatus::LeaseHeld => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PassStatus::Completed => "completed",
            PassStatus::Partial => "partial",
            PassStatus::Deferred => "deferred",
            PassStatus::LeaseHeld => "lease held",
            PassStatus::Failed => "failed",
        }
    }
}

/// Everything a pass did.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub entities: Vec<EntityReport>,
    pub requests: u64,
    pub retries: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub stop: Option<StopReason>,
}

impl PassReport {
    pub fn new(
        started_at: DateTime<Utc>,
        duration: Duration,
        entities: Vec<EntityReport>,
        before: ClientStats,
        after: ClientStats,
        stop: Option<StopReason>,
    ) -> Self {
        let retries_before: u64 = before.retries_by_reason.values().sum();
        let retries_after: u64 = after.retries_by_reason.values().sum();
        PassReport {
            started_at,
            duration,
            entities,
            requests: after.requests.saturating_sub(before.requests),
            retries: retries_after.saturating_sub(retries_before),
            bytes_sent: after.bytes_sent.saturating_sub(before.bytes_sent),
            bytes_received: after.bytes_received.saturating_sub(before.bytes_received),
            stop,
        }
    }

    pub fn status(&self) -> PassStatus {
        let mut status = PassStatus::Completed;
        for e in &self.entities {
            let this = match &e.outcome {
                EntityOutcome::Synced => PassStatus::Completed,
                EntityOutcome::Stopped(_) => PassStatus::Partial,
                EntityOutcome::Deferred(_) => PassStatus::Deferred,
                EntityOutcome::LeaseHeld(_) => PassStatus::LeaseHeld,
                EntityOutcome::Failed(_) => PassStatus::Failed,
            };
            status = worse(status, this);
            if matches!(e.table, Some(TableOutcome::Failed(_))) {
                status = worse(status, PassStatus::Failed);
            }
        }
        status
    }

    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for e in &self.entities {
            t.added += e.counts.added;
            t.updated += e.counts.updated;
            t.deleted += e.counts.deleted;
            t.files += e.counts.files;
            t.requests += e.counts.requests;
            t.bytes_written += e.counts.bytes_written;
        }
        t.requests = self.requests;
        t.bytes_received = self.bytes_received;
        t
    }

    /// The end-of-pass table for a terminal or a log.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<16} {:<12} {:>10} {:>10} {:>10} {:>6} {:>9} {:>10} {:>10} {:>9}  {}\n",
            "entity",
            "mode",
            "added",
            "updated",
            "deleted",
            "files",
            "requests",
            "received",
            "written",
            "time",
            "outcome"
        ));
        for e in &self.entities {
            out.push_str(&format!(
                "{:<16} {:<12} {:>10} {:>10} {:>10} {:>6} {:>9} {:>10} {:>10} {:>9}  {}\n",
                e.entity,
                e.mode.as_str(),
                e.counts.added,
                e.counts.updated,
                e.counts.deleted,
                e.counts.files,
                e.counts.requests,
                human_bytes(e.counts.bytes_received),
                human_bytes(e.counts.bytes_written),
                format!("{:.1}s", e.duration.as_secs_f64()),
                e.outcome
            ));
            if let Some(table) = &e.table {
                out.push_str(&format!("{:<16} table {table}\n", ""));
            }
        }
        let t = self.total();
        out.push_str(&format!(
            "{:<16} {:<12} {:>10} {:>10} {:>10} {:>6} {:>9} {:>10} {:>10} {:>9}  {}\n",
            "total",
            "",
            t.added,
            t.updated,
            t.deleted,
            t.files,
            self.requests,
            human_bytes(self.bytes_received),
            human_bytes(t.bytes_written),
            format!("{:.1}s", self.duration.as_secs_f64()),
            self.status().as_str()
        ));
        out.push_str(&format!(
            "Xledger: {} requests ({} retries), {} received, {} sent (on the wire)\n",
            self.requests,
            self.retries,
            human_bytes(self.bytes_received),
            human_bytes(self.bytes_sent)
        ));
        out
    }

    /// The summary as one JSON object (also logged as the `pass_summary` event).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "started_at": self.started_at.to_rfc3339(),
            "duration_s": self.duration.as_secs_f64(),
            "status": self.status().as_str(),
            "requests": self.requests,
            "retries": self.retries,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "entities": self.entities.iter().map(|e| json!({
                "entity": e.entity,
                "mode": e.mode.as_str(),
                "added": e.counts.added,
                "updated": e.counts.updated,
                "deleted": e.counts.deleted,
                "files": e.counts.files,
                "requests": e.counts.requests,
                "bytes_received": e.counts.bytes_received,
                "bytes_written": e.counts.bytes_written,
                "duration_s": e.duration.as_secs_f64(),
                "outcome": e.outcome.to_string(),
                "table": e.table.as_ref().map(ToString::to_string),
            })).collect::<Vec<_>>(),
        })
    }
}

fn worse(a: PassStatus, b: PassStatus) -> PassStatus {
    let rank = |s: PassStatus| match s {
        PassStatus::Completed => 0,
        PassStatus::Partial => 1,
        PassStatus::Deferred => 2,
        PassStatus::LeaseHeld => 3,
        PassStatus::Failed => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// `1.5 MB`-style sizes for tables.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: Vec<EntityOutcome>) -> PassReport {
        PassReport {
            started_at: Utc::now(),
            duration: Duration::from_secs(1),
            entities: outcomes
                .into_iter()
                .map(|o| EntityReport {
                    entity: "timesheets",
                    mode: Mode::Idle,
                    counts: Counts::default(),
                    started_at: Utc::now(),
                    duration: Duration::ZERO,
                    outcome: o,
                    table: None,
                })
                .collect(),
            requests: 1,
            retries: 0,
            bytes_sent: 10,
            bytes_received: 20,
            stop: None,
        }
    }

    #[test]
    fn the_worst_outcome_decides_the_exit_code() {
        assert_eq!(report(vec![EntityOutcome::Synced]).status().exit_code(), 0);
        assert_eq!(
            report(vec![EntityOutcome::Synced, EntityOutcome::Stopped(StopReason::Deadline)]).status().exit_code(),
            3
        );
        assert_eq!(
            report(vec![EntityOutcome::Deferred("x".into()), EntityOutcome::Stopped(StopReason::Signal)])
                .status()
                .exit_code(),
            4
        );
        assert_eq!(report(vec![EntityOutcome::LeaseHeld("h".into())]).status().exit_code(), 5);
        assert_eq!(
            report(vec![EntityOutcome::Failed("boom".into()), EntityOutcome::LeaseHeld("h".into())])
                .status()
                .exit_code(),
            1
        );
    }

    #[test]
    fn the_table_and_json_carry_every_entity_and_the_totals() {
        let r = report(vec![EntityOutcome::Synced]);
        let table = r.render_table();
        assert!(table.contains("timesheets") && table.contains("idle") && table.contains("total"));
        assert!(table.contains("1 requests"));
        let json = r.to_json();
        assert_eq!(json["entities"][0]["mode"], "idle");
        assert_eq!(json["requests"], 1);
        assert_eq!(json["status"], "completed");
    }

    #[test]
    fn a_table_that_was_not_updated_fails_the_pass_and_shows_in_the_summary() {
        let mut r = report(vec![EntityOutcome::Synced]);
        r.entities[0].table = Some(TableOutcome::Failed("not our table".into()));
        assert_eq!(r.status(), PassStatus::Failed);
        assert!(r.render_table().contains("table failed: not our table"), "{}", r.render_table());
        assert_eq!(r.to_json()["entities"][0]["table"], "failed: not our table");
        assert_eq!(r.entities[0].error_text().as_deref(), Some("table: not our table"));
        r.entities[0].table = Some(TableOutcome::Applied { files: 2, version: Some(7) });
        assert_eq!(r.status(), PassStatus::Completed);
        assert!(r.render_table().contains("table v7 (+2 raw)"), "{}", r.render_table());
    }

    #[test]
    fn bytes_are_human_sized() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
