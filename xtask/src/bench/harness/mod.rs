//! The benchmarks' harness: everything a scenario is made of that is not
//! the scenario itself. It imports no scenario (only `kseal_testenv`, the
//! kseal crates and the workspace's libraries).
//!
//! - here: progress notes, machine load, rounding, temporary directories,
//!   building the release binaries, running tools, the settings every
//!   scenario shares, printing the figures;
//! - [`process`]: memory and CPU of a process by pid, sampled while work
//!   runs;
//! - [`cluster`]: the control plane side (CRD and namespaces, the applying
//!   client, applying and listing many objects, the kseal controller,
//!   namespaces, the API server's request counts);
//! - [`watch`]: following objects with watches until they converge;
//! - [`measure`]: a measured window (requests, CPU, memory, load) and a
//!   measured restart;
//! - [`objects`]: the generated objects and their checks;
//! - [`figures`]: typed figures shared by more than one scenario.

pub mod cluster;
pub mod figures;
pub mod measure;
pub mod objects;
pub mod process;
pub mod watch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// What every scenario of `bench-e2e` takes from its flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// N: the objects to sync.
    pub count: usize,
    /// Values (keys) per object.
    pub values: usize,
    /// Requests the applying client keeps in flight.
    pub concurrency: usize,
    /// The applying client's rate limit (0: none).
    pub client_qps: f64,
    /// Its burst above `client_qps`.
    pub client_burst: u32,
    /// Longest wait of a phase.
    pub timeout: Duration,
}

impl Settings {
    /// The applying client's rate limit, for notes.
    pub fn client_limit(&self) -> String {
        if self.client_qps > 0.0 {
            format!("{} (burst {})", self.client_qps, self.client_burst)
        } else {
            "unlimited".to_owned()
        }
    }
}

/// A progress note on stderr.
pub fn note(text: &str) {
    eprintln!("bench-e2e: {text}");
}

/// The machine's load averages (1, 5, 15 minutes), as `/proc/loadavg`
/// has them.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 1-minute load average (NaN when unknown).
pub fn load1() -> f64 {
    load()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `value` rounded to `digits` decimals.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// KiB as MiB, one decimal.
pub fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/<prefix>-<pid>`, created.
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cargo build --release -p kseal-controller -p kseal-cli`; returns the
/// directory the binaries are in (`<target-dir>/release`).
pub fn build_release() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("locating the workspace")?;
    note("building release binaries (cargo build --release -p kseal-controller -p kseal-cli)");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kseal-controller",
            "-p",
            "kseal-cli",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let metadata = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let target = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(Path::new(target).join("release"))
}

/// The binaries a run uses: private copies of the release build, so a
/// target directory shared with other checkouts may get their builds of
/// the same binaries while this runs (the controller is started again for
/// the restart).
pub struct Binaries {
    /// `kseal-controller`: the copy, or the one `--controller-bin` named.
    pub controller: PathBuf,
    /// `kseal`.
    pub kseal: PathBuf,
    _dir: TempDir,
}

impl Binaries {
    /// Builds the release binaries and copies them; `controller` instead of
    /// the built controller when given.
    pub fn build(controller: Option<&Path>) -> Result<Self> {
        let release = build_release()?;
        let dir = TempDir::new("kseal-bench-bins")?;
        for binary in ["kseal-controller", "kseal"] {
            std::fs::copy(release.join(binary), dir.path().join(binary))
                .with_context(|| format!("copying {binary}"))?;
        }
        let controller = match controller {
            Some(bin) => bin.to_path_buf(),
            None => dir.path().join("kseal-controller"),
        };
        if !controller.exists() {
            bail!("{} does not exist", controller.display());
        }
        Ok(Self {
            controller,
            kseal: dir.path().join("kseal"),
            _dir: dir,
        })
    }
}

/// A runtime on this one thread: processes started from it (with setpriv
/// --pdeathsig) live as long as this thread, and the client's own work
/// stays on one core.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Prints the figures as one line of JSON on stdout (the last line a run
/// prints there).
pub fn print_figures(figures: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(figures)?);
    Ok(())
}

/// A value as one line of JSON, for notes.
pub fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Runs a command; fails with its stderr if it fails.
pub fn run_tool(command: &mut Command) -> Result<std::process::Output> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Copies the files of directory `from` into `to` (created).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}
