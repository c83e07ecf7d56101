//! Full loads, new and resumed: the feed's head cursor first, then every page of items straight
//! into part files, a checkpoint after each part, the manifest last.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lake_writer::{CommittedFile, FileKind, PartSpec, PartWriter, RunStamp};
use sync_state::{CommittedPart, FullSyncProgress, FullSyncReason, IncrementalProgress, PendingPart, Phase};
use xledger_model::page::MutationType;

use crate::entity::EntityRun;
use crate::error::EngineError;
use crate::stop::StopReason;

/// How a full load's pages ended.
pub(crate) enum FullEnd {
    /// The manifest is written and the state follows the feed from the load's head cursor.
    Complete(IncrementalProgress),
    Stopped(StopReason),
}

impl EntityRun<'_> {
    /// Starts a new full load: reads the feed's head first (changes made while the load runs are
    /// picked up after it), picks a run stamp, saves the load's progress, then loads.
    pub(crate) async fn full_new(&mut self, reason: FullSyncReason) -> Result<FullEnd, EngineError> {
        let entity = self.entity;
        let deltas_head_cursor = if entity.has_change_feed() {
            self.engine
                .client
                .deltas_head_cursor(entity)
                .await
                .map_err(EngineError::api(entity.name, "reading the change feed's head"))?
        } else {
            None
        };
        let (stamp, synced_at) = self.next_stamp().await?;
        tracing::info!(entity = entity.name, stamp = %stamp, reason = %reason_text(&reason), "starting a full load");
        let progress = FullSyncProgress {
            run_stamp: stamp.to_string(),
            synced_at,
            reason,
            deltas_head_cursor,
            parts: Vec::new(),
            items_cursor: None,
            pending: None,
            schema_fingerprint: Some(entity.fingerprint.to_string()),
        };
        self.save(Phase::FullSync(progress.clone())).await?;
        self.full_resume(progress).await
    }

    /// Loads the items after `progress.items_cursor` into parts of the run, then completes it.
    pub(crate) async fn full_resume(&mut self, mut progress: FullSyncProgress) -> Result<FullEnd, EngineError> {
        let engine = self.engine;
        let entity = self.entity;
        let stamp: RunStamp = progress.run_stamp.parse().map_err(|e| EngineError::Inconsistent {
            entity: entity.name,
            reason: format!("the stored full load has a bad run stamp: {e}"),
        })?;
        let mut part: Option<PartWriter> = None;
        let mut last_cursor: Option<String> = None;
        let mut pages =
            Box::pin(engine.client.items_pages(entity, engine.settings.page_size, progress.items_cursor.clone()));
        loop {
            if let Some(reason) = self.stop.check() {
                if let Some(writer) = part.take() {
                    self.commit_part(&mut progress, writer, last_cursor.take()).await?;
                }
                return Ok(FullEnd::Stopped(reason));
            }
            let Some(page) = pages.next().await else { break };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    abort(part).await;
                    return Err(EngineError::Api { entity: entity.name, action: "reading items", source: error });
                }
            };
            if page.is_empty() {
                continue;
            }
            let writer = match &mut part {
                Some(writer) => writer,
                None => part.insert(self.open_part(&progress, stamp).await?),
            };
            if let Err(error) = writer.write_nodes(page.nodes().map(|node| (node, MutationType::Added))).await {
                abort(part).await;
                return Err(EngineError::Lake {
                    entity: entity.name,
                    action: "writing a page of items",
                    source: error,
                });
            }
            self.counts.added += page.len() as u64;
            engine.observer.rows(entity.name, page.len() as u64);
            last_cursor = page.last_cursor().map(str::to_string);
            if writer.is_full()
                && let Some(writer) = part.take()
            {
                self.commit_part(&mut progress, writer, last_cursor.take()).await?;
            }
        }
        if let Some(writer) = part.take() {
            self.commit_part(&mut progress, writer, last_cursor.take()).await?;
        }
        if progress.parts.is_empty() {
            // An empty entity still gets one (empty) file, so readers see its schema and the run.
            let writer = self.open_part(&progress, stamp).await?;
            self.commit_part(&mut progress, writer, None).await?;
        }
        self.complete(progress, stamp).await.map(FullEnd::Complete)
    }

    async fn open_part(&self, progress: &FullSyncProgress, stamp: RunStamp) -> Result<PartWriter, EngineError> {
        // The first part keeps the old app's name (no suffix); later parts are -00002, -00003, …
        let number = progress.parts.len() as u32 + 1;
        let spec = PartSpec {
            kind: FileKind::FullSync,
            stamp,
            part: (number > 1).then_some(number),
            synced_at: progress.synced_at,
            extra_metadata: vec![("xledger.full_sync_reason".into(), reason_text(&progress.reason))],
        };
        self.engine
            .lake
            .create_part(self.entity, spec, &self.engine.settings.writer)
            .await
            .map_err(EngineError::lake(self.entity.name, "creating a part file"))
    }

    /// Commits a part and checkpoints the load after it: a crash or a stop resumes after `cursor_after`.
    async fn commit_part(
        &mut self,
        progress: &mut FullSyncProgress,
        writer: PartWriter,
        cursor_after: Option<String>,
    ) -> Result<(), EngineError> {
        let items_cursor_after = cursor_after.or_else(|| progress.items_cursor.clone());
        let (file, rows) = (writer.name().to_string(), writer.rows());
        let mut pending = progress.clone();
        pending.pending =
            Some(PendingPart { file: file.clone(), rows, items_cursor_after: items_cursor_after.clone() });
        progress.parts.push(CommittedPart { file, rows });
        progress.items_cursor = items_cursor_after;
        self.commit(writer, Phase::FullSync(pending), Phase::FullSync(progress.clone())).await.map(drop)
    }

    /// Writes the manifest (the load is complete from then on) and switches the state to follow
    /// the feed from the head cursor read before the first page.
    async fn complete(
        &mut self,
        progress: FullSyncProgress,
        stamp: RunStamp,
    ) -> Result<IncrementalProgress, EngineError> {
        let entity = self.entity;
        let files: Vec<CommittedFile> = progress
            .parts
            .iter()
            .map(|p| CommittedFile { name: p.file.clone(), rows: p.rows, bytes: 0, synced_at: progress.synced_at })
            .collect();
        let manifest = self
            .engine
            .lake
            .write_manifest(entity, stamp, &files)
            .await
            .map_err(EngineError::lake(entity.name, "writing the manifest"))?;
        tracing::info!(entity = entity.name, %manifest, parts = files.len(), "full load complete");
        let next = IncrementalProgress {
            deltas_cursor: progress.deltas_head_cursor.clone(),
            // The feed after the head cursor still holds everything since the head was read.
            last_success: progress.synced_at,
            last_full_sync: Some(progress.run_stamp.clone()),
            pending: None,
            imported_from_legacy: false,
            schema_fingerprint: progress.schema_fingerprint.clone(),
        };
        self.save(Phase::Incremental(next.clone())).await?;
        Ok(next)
    }

    /// A run stamp later than every file of the entity (names never collide, `_synced_at` strictly
    /// increases across runs) and the run's `_synced_at` (never before the stamp).
    pub(crate) async fn next_stamp(&self) -> Result<(RunStamp, DateTime<Utc>), EngineError> {
        let now = self.now_micros();
        let mut stamp = RunStamp::from(now);
        let files = self
            .engine
            .lake
            .list(self.entity.name)
            .await
            .map_err(EngineError::lake(self.entity.name, "listing lake files"))?;
        if let Some(latest) = files.iter().filter_map(|f| f.stamp).max()
            && latest >= stamp
        {
            stamp = RunStamp::new(latest.as_datetime() + chrono::Duration::seconds(1));
        }
        Ok((stamp, now.max(stamp.as_datetime())))
    }
}

/// Abandons an unfinished part: nothing of it becomes visible.
pub(crate) async fn abort(part: Option<PartWriter>) {
    if let Some(writer) = part
        && let Err(error) = writer.abort().await
    {
        tracing::warn!(%error, "could not remove the staged data of an abandoned file (it stays invisible)");
    }
}

/// How a full load's reason reads in file metadata and logs.
pub fn reason_text(reason: &FullSyncReason) -> String {
    match reason {
        FullSyncReason::Initial => "initial".into(),
        FullSyncReason::Requested => "requested".into(),
        FullSyncReason::Gap { why } => format!("gap: {why}"),
        FullSyncReason::FullOnly => "full-only entity".into(),
    }
}
