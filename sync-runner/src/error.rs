//! The one configuration error of the binary, for the CLI's settings and the handler's alike.

use std::path::PathBuf;
use std::time::Duration;

use crate::serve::{DEADLINE_MARGIN_VAR, PORT_VAR, SYNC_ENTITIES_VAR};

/// A setting, argument or file that cannot be used: one line on stderr and exit code 2 (or, under
/// `serve`, a handler that refuses to start). Every message names the setting or file at fault,
/// never a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag, environment variable or argument that cannot be used; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// `FUNCTIONS_CUSTOMHANDLER_PORT` is not set: the process was not started by the Functions host.
    #[error("{PORT_VAR} is not set: `serve` runs under the Azure Functions host, which sets it")]
    MissingPort,
    /// The port is not a number in 1..=65535.
    #[error("{PORT_VAR}={value:?} is not a TCP port")]
    InvalidPort {
        /// The value found.
        value: String,
    },
    /// `host.json` could not be read.
    #[error("reading {}: {source}", path.display())]
    HostJsonRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `host.json` is not valid JSON.
    #[error("parsing {}: {source}", path.display())]
    HostJsonParse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `functionTimeout` is not a TimeSpan (`hh:mm:ss`, `d.hh:mm:ss`) or `-1`.
    #[error("functionTimeout {value:?} in {origin} is not `hh:mm:ss`, `d.hh:mm:ss` or -1")]
    InvalidFunctionTimeout {
        /// `host.json` or the overriding app setting.
        origin: String,
        /// The value found.
        value: String,
    },
    /// The deadline margin is not a humantime duration.
    #[error("{DEADLINE_MARGIN_VAR}={value:?} is not a duration such as `2m` or `90s`")]
    InvalidDeadlineMargin {
        /// The value found.
        value: String,
    },
    /// The margin would leave a pass no time at all.
    #[error(
        "the deadline margin ({}) must be shorter than the function timeout ({})",
        humantime::format_duration(*margin),
        humantime::format_duration(*timeout)
    )]
    MarginNotBelowTimeout {
        /// The margin.
        margin: Duration,
        /// The function timeout.
        timeout: Duration,
    },
    /// `SYNC_ENTITIES` names an entity the model does not know.
    #[error("{SYNC_ENTITIES_VAR} names unknown entity {name:?}; known: {known}")]
    UnknownEntity {
        /// The unknown name.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// An app setting still holds a Key Vault reference: the platform could not resolve it
    /// (identity missing the Key Vault Secrets User role, wrong secret URI, vault firewall).
    #[error(
        "app setting {setting} is an unresolved Key Vault reference: check the app identity's \
         Key Vault Secrets User role and the secret URI (Portal: Function App > Environment variables)"
    )]
    UnresolvedKeyVaultReference {
        /// The setting's name (never its value).
        setting: String,
    },
}
