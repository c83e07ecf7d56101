//! The simulated Xledger tenant: rows per entity, each entity's change feed, and the clock.
//!
//! Rows are kept as pre-rendered node JSON (the registry's full selection) so that a page of
//! 10 000 is a concatenation; a mutation re-renders only the row it changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use xledger_model::EntitySpec;
use xledger_model::page::MutationType;
use xledger_model::time::utc_to_oslo_wall_clock;

use crate::config::{DataProfile, SimConfig};
use crate::error::SimError;
use crate::generate::{
    FieldTree, NullRates, RowIdentity, first_added_db_id, initial_db_id, initial_times, render_node,
};
use crate::rng::SimRng;
use crate::webhooks::{QueuedDelivery, WebhookRegistry};

/// One current row: its timestamps (Central European wall clock, as Xledger keeps them) and its
/// node rendered with every registry column.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) created: NaiveDateTime,
    pub(crate) modified: NaiveDateTime,
    pub(crate) version: u32,
    pub(crate) node: Box<str>,
    /// True while the node's top-level `dbId`, `createdAt` and `modifiedAt` are exactly what
    /// this row's key and times render to (only `corrupt` breaks that): then a scan selecting
    /// just those is rendered from the row without reading the node.
    pub(crate) identity_exact: bool,
}

/// One change-feed entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaEntry {
    /// Position in the feed; increases across all entities, so cursors are never reused.
    pub(crate) seq: u64,
    pub(crate) db_id: i64,
    pub(crate) mutation: MutationType,
    pub(crate) at: DateTime<Utc>,
}

/// One entity's rows and change feed.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) spec: &'static EntitySpec,
    pub(crate) tree: FieldTree,
    pub(crate) rows: BTreeMap<i64, Row>,
    /// Retained entries, oldest first.
    pub(crate) log: VecDeque<DeltaEntry>,
    /// The newest sequence number dropped by retention (0: nothing dropped yet).
    pub(crate) dropped_through: u64,
    next_db_id: i64,
}

/// Counts of changes made by [`crate::SimHandle::random_changes`], in total and per entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub added: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Entity name → its counts.
    pub by_entity: BTreeMap<String, EntityChanges>,
}

/// Changes made to one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityChanges {
    pub added: usize,
    pub updated: usize,
    pub deleted: usize,
    /// dbIds changed more than once in this batch (ADDED then UPDATED, UPDATED twice, …).
    pub changed_repeatedly: Vec<i64>,
}

/// The whole simulated tenant.
#[derive(Debug)]
pub(crate) struct Store {
    values: Values,
    retention: Duration,
    now: DateTime<Utc>,
    last_seq: u64,
    /// Every mutation (silent ones aside) takes the next one: webhook edges' `syncVersion`.
    last_sync_version: u64,
    pub(crate) tables: BTreeMap<&'static str, Table>,
    pub(crate) webhooks: WebhookRegistry,
    outbox: Vec<QueuedDelivery>,
}

impl Store {
    /// Generates every entity's initial rows (slow for millions of rows: call off the runtime).
    /// The change feeds start empty: the initial rows were last modified before the retention window.
    pub(crate) fn generate(config: &SimConfig) -> Result<Store, SimError> {
        check_entities(&config.entities)?;
        for name in config.rows_per_entity.keys() {
            if !config.entities.iter().any(|spec| spec.name == name) {
                return Err(SimError::UnknownEntity { entity: name.clone(), known: names_of(&config.entities) });
            }
        }
        let retention = Duration::from_std(config.retention)
            .map_err(|_| SimError::InvalidConfig { reason: "retention is too long".into() })?;
        let values = Values { seed: config.seed, data: config.data };
        let mut tables = BTreeMap::new();
        for &spec in &config.entities {
            let count = config.rows_per_entity.get(spec.name).copied().unwrap_or(config.rows);
            let tree = FieldTree::from_columns(spec.columns);
            let mut rows = BTreeMap::new();
            for index in 0..count {
                let db_id = initial_db_id(spec.db_id_kind, index);
                let (created, modified) = initial_times(config.seed, spec.name, db_id, config.start_time);
                let row = new_row(&tree, values, spec.name, db_id, 0, created, modified);
                rows.insert(db_id, row);
            }
            let table = Table {
                spec,
                tree,
                rows,
                log: VecDeque::new(),
                dropped_through: 0,
                next_db_id: first_added_db_id(spec.db_id_kind, count),
            };
            tables.insert(spec.name, table);
        }
        Ok(Store {
            values,
            retention,
            now: config.start_time,
            last_seq: 0,
            last_sync_version: 0,
            tables,
            webhooks: WebhookRegistry::new(config.webhooks.deliver_deletions),
            outbox: Vec::new(),
        })
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub(crate) fn advance_clock(&mut self, by: Duration) {
        self.set_clock(self.now + by);
    }

    /// Moves the clock (backwards too, for tests) and drops feed entries older than the retention.
    pub(crate) fn set_clock(&mut self, at: DateTime<Utc>) {
        self.now = at;
        self.prune();
    }

    fn prune(&mut self) {
        let oldest_kept = self.now - self.retention;
        for table in self.tables.values_mut() {
            while let Some(entry) = table.log.front().copied() {
                if entry.at >= oldest_kept {
                    break;
                }
                table.dropped_through = entry.seq;
                table.log.pop_front();
            }
        }
    }

    pub(crate) fn add(&mut self, entity: &str) -> Result<i64, SimError> {
        let db_id = self.silent_add(entity)?;
        self.log(entity, db_id, MutationType::Added);
        Ok(db_id)
    }

    /// Adds a row with `createdAt` = `modifiedAt` = now, without a feed entry or a delivery.
    pub(crate) fn silent_add(&mut self, entity: &str) -> Result<i64, SimError> {
        let values = self.values;
        let now = self.now;
        let table = self.table_mut(entity)?;
        let db_id = table.next_db_id;
        table.next_db_id += 1;
        let wall_clock = utc_to_oslo_wall_clock(now);
        let row = new_row(&table.tree, values, table.spec.name, db_id, 0, wall_clock, wall_clock);
        table.rows.insert(db_id, row);
        Ok(db_id)
    }

    /// Gives the row new values (nested objects included) and a new `modifiedAt`.
    pub(crate) fn update(&mut self, entity: &str, db_id: i64) -> bool {
        let updated = self.silent_update(entity, db_id, ModifiedAt::Now);
        if updated {
            self.log(entity, db_id, MutationType::Updated);
        }
        updated
    }

    /// Gives the row new values without a feed entry or a delivery; `modified` says whether
    /// `modifiedAt` moves to now or keeps its value.
    pub(crate) fn silent_update(&mut self, entity: &str, db_id: i64, modified: ModifiedAt) -> bool {
        let values = self.values;
        let wall_clock = utc_to_oslo_wall_clock(self.now);
        let Ok(table) = self.table_mut(entity) else { return false };
        let spec_name = table.spec.name;
        let Some(old) = table.rows.get(&db_id) else { return false };
        let modified = match modified {
            ModifiedAt::Now => wall_clock,
            ModifiedAt::Keep => old.modified,
        };
        let row = new_row(&table.tree, values, spec_name, db_id, old.version + 1, old.created, modified);
        table.rows.insert(db_id, row);
        true
    }

    pub(crate) fn corrupt(
        &mut self,
        entity: &str,
        db_id: i64,
        path: &str,
        value: serde_json::Value,
    ) -> Result<bool, SimError> {
        let table = self.table_mut(entity)?;
        let Some(row) = table.rows.get_mut(&db_id) else { return Ok(false) };
        let no_such_field = || SimError::NoSuchField { entity: entity.to_owned(), db_id, path: path.to_owned() };
        let mut node: serde_json::Value = serde_json::from_str(&row.node)
            .map_err(|e| SimError::Internal { reason: format!("row {entity}/{db_id} is not JSON: {e}") })?;
        let mut target = &mut node;
        for name in path.split('.') {
            target = target.as_object_mut().and_then(|object| object.get_mut(name)).ok_or_else(no_such_field)?;
        }
        *target = value;
        row.node = node.to_string().into_boxed_str();
        if matches!(path, "dbId" | "createdAt" | "modifiedAt") {
            row.identity_exact = false;
        }
        Ok(true)
    }

    pub(crate) fn delete(&mut self, entity: &str, db_id: i64) -> bool {
        let deleted = self.silent_delete(entity, db_id);
        if deleted {
            self.log(entity, db_id, MutationType::Deleted);
        }
        deleted
    }

    /// Removes a row without a feed entry or a delivery.
    pub(crate) fn silent_delete(&mut self, entity: &str, db_id: i64) -> bool {
        let Ok(table) = self.table_mut(entity) else { return false };
        table.rows.remove(&db_id).is_some()
    }

    /// Records a mutation: a feed entry (entities with a change feed) and a delivery for every
    /// webhook subscribed to the entity that is running or recovering.
    fn log(&mut self, entity: &str, db_id: i64, mutation: MutationType) {
        let seq = self.last_seq + 1;
        let at = self.now;
        self.last_sync_version += 1;
        let Some(table) = self.tables.get_mut(entity) else { return };
        if table.spec.has_change_feed() {
            self.last_seq = seq;
            table.log.push_back(DeltaEntry { seq, db_id, mutation, at });
        }
        self.webhooks.deliveries_for(table, db_id, mutation, self.last_sync_version, &mut self.outbox);
    }

    /// Adds, updates and deletes spread over every entity; about half of the updates and deletes
    /// hit a dbId this batch already changed, so the feed holds several entries for one row.
    pub(crate) fn random_changes(&mut self, count: usize, seed: u64) -> ChangeSummary {
        let mut rng = SimRng::new(seed);
        let names: Vec<&'static str> = self.tables.keys().copied().collect();
        let mut summary = ChangeSummary::default();
        let mut touched: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
        for _ in 0..count {
            let Some(&entity) = rng.pick(&names) else { break };
            let roll = rng.unit();
            let recent = touched.get(entity).and_then(|ids| rng.pick(ids).copied()).filter(|_| rng.chance(0.5));
            let target = recent.or_else(|| self.random_row(entity, &mut rng));
            let changes = summary.by_entity.entry(entity.to_owned()).or_default();
            let (db_id, done) = match target {
                Some(db_id) if roll < 0.55 && self.update(entity, db_id) => {
                    changes.updated += 1;
                    summary.updated += 1;
                    (db_id, true)
                }
                Some(db_id) if (0.55..0.75).contains(&roll) && self.delete(entity, db_id) => {
                    changes.deleted += 1;
                    summary.deleted += 1;
                    (db_id, true)
                }
                _ => match self.add(entity) {
                    Ok(db_id) => {
                        changes.added += 1;
                        summary.added += 1;
                        (db_id, true)
                    }
                    Err(_) => (0, false),
                },
            };
            if done {
                let ids = touched.entry(entity).or_default();
                if ids.contains(&db_id) && !changes.changed_repeatedly.contains(&db_id) {
                    changes.changed_repeatedly.push(db_id);
                }
                ids.push(db_id);
            }
        }
        summary
    }

    fn random_row(&self, entity: &str, rng: &mut SimRng) -> Option<i64> {
        let rows = &self.tables.get(entity)?.rows;
        let (&low, _) = rows.first_key_value()?;
        let (&high, _) = rows.last_key_value()?;
        let probe = rng.between(low, high);
        rows.range(probe..).next().map(|(&id, _)| id)
    }

    /// The current nodes exactly as the items query returns them, sorted by dbId.
    pub(crate) fn truth(&self, entity: &str) -> Result<Vec<serde_json::Value>, SimError> {
        let table = self.table(entity)?;
        table
            .rows
            .iter()
            .map(|(&db_id, row)| {
                serde_json::from_str(&row.node)
                    .map_err(|e| SimError::Internal { reason: format!("row {entity}/{db_id} is not JSON: {e}") })
            })
            .collect()
    }

    pub(crate) fn table(&self, entity: &str) -> Result<&Table, SimError> {
        self.tables.get(entity).ok_or_else(|| self.unknown_entity(entity))
    }

    fn table_mut(&mut self, entity: &str) -> Result<&mut Table, SimError> {
        let error = self.unknown_entity(entity);
        self.tables.get_mut(entity).ok_or(error)
    }

    fn unknown_entity(&self, entity: &str) -> SimError {
        let known = self.tables.keys().copied().collect::<Vec<_>>().join(", ");
        SimError::UnknownEntity { entity: entity.to_owned(), known }
    }

    /// Deliveries rendered by mutations since the last call, in mutation order.
    pub(crate) fn take_outbox(&mut self) -> Vec<QueuedDelivery> {
        std::mem::take(&mut self.outbox)
    }
}

/// Whether a silent update moves `modifiedAt` (visible to a `dbId + modifiedAt` scan) or keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModifiedAt {
    Now,
    Keep,
}

/// Root fields the simulator answers itself: no entity may use these names.
const RESERVED_ROOT_FIELDS: &[&str] = &["__typename", "webhook", "webhooks", "addWebhooks", "removeWebhooks"];

/// Refuses a set of specs the simulator cannot serve unambiguously.
fn check_entities(specs: &[&'static EntitySpec]) -> Result<(), SimError> {
    let invalid = |reason: String| Err(SimError::InvalidConfig { reason });
    let mut names = BTreeSet::new();
    let mut root_fields = BTreeSet::new();
    for spec in specs {
        if !names.insert(spec.name) {
            return invalid(format!("entity {:?} is served twice", spec.name));
        }
        if !spec.columns.iter().any(|c| c.path == ["dbId"]) {
            return invalid(format!("entity {:?} has no top-level dbId column", spec.name));
        }
        let fields = std::iter::once(spec.items_field).chain(spec.change_feed.map(|feed| feed.field));
        for field in fields {
            if RESERVED_ROOT_FIELDS.contains(&field) || !root_fields.insert(field) {
                return invalid(format!("root field {field:?} of entity {:?} is already taken", spec.name));
            }
        }
    }
    Ok(())
}

fn names_of(specs: &[&'static EntitySpec]) -> String {
    specs.iter().map(|spec| spec.name).collect::<Vec<_>>().join(", ")
}

/// What every generated value is a function of, besides the row: the seed and the profile.
#[derive(Debug, Clone, Copy)]
struct Values {
    seed: u64,
    data: DataProfile,
}

fn new_row(
    tree: &FieldTree,
    Values { seed, data }: Values,
    entity: &str,
    db_id: i64,
    version: u32,
    created: impl IntoWallClock,
    modified: impl IntoWallClock,
) -> Row {
    let created = created.into_wall_clock();
    let modified = modified.into_wall_clock();
    let node = render_node(
        tree,
        RowIdentity { seed, entity, db_id, version, created, modified, data, nulls: NullRates::SIMULATOR },
    );
    Row { created, modified, version, node: node.into_boxed_str(), identity_exact: true }
}

trait IntoWallClock {
    fn into_wall_clock(self) -> NaiveDateTime;
}

impl IntoWallClock for NaiveDateTime {
    fn into_wall_clock(self) -> NaiveDateTime {
        self
    }
}

impl IntoWallClock for DateTime<Utc> {
    fn into_wall_clock(self) -> NaiveDateTime {
        utc_to_oslo_wall_clock(self)
    }
}

/// A row filter (`filter: { dbId_in, dbId_gt, modifiedAt_gte, AND, OR }`).
#[derive(Debug, Default, Clone)]
pub(crate) struct RowFilter {
    pub(crate) db_id_in: Option<BTreeSet<i64>>,
    pub(crate) db_id_gt: Option<i64>,
    /// Compared with the row's wall clock, as a server keeping local times would.
    pub(crate) modified_at_gte: Option<NaiveDateTime>,
    pub(crate) all: Vec<RowFilter>,
    pub(crate) any: Vec<RowFilter>,
}

impl RowFilter {
    fn matches(&self, db_id: i64, row: &Row) -> bool {
        self.db_id_in.as_ref().is_none_or(|ids| ids.contains(&db_id))
            && self.db_id_gt.is_none_or(|gt| db_id > gt)
            && self.modified_at_gte.is_none_or(|gte| row.modified >= gte)
            && self.all.iter().all(|f| f.matches(db_id, row))
            && (self.any.is_empty() || self.any.iter().any(|f| f.matches(db_id, row)))
    }
}

/// Which part of a connection a request asks for: Relay's `first`/`last`/`after`/`before`, already
/// capped and with cursors decoded to keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window<K> {
    pub(crate) first: Option<usize>,
    pub(crate) last: Option<usize>,
    pub(crate) after: Option<K>,
    pub(crate) before: Option<K>,
}

/// A page of a connection.
#[derive(Debug)]
pub(crate) struct Slice<T> {
    pub(crate) items: Vec<T>,
    pub(crate) has_next_page: bool,
    pub(crate) has_previous_page: bool,
}

fn bounds<K: Copy>(window: &Window<K>) -> (Bound<K>, Bound<K>) {
    (window.after.map_or(Bound::Unbounded, Bound::Excluded), window.before.map_or(Bound::Unbounded, Bound::Excluded))
}

/// Relay slicing over an ordered sequence already restricted to `(after, before)`.
fn slice<T, K>(mut ordered: impl DoubleEndedIterator<Item = T>, window: &Window<K>) -> Slice<T> {
    let has_previous_page = window.after.is_some();
    match (window.first, window.last) {
        (Some(first), last) => {
            let mut items: Vec<T> = ordered.by_ref().take(first).collect();
            let has_next_page = ordered.next().is_some();
            let mut has_previous_page = has_previous_page;
            if let Some(last) = last
                && items.len() > last
            {
                items.drain(..items.len() - last);
                has_previous_page = true;
            }
            Slice { items, has_next_page, has_previous_page }
        }
        (None, Some(last)) => {
            let mut reversed = ordered.rev();
            let mut items: Vec<T> = reversed.by_ref().take(last).collect();
            let has_previous_page = reversed.next().is_some();
            items.reverse();
            Slice { items, has_next_page: false, has_previous_page }
        }
        // The caller always sets one of them (a missing `first` means the page cap).
        (None, None) => Slice { items: Vec::new(), has_next_page: false, has_previous_page },
    }
}

impl Table {
    /// Rows in dbId order matching `filter`, sliced by `window` (keys are dbIds).
    pub(crate) fn items_page(&self, filter: &RowFilter, window: &Window<i64>) -> Slice<(i64, &Row)> {
        let range = bounds(window);
        match &filter.db_id_in {
            // Look the listed ids up instead of scanning every row.
            Some(ids) => slice(
                ids.range(range)
                    .filter_map(|id| self.rows.get_key_value(id))
                    .map(|(&id, row)| (id, row))
                    .filter(|&(id, row)| filter.matches(id, row)),
                window,
            ),
            None => slice(
                self.rows.range(range).map(|(&id, row)| (id, row)).filter(|&(id, row)| filter.matches(id, row)),
                window,
            ),
        }
    }

    /// Retained feed entries oldest → newest, sliced by `window` (keys are sequence numbers).
    pub(crate) fn deltas_page(&self, window: &Window<u64>) -> Slice<DeltaEntry> {
        let start = match window.after {
            Some(after) => self.log.partition_point(|e| e.seq <= after),
            None => 0,
        };
        let end = match window.before {
            Some(before) => self.log.partition_point(|e| e.seq < before),
            None => self.log.len(),
        };
        slice(self.log.range(start..end.max(start)).copied(), window)
    }
}
