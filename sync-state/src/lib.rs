//! Durable sync state for xledger-sync: where each entity's synchronisation stands, written with
//! compare-and-swap, a lease per entity so one process at a time syncs it, and the budget meter's
//! monthly usage per Xledger endpoint.
//!
//! A lease names its holder ([`LeaseHolder`]: host, pid, process start, instance id). It lapses after its
//! time-to-live, and a process on the holder's own machine takes it over at once when the holder's
//! process is gone or its pid was reused, so a crash followed by an immediate restart does not wait.
//!
//! The state is a typed model ([`EntityState`], [`Phase`]) serialised as JSON with a `format_version`.
//! It lives behind one small async trait, [`StateStore`], with two backends chosen by [`open_store`]:
//! - a **local JSON file** (the default): atomic replace (temp + fsync + rename) under an advisory lock,
//!   safe against other processes;
//! - **Azure App Configuration**: its REST API with HMAC (connection string) or Entra ID authentication,
//!   ETags for compare-and-swap, and continuity with the keys the old app left there.
//!
//! What this crate must never do: overwrite a record it cannot read (corrupt, or written by a newer
//! version), let two writers both win a compare-and-swap, or put a secret (access key, connection string,
//! token) into a log line, an error, `Debug` output or a file. It knows nothing of Xledger, Parquet or
//! the lake: the engine tells it what to store.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sync_state::StateError> {
//! use std::time::Duration;
//! use sync_state::{open_store, EntityState, Expect, LeaseHolder, StoreOptions};
//!
//! let dir = std::env::temp_dir().join(format!("sync-state-doc-{}", std::process::id()));
//! let store = open_store(dir.join("state.json").to_str().unwrap(), StoreOptions::default()).await?;
//!
//! let holder = LeaseHolder::current();
//! let lease = store.acquire_lease("timesheets", &holder, Duration::from_secs(300)).await?.lease;
//! let current = store.get("timesheets").await?;
//! let expect = current.as_ref().map_or(Expect::Absent, |state| Expect::matching(&state.version));
//! let version = store.put("timesheets", &EntityState::default(), expect).await?;
//! // A second writer holding the old expectation loses:
//! let again = store.put("timesheets", &EntityState::default(), Expect::Absent).await;
//! assert!(matches!(again, Err(sync_state::StateError::Conflict { .. })));
//! assert_eq!(store.get("timesheets").await?.unwrap().version, version);
//! store.release_lease(lease).await?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```

mod appconfig;
mod error;
mod file;
mod holder;
mod model;
mod store;
mod usage;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use error::StateError;
pub use holder::{LeaseHolder, Machine, PidScope, ProcessProbe, ProcessStart, ProcessStatus, SystemProbe};
pub use model::{
    CommittedPart, EntityState, FORMAT_VERSION, FullSyncProgress, FullSyncReason, IncrementalProgress, PendingChanges,
    PendingPart, Phase, RunSummary,
};
pub use store::{Acquired, Expect, Lease, ReplacedLease, StateStore, TakeoverReason, Version, Versioned};
pub use usage::{MonthlyUsage, UsageDelta, UsageMonth};

/// "Now", injectable so lease expiry can be tested without sleeping.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let noon = Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap();
/// let clock = sync_state::Clock::from_fn(move || noon);
/// assert_eq!(clock.now(), noon);
/// ```
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock that asks `now`.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the time: asking a test clock from `Debug` could re-enter its lock.
        f.debug_struct("Clock").finish_non_exhaustive()
    }
}

/// How App Configuration requests are retried on 429, 5xx and transport errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles each time (with jitter), up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest wait, also for a server's `retry-after`.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): the server's ask if it gave one, otherwise
    /// exponential backoff with jitter (50–100 % of the step, so many clients do not retry in step).
    fn delay(&self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let delay = server_asked.unwrap_or_else(|| {
            let step = self.base_backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
            let jitter = 0.5 + f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX) / 2.0;
            step.mul_f64(jitter)
        });
        delay.min(self.max_backoff)
    }
}

/// Options for [`open_store`]. Start from `StoreOptions::default()`.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Prefix of our App Configuration keys (default `xledger-sync/`). Ignored by the file backend.
    pub key_prefix: String,
    /// App Configuration label of our keys (default none). Ignored by the file backend.
    pub label: Option<String>,
    /// Entity → other names the old app may have used as key prefix (e.g. `timesheets` → `["timesheet"]`).
    pub legacy_aliases: BTreeMap<String, Vec<String>>,
    /// "Now" for leases.
    pub clock: Clock,
    /// Retries of App Configuration requests.
    pub retry: RetryPolicy,
    /// Timeout of one App Configuration request.
    pub request_timeout: Duration,
    /// The Entra ID credential for an App Configuration endpoint; `None` = workload identity, managed
    /// identity, then the Azure CLI, whichever answers first.
    pub credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
    /// Tells whether a lease's holder on this machine still runs ([`SystemProbe`] by default; tests
    /// inject one that simulates a dead holder or a reused pid).
    pub process_probe: Arc<dyn ProcessProbe>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            key_prefix: "xledger-sync/".to_owned(),
            label: None,
            legacy_aliases: BTreeMap::new(),
            clock: Clock::system(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            credential: None,
            process_probe: Arc::new(SystemProbe),
        }
    }
}

/// Opens the store that `spec` names:
/// - a path, or a `file://` URL → the file backend (the file and its directory are created on first write);
/// - `Endpoint=https://…;Id=…;Secret=…` → App Configuration with HMAC authentication;
/// - `https://<name>.azconfig.io` → App Configuration with Entra ID ([`StoreOptions::credential`], or
///   workload identity / managed identity / Azure CLI).
///
/// Plain `http://` endpoints are refused except on loopback. Nothing is contacted until the first call.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sync_state::StateError> {
/// use sync_state::{open_store, StoreOptions};
/// let store = open_store("file:///var/lib/xledger-sync/state.json", StoreOptions::default()).await?;
/// assert_eq!(store.describe(), "file /var/lib/xledger-sync/state.json");
///
/// let hmac = "Endpoint=https://example.azconfig.io;Id=key-id;Secret=c2VjcmV0";
/// let store = open_store(hmac, StoreOptions::default()).await?;
/// assert_eq!(
///     store.describe(),
///     "App Configuration https://example.azconfig.io (prefix `xledger-sync/`, label none, access key)"
/// );
/// assert!(!format!("{store:?}").contains("c2VjcmV0"));
/// # Ok(())
/// # }
/// ```
pub async fn open_store(spec: &str, options: StoreOptions) -> Result<Arc<dyn StateStore>, StateError> {
    let spec = spec.trim();
    let StoreOptions { key_prefix, label, legacy_aliases, clock, retry, request_timeout, credential, process_probe } =
        options;
    let shared = store::Shared { legacy_aliases, clock, probe: process_probe };
    if spec.is_empty() {
        return Err(StateError::InvalidConfig("the state store specification is empty".to_owned()));
    }
    let app_config = |endpoint: String, auth| {
        appconfig::AppConfigBackend::new(appconfig::AppConfigSettings {
            endpoint,
            auth,
            key_prefix: key_prefix.clone(),
            label: label.clone(),
            retry: retry.clone(),
            request_timeout,
        })
    };
    if spec.to_ascii_lowercase().contains("endpoint=") {
        let connection = appconfig::auth::ConnectionString::parse(spec)?;
        let backend = app_config(connection.endpoint, appconfig::Auth::Hmac(connection.key))?;
        return Ok(store::KvStateStore::new(backend, shared));
    }
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        appconfig::parse_endpoint(spec)?;
        let backend = app_config(spec.to_owned(), appconfig::entra_auth(credential)?)?;
        return Ok(store::KvStateStore::new(backend, shared));
    }
    let path = if lower.starts_with("file://") {
        url::Url::parse(spec)
            .ok()
            .and_then(|url| url.to_file_path().ok())
            .ok_or_else(|| StateError::InvalidConfig(format!("`{spec}` is not a usable file:// URL")))?
    } else {
        PathBuf::from(spec)
    };
    Ok(store::KvStateStore::new(file::FileBackend::new(path)?, shared))
}
