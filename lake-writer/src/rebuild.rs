//! The lake contract's "rebuilding current state": what a reader of the lake sees, row by row.
//!
//! Take the newest complete full sync (the parts its manifest lists), then apply the later
//! `sync_changes` files in (`_synced_at`, name) order: ADDED/UPDATED upsert by dbId, DELETED
//! removes. Parts without a manifest belong to an unfinished run and are ignored. Used by the
//! end-to-end tests and by `status`; it reads whole files, so it is for checking, not for
//! production-size lakes.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use futures::TryStreamExt;
use serde_json::Value;
use xledger_model::{ColumnKind, EntitySpec, JsonRepr, MUTATION_TYPE_COLUMN, SYNCED_AT_COLUMN};

use crate::error::{ConvertError, ConvertReason, LakeError};
use crate::lake::Lake;
use crate::naming::FileKind;
use crate::writer::metadata_keys;

/// One row in canonical form, by column: Int64 → number; Decimal → exact text with the column's
/// scale; Date → `yyyy-MM-dd`; Timestamp → RFC 3339 UTC with microseconds
/// (`2024-03-31T01:30:00.000000Z`); Utf8 → string; Float64 → number; Boolean → bool; null → null.
/// Holds the node columns only (not `mutationType` / `_synced_at`).
pub type CanonicalRow = BTreeMap<String, Value>;

/// The entity's current state as the lake holds it, by dbId.
pub async fn current_state(lake: &Lake, entity: &'static EntitySpec) -> Result<BTreeMap<i64, CanonicalRow>, LakeError> {
    let files = lake.list(entity.name).await?;
    let newest_full = files
        .iter()
        .filter(|f| f.is_manifest && f.kind == Some(FileKind::FullSync))
        .max_by(|a, b| (a.stamp, &a.name).cmp(&(b.stamp, &b.name)));
    let mut state = BTreeMap::new();
    let mut after: Option<DateTime<Utc>> = None;
    if let Some(manifest_file) = newest_full {
        let manifest = lake.read_manifest(entity.name, &manifest_file.name).await?;
        for name in &manifest.files {
            apply_file(lake, entity, name, &mut state).await?;
        }
        after = match manifest.synced_at {
            Some(t) => Some(t),
            None => match manifest.files.first() {
                Some(first) => Some(synced_at_of(lake, entity, first).await?),
                None => manifest_file.stamp.map(|s| s.as_datetime()),
            },
        };
    }
    let mut changes = Vec::new();
    for file in files.iter().filter(|f| f.kind == Some(FileKind::SyncChanges) && !f.is_manifest) {
        let synced_at = synced_at_of(lake, entity, &file.name).await?;
        if after.is_none_or(|after| synced_at > after) {
            changes.push((synced_at, file.name.clone()));
        }
    }
    changes.sort();
    for (_, name) in changes {
        apply_file(lake, entity, &name, &mut state).await?;
    }
    Ok(state)
}

async fn synced_at_of(lake: &Lake, entity: &EntitySpec, name: &str) -> Result<DateTime<Utc>, LakeError> {
    let metadata = lake.file_metadata(entity.name, name).await?;
    metadata
        .get(metadata_keys::SYNCED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| LakeError::UnexpectedFile {
            lake: lake.describe(),
            path: name.to_string(),
            reason: format!("no readable {} metadata", metadata_keys::SYNCED_AT),
        })
}

async fn apply_file(
    lake: &Lake,
    entity: &'static EntitySpec,
    name: &str,
    state: &mut BTreeMap<i64, CanonicalRow>,
) -> Result<(), LakeError> {
    let unexpected =
        |reason: String| LakeError::UnexpectedFile { lake: lake.describe(), path: name.to_string(), reason };
    let builder = lake.open_parquet(entity.name, name).await?;
    let mut stream = builder.build().map_err(|source| LakeError::Parquet {
        lake: lake.describe(),
        path: name.to_string(),
        source: Box::new(source),
    })?;
    while let Some(batch) = stream.try_next().await.map_err(|source| LakeError::Parquet {
        lake: lake.describe(),
        path: name.to_string(),
        source: Box::new(source),
    })? {
        let rows = canonical_rows_from_batch(entity, &batch).map_err(unexpected)?;
        let mutation = batch
            .column_by_name(MUTATION_TYPE_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .ok_or_else(|| unexpected(format!("no Utf8 column {MUTATION_TYPE_COLUMN}")))?;
        if batch.column_by_name(SYNCED_AT_COLUMN).is_none() {
            return Err(unexpected(format!("no column {SYNCED_AT_COLUMN}")));
        }
        for (row_index, row) in rows.into_iter().enumerate() {
            let db_id = row
                .get("dbId")
                .and_then(Value::as_i64)
                .ok_or_else(|| unexpected(format!("row {row_index} has no dbId")))?;
            match mutation.value(row_index) {
                "ADDED" | "UPDATED" => {
                    state.insert(db_id, row);
                }
                "DELETED" => {
                    state.remove(&db_id);
                }
                other => return Err(unexpected(format!("row {row_index}: unknown mutationType {other:?}"))),
            }
        }
    }
    Ok(())
}

/// The node columns of every row of a batch in canonical form.
pub fn canonical_rows_from_batch(entity: &EntitySpec, batch: &RecordBatch) -> Result<Vec<CanonicalRow>, String> {
    let mut rows = vec![CanonicalRow::new(); batch.num_rows()];
    for column in entity.columns {
        let array = batch.column_by_name(column.name).ok_or_else(|| format!("no column {}", column.name))?;
        if array.data_type() != &column.kind.arrow_type() {
            return Err(format!(
                "column {} is {}, expected {}",
                column.name,
                array.data_type(),
                column.kind.arrow_type()
            ));
        }
        for (index, row) in rows.iter_mut().enumerate() {
            let value = if array.is_null(index) {
                Value::Null
            } else {
                match column.kind {
                    ColumnKind::Int64 => Value::from(array.as_primitive::<Int64Type>().value(index)),
                    ColumnKind::Decimal { scale, .. } => Value::from(xledger_model::decimal::format_decimal(
                        array.as_primitive::<Decimal128Type>().value(index),
                        scale,
                    )),
                    ColumnKind::Date => Value::from(format_date(array.as_primitive::<Date32Type>().value(index))),
                    ColumnKind::Timestamp => Value::from(format_timestamp_micros(
                        array.as_primitive::<TimestampMicrosecondType>().value(index),
                    )),
                    ColumnKind::Float64 => float_value(array.as_primitive::<Float64Type>().value(index)),
                    ColumnKind::Boolean => Value::from(array.as_boolean().value(index)),
                    ColumnKind::Utf8 => {
                        debug_assert_eq!(array.data_type(), &DataType::Utf8);
                        Value::from(array.as_string::<i32>().value(index))
                    }
                }
            };
            row.insert(column.name.to_string(), value);
        }
    }
    Ok(rows)
}

fn float_value(v: f64) -> Value {
    serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
}

fn format_date(days: i32) -> String {
    let date = NaiveDate::default() + chrono::Duration::days(i64::from(days));
    date.format("%Y-%m-%d").to_string()
}

/// RFC 3339 UTC with exactly six fractional digits, e.g. `2024-03-31T01:30:00.000000Z`.
pub fn format_timestamp_micros(micros: i64) -> String {
    match DateTime::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => format!("<out of range: {micros} µs>"),
    }
}

/// The canonical form computed straight from an Xledger node, independently of the writer's
/// Arrow path (tests compare the two). Same rules as the writer: missing fields, wrong JSON
/// types and inexact decimals are errors.
///
/// ```
/// use lake_writer::rebuild::canonical_row_from_node;
/// let customers = xledger_model::entity("customers").unwrap();
/// let node = serde_json::json!({"dbId": 7, "description": "Acme", "email": null, "code": "A1",
///     "number": 1001, "company": null});
/// let row = canonical_row_from_node(customers, &node).unwrap();
/// assert_eq!(row["dbId"], 7);
/// assert_eq!(row["company.name"], serde_json::Value::Null);
/// ```
pub fn canonical_row_from_node(entity: &'static EntitySpec, node: &Value) -> Result<CanonicalRow, ConvertError> {
    let db_id = node.get("dbId").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let error = |column: &str, value: String, reason: ConvertReason| ConvertError {
        entity: entity.name,
        db_id,
        column: column.to_string(),
        value,
        reason,
    };
    let mut row = CanonicalRow::new();
    'columns: for column in entity.columns {
        let mut current = node;
        for (depth, key) in column.path.iter().enumerate() {
            let Value::Object(object) = current else {
                let path = column.path[..depth].join(".");
                return Err(error(
                    &path,
                    current.to_string(),
                    ConvertReason::WrongJsonType { expected: "object", found: json_type(current) },
                ));
            };
            match object.get(*key) {
                None => return Err(error(&column.path[..=depth].join("."), String::new(), ConvertReason::Missing)),
                Some(Value::Null) if depth + 1 < column.path.len() => {
                    row.insert(column.name.to_string(), Value::Null);
                    continue 'columns;
                }
                Some(next) => current = next,
            }
        }
        let value = match current {
            Value::Null if !column.nullable => {
                return Err(error(column.name, "null".into(), ConvertReason::UnexpectedNull));
            }
            Value::Null => Value::Null,
            other => {
                let expected = match column.json {
                    JsonRepr::String => "string",
                    JsonRepr::Number => "number",
                    JsonRepr::Boolean => "boolean",
                };
                if json_type(other) != expected {
                    return Err(error(
                        column.name,
                        other.to_string(),
                        ConvertReason::WrongJsonType { expected, found: json_type(other) },
                    ));
                }
                canonical_leaf(column.kind, other).map_err(|reason| error(column.name, other.to_string(), reason))?
            }
        };
        row.insert(column.name.to_string(), value);
    }
    Ok(row)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn canonical_leaf(kind: ColumnKind, value: &Value) -> Result<Value, ConvertReason> {
    Ok(match (kind, value) {
        (ColumnKind::Int64, Value::Number(n)) => Value::from(n.as_i64().ok_or(ConvertReason::NotAnInteger)?),
        (ColumnKind::Int64, Value::String(s)) => {
            Value::from(s.parse::<i64>().map_err(|_| ConvertReason::NotAnInteger)?)
        }
        (ColumnKind::Decimal { precision, scale }, Value::String(s)) => {
            let scaled = xledger_model::decimal::parse_decimal(s, precision, scale)
                .map_err(|e| ConvertReason::Decimal(e.to_string()))?;
            Value::from(xledger_model::decimal::format_decimal(scaled, scale))
        }
        (ColumnKind::Date, Value::String(s)) => {
            let date = xledger_model::time::parse_xledger_date(s).map_err(|e| ConvertReason::Time(e.to_string()))?;
            Value::from(date.format("%Y-%m-%d").to_string())
        }
        (ColumnKind::Timestamp, Value::String(s)) => {
            let t = xledger_model::time::parse_xledger_datetime(s).map_err(|e| ConvertReason::Time(e.to_string()))?;
            Value::from(t.to_rfc3339_opts(SecondsFormat::Micros, true))
        }
        (ColumnKind::Float64, Value::Number(n)) => float_value(n.as_f64().ok_or(ConvertReason::BadText("float"))?),
        (ColumnKind::Boolean, Value::Bool(b)) => Value::from(*b),
        (ColumnKind::Utf8, Value::String(s)) => Value::from(s.as_str()),
        (_, other) => {
            return Err(ConvertReason::WrongJsonType {
                expected: "value of the column's kind",
                found: json_type(other),
            });
        }
    })
}
