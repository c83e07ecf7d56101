//! A pass over entities: leases, plans, the batched probe, the entities' runs, the report.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lake_writer::Lake;
use sync_state::{Clock, Lease, LeaseHolder, StateError, StateStore};
use tokio::time::Instant;
use xledger_client::{ErrorKind, FeedPosition, XledgerClient};
use xledger_model::EntitySpec;
use xledger_model::page::DeltaPage;

use crate::entity::{EntityRun, Plan};
use crate::observer::{Observer, Quiet};
use crate::report::{EntityOutcome, EntityReport, Mode, PassReport};
use crate::settings::{PassRequest, Settings};
use crate::stop::{StopReason, StopSignal};

/// The engine: one Xledger client, one lake, one state store, and how to use them. Cheap to
/// clone (shared handles); the CLI builds one per command, the Functions handler one per pass.
#[derive(Clone)]
pub struct Engine {
    pub(crate) client: XledgerClient,
    pub(crate) lake: Lake,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) holder: LeaseHolder,
    pub(crate) clock: Clock,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) tables: Option<Arc<lake_tables::Tables>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("lake", &self.lake.describe())
            .field("state", &self.state.describe())
            .field("holder", &self.holder.to_string())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on the system clock, holding leases as this process, reporting progress to no one.
    pub fn new(client: XledgerClient, lake: Lake, state: Arc<dyn StateStore>, settings: Settings) -> Self {
        Engine {
            client,
            lake,
            state,
            settings: Arc::new(settings),
            holder: LeaseHolder::current(),
            clock: Clock::system(),
            observer: Arc::new(Quiet),
            tables: None,
        }
    }

    /// The same engine keeping `tables` (the current-state Delta tables) after every entity's run.
    pub fn with_tables(mut self, tables: Arc<lake_tables::Tables>) -> Self {
        self.tables = Some(tables);
        self
    }

    /// The current-state tables this engine keeps, if any.
    pub fn tables(&self) -> Option<&Arc<lake_tables::Tables>> {
        self.tables.as_ref()
    }

    /// The same engine reading "now" (run stamps, `_synced_at`, feed ages) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same engine reporting progress to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
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

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs one pass:
    /// 1. takes each entity's lease (one process per entity at a time; a lease whose holder died
    ///    on this host is taken over at once, one held elsewhere waits for its time-to-live);
    /// 2. reads each entity's state and reconciles a commit a crash interrupted;
    /// 3. decides per entity: resume a full load, start one, or follow the change feed;
    /// 4. probes the change feeds of every entity that follows one in **one** request;
    /// 5. runs the entities concurrently (bounded), each committing files before moving state.
    ///
    /// Never panics on bad data or API trouble: every entity gets an outcome in the report.
    pub async fn run_pass(&self, request: PassRequest, stop: Arc<StopSignal>) -> PassReport {
        let started_at = self.clock.now();
        let started = Instant::now();
        let stats_before = self.client.stats();

        let mut reports: BTreeMap<&'static str, EntityReport> = BTreeMap::new();
        let mut leased: Vec<(&'static EntitySpec, Lease)> = Vec::new();
        for entity in &request.entities {
            match self.acquire_lease(entity).await {
                Ok(lease) => leased.push((entity, lease)),
                Err(message) => {
                    tracing::error!(entity = entity.name, "{message}");
                    let outcome = EntityOutcome::LeaseHeld(message);
                    reports.insert(entity.name, EntityReport::failed(entity.name, started_at, Mode::Skipped, outcome));
                }
            }
        }
        let keeper = LeaseKeeper::start(self.state.clone(), self.settings.lease_ttl, leased.clone(), stop.clone());

        let mut runs: Vec<(EntityRun<'_>, Plan)> = Vec::new();
        for (entity, _) in &leased {
            match EntityRun::prepare(self, entity, &stop, request.full_load).await {
                Ok(run) => runs.push(run),
                Err(error) => {
                    tracing::error!(entity = entity.name, %error, "cannot read or reconcile the sync state");
                    let outcome = EntityOutcome::Failed(error.to_string());
                    reports.insert(entity.name, EntityReport::failed(entity.name, started_at, Mode::Skipped, outcome));
                }
            }
        }

        let mut probes = self.probe(&mut runs).await;

        // Boxed futures collected first: a closure inside the stream trips rustc's higher-ranked
        // lifetime inference when the whole pass must be `Send` (rust-lang/rust#102211).
        let mut tasks: Vec<Pin<Box<dyn Future<Output = EntityReport> + Send + '_>>> = Vec::new();
        for (run, plan) in runs {
            let probe = probes.remove(run.entity.name);
            tasks.push(Box::pin(run.run(plan, probe)));
        }
        let concurrency = self.settings.entity_concurrency.max(1);
        let results: Vec<EntityReport> = futures::stream::iter(tasks).buffer_unordered(concurrency).collect().await;
        for report in results {
            reports.insert(report.entity, report);
        }

        // Release the leases as last renewed (an older copy would no longer match).
        for (entity, lease) in keeper.stop().await {
            if let Err(error) = self.state.release_lease(lease).await {
                tracing::warn!(entity = entity.name, %error, "could not release the lease (it will expire)");
            }
        }

        let report = PassReport::new(
            started_at,
            started.elapsed(),
            request.entities.iter().filter_map(|e| reports.remove(e.name)).collect(),
            stats_before,
            self.client.stats(),
            stop.check(),
        );
        self.record_runs(&report, &self.holder.instance).await;
        report
    }

    pub(crate) async fn acquire_lease(&self, entity: &'static EntitySpec) -> Result<Lease, String> {
        acquire_lease(self.state.as_ref(), &self.holder, &self.settings, entity).await
    }

    /// Reads the first feed page of every entity that follows its feed in one request. Entities
    /// whose cursor the API rejects switch to a gap resync; other failures are left to each
    /// entity's own run (which reads its feed itself when no probe page is there).
    async fn probe(&self, runs: &mut [(EntityRun<'_>, Plan)]) -> BTreeMap<&'static str, DeltaPage> {
        let mut out = BTreeMap::new();
        let feeds: Vec<FeedPosition> = runs
            .iter()
            .filter_map(|(run, plan)| plan.feed_cursor().map(|after| FeedPosition::new(run.entity, after)))
            .collect();
        if feeds.is_empty() {
            return out;
        }
        let page_size = self.settings.page_size;
        match self.client.probe_deltas(&feeds, page_size).await {
            Ok(pages) => {
                for (feed, page) in feeds.iter().zip(pages) {
                    out.insert(feed.entity.name, page);
                }
            }
            Err(error) if matches!(error.kind(), ErrorKind::CursorRejected) && feeds.len() > 1 => {
                // One rejected cursor fails the whole batch: find which, one feed at a time.
                tracing::warn!(%error, "the batched probe was rejected for a cursor; probing feeds one by one");
                for feed in &feeds {
                    match self.client.probe_deltas(std::slice::from_ref(feed), page_size).await {
                        Ok(mut pages) => {
                            if let Some(page) = pages.pop() {
                                out.insert(feed.entity.name, page);
                            }
                        }
                        Err(error) if matches!(error.kind(), ErrorKind::CursorRejected) => mark_gap(runs, feed.entity),
                        Err(error) => tracing::warn!(entity = feed.entity.name, %error, "probe failed"),
                    }
                }
            }
            Err(error) if matches!(error.kind(), ErrorKind::CursorRejected) => mark_gap(runs, feeds[0].entity),
            // Each entity will read its own feed and report the error in its own terms.
            Err(error) => tracing::warn!(%error, "the batched probe failed; entities read their feeds one by one"),
        }
        out
    }
}

/// Takes `entity`'s lease for `holder`, waiting up to `settings.lease_wait` for another holder;
/// the error says who holds it.
pub(crate) async fn acquire_lease(
    state: &dyn StateStore,
    holder: &LeaseHolder,
    settings: &Settings,
    entity: &'static EntitySpec,
) -> Result<Lease, String> {
    let wait = settings.lease_wait;
    let give_up = Instant::now() + wait;
    let mut announced = false;
    loop {
        match state.acquire_lease(entity.name, holder, settings.lease_ttl).await {
            // A takeover from a holder that died is logged as a warning by the store.
            Ok(acquired) => return Ok(acquired.lease),
            Err(StateError::LeaseHeld { holder, expires_at, .. }) => {
                if Instant::now() >= give_up {
                    return Err(format!(
                        "{} is being synced by another process ({holder}, lease expires {expires_at}); waited {}",
                        entity.name,
                        humantime::format_duration(wait)
                    ));
                }
                if !announced {
                    tracing::info!(entity = entity.name, %holder, "waiting for another process's lease");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_millis(500).min(wait)).await;
            }
            Err(error) => return Err(format!("cannot take the lease of {}: {error}", entity.name)),
        }
    }
}

fn mark_gap(runs: &mut [(EntityRun<'_>, Plan)], entity: &'static EntitySpec) {
    let why = "the API rejected the saved change-feed cursor";
    for (run, plan) in runs.iter_mut() {
        if run.entity.name == entity.name {
            tracing::warn!(entity = entity.name, reason = why, "gap in the change feed: running a full load");
            *plan = Plan::NewFull { reason: sync_state::FullSyncReason::Gap { why: why.to_string() } };
        }
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
                        Err(error) => {
                            tracing::error!(entity = entity.name, %error, "lost a lease: stopping the pass at the next page boundary");
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

/// The pass future must be `Send`: the Functions handler runs passes on spawned tasks.
#[allow(dead_code)]
fn assert_pass_is_send(engine: &Engine) -> impl Send + '_ {
    engine.run_pass(PassRequest::sync(vec![]), StopSignal::new(None))
}
