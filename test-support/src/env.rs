//! A simulator, a temporary lake and state, a client with test-sized waits, and the one check
//! every end-to-end test ends with: the lake, rebuilt by the contract's rule, equals the truth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lake_writer::rebuild::CanonicalRow;
use lake_writer::{Lake, LakeOptions};
use xledger_client::{ApiKey, ClientConfig, XledgerClient};
use xledger_model::EntitySpec;
use xledger_sim::{Fault, FaultPlan, SimConfig, SimHandle, Simulator};

/// Every request answered after `delay` (to spread a run over time).
pub fn latency(delay: Duration) -> FaultPlan {
    FaultPlan::default().every_nth(1, Fault::Latency { delay })
}

/// A running simulator and a temporary directory for a lake and a state file (removed on drop).
pub struct SimEnv {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

impl SimEnv {
    /// The built-in entities, `rows` each, seeded.
    pub async fn new(rows: usize, seed: u64) -> SimEnv {
        SimEnv::with_config(SimConfig { seed, rows, ..SimConfig::default() }).await
    }

    pub async fn with_config(config: SimConfig) -> SimEnv {
        let sim = Simulator::start(config).await.expect("simulator starts");
        SimEnv { sim, dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn lake_path(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state").join("state.json")
    }

    /// A client of the simulator with the real retry code and test-sized waits.
    pub fn client(&self) -> XledgerClient {
        self.client_with(|_| {})
    }

    /// [`SimEnv::client`], with its configuration adjusted by `adjust` first.
    pub fn client_with(&self, adjust: impl FnOnce(&mut ClientConfig)) -> XledgerClient {
        let endpoint = self.sim.endpoint().parse().expect("the simulator's endpoint is a URL");
        let mut config = ClientConfig::new(endpoint, ApiKey::new(self.sim.api_key().to_string()));
        config.retry.burst_wait = Duration::from_millis(20);
        config.retry.concurrency_wait = Duration::from_millis(10);
        config.retry.base_backoff = Duration::from_millis(5);
        config.retry.max_backoff = Duration::from_millis(50);
        config.retry.max_attempts = 30;
        config.retry.max_credit_wait = Duration::from_secs(10);
        adjust(&mut config);
        XledgerClient::new(config).expect("client")
    }

    pub async fn lake(&self) -> Lake {
        Lake::open(&self.lake_path().display().to_string(), LakeOptions::default()).await.expect("lake opens")
    }

    /// The state file store (created on first write).
    pub async fn state(&self) -> std::sync::Arc<dyn sync_state::StateStore> {
        sync_state::open_store(&self.state_path().display().to_string(), sync_state::StoreOptions::default())
            .await
            .expect("state store opens")
    }

    /// The simulator's current rows of `entity`, in the lake's canonical form, by dbId.
    pub fn truth(&self, entity: &'static EntitySpec) -> BTreeMap<i64, CanonicalRow> {
        let mut expected = BTreeMap::new();
        for node in self.sim.truth(entity.name).expect("a simulated entity") {
            let row = lake_writer::rebuild::canonical_row_from_node(entity, &node).expect("truth converts");
            let id = row.get("dbId").and_then(|v| v.as_i64()).expect("dbId");
            expected.insert(id, row);
        }
        expected
    }

    /// The lake, rebuilt by the contract's rule, equals the simulator's current rows: every dbId,
    /// every value, for every entity the simulator serves.
    pub async fn assert_lake_matches_truth(&self) {
        let lake = self.lake().await;
        for entity in self.sim.entities() {
            let rebuilt = lake_writer::rebuild::current_state(&lake, entity).await.expect("lake rebuilds");
            assert_rows_equal(entity.name, &strip_all(rebuilt), &strip_all(self.truth(entity)));
        }
    }
}

/// `actual` holds exactly `expected`'s dbIds and rows; the message names the first differences.
pub fn assert_rows_equal(entity: &str, actual: &BTreeMap<i64, CanonicalRow>, expected: &BTreeMap<i64, CanonicalRow>) {
    let missing: Vec<_> = expected.keys().filter(|id| !actual.contains_key(id)).take(5).collect();
    let extra: Vec<_> = actual.keys().filter(|id| !expected.contains_key(id)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{entity}: missing {missing:?}, not expected {extra:?}");
    for (id, row) in expected {
        assert_eq!(actual.get(id), Some(row), "{entity}: row {id} differs");
    }
}

/// Rows without the bookkeeping columns (`mutationType`, `_synced_at`).
fn strip_all(rows: BTreeMap<i64, CanonicalRow>) -> BTreeMap<i64, CanonicalRow> {
    rows.into_iter()
        .map(|(id, mut row)| {
            row.remove(xledger_model::MUTATION_TYPE_COLUMN);
            row.remove(xledger_model::SYNCED_AT_COLUMN);
            (id, row)
        })
        .collect()
}
