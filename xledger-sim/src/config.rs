//! The simulator's settings.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use xledger_model::EntitySpec;

use crate::webhooks::WebhookConfig;

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
    /// What the generated values look like: adversarial test data, or a ledger's repeating codes.
    pub data: DataProfile,
    /// The entities served, in this order; everything (data, validation of selections, change
    /// feeds, webhook subscriptions) is driven by these specs. Default: the built-in registry,
    /// `xledger_model::entities()`. Tests add or replace entities with specs built at run time
    /// (see [`SimConfig::with_entity`]): names, items fields and feed fields must be unique, and
    /// every spec needs a top-level `dbId` column.
    pub entities: Vec<&'static EntitySpec>,
    /// How webhook deliveries are sent (timeouts, when a webhook faults, the signing clock).
    pub webhooks: WebhookConfig,
}

impl SimConfig {
    /// Serves `spec` as well: it replaces the entity of the same name, or is added after the others.
    ///
    /// ```
    /// let timesheets = xledger_model::entity("timesheets").unwrap();
    /// let fewer_columns: &'static xledger_model::EntitySpec =
    ///     Box::leak(Box::new(xledger_model::EntitySpec { columns: &timesheets.columns[..3], ..*timesheets }));
    /// let config = xledger_sim::SimConfig::default().with_entity(fewer_columns);
    /// assert_eq!(config.entities.len(), xledger_model::entities().len());
    /// assert!(config.entities.iter().any(|spec| spec.name == "timesheets" && spec.columns.len() == 3));
    /// ```
    #[must_use]
    pub fn with_entity(mut self, spec: &'static EntitySpec) -> Self {
        match self.entities.iter_mut().find(|served| served.name == spec.name) {
            Some(served) => *served = spec,
            None => self.entities.push(spec),
        }
        self
    }
}

/// The shape of generated values. Both profiles have the same columns, types, nulls and rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DataProfile {
    /// Every value drawn afresh per row: text near-unique in every column, with non-ASCII,
    /// escapes, control characters and, rarely, texts over 10 KB anywhere. What tests need.
    #[default]
    Stress,
    /// Like a real ledger: a nested object (`account`, `currency`, `project`, …) is one of a
    /// fixed set of referenced records (5 to 2 000 per path), so its fields repeat across rows
    /// and agree with each other; top-level fields stay per row. Very long texts only at the top.
    Ledger,
}

impl std::str::FromStr for DataProfile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "stress" => Ok(DataProfile::Stress),
            "ledger" => Ok(DataProfile::Ledger),
            other => Err(format!("unknown data profile {other:?}: expected stress or ledger")),
        }
    }
}

/// The profile's name on the command line (`stress`, `ledger`).
impl fmt::Display for DataProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataProfile::Stress => "stress",
            DataProfile::Ledger => "ledger",
        })
    }
}

impl Default for SimConfig {
    /// 1 000 rows per entity, seed 1, [`DEFAULT_API_KEY`], the 10 000 cap, 3 days of retention,
    /// gzip on, stress data, the built-in registry's entities, default webhook delivery settings,
    /// and the clock starting at the current time truncated to whole seconds.
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
            data: DataProfile::Stress,
            entities: xledger_model::entities().iter().collect(),
            webhooks: WebhookConfig::default(),
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
            .field("data", &self.data)
            .field("entities", &self.entities.iter().map(|spec| spec.name).collect::<Vec<_>>())
            .field("webhooks", &self.webhooks)
            .finish()
    }
}
