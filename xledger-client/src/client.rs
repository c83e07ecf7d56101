//! The HTTP side: one POST per attempt under a global in-flight limit, gzip handled by hand so the
//! compressed bytes can be counted, and the retry loop around it.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use crate::classify::{Failure, classify_response};
use crate::config::{ApiKey, ClientConfig, RetryPolicy, XLEDGER_MAX_PAGE_SIZE, is_secure_endpoint};
use crate::error::{ClientError, ErrorKind, RequestContext};
use crate::stats::{ClientStats, StatsCounters};

/// Added to a credit wait so the retry lands after `resetAt` even with some clock skew.
const CREDIT_RESET_MARGIN: Duration = Duration::from_secs(1);

/// A client for Xledger's GraphQL endpoint. Cheap to clone (an `Arc` inside); clones share the
/// connection pool, the in-flight limit and the [`ClientStats`].
///
/// See the [crate documentation](crate) for a complete paging example.
#[derive(Clone)]
pub struct XledgerClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    api_key: ApiKey,
    authorization: HeaderValue,
    request_timeout: Option<Duration>,
    retry: RetryPolicy,
    deadline: Option<Instant>,
    pub(crate) max_page_size: usize,
    max_response_bytes: usize,
    in_flight: Semaphore,
    stats: StatsCounters,
}

impl fmt::Debug for XledgerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XledgerClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("api_key", &self.inner.api_key)
            .finish_non_exhaustive()
    }
}

/// The request body of a GraphQL operation.
#[derive(Serialize)]
struct GraphQlBody<'a> {
    query: &'a str,
    variables: &'a serde_json::Value,
}

impl XledgerClient {
    /// Builds a client. Fails with [`ErrorKind::InsecureEndpoint`] for `http://` to a host that is
    /// not loopback (the key would travel in clear text), and with [`ErrorKind::InvalidConfig`]
    /// for an empty key, zero limits or a page size above Xledger's 10 000.
    ///
    /// ```
    /// use xledger_client::{ApiKey, ClientConfig, ErrorKind, XledgerClient};
    ///
    /// let key = ApiKey::new("key".to_string());
    /// let insecure = ClientConfig::new("http://www.xledger.net/graphql".parse().expect("URL"), key.clone());
    /// let err = XledgerClient::new(insecure).expect_err("plain HTTP off loopback is refused");
    /// assert_eq!(err.kind(), &ErrorKind::InsecureEndpoint);
    ///
    /// let local = ClientConfig::new("http://127.0.0.1:8080/graphql".parse().expect("URL"), key);
    /// assert!(XledgerClient::new(local).is_ok());
    /// ```
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let ctx = RequestContext::operation("configure client");
        let invalid =
            |message: String| ClientError::new(ErrorKind::InvalidConfig, ctx.clone(), message).with_attempts(0);
        if !is_secure_endpoint(&config.endpoint) {
            return Err(ClientError::new(
                ErrorKind::InsecureEndpoint,
                ctx.clone(),
                format!(
                    "refusing to send the API key to {}://{}: use https:// (plain http:// is allowed only on loopback)",
                    config.endpoint.scheme(),
                    config.endpoint.host_str().unwrap_or("(no host)")
                ),
            )
            .with_attempts(0));
        }
        if config.api_key.expose().is_empty() {
            return Err(invalid("the API key is empty: set XLEDGER_API_KEY".to_string()));
        }
        if config.max_in_flight == 0 {
            return Err(invalid("max_in_flight must be at least 1".to_string()));
        }
        if config.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts must be at least 1".to_string()));
        }
        if config.max_page_size == 0 || config.max_page_size > XLEDGER_MAX_PAGE_SIZE {
            return Err(invalid(format!(
                "max_page_size {} is outside 1..={XLEDGER_MAX_PAGE_SIZE} (Xledger's limit per query)",
                config.max_page_size
            )));
        }
        let mut authorization = HeaderValue::from_str(&format!("token {}", config.api_key.expose()))
            .map_err(|_| invalid("the API key contains characters an HTTP header cannot carry".to_string()))?;
        authorization.set_sensitive(true);

        // Automatic gzip stays off: reqwest would hide the compressed size, which is what Xledger bills.
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .gzip(false)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(config.pool_idle_timeout);
        if !config.connect_timeout.is_zero() {
            builder = builder.connect_timeout(config.connect_timeout);
        }
        let http = builder.build().map_err(|e| {
            invalid(config.api_key.scrub(&format!("cannot build the HTTP client: {}", error_chain(&e))))
        })?;
        Ok(XledgerClient {
            inner: Arc::new(Inner {
                http,
                endpoint: config.endpoint,
                api_key: config.api_key,
                authorization,
                request_timeout: Some(config.request_timeout).filter(|t| !t.is_zero()),
                retry: config.retry,
                deadline: config.deadline,
                max_page_size: config.max_page_size,
                max_response_bytes: config.max_response_bytes,
                in_flight: Semaphore::new(config.max_in_flight),
                stats: StatsCounters::default(),
            }),
        })
    }

    /// Runs a typed operation generated by `graphql_client` (see `xledger_model::queries`) and
    /// returns its `data`, retrying as the policy allows.
    ///
    /// ```no_run
    /// # async fn example(client: xledger_client::XledgerClient) -> Result<(), xledger_client::ClientError> {
    /// use xledger_client::RequestContext;
    /// use xledger_model::queries::timesheets::{TimesheetsPage, timesheets_page};
    ///
    /// let variables = timesheets_page::Variables { first: 100, after: None };
    /// let data = client
    ///     .execute::<TimesheetsPage>(variables, RequestContext::entity("timesheets", "TimesheetsPage"))
    ///     .await?;
    /// println!("{} timesheets", data.timesheets.map_or(0, |page| page.edges.len()));
    /// # Ok(()) }
    /// ```
    pub async fn execute<Q: graphql_client::GraphQLQuery>(
        &self,
        variables: Q::Variables,
        ctx: RequestContext,
    ) -> Result<Q::ResponseData, ClientError> {
        let body = serde_json::to_vec(&Q::build_query(variables)).map_err(|e| {
            ClientError::new(ErrorKind::InvalidArgument, ctx.clone(), format!("cannot serialize the variables: {e}"))
                .with_attempts(0)
        })?;
        let data = self.send(Bytes::from(body), &ctx).await?;
        serde_json::from_str(data.get()).map_err(|e| {
            ClientError::new(
                ErrorKind::MalformedResponse,
                ctx,
                format!("`data` does not match the operation's type: {e}"),
            )
        })
    }

    /// Runs a GraphQL document built at run time (batched probes, registry documents) and returns
    /// the `data` object as raw JSON, retrying as the policy allows.
    ///
    /// ```no_run
    /// # async fn example(client: xledger_client::XledgerClient) -> Result<(), xledger_client::ClientError> {
    /// use serde_json::json;
    /// use xledger_client::RequestContext;
    ///
    /// let data = client
    ///     .execute_raw("query { a: timesheet_deltas(last: 1) { edges { cursor } } }", json!({}),
    ///                  RequestContext::operation("HeadProbe"))
    ///     .await?;
    /// assert!(data.get().starts_with('{'));
    /// # Ok(()) }
    /// ```
    pub async fn execute_raw(
        &self,
        document: &str,
        variables: serde_json::Value,
        ctx: RequestContext,
    ) -> Result<Box<RawValue>, ClientError> {
        self.execute_with(document, variables, ctx, read_data).await
    }

    /// [`execute_raw`](Self::execute_raw), reading each response with `read`: see
    /// [`send_with`](Self::send_with).
    pub(crate) async fn execute_with<T, F>(
        &self,
        document: &str,
        variables: serde_json::Value,
        ctx: RequestContext,
        read: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(u16, String) -> Result<T, Failure>,
    {
        let body = serde_json::to_vec(&GraphQlBody { query: document, variables: &variables }).map_err(|e| {
            ClientError::new(ErrorKind::InvalidArgument, ctx.clone(), format!("cannot serialize the request: {e}"))
                .with_attempts(0)
        })?;
        self.send_with(Bytes::from(body), &ctx, read).await
    }

    /// What this client and its clones did since [`XledgerClient::new`].
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Sends `body` until it succeeds, fails in a way that is not retried, runs out of attempts,
    /// or would pass the deadline. Each retry is logged with its reason and counted.
    async fn send(&self, body: Bytes, ctx: &RequestContext) -> Result<Box<RawValue>, ClientError> {
        self.send_with(body, ctx, read_data).await
    }

    /// [`send`](Self::send), with each response (its HTTP status and decompressed UTF-8 body)
    /// read by `read`: `Ok` is the reply, a [`Failure`] is classified, retried or returned like any
    /// other.
    pub(crate) async fn send_with<T, F>(&self, body: Bytes, ctx: &RequestContext, mut read: F) -> Result<T, ClientError>
    where
        F: FnMut(u16, String) -> Result<T, Failure>,
    {
        let policy = &self.inner.retry;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(&body, ctx.entity.as_deref(), &mut read).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            let message = self.inner.api_key.scrub(&failure.message);
            let fail =
                |kind: ErrorKind, message: String| ClientError::new(kind, ctx.clone(), message).with_attempts(attempt);
            let wait = match &failure.kind {
                ErrorKind::CreditsDeferred { reset_at } => match credit_wait(*reset_at, policy.max_credit_wait) {
                    Some(wait) => wait,
                    None => {
                        let why = format!(
                            "{message}; not waiting: resetAt is missing or more than {} s away",
                            policy.max_credit_wait.as_secs()
                        );
                        return Err(fail(failure.kind, why));
                    }
                },
                kind if kind.is_retryable() => retry_wait(policy, kind, attempt),
                _ => return Err(fail(failure.kind, message)),
            };
            if attempt >= policy.max_attempts {
                return Err(fail(failure.kind, message));
            }
            if let Some(deadline) = self.inner.deadline
                && Instant::now() + wait > deadline
            {
                let why = format!(
                    "a {} ms wait to retry after {} would pass the deadline; last error: {message}",
                    wait.as_millis(),
                    failure.kind
                );
                return Err(fail(ErrorKind::DeadlineExceeded, why));
            }
            let reason = failure.kind.reason();
            tracing::warn!(
                entity = ctx.entity.as_deref().unwrap_or("-"),
                operation = %ctx.operation,
                page = ctx.page,
                attempt,
                reason = %reason,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %message,
                "Xledger request failed; retrying"
            );
            self.inner.stats.retry(reason);
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP exchange under the in-flight limit, bounded by the request timeout and the deadline.
    async fn attempt<T, F>(&self, body: &Bytes, entity: Option<&str>, read: &mut F) -> Result<T, Failure>
    where
        F: FnMut(u16, String) -> Result<T, Failure>,
    {
        let inner = &self.inner;
        let deadline_failure = || Failure::new(ErrorKind::DeadlineExceeded, "the deadline passed before a response");
        if inner.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Failure::new(ErrorKind::DeadlineExceeded, "the deadline passed before the request was sent"));
        }
        let acquire = inner.in_flight.acquire();
        let _permit = match inner.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, acquire).await.map_err(|_| deadline_failure())?,
            None => acquire.await,
        }
        // The semaphore is owned by `inner` and never closed, so acquiring cannot fail.
        .map_err(|_| Failure::new(ErrorKind::Transport, "the in-flight limit was closed"))?;

        let timeout_at = inner.request_timeout.map(|t| Instant::now() + t);
        let limit = match (timeout_at, inner.deadline) {
            (Some(t), Some(d)) if d < t => Some((d, true)),
            (Some(t), _) => Some((t, false)),
            (None, Some(d)) => Some((d, true)),
            (None, None) => None,
        };
        inner.stats.request_sent(entity, body.len());
        let exchange = self.exchange(body.clone(), entity);
        let (status, encoding, raw) = match limit {
            Some((at, by_deadline)) => match tokio::time::timeout_at(at, exchange).await {
                Ok(result) => result?,
                Err(_) if by_deadline => return Err(deadline_failure()),
                Err(_) => {
                    let secs = inner.request_timeout.unwrap_or_default().as_secs_f64();
                    return Err(Failure::new(
                        ErrorKind::RequestTimeout,
                        format!("no complete response within {secs} s"),
                    ));
                }
            },
            None => exchange.await?,
        };
        let bytes = self.decode(encoding.as_ref(), raw)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Failure::new(ErrorKind::MalformedResponse, format!("the body is not UTF-8: {e}")))?;
        read(status, text)
    }

    async fn exchange(
        &self,
        body: Bytes,
        entity: Option<&str>,
    ) -> Result<(u16, Option<HeaderValue>, Vec<u8>), Failure> {
        let inner = &self.inner;
        let mut response = inner
            .http
            .post(inner.endpoint.clone())
            .header(AUTHORIZATION, inner.authorization.clone())
            .header(ACCEPT_ENCODING, "gzip")
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status().as_u16();
        let encoding = response.headers().get(CONTENT_ENCODING).cloned();
        let expected = response.content_length().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
        let mut raw = Vec::with_capacity(expected.min(inner.max_response_bytes));
        while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
            inner.stats.bytes_received(entity, chunk.len());
            if raw.len() + chunk.len() > inner.max_response_bytes {
                return Err(Failure::new(
                    ErrorKind::ResponseTooLarge,
                    format!("the body exceeds max_response_bytes ({} bytes)", inner.max_response_bytes),
                ));
            }
            raw.extend_from_slice(&chunk);
        }
        Ok((status, encoding, raw))
    }

    /// Undoes `Content-Encoding`.
    fn decode(&self, encoding: Option<&HeaderValue>, raw: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let encoding = encoding.map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_ascii_lowercase());
        let bytes = match encoding.as_deref() {
            None | Some("") | Some("identity") => raw,
            Some("gzip") | Some("x-gzip") => gunzip(&raw, self.inner.max_response_bytes)?,
            Some(other) => {
                return Err(Failure::new(
                    ErrorKind::MalformedResponse,
                    format!("unsupported Content-Encoding {other:?}"),
                ));
            }
        };
        Ok(bytes)
    }
}

/// Inflates a gzip body (one member), telling a truncated body from a malformed one and refusing
/// to inflate beyond `max_bytes`.
fn gunzip(raw: &[u8], max_bytes: usize) -> Result<Vec<u8>, Failure> {
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::with_capacity(raw.len().saturating_mul(8).min(max_bytes));
    match flate2::read::GzDecoder::new(raw).take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() > max_bytes => Err(Failure::new(
            ErrorKind::ResponseTooLarge,
            format!("the decompressed body exceeds max_response_bytes ({max_bytes} bytes)"),
        )),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Failure::new(
            ErrorKind::TruncatedResponse,
            format!("the gzip stream ends early after {} compressed bytes", raw.len()),
        )),
        Err(e) => Err(Failure::new(ErrorKind::MalformedResponse, format!("invalid gzip body: {e}"))),
    }
}

fn transport_failure(error: reqwest::Error) -> Failure {
    let kind = if error.is_timeout() { ErrorKind::RequestTimeout } else { ErrorKind::Transport };
    Failure::new(kind, error_chain(&error))
}

/// An error and its sources, `outer: inner: innermost`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

/// How long to wait for credits to return, or `None` when the engine should stop instead.
fn credit_wait(reset_at: Option<DateTime<Utc>>, max_wait: Duration) -> Option<Duration> {
    let until_reset = (reset_at? - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    (until_reset <= max_wait).then_some(until_reset + CREDIT_RESET_MARGIN)
}

/// The wait before retrying a retryable failure at `attempt` (1-based).
fn retry_wait(policy: &RetryPolicy, kind: &ErrorKind, attempt: u32) -> Duration {
    match kind {
        ErrorKind::BurstRateLimit => with_jitter(policy.burst_wait),
        ErrorKind::ConcurrencyLimit => with_jitter(policy.concurrency_wait),
        _ => {
            let exponent = attempt.saturating_sub(1).min(30);
            let backoff = policy.base_backoff.saturating_mul(1 << exponent).min(policy.max_backoff);
            // Half fixed, half random: spreads clients out without ever retrying at once.
            backoff / 2 + backoff.mul_f64(rand::random_range(0.0..0.5))
        }
    }
}

/// `wait` plus up to 20 % more, so clients throttled together do not come back together.
fn with_jitter(wait: Duration) -> Duration {
    wait + wait.mul_f64(rand::random_range(0.0..0.2))
}

/// Reads a response as every operation but an items page does: its `data` object, or the failure.
fn read_data(status: u16, text: String) -> Result<Box<RawValue>, Failure> {
    classify_response(status, &text).map(RawValue::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ..RetryPolicy::default()
        };
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)] {
            let wait = retry_wait(&policy, &ErrorKind::Transport, attempt);
            let full = Duration::from_secs(full);
            assert!(wait >= full / 2 && wait <= full, "attempt {attempt}: {wait:?} not in [{:?}, {full:?}]", full / 2);
        }
    }

    #[test]
    fn rate_limit_waits_are_the_configured_wait_plus_at_most_a_fifth() {
        let policy = RetryPolicy::default();
        let burst = retry_wait(&policy, &ErrorKind::BurstRateLimit, 1);
        let concurrency = retry_wait(&policy, &ErrorKind::ConcurrencyLimit, 7);
        assert!(burst >= Duration::from_secs(5) && burst <= Duration::from_secs(6), "{burst:?}");
        assert!(concurrency >= Duration::from_secs(1) && concurrency <= Duration::from_millis(1200), "{concurrency:?}");
    }

    #[test]
    fn credits_wait_only_when_reset_is_close_enough() {
        let max = Duration::from_secs(600);
        let soon = Utc::now() + chrono::Duration::seconds(60);
        let late = Utc::now() + chrono::Duration::seconds(3600);
        let past = Utc::now() - chrono::Duration::seconds(5);
        let wait = credit_wait(Some(soon), max).expect("a reset one minute away is waited for");
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(61), "{wait:?}");
        assert_eq!(credit_wait(Some(late), max), None);
        assert_eq!(credit_wait(None, max), None);
        assert_eq!(credit_wait(Some(past), max), Some(CREDIT_RESET_MARGIN));
    }

    #[test]
    fn truncated_gzip_is_truncated_not_malformed() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(br#"{"data":{"a":"some text long enough to compress"}}"#).expect("write to a Vec");
        let gz = encoder.finish().expect("finish a Vec");
        let cut = &gz[..gz.len() / 2];
        assert_eq!(gunzip(cut, 1 << 20).map_err(|f| f.kind), Err(ErrorKind::TruncatedResponse));
        assert_eq!(gunzip(b"not gzip at all", 1 << 20).map_err(|f| f.kind), Err(ErrorKind::MalformedResponse));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("write to a Vec");
        encoder.finish().expect("finish a Vec")
    }

    #[test]
    fn gunzip_inflates_one_member_and_names_what_is_wrong() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{{\"dbId\":{i}}},").into_bytes()).collect();
        let gz = gzip(&text);
        assert_eq!(gunzip(&gz, 1 << 24).expect("a whole member"), text);
        assert_eq!(gunzip(&gzip(b""), 16).expect("an empty body"), b"");
        assert_eq!(gunzip(&gz, text.len() - 1).map_err(|f| f.kind), Err(ErrorKind::ResponseTooLarge));
        let mut bad_crc = gz.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        assert_eq!(gunzip(&bad_crc, 1 << 24).map_err(|f| f.kind), Err(ErrorKind::MalformedResponse));
        for cut in [gz.len() - 1, gz.len() - 9, gz.len() / 2, 12] {
            assert_eq!(
                gunzip(&gz[..cut], 1 << 24).map_err(|f| f.kind),
                Err(ErrorKind::TruncatedResponse),
                "cut at {cut}"
            );
        }
        // Two members: the first is the response (Xledger sends one).
        let mut two = gzip(b"first");
        two.extend(gzip(b"second"));
        assert_eq!(gunzip(&two, 1 << 10).expect("the first member"), b"first");
    }
}
