//! The build tools a release needs besides Rust and Go, installed into the
//! kseal cache at pinned versions (the release workflow pins the same ones;
//! a test holds them equal):
//!
//! - the Rust standard library for each target (`rustup target add`);
//! - zig, from the Python package `ziglang`, as the C compiler and linker
//!   for every target (`ring` and `mimalloc` compile C), in a virtualenv;
//! - `cargo-zigbuild`, which drives cargo with zig as the linker;
//! - `cargo-cyclonedx`, which writes the CycloneDX SBOMs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail, ensure};

/// The `ziglang` Python package (zig itself, as a wheel from PyPI).
pub const ZIGLANG_VERSION: &str = "0.17.0";
/// `cargo-zigbuild` from crates.io.
pub const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";
/// `cargo-cyclonedx` from crates.io.
pub const CARGO_CYCLONEDX_VERSION: &str = "0.5.9";

/// Where the tools are.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// Directories to put first on `PATH`: the virtualenv's `bin` (its
    /// `python3` imports `ziglang`, which is how cargo-zigbuild finds zig)
    /// and the two cargo subcommands'.
    pub path_dirs: Vec<PathBuf>,
}

impl Toolchain {
    /// `PATH` with the tools first.
    pub fn path_env(&self) -> Result<std::ffi::OsString> {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let dirs = self
            .path_dirs
            .iter()
            .cloned()
            .chain(std::env::split_paths(&rest));
        std::env::join_paths(dirs).context("joining PATH")
    }
}

/// Installs what is missing (minutes the first time; instant after) and
/// returns where everything is. `targets` are Rust target triples.
pub fn ensure(targets: &[&str]) -> Result<Toolchain> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let tools = crate::bins::cache_root()?.join("tools");
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let lock_path = tools.join(".install.lock");
    let _lock = crate::go_build::lock(&lock_path)?;

    rust_targets(targets)?;
    let zig = ziglang(&tools.join(format!("ziglang-{ZIGLANG_VERSION}")))?;
    let zigbuild = cargo_tool(&tools, "cargo-zigbuild", CARGO_ZIGBUILD_VERSION)?;
    let cyclonedx = cargo_tool(&tools, "cargo-cyclonedx", CARGO_CYCLONEDX_VERSION)?;
    Ok(Toolchain {
        path_dirs: vec![zig, zigbuild, cyclonedx],
    })
}

fn rust_targets(targets: &[&str]) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed`: is rustup installed?")?;
    ensure!(
        out.status.success(),
        "`rustup target list --installed` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::say(&format!(
        "kseal-testenv: rustup target add {}",
        missing.join(" ")
    ));
    run(Command::new("rustup")
        .args(["target", "add"])
        .args(&missing))
}

/// A virtualenv with the `ziglang` package; returns its `bin`.
fn ziglang(venv: &Path) -> Result<PathBuf> {
    let bin = venv.join("bin");
    let python = bin.join("python3");
    let works = |python: &Path| {
        Command::new(python)
            .args(["-m", "ziglang", "version"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == ZIGLANG_VERSION
            })
    };
    if works(&python) {
        return Ok(bin);
    }
    crate::say(&format!(
        "kseal-testenv: installing zig (PyPI ziglang=={ZIGLANG_VERSION}) into {}",
        venv.display()
    ));
    let _ = fs::remove_dir_all(venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    run(Command::new(bin.join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("ziglang=={ZIGLANG_VERSION}"),
    ]))?;
    ensure!(
        works(&python),
        "zig from ziglang=={ZIGLANG_VERSION} does not run from {}",
        venv.display()
    );
    Ok(bin)
}

/// `cargo install --locked NAME@VERSION` into `<tools>/NAME-VERSION`;
/// returns its `bin`.
fn cargo_tool(tools: &Path, name: &str, version: &str) -> Result<PathBuf> {
    let root = tools.join(format!("{name}-{version}"));
    let bin = root.join("bin");
    if bin.join(name).is_file() {
        return Ok(bin);
    }
    crate::say(&format!(
        "kseal-testenv: cargo install {name}@{version} (a few minutes, once)"
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        // Unoptimized: both only drive cargo and read its metadata, and a
        // debug build takes half the CPU of a release build on a cold
        // machine.
        .args(["install", "--quiet", "--locked", "--debug", "--root"])
        .arg(&root)
        .arg(format!("{name}@{version}"))
        // Its own target directory: not the caller's (cargo test holds that
        // one's lock).
        .env_remove("CARGO_TARGET_DIR"))?;
    ensure!(
        bin.join(name).is_file(),
        "cargo install {name} left no {}",
        bin.join(name).display()
    );
    Ok(bin)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            crate::process::tail(&String::from_utf8_lossy(&out.stdout), 20),
            crate::process::tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
    }
    Ok(())
}
