//! The files of a release directory other than the binaries and the image:
//! archives, SBOMs, the chart package, the krew manifest, the provenance
//! statement and `SHA256SUMS`.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use anyhow::{Context, Result, bail, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::toolchain::Toolchain;
use super::{Arch, KREW_FILE, Manifest, Options, PROVENANCE_FILE, SUMS_FILE, VERSION};

/// Files every archive carries beside its binary.
const ARCHIVE_DOCS: [&str; 2] = ["LICENSE", "README.md"];

/// `<stem>.tar.gz` with `binary` (as `name`, mode 0755) and the docs, at
/// the archive's top level, owned by 0:0 with a fixed mtime: the same
/// binary gives the same archive. Returns the file name.
pub(super) fn archive(
    root: &Path,
    dir: &Path,
    stem: &str,
    name: &str,
    binary: &Path,
) -> Result<String> {
    let file = format!("{stem}.tar.gz");
    let out = fs::File::create(dir.join(&file))
        .with_context(|| format!("creating {}", dir.join(&file).display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::best()));
    let mut add = |path: &str, mode: u32, data: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, data)
            .with_context(|| format!("adding {path} to {file}"))
    };
    let bin = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    add(name, 0o755, &bin)?;
    for doc in ARCHIVE_DOCS {
        let data = fs::read(root.join(doc)).with_context(|| format!("reading {doc} for {file}"))?;
        add(doc, 0o644, &data)?;
    }
    let gz = tar.into_inner().context("finishing the tar stream")?;
    gz.finish()
        .context("finishing the gzip stream")?
        .sync_all()?;
    Ok(file)
}

/// The CycloneDX SBOM (JSON) of the crates in binary `name` built for
/// `target`: `cargo cyclonedx` on its package, for that target only.
/// Written as `<stem>.cdx.json`; returns the file name.
pub(super) fn sbom(
    root: &Path,
    tools: &Toolchain,
    dir: &Path,
    stem: &str,
    name: &str,
    target: &str,
) -> Result<String> {
    let package_dir = match name {
        "kseal" => "cli",
        "kseal-controller" => "controller",
        _ => bail!("no package for binary {name}"),
    };
    // cargo-cyclonedx writes next to the package's Cargo.toml, one file per
    // workspace member; a name of this call's own keeps it from meeting
    // anything else there, including another release built at the same
    // time in this process (tests build two at once).
    let scratch = scratch_name(stem);
    let written = root.join(package_dir).join(format!("{scratch}.json"));
    let mut cmd = super::image::cargo_command();
    let out = cmd
        .current_dir(root.join(package_dir))
        .env("PATH", tools.path_env()?)
        // CycloneDX 1.5; what is linked for that target, not build-time
        // dependencies.
        .args(["cyclonedx", "--format", "json", "--spec-version", "1.5"])
        .args(["--no-build-deps", "--target", target])
        .args(["--override-filename", &scratch])
        .arg("--manifest-path")
        .arg(root.join(package_dir).join("Cargo.toml"))
        .stdin(Stdio::null())
        .output()
        .context("running cargo cyclonedx")?;
    let result = (|| {
        ensure!(
            out.status.success(),
            "cargo cyclonedx for {name} ({target}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = fs::read_to_string(&written)
            .with_context(|| format!("reading {}", written.display()))?;
        let sbom: serde_json::Value = serde_json::from_str(&text)?;
        ensure!(
            sbom["bomFormat"] == "CycloneDX",
            "cargo cyclonedx wrote no CycloneDX document"
        );
        let file = format!("{stem}.cdx.json");
        fs::write(dir.join(&file), text)?;
        Ok(file)
    })();
    // Whatever happened, nothing is left in the source tree (cargo
    // cyclonedx may write one per workspace member).
    for member in ["cli", "controller", "shared", "xtask", "tests/testenv"] {
        let _ = fs::remove_file(root.join(member).join(format!("{scratch}.json")));
    }
    result
}

/// `.release-sbom-<pid>-<n>-<stem>`: unique among this machine's
/// processes by the pid, and within this process by a counter.
fn scratch_name(stem: &str) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    format!(".release-sbom-{}-{n}-{stem}", std::process::id())
}

/// The chart package, `kseal-V.tgz`: the repository's chart with
/// `image.repository` and `image.digest` set to the release's image, so
/// installing it pulls exactly the image built with it. Returns its name.
pub(super) fn chart(root: &Path, dir: &Path, repository: &str, digest: &str) -> Result<String> {
    let work = tempfile::tempdir()?;
    let chart = work.path().join("kseal");
    copy_dir(&root.join("charts/kseal"), &chart)?;
    let values_path = chart.join("values.yaml");
    let values = fs::read_to_string(&values_path)?;
    let values = set_image(&values, repository, digest)?;
    fs::write(&values_path, values)?;
    let helm = helm()?;
    let out = Command::new(&helm)
        // A signing key's password is for cosign only.
        .env_remove("COSIGN_PASSWORD")
        .arg("package")
        .arg(&chart)
        .arg("--destination")
        .arg(dir)
        .env("HELM_CACHE_HOME", work.path().join("helm/cache"))
        .env("HELM_CONFIG_HOME", work.path().join("helm/config"))
        .env("HELM_DATA_HOME", work.path().join("helm/data"))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} package", helm.display()))?;
    ensure!(
        out.status.success(),
        "helm package failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = format!("kseal-{VERSION}.tgz");
    ensure!(
        dir.join(&file).is_file(),
        "helm package wrote no {file}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(file)
}

/// The helm that packages charts: `$KSEAL_HELM`, else the harness's pinned
/// helm (built from its Go module with the other binaries).
pub fn helm() -> Result<std::path::PathBuf> {
    if let Some(h) = std::env::var_os("KSEAL_HELM").filter(|h| !h.is_empty()) {
        return Ok(h.into());
    }
    Ok(crate::bins::ensure()?.helm())
}

/// `values.yaml` with the `image:` block's `repository:` and `digest:`
/// lines replaced; every other byte (comments included) kept. Fails when
/// the block does not have exactly one of each.
fn set_image(values: &str, repository: &str, digest: &str) -> Result<String> {
    let mut out = String::with_capacity(values.len() + 128);
    let mut in_image = false;
    let (mut repo_set, mut digest_set) = (0, 0);
    for line in values.split_inclusive('\n') {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.trim().is_empty() {
            in_image = line.trim_end() == "image:";
        }
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if in_image && trimmed.starts_with("repository:") {
            out.push_str(&format!("{indent}repository: {repository}\n"));
            repo_set += 1;
        } else if in_image && trimmed.starts_with("digest:") {
            out.push_str(&format!("{indent}digest: \"{digest}\"\n"));
            digest_set += 1;
        } else {
            out.push_str(line);
        }
    }
    ensure!(
        repo_set == 1 && digest_set == 1,
        "charts/kseal/values.yaml: expected one image.repository and one image.digest line"
    );
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        } else {
            bail!(
                "{}: the chart holds only files and directories",
                entry.path().display()
            );
        }
    }
    Ok(())
}

/// `kseal.krew.yaml`: a krew plugin manifest installing `kubectl kseal`
/// from the CLI archives at `<download>/<archive>`, pinned by SHA-256.
/// Returns its name.
pub(super) fn krew_manifest(dir: &Path, download: &str, platforms: &[Arch]) -> Result<String> {
    let mut yaml = format!(
        "# krew plugin manifest for kseal {VERSION}: `kubectl krew install --manifest={KREW_FILE}`\n\
         # (with --archive=kseal-{VERSION}-linux-ARCH.tar.gz to install offline).\n\
         apiVersion: krew.googlecontainertools.github.com/v1alpha2\n\
         kind: Plugin\n\
         metadata:\n  name: kseal\n\
         spec:\n  version: v{VERSION}\n\
         \x20 homepage: https://github.com/kseal-dev/kseal\n\
         \x20 shortDescription: Seal Secrets for GitOps with age\n\
         \x20 description: |\n\
         \x20   Encrypts Kubernetes Secrets against a cluster's public key into\n\
         \x20   SealedSecret manifests that are safe to commit; the kseal controller\n\
         \x20   decrypts them in the cluster. Run as `kubectl kseal seal ...`.\n\
         \x20 platforms:\n"
    );
    let download = download.trim_end_matches('/');
    for arch in platforms {
        let file = format!("kseal-{VERSION}-linux-{}.tar.gz", arch.goarch());
        let sha = sha256_hex(&fs::read(dir.join(&file))?);
        yaml.push_str(&format!(
            "  - selector:\n      matchLabels:\n        os: linux\n        arch: {}\n\
             \x20   uri: {download}/{file}\n\
             \x20   sha256: {sha}\n\
             \x20   bin: kseal\n\
             \x20   files:\n\
             \x20   - from: kseal\n      to: .\n\
             \x20   - from: LICENSE\n      to: .\n",
            arch.goarch()
        ));
    }
    fs::write(dir.join(KREW_FILE), yaml)?;
    Ok(KREW_FILE.to_owned())
}

/// `provenance.intoto.json`: an in-toto Statement v1 whose subjects are
/// every file of the release and the image index, with a SLSA provenance
/// v1 predicate naming the source commit, the build's parameters and the
/// builder (the GitHub workflow run when `GITHUB_ACTIONS` is set, else this
/// machine's `cargo xtask release`).
pub(super) fn provenance(
    dir: &Path,
    files: &[String],
    manifest: &Manifest,
    opts: &Options,
    started: SystemTime,
) -> Result<()> {
    let mut subjects = Vec::new();
    for f in files {
        let data = fs::read(dir.join(f)).with_context(|| format!("reading {f}"))?;
        subjects.push(json!({"name": f, "digest": {"sha256": sha256_hex(&data)}}));
    }
    subjects.push(json!({
        "name": format!("{}:{}", manifest.image_repository, manifest.version),
        "digest": {"sha256": manifest.image_digest.trim_start_matches("sha256:")},
    }));
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let builder = if github {
        format!(
            "{}/{}/.github/workflows/release.yml@{}",
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_REF")
        )
    } else {
        "https://github.com/kseal-dev/kseal/xtask/release@local".to_owned()
    };
    let invocation = if github {
        format!(
            "{}/{}/actions/runs/{}/attempts/{}",
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_RUN_ID"),
            env("GITHUB_RUN_ATTEMPT")
        )
    } else {
        String::new()
    };
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://github.com/kseal-dev/kseal/blob/main/docs/releasing.md",
                "externalParameters": {
                    "source": "git+https://github.com/kseal-dev/kseal",
                    "revision": manifest.revision,
                    "profile": opts.profile,
                    "platforms": manifest.platforms,
                    "registry": manifest.chart_repository.trim_start_matches("oci://").trim_end_matches("/charts"),
                },
                "resolvedDependencies": [{
                    "uri": "git+https://github.com/kseal-dev/kseal",
                    "digest": {"gitCommit": manifest.revision},
                }],
            },
            "runDetails": {
                "builder": {"id": builder},
                "metadata": {
                    "invocationId": invocation,
                    "startedOn": rfc3339(started),
                    "finishedOn": rfc3339(SystemTime::now()),
                },
            },
        },
    });
    fs::write(
        dir.join(PROVENANCE_FILE),
        serde_json::to_string_pretty(&statement)? + "\n",
    )?;
    Ok(())
}

/// `SHA256SUMS` over `files`, sorted by name, in `sha256sum`'s format
/// (`<hex>  <name>`), so `sha256sum --check SHA256SUMS` verifies them.
pub(super) fn sha256sums(dir: &Path, files: &[String]) -> Result<()> {
    let mut names: Vec<&String> = files.iter().collect();
    names.sort();
    let mut out = fs::File::create(dir.join(SUMS_FILE))?;
    for f in names {
        ensure!(
            !f.contains(['\n', '\\', '/']),
            "release file name {f:?} cannot be listed"
        );
        let data = fs::read(dir.join(f)).with_context(|| format!("reading {f}"))?;
        writeln!(out, "{}  {f}", sha256_hex(&data))?;
    }
    out.sync_all()?;
    Ok(())
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// RFC 3339 in UTC, to the second.
fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .and_then(|ts| ts.round(jiff::Unit::Second))
        .map_or_else(|_| String::new(), |ts| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sbom_scratch_name_is_new() {
        let names: std::collections::BTreeSet<String> = (0..100)
            .map(|_| scratch_name("kseal-1-linux-amd64"))
            .collect();
        assert_eq!(names.len(), 100);
        assert!(names.iter().all(|n| n.starts_with(".release-sbom-")));
    }

    #[test]
    fn set_image_replaces_only_the_image_block() {
        let values = "# top\nimage:\n  # the image\n  repository: a/b\n  tag: \"\"\n  digest: \"\"\n\
                      other:\n  repository: keep\n  digest: keep\n";
        let got = set_image(values, "r.example/k", "sha256:00").unwrap();
        assert_eq!(
            got,
            "# top\nimage:\n  # the image\n  repository: r.example/k\n  tag: \"\"\n  \
             digest: \"sha256:00\"\nother:\n  repository: keep\n  digest: keep\n"
        );
        assert!(set_image("image:\n  tag: x\n", "r", "d").is_err());
    }

    #[test]
    fn the_repository_values_have_one_image_block() {
        let root = crate::image::workspace_root();
        let values = fs::read_to_string(root.join("charts/kseal/values.yaml")).unwrap();
        let got = set_image(&values, "127.0.0.1:1/x/kseal-controller", "sha256:ab").unwrap();
        assert!(got.contains("  repository: 127.0.0.1:1/x/kseal-controller\n"));
        assert_eq!(got.lines().count(), values.lines().count());
    }
}
