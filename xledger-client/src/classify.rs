//! Turning an HTTP status and a (decompressed) body into the `data` object or an [`ErrorKind`].
//!
//! Xledger reports most failures as GraphQL `errors[]` entries, often with HTTP 200, so the body is
//! read whatever the status; the status decides only when the body says nothing usable.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ErrorKind;

/// A classified failure before context is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into() }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    errors: Option<Vec<ErrorEntry>>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    extensions: Option<Map<String, Value>>,
}

/// The message an authentication failure carries, pointing at what to fix.
pub(crate) const AUTH_HINT: &str = "check XLEDGER_API_KEY (the key must be valid and not expired; demo keys last two \
     weeks); it is sent as the header `Authorization: token <key>`";

/// Error classes in the order they win when one response carries several entries: an
/// authentication failure makes everything else moot, a never-retried class beats a retried one,
/// and any recognised class beats an unrecognised entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EntryClass {
    Authentication,
    Credits,
    CursorRejected,
    Validation,
    Burst,
    Concurrency,
    QueryTimeout,
    Other,
}

/// Reads a response. `Ok` is the `data` object of a response without errors.
pub(crate) fn classify_response(status: u16, body: &str) -> Result<&RawValue, Failure> {
    let auth_status = status == 401 || status == 403;
    let envelope: Envelope<'_> = match serde_json::from_str(body) {
        Ok(envelope) => envelope,
        Err(e) => {
            let excerpt = excerpt(body);
            return Err(if auth_status {
                Failure::new(ErrorKind::Authentication, format!("HTTP {status} ({excerpt}); {AUTH_HINT}"))
            } else if !(200..300).contains(&status) {
                Failure::new(ErrorKind::Http { status }, format!("body is not a GraphQL response: {excerpt}"))
            } else if e.is_eof() {
                Failure::new(ErrorKind::TruncatedResponse, format!("JSON ends early after {} bytes: {e}", body.len()))
            } else {
                Failure::new(ErrorKind::MalformedResponse, format!("invalid JSON ({e}) in {} bytes", body.len()))
            });
        }
    };
    let data = envelope.data.filter(|d| d.get() != "null");
    let errors = envelope.errors.unwrap_or_default();
    if errors.is_empty() {
        if auth_status {
            return Err(Failure::new(ErrorKind::Authentication, format!("HTTP {status}; {AUTH_HINT}")));
        }
        if !(200..300).contains(&status) {
            return Err(Failure::new(ErrorKind::Http { status }, format!("HTTP {status} with a GraphQL body")));
        }
        return data
            .ok_or_else(|| Failure::new(ErrorKind::MalformedResponse, "neither `data` nor `errors` in the response"));
    }
    Err(classify_errors(status, &errors, data.is_some()))
}

fn classify_errors(status: u16, errors: &[ErrorEntry], has_data: bool) -> Failure {
    let classes: Vec<(EntryClass, Option<DateTime<Utc>>)> = errors.iter().map(classify_entry).collect();
    let (mut class, reset_at) =
        classes.iter().min_by_key(|(class, _)| *class).copied().unwrap_or((EntryClass::Other, None));
    if (status == 401 || status == 403) && class != EntryClass::Authentication {
        class = EntryClass::Authentication;
    }
    let messages = errors.iter().map(describe_entry).collect::<Vec<_>>().join("; ");
    let kind = match class {
        EntryClass::Authentication => {
            return Failure::new(ErrorKind::Authentication, format!("{messages}; {AUTH_HINT}"));
        }
        EntryClass::Credits => ErrorKind::CreditsDeferred { reset_at },
        EntryClass::CursorRejected => ErrorKind::CursorRejected,
        EntryClass::Validation => ErrorKind::Validation,
        EntryClass::Burst => ErrorKind::BurstRateLimit,
        EntryClass::Concurrency => ErrorKind::ConcurrencyLimit,
        EntryClass::QueryTimeout => ErrorKind::QueryTimeout,
        EntryClass::Other if has_data => ErrorKind::PartialData,
        EntryClass::Other if status == 429 || (500..600).contains(&status) => ErrorKind::Http { status },
        EntryClass::Other => ErrorKind::GraphQl,
    };
    Failure::new(kind, messages)
}

fn entry_codes(entry: &ErrorEntry) -> impl Iterator<Item = &str> {
    let extension_code = entry.extensions.as_ref().and_then(|ext| ext.get("code")).and_then(Value::as_str);
    entry.code.as_deref().into_iter().chain(extension_code)
}

/// The part of a code after its namespace: `BAD_REQUEST.BURST_RATE_LIMIT_REACHED` → `BURST_RATE_LIMIT_REACHED`.
fn code_name(code: &str) -> &str {
    code.rsplit('.').next().unwrap_or(code)
}

const AUTH_CODES: &[&str] =
    &["UNAUTHENTICATED", "UNAUTHORIZED", "FORBIDDEN", "AUTHENTICATION_FAILED", "INVALID_TOKEN", "INVALID_API_TOKEN"];

/// GraphQL.NET names its validation errors after the rule; these are the rules a generated query
/// or its variables can break, plus parse errors.
const VALIDATION_CODES: &[&str] = &[
    "GRAPHQL_VALIDATION_FAILED",
    "GRAPHQL_PARSE_FAILED",
    "SYNTAX_ERROR",
    "INVALID_VALUE",
    "ARGUMENTS_OF_CORRECT_TYPE",
    "FIELDS_ON_CORRECT_TYPE",
    "KNOWN_ARGUMENT_NAMES",
    "KNOWN_TYPE_NAMES",
    "KNOWN_FRAGMENT_NAMES",
    "SCALAR_LEAFS",
    "NO_UNUSED_VARIABLES",
    "NO_UNDEFINED_VARIABLES",
    "NO_UNUSED_FRAGMENTS",
    "VARIABLES_ARE_INPUT_TYPES",
    "VARIABLES_IN_ALLOWED_POSITION",
    "PROVIDED_NON_NULL_ARGUMENTS",
    "UNIQUE_ARGUMENT_NAMES",
    "UNIQUE_OPERATION_NAMES",
    "UNIQUE_VARIABLE_NAMES",
    "OVERLAPPING_FIELDS_CAN_BE_MERGED",
    "LONE_ANONYMOUS_OPERATION",
];

fn classify_entry(entry: &ErrorEntry) -> (EntryClass, Option<DateTime<Utc>>) {
    for code in entry_codes(entry) {
        let name = code_name(code).to_ascii_uppercase();
        match name.as_str() {
            "BURST_RATE_LIMIT_REACHED" => return (EntryClass::Burst, None),
            "CONCURRENCY_LIMIT_REACHED" => return (EntryClass::Concurrency, None),
            "INSUFFICIENT_CREDITS" => return (EntryClass::Credits, reset_at(entry)),
            "INVALID_CURSOR" => return (EntryClass::CursorRejected, None),
            _ => {}
        }
        if AUTH_CODES.contains(&name.as_str()) {
            return (EntryClass::Authentication, None);
        }
    }
    let message = entry.message.as_deref().unwrap_or_default().to_ascii_lowercase();
    if message.contains("query timed out") {
        return (EntryClass::QueryTimeout, None);
    }
    if message.contains("cursor")
        && (message.contains("invalid") || message.contains("expired") || message.contains("not found"))
    {
        return (EntryClass::CursorRejected, None);
    }
    if message.contains("api token") || message.contains("unauthenticated") || message.contains("unauthorized") {
        return (EntryClass::Authentication, None);
    }
    for code in entry_codes(entry) {
        let upper = code.to_ascii_uppercase();
        if upper.starts_with("BAD_REQUEST") || VALIDATION_CODES.contains(&code_name(&upper)) {
            return (EntryClass::Validation, None);
        }
    }
    (EntryClass::Other, None)
}

/// `extensions.resetAt` as RFC 3339 (`Z` or an offset).
fn reset_at(entry: &ErrorEntry) -> Option<DateTime<Utc>> {
    let text = entry.extensions.as_ref()?.get("resetAt")?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn describe_entry(entry: &ErrorEntry) -> String {
    let message = entry.message.as_deref().unwrap_or("(no message)");
    let codes: Vec<&str> = entry_codes(entry).collect();
    match codes.first() {
        Some(code) => format!("{message} [{code}]"),
        None => message.to_string(),
    }
}

/// The first 200 characters of a body, for messages about bodies that are not GraphQL.
fn excerpt(body: &str) -> String {
    let mut out: String = body.chars().take(200).collect();
    if out.len() < body.len() {
        out.push('…');
    }
    if out.is_empty() { "empty body".to_string() } else { format!("body {out:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(status: u16, body: &str) -> ErrorKind {
        match classify_response(status, body) {
            Ok(data) => panic!("expected a failure, got data {}", data.get()),
            Err(failure) => failure.kind,
        }
    }

    #[test]
    fn data_without_errors_is_returned_raw() {
        let data = classify_response(200, r#"{"data":{"a":1}}"#).map(|d| d.get().to_string());
        assert_eq!(data, Ok(r#"{"a":1}"#.to_string()));
    }

    #[test]
    fn rate_limit_codes_are_read_at_top_level_and_in_extensions() {
        let top = r#"{"errors":[{"message":"slow down","code":"BAD_REQUEST.BURST_RATE_LIMIT_REACHED"}]}"#;
        let ext = r#"{"errors":[{"message":"x","extensions":{"code":"BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"}}]}"#;
        assert_eq!(kind_of(200, top), ErrorKind::BurstRateLimit);
        assert_eq!(kind_of(200, ext), ErrorKind::ConcurrencyLimit);
    }

    #[test]
    fn reset_at_accepts_z_and_offsets() {
        let z = r#"{"errors":[{"message":"m","code":"BAD_REQUEST.INSUFFICIENT_CREDITS","extensions":{"resetAt":"2026-11-28T12:00:00Z"}}]}"#;
        let offset = r#"{"errors":[{"message":"m","code":"BAD_REQUEST.INSUFFICIENT_CREDITS","extensions":{"resetAt":"2026-11-28T13:00:00+01:00"}}]}"#;
        let expected = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").map(|t| t.with_timezone(&Utc)).ok();
        assert_eq!(kind_of(200, z), ErrorKind::CreditsDeferred { reset_at: expected });
        assert_eq!(kind_of(200, offset), ErrorKind::CreditsDeferred { reset_at: expected });
    }

    #[test]
    fn cursor_rejection_by_code_or_message() {
        let code = r#"{"errors":[{"message":"no","extensions":{"code":"BAD_REQUEST.INVALID_CURSOR"}}]}"#;
        let message = r#"{"errors":[{"message":"The Cursor has EXPIRED"}]}"#;
        assert_eq!(kind_of(200, code), ErrorKind::CursorRejected);
        assert_eq!(kind_of(200, message), ErrorKind::CursorRejected);
    }

    #[test]
    fn never_retried_classes_win_over_retried_ones() {
        let body = r#"{"errors":[{"message":"a","code":"BAD_REQUEST.BURST_RATE_LIMIT_REACHED"},
                                 {"message":"b","extensions":{"code":"ARGUMENTS_OF_CORRECT_TYPE"}}]}"#;
        assert_eq!(kind_of(200, body), ErrorKind::Validation);
    }

    #[test]
    fn unknown_errors_with_data_are_partial_data_and_without_are_graphql_errors() {
        assert_eq!(kind_of(200, r#"{"data":{"a":1},"errors":[{"message":"boom"}]}"#), ErrorKind::PartialData);
        assert_eq!(kind_of(200, r#"{"data":null,"errors":[{"message":"boom"}]}"#), ErrorKind::GraphQl);
        assert_eq!(kind_of(502, r#"{"errors":[{"message":"boom"}]}"#), ErrorKind::Http { status: 502 });
    }

    #[test]
    fn status_decides_only_when_the_body_is_not_graphql() {
        assert_eq!(kind_of(503, "<html>down</html>"), ErrorKind::Http { status: 503 });
        assert_eq!(kind_of(401, "nope"), ErrorKind::Authentication);
        assert_eq!(kind_of(200, r#"{"data":{"a":"#), ErrorKind::TruncatedResponse);
        assert_eq!(kind_of(200, r#"{"data":{"a":1}}}"#), ErrorKind::MalformedResponse);
        assert_eq!(kind_of(200, r#"{}"#), ErrorKind::MalformedResponse);
    }

    #[test]
    fn xledger_bad_token_message_is_authentication() {
        let body = r#"{"errors":[{"message":"Bad format for API Token. Expected header: \"Authorization: token <your-token>\""}]}"#;
        assert_eq!(kind_of(200, body), ErrorKind::Authentication);
    }
}
