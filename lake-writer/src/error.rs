//! The crate's typed errors: what failed and where (entity, dbId, column, value, file).

use std::fmt;

/// A node value that cannot become its column's lake value.
///
/// Every conversion failure names the entity, the row's `dbId` (when the node has a readable one),
/// the flattened column (or the object path, for a missing or mistyped object), the offending value
/// as it arrived (shortened to 200 characters) and the reason. A failing row fails its whole page:
/// rows are never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConvertError {
    /// The entity name, e.g. `timesheets`.
    pub entity: &'static str,
    /// The row's `dbId`, when it could be read.
    pub db_id: Option<i64>,
    /// The flattened column (`project.dbId`) or object path (`project`) that failed.
    pub column: String,
    /// The value as it arrived (JSON text of a string's content or a number), `""` when missing.
    pub value: String,
    pub reason: ConvertReason,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.entity)?;
        match self.db_id {
            Some(id) => write!(f, " dbId {id}")?,
            None => f.write_str(" (dbId unknown)")?,
        }
        write!(f, ", column `{}`, value {:?}: {}", self.column, self.value, self.reason)
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertReason {
    /// The field is absent from the node (the query selects it, so the response must carry it).
    #[error("field missing from the response")]
    Missing,
    /// The JSON type differs from the one the schema declares; values are never coerced.
    #[error("expected a JSON {expected}, got a JSON {found}")]
    WrongJsonType { expected: &'static str, found: &'static str },
    /// `null` where the schema declares a non-null field under a present parent.
    #[error("null in a non-null field")]
    UnexpectedNull,
    /// A decimal string that is not exact at the column's scale, or not a number.
    #[error("{0}")]
    Decimal(String),
    /// An integer that does not fit, or a non-integral number in an integer column.
    #[error("not a 64-bit integer")]
    NotAnInteger,
    /// A date or date-time that does not follow Xledger's format.
    #[error("{0}")]
    Time(String),
    /// A boolean or float sent as text that does not parse.
    #[error("not a valid {0}")]
    BadText(&'static str),
    /// The same field twice in one object.
    #[error("field appears twice in one object")]
    DuplicateField,
    /// The same `dbId` twice in one page: the lake holds one row per dbId per run.
    #[error("dbId appears twice in one page")]
    DuplicateDbId,
    /// The node is not well-formed JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
}

/// Everything the lake can fail with. Messages name the lake location (never a secret), the
/// entity and the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("invalid lake location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
    #[error("invalid entity name {0:?} (a lake folder name: letters, digits and `_`)")]
    InvalidEntityName(String),
    #[error("lake {lake}: {operation} {path}: {source}")]
    Store {
        lake: String,
        operation: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("lake {lake}: creating container {container}: {reason}")]
    CreateContainer { lake: String, container: String, reason: String },
    #[error("lake {lake}: {path}: Parquet: {source}")]
    Parquet {
        lake: String,
        path: String,
        #[source]
        source: Box<parquet::errors::ParquetError>,
    },
    #[error("lake {lake}: {path}: Arrow: {source}")]
    Arrow {
        lake: String,
        path: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("lake {lake}: {path} already exists; a new file never replaces a committed one")]
    AlreadyExists { lake: String, path: String },
    #[error("lake {lake}: manifest {path}: {reason}")]
    Manifest { lake: String, path: String, reason: String },
    #[error("lake {lake}: {path}: {reason}")]
    UnexpectedFile { lake: String, path: String, reason: String },
    #[error("lake {lake}: {path}: local file system: {source}")]
    Io {
        lake: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}
