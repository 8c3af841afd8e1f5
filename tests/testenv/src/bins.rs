//! Building and caching the upstream binaries (etcd, kube-apiserver,
//! kube-controller-manager, helm) from their Go modules.
//!
//! The binaries land in `<cache>/bin/<versions key>/`, where `<cache>` is
//! `$KSEAL_CACHE_DIR`, else `$XDG_CACHE_HOME/kseal`, else `~/.cache/kseal`.
//! A build writes into a temporary sibling directory and renames it into place
//! at the end, so an interrupted build never leaves a half-filled cache. A lock
//! file serializes builds between processes (tests, `cargo xtask`).
//! `KSEAL_TEST_BIN_DIR` points at an existing directory of binaries instead
//! (nothing is built then).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure as check};

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
        BINARIES
            .into_iter()
            .filter(|b| !self.dir.join(b).is_file())
            .collect()
    }
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
    let versions = Versions::pinned()?;
    Ok(BinDir {
        dir: cache_root()?.join("bin").join(versions.cache_key()),
    })
}

/// The wrapper Go modules, `tests/gomod/` in the repository.
pub fn gomod_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is tests/testenv.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("gomod")
}

/// A short SHA-256 (16 hex digits) over the files `names` of `src`, each
/// with its name and length: the cache key of a program built from them.
pub(crate) fn sources_hash(src: &Path, names: &[&str]) -> Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for name in names {
        let path = src.join(name);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Returns the binaries for the pinned versions, building any that are
/// missing first (the first build takes a long while; later calls are
/// instant).
pub fn ensure() -> Result<BinDir> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());

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
    let parent = bins
        .dir
        .parent()
        .context("binary directory has no parent")?
        .to_owned();
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;

    // Serialize with other processes; another one may finish the build while
    // we wait for the lock.
    let lock_path = parent.join(".build.lock");
    let lock = fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if bins.missing().is_empty() {
        return Ok(bins);
    }

    // Leftovers of interrupted builds.
    for entry in fs::read_dir(&parent)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }

    let tmp = parent.join(format!(
        ".tmp-{}-{}",
        versions.cache_key(),
        std::process::id()
    ));
    fs::create_dir_all(&tmp)?;
    let result = build_all(&versions, &tmp);
    match result {
        Ok(()) => {
            if bins.dir.exists() {
                // A partial directory from an older layout: replace it.
                fs::remove_dir_all(&bins.dir)?;
            }
            fs::rename(&tmp, &bins.dir)
                .with_context(|| format!("renaming {} to {}", tmp.display(), bins.dir.display()))?;
            check!(
                bins.missing().is_empty(),
                "build finished but {:?} are missing in {}",
                bins.missing(),
                bins.dir.display()
            );
            Ok(bins)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn build_all(versions: &Versions, out: &Path) -> Result<()> {
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
    crate::say(&format!(
        "kseal-testenv: building upstream binaries for {} into {} with {}",
        versions.cache_key(),
        out.display(),
        String::from_utf8_lossy(&go.stdout).trim()
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

    // etcd: the server module's root package is the etcd main package.
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
    report += &timing("etcd", t.elapsed());

    // Every Kubernetes command in one go build (they share most packages).
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
    report += &timing(&KUBERNETES_COMMANDS.join("+"), t.elapsed());

    // helm has no replace directives: plain `go install …@version`. Its
    // default kube version (used by `helm template` and lint) is set to the
    // pinned Kubernetes release.
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
    report += &timing("helm", t.elapsed());

    fs::write(out.join("build-info.txt"), report)?;
    let _ = fs::remove_file(out.join("build.log"));
    Ok(())
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

fn run_go(what: &str, out: &Path, cmd: &mut Command) -> Result<()> {
    crate::say(&format!(
        "kseal-testenv: building {what} (the first build takes several minutes; \
         Go's build cache makes rebuilds fast)"
    ));
    let log_path = out.join("build.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let status = cmd
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("running go to build {what}"))?;
    if !status.success() {
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        bail!(
            "building {what} failed ({status}):\n{}",
            crate::process::tail(&log, 40)
        );
    }
    Ok(())
}
