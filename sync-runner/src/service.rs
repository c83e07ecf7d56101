//! The engine behind the Azure Functions handler (`xledger-sync serve`).

use std::sync::Arc;

use lake_writer::Lake;
use sync_state::StateStore;
use xledger_model::EntitySpec;

use crate::app;
use crate::cli::GlobalArgs;
use sync_engine::{Engine, PassReport, PassRequest, StopSignal};

use crate::serve::{
    self, PassInvocation, PassOutcome, PassStatus, ServeConfig, ServiceError, ServiceErrorKind, SyncService,
};

/// Implements [`SyncService`] with the real engine: each pass gets a client bound to its deadline;
/// the lake and the state store are opened once.
pub struct EngineService {
    global: GlobalArgs,
    lake: Lake,
    tables: Option<Arc<lake_tables::Tables>>,
    state: Arc<dyn StateStore>,
}

impl EngineService {
    pub async fn new(global: GlobalArgs) -> anyhow::Result<Self> {
        // Fail at start-up (visible in the host's log) rather than on the first timer.
        app::api_key(&global)?;
        let lake = app::lake(&global).await?;
        let tables = app::tables(&global, &lake).await?;
        let state = app::state(&global).await?;
        Ok(EngineService { global, lake, tables, state })
    }

    fn entities(&self, names: &[String]) -> Result<Vec<&'static EntitySpec>, ServiceError> {
        app::select_entities(names).map_err(|e| ServiceError::new(ServiceErrorKind::InvalidRequest, e.to_string()))
    }
}

#[async_trait::async_trait]
impl SyncService for EngineService {
    async fn run_pass(&self, request: PassInvocation) -> PassOutcome {
        let entities = match self.entities(&request.entities) {
            Ok(e) => e,
            Err(err) => {
                return PassOutcome {
                    status: PassStatus::Failed,
                    summary: serde_json::Value::Null,
                    message: err.message,
                };
            }
        };
        let key = match app::api_key(&self.global) {
            Ok(key) => key,
            Err(err) => {
                return PassOutcome {
                    status: PassStatus::Failed,
                    summary: serde_json::Value::Null,
                    message: err.to_string(),
                };
            }
        };
        let client = match app::client(&self.global, &self.global.endpoint, key, Some(request.deadline)) {
            Ok(c) => c,
            Err(err) => {
                return PassOutcome {
                    status: PassStatus::Failed,
                    summary: serde_json::Value::Null,
                    message: format!("{err:#}"),
                };
            }
        };
        let mut engine = Engine::new(client, self.lake.clone(), self.state.clone(), app::settings(&self.global));
        if let Some(tables) = &self.tables {
            engine = engine.with_tables(tables.clone());
        }
        let stop = StopSignal::new(Some(request.deadline));
        tracing::info!(trigger = %request.trigger, full_load = ?request.full_load, "pass starting");
        let report = engine.run_pass(PassRequest { entities, full_load: request.full_load }, stop).await;
        drop(engine);
        // The host keeps this process between timer runs: hand the pass's buffers back.
        crate::memory::release();
        outcome(&report)
    }

    async fn status(&self) -> Result<serde_json::Value, ServiceError> {
        let entities = self.entities(&[])?;
        let mut out = Vec::new();
        for e in entities {
            let state = self
                .state
                .get(e.name)
                .await
                .map_err(|err| ServiceError::new(ServiceErrorKind::Unavailable, err.to_string()))?;
            let files = self
                .lake
                .list(e.name)
                .await
                .map_err(|err| ServiceError::new(ServiceErrorKind::Unavailable, err.to_string()))?;
            out.push(serde_json::json!({
                "entity": e.name,
                "state": state.map(|v| serde_json::to_value(&v.value).unwrap_or(serde_json::Value::Null)),
                "files": files.iter().filter(|f| !f.is_temp).count(),
            }));
        }
        Ok(serde_json::json!({ "lake": self.lake.describe(), "state": self.state.describe(), "entities": out }))
    }

    async fn reset_state(&self, entities: Vec<String>) -> Result<serde_json::Value, ServiceError> {
        let selected = self.entities(&entities)?;
        let done = app::reset_state(&self.global, &selected)
            .await
            .map_err(|err| ServiceError::new(ServiceErrorKind::Unavailable, format!("{err:#}")))?;
        Ok(serde_json::json!({ "reset": done }))
    }

    async fn wipe(&self, entities: Vec<String>) -> Result<serde_json::Value, ServiceError> {
        let selected = self.entities(&entities)?;
        let deleted = app::wipe(&self.global, &selected)
            .await
            .map_err(|err| ServiceError::new(ServiceErrorKind::Unavailable, format!("{err:#}")))?;
        Ok(
            serde_json::json!({ "deleted_files": deleted, "entities": selected.iter().map(|e| e.name).collect::<Vec<_>>() }),
        )
    }
}

fn outcome(report: &PassReport) -> PassOutcome {
    let status: PassStatus = report.status();
    let summary = report.to_json();
    tracing::info!(event = "pass_summary", summary = %summary, "pass finished: {}", report.status().as_str());
    let total = report.total();
    let message = format!(
        "{}: {} added, {} updated, {} deleted, {} files, {} requests in {:.1}s",
        report.status().as_str(),
        total.added,
        total.updated,
        total.deleted,
        total.files,
        report.requests,
        report.duration.as_secs_f64()
    );
    PassOutcome { status, summary, message }
}

/// `xledger-sync serve`: reads the host's settings and serves until the host stops us.
pub async fn serve_command(global: &GlobalArgs) -> anyhow::Result<()> {
    let config = ServeConfig::from_env_and_host_json()?;
    let service = EngineService::new(global.clone()).await?;
    serve::serve(Arc::new(service), config).await
}
