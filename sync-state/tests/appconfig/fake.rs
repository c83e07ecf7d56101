//! A stateful App Configuration stand-in on wiremock: key-values with ETags, `If-Match` /
//! `If-None-Match`, paged lists with `@nextLink`, HMAC or bearer authentication checked on every request,
//! and scripted faults.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::{Request, Respond, ResponseTemplate};

pub const ID: &str = "fake-id";
/// base64 of "fake-app-configuration-secret"; the decoded bytes are the HMAC key.
pub const SECRET: &str = "ZmFrZS1hcHAtY29uZmlndXJhdGlvbi1zZWNyZXQ=";
pub const BEARER: &str = "fake-entra-token";
const PAGE_SIZE: usize = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub value: String,
    pub etag: String,
    pub content_type: Option<String>,
    pub last_modified: String,
}

/// What the next requests meet before the stand-in's normal behaviour.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `retry-after-ms: 0` for 429), changing nothing.
    Status(u16),
    /// Apply the request, then answer 503 as if the response was lost.
    ApplyThenFail,
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

#[derive(Clone)]
pub struct FakeAppConfig {
    state: Arc<Mutex<State>>,
    /// `None` = HMAC with [`ID`]/[`SECRET`]; `Some` = this bearer token.
    bearer: Option<String>,
}

impl FakeAppConfig {
    pub fn hmac() -> Self {
        Self { state: Arc::default(), bearer: None }
    }

    pub fn entra() -> Self {
        Self { state: Arc::default(), bearer: Some(format!("Bearer {BEARER}")) }
    }

    pub fn seed(&self, key: &str, label: Option<&str>, value: &str, last_modified: &str) {
        let mut state = self.state.lock().unwrap();
        state.next_etag += 1;
        let etag = format!("seed-{}", state.next_etag);
        state.kvs.insert(
            (key.to_owned(), label.map(str::to_owned)),
            Stored { value: value.to_owned(), etag, content_type: None, last_modified: last_modified.to_owned() },
        );
    }

    pub fn stored(&self, key: &str, label: Option<&str>) -> Option<Stored> {
        self.state.lock().unwrap().kvs.get(&(key.to_owned(), label.map(str::to_owned))).cloned()
    }

    pub fn keys(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().kvs.keys().cloned().collect()
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    /// "METHOD path?query" of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn auth_failures(&self) -> Vec<String> {
        self.state.lock().unwrap().auth_failures.clone()
    }

    fn check_auth(&self, request: &Request) -> Result<(), String> {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let authorization = header("authorization").ok_or("no Authorization")?;
        if let Some(bearer) = &self.bearer {
            return if &authorization == bearer { Ok(()) } else { Err("wrong bearer token".into()) };
        }
        // Microsoft's recipe, written again independently of the crate.
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
        let mut mac = Hmac::<Sha256>::new_from_slice(&BASE64.decode(SECRET).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let expected = format!(
            "HMAC-SHA256 Credential={ID}&SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={}",
            BASE64.encode(mac.finalize().into_bytes())
        );
        if authorization == expected { Ok(()) } else { Err(format!("bad signature for {to_sign:?}")) }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
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
        self.state.lock().unwrap().requests.push(path_and_query.clone());
        if let Err(why) = self.check_auth(request) {
            self.state.lock().unwrap().auth_failures.push(why.clone());
            return ResponseTemplate::new(401).set_body_string(why);
        }
        let fault = self.state.lock().unwrap().faults.pop_front();
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
            None => {}
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
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut state = self.state.lock().unwrap();
        let path = request.url.path();
        if path == "/kv" {
            // List: `key=<prefix>*`, `label=<label>` or `\0` for no label, `after=<key>` for later pages.
            let prefix = query.get("key").and_then(|k| k.strip_suffix('*')).unwrap_or("").to_owned();
            let label = match query.get("label").map(String::as_str) {
                Some("\0") | None => None,
                Some(label) => Some(label.to_owned()),
            };
            let after = query.get("after").cloned().unwrap_or_default();
            let matching: Vec<Value> = state
                .kvs
                .iter()
                .filter(|((key, l), _)| key.starts_with(&prefix) && *l == label && key.as_str() > after.as_str())
                .map(|((key, l), stored)| kv_json(key, l, stored))
                .collect();
            let page: Vec<Value> = matching.iter().take(PAGE_SIZE).cloned().collect();
            let mut body = json!({ "items": page });
            if matching.len() > PAGE_SIZE {
                let last = page.last().unwrap()["key"].as_str().unwrap().to_owned();
                let mut next = url::Url::parse("http://x/kv").unwrap();
                next.query_pairs_mut()
                    .append_pair("key", &format!("{prefix}*"))
                    .append_pair("label", label.as_deref().unwrap_or("\0"))
                    .append_pair("api-version", "1.0")
                    .append_pair("after", &last);
                body["@nextLink"] = json!(format!("/kv?{}", next.query().unwrap()));
            }
            return ResponseTemplate::new(200).set_body_json(body);
        }
        let Some(encoded_key) = path.strip_prefix("/kv/") else {
            return ResponseTemplate::new(404);
        };
        let key = percent_decode(encoded_key);
        let label = query.get("label").cloned();
        let id = (key.clone(), label.clone());
        let current = state.kvs.get(&id).cloned();
        let if_match = header("if-match");
        let if_none_match = header("if-none-match");
        let precondition_holds = match (&if_match, &if_none_match, &current) {
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
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                state.next_etag += 1;
                let stored = Stored {
                    value: body["value"].as_str().unwrap().to_owned(),
                    etag: format!("etag-{}", state.next_etag),
                    content_type: body["content_type"].as_str().map(str::to_owned),
                    last_modified: "2025-03-01T12:00:00+00:00".to_owned(),
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
}
