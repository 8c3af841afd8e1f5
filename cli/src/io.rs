//! Files in and out: inputs named on the command line, and atomic writes
//! that leave nothing readable behind when interrupted. Directory walks
//! are in [`crate::walk`].

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::cleanup::Registry;
use crate::walk::{ManifestPath, TEMPORARY_PREFIX};

/// Where a manifest came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// `None` or `-` mean stdin.
    pub fn from_arg(path: Option<&Path>) -> Self {
        match path {
            None => Source::Stdin,
            Some(path) if path == Path::new("-") => Source::Stdin,
            Some(path) => Source::File(path.to_owned()),
        }
    }

    pub fn display(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(path) => path.display().to_string(),
        }
    }

    /// Reads a manifest in the encodings kubectl reads (its file reader
    /// decodes by byte-order mark): UTF-16LE or UTF-16BE with a BOM, or
    /// UTF-8 (a BOM dropped). kubectl replaces invalid sequences with U+FFFD;
    /// kseal refuses them rather than seal other bytes than were written.
    pub fn read_like_kubectl(&self) -> Result<Zeroizing<String>> {
        let bytes = self.read_bytes()?;
        let utf16 = |body: &[u8], little: bool| -> Result<Zeroizing<String>> {
            if !body.len().is_multiple_of(2) {
                anyhow::bail!("{}: not UTF-16 text (odd length)", self.display());
            }
            let units = body.chunks_exact(2).map(|pair| {
                let pair = [pair[0], pair[1]];
                if little {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            });
            let mut text = Zeroizing::new(String::with_capacity(body.len() * 3 / 2));
            for decoded in char::decode_utf16(units) {
                match decoded {
                    Ok(c) => text.push(c),
                    Err(_) => {
                        anyhow::bail!("{}: not UTF-16 text (unpaired surrogate)", self.display())
                    }
                }
            }
            Ok(text)
        };
        match bytes.as_slice() {
            [0xff, 0xfe, body @ ..] => utf16(body, true),
            [0xfe, 0xff, body @ ..] => utf16(body, false),
            [0xef, 0xbb, 0xbf, body @ ..] => self.utf8(body),
            body => self.utf8(body),
        }
    }

    /// Reads the whole input as UTF-8 into a buffer wiped on drop (it may
    /// hold plaintext).
    pub fn read(&self) -> Result<Zeroizing<String>> {
        let bytes = self.read_bytes()?;
        self.utf8(&bytes)
    }

    fn utf8(&self, bytes: &[u8]) -> Result<Zeroizing<String>> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Zeroizing::new(text.to_owned())),
            Err(err) => anyhow::bail!(
                "{}: not UTF-8 text (byte {})",
                self.display(),
                err.valid_up_to()
            ),
        }
    }

    fn read_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut bytes = Zeroizing::new(Vec::new());
        match self {
            Source::Stdin => {
                io::stdin()
                    .lock()
                    .read_to_end(&mut bytes)
                    .context("cannot read stdin")?;
            }
            Source::File(path) => {
                fs::File::open(path)
                    .and_then(|mut file| file.read_to_end(&mut bytes))
                    .with_context(|| format!("{}: cannot read", path.display()))?;
            }
        }
        Ok(bytes)
    }
}

/// What a command that does not read stdin would leave on it: see
/// [`unread_stdin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreadStdin {
    /// A terminal, `/dev/null`, a socket, a closed stdin, or a file read to
    /// its end: nothing is dropped.
    Nothing,
    /// A regular file with data left (`kseal … < secret.yaml`).
    FileData,
    /// A pipe. Whether data will come cannot be known without waiting for
    /// the writer (which may never close it: a CI runner, a `while read`
    /// loop), so it is neither read nor waited for.
    Pipe,
}

/// What is on stdin, without reading it: a command that builds a Secret
/// from flags alone would silently drop a manifest piped or redirected in
/// (`kubectl create secret … -o yaml | kseal seal --generate …` without
/// `-f -`).
#[cfg(unix)]
pub fn unread_stdin() -> UnreadStdin {
    use std::io::Seek;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let Ok(fd) = io::stdin().as_fd().try_clone_to_owned() else {
        return UnreadStdin::Nothing;
    };
    let mut file = fs::File::from(fd);
    let Ok(meta) = file.metadata() else {
        return UnreadStdin::Nothing;
    };
    let kind = meta.file_type();
    if kind.is_file() {
        // What is left after the current position (a shell loop may be
        // reading the file line by line).
        let left = file
            .stream_position()
            .is_ok_and(|position| meta.len() > position);
        return if left {
            UnreadStdin::FileData
        } else {
            UnreadStdin::Nothing
        };
    }
    if kind.is_fifo() {
        UnreadStdin::Pipe
    } else {
        UnreadStdin::Nothing
    }
}

/// Elsewhere stdin is not looked at.
#[cfg(not(unix))]
pub fn unread_stdin() -> UnreadStdin {
    UnreadStdin::Nothing
}

/// File modes for files kseal creates.
#[derive(Debug, Clone, Copy)]
pub enum Privacy {
    /// Safe to share (SealedSecrets): 0644, or the mode of the file replaced.
    Public,
    /// Plaintext or private keys: 0600.
    Private,
}

/// Writes `contents` to `path` atomically: readers see the old file or the
/// whole new one, and a failure leaves the target as it was. A symlink at
/// `path` is replaced, not written through (see [`write_in_place`] for
/// edits).
///
/// Interrupted, it leaves nothing readable behind. On Linux the contents
/// go into an unnamed file (`O_TMPFILE`) that gets a name only once it is
/// complete: under the target's name when there is no file yet, else under
/// a temporary name for the instant before the rename. Elsewhere, or where
/// the file system has no unnamed files, a named temporary file (mode 0600
/// from its creation) is used. Either way a temporary name is registered
/// with [`crate::cleanup`], which removes it on SIGINT, SIGTERM and SIGHUP;
/// only SIGKILL (or a crash of the system) while a temporary name exists
/// can leave one, which `kseal check` reports when it holds a Secret.
pub fn write_atomic(path: &Path, contents: &[u8], privacy: Privacy) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    crate::cleanup::install()?;
    let mode = file_mode(path, privacy);
    #[cfg(target_os = "linux")]
    if !debug_seam::named_only() && unnamed::write(dir, path, contents, mode)? {
        return Ok(());
    }
    write_named(dir, path, contents, mode)
}

/// Rewrites a manifest file in place (atomically, keeping its mode): a
/// symlink's target is rewritten, so the link stays a link; a target
/// outside the file's tree is refused ([`ManifestPath::edit_target`]).
pub fn write_in_place(file: &ManifestPath, contents: &[u8]) -> Result<()> {
    let target = file.edit_target()?;
    write_atomic(&target, contents, Privacy::Public)
}

/// The mode of a new file: 0600 for secrets; for public files, the mode of
/// the file replaced, else 0644.
fn file_mode(target: &Path, privacy: Privacy) -> u32 {
    match privacy {
        Privacy::Private => 0o600,
        Privacy::Public => existing_mode(target).unwrap_or(0o644),
    }
}

#[cfg(unix)]
fn existing_mode(target: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(target)
        .ok()
        .map(|meta| meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn existing_mode(_target: &Path) -> Option<u32> {
    None
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// The portable way: a named temporary file beside the target, created
/// with mode 0600 (tempfile's default) and registered for removal on
/// signals before any byte is written, then renamed over the target.
fn write_named(dir: &Path, path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut temp = {
        let mut registry = Registry::lock();
        let temp = tempfile::Builder::new()
            .prefix(TEMPORARY_PREFIX)
            .tempfile_in(dir)
            .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
        registry.add(temp.path().to_owned());
        temp
    };
    let written = temp
        .write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))
        .and_then(|()| {
            set_mode(temp.as_file(), mode)
                .with_context(|| format!("{}: cannot set permissions", path.display()))
        });
    if written.is_ok() {
        debug_seam::pause();
    }
    let mut registry = Registry::lock();
    let temp_path = temp.path().to_owned();
    // On error, dropping `temp` removes the file (under the lock).
    let result = written.and_then(|()| {
        temp.persist(path)
            .map(drop)
            .map_err(|err| err.error)
            .with_context(|| format!("{}: cannot replace", path.display()))
    });
    registry.remove(&temp_path);
    result
}

/// Linux: the contents in an unnamed file (`O_TMPFILE`), linked in only
/// once complete. Chosen over a named temporary file removed on signals
/// because nothing at all, SIGKILL and power loss included, can then leave
/// a readable copy of a secret beside the target while it is written.
#[cfg(target_os = "linux")]
mod unnamed {
    use std::fs;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    use anyhow::{Context, Result};
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;

    use crate::cleanup::Registry;
    use crate::walk::TEMPORARY_PREFIX;

    /// Writes `contents` to `path` through an unnamed file in `dir`.
    /// `Ok(false)`: unnamed files are not available here (old kernel, a
    /// file system without them, no `/proc`) and nothing was written; the
    /// caller uses a named temporary file instead.
    pub(super) fn write(dir: &Path, path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
        let Ok(fd) = rustix::fs::openat(
            CWD,
            dir,
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) else {
            return Ok(false);
        };
        let mut file = fs::File::from(fd);
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("{}: cannot write", path.display()))?;
        super::set_mode(&file, mode)
            .with_context(|| format!("{}: cannot set permissions", path.display()))?;
        super::debug_seam::pause();
        // An unnamed file is linked by its /proc path (linkat with
        // AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        let mut registry = Registry::lock();
        match rustix::fs::linkat(CWD, &source, CWD, path, AtFlags::SYMLINK_FOLLOW) {
            // Nothing was there: the file appears complete under its name.
            Ok(()) => return Ok(true),
            Err(Errno::EXIST) => {}
            Err(_) => return Ok(false),
        }
        // Replacing a file: a temporary name for the instant before the
        // rename (rename is what replaces atomically; linkat cannot).
        let linked = tempfile::Builder::new()
            .prefix(TEMPORARY_PREFIX)
            .make_in(dir, |temp| {
                rustix::fs::linkat(CWD, &source, CWD, temp, AtFlags::SYMLINK_FOLLOW)
                    .map_err(std::io::Error::from)
            });
        let Ok(linked) = linked else {
            return Ok(false);
        };
        let temp_path = linked.path().to_owned();
        registry.add(temp_path.clone());
        let result = linked
            .persist(path)
            .map_err(|err| err.error)
            .with_context(|| format!("{}: cannot replace", path.display()));
        registry.remove(&temp_path);
        result.map(|()| true)
    }
}

/// A seam for the tests of interrupted writes, compiled into debug builds
/// only: with `KSEAL_DEBUG_PAUSE_WRITE=FILE`, a write creates FILE once its
/// contents are written, before the result gets its name, and waits there
/// (up to a minute) for the test's signal; `KSEAL_DEBUG_NAMED_TEMPORARY=1`
/// takes the portable named-temporary-file path on Linux too. A signal
/// cannot be sent "in the middle of a write" any other way without a race.
mod debug_seam {
    #[cfg(debug_assertions)]
    pub(super) fn pause() {
        let Some(marker) = std::env::var_os("KSEAL_DEBUG_PAUSE_WRITE") else {
            return;
        };
        if std::fs::write(&marker, b"").is_ok() {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    #[cfg(not(debug_assertions))]
    pub(super) fn pause() {}

    #[cfg(all(debug_assertions, target_os = "linux"))]
    pub(super) fn named_only() -> bool {
        std::env::var_os("KSEAL_DEBUG_NAMED_TEMPORARY").is_some()
    }

    #[cfg(all(not(debug_assertions), target_os = "linux"))]
    pub(super) fn named_only() -> bool {
        false
    }
}

/// Writes to stdout. A closed pipe surfaces as an `io::ErrorKind::BrokenPipe`
/// error, which `main` treats as success.
pub fn write_stdout(contents: &[u8]) -> Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(contents)?;
    stdout.flush()?;
    Ok(())
}

/// The listing of a command whose exit status is a verdict (`check`,
/// `validate`, `inspect --stale`, `pins check`) to stdout. A reader that
/// stops early (`kseal check . | head`) closes the pipe; that is not an
/// error, but unlike for other output it must not end the command as a
/// success either: the caller goes on to return its verdict.
pub fn write_report(contents: &[u8]) -> Result<()> {
    match write_stdout(contents) {
        Err(err) if crate::error::is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

/// Output to a file (atomically; missing parent directories are created)
/// or stdout.
pub fn emit(output: Option<&Path>, contents: &[u8], privacy: Privacy) -> Result<()> {
    match output {
        Some(path) if path != Path::new("-") => {
            // `-o clusters/prod/demo/x.yaml` in a repository where that
            // cluster's directory is new: made, as a sealed file's place.
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
                && !parent.exists()
            {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create directory {}", parent.display()))?;
            }
            write_atomic(path, contents, privacy)
        }
        _ => write_stdout(contents),
    }
}
