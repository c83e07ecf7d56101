//! The current-state tables kept by the engine: after every pass each entity's Delta table equals
//! the simulator's truth, as DuckDB's delta extension and Python `deltalake` read it, every raw
//! file applied exactly once; a table the pass could not write is caught up later without a
//! request to Xledger; a folder that is not our table fails the pass by name, raw files intact.

use std::sync::Arc;

use lake_tables::{TableOptions, Tables, TablesLocation};
use lake_writer::LakeOptions;
use sync_engine::{Engine, EntityOutcome, PassStatus, TableOutcome};
use test_support::env::SimEnv;
use test_support::readers::{ExpectedTable, assert_exactly_once, assert_readers_agree};

use crate::{engine, pass, test_settings};

/// Small table files, so that a few hundred rows make several files, rewrites and compactions.
fn small_files() -> TableOptions {
    TableOptions { target_file_rows: 64, row_group_rows: 32, compact_small_files: 4, ..TableOptions::default() }
}

async fn tables(env: &SimEnv) -> Arc<Tables> {
    let location = TablesLocation::parse("current").expect("a location").expect("tables on");
    let lake = env.lake().await;
    Arc::new(Tables::open(&location, &lake, LakeOptions::default(), small_files()).await.expect("tables open"))
}

async fn engine_with_tables(env: &SimEnv) -> Engine {
    engine(env).await.with_tables(tables(env).await)
}

/// Every entity's table holds the truth for both readers, and no raw file was applied twice.
async fn assert_tables_match_truth(env: &SimEnv) {
    let entities = env.sim.entities();
    let truths: Vec<_> = entities.iter().map(|entity| env.truth(entity)).collect();
    let paths: Vec<_> = entities.iter().map(|entity| env.lake_path().join("current").join(entity.name)).collect();
    let expected: Vec<ExpectedTable<'_>> = entities
        .iter()
        .zip(&paths)
        .zip(&truths)
        .map(|((entity, path), rows)| ExpectedTable { entity, path, rows })
        .collect();
    assert_readers_agree(&expected).await;
    for (entity, path) in entities.iter().zip(&paths) {
        assert_exactly_once(path, &lake_tables::app_id(entity.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_follow_a_full_load_and_three_change_cycles() {
    let env = SimEnv::new(300, 71).await;
    let engine = engine_with_tables(&env).await;
    let first = pass(&env, &engine).await;
    assert_eq!(first.status(), PassStatus::Completed, "{}", first.render_table());
    assert!(
        first.entities.iter().all(|e| matches!(e.table, Some(TableOutcome::Applied { .. }))),
        "{}",
        first.render_table()
    );
    for cycle in 0..3u64 {
        env.sim.random_changes(250, 700 + cycle);
        let report = pass(&env, &engine).await;
        assert_eq!(report.status(), PassStatus::Completed, "cycle {cycle}: {}", report.render_table());
    }
    env.assert_lake_matches_truth().await;
    assert_tables_match_truth(&env).await;

    // Caught up: a pass that changes nothing leaves every table as it was.
    let idle = pass(&env, &engine).await;
    assert!(
        idle.entities.iter().all(|e| matches!(e.table, Some(TableOutcome::UpToDate { .. }))),
        "{}",
        idle.render_table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_files_the_tables_lack_are_applied_later_without_a_request() {
    let env = SimEnv::new(120, 72).await;
    // Passes without tables, as after a kill between the raw commit and the table commit.
    let raw_only = engine(&env).await;
    assert_eq!(pass(&env, &raw_only).await.status(), PassStatus::Completed);
    env.sim.random_changes(150, 5);
    assert_eq!(pass(&env, &raw_only).await.status(), PassStatus::Completed);
    assert!(!env.lake_path().join("current").exists(), "no table is written without tables");

    let tables = tables(&env).await;
    let before = env.sim.counters();
    let state = env.state().await;
    let holder = sync_state::LeaseHolder::current();
    let rebuilt = sync_engine::rebuild_tables(
        &env.lake().await,
        state.as_ref(),
        &tables,
        &holder,
        &test_settings(),
        &env.sim.entities(),
    )
    .await;
    assert!(rebuilt.iter().all(|(_, result)| matches!(result, Ok(Some(_)))), "{rebuilt:?}");
    assert_eq!(env.sim.counters().since(&before).http_requests, 0, "the tables come from the raw files alone");
    assert_tables_match_truth(&env).await;

    // And a pass with tables applies what they lack from then on.
    env.sim.random_changes(80, 6);
    assert_eq!(pass(&env, &raw_only).await.status(), PassStatus::Completed);
    let report = pass(&env, &engine(&env).await.with_tables(tables)).await;
    assert_eq!(report.status(), PassStatus::Completed, "{}", report.render_table());
    assert_tables_match_truth(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_is_not_our_table_fails_the_pass_by_name_and_the_raw_sync_completes() {
    let env = SimEnv::new(60, 73).await;
    let foreign = env.lake_path().join("current").join("projects");
    std::fs::create_dir_all(&foreign).expect("a folder");
    std::fs::write(foreign.join("notes.txt"), "somebody else's data").expect("a file");

    let report = pass(&env, &engine_with_tables(&env).await).await;
    assert_eq!(report.status(), PassStatus::Failed, "{}", report.render_table());
    for entity in &report.entities {
        assert_eq!(entity.outcome, EntityOutcome::Synced, "{}: the raw sync completes", entity.entity);
        match (&entity.table, entity.entity) {
            (Some(TableOutcome::Failed(why)), "projects") => {
                assert!(why.contains("projects") && why.contains("current"), "the error names the table: {why}")
            }
            (Some(TableOutcome::Applied { .. }), other) if other != "projects" => {}
            (table, name) => panic!("{name}: unexpected table outcome {table:?}"),
        }
    }
    env.assert_lake_matches_truth().await;
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).expect("left alone"), "somebody else's data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_azurite_the_tables_hold_the_truth_and_with_tables_off_nothing_is_written_there() {
    let endpoint = std::env::var("XLEDGER_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("XLEDGER_TEST_AZURITE is not set: run the Azurite tests with `cargo xtask test` (it starts Azurite)")
    });
    let env = SimEnv::new(150, 74).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let container = format!("engine{}{nanos}", std::process::id());
    let options = LakeOptions { create_container: true, azure_endpoint: Some(endpoint.clone()) };
    let lake = lake_writer::Lake::open(&format!("az://{container}/with"), options.clone()).await.expect("Azurite lake");
    let location = TablesLocation::parse("current").expect("a location").expect("tables on");
    let tables = Arc::new(Tables::open(&location, &lake, options.clone(), small_files()).await.expect("tables"));
    let engine = Engine::new(env.client(), lake.clone(), env.state().await, test_settings()).with_tables(tables);
    assert_eq!(pass(&env, &engine).await.status(), PassStatus::Completed);
    env.sim.random_changes(120, 9);
    let report = pass(&env, &engine).await;
    assert_eq!(report.status(), PassStatus::Completed, "{}", report.render_table());

    let entities = env.sim.entities();
    let truths: Vec<_> = entities.iter().map(|entity| env.truth(entity)).collect();
    let expected: Vec<_> = entities
        .iter()
        .zip(&truths)
        .map(|(entity, rows)| (*entity, format!("az://{container}/with/current/{}", entity.name), rows))
        .collect();
    test_support::readers::assert_deltalake_reads_azurite(&endpoint, &expected).await;

    // The same sync with the tables off writes raw files only.
    let other_state = tempfile::tempdir().expect("temp dir");
    let state = sync_state::open_store(
        &other_state.path().join("state.json").display().to_string(),
        sync_state::StoreOptions::default(),
    )
    .await
    .expect("state");
    let bare = lake_writer::Lake::open(&format!("az://{container}/without"), options).await.expect("Azurite lake");
    let raw_only = Engine::new(env.client(), bare.clone(), state, test_settings());
    assert_eq!(pass(&env, &raw_only).await.status(), PassStatus::Completed);
    let listed: Vec<String> = {
        use futures::TryStreamExt;
        bare.store()
            .list(Some(&bare.root()))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("a listing")
    };
    assert!(listed.iter().any(|name| name.contains("/timesheets/full_sync-")), "raw files are there: {listed:?}");
    assert!(!listed.iter().any(|name| name.contains("/current/")), "no table with --tables none: {listed:?}");
}
