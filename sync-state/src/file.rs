//! The local file backend: every entity's state and lease, and the usage records, in one JSON file.
//!
//! Layout: `{"format_version": 1, "entries": {"state/<entity>": {"version": "<uuid>", "value": {…}}, …}}`.
//! Every write takes an exclusive advisory lock on the sidecar `<file>.lock`, reads the file, compares the
//! entry's version, writes a temporary file next to it, fsyncs it, renames it over the file and fsyncs the
//! directory: readers (which take no lock) see the old file or the new one, never a mix, and two processes
//! never both win a compare-and-swap. A file that cannot be parsed (or has a newer format) stops every
//! write: it is never overwritten. Versions are random UUIDs, so a key deleted and created again never
//! repeats a version a stale writer could still hold.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StateError;
use crate::model::{FORMAT_VERSION, check_format_version};
use crate::store::{CasOutcome, Expect, KvBackend, KvEntry, Version};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    format_version: u64,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    version: String,
    value: Value,
}

/// What a change under the lock did to the document.
enum Change {
    /// The document changed: write it.
    Written(CasOutcome),
    /// Nothing to write.
    Unchanged(CasOutcome),
}

/// The file backend (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct FileBackend {
    path: PathBuf,
    lock_path: PathBuf,
}

impl FileBackend {
    pub(crate) fn new(path: PathBuf) -> Result<Self, StateError> {
        let Some(name) = path.file_name() else {
            return Err(StateError::InvalidConfig(format!("state file path `{}` names no file", path.display())));
        };
        let mut lock_name = name.to_owned();
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        Ok(Self { path, lock_path })
    }

    fn io(&self, operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.to_owned();
        move |source| StateError::Io { operation, path, source }
    }

    fn location(&self) -> String {
        format!("state file {}", self.path.display())
    }

    /// Reads and checks the whole file; a missing file is an empty document.
    fn read(&self) -> Result<Document, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Document { format_version: FORMAT_VERSION, entries: BTreeMap::new() });
            }
            Err(e) => return Err(self.io("read", &self.path)(e)),
        };
        let corrupt = |detail: String| StateError::Corrupt { location: self.location(), detail };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        check_format_version(&value, &self.location())?;
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    }

    /// Runs `change` on the current document under the lock and, when it says it changed something
    /// (`Written`), replaces the file atomically before the lock is released.
    fn modify(&self, change: impl FnOnce(&mut Document) -> Change) -> Result<CasOutcome, StateError> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(self.io("create the directory", dir))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(self.io("open the lock file", &self.lock_path))?;
        lock.lock().map_err(self.io("lock", &self.lock_path))?;
        // The lock is released when `lock` is dropped, on every path out of here.
        let mut document = self.read()?;
        let outcome = match change(&mut document) {
            Change::Written(outcome) => {
                document.format_version = FORMAT_VERSION;
                self.replace(dir, &document)?;
                outcome
            }
            Change::Unchanged(outcome) => outcome,
        };
        drop(lock);
        Ok(outcome)
    }

    fn replace(&self, dir: &Path, document: &Document) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(document)
            .map_err(|e| StateError::Corrupt { location: self.location(), detail: format!("cannot encode: {e}") })?;
        let mut temp_name = self.path.file_name().unwrap_or_default().to_owned();
        temp_name.push(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let temp = self.path.with_file_name(temp_name);
        let written = (|| {
            let mut file =
                OpenOptions::new().write(true).create_new(true).open(&temp).map_err(self.io("create", &temp))?;
            file.write_all(&bytes).map_err(self.io("write", &temp))?;
            file.sync_all().map_err(self.io("fsync", &temp))?;
            fs::rename(&temp, &self.path).map_err(self.io("rename into place", &self.path))
        })();
        if written.is_err() {
            // Best effort: the temporary file is garbage either way, and the real error is the one to report.
            let _ = fs::remove_file(&temp);
        }
        written?;
        sync_dir(dir).map_err(self.io("fsync the directory", dir))
    }

    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&FileBackend) -> Result<R, StateError> + Send + 'static,
    ) -> Result<R, StateError> {
        let backend = self.clone();
        tokio::task::spawn_blocking(move || work(&backend)).await.map_err(|e| StateError::Io {
            operation: "run file I/O for",
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// Makes a rename durable: on Unix the directory entry is only on disk once the directory is synced.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file; `rename` there is made durable by the file system.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[async_trait]
impl KvBackend for FileBackend {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn location(&self, key: &str) -> String {
        format!("entry `{key}` of state file {}", self.path.display())
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>, StateError> {
        let key = key.to_owned();
        self.blocking(move |backend| {
            let mut document = backend.read()?;
            Ok(document
                .entries
                .remove(&key)
                .map(|entry| KvEntry { value: entry.value, version: Version::new(entry.version) }))
        })
        .await
    }

    async fn put(&self, key: &str, value: &Value, expect: &Expect) -> Result<CasOutcome, StateError> {
        let (key, value, expect) = (key.to_owned(), value.clone(), expect.clone());
        self.blocking(move |backend| {
            backend.modify(|document| {
                let current = document.entries.get(&key).map(|entry| entry.version.as_str());
                let matches = match &expect {
                    Expect::Absent => current.is_none(),
                    Expect::Version(v) => current == Some(v.as_str()),
                };
                if !matches {
                    return Change::Unchanged(CasOutcome::Mismatch);
                }
                let version = uuid::Uuid::new_v4().to_string();
                document.entries.insert(key, Entry { version: version.clone(), value });
                Change::Written(CasOutcome::Done(Version::new(version)))
            })
        })
        .await
    }

    async fn delete(&self, key: &str, expect: Option<&Version>) -> Result<CasOutcome, StateError> {
        let (key, expect) = (key.to_owned(), expect.cloned());
        self.blocking(move |backend| {
            backend.modify(|document| {
                let current = document.entries.get(&key).map(|entry| entry.version.as_str());
                match (current, &expect) {
                    (None, _) => Change::Unchanged(CasOutcome::Done(Version::absent())),
                    (Some(current), Some(expected)) if current != expected.as_str() => {
                        Change::Unchanged(CasOutcome::Mismatch)
                    }
                    (Some(_), _) => {
                        document.entries.remove(&key);
                        Change::Written(CasOutcome::Done(Version::absent()))
                    }
                }
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, KvEntry)>, StateError> {
        let prefix = prefix.to_owned();
        self.blocking(move |backend| {
            Ok(backend
                .read()?
                .entries
                .into_iter()
                .filter(|(key, _)| key.starts_with(&prefix))
                .map(|(key, entry)| (key, KvEntry { value: entry.value, version: Version::new(entry.version) }))
                .collect())
        })
        .await
    }
}
