//! `Tables`: where the tables live, and catching one entity's table up with its raw files.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch, sort_to_indices, take_record_batch};
use arrow::datatypes::{Int64Type, SchemaRef};
use chrono::{DateTime, Utc};
use delta_kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};
use delta_kernel::schema::{StructField, StructType};
use delta_kernel::transaction::UpdateTableOperation;
use delta_kernel::{EngineData, SnapshotRef};
use lake_writer::Lake;
use object_store::ObjectStore;
use object_store::path::Path;
use xledger_model::EntitySpec;

use crate::delta::{
    CommitSpec, DataFileWriter, ENTITY_PROPERTY, FileSet, Folder, Kernel, TableRef, WRITER_PROPERTY, WRITER_VALUE,
    WriteTarget,
};
use crate::error::TableError;
use crate::raw::{self, ChangeFile, FullLoad, RawPlan};

/// The commit parameter (in `commitInfo.operationParameters`) listing the raw files a commit applied.
pub const APPLIED_PARAMETER: &str = "xledger.applied";
/// The commit parameter naming the newest raw file the table holds after the commit.
pub const LAST_APPLIED_PARAMETER: &str = "xledger.lastApplied";
/// The commit parameter naming the full load (manifest) the table's contents started from.
pub const FULL_LOAD_PARAMETER: &str = "xledger.fullLoad";
/// The commit parameter with the schema fingerprint of the raw files the table was built from.
pub const FINGERPRINT_PARAMETER: &str = "xledger.fingerprint";

/// The `txn` application id of an entity's table: `xledger-sync/<entity>`. Its version is the
/// `_synced_at` (µs since the epoch) of the newest raw file applied.
pub fn app_id(entity: &str) -> String {
    format!("xledger-sync/{entity}")
}

/// The current time, injectable for tests (vacuum retention).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How tables are laid out and maintained.
#[derive(Clone)]
pub struct TableOptions {
    /// Rows per data file. Files are clustered by dbId, so a change to recent rows rewrites the
    /// few small files at the end of the dbId range; 32 768 timesheet rows make about 3 MB.
    pub target_file_rows: usize,
    /// Rows per Parquet row group (and per batch in memory).
    pub row_group_rows: usize,
    /// Compact when this many files hold fewer than half of `target_file_rows`.
    pub compact_small_files: usize,
    /// Checkpoint the log (and vacuum) every this many versions.
    pub checkpoint_interval: u64,
    /// Removed data files stay this long for readers of older versions before vacuum deletes them.
    pub retention: chrono::Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            target_file_rows: 32_768,
            row_group_rows: 8_192,
            compact_small_files: 8,
            checkpoint_interval: 10,
            retention: chrono::Duration::days(7),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for TableOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableOptions")
            .field("target_file_rows", &self.target_file_rows)
            .field("row_group_rows", &self.row_group_rows)
            .field("compact_small_files", &self.compact_small_files)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Where the tables go (the `XLEDGER_TABLES` setting, `none` aside: the caller then opens nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablesLocation {
    /// A sub-folder of the lake (the default is `current`).
    InLake(String),
    /// Elsewhere: an absolute path, `file://`, `az://` or `abfss://` URL, as for the lake.
    Elsewhere(String),
}

impl TablesLocation {
    /// The default: `<lake>/current/`.
    pub fn default_in_lake() -> Self {
        TablesLocation::InLake("current".to_string())
    }

    /// Parses the setting; `none` (any case) gives `None`: tables are off.
    pub fn parse(setting: &str) -> Result<Option<TablesLocation>, TableError> {
        let setting = setting.trim();
        if setting.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        if setting.is_empty() {
            return Ok(Some(Self::default_in_lake()));
        }
        if setting.contains("://") || setting.starts_with('/') {
            return Ok(Some(TablesLocation::Elsewhere(setting.to_string())));
        }
        let valid = setting.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        if !valid {
            return Err(TableError::InvalidLocation {
                location: setting.to_string(),
                reason: "a lake sub-folder is a relative path without `.`/`..` (or use an absolute path or URL)".into(),
            });
        }
        Ok(Some(TablesLocation::InLake(setting.trim_matches('/').to_string())))
    }
}

/// The current-state tables of a lake: one Delta table per entity plus `_sync_runs`.
///
/// Cheap to share behind an `Arc`; all methods take `&self`. One process should maintain an
/// entity's table at a time (the engine's lease); concurrent commits are still safe (Delta's
/// put-if-absent commit), the loser re-plans.
pub struct Tables {
    pub(crate) kernel: Kernel,
    pub(crate) root: Path,
    pub(crate) description: String,
    pub(crate) options: TableOptions,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").field("location", &self.description).finish_non_exhaustive()
    }
}

/// What one [`Tables::catch_up`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub entity: String,
    /// Raw files applied, in order (a full load is named by its manifest).
    pub applied: Vec<String>,
    /// Table versions committed (applies, then a compaction if one ran).
    pub versions: Vec<u64>,
    /// The table's version afterwards (`None`: no table, the lake has no raw files yet).
    pub version: Option<u64>,
    /// Bytes of existing data files rewritten (copy-on-write) by the applied change files.
    pub bytes_rewritten: u64,
    /// Bytes of data files written (full loads, rewrites, new rows, compaction).
    pub bytes_written: u64,
    /// Data files compacted away.
    pub files_compacted: u64,
    pub checkpointed: bool,
    /// Data files vacuumed.
    pub files_vacuumed: u64,
}

/// One table at a glance ([`Tables::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStatus {
    pub entity: String,
    /// The table's location (no secrets).
    pub table: String,
    pub version: u64,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    /// The `txn` version: `_synced_at` in µs of the newest raw file applied.
    pub txn_version: Option<i64>,
    /// The newest raw file applied, as recorded by the newest commit.
    pub last_applied: Option<String>,
    /// The full load (manifest) the table's contents started from.
    pub full_load: Option<String>,
}

/// What the table holds, as far as catching up is concerned.
struct TableState {
    snapshot: SnapshotRef,
    files: FileSet,
    txn: Option<i64>,
    parameters: HashMap<String, String>,
    schema: SchemaRef,
}

enum Step {
    Full(FullLoad),
    Change(ChangeFile),
}

impl Step {
    fn name(&self) -> &str {
        match self {
            Step::Full(full) => &full.manifest,
            Step::Change(change) => &change.name,
        }
    }

    fn synced_at(&self) -> DateTime<Utc> {
        match self {
            Step::Full(full) => full.synced_at,
            Step::Change(change) => change.synced_at,
        }
    }
}

const MAX_CONFLICTS: u32 = 8;

impl Tables {
    /// Opens the tables of `lake` at `location`. `InLake` reuses the lake's store; `Elsewhere`
    /// opens a store like [`Lake::open`] (same schemes and credentials).
    pub async fn open(
        location: &TablesLocation,
        lake: &Lake,
        lake_options: lake_writer::LakeOptions,
        options: TableOptions,
    ) -> Result<Tables, TableError> {
        match location {
            TablesLocation::InLake(folder) => {
                let root = folder.split('/').fold(lake.root(), |path, part| path.join(part));
                // `describe` may end in ` (endpoint …)`: the folder goes after the location part.
                let lake_description = lake.describe();
                let (location, endpoint) = match lake_description.split_once(" (") {
                    Some((location, rest)) => (location.to_string(), format!(" ({rest}")),
                    None => (lake_description.clone(), String::new()),
                };
                let description = format!("{}/{folder}{endpoint}", location.trim_end_matches('/'));
                Tables::from_store(lake.store(), root, description, options)
            }
            TablesLocation::Elsewhere(url) => {
                let other = Lake::open(url, lake_options)
                    .await
                    .map_err(|e| TableError::InvalidLocation { location: url.clone(), reason: e.to_string() })?;
                Tables::from_store(other.store(), other.root(), other.describe(), options)
            }
        }
    }

    /// Tables under `root` of `store` (tests wrap the store to inject faults).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        root: Path,
        description: String,
        options: TableOptions,
    ) -> Result<Tables, TableError> {
        let kernel = Kernel::new(store)
            .map_err(|e| TableError::InvalidLocation { location: description.clone(), reason: e.to_string() })?;
        Ok(Tables { kernel, root, description, options })
    }

    /// The tables location for messages; never contains a secret.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    pub(crate) fn table_ref(&self, name: &str) -> Result<TableRef, TableError> {
        let path = self.root.clone().join(name);
        // Only the URL's path reaches the store (the engine has one store, rooted like the lake's);
        // the scheme is ours so that the kernel does not look for the path on the local disk.
        let url = url::Url::parse(&format!("xledger-tables:///{path}/"))
            .map_err(|e| TableError::InvalidLocation { location: self.description.clone(), reason: e.to_string() })?;
        Ok(TableRef {
            entity: name.to_string(),
            path,
            url,
            description: match self.description.split_once(" (") {
                Some((location, endpoint)) => format!("{}/{name} ({endpoint}", location.trim_end_matches('/')),
                None => format!("{}/{name}", self.description.trim_end_matches('/')),
            },
        })
    }

    /// Makes the entity's table equal to the contract's rebuild of its raw files, applying exactly
    /// the raw files it lacks: a newer complete full load replaces the contents in one commit, then
    /// each later change file is one commit. Each commit carries the `txn` action
    /// (`app_id(entity)`, `_synced_at` µs of its raw file), so after a crash anywhere the next call
    /// applies exactly what is missing. When caught up it reads the log, the lake listing and at most
    /// a few footers, no data files.
    pub async fn catch_up(&self, lake: &Lake, entity: &'static EntitySpec) -> Result<CatchUp, TableError> {
        self.maintain(lake, entity, false).await
    }

    /// Rebuilds the table from the raw files alone: one commit replaces everything with the newest
    /// full load, then the change files follow, one commit each (old files are vacuumed after the
    /// retention). A table whose schema the full load cannot evolve to is recreated.
    pub async fn rebuild(&self, lake: &Lake, entity: &'static EntitySpec) -> Result<CatchUp, TableError> {
        self.maintain(lake, entity, true).await
    }

    async fn maintain(&self, lake: &Lake, entity: &'static EntitySpec, rebuild: bool) -> Result<CatchUp, TableError> {
        let table = self.table_ref(entity.name)?;
        let mut report = CatchUp { entity: entity.name.to_string(), ..Default::default() };
        let mut conflicts = 0;
        let mut rebuild_pending = rebuild;
        if rebuild {
            self.recreate_if_incompatible(lake, &table, entity).await?;
        }
        loop {
            let state = self.open_table(&table, entity).await?;
            let txn = state.as_ref().and_then(|s| s.txn);
            let not_before = if rebuild_pending { None } else { txn.and_then(DateTime::from_timestamp_micros) };
            let plan = raw::plan(lake, entity, not_before).await?;
            let steps = self.steps(&table, entity, state.as_ref(), &plan, rebuild_pending)?;
            let Some(step) = steps.into_iter().next() else {
                report.version = state.as_ref().map(|s| s.snapshot.version());
                if let Some(state) = state {
                    self.after_commits(&table, entity, state, &mut report).await?;
                }
                return Ok(report);
            };
            let state = match state {
                Some(state) => state,
                None => self.create_table(&table, entity).await?,
            };
            let name = step.name().to_string();
            let committed = match step {
                Step::Full(full) => self.apply_full(lake, entity, &table, &state, &full, &mut report).await?,
                Step::Change(change) => self.apply_change(lake, entity, &table, &state, &change, &mut report).await?,
            };
            match committed {
                Some(version) => {
                    report.applied.push(name);
                    report.versions.push(version);
                    rebuild_pending = false;
                    tracing::info!(entity = entity.name, table = %table.description, version, "table commit");
                    self.maybe_checkpoint(&table, version, &mut report).await?;
                }
                None => {
                    conflicts += 1;
                    if conflicts >= MAX_CONFLICTS {
                        return Err(TableError::Contended {
                            entity: entity.name.to_string(),
                            table: table.description.clone(),
                            attempts: conflicts,
                        });
                    }
                }
            }
        }
    }

    /// Deletes the table (data files first, then the log, newest entry first, so an interrupted
    /// delete leaves a readable prefix) when the newest full load cannot evolve its schema.
    async fn recreate_if_incompatible(
        &self,
        lake: &Lake,
        table: &TableRef,
        entity: &'static EntitySpec,
    ) -> Result<(), TableError> {
        let Some(state) = self.open_table(table, entity).await? else { return Ok(()) };
        let plan = raw::plan(lake, entity, None).await?;
        let Some(full) = plan.full else { return Ok(()) };
        match evolve(entity, table, &full, &state.schema, &raw::table_schema(entity)) {
            Ok(_) => return Ok(()),
            Err(TableError::IncompatibleSchema { reason, .. }) => {
                tracing::warn!(entity = entity.name, table = %table.description, reason, "recreating the table for a schema change");
            }
            Err(other) => return Err(other),
        }
        let mut objects = self.kernel.list_all(table).await?;
        let log = table.path.clone().join("_delta_log");
        let in_log = |o: &object_store::ObjectMeta| o.location.prefix_match(&log).is_some();
        objects.sort_by(|a, b| in_log(a).cmp(&in_log(b)).then_with(|| b.location.cmp(&a.location)));
        for object in objects {
            self.kernel.delete(table, &object.location).await?;
        }
        Ok(())
    }

    /// Loads the table; `None` when there is none yet. Refuses a folder that is not our table.
    async fn open_table(
        &self,
        table: &TableRef,
        entity: &'static EntitySpec,
    ) -> Result<Option<TableState>, TableError> {
        let foreign = |reason: String| TableError::ForeignTable {
            entity: entity.name.to_string(),
            table: table.description.clone(),
            reason,
        };
        match self.kernel.folder(table).await? {
            Folder::Empty => return Ok(None),
            Folder::Other(reason) => return Err(foreign(reason)),
            Folder::Delta => {}
        }
        let snapshot = self.kernel.snapshot(table).await?;
        let properties = snapshot.table_properties().unknown_properties.clone();
        if properties.get(WRITER_PROPERTY).map(String::as_str) != Some(WRITER_VALUE) {
            return Err(foreign(format!(
                "its metadata has no {WRITER_PROPERTY}={WRITER_VALUE}: another tool wrote it"
            )));
        }
        if properties.get(ENTITY_PROPERTY).map(String::as_str) != Some(entity.name) {
            return Err(foreign(format!(
                "it is the table of entity {:?}",
                properties.get(ENTITY_PROPERTY).cloned().unwrap_or_default()
            )));
        }
        let schema: arrow::datatypes::Schema = snapshot
            .schema()
            .as_ref()
            .try_into_arrow()
            .map_err(|reason| foreign(format!("its schema is not one this tool writes: {reason}")))?;
        let txn = self.kernel.app_version(table, &snapshot, &app_id(entity.name)).await?;
        let files = self.kernel.files(table, &snapshot).await?;
        let parameters = self.kernel.commit_parameters(table, snapshot.version()).await?;
        Ok(Some(TableState { snapshot, files, txn, parameters, schema: Arc::new(schema) }))
    }

    async fn create_table(&self, table: &TableRef, entity: &'static EntitySpec) -> Result<TableState, TableError> {
        let schema = raw::table_schema(entity);
        let kernel_schema = StructType::try_from_arrow(&schema).map_err(|e| TableError::Delta {
            entity: entity.name.to_string(),
            table: table.description.clone(),
            operation: "converting the schema",
            source: Box::new(e.into()),
        })?;
        self.kernel
            .create(
                table,
                &kernel_schema,
                &[(WRITER_PROPERTY, WRITER_VALUE), (ENTITY_PROPERTY, entity.name)],
                self.options.clock.now(),
            )
            .await?;
        match self.open_table(table, entity).await? {
            Some(state) => Ok(state),
            None => Err(TableError::ForeignTable {
                entity: entity.name.to_string(),
                table: table.description.clone(),
                reason: "the table vanished right after it was created".into(),
            }),
        }
    }

    /// The raw files still to apply, in order.
    fn steps(
        &self,
        table: &TableRef,
        entity: &'static EntitySpec,
        state: Option<&TableState>,
        plan: &RawPlan,
        rebuild: bool,
    ) -> Result<Vec<Step>, TableError> {
        let ahead = |reason: String| TableError::AheadOfRawFiles {
            entity: entity.name.to_string(),
            table: table.description.clone(),
            reason,
        };
        let txn = if rebuild { None } else { state.and_then(|s| s.txn) };
        let mut steps = Vec::new();
        let newest_raw =
            plan.changes.last().map(|c| c.synced_at).into_iter().chain(plan.full.as_ref().map(|f| f.synced_at)).max();
        match txn {
            None => {
                if let Some(full) = &plan.full {
                    steps.push(Step::Full(full.clone()));
                }
                steps.extend(plan.changes.iter().cloned().map(Step::Change));
            }
            Some(version) => {
                let Some(newest) = newest_raw else {
                    return Err(ahead(format!(
                        "it applied raw files up to _synced_at {} but the lake has none for this entity",
                        micros_text(version)
                    )));
                };
                if newest.timestamp_micros() < version {
                    return Err(ahead(format!(
                        "it applied raw files up to _synced_at {} but the newest raw file is at {}",
                        micros_text(version),
                        newest.to_rfc3339()
                    )));
                }
                let applied_exists = plan.full.as_ref().is_some_and(|f| f.synced_at.timestamp_micros() == version)
                    || plan.changes.iter().any(|c| c.synced_at.timestamp_micros() == version);
                match &plan.full {
                    Some(full) if full.synced_at.timestamp_micros() > version => {
                        steps.push(Step::Full(full.clone()));
                        steps.extend(plan.changes.iter().cloned().map(Step::Change));
                    }
                    _ => {
                        if !applied_exists {
                            return Err(ahead(format!(
                                "the raw file it applied last (_synced_at {}) is no longer in the lake",
                                micros_text(version)
                            )));
                        }
                        steps.extend(
                            plan.changes
                                .iter()
                                .filter(|c| c.synced_at.timestamp_micros() > version)
                                .cloned()
                                .map(Step::Change),
                        );
                    }
                }
            }
        }
        // Several change files with one `_synced_at` would share a txn version: the first would
        // hide the others after a crash. The engine never writes them; refuse rather than guess.
        for pair in steps.windows(2) {
            if pair[0].synced_at() == pair[1].synced_at() {
                return Err(TableError::RawFile {
                    entity: entity.name.to_string(),
                    file: pair[1].name().to_string(),
                    reason: format!("has the same _synced_at as {}; each raw file needs its own", pair[0].name()),
                });
            }
        }
        Ok(steps)
    }

    fn parameters(&self, entity: &'static EntitySpec, applied: &str, full_load: &str) -> Vec<(String, String)> {
        vec![
            (APPLIED_PARAMETER.to_string(), serde_json::json!([applied]).to_string()),
            (LAST_APPLIED_PARAMETER.to_string(), applied.to_string()),
            (FULL_LOAD_PARAMETER.to_string(), full_load.to_string()),
            (FINGERPRINT_PARAMETER.to_string(), entity.fingerprint.to_string()),
        ]
    }

    /// One commit: remove every live file, add the full load's rows in dbId-sorted files.
    async fn apply_full(
        &self,
        lake: &Lake,
        entity: &'static EntitySpec,
        table: &TableRef,
        state: &TableState,
        full: &FullLoad,
        report: &mut CatchUp,
    ) -> Result<Option<u64>, TableError> {
        let target = raw::table_schema(entity);
        let new_columns = evolve(entity, table, full, &state.schema, &target)?;
        let pending = self
            .kernel
            .begin(
                table,
                &state.snapshot,
                CommitSpec {
                    operation: UpdateTableOperation::Write,
                    data_change: true,
                    txn: Some((app_id(entity.name), full.synced_at.timestamp_micros())),
                    parameters: self.parameters(entity, &full.manifest, &full.manifest),
                    new_columns,
                    blind_append: false,
                },
            )
            .await?;
        let schema = pending.target.arrow_schema.clone();
        let mut sorter = SortedFiles::new(self, table, &pending.target);
        for part in &full.parts {
            let mut stream = raw::open(lake, entity, part, self.options.row_group_rows).await?;
            while let Some((batch, mutation)) = raw::next_batch(&mut stream, entity, part, &schema).await? {
                // A full load holds ADDED rows only; anything else is not a current row.
                let keep =
                    arrow::compute::kernels::cmp::neq(&mutation, &arrow::array::StringArray::new_scalar("DELETED"))
                        .map_err(|e| raw_error(entity, part, e))?;
                let batch = filter_record_batch(&batch, &keep).map_err(|e| raw_error(entity, part, e))?;
                sorter.push(batch).await?;
            }
        }
        let (adds, written) = sorter.finish().await?;
        report.bytes_written += written;
        let all: Vec<usize> = (0..state.files.files.len()).collect();
        let committed = self.kernel.commit(table, &state.files, &all, pending, adds).await?;
        Ok(committed.map(|c| c.version))
    }

    /// One commit: rewrite the files whose dbId range holds a changed row, add the rest.
    async fn apply_change(
        &self,
        lake: &Lake,
        entity: &'static EntitySpec,
        table: &TableRef,
        state: &TableState,
        change: &ChangeFile,
        report: &mut CatchUp,
    ) -> Result<Option<u64>, TableError> {
        // A change file must not carry columns the table lacks (a newer build's file before its full
        // load): picking the table's columns would silently drop them.
        let target = raw::table_schema(entity);
        for field in target.fields() {
            if state.schema.field_with_name(field.name()).map(|f| f.data_type() != field.data_type()).unwrap_or(true) {
                return Err(TableError::IncompatibleSchema {
                    entity: entity.name.to_string(),
                    table: table.description.clone(),
                    file: change.name.clone(),
                    reason: format!(
                        "column {} of this build is not in the table; a full load brings it in",
                        field.name()
                    ),
                });
            }
        }
        let full_load = state.parameters.get(FULL_LOAD_PARAMETER).cloned().unwrap_or_default();
        let pending = self
            .kernel
            .begin(
                table,
                &state.snapshot,
                CommitSpec {
                    operation: UpdateTableOperation::Merge,
                    data_change: true,
                    txn: Some((app_id(entity.name), change.synced_at.timestamp_micros())),
                    parameters: self.parameters(entity, &change.name, &full_load),
                    new_columns: Vec::new(),
                    blind_append: false,
                },
            )
            .await?;
        let schema = pending.target.arrow_schema.clone();
        // The change set is one file (bounded by the engine's rows per change file): hold it.
        let mut upserts = Vec::new();
        let mut deleted: Vec<i64> = Vec::new();
        let mut stream = raw::open(lake, entity, &change.name, self.options.row_group_rows).await?;
        while let Some((batch, mutation)) = raw::next_batch(&mut stream, entity, &change.name, &schema).await? {
            let is_delete =
                arrow::compute::kernels::cmp::eq(&mutation, &arrow::array::StringArray::new_scalar("DELETED"))
                    .map_err(|e| raw_error(entity, &change.name, e))?;
            let ids = db_ids(&batch);
            for (row, id) in ids.iter().enumerate() {
                if is_delete.value(row) {
                    deleted.push(*id);
                }
            }
            let keep = arrow::compute::not(&is_delete).map_err(|e| raw_error(entity, &change.name, e))?;
            upserts.push(filter_record_batch(&batch, &keep).map_err(|e| raw_error(entity, &change.name, e))?);
        }
        let upserts =
            sort_by_db_id(&concat_batches(&schema, &upserts).map_err(|e| raw_error(entity, &change.name, e))?)
                .map_err(|e| raw_error(entity, &change.name, e))?;
        let upsert_ids = db_ids(&upserts);
        let mut changed: Vec<i64> = upsert_ids.iter().copied().chain(deleted.iter().copied()).collect();
        changed.sort_unstable();
        changed.dedup();

        let plan = plan_rewrites(&state.files, &changed, &upsert_ids);
        let mut adds: Vec<Box<dyn EngineData>> = Vec::new();
        let mut remove = Vec::new();
        for (file_index, assigned) in &plan.rewrites {
            let file = &state.files.files[*file_index];
            report.bytes_rewritten += file.size;
            remove.push(*file_index);
            let mut input = self.kernel.read_data_file(table, file).await?;
            let mut out = SplitFiles::new(self, table, &pending.target);
            let mut next_upsert = 0;
            let assigned_rows = take_rows(&upserts, assigned).map_err(|e| raw_error(entity, &change.name, e))?;
            let assigned_ids = db_ids(&assigned_rows);
            while let Some(batch) =
                futures::TryStreamExt::try_next(&mut input).await.map_err(|e| TableError::DataFile {
                    entity: entity.name.to_string(),
                    table: table.description.clone(),
                    operation: "reading",
                    path: file.path.clone(),
                    reason: e.to_string(),
                })?
            {
                let batch = raw::to_table_batch(&batch, &schema).map_err(|reason| TableError::DataFile {
                    entity: entity.name.to_string(),
                    table: table.description.clone(),
                    operation: "reading",
                    path: file.path.clone(),
                    reason,
                })?;
                let ids = db_ids(&batch);
                let keep: arrow::array::BooleanArray =
                    ids.iter().map(|id| Some(changed.binary_search(id).is_err())).collect();
                let kept = filter_record_batch(&batch, &keep).map_err(|e| raw_error(entity, &change.name, e))?;
                // Upserts up to this batch's last dbId merge into it (the file is sorted by dbId).
                let last = ids.last().copied().unwrap_or(i64::MIN);
                let end = next_upsert + assigned_ids[next_upsert..].partition_point(|id| *id <= last);
                let merged = if end > next_upsert {
                    let window = assigned_rows.slice(next_upsert, end - next_upsert);
                    next_upsert = end;
                    let both =
                        concat_batches(&schema, [&kept, &window]).map_err(|e| raw_error(entity, &change.name, e))?;
                    sort_by_db_id(&both).map_err(|e| raw_error(entity, &change.name, e))?
                } else {
                    kept
                };
                out.push(merged).await?;
            }
            if next_upsert < assigned_rows.num_rows() {
                out.push(assigned_rows.slice(next_upsert, assigned_rows.num_rows() - next_upsert)).await?;
            }
            let (file_adds, written) = out.finish().await?;
            report.bytes_written += written;
            adds.extend(file_adds);
        }
        if !plan.rest.is_empty() {
            let rest = take_rows(&upserts, &plan.rest).map_err(|e| raw_error(entity, &change.name, e))?;
            let mut out = SplitFiles::new(self, table, &pending.target);
            out.push(rest).await?;
            let (file_adds, written) = out.finish().await?;
            report.bytes_written += written;
            adds.extend(file_adds);
        }
        let committed = self.kernel.commit(table, &state.files, &remove, pending, adds).await?;
        Ok(committed.map(|c| c.version))
    }

    async fn maybe_checkpoint(&self, table: &TableRef, version: u64, report: &mut CatchUp) -> Result<(), TableError> {
        let interval = self.options.checkpoint_interval.max(1);
        if version > 0 && version.is_multiple_of(interval) {
            let snapshot = self.kernel.snapshot(table).await?;
            if snapshot.version() == version {
                self.kernel.checkpoint(table, snapshot).await?;
                report.checkpointed = true;
            }
        }
        Ok(())
    }

    /// Compaction when small files have piled up, and vacuum after a checkpoint.
    async fn after_commits(
        &self,
        table: &TableRef,
        entity: &'static EntitySpec,
        state: TableState,
        report: &mut CatchUp,
    ) -> Result<(), TableError> {
        if let Some(version) = self.compact(table, entity, &state, report).await? {
            report.versions.push(version);
            report.version = Some(version);
            self.maybe_checkpoint(table, version, report).await?;
        }
        if report.checkpointed {
            report.files_vacuumed += self.vacuum_table(table).await?;
        }
        Ok(())
    }

    /// Merges runs of small files (adjacent in dbId order) into files of about `target_file_rows`.
    /// A data-preserving commit (`dataChange: false`); the txn version does not move.
    async fn compact(
        &self,
        table: &TableRef,
        entity: &'static EntitySpec,
        state: &TableState,
        report: &mut CatchUp,
    ) -> Result<Option<u64>, TableError> {
        let target = self.options.target_file_rows as u64;
        let small = state.files.files.iter().filter(|f| f.rows < target / 2).count();
        if small < self.options.compact_small_files.max(2) {
            return Ok(None);
        }
        let mut order: Vec<usize> = (0..state.files.files.len()).collect();
        order.sort_by_key(|i| state.files.files[*i].db_ids.map(|(min, _)| min).unwrap_or(i64::MIN));
        // Groups of consecutive small files whose rows fit one target file.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut current_rows = 0;
        for index in order {
            let file = &state.files.files[index];
            if file.rows < target / 2 && current_rows + file.rows <= target {
                current.push(index);
                current_rows += file.rows;
                continue;
            }
            if current.len() > 1 {
                groups.push(std::mem::take(&mut current));
            }
            current.clear();
            current_rows = 0;
            if file.rows < target / 2 {
                current.push(index);
                current_rows = file.rows;
            }
        }
        if current.len() > 1 {
            groups.push(current);
        }
        if groups.is_empty() {
            return Ok(None);
        }
        let mut parameters: Vec<(String, String)> = state
            .parameters
            .iter()
            .filter(|(k, _)| *k != APPLIED_PARAMETER)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        parameters.push((APPLIED_PARAMETER.to_string(), "[]".to_string()));
        parameters.sort();
        let pending = self
            .kernel
            .begin(
                table,
                &state.snapshot,
                CommitSpec {
                    operation: UpdateTableOperation::Optimize,
                    data_change: false,
                    txn: None,
                    parameters,
                    new_columns: Vec::new(),
                    blind_append: false,
                },
            )
            .await?;
        let schema = pending.target.arrow_schema.clone();
        let mut adds = Vec::new();
        let mut remove = Vec::new();
        for group in &groups {
            let mut sorter = SortedFiles::new(self, table, &pending.target);
            for index in group {
                let file = &state.files.files[*index];
                remove.push(*index);
                let mut input = self.kernel.read_data_file(table, file).await?;
                while let Some(batch) =
                    futures::TryStreamExt::try_next(&mut input).await.map_err(|e| TableError::DataFile {
                        entity: entity.name.to_string(),
                        table: table.description.clone(),
                        operation: "reading",
                        path: file.path.clone(),
                        reason: e.to_string(),
                    })?
                {
                    let batch = raw::to_table_batch(&batch, &schema).map_err(|reason| TableError::DataFile {
                        entity: entity.name.to_string(),
                        table: table.description.clone(),
                        operation: "reading",
                        path: file.path.clone(),
                        reason,
                    })?;
                    sorter.push(batch).await?;
                }
            }
            let (group_adds, written) = sorter.finish().await?;
            report.bytes_written += written;
            adds.extend(group_adds);
        }
        let committed = self.kernel.commit(table, &state.files, &remove, pending, adds).await?;
        Ok(match committed {
            Some(c) => {
                report.files_compacted += remove.len() as u64;
                tracing::info!(entity = entity.name, table = %table.description, version = c.version, files = remove.len(), "table compacted");
                Some(c.version)
            }
            // Someone else committed: their commit wins; compaction runs another time.
            None => None,
        })
    }

    /// The table of `entity` at a glance; `None` when it does not exist yet.
    pub async fn status(&self, entity: &'static EntitySpec) -> Result<Option<TableStatus>, TableError> {
        let table = self.table_ref(entity.name)?;
        let Some(state) = self.open_table(&table, entity).await? else { return Ok(None) };
        Ok(Some(TableStatus {
            entity: entity.name.to_string(),
            table: table.description.clone(),
            version: state.snapshot.version(),
            rows: state.files.rows(),
            files: state.files.files.len() as u64,
            bytes: state.files.bytes(),
            txn_version: state.txn,
            last_applied: state.parameters.get(LAST_APPLIED_PARAMETER).cloned(),
            full_load: state.parameters.get(FULL_LOAD_PARAMETER).cloned(),
        }))
    }
}

fn micros_text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map(|t| t.to_rfc3339()).unwrap_or_else(|| format!("{micros} µs"))
}

fn raw_error(entity: &EntitySpec, file: &str, e: impl std::fmt::Display) -> TableError {
    TableError::RawFile { entity: entity.name.to_string(), file: file.to_string(), reason: e.to_string() }
}

/// The columns a full load adds to the table (appended: the kernel's schema evolution adds
/// nullable columns at the end). A removed or retyped column cannot be expressed in one commit.
fn evolve(
    entity: &'static EntitySpec,
    table: &TableRef,
    full: &FullLoad,
    current: &SchemaRef,
    target: &arrow::datatypes::Schema,
) -> Result<Vec<StructField>, TableError> {
    let incompatible = |reason: String| TableError::IncompatibleSchema {
        entity: entity.name.to_string(),
        table: table.description.clone(),
        file: full.manifest.clone(),
        reason,
    };
    for field in current.fields() {
        match target.field_with_name(field.name()) {
            Ok(new) if new.data_type() == field.data_type() => {}
            Ok(new) => {
                return Err(incompatible(format!(
                    "column {} changes from {} to {}",
                    field.name(),
                    field.data_type(),
                    new.data_type()
                )));
            }
            Err(_) => return Err(incompatible(format!("column {} is no longer in the raw files", field.name()))),
        }
    }
    let mut added = Vec::new();
    for field in target.fields() {
        if current.field_with_name(field.name()).is_err() {
            let nullable = field.as_ref().clone().with_nullable(true);
            let kernel = StructField::try_from_arrow(&nullable).map_err(|e| incompatible(e.to_string()))?;
            added.push(kernel);
        }
    }
    Ok(added)
}

/// The dbId column of a table batch (column 0, Int64, by construction of the table schema).
fn db_ids(batch: &RecordBatch) -> Vec<i64> {
    match batch.column_by_name("dbId").and_then(|c| c.as_primitive_opt::<Int64Type>()) {
        Some(ids) => ids.values().to_vec(),
        None => Vec::new(),
    }
}

fn sort_by_db_id(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let Some(ids) = batch.column_by_name("dbId") else { return Ok(batch.clone()) };
    let indices = sort_to_indices(ids, None, None)?;
    take_record_batch(batch, &indices)
}

fn take_rows(batch: &RecordBatch, rows: &[usize]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let indices = arrow::array::UInt32Array::from_iter_values(rows.iter().map(|r| *r as u32));
    take_record_batch(batch, &indices)
}

/// Which live files a change set rewrites, and where each upserted row goes.
struct RewritePlan {
    /// (file index, rows of the sorted upsert batch merged into its rewrite), in dbId order.
    rewrites: Vec<(usize, Vec<usize>)>,
    /// Upsert rows beyond every file's range: one new file.
    rest: Vec<usize>,
}

fn plan_rewrites(files: &FileSet, changed: &[i64], upsert_ids: &[i64]) -> RewritePlan {
    let mut order: Vec<usize> = (0..files.files.len()).collect();
    order.sort_by_key(|i| files.files[*i].db_ids.map(|(min, _)| min).unwrap_or(i64::MIN));
    let touches = |index: usize| match files.files[index].db_ids {
        None => true,
        Some((min, max)) => {
            let start = changed.partition_point(|id| *id < min);
            start < changed.len() && changed[start] <= max
        }
    };
    let mut assigned: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut rest = Vec::new();
    for (row, id) in upsert_ids.iter().enumerate() {
        // The file whose range holds the row; else the file just before it in dbId order (a row in a
        // gap joins its lower neighbour so ranges stay disjoint); rows past the end go to a new file.
        let holder =
            order.iter().copied().find(|i| files.files[*i].db_ids.is_some_and(|(min, max)| min <= *id && *id <= max));
        let target = holder.or_else(|| {
            let before = order.iter().rev().copied().find(|i| files.files[*i].db_ids.is_some_and(|(_, max)| max < *id));
            let after_any = order.iter().any(|i| files.files[*i].db_ids.is_some_and(|(min, _)| min > *id));
            match (before, after_any) {
                (Some(before), true) => Some(before),
                (None, true) => order.iter().copied().find(|i| files.files[*i].db_ids.is_some()),
                _ => None,
            }
        });
        match target {
            Some(index) => assigned.entry(index).or_default().push(row),
            None => rest.push(row),
        }
    }
    let mut rewrites = Vec::new();
    for index in order {
        let rows = assigned.remove(&index);
        if rows.is_some() || touches(index) {
            rewrites.push((index, rows.unwrap_or_default()));
        }
    }
    RewritePlan { rewrites, rest }
}

/// Collects rows into chunks of `target_file_rows`, sorts each chunk by dbId and writes it as a
/// file: input already in dbId order (the API's order) gives disjoint, clustered files.
struct SortedFiles<'a> {
    tables: &'a Tables,
    table: &'a TableRef,
    pending: &'a WriteTarget,
    chunk: Vec<RecordBatch>,
    chunk_rows: usize,
    adds: Vec<Box<dyn EngineData>>,
    written: u64,
}

impl<'a> SortedFiles<'a> {
    fn new(tables: &'a Tables, table: &'a TableRef, pending: &'a WriteTarget) -> Self {
        SortedFiles { tables, table, pending, chunk: Vec::new(), chunk_rows: 0, adds: Vec::new(), written: 0 }
    }

    async fn push(&mut self, batch: RecordBatch) -> Result<(), TableError> {
        let target = self.tables.options.target_file_rows.max(1);
        let mut batch = batch;
        while batch.num_rows() > 0 {
            let room = target - self.chunk_rows;
            let take = room.min(batch.num_rows());
            self.chunk.push(batch.slice(0, take));
            self.chunk_rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if self.chunk_rows >= target {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TableError> {
        if self.chunk_rows == 0 {
            return Ok(());
        }
        let data_error = |e: arrow::error::ArrowError| TableError::DataFile {
            entity: self.table.entity.clone(),
            table: self.table.description.clone(),
            operation: "sorting rows for",
            path: self.table.path.to_string(),
            reason: e.to_string(),
        };
        let all = concat_batches(&self.pending.arrow_schema, &self.chunk).map_err(data_error)?;
        self.chunk.clear();
        self.chunk_rows = 0;
        let sorted = sort_by_db_id(&all).map_err(data_error)?;
        drop(all);
        let store = self.tables.kernel.store.clone();
        let mut writer = DataFileWriter::new(&store, self.table, self.pending, self.tables.options.row_group_rows)?;
        let step = self.tables.options.row_group_rows.max(1);
        let mut offset = 0;
        while offset < sorted.num_rows() {
            let length = step.min(sorted.num_rows() - offset);
            writer.write(self.table, &sorted.slice(offset, length)).await?;
            offset += length;
        }
        let (add, size) = writer.finish(&store, self.table, self.pending, self.tables.options.clock.now()).await?;
        self.adds.push(add);
        self.written += size;
        Ok(())
    }

    async fn finish(mut self) -> Result<(Vec<Box<dyn EngineData>>, u64), TableError> {
        self.flush().await?;
        Ok((self.adds, self.written))
    }
}

/// Writes sorted rows as they come, starting a new file every `target_file_rows` rows.
struct SplitFiles<'a> {
    tables: &'a Tables,
    table: &'a TableRef,
    pending: &'a WriteTarget,
    writer: Option<DataFileWriter>,
    adds: Vec<Box<dyn EngineData>>,
    written: u64,
}

impl<'a> SplitFiles<'a> {
    fn new(tables: &'a Tables, table: &'a TableRef, pending: &'a WriteTarget) -> Self {
        SplitFiles { tables, table, pending, writer: None, adds: Vec::new(), written: 0 }
    }

    async fn push(&mut self, batch: RecordBatch) -> Result<(), TableError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let store = self.tables.kernel.store.clone();
        if self.writer.is_none() {
            self.writer =
                Some(DataFileWriter::new(&store, self.table, self.pending, self.tables.options.row_group_rows)?);
        }
        if let Some(writer) = self.writer.as_mut() {
            writer.write(self.table, &batch).await?;
            if writer.rows() >= self.tables.options.target_file_rows as u64 {
                self.close().await?;
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), TableError> {
        if let Some(writer) = self.writer.take() {
            let store = self.tables.kernel.store.clone();
            let (add, size) = writer.finish(&store, self.table, self.pending, self.tables.options.clock.now()).await?;
            self.adds.push(add);
            self.written += size;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(Vec<Box<dyn EngineData>>, u64), TableError> {
        self.close().await?;
        Ok((self.adds, self.written))
    }
}
