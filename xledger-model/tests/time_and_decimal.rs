//! Property tests for the exact conversions every writer and simulator relies on.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use xledger_model::decimal::{DecimalError, format_decimal, parse_decimal};
use xledger_model::time::{oslo_to_utc, parse_xledger_datetime, utc_to_oslo_wall_clock};

proptest! {
    #[test]
    fn the_hand_parser_agrees_with_chrono(y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62, se in 0u32..62) {
        let wall = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}");
        let chrono_wall = chrono::NaiveDateTime::parse_from_str(&wall, "%Y-%m-%dT%H:%M:%S%.f").ok();
        prop_assert_eq!(xledger_model::time::parse_wall_clock(&wall).ok(), chrono_wall, "{}", wall);
        let date = &wall[..10];
        let chrono_date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok();
        prop_assert_eq!(xledger_model::time::parse_xledger_date(date).ok(), chrono_date, "{}", date);
    }

    #[test]
    fn decimal_text_round_trips(value in -10_i128.pow(20)..10_i128.pow(20), scale in 0i8..=10) {
        let text = format_decimal(value, scale);
        prop_assert_eq!(parse_decimal(&text, 38, scale), Ok(value));
    }

    #[test]
    fn extra_fractional_digits_are_refused_not_cut(int in 0u32..1_000_000, frac in 1u32..10, scale in 0i8..6) {
        let text = format!("{int}.{}{frac}", "0".repeat(scale as usize));
        let refused = matches!(parse_decimal(&text, 38, scale), Err(DecimalError::TooManyFractionalDigits { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn utc_instants_survive_the_wall_clock_outside_the_overlap(secs in 0i64..(60 * 365 * 86_400)) {
        let instant = Utc.timestamp_opt(946_684_800 + secs, 0).unwrap();
        let wall = utc_to_oslo_wall_clock(instant);
        let back = oslo_to_utc(wall);
        // In the October overlap both instants print the same wall clock; we pick standard time,
        // which is either the same instant or exactly one hour later.
        prop_assert!(back == instant || back == instant + Duration::hours(1));
    }
}

#[test]
fn bad_decimals_are_refused() {
    for bad in ["", "-", ".", "1e5", "1,5", " 1", "1.2.3", "abc"] {
        assert_eq!(parse_decimal(bad, 38, 6), Err(DecimalError::NotANumber), "{bad:?}");
    }
    assert_eq!(parse_decimal("123", 2, 0), Err(DecimalError::Overflow { precision: 2 }));
    assert_eq!(parse_decimal(".5", 10, 2), Ok(50));
    assert_eq!(parse_decimal("-0.000001", 28, 6), Ok(-1));
}

#[test]
fn dst_edges_convert_as_documented() {
    let cases = [
        ("2024-01-15T12:00:00", "2024-01-15T11:00:00Z"),
        ("2024-03-31T01:59:59", "2024-03-31T00:59:59Z"),
        ("2024-03-31T02:00:00", "2024-03-31T01:00:00Z"), // gap: UTC+1
        ("2024-03-31T03:00:00", "2024-03-31T01:00:00Z"),
        ("2024-10-27T01:59:59", "2024-10-26T23:59:59Z"),
        ("2024-10-27T02:30:00", "2024-10-27T01:30:00Z"), // overlap: standard time
        ("2024-10-27T03:00:00", "2024-10-27T02:00:00Z"),
        ("2024-07-01T00:00:00.250", "2024-06-30T22:00:00.250Z"),
    ];
    for (wall, utc) in cases {
        let got = parse_xledger_datetime(wall).unwrap();
        assert_eq!(got.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), utc, "{wall}");
    }
    assert!(parse_xledger_datetime("2024-07-01 00:00:00").is_err());
    assert!(parse_xledger_datetime("2024-07-01T00:00:00+02:00").is_err());
    let _ = NaiveDate::from_ymd_opt(2024, 1, 1);
}
