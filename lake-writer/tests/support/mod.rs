//! Shared by the integration tests and the benchmark: nodes from the simulator's own generator
//! (`xledger_sim::generate_node_values`: seeded, every column of the entity's plan, non-ASCII,
//! escapes, DST edges) and the test environment (Azurite, DuckDB).
#![allow(dead_code)]

use serde_json::Value;
use xledger_model::EntitySpec;
pub use xledger_sim::NullRates;
use xledger_sim::{NodeOptions, generate_node_values};

pub const SOME_NULLS: NullRates = NullRates { object: 0.05, leaf: 0.05 };
pub const NO_NULLS: NullRates = NullRates::NONE;

/// `count` nodes of `entity` with dbIds from `first_db_id`, the same for the same seed.
pub fn nodes(entity: &'static EntitySpec, first_db_id: i64, count: usize, seed: u64, nulls: NullRates) -> Vec<Value> {
    generate_node_values(
        entity,
        count,
        &NodeOptions { seed, nulls, first_db_id: Some(first_db_id), ..Default::default() },
    )
}

/// Serializes nodes into their JSON texts, as the API sends them.
pub fn raw(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(Value::to_string).collect()
}

/// Azurite's blob endpoint from `cargo xtask test`, or a failure explaining how to get one.
pub fn azurite_endpoint() -> String {
    std::env::var("XLEDGER_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("XLEDGER_TEST_AZURITE is not set: run the Azurite tests with `cargo xtask test` (it installs and starts Azurite)")
    })
}

/// `(python, PYTHONPATH)` where `import duckdb` works, from `cargo xtask test`.
pub fn duckdb_python() -> (String, String) {
    let path = std::env::var("XLEDGER_TEST_PYTHONPATH").unwrap_or_else(|_| {
        panic!("XLEDGER_TEST_PYTHONPATH is not set: run the DuckDB tests with `cargo xtask test` (it installs DuckDB)")
    });
    let python = std::env::var("XLEDGER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    (python, path)
}
