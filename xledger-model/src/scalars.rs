//! Xledger's custom GraphQL scalars as Rust types (the generated query modules refer to these).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 64-bit integer that Xledger sends as a JSON string (`"123456789012"`), e.g. timesheet ids.
/// Deserializes from a string or a number; serializes as a string, as the API expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int64String(pub i64);

impl fmt::Display for Int64String {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i64> for Int64String {
    fn from(v: i64) -> Self {
        Int64String(v)
    }
}

impl Serialize for Int64String {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Int64String {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int64String;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer as a string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int64String, E> {
                v.parse().map(Int64String).map_err(|_| E::custom(format!("not a 64-bit integer: {v:?}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int64String, E> {
                Ok(Int64String(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int64String, E> {
                i64::try_from(v).map(Int64String).map_err(|_| E::custom(format!("{v} does not fit in 64 bits")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A local date-time `yyyy-MM-ddTHH:mm:ss` in Central European time, as Xledger sends it.
/// Kept as text in typed responses; [`crate::time::parse_xledger_datetime`] converts it to UTC.
pub type DateTimeString = String;
