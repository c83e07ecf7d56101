//! The home of the workspace's shared test helpers: stand-ins and fixtures that more than one crate's
//! tests use, so no test compiles another crate's files through `#[path]`.
//!
//! Used only as a dev-dependency (`publish = false`); nothing here may reach a shipped binary.
//!
//! - [`app_config`]: a stateful Azure App Configuration stand-in on wiremock (key-values with ETags,
//!   conditional writes, paged lists, HMAC or bearer authentication checked on every request, scripted
//!   faults), used by `sync-state`'s and `sync-runner`'s tests.
//! - [`env`]: a simulator with a temporary lake and state, a client with test-sized waits, and the
//!   check that the lake rebuilds to the simulator's truth (the end-to-end tests of sync-engine and
//!   sync-runner).
//! - [`readers`]: DuckDB's delta extension and Python `deltalake` read current-state tables, whose
//!   rows must equal the expected ones (installed by `cargo xtask test`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use test_support::app_config::FakeAppConfig;
//!
//! let server = wiremock::MockServer::start().await;
//! let fake = FakeAppConfig::hmac();
//! wiremock::Mock::given(wiremock::matchers::any()).respond_with(fake.clone()).mount(&server).await;
//! fake.seed("timesheets-deltas_cursor", None, "cursor-42", "2024-07-12T21:17:09+00:00");
//!
//! // Requests without a valid signature are refused, as the real service does.
//! let status = reqwest::get(format!("{}/kv/timesheets-deltas_cursor?api-version=1.0", server.uri()))
//!     .await
//!     .unwrap()
//!     .status();
//! assert_eq!(status, 401);
//! assert_eq!(fake.stored("timesheets-deltas_cursor", None).unwrap().value, "cursor-42");
//! assert_eq!(fake.auth_failures(), ["no Authorization"]);
//! # }
//! ```

pub mod app_config;
pub mod env;
pub mod readers;
