//! `cargo xtask add-entity NAME [--deltas FEED]`: writes `schema/queries/<NAME>.graphql` for a root
//! field of the schema snapshot, so that adding an entity is one command and a rebuild.
//!
//! The file holds an items page on the `NAME` connection, items by dbIds (when its filter has
//! `dbId_in`) and, when a `<feed>_deltas` root field exists, a deltas page: together a change feed.
//! The feed is `--deltas FEED` (`FEED` or `FEED_deltas`), or else found by convention: the node type
//! with a lower-case initial (`Account` → `account_deltas`), then the name without its plural `s`,
//! then the name itself. Without one the entity is full-only.
//!
//! The node selection is every scalar and enum field of the node type, `dbId` first, plus
//! `dbId`, `code` and `description` (those that exist) of each nested object field — one level
//! deep, like the old app's selections. List fields, unions, fields that need arguments and objects
//! with none of the three are left out and listed.
//!
//! Nothing is written unless the new file passes the build's analysis (`xledger-codegen`) together
//! with the existing query files and type hints; an existing file is replaced only with `--force`.
//! `String` fields named like money or dates get proposed `type-hints.toml` lines, printed for
//! review and never applied.
//!
//! ```
//! let schema = std::fs::read_to_string(xtask::workspace_root().join("schema/xledger.graphql")).unwrap();
//! let accounts = xtask::add_entity::generate(&schema, "accounts", None).unwrap();
//! assert!(accounts.text.contains("query AccountsByDbIds($dbIds: [Int!]!, $first: Int!, $after: String)"));
//! assert_eq!(accounts.change_feed, None); // the schema has no account_deltas
//! ```

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::Write;
use std::path::PathBuf;

use graphql_parser::schema as s;
use xledger_codegen::{AnalyzeError, Entity, QueryFile};

use crate::fetch_schema::{FetchSchemaError, OurQueries, write_atomically};

const HELP_DETAILS: &str = "\
NAME is a root field of schema/xledger.graphql that returns a connection (edges { cursor node },
pageInfo { hasNextPage }); it becomes the entity's name, query file and lake folder.

The file selects every scalar and enum field of the node type and the dbId, code and description of
each nested object (one level deep); list fields, unions and fields that need arguments are left out
and listed. A deltas page is added when a <feed>_deltas root field exists: --deltas FEED, or by
convention from the node type (Account -> account_deltas) or the name (accounts -> account_deltas).

Nothing is written unless the file passes the build's analysis together with the existing query files
and type hints. String fields named like money or dates get proposed schema/type-hints.toml lines,
printed for review and never applied. Run `cargo xtask fetch-schema` first to use the live schema.";

/// Options of `add-entity`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = HELP_DETAILS)]
pub struct Args {
    /// The root field of the entity's connection, e.g. `accounts`; also the entity's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The change feed: `FEED` names the `FEED_deltas` root field (`FEED_deltas` itself works too).
    #[arg(long, value_name = "FEED")]
    pub deltas: Option<String>,
    /// Replace an existing `queries/<NAME>.graphql`.
    #[arg(long)]
    pub force: bool,
    /// Print the file instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// The folder with `xledger.graphql`, `queries/` and `type-hints.toml`; `None`: the workspace's
    /// `schema/`.
    #[arg(
        long,
        value_name = "DIR",
        help = "The folder with xledger.graphql, queries/ and type-hints.toml [default: <workspace>/schema]"
    )]
    pub schema_dir: Option<PathBuf>,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AddEntityError {
    #[error("`{name}` is not a GraphQL name (letters, digits and `_`, not starting with a digit)")]
    InvalidName { name: String },
    #[error("schema/xledger.graphql does not parse: {0}")]
    SchemaDoesNotParse(String),
    #[error("the schema has no root field `{name}`{}", nearest_text(.nearest))]
    UnknownRootField { name: String, nearest: Vec<String> },
    #[error("the schema has no change feed `{field}`{}", nearest_text(.nearest))]
    UnknownChangeFeed { field: String, nearest: Vec<String> },
    #[error("`{field}` is not a paged connection: {reason}")]
    NotAConnection { field: String, reason: String },
    #[error("`{node_type}` has no `dbId` field; an entity's rows are keyed by it")]
    NoDbId { node_type: String },
    #[error("`{feed}` cannot be used: `{field}` has no `filter: {{ dbId_in }}` argument to fetch the changed rows by")]
    NoDbIdFilter { field: String, feed: String },
    #[error("{} exists; pass --force to replace it", .path.display())]
    Exists { path: PathBuf },
    #[error("the generated file does not pass the build's analysis, so nothing was written: {0}")]
    DoesNotValidate(AnalyzeError),
    #[error(transparent)]
    Load(#[from] FetchSchemaError),
}

fn nearest_text(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = nearest.iter().map(|n| format!("`{n}`")).collect();
        format!(" (nearest: {})", names.join(", "))
    }
}

/// A generated query file, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub entity: String,
    /// The text of `queries/<entity>.graphql`.
    pub text: String,
    /// The `<feed>_deltas` root field the file pages, or `None` for a full-only entity.
    pub change_feed: Option<String>,
    /// Why the file has no change feed although one exists (no `dbId_in` filter), if so.
    pub feed_unusable: Option<String>,
    /// The node fields left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// `type-hints.toml` lines to review.
    pub proposed_hints: Vec<ProposedHint>,
    /// A `<entity>Mutated` field of the subscription type, if the schema has one (a webhook the
    /// file could declare).
    pub subscription_field: Option<String>,
}

/// A node field the selection leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub field: String,
    pub reason: &'static str,
}

/// A proposed `type-hints.toml` line for a `String` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedHint {
    /// The flattened column name.
    pub column: String,
    /// The hint's value, e.g. `decimal(28,6)` or `date`.
    pub kind: &'static str,
    /// Why, e.g. "named like money".
    pub reason: &'static str,
}

/// The line as it would appear in `type-hints.toml`, with the reason as a comment.
impl fmt::Display for ProposedHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if is_bare_key(&self.column) { self.column.clone() } else { format!("\"{}\"", self.column) };
        write!(f, "{key} = \"{}\"  # {}", self.kind, self.reason)
    }
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

// ---------------------------------------------------------------------------------------------
// The schema, as far as generating a file needs it.
// ---------------------------------------------------------------------------------------------

struct Field<'a> {
    name: &'a str,
    ty: &'a s::Type<'a, &'a str>,
    arguments: &'a [s::InputValue<'a, &'a str>],
}

enum TypeShape {
    Object,
    Leaf,
    Union,
    Input,
}

struct Index<'a> {
    objects: HashMap<&'a str, Vec<Field<'a>>>,
    inputs: HashMap<&'a str, &'a [s::InputValue<'a, &'a str>]>,
    shapes: HashMap<&'a str, TypeShape>,
    query: &'a str,
    subscription: &'a str,
}

impl<'a> Index<'a> {
    fn new(doc: &'a s::Document<'a, &'a str>) -> Self {
        let mut index = Index {
            objects: HashMap::new(),
            inputs: HashMap::new(),
            shapes: ["Int", "Float", "String", "Boolean", "ID"].into_iter().map(|n| (n, TypeShape::Leaf)).collect(),
            query: "Query",
            subscription: "Subscription",
        };
        for def in &doc.definitions {
            match def {
                s::Definition::SchemaDefinition(d) => {
                    if let Some(q) = d.query {
                        index.query = q;
                    }
                    if let Some(sub) = d.subscription {
                        index.subscription = sub;
                    }
                }
                s::Definition::TypeDefinition(t) => {
                    let (name, fields, shape) = match t {
                        s::TypeDefinition::Object(o) => (o.name, Some(&o.fields), TypeShape::Object),
                        s::TypeDefinition::Interface(o) => (o.name, Some(&o.fields), TypeShape::Object),
                        s::TypeDefinition::InputObject(o) => {
                            index.inputs.insert(o.name, &o.fields);
                            (o.name, None, TypeShape::Input)
                        }
                        s::TypeDefinition::Enum(e) => (e.name, None, TypeShape::Leaf),
                        s::TypeDefinition::Scalar(sc) => (sc.name, None, TypeShape::Leaf),
                        s::TypeDefinition::Union(u) => (u.name, None, TypeShape::Union),
                    };
                    if let Some(fields) = fields {
                        let fields = fields
                            .iter()
                            .map(|f| Field { name: f.name, ty: &f.field_type, arguments: &f.arguments })
                            .collect();
                        index.objects.insert(name, fields);
                    }
                    index.shapes.insert(name, shape);
                }
                s::Definition::TypeExtension(_) | s::Definition::DirectiveDefinition(_) => {}
            }
        }
        index
    }

    fn fields(&self, type_name: &str) -> &[Field<'a>] {
        self.objects.get(type_name).map_or(&[], Vec::as_slice)
    }

    fn field(&self, type_name: &str, field: &str) -> Option<&Field<'a>> {
        self.fields(type_name).iter().find(|f| f.name == field)
    }

    fn root_fields(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.fields(self.query).iter().map(|f| f.name)
    }

    fn is_leaf(&self, type_name: &str) -> bool {
        matches!(self.shapes.get(type_name), Some(TypeShape::Leaf))
    }

    /// The node type of a connection field, checking the shape the operations rely on.
    fn connection_node(&self, field: &Field<'a>) -> Result<&'a str, String> {
        if is_list(field.ty) {
            return Err("it returns a list, not a connection".into());
        }
        let connection = named(field.ty);
        for argument in ["first", "after"] {
            if !field.arguments.iter().any(|a| a.name == argument) {
                return Err(format!("it takes no `{argument}` argument"));
            }
        }
        let edges = self.field(connection, "edges").ok_or_else(|| format!("`{connection}` has no `edges`"))?;
        let edge = named(edges.ty);
        self.field(edge, "cursor").ok_or_else(|| format!("`{edge}` has no `cursor`"))?;
        let node = self.field(edge, "node").ok_or_else(|| format!("`{edge}` has no `node`"))?;
        let page_info =
            self.field(connection, "pageInfo").ok_or_else(|| format!("`{connection}` has no `pageInfo`"))?;
        self.field(named(page_info.ty), "hasNextPage")
            .ok_or_else(|| format!("`{}` has no `hasNextPage`", named(page_info.ty)))?;
        Ok(named(node.ty))
    }

    /// The element type of `filter: { dbId_in: [...] }` on a root field, if it has one.
    fn db_id_in_element(&self, field: &Field<'a>) -> Option<&'a str> {
        let filter = field.arguments.iter().find(|a| a.name == "filter")?;
        let input = self.inputs.get(named(&filter.value_type))?;
        input.iter().find(|f| f.name == "dbId_in").map(|f| named(&f.value_type))
    }
}

fn named<'a>(t: &s::Type<'a, &'a str>) -> &'a str {
    match t {
        s::Type::NamedType(n) => n,
        s::Type::ListType(inner) | s::Type::NonNullType(inner) => named(inner),
    }
}

fn is_list<'a>(t: &s::Type<'a, &'a str>) -> bool {
    match t {
        s::Type::NamedType(_) => false,
        s::Type::ListType(_) => true,
        s::Type::NonNullType(inner) => is_list(inner),
    }
}

fn needs_arguments(field: &Field<'_>) -> bool {
    field.arguments.iter().any(|a| matches!(a.value_type, s::Type::NonNullType(_)) && a.default_value.is_none())
}

// ---------------------------------------------------------------------------------------------
// Generating.
// ---------------------------------------------------------------------------------------------

/// Generates the query file for root field `name`; `deltas` is `--deltas` (`None`: by convention).
/// Checks the schema's shape, not the build's rules: [`check`] runs the build's analysis.
pub fn generate(schema_sdl: &str, name: &str, deltas: Option<&str>) -> Result<Generated, AddEntityError> {
    if !is_graphql_name(name) {
        return Err(AddEntityError::InvalidName { name: name.to_string() });
    }
    let doc = s::parse_schema::<&str>(schema_sdl).map_err(|e| AddEntityError::SchemaDoesNotParse(e.to_string()))?;
    let index = Index::new(&doc);
    let root = index.field(index.query, name).ok_or_else(|| AddEntityError::UnknownRootField {
        name: name.to_string(),
        nearest: nearest(name, index.root_fields().filter(|f| !f.ends_with("_deltas"))),
    })?;
    if let Some(feed) = name.strip_suffix("_deltas") {
        return Err(AddEntityError::NotAConnection {
            field: name.to_string(),
            reason: format!("it is a change feed: name the entity's items field, and `--deltas {feed}` if need be"),
        });
    }
    let node_type = index
        .connection_node(root)
        .map_err(|reason| AddEntityError::NotAConnection { field: name.to_string(), reason })?;
    if index.field(node_type, "dbId").is_none() {
        return Err(AddEntityError::NoDbId { node_type: node_type.to_string() });
    }
    let db_id_element = index.db_id_in_element(root);

    let feeds = || index.root_fields().filter(|f| f.ends_with("_deltas"));
    let (change_feed, feed_unusable) = match deltas {
        Some(feed) => {
            let field = if feed.ends_with("_deltas") { feed.to_string() } else { format!("{feed}_deltas") };
            let Some(found) = feeds().find(|f| *f == field) else {
                return Err(AddEntityError::UnknownChangeFeed { nearest: nearest(&field, feeds()), field });
            };
            if db_id_element.is_none() {
                return Err(AddEntityError::NoDbIdFilter { field: name.to_string(), feed: found.to_string() });
            }
            (Some(found.to_string()), None)
        }
        None => {
            let singular = name.strip_suffix('s').unwrap_or(name);
            let candidates =
                [format!("{}_deltas", lower_first(node_type)), format!("{singular}_deltas"), format!("{name}_deltas")];
            let found = candidates.iter().find(|c| feeds().any(|f| f == c.as_str())).cloned();
            match (found, db_id_element) {
                (Some(feed), Some(_)) => (Some(feed), None),
                (Some(feed), None) => {
                    (None, Some(format!("`{feed}` exists, but `{name}` has no `filter: {{ dbId_in }}` argument")))
                }
                (None, _) => (None, None),
            }
        }
    };
    if let Some(feed) = &change_feed {
        let field = index
            .field(index.query, feed)
            .ok_or_else(|| AddEntityError::UnknownChangeFeed { field: feed.clone(), nearest: Vec::new() })?;
        let not_a_feed = |reason| AddEntityError::NotAConnection { field: feed.clone(), reason };
        index.connection_node(field).map_err(not_a_feed)?;
        if !field.arguments.iter().any(|a| a.name == "last") {
            // The head cursor of a full load is read with `last: 1`.
            return Err(not_a_feed("it takes no `last` argument".into()));
        }
    }

    let (selection, columns, skipped) = node_selection(&index, node_type);
    let proposed_hints = columns.iter().filter_map(|(column, leaf_type)| propose_hint(column, leaf_type)).collect();
    let subscription_field = Some(format!("{name}Mutated")).filter(|f| index.field(index.subscription, f).is_some());

    let mut text = String::new();
    let _ = render_file(&mut text, name, node_type, db_id_element, change_feed.as_deref(), &selection);
    Ok(Generated {
        entity: name.to_string(),
        text,
        change_feed,
        feed_unusable,
        skipped,
        proposed_hints,
        subscription_field,
    })
}

/// The fragment body lines, the columns with their leaf GraphQL type, and what was left out.
type Selection = (Vec<String>, Vec<(String, String)>, Vec<Skipped>);

fn node_selection(index: &Index<'_>, node_type: &str) -> Selection {
    const NESTED: [&str; 3] = ["dbId", "code", "description"];
    let mut lines = vec!["dbId".to_string()];
    let mut columns = Vec::new();
    if let Some(db_id) = index.field(node_type, "dbId") {
        columns.push(("dbId".to_string(), named(db_id.ty).to_string()));
    }
    let mut skipped = Vec::new();
    for field in index.fields(node_type).iter().filter(|f| f.name != "dbId") {
        let skip = |reason| Skipped { field: field.name.to_string(), reason };
        let leaf = named(field.ty);
        if is_list(field.ty) {
            skipped.push(skip("a list (lists cannot be flattened into columns)"));
        } else if needs_arguments(field) {
            skipped.push(skip("needs arguments"));
        } else if index.is_leaf(leaf) {
            lines.push(field.name.to_string());
            columns.push((field.name.to_string(), leaf.to_string()));
        } else if index.objects.contains_key(leaf) {
            let nested: Vec<&Field<'_>> = NESTED
                .iter()
                .filter_map(|n| index.field(leaf, n))
                .filter(|f| !is_list(f.ty) && !needs_arguments(f) && index.is_leaf(named(f.ty)))
                .collect();
            if nested.is_empty() {
                skipped.push(skip("an object without dbId, code or description"));
            } else {
                let names: Vec<&str> = nested.iter().map(|f| f.name).collect();
                lines.push(format!("{} {{ {} }}", field.name, names.join(" ")));
                for f in nested {
                    columns.push((format!("{}.{}", field.name, f.name), named(f.ty).to_string()));
                }
            }
        } else {
            skipped.push(skip("a union or an unknown type"));
        }
    }
    (lines, columns, skipped)
}

fn render_file(
    out: &mut String,
    name: &str,
    node_type: &str,
    db_id_element: Option<&str>,
    change_feed: Option<&str>,
    selection: &[String],
) -> fmt::Result {
    let entity = pascal(name);
    let fragment = format!("{node_type}Fields");
    writeln!(out, "# {name}: generated by `cargo xtask add-entity` from schema/xledger.graphql; edit freely.")?;
    writeln!(out, "# Every scalar and enum field of {node_type}, and the dbId, code and description of each nested")?;
    writeln!(out, "# object (one level; list fields are left out). Nested selections become columns `a.b`.")?;
    match (db_id_element, change_feed) {
        (_, Some(feed)) => {
            writeln!(out, "# Operations: an items page, items by dbIds, and a deltas page on `{feed}`.")?
        }
        (Some(_), None) => writeln!(
            out,
            "# Operations: an items page and items by dbIds. No change feed: a full-only entity, loaded in\n\
             # full on every pass."
        )?,
        (None, None) => writeln!(
            out,
            "# Operations: an items page. No change feed: a full-only entity, loaded in full on every pass."
        )?,
    }
    writeln!(out)?;
    render_connection_query(out, &format!("{entity}Page"), "$first: Int!, $after: String", name, "", &fragment)?;
    if let Some(element) = db_id_element {
        writeln!(out)?;
        render_connection_query(
            out,
            &format!("{entity}ByDbIds"),
            &format!("$dbIds: [{element}!]!, $first: Int!, $after: String"),
            name,
            ", filter: { dbId_in: $dbIds }",
            &fragment,
        )?;
    }
    if let Some(feed) = change_feed {
        let prefix = feed.strip_suffix("_deltas").unwrap_or(feed);
        writeln!(out)?;
        writeln!(out, "query {}Deltas($first: Int, $last: Int, $after: String) {{", pascal(prefix))?;
        writeln!(out, "  {feed}(first: $first, last: $last, after: $after) {{")?;
        writeln!(
            out,
            "    edges {{\n      cursor\n      node {{\n        dbId\n        mutationType\n      }}\n    }}"
        )?;
        writeln!(out, "    pageInfo {{\n      hasNextPage\n    }}\n  }}\n}}")?;
    }
    writeln!(out)?;
    writeln!(out, "fragment {fragment} on {node_type} {{")?;
    for line in selection {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "}}")
}

fn render_connection_query(
    out: &mut String,
    operation: &str,
    variables: &str,
    field: &str,
    filter: &str,
    fragment: &str,
) -> fmt::Result {
    writeln!(out, "query {operation}({variables}) {{")?;
    writeln!(out, "  {field}(first: $first, after: $after{filter}) {{")?;
    writeln!(out, "    edges {{\n      cursor\n      node {{\n        ...{fragment}\n      }}\n    }}")?;
    writeln!(out, "    pageInfo {{\n      hasNextPage\n    }}\n  }}\n}}")
}

/// A type hint for a `String` column whose name looks like money or a date, by its last field name.
fn propose_hint(column: &str, leaf_type: &str) -> Option<ProposedHint> {
    if leaf_type != "String" {
        return None;
    }
    let leaf = column.rsplit('.').next().unwrap_or(column);
    let words = camel_words(leaf);
    let last = words.last().map(String::as_str).unwrap_or_default();
    let (kind, reason) = if last == "date" || last == "birthday" || last == "from" || last == "to" {
        ("date", "named like a date")
    } else if last == "at" && words.len() > 1 {
        ("timestamp", "named like a date-time (…At)")
    } else if words.iter().any(|w| w == "hours") {
        ("decimal(18,6)", "named like hours")
    } else if words.iter().any(|w| w == "rate") {
        ("decimal(28,10)", "named like a rate")
    } else if words.iter().any(|w| MONEY_WORDS.contains(&w.as_str())) {
        ("decimal(28,6)", "named like money")
    } else {
        return None;
    };
    Some(ProposedHint { column: column.to_string(), kind, reason })
}

/// Words that make a `String` field look like money (as the hints file's scales assume).
const MONEY_WORDS: [&str; 14] = [
    "amount",
    "amounts",
    "balance",
    "cost",
    "costs",
    "discount",
    "fee",
    "fees",
    "price",
    "remaining",
    "revenue",
    "salary",
    "total",
    "wage",
];

/// `invoiceAmountCurrency` → `["invoice", "amount", "currency"]`; `_` also separates words.
fn camel_words(name: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut previous_lower = false;
    for ch in name.chars() {
        if ch == '_' {
            words.push(String::new());
            previous_lower = false;
            continue;
        }
        if (ch.is_ascii_uppercase() && previous_lower) || words.is_empty() {
            words.push(String::new());
        }
        previous_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        if let Some(word) = words.last_mut() {
            word.push(ch.to_ascii_lowercase());
        }
    }
    words.retain(|w| !w.is_empty());
    words
}

fn is_graphql_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn pascal(name: &str) -> String {
    name.split('_').filter(|part| !part.is_empty()).map(upper_first).collect()
}

fn upper_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn lower_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// Up to three candidates nearest to `name` by edit distance (case-insensitive), nearest first.
fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let name = name.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates.map(|c| (edit_distance(&name, &c.to_lowercase()), c)).collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, c)| c.to_string()).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Checking, writing and the command.
// ---------------------------------------------------------------------------------------------

/// Runs the build's analysis on the existing query files (the entity's own old file replaced) plus
/// the generated one, with the existing type hints; returns the new entity as the build sees it.
pub fn check(schema_sdl: &str, existing: &OurQueries, generated: &Generated) -> Result<Entity, AnalyzeError> {
    let mut files: Vec<QueryFile> =
        existing.query_files().iter().filter(|f| f.entity != generated.entity).cloned().collect();
    files.push(QueryFile { entity: generated.entity.clone(), text: generated.text.clone() });
    // The build reads the files in name order; so does the check, so a message is the build's.
    files.sort_by(|a, b| a.entity.cmp(&b.entity));
    let entities = xledger_codegen::analyze(schema_sdl, &files, existing.type_hints())?;
    // `analyze` returns one entity per file it is given; this error would be a bug in it.
    entities.into_iter().find(|e| e.name == generated.entity).ok_or_else(|| AnalyzeError::Query {
        entity: generated.entity.clone(),
        operation: None,
        message: "the analysis returned no entity for this file".into(),
    })
}

/// Runs the command with its report going to `out`.
pub fn run_with(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let schema_dir = args.schema_dir.unwrap_or_else(|| crate::workspace_root().join("schema"));
    let schema_path = schema_dir.join("xledger.graphql");
    let schema_sdl = std::fs::read_to_string(&schema_path)
        .map_err(|source| FetchSchemaError::Io { path: schema_path.clone(), source })
        .map_err(AddEntityError::from)?;
    let path = schema_dir.join("queries").join(format!("{}.graphql", args.name));
    if path.exists() && !args.force {
        return Err(AddEntityError::Exists { path }.into());
    }
    let existing = OurQueries::load(&schema_dir).map_err(AddEntityError::from)?;
    let generated = generate(&schema_sdl, &args.name, args.deltas.as_deref())?;
    let entity = check(&schema_sdl, &existing, &generated).map_err(AddEntityError::DoesNotValidate)?;

    if args.dry_run {
        write!(out, "{}", generated.text)?;
        writeln!(out, "add-entity: --dry-run: {} not written.", path.display())?;
    } else {
        write_atomically(&path, &generated.text)?;
        writeln!(out, "add-entity: wrote {}.", path.display())?;
    }
    report(out, &generated, &entity)?;
    Ok(())
}

fn report(out: &mut dyn Write, generated: &Generated, entity: &Entity) -> std::io::Result<()> {
    let feed = match (&generated.change_feed, &generated.feed_unusable) {
        (Some(feed), _) => format!("change feed `{feed}`"),
        (None, Some(why)) => format!("full-only: {why}"),
        (None, None) => "full-only: the schema has no change feed for it (--deltas FEED names one)".to_string(),
    };
    writeln!(out, "  {} columns; {feed}.", entity.columns.len())?;
    if !generated.skipped.is_empty() {
        writeln!(out, "Left out:")?;
        for skipped in &generated.skipped {
            writeln!(out, "  {}: {}", skipped.field, skipped.reason)?;
        }
    }
    if generated.proposed_hints.is_empty() {
        writeln!(out, "No String field is named like money or a date: no type hints to propose.")?;
    } else {
        writeln!(out, "Proposed schema/type-hints.toml lines (NOT applied; keep the ones that are right):")?;
        writeln!(out, "[{}]", generated.entity)?;
        for hint in &generated.proposed_hints {
            writeln!(out, "{hint}")?;
        }
    }
    if let Some(field) = &generated.subscription_field {
        writeln!(
            out,
            "The schema has a webhook subscription `{field}`: to use it, add a `subscription` operation \
             (see schema/queries/projects.graphql)."
        )?;
    }
    writeln!(out, "Next: review the file and the hints, then rebuild (`cargo build`).")
}

/// Runs the command, reporting on stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    run_with(args, &mut stdout)?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_words_split_on_case_changes_and_underscores() {
        assert_eq!(camel_words("hourlyRevenueCurrency"), ["hourly", "revenue", "currency"]);
        assert_eq!(camel_words("createdAt"), ["created", "at"]);
        assert_eq!(camel_words("glObject1"), ["gl", "object1"]);
        assert_eq!(camel_words("arTransaction_deltas"), ["ar", "transaction", "deltas"]);
        assert_eq!(camel_words("dbId"), ["db", "id"]);
    }

    #[test]
    fn hints_are_proposed_for_string_money_and_date_names_only() {
        let kind = |column: &str, ty: &str| propose_hint(column, ty).map(|h| h.kind);
        assert_eq!(kind("invoiceAmount", "String"), Some("decimal(28,6)"));
        assert_eq!(kind("totalRevenue", "String"), Some("decimal(28,6)"));
        assert_eq!(kind("workingHours", "String"), Some("decimal(18,6)"));
        assert_eq!(kind("exchangeRate", "String"), Some("decimal(28,10)"));
        assert_eq!(kind("invoiceDate", "String"), Some("date"));
        assert_eq!(kind("employmentFrom", "String"), Some("date"));
        assert_eq!(kind("to", "String"), Some("date"));
        assert_eq!(kind("contact.birthday", "String"), Some("date"));
        assert_eq!(kind("approvedAt", "String"), Some("timestamp"));
        // Not String, or not named like money or a date.
        assert_eq!(kind("createdAt", "DateTimeString"), None);
        assert_eq!(kind("invoiceAmount", "Float"), None);
        assert_eq!(kind("description", "String"), None);
        assert_eq!(kind("currencyCode", "String"), None);
        assert_eq!(kind("at", "String"), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("accounts", "accounts"), 0);
        assert_eq!(edit_distance("acounts", "accounts"), 1);
        assert_eq!(edit_distance("accuonts", "accounts"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn pascal_case_of_names_and_feed_prefixes() {
        assert_eq!(pascal("arTransactions"), "ArTransactions");
        assert_eq!(pascal("account"), "Account");
        assert_eq!(pascal("gl_object"), "GlObject");
    }

    #[test]
    fn toml_keys_with_dots_are_quoted() {
        let hint = ProposedHint { column: "period.fromDate".into(), kind: "date", reason: "named like a date" };
        assert_eq!(hint.to_string(), "\"period.fromDate\" = \"date\"  # named like a date");
        let hint = ProposedHint { column: "invoiceDate".into(), kind: "date", reason: "named like a date" };
        assert_eq!(hint.to_string(), "invoiceDate = \"date\"  # named like a date");
    }
}
