//! The probe image, built locally like the pause image (no registry is
//! reachable): a small static C program (`tests/testenv/probe/probe.c`) on
//! an empty image, cached by the hash of its source.
//!
//! A probe Pod reports, every second, the SHA-256 digests of one
//! environment variable (`PROBE_ENV` names it) and of one file
//! (`PROBE_FILE`) into `PROBE_OUT/POD_NAME` (a hostPath volume the test
//! reads on the node's host), with its pod name and uid (downward API) and
//! its start time: what a workload sees of a Secret, without the value ever
//! being printed or written. [`Report::parse`] reads such a file.

use std::path::PathBuf;

use anyhow::Result;

use crate::oci;

/// The C source of the probe program.
pub const SOURCE: &str = include_str!("../probe/probe.c");

/// The image's entrypoint.
pub const ENTRYPOINT: &str = "/probe";

/// A built probe image.
#[derive(Debug, Clone)]
pub struct ProbeImage {
    /// The image name containerd knows it by.
    pub name: String,
    /// The OCI archive to import.
    pub archive: PathBuf,
}

/// Builds the probe image into the cache (`<cache>/images/`) unless it is
/// there already.
pub fn ensure() -> Result<ProbeImage> {
    let (name, archive) = oci::static_c_image("probe", SOURCE, "65532:65532")?;
    Ok(ProbeImage { name, archive })
}

/// One report of a probe Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The Pod's name.
    pub pod: String,
    /// The Pod's uid.
    pub uid: String,
    /// When the probe process started, seconds since the Unix epoch.
    pub started: i64,
    /// When the report was written, seconds since the Unix epoch.
    pub now: i64,
    /// SHA-256 (lowercase hex) of the variable `PROBE_ENV`, or `unset`.
    pub env: String,
    /// SHA-256 (lowercase hex) of the file `PROBE_FILE`, or `unreadable`.
    pub file: String,
}

impl Report {
    /// Parses the `key=value` lines a probe writes; `None` when a field is
    /// missing.
    pub fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        Some(Self {
            pod: field("pod")?,
            uid: field("uid")?,
            started: field("started")?.parse().ok()?,
            now: field("now")?.parse().ok()?,
            env: field("env")?,
            file: field("file")?,
        })
    }
}

/// SHA-256 of `bytes` in lowercase hex: what a probe reports for a value.
pub fn digest(bytes: &[u8]) -> String {
    oci::digest(bytes)["sha256:".len()..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The probe's own SHA-256 agrees with the sha2 crate, and its report
    /// parses; the value it reads appears nowhere in what it writes.
    #[test]
    fn the_probe_reports_digests_only() {
        if Command::new("gcc").arg("--version").output().is_err() {
            eprintln!("SKIPPING: no gcc");
            return;
        }
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("probe.c");
        let bin = work.path().join("probe");
        std::fs::write(&src, SOURCE).unwrap();
        let built = Command::new("gcc")
            .args(["-Os", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .unwrap();
        assert!(built.success());
        let out = work.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // 100 bytes: more than one SHA-256 block.
        let file_value = "f".repeat(100);
        std::fs::write(work.path().join("value"), &file_value).unwrap();
        let env_value = "probe-canary-value";
        let child = Command::new(&bin)
            .env("PROBE_OUT", &out)
            .env("POD_NAME", "p-1")
            .env("POD_UID", "u-1")
            .env("PROBE_ENV", "WATCHED")
            .env("WATCHED", env_value)
            .env("PROBE_FILE", work.path().join("value"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let report_path = out.join("p-1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !report_path.is_file() {
            assert!(std::time::Instant::now() < deadline, "no report");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&report_path).unwrap();
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "SIGTERM ends the probe cleanly");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(&digest(env_value.as_bytes())));
        let report = Report::parse(&text).unwrap();
        assert_eq!(report.pod, "p-1");
        assert_eq!(report.uid, "u-1");
        assert_eq!(report.env, digest(env_value.as_bytes()));
        assert_eq!(report.file, digest(file_value.as_bytes()));
        for shown in [&text, &stdout.to_string()] {
            assert!(!shown.contains(env_value) && !shown.contains(&file_value));
        }
        assert_eq!(
            digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
