//! Silent changes: the truth moves, the change feed does not (an import, a feed bug).

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

fn row(sim: &xledger_sim::SimHandle, entity: &str, db_id: i64) -> Option<Value> {
    sim.truth(entity).unwrap().into_iter().find(|node| db_id_of(node) == db_id)
}

async fn feed(sim: &xledger_sim::SimHandle, field: &str) -> Vec<(String, String)> {
    deltas_of(&post(sim, &deltas_query(field), json!({ "first": 100 })).await, field).0
}

#[tokio::test]
async fn silent_changes_reach_the_truth_but_not_the_feed() {
    let sim = start(5).await;
    sim.advance_clock(Duration::from_secs(3600));
    let ids: Vec<i64> = sim.truth("projects").unwrap().iter().map(db_id_of).collect();

    let added = sim.silent_add("projects").unwrap();
    let new_row = row(&sim, "projects", added).unwrap();
    let before_update = row(&sim, "projects", ids[0]).unwrap();
    assert!(sim.silent_update("projects", ids[0]));
    let after_update = row(&sim, "projects", ids[0]).unwrap();
    let before_keep = row(&sim, "projects", ids[1]).unwrap();
    assert!(sim.silent_update_keeping_modified_at("projects", ids[1]));
    let after_keep = row(&sim, "projects", ids[1]).unwrap();
    assert!(sim.silent_delete("projects", ids[2]));

    assert_eq!(feed(&sim, "project_deltas").await, Vec::<(String, String)>::new(), "no feed entry at all");
    let truth: Vec<i64> = sim.truth("projects").unwrap().iter().map(db_id_of).collect();
    assert_eq!(truth.len(), ids.len());
    assert!(truth.contains(&added) && !truth.contains(&ids[2]));
    assert_ne!(before_update, after_update);
    assert_ne!(before_keep, after_keep, "values change");
    assert_eq!(before_keep["modifiedAt"], after_keep["modifiedAt"], "modifiedAt kept");
    // Projects select no modifiedAt; timesheets do: a moved modifiedAt is the simulated clock.
    assert_eq!(db_id_of(&new_row), added);
    let timesheet = sim.truth("timesheets").unwrap()[0].clone();
    let id = db_id_of(&timesheet);
    assert!(sim.silent_update("timesheets", id));
    let moved = row(&sim, "timesheets", id).unwrap();
    assert_ne!(moved["modifiedAt"], timesheet["modifiedAt"]);
    assert_eq!(moved["modifiedAt"], "2024-10-20T13:00:00", "now (11:00 UTC) on the Central European clock");
    assert_eq!(moved["createdAt"], timesheet["createdAt"]);
    let fresh = sim.silent_add("timesheets").unwrap();
    let fresh = row(&sim, "timesheets", fresh).unwrap();
    assert_eq!(
        (&fresh["createdAt"], &fresh["modifiedAt"]),
        (&json!("2024-10-20T13:00:00"), &json!("2024-10-20T13:00:00"))
    );
    assert_eq!(feed(&sim, "timesheet_deltas").await, Vec::<(String, String)>::new());

    assert!(!sim.silent_update("projects", ids[2]), "deleted");
    assert!(!sim.silent_delete("projects", ids[2]));
    assert!(sim.silent_add("invoices").is_err());
}

#[tokio::test]
async fn a_modified_at_scan_sees_a_silent_update_only_when_modified_at_moves() {
    let sim = start(6).await;
    let ids: Vec<i64> = sim.truth("timesheets").unwrap().iter().map(db_id_of).collect();
    assert!(sim.silent_update("timesheets", ids[0]));
    assert!(sim.silent_update_keeping_modified_at("timesheets", ids[1]));
    let query = "query S($since: DateTimeString) { timesheets(first: 10000, filter: { modifiedAt_gte: $since }) { edges { node { dbId modifiedAt } } } }";
    let answer = post(&sim, query, json!({ "since": "2024-10-20T00:00:00" })).await;
    let seen: Vec<i64> =
        answer.body["data"]["timesheets"]["edges"].as_array().unwrap().iter().map(|e| db_id_of(&e["node"])).collect();
    assert_eq!(seen, vec![ids[0]]);
}

#[tokio::test]
async fn admin_api_makes_silent_changes() {
    use reqwest::Method;
    let sim = start(3).await;
    let call = |method: Method, path: String| {
        let request = client()
            .request(method, format!("{}{path}", sim.admin_url()))
            .header("Authorization", format!("token {}", sim.api_key()));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let added = call(Method::POST, "/entities/customers/silent-rows".into()).await["dbId"].as_i64().unwrap();
    let ids: Vec<i64> = sim.truth("customers").unwrap().iter().map(db_id_of).collect();
    assert!(ids.contains(&added));
    let before = row(&sim, "customers", ids[0]).unwrap();
    assert_eq!(
        call(Method::POST, format!("/entities/customers/rows/{}/silent-update", ids[0])).await,
        json!({ "updated": true })
    );
    assert_ne!(row(&sim, "customers", ids[0]).unwrap(), before);
    let path = format!("/entities/customers/rows/{}/silent-update-keeping-modified-at", ids[1]);
    assert_eq!(call(Method::POST, path).await, json!({ "updated": true }));
    assert_eq!(
        call(Method::DELETE, format!("/entities/customers/rows/{}/silent", ids[2])).await,
        json!({ "deleted": true })
    );
    assert_eq!(
        call(Method::DELETE, format!("/entities/customers/rows/{}/silent", ids[2])).await,
        json!({ "deleted": false })
    );
    assert!(row(&sim, "customers", ids[2]).is_none());
    assert_eq!(feed(&sim, "customer_deltas").await, Vec::<(String, String)>::new());
}
