//! The Functions handler with the real engine behind it: a timer invocation as the host sends it
//! runs a pass against xledger-sim, the next one is idle (one request), and the status function
//! reports the state.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::TestEnv;
use serde_json::{Value, json};
use sync_runner::serve::{ServeConfig, router};
use sync_runner::service::EngineService;
use tower::ServiceExt;

fn timer_invocation() -> Value {
    json!({
        "Data": { "timer": {
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": { "Last": "2026-11-28T08:05:00+00:00", "Next": "2026-11-28T10:05:00+00:00", "LastUpdated": "2026-11-28T08:05:00+00:00" },
            "IsPastDue": false
        } },
        "Metadata": { "sys": { "MethodName": "sync_timer", "UtcNow": "2026-11-28T09:05:00.0123456Z", "RandGuid": "4e773554-f6b7-4ea2-b07d-4c5fd5aba741" } }
    })
}

async fn invoke(app: &axum::Router, function: &str, payload: &Value) -> (StatusCode, Value) {
    let request = Request::post(format!("/{function}"))
        .header("content-type", "application/json; charset=utf-8")
        .header("X-Azure-Functions-InvocationId", "0f6a1d2e-9a51-4c1b-8d5e-3c2b1a0f9e8d")
        .body(Body::from(payload.to_string()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible router");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_invocations_run_real_passes_and_an_idle_one_costs_one_request() {
    let env = TestEnv::new(120, 61).await;
    let mut global = env.global(&[]);
    global.api_key = Some(env.sim.api_key().to_string());
    let service = EngineService::new(global).await.expect("service starts");
    let app = router(Arc::new(service), ServeConfig::new(7071, Duration::from_secs(600)));

    let (status, body) = invoke(&app, "sync_timer", &timer_invocation()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ReturnValue"]["status"], "completed", "{body}");
    env.assert_lake_matches_truth().await;

    env.sim.random_changes(90, 3);
    let (status, body) = invoke(&app, "sync_timer", &timer_invocation()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.assert_lake_matches_truth().await;

    env.sim.reset_counters();
    let (status, body) = invoke(&app, "sync_timer", &timer_invocation()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ReturnValue"]["summary"]["requests"], 1, "{body}");
    assert_eq!(env.sim.counters().http_requests, 1);
}
