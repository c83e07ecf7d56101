//! Queries over HTTP: pagination and the cap, cursors, filters, aliases, validation, auth.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{Value, json};
use xledger_sim::{BAD_TOKEN_FORMAT_MESSAGE, INVALID_TOKEN_MESSAGE, SimConfig, Simulator};

fn ids_of(answer: &Answer, key: &str) -> Vec<i64> {
    answer.body["data"][key]["edges"].as_array().unwrap().iter().map(|e| db_id_of(&e["node"])).collect()
}

fn has_next(answer: &Answer, key: &str) -> bool {
    answer.body["data"][key]["pageInfo"]["hasNextPage"].as_bool().unwrap()
}

fn last_cursor(answer: &Answer, key: &str) -> Value {
    answer.body["data"][key]["edges"].as_array().unwrap().last().map(|e| e["cursor"].clone()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn items_pages_cover_every_row_once_in_db_id_order() {
    let sim = start(25).await;
    let query = items_query("projects", "dbId");
    let (mut seen, mut after, mut pages) = (Vec::new(), Value::Null, Vec::new());
    loop {
        let answer = post(&sim, &query, json!({ "first": 10, "after": after })).await;
        seen.extend(ids_of(&answer, "projects"));
        pages.push(has_next(&answer, "projects"));
        after = last_cursor(&answer, "projects");
        if !has_next(&answer, "projects") {
            break;
        }
    }
    let truth: Vec<i64> = sim.truth("projects").unwrap().iter().map(db_id_of).collect();
    assert_eq!(seen, truth);
    assert_eq!(pages, vec![true, true, false]);
}

#[tokio::test]
async fn first_above_the_10000_cap_returns_10000_and_has_next_page() {
    let config =
        SimConfig { rows: 0, rows_per_entity: BTreeMap::from([("customers".to_owned(), 10_001)]), ..config(0) };
    let sim = Simulator::start(config).await.unwrap();
    let answer = post(&sim, &items_query("customers", "dbId"), json!({ "first": 50_000 })).await;
    assert_eq!(ids_of(&answer, "customers").len(), 10_000);
    assert!(has_next(&answer, "customers"));
    let rest = post(
        &sim,
        &items_query("customers", "dbId"),
        json!({ "first": 50_000, "after": last_cursor(&answer, "customers") }),
    )
    .await;
    assert_eq!(ids_of(&rest, "customers").len(), 1);
    assert!(!has_next(&rest, "customers"));
}

#[tokio::test]
async fn a_smaller_configured_cap_applies_to_first_and_last() {
    let sim = Simulator::start(SimConfig { page_cap: 4, ..config(9) }).await.unwrap();
    let first = post(&sim, &items_query("suppliers", "dbId"), json!({ "first": 100 })).await;
    assert_eq!(ids_of(&first, "suppliers").len(), 4);
    assert!(has_next(&first, "suppliers"));
    let last = post(&sim, "{ suppliers(last: 100) { edges { node { dbId } } } }", json!({})).await;
    assert_eq!(ids_of(&last, "suppliers").len(), 4);
}

#[tokio::test]
async fn cursors_are_opaque_and_bound_to_their_entity() {
    let sim = start(3).await;
    let answer = post(&sim, &items_query("projects", "dbId"), json!({ "first": 1 })).await;
    let cursor = last_cursor(&answer, "projects");
    let db_id = ids_of(&answer, "projects")[0];
    assert_ne!(cursor.as_str().unwrap(), db_id.to_string());
    let elsewhere = post(&sim, &items_query("customers", "dbId"), json!({ "first": 1, "after": cursor })).await;
    assert_eq!(elsewhere.body["errors"][0]["code"], "BAD_REQUEST.INVALID_CURSOR");
    assert_eq!(elsewhere.body["data"]["customers"], Value::Null);
}

#[tokio::test]
async fn every_registry_operation_document_is_served() {
    let sim = start(6).await;
    for spec in xledger_model::entities() {
        let truth = sim.truth(spec.name).unwrap();
        let page = post(&sim, spec.items_page.document, json!({ "first": 3 })).await;
        let nodes: Vec<Value> = page.body["data"][spec.items_field]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        assert_eq!(nodes, truth[..3].to_vec(), "{} items page", spec.name);

        let wanted: Vec<Value> = [&truth[1], &truth[4]]
            .iter()
            .map(|node| match spec.db_id_kind {
                xledger_model::DbIdKind::Int64String => json!(db_id_of(node).to_string()),
                xledger_model::DbIdKind::Int => json!(db_id_of(node)),
            })
            .collect();
        let by_ids = spec.change_feed.unwrap().by_db_ids;
        let answer = post(&sim, by_ids.document, json!({ "dbIds": wanted, "first": 100 })).await;
        assert_eq!(
            ids_of(&answer, spec.items_field),
            vec![db_id_of(&truth[1]), db_id_of(&truth[4])],
            "{} by dbIds",
            spec.name
        );

        let deltas = post(&sim, spec.change_feed.unwrap().deltas.document, json!({ "first": 10 })).await;
        assert_eq!(
            deltas.body["data"][spec.change_feed.unwrap().field]["edges"],
            json!([]),
            "{} deltas start empty",
            spec.name
        );
    }
}

#[tokio::test]
async fn partial_selections_with_aliases_fragments_and_inline_fragments() {
    let sim = start(3).await;
    let query =
        "query { ts: timesheets(first: 1) { edges { node { id: dbId ... on Timesheet { project { code } } ...F } } } }
                 fragment F on Timesheet { project { dbId } __typename }";
    let answer = post(&sim, query, json!({})).await;
    let node = &answer.body["data"]["ts"]["edges"][0]["node"];
    let truth = &sim.truth("timesheets").unwrap()[0];
    assert_eq!(node["id"], truth["dbId"]);
    assert_eq!(node["__typename"], "Timesheet");
    if truth["project"].is_null() {
        assert_eq!(node["project"], Value::Null);
    } else {
        assert_eq!(node["project"], json!({ "code": truth["project"]["code"], "dbId": truth["project"]["dbId"] }));
    }
    let keys: Vec<&String> = node.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{node}");
}

#[tokio::test]
async fn timesheet_ids_beyond_2_pow_53_travel_as_exact_strings() {
    let sim = start(1_000).await;
    let big = sim
        .truth("timesheets")
        .unwrap()
        .into_iter()
        .map(|n| n["dbId"].clone())
        .find(|id| db_id_of(&json!({ "dbId": id })) > 1 << 53);
    let big = big.expect("a timesheet id beyond 2^53");
    let answer = post(
        &sim,
        xledger_model::entity("timesheets").unwrap().change_feed.unwrap().by_db_ids.document,
        json!({ "dbIds": [big], "first": 5 }),
    )
    .await;
    assert!(answer.text.contains(&format!("\"dbId\":{big}")), "{}", &answer.text[..200.min(answer.text.len())]);
}

#[tokio::test]
async fn db_id_in_takes_strings_on_timesheets_and_integers_elsewhere() {
    let sim = start(5).await;
    let ts: Vec<i64> = sim.truth("timesheets").unwrap().iter().map(db_id_of).collect();
    let as_strings = post(
        &sim,
        "query($ids: [Int64String!]!) { timesheets(filter: { dbId_in: $ids }) { edges { node { dbId } } } }",
        json!({ "ids": [ts[2].to_string(), ts[0].to_string()] }),
    )
    .await;
    assert_eq!(ids_of(&as_strings, "timesheets"), vec![ts[0], ts[2]]);
    let literal = post(
        &sim,
        &format!("{{ timesheets(filter: {{ dbId_in: [\"{}\"] }}) {{ edges {{ node {{ dbId }} }} }} }}", ts[1]),
        json!({}),
    )
    .await;
    assert_eq!(ids_of(&literal, "timesheets"), vec![ts[1]]);

    let projects: Vec<i64> = sim.truth("projects").unwrap().iter().map(db_id_of).collect();
    let as_ints = post(
        &sim,
        "query($ids: [Int!]!) { projects(filter: { dbId_in: $ids }) { edges { node { dbId } } } }",
        json!({ "ids": [projects[3], 1] }),
    )
    .await;
    assert_eq!(ids_of(&as_ints, "projects"), vec![projects[3]]);
    let strings_for_int = post(
        &sim,
        "query($ids: [Int!]!) { projects(filter: { dbId_in: $ids }) { edges { node { dbId } } } }",
        json!({ "ids": [projects[3].to_string()] }),
    )
    .await;
    assert_eq!(strings_for_int.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    let literal_string = post(
        &sim,
        &format!("{{ projects(filter: {{ dbId_in: [\"{}\"] }}) {{ edges {{ node {{ dbId }} }} }} }}", projects[0]),
        json!({}),
    )
    .await;
    assert_eq!(literal_string.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn db_id_in_pages_with_after() {
    let sim = start(10).await;
    let ids: Vec<i64> = sim.truth("customers").unwrap().iter().map(db_id_of).collect();
    let query = "query($ids: [Int!]!, $after: String) { customers(first: 2, after: $after, filter: { dbId_in: $ids }) { edges { cursor node { dbId } } pageInfo { hasNextPage } } }";
    let wanted = json!([ids[1], ids[3], ids[5]]);
    let first = post(&sim, query, json!({ "ids": wanted })).await;
    assert_eq!(ids_of(&first, "customers"), vec![ids[1], ids[3]]);
    assert!(has_next(&first, "customers"));
    let second = post(&sim, query, json!({ "ids": wanted, "after": last_cursor(&first, "customers") })).await;
    assert_eq!(ids_of(&second, "customers"), vec![ids[5]]);
    assert!(!has_next(&second, "customers"));
}

#[tokio::test]
async fn modified_at_gte_compares_central_european_wall_clock() {
    let sim = start(10).await;
    let ids: Vec<i64> = sim.truth("timesheets").unwrap().iter().map(db_id_of).collect();
    sim.advance_clock(std::time::Duration::from_secs(3600));
    assert!(sim.update("timesheets", ids[7]));
    assert!(sim.update("timesheets", ids[2]));
    // 2024-10-20T11:00Z is 13:00 in Oslo (summer time).
    let query = "query($since: DateTimeString) { timesheets(filter: { modifiedAt_gte: $since }) { edges { node { dbId modifiedAt } } } }";
    let answer = post(&sim, query, json!({ "since": "2024-10-20T13:00:00" })).await;
    assert_eq!(ids_of(&answer, "timesheets"), vec![ids[2], ids[7]]);
    assert_eq!(answer.body["data"]["timesheets"]["edges"][0]["node"]["modifiedAt"], "2024-10-20T13:00:00");
    let later = post(&sim, query, json!({ "since": "2024-10-20T13:00:01" })).await;
    assert_eq!(ids_of(&later, "timesheets"), Vec::<i64>::new());
}

#[tokio::test]
async fn several_root_fields_under_aliases_share_one_request() {
    let sim = start(2).await;
    let feeds: Vec<&str> =
        xledger_model::entities().iter().filter_map(|e| e.change_feed.map(|feed| feed.field)).collect();
    let variables: Vec<String> = (0..feeds.len()).map(|i| format!("$a{i}: String")).collect();
    let fields: Vec<String> = feeds
        .iter()
        .enumerate()
        .map(|(i, f)| format!("e{i}: {f}(first: 10000, after: $a{i}) {{ edges {{ cursor node {{ dbId mutationType }} }} pageInfo {{ hasNextPage }} }}"))
        .collect();
    let probe = format!("query Probe({}) {{ {} }}", variables.join(", "), fields.join(" "));
    let added = sim.add("projects").unwrap();
    let answer = post(&sim, &probe, json!({})).await;
    let project_alias = format!("e{}", feeds.iter().position(|f| *f == "project_deltas").unwrap());
    assert_eq!(deltas_of(&answer, &project_alias).0, vec![(added.to_string(), "ADDED".to_owned())]);
    assert_eq!(answer.body["data"].as_object().unwrap().len(), feeds.len());
    let counters = sim.counters();
    assert_eq!(counters.http_requests, 1);
    assert_eq!(counters.by_root_field.len(), feeds.len());
    assert!(counters.by_root_field.values().all(|c| c.requests == 1 && c.bytes > 0));
}

#[tokio::test]
async fn unknown_root_fields_and_node_fields_fail_validation() {
    let sim = start(2).await;
    for query in [
        "{ invoices(first: 1) { edges { node { dbId } } } }",
        "{ timesheets(first: 1) { edges { node { dbId salary } } } }",
        "{ timesheets(first: 1) { edges { node { project } } } }",
        "{ timesheets(first: 1) { edges { node { dbId { x } } } } }",
        "{ timesheets(first: 1, orderBy: DBID) { edges { node { dbId } } } }",
        "{ timesheets(first: 1, filter: { salary_gt: 3 }) { edges { node { dbId } } } }",
        "{ timesheet_deltas(first: 1) { edges { node { dbId description } } } }",
        "{ timesheets(first: -1) { edges { node { dbId } } } }",
        "{ timesheets(first: 1) { edges { node { ...Missing } } } }",
        "{ timesheets(first: 1) { edges { node { ...P } } } } fragment P on Project { dbId }",
        "mutation { addWebhooks { x } }",
    ] {
        let answer = post(&sim, query, json!({})).await;
        assert_eq!(answer.status, 200, "{query}");
        assert_eq!(
            answer.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{query}: {}",
            answer.text
        );
        assert!(answer.body.get("data").is_none(), "{query}");
    }
    let syntax = post(&sim, "{ timesheets(first: 1) { edges ", json!({})).await;
    assert_eq!(syntax.body["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED");
    let unknown = post(&sim, "{ invoices { edges { cursor } } }", json!({})).await;
    assert_eq!(unknown.body["errors"][0]["message"], "Cannot query field \"invoices\" on type \"Query\".");
}

#[tokio::test]
async fn operation_name_picks_one_of_several_operations() {
    let sim = start(3).await;
    let document = "query A { projects(first: 1) { edges { node { dbId } } } } query B { customers(first: 2) { edges { node { dbId } } } }";
    let answer =
        post_with(&sim, json!({ "query": document, "operationName": "B" }), Some(&format!("token {}", sim.api_key())))
            .await;
    assert_eq!(ids_of(&answer, "customers").len(), 2);
    assert!(answer.body["data"].get("projects").is_none());
    let ambiguous = post(&sim, document, json!({})).await;
    assert_eq!(ambiguous.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn a_missing_required_variable_fails_validation() {
    let sim = start(1).await;
    let page = xledger_model::entity("projects").unwrap().items_page.document;
    let answer = post(&sim, page, json!({})).await;
    assert_eq!(answer.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    assert!(answer.body["errors"][0]["message"].as_str().unwrap().contains("$first"));
}

#[tokio::test]
async fn missing_or_malformed_authorization_gets_xledgers_message() {
    let sim = start(1).await;
    let body = json!({ "query": "{ __typename }" });
    for header in [None, Some("Bearer xledger-sim-key"), Some("token"), Some("xledger-sim-key")] {
        let answer = post_with(&sim, body.clone(), header).await;
        assert_eq!(answer.status, 401, "{header:?}");
        assert_eq!(answer.body["errors"][0]["message"], BAD_TOKEN_FORMAT_MESSAGE, "{header:?}");
    }
    let wrong = post_with(&sim, body.clone(), Some("token not-the-key")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["errors"][0]["message"], INVALID_TOKEN_MESSAGE);
    assert!(!wrong.text.contains(sim.api_key()));
    let right = post_with(&sim, body, Some("token xledger-sim-key")).await;
    assert_eq!(right.body, json!({ "data": { "__typename": "Query" } }));
}

#[tokio::test]
async fn gzip_is_used_only_when_asked() {
    use std::io::Read as _;
    let sim = start(20).await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let body = json!({ "query": items_query("projects", "dbId description"), "variables": { "first": 20 } });
    let send = |gzip: bool| {
        let mut request =
            client.post(sim.endpoint()).header("Authorization", format!("token {}", sim.api_key())).json(&body);
        if gzip {
            request = request.header("Accept-Encoding", "gzip");
        }
        request.send()
    };
    let plain = send(false).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let zipped = send(true).await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, plain.to_vec());
}
