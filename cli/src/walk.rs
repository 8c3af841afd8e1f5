//! The manifest files of the paths on a command line, found the way
//! `kubectl apply -R -f PATH` finds what it applies, so that what `kseal
//! check` passes is what kubectl would apply, and every command that walks
//! a tree (`check`, `inspect`, `validate`, `rewrap`, `migrate`) sees the
//! same files:
//!
//! * a path named on the command line is taken whatever its name;
//! * a directory is searched recursively for `*.yaml`, `*.yml` and `*.json`
//!   (case-sensitive, as kubectl), **hidden directories and files
//!   included** (kubectl applies them);
//! * a symlink to a file is followed, wherever it points (kubectl applies
//!   its target); one that cannot be followed (dangling, a loop,
//!   unreadable) is an error, never skipped ([`manifest_files`] fails on
//!   it; [`manifest_files_reporting`], for `check`, hands it back and goes
//!   on);
//! * a symlink to a directory is not followed (kubectl's walk does not
//!   follow them either); it is named on stderr;
//! * a FIFO, socket or device named like a manifest is named on stderr and
//!   skipped (reading a FIFO could block for ever);
//! * a file reached twice by path (a symlink to a file the walk also finds,
//!   or a path given twice) is read once, under its own name rather than
//!   the link's; the other name is said on stderr;
//! * a hard link is not told apart: each name is a file of its own, read
//!   under its own name without a word (an edit in place writes a new file
//!   under that name, so the names stop sharing one). kubectl applies each
//!   name too, and git knows no hard links (a checkout makes each path a
//!   file of its own), so there is nothing to warn about.
//!
//! A tree may exclude files and directories from every walking command with
//! [`IGNORE_FILE`]s (`.ksealignore`, in gitignore syntax), read in each
//! directory walked and in those above it up to the repository's top:
//! a Helm chart's `templates/`, say, which is not YAML until rendered.
//! What they exclude is named on stderr with the rule; a path named on
//! the command line is read whatever they say.
//!
//! Commands that edit files in place follow a symlink only to a target
//! inside the tree they were given ([`ManifestPath::edit_target`]), and
//! match `.kseal.yaml` rules (recipients, `max_age`) on the path of that
//! target, the file they write, never on the link's
//! ([`ManifestPath::rule_path`]): a link `staging/db.yaml` to
//! `prod/db.sealed` must not have prod's values sealed to staging's keys.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The name prefix of kseal's temporary files (`.kseal-XXXXXX`, beside the
/// file being written).
pub const TEMPORARY_PREFIX: &str = ".kseal-";

/// The name of kseal's ignore files: gitignore syntax (`#` comments, `!`
/// to re-include, a trailing `/` for directories only, patterns relative
/// to the file's directory), as `.gitignore`, `.dockerignore` and
/// `.helmignore` users know it.
pub const IGNORE_FILE: &str = ".ksealignore";

/// The [`IGNORE_FILE`]s that apply under one walked directory: its own,
/// those of the directories below it (read as the walk reaches them) and
/// those above it up to the repository's top (the nearest directory with a
/// `.git`; without one, none above). Paths are canonical.
struct IgnoreRules {
    top: PathBuf,
    by_dir: HashMap<PathBuf, Option<Gitignore>>,
    /// Ignore files that could not be read, not yet reported.
    errors: Vec<anyhow::Error>,
}

impl IgnoreRules {
    fn new(root: &Path) -> Self {
        let top = root
            .ancestors()
            .find(|ancestor| ancestor.join(".git").exists())
            .unwrap_or(root)
            .to_owned();
        Self {
            top,
            by_dir: HashMap::new(),
            errors: Vec::new(),
        }
    }

    /// The rules of `dir`'s ignore file, read once; a file that cannot be
    /// read or holds a bad pattern has no rules, and its error waits in
    /// `errors` for the walk to report.
    fn of_dir(&mut self, dir: &Path) -> Option<&Gitignore> {
        if !self.by_dir.contains_key(dir) {
            let file = dir.join(IGNORE_FILE);
            let rules = match read_ignore_file(dir, &file) {
                Ok(rules) => rules,
                // Said once; the files it would have excluded are read
                // (unless an ignore file above excludes them).
                Err(err) => {
                    self.errors.push(err);
                    None
                }
            };
            self.by_dir.insert(dir.to_owned(), rules);
        }
        self.by_dir.get(dir).and_then(Option::as_ref)
    }

    /// The rule that excludes `path` (canonical, below the walked
    /// directory), as `FILE: PATTERN`; `None` when it is not excluded. The
    /// nearest ignore file that has a say decides, as in git.
    fn excluded(&mut self, path: &Path, is_dir: bool) -> Option<String> {
        let top = self.top.clone();
        for dir in path.ancestors().skip(1) {
            if !dir.starts_with(&top) {
                break;
            }
            let Some(rules) = self.of_dir(dir) else {
                continue;
            };
            match rules.matched(path, is_dir) {
                Match::Ignore(glob) => {
                    let from = glob
                        .from()
                        .map_or_else(|| IGNORE_FILE.into(), |file| file.display().to_string());
                    return Some(format!("{from}: {}", glob.original()));
                }
                Match::Whitelist(_) => return None,
                Match::None => {}
            }
        }
        None
    }
}

/// The most bytes an ignore file may hold.
const IGNORE_FILE_MAX_LEN: u64 = 1024 * 1024;

/// Reads `dir`'s ignore file, when there is one. Only a regular file of
/// the tree is read (a symlink could point at `/proc/self/environ` or a
/// file of secrets), and no line of it is ever quoted: an error names the
/// line number only.
fn read_ignore_file(dir: &Path, file: &Path) -> Result<Option<Gitignore>> {
    let not_used = "so nothing is excluded by it";
    let meta = match fs::symlink_metadata(file) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => bail!("{}: cannot read ({err}), {not_used}", file.display()),
    };
    if !meta.file_type().is_file() {
        bail!(
            "{}: not a regular file (a symlink, say): an ignore file is read only as a file of the tree, {not_used}",
            file.display()
        );
    }
    if meta.len() > IGNORE_FILE_MAX_LEN {
        bail!(
            "{}: larger than {IGNORE_FILE_MAX_LEN} bytes, {not_used}",
            file.display()
        );
    }
    let bytes = fs::read(file)
        .map_err(|err| anyhow::anyhow!("{}: cannot read ({err}), {not_used}", file.display()))?;
    let Ok(text) = String::from_utf8(bytes) else {
        bail!("{}: not UTF-8 text, {not_used}", file.display());
    };
    let mut builder = GitignoreBuilder::new(dir);
    for (index, line) in text.lines().enumerate() {
        if builder.add_line(Some(file.to_owned()), line).is_err() {
            bail!(
                "{}: line {}: not a pattern gitignore syntax reads (the line is not shown), {not_used}",
                file.display(),
                index + 1
            );
        }
    }
    let rules = builder.build().map_err(|_| {
        anyhow::anyhow!("{}: its patterns do not build, {not_used}", file.display())
    })?;
    Ok(Some(rules))
}

/// A file found on the command line or in a directory walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPath {
    /// The path as named or found (a symlink stays the link): what
    /// messages show. `.kseal.yaml` rules match [`ManifestPath::rule_path`].
    pub path: PathBuf,
    /// The tree it belongs to, canonical: the directory given, or for a
    /// file named on the command line its repository or directory (see
    /// [`ManifestPath::named`]). In-place edits stay inside it.
    root: PathBuf,
    /// Found by walking a directory, not named on the command line.
    pub walked: bool,
    /// Named like one of kseal's own temporary files (only `check` asks for
    /// them: an interrupted write may have left plaintext behind).
    pub temporary: bool,
}

impl ManifestPath {
    /// A file named on the command line (or as `--merge-into FILE`): its
    /// tree is the git repository it is in (the nearest directory above
    /// it with a `.git`), else the directory it was named in.
    pub fn named(path: &Path) -> Result<Self> {
        let parent = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let dir = fs::canonicalize(parent)
            .with_context(|| format!("{}: cannot read", parent.display()))?;
        let root = dir
            .ancestors()
            .find(|ancestor| ancestor.join(".git").exists())
            .unwrap_or(&dir)
            .to_owned();
        Ok(Self {
            path: path.to_owned(),
            root,
            walked: false,
            temporary: false,
        })
    }

    /// Where an in-place edit of this file is written: the file itself, or,
    /// for a symlink, its target, so the link stays a link. A target
    /// outside the file's tree is refused: a repository must not be able to
    /// make `kseal rewrap --in-place` edit a file elsewhere (`~/.bashrc`,
    /// another checkout).
    pub fn edit_target(&self) -> Result<PathBuf> {
        let meta = fs::symlink_metadata(&self.path)
            .with_context(|| format!("{}: cannot read", self.path.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(self.path.clone());
        }
        let target = fs::canonicalize(&self.path)
            .with_context(|| format!("{}: a symlink kseal cannot follow", self.path.display()))?;
        if !target.starts_with(&self.root) {
            bail!(
                "{}: a symlink to {}, outside {}: not edited (kseal edits a symlink's target only inside the tree it was given; name the target to edit it)",
                self.path.display(),
                target.display(),
                self.root.display()
            );
        }
        Ok(target)
    }

    /// The path `.kseal.yaml` rules (recipients, `max_age`) are matched on
    /// for this file: the file whose text it is, and that an edit writes.
    /// A regular file is its own path; a symlink, its target, canonical
    /// (rules take it relative to the config's directory). `in_place`: the
    /// target is where an in-place edit writes, so it must be inside the
    /// tree ([`ManifestPath::edit_target`], the same refusal); otherwise
    /// (the result printed on stdout) it is the file the text was read from,
    /// wherever it is.
    pub fn rule_path(&self, in_place: bool) -> Result<PathBuf> {
        if in_place {
            return self.edit_target();
        }
        if !is_symlink(&self.path) {
            return Ok(self.path.clone());
        }
        fs::canonicalize(&self.path)
            .with_context(|| format!("{}: a symlink kseal cannot follow", self.path.display()))
    }
}

/// Whether `path` is a symlink (one that cannot be read is not).
pub fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

/// The path `.kseal.yaml` rules are matched on for a file only read (as
/// `kseal inspect --stale` reads it): a symlink's target when it can be
/// followed, else the path itself.
pub fn read_rule_path(path: &Path) -> PathBuf {
    if is_symlink(path) {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    }
}

/// What the walk should collect besides manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    /// Manifests only.
    ManifestsOnly,
    /// Also, for `kseal check`, what may hold plaintext without being
    /// named like a manifest: kseal's temporary files (`.kseal-XXXXXX`)
    /// and kustomize's extensionless `Kustomization` files (their
    /// `secretGenerator`s).
    ForTheGate,
}

/// Expands `paths` into manifest files (see the module documentation);
/// in walk order, sorted within each directory, so output is
/// deterministic. What is skipped is said on stderr, with why; the first
/// path that cannot be read fails the walk.
pub fn manifest_files(
    paths: &[PathBuf],
    extras: Extras,
    ignore_files: IgnoreFiles,
) -> Result<Vec<ManifestPath>> {
    walk(paths, extras, ignore_files, &mut Err)
}

/// Whether a walk reads [`IGNORE_FILE`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreFiles {
    /// Exclude what they say.
    Read,
    /// Walk everything (`kseal check --no-ignore`: a CI gate that does not
    /// trust the tree's own exclusions).
    Skip,
}

/// The files of a walk that goes on past what it cannot read.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<ManifestPath>,
    /// Why each path that could not be read was not (a dangling symlink, a
    /// loop, an unreadable directory, a missing path): for `kseal check`,
    /// a failure to report.
    pub unreadable: Vec<anyhow::Error>,
}

/// As [`manifest_files`], but a path that cannot be read is handed back
/// in [`Walk::unreadable`] and the walk goes on: a gate reports every
/// finding of the tree, and fails on what it could not read too.
pub fn manifest_files_reporting(
    paths: &[PathBuf],
    extras: Extras,
    ignore_files: IgnoreFiles,
) -> Walk {
    let mut unreadable = Vec::new();
    let walked = {
        let mut report = |err| {
            unreadable.push(err);
            Ok(())
        };
        walk(paths, extras, ignore_files, &mut report)
    };
    let files = walked.unwrap_or_else(|err| {
        unreadable.push(err);
        Vec::new()
    });
    Walk { files, unreadable }
}

/// The walk itself; `failed` decides what a path that cannot be read
/// does: `Err` ends the walk, `Ok` skips the path and goes on.
fn walk(
    paths: &[PathBuf],
    extras: Extras,
    ignore_files: IgnoreFiles,
    failed: &mut dyn FnMut(anyhow::Error) -> Result<()>,
) -> Result<Vec<ManifestPath>> {
    let mut found: Vec<(ManifestPath, bool)> = Vec::new();
    for path in paths {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(err) => {
                // Named on the command line: a dangling symlink, or nothing.
                let what = if fs::symlink_metadata(path).is_ok() {
                    "a symlink kseal cannot follow"
                } else {
                    "cannot read"
                };
                failed(anyhow::Error::new(err).context(format!("{}: {what}", path.display())))?;
                continue;
            }
        };
        if !meta.is_dir() {
            let named = fs::symlink_metadata(path)
                .with_context(|| format!("{}: cannot read", path.display()))
                .and_then(|link| Ok((ManifestPath::named(path)?, link.file_type().is_symlink())));
            if ignore_files == IgnoreFiles::Read {
                note_named_but_excluded(path);
            }
            match named {
                Ok((mut named, is_link)) => {
                    // Named by a hook (pre-commit passes each staged
                    // file): still said to be a leftover temporary.
                    named.temporary = extras == Extras::ForTheGate
                        && path.file_name().is_some_and(is_temporary_name);
                    found.push((named, is_link));
                }
                Err(err) => failed(err)?,
            }
            continue;
        }
        let root = match fs::canonicalize(path) {
            Ok(root) => root,
            Err(err) => {
                failed(
                    anyhow::Error::new(err).context(format!("{}: cannot read", path.display())),
                )?;
                continue;
            }
        };
        let mut in_dir = Vec::new();
        let mut ignore_rules = IgnoreRules::new(&root);
        // Not following links: kubectl's walk (Go's filepath.Walk) does not
        // descend into symlinked directories; symlinked files are handled
        // below. The root itself is followed when it is a link.
        let mut entries = walkdir::WalkDir::new(path)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                // An unreadable directory: walkdir goes on with the rest.
                Err(err) => {
                    failed(
                        anyhow::Error::new(err).context(format!("{}: cannot walk", path.display())),
                    )?;
                    continue;
                }
            };
            let file_type = entry.file_type();
            let temporary = extras == Extras::ForTheGate && is_temporary_name(entry.file_name());
            let kustomization =
                extras == Extras::ForTheGate && entry.file_name() == KUSTOMIZATION_FILE_NAMES[2];
            let wanted = is_manifest_name(entry.path()) || temporary || kustomization;
            // .ksealignore: an excluded directory is not entered, and an
            // excluded manifest not read; each is named, with the rule.
            if entry.depth() > 0
                && ignore_files == IgnoreFiles::Read
                && (file_type.is_dir() || wanted)
            {
                let canonical = root.join(entry.path().strip_prefix(path).unwrap_or(entry.path()));
                let excluded = ignore_rules.excluded(&canonical, file_type.is_dir());
                // An ignore file that cannot be read: a gate fails on it.
                for err in ignore_rules.errors.drain(..) {
                    failed(err)?;
                }
                if let Some(rule) = excluded {
                    eprintln!(
                        "kseal: {}: skipped: excluded by {rule}",
                        entry.path().display()
                    );
                    if file_type.is_dir() {
                        entries.skip_current_dir();
                    }
                    continue;
                }
            }
            if file_type.is_dir() {
                continue;
            }
            let entry_path = entry.path();
            let mut is_link = false;
            if file_type.is_symlink() {
                match fs::metadata(entry_path) {
                    Ok(target) if target.is_file() && wanted => is_link = true,
                    Ok(target) if target.is_dir() => {
                        eprintln!(
                            "kseal: {}: skipped: a symlink to a directory (not followed, as kubectl apply -R does not follow it)",
                            entry_path.display()
                        );
                        continue;
                    }
                    Ok(_) if wanted => {
                        eprintln!(
                            "kseal: {}: skipped: a symlink to something that is not a regular file",
                            entry_path.display()
                        );
                        continue;
                    }
                    Ok(_) => continue,
                    // kubectl would fail on it too: so does the walk, rather
                    // than let a gate pass what it could not read.
                    Err(err) if wanted => {
                        failed(anyhow::anyhow!(
                            "{}: a symlink kseal cannot follow: {err}",
                            entry_path.display()
                        ))?;
                        continue;
                    }
                    // Not named like a manifest: kubectl ignores it.
                    Err(_) => continue,
                }
            } else if !file_type.is_file() {
                if wanted {
                    eprintln!(
                        "kseal: {}: skipped: not a regular file (a FIFO, socket or device)",
                        entry_path.display()
                    );
                }
                continue;
            } else if !wanted {
                continue;
            }
            in_dir.push((
                ManifestPath {
                    path: entry.into_path(),
                    root: root.clone(),
                    walked: true,
                    temporary,
                },
                is_link,
            ));
        }
        in_dir.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        found.extend(in_dir);
    }
    Ok(deduplicate(found))
}

/// A file named on the command line is read whatever the ignore files
/// say; when they would exclude it, that is said, so the two ways of
/// running a gate (on a tree, on named files) do not differ silently.
fn note_named_but_excluded(path: &Path) {
    let (Some(name), Some(parent)) = (path.file_name(), path.parent()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(dir) = fs::canonicalize(parent) else {
        return;
    };
    let mut rules = IgnoreRules::new(&dir);
    if let Some(rule) = rules.excluded(&dir.join(name), false) {
        eprintln!(
            "kseal: {}: read although excluded by {rule}: it was named on the command line",
            path.display()
        );
    }
}

/// One entry per file: a file reached under two names (a symlink and its
/// target, or a path given twice) is read once, under the first name that
/// is not a symlink (else the first); the others are named on stderr.
fn deduplicate(found: Vec<(ManifestPath, bool)>) -> Vec<ManifestPath> {
    let canonical: Vec<PathBuf> = found
        .iter()
        .map(|(file, _)| fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone()))
        .collect();
    let mut chosen: HashMap<&PathBuf, usize> = HashMap::new();
    for (index, key) in canonical.iter().enumerate() {
        match chosen.get(key) {
            Some(&first) if !found[first].1 || found[index].1 => {}
            _ => {
                chosen.insert(key, index);
            }
        }
    }
    let mut files = Vec::with_capacity(chosen.len());
    for (index, (file, _)) in found.iter().enumerate() {
        let keep = chosen.get(&canonical[index]).copied().unwrap_or(index);
        if keep == index {
            files.push(file.clone());
        } else {
            eprintln!(
                "kseal: {}: skipped: the same file as {}",
                file.path.display(),
                found[keep].0.path.display()
            );
        }
    }
    files
}

/// Whether a file name looks like a manifest (kubectl's extensions).
pub fn is_manifest_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The file names kustomize reads as a kustomization, in its order.
pub const KUSTOMIZATION_FILE_NAMES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Whether a file name is one of kseal's temporaries.
pub fn is_temporary_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|name| name.starts_with(TEMPORARY_PREFIX))
}

/// Whether a file that does not parse may be skipped: it was found by
/// walking a directory (not named on the command line) and mentions no
/// object the command works on (`marker`: `kseal.dev/`, or `bitnami.com/`
/// for `migrate`), like a Helm template next to SealedSecrets. A broken
/// SealedSecret is never skipped.
pub fn skippable(file: &ManifestPath, text: &str, marker: &str) -> bool {
    file.walked && !text.contains(marker)
}

/// A file that does not parse as YAML/JSON manifests (the message says
/// where and why).
#[derive(Debug)]
pub struct Unparseable(pub String);

impl std::fmt::Display for Unparseable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unparseable {}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::symlink;

    use super::*;

    fn names(files: &[ManifestPath], root: &Path) -> Vec<String> {
        files
            .iter()
            .map(|file| file.path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    /// Hidden directories and files are walked; symlinked files are
    /// followed, also out of the tree; symlinked directories are not; a
    /// file reached twice is listed once, under its own name.
    #[test]
    fn the_walk_finds_what_kubectl_applies() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        let outside = dir.path().join("outside");
        for sub in ["tree/.hidden", "tree/real", "outside"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        for file in [
            "tree/.hidden/a.yaml",
            "tree/.dot.yml",
            "tree/real/b.json",
            "tree/notes.txt",
            "outside/o.yaml",
        ] {
            fs::write(dir.path().join(file), "{}").unwrap();
        }
        symlink(outside.join("o.yaml"), tree.join("out.yaml")).unwrap();
        symlink("real/b.json", tree.join("a-link.json")).unwrap();
        symlink(&outside, tree.join("dirlink")).unwrap();
        fs::write(tree.join(".kseal-Ab12Cd"), "{}").unwrap();

        let files = manifest_files(
            std::slice::from_ref(&tree),
            Extras::ManifestsOnly,
            IgnoreFiles::Read,
        )
        .unwrap();
        assert_eq!(
            names(&files, &tree),
            [".dot.yml", ".hidden/a.yaml", "out.yaml", "real/b.json"]
        );
        assert!(files.iter().all(|file| file.walked && !file.temporary));
        let files = manifest_files(
            std::slice::from_ref(&tree),
            Extras::ForTheGate,
            IgnoreFiles::Read,
        )
        .unwrap();
        assert!(
            files
                .iter()
                .any(|file| file.temporary && file.path.ends_with(".kseal-Ab12Cd"))
        );

        // Edits follow a link inside the tree, and refuse one out of it.
        let link_in = ManifestPath {
            path: tree.join("a-link.json"),
            root: fs::canonicalize(&tree).unwrap(),
            walked: true,
            temporary: false,
        };
        assert_eq!(
            link_in.edit_target().unwrap(),
            fs::canonicalize(tree.join("real/b.json")).unwrap()
        );
        let out = files
            .iter()
            .find(|file| file.path.ends_with("out.yaml"))
            .unwrap();
        let err = out.edit_target().unwrap_err().to_string();
        assert!(err.contains("outside"), "{err}");
        // Named on the command line: its tree is its own directory.
        let named = ManifestPath::named(&tree.join("out.yaml")).unwrap();
        assert!(named.edit_target().is_err());
        let named = ManifestPath::named(&tree.join("real/b.json")).unwrap();
        assert_eq!(named.edit_target().unwrap(), tree.join("real/b.json"));
    }

    /// A symlink that cannot be followed fails the walk: a gate must not
    /// pass what it could not read.
    #[test]
    fn dangling_links_and_loops_are_errors() {
        for (name, target) in [
            ("dangling.yaml", "nowhere.yaml"),
            ("loop.yaml", "loop.yaml"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            symlink(target, dir.path().join(name)).unwrap();
            let err = manifest_files(
                &[dir.path().to_owned()],
                Extras::ManifestsOnly,
                IgnoreFiles::Read,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(name) && err.contains("cannot follow"), "{err}");
        }
        // The reporting walk (check's) hands each back and goes on.
        let dir = tempfile::tempdir().unwrap();
        symlink("nowhere.yaml", dir.path().join("a-dangling.yaml")).unwrap();
        symlink("b-loop.yaml", dir.path().join("b-loop.yaml")).unwrap();
        fs::write(dir.path().join("c.yaml"), "{}").unwrap();
        let missing = dir.path().join("missing.yaml");
        let walk = manifest_files_reporting(
            &[dir.path().to_owned(), missing],
            Extras::ManifestsOnly,
            IgnoreFiles::Read,
        );
        assert_eq!(names(&walk.files, dir.path()), ["c.yaml"]);
        let unreadable: Vec<String> = walk.unreadable.iter().map(|e| format!("{e:#}")).collect();
        assert_eq!(unreadable.len(), 3, "{unreadable:?}");
        assert!(unreadable[0].contains("a-dangling.yaml: a symlink kseal cannot follow"));
        assert!(unreadable[1].contains("b-loop.yaml: a symlink kseal cannot follow"));
        assert!(unreadable[2].contains("missing.yaml: cannot read"));
        // Not named like a manifest: ignored, as kubectl ignores it.
        let dir = tempfile::tempdir().unwrap();
        symlink("nowhere", dir.path().join("dangling")).unwrap();
        assert!(
            manifest_files(
                &[dir.path().to_owned()],
                Extras::ManifestsOnly,
                IgnoreFiles::Read
            )
            .unwrap()
            .is_empty()
        );
    }
}
