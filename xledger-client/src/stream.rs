//! Reading a page of items in one pass over the response: each edge's node goes straight into a
//! [`NodeSink`] while the envelope around it is checked.
//!
//! The careful path (classify the envelope, capture `data`, pick the root field, capture every
//! node as a `RawValue`, then convert each node) scans every byte of a 7 MB page four times and
//! copies it twice. This path scans it once and copies nothing but the last cursor. It accepts
//! only the plain success shape:
//!
//! ```text
//! {"data": {"<root>": {"edges": [{"cursor": "…", "node": {…}}, …], "pageInfo": {"hasNextPage": …}}}}
//! ```
//!
//! with `errors` absent, `null` or `[]`, other keys ignored, no key repeated, and nothing after the
//! object. Anything else (errors, `null` data, a node the sink refuses, malformed or truncated
//! JSON) makes it give up and discard the sink; the caller then reads the same body the careful
//! way, which decides what is wrong and how to report or retry it. So this path never decides an
//! error, and it accepts a body only where the careful path would accept it with the same nodes.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use xledger_model::page::{NodeSink, PageInfo};

/// What a page read in one pass says besides its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FastPage {
    /// Edges read, each node handed to the sink.
    pub rows: usize,
    /// The last edge's cursor.
    pub last_cursor: Option<String>,
    pub has_next_page: bool,
}

/// Reads `body` as a page of the connection `root`, feeding every node to `sink`. `None` (with the
/// sink discarded) when the body is anything but a plain successful page.
pub(crate) fn read_page<S: NodeSink>(body: &str, root: &str, sink: &mut S) -> Option<FastPage> {
    let mut page = FastPage { rows: 0, last_cursor: None, has_next_page: false };
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let outcome = EnvelopeSeed { root, sink: &mut *sink, page: &mut page }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match outcome {
        Ok(()) => Some(page),
        Err(_) => {
            sink.discard();
            None
        }
    }
}

/// Matches a key against a few names without allocating: `Some(index)` or `None` for another key.
struct Key<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

/// Marks key `index` as seen; a repeated key is an error (the careful path refuses it too, or
/// keeps the last value, which this path does not try to imitate).
fn first_time<E: de::Error>(seen: &mut [bool], index: usize) -> Result<(), E> {
    if std::mem::replace(&mut seen[index], true) {
        return Err(E::custom("repeated key"));
    }
    Ok(())
}

/// Implements the `Visitor` boilerplate for a seed that only accepts a JSON object.
macro_rules! object_visitor {
    ($name:ident) => {
        impl<'de, S: NodeSink> DeserializeSeed<'de> for $name<'_, S> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
                deserializer.deserialize_map(self)
            }
        }
    };
}

struct EnvelopeSeed<'a, S> {
    root: &'a str,
    sink: &'a mut S,
    page: &'a mut FastPage,
}

object_visitor!(EnvelopeSeed);

impl<'de, S: NodeSink> Visitor<'de> for EnvelopeSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GraphQL response object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 2];
        while let Some(key) = map.next_key_seed(Key(&["data", "errors"]))? {
            match key {
                Some(0) => {
                    first_time(&mut seen, 0)?;
                    map.next_value_seed(DataSeed { root: self.root, sink: &mut *self.sink, page: &mut *self.page })?;
                }
                Some(_) => {
                    first_time(&mut seen, 1)?;
                    map.next_value_seed(NoErrors)?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen[0] {
            return Err(de::Error::missing_field("data"));
        }
        Ok(())
    }
}

/// `errors` may be absent, `null` or empty; anything in it sends the body down the careful path.
struct NoErrors;

impl<'de> DeserializeSeed<'de> for NoErrors {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoErrors {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or an empty array")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(()),
            Some(_) => Err(de::Error::custom("the response carries errors")),
        }
    }
}

struct DataSeed<'a, S> {
    root: &'a str,
    sink: &'a mut S,
    page: &'a mut FastPage,
}

object_visitor!(DataSeed);

impl<'de, S: NodeSink> Visitor<'de> for DataSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the data object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let names = [self.root];
        let mut seen = [false; 1];
        while let Some(key) = map.next_key_seed(Key(&names))? {
            match key {
                Some(_) => {
                    first_time(&mut seen, 0)?;
                    map.next_value_seed(ConnectionSeed { sink: &mut *self.sink, page: &mut *self.page })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen[0] {
            return Err(de::Error::custom("the root field is missing"));
        }
        Ok(())
    }
}

struct ConnectionSeed<'a, S> {
    sink: &'a mut S,
    page: &'a mut FastPage,
}

object_visitor!(ConnectionSeed);

impl<'de, S: NodeSink> Visitor<'de> for ConnectionSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a connection page")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 2];
        while let Some(key) = map.next_key_seed(Key(&["edges", "pageInfo"]))? {
            match key {
                Some(0) => {
                    first_time(&mut seen, 0)?;
                    map.next_value_seed(EdgesSeed { sink: &mut *self.sink, page: &mut *self.page })?;
                }
                Some(_) => {
                    first_time(&mut seen, 1)?;
                    let info: PageInfo = map.next_value()?;
                    self.page.has_next_page = info.has_next_page;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if seen != [true, true] {
            return Err(de::Error::custom("edges or pageInfo is missing"));
        }
        Ok(())
    }
}

struct EdgesSeed<'a, S> {
    sink: &'a mut S,
    page: &'a mut FastPage,
}

impl<'de, S: NodeSink> DeserializeSeed<'de> for EdgesSeed<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, S: NodeSink> Visitor<'de> for EdgesSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of edges")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut cursor = String::new();
        while seq.next_element_seed(EdgeSeed { sink: &mut *self.sink, cursor: &mut cursor })?.is_some() {
            self.page.rows += 1;
        }
        self.page.last_cursor = (self.page.rows > 0).then_some(cursor);
        Ok(())
    }
}

struct EdgeSeed<'a, S> {
    sink: &'a mut S,
    /// The cursor of the edge being read (one buffer for the page: only the last one is kept).
    cursor: &'a mut String,
}

object_visitor!(EdgeSeed);

impl<'de, S: NodeSink> Visitor<'de> for EdgeSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an edge")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 2];
        while let Some(key) = map.next_key_seed(Key(&["cursor", "node"]))? {
            match key {
                Some(0) => {
                    first_time(&mut seen, 0)?;
                    map.next_value_seed(CursorSeed(&mut *self.cursor))?;
                }
                Some(_) => {
                    first_time(&mut seen, 1)?;
                    map.next_value_seed(NodeSeed(&mut *self.sink))?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if seen != [true, true] {
            return Err(de::Error::custom("cursor or node is missing"));
        }
        Ok(())
    }
}

/// A cursor string, copied into the page's one cursor buffer.
struct CursorSeed<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for CursorSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CursorSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cursor string")
    }
    fn visit_str<E: de::Error>(self, cursor: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(cursor);
        Ok(())
    }
}

/// Hands the node's value to the sink.
struct NodeSeed<'a, S>(&'a mut S);

impl<'de, S: NodeSink> DeserializeSeed<'de> for NodeSeed<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.node(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    /// Keeps each node as its JSON text; refuses nodes equal to `"refuse"`.
    #[derive(Default)]
    struct Collect {
        nodes: Vec<String>,
        discarded: usize,
    }

    impl NodeSink for Collect {
        fn node<'de, D: Deserializer<'de>>(&mut self, node: D) -> Result<(), D::Error> {
            let raw: Box<RawValue> = serde::Deserialize::deserialize(node)?;
            if raw.get() == "\"refuse\"" {
                return Err(de::Error::custom("refused"));
            }
            self.nodes.push(raw.get().to_string());
            Ok(())
        }
        fn discard(&mut self) {
            self.nodes.clear();
            self.discarded += 1;
        }
    }

    fn read(body: &str) -> (Option<FastPage>, Collect) {
        let mut sink = Collect::default();
        (read_page(body, "timesheets", &mut sink), sink)
    }

    #[test]
    fn a_plain_page_streams_every_node_and_keeps_the_last_cursor() {
        let body = r#"{"data":{"timesheets":{"edges":[{"cursor":"a","node":{"dbId":"1"}},{"node":{"dbId":"2"},"cursor":"b\u0021","x":1}],
            "pageInfo":{"hasNextPage":true}}},"errors":[],"extensions":{"cost":3}}"#;
        let (page, sink) = read(body);
        assert_eq!(page, Some(FastPage { rows: 2, last_cursor: Some("b!".into()), has_next_page: true }));
        assert_eq!(sink.nodes, [r#"{"dbId":"1"}"#, r#"{"dbId":"2"}"#]);
        assert_eq!(sink.discarded, 0);
    }

    #[test]
    fn an_empty_page_has_no_cursor() {
        let (page, _) = read(r#"{"data":{"timesheets":{"pageInfo":{"hasNextPage":false},"edges":[]}},"errors":null}"#);
        assert_eq!(page, Some(FastPage { rows: 0, last_cursor: None, has_next_page: false }));
    }

    #[test]
    fn anything_but_a_plain_page_is_left_to_the_careful_path_and_discards_the_sink() {
        let edge = r#"{"cursor":"a","node":{"dbId":"1"}}"#;
        let bodies = [
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}},"errors":[{{"message":"x"}}]}}"#),
            format!(r#"{{"errors":[{{"message":"x"}}],"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#),
            r#"{"data":null}"#.to_string(),
            r#"{"data":{"timesheets":null}}"#.to_string(),
            r#"{"data":{"projects":{"edges":[],"pageInfo":{"hasNextPage":false}}}}"#.to_string(),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}]}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}}} trailing"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":"b","node":"refuse"}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":"b"}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":7,"node":{{}}}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"edges":[],"pageInfo":{{"hasNextPage":false}}}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":"no"}}}}}}}}"#),
            r#"{"errors":[]}"#.to_string(),
            "not json".to_string(),
        ];
        for body in bodies {
            let (page, sink) = read(&body);
            assert_eq!(page, None, "{body}");
            assert!(sink.nodes.is_empty() && sink.discarded == 1, "{body}");
        }
    }
}
