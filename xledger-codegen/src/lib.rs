//! Turns the schema snapshot, the per-entity query files and the type hints into validated
//! entities, and renders them as the Rust source of `xledger-model`'s entity registry.
//!
//! This is the one place that decides what a query file means. Three users share it:
//! `xledger-model/build.rs` (a build-dependency: the registry it `include!`s), `cargo xtask
//! fetch-schema` and `cargo xtask add-entity` (a new schema or a new query file must pass the
//! analysis the build runs before they write anything), and tests that build entities at run time.
//! It therefore depends on nothing of the workspace: std, `graphql-parser`, `toml` and `thiserror`.
//!
//! A query file `schema/queries/<entity>.graphql` holds, for one entity (its file stem):
//! - an items page on the entity's connection (`query …($first: Int!, $after: String)`);
//! - optionally items by dbIds (`filter: { dbId_in: $dbIds }`) and a deltas page on the
//!   `<feed>_deltas` root field; the two together are the entity's change feed;
//! - optionally one `subscription` on a `<x>Mutated` field of the schema's `Subscription` type:
//!   the webhook that wakes an incremental pass (it needs the change feed).
//!
//! Every error names the file, and where it applies the operation and the field.
//!
//! # Example
//! ```
//! use xledger_codegen::{analyze, render_registry, ColumnKind, QueryFile};
//!
//! let schema = r#"
//!     type Query { accounts(first: Int, after: String): AccountConnection }
//!     type AccountConnection { edges: [AccountEdge!]! pageInfo: PageInfo! }
//!     type AccountEdge { cursor: String! node: Account! }
//!     type PageInfo { hasNextPage: Boolean! }
//!     type Account { dbId: Int! balance: String group: AccountGroup }
//!     type AccountGroup { code: String }
//! "#;
//! let accounts = QueryFile {
//!     entity: "accounts".into(),
//!     text: "query AccountsPage($first: Int!, $after: String) {
//!         accounts(first: $first, after: $after) {
//!             edges { cursor node { dbId balance group { code } } }
//!             pageInfo { hasNextPage }
//!         }
//!     }"
//!     .into(),
//! };
//! let hints = "[accounts]\nbalance = \"decimal(28,6)\"\n";
//!
//! let entities = analyze(schema, &[accounts], hints)?;
//! let columns: Vec<_> = entities[0].columns.iter().map(|c| c.name.as_str()).collect();
//! assert_eq!(columns, ["dbId", "balance", "group.code"]);
//! assert_eq!(entities[0].columns[1].kind, ColumnKind::Decimal { precision: 28, scale: 6 });
//! assert!(entities[0].change_feed.is_none()); // full-only: no deltas operation
//!
//! let source = render_registry(&entities);
//! assert!(source.contains("pub static ENTITIES: &[EntitySpec]"));
//!
//! // A field the schema does not have: the message names file, operation and field.
//! let typo = QueryFile { entity: "accounts".into(), text: "query AccountsPage { accounts { edges { cursor node { dbId balanse } } pageInfo { hasNextPage } } }".into() };
//! let err = analyze(schema, &[typo], "").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "schema/queries/accounts.graphql: operation AccountsPage: type `Account` has no field `balanse`"
//! );
//! # Ok::<(), xledger_codegen::AnalyzeError>(())
//! ```

mod entity;
mod hints;
mod render;
mod schema;

use std::collections::{BTreeMap, BTreeSet};

pub use render::render_registry;

/// How the lake stores a column (mirrors `xledger_model::ColumnKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Int64,
    Decimal { precision: u8, scale: i8 },
    Date,
    Timestamp,
    Float64,
    Boolean,
    Utf8,
}

/// How a value arrives in the JSON response (mirrors `xledger_model::JsonRepr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonRepr {
    String,
    Number,
    Boolean,
}

/// The element type of an entity's `dbId_in` filter (mirrors `xledger_model::DbIdKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbIdKind {
    Int64String,
    Int,
}

/// One flattened column of an entity's node selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The lake column name: the path joined with `.`, e.g. `project.dbId`.
    pub name: String,
    /// The field names from the node to the value.
    pub path: Vec<String>,
    pub kind: ColumnKind,
    pub json: JsonRepr,
    /// The named GraphQL type of the leaf, e.g. `Int64String` (without `!`).
    pub graphql_type: String,
    /// False when the schema declares the leaf non-null (`Int64String!`).
    pub nullable: bool,
    /// True when a type hint (not the schema) decided `kind`.
    pub hinted: bool,
}

/// A GraphQL operation as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub name: String,
    /// The operation with the fragments it uses, printed canonically.
    pub document: String,
}

/// An entity's change feed: its root field and the two operations incremental passes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFeed {
    /// The `<feed>_deltas` root field.
    pub field: String,
    /// Variables `$first`, `$last`, `$after`.
    pub deltas: Operation,
    /// Variables `$dbIds`, `$first`, `$after`.
    pub by_db_ids: Operation,
}

/// The webhook subscription an entity declares: a delivery on it wakes an incremental pass of the
/// entity; its payload is never data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The root field of the schema's subscription type, e.g. `projectsMutated`; a delivery's
    /// `data` object has this key.
    pub field: String,
    /// The `subscription` operation (no variables: it is registered as a fixed document).
    pub subscription: Operation,
}

/// Everything the registry says about one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// The query file's stem, e.g. `arTransactions`; also the lake folder.
    pub name: String,
    /// The root field of the items connection.
    pub items_field: String,
    /// The GraphQL type of a node.
    pub node_type: String,
    pub db_id_kind: DbIdKind,
    /// Variables `$first: Int!, $after: String`.
    pub items_page: Operation,
    /// `None` for a full-only entity.
    pub change_feed: Option<ChangeFeed>,
    /// `None` for an entity that is polled only.
    pub webhook: Option<WebhookSubscription>,
    /// The node columns in query order; `dbId` is first.
    pub columns: Vec<Column>,
    /// A hash of the column names and lake types (plus the two trailing lake columns): equal for
    /// two builds exactly when their files have the same schema.
    pub fingerprint: String,
}

/// One query file: the entity name (file stem) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFile {
    pub entity: String,
    pub text: String,
}

/// Why [`analyze`] refused its inputs. `Display` names the file (as the workspace lays it out),
/// and where it applies the operation and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyzeError {
    /// The schema does not parse or has no query type.
    #[error("schema/xledger.graphql {0}")]
    Schema(String),
    /// The type hints do not parse, or name an entity or column that does not exist, or a type the
    /// column's JSON value cannot be read as.
    #[error("schema/type-hints.toml: {0}")]
    TypeHints(String),
    /// A query file does not parse, or does not match the schema or the rules above.
    #[error("schema/queries/{entity}.graphql: {}{message}", operation_prefix(.operation))]
    Query {
        entity: String,
        /// The operation the problem is in; `None` for problems of the file as a whole.
        operation: Option<String>,
        message: String,
    },
}

fn operation_prefix(operation: &Option<String>) -> String {
    operation.as_ref().map(|op| format!("operation {op}: ")).unwrap_or_default()
}

/// Reads the schema (SDL), the query files and the type hints (TOML) and returns one entity per
/// query file, in the order given.
pub fn analyze(schema_sdl: &str, queries: &[QueryFile], hints_toml: &str) -> Result<Vec<Entity>, AnalyzeError> {
    let schema = schema::Schema::parse(schema_sdl).map_err(AnalyzeError::Schema)?;
    let hints = hints::parse(hints_toml).map_err(AnalyzeError::TypeHints)?;
    let known: BTreeSet<&str> = queries.iter().map(|f| f.entity.as_str()).collect();
    for entity in hints.keys() {
        if !known.contains(entity.as_str()) {
            return Err(AnalyzeError::TypeHints(format!(
                "section [{entity}] names no entity (there is no schema/queries/{entity}.graphql)"
            )));
        }
    }
    let no_hints = BTreeMap::new();
    queries.iter().map(|file| entity::analyze(&schema, file, hints.get(&file.entity).unwrap_or(&no_hints))).collect()
}
