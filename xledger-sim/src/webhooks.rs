//! Webhooks: subscriptions registered with `addWebhooks`, and signed deliveries of mutations
//! POSTed to loopback URLs by a background task, with states and seeded delivery faults.
//!
//! Shapes follow Xledger's own sample (`xledger/graphql-samples`, `Webhooks-CSharp`): the body
//! is a GraphQL response of the subscription's selection, `{"data":{"<alias>":{"edges":
//! [{"syncVersion":"…","node":{…}}]}}}`; the `Date` header carries the timestamp and
//! `X-XL-Webhook-Signature` the base64url HMAC-SHA256 of `"{unix seconds}.{body}"`, keyed with
//! the base64url-decoded API token. What the sample does not show is documented as the
//! simulator's choice where it is made (deletions, batching, retries, the first state).

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::task::JoinSet;
use xledger_model::DbIdKind;
use xledger_model::page::MutationType;

use crate::error::SimError;
use crate::faults::{Trigger, fires, millis};
use crate::generate::push_json_string;
use crate::graphql::{NodeField, WebhookInput, plan_subscription, project_node};
use crate::rng::SimRng;
use crate::server::Shared;
use crate::store::{Store, Table};

/// The header carrying a delivery's signature (the timestamp travels in `Date`).
pub const SIGNATURE_HEADER: &str = "X-XL-Webhook-Signature";

/// A webhook's `state { code }`. Deliveries are queued and posted only while it is `RUNNING` or
/// `RECOVERING`; mutations made while it is `PAUSED` or `FAULTED` are never delivered (the
/// change feed still has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WebhookState {
    /// What `addWebhooks` creates (the simulator's choice: the real first state is not shown).
    Running,
    /// Set by tests only.
    Paused,
    /// After a failed post; the next successful post makes it `RUNNING` again.
    Recovering,
    /// After [`WebhookConfig::fault_after_failed_posts`] failed posts in a row (or set by a test).
    Faulted,
}

impl WebhookState {
    /// The `state { code }` value.
    pub fn code(self) -> &'static str {
        match self {
            WebhookState::Running => "RUNNING",
            WebhookState::Paused => "PAUSED",
            WebhookState::Recovering => "RECOVERING",
            WebhookState::Faulted => "FAULTED",
        }
    }

    fn delivers(self) -> bool {
        matches!(self, WebhookState::Running | WebhookState::Recovering)
    }
}

/// Which clock dates a delivery (its `Date` header and signature) and its post times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeliveryClock {
    /// The machine's clock, so a receiver checking timestamps against its own clock accepts
    /// deliveries however far a test moved the simulated clock.
    #[default]
    System,
    /// The simulated clock ([`crate::SimHandle::now`]): for receivers whose clock a test injects.
    Simulated,
}

/// How deliveries are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// A post not answered within this time fails; zero means no timeout (for tests on tokio's
    /// paused clock, where a timer would fire as soon as the runtime waits for the receiver).
    pub post_timeout: Duration,
    /// Failed posts in a row after which a webhook becomes `FAULTED` (0: never).
    pub fault_after_failed_posts: u32,
    pub clock: DeliveryClock,
    /// Whether deleting a row sends a delivery. No source shows a deletion in a payload, so the
    /// default is no; when on, the edge's node carries `dbId` and nulls.
    pub deliver_deletions: bool,
}

impl Default for WebhookConfig {
    /// 10 s timeout, `FAULTED` after 5 failed posts in a row, the system clock, no deletions.
    fn default() -> Self {
        WebhookConfig {
            post_timeout: Duration::from_secs(10),
            fault_after_failed_posts: 5,
            clock: DeliveryClock::System,
            deliver_deletions: false,
        }
    }
}

/// A webhook as tests see it ([`crate::SimHandle::webhooks`], `GET /admin/webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInfo {
    pub db_id: i64,
    pub description: Option<String>,
    pub url: String,
    /// The entity its subscription follows, e.g. `projects`.
    pub entity: String,
    /// The subscription's root field, e.g. `projectsMutated`.
    pub subscription_field: String,
    pub state: WebhookState,
    pub last_successful_post: Option<DateTime<Utc>>,
    pub last_failed_post: Option<DateTime<Utc>>,
    pub failed_posts_in_a_row: u32,
}

/// What goes wrong with one delivery. Forged and stale deliveries stand for a post Xledger did
/// not make (an attacker's, a replay): they replace the genuine delivery, and their answer does
/// not change the webhook's state or post times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryFault {
    /// Never sent.
    Drop,
    /// Sent twice, byte for byte the same (body, `Date`, signature): a replay.
    Duplicate,
    /// Sent after `delay`, while later deliveries go on: they overtake it.
    Delay {
        #[serde(with = "millis", rename = "delay_ms")]
        delay: Duration,
    },
    /// Held back and sent after the next delivery (or when the queue is empty).
    Reorder,
    /// Signed with a wrong key.
    Forge,
    /// Dated `age` ago, correctly signed for that time.
    StaleTimestamp {
        #[serde(with = "millis", rename = "age_ms")]
        age: Duration,
    },
}

/// One delivery fault and when it happens (deliveries counted from when the plan was set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFaultRule {
    pub fault: DeliveryFault,
    pub when: Trigger,
}

/// What goes wrong with deliveries, set through [`crate::SimHandle::set_delivery_faults`] or
/// `PUT /admin/webhooks/faults`. Every rule that fires applies to the delivery (a drop wins;
/// delays add up), so one delivery can be, say, duplicated and delayed.
///
/// ```
/// use std::time::Duration;
/// use xledger_sim::{DeliveryFault, DeliveryFaultPlan};
/// let plan = DeliveryFaultPlan::default()
///     .next(1, DeliveryFault::Forge)
///     .every_nth(3, DeliveryFault::Duplicate)
///     .with_probability(0.2, 7, DeliveryFault::Delay { delay: Duration::from_millis(500) });
/// let json = serde_json::to_string(&plan).unwrap();
/// assert_eq!(serde_json::from_str::<DeliveryFaultPlan>(&json).unwrap(), plan);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFaultPlan {
    #[serde(default)]
    pub rules: Vec<DeliveryFaultRule>,
}

impl DeliveryFaultPlan {
    /// Adds a rule: the next `count` deliveries get `fault`.
    #[must_use]
    pub fn next(mut self, count: u64, fault: DeliveryFault) -> Self {
        self.rules.push(DeliveryFaultRule { fault, when: Trigger::Next { count } });
        self
    }

    /// Adds a rule: every `n`-th delivery gets `fault`.
    #[must_use]
    pub fn every_nth(mut self, n: u64, fault: DeliveryFault) -> Self {
        self.rules.push(DeliveryFaultRule { fault, when: Trigger::EveryNth { n } });
        self
    }

    /// Adds a rule: each delivery gets `fault` with `probability` (seeded, so repeatable).
    #[must_use]
    pub fn with_probability(mut self, probability: f64, seed: u64, fault: DeliveryFault) -> Self {
        self.rules.push(DeliveryFaultRule { fault, when: Trigger::Probability { probability, seed } });
        self
    }
}

/// Counts of deliveries since the start or the last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCounters {
    /// Deliveries rendered by mutations and queued.
    pub queued: u64,
    /// HTTP posts made (a duplicated delivery makes two); `succeeded + failed`.
    pub attempted: u64,
    /// Posts answered with a 2xx status.
    pub succeeded: u64,
    /// Posts answered otherwise, or not answered (refused connection, timeout).
    pub failed: u64,
    pub dropped: u64,
    /// Not sent because the webhook was removed, paused or faulted by the time of sending.
    pub discarded: u64,
    pub duplicated: u64,
    pub delayed: u64,
    pub reordered: u64,
    pub forged: u64,
    pub stale: u64,
}

/// One delivery as the simulator made it (or did not), for tests to inspect or replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub webhook: i64,
    pub entity: String,
    pub db_id: i64,
    pub mutation: MutationType,
    /// The edge's `syncVersion`: increases with every mutation of the tenant.
    pub sync_version: String,
    pub url: String,
    pub body: String,
    /// `None` when the delivery was dropped or discarded before it was signed.
    pub headers: Option<DeliveryHeaders>,
    /// The second post of a duplicated delivery.
    pub duplicate: bool,
    pub tampering: Option<Tampering>,
    pub outcome: DeliveryOutcome,
}

/// The headers a delivery was sent with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryHeaders {
    /// What was signed: `"{unix_seconds}.{body}"`.
    pub unix_seconds: i64,
    /// The `Date` header (an HTTP date of `unix_seconds`).
    pub date: String,
    /// The `X-XL-Webhook-Signature` header.
    pub signature: String,
}

/// How a delivery was made up, when it was not genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tampering {
    Forged,
    StaleTimestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Answered with a 2xx status.
    Delivered {
        status: u16,
    },
    /// Answered with another status.
    Refused {
        status: u16,
    },
    /// No answer: connection refused, timeout, a URL that is not loopback.
    Failed {
        error: String,
    },
    Dropped,
    Discarded,
}

/// The base64url HMAC-SHA256 of `"{unix_seconds}.{body}"` keyed with the base64url-decoded API
/// key: the `X-XL-Webhook-Signature` of a delivery (unpadded, as .NET's `Base64UrlEncode` writes).
/// `Err` when the key is not base64url.
pub fn webhook_signature(api_key: &str, unix_seconds: i64, body: &str) -> Result<String, SimError> {
    sign(&signing_key(api_key)?, unix_seconds, body)
}

/// The HMAC key of an API token: its base64url decoding. Padding is optional and unused trailing
/// bits are ignored, so a key such as the default `xledger-sim-key` decodes too; a real token,
/// which Xledger's sample requires to round-trip through base64url, decodes the same either way.
pub(crate) fn signing_key(api_key: &str) -> Result<Vec<u8>, SimError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(api_key.trim()).map_err(|_| SimError::InvalidWebhook {
        reason: "the API key is not base64url, so deliveries cannot be signed".to_owned(),
    })
}

fn sign(key: &[u8], unix_seconds: i64, body: &str) -> Result<String, SimError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| SimError::InvalidWebhook { reason: format!("cannot key HMAC-SHA256: {e}") })?;
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// `Ok` with the parsed URL when it is `http(s)` to `127.0.0.1`, `::1` or `localhost`: the
/// simulator never posts anywhere else.
pub(crate) fn loopback_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("the webhook URL does not parse: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !matches!(parsed.scheme(), "http" | "https") || !loopback {
        return Err("this simulator delivers only to http(s) URLs on loopback (127.0.0.1, ::1, localhost)".to_owned());
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------------
// The registry (part of the simulated tenant, inside the store).
// ---------------------------------------------------------------------------------------------

/// A parsed subscription: the entity, the root field and its response key, and what an edge shows.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) entity: &'static str,
    pub(crate) field: String,
    pub(crate) key: String,
    pub(crate) connection: Vec<(String, SubscriptionField)>,
}

#[derive(Debug)]
pub(crate) enum SubscriptionField {
    Typename(String),
    Edges(Vec<(String, MutatedEdgeField)>),
}

#[derive(Debug)]
pub(crate) enum MutatedEdgeField {
    SyncVersion,
    Typename(String),
    Node(Vec<(String, NodeField)>),
}

#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) db_id: i64,
    pub(crate) description: Option<String>,
    pub(crate) url: String,
    pub(crate) serialized_payload: String,
    pub(crate) subscription: Subscription,
    pub(crate) state: WebhookState,
    pub(crate) last_successful_post: Option<DateTime<Utc>>,
    pub(crate) last_failed_post: Option<DateTime<Utc>>,
    failed_posts_in_a_row: u32,
}

impl Webhook {
    fn info(&self) -> WebhookInfo {
        WebhookInfo {
            db_id: self.db_id,
            description: self.description.clone(),
            url: self.url.clone(),
            entity: self.subscription.entity.to_owned(),
            subscription_field: self.subscription.field.clone(),
            state: self.state,
            last_successful_post: self.last_successful_post,
            last_failed_post: self.last_failed_post,
            failed_posts_in_a_row: self.failed_posts_in_a_row,
        }
    }
}

/// A delivery rendered at mutation time, waiting for the sender.
#[derive(Debug, Clone)]
pub(crate) struct QueuedDelivery {
    pub(crate) webhook: i64,
    pub(crate) entity: &'static str,
    pub(crate) db_id: i64,
    pub(crate) mutation: MutationType,
    pub(crate) sync_version: u64,
    pub(crate) url: String,
    pub(crate) body: String,
}

/// The tenant's webhooks.
#[derive(Debug)]
pub(crate) struct WebhookRegistry {
    deliver_deletions: bool,
    last_db_id: i64,
    hooks: BTreeMap<i64, Webhook>,
}

impl WebhookRegistry {
    pub(crate) fn new(deliver_deletions: bool) -> WebhookRegistry {
        // Ids well away from the entities' so a mix-up shows.
        WebhookRegistry { deliver_deletions, last_db_id: 700_000, hooks: BTreeMap::new() }
    }

    pub(crate) fn get(&self, db_id: i64) -> Option<&Webhook> {
        self.hooks.get(&db_id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Webhook> {
        self.hooks.values()
    }

    pub(crate) fn remove(&mut self, db_id: i64) -> bool {
        self.hooks.remove(&db_id).is_some()
    }

    pub(crate) fn infos(&self) -> Vec<WebhookInfo> {
        self.hooks.values().map(Webhook::info).collect()
    }

    /// Sets a state; `RUNNING` also forgets earlier failures. False when there is no such webhook.
    pub(crate) fn set_state(&mut self, db_id: i64, state: WebhookState) -> bool {
        let Some(hook) = self.hooks.get_mut(&db_id) else { return false };
        hook.state = state;
        if state == WebhookState::Running {
            hook.failed_posts_in_a_row = 0;
        }
        true
    }

    /// Records the answer to a genuine post: post times, failures in a row, the state.
    fn record_post(&mut self, db_id: i64, succeeded: bool, at: DateTime<Utc>, fault_after: u32) {
        let Some(hook) = self.hooks.get_mut(&db_id) else { return };
        if succeeded {
            hook.last_successful_post = Some(at);
            hook.failed_posts_in_a_row = 0;
            if hook.state == WebhookState::Recovering {
                hook.state = WebhookState::Running;
            }
            return;
        }
        hook.last_failed_post = Some(at);
        hook.failed_posts_in_a_row = hook.failed_posts_in_a_row.saturating_add(1);
        if !hook.state.delivers() {
            return;
        }
        hook.state = if fault_after > 0 && hook.failed_posts_in_a_row >= fault_after {
            WebhookState::Faulted
        } else {
            WebhookState::Recovering
        };
    }

    /// Renders, for every delivering webhook subscribed to `table`'s entity, the delivery of one
    /// mutation of row `db_id` (already applied: a deleted row is gone) into `outbox`.
    pub(crate) fn deliveries_for(
        &self,
        table: &Table,
        db_id: i64,
        mutation: MutationType,
        sync_version: u64,
        outbox: &mut Vec<QueuedDelivery>,
    ) {
        if mutation == MutationType::Deleted && !self.deliver_deletions {
            return;
        }
        let subscribed = self.hooks.values().filter(|h| h.subscription.entity == table.spec.name && h.state.delivers());
        for hook in subscribed {
            outbox.push(QueuedDelivery {
                webhook: hook.db_id,
                entity: table.spec.name,
                db_id,
                mutation,
                sync_version,
                url: hook.url.clone(),
                body: render_delivery(&hook.subscription, table, db_id, sync_version),
            });
        }
    }
}

/// `{"data":{"<key>":{"edges":[{"syncVersion":"<n>","node":{…}}]}}}`, in the subscription's
/// field order and aliases; one edge per delivery (the simulator's choice: one mutation, one post).
fn render_delivery(subscription: &Subscription, table: &Table, db_id: i64, sync_version: u64) -> String {
    let deleted_stub;
    let node = match table.rows.get(&db_id) {
        Some(row) => &*row.node,
        None => {
            deleted_stub = match table.spec.db_id_kind {
                DbIdKind::Int64String => format!("{{\"dbId\":\"{db_id}\"}}"),
                DbIdKind::Int => format!("{{\"dbId\":{db_id}}}"),
            };
            &deleted_stub
        }
    };
    let mut out = String::with_capacity(node.len() + 128);
    out.push_str("{\"data\":{");
    push_json_string(&subscription.key, &mut out);
    out.push_str(":{");
    for (i, (key, field)) in subscription.connection.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(key, &mut out);
        out.push(':');
        match field {
            SubscriptionField::Typename(name) => push_json_string(name, &mut out),
            SubscriptionField::Edges(edge) => {
                out.push_str("[{");
                for (j, (edge_key, edge_field)) in edge.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_json_string(edge_key, &mut out);
                    out.push(':');
                    match edge_field {
                        // Opaque to clients (a string: Xledger's sample, commit 8b43512).
                        MutatedEdgeField::SyncVersion => push_json_string(&sync_version.to_string(), &mut out),
                        MutatedEdgeField::Typename(name) => push_json_string(name, &mut out),
                        MutatedEdgeField::Node(fields) => project_node(node, fields, &mut out),
                    }
                }
                out.push_str("}]");
            }
        }
    }
    out.push_str("}}}");
    out
}

impl Store {
    /// Registers webhooks (all or none): each URL must be loopback and each payload a subscription
    /// the simulator serves. Returns the new dbIds in input order.
    pub(crate) fn add_webhooks(&mut self, inputs: &[WebhookInput]) -> Result<Vec<i64>, String> {
        let mut planned = Vec::with_capacity(inputs.len());
        for input in inputs {
            loopback_url(&input.url)?;
            planned.push(plan_subscription(self, &input.serialized_payload)?);
        }
        let mut ids = Vec::with_capacity(inputs.len());
        for (input, subscription) in inputs.iter().zip(planned) {
            self.webhooks.last_db_id += 1;
            let db_id = self.webhooks.last_db_id;
            let hook = Webhook {
                db_id,
                description: input.description.clone(),
                url: input.url.clone(),
                serialized_payload: input.serialized_payload.clone(),
                subscription,
                state: WebhookState::Running,
                last_successful_post: None,
                last_failed_post: None,
                failed_posts_in_a_row: 0,
            };
            self.webhooks.hooks.insert(db_id, hook);
            ids.push(db_id);
        }
        Ok(ids)
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery faults and the sender.
// ---------------------------------------------------------------------------------------------

/// A delivery fault plan and its progress.
#[derive(Debug)]
pub(crate) struct DeliveryFaultState {
    plan: DeliveryFaultPlan,
    seen: u64,
    remaining: Vec<u64>,
    rngs: Vec<SimRng>,
}

/// What happens to one delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DeliveryFate {
    drop: bool,
    duplicate: bool,
    delay: Duration,
    reorder: bool,
    forge: bool,
    stale_by: Option<Duration>,
}

impl DeliveryFaultState {
    pub(crate) fn new(plan: DeliveryFaultPlan) -> DeliveryFaultState {
        let remaining =
            plan.rules.iter().map(|r| if let Trigger::Next { count } = r.when { count } else { 0 }).collect();
        let rngs = plan
            .rules
            .iter()
            .map(|r| SimRng::new(if let Trigger::Probability { seed, .. } = r.when { seed } else { 0 }))
            .collect();
        DeliveryFaultState { plan, seen: 0, remaining, rngs }
    }

    fn decide(&mut self) -> DeliveryFate {
        self.seen += 1;
        let mut fate = DeliveryFate::default();
        for (index, rule) in self.plan.rules.iter().enumerate() {
            if !fires(&rule.when, self.seen, self.remaining.get(index).copied(), self.rngs.get_mut(index)) {
                continue;
            }
            if let Some(left) = self.remaining.get_mut(index) {
                *left = left.saturating_sub(1);
            }
            match rule.fault {
                DeliveryFault::Drop => fate.drop = true,
                DeliveryFault::Duplicate => fate.duplicate = true,
                DeliveryFault::Delay { delay } => fate.delay += delay,
                DeliveryFault::Reorder => fate.reorder = true,
                DeliveryFault::Forge => fate.forge = true,
                DeliveryFault::StaleTimestamp { age } => fate.stale_by = Some(age),
            }
        }
        fate
    }
}

/// Sends queued deliveries one at a time, in mutation order, until the simulator is gone. Holds
/// the shared state only weakly (the queue's sender lives in it), so dropping every handle ends it.
pub(crate) async fn run_sender(
    shared: Weak<Shared>,
    mut queue: UnboundedReceiver<QueuedDelivery>,
    client: reqwest::Client,
) {
    let mut held: Option<(QueuedDelivery, DeliveryFate)> = None;
    let mut delayed = JoinSet::new();
    loop {
        let delivery = match queue.try_recv() {
            Ok(delivery) => delivery,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if let Some((delivery, fate)) = held.take() {
                    dispatch(&shared, &client, delivery, fate, &mut delayed).await;
                    continue;
                }
                tokio::select! {
                    received = queue.recv() => match received {
                        Some(delivery) => delivery,
                        None => break,
                    },
                    Some(_) = delayed.join_next(), if !delayed.is_empty() => continue,
                }
            }
        };
        let Some(strong) = shared.upgrade() else { break };
        let fate = strong.lock_delivery_faults().decide();
        {
            let mut counters = strong.lock_delivery_counters();
            counters.dropped += u64::from(fate.drop);
            counters.reordered += u64::from(fate.reorder && !fate.drop && held.is_none());
        }
        drop(strong);
        if fate.drop {
            finish(&shared, unsent_record(&delivery, DeliveryOutcome::Dropped));
            continue;
        }
        if fate.reorder && held.is_none() {
            held = Some((delivery, fate));
            continue;
        }
        dispatch(&shared, &client, delivery, fate, &mut delayed).await;
        if let Some((delivery, fate)) = held.take() {
            dispatch(&shared, &client, delivery, fate, &mut delayed).await;
        }
    }
}

/// Posts a delivery now, or after its delay on a task of its own.
async fn dispatch(
    shared: &Weak<Shared>,
    client: &reqwest::Client,
    delivery: QueuedDelivery,
    fate: DeliveryFate,
    delayed: &mut JoinSet<()>,
) {
    if fate.delay.is_zero() {
        attempt(shared, client, delivery, fate).await;
        return;
    }
    if let Some(strong) = shared.upgrade() {
        strong.lock_delivery_counters().delayed += 1;
    }
    let (shared, client) = (shared.clone(), client.clone());
    delayed.spawn(async move {
        tokio::time::sleep(fate.delay).await;
        attempt(&shared, &client, delivery, fate).await;
    });
}

/// Signs and posts one delivery (twice when duplicated), records the outcome, and counts the
/// delivery as settled.
async fn attempt(shared: &Weak<Shared>, client: &reqwest::Client, delivery: QueuedDelivery, fate: DeliveryFate) {
    let Some(strong) = shared.upgrade() else { return };
    let (delivers, simulated_now) = {
        let store = strong.read_store();
        (store.webhooks.get(delivery.webhook).is_some_and(|h| h.state.delivers()), store.now())
    };
    if !delivers {
        strong.lock_delivery_counters().discarded += 1;
        finish(shared, unsent_record(&delivery, DeliveryOutcome::Discarded));
        return;
    }
    let config = strong.config.webhooks.clone();
    let now = match config.clock {
        DeliveryClock::System => Utc::now(),
        DeliveryClock::Simulated => simulated_now,
    };
    let dated = fate.stale_by.map_or(now, |age| now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX));
    let tampering = if fate.forge { Some(Tampering::Forged) } else { fate.stale_by.map(|_| Tampering::StaleTimestamp) };
    let key = if fate.forge { Ok(b"not the API key".to_vec()) } else { signing_key(&strong.config.api_key) };
    drop(strong);
    let signature = key.and_then(|key| sign(&key, dated.timestamp(), &delivery.body));
    let headers = match signature {
        Ok(signature) => DeliveryHeaders { unix_seconds: dated.timestamp(), date: http_date(dated), signature },
        Err(error) => {
            let outcome = DeliveryOutcome::Failed { error: error.to_string() };
            finish(shared, unsent_record(&delivery, outcome));
            return;
        }
    };
    let posts = if fate.duplicate { 2 } else { 1 };
    let mut records = Vec::with_capacity(posts);
    for post_index in 0..posts {
        let outcome = post(client, &delivery, &headers).await;
        let Some(strong) = shared.upgrade() else { return };
        let succeeded = matches!(outcome, DeliveryOutcome::Delivered { .. });
        {
            let mut counters = strong.lock_delivery_counters();
            counters.attempted += 1;
            counters.succeeded += u64::from(succeeded);
            counters.failed += u64::from(!succeeded);
            counters.duplicated += u64::from(post_index > 0);
            counters.forged += u64::from(post_index == 0 && tampering == Some(Tampering::Forged));
            counters.stale += u64::from(post_index == 0 && tampering == Some(Tampering::StaleTimestamp));
        }
        if tampering.is_none() {
            strong.write_store().webhooks.record_post(
                delivery.webhook,
                succeeded,
                dated,
                config.fault_after_failed_posts,
            );
        }
        records.push(DeliveryRecord {
            headers: Some(headers.clone()),
            duplicate: post_index > 0,
            tampering,
            outcome,
            ..unsent_record(&delivery, DeliveryOutcome::Dropped)
        });
    }
    if let Some(strong) = shared.upgrade() {
        strong.lock_delivery_records().extend(records);
        strong.delivery_settled();
    }
}

async fn post(client: &reqwest::Client, delivery: &QueuedDelivery, headers: &DeliveryHeaders) -> DeliveryOutcome {
    let url = match loopback_url(&delivery.url) {
        Ok(url) => url,
        Err(error) => return DeliveryOutcome::Failed { error },
    };
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::DATE, &headers.date)
        .header(SIGNATURE_HEADER, &headers.signature)
        .body(delivery.body.clone())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            DeliveryOutcome::Delivered { status: response.status().as_u16() }
        }
        Ok(response) => DeliveryOutcome::Refused { status: response.status().as_u16() },
        // The URL may carry a function key: keep it out of the error text.
        Err(error) => DeliveryOutcome::Failed { error: error.without_url().to_string() },
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) of a whole second.
fn http_date(at: DateTime<Utc>) -> String {
    let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds))
}

fn unsent_record(delivery: &QueuedDelivery, outcome: DeliveryOutcome) -> DeliveryRecord {
    DeliveryRecord {
        webhook: delivery.webhook,
        entity: delivery.entity.to_owned(),
        db_id: delivery.db_id,
        mutation: delivery.mutation,
        sync_version: delivery.sync_version.to_string(),
        url: delivery.url.clone(),
        body: delivery.body.clone(),
        headers: None,
        duplicate: false,
        tampering: None,
        outcome,
    }
}

/// Records a delivery that was not posted and counts it as settled.
fn finish(shared: &Weak<Shared>, record: DeliveryRecord) {
    if let Some(strong) = shared.upgrade() {
        strong.lock_delivery_records().push(record);
        strong.delivery_settled();
    }
}
