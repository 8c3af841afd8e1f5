//! Build script of the `kseal` and `kseal-controller` binaries (both
//! Cargo.toml files point `build` here): records the git commit for
//! `--version` (KSEAL_GIT_COMMIT):
//! `git rev-parse --short=12 HEAD`, "unknown" without git (e.g. a source
//! tarball), with "-dirty" never added (builds must be reproducible from the
//! commit alone).

use std::path::{Component, Path, PathBuf};
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

/// `path` relative to the package directory, when both are absolute: Cargo
/// reads a relative `rerun-if-changed` path against the package being
/// built, so a second checkout sharing the target directory (where Cargo
/// reuses this script's output: the metadata hash of a workspace member does
/// not depend on where it is) watches its own `.git`, not the first's.
fn watched(path: &Path) -> PathBuf {
    let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return path.to_path_buf();
    };
    let from: Vec<Component> = package.components().collect();
    let to: Vec<Component> = path.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component.as_os_str());
    }
    relative
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
        println!(
            "cargo:rerun-if-changed={}",
            watched(&git_dir.join("HEAD")).display()
        );
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
                .map(PathBuf::from)
                .unwrap_or_else(|| git_dir.clone());
            // Only files that exist: a missing one would rerun this every build.
            for path in [common.join(reference), common.join("packed-refs")] {
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", watched(&path).display());
                }
            }
        }
    }
    println!("cargo:rustc-env=KSEAL_GIT_COMMIT={commit}");
}
