//! Adding an entity is adding a query file: the same code generator the build runs turns the
//! eight query files plus a fixture `accounts.graphql` into nine registry entries, the ninth a
//! full-only entity, with no hand-written Rust. Bad inputs give messages that name the problem.

#[path = "../build/codegen.rs"]
mod codegen;

use codegen::{Json, Kind, QueryFile};

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
    let names: Vec<_> = accounts.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["dbId", "code", "description", "accountGroup.description", "accountGroup.codeTranslated"]);
    assert_eq!(accounts.columns[0].kind, Kind::Int64);
    assert_eq!(accounts.columns[0].json, Json::Number);

    let source = codegen::render_registry(&entities);
    assert!(source.contains("name: \"accounts\""));
    assert!(source.contains("change_feed: None"));
}

#[test]
fn the_generator_reproduces_the_built_registry() {
    let entities = codegen::analyze(&schema(), &eight_query_files(), &hints()).unwrap();
    for (generated, built) in entities.iter().zip(xledger_model::entities()) {
        assert_eq!(generated.name, built.name);
        assert_eq!(generated.fingerprint, built.fingerprint);
        assert_eq!(generated.columns.len(), built.columns.len());
    }
}

#[test]
fn a_hint_for_a_missing_column_fails_with_its_name() {
    let bad = format!("{}\n[customers]\n\"company.vatNumber\" = \"utf8\"\n", hints().replace("[customers]\n", ""));
    let err = codegen::analyze(&schema(), &eight_query_files(), &bad).unwrap_err();
    assert!(err.contains("[customers] `company.vatNumber` names a column the query does not select"), "{err}");
}

#[test]
fn a_hint_for_an_unknown_entity_fails() {
    let bad = format!("{}\n[ledgers]\nfoo = \"date\"\n", hints());
    let err = codegen::analyze(&schema(), &eight_query_files(), &bad).unwrap_err();
    assert!(err.contains("[ledgers] names no entity"), "{err}");
}

#[test]
fn a_hint_that_cannot_read_the_json_type_fails() {
    let bad = hints().replace("[customers]\n", "[customers]\nnumber = \"date\"\n");
    let err = codegen::analyze(&schema(), &eight_query_files(), &bad).unwrap_err();
    assert!(err.contains("`number`") && err.contains("cannot read a Date"), "{err}");
}

#[test]
fn an_unknown_field_names_type_and_field() {
    let mut files = eight_query_files();
    files[2].text = files[2].text.replace("  email\n", "  emial\n");
    let err = codegen::analyze(&schema(), &files, &hints()).unwrap_err();
    assert!(
        err.contains("schema/queries/customers.graphql") && err.contains("type `Customer` has no field `emial`"),
        "{err}"
    );
}

#[test]
fn a_db_id_in_of_the_wrong_element_type_fails() {
    let mut files = eight_query_files();
    let ts = files.iter_mut().find(|f| f.entity == "timesheets").unwrap();
    ts.text = ts.text.replace("[Int64String!]!", "[Int!]!");
    let err = codegen::analyze(&schema(), &files, &hints()).unwrap_err();
    assert!(err.contains("TimesheetFilter.dbId_in` takes `Int64String`"), "{err}");
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
    let err = codegen::analyze(&schema(), &[accounts_with_mismatch], "").unwrap_err();
    assert!(err.contains("selects different node fields than the items page"), "{err}");
}
