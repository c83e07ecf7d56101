//! Handler configuration: the port the host assigned, the function timeout from `host.json`, the
//! deadline margin and the timer's entities, read once at startup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::error::ConfigError;

/// Environment variable the Functions host sets to the loopback port the handler must listen on.
pub const PORT_VAR: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// Environment variable the host sets to the app's root folder (where `host.json` lives).
pub const APP_ROOT_VAR: &str = "FUNCTIONS_APP_ROOT_PATH";
/// App setting that overrides `host.json`'s `functionTimeout`, exactly as the host itself applies it.
pub const FUNCTION_TIMEOUT_OVERRIDE_VAR: &str = "AzureFunctionsJobHost__functionTimeout";
/// App setting for the deadline margin (humantime, e.g. `2m`, `90s`).
pub const DEADLINE_MARGIN_VAR: &str = "XLEDGER_DEADLINE_MARGIN";
/// App setting naming the entities the sync timer runs, comma-separated; empty or unset = all.
pub const SYNC_ENTITIES_VAR: &str = "SYNC_ENTITIES";
/// Default margin between a pass's deadline and the function timeout: time to finish the page in
/// flight, commit its file and answer the host.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(120);
/// `functionTimeout` when `host.json` does not set it: the smallest plan default (Consumption,
/// 5 minutes), so a pass never outlives the host's patience on any plan.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// What a pass gets when `functionTimeout` is `-1` (unbounded): passes still need a deadline so
/// that progress is checkpointed and the next trigger is not skipped for hours.
pub const UNBOUNDED_FUNCTION_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The prefix of an App Service Key Vault reference. When the platform cannot resolve a
/// reference, the literal reference reaches the environment instead of the secret.
pub const KEY_VAULT_REFERENCE_PREFIX: &str = "@Microsoft.KeyVault(";

/// What `serve` needs to know, read once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Loopback port to listen on (`FUNCTIONS_CUSTOMHANDLER_PORT`).
    pub port: u16,
    /// The host's function timeout (`functionTimeout`); unbounded is mapped to
    /// [`UNBOUNDED_FUNCTION_TIMEOUT`].
    pub function_timeout: Duration,
    /// Taken off the function timeout to get a pass's deadline.
    pub deadline_margin: Duration,
    /// Entities the timer syncs; empty = all.
    pub timer_entities: Vec<String>,
}

impl ServeConfig {
    /// A configuration with the default margin and all entities on the timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sync_runner::serve::ServeConfig;
    ///
    /// let config = ServeConfig::new(7071, Duration::from_secs(30 * 60));
    /// assert_eq!(config.pass_budget(), Duration::from_secs(28 * 60));
    /// ```
    pub fn new(port: u16, function_timeout: Duration) -> Self {
        Self { port, function_timeout, deadline_margin: DEFAULT_DEADLINE_MARGIN, timer_entities: Vec::new() }
    }

    /// Reads the process environment and `host.json` (in `FUNCTIONS_APP_ROOT_PATH`, else the
    /// current directory), as the Functions host left them for the handler.
    pub fn from_env_and_host_json() -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::from_vars(&vars, &cwd)
    }

    /// [`ServeConfig::from_env_and_host_json`] over explicit variables, for tests and tools.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use std::time::Duration;
    /// use sync_runner::serve::ServeConfig;
    ///
    /// let root = tempfile::tempdir().unwrap();
    /// std::fs::write(root.path().join("host.json"), r#"{"functionTimeout": "00:30:00"}"#).unwrap();
    /// let vars = BTreeMap::from([("FUNCTIONS_CUSTOMHANDLER_PORT".to_string(), "40123".to_string())]);
    /// let config = ServeConfig::from_vars(&vars, root.path()).unwrap();
    /// assert_eq!((config.port, config.function_timeout), (40123, Duration::from_secs(1800)));
    /// ```
    pub fn from_vars(vars: &BTreeMap<String, String>, cwd: &Path) -> Result<Self, ConfigError> {
        if let Some((setting, _)) =
            vars.iter().find(|(_, value)| value.trim_start().starts_with(KEY_VAULT_REFERENCE_PREFIX))
        {
            return Err(ConfigError::UnresolvedKeyVaultReference { setting: setting.clone() });
        }
        let port_text = vars.get(PORT_VAR).ok_or(ConfigError::MissingPort)?;
        let port = match port_text.trim().parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(ConfigError::InvalidPort { value: port_text.clone() }),
        };

        let app_root = vars
            .get(APP_ROOT_VAR)
            .filter(|root| !root.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| cwd.to_path_buf());
        let function_timeout = match vars.get(FUNCTION_TIMEOUT_OVERRIDE_VAR).filter(|value| !value.trim().is_empty()) {
            Some(value) => parse_function_timeout(value).ok_or_else(|| ConfigError::InvalidFunctionTimeout {
                origin: FUNCTION_TIMEOUT_OVERRIDE_VAR.to_string(),
                value: value.clone(),
            })?,
            None => function_timeout_from_host_json(&app_root.join("host.json"))?,
        };

        let deadline_margin = match vars.get(DEADLINE_MARGIN_VAR).filter(|value| !value.trim().is_empty()) {
            Some(value) => humantime::parse_duration(value.trim())
                .map_err(|_| ConfigError::InvalidDeadlineMargin { value: value.clone() })?,
            None => DEFAULT_DEADLINE_MARGIN,
        };
        if deadline_margin >= function_timeout {
            return Err(ConfigError::MarginNotBelowTimeout { margin: deadline_margin, timeout: function_timeout });
        }

        let timer_entities = parse_entity_list(vars.get(SYNC_ENTITIES_VAR).map(String::as_str).unwrap_or(""))
            .map_err(|name| ConfigError::UnknownEntity { name, known: known_entities() })?;

        Ok(Self { port, function_timeout, deadline_margin, timer_entities })
    }

    /// How long a pass may run: the function timeout minus the margin (zero if the margin is larger).
    pub fn pass_budget(&self) -> Duration {
        self.function_timeout.saturating_sub(self.deadline_margin)
    }
}

/// Reads `functionTimeout` from a `host.json` file; absent means [`DEFAULT_FUNCTION_TIMEOUT`].
fn function_timeout_from_host_json(path: &Path) -> Result<Duration, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::HostJsonRead { path: path.to_path_buf(), source })?;
    let host: serde_json::Value = serde_json::from_str(&text)
        .map_err(|source| ConfigError::HostJsonParse { path: path.to_path_buf(), source })?;
    match host.get("functionTimeout") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_FUNCTION_TIMEOUT),
        Some(serde_json::Value::String(value)) => parse_function_timeout(value).ok_or_else(|| {
            ConfigError::InvalidFunctionTimeout { origin: path.display().to_string(), value: value.clone() }
        }),
        Some(other) => {
            Err(ConfigError::InvalidFunctionTimeout { origin: path.display().to_string(), value: other.to_string() })
        }
    }
}

/// Parses a `functionTimeout`: a .NET TimeSpan `[d.]hh:mm:ss[.fffffff]`, or `-1` for unbounded
/// (mapped to [`UNBOUNDED_FUNCTION_TIMEOUT`]). Zero is refused: a pass needs time.
///
/// ```
/// use std::time::Duration;
/// use sync_runner::serve::parse_function_timeout;
///
/// assert_eq!(parse_function_timeout("00:30:00"), Some(Duration::from_secs(1800)));
/// assert_eq!(parse_function_timeout("1.02:00:00"), Some(Duration::from_secs(26 * 3600)));
/// assert_eq!(parse_function_timeout("30 minutes"), None);
/// ```
pub fn parse_function_timeout(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "-1" {
        return Some(UNBOUNDED_FUNCTION_TIMEOUT);
    }
    let (days, clock) = match text.split_once('.') {
        // `d.hh:mm:ss`: a dot before the first colon separates days.
        Some((days, rest)) if !days.contains(':') => (days.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let mut fields = clock.split(':');
    let (hours, minutes, seconds) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let (seconds, fraction) = match seconds.split_once('.') {
        Some((whole, fraction))
            if !fraction.is_empty() && fraction.len() <= 7 && fraction.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (whole, format!("{fraction:0<9}").parse::<u32>().ok()?)
        }
        Some(_) => return None,
        None => (seconds, 0),
    };
    let number = |field: &str, below: u64| field.parse::<u64>().ok().filter(|value| field.len() == 2 && *value < below);
    let (hours, minutes, seconds) = (number(hours, 24)?, number(minutes, 60)?, number(seconds, 60)?);
    let total = Duration::new(((days * 24 + hours) * 60 + minutes) * 60 + seconds, fraction);
    (!total.is_zero()).then_some(total)
}

/// Splits a comma-separated entity list and checks every name against the model; `Err(name)`
/// names the first unknown one. Empty means all.
pub(crate) fn parse_entity_list(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        if xledger_model::entity(name).is_none() {
            return Err(name.to_string());
        }
        if !names.iter().any(|known: &String| known == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The model's entity names, comma-separated, for error messages.
pub(crate) fn known_entities() -> String {
    xledger_model::entities().iter().map(|spec| spec.name).collect::<Vec<_>>().join(", ")
}
