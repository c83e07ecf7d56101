//! GraphQL execution: a request document (with variables and an optional operation name) →
//! validated root-field plans → the response body, rendered straight into bytes.
//!
//! Root fields are the registry's items fields (`timesheets`, …) and change feeds
//! (`timesheet_deltas`, …), any number of them under aliases in one request. Node selections are
//! checked against the registry's columns; the registry's full selection is served from the
//! pre-rendered row bytes, any other selection is projected from them (same bytes either way).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use graphql_parser::Pos;
use graphql_parser::query::{
    Definition, Directive, Document, Field, FragmentDefinition, OperationDefinition, Selection, SelectionSet, Type,
    TypeCondition, Value, VariableDefinition,
};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::value::RawValue;
use xledger_model::time::parse_wall_clock;
use xledger_model::{ColumnKind, DbIdKind, JsonRepr};

use crate::faults::ForcedFieldError;
use crate::generate::{FieldTree, TreeNode, push_integer, push_json_string, push_wall_clock};
use crate::store::{RowFilter, Store, Table, Window};
use crate::webhooks::{MutatedEdgeField, Subscription, SubscriptionField, Webhook};

/// The error code real servers put in `extensions.code` for a query that does not validate.
pub(crate) const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// The same for a document that does not parse.
pub(crate) const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The message and code for a rejected or expired cursor (top-level `code`, like rate limits).
pub const INVALID_CURSOR_MESSAGE: &str = "The cursor is invalid or has expired.";
pub const INVALID_CURSOR_CODE: &str = "BAD_REQUEST.INVALID_CURSOR";

/// The JSON body of a GraphQL POST.
#[derive(Debug, Deserialize)]
pub(crate) struct Request {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) variables: Option<Json>,
    #[serde(default, rename = "operationName")]
    pub(crate) operation_name: Option<String>,
}

/// One entry of a response's `errors`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GqlError {
    pub(crate) message: String,
    /// Xledger puts rate-limit and cursor codes at the top level of the entry.
    pub(crate) code: Option<String>,
    /// `extensions.code`, as GraphQL servers report validation problems.
    pub(crate) extension_code: Option<&'static str>,
    pub(crate) location: Option<Pos>,
    pub(crate) path: Option<String>,
}

impl GqlError {
    fn validation(message: impl Into<String>, location: Option<Pos>) -> GqlError {
        GqlError { message: message.into(), code: None, extension_code: Some(VALIDATION_FAILED), location, path: None }
    }

    fn invalid_cursor(path: &str) -> GqlError {
        GqlError::field(path, INVALID_CURSOR_MESSAGE, Some(INVALID_CURSOR_CODE.to_owned()))
    }

    /// An error confined to the root field under response key `path` (its data is `null`).
    pub(crate) fn field(path: &str, message: impl Into<String>, code: Option<String>) -> GqlError {
        GqlError { message: message.into(), code, extension_code: None, location: None, path: Some(path.to_owned()) }
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str("{\"message\":");
        push_json_string(&self.message, out);
        if let Some(code) = &self.code {
            out.push_str(",\"code\":");
            push_json_string(code, out);
        }
        if let Some(pos) = self.location {
            out.push_str(&format!(",\"locations\":[{{\"line\":{},\"column\":{}}}]", pos.line, pos.column));
        }
        if let Some(path) = &self.path {
            out.push_str(",\"path\":[");
            push_json_string(path, out);
            out.push(']');
        }
        if let Some(code) = self.extension_code {
            out.push_str(",\"extensions\":{\"code\":");
            push_json_string(code, out);
            out.push('}');
        }
        out.push('}');
    }
}

/// A response body that fails as a whole (`{"errors":[...]}`, no `data`).
pub(crate) fn errors_body(errors: &[GqlError]) -> String {
    let mut out = String::from("{\"errors\":[");
    for (i, error) in errors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        error.write(&mut out);
    }
    out.push_str("]}");
    out
}

/// The executed request: its body and, per root field, the field name and its rendered bytes.
#[derive(Debug)]
pub(crate) struct Executed {
    pub(crate) body: String,
    pub(crate) root_fields: Vec<(&'static str, usize)>,
}

/// Validates and runs a request: a query against a read view of the store, a mutation
/// (`addWebhooks`, `removeWebhooks`) against a write view. `field_faults` gets the planned root
/// fields as `(alias, name)` pairs and says which of them fail on their own. `Err` is a
/// request-level failure (parse or validation): nothing was executed.
pub(crate) fn execute(
    store: &RwLock<Store>,
    request: &Request,
    page_cap: usize,
    field_faults: impl FnOnce(&[(&str, &str)]) -> Vec<ForcedFieldError>,
) -> Result<Executed, Vec<GqlError>> {
    let document = parse_document(&request.query)?;
    let operation = pick_operation(&document, request.operation_name.as_deref()).map_err(|e| vec![e])?;
    let context = context_for(&document, operation.variables, request.variables.as_ref(), page_cap)?;
    match operation.kind {
        OperationKind::Query => {
            let store = store.read().unwrap_or_else(PoisonError::into_inner);
            let plans = plan(&store, &context, &operation)?;
            let forced = field_faults(&root_fields_of(&store, &plans));
            Ok(run(&mut Access::Read(&store), &plans, &forced))
        }
        OperationKind::Mutation => {
            let mut store = store.write().unwrap_or_else(PoisonError::into_inner);
            let plans = plan(&store, &context, &operation)?;
            let forced = field_faults(&root_fields_of(&store, &plans));
            Ok(run(&mut Access::Write(&mut store), &plans, &forced))
        }
        OperationKind::Subscription => Err(vec![GqlError::validation(
            "Subscriptions are not served over HTTP: register one with addWebhooks and receive its deliveries.",
            Some(operation.position),
        )]),
    }
}

/// The store as a request may use it: queries read, mutations write.
enum Access<'a> {
    Read(&'a Store),
    Write(&'a mut Store),
}

impl Access<'_> {
    fn store(&self) -> &Store {
        match self {
            Access::Read(store) => store,
            Access::Write(store) => store,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plans: what each root field asks for, validated against the registry.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) enum RootPlan {
    Typename {
        key: String,
        type_name: &'static str,
    },
    Items {
        key: String,
        entity: &'static str,
        filter: RowFilter,
        window: Window<String>,
        selection: Vec<(String, ConnField)>,
    },
    Deltas {
        key: String,
        entity: &'static str,
        window: Window<String>,
        selection: Vec<(String, ConnField)>,
    },
    /// `webhook(dbId)`: one webhook, or `null` when there is none with that id.
    Webhook {
        key: String,
        db_id: Option<i64>,
        selection: Vec<(String, WebhookField)>,
    },
    /// `webhooks(first, after)`: every webhook, by dbId (an assumption: see the crate docs).
    Webhooks {
        key: String,
        window: Window<String>,
        selection: Vec<(String, WebhookConnField)>,
    },
    AddWebhooks {
        key: String,
        inputs: Vec<WebhookInput>,
        selection: Vec<(String, WebhookConnField)>,
    },
    RemoveWebhooks {
        key: String,
        db_ids: Vec<i64>,
        selection: Vec<(String, RemovedField)>,
    },
}

impl RootPlan {
    fn key(&self) -> &str {
        match self {
            RootPlan::Typename { key, .. }
            | RootPlan::Items { key, .. }
            | RootPlan::Deltas { key, .. }
            | RootPlan::Webhook { key, .. }
            | RootPlan::Webhooks { key, .. }
            | RootPlan::AddWebhooks { key, .. }
            | RootPlan::RemoveWebhooks { key, .. } => key,
        }
    }

    /// The root field's name (what the counters count), `None` for `__typename`.
    fn field_name(&self, store: &Store) -> Option<&'static str> {
        match self {
            RootPlan::Typename { .. } => None,
            RootPlan::Items { entity, .. } => store.tables.get(entity).map(|t| t.spec.items_field),
            RootPlan::Deltas { entity, .. } => {
                store.tables.get(entity).and_then(|t| t.spec.change_feed).map(|feed| feed.field)
            }
            RootPlan::Webhook { .. } => Some("webhook"),
            RootPlan::Webhooks { .. } => Some("webhooks"),
            RootPlan::AddWebhooks { .. } => Some("addWebhooks"),
            RootPlan::RemoveWebhooks { .. } => Some("removeWebhooks"),
        }
    }
}

/// A selected field of a `Webhook`.
#[derive(Debug)]
pub(crate) enum WebhookField {
    DbId,
    Description,
    Url,
    SerializedPayload,
    State(Vec<(String, StateField)>),
    LastSuccessfulPost,
    LastFailedPost,
    Typename,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StateField {
    Code,
    Typename,
}

#[derive(Debug)]
pub(crate) enum WebhookConnField {
    Edges(Vec<(String, WebhookEdgeField)>),
    PageInfo(Vec<(String, PageInfoField)>),
    Typename(&'static str),
}

#[derive(Debug)]
pub(crate) enum WebhookEdgeField {
    Cursor,
    Node(Vec<(String, WebhookField)>),
    Typename(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum RemovedField {
    NumAffected,
    Typename,
}

/// One `addWebhooks` input: `{node: {description, url, serializedPayload}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookInput {
    pub(crate) description: Option<String>,
    pub(crate) url: String,
    pub(crate) serialized_payload: String,
}

#[derive(Debug)]
pub(crate) enum ConnField {
    Edges(Vec<(String, EdgeField)>),
    PageInfo(Vec<(String, PageInfoField)>),
    Typename(String),
}

#[derive(Debug)]
pub(crate) enum EdgeField {
    Cursor,
    Node(NodeSelection),
    Typename(String),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum PageInfoField {
    HasNextPage,
    HasPreviousPage,
    Typename,
}

#[derive(Debug)]
pub(crate) enum NodeSelection {
    /// The registry's full node selection: the pre-rendered bytes are the answer.
    Full,
    Fields(Vec<(String, NodeField)>),
    /// Only the row's key and times (a `dbId + modifiedAt` scan): rendered from the row, or by
    /// projecting `fields` when the row was corrupted.
    Identity {
        fast: Vec<(String, IdentityField)>,
        fields: Vec<(String, NodeField)>,
    },
    Delta(Vec<(String, DeltaField)>),
}

/// A top-level field the generator renders from the row itself (see `generate::render_leaf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityField {
    DbId(JsonRepr),
    CreatedAt,
    ModifiedAt,
    Typename(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeField {
    Leaf(&'static str),
    Object(&'static str, Vec<(String, NodeField)>),
    Typename(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum DeltaField {
    DbId,
    MutationType,
    Typename,
}

type Doc<'q> = Document<'q, &'q str>;
type GField<'q> = Field<'q, &'q str>;

struct Context<'q> {
    fragments: HashMap<&'q str, &'q FragmentDefinition<'q, &'q str>>,
    variables: HashMap<&'q str, Json>,
    page_cap: usize,
}

/// Fields of one selection set grouped by response key (GraphQL's field merging).
struct Group<'q> {
    key: &'q str,
    name: &'q str,
    fields: Vec<&'q GField<'q>>,
}

fn parse_document(text: &str) -> Result<Doc<'_>, Vec<GqlError>> {
    graphql_parser::parse_query(text).map_err(|e| {
        vec![GqlError {
            message: format!("Syntax error: {}", e.to_string().trim()),
            code: None,
            extension_code: Some(PARSE_FAILED),
            location: None,
            path: None,
        }]
    })
}

/// The document's fragments and the operation's variables (provided values, or defaults).
fn context_for<'q>(
    document: &'q Doc<'q>,
    definitions: &'q [VariableDefinition<'q, &'q str>],
    provided: Option<&Json>,
    page_cap: usize,
) -> Result<Context<'q>, Vec<GqlError>> {
    let mut fragments = HashMap::new();
    for definition in &document.definitions {
        if let Definition::Fragment(fragment) = definition {
            fragments.insert(fragment.name, fragment);
        }
    }
    let variables = resolve_variables(definitions, provided).map_err(|e| vec![e])?;
    Ok(Context { fragments, variables, page_cap })
}

/// Plans every root field of a query or mutation; all validation errors are reported together.
fn plan<'q>(store: &Store, context: &Context<'q>, operation: &Operation<'q>) -> Result<Vec<RootPlan>, Vec<GqlError>> {
    let root_type = operation.kind.root_type();
    let groups = collect(context, std::slice::from_ref(&operation.selection), Some(root_type)).map_err(|e| vec![e])?;
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for group in &groups {
        let planned = match operation.kind {
            OperationKind::Mutation => plan_mutation_root(context, group),
            _ => plan_root(store, context, group),
        };
        match planned {
            Ok(plan) => plans.push(plan),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() { Ok(plans) } else { Err(errors) }
}

/// `(alias, name)` of every planned root field, for field-level fault rules.
fn root_fields_of<'p>(store: &Store, plans: &'p [RootPlan]) -> Vec<(&'p str, &'static str)> {
    plans.iter().map(|plan| (plan.key(), plan.field_name(store).unwrap_or("__typename"))).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

impl OperationKind {
    fn root_type(self) -> &'static str {
        match self {
            OperationKind::Query => "Query",
            OperationKind::Mutation => "Mutation",
            OperationKind::Subscription => "Subscription",
        }
    }
}

/// The operation a request runs.
struct Operation<'q> {
    kind: OperationKind,
    variables: &'q [VariableDefinition<'q, &'q str>],
    selection: &'q SelectionSet<'q, &'q str>,
    position: Pos,
}

fn pick_operation<'q>(document: &'q Doc<'q>, name: Option<&str>) -> Result<Operation<'q>, GqlError> {
    let operations: Vec<&OperationDefinition<'q, &'q str>> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(op) => Some(op),
            Definition::Fragment(_) => None,
        })
        .collect();
    let operation_name = |op: &OperationDefinition<'q, &'q str>| match op {
        OperationDefinition::Query(q) => q.name,
        OperationDefinition::Mutation(m) => m.name,
        OperationDefinition::Subscription(s) => s.name,
        OperationDefinition::SelectionSet(_) => None,
    };
    let chosen = match name {
        Some(name) => operations
            .iter()
            .find(|op| operation_name(op) == Some(name))
            .ok_or_else(|| GqlError::validation(format!("Unknown operation named \"{name}\"."), None))?,
        None if operations.len() == 1 => &operations[0],
        None if operations.is_empty() => return Err(GqlError::validation("The document contains no operation.", None)),
        None => {
            return Err(GqlError::validation(
                "Must provide operation name if query contains multiple operations.",
                None,
            ));
        }
    };
    Ok(match chosen {
        OperationDefinition::Query(q) => Operation {
            kind: OperationKind::Query,
            variables: &q.variable_definitions,
            selection: &q.selection_set,
            position: q.position,
        },
        OperationDefinition::SelectionSet(s) => {
            Operation { kind: OperationKind::Query, variables: &[], selection: s, position: s.span.0 }
        }
        OperationDefinition::Mutation(m) => Operation {
            kind: OperationKind::Mutation,
            variables: &m.variable_definitions,
            selection: &m.selection_set,
            position: m.position,
        },
        OperationDefinition::Subscription(s) => Operation {
            kind: OperationKind::Subscription,
            variables: &s.variable_definitions,
            selection: &s.selection_set,
            position: s.position,
        },
    })
}

fn resolve_variables<'q>(
    definitions: &'q [VariableDefinition<'q, &'q str>],
    provided: Option<&Json>,
) -> Result<HashMap<&'q str, Json>, GqlError> {
    let provided = match provided {
        None | Some(Json::Null) => None,
        Some(Json::Object(map)) => Some(map),
        Some(_) => return Err(GqlError::validation("\"variables\" must be an object.", None)),
    };
    let mut variables = HashMap::new();
    for definition in definitions {
        let value = match provided.and_then(|map| map.get(definition.name)) {
            Some(value) => value.clone(),
            None => match &definition.default_value {
                Some(default) => literal_to_json(default, &HashMap::new()).map_err(|_| {
                    GqlError::validation("A default value may not use variables.", Some(definition.position))
                })?,
                None => Json::Null,
            },
        };
        check_variable_type(&definition.var_type, &value).map_err(|reason| {
            GqlError::validation(
                format!(
                    "Variable \"${}\" of type \"{}\" got an invalid value: {reason}",
                    definition.name, definition.var_type
                ),
                Some(definition.position),
            )
        })?;
        variables.insert(definition.name, value);
    }
    Ok(variables)
}

/// Input coercion for variables, as far as the schema's scalars go: `Int` takes JSON integers
/// only, `Int64String` a string or an integer, `String`/`DateTimeString`/`ID` strings.
fn check_variable_type<'q>(ty: &Type<'q, &'q str>, value: &Json) -> Result<(), String> {
    match ty {
        Type::NonNullType(inner) => {
            if value.is_null() {
                return Err("a non-null value is required".into());
            }
            check_variable_type(inner, value)
        }
        _ if value.is_null() => Ok(()),
        Type::ListType(inner) => match value {
            Json::Array(items) => items.iter().try_for_each(|item| check_variable_type(inner, item)),
            single => check_variable_type(inner, single),
        },
        Type::NamedType(name) => {
            let ok = match *name {
                "Int" => value.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
                "Float" => value.is_number(),
                "Boolean" => value.is_boolean(),
                "String" | "DateTimeString" => value.is_string(),
                "ID" => value.is_string() || value.is_i64(),
                "Int64String" => value.as_str().is_some_and(|s| s.parse::<i64>().is_ok()) || value.is_i64(),
                // Input objects (filters) and enums: checked where they are used.
                _ => true,
            };
            if ok { Ok(()) } else { Err(format!("{name} cannot represent {value}")) }
        }
    }
}

fn literal_to_json<'q>(value: &Value<'q, &'q str>, variables: &HashMap<&str, Json>) -> Result<Json, String> {
    Ok(match value {
        Value::Variable(name) => {
            variables.get(name).cloned().ok_or_else(|| format!("Variable \"${name}\" is not defined."))?
        }
        Value::Int(number) => Json::from(number.as_i64().unwrap_or_default()),
        Value::Float(f) => Json::from(*f),
        Value::String(s) => Json::from(s.as_str()),
        Value::Boolean(b) => Json::from(*b),
        Value::Null => Json::Null,
        Value::Enum(e) => Json::from(*e),
        Value::List(items) => {
            Json::Array(items.iter().map(|v| literal_to_json(v, variables)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok(((*k).to_owned(), literal_to_json(v, variables)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn included<'q>(context: &Context<'q>, directives: &[Directive<'q, &'q str>]) -> Result<bool, GqlError> {
    for directive in directives {
        let wanted = match directive.name {
            "include" => true,
            "skip" => false,
            other => {
                return Err(GqlError::validation(format!("Unknown directive \"@{other}\"."), Some(directive.position)));
            }
        };
        let condition = directive.arguments.iter().find(|(name, _)| *name == "if").map(|(_, v)| v);
        let condition = match condition.map(|v| literal_to_json(v, &context.variables)) {
            Some(Ok(Json::Bool(b))) => b,
            _ => {
                return Err(GqlError::validation(
                    format!("Directive \"@{}\" needs a Boolean argument \"if\".", directive.name),
                    Some(directive.position),
                ));
            }
        };
        if condition != wanted {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Collects the fields of selection sets (following fragments), merging equal response keys.
fn collect<'q>(
    context: &Context<'q>,
    sets: &[&'q SelectionSet<'q, &'q str>],
    parent_type: Option<&str>,
) -> Result<Vec<Group<'q>>, GqlError> {
    let mut groups: Vec<Group<'q>> = Vec::new();
    let mut visiting = Vec::new();
    for set in sets {
        collect_into(context, set, parent_type, &mut groups, &mut visiting)?;
    }
    Ok(groups)
}

fn collect_into<'q>(
    context: &Context<'q>,
    set: &'q SelectionSet<'q, &'q str>,
    parent_type: Option<&str>,
    groups: &mut Vec<Group<'q>>,
    visiting: &mut Vec<&'q str>,
) -> Result<(), GqlError> {
    for selection in &set.items {
        match selection {
            Selection::Field(field) => {
                if !included(context, &field.directives)? {
                    continue;
                }
                let key = field.alias.unwrap_or(field.name);
                match groups.iter_mut().find(|g| g.key == key) {
                    Some(group) if group.name != field.name => {
                        return Err(GqlError::validation(
                            format!(
                                "Fields \"{key}\" conflict because \"{}\" and \"{}\" are different fields.",
                                group.name, field.name
                            ),
                            Some(field.position),
                        ));
                    }
                    Some(group) => group.fields.push(field),
                    None => groups.push(Group { key, name: field.name, fields: vec![field] }),
                }
            }
            Selection::FragmentSpread(spread) => {
                if !included(context, &spread.directives)? {
                    continue;
                }
                let fragment = context.fragments.get(spread.fragment_name).ok_or_else(|| {
                    GqlError::validation(
                        format!("Unknown fragment \"{}\".", spread.fragment_name),
                        Some(spread.position),
                    )
                })?;
                if visiting.contains(&spread.fragment_name) {
                    return Err(GqlError::validation(
                        format!("Cannot spread fragment \"{}\" within itself.", spread.fragment_name),
                        Some(spread.position),
                    ));
                }
                let TypeCondition::On(on) = fragment.type_condition;
                check_type_condition(on, parent_type, spread.position)?;
                visiting.push(spread.fragment_name);
                collect_into(context, &fragment.selection_set, parent_type, groups, visiting)?;
                visiting.pop();
            }
            Selection::InlineFragment(inline) => {
                if !included(context, &inline.directives)? {
                    continue;
                }
                if let Some(TypeCondition::On(on)) = inline.type_condition {
                    check_type_condition(on, parent_type, inline.position)?;
                }
                collect_into(context, &inline.selection_set, parent_type, groups, visiting)?;
            }
        }
    }
    Ok(())
}

fn check_type_condition(on: &str, parent_type: Option<&str>, position: Pos) -> Result<(), GqlError> {
    match parent_type {
        Some(parent) if parent != on => Err(GqlError::validation(
            format!("Fragment cannot be spread here as objects of type \"{parent}\" can never be of type \"{on}\"."),
            Some(position),
        )),
        _ => Ok(()),
    }
}

fn sub_groups<'q>(
    context: &Context<'q>,
    group: &Group<'q>,
    parent_type: Option<&str>,
) -> Result<Vec<Group<'q>>, GqlError> {
    let sets: Vec<&SelectionSet<'q, &'q str>> = group.fields.iter().map(|f| &f.selection_set).collect();
    collect(context, &sets, parent_type)
}

fn first_position(group: &Group<'_>) -> Option<Pos> {
    group.fields.first().map(|f| f.position)
}

fn no_arguments(group: &Group<'_>, parent_type: &str) -> Result<(), GqlError> {
    for field in &group.fields {
        if let Some((name, _)) = field.arguments.first() {
            return Err(GqlError::validation(
                format!("Unknown argument \"{name}\" on field \"{parent_type}.{}\".", field.name),
                Some(field.position),
            ));
        }
    }
    Ok(())
}

fn is_leaf_selection(group: &Group<'_>, type_name: &str, parent_type: &str) -> Result<(), GqlError> {
    if group.fields.iter().any(|f| !f.selection_set.items.is_empty()) {
        return Err(GqlError::validation(
            format!("Field \"{}\" must not have a selection since type \"{type_name}\" has no subfields.", group.name),
            first_position(group),
        ));
    }
    no_arguments(group, parent_type)
}

fn needs_selection(group: &Group<'_>, type_name: &str) -> Result<(), GqlError> {
    if group.fields.iter().all(|f| f.selection_set.items.is_empty()) {
        return Err(GqlError::validation(
            format!("Field \"{}\" of type \"{type_name}\" must have a selection of subfields.", group.name),
            first_position(group),
        ));
    }
    Ok(())
}

fn cannot_query(group: &Group<'_>, parent_type: &str) -> GqlError {
    GqlError::validation(
        format!("Cannot query field \"{}\" on type \"{parent_type}\".", group.name),
        first_position(group),
    )
}

/// The arguments of a root field (all its merged occurrences must agree), with variables resolved.
fn root_arguments<'q>(
    context: &Context<'q>,
    group: &Group<'q>,
    parent_type: &str,
    allowed: &[&str],
) -> Result<HashMap<&'q str, Json>, GqlError> {
    let field = group.fields[0];
    if group.fields.iter().any(|f| f.arguments != field.arguments) {
        return Err(GqlError::validation(
            format!("Fields \"{}\" conflict because they have differing arguments.", group.key),
            first_position(group),
        ));
    }
    let mut arguments = HashMap::new();
    for (name, value) in &field.arguments {
        if !allowed.contains(name) {
            return Err(GqlError::validation(
                format!("Unknown argument \"{name}\" on field \"{parent_type}.{}\".", group.name),
                Some(field.position),
            ));
        }
        let value =
            literal_to_json(value, &context.variables).map_err(|m| GqlError::validation(m, Some(field.position)))?;
        arguments.insert(*name, value);
    }
    Ok(arguments)
}

fn plan_root<'q>(store: &Store, context: &Context<'q>, group: &Group<'q>) -> Result<RootPlan, GqlError> {
    let key = group.key.to_owned();
    match group.name {
        "__typename" => {
            is_leaf_selection(group, "String", "Query")?;
            return Ok(RootPlan::Typename { key, type_name: "Query" });
        }
        "webhook" => {
            let arguments = root_arguments(context, group, "Query", &["dbId"])?;
            let position = first_position(group);
            let db_id = match arguments.get("dbId") {
                None | Some(Json::Null) => None,
                Some(value) => Some(parse_webhook_db_id(value).map_err(|m| GqlError::validation(m, position))?),
            };
            let selection = plan_webhook_node(context, group)?;
            return Ok(RootPlan::Webhook { key, db_id, selection });
        }
        "webhooks" => {
            let arguments = root_arguments(context, group, "Query", &["first", "after"])?;
            let position = first_position(group).unwrap_or_default();
            let window = Window {
                first: count_argument(&arguments, "first", context.page_cap, position)?.or(Some(context.page_cap)),
                last: None,
                after: cursor_argument(&arguments, "after", position)?,
                before: None,
            };
            let selection = plan_webhook_connection(context, group)?;
            return Ok(RootPlan::Webhooks { key, window, selection });
        }
        _ => {}
    }
    let table = store
        .tables
        .values()
        .find(|t| t.spec.items_field == group.name || t.spec.change_feed.is_some_and(|feed| feed.field == group.name));
    let Some(table) = table else { return Err(cannot_query(group, "Query")) };
    let field = group.fields[0];
    let is_items = table.spec.items_field == group.name;
    let allowed: &[&str] =
        if is_items { &["first", "last", "after", "before", "filter"] } else { &["first", "last", "after", "before"] };
    let arguments = root_arguments(context, group, "Query", allowed)?;
    let window = Window {
        first: count_argument(&arguments, "first", context.page_cap, field.position)?,
        last: count_argument(&arguments, "last", context.page_cap, field.position)?,
        after: cursor_argument(&arguments, "after", field.position)?,
        before: cursor_argument(&arguments, "before", field.position)?,
    };
    // Neither `first` nor `last`: a full page from the start.
    let window = if window.first.is_none() && window.last.is_none() {
        Window { first: Some(context.page_cap), ..window }
    } else {
        window
    };
    let node_type = table.spec.node_type;
    if is_items {
        let filter_type = format!("{node_type}Filter");
        let filter = match arguments.get("filter") {
            None | Some(Json::Null) => RowFilter::default(),
            Some(value) => parse_filter(value, table.spec.db_id_kind, &filter_type)
                .map_err(|m| GqlError::validation(m, Some(field.position)))?,
        };
        let selection = plan_connection(
            context,
            group,
            table,
            &format!("{node_type}Connection"),
            &format!("{node_type}Edge"),
            false,
        )?;
        Ok(RootPlan::Items { key, entity: table.spec.name, filter, window, selection })
    } else {
        let selection = plan_connection(
            context,
            group,
            table,
            &format!("{node_type}DeltaConnection"),
            &format!("{node_type}DeltaEdge"),
            true,
        )?;
        Ok(RootPlan::Deltas { key, entity: table.spec.name, window, selection })
    }
}

fn count_argument(
    arguments: &HashMap<&str, Json>,
    name: &str,
    cap: usize,
    position: Pos,
) -> Result<Option<usize>, GqlError> {
    match arguments.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => match value.as_i64() {
            Some(n) if n >= 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX).min(cap))),
            Some(_) => Err(GqlError::validation(
                format!("Argument \"{name}\" must be a non-negative integer."),
                Some(position),
            )),
            None => Err(GqlError::validation(
                format!("Argument \"{name}\" has an invalid value: Int cannot represent {value}."),
                Some(position),
            )),
        },
    }
}

fn cursor_argument(arguments: &HashMap<&str, Json>, name: &str, position: Pos) -> Result<Option<String>, GqlError> {
    match arguments.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(cursor)) => Ok(Some(cursor.clone())),
        Some(other) => Err(GqlError::validation(
            format!("Argument \"{name}\" has an invalid value: String cannot represent {other}."),
            Some(position),
        )),
    }
}

fn parse_filter(value: &Json, kind: DbIdKind, type_name: &str) -> Result<RowFilter, String> {
    let Json::Object(map) = value else { return Err(format!("Expected type \"{type_name}\" to be an object.")) };
    let mut filter = RowFilter::default();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "dbId_in" => {
                let items: Vec<&Json> = match value {
                    Json::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                let ids = items.into_iter().map(|v| parse_db_id(v, kind)).collect::<Result<_, _>>()?;
                filter.db_id_in = Some(ids);
            }
            "dbId_gt" => filter.db_id_gt = Some(parse_db_id(value, kind)?),
            "modifiedAt_gte" => {
                let text = value.as_str().ok_or_else(|| format!("DateTimeString cannot represent {value}"))?;
                let wall_clock = parse_wall_clock(text).map_err(|e| format!("modifiedAt_gte {text:?}: {e}"))?;
                filter.modified_at_gte = Some(wall_clock);
            }
            "AND" | "OR" => {
                let Json::Array(items) = value else { return Err(format!("{key} expects a list of \"{type_name}\".")) };
                let parsed = items.iter().map(|v| parse_filter(v, kind, type_name)).collect::<Result<Vec<_>, _>>()?;
                if key == "AND" { filter.all = parsed } else { filter.any = parsed }
            }
            other => {
                return Err(format!("Field \"{other}\" is not defined by type \"{type_name}\" in this simulator."));
            }
        }
    }
    Ok(filter)
}

/// A `dbId` argument in the entity's element type: `Int64String` (a string, or an integer),
/// or `Int` (a JSON integer only, as GraphQL's input coercion demands).
fn parse_db_id(value: &Json, kind: DbIdKind) -> Result<i64, String> {
    match (kind, value) {
        (DbIdKind::Int64String, Json::String(text)) => {
            text.parse().map_err(|_| format!("Int64String cannot represent {value}"))
        }
        (_, Json::Number(n)) if n.is_i64() => n.as_i64().ok_or_else(|| format!("Int cannot represent {value}")),
        (DbIdKind::Int64String, _) => Err(format!("Int64String cannot represent {value}")),
        (DbIdKind::Int, _) => Err(format!("Int cannot represent non-integer value: {value}")),
    }
}

fn plan_mutation_root<'q>(context: &Context<'q>, group: &Group<'q>) -> Result<RootPlan, GqlError> {
    let key = group.key.to_owned();
    let position = first_position(group);
    match group.name {
        "__typename" => {
            is_leaf_selection(group, "String", "Mutation")?;
            Ok(RootPlan::Typename { key, type_name: "Mutation" })
        }
        "addWebhooks" => {
            let arguments = root_arguments(context, group, "Mutation", &["inputs"])?;
            let inputs = match arguments.get("inputs") {
                None | Some(Json::Null) => {
                    return Err(GqlError::validation("Argument \"inputs\" of \"addWebhooks\" is required.", position));
                }
                Some(value) => parse_webhook_inputs(value).map_err(|m| GqlError::validation(m, position))?,
            };
            let selection = plan_webhook_connection(context, group)?;
            Ok(RootPlan::AddWebhooks { key, inputs, selection })
        }
        "removeWebhooks" => {
            let arguments = root_arguments(context, group, "Mutation", &["dbIds"])?;
            let db_ids = match arguments.get("dbIds") {
                None | Some(Json::Null) => {
                    return Err(GqlError::validation(
                        "Argument \"dbIds\" of \"removeWebhooks\" is required.",
                        position,
                    ));
                }
                Some(Json::Array(items)) => items.iter().map(parse_webhook_db_id).collect::<Result<_, _>>(),
                Some(single) => parse_webhook_db_id(single).map(|id| vec![id]),
            }
            .map_err(|m| GqlError::validation(m, position))?;
            needs_selection(group, "RemoveWebhooksResult")?;
            let mut selection = Vec::new();
            for child in sub_groups(context, group, None)? {
                let field = match child.name {
                    "numAffected" => RemovedField::NumAffected,
                    "__typename" => RemovedField::Typename,
                    _ => return Err(cannot_query(&child, "RemoveWebhooksResult")),
                };
                is_leaf_selection(&child, "Int", "RemoveWebhooksResult")?;
                selection.push((child.key.to_owned(), field));
            }
            Ok(RootPlan::RemoveWebhooks { key, db_ids, selection })
        }
        _ => Err(cannot_query(group, "Mutation")),
    }
}

/// A webhook dbId argument: `Int64String` or `ID`, so a numeric string or an integer.
fn parse_webhook_db_id(value: &Json) -> Result<i64, String> {
    match value {
        Json::String(text) => text.parse().map_err(|_| format!("Int64String cannot represent {value}")),
        Json::Number(n) => n.as_i64().ok_or_else(|| format!("Int64String cannot represent {value}")),
        _ => Err(format!("Int64String cannot represent {value}")),
    }
}

/// `inputs: [{node: {description, url, serializedPayload}}]` (a single object is a list of one).
fn parse_webhook_inputs(value: &Json) -> Result<Vec<WebhookInput>, String> {
    let items: Vec<&Json> = match value {
        Json::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| {
            let Json::Object(outer) = item else { return Err(format!("Expected type \"WebhookInput\", got {item}.")) };
            if let Some(other) = outer.keys().find(|k| *k != "node") {
                return Err(format!("Field \"{other}\" is not defined by type \"WebhookInput\"."));
            }
            let Some(Json::Object(node)) = outer.get("node") else {
                return Err("Field \"node\" of type \"WebhookInput\" is required.".to_owned());
            };
            if let Some(other) =
                node.keys().find(|k| !matches!(k.as_str(), "description" | "url" | "serializedPayload"))
            {
                return Err(format!("Field \"{other}\" is not defined by type \"WebhookNodeInput\"."));
            }
            let text = |name: &str| match node.get(name) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(text)) => Ok(Some(text.clone())),
                Some(other) => Err(format!("String cannot represent {other} (field \"{name}\").")),
            };
            let required = |name: &str| {
                text(name)?.ok_or_else(|| format!("Field \"{name}\" of type \"WebhookNodeInput\" is required."))
            };
            Ok(WebhookInput {
                description: text("description")?,
                url: required("url")?,
                serialized_payload: required("serializedPayload")?,
            })
        })
        .collect()
}

/// `edges { cursor node { … } } pageInfo { … }` over webhooks (`webhooks`, `addWebhooks`).
fn plan_webhook_connection<'q>(
    context: &Context<'q>,
    group: &Group<'q>,
) -> Result<Vec<(String, WebhookConnField)>, GqlError> {
    const CONNECTION: &str = "WebhookConnection";
    const EDGE: &str = "WebhookEdge";
    needs_selection(group, CONNECTION)?;
    let mut selection = Vec::new();
    for child in sub_groups(context, group, Some(CONNECTION))? {
        let field = match child.name {
            "__typename" => {
                is_leaf_selection(&child, "String", CONNECTION)?;
                WebhookConnField::Typename(CONNECTION)
            }
            "edges" => {
                needs_selection(&child, EDGE)?;
                no_arguments(&child, CONNECTION)?;
                let mut edge = Vec::new();
                for grandchild in sub_groups(context, &child, Some(EDGE))? {
                    let field = match grandchild.name {
                        "cursor" => {
                            is_leaf_selection(&grandchild, "String", EDGE)?;
                            WebhookEdgeField::Cursor
                        }
                        "__typename" => {
                            is_leaf_selection(&grandchild, "String", EDGE)?;
                            WebhookEdgeField::Typename(EDGE)
                        }
                        "node" => {
                            no_arguments(&grandchild, EDGE)?;
                            WebhookEdgeField::Node(plan_webhook_node(context, &grandchild)?)
                        }
                        _ => return Err(cannot_query(&grandchild, EDGE)),
                    };
                    edge.push((grandchild.key.to_owned(), field));
                }
                WebhookConnField::Edges(edge)
            }
            "pageInfo" => {
                needs_selection(&child, "PageInfo")?;
                no_arguments(&child, CONNECTION)?;
                WebhookConnField::PageInfo(plan_page_info(context, &child)?)
            }
            _ => return Err(cannot_query(&child, CONNECTION)),
        };
        selection.push((child.key.to_owned(), field));
    }
    Ok(selection)
}

/// The fields of a `Webhook` node, as Xledger's sample selects them.
fn plan_webhook_node<'q>(context: &Context<'q>, group: &Group<'q>) -> Result<Vec<(String, WebhookField)>, GqlError> {
    const WEBHOOK: &str = "Webhook";
    needs_selection(group, WEBHOOK)?;
    let mut selection = Vec::new();
    for child in sub_groups(context, group, Some(WEBHOOK))? {
        let leaf = |field: WebhookField| is_leaf_selection(&child, "scalar", WEBHOOK).map(|()| field);
        let field = match child.name {
            "dbId" => leaf(WebhookField::DbId)?,
            "description" => leaf(WebhookField::Description)?,
            "url" => leaf(WebhookField::Url)?,
            "serializedPayload" => leaf(WebhookField::SerializedPayload)?,
            "lastSuccessfulPost" => leaf(WebhookField::LastSuccessfulPost)?,
            "lastFailedPost" => leaf(WebhookField::LastFailedPost)?,
            "__typename" => leaf(WebhookField::Typename)?,
            "state" => {
                needs_selection(&child, "WebhookState")?;
                no_arguments(&child, WEBHOOK)?;
                let mut state = Vec::new();
                for code in sub_groups(context, &child, Some("WebhookState"))? {
                    let field = match code.name {
                        "code" => StateField::Code,
                        "__typename" => StateField::Typename,
                        _ => return Err(cannot_query(&code, "WebhookState")),
                    };
                    is_leaf_selection(&code, "String", "WebhookState")?;
                    state.push((code.key.to_owned(), field));
                }
                WebhookField::State(state)
            }
            _ => return Err(cannot_query(&child, WEBHOOK)),
        };
        selection.push((child.key.to_owned(), field));
    }
    Ok(selection)
}

fn plan_page_info<'q>(context: &Context<'q>, group: &Group<'q>) -> Result<Vec<(String, PageInfoField)>, GqlError> {
    let mut fields = Vec::new();
    for info in sub_groups(context, group, Some("PageInfo"))? {
        let field = match info.name {
            "hasNextPage" => PageInfoField::HasNextPage,
            "hasPreviousPage" => PageInfoField::HasPreviousPage,
            "__typename" => PageInfoField::Typename,
            _ => return Err(cannot_query(&info, "PageInfo")),
        };
        is_leaf_selection(&info, "Boolean", "PageInfo")?;
        fields.push((info.key.to_owned(), field));
    }
    Ok(fields)
}

fn plan_connection<'q>(
    context: &Context<'q>,
    group: &Group<'q>,
    table: &Table,
    connection_type: &str,
    edge_type: &str,
    deltas: bool,
) -> Result<Vec<(String, ConnField)>, GqlError> {
    needs_selection(group, connection_type)?;
    let mut selection = Vec::new();
    for child in sub_groups(context, group, Some(connection_type))? {
        let field = match child.name {
            "__typename" => {
                is_leaf_selection(&child, "String", connection_type)?;
                ConnField::Typename(connection_type.to_owned())
            }
            "edges" => {
                needs_selection(&child, edge_type)?;
                no_arguments(&child, connection_type)?;
                ConnField::Edges(plan_edge(context, &child, table, edge_type, deltas)?)
            }
            "pageInfo" => {
                needs_selection(&child, "PageInfo")?;
                no_arguments(&child, connection_type)?;
                ConnField::PageInfo(plan_page_info(context, &child)?)
            }
            _ => return Err(cannot_query(&child, connection_type)),
        };
        selection.push((child.key.to_owned(), field));
    }
    Ok(selection)
}

fn plan_edge<'q>(
    context: &Context<'q>,
    group: &Group<'q>,
    table: &Table,
    edge_type: &str,
    deltas: bool,
) -> Result<Vec<(String, EdgeField)>, GqlError> {
    let node_type = if deltas { format!("{}Delta", table.spec.node_type) } else { table.spec.node_type.to_owned() };
    let mut fields = Vec::new();
    for child in sub_groups(context, group, Some(edge_type))? {
        let field = match child.name {
            "cursor" => {
                is_leaf_selection(&child, "String", edge_type)?;
                EdgeField::Cursor
            }
            "__typename" => {
                is_leaf_selection(&child, "String", edge_type)?;
                EdgeField::Typename(edge_type.to_owned())
            }
            "node" if deltas => {
                needs_selection(&child, &node_type)?;
                no_arguments(&child, edge_type)?;
                let mut selection = Vec::new();
                for leaf in sub_groups(context, &child, Some(&node_type))? {
                    let field = match leaf.name {
                        "dbId" => DeltaField::DbId,
                        "mutationType" => DeltaField::MutationType,
                        "__typename" => DeltaField::Typename,
                        _ => return Err(cannot_query(&leaf, &node_type)),
                    };
                    is_leaf_selection(&leaf, "scalar", &node_type)?;
                    selection.push((leaf.key.to_owned(), field));
                }
                EdgeField::Node(NodeSelection::Delta(selection))
            }
            "node" => {
                needs_selection(&child, &node_type)?;
                no_arguments(&child, edge_type)?;
                let selection = plan_node(context, &child, &table.tree, table.spec.node_type)?;
                if is_full_selection(&selection, &table.tree) {
                    EdgeField::Node(NodeSelection::Full)
                } else if let Some(fast) = identity_selection(&selection, &table.tree) {
                    EdgeField::Node(NodeSelection::Identity { fast, fields: selection })
                } else {
                    EdgeField::Node(NodeSelection::Fields(selection))
                }
            }
            _ => return Err(cannot_query(&child, edge_type)),
        };
        fields.push((child.key.to_owned(), field));
    }
    Ok(fields)
}

fn plan_node<'q>(
    context: &Context<'q>,
    group: &Group<'q>,
    tree: &FieldTree,
    type_name: &'static str,
) -> Result<Vec<(String, NodeField)>, GqlError> {
    // Nested objects' type names are not in the registry: fragments on them are not checked.
    let parent_type = if type_name.is_empty() { None } else { Some(type_name) };
    let mut fields = Vec::new();
    for child in sub_groups(context, group, parent_type)? {
        let type_label = if type_name.is_empty() { "object" } else { type_name };
        let field = match (child.name, tree.fields.iter().find(|(name, _)| *name == child.name)) {
            ("__typename", _) if !type_name.is_empty() => {
                is_leaf_selection(&child, "String", type_label)?;
                NodeField::Typename(type_name)
            }
            (_, Some((name, TreeNode::Leaf(column)))) => {
                is_leaf_selection(&child, column.graphql_type, type_label)?;
                NodeField::Leaf(name)
            }
            (_, Some((name, TreeNode::Object(subtree)))) => {
                needs_selection(&child, name)?;
                no_arguments(&child, type_label)?;
                NodeField::Object(name, plan_node(context, &child, subtree, "")?)
            }
            _ => return Err(cannot_query(&child, type_label)),
        };
        fields.push((child.key.to_owned(), field));
    }
    Ok(fields)
}

/// The selection as identity fields, when it has only top-level `dbId`, `createdAt`/`modifiedAt`
/// timestamps and `__typename`.
fn identity_selection(selection: &[(String, NodeField)], tree: &FieldTree) -> Option<Vec<(String, IdentityField)>> {
    selection
        .iter()
        .map(|(key, field)| {
            let identity = match field {
                NodeField::Typename(name) => IdentityField::Typename(name),
                NodeField::Leaf(name) => match (tree.get(name)?, *name) {
                    (TreeNode::Leaf(column), "dbId") => IdentityField::DbId(column.json),
                    (TreeNode::Leaf(column), "createdAt") if column.kind == ColumnKind::Timestamp => {
                        IdentityField::CreatedAt
                    }
                    (TreeNode::Leaf(column), "modifiedAt") if column.kind == ColumnKind::Timestamp => {
                        IdentityField::ModifiedAt
                    }
                    _ => return None,
                },
                NodeField::Object(..) => return None,
            };
            Some((key.clone(), identity))
        })
        .collect()
}

/// True when a node selection is exactly the registry's (same fields, order, nesting, no aliases).
fn is_full_selection(selection: &[(String, NodeField)], tree: &FieldTree) -> bool {
    selection.len() == tree.fields.len()
        && selection.iter().zip(&tree.fields).all(|((key, field), (name, node))| {
            key == name
                && match (field, node) {
                    (NodeField::Leaf(_), TreeNode::Leaf(_)) => true,
                    (NodeField::Object(_, inner), TreeNode::Object(subtree)) => is_full_selection(inner, subtree),
                    _ => false,
                }
        })
}

/// The registry's full selection as explicit fields (what the general path would do with it).
#[cfg(test)]
pub(crate) fn full_selection_fields(tree: &FieldTree) -> Vec<(String, NodeField)> {
    tree.fields
        .iter()
        .map(|(name, node)| {
            let field = match node {
                TreeNode::Leaf(_) => NodeField::Leaf(name),
                TreeNode::Object(subtree) => NodeField::Object(name, full_selection_fields(subtree)),
            };
            ((*name).to_owned(), field)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Execution and rendering.
// ---------------------------------------------------------------------------------------------

fn run(access: &mut Access<'_>, plans: &[RootPlan], forced: &[ForcedFieldError]) -> Executed {
    let mut body = String::with_capacity(1024);
    let mut errors = Vec::new();
    let mut root_fields = Vec::new();
    body.push_str("{\"data\":{");
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let key = plan.key();
        let field_name = plan.field_name(access.store());
        push_json_string(key, &mut body);
        body.push(':');
        let start = body.len();
        let forced_error = forced.iter().find(|f| f.field == key || Some(f.field.as_str()) == field_name);
        let result = match forced_error {
            Some(error) => Err(GqlError::field(key, error.message.clone(), error.code.clone())),
            None => run_root(access, plan, &mut body),
        };
        if let Err(error) = result {
            body.truncate(start);
            body.push_str("null");
            errors.push(error);
        }
        if let Some(name) = field_name {
            root_fields.push((name, body.len() - start));
        }
    }
    body.push('}');
    if !errors.is_empty() {
        body.push_str(",\"errors\":[");
        for (i, error) in errors.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            error.write(&mut body);
        }
        body.push(']');
    }
    body.push('}');
    Executed { body, root_fields }
}

/// Renders one root field into `out`; an `Err` becomes `null` plus an `errors` entry.
fn run_root(access: &mut Access<'_>, plan: &RootPlan, out: &mut String) -> Result<(), GqlError> {
    match plan {
        RootPlan::Typename { type_name, .. } => {
            push_json_string(type_name, out);
            Ok(())
        }
        RootPlan::Items { key, entity, filter, window, selection } => {
            render_items(access.store(), entity, filter, window, selection, out)
                .map_err(|()| GqlError::invalid_cursor(key))
        }
        RootPlan::Deltas { key, entity, window, selection } => {
            render_deltas(access.store(), entity, window, selection, out).map_err(|()| GqlError::invalid_cursor(key))
        }
        RootPlan::Webhook { db_id, selection, .. } => {
            match db_id.and_then(|id| access.store().webhooks.get(id)) {
                Some(hook) => render_webhook(hook, selection, out),
                None => out.push_str("null"),
            }
            Ok(())
        }
        RootPlan::Webhooks { key, window, selection } => {
            let window = decode_window::<i64>(window, "w:").map_err(|()| GqlError::invalid_cursor(key))?;
            let store = access.store();
            let all: Vec<&Webhook> =
                store.webhooks.iter().filter(|h| window.after.is_none_or(|a| h.db_id > a)).collect();
            let first = window.first.unwrap_or(all.len());
            let has_next_page = all.len() > first;
            let page: Vec<&Webhook> = all.into_iter().take(first).collect();
            render_webhook_connection(&page, selection, has_next_page, window.after.is_some(), out);
            Ok(())
        }
        RootPlan::AddWebhooks { key, inputs, selection } => {
            let Access::Write(store) = access else {
                return Err(GqlError::field(key, "addWebhooks is a mutation.", None));
            };
            let ids = store.add_webhooks(inputs).map_err(|message| GqlError::field(key, message, None))?;
            let added: Vec<&Webhook> = ids.iter().filter_map(|&id| store.webhooks.get(id)).collect();
            render_webhook_connection(&added, selection, false, false, out);
            Ok(())
        }
        RootPlan::RemoveWebhooks { key, db_ids, selection } => {
            let Access::Write(store) = access else {
                return Err(GqlError::field(key, "removeWebhooks is a mutation.", None));
            };
            let removed = db_ids.iter().filter(|&&id| store.webhooks.remove(id)).count();
            out.push('{');
            for (i, (field_key, field)) in selection.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(field_key, out);
                out.push(':');
                match field {
                    RemovedField::NumAffected => out.push_str(&removed.to_string()),
                    RemovedField::Typename => push_json_string("RemoveWebhooksResult", out),
                }
            }
            out.push('}');
            Ok(())
        }
    }
}

fn render_webhook_connection(
    hooks: &[&Webhook],
    selection: &[(String, WebhookConnField)],
    has_next_page: bool,
    has_previous_page: bool,
    out: &mut String,
) {
    out.push('{');
    for (i, (key, field)) in selection.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(key, out);
        out.push(':');
        match field {
            WebhookConnField::Typename(name) => push_json_string(name, out),
            WebhookConnField::PageInfo(fields) => render_page_info(fields, has_next_page, has_previous_page, out),
            WebhookConnField::Edges(edge_selection) => {
                out.push('[');
                for (j, hook) in hooks.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    for (k, (edge_key, edge_field)) in edge_selection.iter().enumerate() {
                        if k > 0 {
                            out.push(',');
                        }
                        push_json_string(edge_key, out);
                        out.push(':');
                        match edge_field {
                            WebhookEdgeField::Cursor => {
                                push_json_string(&BASE64.encode(format!("w:{}", hook.db_id)), out)
                            }
                            WebhookEdgeField::Typename(name) => push_json_string(name, out),
                            WebhookEdgeField::Node(fields) => render_webhook(hook, fields, out),
                        }
                    }
                    out.push('}');
                }
                out.push(']');
            }
        }
    }
    out.push('}');
}

/// A webhook node. `dbId` is an `Int64String` (a JSON string: Xledger's sample removes webhooks
/// with `$dbId: Int64String!`); post times are Central European wall-clock `DateTimeString`s.
fn render_webhook(hook: &Webhook, selection: &[(String, WebhookField)], out: &mut String) {
    let push_time = |time: Option<chrono::DateTime<chrono::Utc>>, out: &mut String| match time {
        Some(time) => push_json_string(
            &xledger_model::time::utc_to_oslo_wall_clock(time).format("%Y-%m-%dT%H:%M:%S").to_string(),
            out,
        ),
        None => out.push_str("null"),
    };
    out.push('{');
    for (i, (key, field)) in selection.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(key, out);
        out.push(':');
        match field {
            WebhookField::DbId => push_json_string(&hook.db_id.to_string(), out),
            WebhookField::Description => match &hook.description {
                Some(description) => push_json_string(description, out),
                None => out.push_str("null"),
            },
            WebhookField::Url => push_json_string(&hook.url, out),
            WebhookField::SerializedPayload => push_json_string(&hook.serialized_payload, out),
            WebhookField::LastSuccessfulPost => push_time(hook.last_successful_post, out),
            WebhookField::LastFailedPost => push_time(hook.last_failed_post, out),
            WebhookField::Typename => push_json_string("Webhook", out),
            WebhookField::State(fields) => {
                out.push('{');
                for (j, (state_key, state_field)) in fields.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_json_string(state_key, out);
                    out.push(':');
                    match state_field {
                        StateField::Code => push_json_string(hook.state.code(), out),
                        StateField::Typename => push_json_string("WebhookState", out),
                    }
                }
                out.push('}');
            }
        }
    }
    out.push('}');
}

/// Parses a webhook's `serializedPayload`: a JSON request `{"query": "subscription { … }"}` (how
/// Xledger's sample registers one) or the bare subscription document. It must select exactly one
/// root field `<itemsField>Mutated` of a served entity (`projectsMutated`, …) with
/// `edges { syncVersion node { … } }`; the node selection is checked like an items query's.
pub(crate) fn plan_subscription(store: &Store, payload: &str) -> Result<Subscription, String> {
    let first_message = |errors: Vec<GqlError>| errors.into_iter().next().map(|e| e.message).unwrap_or_default();
    let (query, variables) = match serde_json::from_str::<Json>(payload) {
        Ok(Json::Object(request)) => {
            let query = request
                .get("query")
                .and_then(Json::as_str)
                .ok_or("serializedPayload is a JSON object without a \"query\" string")?;
            (query.to_owned(), request.get("variables").cloned())
        }
        _ => (payload.to_owned(), None),
    };
    let document = parse_document(&query).map_err(first_message)?;
    let operation = pick_operation(&document, None).map_err(|e| e.message)?;
    if operation.kind != OperationKind::Subscription {
        return Err("serializedPayload must hold a subscription operation".to_owned());
    }
    let context = context_for(&document, operation.variables, variables.as_ref(), 0).map_err(first_message)?;
    let groups =
        collect(&context, std::slice::from_ref(&operation.selection), Some("Subscription")).map_err(|e| e.message)?;
    let [group] = groups.as_slice() else {
        return Err("a subscription selects exactly one root field".to_owned());
    };
    let table = store.tables.values().find(|t| group.name.strip_suffix("Mutated") == Some(t.spec.items_field));
    let Some(table) = table else {
        let known = store.tables.values().map(|t| format!("{}Mutated", t.spec.items_field)).collect::<Vec<_>>();
        return Err(format!("Cannot subscribe to \"{}\": this simulator offers {}.", group.name, known.join(", ")));
    };
    root_arguments(&context, group, "Subscription", &[]).map_err(|e| e.message)?;
    let node_type = table.spec.node_type;
    let connection_type = format!("{node_type}MutatedConnection");
    let edge_type = format!("{node_type}MutatedEdge");
    needs_selection(group, &connection_type).map_err(|e| e.message)?;
    let mut connection = Vec::new();
    for child in sub_groups(&context, group, Some(&connection_type)).map_err(|e| e.message)? {
        let field = match child.name {
            "__typename" => SubscriptionField::Typename(connection_type.clone()),
            "edges" => {
                needs_selection(&child, &edge_type).map_err(|e| e.message)?;
                let mut edge = Vec::new();
                for grandchild in sub_groups(&context, &child, Some(&edge_type)).map_err(|e| e.message)? {
                    let field = match grandchild.name {
                        "syncVersion" => {
                            is_leaf_selection(&grandchild, "String", &edge_type).map_err(|e| e.message)?;
                            MutatedEdgeField::SyncVersion
                        }
                        "__typename" => MutatedEdgeField::Typename(edge_type.clone()),
                        "node" => {
                            needs_selection(&grandchild, node_type).map_err(|e| e.message)?;
                            let fields =
                                plan_node(&context, &grandchild, &table.tree, node_type).map_err(|e| e.message)?;
                            MutatedEdgeField::Node(fields)
                        }
                        _ => return Err(cannot_query(&grandchild, &edge_type).message),
                    };
                    edge.push((grandchild.key.to_owned(), field));
                }
                SubscriptionField::Edges(edge)
            }
            _ => return Err(cannot_query(&child, &connection_type).message),
        };
        connection.push((child.key.to_owned(), field));
    }
    Ok(Subscription { entity: table.spec.name, field: group.name.to_owned(), key: group.key.to_owned(), connection })
}

/// Appends the quoted cursor of an items row; `scratch` is reused across rows of a page.
fn push_items_cursor(entity: &str, db_id: i64, scratch: &mut String, out: &mut String) {
    use std::fmt::Write as _;
    scratch.clear();
    // Writing into a String cannot fail.
    let _ = write!(scratch, "i:{entity}:{db_id}");
    out.push('"');
    BASE64.encode_string(scratch.as_bytes(), out);
    out.push('"');
}

fn deltas_cursor(entity: &str, seq: u64) -> String {
    BASE64.encode(format!("d:{entity}:{seq}"))
}

fn decode_cursor<T: std::str::FromStr>(cursor: &str, prefix: &str) -> Option<T> {
    let bytes = BASE64.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(prefix)?.parse().ok()
}

fn decode_window<K: std::str::FromStr + Copy>(window: &Window<String>, prefix: &str) -> Result<Window<K>, ()> {
    let decode = |cursor: &Option<String>| match cursor {
        None => Ok(None),
        Some(cursor) => decode_cursor(cursor, prefix).map(Some).ok_or(()),
    };
    Ok(Window {
        first: window.first,
        last: window.last,
        after: decode(&window.after)?,
        before: decode(&window.before)?,
    })
}

fn render_items(
    store: &Store,
    entity: &str,
    filter: &RowFilter,
    window: &Window<String>,
    selection: &[(String, ConnField)],
    out: &mut String,
) -> Result<(), ()> {
    let table = store.tables.get(entity).ok_or(())?;
    let window = decode_window::<i64>(window, &format!("i:{entity}:"))?;
    let page = table.items_page(filter, &window);
    let mut scratch = String::new();
    out.reserve(page.items.iter().map(|(_, row)| row.node.len() + 64).sum());
    render_connection(selection, page.has_next_page, page.has_previous_page, out, |edge_selection, out| {
        out.push('[');
        for (i, (db_id, row)) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            for (j, (key, field)) in edge_selection.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_json_string(key, out);
                out.push(':');
                match field {
                    EdgeField::Cursor => push_items_cursor(entity, *db_id, &mut scratch, out),
                    EdgeField::Typename(name) => push_json_string(name, out),
                    EdgeField::Node(NodeSelection::Full) => out.push_str(&row.node),
                    EdgeField::Node(NodeSelection::Fields(fields)) => project_node(&row.node, fields, out),
                    EdgeField::Node(NodeSelection::Identity { fields, .. }) if !row.identity_exact => {
                        project_node(&row.node, fields, out)
                    }
                    EdgeField::Node(NodeSelection::Identity { fast, .. }) => {
                        out.push('{');
                        for (k, (key, field)) in fast.iter().enumerate() {
                            if k > 0 {
                                out.push(',');
                            }
                            push_json_string(key, out);
                            out.push(':');
                            match *field {
                                IdentityField::DbId(json) => push_integer(*db_id, json, out),
                                IdentityField::CreatedAt => push_wall_clock(row.created, out),
                                IdentityField::ModifiedAt => push_wall_clock(row.modified, out),
                                IdentityField::Typename(name) => push_json_string(name, out),
                            }
                        }
                        out.push('}');
                    }
                    // Planned for change feeds only.
                    EdgeField::Node(NodeSelection::Delta(_)) => out.push_str("null"),
                }
            }
            out.push('}');
        }
        out.push(']');
    });
    Ok(())
}

fn render_deltas(
    store: &Store,
    entity: &str,
    window: &Window<String>,
    selection: &[(String, ConnField)],
    out: &mut String,
) -> Result<(), ()> {
    let table = store.tables.get(entity).ok_or(())?;
    let window = decode_window::<u64>(window, &format!("d:{entity}:"))?;
    for cursor in [window.after, window.before].into_iter().flatten() {
        // A cursor never issued, or one whose following entries were dropped by retention.
        if cursor > store.last_seq() {
            return Err(());
        }
    }
    if window.after.is_some_and(|after| after < table.dropped_through) {
        return Err(());
    }
    let page = table.deltas_page(&window);
    let typename = format!("{}Delta", table.spec.node_type);
    render_connection(selection, page.has_next_page, page.has_previous_page, out, |edge_selection, out| {
        out.push('[');
        for (i, entry) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            for (j, (key, field)) in edge_selection.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_json_string(key, out);
                out.push(':');
                match field {
                    EdgeField::Cursor => push_json_string(&deltas_cursor(entity, entry.seq), out),
                    EdgeField::Typename(name) => push_json_string(name, out),
                    EdgeField::Node(NodeSelection::Delta(fields)) => {
                        out.push('{');
                        for (k, (key, field)) in fields.iter().enumerate() {
                            if k > 0 {
                                out.push(',');
                            }
                            push_json_string(key, out);
                            out.push(':');
                            match field {
                                DeltaField::DbId => match table.spec.db_id_kind {
                                    DbIdKind::Int64String => push_json_string(&entry.db_id.to_string(), out),
                                    DbIdKind::Int => out.push_str(&entry.db_id.to_string()),
                                },
                                DeltaField::MutationType => push_json_string(entry.mutation.as_str(), out),
                                DeltaField::Typename => push_json_string(&typename, out),
                            }
                        }
                        out.push('}');
                    }
                    // Planned for items only.
                    EdgeField::Node(_) => out.push_str("null"),
                }
            }
            out.push('}');
        }
        out.push(']');
    });
    Ok(())
}

fn render_connection(
    selection: &[(String, ConnField)],
    has_next_page: bool,
    has_previous_page: bool,
    out: &mut String,
    mut edges: impl FnMut(&[(String, EdgeField)], &mut String),
) {
    out.push('{');
    for (i, (key, field)) in selection.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(key, out);
        out.push(':');
        match field {
            ConnField::Typename(name) => push_json_string(name, out),
            ConnField::Edges(edge_selection) => edges(edge_selection, out),
            ConnField::PageInfo(fields) => render_page_info(fields, has_next_page, has_previous_page, out),
        }
    }
    out.push('}');
}

fn render_page_info(
    fields: &[(String, PageInfoField)],
    has_next_page: bool,
    has_previous_page: bool,
    out: &mut String,
) {
    out.push('{');
    for (j, (key, field)) in fields.iter().enumerate() {
        if j > 0 {
            out.push(',');
        }
        push_json_string(key, out);
        out.push(':');
        match field {
            PageInfoField::HasNextPage => out.push_str(if has_next_page { "true" } else { "false" }),
            PageInfoField::HasPreviousPage => out.push_str(if has_previous_page { "true" } else { "false" }),
            PageInfoField::Typename => push_json_string("PageInfo", out),
        }
    }
    out.push('}');
}

/// Writes the selected fields of a pre-rendered node, copying leaf values byte for byte.
pub(crate) fn project_node(node: &str, fields: &[(String, NodeField)], out: &mut String) {
    // Stored nodes are JSON objects rendered by this crate, so parsing cannot fail; a field the
    // node lacks (not possible for a validated selection) is written as null. Field names are
    // plain identifiers, so they borrow from the node (no allocation per key); an escaped key
    // (only `corrupt` could write one) takes the owned path.
    match serde_json::from_str::<HashMap<&str, &RawValue>>(node) {
        Ok(map) => project_fields(|name| map.get(name).copied(), fields, out),
        Err(_) => {
            let map: HashMap<String, &RawValue> = serde_json::from_str(node).unwrap_or_default();
            project_fields(|name| map.get(name).copied(), fields, out);
        }
    }
}

fn project_fields<'n>(lookup: impl Fn(&str) -> Option<&'n RawValue>, fields: &[(String, NodeField)], out: &mut String) {
    out.push('{');
    for (i, (key, field)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(key, out);
        out.push(':');
        match field {
            NodeField::Typename(name) => push_json_string(name, out),
            NodeField::Leaf(name) => out.push_str(lookup(name).map_or("null", |raw| raw.get())),
            NodeField::Object(name, inner) => match lookup(name) {
                Some(raw) if raw.get() != "null" => project_node(raw.get(), inner, out),
                _ => out.push_str("null"),
            },
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    #[test]
    fn general_path_renders_the_full_selection_byte_for_byte_like_the_fast_path() {
        let config = SimConfig { rows: 300, ..SimConfig::default() };
        let store = Store::generate(&config).unwrap();
        for table in store.tables.values() {
            let fields = full_selection_fields(&table.tree);
            assert!(is_full_selection(&fields, &table.tree), "{}", table.spec.name);
            for row in table.rows.values() {
                let mut projected = String::new();
                project_node(&row.node, &fields, &mut projected);
                assert_eq!(projected, &*row.node, "{}", table.spec.name);
            }
        }
    }

    #[test]
    fn identity_scans_render_exactly_what_projection_renders() {
        let store = Store::generate(&SimConfig { rows: 300, ..SimConfig::default() }).unwrap();
        for table in store.tables.values() {
            let names = ["__typename", "modifiedAt", "dbId", "createdAt"];
            let fields: Vec<(String, NodeField)> = names
                .iter()
                .filter_map(|&name| match (name, table.tree.get(name)) {
                    ("__typename", _) => Some(("t".to_owned(), NodeField::Typename(table.spec.node_type))),
                    (_, Some(TreeNode::Leaf(column))) => Some((name.to_owned(), NodeField::Leaf(column.name))),
                    _ => None,
                })
                .collect();
            let fast = identity_selection(&fields, &table.tree).expect("only identity fields");
            let window = Window { first: Some(10_000), last: None, after: None, before: None };
            let selection = |node| vec![("edges".to_owned(), ConnField::Edges(vec![("node".to_owned(), node)]))];
            let mut projected = String::new();
            let mut rendered = String::new();
            let plain = selection(EdgeField::Node(NodeSelection::Fields(fields.clone())));
            let identity = selection(EdgeField::Node(NodeSelection::Identity { fast, fields }));
            render_items(&store, table.spec.name, &RowFilter::default(), &window, &plain, &mut projected).unwrap();
            render_items(&store, table.spec.name, &RowFilter::default(), &window, &identity, &mut rendered).unwrap();
            assert_eq!(rendered, projected, "{}", table.spec.name);
        }
    }

    #[test]
    fn registry_documents_select_the_full_node_and_take_the_fast_path() {
        let store = Store::generate(&SimConfig { rows: 1, ..SimConfig::default() }).unwrap();
        for spec in xledger_model::entities() {
            let request = Request {
                query: spec.items_page.document.to_owned(),
                variables: Some(serde_json::json!({ "first": 1 })),
                operation_name: None,
            };
            let document = parse_document(&request.query).unwrap();
            let operation = pick_operation(&document, None).unwrap();
            let context = context_for(&document, operation.variables, request.variables.as_ref(), 10_000).unwrap();
            let plans = plan(&store, &context, &operation).unwrap();
            let RootPlan::Items { selection, .. } = &plans[0] else { panic!("an items plan for {}", spec.name) };
            let ConnField::Edges(edge) = &selection[0].1 else { panic!("edges first for {}", spec.name) };
            assert!(matches!(edge[1].1, EdgeField::Node(NodeSelection::Full)), "{}", spec.name);
        }
    }
}
