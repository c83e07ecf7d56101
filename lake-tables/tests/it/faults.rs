//! A store that dies at its N-th write (a crash at that point) and counts data-file reads.
#![allow(dead_code)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result,
};

/// Whether the failing write happens before failing (the crash lost it) or after (it landed, but the
/// process died before it learned so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Before,
    After,
}

#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    /// Fail the write with this 1-based number and every write after it; 0 = never.
    fail_at: AtomicU64,
    mode: FailMode,
    writes: AtomicU64,
    dead: AtomicBool,
    /// GETs of `.parquet` objects under `watch` (data files of the tables).
    pub data_reads: AtomicU64,
    watch: Path,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>, watch: Path, mode: FailMode) -> Arc<Self> {
        Arc::new(FaultStore {
            inner,
            fail_at: AtomicU64::new(0),
            mode,
            writes: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            data_reads: AtomicU64::new(0),
            watch,
        })
    }

    pub fn fail_at(&self, n: u64) {
        self.writes.store(0, Ordering::SeqCst);
        self.dead.store(false, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
    }

    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn died(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// `Ok(true)`: do the write and succeed; `Ok(false)`: do it, then fail; `Err`: fail without it.
    fn gate(&self, what: &str, location: &Path) -> std::result::Result<bool, object_store::Error> {
        let crash = || object_store::Error::Generic {
            store: "fault",
            source: format!("injected crash at write {what} {location}").into(),
        };
        if self.dead.load(Ordering::SeqCst) {
            return Err(crash());
        }
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let fail_at = self.fail_at.load(Ordering::SeqCst);
        if fail_at != 0 && n >= fail_at {
            self.dead.store(true, Ordering::SeqCst);
            return match self.mode {
                FailMode::Before => Err(crash()),
                FailMode::After => Ok(false),
            };
        }
        Ok(true)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

fn injected(location: &Path) -> object_store::Error {
    object_store::Error::Generic { store: "fault", source: format!("injected crash after writing {location}").into() }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let ok = self.gate("put", location)?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if ok { Ok(result) } else { Err(injected(location)) }
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        match self.gate("multipart", location)? {
            true => self.inner.put_multipart_opts(location, opts).await,
            false => Err(injected(location)),
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let is_data = location.prefix_match(&self.watch).is_some()
            && location.filename().is_some_and(|n| n.ends_with(".parquet") && !n.contains("checkpoint"))
            && !location.parts().any(|p| p.as_ref() == "_delta_log");
        if is_data && !options.head {
            self.data_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        match self.gate("delete", &Path::from("(batch)")) {
            Ok(true) => self.inner.delete_stream(locations),
            Ok(false) => {
                let inner = self.inner.clone();
                inner.delete_stream(locations).map(|r| r.and_then(|p| Err(injected(&p)))).boxed()
            }
            Err(e) => {
                let message = e.to_string();
                locations
                    .map(move |_| Err(object_store::Error::Generic { store: "fault", source: message.clone().into() }))
                    .boxed()
            }
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        match self.gate("copy", to)? {
            true => self.inner.copy_opts(from, to, options).await,
            false => {
                self.inner.copy_opts(from, to, options).await?;
                Err(injected(to))
            }
        }
    }
}
