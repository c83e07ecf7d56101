//! Reading a page of items in one pass over the response: each edge's node goes straight into a
//! [`NodeSink`] while the envelope around it is checked.
//!
//! The careful path (check the body is UTF-8, classify the envelope, capture `data`, pick the
//! root field, capture every node as a `RawValue`, then convert each node) scans every byte of a
//! 7 MB page five times and copies it twice. This path scans it once, with
//! [`xledger_model::scan::Scanner`], and copies nothing but the last cursor. It accepts only the
//! plain success shape:
//!
//! ```text
//! {"data": {"<root>": {"edges": [{"cursor": "…", "node": {…}}, …], "pageInfo": {"hasNextPage": …}}}}
//! ```
//!
//! with `errors` absent, `null` or `[]`, other keys ignored, no key repeated, and nothing after the
//! object. Anything else (errors, `null` data, a node the sink refuses, malformed or truncated
//! JSON, bytes that are not UTF-8, anything the scanner leaves to serde_json) makes it give up and
//! discard the sink; the caller then reads the same body the careful way, which decides what is
//! wrong and how to report or retry it. So this path never decides an error, and it accepts a
//! body only where the careful path would accept it with the same nodes.

use xledger_model::page::NodeSink;
use xledger_model::scan::{Bail, Scan, Scanner};

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
pub(crate) fn read_page<S: NodeSink>(body: &[u8], root: &str, sink: &mut S) -> Option<FastPage> {
    let mut page = FastPage { rows: 0, last_cursor: None, has_next_page: false };
    let mut scanner = Scanner::new(body);
    match read_envelope(&mut scanner, root, sink, &mut page).and_then(|()| scanner.finish()) {
        Ok(()) => Some(page),
        Err(Bail) => {
            sink.discard();
            None
        }
    }
}

/// Reads an object whose keys of interest are `names` (at most eight): `on_field` reads the value
/// of each, others are skipped. Gives up on a repeated key of interest (the careful path refuses
/// it too, or keeps the last value, which this path does not try to imitate) and unless the first
/// `required` names were all present.
fn read_fields(
    scanner: &mut Scanner<'_>,
    names: &[&str],
    required: usize,
    mut on_field: impl FnMut(usize, &mut Scanner<'_>) -> Scan<()>,
) -> Scan<()> {
    scanner.begin_object()?;
    let mut first = true;
    let mut seen = 0u8;
    while let Some(key) = scanner.next_key(&mut first)? {
        match names.iter().position(|name| *name == key) {
            Some(index) => {
                let bit = 1 << index;
                if seen & bit != 0 {
                    return Err(Bail);
                }
                seen |= bit;
                on_field(index, scanner)?;
            }
            None => scanner.skip_value()?,
        }
    }
    let all_required = (1u16 << required) - 1;
    if u16::from(seen) & all_required != all_required {
        return Err(Bail);
    }
    Ok(())
}

/// `{"data": …, "errors": …}`: `data` required; `errors` may be `null` or empty, anything in it
/// sends the body down the careful path.
fn read_envelope<S: NodeSink>(scanner: &mut Scanner<'_>, root: &str, sink: &mut S, page: &mut FastPage) -> Scan<()> {
    read_fields(scanner, &["data", "errors"], 1, |index, scanner| match index {
        0 => read_fields(scanner, &[root], 1, |_, scanner| read_connection(scanner, sink, page)),
        _ => {
            if scanner.null()? {
                return Ok(());
            }
            scanner.begin_array()?;
            if scanner.next_element(&mut true)? { Err(Bail) } else { Ok(()) }
        }
    })
}

/// `{"edges": […], "pageInfo": {"hasNextPage": …}}`, both required; `pageInfo` as
/// [`xledger_model::page::PageInfo`] reads it (`hasNextPage` once, as a boolean).
fn read_connection<S: NodeSink>(scanner: &mut Scanner<'_>, sink: &mut S, page: &mut FastPage) -> Scan<()> {
    read_fields(scanner, &["edges", "pageInfo"], 2, |index, scanner| match index {
        0 => read_edges(scanner, sink, page),
        _ => read_fields(scanner, &["hasNextPage"], 1, |_, scanner| {
            page.has_next_page = scanner.boolean()?;
            Ok(())
        }),
    })
}

fn read_edges<S: NodeSink>(scanner: &mut Scanner<'_>, sink: &mut S, page: &mut FastPage) -> Scan<()> {
    scanner.begin_array()?;
    // One buffer for the page's cursors: only the last one is kept.
    let mut cursor = String::new();
    let mut first = true;
    while scanner.next_element(&mut first)? {
        // `{"cursor": "…", "node": {…}}`, both required.
        read_fields(scanner, &["cursor", "node"], 2, |index, scanner| match index {
            0 => {
                let text = scanner.string()?;
                cursor.clear();
                cursor.push_str(text);
                Ok(())
            }
            _ => sink.node(scanner),
        })?;
        page.rows += 1;
    }
    page.last_cursor = (page.rows > 0).then_some(cursor);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps each node as its JSON text; refuses nodes equal to `"refuse"`.
    #[derive(Default)]
    struct Collect {
        nodes: Vec<String>,
        discarded: usize,
    }

    impl NodeSink for Collect {
        fn node(&mut self, scanner: &mut Scanner<'_>) -> Scan<()> {
            let raw = scanner.raw_value()?;
            if raw == "\"refuse\"" {
                return Err(Bail);
            }
            self.nodes.push(raw.to_string());
            Ok(())
        }
        fn discard(&mut self) {
            self.nodes.clear();
            self.discarded += 1;
        }
    }

    fn read(body: &str) -> (Option<FastPage>, Collect) {
        let mut sink = Collect::default();
        (read_page(body.as_bytes(), "timesheets", &mut sink), sink)
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
            format!(
                r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}},"errors":[{{"message":"x"}}]}}"#
            ),
            format!(
                r#"{{"errors":[{{"message":"x"}}],"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
            ),
            r#"{"data":null}"#.to_string(),
            r#"{"data":{"timesheets":null}}"#.to_string(),
            r#"{"data":{"projects":{"edges":[],"pageInfo":{"hasNextPage":false}}}}"#.to_string(),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}]}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}"#),
            format!(r#"{{"data":{{"timesheets":{{"edges":[{edge}],"pageInfo":{{"hasNextPage":false}}}}}}}} trailing"#),
            format!(
                r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":"b","node":"refuse"}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
            ),
            format!(
                r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":"b"}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
            ),
            format!(
                r#"{{"data":{{"timesheets":{{"edges":[{edge},{{"cursor":7,"node":{{}}}}],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
            ),
            format!(
                r#"{{"data":{{"timesheets":{{"edges":[{edge}],"edges":[],"pageInfo":{{"hasNextPage":false}}}}}}}}"#
            ),
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
