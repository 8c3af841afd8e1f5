//! Build script of the `kseal` and `kseal-controller` binaries (both
//! Cargo.toml files point `build` here): records the git commit for
//! `--version` (KSEAL_GIT_COMMIT):
//! `git rev-parse --short=12 HEAD`, "unknown" without git (e.g. a source
//! tarball), with "-dirty" never added (builds must be reproducible from the
//! commit alone).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KSEAL_GIT_COMMIT");
    let commit = std::env::var("KSEAL_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and
    // packed refs (where a branch lives after `git gc`).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
                .map(PathBuf::from)
                .unwrap_or_else(|| git_dir.clone());
            // Only files that exist: a missing one would rerun this every build.
            for path in [common.join(reference), common.join("packed-refs")] {
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }
    println!("cargo:rustc-env=KSEAL_GIT_COMMIT={commit}");
}
