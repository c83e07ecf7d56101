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
use xledger_model::scan::Scanner;
use xledger_model::{ColumnKind, EntitySpec};

fn synced_at() -> DateTime<Utc> {
    "2024-07-11T19:17:09.123456Z".parse().unwrap()
}

/// Streams `nodes` into `converter`; `Err` at the first node it refuses (the sink then discarded).
fn stream(converter: &mut PageConverter, nodes: &[Value]) -> Result<arrow::record_batch::RecordBatch, usize> {
    for (index, node) in nodes.iter().enumerate() {
        let text = serde_json::to_string(node).unwrap();
        let mut scanner = Scanner::new(text.as_bytes());
        if converter.node(&mut scanner).and_then(|()| scanner.finish()).is_err() {
            converter.discard();
            return Err(index);
        }
    }
    Ok(converter.finish_streamed(synced_at()).unwrap())
}

fn careful(
    converter: &mut PageConverter,
    nodes: &[Value],
) -> Result<arrow::record_batch::RecordBatch, lake_writer::ConvertError> {
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
    converter.node(&mut Scanner::new(text.as_bytes())).unwrap();
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

/// Streams node texts as they stand (each must be exactly one JSON value); `Err` at the first
/// node the fast path gives up on.
fn stream_texts(converter: &mut PageConverter, texts: &[String]) -> Result<arrow::record_batch::RecordBatch, usize> {
    for (index, text) in texts.iter().enumerate() {
        let mut scanner = Scanner::new(text.as_bytes());
        if converter.node(&mut scanner).and_then(|()| scanner.finish()).is_err() {
            converter.discard();
            return Err(index);
        }
    }
    Ok(converter.finish_streamed(synced_at()).unwrap())
}

/// The careful path over node texts: serde_json reads each, then `convert_nodes`.
fn careful_texts(converter: &mut PageConverter, texts: &[String]) -> Result<arrow::record_batch::RecordBatch, String> {
    let raw: Vec<Box<RawValue>> =
        texts.iter().map(|t| RawValue::from_string(t.clone())).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let page: Vec<_> = raw.iter().map(|n| (&**n, MutationType::Added)).collect();
    converter.convert_nodes(&page, synced_at()).map_err(|e| e.to_string())
}

#[test]
fn streamed_db_ids_are_unique_whatever_their_order() {
    let entity = xledger_model::entity("timesheets").unwrap();
    for (ids, unique) in [
        (&[1, 2, 3][..], true),
        (&[3, 2, 1], true),
        (&[1, 5, 2, 4, 3], true),
        (&[1, 2, 3, 2], false),
        (&[3, 1, 3], false),
        (&[1, 3, 2, 3], false),
        (&[7, 7], false),
        (&[5, 9, 1, 2, 9], false),
    ] {
        let mut nodes = support::nodes(entity, 1, ids.len(), 3, support::NO_NULLS);
        for (node, id) in nodes.iter_mut().zip(ids) {
            node["dbId"] = json!(id.to_string());
        }
        let mut converter = PageConverter::new(entity);
        let streamed = stream(&mut converter, &nodes);
        assert_eq!(streamed.is_ok(), unique, "{ids:?}");
        if let Ok(batch) = streamed {
            assert_eq!(batch, careful(&mut PageConverter::new(entity), &nodes).unwrap(), "{ids:?}");
        }
        // Whatever happened, the next page starts afresh.
        assert!(stream(&mut converter, &nodes[..1]).is_ok(), "{ids:?}");
    }
}

#[test]
fn a_careful_page_refused_for_a_repeated_db_id_leaves_no_ids_behind() {
    let entity = xledger_model::entity("timesheets").unwrap();
    let mut nodes = support::nodes(entity, 1, 4, 3, support::NO_NULLS);
    let mut converter = PageConverter::new(entity);
    let repeated = [nodes[0].clone(), nodes[1].clone(), nodes[0].clone()];
    assert!(careful(&mut converter, &repeated).is_err());
    // The same ids, ascending, stream as a fresh page: nothing of the refused page is remembered.
    nodes.truncate(2);
    let streamed = stream(&mut converter, &nodes).expect("unique ids");
    assert_eq!(streamed, careful(&mut PageConverter::new(entity), &nodes).unwrap());
}

/// Writes `value` as JSON with every string escaped in some of the ways JSON allows (`\uXXXX`,
/// surrogate pairs, `\/`, the short escapes) and whitespace between tokens, choices drawn from
/// `seed`.
fn write_escaped(value: &Value, seed: &mut u64, out: &mut String) {
    fn draw(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }
    let space = |n: u32, out: &mut String| out.push_str([" ", "", "\n\t", "\r\n  ", ""][(n % 5) as usize]);
    match value {
        Value::String(text) => {
            out.push('"');
            for ch in text.chars() {
                let choice = draw(seed) % 6;
                match ch {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '/' if choice == 0 => out.push_str("\\/"),
                    c if (c as u32) < 0x20 || choice == 1 => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c if choice == 2 => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(draw(seed), out);
                out.push_str(&serde_json::to_string(key).unwrap());
                space(draw(seed), out);
                out.push(':');
                space(draw(seed), out);
                write_escaped(item, seed, out);
                space(draw(seed), out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_escaped(item, seed, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Characters that change what JSON means, for random edits.
const EDITS: &[&str] = &[
    "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "1", "-", ".", "e", "n", "t", "u", "\u{1}", "é", "x", "\\u00",
    "null", "\"\"",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Escapes and whitespace change nothing: the fast path reads such nodes (it does not leave
    /// them to the careful path) and builds the batch the careful path builds.
    #[test]
    fn escaped_and_spaced_nodes_stream_like_plain_ones(entity_index in 0usize..8, seed in 0u64..1_000_000) {
        let entities = xledger_model::entities();
        let entity = &entities[entity_index % entities.len()];
        let nodes = support::nodes(entity, 1, 4, seed, support::SOME_NULLS);
        let mut draw = seed;
        let texts: Vec<String> = nodes.iter().map(|node| {
            let mut text = String::new();
            write_escaped(node, &mut draw, &mut text);
            text
        }).collect();
        let expected = careful(&mut PageConverter::new(entity), &nodes).unwrap();
        let streamed = stream_texts(&mut PageConverter::new(entity), &texts);
        prop_assert_eq!(streamed.as_ref().ok(), Some(&expected), "{}", texts.join("\n"));
    }

    /// Random edits to a node's text: whatever the fast path accepts, the careful path accepts
    /// too, with the same rows (it may leave more to the careful path, never less).
    #[test]
    fn edited_nodes_are_never_read_differently(
        entity_index in 0usize..8,
        seed in 0u64..1000,
        edits in proptest::collection::vec((0usize..4096, 0usize..3, 0usize..EDITS.len()), 1..4),
    ) {
        let entities = xledger_model::entities();
        let entity = &entities[entity_index % entities.len()];
        let nodes = support::nodes(entity, 1, 3, seed, support::SOME_NULLS);
        let mut texts: Vec<String> = nodes.iter().map(|n| serde_json::to_string(n).unwrap()).collect();
        let target = &mut texts[(seed % 3) as usize];
        for (at, op, insert) in edits {
            let mut at = at % (target.len() + 1);
            while !target.is_char_boundary(at) {
                at -= 1;
            }
            match op {
                0 => target.insert_str(at, EDITS[insert]),
                1 if at < target.len() => {
                    target.remove(at);
                }
                _ if at < target.len() => {
                    target.remove(at);
                    target.insert_str(at, EDITS[insert]);
                }
                _ => target.push_str(EDITS[insert]),
            }
        }
        if let Ok(streamed) = stream_texts(&mut PageConverter::new(entity), &texts) {
            let expected = careful_texts(&mut PageConverter::new(entity), &texts);
            prop_assert_eq!(Ok(streamed), expected, "{}", texts.join("\n"));
        }
    }
}
