//! Paging items, change feeds and `dbId_in` chunks: which variables go out, when the stream ends,
//! and how a stuck cursor ends it with an error instead of a loop.

use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request};
use xledger_client::{ErrorKind, ItemsPage, RequestContext, XledgerClient};
use xledger_model::page::{MutationType, node_db_id};
use xledger_model::{EntitySpec, entity};

use crate::common::{after_is, client, delta_body, json_response, page_body, paused_config, variables};

fn timesheets() -> &'static EntitySpec {
    entity("timesheets").expect("built-in entity")
}

fn projects() -> &'static EntitySpec {
    entity("projects").expect("built-in entity")
}

fn node(id: &str) -> Value {
    json!({ "dbId": id, "workingHours": "7.50", "project": null })
}

async fn mount_page(server: &MockServer, after: Option<&'static str>, body: Value) {
    Mock::given(method("POST")).and(after_is(after)).respond_with(json_response(body)).mount(server).await;
}

async fn collect_items(
    client: &XledgerClient,
    after: Option<String>,
) -> Vec<Result<ItemsPage, xledger_client::ClientError>> {
    client.items_pages(timesheets(), 2, after).collect().await
}

#[tokio::test(start_paused = true)]
async fn items_pages_follow_the_last_cursor_until_has_next_page_is_false() {
    let server = crate::common::server().await;
    mount_page(&server, None, page_body("timesheets", &[("c1", node("1")), ("c2", node("2"))], true)).await;
    mount_page(&server, Some("c2"), page_body("timesheets", &[("c3", node("3")), ("c4", node("4"))], true)).await;
    mount_page(&server, Some("c4"), page_body("timesheets", &[("c5", node("5"))], false)).await;
    let client = client(paused_config(&server));

    let pages: Vec<ItemsPage> = client.items_pages(timesheets(), 2, None).try_collect().await.expect("three pages");

    let ids: Vec<i64> = pages.iter().flat_map(|p| p.nodes().map(|n| node_db_id(n).expect("a dbId"))).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let cursors: Vec<_> = pages.iter().map(|p| (p.last_cursor(), p.has_next_page())).collect();
    assert_eq!(cursors, [(Some("c2"), true), (Some("c4"), true), (Some("c5"), false)]);
    assert_eq!(pages[2].nodes().next(), Some(r#"{"dbId":"5","project":null,"workingHours":"7.50"}"#));
    let requests = server.received_requests().await.expect("recording is on");
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| variables(r)["first"] == json!(2)));
    assert!(crate::common::query(&requests[0]).starts_with("query TimesheetsPage("));
}

#[tokio::test(start_paused = true)]
async fn items_pages_start_after_the_given_cursor() {
    let server = crate::common::server().await;
    mount_page(&server, Some("c4"), page_body("timesheets", &[("c5", node("5"))], false)).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, Some("c4".to_string())).await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().map(|p| p.len()).ok(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_cursor_that_does_not_advance_ends_the_stream_with_an_error() {
    let server = crate::common::server().await;
    mount_page(&server, None, page_body("timesheets", &[("c1", node("1"))], true)).await;
    mount_page(&server, Some("c1"), page_body("timesheets", &[("c1", node("1"))], true)).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;

    assert_eq!(pages.len(), 2, "one good page, then the error, then the end");
    let err = pages[1].as_ref().expect_err("stuck cursor");
    assert_eq!(err.kind(), &ErrorKind::CursorDidNotAdvance);
    assert_eq!(err.context(), &RequestContext::entity("timesheets", "TimesheetsPage").with_page(2));
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_cursor_cycle_is_caught_as_not_advancing() {
    let server = crate::common::server().await;
    mount_page(&server, None, page_body("timesheets", &[("c1", node("1"))], true)).await;
    mount_page(&server, Some("c1"), page_body("timesheets", &[("c2", node("2"))], true)).await;
    mount_page(&server, Some("c2"), page_body("timesheets", &[("c1", node("1"))], true)).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;

    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2].as_ref().err().map(|e| e.kind().clone()), Some(ErrorKind::CursorDidNotAdvance));
}

#[tokio::test(start_paused = true)]
async fn an_empty_page_claiming_a_next_page_ends_the_stream_with_an_error() {
    let server = crate::common::server().await;
    mount_page(&server, None, page_body("timesheets", &[], true)).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().err().map(|e| e.kind().clone()), Some(ErrorKind::EmptyPageWithNextPage));
}

#[tokio::test(start_paused = true)]
async fn an_empty_last_page_ends_the_stream_cleanly() {
    let server = crate::common::server().await;
    mount_page(&server, None, page_body("timesheets", &[], false)).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().map(|p| p.len()).ok(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_page_size_above_the_limit_is_refused_without_a_request() {
    let server = crate::common::server().await;
    let client = client(paused_config(&server));

    let pages: Vec<_> = client.items_pages(timesheets(), 10_001, None).collect().await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().err().map(|e| e.kind().clone()), Some(ErrorKind::InvalidArgument));
    assert_eq!(client.stats().requests, 0);
}

fn db_ids_are(expected: Value) -> impl Fn(&Request) -> bool + Send + Sync + 'static {
    move |request: &Request| variables(request)["dbIds"] == expected
}

#[tokio::test(start_paused = true)]
async fn items_by_db_ids_sends_string_ids_for_int64string_entities_and_pages_each_chunk() {
    let server = crate::common::server().await;
    let chunk_one = json!(["11", "12"]);
    Mock::given(method("POST"))
        .and(db_ids_are(chunk_one.clone()))
        .and(after_is(None))
        .respond_with(json_response(page_body("timesheets", &[("c11", node("11"))], true)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(db_ids_are(chunk_one))
        .and(after_is(Some("c11")))
        .respond_with(json_response(page_body("timesheets", &[("c12", node("12"))], false)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(db_ids_are(json!(["13"])))
        .respond_with(json_response(page_body("timesheets", &[("c13", node("13"))], false)))
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let pages: Vec<ItemsPage> =
        client.items_by_db_ids(timesheets(), vec![11, 12, 13], 2, 1).try_collect().await.expect("three pages");

    let cursors: Vec<Option<&str>> = pages.iter().map(|p| p.last_cursor()).collect();
    assert_eq!(cursors, [Some("c11"), Some("c12"), Some("c13")]);
    let ids: Vec<i64> = pages.iter().flat_map(|p| p.nodes().map(|n| node_db_id(n).expect("a dbId"))).collect();
    assert_eq!(ids, [11, 12, 13]);
    let requests = server.received_requests().await.expect("recording is on");
    assert!(crate::common::query(&requests[0]).starts_with("query TimesheetsByDbIds("));
}

#[tokio::test(start_paused = true)]
async fn items_by_db_ids_sends_numeric_ids_for_int_entities() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .and(db_ids_are(json!([7, 8])))
        .respond_with(json_response(page_body(
            "projects",
            &[("7", json!({"dbId": 7})), ("8", json!({"dbId": 8}))],
            false,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let pages: Vec<ItemsPage> =
        client.items_by_db_ids(projects(), vec![7, 8], 100, 100).try_collect().await.expect("one page");

    assert_eq!(pages.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn items_by_db_ids_errors_name_the_chunk() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .and(db_ids_are(json!([1])))
        .respond_with(json_response(page_body("projects", &[("1", json!({"dbId": 1}))], false)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(db_ids_are(json!([2])))
        .respond_with(json_response(json!({"errors": [{"message": "bad", "code": "BAD_REQUEST.SOMETHING"}]})))
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let pages: Vec<_> = client.items_by_db_ids(projects(), vec![1, 2, 3], 1, 10).collect().await;

    assert_eq!(pages.len(), 2, "the third chunk is never requested");
    let err = pages[1].as_ref().expect_err("chunk 2 fails");
    assert_eq!(err.kind(), &ErrorKind::Validation);
    assert_eq!(err.context().operation, "ProjectsByDbIds chunk 2/3");
}

#[tokio::test(start_paused = true)]
async fn delta_pages_decode_changes_and_end_on_the_last_page() {
    let server = crate::common::server().await;
    mount_page(
        &server,
        Some("100"),
        delta_body("timesheet_deltas", &[("101", json!("5"), "ADDED"), ("102", json!("5"), "UPDATED")], true),
    )
    .await;
    mount_page(&server, Some("102"), delta_body("timesheet_deltas", &[("103", json!("6"), "DELETED")], false)).await;
    let client = client(paused_config(&server));

    let pages: Vec<_> =
        client.delta_pages(timesheets(), 2, Some("100".to_string())).try_collect().await.expect("two pages");

    let changes: Vec<(i64, MutationType)> =
        pages.iter().flat_map(|p| p.edges.iter().map(|e| (e.node.db_id.0, e.node.mutation_type))).collect();
    assert_eq!(changes, [(5, MutationType::Added), (5, MutationType::Updated), (6, MutationType::Deleted)]);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_delta_cursor_is_reported_for_a_full_resync() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(json!({"errors": [{"message": "Cursor not found"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let pages: Vec<_> = client.delta_pages(timesheets(), 100, Some("ancient".to_string())).collect().await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().err().map(|e| e.kind().clone()), Some(ErrorKind::CursorRejected));
}

#[tokio::test(start_paused = true)]
async fn deltas_head_cursor_asks_for_the_last_change() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .and(|r: &Request| variables(r) == json!({"last": 1}))
        .respond_with(json_response(delta_body("project_deltas", &[("9000", json!(77), "UPDATED")], false)))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    assert_eq!(client.deltas_head_cursor(projects()).await.ok(), Some(Some("9000".to_string())));
}

#[tokio::test(start_paused = true)]
async fn deltas_head_cursor_of_an_empty_feed_is_none() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(delta_body("project_deltas", &[], false)))
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    assert_eq!(client.deltas_head_cursor(projects()).await.ok(), Some(None));
}

#[tokio::test(start_paused = true)]
async fn typed_operations_decode_into_the_generated_types() {
    use xledger_model::queries::timesheets::{TimesheetsPage, timesheets_page};
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .and(|r: &Request| variables(r) == json!({"first": 1}))
        .respond_with(json_response(page_body("timesheets", &[("c1", node("123456789012"))], false)))
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let data = client
        .execute::<TimesheetsPage>(
            timesheets_page::Variables { first: 1, after: None },
            RequestContext::entity("timesheets", "TimesheetsPage"),
        )
        .await
        .expect("a typed page");

    let page = data.timesheets.expect("the root field is present");
    assert_eq!(page.edges[0].node.db_id.0, 123_456_789_012);
    assert_eq!(page.edges[0].node.working_hours.as_deref(), Some("7.50"));
    assert!(!page.page_info.has_next_page);
}

#[tokio::test(start_paused = true)]
async fn traffic_is_counted_per_entity_as_well_as_in_total() {
    let server = crate::common::server().await;
    mount_page(&server, None, page_body("timesheets", &[("c1", node("1")), ("c2", node("2"))], true)).await;
    mount_page(&server, Some("c2"), page_body("timesheets", &[("c3", node("3"))], false)).await;
    let client = client(paused_config(&server));

    let pages: Vec<ItemsPage> = client.items_pages(timesheets(), 2, None).try_collect().await.expect("two pages");
    assert_eq!(pages.len(), 2);

    let stats = client.stats();
    let timesheets = stats.entity("timesheets");
    assert_eq!(timesheets.requests, 2);
    assert_eq!(timesheets.bytes_sent, stats.bytes_sent);
    assert_eq!(timesheets.bytes_received, stats.bytes_received);
    assert!(timesheets.bytes_received > 0);
    assert_eq!(stats.entity("projects"), xledger_client::EntityTraffic::default());
}

#[tokio::test(start_paused = true)]
async fn nodes_are_handed_over_as_sent_whatever_their_values() {
    // The client does not judge node values (the lake writer does, naming entity, dbId and column).
    let server = crate::common::server().await;
    let body = page_body("timesheets", &[("c1", node("1")), ("c2", node("bad")), ("c3", node("3"))], false);
    mount_page(&server, None, body).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;
    let page = pages[0].as_ref().expect("a page");
    assert_eq!(page.nodes().nth(1), Some(r#"{"dbId":"bad","project":null,"workingHours":"7.50"}"#));
    assert_eq!((page.len(), page.last_cursor()), (3, Some("c3")));
    assert_eq!(server.received_requests().await.expect("recording is on").len(), 1, "no second request");
}

#[tokio::test(start_paused = true)]
async fn a_page_with_data_and_a_retryable_error_is_retried_and_only_the_clean_page_returned() {
    let server = crate::common::server().await;
    let mut spoiled = page_body("timesheets", &[("c0", node("0"))], false);
    spoiled["errors"] = json!([{ "message": "slow down", "code": "BAD_REQUEST.BURST_RATE_LIMIT_REACHED" }]);
    Mock::given(method("POST")).respond_with(json_response(spoiled)).up_to_n_times(1).mount(&server).await;
    mount_page(&server, None, page_body("timesheets", &[("c1", node("1"))], false)).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;
    let page = pages[0].as_ref().expect("the retry succeeds");
    assert_eq!(page.nodes().map(|n| node_db_id(n).expect("a dbId")).collect::<Vec<_>>(), [1]);
    assert_eq!(client.stats().retries(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_page_that_is_not_utf8_is_refused() {
    let server = crate::common::server().await;
    // A bad byte inside the second node's string fails the whole page.
    let text = page_body("timesheets", &[("c1", node("1")), ("c2", node("2"))], false).to_string();
    let mut bytes = text.replacen(r#""dbId":"2""#, r#""dbId":"2?""#, 1).into_bytes();
    let at = bytes.iter().position(|&b| b == b'?').expect("the marker is there");
    bytes[at] = 0xff;
    let response = wiremock::ResponseTemplate::new(200).set_body_raw(bytes, "application/json");
    Mock::given(method("POST")).respond_with(response).mount(&server).await;
    let client = client(paused_config(&server));

    let pages = collect_items(&client, None).await;
    let error = pages[0].as_ref().expect_err("not UTF-8");
    assert_eq!(error.kind(), &ErrorKind::MalformedResponse, "{error}");
    assert!(error.to_string().contains("not UTF-8"), "{error}");
}
