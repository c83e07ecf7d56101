//! Entities beyond the built-in registry: specs built at run time drive data, validation and feeds.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{Value, json};
use xledger_model::{ColumnSpec, EntitySpec};
use xledger_sim::{SimConfig, SimError, Simulator};

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// A ninth entity without a change feed, shaped like customers.
fn accounts() -> &'static EntitySpec {
    let customers = xledger_model::entity("customers").unwrap();
    leak(EntitySpec {
        name: "accounts",
        items_field: "accounts",
        node_type: "Account",
        change_feed: None,
        ..*customers
    })
}

/// Timesheets whose query selects one more field, `project.shortInfo`.
fn timesheets_with_extra_column() -> &'static EntitySpec {
    let timesheets = xledger_model::entity("timesheets").unwrap();
    let template = *timesheets.column("project.description").unwrap();
    let extra = ColumnSpec {
        name: "project.shortInfo",
        path: Box::leak(vec!["project", "shortInfo"].into_boxed_slice()),
        ..template
    };
    let mut columns = timesheets.columns.to_vec();
    columns.push(extra);
    leak(EntitySpec { columns: Box::leak(columns.into_boxed_slice()), ..*timesheets })
}

/// Timesheets with only `dbId`, `createdAt` and `modifiedAt`.
fn timesheets_with_fewer_columns() -> &'static EntitySpec {
    let timesheets = xledger_model::entity("timesheets").unwrap();
    let columns: Vec<ColumnSpec> =
        ["dbId", "createdAt", "modifiedAt"].iter().map(|name| *timesheets.column(name).unwrap()).collect();
    leak(EntitySpec { columns: Box::leak(columns.into_boxed_slice()), ..*timesheets })
}

#[tokio::test]
async fn a_ninth_entity_without_a_feed_is_served_and_has_no_feed() {
    let config = config(5).with_entity(accounts());
    let sim = Simulator::start(config).await.unwrap();
    assert_eq!(sim.entities().len(), xledger_model::entities().len() + 1);
    let answer =
        post(&sim, &items_query("accounts", "dbId description company { name }"), json!({ "first": 10 })).await;
    let edges = answer.body["data"]["accounts"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5, "{}", answer.text);
    assert_eq!(sim.truth("accounts").unwrap().len(), 5);

    let db_id = sim.add("accounts").unwrap();
    assert!(sim.update("accounts", db_id));
    assert_eq!(sim.truth("accounts").unwrap().len(), 6);
    // No feed field exists for it, and its mutations leave the other feeds alone.
    let feed = post(&sim, &deltas_query("account_deltas"), json!({ "first": 10 })).await;
    assert_eq!(feed.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    let customers = post(&sim, &deltas_query("customer_deltas"), json!({ "first": 10 })).await;
    assert_eq!(deltas_of(&customers, "customer_deltas").0, Vec::<(String, String)>::new());
}

#[tokio::test]
async fn a_replaced_spec_with_an_extra_column_generates_and_serves_it() {
    let spec = timesheets_with_extra_column();
    let sim = Simulator::start(config(20).with_entity(spec)).await.unwrap();
    let truth = sim.truth("timesheets").unwrap();
    let with_project: Vec<&Value> = truth.iter().filter(|node| node["project"].is_object()).collect();
    assert!(!with_project.is_empty());
    assert!(with_project.iter().all(|node| node["project"].get("shortInfo").is_some()), "generated for every row");
    // The new selection validates, and the spec's full selection is what the truth holds.
    let answer = post(&sim, &items_query("timesheets", "dbId project { shortInfo }"), json!({ "first": 50 })).await;
    assert!(answer.body["data"]["timesheets"]["edges"].is_array(), "{}", answer.text);
    let full = post(&sim, spec.items_page.document, json!({ "first": 50 })).await;
    let nodes: Vec<Value> =
        full.body["data"]["timesheets"]["edges"].as_array().unwrap().iter().map(|edge| edge["node"].clone()).collect();
    // The built-in query file does not select the new field; the sim serves it as a subset.
    assert_eq!(nodes.len(), truth.len());
    assert!(nodes.iter().all(|node| node.get("project").is_some_and(|p| p.is_null() || p.get("shortInfo").is_none())));
}

#[tokio::test]
async fn a_replaced_spec_with_fewer_columns_refuses_the_others() {
    let sim = Simulator::start(config(4).with_entity(timesheets_with_fewer_columns())).await.unwrap();
    let node = &sim.truth("timesheets").unwrap()[0];
    let keys: Vec<&String> = node.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["createdAt", "dbId", "modifiedAt"], "sorted by serde_json");
    let refused = post(&sim, &items_query("timesheets", "dbId workingHours"), json!({ "first": 1 })).await;
    assert_eq!(refused.body["errors"][0]["message"], "Cannot query field \"workingHours\" on type \"Timesheet\".");
    let scan = post(&sim, &items_query("timesheets", "dbId modifiedAt"), json!({ "first": 10 })).await;
    assert_eq!(scan.body["data"]["timesheets"]["edges"].as_array().unwrap().len(), 4);
    // Its feed is still there: the spec kept the change feed.
    let db_id = sim.add("timesheets").unwrap();
    let feed = post(&sim, &deltas_query("timesheet_deltas"), json!({ "first": 10 })).await;
    assert_eq!(deltas_of(&feed, "timesheet_deltas").0, vec![(db_id.to_string(), "ADDED".to_owned())]);
}

#[tokio::test]
async fn only_the_given_entities_are_served() {
    let config = SimConfig { entities: vec![accounts()], ..config(3) };
    let sim = Simulator::start(config).await.unwrap();
    let unknown = post(&sim, &items_query("timesheets", "dbId"), json!({ "first": 1 })).await;
    assert_eq!(unknown.body["errors"][0]["message"], "Cannot query field \"timesheets\" on type \"Query\".");
    match sim.add("timesheets") {
        Err(SimError::UnknownEntity { entity, known }) => {
            assert_eq!((entity.as_str(), known.as_str()), ("timesheets", "accounts"));
        }
        other => panic!("expected UnknownEntity, got {other:?}"),
    }
}

#[tokio::test]
async fn ambiguous_or_unusable_specs_are_refused() {
    let customers = xledger_model::entity("customers").unwrap();
    let twice = SimConfig { entities: vec![customers, customers], ..config(1) };
    let same_field = leak(EntitySpec { name: "clients", ..*customers });
    let clash = config(1).with_entity(same_field);
    let no_db_id = leak(EntitySpec {
        name: "notes",
        items_field: "notes",
        change_feed: None,
        columns: &customers.columns[1..],
        ..*customers
    });
    let reserved = leak(EntitySpec { name: "hooks", items_field: "webhooks", change_feed: None, ..*customers });
    for (config, expected) in [
        (twice, "entity \"customers\" is served twice"),
        (clash, "root field \"customers\" of entity \"clients\" is already taken"),
        (config(1).with_entity(no_db_id), "entity \"notes\" has no top-level dbId column"),
        (config(1).with_entity(reserved), "root field \"webhooks\" of entity \"hooks\" is already taken"),
    ] {
        match Simulator::start(config).await {
            Err(SimError::InvalidConfig { reason }) => assert_eq!(reason, expected),
            other => panic!("expected InvalidConfig({expected}), got {other:?}"),
        }
    }
    let unknown_rows = SimConfig { rows_per_entity: BTreeMap::from([("invoices".to_owned(), 1)]), ..config(1) };
    let error = Simulator::start(unknown_rows).await.unwrap_err();
    assert!(
        error.to_string().starts_with("unknown entity \"invoices\": the simulator serves apTransactions"),
        "{error}"
    );
}
