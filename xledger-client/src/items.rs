//! A page of item nodes read in one pass: the response body is kept, and each node is located in
//! it, so nothing is copied node by node and the writer reads each node's text where it arrived.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use xledger_model::page::PageInfo;

use crate::classify::{Failure, classify_response};
use crate::error::ErrorKind;

/// A page of an items connection (`items`, or items by `dbId_in`): the nodes as JSON text,
/// borrowed from the response body that carried them, in the order of the page's edges. Hand
/// them to the lake writer as they are (see [`crate::XledgerClient::items_pages`]).
pub struct ItemsPage {
    body: String,
    nodes: Vec<Range<usize>>,
    last_cursor: Option<String>,
    has_next_page: bool,
}

impl fmt::Debug for ItemsPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemsPage")
            .field("nodes", &self.nodes.len())
            .field("last_cursor", &self.last_cursor)
            .field("has_next_page", &self.has_next_page)
            .finish()
    }
}

impl ItemsPage {
    /// Reads a response (its HTTP status and decompressed body) as a page of the connection `root`.
    ///
    /// A plain successful page — `{"data": {"<root>": {"edges": [{"cursor", "node"}…], "pageInfo":
    /// {"hasNextPage"}}}}`, with `errors` absent, `null` or empty — is read in one serde pass that
    /// borrows the nodes. Anything else is classified the way every response is (GraphQL errors,
    /// rate limits, authentication, truncation, …), which names what is wrong; a success whose
    /// `data.<root>` is not a connection page is [`ErrorKind::MalformedResponse`].
    pub(crate) fn from_response(status: u16, body: String, root: &str) -> Result<ItemsPage, Failure> {
        let located = if (200..300).contains(&status) { locate(&body, root) } else { Err(None) };
        match located {
            Ok((nodes, last_cursor, has_next_page)) => Ok(ItemsPage { body, nodes, last_cursor, has_next_page }),
            Err(shape) => Err(match classify_response(status, &body) {
                Err(failure) => failure,
                Ok(_) => {
                    let why = shape.map_or_else(|| "missing".to_string(), |e| e.to_string());
                    Failure::new(ErrorKind::MalformedResponse, format!("`data.{root}` is not a connection page: {why}"))
                }
            }),
        }
    }

    /// The edges' nodes, each a JSON object's text, in page order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.nodes.iter().map(|range| &self.body[range.clone()])
    }

    /// Edges on the page.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the page has no edges.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The last edge's cursor: where the next page (or a resumed load) continues.
    pub fn last_cursor(&self) -> Option<&str> {
        self.last_cursor.as_deref()
    }

    /// `pageInfo.hasNextPage`.
    pub fn has_next_page(&self) -> bool {
        self.has_next_page
    }
}

#[derive(Deserialize)]
struct Connection<'a> {
    #[serde(borrow)]
    edges: Vec<Edge<'a>>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct Edge<'a> {
    #[serde(borrow)]
    cursor: Cow<'a, str>,
    #[serde(borrow)]
    node: &'a RawValue,
}

type Located = (Vec<Range<usize>>, Option<String>, bool);

/// The one pass: the envelope, `data`, the root field and its edges, each node borrowed. `Err`
/// when the body is not a plain page (`Some` with the JSON error where there is one).
fn locate(body: &str, root: &str) -> Result<Located, Option<serde_json::Error>> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let envelope = EnvelopeSeed { root }.deserialize(&mut deserializer).map_err(Some)?;
    deserializer.end().map_err(Some)?;
    let Envelope { connection: Some(connection), errors: false } = envelope else { return Err(None) };
    let base = body.as_ptr() as usize;
    let nodes = connection
        .edges
        .iter()
        .map(|edge| {
            // The node is a sub-slice of `body` (borrowed by serde_json), so its address minus the
            // body's is its offset.
            let start = edge.node.get().as_ptr() as usize - base;
            start..start + edge.node.get().len()
        })
        .collect();
    let last_cursor = connection.edges.last().map(|edge| edge.cursor.clone().into_owned());
    Ok((nodes, last_cursor, connection.page_info.has_next_page))
}

struct Envelope<'a> {
    /// `data.<root>`, when `data` is an object that holds it (not `null`).
    connection: Option<Connection<'a>>,
    /// `errors` holds at least one entry.
    errors: bool,
}

/// Reads `{"data": {...}, "errors": [...]}`; other keys are skipped.
struct EnvelopeSeed<'r> {
    root: &'r str,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GraphQL response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope { connection: None, errors: false };
        let (mut seen_data, mut seen_errors) = (false, false);
        while let Some(key) = map.next_key_seed(KeyOf(&["data", "errors"]))? {
            match key {
                Some(0) if !seen_data => {
                    seen_data = true;
                    envelope.connection = map.next_value_seed(DataSeed { root: self.root })?;
                }
                Some(1) if !seen_errors => {
                    seen_errors = true;
                    let entries: Option<Vec<IgnoredAny>> = map.next_value()?;
                    envelope.errors = entries.is_some_and(|entries| !entries.is_empty());
                }
                Some(_) => return Err(de::Error::custom("a repeated top-level key")),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// `data`: `null`, or an object whose `root` field is the connection.
struct DataSeed<'r> {
    root: &'r str,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Option<Connection<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Option<Connection<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`data`: an object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut connection = None;
        while let Some(key) = map.next_key_seed(KeyOf(&[self.root]))? {
            match key {
                Some(_) if connection.is_some() => return Err(de::Error::custom("the root field is repeated")),
                Some(_) => connection = map.next_value::<Option<Connection<'de>>>()?.map(Some),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(connection.flatten())
    }
}

/// The value of `field` in the JSON object `object`, borrowed; `None` when the object lacks it.
pub(crate) fn pick_field<'a>(object: &'a str, field: &str) -> Result<Option<&'a RawValue>, serde_json::Error> {
    struct Pick<'f>(&'f str);
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key_seed(KeyOf(&[self.0]))? {
                match key {
                    Some(_) if found.is_some() => return Err(de::Error::custom(format!("`{}` is repeated", self.0))),
                    Some(_) => found = Some(map.next_value::<&'de RawValue>()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(object);
    let found = deserializer.deserialize_map(Pick(field))?;
    deserializer.end()?;
    Ok(found)
}

/// Matches an object key against `names` without allocating: its index, or `None`.
struct KeyOf<'n>(&'n [&'n str]);

impl<'de> DeserializeSeed<'de> for KeyOf<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyOf<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, body: &str) -> Result<ItemsPage, ErrorKind> {
        ItemsPage::from_response(status, body.to_string(), "timesheets").map_err(|f| f.kind)
    }

    #[test]
    fn a_plain_page_borrows_every_node_and_keeps_the_last_cursor() {
        let body = r#"{"extensions":{"cost":3},"data":{"other":[1,{"a":2}],"timesheets":{"edges":[{"cursor":"a","node":{"dbId":"1"}},{"node":{ "dbId" : "2" },"cursor":"b\u0021","x":1}],
            "pageInfo":{"hasNextPage":true}}},"errors":[]}"#;
        let page = read(200, body).unwrap();
        assert_eq!(page.nodes().collect::<Vec<_>>(), [r#"{"dbId":"1"}"#, r#"{ "dbId" : "2" }"#]);
        assert_eq!((page.len(), page.last_cursor(), page.has_next_page()), (2, Some("b!"), true));
    }

    #[test]
    fn an_empty_page_has_no_cursor() {
        let page = read(200, r#"{"data":{"timesheets":{"pageInfo":{"hasNextPage":false},"edges":[]}},"errors":null}"#)
            .unwrap();
        assert!(page.is_empty());
        assert_eq!(page.last_cursor(), None);
    }

    #[test]
    fn anything_but_a_plain_page_is_classified_as_every_response_is() {
        let edge = r#"{"cursor":"a","node":{"dbId":"1"}}"#;
        let malformed = ErrorKind::MalformedResponse;
        let cases = [
            (
                format!(
                    r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}},"errors":[{{"message":"x"}}]}}"#
                ),
                ErrorKind::PartialData,
            ),
            (r#"{"errors":[{"message":"Your query timed out."}]}"#.to_string(), ErrorKind::QueryTimeout),
            (r#"{"data":null}"#.to_string(), malformed.clone()),
            (r#"{"data":{"timesheets":null}}"#.to_string(), malformed.clone()),
            (r#"{"data":{"projects":{"edges":[],"pageInfo":{"hasNextPage":false}}}}"#.to_string(), malformed.clone()),
            (format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}]}}}}}}"#), malformed.clone()),
            (
                format!(
                    r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":"b"}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
                ),
                malformed.clone(),
            ),
            (
                format!(
                    r#"{{"data":{{"timesheets":{{"edges":[{edge}],"edges":[],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
                ),
                malformed.clone(),
            ),
            (
                format!(
                    r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}}} trailing"#
                ),
                malformed.clone(),
            ),
            (
                r#"{"data":{"timesheets":{"edges":[{"cursor":"a","node":{"dbId":"1"#.to_string(),
                ErrorKind::TruncatedResponse,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(read(200, &body).map(|p| p.len()), Err(expected), "{body}");
        }
        let ok = format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#);
        assert_eq!(read(503, &ok).map(|p| p.len()), Err(ErrorKind::Http { status: 503 }));
        assert_eq!(read(401, "{}").map(|p| p.len()), Err(ErrorKind::Authentication));
    }
}
