//! The custom handler invocation protocol: what the Functions host POSTs to `/<functionName>`
//! and what it expects back.
//!
//! Request: `{"Data": {<binding>: <value>}, "Metadata": {...}}` with the header
//! `X-Azure-Functions-InvocationId`. A timer's `Data.timer` is the host's `TimerInfo`
//! (`{"Schedule": {...}, "ScheduleStatus": {...}, "IsPastDue": false}`), serialized as an object or,
//! by some host versions, as a JSON string; a timer fired by hand through the admin API may carry
//! an empty string. An HTTP trigger's `Data.req` is `{Url, Method, Query, Headers, Params, Body,
//! Identities}`: `Query` is an object (older hosts: a JSON string), header values are arrays of
//! strings (or plain strings), `Body` is the raw body text, and `Identities` are the .NET claims
//! identities the host authenticated (a key-authenticated caller has a `WebJobsAuthLevel`
//! identity whose `authlevel` claim is `Admin` for the master key).
//!
//! Response: `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`. An HTTP function's answer is
//! `Outputs.res = {statusCode, status, body, headers}` (the host requires all four). A non-2xx
//! invocation status fails the invocation and the host drops `Logs` and `Outputs`.

use serde::Serialize;
use serde_json::{Map, Value};

/// The header every host invocation carries.
pub(crate) const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";
/// The authentication type of the identity the host adds for key-based access.
const AUTH_LEVEL_IDENTITY: &str = "WebJobsAuthLevel";
/// The claim holding the authorization level the caller's key granted.
const AUTH_LEVEL_CLAIM: &str = "http://schemas.microsoft.com/2017/07/functions/claims/authlevel";
/// The level the master key grants.
const ADMIN_LEVEL: &str = "Admin";

/// A parsed invocation body.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// `Data`: one entry per input binding.
    pub data: Map<String, Value>,
}

/// Why an invocation body is not one the host would send.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the body has no `Data` object")]
    NoData,
    #[error("`Data.{binding}` is missing")]
    MissingBinding { binding: &'static str },
    #[error("`Data.{binding}` is not {expected}")]
    BadBinding { binding: &'static str, expected: &'static str },
}

impl Invocation {
    /// Parses the body of a host invocation.
    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        let value: Value = serde_json::from_slice(body).map_err(ProtocolError::NotJson)?;
        match value {
            Value::Object(mut top) => match top.remove("Data") {
                Some(Value::Object(data)) => Ok(Self { data }),
                _ => Err(ProtocolError::NoData),
            },
            _ => Err(ProtocolError::NoData),
        }
    }
}

/// The parts of the host's `TimerInfo` the handler uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimerInfo {
    /// The host missed the scheduled time (e.g. the app was down) and runs the occurrence late.
    pub is_past_due: bool,
    /// `ScheduleStatus.Last`, when the host tracks it (`useMonitor`).
    pub last: Option<String>,
    /// `ScheduleStatus.Next`.
    pub next: Option<String>,
    /// No `TimerInfo` at all: the timer was fired by hand through the admin API.
    pub manual: bool,
}

impl TimerInfo {
    /// Reads `Data.<binding>` as an object, a JSON string holding an object, or an empty
    /// string/null (a manual run).
    pub fn from_data(data: &Map<String, Value>, binding: &'static str) -> Result<Self, ProtocolError> {
        let bad = || ProtocolError::BadBinding { binding, expected: "a TimerInfo object or a JSON string of one" };
        let object = match data.get(binding) {
            None => return Err(ProtocolError::MissingBinding { binding }),
            Some(Value::Null) => return Ok(Self::manual()),
            Some(Value::String(text)) if text.trim().is_empty() => return Ok(Self::manual()),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => object,
                _ => return Err(bad()),
            },
            Some(Value::Object(object)) => object.clone(),
            Some(_) => return Err(bad()),
        };
        let status = get_ci(&object, "ScheduleStatus").and_then(Value::as_object);
        let text =
            |key: &str| status.and_then(|status| get_ci(status, key)).and_then(Value::as_str).map(str::to_string);
        Ok(Self {
            is_past_due: get_ci(&object, "IsPastDue").and_then(Value::as_bool).unwrap_or(false),
            last: text("Last"),
            next: text("Next"),
            manual: false,
        })
    }

    fn manual() -> Self {
        Self { is_past_due: false, last: None, next: None, manual: true }
    }
}

/// The parts of an HTTP trigger's `Data.req` the handler uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRequestData {
    /// `Method`, upper case.
    pub method: String,
    /// `Url` as the caller sent it (never logged with its query: it could carry a `code=` key).
    pub url: String,
    /// `Query`: name → value (repeated parameters arrive comma-joined).
    pub query: Map<String, Value>,
    /// `Params`: route parameters.
    pub params: Map<String, Value>,
    /// `Body` text, empty if none.
    pub body: String,
    /// Whether the host authenticated the caller with the master key.
    pub admin: bool,
}

impl HttpRequestData {
    /// Reads `Data.<binding>`.
    pub fn from_data(data: &Map<String, Value>, binding: &'static str) -> Result<Self, ProtocolError> {
        let bad = |expected| ProtocolError::BadBinding { binding, expected };
        let request = match data.get(binding) {
            None => return Err(ProtocolError::MissingBinding { binding }),
            Some(Value::Object(request)) => request,
            Some(_) => return Err(bad("an HTTP request object")),
        };
        let method =
            get_ci(request, "Method").and_then(Value::as_str).ok_or_else(|| bad("an HTTP request with a Method"))?;
        let url = get_ci(request, "Url").and_then(Value::as_str).unwrap_or_default();
        let query = match get_ci(request, "Query") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(query)) => query.clone(),
            // Older hosts send the query dictionary serialized as a JSON string.
            Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(query)) => query,
                _ => return Err(bad("an HTTP request whose Query is an object")),
            },
            Some(_) => return Err(bad("an HTTP request whose Query is an object")),
        };
        let params = match get_ci(request, "Params") {
            Some(Value::Object(params)) => params.clone(),
            _ => Map::new(),
        };
        let body = match get_ci(request, "Body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(body)) => body.clone(),
            // The host passes JSON bodies as text; anything else is not a body this API accepts.
            Some(_) => return Err(bad("an HTTP request with a text Body")),
        };
        let admin = get_ci(request, "Identities")
            .and_then(Value::as_array)
            .is_some_and(|identities| identities.iter().any(is_admin_identity));
        Ok(Self { method: method.to_ascii_uppercase(), url: url.to_string(), query, params, body, admin })
    }

    /// A query parameter or route parameter as text.
    pub fn param(&self, name: &str) -> Option<&str> {
        get_ci(&self.params, name)
            .or_else(|| get_ci(&self.query, name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// A query parameter as text.
    pub fn query(&self, name: &str) -> Option<&str> {
        get_ci(&self.query, name).and_then(Value::as_str).map(str::trim).filter(|value| !value.is_empty())
    }

    /// The body as a JSON object; an empty body is an empty object.
    pub fn json_body(&self) -> Result<Map<String, Value>, String> {
        if self.body.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str::<Value>(&self.body) {
            Ok(Value::Object(body)) => Ok(body),
            Ok(_) => Err("the body must be a JSON object".to_string()),
            Err(err) => Err(format!("the body is not JSON: {err}")),
        }
    }

    /// The URL without its query string (safe to log: keys may travel as `?code=`).
    pub fn url_without_query(&self) -> &str {
        self.url.split('?').next().unwrap_or_default()
    }
}

/// Whether one serialized .NET `ClaimsIdentity` is the host's key identity at admin level.
fn is_admin_identity(identity: &Value) -> bool {
    let Some(identity) = identity.as_object() else { return false };
    let auth_type = get_ci(identity, "AuthenticationType").and_then(Value::as_str);
    let claims = get_ci(identity, "Claims").and_then(Value::as_array);
    auth_type == Some(AUTH_LEVEL_IDENTITY)
        && claims.is_some_and(|claims| {
            claims.iter().filter_map(Value::as_object).any(|claim| {
                get_ci(claim, "Type").and_then(Value::as_str) == Some(AUTH_LEVEL_CLAIM)
                    && get_ci(claim, "Value").and_then(Value::as_str) == Some(ADMIN_LEVEL)
            })
        })
}

/// Case-insensitive key lookup: the host serializes with Newtonsoft, whose casing varies by
/// type and version (`Data.req.Url` but `Metadata.sys.UtcNow`).
pub(crate) fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| object.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, value)| value))
}

/// The handler's answer to an invocation (`{Outputs, Logs, ReturnValue}`).
#[derive(Debug, Serialize)]
pub(crate) struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvocationResponse {
    /// A timer's answer: no outputs, the summary as the return value.
    pub fn timer(logs: Vec<String>, return_value: Value) -> Self {
        Self { outputs: Map::new(), logs, return_value }
    }

    /// An HTTP function's answer: `Outputs.<binding>` with a JSON body.
    pub fn http(binding: &str, status: u16, body: &Value, logs: Vec<String>) -> Self {
        let mut outputs = Map::new();
        outputs.insert(
            binding.to_string(),
            serde_json::json!({
                "statusCode": status,
                "status": status,
                // A string body reaches the caller verbatim; the header says what it is.
                "body": body.to_string(),
                "headers": { "Content-Type": "application/json; charset=utf-8" },
            }),
        );
        Self { outputs, logs, return_value: serde_json::json!({ "statusCode": status }) }
    }
}
