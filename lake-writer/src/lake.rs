//! The lake: a local directory, Azure Blob / ADLS Gen2 or memory behind one `object_store` handle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use serde::{Deserialize, Serialize};
use xledger_model::EntitySpec;

use crate::azure;
use crate::error::LakeError;
use crate::naming::{FileKind, RunStamp, file_name, manifest_name, parse_file_name};
use crate::read::LakeFileReader;
use crate::writer::{CommittedFile, PartSpec, PartWriter, WriterOptions};

/// How [`Lake::open`] connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeOptions {
    /// Create the Azure container when it is missing (needs a credential allowed to do so).
    /// Never done implicitly. Local directories are always created: they are the default lake.
    pub create_container: bool,
    /// Override the Azure Blob endpoint, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
    /// A loopback endpoint is taken as the storage emulator: its account is the URL's first path
    /// segment and, unless `AZURE_STORAGE_ACCOUNT_KEY` is set, its well-known public key is used.
    /// Plain `http://` is refused except on loopback.
    pub azure_endpoint: Option<String>,
}

/// A handle on the lake: cheap to clone, safe to share across tasks.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use lake_writer::{Lake, LakeOptions};
/// let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
/// assert_eq!(lake.describe(), "memory://");
/// assert!(lake.list("timesheets").await.unwrap().is_empty());
/// # });
/// ```
#[derive(Clone)]
pub struct Lake {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The prefix inside the store (empty for a local directory root).
    pub(crate) prefix: Path,
    /// The location without secrets, for messages.
    pub(crate) description: String,
    /// The root directory of a local lake (staging files live there, hidden from `store`).
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("location", &self.description).finish_non_exhaustive()
    }
}

/// One file of an entity folder, its name parsed when it follows the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeFile {
    pub name: String,
    pub size: u64,
    /// `None` for a name outside the contract (including temp files).
    pub kind: Option<FileKind>,
    pub stamp: Option<RunStamp>,
    pub part: Option<u32>,
    pub is_manifest: bool,
    /// A local staging file of an unfinished or crashed writer (`<name>#<n>`), never data.
    pub is_temp: bool,
}

/// A full sync's completion record: `full_sync-<stamp>-<entity>.manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub entity: String,
    pub kind: String,
    pub stamp: String,
    pub fingerprint: String,
    /// Part file names in write order.
    pub files: Vec<String>,
    /// Rows per file, aligned with `files`.
    pub rows: Vec<u64>,
    pub total_rows: u64,
    /// `_synced_at` of the run's rows.
    pub synced_at: Option<DateTime<Utc>>,
}

/// The largest chunk a part file is written in on a local lake ([`WriterOptions::upload_chunk_bytes`]
/// is for Azure, where a chunk is a block and a request).
pub const LOCAL_CHUNK_BYTES: usize = 1024 * 1024;

impl Lake {
    /// Opens a lake.
    ///
    /// `location`: a path (the default is `./lake`), `file:///abs/path`, `memory://`,
    /// `az://container/prefix` (account from `AZURE_STORAGE_ACCOUNT_NAME`) or
    /// `abfss://container@account.dfs.core.windows.net/prefix`. Azure credentials are resolved as
    /// `object_store` does from the environment: managed identity, workload identity, Azure CLI,
    /// client secret, account key or SAS.
    pub async fn open(location: &str, options: LakeOptions) -> Result<Lake, LakeError> {
        let invalid =
            |reason: &str| LakeError::InvalidLocation { location: location.to_string(), reason: reason.to_string() };
        if location == "memory://" || location.starts_with("memory://") {
            let prefix = location.trim_start_matches("memory://").trim_matches('/');
            return Ok(Lake {
                store: Arc::new(InMemory::new()),
                prefix: Path::from(prefix),
                description: location.to_string(),
                local_root: None,
            });
        }
        if location.starts_with("az://") || location.starts_with("abfss://") || location.starts_with("abfs://") {
            let target = azure::AzureTarget::parse(location, &options).map_err(|reason| invalid(&reason))?;
            let description = target.describe();
            let (store, credentials) = target.build().map_err(|reason| invalid(&reason))?;
            if options.create_container {
                azure::create_container(&target, &credentials).await.map_err(|reason| LakeError::CreateContainer {
                    lake: description.clone(),
                    container: target.container.clone(),
                    reason,
                })?;
            }
            return Ok(Lake { store, prefix: Path::from(target.prefix.as_str()), description, local_root: None });
        }
        let local = match location.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => PathBuf::from(path),
            Some(_) => return Err(invalid("file:// needs an absolute path (file:///abs/path)")),
            None if location.contains("://") => {
                return Err(invalid("unknown scheme; use a path, file://, memory://, az:// or abfss://"));
            }
            None if location.is_empty() => PathBuf::from("lake"),
            None => PathBuf::from(location),
        };
        std::fs::create_dir_all(&local).map_err(|source| LakeError::Io {
            lake: location.to_string(),
            path: local.display().to_string(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&local)
            .map_err(|source| LakeError::Store {
                lake: location.to_string(),
                operation: "opening",
                path: local.display().to_string(),
                source: Box::new(source),
            })?
            .with_fsync(true);
        let root = std::fs::canonicalize(&local).unwrap_or(local);
        Ok(Lake {
            store: Arc::new(store),
            prefix: Path::default(),
            description: root.display().to_string(),
            local_root: Some(root),
        })
    }

    /// The lake location for messages and status output; never contains a key or SAS token.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The underlying store (for tools that need raw access, e.g. read-back tests).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The lake's root inside [`Lake::store`] (empty for a local directory), for tools that keep
    /// their own folders next to the entity folders (the current-state tables).
    pub fn root(&self) -> Path {
        self.prefix.clone()
    }

    /// The path of `name` inside `entity`'s folder.
    pub fn path_of(&self, entity: &str, name: &str) -> Result<Path, LakeError> {
        let folder = self.folder(entity)?;
        Ok(folder.clone().join(name))
    }

    fn folder(&self, entity: &str) -> Result<Path, LakeError> {
        let valid = !entity.is_empty() && entity.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(LakeError::InvalidEntityName(entity.to_string()));
        }
        let folder = xledger_model::entity(entity).map(|e| e.name).unwrap_or(entity);
        Ok(self.prefix.clone().join(folder))
    }

    fn store_error(&self, operation: &'static str, path: &Path, source: object_store::Error) -> LakeError {
        LakeError::Store { lake: self.description.clone(), operation, path: path.to_string(), source: Box::new(source) }
    }

    /// Starts a new part file; it stays invisible until [`PartWriter::finish`].
    /// Refuses a name that already exists: a committed file is never replaced.
    pub async fn create_part(
        &self,
        entity: &'static EntitySpec,
        spec: PartSpec,
        options: &WriterOptions,
    ) -> Result<PartWriter, LakeError> {
        let name = file_name(spec.kind, spec.stamp, entity.name, spec.part);
        let path = self.path_of(entity.name, &name)?;
        if self.exists_path(&path).await? {
            return Err(LakeError::AlreadyExists { lake: self.description.clone(), path: path.to_string() });
        }
        let options = match self.local_root {
            // A local file gains nothing from big chunks (they are staging writes, not billed
            // requests), and every chunk buffered or in flight is memory.
            Some(_) => &WriterOptions {
                upload_chunk_bytes: options.upload_chunk_bytes.min(LOCAL_CHUNK_BYTES),
                ..options.clone()
            },
            None => options,
        };
        PartWriter::new(self.description.clone(), self.store.clone(), path, name, entity, &spec, options)
    }

    /// Writes a full sync's manifest after its last part: from then on the run is complete.
    /// Idempotent for the same file list (a retried run); any other content is a conflict.
    pub async fn write_manifest(
        &self,
        entity: &'static EntitySpec,
        stamp: RunStamp,
        files: &[CommittedFile],
    ) -> Result<String, LakeError> {
        let name = manifest_name(stamp, entity.name);
        let path = self.path_of(entity.name, &name)?;
        let manifest = Manifest {
            entity: entity.name.to_string(),
            kind: FileKind::FullSync.as_str().to_string(),
            stamp: stamp.to_string(),
            fingerprint: entity.fingerprint.to_string(),
            files: files.iter().map(|f| f.name.clone()).collect(),
            rows: files.iter().map(|f| f.rows).collect(),
            total_rows: files.iter().map(|f| f.rows).sum(),
            synced_at: files.first().map(|f| f.synced_at),
        };
        let manifest_error =
            |reason: String| LakeError::Manifest { lake: self.description.clone(), path: path.to_string(), reason };
        for file in files {
            let parsed = parse_file_name(&file.name);
            let belongs = parsed.as_ref().is_some_and(|p| {
                p.kind == FileKind::FullSync && p.stamp == stamp && p.entity == entity.name && !p.is_manifest
            });
            if !belongs {
                return Err(manifest_error(format!("{} is not a part of this full sync", file.name)));
            }
        }
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| manifest_error(e.to_string()))?;
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&path, PutPayload::from(body), options).await {
            Ok(_) => Ok(name),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.read_manifest(entity.name, &name).await?;
                if existing.files == manifest.files && existing.rows == manifest.rows {
                    Ok(name)
                } else {
                    Err(manifest_error("a different manifest for this run already exists".into()))
                }
            }
            Err(source) => Err(self.store_error("writing", &path, source)),
        }
    }

    /// Reads a manifest.
    pub async fn read_manifest(&self, entity: &str, name: &str) -> Result<Manifest, LakeError> {
        let path = self.path_of(entity, name)?;
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_error("reading", &path, e))?
            .bytes()
            .await
            .map_err(|e| self.store_error("reading", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| LakeError::Manifest {
            lake: self.description.clone(),
            path: path.to_string(),
            reason: format!("not a manifest: {e}"),
        })
    }

    /// The files of an entity folder, sorted by name; local staging files are included, flagged
    /// `is_temp`.
    pub async fn list(&self, entity: &str) -> Result<Vec<LakeFile>, LakeError> {
        let folder = self.folder(entity)?;
        let objects: Vec<_> =
            self.store.list(Some(&folder)).try_collect().await.map_err(|e| self.store_error("listing", &folder, e))?;
        let mut files: Vec<LakeFile> = objects
            .into_iter()
            .filter_map(|meta| {
                // Only direct children: the folder holds no sub-folders by contract.
                let name = meta.location.prefix_match(&folder)?.map(|p| p.as_ref().to_string()).collect::<Vec<_>>();
                let [name] = <[String; 1]>::try_from(name).ok()?;
                Some(lake_file(name, meta.size, false))
            })
            .collect();
        for (name, size) in self.local_temp_files(entity)? {
            files.push(lake_file(name, size, true));
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// True when `name` exists (and is committed) in `entity`'s folder.
    pub async fn exists(&self, entity: &str, name: &str) -> Result<bool, LakeError> {
        let path = self.path_of(entity, name)?;
        self.exists_path(&path).await
    }

    async fn exists_path(&self, path: &Path) -> Result<bool, LakeError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.store_error("checking", path, e)),
        }
    }

    /// The Parquet key-value metadata of a file (entity, kind, run stamp, fingerprint, tool
    /// version, synced-at, and what the engine added).
    pub async fn file_metadata(&self, entity: &str, name: &str) -> Result<BTreeMap<String, String>, LakeError> {
        let builder = self.open_parquet(entity, name).await?;
        let pairs = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
        Ok(pairs.into_iter().filter_map(|kv| kv.value.map(|v| (kv.key, v))).collect())
    }

    pub(crate) async fn open_parquet(
        &self,
        entity: &str,
        name: &str,
    ) -> Result<ParquetRecordBatchStreamBuilder<LakeFileReader>, LakeError> {
        let path = self.path_of(entity, name)?;
        let meta = self.store.head(&path).await.map_err(|e| self.store_error("reading", &path, e))?;
        let reader = LakeFileReader::new(self.store.clone(), path.clone(), meta.size);
        ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|source| LakeError::Parquet {
            lake: self.description.clone(),
            path: path.to_string(),
            source: Box::new(source),
        })
    }

    /// Deletes every file of an entity (the `wipe` command), staging files included; returns how
    /// many were deleted.
    pub async fn delete_entity(&self, entity: &str) -> Result<u64, LakeError> {
        let folder = self.folder(entity)?;
        let objects: Vec<_> =
            self.store.list(Some(&folder)).try_collect().await.map_err(|e| self.store_error("listing", &folder, e))?;
        let mut deleted = 0;
        for meta in objects {
            match self.store.delete(&meta.location).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.store_error("deleting", &meta.location, e)),
            }
        }
        deleted += self.remove_stray_temp_files(entity).await?;
        Ok(deleted)
    }

    /// Removes local staging files left by crashed writers (`<name>#<n>`); returns how many.
    /// Azure needs nothing: uncommitted blocks are invisible and expire by themselves.
    /// Call it only when no writer of this entity is running.
    pub async fn remove_stray_temp_files(&self, entity: &str) -> Result<u64, LakeError> {
        let Some(dir) = self.local_dir(entity)? else { return Ok(0) };
        let mut removed = 0;
        for (name, _) in self.local_temp_files(entity)? {
            let path = dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LakeError::Io {
                        lake: self.description.clone(),
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(removed)
    }

    fn local_dir(&self, entity: &str) -> Result<Option<PathBuf>, LakeError> {
        let folder = self.folder(entity)?;
        Ok(self.local_root.as_ref().map(|root| folder.parts().fold(root.clone(), |dir, part| dir.join(part.as_ref()))))
    }

    /// Staging files (`name#digits`) in a local entity folder; `object_store` hides them from listings.
    fn local_temp_files(&self, entity: &str) -> Result<Vec<(String, u64)>, LakeError> {
        let Some(dir) = self.local_dir(entity)? else { return Ok(Vec::new()) };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LakeError::Io { lake: self.description.clone(), path: dir.display().to_string(), source });
            }
        };
        let mut temps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LakeError::Io {
                lake: self.description.clone(),
                path: dir.display().to_string(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_staging = name
                .rsplit_once('#')
                .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()));
            if is_staging {
                temps.push((name, entry.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
        Ok(temps)
    }
}

fn lake_file(name: String, size: u64, is_temp: bool) -> LakeFile {
    let parsed = if is_temp { None } else { parse_file_name(&name) };
    LakeFile {
        size,
        kind: parsed.as_ref().map(|p| p.kind),
        stamp: parsed.as_ref().map(|p| p.stamp),
        part: parsed.as_ref().and_then(|p| p.part),
        is_manifest: parsed.as_ref().is_some_and(|p| p.is_manifest),
        is_temp,
        name,
    }
}
