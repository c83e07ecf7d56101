//! Fixtures shared by the suite: a store on either backend with an injected clock and process probe,
//! raw access to the records behind it, and lease holders on this machine and others.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sync_state::{
    Clock, EntityState, IncrementalProgress, LeaseHolder, Machine, Phase, PidScope, ProcessProbe, ProcessStart,
    ProcessStatus, RetryPolicy, StateStore, StoreOptions, open_store,
};
use test_support::app_config::FakeAppConfig;
use wiremock::MockServer;
use wiremock::matchers::any;

/// The host name the fake probe reports for "this machine".
pub const THIS_HOST: &str = "this-host";
/// Where the fake probe's pids live.
pub fn this_scope() -> PidScope {
    PidScope { boot_id: "boot-a".to_owned(), pid_namespace: "pid:[4026531836]".to_owned() }
}

/// A machine whose processes the test scripts: a pid is `Unknown` until the test says otherwise.
#[derive(Debug, Default)]
pub struct FakeProbe {
    processes: Mutex<BTreeMap<u32, ProcessStatus>>,
}

impl ProcessProbe for FakeProbe {
    fn machine(&self) -> Machine {
        Machine { host: THIS_HOST.to_owned(), pids: Some(this_scope()) }
    }

    fn process(&self, pid: u32) -> ProcessStatus {
        self.processes.lock().unwrap().get(&pid).copied().unwrap_or(ProcessStatus::Unknown)
    }
}

impl FakeProbe {
    /// Starts process `pid` at `ticks` on this machine and returns it as a lease holder.
    pub fn start(&self, pid: u32, ticks: u64) -> LeaseHolder {
        self.set(pid, ProcessStatus::Running { start_ticks: ticks });
        LeaseHolder {
            host: THIS_HOST.to_owned(),
            pid,
            start: Some(ProcessStart { scope: this_scope(), ticks }),
            instance: format!("local{pid}"),
        }
    }

    /// Says what runs under `pid` from now on.
    pub fn set(&self, pid: u32, status: ProcessStatus) {
        self.processes.lock().unwrap().insert(pid, status);
    }
}

/// A holder on another machine.
pub fn remote(pid: u32) -> LeaseHolder {
    LeaseHolder {
        host: "other-host".to_owned(),
        pid,
        start: Some(ProcessStart {
            scope: PidScope { boot_id: "boot-z".to_owned(), pid_namespace: "pid:[4026531836]".to_owned() },
            ticks: 1_000,
        }),
        instance: format!("remote{pid}"),
    }
}

/// Where a store's records live.
pub enum Backing {
    /// A state file in a temporary directory.
    File(tempfile::TempDir),
    /// The App Configuration stand-in.
    AppConfig { server: MockServer, fake: FakeAppConfig },
}

/// A store, its clock and its probe.
pub struct Env {
    pub store: Arc<dyn StateStore>,
    pub now: Arc<Mutex<DateTime<Utc>>>,
    pub probe: Arc<FakeProbe>,
    pub backing: Backing,
}

/// 2025-03-01 12:00 UTC, where every test's clock starts.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

impl Env {
    /// A store on a fresh state file.
    pub async fn file() -> Self {
        Self::with(Backing::File(tempfile::tempdir().unwrap())).await
    }

    /// A store on a fresh App Configuration stand-in (HMAC authentication).
    pub async fn app_config() -> Self {
        Self::with(Self::app_config_backing(FakeAppConfig::hmac()).await).await
    }

    /// The App Configuration stand-in `fake`, served.
    pub async fn app_config_backing(fake: FakeAppConfig) -> Backing {
        let server = MockServer::start().await;
        wiremock::Mock::given(any()).respond_with(fake.clone()).mount(&server).await;
        Backing::AppConfig { server, fake }
    }

    /// A store on `backing`.
    pub async fn with(backing: Backing) -> Self {
        let now = Arc::new(Mutex::new(start_time()));
        let probe = Arc::<FakeProbe>::default();
        let store = open_store(&spec_of(&backing), options_with(&now, &probe)).await.unwrap();
        Self { store, now, probe, backing }
    }

    /// The options every store of this environment opens with: its clock and probe, retries without waits.
    pub fn options(&self) -> StoreOptions {
        options_with(&self.now, &self.probe)
    }

    /// The store specification of the backing.
    pub fn spec(&self) -> String {
        spec_of(&self.backing)
    }

    /// The state file (file backing only).
    pub fn file_path(&self) -> std::path::PathBuf {
        match &self.backing {
            Backing::File(dir) => state_file_in(dir),
            Backing::AppConfig { .. } => panic!("not a file backing"),
        }
    }

    /// The stand-in (App Configuration backing only).
    pub fn fake(&self) -> &FakeAppConfig {
        match &self.backing {
            Backing::AppConfig { fake, .. } => fake,
            Backing::File(_) => panic!("not an App Configuration backing"),
        }
    }

    /// The stand-in's address (App Configuration backing only).
    pub fn server_uri(&self) -> String {
        match &self.backing {
            Backing::AppConfig { server, .. } => server.uri(),
            Backing::File(_) => panic!("not an App Configuration backing"),
        }
    }

    /// Another store on the same backing, as another process would open it.
    pub async fn open(&self, options: StoreOptions) -> Arc<dyn StateStore> {
        open_store(&self.spec(), options).await.unwrap()
    }

    /// Moves the clock on.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += chrono::TimeDelta::from_std(by).unwrap();
    }

    /// The clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }

    /// Writes a raw record under `key` (below the prefix), as another build or a person would.
    pub fn seed_raw(&self, key: &str, value: Value) {
        match &self.backing {
            Backing::File(_) => {
                let path = self.file_path();
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let mut document = match std::fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
                    Err(_) => serde_json::json!({"format_version": 1, "entries": {}}),
                };
                document["entries"][key] = serde_json::json!({"version": "seeded", "value": value});
                std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
            }
            Backing::AppConfig { fake, .. } => {
                fake.seed(&format!("xledger-sync/{key}"), None, &value.to_string(), "2025-01-01T00:00:00+00:00")
            }
        }
    }

    /// The raw record under `key` (below the prefix).
    pub fn raw(&self, key: &str) -> Option<Value> {
        match &self.backing {
            Backing::File(_) => {
                let bytes = std::fs::read(self.file_path()).ok()?;
                let document: Value = serde_json::from_slice(&bytes).unwrap();
                document["entries"].get(key).map(|entry| entry["value"].clone())
            }
            Backing::AppConfig { fake, .. } => {
                fake.stored(&format!("xledger-sync/{key}"), None).map(|kv| serde_json::from_str(&kv.value).unwrap())
            }
        }
    }
}

fn state_file_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("state").join("state.json")
}

fn spec_of(backing: &Backing) -> String {
    match backing {
        Backing::File(dir) => state_file_in(dir).to_str().unwrap().to_owned(),
        Backing::AppConfig { server, .. } => FakeAppConfig::connection_string(&server.uri()),
    }
}

fn options_with(now: &Arc<Mutex<DateTime<Utc>>>, probe: &Arc<FakeProbe>) -> StoreOptions {
    let now = Arc::clone(now);
    StoreOptions {
        clock: Clock::from_fn(move || *now.lock().unwrap()),
        process_probe: probe.clone(),
        // No waiting between retries: the tests count attempts, they do not time them.
        retry: RetryPolicy { max_attempts: 3, base_backoff: Duration::ZERO, max_backoff: Duration::ZERO },
        ..StoreOptions::default()
    }
}

/// An incremental state at `cursor`, standing on a full load with a recorded schema fingerprint.
pub fn incremental(cursor: &str) -> EntityState {
    EntityState {
        phase: Phase::Incremental(IncrementalProgress {
            deltas_cursor: Some(cursor.to_owned()),
            last_success: Utc.with_ymd_and_hms(2025, 3, 1, 11, 0, 0).unwrap(),
            last_full_sync: Some("20250301_10_00_00".to_owned()),
            pending: None,
            imported_from_legacy: false,
            schema_fingerprint: Some("fingerprint-1".to_owned()),
        }),
        last_run: None,
    }
}
