//! Rows/s and MB/s of the writer for timesheets and transactions, 10 000-node pages:
//!
//! - `convert/<entity>/direct`: the nodes' JSON texts → RecordBatch, as every page goes through
//!   [`PageConverter`];
//! - `convert/<entity>/serde_arrow`: the same output via `serde_json::Value` → flattened records →
//!   `serde_arrow` (with the exactness checks `serde_arrow` lacks done first, as they would have to be);
//! - `write/<entity>`: the nodes' texts → Parquet (zstd) part file in an in-memory lake, end to end;
//!   measured in rows/s and, in `write_bytes/<entity>`, in MB/s of input JSON.
//!
//! Run with `cargo bench -p lake-writer --bench convert`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lake_writer::{FileKind, Lake, LakeOptions, PageConverter, PartSpec, RunStamp, WriterOptions};
use serde_json::Value;
use xledger_model::page::MutationType;
use xledger_model::{ColumnKind, EntitySpec, MUTATION_TYPE_COLUMN, SYNCED_AT_COLUMN};

const PAGE: usize = 10_000;

fn page(entity: &'static EntitySpec) -> Vec<String> {
    // All columns filled except ~2% nulls, as in a realistic page.
    let nulls = support::NullRates { object: 0.01, leaf: 0.01 };
    support::raw(&support::nodes(entity, 1, PAGE, 42, nulls))
}

fn json_bytes(raw: &[String]) -> u64 {
    raw.iter().map(|n| n.len() as u64).sum()
}

/// One cell of a flattened record for serde_arrow (serde_json's `Value` would hand positive
/// integers over as u64, which serde_arrow's timestamp builder refuses).
enum Cell {
    Null,
    I64(i64),
    I32(i32),
    Str(String),
    F64(f64),
    Bool(bool),
}

impl serde::Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => s.serialize_none(),
            Cell::I64(v) => s.serialize_i64(*v),
            Cell::I32(v) => s.serialize_i32(*v),
            Cell::Str(v) => s.serialize_str(v),
            Cell::F64(v) => s.serialize_f64(*v),
            Cell::Bool(v) => s.serialize_bool(*v),
        }
    }
}

/// A flattened record: column name → cell, serialized as a map (a struct to serde_arrow).
struct Row(Vec<(&'static str, Cell)>);

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The serde_arrow alternative: a `Value` per node, flattened with dotted keys, values converted
/// to what serde_arrow expects for each Arrow type (exactness checks first: serde_arrow cuts digits).
fn serde_arrow_batch(entity: &EntitySpec, raw: &[String], fields: &[arrow::datatypes::FieldRef]) -> RecordBatch {
    let synced_at = Utc::now().timestamp_micros();
    let epoch = NaiveDate::default();
    let rows: Vec<Row> = raw
        .iter()
        .map(|node| {
            let node: Value = serde_json::from_str(node).unwrap();
            let mut row = Vec::with_capacity(entity.columns.len() + 2);
            for column in entity.columns {
                let mut current = Some(&node);
                for key in column.path {
                    current = current.and_then(|v| v.get(*key)).filter(|v| !v.is_null());
                }
                let cell = match (column.kind, current) {
                    (_, None) => Cell::Null,
                    (ColumnKind::Int64, Some(Value::String(s))) => Cell::I64(s.parse().unwrap()),
                    (ColumnKind::Int64, Some(v)) => Cell::I64(v.as_i64().unwrap()),
                    (ColumnKind::Decimal { precision, scale }, Some(Value::String(s))) => {
                        xledger_model::decimal::parse_decimal(s, precision, scale).unwrap();
                        Cell::Str(s.clone())
                    }
                    (ColumnKind::Timestamp, Some(Value::String(s))) => {
                        Cell::I64(xledger_model::time::parse_xledger_datetime(s).unwrap().timestamp_micros())
                    }
                    (ColumnKind::Date, Some(Value::String(s))) => {
                        Cell::I32((xledger_model::time::parse_xledger_date(s).unwrap() - epoch).num_days() as i32)
                    }
                    (ColumnKind::Float64, Some(v)) => Cell::F64(v.as_f64().unwrap()),
                    (ColumnKind::Boolean, Some(v)) => Cell::Bool(v.as_bool().unwrap()),
                    (_, Some(v)) => Cell::Str(v.as_str().unwrap().to_string()),
                };
                row.push((column.name, cell));
            }
            row.push((MUTATION_TYPE_COLUMN, Cell::Str("ADDED".into())));
            row.push((SYNCED_AT_COLUMN, Cell::I64(synced_at)));
            Row(row)
        })
        .collect();
    serde_arrow::to_record_batch(fields, &rows).unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for name in ["timesheets", "transactions"] {
        let entity = xledger_model::entity(name).unwrap();
        let raw = page(entity);
        let nodes: Vec<(&str, MutationType)> = raw.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
        let fields: Vec<arrow::datatypes::FieldRef> = entity.arrow_schema().fields().iter().cloned().collect();
        let mut converter = PageConverter::new(entity);
        let now = Utc::now();

        // Both paths must produce the same batch, or the comparison means nothing.
        let direct = converter.convert_nodes(nodes.iter().copied(), now).unwrap();
        let via_serde_arrow = serde_arrow_batch(entity, &raw, &fields);
        for (index, field) in entity.arrow_schema().fields().iter().enumerate() {
            if field.name() != SYNCED_AT_COLUMN {
                assert_eq!(
                    direct.column(index).as_ref(),
                    via_serde_arrow.column(index).as_ref(),
                    "{name}: column {}",
                    field.name()
                );
            }
        }

        let mut group = c.benchmark_group(format!("convert/{name}"));
        group.sample_size(10).throughput(Throughput::Elements(PAGE as u64));
        group.bench_function("direct", |b| {
            b.iter(|| black_box(converter.convert_nodes(nodes.iter().copied(), now).unwrap()))
        });
        group.bench_function("serde_arrow", |b| b.iter(|| black_box(serde_arrow_batch(entity, &raw, &fields))));
        group.finish();

        // Nodes → Parquet part, as a full load writes a page.
        let write_page = |lake: &Lake| {
            let nodes = &nodes;
            let lake = lake.clone();
            async move {
                let stamp = RunStamp::now();
                let spec =
                    PartSpec { kind: FileKind::FullSync, stamp, part: None, synced_at: now, extra_metadata: vec![] };
                // A fresh lake name per iteration: files are never replaced.
                let _ = lake.delete_entity(entity.name).await;
                let mut writer = lake.create_part(entity, spec, &WriterOptions::default()).await.unwrap();
                writer.write_nodes(nodes.iter().copied()).await.unwrap();
                writer.finish().await.unwrap()
            }
        };
        let lake = runtime.block_on(Lake::open("memory://", LakeOptions::default())).unwrap();
        let file = runtime.block_on(write_page(&lake));
        eprintln!("{name}: {PAGE} rows, {} bytes of JSON -> {} bytes of Parquet (zstd)", json_bytes(&raw), file.bytes);
        let mut group = c.benchmark_group("write");
        group.sample_size(10).throughput(Throughput::Elements(PAGE as u64));
        group.bench_function(name, |b| b.iter(|| runtime.block_on(write_page(&lake))));
        group.finish();
        let mut group = c.benchmark_group("write_bytes");
        group.sample_size(10).throughput(Throughput::Bytes(json_bytes(&raw)));
        group.bench_function(name, |b| b.iter(|| runtime.block_on(write_page(&lake))));
        group.finish();
    }
}

criterion_group!(convert, benches);
criterion_main!(convert);
