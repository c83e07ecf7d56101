//! What a pass costs: cheap `dbId + modifiedAt` scans, batched `dbId_in` fetches under aliases
//! in one request, errors confined to one alias, and the per-request counters.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{Value, json};
use xledger_sim::{Fault, FaultPlan, SimConfig, Simulator};

const SCAN: &str = "query Scan($after: String) { timesheets(first: 10000, after: $after) { edges { cursor node { dbId modifiedAt } } pageInfo { hasNextPage } } }";

#[tokio::test]
async fn a_db_id_and_modified_at_scan_pages_by_10000_and_counts_each_request() {
    let config =
        SimConfig { rows: 0, rows_per_entity: BTreeMap::from([("timesheets".to_owned(), 25_000)]), ..config(0) };
    let sim = Simulator::start(config).await.unwrap();
    let (mut seen, mut after) = (Vec::new(), Value::Null);
    loop {
        let answer = post(&sim, SCAN, json!({ "after": after })).await;
        let page = &answer.body["data"]["timesheets"];
        for edge in page["edges"].as_array().unwrap() {
            let node = edge["node"].as_object().unwrap();
            assert_eq!(node.len(), 2, "only the two scanned fields");
            seen.push((db_id_of(&edge["node"]), node["modifiedAt"].clone()));
            after = edge["cursor"].clone();
        }
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
    }
    let truth: Vec<(i64, Value)> =
        sim.truth("timesheets").unwrap().iter().map(|node| (db_id_of(node), node["modifiedAt"].clone())).collect();
    assert_eq!(seen, truth);

    let counters = sim.counters();
    assert_eq!(counters.http_requests, 3, "25 000 rows at 10 000 a page");
    assert_eq!(counters.requests.len(), 3);
    let sizes: Vec<u64> = counters.requests.iter().map(|r| r.response_bytes).collect();
    assert_eq!(sizes.iter().sum::<u64>(), counters.response_bytes);
    assert!(sizes[0] > sizes[2] && sizes[2] > 0, "{sizes:?}: a full page costs more than the last half page");
    // About 90 bytes a row (a base64 cursor, an id beyond 32 bits, a date-time): 10 000 rows < 1.2 MB.
    assert!(sizes[0] < 1_200_000, "{sizes:?}");
    for request in &counters.requests {
        assert_eq!(request.root_fields, ["timesheets"]);
        assert_eq!(request.status, 200);
        assert!(request.request_bytes > 100 && request.body_bytes == request.response_bytes, "{request:?}");
    }
    assert_eq!(counters.request_bytes, counters.requests.iter().map(|r| r.request_bytes).sum::<u64>());
}

/// One request fetching rows of three entities by `dbId_in`, two aliases on one of them.
fn batch_query() -> &'static str {
    "query Batch($t: [Int64String!], $p: [Int!], $c1: [Int!], $c2: [Int!]) {
       t: timesheets(first: 10000, filter: { dbId_in: $t }) { edges { node { dbId workingHours } } pageInfo { hasNextPage } }
       p: projects(first: 10000, filter: { dbId_in: $p }) { edges { node { dbId code } } pageInfo { hasNextPage } }
       c1: customers(first: 10000, filter: { dbId_in: $c1 }) { edges { node { dbId } } }
       c2: customers(first: 10000, filter: { dbId_in: $c2 }) { edges { node { dbId } } }
     }"
}

fn ids(sim: &xledger_sim::SimHandle, entity: &str, take: usize) -> Vec<i64> {
    sim.truth(entity).unwrap().iter().map(db_id_of).take(take).collect()
}

fn ids_under(answer: &Answer, alias: &str) -> Vec<i64> {
    answer.body["data"][alias]["edges"].as_array().unwrap().iter().map(|e| db_id_of(&e["node"])).collect()
}

#[tokio::test]
async fn aliased_db_id_in_fetches_of_several_entities_are_one_request() {
    let sim = start(30).await;
    let (t, p, c) = (ids(&sim, "timesheets", 7), ids(&sim, "projects", 3), ids(&sim, "customers", 10));
    let variables = json!({
        "t": t.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        "p": p, "c1": &c[..4], "c2": &c[4..],
    });
    sim.reset_counters();
    let answer = post(&sim, batch_query(), variables).await;
    assert!(answer.body.get("errors").is_none(), "{}", answer.text);
    assert_eq!(ids_under(&answer, "t"), t);
    assert_eq!(ids_under(&answer, "p"), p);
    assert_eq!(ids_under(&answer, "c1"), c[..4]);
    assert_eq!(ids_under(&answer, "c2"), c[4..]);
    let counters = sim.counters();
    assert_eq!(counters.http_requests, 1, "this pass cost one request");
    assert_eq!(counters.requests[0].root_fields, ["timesheets", "projects", "customers", "customers"]);
    assert_eq!(counters.by_root_field["customers"].requests, 2, "per root field: each alias counts");
    assert_eq!(counters.by_root_field["timesheets"].requests, 1);
}

#[tokio::test]
async fn a_field_error_fault_nulls_one_alias_and_the_others_answer() {
    let sim = start(10).await;
    let (t, p, c) = (ids(&sim, "timesheets", 2), ids(&sim, "projects", 2), ids(&sim, "customers", 2));
    let variables = json!({ "t": t.iter().map(|id| id.to_string()).collect::<Vec<_>>(), "p": p, "c1": c, "c2": [] });
    // Aimed at the projects field: a request without it (the probe) does not use the rule up.
    sim.set_faults(FaultPlan::default().field_error(1, "projects", "Something broke in projects."));
    let probe = post(&sim, &deltas_query("project_deltas"), json!({ "last": 1 })).await;
    assert!(probe.body.get("errors").is_none(), "{}", probe.text);

    let answer = post(&sim, batch_query(), variables.clone()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["data"]["p"], Value::Null);
    assert_eq!(answer.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(answer.body["errors"][0]["path"], json!(["p"]));
    assert_eq!(answer.body["errors"][0]["message"], "Something broke in projects.");
    assert_eq!(ids_under(&answer, "t"), t);
    assert_eq!(ids_under(&answer, "c1"), c);
    assert_eq!(sim.counters().faults_injected, 0, "the request itself was answered");

    let again = post(&sim, batch_query(), variables).await;
    assert_eq!(ids_under(&again, "p"), p, "the rule hit one request");

    // By alias, with a code, every second request containing it.
    let fault = Fault::FieldError { field: "c2".into(), message: "Nope.".into(), code: Some("BAD_REQUEST.X".into()) };
    sim.set_faults(FaultPlan::default().every_nth(2, fault));
    let query =
        "{ c1: customers(first: 1) { edges { node { dbId } } } c2: customers(first: 1) { edges { node { dbId } } } }";
    let first = post(&sim, query, json!({})).await;
    assert!(first.body.get("errors").is_none());
    let second = post(&sim, query, json!({})).await;
    assert_eq!(second.body["errors"][0], json!({ "message": "Nope.", "code": "BAD_REQUEST.X", "path": ["c2"] }));
    assert_eq!(second.body["data"]["c2"], Value::Null);
    assert_eq!(ids_under(&second, "c1").len(), 1);
}

#[tokio::test]
async fn a_badly_typed_db_id_in_fails_the_whole_request_as_graphql_validation_does() {
    // Input coercion errors are request errors in GraphQL: a real server answers no data at all,
    // so the simulator does too (an error confined to one alias is a FieldError fault).
    let sim = start(3).await;
    let answer = post(&sim, batch_query(), json!({ "t": ["x1"], "p": [1], "c1": [1], "c2": [] })).await;
    assert_eq!(answer.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    assert!(answer.body.get("data").is_none());
}

#[tokio::test]
async fn counters_since_give_the_cost_of_one_pass() {
    let sim = start(5).await;
    post(&sim, &items_query("projects", "dbId"), json!({ "first": 2 })).await;
    let before = sim.counters();
    post(&sim, &deltas_query("project_deltas"), json!({ "last": 1 })).await;
    post(&sim, &items_query("customers", "dbId"), json!({ "first": 5 })).await;
    let pass = sim.counters().since(&before);
    assert_eq!(pass.http_requests, 2);
    assert_eq!(pass.requests.len(), 2);
    assert_eq!(pass.by_root_field.keys().collect::<Vec<_>>(), ["customers", "project_deltas"]);
    assert_eq!(pass.response_bytes, pass.requests.iter().map(|r| r.response_bytes).sum::<u64>());
}

#[tokio::test]
async fn a_scan_shows_a_corrupted_modified_at() {
    let sim = start(3).await;
    let id = db_id_of(&sim.truth("timesheets").unwrap()[1]);
    assert!(sim.corrupt("timesheets", id, "modifiedAt", json!("2030-01-01T00:00:00")).unwrap());
    let answer = post(&sim, SCAN, json!({})).await;
    let edges = answer.body["data"]["timesheets"]["edges"].as_array().unwrap();
    assert_eq!(edges[1]["node"], json!({ "dbId": id.to_string(), "modifiedAt": "2030-01-01T00:00:00" }));
    let truth = sim.truth("timesheets").unwrap();
    assert_eq!(edges[0]["node"]["modifiedAt"], truth[0]["modifiedAt"]);
}
