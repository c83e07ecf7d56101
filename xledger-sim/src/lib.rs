//! A stateful, seeded stand-in for Xledger's GraphQL API, served over HTTP on loopback.
//!
//! Every end-to-end test, benchmark and the credential-free `xledger-sync demo` talk to this
//! instead of Xledger, where each request costs the user money. It serves the entities of
//! [`SimConfig::entities`] — by default the registry's (`xledger_model::entities()`, one per
//! `schema/queries/*.graphql`); tests add or replace specs built at run time
//! ([`SimConfig::with_entity`]), and everything below is driven by those specs:
//!
//! - **Data**: N seeded rows per entity shaped by the spec's columns — decimal strings with
//!   2–6 fractional digits (never more than the column's scale), negative amounts, Central
//!   European wall-clock date-times including the DST gap and overlap hours, dates, nulls in nested
//!   objects, non-ASCII, quotes, newlines and >10 KB strings, timesheet ids beyond 2^53. That is
//!   the default [`DataProfile::Stress`]; [`DataProfile::Ledger`] makes nested objects repeating
//!   referenced records (accounts, currencies, projects), as in a real ledger, for benchmarks.
//!   The same generator is public for test suites that need nodes without a server
//!   ([`generate_nodes`], [`NodeOptions`]), with the workspace's one test PRNG ([`SimRng`]).
//! - **GraphQL**: real documents parsed with `graphql-parser` (fragments, aliases, several root
//!   fields per request, variables, `operationName`, `@include`/`@skip`); Relay pagination with
//!   opaque cursors and the 10 000 cap; `filter { dbId_in, dbId_gt, modifiedAt_gte, AND, OR }`;
//!   selections checked against the spec's columns (unknown fields → `GRAPHQL_VALIDATION_FAILED`).
//!   A `dbId` (+ `modifiedAt`/`createdAt`) scan is rendered from the row without reading the node.
//! - **Change feeds**: `<entity>_deltas` for specs with a change feed only, with `first` (oldest →
//!   newest), `last: 1` (the head), retention (entries older than the clock − 3 days are dropped; a
//!   cursor before a dropped entry → `BAD_REQUEST.INVALID_CURSOR`) and a controllable clock.
//! - **Mutations** through [`SimHandle`] or the admin API, and [`SimHandle::truth`]: the rows a
//!   correct sync must end up with. **Silent** changes ([`SimHandle::silent_add`],
//!   [`SimHandle::silent_update`], [`SimHandle::silent_update_keeping_modified_at`],
//!   [`SimHandle::silent_delete`]) change the truth with no feed entry and no webhook delivery, as
//!   an import or a feed bug would: what `verify` must find.
//! - **Webhooks**: `addWebhooks`, `removeWebhooks`, `webhook(dbId)` and `webhooks(first, after)`;
//!   every mutation of a subscribed entity POSTs a signed delivery to the webhook's loopback URL
//!   from a background task (see "Webhooks" below), with states and seeded delivery faults.
//! - **Faults**: each Xledger rate-limit code, timeouts, HTTP 5xx, truncated and aborted bodies,
//!   latency, errors confined to one root field ([`Fault::FieldError`]), and behavioural
//!   concurrency and burst limits ([`FaultPlan`]); delivery faults ([`DeliveryFaultPlan`]).
//! - **Counters** ([`Counters`]): requests, bytes up and down, per root field and per request
//!   ([`RequestStats`]), so a test can assert "this pass cost N requests and B bytes"
//!   ([`Counters::since`]); delivery counters ([`DeliveryCounters`]).
//!
//! This crate must never make a network call other than serving its own listener and posting
//! webhook deliveries to loopback URLs (anything else is refused, proxies and redirects are off),
//! never contain hand-written per-entity code (shapes come from the specs), and never print or log
//! the API key. It is a test double: it does not persist anything.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use xledger_sim::{SimConfig, Simulator};
//!
//! let sim = Simulator::start(SimConfig { rows: 20, ..Default::default() }).await?;
//! assert!(sim.endpoint().starts_with("http://127.0.0.1:"));
//!
//! let db_id = sim.add("projects")?;
//! assert!(sim.update("projects", db_id));
//! assert!(sim.silent_delete("projects", db_id), "no feed entry for this one");
//! let projects = sim.truth("projects")?;
//! assert_eq!(projects.len(), 20);
//! assert_eq!(sim.counters().http_requests, 0);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # HTTP API
//! - `POST /graphql` with `Authorization: token <key>` and `{"query", "variables", "operationName"}`.
//!   A missing or malformed header → HTTP 401 with Xledger's message
//!   ([`BAD_TOKEN_FORMAT_MESSAGE`]); a wrong key → HTTP 401 with [`INVALID_TOKEN_MESSAGE`]; both
//!   entries carry `"code": "UNAUTHENTICATED"`. Validation errors (input types of arguments and
//!   variables included, as GraphQL specifies) answer HTTP 200 with
//!   `{"errors":[{"message", "locations", "extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`
//!   and no `data`. A rejected cursor or a [`Fault::FieldError`] fails only its root field:
//!   `data.<alias>` is `null` and the `errors` entry has a `"code"` (`BAD_REQUEST.INVALID_CURSOR`,
//!   or the fault's) and `"path": ["<alias>"]`; the other aliases answer normally.
//!   Mutations: `addWebhooks(inputs: [{node: {description, url, serializedPayload}}]) { edges {
//!   cursor node { … } } }`, `removeWebhooks(dbIds: [Int64String]) { numAffected }`. Queries:
//!   `webhook(dbId: ID) { dbId description url serializedPayload state { code }
//!   lastSuccessfulPost lastFailedPost }` (`null` when unknown) and `webhooks(first, after) {
//!   edges { cursor node { … } } pageInfo { … } }`. Subscriptions are not served over HTTP.
//! - Admin (same header): `POST /admin/entities/{entity}/rows` (add → `{"dbId"}`),
//!   `POST /admin/entities/{entity}/rows/{dbId}/update`, `DELETE /admin/entities/{entity}/rows/{dbId}`,
//!   silent changes `POST /admin/entities/{entity}/silent-rows` (→ `{"dbId"}`),
//!   `POST /admin/entities/{entity}/rows/{dbId}/silent-update`,
//!   `POST /admin/entities/{entity}/rows/{dbId}/silent-update-keeping-modified-at`,
//!   `DELETE /admin/entities/{entity}/rows/{dbId}/silent`,
//!   `GET /admin/entities/{entity}/truth`, `POST /admin/random-changes {"count","seed"}`,
//!   `PUT|DELETE /admin/faults` ([`FaultPlan`] as JSON), `GET|DELETE /admin/counters`,
//!   `GET|PUT /admin/clock {"now"}`, `POST /admin/clock/advance {"seconds"}`;
//!   webhooks: `GET /admin/webhooks` ([`WebhookInfo`]s), `PUT /admin/webhooks/{dbId}/state
//!   {"state":"PAUSED"}`, `PUT|DELETE /admin/webhooks/faults` ([`DeliveryFaultPlan`] as JSON),
//!   `GET|DELETE /admin/webhooks/counters`, `GET /admin/webhooks/deliveries` ([`DeliveryRecord`]s),
//!   `POST /admin/webhooks/settled` (answers once every queued delivery has settled).
//!
//! # Webhooks
//! Shapes from Xledger's sample (`xledger/graphql-samples`, `Webhooks-CSharp/GraphQL`):
//! - `serializedPayload` is a JSON request `{"query": "subscription { projects: projectsMutated {
//!   edges { syncVersion node { … } } } }"}` (`Queries.cs`, `ProjectsSubscriptionJson`) or, here,
//!   also the bare document. The root field is `<itemsField>Mutated` of a served entity; **only
//!   `projectsMutated` is known to exist** in Xledger, the others are the simulator's assumption.
//!   `webhooks(first, after)` is an assumption too (the sample's `WebhookSelection` suggests a
//!   connection but never uses it). Webhook `dbId`s are `Int64String`s (JSON strings).
//! - A delivery is `POST <url>` with `Content-Type: application/json`, `Date: <HTTP date>` and
//!   `X-XL-Webhook-Signature: <base64url HMAC-SHA256>`; the HMAC key is the base64url-decoded API
//!   key and the message `"{Date as unix seconds}.{body}"` ([`webhook_signature`]). The body is the
//!   subscription's selection as a GraphQL response: `{"data":{"<alias>":{"edges":[{"syncVersion":
//!   "<n>","node":{…}}]}}}`, one edge (one mutation) per delivery. Deletions are not delivered
//!   unless [`WebhookConfig::deliver_deletions`]; silent changes never are.
//! - States: a new webhook is `RUNNING`; a failed post (non-2xx, no answer) makes it `RECOVERING`,
//!   a success `RUNNING` again, [`WebhookConfig::fault_after_failed_posts`] failures in a row
//!   `FAULTED`; tests set any state ([`SimHandle::set_webhook_state`]). Only `RUNNING` and
//!   `RECOVERING` webhooks get deliveries; nothing is retried.
//! - Deliveries never hold up a mutation: they are rendered at mutation time, queued, and posted
//!   in order by one background task; [`SimHandle::deliveries_settled`] waits for the queue.

mod config;
mod error;
mod faults;
mod generate;
mod graphql;
mod rng;
mod server;
mod store;
mod webhooks;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{DEFAULT_API_KEY, DEFAULT_PAGE_CAP, DataProfile, SimConfig};
pub use error::SimError;
pub use faults::{
    BURST_RATE_LIMIT_CODE, BurstLimit, CONCURRENCY_LIMIT_CODE, Fault, FaultPlan, FaultRule, INSUFFICIENT_CREDITS_CODE,
    QUERY_TIMEOUT_MESSAGE, Trigger,
};
pub use generate::{NodeOptions, NullRates, generate_node_values, generate_nodes};
pub use graphql::{INVALID_CURSOR_CODE, INVALID_CURSOR_MESSAGE};
pub use rng::{SimRng, stable_hash};
pub use server::{
    BAD_TOKEN_FORMAT_MESSAGE, Counters, FieldCounters, INVALID_TOKEN_MESSAGE, REQUEST_LOG_CAPACITY, RequestStats,
    UNAUTHENTICATED_CODE,
};
pub use store::{ChangeSummary, EntityChanges};
pub use webhooks::{
    DeliveryClock, DeliveryCounters, DeliveryFault, DeliveryFaultPlan, DeliveryFaultRule, DeliveryHeaders,
    DeliveryOutcome, DeliveryRecord, SIGNATURE_HEADER, Tampering, WebhookConfig, WebhookInfo, WebhookState,
    webhook_signature,
};

use graphql::WebhookInput;
use server::Shared;
use store::ModifiedAt;
use webhooks::DeliveryFaultState;

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Generates the data and serves it on `127.0.0.1` on a free port.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        Simulator::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Generates the data (on a blocking thread: a million rows take a few seconds) and serves
    /// it on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> Result<SimHandle, SimError> {
        let generation_config = config.clone();
        let store = tokio::task::spawn_blocking(move || store::Store::generate(&generation_config))
            .await
            .map_err(|e| SimError::Internal { reason: format!("the data generator stopped: {e}") })??;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| SimError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| SimError::Bind { addr, source })?;
        // No proxy and no redirects: a delivery goes to the loopback URL it names, nowhere else.
        // No idle-connection timer either, so a test on tokio's paused clock sees no timer but
        // the ones it set (the same reason a zero post timeout means none).
        let mut delivery_client =
            reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).pool_idle_timeout(None);
        if !config.webhooks.post_timeout.is_zero() {
            delivery_client = delivery_client.timeout(config.webhooks.post_timeout);
        }
        let delivery_client = delivery_client
            .build()
            .map_err(|e| SimError::Internal { reason: format!("cannot build the webhook client: {e}") })?;
        let (shared, queue) = Shared::new(config, store);
        let shared = Arc::new(shared);
        let sender = tokio::spawn(webhooks::run_sender(Arc::downgrade(&shared), queue, delivery_client));
        let app = server::router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // Either a shutdown call or every handle dropped: stop serving.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "xledger-sim stopped serving");
            }
        });
        tracing::info!(addr = %local_addr, "xledger-sim listening");
        Ok(SimHandle {
            shared,
            addr: local_addr,
            server: Arc::new(Mutex::new(Some(RunningServer { stop, task, sender }))),
        })
    }
}

/// The stop signal, the task serving HTTP and the delivery sender, taken by the first `shutdown`.
#[derive(Debug)]
struct RunningServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    sender: JoinHandle<()>,
}

/// A running simulator: its address, its data, its faults and counters. Clones share it.
///
/// `Debug` never prints the API key.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Arc<Mutex<Option<RunningServer>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("addr", &self.addr).field("config", &self.shared.config).finish()
    }
}

impl SimHandle {
    /// The GraphQL endpoint, e.g. `http://127.0.0.1:41234/graphql`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// The admin API's base, e.g. `http://127.0.0.1:41234/admin` (same `Authorization` header).
    pub fn admin_url(&self) -> String {
        format!("http://{}/admin", self.addr)
    }

    /// The socket the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key to send as `Authorization: token <key>`.
    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// The entities served ([`SimConfig::entities`]), sorted by name.
    pub fn entities(&self) -> Vec<&'static xledger_model::EntitySpec> {
        self.shared.read_store().tables.values().map(|table| table.spec).collect()
    }

    /// Adds a row with a new dbId (and an ADDED feed entry, and webhook deliveries); returns the dbId.
    pub fn add(&self, entity: &str) -> Result<i64, SimError> {
        self.shared.mutate(|store| store.add(entity))
    }

    /// Gives a row new values, nested objects included, and `modifiedAt` = now (an UPDATED entry).
    /// False when the entity or the row does not exist.
    pub fn update(&self, entity: &str, db_id: i64) -> bool {
        self.shared.mutate(|store| store.update(entity, db_id))
    }

    /// Adds a row as an import or a feed bug would: in the truth, with `createdAt` = `modifiedAt`
    /// = now, but with no feed entry and no webhook delivery. Returns the dbId.
    pub fn silent_add(&self, entity: &str) -> Result<i64, SimError> {
        self.shared.mutate(|store| store.silent_add(entity))
    }

    /// Gives a row new values and `modifiedAt` = now, with no feed entry and no delivery: a
    /// `dbId + modifiedAt` scan sees it, the change feed does not. False when there is no such row.
    pub fn silent_update(&self, entity: &str, db_id: i64) -> bool {
        self.shared.mutate(|store| store.silent_update(entity, db_id, ModifiedAt::Now))
    }

    /// Like [`SimHandle::silent_update`] but `modifiedAt` keeps its value: only comparing values
    /// finds this change.
    pub fn silent_update_keeping_modified_at(&self, entity: &str, db_id: i64) -> bool {
        self.shared.mutate(|store| store.silent_update(entity, db_id, ModifiedAt::Keep))
    }

    /// Removes a row with no feed entry and no delivery. False when there is no such row.
    pub fn silent_delete(&self, entity: &str, db_id: i64) -> bool {
        self.shared.mutate(|store| store.silent_delete(entity, db_id))
    }

    /// A test fault: overwrites one field of a stored row (`path` dotted, e.g. `project.code`) with
    /// `value`, as a faulty server might send it. No feed entry, `modifiedAt` unchanged. `Ok(false)`
    /// when the row does not exist.
    pub fn corrupt(&self, entity: &str, db_id: i64, path: &str, value: serde_json::Value) -> Result<bool, SimError> {
        self.shared.write_store().corrupt(entity, db_id, path, value)
    }

    /// Removes a row (a DELETED entry). False when the entity or the row does not exist.
    pub fn delete(&self, entity: &str, db_id: i64) -> bool {
        self.shared.mutate(|store| store.delete(entity, db_id))
    }

    /// `count` adds, updates and deletes spread over the entities, seeded; some dbIds change
    /// several times. The clock does not move.
    pub fn random_changes(&self, count: usize, seed: u64) -> ChangeSummary {
        self.shared.mutate(|store| store.random_changes(count, seed))
    }

    /// Registers a webhook as `addWebhooks` does: `url` must be loopback, `serialized_payload` a
    /// subscription such as `{"query": "subscription { projectsMutated { edges { syncVersion node
    /// { dbId } } } }"}` (or the bare document). It starts `RUNNING`. Returns its dbId.
    pub fn add_webhook(&self, description: &str, url: &str, serialized_payload: &str) -> Result<i64, SimError> {
        let input = WebhookInput {
            description: Some(description.to_owned()),
            url: url.to_owned(),
            serialized_payload: serialized_payload.to_owned(),
        };
        let ids =
            self.shared.write_store().add_webhooks(&[input]).map_err(|reason| SimError::InvalidWebhook { reason })?;
        ids.first().copied().ok_or_else(|| SimError::Internal { reason: "addWebhooks returned no id".to_owned() })
    }

    /// Removes a webhook; its queued deliveries are discarded. False when there is none.
    pub fn remove_webhook(&self, db_id: i64) -> bool {
        self.shared.write_store().webhooks.remove(db_id)
    }

    /// Every webhook, by dbId.
    pub fn webhooks(&self) -> Vec<WebhookInfo> {
        self.shared.read_store().webhooks.infos()
    }

    /// Sets a webhook's state (`RUNNING` also forgets earlier failed posts). False when there is none.
    pub fn set_webhook_state(&self, db_id: i64, state: WebhookState) -> bool {
        self.shared.write_store().webhooks.set_state(db_id, state)
    }

    /// Replaces the delivery fault plan (and restarts its delivery count).
    pub fn set_delivery_faults(&self, plan: DeliveryFaultPlan) {
        *self.shared.lock_delivery_faults() = DeliveryFaultState::new(plan);
    }

    pub fn clear_delivery_faults(&self) {
        self.set_delivery_faults(DeliveryFaultPlan::default());
    }

    /// Waits (without polling) until every delivery queued so far has been posted, dropped or
    /// discarded; delayed ones included. On tokio's paused clock, delays pass by themselves.
    pub async fn deliveries_settled(&self) {
        self.shared.deliveries_settled().await;
    }

    pub fn delivery_counters(&self) -> DeliveryCounters {
        *self.shared.lock_delivery_counters()
    }

    /// Every delivery made or withheld since the start or the last reset, in the order settled.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.shared.lock_delivery_records().clone()
    }

    /// Zeroes the delivery counters and forgets the delivery records.
    pub fn reset_delivery_counters(&self) {
        *self.shared.lock_delivery_counters() = DeliveryCounters::default();
        self.shared.lock_delivery_records().clear();
    }

    /// The current nodes of `entity` exactly as the items query returns them (every registry
    /// column), sorted by dbId.
    pub fn truth(&self, entity: &str) -> Result<Vec<serde_json::Value>, SimError> {
        self.shared.read_store().truth(entity)
    }

    /// Replaces the fault plan (and restarts its request count).
    pub fn set_faults(&self, plan: FaultPlan) {
        *self.shared.lock_faults() = faults::FaultState::new(plan);
    }

    pub fn clear_faults(&self) {
        self.set_faults(FaultPlan::default());
    }

    /// GraphQL requests being answered right now (what the concurrency limit counts).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    pub fn counters(&self) -> Counters {
        self.shared.lock_counters().clone()
    }

    pub fn reset_counters(&self) {
        *self.shared.lock_counters() = Counters::default();
    }

    /// Moves the simulated clock forward; feed entries older than the retention are dropped.
    pub fn advance_clock(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.shared.write_store().advance_clock(by);
    }

    /// Sets the simulated clock (backwards too); feed entries older than the retention are dropped.
    pub fn set_clock(&self, at: DateTime<Utc>) {
        self.shared.write_store().set_clock(at);
    }

    /// The simulated clock: the time of new feed entries and of `modifiedAt` on changes.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.read_store().now()
    }

    /// Stops serving and waits for in-flight requests to finish; queued webhook deliveries are
    /// abandoned. Other clones see a closed port.
    pub async fn shutdown(self) {
        let server = self.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(RunningServer { stop, task, sender }) = server {
            let _ = stop.send(());
            if let Err(error) = task.await {
                tracing::warn!(%error, "xledger-sim server task failed");
            }
            sender.abort();
            let _ = sender.await;
            self.shared.abandon_deliveries();
        }
    }
}
