//! A kseal release, built from the repository: what `cargo xtask release`
//! writes, the release workflow publishes, and the end-to-end tests install
//! from a registry on loopback exactly as users install from the public one.
//!
//! A release directory holds (V is the workspace version, ARCH `amd64` or
//! `arm64`):
//!
//! | file | what |
//! |---|---|
//! | `kseal-V-linux-ARCH.tar.gz` | the static CLI, `LICENSE`, `README.md` |
//! | `kseal-controller-V-linux-ARCH.tar.gz` | the static controller, same |
//! | `<archive stem>.cdx.json` | CycloneDX SBOM of the crates in that binary |
//! | `kseal-controller-V.oci.tar` | OCI image layout: one index, a manifest per platform |
//! | `kseal-V.tgz` | the chart; appVersion V, image pinned by the index digest |
//! | `kseal.krew.yaml` | krew plugin manifest for the CLI archives |
//! | `provenance.intoto.json` | in-toto statement, SLSA provenance v1, over all of the above |
//! | `SHA256SUMS` | `sha256sum` lines for every file above |
//! | `*.cosign.bundle` | cosign signatures of `SHA256SUMS`, the chart and the provenance |
//! | `cosign.pub` | the public key, for key-signed releases |
//! | `release.json` | [`Manifest`]: version, image and chart references, digests |
//!
//! [`build`] writes the directory; [`publish()`] pushes the image index and the
//! chart to a registry and signs both there.

mod artifacts;
mod publish;
mod sign;
pub mod toolchain;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

pub use publish::{Published, publish, publish_relabelled, verify_dir};
pub use sign::{
    EMPTY_TRUSTED_ROOT, PUBLIC_KEY_FILE, Prepared, Signer, verify_artifact, verify_artifact_args,
    verify_blob, verify_blob_args,
};

use crate::image::{self, workspace_root};
use crate::oci;

/// The version every artifact carries: the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where public releases are published: the image is
/// `<registry>/kseal-controller`, the chart `oci://<registry>/charts/kseal`.
pub const PUBLIC_REGISTRY: &str = "ghcr.io/kseal-dev";
/// Where the public release's files are downloaded from (krew's `uri`s);
/// `{version}` is replaced.
pub const PUBLIC_DOWNLOAD_URL: &str =
    "https://github.com/kseal-dev/kseal/releases/download/v{version}";

/// A Linux platform a release is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// `linux/amd64`, Rust `x86_64-unknown-linux-musl`.
    Amd64,
    /// `linux/arm64`, Rust `aarch64-unknown-linux-musl`.
    Arm64,
}

impl Arch {
    /// Both, in the order files and indexes list them.
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// GOARCH, as OCI platforms, krew and file names spell it.
    pub fn goarch(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target: musl, so the binaries are static and run on any
    /// Linux and on an empty image.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// This machine's, if it is one of them.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = anyhow::Error;

    /// `linux/amd64` or `linux/arm64` (also bare `amd64`, `arm64`).
    fn from_str(s: &str) -> Result<Self> {
        match s.strip_prefix("linux/").unwrap_or(s) {
            "amd64" => Ok(Arch::Amd64),
            "arm64" => Ok(Arch::Arm64),
            _ => bail!("unknown platform {s:?}: expected linux/amd64 or linux/arm64"),
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The release directory; created, and must be empty if it exists.
    pub out: PathBuf,
    /// Cargo profile of the binaries: `release` (fat LTO; what is published)
    /// or `image-test` (the same code built faster, for tests).
    pub profile: String,
    /// Platforms, each once.
    pub platforms: Vec<Arch>,
    /// Registry and namespace the image and the chart are published under,
    /// e.g. `ghcr.io/kseal-dev` or `127.0.0.1:5000/kseal-dev`; the chart's
    /// `image.repository` is `<registry>/kseal-controller`.
    pub registry: String,
    /// How `SHA256SUMS`, the chart and the provenance are signed (and, by
    /// [`publish()`], the image and the chart in the registry); `None`: not
    /// signed (`build-support/release-publish.sh sign` signs later).
    pub signer: Option<Signer>,
    /// Base URL the CLI archives are downloaded from (krew's `uri`s);
    /// default [`PUBLIC_DOWNLOAD_URL`].
    pub download_url: Option<String>,
    /// Extra `org.opencontainers.image.*`-style annotations on the image,
    /// which change its digest (tests publish two images of one build).
    pub image_annotations: BTreeMap<String, String>,
}

/// `release.json`: what a release directory holds, for tools and tests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The version every artifact carries.
    pub version: String,
    /// Git commit the release was built from.
    pub revision: String,
    /// `<registry>/kseal-controller`.
    pub image_repository: String,
    /// `sha256:…` of the image index (all platforms).
    pub image_digest: String,
    /// `oci://<registry>/charts`: what `helm push` and `helm install` take.
    pub chart_repository: String,
    /// The chart package's file name, `kseal-V.tgz`.
    pub chart_file: String,
    /// The OCI image layout archive's file name.
    pub image_file: String,
    /// Platforms, `linux/amd64`…
    pub platforms: Vec<String>,
    /// Cargo profile of the binaries.
    pub profile: String,
}

impl Manifest {
    /// Reads `release.json` from a release directory.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// `<repository>@<digest>`: the image reference the chart installs.
    pub fn image_ref(&self) -> String {
        format!("{}@{}", self.image_repository, self.image_digest)
    }
}

/// The summary file's name.
pub const MANIFEST_FILE: &str = "release.json";
/// The checksum file's name.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The provenance statement's name.
pub const PROVENANCE_FILE: &str = "provenance.intoto.json";
/// The krew plugin manifest's name.
pub const KREW_FILE: &str = "kseal.krew.yaml";
/// A cosign bundle's suffix: `SHA256SUMS.cosign.bundle`.
pub const BUNDLE_SUFFIX: &str = ".cosign.bundle";

/// A finished release directory.
#[derive(Debug, Clone)]
pub struct Release {
    /// The directory.
    pub dir: PathBuf,
    /// Its `release.json`.
    pub manifest: Manifest,
    /// Time spent in cargo (all platforms).
    pub cargo_time: Duration,
    /// The signer, kept for [`publish()`] (an ephemeral key lives as long as
    /// this); `None` for an unsigned release.
    pub signer: Option<Prepared>,
}

/// Builds a release into `opts.out`: binaries for every platform, archives,
/// SBOMs, the image index, the chart, the krew manifest, the provenance,
/// `SHA256SUMS` and the signatures. Nothing is pushed (see [`publish()`]).
/// The directory is written under a temporary name and renamed into place,
/// so a failed build leaves nothing behind.
pub fn build(opts: &Options) -> Result<Release> {
    let (platforms, registry) = check_options(opts)?;
    let started = SystemTime::now();
    let root = workspace_root();
    let revision = revision(&root);
    check_chart_version(&root)?;

    let targets: Vec<&str> = platforms.iter().map(|a| a.rust_target()).collect();
    let tools = toolchain::ensure(&targets)?;
    let staging = staging_dir(&opts.out)?;
    let dir = staging.path();

    let t = Instant::now();
    let binaries = build_binaries(&root, &tools, &opts.profile, &platforms, &revision)?;
    let cargo_time = t.elapsed();
    let mut files = archives_and_sboms(&root, &tools, dir, &binaries)?;

    let image_repository = format!("{registry}/kseal-controller");
    let image_file = format!("kseal-controller-{VERSION}.oci.tar");
    let image_digest = image_index(
        dir,
        &image_file,
        &image_repository,
        &binaries,
        &revision,
        &opts.image_annotations,
    )?;
    files.push(image_file.clone());

    let chart_file = artifacts::chart(&root, dir, &image_repository, &image_digest)?;
    files.push(chart_file.clone());

    let download = opts
        .download_url
        .clone()
        .unwrap_or_else(|| PUBLIC_DOWNLOAD_URL.to_owned())
        .replace("{version}", VERSION);
    files.push(artifacts::krew_manifest(dir, &download, &platforms)?);

    let manifest = Manifest {
        version: VERSION.to_owned(),
        revision,
        chart_repository: format!("oci://{registry}/charts"),
        image_repository,
        image_digest,
        chart_file,
        image_file,
        platforms: platforms
            .iter()
            .map(|a| format!("linux/{}", a.goarch()))
            .collect(),
        profile: opts.profile.clone(),
    };
    write_metadata(dir, files, &manifest, opts, started)?;
    let signer = sign(opts, dir)?;
    move_into_place(staging, &opts.out)?;
    Ok(Release {
        dir: opts.out.clone(),
        manifest,
        cargo_time,
        signer,
    })
}

/// Checks `opts`: platforms given once each (returned sorted), a registry
/// `HOST[:PORT]/NAMESPACE` in lowercase (returned without a trailing `/`),
/// and an output directory that is new or empty.
fn check_options(opts: &Options) -> Result<(Vec<Arch>, &str)> {
    ensure!(!opts.platforms.is_empty(), "a release needs a platform");
    let mut platforms = opts.platforms.clone();
    platforms.sort();
    platforms.dedup();
    ensure!(
        platforms.len() == opts.platforms.len(),
        "a platform is given twice"
    );
    let registry = opts.registry.trim_end_matches('/');
    ensure!(
        !registry.is_empty()
            && registry.contains('/')
            && registry
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:/-".contains(&b))
            && !registry.split('/').any(str::is_empty),
        "--registry {registry:?}: expected HOST[:PORT]/NAMESPACE in lowercase, e.g. \
         ghcr.io/kseal-dev (OCI repository names are lowercase)"
    );
    if opts.out.exists() {
        let empty = fs::read_dir(&opts.out)
            .with_context(|| format!("reading {}", opts.out.display()))?
            .next()
            .is_none();
        ensure!(
            empty,
            "{} exists and is not empty: a release goes into a new directory",
            opts.out.display()
        );
    }
    Ok((platforms, registry))
}

/// The commit the release is built from (`unknown` outside git), with
/// `-dirty` when the tree has uncommitted changes: a build of those says
/// so wherever the commit is named (provenance, image annotation,
/// release.json, `--version`).
fn revision(root: &Path) -> String {
    let mut revision =
        image::git(root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    // (Another release build's SBOM scratch files do not count.)
    let status = [
        "status",
        "--porcelain",
        "--untracked-files=normal",
        "--",
        ".",
        ":(exclude,glob)**/.release-sbom-*",
    ];
    if image::git(root, &status).is_some() {
        revision.push_str("-dirty");
    }
    revision
}

/// A new temporary directory next to `out` (so the final rename stays on
/// one file system), removed when dropped.
fn staging_dir(out: &Path) -> Result<tempfile::TempDir> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(".kseal-release-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))
}

/// The CycloneDX SBOM `build` writes beside each archive:
/// `<dir>/<stem>.cdx.json` for binary `name` (`kseal` or
/// `kseal-controller`) built for `arch`, with `tools` from
/// [`toolchain::ensure`]. Returns the file name. Safe to call from several
/// threads at once, as two releases built together do.
pub fn sbom(
    tools: &toolchain::Toolchain,
    dir: &Path,
    stem: &str,
    name: &str,
    arch: Arch,
) -> Result<String> {
    artifacts::sbom(
        &workspace_root(),
        tools,
        dir,
        stem,
        name,
        arch.rust_target(),
    )
}

/// Both binaries for every platform, with cargo zigbuild.
fn build_binaries(
    root: &Path,
    tools: &toolchain::Toolchain,
    profile: &str,
    platforms: &[Arch],
    revision: &str,
) -> Result<BTreeMap<Arch, Binaries>> {
    let mut binaries = BTreeMap::new();
    for arch in platforms {
        binaries.insert(*arch, cargo_build(root, tools, profile, *arch, revision)?);
    }
    Ok(binaries)
}

/// For every platform and binary: the `.tar.gz` archive and its CycloneDX
/// SBOM in `dir`. Returns their file names.
fn archives_and_sboms(
    root: &Path,
    tools: &toolchain::Toolchain,
    dir: &Path,
    binaries: &BTreeMap<Arch, Binaries>,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for (arch, bins) in binaries {
        for (name, path) in [("kseal", &bins.cli), ("kseal-controller", &bins.controller)] {
            let stem = format!("{name}-{VERSION}-linux-{}", arch.goarch());
            files.push(artifacts::archive(root, dir, &stem, name, path)?);
            files.push(artifacts::sbom(
                root,
                tools,
                dir,
                &stem,
                name,
                arch.rust_target(),
            )?);
        }
    }
    Ok(files)
}

/// Writes `release.json`, the provenance over `files` and it, and
/// `SHA256SUMS` over all of them.
fn write_metadata(
    dir: &Path,
    mut files: Vec<String>,
    manifest: &Manifest,
    opts: &Options,
    started: SystemTime,
) -> Result<()> {
    // release.json is listed in SHA256SUMS and the provenance: users may
    // take the digest from it.
    let path = dir.join(MANIFEST_FILE);
    fs::write(&path, serde_json::to_string_pretty(manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    files.push(MANIFEST_FILE.to_owned());
    artifacts::provenance(dir, &files, manifest, opts, started)?;
    files.push(PROVENANCE_FILE.to_owned());
    artifacts::sha256sums(dir, &files)
}

/// Signs the release in `dir` with `opts.signer`, if any; returns the
/// prepared signer (kept for [`publish()`]).
fn sign(opts: &Options, dir: &Path) -> Result<Option<Prepared>> {
    let Some(signer) = &opts.signer else {
        return Ok(None);
    };
    let prepared = signer.prepare()?;
    prepared.run_script("sign", dir, false)?;
    Ok(Some(prepared))
}

/// Renames the finished `staging` directory to `out` (an empty `out` is
/// replaced).
fn move_into_place(staging: tempfile::TempDir, out: &Path) -> Result<()> {
    let staged = staging.keep();
    if out.exists() {
        fs::remove_dir(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    fs::rename(&staged, out)
        .with_context(|| format!("renaming {} to {}", staged.display(), out.display()))
}

/// The two binaries of one platform.
struct Binaries {
    cli: PathBuf,
    controller: PathBuf,
}

/// The target directory release builds use: its own, so `cargo test`
/// holding the normal one's lock does not block it and its flags do not
/// invalidate the normal one's artifacts.
pub fn build_target_dir() -> PathBuf {
    image::build_target_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("release-build")
}

fn cargo_build(
    root: &Path,
    tools: &toolchain::Toolchain,
    profile: &str,
    arch: Arch,
    revision: &str,
) -> Result<Binaries> {
    let target = arch.rust_target();
    crate::say(&format!(
        "kseal-testenv: building kseal and kseal-controller for {target} ({profile})"
    ));
    // cargo-zigbuild writes its compiler wrappers, and zig its caches,
    // under $HOME before cargo takes the target directory's lock; two
    // builds starting together (two releases in one test process, CI's
    // background release beside the tests) could meet there. One at a
    // time costs nothing: cargo serializes builds in one target directory.
    // (toolchain::ensure made the tools directory.)
    let _lock = crate::go_build::lock(&crate::bins::cache_root()?.join("tools/.zigbuild.lock"))?;
    let mut cargo = image::cargo_command();
    let status = cargo
        .current_dir(root)
        .env("PATH", tools.path_env()?)
        .args([
            "zigbuild",
            "--locked",
            "-p",
            "kseal-cli",
            "-p",
            "kseal-controller",
        ])
        .args(["--profile", profile, "--target", target])
        .env("CARGO_TARGET_DIR", build_target_dir())
        // `--version` names the commit the release is built from.
        .env("KSEAL_GIT_COMMIT", revision.get(..12).unwrap_or(revision))
        .stdin(Stdio::null())
        .status()
        .context("running cargo zigbuild")?;
    ensure!(
        status.success(),
        "cargo zigbuild for {target} failed ({status})"
    );
    let dir = build_target_dir().join(target).join(profile);
    let bins = Binaries {
        cli: dir.join("kseal"),
        controller: dir.join("kseal-controller"),
    };
    for b in [&bins.cli, &bins.controller] {
        ensure!(b.is_file(), "cargo zigbuild left no {}", b.display());
    }
    Ok(bins)
}

/// Writes the controller image as one OCI image index over every platform;
/// returns the index digest.
fn image_index(
    dir: &Path,
    file: &str,
    repository: &str,
    binaries: &BTreeMap<Arch, Binaries>,
    revision: &str,
    extra: &BTreeMap<String, String>,
) -> Result<String> {
    let mut annotations = image::annotations(revision);
    annotations.extend(extra.clone());
    let platforms = binaries
        .iter()
        .map(|(arch, bins)| {
            Ok(oci::Platform {
                arch: arch.goarch().to_owned(),
                files: vec![oci::File {
                    path: image::ENTRYPOINT.to_owned(),
                    mode: 0o755,
                    data: fs::read(&bins.controller)
                        .with_context(|| format!("reading {}", bins.controller.display()))?,
                }],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let written = oci::write_index_archive(
        &oci::Image {
            name: format!("{repository}:{VERSION}"),
            user: image::USER.to_owned(),
            entrypoint: vec![image::ENTRYPOINT.to_owned()],
            env: vec![],
            exposed_ports: image::EXPOSED_PORTS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            annotations,
            files: vec![],
        },
        &platforms,
        &dir.join(file),
    )?;
    Ok(written.manifest_digest)
}

/// The chart's version and appVersion must be the workspace version: the
/// chart installs the image its appVersion names.
fn check_chart_version(root: &Path) -> Result<()> {
    let path = root.join("charts/kseal/Chart.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    for key in ["version:", "appVersion:"] {
        let found = field(key);
        ensure!(
            found.as_deref() == Some(VERSION),
            "charts/kseal/Chart.yaml {key} is {found:?}, the workspace version is {VERSION}: \
             bump them together"
        );
    }
    Ok(())
}
