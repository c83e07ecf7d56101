//! The crate's typed errors: each names the entity, the table path and, where one is involved, the raw file.

use lake_writer::LakeError;

/// What went wrong while maintaining a current-state table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The tables location cannot be used.
    #[error("tables location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },

    /// Reading the raw files failed (listing, manifest, footer).
    #[error("{entity}: reading the raw files: {source}")]
    Lake {
        entity: String,
        #[source]
        source: Box<LakeError>,
    },

    /// A raw file could not be read or does not have the entity's table columns.
    #[error("{entity}: raw file {file}: {reason}")]
    RawFile { entity: String, file: String, reason: String },

    /// The folder at the table path holds something that is not this tool's table for this entity.
    #[error(
        "{entity}: {table} is not an xledger-sync table for this entity ({reason}); move it away or choose another tables location"
    )]
    ForeignTable { entity: String, table: String, reason: String },

    /// The table records raw files the lake no longer has (raw files deleted or replaced).
    #[error(
        "{entity}: table {table} is ahead of the raw files ({reason}); `xledger-sync tables rebuild --entity {entity}` rebuilds it from the raw files"
    )]
    AheadOfRawFiles { entity: String, table: String, reason: String },

    /// A raw file's columns do not fit the table in a way one Delta commit can express here: a full
    /// load that removes or retypes a column, or a change file with columns the table lacks.
    #[error(
        "{entity}: raw file {file} does not fit the schema of {table} ({reason}); `xledger-sync tables rebuild --entity {entity}` recreates the table"
    )]
    IncompatibleSchema { entity: String, table: String, file: String, reason: String },

    /// The Delta library failed.
    #[error("{entity}: table {table}: {operation}: {source}")]
    Delta {
        entity: String,
        table: String,
        operation: &'static str,
        #[source]
        source: Box<delta_kernel::KernelError>,
    },

    /// Object storage failed.
    #[error("{entity}: table {table}: {operation} {path}: {source}")]
    Store {
        entity: String,
        table: String,
        operation: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },

    /// Reading or writing a data file failed.
    #[error("{entity}: table {table}: {operation} {path}: {reason}")]
    DataFile { entity: String, table: String, operation: &'static str, path: String, reason: String },

    /// Other writers kept committing first.
    #[error("{entity}: table {table}: gave up after {attempts} commit conflicts with concurrent writers")]
    Contended { entity: String, table: String, attempts: u32 },
}

impl TableError {
    /// True for errors that mean the table folder must be mended by an operator (`tables rebuild`
    /// or moving a foreign folder away) rather than retried.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            TableError::ForeignTable { .. }
                | TableError::AheadOfRawFiles { .. }
                | TableError::IncompatibleSchema { .. }
        )
    }
}
