//! The file backend through the public API: compare-and-swap, delete, list, leases with an injected
//! clock, and refusal to touch a corrupt or newer file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sync_state::{
    Clock, EntityState, Expect, IncrementalProgress, Phase, StateError, StateStore, StoreOptions, Version, open_store,
};

struct Fixture {
    dir: tempfile::TempDir,
    now: Arc<Mutex<DateTime<Utc>>>,
    store: Arc<dyn StateStore>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(Mutex::new(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()));
        let store = open_with_clock(&dir, &now).await;
        Self { dir, now, store }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("state").join("state.json")
    }

    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap();
        *now += chrono::TimeDelta::from_std(by).unwrap();
    }
}

async fn open_with_clock(dir: &tempfile::TempDir, now: &Arc<Mutex<DateTime<Utc>>>) -> Arc<dyn StateStore> {
    let now = Arc::clone(now);
    let options = StoreOptions { clock: Clock::from_fn(move || *now.lock().unwrap()), ..StoreOptions::default() };
    let path = dir.path().join("state").join("state.json");
    open_store(path.to_str().unwrap(), options).await.unwrap()
}

fn incremental(cursor: &str) -> EntityState {
    EntityState {
        phase: Phase::Incremental(IncrementalProgress {
            deltas_cursor: Some(cursor.to_owned()),
            last_success: Utc.with_ymd_and_hms(2025, 3, 1, 11, 0, 0).unwrap(),
            last_full_sync: Some("20250301_10_00_00".to_owned()),
            pending: None,
            imported_from_legacy: false,
        }),
        last_run: None,
    }
}

#[tokio::test]
async fn a_state_put_when_absent_reads_back_with_its_version() {
    let f = Fixture::new().await;
    assert!(f.store.get("timesheets").await.unwrap().is_none());
    let version = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let read = f.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!(read.value, incremental("c1"));
    assert_eq!(read.version, version);
}

#[tokio::test]
async fn a_put_with_the_current_version_replaces_and_changes_the_version() {
    let f = Fixture::new().await;
    let v1 = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let v2 = f.store.put("timesheets", &incremental("c2"), Expect::Version(v1.clone())).await.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(f.store.get("timesheets").await.unwrap().unwrap().value, incremental("c2"));
}

#[tokio::test]
async fn a_put_with_a_stale_version_is_a_conflict_and_changes_nothing() {
    let f = Fixture::new().await;
    let v1 = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let v2 = f.store.put("timesheets", &incremental("c2"), Expect::Version(v1.clone())).await.unwrap();
    let err = f.store.put("timesheets", &incremental("c3"), Expect::Version(v1)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { ref entity, .. } if entity == "timesheets"), "{err:?}");
    let read = f.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (incremental("c2"), v2));
}

#[tokio::test]
async fn a_create_over_an_existing_state_is_a_conflict() {
    let f = Fixture::new().await;
    f.store.put("projects", &incremental("c1"), Expect::Absent).await.unwrap();
    let err = f.store.put("projects", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn expecting_the_absent_version_creates_like_expect_absent() {
    let f = Fixture::new().await;
    f.store.put("projects", &incremental("c1"), Expect::Version(Version::absent())).await.unwrap();
    assert_eq!(f.store.get("projects").await.unwrap().unwrap().value, incremental("c1"));
}

#[tokio::test]
async fn a_deleted_state_reads_as_absent_and_can_be_created_again() {
    let f = Fixture::new().await;
    let old = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    f.store.delete("timesheets").await.unwrap();
    assert!(f.store.get("timesheets").await.unwrap().is_none());
    // A writer still holding the version from before the reset must not win.
    let err = f.store.put("timesheets", &incremental("stale"), Expect::Version(old)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    f.store.put("timesheets", &EntityState::default(), Expect::Absent).await.unwrap();
}

#[tokio::test]
async fn list_returns_every_stored_entity_by_name_and_no_leases() {
    let f = Fixture::new().await;
    f.store.put("timesheets", &incremental("t"), Expect::Absent).await.unwrap();
    f.store.put("projects", &incremental("p"), Expect::Absent).await.unwrap();
    f.store.acquire_lease("customers", "host:1", Duration::from_secs(60)).await.unwrap();
    let listed: Vec<(String, EntityState)> =
        f.store.list().await.unwrap().into_iter().map(|(name, v)| (name, v.value)).collect();
    assert_eq!(listed, vec![("projects".to_owned(), incremental("p")), ("timesheets".to_owned(), incremental("t"))]);
}

#[tokio::test]
async fn an_entity_name_that_is_not_a_plain_identifier_is_refused() {
    let f = Fixture::new().await;
    let err = f.store.get("time/sheets").await.unwrap_err();
    assert!(matches!(err, StateError::InvalidEntity { .. }), "{err:?}");
}

#[tokio::test]
async fn the_file_carries_format_version_1_and_per_entry_versions() {
    let f = Fixture::new().await;
    let version = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
    assert_eq!(file["format_version"], 1);
    assert_eq!(file["entries"]["state/timesheets"]["version"], version.as_str());
    assert_eq!(file["entries"]["state/timesheets"]["value"]["format_version"], 1);
    assert_eq!(f.store.describe(), format!("file {}", f.path().display()));
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_for_reads_and_writes_and_is_never_overwritten() {
    let f = Fixture::new().await;
    f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let corrupt = b"{\"format_version\": 1, \"entries\": {\"state/timesheets\": ".to_vec();
    std::fs::write(f.path(), &corrupt).unwrap();

    let read = f.store.get("timesheets").await.unwrap_err();
    assert!(matches!(read, StateError::Corrupt { ref location, .. } if location.contains("state.json")), "{read:?}");
    let write = f.store.put("timesheets", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(write, StateError::Corrupt { .. }), "{write:?}");
    let delete = f.store.delete("timesheets").await.unwrap_err();
    assert!(matches!(delete, StateError::Corrupt { .. }), "{delete:?}");
    let lease = f.store.acquire_lease("timesheets", "host:1", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(lease, StateError::Corrupt { .. }), "{lease:?}");

    assert_eq!(std::fs::read(f.path()).unwrap(), corrupt);
}

#[tokio::test]
async fn a_corrupt_entry_is_an_error_naming_the_entry() {
    let f = Fixture::new().await;
    std::fs::create_dir_all(f.path().parent().unwrap()).unwrap();
    let file = r#"{"format_version": 1, "entries": {"state/timesheets": {"version": "v", "value": {"format_version": 1, "phase": 7}}}}"#;
    std::fs::write(f.path(), file).unwrap();
    let err = f.store.get("timesheets").await.unwrap_err();
    assert!(
        matches!(err, StateError::Corrupt { ref location, .. } if location.contains("state/timesheets")),
        "{err:?}"
    );
    let err = f.store.list().await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused_and_left_untouched() {
    let f = Fixture::new().await;
    std::fs::create_dir_all(f.path().parent().unwrap()).unwrap();
    let newer = br#"{"format_version": 2, "entities": {}}"#;
    std::fs::write(f.path(), newer).unwrap();
    let err = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, supported: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("written by a newer xledger-sync"), "{err}");
    assert_eq!(std::fs::read(f.path()).unwrap(), newer);
}

#[tokio::test]
async fn a_held_lease_is_refused_to_another_holder_and_to_the_same_holder() {
    let f = Fixture::new().await;
    let lease = f.store.acquire_lease("timesheets", "host-a:1", Duration::from_secs(300)).await.unwrap();
    assert_eq!(lease.expires_at, *f.now.lock().unwrap() + chrono::TimeDelta::seconds(300));
    for holder in ["host-b:2", "host-a:1"] {
        let err = f.store.acquire_lease("timesheets", holder, Duration::from_secs(300)).await.unwrap_err();
        match err {
            StateError::LeaseHeld { entity, holder, expires_at } => {
                assert_eq!(
                    (entity.as_str(), holder.as_str(), expires_at),
                    ("timesheets", "host-a:1", lease.expires_at)
                );
            }
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn leases_of_different_entities_are_independent() {
    let f = Fixture::new().await;
    f.store.acquire_lease("timesheets", "host-a:1", Duration::from_secs(300)).await.unwrap();
    f.store.acquire_lease("projects", "host-b:2", Duration::from_secs(300)).await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_old_holder_loses_it() {
    let f = Fixture::new().await;
    let old = f.store.acquire_lease("timesheets", "crashed:1", Duration::from_secs(60)).await.unwrap();
    f.advance(Duration::from_secs(59));
    let err = f.store.acquire_lease("timesheets", "new:2", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, StateError::LeaseHeld { .. }), "{err:?}");

    f.advance(Duration::from_secs(1));
    let new = f.store.acquire_lease("timesheets", "new:2", Duration::from_secs(60)).await.unwrap();
    assert_eq!(new.holder, "new:2");

    let renew = f.store.renew_lease(&old, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(renew, StateError::LeaseLost { ref holder, .. } if holder == "crashed:1"), "{renew:?}");
    let release = f.store.release_lease(old).await.unwrap_err();
    assert!(matches!(release, StateError::LeaseLost { .. }), "{release:?}");
    // The old holder's failed release left the new lease in place.
    let err = f.store.acquire_lease("timesheets", "third:3", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, StateError::LeaseHeld { ref holder, .. } if holder == "new:2"), "{err:?}");
}

#[tokio::test]
async fn renewing_extends_the_lease_and_keeps_its_acquisition_time() {
    let f = Fixture::new().await;
    let lease = f.store.acquire_lease("timesheets", "host-a:1", Duration::from_secs(60)).await.unwrap();
    f.advance(Duration::from_secs(50));
    let renewed = f.store.renew_lease(&lease, Duration::from_secs(60)).await.unwrap();
    assert_eq!(renewed.acquired_at, lease.acquired_at);
    assert_eq!(renewed.expires_at, lease.acquired_at + chrono::TimeDelta::seconds(110));
    f.advance(Duration::from_secs(50)); // past the first expiry, before the renewed one
    let err = f.store.acquire_lease("timesheets", "host-b:2", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, StateError::LeaseHeld { .. }), "{err:?}");
    // The renewed lease is the one to renew next; the superseded one is no longer ours.
    let stale = f.store.renew_lease(&lease, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(stale, StateError::LeaseLost { .. }), "{stale:?}");
}

#[tokio::test]
async fn a_released_lease_can_be_acquired_by_another_holder_at_once() {
    let f = Fixture::new().await;
    let lease = f.store.acquire_lease("timesheets", "host-a:1", Duration::from_secs(300)).await.unwrap();
    f.store.release_lease(lease).await.unwrap();
    let next = f.store.acquire_lease("timesheets", "host-b:2", Duration::from_secs(300)).await.unwrap();
    assert_eq!(next.holder, "host-b:2");
}

#[tokio::test]
async fn resetting_state_keeps_the_lease() {
    let f = Fixture::new().await;
    f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let lease = f.store.acquire_lease("timesheets", "host-a:1", Duration::from_secs(300)).await.unwrap();
    f.store.delete("timesheets").await.unwrap();
    f.store.renew_lease(&lease, Duration::from_secs(300)).await.unwrap();
}

#[tokio::test]
async fn two_stores_on_the_same_file_see_each_others_writes() {
    let f = Fixture::new().await;
    let other = open_with_clock(&f.dir, &f.now).await;
    let version = f.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let read = other.get("timesheets").await.unwrap().unwrap();
    assert_eq!(read.version, version);
    let err = other.put("timesheets", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn a_file_url_opens_the_file_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let url = url::Url::from_file_path(&path).unwrap();
    let store = open_store(url.as_str(), StoreOptions::default()).await.unwrap();
    store.put("timesheets", &EntityState::default(), Expect::Absent).await.unwrap();
    assert!(path.exists());
}
