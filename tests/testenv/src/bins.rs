//! Building and caching the upstream binaries ([`BINARIES`]: etcd, the
//! Kubernetes control plane, kubelet, kube-proxy, kubectl and helm) from
//! their Go modules.
//!
//! The binaries land in `<cache>/bin/<versions key>/`, where `<cache>` is
//! `$KSEAL_CACHE_DIR`, else `$XDG_CACHE_HOME/kseal`, else `~/.cache/kseal`.
//! A build writes into a temporary sibling directory and renames it into place
//! at the end, so an interrupted build never leaves a half-filled cache. A lock
//! file (`<cache>/bin/.build.lock`) serializes builds between processes
//! (tests, `cargo xtask`); see [`crate::go_build`].
//! `KSEAL_TEST_BIN_DIR` points at an existing directory of binaries instead
//! (nothing is built then).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure as check};

use crate::go_build::{self, CachedBuild};
use crate::versions::Versions;

/// The commands built from `k8s.io/kubernetes` (`cmd/<name>`), in one `go
/// build`: the control plane, a worker node (kubelet, kube-proxy, the
/// scheduler) and `kubectl`, the reference client tests compare against.
pub const KUBERNETES_COMMANDS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];

/// Names of the binaries a complete cache directory holds.
pub const BINARIES: [&str; 8] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "helm",
];

/// Environment variable naming a ready directory of binaries (skips building).
pub const BIN_DIR_ENV: &str = "KSEAL_TEST_BIN_DIR";

/// A directory holding all the binaries.
#[derive(Debug, Clone)]
pub struct BinDir {
    dir: PathBuf,
}

impl BinDir {
    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `etcd`.
    pub fn etcd(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    /// `kube-apiserver`.
    pub fn kube_apiserver(&self) -> PathBuf {
        self.dir.join("kube-apiserver")
    }
    /// `kube-controller-manager`.
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.dir.join("kube-controller-manager")
    }
    /// `kube-scheduler`.
    pub fn kube_scheduler(&self) -> PathBuf {
        self.dir.join("kube-scheduler")
    }
    /// `kubelet`.
    pub fn kubelet(&self) -> PathBuf {
        self.dir.join("kubelet")
    }
    /// `kube-proxy`.
    pub fn kube_proxy(&self) -> PathBuf {
        self.dir.join("kube-proxy")
    }
    /// `kubectl`, built from the same pinned release as the control plane.
    pub fn kubectl(&self) -> PathBuf {
        self.dir.join("kubectl")
    }
    /// `helm`.
    pub fn helm(&self) -> PathBuf {
        self.dir.join("helm")
    }

    fn missing(&self) -> Vec<&'static str> {
        missing_in(&self.dir)
    }
}

/// The [`BINARIES`] that `dir` lacks.
fn missing_in(dir: &Path) -> Vec<&'static str> {
    BINARIES
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect()
}

/// The cache root: `$KSEAL_CACHE_DIR`, `$XDG_CACHE_HOME/kseal` or `~/.cache/kseal`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KSEAL_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("kseal"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("neither KSEAL_CACHE_DIR, XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("kseal"))
}

/// Where the binaries for the pinned versions live (or will live once built).
pub fn bin_dir() -> Result<BinDir> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(BinDir {
            dir: PathBuf::from(dir),
        });
    }
    Ok(BinDir {
        dir: cached(&Versions::pinned()?)?.path(),
    })
}

/// The cache entry of the binaries: `<cache>/bin/<versions key>/`.
fn cached(versions: &Versions) -> Result<CachedBuild> {
    Ok(CachedBuild {
        parent: cache_root()?.join("bin"),
        name: versions.cache_key(),
        lock_file: ".build.lock".to_owned(),
        tmp_prefix: ".tmp-".to_owned(),
    })
}

/// The wrapper Go modules, `tests/gomod/` in the repository.
pub fn gomod_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is tests/testenv.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("gomod")
}

/// Returns the binaries for the pinned versions, building any that are
/// missing first (the first build takes a long while; later calls are
/// instant). Concurrent callers build once (see [`CachedBuild::ensure`]).
pub fn ensure() -> Result<BinDir> {
    let bins = bin_dir()?;
    if bins.missing().is_empty() {
        return Ok(bins);
    }
    if std::env::var_os(BIN_DIR_ENV).is_some_and(|d| !d.is_empty()) {
        bail!(
            "{BIN_DIR_ENV}={} lacks {:?}",
            bins.dir.display(),
            bins.missing()
        );
    }
    let versions = Versions::pinned()?;
    let dir = cached(&versions)?.ensure(
        |dir| missing_in(dir).is_empty(),
        |tmp| {
            build_all(&versions, tmp)?;
            Ok(tmp.to_owned())
        },
    )?;
    Ok(BinDir { dir })
}

/// Builds every binary into `out`, with `build-info.txt` (the versions and
/// how long each build took).
fn build_all(versions: &Versions, out: &Path) -> Result<()> {
    crate::say(&format!(
        "kseal-testenv: building upstream binaries for {} into {} with {}",
        versions.cache_key(),
        out.display(),
        go_version()?
    ));
    let gomod = gomod_dir();
    check_wrapper(
        &gomod.join("kubernetes"),
        "k8s.io/kubernetes",
        &versions.kubernetes,
    )?;
    check_wrapper(
        &gomod.join("etcd"),
        "go.etcd.io/etcd/server/v3",
        &versions.etcd,
    )?;

    let mut report = format!("versions: {}\n", versions.cache_key());
    report += &build_etcd(&gomod, out)?;
    report += &build_kubernetes(versions, &gomod, out)?;
    report += &build_helm(versions, out)?;
    fs::write(out.join("build-info.txt"), report)?;
    let _ = fs::remove_file(out.join("build.log"));
    Ok(())
}

/// `go version`'s answer; errors when Go is missing or broken.
fn go_version() -> Result<String> {
    let go = Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .context("running `go version`: is Go installed and on PATH?")?;
    check!(
        go.status.success(),
        "`go version` failed: {}",
        String::from_utf8_lossy(&go.stderr)
    );
    Ok(String::from_utf8_lossy(&go.stdout).trim().to_owned())
}

/// etcd into `out`: the server module's root package is the etcd main
/// package. Returns the timing line.
fn build_etcd(gomod: &Path, out: &Path) -> Result<String> {
    let t = Instant::now();
    run_go(
        "etcd",
        out,
        Command::new("go")
            .current_dir(gomod.join("etcd"))
            .args([
                "build",
                "-mod=readonly",
                "-trimpath",
                "-ldflags=-s -w",
                "-o",
            ])
            .arg(out.join("etcd"))
            .arg("go.etcd.io/etcd/server/v3"),
    )?;
    Ok(timing("etcd", t.elapsed()))
}

/// Every Kubernetes command into `out`, in one go build (they share most
/// packages), stamped with the pinned version. Returns the timing line.
fn build_kubernetes(versions: &Versions, gomod: &Path, out: &Path) -> Result<String> {
    let (major, minor) = versions.kubernetes_major_minor()?;
    let v = "k8s.io/component-base/version";
    let ldflags = format!(
        "-s -w -X {v}.gitVersion={} -X {v}.gitMajor={major} -X {v}.gitMinor={minor} \
         -X {v}.gitTreeState=clean",
        versions.kubernetes
    );
    let t = Instant::now();
    let mut out_dir = out.as_os_str().to_owned();
    out_dir.push("/");
    run_go(
        &KUBERNETES_COMMANDS.join(", "),
        out,
        Command::new("go")
            .current_dir(gomod.join("kubernetes"))
            .args(["build", "-mod=readonly", "-trimpath"])
            .arg(format!("-ldflags={ldflags}"))
            .arg("-o")
            .arg(out_dir)
            .args(
                KUBERNETES_COMMANDS
                    .iter()
                    .map(|cmd| format!("k8s.io/kubernetes/cmd/{cmd}")),
            ),
    )?;
    Ok(timing(&KUBERNETES_COMMANDS.join("+"), t.elapsed()))
}

/// helm into `out`. It has no replace directives: plain `go install
/// …@version`. Its default kube version (used by `helm template` and lint)
/// is set to the pinned Kubernetes release. Returns the timing line.
fn build_helm(versions: &Versions, out: &Path) -> Result<String> {
    let (major, minor) = versions.kubernetes_major_minor()?;
    let h = "helm.sh/helm/v3";
    let ldflags = format!(
        "-s -w -X {h}/internal/version.version={} -X {h}/internal/version.gitTreeState=clean \
         -X {h}/pkg/lint/rules.k8sVersionMajor={major} -X {h}/pkg/lint/rules.k8sVersionMinor={minor} \
         -X {h}/pkg/chartutil.k8sVersionMajor={major} -X {h}/pkg/chartutil.k8sVersionMinor={minor}",
        versions.helm
    );
    let t = Instant::now();
    run_go(
        "helm",
        out,
        Command::new("go")
            .current_dir(out)
            .env("GOBIN", out)
            .args(["install", "-trimpath"])
            .arg(format!("-ldflags={ldflags}"))
            .arg(format!("{h}/cmd/helm@{}", versions.helm)),
    )?;
    Ok(timing("helm", t.elapsed()))
}

fn timing(what: &str, d: Duration) -> String {
    let line = format!("{what}: {:.1}s\n", d.as_secs_f64());
    crate::say(&format!("kseal-testenv: built {}", line.trim_end()));
    line
}

/// Checks that a wrapper module requires the pinned version of `module`.
fn check_wrapper(dir: &Path, module: &str, version: &str) -> Result<()> {
    let go_mod = dir.join("go.mod");
    let text =
        fs::read_to_string(&go_mod).with_context(|| format!("reading {}", go_mod.display()))?;
    let pinned = text.lines().any(|l| {
        let mut words = l.split_whitespace();
        let first = words.next();
        let (m, v) = if first == Some("require") {
            (words.next(), words.next())
        } else {
            (first, words.next())
        };
        m == Some(module) && v == Some(version)
    });
    check!(
        pinned,
        "{} does not require {module} {version} (tests/versions.env); \
         run `cargo xtask gen-gomod` to regenerate it",
        go_mod.display()
    );
    Ok(())
}

/// Runs one `go` command of the build, logging to `out/build.log`.
fn run_go(what: &str, out: &Path, cmd: &mut Command) -> Result<()> {
    crate::say(&format!(
        "kseal-testenv: building {what} (the first build takes several minutes; \
         Go's build cache makes rebuilds fast)"
    ));
    go_build::run(what, &out.join("build.log"), cmd)
}
