//! The controller image, built from the repository without a container
//! engine: a static `kseal-controller` (the gnu target with
//! `+crt-static` gives a static-pie binary) on an empty base, as an OCI
//! archive containerd imports. `cargo xtask image` and the end-to-end tests
//! use this; the repository's Dockerfile builds the same image with Docker
//! (a test checks the two agree on user, entrypoint and ports).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::oci;

/// The image's user (the chart's `runAsUser`/`runAsGroup`).
pub const USER: &str = "65532:65532";
/// Where the binary lives in the image; the entrypoint.
pub const ENTRYPOINT: &str = "/usr/local/bin/kseal-controller";
/// Exposed ports: the controller's HTTP API (8080) and its probe and
/// metrics port (8081, `--health-addr`).
pub const EXPOSED_PORTS: [&str; 2] = ["8080/tcp", "8081/tcp"];
/// The repository name images are tagged with when built locally.
pub const LOCAL_REPOSITORY: &str = "localhost/kseal/kseal-controller";
/// The OCI `source` annotation.
pub const SOURCE: &str = "https://github.com/kseal-dev/kseal";

/// How to build.
#[derive(Debug, Clone)]
pub struct Build {
    /// Cargo profile: `release` (what users run: fat LTO, slow to build) or
    /// `image-test` (the tests' faster profile, see Cargo.toml).
    pub profile: String,
    /// Image name; default `localhost/kseal/kseal-controller:<version>-<profile>`.
    pub name: Option<String>,
    /// Archive path; default `<target>/image/<name>.oci.tar`.
    pub out: Option<PathBuf>,
}

impl Default for Build {
    fn default() -> Self {
        Self {
            profile: "release".to_owned(),
            name: None,
            out: None,
        }
    }
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// The name containerd will know it by.
    pub name: String,
    /// The OCI archive.
    pub archive: PathBuf,
    /// The static binary inside.
    pub binary: PathBuf,
    /// The manifest digest.
    pub digest: String,
    /// The git commit (`org.opencontainers.image.revision`).
    pub revision: String,
    /// How long `cargo build` took.
    pub cargo_time: Duration,
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is tests/testenv.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The target dir the image's binary is built in: `<target>/image-build`,
/// separate from the normal one because `cargo test` holds that one's lock
/// while tests run (and the static binary needs its own build anyway).
pub fn build_target_dir() -> PathBuf {
    target_dir().join("image-build")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The Rust target triple for this machine's static build.
pub fn target_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Builds the static binary (cargo caches it) and writes the image archive.
pub fn build(b: &Build) -> Result<Built> {
    let root = workspace_root();
    let version = env!("CARGO_PKG_VERSION");
    let revision = git(&root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let target = target_triple();
    let t = Instant::now();
    let mut cargo = cargo_command();
    let status = cargo
        .current_dir(&root)
        .args(["build", "--locked", "-p", "kseal-controller", "--profile"])
        .arg(&b.profile)
        .args(["--target", &target])
        .env("CARGO_TARGET_DIR", build_target_dir())
        // With --target, RUSTFLAGS reach only the target's crates (not build
        // scripts): a static-pie binary that runs on an empty image.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // `--version` names the same commit as the revision annotation.
        .env("KSEAL_GIT_COMMIT", revision.get(..12).unwrap_or(&revision))
        .stdin(Stdio::null())
        .status()
        .context("running cargo build for the controller image")?;
    ensure!(
        status.success(),
        "cargo build of the static controller failed ({status})"
    );
    let cargo_time = t.elapsed();
    let binary = build_target_dir()
        .join(&target)
        .join(&b.profile)
        .join("kseal-controller");
    let data = std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    let name = b
        .name
        .clone()
        .unwrap_or_else(|| format!("{LOCAL_REPOSITORY}:{version}-{}", b.profile));
    let file_name: String = name
        .rsplit('/')
        .next()
        .unwrap_or(&name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let archive = b.out.clone().unwrap_or_else(|| {
        target_dir()
            .join("image")
            .join(format!("{file_name}.oci.tar"))
    });
    let annotations = annotations(&revision);
    let written = oci::write_archive(
        &oci::Image {
            name: name.clone(),
            user: USER.to_owned(),
            entrypoint: vec![ENTRYPOINT.to_owned()],
            env: vec![],
            exposed_ports: EXPOSED_PORTS.iter().map(|p| (*p).to_owned()).collect(),
            annotations,
            files: vec![oci::File {
                path: ENTRYPOINT.to_owned(),
                mode: 0o755,
                data,
            }],
        },
        &archive,
    )?;
    Ok(Built {
        name,
        archive,
        binary,
        digest: written.manifest_digest,
        revision,
        cargo_time,
    })
}

/// `cargo` with the same environment whether called from `cargo xtask`, a
/// shell or a test (cargo gives those `CARGO_*`, `LD_LIBRARY_PATH`, …): a
/// build script watching any variable (cc-rs watches many) would otherwise
/// rebuild part of the tree every time the caller changes. Only what finds
/// the toolchain, the registry and the network is kept.
pub fn cargo_command() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cargo.env_clear();
    for (key, value) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let keep = matches!(
            k.as_ref(),
            "PATH" | "HOME" | "USER" | "LANG" | "TMPDIR" | "SSL_CERT_FILE" | "SSL_CERT_DIR"
        ) || k.to_ascii_lowercase().ends_with("_proxy")
            || [
                "CARGO_HOME",
                "CARGO_NET_",
                "CARGO_HTTP_",
                "CARGO_REGISTRIES_",
                "RUSTUP_",
            ]
            .iter()
            .any(|p| k.starts_with(p));
        if keep {
            cargo.env(&key, value);
        }
    }
    cargo
}

/// The image's OCI annotations (also its config labels): source, revision,
/// version, title and license.
pub fn annotations(revision: &str) -> BTreeMap<String, String> {
    [
        ("org.opencontainers.image.source", SOURCE),
        ("org.opencontainers.image.revision", revision),
        (
            "org.opencontainers.image.version",
            env!("CARGO_PKG_VERSION"),
        ),
        ("org.opencontainers.image.title", "kseal-controller"),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `git ARGS` in `root`: its trimmed stdout, or `None` when git fails or
/// prints nothing.
pub(crate) fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}
