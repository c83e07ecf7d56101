//! Shared set-up for the binary's end-to-end tests: the simulator environment of `test-support`,
//! and the settings the real command line would parse for it.

#![allow(dead_code)]

use std::ops::Deref;

use clap::Parser;
use sync_runner::cli::{Cli, GlobalArgs};
#[allow(unused_imports)]
pub use test_support::env::{SimEnv, latency};

pub struct TestEnv {
    env: SimEnv,
}

impl Deref for TestEnv {
    type Target = SimEnv;
    fn deref(&self) -> &SimEnv {
        &self.env
    }
}

impl TestEnv {
    pub async fn new(rows: usize, seed: u64) -> TestEnv {
        TestEnv { env: SimEnv::new(rows, seed).await }
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
}
