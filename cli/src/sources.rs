//! `--from-literal`, `--from-file` and `--from-env-file`, read exactly as
//! `kubectl create secret generic` (v1.36) reads them, so a Secret built here
//! holds the bytes kubectl would have stored, or is refused where kubectl
//! refuses (`cli/tests/kubectl_parity.rs` compares the two).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kseal_shared::manifest::PlainSecret;
use kseal_shared::names::{check_data_key, check_env_var_name};
use kseal_shared::secret::SecretBytes;
use zeroize::Zeroizing;

/// Splits a `--from-file`/`--from-env-file` argument the way kubectl's flag
/// library does (pflag's string slices): one CSV record, so `a,b` is two
/// sources and `"a,b"` one.
pub fn split_csv(arg: &str) -> Result<Vec<String>> {
    if arg.is_empty() {
        return Ok(Vec::new());
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = arg.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => {
                // A quoted field: up to the closing quote, `""` is a quote.
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => bail!("{arg:?}: a quoted field is not closed"),
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\n') | Some('\r') => {}
                    Some(_) => bail!("{arg:?}: extraneous '\"' in a field"),
                }
                at_start = false;
            }
            '"' => bail!("{arg:?}: bare '\"' in a non-quoted field"),
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            // The record ends at a line break; what follows is not read.
            '\n' => break,
            '\r' if chars.peek() == Some(&'\n') => break,
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    fields.push(field);
    Ok(fields)
}

/// `--from-literal KEY=VALUE`: split at the first `=`; the key may not be
/// empty, the value may.
pub fn add_literal(secret: &mut PlainSecret, literal: &str) -> Result<()> {
    let Some((key, value)) = literal.split_once('=').filter(|(key, _)| !key.is_empty()) else {
        // Nothing of the argument is shown: without '=' it may be a value
        // pasted on its own, and values never reach a terminal or a CI log.
        bail!(
            "--from-literal expects KEY=VALUE, got {} (argument not shown: it may be a value)",
            if literal.starts_with('=') {
                "an empty key"
            } else {
                "no '='"
            }
        );
    };
    add(
        secret,
        key,
        SecretBytes::from(value.as_bytes()),
        "--from-literal",
    )
}

/// Go's `path.Base` of a slash path: the last element, trailing slashes
/// ignored; `/` for a path of slashes.
fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// `--from-file [KEY=]PATH`: one file under KEY (default: its name), or every
/// regular file of a directory (not recursive, symlinks skipped) under its
/// own name.
pub fn add_file_source(secret: &mut PlainSecret, source: &str) -> Result<()> {
    let separators = source.matches('=').count();
    let (key, path) = match separators {
        0 => (base_name(source), PathBuf::from(source)),
        1 if source.starts_with('=') => bail!("--from-file {source}: the key name is missing"),
        1 if source.ends_with('=') => bail!("--from-file {source}: the file path is missing"),
        1 => {
            let (key, path) = source.split_once('=').unwrap_or_default();
            (key.to_owned(), PathBuf::from(path))
        }
        _ => bail!("--from-file {source}: key names or file paths cannot contain '='"),
    };
    let meta =
        std::fs::metadata(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    if !meta.is_dir() {
        return add_file(secret, &key, &path);
    }
    if separators > 0 {
        bail!("--from-file {source}: cannot give a key name for a directory");
    }
    let mut entries = Vec::new();
    for entry in
        std::fs::read_dir(&path).with_context(|| format!("{}: cannot list", path.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", path.display()))?;
        let file_type = entry
            .file_type()
            .with_context(|| format!("{}: cannot read", entry.path().display()))?;
        if file_type.is_file() {
            entries.push(entry);
        } else {
            // As kubectl: only the directory's own regular files; said so,
            // so that a value that is not sealed is not missed.
            eprintln!(
                "kseal: {}: skipped: not a regular file (--from-file DIR takes only the regular files directly in DIR, as kubectl does; symlinks and subdirectories are not followed)",
                entry.path().display()
            );
        }
    }
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let key = name.to_str().ok_or_else(|| {
            anyhow!(
                "{}: the file name is not valid as a data key",
                entry.path().display()
            )
        })?;
        add_file(secret, key, &entry.path())?;
    }
    Ok(())
}

fn add_file(secret: &mut PlainSecret, key: &str, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    add(
        secret,
        key,
        SecretBytes::new(bytes),
        &format!("--from-file {}", path.display()),
    )
}

/// Longest line kubectl's line scanner reads (`bufio.MaxScanTokenSize`);
/// kubectl silently stops at a longer line, kseal refuses it.
const MAX_ENV_LINE: usize = 64 * 1024;

/// `--from-env-file PATH`, by kubectl's rules: lines split at `\n` (a `\r`
/// before it dropped); a UTF-8 BOM dropped from the first line; leading white
/// space trimmed; blank lines and lines starting with `#` skipped; `KEY=VALUE`
/// split at the first `=`, the value kept exactly (no trimming, no quotes
/// removed); a line without `=` takes the value of the environment variable
/// KEY (empty when unset); keys must be environment variable names.
pub fn add_env_file(secret: &mut PlainSecret, path: &Path) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.is_dir() {
        bail!("{}: an env file cannot be a directory", path.display());
    }
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?,
    );
    for (index, line) in parse_env_lines(&bytes).enumerate() {
        let at = || format!("{} line {}", path.display(), index + 1);
        let line = line.map_err(|message| anyhow!("{}: {message}", at()))?;
        let Some((key, value)) = line else { continue };
        check_env_var_name(key).map_err(|err| match value {
            Some(_) => anyhow!("{}: {err}", at()),
            // A whole line without `=` may be a value pasted by mistake:
            // the rule is said, the line is not.
            None => anyhow!(
                "{}: a line without '=' names an environment variable to read, and this one is not a name ([-._a-zA-Z][-._a-zA-Z0-9]*; not shown: it may be a value)",
                at()
            ),
        })?;
        let value = match value {
            Some(value) => SecretBytes::from(value.as_bytes()),
            None => SecretBytes::new(
                std::env::var_os(key)
                    .map(|value| value.into_encoded_bytes())
                    .unwrap_or_default(),
            ),
        };
        add(secret, key, value, &at())?;
    }
    Ok(())
}

/// One parsed env-file line: `None` for a blank or comment line, else the
/// key and, when the line has `=`, the value.
type EnvLine<'a> = Option<(&'a str, Option<&'a str>)>;

fn parse_env_lines(bytes: &[u8]) -> impl Iterator<Item = Result<EnvLine<'_>, String>> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let lines = (!bytes.is_empty()).then(|| body.split(|&b| b == b'\n'));
    lines
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() >= MAX_ENV_LINE {
                return Err(format!(
                    "the line is longer than the {MAX_ENV_LINE} bytes kubectl reads"
                ));
            }
            let line = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_owned())?;
            let line = if index == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                return Ok(None);
            }
            Ok(Some(match line.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (line, None),
            }))
        })
}

/// Adds a value under a new key: the data key rule, then no duplicates.
/// `--generate KEY=SPEC`: a generated value under KEY (one source per key).
pub fn add_generated(secret: &mut PlainSecret, key: &str, value: SecretBytes) -> Result<()> {
    add(secret, key, value, "--generate")
}

fn add(secret: &mut PlainSecret, key: &str, value: SecretBytes, origin: &str) -> Result<()> {
    check_data_key(key).map_err(|err| anyhow!("{origin}: {err}"))?;
    if secret.data.contains_key(key) {
        bail!("{origin}: key {key:?} given twice");
    }
    secret
        .insert(key, value)
        .map_err(|message| anyhow!("{origin}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_like_pflag() {
        let table: &[(&str, Option<&[&str]>)] = &[
            ("a", Some(&["a"])),
            ("a,b", Some(&["a", "b"])),
            ("k=a,b", Some(&["k=a", "b"])),
            ("a,", Some(&["a", ""])),
            ("\"a,b\"", Some(&["a,b"])),
            ("\"a\"\"b\",c", Some(&["a\"b", "c"])),
            (" a", Some(&[" a"])),
            ("a\"b", None),
            ("\"a", None),
            ("\"a\"b", None),
        ];
        for (arg, expected) in table {
            let got = split_csv(arg).ok();
            let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, expected, "{arg:?}");
        }
        assert_eq!(split_csv("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn base_names_like_go() {
        for (path, base) in [
            ("a", "a"),
            ("d/a.txt", "a.txt"),
            ("d/", "d"),
            ("/", "/"),
            (".", "."),
            ("..", ".."),
        ] {
            assert_eq!(base_name(path), base, "{path}");
        }
    }

    #[test]
    fn env_lines() {
        let text = "\u{feff}A=1\r\n  # c\n\n\tB = 2 \nC\nD=\"q\"\r\nE==x\n\u{feff}F=1";
        let lines: Vec<_> = parse_env_lines(text.as_bytes())
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            lines,
            vec![
                Some(("A", Some("1"))),
                None,
                None,
                Some(("B ", Some(" 2 "))),
                Some(("C", None)),
                Some(("D", Some("\"q\""))),
                Some(("E", Some("=x"))),
                Some(("\u{feff}F", Some("1"))),
            ]
        );
        assert!(parse_env_lines(b"A=\xff\n").next().unwrap().is_err());
        assert_eq!(parse_env_lines(b"").count(), 0);
    }
}
