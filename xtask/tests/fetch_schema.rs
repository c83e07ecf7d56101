//! `cargo xtask fetch-schema` against a wiremock introspection endpoint on 127.0.0.1.
//!
//! Fixtures (tests/fixtures/): `introspection.json` is what a server answers to the standard
//! introspection query for the small schema in `introspection.graphql` (regenerate it with
//! `make_introspection.py`); `schema/` holds the timesheets and projects query files and their
//! type hints, so these tests do not move when the workspace's own queries do.

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::NaiveDate;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use xledger_codegen::AnalyzeError;
use xtask::fetch_schema::{
    ApiKey, Change, Endpoint, FetchSchemaError, Introspection, OurQueries, diff, fetch, to_sdl, write_atomically,
};

const KEY: &str = "xlk-test-6f1c9e2a7d-SECRET";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture_json() -> Value {
    let text = std::fs::read_to_string(fixtures().join("introspection.json")).expect("read fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn fixture_queries() -> OurQueries {
    OurQueries::load(&fixtures().join("schema")).expect("load fixture queries")
}

fn demo_endpoint() -> Endpoint {
    Endpoint::parse("https://demo.xledger.net/graphql").expect("endpoint")
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).expect("date")
}

fn introspection(response: &Value) -> Introspection {
    Introspection::from_response(&demo_endpoint(), 200, &response.to_string()).expect("introspection")
}

fn sdl_of(response: &Value) -> String {
    to_sdl(&introspection(response), &demo_endpoint(), date()).expect("to_sdl")
}

fn types(response: &mut Value) -> &mut Vec<Value> {
    response["data"]["__schema"]["types"].as_array_mut().expect("types array")
}

fn type_mut<'a>(response: &'a mut Value, name: &str) -> &'a mut Value {
    types(response).iter_mut().find(|t| t["name"] == name).unwrap_or_else(|| panic!("fixture has no type {name}"))
}

fn fields_mut<'a>(response: &'a mut Value, type_name: &str, key: &str) -> &'a mut Vec<Value> {
    type_mut(response, type_name)[key].as_array_mut().expect("field list")
}

fn remove_field(response: &mut Value, type_name: &str, field: &str) {
    let fields = fields_mut(response, type_name, "fields");
    let before = fields.len();
    fields.retain(|f| f["name"] != field);
    assert_eq!(fields.len(), before - 1, "fixture has no {type_name}.{field}");
}

fn set_field_type(response: &mut Value, type_name: &str, key: &str, field: &str, ty: Value) {
    let field = fields_mut(response, type_name, key)
        .iter_mut()
        .find(|f| f["name"] == field)
        .unwrap_or_else(|| panic!("fixture has no {type_name}.{field}"));
    field["type"] = ty;
}

fn add_scalar(response: &mut Value, name: &str) {
    types(response).push(json!({
        "kind": "SCALAR", "name": name, "description": null, "fields": null, "inputFields": null,
        "interfaces": null, "enumValues": null, "possibleTypes": null
    }));
}

fn named(kind: &str, name: &str) -> Value {
    json!({ "kind": kind, "name": name, "ofType": null })
}

/// A server that answers the introspection POST carrying our token header with `body`.
async fn server(status: u16, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(header("authorization", format!("token {KEY}").as_str()))
        .and(body_string_contains("__schema"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn endpoint_of(server: &MockServer) -> String {
    format!("{}/graphql", server.uri())
}

/// `fetch` is blocking (reqwest::blocking): keep it off the test's runtime thread.
async fn fetch_from(endpoint: String) -> Result<Introspection, FetchSchemaError> {
    tokio::task::spawn_blocking(move || {
        let endpoint = Endpoint::parse(&endpoint)?;
        fetch(&endpoint, &ApiKey::new(KEY.to_string())?)
    })
    .await
    .expect("fetch thread")
}

/// Runs the real `xtask fetch-schema` binary (so `run()` reads the key from the environment and
/// prints to real stdout/stderr) against the fixture schema folder.
async fn run_xtask(endpoint: &str, output: &Path, extra: &[&str]) -> Output {
    let schema_dir = fixtures().join("schema");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("fetch-schema")
        .args(["--endpoint", endpoint])
        .arg("--schema-dir")
        .arg(&schema_dir)
        .arg("--output")
        .arg(output)
        .args(extra)
        .env("XLEDGER_API_KEY", KEY)
        .output()
        .await
        .expect("run xtask")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_key(output: &Output) {
    assert!(!text(&output.stdout).contains(KEY), "key in stdout");
    assert!(!text(&output.stderr).contains(KEY), "key in stderr");
}

// ---------------------------------------------------------------------------------------------
// fetch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fetch_posts_the_introspection_query_with_the_token_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("token {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_string_contains("query IntrospectionQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json()))
        .expect(1)
        .mount(&server)
        .await;

    let result = fetch_from(endpoint_of(&server)).await;

    assert!(result.is_ok(), "{result:?}");
    server.verify().await;
}

#[tokio::test]
async fn fetch_refuses_a_graphql_errors_response_and_redacts_an_echoed_key() {
    let body =
        json!({ "errors": [{ "message": format!("Bad format for API Token {KEY}"), "code": "UNAUTHENTICATED" }] });
    let server = server(200, body).await;

    let err = fetch_from(endpoint_of(&server)).await.expect_err("errors must be refused");

    let FetchSchemaError::GraphqlErrors { status, messages, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*status, 200);
    assert_eq!(messages, &["Bad format for API Token <redacted> [UNAUTHENTICATED]".to_string()]);
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn fetch_refuses_an_http_error_status() {
    let server = server(503, json!({ "message": "maintenance" })).await;

    let err = fetch_from(endpoint_of(&server)).await.expect_err("503 must be refused");

    assert!(matches!(err, FetchSchemaError::HttpStatus { status: 503, .. }), "{err:?}");
}

#[tokio::test]
async fn fetch_refuses_a_response_without_schema() {
    let server = server(200, json!({ "data": {} })).await;

    let err = fetch_from(endpoint_of(&server)).await.expect_err("a missing __schema must be refused");

    assert!(matches!(err, FetchSchemaError::MissingSchema { .. }), "{err:?}");
}

#[test]
fn from_response_refuses_null_schema_and_non_json() {
    let endpoint = demo_endpoint();
    let null_schema = Introspection::from_response(&endpoint, 200, r#"{"data":{"__schema":null}}"#);
    let not_json = Introspection::from_response(&endpoint, 200, "<html>Gateway</html>");

    assert!(matches!(null_schema, Err(FetchSchemaError::MissingSchema { .. })), "{null_schema:?}");
    assert!(matches!(not_json, Err(FetchSchemaError::NotGraphqlResponse { .. })), "{not_json:?}");
}

// ---------------------------------------------------------------------------------------------
// to_sdl
// ---------------------------------------------------------------------------------------------

#[test]
fn to_sdl_is_byte_identical_whatever_order_the_server_lists_things_in() {
    let fixture = fixture_json();
    let mut shuffled = fixture_json();
    for t in types(&mut shuffled).iter_mut() {
        for key in ["fields", "inputFields", "enumValues", "possibleTypes", "interfaces"] {
            if let Some(list) = t[key].as_array_mut() {
                list.reverse();
            }
        }
    }
    types(&mut shuffled).reverse();

    let first = sdl_of(&fixture);
    let second = sdl_of(&fixture);
    let from_shuffled = sdl_of(&shuffled);

    assert_eq!(first, second);
    assert_eq!(first, from_shuffled);
}

#[test]
fn to_sdl_writes_header_schema_and_types_sorted_by_name() {
    let sdl = sdl_of(&fixture_json());

    assert!(sdl.starts_with(
        "# Xledger GraphQL schema, fetched from https://demo.xledger.net/graphql on 2026-11-28 (UTC) by `cargo xtask fetch-schema`.\n"
    ));
    assert!(sdl.contains("\nschema {\n  query: Query\n  mutation: Mutation\n}\n"));
    let names: Vec<&str> = sdl
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match words.next() {
                Some("type" | "input" | "enum" | "scalar" | "union" | "interface") => words.next(),
                _ => None,
            }
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let mut fixture = fixture_json();
    let expected: Vec<String> = types(&mut fixture)
        .iter()
        .filter_map(|t| t["name"].as_str())
        .filter(|n| !n.starts_with("__") && !["Boolean", "Float", "ID", "Int", "String"].contains(n))
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), expected.len(), "every fixture type except built-in scalars and __* types: {names:?}");
    assert!(
        sdl.contains("type Timesheet {\n  activity: Activity\n  assignmentDate: String\n  \"Free text."),
        "fields sorted inside a type:\n{sdl}"
    );
}

#[test]
fn to_sdl_keeps_descriptions_arguments_defaults_deprecations_and_custom_directives() {
    let sdl = sdl_of(&fixture_json());

    for expected in [
        "\"Query cost weight used by the server's rate limiter.\"\ndirective @cost(weight: Int!) on FIELD_DEFINITION\n",
        "  \"Free text.\\nMay span \\\"several\\\" lines.\"\n  comment: String @deprecated(reason: \"Use `text`.\")\n",
        "  \"Never sent by the server any more.\"\n  STOPPED @deprecated(reason: \"Use PAUSED.\")\n",
        "  \"The state a new subscription starts in.\"\n  state: WebhookState = RUNNING\n",
        "  search(text: String!, first: Int = 20): [SearchResult!]!\n",
        "  timesheets(first: Int, last: Int, after: String, before: String, filter: TimesheetFilter): TimesheetConnection\n",
        "union SearchResult = Project | Timesheet\n",
        "type Project implements Node {\n",
        "  dbId_in: [Int64String!]\n",
    ] {
        assert!(sdl.contains(expected), "missing {expected:?} in:\n{sdl}");
    }
    for omitted in ["__Schema", "__Type", "scalar String", "scalar Boolean", "directive @skip", "directive @deprecated"]
    {
        assert!(!sdl.contains(omitted), "{omitted:?} must be omitted");
    }
}

#[test]
fn to_sdl_output_passes_the_builds_analysis_of_our_queries() {
    let sdl = sdl_of(&fixture_json());

    let verdict = fixture_queries().check(&sdl);

    assert!(verdict.is_ok(), "{verdict:?}");
}

#[test]
fn to_sdl_refuses_a_result_that_misses_a_referenced_type() {
    let mut partial = fixture_json();
    types(&mut partial).retain(|t| t["name"] != "Owner");

    let err = to_sdl(&introspection(&partial), &demo_endpoint(), date()).expect_err("partial result");

    assert_eq!(
        err.to_string(),
        "the introspection result is invalid or partial: Timesheet.owner refers to type `Owner`, which the result does not define"
    );
}

#[test]
fn to_sdl_refuses_an_object_without_fields_and_a_missing_query_type() {
    let mut no_fields = fixture_json();
    type_mut(&mut no_fields, "Timesheet")["fields"] = Value::Null;
    let mut no_query = fixture_json();
    no_query["data"]["__schema"]["queryType"] = Value::Null;

    let no_fields = to_sdl(&introspection(&no_fields), &demo_endpoint(), date());
    let no_query = to_sdl(&introspection(&no_query), &demo_endpoint(), date());

    assert!(
        matches!(&no_fields, Err(FetchSchemaError::InvalidIntrospection(m)) if m == "type `Timesheet` has no fields"),
        "{no_fields:?}"
    );
    assert!(matches!(no_query, Err(FetchSchemaError::NoQueryType)), "{no_query:?}");
}

// ---------------------------------------------------------------------------------------------
// check and diff
// ---------------------------------------------------------------------------------------------

#[test]
fn check_refuses_a_schema_without_a_field_our_queries_select() {
    let mut new = fixture_json();
    remove_field(&mut new, "Timesheet", "workingHours");

    let err = fixture_queries().check(&sdl_of(&new)).expect_err("breaks timesheets");

    let FetchSchemaError::BreaksOurQueries(analysis) = err else { panic!("{err:?}") };
    let AnalyzeError::Query { entity, message, .. } = &analysis else { panic!("{analysis:?}") };
    assert_eq!(entity, "timesheets");
    assert_eq!(message, "type `Timesheet` has no field `workingHours`");
    assert!(analysis.to_string().starts_with("schema/queries/timesheets.graphql: "), "{analysis}");
}

/// The workspace's own schema and queries: `projects.graphql` subscribes to `projectsMutated`.
fn workspace_schema() -> (String, OurQueries) {
    let dir = xtask::workspace_root().join("schema");
    let sdl = std::fs::read_to_string(dir.join("xledger.graphql")).expect("read the schema");
    (sdl, OurQueries::load(&dir).expect("load our queries"))
}

#[test]
fn check_refuses_a_schema_without_the_subscription_a_query_file_declares() {
    let (sdl, queries) = workspace_schema();
    queries.check(&sdl).expect("the workspace's schema serves its queries");
    let without =
        sdl.replace("  projectsMutated: ProjectMutationConnection\n", "  ordersMutated: ProjectMutationConnection\n");
    assert_ne!(without, sdl);

    let err = queries.check(&without).expect_err("breaks projects");

    let FetchSchemaError::BreaksOurQueries(analysis) = err else { panic!("{err:?}") };
    assert_eq!(
        analysis.to_string(),
        "schema/queries/projects.graphql: operation ProjectsMutated: type `Subscription` has no field `projectsMutated`"
    );
}

#[test]
fn diff_follows_our_subscriptions_and_names_new_ones() {
    let (old, queries) = workspace_schema();
    let new = old.replace("  syncVersion: String\n", "  syncVersion: Int64String\n").replace(
        "  projectsMutated: ProjectMutationConnection\n",
        "  projectsMutated: ProjectMutationConnection\n  timesheetsMutated: ProjectMutationConnection\n",
    );

    let changes = diff(&old, &new, &queries).expect("diff");

    let projects: Vec<String> = changes
        .entities
        .iter()
        .filter(|e| e.entity == "projects")
        .flat_map(|e| e.changes.iter().map(Change::to_string))
        .collect();
    assert_eq!(projects, ["retyped  ProjectMutationEdge.syncVersion: String → Int64String  (selected by our queries)"]);
    assert_eq!(changes.entities.len(), 1, "{changes}");
    assert_eq!(changes.new_subscriptions, ["timesheetsMutated"]);
    assert!(changes.to_string().ends_with("New subscriptions (webhooks): timesheetsMutated\n"), "{changes}");
}

#[test]
fn diff_lists_a_retyped_and_a_removed_field_of_an_entity() {
    let old = sdl_of(&fixture_json());
    let mut new = fixture_json();
    add_scalar(&mut new, "Decimal");
    set_field_type(&mut new, "Timesheet", "fields", "workingHours", named("SCALAR", "Decimal"));
    remove_field(&mut new, "Timesheet", "hourlyRevenueCurrency");

    let changes = diff(&old, &sdl_of(&new), &fixture_queries()).expect("diff");

    assert_eq!(
        changes.to_string(),
        "Schema diff for our entities (types their queries reach):\n\
         \x20 timesheets\n\
         \x20   added    type Decimal\n\
         \x20   removed  Timesheet.hourlyRevenueCurrency: String  (selected by our queries)\n\
         \x20   retyped  Timesheet.workingHours: String → Decimal  (selected by our queries)\n"
    );
}

#[test]
fn diff_follows_filter_inputs_and_shared_nested_types() {
    let old = sdl_of(&fixture_json());
    let mut new = fixture_json();
    let int_list = json!({ "kind": "LIST", "name": null, "ofType": {
        "kind": "NON_NULL", "name": null, "ofType": { "kind": "SCALAR", "name": "Int", "ofType": null } } });
    set_field_type(&mut new, "TimesheetFilter", "inputFields", "dbId_in", int_list);
    remove_field(&mut new, "Employee", "code");

    let changes = diff(&old, &sdl_of(&new), &fixture_queries()).expect("diff");

    let by_entity: Vec<(&str, Vec<String>)> = changes
        .entities
        .iter()
        .map(|e| (e.entity.as_str(), e.changes.iter().map(Change::to_string).collect()))
        .collect();
    assert_eq!(
        by_entity,
        vec![
            ("projects", vec!["removed  Employee.code: String".to_string()]),
            (
                "timesheets",
                vec![
                    "removed  Employee.code: String  (selected by our queries)".to_string(),
                    "retyped  TimesheetFilter.dbId_in: [Int64String!] → [Int!]".to_string(),
                ]
            ),
        ]
    );
}

#[test]
fn diff_says_no_changes_and_names_new_change_feeds() {
    let old = sdl_of(&fixture_json());
    let mut new = fixture_json();
    let root = fields_mut(&mut new, "Query", "fields");
    let mut feed = root.iter().find(|f| f["name"] == "project_deltas").expect("project_deltas").clone();
    feed["name"] = json!("employee_deltas");
    let mut other = feed.clone();
    other["name"] = json!("accounts");
    root.extend([feed, other]);

    let unchanged = diff(&old, &old, &fixture_queries()).expect("diff");
    let with_feed = diff(&old, &sdl_of(&new), &fixture_queries()).expect("diff");

    assert_eq!(unchanged.to_string(), "Schema diff: no changes for our entities.\n");
    assert_eq!(with_feed.to_string(), "Schema diff: no changes for our entities.\nNew change feeds: employee_deltas\n");
}

// ---------------------------------------------------------------------------------------------
// Endpoint, key, writing
// ---------------------------------------------------------------------------------------------

#[test]
fn endpoint_refuses_plain_http_except_on_loopback() {
    for ok in [
        "https://www.xledger.net/graphql",
        "http://127.0.0.1:8080/graphql",
        "http://[::1]:80/",
        "http://localhost/graphql",
    ] {
        assert!(Endpoint::parse(ok).is_ok(), "{ok}");
    }
    for refused in ["http://demo.xledger.net/graphql", "http://10.0.0.1/graphql", "ftp://127.0.0.1/", "not a url"] {
        assert!(matches!(Endpoint::parse(refused), Err(FetchSchemaError::BadEndpoint { .. })), "{refused}");
    }
}

#[test]
fn endpoint_display_drops_user_info_and_query() {
    let endpoint = Endpoint::parse("https://user:pw@demo.xledger.net:8443/graphql?token=abc").expect("endpoint");

    assert_eq!(endpoint.to_string(), "https://demo.xledger.net:8443/graphql");
}

#[test]
fn api_key_debug_is_redacted_and_bad_keys_are_refused() {
    let key = ApiKey::new(KEY.to_string()).expect("key");

    assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
    assert!(matches!(ApiKey::new("  ".to_string()), Err(FetchSchemaError::MissingApiKey)));
    assert!(matches!(ApiKey::new("a\nb".to_string()), Err(FetchSchemaError::InvalidApiKey)));
}

#[test]
fn write_atomically_replaces_the_file_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xledger.graphql");
    std::fs::write(&path, "old").expect("seed");

    write_atomically(&path, "new").expect("write");

    assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("xledger.graphql")]);
}

// ---------------------------------------------------------------------------------------------
// The whole command (the binary, so run() reads the environment and prints for real)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn run_writes_the_schema_then_leaves_an_unchanged_one_alone_and_never_shows_the_key() {
    let server = server(200, fixture_json()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("xledger.graphql");

    let first = run_xtask(&endpoint_of(&server), &output, &[]).await;
    let written = std::fs::read(&output).expect("schema written");
    let second = run_xtask(&endpoint_of(&server), &output, &[]).await;

    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&first.stdout).contains("does not exist yet"), "{}", text(&first.stdout));
    assert!(text(&second.stdout).contains("Schema diff: no changes for our entities.\n"));
    assert!(text(&second.stdout).contains("the schema is unchanged"), "{}", text(&second.stdout));
    assert_eq!(std::fs::read(&output).expect("read"), written, "second run must not rewrite");
    let written = String::from_utf8(written).expect("utf-8");
    assert!(written.starts_with(&format!("# Xledger GraphQL schema, fetched from {} on ", endpoint_of(&server))));
    assert!(fixture_queries().check(&written).is_ok());
    assert!(!written.contains(KEY));
    assert_no_key(&first);
    assert_no_key(&second);
}

#[tokio::test]
async fn run_refuses_a_schema_that_breaks_our_queries_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("xledger.graphql");
    let current = sdl_of(&fixture_json());
    std::fs::write(&output, &current).expect("seed");
    let mut breaking = fixture_json();
    remove_field(&mut breaking, "Timesheet", "workingHours");
    let server = server(200, breaking).await;

    let refused = run_xtask(&endpoint_of(&server), &output, &[]).await;
    let after_refusal = std::fs::read_to_string(&output).expect("read");
    let forced = run_xtask(&endpoint_of(&server), &output, &["--force"]).await;

    assert!(!refused.status.success());
    assert!(text(&refused.stdout).contains("removed  Timesheet.workingHours: String  (selected by our queries)"));
    assert!(text(&refused.stderr).contains("the new schema breaks our queries"), "{}", text(&refused.stderr));
    assert_eq!(after_refusal, current, "a refused schema must not be written");
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(text(&forced.stderr).contains("warning: --force"));
    assert!(!std::fs::read_to_string(&output).expect("read").contains("workingHours"));
    assert_no_key(&refused);
    assert_no_key(&forced);
}

#[tokio::test]
async fn run_dry_run_prints_the_diff_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("xledger.graphql");
    let mut older = fixture_json();
    remove_field(&mut older, "Project", "shortInfo");
    let current = sdl_of(&older);
    std::fs::write(&output, &current).expect("seed");
    let server = server(200, fixture_json()).await;

    let run = run_xtask(&endpoint_of(&server), &output, &["--dry-run"]).await;

    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(
        text(&run.stdout).contains("  projects\n    added    Project.shortInfo: String\n"),
        "{}",
        text(&run.stdout)
    );
    assert!(text(&run.stdout).contains("--dry-run"));
    assert_eq!(std::fs::read_to_string(&output).expect("read"), current);
}

#[tokio::test]
async fn run_refuses_an_errors_response_and_creates_no_file() {
    let body = json!({ "errors": [{ "message": format!("Bad format for API Token. Got {KEY}") }] });
    let server = server(200, body).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("xledger.graphql");

    let run = run_xtask(&endpoint_of(&server), &output, &[]).await;

    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("the API answered with errors (HTTP 200): Bad format for API Token. Got <redacted>")
    );
    assert!(!output.exists());
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "no temporary file left");
    assert_no_key(&run);
}

#[tokio::test]
async fn run_without_api_key_fails_with_one_clear_line() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-schema", "--dry-run"])
        .env_remove("XLEDGER_API_KEY")
        .output()
        .await
        .expect("run xtask");

    assert!(!run.status.success());
    assert_eq!(
        text(&run.stderr),
        "error: XLEDGER_API_KEY is not set: create an API key in Xledger and export it (it is never printed)\n"
    );
}

#[tokio::test]
async fn help_documents_the_command() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-schema", "--help"])
        .output()
        .await
        .expect("run xtask");

    let help = text(&run.stdout);
    assert!(run.status.success());
    for expected in [
        "--endpoint <URL>",
        "--output <FILE>",
        "--dry-run",
        "--force",
        "XLEDGER_API_KEY",
        "https://www.xledger.net/graphql",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}
