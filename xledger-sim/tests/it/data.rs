//! The generated data: realistic, typed by the registry, deterministic for a seed; mutations.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::Value;
use xledger_model::decimal::parse_decimal;
use xledger_model::time::{parse_wall_clock, parse_xledger_date};
use xledger_model::{ColumnKind, JsonRepr};
use xledger_sim::{DataProfile, SimConfig, Simulator};

fn leaf<'a>(node: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(node, |value, key| value.get(key)).filter(|v| !v.is_null())
}

#[tokio::test]
async fn values_follow_each_column_kind_and_json_type() {
    let sim = Simulator::start(SimConfig {
        rows: 300,
        rows_per_entity: BTreeMap::from([("timesheets".to_owned(), 3_000)]),
        ..config(0)
    })
    .await
    .unwrap();
    let (mut negative, mut gap, mut overlap, mut null_objects, mut non_ascii, mut long, mut escapes) =
        (0, 0, 0, 0, 0, 0, 0);
    for spec in xledger_model::entities() {
        for node in sim.truth(spec.name).unwrap() {
            for column in spec.columns {
                if column.path.len() > 1 && node.get(column.path[0]).is_some_and(Value::is_null) {
                    null_objects += 1;
                }
                let Some(value) = leaf(&node, column.path) else { continue };
                match column.json {
                    JsonRepr::String => assert!(value.is_string(), "{}: {value}", column.name),
                    JsonRepr::Number => assert!(value.is_number(), "{}: {value}", column.name),
                    JsonRepr::Boolean => assert!(value.is_boolean(), "{}: {value}", column.name),
                }
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                match column.kind {
                    ColumnKind::Decimal { precision, scale } => {
                        assert!(parse_decimal(&text, precision, scale).is_ok(), "{}: {text}", column.name);
                        let fraction = text.split('.').nth(1).map_or(0, str::len);
                        assert!((2..=6).contains(&fraction), "{}: {text}", column.name);
                        negative += usize::from(text.starts_with('-'));
                    }
                    ColumnKind::Date => assert!(parse_xledger_date(&text).is_ok(), "{}: {text}", column.name),
                    ColumnKind::Timestamp => {
                        let wall = parse_wall_clock(&text).unwrap();
                        let transition = |month| wall.date() == last_sunday(wall, month) && text[11..13] == *"02";
                        gap += usize::from(transition(3));
                        overlap += usize::from(transition(10));
                    }
                    ColumnKind::Int64 => assert!(text.parse::<i64>().is_ok(), "{}: {text}", column.name),
                    ColumnKind::Utf8 => {
                        non_ascii += usize::from(!text.is_ascii());
                        long += usize::from(text.len() > 10_240);
                        escapes += usize::from(text.contains(['"', '\\', '\n']));
                    }
                    ColumnKind::Float64 | ColumnKind::Boolean => {}
                }
            }
        }
    }
    for (what, count) in [
        ("negative amounts", negative),
        ("DST gap times", gap),
        ("DST overlap times", overlap),
        ("null nested objects", null_objects),
        ("non-ASCII strings", non_ascii),
        ("strings over 10 KB", long),
        ("quotes, backslashes or newlines", escapes),
    ] {
        assert!(count > 0, "no {what}");
    }
}

fn last_sunday(wall: chrono::NaiveDateTime, month: u32) -> chrono::NaiveDate {
    use chrono::Datelike;
    let year = wall.year();
    let mut day = chrono::NaiveDate::from_ymd_opt(year, month, 31).unwrap();
    while day.weekday() != chrono::Weekday::Sun {
        day = day.pred_opt().unwrap();
    }
    day
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data_and_another_seed_does_not() {
    let a = start(50).await;
    let b = start(50).await;
    let c = Simulator::start(SimConfig { seed: 8, ..config(50) }).await.unwrap();
    assert_eq!(a.truth("arTransactions").unwrap(), b.truth("arTransactions").unwrap());
    assert_ne!(a.truth("arTransactions").unwrap(), c.truth("arTransactions").unwrap());
}

#[tokio::test]
async fn update_changes_values_and_modified_at_but_keeps_id_and_created_at() {
    let sim = start(5).await;
    let before = sim.truth("timesheets").unwrap()[2].clone();
    let db_id = db_id_of(&before);
    sim.advance_clock(std::time::Duration::from_secs(60));
    assert!(sim.update("timesheets", db_id));
    let after = sim.truth("timesheets").unwrap().into_iter().find(|n| db_id_of(n) == db_id).unwrap();
    assert_eq!(after["dbId"], before["dbId"]);
    assert_eq!(after["createdAt"], before["createdAt"]);
    assert_eq!(after["modifiedAt"], "2024-10-20T12:01:00");
    assert_ne!(after, before);
    assert!(!sim.update("timesheets", 1));
    assert!(!sim.delete("nonsense", db_id));
    assert!(sim.add("nonsense").is_err());
}

#[tokio::test]
async fn unknown_entities_in_the_config_are_refused() {
    let config = SimConfig { rows_per_entity: BTreeMap::from([("invoices".to_owned(), 1)]), ..config(1) };
    let error = Simulator::start(config).await.unwrap_err();
    assert!(error.to_string().contains("invoices"), "{error}");
}

#[tokio::test]
async fn ledger_data_repeats_referenced_records_and_keeps_top_level_values_per_row() {
    let rows = 3_000;
    let ledger = SimConfig {
        data: DataProfile::Ledger,
        rows: 200,
        rows_per_entity: BTreeMap::from([("transactions".to_owned(), rows)]),
        ..config(0)
    };
    let sim = Simulator::start(ledger.clone()).await.unwrap();
    let again = Simulator::start(ledger).await.unwrap();
    let stress = Simulator::start(SimConfig {
        rows: 200,
        rows_per_entity: BTreeMap::from([("transactions".to_owned(), rows)]),
        ..config(0)
    })
    .await
    .unwrap();
    let nodes = sim.truth("transactions").unwrap();
    assert_eq!(nodes, again.truth("transactions").unwrap(), "the same seed gives the same ledger");
    let stress_nodes = stress.truth("transactions").unwrap();
    assert_eq!(
        nodes.iter().map(db_id_of).collect::<Vec<_>>(),
        stress_nodes.iter().map(db_id_of).collect::<Vec<_>>(),
        "same rows"
    );

    // Each nested object is one of at most 2 000 records: whole objects repeat, so two rows that
    // share `account` share every account field. The stress data draws them per row.
    let spec = xledger_model::entity("transactions").unwrap();
    let objects: std::collections::BTreeSet<&str> =
        spec.columns.iter().filter(|c| c.path.len() > 1).map(|c| c.path[0]).collect();
    let distinct = |nodes: &[Value], field: &str| {
        nodes
            .iter()
            .filter_map(|n| n.get(field))
            .filter(|v| v.is_object())
            .map(Value::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let mut smallest = usize::MAX;
    for field in &objects {
        let records = distinct(&nodes, field);
        assert!((1..=2_000).contains(&records), "{field}: {records} distinct records in {rows} rows");
        assert!(distinct(&stress_nodes, field) > 2_000, "{field} repeats in the stress data");
        smallest = smallest.min(records);
    }
    assert!(smallest <= 20, "no object with a handful of records (currencies, companies): {smallest}");

    // Top-level values stay per row, and every value still has its column's type.
    let amounts: std::collections::BTreeSet<String> =
        nodes.iter().filter_map(|n| leaf(n, &["invoiceAmount"])).map(Value::to_string).collect();
    assert!(amounts.len() > rows / 2, "{} distinct amounts", amounts.len());
    for node in &nodes {
        for column in spec.columns {
            let Some(value) = leaf(node, column.path) else { continue };
            match column.json {
                JsonRepr::String => assert!(value.is_string(), "{}: {value}", column.name),
                JsonRepr::Number => assert!(value.is_number(), "{}: {value}", column.name),
                JsonRepr::Boolean => assert!(value.is_boolean(), "{}: {value}", column.name),
            }
            if column.path.len() > 1 && column.kind == ColumnKind::Utf8 {
                assert!(
                    value.as_str().is_some_and(|text| text.len() < 10_240),
                    "{}: a referenced record has a 10 KB text",
                    column.name
                );
            }
        }
    }
}

#[test]
fn data_profiles_parse_from_and_print_as_their_names() {
    for profile in [DataProfile::Stress, DataProfile::Ledger] {
        assert_eq!(profile.to_string().parse::<DataProfile>(), Ok(profile));
    }
    assert_eq!(DataProfile::default(), DataProfile::Stress);
    assert!("random".parse::<DataProfile>().unwrap_err().contains("stress or ledger"));
}
