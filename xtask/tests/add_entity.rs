//! `cargo xtask add-entity`: the file it generates for `accounts` (snapshot, and the fixture
//! `schema/fixtures/accounts.graphql`), that generated files pass the build's analysis next to
//! the eight existing ones, the change-feed convention, proposed type hints, and the refusals.
//! Commands run against a copy of the workspace's `schema/` in a temporary folder.

use std::path::{Path, PathBuf};

use xledger_codegen::{ColumnKind, DbIdKind, QueryFile, analyze};
use xtask::add_entity::{AddEntityError, Args, ProposedHint, Skipped, check, generate, run_with};
use xtask::fetch_schema::OurQueries;

fn schema_dir() -> PathBuf {
    xtask::workspace_root().join("schema")
}

fn schema() -> String {
    std::fs::read_to_string(schema_dir().join("xledger.graphql")).unwrap()
}

fn our_queries() -> OurQueries {
    OurQueries::load(&schema_dir()).unwrap()
}

/// A copy of `schema/` (snapshot, queries, hints) to run the command in.
fn schema_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("queries")).unwrap();
    for name in ["xledger.graphql", "type-hints.toml"] {
        std::fs::copy(schema_dir().join(name), dir.path().join(name)).unwrap();
    }
    for entry in std::fs::read_dir(schema_dir().join("queries")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join("queries").join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn args(dir: &Path, name: &str) -> Args {
    Args { name: name.into(), deltas: None, force: false, dry_run: false, schema_dir: Some(dir.to_path_buf()) }
}

/// Runs the command; the error is the typed one when the command refused.
fn run(args: Args) -> (Result<(), AddEntityError>, String) {
    let mut out = Vec::new();
    let result = run_with(args, &mut out).map_err(|e| e.downcast::<AddEntityError>().expect("an AddEntityError"));
    (result, String::from_utf8(out).unwrap())
}

#[test]
fn snapshot_the_generated_accounts_file() {
    let accounts = generate(&schema(), "accounts", None).unwrap();
    assert_eq!(accounts.change_feed, None);
    assert_eq!(accounts.feed_unusable, None);
    assert_eq!(accounts.skipped, []);
    assert_eq!(accounts.proposed_hints, []);
    insta::assert_snapshot!("accounts_graphql", accounts.text);
}

#[test]
fn the_accounts_fixture_is_what_add_entity_generates() {
    let fixture = std::fs::read_to_string(schema_dir().join("fixtures/accounts.graphql")).unwrap();
    let generated = generate(&schema(), "accounts", None).unwrap();
    assert_eq!(
        fixture, generated.text,
        "regenerate: cargo xtask add-entity accounts --dry-run (everything above its last line)"
    );
}

#[test]
fn the_generated_accounts_file_passes_the_builds_analysis_with_the_eight_existing_files() {
    let generated = generate(&schema(), "accounts", None).unwrap();
    let entity = check(&schema(), &our_queries(), &generated).unwrap();
    assert_eq!(entity.items_field, "accounts");
    assert_eq!(entity.node_type, "Account");
    assert_eq!(entity.db_id_kind, DbIdKind::Int);
    assert_eq!(entity.change_feed, None);
    let columns: Vec<_> = entity.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        columns,
        [
            "dbId",
            "code",
            "description",
            "descriptionTranslated",
            "accountGroup.dbId",
            "accountGroup.description",
            "sysAccount.dbId",
            "sysAccount.description",
        ]
    );
    assert_eq!(entity.columns[0].kind, ColumnKind::Int64);
    assert!(!entity.columns[0].nullable);

    // The same, as the build sees it: nine files in name order.
    let mut files = our_queries().query_files().to_vec();
    assert_eq!(files.len(), 8);
    files.push(QueryFile { entity: "accounts".into(), text: generated.text });
    files.sort_by(|a, b| a.entity.cmp(&b.entity));
    let entities = analyze(&schema(), &files, our_queries().type_hints()).unwrap();
    assert_eq!(entities.len(), 9);
    assert_eq!(entities[0].name, "accounts");
    assert_eq!(entities[0], entity);
}

#[test]
fn an_entity_with_a_change_feed_by_convention_gets_a_deltas_page_and_passes_the_analysis() {
    let projects = generate(&schema(), "projects", None).unwrap();
    assert_eq!(projects.change_feed.as_deref(), Some("project_deltas"));
    assert!(
        projects.text.contains("query ProjectDeltas($first: Int, $last: Int, $after: String) {\n  project_deltas(")
    );
    assert!(projects.text.contains("query ProjectsByDbIds($dbIds: [Int!]!, $first: Int!, $after: String)"));
    let entity = check(&schema(), &our_queries(), &projects).unwrap();
    assert_eq!(entity.change_feed.map(|feed| feed.field).as_deref(), Some("project_deltas"));
    // The schema has `projectsMutated`: the report says so, the file does not declare it.
    assert_eq!(projects.subscription_field.as_deref(), Some("projectsMutated"));
    assert_eq!(entity.webhook, None);

    let timesheets = generate(&schema(), "timesheets", None).unwrap();
    assert_eq!(timesheets.change_feed.as_deref(), Some("timesheet_deltas"));
    assert!(timesheets.text.contains("$dbIds: [Int64String!]!"));
    check(&schema(), &our_queries(), &timesheets).unwrap();

    // `ArTransaction` → `arTransaction_deltas`.
    let ar = generate(&schema(), "arTransactions", None).unwrap();
    assert_eq!(ar.change_feed.as_deref(), Some("arTransaction_deltas"));
    assert!(ar.text.contains("query ArTransactionDeltas("));
}

#[test]
fn deltas_names_the_feed_with_or_without_its_suffix() {
    for feed in ["project", "project_deltas"] {
        let projects = generate(&schema(), "projects", Some(feed)).unwrap();
        assert_eq!(projects.change_feed.as_deref(), Some("project_deltas"), "{feed}");
    }
}

#[test]
fn string_fields_named_like_money_or_dates_get_proposed_hints() {
    let hint =
        |column: &str, kind: &'static str, reason: &'static str| ProposedHint { column: column.into(), kind, reason };
    let projects = generate(&schema(), "projects", None).unwrap();
    assert_eq!(
        projects.proposed_hints,
        [
            hint("totalRevenue", "decimal(28,6)", "named like money"),
            hint("totalCost", "decimal(28,6)", "named like money"),
        ]
    );
    let timesheets = generate(&schema(), "timesheets", None).unwrap();
    assert_eq!(
        timesheets.proposed_hints,
        [
            hint("assignmentDate", "date", "named like a date"),
            hint("workingHours", "decimal(18,6)", "named like hours"),
            hint("hourlyRevenueCurrency", "decimal(28,6)", "named like money"),
        ]
    );
}

/// On the columns both select, the proposals for a generated file are exactly the hints the
/// project wrote by hand for the existing query files.
#[test]
fn proposals_match_the_hand_written_hints_of_the_eight_entities() {
    let existing = analyze(&schema(), our_queries().query_files(), our_queries().type_hints()).unwrap();
    let mut compared = 0;
    for entity in &existing {
        let generated = generate(&schema(), &entity.items_field, None).unwrap();
        let selected_by_both = |column: &str| {
            entity.columns.iter().any(|c| c.name == column) && generated.text.contains(&format!("\n  {column}\n"))
        };
        let mut proposed: Vec<(String, String)> = generated
            .proposed_hints
            .iter()
            .filter(|h| selected_by_both(&h.column))
            .map(|h| (h.column.clone(), h.kind.to_string()))
            .collect();
        let mut hinted: Vec<(String, String)> = entity
            .columns
            .iter()
            .filter(|c| c.hinted && selected_by_both(&c.name))
            .map(|c| (c.name.clone(), hint_text(c.kind)))
            .collect();
        proposed.sort();
        hinted.sort();
        assert_eq!(proposed, hinted, "{}", entity.name);
        compared += hinted.len();
    }
    // timesheets 3, employees 2, transactions 2, arTransactions 6, apTransactions 6.
    assert_eq!(compared, 19);
}

fn hint_text(kind: ColumnKind) -> String {
    match kind {
        ColumnKind::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        ColumnKind::Date => "date".into(),
        ColumnKind::Timestamp => "timestamp".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[test]
fn lists_unions_argument_fields_and_objects_without_keys_are_left_out_and_listed() {
    let sdl = r#"
        type Query { things(first: Int, after: String, last: Int): ThingConnection }
        type ThingConnection { edges: [ThingEdge!]! pageInfo: PageInfo! }
        type ThingEdge { cursor: String! node: Thing! }
        type PageInfo { hasNextPage: Boolean! }
        enum Colour { RED GREEN }
        union Either = Owner | Tag
        type Thing {
          name: String
          dbId: Int!
          colour: Colour
          tags: [Tag!]
          either: Either
          translated(language: String!): String
          described(language: String): String
          owner: Owner
          tag: Tag
        }
        type Owner { description: String dbId: Int code: String extra: String }
        type Tag { label: String }
    "#;
    let things = generate(sdl, "things", None).unwrap();
    let fragment = things.text.split("fragment ThingFields on Thing {\n").nth(1).unwrap();
    assert_eq!(fragment, "  dbId\n  name\n  colour\n  described\n  owner { dbId code description }\n}\n");
    let skipped = |field: &str, reason: &'static str| Skipped { field: field.into(), reason };
    assert_eq!(
        things.skipped,
        [
            skipped("tags", "a list (lists cannot be flattened into columns)"),
            skipped("either", "a union or an unknown type"),
            skipped("translated", "needs arguments"),
            skipped("tag", "an object without dbId, code or description"),
        ]
    );
    // No filter with dbId_in: an items page only.
    assert!(!things.text.contains("ByDbIds"));
    assert!(things.text.contains("# Operations: an items page. No change feed"));
    let entity = analyze(sdl, &[QueryFile { entity: "things".into(), text: things.text }], "").unwrap().remove(0);
    assert_eq!(entity.columns.len(), 7);
}

#[test]
fn an_unknown_root_field_is_refused_with_the_nearest_names() {
    let err = generate(&schema(), "acounts", None).unwrap_err();
    let AddEntityError::UnknownRootField { name, nearest } = &err else { panic!("{err:?}") };
    assert_eq!(name, "acounts");
    assert_eq!(nearest[0], "accounts");
    assert_eq!(nearest.len(), 3);
    assert!(err.to_string().starts_with("the schema has no root field `acounts` (nearest: `accounts`, "), "{err}");

    let err = generate(&schema(), "Timesheet", None).unwrap_err();
    let AddEntityError::UnknownRootField { nearest, .. } = &err else { panic!("{err:?}") };
    assert_eq!(nearest[0], "timesheets");
}

#[test]
fn an_unknown_change_feed_is_refused_with_the_nearest_feeds() {
    let err = generate(&schema(), "projects", Some("projekt")).unwrap_err();
    let AddEntityError::UnknownChangeFeed { field, nearest } = &err else { panic!("{err:?}") };
    assert_eq!(field, "projekt_deltas");
    assert_eq!(nearest[0], "project_deltas");
    assert!(nearest.iter().all(|f| f.ends_with("_deltas")), "{nearest:?}");
}

#[test]
fn a_root_field_that_is_not_an_items_connection_is_refused() {
    let err = generate(&schema(), "webhook", None).unwrap_err();
    let AddEntityError::NotAConnection { field, reason } = &err else { panic!("{err:?}") };
    assert_eq!((field.as_str(), reason.as_str()), ("webhook", "it takes no `first` argument"));

    let err = generate(&schema(), "project_deltas", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`project_deltas` is not a paged connection: it is a change feed: name the entity's items field, and \
         `--deltas project` if need be"
    );
    let err = generate(&schema(), "../accounts", None).unwrap_err();
    assert!(matches!(err, AddEntityError::InvalidName { .. }), "{err:?}");
}

#[test]
fn a_feed_needs_a_db_id_in_filter() {
    let sdl = r#"
        type Query {
          things(first: Int, after: String): ThingConnection
          thing_deltas(first: Int, last: Int, after: String): ThingDeltaConnection
        }
        type ThingConnection { edges: [ThingEdge!]! pageInfo: PageInfo! }
        type ThingEdge { cursor: String! node: Thing! }
        type ThingDeltaConnection { edges: [ThingDeltaEdge!]! pageInfo: PageInfo! }
        type ThingDeltaEdge { cursor: String! node: ThingDelta! }
        type ThingDelta { dbId: Int! mutationType: String! }
        type PageInfo { hasNextPage: Boolean! }
        type Thing { dbId: Int! }
    "#;
    let err = generate(sdl, "things", Some("thing")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`thing_deltas` cannot be used: `things` has no `filter: { dbId_in }` argument to fetch the changed rows by"
    );
    // By convention the feed is found, reported as unusable, and the entity is full-only.
    let things = generate(sdl, "things", None).unwrap();
    assert_eq!(things.change_feed, None);
    assert_eq!(
        things.feed_unusable.as_deref(),
        Some("`thing_deltas` exists, but `things` has no `filter: { dbId_in }` argument")
    );
}

#[test]
fn the_command_writes_the_file_and_reports_columns_and_feed() {
    let dir = schema_copy();
    let (result, out) = run(args(dir.path(), "accounts"));
    result.unwrap();
    let written = std::fs::read_to_string(dir.path().join("queries/accounts.graphql")).unwrap();
    assert_eq!(written, generate(&schema(), "accounts", None).unwrap().text);
    assert!(
        out.starts_with(&format!("add-entity: wrote {}.\n", dir.path().join("queries/accounts.graphql").display()))
    );
    assert!(
        out.contains("  8 columns; full-only: the schema has no change feed for it (--deltas FEED names one).\n"),
        "{out}"
    );
    assert!(out.contains("no type hints to propose"), "{out}");
    // What the command wrote passes the analysis `fetch-schema` and the build run on the folder.
    OurQueries::load(dir.path()).unwrap().check(&schema()).unwrap();
}

#[test]
fn an_existing_file_is_kept_unless_force_and_proposed_hints_are_printed_not_applied() {
    let dir = schema_copy();
    let path = dir.path().join("queries/projects.graphql");
    let before = std::fs::read_to_string(&path).unwrap();
    let hints_before = std::fs::read_to_string(dir.path().join("type-hints.toml")).unwrap();

    let (result, _) = run(args(dir.path(), "projects"));
    let err = result.unwrap_err();
    assert!(matches!(&err, AddEntityError::Exists { path: p } if *p == path), "{err:?}");
    assert_eq!(err.to_string(), format!("{} exists; pass --force to replace it", path.display()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    let (result, out) = run(Args { force: true, ..args(dir.path(), "projects") });
    result.unwrap();
    assert_ne!(std::fs::read_to_string(&path).unwrap(), before);
    assert!(out.contains("change feed `project_deltas`"), "{out}");
    assert!(
        out.contains(
            "Proposed schema/type-hints.toml lines (NOT applied; keep the ones that are right):\n[projects]\n\
             totalRevenue = \"decimal(28,6)\"  # named like money\ntotalCost = \"decimal(28,6)\"  # named like money\n"
        ),
        "{out}"
    );
    assert!(out.contains("webhook subscription `projectsMutated`"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.path().join("type-hints.toml")).unwrap(), hints_before);
}

#[test]
fn a_file_that_does_not_pass_the_analysis_is_not_written() {
    let dir = schema_copy();
    let hints = dir.path().join("type-hints.toml");
    let mut text = std::fs::read_to_string(&hints).unwrap();
    text.push_str("\n[accounts]\nbalance = \"decimal(28,6)\"\n");
    std::fs::write(&hints, text).unwrap();

    let (result, _) = run(args(dir.path(), "accounts"));
    let err = result.unwrap_err();
    let AddEntityError::DoesNotValidate(analysis) = &err else { panic!("{err:?}") };
    assert!(
        analysis.to_string().contains("[accounts] `balance` names a column the query does not select"),
        "{analysis}"
    );
    assert!(!dir.path().join("queries/accounts.graphql").exists());
}

#[test]
fn dry_run_prints_the_file_and_writes_nothing() {
    let dir = schema_copy();
    let (result, out) = run(Args { dry_run: true, ..args(dir.path(), "accounts") });
    result.unwrap();
    assert!(out.starts_with(&generate(&schema(), "accounts", None).unwrap().text), "{out}");
    assert!(out.contains("--dry-run"), "{out}");
    assert!(!dir.path().join("queries/accounts.graphql").exists());
}
