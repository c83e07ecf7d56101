//! Benchmark of the current-state tables on a 1 M-row timesheet table: the cost of the full-load
//! commit, then of applying 1 000 changes to the newest rows and 1 000 spread uniformly.
//!
//! `cargo run --release -p lake-tables --example table_bench [-- --rows N --changes N]` prints one
//! JSON object. Each measured step runs in a child process of its own (this binary, re-invoked), so
//! its peak RSS and CPU time (getrusage) are its own; generating the raw files is not measured.
//!
//! `unsafe` is allowed here alone: the bench reads its own CPU time and peak RSS with `getrusage`,
//! which `libc` declares and no safe crate in the workspace wraps.
#![allow(unsafe_code)]

use std::process::Command;
use std::time::Instant;

use lake_tables::{TableOptions, Tables, TablesLocation};
use lake_writer::{CommittedFile, FileKind, Lake, LakeOptions, PartSpec, RunStamp, WriterOptions};
use serde_json::{Map, Value, json};
use xledger_model::page::MutationType;
use xledger_model::{ColumnKind, EntitySpec, JsonRepr};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(step) = args.get(1).filter(|a| !a.starts_with("--")) {
        let dir = args.get(2).ok_or("a step needs the lake directory")?;
        let out = runtime.block_on(run_step(
            step,
            dir,
            value("--rows", 1_000_000) as i64,
            value("--changes", 1_000) as i64,
        ))?;
        println!("{out}");
        return Ok(());
    }
    let rows = value("--rows", 1_000_000);
    let changes = value("--changes", 1_000);
    let dir = tempfile::tempdir()?;
    let lake_dir = dir.path().to_str().ok_or("a UTF-8 temp dir")?.to_string();
    let me = std::env::current_exe()?;
    let step = |name: &str| -> Result<Value, Box<dyn std::error::Error>> {
        let output = Command::new(&me)
            .args([name, &lake_dir, "--rows", &rows.to_string(), "--changes", &changes.to_string()])
            .output()?;
        if !output.status.success() {
            return Err(format!("step {name} failed: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let generate = step("generate")?;
    let full = step("full")?;
    let newest = step("newest")?;
    let uniform = step("uniform")?;
    let report = json!({
        "rows": rows,
        "changes": changes,
        "generate_raw_files": generate,
        "full_load_commit": full,
        "changes_to_newest_rows": newest,
        "changes_spread_uniformly": uniform,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn timesheets() -> &'static EntitySpec {
    xledger_model::entity("timesheets").expect("the registry has timesheets")
}

async fn run_step(step: &str, dir: &str, rows: i64, changes: i64) -> Result<Value, Box<dyn std::error::Error>> {
    let lake = Lake::open(dir, LakeOptions::default()).await?;
    let entity = timesheets();
    let start = "20240711_21_17_09".parse::<RunStamp>().map_err(|e| format!("{e:?}"))?.as_datetime();
    let before = usage();
    let clock = Instant::now();
    let mut out = Map::new();
    match step {
        "generate" => {
            let stamp = RunStamp::new(start);
            let spec =
                PartSpec { kind: FileKind::FullSync, stamp, part: None, synced_at: start, extra_metadata: vec![] };
            let mut part = lake.create_part(entity, spec, &WriterOptions::default()).await?;
            let mut id = 1;
            while id <= rows {
                let page: Vec<String> =
                    (id..(id + 10_000).min(rows + 1)).map(|i| node(entity, i, 1).to_string()).collect();
                part.write_nodes(page.iter().map(|n| (n.as_str(), MutationType::Added))).await?;
                id += 10_000;
            }
            let file: CommittedFile = part.finish().await?;
            out.insert("raw_bytes".into(), json!(file.bytes));
            lake.write_manifest(entity, stamp, &[file]).await?;
            // The two change files, written now so the measured steps only apply them.
            let newest: Vec<i64> = (rows - changes + 1..=rows).collect();
            let step_size = (rows / changes).max(1);
            let uniform: Vec<i64> = (0..changes).map(|i| 1 + i * step_size).collect();
            for (offset, ids) in [(1, newest), (2, uniform)] {
                let at = start + chrono::Duration::seconds(offset);
                let spec = PartSpec {
                    kind: FileKind::SyncChanges,
                    stamp: RunStamp::new(at),
                    part: None,
                    synced_at: at,
                    extra_metadata: vec![],
                };
                let mut part = lake.create_part(entity, spec, &WriterOptions::default()).await?;
                let page: Vec<String> = ids.iter().map(|i| node(entity, *i, 2).to_string()).collect();
                part.write_nodes(page.iter().map(|n| (n.as_str(), MutationType::Updated))).await?;
                part.finish().await?;
            }
        }
        "full" | "newest" | "uniform" => {
            let tables = open_tables(&lake).await?;
            // Apply exactly one raw file per step: the lake holds all three, so hide the later ones
            // by moving them aside until their step.
            let applied = step_catch_up(&lake, &tables, entity, step).await?;
            out.insert("applied".into(), json!(applied.applied));
            out.insert("bytes_rewritten".into(), json!(applied.bytes_rewritten));
            out.insert("bytes_written".into(), json!(applied.bytes_written));
            let status = tables.status(entity).await?.ok_or("no table")?;
            out.insert("table_bytes".into(), json!(status.bytes));
            out.insert("table_files".into(), json!(status.files));
            out.insert("table_rows".into(), json!(status.rows));
            if status.bytes > 0 {
                out.insert(
                    "rewritten_percent_of_table".into(),
                    json!((applied.bytes_rewritten as f64 * 1000.0 / status.bytes as f64).round() / 10.0),
                );
            }
        }
        other => return Err(format!("unknown step {other}").into()),
    }
    let after = usage();
    out.insert("wall_s".into(), json!(round(clock.elapsed().as_secs_f64())));
    out.insert("cpu_s".into(), json!(round(after.0 - before.0)));
    out.insert("peak_rss_mb".into(), json!(round(after.1)));
    Ok(Value::Object(out))
}

async fn open_tables(lake: &Lake) -> Result<Tables, Box<dyn std::error::Error>> {
    let location = TablesLocation::parse("current")?.ok_or("tables are on")?;
    Ok(Tables::open(&location, lake, LakeOptions::default(), TableOptions::default()).await?)
}

/// Catches up with only the raw files up to this step visible (later change files are parked in a
/// sibling folder the lake does not list).
async fn step_catch_up(
    lake: &Lake,
    tables: &Tables,
    entity: &'static EntitySpec,
    step: &str,
) -> Result<lake_tables::CatchUp, Box<dyn std::error::Error>> {
    let root = lake.describe();
    let folder = std::path::Path::new(&root).join(entity.name);
    let parked = std::path::Path::new(&root).join("parked");
    std::fs::create_dir_all(&parked)?;
    let mut changes: Vec<String> = std::fs::read_dir(&folder)?
        .chain(std::fs::read_dir(&parked)?)
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sync_changes-"))
        .collect();
    changes.sort();
    let visible = match step {
        "full" => 0,
        "newest" => 1,
        _ => 2,
    };
    for (index, name) in changes.iter().enumerate() {
        let (from, to) = if index < visible { (&parked, &folder) } else { (&folder, &parked) };
        if from.join(name).exists() {
            std::fs::rename(from.join(name), to.join(name))?;
        }
    }
    Ok(tables.catch_up(lake, entity).await?)
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// (user + system CPU seconds, peak RSS in MB) of this process.
fn usage() -> (f64, f64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes only the struct it is given, which is zeroed and ours; a zeroed
    // rusage is valid even if the call failed. std has no safe getrusage (xtask's bench does the same).
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (seconds(usage.ru_utime) + seconds(usage.ru_stime), usage.ru_maxrss as f64 / 1024.0)
}

/// A timesheet node as the API returns it; values depend on (dbId, seed).
fn node(entity: &EntitySpec, db_id: i64, seed: u64) -> Value {
    let mut state = (db_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut root = Map::new();
    for column in entity.columns {
        let r = next();
        let value = match (column.name, column.kind, column.json) {
            ("dbId", _, JsonRepr::String) => json!(db_id.to_string()),
            ("dbId", _, _) => json!(db_id),
            (_, ColumnKind::Int64, JsonRepr::String) => json!((r % 1_000_000).to_string()),
            (_, ColumnKind::Int64, _) => json!(r % 1_000_000),
            (_, ColumnKind::Decimal { .. }, _) => json!(format!("{}.{:02}", r % 10_000, r % 100)),
            (_, ColumnKind::Date, _) => json!(format!("2024-{:02}-{:02}", r % 12 + 1, r % 28 + 1)),
            (_, ColumnKind::Timestamp, _) => {
                json!(format!("2024-{:02}-{:02}T{:02}:{:02}:00", r % 12 + 1, r % 28 + 1, r % 24, r % 60))
            }
            (_, ColumnKind::Float64, _) => json!((r % 100_000) as f64 / 100.0),
            (_, ColumnKind::Boolean, _) => json!(r % 2 == 0),
            (_, ColumnKind::Utf8, _) => json!(format!("text {}", r % 50_000)),
        };
        let mut current = &mut root;
        for key in &column.path[..column.path.len() - 1] {
            let entry = current.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            current = entry.as_object_mut().expect("nested paths are objects");
        }
        current.insert(column.path[column.path.len() - 1].to_string(), value);
    }
    Value::Object(root)
}
