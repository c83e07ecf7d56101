//! `cargo xtask fetch-schema`: replace `schema/xledger.graphql` with the live Xledger schema.
//!
//! The command sends the standard introspection query to the API (key from `XLEDGER_API_KEY`,
//! header `Authorization: token <key>`), converts the answer to SDL in a stable order (types,
//! fields, enum values and input fields sorted by name) so a refresh is a reviewable diff, prints
//! what changed for the entities our query files use (and new change feeds and subscriptions), and
//! writes the file atomically.
//!
//! It must never print or store the API key (not in output, errors, `Debug` or the file), and never
//! overwrite the snapshot with a result that is partial, does not parse back, or breaks
//! `schema/queries/*.graphql` (the analysis `xledger-model/build.rs` runs: `xledger-codegen`;
//! `--force` overrides only that last check).
//!
//! The steps are plain functions so tests can drive them without the binary:
//!
//! ```no_run
//! use xtask::fetch_schema::{diff, fetch, to_sdl, ApiKey, Endpoint, OurQueries};
//!
//! # fn main() -> Result<(), xtask::fetch_schema::FetchSchemaError> {
//! let endpoint = Endpoint::parse("https://demo.xledger.net/graphql")?;
//! let key = ApiKey::from_env()?;
//! let introspection = fetch(&endpoint, &key)?;
//! let sdl = to_sdl(&introspection, &endpoint, chrono::Utc::now().date_naive())?;
//! let queries = OurQueries::load(std::path::Path::new("schema"))?;
//! let old = std::fs::read_to_string("schema/xledger.graphql").unwrap_or_default();
//! println!("{}", diff(&old, &sdl, &queries)?);
//! queries.check(&sdl)?; // Err: the new schema breaks our queries
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;
use graphql_parser::query as q;
use graphql_parser::schema as s;
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use xledger_codegen::QueryFile;

/// Production endpoint, the default of `--endpoint`.
pub const DEFAULT_ENDPOINT: &str = "https://www.xledger.net/graphql";

/// The environment variable that holds the API key.
pub const API_KEY_ENV: &str = "XLEDGER_API_KEY";

/// Request timeout, as Xledger's own clients use.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The standard introspection query (graphql-js `getIntrospectionQuery({ descriptions: true })`),
/// without the newer `specifiedByURL` / `isRepeatable` fields that older servers reject.
pub const INTROSPECTION_QUERY: &str = r#"query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  fields(includeDeprecated: true) {
    name
    description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
}

fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType { kind name ofType { kind name } }
            }
          }
        }
      }
    }
  }
}
"#;

const HELP_DETAILS: &str = "\
The API key is read from XLEDGER_API_KEY (never from a flag, never printed).

The schema is written as SDL, types and fields sorted by name, so a refresh is a reviewable diff.
Before writing, the command prints what changed for our entities (fields added, removed or retyped
in every type our queries and subscriptions reach), new `<entity>_deltas` change feeds and new
subscriptions (webhooks such as `projectsMutated`), and checks the new schema against
schema/queries/*.graphql and schema/type-hints.toml exactly as the build does (xledger-codegen).

Nothing is written when the API answers with errors, the result is partial or does not parse back,
or the new schema breaks our queries (--force writes anyway in that last case).";

/// Options of `fetch-schema`.
#[derive(Debug, clap::Args)]
#[command(after_help = HELP_DETAILS)]
pub struct Args {
    /// The GraphQL endpoint to introspect (https://, or http:// on loopback only).
    #[arg(long, value_name = "URL", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Where to write the schema; `None`: `xledger.graphql` in the schema folder.
    #[arg(long, value_name = "FILE", help = "Where to write the schema [default: <schema-dir>/xledger.graphql]")]
    pub output: Option<PathBuf>,
    /// The folder with `queries/*.graphql` and `type-hints.toml` that the new schema must serve;
    /// `None`: the workspace's `schema/`.
    #[arg(
        long,
        value_name = "DIR",
        help = "The folder with queries/*.graphql and type-hints.toml the new schema must serve [default: <workspace>/schema]"
    )]
    pub schema_dir: Option<PathBuf>,
    /// Print what changed and check our queries, but write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write even when the new schema breaks our queries (the build fails until they are fixed).
    #[arg(long)]
    pub force: bool,
}

/// What went wrong, and where. No variant ever holds the API key.
#[derive(Debug, thiserror::Error)]
pub enum FetchSchemaError {
    #[error("{API_KEY_ENV} is not set: create an API key in Xledger and export it (it is never printed)")]
    MissingApiKey,
    #[error("{API_KEY_ENV} contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey,
    #[error("endpoint `{endpoint}`: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("{endpoint}: the request failed")]
    Transport {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: HTTP {status}: {body}")]
    HttpStatus { endpoint: String, status: u16, body: String },
    #[error("{endpoint}: the API answered with errors (HTTP {status}): {}", messages.join("; "))]
    GraphqlErrors { endpoint: String, status: u16, messages: Vec<String> },
    #[error("{endpoint}: the answer is not a GraphQL JSON response: {detail}")]
    NotGraphqlResponse { endpoint: String, detail: String },
    #[error("{endpoint}: the answer has no `data.__schema` (partial or refused introspection)")]
    MissingSchema { endpoint: String },
    #[error("the introspection result has no query type")]
    NoQueryType,
    #[error("the introspection result is invalid or partial: {0}")]
    InvalidIntrospection(String),
    #[error("the SDL made from the introspection result does not parse back: {0}")]
    SdlDoesNotParse(String),
    #[error("the previous schema does not parse, so there is nothing to compare with: {0}")]
    OldSchemaDoesNotParse(String),
    #[error("schema/queries/{entity}.graphql does not parse: {message}")]
    QueryDoesNotParse { entity: String, message: String },
    /// The build's own analysis (`xledger-codegen`) refuses our query files with the new schema.
    #[error("the new schema breaks our queries: {0}")]
    BreaksOurQueries(xledger_codegen::AnalyzeError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Secrets and endpoints.
// ---------------------------------------------------------------------------------------------

/// The Xledger API key. `Debug` prints `ApiKey(<redacted>)`; there is no `Display`.
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; refuses an empty one and one that cannot go in a header.
    pub fn new(key: String) -> Result<Self, FetchSchemaError> {
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(FetchSchemaError::MissingApiKey);
        }
        HeaderValue::from_str(&format!("token {key}")).map_err(|_| FetchSchemaError::InvalidApiKey)?;
        Ok(Self(key))
    }

    /// Reads the key from `XLEDGER_API_KEY`.
    pub fn from_env() -> Result<Self, FetchSchemaError> {
        match std::env::var_os(API_KEY_ENV) {
            None => Err(FetchSchemaError::MissingApiKey),
            Some(value) => Self::new(value.into_string().map_err(|_| FetchSchemaError::InvalidApiKey)?),
        }
    }

    fn header_value(&self) -> Result<HeaderValue, FetchSchemaError> {
        let mut value =
            HeaderValue::from_str(&format!("token {}", self.0)).map_err(|_| FetchSchemaError::InvalidApiKey)?;
        // Keeps the value out of reqwest's and hyper's Debug output.
        value.set_sensitive(true);
        Ok(value)
    }

    /// Server text may echo what it was sent; it reaches errors only through this.
    fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if text.contains(&self.0) { text.replace(&self.0, "<redacted>").into() } else { text.into() }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A GraphQL endpoint: `https://`, or `http://` on a loopback host (tests, simulators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(Url);

impl Endpoint {
    /// Parses and checks an endpoint URL.
    ///
    /// ```
    /// use xtask::fetch_schema::Endpoint;
    /// assert!(Endpoint::parse("https://demo.xledger.net/graphql").is_ok());
    /// assert!(Endpoint::parse("http://127.0.0.1:8080/graphql").is_ok());
    /// assert!(Endpoint::parse("http://demo.xledger.net/graphql").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, FetchSchemaError> {
        let bad =
            |reason: &str| FetchSchemaError::BadEndpoint { endpoint: text.to_string(), reason: reason.to_string() };
        let url = Url::parse(text).map_err(|e| bad(&format!("not a URL ({e})")))?;
        let host = url.host_str().ok_or_else(|| bad("has no host"))?;
        // IPv6 hosts come bracketed ("[::1]").
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        match url.scheme() {
            "https" => Ok(Self(url)),
            "http" if loopback => Ok(Self(url)),
            "http" => Err(bad("plain http:// is refused except on loopback (127.0.0.1, ::1, localhost); use https://")),
            _ => Err(bad("only https:// (or http:// on loopback) is supported")),
        }
    }

    /// The URL the request goes to.
    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// Shows scheme, host, port and path only: user info and query strings may hold credentials.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        write!(f, "{}://{}", url.scheme(), url.host_str().unwrap_or_default())?;
        if let Some(port) = url.port() {
            write!(f, ":{port}")?;
        }
        f.write_str(url.path())
    }
}

// ---------------------------------------------------------------------------------------------
// Fetching.
// ---------------------------------------------------------------------------------------------

/// The `data.__schema` object of an introspection answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Introspection {
    query_type: Option<NamedRef>,
    mutation_type: Option<NamedRef>,
    subscription_type: Option<NamedRef>,
    types: Option<Vec<FullType>>,
    directives: Option<Vec<DirectiveDef>>,
}

#[derive(Debug, Clone, Deserialize)]
struct NamedRef {
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum TypeKind {
    Scalar,
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
    List,
    NonNull,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullType {
    kind: TypeKind,
    name: Option<String>,
    description: Option<String>,
    fields: Option<Vec<FieldDef>>,
    input_fields: Option<Vec<InputValue>>,
    interfaces: Option<Vec<TypeRef>>,
    enum_values: Option<Vec<EnumValueDef>>,
    possible_types: Option<Vec<TypeRef>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldDef {
    name: String,
    description: Option<String>,
    args: Vec<InputValue>,
    #[serde(rename = "type")]
    ty: TypeRef,
    #[serde(default)]
    is_deprecated: bool,
    deprecation_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InputValue {
    name: String,
    description: Option<String>,
    #[serde(rename = "type")]
    ty: TypeRef,
    default_value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnumValueDef {
    name: String,
    description: Option<String>,
    #[serde(default)]
    is_deprecated: bool,
    deprecation_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeRef {
    kind: TypeKind,
    name: Option<String>,
    of_type: Option<Box<TypeRef>>,
}

#[derive(Debug, Clone, Deserialize)]
struct DirectiveDef {
    name: String,
    description: Option<String>,
    locations: Vec<String>,
    args: Vec<InputValue>,
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<EnvelopeData>,
    errors: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct EnvelopeData {
    #[serde(rename = "__schema")]
    schema: Option<serde_json::Value>,
}

impl Introspection {
    /// Reads a GraphQL response body: refuses `errors`, a missing `data.__schema`, and a
    /// `__schema` that is not shaped like an introspection result. `endpoint` and `status` only
    /// label the errors.
    pub fn from_response(endpoint: &Endpoint, status: u16, body: &str) -> Result<Self, FetchSchemaError> {
        let endpoint = endpoint.to_string();
        let envelope: Envelope = serde_json::from_str(body)
            .map_err(|e| FetchSchemaError::NotGraphqlResponse { endpoint: endpoint.clone(), detail: e.to_string() })?;
        if let Some(errors) = envelope.errors.filter(|e| !e.is_empty()) {
            let messages = errors.iter().map(error_text).collect();
            return Err(FetchSchemaError::GraphqlErrors { endpoint, status, messages });
        }
        let schema = envelope
            .data
            .and_then(|d| d.schema)
            .filter(|s| !s.is_null())
            .ok_or_else(|| FetchSchemaError::MissingSchema { endpoint: endpoint.clone() })?;
        serde_json::from_value(schema).map_err(|e| FetchSchemaError::InvalidIntrospection(format!("`__schema`: {e}")))
    }
}

/// `message [code]` of one GraphQL error entry (Xledger puts rate-limit codes at the top level).
fn error_text(error: &serde_json::Value) -> String {
    let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("(no message)");
    let code =
        error.get("code").or_else(|| error.get("extensions").and_then(|x| x.get("code"))).and_then(|c| c.as_str());
    match code {
        Some(code) => format!("{message} [{code}]"),
        None => message.to_string(),
    }
}

/// Sends the introspection query and returns the schema it describes.
///
/// Refuses transport failures, non-2xx statuses, GraphQL `errors` and answers without
/// `data.__schema`. Server text that echoes the key is redacted before it reaches an error.
pub fn fetch(endpoint: &Endpoint, key: &ApiKey) -> Result<Introspection, FetchSchemaError> {
    let label = endpoint.to_string();
    // `without_url`: the endpoint is already in the message, shown without user info or query.
    let transport =
        |e: reqwest::Error| FetchSchemaError::Transport { endpoint: label.clone(), source: e.without_url() };
    let client = reqwest::blocking::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("xledger-sync-xtask/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(transport)?;
    let request = serde_json::json!({ "query": INTROSPECTION_QUERY, "operationName": "IntrospectionQuery" });
    let response = client
        .post(endpoint.url().clone())
        .header(AUTHORIZATION, key.header_value()?)
        .header(ACCEPT, "application/json")
        .json(&request)
        .send()
        .map_err(transport)?;
    let status = response.status();
    let body = response.text().map_err(transport)?;
    let text = key.redact(&body);
    if status.is_success() {
        return Introspection::from_response(endpoint, status.as_u16(), &text);
    }
    // Xledger often explains a refusal as GraphQL errors; otherwise show the start of the body.
    match Introspection::from_response(endpoint, status.as_u16(), &text) {
        Err(e @ FetchSchemaError::GraphqlErrors { .. }) => Err(e),
        _ => Err(FetchSchemaError::HttpStatus {
            endpoint: label,
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Introspection -> SDL.
// ---------------------------------------------------------------------------------------------

const BUILT_IN_SCALARS: [&str; 5] = ["Boolean", "Float", "ID", "Int", "String"];
const BUILT_IN_DIRECTIVES: [&str; 5] = ["deprecated", "include", "oneOf", "skip", "specifiedBy"];

/// Converts an introspection result to SDL that `graphql-parser` 0.4 (the build's parser) reads.
///
/// Deterministic: the same schema gives the same bytes whatever order the server lists things
/// in. Types are sorted by name, and so are fields, enum values, input fields, interfaces and
/// union members; arguments keep the server's order (it is part of the API's signature).
/// Descriptions and deprecations are kept; built-in scalars and directives and `__*` types are
/// omitted. The header names the endpoint (without user info or query) and the UTC date.
///
/// Refuses a result that is partial (no query type, a type without its fields, a reference to a
/// type the result does not define) and SDL that does not parse back.
pub fn to_sdl(
    introspection: &Introspection,
    source: &Endpoint,
    fetched_on: NaiveDate,
) -> Result<String, FetchSchemaError> {
    let invalid = FetchSchemaError::InvalidIntrospection;
    let types = introspection.types.as_ref().ok_or_else(|| invalid("`types` is missing".into()))?;
    let mut by_name: BTreeMap<&str, &FullType> = BTreeMap::new();
    for t in types {
        let name =
            t.name.as_deref().filter(|n| !n.is_empty()).ok_or_else(|| invalid("a type without a name".into()))?;
        if by_name.insert(name, t).is_some() {
            return Err(invalid(format!("type `{name}` is listed twice")));
        }
    }
    let query = introspection.query_type.as_ref().ok_or(FetchSchemaError::NoQueryType)?;
    for (role, root) in [
        ("query", Some(query)),
        ("mutation", introspection.mutation_type.as_ref()),
        ("subscription", introspection.subscription_type.as_ref()),
    ] {
        if let Some(root) = root {
            match by_name.get(root.name.as_str()) {
                Some(t) if t.kind == TypeKind::Object => {}
                _ => {
                    return Err(invalid(format!(
                        "the {role} type `{}` is not an object type of the result",
                        root.name
                    )));
                }
            }
        }
    }

    let printer = Printer { types: &by_name };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Xledger GraphQL schema, fetched from {source} on {fetched_on} (UTC) by `cargo xtask fetch-schema`."
    );
    out.push_str("# Do not edit by hand: run that command again to refresh it. Types, fields, enum values and input\n");
    out.push_str("# fields are sorted by name so that a refresh is a reviewable diff. Which String fields hold\n");
    out.push_str("# decimals or dates is said in schema/type-hints.toml.\n\n");
    out.push_str("schema {\n");
    let _ = writeln!(out, "  query: {}", query.name);
    if let Some(m) = &introspection.mutation_type {
        let _ = writeln!(out, "  mutation: {}", m.name);
    }
    if let Some(sub) = &introspection.subscription_type {
        let _ = writeln!(out, "  subscription: {}", sub.name);
    }
    out.push_str("}\n");

    let mut directives: Vec<&DirectiveDef> =
        introspection.directives.iter().flatten().filter(|d| !BUILT_IN_DIRECTIVES.contains(&d.name.as_str())).collect();
    directives.sort_by(|a, b| a.name.cmp(&b.name));
    for d in directives {
        out.push('\n');
        printer.description(&mut out, "", d.description.as_deref());
        let args = printer.arguments(&d.args, "", &format!("directive @{}", d.name))?;
        let _ = writeln!(out, "directive @{}{args} on {}", d.name, d.locations.join(" | "));
    }

    let mut printed = 0usize;
    for (name, t) in &by_name {
        if name.starts_with("__") || BUILT_IN_SCALARS.contains(name) {
            continue;
        }
        out.push('\n');
        printer.type_definition(&mut out, name, t)?;
        printed += 1;
    }

    let parsed = s::parse_schema::<String>(&out).map_err(|e| FetchSchemaError::SdlDoesNotParse(e.to_string()))?;
    let parsed_types = parsed.definitions.iter().filter(|d| matches!(d, s::Definition::TypeDefinition(_))).count();
    if parsed_types != printed {
        return Err(FetchSchemaError::SdlDoesNotParse(format!("{printed} types printed but {parsed_types} read back")));
    }
    Ok(out)
}

struct Printer<'a> {
    types: &'a BTreeMap<&'a str, &'a FullType>,
}

impl Printer<'_> {
    fn type_definition(&self, out: &mut String, name: &str, t: &FullType) -> Result<(), FetchSchemaError> {
        let invalid = FetchSchemaError::InvalidIntrospection;
        self.description(out, "", t.description.as_deref());
        match t.kind {
            TypeKind::Scalar => {
                let _ = writeln!(out, "scalar {name}");
            }
            TypeKind::Object | TypeKind::Interface => {
                let keyword = if t.kind == TypeKind::Object { "type" } else { "interface" };
                let fields = t
                    .fields
                    .as_ref()
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| invalid(format!("{keyword} `{name}` has no fields")))?;
                let mut interfaces = t
                    .interfaces
                    .iter()
                    .flatten()
                    .map(|i| self.named(i, &format!("the interfaces of `{name}`")))
                    .collect::<Result<Vec<_>, _>>()?;
                interfaces.sort();
                let implements = if interfaces.is_empty() {
                    String::new()
                } else {
                    format!(" implements {}", interfaces.join(" & "))
                };
                let _ = writeln!(out, "{keyword} {name}{implements} {{");
                let mut fields: Vec<&FieldDef> = fields.iter().collect();
                fields.sort_by(|a, b| a.name.cmp(&b.name));
                for f in fields {
                    let at = format!("{name}.{}", f.name);
                    self.description(out, "  ", f.description.as_deref());
                    let args = self.arguments(&f.args, "  ", &at)?;
                    let ty = self.type_ref(&f.ty, &at)?;
                    let deprecated = deprecation(f.is_deprecated, f.deprecation_reason.as_deref());
                    let _ = writeln!(out, "  {}{args}: {ty}{deprecated}", f.name);
                }
                out.push_str("}\n");
            }
            TypeKind::Union => {
                let members = t
                    .possible_types
                    .as_ref()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| invalid(format!("union `{name}` has no members")))?;
                let mut members = members
                    .iter()
                    .map(|m| self.named(m, &format!("the members of `{name}`")))
                    .collect::<Result<Vec<_>, _>>()?;
                members.sort();
                let _ = writeln!(out, "union {name} = {}", members.join(" | "));
            }
            TypeKind::Enum => {
                let values = t
                    .enum_values
                    .as_ref()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| invalid(format!("enum `{name}` has no values")))?;
                let mut values: Vec<&EnumValueDef> = values.iter().collect();
                values.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = writeln!(out, "enum {name} {{");
                for v in values {
                    self.description(out, "  ", v.description.as_deref());
                    let _ =
                        writeln!(out, "  {}{}", v.name, deprecation(v.is_deprecated, v.deprecation_reason.as_deref()));
                }
                out.push_str("}\n");
            }
            TypeKind::InputObject => {
                let fields = t
                    .input_fields
                    .as_ref()
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| invalid(format!("input `{name}` has no fields")))?;
                let mut fields: Vec<&InputValue> = fields.iter().collect();
                fields.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = writeln!(out, "input {name} {{");
                for f in fields {
                    self.description(out, "  ", f.description.as_deref());
                    let _ = writeln!(out, "  {}", self.input_value(f, &format!("{name}.{}", f.name))?);
                }
                out.push_str("}\n");
            }
            TypeKind::List | TypeKind::NonNull => {
                return Err(invalid(format!("`{name}` is listed as a type but is a {:?} wrapper", t.kind)));
            }
        }
        Ok(())
    }

    /// `(a: T, b: T = 1)` on one line, or one argument per line when any has a description.
    fn arguments(&self, args: &[InputValue], indent: &str, at: &str) -> Result<String, FetchSchemaError> {
        if args.is_empty() {
            return Ok(String::new());
        }
        let printed =
            args.iter().map(|a| self.input_value(a, &format!("{at}({}:)", a.name))).collect::<Result<Vec<_>, _>>()?;
        if args.iter().all(|a| a.description.as_deref().is_none_or(str::is_empty)) {
            return Ok(format!("({})", printed.join(", ")));
        }
        let mut out = String::from("(\n");
        let inner = format!("{indent}  ");
        for (a, line) in args.iter().zip(printed) {
            self.description(&mut out, &inner, a.description.as_deref());
            let _ = writeln!(out, "{inner}{line}");
        }
        out.push_str(indent);
        out.push(')');
        Ok(out)
    }

    fn input_value(&self, v: &InputValue, at: &str) -> Result<String, FetchSchemaError> {
        let ty = self.type_ref(&v.ty, at)?;
        Ok(match &v.default_value {
            // Introspection gives the default in GraphQL syntax already; parse-back checks it.
            Some(default) => format!("{}: {ty} = {default}", v.name),
            None => format!("{}: {ty}", v.name),
        })
    }

    fn type_ref(&self, t: &TypeRef, at: &str) -> Result<String, FetchSchemaError> {
        let invalid = FetchSchemaError::InvalidIntrospection;
        match t.kind {
            TypeKind::NonNull => {
                let inner =
                    t.of_type.as_deref().ok_or_else(|| invalid(format!("{at}: a NON_NULL type without `ofType`")))?;
                if inner.kind == TypeKind::NonNull {
                    return Err(invalid(format!("{at}: NON_NULL of NON_NULL")));
                }
                Ok(format!("{}!", self.type_ref(inner, at)?))
            }
            TypeKind::List => {
                let inner =
                    t.of_type.as_deref().ok_or_else(|| invalid(format!("{at}: a LIST type without `ofType`")))?;
                Ok(format!("[{}]", self.type_ref(inner, at)?))
            }
            _ => self.named(t, at),
        }
    }

    /// The name of a named type reference, which the result must define (or be built in).
    fn named(&self, t: &TypeRef, at: &str) -> Result<String, FetchSchemaError> {
        let name = t.name.as_deref().ok_or_else(|| {
            FetchSchemaError::InvalidIntrospection(format!("{at}: a {:?} type reference without a name", t.kind))
        })?;
        if !self.types.contains_key(name) && !BUILT_IN_SCALARS.contains(&name) {
            return Err(FetchSchemaError::InvalidIntrospection(format!(
                "{at} refers to type `{name}`, which the result does not define"
            )));
        }
        Ok(name.to_string())
    }

    fn description(&self, out: &mut String, indent: &str, description: Option<&str>) {
        if let Some(d) = description.filter(|d| !d.trim().is_empty()) {
            let _ = writeln!(out, "{indent}{}", graphql_string(d));
        }
    }
}

fn deprecation(is_deprecated: bool, reason: Option<&str>) -> String {
    match (is_deprecated, reason) {
        (false, _) => String::new(),
        (true, Some(reason)) => format!(" @deprecated(reason: {})", graphql_string(reason)),
        (true, None) => " @deprecated".to_string(),
    }
}

/// A GraphQL string literal. Always the one-line form: block strings strip indentation, so the
/// text would not survive a round trip exactly.
fn graphql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The schema without its leading comment block: two snapshots with equal bodies are the same
/// schema even when fetched on different days.
fn schema_body(sdl: &str) -> &str {
    let mut rest = sdl;
    loop {
        let trimmed = rest.trim_start_matches(['\n', '\r']);
        if trimmed.starts_with('#') {
            rest = trimmed.split_once('\n').map_or("", |(_, tail)| tail);
        } else {
            return trimmed;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Our queries: the build's analysis.
// ---------------------------------------------------------------------------------------------

/// The query files and type hints a schema must serve (`<schema dir>/queries/*.graphql` and
/// `<schema dir>/type-hints.toml`).
#[derive(Debug, Clone)]
pub struct OurQueries {
    /// In file-name order, as the build reads them.
    files: Vec<QueryFile>,
    type_hints: String,
}

impl OurQueries {
    /// Reads the query files and the type hints from a schema folder.
    pub fn load(schema_dir: &Path) -> Result<Self, FetchSchemaError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchSchemaError::Io { path, source }
        };
        let queries_dir = schema_dir.join("queries");
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&queries_dir).map_err(io(&queries_dir))? {
            let path = entry.map_err(io(&queries_dir))?.path();
            if path.extension().is_some_and(|x| x == "graphql") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let entity = path.file_stem().and_then(|s| s.to_str()).map(str::to_string).ok_or_else(|| {
                io(&path)(std::io::Error::new(std::io::ErrorKind::InvalidData, "the file name is not UTF-8"))
            })?;
            files.push(QueryFile { entity, text: std::fs::read_to_string(&path).map_err(io(&path))? });
        }
        let hints_path = schema_dir.join("type-hints.toml");
        let type_hints = std::fs::read_to_string(&hints_path).map_err(io(&hints_path))?;
        Ok(Self { files, type_hints })
    }

    /// The entity names (query file stems), in file-name order.
    pub fn entities(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|file| file.entity.as_str())
    }

    /// The query files, in file-name order.
    pub fn query_files(&self) -> &[QueryFile] {
        &self.files
    }

    /// The text of `type-hints.toml`.
    pub fn type_hints(&self) -> &str {
        &self.type_hints
    }

    /// Runs the build's analysis of `schema_sdl` with our query files and type hints:
    /// `Err(BreaksOurQueries)` with the build's own message when the build would fail.
    pub fn check(&self, schema_sdl: &str) -> Result<(), FetchSchemaError> {
        xledger_codegen::analyze(schema_sdl, &self.files, &self.type_hints)
            .map(drop)
            .map_err(FetchSchemaError::BreaksOurQueries)
    }
}

// ---------------------------------------------------------------------------------------------
// The diff for our entities.
// ---------------------------------------------------------------------------------------------

/// What changed between two schemas, for the entities our query files define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaDiff {
    /// One entry per entity with changes, in query-file order.
    pub entities: Vec<EntityChanges>,
    /// Root fields ending in `_deltas` that the new schema has and the old did not.
    pub new_change_feeds: Vec<String>,
    /// Fields of the subscription type (webhook subscriptions such as `projectsMutated`) that the
    /// new schema has and the old did not.
    pub new_subscriptions: Vec<String>,
}

/// The changes in the types one entity's queries reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityChanges {
    pub entity: String,
    pub changes: Vec<Change>,
}

/// One change in a type our queries reach. `selected` is true when our queries select the field
/// (then a removal or retyping breaks them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    TypeAdded { type_name: String },
    TypeRemoved { type_name: String },
    TypeKindChanged { type_name: String, from: &'static str, to: &'static str },
    FieldAdded { type_name: String, field: String, ty: String },
    FieldRemoved { type_name: String, field: String, ty: String, selected: bool },
    FieldRetyped { type_name: String, field: String, from: String, to: String, selected: bool },
    ArgumentAdded { type_name: String, field: String, argument: String, ty: String },
    ArgumentRemoved { type_name: String, field: String, argument: String, ty: String },
    ArgumentRetyped { type_name: String, field: String, argument: String, from: String, to: String },
    EnumValueAdded { type_name: String, value: String },
    EnumValueRemoved { type_name: String, value: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let selected = |s: bool| if s { "  (selected by our queries)" } else { "" };
        match self {
            Change::TypeAdded { type_name } => write!(f, "added    type {type_name}"),
            Change::TypeRemoved { type_name } => write!(f, "removed  type {type_name}"),
            Change::TypeKindChanged { type_name, from, to } => write!(f, "changed  type {type_name}: {from} → {to}"),
            Change::FieldAdded { type_name, field, ty } => write!(f, "added    {type_name}.{field}: {ty}"),
            Change::FieldRemoved { type_name, field, ty, selected: s } => {
                write!(f, "removed  {type_name}.{field}: {ty}{}", selected(*s))
            }
            Change::FieldRetyped { type_name, field, from, to, selected: s } => {
                write!(f, "retyped  {type_name}.{field}: {from} → {to}{}", selected(*s))
            }
            Change::ArgumentAdded { type_name, field, argument, ty } => {
                write!(f, "added    {type_name}.{field}({argument}: {ty})")
            }
            Change::ArgumentRemoved { type_name, field, argument, ty } => {
                write!(f, "removed  {type_name}.{field}({argument}: {ty})")
            }
            Change::ArgumentRetyped { type_name, field, argument, from, to } => {
                write!(f, "retyped  {type_name}.{field}({argument}:): {from} → {to}")
            }
            Change::EnumValueAdded { type_name, value } => write!(f, "added    {type_name}.{value}"),
            Change::EnumValueRemoved { type_name, value } => write!(f, "removed  {type_name}.{value}"),
        }
    }
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entities.is_empty() {
            writeln!(f, "Schema diff: no changes for our entities.")?;
        } else {
            writeln!(f, "Schema diff for our entities (types their queries reach):")?;
            for entity in &self.entities {
                writeln!(f, "  {}", entity.entity)?;
                for change in &entity.changes {
                    writeln!(f, "    {change}")?;
                }
            }
        }
        if !self.new_change_feeds.is_empty() {
            writeln!(f, "New change feeds: {}", self.new_change_feeds.join(", "))?;
        }
        if !self.new_subscriptions.is_empty() {
            writeln!(f, "New subscriptions (webhooks): {}", self.new_subscriptions.join(", "))?;
        }
        Ok(())
    }
}

/// Compares two schemas (SDL) for the entities of `queries`: for every type their queries reach
/// in either schema, fields added, removed and retyped (with argument changes of the fields they
/// select, and enum values), plus new `_deltas` root fields.
pub fn diff(old_sdl: &str, new_sdl: &str, queries: &OurQueries) -> Result<SchemaDiff, FetchSchemaError> {
    let old = Model::parse(old_sdl).map_err(FetchSchemaError::OldSchemaDoesNotParse)?;
    let new = Model::parse(new_sdl).map_err(FetchSchemaError::SdlDoesNotParse)?;
    let mut entities = Vec::new();
    for QueryFile { entity, text } in &queries.files {
        let document = q::parse_query::<String>(text)
            .map_err(|e| FetchSchemaError::QueryDoesNotParse { entity: entity.clone(), message: e.to_string() })?;
        let mut usage = Usage::default();
        usage.walk(&old, &document);
        usage.walk(&new, &document);
        let changes = usage.changes(&old, &new);
        if !changes.is_empty() {
            entities.push(EntityChanges { entity: entity.clone(), changes });
        }
    }
    let old_roots = old.root_fields();
    let new_change_feeds =
        new.root_fields().into_iter().filter(|f| f.ends_with("_deltas") && !old_roots.contains(f)).collect();
    let old_subscriptions = old.subscription_fields();
    let new_subscriptions = new.subscription_fields().into_iter().filter(|f| !old_subscriptions.contains(f)).collect();
    Ok(SchemaDiff { entities, new_change_feeds, new_subscriptions })
}

/// The parts of a schema the diff compares.
struct Model {
    query: String,
    /// The subscription type, when the schema has one.
    subscription: Option<String>,
    types: BTreeMap<String, TypeModel>,
}

struct TypeModel {
    kind: &'static str,
    /// Output fields (objects, interfaces) or input fields (inputs).
    fields: BTreeMap<String, FieldModel>,
    enum_values: BTreeSet<String>,
}

struct FieldModel {
    ty: String,
    named: String,
    args: BTreeMap<String, (String, String)>,
}

impl Model {
    fn parse(sdl: &str) -> Result<Self, String> {
        let document = s::parse_schema::<String>(sdl).map_err(|e| e.to_string())?;
        let mut types = BTreeMap::new();
        for name in BUILT_IN_SCALARS {
            types.insert(
                name.to_string(),
                TypeModel { kind: "scalar", fields: BTreeMap::new(), enum_values: BTreeSet::new() },
            );
        }
        let mut query = "Query".to_string();
        let mut subscription = "Subscription".to_string();
        for definition in document.definitions {
            let (name, model) = match definition {
                s::Definition::SchemaDefinition(d) => {
                    if let Some(q) = d.query {
                        query = q;
                    }
                    if let Some(sub) = d.subscription {
                        subscription = sub;
                    }
                    continue;
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Object(t)) => {
                    let fields =
                        t.fields.iter().map(|f| (f.name.clone(), field_model(&f.field_type, &f.arguments))).collect();
                    (t.name, TypeModel { kind: "object", fields, enum_values: BTreeSet::new() })
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Interface(t)) => {
                    let fields =
                        t.fields.iter().map(|f| (f.name.clone(), field_model(&f.field_type, &f.arguments))).collect();
                    (t.name, TypeModel { kind: "interface", fields, enum_values: BTreeSet::new() })
                }
                s::Definition::TypeDefinition(s::TypeDefinition::InputObject(t)) => {
                    let fields = t.fields.iter().map(|f| (f.name.clone(), field_model(&f.value_type, &[]))).collect();
                    (t.name, TypeModel { kind: "input", fields, enum_values: BTreeSet::new() })
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Enum(t)) => {
                    let enum_values = t.values.iter().map(|v| v.name.clone()).collect();
                    (t.name, TypeModel { kind: "enum", fields: BTreeMap::new(), enum_values })
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Scalar(t)) => {
                    (t.name, TypeModel { kind: "scalar", fields: BTreeMap::new(), enum_values: BTreeSet::new() })
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Union(t)) => {
                    (t.name, TypeModel { kind: "union", fields: BTreeMap::new(), enum_values: BTreeSet::new() })
                }
                s::Definition::TypeExtension(_) | s::Definition::DirectiveDefinition(_) => continue,
            };
            types.insert(name, model);
        }
        let subscription = types.contains_key(&subscription).then_some(subscription);
        Ok(Self { query, subscription, types })
    }

    fn root(&self) -> Option<&TypeModel> {
        self.types.get(&self.query)
    }

    fn subscription_root(&self) -> Option<&TypeModel> {
        self.subscription.as_ref().and_then(|name| self.types.get(name))
    }

    fn root_fields(&self) -> BTreeSet<String> {
        self.root().map(|r| r.fields.keys().cloned().collect()).unwrap_or_default()
    }

    fn subscription_fields(&self) -> BTreeSet<String> {
        self.subscription_root().map(|r| r.fields.keys().cloned().collect()).unwrap_or_default()
    }
}

fn field_model(ty: &s::Type<'_, String>, args: &[s::InputValue<'_, String>]) -> FieldModel {
    FieldModel {
        ty: ty.to_string(),
        named: named_type(ty).to_string(),
        args: args
            .iter()
            .map(|a| (a.name.clone(), (a.value_type.to_string(), named_type(&a.value_type).to_string())))
            .collect(),
    }
}

fn named_type<'t>(t: &'t s::Type<'_, String>) -> &'t str {
    match t {
        s::Type::NamedType(n) => n,
        s::Type::ListType(inner) | s::Type::NonNullType(inner) => named_type(inner),
    }
}

/// What one entity's query file uses of a schema.
#[derive(Default)]
struct Usage {
    /// Root fields the operations select.
    root_fields: BTreeSet<String>,
    /// Root fields of the subscription type the file's `subscription` selects.
    subscription_fields: BTreeSet<String>,
    /// Every type reached under them, including argument (filter) input types and leaf types.
    types: BTreeSet<String>,
    /// (type, field) pairs the selections name.
    selected: BTreeSet<(String, String)>,
}

impl Usage {
    fn walk(&mut self, model: &Model, document: &q::Document<'_, String>) {
        let fragments: BTreeMap<&str, &q::FragmentDefinition<'_, String>> = document
            .definitions
            .iter()
            .filter_map(|d| match d {
                q::Definition::Fragment(f) => Some((f.name.as_str(), f)),
                q::Definition::Operation(_) => None,
            })
            .collect();
        for definition in &document.definitions {
            let (set, subscription) = match definition {
                q::Definition::Operation(q::OperationDefinition::Query(op)) => (&op.selection_set, false),
                q::Definition::Operation(q::OperationDefinition::SelectionSet(set)) => (set, false),
                q::Definition::Operation(q::OperationDefinition::Subscription(op)) => (&op.selection_set, true),
                _ => continue,
            };
            for selection in &set.items {
                if let q::Selection::Field(root) = selection {
                    let (roots, root_type) = if subscription {
                        (&mut self.subscription_fields, model.subscription_root())
                    } else {
                        (&mut self.root_fields, model.root())
                    };
                    roots.insert(root.name.clone());
                    let Some(field) = root_type.and_then(|r| r.fields.get(&root.name)) else {
                        continue;
                    };
                    self.arguments(model, field, root);
                    self.selection(model, &field.named, &root.selection_set, &fragments, 0);
                }
            }
        }
    }

    fn selection(
        &mut self,
        model: &Model,
        type_name: &str,
        set: &q::SelectionSet<'_, String>,
        fragments: &BTreeMap<&str, &q::FragmentDefinition<'_, String>>,
        depth: usize,
    ) {
        self.types.insert(type_name.to_string());
        // Fragments may spread into each other; real selections are far shallower than this.
        if depth > 32 {
            return;
        }
        for item in &set.items {
            match item {
                q::Selection::Field(f) => {
                    self.selected.insert((type_name.to_string(), f.name.clone()));
                    let Some(field) = model.types.get(type_name).and_then(|t| t.fields.get(&f.name)) else {
                        continue;
                    };
                    self.arguments(model, field, f);
                    self.selection(model, &field.named, &f.selection_set, fragments, depth + 1);
                }
                q::Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = fragments.get(spread.fragment_name.as_str()) {
                        self.selection(model, type_name, &fragment.selection_set, fragments, depth + 1);
                    }
                }
                q::Selection::InlineFragment(inline) => {
                    let on = match &inline.type_condition {
                        Some(q::TypeCondition::On(on)) => on.as_str(),
                        None => type_name,
                    };
                    self.selection(model, on, &inline.selection_set, fragments, depth + 1);
                }
            }
        }
    }

    /// The input types behind the arguments a selection passes (e.g. the filter's `dbId_in`).
    fn arguments(&mut self, model: &Model, field: &FieldModel, selection: &q::Field<'_, String>) {
        for (argument, _) in &selection.arguments {
            if let Some((_, named)) = field.args.get(argument) {
                self.input(model, named);
            }
        }
    }

    fn input(&mut self, model: &Model, type_name: &str) {
        if !self.types.insert(type_name.to_string()) {
            return;
        }
        if let Some(t) = model.types.get(type_name).filter(|t| t.kind == "input") {
            for field in t.fields.values() {
                self.input(model, &field.named);
            }
        }
    }

    fn changes(&self, old: &Model, new: &Model) -> Vec<Change> {
        let mut changes = Vec::new();
        // The root type: only the fields our operations use (its other fields are other entities').
        if let (Some(old_root), Some(new_root)) = (old.root(), new.root()) {
            for field in &self.root_fields {
                self.field_changes(
                    &new.query,
                    field,
                    old_root.fields.get(field),
                    new_root.fields.get(field),
                    &mut changes,
                );
            }
        }
        // The subscription type likewise: only the fields our subscriptions use.
        let no_fields = BTreeMap::new();
        if !self.subscription_fields.is_empty() {
            let old_fields = old.subscription_root().map_or(&no_fields, |r| &r.fields);
            let new_fields = new.subscription_root().map_or(&no_fields, |r| &r.fields);
            let type_name = new.subscription.as_deref().or(old.subscription.as_deref()).unwrap_or("Subscription");
            for field in &self.subscription_fields {
                self.field_changes(type_name, field, old_fields.get(field), new_fields.get(field), &mut changes);
            }
        }
        for type_name in &self.types {
            if *type_name == old.query || *type_name == new.query {
                continue;
            }
            match (old.types.get(type_name), new.types.get(type_name)) {
                (None, None) => {}
                (Some(_), None) => changes.push(Change::TypeRemoved { type_name: type_name.clone() }),
                (None, Some(_)) => changes.push(Change::TypeAdded { type_name: type_name.clone() }),
                (Some(o), Some(n)) if o.kind != n.kind => {
                    changes.push(Change::TypeKindChanged { type_name: type_name.clone(), from: o.kind, to: n.kind });
                }
                (Some(o), Some(n)) => {
                    let names: BTreeSet<&String> = o.fields.keys().chain(n.fields.keys()).collect();
                    for field in names {
                        self.field_changes(type_name, field, o.fields.get(field), n.fields.get(field), &mut changes);
                    }
                    for value in o.enum_values.difference(&n.enum_values) {
                        changes.push(Change::EnumValueRemoved { type_name: type_name.clone(), value: value.clone() });
                    }
                    for value in n.enum_values.difference(&o.enum_values) {
                        changes.push(Change::EnumValueAdded { type_name: type_name.clone(), value: value.clone() });
                    }
                }
            }
        }
        changes
    }

    fn field_changes(
        &self,
        type_name: &str,
        field: &str,
        old: Option<&FieldModel>,
        new: Option<&FieldModel>,
        out: &mut Vec<Change>,
    ) {
        let selected = self.selected.contains(&(type_name.to_string(), field.to_string()))
            || self.root_fields.contains(field)
            || self.subscription_fields.contains(field);
        let (type_name, field) = (type_name.to_string(), field.to_string());
        match (old, new) {
            (None, None) => {}
            (Some(o), None) => out.push(Change::FieldRemoved { type_name, field, ty: o.ty.clone(), selected }),
            (None, Some(n)) => out.push(Change::FieldAdded { type_name, field, ty: n.ty.clone() }),
            (Some(o), Some(n)) => {
                if o.ty != n.ty {
                    out.push(Change::FieldRetyped {
                        type_name: type_name.clone(),
                        field: field.clone(),
                        from: o.ty.clone(),
                        to: n.ty.clone(),
                        selected,
                    });
                }
                if !selected {
                    return;
                }
                let arguments: BTreeSet<&String> = o.args.keys().chain(n.args.keys()).collect();
                for argument in arguments {
                    let (type_name, field, argument) = (type_name.clone(), field.clone(), argument.clone());
                    match (o.args.get(&argument), n.args.get(&argument)) {
                        (Some((from, _)), None) => {
                            out.push(Change::ArgumentRemoved { type_name, field, argument, ty: from.clone() })
                        }
                        (None, Some((to, _))) => {
                            out.push(Change::ArgumentAdded { type_name, field, argument, ty: to.clone() })
                        }
                        (Some((from, _)), Some((to, _))) if from != to => out.push(Change::ArgumentRetyped {
                            type_name,
                            field,
                            argument,
                            from: from.clone(),
                            to: to.clone(),
                        }),
                        _ => {}
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing and the command.
// ---------------------------------------------------------------------------------------------

/// Writes `text` to `path` through a temporary file in the same folder, synced, then renamed over
/// `path`: readers (and the build) see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), FetchSchemaError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchSchemaError::Io { path, source }
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        io(path)(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the output path names no file"))
    })?;
    let temp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
        file.write_all(text.as_bytes()).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        std::fs::rename(&temp, path).map_err(io(path))
    })();
    if result.is_err() {
        // Best effort: the error that matters is the one already in `result`.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Runs the command: fetch, convert, print the diff, check our queries, write.
pub fn run(args: Args) -> anyhow::Result<()> {
    let key = ApiKey::from_env()?;
    let endpoint = Endpoint::parse(&args.endpoint)?;
    let schema_dir = args.schema_dir.unwrap_or_else(|| crate::workspace_root().join("schema"));
    let output = args.output.unwrap_or_else(|| schema_dir.join("xledger.graphql"));
    // Read the queries first: a broken checkout should fail before spending an API request.
    let queries = OurQueries::load(&schema_dir)?;

    eprintln!("fetch-schema: introspecting {endpoint}");
    let introspection = fetch(&endpoint, &key)?;
    let sdl = to_sdl(&introspection, &endpoint, chrono::Utc::now().date_naive())?;

    let old = match std::fs::read_to_string(&output) {
        Ok(old) => Some(old),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading the current schema {}", output.display())),
    };
    let mut stdout = std::io::stdout().lock();
    match &old {
        Some(old) => match diff(old, &sdl, &queries) {
            Ok(changes) => write!(stdout, "{changes}")?,
            Err(e) => writeln!(stdout, "Schema diff: cannot compare with {}: {e}", output.display())?,
        },
        None => writeln!(stdout, "Schema diff: {} does not exist yet, nothing to compare with.", output.display())?,
    }
    stdout.flush()?;

    if let Err(breaks) = queries.check(&sdl) {
        eprintln!("fetch-schema: {breaks}");
        if !args.force {
            anyhow::bail!(
                "not writing {}: the new schema breaks our queries (see above); adapt schema/queries and \
                 schema/type-hints.toml, or pass --force to write it anyway",
                output.display()
            );
        }
        eprintln!("warning: --force: writing a schema that breaks our queries; the build fails until they are fixed");
    }
    if old.as_deref().is_some_and(|old| schema_body(old) == schema_body(&sdl)) {
        writeln!(stdout, "fetch-schema: the schema is unchanged; {} left as it is.", output.display())?;
        return Ok(());
    }
    if args.dry_run {
        writeln!(stdout, "fetch-schema: --dry-run: {} not written.", output.display())?;
        return Ok(());
    }
    write_atomically(&output, &sdl)?;
    writeln!(stdout, "fetch-schema: wrote {}.", output.display())?;
    Ok(())
}
