//! `cargo xtask bench`: throughput, memory and API-cost benchmarks (issue 9).
//!
//! Measures, on the machine it runs on, and prints as tables (also written as JSON to
//! `target/bench/bench-<stamp>.json`):
//!
//! 1. **Writer throughput**: rows/s and MB/s of JSON in, JSON page → Parquet part, for timesheets
//!    and transactions. The numbers are lake-writer's criterion bench (`cargo bench -p lake-writer
//!    --bench convert`, one core, 10 000-row pages), read back from `target/criterion`: xtask
//!    never links the product crates, so it cannot time the writer itself.
//! 2. **Full syncs** of N timesheets and N transactions (default N = 100 k and 1 M; `--repeat`
//!    runs per entity and size, one by default, each into an empty lake) from the `xledger-sim`
//!    binary over loopback: wall time, rows/s, the tool's CPU time and peak RSS as the kernel
//!    accounted them (`wait4`), requests and bytes from the tool's `pass_summary`, and the
//!    simulator's own counters, CPU time and memory. With repeats, the medians too.
//! 3. **An incremental pass** after `--changes` (10 k) random changes spread over the eight
//!    entities, on the smallest size (the other six entities are fully loaded first, untimed).
//! 4. **An idle pass**: how many requests a pass with nothing to do costs.
//!
//! It then checks the issue's targets and says which are met. A missed target is reported, not
//! an error: the numbers are the output. It fails only when something could not be measured
//! (a build, a process or a sync pass failed).
//!
//! Both binaries run from `target/release` as separate processes (built first unless
//! `--no-build`), so the tool's numbers never include the simulator's work. This command never
//! prints the simulator's API key (generated per run), and tests never assert timings.
//!
//! `unsafe` is allowed in this module alone: it measures one child process exactly, with `wait4`
//! (the child's own CPU time and peak RSS, which `getrusage(RUSAGE_CHILDREN)` would mix with the
//! simulator's), `kill` and `sysconf`, which `libc` declares and no safe crate in the workspace wraps.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

/// The two big entities whose full syncs are measured.
pub const FULL_SYNC_ENTITIES: [&str; 2] = ["timesheets", "transactions"];
/// Full-sync sizes without `--rows` or `--quick`.
pub const DEFAULT_SIZES: [u64; 2] = [100_000, 1_000_000];
/// The size of a `--quick` run.
pub const QUICK_SIZE: u64 = 100_000;

/// Options of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Smoke run: only the 100 k-row full syncs (plus the incremental and idle passes).
    #[arg(long, conflicts_with = "rows")]
    pub quick: bool,
    /// Full-sync sizes in rows per entity, comma-separated [default: 100000,1000000].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: Vec<u64>,
    /// Rows of each of the six other entities in the simulator.
    #[arg(long, default_value_t = 10_000)]
    pub other_rows: u64,
    /// Random changes applied in the simulator before the incremental pass.
    #[arg(long, default_value_t = 10_000)]
    pub changes: u64,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the writer throughput bench (it builds lake-writer in the bench profile).
    #[arg(long)]
    pub skip_writer: bool,
    /// Use the release binaries already in target/release instead of building them.
    #[arg(long)]
    pub no_build: bool,
    /// Keep the lakes, state files and logs under `target/bench/work-<stamp>/`.
    #[arg(long)]
    pub keep: bool,
    /// Parquet compression of the synced files (the tool's default is zstd). `none` shows what
    /// the codec costs in the full syncs.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "snappy", "none"])]
    pub compression: String,
    /// The simulator's data: `stress` (its default: near-unique, adversarial text in every
    /// column) or `ledger` (nested objects are repeating referenced records, as in a real ledger).
    #[arg(long, default_value = "stress", value_parser = ["stress", "ledger"])]
    pub data: String,
    /// Full syncs per entity and size, each into an empty lake, the entities alternating. This
    /// machine's speed drifts by ±10 % within minutes: the tables then give every run and the
    /// medians, and every run is judged.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub repeat: u32,
    /// The tool's current-state tables during the syncs: `current` (its default: every pass also
    /// keeps the Delta tables) or `none` (raw files only).
    #[arg(long, default_value = "current", value_parser = ["current", "none"])]
    pub tables: String,
    /// Skip the current-state tables bench (1 000 changes to a 1 M-row timesheet table; it builds
    /// lake-tables' `table_bench` example in release).
    #[arg(long)]
    pub skip_tables: bool,
}

impl Args {
    /// The full-sync sizes to run, ascending and without repeats.
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes = if self.quick {
            vec![QUICK_SIZE]
        } else if self.rows.is_empty() {
            DEFAULT_SIZES.to_vec()
        } else {
            self.rows.clone()
        };
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }
}

/// Runs the benchmarks, prints the tables and writes the JSON report.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let stamp = chrono::Utc::now().format("%Y%m%d_%H%M%S").to_string();
    let bench_dir = root.join("target").join("bench");
    std::fs::create_dir_all(&bench_dir).with_context(|| format!("creating {}", bench_dir.display()))?;
    let sizes = args.sizes();
    let machine_before = Machine::describe();
    if !args.no_build {
        build_release_binaries(&root)?;
    }
    let binaries = Binaries::in_target(&root)?;
    let writer = if args.skip_writer { None } else { Some(writer_throughput(&root, &bench_dir, &stamp)?) };
    let tables = if args.skip_tables { None } else { Some(tables_bench(&root, args.no_build)?) };

    let mut work = WorkDir::create(bench_dir.join(format!("work-{stamp}")), args.keep)?;
    let mut report = Report {
        stamp: stamp.clone(),
        machine: machine_before,
        load_average_after: None,
        settings: Settings {
            sizes,
            other_rows: args.other_rows,
            changes: args.changes,
            seed: args.seed,
            compression: args.compression,
            data: args.data,
            repeat: args.repeat,
            tables: args.tables,
        },
        writer,
        tables,
        simulators: Vec::new(),
        full_syncs: Vec::new(),
        incremental: None,
        idle: None,
        targets: Vec::new(),
    };
    if let Err(error) = measure_syncs(&binaries, &work.path, args.keep, &mut report) {
        // Keep the logs the error points at.
        work.keep = true;
        return Err(error.context(format!("lakes, state and logs kept in {}", work.path.display())));
    }
    report.load_average_after = load_average();
    report.targets = judge(&report);

    print!("{}", render(&report));
    let json_path = bench_dir.join(format!("bench-{stamp}.json"));
    let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    println!("JSON: {}", json_path.display());
    if args.keep {
        println!("lakes, state and logs kept in {}", work.path.display());
    }
    Ok(())
}

/// Sections 2–4: per size, a simulator, the full syncs, and (smallest size) the incremental and
/// idle passes.
fn measure_syncs(binaries: &Binaries, work: &Path, keep: bool, report: &mut Report) -> anyhow::Result<()> {
    let key = SimKey::generate();
    let settings = report.settings.clone();
    for (index, &rows) in settings.sizes.iter().enumerate() {
        let dir = work.join(format!("rows-{rows}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        eprintln!(
            "xtask bench: starting xledger-sim with {rows} timesheets and transactions, {} rows of the others, {} data",
            settings.other_rows, settings.data
        );
        let sim_settings =
            SimSettings { rows, other_rows: settings.other_rows, seed: settings.seed, data: settings.data.clone() };
        let sim = SimProcess::start(&binaries.sim, sim_settings, &key, &dir.join("xledger-sim.log"))?;
        let sync = SyncSetup {
            binary: &binaries.sync,
            sim: &sim,
            key: &key,
            dir: &dir,
            compression: &settings.compression,
            tables: &settings.tables,
        };
        for run in 1..=settings.repeat {
            // The first run fills the size's own lake, which the incremental pass builds on; every
            // later run starts from an empty lake and state of its own, so each is a full load.
            let run_dir = if run == 1 { dir.clone() } else { dir.join(format!("run-{run}")) };
            std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
            let run_sync = SyncSetup { dir: &run_dir, ..sync };
            for entity in FULL_SYNC_ENTITIES {
                let label = full_sync_label(entity, rows, run, settings.repeat);
                eprintln!("xtask bench: {label}");
                let pass = run_sync.measure(&label, &["sync", "--entity", entity])?;
                report.full_syncs.push(FullSync { entity: entity.to_string(), rows, run, pass });
            }
            if run > 1 && !keep {
                std::fs::remove_dir_all(&run_dir).with_context(|| format!("removing {}", run_dir.display()))?;
            }
        }
        if index == 0 {
            eprintln!("xtask bench: full loads of the other entities (setup, not a result)");
            let setup = sync.measure("setup-other-entities", &["sync"])?;
            eprintln!("xtask bench: {} random changes, then an incremental pass", settings.changes);
            let changes = sim.random_changes(settings.changes, settings.seed.wrapping_add(1))?;
            let pass = sync.measure("incremental", &["sync"])?;
            report.incremental = Some(Incremental { rows_per_big_entity: rows, changes, setup, pass });
            eprintln!("xtask bench: idle pass");
            report.idle = Some(sync.measure("idle", &["sync"])?);
        }
        report.simulators.push(sim.stop()?);
    }
    Ok(())
}

/// `full-transactions-1000000`, or `full-transactions-1000000-run2` when each sync runs more than once.
pub fn full_sync_label(entity: &str, rows: u64, run: u32, repeat: u32) -> String {
    if repeat > 1 { format!("full-{entity}-{rows}-run{run}") } else { format!("full-{entity}-{rows}") }
}

// ---------------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------------

/// Everything one `cargo xtask bench` measured (the JSON file).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UTC start, `YYYYMMDD_HHMMSS`.
    pub stamp: String,
    pub machine: Machine,
    /// The 1/5/15-minute load averages when the last measurement ended.
    pub load_average_after: Option<[f64; 3]>,
    pub settings: Settings,
    /// `None` with `--skip-writer`.
    pub writer: Option<Vec<WriterResult>>,
    /// lake-tables' `table_bench` report (its JSON as printed); `None` with `--skip-tables`.
    pub tables: Option<serde_json::Value>,
    /// One per size: the simulator process itself.
    pub simulators: Vec<SimRun>,
    pub full_syncs: Vec<FullSync>,
    pub incremental: Option<Incremental>,
    pub idle: Option<PassRun>,
    pub targets: Vec<TargetCheck>,
}

/// What was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub sizes: Vec<u64>,
    pub other_rows: u64,
    pub changes: u64,
    pub seed: u64,
    /// Parquet compression of the synced files.
    pub compression: String,
    /// The simulator's data profile (`stress` or `ledger`).
    pub data: String,
    /// Full syncs per entity and size.
    pub repeat: u32,
    /// The tool's `XLEDGER_TABLES` during the syncs.
    pub tables: String,
}

/// The machine and how busy it was when the run started.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: Option<String>,
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    pub kernel: Option<String>,
    pub load_average_before: Option<[f64; 3]>,
}

impl Machine {
    fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu_model: cpuinfo.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            }),
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            memory_bytes: proc_kib_field(&meminfo, "MemTotal:").map(|kib| kib * 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|text| text.trim().to_string()),
            load_average_before: load_average(),
        }
    }
}

/// The writer's throughput for one entity, from lake-writer's criterion bench.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriterResult {
    pub entity: String,
    /// Page → Parquet part in an in-memory lake (`write/<entity>`).
    pub rows_per_s: f64,
    /// The same, in MB (10^6 bytes) of input JSON per second (`write_bytes/<entity>`).
    pub json_mb_per_s: f64,
    /// Page text → RecordBatch only, in one pass (`convert/<entity>/direct`), when that bench ran.
    pub convert_rows_per_s: Option<f64>,
}

/// One simulator process: its start-up (data generation) and what it used over its life.
#[derive(Debug, Clone, Serialize)]
pub struct SimRun {
    pub rows: u64,
    pub other_rows: u64,
    pub startup_s: f64,
    pub peak_rss_bytes: u64,
    pub cpu_s: f64,
}

/// A full sync of one entity at one size.
#[derive(Debug, Clone, Serialize)]
pub struct FullSync {
    pub entity: String,
    /// Rows the simulator held for the entity.
    pub rows: u64,
    /// 1 to `--repeat`.
    pub run: u32,
    pub pass: PassRun,
}

/// The incremental pass and what preceded it.
#[derive(Debug, Clone, Serialize)]
pub struct Incremental {
    /// The size of timesheets and transactions in that simulator.
    pub rows_per_big_entity: u64,
    /// The simulator's account of the changes it made.
    pub changes: ChangeSummary,
    /// Full loads of the other six entities (not a result; recorded for completeness).
    pub setup: PassRun,
    pub pass: PassRun,
}

/// The simulator's `POST /admin/random-changes` answer (the fields the bench uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    #[serde(default)]
    pub by_entity: BTreeMap<String, EntityChanges>,
}

/// Changes the simulator made to one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityChanges {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// One `xledger-sync` invocation as the OS, the tool and the simulator saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassRun {
    pub label: String,
    pub args: Vec<String>,
    /// From spawn to exit.
    pub wall_s: f64,
    /// The tool's CPU time (`ru_utime`, `ru_stime`).
    pub user_s: f64,
    pub sys_s: f64,
    /// (user + sys) / wall: above 1 means more than one core busy.
    pub cpu_share: f64,
    /// `ru_maxrss`: the tool's peak resident set.
    pub peak_rss_bytes: u64,
    /// Rows written: added + updated + deleted.
    pub rows: u64,
    pub rows_per_s: f64,
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub files: u64,
    /// Parquet bytes written to the lake.
    pub bytes_written: u64,
    /// The tool's count of requests to the API.
    pub requests: u64,
    /// Response bytes on the wire (gzip), as the tool counted them.
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// The simulator's own count of `/graphql` requests during the pass.
    pub sim_requests: u64,
    pub sim_response_bytes: u64,
    /// The simulator's CPU time during the pass.
    pub sim_cpu_s: f64,
}

impl PassRun {
    fn new(label: &str, args: &[&str], usage: ChildUsage, summary: &PassSummary, sim: SimDuring) -> PassRun {
        let wall_s = usage.wall.as_secs_f64();
        let (user_s, sys_s) = (usage.user.as_secs_f64(), usage.sys.as_secs_f64());
        let (added, updated, deleted) =
            summary.entities.iter().fold((0, 0, 0), |(a, u, d), e| (a + e.added, u + e.updated, d + e.deleted));
        let rows = added + updated + deleted;
        PassRun {
            label: label.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            wall_s,
            user_s,
            sys_s,
            cpu_share: ratio(user_s + sys_s, wall_s),
            peak_rss_bytes: usage.peak_rss_bytes,
            rows,
            rows_per_s: ratio(rows as f64, wall_s),
            added,
            updated,
            deleted,
            files: summary.entities.iter().map(|e| e.files).sum(),
            bytes_written: summary.entities.iter().map(|e| e.bytes_written).sum(),
            requests: summary.requests,
            bytes_received: summary.bytes_received,
            bytes_sent: summary.bytes_sent,
            sim_requests: sim.counters.http_requests,
            sim_response_bytes: sim.counters.response_bytes,
            sim_cpu_s: sim.cpu_s,
        }
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 { numerator / denominator } else { 0.0 }
}

/// One of the issue's targets and what was measured against it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    /// `None` when this run could not judge it (e.g. one size only, writer skipped).
    pub met: Option<bool>,
}

/// Peak RSS allowed during the largest full sync.
pub const MAX_PEAK_RSS_BYTES: u64 = 200_000_000;
/// Largest size's peak RSS over the smallest size's, at most.
pub const MAX_RSS_GROWTH: f64 = 1.2;
/// Writer timesheet rows per second, at least.
pub const MIN_WRITER_ROWS_PER_S: f64 = 300_000.0;
/// The tool's CPU time over wall time during a full sync, at most.
pub const MAX_FULL_SYNC_CPU_SHARE: f64 = 0.5;
/// Requests an idle pass may cost.
pub const IDLE_PASS_REQUESTS: u64 = 1;

/// Checks the issue's targets against a report.
pub fn judge(report: &Report) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let largest = report.settings.sizes.last().copied();
    let smallest = report.settings.sizes.first().copied();
    let runs = |rows: u64, entity: &'static str| runs_of(&report.full_syncs, rows, entity);
    // Growth compares typical peaks: with repeats, the median run of each size.
    let peak_at =
        |rows: u64, entity: &'static str| median(runs(rows, entity).map(|p| p.peak_rss_bytes as f64).collect());
    let repeated = report.settings.repeat > 1;

    if let Some(largest) = largest {
        // The worst run of each entity.
        let peaks: Vec<(&str, u64)> = FULL_SYNC_ENTITIES
            .iter()
            .filter_map(|&entity| Some((entity, runs(largest, entity).map(|p| p.peak_rss_bytes).max()?)))
            .collect();
        let worst = peaks.iter().map(|(_, peak)| *peak).max();
        checks.push(TargetCheck {
            target: format!("peak RSS of a {} full sync <= {}", count(largest), megabytes(MAX_PEAK_RSS_BYTES)),
            measured: peaks
                .iter()
                .map(|(entity, peak)| format!("{entity} {}", megabytes(*peak)))
                .collect::<Vec<_>>()
                .join(", ")
                + if repeated { " (worst runs)" } else { "" },
            met: worst.map(|worst| worst <= MAX_PEAK_RSS_BYTES),
        });
    }
    match (smallest, largest) {
        (Some(smallest), Some(largest)) if smallest < largest => {
            let growth: Vec<(&str, f64)> = FULL_SYNC_ENTITIES
                .iter()
                .filter_map(|&entity| Some((entity, ratio(peak_at(largest, entity)?, peak_at(smallest, entity)?))))
                .collect();
            let of_medians = if repeated { " (medians)" } else { "" };
            checks.push(TargetCheck {
                target: format!("peak RSS {} / {} <= {MAX_RSS_GROWTH}x{of_medians}", count(largest), count(smallest)),
                measured: growth
                    .iter()
                    .map(|(entity, growth)| format!("{entity} {growth:.2}x"))
                    .collect::<Vec<_>>()
                    .join(", "),
                met: (!growth.is_empty()).then(|| growth.iter().all(|(_, growth)| *growth <= MAX_RSS_GROWTH)),
            });
        }
        _ => checks.push(TargetCheck {
            target: format!("peak RSS growth with the data <= {MAX_RSS_GROWTH}x"),
            measured: "needs two sizes".to_string(),
            met: None,
        }),
    }
    let timesheets_writer = report.writer.as_ref().and_then(|writer| writer.iter().find(|w| w.entity == "timesheets"));
    checks.push(TargetCheck {
        target: format!("writer >= {} timesheet rows/s on one core", count(MIN_WRITER_ROWS_PER_S as u64)),
        measured: timesheets_writer.map_or_else(
            || "not measured (--skip-writer)".to_string(),
            |w| format!("{} rows/s", count(w.rows_per_s as u64)),
        ),
        met: timesheets_writer.map(|w| w.rows_per_s >= MIN_WRITER_ROWS_PER_S),
    });
    let busiest = report.full_syncs.iter().max_by(|a, b| a.pass.cpu_share.total_cmp(&b.pass.cpu_share));
    // The target is about the tool as it ships: a run with another codec shows what the codec
    // costs, and is not judged.
    let shipped_codec = report.settings.compression == "zstd";
    checks.push(TargetCheck {
        target: format!("tool CPU time <= {:.0} % of wall time in every full sync", MAX_FULL_SYNC_CPU_SHARE * 100.0),
        measured: busiest.map_or_else(
            || "no full sync ran".to_string(),
            |f| {
                let codec = if shipped_codec {
                    String::new()
                } else {
                    format!("; compression {}, not judged", report.settings.compression)
                };
                let data = &report.settings.data;
                format!(
                    "at most {:.0} % ({} {}, {data} data{codec})",
                    f.pass.cpu_share * 100.0,
                    f.entity,
                    count(f.rows)
                )
            },
        ),
        met: busiest.filter(|_| shipped_codec).map(|f| f.pass.cpu_share <= MAX_FULL_SYNC_CPU_SHARE),
    });
    checks.push(TargetCheck {
        target: format!("idle pass: {IDLE_PASS_REQUESTS} request"),
        measured: report.idle.as_ref().map_or_else(|| "not run".to_string(), |idle| requests(idle.requests)),
        met: report.idle.as_ref().map(|idle| idle.requests == IDLE_PASS_REQUESTS),
    });
    if report.settings.tables != "none" {
        let worst = report.full_syncs.iter().map(|f| f.pass.peak_rss_bytes).max();
        checks.push(TargetCheck {
            target: format!(
                "peak RSS of a full sync with the tables on <= {}",
                megabytes(MAX_PEAK_RSS_WITH_TABLES_BYTES)
            ),
            measured: worst
                .map_or_else(|| "no full sync ran".to_string(), |peak| format!("at most {}", megabytes(peak))),
            met: worst.map(|peak| peak <= MAX_PEAK_RSS_WITH_TABLES_BYTES),
        });
    }
    if let Some(tables) = &report.tables {
        let newest = tables["changes_to_newest_rows"]["rewritten_percent_of_table"].as_f64();
        checks.push(TargetCheck {
            target: format!("1 000 changes to the newest rows rewrite <= {MAX_NEWEST_REWRITE_PERCENT} % of the table"),
            measured: newest.map_or_else(|| "not in the report".to_string(), |p| format!("{p:.1} %")),
            met: newest.map(|p| p <= MAX_NEWEST_REWRITE_PERCENT),
        });
    }
    checks
}

/// Peak RSS allowed for any full sync while the current-state tables are kept.
pub const MAX_PEAK_RSS_WITH_TABLES_BYTES: u64 = 120_000_000;
/// Share of a 1 M-row table's bytes that 1 000 changes to its newest rows may rewrite.
pub const MAX_NEWEST_REWRITE_PERCENT: f64 = 10.0;

/// Every run of one entity's full sync at one size.
fn runs_of<'a>(syncs: &'a [FullSync], rows: u64, entity: &'a str) -> impl Iterator<Item = &'a PassRun> + 'a {
    syncs.iter().filter(move |f| f.rows == rows && f.entity == entity).map(|f| &f.pass)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.
// ---------------------------------------------------------------------------------------------

/// Microseconds of CPU per row (0 for no rows).
fn micros_per_row(cpu_s: f64, rows: u64) -> f64 {
    if rows == 0 { 0.0 } else { cpu_s * 1e6 / rows as f64 }
}

/// The tables printed on stdout.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "\nxledger-sync benchmarks {} — {}, {} cores, {} RAM, kernel {}; load {} before, {} after",
        report.stamp,
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.cores,
        m.memory_bytes.map_or_else(|| "?".to_string(), megabytes),
        m.kernel.as_deref().unwrap_or("?"),
        load_text(m.load_average_before),
        load_text(report.load_average_after),
    );

    let _ =
        writeln!(out, "\n1. Writer: JSON page -> Parquet (lake-writer criterion bench, one core, 10 000-row pages)");
    match &report.writer {
        None => {
            let _ = writeln!(out, "   skipped (--skip-writer)");
        }
        Some(writer) => {
            let _ =
                writeln!(out, "{:<14} {:>14} {:>12} {:>20}", "entity", "rows/s", "MB/s JSON", "convert-only rows/s");
            for w in writer {
                let _ = writeln!(
                    out,
                    "{:<14} {:>14} {:>12.1} {:>20}",
                    w.entity,
                    count(w.rows_per_s as u64),
                    w.json_mb_per_s,
                    w.convert_rows_per_s.map_or_else(|| "-".to_string(), |r| count(r as u64))
                );
            }
        }
    }

    let repeat = report.settings.repeat;
    let _ = writeln!(
        out,
        "\n2. Full sync from xledger-sim over loopback ({} per entity and size, {} data, Parquet compression {})",
        if repeat > 1 { format!("{repeat} runs") } else { "one run".to_string() },
        report.settings.data,
        report.settings.compression
    );
    let _ = writeln!(
        out,
        "{:<16} {:>10} {:>9} {:>10} {:>9} {:>7} {:>10} {:>9} {:>11} {:>9} {:>10} {:>12}",
        "entity",
        "rows",
        "wall",
        "rows/s",
        "tool CPU",
        "CPU %",
        "peak RSS",
        "requests",
        "wire bytes",
        "sim CPU",
        "files",
        "µs/row t/s"
    );
    for f in &report.full_syncs {
        let p = &f.pass;
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>9} {:>10} {:>9} {:>7} {:>10} {:>9} {:>11} {:>9} {:>10} {:>12}",
            if repeat > 1 { format!("{} #{}", f.entity, f.run) } else { f.entity.clone() },
            count(p.rows),
            seconds(p.wall_s),
            count(p.rows_per_s as u64),
            seconds(p.user_s + p.sys_s),
            format!("{:.0} %", p.cpu_share * 100.0),
            megabytes(p.peak_rss_bytes),
            p.requests,
            megabytes(p.bytes_received),
            seconds(p.sim_cpu_s),
            p.files,
            // CPU per row of the tool and of the simulator: with the sequential page loop, the
            // CPU share target holds when the first is at most the second.
            format!("{:.2}/{:.2}", micros_per_row(p.user_s + p.sys_s, p.rows), micros_per_row(p.sim_cpu_s, p.rows))
        );
    }
    if repeat > 1 {
        render_medians(report, &mut out);
    }
    for s in &report.simulators {
        let _ = writeln!(
            out,
            "   simulator with {} rows: generated in {}, peak RSS {}, CPU {}",
            count(s.rows),
            seconds(s.startup_s),
            megabytes(s.peak_rss_bytes),
            seconds(s.cpu_s)
        );
    }

    if let Some(inc) = &report.incremental {
        let c = &inc.changes;
        let p = &inc.pass;
        let _ = writeln!(
            out,
            "\n3. Incremental pass: {} changes over {} entities (+{} ~{} -{}), {} timesheets/transactions",
            count(c.added + c.updated + c.deleted),
            c.by_entity.len(),
            c.added,
            c.updated,
            c.deleted,
            count(inc.rows_per_big_entity)
        );
        let _ = writeln!(
            out,
            "   {} rows written in {} ({} rows/s), {} requests, {} on the wire, tool CPU {}, peak RSS {}",
            count(p.rows),
            seconds(p.wall_s),
            count(p.rows_per_s as u64),
            p.requests,
            megabytes(p.bytes_received),
            seconds(p.user_s + p.sys_s),
            megabytes(p.peak_rss_bytes)
        );
    }
    if let Some(idle) = &report.idle {
        let _ = writeln!(
            out,
            "\n4. Idle pass: {} ({} seen by the simulator), {} on the wire, {}",
            requests(idle.requests),
            idle.sim_requests,
            bytes_text(idle.bytes_received),
            seconds(idle.wall_s)
        );
    }
    if let Some(tables) = &report.tables {
        let _ = writeln!(
            out,
            "\n5. Current-state tables: {} timesheets, {} changes (lake-tables table_bench, one process per step)",
            tables["rows"], tables["changes"]
        );
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>9} {:>10} {:>16} {:>16}",
            "step", "wall", "CPU", "peak RSS", "bytes rewritten", "bytes written"
        );
        for (name, key) in [
            ("full-load table commit", "full_load_commit"),
            ("changes to the newest rows", "changes_to_newest_rows"),
            ("changes spread uniformly", "changes_spread_uniformly"),
        ] {
            let step = &tables[key];
            let number = |field: &str| step[field].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "{name:<28} {:>8.2}s {:>8.2}s {:>7.1} MB {:>16} {:>16}",
                number("wall_s"),
                number("cpu_s"),
                number("peak_rss_mb"),
                step["bytes_rewritten"].as_u64().map_or_else(|| "-".to_string(), bytes_text),
                step["bytes_written"].as_u64().map_or_else(|| "-".to_string(), bytes_text),
            );
        }
    }

    let _ = writeln!(out, "\nTargets");
    for check in &report.targets {
        let verdict = match check.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not judged",
        };
        let _ = writeln!(out, "   {:<58} {:<44} {verdict}", check.target, check.measured);
    }
    out
}

/// The median run of each entity and size, with the CPU share's range over the runs.
fn render_medians(report: &Report, out: &mut String) {
    let _ = writeln!(out, "   medians of {} runs:", report.settings.repeat);
    let _ = writeln!(
        out,
        "   {:<13} {:>10} {:>9} {:>10} {:>9} {:>7} {:>10} {:>10} {:>12}",
        "entity", "rows", "wall", "rows/s", "tool CPU", "CPU %", "CPU % range", "peak RSS", "µs/row t/s"
    );
    for &rows in &report.settings.sizes {
        for entity in FULL_SYNC_ENTITIES {
            let runs: Vec<&PassRun> = runs_of(&report.full_syncs, rows, entity).collect();
            let of = |value: fn(&PassRun) -> f64| median(runs.iter().map(|p| value(p)).collect());
            // One median is there exactly when every other is: when the size ran for this entity.
            let Some(share) = of(|p| p.cpu_share) else { continue };
            let [wall, cpu, sim_cpu, peak] =
                [of(|p| p.wall_s), of(|p| p.user_s + p.sys_s), of(|p| p.sim_cpu_s), of(|p| p.peak_rss_bytes as f64)]
                    .map(Option::unwrap_or_default);
            let (low, high) = runs
                .iter()
                .fold((f64::INFINITY, 0.0_f64), |(low, high), p| (low.min(p.cpu_share), high.max(p.cpu_share)));
            let _ = writeln!(
                out,
                "   {:<13} {:>10} {:>9} {:>10} {:>9} {:>7} {:>11} {:>10} {:>12}",
                entity,
                count(rows),
                seconds(wall),
                count(ratio(rows as f64, wall) as u64),
                seconds(cpu),
                format!("{:.0} %", share * 100.0),
                format!("{:.0}–{:.0} %", low * 100.0, high * 100.0),
                megabytes(peak as u64),
                format!("{:.2}/{:.2}", micros_per_row(cpu, rows), micros_per_row(sim_cpu, rows))
            );
        }
    }
}

/// `1 234 567`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

/// `1 request`, `12 requests`.
fn requests(n: u64) -> String {
    if n == 1 { "1 request".to_string() } else { format!("{} requests", count(n)) }
}

/// `12.3 MB` (10^6 bytes: the unit of the issue's targets).
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn bytes_text(bytes: u64) -> String {
    if bytes < 100_000 { format!("{bytes} B") } else { megabytes(bytes) }
}

fn seconds(value: f64) -> String {
    format!("{value:.2} s")
}

fn load_text(load: Option<[f64; 3]>) -> String {
    load.map_or_else(|| "?".to_string(), |[one, five, fifteen]| format!("{one:.2}/{five:.2}/{fifteen:.2}"))
}

// ---------------------------------------------------------------------------------------------
// Building and the writer bench.
// ---------------------------------------------------------------------------------------------

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn build_release_binaries(root: &Path) -> anyhow::Result<()> {
    eprintln!("xtask bench: cargo build --release -p xledger-sim -p sync-runner");
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--release", "-p", "xledger-sim", "-p", "sync-runner"])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release -p xledger-sim -p sync-runner failed ({status})");
    }
    Ok(())
}

/// The current-state tables bench: lake-tables' `table_bench` example in release (one child
/// process per measured step, so each step's CPU time and peak RSS are its own).
fn tables_bench(root: &Path, no_build: bool) -> anyhow::Result<serde_json::Value> {
    let example = root.join("target").join("release").join("examples").join("table_bench");
    if !no_build {
        eprintln!("xtask bench: cargo build --release -p lake-tables --example table_bench");
        let status = Command::new(cargo())
            .current_dir(root)
            .args(["build", "--release", "-p", "lake-tables", "--example", "table_bench"])
            .status()
            .context("running cargo build --release --example table_bench")?;
        if !status.success() {
            bail!("cargo build --release -p lake-tables --example table_bench failed ({status})");
        }
    }
    eprintln!("xtask bench: current-state tables (1 M timesheets, 1 000 changes)");
    let output = Command::new(&example).output().with_context(|| format!("running {}", example.display()))?;
    if !output.status.success() {
        bail!("{} failed: {}", example.display(), String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_slice(&output.stdout).context("reading table_bench's JSON")
}

/// The two release executables.
struct Binaries {
    sim: PathBuf,
    sync: PathBuf,
}

impl Binaries {
    fn in_target(root: &Path) -> anyhow::Result<Binaries> {
        let release = root.join("target").join("release");
        let binaries = Binaries { sim: release.join("xledger-sim"), sync: release.join("xledger-sync") };
        for binary in [&binaries.sim, &binaries.sync] {
            if !binary.is_file() {
                bail!("{} is missing: build it (drop --no-build)", binary.display());
            }
        }
        Ok(binaries)
    }
}

/// Runs lake-writer's criterion bench and reads its results back.
fn writer_throughput(root: &Path, bench_dir: &Path, stamp: &str) -> anyhow::Result<Vec<WriterResult>> {
    let log = bench_dir.join(format!("writer-{stamp}.log"));
    eprintln!("xtask bench: cargo bench -p lake-writer --bench convert (criterion output: {})", log.display());
    // Criterion compares each mtime-fresh result with the last; anything older than this is stale.
    let started = SystemTime::now();
    let output = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["bench", "-p", "lake-writer", "--bench", "convert"])
        .stdout(Stdio::from(output))
        .status()
        .context("running cargo bench -p lake-writer")?;
    if !status.success() {
        bail!("cargo bench -p lake-writer --bench convert failed ({status}); see {}", log.display());
    }
    let results = criterion_results(&root.join("target").join("criterion"), started)?;
    FULL_SYNC_ENTITIES.iter().map(|entity| writer_result(entity, &results)).collect()
}

/// One criterion benchmark's mean time per iteration and what an iteration processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CriterionResult {
    pub mean_ns: f64,
    pub throughput: Option<CriterionThroughput>,
}

/// What one iteration processes, as the bench declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriterionThroughput {
    Elements(u64),
    Bytes(u64),
}

impl CriterionResult {
    /// Elements or bytes per second.
    pub fn per_second(&self) -> Option<f64> {
        let amount = match self.throughput? {
            CriterionThroughput::Elements(n) | CriterionThroughput::Bytes(n) => n as f64,
        };
        (self.mean_ns > 0.0).then(|| amount / (self.mean_ns / 1e9))
    }
}

/// Every criterion result under `criterion_dir` written at or after `since`, by full id
/// (`write/timesheets`, `convert/timesheets/direct`).
pub fn criterion_results(criterion_dir: &Path, since: SystemTime) -> anyhow::Result<BTreeMap<String, CriterionResult>> {
    let mut results = BTreeMap::new();
    let mut pending = vec![criterion_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let in_new = path.parent().and_then(Path::file_name).is_some_and(|name| name == "new");
            if !in_new || path.file_name().is_none_or(|name| name != "benchmark.json") {
                continue;
            }
            let modified = std::fs::metadata(&path)
                .and_then(|meta| meta.modified())
                .with_context(|| format!("reading the time of {}", path.display()))?;
            if modified < since {
                continue;
            }
            let (id, result) = read_criterion_result(&path)?;
            results.insert(id, result);
        }
    }
    Ok(results)
}

fn read_criterion_result(benchmark_json: &Path) -> anyhow::Result<(String, CriterionResult)> {
    let read = |path: &Path| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let benchmark = read(benchmark_json)?;
    let estimates_path = benchmark_json.with_file_name("estimates.json");
    let estimates = read(&estimates_path)?;
    let id = benchmark["full_id"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no full_id", benchmark_json.display()))?
        .to_string();
    let mean_ns = estimates["mean"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| anyhow!("{} has no mean.point_estimate", estimates_path.display()))?;
    let throughput = &benchmark["throughput"];
    let throughput = if let Some(n) = throughput["Elements"].as_u64() {
        Some(CriterionThroughput::Elements(n))
    } else {
        throughput["Bytes"].as_u64().or_else(|| throughput["BytesDecimal"].as_u64()).map(CriterionThroughput::Bytes)
    };
    Ok((id, CriterionResult { mean_ns, throughput }))
}

/// The writer's numbers for one entity from the `write/`, `write_bytes/` and `convert/` benches.
pub fn writer_result(entity: &str, results: &BTreeMap<String, CriterionResult>) -> anyhow::Result<WriterResult> {
    let rate = |id: String| -> anyhow::Result<f64> {
        let known = || results.keys().cloned().collect::<Vec<_>>().join(", ");
        let result = results
            .get(&id)
            .ok_or_else(|| anyhow!("lake-writer's bench produced no fresh `{id}` result (found: {})", known()))?;
        result.per_second().ok_or_else(|| anyhow!("`{id}` declares no throughput"))
    };
    Ok(WriterResult {
        entity: entity.to_string(),
        rows_per_s: rate(format!("write/{entity}"))?,
        json_mb_per_s: rate(format!("write_bytes/{entity}"))? / 1e6,
        convert_rows_per_s: results.get(&format!("convert/{entity}/direct")).and_then(CriterionResult::per_second),
    })
}

// ---------------------------------------------------------------------------------------------
// The simulator process.
// ---------------------------------------------------------------------------------------------

/// The simulator's API key for one bench run: generated, local, and still never printed.
pub struct SimKey(String);

impl SimKey {
    fn generate() -> SimKey {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        SimKey(format!("bench-{:x}-{:x}", std::process::id(), nanos))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimKey(<redacted>)")
    }
}

#[derive(Debug, Clone)]
struct SimSettings {
    rows: u64,
    other_rows: u64,
    seed: u64,
    data: String,
}

/// The simulator's request and byte counters (`GET /admin/counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct SimCounters {
    pub http_requests: u64,
    pub response_bytes: u64,
}

/// What the simulator did while one pass ran.
struct SimDuring {
    counters: SimCounters,
    cpu_s: f64,
}

/// A running `xledger-sim`; killed when dropped, stopped with SIGINT by [`SimProcess::stop`].
struct SimProcess {
    child: Child,
    // Held so the simulator's stdout stays open while it runs.
    _stdout: BufReader<ChildStdout>,
    endpoint: String,
    admin_url: String,
    token: String,
    http: reqwest::blocking::Client,
    settings: SimSettings,
    startup: Duration,
}

/// Parses the simulator's ready line: `xledger-sim serving <endpoint> (admin API: <admin url>)`.
pub fn parse_ready_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("xledger-sim serving ")?;
    let (endpoint, admin) = rest.split_once(" (admin API: ")?;
    let admin = admin.strip_suffix(')')?;
    Some((endpoint.to_string(), admin.to_string()))
}

impl SimProcess {
    fn start(binary: &Path, settings: SimSettings, key: &SimKey, log: &Path) -> anyhow::Result<SimProcess> {
        let stderr = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--seed",
                &settings.seed.to_string(),
                "--rows",
                &settings.other_rows.to_string(),
            ])
            .args(
                FULL_SYNC_ENTITIES
                    .iter()
                    .flat_map(|entity| ["--entity-rows".to_string(), format!("{entity}={}", settings.rows)]),
            )
            .args(["--data", &settings.data])
            .env("XLEDGER_SIM_API_KEY", key.expose())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("xledger-sim's stdout was not captured");
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // Blocks while the simulator generates its data (about a minute for millions of rows).
        let ready = stdout.read_line(&mut line).ok().filter(|&n| n > 0).and_then(|_| parse_ready_line(&line));
        let Some((endpoint, admin_url)) = ready else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("xledger-sim did not report its endpoint (it printed {line:?}); see {}", log.display());
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .context("building the admin HTTP client")?;
        let sim = SimProcess {
            child,
            _stdout: stdout,
            endpoint,
            admin_url,
            token: format!("token {}", key.expose()),
            http,
            settings,
            startup: started.elapsed(),
        };
        eprintln!("xtask bench: xledger-sim ready at {} after {}", sim.endpoint, seconds(sim.startup.as_secs_f64()));
        Ok(sim)
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.admin_url))
            .header(reqwest::header::AUTHORIZATION, &self.token)
    }

    fn reset_counters(&self) -> anyhow::Result<()> {
        let response =
            self.admin(reqwest::Method::DELETE, "/counters").send().context("resetting the simulator's counters")?;
        response.error_for_status().context("resetting the simulator's counters")?;
        Ok(())
    }

    fn counters(&self) -> anyhow::Result<SimCounters> {
        let response =
            self.admin(reqwest::Method::GET, "/counters").send().context("reading the simulator's counters")?;
        response
            .error_for_status()
            .context("reading the simulator's counters")?
            .json()
            .context("parsing the simulator's counters")
    }

    fn random_changes(&self, count: u64, seed: u64) -> anyhow::Result<ChangeSummary> {
        let body = serde_json::json!({ "count": count, "seed": seed });
        let response = self
            .admin(reqwest::Method::POST, "/random-changes")
            .json(&body)
            .send()
            .context("asking the simulator for random changes")?;
        response
            .error_for_status()
            .context("asking the simulator for random changes")?
            .json()
            .context("parsing the simulator's change summary")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the simulator (SIGINT, then SIGKILL after 10 s) and says what it used in its life.
    fn stop(mut self) -> anyhow::Result<SimRun> {
        let usage = proc_usage(self.pid()).with_context(|| format!("reading /proc/{} of xledger-sim", self.pid()))?;
        let pid = libc::pid_t::try_from(self.pid()).context("xledger-sim's pid does not fit pid_t")?;
        // SAFETY: kill(2) with our own child's pid and a valid signal number has no memory effects.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().context("waiting for xledger-sim")?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SimRun {
            rows: self.settings.rows,
            other_rows: self.settings.other_rows,
            startup_s: self.startup.as_secs_f64(),
            peak_rss_bytes: usage.peak_rss_bytes,
            cpu_s: usage.cpu.as_secs_f64(),
        })
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring processes.
// ---------------------------------------------------------------------------------------------

/// What the kernel accounted to a finished child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildUsage {
    pub status: ExitStatus,
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    /// `ru_maxrss` in bytes.
    pub peak_rss_bytes: u64,
}

/// Spawns `command` and waits for it with `wait4`, which returns the child's own resource usage
/// (CPU times and peak RSS) as the kernel accounted them.
pub fn run_measured(command: &mut Command) -> anyhow::Result<ChildUsage> {
    let started = Instant::now();
    let child = command.spawn().with_context(|| format!("starting {:?}", command.get_program()))?;
    let pid = libc::pid_t::try_from(child.id()).context("the child's pid does not fit pid_t")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is a plain C struct of integers; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet waited for (std's `Child` only waits when asked);
        // `status` and `usage` are live locals the kernel writes into.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).with_context(|| format!("waiting for {:?}", command.get_program()));
        }
    }
    let wall = started.elapsed();
    // The child is reaped: dropping its handle neither waits nor kills.
    drop(child);
    Ok(ChildUsage {
        status: ExitStatus::from_raw(status),
        wall,
        user: timeval(usage.ru_utime),
        sys: timeval(usage.ru_stime),
        peak_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    })
}

fn timeval(value: libc::timeval) -> Duration {
    let secs = u64::try_from(value.tv_sec).unwrap_or(0);
    let micros = u32::try_from(value.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// A live process's CPU time and peak RSS from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcUsage {
    pub cpu: Duration,
    pub peak_rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status` (`VmHWM`).
pub fn proc_usage(pid: u32) -> anyhow::Result<ProcUsage> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = stat_cpu_ticks(&stat).ok_or_else(|| anyhow!("/proc/{pid}/stat has no utime/stime"))?;
    let ticks_per_second = u64::try_from(ticks_per_second).ok().filter(|&t| t > 0).unwrap_or(100);
    Ok(ProcUsage {
        cpu: Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64),
        peak_rss_bytes: proc_kib_field(&status, "VmHWM:").map_or(0, |kib| kib * 1024),
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted after its last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Name:   1234 kB` field of `/proc/meminfo` or `/proc/<pid>/status`, in KiB.
pub fn proc_kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut values = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

// ---------------------------------------------------------------------------------------------
// Sync passes.
// ---------------------------------------------------------------------------------------------

/// The parts of the tool's `pass_summary` the bench reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PassSummary {
    pub status: String,
    pub requests: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub entities: Vec<EntitySummary>,
}

/// One entity's line of the `pass_summary`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntitySummary {
    pub entity: String,
    pub mode: String,
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub files: u64,
    pub bytes_written: u64,
}

/// Finds the last `pass_summary` event in the tool's JSON log lines. The summary is a JSON
/// object, logged as a string field (or an object, should the logger ever nest it).
pub fn find_pass_summary(log: &str) -> anyhow::Result<PassSummary> {
    let event = log
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "pass_summary")
        .ok_or_else(|| anyhow!("no pass_summary event in the log"))?;
    let summary = match &event["summary"] {
        serde_json::Value::String(text) => serde_json::from_str(text).context("parsing the pass_summary's summary")?,
        object @ serde_json::Value::Object(_) => {
            serde_json::from_value(object.clone()).context("reading the pass_summary's summary")?
        }
        other => bail!("the pass_summary event's summary is {other}, not a JSON object"),
    };
    Ok(summary)
}

/// Where and how `xledger-sync` runs against one simulator.
struct SyncSetup<'a> {
    binary: &'a Path,
    sim: &'a SimProcess,
    key: &'a SimKey,
    /// Holds `lake/`, `state.json` and the logs of every pass.
    dir: &'a Path,
    /// The tool's `XLEDGER_COMPRESSION`.
    compression: &'a str,
    /// The tool's `XLEDGER_TABLES`.
    tables: &'a str,
}

impl SyncSetup<'_> {
    /// Runs `xledger-sync <args>` to the end and measures it; an unsuccessful pass is an error.
    fn measure(&self, label: &str, args: &[&str]) -> anyhow::Result<PassRun> {
        let stdout_path = self.dir.join(format!("{label}.stdout.txt"));
        let stderr_path = self.dir.join(format!("{label}.log.jsonl"));
        let stdout = File::create(&stdout_path).with_context(|| format!("creating {}", stdout_path.display()))?;
        let stderr = File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
        let mut command = Command::new(self.binary);
        // Only the settings below: a developer's own XLEDGER_* variables must not change the numbers.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("XLEDGER_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .env("XLEDGER_ENDPOINT", &self.sim.endpoint)
            .env("XLEDGER_API_KEY", self.key.expose())
            .env("XLEDGER_LAKE", self.dir.join("lake"))
            .env("XLEDGER_STATE", self.dir.join("state.json"))
            .env("XLEDGER_COMPRESSION", self.compression)
            .env("XLEDGER_TABLES", self.tables)
            .env("XLEDGER_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));

        self.sim.reset_counters()?;
        let sim_before = proc_usage(self.sim.pid())?;
        let usage = run_measured(&mut command)?;
        let sim_after = proc_usage(self.sim.pid())?;
        let counters = self.sim.counters()?;

        let log =
            std::fs::read_to_string(&stderr_path).with_context(|| format!("reading {}", stderr_path.display()))?;
        if !usage.status.success() {
            bail!(
                "{label}: xledger-sync {} exited with {}; its log: {}\n{}",
                args.join(" "),
                usage.status,
                stderr_path.display(),
                tail(&log, 10)
            );
        }
        let summary = find_pass_summary(&log).with_context(|| format!("{label}: reading {}", stderr_path.display()))?;
        if summary.status != "completed" {
            bail!("{label}: the pass ended {:?}, not completed; its log: {}", summary.status, stderr_path.display());
        }
        let sim = SimDuring { counters, cpu_s: sim_after.cpu.saturating_sub(sim_before.cpu).as_secs_f64() };
        let pass = PassRun::new(label, args, usage, &summary, sim);
        eprintln!(
            "xtask bench: {label}: {} rows in {}, CPU {:.0} %, peak RSS {}, {} requests",
            count(pass.rows),
            seconds(pass.wall_s),
            pass.cpu_share * 100.0,
            megabytes(pass.peak_rss_bytes),
            pass.requests
        );
        Ok(pass)
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The bench's scratch folder, removed when dropped unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(path: PathBuf, keep: bool) -> anyhow::Result<WorkDir> {
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        args: Args,
    }

    fn args(argv: &[&str]) -> Result<Args, clap::Error> {
        TestCli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|cli| cli.args)
    }

    #[test]
    fn sizes_default_to_100k_and_1m_and_quick_runs_100k_only() {
        assert_eq!(args(&[]).map(|a| a.sizes()).ok(), Some(vec![100_000, 1_000_000]));
        assert_eq!(args(&["--quick"]).map(|a| a.sizes()).ok(), Some(vec![100_000]));
    }

    #[test]
    fn rows_override_the_sizes_sorted_without_repeats() {
        assert_eq!(args(&["--rows", "5000,1000,5000"]).map(|a| a.sizes()).ok(), Some(vec![1_000, 5_000]));
    }

    #[test]
    fn quick_and_rows_together_are_refused() {
        let error = args(&["--quick", "--rows", "1000"]).err().map(|e| e.kind());
        assert_eq!(error, Some(clap::error::ErrorKind::ArgumentConflict));
    }

    #[test]
    fn zero_rows_are_refused() {
        assert!(args(&["--rows", "0"]).is_err());
    }

    #[test]
    fn the_pass_summary_is_read_from_the_json_log_as_a_string_field() {
        let summary = r#"{"status":"completed","requests":12,"bytes_received":3456,"bytes_sent":789,"duration_s":1.5,"entities":[{"entity":"timesheets","mode":"full","added":100,"updated":0,"deleted":0,"files":1,"requests":11,"bytes_written":999,"duration_s":1.4,"outcome":"synced"}]}"#;
        let line = serde_json::json!({ "level": "INFO", "event": "pass_summary", "summary": summary, "message": "pass finished: completed" });
        let log = format!("{{\"level\":\"INFO\",\"message\":\"page written\"}}\nnot json at all\n{line}\n");
        let parsed = find_pass_summary(&log).ok();
        let expected = PassSummary {
            status: "completed".into(),
            requests: 12,
            bytes_received: 3456,
            bytes_sent: 789,
            entities: vec![EntitySummary {
                entity: "timesheets".into(),
                mode: "full".into(),
                added: 100,
                updated: 0,
                deleted: 0,
                files: 1,
                bytes_written: 999,
            }],
        };
        assert_eq!(parsed, Some(expected));
    }

    #[test]
    fn a_log_without_a_pass_summary_is_an_error_that_says_so() {
        let error = find_pass_summary("{\"event\":\"lease_taken\"}\n").err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("no pass_summary event in the log"));
    }

    #[test]
    fn the_simulators_ready_line_gives_the_endpoint_and_admin_url() {
        let line = "xledger-sim serving http://127.0.0.1:40123/graphql (admin API: http://127.0.0.1:40123/admin)\n";
        assert_eq!(
            parse_ready_line(line),
            Some(("http://127.0.0.1:40123/graphql".to_string(), "http://127.0.0.1:40123/admin".to_string()))
        );
        assert_eq!(parse_ready_line("listening on 127.0.0.1:40123"), None);
    }

    fn write_criterion_result(root: &Path, dir: &str, full_id: &str, throughput: serde_json::Value, mean_ns: f64) {
        let new = root.join(dir).join("new");
        std::fs::create_dir_all(&new).unwrap();
        let benchmark =
            serde_json::json!({ "group_id": "g", "full_id": full_id, "directory_name": dir, "throughput": throughput });
        std::fs::write(new.join("benchmark.json"), benchmark.to_string()).unwrap();
        let estimates = serde_json::json!({ "mean": { "point_estimate": mean_ns, "standard_error": 1.0 } });
        std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
    }

    #[test]
    fn criterion_results_become_rows_and_megabytes_per_second() {
        let dir = tempfile::tempdir().unwrap();
        // 10 000 rows in 20 ms = 500 000 rows/s; 5 MB in 20 ms = 250 MB/s; convert in 10 ms.
        write_criterion_result(
            dir.path(),
            "write/timesheets",
            "write/timesheets",
            serde_json::json!({ "Elements": 10_000 }),
            20e6,
        );
        write_criterion_result(
            dir.path(),
            "write_bytes/timesheets",
            "write_bytes/timesheets",
            serde_json::json!({ "Bytes": 5_000_000 }),
            20e6,
        );
        write_criterion_result(
            dir.path(),
            "convert_timesheets/direct",
            "convert/timesheets/direct",
            serde_json::json!({ "Elements": 10_000 }),
            10e6,
        );
        let results = criterion_results(dir.path(), SystemTime::UNIX_EPOCH).unwrap();
        let writer = writer_result("timesheets", &results).unwrap();
        assert_eq!(writer.rows_per_s.round(), 500_000.0);
        assert_eq!(writer.json_mb_per_s.round(), 250.0);
        assert_eq!(writer.convert_rows_per_s.map(f64::round), Some(1_000_000.0));
    }

    #[test]
    fn criterion_results_older_than_the_run_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_criterion_result(
            dir.path(),
            "write/timesheets",
            "write/timesheets",
            serde_json::json!({ "Elements": 10_000 }),
            20e6,
        );
        let later = SystemTime::now() + Duration::from_secs(3600);
        let results = criterion_results(dir.path(), later).unwrap();
        assert!(results.is_empty());
        let error = writer_result("timesheets", &results).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("no fresh `write/timesheets` result"), "{error}");
    }

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
        // Fields 14 and 15 are 250 and 50.
        let stat =
            "4242 (xledger (sim) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 100 1000000 500 ...";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn kib_fields_of_proc_files_are_read_by_name() {
        let status = "Name:\txledger-sim\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(proc_kib_field(status, "VmHWM:"), Some(123_456));
        assert_eq!(proc_kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn a_finished_child_is_measured_by_the_kernel() {
        let usage = run_measured(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(usage.status.code(), Some(3));
        assert!(usage.peak_rss_bytes > 0, "ru_maxrss of a shell is never zero");
    }

    #[test]
    fn this_process_is_readable_in_proc() {
        let usage = proc_usage(std::process::id()).unwrap();
        assert!(usage.peak_rss_bytes > 0);
    }

    #[test]
    fn the_simulator_key_never_shows_in_debug_output() {
        let key = SimKey("bench-secret-value".to_string());
        assert_eq!(format!("{key:?}"), "SimKey(<redacted>)");
    }

    #[test]
    fn numbers_are_grouped_and_sizes_are_in_decimal_megabytes() {
        assert_eq!(count(1_234_567), "1 234 567");
        assert_eq!(count(999), "999");
        assert_eq!(count(0), "0");
        assert_eq!(megabytes(200_000_000), "200.0 MB");
    }

    fn pass(peak_rss_bytes: u64, cpu_share: f64, requests: u64) -> PassRun {
        PassRun {
            label: "p".into(),
            args: vec!["sync".into()],
            wall_s: 10.0,
            user_s: cpu_share * 10.0,
            sys_s: 0.0,
            cpu_share,
            peak_rss_bytes,
            rows: 0,
            rows_per_s: 0.0,
            added: 0,
            updated: 0,
            deleted: 0,
            files: 0,
            bytes_written: 0,
            requests,
            bytes_received: 0,
            bytes_sent: 0,
            sim_requests: requests,
            sim_response_bytes: 0,
            sim_cpu_s: 0.0,
        }
    }

    fn report(full_syncs: Vec<FullSync>, writer_rows_per_s: Option<f64>, idle_requests: u64) -> Report {
        Report {
            stamp: "20260101_000000".into(),
            machine: Machine { cpu_model: None, cores: 2, memory_bytes: None, kernel: None, load_average_before: None },
            load_average_after: None,
            settings: Settings {
                sizes: vec![100_000, 1_000_000],
                other_rows: 10,
                changes: 10,
                seed: 1,
                compression: "zstd".into(),
                data: "stress".into(),
                repeat: 1,
                tables: "none".into(),
            },
            tables: None,
            writer: writer_rows_per_s.map(|rows_per_s| {
                vec![WriterResult {
                    entity: "timesheets".into(),
                    rows_per_s,
                    json_mb_per_s: 1.0,
                    convert_rows_per_s: None,
                }]
            }),
            simulators: vec![],
            full_syncs,
            incremental: None,
            idle: Some(pass(1, 0.1, idle_requests)),
            targets: vec![],
        }
    }

    fn full(entity: &str, rows: u64, peak_mb: u64, cpu_share: f64) -> FullSync {
        let mut pass = pass(peak_mb * 1_000_000, cpu_share, 100);
        pass.rows = rows;
        pass.sim_cpu_s = 1.5;
        FullSync { entity: entity.into(), rows, run: 1, pass }
    }

    /// Runs 1..=n of one entity and size, with these peaks (MB) and CPU shares.
    fn runs(entity: &str, rows: u64, measured: &[(u64, f64)]) -> Vec<FullSync> {
        (1..)
            .zip(measured)
            .map(|(run, &(peak_mb, share))| FullSync { run, ..full(entity, rows, peak_mb, share) })
            .collect()
    }

    #[test]
    fn repeat_defaults_to_one_run_and_zero_runs_are_refused() {
        assert_eq!(args(&[]).map(|a| a.repeat).ok(), Some(1));
        assert_eq!(args(&["--repeat", "5"]).map(|a| a.repeat).ok(), Some(5));
        assert!(args(&["--repeat", "0"]).is_err());
    }

    #[test]
    fn repeated_runs_get_their_own_labels() {
        assert_eq!(full_sync_label("transactions", 1_000_000, 1, 1), "full-transactions-1000000");
        assert_eq!(full_sync_label("transactions", 1_000_000, 2, 3), "full-transactions-1000000-run2");
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value_and_of_an_even_count_the_mean_of_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn with_repeats_every_run_is_judged_and_memory_growth_compares_the_medians() {
        let mut syncs = runs("timesheets", 100_000, &[(90, 0.45), (100, 0.46), (130, 0.44)]);
        syncs.extend(runs("transactions", 100_000, &[(100, 0.47), (100, 0.48), (100, 0.49)]));
        // Median 110 MB against 100 MB: 1.10x, although the worst run against the best is 2.1x.
        syncs.extend(runs("timesheets", 1_000_000, &[(105, 0.45), (110, 0.47), (190, 0.46)]));
        // One run of three over 50 %: missed, whatever the median says.
        syncs.extend(runs("transactions", 1_000_000, &[(120, 0.48), (120, 0.53), (120, 0.49)]));
        let mut r = report(syncs, Some(400_000.0), 1);
        r.settings.repeat = 3;
        let checks = judge(&r);
        assert_eq!(
            checks.iter().map(|c| c.met).collect::<Vec<_>>(),
            vec![Some(true), Some(true), Some(true), Some(false), Some(true)],
            "{checks:#?}"
        );
        assert_eq!(checks[0].measured, "timesheets 190.0 MB, transactions 120.0 MB (worst runs)");
        assert_eq!(checks[1].measured, "timesheets 1.10x, transactions 1.20x");
        assert!(checks[1].target.ends_with("(medians)"), "{}", checks[1].target);
        assert_eq!(checks[3].measured, "at most 53 % (transactions 1 000 000, stress data)");

        r.targets = checks;
        let text = render(&r);
        for expected in ["3 runs per entity and size", "transactions #2", "medians of 3 runs", "48–53 %", "44–46 %"]
        {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
        // The median 1 M transaction run: 49 % of 10 s, 4.9 s of CPU for 1 000 000 rows.
        let median_row =
            text.lines().find(|line| line.contains("transactions") && line.contains("48–53 %")).unwrap_or_default();
        assert!(median_row.contains("49 %") && median_row.contains("4.90/1.50"), "{median_row}");
    }

    #[test]
    fn targets_are_met_when_every_measurement_is_within_them() {
        let syncs = vec![
            full("timesheets", 100_000, 100, 0.3),
            full("transactions", 100_000, 100, 0.3),
            full("timesheets", 1_000_000, 110, 0.4),
            full("transactions", 1_000_000, 120, 0.5),
        ];
        let checks = judge(&report(syncs, Some(400_000.0), 1));
        assert_eq!(checks.iter().map(|c| c.met).collect::<Vec<_>>(), vec![Some(true); 5], "{checks:#?}");
    }

    #[test]
    fn each_missed_target_is_reported_as_missed() {
        let syncs = vec![
            full("timesheets", 100_000, 100, 0.3),
            full("transactions", 100_000, 100, 0.3),
            // 250 MB > 200 MB and 2.5x growth; 70 % CPU.
            full("timesheets", 1_000_000, 250, 0.7),
            full("transactions", 1_000_000, 100, 0.3),
        ];
        let checks = judge(&report(syncs, Some(200_000.0), 9));
        assert_eq!(checks.iter().map(|c| c.met).collect::<Vec<_>>(), vec![Some(false); 5], "{checks:#?}");
        assert_eq!(checks[1].measured, "timesheets 2.50x, transactions 1.00x");
    }

    #[test]
    fn with_the_tables_on_their_memory_and_rewrite_targets_are_judged() {
        let syncs = vec![full("timesheets", 100_000, 100, 0.3), full("timesheets", 1_000_000, 130, 0.4)];
        let mut r = report(syncs, Some(400_000.0), 1);
        r.settings.tables = "current".into();
        r.tables = Some(serde_json::json!({"rows": 1_000_000, "changes": 1_000,
            "changes_to_newest_rows": {"rewritten_percent_of_table": 1.7}}));
        let checks = judge(&r);
        let table_checks: Vec<_> = checks[checks.len() - 2..].iter().map(|c| (c.measured.as_str(), c.met)).collect();
        assert_eq!(table_checks, [("at most 130.0 MB", Some(false)), ("1.7 %", Some(true))], "{checks:#?}");
    }

    #[test]
    fn growth_and_writer_are_not_judged_without_two_sizes_or_a_writer_run() {
        let mut r = report(vec![full("timesheets", 100_000, 100, 0.3)], None, 1);
        r.settings.sizes = vec![100_000];
        let checks = judge(&r);
        assert_eq!(
            checks.iter().map(|c| c.met).collect::<Vec<_>>(),
            vec![Some(true), None, None, Some(true), Some(true)]
        );
    }

    #[test]
    fn the_cpu_share_is_not_judged_with_another_codec_than_the_shipped_one() {
        let mut r = report(vec![full("timesheets", 100_000, 100, 0.7)], Some(400_000.0), 1);
        r.settings.compression = "none".into();
        let checks = judge(&r);
        assert_eq!(checks[3].met, None, "{checks:#?}");
        assert_eq!(checks[3].measured, "at most 70 % (timesheets 100 000, stress data; compression none, not judged)");
        assert!(render(&r).contains("stress data, Parquet compression none"));
        r.settings.data = "ledger".into();
        assert_eq!(
            judge(&r)[3].measured,
            "at most 70 % (timesheets 100 000, ledger data; compression none, not judged)"
        );
    }

    #[test]
    fn compression_defaults_to_the_tools_default() {
        assert_eq!(args(&[]).map(|a| a.compression).ok().as_deref(), Some("zstd"));
        assert_eq!(args(&["--compression", "none"]).map(|a| a.compression).ok().as_deref(), Some("none"));
        assert!(args(&["--compression", "lz4"]).is_err(), "a codec the tool does not know is refused");
    }

    #[test]
    fn data_defaults_to_the_simulators_stress_data() {
        assert_eq!(args(&[]).map(|a| a.data).ok().as_deref(), Some("stress"));
        assert_eq!(args(&["--data", "ledger"]).map(|a| a.data).ok().as_deref(), Some("ledger"));
        assert!(args(&["--data", "random"]).is_err(), "a profile the simulator does not know is refused");
    }

    #[test]
    fn the_rendered_tables_name_every_section_and_target() {
        let mut r = report(vec![full("timesheets", 100_000, 100, 0.3)], Some(400_000.0), 1);
        r.targets = judge(&r);
        let text = render(&r);
        // 3 s of tool CPU and 1.5 s of simulator CPU for 100 000 rows: 30 and 15 µs per row.
        for expected in [
            "1. Writer",
            "2. Full sync",
            "4. Idle pass: 1 request",
            "Targets",
            "timesheets",
            "400 000",
            "not judged",
            "30.00/15.00",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
    }
}
