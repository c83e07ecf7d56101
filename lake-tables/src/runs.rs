//! The `_sync_runs` history table: one row per entity per pass, appended by every pass, so a
//! freshness report is one query.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::schema::StructType;
use delta_kernel::transaction::UpdateTableOperation;

use crate::delta::{CommitSpec, DataFileWriter, ENTITY_PROPERTY, Folder, TableRef, WRITER_PROPERTY, WRITER_VALUE};
use crate::error::TableError;
use crate::tables::Tables;

/// The run-history table's folder under the tables root.
pub const SYNC_RUNS_TABLE: &str = "_sync_runs";

const MAX_ATTEMPTS: u32 = 16;

/// One entity's share of one pass. Callers pass `error` text without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub pass_id: String,
    pub entity: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `full`, `resume`, `incremental`, `gap-resync`, `idle`, … as the engine names it.
    pub mode: String,
    pub rows_added: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub files: u64,
    pub requests: u64,
    pub bytes: u64,
    /// `ok`, `failed`, `stopped`, … as the engine names it.
    pub outcome: String,
    pub error: Option<String>,
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The `_sync_runs` columns.
pub fn sync_runs_schema() -> Schema {
    Schema::new(vec![
        Field::new("pass_id", DataType::Utf8, false),
        Field::new("entity", DataType::Utf8, false),
        Field::new("started_at", timestamp(), false),
        Field::new("finished_at", timestamp(), false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("rows_added", DataType::Int64, false),
        Field::new("rows_updated", DataType::Int64, false),
        Field::new("rows_deleted", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("requests", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ])
}

fn batch(schema: Arc<Schema>, runs: &[RunRecord]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let text = |f: fn(&RunRecord) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(runs.iter().map(f))) };
    let count = |f: fn(&RunRecord) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(runs.iter().map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))))
    };
    let time = |f: fn(&RunRecord) -> DateTime<Utc>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(runs.iter().map(|r| f(r).timestamp_micros()))
                .with_timezone("UTC"),
        )
    };
    RecordBatch::try_new(
        schema,
        vec![
            text(|r| &r.pass_id),
            text(|r| &r.entity),
            time(|r| r.started_at),
            time(|r| r.finished_at),
            text(|r| &r.mode),
            count(|r| r.rows_added),
            count(|r| r.rows_updated),
            count(|r| r.rows_deleted),
            count(|r| r.files),
            count(|r| r.requests),
            count(|r| r.bytes),
            text(|r| &r.outcome),
            Arc::new(StringArray::from_iter(runs.iter().map(|r| r.error.as_deref()))),
        ],
    )
}

impl Tables {
    /// Appends rows to `_sync_runs` (creating it on first use) in one commit; returns the version.
    /// A commit conflict with another process re-reads the log and retries, so no row is lost.
    pub async fn append_runs(&self, runs: &[RunRecord]) -> Result<Option<u64>, TableError> {
        if runs.is_empty() {
            return Ok(None);
        }
        let table = self.table_ref(SYNC_RUNS_TABLE)?;
        let foreign = |reason: String| TableError::ForeignTable {
            entity: SYNC_RUNS_TABLE.to_string(),
            table: table.description.clone(),
            reason,
        };
        match self.kernel.folder(&table).await? {
            Folder::Empty => self.create_runs_table(&table).await?,
            Folder::Other(reason) => return Err(foreign(reason)),
            Folder::Delta => {}
        }
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self.kernel.snapshot(&table).await?;
            let properties = &snapshot.table_properties().unknown_properties;
            if properties.get(WRITER_PROPERTY).map(String::as_str) != Some(WRITER_VALUE)
                || properties.get(ENTITY_PROPERTY).map(String::as_str) != Some(SYNC_RUNS_TABLE)
            {
                return Err(foreign("its metadata does not name it xledger-sync's run history".into()));
            }
            let files = self.kernel.files(&table, &snapshot).await?;
            let pending = self
                .kernel
                .begin(
                    &table,
                    &snapshot,
                    CommitSpec {
                        operation: UpdateTableOperation::Write,
                        data_change: true,
                        txn: None,
                        parameters: vec![("xledger.passes".into(), runs.len().to_string())],
                        new_columns: Vec::new(),
                        blind_append: true,
                    },
                )
                .await?;
            let rows = batch(pending.target.arrow_schema.clone(), runs)
                .map_err(|e| foreign(format!("its schema differs: {e}")))?;
            let store = self.kernel.store.clone();
            let mut writer = DataFileWriter::new(&store, &table, &pending.target, self.options.row_group_rows)?;
            writer.write(&table, &rows).await?;
            let (add, _) = writer.finish(&store, &table, &pending.target, self.options.clock.now()).await?;
            if let Some(committed) = self.kernel.commit(&table, &files, &[], pending, vec![add]).await? {
                let interval = self.options.checkpoint_interval.max(1);
                if committed.version.is_multiple_of(interval)
                    && let Some(snapshot) = committed.snapshot
                {
                    self.kernel.checkpoint(&table, snapshot).await?;
                }
                return Ok(Some(committed.version));
            }
            // Another process committed first; its file stays an orphan until vacuum.
        }
        Err(TableError::Contended {
            entity: SYNC_RUNS_TABLE.to_string(),
            table: table.description.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn create_runs_table(&self, table: &TableRef) -> Result<(), TableError> {
        let schema = StructType::try_from_arrow(&sync_runs_schema()).map_err(|e| TableError::Delta {
            entity: SYNC_RUNS_TABLE.to_string(),
            table: table.description.clone(),
            operation: "converting the schema",
            source: Box::new(e.into()),
        })?;
        self.kernel
            .create(
                table,
                &schema,
                &[(WRITER_PROPERTY, WRITER_VALUE), (ENTITY_PROPERTY, SYNC_RUNS_TABLE)],
                self.options.clock.now(),
            )
            .await
    }
}
