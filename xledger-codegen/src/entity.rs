//! One query file against the schema: its operations classified and checked, its node selection
//! flattened into columns, its type hints applied.

use std::collections::{BTreeMap, BTreeSet};

use graphql_parser::query as q;

use crate::hints;
use crate::schema::{Schema, is_list, is_non_null, named};
use crate::{
    AnalyzeError, ChangeFeed, Column, ColumnKind, DbIdKind, Entity, JsonRepr, Operation, QueryFile, WebhookSubscription,
};

type Fragments<'q, 'a> = BTreeMap<&'a str, &'q q::FragmentDefinition<'a, &'a str>>;

enum Role {
    Items,
    ByDbIds(DbIdKind),
    Deltas,
}

pub(crate) fn analyze(
    schema: &Schema<'_>,
    file: &QueryFile,
    hints: &BTreeMap<String, ColumnKind>,
) -> Result<Entity, AnalyzeError> {
    let file_error = |message: String| AnalyzeError::Query { entity: file.entity.clone(), operation: None, message };
    let doc = q::parse_query::<&str>(&file.text).map_err(|e| file_error(format!("does not parse: {e}")))?;
    let mut fragments: Fragments<'_, '_> = BTreeMap::new();
    let mut queries = Vec::new();
    let mut subscriptions = Vec::new();
    for def in &doc.definitions {
        match def {
            q::Definition::Fragment(f) => {
                fragments.insert(f.name, f);
            }
            q::Definition::Operation(q::OperationDefinition::Query(op)) => queries.push(op),
            q::Definition::Operation(q::OperationDefinition::Subscription(op)) => subscriptions.push(op),
            q::Definition::Operation(_) => {
                return Err(file_error(
                    "only named `query` operations and at most one named `subscription` are allowed".into(),
                ));
            }
        }
    }

    let mut items: Option<(Operation, String, String, Vec<Column>)> = None;
    let mut by_ids: Option<(Operation, String, Vec<Column>, DbIdKind)> = None;
    let mut deltas: Option<(Operation, String)> = None;
    for op in queries {
        let op_name = op.name.ok_or_else(|| file_error("every operation needs a name".into()))?;
        let ctx = |message: String| AnalyzeError::Query {
            entity: file.entity.clone(),
            operation: Some(op_name.to_string()),
            message,
        };
        let root = single_root_field(&op.selection_set).map_err(ctx)?;
        let root_type = schema.field(schema.query_type, root.name).map_err(ctx)?;
        let connection = named(root_type);
        let role = classify(schema, op, root).map_err(ctx)?;
        let node_type =
            named(schema.field(named(schema.field(connection, "edges").map_err(ctx)?), "node").map_err(ctx)?);
        let node_selection = connection_node_selection(root).map_err(ctx)?;
        let printed = Operation {
            name: op_name.to_string(),
            document: print_operation(q::OperationDefinition::Query(op.clone()), &op.selection_set, &fragments),
        };
        let columns = flatten(schema, node_type, &node_selection, &fragments, &mut Vec::new()).map_err(ctx)?;
        match role {
            Role::Items => {
                if items.replace((printed, root.name.to_string(), node_type.to_string(), columns)).is_some() {
                    return Err(ctx("a second items-page operation (one per file)".into()));
                }
            }
            Role::ByDbIds(kind) => {
                if by_ids.replace((printed, root.name.to_string(), columns, kind)).is_some() {
                    return Err(ctx("a second by-dbIds operation (one per file)".into()));
                }
            }
            Role::Deltas => {
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

    let (items_page, items_field, node_type, mut columns) = items.ok_or_else(|| {
        file_error("no items-page operation (a query on the entity's connection without a dbId_in filter)".into())
    })?;
    let db_id_kind = match &by_ids {
        Some((op, field, by_id_columns, kind)) => {
            let ctx = |message: String| AnalyzeError::Query {
                entity: file.entity.clone(),
                operation: Some(op.name.clone()),
                message,
            };
            if *field != items_field {
                return Err(ctx(format!("queries `{field}` but the items page queries `{items_field}`")));
            }
            if *by_id_columns != columns {
                return Err(ctx("selects different node fields than the items page; both must select the same \
                                fields (use one fragment)"
                    .into()));
            }
            *kind
        }
        None => match columns.iter().find(|c| c.name == "dbId") {
            Some(c) if c.json == JsonRepr::String => DbIdKind::Int64String,
            Some(_) => DbIdKind::Int,
            None => return Err(file_error("the items page must select `dbId`".into())),
        },
    };
    match columns.first() {
        Some(c) if c.name == "dbId" => {}
        _ => return Err(file_error("the node selection must start with `dbId`".into())),
    }

    for (column, kind) in hints {
        let Some(c) = columns.iter_mut().find(|c| &c.name == column) else {
            return Err(AnalyzeError::TypeHints(format!(
                "[{}] `{column}` names a column the query does not select (columns of schema/queries/{}.graphql: {})",
                file.entity,
                file.entity,
                columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        hints::check(c, *kind).map_err(|e| AnalyzeError::TypeHints(format!("[{}] `{column}`: {e}", file.entity)))?;
        c.kind = *kind;
        c.hinted = true;
    }

    let change_feed = match (deltas, by_ids) {
        (Some((deltas, field)), Some((by_db_ids, ..))) => Some(ChangeFeed { field, deltas, by_db_ids }),
        (None, _) => None,
        (Some(_), None) => {
            return Err(file_error(
                "an entity with a deltas operation also needs a by-dbIds operation (filter: { dbId_in: $dbIds }) \
                 to fetch changed rows"
                    .into(),
            ));
        }
    };

    let webhook = match subscriptions.as_slice() {
        [] => None,
        [op, rest @ ..] => {
            let op_name = op.name.ok_or_else(|| file_error("every operation needs a name".into()))?;
            let ctx = |message: String| AnalyzeError::Query {
                entity: file.entity.clone(),
                operation: Some(op_name.to_string()),
                message,
            };
            if let Some(second) = rest.first() {
                return Err(AnalyzeError::Query {
                    entity: file.entity.clone(),
                    operation: second.name.map(str::to_string),
                    message: "a second subscription operation (one per file)".into(),
                });
            }
            if change_feed.is_none() {
                return Err(ctx("a subscription only wakes an incremental pass, so the entity needs a change feed \
                                (a deltas and a by-dbIds operation)"
                    .into()));
            }
            let field = check_subscription(schema, op, &node_type, &fragments).map_err(ctx)?;
            let subscription = Operation {
                name: op_name.to_string(),
                document: print_operation(
                    q::OperationDefinition::Subscription((*op).clone()),
                    &op.selection_set,
                    &fragments,
                ),
            };
            Some(WebhookSubscription { field, subscription })
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
        webhook,
        columns,
        fingerprint,
    })
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
        .get(root_args_type)
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
fn filter_input_type<'a>(schema: &Schema<'a>, root_field: &str) -> Result<&'a str, String> {
    schema
        .arguments
        .get(&(schema.query_type, root_field))
        .and_then(|args| args.iter().find(|(name, _)| *name == "filter"))
        .map(|(_, t)| named(t))
        .ok_or_else(|| format!("`{root_field}` takes no `filter` argument"))
}

fn find_field<'q, 'a>(set: &'q q::SelectionSet<'a, &'a str>, name: &str) -> Option<&'q q::Field<'a, &'a str>> {
    set.items.iter().find_map(|sel| match sel {
        q::Selection::Field(f) if f.name == name && f.alias.is_none() => Some(f),
        _ => None,
    })
}

/// The selection under `edges { node { … } }` of a connection field, checking that `cursor` and
/// `pageInfo { hasNextPage }` are selected too (pagination needs them).
fn connection_node_selection<'q, 'a>(
    root: &'q q::Field<'a, &'a str>,
) -> Result<Vec<&'q q::Selection<'a, &'a str>>, String> {
    let edges = find_field(&root.selection_set, "edges").ok_or("select `edges { cursor node { … } }`")?;
    find_field(&edges.selection_set, "cursor").ok_or("select `cursor` on `edges` (pagination needs it)")?;
    let page_info = find_field(&root.selection_set, "pageInfo").ok_or("select `pageInfo { hasNextPage }`")?;
    find_field(&page_info.selection_set, "hasNextPage").ok_or("select `hasNextPage` in `pageInfo`")?;
    let node = find_field(&edges.selection_set, "node").ok_or("select `node { … }` on `edges`")?;
    Ok(node.selection_set.items.iter().collect())
}

/// Checks a webhook subscription: no variables (it is registered as a fixed document), one
/// unaliased root field of the subscription type shaped `edges { syncVersion node { dbId … } }`
/// over the entity's node type, and a selection valid against the schema. Returns the root field.
fn check_subscription<'q, 'a>(
    schema: &Schema<'_>,
    op: &'q q::Subscription<'a, &'a str>,
    node_type: &str,
    fragments: &Fragments<'q, 'a>,
) -> Result<String, String> {
    let subscription_type = schema.subscription_type.ok_or(
        "the schema has no subscription type (`cargo xtask fetch-schema` shows whether Xledger offers \
         `<entity>Mutated` subscriptions)",
    )?;
    if let Some(variable) = op.variable_definitions.first() {
        return Err(format!(
            "a subscription is registered as a fixed document and cannot take variables (${} is declared)",
            variable.name
        ));
    }
    let root = match op.selection_set.items.as_slice() {
        [q::Selection::Field(f)] if f.alias.is_none() => f,
        [q::Selection::Field(_)] => {
            return Err("the root field must not be aliased (a delivery is matched by its `data.<field>` key)".into());
        }
        _ => return Err("a subscription must select exactly one root field (e.g. `projectsMutated`)".into()),
    };
    let root_type = named(schema.field(subscription_type, root.name)?);
    check_selection(schema, subscription_type, &op.selection_set, fragments, &mut Vec::new(), &mut Vec::new())?;

    let delivered = named(schema.field(named(schema.field(root_type, "edges")?), "node")?);
    if delivered != node_type {
        return Err(format!("`{}` delivers `{delivered}` nodes but the items page reads `{node_type}`", root.name));
    }
    let edges = selected_field(&root.selection_set, "edges", fragments, 0)
        .ok_or("select `edges { syncVersion node { dbId } }`")?;
    selected_field(&edges.selection_set, "syncVersion", fragments, 0).ok_or("select `syncVersion` on `edges`")?;
    let node = selected_field(&edges.selection_set, "node", fragments, 0).ok_or("select `node { dbId }` on `edges`")?;
    selected_field(&node.selection_set, "dbId", fragments, 0)
        .ok_or("select `dbId` on `node` (a delivery must name the rows)")?;
    Ok(root.name.to_string())
}

/// An unaliased field of a selection, looking through the fragments it spreads.
fn selected_field<'q, 'a>(
    set: &'q q::SelectionSet<'a, &'a str>,
    name: &str,
    fragments: &Fragments<'q, 'a>,
    depth: usize,
) -> Option<&'q q::Field<'a, &'a str>> {
    // `check_selection` has refused fragment cycles already; the bound only keeps this total.
    if depth > 32 {
        return None;
    }
    find_field(set, name).or_else(|| {
        set.items.iter().find_map(|sel| match sel {
            q::Selection::FragmentSpread(spread) => fragments
                .get(spread.fragment_name)
                .and_then(|f| selected_field(&f.selection_set, name, fragments, depth + 1)),
            q::Selection::InlineFragment(inline) => selected_field(&inline.selection_set, name, fragments, depth + 1),
            q::Selection::Field(_) => None,
        })
    })
}

/// Checks a selection against the schema: every field exists on its type with the arguments it
/// is given, objects have a sub-selection and scalars none, fragments apply to the type they are
/// spread into. `path` names the field in messages; `spreads` guards against fragment cycles.
fn check_selection<'a>(
    schema: &Schema<'_>,
    type_name: &str,
    set: &q::SelectionSet<'a, &'a str>,
    fragments: &Fragments<'_, 'a>,
    path: &mut Vec<&'a str>,
    spreads: &mut Vec<&'a str>,
) -> Result<(), String> {
    for sel in &set.items {
        match sel {
            q::Selection::Field(f) => {
                if f.name == "__typename" {
                    continue;
                }
                let field_type = schema.field(type_name, f.name)?;
                path.push(f.name);
                let at = path.join(".");
                for (argument, _) in &f.arguments {
                    let declared = schema.arguments.get(&(type_name, f.name));
                    if !declared.is_some_and(|args| args.iter().any(|(name, _)| name == argument)) {
                        return Err(format!("field `{at}` (`{type_name}.{}`) takes no argument `{argument}`", f.name));
                    }
                }
                let leaf = named(field_type);
                match (schema.is_object(leaf), f.selection_set.items.is_empty()) {
                    (true, true) => return Err(format!("field `{at}` of object type `{leaf}` needs a selection")),
                    (false, false) => return Err(format!("field `{at}` of scalar type `{leaf}` has a sub-selection")),
                    (true, false) => check_selection(schema, leaf, &f.selection_set, fragments, path, spreads)?,
                    (false, true) => {}
                }
                path.pop();
            }
            q::Selection::FragmentSpread(spread) => {
                let frag = fragments
                    .get(spread.fragment_name)
                    .ok_or_else(|| format!("fragment `{}` is not defined", spread.fragment_name))?;
                let q::TypeCondition::On(on) = frag.type_condition;
                if on != type_name {
                    return Err(format!("fragment `{}` is on `{on}` but spread into `{type_name}`", frag.name));
                }
                if spreads.contains(&frag.name) {
                    return Err(format!("fragment `{}` spreads itself", frag.name));
                }
                spreads.push(frag.name);
                check_selection(schema, type_name, &frag.selection_set, fragments, path, spreads)?;
                spreads.pop();
            }
            q::Selection::InlineFragment(inline) => {
                if let Some(q::TypeCondition::On(on)) = inline.type_condition
                    && on != type_name
                {
                    return Err(format!("an inline fragment on `{on}` is spread into `{type_name}`"));
                }
                check_selection(schema, type_name, &inline.selection_set, fragments, path, spreads)?;
            }
        }
    }
    Ok(())
}

fn flatten<'a>(
    schema: &Schema<'_>,
    type_name: &str,
    selection: &[&q::Selection<'a, &'a str>],
    fragments: &Fragments<'_, 'a>,
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
                    out.push(leaf_column(schema, prefix, leaf, !is_non_null(field_type))?);
                } else {
                    if !schema.is_object(leaf) {
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
        "Int64String" => (ColumnKind::Int64, JsonRepr::String),
        "Int" => (ColumnKind::Int64, JsonRepr::Number),
        "Float" => (ColumnKind::Float64, JsonRepr::Number),
        "Boolean" => (ColumnKind::Boolean, JsonRepr::Boolean),
        "String" | "ID" => (ColumnKind::Utf8, JsonRepr::String),
        "DateTimeString" => (ColumnKind::Timestamp, JsonRepr::String),
        other if schema.enums.contains(other) => (ColumnKind::Utf8, JsonRepr::String),
        other if schema.scalars.contains(other) => (ColumnKind::Utf8, JsonRepr::String),
        other => {
            return Err(format!("field `{name}` has type `{other}`, which is not a scalar or enum: select its fields"));
        }
    };
    Ok(Column { name, path: path.to_vec(), kind, json, graphql_type: leaf.to_string(), nullable, hinted: false })
}

/// The operation followed by the fragments it uses (transitively), printed canonically.
fn print_operation<'a>(
    op: q::OperationDefinition<'a, &'a str>,
    selection: &q::SelectionSet<'a, &'a str>,
    fragments: &Fragments<'_, 'a>,
) -> String {
    let mut used = BTreeSet::new();
    collect_spreads(selection, fragments, &mut used);
    let mut doc = q::Document { definitions: vec![q::Definition::Operation(op)] };
    for name in used {
        if let Some(f) = fragments.get(name) {
            doc.definitions.push(q::Definition::Fragment((*f).clone()));
        }
    }
    doc.to_string()
}

fn collect_spreads<'a>(
    set: &q::SelectionSet<'a, &'a str>,
    fragments: &Fragments<'_, 'a>,
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

/// The Arrow type text of a column, as the lake stores it (the fingerprint's input).
fn arrow_type_text(kind: ColumnKind) -> String {
    match kind {
        ColumnKind::Int64 => "Int64".into(),
        ColumnKind::Decimal { precision, scale } => format!("Decimal128({precision}, {scale})"),
        ColumnKind::Date => "Date32".into(),
        ColumnKind::Timestamp => "Timestamp(Microsecond, \"UTC\")".into(),
        ColumnKind::Float64 => "Float64".into(),
        ColumnKind::Boolean => "Boolean".into(),
        ColumnKind::Utf8 => "Utf8".into(),
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
    feed(&arrow_type_text(ColumnKind::Timestamp));
    format!("{hash:016x}")
}
