//! Adding an entity is adding a query file: the code generator the build runs (`xledger-codegen`)
//! turns the eight query files plus a fixture `accounts.graphql` into nine registry entries, the
//! ninth a full-only entity, with no hand-written Rust; and what it produces for the eight is what
//! the build compiled into this crate. Bad inputs give messages that name the problem.

use xledger_codegen as codegen;
use xledger_codegen::{AnalyzeError, ColumnKind, DbIdKind, JsonRepr, QueryFile};

fn schema() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/xledger.graphql")).unwrap()
}

fn hints() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/type-hints.toml")).unwrap()
}

fn eight_query_files() -> Vec<QueryFile> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/queries");
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

fn accounts_file() -> QueryFile {
    QueryFile {
        entity: "accounts".into(),
        text: std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/accounts.graphql")).unwrap(),
    }
}

#[test]
fn a_ninth_query_file_becomes_a_full_only_registry_entry() {
    let mut files = eight_query_files();
    files.push(accounts_file());
    let entities = codegen::analyze(&schema(), &files, &hints()).unwrap();
    assert_eq!(entities.len(), 9);
    let accounts = entities.iter().find(|e| e.name == "accounts").unwrap();
    assert_eq!(accounts.items_field, "accounts");
    assert_eq!(accounts.change_feed, None);
    assert_eq!(accounts.webhook, None);
    let names: Vec<_> = accounts.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["dbId", "code", "description", "accountGroup.description", "accountGroup.codeTranslated"]);
    assert_eq!(accounts.columns[0].kind, ColumnKind::Int64);
    assert_eq!(accounts.columns[0].json, JsonRepr::Number);

    let source = codegen::render_registry(&entities);
    assert!(source.contains("name: \"accounts\""));
    assert!(source.contains("change_feed: None"));
}

#[test]
fn the_accounts_file_add_entity_generates_is_a_ninth_full_only_entry() {
    let generated =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/fixtures/accounts.graphql")).unwrap();
    let mut files = eight_query_files();
    files.insert(0, QueryFile { entity: "accounts".into(), text: generated });
    let entities = codegen::analyze(&schema(), &files, &hints()).unwrap();
    assert_eq!(entities.len(), 9);
    assert_eq!(entities[0].name, "accounts");
    assert_eq!(entities[0].change_feed, None);
    assert_eq!(entities[0].db_id_kind, DbIdKind::Int);
    assert_eq!(entities[0].columns.len(), 8);
}

/// Field by field, so that a difference says which field of which entity.
#[test]
fn the_generator_reproduces_the_built_registry() {
    let entities = codegen::analyze(&schema(), &eight_query_files(), &hints()).unwrap();
    let built = xledger_model::entities();
    assert_eq!(entities.len(), built.len());
    for (generated, built) in entities.iter().zip(built) {
        let name = built.name;
        assert_eq!(generated.name, name);
        assert_eq!(generated.items_field, built.items_field, "{name}");
        assert_eq!(generated.node_type, built.node_type, "{name}");
        let db_id_kind = match generated.db_id_kind {
            DbIdKind::Int64String => xledger_model::DbIdKind::Int64String,
            DbIdKind::Int => xledger_model::DbIdKind::Int,
        };
        assert_eq!(db_id_kind, built.db_id_kind, "{name}");
        assert_eq!(generated.items_page.document, built.items_page.document, "{name}");
        assert_eq!(generated.fingerprint, built.fingerprint, "{name}");
        let feed = generated.change_feed.as_ref().map(|f| (f.field.as_str(), f.deltas.document.as_str()));
        assert_eq!(feed, built.change_feed.map(|f| (f.field, f.deltas.document)), "{name}");
        let by_ids = generated.change_feed.as_ref().map(|f| f.by_db_ids.document.as_str());
        assert_eq!(by_ids, built.change_feed.map(|f| f.by_db_ids.document), "{name}");
        let webhook = generated.webhook.as_ref().map(|w| (w.field.as_str(), w.subscription.document.as_str()));
        assert_eq!(webhook, built.webhook.map(|w| (w.field, w.subscription.document)), "{name}");
        let columns: Vec<_> = generated
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.nullable, c.hinted, c.graphql_type.as_str()))
            .collect();
        let built_columns: Vec<_> =
            built.columns.iter().map(|c| (c.name, c.nullable, c.hinted, c.graphql_type)).collect();
        assert_eq!(columns, built_columns, "{name}");
    }
}

#[test]
fn only_projects_declares_a_webhook_and_it_is_projects_mutated() {
    for e in xledger_model::entities() {
        let field = e.webhook.map(|w| w.field);
        let expected = if e.name == "projects" { Some("projectsMutated") } else { None };
        assert_eq!(field, expected, "{}", e.name);
    }
    let webhook = xledger_model::entity("projects").unwrap().webhook.unwrap();
    assert_eq!(webhook.subscription.name, "ProjectsMutated");
    assert!(
        webhook.subscription.document.starts_with("subscription ProjectsMutated {"),
        "{}",
        webhook.subscription.document
    );
}

/// What a delivery's body looks like (XL's sample reads `data.<field>.edges[*].syncVersion`), read
/// with the typed module the build generates for the subscription.
#[test]
fn the_webhooks_typed_module_reads_a_delivery() {
    use xledger_model::queries::projects::projects_mutated;

    let body = serde_json::json!({
        "data": { "projectsMutated": { "edges": [
            { "syncVersion": "0x00000000A1B2", "node": { "dbId": 7 } },
            { "syncVersion": "0x00000000A1B3", "node": { "dbId": 9 } }
        ] } }
    });
    let data: projects_mutated::ResponseData = serde_json::from_value(body["data"].clone()).unwrap();
    let edges = data.projects_mutated.unwrap().edges;
    let changed: Vec<_> = edges.iter().map(|e| (e.sync_version.as_deref(), e.node.db_id)).collect();
    assert_eq!(changed, [(Some("0x00000000A1B2"), 7), (Some("0x00000000A1B3"), 9)]);
    assert_eq!(
        projects_mutated::OPERATION_NAME,
        xledger_model::entity("projects").unwrap().webhook.unwrap().subscription.name
    );
}

#[test]
fn a_hint_for_a_missing_column_fails_with_its_name() {
    let bad = format!("{}\n[customers]\n\"company.vatNumber\" = \"utf8\"\n", hints().replace("[customers]\n", ""));
    let err = codegen::analyze(&schema(), &eight_query_files(), &bad).unwrap_err();
    assert!(matches!(err, AnalyzeError::TypeHints(_)), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("[customers] `company.vatNumber` names a column the query does not select"), "{err}");
    assert!(err.contains("schema/queries/customers.graphql: dbId, description"), "{err}");
}

#[test]
fn a_hint_for_an_unknown_entity_fails() {
    let bad = format!("{}\n[ledgers]\nfoo = \"date\"\n", hints());
    let err = codegen::analyze(&schema(), &eight_query_files(), &bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "schema/type-hints.toml: section [ledgers] names no entity (there is no schema/queries/ledgers.graphql)"
    );
}

#[test]
fn a_hint_that_cannot_read_the_json_type_fails() {
    let bad = hints().replace("[customers]\n", "[customers]\nnumber = \"date\"\n");
    let err = codegen::analyze(&schema(), &eight_query_files(), &bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "schema/type-hints.toml: [customers] `number`: cannot read a Date from the JSON Number the schema type `Int` sends"
    );
}

#[test]
fn an_unknown_field_names_file_operation_type_and_field() {
    let mut files = eight_query_files();
    assert_eq!(files[2].entity, "customers");
    files[2].text = files[2].text.replace("  email\n", "  emial\n");
    let err = codegen::analyze(&schema(), &files, &hints()).unwrap_err();
    assert_eq!(
        err,
        AnalyzeError::Query {
            entity: "customers".into(),
            operation: Some("CustomersPage".into()),
            message: "type `Customer` has no field `emial`".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "schema/queries/customers.graphql: operation CustomersPage: type `Customer` has no field `emial`"
    );
}

#[test]
fn a_db_id_in_of_the_wrong_element_type_fails() {
    let mut files = eight_query_files();
    let ts = files.iter_mut().find(|f| f.entity == "timesheets").unwrap();
    ts.text = ts.text.replace("[Int64String!]!", "[Int!]!");
    let err = codegen::analyze(&schema(), &files, &hints()).unwrap_err().to_string();
    assert_eq!(
        err,
        "schema/queries/timesheets.graphql: operation TimesheetsByDbIds: $dbIds is a list of `Int` but \
         `TimesheetFilter.dbId_in` takes `Int64String`"
    );
}

#[test]
fn by_db_ids_must_select_the_same_fields_as_the_items_page() {
    let accounts_with_mismatch = QueryFile {
        entity: "accounts".into(),
        text: format!(
            "{}\nquery AccountsByDbIds($dbIds: [Int!]!, $first: Int!, $after: String) {{ accounts(first: $first, after: $after, filter: {{ dbId_in: $dbIds }}) {{ edges {{ cursor node {{ dbId }} }} pageInfo {{ hasNextPage }} }} }}\n",
            accounts_file().text
        ),
    };
    let err = codegen::analyze(&schema(), &[accounts_with_mismatch], "").unwrap_err().to_string();
    assert!(err.starts_with("schema/queries/accounts.graphql: operation AccountsByDbIds: "), "{err}");
    assert!(err.contains("selects different node fields than the items page"), "{err}");
}
