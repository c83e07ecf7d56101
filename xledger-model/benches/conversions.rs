//! Micro-benchmarks of the per-value hot paths every synced row goes through:
//!
//! - `decimal/parse_decimal`: money and hours strings → scaled `i128` (Decimal128);
//! - `datetime/parse_xledger_datetime`: Central European wall clock → UTC, ordinary values and the
//!   DST gap and overlap hours (`oslo_to_utc` takes its slow path there);
//! - `datetime/parse_wall_clock` and `datetime/oslo_to_utc`: the two halves of the above, apart;
//! - `datetime/parse_xledger_date`: `yyyy-MM-dd` → `NaiveDate`;
//! - `int64string/*`: an id sent as a JSON string (timesheets, beyond 2^53) or number;
//! - `page/delta_page`: JSON decoding of a 10 000-edge change-feed page into [`DeltaPage`].
//!
//! Arrow building (JSON node → RecordBatch) is lake-writer's `convert` bench; decoding an items
//! page from the wire is xledger-client's `page_decode` bench.
//!
//! Run with `cargo bench -p xledger-model --bench conversions`. Every input is checked against
//! its expected result once before it is timed, so a bench never measures an error path by accident.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use xledger_model::decimal::parse_decimal;
use xledger_model::page::{DeltaPage, MutationType};
use xledger_model::scalars::Int64String;
use xledger_model::time::{oslo_to_utc, parse_wall_clock, parse_xledger_date, parse_xledger_datetime};

/// Edges per page, the API's cap and the tool's default page size.
const PAGE: usize = 10_000;

/// `(text, precision, scale, expected)`: the shapes the simulator and Xledger send.
const DECIMALS: &[(&str, u8, i8, i128)] = &[
    ("101.00", 18, 2, 10_100),
    ("-7.125", 28, 6, -7_125_000),
    ("7.5", 18, 2, 750),
    ("0", 18, 2, 0),
    ("123456789.123456", 28, 6, 123_456_789_123_456),
    ("-0.000001", 28, 6, -1),
    ("1.500", 18, 2, 150),
    ("99999999999.99", 18, 2, 9_999_999_999_999),
];

/// `(wall clock, expected UTC)`: winter, summer, fractional seconds, and both DST edges.
const DATETIMES: &[(&str, &str)] = &[
    ("2024-01-15T08:30:00", "2024-01-15T07:30:00+00:00"),
    ("2024-07-11T21:17:09", "2024-07-11T19:17:09+00:00"),
    ("2024-07-11T21:17:09.123", "2024-07-11T19:17:09.123+00:00"),
    // Spring-forward gap: read as UTC+1.
    ("2024-03-31T02:30:00", "2024-03-31T01:30:00+00:00"),
    // Fall-back overlap: standard time, the later instant.
    ("2024-10-27T02:30:00", "2024-10-27T01:30:00+00:00"),
    // The minutes either side of the edges.
    ("2024-03-31T01:59:59", "2024-03-31T00:59:59+00:00"),
    ("2024-10-27T03:00:00", "2024-10-27T02:00:00+00:00"),
];

fn decimals(c: &mut Criterion) {
    for &(text, precision, scale, expected) in DECIMALS {
        assert_eq!(parse_decimal(text, precision, scale), Ok(expected), "{text} at scale {scale}");
    }
    let mut group = c.benchmark_group("decimal");
    group.throughput(Throughput::Elements(DECIMALS.len() as u64));
    group.bench_function("parse_decimal", |b| {
        b.iter(|| {
            for &(text, precision, scale, _) in DECIMALS {
                let _ = black_box(parse_decimal(black_box(text), precision, scale));
            }
        })
    });
    group.finish();
}

fn datetimes(c: &mut Criterion) {
    for &(text, utc) in DATETIMES {
        let parsed = parse_xledger_datetime(text).map(|t| t.to_rfc3339());
        assert_eq!(parsed.as_deref(), Ok(utc), "{text}");
    }
    let dst_edges = &DATETIMES[3..5];
    let mut group = c.benchmark_group("datetime");
    group.throughput(Throughput::Elements(DATETIMES.len() as u64));
    group.bench_function("parse_xledger_datetime", |b| {
        b.iter(|| {
            for &(text, _) in DATETIMES {
                let _ = black_box(parse_xledger_datetime(black_box(text)));
            }
        })
    });
    group.throughput(Throughput::Elements(dst_edges.len() as u64));
    group.bench_function("parse_xledger_datetime_dst_edges", |b| {
        b.iter(|| {
            for &(text, _) in dst_edges {
                let _ = black_box(parse_xledger_datetime(black_box(text)));
            }
        })
    });
    // The two halves of parse_xledger_datetime, to show which one costs.
    let wall_clocks: Vec<_> =
        DATETIMES.iter().map(|&(text, _)| parse_wall_clock(text).expect("the sample parses")).collect();
    group.throughput(Throughput::Elements(DATETIMES.len() as u64));
    group.bench_function("parse_wall_clock", |b| {
        b.iter(|| {
            for &(text, _) in DATETIMES {
                let _ = black_box(parse_wall_clock(black_box(text)));
            }
        })
    });
    group.bench_function("oslo_to_utc", |b| {
        b.iter(|| {
            for &wall_clock in &wall_clocks {
                black_box(oslo_to_utc(black_box(wall_clock)));
            }
        })
    });
    assert_eq!(parse_xledger_date("2024-02-29").map(|d| d.to_string()).as_deref(), Ok("2024-02-29"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_xledger_date", |b| b.iter(|| black_box(parse_xledger_date(black_box("2024-02-29")))));
    group.finish();
}

fn int64_strings(c: &mut Criterion) {
    // Beyond 2^53: a JSON number of this size would lose digits in many clients, hence the string.
    let as_string = "\"9007199254740993\"";
    let as_number = "123456789";
    assert_eq!(serde_json::from_str::<Int64String>(as_string).ok(), Some(Int64String(9_007_199_254_740_993)));
    assert_eq!(serde_json::from_str::<Int64String>(as_number).ok(), Some(Int64String(123_456_789)));
    let mut group = c.benchmark_group("int64string");
    group.throughput(Throughput::Elements(1));
    group.bench_function("from_json_string", |b| {
        b.iter(|| black_box(serde_json::from_str::<Int64String>(black_box(as_string))))
    });
    group.bench_function("from_json_number", |b| {
        b.iter(|| black_box(serde_json::from_str::<Int64String>(black_box(as_number))))
    });
    group.finish();
}

/// A plausible value for a column, varied by row so the decoder cannot coast on repetition.
fn delta_page_text() -> String {
    let kinds = ["ADDED", "UPDATED", "DELETED"];
    let edges: Vec<Value> = (0..PAGE)
        .map(|row| json!({ "cursor": format!("d{row:08}"), "node": { "dbId": (9_007_199_254_740_993_i64 + row as i64).to_string(), "mutationType": kinds[row % 3] } }))
        .collect();
    json!({ "edges": edges, "pageInfo": { "hasNextPage": false } }).to_string()
}

fn pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("page");
    group.sample_size(20).throughput(Throughput::Elements(PAGE as u64));
    let text = delta_page_text();
    let page: DeltaPage = serde_json::from_str(&text).expect("the sample delta page decodes");
    assert_eq!(page.edges.len(), PAGE);
    assert_eq!(page.edges[1].node.mutation_type, MutationType::Updated);
    assert_eq!(page.edges[0].node.db_id, Int64String(9_007_199_254_740_993));
    group.bench_function("delta_page", |b| b.iter(|| black_box(serde_json::from_str::<DeltaPage>(black_box(&text)))));
    group.finish();
}

criterion_group!(conversions, decimals, datetimes, int64_strings, pages);
criterion_main!(conversions);
