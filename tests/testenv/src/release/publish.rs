//! Publishing a release directory to an OCI registry: the image index with
//! `crane push`, the chart with `helm push`, both signed there with
//! cosign. Credentials are the tools' own: `docker login` / `crane auth
//! login` (cosign and crane) and `helm registry login` (helm).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use super::{Release, VERSION};
use crate::release_tools;

/// Where a release went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// `<registry>/kseal-controller@sha256:…` (also tagged with the version).
    pub image: String,
    /// `oci://<registry>/charts/kseal`: `helm install` takes this with
    /// `--version`.
    pub chart: String,
    /// `sha256:…` of the chart's OCI manifest.
    pub chart_digest: String,
}

/// Pushes the image index (tagged with the version) and the chart, checks
/// the registry serves the digests the release names, and signs both by
/// digest with the release's signer: `release-publish.sh push`, the
/// script the release workflow runs. `plain_http`: the registry speaks
/// HTTP (the harness's, on loopback).
pub fn publish(release: &Release, plain_http: bool) -> Result<Published> {
    let m = &release.manifest;
    let signer = release
        .signer
        .as_ref()
        .context("an unsigned release is not published: sign it first")?;
    let out = signer.run_script("push", &release.dir, plain_http)?;
    let chart_digest = out
        .lines()
        .find_map(|l| l.strip_prefix("chart-digest "))
        .map(str::to_owned)
        .with_context(|| format!("release-publish.sh push printed no chart digest:\n{out}"))?;
    let image = m.image_ref();
    let chart = format!("{}/kseal", m.chart_repository);
    crate::say(&format!(
        "kseal-testenv: published {image} and {chart}:{VERSION} ({chart_digest})"
    ));
    Ok(Published {
        image,
        chart,
        chart_digest,
    })
}

/// For tests that need a second image of one release (a `helm upgrade` to
/// a new image): pushes the release's image index with one more annotation
/// (so another digest, same manifests and layers) as `<repository>:<tag>`
/// and signs it; returns `<repository>@<digest>`.
pub fn publish_relabelled(
    release: &Release,
    annotation: (&str, &str),
    tag: &str,
    plain_http: bool,
) -> Result<String> {
    let tools = release_tools::ensure()?;
    let m = &release.manifest;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    let archive = fs::File::open(release.dir.join(&m.image_file))
        .with_context(|| format!("opening {}", m.image_file))?;
    tar::Archive::new(archive).unpack(&layout)?;
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index_path = layout.join("index.json");
    let mut layout_index: serde_json::Value = serde_json::from_slice(&fs::read(&index_path)?)?;
    let old = layout_index["manifests"][0]["digest"]
        .as_str()
        .context("the layout names no image index")?
        .to_owned();
    let mut image_index: serde_json::Value = serde_json::from_slice(&fs::read(blob(&old))?)?;
    image_index["annotations"][annotation.0] = annotation.1.into();
    let bytes = serde_json::to_vec(&image_index)?;
    let digest = crate::oci::digest(&bytes);
    fs::write(blob(&digest), &bytes)?;
    layout_index["manifests"][0]["digest"] = digest.clone().into();
    layout_index["manifests"][0]["size"] = bytes.len().into();
    fs::write(&index_path, serde_json::to_vec(&layout_index)?)?;
    let tagged = format!("{}:{tag}", m.image_repository);
    let mut push = Command::new(&tools.crane);
    push.arg("push").arg(&layout).arg(&tagged);
    insecure(&mut push, plain_http);
    run("crane push", &mut push)?;
    let reference = format!("{}@{digest}", m.image_repository);
    release
        .signer
        .as_ref()
        .context("the release has no signer")?
        .sign_artifact(&reference, plain_http)?;
    Ok(reference)
}

fn insecure(cmd: &mut Command, plain_http: bool) {
    if plain_http {
        cmd.arg("--insecure");
    }
}

/// Runs a tool; stdout and stderr together, or an error with them.
fn run(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{what} failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

/// Verifies a release directory as a user does before installing: every
/// line of `SHA256SUMS` (the files exist and match; nothing listed is
/// missing), and the cosign bundles of `SHA256SUMS`, the chart and the
/// provenance against `cosign.pub`. The image and chart in the registry
/// are verified with [`super::sign::verify_artifact`].
pub fn verify_dir(cosign: &Path, dir: &Path) -> Result<()> {
    let public = dir.join(super::sign::PUBLIC_KEY_FILE);
    super::sign::verify_blob(cosign, &public, &dir.join(super::SUMS_FILE))?;
    let sums = fs::read_to_string(dir.join(super::SUMS_FILE))
        .with_context(|| format!("reading {}", super::SUMS_FILE))?;
    let mut listed = 0;
    for line in sums.lines() {
        let (hex, name) = line
            .split_once("  ")
            .with_context(|| format!("{}: bad line {line:?}", super::SUMS_FILE))?;
        let data = fs::read(dir.join(name)).with_context(|| format!("reading {name}"))?;
        ensure!(
            super::artifacts::sha256_hex(&data) == hex,
            "{name} does not match {}",
            super::SUMS_FILE
        );
        listed += 1;
    }
    ensure!(listed > 0, "{} lists nothing", super::SUMS_FILE);
    let m = super::Manifest::read(dir)?;
    for f in [m.chart_file.as_str(), super::PROVENANCE_FILE] {
        super::sign::verify_blob(cosign, &public, &dir.join(f))?;
    }
    Ok(())
}
