//! `.kseal.yaml`: repository rules that choose recipients and scope by path,
//! in the spirit of SOPS creation rules. Found by searching upward from the
//! working directory; the first rule whose `path_regex` matches wins.
//!
//! ```yaml
//! creation_rules:
//!   - path_regex: ^clusters/prod/
//!     recipients: [age1…]
//!     scope: strict
//!   - path_regex: ^clusters/staging/
//!     recipients_file: keys/staging.txt
//!     max_age: 90d          # kseal check --rotation fails older values;
//!                           # kseal seal writes it as spec.maxAge
//! ```

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::binding::Scope;
use crate::rotation::MaxAge;
use crate::x25519::{Recipient, parse_recipients_file};

/// The file name searched for.
pub const CONFIG_FILE_NAME: &str = ".kseal.yaml";

/// Why a `.kseal.yaml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file breaks a rule; the message names the rule and where.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong (never a quote of a recipients file).
        message: String,
    },
    /// A file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    creation_rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    path_regex: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    recipients_file: Option<PathBuf>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
}

/// One creation rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its position in `creation_rules` (0-based).
    pub index: usize,
    /// Matched against the path relative to the config file's directory,
    /// with `/` separators. No regex matches every path.
    pub path_regex: Option<Regex>,
    /// The recipients to seal to (from `recipients` and `recipients_file`).
    pub recipients: Vec<Recipient>,
    /// The scope to seal with, when the rule sets one.
    pub scope: Option<Scope>,
    /// How old the rule's values may get (`max_age: 90d`), checked by
    /// `kseal check --rotation` and written by `kseal seal` as
    /// `spec.maxAge`, when the rule sets it.
    pub max_age: Option<MaxAge>,
}

/// A loaded `.kseal.yaml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself.
    pub path: PathBuf,
    /// The rules, in file order (the first match wins).
    pub rules: Vec<Rule>,
}

impl Config {
    /// Searches `start` and its ancestors for `.kseal.yaml`, up to the
    /// repository root (the first directory holding `.git`): a config above
    /// the repository is not the repository's (a CI job's workspace, another
    /// user's directory). Outside any repository only `start` itself counts:
    /// a config planted in a shared parent (`/tmp/.kseal.yaml`) must not add
    /// its recipients to what a user seals below it.
    pub fn find(start: &Path) -> Result<Option<Self>, ConfigError> {
        let root = start
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(start);
        for dir in start.ancestors() {
            let candidate = dir.join(CONFIG_FILE_NAME);
            if candidate.is_file() {
                return Self::load(&candidate).map(Some);
            }
            if dir == root {
                break;
            }
        }
        Ok(None)
    }

    /// Reads and parses the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses config text; `path` locates the file (recipient files are
    /// relative to its directory).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig {
                creation_rules: Vec::new(),
            }
        } else {
            serde_saphyr::from_str(text).map_err(|err| invalid(first_line(&err.to_string())))?
        };
        let base = directory_of(path);
        let mut rules = Vec::new();
        for (index, rule) in raw.creation_rules.into_iter().enumerate() {
            let at = |message: String| invalid(format!("creation_rules[{index}]: {message}"));
            let path_regex = rule
                .path_regex
                .map(|pattern| Regex::new(&pattern).map_err(|err| at(format!("path_regex: {err}"))))
                .transpose()?;
            let mut recipients = rule
                .recipients
                .iter()
                .map(|r| r.parse::<Recipient>().map_err(|err| at(err.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(file) = rule.recipients_file {
                let file = contained_file(base, Path::new(&file))
                    .map_err(|message| at(format!("recipients_file {file:?}: {message}")))?;
                let text = std::fs::read_to_string(&file)
                    .map_err(|err| at(format!("recipients_file {}: {err}", file.display())))?;
                // Errors name the file and line, never its content: the file
                // could be anything (a pull request chooses it).
                recipients.extend(
                    parse_recipients_file(&text)
                        .map_err(|err| at(format!("{}: {err}", file.display())))?,
                );
            }
            if recipients.is_empty() {
                return Err(at(
                    "no recipients (set recipients or recipients_file)".into()
                ));
            }
            let scope = rule
                .scope
                .map(|s| s.parse::<Scope>().map_err(|err| at(err.to_string())))
                .transpose()?;
            let max_age = rule
                .max_age
                .map(|s| {
                    s.parse::<MaxAge>()
                        .map_err(|err| at(format!("max_age: {err}")))
                })
                .transpose()?;
            rules.push(Rule {
                index,
                path_regex,
                recipients,
                scope,
                max_age,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            rules,
        })
    }

    /// The directory rule paths are relative to.
    pub fn root(&self) -> &Path {
        directory_of(&self.path)
    }

    /// The first rule matching `path` (absolute, or relative to the config's
    /// directory). `None` as path matches only rules without `path_regex`.
    pub fn rule_for(&self, path: Option<&Path>) -> Option<&Rule> {
        let relative = path.map(|path| self.relative(path));
        self.rules
            .iter()
            .find(|rule| match (&rule.path_regex, &relative) {
                (None, _) => true,
                (Some(regex), Some(relative)) => regex.is_match(relative),
                (Some(_), None) => false,
            })
    }

    fn relative(&self, path: &Path) -> String {
        let relative = path.strip_prefix(self.root()).unwrap_or(path);
        relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The directory a file is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `relative` resolved against `base`, which it must stay inside once
/// symbolic links are followed: a config file chooses it, and the config
/// may come from anyone who can open a pull request.
fn contained_file(base: &Path, relative: &Path) -> Result<PathBuf, &'static str> {
    if relative.is_absolute() {
        return Err("must be a path relative to the config file's directory");
    }
    let base = base
        .canonicalize()
        .map_err(|_| "the config file's directory cannot be resolved")?;
    let resolved = base
        .join(relative)
        .canonicalize()
        .map_err(|_| "cannot be read")?;
    if !resolved.starts_with(&base) {
        return Err("must stay inside the config file's directory tree");
    }
    Ok(resolved)
}

/// The first line of a parser's message, without its own `error: ` prefix
/// (the CLI adds one).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x25519::Identity;

    #[test]
    fn first_matching_rule_wins() {
        let prod = Identity::generate();
        let any = Identity::generate();
        let text = format!(
            "creation_rules:\n  - path_regex: ^prod/\n    recipients: [{}]\n    scope: namespace-wide\n  - recipients: [\"{}\"]\n",
            prod.recipient(),
            any.recipient()
        );
        let config = Config::parse(Path::new("/repo/.kseal.yaml"), &text).unwrap();
        let rule = config
            .rule_for(Some(Path::new("/repo/prod/db.yaml")))
            .unwrap();
        assert_eq!(rule.recipients[0].key_id(), prod.key_id());
        assert_eq!(rule.scope, Some(Scope::NamespaceWide));
        let rule = config
            .rule_for(Some(Path::new("/repo/dev/db.yaml")))
            .unwrap();
        assert_eq!(rule.recipients[0].key_id(), any.key_id());
        assert!(config.rule_for(None).is_some());
    }

    #[test]
    fn errors_name_the_rule() {
        let err = Config::parse(
            Path::new(".kseal.yaml"),
            "creation_rules:\n  - path_regex: a\n    recipients: [age1nope]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("creation_rules[0]"), "{err}");
        let err = Config::parse(Path::new(".kseal.yaml"), "creation_rule: []\n").unwrap_err();
        assert!(err.to_string().contains(".kseal.yaml"), "{err}");
        let err = Config::parse(
            Path::new(".kseal.yaml"),
            "creation_rules:\n  - path_regex: a\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no recipients"), "{err}");
    }

    /// A config is untrusted input: `recipients_file` stays inside the
    /// config's directory tree (symbolic links followed), and nothing of a
    /// file that is not a recipients file is ever echoed.
    #[test]
    fn recipients_files_stay_inside_and_are_never_echoed() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("environ");
        std::fs::write(&secret, "CI_TOKEN=hunter2-canary\n").unwrap();
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("keys")).unwrap();
        let recipient = crate::x25519::Identity::generate().recipient().to_string();
        std::fs::write(repo.path().join("keys/prod.txt"), format!("{recipient}\n")).unwrap();
        std::fs::write(repo.path().join("keys/junk.txt"), "hunter2-canary\n").unwrap();
        std::os::unix::fs::symlink(&secret, repo.path().join("keys/link.txt")).unwrap();
        let config = repo.path().join(CONFIG_FILE_NAME);
        let with_file = |file: &str| format!("creation_rules:\n  - recipients_file: {file}\n");
        // (recipients_file, accepted?)
        let cases = [
            ("keys/prod.txt", true),
            ("./keys/../keys/prod.txt", true),
            (secret.to_str().unwrap(), false),
            ("/proc/self/environ", false),
            ("../environ", false),
            ("keys/link.txt", false),
            ("keys/junk.txt", false),
            ("keys/missing.txt", false),
        ];
        for (file, accepted) in cases {
            let result = Config::parse(&config, &with_file(file));
            assert_eq!(result.is_ok(), accepted, "{file}: {:?}", result.err());
            if let Err(err) = result {
                let message = err.to_string();
                assert!(!message.contains("hunter2"), "{file}: {message}");
                assert!(!message.contains("CI_TOKEN"), "{file}: {message}");
            }
        }
        // A private key behind a byte-order mark is named, not echoed.
        let key = crate::x25519::Identity::generate();
        let key_text = {
            use age::secrecy::ExposeSecret;
            key.to_secret_string().expose_secret().to_owned()
        };
        std::fs::write(
            repo.path().join("keys/bom.txt"),
            format!("\u{feff}{key_text}\n"),
        )
        .unwrap();
        let err = Config::parse(&config, &with_file("keys/bom.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("private key"), "{err}");
        assert!(
            !err.to_ascii_uppercase().contains("AGE-SECRET-KEY-1"),
            "{err}"
        );
    }

    /// The upward search stops at the repository root.
    #[test]
    fn search_stops_at_the_repository_root() {
        let top = tempfile::tempdir().unwrap();
        let recipient = crate::x25519::Identity::generate().recipient().to_string();
        std::fs::write(
            top.path().join(CONFIG_FILE_NAME),
            format!("creation_rules:\n  - recipients: [{recipient}]\n"),
        )
        .unwrap();
        let repo = top.path().join("repo");
        let deep = repo.join("clusters/prod");
        std::fs::create_dir_all(&deep).unwrap();
        // Outside a repository only the directory itself counts: the
        // config in a parent (a shared /tmp, say) is not used.
        assert!(Config::find(&deep).unwrap().is_none());
        assert!(Config::find(top.path()).unwrap().is_some());
        // Inside a repository, not above its root either.
        std::fs::create_dir(repo.join(".git")).unwrap();
        assert!(Config::find(&deep).unwrap().is_none());
        // A config at the repository root is found.
        std::fs::write(
            repo.join(CONFIG_FILE_NAME),
            format!("creation_rules:\n  - recipients: [{recipient}]\n"),
        )
        .unwrap();
        let found = Config::find(&deep).unwrap().unwrap();
        assert_eq!(found.path, repo.join(CONFIG_FILE_NAME));
    }
}
