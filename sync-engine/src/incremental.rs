//! Following the change feed: read a range of entries, collapse it to one net effect per dbId,
//! fetch the current rows, write one `sync_changes` file, then move the cursor.

use std::collections::HashMap;

use futures::StreamExt;
use lake_writer::{FileKind, PartSpec, PartWriter};
use sync_state::{IncrementalProgress, PendingChanges, Phase};
use xledger_client::ErrorKind;
use xledger_model::page::{DeltaPage, MutationType, node_db_id};

use crate::collapse::{Collapsed, Collapser};
use crate::entity::EntityRun;
use crate::error::EngineError;
use crate::full::abort;
use crate::stop::StopReason;

/// How following the feed ended.
pub(crate) enum FeedEnd {
    /// The feed is read to its end; `idle` when it held nothing new.
    Done {
        idle: bool,
    },
    /// The feed cannot continue from the cursor: a full load must restore the lake.
    Gap(String),
    Stopped(StopReason),
}

const CURSOR_REJECTED: &str = "the API rejected the saved change-feed cursor";

impl EntityRun<'_> {
    /// Writes the feed's changes after `progress.deltas_cursor`, one file per range of at most
    /// `max_changes_per_file` entries, starting with `probe` (the range's first page, when the
    /// pass's batched probe read it).
    pub(crate) async fn follow_feed(
        &mut self,
        mut progress: IncrementalProgress,
        mut probe: Option<DeltaPage>,
    ) -> Result<FeedEnd, EngineError> {
        let engine = self.engine;
        let entity = self.entity;
        let max_changes = engine.settings.max_changes_per_file;
        let mut wrote_any = false;
        loop {
            if let Some(reason) = self.stop.check() {
                return Ok(FeedEnd::Stopped(reason));
            }
            // 1. Read a range of the feed (the probe page first when there is one).
            let cursor_from = progress.deltas_cursor.clone();
            let mut collapser = Collapser::new();
            let mut cursor_to: Option<String> = None;
            let mut more = true;
            if let Some(page) = probe.take() {
                collapser.push(&page.edges);
                cursor_to = page.edges.last().map(|e| e.cursor.clone());
                more = page.page_info.has_next_page && !page.edges.is_empty();
            }
            if more {
                let after = cursor_to.clone().or_else(|| cursor_from.clone());
                let mut pages = Box::pin(engine.client.delta_pages(entity, engine.settings.page_size, after));
                while let Some(page) = pages.next().await {
                    let page = match page {
                        Ok(page) => page,
                        Err(error) if matches!(error.kind(), ErrorKind::CursorRejected) => {
                            return Ok(FeedEnd::Gap(CURSOR_REJECTED.into()));
                        }
                        Err(error) => {
                            return Err(EngineError::Api {
                                entity: entity.name,
                                action: "reading the change feed",
                                source: error,
                            });
                        }
                    };
                    collapser.push(&page.edges);
                    if let Some(last) = page.edges.last() {
                        cursor_to = Some(last.cursor.clone());
                    }
                    if collapser.entries() as usize >= max_changes || self.stop.check().is_some() {
                        break;
                    }
                }
            }
            let Some(cursor_to) = cursor_to else {
                // The feed's end is a success: it keeps the gap detection honest on quiet days.
                progress.last_success = self.engine.clock.now();
                self.save(Phase::Incremental(progress)).await?;
                return Ok(FeedEnd::Done { idle: !wrote_any });
            };
            if let Some(reason) = self.stop.check() {
                return Ok(FeedEnd::Stopped(reason));
            }
            let range_complete = (collapser.entries() as usize) < max_changes;

            // 2. Fetch current rows, write one sync_changes file, then move the cursor.
            let collapsed = collapser.finish();
            let (stamp, synced_at) = self.next_stamp().await?;
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
            let mut writer = engine
                .lake
                .create_part(entity, spec, &engine.settings.writer)
                .await
                .map_err(EngineError::lake(entity.name, "creating a change file"))?;
            match self.write_changes(&collapsed, &mut writer).await {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    abort(Some(writer)).await;
                    return Ok(FeedEnd::Stopped(reason));
                }
                Err(error) => {
                    abort(Some(writer)).await;
                    return Err(error);
                }
            }
            let mut pending = progress.clone();
            pending.pending = Some(PendingChanges {
                file: writer.name().to_string(),
                cursor_from,
                cursor_to: cursor_to.clone(),
                rows: writer.rows(),
            });
            progress.deltas_cursor = Some(cursor_to);
            progress.last_success = self.engine.clock.now();
            let file = self.commit(writer, Phase::Incremental(pending), Phase::Incremental(progress.clone())).await?;
            tracing::info!(entity = entity.name, file = %file.name, rows = file.rows, feed_entries = collapsed.entries, "change file committed");
            wrote_any = true;
            if range_complete {
                return Ok(FeedEnd::Done { idle: false });
            }
        }
    }

    /// Writes the collapsed range: current rows of added/updated ids (ids no longer returned become
    /// deletions), then the deletions. `Some` when asked to stop before the file is complete.
    async fn write_changes(
        &mut self,
        collapsed: &Collapsed,
        writer: &mut PartWriter,
    ) -> Result<Option<StopReason>, EngineError> {
        let engine = self.engine;
        let entity = self.entity;
        let mut wanted: HashMap<i64, MutationType> = collapsed.upserts.iter().copied().collect();
        let ids: Vec<i64> = collapsed.upserts.iter().map(|(id, _)| *id).collect();
        if !ids.is_empty() {
            let mut pages = Box::pin(engine.client.items_by_db_ids(
                entity,
                ids,
                engine.settings.db_id_chunk_size,
                engine.settings.page_size,
            ));
            while let Some(page) = pages.next().await {
                let page = page.map_err(EngineError::api(entity.name, "fetching changed rows"))?;
                let mut rows: Vec<(&str, MutationType)> = Vec::with_capacity(page.len());
                for node in page.nodes() {
                    let id = node_db_id(node).map_err(|e| EngineError::Inconsistent {
                        entity: entity.name,
                        reason: format!("a by-dbIds page holds a node without a readable dbId: {e}"),
                    })?;
                    match wanted.remove(&id) {
                        Some(kind) => {
                            match kind {
                                MutationType::Added => self.counts.added += 1,
                                _ => self.counts.updated += 1,
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
                    .map_err(EngineError::lake(entity.name, "writing changed rows"))?;
                engine.observer.rows(entity.name, rows.len() as u64);
                if let Some(reason) = self.stop.check() {
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
            writer.write_deletions(&deletions).await.map_err(EngineError::lake(entity.name, "writing deletions"))?;
            self.counts.deleted += deletions.len() as u64;
            engine.observer.rows(entity.name, deletions.len() as u64);
        }
        Ok(None)
    }
}
