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
//!     context: staging      # the kube context of the cluster whose key
//!                           # keys/staging.txt pins (kseal pins update/check)
//!     max_age: 90d          # kseal check --rotation fails older values;
//!                           # kseal seal writes it as spec.maxAge
//! ```
//!
//! Fields of a rule:
//! * `path_regex`: matched against the path relative to this file's
//!   directory (`/` separators); a rule without one matches every path;
//! * `recipients`: age recipients (`age1…`);
//! * `recipients_file`: an age recipients file, relative to this file's
//!   directory and inside its tree (symbolic links followed);
//! * `scope`: `strict`, `namespace-wide` or `cluster-wide`;
//! * `max_age`: how old the rule's values may get (`90d`, `2160h`, `13w`);
//! * `context`: the kubeconfig context of the cluster whose public sealing
//!   key `recipients_file` pins. Sealing ignores it; `kseal pins update`
//!   rewrites the file to that cluster's active key (keeping every other
//!   line: a recovery key, comments), and `kseal pins check` fails when the
//!   file names a key the cluster no longer seals to. Only valid together
//!   with `recipients_file`; at most [`MAX_CONTEXT_LEN`] characters, no
//!   control characters and no surrounding spaces.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::binding::Scope;
use crate::rotation::MaxAge;
use crate::x25519::{Recipient, parse_recipients_file};

/// The file name searched for.
pub const CONFIG_FILE_NAME: &str = ".kseal.yaml";

/// The longest `context` a rule may name, in characters (kubeconfig itself
/// sets no bound; this is far above any real context name).
pub const MAX_CONTEXT_LEN: usize = 253;

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
    #[serde(default)]
    context: Option<String>,
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
    /// `recipients_file` as the rule writes it (relative to the config's
    /// directory); [`Config::pin_target`] resolves it.
    pub recipients_file: Option<PathBuf>,
    /// The kube context of the cluster whose key `recipients_file` pins
    /// (`kseal pins`), when the rule names one.
    pub context: Option<String>,
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
        Self::find_path(start)
            .map(|path| Self::load(&path))
            .transpose()
    }

    /// Where [`Config::find`] finds the config file, without reading it.
    pub fn find_path(start: &Path) -> Option<PathBuf> {
        let root = start
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(start);
        for dir in start.ancestors() {
            let candidate = dir.join(CONFIG_FILE_NAME);
            if candidate.is_file() {
                return Some(candidate);
            }
            if dir == root {
                break;
            }
        }
        None
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
        Self::parse_with(path, text, RecipientsFiles::Read)
    }

    /// Reads the config file at `path` like [`Config::load`], but not the
    /// rules' recipients files: each rule's `recipients` are only those it
    /// lists inline, and a rule may have none. For `kseal pins`, which
    /// writes those files: one missing or broken pin file must not stop
    /// the others from being checked or updated.
    pub fn load_rules(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_rules(path, &text)
    }

    /// Parses config text like [`Config::parse`], without reading the
    /// recipients files (see [`Config::load_rules`]).
    pub fn parse_rules(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(path, text, RecipientsFiles::Skip)
    }

    fn parse_with(path: &Path, text: &str, files: RecipientsFiles) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig {
                creation_rules: Vec::new(),
            }
        } else {
            crate::yaml::from_str(text).map_err(|err| invalid(first_line(&err.to_string())))?
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
            let context = rule
                .context
                .map(|context| {
                    check_context(&context).map_err(|message| at(format!("context: {message}")))?;
                    if rule.recipients_file.is_none() {
                        return Err(at(
                            "context needs recipients_file: it names the cluster whose key that file pins (for kseal pins update/check); add recipients_file or remove context".into(),
                        ));
                    }
                    Ok(context)
                })
                .transpose()?;
            let recipients_file = rule.recipients_file.clone();
            if let (Some(file), RecipientsFiles::Read) = (rule.recipients_file, files) {
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
            if recipients.is_empty() && files == RecipientsFiles::Read {
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
                recipients_file,
                context,
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

    /// Where `kseal pins update` writes `rule`'s recipients file: the file
    /// itself, or a symbolic link's target, canonical and inside the
    /// config's directory tree (as [`Config::parse`] requires). A file that
    /// does not exist yet may be created, in a directory inside the tree.
    /// `None` when the rule has no `recipients_file`.
    pub fn pin_target(&self, rule: &Rule) -> Result<Option<PathBuf>, ConfigError> {
        let Some(file) = &rule.recipients_file else {
            return Ok(None);
        };
        contained_target(self.root(), file)
            .map(Some)
            .map_err(|message| ConfigError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "creation_rules[{}]: recipients_file {file:?}: {message}",
                    rule.index
                ),
            })
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

/// Whether [`Config::parse_with`] reads the rules' recipients files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecipientsFiles {
    Read,
    Skip,
}

/// Why a rule's `context` is refused, if it is: empty, longer than
/// [`MAX_CONTEXT_LEN`], with control characters (it is written into a
/// comment line and printed) or with spaces around it.
fn check_context(context: &str) -> Result<(), String> {
    if context.is_empty() {
        return Err("must not be empty".into());
    }
    let length = context.chars().count();
    if length > MAX_CONTEXT_LEN {
        return Err(format!(
            "{length} characters, at most {MAX_CONTEXT_LEN} allowed"
        ));
    }
    if context.chars().any(char::is_control) {
        return Err("must not contain control characters (line breaks, tabs, …)".into());
    }
    if context.trim() != context {
        return Err("must not start or end with spaces".into());
    }
    Ok(())
}

/// Like [`contained_file`], but the file may not exist yet: then its
/// directory must, inside `base`, and a dangling symbolic link is refused
/// (writing would replace the link, not create its target).
fn contained_target(base: &Path, relative: &Path) -> Result<PathBuf, &'static str> {
    match contained_file(base, relative) {
        Ok(path) if path.is_dir() => return Err("is a directory"),
        Ok(path) => return Ok(path),
        Err(message) => {
            let joined = base.join(relative);
            if relative.is_absolute() || joined.canonicalize().is_ok() {
                return Err(message);
            }
            if joined.symlink_metadata().is_ok() {
                return Err("a symbolic link kseal cannot follow (a missing target?)");
            }
        }
    }
    if relative.is_absolute() {
        return Err("must be a path relative to the config file's directory");
    }
    let base = base
        .canonicalize()
        .map_err(|_| "the config file's directory cannot be resolved")?;
    let joined = base.join(relative);
    let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
        return Err("is not a file name");
    };
    if matches!(
        relative.components().next_back(),
        Some(std::path::Component::ParentDir | std::path::Component::CurDir)
    ) {
        return Err("is not a file name");
    }
    let parent = parent
        .canonicalize()
        .map_err(|_| "does not exist, nor does its directory")?;
    if parent.join(name).symlink_metadata().is_ok() {
        return Err("cannot be read");
    }
    if !parent.starts_with(&base) {
        return Err("must stay inside the config file's directory tree");
    }
    Ok(parent.join(name))
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

    /// `context` names the cluster a `recipients_file` pins: checked, and
    /// refused without a `recipients_file`.
    #[test]
    fn context_is_checked_and_needs_a_recipients_file() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("keys")).unwrap();
        let recipient = Identity::generate().recipient().to_string();
        std::fs::write(repo.path().join("keys/prod.txt"), format!("{recipient}\n")).unwrap();
        let config = repo.path().join(CONFIG_FILE_NAME);
        let rule = |context: &str| {
            format!("creation_rules:\n  - recipients_file: keys/prod.txt\n    context: {context}\n")
        };
        let parsed = Config::parse(&config, &rule("prod-eu")).unwrap();
        assert_eq!(parsed.rules[0].context.as_deref(), Some("prod-eu"));
        assert_eq!(
            parsed.rules[0].recipients_file.as_deref(),
            Some(Path::new("keys/prod.txt"))
        );
        let long = "x".repeat(MAX_CONTEXT_LEN);
        assert!(Config::parse(&config, &rule(&long)).is_ok());
        assert!(Config::parse(&config, &rule("arn:aws:eks:eu-west-1:1234:cluster/prod")).is_ok());
        // (context, what the error says)
        let cases = [
            ("\"\"", "must not be empty"),
            (&*format!("{long}y"), "at most 253"),
            ("\"a\\nb\"", "control characters"),
            ("\"a\\tb\"", "control characters"),
            ("\" prod\"", "spaces"),
        ];
        for (context, expected) in cases {
            let err = Config::parse(&config, &rule(context))
                .unwrap_err()
                .to_string();
            assert!(err.contains("creation_rules[0]"), "{context}: {err}");
            assert!(err.contains(expected), "{context}: {err}");
        }
        let err = Config::parse(
            &config,
            &format!("creation_rules:\n  - recipients: [{recipient}]\n    context: prod\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("creation_rules[0]") && err.contains("context needs recipients_file"),
            "{err}"
        );
    }

    /// `kseal pins` reads the rules without their recipients files, and
    /// resolves each file to where it is written.
    #[test]
    fn rules_without_their_files_and_pin_targets() {
        let outside = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("keys")).unwrap();
        std::fs::write(root.join("keys/real.txt"), "").unwrap();
        std::os::unix::fs::symlink("real.txt", root.join("keys/link.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), root.join("keys/out.txt")).unwrap();
        std::os::unix::fs::symlink("missing.txt", root.join("keys/dangling.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("elsewhere")).unwrap();
        std::fs::write(outside.path().join("x"), "").unwrap();
        let files = [
            "keys/real.txt",
            "keys/link.txt",
            "keys/new.txt",
            "keys/out.txt",
            "keys/dangling.txt",
            "elsewhere/new.txt",
            "nowhere/new.txt",
            "../x",
            "/etc/passwd",
            "keys/..",
        ];
        let mut text = String::from("creation_rules:\n");
        for file in files {
            text.push_str(&format!("  - recipients_file: {file:?}\n    context: c\n"));
        }
        let config_path = root.join(CONFIG_FILE_NAME);
        // The files are not read: an empty one is no error here…
        let config = Config::parse_rules(&config_path, &text).unwrap();
        assert!(config.rules.iter().all(|rule| rule.recipients.is_empty()));
        // …but is for sealing.
        assert!(Config::parse(&config_path, &text).is_err());
        let target = |index: usize| config.pin_target(&config.rules[index]);
        assert_eq!(target(0).unwrap(), Some(root.join("keys/real.txt")));
        // A symlink is written at its target.
        assert_eq!(target(1).unwrap(), Some(root.join("keys/real.txt")));
        // A file to create, in a directory inside the tree.
        assert_eq!(target(2).unwrap(), Some(root.join("keys/new.txt")));
        for (index, file) in files.iter().enumerate().skip(3) {
            let err = target(index).unwrap_err().to_string();
            assert!(
                err.contains(&format!("creation_rules[{index}]")),
                "{file}: {err}"
            );
        }
        assert!(target(4).unwrap_err().to_string().contains("symbolic link"));
        let no_file =
            Config::parse_rules(&config_path, "creation_rules:\n  - recipients: []\n").unwrap();
        assert_eq!(no_file.pin_target(&no_file.rules[0]).unwrap(), None);
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
