//! What goes on the wire: headers, gzip, byte accounting, the in-flight limit, endpoint refusal,
//! and the API key kept out of every formatted error and log line.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};
use xledger_client::{ApiKey, ClientConfig, ErrorKind, RequestContext, XledgerClient, default_user_agent};

use crate::common::{
    KEY, LogCapture, RawServer, client, error_body, json_response, paused_config, paused_config_for, raw_json_response,
};

fn ctx() -> RequestContext {
    RequestContext::operation("Ping")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("write to a Vec");
    encoder.finish().expect("finish a Vec")
}

#[tokio::test(start_paused = true)]
async fn sends_token_authorization_gzip_and_user_agent_headers() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(header("authorization", format!("token {KEY}").as_str()))
        .and(header("accept-encoding", "gzip"))
        .and(header("content-type", "application/json"))
        .and(header("user-agent", default_user_agent().as_str()))
        .respond_with(json_response(json!({"data": {"ping": true}})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let data = client.execute_raw("query { ping }", json!({}), ctx()).await.map(|d| d.get().to_string());

    assert_eq!(data.ok().as_deref(), Some(r#"{"ping":true}"#));
    assert!(default_user_agent().starts_with("xledger-sync/"));
}

#[tokio::test(start_paused = true)]
async fn gzip_bodies_are_decoded_and_counted_compressed() {
    let server = crate::common::server().await;
    let nodes: Vec<_> = (0..200).map(|i| json!({"dbId": i, "description": "the same words again and again"})).collect();
    let plain = serde_json::to_vec(&json!({"data": {"rows": nodes}})).expect("serialize");
    let compressed = gzip(&plain);
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(compressed.clone(), "application/json")
                .insert_header("content-encoding", "gzip"),
        )
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let data = client.execute_raw("query { rows }", json!({"a": 1}), ctx()).await.expect("a gzipped answer");

    let rows: serde_json::Value = serde_json::from_str(data.get()).expect("data is JSON");
    assert_eq!(rows["rows"].as_array().map(Vec::len), Some(200));
    let sent = server.received_requests().await.expect("recording is on")[0].body.len() as u64;
    let stats = client.stats();
    assert!(compressed.len() * 5 < plain.len(), "the fixture compresses");
    assert_eq!(stats.bytes_received, compressed.len() as u64);
    assert_eq!(stats.bytes_sent, sent);
    assert_eq!(stats.requests, 1);
}

#[tokio::test(start_paused = true)]
async fn truncated_gzip_body_is_a_truncated_response() {
    let server = crate::common::server().await;
    let compressed = gzip(&serde_json::to_vec(&json!({"data": {"text": "x".repeat(5000)}})).expect("serialize"));
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(compressed[..compressed.len() / 2].to_vec(), "application/json")
                .insert_header("content-encoding", "gzip"),
        )
        .mount(&server)
        .await;
    let mut config = paused_config(&server);
    config.retry.max_attempts = 1;
    let client = client(config);

    let err = client.execute_raw("query { text }", json!({}), ctx()).await.expect_err("half a gzip stream");

    assert_eq!(err.kind(), &ErrorKind::TruncatedResponse);
}

#[test]
fn plain_http_off_loopback_is_refused() {
    let config =
        ClientConfig::new("http://demo.xledger.net/graphql".parse().expect("URL"), ApiKey::new(KEY.to_string()));

    let err = XledgerClient::new(config).expect_err("the key would travel in clear text");

    assert_eq!(err.kind(), &ErrorKind::InsecureEndpoint);
    assert!(err.to_string().contains("http://demo.xledger.net"), "{err}");
}

#[test]
fn zero_in_flight_limit_is_an_invalid_configuration() {
    let mut config =
        ClientConfig::new("https://demo.xledger.net/graphql".parse().expect("URL"), ApiKey::new(KEY.to_string()));
    config.max_in_flight = 0;

    let err = XledgerClient::new(config).expect_err("nothing could ever be sent");

    assert_eq!(err.kind(), &ErrorKind::InvalidConfig);
}

#[tokio::test(start_paused = true)]
async fn in_flight_requests_never_exceed_the_limit_across_clones() {
    // The server holds each request one (virtual) second, so without the limit all six would be
    // waiting at once; loopback writes are visible to the next poll, so none can arrive late.
    let server = RawServer::start(raw_json_response(r#"{"data":{"ping":true}}"#), Duration::from_secs(1)).await;
    let mut config = paused_config_for(&server.url);
    config.max_in_flight = 2;
    let client = client(config);

    let calls = (0..6).map(|_| {
        let client = client.clone();
        async move { client.execute_raw("query { ping }", json!({}), ctx()).await }
    });
    let results = futures::future::join_all(calls).await;

    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.max_outstanding(), 2);
    assert_eq!(client.stats().requests, 6);
}

#[test]
fn the_key_is_redacted_from_debug_and_display() {
    let key = ApiKey::new(KEY.to_string());
    let config = ClientConfig::new("https://demo.xledger.net/graphql".parse().expect("URL"), key.clone());
    let client = XledgerClient::new(config.clone()).expect("valid configuration");

    for text in [format!("{key}"), format!("{key:?}"), format!("{config:?}"), format!("{client:?}")] {
        assert!(!text.contains(KEY), "{text}");
    }
    assert_eq!(format!("{key:?}"), "ApiKey(***)");
}

#[tokio::test(start_paused = true)]
async fn the_key_never_appears_in_errors_or_logs_even_when_the_server_echoes_it() {
    let (logs, _guard) = LogCapture::install();
    let server = crate::common::server().await;
    let echo = format!("Too many requests for token {KEY}");
    Mock::given(method("POST"))
        .respond_with(json_response(error_body("BAD_REQUEST.BURST_RATE_LIMIT_REACHED", &echo)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("invalid token {KEY}")))
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = client.execute_raw("query { ping }", json!({}), ctx()).await.expect_err("refused after a retry");

    assert_eq!(err.kind(), &ErrorKind::Authentication);
    let logged = logs.text();
    assert!(logged.contains("retrying") && logged.contains("burst_rate_limit"), "the retry is logged: {logged}");
    for text in [err.to_string(), format!("{err:?}"), logged] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
    }
}
