//! Every way a request can fail, classified so the engine can decide what to do, with the entity,
//! operation and page it happened at.

use std::fmt;

use chrono::{DateTime, Utc};

/// Where a request belongs: the entity (if any), the GraphQL operation and the page number
/// (1-based, within one pagination stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub entity: Option<String>,
    pub operation: String,
    pub page: Option<u64>,
}

impl RequestContext {
    /// A context for an operation that belongs to no single entity.
    pub fn operation(operation: impl Into<String>) -> Self {
        RequestContext { entity: None, operation: operation.into(), page: None }
    }

    /// A context for an entity's operation.
    pub fn entity(entity: impl Into<String>, operation: impl Into<String>) -> Self {
        RequestContext { entity: Some(entity.into()), operation: operation.into(), page: None }
    }

    /// The same context at page `page`.
    pub fn with_page(mut self, page: u64) -> Self {
        self.page = Some(page);
        self
    }
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(entity) = &self.entity {
            write!(f, "entity {entity}, ")?;
        }
        write!(f, "operation {}", self.operation)?;
        if let Some(page) = self.page {
            write!(f, ", page {page}")?;
        }
        Ok(())
    }
}

/// What went wrong. [`ErrorKind::is_retryable`] says whether the client retries it; a
/// [`ClientError`] reaching the caller has already been retried as far as the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `BAD_REQUEST.BURST_RATE_LIMIT_REACHED`: too many requests in a short window.
    BurstRateLimit,
    /// `BAD_REQUEST.CONCURRENCY_LIMIT_REACHED`: too many requests in flight.
    ConcurrencyLimit,
    /// `BAD_REQUEST.INSUFFICIENT_CREDITS` with `resetAt` further away than the policy's maximum
    /// wait (or missing): the run should stop cleanly and try again after `reset_at`.
    CreditsDeferred { reset_at: Option<DateTime<Utc>> },
    /// The server's "Your query timed out.".
    QueryTimeout,
    /// A query the server refuses to run (syntax, unknown field, wrong argument type, other
    /// `BAD_REQUEST.*` codes). Retrying cannot help.
    Validation,
    /// The API key was refused (HTTP 401/403 or an authentication error entry).
    Authentication,
    /// The change-feed cursor was refused as invalid or expired. An assumption of this project
    /// (Xledger does not document it): an error entry with code `BAD_REQUEST.INVALID_CURSOR`
    /// (top level or `extensions.code`), or a message containing "cursor" together with
    /// "invalid", "expired" or "not found" (any case). The engine answers with a full resync.
    CursorRejected,
    /// An HTTP status without a usable GraphQL answer; 429 and 5xx are retried.
    Http { status: u16 },
    /// The connection failed (connect, reset, TLS, interrupted body).
    Transport,
    /// No complete response within `request_timeout`.
    RequestTimeout,
    /// The body ended early (truncated JSON or gzip stream).
    TruncatedResponse,
    /// The body is not the JSON expected (syntax, shape, encoding).
    MalformedResponse,
    /// The body exceeded `max_response_bytes`.
    ResponseTooLarge,
    /// `data` came together with `errors`: treated as a failure, never as a partial success.
    PartialData,
    /// Error entries the client does not recognise (and no `data`).
    GraphQl,
    /// A page said `hasNextPage` but its last cursor is one already requested.
    CursorDidNotAdvance,
    /// A page said `hasNextPage` but had no edges.
    EmptyPageWithNextPage,
    /// A request or a retry wait would pass the configured deadline.
    DeadlineExceeded,
    /// `http://` to a host that is not loopback (or another scheme).
    InsecureEndpoint,
    /// A configuration value the client cannot work with.
    InvalidConfig,
    /// An argument out of range (page size, chunk size, an entity without the operation).
    InvalidArgument,
}

impl ErrorKind {
    /// True for failures that may succeed when the same request is sent again later.
    /// `CreditsDeferred` is false: the client already waited as long as it is allowed to.
    pub fn is_retryable(&self) -> bool {
        match self {
            ErrorKind::BurstRateLimit
            | ErrorKind::ConcurrencyLimit
            | ErrorKind::QueryTimeout
            | ErrorKind::Transport
            | ErrorKind::RequestTimeout
            | ErrorKind::TruncatedResponse => true,
            ErrorKind::Http { status } => *status == 429 || (500..600).contains(status),
            _ => false,
        }
    }

    /// A short stable label, used as the key of [`ClientStats::retries_by_reason`](crate::ClientStats)
    /// and in logs: `burst_rate_limit`, `http_503`, …
    pub fn reason(&self) -> String {
        let label = match self {
            ErrorKind::BurstRateLimit => "burst_rate_limit",
            ErrorKind::ConcurrencyLimit => "concurrency_limit",
            ErrorKind::CreditsDeferred { .. } => "insufficient_credits",
            ErrorKind::QueryTimeout => "query_timeout",
            ErrorKind::Validation => "validation",
            ErrorKind::Authentication => "authentication",
            ErrorKind::CursorRejected => "cursor_rejected",
            ErrorKind::Http { status } => return format!("http_{status}"),
            ErrorKind::Transport => "transport",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::TruncatedResponse => "truncated_response",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::PartialData => "partial_data",
            ErrorKind::GraphQl => "graphql_error",
            ErrorKind::CursorDidNotAdvance => "cursor_did_not_advance",
            ErrorKind::EmptyPageWithNextPage => "empty_page_with_next_page",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::InsecureEndpoint => "insecure_endpoint",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::InvalidArgument => "invalid_argument",
        };
        label.to_string()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::BurstRateLimit => f.write_str("burst rate limit reached"),
            ErrorKind::ConcurrencyLimit => f.write_str("concurrency limit reached"),
            ErrorKind::CreditsDeferred { reset_at: Some(at) } => {
                write!(f, "insufficient credits until {}", at.to_rfc3339())
            }
            ErrorKind::CreditsDeferred { reset_at: None } => f.write_str("insufficient credits (no resetAt given)"),
            ErrorKind::QueryTimeout => f.write_str("the server timed the query out"),
            ErrorKind::Validation => f.write_str("query refused by validation"),
            ErrorKind::Authentication => f.write_str("authentication failed"),
            ErrorKind::CursorRejected => f.write_str("cursor rejected"),
            ErrorKind::Http { status } => write!(f, "HTTP status {status}"),
            ErrorKind::Transport => f.write_str("transport error"),
            ErrorKind::RequestTimeout => f.write_str("request timed out"),
            ErrorKind::TruncatedResponse => f.write_str("truncated response"),
            ErrorKind::MalformedResponse => f.write_str("malformed response"),
            ErrorKind::ResponseTooLarge => f.write_str("response too large"),
            ErrorKind::PartialData => f.write_str("data returned together with errors"),
            ErrorKind::GraphQl => f.write_str("GraphQL error"),
            ErrorKind::CursorDidNotAdvance => f.write_str("cursor did not advance"),
            ErrorKind::EmptyPageWithNextPage => f.write_str("empty page claims a next page"),
            ErrorKind::DeadlineExceeded => f.write_str("deadline exceeded"),
            ErrorKind::InsecureEndpoint => f.write_str("insecure endpoint"),
            ErrorKind::InvalidConfig => f.write_str("invalid configuration"),
            ErrorKind::InvalidArgument => f.write_str("invalid argument"),
        }
    }
}

/// A failed client operation: its [`ErrorKind`], where it happened, a message (server text with
/// the API key scrubbed out) and how many requests were made.
///
/// ```
/// use xledger_client::{ClientError, ErrorKind, RequestContext};
///
/// let err = ClientError::new(
///     ErrorKind::CursorDidNotAdvance,
///     RequestContext::entity("timesheets", "TimesheetsPage").with_page(3),
///     "cursor \"42\" was already requested",
/// );
/// assert_eq!(
///     err.to_string(),
///     "entity timesheets, operation TimesheetsPage, page 3: cursor did not advance: cursor \"42\" was already requested"
/// );
/// assert!(!err.is_retryable());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {kind}: {message}{}", attempts_suffix(*.attempts))]
pub struct ClientError {
    kind: ErrorKind,
    context: RequestContext,
    message: String,
    attempts: u32,
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() }
}

impl ClientError {
    /// An error that made no request or exactly one.
    pub fn new(kind: ErrorKind, context: RequestContext, message: impl Into<String>) -> Self {
        ClientError { kind, context, message: message.into(), attempts: 1 }
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub fn context(&self) -> &RequestContext {
        &self.context
    }

    /// The detail (server messages are scrubbed of the API key).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Requests made for the operation before giving up (0 when none was sent).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// See [`ErrorKind::is_retryable`]: true when a later run may succeed where the retries failed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}
