//! The health that real GitOps clients give a SealedSecret, computed with
//! their own code by a small Go program (`tests/gomod/health`):
//!
//! - kstatus (`sigs.k8s.io/cli-utils`), Flux's default health check;
//! - Flux's CEL health check expressions, read from a Flux Kustomization's
//!   `healthCheckExprs` and evaluated by `github.com/fluxcd/pkg/runtime/cel`;
//! - Argo CD's health Lua from `argocd-cm`, run in gopher-lua the way Argo CD
//!   runs it.
//!
//! [`ensure_checker`] builds the program once into the kseal cache
//! (`<cache>/bin/health-<hash>`, the hash over its sources) and [`check`]
//! runs it on objects.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use crate::go_build::{self, CachedBuild};

/// The program's sources, in `tests/gomod/health`; the cached binary's name
/// carries a hash over them.
const SOURCES: [&str; 3] = ["go.mod", "go.sum", "main.go"];

/// One client's answer: its status (kstatus and Flux: `Current`,
/// `InProgress`, `Failed`, `Terminating`, `Unknown`...; Argo CD: `Healthy`,
/// `Progressing`, `Degraded`...) and the message it shows.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    pub status: String,
    pub message: String,
}

/// What each client makes of one object.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Health {
    pub kstatus: Verdict,
    pub flux: Verdict,
    pub argocd: Verdict,
}

/// The Go module of the checker.
pub fn source_dir() -> PathBuf {
    crate::bins::gomod_dir().join("health")
}

/// Returns the checker binary, building it first when the cache has none for
/// the current sources (the first build downloads Go modules and takes a few
/// minutes; later calls return at once). Concurrent callers build once (see
/// [`CachedBuild::ensure`]).
pub fn ensure_checker() -> Result<PathBuf> {
    let src = source_dir();
    let cached = CachedBuild {
        parent: crate::bins::cache_root()?.join("bin"),
        name: format!("health-{}", go_build::sources_hash(&src, &SOURCES)?),
        // Not bins' lock: that one is held for the long control-plane build.
        lock_file: ".health-build.lock".to_owned(),
        tmp_prefix: ".health-tmp-".to_owned(),
    };
    cached.ensure(Path::is_file, |tmp| build(&src, tmp))
}

/// Builds the program into `out`, logging to `out/build.log`; returns the
/// binary's path.
fn build(src: &Path, out: &Path) -> Result<PathBuf> {
    crate::say(&format!(
        "kseal-testenv: building the health checker from {} (the first build downloads \
         Go modules and takes a few minutes)",
        src.display()
    ));
    let bin = out.join("kseal-health");
    go_build::run(
        "the health checker",
        &out.join("build.log"),
        Command::new("go")
            .current_dir(src)
            .args([
                "build",
                "-mod=readonly",
                "-trimpath",
                "-ldflags=-s -w",
                "-o",
            ])
            .arg(&bin)
            .arg("."),
    )?;
    ensure!(
        bin.is_file(),
        "go build succeeded but left no {}",
        bin.display()
    );
    Ok(bin)
}

/// Runs the checker on `objects` (SealedSecrets as the API server returns
/// them) with the Argo CD health script of `argocd_cm` and the Flux
/// `healthCheckExprs` of `flux_kustomization`; one [`Health`] per object, in
/// order.
pub fn check(
    checker: &Path,
    argocd_cm: &Path,
    flux_kustomization: &Path,
    objects: &[serde_json::Value],
) -> Result<Vec<Health>> {
    let input = serde_json::to_vec(objects)?;
    let mut child = Command::new(checker)
        .arg("--argocd-cm")
        .arg(argocd_cm)
        .arg("--flux-kustomization")
        .arg(flux_kustomization)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", checker.display()))?;
    // Written from a thread, so a checker that fails early (and stops
    // reading) cannot block us while its output pipes fill.
    let mut stdin = child.stdin.take().context("checker stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child
        .wait_with_output()
        .with_context(|| format!("waiting for {}", checker.display()))?;
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to the checker panicked"))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            checker.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    written.context("writing objects to the checker")?;
    let health: Vec<Health> = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading the checker's output: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    ensure!(
        health.len() == objects.len(),
        "the checker answered for {} objects, not {}",
        health.len(),
        objects.len()
    );
    Ok(health)
}
