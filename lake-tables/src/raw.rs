//! Reading the committed raw files of an entity: which of them the contract's rebuild uses, in
//! which order, and their rows converted to the table's columns.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use lake_writer::read::LakeFileReader;
use lake_writer::{FileKind, Lake, LakeFile, metadata_keys};
use object_store::ObjectStoreExt;
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use xledger_model::{EntitySpec, MUTATION_TYPE_COLUMN};

use crate::error::TableError;

/// A change file whose name stamp is this much older than the newest raw file a table applied is
/// taken as applied (or superseded) without reading its footer. The engine's `_synced_at` lies
/// within a second of its run stamp (it is `max(now, stamp)` at the run's start), so the slack is
/// generous; it only keeps `catch_up` from reading every old footer on every pass.
pub const STAMP_SLACK: Duration = Duration::hours(1);

/// The newest complete full sync.
#[derive(Debug, Clone)]
pub(crate) struct FullLoad {
    pub manifest: String,
    pub parts: Vec<String>,
    pub synced_at: DateTime<Utc>,
}

/// A `sync_changes` file with its `_synced_at`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChangeFile {
    pub synced_at: DateTime<Utc>,
    pub name: String,
}

/// The raw files the rebuild rule uses, in order (change files limited to the candidates).
#[derive(Debug, Clone)]
pub(crate) struct RawPlan {
    pub full: Option<FullLoad>,
    /// Change files later than the full load, in (`_synced_at`, name) order.
    pub changes: Vec<ChangeFile>,
}

fn lake_error(entity: &EntitySpec, source: lake_writer::LakeError) -> TableError {
    TableError::Lake { entity: entity.name.to_string(), source: Box::new(source) }
}

/// Lists the raw files; reads the newest manifest and the footers of the change files whose stamp is
/// not older than `not_before - STAMP_SLACK` (all of them when `not_before` is `None`).
pub(crate) async fn plan(
    lake: &Lake,
    entity: &'static EntitySpec,
    not_before: Option<DateTime<Utc>>,
) -> Result<RawPlan, TableError> {
    let files = lake.list(entity.name).await.map_err(|e| lake_error(entity, e))?;
    let newest_manifest = files
        .iter()
        .filter(|f| f.is_manifest && f.kind == Some(FileKind::FullSync))
        .max_by(|a, b| (a.stamp, &a.name).cmp(&(b.stamp, &b.name)));
    let mut full = None;
    if let Some(manifest_file) = newest_manifest {
        let manifest = lake.read_manifest(entity.name, &manifest_file.name).await.map_err(|e| lake_error(entity, e))?;
        let synced_at = match manifest.synced_at {
            Some(t) => t,
            None => match manifest.files.first() {
                Some(first) => synced_at_of(lake, entity, first).await?,
                None => manifest_file.stamp.map(|s| s.as_datetime()).unwrap_or_default(),
            },
        };
        full = Some(FullLoad { manifest: manifest_file.name.clone(), parts: manifest.files.clone(), synced_at });
    }
    let threshold = not_before.map(|t| t - STAMP_SLACK);
    let mut changes = Vec::new();
    for file in files.iter().filter(|f| is_change_file(f)) {
        if let (Some(threshold), Some(stamp)) = (threshold, file.stamp)
            && stamp.as_datetime() < threshold
        {
            continue;
        }
        let synced_at = synced_at_of(lake, entity, &file.name).await?;
        if full.as_ref().is_none_or(|f| synced_at > f.synced_at) {
            changes.push(ChangeFile { synced_at, name: file.name.clone() });
        }
    }
    changes.sort();
    Ok(RawPlan { full, changes })
}

fn is_change_file(file: &LakeFile) -> bool {
    file.kind == Some(FileKind::SyncChanges) && !file.is_manifest && !file.is_temp
}

async fn synced_at_of(lake: &Lake, entity: &EntitySpec, name: &str) -> Result<DateTime<Utc>, TableError> {
    let metadata = lake.file_metadata(entity.name, name).await.map_err(|e| lake_error(entity, e))?;
    metadata
        .get(metadata_keys::SYNCED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| TableError::RawFile {
            entity: entity.name.to_string(),
            file: name.to_string(),
            reason: format!("no readable {} metadata", metadata_keys::SYNCED_AT),
        })
}

/// The table's Arrow schema for an entity: its raw columns in order, then `_synced_at`.
pub(crate) fn table_schema(entity: &EntitySpec) -> Schema {
    let raw = entity.arrow_schema();
    let fields: Vec<Arc<Field>> = raw.fields().iter().filter(|f| f.name() != MUTATION_TYPE_COLUMN).cloned().collect();
    Schema::new(fields)
}

/// Opens a raw file for streaming, batch by batch.
pub(crate) async fn open(
    lake: &Lake,
    entity: &EntitySpec,
    name: &str,
    batch_rows: usize,
) -> Result<ParquetRecordBatchStream<LakeFileReader>, TableError> {
    let raw_error =
        |reason: String| TableError::RawFile { entity: entity.name.to_string(), file: name.to_string(), reason };
    let path = lake.path_of(entity.name, name).map_err(|e| lake_error(entity, e))?;
    let store = lake.store();
    let meta = store.head(&path).await.map_err(|e| raw_error(e.to_string()))?;
    let reader = LakeFileReader::new(store, path, meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| raw_error(e.to_string()))?;
    builder.with_batch_size(batch_rows).build().map_err(|e| raw_error(e.to_string()))
}

/// The next batch of a raw file, as table columns plus its `mutationType` column.
pub(crate) async fn next_batch(
    stream: &mut ParquetRecordBatchStream<LakeFileReader>,
    entity: &EntitySpec,
    name: &str,
    schema: &SchemaRef,
) -> Result<Option<(RecordBatch, StringArray)>, TableError> {
    let raw_error =
        |reason: String| TableError::RawFile { entity: entity.name.to_string(), file: name.to_string(), reason };
    let Some(batch) = stream.try_next().await.map_err(|e| raw_error(e.to_string()))? else { return Ok(None) };
    let mutation = batch
        .column_by_name(MUTATION_TYPE_COLUMN)
        .and_then(|c| c.as_string_opt::<i32>().cloned())
        .ok_or_else(|| raw_error(format!("no Utf8 column {MUTATION_TYPE_COLUMN}")))?;
    let table = to_table_batch(&batch, schema).map_err(raw_error)?;
    Ok(Some((table, mutation)))
}

/// Picks the table's columns out of a batch by name. A column the batch lacks becomes nulls when
/// the table allows it (a column added to the table later); a type mismatch is an error.
pub(crate) fn to_table_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => {
                if !field.is_nullable() && column.null_count() > 0 {
                    return Err(format!("column {} has nulls but the table's column is NOT NULL", field.name()));
                }
                columns.push(column.clone());
            }
            Some(column) => {
                return Err(format!(
                    "column {} is {}, the table has {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ));
            }
            None if field.is_nullable() => columns.push(new_null_array(field.data_type(), batch.num_rows())),
            None => return Err(format!("no column {}", field.name())),
        }
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}
