//! Shared test scaffolding: a wiremock Xledger, client configurations, response bodies, and a
//! log capture.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;
use wiremock::{MockServer, Request, ResponseTemplate};
use xledger_client::{ApiKey, ClientConfig, XledgerClient};

/// The API key every test client uses; tests assert it never leaks.
pub const KEY: &str = "sk-test-7f3a9c2e51d04b86";

/// A mock Xledger of this test's own. Not wiremock's shared pool: a request that a test abandons
/// (cut by a deadline or timeout) may reach the server after the test ended, and must not be
/// counted by the next test that borrows the same pooled server.
pub async fn server() -> MockServer {
    MockServer::builder().start().await
}

/// A configuration for tests on tokio's paused clock: no timers while a request is in flight
/// (see the crate docs), fast-to-read retry settings.
pub fn paused_config(server: &MockServer) -> ClientConfig {
    paused_config_for(&format!("{}/graphql", server.uri()))
}

pub fn client(config: ClientConfig) -> XledgerClient {
    XledgerClient::new(config).expect("test configuration is valid")
}

/// HTTP 200 with a JSON body.
pub fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// `{"errors":[{"message", "code"}]}` as Xledger sends rate-limit errors.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "errors": [{ "message": message, "code": code }] })
}

/// A connection page under `data.<field>` with edges `(cursor, node)`.
pub fn page_body(field: &str, edges: &[(&str, Value)], has_next_page: bool) -> Value {
    let edges: Vec<Value> = edges.iter().map(|(cursor, node)| json!({ "cursor": cursor, "node": node })).collect();
    json!({ "data": { field: { "edges": edges, "pageInfo": { "hasNextPage": has_next_page } } } })
}

/// A change-feed page under `data.<field>` with `(cursor, dbId, mutationType)` entries.
pub fn delta_body(field: &str, entries: &[(&str, Value, &str)], has_next_page: bool) -> Value {
    json!({ "data": { field: delta_page(entries, has_next_page) } })
}

pub fn delta_page(entries: &[(&str, Value, &str)], has_next_page: bool) -> Value {
    let edges: Vec<Value> = entries
        .iter()
        .map(|(cursor, db_id, kind)| json!({ "cursor": cursor, "node": { "dbId": db_id, "mutationType": kind } }))
        .collect();
    json!({ "edges": edges, "pageInfo": { "hasNextPage": has_next_page } })
}

/// The request's `variables` object.
pub fn variables(request: &Request) -> Value {
    request.body_json::<Value>().expect("the client sends JSON")["variables"].clone()
}

/// The request's `query` document.
pub fn query(request: &Request) -> String {
    request.body_json::<Value>().expect("the client sends JSON")["query"].as_str().unwrap_or_default().to_string()
}

/// A matcher: `variables.after` equals `after` (`None`: absent or null).
pub fn after_is(after: Option<&'static str>) -> impl Fn(&Request) -> bool + Send + Sync + 'static {
    move |request: &Request| {
        let value = &variables(request)["after"];
        match after {
            Some(cursor) => value.as_str() == Some(cursor),
            None => value.is_null(),
        }
    }
}

/// Everything logged (all levels, all targets) while the guard lives, as text.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer lock")).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A bare HTTP/1.1 server on 127.0.0.1 for what wiremock cannot do: cut a body short, or hold
/// requests to observe how many are in flight. Each connection serves one request.
pub struct RawServer {
    pub url: String,
    pub max_outstanding: Arc<Mutex<usize>>,
}

impl RawServer {
    /// Answers every request with `response` (raw bytes: status line, headers, body) after
    /// `hold` on the runtime's clock, recording how many requests were waiting at once.
    pub async fn start(response: Vec<u8>, hold: Duration) -> RawServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}/graphql", listener.local_addr().expect("bound address"));
        let outstanding = Arc::new(Mutex::new(0usize));
        let max_outstanding = Arc::new(Mutex::new(0usize));
        let (current, max) = (outstanding.clone(), max_outstanding.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (current, max, response) = (current.clone(), max.clone(), response.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request_complete(&request) {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    {
                        let mut now = current.lock().expect("counter lock");
                        *now += 1;
                        let mut peak = max.lock().expect("counter lock");
                        *peak = (*peak).max(*now);
                    }
                    if !hold.is_zero() {
                        tokio::time::sleep(hold).await;
                    }
                    *current.lock().expect("counter lock") -= 1;
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        RawServer { url, max_outstanding }
    }

    pub fn max_outstanding(&self) -> usize {
        *self.max_outstanding.lock().expect("counter lock")
    }
}

/// True once `request` holds the headers and the `Content-Length` bytes of body.
fn request_complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some(end) = text.find("\r\n\r\n") else { return false };
    let length = text[..end]
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

/// A raw HTTP/1.1 response with a JSON body and `Connection: close`.
pub fn raw_json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A raw configuration pointing at `url` for paused-clock tests.
pub fn paused_config_for(url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url.parse().expect("a URL"), ApiKey::new(KEY.to_string()));
    config.request_timeout = Duration::ZERO;
    config.connect_timeout = Duration::ZERO;
    config.pool_idle_timeout = None;
    config.retry.max_attempts = 4;
    config
}
