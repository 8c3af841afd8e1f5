//! Packaging: `--version` names the git commit, and the binary works as a
//! kubectl plugin (`kubectl-kseal`, run as `kubectl kseal …`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kseal_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kseal"))
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `git rev-parse --short=12 HEAD` of this checkout, if git works here.
fn head_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn version_names_the_release_and_the_commit() {
    let output = Command::new(kseal_bin()).arg("--version").output().unwrap();
    assert!(output.status.success());
    let version = text(&output);
    let expected_prefix = format!("kseal {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected_prefix), "{version}");
    let commit = version
        .trim()
        .strip_prefix(&expected_prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    // Built from this checkout: the commit is HEAD's, unless the build set
    // KSEAL_GIT_COMMIT (a release build from a tarball, or the Dockerfile).
    assert_eq!(commit, env!("KSEAL_GIT_COMMIT"));
    if std::env::var_os("KSEAL_GIT_COMMIT").is_none()
        && let Some(head) = head_commit()
    {
        // cargo reruns build.rs when HEAD moves, so the build names HEAD.
        assert_eq!(commit, head, "{version}");
    }
    // -V stays short; subcommands report the same version.
    let short = Command::new(kseal_bin()).arg("-V").output().unwrap();
    assert_eq!(
        text(&short).trim(),
        format!("kseal {}", env!("CARGO_PKG_VERSION"))
    );
    let sub = Command::new(kseal_bin())
        .args(["seal", "--version"])
        .output()
        .unwrap();
    assert!(text(&sub).contains("(commit "), "{}", text(&sub));
}

/// A directory holding `kubectl-kseal`, a symlink to the real binary, as a
/// user would install it.
fn plugin_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-kseal");
    std::os::unix::fs::symlink(kseal_bin(), &plugin).unwrap();
    (dir, plugin)
}

#[test]
fn as_kubectl_plugin_usage_says_kubectl_kseal() {
    let (dir, plugin) = plugin_dir();
    let help = Command::new(&plugin).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(
        text(&help).contains("Usage: kubectl kseal <COMMAND>"),
        "{}",
        text(&help)
    );
    let help = Command::new(&plugin)
        .args(["seal", "--help"])
        .output()
        .unwrap();
    assert!(
        text(&help).contains("Usage: kubectl kseal seal"),
        "{}",
        text(&help)
    );
    // Usage errors name it the same way.
    let bad = Command::new(&plugin).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("kubectl kseal"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // And it works: a key pair through the plugin name.
    let key = dir.path().join("key.txt");
    let keygen = Command::new(&plugin)
        .args(["keygen", "-o"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    assert!(text(&keygen).starts_with("age1"), "{}", text(&keygen));
    // Called by its own name, usage still says kseal.
    let help = Command::new(kseal_bin()).arg("--help").output().unwrap();
    assert!(text(&help).contains("Usage: kseal <COMMAND>"));
}

/// Through kubectl itself, when it is installed: kubectl finds
/// `kubectl-kseal` on PATH and runs it with the remaining arguments.
#[test]
fn kubectl_finds_and_runs_the_plugin() {
    let Some(kubectl) = which("kubectl") else {
        eprintln!("kubectl not installed: skipping the kubectl plugin check");
        return;
    };
    let (dir, _) = plugin_dir();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(&kubectl)
        .args(["kseal", "--version"])
        .env("PATH", &path)
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text(&output).starts_with("kseal "), "{}", text(&output));
    let list = Command::new(&kubectl)
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(text(&list).contains("kubectl-kseal"), "{}", text(&list));
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}
