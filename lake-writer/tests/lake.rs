//! The writer end to end: generated pages of every entity → Parquet files in a local lake, in
//! Azurite and in memory → read back with the parquet crate (and DuckDB) → exactly the values
//! the nodes carried.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use lake_writer::rebuild::{CanonicalRow, canonical_row_from_node, canonical_rows_from_batch, current_state};
use lake_writer::{
    CommittedFile, Compression, ConvertReason, FileKind, Lake, LakeError, LakeOptions, PartSpec, RunStamp,
    WriterOptions, metadata_keys,
};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use xledger_model::page::MutationType;
use xledger_model::{EntitySpec, MUTATION_TYPE_COLUMN, SYNCED_AT_COLUMN, entities, entity};

use support::{NO_NULLS, SOME_NULLS};

fn stamp(text: &str) -> RunStamp {
    text.parse().unwrap()
}

fn spec(kind: FileKind, stamp: RunStamp, part: Option<u32>, synced_at: DateTime<Utc>) -> PartSpec {
    PartSpec { kind, stamp, part, synced_at, extra_metadata: vec![] }
}

fn small_files() -> WriterOptions {
    // Small row groups and upload chunks so that every test crosses row-group and multipart
    // boundaries without writing megabytes.
    WriterOptions { row_group_rows: 300, upload_chunk_bytes: 16 * 1024, ..WriterOptions::default() }
}

fn unique_container(purpose: &str) -> String {
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("lw-{purpose}-{}-{nanos}", std::process::id())
}

async fn azurite_lake(purpose: &str) -> Lake {
    let options = LakeOptions { create_container: true, azure_endpoint: Some(support::azurite_endpoint()) };
    Lake::open(&format!("az://{}/raw/xledger", unique_container(purpose)), options).await.unwrap()
}

/// Writes `pages` of ADDED nodes as one full-sync part.
async fn write_part(
    lake: &Lake,
    entity: &'static EntitySpec,
    spec: PartSpec,
    pages: &[Vec<String>],
    options: &WriterOptions,
) -> Result<CommittedFile, LakeError> {
    let mut writer = lake.create_part(entity, spec, options).await?;
    for page in pages {
        let nodes: Vec<(&str, MutationType)> = page.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
        writer.write_nodes(nodes.iter().copied()).await?;
    }
    writer.finish().await
}

/// Reads a lake file with the parquet crate (synchronous reader over the object's bytes).
async fn read_back(lake: &Lake, entity: &EntitySpec, name: &str) -> Vec<arrow::record_batch::RecordBatch> {
    read_back_with_row_groups(lake, entity, name).await.0
}

/// The batches of a file and its number of row groups.
async fn read_back_with_row_groups(
    lake: &Lake,
    entity: &EntitySpec,
    name: &str,
) -> (Vec<arrow::record_batch::RecordBatch>, usize) {
    let path = lake.path_of(entity.name, name).unwrap();
    let bytes: Bytes = lake.store().get(&path).await.unwrap().bytes().await.unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let row_groups = builder.metadata().num_row_groups();
    (builder.build().unwrap().map(|b| b.unwrap()).collect(), row_groups)
}

fn expected_rows(entity: &'static EntitySpec, nodes: &[Value]) -> Vec<CanonicalRow> {
    nodes.iter().map(|n| canonical_row_from_node(entity, n).unwrap()).collect()
}

/// Every entity: two pages of generated nodes (with null objects and null leaves) → one part →
/// read back: same schema, the same canonical values row by row, mutationType ADDED, one
/// `_synced_at`; and the rebuilt current state equals the nodes.
async fn every_entity_round_trips(lake: &Lake) {
    let synced_at = Utc.with_ymd_and_hms(2024, 7, 11, 21, 17, 9).unwrap() + chrono::Duration::microseconds(123_456);
    let run = stamp("20240711_21_17_09");
    for (index, entity) in entities().iter().enumerate() {
        let first = support::nodes(entity, 1_000, 400, index as u64, SOME_NULLS);
        let second = support::nodes(entity, 2_000, 350, 100 + index as u64, SOME_NULLS);
        let pages = [support::raw(&first), support::raw(&second)];
        let file = write_part(lake, entity, spec(FileKind::FullSync, run, None, synced_at), &pages, &small_files())
            .await
            .unwrap();
        assert_eq!(file.rows, 750, "{}", entity.name);
        lake.write_manifest(entity, run, std::slice::from_ref(&file)).await.unwrap();

        let (batches, row_groups) = read_back_with_row_groups(lake, entity, &file.name).await;
        assert_eq!(row_groups, 3, "{}: 750 rows in row groups of 300", entity.name);
        let mut rows = Vec::new();
        for batch in &batches {
            assert_eq!(batch.schema().fields(), entity.arrow_schema().fields(), "{}", entity.name);
            rows.extend(canonical_rows_from_batch(entity, batch).unwrap());
            let mutation = batch.column_by_name(MUTATION_TYPE_COLUMN).unwrap();
            let mutation = arrow::array::AsArray::as_string::<i32>(mutation);
            assert!(mutation.iter().all(|m| m == Some("ADDED")), "{}", entity.name);
            let synced = batch.column_by_name(SYNCED_AT_COLUMN).unwrap();
            let synced = arrow::array::AsArray::as_primitive::<arrow::datatypes::TimestampMicrosecondType>(synced);
            assert!(synced.iter().all(|t| t == Some(synced_at.timestamp_micros())), "{}", entity.name);
        }
        let all_nodes: Vec<Value> = first.iter().chain(&second).cloned().collect();
        let expected = expected_rows(entity, &all_nodes);
        assert_eq!(rows.len(), expected.len(), "{}", entity.name);
        for (row, (got, want)) in rows.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "{} row {row}", entity.name);
        }

        let state = current_state(lake, entity).await.unwrap();
        let want: BTreeMap<i64, CanonicalRow> =
            expected.into_iter().map(|r| (r["dbId"].as_i64().unwrap(), r)).collect();
        assert_eq!(state, want, "{}", entity.name);
    }
}

#[tokio::test]
async fn every_entity_round_trips_through_a_local_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await.unwrap();
    every_entity_round_trips(&lake).await;
    // The seed layout: <root>/<entity>/<name>.parquet, nothing else.
    let on_disk: Vec<String> = std::fs::read_dir(dir.path().join("timesheets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut on_disk = on_disk;
    on_disk.sort();
    assert_eq!(
        on_disk,
        ["full_sync-20240711_21_17_09-timesheets.manifest.json", "full_sync-20240711_21_17_09-timesheets.parquet"]
    );
}

#[tokio::test]
async fn every_entity_round_trips_through_azurite() {
    let lake = azurite_lake("roundtrip").await;
    every_entity_round_trips(&lake).await;
}

#[tokio::test]
async fn every_entity_round_trips_in_memory() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    every_entity_round_trips(&lake).await;
}

/// A writer that never finishes: dropped (an error path) or forgotten (a killed process, no
/// destructor runs) after several row groups have been uploaded.
async fn start_and_crash(lake: &Lake, forget: bool) {
    let timesheets = entity("timesheets").unwrap();
    let nodes = support::nodes(timesheets, 1, 2_000, 7, NO_NULLS);
    let raw = support::raw(&nodes);
    let run = stamp("20240711_21_17_09");
    let mut writer =
        lake.create_part(timesheets, spec(FileKind::FullSync, run, Some(1), Utc::now()), &small_files()).await.unwrap();
    let page: Vec<(&str, MutationType)> = raw.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
    writer.write_nodes(page.iter().copied()).await.unwrap();
    writer.write_nodes([]).await.unwrap();
    assert_eq!(writer.rows(), 2_000);
    if forget {
        std::mem::forget(writer);
    } else {
        drop(writer);
    }
    assert!(!lake.exists("timesheets", "full_sync-20240711_21_17_09-timesheets-00001.parquet").await.unwrap());
    let visible: Vec<_> = lake.list("timesheets").await.unwrap().into_iter().filter(|f| !f.is_temp).collect();
    assert!(visible.is_empty(), "{visible:?}");
    assert!(current_state(lake, timesheets).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dropped_writer_leaves_no_visible_file_locally() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await.unwrap();
    start_and_crash(&lake, false).await;
    let parquet_files = std::fs::read_dir(dir.path().join("timesheets"))
        .map(|entries| {
            entries.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".parquet")).count()
        })
        .unwrap_or(0);
    assert_eq!(parquet_files, 0);
}

#[tokio::test]
async fn a_killed_writer_leaves_only_a_staging_file_that_cleanup_removes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await.unwrap();
    start_and_crash(&lake, true).await;
    let temps: Vec<_> = lake.list("timesheets").await.unwrap().into_iter().filter(|f| f.is_temp).collect();
    assert_eq!(temps.len(), 1, "the forgotten multipart upload's staging file: {temps:?}");
    assert!(temps[0].name.starts_with("full_sync-20240711_21_17_09-timesheets-00001.parquet#"));
    assert_eq!(temps[0].kind, None);
    assert_eq!(lake.remove_stray_temp_files("timesheets").await.unwrap(), 1);
    assert!(lake.list("timesheets").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dropped_or_killed_writer_leaves_no_visible_file_on_azurite() {
    let lake = azurite_lake("crash").await;
    start_and_crash(&lake, false).await;
    start_and_crash(&lake, true).await;
}

#[tokio::test]
async fn an_aborted_writer_leaves_nothing_and_the_name_stays_free() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await.unwrap();
    let customers = entity("customers").unwrap();
    let run = stamp("20240101_00_00_00");
    let raw = support::raw(&support::nodes(customers, 1, 1_000, 3, SOME_NULLS));
    let mut writer =
        lake.create_part(customers, spec(FileKind::FullSync, run, None, Utc::now()), &small_files()).await.unwrap();
    let page: Vec<_> = raw.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
    writer.write_nodes(page.iter().copied()).await.unwrap();
    writer.abort().await.unwrap();
    assert!(lake.list("customers").await.unwrap().is_empty());
    let file = write_part(&lake, customers, spec(FileKind::FullSync, run, None, Utc::now()), &[raw], &small_files())
        .await
        .unwrap();
    assert_eq!(file.rows, 1_000);
}

#[tokio::test]
async fn a_committed_file_is_never_replaced() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    let customers = entity("customers").unwrap();
    let run = stamp("20240101_00_00_00");
    let raw = support::raw(&support::nodes(customers, 1, 10, 3, NO_NULLS));
    write_part(&lake, customers, spec(FileKind::SyncChanges, run, None, Utc::now()), &[raw], &WriterOptions::default())
        .await
        .unwrap();
    let again = lake
        .create_part(customers, spec(FileKind::SyncChanges, run, None, Utc::now()), &WriterOptions::default())
        .await;
    assert!(matches!(again, Err(LakeError::AlreadyExists { .. })), "{again:?}");
}

#[tokio::test]
async fn files_carry_the_contract_metadata_and_the_engine_extras() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    let timesheets = entity("timesheets").unwrap();
    let run = stamp("20240711_21_17_09");
    let synced_at = Utc.with_ymd_and_hms(2024, 7, 11, 21, 20, 0).unwrap();
    let mut part = spec(FileKind::SyncChanges, run, Some(3), synced_at);
    part.extra_metadata =
        vec![("xledger.cursor_from".into(), "100".into()), ("xledger.cursor_to".into(), "250".into())];
    let raw = support::raw(&support::nodes(timesheets, 1, 5, 1, NO_NULLS));
    let file = write_part(
        &lake,
        timesheets,
        part,
        &[raw],
        &WriterOptions { compression: Compression::Snappy, ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(file.name, "sync_changes-20240711_21_17_09-timesheets-00003.parquet");
    let metadata = lake.file_metadata("timesheets", &file.name).await.unwrap();
    assert_eq!(metadata[metadata_keys::ENTITY], "timesheets");
    assert_eq!(metadata[metadata_keys::KIND], "sync_changes");
    assert_eq!(metadata[metadata_keys::RUN_STAMP], "20240711_21_17_09");
    assert_eq!(metadata[metadata_keys::PART], "3");
    assert_eq!(metadata[metadata_keys::SCHEMA_FINGERPRINT], timesheets.fingerprint);
    assert_eq!(metadata[metadata_keys::SYNCED_AT], "2024-07-11T21:20:00.000000Z");
    assert_eq!(metadata[metadata_keys::TOOL_VERSION], format!("lake-writer {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(metadata["xledger.cursor_from"], "100");
    assert_eq!(metadata["xledger.cursor_to"], "250");
    let listed = lake.list("timesheets").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].kind, listed[0].part, listed[0].is_manifest, listed[0].size),
        (Some(FileKind::SyncChanges), Some(3), false, file.bytes)
    );
}

#[tokio::test]
async fn deletions_carry_only_db_id_mutation_type_and_synced_at() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    let timesheets = entity("timesheets").unwrap();
    let synced_at = Utc.with_ymd_and_hms(2024, 7, 12, 8, 0, 0).unwrap();
    let mut writer = lake
        .create_part(
            timesheets,
            spec(FileKind::SyncChanges, stamp("20240712_08_00_00"), None, synced_at),
            &WriterOptions::default(),
        )
        .await
        .unwrap();
    writer.write_deletions(&[42, 43]).await.unwrap();
    let file = writer.finish().await.unwrap();
    let batches = read_back(&lake, timesheets, &file.name).await;
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 2);
    for (index, field) in batch.schema().fields().iter().enumerate() {
        let column = batch.column(index);
        match field.name().as_str() {
            "dbId" => assert_eq!(
                arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(column).values(),
                &[42, 43]
            ),
            MUTATION_TYPE_COLUMN => {
                let values: Vec<_> = arrow::array::AsArray::as_string::<i32>(column).iter().collect();
                assert_eq!(values, [Some("DELETED"), Some("DELETED")]);
            }
            SYNCED_AT_COLUMN => assert_eq!(column.null_count(), 0),
            other => assert_eq!(column.null_count(), 2, "{other} must be null in a deletion row"),
        }
    }
}

#[tokio::test]
async fn a_bad_value_fails_the_whole_page_naming_entity_db_id_column_and_value() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    let timesheets = entity("timesheets").unwrap();
    let mut nodes = support::nodes(timesheets, 1, 3, 9, NO_NULLS);
    nodes[1]["workingHours"] = json!("7.1234567");
    let raw = support::raw(&nodes);
    let mut writer = lake
        .create_part(
            timesheets,
            spec(FileKind::FullSync, stamp("20240711_21_17_09"), None, Utc::now()),
            &WriterOptions::default(),
        )
        .await
        .unwrap();
    let page: Vec<_> = raw.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
    let Err(LakeError::Convert(error)) = writer.write_nodes(page.iter().copied()).await else {
        panic!("expected a conversion error")
    };
    assert_eq!(
        (error.entity, error.db_id, error.column.as_str(), error.value.as_str()),
        ("timesheets", Some(2), "workingHours", "7.1234567")
    );
    assert!(matches!(error.reason, ConvertReason::Decimal(_)));
    let message = error.to_string();
    for part in ["timesheets", "dbId 2", "workingHours", "7.1234567", "refusing to round"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    // The failed page left nothing behind: the next page is written alone.
    let good = support::raw(&support::nodes(timesheets, 10, 2, 9, NO_NULLS));
    let page: Vec<_> = good.iter().map(|n| (&**n, MutationType::Updated)).collect();
    writer.write_nodes(page.iter().copied()).await.unwrap();
    let file = writer.finish().await.unwrap();
    assert_eq!(file.rows, 2);
    let ids: Vec<i64> = current_state(&lake, timesheets).await.unwrap().into_keys().collect();
    assert!(ids.is_empty(), "a full sync without manifest is not current state");
    let batches = read_back(&lake, timesheets, &file.name).await;
    let rows = canonical_rows_from_batch(timesheets, &batches[0]).unwrap();
    assert_eq!(rows.iter().map(|r| r["dbId"].as_i64().unwrap()).collect::<Vec<_>>(), [10, 11]);
}

/// Full sync in two parts, a newer unfinished full sync, then changes: the rebuild takes the
/// newest complete full sync and applies later changes in `_synced_at` order.
#[tokio::test]
async fn current_state_applies_changes_after_the_newest_complete_full_sync() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    let customers = entity("customers").unwrap();
    let t0 = Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap();
    let full_run = RunStamp::from(t0);
    let options = WriterOptions { part_rows: 100, ..small_files() };

    // Parts roll when full.
    let all = support::nodes(customers, 1, 150, 5, SOME_NULLS);
    let raw = support::raw(&all);
    let mut parts = Vec::new();
    let mut writer =
        lake.create_part(customers, spec(FileKind::FullSync, full_run, Some(1), t0), &options).await.unwrap();
    for chunk in raw.chunks(50) {
        let page: Vec<_> = chunk.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
        writer.write_nodes(page.iter().copied()).await.unwrap();
        if writer.is_full() {
            parts.push(writer.finish().await.unwrap());
            writer = lake
                .create_part(customers, spec(FileKind::FullSync, full_run, Some(parts.len() as u32 + 1), t0), &options)
                .await
                .unwrap();
        }
    }
    parts.push(writer.finish().await.unwrap());
    assert_eq!(parts.iter().map(|p| p.rows).collect::<Vec<_>>(), [100, 50]);
    let manifest_name = lake.write_manifest(customers, full_run, &parts).await.unwrap();
    assert_eq!(
        lake.write_manifest(customers, full_run, &parts).await.unwrap(),
        manifest_name,
        "a retried manifest is idempotent"
    );
    let conflict = lake.write_manifest(customers, full_run, &parts[..1]).await;
    assert!(matches!(conflict, Err(LakeError::Manifest { .. })), "{conflict:?}");
    let manifest = lake.read_manifest("customers", &manifest_name).await.unwrap();
    assert_eq!((manifest.total_rows, manifest.files.len()), (150, 2));

    // Changes: the second one is older by _synced_at but newer by name; order is by _synced_at.
    let t2 = t0 + chrono::Duration::hours(2);
    let t1 = t0 + chrono::Duration::hours(1);
    let updated = support::nodes(customers, 5, 1, 77, NO_NULLS);
    write_part(
        &lake,
        customers,
        spec(FileKind::SyncChanges, RunStamp::from(t1), None, t2),
        &[support::raw(&updated)],
        &options,
    )
    .await
    .unwrap();
    let mut writer =
        lake.create_part(customers, spec(FileKind::SyncChanges, RunStamp::from(t2), None, t1), &options).await.unwrap();
    let stale = support::nodes(customers, 5, 1, 78, NO_NULLS);
    let stale_raw = support::raw(&stale);
    writer.write_nodes([(stale_raw[0].as_str(), MutationType::Updated)]).await.unwrap();
    writer.write_deletions(&[6]).await.unwrap();
    writer.finish().await.unwrap();

    // A newer full sync without manifest (an unfinished run) is ignored.
    let unfinished = support::nodes(customers, 9_000, 3, 1, NO_NULLS);
    write_part(
        &lake,
        customers,
        spec(FileKind::FullSync, RunStamp::from(t2 + chrono::Duration::hours(1)), Some(1), t2),
        &[support::raw(&unfinished)],
        &options,
    )
    .await
    .unwrap();

    let state = current_state(&lake, customers).await.unwrap();
    let mut expected: BTreeMap<i64, CanonicalRow> =
        expected_rows(customers, &all).into_iter().map(|r| (r["dbId"].as_i64().unwrap(), r)).collect();
    expected.remove(&6);
    expected.insert(5, canonical_row_from_node(customers, &updated[0]).unwrap());
    assert_eq!(state, expected);

    assert_eq!(lake.delete_entity("customers").await.unwrap(), 6, "2 parts, a manifest, 2 changes, 1 unfinished part");
    assert!(lake.list("customers").await.unwrap().is_empty());
}

/// DuckDB reads a written file: exact decimals, dates, UTC instants of Central European wall
/// clocks (summer, winter, the spring-forward gap, the fall-back overlap) and the column types.
#[tokio::test]
async fn duckdb_reads_exact_decimals_dates_and_utc_timestamps() {
    let (python, python_path) = support::duckdb_python();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await.unwrap();
    let timesheets = entity("timesheets").unwrap();
    let cases = [
        // (wall clock, UTC it must become, workingHours, hourlyRevenueCurrency, assignmentDate)
        ("2024-07-11T21:17:09", "2024-07-11 19:17:09", "7.5", "1234567890123.123456", "2024-07-11"),
        ("2024-01-15T08:00:00", "2024-01-15 07:00:00", "-0.000001", "0.10", "2024-01-15"),
        ("2024-03-31T01:59:59", "2024-03-31 00:59:59", "999999999999.999999", "-42", "2024-03-31"),
        ("2024-03-31T02:30:00", "2024-03-31 01:30:00", "0", "101.00", "2024-02-29"),
        ("2024-03-31T03:00:00", "2024-03-31 01:00:00", "37.500000", "-999.99", "1999-12-31"),
        ("2024-10-27T01:59:59", "2024-10-26 23:59:59", "0.25", "0.015", "2024-10-27"),
        ("2024-10-27T02:30:00", "2024-10-27 01:30:00", "1.125", "3.333333", "2024-10-27"),
        ("2024-10-27T03:00:00", "2024-10-27 02:00:00", "8", "12.5", "2100-01-01"),
    ];
    let mut nodes = support::nodes(timesheets, 1, cases.len(), 4, NO_NULLS);
    for (node, (wall, _, hours, money, date)) in nodes.iter_mut().zip(cases) {
        node["createdAt"] = json!(wall);
        node["workingHours"] = json!(hours);
        node["hourlyRevenueCurrency"] = json!(money);
        node["assignmentDate"] = json!(date);
    }
    let run = stamp("20240711_21_17_09");
    let file = write_part(
        &lake,
        timesheets,
        spec(FileKind::FullSync, run, None, Utc::now()),
        &[support::raw(&nodes)],
        &WriterOptions::default(),
    )
    .await
    .unwrap();
    let path = dir.path().join("timesheets").join(&file.name);
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
rows = con.execute("""
  select "dbId",
         cast(make_timestamp(epoch_us("createdAt")) as varchar),
         cast("workingHours" as varchar), cast("hourlyRevenueCurrency" as varchar),
         cast("assignmentDate" as varchar),
         typeof("createdAt"), typeof("workingHours"), typeof("hourlyRevenueCurrency"), typeof("assignmentDate"),
         "mutationType"
  from read_parquet(?) order by "dbId"
""", [sys.argv[1]]).fetchall()
print(json.dumps(rows))
"#;
    let output = std::process::Command::new(&python)
        .env("PYTHONPATH", &python_path)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("running python with DuckDB");
    assert!(output.status.success(), "duckdb failed: {}", String::from_utf8_lossy(&output.stderr));
    let rows: Vec<Vec<Value>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.len(), cases.len());
    let scaled = |text: &str, scale: i8| {
        xledger_model::decimal::format_decimal(xledger_model::decimal::parse_decimal(text, 28, scale).unwrap(), scale)
    };
    for (row, (_, utc, hours, money, date)) in rows.iter().zip(cases) {
        assert_eq!(row[1], utc, "{row:?}");
        assert_eq!(row[2], scaled(hours, 6), "{row:?}");
        assert_eq!(row[3], scaled(money, 6), "{row:?}");
        assert_eq!(row[4], date, "{row:?}");
        assert_eq!(row[5], "TIMESTAMP WITH TIME ZONE");
        assert_eq!(row[6], "DECIMAL(18,6)");
        assert_eq!(row[7], "DECIMAL(28,6)");
        assert_eq!(row[8], "DATE");
        assert_eq!(row[9], "ADDED");
    }
}

/// Whether every data page of the column (in every row group) is dictionary-encoded, and whether
/// any is plain.
fn data_page_encodings(metadata: &parquet::file::metadata::ParquetMetaData, column: &str) -> (bool, bool) {
    use parquet::basic::Encoding;
    let mut all_dictionary = true;
    let mut any_plain = false;
    for row_group in metadata.row_groups() {
        let chunk = row_group.columns().iter().find(|c| c.column_path().string() == column).unwrap();
        let mask = chunk.page_encoding_stats_mask().expect("the writer records page encodings");
        all_dictionary &= chunk.dictionary_page_offset().is_some() && mask.is_only(Encoding::RLE_DICTIONARY);
        any_plain |= mask.is_set(Encoding::PLAIN);
    }
    (all_dictionary, any_plain)
}

#[tokio::test]
async fn repeating_values_keep_their_dictionary_and_near_unique_ones_fall_back_to_plain() {
    let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
    let customers = entity("customers").unwrap();
    // 60 000 rows in one row group: 40 distinct descriptions; 20 000 distinct 20-byte codes (a
    // ~0.5 MB dictionary: under Parquet's default 1 MiB limit, over ours).
    let mut nodes = support::nodes(customers, 1, 60_000, 3, NO_NULLS);
    for (i, node) in nodes.iter_mut().enumerate() {
        node["description"] = json!(format!("Customer group {}", i % 40));
        node["code"] = json!(format!("{:020}", ((i % 20_000) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
    let options = WriterOptions { row_group_rows: 60_000, ..WriterOptions::default() };
    let stamp = stamp("20240711_21_17_09");
    let pages = [support::raw(&nodes)];
    let file =
        write_part(&lake, customers, spec(FileKind::FullSync, stamp, None, stamp.as_datetime()), &pages, &options)
            .await
            .unwrap();
    let bytes: Bytes =
        lake.store().get(&lake.path_of("customers", &file.name).unwrap()).await.unwrap().bytes().await.unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let metadata = builder.metadata();
    assert_eq!(data_page_encodings(metadata, "description"), (true, false), "description keeps its dictionary");
    let (_, plain) = data_page_encodings(metadata, "code");
    assert!(plain, "code falls back to plain once its dictionary passes 64 KiB");
    // Values are the same either way.
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let rows: Vec<CanonicalRow> =
        batches.iter().flat_map(|b| canonical_rows_from_batch(customers, b).unwrap()).collect();
    assert_eq!(rows, expected_rows(customers, &nodes));
}

#[tokio::test]
async fn a_local_part_larger_than_its_staging_chunks_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), LakeOptions::default()).await.unwrap();
    let customers = entity("customers").unwrap();
    // Near-unique values, so the file is several local chunks (lake_writer::LOCAL_CHUNK_BYTES) long.
    let mut nodes = support::nodes(customers, 1, 80_000, 5, SOME_NULLS);
    for (i, node) in nodes.iter_mut().enumerate() {
        node["code"] = json!(format!("{:020}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
    let pages: Vec<Vec<String>> = nodes.chunks(10_000).map(support::raw).collect();
    let stamp = stamp("20240711_21_17_09");
    let options = WriterOptions::default();
    let file =
        write_part(&lake, customers, spec(FileKind::FullSync, stamp, None, stamp.as_datetime()), &pages, &options)
            .await
            .unwrap();
    assert!(file.bytes > 2 * lake_writer::LOCAL_CHUNK_BYTES as u64, "{} bytes", file.bytes);
    let on_disk = std::fs::metadata(dir.path().join("customers").join(&file.name)).unwrap().len();
    assert_eq!(on_disk, file.bytes);
    let batches = read_back(&lake, customers, &file.name).await;
    let rows: Vec<CanonicalRow> =
        batches.iter().flat_map(|b| canonical_rows_from_batch(customers, b).unwrap()).collect();
    assert_eq!(rows, expected_rows(customers, &nodes));
}
