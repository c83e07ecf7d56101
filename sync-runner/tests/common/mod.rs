//! Shared set-up for the end-to-end tests: a simulator, a temporary lake and state, an engine or
//! the real binary, and the check that the lake (rebuilt by the contract's rule) equals the
//! simulator's truth.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lake_writer::{Lake, LakeOptions};
use sync_runner::cli::{Cli, GlobalArgs};
use sync_runner::engine::{Engine, PassReport, PassRequest, StopSignal};
use sync_runner::progress::Progress;
use xledger_client::{ApiKey, ClientConfig, XledgerClient};
use xledger_model::entities;
use xledger_sim::{Fault, FaultPlan, SimConfig, SimHandle, Simulator};

/// Every request answered after `delay` (to spread a run over time).
pub fn latency(delay: Duration) -> FaultPlan {
    FaultPlan::default().every_nth(1, Fault::Latency { delay })
}

pub struct TestEnv {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub async fn new(rows: usize, seed: u64) -> TestEnv {
        let sim = Simulator::start(SimConfig { seed, rows, ..SimConfig::default() }).await.expect("simulator starts");
        TestEnv { sim, dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn lake_path(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state").join("state.json")
    }

    /// Settings as the CLI would parse them, with small pages and parts so runs have many checkpoints.
    pub fn global(&self, extra: &[&str]) -> GlobalArgs {
        let lake = self.lake_path().display().to_string();
        let state = self.state_path().display().to_string();
        let endpoint = self.sim.endpoint();
        let mut args = vec![
            "xledger-sync",
            "--lake",
            &lake,
            "--state",
            &state,
            "--endpoint",
            &endpoint,
            "--page-size",
            "100",
            "--part-rows",
            "250",
            "--db-id-chunk-size",
            "50",
            "--lease-wait",
            "5s",
            "--lease-ttl",
            "2s",
            "--log-format",
            "json",
        ];
        args.extend_from_slice(extra);
        args.push("status");
        Cli::try_parse_from(args).expect("test settings parse").global
    }

    /// An engine with fast retry waits (real code paths, test-sized delays).
    pub async fn engine(&self, global: &GlobalArgs) -> Engine {
        let mut config =
            ClientConfig::new(self.sim.endpoint().parse().expect("url"), ApiKey::new(self.sim.api_key().to_string()));
        config.max_in_flight = global.max_in_flight as usize;
        config.retry.burst_wait = Duration::from_millis(20);
        config.retry.concurrency_wait = Duration::from_millis(10);
        config.retry.base_backoff = Duration::from_millis(5);
        config.retry.max_backoff = Duration::from_millis(50);
        config.retry.max_attempts = 30;
        config.retry.max_credit_wait = Duration::from_secs(10);
        let client = XledgerClient::new(config).expect("client");
        let lake = sync_runner::app::lake(global).await.expect("lake");
        let state = sync_runner::app::state(global).await.expect("state");
        Engine::new(client, lake, state, sync_runner::app::engine_config(global), Progress::hidden())
    }

    pub async fn pass(&self, engine: &Engine) -> PassReport {
        let request = PassRequest { entities: entities().iter().collect(), full: false };
        engine.run_pass(request, StopSignal::new(None)).await
    }

    pub async fn lake(&self) -> Lake {
        Lake::open(&self.lake_path().display().to_string(), LakeOptions::default()).await.expect("lake opens")
    }

    /// The lake, rebuilt by the contract's rule, equals the simulator's current rows: every dbId,
    /// every value.
    pub async fn assert_lake_matches_truth(&self) {
        let lake = self.lake().await;
        for entity in entities() {
            let rebuilt = lake_writer::rebuild::current_state(&lake, entity).await.expect("lake rebuilds");
            let mut expected = BTreeMap::new();
            for node in self.sim.truth(entity.name).expect("a simulated entity") {
                let row = lake_writer::rebuild::canonical_row_from_node(entity, &node).expect("truth converts");
                let id = row.get("dbId").and_then(|v| v.as_i64()).expect("dbId");
                expected.insert(id, strip(row));
            }
            let rebuilt: BTreeMap<i64, _> = rebuilt.into_iter().map(|(id, row)| (id, strip(row))).collect();
            let missing: Vec<_> = expected.keys().filter(|id| !rebuilt.contains_key(id)).take(5).collect();
            let extra: Vec<_> = rebuilt.keys().filter(|id| !expected.contains_key(id)).take(5).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing from the lake {missing:?}, not in truth {extra:?}",
                entity.name
            );
            for (id, row) in &expected {
                assert_eq!(rebuilt.get(id), Some(row), "{}: row {id} differs", entity.name);
            }
        }
    }
}

fn strip(mut row: lake_writer::rebuild::CanonicalRow) -> lake_writer::rebuild::CanonicalRow {
    row.remove("mutationType");
    row.remove("_synced_at");
    row
}

/// A tiny deterministic generator for kill points (no dependence on rand's API).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
