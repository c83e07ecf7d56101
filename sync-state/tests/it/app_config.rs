//! What is particular to the App Configuration backend, against its stand-in on 127.0.0.1
//! (`test_support::app_config`), which checks every request's HMAC signature or bearer token: keys under
//! the prefix and label, paged lists, the old app's keys, retries, authentication, and secrets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use chrono::{TimeZone, Utc};
use sync_state::{
    EntityState, Expect, IncrementalProgress, Phase, RetryPolicy, StateError, StoreOptions, UsageDelta, UsageMonth,
    open_store,
};
use test_support::app_config::{self as fake, FakeAppConfig, Fault};

use crate::support::{Env, incremental, remote};

fn endpoint() -> url::Url {
    url::Url::parse("https://www.xledger.net/graphql").unwrap()
}

#[tokio::test]
async fn put_get_and_delete_round_trip_with_signed_requests() {
    let env = Env::app_config().await;
    assert!(env.store.get("timesheets").await.unwrap().is_none());
    let version = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let read = env.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (incremental("c1"), version));
    env.store.delete("timesheets").await.unwrap();
    assert!(env.store.get("timesheets").await.unwrap().is_none());
    assert_eq!(env.fake().auth_failures(), Vec::<String>::new());
    assert!(!env.fake().requests().is_empty());
}

#[tokio::test]
async fn every_record_is_stored_as_json_under_the_prefix_and_label() {
    let env = Env::app_config().await;
    let options = StoreOptions { key_prefix: "sync/prod/".into(), label: Some("prod".into()), ..env.options() };
    let store = env.open(options).await;
    store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    store.acquire_lease("timesheets", &remote(1), Duration::from_secs(60)).await.unwrap();
    store.record_usage(&endpoint(), env.now(), UsageDelta { requests: 1, ..UsageDelta::default() }).await.unwrap();
    let label = Some("prod".to_owned());
    assert_eq!(
        env.fake().keys(),
        vec![
            ("sync/prod/lease/timesheets".to_owned(), label.clone()),
            ("sync/prod/state/timesheets".to_owned(), label.clone()),
            ("sync/prod/usage/www.xledger.net/2025-03".to_owned(), label),
        ]
    );
    for key in ["sync/prod/state/timesheets", "sync/prod/lease/timesheets", "sync/prod/usage/www.xledger.net/2025-03"] {
        let stored = env.fake().stored(key, Some("prod")).unwrap();
        assert_eq!(stored.content_type.as_deref(), Some("application/json"), "{key}");
        let value: serde_json::Value = serde_json::from_str(&stored.value).unwrap();
        assert_eq!(value["format_version"], 1, "{key}");
    }
    let usage = store.usage(&endpoint(), UsageMonth::of(env.now())).await.unwrap().unwrap();
    assert_eq!(usage.requests, 1);
    assert_eq!(
        store.describe(),
        format!("App Configuration {} (prefix `sync/prod/`, label `prod`, access key)", env.server_uri())
    );
}

#[tokio::test]
async fn list_follows_next_links_and_returns_only_our_states() {
    let env = Env::app_config().await;
    for (entity, cursor) in [("projects", "p"), ("customers", "c"), ("timesheets", "t")] {
        env.store.put(entity, &incremental(cursor), Expect::Absent).await.unwrap();
    }
    env.fake().seed("other-app/state/x", None, "{}", "2025-01-01T00:00:00+00:00");
    env.fake().seed("xledger-sync/state/labelled", Some("prod"), "{}", "2025-01-01T00:00:00+00:00");
    let names: Vec<String> = env.store.list().await.unwrap().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["customers", "projects", "timesheets"]);
    let list_requests = env.fake().requests().into_iter().filter(|r| r.starts_with("GET /kv?")).count();
    assert_eq!(list_requests, 2, "three states at two per page");
}

#[tokio::test]
async fn the_old_apps_keys_read_as_incremental_from_its_cursor_until_we_write_ours() {
    let env = Env::app_config().await;
    let fake = env.fake();
    fake.seed("timesheets-initial_sync_complete", None, "True", "2024-07-11T21:17:09+00:00");
    fake.seed("timesheets-deltas_cursor", None, "old-cursor-42", "2024-07-12T21:17:09+00:00");
    fake.seed("timesheets-initial_sync_cursor", None, "items-cursor", "2024-07-11T21:00:00+00:00");

    let imported = env.store.get("timesheets").await.unwrap().unwrap();
    let expected = EntityState {
        phase: Phase::Incremental(IncrementalProgress {
            deltas_cursor: Some("old-cursor-42".to_owned()),
            last_success: Utc.with_ymd_and_hms(2024, 7, 12, 21, 17, 9).unwrap(),
            last_full_sync: None,
            pending: None,
            imported_from_legacy: true,
            // The old app's load has the seed schema; the engine treats "not recorded" as that.
            schema_fingerprint: None,
        }),
        last_run: None,
    };
    assert_eq!(imported.value, expected);
    assert!(imported.version.is_absent());

    // The engine's first write creates our key; the old keys stay as they were.
    let ours = env.store.put("timesheets", &incremental("new"), Expect::matching(&imported.version)).await.unwrap();
    assert_eq!(env.store.get("timesheets").await.unwrap().unwrap().version, ours);
    assert_eq!(fake.stored("timesheets-deltas_cursor", None).unwrap().value, "old-cursor-42");
    assert_eq!(fake.stored("timesheets-initial_sync_complete", None).unwrap().value, "True");
}

#[tokio::test]
async fn the_old_apps_keys_are_found_under_a_legacy_alias() {
    let env = Env::app_config().await;
    env.fake().seed("timesheet-initial_sync_complete", None, "true", "2024-07-11T21:17:09+00:00");
    env.fake().seed("timesheet-deltas_cursor", None, "alias-cursor", "2024-07-12T21:17:09+00:00");
    let options = StoreOptions {
        legacy_aliases: BTreeMap::from([("timesheets".to_owned(), vec!["timesheet".to_owned()])]),
        ..env.options()
    };
    let store = env.open(options).await;
    let imported = store.get("timesheets").await.unwrap().unwrap();
    assert!(
        matches!(imported.value.phase, Phase::Incremental(ref p) if p.deltas_cursor.as_deref() == Some("alias-cursor"))
    );
}

#[tokio::test]
async fn an_unfinished_full_load_of_the_old_app_reads_as_not_started() {
    let env = Env::app_config().await;
    env.fake().seed("projects-initial_sync_complete", None, "false", "2024-07-11T21:17:09+00:00");
    env.fake().seed("projects-initial_sync_cursor", None, "half-way", "2024-07-11T21:17:09+00:00");
    env.fake().seed("projects-deltas_cursor", None, "head", "2024-07-11T21:17:09+00:00");
    assert!(env.store.get("projects").await.unwrap().is_none());
}

#[tokio::test]
async fn our_key_wins_over_the_old_apps_keys() {
    let env = Env::app_config().await;
    env.fake().seed("timesheets-initial_sync_complete", None, "True", "2024-07-11T21:17:09+00:00");
    env.fake().seed("timesheets-deltas_cursor", None, "old", "2024-07-12T21:17:09+00:00");
    env.store.put("timesheets", &incremental("ours"), Expect::Absent).await.unwrap();
    assert_eq!(env.store.get("timesheets").await.unwrap().unwrap().value, incremental("ours"));
}

#[tokio::test]
async fn resetting_an_imported_entity_sticks_as_not_started() {
    let env = Env::app_config().await;
    env.fake().seed("timesheets-initial_sync_complete", None, "True", "2024-07-11T21:17:09+00:00");
    env.fake().seed("timesheets-deltas_cursor", None, "old", "2024-07-12T21:17:09+00:00");
    env.store.put("timesheets", &incremental("ours"), Expect::Absent).await.unwrap();
    env.store.delete("timesheets").await.unwrap();
    let after = env.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!(after.value, EntityState::default());
    assert!(!after.version.is_absent());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let env = Env::app_config().await;
    env.fake().fail_next([Fault::Status(429), Fault::Status(503)]);
    env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(env.fake().requests().len(), 3);
    assert_eq!(env.store.get("timesheets").await.unwrap().unwrap().value, incremental("c1"));
}

#[tokio::test]
async fn retries_are_bounded_and_the_error_names_the_key_and_status() {
    let env = Env::app_config().await;
    env.fake().fail_next([Fault::Status(500), Fault::Status(500), Fault::Status(500), Fault::Status(500)]);
    let err = env.store.get("timesheets").await.unwrap_err();
    assert!(
        matches!(err, StateError::Http { status: 500, ref key, .. } if key == "xledger-sync/state/timesheets"),
        "{err:?}"
    );
    assert_eq!(env.fake().requests().len(), 3, "max_attempts = 3");
}

#[tokio::test]
async fn a_retried_write_whose_first_attempt_landed_is_not_a_conflict() {
    let env = Env::app_config().await;
    env.fake().fail_next([Fault::ApplyThenFail]);
    let version = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(env.store.get("timesheets").await.unwrap().unwrap().version, version);
}

#[tokio::test]
async fn a_retried_write_that_someone_else_beat_is_a_conflict() {
    let env = Env::app_config().await;
    let v1 = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    env.store.put("timesheets", &incremental("other"), Expect::Version(v1.clone())).await.unwrap();
    env.fake().fail_next([Fault::Status(503)]);
    let err = env.store.put("timesheets", &incremental("mine"), Expect::Version(v1)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn a_usage_update_whose_response_was_lost_counts_once() {
    let env = Env::app_config().await;
    let pass = UsageDelta { requests: 3, bytes_received: 30, bytes_sent: 3, passes: 1 };
    env.store.record_usage(&endpoint(), env.now(), pass).await.unwrap();
    // The GET reading the record passes; the PUT lands but its answer is lost.
    env.fake().fail_next([Fault::Pass, Fault::ApplyThenFail]);
    let after = env.store.record_usage(&endpoint(), env.now(), pass).await.unwrap();
    assert_eq!((after.requests, after.passes), (6, 2));
    let stored = env.store.usage(&endpoint(), UsageMonth::of(env.now())).await.unwrap().unwrap();
    assert_eq!(stored, after);
}

#[tokio::test]
async fn a_value_that_is_not_json_is_corrupt_and_not_overwritten() {
    let env = Env::app_config().await;
    env.fake().seed("xledger-sync/state/timesheets", None, "{not json", "2025-01-01T00:00:00+00:00");
    let err = env.store.get("timesheets").await.unwrap_err();
    assert!(
        matches!(err, StateError::Corrupt { ref location, .. } if location.contains("xledger-sync/state/timesheets")),
        "{err:?}"
    );
    let err = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    assert_eq!(env.fake().stored("xledger-sync/state/timesheets", None).unwrap().value, "{not json");
}

#[tokio::test]
async fn the_secret_never_appears_in_describe_debug_or_errors() {
    let env = Env::app_config().await;
    // A wrong secret of the right shape: the stand-in answers 401.
    let wrong_secret = "d3Jvbmctc2VjcmV0LWZvci10aGUtZmFrZQ==";
    let spec = format!("Endpoint={};Id={};Secret={wrong_secret}", env.server_uri(), fake::ID);
    let options = StoreOptions { retry: RetryPolicy { max_attempts: 1, ..env.options().retry }, ..env.options() };
    let store = open_store(&spec, options).await.unwrap();
    let err = store.get("timesheets").await.unwrap_err();
    assert!(matches!(err, StateError::Http { status: 401, .. }), "{err:?}");
    let usage_err = store.record_usage(&endpoint(), env.now(), UsageDelta::default()).await.unwrap_err();
    for text in [store.describe(), format!("{store:?}"), err.to_string(), format!("{err:?}"), usage_err.to_string()] {
        assert!(!text.contains(wrong_secret) && !text.contains("wrong-secret"), "leaked: {text}");
    }
}

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback() {
    for spec in ["http://example.azconfig.io", "Endpoint=http://example.azconfig.io;Id=a;Secret=c2VjcmV0"] {
        let err = open_store(spec, StoreOptions::default()).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidConfig(ref why) if why.contains("plain http")), "{spec}: {err:?}");
    }
}

/// A credential that hands out one fixed token and counts how often it was asked.
#[derive(Debug, Default)]
struct FixedToken {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(&self, scopes: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://azconfig.io/.default"]);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let expires = azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(AccessToken::new(fake::BEARER, expires))
    }
}

#[tokio::test]
async fn an_endpoint_url_authenticates_with_an_entra_token_fetched_once() {
    let env = Env::with(Env::app_config_backing(FakeAppConfig::entra()).await).await;
    let credential = Arc::new(FixedToken::default());
    let options = StoreOptions { credential: Some(credential.clone()), ..env.options() };
    let store = open_store(&env.server_uri(), options).await.unwrap();
    store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().value, incremental("c1"));
    assert_eq!(env.fake().auth_failures(), Vec::<String>::new());
    assert_eq!(credential.calls.load(Ordering::SeqCst), 1, "the token is cached until near expiry");
    assert!(store.describe().ends_with("Entra ID)"), "{}", store.describe());
}

#[tokio::test]
async fn an_endpoint_url_without_a_credential_opens_with_the_default_chain_and_contacts_nothing() {
    let store = open_store("https://example.azconfig.io", StoreOptions::default()).await.unwrap();
    assert_eq!(
        store.describe(),
        "App Configuration https://example.azconfig.io (prefix `xledger-sync/`, label none, Entra ID)"
    );
}

#[tokio::test]
async fn a_prefix_with_filter_characters_is_refused() {
    let env = Env::app_config().await;
    let options = StoreOptions { key_prefix: "sync/*".into(), ..env.options() };
    let err = open_store(&env.spec(), options).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidConfig(ref why) if why.contains("key prefix")), "{err:?}");
}
