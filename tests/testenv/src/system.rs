//! Debian packages the tests need (the `age` CLI, the node's containerd,
//! runc, CNI plugins, …): installed on first use, as the Go binaries are
//! built on first use, so `cargo test --workspace` needs no manual step on a
//! fresh Debian machine. Only as root with `apt-get`, and never when
//! `KSEAL_NO_APT=1`; otherwise the error names the one command to run.

use std::fs;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Serializes installs between test processes (apt's own lock would make a
/// concurrent install fail instead of wait).
const APT_LOCK: &str = "/run/lock/kseal-testenv-apt.lock";

/// The `apt-get install` line for `packages`.
pub fn install_command(packages: &[&str]) -> String {
    format!("apt-get install -y {}", packages.join(" "))
}

/// Whether the Debian package is installed.
pub fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs the missing ones of `packages` with apt-get (see the module
/// docs), or fails naming the command to run.
pub fn ensure_debian_packages(packages: &[&str]) -> Result<()> {
    let allowed = !std::env::var("KSEAL_NO_APT").is_ok_and(|v| v == "1");
    ensure_with(packages, allowed)
}

fn ensure_with(packages: &[&str], apt_allowed: bool) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = install_command(&missing);
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let has_apt = Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !apt_allowed || !is_root || !has_apt {
        bail!("missing Debian packages {missing:?}; install them with: {command}");
    }
    let lock = fs::File::create(APT_LOCK).with_context(|| format!("creating {APT_LOCK}"))?;
    lock.lock().with_context(|| format!("locking {APT_LOCK}"))?;
    let missing: Vec<&str> = missing.into_iter().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::say(&format!(
        "kseal-testenv: installing Debian packages {missing:?} (apt-get; KSEAL_NO_APT=1 turns this off)"
    ));
    let apt = |args: &[&str]| -> Result<()> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .context("running apt-get")?;
        if !out.status.success() {
            bail!(
                "`apt-get {}` failed: {}; install them with: {command}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_pass_and_missing_ones_name_the_command() {
        // dpkg itself is always installed on Debian; elsewhere nothing is.
        if installed("dpkg") {
            ensure_with(&["dpkg"], false).unwrap();
        }
        let err = ensure_with(&["kseal-no-such-package"], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("install them with: apt-get install -y kseal-no-such-package"),
            "{err}"
        );
    }
}
