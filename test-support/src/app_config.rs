//! A stateful Azure App Configuration stand-in on wiremock: key-values with ETags, `If-Match` /
//! `If-None-Match`, paged lists with `@nextLink`, HMAC or bearer authentication checked on every request,
//! and scripted faults.
//!
//! Mount it on a [`wiremock::MockServer`] with `Mock::given(any()).respond_with(fake.clone())`; the
//! clone shares the state, so the test keeps a handle to seed keys, inspect them and script faults.
//! A request the real service would refuse (bad signature, wrong api-version, unknown path, malformed
//! body) gets the status the service would send, never a panic in the server.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::{Request, Respond, ResponseTemplate};

/// The access key id the HMAC stand-in accepts (`Id=` of the connection string).
pub const ID: &str = "fake-id";
/// The access key secret the HMAC stand-in accepts: base64 of "fake-app-configuration-secret"; the
/// decoded bytes are the HMAC key.
pub const SECRET: &str = "ZmFrZS1hcHAtY29uZmlndXJhdGlvbi1zZWNyZXQ=";
/// The bearer token the Entra ID stand-in accepts.
pub const BEARER: &str = "fake-entra-token";
/// Items per list page: small, so two or three keys already exercise `@nextLink`.
const PAGE_SIZE: usize = 2;
/// The `last_modified` of every key the stand-in writes.
const WRITTEN_AT: &str = "2025-03-01T12:00:00+00:00";

/// A key-value as the stand-in holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The value, as the client sent it.
    pub value: String,
    /// The ETag (`etag-<n>` for written keys, `seed-<n>` for seeded ones).
    pub etag: String,
    /// The content type the client sent (`None` for seeded keys).
    pub content_type: Option<String>,
    /// The `last_modified` timestamp returned to clients.
    pub last_modified: String,
}

/// What the next requests meet before the stand-in's normal behaviour.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `retry-after-ms: 0` for 429), changing nothing.
    Status(u16),
    /// Apply the request, then answer 503 as if the response was lost.
    ApplyThenFail,
    /// Answer normally: places the faults after it on later requests.
    Pass,
}

#[derive(Default)]
struct State {
    /// (key, label) → key-value.
    kvs: BTreeMap<(String, Option<String>), Stored>,
    next_etag: u64,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
    auth_failures: Vec<String>,
}

/// The stand-in; clones share one store.
#[derive(Clone)]
pub struct FakeAppConfig {
    state: Arc<Mutex<State>>,
    /// `None` = HMAC with [`ID`]/[`SECRET`]; `Some` = this `Authorization` header value.
    bearer: Option<String>,
}

impl FakeAppConfig {
    /// A stand-in that accepts requests signed with the access key [`ID`] / [`SECRET`].
    pub fn hmac() -> Self {
        Self { state: Arc::default(), bearer: None }
    }

    /// A stand-in that accepts the bearer token [`BEARER`].
    pub fn entra() -> Self {
        Self { state: Arc::default(), bearer: Some(format!("Bearer {BEARER}")) }
    }

    /// The connection string of the HMAC stand-in served at `server_uri`.
    pub fn connection_string(server_uri: &str) -> String {
        format!("Endpoint={server_uri};Id={ID};Secret={SECRET}")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; later reads may go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a key-value as another writer (the old app, a newer build) left it.
    pub fn seed(&self, key: &str, label: Option<&str>, value: &str, last_modified: &str) {
        let mut state = self.state();
        state.next_etag += 1;
        let etag = format!("seed-{}", state.next_etag);
        state.kvs.insert(
            (key.to_owned(), label.map(str::to_owned)),
            Stored { value: value.to_owned(), etag, content_type: None, last_modified: last_modified.to_owned() },
        );
    }

    /// The key-value stored under `key` and `label`.
    pub fn stored(&self, key: &str, label: Option<&str>) -> Option<Stored> {
        self.state().kvs.get(&(key.to_owned(), label.map(str::to_owned))).cloned()
    }

    /// Every stored (key, label), in order.
    pub fn keys(&self) -> Vec<(String, Option<String>)> {
        self.state().kvs.keys().cloned().collect()
    }

    /// Scripts faults for the next requests, one per request, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state().faults.extend(faults);
    }

    /// "METHOD path?query" of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// Why each refused request failed authentication, in order.
    pub fn auth_failures(&self) -> Vec<String> {
        self.state().auth_failures.clone()
    }

    fn check_auth(&self, request: &Request) -> Result<(), String> {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let authorization = header("authorization").ok_or("no Authorization")?;
        if let Some(bearer) = &self.bearer {
            return if &authorization == bearer { Ok(()) } else { Err("wrong bearer token".into()) };
        }
        // Microsoft's recipe, written again independently of the client under test.
        let date = header("x-ms-date").ok_or("no x-ms-date")?;
        let hash = header("x-ms-content-sha256").ok_or("no x-ms-content-sha256")?;
        if hash != BASE64.encode(Sha256::digest(&request.body)) {
            return Err("x-ms-content-sha256 does not match the body".into());
        }
        let host = header("host").ok_or("no Host")?;
        let path_and_query = match request.url.query() {
            Some(query) => format!("{}?{query}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let to_sign = format!("{}\n{path_and_query}\n{date};{host};{hash}", request.method.as_str());
        let key = BASE64.decode(SECRET).map_err(|e| format!("the stand-in's own secret: {e}"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| format!("HMAC key: {e}"))?;
        mac.update(to_sign.as_bytes());
        let expected = format!(
            "HMAC-SHA256 Credential={ID}&SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={}",
            BASE64.encode(mac.finalize().into_bytes())
        );
        if authorization == expected { Ok(()) } else { Err(format!("bad signature for {to_sign:?}")) }
    }
}

/// Decodes a percent-encoded path segment; `None` for a malformed escape or non-UTF-8 bytes.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn kv_json(key: &str, label: &Option<String>, stored: &Stored) -> Value {
    json!({
        "etag": stored.etag, "key": key, "label": label, "content_type": stored.content_type,
        "value": stored.value, "last_modified": stored.last_modified, "locked": false, "tags": {}
    })
}

impl Respond for FakeAppConfig {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path_and_query = format!("{} {}?{}", request.method, request.url.path(), request.url.query().unwrap_or(""));
        self.state().requests.push(path_and_query);
        if let Err(why) = self.check_auth(request) {
            self.state().auth_failures.push(why.clone());
            return ResponseTemplate::new(401).set_body_string(why);
        }
        let fault = self.state().faults.pop_front();
        match fault {
            Some(Fault::Status(429)) => {
                return ResponseTemplate::new(429).insert_header("retry-after-ms", "0");
            }
            Some(Fault::Status(status)) => {
                return ResponseTemplate::new(status).set_body_string("scripted fault");
            }
            Some(Fault::ApplyThenFail) => {
                self.apply(request);
                return ResponseTemplate::new(503).set_body_string("lost response");
            }
            Some(Fault::Pass) | None => {}
        }
        self.apply(request)
    }
}

impl FakeAppConfig {
    fn apply(&self, request: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        if query.get("api-version").map(String::as_str) != Some("1.0") {
            return ResponseTemplate::new(400).set_body_string("api-version 1.0 required");
        }
        let path = request.url.path();
        if path == "/kv" {
            return self.list(&query);
        }
        let Some(key) = path.strip_prefix("/kv/").and_then(percent_decode) else {
            return ResponseTemplate::new(404);
        };
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let label = query.get("label").cloned();
        let id = (key.clone(), label.clone());
        let mut state = self.state();
        let current = state.kvs.get(&id).cloned();
        let precondition_holds = match (&header("if-match"), &header("if-none-match"), &current) {
            (Some(etag), _, Some(stored)) => *etag == format!("\"{}\"", stored.etag) || etag == "*",
            (Some(_), _, None) => false,
            (None, Some(star), Some(_)) if star == "*" => false,
            _ => true,
        };
        match request.method.as_str() {
            "GET" => match current {
                Some(stored) => ResponseTemplate::new(200).set_body_json(kv_json(&key, &label, &stored)),
                None => ResponseTemplate::new(404),
            },
            "PUT" if !precondition_holds => ResponseTemplate::new(412),
            "PUT" => {
                if header("content-type").as_deref() != Some("application/vnd.microsoft.appconfig.kv+json") {
                    return ResponseTemplate::new(415);
                }
                let body: Value = match serde_json::from_slice(&request.body) {
                    Ok(body) => body,
                    Err(e) => return ResponseTemplate::new(400).set_body_string(format!("body is not JSON: {e}")),
                };
                let Some(value) = body["value"].as_str() else {
                    return ResponseTemplate::new(400).set_body_string("body has no string `value`");
                };
                state.next_etag += 1;
                let stored = Stored {
                    value: value.to_owned(),
                    etag: format!("etag-{}", state.next_etag),
                    content_type: body["content_type"].as_str().map(str::to_owned),
                    last_modified: WRITTEN_AT.to_owned(),
                };
                state.kvs.insert(id, stored.clone());
                ResponseTemplate::new(200).set_body_json(kv_json(&key, &label, &stored))
            }
            "DELETE" if !precondition_holds => ResponseTemplate::new(412),
            "DELETE" => match state.kvs.remove(&id) {
                Some(stored) => ResponseTemplate::new(200).set_body_json(kv_json(&key, &label, &stored)),
                None => ResponseTemplate::new(204),
            },
            _ => ResponseTemplate::new(405),
        }
    }

    /// `GET /kv?key=<prefix>*&label=<label or \0>[&after=<key>]`: one page, with `@nextLink` when more follow.
    fn list(&self, query: &BTreeMap<String, String>) -> ResponseTemplate {
        let prefix = query.get("key").and_then(|k| k.strip_suffix('*')).unwrap_or("").to_owned();
        // `\0` is how the service names "no label" in a filter.
        let label = match query.get("label").map(String::as_str) {
            Some("\0") | None => None,
            Some(label) => Some(label.to_owned()),
        };
        let after = query.get("after").cloned().unwrap_or_default();
        let state = self.state();
        let matching: Vec<(&String, &Option<String>, &Stored)> = state
            .kvs
            .iter()
            .filter(|((key, l), _)| key.starts_with(&prefix) && *l == label && key.as_str() > after.as_str())
            .map(|((key, l), stored)| (key, l, stored))
            .collect();
        let page = &matching[..matching.len().min(PAGE_SIZE)];
        let mut body =
            json!({ "items": page.iter().map(|(key, l, stored)| kv_json(key, l, stored)).collect::<Vec<_>>() });
        if let (true, Some((last, _, _))) = (matching.len() > PAGE_SIZE, page.last()) {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("key", &format!("{prefix}*"))
                .append_pair("label", label.as_deref().unwrap_or("\0"))
                .append_pair("api-version", "1.0")
                .append_pair("after", last)
                .finish();
            body["@nextLink"] = json!(format!("/kv?{query}"));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_refuses_malformed_escapes() {
        assert_eq!(
            percent_decode("xledger-sync%2Fstate%2Ftimesheets").as_deref(),
            Some("xledger-sync/state/timesheets")
        );
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
