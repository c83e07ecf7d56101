//! Analysis of the schema snapshot and the per-entity query files, and rendering of the entity
//! registry as Rust source.
//!
//! Shared by `build.rs` (which writes the registry into `OUT_DIR`) and by the crate's tests (which
//! prove that a new query file becomes a registry entry with no hand-written Rust). It must not
//! depend on anything the build script does not have: std, `graphql-parser` and `toml`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use graphql_parser::query as q;
use graphql_parser::schema as s;

/// How the lake stores a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int64,
    Decimal { precision: u8, scale: i8 },
    Date,
    Timestamp,
    Float64,
    Boolean,
    Utf8,
}

/// How the value arrives in the JSON response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Json {
    String,
    Number,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Flattened name, `a.b.c`.
    pub name: String,
    pub path: Vec<String>,
    pub kind: Kind,
    pub json: Json,
    /// The named GraphQL type of the leaf, e.g. `Int64String` (without `!`).
    pub graphql_type: String,
    /// False when the schema declares the leaf non-null (`Int64String!`).
    pub nullable: bool,
    /// True when a type hint (not the schema) decided `kind`.
    pub hinted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub name: String,
    /// The operation with the fragments it uses, printed canonically.
    pub document: String,
}

/// An entity's change feed: its root field and the two operations incremental passes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFeed {
    /// The `<entity>_deltas` root field.
    pub field: String,
    pub deltas: Operation,
    pub by_db_ids: Operation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbIdKind {
    Int64String,
    Int,
}

#[derive(Debug, Clone)]
pub struct Entity {
    pub name: String,
    pub items_field: String,
    pub node_type: String,
    pub db_id_kind: DbIdKind,
    pub items_page: Operation,
    pub change_feed: Option<ChangeFeed>,
    pub columns: Vec<Column>,
    pub fingerprint: String,
}

/// One query file: the entity name (file stem) and its text.
pub struct QueryFile {
    pub entity: String,
    pub text: String,
}

/// Reads the schema (SDL), the query files and the type hints (TOML) and returns one entity per
/// query file, in the order given. Every error names the file, operation and field it is about.
pub fn analyze(schema_sdl: &str, queries: &[QueryFile], hints_toml: &str) -> Result<Vec<Entity>, String> {
    let schema = Schema::parse(schema_sdl)?;
    let hints = parse_hints(hints_toml)?;
    let known: BTreeSet<&str> = queries.iter().map(|f| f.entity.as_str()).collect();
    for entity in hints.keys() {
        if !known.contains(entity.as_str()) {
            return Err(format!(
                "schema/type-hints.toml: section [{entity}] names no entity (there is no schema/queries/{entity}.graphql)"
            ));
        }
    }
    let mut entities = Vec::with_capacity(queries.len());
    for file in queries {
        let no_hints = BTreeMap::new();
        let entity_hints = hints.get(&file.entity).unwrap_or(&no_hints);
        let entity = analyze_entity(&schema, file, entity_hints)
            .map_err(|e| format!("schema/queries/{}.graphql: {e}", file.entity))?;
        entities.push(entity);
    }
    Ok(entities)
}

/// Named, typed members of an object, input or argument list, in declaration order.
type Members<'a> = Vec<(&'a str, s::Type<'a, &'a str>)>;

struct Schema<'a> {
    objects: HashMap<&'a str, Members<'a>>,
    inputs: HashMap<&'a str, Members<'a>>,
    enums: BTreeSet<&'a str>,
    scalars: BTreeSet<&'a str>,
    /// Arguments of every object field, keyed by (type, field): the filter types live there.
    arguments: HashMap<(&'a str, &'a str), Members<'a>>,
    query_type: &'a str,
}

impl<'a> Schema<'a> {
    fn parse(sdl: &'a str) -> Result<Self, String> {
        let doc = s::parse_schema::<&str>(sdl).map_err(|e| format!("schema/xledger.graphql does not parse: {e}"))?;
        let mut schema = Schema {
            objects: HashMap::new(),
            inputs: HashMap::new(),
            enums: BTreeSet::new(),
            scalars: ["Int", "Float", "String", "Boolean", "ID"].into_iter().collect(),
            arguments: HashMap::new(),
            query_type: "Query",
        };
        for def in doc.definitions {
            match def {
                s::Definition::SchemaDefinition(d) => {
                    if let Some(q) = d.query {
                        schema.query_type = q;
                    }
                }
                s::Definition::TypeDefinition(t) => match t {
                    s::TypeDefinition::Object(o) => {
                        for f in &o.fields {
                            let args = f.arguments.iter().map(|a| (a.name, a.value_type.clone())).collect();
                            schema.arguments.insert((o.name, f.name), args);
                        }
                        schema.objects.insert(o.name, o.fields.into_iter().map(|f| (f.name, f.field_type)).collect());
                    }
                    s::TypeDefinition::Interface(o) => {
                        schema.objects.insert(o.name, o.fields.into_iter().map(|f| (f.name, f.field_type)).collect());
                    }
                    s::TypeDefinition::InputObject(o) => {
                        schema.inputs.insert(o.name, o.fields.into_iter().map(|f| (f.name, f.value_type)).collect());
                    }
                    s::TypeDefinition::Enum(e) => {
                        schema.enums.insert(e.name);
                    }
                    s::TypeDefinition::Scalar(sc) => {
                        schema.scalars.insert(sc.name);
                    }
                    s::TypeDefinition::Union(_) => {}
                },
                s::Definition::TypeExtension(_) | s::Definition::DirectiveDefinition(_) => {}
            }
        }
        if !schema.objects.contains_key(schema.query_type) {
            return Err(format!("schema/xledger.graphql has no query type `{}`", schema.query_type));
        }
        Ok(schema)
    }

    fn field(&self, type_name: &str, field: &str) -> Result<&s::Type<'a, &'a str>, String> {
        let fields = self.objects.get(type_name).ok_or_else(|| format!("type `{type_name}` is not an object type"))?;
        fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("type `{type_name}` has no field `{field}`"))
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

fn type_string<'a>(t: &s::Type<'a, &'a str>) -> String {
    match t {
        s::Type::NamedType(n) => (*n).to_string(),
        s::Type::ListType(inner) => format!("[{}]", type_string(inner)),
        s::Type::NonNullType(inner) => format!("{}!", type_string(inner)),
    }
}

enum Role {
    Items,
    ByDbIds(DbIdKind),
    Deltas,
}

fn analyze_entity(schema: &Schema<'_>, file: &QueryFile, hints: &BTreeMap<String, Kind>) -> Result<Entity, String> {
    let doc = q::parse_query::<&str>(&file.text).map_err(|e| format!("does not parse: {e}"))?;
    let mut fragments: BTreeMap<&str, &q::FragmentDefinition<'_, &str>> = BTreeMap::new();
    let mut operations = Vec::new();
    for def in &doc.definitions {
        match def {
            q::Definition::Fragment(f) => {
                fragments.insert(f.name, f);
            }
            q::Definition::Operation(q::OperationDefinition::Query(op)) => operations.push(op),
            q::Definition::Operation(_) => return Err("only named `query` operations are allowed".into()),
        }
    }

    let mut items: Option<(Operation, String, String, Vec<Column>)> = None;
    let mut by_ids: Option<(Operation, String, Vec<Column>, DbIdKind)> = None;
    let mut deltas: Option<(Operation, String)> = None;
    for op in operations {
        let op_name = op.name.ok_or("every operation needs a name")?;
        let ctx = |e: String| format!("operation {op_name}: {e}");
        let root = single_root_field(&op.selection_set).map_err(ctx)?;
        let root_type = schema.field(schema.query_type, root.name).map_err(ctx)?;
        let connection = named(root_type);
        let role = classify(schema, op, root).map_err(ctx)?;
        let node_type =
            named(schema.field(named(schema.field(connection, "edges").map_err(ctx)?), "node").map_err(ctx)?);
        let node_selection = connection_node_selection(root).map_err(ctx)?;
        let printed = Operation { name: op_name.to_string(), document: print_operation(op, &fragments) };
        match role {
            Role::Items => {
                let columns = flatten(schema, node_type, &node_selection, &fragments, &mut Vec::new()).map_err(ctx)?;
                if items.replace((printed, root.name.to_string(), node_type.to_string(), columns)).is_some() {
                    return Err(ctx("a second items-page operation (one per file)".into()));
                }
            }
            Role::ByDbIds(kind) => {
                let columns = flatten(schema, node_type, &node_selection, &fragments, &mut Vec::new()).map_err(ctx)?;
                if by_ids.replace((printed, root.name.to_string(), columns, kind)).is_some() {
                    return Err(ctx("a second by-dbIds operation (one per file)".into()));
                }
            }
            Role::Deltas => {
                let columns = flatten(schema, node_type, &node_selection, &fragments, &mut Vec::new()).map_err(ctx)?;
                for required in ["dbId", "mutationType"] {
                    if !columns.iter().any(|c| c.name == required) {
                        return Err(ctx(format!("a deltas operation must select `{required}` on its nodes")));
                    }
                }
                if deltas.replace((printed, root.name.to_string())).is_some() {
                    return Err(ctx("a second deltas operation (one per file)".into()));
                }
            }
        }
    }

    let (items_page, items_field, node_type, mut columns) =
        items.ok_or("no items-page operation (a query on the entity's connection without a dbId_in filter)")?;
    let db_id_kind = match &by_ids {
        Some((op, field, by_id_columns, kind)) => {
            if *field != items_field {
                return Err(format!(
                    "operation {}: queries `{field}` but the items page queries `{items_field}`",
                    op.name
                ));
            }
            if *by_id_columns != columns {
                return Err(format!(
                    "operation {}: selects different node fields than the items page; both must select the same fields (use one fragment)",
                    op.name
                ));
            }
            *kind
        }
        None => match columns.iter().find(|c| c.name == "dbId") {
            Some(c) if c.json == Json::String => DbIdKind::Int64String,
            Some(_) => DbIdKind::Int,
            None => return Err("the items page must select `dbId`".into()),
        },
    };
    match columns.first() {
        Some(c) if c.name == "dbId" => {}
        _ => return Err("the node selection must start with `dbId`".into()),
    }

    for (column, kind) in hints {
        let Some(c) = columns.iter_mut().find(|c| &c.name == column) else {
            return Err(format!(
                "schema/type-hints.toml: [{}] `{column}` names a column the query does not select (columns: {})",
                file.entity,
                columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        };
        check_hint(c, *kind).map_err(|e| format!("schema/type-hints.toml: [{}] `{column}`: {e}", file.entity))?;
        c.kind = *kind;
        c.hinted = true;
    }

    let change_feed = match (deltas, by_ids) {
        (Some((deltas, field)), Some((by_db_ids, ..))) => Some(ChangeFeed { field, deltas, by_db_ids }),
        (None, _) => None,
        (Some(_), None) => {
            return Err("an entity with a deltas operation also needs a by-dbIds operation (filter: { dbId_in: $dbIds }) to fetch changed rows".into());
        }
    };
    let fingerprint = fingerprint(&columns);
    Ok(Entity {
        name: file.entity.clone(),
        items_field,
        node_type,
        db_id_kind,
        items_page,
        change_feed,
        columns,
        fingerprint,
    })
}

fn check_hint(column: &Column, kind: Kind) -> Result<(), String> {
    let ok = match (kind, column.json) {
        (Kind::Decimal { precision, scale }, json) => {
            if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision {
                return Err(format!("decimal({precision},{scale}) is out of range (1 <= P <= 38, 0 <= S <= P)"));
            }
            json != Json::Boolean
        }
        (Kind::Date | Kind::Timestamp | Kind::Utf8, json) => json == Json::String,
        (Kind::Int64, json) => json != Json::Boolean,
        (Kind::Float64, json) => json == Json::Number,
        (Kind::Boolean, json) => json == Json::Boolean,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cannot read a {:?} from the JSON {:?} the schema type `{}` sends",
            kind, column.json, column.graphql_type
        ))
    }
}

fn single_root_field<'q, 'a>(set: &'q q::SelectionSet<'a, &'a str>) -> Result<&'q q::Field<'a, &'a str>, String> {
    match set.items.as_slice() {
        [q::Selection::Field(f)] => {
            if f.alias.is_some() {
                return Err("the root field must not be aliased".into());
            }
            Ok(f)
        }
        _ => Err("an operation must select exactly one root field (the entity's connection)".into()),
    }
}

fn classify<'a>(schema: &Schema<'_>, op: &q::Query<'a, &'a str>, root: &q::Field<'a, &'a str>) -> Result<Role, String> {
    if root.name.ends_with("_deltas") {
        return Ok(Role::Deltas);
    }
    let filter = root.arguments.iter().find(|(name, _)| *name == "filter");
    let Some((_, q::Value::Object(filter))) = filter else {
        return Ok(Role::Items);
    };
    let Some(db_id_in) = filter.get("dbId_in") else {
        return Ok(Role::Items);
    };
    let q::Value::Variable(var) = db_id_in else {
        return Err("`dbId_in` must be bound to a variable (e.g. $dbIds)".into());
    };
    let def = op
        .variable_definitions
        .iter()
        .find(|v| v.name == *var)
        .ok_or_else(|| format!("variable ${var} is not declared"))?;
    let element = named(&def.var_type);
    // The filter's declared element type is the truth; the variable must match it.
    let root_args_type = filter_input_type(schema, root.name)?;
    let declared = schema
        .inputs
        .get(root_args_type.as_str())
        .and_then(|fields| fields.iter().find(|(n, _)| *n == "dbId_in"))
        .map(|(_, t)| named(t))
        .ok_or_else(|| format!("input `{root_args_type}` has no `dbId_in`"))?;
    if declared != element {
        return Err(format!("${var} is a list of `{element}` but `{root_args_type}.dbId_in` takes `{declared}`"));
    }
    match element {
        "Int64String" => Ok(Role::ByDbIds(DbIdKind::Int64String)),
        "Int" => Ok(Role::ByDbIds(DbIdKind::Int)),
        other => Err(format!("`dbId_in` of `{other}` is not supported (Int64String or Int)")),
    }
}

/// The input type of the `filter` argument of a root field.
fn filter_input_type(schema: &Schema<'_>, root_field: &str) -> Result<String, String> {
    schema
        .arguments
        .get(&(schema.query_type, root_field))
        .and_then(|args| args.iter().find(|(name, _)| *name == "filter"))
        .map(|(_, t)| named(t).to_string())
        .ok_or_else(|| format!("`{root_field}` takes no `filter` argument"))
}

/// The selection under `edges { node { … } }` of a connection field, checking that `cursor` and
/// `pageInfo { hasNextPage }` are selected too (pagination needs them).
fn connection_node_selection<'q, 'a>(
    root: &'q q::Field<'a, &'a str>,
) -> Result<Vec<&'q q::Selection<'a, &'a str>>, String> {
    let find = |set: &'q q::SelectionSet<'a, &'a str>, name: &str| {
        set.items.iter().find_map(|sel| match sel {
            q::Selection::Field(f) if f.name == name && f.alias.is_none() => Some(f),
            _ => None,
        })
    };
    let edges = find(&root.selection_set, "edges").ok_or("select `edges { cursor node { … } }`")?;
    find(&edges.selection_set, "cursor").ok_or("select `cursor` on `edges` (pagination needs it)")?;
    let page_info = find(&root.selection_set, "pageInfo").ok_or("select `pageInfo { hasNextPage }`")?;
    find(&page_info.selection_set, "hasNextPage").ok_or("select `hasNextPage` in `pageInfo`")?;
    let node = find(&edges.selection_set, "node").ok_or("select `node { … }` on `edges`")?;
    Ok(node.selection_set.items.iter().collect())
}

fn flatten<'a>(
    schema: &Schema<'_>,
    type_name: &str,
    selection: &[&q::Selection<'a, &'a str>],
    fragments: &BTreeMap<&'a str, &q::FragmentDefinition<'a, &'a str>>,
    prefix: &mut Vec<String>,
) -> Result<Vec<Column>, String> {
    let mut out = Vec::new();
    for sel in selection {
        match sel {
            q::Selection::Field(f) => {
                if f.alias.is_some() {
                    return Err(format!("field `{}` is aliased; aliases would rename lake columns", f.name));
                }
                let field_type = schema.field(type_name, f.name)?;
                if is_list(field_type) {
                    return Err(format!(
                        "field `{type_name}.{}` is a list; lists cannot be flattened into columns",
                        f.name
                    ));
                }
                let leaf = named(field_type);
                prefix.push(f.name.to_string());
                if f.selection_set.items.is_empty() {
                    out.push(leaf_column(schema, prefix, leaf, !type_string(field_type).ends_with('!'))?);
                } else {
                    if !schema.objects.contains_key(leaf) {
                        return Err(format!(
                            "field `{}` of scalar type `{leaf}` has a sub-selection",
                            prefix.join(".")
                        ));
                    }
                    let items: Vec<_> = f.selection_set.items.iter().collect();
                    out.extend(flatten(schema, leaf, &items, fragments, prefix)?);
                }
                prefix.pop();
            }
            q::Selection::FragmentSpread(spread) => {
                let frag = fragments
                    .get(spread.fragment_name)
                    .ok_or_else(|| format!("fragment `{}` is not defined", spread.fragment_name))?;
                let q::TypeCondition::On(on) = frag.type_condition;
                if on != type_name {
                    return Err(format!("fragment `{}` is on `{on}` but spread into `{type_name}`", frag.name));
                }
                let items: Vec<_> = frag.selection_set.items.iter().collect();
                out.extend(flatten(schema, type_name, &items, fragments, prefix)?);
            }
            q::Selection::InlineFragment(inline) => {
                let items: Vec<_> = inline.selection_set.items.iter().collect();
                out.extend(flatten(schema, type_name, &items, fragments, prefix)?);
            }
        }
    }
    let mut seen = BTreeSet::new();
    for c in &out {
        if !seen.insert(c.name.as_str()) {
            return Err(format!("column `{}` is selected twice", c.name));
        }
    }
    Ok(out)
}

fn leaf_column(schema: &Schema<'_>, path: &[String], leaf: &str, nullable: bool) -> Result<Column, String> {
    let name = path.join(".");
    let (kind, json) = match leaf {
        "Int64String" => (Kind::Int64, Json::String),
        "Int" => (Kind::Int64, Json::Number),
        "Float" => (Kind::Float64, Json::Number),
        "Boolean" => (Kind::Boolean, Json::Boolean),
        "String" | "ID" => (Kind::Utf8, Json::String),
        "DateTimeString" => (Kind::Timestamp, Json::String),
        other if schema.enums.contains(other) => (Kind::Utf8, Json::String),
        other if schema.scalars.contains(other) => (Kind::Utf8, Json::String),
        other => {
            return Err(format!("field `{name}` has type `{other}`, which is not a scalar or enum: select its fields"));
        }
    };
    Ok(Column { name, path: path.to_vec(), kind, json, graphql_type: leaf.to_string(), nullable, hinted: false })
}

fn print_operation<'a>(
    op: &q::Query<'a, &'a str>,
    fragments: &BTreeMap<&'a str, &q::FragmentDefinition<'a, &'a str>>,
) -> String {
    let mut used = BTreeSet::new();
    collect_spreads(&op.selection_set, fragments, &mut used);
    let mut doc =
        q::Document { definitions: vec![q::Definition::Operation(q::OperationDefinition::Query(op.clone()))] };
    for name in used {
        if let Some(f) = fragments.get(name) {
            doc.definitions.push(q::Definition::Fragment((*f).clone()));
        }
    }
    doc.to_string()
}

fn collect_spreads<'a>(
    set: &q::SelectionSet<'a, &'a str>,
    fragments: &BTreeMap<&'a str, &q::FragmentDefinition<'a, &'a str>>,
    used: &mut BTreeSet<&'a str>,
) {
    for sel in &set.items {
        match sel {
            q::Selection::Field(f) => collect_spreads(&f.selection_set, fragments, used),
            q::Selection::FragmentSpread(s) => {
                if used.insert(s.fragment_name)
                    && let Some(f) = fragments.get(s.fragment_name)
                {
                    collect_spreads(&f.selection_set, fragments, used);
                }
            }
            q::Selection::InlineFragment(i) => collect_spreads(&i.selection_set, fragments, used),
        }
    }
}

fn parse_hints(text: &str) -> Result<BTreeMap<String, BTreeMap<String, Kind>>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("schema/type-hints.toml does not parse: {e}"))?;
    let mut out = BTreeMap::new();
    for (entity, columns) in table {
        let columns = columns
            .as_table()
            .ok_or_else(|| format!("schema/type-hints.toml: `{entity}` must be a table [{entity}]"))?;
        let mut hints = BTreeMap::new();
        for (column, value) in columns {
            let value = value
                .as_str()
                .ok_or_else(|| format!("schema/type-hints.toml: [{entity}] `{column}` must be a string"))?;
            let kind = parse_kind(value).map_err(|e| format!("schema/type-hints.toml: [{entity}] `{column}`: {e}"))?;
            hints.insert(column.clone(), kind);
        }
        out.insert(entity, hints);
    }
    Ok(out)
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    let t = text.trim();
    Ok(match t {
        "date" => Kind::Date,
        "timestamp" => Kind::Timestamp,
        "int64" => Kind::Int64,
        "float64" => Kind::Float64,
        "boolean" => Kind::Boolean,
        "utf8" => Kind::Utf8,
        _ => {
            let inner = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')).ok_or_else(|| {
                format!("unknown type `{t}` (decimal(P,S), date, timestamp, int64, float64, boolean, utf8)")
            })?;
            let (p, sc) = inner.split_once(',').ok_or_else(|| format!("`{t}`: expected decimal(P,S)"))?;
            let precision: u8 = p.trim().parse().map_err(|_| format!("`{t}`: precision is not a number"))?;
            let scale: i8 = sc.trim().parse().map_err(|_| format!("`{t}`: scale is not a number"))?;
            Kind::Decimal { precision, scale }
        }
    })
}

/// The Arrow type text of a column, as the lake stores it (also the fingerprint's input).
pub fn arrow_type_text(kind: Kind) -> String {
    match kind {
        Kind::Int64 => "Int64".into(),
        Kind::Decimal { precision, scale } => format!("Decimal128({precision}, {scale})"),
        Kind::Date => "Date32".into(),
        Kind::Timestamp => "Timestamp(Microsecond, \"UTC\")".into(),
        Kind::Float64 => "Float64".into(),
        Kind::Boolean => "Boolean".into(),
        Kind::Utf8 => "Utf8".into(),
    }
}

/// FNV-1a 64 over the column names and lake types (plus the two trailing columns): equal for two
/// builds exactly when their files have the same schema.
fn fingerprint(columns: &[Column]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0u8)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for c in columns {
        feed(&c.name);
        feed(&arrow_type_text(c.kind));
    }
    feed("mutationType");
    feed("Utf8");
    feed("_synced_at");
    feed(&arrow_type_text(Kind::Timestamp));
    format!("{hash:016x}")
}

/// Renders the registry as Rust source for `include!`.
pub fn render_registry(entities: &[Entity]) -> String {
    let mut out = String::new();
    out.push_str("// @generated by xledger-model/build.rs from schema/. Do not edit.\n\n");
    out.push_str("/// Every entity the query files under `schema/queries/` define, in file-name order.\n");
    out.push_str("pub static ENTITIES: &[EntitySpec] = &[\n");
    for e in entities {
        let _ = writeln!(out, "    EntitySpec {{");
        let _ = writeln!(out, "        name: {:?},", e.name);
        let _ = writeln!(out, "        items_field: {:?},", e.items_field);
        let _ = writeln!(out, "        node_type: {:?},", e.node_type);
        let _ = writeln!(
            out,
            "        db_id_kind: DbIdKind::{},",
            match e.db_id_kind {
                DbIdKind::Int64String => "Int64String",
                DbIdKind::Int => "Int",
            }
        );
        let _ = writeln!(out, "        items_page: {},", render_op(&e.items_page));
        let change_feed = e.change_feed.as_ref().map_or("None".into(), |feed| {
            format!(
                "Some(ChangeFeed {{ field: {:?}, deltas: {}, by_db_ids: {} }})",
                feed.field,
                render_op(&feed.deltas),
                render_op(&feed.by_db_ids)
            )
        });
        let _ = writeln!(out, "        change_feed: {change_feed},");
        let _ = writeln!(out, "        fingerprint: {:?},", e.fingerprint);
        let _ = writeln!(out, "        columns: &[");
        for c in &e.columns {
            let path: Vec<String> = c.path.iter().map(|p| format!("{p:?}")).collect();
            let _ = writeln!(
                out,
                "            ColumnSpec {{ name: {:?}, path: &[{}], kind: {}, json: JsonRepr::{:?}, graphql_type: {:?}, nullable: {}, hinted: {} }},",
                c.name,
                path.join(", "),
                render_kind(c.kind),
                c.json,
                c.graphql_type,
                c.nullable,
                c.hinted
            );
        }
        let _ = writeln!(out, "        ],");
        let _ = writeln!(out, "    }},");
    }
    out.push_str("];\n");
    out
}

fn render_op(op: &Operation) -> String {
    format!("OperationDoc {{ name: {:?}, document: {:?} }}", op.name, op.document)
}

fn render_kind(kind: Kind) -> String {
    match kind {
        Kind::Decimal { precision, scale } => {
            format!("ColumnKind::Decimal {{ precision: {precision}, scale: {scale} }}")
        }
        other => format!("ColumnKind::{other:?}"),
    }
}
