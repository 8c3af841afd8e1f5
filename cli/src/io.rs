//! Files in and out: inputs named on the command line, atomic writes, and
//! the manifest files of a directory tree.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use zeroize::Zeroizing;

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

/// File modes for files kseal creates.
#[derive(Debug, Clone, Copy)]
pub enum Privacy {
    /// Safe to share (SealedSecrets): 0644, or the mode of the file replaced.
    Public,
    /// Plaintext or private keys: 0600.
    Private,
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over the target. A failure leaves the
/// target as it was.
pub fn write_atomic(path: &Path, contents: &[u8], privacy: Privacy) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".kseal-")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    set_mode(temp.path(), path, privacy)?;
    temp.persist(path)
        .map_err(|err| err.error)
        .with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(temp: &Path, target: &Path, privacy: Privacy) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match privacy {
        Privacy::Private => 0o600,
        Privacy::Public => fs::metadata(target)
            .map(|meta| meta.permissions().mode() & 0o7777)
            .unwrap_or(0o644),
    };
    fs::set_permissions(temp, fs::Permissions::from_mode(mode))
        .with_context(|| format!("{}: cannot set permissions", temp.display()))
}

#[cfg(not(unix))]
fn set_mode(_temp: &Path, _target: &Path, _privacy: Privacy) -> Result<()> {
    Ok(())
}

/// Writes to stdout. A closed pipe surfaces as an `io::ErrorKind::BrokenPipe`
/// error, which `main` treats as success.
/// Writes to stdout; see [`emit`].
pub fn write_stdout(contents: &[u8]) -> Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(contents)?;
    stdout.flush()?;
    Ok(())
}

/// Output to a file (atomically) or stdout.
pub fn emit(output: Option<&Path>, contents: &[u8], privacy: Privacy) -> Result<()> {
    match output {
        Some(path) if path != Path::new("-") => write_atomic(path, contents, privacy),
        _ => write_stdout(contents),
    }
}

/// Whether a file name looks like a manifest.
pub fn is_manifest_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Expands paths into manifest files: a file is taken as is; a directory is
/// searched recursively for `*.yaml`, `*.yml` and `*.json`, skipping hidden
/// directories (`.git`, …). Sorted, so output is deterministic.
/// Whether a file that does not parse may be skipped: it was found by
/// walking a directory (not named on the command line) and mentions no
/// kseal object (`kseal.dev/`), like a Helm template next to SealedSecrets.
/// A broken SealedSecret is never skipped.
pub fn skippable(named: &[PathBuf], path: &Path, text: &str) -> bool {
    !named.iter().any(|named| named == path) && !text.contains("kseal.dev/")
}

pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta =
            fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        let walker = walkdir::WalkDir::new(path)
            .follow_links(false)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()));
        for entry in walker {
            let entry = entry.with_context(|| format!("{}: cannot walk", path.display()))?;
            if entry.file_type().is_file() && is_manifest_name(entry.path()) {
                found.push(entry.into_path());
            }
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|name| name.starts_with('.') && name != "." && name != "..")
}
