//! Switching from the old Python app: its App Configuration keys (`<entity>-deltas_cursor`,
//! `<entity>-initial_sync_complete`) let `sync` continue incrementally, with no new full load.

use sync_engine::{Engine, Mode, PassStatus};
use sync_state::{Phase, StoreOptions};
use test_support::app_config as fake;
use test_support::env::SimEnv;
use xledger_model::entities;

use crate::{engine, pass, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_apps_cursors_continue_incrementally_without_a_full_load() {
    let env = SimEnv::new(150, 41).await;
    env.sim.random_changes(40, 1);

    // The lake as the old app left it (here: written by a full load into a file state), and its
    // cursors, which we copy into App Configuration under the old app's key names.
    let report = pass(&env, &engine(&env).await).await;
    assert_eq!(report.status(), PassStatus::Completed, "{}", report.render_table());
    let file_store = env.state().await;

    let server = wiremock::MockServer::start().await;
    let app_config = fake::FakeAppConfig::hmac();
    wiremock::Mock::given(wiremock::matchers::any()).respond_with(app_config.clone()).mount(&server).await;
    let last_modified = chrono::Utc::now().to_rfc3339();
    for (i, entity) in entities().iter().enumerate() {
        let Some(Phase::Incremental(p)) = file_store.get(entity.name).await.unwrap().map(|v| v.value.phase) else {
            panic!("{} is incremental after a full load", entity.name)
        };
        let cursor = p.deltas_cursor.expect("a head cursor (the feed had changes)");
        // The old app's prefix: the entity name, or the feed's singular (`timesheet`) for some.
        let name = if i % 2 == 0 {
            entity.name.to_string()
        } else {
            entity.change_feed.unwrap().field.trim_end_matches("_deltas").to_string()
        };
        app_config.seed(&format!("{name}-deltas_cursor"), None, &cursor, &last_modified);
        app_config.seed(&format!("{name}-initial_sync_complete"), None, "True", &last_modified);
        app_config.seed(&format!("{name}-initial_sync_cursor"), None, "irrelevant", &last_modified);
    }

    let connection = format!("Endpoint={};Id={};Secret={}", server.uri(), fake::ID, fake::SECRET);
    let options = StoreOptions { legacy_aliases: sync_engine::legacy_key_aliases(), ..StoreOptions::default() };
    let app_config_store = sync_state::open_store(&connection, options).await.expect("App Configuration store");
    let engine = Engine::new(env.client(), env.lake().await, app_config_store, test_settings());
    env.sim.random_changes(120, 2);
    let report = pass(&env, &engine).await;
    assert_eq!(report.status(), PassStatus::Completed, "{}", report.render_table());
    assert!(
        report.entities.iter().all(|e| matches!(e.mode, Mode::Incremental | Mode::Idle)),
        "no entity may reload in full: {}",
        report.render_table()
    );
    assert!(report.total().added + report.total().updated + report.total().deleted > 0);
    env.assert_lake_matches_truth().await;

    // Our own keys now exist beside the old ones, which are left as they were.
    let keys: Vec<String> = app_config.keys().into_iter().map(|(k, _)| k).collect();
    for entity in entities() {
        assert!(keys.iter().any(|k| k == &format!("xledger-sync/state/{}", entity.name)), "{keys:?}");
    }
    assert!(keys.iter().any(|k| k == "timesheets-deltas_cursor" || k == "timesheet-deltas_cursor"));
}
