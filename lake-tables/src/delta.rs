//! The thin layer over `delta_kernel`: the engine, table creation at protocol 1/2, snapshots, the
//! table's file list with dbId statistics, data files written with kernel statistics, and commits.
//!
//! `delta_kernel`'s API is synchronous and drives its I/O on an executor of its own; every kernel
//! call runs on a short-lived plain thread ([`blocking`]) so that it never blocks the caller's
//! runtime (the CLI runs a current-thread runtime) and never calls `block_in_place` from inside one.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef as ArrowSchemaRef};
use chrono::{DateTime, Utc};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::TryIntoArrow;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::schema::{StructField, StructType};
use delta_kernel::transaction::{BoundWriteContext, CommitResult, Transaction, UpdateTableOperation};
use delta_kernel::{EngineData, FileMeta, FilteredEngineData, Snapshot, SnapshotRef};
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::stats::FileStatsAccumulator;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder, build_add_file_metadata};
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use url::Url;

use crate::error::TableError;

/// The engine name written into every commit.
pub(crate) const ENGINE_INFO: &str = concat!("xledger-sync/", env!("CARGO_PKG_VERSION"));
/// Table property naming the entity a table belongs to; a table without it is not ours.
pub(crate) const ENTITY_PROPERTY: &str = "xledger.entity";
/// Table property naming the writer.
pub(crate) const WRITER_PROPERTY: &str = "xledger.writer";
pub(crate) const WRITER_VALUE: &str = "xledger-sync";

/// The kernel engine over one object store, shared by all tables of a [`crate::Tables`].
pub(crate) struct Kernel {
    /// Always `Some` until dropped (see `Drop`).
    engine: Option<Arc<DefaultEngine<TokioMultiThreadExecutor>>>,
    pub store: Arc<dyn ObjectStore>,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // The engine owns a tokio runtime, which must not be dropped inside an async context (tokio
        // panics): let a plain thread drop it.
        if let Some(engine) = self.engine.take() {
            let _ = std::thread::Builder::new().name("delta-kernel-drop".into()).spawn(move || drop(engine));
        }
    }
}

/// Where one table lives.
#[derive(Debug, Clone)]
pub(crate) struct TableRef {
    /// The entity (or `_sync_runs`), for messages.
    pub entity: String,
    /// The table root in the store (`<root>/<entity>`).
    pub path: Path,
    /// The table root as the kernel sees it; only its path matters (the engine has one store).
    pub url: Url,
    /// The table location for messages (no secrets).
    pub description: String,
}

/// One live data file of a table.
#[derive(Debug, Clone)]
pub(crate) struct TableFile {
    /// Relative to the table root, as in the log.
    pub path: String,
    pub size: u64,
    pub rows: u64,
    /// dbId bounds from the file's statistics; `None` for a file without them (never written by us).
    pub db_ids: Option<(i64, i64)>,
    /// Which scan batch and row the file came from (to stage its removal).
    batch: usize,
    row: usize,
}

/// The live files of a snapshot plus what is needed to remove some of them.
pub(crate) struct FileSet {
    pub files: Vec<TableFile>,
    batches: Vec<RecordBatch>,
}

impl FileSet {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The kernel's removal input for the files whose indexes are in `remove`.
    fn removal(&self, remove: &[usize]) -> Result<Vec<FilteredEngineData>, delta_kernel::KernelError> {
        let mut selections: Vec<Vec<bool>> = self.batches.iter().map(|b| vec![false; b.num_rows()]).collect();
        for &index in remove {
            let file = &self.files[index];
            selections[file.batch][file.row] = true;
        }
        let mut out = Vec::new();
        for (batch, selection) in self.batches.iter().zip(selections) {
            if selection.iter().any(|s| *s) {
                let data: Box<dyn EngineData> = Box::new(ArrowEngineData::new(batch.clone()));
                out.push(FilteredEngineData::try_new(data, selection)?);
            }
        }
        Ok(out)
    }
}

/// What a table folder holds.
pub(crate) enum Folder {
    /// Nothing there yet.
    Empty,
    /// A Delta log.
    Delta,
    /// Objects, but no Delta log.
    Other(String),
}

/// Runs a synchronous kernel call off the caller's runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, delta_kernel::KernelError> + Send + 'static,
) -> Result<T, delta_kernel::KernelError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("delta-kernel".into())
        .spawn(move || {
            // The receiver is gone only when the caller's future was dropped: nobody to tell.
            let _ = sender.send(f());
        })
        .map_err(|e| delta_kernel::KernelError::generic(format!("cannot start a thread for the Delta library: {e}")))?;
    receiver.await.map_err(|_| delta_kernel::KernelError::generic("a Delta library call panicked"))?
}

impl Kernel {
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Kernel, delta_kernel::KernelError> {
        // Two workers: the kernel's I/O is a few requests at a time; the data path is ours.
        let executor = TokioMultiThreadExecutor::new_owned_runtime(Some(2), Some(4))?;
        let sorted: Arc<dyn ObjectStore> = Arc::new(SortedListing(store.clone()));
        let engine = DefaultEngineBuilder::new(sorted).with_task_executor(Arc::new(executor)).build();
        Ok(Kernel { engine: Some(Arc::new(engine)), store })
    }

    fn engine(&self) -> Result<Arc<DefaultEngine<TokioMultiThreadExecutor>>, delta_kernel::KernelError> {
        self.engine.clone().ok_or_else(|| delta_kernel::KernelError::generic("the Delta engine is shut down"))
    }

    fn delta_error(table: &TableRef, operation: &'static str, source: delta_kernel::KernelError) -> TableError {
        TableError::Delta {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation,
            source: Box::new(source),
        }
    }

    pub fn store_error(
        table: &TableRef,
        operation: &'static str,
        path: &Path,
        source: object_store::Error,
    ) -> TableError {
        TableError::Store {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation,
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    /// What the table folder holds, from one delimited listing.
    pub async fn folder(&self, table: &TableRef) -> Result<Folder, TableError> {
        let listing = self
            .store
            .list_with_delimiter(Some(&table.path))
            .await
            .map_err(|e| Self::store_error(table, "listing", &table.path, e))?;
        let has_log = listing.common_prefixes.iter().any(|p| p.filename() == Some("_delta_log"));
        if has_log {
            // A local directory can outlive its entries (an interrupted recreate): empty is no log.
            let log = table.path.clone().join("_delta_log");
            let entries = self
                .store
                .list_with_delimiter(Some(&log))
                .await
                .map_err(|e| Self::store_error(table, "listing", &log, e))?;
            if !entries.objects.is_empty() {
                return Ok(Folder::Delta);
            }
        }
        let mut listing = listing;
        listing.common_prefixes.retain(|p| p.filename() != Some("_delta_log"));
        let first = listing
            .objects
            .first()
            .map(|o| o.location.to_string())
            .or_else(|| listing.common_prefixes.first().map(|p| format!("{p}/")));
        Ok(match first {
            None => Folder::Empty,
            Some(first) => Folder::Other(format!("it holds {first} but no _delta_log")),
        })
    }

    /// Creates an empty table at protocol reader 1 / writer 2 (no table features), which
    /// `delta_kernel`'s own `create_table` cannot do (it always writes 3/7): version 0 is three
    /// action lines whose schema is serialised by the kernel's own `StructType`; every later
    /// commit goes through the kernel. Put-if-absent: a concurrent creator wins and we use its table.
    pub async fn create(
        &self,
        table: &TableRef,
        schema: &StructType,
        properties: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<(), TableError> {
        let schema_string = serde_json::to_string(schema).map_err(|e| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "serialising the schema of",
            path: table.path.to_string(),
            reason: e.to_string(),
        })?;
        let configuration: serde_json::Map<String, serde_json::Value> =
            properties.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
        let millis = now.timestamp_millis();
        let lines = [
            serde_json::json!({"commitInfo": {
                "timestamp": millis,
                "operation": "CREATE TABLE",
                "operationParameters": {},
                "engineInfo": ENGINE_INFO,
                "isBlindAppend": true,
            }}),
            serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            serde_json::json!({"metaData": {
                "id": uuid::Uuid::new_v4().to_string(),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string,
                "partitionColumns": [],
                "configuration": configuration,
                "createdTime": millis,
            }}),
        ];
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line.to_string().as_bytes());
            body.push(b'\n');
        }
        let path = table.path.clone().join("_delta_log").join(format!("{:020}.json", 0));
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&path, PutPayload::from(body), options).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(Self::store_error(table, "creating", &path, e)),
        }
    }

    /// The table's newest snapshot.
    pub async fn snapshot(&self, table: &TableRef) -> Result<SnapshotRef, TableError> {
        let engine = self.engine().map_err(|e| Self::delta_error(table, "reading the log", e))?;
        let url = table.url.clone();
        blocking(move || Snapshot::builder_for(url.as_str()).build(engine.as_ref()))
            .await
            .map_err(|e| Self::delta_error(table, "reading the log", e))
    }

    /// The table as of `version`.
    pub async fn snapshot_at(&self, table: &TableRef, version: u64) -> Result<SnapshotRef, TableError> {
        let engine = self.engine().map_err(|e| Self::delta_error(table, "reading the log", e))?;
        let url = table.url.clone();
        blocking(move || Snapshot::builder_for(url.as_str()).at_version(version).build(engine.as_ref()))
            .await
            .map_err(|e| Self::delta_error(table, "reading an older version of the log", e))
    }

    /// The snapshot's txn version for `app_id`.
    pub async fn app_version(
        &self,
        table: &TableRef,
        snapshot: &SnapshotRef,
        app_id: &str,
    ) -> Result<Option<i64>, TableError> {
        let engine = self.engine().map_err(|e| Self::delta_error(table, "starting the Delta engine", e))?;
        let snapshot = snapshot.clone();
        let app_id = app_id.to_string();
        blocking(move || snapshot.get_app_id_version(&app_id, engine.as_ref()))
            .await
            .map_err(|e| Self::delta_error(table, "reading the txn version", e))
    }

    /// The live data files with their sizes, row counts and dbId bounds (log only, no data reads).
    pub async fn files(&self, table: &TableRef, snapshot: &SnapshotRef) -> Result<FileSet, TableError> {
        let engine = self.engine().map_err(|e| Self::delta_error(table, "starting the Delta engine", e))?;
        let snapshot = snapshot.clone();
        let batches = blocking(move || -> Result<Vec<(RecordBatch, Vec<bool>)>, delta_kernel::KernelError> {
            let scan = snapshot.scan_builder().build()?;
            let mut out = Vec::new();
            for metadata in scan.scan_metadata(engine.as_ref())? {
                let (data, selection) = metadata?.scan_files.into_parts();
                let arrow = ArrowEngineData::try_from_engine_data(data)?;
                out.push((arrow.record_batch().clone(), selection));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Self::delta_error(table, "listing the data files", e))?;
        let bad = |reason: String| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "reading the file list of",
            path: table.path.to_string(),
            reason,
        };
        let mut files = Vec::new();
        let mut kept = Vec::new();
        for (batch_index, (batch, selection)) in batches.into_iter().enumerate() {
            let paths = batch
                .column_by_name("path")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| bad("no path column".into()))?;
            let sizes = batch
                .column_by_name("size")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| bad("no size column".into()))?;
            let stats = batch.column_by_name("stats").and_then(|c| c.as_string_opt::<i32>());
            for row in 0..batch.num_rows() {
                if !selection.get(row).copied().unwrap_or(true) || paths.is_null(row) {
                    continue;
                }
                let parsed = stats.filter(|s| !s.is_null(row)).map(|s| parse_stats(s.value(row)));
                let (rows, db_ids) = parsed.unwrap_or((0, None));
                files.push(TableFile {
                    path: paths.value(row).to_string(),
                    size: u64::try_from(sizes.value(row)).unwrap_or(0),
                    rows,
                    db_ids,
                    batch: batch_index,
                    row,
                });
            }
            kept.push(batch);
        }
        Ok(FileSet { files, batches: kept })
    }

    /// Starts a transaction on `snapshot`.
    pub async fn begin(
        &self,
        table: &TableRef,
        snapshot: &SnapshotRef,
        commit: CommitSpec,
    ) -> Result<Pending, TableError> {
        let engine = self.engine().map_err(|e| Self::delta_error(table, "starting the Delta engine", e))?;
        let snapshot = snapshot.clone();
        let built = blocking(move || -> Result<(Transaction, BoundWriteContext), delta_kernel::KernelError> {
            let mut builder = snapshot.update_table(commit.operation, ENGINE_INFO, commit.data_change);
            if let Some((app_id, version)) = commit.txn {
                builder = builder.with_transaction_id(app_id, version);
            }
            for field in commit.new_columns {
                builder = builder.add_column(field);
            }
            if commit.blind_append {
                builder = builder.with_blind_append();
            }
            builder = builder.with_operation_parameters(commit.parameters.into_iter().map(|(k, v)| (k, Some(v))));
            let transaction = builder.build(engine.as_ref(), Box::new(FileSystemCommitter::new()))?;
            let context = transaction.write_state()?.write_context_builder().build()?;
            Ok((transaction, context))
        })
        .await
        .map_err(|e| Self::delta_error(table, "starting a commit", e))?;
        let (transaction, context) = built;
        let arrow_schema: arrow::datatypes::Schema = context
            .physical_data_schema()
            .as_ref()
            .try_into_arrow()
            .map_err(|e| Self::delta_error(table, "converting the table schema", e.into()))?;
        Ok(Pending {
            transaction,
            target: WriteTarget { context: Arc::new(context), arrow_schema: Arc::new(arrow_schema) },
        })
    }

    /// Commits; `Ok(None)` when another writer committed this version first.
    pub async fn commit(
        &self,
        table: &TableRef,
        files: &FileSet,
        remove: &[usize],
        pending: Pending,
        adds: Vec<Box<dyn EngineData>>,
    ) -> Result<Option<Committed>, TableError> {
        let removal = files.removal(remove).map_err(|e| Self::delta_error(table, "staging removals", e))?;
        let engine = self.engine().map_err(|e| Self::delta_error(table, "starting the Delta engine", e))?;
        let mut transaction = pending.transaction;
        let outcome = blocking(move || -> Result<Option<Committed>, delta_kernel::KernelError> {
            for add in adds {
                transaction.add_files(add);
            }
            for files in removal {
                transaction.remove_files(files);
            }
            match transaction.commit(engine.as_ref())? {
                CommitResult::Committed(committed) => Ok(Some(Committed {
                    version: committed.commit_version(),
                    snapshot: committed.post_commit_snapshot().cloned(),
                })),
                CommitResult::Conflicted(_) => Ok(None),
                CommitResult::Retryable(retryable) => Err(retryable.error),
            }
        })
        .await
        .map_err(|e| Self::delta_error(table, "committing", e))?;
        Ok(outcome)
    }

    /// Writes a checkpoint of `snapshot` (classic V1 for a 1/2 table).
    pub async fn checkpoint(&self, table: &TableRef, snapshot: SnapshotRef) -> Result<(), TableError> {
        let engine = self.engine().map_err(|e| Self::delta_error(table, "starting the Delta engine", e))?;
        blocking(move || snapshot.checkpoint(engine.as_ref(), None).map(|_| ()))
            .await
            .map_err(|e| Self::delta_error(table, "writing a checkpoint", e))
    }

    /// Opens a data file of the table for reading, batch by batch.
    pub async fn read_data_file(
        &self,
        table: &TableRef,
        file: &TableFile,
    ) -> Result<ParquetRecordBatchStream<lake_writer::read::LakeFileReader>, TableError> {
        let path = data_path(table, &file.path);
        let reader = lake_writer::read::LakeFileReader::new(self.store.clone(), path.clone(), file.size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "reading",
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        builder.with_batch_size(8192).build().map_err(|e| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "reading",
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// The newest commit's `operationParameters` (where each commit records the raw files it
    /// applied). Reads one log file; the kernel has no reader for commit provenance.
    pub async fn commit_parameters(
        &self,
        table: &TableRef,
        version: u64,
    ) -> Result<HashMap<String, String>, TableError> {
        let path = table.path.clone().join("_delta_log").join(format!("{version:020}.json"));
        let bytes = match self.store.get(&path).await {
            Ok(result) => result.bytes().await.map_err(|e| Self::store_error(table, "reading", &path, e))?,
            // A log entry already cleaned up: no provenance to show.
            Err(object_store::Error::NotFound { .. }) => return Ok(HashMap::new()),
            Err(e) => return Err(Self::store_error(table, "reading", &path, e)),
        };
        for line in bytes.split(|b| *b == b'\n') {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
            if let Some(map) =
                value.get("commitInfo").and_then(|c| c.get("operationParameters")).and_then(|p| p.as_object())
            {
                return Ok(map.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect());
            }
        }
        Ok(HashMap::new())
    }

    /// Deletes one object; one already gone is fine.
    pub async fn delete(&self, table: &TableRef, path: &Path) -> Result<(), TableError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::store_error(table, "deleting", path, e)),
        }
    }

    /// Lists every object under the table root (for vacuum): path and last modified.
    pub async fn list_all(&self, table: &TableRef) -> Result<Vec<object_store::ObjectMeta>, TableError> {
        self.store
            .list(Some(&table.path))
            .try_collect()
            .await
            .map_err(|e| Self::store_error(table, "listing", &table.path, e))
    }
}

/// How to start a commit.
pub(crate) struct CommitSpec {
    pub operation: UpdateTableOperation,
    pub data_change: bool,
    pub txn: Option<(String, i64)>,
    pub parameters: Vec<(String, String)>,
    pub new_columns: Vec<StructField>,
    pub blind_append: bool,
}

/// A started transaction and what its data files are written with. Only the `target` is borrowed
/// across awaits (the transaction is `Send` but not `Sync`).
pub(crate) struct Pending {
    transaction: Transaction,
    pub target: WriteTarget,
}

/// What a transaction's data files are written with.
pub(crate) struct WriteTarget {
    pub context: Arc<BoundWriteContext>,
    /// The Arrow schema data files must have.
    pub arrow_schema: ArrowSchemaRef,
}

/// A committed version.
pub(crate) struct Committed {
    pub version: u64,
    pub snapshot: Option<SnapshotRef>,
}

/// The store path of a file given relative to the table root.
pub(crate) fn data_path(table: &TableRef, relative: &str) -> Path {
    relative.split('/').filter(|s| !s.is_empty()).fold(table.path.clone(), |path, part| path.join(part))
}

/// `numRecords` and the dbId bounds of a file's JSON statistics.
fn parse_stats(text: &str) -> (u64, Option<(i64, i64)>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else { return (0, None) };
    let rows = value.get("numRecords").and_then(|v| v.as_u64()).unwrap_or(0);
    let min = value.get("minValues").and_then(|m| m.get("dbId")).and_then(|v| v.as_i64());
    let max = value.get("maxValues").and_then(|m| m.get("dbId")).and_then(|v| v.as_i64());
    (rows, min.zip(max))
}

/// Writes one data file of a table: Parquet (zstd) streamed to the store, with the kernel's
/// statistics accumulated batch by batch; [`DataFileWriter::finish`] returns the Add metadata.
pub(crate) struct DataFileWriter {
    writer: AsyncArrowWriter<BufWriter>,
    stats: FileStatsAccumulator,
    path: Path,
    location: Url,
    rows: u64,
}

impl DataFileWriter {
    pub fn new(
        store: &Arc<dyn ObjectStore>,
        table: &TableRef,
        pending: &WriteTarget,
        row_group_rows: usize,
    ) -> Result<Self, TableError> {
        let name = format!("part-{}.zstd.parquet", uuid::Uuid::new_v4());
        let path = table.path.clone().join(name.as_str());
        let location = table.url.join(&name).map_err(|e| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "naming",
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .build();
        let sink = BufWriter::new(store.clone(), path.clone());
        let writer = AsyncArrowWriter::try_new(sink, pending.arrow_schema.clone(), Some(properties)).map_err(|e| {
            TableError::DataFile {
                entity: table.entity.clone(),
                table: table.description.clone(),
                operation: "writing",
                path: path.to_string(),
                reason: e.to_string(),
            }
        })?;
        let stats = FileStatsAccumulator::new(pending.context.stats_columns(), pending.context.physical_data_schema());
        Ok(DataFileWriter { writer, stats, path, location, rows: 0 })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub async fn write(&mut self, table: &TableRef, batch: &RecordBatch) -> Result<(), TableError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.stats.merge(batch).map_err(|e| Kernel::delta_error(table, "collecting statistics", e))?;
        self.writer.write(batch).await.map_err(|e| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "writing",
            path: self.path.to_string(),
            reason: e.to_string(),
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Completes the file; returns its Add metadata and its size in bytes.
    pub async fn finish(
        self,
        store: &Arc<dyn ObjectStore>,
        table: &TableRef,
        pending: &WriteTarget,
        now: DateTime<Utc>,
    ) -> Result<(Box<dyn EngineData>, u64), TableError> {
        let DataFileWriter { writer, stats, path, location, .. } = self;
        let error = |reason: String| TableError::DataFile {
            entity: table.entity.clone(),
            table: table.description.clone(),
            operation: "completing",
            path: path.to_string(),
            reason,
        };
        writer.close().await.map_err(|e| error(e.to_string()))?;
        let stats = stats.finish().map_err(|e| Kernel::delta_error(table, "collecting statistics", e))?;
        let stats = stats.ok_or_else(|| error("a data file with no rows".into()))?;
        // The writer reports bytes of its own buffers, not of the object: ask the store.
        let size =
            store.head(&path).await.map_err(|e| Kernel::store_error(table, "reading the size of", &path, e))?.size;
        let meta = FileMeta { location, last_modified: now.timestamp_millis(), size };
        let add = build_add_file_metadata(DataFileMetadata::new(meta, stats), &pending.context)
            .map_err(|e| Kernel::delta_error(table, "describing a data file", e))?;
        Ok((add, size))
    }
}

/// The kernel expects listings in path order, which Azure gives and a local directory does not;
/// the kernel sorts by itself only for `file://` URLs, whose paths it then insists on finding on the
/// local disk. This wrapper sorts `list_with_offset` (how the kernel lists the log) and passes
/// everything else through.
#[derive(Debug)]
struct SortedListing(Arc<dyn ObjectStore>);

impl std::fmt::Display for SortedListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SortedListing({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for SortedListing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        sorted(self.0.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        sorted(self.0.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

fn sorted(
    listing: futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
    use futures::StreamExt;
    futures::stream::once(async move {
        let mut all: Vec<object_store::ObjectMeta> = match listing.try_collect().await {
            Ok(all) => all,
            Err(e) => return vec![Err(e)],
        };
        all.sort_by(|a, b| a.location.cmp(&b.location));
        all.into_iter().map(Ok).collect()
    })
    .flat_map(futures::stream::iter)
    .boxed()
}
