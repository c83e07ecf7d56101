//! The Azure App Configuration backend: its key-value REST API (api-version 1.0) on reqwest.
//!
//! Keys are `<prefix>state/<entity>`, `<prefix>lease/<entity>` and `<prefix>usage/<endpoint>/<YYYY-MM>`
//! under the configured label (none by default); values are the JSON records with content type
//! `application/json`. Compare-and-swap uses `If-Match: "<etag>"` / `If-None-Match: *` (412 = someone
//! else wrote first). 429, 5xx and transport errors are retried with exponential backoff, honouring
//! `retry-after-ms` / `Retry-After`. A write retried after an ambiguous failure that then meets 412 checks
//! whether the stored value is the one it wrote (its own first attempt landed) before reporting a conflict.
//!
//! The old app's keys (`<entity>-initial_sync_complete`, `<entity>-deltas_cursor`) are read without prefix
//! and without label, as the old app wrote them.

pub(crate) mod auth;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::store::{CasOutcome, Expect, KvBackend, KvEntry, LegacyValue, Version};
use crate::{RetryPolicy, StateError};
use auth::{EntraAuth, HmacKey, Redacted};

const API_VERSION: &str = "1.0";
const KV_MEDIA_TYPE: &str = "application/vnd.microsoft.appconfig.kv+json";
/// The start of an error response kept in [`StateError::Http`].
const ERROR_BODY_LIMIT: usize = 512;
/// Characters with a meaning in App Configuration's key and label filters; refused in prefixes and labels
/// so a filter never needs escaping.
const FILTER_CHARACTERS: [char; 3] = ['*', ',', '\\'];

/// How requests are authenticated.
#[derive(Debug)]
pub(crate) enum Auth {
    /// An access key from a connection string.
    Hmac(HmacKey),
    /// Entra ID bearer tokens.
    Entra(EntraAuth),
}

/// Where and how to reach one App Configuration store.
#[derive(Debug)]
pub(crate) struct AppConfigSettings {
    pub(crate) endpoint: String,
    pub(crate) auth: Auth,
    pub(crate) key_prefix: String,
    pub(crate) label: Option<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) request_timeout: Duration,
}

/// The App Configuration backend.
#[derive(Debug)]
pub(crate) struct AppConfigBackend {
    http: reqwest::Client,
    endpoint: Url,
    auth: Auth,
    key_prefix: String,
    label: Option<String>,
    retry: RetryPolicy,
}

/// A key-value as the service returns it.
#[derive(Debug, Deserialize)]
struct KeyValue {
    etag: String,
    key: String,
    value: Option<String>,
    /// Parsed only where it is used (the old app's cursor), so an unexpected format cannot make our
    /// own keys unreadable.
    last_modified: Option<String>,
}

/// One page of a list.
#[derive(Debug, Deserialize)]
struct KeyValuePage {
    items: Vec<KeyValue>,
    #[serde(rename = "@nextLink")]
    next_link: Option<String>,
}

/// A response, read in full (state records are small).
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    /// The request was sent more than once: an earlier attempt may have taken effect.
    retried: bool,
}

/// Refuses anything but https, except plain http to a loopback address (test stand-ins).
pub(crate) fn parse_endpoint(text: &str) -> Result<Url, StateError> {
    let invalid = |why: &str| StateError::InvalidConfig(format!("App Configuration endpoint `{text}`: {why}"));
    let url = Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(invalid("plain http is refused except on loopback")),
        _ => return Err(invalid("expected an https:// URL")),
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(invalid("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.path() != "/" {
        return Err(invalid("expected just scheme, host and port"));
    }
    Ok(url)
}

impl AppConfigBackend {
    pub(crate) fn new(settings: AppConfigSettings) -> Result<Self, StateError> {
        let endpoint = parse_endpoint(&settings.endpoint)?;
        for (what, text) in [("key prefix", Some(&settings.key_prefix)), ("label", settings.label.as_ref())] {
            if let Some(text) = text.filter(|text| text.contains(FILTER_CHARACTERS)) {
                return Err(StateError::InvalidConfig(format!(
                    "App Configuration {what} `{text}` must not contain `*`, `,` or `\\`"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(settings.request_timeout)
            .build()
            .map_err(|e| StateError::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            auth: settings.auth,
            key_prefix: settings.key_prefix,
            label: settings.label,
            retry: settings.retry,
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// `/kv/{key}?[label=…&]api-version=1.0`; the key is one percent-encoded path segment.
    fn key_url(&self, full_key: &str, label: Option<&str>) -> Url {
        let mut url = self.endpoint.clone();
        // `parse_endpoint` refused cannot-be-a-base URLs, the only ones without path segments.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().push("kv").push(full_key);
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(label) = label {
                query.append_pair("label", label);
            }
            query.append_pair("api-version", API_VERSION);
        }
        url
    }

    /// Sends a request, retrying 429, 5xx and transport errors per the policy.
    async fn send(
        &self,
        operation: &'static str,
        key: &str,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        condition: Option<(&'static str, String)>,
    ) -> Result<Reply, StateError> {
        let mut attempt = 1;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            match &self.auth {
                Auth::Hmac(hmac) => {
                    for (name, value) in
                        auth::hmac_headers(hmac, method.as_str(), url, body.unwrap_or_default(), SystemTime::now())
                    {
                        request = request.header(name, value);
                    }
                }
                Auth::Entra(entra) => {
                    let Redacted(value) = entra.authorization().await?;
                    request = request.header("authorization", value);
                }
            }
            if let Some((name, value)) = &condition {
                request = request.header(*name, value);
            }
            if let Some(body) = body {
                request = request.header("content-type", KV_MEDIA_TYPE).body(body.to_vec());
            }
            let retry_after = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable || attempt >= self.retry.max_attempts {
                        let body = response.bytes().await.map_err(|source| StateError::Transport {
                            operation,
                            key: key.to_owned(),
                            source,
                        })?;
                        return Ok(Reply { status, body: body.to_vec(), retried: attempt > 1 });
                    }
                    tracing::warn!(operation, key, %status, attempt, "App Configuration: retrying");
                    server_retry_after(response.headers())
                }
                Err(source) if attempt >= self.retry.max_attempts => {
                    return Err(StateError::Transport { operation, key: key.to_owned(), source });
                }
                Err(source) => {
                    tracing::warn!(operation, key, error = %source, attempt, "App Configuration: retrying");
                    None
                }
            };
            tokio::time::sleep(self.retry.delay(attempt, retry_after)).await;
            attempt += 1;
        }
    }

    fn http_error(operation: &'static str, key: &str, reply: &Reply) -> StateError {
        let mut body = String::from_utf8_lossy(&reply.body).into_owned();
        if body.len() > ERROR_BODY_LIMIT {
            let mut end = ERROR_BODY_LIMIT;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
            body.push('…');
        }
        StateError::Http { operation, key: key.to_owned(), status: reply.status.as_u16(), body }
    }

    fn location_of(&self, full_key: &str) -> String {
        format!("App Configuration key `{full_key}` (label {}) at {}", self.label_name(), self.endpoint_text())
    }

    fn label_name(&self) -> String {
        self.label.as_deref().map_or_else(|| "none".to_owned(), |label| format!("`{label}`"))
    }

    fn endpoint_text(&self) -> &str {
        self.endpoint.as_str().trim_end_matches('/')
    }

    fn parse_key_value(&self, full_key: &str, body: &[u8]) -> Result<KeyValue, StateError> {
        serde_json::from_slice(body).map_err(|e| StateError::Corrupt {
            location: self.location_of(full_key),
            detail: format!("unexpected response: {e}"),
        })
    }

    fn entry(&self, kv: KeyValue) -> Result<KvEntry, StateError> {
        let value = serde_json::from_str(kv.value.as_deref().unwrap_or_default()).map_err(|e| StateError::Corrupt {
            location: self.location_of(&kv.key),
            detail: format!("value is not JSON: {e}"),
        })?;
        Ok(KvEntry { value, version: Version::new(kv.etag) })
    }

    /// Reads one key (prefix already applied).
    async fn get_full(&self, full_key: &str, label: Option<&str>) -> Result<Option<KeyValue>, StateError> {
        let url = self.key_url(full_key, label);
        let reply = self.send("get", full_key, Method::GET, &url, None, None).await?;
        match reply.status {
            StatusCode::OK => self.parse_key_value(full_key, &reply.body).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::http_error("get", full_key, &reply)),
        }
    }

    /// The list URL for keys starting with `prefix` under our label.
    fn list_url(&self, full_prefix: &str) -> Url {
        let mut url = self.endpoint.clone();
        url.set_path("/kv");
        url.query_pairs_mut()
            .append_pair("key", &format!("{full_prefix}*"))
            // `\0` is how the service names "no label" in a filter.
            .append_pair("label", self.label.as_deref().unwrap_or("\0"))
            .append_pair("api-version", API_VERSION);
        url
    }
}

/// The wait the service asked for: `retry-after-ms` (App Configuration) or `Retry-After` seconds.
fn server_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    number("retry-after-ms")
        .or_else(|| number("x-ms-retry-after-ms"))
        .map(Duration::from_millis)
        .or_else(|| number("retry-after").map(Duration::from_secs))
}

#[async_trait]
impl KvBackend for AppConfigBackend {
    fn describe(&self) -> String {
        let auth = match self.auth {
            Auth::Hmac(_) => "access key",
            Auth::Entra(_) => "Entra ID",
        };
        format!(
            "App Configuration {} (prefix `{}`, label {}, {auth})",
            self.endpoint_text(),
            self.key_prefix,
            self.label_name()
        )
    }

    fn location(&self, key: &str) -> String {
        self.location_of(&self.full_key(key))
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>, StateError> {
        let full_key = self.full_key(key);
        match self.get_full(&full_key, self.label.as_deref()).await? {
            Some(kv) => self.entry(kv).map(Some),
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: &Value, expect: &Expect) -> Result<CasOutcome, StateError> {
        let full_key = self.full_key(key);
        let value_text = value.to_string();
        let body = serde_json::json!({ "value": value_text, "content_type": "application/json" }).to_string();
        let condition = match expect {
            Expect::Absent => ("if-none-match", "*".to_owned()),
            Expect::Version(version) => ("if-match", format!("\"{}\"", version.as_str())),
        };
        let url = self.key_url(&full_key, self.label.as_deref());
        let reply = self.send("set", &full_key, Method::PUT, &url, Some(body.as_bytes()), Some(condition)).await?;
        match reply.status {
            StatusCode::OK | StatusCode::CREATED => {
                Ok(CasOutcome::Done(Version::new(self.parse_key_value(&full_key, &reply.body)?.etag)))
            }
            StatusCode::PRECONDITION_FAILED if reply.retried => {
                // An earlier attempt may have landed before its answer was lost: then the value is ours.
                match self.get_full(&full_key, self.label.as_deref()).await? {
                    Some(kv) if kv.value.as_deref() == Some(value_text.as_str()) => {
                        Ok(CasOutcome::Done(Version::new(kv.etag)))
                    }
                    _ => Ok(CasOutcome::Mismatch),
                }
            }
            StatusCode::PRECONDITION_FAILED => Ok(CasOutcome::Mismatch),
            _ => Err(Self::http_error("set", &full_key, &reply)),
        }
    }

    async fn delete(&self, key: &str, expect: Option<&Version>) -> Result<CasOutcome, StateError> {
        let full_key = self.full_key(key);
        let url = self.key_url(&full_key, self.label.as_deref());
        let condition = expect.map(|version| ("if-match", format!("\"{}\"", version.as_str())));
        let reply = self.send("delete", &full_key, Method::DELETE, &url, None, condition).await?;
        match reply.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(CasOutcome::Done(Version::absent())),
            StatusCode::PRECONDITION_FAILED if reply.retried => {
                // An earlier attempt may have deleted it before its answer was lost.
                match self.get_full(&full_key, self.label.as_deref()).await? {
                    None => Ok(CasOutcome::Done(Version::absent())),
                    Some(_) => Ok(CasOutcome::Mismatch),
                }
            }
            StatusCode::PRECONDITION_FAILED => Ok(CasOutcome::Mismatch),
            _ => Err(Self::http_error("delete", &full_key, &reply)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, KvEntry)>, StateError> {
        let full_prefix = self.full_key(prefix);
        let filter = format!("{full_prefix}*");
        let mut url = self.list_url(&full_prefix);
        let mut entries = Vec::new();
        loop {
            let reply = self.send("list", &filter, Method::GET, &url, None, None).await?;
            if reply.status != StatusCode::OK {
                return Err(Self::http_error("list", &filter, &reply));
            }
            let page: KeyValuePage = serde_json::from_slice(&reply.body).map_err(|e| StateError::Corrupt {
                location: self.location_of(&filter),
                detail: format!("unexpected list response: {e}"),
            })?;
            for kv in page.items {
                let Some(key) = kv.key.strip_prefix(&self.key_prefix).map(str::to_owned) else {
                    continue;
                };
                entries.push((key, self.entry(kv)?));
            }
            let Some(next) = page.next_link else { break };
            let next_url = self.endpoint.join(&next).map_err(|e| StateError::Corrupt {
                location: self.location_of(&filter),
                detail: format!("unusable @nextLink: {e}"),
            })?;
            // Authentication goes wherever we send it: never follow a link off our endpoint.
            if next_url.origin() != self.endpoint.origin() {
                return Err(StateError::Corrupt {
                    location: self.location_of(&filter),
                    detail: "@nextLink points to another host".to_owned(),
                });
            }
            url = next_url;
        }
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(entries)
    }

    async fn get_legacy(&self, key: &str) -> Result<Option<LegacyValue>, StateError> {
        let Some(kv) = self.get_full(key, None).await? else {
            return Ok(None);
        };
        let last_modified = kv
            .last_modified
            .as_deref()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
            .ok_or_else(|| StateError::Corrupt {
                location: format!("App Configuration key `{key}` (the old app's) at {}", self.endpoint_text()),
                detail: format!("no usable last_modified: {:?}", kv.last_modified),
            })?;
        Ok(Some(LegacyValue { value: kv.value.unwrap_or_default(), last_modified }))
    }
}

/// Builds the Entra ID authentication: the given credential, or the default chain.
pub(crate) fn entra_auth(
    credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
) -> Result<Auth, StateError> {
    let credential = match credential {
        Some(credential) => credential,
        None => Arc::new(auth::DefaultEntraCredential::new()?),
    };
    Ok(Auth::Entra(EntraAuth::new(credential)))
}
