//! End-to-end through the real binary: SIGKILL at random points (raw files, state, current-state
//! tables), a lease held by another process, and `--max-duration` resuming over several invocations.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::TestEnv;
use test_support::readers::{ExpectedTable, assert_exactly_once, assert_readers_agree};
use tokio::process::Command;
use xledger_model::entities;
use xledger_sim::SimRng;

fn command(env: &TestEnv, extra_env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xledger-sync"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("XLEDGER_ENDPOINT", env.sim.endpoint())
        .env("XLEDGER_API_KEY", env.sim.api_key())
        .env("XLEDGER_LAKE", env.lake_path())
        .env("XLEDGER_STATE", env.state_path())
        .env("XLEDGER_PAGE_SIZE", "100")
        .env("XLEDGER_PART_ROWS", "300")
        .env("XLEDGER_DBID_CHUNK_SIZE", "40")
        .env("XLEDGER_LEASE_TTL", "1s")
        .env("XLEDGER_LEASE_WAIT", "10s")
        // Small table files: changes rewrite several files and compactions come often, so kills
        // land in table commits and compactions too.
        .env("XLEDGER_TABLE_FILE_ROWS", "64")
        .env("XLEDGER_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

async fn run_to_end(env: &TestEnv, extra_env: &[(&str, &str)]) -> (i32, String) {
    let out = command(env, extra_env, &["sync"]).output().await.expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// How a run that was to be killed ended.
enum Killed {
    /// SIGKILLed while still running.
    MidRun,
    /// It finished first, successfully, after this long.
    Finished(Duration),
}

/// Runs the binary and SIGKILLs it after `after` if it is still running. A run that finishes
/// first must have succeeded: any other exit is a failure of the test, with its output.
async fn run_and_kill(env: &TestEnv, extra_env: &[(&str, &str)], after: Duration) -> Killed {
    let started = tokio::time::Instant::now();
    let mut child = command(env, extra_env, &["sync"]).spawn().expect("binary starts");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let drain = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (String::new(), String::new());
        let _ = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
        format!("{out}{err}")
    });
    tokio::select! {
        status = child.wait() => {
            let status = status.expect("wait");
            let output = drain.await.unwrap_or_default();
            assert!(status.success(), "a run that was not killed failed ({status}): {output}");
            Killed::Finished(started.elapsed())
        }
        _ = tokio::time::sleep(after) => {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
            drain.abort();
            Killed::MidRun
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_repeats_nothing() {
    let env = TestEnv::new(2_500, 21).await;
    env.sim.set_faults(common::latency(Duration::from_millis(10)));
    let mut rng = SimRng::new(0x5eed_1234_abcd_ef01);
    // A killed run's lease lapses after its TTL (300 ms here); the next run waits that out first.
    let lease_ttl = Duration::from_millis(300);
    let lease = [("XLEDGER_LEASE_TTL", "300ms")];
    // Kill points are drawn inside the time a run takes on this machine, learnt from the runs
    // that finish: fast or slow machines alike get their kills mid-run.
    let mut typical_full = Duration::from_millis(1_500);
    let mut typical_incremental = Duration::from_millis(400);
    let mut previous_killed = false;
    let mut kills = 0;
    let mut attempts = 0;
    let kill_point = |rng: &mut SimRng, typical: Duration, previous_killed: bool| {
        let wait = if previous_killed { lease_ttl } else { Duration::ZERO };
        wait + typical.mul_f64(0.05 + 0.9 * (rng.below(1_000) as f64 / 1_000.0))
    };

    // Full loads interrupted again and again until one gets through.
    let mut full_done = false;
    while !full_done && attempts < 60 {
        attempts += 1;
        let at = kill_point(&mut rng, typical_full, previous_killed);
        match run_and_kill(&env, &lease, at).await {
            Killed::MidRun => {
                kills += 1;
                previous_killed = true;
                if kills >= 10 {
                    break;
                }
            }
            Killed::Finished(took) => {
                full_done = true;
                typical_full = took;
                previous_killed = false;
            }
        }
    }
    // Incremental passes interrupted, with changes arriving in between.
    let mut round = 0u64;
    while kills < 22 && attempts < 150 {
        attempts += 1;
        round += 1;
        if round % 2 == 1 {
            env.sim.random_changes(400, 1_000 + round);
        }
        let at = kill_point(&mut rng, typical_incremental, previous_killed);
        match run_and_kill(&env, &lease, at).await {
            Killed::MidRun => {
                kills += 1;
                previous_killed = true;
            }
            Killed::Finished(took) => {
                let wait = if previous_killed { lease_ttl } else { Duration::ZERO };
                typical_incremental = took.saturating_sub(wait).max(Duration::from_millis(20));
                previous_killed = false;
            }
        }
    }
    assert!(kills >= 20, "only {kills} of {attempts} runs were killed mid-way; the kill points must fall inside runs");

    // A clean pass finishes the job.
    let (code, output) = run_to_end(&env, &lease).await;
    assert_eq!(code, 0, "{output}");
    env.assert_lake_matches_truth().await;

    let lake = env.lake().await;
    for entity in entities() {
        let files = lake.list(entity.name).await.expect("list");
        assert!(files.iter().all(|f| !f.is_temp), "{}: stray temporary files after a clean run", entity.name);
        // Every change range is written once: (from, to) pairs are unique, and each range starts
        // where an earlier one ended (or at the full load's head cursor).
        let mut ranges = BTreeSet::new();
        for f in files.iter().filter(|f| f.name.starts_with("sync_changes-") && !f.is_temp) {
            let meta = lake.file_metadata(entity.name, &f.name).await.expect("readable footer");
            let range = (meta.get("xledger.cursor_from").cloned(), meta.get("xledger.cursor_to").cloned());
            assert!(ranges.insert(range.clone()), "{}: change range {range:?} written twice", entity.name);
        }
        let starts: BTreeSet<_> = ranges.iter().map(|(from, _)| from.clone()).collect();
        assert_eq!(starts.len(), ranges.len(), "{}: two change files start at the same cursor", entity.name);
        for f in files.iter().filter(|f| f.name.ends_with(".parquet")) {
            lake.file_metadata(entity.name, &f.name).await.expect("every visible file is a complete Parquet file");
        }
    }

    // The current-state tables, read by DuckDB's delta extension and by Python deltalake, hold the
    // truth, and no table version applied a raw file twice.
    let truths: Vec<_> = entities().iter().map(|entity| env.truth(entity)).collect();
    let paths: Vec<_> = entities().iter().map(|entity| env.lake_path().join("current").join(entity.name)).collect();
    let expected: Vec<ExpectedTable<'_>> = entities()
        .iter()
        .zip(&paths)
        .zip(&truths)
        .map(|((entity, path), rows)| ExpectedTable { entity, path, rows })
        .collect();
    assert_readers_agree(&expected).await;
    for (entity, path) in entities().iter().zip(&paths) {
        assert_exactly_once(path, &lake_tables::app_id(entity.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_reports_the_lease_holder_and_exits_non_zero() {
    let env = TestEnv::new(20, 4).await;
    let global = env.global(&[]);
    let store = sync_runner::app::state(&global).await.expect("state store");
    let _held = store
        .acquire_lease(
            "projects",
            &sync_state::LeaseHolder {
                host: "build-agent-7".to_owned(),
                pid: 4242,
                start: None,
                instance: "feedbeef".to_owned(),
            },
            Duration::from_secs(600),
        )
        .await
        .expect("the other process takes the lease");

    let (code, output) = run_to_end(&env, &[("XLEDGER_LEASE_WAIT", "1s")]).await;
    assert_eq!(code, 5, "{output}");
    assert!(output.contains("build-agent-7:4242:feedbeef"), "the holder is named: {output}");
    // The other seven entities were synced all the same.
    let (code, output) = run_to_end(&env, &[("XLEDGER_LEASE_WAIT", "1s")]).await;
    assert_eq!(code, 5, "{output}");
    assert!(output.contains("idle"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_shorter_than_a_full_load_resumes_over_invocations() {
    // ~160 pages at 25 ms each, two entities at a time: about 2 s of work, cut every 400 ms.
    let env = TestEnv::new(2_000, 31).await;
    env.sim.set_faults(common::latency(Duration::from_millis(25)));
    let mut partial = 0;
    let mut finished = false;
    for _ in 0..40 {
        let (code, output) = run_to_end(&env, &[("XLEDGER_MAX_DURATION", "400ms")]).await;
        match code {
            3 => partial += 1,
            0 => {
                finished = true;
                break;
            }
            other => panic!("unexpected exit {other}: {output}"),
        }
    }
    assert!(finished, "the full load never finished");
    assert!(partial >= 2, "the load should have needed several invocations, took {partial} partial ones");
    env.assert_lake_matches_truth().await;
    let lake = env.lake().await;
    for entity in entities() {
        let manifests = lake.list(entity.name).await.unwrap().into_iter().filter(|f| f.is_manifest).count();
        assert_eq!(manifests, 1, "{}: one resumed load, not several restarted ones", entity.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_at_a_page_boundary_and_the_next_run_finishes() {
    // ~120 pages at 40 ms each, two at a time: the load is still running when the signal comes.
    let env = TestEnv::new(1_500, 51).await;
    env.sim.set_faults(common::latency(Duration::from_millis(40)));
    let child = command(&env, &[], &["sync"]).spawn().expect("binary starts");
    let pid = child.id().expect("running");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
    let out = child.wait_with_output().await.expect("exits");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "stopped early, state consistent: {text}");
    assert!(text.contains("stopped by a signal"), "{text}");

    env.sim.clear_faults();
    let (code, output) = run_to_end(&env, &[]).await;
    assert_eq!(code, 0, "{output}");
    env.assert_lake_matches_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_credits_defer_the_pass_with_their_own_exit_code() {
    let env = TestEnv::new(100, 52).await;
    // Credits come back in an hour; the tool waits at most its configured maximum (2 min).
    env.sim.set_faults(
        xledger_sim::FaultPlan::default()
            .every_nth(1, xledger_sim::Fault::InsufficientCredits { reset_after: Duration::from_secs(3600) }),
    );
    let (code, output) = run_to_end(&env, &[]).await;
    assert_eq!(code, 4, "{output}");
    assert!(output.contains("deferred"), "{output}");

    env.sim.clear_faults();
    let (code, output) = run_to_end(&env, &[]).await;
    assert_eq!(code, 0, "{output}");
    env.assert_lake_matches_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_processes_one_syncs_and_the_other_exits_naming_it() {
    // ~240 pages at 25 ms each, two at a time: the first process holds its leases for about 3 s.
    let env = TestEnv::new(3_000, 53).await;
    env.sim.set_faults(common::latency(Duration::from_millis(25)));
    let first = command(&env, &[("XLEDGER_LEASE_TTL", "30s")], &["sync"]).spawn().expect("first process starts");
    let first_pid = first.id().expect("running");
    // Give the first process time to take its leases, then start the second one.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second =
        command(&env, &[("XLEDGER_LEASE_WAIT", "500ms")], &["sync"]).output().await.expect("second process runs");
    let second_text = format!("{}{}", String::from_utf8_lossy(&second.stdout), String::from_utf8_lossy(&second.stderr));
    assert_eq!(second.status.code(), Some(5), "{second_text}");
    assert!(
        second_text.contains(&format!(":{first_pid}:")),
        "the holder (host:pid:id) of the first process is named: {second_text}"
    );

    let first = first.wait_with_output().await.expect("first process exits");
    let first_text = format!("{}{}", String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&first.stderr));
    assert_eq!(first.status.code(), Some(0), "{first_text}");
    env.sim.clear_faults();
    env.assert_lake_matches_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_ends_with_a_query_on_the_current_table_that_gives_the_truths_totals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = dir.path().join("lake");
    let out = Command::new(env!("CARGO_BIN_EXE_xledger-sync"))
        .args([
            "--lake",
            lake.to_str().expect("UTF-8"),
            "--log-format",
            "json",
            "demo",
            "--rows",
            "300",
            "--changes",
            "200",
        ])
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .output()
        .await
        .expect("the demo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the demo failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let query = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("duckdb -c \"INSTALL delta; LOAD delta; "))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("the demo prints a DuckDB query on the table: {text}"));
    let expected = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("expected (the simulator's truth): "))
        .unwrap_or_else(|| panic!("the demo prints the truth's totals: {text}"));

    // The printed query, run by DuckDB with its delta extension (loaded from the installed package:
    // `INSTALL delta` would download it).
    let (python, path) = test_support::readers::python();
    let script = r#"
import os, sys, duckdb
extension = os.path.join(sys.argv[2], "duckdb_ext", "extensions", "v" + duckdb.__version__, "linux_amd64", "delta.duckdb_extension")
con = duckdb.connect()
con.execute("LOAD '" + extension + "'")
count, hours = con.execute(sys.argv[1]).fetchone()
print(f"{count} timesheets, {hours} hours")
"#;
    let read = Command::new(&python)
        .args(["-c", script, query, &path])
        .env("PYTHONPATH", &path)
        .output()
        .await
        .expect("python runs");
    assert!(read.status.success(), "DuckDB failed: {}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), expected);
}
