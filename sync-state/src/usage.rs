//! The budget meter's records: what one calendar month (UTC) of requests to one Xledger endpoint cost.
//!
//! One record per endpoint and month, under the key `usage/<endpoint>/<YYYY-MM>` (App Configuration:
//! `<prefix>usage/<endpoint>/<YYYY-MM>` under the store's label). The endpoint part is the URL's host,
//! with its port when the URL names one: never a path, a query or credentials, and never the API key,
//! which identifies nothing here (the endpoint is what Xledger bills by).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StateError;

/// A calendar month in UTC, written `YYYY-MM`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use sync_state::UsageMonth;
/// let month = UsageMonth::of(Utc.with_ymd_and_hms(2025, 3, 31, 23, 59, 59).unwrap());
/// assert_eq!(month.to_string(), "2025-03");
/// assert_eq!(month.end(), Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap());
/// assert_eq!("2025-03".parse::<UsageMonth>(), Ok(month));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageMonth {
    /// The first day of the month: always a valid date, so every month has a start and an end.
    first_day: NaiveDate,
}

impl UsageMonth {
    /// The month `at` falls in.
    pub fn of(at: DateTime<Utc>) -> Self {
        let date = at.date_naive();
        // Day 1 of a month that has a day `date.day()` always exists.
        Self { first_day: date.with_day(1).unwrap_or(date) }
    }

    /// The month `month` (1–12) of `year`, or `None` when there is no such month.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, 1).map(|first_day| Self { first_day })
    }

    /// The year.
    pub fn year(&self) -> i32 {
        self.first_day.year()
    }

    /// The month of the year, 1–12.
    pub fn month(&self) -> u32 {
        self.first_day.month()
    }

    /// Midnight UTC on the month's first day.
    pub fn start(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first_day.and_time(chrono::NaiveTime::MIN))
    }

    /// Midnight UTC on the next month's first day: the end of this month, exclusive.
    pub fn end(&self) -> DateTime<Utc> {
        let next = self.first_day.checked_add_months(chrono::Months::new(1)).unwrap_or(NaiveDate::MAX);
        Utc.from_utc_datetime(&next.and_time(chrono::NaiveTime::MIN))
    }
}

impl fmt::Display for UsageMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl FromStr for UsageMonth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not a month `YYYY-MM`");
        let (year, month) = text.rsplit_once('-').ok_or_else(invalid)?;
        let (year, month) = (year.parse().map_err(|_| invalid())?, month.parse().map_err(|_| invalid())?);
        Self::new(year, month).ok_or_else(invalid)
    }
}

impl Serialize for UsageMonth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsageMonth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What one pass (or another unit of work) spent, to be added to its month's [`MonthlyUsage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageDelta {
    /// Requests sent to Xledger.
    pub requests: u64,
    /// Response bytes received (as transferred, compressed where the response was).
    pub bytes_received: u64,
    /// Request bytes sent.
    pub bytes_sent: u64,
    /// Sync passes this usage belongs to: 1 at the end of a pass, 0 for work outside passes (it then
    /// does not move the pass times either).
    pub passes: u64,
}

/// One calendar month's (UTC) use of one Xledger endpoint, summed over every process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyUsage {
    /// The endpoint, as the key names it (host, and port when the URL gives one).
    pub endpoint: String,
    /// The month.
    pub month: UsageMonth,
    /// Requests sent.
    pub requests: u64,
    /// Response bytes received.
    pub bytes_received: u64,
    /// Request bytes sent.
    pub bytes_sent: u64,
    /// Passes recorded.
    pub passes: u64,
    /// When the month's first recorded pass ended.
    pub first_pass_at: Option<DateTime<Utc>>,
    /// When the month's last recorded pass ended.
    pub last_pass_at: Option<DateTime<Utc>>,
    /// When a budget warning was last claimed for this month (see
    /// [`StateStore::claim_budget_warning`](crate::StateStore::claim_budget_warning)).
    pub budget_warned_at: Option<DateTime<Utc>>,
}

impl MonthlyUsage {
    /// An empty record.
    pub(crate) fn empty(endpoint: &str, month: UsageMonth) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            month,
            requests: 0,
            bytes_received: 0,
            bytes_sent: 0,
            passes: 0,
            first_pass_at: None,
            last_pass_at: None,
            budget_warned_at: None,
        }
    }

    /// Adds `delta`, recorded at `at`. Counters saturate: a month cannot come near `u64::MAX`.
    pub(crate) fn add(&mut self, delta: UsageDelta, at: DateTime<Utc>) {
        self.requests = self.requests.saturating_add(delta.requests);
        self.bytes_received = self.bytes_received.saturating_add(delta.bytes_received);
        self.bytes_sent = self.bytes_sent.saturating_add(delta.bytes_sent);
        if delta.passes > 0 {
            self.passes = self.passes.saturating_add(delta.passes);
            // Processes record in any order: keep the earliest and the latest.
            self.first_pass_at = Some(self.first_pass_at.map_or(at, |first| first.min(at)));
            self.last_pass_at = Some(self.last_pass_at.map_or(at, |last| last.max(at)));
        }
    }
}

/// The key part naming `endpoint`: its host, with the port when the URL names one, lower case.
pub(crate) fn endpoint_id(endpoint: &url::Url) -> Result<String, StateError> {
    // Only the scheme in the message: a URL may carry credentials, and they must not reach a log.
    let invalid = |why: &str| {
        StateError::InvalidConfig(format!(
            "Xledger endpoint ({} URL) cannot key usage records: {why}",
            endpoint.scheme()
        ))
    };
    let host = endpoint.host_str().filter(|host| !host.is_empty()).ok_or_else(|| invalid("it has no host"))?;
    let id = match endpoint.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
    .to_ascii_lowercase();
    // Hosts are letters, digits, `-`, `.` (IPv6: hex digits and `:` in brackets); anything else would
    // need escaping in some backend's keys or filters.
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']')) {
        return Err(invalid("its host has characters keys cannot hold"));
    }
    Ok(id)
}

/// The key of one endpoint's month (below the store's prefix).
pub(crate) fn usage_key(endpoint_id: &str, month: UsageMonth) -> String {
    format!("usage/{endpoint_id}/{month}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn a_month_spans_from_its_first_midnight_to_the_next_months() {
        let december = UsageMonth::of(at(2024, 12, 31, 23));
        assert_eq!((december.year(), december.month()), (2024, 12));
        assert_eq!(december.start(), at(2024, 12, 1, 0));
        assert_eq!(december.end(), at(2025, 1, 1, 0));
        assert_eq!(UsageMonth::of(at(2025, 1, 1, 0)), UsageMonth::new(2025, 1).unwrap());
        assert!(december < UsageMonth::new(2025, 1).unwrap());
    }

    #[test]
    fn months_parse_from_and_print_as_yyyy_mm() {
        assert_eq!(UsageMonth::new(2025, 3).unwrap().to_string(), "2025-03");
        assert_eq!("0999-11".parse::<UsageMonth>(), Ok(UsageMonth::new(999, 11).unwrap()));
        for bad in ["2025-13", "2025-00", "2025", "25-x", ""] {
            assert!(bad.parse::<UsageMonth>().is_err(), "{bad}");
        }
        assert_eq!(UsageMonth::new(2025, 13), None);
        let json = serde_json::to_string(&UsageMonth::new(2025, 3).unwrap()).unwrap();
        assert_eq!(json, "\"2025-03\"");
        assert_eq!(serde_json::from_str::<UsageMonth>(&json).unwrap(), UsageMonth::new(2025, 3).unwrap());
    }

    #[test]
    fn adding_sums_counters_and_widens_the_pass_times() {
        let mut usage = MonthlyUsage::empty("x", UsageMonth::new(2025, 3).unwrap());
        let pass = UsageDelta { requests: 2, bytes_received: 100, bytes_sent: 10, passes: 1 };
        usage.add(pass, at(2025, 3, 2, 10));
        usage.add(pass, at(2025, 3, 2, 8));
        usage.add(UsageDelta { requests: 5, ..UsageDelta::default() }, at(2025, 3, 9, 0));
        assert_eq!((usage.requests, usage.bytes_received, usage.bytes_sent, usage.passes), (9, 200, 20, 2));
        assert_eq!((usage.first_pass_at, usage.last_pass_at), (Some(at(2025, 3, 2, 8)), Some(at(2025, 3, 2, 10))));
    }

    #[test]
    fn the_endpoint_key_part_is_the_host_and_an_explicit_port_only() {
        let id = |text: &str| endpoint_id(&url::Url::parse(text).unwrap());
        assert_eq!(id("https://www.Xledger.net/graphql").unwrap(), "www.xledger.net");
        assert_eq!(id("https://demo.xledger.net:443/graphql?x=1").unwrap(), "demo.xledger.net");
        assert_eq!(id("http://127.0.0.1:8080/graphql").unwrap(), "127.0.0.1:8080");
        assert_eq!(id("http://[::1]:9/").unwrap(), "[::1]:9");
        assert_eq!(id("https://user:hunter2@api.example/").unwrap(), "api.example");
        let err = id("data:text/plain,hunter2").unwrap_err();
        assert!(matches!(err, StateError::InvalidConfig(ref why) if !why.contains("hunter2")), "{err:?}");
        assert_eq!(usage_key("www.xledger.net", UsageMonth::new(2025, 3).unwrap()), "usage/www.xledger.net/2025-03");
    }
}
