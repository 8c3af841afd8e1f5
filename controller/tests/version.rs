//! `kseal-controller --version` names the release and the git commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn version_names_the_release_and_the_commit() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kseal-controller"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let version = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!(
            "kseal-controller {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            env!("KSEAL_GIT_COMMIT")
        )
    );
    let commit = env!("KSEAL_GIT_COMMIT");
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
}
