//! `cargo xtask test`: the project's one test command (CI's `.ci/run` calls exactly this).
//!
//! 1. checks formatting (`cargo fmt --check`) and lints (`cargo clippy --workspace --all-targets
//!    -- -D warnings`): either failing fails the command before any test runs;
//! 2. installs Azurite (npm) and DuckDB (PyPI) into `tools/` if missing;
//! 3. starts Azurite on a free loopback port;
//! 4. runs `cargo test --workspace` with `XLEDGER_TEST_AZURITE` (the blob endpoint) and
//!    `XLEDGER_TEST_PYTHONPATH` (where `import duckdb` works) set;
//! 5. stops Azurite, whatever the outcome.
//!
//! Tests that need Azurite or DuckDB fail with a message pointing here when those variables are
//! missing: they never pass by skipping.

use std::process::{Command, ExitCode};

use anyhow::Context;

use crate::tools;

/// Options of `test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra arguments for `cargo test` (e.g. `-- -p lake-writer`).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    for (what, check) in [
        ("formatting (run `cargo fmt --all`)", vec!["fmt", "--all", "--", "--check"]),
        ("lints", vec!["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    ] {
        eprintln!("xtask: cargo {}", check.join(" "));
        let status = Command::new(&cargo)
            .current_dir(crate::workspace_root())
            .args(&check)
            .status()
            .with_context(|| format!("running cargo {}", check[0]))?;
        if !status.success() {
            eprintln!("xtask: {what} check failed");
            return Ok(ExitCode::FAILURE);
        }
    }
    let azurite_js = tools::ensure_azurite()?;
    let python_path = tools::ensure_duckdb()?;
    let azurite = tools::Azurite::start(&azurite_js)?;
    eprintln!("xtask: Azurite listening at {}", azurite.endpoint);

    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate::workspace_root())
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .env("XLEDGER_TEST_AZURITE", &azurite.endpoint)
        .env("XLEDGER_TEST_PYTHONPATH", &python_path)
        .env("XLEDGER_TEST_PYTHON", tools::python());
    let status = cmd.status().context("running cargo test")?;
    drop(azurite);
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
