//! The release tools, built from their Go modules like the control plane:
//!
//! - `cosign` (`github.com/sigstore/cosign/v2`) signs and verifies blobs
//!   and images;
//! - `registry` (`github.com/distribution/distribution/v3`), the CNCF
//!   distribution registry, serves images on loopback (see
//!   [`crate::registry`]);
//! - `crane` (`github.com/google/go-containerregistry`) pushes an OCI image
//!   layout to a registry and reads it back;
//! - `krew` (`sigs.k8s.io/krew`) installs the kubectl plugin from its
//!   manifest.
//!
//! Their versions are the `tool` lines of `tests/gomod/release/go.mod`.
//! [`ensure()`] builds all four in one `go build` into the kseal cache
//! (`<cache>/bin/release-tools-<hash>/`, the hash over `go.mod` and
//! `go.sum`); a build writes into a temporary sibling directory and renames
//! it into place at the end, so an interrupted build never leaves a
//! half-filled directory (see [`crate::go_build`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::go_build::{self, CachedBuild};

/// The wrapper module's files; the cache directory's name carries a hash
/// over them.
const SOURCES: [&str; 2] = ["go.mod", "go.sum"];

/// The main packages, in `go build` order, with the binary each leaves.
const PACKAGES: [(&str, &str); 4] = [
    ("github.com/sigstore/cosign/v2/cmd/cosign", "cosign"),
    (
        "github.com/distribution/distribution/v3/cmd/registry",
        "registry",
    ),
    ("github.com/google/go-containerregistry/cmd/crane", "crane"),
    ("sigs.k8s.io/krew/cmd/krew", "krew"),
];

/// Version variables set at link time, so `cosign version`, `registry
/// --version`, `crane version` and `krew version` say what they are: the
/// variable and the module whose `go.mod` version it gets.
const VERSION_VARS: [(&str, &str); 4] = [
    (
        "sigs.k8s.io/release-utils/version.gitVersion",
        "github.com/sigstore/cosign/v2",
    ),
    (
        "github.com/distribution/distribution/v3/version.version",
        "github.com/distribution/distribution/v3",
    ),
    (
        "github.com/google/go-containerregistry/cmd/crane/cmd.Version",
        "github.com/google/go-containerregistry",
    ),
    (
        "sigs.k8s.io/krew/internal/version.gitTag",
        "sigs.k8s.io/krew",
    ),
];

/// The built tools.
#[derive(Debug, Clone)]
pub struct ReleaseTools {
    /// `cosign`.
    pub cosign: PathBuf,
    /// `registry`, the CNCF distribution registry.
    pub registry: PathBuf,
    /// `crane`.
    pub crane: PathBuf,
    /// `krew`.
    pub krew: PathBuf,
}

impl ReleaseTools {
    fn in_dir(dir: &Path) -> Self {
        Self {
            cosign: dir.join("cosign"),
            registry: dir.join("registry"),
            crane: dir.join("crane"),
            krew: dir.join("krew"),
        }
    }

    fn all(&self) -> [&Path; 4] {
        [&self.cosign, &self.registry, &self.crane, &self.krew]
    }

    fn complete(&self) -> bool {
        self.all().iter().all(|bin| bin.is_file())
    }
}

/// The wrapper Go module of the tools.
pub fn source_dir() -> PathBuf {
    crate::bins::gomod_dir().join("release")
}

/// Returns the tools, building them first when the cache has none for the
/// current `go.mod` (the first build downloads Go modules and takes several
/// minutes; later calls return at once). Concurrent callers build once (see
/// [`CachedBuild::ensure`]).
pub fn ensure() -> Result<ReleaseTools> {
    let src = source_dir();
    let cached = CachedBuild {
        parent: crate::bins::cache_root()?.join("bin"),
        name: format!("release-tools-{}", go_build::sources_hash(&src, &SOURCES)?),
        // Not bins' lock: that one is held for the long control-plane build.
        lock_file: ".release-tools-build.lock".to_owned(),
        tmp_prefix: ".release-tools-tmp-".to_owned(),
    };
    let dir = cached.ensure(
        |dir| ReleaseTools::in_dir(dir).complete(),
        |tmp| {
            build(&src, tmp)?;
            Ok(tmp.to_owned())
        },
    )?;
    Ok(ReleaseTools::in_dir(&dir))
}

/// The version `go.mod` selects for `module`: its `require` line, in a
/// block or on its own.
fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let mut first = words.next();
        if first == Some("require") {
            first = words.next();
        }
        if first != Some(module) {
            return None;
        }
        words
            .next()
            .filter(|v| v.starts_with('v'))
            .map(str::to_owned)
    })
}

/// Builds the tools into `out` (the binaries and `build-info.txt`; the log
/// of a failed build is in the error).
fn build(src: &Path, out: &Path) -> Result<()> {
    let go_mod_path = src.join("go.mod");
    let go_mod = fs::read_to_string(&go_mod_path)
        .with_context(|| format!("reading {}", go_mod_path.display()))?;
    let mut ldflags = String::from("-s -w");
    let mut versions = String::new();
    for (var, module) in VERSION_VARS {
        let version = required_version(&go_mod, module)
            .with_context(|| format!("{} does not require {module}", go_mod_path.display()))?;
        ldflags += &format!(" -X {var}={version}");
        versions += &format!("{module} {version}\n");
    }

    crate::say(&format!(
        "kseal-testenv: building the release tools (cosign, registry, crane, krew) from {} \
         (the first build downloads Go modules and takes several minutes)",
        src.display()
    ));
    let log_path = out.join("build.log");
    let mut out_dir = out.as_os_str().to_owned();
    out_dir.push("/");
    let started = Instant::now();
    go_build::run(
        "the release tools",
        &log_path,
        Command::new("go")
            .current_dir(src)
            .args(["build", "-mod=readonly", "-trimpath"])
            .arg(format!("-ldflags={ldflags}"))
            .arg("-o")
            .arg(out_dir)
            .args(PACKAGES.iter().map(|(package, _)| package)),
    )?;
    let elapsed = started.elapsed();
    for (_, bin) in PACKAGES {
        ensure!(
            out.join(bin).is_file(),
            "go build succeeded but left no {}",
            out.join(bin).display()
        );
    }
    crate::say(&format!(
        "kseal-testenv: built the release tools in {:.1}s",
        elapsed.as_secs_f64()
    ));
    fs::write(
        out.join("build-info.txt"),
        format!("{versions}build: {:.1}s\n", elapsed.as_secs_f64()),
    )
    .with_context(|| format!("writing {}", out.join("build-info.txt").display()))?;
    let _ = fs::remove_file(&log_path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_versions_are_read_from_go_mod() {
        let go_mod = "module m\n\ngo 1.26.0\n\nrequire github.com/a/b v1.2.3\n\n\
                      require (\n\tgithub.com/c/d v0.4.0 // indirect\n\tgithub.com/c/d/v2 v2.0.0\n)\n\n\
                      tool github.com/c/d/cmd/x\n";
        assert_eq!(
            required_version(go_mod, "github.com/a/b").as_deref(),
            Some("v1.2.3")
        );
        assert_eq!(
            required_version(go_mod, "github.com/c/d").as_deref(),
            Some("v0.4.0")
        );
        assert_eq!(
            required_version(go_mod, "github.com/c/d/v2").as_deref(),
            Some("v2.0.0")
        );
        assert_eq!(required_version(go_mod, "github.com/c/d/cmd/x"), None);
        assert_eq!(required_version(go_mod, "github.com/e/f"), None);
    }

    #[test]
    fn the_wrapper_module_pins_every_tool() {
        let go_mod = fs::read_to_string(source_dir().join("go.mod")).unwrap_or_default();
        for (_, module) in VERSION_VARS {
            assert!(
                required_version(&go_mod, module).is_some(),
                "tests/gomod/release/go.mod requires {module}"
            );
        }
        for (package, _) in PACKAGES {
            assert!(
                go_mod
                    .lines()
                    .any(|l| l.trim() == package || l.trim() == format!("tool {package}")),
                "tests/gomod/release/go.mod has a tool line for {package}"
            );
        }
    }
}
