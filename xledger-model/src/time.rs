//! Xledger date-times: Central European wall clock (Europe/Oslo rules) → UTC.
//!
//! Xledger sends date-times as `yyyy-MM-ddTHH:mm:ss` without an offset, in Central European time
//! with daylight saving (its own sample converts them with Windows' "Central European Standard
//! Time", i.e. the Europe/Oslo rules). The lake stores UTC.
//!
//! Two hours a year have no single answer; both resolve to **standard time (UTC+01:00)**:
//! - *Overlap* (last Sunday of October, 02:00–02:59 happens twice): standard time, the later of
//!   the two instants. This is what .NET's `TimeZoneInfo.ConvertTimeToUtc` does, which is how
//!   Xledger's own sample converts.
//! - *Gap* (last Sunday of March, 02:00–02:59 does not exist): read with the offset in force
//!   before the jump (UTC+01:00), so `02:30` becomes `01:30Z`, the same instant as `03:30+02:00`.
//!   .NET would throw here; refusing would lose the row, so we pick the instant a clock that
//!   missed the change would have meant.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Oslo;

/// Why a date or date-time string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not a date-time of the form yyyy-MM-ddTHH:mm:ss")]
    BadDateTime,
    #[error("not a date of the form yyyy-MM-dd")]
    BadDate,
}

fn standard_offset() -> FixedOffset {
    // Provably valid: 3600 s is within ±24 h.
    FixedOffset::east_opt(3600).unwrap_or_else(|| unreachable!())
}

/// Parses Xledger's `yyyy-MM-ddTHH:mm:ss` (optionally with fractional seconds) as a wall-clock time.
///
/// The exact 19-character shape is read by hand (chrono re-reads its format string on every call,
/// ten times slower, and this runs once per date-time value of every page); anything else goes
/// to chrono, which accepts or refuses it.
pub fn parse_wall_clock(text: &str) -> Result<NaiveDateTime, TimeError> {
    if let Some(wall_clock) = fixed_wall_clock(text.as_bytes()) {
        return Ok(wall_clock);
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| TimeError::BadDateTime)
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

/// Exactly `yyyy-MM-dd`; `None` for anything else (the caller falls back to chrono).
fn fixed_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(&b[0..2])? * 100 + two_digits(&b[2..4])?;
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, two_digits(&b[5..7])?, two_digits(&b[8..10])?)
}

/// Exactly `yyyy-MM-ddTHH:mm:ss`; `None` for anything else.
fn fixed_wall_clock(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    fixed_date(&b[..10])?.and_hms_opt(two_digits(&b[11..13])?, two_digits(&b[14..16])?, two_digits(&b[17..19])?)
}

/// Converts a Central European wall-clock time to UTC (see the module docs for gaps and overlaps).
pub fn oslo_to_utc(wall_clock: NaiveDateTime) -> DateTime<Utc> {
    match Oslo.from_local_datetime(&wall_clock) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(_, _) | LocalResult::None => (wall_clock - standard_offset()).and_utc(),
    }
}

/// Parses and converts an Xledger date-time string to UTC.
///
/// ```
/// use xledger_model::time::parse_xledger_datetime;
/// // Summer: UTC+2.
/// assert_eq!(parse_xledger_datetime("2024-07-11T21:17:09").unwrap().to_rfc3339(), "2024-07-11T19:17:09+00:00");
/// // Spring-forward gap: read as UTC+1.
/// assert_eq!(parse_xledger_datetime("2024-03-31T02:30:00").unwrap().to_rfc3339(), "2024-03-31T01:30:00+00:00");
/// // Fall-back overlap: standard time, the later instant.
/// assert_eq!(parse_xledger_datetime("2024-10-27T02:30:00").unwrap().to_rfc3339(), "2024-10-27T01:30:00+00:00");
/// ```
pub fn parse_xledger_datetime(text: &str) -> Result<DateTime<Utc>, TimeError> {
    parse_wall_clock(text).map(oslo_to_utc)
}

/// The Central European wall clock of a UTC instant, as Xledger would print it.
pub fn utc_to_oslo_wall_clock(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.with_timezone(&Oslo).naive_local()
}

/// Parses Xledger's `yyyy-MM-dd` (the exact shape by hand, anything else through chrono).
pub fn parse_xledger_date(text: &str) -> Result<NaiveDate, TimeError> {
    if let Some(date) = fixed_date(text.as_bytes()) {
        return Ok(date);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| TimeError::BadDate)
}
