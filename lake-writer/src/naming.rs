//! The lake contract's file names: `<kind>-<YYYYMMDD_HH_MM_SS>-<entity>[-NNNNN].parquet` and
//! `full_sync-<stamp>-<entity>[-NNNNN].manifest.json`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// The kind of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A full load: rows are `ADDED`; complete only when its manifest exists.
    FullSync,
    /// One contiguous range of the change feed, collapsed to one row per dbId.
    SyncChanges,
}

impl FileKind {
    /// The name prefix: `full_sync` or `sync_changes`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::FullSync => "full_sync",
            FileKind::SyncChanges => "sync_changes",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's UTC start time at second resolution; displays as `YYYYMMDD_HH_MM_SS`.
///
/// ```
/// use lake_writer::RunStamp;
/// let stamp: RunStamp = "20240711_21_17_09".parse().unwrap();
/// assert_eq!(stamp.to_string(), "20240711_21_17_09");
/// assert_eq!(stamp.as_datetime().to_rfc3339(), "2024-07-11T21:17:09+00:00");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunStamp(DateTime<Utc>);

const STAMP_FORMAT: &str = "%Y%m%d_%H_%M_%S";

impl RunStamp {
    /// The stamp of `instant`, with sub-seconds dropped.
    pub fn new(instant: DateTime<Utc>) -> Self {
        RunStamp(instant.trunc_subsecs(0))
    }

    /// The stamp of the current time.
    pub fn now() -> Self {
        RunStamp::new(Utc::now())
    }

    /// The instant this stamp stands for.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for RunStamp {
    fn from(instant: DateTime<Utc>) -> Self {
        RunStamp::new(instant)
    }
}

impl fmt::Display for RunStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(STAMP_FORMAT))
    }
}

/// A string that is not a `YYYYMMDD_HH_MM_SS` stamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a run stamp of the form YYYYMMDD_HH_MM_SS: {0:?}")]
pub struct BadRunStamp(pub String);

impl FromStr for RunStamp {
    type Err = BadRunStamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // chrono accepts single-digit fields; the contract's names are fixed-width.
        if s.len() != 17 {
            return Err(BadRunStamp(s.to_string()));
        }
        NaiveDateTime::parse_from_str(s, STAMP_FORMAT)
            .map(|t| RunStamp(t.and_utc()))
            .map_err(|_| BadRunStamp(s.to_string()))
    }
}

/// The data file name of the contract.
///
/// ```
/// use lake_writer::{file_name, FileKind, RunStamp};
/// let stamp: RunStamp = "20240711_21_17_09".parse().unwrap();
/// assert_eq!(file_name(FileKind::FullSync, stamp, "timesheets", None), "full_sync-20240711_21_17_09-timesheets.parquet");
/// assert_eq!(file_name(FileKind::FullSync, stamp, "timesheets", Some(1)), "full_sync-20240711_21_17_09-timesheets-00001.parquet");
/// ```
pub fn file_name(kind: FileKind, stamp: RunStamp, entity: &str, part: Option<u32>) -> String {
    format!("{}{PARQUET_SUFFIX}", base_name(kind, stamp, entity, part))
}

/// The manifest name of a full sync: `full_sync-<stamp>-<entity>.manifest.json`.
///
/// ```
/// let stamp = "20240711_21_17_09".parse().unwrap();
/// assert_eq!(lake_writer::manifest_name(stamp, "timesheets"), "full_sync-20240711_21_17_09-timesheets.manifest.json");
/// ```
pub fn manifest_name(stamp: RunStamp, entity: &str) -> String {
    format!("{}{MANIFEST_SUFFIX}", base_name(FileKind::FullSync, stamp, entity, None))
}

fn base_name(kind: FileKind, stamp: RunStamp, entity: &str, part: Option<u32>) -> String {
    match part {
        Some(part) => format!("{}-{stamp}-{entity}-{part:05}", kind.as_str()),
        None => format!("{}-{stamp}-{entity}", kind.as_str()),
    }
}

pub(crate) const PARQUET_SUFFIX: &str = ".parquet";
pub(crate) const MANIFEST_SUFFIX: &str = ".manifest.json";

/// What a lake file's name says, when it follows the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName {
    pub kind: FileKind,
    pub stamp: RunStamp,
    pub entity: String,
    pub part: Option<u32>,
    pub is_manifest: bool,
}

/// Parses a contract file name; `None` for any other name (foreign files are left alone).
///
/// ```
/// use lake_writer::{parse_file_name, FileKind};
/// let parsed = parse_file_name("sync_changes-20240712_08_00_00-timesheets-00002.parquet").unwrap();
/// assert_eq!((parsed.kind, parsed.part, parsed.is_manifest), (FileKind::SyncChanges, Some(2), false));
/// assert!(parse_file_name("notes.txt").is_none());
/// ```
pub fn parse_file_name(name: &str) -> Option<ParsedName> {
    let (base, is_manifest) = if let Some(base) = name.strip_suffix(MANIFEST_SUFFIX) {
        (base, true)
    } else {
        (name.strip_suffix(PARQUET_SUFFIX)?, false)
    };
    let (kind, rest) = if let Some(rest) = base.strip_prefix("full_sync-") {
        (FileKind::FullSync, rest)
    } else {
        (FileKind::SyncChanges, base.strip_prefix("sync_changes-")?)
    };
    if is_manifest && kind != FileKind::FullSync {
        return None;
    }
    let stamp: RunStamp = rest.get(..17)?.parse().ok()?;
    let entity_and_part = rest.get(17..)?.strip_prefix('-')?;
    let (entity, part) = match entity_and_part.rsplit_once('-') {
        Some((entity, digits)) if digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            (entity, Some(digits.parse().ok()?))
        }
        _ => (entity_and_part, None),
    };
    if entity.is_empty() || entity.contains('-') {
        return None;
    }
    Some(ParsedName { kind, stamp, entity: entity.to_string(), part, is_manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_layout_name_parses() {
        let parsed = parse_file_name("full_sync-20240711_21_17_09-timesheets.parquet").unwrap();
        assert_eq!(parsed.kind, FileKind::FullSync);
        assert_eq!(parsed.stamp.to_string(), "20240711_21_17_09");
        assert_eq!(parsed.entity, "timesheets");
        assert_eq!(parsed.part, None);
        assert!(!parsed.is_manifest);
    }

    #[test]
    fn names_round_trip_through_the_parser() {
        let stamp: RunStamp = "20241027_01_30_00".parse().unwrap();
        for kind in [FileKind::FullSync, FileKind::SyncChanges] {
            for part in [None, Some(0), Some(12345)] {
                let parsed = parse_file_name(&file_name(kind, stamp, "arTransactions", part)).unwrap();
                assert_eq!(
                    (parsed.kind, parsed.stamp, parsed.entity.as_str(), parsed.part),
                    (kind, stamp, "arTransactions", part)
                );
            }
        }
        let manifest = parse_file_name(&manifest_name(stamp, "arTransactions")).unwrap();
        assert!(manifest.is_manifest);
    }

    #[test]
    fn temp_and_foreign_names_do_not_parse() {
        for name in [
            "full_sync-20240711_21_17_09-timesheets.parquet#1",
            "full_sync-2024071_21_17_09-timesheets.parquet",
            "sync_changes-20240711_21_17_09-timesheets.manifest.json",
            "full_sync-20240711_21_17_09-.parquet",
            "readme.md",
        ] {
            assert_eq!(parse_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn stamp_drops_subseconds_and_rejects_short_fields() {
        let instant = DateTime::parse_from_rfc3339("2024-07-11T21:17:09.999Z").unwrap().with_timezone(&Utc);
        assert_eq!(RunStamp::from(instant).to_string(), "20240711_21_17_09");
        assert!("2024711_21_17_09".parse::<RunStamp>().is_err());
        assert!("20240711_1_17_099".parse::<RunStamp>().is_err());
    }
}
