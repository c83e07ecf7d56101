//! The analysis of the workspace's `schema/` (the files the build reads), the rendered registry
//! entry and webhook subscription of `projects` (snapshots), and the refusals of bad subscriptions.

use xledger_codegen::{AnalyzeError, Entity, QueryFile, analyze, render_registry};

fn read(relative: &str) -> String {
    let path = format!("{}/../schema/{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn schema() -> String {
    read("xledger.graphql")
}

fn hints() -> String {
    read("type-hints.toml")
}

fn query_files() -> Vec<QueryFile> {
    let dir = format!("{}/../schema/queries", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| QueryFile {
            entity: p.file_stem().unwrap().to_str().unwrap().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

fn projects_file() -> QueryFile {
    QueryFile { entity: "projects".into(), text: read("queries/projects.graphql") }
}

const SUBSCRIPTION: &str = "subscription ProjectsMutated {
  projectsMutated {
    edges {
      syncVersion
      node {
        dbId
      }
    }
  }
}
";

/// `projects.graphql` with its subscription replaced by `subscription`.
fn projects_with(subscription: &str) -> QueryFile {
    let file = projects_file();
    assert!(file.text.contains(SUBSCRIPTION), "projects.graphql no longer has the expected subscription");
    QueryFile { entity: file.entity, text: file.text.replace(SUBSCRIPTION, subscription) }
}

fn analyze_projects(file: QueryFile) -> Result<Entity, AnalyzeError> {
    analyze(&schema(), &[file], "").map(|mut entities| entities.remove(0))
}

fn refusal(subscription: &str) -> AnalyzeError {
    analyze_projects(projects_with(subscription)).expect_err("the subscription must be refused")
}

fn subscription_error(message: &str) -> AnalyzeError {
    AnalyzeError::Query {
        entity: "projects".into(),
        operation: Some("ProjectsMutated".into()),
        message: message.into(),
    }
}

#[test]
fn the_workspace_schema_and_queries_analyze_and_only_projects_has_a_webhook() {
    let entities = analyze(&schema(), &query_files(), &hints()).unwrap();
    assert_eq!(entities.len(), 8);
    for e in &entities {
        assert!(e.change_feed.is_some(), "{}", e.name);
        let field = e.webhook.as_ref().map(|w| w.field.as_str());
        assert_eq!(field, (e.name == "projects").then_some("projectsMutated"), "{}", e.name);
    }
}

#[test]
fn snapshot_the_projects_registry_entry() {
    let entities = analyze(&schema(), &query_files(), &hints()).unwrap();
    let projects: Vec<Entity> = entities.into_iter().filter(|e| e.name == "projects").collect();
    insta::assert_snapshot!("registry_entry_projects", render_registry(&projects));
}

#[test]
fn snapshot_the_projects_webhook_subscription_document() {
    let projects = analyze_projects(projects_file()).unwrap();
    let webhook = projects.webhook.unwrap();
    assert_eq!(webhook.field, "projectsMutated");
    assert_eq!(webhook.subscription.name, "ProjectsMutated");
    insta::assert_snapshot!("webhook_subscription_projects", webhook.subscription.document);
}

#[test]
fn a_subscription_may_use_the_files_fragments_and_its_document_carries_them() {
    let projects = analyze_projects(projects_with(
        "subscription ProjectsMutated { projectsMutated { edges { syncVersion node { ...ProjectFields } } } }\n",
    ))
    .unwrap();
    let document = projects.webhook.unwrap().subscription.document;
    assert!(document.starts_with("subscription ProjectsMutated {"), "{document}");
    assert!(document.contains("fragment ProjectFields on Project {"), "{document}");
}

#[test]
fn the_webhook_does_not_change_the_columns_or_the_fingerprint() {
    let with = analyze_projects(projects_file()).unwrap();
    let without = analyze_projects(projects_with("")).unwrap();
    assert_eq!(without.webhook, None);
    assert_eq!(with.columns, without.columns);
    assert_eq!(with.fingerprint, without.fingerprint);
}

#[test]
fn an_unknown_subscription_field_is_refused_with_type_and_field() {
    let err = refusal(&SUBSCRIPTION.replace("projectsMutated", "projectMutated"));
    assert_eq!(err, subscription_error("type `Subscription` has no field `projectMutated`"));
    assert_eq!(
        err.to_string(),
        "schema/queries/projects.graphql: operation ProjectsMutated: type `Subscription` has no field `projectMutated`"
    );
}

#[test]
fn an_unknown_node_field_in_a_subscription_is_refused() {
    let err = refusal(&SUBSCRIPTION.replace("        dbId\n", "        dbId\n        nmae\n"));
    assert_eq!(err, subscription_error("type `Project` has no field `nmae`"));
}

#[test]
fn a_scalar_with_a_selection_and_an_object_without_one_are_refused() {
    let err = refusal(&SUBSCRIPTION.replace("syncVersion\n", "syncVersion { code }\n"));
    assert_eq!(
        err,
        subscription_error("field `projectsMutated.edges.syncVersion` of scalar type `String` has a sub-selection")
    );
    let err = refusal(&SUBSCRIPTION.replace("        dbId\n", "        dbId\n        customer\n"));
    assert_eq!(
        err,
        subscription_error("field `projectsMutated.edges.node.customer` of object type `Customer` needs a selection")
    );
}

#[test]
fn an_argument_the_field_does_not_declare_is_refused() {
    let err = refusal(&SUBSCRIPTION.replace("  projectsMutated {", "  projectsMutated(first: 10) {"));
    assert_eq!(
        err,
        subscription_error("field `projectsMutated` (`Subscription.projectsMutated`) takes no argument `first`")
    );
}

#[test]
fn variables_and_an_aliased_root_are_refused() {
    let err = refusal(
        &SUBSCRIPTION.replace("subscription ProjectsMutated {", "subscription ProjectsMutated($since: String) {"),
    );
    assert_eq!(
        err,
        subscription_error(
            "a subscription is registered as a fixed document and cannot take variables ($since is declared)"
        )
    );
    let err = refusal(&SUBSCRIPTION.replace("  projectsMutated {", "  projects: projectsMutated {"));
    assert_eq!(
        err,
        subscription_error("the root field must not be aliased (a delivery is matched by its `data.<field>` key)")
    );
}

#[test]
fn sync_version_and_the_node_db_id_are_required() {
    let err = refusal(&SUBSCRIPTION.replace("      syncVersion\n", ""));
    assert_eq!(err, subscription_error("select `syncVersion` on `edges`"));
    let err = refusal(&SUBSCRIPTION.replace("        dbId\n", "        code\n"));
    assert_eq!(err, subscription_error("select `dbId` on `node` (a delivery must name the rows)"));
}

#[test]
fn a_subscription_delivering_another_entitys_nodes_is_refused() {
    let customers = query_files().into_iter().find(|f| f.entity == "customers").unwrap();
    let customers = QueryFile { text: format!("{}\n{SUBSCRIPTION}", customers.text), ..customers };
    let err = analyze(&schema(), &[customers], "").unwrap_err();
    assert_eq!(
        err,
        AnalyzeError::Query {
            entity: "customers".into(),
            operation: Some("ProjectsMutated".into()),
            message: "`projectsMutated` delivers `Project` nodes but the items page reads `Customer`".into(),
        }
    );
}

#[test]
fn a_second_subscription_is_refused() {
    let err = refusal(&format!("{SUBSCRIPTION}\n{}", SUBSCRIPTION.replace("ProjectsMutated {", "ProjectsAgain {")));
    assert_eq!(
        err,
        AnalyzeError::Query {
            entity: "projects".into(),
            operation: Some("ProjectsAgain".into()),
            message: "a second subscription operation (one per file)".into(),
        }
    );
}

#[test]
fn a_subscription_needs_a_change_feed() {
    let file = projects_file();
    let start = file.text.find("query ProjectDeltas").unwrap();
    let end = start + file.text[start..].find("\n}\n").unwrap() + 3;
    let full_only = QueryFile { text: format!("{}{}", &file.text[..start], &file.text[end..]), ..file };
    let err = analyze_projects(full_only).unwrap_err();
    assert_eq!(
        err,
        subscription_error(
            "a subscription only wakes an incremental pass, so the entity needs a change feed (a deltas and a by-dbIds operation)"
        )
    );
}

#[test]
fn a_schema_without_a_subscription_type_refuses_the_subscription() {
    let schema =
        schema().replace("  subscription: Subscription\n", "").replace("type Subscription {", "type Subscriptions {");
    let err = analyze(&schema, &[projects_file()], "").unwrap_err();
    let AnalyzeError::Query { operation, message, .. } = err else { panic!("{err:?}") };
    assert_eq!(operation.as_deref(), Some("ProjectsMutated"));
    assert!(message.starts_with("the schema has no subscription type"), "{message}");
}

#[test]
fn a_mutation_operation_is_refused() {
    let file = QueryFile {
        text: format!(
            "{}\nmutation Remove {{ removeWebhooks(dbIds: [\"1\"]) {{ numAffected }} }}\n",
            projects_file().text
        ),
        ..projects_file()
    };
    let err = analyze_projects(file).unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema/queries/projects.graphql: only named `query` operations and at most one named `subscription` are allowed"
    );
}

#[test]
fn schema_and_hint_errors_name_their_file() {
    let err = analyze("type Query {", &[projects_file()], "").unwrap_err();
    assert!(matches!(err, AnalyzeError::Schema(_)), "{err:?}");
    assert!(err.to_string().starts_with("schema/xledger.graphql does not parse: "), "{err}");

    let err = analyze(&schema(), &[projects_file()], "[projects]\ncode = \"decimal(2,3)\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema/type-hints.toml: [projects] `code`: decimal(2,3) is out of range (1 <= P <= 38, 0 <= S <= P)"
    );
    let err = analyze(&schema(), &[projects_file()], "[projects]\ncode = \"money\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema/type-hints.toml: [projects] `code`: unknown type `money` (decimal(P,S), date, timestamp, int64, float64, boolean, utf8)"
    );
}
