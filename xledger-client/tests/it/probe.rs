//! The batched probe: one HTTP request reads the change feeds of many entities.

use futures::TryStreamExt;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, Request};
use xledger_client::{ErrorKind, FeedPosition, PROBE_OPERATION};
use xledger_model::{entities, entity};

use crate::common::{after_is, client, delta_body, delta_page, json_response, paused_config, query, variables};

fn is_probe(request: &Request) -> bool {
    query(request).starts_with(&format!("query {PROBE_OPERATION}("))
}

fn all_feeds() -> Vec<FeedPosition> {
    entities()
        .iter()
        .filter(|e| e.has_change_feed())
        .enumerate()
        .map(|(i, e)| FeedPosition::new(e, Some(format!("{}", 1000 + i))))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_request_reads_eight_feeds_each_after_its_own_cursor() {
    let server = crate::common::server().await;
    let feeds = all_feeds();
    assert_eq!(feeds.len(), 8);
    let mut data = serde_json::Map::new();
    for (i, _) in feeds.iter().enumerate() {
        let cursor = format!("{}", 2000 + i);
        data.insert(format!("f{i}"), delta_page(&[(cursor.as_str(), json!(i + 1), "UPDATED")], false));
    }
    Mock::given(method("POST"))
        .and(is_probe)
        .respond_with(json_response(json!({ "data": data })))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let pages = client.probe_deltas(&feeds, 500).await.expect("one page per feed");

    assert_eq!(client.stats().requests, 1);
    let firsts: Vec<(String, i64)> =
        pages.iter().map(|p| (p.edges[0].cursor.clone(), p.edges[0].node.db_id.0)).collect();
    let expected: Vec<(String, i64)> = (0..8).map(|i| (format!("{}", 2000 + i), i + 1)).collect();
    assert_eq!(firsts, expected, "pages come back in the order of the feeds");

    let request = &server.received_requests().await.expect("recording is on")[0];
    let document = query(request);
    let vars = variables(request);
    assert_eq!(vars["first"], json!(500));
    for (i, feed) in feeds.iter().enumerate() {
        let field = feed.entity.change_feed.expect("a feed").field;
        assert!(document.contains(&format!("f{i}: {field}(first: $first, after: $after{i})")), "{document}");
        assert_eq!(vars[format!("after{i}")], json!(feed.after), "feed {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_probe_page_continues_with_that_feeds_own_pagination() {
    let server = crate::common::server().await;
    let timesheets = entity("timesheets").expect("built-in entity");
    let projects = entity("projects").expect("built-in entity");
    let feeds = vec![FeedPosition::new(timesheets, Some("10".into())), FeedPosition::new(projects, None)];
    let probe = json!({"data": {
        "f0": delta_page(&[("11", json!("1"), "ADDED"), ("12", json!("2"), "ADDED")], true),
        "f1": delta_page(&[], false),
    }});
    Mock::given(method("POST")).and(is_probe).respond_with(json_response(probe)).expect(1).mount(&server).await;
    Mock::given(method("POST"))
        .and(|r: &Request| query(r).starts_with("query TimesheetDeltas("))
        .and(after_is(Some("12")))
        .respond_with(json_response(delta_body("timesheet_deltas", &[("13", json!("3"), "DELETED")], false)))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let pages = client.probe_deltas(&feeds, 2).await.expect("two pages");
    let next = feeds[0].continuation(&pages[0]).expect("the timesheets page was full");
    let rest: Vec<_> = client.delta_pages(next.entity, 2, next.after).try_collect().await.expect("the rest");

    assert_eq!(feeds[1].continuation(&pages[1]), None);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].edges[0].cursor, "13");
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test(start_paused = true)]
async fn a_probe_feed_whose_cursor_does_not_advance_is_an_error_naming_the_entity() {
    let server = crate::common::server().await;
    let timesheets = entity("timesheets").expect("built-in entity");
    let feeds = vec![FeedPosition::new(timesheets, Some("10".into()))];
    let probe = json!({"data": {"f0": delta_page(&[("10", json!("1"), "ADDED")], true)}});
    Mock::given(method("POST")).respond_with(json_response(probe)).mount(&server).await;
    let client = client(paused_config(&server));

    let err = client.probe_deltas(&feeds, 1).await.expect_err("stuck at 10");

    assert_eq!(err.kind(), &ErrorKind::CursorDidNotAdvance);
    assert_eq!(err.context().entity.as_deref(), Some("timesheets"));
}

#[tokio::test(start_paused = true)]
async fn probing_no_feeds_sends_nothing() {
    let server = crate::common::server().await;
    let client = client(paused_config(&server));

    let pages = client.probe_deltas(&[], 100).await.expect("nothing to do");

    assert!(pages.is_empty());
    assert_eq!(client.stats().requests, 0);
}
