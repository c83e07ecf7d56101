//! One entity's run: read and reconcile its state, decide the plan, then run it; every change of
//! state goes through [`EntityRun::save`] and every file through [`EntityRun::commit`].

use chrono::{DateTime, Utc};
use lake_writer::{CommittedFile, PartWriter};
use sync_state::{EntityState, Expect, FullSyncProgress, FullSyncReason, IncrementalProgress, Phase, RunSummary};
use tokio::time::Instant;
use xledger_client::ErrorKind;
use xledger_model::EntitySpec;
use xledger_model::page::DeltaPage;

use crate::error::EngineError;
use crate::full::FullEnd;
use crate::incremental::FeedEnd;
use crate::pass::Engine;
use crate::report::{Counts, EntityOutcome, EntityReport, Mode};
use crate::settings::FullLoad;
use crate::stop::{StopReason, StopSignal};

/// What an entity's run will do, decided from its reconciled state.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Start a new full load.
    NewFull { reason: FullSyncReason },
    /// Continue the full load in `progress`.
    ResumeFull { progress: Box<FullSyncProgress> },
    /// Read the change feed after `progress.deltas_cursor`.
    Incremental { progress: IncrementalProgress },
}

impl Plan {
    /// The cursor a probe reads the feed after, for a plan that follows the feed.
    pub(crate) fn feed_cursor(&self) -> Option<Option<String>> {
        match self {
            Plan::Incremental { progress } => Some(progress.deltas_cursor.clone()),
            _ => None,
        }
    }
}

/// The state as last read or written, with the version a compare-and-swap must match.
#[derive(Debug, Clone)]
struct Tracked {
    state: Option<EntityState>,
    expect: Expect,
}

/// One entity's run within a pass: the engine, the entity, its tracked state and its counters.
pub(crate) struct EntityRun<'e> {
    pub(crate) engine: &'e Engine,
    pub(crate) entity: &'static EntitySpec,
    pub(crate) stop: &'e StopSignal,
    pub(crate) counts: Counts,
    tracked: Tracked,
}

/// How a run ended when it did not fail.
pub(crate) enum Ended {
    Synced,
    Stopped(StopReason),
}

impl<'e> EntityRun<'e> {
    /// Reads the entity's state, reconciles a commit a crash interrupted, removes stray staging
    /// files and decides the plan.
    pub(crate) async fn prepare(
        engine: &'e Engine,
        entity: &'static EntitySpec,
        stop: &'e StopSignal,
        full_load: FullLoad,
    ) -> Result<(EntityRun<'e>, Plan), EngineError> {
        let tracked = read(engine, entity).await?;
        let mut run = EntityRun { engine, entity, stop, counts: Counts::default(), tracked };
        run.reconcile().await?;
        engine
            .lake
            .remove_stray_temp_files(entity.name)
            .await
            .map_err(EngineError::lake(entity.name, "removing stray temporary files"))?;
        let plan = run.plan(full_load);
        Ok((run, plan))
    }

    fn plan(&self, full_load: FullLoad) -> Plan {
        let phase = self.tracked.state.as_ref().map(|s| s.phase.clone()).unwrap_or(Phase::NotStarted);
        match (phase, full_load) {
            (_, FullLoad::Forced) => Plan::NewFull { reason: FullSyncReason::Requested },
            (Phase::FullSync(progress), FullLoad::WhenNeeded) => Plan::ResumeFull { progress: Box::new(progress) },
            (Phase::NotStarted, FullLoad::WhenNeeded) => Plan::NewFull { reason: FullSyncReason::Initial },
            (Phase::Incremental(_), FullLoad::WhenNeeded) if !self.entity.has_change_feed() => {
                Plan::NewFull { reason: FullSyncReason::FullOnly }
            }
            (Phase::Incremental(progress), FullLoad::WhenNeeded) => {
                let retention = self.engine.settings.delta_retention;
                let age = self.engine.clock.now().signed_duration_since(progress.last_success);
                if age > chrono::Duration::from_std(retention).unwrap_or(chrono::TimeDelta::MAX) {
                    let why = format!(
                        "the last successful pass was {} ago, longer than the change feed's {} retention",
                        humantime::format_duration(age.to_std().unwrap_or_default()),
                        humantime::format_duration(retention)
                    );
                    tracing::warn!(entity = self.entity.name, reason = %why, "gap in the change feed: running a full load");
                    Plan::NewFull { reason: FullSyncReason::Gap { why } }
                } else {
                    Plan::Incremental { progress }
                }
            }
        }
    }

    /// A commit interrupted by a crash left `pending` in state: adopt it when its file is visible
    /// (the commit happened), forget it otherwise (it did not; the range or part is redone).
    async fn reconcile(&mut self) -> Result<(), EngineError> {
        let Some(state) = self.tracked.state.clone() else { return Ok(()) };
        let entity = self.entity.name;
        let next = match state.phase {
            Phase::FullSync(mut progress) => {
                let Some(pending) = progress.pending.take() else { return Ok(()) };
                if self.file_exists(&pending.file).await? {
                    tracing::info!(entity, file = %pending.file, "adopting a part committed before an interruption");
                    progress.parts.push(sync_state::CommittedPart { file: pending.file, rows: pending.rows });
                    progress.items_cursor = pending.items_cursor_after;
                } else {
                    tracing::info!(entity, file = %pending.file, "an interrupted part was never committed: redoing it");
                }
                Phase::FullSync(progress)
            }
            Phase::Incremental(mut progress) => {
                let Some(pending) = progress.pending.take() else { return Ok(()) };
                if self.file_exists(&pending.file).await? {
                    tracing::info!(entity, file = %pending.file, "adopting a change file committed before an interruption");
                    progress.deltas_cursor = Some(pending.cursor_to);
                    progress.last_success = self.engine.clock.now();
                } else {
                    tracing::info!(entity, file = %pending.file, "an interrupted change file was never committed: re-reading its range");
                }
                Phase::Incremental(progress)
            }
            Phase::NotStarted => return Ok(()),
        };
        self.save(next).await
    }

    async fn file_exists(&self, name: &str) -> Result<bool, EngineError> {
        self.engine
            .lake
            .exists(self.entity.name, name)
            .await
            .map_err(EngineError::lake(self.entity.name, "checking an interrupted commit"))
    }

    /// Writes `phase` (keeping the last run's summary) by compare-and-swap against what this run
    /// last read or wrote: a state someone else changed meanwhile is a conflict, never overwritten.
    pub(crate) async fn save(&mut self, phase: Phase) -> Result<(), EngineError> {
        let last_run = self.tracked.state.as_ref().and_then(|s| s.last_run.clone());
        self.save_state(EntityState { phase, last_run }).await
    }

    async fn save_state(&mut self, state: EntityState) -> Result<(), EngineError> {
        let version = self
            .engine
            .state
            .put(self.entity.name, &state, self.tracked.expect.clone())
            .await
            .map_err(EngineError::state(self.entity.name, "saving the sync state"))?;
        self.tracked = Tracked { state: Some(state), expect: Expect::Version(version) };
        Ok(())
    }

    /// The one way a file enters the lake: record `pending` (the state naming the file, saved
    /// before the file is visible), commit the file, then save `committed`. A crash between any
    /// two steps leaves a state [`EntityRun::reconcile`] resolves: the file is adopted if it is
    /// visible and its work redone if not, so nothing is lost or written twice.
    pub(crate) async fn commit(
        &mut self,
        writer: PartWriter,
        pending: Phase,
        committed: Phase,
    ) -> Result<CommittedFile, EngineError> {
        let entity = self.entity.name;
        if let Err(error) = self.save(pending).await {
            writer.abort().await.ok();
            return Err(error);
        }
        let file = writer.finish().await.map_err(EngineError::lake(entity, "committing a file"))?;
        self.counts.files += 1;
        self.counts.bytes_written += file.bytes;
        tracing::info!(entity, file = %file.name, rows = file.rows, bytes = file.bytes, "file committed");
        self.engine.observer.file_committed(entity, &file.name);
        self.save(committed).await?;
        Ok(file)
    }

    /// Runs the plan; every failure becomes the entity's outcome, with state left consistent.
    pub(crate) async fn run(mut self, plan: Plan, probe: Option<DeltaPage>) -> EntityReport {
        let started_at = self.engine.clock.now();
        let started = Instant::now();
        let traffic_before = self.engine.client.stats().entity(self.entity.name);
        let (mode, result) = match plan {
            Plan::NewFull { reason } => {
                let mode = Mode::for_reason(&reason);
                self.engine.observer.entity_started(self.entity.name, mode);
                let result = self.full_new(reason).await;
                (mode, self.then_follow_feed(result).await)
            }
            Plan::ResumeFull { progress } => {
                self.engine.observer.entity_started(self.entity.name, Mode::Resumed);
                let result = self.full_resume(*progress).await;
                (Mode::Resumed, self.then_follow_feed(result).await)
            }
            Plan::Incremental { progress } => {
                self.engine.observer.entity_started(self.entity.name, Mode::Incremental);
                match self.follow_feed(progress, probe).await {
                    Ok(FeedEnd::Gap(why)) => {
                        tracing::warn!(entity = self.entity.name, reason = %why, "gap in the change feed: running a full load");
                        self.engine.observer.entity_started(self.entity.name, Mode::GapResync);
                        let result = self.full_new(FullSyncReason::Gap { why }).await;
                        (Mode::GapResync, self.then_follow_feed(result).await)
                    }
                    Ok(FeedEnd::Done { idle }) => {
                        (if idle { Mode::Idle } else { Mode::Incremental }, Ok(Ended::Synced))
                    }
                    Ok(FeedEnd::Stopped(reason)) => (Mode::Incremental, Ok(Ended::Stopped(reason))),
                    Err(error) => (Mode::Incremental, Err(error)),
                }
            }
        };
        let outcome = match result {
            Ok(Ended::Synced) => EntityOutcome::Synced,
            Ok(Ended::Stopped(StopReason::CreditsExhausted)) => {
                EntityOutcome::Deferred("Xledger credits are exhausted".into())
            }
            Ok(Ended::Stopped(reason)) => EntityOutcome::Stopped(reason),
            Err(error) => self.classify_failure(error),
        };
        // The shared probe request counts in the pass's totals only.
        let traffic = self.engine.client.stats().entity(self.entity.name);
        self.counts.requests = traffic.requests.saturating_sub(traffic_before.requests);
        self.counts.bytes_received = traffic.bytes_received.saturating_sub(traffic_before.bytes_received);
        let table = match &self.engine.tables {
            Some(tables) => Some(self.catch_up_table(tables).await),
            None => None,
        };
        let report = EntityReport {
            entity: self.entity.name,
            mode,
            counts: self.counts,
            started_at,
            duration: started.elapsed(),
            outcome,
            table,
        };
        if let Err(error) = self.record_summary(&report, started_at).await {
            tracing::warn!(entity = self.entity.name, %error, "could not record the run summary in state");
        }
        self.engine.observer.entity_finished(&report);
        report
    }

    /// After a full load completes, the changes made since its head cursor was read are applied in
    /// the same pass: a pass that exits successfully leaves the lake as current as the feed.
    async fn then_follow_feed(&mut self, result: Result<FullEnd, EngineError>) -> Result<Ended, EngineError> {
        let progress = match result? {
            FullEnd::Stopped(reason) => return Ok(Ended::Stopped(reason)),
            FullEnd::Complete(progress) => progress,
        };
        if !self.entity.has_change_feed() {
            return Ok(Ended::Synced);
        }
        if let Some(reason) = self.stop.check() {
            return Ok(Ended::Stopped(reason));
        }
        match self.follow_feed(progress, None).await? {
            FeedEnd::Done { .. } => Ok(Ended::Synced),
            FeedEnd::Stopped(reason) => Ok(Ended::Stopped(reason)),
            // The feed lost the load's head already: the load just written stays the newest complete
            // one; the next pass reads the feed again and resyncs if it must.
            FeedEnd::Gap(why) => {
                tracing::warn!(entity = self.entity.name, reason = %why, "the change feed rejected the cursor of the full load just completed; the next pass resyncs");
                Ok(Ended::Synced)
            }
        }
    }

    fn classify_failure(&self, error: EngineError) -> EntityOutcome {
        match error.api_kind() {
            Some(ErrorKind::CreditsDeferred { reset_at }) => {
                self.stop.stop(StopReason::CreditsExhausted);
                let when = reset_at.map(|t| format!(" until {t}")).unwrap_or_default();
                EntityOutcome::Deferred(format!("Xledger credits are exhausted{when}: deferred to the next pass"))
            }
            Some(ErrorKind::DeadlineExceeded) => EntityOutcome::Stopped(StopReason::Deadline),
            _ => EntityOutcome::Failed(error.to_string()),
        }
    }

    /// Keeps the last run's summary in state (best effort, after the data and cursor are safe).
    async fn record_summary(&mut self, report: &EntityReport, started_at: DateTime<Utc>) -> Result<(), EngineError> {
        let Some(mut state) = self.tracked.state.clone() else { return Ok(()) };
        state.last_run = Some(RunSummary {
            started_at,
            finished_at: self.engine.clock.now(),
            mode: report.mode.as_str().to_string(),
            rows_added: report.counts.added,
            rows_updated: report.counts.updated,
            rows_deleted: report.counts.deleted,
            files: report.counts.files,
            requests: report.counts.requests,
            bytes_received: report.counts.bytes_received,
            outcome: report.outcome.to_string(),
        });
        self.save_state(state).await
    }

    /// `now` from the engine's clock, truncated to microseconds (the lake's resolution).
    pub(crate) fn now_micros(&self) -> DateTime<Utc> {
        let now = self.engine.clock.now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}

async fn read(engine: &Engine, entity: &'static EntitySpec) -> Result<Tracked, EngineError> {
    let current =
        engine.state.get(entity.name).await.map_err(EngineError::state(entity.name, "reading the sync state"))?;
    Ok(match current {
        None => Tracked { state: None, expect: Expect::Absent },
        // State adopted from the old app's keys is not stored under ours yet: the first write creates it.
        Some(v) => Tracked { expect: Expect::matching(&v.version), state: Some(v.value) },
    })
}
