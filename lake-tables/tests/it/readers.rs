//! The independent readers (DuckDB's delta extension, Python `deltalake`) on this crate's tables:
//! their rows must equal the contract's rebuild of the raw files (`test_support::readers`).

use test_support::readers::ExpectedTable;
use xledger_model::EntitySpec;

use crate::support::{Env, expected};

pub async fn assert_readers_agree(env: &Env, entities: &[EntitySpec]) {
    let mut rows = Vec::new();
    for entity in entities {
        let spec: &'static EntitySpec = xledger_model::entity(entity.name).expect("a registered entity");
        rows.push((entity, env.dir.path().join("current").join(entity.name), expected(&env.lake, spec).await));
    }
    let tables: Vec<ExpectedTable<'_>> =
        rows.iter().map(|(entity, path, rows)| ExpectedTable { entity, path, rows }).collect();
    test_support::readers::assert_readers_agree(&tables).await;
}
