//! Change feeds: ordering, the head cursor, repeated changes, retention and expired cursors.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn entry(db_id: i64, mutation: &str) -> (String, String) {
    (db_id.to_string(), mutation.to_owned())
}

#[tokio::test]
async fn first_pages_oldest_to_newest_with_every_change_of_a_row() {
    let sim = start(5).await;
    let existing = db_id_of(&sim.truth("timesheets").unwrap()[3]);
    let added = sim.add("timesheets").unwrap();
    assert!(sim.update("timesheets", added));
    assert!(sim.update("timesheets", existing));
    assert!(sim.update("timesheets", added));
    assert!(sim.delete("timesheets", existing));
    let query = deltas_query("timesheet_deltas");
    let page1 = post(&sim, &query, json!({ "first": 3 })).await;
    let (entries1, cursor) = deltas_of(&page1, "timesheet_deltas");
    assert_eq!(entries1, vec![entry(added, "ADDED"), entry(added, "UPDATED"), entry(existing, "UPDATED")]);
    assert_eq!(page1.body["data"]["timesheet_deltas"]["pageInfo"]["hasNextPage"], true);
    let page2 = post(&sim, &query, json!({ "first": 3, "after": cursor })).await;
    assert_eq!(deltas_of(&page2, "timesheet_deltas").0, vec![entry(added, "UPDATED"), entry(existing, "DELETED")]);
    assert_eq!(page2.body["data"]["timesheet_deltas"]["pageInfo"]["hasNextPage"], false);
    // Timesheet feed ids are Int64String (JSON strings); others are Int (numbers).
    assert!(page2.body["data"]["timesheet_deltas"]["edges"][0]["node"]["dbId"].is_string());
}

#[tokio::test]
async fn last_one_is_the_head_and_after_it_only_later_changes_appear() {
    let sim = start(3).await;
    let a = sim.add("projects").unwrap();
    let b = sim.add("projects").unwrap();
    let query = deltas_query("project_deltas");
    let head = post(&sim, &query, json!({ "last": 1 })).await;
    let (entries, head_cursor) = deltas_of(&head, "project_deltas");
    assert_eq!(entries, vec![entry(b, "ADDED")]);
    assert!(head.body["data"]["project_deltas"]["edges"][0]["node"]["dbId"].is_number());
    assert!(sim.delete("projects", a));
    let after = post(&sim, &query, json!({ "first": 100, "after": head_cursor })).await;
    assert_eq!(deltas_of(&after, "project_deltas").0, vec![entry(a, "DELETED")]);
}

#[tokio::test]
async fn an_empty_feed_has_no_head() {
    let sim = start(3).await;
    let head = post(&sim, &deltas_query("customer_deltas"), json!({ "last": 1 })).await;
    assert_eq!(head.body["data"]["customer_deltas"]["edges"], json!([]));
}

#[tokio::test]
async fn retention_drops_old_entries_and_a_cursor_before_a_lost_change_is_rejected() {
    let sim = start(3).await;
    let query = deltas_query("employee_deltas");
    let z = sim.add("employees").unwrap();
    let (_, cursor_z) = deltas_of(&post(&sim, &query, json!({ "last": 1 })).await, "employee_deltas");
    sim.add("employees").unwrap();
    let (_, cursor_a) = deltas_of(&post(&sim, &query, json!({ "last": 1 })).await, "employee_deltas");
    sim.advance_clock(2 * DAY);
    let b = sim.add("employees").unwrap();
    // z and a are 3 days + 1 s old: dropped; b is 1 day + 1 s old: kept.
    sim.advance_clock(DAY + Duration::from_secs(1));

    let all = post(&sim, &query, json!({ "first": 100 })).await;
    assert_eq!(deltas_of(&all, "employee_deltas").0, vec![entry(b, "ADDED")]);
    // After a: nothing was lost (a itself was the last dropped entry).
    let after_a = post(&sim, &query, json!({ "first": 100, "after": cursor_a })).await;
    assert_eq!(deltas_of(&after_a, "employee_deltas").0, vec![entry(b, "ADDED")]);
    // After z: a was dropped unseen.
    let after_z = post(&sim, &query, json!({ "first": 100, "after": cursor_z })).await;
    assert_eq!(
        after_z.body["errors"][0],
        json!({ "message": "The cursor is invalid or has expired.", "code": "BAD_REQUEST.INVALID_CURSOR", "path": ["employee_deltas"] })
    );
    assert_eq!(after_z.body["data"]["employee_deltas"], Value::Null);
    assert!(sim.truth("employees").unwrap().iter().any(|n| db_id_of(n) == z));
}

#[tokio::test]
async fn an_expired_cursor_fails_only_its_own_root_field() {
    let sim = start(2).await;
    sim.add("suppliers").unwrap();
    let (_, old) =
        deltas_of(&post(&sim, &deltas_query("supplier_deltas"), json!({ "last": 1 })).await, "supplier_deltas");
    sim.add("suppliers").unwrap();
    sim.advance_clock(4 * DAY);
    let fresh = sim.add("customers").unwrap();
    let probe = "query($a0: String, $a1: String) {
        e0: supplier_deltas(first: 10000, after: $a0) { edges { cursor node { dbId mutationType } } pageInfo { hasNextPage } }
        e1: customer_deltas(first: 10000, after: $a1) { edges { cursor node { dbId mutationType } } pageInfo { hasNextPage } } }";
    let answer = post(&sim, probe, json!({ "a0": old })).await;
    assert_eq!(answer.body["data"]["e0"], Value::Null);
    assert_eq!(answer.body["errors"][0]["path"], json!(["e0"]));
    assert_eq!(deltas_of(&answer, "e1").0, vec![entry(fresh, "ADDED")]);
}

#[tokio::test]
async fn garbage_and_future_cursors_are_rejected() {
    let sim = start(2).await;
    let query = deltas_query("transaction_deltas");
    for cursor in ["not base64!", "ZDp0cmFuc2FjdGlvbnM6OTk5", "MTIz"] {
        let answer = post(&sim, &query, json!({ "first": 1, "after": cursor })).await;
        assert_eq!(answer.body["errors"][0]["code"], "BAD_REQUEST.INVALID_CURSOR", "{cursor}");
    }
}

#[tokio::test]
async fn random_changes_repeat_db_ids_and_every_change_is_in_a_feed() {
    let sim = start(30).await;
    let summary = sim.random_changes(200, 11);
    assert_eq!(summary.added + summary.updated + summary.deleted, 200);
    assert!(summary.added > 0 && summary.updated > 0 && summary.deleted > 0, "{summary:?}");
    assert!(summary.by_entity.values().any(|c| !c.changed_repeatedly.is_empty()));
    let mut entries = 0;
    for spec in xledger_model::entities() {
        let Some(feed) = spec.change_feed.map(|feed| feed.field) else { continue };
        let answer = post(&sim, &deltas_query(feed), json!({ "first": 10000 })).await;
        entries += deltas_of(&answer, feed).0.len();
        let counts = summary.by_entity.get(spec.name).cloned().unwrap_or_default();
        let alive = sim.truth(spec.name).unwrap().len();
        assert_eq!(alive, 30 + counts.added - counts.deleted, "{}", spec.name);
    }
    assert_eq!(entries, 200);
    // Same seed, same starting data: same changes.
    let again = start(30).await;
    assert_eq!(again.random_changes(200, 11), summary);
}
