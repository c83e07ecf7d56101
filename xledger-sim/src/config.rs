//! The simulator's settings.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The API key a default simulator accepts (`Authorization: token xledger-sim-key`).
pub const DEFAULT_API_KEY: &str = "xledger-sim-key";

/// Xledger's page cap: at most 10 000 records per query.
pub const DEFAULT_PAGE_CAP: usize = 10_000;

/// How a simulator starts: its data, its key, its limits and its clock.
///
/// `Debug` never prints the API key.
///
/// ```
/// use std::collections::BTreeMap;
/// let config = xledger_sim::SimConfig {
///     rows: 100,
///     rows_per_entity: BTreeMap::from([("timesheets".to_owned(), 5_000)]),
///     ..Default::default()
/// };
/// assert_eq!(config.page_cap, 10_000);
/// assert!(!format!("{config:?}").contains(&config.api_key));
/// ```
#[derive(Clone)]
pub struct SimConfig {
    /// Everything generated (rows, values) is a function of this seed.
    pub seed: u64,
    /// Initial rows per entity.
    pub rows: usize,
    /// Per-entity overrides of `rows`, by entity name (`timesheets`, …). An unknown name is an error.
    pub rows_per_entity: BTreeMap<String, usize>,
    /// The key clients must send as `Authorization: token <api_key>` (also guards the admin API).
    pub api_key: String,
    /// Records per query at most (`first`/`last` above it are capped; `hasNextPage` stays true).
    pub page_cap: usize,
    /// How long change-feed entries are kept (Xledger: about 3 days).
    pub retention: Duration,
    /// The simulated clock's start. The clock moves only when told to (deterministic tests).
    pub start_time: DateTime<Utc>,
    /// Honour `Accept-Encoding: gzip`.
    pub gzip: bool,
}

impl Default for SimConfig {
    /// 1 000 rows per entity, seed 1, [`DEFAULT_API_KEY`], the 10 000 cap, 3 days of retention,
    /// gzip on, and the clock starting at the current time truncated to whole seconds.
    fn default() -> Self {
        let now = Utc::now();
        SimConfig {
            seed: 1,
            rows: 1_000,
            rows_per_entity: BTreeMap::new(),
            api_key: DEFAULT_API_KEY.to_owned(),
            page_cap: DEFAULT_PAGE_CAP,
            retention: Duration::from_secs(3 * 24 * 3600),
            start_time: now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(now),
            gzip: true,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("rows", &self.rows)
            .field("rows_per_entity", &self.rows_per_entity)
            .field("api_key", &"<redacted>")
            .field("page_cap", &self.page_cap)
            .field("retention", &self.retention)
            .field("start_time", &self.start_time)
            .field("gzip", &self.gzip)
            .finish()
    }
}
