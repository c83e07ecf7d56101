//! What every [`StateStore`] backend must do, run against each: the file backend on a temporary file and
//! the App Configuration backend on its stand-in. Each test is written once, as a function of an
//! [`Env`]; `conformance!` at the bottom instantiates it per backend (`conformance::file::…`,
//! `conformance::app_configuration::…`).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use sync_state::{
    Acquired, EntityState, Expect, LeaseHolder, Phase, PidScope, ProcessStart, ProcessStatus, ReplacedLease,
    StateError, TakeoverReason, UsageDelta, UsageMonth, Version,
};

use crate::support::{Env, THIS_HOST, incremental, remote, this_scope};

const TTL: Duration = Duration::from_secs(120);

fn endpoint() -> url::Url {
    url::Url::parse("https://www.xledger.net/graphql").unwrap()
}

fn pass(requests: u64) -> UsageDelta {
    UsageDelta { requests, bytes_received: requests * 1_000, bytes_sent: requests * 100, passes: 1 }
}

/// The holder named in a `LeaseHeld` error, or a panic naming what came instead.
fn held_by(result: Result<Acquired, StateError>) -> LeaseHolder {
    match result {
        Err(StateError::LeaseHeld { holder, .. }) => *holder,
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
}

// --- state: compare-and-swap, create-only, delete, list ---

async fn a_state_put_when_absent_reads_back_with_its_version(env: Env) {
    assert!(env.store.get("timesheets").await.unwrap().is_none());
    let version = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let read = env.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (incremental("c1"), version));
}

async fn a_put_with_the_current_version_replaces_and_changes_the_version(env: Env) {
    let v1 = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let v2 = env.store.put("timesheets", &incremental("c2"), Expect::Version(v1.clone())).await.unwrap();
    assert_ne!(v1, v2);
    let read = env.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (incremental("c2"), v2));
}

async fn a_put_with_a_stale_version_is_a_conflict_naming_the_entity_and_changes_nothing(env: Env) {
    let v1 = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let v2 = env.store.put("timesheets", &incremental("c2"), Expect::Version(v1.clone())).await.unwrap();
    let err = env.store.put("timesheets", &incremental("c3"), Expect::Version(v1)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { ref entity, .. } if entity == "timesheets"), "{err:?}");
    assert!(err.to_string().contains(&env.store.describe()), "the store is named: {err}");
    let read = env.store.get("timesheets").await.unwrap().unwrap();
    assert_eq!((read.value, read.version), (incremental("c2"), v2));
}

async fn a_create_over_an_existing_state_is_a_conflict(env: Env) {
    env.store.put("projects", &incremental("c1"), Expect::Absent).await.unwrap();
    let err = env.store.put("projects", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { ref expected, .. } if expected == "no state"), "{err:?}");
    assert_eq!(env.store.get("projects").await.unwrap().unwrap().value, incremental("c1"));
}

async fn expecting_the_absent_version_creates_like_expect_absent(env: Env) {
    env.store.put("projects", &incremental("c1"), Expect::Version(Version::absent())).await.unwrap();
    assert_eq!(env.store.get("projects").await.unwrap().unwrap().value, incremental("c1"));
    let err = env.store.put("projects", &incremental("c2"), Expect::Version(Version::absent())).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
}

async fn a_deleted_state_reads_as_absent_and_a_stale_writer_cannot_recreate_it(env: Env) {
    let old = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    env.store.delete("timesheets").await.unwrap();
    assert!(env.store.get("timesheets").await.unwrap().is_none());
    // A writer still holding the version from before the reset must not win.
    let err = env.store.put("timesheets", &incremental("stale"), Expect::Version(old)).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    env.store.put("timesheets", &EntityState::default(), Expect::Absent).await.unwrap();
    assert_eq!(env.store.get("timesheets").await.unwrap().unwrap().value, EntityState::default());
}

async fn deleting_an_absent_state_succeeds(env: Env) {
    env.store.delete("timesheets").await.unwrap();
    assert!(env.store.get("timesheets").await.unwrap().is_none());
}

async fn list_returns_every_stored_state_by_name_and_no_leases_or_usage(env: Env) {
    for (entity, cursor) in [("projects", "p"), ("customers", "c"), ("timesheets", "t")] {
        env.store.put(entity, &incremental(cursor), Expect::Absent).await.unwrap();
    }
    env.store.acquire_lease("accounts", &remote(1), TTL).await.unwrap();
    env.store.record_usage(&endpoint(), env.now(), pass(1)).await.unwrap();
    let listed: Vec<(String, EntityState)> =
        env.store.list().await.unwrap().into_iter().map(|(name, v)| (name, v.value)).collect();
    assert_eq!(
        listed,
        vec![
            ("customers".to_owned(), incremental("c")),
            ("projects".to_owned(), incremental("p")),
            ("timesheets".to_owned(), incremental("t")),
        ]
    );
}

async fn listed_versions_are_the_versions_to_write_with(env: Env) {
    env.store.put("projects", &incremental("p"), Expect::Absent).await.unwrap();
    let (_, listed) = env.store.list().await.unwrap().remove(0);
    env.store.put("projects", &incremental("p2"), Expect::Version(listed.version)).await.unwrap();
}

async fn an_entity_name_that_is_not_a_plain_identifier_is_refused(env: Env) {
    for entity in ["time/sheets", "", "a*b", "tïme"] {
        let err = env.store.get(entity).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidEntity { .. }), "{entity}: {err:?}");
        let err = env.store.put(entity, &EntityState::default(), Expect::Absent).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidEntity { .. }), "{entity}: {err:?}");
        let err = env.store.acquire_lease(entity, &remote(1), TTL).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidEntity { .. }), "{entity}: {err:?}");
    }
}

async fn two_stores_on_the_same_backing_see_each_others_writes(env: Env) {
    let other = env.open(env.options()).await;
    let version = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let read = other.get("timesheets").await.unwrap().unwrap();
    assert_eq!(read.version, version);
    let err = other.put("timesheets", &incremental("c2"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    other.put("timesheets", &incremental("c2"), Expect::Version(read.version)).await.unwrap();
    assert_eq!(env.store.get("timesheets").await.unwrap().unwrap().value, incremental("c2"));
}

// --- format versions and records the store cannot read ---

async fn a_state_is_stored_with_format_version_1_and_its_schema_fingerprint(env: Env) {
    env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let raw = env.raw("state/timesheets").unwrap();
    assert_eq!(raw["format_version"], 1);
    assert_eq!(raw["phase"]["kind"], "incremental");
    assert_eq!(raw["phase"]["deltas_cursor"], "c1");
    assert_eq!(raw["phase"]["schema_fingerprint"], "fingerprint-1");
}

async fn a_state_written_before_fingerprints_reads_with_none(env: Env) {
    env.seed_raw(
        "state/timesheets",
        json!({"format_version": 1, "last_run": null, "phase": {
            "kind": "incremental", "deltas_cursor": "c", "last_success": "2025-03-01T11:00:00Z",
            "last_full_sync": "20250301_10_00_00", "pending": null, "imported_from_legacy": false
        }}),
    );
    let read = env.store.get("timesheets").await.unwrap().unwrap();
    let Phase::Incremental(progress) = read.value.phase else { panic!("incremental: {:?}", read.value) };
    assert_eq!(progress.schema_fingerprint, None);
    assert_eq!(progress.deltas_cursor.as_deref(), Some("c"));
}

async fn a_state_from_a_newer_format_is_refused_and_left_untouched(env: Env) {
    let newer = json!({"format_version": 2, "phase": {"kind": "something_new"}});
    env.seed_raw("state/timesheets", newer.clone());
    let err = env.store.get("timesheets").await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, supported: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("written by a newer xledger-sync"), "{err}");
    let err = env.store.list().await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { .. }), "{err:?}");
    let err = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    assert_eq!(env.raw("state/timesheets"), Some(newer));
}

async fn a_malformed_state_is_corrupt_naming_its_key_and_left_untouched(env: Env) {
    let malformed = json!({"format_version": 1, "phase": 7});
    env.seed_raw("state/timesheets", malformed.clone());
    let err = env.store.get("timesheets").await.unwrap_err();
    assert!(
        matches!(err, StateError::Corrupt { ref location, .. } if location.contains("state/timesheets")),
        "{err:?}"
    );
    let err = env.store.list().await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    let err = env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
    assert_eq!(env.raw("state/timesheets"), Some(malformed));
}

// --- leases: the TTL rule ---

async fn a_held_lease_is_refused_to_another_holder_and_to_the_same_holder(env: Env) {
    let (a, b) = (remote(1), remote(2));
    let Acquired { lease, replaced } =
        env.store.acquire_lease("timesheets", &a, Duration::from_secs(300)).await.unwrap();
    assert_eq!(replaced, None);
    assert_eq!((lease.entity.as_str(), &lease.holder), ("timesheets", &a));
    assert_eq!(lease.acquired_at, env.now());
    assert_eq!(lease.expires_at, env.now() + chrono::TimeDelta::seconds(300));
    for asking in [&b, &a] {
        let err = env.store.acquire_lease("timesheets", asking, TTL).await.unwrap_err();
        match err {
            StateError::LeaseHeld { ref entity, ref holder, expires_at } => {
                assert_eq!((entity.as_str(), holder.as_ref(), expires_at), ("timesheets", &a, lease.expires_at));
                assert!(err.to_string().contains(&a.to_string()), "the holder is named: {err}");
            }
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
    }
}

async fn leases_of_different_entities_are_independent(env: Env) {
    env.store.acquire_lease("timesheets", &remote(1), TTL).await.unwrap();
    env.store.acquire_lease("projects", &remote(2), TTL).await.unwrap();
}

async fn an_expired_lease_is_taken_over_and_its_old_holder_loses_it(env: Env) {
    let old = env.store.acquire_lease("timesheets", &remote(1), Duration::from_secs(60)).await.unwrap().lease;
    env.advance(Duration::from_secs(59));
    assert_eq!(held_by(env.store.acquire_lease("timesheets", &remote(2), TTL).await), remote(1));

    env.advance(Duration::from_secs(1));
    let new = env.store.acquire_lease("timesheets", &remote(2), Duration::from_secs(60)).await.unwrap();
    assert_eq!(new.lease.holder, remote(2));
    assert_eq!(
        new.replaced,
        Some(ReplacedLease { holder: remote(1), expires_at: old.expires_at, reason: TakeoverReason::Expired })
    );

    let renew = env.store.renew_lease(&old, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(renew, StateError::LeaseLost { ref holder, .. } if **holder == remote(1)), "{renew:?}");
    let release = env.store.release_lease(old).await.unwrap_err();
    assert!(matches!(release, StateError::LeaseLost { .. }), "{release:?}");
    // The old holder's failed release left the new lease in place.
    assert_eq!(held_by(env.store.acquire_lease("timesheets", &remote(3), TTL).await), remote(2));
}

async fn renewing_extends_the_lease_and_keeps_its_acquisition_time(env: Env) {
    let lease = env.store.acquire_lease("timesheets", &remote(1), Duration::from_secs(60)).await.unwrap().lease;
    env.advance(Duration::from_secs(50));
    let renewed = env.store.renew_lease(&lease, Duration::from_secs(60)).await.unwrap();
    assert_eq!(renewed.acquired_at, lease.acquired_at);
    assert_eq!(renewed.expires_at, lease.acquired_at + chrono::TimeDelta::seconds(110));
    env.advance(Duration::from_secs(50)); // past the first expiry, before the renewed one
    held_by(env.store.acquire_lease("timesheets", &remote(2), TTL).await);
    // The renewed lease is the one to renew next; the superseded one is no longer ours.
    let stale = env.store.renew_lease(&lease, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(stale, StateError::LeaseLost { .. }), "{stale:?}");
    let stale = env.store.release_lease(lease).await.unwrap_err();
    assert!(matches!(stale, StateError::LeaseLost { .. }), "{stale:?}");
    env.store.renew_lease(&renewed, Duration::from_secs(60)).await.unwrap();
}

async fn a_released_lease_can_be_acquired_by_another_holder_at_once(env: Env) {
    let lease = env.store.acquire_lease("timesheets", &remote(1), Duration::from_secs(300)).await.unwrap().lease;
    env.store.release_lease(lease).await.unwrap();
    let next = env.store.acquire_lease("timesheets", &remote(2), Duration::from_secs(300)).await.unwrap();
    assert_eq!((next.lease.holder, next.replaced), (remote(2), None));
}

async fn resetting_state_keeps_the_lease(env: Env) {
    env.store.put("timesheets", &incremental("c1"), Expect::Absent).await.unwrap();
    let lease = env.store.acquire_lease("timesheets", &remote(1), Duration::from_secs(300)).await.unwrap().lease;
    env.store.delete("timesheets").await.unwrap();
    env.store.renew_lease(&lease, Duration::from_secs(300)).await.unwrap();
}

async fn a_lease_is_stored_with_format_version_1_and_its_holders_identity(env: Env) {
    let holder = env.probe.start(4242, 987_654);
    env.store.acquire_lease("timesheets", &holder, TTL).await.unwrap();
    let raw = env.raw("lease/timesheets").unwrap();
    assert_eq!(raw["format_version"], 1);
    assert_eq!(
        raw["holder"],
        json!({
            "host": THIS_HOST, "pid": 4242, "instance": "local4242",
            "start": {"boot_id": "boot-a", "pid_namespace": "pid:[4026531836]", "ticks": 987_654}
        })
    );
    assert_eq!(raw["expires_at"], json!("2025-03-01T12:02:00Z"));
}

// --- leases: holders on this machine that died ---

async fn a_live_local_holder_keeps_its_lease(env: Env) {
    let holder = env.probe.start(100, 5_000);
    env.store.acquire_lease("timesheets", &holder, TTL).await.unwrap();
    let other = env.probe.start(200, 6_000);
    assert_eq!(held_by(env.store.acquire_lease("timesheets", &other, TTL).await), holder);
}

async fn a_local_holder_whose_process_is_gone_is_taken_over_at_once(env: Env) {
    let crashed = env.probe.start(100, 5_000);
    let old = env.store.acquire_lease("timesheets", &crashed, TTL).await.unwrap().lease;
    env.probe.set(100, ProcessStatus::Gone);
    let next = env.probe.start(200, 6_000);
    let acquired = env.store.acquire_lease("timesheets", &next, TTL).await.unwrap();
    assert_eq!(acquired.lease.holder, next);
    let replaced = acquired.replaced.unwrap();
    assert_eq!(
        replaced,
        ReplacedLease { holder: crashed, expires_at: old.expires_at, reason: TakeoverReason::HolderGone }
    );
    assert!(replaced.reason.holder_died());
    assert_eq!(replaced.to_string(), "`this-host:100:local100` (process 100 no longer exists)");
    // The dead holder's lease is gone for good: had it only been stopped, it cannot carry on.
    let err = env.store.renew_lease(&old, TTL).await.unwrap_err();
    assert!(matches!(err, StateError::LeaseLost { .. }), "{err:?}");
    assert_eq!(held_by(env.store.acquire_lease("timesheets", &env.probe.start(300, 7_000), TTL).await), next);
}

async fn a_local_holder_whose_pid_was_reused_is_taken_over_at_once(env: Env) {
    let crashed = env.probe.start(100, 5_000);
    env.store.acquire_lease("timesheets", &crashed, TTL).await.unwrap();
    // The holder died and a later process got its pid.
    env.probe.set(100, ProcessStatus::Running { start_ticks: 9_000 });
    let next = env.probe.start(200, 9_500);
    let acquired = env.store.acquire_lease("timesheets", &next, TTL).await.unwrap();
    let replaced = acquired.replaced.unwrap();
    assert_eq!(replaced.reason, TakeoverReason::PidReused { recorded_ticks: 5_000, current_ticks: 9_000 });
    assert_eq!(replaced.holder, crashed);
    assert!(replaced.to_string().contains("pid 100 now belongs to a process started at tick 9000"), "{replaced}");
}

async fn a_remote_holder_keeps_its_lease_until_it_expires(env: Env) {
    // Pid 7 is free here, which says nothing about pid 7 on the other host.
    env.probe.set(7, ProcessStatus::Gone);
    let far = remote(7);
    env.store.acquire_lease("timesheets", &far, Duration::from_secs(60)).await.unwrap();
    let local = env.probe.start(200, 6_000);
    assert_eq!(held_by(env.store.acquire_lease("timesheets", &local, TTL).await), far);
    env.advance(Duration::from_secs(60));
    let acquired = env.store.acquire_lease("timesheets", &local, TTL).await.unwrap();
    assert_eq!(acquired.replaced.map(|r| r.reason), Some(TakeoverReason::Expired));
}

async fn a_local_holder_the_probe_cannot_judge_waits_for_its_ttl(env: Env) {
    env.probe.set(100, ProcessStatus::Gone);
    let recorded = |boot: &str, namespace: &str| {
        Some(ProcessStart {
            scope: PidScope { boot_id: boot.to_owned(), pid_namespace: namespace.to_owned() },
            ticks: 5_000,
        })
    };
    let mut unjudgeable = vec![
        ("an unknown start", LeaseHolder { host: THIS_HOST.into(), pid: 100, start: None, instance: "a".into() }),
        (
            "another boot (or another machine of the same name)",
            LeaseHolder {
                host: THIS_HOST.into(),
                pid: 100,
                start: recorded("boot-0", "pid:[4026531836]"),
                instance: "b".into(),
            },
        ),
        (
            "another pid namespace",
            LeaseHolder {
                host: THIS_HOST.into(),
                pid: 100,
                start: recorded("boot-a", "pid:[4026532000]"),
                instance: "c".into(),
            },
        ),
    ];
    // A pid the probe cannot inspect (no permission, no /proc).
    env.probe.set(101, ProcessStatus::Unknown);
    unjudgeable.push((
        "a pid the probe cannot see",
        LeaseHolder {
            host: THIS_HOST.into(),
            pid: 101,
            start: Some(ProcessStart { scope: this_scope(), ticks: 1 }),
            instance: "d".into(),
        },
    ));
    let asking = env.probe.start(200, 6_000);
    for (i, (case, holder)) in unjudgeable.into_iter().enumerate() {
        let entity = format!("entity{i}");
        env.store.acquire_lease(&entity, &holder, Duration::from_secs(60)).await.unwrap();
        assert_eq!(held_by(env.store.acquire_lease(&entity, &asking, TTL).await), holder, "{case}");
    }
    env.advance(Duration::from_secs(60));
    for i in 0..4 {
        let acquired = env.store.acquire_lease(&format!("entity{i}"), &asking, TTL).await.unwrap();
        assert_eq!(acquired.replaced.map(|r| r.reason), Some(TakeoverReason::Expired), "entity{i}");
    }
}

async fn of_two_stores_taking_over_a_dead_holders_lease_one_wins(env: Env) {
    let crashed = env.probe.start(100, 5_000);
    env.store.acquire_lease("timesheets", &crashed, TTL).await.unwrap();
    env.probe.set(100, ProcessStatus::Gone);
    let other_store = env.open(env.options()).await;
    let (a, b) = (env.probe.start(200, 6_000), env.probe.start(300, 6_100));
    let (first, second) =
        tokio::join!(env.store.acquire_lease("timesheets", &a, TTL), other_store.acquire_lease("timesheets", &b, TTL));
    let (winner, loser_saw) = match (first, second) {
        (Ok(won), lost) => (won, held_by(lost)),
        (lost, Ok(won)) => (won, held_by(lost)),
        (a, b) => panic!("nobody won: {a:?} / {b:?}"),
    };
    assert_eq!(winner.replaced.map(|r| r.holder), Some(crashed));
    assert_eq!(loser_saw, winner.lease.holder);
}

async fn a_lease_written_by_an_older_build_reads_its_holder_and_waits_for_its_ttl(env: Env) {
    // Older builds stored the holder as `host:pid:random`, with no start time: never judged dead.
    env.probe.set(4242, ProcessStatus::Gone);
    env.seed_raw(
        "lease/timesheets",
        json!({
            "format_version": 1, "holder": "this-host:4242:feedbeef",
            "acquired_at": "2025-03-01T11:59:00Z", "expires_at": "2025-03-01T12:01:00Z"
        }),
    );
    let asking = env.probe.start(200, 6_000);
    let legacy = LeaseHolder { host: THIS_HOST.into(), pid: 4242, start: None, instance: "feedbeef".into() };
    assert_eq!(held_by(env.store.acquire_lease("timesheets", &asking, TTL).await), legacy);
    env.advance(Duration::from_secs(60));
    let acquired = env.store.acquire_lease("timesheets", &asking, TTL).await.unwrap();
    let expected = ReplacedLease {
        holder: legacy,
        expires_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 1, 0).unwrap(),
        reason: TakeoverReason::Expired,
    };
    assert_eq!(acquired.replaced, Some(expected));
}

async fn a_lease_with_an_unreadable_holder_is_corrupt_and_left_untouched(env: Env) {
    let odd = json!({
        "format_version": 1, "holder": "child-0",
        "acquired_at": "2025-03-01T11:59:00Z", "expires_at": "2025-03-01T12:01:00Z"
    });
    env.seed_raw("lease/timesheets", odd.clone());
    let err = env.store.acquire_lease("timesheets", &remote(1), TTL).await.unwrap_err();
    assert!(
        matches!(err, StateError::Corrupt { ref location, ref detail } if location.contains("lease/timesheets") && detail.contains("child-0")),
        "{err:?}"
    );
    assert_eq!(env.raw("lease/timesheets"), Some(odd));
}

async fn a_lease_from_a_newer_format_is_refused_and_left_untouched(env: Env) {
    let newer = json!({"format_version": 2, "holders": []});
    env.seed_raw("lease/timesheets", newer.clone());
    let err = env.store.acquire_lease("timesheets", &remote(1), TTL).await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, .. }), "{err:?}");
    assert_eq!(env.raw("lease/timesheets"), Some(newer));
}

// --- usage records (the budget meter) ---

async fn usage_is_summed_per_endpoint_and_month(env: Env) {
    let march = |day, hour| Utc.with_ymd_and_hms(2025, 3, day, hour, 0, 0).unwrap();
    let demo = url::Url::parse("https://demo.xledger.net/graphql").unwrap();
    let first = env.store.record_usage(&endpoint(), march(2, 10), pass(3)).await.unwrap();
    assert_eq!((first.requests, first.passes), (3, 1));
    let total = env.store.record_usage(&endpoint(), march(2, 9), pass(2)).await.unwrap();
    env.store.record_usage(&demo, march(3, 0), pass(7)).await.unwrap();
    env.store.record_usage(&endpoint(), Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap(), pass(11)).await.unwrap();

    let read = env.store.usage(&endpoint(), UsageMonth::new(2025, 3).unwrap()).await.unwrap().unwrap();
    assert_eq!(read, total);
    assert_eq!((read.endpoint.as_str(), read.month.to_string().as_str()), ("www.xledger.net", "2025-03"));
    assert_eq!((read.requests, read.bytes_received, read.bytes_sent, read.passes), (5, 5_000, 500, 2));
    assert_eq!((read.first_pass_at, read.last_pass_at), (Some(march(2, 9)), Some(march(2, 10))));
    assert_eq!(read.budget_warned_at, None);
    let april = env.store.usage(&endpoint(), UsageMonth::new(2025, 4).unwrap()).await.unwrap().unwrap();
    assert_eq!(april.requests, 11);
    let demo_march = env.store.usage(&demo, UsageMonth::new(2025, 3).unwrap()).await.unwrap().unwrap();
    assert_eq!(demo_march.requests, 7);
    assert_eq!(env.store.usage(&endpoint(), UsageMonth::new(2025, 5).unwrap()).await.unwrap(), None);
}

async fn usage_records_are_keyed_by_host_and_month_and_hold_no_credentials(env: Env) {
    let with_userinfo = url::Url::parse("https://user:hunter2@API.example:8443/graphql?key=hunter2").unwrap();
    env.store.record_usage(&with_userinfo, env.now(), pass(1)).await.unwrap();
    let raw = env.raw("usage/api.example:8443/2025-03").unwrap();
    assert_eq!(raw["format_version"], 1);
    assert_eq!(raw["endpoint"], "api.example:8443");
    assert_eq!(raw["month"], "2025-03");
    assert_eq!(raw["requests"], 1);
    assert!(!raw.to_string().contains("hunter2"), "{raw}");
}

async fn concurrent_usage_updates_lose_no_count(env: Env) {
    const STORES: u64 = 4;
    const UPDATES: u64 = 8;
    let mut stores = vec![env.store.clone()];
    for _ in 1..STORES {
        stores.push(env.open(env.options()).await);
    }
    let updates = stores.iter().flat_map(|store| {
        (0..UPDATES).map(|_| async { store.record_usage(&endpoint(), env.now(), pass(1)).await.unwrap() })
    });
    futures::future::join_all(updates).await;
    let total = env.store.usage(&endpoint(), UsageMonth::of(env.now())).await.unwrap().unwrap();
    assert_eq!((total.requests, total.passes), (STORES * UPDATES, STORES * UPDATES));
}

async fn a_budget_warning_is_claimed_once_per_interval_and_month(env: Env) {
    let day = Duration::from_secs(24 * 3600);
    let at = |d, h| Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap();
    env.store.record_usage(&endpoint(), at(2, 8), pass(4)).await.unwrap();
    assert!(env.store.claim_budget_warning(&endpoint(), at(2, 10), day).await.unwrap());
    assert!(!env.store.claim_budget_warning(&endpoint(), at(3, 9), day).await.unwrap(), "23 h later");
    assert!(env.store.claim_budget_warning(&endpoint(), at(3, 10), day).await.unwrap(), "24 h later");
    let march = env.store.usage(&endpoint(), UsageMonth::new(2025, 3).unwrap()).await.unwrap().unwrap();
    assert_eq!(march.budget_warned_at, Some(at(3, 10)));
    assert_eq!((march.requests, march.passes), (4, 1), "claiming changes no count");
    // A new month has its own record: its first claim succeeds, and creates the record.
    let april = Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap();
    assert!(env.store.claim_budget_warning(&endpoint(), april, day).await.unwrap());
    let record = env.store.usage(&endpoint(), UsageMonth::of(april)).await.unwrap().unwrap();
    assert_eq!((record.requests, record.passes, record.budget_warned_at), (0, 0, Some(april)));
}

async fn of_concurrent_budget_warning_claims_one_wins(env: Env) {
    let other = env.open(env.options()).await;
    let (day, endpoint) = (Duration::from_secs(24 * 3600), endpoint());
    let (a, b) = tokio::join!(
        env.store.claim_budget_warning(&endpoint, env.now(), day),
        other.claim_budget_warning(&endpoint, env.now(), day)
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort();
    assert_eq!(outcomes, [false, true]);
}

async fn a_usage_record_from_a_newer_format_is_refused_and_left_untouched(env: Env) {
    let newer = json!({"format_version": 2, "endpoint": "www.xledger.net", "buckets": []});
    env.seed_raw("usage/www.xledger.net/2025-03", newer.clone());
    let err = env.store.record_usage(&endpoint(), env.now(), pass(1)).await.unwrap_err();
    assert!(matches!(err, StateError::NewerFormat { found: 2, .. }), "{err:?}");
    let err = env.store.usage(&endpoint(), UsageMonth::of(env.now())).await.unwrap_err();
    assert!(
        matches!(err, StateError::NewerFormat { ref location, .. } if location.contains("usage/www.xledger.net/2025-03")),
        "{err:?}"
    );
    assert_eq!(env.raw("usage/www.xledger.net/2025-03"), Some(newer));
}

async fn an_endpoint_without_a_host_is_refused_for_usage(env: Env) {
    let hostless = url::Url::parse("data:text/plain,secret-ish").unwrap();
    let err = env.store.record_usage(&hostless, env.now(), pass(1)).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidConfig(ref why) if !why.contains("secret-ish")), "{err:?}");
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::support::Env::file().await).await;
                }
            )*
        }
        mod app_configuration {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::support::Env::app_config().await).await;
                }
            )*
        }
    };
}

conformance!(
    a_state_put_when_absent_reads_back_with_its_version,
    a_put_with_the_current_version_replaces_and_changes_the_version,
    a_put_with_a_stale_version_is_a_conflict_naming_the_entity_and_changes_nothing,
    a_create_over_an_existing_state_is_a_conflict,
    expecting_the_absent_version_creates_like_expect_absent,
    a_deleted_state_reads_as_absent_and_a_stale_writer_cannot_recreate_it,
    deleting_an_absent_state_succeeds,
    list_returns_every_stored_state_by_name_and_no_leases_or_usage,
    listed_versions_are_the_versions_to_write_with,
    an_entity_name_that_is_not_a_plain_identifier_is_refused,
    two_stores_on_the_same_backing_see_each_others_writes,
    a_state_is_stored_with_format_version_1_and_its_schema_fingerprint,
    a_state_written_before_fingerprints_reads_with_none,
    a_state_from_a_newer_format_is_refused_and_left_untouched,
    a_malformed_state_is_corrupt_naming_its_key_and_left_untouched,
    a_held_lease_is_refused_to_another_holder_and_to_the_same_holder,
    leases_of_different_entities_are_independent,
    an_expired_lease_is_taken_over_and_its_old_holder_loses_it,
    renewing_extends_the_lease_and_keeps_its_acquisition_time,
    a_released_lease_can_be_acquired_by_another_holder_at_once,
    resetting_state_keeps_the_lease,
    a_lease_is_stored_with_format_version_1_and_its_holders_identity,
    a_live_local_holder_keeps_its_lease,
    a_local_holder_whose_process_is_gone_is_taken_over_at_once,
    a_local_holder_whose_pid_was_reused_is_taken_over_at_once,
    a_remote_holder_keeps_its_lease_until_it_expires,
    a_local_holder_the_probe_cannot_judge_waits_for_its_ttl,
    of_two_stores_taking_over_a_dead_holders_lease_one_wins,
    a_lease_written_by_an_older_build_reads_its_holder_and_waits_for_its_ttl,
    a_lease_with_an_unreadable_holder_is_corrupt_and_left_untouched,
    a_lease_from_a_newer_format_is_refused_and_left_untouched,
    usage_is_summed_per_endpoint_and_month,
    usage_records_are_keyed_by_host_and_month_and_hold_no_credentials,
    concurrent_usage_updates_lose_no_count,
    a_budget_warning_is_claimed_once_per_interval_and_month,
    of_concurrent_budget_warning_claims_one_wins,
    a_usage_record_from_a_newer_format_is_refused_and_left_untouched,
    an_endpoint_without_a_host_is_refused_for_usage,
);
