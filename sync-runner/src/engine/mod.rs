//! The sync engine: full loads, resumed full loads and incremental passes, each row exactly once.
//!
//! A pass, for the entities asked for:
//! 1. takes each entity's lease in the state store (one process per entity at a time);
//! 2. reads each entity's state and reconciles a commit that a crash interrupted (a `pending`
//!    file recorded in state before the file was committed: adopted when the file is visible,
//!    forgotten when it is not);
//! 3. decides per entity: resume a full sync, start one (first run, `--full`, full-only entity,
//!    or a gap in the change feed), or go incremental;
//! 4. probes the change feeds of every incremental entity in **one** GraphQL request;
//! 5. runs the entities concurrently (bounded), each committing files before moving its state.
//!
//! Invariants (the lake contract in design.md):
//! - state moves only after the file it covers is committed; before a commit the file's name
//!   and the state it leads to are recorded as `pending`, so a crash between commit and state save
//!   neither loses nor repeats a range;
//! - a full sync is complete only when its manifest exists; the state then switches to
//!   incremental at the feed's head cursor read before the first page;
//! - stopping (deadline, signal, credits) happens at page boundaries: an unfinished file is
//!   aborted, never made visible.

pub mod collapse;
mod entity;
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lake_writer::{Lake, WriterOptions};
use sync_state::{Lease, StateError, StateStore};
use tokio::time::Instant;
use xledger_client::{ErrorKind, FeedPosition, XledgerClient};
use xledger_model::EntitySpec;
use xledger_model::page::DeltaPage;

pub use entity::Plan;
pub use report::{EntityOutcome, EntityReport, Mode, PassReport, PassStatus};

use crate::progress::Progress;

/// Engine settings (from flags and environment variables; see `cli`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Items and deltas page size (`first`), at most 10 000.
    pub page_size: usize,
    /// dbIds per `dbId_in` request.
    pub db_id_chunk_size: usize,
    /// Parquet writer settings, including the part size (rows) of full syncs.
    pub writer: WriterOptions,
    /// Entities synced at the same time.
    pub entity_concurrency: usize,
    /// How long the change feed keeps entries; an older cursor means a gap → full sync.
    pub delta_retention: Duration,
    /// How long to wait for another process's lease before giving up.
    pub lease_wait: Duration,
    /// Lease time-to-live; renewed while the pass runs.
    pub lease_ttl: Duration,
    /// Who holds leases taken by this process (host, pid, process start, a random id).
    pub holder: sync_state::LeaseHolder,
    /// Feed entries collapsed into one `sync_changes` file at most; more make further files.
    pub max_changes_per_file: usize,
}

/// Why a pass stops early. Checked at page boundaries.
#[derive(Debug, Default)]
pub struct StopSignal {
    reason: AtomicU8,
    deadline: Option<Instant>,
}

/// The reason a pass stopped before finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Deadline,
    Signal,
    CreditsExhausted,
    LeaseLost,
}

impl StopSignal {
    pub fn new(deadline: Option<Instant>) -> Arc<Self> {
        Arc::new(StopSignal { reason: AtomicU8::new(0), deadline })
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Asks every entity to stop at its next page boundary.
    pub fn stop(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Deadline => 1,
            StopReason::Signal => 2,
            StopReason::CreditsExhausted => 3,
            StopReason::LeaseLost => 4,
        };
        let _ = self.reason.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// `Some` once the pass should stop.
    pub fn check(&self) -> Option<StopReason> {
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            self.stop(StopReason::Deadline);
        }
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Deadline),
            2 => Some(StopReason::Signal),
            3 => Some(StopReason::CreditsExhausted),
            4 => Some(StopReason::LeaseLost),
            _ => None,
        }
    }
}

/// What a pass is asked to do.
#[derive(Debug, Clone)]
pub struct PassRequest {
    pub entities: Vec<&'static EntitySpec>,
    /// Force a new full sync of every entity asked for.
    pub full: bool,
}

/// The engine: one Xledger client, one lake, one state store.
#[derive(Clone)]
pub struct Engine {
    pub(crate) client: XledgerClient,
    pub(crate) lake: Lake,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) progress: Progress,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("lake", &self.lake.describe())
            .field("state", &self.state.describe())
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        client: XledgerClient,
        lake: Lake,
        state: Arc<dyn StateStore>,
        config: EngineConfig,
        progress: Progress,
    ) -> Self {
        Engine { client, lake, state, config: Arc::new(config), progress }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn state_store(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    pub fn client(&self) -> &XledgerClient {
        &self.client
    }

    /// Runs one pass. Never panics on bad data or API trouble: every entity gets an outcome.
    pub async fn run_pass(&self, request: PassRequest, stop: Arc<StopSignal>) -> PassReport {
        let started_at = Utc::now();
        let started = Instant::now();
        let stats_before = self.client.stats();

        let mut reports: BTreeMap<&'static str, EntityReport> = BTreeMap::new();
        let mut leased: Vec<(&'static EntitySpec, Lease)> = Vec::new();
        for entity in &request.entities {
            match self.acquire_lease(entity).await {
                Ok(lease) => leased.push((entity, lease)),
                Err(message) => {
                    tracing::error!(entity = entity.name, "{message}");
                    reports.insert(
                        entity.name,
                        EntityReport::failed(entity.name, Mode::Skipped, EntityOutcome::LeaseHeld(message)),
                    );
                }
            }
        }
        let keeper = LeaseKeeper::start(self.state.clone(), self.config.lease_ttl, leased.clone(), stop.clone());

        // Reconcile and plan.
        let mut plans: Vec<(&'static EntitySpec, Plan)> = Vec::new();
        for (entity, _) in &leased {
            match entity::plan(self, entity, request.full).await {
                Ok(plan) => plans.push((entity, plan)),
                Err(err) => {
                    tracing::error!(entity = entity.name, error = %err, "cannot read or reconcile the sync state");
                    reports.insert(
                        entity.name,
                        EntityReport::failed(entity.name, Mode::Skipped, EntityOutcome::Failed(format!("{err:#}"))),
                    );
                }
            }
        }

        // One request probes every incremental entity's feed.
        let probes = self.probe(&mut plans).await;

        let concurrency = self.config.entity_concurrency.max(1);
        // Boxed futures collected first: a closure inside the stream trips rustc's higher-ranked
        // lifetime inference when the whole pass must be `Send` (rust-lang/rust#102211).
        let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = EntityReport> + Send + '_>>> = Vec::new();
        for (entity, plan) in plans {
            let probe = probes.get(entity.name).cloned();
            let stop = stop.clone();
            tasks.push(Box::pin(async move { entity::run(self, entity, plan, probe, &stop).await }));
        }
        let results: Vec<EntityReport> = futures::stream::iter(tasks).buffer_unordered(concurrency).collect().await;
        for report in results {
            reports.insert(report.entity, report);
        }

        // Release the leases as last renewed (an older copy would no longer match).
        for (entity, lease) in keeper.stop().await {
            if let Err(err) = self.state.release_lease(lease).await {
                tracing::warn!(entity = entity.name, error = %err, "could not release the lease (it will expire)");
            }
        }

        let stats_after = self.client.stats();
        PassReport::new(
            started_at,
            started.elapsed(),
            request.entities.iter().filter_map(|e| reports.remove(e.name)).collect(),
            stats_before,
            stats_after,
            stop.check(),
        )
    }

    async fn acquire_lease(&self, entity: &'static EntitySpec) -> Result<Lease, String> {
        let give_up = Instant::now() + self.config.lease_wait;
        let mut announced = false;
        loop {
            match self.state.acquire_lease(entity.name, &self.config.holder, self.config.lease_ttl).await {
                // A takeover from a holder that died is logged as a warning by the store.
                Ok(acquired) => return Ok(acquired.lease),
                Err(StateError::LeaseHeld { holder, expires_at, .. }) => {
                    if Instant::now() >= give_up {
                        return Err(format!(
                            "{} is being synced by another process ({holder}, lease expires {expires_at}); waited {}",
                            entity.name,
                            humantime::format_duration(self.config.lease_wait)
                        ));
                    }
                    if !announced {
                        tracing::info!(entity = entity.name, %holder, "waiting for another process's lease");
                        announced = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500).min(self.config.lease_wait)).await;
                }
                Err(err) => return Err(format!("cannot take the lease of {}: {err}", entity.name)),
            }
        }
    }

    /// Reads the first feed page of every incremental entity in one request. Entities whose
    /// cursor the API rejects are switched to a gap resync; other failures are left to each
    /// entity's own run (which reads its feed itself when no probe page is there).
    async fn probe(&self, plans: &mut [(&'static EntitySpec, Plan)]) -> BTreeMap<&'static str, DeltaPage> {
        let mut out = BTreeMap::new();
        let feeds: Vec<FeedPosition> = plans
            .iter()
            .filter_map(|(entity, plan)| match plan {
                Plan::Incremental { cursor, .. } => Some(FeedPosition { entity, after: cursor.clone() }),
                _ => None,
            })
            .collect();
        if feeds.is_empty() {
            return out;
        }
        match self.client.probe_deltas(&feeds, self.config.page_size).await {
            Ok(pages) => {
                for (feed, page) in feeds.iter().zip(pages) {
                    out.insert(feed.entity.name, page);
                }
            }
            Err(err) if matches!(err.kind(), ErrorKind::CursorRejected) && feeds.len() > 1 => {
                // One rejected cursor fails the whole batch: find which, one feed at a time.
                tracing::warn!(error = %err, "the batched probe was rejected for a cursor; probing feeds one by one");
                for feed in &feeds {
                    match self.client.probe_deltas(std::slice::from_ref(feed), self.config.page_size).await {
                        Ok(mut pages) => {
                            if let Some(page) = pages.pop() {
                                out.insert(feed.entity.name, page);
                            }
                        }
                        Err(err) if matches!(err.kind(), ErrorKind::CursorRejected) => {
                            mark_gap(plans, feed.entity, "the API rejected the saved change-feed cursor");
                        }
                        Err(err) => tracing::warn!(entity = feed.entity.name, error = %err, "probe failed"),
                    }
                }
            }
            Err(err) if matches!(err.kind(), ErrorKind::CursorRejected) => {
                mark_gap(plans, feeds[0].entity, "the API rejected the saved change-feed cursor");
            }
            Err(err) => {
                // Each entity will read its own feed and report the error in its own terms.
                tracing::warn!(error = %err, "the batched probe failed; entities read their feeds one by one");
            }
        }
        out
    }
}

/// Renews the pass's leases in the background (every third of their time-to-live) and hands
/// back their latest versions when the pass ends, so they can be released.
struct LeaseKeeper {
    leases: Arc<tokio::sync::Mutex<Vec<(&'static EntitySpec, Lease)>>>,
    stop_renewing: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    fn start(
        state: Arc<dyn StateStore>,
        ttl: Duration,
        leased: Vec<(&'static EntitySpec, Lease)>,
        stop: Arc<StopSignal>,
    ) -> Self {
        let leases = Arc::new(tokio::sync::Mutex::new(leased));
        let (stop_renewing, mut stopped) = tokio::sync::watch::channel(false);
        let shared = leases.clone();
        let task = tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let mut leases = shared.lock().await;
                for (entity, lease) in leases.iter_mut() {
                    match state.renew_lease(lease, ttl).await {
                        Ok(renewed) => *lease = renewed,
                        Err(err) => {
                            tracing::error!(entity = entity.name, error = %err, "lost a lease: stopping the pass at the next page boundary");
                            stop.stop(StopReason::LeaseLost);
                        }
                    }
                }
            }
        });
        LeaseKeeper { leases, stop_renewing, task }
    }

    /// Stops renewing (waiting for a renewal in progress) and returns the latest leases.
    async fn stop(self) -> Vec<(&'static EntitySpec, Lease)> {
        let _ = self.stop_renewing.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *self.leases.lock().await)
    }
}

fn mark_gap(plans: &mut [(&'static EntitySpec, Plan)], entity: &'static EntitySpec, why: &str) {
    for (e, plan) in plans.iter_mut() {
        if e.name == entity.name {
            tracing::warn!(entity = entity.name, reason = why, "gap in the change feed: running a full sync");
            *plan = Plan::gap(why.to_string());
        }
    }
}

/// `now`, truncated to microseconds (the lake's resolution).
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The pass future must be `Send`: the Functions handler runs passes on spawned tasks.
#[allow(dead_code)]
fn assert_pass_is_send(engine: &Engine) -> impl Send + '_ {
    engine.run_pass(PassRequest { entities: vec![], full: false }, StopSignal::new(None))
}
