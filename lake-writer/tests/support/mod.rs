//! Shared by the integration tests and the benchmark: realistic Xledger nodes generated from an
//! entity's column plan (no per-entity code), and the test environment (Azurite, DuckDB).
#![allow(dead_code)]

use serde_json::{Map, Value, json};
use xledger_model::{ColumnKind, EntitySpec, JsonRepr};

/// A small deterministic generator (SplitMix64): the same seed gives the same nodes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How often generated nodes contain nulls.
#[derive(Clone, Copy)]
pub struct NullRates {
    /// Percent of nested objects that are `null` as a whole.
    pub object: u64,
    /// Percent of nullable leaves that are `null`.
    pub leaf: u64,
}

pub const SOME_NULLS: NullRates = NullRates { object: 5, leaf: 5 };
pub const NO_NULLS: NullRates = NullRates { object: 0, leaf: 0 };

/// Date-times that exercise the Central European rules: summer, winter, the spring-forward gap,
/// the fall-back overlap, the instants around them, and New Year.
pub const WALL_CLOCKS: &[&str] = &[
    "2024-07-11T21:17:09",
    "2024-01-15T08:00:00",
    "2024-03-31T01:59:59",
    "2024-03-31T02:30:00",
    "2024-03-31T03:00:00",
    "2024-10-27T01:59:59",
    "2024-10-27T02:00:00",
    "2024-10-27T02:30:00",
    "2024-10-27T03:00:00",
    "2023-12-31T23:59:59",
    "2025-06-30T12:34:56.789",
];

const WORDS: &[&str] =
    &["Ås", "Øvre", "Bjørn", "Consulting", "\"quoted\"", "back\\slash", "Zürich", "株式会社", "line\nbreak", "A/S", ""];

/// `count` nodes of `entity` with dbIds from `first_db_id`.
pub fn nodes(entity: &EntitySpec, first_db_id: i64, count: usize, seed: u64, nulls: NullRates) -> Vec<Value> {
    let mut rng = Rng::new(seed);
    (0..count).map(|i| node(entity, first_db_id + i as i64, &mut rng, nulls)).collect()
}

/// One node: nested objects rebuilt from the column paths.
pub fn node(entity: &EntitySpec, db_id: i64, rng: &mut Rng, nulls: NullRates) -> Value {
    // Decide first which nested objects are null as a whole (by path prefix), then fill leaves.
    let mut null_prefixes: Vec<String> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for column in entity.columns {
        for depth in 1..column.path.len() {
            let prefix = column.path[..depth].join(".");
            if !prefixes.contains(&prefix) {
                if rng.chance(nulls.object) {
                    null_prefixes.push(prefix.clone());
                }
                prefixes.push(prefix);
            }
        }
    }
    let mut root = Map::new();
    for column in entity.columns {
        let value = if column.name == "dbId" {
            match column.json {
                JsonRepr::String => json!(db_id.to_string()),
                _ => json!(db_id),
            }
        } else if column.nullable && rng.chance(nulls.leaf) {
            Value::Null
        } else {
            leaf(column.kind, column.json, rng)
        };
        insert(&mut root, column.path, value, &null_prefixes);
    }
    Value::Object(root)
}

fn insert(root: &mut Map<String, Value>, path: &[&str], value: Value, null_prefixes: &[String]) {
    let mut current = root;
    for depth in 0..path.len() - 1 {
        let key = path[depth];
        if null_prefixes.contains(&path[..=depth].join(".")) {
            current.insert(key.to_string(), Value::Null);
            return;
        }
        let entry = current.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(next) => current = next,
            _ => return,
        }
    }
    current.insert(path[path.len() - 1].to_string(), value);
}

fn leaf(kind: ColumnKind, json: JsonRepr, rng: &mut Rng) -> Value {
    match (kind, json) {
        (ColumnKind::Int64, JsonRepr::String) => json!((rng.below(1 << 40) as i64).to_string()),
        (ColumnKind::Int64, _) => json!(rng.below(10_000_000) as i64),
        (ColumnKind::Decimal { scale, .. }, _) => json!(decimal_text(rng, scale)),
        (ColumnKind::Date, _) => {
            let day = rng.below(28) + 1;
            let month = rng.below(12) + 1;
            let year = 2015 + rng.below(12);
            json!(format!("{year:04}-{month:02}-{day:02}"))
        }
        (ColumnKind::Timestamp, _) => {
            if rng.chance(30) {
                json!(WALL_CLOCKS[rng.below(WALL_CLOCKS.len() as u64) as usize])
            } else {
                let (month, day) = (rng.below(12) + 1, rng.below(28) + 1);
                let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
                json!(format!("2024-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}"))
            }
        }
        (ColumnKind::Float64, _) => json!((rng.below(1_000_000) as f64) / 100.0),
        (ColumnKind::Boolean, _) => json!(rng.chance(50)),
        (ColumnKind::Utf8, _) => {
            let a = WORDS[rng.below(WORDS.len() as u64) as usize];
            json!(format!("{a} {}", rng.below(100_000)))
        }
    }
}

/// A decimal string with 2–6 (at most `scale`) fractional digits, either sign, up to 12 integer digits.
pub fn decimal_text(rng: &mut Rng, scale: i8) -> String {
    let max_frac = (scale.max(0) as u64).min(6);
    let frac_digits = if max_frac < 2 { max_frac } else { 2 + rng.below(max_frac - 1) };
    let magnitude_shift = rng.below(30);
    let int_part = rng.below(1_000_000_000_000 >> magnitude_shift);
    let sign = if rng.chance(20) { "-" } else { "" };
    if frac_digits == 0 {
        return format!("{sign}{int_part}");
    }
    let frac = rng.below(10u64.pow(frac_digits as u32));
    format!("{sign}{int_part}.{frac:0width$}", width = frac_digits as usize)
}

/// Serializes nodes into their JSON texts, as the API sends them.
pub fn raw(nodes: &[Value]) -> Vec<String> {
    nodes.iter().map(Value::to_string).collect()
}

/// Azurite's blob endpoint from `cargo xtask test`, or a failure explaining how to get one.
pub fn azurite_endpoint() -> String {
    std::env::var("XLEDGER_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("XLEDGER_TEST_AZURITE is not set: run the Azurite tests with `cargo xtask test` (it installs and starts Azurite)")
    })
}

/// `(python, PYTHONPATH)` where `import duckdb` works, from `cargo xtask test`.
pub fn duckdb_python() -> (String, String) {
    let path = std::env::var("XLEDGER_TEST_PYTHONPATH").unwrap_or_else(|_| {
        panic!("XLEDGER_TEST_PYTHONPATH is not set: run the DuckDB tests with `cargo xtask test` (it installs DuckDB)")
    });
    let python = std::env::var("XLEDGER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    (python, path)
}
