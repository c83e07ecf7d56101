//! The App Configuration backend against a stateful stand-in on 127.0.0.1 (`test_support::app_config`):
//! every request's HMAC signature or bearer token is checked by the stand-in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use chrono::{DateTime, TimeZone, Utc};
use sync_state::{
    Clock, EntityState, Expect, IncrementalProgress, Phase, RetryPolicy, StateError, StateStore, StoreOptions,
    open_store,
};
use test_support::app_config::{self as fake, FakeAppConfig, Fault};
use wiremock::MockServer;
use wiremock::matchers::any;

struct Fixture {
    server: MockServer,
    fake: FakeAppConfig,
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl Fixture {
    async fn start(fake: FakeAppConfig) -> Self {
        let server = MockServer::start().await;
        wiremock::Mock::given(any()).respond_with(fake.clone()).mount(&server).await;
        let now = Arc::new(Mutex::new(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()));
        Self { server, fake, now }
    }

    fn options(&self) -> StoreOptions {
        let now = Arc::clone(&self.now);
        StoreOptions {
            clock: Clock::from_fn(move || *now.lock().unwrap()),
            // No waiting between retries: the tests count attempts, they do not time them.
            retry: RetryPolicy { max_attempts: 3, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO },
            ..StoreOptions::default()
        }
    }

    fn connection_string(&self) -> String {
        format!("Endpoint={};Id={};Secret={}", self.server.uri(), fake::ID, fake::SECRET)
    }

    async fn hmac_store(&self, options: StoreOptions) -> Arc<dyn StateStore> {
        open_store(&self.connection_string(), options).await.unwrap()
    }
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
async fn put_get_and_delete_round_trip_with_signed_requests() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    assert!(store.get("timesheets").await.unwrap().is_none());
    let version = store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let read = store.get("timesheets").await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (incremental("c1"), version));
    store.delete("timesheets").await.unwrap();
    assert!(store.get("timesheets").await.unwrap().is_none());
    assert_eq!(f.fake.auth_failures(), Vec::<String>::new());
}

#[tokio::test]
async fn state_is_stored_as_json_under_the_prefix_and_label() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let options = StoreOptions { key_prefix: "sync/prod/".into(), label: Some("prod".into()), ..f.options() };
    let store = f.hmac_store(options).await;
    store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(f.fake.keys(), vec![("sync/prod/state/timesheets".to_owned(), Some("prod".to_owned()))]);
    let stored = f.fake.stored("sync/prod/state/timesheets", Some("prod")).unwrap();
    assert_eq!(stored.content_type.as_deref(), Some("application/json"));
    let value: serde_json::Value = serde_json::from_str(&stored.value).unwrap();
    assert_eq!(value["format_version"], 1);
    assert_eq!(value["phase"]["deltas_cursor"], "c1");
    assert_eq!(
        store.describe(),
        format!("App Configuration {} (prefix `sync/prod/`, label `prod`, access key)", f.server.uri())
    );
}

#[tokio::test]
async fn a_stale_etag_is_a_conflict_naming_the_entity() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    let v1 = store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    store.put("timesheets", &incremental("c2"), Expect::Version(v1.clone())).await.unwrap();
    let err = store.put("timesheets", &incremental("c3"), Expect::Version(v1)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { ref entity, .. } if entity == "timesheets"), "{err:?}");
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().value, incremental("c2"));
}

#[tokio::test]
async fn creating_over_an_existing_key_is_a_conflict() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let err = store.put("timesheets", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn list_follows_next_links_and_returns_only_states() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    for (entity, cursor) in [("projects", "p"), ("customers", "c"), ("timesheets", "t")] {
        store.put(entity, &incremental(cursor), Expect::Absent).await.unwrap();
    }
    store.acquire_lease("projects", "host:1", Duration::from_secs(60)).await.unwrap();
    f.fake.seed("other-app/state/x", None, "{}", "2025-01-01T00:00:00+00:00");
    let listed: Vec<(String, EntityState)> =
        store.list().await.unwrap().into_iter().map(|(name, v)| (name, v.value)).collect();
    assert_eq!(
        listed,
        vec![
            ("customers".to_owned(), incremental("c")),
            ("projects".to_owned(), incremental("p")),
            ("timesheets".to_owned(), incremental("t")),
        ]
    );
    let list_requests = f.fake.requests().into_iter().filter(|r| r.starts_with("GET /kv?")).count();
    assert_eq!(list_requests, 2, "three states at two per page");
}

#[tokio::test]
async fn the_old_apps_keys_read_as_incremental_from_its_cursor_until_we_write_ours() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    f.fake.seed("timesheets-initial_sync_complete", None, "True", "2024-07-11T21:17:09+00:00");
    f.fake.seed("timesheets-deltas_cursor", None, "old-cursor-42", "2024-07-12T21:17:09+00:00");
    f.fake.seed("timesheets-initial_sync_cursor", None, "items-cursor", "2024-07-11T21:00:00+00:00");
    let store = f.hmac_store(f.options()).await;

    let imported = store.get("timesheets").await.unwrap().unwrap();
    let expected = EntityState {
        phase: Phase::Incremental(IncrementalProgress {
            deltas_cursor: Some("old-cursor-42".to_owned()),
            last_success: Utc.with_ymd_and_hms(2024, 7, 12, 21, 17, 9).unwrap(),
            last_full_sync: None,
            pending: None,
            imported_from_legacy: true,
        }),
        last_run: None,
    };
    assert_eq!(imported.value, expected);
    assert!(imported.version.is_absent());

    // The engine's first write creates our key; the old keys stay as they were.
    let ours = store.put("timesheets", &incremental("new"), Expect::matching(&imported.version)).await.unwrap();
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().version, ours);
    assert_eq!(f.fake.stored("timesheets-deltas_cursor", None).unwrap().value, "old-cursor-42");
    assert_eq!(f.fake.stored("timesheets-initial_sync_complete", None).unwrap().value, "True");
}

#[tokio::test]
async fn the_old_apps_keys_are_found_under_a_legacy_alias() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    f.fake.seed("timesheet-initial_sync_complete", None, "true", "2024-07-11T21:17:09+00:00");
    f.fake.seed("timesheet-deltas_cursor", None, "alias-cursor", "2024-07-12T21:17:09+00:00");
    let options = StoreOptions {
        legacy_aliases: BTreeMap::from([("timesheets".to_owned(), vec!["timesheet".to_owned()])]),
        ..f.options()
    };
    let store = f.hmac_store(options).await;
    let imported = store.get("timesheets").await.unwrap().unwrap();
    assert!(
        matches!(imported.value.phase, Phase::Incremental(ref p) if p.deltas_cursor.as_deref() == Some("alias-cursor"))
    );
}

#[tokio::test]
async fn an_unfinished_full_load_of_the_old_app_reads_as_not_started() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    f.fake.seed("projects-initial_sync_complete", None, "false", "2024-07-11T21:17:09+00:00");
    f.fake.seed("projects-initial_sync_cursor", None, "half-way", "2024-07-11T21:17:09+00:00");
    f.fake.seed("projects-deltas_cursor", None, "head", "2024-07-11T21:17:09+00:00");
    let store = f.hmac_store(f.options()).await;
    assert!(store.get("projects").await.unwrap().is_none());
}

#[tokio::test]
async fn our_key_wins_over_the_old_apps_keys() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    f.fake.seed("timesheets-initial_sync_complete", None, "True", "2024-07-11T21:17:09+00:00");
    f.fake.seed("timesheets-deltas_cursor", None, "old", "2024-07-12T21:17:09+00:00");
    let store = f.hmac_store(f.options()).await;
    store.put("timesheets", &incremental("ours"), Expect::Absent).await.unwrap();
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().value, incremental("ours"));
}

#[tokio::test]
async fn resetting_an_imported_entity_sticks_as_not_started() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    f.fake.seed("timesheets-initial_sync_complete", None, "True", "2024-07-11T21:17:09+00:00");
    f.fake.seed("timesheets-deltas_cursor", None, "old", "2024-07-12T21:17:09+00:00");
    let store = f.hmac_store(f.options()).await;
    store.put("timesheets", &incremental("ours"), Expect::Absent).await.unwrap();
    store.delete("timesheets").await.unwrap();
    let after = store.get("timesheets").await.unwrap().unwrap();
    assert_eq!(after.value, EntityState::default());
    assert!(!after.version.is_absent());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    f.fake.fail_next([Fault::Status(429), Fault::Status(503)]);
    store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(f.fake.requests().len(), 3);
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().value, incremental("c1"));
}

#[tokio::test]
async fn retries_are_bounded_and_the_error_names_the_key_and_status() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    f.fake.fail_next([Fault::Status(500), Fault::Status(500), Fault::Status(500), Fault::Status(500)]);
    let err = store.get("timesheets").await.unwrap_err();
    assert!(
        matches!(err, StateError::Http { status: 500, ref key, .. } if key == "xledger-sync/state/timesheets"),
        "{err:?}"
    );
    assert_eq!(f.fake.requests().len(), 3, "max_attempts = 3");
}

#[tokio::test]
async fn a_retried_write_whose_first_attempt_landed_is_not_a_conflict() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    f.fake.fail_next([Fault::ApplyThenFail]);
    let version = store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().version, version);
}

#[tokio::test]
async fn a_retried_write_that_someone_else_beat_is_a_conflict() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    let v1 = store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    store.put("timesheets", &incremental("other"), Expect::Version(v1.clone())).await.unwrap();
    f.fake.fail_next([Fault::Status(503)]);
    let err = store.put("timesheets", &incremental("mine"), Expect::Version(v1)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn leases_use_etags_and_expire_by_the_injected_clock() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let store = f.hmac_store(f.options()).await;
    let first = store.acquire_lease("timesheets", "host-a:1", Duration::from_secs(60)).await.unwrap();
    assert!(f.fake.stored("xledger-sync/lease/timesheets", None).is_some());
    let err = store.acquire_lease("timesheets", "host-b:2", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, StateError::LeaseHeld { ref holder, .. } if holder == "host-a:1"), "{err:?}");

    *f.now.lock().unwrap() += chrono::TimeDelta::seconds(61);
    let second = store.acquire_lease("timesheets", "host-b:2", Duration::from_secs(60)).await.unwrap();
    let lost = store.renew_lease(&first, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(lost, StateError::LeaseLost { .. }), "{lost:?}");
    store.renew_lease(&second, Duration::from_secs(60)).await.unwrap();
    let stale = store.release_lease(second).await.unwrap_err();
    assert!(matches!(stale, StateError::LeaseLost { .. }), "the renewal superseded that lease value: {stale:?}");
}

#[tokio::test]
async fn a_value_that_is_not_json_is_corrupt_and_not_overwritten() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    f.fake.seed("xledger-sync/state/timesheets", None, "{not json", "2025-01-01T00:00:00+00:00");
    let store = f.hmac_store(f.options()).await;
    let err = store.get("timesheets").await.unwrap_err();
    assert!(
        matches!(err, StateError::Corrupt { ref location, .. } if location.contains("xledger-sync/state/timesheets")),
        "{err:?}"
    );
    let err = store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    assert_eq!(f.fake.stored("xledger-sync/state/timesheets", None).unwrap().value, "{not json");
}

#[tokio::test]
async fn a_value_from_a_newer_version_is_refused() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let newer = r#"{"format_version": 2, "phase": {"kind": "something_new"}}"#;
    f.fake.seed("xledger-sync/state/timesheets", None, newer, "2025-01-01T00:00:00+00:00");
    let store = f.hmac_store(f.options()).await;
    let err = store.get("timesheets").await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, .. }), "{err:?}");
}

#[tokio::test]
async fn the_secret_never_appears_in_describe_debug_or_errors() {
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    // A wrong secret of the right shape: the stand-in answers 401.
    let wrong_secret = "d3Jvbmctc2VjcmV0LWZvci10aGUtZmFrZQ==";
    let spec = format!("Endpoint={};Id={};Secret={wrong_secret}", f.server.uri(), fake::ID);
    let options = StoreOptions { retry: RetryPolicy { max_attempts: 1, ..f.options().retry }, ..f.options() };
    let store = open_store(&spec, options).await.unwrap();
    let err = store.get("timesheets").await.unwrap_err();
    assert!(matches!(err, StateError::Http { status: 401, .. }), "{err:?}");
    for text in [store.describe(), format!("{store:?}"), err.to_string(), format!("{err:?}")] {
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
    let f = Fixture::start(FakeAppConfig::entra()).await;
    let credential = Arc::new(FixedToken::default());
    let options = StoreOptions { credential: Some(credential.clone()), ..f.options() };
    let store = open_store(&f.server.uri(), options).await.unwrap();
    store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    assert_eq!(store.get("timesheets").await.unwrap().unwrap().value, incremental("c1"));
    assert_eq!(f.fake.auth_failures(), Vec::<String>::new());
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
    let f = Fixture::start(FakeAppConfig::hmac()).await;
    let options = StoreOptions { key_prefix: "sync/*".into(), ..f.options() };
    let err = open_store(&f.connection_string(), options).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidConfig(ref why) if why.contains("key prefix")), "{err:?}");
}
