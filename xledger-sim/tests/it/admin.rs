//! The admin HTTP API: mutations, truth, faults, counters and the clock, behind the same token.

use crate::common::*;
use serde_json::{Value, json};

async fn admin(sim: &xledger_sim::SimHandle, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", sim.admin_url()))
        .header("Authorization", format!("token {}", sim.api_key()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_api_changes_rows_and_the_feed_shows_it() {
    use reqwest::Method;
    let sim = start(3).await;
    let (status, added) = admin(&sim, Method::POST, "/entities/customers/rows", None).await;
    assert_eq!(status, 200);
    let db_id = added["dbId"].as_i64().unwrap();
    let (_, updated) = admin(&sim, Method::POST, &format!("/entities/customers/rows/{db_id}/update"), None).await;
    assert_eq!(updated, json!({ "updated": true }));
    let (_, deleted) = admin(&sim, Method::DELETE, &format!("/entities/customers/rows/{db_id}"), None).await;
    assert_eq!(deleted, json!({ "deleted": true }));
    let (_, truth) = admin(&sim, Method::GET, "/entities/customers/truth", None).await;
    assert_eq!(truth, Value::Array(sim.truth("customers").unwrap()));
    let answer = post(&sim, &deltas_query("customer_deltas"), json!({ "first": 10 })).await;
    let kinds: Vec<String> = deltas_of(&answer, "customer_deltas").0.into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(kinds, vec!["ADDED", "UPDATED", "DELETED"]);
    let (status, _) = admin(&sim, Method::POST, "/entities/invoices/rows", None).await;
    assert_eq!(status, 404);
    let (_, summary) = admin(&sim, Method::POST, "/random-changes", Some(json!({ "count": 10, "seed": 1 }))).await;
    assert_eq!(
        summary["added"].as_u64().unwrap()
            + summary["updated"].as_u64().unwrap()
            + summary["deleted"].as_u64().unwrap(),
        10
    );
}

#[tokio::test]
async fn admin_api_sets_faults_counters_and_the_clock() {
    use reqwest::Method;
    let sim = start(1).await;
    let plan = json!({ "rules": [{ "fault": { "kind": "http_status", "status": 503 }, "when": { "kind": "next", "count": 1 } }] });
    assert_eq!(admin(&sim, Method::PUT, "/faults", Some(plan)).await.0, 204);
    assert_eq!(post(&sim, "{ __typename }", json!({})).await.status, 503);
    assert_eq!(post(&sim, "{ __typename }", json!({})).await.status, 200);
    sim.set_faults(xledger_sim::FaultPlan::default().every_nth(1, xledger_sim::Fault::QueryTimeout));
    assert_eq!(admin(&sim, Method::DELETE, "/faults", None).await.0, 204);
    assert_eq!(post(&sim, "{ __typename }", json!({})).await.status, 200);
    let (_, counters) = admin(&sim, Method::GET, "/counters", None).await;
    assert_eq!(counters["http_requests"], 3);
    assert_eq!(admin(&sim, Method::DELETE, "/counters", None).await.0, 204);
    assert_eq!(sim.counters().http_requests, 0);
    let (_, clock) = admin(&sim, Method::POST, "/clock/advance", Some(json!({ "seconds": 90 }))).await;
    assert_eq!(clock, json!({ "now": "2024-10-20T10:01:30Z" }));
    let (_, clock) = admin(&sim, Method::PUT, "/clock", Some(json!({ "now": "2024-10-27T01:30:00Z" }))).await;
    assert_eq!(clock, json!({ "now": "2024-10-27T01:30:00Z" }));
    assert_eq!(sim.now().to_rfc3339(), "2024-10-27T01:30:00+00:00");
}

#[tokio::test]
async fn admin_api_needs_the_token() {
    let sim = start(1).await;
    let response = client().get(format!("{}/counters", sim.admin_url())).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let wrong = client()
        .get(format!("{}/counters", sim.admin_url()))
        .header("Authorization", "token wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn the_binary_serves_on_the_port_it_prints() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_xledger-sim"))
        .args(["--port", "0", "--rows", "4", "--seed", "3", "--api-key", "bin-key"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let endpoint = line.split_whitespace().nth(2).unwrap().to_owned();
    let response = client()
        .post(&endpoint)
        .header("Authorization", "token bin-key")
        .json(&json!({ "query": "{ projects { edges { node { dbId } } } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["projects"]["edges"].as_array().unwrap().len(), 4);
    child.kill().await.unwrap();
}
