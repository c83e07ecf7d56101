//! Azure Functions custom handler: `xledger-sync serve` answers the Functions host's invocations
//! by running sync passes and admin actions on a [`SyncService`] (the engine).
//!
//! The host starts the binary with `serve` (see `functions/host.json`), waits until it listens on
//! `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`, then POSTs every invocation to `/<functionName>`.
//! The functions are listed in [`functions::FUNCTIONS`]; their `function.json` files live in
//! `functions/` at the workspace root and `cargo xtask package` zips them with the binary.
//!
//! # Behaviour
//! - **Timer `sync_timer`** (schedule: app setting `SYNC_SCHEDULE`, default hourly
//!   [`functions::DEFAULT_SYNC_SCHEDULE`]; entities: app setting `SYNC_ENTITIES`, default all):
//!   one incremental pass with `deadline = arrival + functionTimeout − margin`
//!   ([`ServeConfig::pass_budget`]). `Completed`, `Partial` (the deadline came first; the next
//!   trigger resumes) and `Deferred` (Xledger credits exhausted) answer 200 with the outcome as
//!   `ReturnValue`; `Failed` answers 500 so the host records a failed run, and the error also goes
//!   to stderr (the host drops `Logs` of failed invocations and logs stderr lines with "error" at
//!   Error level). A pass that has not returned half a margin after its deadline is reported as a
//!   500 while it keeps running in the background; a timer that fires while a pass or admin action
//!   runs in this process answers 200 `{"status": "skipped"}` at once (the engine's leases protect
//!   across processes).
//! - **Admin HTTP functions** (`authLevel: admin`, so only the master key gets through the host):
//!   `GET /api/sync/status` (200), `POST /api/sync/reset-state?entities=a,b|all=true` (200),
//!   `POST /api/sync/wipe?entities=a,b|all=true&confirm=wipe` (202) and
//!   `POST /api/sync/resync/{entity}` (202). Wipe and resync outlive the host's 230 s HTTP cap,
//!   so they answer 202 and continue in the background (progress: `sync/status`); a resync cut
//!   short by the function timeout or a scale-in resumes on the next timer. While anything runs,
//!   reset/wipe/resync answer 409.
//! - **Refusals**: a request without the host's `X-Azure-Functions-InvocationId` header or
//!   without the `{Data, Metadata}` shape answers 400, an unknown function 404; an admin request
//!   whose `Identities` lack the host's admin-level key claim answers 403 (defence in depth should
//!   `authLevel` ever be loosened), a wrong method 405.
//!
//! This module must never log secrets or the query string of a request URL (keys can travel as
//! `?code=`), and never run two passes at once in one process.

mod config;
pub mod functions;
mod handler;
mod protocol;

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
pub use sync_engine::{FullLoad, PassStatus};

pub use config::{
    APP_ROOT_VAR, ConfigError, DEADLINE_MARGIN_VAR, DEFAULT_DEADLINE_MARGIN, DEFAULT_FUNCTION_TIMEOUT,
    FUNCTION_TIMEOUT_OVERRIDE_VAR, KEY_VAULT_REFERENCE_PREFIX, PORT_VAR, SYNC_ENTITIES_VAR, ServeConfig,
    UNBOUNDED_FUNCTION_TIMEOUT, parse_function_timeout,
};

/// The engine as the handler sees it. Object-safe (`Arc<dyn SyncService>`); the engine
/// implements it with `#[async_trait]`.
///
/// Error and summary texts reach the admin caller and the logs: they must never contain secrets.
#[async_trait::async_trait]
pub trait SyncService: Send + Sync + 'static {
    /// One sync pass: incremental for a timer, or a full resync of the named entities. Must
    /// return before `request.deadline`, leaving state consistent (a later pass resumes).
    async fn run_pass(&self, request: PassInvocation) -> PassOutcome;
    /// The sync state of every entity, as JSON for `GET /api/sync/status`.
    async fn status(&self) -> Result<serde_json::Value, ServiceError>;
    /// Forgets the sync state of `entities` (empty = all); the next pass starts a full sync.
    async fn reset_state(&self, entities: Vec<String>) -> Result<serde_json::Value, ServiceError>;
    /// Deletes the lake files and state of `entities` (empty = all).
    async fn wipe(&self, entities: Vec<String>) -> Result<serde_json::Value, ServiceError>;
}

/// A pass as the host asked for it (the engine's [`sync_engine::PassRequest`] once the entity
/// names are checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassInvocation {
    /// Entities to sync by name, as the settings or the admin request name them; empty = all.
    pub entities: Vec<String>,
    /// [`FullLoad::Forced`] for a full resync, otherwise the engine decides.
    pub full_load: FullLoad,
    /// When the pass must have stopped, at a page boundary with state intact.
    pub deadline: tokio::time::Instant,
    /// The function that asked (`sync_timer`, `sync_resync`), for logs and leases.
    pub trigger: String,
}

/// The engine's report of one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct PassOutcome {
    /// How it ended.
    pub status: PassStatus,
    /// Per-entity figures (rows, files, requests), passed through to the host and the logs.
    pub summary: serde_json::Value,
    /// One line for people.
    pub message: String,
}

/// What kind of failure a [`ServiceError`] is; decides the admin function's HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceErrorKind {
    /// The request names something invalid (400).
    InvalidRequest,
    /// Another process holds the entity's lease, or a conflicting run is in progress (409).
    Conflict,
    /// A dependency (state store, lake, Xledger) is unavailable; retry later (503).
    Unavailable,
    /// Anything else (500).
    Internal,
}

/// An admin action that failed. The message reaches the caller: no secrets in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ServiceErrorKind,
    /// What failed and where.
    pub message: String,
}

impl ServiceError {
    /// A failure of the given kind.
    ///
    /// ```
    /// use sync_runner::serve::{ServiceError, ServiceErrorKind};
    ///
    /// let err = ServiceError::new(ServiceErrorKind::Conflict, "projects: lease held by another instance");
    /// assert_eq!(err.to_string(), "projects: lease held by another instance");
    /// ```
    pub fn new(kind: ServiceErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// An internal failure from any error, with its causes (`{:#}` of an `anyhow::Error`).
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(ServiceErrorKind::Internal, format!("{err:#}"))
    }
}

/// The handler's routes: `POST /{functionName}` for every function, 404 elsewhere (the host's
/// readiness ping `GET /` included: any answer means "listening").
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sync_runner::serve::{router, PassInvocation, PassOutcome, PassStatus, ServeConfig, ServiceError, SyncService};
///
/// struct Idle;
/// #[async_trait::async_trait]
/// impl SyncService for Idle {
///     async fn run_pass(&self, _: PassInvocation) -> PassOutcome {
///         PassOutcome { status: PassStatus::Completed, summary: serde_json::json!({}), message: "idle".into() }
///     }
///     async fn status(&self) -> Result<serde_json::Value, ServiceError> { Ok(serde_json::json!({})) }
///     async fn reset_state(&self, _: Vec<String>) -> Result<serde_json::Value, ServiceError> { Ok(serde_json::json!({})) }
///     async fn wipe(&self, _: Vec<String>) -> Result<serde_json::Value, ServiceError> { Ok(serde_json::json!({})) }
/// }
///
/// let app: axum::Router = router(Arc::new(Idle), ServeConfig::new(7071, Duration::from_secs(1800)));
/// ```
pub fn router(service: Arc<dyn SyncService>, config: ServeConfig) -> axum::Router {
    handler::router(service, config)
}

/// Listens on `127.0.0.1:<config.port>` and answers invocations until SIGTERM (or Ctrl-C), then
/// stops accepting and lets invocations in flight finish.
pub async fn serve(service: Arc<dyn SyncService>, config: ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{} ({PORT_VAR})", config.port))?;
    serve_on(listener, service, config, Box::pin(shutdown_signal())).await
}

/// [`serve`] on a listener the caller bound, stopping when `shutdown` completes (tests use a
/// loopback listener on port 0 and a oneshot channel).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    service: Arc<dyn SyncService>,
    config: ServeConfig,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the listener's address")?;
    tracing::info!(
        %address,
        function_timeout_secs = config.function_timeout.as_secs(),
        pass_budget_secs = config.pass_budget().as_secs(),
        timer_entities = ?config.timer_entities,
        "custom handler listening"
    );
    axum::serve(listener, router(service, config))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the custom handler")?;
    tracing::info!("custom handler stopped");
    Ok(())
}

/// Completes on SIGTERM (the host stopping or scaling in) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = ctrl_c_or_never() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; stopping on Ctrl-C only");
                ctrl_c_or_never().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c_or_never().await;
}

/// Completes on Ctrl-C; never, if Ctrl-C cannot be watched (rather than stopping at once).
async fn ctrl_c_or_never() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
