//! Raw files made with lake-writer's own API, the expected current state, reading tables back
//! (delta_kernel here; DuckDB and Python `deltalake` in `readers.rs`), and a fault-injecting store.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lake_tables::{TableOptions, Tables, TablesLocation};
use lake_writer::rebuild::CanonicalRow;
use lake_writer::{CommittedFile, FileKind, Lake, LakeOptions, PartSpec, RunStamp, WriterOptions};
use serde_json::{Map, Value, json};
use xledger_model::page::MutationType;
use xledger_model::{ColumnKind, EntitySpec, JsonRepr};

/// A deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A node of `entity` with `db_id`; `seed` varies the values (an update uses another seed).
pub fn node(entity: &EntitySpec, db_id: i64, seed: u64) -> Value {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(db_id as u64));
    let mut root = Map::new();
    for column in entity.columns {
        let value = if column.name == "dbId" {
            match column.json {
                JsonRepr::String => json!(db_id.to_string()),
                _ => json!(db_id),
            }
        } else if column.nullable && rng.below(10) == 0 {
            Value::Null
        } else {
            leaf(column.kind, column.json, &mut rng)
        };
        let mut current = &mut root;
        for key in &column.path[..column.path.len() - 1] {
            let entry = current.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            current = entry.as_object_mut().expect("nested paths are objects");
        }
        current.insert(column.path[column.path.len() - 1].to_string(), value);
    }
    Value::Object(root)
}

fn leaf(kind: ColumnKind, json: JsonRepr, rng: &mut Rng) -> Value {
    match (kind, json) {
        (ColumnKind::Int64, JsonRepr::String) => json!((rng.below(1 << 40) as i64).to_string()),
        (ColumnKind::Int64, _) => json!(rng.below(10_000_000) as i64),
        (ColumnKind::Decimal { scale, .. }, _) => {
            let digits = (scale.max(0) as u32).min(4);
            let int_part = rng.below(1_000_000_000);
            let sign = if rng.below(5) == 0 { "-" } else { "" };
            if digits == 0 {
                json!(format!("{sign}{int_part}"))
            } else {
                let frac = rng.below(10u64.pow(digits));
                json!(format!("{sign}{int_part}.{frac:0width$}", width = digits as usize))
            }
        }
        (ColumnKind::Date, _) => {
            json!(format!("20{:02}-{:02}-{:02}", 15 + rng.below(12), rng.below(12) + 1, rng.below(28) + 1))
        }
        (ColumnKind::Timestamp, _) => json!(format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}",
            rng.below(12) + 1,
            rng.below(28) + 1,
            rng.below(24),
            rng.below(60),
            rng.below(60)
        )),
        (ColumnKind::Float64, _) => json!((rng.below(1_000_000) as f64) / 100.0),
        (ColumnKind::Boolean, _) => json!(rng.below(2) == 0),
        (ColumnKind::Utf8, _) => json!(format!("Bjørn \"{}\" Zürich", rng.below(100_000))),
    }
}

/// One row of a raw file to write.
#[derive(Clone, Copy)]
pub enum Row {
    Upsert { db_id: i64, seed: u64, mutation: MutationType },
    Delete { db_id: i64 },
}

/// Writes raw files with strictly increasing run stamps (one second apart).
pub struct RawWriter {
    pub lake: Lake,
    pub entity: &'static EntitySpec,
    next: DateTime<Utc>,
}

impl RawWriter {
    pub fn new(lake: Lake, entity: &'static EntitySpec) -> Self {
        let start = "20240711_21_17_09".parse::<RunStamp>().expect("a stamp").as_datetime();
        RawWriter { lake, entity, next: start }
    }

    /// The same raw writer on another lake handle (e.g. with another spec for the same entity).
    pub fn with_entity(&self, entity: &'static EntitySpec) -> Self {
        RawWriter { lake: self.lake.clone(), entity, next: self.next }
    }

    pub fn advance(&mut self, other: &RawWriter) {
        self.next = self.next.max(other.next);
    }

    fn stamp(&mut self) -> (RunStamp, DateTime<Utc>) {
        let stamp = RunStamp::new(self.next);
        // `_synced_at` a little after the stamp, as the engine's `max(now, stamp)`.
        let synced_at = self.next + Duration::microseconds(123_456);
        self.next += Duration::seconds(1);
        (stamp, synced_at)
    }

    /// A complete full load of `db_ids` in `parts` parts (ascending dbIds, as the API pages).
    pub async fn full(&mut self, db_ids: &[i64], seed: u64, parts: usize) -> String {
        let (stamp, synced_at) = self.stamp();
        let per_part = db_ids.len().div_ceil(parts.max(1)).max(1);
        let mut files: Vec<CommittedFile> = Vec::new();
        for (index, chunk) in db_ids.chunks(per_part).enumerate() {
            let part = if parts > 1 { Some(index as u32 + 1) } else { None };
            let spec = PartSpec { kind: FileKind::FullSync, stamp, part, synced_at, extra_metadata: vec![] };
            let mut writer =
                self.lake.create_part(self.entity, spec, &WriterOptions::default()).await.expect("create part");
            let nodes: Vec<String> = chunk.iter().map(|id| node(self.entity, *id, seed).to_string()).collect();
            writer.write_nodes(nodes.iter().map(|n| (n.as_str(), MutationType::Added))).await.expect("write nodes");
            files.push(writer.finish().await.expect("finish part"));
        }
        self.lake.write_manifest(self.entity, stamp, &files).await.expect("manifest")
    }

    /// One `sync_changes` file.
    pub async fn changes(&mut self, rows: &[Row]) -> String {
        let (stamp, synced_at) = self.stamp();
        let spec = PartSpec { kind: FileKind::SyncChanges, stamp, part: None, synced_at, extra_metadata: vec![] };
        let mut writer =
            self.lake.create_part(self.entity, spec, &WriterOptions::default()).await.expect("create part");
        for row in rows {
            match *row {
                Row::Upsert { db_id, seed, mutation } => {
                    let text = node(self.entity, db_id, seed).to_string();
                    writer.write_nodes([(text.as_str(), mutation)]).await.expect("write nodes");
                }
                Row::Delete { db_id } => writer.write_deletions(&[db_id]).await.expect("write deletions"),
            }
        }
        writer.finish().await.expect("finish change file").name
    }
}

pub fn updates(ids: impl IntoIterator<Item = i64>, seed: u64) -> Vec<Row> {
    ids.into_iter().map(|db_id| Row::Upsert { db_id, seed, mutation: MutationType::Updated }).collect()
}

pub fn adds(ids: impl IntoIterator<Item = i64>, seed: u64) -> Vec<Row> {
    ids.into_iter().map(|db_id| Row::Upsert { db_id, seed, mutation: MutationType::Added }).collect()
}

pub fn deletes(ids: impl IntoIterator<Item = i64>) -> Vec<Row> {
    ids.into_iter().map(|db_id| Row::Delete { db_id }).collect()
}

/// A local lake in a temporary directory with tables at `current`.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub lake: Lake,
    pub tables: Tables,
}

pub async fn env(options: TableOptions) -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::open(dir.path().to_str().expect("utf-8 path"), LakeOptions::default()).await.expect("lake");
    let location = TablesLocation::parse("current").expect("location").expect("not none");
    let tables = Tables::open(&location, &lake, LakeOptions::default(), options).await.expect("tables");
    Env { dir, lake, tables }
}

/// Small files so that a few hundred rows make several files.
pub fn small_files() -> TableOptions {
    TableOptions {
        target_file_rows: 64,
        row_group_rows: 32,
        compact_small_files: 6,
        checkpoint_interval: 4,
        ..TableOptions::default()
    }
}

/// The contract's rebuild of the raw files.
pub async fn expected(lake: &Lake, entity: &'static EntitySpec) -> BTreeMap<i64, CanonicalRow> {
    lake_writer::rebuild::current_state(lake, entity).await.expect("rebuild")
}

/// The table's rows read with delta_kernel over the lake's store, in canonical form, by dbId; fails
/// on a dbId seen twice.
pub async fn table_rows(lake: &Lake, folder: &str, entity: &'static EntitySpec) -> BTreeMap<i64, CanonicalRow> {
    let batches = read_table(lake, folder).await;
    let mut rows = BTreeMap::new();
    for batch in batches {
        for row in lake_writer::rebuild::canonical_rows_from_batch(entity, &batch).expect("canonical rows") {
            let db_id = row["dbId"].as_i64().expect("dbId");
            assert!(rows.insert(db_id, row).is_none(), "{}: dbId {db_id} twice in the table", entity.name);
        }
    }
    rows
}

/// Every batch of a table (`folder` relative to the lake root, e.g. `current/timesheets`).
pub async fn read_table(lake: &Lake, folder: &str) -> Vec<arrow::array::RecordBatch> {
    use delta_kernel::engine::arrow_data::ArrowEngineData;
    // A local lake: the kernel's own `file://` handling (it sorts local listings itself).
    let (store, url): (Arc<dyn object_store::ObjectStore>, url::Url) = if lake.describe().starts_with('/') {
        let dir = std::path::Path::new(&lake.describe()).join(folder);
        (Arc::new(object_store::local::LocalFileSystem::new()), url::Url::from_directory_path(dir).expect("file url"))
    } else {
        let path = folder.split('/').fold(lake.root(), |p, s| p.join(s));
        (lake.store(), url::Url::parse(&format!("xledger-tables:///{path}/")).expect("url"))
    };
    tokio::task::spawn_blocking(move || {
        let executor =
            delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor::new_owned_runtime(Some(1), None)
                .expect("runtime");
        let engine = Arc::new(
            delta_kernel_default_engine::DefaultEngineBuilder::new(store)
                .with_task_executor(Arc::new(executor))
                .build(),
        );
        let snapshot = delta_kernel::Snapshot::builder_for(url.as_str()).build(engine.as_ref()).expect("snapshot");
        let scan = snapshot.scan_builder().build().expect("scan");
        let mut out = Vec::new();
        for data in scan.execute(engine.clone()).expect("execute") {
            let data = data.expect("scan batch");
            out.push(ArrowEngineData::try_from_engine_data(data).expect("arrow data").record_batch().clone());
        }
        out
    })
    .await
    .expect("kernel reader thread")
}

/// The log's commits of one table, and that no raw file was applied twice (`test_support::readers`).
pub fn assert_exactly_once(dir: &std::path::Path, folder: &str, entity: &str) {
    test_support::readers::assert_exactly_once(&dir.join(folder), &lake_tables::app_id(entity));
}
