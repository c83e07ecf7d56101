//! The independent readers of the current-state tables: DuckDB's delta extension and Python
//! `deltalake` read each table, and their rows must equal the expected rows value for value.

use std::collections::BTreeMap;
use std::path::Path;

use lake_writer::rebuild::CanonicalRow;
use serde_json::Value;
use xledger_model::{ColumnKind, EntitySpec};

/// `(python, PYTHONPATH)` where `duckdb`, its delta extension and `deltalake` import, from
/// `cargo xtask test`. Missing tools fail the test: it never passes without the readers.
pub fn python() -> (String, String) {
    let path = std::env::var("XLEDGER_TEST_PYTHONPATH").unwrap_or_else(|_| {
        panic!(
            "XLEDGER_TEST_PYTHONPATH is not set: run these tests with `cargo xtask test` (it installs \
             DuckDB, duckdb-ext-delta and deltalake into tools/python)"
        )
    });
    let python = std::env::var("XLEDGER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    (python, path)
}

/// Reads each table with both readers: per reader and entity, the rows as JSON with exact forms
/// (decimals as scaled integers, dates as days, timestamps as µs since the epoch).
const SCRIPT: &str = r#"
import json, os, sys, decimal
import pyarrow as pa, pyarrow.compute as pc
import duckdb, deltalake

tables = json.loads(sys.argv[1])
extension = os.path.join(sys.argv[2], "duckdb_ext", "extensions", "v" + duckdb.__version__, "linux_amd64", "delta.duckdb_extension")
if not os.path.isfile(extension):
    sys.exit("the delta extension is not at " + extension)
con = duckdb.connect()
con.execute("LOAD '" + extension.replace("'", "''") + "'")

def rows(table, scales):
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        kind = column.type
        if pa.types.is_timestamp(kind):
            column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
        elif pa.types.is_date(kind):
            column = pc.cast(column, pa.int32())
        values = column.to_pylist()
        if name in scales:
            values = [None if v is None else str(int(v.scaleb(scales[name]))) for v in values]
        columns[name] = values
    count = table.num_rows
    return [{name: columns[name][i] for name in table.column_names} for i in range(count)]

out = {}
for entity, spec in tables.items():
    path, scales = spec["path"], spec["scales"]
    dt = deltalake.DeltaTable(path, storage_options=spec.get("storage_options"))
    protocol = dt.protocol()
    names = [f.name for f in dt.schema().fields]
    out[entity] = {
        "protocol": [protocol.min_reader_version, protocol.min_writer_version],
        "columns": names,
        "deltalake": rows(dt.to_pyarrow_table(), scales),
    }
    if spec.get("duckdb", True):
        via_duckdb = con.execute("SELECT * FROM delta_scan('" + path.replace("'", "''") + "')").fetch_arrow_table()
        out[entity]["duckdb"] = rows(via_duckdb, scales)
print(json.dumps(out))
"#;

/// The expected rows in the script's exact forms.
fn exact(entity: &EntitySpec, row: &CanonicalRow) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for column in entity.columns {
        let value = &row[column.name];
        let value = match (column.kind, value) {
            (_, Value::Null) => Value::Null,
            (ColumnKind::Decimal { precision, scale }, Value::String(text)) => {
                let scaled = xledger_model::decimal::parse_decimal(text, precision, scale).expect("canonical decimal");
                Value::from(scaled.to_string())
            }
            (ColumnKind::Date, Value::String(text)) => {
                let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("canonical date");
                Value::from((date - chrono::NaiveDate::default()).num_days())
            }
            (ColumnKind::Timestamp, Value::String(text)) => {
                let t = chrono::DateTime::parse_from_rfc3339(text).expect("canonical timestamp");
                Value::from(t.timestamp_micros())
            }
            (_, other) => other.clone(),
        };
        out.insert(column.name.to_string(), value);
    }
    out
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// One table to read and what it must hold.
pub struct ExpectedTable<'a> {
    pub entity: &'a EntitySpec,
    /// A local table folder; see [`assert_deltalake_reads_azurite`] for tables on Azurite.
    pub path: &'a Path,
    /// The expected rows in the lake's canonical form (`lake_writer::rebuild`), by dbId.
    pub rows: &'a BTreeMap<i64, CanonicalRow>,
}

/// Reads every table with both readers and asserts: protocol reader 1 / writer 2, the entity's
/// columns plus `_synced_at`, one row per dbId, and exactly the expected values.
pub async fn assert_readers_agree(tables: &[ExpectedTable<'_>]) {
    let request = tables
        .iter()
        .map(|table| {
            let path = table.path.to_str().expect("a UTF-8 table path").to_string();
            (table.entity, table.rows, serde_json::json!({ "path": path }))
        })
        .collect();
    read_and_compare(request, &[], &["deltalake", "duckdb"]).await;
}

/// [`assert_readers_agree`] for tables on Azurite (`az://<container>/<path>` URLs), read by Python
/// `deltalake` through the storage emulator at `blob_endpoint` (DuckDB would need its azure
/// extension, which only downloads).
pub async fn assert_deltalake_reads_azurite(
    blob_endpoint: &str,
    tables: &[(&EntitySpec, String, &BTreeMap<i64, CanonicalRow>)],
) {
    let request = tables
        .iter()
        .map(|(entity, url, rows)| {
            (
                *entity,
                *rows,
                serde_json::json!({ "path": url, "duckdb": false, "storage_options": { "use_emulator": "true" } }),
            )
        })
        .collect();
    // object_store's emulator mode takes the blob service's address from this variable.
    let service = blob_endpoint.trim_end_matches('/').trim_end_matches("/devstoreaccount1");
    read_and_compare(request, &[("AZURITE_BLOB_STORAGE_URL", service)], &["deltalake"]).await;
}

async fn read_and_compare(
    tables: Vec<(&EntitySpec, &BTreeMap<i64, CanonicalRow>, Value)>,
    env: &[(&str, &str)],
    readers: &[&str],
) {
    let (python, path) = python();
    let mut request = serde_json::Map::new();
    for (entity, _, spec) in &tables {
        let scales: serde_json::Map<String, Value> = entity
            .columns
            .iter()
            .filter_map(|c| match c.kind {
                ColumnKind::Decimal { scale, .. } => Some((c.name.to_string(), Value::from(scale))),
                _ => None,
            })
            .collect();
        let mut spec = spec.clone();
        spec["scales"] = Value::Object(scales);
        request.insert(entity.name.to_string(), spec);
    }
    let output = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(Value::Object(request).to_string())
        .arg(&path)
        .env("PYTHONPATH", &path)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(output.status.success(), "the readers failed: {}", String::from_utf8_lossy(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).expect("the readers' JSON");
    for (entity, rows, _) in &tables {
        let result = &read[entity.name];
        assert_eq!(result["protocol"], serde_json::json!([1, 2]), "{}: protocol", entity.name);
        // The set of columns (their order is checked on the Rust side: a schema change appends).
        let mut columns: Vec<String> = entity.columns.iter().map(|c| c.name.to_string()).collect();
        columns.push("_synced_at".into());
        columns.sort();
        let mut read_columns: Vec<String> = serde_json::from_value(result["columns"].clone()).expect("column names");
        read_columns.sort();
        assert_eq!(read_columns, columns, "{}: columns", entity.name);
        let expected: BTreeMap<i64, BTreeMap<String, Value>> =
            rows.iter().map(|(id, row)| (*id, exact(entity, row))).collect();
        for reader in readers {
            let rows = result[reader].as_array().unwrap_or_else(|| panic!("{}: no rows from {reader}", entity.name));
            let mut by_id = BTreeMap::new();
            for row in rows {
                let id =
                    row["dbId"].as_i64().unwrap_or_else(|| panic!("{}: {reader}: a row without dbId", entity.name));
                assert!(row["_synced_at"].is_i64(), "{}: {reader}: _synced_at", entity.name);
                assert!(by_id.insert(id, row.clone()).is_none(), "{}: {reader}: dbId {id} twice", entity.name);
            }
            assert_eq!(by_id.len(), expected.len(), "{}: {reader}: row count", entity.name);
            for (id, want) in &expected {
                let got = by_id.get(id).unwrap_or_else(|| panic!("{}: {reader}: dbId {id} missing", entity.name));
                for (column, value) in want {
                    assert!(
                        same(&got[column], value),
                        "{}: {reader}: dbId {id} column {column}: {} != {}",
                        entity.name,
                        got[column],
                        value
                    );
                }
            }
        }
    }
}

/// Every commit of a table's log: (version, txn versions for `app_id`, applied raw files).
pub fn commits(table: &Path, app_id: &str) -> Vec<(u64, Vec<i64>, Vec<String>)> {
    let log = table.join("_delta_log");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&log).expect("log dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let Some(version) = name.strip_suffix(".json").and_then(|v| v.parse::<u64>().ok()) else { continue };
        let text = std::fs::read_to_string(&path).expect("log entry");
        let mut txns = Vec::new();
        let mut applied = Vec::new();
        for line in text.lines() {
            let value: Value = serde_json::from_str(line).expect("json line");
            if let Some(txn) = value.get("txn")
                && txn["appId"] == app_id
            {
                txns.push(txn["version"].as_i64().expect("txn version"));
            }
            if let Some(list) =
                value.pointer("/commitInfo/operationParameters/xledger.applied").and_then(|v| v.as_str())
            {
                let names: Vec<String> = serde_json::from_str(list).expect("applied list");
                applied.extend(names);
            }
        }
        out.push((version, txns, applied));
    }
    out
}

/// No raw file applied twice since the newest full-load commit... and txn versions strictly increase
/// between full loads; a full load commit may start again lower only for a `rebuild`.
pub fn assert_exactly_once(table: &Path, app_id: &str) {
    let entity = app_id;
    let commits = commits(table, app_id);
    let mut seen = std::collections::BTreeSet::new();
    let mut last_txn = i64::MIN;
    for (version, txns, applied) in &commits {
        assert!(txns.len() <= 1, "{entity}: version {version} has {} txn actions", txns.len());
        if let Some(txn) = txns.first() {
            assert!(*txn > last_txn, "{entity}: version {version} txn {txn} does not exceed {last_txn}");
            last_txn = *txn;
            assert_eq!(applied.len(), 1, "{entity}: version {version} applies one raw file");
        }
        for name in applied {
            assert!(seen.insert(name.clone()), "{entity}: raw file {name} applied twice (again at version {version})");
        }
    }
}
