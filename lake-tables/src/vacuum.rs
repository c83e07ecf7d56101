//! Vacuum: deleting data files no version within the retention needs (removed by a commit older
//! than the retention, or orphans of commits that never happened).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use xledger_model::EntitySpec;

use crate::delta::{TableRef, data_path};
use crate::error::TableError;
use crate::tables::Tables;

/// The version of a log entry name (`00000000000000000012.json`).
fn version_of(name: &str) -> Option<u64> {
    name.strip_suffix(".json").filter(|v| v.len() == 20).and_then(|v| v.parse().ok())
}

impl Tables {
    /// Deletes the data files of `entity`'s table that no version within the retention references;
    /// returns how many. Versions are dated by their log entry's modification time; the clock
    /// is [`crate::TableOptions::clock`].
    pub async fn vacuum(&self, entity: &'static EntitySpec) -> Result<u64, TableError> {
        let table = self.table_ref(entity.name)?;
        self.vacuum_table(&table).await
    }

    pub(crate) async fn vacuum_table(&self, table: &TableRef) -> Result<u64, TableError> {
        let cutoff: DateTime<Utc> = self.options.clock.now() - self.options.retention;
        let objects = self.kernel.list_all(table).await?;
        let log = table.path.clone().join("_delta_log");
        let mut commits: Vec<(u64, DateTime<Utc>)> = objects
            .iter()
            .filter(|o| o.location.prefix_match(&log).is_some())
            .filter_map(|o| o.location.filename().and_then(version_of).map(|v| (v, o.last_modified)))
            .collect();
        commits.sort();
        let Some(&(newest, _)) = commits.last() else { return Ok(0) };
        // The version a reader may still be on at the cutoff: the newest one committed before it.
        let oldest_needed = commits.iter().rev().find(|(_, at)| *at <= cutoff).map(|(v, _)| *v);
        let Some(oldest_needed) = oldest_needed else { return Ok(0) };
        let mut keep: HashSet<object_store::path::Path> = HashSet::new();
        let current = self.kernel.snapshot(table).await?;
        for file in self.kernel.files(table, &current).await?.files {
            keep.insert(data_path(table, &file.path));
        }
        if oldest_needed < newest {
            let old = self.kernel.snapshot_at(table, oldest_needed).await?;
            for file in self.kernel.files(table, &old).await?.files {
                keep.insert(data_path(table, &file.path));
            }
        }
        let mut deleted = 0;
        for object in objects {
            let is_data = object.location.prefix_match(&log).is_none()
                && object.location.filename().is_some_and(|n| n.ends_with(".parquet"));
            // Files written after the cutoff may belong to versions committed since: keep them.
            if is_data && !keep.contains(&object.location) && object.last_modified < cutoff {
                self.kernel.delete(table, &object.location).await?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(table = %table.description, deleted, "vacuumed data files");
        }
        Ok(deleted)
    }
}
