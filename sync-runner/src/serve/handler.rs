//! The axum handlers: one route, `POST /{function}`, dispatched on the function catalog.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::config::{known_entities, parse_entity_list};
use super::functions::{
    self, Action, FunctionDef, HTTP_REQUEST_BINDING, HTTP_RESPONSE_BINDING, TIMER_BINDING, Trigger,
};
use super::protocol::{HttpRequestData, INVOCATION_ID_HEADER, Invocation, InvocationResponse, TimerInfo};
use super::{
    FullLoad, PassInvocation, PassOutcome, PassStatus, ServeConfig, ServiceError, ServiceErrorKind, SyncService,
};

#[derive(Clone)]
struct AppState {
    service: Arc<dyn SyncService>,
    config: Arc<ServeConfig>,
    busy: Busy,
}

pub(super) fn router(service: Arc<dyn SyncService>, config: ServeConfig) -> Router {
    let state = AppState { service, config: Arc::new(config), busy: Busy::default() };
    Router::new().route("/{function}", post(invoke)).fallback(not_found).with_state(state)
}

/// What this process is doing right now; at most one pass or admin action at a time.
#[derive(Clone, Default)]
struct Busy(Arc<Mutex<Option<Activity>>>);

#[derive(Clone, Debug)]
struct Activity {
    function: &'static str,
    what: String,
    since: Instant,
}

impl Activity {
    fn describe(&self) -> String {
        format!("{} ({}) running for {}s", self.function, self.what, self.since.elapsed().as_secs())
    }

    fn to_json(&self) -> Value {
        json!({ "function": self.function, "what": self.what, "running_secs": self.since.elapsed().as_secs() })
    }
}

/// Held while an activity runs; frees the slot when dropped (also when the task panics).
struct BusyGuard(Arc<Mutex<Option<Activity>>>);

impl Busy {
    /// Claims the slot, or returns what holds it.
    fn try_acquire(&self, function: &'static str, what: impl Into<String>) -> Result<BusyGuard, Activity> {
        // A poisoned lock only means a panic elsewhere while holding it; the Option inside is
        // still meaningful, so carry on with it.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = slot.as_ref() {
            return Err(current.clone());
        }
        *slot = Some(Activity { function, what: what.into(), since: Instant::now() });
        Ok(BusyGuard(Arc::clone(&self.0)))
    }

    fn current(&self) -> Option<Activity> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "no such function: the host POSTs invocations to /<functionName>".to_string())
}

async fn invoke(
    State(state): State<AppState>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(def) = functions::function(&function) else {
        return refuse(StatusCode::NOT_FOUND, format!("no function named {function:?}"));
    };
    let invocation_id = match headers.get(INVOCATION_ID_HEADER).and_then(|value| value.to_str().ok()) {
        Some(id) if !id.trim().is_empty() => id.to_string(),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: no X-Azure-Functions-InvocationId header: not an invocation from the Functions host",
                    def.name
                ),
            );
        }
    };
    let invocation = match Invocation::parse(&body) {
        Ok(invocation) => invocation,
        Err(err) => {
            return refuse(StatusCode::BAD_REQUEST, format!("{}: not a Functions host invocation: {err}", def.name));
        }
    };
    match def.trigger {
        Trigger::Timer { .. } => timer(&state, def, &invocation_id, &invocation).await,
        Trigger::AdminHttp { method, .. } => admin(&state, def, method, &invocation_id, &invocation).await,
    }
}

/// A transport-level refusal: the request is not a valid invocation of a known function.
fn refuse(status: StatusCode, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), %message, "refused a request");
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// A failed invocation: 500 so that the host records the failure. The host drops the body and
/// `Logs` of a failed invocation, so the error also goes to stderr, which the host logs at Error.
fn failed_invocation(function: &str, invocation_id: &str, message: &str) -> Response {
    tracing::error!(function, invocation_id, %message, "invocation failed");
    eprintln!("error: {function} invocation {invocation_id} failed: {message}");
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": message }))).into_response()
}

fn ok_invocation(response: InvocationResponse) -> Response {
    (StatusCode::OK, axum::Json(response)).into_response()
}

async fn timer(state: &AppState, def: &'static FunctionDef, invocation_id: &str, invocation: &Invocation) -> Response {
    let timer = match TimerInfo::from_data(&invocation.data, TIMER_BINDING) {
        Ok(timer) => timer,
        Err(err) => {
            return refuse(StatusCode::BAD_REQUEST, format!("{}: not a Functions host invocation: {err}", def.name));
        }
    };
    // The host's timeout clock started when it sent the invocation: count from arrival.
    let deadline = Instant::now() + state.config.pass_budget();
    let guard = match state.busy.try_acquire(def.name, "incremental pass") {
        Ok(guard) => guard,
        Err(current) => {
            let message = format!("skipped: pass already running ({})", current.describe());
            tracing::info!(function = def.name, invocation_id, %message, "timer skipped");
            return ok_invocation(InvocationResponse::timer(
                vec![message.clone()],
                json!({ "status": "skipped", "message": message }),
            ));
        }
    };
    tracing::info!(
        function = def.name,
        invocation_id,
        is_past_due = timer.is_past_due,
        manual = timer.manual,
        last = timer.last.as_deref(),
        next = timer.next.as_deref(),
        budget_secs = state.config.pass_budget().as_secs(),
        "sync pass starting"
    );
    let request = PassInvocation {
        entities: state.config.timer_entities.clone(),
        full_load: FullLoad::WhenNeeded,
        deadline,
        trigger: def.name.to_string(),
    };
    let service = Arc::clone(&state.service);
    let mut task = tokio::spawn(async move {
        let _guard = guard;
        service.run_pass(request).await
    });
    // The engine promises to stop by the deadline; if it does not, answer the host before its own
    // timeout (which would recycle the worker) and let the pass finish in the background.
    let watchdog = deadline + state.config.deadline_margin / 2;
    match tokio::time::timeout_at(watchdog, &mut task).await {
        Ok(Ok(outcome)) => pass_response(def.name, invocation_id, outcome),
        Ok(Err(join_error)) => {
            failed_invocation(def.name, invocation_id, &format!("the sync pass panicked: {join_error}"))
        }
        Err(_elapsed) => failed_invocation(
            def.name,
            invocation_id,
            &format!(
                "the sync pass did not stop at its deadline ({}s budget); it continues in the background and timers skip until it ends",
                state.config.pass_budget().as_secs()
            ),
        ),
    }
}

fn pass_response(function: &str, invocation_id: &str, outcome: PassOutcome) -> Response {
    let return_value = json!({ "status": outcome.status, "message": outcome.message, "summary": outcome.summary });
    match outcome.status {
        PassStatus::Failed | PassStatus::LeaseHeld => failed_invocation(function, invocation_id, &outcome.message),
        PassStatus::Completed | PassStatus::Partial => {
            tracing::info!(function, invocation_id, status = ?outcome.status, message = %outcome.message, summary = %outcome.summary, "sync pass ended");
            ok_invocation(InvocationResponse::timer(vec![outcome.message], return_value))
        }
        PassStatus::Deferred => {
            tracing::warn!(function, invocation_id, message = %outcome.message, summary = %outcome.summary, "sync pass deferred");
            ok_invocation(InvocationResponse::timer(vec![outcome.message], return_value))
        }
    }
}

/// An admin function's answer: the invocation succeeds (200) and `Outputs.res` carries the HTTP
/// status for the caller.
fn http_answer(function: &str, invocation_id: &str, status: StatusCode, body: Value) -> Response {
    let line = format!("{function}: {}", status.as_u16());
    if status.is_server_error() {
        tracing::error!(function, invocation_id, status = status.as_u16(), body = %body, "admin request failed");
    } else {
        tracing::info!(function, invocation_id, status = status.as_u16(), "admin request answered");
    }
    ok_invocation(InvocationResponse::http(HTTP_RESPONSE_BINDING, status.as_u16(), &body, vec![line]))
}

fn error_body(message: impl Into<String>) -> Value {
    json!({ "error": message.into() })
}

fn service_error_status(err: &ServiceError) -> StatusCode {
    match err.kind {
        ServiceErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ServiceErrorKind::Conflict => StatusCode::CONFLICT,
        ServiceErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ServiceErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn admin(
    state: &AppState,
    def: &'static FunctionDef,
    method: &str,
    invocation_id: &str,
    invocation: &Invocation,
) -> Response {
    let request = match HttpRequestData::from_data(&invocation.data, HTTP_REQUEST_BINDING) {
        Ok(request) => request,
        Err(err) => {
            return refuse(StatusCode::BAD_REQUEST, format!("{}: not a Functions host invocation: {err}", def.name));
        }
    };
    tracing::info!(function = def.name, invocation_id, method = %request.method, url = request.url_without_query(), "admin request");
    if !request.admin {
        return http_answer(
            def.name,
            invocation_id,
            StatusCode::FORBIDDEN,
            error_body("this function needs the master key (authLevel admin)"),
        );
    }
    if request.method != method {
        return http_answer(
            def.name,
            invocation_id,
            StatusCode::METHOD_NOT_ALLOWED,
            error_body(format!("use {method}")),
        );
    }
    let (status, body) = match def.action {
        Action::Status => status(state).await,
        Action::ResetState => reset_state(state, def, &request).await,
        Action::Wipe => wipe(state, def, &request),
        Action::Resync => resync(state, def, &request),
        // The catalog never pairs an HTTP trigger with a timer pass (tests/serve.rs checks it).
        Action::SyncPass => {
            (StatusCode::INTERNAL_SERVER_ERROR, error_body(format!("{} is not an HTTP function", def.name)))
        }
    };
    http_answer(def.name, invocation_id, status, body)
}

async fn status(state: &AppState) -> (StatusCode, Value) {
    let handler = json!({
        "running": state.busy.current().map(|activity| activity.to_json()),
        "function_timeout_secs": state.config.function_timeout.as_secs(),
        "pass_budget_secs": state.config.pass_budget().as_secs(),
        "timer_entities": timer_entities_json(&state.config.timer_entities),
    });
    match state.service.status().await {
        Ok(sync) => (StatusCode::OK, json!({ "handler": handler, "sync": sync })),
        Err(err) => (service_error_status(&err), json!({ "error": err.message, "handler": handler })),
    }
}

fn timer_entities_json(entities: &[String]) -> Value {
    if entities.is_empty() { json!("all") } else { json!(entities) }
}

/// The entities an admin request names: `?entities=a,b` (or `"entities": [...]` in a JSON body),
/// or `?all=true` (`"all": true`) for all of them. Naming nothing is refused: a slip of the
/// finger must not reset or wipe every entity.
fn selected_entities(request: &HttpRequestData) -> Result<Vec<String>, String> {
    let body = request.json_body()?;
    let listed = match request.query("entities").or_else(|| request.query("entity")) {
        Some(list) => Some(list.to_string()),
        None => match body.get("entities") {
            None | Some(Value::Null) => None,
            Some(Value::String(list)) => Some(list.clone()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string).ok_or("`entities` must be a list of names"))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
            ),
            Some(_) => return Err("`entities` must be a list of names".to_string()),
        },
    };
    let all = request.query("all").is_some_and(|value| value.eq_ignore_ascii_case("true"))
        || body.get("all") == Some(&Value::Bool(true));
    match (listed, all) {
        (Some(_), true) => Err("give either entities or all=true, not both".to_string()),
        (None, true) => Ok(Vec::new()),
        (None, false) => Err("name the entities (?entities=projects,timesheets) or pass all=true".to_string()),
        (Some(list), false) => {
            let entities = parse_entity_list(&list)
                .map_err(|name| format!("unknown entity {name:?}; known: {}", known_entities()))?;
            if entities.is_empty() {
                return Err("name the entities (?entities=projects,timesheets) or pass all=true".to_string());
            }
            Ok(entities)
        }
    }
}

fn busy_body(current: &Activity) -> Value {
    json!({ "error": format!("busy: {}; retry when it ends", current.describe()), "busy": current.to_json() })
}

async fn reset_state(state: &AppState, def: &'static FunctionDef, request: &HttpRequestData) -> (StatusCode, Value) {
    let entities = match selected_entities(request) {
        Ok(entities) => entities,
        Err(message) => return (StatusCode::BAD_REQUEST, error_body(message)),
    };
    let _guard = match state.busy.try_acquire(def.name, "reset state") {
        Ok(guard) => guard,
        Err(current) => return (StatusCode::CONFLICT, busy_body(&current)),
    };
    match state.service.reset_state(entities.clone()).await {
        Ok(result) => (StatusCode::OK, json!({ "reset": timer_entities_json(&entities), "result": result })),
        Err(err) => (service_error_status(&err), error_body(err.message)),
    }
}

fn wipe(state: &AppState, def: &'static FunctionDef, request: &HttpRequestData) -> (StatusCode, Value) {
    let entities = match selected_entities(request) {
        Ok(entities) => entities,
        Err(message) => return (StatusCode::BAD_REQUEST, error_body(message)),
    };
    let confirmed = request.query("confirm") == Some("wipe")
        || request.json_body().ok().and_then(|body| body.get("confirm").cloned()) == Some(json!("wipe"));
    if !confirmed {
        return (StatusCode::BAD_REQUEST, error_body("wiping deletes lake files: add confirm=wipe to go ahead"));
    }
    let guard = match state.busy.try_acquire(def.name, format!("wipe {}", timer_entities_json(&entities))) {
        Ok(guard) => guard,
        Err(current) => return (StatusCode::CONFLICT, busy_body(&current)),
    };
    let service = Arc::clone(&state.service);
    let function = def.name;
    let selection = entities.clone();
    tokio::spawn(async move {
        let _guard = guard;
        match service.wipe(selection).await {
            Ok(result) => tracing::info!(function, result = %result, "wipe finished"),
            Err(err) => {
                tracing::error!(function, error = %err, "wipe failed");
                eprintln!("error: {function}: wipe failed: {err}");
            }
        }
    });
    (
        StatusCode::ACCEPTED,
        json!({ "accepted": "wipe", "entities": timer_entities_json(&entities), "progress": "GET /api/sync/status" }),
    )
}

fn resync(state: &AppState, def: &'static FunctionDef, request: &HttpRequestData) -> (StatusCode, Value) {
    let Some(name) = request.param("entity") else {
        return (StatusCode::BAD_REQUEST, error_body("name the entity: /api/sync/resync/{entity}"));
    };
    let entity = match parse_entity_list(name) {
        Ok(entities) if entities.len() == 1 => entities,
        Ok(_) => return (StatusCode::BAD_REQUEST, error_body("a resync takes exactly one entity")),
        Err(unknown) => {
            return (
                StatusCode::BAD_REQUEST,
                error_body(format!("unknown entity {unknown:?}; known: {}", known_entities())),
            );
        }
    };
    let guard = match state.busy.try_acquire(def.name, format!("full resync of {}", entity.join(","))) {
        Ok(guard) => guard,
        Err(current) => return (StatusCode::CONFLICT, busy_body(&current)),
    };
    let budget = state.config.pass_budget();
    let request = PassInvocation {
        entities: entity.clone(),
        full_load: FullLoad::Forced,
        deadline: Instant::now() + budget,
        trigger: def.name.to_string(),
    };
    let service = Arc::clone(&state.service);
    let function = def.name;
    tokio::spawn(async move {
        let _guard = guard;
        let outcome = service.run_pass(request).await;
        match outcome.status {
            PassStatus::Failed | PassStatus::LeaseHeld => {
                tracing::error!(function, message = %outcome.message, summary = %outcome.summary, "full resync failed");
                eprintln!("error: {function}: full resync failed: {}", outcome.message);
            }
            status => {
                tracing::info!(function, ?status, message = %outcome.message, summary = %outcome.summary, "full resync ended")
            }
        }
    });
    (
        StatusCode::ACCEPTED,
        json!({
            "accepted": "resync",
            "entity": entity[0],
            "budget_secs": budget.as_secs(),
            "progress": "GET /api/sync/status; a resync cut short resumes on the next timer",
        }),
    )
}
