//! The shape of Relay pages as Xledger returns them, independent of any entity.
//!
//! Item nodes stay JSON text: the lake writer converts them column by column with the entity's
//! [`crate::ColumnSpec`]s, without an intermediate typed struct per entity. Change-feed pages are
//! small and read into types.

use serde::{Deserialize, Serialize};

use crate::scalars::Int64String;

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

/// Relay page information; only `hasNextPage` is relied upon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    #[serde(rename = "hasNextPage")]
    pub has_next_page: bool,
}

/// The `dbId` of an item node given as JSON text (a string or a number, as the entity sends it).
/// Every node selection starts with `dbId` (the build checks it), so this is how a change pass
/// matches the rows it fetched to the feed entries that asked for them.
///
/// ```
/// use xledger_model::page::node_db_id;
/// assert_eq!(node_db_id(r#"{"dbId": "9000000001", "code": "A"}"#).unwrap(), 9_000_000_001);
/// assert_eq!(node_db_id(r#"{"dbId": 7}"#).unwrap(), 7);
/// assert!(node_db_id(r#"{"code": "A"}"#).is_err());
/// ```
pub fn node_db_id(node: &str) -> Result<i64, serde_json::Error> {
    #[derive(Deserialize)]
    struct DbIdOnly {
        #[serde(rename = "dbId")]
        db_id: Int64String,
    }
    serde_json::from_str::<DbIdOnly>(node).map(|n| n.db_id.0)
}
