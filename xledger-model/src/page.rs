//! The shape of Relay pages as Xledger returns them, independent of any entity.
//!
//! Nodes stay raw JSON ([`RawValue`]): the lake writer converts them column by column with the
//! entity's [`crate::ColumnSpec`]s, without an intermediate typed struct per entity.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::scalars::Int64String;
use crate::scan::{Scan, Scanner};

/// The kind of a change-feed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MutationType {
    Added,
    Updated,
    Deleted,
}

impl MutationType {
    /// The lake's `mutationType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MutationType::Added => "ADDED",
            MutationType::Updated => "UPDATED",
            MutationType::Deleted => "DELETED",
        }
    }
}

/// A change-feed node: which row changed and how. `dbId` arrives as a string or a number
/// depending on the entity; both read into an `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaNode {
    #[serde(rename = "dbId")]
    pub db_id: Int64String,
    #[serde(rename = "mutationType")]
    pub mutation_type: MutationType,
}

/// One edge of a connection page with its node left as raw JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct RawEdge {
    pub cursor: String,
    pub node: Box<RawValue>,
}

/// A connection page (`{ edges [...], pageInfo { hasNextPage } }`) with raw nodes.
#[derive(Debug, Serialize, Deserialize)]
pub struct RawPage {
    pub edges: Vec<RawEdge>,
    #[serde(rename = "pageInfo")]
    pub page_info: PageInfo,
}

/// A page of a change feed with typed nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaPage {
    pub edges: Vec<DeltaEdge>,
    #[serde(rename = "pageInfo")]
    pub page_info: PageInfo,
}

/// One change-feed edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaEdge {
    pub cursor: String,
    pub node: DeltaNode,
}

/// Receives the nodes of a connection page while the response is being scanned, so that a page of
/// items is read once, straight into whatever keeps it (the lake writer's Arrow builders), instead
/// of being captured as raw JSON first and parsed again.
///
/// The client calls [`node`](NodeSink::node) once per edge, in order, with a [`Scanner`]
/// positioned at the edge's `node` value; the sink reads exactly that value. If anything about the
/// response turns out to be wrong or unusual, before or after the nodes (a node the sink refuses,
/// GraphQL `errors`, malformed JSON, a missing `pageInfo`, anything the scanner leaves to
/// serde_json), the client calls [`discard`](NodeSink::discard) and falls back to reading the
/// page the careful way, as [`RawPage`], whose nodes the caller converts itself and whose errors
/// say exactly what was wrong. So a sink may give up on any node: it only has to leave nothing
/// behind once discarded, and never accept a node the careful path would refuse or read
/// differently.
pub trait NodeSink {
    /// Reads one node. On `Err` the page's fast path is abandoned.
    fn node(&mut self, scanner: &mut Scanner<'_>) -> Scan<()>;

    /// Forgets every node taken since the sink last handed its nodes on.
    fn discard(&mut self);
}

/// Relay page information; only `hasNextPage` is relied upon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    #[serde(rename = "hasNextPage")]
    pub has_next_page: bool,
}
