//! The one error type of this crate: every variant names what failed and where.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::LeaseHolder;

/// What went wrong reading or writing sync state. Messages name the entity, the key or the file, and
/// never contain a secret (connection strings, access keys and tokens are never formatted into them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A compare-and-swap write found a different version than the caller expected: someone else wrote
    /// the entity's state since the caller read it. Re-read and decide again.
    #[error("sync state of entity `{entity}` in {store} changed since it was read (expected {expected})")]
    Conflict {
        /// The entity whose state was written.
        entity: String,
        /// The store, as [`crate::StateStore::describe`] names it.
        store: String,
        /// What the caller expected: "no state" or a version.
        expected: String,
    },
    /// Another holder owns the entity's lease, it has not expired, and its holder is not known to be dead.
    #[error("entity `{entity}` is being synced by `{holder}` (lease expires at {expires_at})")]
    LeaseHeld {
        /// The entity whose lease was asked for.
        entity: String,
        /// Who holds the lease now.
        holder: Box<LeaseHolder>,
        /// When that lease lapses unless renewed.
        expires_at: DateTime<Utc>,
    },
    /// The caller's lease is gone: it expired and someone else took it, or it was removed.
    #[error("lease of `{holder}` on entity `{entity}` was lost (expired and taken over, or removed)")]
    LeaseLost {
        /// The entity whose lease was lost.
        entity: String,
        /// The holder that lost it.
        holder: Box<LeaseHolder>,
    },
    /// A record updated by read and compare-and-swap (a usage record) kept being changed by other writers.
    #[error("{location} kept changing: another writer won each of {attempts} compare-and-swap attempts")]
    Contended {
        /// The file entry or key of the record.
        location: String,
        /// The attempts made.
        attempts: u32,
    },
    /// A stored record was written by a newer xledger-sync (a higher `format_version`); it is left as is.
    #[error(
        "{location} was written by a newer xledger-sync (format_version {found}, this build reads up to \
         {supported}); upgrade xledger-sync — the state is left untouched"
    )]
    NewerFormat {
        /// The file or key holding the record.
        location: String,
        /// The format version found.
        found: u64,
        /// The highest format version this build understands.
        supported: u64,
    },
    /// A stored record cannot be read. It is never overwritten: fix or remove it by hand (or run
    /// `reset-state`, which deletes just that entity's key).
    #[error("{location} is corrupt and was left untouched: {detail}")]
    Corrupt {
        /// The file or key holding the record.
        location: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A file system operation of the file backend failed.
    #[error("state file: cannot {operation} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "lock", "rename into place", …).
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The store specification or an option is unusable (the message never repeats a secret).
    #[error("invalid state store configuration: {0}")]
    InvalidConfig(String),
    /// An entity name cannot be used as (part of) a key.
    #[error("invalid entity name `{entity}`: {why}")]
    InvalidEntity {
        /// The rejected name.
        entity: String,
        /// Why it was rejected.
        why: &'static str,
    },
    /// A lease duration does not fit a timestamp.
    #[error("invalid lease duration for entity `{entity}`: {why}")]
    InvalidLeaseDuration {
        /// The entity the lease was for.
        entity: String,
        /// Why the duration was rejected.
        why: String,
    },
    /// App Configuration answered with an unexpected status (after retries where they apply).
    #[error("App Configuration {operation} of key `{key}` failed with HTTP {status}: {body}")]
    Http {
        /// "get", "set", "delete" or "list".
        operation: &'static str,
        /// The key or key filter.
        key: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (the service's problem description).
        body: String,
    },
    /// App Configuration could not be reached (after retries).
    #[error("App Configuration {operation} of key `{key}` failed: {source}")]
    Transport {
        /// "get", "set", "delete" or "list".
        operation: &'static str,
        /// The key or key filter.
        key: String,
        /// The transport error (its URL holds no secret: authentication travels in headers).
        source: reqwest::Error,
    },
    /// No Entra ID token could be obtained.
    #[error("cannot get an Entra ID token for App Configuration: {0}")]
    Auth(String),
}
