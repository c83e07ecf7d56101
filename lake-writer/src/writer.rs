//! One Parquet part file, streamed: pages in, row groups out, visible only on [`PartWriter::finish`].

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use xledger_model::EntitySpec;
use xledger_model::page::MutationType;

use crate::convert::PageConverter;
use crate::error::LakeError;
use crate::naming::{FileKind, RunStamp};

/// Parquet key-value metadata keys every file carries.
pub mod metadata_keys {
    /// The entity name.
    pub const ENTITY: &str = "xledger.entity";
    /// `full_sync` or `sync_changes`.
    pub const KIND: &str = "xledger.kind";
    /// The run stamp `YYYYMMDD_HH_MM_SS`.
    pub const RUN_STAMP: &str = "xledger.run_stamp";
    /// The part number, when the file is one of several parts.
    pub const PART: &str = "xledger.part";
    /// The entity's schema fingerprint ([`xledger_model::EntitySpec::fingerprint`]).
    pub const SCHEMA_FINGERPRINT: &str = "xledger.schema_fingerprint";
    /// The `_synced_at` of every row, RFC 3339 UTC with microseconds.
    pub const SYNCED_AT: &str = "xledger.synced_at";
    /// `lake-writer <version>`.
    pub const TOOL_VERSION: &str = "xledger.tool_version";
}

/// Parquet compression of data pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Zstandard at the given level (1–22); the default, level 1.
    Zstd(i32),
    Snappy,
    Uncompressed,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd(1)
    }
}

/// How part files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    pub compression: Compression,
    /// Rows per Parquet row group; with one page, the writer's memory bound.
    pub row_group_rows: usize,
    /// Rows after which [`PartWriter::is_full`] says to start a new part.
    pub part_rows: u64,
    /// Bytes buffered before a multipart upload part is sent: the Azure block size. On a local
    /// lake the staging writes use at most [`crate::LOCAL_CHUNK_BYTES`]. At most two chunks are in
    /// flight while the next fills, so this is also the writer's upload memory (~3 chunks).
    pub upload_chunk_bytes: usize,
}

impl WriterOptions {
    /// Rows per row group: with one page, the writer's memory bound.
    pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;
    /// Rows per full-load part: a part's memory grows a little while it is written, so parts stay
    /// moderate and a long load checkpoints often.
    pub const DEFAULT_PART_ROWS: u64 = 250_000;
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            compression: Compression::default(),
            row_group_rows: Self::DEFAULT_ROW_GROUP_ROWS,
            part_rows: Self::DEFAULT_PART_ROWS,
            upload_chunk_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What a new part file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    pub kind: FileKind,
    /// The run's stamp (the file name's time).
    pub stamp: RunStamp,
    /// `Some(n)` adds the `-NNNNN` suffix.
    pub part: Option<u32>,
    /// `_synced_at` of every row (microseconds are kept, anything finer is dropped).
    pub synced_at: DateTime<Utc>,
    /// More key-value metadata, e.g. the engine's `xledger.cursor_from` / `xledger.cursor_to`.
    pub extra_metadata: Vec<(String, String)>,
}

/// A file made visible by [`PartWriter::finish`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedFile {
    /// The file name inside the entity folder.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    /// The `_synced_at` of its rows.
    pub synced_at: DateTime<Utc>,
}

/// Streams one part file: each call converts a page into a record batch and hands it to the
/// Parquet writer, which uploads each completed row group. Memory ≈ one page + one row group.
///
/// Nothing is visible until [`finish`](PartWriter::finish): locally the bytes go to a staging
/// file `<name>#<n>` (not ending in `.parquet`, hidden from listings) that is fsynced and renamed;
/// on Azure they are uncommitted blocks until the block list is committed. [`abort`](PartWriter::abort)
/// or dropping the writer leaves nothing visible (a killed process may leave a local staging file:
/// [`crate::Lake::remove_stray_temp_files`]).
pub struct PartWriter {
    pub(crate) lake: String,
    pub(crate) name: String,
    pub(crate) path: Path,
    pub(crate) converter: PageConverter,
    pub(crate) writer: AsyncArrowWriter<BufWriter>,
    pub(crate) synced_at: DateTime<Utc>,
    pub(crate) rows: u64,
    pub(crate) part_rows: u64,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter").field("name", &self.name).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl PartWriter {
    pub(crate) fn new(
        lake: String,
        store: Arc<dyn ObjectStore>,
        path: Path,
        name: String,
        entity: &'static EntitySpec,
        spec: &PartSpec,
        options: &WriterOptions,
    ) -> Result<Self, LakeError> {
        let converter = PageConverter::new(entity);
        let synced_at = truncate_to_micros(spec.synced_at);
        let mut metadata = vec![
            KeyValue::new(metadata_keys::ENTITY.to_string(), entity.name.to_string()),
            KeyValue::new(metadata_keys::KIND.to_string(), spec.kind.as_str().to_string()),
            KeyValue::new(metadata_keys::RUN_STAMP.to_string(), spec.stamp.to_string()),
            KeyValue::new(metadata_keys::SCHEMA_FINGERPRINT.to_string(), entity.fingerprint.to_string()),
            KeyValue::new(metadata_keys::SYNCED_AT.to_string(), synced_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            KeyValue::new(
                metadata_keys::TOOL_VERSION.to_string(),
                format!("lake-writer {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if let Some(part) = spec.part {
            metadata.push(KeyValue::new(metadata_keys::PART.to_string(), part.to_string()));
        }
        metadata.extend(spec.extra_metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())));
        let properties = writer_properties(entity, options, metadata).map_err(|source| LakeError::Parquet {
            lake: lake.clone(),
            path: path.to_string(),
            source: Box::new(source),
        })?;
        // At most two chunks in flight: upload memory stays ~2 × upload_chunk_bytes (the default of
        // eight would allow 64 MiB per writer) while one chunk uploads as the next one fills.
        let sink =
            BufWriter::with_capacity(store, path.clone(), options.upload_chunk_bytes.max(1024)).with_max_concurrency(2);
        let writer = AsyncArrowWriter::try_new(sink, converter.schema(), Some(properties)).map_err(|source| {
            LakeError::Parquet { lake: lake.clone(), path: path.to_string(), source: Box::new(source) }
        })?;
        Ok(PartWriter { lake, name, path, converter, writer, synced_at, rows: 0, part_rows: options.part_rows })
    }

    /// Converts and writes ADDED/UPDATED nodes, each the JSON text of one node as the API sent it
    /// (e.g. a page's nodes, borrowed from the response body). A conversion error fails the whole
    /// page (nothing of it is written) and names entity, dbId, column and value.
    pub async fn write_nodes<'n>(
        &mut self,
        nodes: impl IntoIterator<Item = (&'n str, MutationType)>,
    ) -> Result<(), LakeError> {
        let batch = self.converter.convert_nodes(nodes, self.synced_at)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write_batch(&batch).await
    }

    /// Writes deletion rows (tombstones): `dbId`, `mutationType = DELETED`, `_synced_at`; the rest null.
    pub async fn write_deletions(&mut self, db_ids: &[i64]) -> Result<(), LakeError> {
        if db_ids.is_empty() {
            return Ok(());
        }
        let batch = self.converter.convert_deletions(db_ids, self.synced_at)?;
        self.write_batch(&batch).await
    }

    async fn write_batch(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<(), LakeError> {
        self.writer.write(batch).await.map_err(|source| LakeError::Parquet {
            lake: self.lake.clone(),
            path: self.path.to_string(),
            source: Box::new(source),
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// True once [`WriterOptions::part_rows`] rows are written: time to finish and start the next part.
    pub fn is_full(&self) -> bool {
        self.rows >= self.part_rows
    }

    /// The file name inside the entity folder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes the footer and commits: the only moment the file becomes visible.
    pub async fn finish(self) -> Result<CommittedFile, LakeError> {
        let PartWriter { lake, name, path, writer, synced_at, rows, .. } = self;
        let parquet_error = |source: parquet::errors::ParquetError| LakeError::Parquet {
            lake: lake.clone(),
            path: path.to_string(),
            source: Box::new(source),
        };
        // `close` writes the footer, then shuts the BufWriter down: a single put for a small file,
        // or the multipart completion (local rename / Azure block list) for a large one.
        let mut writer = writer;
        writer.finish().await.map_err(parquet_error)?;
        let bytes = writer.bytes_written() as u64;
        Ok(CommittedFile { name, rows, bytes, synced_at })
    }

    /// Abandons the file: staged data is removed, nothing becomes visible.
    pub async fn abort(self) -> Result<(), LakeError> {
        let PartWriter { lake, path, writer, .. } = self;
        let mut sink = writer.into_inner();
        sink.abort().await.map_err(|source| LakeError::Store {
            lake,
            operation: "aborting upload of",
            path: path.to_string(),
            source: Box::new(source),
        })
    }
}

fn truncate_to_micros(instant: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(instant.timestamp_micros()).unwrap_or(instant)
}

/// Bytes of dictionary per column chunk after which a column falls back to plain encoding.
const DICTIONARY_PAGE_LIMIT: usize = 64 * 1024;

fn writer_properties(
    entity: &EntitySpec,
    options: &WriterOptions,
    metadata: Vec<KeyValue>,
) -> Result<WriterProperties, parquet::errors::ParquetError> {
    let compression = match options.compression {
        Compression::Zstd(level) => ParquetCompression::ZSTD(ZstdLevel::try_new(level)?),
        Compression::Snappy => ParquetCompression::SNAPPY,
        Compression::Uncompressed => ParquetCompression::UNCOMPRESSED,
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_key_value_metadata(Some(metadata))
        .set_created_by(format!("xledger-sync lake-writer {}", env!("CARGO_PKG_VERSION")));
    // Dictionary encoding pays for repeated values (names, codes, dates, amounts such as hours,
    // mutationType, _synced_at) and Parquet falls back to plain by itself when a column chunk's
    // dictionary outgrows `dictionary_page_size_limit`. It is switched off where values are unique
    // by nature: dbId (one row per dbId) and date-times (creation and modification instants),
    // where a dictionary costs time and saves nothing.
    //
    // The limit is 64 KiB instead of Parquet's 1 MiB: a column with a few thousand distinct values
    // per row group (employees, projects, accounts, hours, currencies) keeps its dictionary; one
    // whose values hardly repeat gives up after ~64 KiB instead of hashing a 1 MiB dictionary of
    // near-unique values for every row group and writing a larger file than plain + zstd would.
    builder = builder.set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT);
    for column in entity.columns {
        if column.name == "dbId" || column.kind == xledger_model::ColumnKind::Timestamp {
            builder = builder.set_column_dictionary_enabled(column.name.into(), false);
        }
    }
    Ok(builder.build())
}
