//! `cargo xtask` entry point; see the library for the commands.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = xtask::Cli::parse();
    match xtask::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
