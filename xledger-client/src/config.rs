//! Client configuration: the endpoint, the API key (a redacting secret), timeouts, limits and the
//! retry policy.

use std::fmt;
use std::time::Duration;

use url::{Host, Url};

/// Xledger's hard limit on `first` for one connection page.
pub const XLEDGER_MAX_PAGE_SIZE: usize = 10_000;

/// An Xledger API key. Its `Debug` and `Display` print `ApiKey(***)`, so it can sit inside
/// configuration structs that are logged; the client marks the header that carries it sensitive
/// and scrubs it from every error message it builds from server or transport text.
///
/// Reading the key from `XLEDGER_API_KEY` is the caller's job.
///
/// ```
/// use xledger_client::ApiKey;
///
/// let key = ApiKey::new("s3cr3t-token".to_string());
/// assert_eq!(format!("{key:?}"), "ApiKey(***)");
/// assert_eq!(key.to_string(), "ApiKey(***)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key. Surrounding whitespace (a trailing newline from a secret file or a vault) is
    /// removed; nothing else is changed.
    pub fn new(key: String) -> Self {
        let trimmed = key.trim();
        if trimmed.len() == key.len() { ApiKey(key) } else { ApiKey(trimmed.to_string()) }
    }

    /// The key itself, for the `Authorization` header and for scrubbing it from messages.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the key in `text` with `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() || !text.contains(self.0.as_str()) {
            text.to_string()
        } else {
            text.replace(self.0.as_str(), "***")
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// How failed requests are retried. Every wait uses `tokio::time`, so tests with a paused clock
/// do not really sleep.
///
/// - Burst and concurrency limits wait [`burst_wait`](Self::burst_wait) /
///   [`concurrency_wait`](Self::concurrency_wait) plus up to 20 % jitter.
/// - Insufficient credits wait until the server's `resetAt` when that is at most
///   [`max_credit_wait`](Self::max_credit_wait) away; otherwise the request fails with
///   [`ErrorKind::CreditsDeferred`](crate::ErrorKind::CreditsDeferred) so the engine can stop cleanly.
/// - Transient failures (transport, client-side timeout, truncated body, HTTP 429/5xx, "Your query
///   timed out.") back off exponentially from [`base_backoff`](Self::base_backoff), capped at
///   [`max_backoff`](Self::max_backoff), with jitter (half fixed, half random).
/// - At most [`max_attempts`](Self::max_attempts) requests are made for one operation, counting the
///   first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests per operation, the first included; at least 1.
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Wait after `BAD_REQUEST.BURST_RATE_LIMIT_REACHED` (Xledger's sample waits 5 s).
    pub burst_wait: Duration,
    /// Wait after `BAD_REQUEST.CONCURRENCY_LIMIT_REACHED` (Xledger's sample waits 1 s).
    pub concurrency_wait: Duration,
    /// Wait for `resetAt` after `BAD_REQUEST.INSUFFICIENT_CREDITS` only when it is this close.
    pub max_credit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            burst_wait: Duration::from_secs(5),
            concurrency_wait: Duration::from_secs(1),
            max_credit_wait: Duration::from_secs(15 * 60),
        }
    }
}

/// Everything [`XledgerClient::new`](crate::XledgerClient::new) needs.
///
/// ```
/// use std::time::Duration;
/// use xledger_client::{ApiKey, ClientConfig};
///
/// let endpoint = "https://demo.xledger.net/graphql".parse().expect("a valid URL");
/// let mut config = ClientConfig::new(endpoint, ApiKey::new("key".to_string()));
/// config.max_in_flight = 2;
/// config.retry.max_attempts = 5;
/// assert_eq!(config.request_timeout, Duration::from_secs(60));
/// assert!(!format!("{config:?}").contains("\"key\""));
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The GraphQL endpoint. `https://`, or `http://` on a loopback host only.
    pub endpoint: Url,
    pub api_key: ApiKey,
    /// Limit for one request, from sending to the last body byte (default 60 s).
    /// `Duration::ZERO` disables it: tests with tokio's paused clock need that, because a paused
    /// runtime waiting on a socket advances the clock straight to the next timer.
    pub request_timeout: Duration,
    /// Limit for opening a connection (default 30 s); `Duration::ZERO` disables it.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this (default 90 s); `None` keeps them until the
    /// server closes them (paused-clock tests need `None`, see `request_timeout`).
    pub pool_idle_timeout: Option<Duration>,
    /// Requests in flight at once across every clone of the client (default 4).
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
    /// The run's deadline: a request or retry wait that would pass it fails with
    /// [`ErrorKind::DeadlineExceeded`](crate::ErrorKind::DeadlineExceeded) instead.
    pub deadline: Option<tokio::time::Instant>,
    pub user_agent: String,
    /// Largest `first` the pagers accept (default and Xledger's limit: 10 000).
    pub max_page_size: usize,
    /// Largest response body accepted, compressed or decompressed (default 1 GiB).
    pub max_response_bytes: usize,
}

impl ClientConfig {
    /// A configuration with the defaults described on each field.
    pub fn new(endpoint: Url, api_key: ApiKey) -> Self {
        ClientConfig {
            endpoint,
            api_key,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            max_in_flight: 4,
            retry: RetryPolicy::default(),
            deadline: None,
            user_agent: default_user_agent(),
            max_page_size: XLEDGER_MAX_PAGE_SIZE,
            max_response_bytes: 1 << 30,
        }
    }
}

/// `xledger-sync/<version> (xledger-client)`.
pub fn default_user_agent() -> String {
    format!("xledger-sync/{} (xledger-client)", env!("CARGO_PKG_VERSION"))
}

/// True when `url` may carry the API key: HTTPS anywhere, plain HTTP only to this machine.
pub(crate) fn is_secure_endpoint(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_secure_only_on_loopback() {
        let secure = |s: &str| is_secure_endpoint(&Url::parse(s).expect("valid test URL"));
        assert!(secure("https://www.xledger.net/graphql"));
        assert!(secure("http://127.0.0.1:8080/graphql"));
        assert!(secure("http://[::1]:8080/graphql"));
        assert!(secure("http://localhost/graphql"));
        assert!(!secure("http://www.xledger.net/graphql"));
        assert!(!secure("http://10.0.0.1/graphql"));
        assert!(!secure("http://localhost.evil.example/graphql"));
        assert!(!secure("ftp://127.0.0.1/graphql"));
    }

    #[test]
    fn api_key_trims_whitespace_and_scrubs_itself() {
        let key = ApiKey::new("abc123\n".to_string());
        assert_eq!(key.expose(), "abc123");
        assert_eq!(key.scrub("token abc123 rejected"), "token *** rejected");
    }
}
