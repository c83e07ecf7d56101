//! Property tests of the writer's use of `xledger_model::{decimal, time}`: values go through the
//! whole writer (page → Arrow → Parquet in a lake → parquet reader) and come back exactly.

mod support;

use arrow::array::AsArray;
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
use bytes::Bytes;
use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use lake_writer::{ConvertReason, FileKind, Lake, LakeError, LakeOptions, PartSpec, RunStamp, WriterOptions};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use serde_json::{Value, json};
use xledger_model::page::MutationType;

/// Writes timesheet nodes (template with `edit` applied per value) through a memory lake and
/// returns the file's batches, or the writer's error.
fn write_timesheets<T>(
    values: &[T],
    edit: impl Fn(&mut Value, &T),
) -> Result<Vec<arrow::record_batch::RecordBatch>, LakeError> {
    let timesheets = xledger_model::entity("timesheets").unwrap();
    let mut nodes = support::nodes(timesheets, 1, values.len(), 11, support::NO_NULLS);
    for (node, value) in nodes.iter_mut().zip(values) {
        edit(node, value);
    }
    let raw: Vec<String> = support::raw(&nodes);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let lake = Lake::open("memory://", LakeOptions::default()).await?;
        let stamp: RunStamp = "20240101_00_00_00".parse().unwrap();
        let spec =
            PartSpec { kind: FileKind::FullSync, stamp, part: None, synced_at: Utc::now(), extra_metadata: vec![] };
        let mut writer = lake.create_part(timesheets, spec, &WriterOptions::default()).await?;
        let page: Vec<_> = raw.iter().map(|n| (n.as_str(), MutationType::Added)).collect();
        writer.write_nodes(page.iter().copied()).await?;
        let file = writer.finish().await?;
        let path = lake.path_of("timesheets", &file.name)?;
        let bytes: Bytes = lake.store().get(&path).await.unwrap().bytes().await.unwrap();
        Ok(ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap().map(|b| b.unwrap()).collect())
    })
}

/// A decimal text and the text it must read back as at scale 6 (written independently of
/// `xledger_model::decimal`: pad the fraction, drop the sign of zero).
fn decimal_case() -> impl Strategy<Value = (String, String)> {
    (any::<bool>(), 0u64..1_000_000_000_000, "[0-9]{0,6}", 0usize..3, any::<bool>()).prop_map(
        |(negative, int_part, frac, trailing_zeros, leading_plus)| {
            let frac_written = format!("{frac}{}", "0".repeat(trailing_zeros));
            let sign = if negative {
                "-"
            } else if leading_plus {
                "+"
            } else {
                ""
            };
            let text = if frac_written.is_empty() {
                format!("{sign}{int_part}")
            } else {
                format!("{sign}{int_part}.{frac_written}")
            };
            let padded = format!("{frac:0<6}");
            let is_zero = int_part == 0 && padded.bytes().all(|b| b == b'0');
            let expected_sign = if negative && !is_zero { "-" } else { "" };
            (text, format!("{expected_sign}{int_part}.{padded}"))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Decimal strings with up to the column's scale of fractional digits (plus trailing zeros)
    /// come out of Parquet as exactly the same number.
    #[test]
    fn decimals_come_back_exactly(cases in prop::collection::vec(decimal_case(), 1..40)) {
        let batches = write_timesheets(&cases, |node, (text, _)| {
            node["workingHours"] = json!(text);
            node["hourlyRevenueCurrency"] = json!(text);
        }).unwrap();
        let mut row = 0;
        for batch in &batches {
            for column in ["workingHours", "hourlyRevenueCurrency"] {
                let array = batch.column_by_name(column).unwrap().as_primitive::<Decimal128Type>();
                for i in 0..array.len() {
                    let got = xledger_model::decimal::format_decimal(array.value(i), 6);
                    prop_assert_eq!(&got, &cases[row + i].1, "{} from {:?}", column, cases[row + i].0);
                }
            }
            row += batch.num_rows();
        }
        prop_assert_eq!(row, cases.len());
    }

    /// One significant fractional digit too many fails the page, naming column, dbId and value.
    #[test]
    fn a_digit_beyond_the_scale_is_an_error_naming_the_column(
        int_part in 0u64..1_000_000, frac in "[0-9]{6}", last in 1u8..10, position in 0usize..5,
    ) {
        let bad = format!("{int_part}.{frac}{last}");
        let mut values: Vec<String> = vec!["1.5".to_string(); 5];
        values[position] = bad.clone();
        let error = write_timesheets(&values, |node, text| node["workingHours"] = json!(text)).unwrap_err();
        let LakeError::Convert(error) = error else { panic!("expected a conversion error, got {error}") };
        prop_assert_eq!(error.column.as_str(), "workingHours");
        prop_assert_eq!(error.db_id, Some(position as i64 + 1));
        prop_assert_eq!(error.value.as_str(), bad.as_str());
        prop_assert!(matches!(error.reason, ConvertReason::Decimal(_)));
    }

    /// Central European wall clocks come out of Parquet as the UTC instant the Europe/Oslo rules
    /// give (chrono-tz as the independent reference); the gap and the overlap read as UTC+1.
    #[test]
    fn wall_clocks_come_back_as_their_utc_instant(seconds in prop::collection::vec(0i64..(40 * 366 * 86_400), 1..40)) {
        let base = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        // Bias half the cases into the transition hours, where mistakes happen.
        let walls: Vec<NaiveDateTime> = seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let wall = base + Duration::seconds(*s);
                if i % 2 == 0 { wall } else { transition_hour(wall) }
            })
            .collect();
        let batches = write_timesheets(&walls, |node, wall| node["createdAt"] = json!(wall.format("%Y-%m-%dT%H:%M:%S").to_string())).unwrap();
        let mut row = 0;
        for batch in &batches {
            let array = batch.column_by_name("createdAt").unwrap().as_primitive::<TimestampMicrosecondType>();
            for i in 0..array.len() {
                let wall = walls[row + i];
                let got = DateTime::from_timestamp_micros(array.value(i)).unwrap();
                let expected = match Oslo.from_local_datetime(&wall) {
                    LocalResult::Single(t) => t.with_timezone(&Utc),
                    LocalResult::Ambiguous(_, _) | LocalResult::None => Utc.from_utc_datetime(&(wall - Duration::hours(1))),
                };
                prop_assert_eq!(got, expected, "wall clock {}", wall);
            }
            row += batch.num_rows();
        }
    }
}

/// The same minute and second inside the DST transition hour of the wall clock's year: the
/// spring-forward gap (last Sunday of March, 02:xx) or the fall-back overlap (last Sunday of
/// October, 02:xx), alternating by second.
fn transition_hour(wall: NaiveDateTime) -> NaiveDateTime {
    use chrono::{Datelike, Timelike};
    let month = if wall.second().is_multiple_of(2) { 3 } else { 10 };
    let last_day = NaiveDate::from_ymd_opt(wall.year(), month, 31).unwrap();
    let last_sunday = last_day - Duration::days(i64::from(last_day.weekday().num_days_from_sunday()));
    last_sunday.and_hms_opt(2, wall.minute(), wall.second()).unwrap()
}
