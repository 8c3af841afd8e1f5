//! Bitnami sealed-secrets, the tool kseal replaces, built from its Go
//! module at one pinned version: `kubeseal` for the migration tests
//! (`cli/tests/migrate.rs`), and its controller and `kubeseal` for the
//! side-by-side benchmark (`cargo xtask bench-e2e --compare bitnami`).
//! Each is cached like the other Go programs ([`CachedBuild`]) in
//! `<cache>/bin/<name>-<version>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::go_build::{self, CachedBuild};

/// The pinned release of sealed-secrets.
pub const VERSION: &str = "v0.36.6";
/// Its Go module.
pub const MODULE: &str = "github.com/bitnami-labs/sealed-secrets";

/// The path of `kubeseal`, built on first use (a minute or two with a cold
/// Go module cache). Errors when Go is missing or the build fails (with the
/// tail of its log).
pub fn kubeseal() -> Result<PathBuf> {
    build("kubeseal", "kubeseal", "kubeseal")
}

/// The path of the sealed-secrets controller binary, built on first use.
pub fn controller() -> Result<PathBuf> {
    build("controller", "sealed-secrets-controller", "controller")
}

/// `go install MODULE/cmd/<cmd>@VERSION` into `<cache>/bin/<dir>-VERSION/`,
/// once; the binary it makes is `binary`.
fn build(cmd: &str, dir: &str, binary: &str) -> Result<PathBuf> {
    let parent = crate::bins::cache_root()?.join("bin");
    let cached = CachedBuild {
        name: format!("{dir}-{VERSION}"),
        lock_file: format!(".{dir}-build.lock"),
        tmp_prefix: format!(".{dir}-tmp-"),
        parent: parent.clone(),
    };
    let log = parent.join(format!(".{dir}-build.log"));
    let package = format!("{MODULE}/cmd/{cmd}@{VERSION}");
    let built = cached.ensure(
        |path: &Path| path.join(binary).is_file(),
        |tmp| {
            crate::say(&format!(
                "kseal-testenv: building {package} (once; cached in {})",
                cached.path().display()
            ));
            go_build::run(
                &package,
                &log,
                Command::new("go")
                    .args(["install", "-trimpath", "-ldflags=-s -w", &package])
                    .env("GOBIN", tmp),
            )?;
            Ok(tmp.to_path_buf())
        },
    )?;
    Ok(built.join(binary))
}
