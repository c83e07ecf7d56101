//! Helpers shared by the integration tests: start a small simulator, post GraphQL to it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use xledger_sim::{SimConfig, SimHandle, Simulator};

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-10-20T10:00:00Z").unwrap().with_timezone(&Utc)
}

pub fn config(rows: usize) -> SimConfig {
    SimConfig { seed: 7, rows, rows_per_entity: BTreeMap::new(), start_time: start_time(), ..SimConfig::default() }
}

pub async fn start(rows: usize) -> SimHandle {
    Simulator::start(config(rows)).await.unwrap()
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

pub async fn post(sim: &SimHandle, query: &str, variables: Value) -> Answer {
    post_with(sim, json!({ "query": query, "variables": variables }), Some(&format!("token {}", sim.api_key()))).await
}

pub async fn post_with(sim: &SimHandle, body: Value, authorization: Option<&str>) -> Answer {
    let mut request = client().post(sim.endpoint()).json(&body);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text }
}

pub fn items_query(field: &str, selection: &str) -> String {
    format!(
        "query Q($first: Int, $after: String) {{ {field}(first: $first, after: $after) {{ edges {{ cursor node {{ {selection} }} }} pageInfo {{ hasNextPage }} }} }}"
    )
}

pub fn deltas_query(field: &str) -> String {
    format!(
        "query D($first: Int, $last: Int, $after: String) {{ {field}(first: $first, last: $last, after: $after) {{ edges {{ cursor node {{ dbId mutationType }} }} pageInfo {{ hasNextPage }} }} }}"
    )
}

/// The `(dbId, mutationType)` pairs of a deltas answer under `key`, and the last cursor.
pub fn deltas_of(answer: &Answer, key: &str) -> (Vec<(String, String)>, Option<String>) {
    let edges = answer.body["data"][key]["edges"].as_array().cloned().unwrap_or_default();
    let entries = edges
        .iter()
        .map(|e| {
            (
                e["node"]["dbId"].to_string().trim_matches('"').to_owned(),
                e["node"]["mutationType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let cursor = edges.last().map(|e| e["cursor"].as_str().unwrap().to_owned());
    (entries, cursor)
}

pub fn db_id_of(node: &Value) -> i64 {
    match &node["dbId"] {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_i64().unwrap(),
    }
}

/// A client that does not ask for gzip, so bodies and lengths are the simulator's own.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_gzip().build().unwrap()
}
