//! One entity's pass: reconcile its state, then a full sync (new or resumed) or an incremental run.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lake_writer::{CommittedFile, FileKind, PartSpec, PartWriter, RunStamp};
use sync_state::{
    CommittedPart, EntityState, Expect, FullSyncProgress, FullSyncReason, IncrementalProgress, PendingChanges,
    PendingPart, Phase, RunSummary, Version,
};
use tokio::time::Instant;
use xledger_client::{ClientError, ErrorKind};
use xledger_model::EntitySpec;
use xledger_model::page::{DeltaPage, MutationType, node_db_id};

use super::collapse::Collapser;
use super::report::{Counts, EntityOutcome, EntityReport, Mode};
use super::{Engine, StopReason, StopSignal, now_micros};

/// What an entity's run will do, decided from its reconciled state.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Start a new full sync.
    NewFull { reason: FullSyncReason, base: Tracked },
    /// Continue the full sync in `progress`.
    ResumeFull { progress: FullSyncProgress, base: Tracked },
    /// Read the change feed after `cursor`.
    Incremental { cursor: Option<String>, progress: IncrementalProgress, base: Tracked },
}

impl Plan {
    /// A full sync forced by a gap in the change feed.
    pub fn gap(why: String) -> Plan {
        Plan::NewFull { reason: FullSyncReason::Gap { why }, base: Tracked::unknown() }
    }
}

/// The state as last read or written, with the version a compare-and-swap must match.
#[derive(Debug, Clone)]
pub struct Tracked {
    state: Option<EntityState>,
    expect: Option<Expect>,
}

impl Tracked {
    /// Forces a fresh read before the next write (used when a plan is replaced mid-pass).
    fn unknown() -> Self {
        Tracked { state: None, expect: None }
    }
}

/// Reads the entity's state, reconciles an interrupted commit and decides the plan.
pub async fn plan(engine: &Engine, entity: &'static EntitySpec, force_full: bool) -> anyhow::Result<Plan> {
    let mut tracked = read(engine, entity).await?;
    reconcile(engine, entity, &mut tracked).await?;
    engine
        .lake
        .remove_stray_temp_files(entity.name)
        .await
        .with_context(|| format!("{}: removing stray temporary files", entity.name))?;
    let phase = tracked.state.as_ref().map(|s| s.phase.clone()).unwrap_or(Phase::NotStarted);
    Ok(match phase {
        Phase::FullSync(progress) if !force_full => Plan::ResumeFull { progress, base: tracked },
        _ if force_full => Plan::NewFull { reason: FullSyncReason::Requested, base: tracked },
        Phase::NotStarted | Phase::FullSync(_) => Plan::NewFull { reason: FullSyncReason::Initial, base: tracked },
        Phase::Incremental(_) if !entity.has_change_feed() => {
            Plan::NewFull { reason: FullSyncReason::FullOnly, base: tracked }
        }
        Phase::Incremental(progress) => {
            let age = Utc::now().signed_duration_since(progress.last_success);
            let retention = chrono::Duration::from_std(engine.config.delta_retention).unwrap_or(chrono::TimeDelta::MAX);
            if age > retention {
                let why = format!(
                    "the last successful pass was {} ago, longer than the change feed's {} retention",
                    humantime::format_duration(age.to_std().unwrap_or_default()),
                    humantime::format_duration(engine.config.delta_retention)
                );
                tracing::warn!(entity = entity.name, reason = %why, "gap in the change feed: running a full sync");
                Plan::NewFull { reason: FullSyncReason::Gap { why }, base: tracked }
            } else {
                Plan::Incremental { cursor: progress.deltas_cursor.clone(), progress, base: tracked }
            }
        }
    })
}

async fn read(engine: &Engine, entity: &'static EntitySpec) -> anyhow::Result<Tracked> {
    let current =
        engine.state.get(entity.name).await.with_context(|| format!("{}: reading the sync state", entity.name))?;
    Ok(match current {
        None => Tracked { state: None, expect: Some(Expect::Absent) },
        Some(v) => {
            let legacy = matches!(&v.value.phase, Phase::Incremental(p) if p.imported_from_legacy);
            let expect = if legacy { Expect::Absent } else { Expect::Version(v.version.clone()) };
            Tracked { state: Some(v.value), expect: Some(expect) }
        }
    })
}

/// Writes `state` by compare-and-swap against what was last read or written.
async fn save(
    engine: &Engine,
    entity: &'static EntitySpec,
    tracked: &mut Tracked,
    state: EntityState,
) -> anyhow::Result<()> {
    if tracked.expect.is_none() {
        *tracked = read(engine, entity).await?;
    }
    let expect = tracked.expect.clone().unwrap_or(Expect::Absent);
    let version: Version = engine
        .state
        .put(entity.name, &state, expect)
        .await
        .with_context(|| format!("{}: saving the sync state", entity.name))?;
    tracked.state = Some(state);
    tracked.expect = Some(Expect::Version(version));
    Ok(())
}

/// A commit interrupted by a crash left `pending` in state: adopt it when its file is visible
/// (the commit happened), forget it otherwise (it did not; the range or part is redone).
async fn reconcile(engine: &Engine, entity: &'static EntitySpec, tracked: &mut Tracked) -> anyhow::Result<()> {
    let Some(state) = tracked.state.clone() else { return Ok(()) };
    let next = match state.phase {
        Phase::FullSync(mut progress) => match progress.pending.take() {
            None => return Ok(()),
            Some(pending) => {
                if engine.lake.exists(entity.name, &pending.file).await? {
                    tracing::info!(entity = entity.name, file = %pending.file, "adopting a part committed before an interruption");
                    progress.parts.push(CommittedPart { file: pending.file, rows: pending.rows });
                    progress.items_cursor = pending.items_cursor_after;
                } else {
                    tracing::info!(entity = entity.name, file = %pending.file, "an interrupted part was never committed: redoing it");
                }
                Phase::FullSync(progress)
            }
        },
        Phase::Incremental(mut progress) => match progress.pending.take() {
            None => return Ok(()),
            Some(pending) => {
                if engine.lake.exists(entity.name, &pending.file).await? {
                    tracing::info!(entity = entity.name, file = %pending.file, "adopting a change file committed before an interruption");
                    progress.deltas_cursor = Some(pending.cursor_to);
                    progress.last_success = Utc::now();
                } else {
                    tracing::info!(entity = entity.name, file = %pending.file, "an interrupted change file was never committed: re-reading its range");
                }
                Phase::Incremental(progress)
            }
        },
        Phase::NotStarted => return Ok(()),
    };
    save(engine, entity, tracked, EntityState { phase: next, last_run: state.last_run }).await
}

/// Runs the plan; every failure becomes the entity's outcome, with state left consistent.
pub async fn run(
    engine: &Engine,
    entity: &'static EntitySpec,
    plan: Plan,
    probe: Option<DeltaPage>,
    stop: &StopSignal,
) -> EntityReport {
    let started_at = Utc::now();
    let started = Instant::now();
    let traffic_before = engine.client.stats().entity(entity.name);
    let mut counts = Counts::default();
    let (mode, result, mut base) = match plan {
        Plan::NewFull { reason, mut base } => {
            let mode = Mode::for_reason(&reason);
            engine.progress.entity_started(entity.name, mode);
            let result = full_new(engine, entity, reason, &mut base, stop, &mut counts).await;
            (mode, finish_full(engine, entity, &mut base, result).await, base)
        }
        Plan::ResumeFull { progress, mut base } => {
            let mode = Mode::Resumed;
            engine.progress.entity_started(entity.name, mode);
            let result = full_resume(engine, entity, progress, &mut base, stop, &mut counts).await;
            (mode, finish_full(engine, entity, &mut base, result).await, base)
        }
        Plan::Incremental { cursor, progress, mut base } => {
            engine.progress.entity_started(entity.name, Mode::Incremental);
            match incremental(engine, entity, cursor, progress, probe, &mut base, stop, &mut counts).await {
                Ok(IncrementalEnd::Gap(why)) => {
                    tracing::warn!(entity = entity.name, reason = %why, "gap in the change feed: running a full sync");
                    let reason = FullSyncReason::Gap { why };
                    let mode = Mode::GapResync;
                    engine.progress.entity_started(entity.name, mode);
                    let result = full_new(engine, entity, reason, &mut base, stop, &mut counts).await;
                    (mode, finish_full(engine, entity, &mut base, result).await, base)
                }
                Ok(IncrementalEnd::Done { idle }) => {
                    let mode = if idle { Mode::Idle } else { Mode::Incremental };
                    (mode, Ok(Ended::Complete), base)
                }
                Ok(IncrementalEnd::Stopped(reason)) => (Mode::Incremental, Ok(Ended::Stopped(reason)), base),
                Err(err) => (Mode::Incremental, Err(err), base),
            }
        }
    };
    let outcome = match result {
        Ok(Ended::Complete) => EntityOutcome::Synced,
        Ok(Ended::Stopped(StopReason::CreditsExhausted)) => {
            EntityOutcome::Deferred("Xledger credits are exhausted".into())
        }
        Ok(Ended::Stopped(reason)) => EntityOutcome::Stopped(reason),
        Err(err) => classify_failure(err, stop),
    };
    // The shared probe request counts in the pass's totals only.
    let traffic = engine.client.stats().entity(entity.name);
    counts.requests = traffic.requests.saturating_sub(traffic_before.requests);
    counts.bytes_received = traffic.bytes_received.saturating_sub(traffic_before.bytes_received);
    let report = EntityReport { entity: entity.name, mode, counts, duration: started.elapsed(), outcome };
    if let Err(err) = record_summary(engine, entity, &mut base, &report, started_at).await {
        tracing::warn!(entity = entity.name, error = %format!("{err:#}"), "could not record the run summary in state");
    }
    engine.progress.entity_finished(&report);
    report
}

fn classify_failure(err: anyhow::Error, stop: &StopSignal) -> EntityOutcome {
    if let Some(client_err) = err.downcast_ref::<ClientError>() {
        match client_err.kind() {
            ErrorKind::CreditsDeferred { reset_at } => {
                stop.stop(StopReason::CreditsExhausted);
                let when = reset_at.map(|t| format!(" until {t}")).unwrap_or_default();
                return EntityOutcome::Deferred(format!(
                    "Xledger credits are exhausted{when}: deferred to the next pass"
                ));
            }
            ErrorKind::DeadlineExceeded => return EntityOutcome::Stopped(StopReason::Deadline),
            _ => {}
        }
    }
    EntityOutcome::Failed(format!("{err:#}"))
}

enum Ended {
    Complete,
    Stopped(StopReason),
}

/// Keeps the last run's summary in state (best effort, after the data and cursor are safe). It
/// writes on top of the state this run last read or wrote: no second read, and a state someone
/// else changed meanwhile is a conflict, not overwritten.
async fn record_summary(
    engine: &Engine,
    entity: &'static EntitySpec,
    tracked: &mut Tracked,
    report: &EntityReport,
    started_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    if tracked.expect.is_none() {
        *tracked = read(engine, entity).await?;
    }
    let Some(mut state) = tracked.state.clone() else { return Ok(()) };
    state.last_run = Some(RunSummary {
        started_at,
        finished_at: Utc::now(),
        mode: report.mode.as_str().to_string(),
        rows_added: report.counts.added,
        rows_updated: report.counts.updated,
        rows_deleted: report.counts.deleted,
        files: report.counts.files,
        requests: report.counts.requests,
        bytes_received: report.counts.bytes_received,
        outcome: report.outcome.to_string(),
    });
    save(engine, entity, tracked, state).await
}

// ---------------------------------------------------------------------------------------------
// Full sync
// ---------------------------------------------------------------------------------------------

async fn full_new(
    engine: &Engine,
    entity: &'static EntitySpec,
    reason: FullSyncReason,
    base: &mut Tracked,
    stop: &StopSignal,
    counts: &mut Counts,
) -> anyhow::Result<FullEnd> {
    // The head cursor first: changes made while the load runs are picked up incrementally after it.
    let deltas_head_cursor = if entity.has_change_feed() {
        engine.client.deltas_head_cursor(entity).await.map_err(anyhow::Error::new)?
    } else {
        None
    };
    let (stamp, synced_at) = next_stamp(engine, entity).await?;
    tracing::info!(entity = entity.name, stamp = %stamp, reason = ?reason, "starting a full sync");
    let progress = FullSyncProgress {
        run_stamp: stamp.to_string(),
        synced_at,
        reason,
        deltas_head_cursor,
        parts: Vec::new(),
        items_cursor: None,
        pending: None,
        schema_fingerprint: None,
    };
    let last_run = base.state.as_ref().and_then(|s| s.last_run.clone());
    save(engine, entity, base, EntityState { phase: Phase::FullSync(progress.clone()), last_run }).await?;
    full_resume(engine, entity, progress, base, stop, counts).await
}

enum FullEnd {
    // Boxed: the progress is large next to a stop reason.
    Complete { progress: Box<FullSyncProgress> },
    Stopped(StopReason),
}

async fn full_resume(
    engine: &Engine,
    entity: &'static EntitySpec,
    mut progress: FullSyncProgress,
    base: &mut Tracked,
    stop: &StopSignal,
    counts: &mut Counts,
) -> anyhow::Result<FullEnd> {
    let stamp: RunStamp =
        progress.run_stamp.parse().map_err(|e| anyhow!("{}: bad run stamp in state: {e}", entity.name))?;
    let mut part: Option<PartWriter> = None;
    let mut last_cursor: Option<String> = None;
    let mut pages = Box::pin(engine.client.items_pages(entity, engine.config.page_size, progress.items_cursor.clone()));
    loop {
        if let Some(reason) = stop.check() {
            if let Some(writer) = part.take() {
                commit_part(engine, entity, &mut progress, base, writer, last_cursor.take(), counts).await?;
            }
            return Ok(FullEnd::Stopped(reason));
        }
        let Some(page) = pages.next().await else { break };
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                if let Some(writer) = part.take() {
                    writer.abort().await.ok();
                }
                return Err(anyhow::Error::new(err));
            }
        };
        let rows = page.len();
        if rows == 0 {
            continue;
        }
        if part.is_none() {
            part = Some(open_part(engine, entity, &progress, stamp).await?);
        }
        let Some(writer) = part.as_mut() else { unreachable!("opened just above") };
        let written = writer.write_nodes(page.nodes().map(|node| (node, MutationType::Added))).await;
        if let Err(err) = written.map_err(anyhow::Error::new) {
            if let Some(writer) = part.take() {
                writer.abort().await.ok();
            }
            return Err(err.context(format!("{}: converting a page of items", entity.name)));
        }
        counts.added += rows as u64;
        engine.progress.rows(entity.name, rows as u64);
        last_cursor = page.last_cursor().map(str::to_string);
        if writer.is_full()
            && let Some(writer) = part.take()
        {
            commit_part(engine, entity, &mut progress, base, writer, last_cursor.take(), counts).await?;
        }
    }
    if let Some(writer) = part.take() {
        commit_part(engine, entity, &mut progress, base, writer, last_cursor.take(), counts).await?;
    }
    if progress.parts.is_empty() {
        // An empty entity still gets one (empty) file, so readers see its schema and the run.
        let writer = open_part(engine, entity, &progress, stamp).await?;
        commit_part(engine, entity, &mut progress, base, writer, None, counts).await?;
    }
    Ok(FullEnd::Complete { progress: Box::new(progress) })
}

async fn open_part(
    engine: &Engine,
    entity: &'static EntitySpec,
    progress: &FullSyncProgress,
    stamp: RunStamp,
) -> anyhow::Result<PartWriter> {
    // The first part keeps the old app's name (no suffix); later parts are -00002, -00003, …
    let number = progress.parts.len() as u32 + 1;
    let spec = PartSpec {
        kind: FileKind::FullSync,
        stamp,
        part: (number > 1).then_some(number),
        synced_at: progress.synced_at,
        extra_metadata: vec![("xledger.full_sync_reason".into(), reason_text(&progress.reason))],
    };
    engine
        .lake
        .create_part(entity, spec, &engine.config.writer)
        .await
        .with_context(|| format!("{}: creating part {number}", entity.name))
}

/// pending → commit → checkpoint: a crash anywhere leaves a state `reconcile` resolves.
async fn commit_part(
    engine: &Engine,
    entity: &'static EntitySpec,
    progress: &mut FullSyncProgress,
    base: &mut Tracked,
    writer: PartWriter,
    cursor_after: Option<String>,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let items_cursor_after = cursor_after.or_else(|| progress.items_cursor.clone());
    progress.pending = Some(PendingPart {
        file: writer.name().to_string(),
        rows: writer.rows(),
        items_cursor_after: items_cursor_after.clone(),
    });
    let last_run = base.state.as_ref().and_then(|s| s.last_run.clone());
    save(engine, entity, base, EntityState { phase: Phase::FullSync(progress.clone()), last_run: last_run.clone() })
        .await?;
    let committed: CommittedFile =
        writer.finish().await.with_context(|| format!("{}: committing a part", entity.name))?;
    counts.files += 1;
    counts.bytes_written += committed.bytes;
    tracing::info!(entity = entity.name, file = %committed.name, rows = committed.rows, bytes = committed.bytes, "part committed");
    engine.progress.file_committed(entity.name, &committed.name);
    progress.pending = None;
    progress.parts.push(CommittedPart { file: committed.name, rows: committed.rows });
    progress.items_cursor = items_cursor_after;
    save(engine, entity, base, EntityState { phase: Phase::FullSync(progress.clone()), last_run }).await
}

async fn finish_full(
    engine: &Engine,
    entity: &'static EntitySpec,
    base: &mut Tracked,
    result: anyhow::Result<FullEnd>,
) -> anyhow::Result<Ended> {
    let progress = match result? {
        FullEnd::Stopped(reason) => return Ok(Ended::Stopped(reason)),
        FullEnd::Complete { progress } => *progress,
    };
    let stamp: RunStamp =
        progress.run_stamp.parse().map_err(|e| anyhow!("{}: bad run stamp in state: {e}", entity.name))?;
    let files: Vec<CommittedFile> = progress
        .parts
        .iter()
        .map(|p| CommittedFile { name: p.file.clone(), rows: p.rows, bytes: 0, synced_at: progress.synced_at })
        .collect();
    let manifest = engine
        .lake
        .write_manifest(entity, stamp, &files)
        .await
        .with_context(|| format!("{}: writing the manifest", entity.name))?;
    tracing::info!(entity = entity.name, manifest = %manifest, parts = files.len(), "full sync complete");
    let last_run = base.state.as_ref().and_then(|s| s.last_run.clone());
    let next = IncrementalProgress {
        deltas_cursor: progress.deltas_head_cursor.clone(),
        // The feed after the head cursor must still hold everything since the head was read.
        last_success: progress.synced_at,
        last_full_sync: Some(progress.run_stamp.clone()),
        pending: None,
        imported_from_legacy: false,
        schema_fingerprint: progress.schema_fingerprint.clone(),
    };
    save(engine, entity, base, EntityState { phase: Phase::Incremental(next), last_run }).await?;
    Ok(Ended::Complete)
}

/// How a full sync's reason reads in file metadata and logs.
pub fn reason_text(reason: &FullSyncReason) -> String {
    match reason {
        FullSyncReason::Initial => "initial".into(),
        FullSyncReason::Requested => "requested".into(),
        FullSyncReason::Gap { why } => format!("gap: {why}"),
        FullSyncReason::FullOnly => "full-only entity".into(),
    }
}

/// A run stamp later than every file of the entity (names never collide, `_synced_at` strictly
/// increases across runs) and the run's `_synced_at` (never before the stamp).
async fn next_stamp(engine: &Engine, entity: &'static EntitySpec) -> anyhow::Result<(RunStamp, DateTime<Utc>)> {
    let now = now_micros();
    let mut stamp = RunStamp::from(now);
    let files = engine.lake.list(entity.name).await.with_context(|| format!("{}: listing lake files", entity.name))?;
    if let Some(latest) = files.iter().filter_map(|f| f.stamp).max()
        && latest >= stamp
    {
        stamp = RunStamp::new(latest.as_datetime() + chrono::Duration::seconds(1));
    }
    let synced_at = now.max(stamp.as_datetime());
    Ok((stamp, synced_at))
}

// ---------------------------------------------------------------------------------------------
// Incremental
// ---------------------------------------------------------------------------------------------

enum IncrementalEnd {
    Done { idle: bool },
    Gap(String),
    Stopped(StopReason),
}

#[allow(clippy::too_many_arguments)]
async fn incremental(
    engine: &Engine,
    entity: &'static EntitySpec,
    mut cursor: Option<String>,
    mut progress: IncrementalProgress,
    mut probe: Option<DeltaPage>,
    base: &mut Tracked,
    stop: &StopSignal,
    counts: &mut Counts,
) -> anyhow::Result<IncrementalEnd> {
    let mut wrote_any = false;
    loop {
        if let Some(reason) = stop.check() {
            return Ok(IncrementalEnd::Stopped(reason));
        }
        // 1. Read a range of the feed (the probe page first when there is one).
        let cursor_from = cursor.clone();
        let mut collapser = Collapser::new();
        let mut cursor_to: Option<String> = None;
        let mut more = true;
        if let Some(page) = probe.take() {
            collapser.push(&page.edges);
            cursor_to = page.edges.last().map(|e| e.cursor.clone());
            more = page.page_info.has_next_page && !page.edges.is_empty();
            if !more && page.edges.is_empty() {
                return idle(engine, entity, progress, base, wrote_any).await;
            }
        }
        if more {
            let after = cursor_to.clone().or_else(|| cursor_from.clone());
            let mut pages = Box::pin(engine.client.delta_pages(entity, engine.config.page_size, after));
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(page) => page,
                    Err(err) if matches!(err.kind(), ErrorKind::CursorRejected) => {
                        return Ok(IncrementalEnd::Gap("the API rejected the saved change-feed cursor".into()));
                    }
                    Err(err) => return Err(anyhow::Error::new(err)),
                };
                collapser.push(&page.edges);
                if let Some(last) = page.edges.last() {
                    cursor_to = Some(last.cursor.clone());
                }
                if collapser.entries() as usize >= engine.config.max_changes_per_file {
                    break;
                }
                if stop.check().is_some() {
                    break;
                }
            }
        }
        let Some(cursor_to) = cursor_to else {
            return idle(engine, entity, progress, base, wrote_any).await;
        };
        if let Some(reason) = stop.check() {
            return Ok(IncrementalEnd::Stopped(reason));
        }
        let range_complete = (collapser.entries() as usize) < engine.config.max_changes_per_file;

        // 2. Fetch current rows, write one sync_changes file, then move the cursor.
        let collapsed = collapser.finish();
        let (stamp, synced_at) = next_stamp(engine, entity).await?;
        let spec = PartSpec {
            kind: FileKind::SyncChanges,
            stamp,
            part: None,
            synced_at,
            extra_metadata: vec![
                ("xledger.cursor_from".into(), cursor_from.clone().unwrap_or_default()),
                ("xledger.cursor_to".into(), cursor_to.clone()),
                ("xledger.feed_entries".into(), collapsed.entries.to_string()),
            ],
        };
        let mut writer = engine.lake.create_part(entity, spec, &engine.config.writer).await?;
        match write_changes(engine, entity, &collapsed, &mut writer, stop, counts).await {
            Ok(None) => {}
            Ok(Some(reason)) => {
                writer.abort().await.ok();
                return Ok(IncrementalEnd::Stopped(reason));
            }
            Err(err) => {
                writer.abort().await.ok();
                return Err(err);
            }
        }
        progress.pending = Some(PendingChanges {
            file: writer.name().to_string(),
            cursor_from: cursor_from.clone(),
            cursor_to: cursor_to.clone(),
            rows: writer.rows(),
        });
        let last_run = base.state.as_ref().and_then(|s| s.last_run.clone());
        save(
            engine,
            entity,
            base,
            EntityState { phase: Phase::Incremental(progress.clone()), last_run: last_run.clone() },
        )
        .await?;
        let committed = writer.finish().await.with_context(|| format!("{}: committing a change file", entity.name))?;
        counts.files += 1;
        counts.bytes_written += committed.bytes;
        engine.progress.file_committed(entity.name, &committed.name);
        tracing::info!(entity = entity.name, file = %committed.name, rows = committed.rows, feed_entries = collapsed.entries, "change file committed");
        progress.pending = None;
        progress.deltas_cursor = Some(cursor_to.clone());
        progress.last_success = Utc::now();
        save(engine, entity, base, EntityState { phase: Phase::Incremental(progress.clone()), last_run }).await?;
        cursor = Some(cursor_to);
        wrote_any = true;
        if range_complete {
            return Ok(IncrementalEnd::Done { idle: false });
        }
    }
}

async fn idle(
    engine: &Engine,
    entity: &'static EntitySpec,
    mut progress: IncrementalProgress,
    base: &mut Tracked,
    wrote_any: bool,
) -> anyhow::Result<IncrementalEnd> {
    // Reaching the feed's end is a success: it keeps the gap detection honest on quiet days.
    progress.last_success = Utc::now();
    let last_run = base.state.as_ref().and_then(|s| s.last_run.clone());
    save(engine, entity, base, EntityState { phase: Phase::Incremental(progress), last_run }).await?;
    Ok(IncrementalEnd::Done { idle: !wrote_any })
}

/// Writes the collapsed range: current rows of added/updated ids (ids no longer returned become
/// deletions), then the deletions. Returns `Some` when asked to stop before the file is complete.
async fn write_changes(
    engine: &Engine,
    entity: &'static EntitySpec,
    collapsed: &super::collapse::Collapsed,
    writer: &mut PartWriter,
    stop: &StopSignal,
    counts: &mut Counts,
) -> anyhow::Result<Option<StopReason>> {
    let mut wanted: HashMap<i64, MutationType> = collapsed.upserts.iter().copied().collect();
    let ids: Vec<i64> = collapsed.upserts.iter().map(|(id, _)| *id).collect();
    if !ids.is_empty() {
        let mut pages = Box::pin(engine.client.items_by_db_ids(
            entity,
            ids,
            engine.config.db_id_chunk_size,
            engine.config.page_size,
        ));
        while let Some(page) = pages.next().await {
            let page = page.map_err(anyhow::Error::new)?;
            let mut rows: Vec<(&str, MutationType)> = Vec::with_capacity(page.len());
            for node in page.nodes() {
                let id = node_db_id(node)
                    .with_context(|| format!("{}: a node without a readable dbId in a by-dbIds page", entity.name))?;
                match wanted.remove(&id) {
                    Some(kind) => {
                        match kind {
                            MutationType::Added => counts.added += 1,
                            _ => counts.updated += 1,
                        }
                        rows.push((node, kind));
                    }
                    None => tracing::warn!(
                        entity = entity.name,
                        db_id = id,
                        "by-dbIds returned a row not asked for (or twice): ignored"
                    ),
                }
            }
            writer
                .write_nodes(rows.iter().copied())
                .await
                .with_context(|| format!("{}: converting changed rows", entity.name))?;
            engine.progress.rows(entity.name, rows.len() as u64);
            if let Some(reason) = stop.check() {
                return Ok(Some(reason));
            }
        }
    }
    let mut deletions: Vec<i64> = collapsed.deletions.clone();
    if !wanted.is_empty() {
        let mut vanished: Vec<i64> = wanted.into_keys().collect();
        vanished.sort_unstable();
        tracing::info!(
            entity = entity.name,
            count = vanished.len(),
            "rows reported added/updated are no longer returned: written as deletions"
        );
        deletions.extend(vanished);
    }
    if !deletions.is_empty() {
        writer.write_deletions(&deletions).await.with_context(|| format!("{}: writing deletions", entity.name))?;
        counts.deleted += deletions.len() as u64;
        engine.progress.rows(entity.name, deletions.len() as u64);
    }
    Ok(None)
}
