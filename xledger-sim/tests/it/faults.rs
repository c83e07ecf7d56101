//! Fault injection over HTTP: every rate-limit code, timeouts, 5xx, broken bodies, latency,
//! the behavioural concurrency and burst limits, and the request/byte counters.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use xledger_sim::{Fault, FaultPlan};

const QUERY: &str = "{ projects(first: 2) { edges { node { dbId description } } pageInfo { hasNextPage } } }";

#[tokio::test]
async fn each_rate_limit_code_is_an_error_entry_with_http_200() {
    let sim = start(2).await;
    for (fault, code) in [
        (Fault::BurstRateLimit, "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"),
        (Fault::ConcurrencyLimit, "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"),
        (Fault::InsufficientCredits { reset_after: Duration::from_secs(1200) }, "BAD_REQUEST.INSUFFICIENT_CREDITS"),
    ] {
        sim.set_faults(FaultPlan::default().next(1, fault));
        let answer = post(&sim, QUERY, json!({})).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["errors"][0]["code"], code);
        assert!(answer.body.get("data").is_none());
        let ok = post(&sim, QUERY, json!({})).await;
        assert!(ok.body["data"]["projects"].is_object(), "the fault hit one request only");
    }
}

#[tokio::test]
async fn insufficient_credits_says_when_credits_return() {
    let sim = start(1).await;
    sim.set_faults(FaultPlan::default().next(1, Fault::InsufficientCredits { reset_after: Duration::from_secs(1200) }));
    let answer = post(&sim, QUERY, json!({})).await;
    assert_eq!(answer.body["errors"][0]["extensions"]["resetAt"], "2024-10-20T10:20:00Z");
}

#[tokio::test]
async fn query_timeout_has_xledgers_message() {
    let sim = start(1).await;
    sim.set_faults(FaultPlan::default().next(1, Fault::QueryTimeout));
    let answer = post(&sim, QUERY, json!({})).await;
    assert_eq!(answer.body, json!({ "errors": [{ "message": "Your query timed out." }] }));
}

#[tokio::test]
async fn http_5xx_statuses() {
    let sim = start(1).await;
    for status in [500, 502, 503] {
        sim.set_faults(FaultPlan::default().next(1, Fault::HttpStatus { status }));
        assert_eq!(post(&sim, QUERY, json!({})).await.status, status);
    }
}

#[tokio::test]
async fn truncated_body_has_valid_headers_and_is_cut_mid_json() {
    let sim = start(5).await;
    let full = post(&sim, QUERY, json!({})).await.text;
    sim.set_faults(FaultPlan::default().next(1, Fault::TruncatedBody));
    let response = client()
        .post(sim.endpoint())
        .header("Authorization", format!("token {}", sim.api_key()))
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let text = response.text().await.unwrap();
    assert_eq!(text.len(), length);
    assert_eq!(text, full[..full.len() / 2]);
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
}

#[tokio::test]
async fn aborted_body_fails_while_reading_it() {
    let sim = start(5).await;
    sim.set_faults(FaultPlan::default().next(1, Fault::AbortedBody));
    let response = client()
        .post(sim.endpoint())
        .header("Authorization", format!("token {}", sim.api_key()))
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn latency_delays_the_answer_on_the_paused_clock() {
    let sim = start(2).await;
    sim.set_faults(FaultPlan::default().next(1, Fault::Latency { delay: Duration::from_secs(30) }));
    let started = tokio::time::Instant::now();
    let answer = post(&sim, QUERY, json!({})).await;
    assert!(answer.body["data"]["projects"].is_object());
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn more_requests_in_flight_than_the_limit_get_concurrency_errors() {
    let sim = start(2).await;
    sim.set_faults(
        FaultPlan::default().concurrency_limit(1).next(1, Fault::Latency { delay: Duration::from_secs(10) }),
    );
    let slow = tokio::spawn({
        let sim = sim.clone();
        async move { post(&sim, QUERY, json!({})).await }
    });
    while sim.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let rejected = post(&sim, QUERY, json!({})).await;
    assert_eq!(rejected.body["errors"][0]["code"], "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED");
    assert!(slow.await.unwrap().body["data"]["projects"].is_object());
    assert!(post(&sim, QUERY, json!({})).await.body["data"]["projects"].is_object());
}

#[tokio::test(start_paused = true)]
async fn more_requests_per_window_than_the_burst_limit_get_burst_errors() {
    let sim = start(2).await;
    // A long window: the paused clock may jump to an idle connection's timer between requests.
    let window = Duration::from_secs(3600);
    sim.set_faults(FaultPlan::default().burst_limit(3, window));
    for _ in 0..3 {
        assert!(post(&sim, QUERY, json!({})).await.body["data"].is_object());
    }
    let rejected = post(&sim, QUERY, json!({})).await;
    assert_eq!(rejected.body["errors"][0]["code"], "BAD_REQUEST.BURST_RATE_LIMIT_REACHED");
    tokio::time::advance(window).await;
    assert!(post(&sim, QUERY, json!({})).await.body["data"].is_object());
}

#[tokio::test]
async fn every_nth_and_seeded_probability_rules_repeat_exactly() {
    let sim = start(1).await;
    let run = |plan: FaultPlan| {
        let sim = sim.clone();
        async move {
            sim.set_faults(plan);
            let mut failed = Vec::new();
            for i in 1..=12 {
                if post(&sim, QUERY, json!({})).await.status == 502 {
                    failed.push(i);
                }
            }
            failed
        }
    };
    assert_eq!(run(FaultPlan::default().every_nth(4, Fault::HttpStatus { status: 502 })).await, vec![4, 8, 12]);
    let random = FaultPlan::default().with_probability(0.5, 3, Fault::HttpStatus { status: 502 });
    let first = run(random.clone()).await;
    assert!(!first.is_empty() && first.len() < 12, "{first:?}");
    assert_eq!(run(random).await, first);
}

#[tokio::test]
async fn counters_count_requests_and_bytes_per_root_field_and_reset() {
    let sim = start(3).await;
    let probe = "{ a: projects(first: 1) { edges { cursor } } b: projects(first: 3) { edges { cursor } } project_deltas(last: 1) { edges { cursor } } }";
    let answer = post(&sim, probe, json!({})).await;
    sim.set_faults(FaultPlan::default().next(1, Fault::HttpStatus { status: 500 }));
    post(&sim, probe, json!({})).await;
    let counters = sim.counters();
    assert_eq!(counters.http_requests, 2);
    assert_eq!(counters.faults_injected, 1);
    assert_eq!(counters.by_root_field["projects"].requests, 2);
    assert_eq!(counters.by_root_field["project_deltas"].requests, 1);
    let data = &answer.body["data"];
    let projects_bytes = (data["a"].to_string().len() + data["b"].to_string().len()) as u64;
    assert_eq!(counters.by_root_field["projects"].bytes, projects_bytes);
    assert_eq!(counters.response_bytes, answer.text.len() as u64 + "500 Internal Server Error".len() as u64);
    sim.reset_counters();
    assert_eq!(sim.counters(), xledger_sim::Counters::default());
}
