//! Developer chores for the xledger-sync workspace, in plain Rust (`cargo xtask <command>`).
//!
//! - `fetch-schema`: replace `schema/xledger.graphql` with the live schema (introspection).
//! - `add-entity`: write `schema/queries/<NAME>.graphql` for a root field of the schema.
//! - `test`: the project's test command: installs and starts what the tests need (Azurite, DuckDB)
//!   into `tools/`, runs the whole workspace's tests, stops what it started.
//! - `bench`: benchmarks (throughput, memory, API cost).
//! - `package`: the Azure Functions deployment zip.
//!
//! xtask must never be a dependency of the product crates, and never print secrets.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod add_entity;
pub mod bench;
pub mod fetch_schema;
pub mod package;
pub mod test;
pub mod tools;

/// `cargo xtask` — developer chores.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the live Xledger schema by introspection and write schema/xledger.graphql.
    FetchSchema(fetch_schema::Args),
    /// Write schema/queries/<NAME>.graphql for a root field of the schema (a new entity).
    AddEntity(add_entity::Args),
    /// Run the whole test suite, installing and starting Azurite and DuckDB first.
    Test(test::Args),
    /// Build the Linux release binary and the Azure Functions deployment zip.
    Package(package::Args),
    /// Benchmarks: writer throughput, full and incremental syncs from the simulator, idle cost.
    Bench(bench::Args),
}

/// Runs one command; the exit code is the command's.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::FetchSchema(args) => fetch_schema::run(args).map(|()| ExitCode::SUCCESS),
        Command::AddEntity(args) => add_entity::run(args).map(|()| ExitCode::SUCCESS),
        Command::Test(args) => test::run(args),
        Command::Package(args) => package::run(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
    }
}

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}
