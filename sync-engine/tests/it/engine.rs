//! Full loads, change cycles, gaps, forced loads, faults, full-only entities, leases, bad values.

use std::time::Duration;

use sync_engine::{EntityOutcome, FullLoad, Mode, PassRequest, PassStatus, Settings, StopSignal};
use test_support::env::{SimEnv, latency};
use xledger_model::entities;

use crate::{engine, engine_with, pass, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_three_change_cycles_rebuild_to_the_truth() {
    let env = SimEnv::new(400, 7).await;
    let engine = engine(&env).await;

    let first = pass(&env, &engine).await;
    assert_eq!(first.status(), PassStatus::Completed, "{}", first.render_table());
    assert!(first.entities.iter().all(|e| e.mode == Mode::Full), "{}", first.render_table());
    assert_eq!(first.total().added, 8 * 400);
    env.assert_lake_matches_truth().await;

    for cycle in 0..3u64 {
        let summary = env.sim.random_changes(300, 100 + cycle);
        let report = pass(&env, &engine).await;
        assert_eq!(report.status(), PassStatus::Completed, "cycle {cycle}: {}", report.render_table());
        assert!(
            report.entities.iter().all(|e| matches!(e.mode, Mode::Incremental | Mode::Idle)),
            "{}",
            report.render_table()
        );
        assert!(
            report.total().added + report.total().updated + report.total().deleted > 0,
            "cycle {cycle} ({summary:?}) wrote nothing"
        );
        env.assert_lake_matches_truth().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pass_costs_exactly_one_request() {
    let env = SimEnv::new(50, 3).await;
    let engine = engine(&env).await;
    assert_eq!(pass(&env, &engine).await.status(), PassStatus::Completed);

    env.sim.reset_counters();
    let idle = pass(&env, &engine).await;
    assert_eq!(idle.status(), PassStatus::Completed, "{}", idle.render_table());
    assert!(idle.entities.iter().all(|e| e.mode == Mode::Idle), "{}", idle.render_table());
    assert_eq!(env.sim.counters().http_requests, 1, "an idle pass over eight entities is one request");
    assert_eq!(idle.requests, 1);
    assert_eq!(idle.total().files, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_feed_no_longer_holds_triggers_a_full_resync() {
    let env = SimEnv::new(120, 11).await;
    let engine = engine(&env).await;
    // Some history first, so the full load starts from a real head cursor.
    env.sim.random_changes(30, 4);
    assert_eq!(pass(&env, &engine).await.status(), PassStatus::Completed);

    // Changes happen, then four days pass: the simulator drops feed entries older than three days,
    // so the saved cursor now points before what the feed holds.
    env.sim.random_changes(100, 5);
    env.sim.advance_clock(Duration::from_secs(4 * 86_400));
    env.sim.random_changes(50, 6);

    let report = pass(&env, &engine).await;
    assert_eq!(report.status(), PassStatus::Completed, "{}", report.render_table());
    assert!(report.entities.iter().any(|e| e.mode == Mode::GapResync), "{}", report.render_table());
    env.assert_lake_matches_truth().await;

    // And the chain continues incrementally afterwards.
    env.sim.random_changes(40, 8);
    let next = pass(&env, &engine).await;
    assert!(next.entities.iter().all(|e| matches!(e.mode, Mode::Incremental | Mode::Idle)), "{}", next.render_table());
    env.assert_lake_matches_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_success_older_than_the_retention_window_triggers_a_full_resync() {
    let env = SimEnv::new(60, 12).await;
    assert_eq!(pass(&env, &engine(&env).await).await.status(), PassStatus::Completed);

    // A day later, with a feed that keeps an hour: the saved cursor may point at dropped entries.
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let settings = Settings { delta_retention: Duration::from_secs(3600), ..test_settings() };
    let later = engine_with(&env, settings).await.with_clock(sync_state::Clock::from_fn(move || tomorrow));
    let report = pass(&env, &later).await;
    assert_eq!(report.status(), PassStatus::Completed, "{}", report.render_table());
    assert!(report.entities.iter().all(|e| e.mode == Mode::GapResync), "{}", report.render_table());
    env.assert_lake_matches_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_full_sync_starts_a_newer_complete_load() {
    let env = SimEnv::new(80, 13).await;
    let engine = engine(&env).await;
    assert_eq!(pass(&env, &engine).await.status(), PassStatus::Completed);
    env.sim.random_changes(60, 2);
    let request = PassRequest { entities: entities().iter().collect(), full_load: FullLoad::Forced };
    let report = engine.run_pass(request, StopSignal::new(None)).await;
    assert!(report.entities.iter().all(|e| e.mode == Mode::Full), "{}", report.render_table());
    env.assert_lake_matches_truth().await;
    let lake = env.lake().await;
    let manifests = lake.list("timesheets").await.unwrap().into_iter().filter(|f| f.is_manifest).count();
    assert_eq!(manifests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_storm_changes_nothing_in_the_result() {
    use xledger_sim::{Fault, FaultPlan};
    let env = SimEnv::new(300, 17).await;
    let client = env.client_with(|config| config.max_in_flight = 3);
    let settings = Settings { entity_concurrency: 4, ..test_settings() };
    let engine = sync_engine::Engine::new(client, env.lake().await, env.state().await, settings);
    let storm = FaultPlan::default()
        .with_probability(0.06, 1, Fault::BurstRateLimit)
        .with_probability(0.06, 2, Fault::ConcurrencyLimit)
        .with_probability(0.04, 3, Fault::InsufficientCredits { reset_after: Duration::from_millis(200) })
        .with_probability(0.04, 4, Fault::QueryTimeout)
        .with_probability(0.05, 5, Fault::HttpStatus { status: 503 })
        .with_probability(0.03, 6, Fault::HttpStatus { status: 500 })
        .with_probability(0.05, 7, Fault::TruncatedBody)
        .with_probability(0.03, 8, Fault::AbortedBody)
        .concurrency_limit(2);
    env.sim.set_faults(storm);

    let first = pass(&env, &engine).await;
    assert_eq!(first.status(), PassStatus::Completed, "{}", first.render_table());
    env.assert_lake_matches_truth().await;
    let mut retries = first.retries;
    for cycle in 0..3u64 {
        env.sim.random_changes(200, 40 + cycle);
        let report = pass(&env, &engine).await;
        assert_eq!(report.status(), PassStatus::Completed, "cycle {cycle}: {}", report.render_table());
        env.assert_lake_matches_truth().await;
        retries += report.retries;
    }
    assert!(retries > 0, "the storm must have caused retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_without_a_change_feed_is_loaded_in_full_on_every_pass() {
    // The registry entry a query file without a deltas operation produces (see xledger-model's
    // ninth-entity test), here for `projects` so the simulator serves it.
    let projects = xledger_model::entity("projects").unwrap();
    let full_only: &'static xledger_model::EntitySpec =
        Box::leak(Box::new(xledger_model::EntitySpec { change_feed: None, webhook: None, ..*projects }));
    assert!(!full_only.has_change_feed());

    let env = SimEnv::new(90, 19).await;
    let engine = engine(&env).await;
    let request = || PassRequest::sync(vec![full_only]);

    let first = engine.run_pass(request(), StopSignal::new(None)).await;
    assert_eq!(first.status(), PassStatus::Completed, "{}", first.render_table());
    assert_eq!(first.entities[0].mode, Mode::Full);

    env.sim.random_changes(80, 3);
    env.sim.reset_counters();
    let second = engine.run_pass(request(), StopSignal::new(None)).await;
    assert_eq!(second.status(), PassStatus::Completed, "{}", second.render_table());
    assert_eq!(second.entities[0].mode, Mode::FullOnly);
    assert_eq!(second.entities[0].counts.added as usize, env.sim.truth("projects").unwrap().len());
    assert!(env.sim.counters().by_root_field.keys().all(|field| !field.ends_with("_deltas")), "no feed is read");

    let lake = env.lake().await;
    let rebuilt = lake_writer::rebuild::current_state(&lake, full_only).await.unwrap();
    assert_eq!(rebuilt.len(), env.sim.truth("projects").unwrap().len());
    let manifests = lake.list("projects").await.unwrap().into_iter().filter(|f| f.is_manifest).count();
    assert_eq!(manifests, 2, "each pass is a complete run with its manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_renewed_during_a_long_pass_are_released_at_its_end() {
    let env = SimEnv::new(600, 23).await;
    // Renewals every 100 ms during a pass of a second or more: the leases released at the end
    // must be the renewed ones, or they stay held until they expire.
    env.sim.set_faults(latency(Duration::from_millis(20)));
    let settings = Settings { lease_ttl: Duration::from_millis(300), lease_wait: Duration::ZERO, ..test_settings() };
    let engine = engine_with(&env, settings).await;
    let first = pass(&env, &engine).await;
    assert_eq!(first.status(), PassStatus::Completed, "{}", first.render_table());
    assert!(first.duration > Duration::from_millis(400), "the pass outlived several renewals");

    let second = pass(&env, &engine).await;
    assert_eq!(second.status(), PassStatus::Completed, "no lease may still be held: {}", second.render_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_mid_load_fails_the_entity_by_name_and_the_load_resumes_once_fixed() {
    let env = SimEnv::new(1000, 11).await;
    let engine = engine(&env).await;
    // Row 621 of 1 000: on the seventh 100-row page, after two parts were committed (a part is
    // finished once it holds 250 rows or more: after three pages).
    let truth = env.sim.truth("timesheets").expect("a simulated entity");
    let db_id: i64 = truth[620]["dbId"].as_str().and_then(|id| id.parse().ok()).expect("timesheet dbIds are strings");
    assert!(
        env.sim.corrupt("timesheets", db_id, "workingHours", serde_json::json!("7.1234567")).expect("the field exists")
    );
    assert!(
        env.sim.corrupt("timesheets", db_id, "workingHours.x", serde_json::json!(1)).is_err(),
        "a path through a string"
    );
    assert!(
        !env.sim.corrupt("timesheets", 1, "workingHours", serde_json::json!(1)).expect("a known entity"),
        "no such row"
    );

    let first = pass(&env, &engine).await;
    assert_eq!(first.status(), PassStatus::Failed, "{}", first.render_table());
    for report in &first.entities {
        match (&report.outcome, report.entity) {
            (EntityOutcome::Failed(message), "timesheets") => {
                for part in ["timesheets", &db_id.to_string(), "workingHours", "7.1234567"] {
                    assert!(message.contains(part), "the error names {part:?}: {message}");
                }
            }
            (EntityOutcome::Synced, entity) if entity != "timesheets" => {}
            (outcome, entity) => panic!("{entity}: {outcome}"),
        }
    }
    // Only whole committed parts are visible: no staging file, no manifest for the unfinished load.
    let folder = env.lake_path().join("timesheets");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .expect("the folder")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "two committed 300-row parts and nothing else: {names:?}");
    assert!(names.iter().all(|n| n.starts_with("full_sync-") && n.ends_with(".parquet")), "{names:?}");

    // The row is fixed at the source: the next pass resumes after the committed parts.
    assert!(env.sim.update("timesheets", db_id));
    let second = pass(&env, &engine).await;
    assert_eq!(second.status(), PassStatus::Completed, "{}", second.render_table());
    let timesheets = second.entities.iter().find(|e| e.entity == "timesheets").expect("timesheets ran");
    assert_eq!((timesheets.mode, timesheets.counts.added), (Mode::Resumed, 400), "{}", second.render_table());
    env.assert_lake_matches_truth().await;
}
