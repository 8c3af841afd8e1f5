//! The release tools (`tests/gomod/release`) and the loopback registry:
//! an OCI image layout written by hand goes in with `crane push` and comes
//! back with the digest it was written with; `cosign` and `krew` run.
//! Needs Go, no cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};

use kseal_testenv::oci::digest;
use kseal_testenv::registry::Registry;
use kseal_testenv::release_tools::{self, ReleaseTools};
use serde_json::json;

/// The tools, or `None` (after a loud notice) when Go is not installed
/// outside CI. Under `CI=true`, or when Go is there, a failed build fails.
fn tools() -> Option<ReleaseTools> {
    let go = Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output();
    if !go.is_ok_and(|o| o.status.success()) && !kseal_testenv::is_ci() {
        eprintln!("\n!!!!! SKIPPING the release tools test: Go is not installed\n");
        return None;
    }
    Some(release_tools::ensure().expect("building the release tools"))
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The version `tests/gomod/release/go.mod` requires of `module`.
fn pinned(module: &str) -> String {
    let go_mod = fs::read_to_string(release_tools::source_dir().join("go.mod")).unwrap();
    go_mod
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(module)).then(|| words.next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("go.mod requires {module}"))
}

/// A one-entry ustar archive (owner 0:0, mtime 0).
fn tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[148..156].fill(b' ');
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// Writes a one-image OCI image layout into `dir`; returns the digest of
/// its `index.json`.
fn write_layout(dir: &Path) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| -> String {
        let d = digest(bytes);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };

    let layer = tar("hello.txt", b"hello from kseal-testenv\n");
    let layer_digest = blob(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": kseal_testenv::oci::go_arch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = blob(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let manifest_digest = blob(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": kseal_testenv::oci::go_arch(), "os": "linux"},
        }],
    }))
    .unwrap();
    fs::write(dir.join("index.json"), &index).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    digest(&index)
}

#[test]
fn a_pushed_layout_comes_back_with_its_digest_and_the_registry_goes_away() {
    let Some(tools) = tools() else { return };
    let registry = Registry::start(&tools).unwrap();
    let host = registry.host();
    let crane = |args: &[&str]| run(Command::new(&tools.crane).arg("--insecure").args(args));

    assert_eq!(
        stdout(&crane(&["catalog", &host])),
        "",
        "a new registry is empty"
    );

    let layout = tempfile::tempdir().unwrap();
    let index_digest = write_layout(layout.path());
    let image = format!("{host}/t/img:1");
    crane(&["push", layout.path().to_str().unwrap(), &image, "--index"]);
    assert_eq!(
        stdout(&crane(&["digest", &image])),
        index_digest,
        "registry log:\n{}",
        registry.log_tail(20)
    );
    assert_eq!(stdout(&crane(&["catalog", &host])), "t/img");

    // Dropping it ends the process and frees the port.
    let port = host.rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
    let pid = registry.pid().unwrap();
    drop(registry);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the registry (pid {pid}) is gone"
    );
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "nothing listens on {port}"
    );
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free"));
}

#[test]
fn cosign_and_krew_run_and_say_their_versions() {
    let Some(tools) = tools() else { return };

    let cosign = run(Command::new(&tools.cosign).arg("version"));
    let text = format!(
        "{}{}",
        stdout(&cosign),
        String::from_utf8_lossy(&cosign.stderr)
    );
    let version = pinned("github.com/sigstore/cosign/v2");
    assert!(text.contains(&version), "cosign {version}:\n{text}");

    let krew_root = tempfile::tempdir().unwrap();
    let krew = run(Command::new(&tools.krew)
        .arg("version")
        .env("KREW_ROOT", krew_root.path())
        .env("KREW_NO_UPGRADE_CHECK", "1"));
    let text = stdout(&krew);
    let version = pinned("sigs.k8s.io/krew");
    assert!(text.contains(&version), "krew {version}:\n{text}");
}
