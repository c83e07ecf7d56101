//! `cargo xtask package` zipping: the entries sit where the Functions host looks for them and the
//! executable keeps its x bit. Uses a stand-in binary, so no release build runs here.

use std::io::Read;
use std::path::Path;

use xtask::package::{
    EXECUTABLE_MODE, EXECUTABLE_NAME, FILE_MODE, app_files, check_linux_x86_64_executable, human_size, package_app,
};

/// The start of an x86-64 Linux ELF header, enough for the check.
fn fake_elf() -> Vec<u8> {
    let mut bytes = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    bytes.resize(18, 0);
    bytes.extend_from_slice(&0x3eu16.to_le_bytes());
    bytes.extend_from_slice(b"stand-in binary body");
    bytes
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A small app: host.json, two functions and a stray file that must stay out of the zip.
fn sample_app(root: &Path) -> std::path::PathBuf {
    let functions = root.join("functions");
    write(&functions.join("host.json"), r#"{"version": "2.0"}"#);
    write(&functions.join("sync_timer/function.json"), r#"{"bindings": []}"#);
    write(&functions.join("sync_status/function.json"), r#"{"bindings": []}"#);
    write(&functions.join("local.settings.json"), r#"{"Values": {}}"#);
    write(&functions.join("notes/readme.txt"), "not a function");
    functions
}

fn zip_entries(path: &Path) -> Vec<(String, Option<u32>, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().to_string(), entry.unix_mode().map(|mode| mode & 0o777), bytes)
        })
        .collect()
}

#[test]
fn zip_holds_host_json_function_folders_and_the_executable_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let functions = sample_app(dir.path());
    let binary = dir.path().join("xledger-sync-built");
    std::fs::write(&binary, fake_elf()).unwrap();
    let output = dir.path().join("out/app.zip");

    let package = package_app(&functions, &binary, &output).unwrap();

    let names: Vec<String> = zip_entries(&output).into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(
        names,
        [
            "host.json",
            "sync_status/",
            "sync_status/function.json",
            "sync_timer/",
            "sync_timer/function.json",
            EXECUTABLE_NAME
        ]
    );
    assert_eq!(package.entries, names);
    assert_eq!(package.bytes, std::fs::metadata(&output).unwrap().len());
    assert!(!dir.path().join("out/app.zip.partial").exists(), "no temporary file left behind");
}

#[test]
fn executable_is_mode_0755_and_byte_identical_and_json_files_are_0644() {
    let dir = tempfile::tempdir().unwrap();
    let functions = sample_app(dir.path());
    let binary = dir.path().join("bin");
    std::fs::write(&binary, fake_elf()).unwrap();
    let output = dir.path().join("app.zip");

    package_app(&functions, &binary, &output).unwrap();

    let entries = zip_entries(&output);
    let executable = entries.iter().find(|(name, _, _)| name == EXECUTABLE_NAME).unwrap();
    assert_eq!(executable.1, Some(EXECUTABLE_MODE));
    assert_eq!(executable.2, fake_elf());
    let host_json = entries.iter().find(|(name, _, _)| name == "host.json").unwrap();
    assert_eq!((host_json.1, host_json.2.as_slice()), (Some(FILE_MODE), br#"{"version": "2.0"}"#.as_slice()));
}

#[test]
fn same_inputs_give_the_same_zip_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let functions = sample_app(dir.path());
    let binary = dir.path().join("bin");
    std::fs::write(&binary, fake_elf()).unwrap();

    package_app(&functions, &binary, &dir.path().join("a.zip")).unwrap();
    package_app(&functions, &binary, &dir.path().join("b.zip")).unwrap();

    assert_eq!(std::fs::read(dir.path().join("a.zip")).unwrap(), std::fs::read(dir.path().join("b.zip")).unwrap());
}

#[test]
fn app_without_host_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("functions/sync_timer/function.json"), "{}");

    let err = app_files(&dir.path().join("functions")).unwrap_err();

    assert!(err.to_string().contains("host.json is missing"), "{err}");
}

#[test]
fn app_without_functions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("functions/host.json"), "{}");

    let err = app_files(&dir.path().join("functions")).unwrap_err();

    assert!(err.to_string().contains("no <name>/function.json"), "{err}");
}

#[test]
fn the_workspace_app_lists_every_function_folder() {
    let functions = xtask::workspace_root().join("functions");

    let (_, names) = app_files(&functions).unwrap();

    assert_eq!(names, ["sync_reset_state", "sync_resync", "sync_status", "sync_timer", "sync_wipe"]);
}

#[test]
fn only_x86_64_linux_executables_pass_the_check() {
    let mut arm64 = fake_elf();
    arm64[18..20].copy_from_slice(&0xb7u16.to_le_bytes());

    assert!(check_linux_x86_64_executable(&fake_elf()).is_ok());
    assert!(check_linux_x86_64_executable(&arm64).unwrap_err().to_string().contains("machine 0xb7"));
    assert!(
        check_linux_x86_64_executable(b"MZ\x90\x00 a Windows executable")
            .unwrap_err()
            .to_string()
            .contains("not an ELF")
    );
}

#[test]
fn sizes_print_for_people() {
    assert_eq!(
        (human_size(512), human_size(4096), human_size(13 * 1024 * 1024 + 300 * 1024)),
        ("512 B".into(), "4 KiB".into(), "13.3 MiB".into())
    );
}

#[test]
fn the_functions_package_is_built_without_the_simulator() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = std::process::Command::new(cargo)
        .args(["tree", "-p", "sync-runner", "-e", "normal", "--no-default-features", "--prefix", "none", "--offline"])
        .current_dir(xtask::workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.lines().any(|line| line.starts_with("sync-engine ")), "the tree lists the engine: {tree}");
    assert!(
        !tree.lines().any(|line| line.starts_with("xledger-sim ")),
        "xledger-sim is in the production build:\n{tree}"
    );
}
