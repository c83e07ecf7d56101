//! The README's configuration table names every setting the command line reads from the environment.

use clap::CommandFactory;
use sync_runner::cli::Cli;

#[test]
fn every_xledger_variable_of_the_cli_is_in_the_readme_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let table: Vec<&str> = readme.lines().filter(|line| line.starts_with("| `")).collect();
    let mut command = Cli::command();
    command.build();
    let mut variables: Vec<String> = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|sub| sub.get_arguments()))
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .filter(|name| name.starts_with("XLEDGER_"))
        .collect();
    variables.sort();
    variables.dedup();
    assert!(variables.len() >= 20, "the CLI reads its settings from XLEDGER_* variables: {variables:?}");
    let missing: Vec<&String> =
        variables.iter().filter(|name| !table.iter().any(|row| row.contains(&format!("`{name}`")))).collect();
    assert!(missing.is_empty(), "README.md's configuration table lacks {missing:?}");
}
