//! The public node generator and PRNG: the same rows as a simulator, and the knobs other test
//! suites need (first dbId, null rates, profile).

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::Value;
use xledger_sim::{DataProfile, NodeOptions, NullRates, SimConfig, SimRng, Simulator, generate_node_values};

#[tokio::test]
async fn generated_nodes_are_the_simulators_initial_rows() {
    let sim = Simulator::start(SimConfig {
        rows_per_entity: BTreeMap::from([("timesheets".to_owned(), 1_200)]),
        ..config(40)
    })
    .await
    .unwrap();
    for spec in xledger_model::entities() {
        let truth = sim.truth(spec.name).unwrap();
        let options = NodeOptions { seed: 7, now: start_time(), ..NodeOptions::default() };
        let generated = generate_node_values(spec, truth.len(), &options);
        assert_eq!(generated.len(), truth.len());
        let differing = generated.iter().zip(&truth).position(|(a, b)| a != b);
        assert_eq!(differing, None, "{}: the first differing node", spec.name);
    }
}

/// Nested objects of a node that are null, and nullable leaves that are null.
fn nulls(spec: &xledger_model::EntitySpec, nodes: &[Value]) -> (usize, usize) {
    let (mut objects, mut leaves) = (0, 0);
    for node in nodes {
        for column in spec.columns {
            let mut value = node;
            for (depth, key) in column.path.iter().enumerate() {
                value = &value[key];
                if value.is_null() {
                    if depth + 1 < column.path.len() {
                        objects += 1
                    } else {
                        leaves += 1
                    }
                    break;
                }
            }
        }
    }
    (objects, leaves)
}

#[test]
fn first_db_id_null_rates_and_profile_are_knobs() {
    let customers = xledger_model::entity("customers").unwrap();
    let options = NodeOptions { seed: 3, first_db_id: Some(2_000), ..NodeOptions::default() };
    let nodes = generate_node_values(customers, 400, &options);
    let ids: Vec<i64> = nodes.iter().map(db_id_of).collect();
    assert_eq!(ids, (2_000..2_400).collect::<Vec<_>>());
    let (objects, leaves) = nulls(customers, &nodes);
    assert!(objects > 0 && leaves > 0, "{objects} {leaves}");

    let clean = generate_node_values(customers, 400, &NodeOptions { nulls: NullRates::NONE, ..options });
    assert_eq!(nulls(customers, &clean), (0, 0));
    let all_null =
        generate_node_values(customers, 50, &NodeOptions { nulls: NullRates { object: 1.0, leaf: 0.0 }, ..options });
    assert!(all_null.iter().all(|node| node["company"].is_null()));

    let ledger = generate_node_values(customers, 400, &NodeOptions { profile: DataProfile::Ledger, ..options });
    let companies: std::collections::BTreeSet<String> =
        ledger.iter().filter(|n| n["company"].is_object()).map(|n| n["company"].to_string()).collect();
    assert!(companies.len() <= 2_000 && companies.len() < 400, "referenced records repeat: {}", companies.len());
    assert_ne!(generate_node_values(customers, 5, &NodeOptions { seed: 4, ..options }), nodes[..5]);
}

#[test]
fn the_prng_is_splitmix64() {
    // The reference sequence of SplitMix64 seeded with 0.
    let mut rng = SimRng::new(0);
    assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    let mut dice = SimRng::new(9);
    let rolls: Vec<i64> = (0..1_000).map(|_| dice.between(1, 6)).collect();
    assert!((1..=6).all(|face| rolls.contains(&face)) && rolls.iter().all(|r| (1..=6).contains(r)));
    assert!((0..100).all(|_| !dice.chance(0.0) && dice.chance(1.0)));
    assert_eq!(dice.pick::<u8>(&[]), None);
}
