//! Signing with cosign: release files as blobs (a `.cosign.bundle` beside
//! each), and the image and the chart in the registry.
//!
//! Signatures are Sigstore bundles (`--new-bundle-format`). With a key,
//! nothing is sent to a transparency log (the key is the trust root);
//! verifiers pass `--insecure-ignore-tlog=true` and an empty trusted root
//! ([`EMPTY_TRUSTED_ROOT`]), so cosign reaches for no Sigstore service at
//! all (with the old format it fetches the public trust root even to check a
//! key signature). Keyless signing (Sigstore, with the hosted CI's OIDC
//! identity) logs every signature in Rekor as usual.
//!
//! Key-signed cosign runs here also get a proxy that refuses everything
//! but loopback: nothing a test runs may reach past this machine.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};

use super::BUNDLE_SUFFIX;
use crate::release_tools;

/// The public key's file name in a key-signed release.
pub const PUBLIC_KEY_FILE: &str = "cosign.pub";

/// A Sigstore trusted root with no authorities, logs or timestamping
/// services: what verifying a key signature without a transparency log
/// needs (the key is given separately).
pub const EMPTY_TRUSTED_ROOT: &str =
    r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#;

/// `critical.type` of a cosign signature (an attestation has another).
const SIGNATURE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

/// How a release is signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A cosign private key file; its password in `COSIGN_PASSWORD`.
    Key(PathBuf),
    /// Sigstore keyless signing with the ambient OIDC identity (the hosted
    /// CI's); signatures are logged in Rekor.
    Keyless,
    /// A key pair made for this release and thrown away with the process:
    /// `cosign.pub` in the release verifies it, nothing else can sign with
    /// it again. For tests and trying the release out.
    Ephemeral,
}

/// A signer ready to sign: cosign built, the key in place (an ephemeral
/// key's 0700 directory lives as long as the last clone).
#[derive(Debug, Clone)]
pub struct Prepared {
    cosign: PathBuf,
    /// `None` when keyless.
    key: Option<PathBuf>,
    /// Holds an ephemeral key's directory until the last clone is dropped.
    _ephemeral: Option<Arc<tempfile::TempDir>>,
}

impl Signer {
    /// Builds cosign (cached) and makes or checks the key.
    pub fn prepare(&self) -> Result<Prepared> {
        let cosign = release_tools::ensure()?.cosign;
        Ok(match self {
            Signer::Keyless => Prepared {
                cosign,
                key: None,
                _ephemeral: None,
            },
            Signer::Key(key) => {
                ensure!(key.is_file(), "signing key {} not found", key.display());
                Prepared {
                    cosign,
                    key: Some(key.clone()),
                    _ephemeral: None,
                }
            }
            Signer::Ephemeral => {
                let dir = tempfile::tempdir()?;
                let prefix = dir.path().join("cosign");
                run(offline(&mut Command::new(&cosign))
                    .arg("generate-key-pair")
                    .arg("--output-key-prefix")
                    .arg(&prefix)
                    .env("COSIGN_PASSWORD", ""))?;
                Prepared {
                    cosign,
                    key: Some(dir.path().join("cosign.key")),
                    _ephemeral: Some(Arc::new(dir)),
                }
            }
        })
    }
}

/// The script that signs and publishes a release directory: the only code
/// that handles keys, OIDC tokens and registry credentials, run the same
/// way here and by the release workflow's publishing job.
pub fn publish_script() -> PathBuf {
    crate::image::workspace_root().join("build-support/release-publish.sh")
}

impl Prepared {
    /// cosign itself.
    pub fn cosign(&self) -> &Path {
        &self.cosign
    }

    /// Runs `release-publish.sh PHASE DIR` (`sign` or `push`) with this
    /// signer and the harness's tools; returns its output. `plain_http`:
    /// the registry is on loopback. Key-signed runs are kept off the
    /// network but for loopback.
    pub fn run_script(&self, phase: &str, dir: &Path, plain_http: bool) -> Result<String> {
        let tools = release_tools::ensure()?;
        let mut cmd = Command::new("bash");
        cmd.arg(publish_script())
            .arg(phase)
            .arg(dir)
            .env("COSIGN", &self.cosign)
            .env("CRANE", &tools.crane)
            .env("HELM", super::artifacts::helm()?);
        match &self.key {
            Some(key) => {
                cmd.env("COSIGN_KEY", key);
                if self._ephemeral.is_some() {
                    cmd.env("COSIGN_PASSWORD", "");
                }
                // Signing with a key needs nothing but loopback.
                if phase == "sign" || plain_http {
                    cmd.env("OFFLINE", "1");
                }
            }
            None => {
                cmd.env_remove("COSIGN_KEY");
            }
        }
        if plain_http {
            cmd.env("PLAIN_HTTP", "1");
        } else {
            cmd.env_remove("PLAIN_HTTP");
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("running build-support/release-publish.sh")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "release-publish.sh {phase} {} failed ({}):\n{text}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(text)
    }
}

impl Prepared {
    /// Signs an artifact in a loopback registry by digest with the key,
    /// as `release-publish.sh push` does (for tests that push more than a
    /// release: [`super::publish_relabelled`]).
    pub fn sign_artifact(&self, reference: &str, plain_http: bool) -> Result<()> {
        ensure!(
            reference.contains("@sha256:"),
            "sign by digest, not by tag: {reference}"
        );
        let key = self
            .key
            .as_ref()
            .context("signing outside a release needs a key")?;
        let mut cmd = Command::new(&self.cosign);
        offline(&mut cmd)
            .args([
                "sign",
                "--yes",
                "--new-bundle-format",
                "--tlog-upload=false",
            ])
            .arg("--key")
            .arg(key);
        if self._ephemeral.is_some() {
            cmd.env("COSIGN_PASSWORD", "");
        }
        registry_args(&mut cmd, plain_http);
        cmd.arg(reference);
        run(&mut cmd)?;
        Ok(())
    }
}

/// `<file>.cosign.bundle`.
pub fn bundle_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(BUNDLE_SUFFIX);
    PathBuf::from(name)
}

/// The arguments of `cosign verify-blob` for a key-signed release file,
/// as the README shows them (after the program name): `trusted_root` is a
/// file holding [`EMPTY_TRUSTED_ROOT`].
pub fn verify_blob_args(public_key: &Path, trusted_root: &Path, file: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["verify-blob".into(), "--key".into()];
    args.push(public_key.into());
    args.extend(["--bundle".into(), bundle_path(file).into()]);
    args.extend(["--new-bundle-format".into(), "--trusted-root".into()]);
    args.push(trusted_root.into());
    args.push("--insecure-ignore-tlog=true".into());
    args.push(file.into());
    args
}

/// The arguments of `cosign verify` for a key-signed artifact in a
/// registry, by digest.
pub fn verify_artifact_args(
    public_key: &Path,
    trusted_root: &Path,
    reference: &str,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["verify".into(), "--key".into()];
    args.push(public_key.into());
    args.extend(["--new-bundle-format".into(), "--trusted-root".into()]);
    args.push(trusted_root.into());
    args.push("--insecure-ignore-tlog=true".into());
    args.push(reference.into());
    args
}

/// Verifies a blob against its `.cosign.bundle` with a public key, offline
/// (as a user does with a key-signed release): `cosign verify-blob`.
pub fn verify_blob(cosign: &Path, public_key: &Path, file: &Path) -> Result<()> {
    let root = trusted_root_file()?;
    run(offline(&mut Command::new(cosign)).args(verify_blob_args(public_key, root.path(), file)))?;
    Ok(())
}

/// Verifies the signature of an artifact in a registry (`REPO@sha256:…`)
/// with a public key: `cosign verify`, and that what verified is a
/// signature of exactly that digest (cosign's bundle format also accepts
/// an attestation as proof).
pub fn verify_artifact(
    cosign: &Path,
    public_key: &Path,
    reference: &str,
    plain_http: bool,
) -> Result<()> {
    let (_, digest) = reference
        .split_once('@')
        .with_context(|| format!("verify by digest, not by tag: {reference}"))?;
    let root = trusted_root_file()?;
    let mut cmd = Command::new(cosign);
    offline(&mut cmd).args(verify_artifact_args(public_key, root.path(), reference));
    registry_args(&mut cmd, plain_http);
    let out = run(&mut cmd)?;
    let verified: serde_json::Value = serde_json::from_slice(&out)
        .with_context(|| format!("cosign verify printed no JSON for {reference}"))?;
    let signatures = verified
        .as_array()
        .filter(|a| !a.is_empty())
        .with_context(|| format!("cosign verify found nothing for {reference}"))?;
    for s in signatures {
        ensure!(
            s["critical"]["type"] == SIGNATURE_TYPE,
            "{reference}: what verified is not a signature: {}",
            s["critical"]["type"]
        );
        ensure!(
            s["critical"]["image"]["docker-manifest-digest"] == digest,
            "{reference}: the signature is of {}",
            s["critical"]["image"]["docker-manifest-digest"]
        );
    }
    Ok(())
}

/// A temporary file holding [`EMPTY_TRUSTED_ROOT`].
fn trusted_root_file() -> Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("trusted-root-")
        .suffix(".json")
        .tempfile()?;
    fs::write(file.path(), EMPTY_TRUSTED_ROOT)?;
    Ok(file)
}

/// Keeps cosign on this machine: HTTP(S) through a proxy on a loopback
/// port nothing listens on, except to loopback (the harness's registry).
/// Anything it tries to fetch from a Sigstore service fails at once here.
fn offline(cmd: &mut Command) -> &mut Command {
    for (k, v) in [
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("NO_PROXY", "127.0.0.1,localhost"),
    ] {
        cmd.env(k, v).env(k.to_ascii_lowercase(), v);
    }
    cmd
}

/// A registry served over plain HTTP (the harness's, on loopback).
fn registry_args(cmd: &mut Command, plain_http: bool) {
    if plain_http {
        cmd.arg("--allow-http-registry")
            .arg("--allow-insecure-registry");
    }
}

/// Runs cosign; its stdout, or an error with both streams.
fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        bail!(
            "cosign {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}
