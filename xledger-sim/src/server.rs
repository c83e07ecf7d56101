//! The HTTP side: `POST /graphql` (auth, limits, faults, execution, gzip, counters) and the
//! admin API under `/admin` (same token).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::config::SimConfig;
use crate::faults::{Fault, FaultPlan, FaultState, error_entry_body};
use crate::graphql::{self, GqlError};
use crate::store::Store;

/// Xledger's answer to a missing or malformed `Authorization` header.
pub const BAD_TOKEN_FORMAT_MESSAGE: &str =
    "Bad format for API Token. Expected header: \"Authorization: token <your-token>\"";
/// The simulator's answer to a well-formed header with the wrong key (HTTP 401).
pub const INVALID_TOKEN_MESSAGE: &str = "The API token is not valid.";
pub const UNAUTHENTICATED_CODE: &str = "UNAUTHENTICATED";

/// Requests and bytes served, in total and per root field (e.g. `timesheet_deltas`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every HTTP request to the GraphQL endpoint, failed ones included.
    pub http_requests: u64,
    /// Response body bytes on the wire (after gzip), every request included.
    pub response_bytes: u64,
    /// Requests answered by a fault or a limit instead of data.
    pub faults_injected: u64,
    /// Per root field name (not alias): executed occurrences and their uncompressed JSON bytes.
    pub by_root_field: BTreeMap<String, FieldCounters>,
}

/// Use of one root field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCounters {
    pub requests: u64,
    pub bytes: u64,
}

/// State shared by the server and every handle.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) store: RwLock<Store>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) counters: Mutex<Counters>,
    in_flight: AtomicUsize,
}

impl Shared {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn new(config: SimConfig, store: Store) -> Shared {
        Shared {
            config,
            store: RwLock::new(store),
            faults: Mutex::new(FaultState::new(FaultPlan::default())),
            counters: Mutex::new(Counters::default()),
            in_flight: AtomicUsize::new(0),
        }
    }

    // A panic while holding a lock cannot leave the store half-changed in a way that matters to
    // a test double: keep serving instead of propagating the poison.
    pub(crate) fn read_store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_store(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let admin = Router::new()
        .route("/entities/{entity}/rows", post(admin_add))
        .route("/entities/{entity}/rows/{db_id}/update", post(admin_update))
        .route("/entities/{entity}/rows/{db_id}", axum::routing::delete(admin_delete))
        .route("/entities/{entity}/truth", get(admin_truth))
        .route("/random-changes", post(admin_random_changes))
        .route("/faults", axum::routing::put(admin_set_faults).delete(admin_clear_faults))
        .route("/counters", get(admin_counters).delete(admin_reset_counters))
        .route("/clock", get(admin_clock).put(admin_set_clock))
        .route("/clock/advance", post(admin_advance_clock))
        .layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new().route("/graphql", post(graphql_endpoint)).nest("/admin", admin).with_state(shared)
}

enum AuthFailure {
    BadFormat,
    WrongKey,
}

fn check_token(headers: &HeaderMap, api_key: &str) -> Result<(), AuthFailure> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(AuthFailure::BadFormat)?;
    let token = value.strip_prefix("token ").map(str::trim).filter(|t| !t.is_empty()).ok_or(AuthFailure::BadFormat)?;
    if constant_time_eq(token.as_bytes(), api_key.as_bytes()) { Ok(()) } else { Err(AuthFailure::WrongKey) }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HTTP 401 for both failures; the message says which (Xledger's wording for a bad format).
fn auth_failure_response(failure: AuthFailure) -> Response {
    let message = match failure {
        AuthFailure::BadFormat => BAD_TOKEN_FORMAT_MESSAGE,
        AuthFailure::WrongKey => INVALID_TOKEN_MESSAGE,
    };
    let error = GqlError {
        message: message.to_owned(),
        code: Some(UNAUTHENTICATED_CODE),
        extension_code: None,
        location: None,
        path: None,
    };
    json_response(StatusCode::UNAUTHORIZED, graphql::errors_body(&[error]))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Counts a request as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn graphql_endpoint(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.lock_counters().http_requests += 1;
    let response = answer(&shared, &headers, &body).await;
    let (response, wire_bytes) = response;
    shared.lock_counters().response_bytes += wire_bytes;
    response
}

async fn answer(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> (Response, u64) {
    if let Err(failure) = check_token(headers, &shared.config.api_key) {
        let response = auth_failure_response(failure);
        let len = response.body().size_hint().exact().unwrap_or(0);
        return (response, len);
    }
    let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&shared.in_flight);
    let decision = shared.lock_faults().decide(in_flight, tokio::time::Instant::now());
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(fault) = &decision.fault {
        shared.lock_counters().faults_injected += 1;
        let clock = shared.read_store().now();
        if let Some(error_body) = error_entry_body(fault, clock) {
            let len = error_body.len() as u64;
            return (json_response(StatusCode::OK, error_body), len);
        }
        if let Fault::HttpStatus { status } = fault {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!("{status}");
            let len = text.len() as u64;
            return ((status, text).into_response(), len);
        }
    }
    let request: graphql::Request = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            let error = GqlError {
                message: format!("The request body is not a GraphQL request: {e}"),
                code: None,
                extension_code: Some("BAD_REQUEST"),
                location: None,
                path: None,
            };
            let text = graphql::errors_body(&[error]);
            let len = text.len() as u64;
            return (json_response(StatusCode::BAD_REQUEST, text), len);
        }
    };
    let executed = {
        let store = shared.read_store();
        graphql::execute(&store, &request, shared.config.page_cap)
    };
    let text = match executed {
        Ok(executed) => {
            let mut counters = shared.lock_counters();
            for (field, bytes) in executed.root_fields {
                let entry = counters.by_root_field.entry(field.to_owned()).or_default();
                entry.requests += 1;
                entry.bytes += bytes as u64;
            }
            executed.body
        }
        Err(errors) => graphql::errors_body(&errors),
    };
    let mut bytes = text.into_bytes();
    let cut = match decision.fault {
        Some(Fault::TruncatedBody) => {
            bytes.truncate(bytes.len() / 2);
            false
        }
        Some(Fault::AbortedBody) => true,
        _ => false,
    };
    let gzip = shared.config.gzip && accepts_gzip(headers);
    if gzip {
        let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
        // Writing into a Vec cannot fail.
        if encoder.write_all(&bytes).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            bytes = compressed;
        }
    }
    if cut {
        bytes.truncate(bytes.len() / 2);
    }
    let wire = bytes.len() as u64;
    let mut response = if cut {
        use futures::StreamExt as _;
        let first_half = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
        // Yield before failing so the headers and the first half reach the client first.
        let abort = futures::stream::once(async {
            tokio::task::yield_now().await;
            Err(std::io::Error::other("simulated connection abort"))
        });
        Response::new(Body::from_stream(first_half.chain(abort)))
    } else {
        Response::new(Body::from(bytes))
    };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if gzip {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (response, wire)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().split(';').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("gzip")))
}

// ---------------------------------------------------------------------------------------------
// Admin API.
// ---------------------------------------------------------------------------------------------

async fn require_token(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match check_token(request.headers(), &shared.config.api_key) {
        Ok(()) => next.run(request).await,
        Err(failure) => auth_failure_response(failure),
    }
}

fn admin_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn admin_add(State(shared): State<Arc<Shared>>, Path(entity): Path<String>) -> Response {
    match shared.write_store().add(&entity) {
        Ok(db_id) => Json(serde_json::json!({ "dbId": db_id })).into_response(),
        Err(e) => admin_error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn admin_update(State(shared): State<Arc<Shared>>, Path((entity, db_id)): Path<(String, i64)>) -> Response {
    let updated = shared.write_store().update(&entity, db_id);
    Json(serde_json::json!({ "updated": updated })).into_response()
}

async fn admin_delete(State(shared): State<Arc<Shared>>, Path((entity, db_id)): Path<(String, i64)>) -> Response {
    let deleted = shared.write_store().delete(&entity, db_id);
    Json(serde_json::json!({ "deleted": deleted })).into_response()
}

async fn admin_truth(State(shared): State<Arc<Shared>>, Path(entity): Path<String>) -> Response {
    match shared.read_store().truth(&entity) {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => admin_error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct RandomChanges {
    count: usize,
    seed: u64,
}

async fn admin_random_changes(State(shared): State<Arc<Shared>>, Json(body): Json<RandomChanges>) -> Response {
    Json(shared.write_store().random_changes(body.count, body.seed)).into_response()
}

async fn admin_set_faults(State(shared): State<Arc<Shared>>, Json(plan): Json<FaultPlan>) -> StatusCode {
    *shared.lock_faults() = FaultState::new(plan);
    StatusCode::NO_CONTENT
}

async fn admin_clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.lock_faults() = FaultState::new(FaultPlan::default());
    StatusCode::NO_CONTENT
}

async fn admin_counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock_counters().clone()).into_response()
}

async fn admin_reset_counters(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.lock_counters() = Counters::default();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Serialize, Deserialize)]
struct Clock {
    now: DateTime<Utc>,
}

async fn admin_clock(State(shared): State<Arc<Shared>>) -> Json<Clock> {
    Json(Clock { now: shared.read_store().now() })
}

async fn admin_set_clock(State(shared): State<Arc<Shared>>, Json(clock): Json<Clock>) -> Json<Clock> {
    let mut store = shared.write_store();
    store.set_clock(clock.now);
    Json(Clock { now: store.now() })
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: u64,
}

async fn admin_advance_clock(State(shared): State<Arc<Shared>>, Json(advance): Json<Advance>) -> Response {
    let by = chrono::Duration::from_std(Duration::from_secs(advance.seconds));
    match by {
        Ok(by) => {
            let mut store = shared.write_store();
            store.advance_clock(by);
            Json(Clock { now: store.now() }).into_response()
        }
        Err(_) => admin_error(StatusCode::BAD_REQUEST, format!("cannot advance the clock by {} s", advance.seconds)),
    }
}
