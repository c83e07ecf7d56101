//! Scenarios on a local lake: the table equals the rebuild of the raw files after every step.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lake_tables::{Clock, RunRecord, TableError, TableOptions, Tables, TablesLocation};
use lake_writer::{Lake, LakeOptions};
use object_store::path::Path;
use xledger_model::{ColumnKind, ColumnSpec, EntitySpec};

use crate::faults::{FailMode, FaultStore};
use crate::support::*;

async fn assert_table_equals_rebuild(env: &Env, entity: &'static EntitySpec, when: &str) {
    let expected = expected(&env.lake, entity).await;
    let actual = table_rows(&env.lake, &format!("current/{}", entity.name), entity).await;
    assert_eq!(actual.len(), expected.len(), "{}: {when}: row count", entity.name);
    assert!(actual == expected, "{}: {when}: the table differs from the rebuild of the raw files", entity.name);
}

#[tokio::test]
async fn every_entity_full_load_change_cycles_and_a_second_full_load() {
    let env = env(small_files()).await;
    for entity in xledger_model::entities() {
        let mut raw = RawWriter::new(env.lake.clone(), entity);
        let ids: Vec<i64> = (1..=300).collect();
        raw.full(&ids, 1, 3).await;
        let first = env.tables.catch_up(&env.lake, entity).await.expect("catch up the full load");
        assert_eq!(first.applied.len(), 1, "{}: the full load is one commit", entity.name);
        assert_table_equals_rebuild(&env, entity, "after the full load").await;

        // Three change cycles: updates, adds, deletes; dbId 7 changes in every one.
        raw.changes(&[updates([7, 8, 150, 299], 2), adds([301, 302], 2), deletes([9])].concat()).await;
        env.tables.catch_up(&env.lake, entity).await.expect("cycle 1");
        assert_table_equals_rebuild(&env, entity, "after cycle 1").await;
        raw.changes(&[updates([7, 301], 3), deletes([8, 150]), adds([400], 3)].concat()).await;
        raw.changes(&[updates([7], 4), deletes([301, 1, 300])].concat()).await;
        let both = env.tables.catch_up(&env.lake, entity).await.expect("cycles 2 and 3");
        assert_eq!(both.applied.len(), 2, "{}: two change files, two commits", entity.name);
        assert_table_equals_rebuild(&env, entity, "after cycle 3").await;

        // A second full load replaces everything; then a change on top of it.
        let second: Vec<i64> = (1000..1200).collect();
        let manifest = raw.full(&second, 5, 2).await;
        raw.changes(&[updates([1005], 6), deletes([1100])].concat()).await;
        let replaced = env.tables.catch_up(&env.lake, entity).await.expect("second full load");
        assert_eq!(replaced.applied.first(), Some(&manifest), "{}", entity.name);
        assert_table_equals_rebuild(&env, entity, "after the second full load").await;

        // Caught up: nothing more to do, and the version stays.
        let version = replaced.version;
        let again = env.tables.catch_up(&env.lake, entity).await.expect("idempotent");
        assert!(again.applied.is_empty(), "{}: {:?}", entity.name, again.applied);
        assert_eq!(again.version, version);
        assert_exactly_once(env.dir.path(), &format!("current/{}", entity.name), entity.name);

        let batches = read_table(&env.lake, &format!("current/{}", entity.name)).await;
        let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
        let mut want: Vec<String> = entity.columns.iter().map(|c| c.name.to_string()).collect();
        want.push("_synced_at".into());
        assert_eq!(names, want, "{}: the raw columns in order, then _synced_at", entity.name);
        for (field, column) in batches[0].schema().fields().iter().zip(entity.columns) {
            assert_eq!(field.data_type(), &column.kind.arrow_type(), "{}: {}", entity.name, column.name);
        }

        let status = env.tables.status(entity).await.expect("status").expect("a table");
        assert_eq!(status.rows, 199);
        assert_eq!(status.version, version.expect("a version"));
        assert!(status.last_applied.as_deref().is_some_and(|n| n.starts_with("sync_changes-")));
        assert_eq!(status.full_load.as_deref(), Some(manifest.as_str()));
    }
    crate::readers::assert_readers_agree(&env, xledger_model::entities()).await;
}

#[tokio::test]
async fn a_caught_up_table_is_a_no_op_that_reads_no_data_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::open(dir.path().to_str().expect("utf-8"), LakeOptions::default()).await.expect("lake");
    let entity = xledger_model::entity("timesheets").expect("timesheets");
    let mut raw = RawWriter::new(lake.clone(), entity);
    raw.full(&(1..=200).collect::<Vec<_>>(), 1, 1).await;
    raw.changes(&updates([5, 6], 2)).await;
    let store = FaultStore::new(lake.store(), Path::from("current"), FailMode::Before);
    let tables =
        Tables::from_store(store.clone(), Path::from("current"), "test".into(), small_files()).expect("tables");
    let caught_up = tables.catch_up(&lake, entity).await.expect("catch up");
    assert_eq!(caught_up.applied.len(), 2);
    let writes = store.writes();
    store.data_reads.store(0, Ordering::SeqCst);
    let again = tables.catch_up(&lake, entity).await.expect("again");
    assert!(again.applied.is_empty());
    assert_eq!(again.version, caught_up.version);
    assert_eq!(store.data_reads.load(Ordering::SeqCst), 0, "a caught-up table reads no data file");
    assert_eq!(store.writes(), writes, "a caught-up table writes nothing");
}

/// Builds a lake with a table caught up to a full load and two change files, then two more change
/// files that add rows at the end (so compaction is due) — the work a faulty catch_up must do.
async fn crash_setup(mode: FailMode) -> (tempfile::TempDir, Lake, Arc<FaultStore>, Tables, &'static EntitySpec) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::open(dir.path().to_str().expect("utf-8"), LakeOptions::default()).await.expect("lake");
    let entity = xledger_model::entity("timesheets").expect("timesheets");
    let store = FaultStore::new(lake.store(), Path::from("current"), mode);
    let options = TableOptions { compact_small_files: 3, checkpoint_interval: 3, ..small_files() };
    let tables = Tables::from_store(store.clone(), Path::from("current"), "test".into(), options).expect("tables");
    let mut raw = RawWriter::new(lake.clone(), entity);
    raw.full(&(1..=256).collect::<Vec<_>>(), 1, 2).await;
    raw.changes(&[updates([3, 100], 2), adds([257, 258], 2)].concat()).await;
    raw.changes(&[adds([259, 260], 3), deletes([4])].concat()).await;
    tables.catch_up(&lake, entity).await.expect("setup catch up");
    raw.changes(&[updates([3, 259], 4), adds([261, 262, 263], 4), deletes([100])].concat()).await;
    raw.changes(&[updates([3, 5, 250], 5), adds([264], 5)].concat()).await;
    (dir, lake, store, tables, entity)
}

async fn crash_at_every_write(mode: FailMode) {
    let mut n = 1;
    let mut compaction_seen = false;
    loop {
        let (dir, lake, store, tables, entity) = crash_setup(mode).await;
        store.fail_at(n);
        let faulty = tables.catch_up(&lake, entity).await;
        let died = store.died();
        store.fail_at(0);
        let clean =
            tables.catch_up(&lake, entity).await.unwrap_or_else(|e| panic!("{mode:?} write {n}: clean catch up: {e}"));
        let expected = expected(&lake, entity).await;
        let actual = table_rows(&lake, "current/timesheets", entity).await;
        assert!(actual == expected, "{mode:?} crash at write {n}: the table differs from the rebuild");
        assert_exactly_once(dir.path(), "current/timesheets", entity.name);
        if !died {
            let report = faulty.unwrap_or_else(|e| panic!("{mode:?}: no fault injected at {n} but {e}"));
            compaction_seen |= report.files_compacted > 0;
            assert!(clean.applied.is_empty());
            assert!(n > 3, "the sweep covered only {n} writes");
            eprintln!("{mode:?}: a crash at each of the {} writes of the catch_up was mended", n - 1);
            break;
        }
        if mode == FailMode::Before {
            assert!(faulty.is_err(), "{mode:?} write {n}: the crash was not reported");
        }
        n += 1;
    }
    assert!(compaction_seen, "the catch_up under test compacts, so the sweep crashed during compaction too");
}

#[tokio::test]
async fn a_crash_before_any_write_is_mended_by_the_next_catch_up() {
    crash_at_every_write(FailMode::Before).await;
}

#[tokio::test]
async fn a_crash_after_any_write_is_mended_by_the_next_catch_up() {
    crash_at_every_write(FailMode::After).await;
}

#[tokio::test]
async fn a_folder_that_is_not_a_delta_table_is_refused_by_name() {
    let env = env(small_files()).await;
    let entity = xledger_model::entity("customers").expect("customers");
    RawWriter::new(env.lake.clone(), entity).full(&[1, 2, 3], 1, 1).await;
    let folder = env.dir.path().join("current/customers");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("notes.txt"), "mine").expect("file");
    let error = env.tables.catch_up(&env.lake, entity).await.expect_err("a foreign folder");
    assert!(matches!(error, TableError::ForeignTable { .. }), "{error}");
    assert!(error.to_string().contains("current/customers"), "{error}");
    assert!(error.needs_operator());
}

#[tokio::test]
async fn a_delta_table_of_another_writer_is_refused() {
    let env = env(small_files()).await;
    let entity = xledger_model::entity("customers").expect("customers");
    RawWriter::new(env.lake.clone(), entity).full(&[1, 2, 3], 1, 1).await;
    let log = env.dir.path().join("current/customers/_delta_log");
    std::fs::create_dir_all(&log).expect("log");
    let schema = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#;
    let lines = [
        serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        serde_json::json!({"metaData": {"id": "x", "format": {"provider": "parquet", "options": {}},
            "schemaString": schema, "partitionColumns": [], "configuration": {}, "createdTime": 0}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(log.join("00000000000000000000.json"), body).expect("log entry");
    let error = env.tables.catch_up(&env.lake, entity).await.expect_err("a foreign table");
    assert!(matches!(error, TableError::ForeignTable { .. }), "{error}");
    assert!(error.to_string().contains("another tool"), "{error}");
}

#[tokio::test]
async fn a_table_ahead_of_the_raw_files_is_refused_and_rebuild_mends_it() {
    let env = env(small_files()).await;
    let entity = xledger_model::entity("projects").expect("projects");
    let mut raw = RawWriter::new(env.lake.clone(), entity);
    raw.full(&(1..=50).collect::<Vec<_>>(), 1, 1).await;
    raw.changes(&updates([1, 2], 2)).await;
    let last = raw.changes(&deletes([3])).await;
    env.tables.catch_up(&env.lake, entity).await.expect("catch up");
    std::fs::remove_file(env.dir.path().join(entity.name).join(&last)).expect("delete a raw file");
    let error = env.tables.catch_up(&env.lake, entity).await.expect_err("ahead");
    assert!(matches!(error, TableError::AheadOfRawFiles { .. }), "{error}");
    assert!(error.to_string().contains("xledger-sync tables rebuild"), "{error}");
    let rebuilt = env.tables.rebuild(&env.lake, entity).await.expect("rebuild");
    assert_eq!(rebuilt.applied.len(), 2, "the full load and the one change file left");
    assert_table_equals_rebuild(&env, entity, "after rebuild").await;
    assert!(env.tables.catch_up(&env.lake, entity).await.expect("caught up").applied.is_empty());
}

struct FixedClock(chrono::DateTime<chrono::Utc>);

impl Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

#[tokio::test]
async fn vacuum_deletes_removed_files_only_after_the_retention() {
    let env = env(small_files()).await;
    let entity = xledger_model::entity("timesheets").expect("timesheets");
    let mut raw = RawWriter::new(env.lake.clone(), entity);
    raw.full(&(1..=200).collect::<Vec<_>>(), 1, 1).await;
    env.tables.catch_up(&env.lake, entity).await.expect("catch up");
    raw.changes(&updates(1..=200, 2)).await;
    env.tables.catch_up(&env.lake, entity).await.expect("catch up");
    raw.full(&(1..=100).collect::<Vec<_>>(), 3, 1).await;
    env.tables.catch_up(&env.lake, entity).await.expect("catch up");
    let data_files = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("current/timesheets"))
            .expect("table dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".parquet")))
            .count()
    };
    let before = data_files(env.dir.path());
    let live = env.tables.status(entity).await.expect("status").expect("table").files as usize;
    assert!(before > live, "removed files are still there: {before} files, {live} live");
    assert_eq!(env.tables.vacuum(entity).await.expect("vacuum within retention"), 0);
    assert_eq!(data_files(env.dir.path()), before);

    let later =
        TableOptions { clock: Arc::new(FixedClock(chrono::Utc::now() + chrono::Duration::days(8))), ..small_files() };
    let location = TablesLocation::parse("current").expect("location").expect("some");
    let tables = Tables::open(&location, &env.lake, LakeOptions::default(), later).await.expect("tables");
    let deleted = tables.vacuum(entity).await.expect("vacuum after retention");
    assert_eq!(deleted as usize, before - live);
    assert_eq!(data_files(env.dir.path()), live);
    assert_table_equals_rebuild(&env, entity, "after vacuum").await;
}

#[tokio::test]
async fn small_files_are_compacted_into_clustered_files() {
    let options = TableOptions { compact_small_files: 4, ..small_files() };
    let env = env(options).await;
    let entity = xledger_model::entity("timesheets").expect("timesheets");
    let mut raw = RawWriter::new(env.lake.clone(), entity);
    raw.full(&(1..=128).collect::<Vec<_>>(), 1, 1).await;
    env.tables.catch_up(&env.lake, entity).await.expect("full");
    let mut compacted = 0;
    for cycle in 0..6 {
        let first = 129 + cycle * 5;
        raw.changes(&adds(first..first + 5, 2)).await;
        compacted += env.tables.catch_up(&env.lake, entity).await.expect("cycle").files_compacted;
    }
    assert!(compacted >= 4, "compacted {compacted} files");
    let status = env.tables.status(entity).await.expect("status").expect("table");
    // Two full files, one compacted file of four tails, and the two tails since.
    assert!(status.files <= 5, "{} files after compaction", status.files);
    assert_table_equals_rebuild(&env, entity, "after compaction").await;
}

#[tokio::test]
async fn a_change_to_the_newest_rows_rewrites_only_the_last_file() {
    let options = TableOptions { target_file_rows: 1000, row_group_rows: 500, ..TableOptions::default() };
    let env = env(options).await;
    let entity = xledger_model::entity("timesheets").expect("timesheets");
    let mut raw = RawWriter::new(env.lake.clone(), entity);
    raw.full(&(1..=10_000).collect::<Vec<_>>(), 1, 2).await;
    env.tables.catch_up(&env.lake, entity).await.expect("full");
    let total = env.tables.status(entity).await.expect("status").expect("table").bytes;
    raw.changes(&[updates(9_951..=10_000, 2), adds(10_001..=10_050, 2)].concat()).await;
    let newest = env.tables.catch_up(&env.lake, entity).await.expect("newest");
    assert!(newest.bytes_rewritten * 100 <= total * 12, "rewrote {} of {total} bytes", newest.bytes_rewritten);
    assert!(newest.bytes_rewritten > 0);
    raw.changes(&updates((1..=10_000).step_by(500), 3)).await;
    let spread = env.tables.catch_up(&env.lake, entity).await.expect("spread");
    assert!(
        spread.bytes_rewritten * 10 >= total * 9,
        "uniform changes rewrite nearly all: {} of {total}",
        spread.bytes_rewritten
    );
    assert_table_equals_rebuild(&env, entity, "after bounded rewrites").await;
}

/// `timesheets` without its last `drop` columns and with another fingerprint: the build before a
/// field was added to the query file.
fn timesheets_without_last(drop: usize) -> &'static EntitySpec {
    let real = xledger_model::entity("timesheets").expect("timesheets");
    let columns: Vec<ColumnSpec> = real.columns[..real.columns.len() - drop].to_vec();
    Box::leak(Box::new(EntitySpec {
        columns: Box::leak(columns.into_boxed_slice()),
        fingerprint: "older-build",
        ..*real
    }))
}

#[tokio::test]
async fn a_full_load_with_added_columns_evolves_the_schema_in_one_commit() {
    let env = env(small_files()).await;
    let older = timesheets_without_last(2);
    let real = xledger_model::entity("timesheets").expect("timesheets");
    let mut raw = RawWriter::new(env.lake.clone(), older);
    raw.full(&(1..=100).collect::<Vec<_>>(), 1, 1).await;
    raw.changes(&updates([1, 2], 2)).await;
    env.tables.catch_up(&env.lake, older).await.expect("older build");
    assert_table_equals_rebuild(&env, older, "older build").await;

    let mut raw = raw.with_entity(real);
    raw.full(&(1..=120).collect::<Vec<_>>(), 3, 2).await;
    let evolved = env.tables.catch_up(&env.lake, real).await.expect("newer build");
    assert_eq!(evolved.applied.len(), 1, "the schema change goes with the full load's one commit");
    assert_table_equals_rebuild(&env, real, "after the schema change").await;
    let batches = read_table(&env.lake, "current/timesheets").await;
    let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    for column in real.columns {
        assert!(names.contains(&column.name.to_string()), "{} missing", column.name);
    }
    crate::readers::assert_readers_agree(&env, std::slice::from_ref(real)).await;
}

#[tokio::test]
async fn a_retyped_column_is_refused_and_rebuild_recreates_the_table() {
    let env = env(small_files()).await;
    let real = xledger_model::entity("timesheets").expect("timesheets");
    // An older build that read one Utf8 column as an integer.
    let mut columns: Vec<ColumnSpec> = real.columns.to_vec();
    let retyped = columns.iter().position(|c| c.kind == ColumnKind::Utf8 && c.nullable).expect("a Utf8 column");
    columns[retyped].kind = ColumnKind::Int64;
    columns[retyped].json = xledger_model::JsonRepr::Number;
    let older: &'static EntitySpec = Box::leak(Box::new(EntitySpec {
        columns: Box::leak(columns.into_boxed_slice()),
        fingerprint: "retyped",
        ..*real
    }));
    let mut raw = RawWriter::new(env.lake.clone(), older);
    raw.full(&(1..=50).collect::<Vec<_>>(), 1, 1).await;
    env.tables.catch_up(&env.lake, older).await.expect("older build");
    let mut raw = raw.with_entity(real);
    raw.full(&(1..=60).collect::<Vec<_>>(), 2, 1).await;
    let error = env.tables.catch_up(&env.lake, real).await.expect_err("retyped");
    assert!(matches!(error, TableError::IncompatibleSchema { .. }), "{error}");
    assert!(error.to_string().contains("tables rebuild"), "{error}");
    env.tables.rebuild(&env.lake, real).await.expect("rebuild recreates");
    assert_table_equals_rebuild(&env, real, "after recreating").await;
}

fn run(pass: usize, entity: &str) -> RunRecord {
    let at = chrono::Utc::now();
    RunRecord {
        pass_id: format!("pass-{pass}"),
        entity: entity.to_string(),
        started_at: at,
        finished_at: at + chrono::Duration::milliseconds(1500),
        mode: "incremental".into(),
        rows_added: 1,
        rows_updated: 2,
        rows_deleted: 3,
        files: 1,
        requests: 4,
        bytes: 1234,
        outcome: if pass.is_multiple_of(3) { "failed".into() } else { "ok".into() },
        error: (pass.is_multiple_of(3)).then(|| "HTTP 503 from the API".to_string()),
    }
}

#[tokio::test]
async fn sync_runs_appends_from_concurrent_processes_lose_no_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("utf-8").to_string();
    let open = || async {
        let lake = Lake::open(&path, LakeOptions::default()).await.expect("lake");
        let location = TablesLocation::parse("current").expect("location").expect("some");
        let tables =
            Tables::open(&location, &lake, LakeOptions::default(), TableOptions::default()).await.expect("tables");
        (lake, tables)
    };
    let (lake, first) = open().await;
    let (_, second) = open().await;
    let appends = |tables: Tables, offset: usize| async move {
        for pass in 0..8 {
            tables
                .append_runs(&[run(offset + pass, "timesheets"), run(offset + pass, "projects")])
                .await
                .expect("append");
        }
    };
    tokio::join!(appends(first, 0), appends(second, 100));
    let batches = read_table(&lake, "current/_sync_runs").await;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 32, "two processes × eight passes × two entities");
    let schema = batches[0].schema();
    assert_eq!(
        schema.field(2).data_type(),
        &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
    );
}

#[tokio::test]
async fn locations_parse_and_the_protocol_is_reader_1_writer_2() {
    assert_eq!(TablesLocation::parse("none").expect("none"), None);
    assert_eq!(TablesLocation::parse("NONE").expect("none"), None);
    assert_eq!(TablesLocation::parse("").expect("default"), Some(TablesLocation::default_in_lake()));
    assert_eq!(TablesLocation::parse("current").expect("in lake"), Some(TablesLocation::InLake("current".into())));
    assert_eq!(
        TablesLocation::parse("az://tables/prod").expect("az"),
        Some(TablesLocation::Elsewhere("az://tables/prod".into()))
    );
    assert!(TablesLocation::parse("../elsewhere").is_err());

    let env = env(small_files()).await;
    let entity = xledger_model::entity("customers").expect("customers");
    RawWriter::new(env.lake.clone(), entity).full(&[1, 2, 3], 1, 1).await;
    env.tables.catch_up(&env.lake, entity).await.expect("catch up");
    let first = std::fs::read_to_string(env.dir.path().join("current/customers/_delta_log/00000000000000000000.json"))
        .expect("version 0");
    assert!(first.contains(r#""minReaderVersion":1"#) && first.contains(r#""minWriterVersion":2"#), "{first}");
    assert!(!first.contains("readerFeatures") && !first.contains("writerFeatures"), "{first}");
    for entry in std::fs::read_dir(env.dir.path().join("current/customers/_delta_log")).expect("log") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
        assert!(!text.contains(r#""protocol""#) || text == first, "only version 0 sets the protocol");
    }
}

#[tokio::test]
async fn the_core_scenario_on_azurite() {
    let endpoint = std::env::var("XLEDGER_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("XLEDGER_TEST_AZURITE is not set: run these tests with `cargo xtask test -- -p lake-tables` (it starts Azurite)")
    });
    let container = format!("tables{}", uuid_like());
    let options = LakeOptions { create_container: true, azure_endpoint: Some(endpoint.clone()) };
    let lake = Lake::open(&format!("az://{container}/raw"), options.clone()).await.expect("an Azurite lake");
    // The tables elsewhere in the same container, opened from their own URL.
    let location = TablesLocation::parse(&format!("az://{container}/tables")).expect("location").expect("some");
    let tables = Tables::open(&location, &lake, options.clone(), small_files()).await.expect("tables");
    let entity = xledger_model::entity("timesheets").expect("timesheets");
    let mut raw = RawWriter::new(lake.clone(), entity);
    raw.full(&(1..=150).collect::<Vec<_>>(), 1, 2).await;
    raw.changes(&[updates([1, 2, 149], 2), adds([151], 2), deletes([3])].concat()).await;
    let caught_up = tables.catch_up(&lake, entity).await.expect("catch up on Azurite");
    assert_eq!(caught_up.applied.len(), 2);
    raw.changes(&[updates([1], 3), deletes([151])].concat()).await;
    tables.catch_up(&lake, entity).await.expect("second catch up");
    assert!(tables.catch_up(&lake, entity).await.expect("idempotent").applied.is_empty());

    let other = Lake::open(&format!("az://{container}"), options).await.expect("the container");
    let actual = table_rows(&other, "tables/timesheets", entity).await;
    assert!(actual == expected(&lake, entity).await, "the Azurite table differs from the rebuild");
    let status = tables.status(entity).await.expect("status").expect("table");
    assert_eq!(status.rows, 149);
    assert!(status.table.starts_with(&format!("az://{container}/tables")), "{}", status.table);
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}{nanos}", std::process::id())
}

/// The engine runs entities on spawned tasks: the futures must be `Send`, the handle `Send + Sync`.
#[tokio::test]
async fn tables_work_from_spawned_tasks() {
    let env = env(small_files()).await;
    let entity = xledger_model::entity("customers").expect("customers");
    RawWriter::new(env.lake.clone(), entity).full(&[1, 2, 3], 1, 1).await;
    let tables = Arc::new(env.tables);
    let lake = env.lake.clone();
    let task = tokio::spawn({
        let tables = tables.clone();
        async move { tables.catch_up(&lake, entity).await.map(|c| c.applied.len()) }
    });
    assert_eq!(task.await.expect("the task ran").expect("catch up"), 1);
    let runs = tokio::spawn({
        let tables = tables.clone();
        async move { tables.append_runs(&[run(1, "customers")]).await }
    });
    assert!(runs.await.expect("the task ran").expect("append").is_some());
}
