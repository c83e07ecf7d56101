//! `xledger-sync`: thin glue between the command line and the `sync_runner` library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sync_engine::{FullLoad, PassReport, PassRequest, StopSignal};
use sync_runner::app::{self, ConfigError};
use sync_runner::cli::{Cli, Command, LogFormat, TablesCommand};
use sync_runner::logging::{LogDestination, LogSettings};
use sync_runner::progress::Progress;

fn main() -> ExitCode {
    sync_runner::memory::tune();
    let cli = Cli::parse();
    // The CLI's commands page sequentially, so one thread does: lease renewal and signals are
    // handled between pages. `serve` must answer the Functions host while a pass runs, and `demo`
    // runs its simulator in this process: both keep worker threads.
    let mut builder = if cli.command.needs_worker_threads() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            let code = if err.downcast_ref::<ConfigError>().is_some() { 2 } else { 1 };
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stderr().is_terminal();
    let serving = matches!(cli.command, Command::Serve);
    let json = match cli.global.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !interactive || serving,
    };
    let bars = interactive && !json && !cli.global.no_progress && cli.command.shows_progress();
    let progress = if bars { Progress::bars() } else { Progress::hidden() };
    sync_runner::logging::init(LogSettings {
        json,
        // Under the Functions host, stdout is what reaches Application Insights.
        destination: if serving { LogDestination::Stdout } else { LogDestination::Stderr },
        quiet_for_progress_bars: bars,
    });

    let global = &cli.global;
    match cli.command {
        Command::Sync(args) => {
            let entities = app::select_entities(&args.entities.entities)?;
            let key = app::api_key(global)?;
            let deadline = app::deadline(global.max_duration);
            let engine = app::engine(global, &global.endpoint, key, deadline, progress).await?;
            let full_load = if args.full { FullLoad::Forced } else { FullLoad::WhenNeeded };
            let report =
                app::run_pass_with_signals(&engine, PassRequest { entities, full_load }, StopSignal::new(deadline))
                    .await;
            Ok(finish(&report))
        }
        Command::Status => {
            let selected = app::select_entities(&[])?;
            print!("{}", app::status(global, &selected).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ResetState(args) => {
            let selected = app::select_entities(&args.entities)?;
            let done = app::reset_state(global, &selected).await?;
            println!("state reset for: {} (the next pass does a full load)", done.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Wipe(args) => {
            let selected = app::select_entities(&args.entities.entities)?;
            if !args.yes {
                return Err(ConfigError::Invalid(
                    "wipe deletes lake files and sync state: add --yes to confirm".into(),
                )
                .into());
            }
            let deleted = app::wipe(global, &selected).await?;
            println!("deleted {deleted} files and the sync state of {} entities", selected.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Tables(TablesCommand::Status) => {
            let selected = app::select_entities(&[])?;
            print!("{}", app::tables_status(global, &selected).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tables(TablesCommand::Rebuild(args)) => {
            let selected = app::select_entities(&args.entities)?;
            tables_rebuild(global, &selected).await
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo(global, &args, progress).await,
        Command::Serve => sync_runner::service::serve_command(global).await.map(|()| ExitCode::SUCCESS),
    }
}

/// `tables rebuild`: from the raw files alone, each entity under its lease; exit 1 if any failed.
async fn tables_rebuild(
    global: &sync_runner::cli::GlobalArgs,
    selected: &[&'static xledger_model::EntitySpec],
) -> anyhow::Result<ExitCode> {
    let lake = app::lake(global).await?;
    let Some(tables) = app::tables(global, &lake).await? else {
        return Err(ConfigError::Invalid("the current-state tables are off (XLEDGER_TABLES=none)".into()).into());
    };
    let state = app::state(global).await?;
    let holder = sync_state::LeaseHolder::current();
    let settings = app::settings(global);
    let results = sync_engine::rebuild_tables(&lake, state.as_ref(), &tables, &holder, &settings, selected).await;
    let mut failed = 0;
    for (entity, result) in results {
        match result {
            Ok(Some(version)) => println!("{entity:<16} rebuilt: table version {version}"),
            Ok(None) => println!("{entity:<16} no complete full load yet: no table"),
            Err(error) => {
                failed += 1;
                eprintln!("error: {entity}: {error}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn finish(report: &PassReport) -> ExitCode {
    tracing::info!(event = "pass_summary", summary = %report.to_json(), "pass finished: {}", report.status().as_str());
    print!("{}", report.render_table());
    ExitCode::from(report.status().exit_code())
}

#[cfg(feature = "demo")]
async fn demo(
    global: &sync_runner::cli::GlobalArgs,
    args: &sync_runner::cli::DemoArgs,
    progress: Progress,
) -> anyhow::Result<ExitCode> {
    let summary = sync_runner::demo::run(global, args, progress).await?;
    print!("{summary}");
    Ok(ExitCode::SUCCESS)
}
