//! Test tools installed into the git-ignored `tools/` folder from the package registries, and
//! Azurite started as a child process that is stopped when its guard drops.
//!
//! Versions are pinned so that a fresh machine gets what this project was tested with.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// npm package spec of the storage emulator.
pub const AZURITE_PACKAGE: &str = "azurite@3.37.0";
/// PyPI requirements of the independent readers the tests use: DuckDB (read-back of written
/// Parquet), DuckDB's delta extension (it must match the DuckDB version; `LOAD delta` would download
/// it, so tests load the file this package ships, see [`DUCKDB_DELTA_EXTENSION`]) and delta-rs's
/// Python `deltalake` (the current-state Delta tables), with `pyarrow` for both to hand rows over.
pub const PYTHON_REQUIREMENTS: &[&str] =
    &["duckdb==1.4.4", "duckdb-ext-delta==1.4.4.*", "deltalake==1.6.*", "pyarrow==23.0.*"];
/// The delta extension inside the `tools/python` folder.
pub const DUCKDB_DELTA_EXTENSION: &str = "duckdb_ext/extensions/v1.4.4/linux_amd64/delta.duckdb_extension";

/// Where the tools live: `<workspace>/tools`.
pub fn tools_dir() -> PathBuf {
    crate::workspace_root().join("tools")
}

/// Installs Azurite with npm unless it is already there; returns its blob service entry point.
pub fn ensure_azurite() -> anyhow::Result<PathBuf> {
    let prefix = tools_dir().join("node");
    let main_js = prefix.join("node_modules/azurite/dist/src/blob/main.js");
    if main_js.is_file() {
        return Ok(main_js);
    }
    eprintln!("xtask: installing {AZURITE_PACKAGE} into {}", prefix.display());
    std::fs::create_dir_all(&prefix)?;
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(&prefix)
        .arg(AZURITE_PACKAGE)
        .status()
        .context("running npm (Node.js and npm must be installed)")?;
    if !status.success() || !main_js.is_file() {
        bail!("npm install {AZURITE_PACKAGE} failed ({status})");
    }
    Ok(main_js)
}

/// Installs the Python readers ([`PYTHON_REQUIREMENTS`]) into `tools/python` unless present;
/// returns that folder (for `PYTHONPATH`).
pub fn ensure_duckdb() -> anyhow::Result<PathBuf> {
    let target = tools_dir().join("python");
    let requirements = PYTHON_REQUIREMENTS.join(" ");
    let marker_name: String =
        requirements.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let marker = target.join(format!("{marker_name}.installed"));
    if marker.is_file() {
        return Ok(target);
    }
    eprintln!("xtask: installing {requirements} into {}", target.display());
    std::fs::create_dir_all(&target)?;
    let status = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            "--upgrade",
            "--target",
        ])
        .arg(&target)
        .args(PYTHON_REQUIREMENTS)
        .status()
        .context("running python3 -m pip")?;
    if !status.success() {
        bail!("pip install {requirements} failed ({status})");
    }
    if !target.join(DUCKDB_DELTA_EXTENSION).is_file() {
        bail!("pip installed {requirements} but {DUCKDB_DELTA_EXTENSION} is not in {}", target.display());
    }
    std::fs::write(&marker, b"")?;
    Ok(target)
}

/// The Python interpreter to use.
pub fn python() -> String {
    std::env::var("XLEDGER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A running Azurite blob service; killed (and its data folder removed) on drop.
pub struct Azurite {
    child: Child,
    data_dir: PathBuf,
    /// `http://127.0.0.1:<port>/devstoreaccount1` (no trailing slash: Azurite rejects `//container`).
    pub endpoint: String,
}

impl Azurite {
    /// Starts the blob service on a free loopback port and waits until it accepts connections.
    pub fn start(main_js: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let data_dir = std::env::temp_dir().join(format!("xledger-azurite-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        let child = Command::new("node")
            .arg(main_js)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(&data_dir)
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting Azurite with node")?;
        let mut azurite = Azurite { child, data_dir, endpoint: format!("http://127.0.0.1:{port}/devstoreaccount1") };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(azurite);
            }
            if let Some(status) = azurite.child.try_wait()? {
                bail!("Azurite exited before listening ({status})");
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("Azurite did not listen on {addr} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
