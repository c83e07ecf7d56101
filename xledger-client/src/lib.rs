//! A GraphQL client for Xledger that survives its rate limits.
//!
//! [`XledgerClient`] posts GraphQL operations to Xledger with `Authorization: token <key>`,
//! `Accept-Encoding: gzip` and a `User-Agent` naming this tool, under a global limit of requests
//! in flight. It classifies every failure ([`ErrorKind`]), retries what can be retried (waits per
//! Xledger code, exponential backoff with jitter, bounded attempts, an overall deadline), pages
//! connections as [`Stream`](futures::Stream)s of pages, probes many change feeds in one request,
//! fetches rows by `dbId_in` chunks, and counts requests, retries and bytes on the wire
//! ([`ClientStats`]).
//!
//! What it must never do:
//! - send the API key anywhere but the configured endpoint's `Authorization` header, or over plain
//!   HTTP off loopback; the key never appears in `Debug`, `Display`, logs or errors ([`ApiKey`]);
//! - treat a response with both `data` and `errors` as a success ([`ErrorKind::PartialData`]);
//! - loop forever on a cursor that does not advance;
//! - know anything about Parquet, the lake or the sync state: it hands out pages whose nodes are
//!   JSON text ([`ItemsPage`], read in one pass, nodes borrowed from the response body).
//!
//! # Errors and retries
//!
//! | Xledger says | [`ErrorKind`] | handling |
//! |---|---|---|
//! | `BAD_REQUEST.BURST_RATE_LIMIT_REACHED` | `BurstRateLimit` | wait `burst_wait` (5 s) + jitter |
//! | `BAD_REQUEST.CONCURRENCY_LIMIT_REACHED` | `ConcurrencyLimit` | wait `concurrency_wait` (1 s) + jitter |
//! | `BAD_REQUEST.INSUFFICIENT_CREDITS` | `CreditsDeferred` | wait until `extensions.resetAt` if within `max_credit_wait`, else fail at once |
//! | "Your query timed out." | `QueryTimeout` | backoff |
//! | HTTP 429 / 5xx without GraphQL errors | `Http { status }` | backoff |
//! | connection failures, client-side timeout, truncated body | `Transport`, `RequestTimeout`, `TruncatedResponse` | backoff |
//! | validation / other `BAD_REQUEST.*` | `Validation` | never retried |
//! | HTTP 401/403, bad token | `Authentication` | never retried; the message points at `XLEDGER_API_KEY` |
//! | invalid or expired cursor (project convention) | `CursorRejected` | never retried; the engine resyncs |
//! | `data` with `errors`, unknown errors, malformed JSON | `PartialData`, `GraphQl`, `MalformedResponse` | never retried |
//!
//! # Example: paging an entity
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use xledger_client::{ApiKey, ClientConfig, XledgerClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = "https://www.xledger.net/graphql".parse()?;
//! let api_key = ApiKey::new(std::env::var("XLEDGER_API_KEY")?);
//! let client = XledgerClient::new(ClientConfig::new(endpoint, api_key))?;
//! let timesheets = xledger_model::entity("timesheets").ok_or("unknown entity")?;
//!
//! // Read the change feed's head first, so changes made while loading are not missed.
//! let head = client.deltas_head_cursor(timesheets).await?;
//!
//! let pages = client.items_pages(timesheets, 10_000, None);
//! futures::pin_mut!(pages);
//! let mut rows = 0;
//! while let Some(page) = pages.try_next().await? {
//!     rows += page.len();
//!     // Hand `page.nodes()` (each node's JSON text) to the writer; `page.last_cursor()`
//!     // is where a resumed load continues (`items_pages(.., Some(cursor))`).
//! }
//!
//! let stats = client.stats();
//! println!(
//!     "{rows} rows, head {head:?}: {} requests, {} retries, {} bytes received",
//!     stats.requests,
//!     stats.retries(),
//!     stats.bytes_received
//! );
//! # Ok(()) }
//! ```
//!
//! # Testing with a paused clock
//!
//! A paused tokio runtime that waits on a socket advances its clock straight to the next timer,
//! so any request timeout would fire at once. Tests that pause time set `request_timeout` and
//! `connect_timeout` to `Duration::ZERO` and `pool_idle_timeout` to `None` (no timers during a
//! request) and leave `deadline` unset; the client's retry waits then run on the paused clock.

mod classify;
mod client;
mod config;
mod error;
mod items;
mod pages;
mod stats;

pub use client::XledgerClient;
pub use config::{ApiKey, ClientConfig, RetryPolicy, XLEDGER_MAX_PAGE_SIZE, default_user_agent};
pub use error::{ClientError, ErrorKind, RequestContext};
pub use items::ItemsPage;
pub use pages::{FeedPosition, PROBE_OPERATION};
pub use stats::{ClientStats, EntityTraffic};
