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
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use crate::config::SimConfig;
use crate::faults::{Fault, FaultPlan, FaultState, error_entry_body};
use crate::graphql::{self, GqlError};
use crate::store::{ModifiedAt, Store};
use crate::webhooks::{
    DeliveryCounters, DeliveryFaultPlan, DeliveryFaultState, DeliveryRecord, QueuedDelivery, WebhookInfo, WebhookState,
};

/// Xledger's answer to a missing or malformed `Authorization` header.
pub const BAD_TOKEN_FORMAT_MESSAGE: &str =
    "Bad format for API Token. Expected header: \"Authorization: token <your-token>\"";
/// The simulator's answer to a well-formed header with the wrong key (HTTP 401).
pub const INVALID_TOKEN_MESSAGE: &str = "The API token is not valid.";
pub const UNAUTHENTICATED_CODE: &str = "UNAUTHENTICATED";

/// How many requests [`Counters::requests`] keeps (the totals count every request regardless).
pub const REQUEST_LOG_CAPACITY: usize = 100_000;

/// Requests and bytes served, in total, per root field (e.g. `timesheet_deltas`) and per request:
/// what a pass cost, as Xledger would bill it (requests, and MB up and down).
///
/// To measure one pass, reset the counters first ([`crate::SimHandle::reset_counters`]) or take
/// the difference of two snapshots ([`Counters::since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every HTTP request to the GraphQL endpoint, failed ones included. One request with several
    /// aliased root fields counts once.
    pub http_requests: u64,
    /// Response body bytes on the wire (after gzip), every request included.
    pub response_bytes: u64,
    /// Request body bytes received (as sent: compressed if the client compressed them).
    #[serde(default)]
    pub request_bytes: u64,
    /// Requests answered by a fault or a limit instead of data.
    pub faults_injected: u64,
    /// Per root field name (not alias): executed occurrences and their uncompressed JSON bytes.
    pub by_root_field: BTreeMap<String, FieldCounters>,
    /// Each request in arrival order, up to [`REQUEST_LOG_CAPACITY`] of them.
    #[serde(default)]
    pub requests: Vec<RequestStats>,
}

impl Counters {
    /// What was served after `earlier` (an older snapshot of the same simulator).
    ///
    /// ```
    /// let earlier = xledger_sim::Counters { http_requests: 2, response_bytes: 900, ..Default::default() };
    /// let now = xledger_sim::Counters { http_requests: 5, response_bytes: 1500, ..Default::default() };
    /// let pass = now.since(&earlier);
    /// assert_eq!((pass.http_requests, pass.response_bytes), (3, 600));
    /// ```
    pub fn since(&self, earlier: &Counters) -> Counters {
        let by_root_field = self
            .by_root_field
            .iter()
            .filter_map(|(field, now)| {
                let before = earlier.by_root_field.get(field).copied().unwrap_or_default();
                let delta = FieldCounters {
                    requests: now.requests.saturating_sub(before.requests),
                    bytes: now.bytes.saturating_sub(before.bytes),
                };
                (delta.requests > 0).then(|| (field.clone(), delta))
            })
            .collect();
        Counters {
            http_requests: self.http_requests.saturating_sub(earlier.http_requests),
            response_bytes: self.response_bytes.saturating_sub(earlier.response_bytes),
            request_bytes: self.request_bytes.saturating_sub(earlier.request_bytes),
            faults_injected: self.faults_injected.saturating_sub(earlier.faults_injected),
            by_root_field,
            requests: self.requests.get(earlier.requests.len()..).unwrap_or_default().to_vec(),
        }
    }
}

/// Use of one root field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCounters {
    pub requests: u64,
    pub bytes: u64,
}

/// One HTTP request to the GraphQL endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// The root field names it executed, in order (empty when it was refused or failed as a whole).
    pub root_fields: Vec<String>,
    /// Its request body's bytes.
    pub request_bytes: u64,
    /// Its response body's bytes on the wire (after gzip).
    pub response_bytes: u64,
    /// Its response body's JSON bytes before gzip.
    pub body_bytes: u64,
    pub status: u16,
}

/// State shared by the server, the delivery sender and every handle.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) store: RwLock<Store>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) counters: Mutex<Counters>,
    in_flight: AtomicUsize,
    deliveries: UnboundedSender<QueuedDelivery>,
    /// Deliveries queued and not yet settled (posted, dropped or discarded).
    unsettled: watch::Sender<usize>,
    delivery_faults: Mutex<DeliveryFaultState>,
    delivery_counters: Mutex<DeliveryCounters>,
    delivery_records: Mutex<Vec<DeliveryRecord>>,
}

impl Shared {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The shared state and the receiving end of its delivery queue (for the sender task).
    pub(crate) fn new(config: SimConfig, store: Store) -> (Shared, UnboundedReceiver<QueuedDelivery>) {
        let (deliveries, queue) = tokio::sync::mpsc::unbounded_channel();
        let shared = Shared {
            config,
            store: RwLock::new(store),
            faults: Mutex::new(FaultState::new(FaultPlan::default())),
            counters: Mutex::new(Counters::default()),
            in_flight: AtomicUsize::new(0),
            deliveries,
            unsettled: watch::Sender::new(0),
            delivery_faults: Mutex::new(DeliveryFaultState::new(DeliveryFaultPlan::default())),
            delivery_counters: Mutex::new(DeliveryCounters::default()),
            delivery_records: Mutex::new(Vec::new()),
        };
        (shared, queue)
    }

    /// Runs a change to the tenant, then queues the webhook deliveries it rendered (after the
    /// store's lock is released: deliveries never hold up mutations).
    pub(crate) fn mutate<R>(&self, change: impl FnOnce(&mut Store) -> R) -> R {
        let (result, outbox) = {
            let mut store = self.write_store();
            let result = change(&mut store);
            (result, store.take_outbox())
        };
        if outbox.is_empty() {
            return result;
        }
        self.lock_delivery_counters().queued += outbox.len() as u64;
        for delivery in outbox {
            self.unsettled.send_modify(|n| *n += 1);
            if self.deliveries.send(delivery).is_err() {
                // The sender has stopped (shutdown): nothing will post it.
                self.unsettled.send_modify(|n| *n = n.saturating_sub(1));
                self.lock_delivery_counters().discarded += 1;
            }
        }
        result
    }

    /// One queued delivery has been posted, dropped or discarded.
    pub(crate) fn delivery_settled(&self) {
        self.unsettled.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Waits until every delivery queued so far has settled.
    pub(crate) async fn deliveries_settled(&self) {
        let mut unsettled = self.unsettled.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = unsettled.wait_for(|n| *n == 0).await;
    }

    /// Forgets unsettled deliveries (the sender was stopped and will post none of them).
    pub(crate) fn abandon_deliveries(&self) {
        self.unsettled.send_replace(0);
    }

    pub(crate) fn lock_delivery_faults(&self) -> MutexGuard<'_, DeliveryFaultState> {
        self.delivery_faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_delivery_counters(&self) -> MutexGuard<'_, DeliveryCounters> {
        self.delivery_counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_delivery_records(&self) -> MutexGuard<'_, Vec<DeliveryRecord>> {
        self.delivery_records.lock().unwrap_or_else(PoisonError::into_inner)
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
        .route("/entities/{entity}/silent-rows", post(admin_silent_add))
        .route("/entities/{entity}/rows/{db_id}/silent-update", post(admin_silent_update))
        .route("/entities/{entity}/rows/{db_id}/silent-update-keeping-modified-at", post(admin_silent_update_keeping))
        .route("/entities/{entity}/rows/{db_id}/silent", axum::routing::delete(admin_silent_delete))
        .route("/entities/{entity}/truth", get(admin_truth))
        .route("/webhooks", get(admin_webhooks))
        .route("/webhooks/{db_id}/state", axum::routing::put(admin_set_webhook_state))
        .route("/webhooks/faults", axum::routing::put(admin_set_delivery_faults).delete(admin_clear_delivery_faults))
        .route("/webhooks/counters", get(admin_delivery_counters).delete(admin_reset_delivery_counters))
        .route("/webhooks/deliveries", get(admin_deliveries))
        .route("/webhooks/settled", post(admin_deliveries_settled))
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
        code: Some(UNAUTHENTICATED_CODE.to_owned()),
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
    let answered = answer(&shared, &headers, &body).await;
    let mut counters = shared.lock_counters();
    counters.response_bytes += answered.wire_bytes;
    counters.request_bytes += body.len() as u64;
    if counters.requests.len() < REQUEST_LOG_CAPACITY {
        counters.requests.push(RequestStats {
            root_fields: answered.root_fields,
            request_bytes: body.len() as u64,
            response_bytes: answered.wire_bytes,
            body_bytes: answered.body_bytes,
            status: answered.response.status().as_u16(),
        });
    }
    answered.response
}

/// A response and what it cost.
struct Answered {
    response: Response,
    wire_bytes: u64,
    body_bytes: u64,
    root_fields: Vec<String>,
}

impl Answered {
    /// A response answered before execution: its body is what goes on the wire.
    fn unexecuted(response: Response, len: u64) -> Answered {
        Answered { response, wire_bytes: len, body_bytes: len, root_fields: Vec::new() }
    }
}

async fn answer(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Answered {
    if let Err(failure) = check_token(headers, &shared.config.api_key) {
        let response = auth_failure_response(failure);
        let len = response.body().size_hint().exact().unwrap_or(0);
        return Answered::unexecuted(response, len);
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
            return Answered::unexecuted(json_response(StatusCode::OK, error_body), len);
        }
        if let Fault::HttpStatus { status } = fault {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!("{status}");
            let len = text.len() as u64;
            return Answered::unexecuted((status, text).into_response(), len);
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
            return Answered::unexecuted(json_response(StatusCode::BAD_REQUEST, text), len);
        }
    };
    let executed = graphql::execute(&shared.store, &request, shared.config.page_cap, |root_fields| {
        shared.lock_faults().field_errors(root_fields)
    });
    let (text, root_fields) = match executed {
        Ok(executed) => {
            let mut counters = shared.lock_counters();
            let mut names = Vec::with_capacity(executed.root_fields.len());
            for (field, bytes) in executed.root_fields {
                let entry = counters.by_root_field.entry(field.to_owned()).or_default();
                entry.requests += 1;
                entry.bytes += bytes as u64;
                names.push(field.to_owned());
            }
            (executed.body, names)
        }
        Err(errors) => (graphql::errors_body(&errors), Vec::new()),
    };
    let body_bytes = text.len() as u64;
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
    Answered { response, wire_bytes: wire, body_bytes, root_fields }
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
    match shared.mutate(|store| store.add(&entity)) {
        Ok(db_id) => Json(serde_json::json!({ "dbId": db_id })).into_response(),
        Err(e) => admin_error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn admin_update(State(shared): State<Arc<Shared>>, Path((entity, db_id)): Path<(String, i64)>) -> Response {
    let updated = shared.mutate(|store| store.update(&entity, db_id));
    Json(serde_json::json!({ "updated": updated })).into_response()
}

async fn admin_delete(State(shared): State<Arc<Shared>>, Path((entity, db_id)): Path<(String, i64)>) -> Response {
    let deleted = shared.mutate(|store| store.delete(&entity, db_id));
    Json(serde_json::json!({ "deleted": deleted })).into_response()
}

async fn admin_silent_add(State(shared): State<Arc<Shared>>, Path(entity): Path<String>) -> Response {
    match shared.mutate(|store| store.silent_add(&entity)) {
        Ok(db_id) => Json(serde_json::json!({ "dbId": db_id })).into_response(),
        Err(e) => admin_error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn admin_silent_update(
    State(shared): State<Arc<Shared>>,
    Path((entity, db_id)): Path<(String, i64)>,
) -> Response {
    let updated = shared.mutate(|store| store.silent_update(&entity, db_id, ModifiedAt::Now));
    Json(serde_json::json!({ "updated": updated })).into_response()
}

async fn admin_silent_update_keeping(
    State(shared): State<Arc<Shared>>,
    Path((entity, db_id)): Path<(String, i64)>,
) -> Response {
    let updated = shared.mutate(|store| store.silent_update(&entity, db_id, ModifiedAt::Keep));
    Json(serde_json::json!({ "updated": updated })).into_response()
}

async fn admin_silent_delete(
    State(shared): State<Arc<Shared>>,
    Path((entity, db_id)): Path<(String, i64)>,
) -> Response {
    let deleted = shared.mutate(|store| store.silent_delete(&entity, db_id));
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
    Json(shared.mutate(|store| store.random_changes(body.count, body.seed))).into_response()
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

async fn admin_webhooks(State(shared): State<Arc<Shared>>) -> Json<Vec<WebhookInfo>> {
    Json(shared.read_store().webhooks.infos())
}

#[derive(Debug, Deserialize)]
struct SetState {
    state: WebhookState,
}

async fn admin_set_webhook_state(
    State(shared): State<Arc<Shared>>,
    Path(db_id): Path<i64>,
    Json(body): Json<SetState>,
) -> Response {
    let changed = shared.write_store().webhooks.set_state(db_id, body.state);
    Json(serde_json::json!({ "changed": changed })).into_response()
}

async fn admin_set_delivery_faults(
    State(shared): State<Arc<Shared>>,
    Json(plan): Json<DeliveryFaultPlan>,
) -> StatusCode {
    *shared.lock_delivery_faults() = DeliveryFaultState::new(plan);
    StatusCode::NO_CONTENT
}

async fn admin_clear_delivery_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.lock_delivery_faults() = DeliveryFaultState::new(DeliveryFaultPlan::default());
    StatusCode::NO_CONTENT
}

async fn admin_delivery_counters(State(shared): State<Arc<Shared>>) -> Json<DeliveryCounters> {
    Json(*shared.lock_delivery_counters())
}

async fn admin_reset_delivery_counters(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.lock_delivery_counters() = DeliveryCounters::default();
    shared.lock_delivery_records().clear();
    StatusCode::NO_CONTENT
}

async fn admin_deliveries(State(shared): State<Arc<Shared>>) -> Json<Vec<DeliveryRecord>> {
    Json(shared.lock_delivery_records().clone())
}

/// Answers once every delivery queued so far has been posted, dropped or discarded.
async fn admin_deliveries_settled(State(shared): State<Arc<Shared>>) -> Json<DeliveryCounters> {
    shared.deliveries_settled().await;
    Json(*shared.lock_delivery_counters())
}
