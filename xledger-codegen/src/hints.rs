//! `schema/type-hints.toml`: lake types for columns the schema types too loosely (money and dates
//! sent as `String`).

use std::collections::BTreeMap;

use crate::{Column, ColumnKind, JsonRepr};

/// Hints per entity, then per flattened column name.
pub(crate) type Hints = BTreeMap<String, BTreeMap<String, ColumnKind>>;

/// Errors read after "schema/type-hints.toml: ".
pub(crate) fn parse(text: &str) -> Result<Hints, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("does not parse: {e}"))?;
    let mut out = BTreeMap::new();
    for (entity, columns) in table {
        let columns = columns.as_table().ok_or_else(|| format!("`{entity}` must be a table [{entity}]"))?;
        let mut hints = BTreeMap::new();
        for (column, value) in columns {
            let value = value.as_str().ok_or_else(|| format!("[{entity}] `{column}` must be a string"))?;
            let kind = parse_kind(value).map_err(|e| format!("[{entity}] `{column}`: {e}"))?;
            hints.insert(column.clone(), kind);
        }
        out.insert(entity, hints);
    }
    Ok(out)
}

fn parse_kind(text: &str) -> Result<ColumnKind, String> {
    let t = text.trim();
    Ok(match t {
        "date" => ColumnKind::Date,
        "timestamp" => ColumnKind::Timestamp,
        "int64" => ColumnKind::Int64,
        "float64" => ColumnKind::Float64,
        "boolean" => ColumnKind::Boolean,
        "utf8" => ColumnKind::Utf8,
        _ => {
            let inner = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')).ok_or_else(|| {
                format!("unknown type `{t}` (decimal(P,S), date, timestamp, int64, float64, boolean, utf8)")
            })?;
            let (p, sc) = inner.split_once(',').ok_or_else(|| format!("`{t}`: expected decimal(P,S)"))?;
            let precision: u8 = p.trim().parse().map_err(|_| format!("`{t}`: precision is not a number"))?;
            let scale: i8 = sc.trim().parse().map_err(|_| format!("`{t}`: scale is not a number"))?;
            ColumnKind::Decimal { precision, scale }
        }
    })
}

/// Whether a hinted lake type can be read from the JSON value the column's schema type sends.
pub(crate) fn check(column: &Column, kind: ColumnKind) -> Result<(), String> {
    let ok = match (kind, column.json) {
        (ColumnKind::Decimal { precision, scale }, json) => {
            if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision {
                return Err(format!("decimal({precision},{scale}) is out of range (1 <= P <= 38, 0 <= S <= P)"));
            }
            json != JsonRepr::Boolean
        }
        (ColumnKind::Date | ColumnKind::Timestamp | ColumnKind::Utf8, json) => json == JsonRepr::String,
        (ColumnKind::Int64, json) => json != JsonRepr::Boolean,
        (ColumnKind::Float64, json) => json == JsonRepr::Number,
        (ColumnKind::Boolean, json) => json == JsonRepr::Boolean,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cannot read a {:?} from the JSON {:?} the schema type `{}` sends",
            kind, column.json, column.graphql_type
        ))
    }
}
