//! The state of one entity's synchronisation, as types, and its versioned JSON encoding.
//!
//! Every stored record carries a top-level `"format_version"`. A record with a higher version than
//! [`FORMAT_VERSION`] was written by a newer xledger-sync: reading it is [`StateError::NewerFormat`] and
//! nothing overwrites it. A later format adds a migration here, keyed on the version it reads.
//!
//! A new field that is optional (`Option`, `#[serde(default)]`) does not need a new version: records
//! without it read as `None`, and an older build of the same version reads records with it (serde skips
//! fields it does not know). A new version is for changes an older build would misread; bumping it for an
//! additive field would only make older builds refuse the state and block a rollback. The cost: an older
//! build that rewrites a record drops the field, so its readers must treat `None` as "not recorded".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{LeaseHolder, StateError};

/// The format version this build writes, and the highest it reads.
pub const FORMAT_VERSION: u64 = 1;

/// Everything the sync engine remembers about one entity between runs.
///
/// ```
/// use sync_state::{EntityState, Phase};
/// let state = EntityState::default();
/// assert_eq!(state.phase, Phase::NotStarted);
/// assert!(state.last_run.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntityState {
    /// Where the entity's synchronisation stands.
    pub phase: Phase,
    /// What the last run did, for `status` and for operators.
    pub last_run: Option<RunSummary>,
}

/// Where an entity's synchronisation stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Phase {
    /// Nothing synced yet: the next run starts a full sync.
    #[default]
    NotStarted,
    /// A full sync is under way (possibly interrupted); the next run resumes it.
    FullSync(FullSyncProgress),
    /// The full sync is complete; runs follow the change feed.
    Incremental(IncrementalProgress),
}

/// How far a full sync has come. Saved after every committed part so a crash or a deadline resumes it
/// with the same run stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullSyncProgress {
    /// The lake file stamp `YYYYMMDD_HH_MM_SS` (UTC start of the run).
    pub run_stamp: String,
    /// The `_synced_at` value of every row this run writes.
    pub synced_at: DateTime<Utc>,
    /// Why this full sync runs.
    pub reason: FullSyncReason,
    /// The change feed's head, read (`last: 1`) before the first page; `None` if the feed was empty or
    /// the entity has no feed.
    pub deltas_head_cursor: Option<String>,
    /// The parts committed so far, in order.
    pub parts: Vec<CommittedPart>,
    /// Resume the items query after this cursor (`None` = from the start).
    pub items_cursor: Option<String>,
    /// A part saved *before* its file is committed; at start-up the engine checks whether the file
    /// exists and adopts or forgets it.
    pub pending: Option<PendingPart>,
    /// The schema fingerprint every part of this load is written with (`None` in states written before
    /// fingerprints were recorded).
    #[serde(default)]
    pub schema_fingerprint: Option<String>,
}

/// Why a full sync runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FullSyncReason {
    /// The entity was never synced.
    Initial,
    /// An operator asked for it (`sync --full`, the admin function).
    Requested,
    /// The change feed cannot continue from the saved cursor.
    Gap {
        /// What made the gap evident (cursor too old, rejected by the API, …).
        why: String,
    },
    /// The entity has no change feed: every run is a full sync.
    FullOnly,
}

/// A part file of a full sync that is committed to the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedPart {
    /// The part's file name.
    pub file: String,
    /// Rows in it.
    pub rows: u64,
}

/// A full-sync part recorded before its file is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPart {
    /// The part's file name.
    pub file: String,
    /// Rows in it.
    pub rows: u64,
    /// The items cursor to resume after once this part is adopted.
    pub items_cursor_after: Option<String>,
}

/// How far the change feed has been followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalProgress {
    /// Continue the feed after this cursor (`None` = from the feed's beginning).
    pub deltas_cursor: Option<String>,
    /// End of the last pass that reached the feed's end (gap detection).
    pub last_success: DateTime<Utc>,
    /// Run stamp of the full sync this chain starts from (`None` after a legacy import).
    pub last_full_sync: Option<String>,
    /// A `sync_changes` file recorded before it is committed; reconciled at start-up.
    pub pending: Option<PendingChanges>,
    /// The state came from the old app's App Configuration keys.
    pub imported_from_legacy: bool,
    /// The schema fingerprint of the full load this chain of change files stands on; change files are
    /// written with it. `None` when it was not recorded: imported from the old app (whose load has the
    /// seed schema) or written before fingerprints were recorded.
    #[serde(default)]
    pub schema_fingerprint: Option<String>,
}

/// A `sync_changes` file recorded before it is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChanges {
    /// The file's name.
    pub file: String,
    /// The feed cursor the file starts after.
    pub cursor_from: Option<String>,
    /// The feed cursor the file covers up to (the new `deltas_cursor` once committed).
    pub cursor_to: String,
    /// Rows in it.
    pub rows: u64,
}

/// What one run did for an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// "full", "resume", "incremental", …
    pub mode: String,
    /// Rows written as ADDED.
    pub rows_added: u64,
    /// Rows written as UPDATED.
    pub rows_updated: u64,
    /// Rows written as DELETED.
    pub rows_deleted: u64,
    /// Files committed.
    pub files: u64,
    /// Requests sent to Xledger.
    pub requests: u64,
    /// Response bytes received.
    pub bytes_received: u64,
    /// "ok", or why the run stopped.
    pub outcome: String,
}

/// A lease as stored: who syncs the entity and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    pub holder: StoredHolder,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A lease's holder as stored: an object since holders record their process's start; older builds
/// stored the text `host:pid:random`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum StoredHolder {
    Holder(LeaseHolder),
    Legacy(String),
}

impl StoredHolder {
    /// The holder; a legacy text in another shape is corrupt (no build ever wrote one).
    pub(crate) fn into_holder(self, location: &str) -> Result<LeaseHolder, StateError> {
        match self {
            StoredHolder::Holder(holder) => Ok(holder),
            StoredHolder::Legacy(text) => LeaseHolder::parse_legacy(&text).ok_or_else(|| StateError::Corrupt {
                location: location.to_owned(),
                detail: format!("lease holder `{text}` is neither a holder object nor `host:pid:id`"),
            }),
        }
    }
}

/// A record as stored: the payload's fields next to `format_version`.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    format_version: u64,
    #[serde(flatten)]
    record: T,
}

/// Encodes a record with the current format version.
pub(crate) fn encode<T: Serialize>(record: &T, location: &str) -> Result<Value, StateError> {
    serde_json::to_value(Stored { format_version: FORMAT_VERSION, record })
        .map_err(|e| StateError::Corrupt { location: location.to_owned(), detail: format!("cannot encode: {e}") })
}

/// Decodes a record, refusing a newer format version and anything malformed.
pub(crate) fn decode<T: DeserializeOwned>(value: Value, location: &str) -> Result<T, StateError> {
    check_format_version(&value, location)?;
    serde_json::from_value::<Stored<T>>(value)
        .map(|stored| stored.record)
        .map_err(|e| StateError::Corrupt { location: location.to_owned(), detail: e.to_string() })
}

/// Checks a record's top-level `format_version` without decoding the rest.
pub(crate) fn check_format_version(value: &Value, location: &str) -> Result<(), StateError> {
    let found = value.get("format_version").and_then(Value::as_u64).ok_or_else(|| StateError::Corrupt {
        location: location.to_owned(),
        detail: "no numeric top-level `format_version`".to_owned(),
    })?;
    if found > FORMAT_VERSION {
        return Err(StateError::NewerFormat { location: location.to_owned(), found, supported: FORMAT_VERSION });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn full_sync_state() -> EntityState {
        EntityState {
            phase: Phase::FullSync(FullSyncProgress {
                run_stamp: "20240711_21_17_09".into(),
                synced_at: Utc.with_ymd_and_hms(2024, 7, 11, 21, 17, 9).unwrap(),
                reason: FullSyncReason::Gap { why: "cursor older than 3 days".into() },
                deltas_head_cursor: Some("head".into()),
                parts: vec![CommittedPart {
                    file: "full_sync-20240711_21_17_09-timesheets-00001.parquet".into(),
                    rows: 10,
                }],
                items_cursor: Some("c10".into()),
                pending: Some(PendingPart { file: "p2".into(), rows: 5, items_cursor_after: Some("c15".into()) }),
                schema_fingerprint: Some("fp-1".into()),
            }),
            last_run: None,
        }
    }

    #[test]
    fn a_state_round_trips_and_carries_format_version_1() {
        let state = full_sync_state();
        let value = encode(&state, "test").unwrap();
        assert_eq!(value["format_version"], json!(1));
        assert_eq!(value["phase"]["kind"], json!("full_sync"));
        assert_eq!(value["phase"]["reason"], json!({"kind": "gap", "why": "cursor older than 3 days"}));
        assert_eq!(decode::<EntityState>(value, "test").unwrap(), state);
    }

    #[test]
    fn states_written_before_fingerprints_read_with_none() {
        let full = json!({"format_version": 1, "last_run": null, "phase": {
            "kind": "full_sync", "run_stamp": "20240711_21_17_09", "synced_at": "2024-07-11T21:17:09Z",
            "reason": {"kind": "initial"}, "deltas_head_cursor": null, "parts": [], "items_cursor": null,
            "pending": null
        }});
        let Phase::FullSync(progress) = decode::<EntityState>(full, "test").unwrap().phase else {
            panic!("a full sync")
        };
        assert_eq!(progress.schema_fingerprint, None);
        let incremental = json!({"format_version": 1, "last_run": null, "phase": {
            "kind": "incremental", "deltas_cursor": "c", "last_success": "2024-07-11T21:17:09Z",
            "last_full_sync": null, "pending": null, "imported_from_legacy": true
        }});
        let Phase::Incremental(progress) = decode::<EntityState>(incremental, "test").unwrap().phase else {
            panic!("incremental")
        };
        assert_eq!(progress.schema_fingerprint, None);
    }

    #[test]
    fn the_fingerprint_is_stored_next_to_the_progress() {
        let value = encode(&full_sync_state(), "test").unwrap();
        assert_eq!(value["phase"]["schema_fingerprint"], json!("fp-1"));
    }

    #[test]
    fn a_higher_format_version_is_refused_as_newer() {
        let value = json!({"format_version": 2, "phase": {"kind": "not_started"}, "last_run": null});
        let err = decode::<EntityState>(value, "key x").unwrap_err();
        assert!(matches!(err, StateError::NewerFormat { found: 2, supported: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("written by a newer xledger-sync"), "{err}");
    }

    #[test]
    fn a_record_without_format_version_is_corrupt() {
        let err = decode::<EntityState>(json!({"phase": {"kind": "not_started"}}), "key x").unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn an_unknown_phase_is_corrupt() {
        let value = json!({"format_version": 1, "phase": {"kind": "paused"}, "last_run": null});
        let err = decode::<EntityState>(value, "key x").unwrap_err();
        assert!(matches!(err, StateError::Corrupt { ref location, .. } if location == "key x"), "{err:?}");
    }
}
