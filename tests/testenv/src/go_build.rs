//! Go programs built once into the kseal cache (`<cache>/bin`, see
//! [`crate::bins::cache_root`]) and reused by every later test process: the
//! upstream binaries ([`crate::bins`]), the health checker
//! ([`crate::health`]) and the release tools ([`crate::release_tools`]).
//!
//! A [`CachedBuild`] names one output (a file or a directory) whose name
//! carries its cache key (pinned versions, or a [`sources_hash`]).
//! [`CachedBuild::ensure`] returns it at once when it is there; otherwise
//! it builds it under a lock file, into a temporary sibling directory, and
//! renames the result into place, so:
//!
//! - concurrent callers (two test processes, or two threads: the lock is an
//!   `flock` on a file opened per call, which excludes threads too) build
//!   once, the others wait and take the result;
//! - an interrupted build never leaves a half-filled output, and its
//!   temporary directory is removed by the next build under the same lock.
//!
//! [`run`] runs one `go` command of such a build, its output in a log file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

/// One output in the cache, built once and then reused.
///
/// Every path is in [`CachedBuild::parent`]: the output
/// `<parent>/<name>`, the lock file `<parent>/<lock_file>` and the
/// temporary directories `<parent>/<tmp_prefix><name>-<pid>`. Outputs that
/// share a `parent` need their own `lock_file` and a `tmp_prefix` no other
/// one's starts with: a build removes every entry starting with its prefix
/// (leftovers of interrupted builds), which is safe only because whoever
/// made them held the same lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBuild {
    /// The directory holding the output, its lock file and its temporary
    /// directories (created when missing), e.g. `~/.cache/kseal/bin`.
    pub parent: PathBuf,
    /// The output's file or directory name in `parent`; it carries the cache
    /// key, e.g. `health-6897edaaad4ec0ae`.
    pub name: String,
    /// The lock file's name in `parent`, e.g. `.health-build.lock`.
    pub lock_file: String,
    /// The start of the temporary directories' names, e.g. `.health-tmp-`.
    pub tmp_prefix: String,
}

impl CachedBuild {
    /// `<parent>/<name>`: where the output is (or will be once built).
    pub fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }

    /// Returns [`CachedBuild::path`] once `complete` holds for it, building
    /// it first if not.
    ///
    /// `complete` tells whether the output at the given path is whole (e.g.
    /// every binary of a directory is there). `build` gets a new empty
    /// temporary directory in `parent` and returns the path of what it
    /// built: the directory itself or a file or directory inside it. That
    /// path is renamed to [`CachedBuild::path`] (replacing an incomplete
    /// output, e.g. a binary deleted by hand), and the temporary directory
    /// is removed, also when `build` fails or panics.
    ///
    /// Blocks while another caller builds the same output (minutes, for a
    /// cold Go cache), then returns its result without building again.
    /// Errors when `parent` or the lock cannot be created, when `build`
    /// fails (its error, unchanged), when the rename fails, or when the
    /// renamed output is still not `complete`.
    pub fn ensure(
        &self,
        complete: impl Fn(&Path) -> bool,
        build: impl FnOnce(&Path) -> Result<PathBuf>,
    ) -> Result<PathBuf> {
        let path = self.path();
        if complete(&path) {
            return Ok(path);
        }
        fs::create_dir_all(&self.parent)
            .with_context(|| format!("creating {}", self.parent.display()))?;

        // Serialize with other builders; one may finish while we wait.
        let lock_path = self.parent.join(&self.lock_file);
        let _lock = lock(&lock_path)?;
        if complete(&path) {
            return Ok(path);
        }

        self.remove_leftovers()?;
        let tmp = RemoveOnDrop(self.parent.join(format!(
            "{}{}-{}",
            self.tmp_prefix,
            self.name,
            std::process::id()
        )));
        fs::create_dir_all(&tmp.0).with_context(|| format!("creating {}", tmp.0.display()))?;
        let built = build(&tmp.0)?;
        ensure!(
            built.starts_with(&tmp.0),
            "the build of {} left {} outside its directory {}",
            self.name,
            built.display(),
            tmp.0.display()
        );
        remove_any(&path)?;
        fs::rename(&built, &path)
            .with_context(|| format!("renaming {} to {}", built.display(), path.display()))?;
        drop(tmp);
        ensure!(
            complete(&path),
            "the build finished but {} is incomplete",
            path.display()
        );
        Ok(path)
    }

    /// Removes the temporary directories of interrupted builds (under the
    /// lock, so none is in use).
    fn remove_leftovers(&self) -> Result<()> {
        let entries = fs::read_dir(&self.parent)
            .with_context(|| format!("reading {}", self.parent.display()))?;
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&self.tmp_prefix)
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

/// Takes an exclusive `flock` on `path` (created when missing, never
/// truncated: it may be a file someone else made), blocking until it is
/// free, and saying so on stderr when it has to wait (a cold build behind
/// it can take minutes); released when the returned file is dropped. Every
/// call opens the file anew, so threads of one process exclude each other
/// too.
pub fn lock(path: &Path) -> Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(fs::TryLockError::WouldBlock) => crate::say(&format!(
            "kseal-testenv: waiting for {} (another build holds it)",
            path.display()
        )),
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// Removes a directory tree when dropped (a build's temporary directory,
/// also when the build panics). Gone already (renamed into place): nothing.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes the file or directory at `path`, if any.
fn remove_any(path: &Path) -> Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    };
    removed.with_context(|| format!("removing {}", path.display()))
}

/// A short SHA-256 (16 hex digits) over the files `names` of `src`, each
/// with its name and length: the cache key of a program built from them.
/// Errors when a file cannot be read.
pub fn sources_hash(src: &Path, names: &[&str]) -> Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for name in names {
        let path = src.join(name);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `go` command `cmd` with the local toolchain (`GOTOOLCHAIN=local`:
/// never a download) and without cgo (static binaries), no stdin, and its
/// output appended to the file `log`. `what` names what it builds in
/// errors. Errors when `go` cannot be started (not installed) or fails;
/// then the error holds the last 40 lines of `log`.
pub fn run(what: &str, log: &Path, cmd: &mut Command) -> Result<()> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("running `go` to build {what}: is Go installed and on PATH?"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        bail!(
            "building {what} failed ({status}):\n{}",
            crate::process::tail(&text, 40)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn entry(parent: &Path) -> CachedBuild {
        CachedBuild {
            parent: parent.join("bin"),
            name: "thing-0123".to_owned(),
            lock_file: ".thing-build.lock".to_owned(),
            tmp_prefix: ".thing-tmp-".to_owned(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn builds_a_directory_once_and_cleans_up() {
        let root = tempfile::tempdir().unwrap();
        let entry = entry(root.path());
        // A crashed earlier build's directory, and another output's.
        fs::create_dir_all(entry.parent.join(".thing-tmp-thing-0123-1/sub")).unwrap();
        fs::create_dir_all(entry.parent.join(".other-tmp-1")).unwrap();
        let complete = |p: &Path| p.join("a").is_file();
        let out = entry
            .ensure(complete, |tmp| {
                fs::write(tmp.join("a"), "a")?;
                Ok(tmp.to_owned())
            })
            .unwrap();
        assert_eq!(out, entry.path());
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "a");
        assert_eq!(
            names(&entry.parent),
            [".other-tmp-1", ".thing-build.lock", "thing-0123"]
        );
        // Complete now: not built again.
        let again = entry.ensure(complete, |_| panic!("built twice")).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn moves_a_file_into_place_and_replaces_an_incomplete_output() {
        let root = tempfile::tempdir().unwrap();
        let entry = entry(root.path());
        fs::create_dir_all(entry.path()).unwrap();
        let out = entry
            .ensure(Path::is_file, |tmp| {
                fs::write(tmp.join("log"), "log")?;
                fs::write(tmp.join("bin"), "bin")?;
                Ok(tmp.join("bin"))
            })
            .unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), "bin");
        assert_eq!(names(&entry.parent), [".thing-build.lock", "thing-0123"]);
    }

    #[test]
    fn a_failed_build_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let entry = entry(root.path());
        let err = entry
            .ensure(Path::is_file, |tmp| {
                fs::write(tmp.join("half"), "")?;
                bail!("no go")
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "no go");
        assert_eq!(names(&entry.parent), [".thing-build.lock"]);
        let err = entry
            .ensure(Path::is_file, |tmp| Ok(tmp.to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("incomplete"), "{err:#}");
    }

    #[test]
    fn concurrent_callers_build_once() {
        let root = tempfile::tempdir().unwrap();
        let entry = entry(root.path());
        let builds = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    entry
                        .ensure(Path::is_file, |tmp| {
                            builds.fetch_add(1, Ordering::SeqCst);
                            // Long enough for the others to queue on the lock.
                            std::thread::sleep(std::time::Duration::from_millis(200));
                            fs::write(tmp.join("bin"), "bin")?;
                            Ok(tmp.join("bin"))
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_held_lock_makes_the_next_caller_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".x.lock");
        fs::write(&path, "kept").unwrap();
        let held = lock(&path).unwrap();
        let got = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let file = lock(&path).unwrap();
                got.store(true, Ordering::SeqCst);
                file
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(!got.load(Ordering::SeqCst), "took a held lock");
            drop(held);
            drop(waiter.join().unwrap());
        });
        assert!(got.load(Ordering::SeqCst));
        // Someone else's file: locked, never truncated.
        assert_eq!(fs::read_to_string(&path).unwrap(), "kept");
    }

    #[test]
    fn sources_hash_is_stable() {
        // The cache directories on disk (CI's cache too) are named by it: a
        // change of the scheme rebuilds everything. The value: SHA-256 over
        // each file's name, length (u64 LE) and bytes; 8 bytes in hex.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("go.mod"), "module m\n").unwrap();
        fs::write(dir.path().join("go.sum"), "").unwrap();
        assert_eq!(
            sources_hash(dir.path(), &["go.mod", "go.sum"]).unwrap(),
            "b9eef5cd14649f5b"
        );
    }
}
