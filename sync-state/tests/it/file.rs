//! What is particular to the file backend: its document format, and refusing to touch a file it
//! cannot read as a whole.

use std::time::Duration;

use sync_state::{EntityState, Expect, StateError, StoreOptions, UsageDelta, open_store};

use crate::support::{Env, incremental, remote};

#[tokio::test]
async fn the_file_carries_format_version_1_and_per_entry_versions() {
    let env = Env::file().await;
    let version = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(env.file_path()).unwrap()).unwrap();
    assert_eq!(file["format_version"], 1);
    assert_eq!(file["entries"]["state/timesheets"]["version"], version.as_str());
    assert_eq!(file["entries"]["state/timesheets"]["value"]["format_version"], 1);
    assert_eq!(env.store.describe(), format!("file {}", env.file_path().display()));
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_for_reads_and_writes_and_is_never_overwritten() {
    let env = Env::file().await;
    env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let corrupt = b"{\"format_version\": 1, \"entries\": {\"state/timesheets\": ".to_vec();
    std::fs::write(env.file_path(), &corrupt).unwrap();

    let read = env.store.get("timesheets").await.unwrap_err();
    assert!(matches!(read, StateError::Corrupt { ref location, .. } if location.contains("state.json")), "{read:?}");
    let write = env.store.put("timesheets", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(write, StateError::Corrupt { .. }), "{write:?}");
    let delete = env.store.delete("timesheets").await.unwrap_err();
    assert!(matches!(delete, StateError::Corrupt { .. }), "{delete:?}");
    let lease = env.store.acquire_lease("timesheets", &remote(1), Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(lease, StateError::Corrupt { .. }), "{lease:?}");
    let endpoint = url::Url::parse("https://www.xledger.net/graphql").unwrap();
    let usage = env.store.record_usage(&endpoint, env.now(), UsageDelta::default()).await.unwrap_err();
    assert!(matches!(usage, StateError::Corrupt { .. }), "{usage:?}");

    assert_eq!(std::fs::read(env.file_path()).unwrap(), corrupt);
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused_and_left_untouched() {
    let env = Env::file().await;
    std::fs::create_dir_all(env.file_path().parent().unwrap()).unwrap();
    let newer = br#"{"format_version": 2, "entities": {}}"#;
    std::fs::write(env.file_path(), newer).unwrap();
    let err = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, supported: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("written by a newer xledger-sync"), "{err}");
    let err = env.store.get("timesheets").await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { .. }), "{err:?}");
    assert_eq!(std::fs::read(env.file_path()).unwrap(), newer);
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
