//! The converter's two paths agree: nodes streamed through its `NodeSink` side (the one-pass fast
//! path of full loads) build exactly the batch `convert_nodes` builds from the same nodes as raw
//! JSON, and a node the careful path refuses is refused by the fast path too (which then leaves
//! nothing behind, so the client can fall back to the careful path).

mod support;

use chrono::{DateTime, Utc};
use lake_writer::PageConverter;
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use xledger_model::page::{MutationType, NodeSink};
use xledger_model::{ColumnKind, EntitySpec};

fn synced_at() -> DateTime<Utc> {
    "2024-07-11T19:17:09.123456Z".parse().unwrap()
}

/// Streams `nodes` into `converter`; `Err` at the first node it refuses (the sink then discarded).
fn stream(converter: &mut PageConverter, nodes: &[Value]) -> Result<arrow::record_batch::RecordBatch, usize> {
    for (index, node) in nodes.iter().enumerate() {
        let text = serde_json::to_string(node).unwrap();
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        if converter.node(&mut deserializer).is_err() {
            converter.discard();
            return Err(index);
        }
    }
    Ok(converter.finish_streamed(synced_at()).unwrap())
}

fn careful(converter: &mut PageConverter, nodes: &[Value]) -> Result<arrow::record_batch::RecordBatch, lake_writer::ConvertError> {
    let raw: Vec<Box<RawValue>> = support::raw(nodes);
    let page: Vec<_> = raw.iter().map(|n| (&**n, MutationType::Added)).collect();
    converter.convert_nodes(&page, synced_at())
}

#[test]
fn every_entity_streams_the_same_batch_as_the_careful_path() {
    for entity in xledger_model::entities() {
        let nodes = support::nodes(entity, 1, 500, 7, support::SOME_NULLS);
        let mut fast = PageConverter::new(entity);
        let streamed = stream(&mut fast, &nodes).unwrap_or_else(|i| panic!("{}: node {i} refused", entity.name));
        let expected = careful(&mut PageConverter::new(entity), &nodes).unwrap();
        assert_eq!(streamed, expected, "{}", entity.name);
        // The converter is reusable page after page, whichever path read the page before.
        let again = stream(&mut fast, &nodes[..10]).unwrap();
        assert_eq!(again, expected.slice(0, 10), "{}", entity.name);
        assert_eq!(careful(&mut fast, &nodes).unwrap(), expected, "{}", entity.name);
        assert_eq!(stream(&mut fast, &nodes).unwrap(), expected, "{}: streamed after a careful page", entity.name);
    }
}

#[test]
fn streamed_rows_are_never_mixed_into_another_batch() {
    let entity = xledger_model::entity("customers").unwrap();
    let nodes = support::nodes(entity, 1, 3, 7, support::NO_NULLS);
    let mut converter = PageConverter::new(entity);
    let text = serde_json::to_string(&nodes[0]).unwrap();
    converter.node(&mut serde_json::Deserializer::from_str(&text)).unwrap();
    assert_eq!(converter.streamed_rows(), 1);
    let error = careful(&mut converter, &nodes[1..]).unwrap_err();
    assert!(error.to_string().contains("streamed rows"), "{error}");
    assert!(converter.convert_deletions(&[9], synced_at()).is_err());
    assert_eq!(converter.finish_streamed(synced_at()).unwrap().num_rows(), 1);
    assert_eq!(careful(&mut converter, &nodes[1..]).unwrap().num_rows(), 2);
}

/// One way to spoil a node, applied to a leaf column chosen by index.
#[derive(Debug, Clone)]
enum Spoil {
    Remove,
    Null,
    WrongType,
    BadText,
    NullParent,
    DuplicateDbId,
    Nothing,
}

fn spoil(entity: &EntitySpec, nodes: &mut [Value], row: usize, column: usize, how: &Spoil) {
    let column = &entity.columns[column % entity.columns.len()];
    let (leaf, parents) = column.path.split_last().unwrap();
    let mut target = &mut nodes[row];
    for parent in parents {
        if target[*parent].is_null() {
            return;
        }
        target = &mut target[*parent];
    }
    let object = target.as_object_mut().unwrap();
    match how {
        Spoil::Remove => {
            object.remove(*leaf);
        }
        Spoil::Null => {
            object.insert(leaf.to_string(), Value::Null);
        }
        Spoil::WrongType => {
            let value = match object.get(*leaf) {
                Some(Value::String(_)) => json!(12),
                Some(Value::Number(_)) => json!("12"),
                Some(Value::Bool(_)) => json!("true"),
                _ => json!([1]),
            };
            object.insert(leaf.to_string(), value);
        }
        Spoil::BadText => {
            let value = match column.kind {
                ColumnKind::Decimal { .. } => json!("1.12345678901"),
                ColumnKind::Date => json!("2024-02-30"),
                ColumnKind::Timestamp => json!("2024-03-31 02:30:00"),
                _ => return,
            };
            object.insert(leaf.to_string(), value);
        }
        Spoil::NullParent => {
            if let Some(first) = column.path.first()
                && column.path.len() > 1
            {
                nodes[row][*first] = Value::Null;
            }
        }
        Spoil::DuplicateDbId => {
            let other = if row == 0 { 1 } else { 0 };
            nodes[row]["dbId"] = nodes[other]["dbId"].clone();
        }
        Spoil::Nothing => {}
    }
}

fn spoils() -> impl Strategy<Value = Spoil> {
    prop_oneof![
        Just(Spoil::Remove),
        Just(Spoil::Null),
        Just(Spoil::WrongType),
        Just(Spoil::BadText),
        Just(Spoil::NullParent),
        Just(Spoil::DuplicateDbId),
        Just(Spoil::Nothing),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever is done to a node, both paths accept it or both refuse it, and accepted pages
    /// give equal batches; after a refusal the fast path holds nothing and converts the next
    /// page as if new.
    #[test]
    fn both_paths_accept_and_refuse_the_same_nodes(
        entity_index in 0usize..8, seed in 0u64..1000, row in 0usize..6, column in 0usize..64, how in spoils(),
    ) {
        let entities = xledger_model::entities();
        let entity = &entities[entity_index % entities.len()];
        let mut nodes = support::nodes(entity, 1, 6, seed, support::SOME_NULLS);
        spoil(entity, &mut nodes, row, column, &how);
        let mut fast = PageConverter::new(entity);
        let streamed = stream(&mut fast, &nodes);
        let expected = careful(&mut PageConverter::new(entity), &nodes);
        match (&streamed, &expected) {
            (Ok(streamed), Ok(expected)) => prop_assert_eq!(streamed, expected),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{}: fast {:?} vs careful {:?} after {:?}", entity.name, streamed.as_ref().map(|b| b.num_rows()), expected.as_ref().map(|b| b.num_rows()), how),
        }
        prop_assert_eq!(fast.streamed_rows(), 0);
        let clean = support::nodes(entity, 100, 3, seed, support::SOME_NULLS);
        let next = stream(&mut fast, &clean).map_err(|i| format!("node {i} refused"));
        prop_assert_eq!(next.map_err(|e| e.to_string()), careful(&mut PageConverter::new(entity), &clean).map_err(|e| e.to_string()));
    }
}
