//! A secret output interrupted by a signal leaves nothing readable behind:
//! `kseal unseal -o` (and `keygen -o`, `keys backup -o`, which share the
//! writer) stopped by SIGTERM, SIGINT or SIGHUP while the file is being
//! written exits with 128 + the signal, and the directory holds no file
//! but what was there before. Before this, a `.kseal-XXXXXX` file with the
//! whole Secret stayed beside the output.
//!
//! "While the file is being written" is made exact by a seam of debug
//! builds (`KSEAL_DEBUG_PAUSE_WRITE`, `cli/src/io.rs`): the write stops
//! once the contents are written, before the file gets its name, and says
//! so by creating a marker file. Unix only (signals).
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The directory's entries, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Starts `kseal ARGS` in `dir`, paused in its write; returns the child
/// once the write is paused.
fn paused(dir: &Path, args: &[&str], named_temporary: bool) -> Child {
    let markers = tempfile::tempdir().unwrap();
    let marker = markers.path().join("paused");
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("kseal"));
    command
        .args(args)
        .current_dir(dir)
        .env("KSEAL_DEBUG_PAUSE_WRITE", &marker)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if named_temporary {
        command.env("KSEAL_DEBUG_NAMED_TEMPORARY", "1");
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("kseal {args:?} finished without pausing in its write: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kseal {args:?} never paused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The seam exists in debug builds only (the test binary and kseal are
/// built alike).
fn seam_available() -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the write seam exists in debug builds only");
    }
    cfg!(debug_assertions)
}

#[test]
fn an_interrupted_unseal_leaves_no_plaintext_behind() {
    if !seam_available() {
        return;
    }
    let ws = Workspace::new();
    ws.write("sealed.yaml", &ws.seal(SECRET, &[]));
    let key = ws.identity.to_str().unwrap().to_owned();
    let args = ["unseal", "-i", &key, "-f", "sealed.yaml", "-o", "out.yaml"];
    // Each signal, on Linux both ways of writing (an unnamed file; a named
    // temporary file), and with and without an older output to replace.
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        for named_temporary in [false, true] {
            for replacing in [false, true] {
                let case = format!("SIG{signal}, named {named_temporary}, replacing {replacing}");
                let _ = std::fs::remove_file(ws.path("out.yaml"));
                if replacing {
                    ws.write("out.yaml", "old output\n");
                }
                let before = entries(ws.dir.path());
                let child = paused(ws.dir.path(), &args, named_temporary);
                kill(&child, signal);
                let output = child.wait_with_output().unwrap();
                assert_eq!(output.status.code(), Some(code), "{case}: {output:?}");
                assert_eq!(entries(ws.dir.path()), before, "{case}");
                if replacing {
                    assert_eq!(ws.read("out.yaml"), "old output\n", "{case}");
                }
            }
        }
    }
    // Uninterrupted, the same command writes the output, mode 0600.
    let output = ws.cmd().args(args).output().unwrap();
    assert_exit(&output, 0);
    assert!(ws.read("out.yaml").contains("aHVudGVyMi1jYW5hcnk="));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ws.path("out.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// On Linux, while a secret is being written there is no file at all to
/// read beside the output: it is written into an unnamed file.
#[cfg(target_os = "linux")]
#[test]
fn a_secret_being_written_has_no_name() {
    if !seam_available() {
        return;
    }
    let ws = Workspace::new();
    let before = entries(ws.dir.path());
    let child = paused(ws.dir.path(), &["keygen", "-o", "new-key.txt"], false);
    assert_eq!(entries(ws.dir.path()), before);
    kill(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    assert_eq!(entries(ws.dir.path()), before);
}

/// `kseal check` reports a Secret in a temporary file that a killed write
/// (SIGKILL cannot be caught) left in a tree.
#[test]
fn check_reports_plaintext_in_leftover_temporaries() {
    let ws = Workspace::new();
    ws.write("repo/app/.kseal-Xy12Ab", SECRET);
    ws.write("repo/app/.kseal-Zz99Zz", "sealed or anything else\n");
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert!(
        out.contains("repo/app/.kseal-Xy12Ab: document 1 (line 1): plaintext Secret \"db\" in a temporary file left by an interrupted kseal write (delete it)"),
        "{out}"
    );
    assert!(!out.contains("Zz99Zz"), "{out}");

    // Named, as a pre-commit hook passes each staged file: said the same.
    let output = ws
        .cmd()
        .args(["check", "repo/app/.kseal-Xy12Ab"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stdout(&output).contains("plaintext Secret \"db\" in a temporary file left by"),
        "{}",
        stdout(&output)
    );
}

/// The pre-commit hook of the README and of `kseal check --help` passes
/// kseal's leftover temporaries and kustomize's extensionless
/// `Kustomization` files to `kseal check`: the old pattern,
/// `\.(ya?ml|json)$`, did neither. Matched here as pre-commit matches it
/// (Python's `re.search`), for the three alternatives the pattern has.
#[test]
fn the_pre_commit_hook_passes_leftover_temporaries() {
    const PATTERN: &str = r"\.(ya?ml|json)$|(^|/)\.kseal-|(^|/)Kustomization$";
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let help = stdout(&kseal().args(["check", "--help"]).output().unwrap());
    for (what, text) in [
        ("README.md", readme.as_str()),
        ("check --help", help.as_str()),
    ] {
        let patterns: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("files: "))
            .collect();
        assert_eq!(patterns, [PATTERN], "{what}");
    }
    let matches = |path: &str| {
        [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| path.ends_with(ext))
            || path.starts_with(".kseal-")
            || path.contains("/.kseal-")
            || path == "Kustomization"
            || path.ends_with("/Kustomization")
    };
    let ws = Workspace::new();
    ws.write("repo/app/.kseal-Xy12Ab", SECRET);
    ws.write("repo/app/db.yaml", &ws.seal(SECRET, &[]));
    ws.write("repo/README.md", "docs\n");
    ws.write(
        "repo/app/Kustomization",
        "secretGenerator:\n- name: db\n  literals: [password=hunter2]\n",
    );
    let staged: Vec<&str> = [
        "repo/app/.kseal-Xy12Ab",
        "repo/app/db.yaml",
        "repo/README.md",
        "repo/app/Kustomization",
        "repo/app/NotAKustomization",
    ]
    .into_iter()
    .filter(|path| matches(path))
    .collect();
    assert_eq!(
        staged,
        [
            "repo/app/.kseal-Xy12Ab",
            "repo/app/db.yaml",
            "repo/app/Kustomization"
        ]
    );
    let output = ws.cmd().arg("check").args(&staged).output().unwrap();
    assert_exit(&output, 1);
    assert!(
        stdout(&output).contains(
            "repo/app/Kustomization: document 1 (line 1): kustomize secretGenerator \"db\""
        ),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("repo/app/.kseal-Xy12Ab: document 1 (line 1): plaintext Secret \"db\" in a temporary file"),
        "{}",
        stdout(&output)
    );
}
