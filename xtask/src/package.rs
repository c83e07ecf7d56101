//! `cargo xtask package`: the Azure Functions deployment zip.
//!
//! Builds `xledger-sync` in release mode for Linux x86_64 (the machine's own target: run it on
//! Linux x86_64, as CI does), then zips the Function App as the host expects it at the zip root:
//!
//! ```text
//! host.json                 custom handler description, functionTimeout, extension bundle
//! sync_timer/function.json  one folder per function (folder name = function name)
//! sync_status/function.json ...
//! xledger-sync              the executable, unix mode 0755
//! ```
//!
//! into `target/package/xledger-sync-functionapp.zip`, and prints its path and size. The zip is
//! reproducible: entries are sorted and stamped 1980-01-01, so the same inputs give the same bytes.
//! [`package_app`] does the zipping without building, so tests can run it on a stand-in binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// The executable's name inside the zip (`host.json`'s `defaultExecutablePath`).
pub const EXECUTABLE_NAME: &str = "xledger-sync";
/// The zip's file name under `target/package/`.
pub const ZIP_NAME: &str = "xledger-sync-functionapp.zip";
/// Unix mode of the executable: the Functions host runs it directly.
pub const EXECUTABLE_MODE: u32 = 0o755;
/// Unix mode of `host.json` and the `function.json` files.
pub const FILE_MODE: u32 = 0o644;

/// Options of `package`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zip this already built Linux x86_64 executable instead of building one.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Where to write the zip [default: target/package/xledger-sync-functionapp.zip].
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let binary = match args.binary {
        Some(binary) => binary,
        None => build_release_binary(&root)?,
    };
    let bytes = std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    check_linux_x86_64_executable(&bytes).with_context(|| format!("checking {}", binary.display()))?;
    let output = args.output.unwrap_or_else(|| root.join("target").join("package").join(ZIP_NAME));
    let package = package_app(&root.join("functions"), &binary, &output)?;
    println!("{} ({})", package.path.display(), human_size(package.bytes));
    Ok(())
}

/// `cargo build --release -p sync-runner --bin xledger-sync --no-default-features`; returns the
/// executable's path.
fn build_release_binary(root: &Path) -> anyhow::Result<PathBuf> {
    if std::env::consts::OS != "linux" || std::env::consts::ARCH != "x86_64" {
        bail!(
            "package builds the Linux x86_64 executable the Functions host runs; this machine is {} {} \
             (run it on Linux x86_64, as the pipeline does, or pass --binary)",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // Without default features: the `demo` command and its simulator stay out of production.
    eprintln!("xtask: cargo build --release -p sync-runner --bin {EXECUTABLE_NAME} --no-default-features");
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "-p", "sync-runner", "--bin", EXECUTABLE_NAME, "--no-default-features"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p sync-runner failed ({status})");
    }
    Ok(root.join("target").join("release").join(EXECUTABLE_NAME))
}

/// Refuses anything but a 64-bit little-endian x86-64 ELF executable: the Flex Consumption
/// workers are Linux x86_64 and start the handler directly.
pub fn check_linux_x86_64_executable(bytes: &[u8]) -> anyhow::Result<()> {
    const ELF_MAGIC: &[u8] = b"\x7fELF";
    const CLASS_64: u8 = 2;
    const LITTLE_ENDIAN: u8 = 1;
    const MACHINE_X86_64: u16 = 0x3e;
    if bytes.len() < 20 || &bytes[..4] != ELF_MAGIC {
        bail!("not an ELF executable: the Functions host on Linux cannot run it");
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if bytes[4] != CLASS_64 || bytes[5] != LITTLE_ENDIAN || machine != MACHINE_X86_64 {
        bail!(
            "an ELF file for another machine (class {}, data {}, machine {machine:#x}); expected x86-64",
            bytes[4],
            bytes[5]
        );
    }
    Ok(())
}

/// The written zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its entry names, in order (folders end with `/`).
    pub entries: Vec<String>,
}

/// The Function App files under `functions_dir`: `host.json` and every `<name>/function.json`,
/// sorted by name. Other files (notes, `local.settings.json`) are left out on purpose.
pub fn app_files(functions_dir: &Path) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let host_json = functions_dir.join("host.json");
    if !host_json.is_file() {
        bail!("{} is missing: the Functions host needs it at the zip root", host_json.display());
    }
    let mut functions = Vec::new();
    for entry in std::fs::read_dir(functions_dir).with_context(|| format!("listing {}", functions_dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", functions_dir.display()))?;
        if entry.path().join("function.json").is_file() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| anyhow::anyhow!("function folder name {name:?} is not UTF-8"))?;
            functions.push(name);
        }
    }
    if functions.is_empty() {
        bail!("no <name>/function.json under {}: the app would have no functions", functions_dir.display());
    }
    functions.sort();
    Ok((host_json, functions))
}

/// Zips `host.json`, the function folders of `functions_dir` and `binary` (as
/// [`EXECUTABLE_NAME`], mode 0755) into `output`. Writes a temporary file first, so `output` is
/// either the complete previous zip or the complete new one.
pub fn package_app(functions_dir: &Path, binary: &Path, output: &Path) -> anyhow::Result<Package> {
    let (host_json, functions) = app_files(functions_dir)?;
    let folder = output.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let temporary = output.with_extension("zip.partial");

    let file = std::fs::File::create(&temporary).with_context(|| format!("creating {}", temporary.display()))?;
    let mut zip = ZipWriter::new(std::io::BufWriter::new(file));
    let mut entries = Vec::new();
    add_file(&mut zip, &mut entries, "host.json", &host_json, FILE_MODE)?;
    for function in &functions {
        let folder = format!("{function}/");
        zip.add_directory(folder.as_str(), entry_options(EXECUTABLE_MODE))
            .with_context(|| format!("adding {folder}"))?;
        entries.push(folder);
        add_file(
            &mut zip,
            &mut entries,
            &format!("{function}/function.json"),
            &functions_dir.join(function).join("function.json"),
            FILE_MODE,
        )?;
    }
    add_file(&mut zip, &mut entries, EXECUTABLE_NAME, binary, EXECUTABLE_MODE)?;
    let writer = zip.finish().with_context(|| format!("finishing {}", temporary.display()))?;
    let file =
        writer.into_inner().map_err(|err| anyhow::anyhow!("flushing {}: {}", temporary.display(), err.error()))?;
    file.sync_all().with_context(|| format!("syncing {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, output)
        .with_context(|| format!("renaming {} to {}", temporary.display(), output.display()))?;
    let bytes = std::fs::metadata(output).with_context(|| format!("reading the size of {}", output.display()))?.len();
    Ok(Package { path: output.to_path_buf(), bytes, entries })
}

/// Deflated, stamped 1980-01-01 (reproducible), with the given unix mode.
fn entry_options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(mode)
}

fn add_file<W: Write + std::io::Seek>(
    zip: &mut ZipWriter<W>,
    entries: &mut Vec<String>,
    name: &str,
    source: &Path,
    mode: u32,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    zip.start_file(name, entry_options(mode)).with_context(|| format!("adding {name}"))?;
    zip.write_all(&bytes).with_context(|| format!("writing {name}"))?;
    entries.push(name.to_string());
    Ok(())
}

/// `12.3 MiB`, `845 KiB`, `512 B`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let size = bytes as f64;
    if size >= KIB * KIB {
        format!("{:.1} MiB", size / (KIB * KIB))
    } else if size >= KIB {
        format!("{:.0} KiB", size / KIB)
    } else {
        format!("{bytes} B")
    }
}
