//! The entity registry's types: what an entity is, which columns it has and how each is read.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// The column holding the change kind: `ADDED`, `UPDATED` or `DELETED` (full-sync rows are `ADDED`).
pub const MUTATION_TYPE_COLUMN: &str = "mutationType";
/// The column holding the run's sync time (UTC, microseconds); equal for every row a run writes.
pub const SYNCED_AT_COLUMN: &str = "_synced_at";

/// How the lake stores a column. Decided by the schema, or by `schema/type-hints.toml`; never by data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// Ids and integers.
    Int64,
    /// An exact decimal with a fixed scale; a value with more fractional digits is an error.
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// `yyyy-MM-dd`.
    Date,
    /// Xledger's Central European wall clock, stored as UTC microseconds (see [`crate::time`]).
    Timestamp,
    Float64,
    Boolean,
    Utf8,
}

impl ColumnKind {
    /// The Arrow type of the column in every file.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Timestamp => timestamp_type(),
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Utf8 => DataType::Utf8,
        }
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The JSON type a value arrives as. A value of another JSON type is an error, never coerced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonRepr {
    String,
    Number,
    Boolean,
}

/// One flattened column of an entity: where its value sits in a node and how to convert it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The lake column name: the GraphQL path joined with `.`, e.g. `project.dbId`.
    pub name: &'static str,
    /// The path of field names from the node to the value.
    pub path: &'static [&'static str],
    pub kind: ColumnKind,
    pub json: JsonRepr,
    /// The leaf's named GraphQL type, e.g. `Int64String` (nullability is [`ColumnSpec::nullable`]).
    pub graphql_type: &'static str,
    /// False when the schema declares the leaf non-null (`Int64String!`): a `null` under a present
    /// parent is then an error. A `null` parent object still nulls every column under it.
    pub nullable: bool,
    /// True when `schema/type-hints.toml` (not the schema) decided `kind`.
    pub hinted: bool,
}

/// The element type of the entity's `dbId_in` filter and of its `dbId` JSON values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbIdKind {
    /// `[Int64String!]`: ids travel as JSON strings (timesheets).
    Int64String,
    /// `[Int!]`: ids travel as JSON numbers.
    Int,
}

/// A GraphQL operation document (the operation plus the fragments it uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationDoc {
    pub name: &'static str,
    pub document: &'static str,
}

/// An entity's change feed and the two operations an incremental pass needs: the feed's pages, and
/// the current rows of the dbIds it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeFeed {
    /// The root field of the feed, e.g. `timesheet_deltas`.
    pub field: &'static str,
    /// Variables `$first`, `$last`, `$after`.
    pub deltas: OperationDoc,
    /// Variables `$dbIds`, `$first`, `$after`.
    pub by_db_ids: OperationDoc,
}

/// The webhook subscription an entity declares next to its queries (a `subscription` operation in
/// its query file). A delivery on it only wakes an incremental pass of the entity: the change feed
/// stays the truth and the payload is never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The root field of the schema's subscription type, e.g. `projectsMutated`; a delivery's `data`
    /// object has this key.
    pub field: &'static str,
    /// No variables: registered as a fixed document (`addWebhooks` takes it as `serializedPayload`,
    /// the JSON body `{"query": <document>}`).
    pub subscription: OperationDoc,
}

/// Everything the tool knows about one entity, generated from its query file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntitySpec {
    /// The entity name: the query file's stem, e.g. `arTransactions`. Also its lake folder (the old
    /// app's layout).
    pub name: &'static str,
    /// The root field of the items connection, e.g. `timesheets`.
    pub items_field: &'static str,
    /// The GraphQL type of a node, e.g. `Timesheet`.
    pub node_type: &'static str,
    pub db_id_kind: DbIdKind,
    /// Variables `$first: Int!, $after: String`.
    pub items_page: OperationDoc,
    /// `None` for a full-only entity: every pass loads it in full.
    pub change_feed: Option<ChangeFeed>,
    /// `None` for an entity that is polled only. An entity with a webhook always has a change feed.
    pub webhook: Option<WebhookSubscription>,
    /// A hash of the column names and types: equal exactly when two builds write the same schema.
    pub fingerprint: &'static str,
    /// The node columns in query order; `dbId` is first.
    pub columns: &'static [ColumnSpec],
}

impl EntitySpec {
    /// True when the entity has a change feed; otherwise every pass is a full sync.
    pub fn has_change_feed(&self) -> bool {
        self.change_feed.is_some()
    }

    /// A node column by its flattened name.
    pub fn column(&self, name: &str) -> Option<&'static ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow schema of every file of this entity: the node columns (all nullable, since a
    /// deletion row carries only `dbId`, except `dbId` itself), then `mutationType`, then `_synced_at`.
    pub fn arrow_schema(&self) -> Schema {
        let mut fields: Vec<Arc<Field>> =
            self.columns.iter().map(|c| Arc::new(Field::new(c.name, c.kind.arrow_type(), c.name != "dbId"))).collect();
        fields.push(Arc::new(Field::new(MUTATION_TYPE_COLUMN, DataType::Utf8, false)));
        fields.push(Arc::new(Field::new(SYNCED_AT_COLUMN, timestamp_type(), false)));
        Schema::new(fields)
    }
}

include!(concat!(env!("OUT_DIR"), "/registry.rs"));

/// Every entity of the registry (one per `schema/queries/*.graphql`), sorted by name.
pub fn entities() -> &'static [EntitySpec] {
    ENTITIES
}

/// An entity by name (`timesheets`, `arTransactions`, …).
pub fn entity(name: &str) -> Option<&'static EntitySpec> {
    ENTITIES.iter().find(|e| e.name == name)
}
