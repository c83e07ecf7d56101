//! The [`StateStore`] trait, and its one implementation written on top of a backend's compare-and-swap.
//!
//! Backends only store opaque JSON values under keys with versions ([`KvBackend`]); the state model,
//! the leases, the usage records and the old app's keys are handled here, once, for every backend.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::holder::{self, DeathEvidence, Liveness};
use crate::model::{self, EntityState, IncrementalProgress, LeaseRecord, Phase, StoredHolder};
use crate::usage::{self, MonthlyUsage, UsageDelta, UsageMonth};
use crate::{Clock, LeaseHolder, ProcessProbe, StateError};

/// A version tag (an ETag): opaque, compared only for equality.
///
/// [`Version::absent`] is the version of a state that is not stored yet (for example one imported from the
/// old app's keys): expecting it is the same as [`Expect::Absent`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    pub(crate) fn new(tag: impl Into<String>) -> Self {
        Self(tag.into())
    }

    /// The version of a state that is not stored.
    pub fn absent() -> Self {
        Self(String::new())
    }

    /// Whether this is [`Version::absent`].
    pub fn is_absent(&self) -> bool {
        self.0.is_empty()
    }

    /// The tag as the backend gave it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_absent() { f.write_str("(absent)") } else { write!(f, "\"{}\"", self.0) }
    }
}

/// A value with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version: pass it back in [`Expect::Version`] to write only if nothing changed since.
    pub version: Version,
}

/// What a compare-and-swap write expects to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No state stored yet (create only).
    Absent,
    /// Exactly this version (replace only if unchanged).
    Version(Version),
}

impl Expect {
    /// `Absent` for [`Version::absent`], otherwise `Version`: the expectation that matches a read.
    pub fn matching(version: &Version) -> Self {
        if version.is_absent() { Expect::Absent } else { Expect::Version(version.clone()) }
    }

    /// Folds `Version(absent)` into `Absent`, so backends see one spelling.
    fn normalized(&self) -> Expect {
        match self {
            Expect::Version(v) => Expect::matching(v),
            Expect::Absent => Expect::Absent,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Absent => f.write_str("no state"),
            Expect::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// The right to sync one entity until `expires_at`, unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The entity.
    pub entity: String,
    /// Who holds it.
    pub holder: LeaseHolder,
    /// When the holder first acquired it (renewals keep it).
    pub acquired_at: DateTime<Utc>,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    pub(crate) version: Version,
}

/// A lease just acquired, and the lease it replaced, if there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The lease, held by the caller.
    pub lease: Lease,
    /// The previous holder's lease, taken over because it had expired or its holder died; `None` when
    /// the lease was free.
    pub replaced: Option<ReplacedLease>,
}

/// A lease that [`StateStore::acquire_lease`] took over from its previous holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedLease {
    /// Who held it.
    pub holder: LeaseHolder,
    /// When it would have expired.
    pub expires_at: DateTime<Utc>,
    /// Why it could be taken.
    pub reason: TakeoverReason,
}

impl fmt::Display for ReplacedLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (holder, pid) = (&self.holder, self.holder.pid);
        match self.reason {
            TakeoverReason::Expired => write!(f, "`{holder}` (its lease expired at {})", self.expires_at),
            TakeoverReason::HolderGone => write!(f, "`{holder}` (process {pid} no longer exists)"),
            TakeoverReason::PidReused { recorded_ticks, current_ticks } => write!(
                f,
                "`{holder}` (pid {pid} now belongs to a process started at tick {current_ticks}, not \
                 {recorded_ticks})"
            ),
        }
    }
}

/// Why a held lease could be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeoverReason {
    /// It had expired: its holder stopped renewing it (on any host).
    Expired,
    /// Its holder ran on this machine and no process has its pid any more.
    HolderGone,
    /// Its holder ran on this machine and its pid now belongs to a process that started at another time.
    PidReused {
        /// The holder's start time, as its lease recorded it (clock ticks since boot).
        recorded_ticks: u64,
        /// The start time of the process that has the pid now.
        current_ticks: u64,
    },
}

impl TakeoverReason {
    /// Whether the previous holder is known to have died (rather than let its lease lapse): worth a
    /// warning, since it stopped without releasing its lease.
    pub fn holder_died(&self) -> bool {
        !matches!(self, TakeoverReason::Expired)
    }
}

impl From<DeathEvidence> for TakeoverReason {
    fn from(evidence: DeathEvidence) -> Self {
        match evidence {
            DeathEvidence::Gone => TakeoverReason::HolderGone,
            DeathEvidence::PidReused { recorded_ticks, current_ticks } => {
                TakeoverReason::PidReused { recorded_ticks, current_ticks }
            }
        }
    }
}

/// Durable sync state and leases, per entity, with compare-and-swap writes.
///
/// The engine holds an `Arc<dyn StateStore>` from [`crate::open_store`] and never knows the backend.
/// Backends differ in what is documented here:
/// - the **file** backend keeps every entity in one JSON file guarded by an advisory lock on a sidecar
///   `.lock` file, safe against other processes on the same machine (and network file systems that honour
///   `flock`);
/// - the **App Configuration** backend keeps one key per entity (`<prefix>state/<entity>`), per lease
///   (`<prefix>lease/<entity>`) and per usage month (`<prefix>usage/<endpoint>/<YYYY-MM>`) under the
///   configured label, and reads the old app's keys (see [`get`]).
///
/// [`get`]: StateStore::get
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Where the state lives, for logs: `file /x/state.json` or
    /// `App Configuration https://x.azconfig.io (prefix …, label …)`. Never a secret.
    fn describe(&self) -> String;

    /// The entity's state and its version, or `None` when nothing is stored.
    ///
    /// App Configuration only: when our key is absent and the old app's keys say its full load was
    /// complete, the old cursor is returned as [`Phase::Incremental`] with `imported_from_legacy: true`
    /// and [`Version::absent`]; the first `put` (with [`Expect::Absent`] or that version) creates our key
    /// and the old keys are left untouched.
    async fn get(&self, entity: &str) -> Result<Option<Versioned<EntityState>>, StateError>;

    /// Writes the entity's state if the stored version is what `expect` says; returns the new version.
    /// Otherwise nothing is written and the result is [`StateError::Conflict`].
    async fn put(&self, entity: &str, state: &EntityState, expect: Expect) -> Result<Version, StateError>;

    /// Forgets the entity's state (`reset-state`); its next run starts a full sync. The lease, if any, is
    /// kept. Where the old app's keys would be imported again, an explicit [`Phase::NotStarted`] is
    /// written instead of deleting, so the reset sticks.
    async fn delete(&self, entity: &str) -> Result<(), StateError>;

    /// Every entity with stored state, by name. States the old app left are not listed: the engine
    /// calls [`get`](StateStore::get) for each entity it knows.
    async fn list(&self) -> Result<Vec<(String, Versioned<EntityState>)>, StateError>;

    /// Takes the entity's lease for `ttl` if it is free, expired, or held by a holder known to be dead:
    /// one that ran on this machine (same host, boot and pid namespace) whose process no longer exists or
    /// whose pid now belongs to a process with another start time (see [`StoreOptions::process_probe`]).
    /// A takeover is reported in [`Acquired::replaced`] (and logged, as a warning when the holder died).
    ///
    /// Otherwise [`StateError::LeaseHeld`]: the holder runs, or runs on another host, or its liveness
    /// cannot be told (an unknown start time, a lease written by an older build) — those leases expire
    /// by their time-to-live. Also when `holder` itself holds it: a holder renews, never re-acquires.
    ///
    /// [`StoreOptions::process_probe`]: crate::StoreOptions::process_probe
    async fn acquire_lease(&self, entity: &str, holder: &LeaseHolder, ttl: Duration) -> Result<Acquired, StateError>;

    /// Extends a lease to `now + ttl`. [`StateError::LeaseLost`] when someone else took it after it
    /// expired, or it was removed.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StateError>;

    /// Gives the lease up. [`StateError::LeaseLost`] when it was no longer ours (the run overlapped with
    /// another holder: worth a warning).
    async fn release_lease(&self, lease: Lease) -> Result<(), StateError>;

    /// Adds `delta` to the usage of `endpoint` in the month (UTC) of `at`, and returns the month's total
    /// after it. Read and compare-and-swap, retried on conflict: concurrent processes lose no count.
    /// Errors: [`StateError::InvalidConfig`] for an endpoint without a usable host,
    /// [`StateError::Contended`] when other writers won every attempt.
    async fn record_usage(
        &self,
        endpoint: &url::Url,
        at: DateTime<Utc>,
        delta: UsageDelta,
    ) -> Result<MonthlyUsage, StateError>;

    /// The usage of `endpoint` in `month`, or `None` when nothing was recorded.
    async fn usage(&self, endpoint: &url::Url, month: UsageMonth) -> Result<Option<MonthlyUsage>, StateError>;

    /// Claims the right to log a budget warning for `endpoint` at `at`: `true` (and `at` recorded as the
    /// month's [`MonthlyUsage::budget_warned_at`]) unless a warning was claimed less than `min_interval`
    /// before `at` in the same month. Compare-and-swap: of processes claiming at once, one gets `true`.
    async fn claim_budget_warning(
        &self,
        endpoint: &url::Url,
        at: DateTime<Utc>,
        min_interval: Duration,
    ) -> Result<bool, StateError>;
}

/// A stored value and its version.
#[derive(Debug, Clone)]
pub(crate) struct KvEntry {
    pub value: Value,
    pub version: Version,
}

/// The outcome of a compare-and-swap write or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CasOutcome {
    /// Written; the new version (`Version::absent()` after a delete).
    Done(Version),
    /// The stored version was not the expected one: nothing changed.
    Mismatch,
}

/// A value of the old app, outside our prefix.
#[derive(Debug, Clone)]
pub(crate) struct LegacyValue {
    pub value: String,
    pub last_modified: DateTime<Utc>,
}

/// What a backend provides: versioned JSON values under keys, with compare-and-swap.
#[async_trait]
pub(crate) trait KvBackend: Send + Sync + fmt::Debug + 'static {
    fn describe(&self) -> String;
    /// Where a key lives, for error messages.
    fn location(&self, key: &str) -> String;
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, StateError>;
    async fn put(&self, key: &str, value: &Value, expect: &Expect) -> Result<CasOutcome, StateError>;
    /// Deletes the key; with `expect`, only if it is at that version (absent counts as done).
    async fn delete(&self, key: &str, expect: Option<&Version>) -> Result<CasOutcome, StateError>;
    /// Every key starting with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, KvEntry)>, StateError>;
    /// A value the old app stored under `key` (outside our prefix); backends it never used have none.
    async fn get_legacy(&self, _key: &str) -> Result<Option<LegacyValue>, StateError> {
        Ok(None)
    }
}

const STATE_KEYS: &str = "state/";
const LEASE_KEYS: &str = "lease/";
/// Attempts at taking a lease when other holders keep winning the compare-and-swap in between.
const LEASE_ATTEMPTS: usize = 3;
/// Attempts at updating a usage record when other processes keep winning the compare-and-swap.
const USAGE_ATTEMPTS: u32 = 32;
/// The longest pause between two such attempts.
const USAGE_MAX_BACKOFF: Duration = Duration::from_millis(50);

/// What the shared layer needs besides the backend.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) legacy_aliases: BTreeMap<String, Vec<String>>,
    pub(crate) clock: Clock,
    pub(crate) probe: Arc<dyn ProcessProbe>,
}

/// [`StateStore`] over any [`KvBackend`].
#[derive(Debug)]
pub(crate) struct KvStateStore<B> {
    backend: B,
    shared: Shared,
}

/// A lease as read: its holder, its expiry and its version.
struct HeldLease {
    holder: LeaseHolder,
    expires_at: DateTime<Utc>,
    version: Version,
}

impl<B: KvBackend> KvStateStore<B> {
    pub(crate) fn new(backend: B, shared: Shared) -> Arc<Self> {
        Arc::new(Self { backend, shared })
    }

    fn conflict(&self, entity: &str, expect: &Expect) -> StateError {
        StateError::Conflict { entity: entity.to_owned(), store: self.backend.describe(), expected: expect.to_string() }
    }

    /// The state the old app left for `entity`, if it can be continued.
    async fn legacy_state(&self, entity: &str) -> Result<Option<EntityState>, StateError> {
        let aliases = self.shared.legacy_aliases.get(entity).map(Vec::as_slice).unwrap_or_default();
        for name in std::iter::once(entity).chain(aliases.iter().map(String::as_str)) {
            let Some(complete) = self.backend.get_legacy(&format!("{name}-initial_sync_complete")).await? else {
                continue;
            };
            if !complete.value.trim().eq_ignore_ascii_case("true") {
                tracing::info!(
                    entity,
                    legacy_name = name,
                    "the old app's full load of this entity was not complete; it cannot be resumed, \
                     starting afresh"
                );
                return Ok(None);
            }
            let cursor_key = format!("{name}-deltas_cursor");
            match self.backend.get_legacy(&cursor_key).await? {
                Some(cursor) if !cursor.value.trim().is_empty() => {
                    tracing::info!(
                        entity,
                        legacy_key = cursor_key,
                        store = self.backend.describe(),
                        "importing the old app's state: incremental from its deltas cursor"
                    );
                    return Ok(Some(EntityState {
                        phase: Phase::Incremental(IncrementalProgress {
                            deltas_cursor: Some(cursor.value.trim().to_owned()),
                            last_success: cursor.last_modified,
                            last_full_sync: None,
                            pending: None,
                            imported_from_legacy: true,
                            // The old app's load has the seed schema, which the engine knows as such.
                            schema_fingerprint: None,
                        }),
                        last_run: None,
                    }));
                }
                _ => {
                    tracing::warn!(
                        entity,
                        legacy_key = cursor_key,
                        "the old app marked its full load complete but left no deltas cursor; starting afresh"
                    );
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    async fn read_lease(&self, key: &str) -> Result<Option<HeldLease>, StateError> {
        match self.backend.get(key).await? {
            None => Ok(None),
            Some(entry) => {
                let location = self.backend.location(key);
                let record = model::decode::<LeaseRecord>(entry.value, &location)?;
                let holder = record.holder.into_holder(&location)?;
                Ok(Some(HeldLease { holder, expires_at: record.expires_at, version: entry.version }))
            }
        }
    }

    fn lease_held(entity: &str, current: HeldLease) -> StateError {
        StateError::LeaseHeld {
            entity: entity.to_owned(),
            holder: Box::new(current.holder),
            expires_at: current.expires_at,
        }
    }

    /// Reads an endpoint's month, lets `change` decide on it, and writes it back with compare-and-swap
    /// when `change` says it changed it; retried on conflict. Returns the record and whether it was written.
    async fn update_usage(
        &self,
        endpoint: &url::Url,
        month: UsageMonth,
        change: impl Fn(&mut MonthlyUsage) -> bool + Send + Sync,
    ) -> Result<(MonthlyUsage, bool), StateError> {
        let endpoint_id = usage::endpoint_id(endpoint)?;
        let key = usage::usage_key(&endpoint_id, month);
        let location = self.backend.location(&key);
        for attempt in 0..USAGE_ATTEMPTS {
            let (mut usage, expect) = match self.backend.get(&key).await? {
                None => (MonthlyUsage::empty(&endpoint_id, month), Expect::Absent),
                Some(entry) => (model::decode::<MonthlyUsage>(entry.value, &location)?, Expect::Version(entry.version)),
            };
            if !change(&mut usage) {
                return Ok((usage, false));
            }
            let value = model::encode(&usage, &location)?;
            match self.backend.put(&key, &value, &expect).await? {
                CasOutcome::Done(_) => return Ok((usage, true)),
                CasOutcome::Mismatch => {
                    // Processes ending their passes together would otherwise collide again in step.
                    let step = Duration::from_millis(1 << attempt.min(6)).min(USAGE_MAX_BACKOFF);
                    let jitter = f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
                    tokio::time::sleep(step.mul_f64(jitter)).await;
                }
            }
        }
        Err(StateError::Contended { location, attempts: USAGE_ATTEMPTS })
    }
}

/// Entity names become key parts: keep them to characters that need no escaping in any backend.
fn check_entity(entity: &str) -> Result<(), StateError> {
    if entity.is_empty() {
        return Err(StateError::InvalidEntity { entity: entity.to_owned(), why: "empty" });
    }
    if !entity.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(StateError::InvalidEntity {
            entity: entity.to_owned(),
            why: "only ASCII letters, digits, `_`, `-` and `.` are allowed",
        });
    }
    Ok(())
}

fn lease_until(entity: &str, now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, StateError> {
    chrono::TimeDelta::from_std(ttl).ok().and_then(|ttl| now.checked_add_signed(ttl)).ok_or_else(|| {
        StateError::InvalidLeaseDuration {
            entity: entity.to_owned(),
            why: format!("{ttl:?} from {now} is past the largest timestamp"),
        }
    })
}

#[async_trait]
impl<B: KvBackend> StateStore for KvStateStore<B> {
    fn describe(&self) -> String {
        self.backend.describe()
    }

    async fn get(&self, entity: &str) -> Result<Option<Versioned<EntityState>>, StateError> {
        check_entity(entity)?;
        let key = format!("{STATE_KEYS}{entity}");
        if let Some(entry) = self.backend.get(&key).await? {
            let value = model::decode::<EntityState>(entry.value, &self.backend.location(&key))?;
            return Ok(Some(Versioned { value, version: entry.version }));
        }
        Ok(self.legacy_state(entity).await?.map(|value| Versioned { value, version: Version::absent() }))
    }

    async fn put(&self, entity: &str, state: &EntityState, expect: Expect) -> Result<Version, StateError> {
        check_entity(entity)?;
        let key = format!("{STATE_KEYS}{entity}");
        let value = model::encode(state, &self.backend.location(&key))?;
        let expect = expect.normalized();
        match self.backend.put(&key, &value, &expect).await? {
            CasOutcome::Done(version) => Ok(version),
            CasOutcome::Mismatch => Err(self.conflict(entity, &expect)),
        }
    }

    async fn delete(&self, entity: &str) -> Result<(), StateError> {
        check_entity(entity)?;
        let key = format!("{STATE_KEYS}{entity}");
        self.backend.delete(&key, None).await?;
        if self.legacy_state(entity).await?.is_some() {
            tracing::info!(entity, "state reset: writing `not started` so the old app's keys are not imported again");
            self.put(entity, &EntityState::default(), Expect::Absent).await?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, Versioned<EntityState>)>, StateError> {
        let mut states = Vec::new();
        for (key, entry) in self.backend.list(STATE_KEYS).await? {
            let Some(entity) = key.strip_prefix(STATE_KEYS) else {
                continue;
            };
            let value = model::decode::<EntityState>(entry.value, &self.backend.location(&key))?;
            states.push((entity.to_owned(), Versioned { value, version: entry.version }));
        }
        Ok(states)
    }

    async fn acquire_lease(&self, entity: &str, holder: &LeaseHolder, ttl: Duration) -> Result<Acquired, StateError> {
        check_entity(entity)?;
        let key = format!("{LEASE_KEYS}{entity}");
        let mut last_seen = None;
        for _ in 0..LEASE_ATTEMPTS {
            let now = self.shared.clock.now();
            let (expect, replaced) = match self.read_lease(&key).await? {
                None => (Expect::Absent, None),
                Some(current) => {
                    let reason = if current.expires_at <= now {
                        TakeoverReason::Expired
                    } else {
                        match holder::liveness(&current.holder, self.shared.probe.as_ref()) {
                            Liveness::Dead(evidence) => evidence.into(),
                            Liveness::NotKnownDead => return Err(Self::lease_held(entity, current)),
                        }
                    };
                    let replaced = ReplacedLease { holder: current.holder, expires_at: current.expires_at, reason };
                    (Expect::Version(current.version), Some(replaced))
                }
            };
            let record = LeaseRecord {
                holder: StoredHolder::Holder(holder.clone()),
                acquired_at: now,
                expires_at: lease_until(entity, now, ttl)?,
            };
            let value = model::encode(&record, &self.backend.location(&key))?;
            match self.backend.put(&key, &value, &expect).await? {
                CasOutcome::Done(version) => {
                    match &replaced {
                        Some(previous) if previous.reason.holder_died() => tracing::warn!(
                            entity,
                            previous_holder = %previous.holder,
                            %holder,
                            "took over the lease of a holder that died: {previous}"
                        ),
                        Some(previous) => tracing::info!(
                            entity,
                            previous_holder = %previous.holder,
                            %holder,
                            "took over an expired lease: {previous}"
                        ),
                        None => {}
                    }
                    let lease = Lease {
                        entity: entity.to_owned(),
                        holder: holder.clone(),
                        acquired_at: record.acquired_at,
                        expires_at: record.expires_at,
                        version,
                    };
                    return Ok(Acquired { lease, replaced });
                }
                // Someone else wrote the lease between our read and our write: look again.
                CasOutcome::Mismatch => last_seen = Some(expect),
            }
        }
        match self.read_lease(&key).await? {
            Some(current) => Err(Self::lease_held(entity, current)),
            None => Err(self.conflict(entity, &last_seen.unwrap_or(Expect::Absent))),
        }
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StateError> {
        let key = format!("{LEASE_KEYS}{}", lease.entity);
        let record = LeaseRecord {
            holder: StoredHolder::Holder(lease.holder.clone()),
            acquired_at: lease.acquired_at,
            expires_at: lease_until(&lease.entity, self.shared.clock.now(), ttl)?,
        };
        let value = model::encode(&record, &self.backend.location(&key))?;
        // Our version still being there means nobody took the lease, even if it expired meanwhile.
        match self.backend.put(&key, &value, &Expect::matching(&lease.version)).await? {
            CasOutcome::Done(version) => Ok(Lease { expires_at: record.expires_at, version, ..lease.clone() }),
            CasOutcome::Mismatch => {
                Err(StateError::LeaseLost { entity: lease.entity.clone(), holder: Box::new(lease.holder.clone()) })
            }
        }
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), StateError> {
        let key = format!("{LEASE_KEYS}{}", lease.entity);
        match self.backend.delete(&key, Some(&lease.version)).await? {
            CasOutcome::Done(_) => Ok(()),
            CasOutcome::Mismatch => Err(StateError::LeaseLost { entity: lease.entity, holder: Box::new(lease.holder) }),
        }
    }

    async fn record_usage(
        &self,
        endpoint: &url::Url,
        at: DateTime<Utc>,
        delta: UsageDelta,
    ) -> Result<MonthlyUsage, StateError> {
        let (usage, _) = self
            .update_usage(endpoint, UsageMonth::of(at), |usage| {
                usage.add(delta, at);
                true
            })
            .await?;
        Ok(usage)
    }

    async fn usage(&self, endpoint: &url::Url, month: UsageMonth) -> Result<Option<MonthlyUsage>, StateError> {
        let key = usage::usage_key(&usage::endpoint_id(endpoint)?, month);
        match self.backend.get(&key).await? {
            None => Ok(None),
            Some(entry) => model::decode(entry.value, &self.backend.location(&key)).map(Some),
        }
    }

    async fn claim_budget_warning(
        &self,
        endpoint: &url::Url,
        at: DateTime<Utc>,
        min_interval: Duration,
    ) -> Result<bool, StateError> {
        // An interval beyond chrono's range means "never again", as good as any month's length.
        let interval = chrono::TimeDelta::from_std(min_interval).unwrap_or(chrono::TimeDelta::MAX);
        let (_, claimed) = self
            .update_usage(endpoint, UsageMonth::of(at), |usage| {
                let recently = usage.budget_warned_at.is_some_and(|warned| at.signed_duration_since(warned) < interval);
                if !recently {
                    usage.budget_warned_at = Some(at);
                }
                !recently
            })
            .await?;
        Ok(claimed)
    }
}
