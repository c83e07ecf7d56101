//! Webhooks: the GraphQL operations of Xledger's sample, signed deliveries to a loopback
//! receiver, webhook states, and delivery faults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};
use xledger_sim::{
    DeliveryClock, DeliveryFault, DeliveryFaultPlan, DeliveryOutcome, SIGNATURE_HEADER, SimConfig, SimHandle,
    Simulator, Tampering, WebhookConfig, WebhookState,
};

/// A canonical base64url key (as real Xledger tokens are), so the receiver decodes it strictly.
fn api_key() -> String {
    URL_SAFE_NO_PAD.encode(b"a webhook signing secret of 32 b")
}

fn webhook_config() -> WebhookConfig {
    WebhookConfig { fault_after_failed_posts: 3, ..WebhookConfig::default() }
}

async fn start_sim(webhooks: WebhookConfig) -> SimHandle {
    Simulator::start(SimConfig { api_key: api_key(), webhooks, ..config(5) }).await.unwrap()
}

/// More answers than any test waits for at once.
const GATE_PERMITS: u32 = 1_000;

/// What the receiver got.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    date: String,
    signature: String,
    body: String,
    /// The receiver's verdict: signature valid and timestamp within 15 minutes.
    verified: bool,
}

/// A loopback receiver that verifies deliveries the way Xledger's sample does and answers 200,
/// 401 for a bad or replayed delivery, or the status it is told to.
#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    status: Arc<Mutex<StatusCode>>,
    /// Each answer waits for a permit (unlimited unless a test holds them back).
    gate: Arc<Semaphore>,
    key: Vec<u8>,
}

impl Receiver {
    async fn start(key: &str) -> (Receiver, String) {
        let receiver = Receiver {
            received: Arc::default(),
            arrived: Arc::new(Notify::new()),
            status: Arc::new(Mutex::new(StatusCode::OK)),
            gate: Arc::new(Semaphore::new(GATE_PERMITS as usize)),
            key: URL_SAFE_NO_PAD.decode(key).unwrap(),
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?code=function-key", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<Value> {
        self.received().iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
    }

    /// Waits until at least `count` deliveries arrived.
    async fn wait_for(&self, count: usize) {
        loop {
            let arrived = self.arrived.notified();
            if self.received.lock().unwrap().len() >= count {
                return;
            }
            arrived.await;
        }
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (date, signature) = (header("date"), header(SIGNATURE_HEADER));
    let unix = httpdate::parse_http_date(&date)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    let signed = unix.is_some_and(|unix| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&receiver.key).unwrap();
        mac.update(format!("{unix}.{body}").as_bytes());
        URL_SAFE_NO_PAD.decode(&signature).is_ok_and(|provided| mac.verify_slice(&provided).is_ok())
    });
    let recent = unix.is_some_and(|unix| (chrono::Utc::now().timestamp() - unix).abs() <= 15 * 60);
    let replayed = {
        let mut received = receiver.received.lock().unwrap();
        let replayed = received.iter().any(|r| r.date == date && r.signature == signature);
        received.push(Received { date, signature, body, verified: signed && recent });
        replayed
    };
    receiver.arrived.notify_waiters();
    let _permit = receiver.gate.acquire().await.unwrap();
    if !(signed && recent) || replayed {
        return StatusCode::UNAUTHORIZED;
    }
    *receiver.status.lock().unwrap()
}

/// The sample's subscription, as its `ProjectsSubscriptionJson` wraps it.
fn projects_payload(node: &str) -> String {
    json!({ "query": format!("subscription {{ projects: projectsMutated {{ edges {{ syncVersion node {{ {node} }} }} }} }}") })
        .to_string()
}

const REGISTER: &str = "mutation ($description: String, $url: String, $serializedPayload: String) {
  addWebhooks(inputs: [{ node: { description: $description, url: $url, serializedPayload: $serializedPayload } }]) {
    edges { node { dbId description url state { code } serializedPayload lastSuccessfulPost lastFailedPost } }
  }
}";

async fn register(sim: &SimHandle, url: &str, payload: &str) -> Answer {
    post(sim, REGISTER, json!({ "description": "All project events", "url": url, "serializedPayload": payload })).await
}

#[tokio::test]
async fn the_samples_operations_add_read_list_and_remove_a_webhook() {
    let sim = start_sim(webhook_config()).await;
    let payload = projects_payload("dbId code");
    let added = register(&sim, "http://127.0.0.1:9/projects", &payload).await;
    let node = &added.body["data"]["addWebhooks"]["edges"][0]["node"];
    let db_id = node["dbId"].as_str().unwrap().to_owned();
    assert_eq!(
        *node,
        json!({
            "dbId": db_id, "description": "All project events", "url": "http://127.0.0.1:9/projects",
            "state": { "code": "RUNNING" }, "serializedPayload": payload,
            "lastSuccessfulPost": null, "lastFailedPost": null,
        })
    );
    // `webhook(dbId: $dbId)` with `$dbId: ID`, given a number as the sample does.
    let state = post(
        &sim,
        "query($dbId: ID) { webhook(dbId: $dbId) { dbId state { code } } }",
        json!({ "dbId": db_id.parse::<i64>().unwrap() }),
    )
    .await;
    assert_eq!(state.body["data"]["webhook"], json!({ "dbId": db_id, "state": { "code": "RUNNING" } }));
    let list = post(
        &sim,
        "{ webhooks(first: 10) { edges { cursor node { dbId url } } pageInfo { hasNextPage } } }",
        json!({}),
    )
    .await;
    assert_eq!(list.body["data"]["webhooks"]["edges"][0]["node"]["dbId"], json!(db_id));
    assert_eq!(list.body["data"]["webhooks"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(sim.webhooks()[0].subscription_field, "projectsMutated");
    assert_eq!(sim.webhooks()[0].entity, "projects");

    let remove = "mutation($dbId: Int64String!) { removeWebhooks(dbIds: [$dbId]) { numAffected } }";
    let removed = post(&sim, remove, json!({ "dbId": db_id })).await;
    assert_eq!(removed.body["data"]["removeWebhooks"]["numAffected"], 1);
    let again = post(&sim, remove, json!({ "dbId": db_id })).await;
    assert_eq!(again.body["data"]["removeWebhooks"]["numAffected"], 0);
    let gone = post(&sim, "query($dbId: ID) { webhook(dbId: $dbId) { dbId } }", json!({ "dbId": db_id })).await;
    assert_eq!(gone.body["data"]["webhook"], Value::Null);
    assert_eq!(sim.counters().by_root_field["addWebhooks"].requests, 1);
}

#[tokio::test]
async fn add_webhooks_refuses_other_hosts_and_subscriptions_it_does_not_serve() {
    let sim = start_sim(webhook_config()).await;
    let good = projects_payload("dbId");
    for (url, payload, message) in [
        ("https://example.com/hook", good.clone(), "loopback"),
        ("http://10.0.0.1/hook", good.clone(), "loopback"),
        ("ftp://127.0.0.1/hook", good.clone(), "loopback"),
        (
            "http://localhost:1/hook",
            projects_payload("dbId salary"),
            "Cannot query field \"salary\" on type \"Project\".",
        ),
        (
            "http://localhost:1/hook",
            "subscription { invoicesMutated { edges { syncVersion } } }".into(),
            "projectsMutated",
        ),
        ("http://localhost:1/hook", "{ projects { edges { node { dbId } } } }".into(), "must hold a subscription"),
        (
            "http://localhost:1/hook",
            "subscription { projectsMutated { edges { syncVersion } } customersMutated { edges { syncVersion } } }"
                .into(),
            "exactly one root field",
        ),
        ("http://localhost:1/hook", "{\"variables\":{}}".into(), "without a \"query\""),
    ] {
        let answer = register(&sim, url, &payload).await;
        assert_eq!(answer.body["data"]["addWebhooks"], Value::Null, "{url} {payload}");
        assert_eq!(answer.body["errors"][0]["path"], json!(["addWebhooks"]));
        let text = answer.body["errors"][0]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text:?} should mention {message:?}");
    }
    assert!(sim.webhooks().is_empty());
    // A bare document works too, for every served entity, and ::1 is loopback.
    assert!(
        sim.add_webhook("t", "http://[::1]:1/t", "subscription { timesheetsMutated { edges { node { dbId } } } }")
            .is_ok()
    );
    let error = sim.add_webhook("t", "http://192.168.1.1/t", &good).unwrap_err();
    assert!(error.to_string().starts_with("webhook refused:"), "{error}");
    // Subscriptions are delivered, not served over HTTP.
    let refused = post(&sim, "subscription { projectsMutated { edges { syncVersion } } }", json!({})).await;
    assert_eq!(refused.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn a_mutation_posts_a_delivery_signed_as_the_sample_verifies_it() {
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    register(&sim, &url, &projects_payload("dbId code description")).await;
    let db_id = db_id_of(&sim.truth("projects").unwrap()[0]);
    assert!(sim.update("projects", db_id));
    let added = sim.add("projects").unwrap();
    assert!(sim.delete("projects", db_id), "deletions are not delivered by default");
    assert!(sim.update("customers", db_id_of(&sim.truth("customers").unwrap()[0])), "no subscription");
    sim.deliveries_settled().await;

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.verified), "{received:?}");
    let bodies = receiver.bodies();
    let edges: Vec<&Value> = bodies.iter().map(|b| &b["data"]["projects"]["edges"][0]).collect();
    assert_eq!(db_id_of(&edges[0]["node"]), db_id);
    assert_eq!(db_id_of(&edges[1]["node"]), added);
    let added_truth = sim.truth("projects").unwrap().into_iter().find(|n| db_id_of(n) == added).unwrap();
    assert_eq!(
        edges[1]["node"],
        json!({ "dbId": added, "code": added_truth["code"], "description": added_truth["description"] })
    );
    let versions: Vec<u64> = edges.iter().map(|e| e["syncVersion"].as_str().unwrap().parse().unwrap()).collect();
    assert!(versions[0] < versions[1], "{versions:?}");
    assert_eq!(bodies[0].as_object().unwrap().keys().collect::<Vec<_>>(), ["data"]);

    // The simulator's own signing agrees, with the `Date` header's seconds.
    let records = sim.deliveries();
    let headers = records[0].headers.clone().unwrap();
    assert_eq!(headers.signature, received[0].signature);
    assert_eq!(headers.date, received[0].date);
    assert_eq!(
        xledger_sim::webhook_signature(&api_key(), headers.unix_seconds, &records[0].body).unwrap(),
        headers.signature
    );
    assert_eq!(headers.signature.len(), 43, "unpadded base64url of 32 bytes");
    assert_eq!(records[0].outcome, DeliveryOutcome::Delivered { status: 200 });

    let counters = sim.delivery_counters();
    assert_eq!((counters.queued, counters.attempted, counters.succeeded, counters.failed), (2, 2, 2, 0));
    let hook = &sim.webhooks()[0];
    assert!(hook.last_successful_post.is_some() && hook.last_failed_post.is_none());
    let state = post(&sim, "{ webhooks { edges { node { lastSuccessfulPost } } } }", json!({})).await;
    assert!(state.body["data"]["webhooks"]["edges"][0]["node"]["lastSuccessfulPost"].is_string());
}

#[tokio::test]
async fn deletions_are_delivered_when_configured_with_only_the_db_id() {
    let sim = start_sim(WebhookConfig { deliver_deletions: true, ..webhook_config() }).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    sim.add_webhook("all", &url, &projects_payload("dbId code")).unwrap();
    let db_id = db_id_of(&sim.truth("projects").unwrap()[0]);
    assert!(sim.delete("projects", db_id));
    sim.deliveries_settled().await;
    assert_eq!(receiver.bodies()[0]["data"]["projects"]["edges"][0]["node"], json!({ "dbId": db_id, "code": null }));
    assert_eq!(sim.deliveries()[0].mutation, xledger_model::page::MutationType::Deleted);
}

#[tokio::test]
async fn silent_changes_send_no_delivery() {
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    let db_id = sim.silent_add("projects").unwrap();
    assert!(sim.silent_update("projects", db_id));
    assert!(sim.silent_delete("projects", db_id));
    sim.deliveries_settled().await;
    assert_eq!(sim.delivery_counters().queued, 0);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn deliveries_never_hold_up_mutations() {
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    let held = receiver.gate.acquire_many(GATE_PERMITS).await.unwrap();
    sim.add("projects").unwrap();
    receiver.wait_for(1).await;
    // The receiver is stuck answering the first delivery; mutations go on regardless.
    for _ in 0..20 {
        sim.add("projects").unwrap();
    }
    assert_eq!(sim.truth("projects").unwrap().len(), 26);
    assert_eq!(sim.delivery_counters().queued, 21);
    assert_eq!(sim.delivery_counters().attempted, 0, "the first post is still unanswered");
    drop(held);
    sim.deliveries_settled().await;
    assert_eq!(sim.delivery_counters().succeeded, 21);
    assert_eq!(receiver.received().len(), 21);
}

#[tokio::test]
async fn failed_posts_make_a_webhook_recovering_then_faulted_and_paused_ones_get_nothing() {
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    let hook = sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    *receiver.status.lock().unwrap() = StatusCode::INTERNAL_SERVER_ERROR;
    let mut states = Vec::new();
    for _ in 0..3 {
        sim.add("projects").unwrap();
        sim.deliveries_settled().await;
        states.push(sim.webhooks()[0].state);
    }
    assert_eq!(states, [WebhookState::Recovering, WebhookState::Recovering, WebhookState::Faulted]);
    assert_eq!(sim.webhooks()[0].failed_posts_in_a_row, 3);
    assert!(sim.webhooks()[0].last_failed_post.is_some());
    let state = post(&sim, "query($d: ID) { webhook(dbId: $d) { state { code } } }", json!({ "d": hook })).await;
    assert_eq!(state.body["data"]["webhook"]["state"]["code"], "FAULTED");
    sim.add("projects").unwrap();
    sim.deliveries_settled().await;
    assert_eq!(sim.delivery_counters().queued, 3, "a faulted webhook gets nothing");

    *receiver.status.lock().unwrap() = StatusCode::OK;
    assert!(sim.set_webhook_state(hook, WebhookState::Recovering));
    sim.add("projects").unwrap();
    sim.deliveries_settled().await;
    assert_eq!(sim.webhooks()[0].state, WebhookState::Running, "a success ends recovery");
    assert_eq!(sim.webhooks()[0].failed_posts_in_a_row, 0);

    assert!(sim.set_webhook_state(hook, WebhookState::Paused));
    sim.add("projects").unwrap();
    sim.deliveries_settled().await;
    assert_eq!(sim.delivery_counters().queued, 4);
    assert_eq!(sim.delivery_counters().failed, 3);
    assert_eq!(sim.delivery_counters().succeeded, 1);
    assert!(!sim.set_webhook_state(1, WebhookState::Running), "no such webhook");
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_post() {
    let sim = start_sim(webhook_config()).await;
    // A port nothing listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sim.add_webhook("all", &format!("http://127.0.0.1:{port}/hook"), &projects_payload("dbId")).unwrap();
    sim.add("projects").unwrap();
    sim.deliveries_settled().await;
    assert!(matches!(&sim.deliveries()[0].outcome, DeliveryOutcome::Failed { error } if !error.contains("127.0.0.1")));
    assert_eq!(sim.webhooks()[0].state, WebhookState::Recovering);
}

#[tokio::test]
async fn a_removed_webhooks_queued_deliveries_are_discarded() {
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    let hook = sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    sim.add("projects").unwrap();
    assert!(sim.remove_webhook(hook));
    sim.deliveries_settled().await;
    assert_eq!(sim.delivery_counters().discarded, 1);
    assert_eq!(sim.deliveries()[0].outcome, DeliveryOutcome::Discarded);
    assert!(receiver.received().is_empty());
}

/// Three projects added in one burst, with `plan`; the receiver's bodies' dbIds in arrival order.
async fn burst(plan: DeliveryFaultPlan) -> (SimHandle, Receiver, Vec<i64>) {
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    sim.set_delivery_faults(plan);
    // No await in between: all three are queued before the sender runs.
    let added: Vec<i64> = (0..3).map(|_| sim.add("projects").unwrap()).collect();
    sim.deliveries_settled().await;
    (sim, receiver, added)
}

fn arrival_order(receiver: &Receiver) -> Vec<i64> {
    receiver.bodies().iter().map(|b| db_id_of(&b["data"]["projects"]["edges"][0]["node"])).collect()
}

#[tokio::test]
async fn dropped_deliveries_never_arrive() {
    let (sim, receiver, added) = burst(DeliveryFaultPlan::default().every_nth(2, DeliveryFault::Drop)).await;
    assert_eq!(arrival_order(&receiver), [added[0], added[2]]);
    assert_eq!(sim.delivery_counters().dropped, 1);
    assert_eq!(sim.deliveries().iter().filter(|r| r.outcome == DeliveryOutcome::Dropped).count(), 1);
}

#[tokio::test]
async fn a_duplicated_delivery_is_a_byte_for_byte_replay() {
    let (sim, receiver, added) = burst(DeliveryFaultPlan::default().next(1, DeliveryFault::Duplicate)).await;
    let received = receiver.received();
    assert_eq!(arrival_order(&receiver), [added[0], added[0], added[1], added[2]]);
    assert_eq!(received[0], received[1]);
    assert!(received[0].verified, "both copies carry a valid signature");
    let outcomes: Vec<DeliveryOutcome> = sim.deliveries().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes[1], DeliveryOutcome::Refused { status: 401 }, "the receiver refused the replay");
    assert_eq!(sim.delivery_counters().duplicated, 1);
    assert_eq!(sim.webhooks()[0].state, WebhookState::Running, "later successes ended the recovery");
}

#[tokio::test]
async fn a_reordered_delivery_comes_after_the_next_one() {
    let (sim, receiver, added) = burst(DeliveryFaultPlan::default().next(1, DeliveryFault::Reorder)).await;
    assert_eq!(arrival_order(&receiver), [added[1], added[0], added[2]]);
    assert_eq!(sim.delivery_counters().reordered, 1);
    // Held back with nothing after it, it goes when the queue is empty.
    let (_, receiver, added) = burst(DeliveryFaultPlan::default().every_nth(3, DeliveryFault::Reorder)).await;
    assert_eq!(arrival_order(&receiver), added);
}

#[tokio::test]
async fn forged_and_stale_deliveries_are_refused_and_leave_the_webhook_alone() {
    let plan = DeliveryFaultPlan::default()
        .next(1, DeliveryFault::Forge)
        .every_nth(2, DeliveryFault::StaleTimestamp { age: Duration::from_secs(20 * 60) });
    let (sim, receiver, _) = burst(plan).await;
    let verdicts: Vec<bool> = receiver.received().iter().map(|r| r.verified).collect();
    assert_eq!(verdicts, [false, false, true]);
    let records = sim.deliveries();
    assert_eq!(records[0].tampering, Some(Tampering::Forged));
    assert_eq!(records[1].tampering, Some(Tampering::StaleTimestamp));
    let stale = records[1].headers.clone().unwrap();
    assert!(chrono::Utc::now().timestamp() - stale.unix_seconds >= 20 * 60);
    assert_eq!(
        xledger_sim::webhook_signature(&api_key(), stale.unix_seconds, &records[1].body).unwrap(),
        stale.signature,
        "correctly signed for its time"
    );
    let counters = sim.delivery_counters();
    assert_eq!((counters.forged, counters.stale, counters.failed, counters.succeeded), (1, 1, 2, 1));
    let hook = &sim.webhooks()[0];
    assert_eq!((hook.state, hook.failed_posts_in_a_row, hook.last_failed_post), (WebhookState::Running, 0, None));
}

#[tokio::test]
async fn a_delayed_delivery_is_overtaken_and_settles_on_the_paused_clock() {
    let config = WebhookConfig { post_timeout: Duration::ZERO, ..webhook_config() };
    let sim = start_sim(config).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    sim.set_delivery_faults(
        DeliveryFaultPlan::default().next(1, DeliveryFault::Delay { delay: Duration::from_secs(3600) }),
    );
    let added: Vec<i64> = (0..3).map(|_| sim.add("projects").unwrap()).collect();
    receiver.wait_for(2).await;
    assert_eq!(arrival_order(&receiver), [added[1], added[2]]);
    assert_eq!(sim.delivery_counters().delayed, 1);
    // The hour passes by itself once nothing else is left to do.
    tokio::time::pause();
    sim.deliveries_settled().await;
    assert_eq!(arrival_order(&receiver), [added[1], added[2], added[0]]);
}

#[tokio::test]
async fn seeded_delivery_faults_repeat_exactly() {
    let plan = || {
        DeliveryFaultPlan::default()
            .with_probability(0.3, 11, DeliveryFault::Drop)
            .with_probability(0.3, 12, DeliveryFault::Duplicate)
            .with_probability(0.2, 13, DeliveryFault::Forge)
            .with_probability(0.2, 14, DeliveryFault::Reorder)
    };
    let run = || async {
        let sim = start_sim(webhook_config()).await;
        let (receiver, url) = Receiver::start(&api_key()).await;
        sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
        sim.set_delivery_faults(plan());
        for _ in 0..30 {
            let db_id = sim.add("projects").unwrap();
            assert!(sim.update("projects", db_id));
        }
        sim.deliveries_settled().await;
        let outcomes: Vec<(i64, Option<Tampering>, bool, DeliveryOutcome)> =
            sim.deliveries().into_iter().map(|r| (r.db_id, r.tampering, r.duplicate, r.outcome)).collect();
        (outcomes, arrival_order(&receiver), sim.delivery_counters())
    };
    let (first, second) = (run().await, run().await);
    assert_eq!(first.0, second.0);
    assert_eq!(first.1, second.1);
    let counters = first.2;
    assert!(
        counters.dropped > 0 && counters.duplicated > 0 && counters.forged > 0 && counters.reordered > 0,
        "{counters:?}"
    );
    assert_eq!(counters.queued, counters.dropped + counters.attempted - counters.duplicated);
}

#[tokio::test]
async fn the_admin_api_manages_webhooks_faults_and_counters() {
    use reqwest::Method;
    let sim = start_sim(webhook_config()).await;
    let (receiver, url) = Receiver::start(&api_key()).await;
    let hook = sim.add_webhook("all", &url, &projects_payload("dbId")).unwrap();
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut request = client()
            .request(method, format!("{}{path}", sim.admin_url()))
            .header("Authorization", format!("token {}", sim.api_key()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, list) = call(Method::GET, "/webhooks", None).await;
    assert_eq!(list[0]["db_id"], hook);
    assert_eq!(list[0]["state"], "RUNNING");
    let plan = json!({ "rules": [{ "fault": { "kind": "drop" }, "when": { "kind": "next", "count": 1 } }] });
    assert_eq!(call(Method::PUT, "/webhooks/faults", Some(plan)).await.0, 204);
    sim.add("projects").unwrap();
    sim.add("projects").unwrap();
    let (_, settled) = call(Method::POST, "/webhooks/settled", None).await;
    assert_eq!((settled["dropped"].as_u64(), settled["succeeded"].as_u64()), (Some(1), Some(1)));
    assert_eq!(receiver.received().len(), 1);
    let (_, deliveries) = call(Method::GET, "/webhooks/deliveries", None).await;
    assert_eq!(deliveries.as_array().unwrap().len(), 2);
    let (_, changed) = call(Method::PUT, &format!("/webhooks/{hook}/state"), Some(json!({ "state": "PAUSED" }))).await;
    assert_eq!(changed, json!({ "changed": true }));
    assert_eq!(sim.webhooks()[0].state, WebhookState::Paused);
    assert_eq!(call(Method::DELETE, "/webhooks/faults", None).await.0, 204);
    assert_eq!(call(Method::DELETE, "/webhooks/counters", None).await.0, 204);
    assert_eq!(sim.delivery_counters(), xledger_sim::DeliveryCounters::default());
    assert!(sim.deliveries().is_empty());
    let (_, counters) = call(Method::GET, "/webhooks/counters", None).await;
    assert_eq!(counters["queued"], 0);
}

#[tokio::test]
async fn the_default_key_signs_too_and_the_simulated_clock_can_date_deliveries() {
    let config =
        SimConfig { webhooks: WebhookConfig { clock: DeliveryClock::Simulated, ..webhook_config() }, ..config(2) };
    let sim = Simulator::start(config).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sim.add_webhook("all", &format!("http://localhost:{port}/x"), &projects_payload("dbId")).unwrap();
    sim.add("projects").unwrap();
    sim.deliveries_settled().await;
    let headers = sim.deliveries()[0].headers.clone().unwrap();
    assert_eq!(headers.unix_seconds, start_time().timestamp());
    assert_eq!(headers.date, "Sun, 20 Oct 2024 10:00:00 GMT");
    let expected =
        xledger_sim::webhook_signature(xledger_sim::DEFAULT_API_KEY, headers.unix_seconds, &sim.deliveries()[0].body);
    assert_eq!(expected.unwrap(), headers.signature);
    assert!(xledger_sim::webhook_signature("not base64url!", 0, "{}").is_err());
}
