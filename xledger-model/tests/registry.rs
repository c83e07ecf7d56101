//! The generated registry and Arrow schemas, snapshot-tested per entity.

use xledger_model::{ColumnKind, DbIdKind, JsonRepr, entities, entity};

const EIGHT: [&str; 8] = [
    "apTransactions",
    "arTransactions",
    "customers",
    "employees",
    "projects",
    "suppliers",
    "timesheets",
    "transactions",
];

fn schema_text(name: &str) -> String {
    let spec = entity(name).unwrap();
    let mut out = format!("entity: {}\nfingerprint: {}\n", spec.name, spec.fingerprint);
    for field in spec.arrow_schema().fields() {
        out.push_str(&format!(
            "{:<45} {:<35} {}\n",
            field.name(),
            format!("{}", field.data_type()),
            if field.is_nullable() { "nullable" } else { "required" }
        ));
    }
    out
}

#[test]
fn the_registry_has_exactly_the_eight_entities_in_name_order() {
    let names: Vec<_> = entities().iter().map(|e| e.name).collect();
    assert_eq!(names, EIGHT);
}

#[test]
fn every_entity_has_a_change_feed_and_a_by_db_ids_query() {
    for e in entities() {
        assert!(e.has_change_feed(), "{}", e.name);
        assert_eq!(e.columns[0].name, "dbId");
    }
    assert_eq!(entity("arTransactions").unwrap().change_feed.map(|feed| feed.field), Some("arTransaction_deltas"));
}

#[test]
fn db_id_in_is_int64string_on_timesheets_and_int_elsewhere() {
    for e in entities() {
        let expected = if e.name == "timesheets" { DbIdKind::Int64String } else { DbIdKind::Int };
        assert_eq!(e.db_id_kind, expected, "{}", e.name);
        let db_id = e.column("dbId").unwrap();
        assert_eq!(db_id.kind, ColumnKind::Int64);
        let json = if e.name == "timesheets" { JsonRepr::String } else { JsonRepr::Number };
        assert_eq!(db_id.json, json, "{}", e.name);
    }
}

#[test]
fn hinted_money_and_dates_override_the_schema_string_type() {
    let ts = entity("timesheets").unwrap();
    assert_eq!(ts.column("workingHours").unwrap().kind, ColumnKind::Decimal { precision: 18, scale: 6 });
    assert!(ts.column("workingHours").unwrap().hinted);
    assert_eq!(ts.column("assignmentDate").unwrap().kind, ColumnKind::Date);
    assert_eq!(ts.column("createdAt").unwrap().kind, ColumnKind::Timestamp);
    assert_eq!(ts.column("project.dbId").unwrap().path, &["project", "dbId"]);
    let ar = entity("arTransactions").unwrap();
    assert_eq!(ar.column("exchangeRate").unwrap().kind, ColumnKind::Decimal { precision: 28, scale: 10 });
    assert_eq!(ar.column("period.fiscalYear").unwrap().kind, ColumnKind::Int64);
    let emp = entity("employees").unwrap();
    assert_eq!(emp.column("contact.birthday").unwrap().kind, ColumnKind::Date);
}

#[test]
fn arrow_schemas_end_with_mutation_type_and_synced_at() {
    for e in entities() {
        let schema = e.arrow_schema();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names.len(), e.columns.len() + 2);
        assert_eq!(names[names.len() - 2], "mutationType");
        assert_eq!(names[names.len() - 1], "_synced_at");
    }
}

#[test]
fn snapshot_arrow_schemas() {
    for name in EIGHT {
        insta::assert_snapshot!(format!("arrow_schema__{name}"), schema_text(name));
    }
}

#[test]
fn snapshot_operation_documents() {
    for name in EIGHT {
        let e = entity(name).unwrap();
        let mut text = format!("# {}\n{}\n", e.items_page.name, e.items_page.document);
        for op in e.change_feed.iter().flat_map(|feed| [feed.by_db_ids, feed.deltas]) {
            text.push_str(&format!("# {}\n{}\n", op.name, op.document));
        }
        insta::assert_snapshot!(format!("operations__{name}"), text);
    }
}

#[test]
fn typed_modules_build_queries_and_read_responses() {
    use graphql_client::GraphQLQuery;
    use xledger_model::queries::timesheets::{TimesheetsByDbIds, timesheets_by_db_ids};
    use xledger_model::scalars::Int64String;

    let body = TimesheetsByDbIds::build_query(timesheets_by_db_ids::Variables {
        db_ids: vec![Int64String(9_007_199_254_740_993)],
        first: 100,
        after: None,
    });
    let json = serde_json::to_value(&body).unwrap();
    assert_eq!(json["variables"]["dbIds"][0], "9007199254740993");
    assert_eq!(json["operationName"], "TimesheetsByDbIds");

    let response = serde_json::json!({
        "timesheets": {
            "edges": [{"cursor": "c1", "node": {
                "dbId": "9007199254740993", "createdAt": "2024-03-31T02:30:00", "modifiedAt": null,
                "assignmentDate": "2024-03-31", "workingHours": "7.50", "isHeaderApproved": true,
                "headerApprovedAt": null, "hourlyRevenueCurrency": "1200.000000",
                "owner": null, "employee": {"dbId": 7, "description": "Åse Ødegård", "code": "E7"},
                "activity": null, "timeType": null, "project": null
            }}],
            "pageInfo": {"hasNextPage": false}
        }
    });
    let data: timesheets_by_db_ids::ResponseData = serde_json::from_value(response).unwrap();
    let conn = data.timesheets.unwrap();
    assert_eq!(conn.edges.len(), 1);
    assert!(!conn.page_info.has_next_page);
}
