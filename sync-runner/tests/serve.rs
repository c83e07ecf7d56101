//! The Functions custom handler driven with the payloads the Functions host really sends (timer
//! and HTTP invocations), against a fake engine; plus the function.json files against the catalog
//! and the configuration read from host.json and app settings.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sync_runner::serve::functions::{self, Action, FUNCTIONS, Trigger};
use sync_runner::serve::{
    ConfigError, FullLoad, PassInvocation, PassOutcome, PassStatus, ServeConfig, ServiceError, ServiceErrorKind,
    SyncService, parse_function_timeout, router, serve_on,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// The fake engine

/// What the fake engine was asked to do.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Pass(PassInvocation),
    Status,
    Reset(Vec<String>),
    Wipe(Vec<String>),
}

/// How the fake's next pass behaves.
enum PassPlan {
    /// Return at once.
    Return(PassStatus),
    /// Wait (tokio time) before returning.
    Sleep(Duration, PassStatus),
    /// Wait until notified.
    WaitFor(Arc<Notify>, PassStatus),
}

struct FakeEngine {
    calls: mpsc::UnboundedSender<Call>,
    passes: Mutex<VecDeque<PassPlan>>,
    status: Result<Value, ServiceError>,
}

impl FakeEngine {
    fn new() -> (Self, mpsc::UnboundedReceiver<Call>) {
        let (calls, received) = mpsc::unbounded_channel();
        (
            Self {
                calls,
                passes: Mutex::new(VecDeque::new()),
                status: Ok(json!({ "projects": { "phase": "incremental" } })),
            },
            received,
        )
    }

    fn with_passes(self, plans: impl IntoIterator<Item = PassPlan>) -> Self {
        self.passes.lock().unwrap().extend(plans);
        self
    }

    fn with_status(mut self, status: Result<Value, ServiceError>) -> Self {
        self.status = status;
        self
    }
}

fn outcome(status: PassStatus) -> PassOutcome {
    PassOutcome { status, summary: json!({ "requests": 1 }), message: format!("pass {status:?}") }
}

#[async_trait::async_trait]
impl SyncService for FakeEngine {
    async fn run_pass(&self, request: PassInvocation) -> PassOutcome {
        let _ = self.calls.send(Call::Pass(request));
        let plan = self.passes.lock().unwrap().pop_front().unwrap_or(PassPlan::Return(PassStatus::Completed));
        match plan {
            PassPlan::Return(status) => outcome(status),
            PassPlan::Sleep(duration, status) => {
                tokio::time::sleep(duration).await;
                outcome(status)
            }
            PassPlan::WaitFor(gate, status) => {
                gate.notified().await;
                outcome(status)
            }
        }
    }

    async fn status(&self) -> Result<Value, ServiceError> {
        let _ = self.calls.send(Call::Status);
        self.status.clone()
    }

    async fn reset_state(&self, entities: Vec<String>) -> Result<Value, ServiceError> {
        let _ = self.calls.send(Call::Reset(entities.clone()));
        Ok(json!({ "reset": entities }))
    }

    async fn wipe(&self, entities: Vec<String>) -> Result<Value, ServiceError> {
        let _ = self.calls.send(Call::Wipe(entities.clone()));
        Ok(json!({ "deleted_files": 3 }))
    }
}

// ---------------------------------------------------------------------------------------------
// Host payloads (shapes captured from the Functions host's HttpWorker serialization)

const THIRTY_MINUTES: Duration = Duration::from_secs(30 * 60);

fn config() -> ServeConfig {
    ServeConfig::new(7071, THIRTY_MINUTES)
}

fn metadata(function: &str) -> Value {
    json!({ "sys": { "MethodName": function, "UtcNow": "2026-11-28T09:05:00.0123456Z", "RandGuid": "4e773554-f6b7-4ea2-b07d-4c5fd5aba741" } })
}

/// The host's `TimerInfo` as it serializes it.
fn timer_info(is_past_due: bool) -> Value {
    json!({
        "Schedule": { "AdjustForDST": true },
        "ScheduleStatus": { "Last": "2026-11-28T08:05:00+00:00", "Next": "2026-11-28T10:05:00+00:00", "LastUpdated": "2026-11-28T08:05:00+00:00" },
        "IsPastDue": is_past_due
    })
}

fn timer_invocation(timer: Value) -> Value {
    json!({ "Data": { "timer": timer }, "Metadata": metadata("sync_timer") })
}

/// A .NET ClaimsIdentity as the host serializes it for a key-authenticated caller.
fn key_identity(level: &str) -> Value {
    json!({
        "AuthenticationType": "WebJobsAuthLevel",
        "IsAuthenticated": true,
        "Actor": null,
        "BootstrapContext": null,
        "Claims": [
            { "Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
              "Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": level,
              "ValueType": "http://www.w3.org/2001/XMLSchema#string" },
            { "Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
              "Type": "http://schemas.microsoft.com/2017/07/functions/claims/keyid", "Value": if level == "Admin" { "master" } else { "default" },
              "ValueType": "http://www.w3.org/2001/XMLSchema#string" }
        ],
        "Label": null,
        "Name": null,
        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    })
}

struct HttpCall<'a> {
    function: &'a str,
    method: &'a str,
    path: &'a str,
    query: Value,
    params: Value,
    body: Option<&'a str>,
    identity_level: &'a str,
}

impl<'a> HttpCall<'a> {
    fn new(function: &'a str, method: &'a str, path: &'a str) -> Self {
        Self { function, method, path, query: json!({}), params: json!({}), body: None, identity_level: "Admin" }
    }

    fn query(mut self, query: Value) -> Self {
        self.query = query;
        self
    }

    fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    fn body(mut self, body: &'a str) -> Self {
        self.body = Some(body);
        self
    }

    fn level(mut self, level: &'a str) -> Self {
        self.identity_level = level;
        self
    }

    fn invocation(&self) -> Value {
        let query_string: Vec<String> = self
            .query
            .as_object()
            .map(|query| query.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
            .unwrap_or_default();
        let url = if query_string.is_empty() {
            format!("https://xledger-sync-dev.azurewebsites.net/api/{}", self.path)
        } else {
            format!("https://xledger-sync-dev.azurewebsites.net/api/{}?{}", self.path, query_string.join("&"))
        };
        let mut request = json!({
            "Url": url,
            "Method": self.method,
            "Query": self.query,
            "Headers": { "Accept": ["*/*"], "Host": ["xledger-sync-dev.azurewebsites.net"], "User-Agent": ["curl/8.5.0"] },
            "Params": self.params,
            "Identities": [key_identity(self.identity_level)],
        });
        if let Some(body) = self.body {
            request["Body"] = json!(body);
            request["Headers"]["Content-Type"] = json!(["application/json"]);
        }
        json!({ "Data": { "req": request }, "Metadata": metadata(self.function) })
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the router

struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    /// `Outputs.res` of an HTTP function: its status code and parsed JSON body.
    fn res(&self) -> (u16, Value) {
        let res = &self.body["Outputs"]["res"];
        assert_eq!(res["headers"]["Content-Type"], "application/json; charset=utf-8", "res: {res}");
        let status = res["statusCode"].as_u64().expect("Outputs.res.statusCode") as u16;
        assert_eq!(res["status"], res["statusCode"], "the host requires `status` too");
        let body =
            serde_json::from_str(res["body"].as_str().expect("Outputs.res.body is a string")).expect("body is JSON");
        (status, body)
    }
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("answers are JSON") };
    Answer { status, body }
}

fn host_request(function: &str, payload: &Value) -> Request<Body> {
    Request::post(format!("/{function}"))
        .header("content-type", "application/json; charset=utf-8")
        .header("X-Azure-Functions-InvocationId", "8d2c8a4e-3b5f-4f0e-9d7a-2f1e0c6b5a49")
        .header("X-Azure-Functions-HostVersion", "4.1040.300.0")
        .header("User-Agent", "Azure-Functions-Host/4.1040.300.0")
        .body(Body::from(payload.to_string()))
        .expect("request")
}

async fn invoke(app: &axum::Router, function: &str, payload: &Value) -> Answer {
    send(app, host_request(function, payload)).await
}

async fn call(app: &axum::Router, http: HttpCall<'_>) -> (u16, Value) {
    let answer = invoke(app, http.function, &http.invocation()).await;
    assert_eq!(answer.status, StatusCode::OK, "an answered HTTP function is a successful invocation: {}", answer.body);
    answer.res()
}

fn app_with(engine: FakeEngine, config: ServeConfig) -> axum::Router {
    router(Arc::new(engine), config)
}

// ---------------------------------------------------------------------------------------------
// Timer invocations

#[tokio::test]
async fn timer_object_payload_runs_one_incremental_pass_over_the_timer_entities() {
    let (engine, mut calls) = FakeEngine::new();
    let mut config = config();
    config.timer_entities = vec!["projects".to_string(), "timesheets".to_string()];
    let app = app_with(engine, config);

    let answer = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["ReturnValue"]["status"], "completed");
    assert_eq!(answer.body["ReturnValue"]["summary"], json!({ "requests": 1 }));
    assert_eq!(answer.body["Logs"], json!(["pass Completed"]));
    let Some(Call::Pass(request)) = calls.recv().await else { panic!("expected a pass") };
    assert_eq!(
        (request.entities, request.full_load, request.trigger.as_str()),
        (vec!["projects".to_string(), "timesheets".to_string()], FullLoad::WhenNeeded, "sync_timer")
    );
    assert!(calls.try_recv().is_err(), "exactly one engine call");
}

#[tokio::test]
async fn timer_payload_serialized_as_a_json_string_is_accepted() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let answer = invoke(&app, "sync_timer", &timer_invocation(json!(timer_info(true).to_string()))).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert!(matches!(calls.recv().await, Some(Call::Pass(_))));
}

#[tokio::test]
async fn timer_fired_by_hand_with_empty_input_runs_a_pass() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let answer = invoke(&app, "sync_timer", &timer_invocation(json!(""))).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert!(matches!(calls.recv().await, Some(Call::Pass(_))));
}

#[tokio::test]
async fn timer_payload_that_is_neither_object_nor_json_string_is_refused_without_a_pass() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let answer = invoke(&app, "sync_timer", &timer_invocation(json!("not json {"))).await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["error"].as_str().unwrap().contains("Data.timer"), "{}", answer.body);
    assert!(calls.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn timer_pass_deadline_is_arrival_plus_function_timeout_minus_margin() {
    let (engine, mut calls) = FakeEngine::new();
    let mut config = config();
    config.deadline_margin = Duration::from_secs(90);
    let app = app_with(engine, config);
    let arrival = Instant::now();

    invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;

    let Some(Call::Pass(request)) = calls.recv().await else { panic!("expected a pass") };
    assert_eq!(request.deadline - arrival, THIRTY_MINUTES - Duration::from_secs(90));
}

#[tokio::test]
async fn partial_and_deferred_passes_answer_200_with_the_outcome() {
    let (engine, _calls) = FakeEngine::new();
    let app = app_with(
        engine.with_passes([PassPlan::Return(PassStatus::Partial), PassPlan::Return(PassStatus::Deferred)]),
        config(),
    );

    let partial = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;
    let deferred = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;

    assert_eq!((partial.status, &partial.body["ReturnValue"]["status"]), (StatusCode::OK, &json!("partial")));
    assert_eq!((deferred.status, &deferred.body["ReturnValue"]["status"]), (StatusCode::OK, &json!("deferred")));
}

#[tokio::test]
async fn failed_pass_answers_500_so_the_host_records_a_failed_run() {
    let (engine, _calls) = FakeEngine::new();
    let app = app_with(engine.with_passes([PassPlan::Return(PassStatus::Failed)]), config());

    let answer = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;

    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body["error"], "pass Failed");
}

#[tokio::test(start_paused = true)]
async fn timer_while_a_pass_runs_is_skipped_at_once_without_calling_the_engine() {
    let gate = Arc::new(Notify::new());
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine.with_passes([PassPlan::WaitFor(Arc::clone(&gate), PassStatus::Completed)]), config());
    let first = tokio::spawn({
        let app = app.clone();
        async move { invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await }
    });
    assert!(matches!(calls.recv().await, Some(Call::Pass(_))), "the first pass started");

    let second = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;

    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["ReturnValue"]["status"], "skipped");
    assert!(second.body["ReturnValue"]["message"].as_str().unwrap().starts_with("skipped: pass already running"));
    assert!(calls.try_recv().is_err(), "the engine saw only the first pass");
    gate.notify_one();
    assert_eq!(first.await.unwrap().body["ReturnValue"]["status"], "completed");
}

#[tokio::test(start_paused = true)]
async fn pass_overrunning_its_deadline_is_reported_at_deadline_plus_half_margin_and_blocks_timers_until_it_ends() {
    let (engine, mut calls) = FakeEngine::new();
    let config = config();
    let (budget, margin) = (config.pass_budget(), config.deadline_margin);
    let app =
        app_with(engine.with_passes([PassPlan::Sleep(Duration::from_secs(2 * 3600), PassStatus::Completed)]), config);
    let arrival = Instant::now();

    let overrun = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;

    assert_eq!(overrun.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(overrun.body["error"].as_str().unwrap().contains("did not stop at its deadline"), "{}", overrun.body);
    assert_eq!(Instant::now() - arrival, budget + margin / 2);
    let while_running = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;
    assert_eq!(while_running.body["ReturnValue"]["status"], "skipped");

    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    let after = invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await;
    assert_eq!(after.body["ReturnValue"]["status"], "completed");
    let passes = std::iter::from_fn(|| calls.try_recv().ok()).filter(|call| matches!(call, Call::Pass(_))).count();
    assert_eq!(passes, 2, "the overrunning pass and the one after it");
}

// ---------------------------------------------------------------------------------------------
// Requests that did not come from the host

#[tokio::test]
async fn request_without_the_invocation_id_header_is_refused() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());
    let request = Request::post("/sync_status")
        .header("content-type", "application/json")
        .body(Body::from(HttpCall::new("sync_status", "GET", "sync/status").invocation().to_string()))
        .unwrap();

    let answer = send(&app, request).await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["error"].as_str().unwrap().contains("X-Azure-Functions-InvocationId"));
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn plain_http_request_body_without_data_is_refused() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let answer = invoke(&app, "sync_wipe", &json!({ "entities": ["projects"], "confirm": "wipe" })).await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["error"].as_str().unwrap().contains("no `Data` object"), "{}", answer.body);
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn http_function_invoked_without_its_req_binding_is_refused() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let answer = invoke(&app, "sync_reset_state", &timer_invocation(timer_info(false))).await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["error"].as_str().unwrap().contains("Data.req"), "{}", answer.body);
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn unknown_function_and_the_hosts_readiness_ping_get_404() {
    let (engine, _calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let unknown = invoke(&app, "sync_everything", &timer_invocation(timer_info(false))).await;
    let ping = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;

    assert_eq!((unknown.status, ping.status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
}

// ---------------------------------------------------------------------------------------------
// Admin HTTP functions

#[tokio::test]
async fn admin_request_authenticated_with_a_function_key_is_forbidden() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(
        &app,
        HttpCall::new("sync_reset_state", "POST", "sync/reset-state").query(json!({ "all": "true" })).level("Function"),
    )
    .await;

    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("master key"));
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn admin_request_with_the_wrong_method_is_405() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) =
        call(&app, HttpCall::new("sync_wipe", "GET", "sync/wipe").query(json!({ "all": "true", "confirm": "wipe" })))
            .await;

    assert_eq!((status, body["error"].as_str()), (405, Some("use POST")));
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn status_reports_the_engine_state_and_what_the_handler_runs() {
    let (engine, _calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(&app, HttpCall::new("sync_status", "GET", "sync/status")).await;

    assert_eq!(status, 200);
    assert_eq!(body["sync"], json!({ "projects": { "phase": "incremental" } }));
    assert_eq!(body["handler"]["running"], Value::Null);
    assert_eq!(body["handler"]["pass_budget_secs"], 28 * 60);
    assert_eq!(body["handler"]["timer_entities"], "all");
}

#[tokio::test]
async fn engine_errors_map_to_their_http_status() {
    let (engine, _calls) = FakeEngine::new();
    let engine = engine.with_status(Err(ServiceError::new(
        ServiceErrorKind::Unavailable,
        "state store: App Configuration answered 503",
    )));
    let app = app_with(engine, config());

    let (status, body) = call(&app, HttpCall::new("sync_status", "GET", "sync/status")).await;

    assert_eq!((status, body["error"].as_str()), (503, Some("state store: App Configuration answered 503")));
}

#[tokio::test]
async fn reset_state_of_named_entities_calls_the_engine_and_answers_200() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(
        &app,
        HttpCall::new("sync_reset_state", "POST", "sync/reset-state")
            .query(json!({ "entities": "projects, timesheets" })),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reset"], json!(["projects", "timesheets"]));
    assert_eq!(calls.recv().await, Some(Call::Reset(vec!["projects".to_string(), "timesheets".to_string()])));
}

#[tokio::test]
async fn reset_state_reads_entities_from_a_json_body() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, _) =
        call(&app, HttpCall::new("sync_reset_state", "POST", "sync/reset-state").body(r#"{"all": true}"#)).await;

    assert_eq!(status, 200);
    assert_eq!(calls.recv().await, Some(Call::Reset(Vec::new())), "all = an empty list for the engine");
}

#[tokio::test]
async fn reset_state_naming_nothing_is_refused_and_resets_nothing() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(&app, HttpCall::new("sync_reset_state", "POST", "sync/reset-state")).await;

    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("all=true"));
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn reset_state_of_an_unknown_entity_is_400_naming_the_known_ones() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(
        &app,
        HttpCall::new("sync_reset_state", "POST", "sync/reset-state").query(json!({ "entities": "invoices" })),
    )
    .await;

    assert_eq!(status, 400);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("\"invoices\"") && error.contains("timesheets"), "{error}");
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn query_serialized_as_a_json_string_by_older_hosts_is_understood() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());
    let mut payload = HttpCall::new("sync_reset_state", "POST", "sync/reset-state").invocation();
    payload["Data"]["req"]["Query"] = json!(r#"{"entities":"employees"}"#);

    let answer = invoke(&app, "sync_reset_state", &payload).await;

    assert_eq!(answer.res().0, 200);
    assert_eq!(calls.recv().await, Some(Call::Reset(vec!["employees".to_string()])));
}

#[tokio::test]
async fn wipe_without_confirmation_is_refused_and_wipes_nothing() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) =
        call(&app, HttpCall::new("sync_wipe", "POST", "sync/wipe").query(json!({ "all": "true" }))).await;

    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("confirm=wipe"));
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn wipe_answers_202_and_wipes_in_the_background() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(
        &app,
        HttpCall::new("sync_wipe", "POST", "sync/wipe").query(json!({ "entities": "suppliers", "confirm": "wipe" })),
    )
    .await;

    assert_eq!(status, 202);
    assert_eq!(body["entities"], json!(["suppliers"]));
    assert_eq!(calls.recv().await, Some(Call::Wipe(vec!["suppliers".to_string()])));
}

#[tokio::test]
async fn resync_answers_202_and_runs_a_full_pass_of_the_routed_entity_in_the_background() {
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine, config());

    let (status, body) = call(
        &app,
        HttpCall::new("sync_resync", "POST", "sync/resync/transactions").params(json!({ "entity": "transactions" })),
    )
    .await;

    assert_eq!(status, 202);
    assert_eq!(body["entity"], "transactions");
    let Some(Call::Pass(request)) = calls.recv().await else { panic!("expected a pass") };
    assert_eq!(
        (request.entities, request.full_load, request.trigger.as_str()),
        (vec!["transactions".to_string()], FullLoad::Forced, "sync_resync")
    );
}

#[tokio::test(start_paused = true)]
async fn admin_actions_while_a_pass_runs_answer_409_and_status_shows_the_pass() {
    let gate = Arc::new(Notify::new());
    let (engine, mut calls) = FakeEngine::new();
    let app = app_with(engine.with_passes([PassPlan::WaitFor(Arc::clone(&gate), PassStatus::Completed)]), config());
    let timer = tokio::spawn({
        let app = app.clone();
        async move { invoke(&app, "sync_timer", &timer_invocation(timer_info(false))).await }
    });
    assert!(matches!(calls.recv().await, Some(Call::Pass(_))));

    let (resync, _) = call(
        &app,
        HttpCall::new("sync_resync", "POST", "sync/resync/projects").params(json!({ "entity": "projects" })),
    )
    .await;
    let (reset, reset_body) =
        call(&app, HttpCall::new("sync_reset_state", "POST", "sync/reset-state").query(json!({ "all": "true" }))).await;
    let (status, status_body) = call(&app, HttpCall::new("sync_status", "GET", "sync/status")).await;

    assert_eq!((resync, reset, status), (409, 409, 200));
    assert!(reset_body["error"].as_str().unwrap().starts_with("busy: sync_timer"), "{reset_body}");
    assert_eq!(status_body["handler"]["running"]["function"], "sync_timer");
    assert_eq!(calls.try_recv(), Ok(Call::Status), "only status reached the engine");
    gate.notify_one();
    timer.await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The function.json files and host.json against what the handler routes

fn functions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions")
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()))
}

fn function_folders() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(functions_dir())
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().join("function.json").is_file())
        .map(|entry| entry.file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn function_folders_are_exactly_the_catalog() {
    let mut catalog: Vec<String> = FUNCTIONS.iter().map(|def| def.name.to_string()).collect();
    catalog.sort();
    assert_eq!(function_folders(), catalog);
}

#[test]
fn each_function_json_declares_the_catalog_trigger() {
    for def in FUNCTIONS {
        let file = read_json(&functions_dir().join(def.name).join("function.json"));
        let bindings = file["bindings"].as_array().unwrap_or_else(|| panic!("{}: no bindings", def.name));
        match def.trigger {
            Trigger::Timer { schedule_setting } => {
                assert_eq!(def.action, Action::SyncPass, "{}", def.name);
                assert_eq!(bindings.len(), 1, "{}", def.name);
                let timer = &bindings[0];
                assert_eq!(timer["type"], "timerTrigger", "{}", def.name);
                assert_eq!(timer["name"], functions::TIMER_BINDING, "{}", def.name);
                assert_eq!(timer["direction"], "in", "{}", def.name);
                assert_eq!(timer["schedule"], format!("%{schedule_setting}%"), "{}", def.name);
                assert_eq!(timer["runOnStartup"], false, "{}: runOnStartup fires on every scale-out", def.name);
            }
            Trigger::AdminHttp { method, route } => {
                assert_ne!(def.action, Action::SyncPass, "{}", def.name);
                assert_eq!(bindings.len(), 2, "{}", def.name);
                let (input, output) = (&bindings[0], &bindings[1]);
                assert_eq!(input["type"], "httpTrigger", "{}", def.name);
                assert_eq!(input["name"], functions::HTTP_REQUEST_BINDING, "{}", def.name);
                assert_eq!(
                    input["authLevel"],
                    functions::ADMIN_AUTH_LEVEL,
                    "{}: admin functions need the master key",
                    def.name
                );
                assert_eq!(input["methods"], json!([method.to_ascii_lowercase()]), "{}", def.name);
                assert_eq!(input["route"], route, "{}", def.name);
                assert!(!route.starts_with("admin/"), "{}: the host reserves admin/", def.name);
                assert_eq!(
                    (&output["type"], &output["name"], &output["direction"]),
                    (&json!("http"), &json!(functions::HTTP_RESPONSE_BINDING), &json!("out"))
                );
            }
        }
    }
}

#[tokio::test]
async fn every_function_folder_is_routed_by_the_handler() {
    for name in function_folders() {
        let (engine, _calls) = FakeEngine::new();
        let app = app_with(engine, config());
        let def = functions::function(&name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
        let payload = match def.trigger {
            Trigger::Timer { .. } => timer_invocation(timer_info(false)),
            Trigger::AdminHttp { method, .. } => {
                HttpCall::new(def.name, method, "x").params(json!({ "entity": "projects" })).invocation()
            }
        };

        let answer = invoke(&app, &name, &payload).await;

        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
    }
}

#[test]
fn host_json_runs_the_binary_as_a_custom_handler_with_its_timeout() {
    let host = read_json(&functions_dir().join("host.json"));

    assert_eq!(host["version"], "2.0");
    assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], "xledger-sync");
    assert_eq!(host["customHandler"]["description"]["arguments"], json!(["serve"]));
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], false);
    assert_eq!(host["extensionBundle"]["id"], "Microsoft.Azure.Functions.ExtensionBundle");
    let vars = BTreeMap::from([("FUNCTIONS_CUSTOMHANDLER_PORT".to_string(), "40000".to_string())]);
    let config = ServeConfig::from_vars(&vars, &functions_dir()).unwrap();
    assert_eq!(config.function_timeout, THIRTY_MINUTES);
}

// ---------------------------------------------------------------------------------------------
// Configuration

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn app_root(host_json: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("host.json"), host_json).unwrap();
    root
}

#[test]
fn config_reads_port_timeout_margin_and_timer_entities() {
    let root = app_root(r#"{"version": "2.0", "functionTimeout": "00:10:00"}"#);
    let settings = vars(&[
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "36789"),
        ("FUNCTIONS_APP_ROOT_PATH", root.path().to_str().unwrap()),
        ("XLEDGER_DEADLINE_MARGIN", "90s"),
        ("SYNC_ENTITIES", "projects,timesheets"),
    ]);

    let config = ServeConfig::from_vars(&settings, std::path::Path::new("/nonexistent")).unwrap();

    assert_eq!(config.port, 36789);
    assert_eq!(config.function_timeout, Duration::from_secs(600));
    assert_eq!(config.pass_budget(), Duration::from_secs(510));
    assert_eq!(config.timer_entities, vec!["projects".to_string(), "timesheets".to_string()]);
}

#[test]
fn timeout_app_setting_overrides_host_json_as_the_host_does() {
    let root = app_root(r#"{"functionTimeout": "00:10:00"}"#);
    let settings =
        vars(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "36789"), ("AzureFunctionsJobHost__functionTimeout", "01:00:00")]);

    let config = ServeConfig::from_vars(&settings, root.path()).unwrap();

    assert_eq!(config.function_timeout, Duration::from_secs(3600));
}

#[test]
fn host_json_without_timeout_gets_the_smallest_plan_default() {
    let root = app_root(r#"{"version": "2.0"}"#);

    let config = ServeConfig::from_vars(&vars(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "36789")]), root.path()).unwrap();

    assert_eq!(config.function_timeout, Duration::from_secs(300));
}

#[test]
fn missing_port_means_not_started_by_the_host() {
    let root = app_root("{}");

    let result = ServeConfig::from_vars(&BTreeMap::new(), root.path());

    assert!(matches!(result, Err(ConfigError::MissingPort)), "{result:?}");
}

#[test]
fn unresolved_key_vault_reference_fails_naming_the_setting_but_not_its_value() {
    let root = app_root("{}");
    let reference = "@Microsoft.KeyVault(SecretUri=https://kv-xledger-dev.vault.azure.net/secrets/xledger-api-key/)";
    let settings = vars(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "36789"), ("XLEDGER_API_KEY", reference)]);

    let err = ServeConfig::from_vars(&settings, root.path()).unwrap_err();

    assert!(matches!(&err, ConfigError::UnresolvedKeyVaultReference { setting } if setting == "XLEDGER_API_KEY"));
    assert!(!err.to_string().contains("vault.azure.net"), "{err}");
}

#[test]
fn margin_not_below_the_timeout_is_refused() {
    let root = app_root(r#"{"functionTimeout": "00:02:00"}"#);

    let result = ServeConfig::from_vars(&vars(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "36789")]), root.path());

    assert!(matches!(result, Err(ConfigError::MarginNotBelowTimeout { .. })), "{result:?}");
}

#[test]
fn unknown_timer_entity_is_refused_at_startup() {
    let root = app_root("{}");
    let settings = vars(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "36789"), ("SYNC_ENTITIES", "projects,invoices")]);

    let result = ServeConfig::from_vars(&settings, root.path());

    assert!(matches!(&result, Err(ConfigError::UnknownEntity { name, .. }) if name == "invoices"), "{result:?}");
}

#[test]
fn function_timeout_parses_timespans_and_unbounded() {
    assert_eq!(parse_function_timeout("00:05:00"), Some(Duration::from_secs(300)));
    assert_eq!(parse_function_timeout("00:00:01.5"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_function_timeout("2.00:00:00"), Some(Duration::from_secs(2 * 86400)));
    assert_eq!(parse_function_timeout("-1"), Some(sync_runner::serve::UNBOUNDED_FUNCTION_TIMEOUT));
}

#[test]
fn function_timeout_refuses_malformed_and_zero_values() {
    for bad in
        ["", "00:00:00", "5", "00:60:00", "24:00:00", "0:05:00", "00:05", "00:05:00:00", "00:05:00.", "x.00:05:00"]
    {
        assert_eq!(parse_function_timeout(bad), None, "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Over a real loopback socket

#[tokio::test]
async fn serve_on_answers_over_loopback_and_stops_on_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (engine, _calls) = FakeEngine::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        listener,
        Arc::new(engine),
        config(),
        Box::pin(async move {
            let _ = stopped.await;
        }),
    ));

    let payload = timer_invocation(timer_info(false)).to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /sync_timer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Azure-Functions-InvocationId: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();

    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"completed""#), "{response}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
