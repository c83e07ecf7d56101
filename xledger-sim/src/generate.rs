//! Seeded, realistic node values generated from an entity's columns, rendered once to JSON bytes:
//! the simulator's rows, and [`generate_nodes`] for tests that need nodes without a server.
//!
//! Nothing here knows an entity by name: shapes come from the registry's [`ColumnSpec`]s (paths,
//! kinds, JSON types, nullability). Only three column names have a meaning: `dbId` (the row's
//! key), `createdAt` and `modifiedAt` (the row's timestamps, so `modifiedAt_gte` filters agree
//! with what the items query shows).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use xledger_model::time::utc_to_oslo_wall_clock;
use xledger_model::{ColumnKind, ColumnSpec, DbIdKind, EntitySpec, JsonRepr};

use crate::config::DataProfile;
use crate::rng::{SimRng, stable_hash};

/// How often generated nodes hold nulls: probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NullRates {
    /// A nested object is `null` as a whole (then every column under it is null).
    pub object: f64,
    /// A nullable leaf is `null` (never `dbId`, nor a leaf the schema declares non-null).
    pub leaf: f64,
}

impl NullRates {
    /// The simulator's own rates: 5 % of nested objects, 3 % of nullable leaves.
    pub const SIMULATOR: NullRates = NullRates { object: 0.05, leaf: 0.03 };
    /// No nulls at all.
    pub const NONE: NullRates = NullRates { object: 0.0, leaf: 0.0 };
}

impl Default for NullRates {
    fn default() -> Self {
        NullRates::SIMULATOR
    }
}

/// What [`generate_nodes`] makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeOptions {
    /// Every value is a function of the seed, the entity, the dbId and these options.
    pub seed: u64,
    pub profile: DataProfile,
    pub nulls: NullRates,
    /// The first node's dbId; the others follow one by one. `None`: the simulator's ids (for
    /// `Int64String` entities beyond 32 bits, every 997th beyond 2^53, which a float parser breaks).
    pub first_db_id: Option<i64>,
    /// `modifiedAt` lies 4 to 365 days before this instant and `createdAt` up to two years before
    /// that, as for the simulator's initial rows (its `start_time`).
    pub now: DateTime<Utc>,
}

impl Default for NodeOptions {
    /// Seed 1, stress data, the simulator's null rates and ids, `now` = 2024-10-20T10:00:00Z.
    fn default() -> Self {
        NodeOptions {
            seed: 1,
            profile: DataProfile::Stress,
            nulls: NullRates::SIMULATOR,
            first_db_id: None,
            now: DateTime::from_timestamp(1_729_418_400, 0).unwrap_or_default(),
        }
    }
}

/// `count` nodes of `entity` as compact JSON texts, in dbId order: exactly the rows a simulator
/// with the same seed, profile and `start_time` starts with (when `first_db_id` is `None` and the
/// null rates are the simulator's). Every column of the spec is present; nested objects are JSON
/// objects (or `null`), values have the column's JSON type, decimals fit the column's scale,
/// date-times are Central European wall clock (DST gap and overlap hours included), and the
/// stress profile adds non-ASCII, escapes, control characters and rare texts over 10 KB.
///
/// ```
/// use xledger_sim::{NodeOptions, NullRates, generate_nodes};
/// let timesheets = xledger_model::entity("timesheets").unwrap();
/// let options = NodeOptions { seed: 7, first_db_id: Some(1_000), nulls: NullRates::NONE, ..Default::default() };
/// let nodes = generate_nodes(timesheets, 3, &options);
/// let first: serde_json::Value = serde_json::from_str(&nodes[0]).unwrap();
/// assert_eq!(first["dbId"], "1000", "timesheet ids are Int64String: JSON strings");
/// assert_eq!(nodes, generate_nodes(timesheets, 3, &options), "deterministic");
/// ```
pub fn generate_nodes(entity: &'static EntitySpec, count: usize, options: &NodeOptions) -> Vec<String> {
    let tree = FieldTree::from_columns(entity.columns);
    let mut nodes: Vec<(i64, String)> = (0..count)
        .map(|index| {
            let db_id = match options.first_db_id {
                Some(first) => first.saturating_add(i64::try_from(index).unwrap_or(i64::MAX)),
                None => initial_db_id(entity.db_id_kind, index),
            };
            let (created, modified) = initial_times(options.seed, entity.name, db_id, options.now);
            let node = render_node(
                &tree,
                RowIdentity {
                    seed: options.seed,
                    entity: entity.name,
                    db_id,
                    version: 0,
                    created: utc_to_oslo_wall_clock(created),
                    modified: utc_to_oslo_wall_clock(modified),
                    data: options.profile,
                    nulls: options.nulls,
                },
            );
            (db_id, node)
        })
        .collect();
    // The simulator's ids beyond 2^53 are not in index order.
    nodes.sort_by_key(|(db_id, _)| *db_id);
    nodes.into_iter().map(|(_, node)| node).collect()
}

/// [`generate_nodes`] parsed into JSON values, for tests that edit nodes before using them.
pub fn generate_node_values(
    entity: &'static EntitySpec,
    count: usize,
    options: &NodeOptions,
) -> Vec<serde_json::Value> {
    // The texts are rendered by this module as JSON objects: parsing cannot fail.
    generate_nodes(entity, count, options).iter().map(|text| serde_json::from_str(text).unwrap_or_default()).collect()
}

/// An initial row's `createdAt` and `modifiedAt`: before the retention window, seeded per row.
pub(crate) fn initial_times(seed: u64, entity: &str, db_id: i64, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let mut times = SimRng::from_parts(&[seed, stable_hash(entity), db_id as u64, u64::MAX]);
    let modified = now - Duration::days(4) - Duration::seconds(times.between(0, 361 * 86_400));
    let created = modified - Duration::seconds(times.between(0, 730 * 86_400));
    (created, modified)
}

/// The first id beyond 2^53: a float parser turns it into 9007199254740992.
pub(crate) const BEYOND_F64_ID: i64 = 9_007_199_254_740_993;

/// The node's fields as a tree (a column `owner.dbId` is field `dbId` of object `owner`).
#[derive(Debug)]
pub(crate) struct FieldTree {
    pub(crate) fields: Vec<(&'static str, TreeNode)>,
}

#[derive(Debug)]
pub(crate) enum TreeNode {
    Leaf(&'static ColumnSpec),
    Object(FieldTree),
}

impl FieldTree {
    pub(crate) fn from_columns(columns: &'static [ColumnSpec]) -> FieldTree {
        let mut root = FieldTree { fields: Vec::new() };
        for column in columns {
            root.insert(column.path, column);
        }
        root
    }

    fn insert(&mut self, path: &'static [&'static str], column: &'static ColumnSpec) {
        let Some((&head, rest)) = path.split_first() else { return };
        if rest.is_empty() {
            if self.get(head).is_none() {
                self.fields.push((head, TreeNode::Leaf(column)));
            }
            return;
        }
        let position = match self.fields.iter().position(|(name, _)| *name == head) {
            Some(position) => position,
            None => {
                self.fields.push((head, TreeNode::Object(FieldTree { fields: Vec::new() })));
                self.fields.len() - 1
            }
        };
        if let Some((_, TreeNode::Object(child))) = self.fields.get_mut(position) {
            child.insert(rest, column);
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&TreeNode> {
        self.fields.iter().find(|(field, _)| *field == name).map(|(_, node)| node)
    }
}

/// What identifies one version of one row; every value is a function of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowIdentity<'a> {
    pub(crate) seed: u64,
    pub(crate) entity: &'a str,
    pub(crate) db_id: i64,
    pub(crate) version: u32,
    pub(crate) created: NaiveDateTime,
    pub(crate) modified: NaiveDateTime,
    pub(crate) data: DataProfile,
    pub(crate) nulls: NullRates,
}

/// How many records a top-level object field refers to in the ledger profile: 5 to 2 000, picked
/// by a stable hash of the field name (nothing here knows what a field means), the same on every
/// run. For transactions: `company` 5, `owner`, `account` and `glDimension` 500, `currency` and
/// `taxRule` 2 000; for timesheets: `project` 5, `employee` 100, `timeType` 500, `activity` 2 000.
fn referenced_records(field: &str) -> u64 {
    const SIZES: [u64; 5] = [5, 20, 100, 500, 2_000];
    SIZES[(stable_hash(field) % SIZES.len() as u64) as usize]
}

/// The `dbId` of the `index`-th initial row. Int ids stay inside GraphQL's 32-bit `Int`;
/// `Int64String` ids are beyond 32 bits, and every 997th is beyond 2^53 (a float parser corrupts it).
pub(crate) fn initial_db_id(kind: DbIdKind, index: usize) -> i64 {
    let index = i64::try_from(index).unwrap_or(i64::MAX / 4);
    match kind {
        DbIdKind::Int => 10_000 + 3 * index,
        DbIdKind::Int64String if index % 997 == 996 => BEYOND_F64_ID + 2 * index,
        DbIdKind::Int64String => 5_000_000_000 + 3 * index,
    }
}

/// The first id handed out by `add` after `initial_rows` generated rows.
pub(crate) fn first_added_db_id(kind: DbIdKind, initial_rows: usize) -> i64 {
    let n = i64::try_from(initial_rows).unwrap_or(i64::MAX / 4);
    match kind {
        DbIdKind::Int => 10_000 + 3 * n,
        DbIdKind::Int64String => 5_000_000_000 + 3 * n,
    }
}

/// Renders the full node (every registry column, in registry order) as compact JSON.
pub(crate) fn render_node(tree: &FieldTree, row: RowIdentity<'_>) -> String {
    let mut rng = SimRng::from_parts(&[row.seed, stable_hash(row.entity), row.db_id as u64, u64::from(row.version)]);
    let mut out = String::with_capacity(512);
    render_object(tree, &row, &mut rng, Depth::Top, &mut out);
    out
}

/// Where an object sits: the node itself, or a nested object that is drawn per row (stress) or
/// is one of a set of referenced records (ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    Top,
    PerRow,
    Referenced,
}

fn render_object(tree: &FieldTree, row: &RowIdentity<'_>, rng: &mut SimRng, depth: Depth, out: &mut String) {
    out.push('{');
    for (i, (name, node)) in tree.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(name, out);
        out.push(':');
        match node {
            TreeNode::Leaf(column) => render_leaf(column, row, rng, depth, out),
            // Nested objects are sometimes null: then all their flattened columns are null.
            TreeNode::Object(_) if rng.chance(row.nulls.object) => out.push_str("null"),
            TreeNode::Object(child) if depth == Depth::Top && row.data == DataProfile::Ledger => {
                // The row refers to record `k` of this field: its values are a function of `k`.
                let k = rng.below(referenced_records(name));
                let mut record = SimRng::from_parts(&[row.seed, stable_hash(row.entity), stable_hash(name), k]);
                render_object(child, row, &mut record, Depth::Referenced, out);
            }
            TreeNode::Object(child) if depth == Depth::Referenced => {
                render_object(child, row, rng, Depth::Referenced, out)
            }
            TreeNode::Object(child) => render_object(child, row, rng, Depth::PerRow, out),
        }
    }
    out.push('}');
}

fn render_leaf(column: &ColumnSpec, row: &RowIdentity<'_>, rng: &mut SimRng, depth: Depth, out: &mut String) {
    if depth == Depth::Top {
        match (column.name, column.kind) {
            ("dbId", _) => return push_integer(row.db_id, column.json, out),
            ("createdAt", ColumnKind::Timestamp) => return push_wall_clock(row.created, out),
            ("modifiedAt", ColumnKind::Timestamp) => return push_wall_clock(row.modified, out),
            _ => {}
        }
    }
    let nullable = column.nullable;
    if nullable && rng.chance(row.nulls.leaf) {
        out.push_str("null");
        return;
    }
    match column.kind {
        ColumnKind::Int64 => {
            let big_ids = column.json == JsonRepr::String && column.path.last() == Some(&"dbId");
            let value = if big_ids && rng.chance(0.1) {
                BEYOND_F64_ID + rng.between(0, 1000) * 2
            } else {
                rng.between(1, 999_999)
            };
            push_integer(value, column.json, out);
        }
        ColumnKind::Decimal { precision, scale } => {
            let text = decimal_text(rng, precision, scale);
            push_scalar_text(&text, column.json, out);
        }
        ColumnKind::Date => {
            let day = base_date() + Duration::days(rng.between(0, 4383));
            push_json_string(&day.format("%Y-%m-%d").to_string(), out);
        }
        ColumnKind::Timestamp => push_wall_clock(timestamp(rng), out),
        ColumnKind::Float64 => {
            // Two decimals: every such value survives any float parser unchanged.
            let value = rng.between(-1_000_000, 10_000_000) as f64 / 100.0;
            out.push_str(&serde_json::Value::from(value).to_string());
        }
        ColumnKind::Boolean => out.push_str(if rng.chance(0.5) { "true" } else { "false" }),
        // A referenced record's text is a code or a name: never a pasted 10 KB comment.
        ColumnKind::Utf8 => push_json_string(&text_value(rng, depth != Depth::Referenced), out),
    }
}

/// 2–6 fractional digits (never more than the scale), sometimes negative, mostly small amounts.
fn decimal_text(rng: &mut SimRng, precision: u8, scale: i8) -> String {
    let scale = u32::try_from(scale.max(0)).unwrap_or(0);
    let fraction_digits =
        if scale == 0 { 0 } else { rng.between(i64::from(scale.min(2)), i64::from(scale.min(6))) as u32 };
    let integer_digits_max = u32::from(precision).saturating_sub(scale).min(9);
    let integer_digits = if integer_digits_max == 0 { 0 } else { rng.between(1, i64::from(integer_digits_max)) as u32 };
    let integer = rng.below(10_u64.pow(integer_digits));
    let fraction = rng.below(10_u64.pow(fraction_digits));
    let sign = if rng.chance(0.25) { "-" } else { "" };
    if fraction_digits == 0 {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction:0width$}", width = fraction_digits as usize)
    }
}

fn base_date() -> NaiveDate {
    // Provably valid calendar date.
    NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or_default()
}

/// A Central European wall-clock time; one in ten falls inside a DST transition hour (the March
/// gap, which does not exist, or the October overlap, which happens twice).
fn timestamp(rng: &mut SimRng) -> NaiveDateTime {
    let seconds_into_hour = rng.between(0, 3599);
    if rng.chance(0.1) {
        let year = i32::try_from(rng.between(2016, 2026)).unwrap_or(2024);
        let month = if rng.chance(0.5) { 3 } else { 10 };
        let day = last_sunday(year, month);
        return day.and_hms_opt(2, 0, 0).unwrap_or_default() + Duration::seconds(seconds_into_hour);
    }
    let day = base_date() + Duration::days(rng.between(365, 4383));
    day.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::seconds(rng.between(0, 86_399))
}

/// The last Sunday of a month: the EU's DST switch day (March and October).
pub(crate) fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_of_next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) }
            .unwrap_or_default();
    let mut day = first_of_next - Duration::days(1);
    while day.weekday() != Weekday::Sun {
        day -= Duration::days(1);
    }
    day
}

const PLAIN_WORDS: &[&str] = &[
    "Consulting",
    "Support",
    "Development",
    "Travel",
    "Meeting",
    "Design",
    "Audit",
    "Training",
    "Oslo",
    "Bergen",
    "Maintenance",
    "Licence",
    "Hardware",
    "Project",
    "Invoice",
    "Sales",
];

const NON_ASCII: &[&str] = &[
    "Bjørn Ødegård",
    "Ærlig Åsen AS",
    "Smørbrød & Søn",
    "Zürich Straße 5",
    "Łódź Sp. z o.o.",
    "🚀 Rakett AS 🎉",
    "東京支社",
    "北京办事处 — 財務",
    "Café Crème",
    "Ελληνικά Ltd",
    "Überstunden ✓",
];

const TRICKY: &[&str] = &[
    "He said \"hello\"",
    "C:\\path\\to\\file.txt",
    "line one\nline two",
    "tab\tseparated\tvalue",
    "</script><script>alert(1)</script>",
    "'single' and \"double\" \\ both",
    "trailing space ",
    "",
    "control \u{1} char",
    "CRLF\r\nline",
];

fn text_value(rng: &mut SimRng, may_be_long: bool) -> String {
    let roll = rng.unit();
    if roll < 0.0005 && may_be_long {
        // Very long (> 10 KB) text, e.g. a pasted comment.
        let unit = "Lørem ipsum dolor sit amet, 😀 東京 \"quoted\" \\ ";
        return unit.repeat(12_000 / unit.len() + 1);
    }
    if roll < 0.15 {
        return rng.pick(NON_ASCII).copied().unwrap_or_default().to_owned();
    }
    if roll < 0.22 {
        return rng.pick(TRICKY).copied().unwrap_or_default().to_owned();
    }
    let word = rng.pick(PLAIN_WORDS).copied().unwrap_or_default();
    format!("{word} {}", rng.between(1, 9999))
}

pub(crate) fn push_integer(value: i64, json: JsonRepr, out: &mut String) {
    push_scalar_text(&value.to_string(), json, out);
}

/// A number-like text as the column's JSON type: a string, or a bare number.
fn push_scalar_text(text: &str, json: JsonRepr, out: &mut String) {
    match json {
        JsonRepr::String => {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        JsonRepr::Number | JsonRepr::Boolean => out.push_str(text),
    }
}

pub(crate) fn push_wall_clock(value: NaiveDateTime, out: &mut String) {
    push_json_string(&value.format("%Y-%m-%dT%H:%M:%S").to_string(), out);
}

/// Appends `text` as a JSON string literal (serde_json's escaping, so every path agrees).
pub(crate) fn push_json_string(text: &str, out: &mut String) {
    // Hot path (keys, cursors): nothing to escape, so no allocation.
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        out.push('"');
        out.push_str(text);
        out.push('"');
        return;
    }
    // Serialising a &str into a String cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_have_two_to_six_fraction_digits_within_scale() {
        let mut rng = SimRng::new(1);
        for _ in 0..2000 {
            let text = decimal_text(&mut rng, 28, 6);
            let digits = text.split('.').nth(1).map_or(0, str::len);
            assert!((2..=6).contains(&digits), "{text}");
            assert!(xledger_model::decimal::parse_decimal(&text, 28, 6).is_ok(), "{text}");
            let narrow = decimal_text(&mut rng, 10, 2);
            assert_eq!(narrow.split('.').nth(1).map(str::len), Some(2), "{narrow}");
        }
    }

    #[test]
    fn referenced_record_counts_are_the_documented_ones() {
        let counts = [
            "company",
            "owner",
            "account",
            "glDimension",
            "currency",
            "taxRule",
            "project",
            "employee",
            "timeType",
            "activity",
        ]
        .map(referenced_records);
        assert_eq!(counts, [5, 500, 500, 500, 2_000, 2_000, 5, 100, 500, 2_000]);
    }

    #[test]
    fn last_sunday_matches_known_dst_switch_days() {
        assert_eq!(last_sunday(2024, 3), NaiveDate::from_ymd_opt(2024, 3, 31).unwrap());
        assert_eq!(last_sunday(2024, 10), NaiveDate::from_ymd_opt(2024, 10, 27).unwrap());
    }

    #[test]
    fn timestamps_include_gap_and_overlap_hours() {
        let mut rng = SimRng::new(3);
        let samples: Vec<NaiveDateTime> = (0..2000).map(|_| timestamp(&mut rng)).collect();
        let in_transition = |month: u32| {
            samples.iter().any(|t| {
                t.month() == month && t.date() == last_sunday(t.year(), month) && t.format("%H").to_string() == "02"
            })
        };
        assert!(in_transition(3), "no time inside the March gap hour");
        assert!(in_transition(10), "no time inside the October overlap hour");
    }
}
