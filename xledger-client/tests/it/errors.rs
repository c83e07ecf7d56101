//! Each failure class: how it is recognised, whether and how long the client waits, and what the
//! caller gets. Waits run on tokio's paused clock: elapsed times below are virtual.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};
use xledger_client::{ClientError, ErrorKind, RequestContext, XledgerClient};

use crate::common::{KEY, RawServer, client, error_body, json_response, paused_config, paused_config_for};

const OK_BODY: &str = r#"{"data":{"ping":true}}"#;

fn ctx() -> RequestContext {
    RequestContext::entity("timesheets", "TimesheetsPage").with_page(1)
}

async fn ping(client: &XledgerClient) -> Result<String, ClientError> {
    client.execute_raw("query { ping }", json!({}), ctx()).await.map(|data| data.get().to_string())
}

/// Mounts `first` for one request, then a success for every later request.
async fn fail_once_then_succeed(server: &MockServer, first: ResponseTemplate) {
    Mock::given(method("POST")).respond_with(first).up_to_n_times(1).mount(server).await;
    Mock::given(method("POST")).respond_with(json_response(json!({"data": {"ping": true}}))).mount(server).await;
}

fn retries(client: &XledgerClient, reason: &str) -> u64 {
    client.stats().retries_by_reason.get(reason).copied().unwrap_or(0)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test(start_paused = true)]
async fn burst_rate_limit_waits_five_seconds_plus_jitter_then_retries() {
    let server = crate::common::server().await;
    fail_once_then_succeed(
        &server,
        json_response(error_body("BAD_REQUEST.BURST_RATE_LIMIT_REACHED", "Too many requests")),
    )
    .await;
    let client = client(paused_config(&server));

    let start = Instant::now();
    assert_eq!(ping(&client).await.ok().as_deref(), Some(r#"{"ping":true}"#));
    let waited = start.elapsed();

    assert!(waited >= Duration::from_secs(5) && waited <= Duration::from_secs(6), "waited {waited:?}");
    assert_eq!(retries(&client, "burst_rate_limit"), 1);
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_in_extensions_code_waits_one_second_plus_jitter() {
    let server = crate::common::server().await;
    let body =
        json!({"errors": [{"message": "busy", "extensions": {"code": "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"}}]});
    fail_once_then_succeed(&server, json_response(body)).await;
    let client = client(paused_config(&server));

    let start = Instant::now();
    assert!(ping(&client).await.is_ok());
    let waited = start.elapsed();

    assert!(waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1200), "waited {waited:?}");
    assert_eq!(retries(&client, "concurrency_limit"), 1);
}

#[tokio::test(start_paused = true)]
async fn insufficient_credits_wait_until_reset_at_when_within_the_maximum() {
    let server = crate::common::server().await;
    let reset_at = Utc::now() + chrono::Duration::seconds(90);
    let body = json!({"errors": [{"message": "No credits", "code": "BAD_REQUEST.INSUFFICIENT_CREDITS",
                                  "extensions": {"resetAt": rfc3339(reset_at)}}]});
    fail_once_then_succeed(&server, json_response(body)).await;
    let client = client(paused_config(&server));

    let start = Instant::now();
    assert!(ping(&client).await.is_ok());
    let waited = start.elapsed();

    // resetAt is rounded down to whole seconds; the client adds a one-second margin.
    assert!(waited >= Duration::from_secs(89) && waited <= Duration::from_secs(92), "waited {waited:?}");
    assert_eq!(retries(&client, "insufficient_credits"), 1);
}

#[tokio::test(start_paused = true)]
async fn insufficient_credits_beyond_the_maximum_wait_are_deferred_at_once() {
    let server = crate::common::server().await;
    let reset_at = DateTime::parse_from_rfc3339("2099-11-28T13:00:00+01:00").map(|t| t.with_timezone(&Utc)).ok();
    let body = json!({"errors": [{"message": "No credits", "code": "BAD_REQUEST.INSUFFICIENT_CREDITS",
                                  "extensions": {"resetAt": "2099-11-28T13:00:00+01:00"}}]});
    Mock::given(method("POST")).respond_with(json_response(body)).expect(1).mount(&server).await;
    let client = client(paused_config(&server));

    let start = Instant::now();
    let err = ping(&client).await.expect_err("credits an hour away are not waited for");

    assert_eq!(err.kind(), &ErrorKind::CreditsDeferred { reset_at });
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(!err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn insufficient_credits_without_reset_at_are_deferred_with_no_time() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(error_body("BAD_REQUEST.INSUFFICIENT_CREDITS", "No credits")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("no resetAt, nothing to wait for");

    assert_eq!(err.kind(), &ErrorKind::CreditsDeferred { reset_at: None });
}

#[tokio::test(start_paused = true)]
async fn server_query_timeout_is_retried_with_backoff() {
    let server = crate::common::server().await;
    fail_once_then_succeed(&server, json_response(json!({"errors": [{"message": "Your query timed out."}]}))).await;
    let client = client(paused_config(&server));

    assert!(ping(&client).await.is_ok());

    assert_eq!(retries(&client, "query_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn validation_errors_are_never_retried() {
    let server = crate::common::server().await;
    let body = json!({"errors": [{"message": "Argument 'first' has invalid value",
                                  "extensions": {"code": "ARGUMENTS_OF_CORRECT_TYPE"}}]});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("validation fails");

    assert_eq!(err.kind(), &ErrorKind::Validation);
    assert!(err.message().contains("Argument 'first' has invalid value"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn authentication_failure_points_at_the_key_and_header_and_is_not_retried() {
    let server = crate::common::server().await;
    let body = json!({"errors": [{"message": "Bad format for API Token. Expected header: \"Authorization: token <your-token>\""}]});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("the key is refused");

    assert_eq!(err.kind(), &ErrorKind::Authentication);
    let text = err.to_string();
    assert!(text.contains("XLEDGER_API_KEY") && text.contains("Authorization: token <key>"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn http_429_is_retried_then_succeeds() {
    let server = crate::common::server().await;
    fail_once_then_succeed(&server, ResponseTemplate::new(429).set_body_string("slow down")).await;
    let client = client(paused_config(&server));

    assert!(ping(&client).await.is_ok());

    assert_eq!(retries(&client, "http_429"), 1);
}

#[tokio::test(start_paused = true)]
async fn http_5xx_is_retried_until_max_attempts_then_reported() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>maintenance</html>"))
        .expect(4)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("always unavailable");

    assert_eq!(err.kind(), &ErrorKind::Http { status: 503 });
    assert_eq!(err.attempts(), 4);
    assert_eq!(retries(&client, "http_503"), 3);
    assert!(err.to_string().contains("(after 4 attempts)"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn connection_refused_is_a_retried_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}/graphql", listener.local_addr().expect("bound address"));
    drop(listener);
    let mut config = paused_config_for(&url);
    config.retry.max_attempts = 3;
    let client = client(config);

    let err = ping(&client).await.expect_err("nothing listens");

    assert_eq!(err.kind(), &ErrorKind::Transport);
    assert_eq!(retries(&client, "transport"), 2);
}

#[tokio::test(start_paused = true)]
async fn request_timeout_is_retried_and_then_reported() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(json!({"data": {}})).set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    let mut config = paused_config(&server);
    config.request_timeout = Duration::from_secs(30);
    config.retry.max_attempts = 2;
    let client = client(config);

    let err = ping(&client).await.expect_err("the server never answers in time");

    assert_eq!(err.kind(), &ErrorKind::RequestTimeout);
    assert_eq!(retries(&client, "request_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn truncated_json_is_retried_then_succeeds() {
    let server = crate::common::server().await;
    fail_once_then_succeed(&server, ResponseTemplate::new(200).set_body_raw(r#"{"data":{"ping":"#, "application/json"))
        .await;
    let client = client(paused_config(&server));

    assert!(ping(&client).await.is_ok());

    assert_eq!(retries(&client, "truncated_response"), 1);
}

#[tokio::test(start_paused = true)]
async fn body_shorter_than_its_content_length_is_a_transport_error() {
    let mut cut = raw_head_with_length(OK_BODY.len() + 50);
    cut.extend_from_slice(OK_BODY.as_bytes());
    let server = RawServer::start(cut, Duration::ZERO).await;
    let mut config = paused_config_for(&server.url);
    config.retry.max_attempts = 2;
    let client = client(config);

    let err = ping(&client).await.expect_err("the connection closes mid-body");

    assert_eq!(err.kind(), &ErrorKind::Transport);
    assert_eq!(retries(&client, "transport"), 1);
}

fn raw_head_with_length(length: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(start_paused = true)]
async fn malformed_json_is_not_retried() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"data":{"ping":true}}}"#, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("trailing garbage");

    assert_eq!(err.kind(), &ErrorKind::MalformedResponse);
}

#[tokio::test(start_paused = true)]
async fn data_together_with_errors_is_an_error_not_a_partial_success() {
    let server = crate::common::server().await;
    let body = json!({"data": {"ping": true}, "errors": [{"message": "field failed", "path": ["ping"]}]});
    Mock::given(method("POST")).respond_with(json_response(body)).expect(1).mount(&server).await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("partial data is refused");

    assert_eq!(err.kind(), &ErrorKind::PartialData);
    assert!(err.message().contains("field failed"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn unrecognised_errors_without_data_are_not_retried() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(json!({"data": null, "errors": [{"message": "something odd"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("unknown error");

    assert_eq!(err.kind(), &ErrorKind::GraphQl);
}

#[tokio::test(start_paused = true)]
async fn cursor_rejection_is_recognised_by_code_and_by_message_and_not_retried() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(error_body("BAD_REQUEST.INVALID_CURSOR", "no such position")))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json_response(json!({"errors": [{"message": "The cursor 'abc' has expired."}]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let by_code = ping(&client).await.expect_err("rejected by code");
    let by_message = ping(&client).await.expect_err("rejected by message");

    assert_eq!(by_code.kind(), &ErrorKind::CursorRejected);
    assert_eq!(by_message.kind(), &ErrorKind::CursorRejected);
}

/// Real clock: the deadline is far enough away for one loopback request, and the point is that
/// the client gives up without sleeping at all.
#[tokio::test]
async fn a_retry_wait_that_would_pass_the_deadline_fails_at_once() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(error_body("BAD_REQUEST.BURST_RATE_LIMIT_REACHED", "Too many requests")))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = paused_config(&server);
    config.deadline = Some(Instant::now() + Duration::from_secs(60));
    config.retry.burst_wait = Duration::from_secs(3600);
    let client = client(config);

    let err = ping(&client).await.expect_err("the wait would pass the deadline");

    assert_eq!(err.kind(), &ErrorKind::DeadlineExceeded);
    assert!(err.message().contains("burst rate limit"), "{err}");
    assert_eq!(client.stats().retries(), 0);
}

/// On the paused clock the deadline timer fires as soon as the runtime waits on the socket, which
/// may be before the server has even read the request: so this checks the outcome, not the count.
#[tokio::test(start_paused = true)]
async fn a_request_still_running_at_the_deadline_is_cut() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(json!({"data": {}})).set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    let mut config = paused_config(&server);
    config.deadline = Some(Instant::now() + Duration::from_secs(5));
    let client = client(config);

    let start = Instant::now();
    let err = ping(&client).await.expect_err("the server answers after the deadline");

    assert_eq!(err.kind(), &ErrorKind::DeadlineExceeded);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(err.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn errors_name_entity_operation_and_page() {
    let server = crate::common::server().await;
    Mock::given(method("POST"))
        .respond_with(json_response(json!({"errors": [{"message": "Cannot query field 'x'",
                                                        "extensions": {"code": "FIELDS_ON_CORRECT_TYPE"}}]})))
        .mount(&server)
        .await;
    let client = client(paused_config(&server));

    let err = ping(&client).await.expect_err("validation fails");

    assert_eq!(
        err.to_string(),
        "entity timesheets, operation TimesheetsPage, page 1: query refused by validation: \
         Cannot query field 'x' [FIELDS_ON_CORRECT_TYPE]"
    );
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test(start_paused = true)]
async fn nothing_is_sent_once_the_deadline_has_passed() {
    let server = crate::common::server().await;
    Mock::given(method("POST")).respond_with(json_response(json!({"data": {}}))).expect(0).mount(&server).await;
    let mut config = paused_config(&server);
    config.deadline = Some(Instant::now());
    let client = client(config);

    let err = ping(&client).await.expect_err("too late to start");

    assert_eq!(err.kind(), &ErrorKind::DeadlineExceeded);
    assert_eq!(client.stats().requests, 0);
}
