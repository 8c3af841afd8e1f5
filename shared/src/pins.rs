//! Cluster keys pinned in age recipients files: what `kseal pins update`
//! writes and what `kseal pins check` reports, as pure text functions (the
//! CLI fetches the keys and reads and writes the files).
//!
//! A `.kseal.yaml` rule with `context:` says that its `recipients_file`
//! pins the public sealing key of that kube context's cluster
//! ([`crate::config`]). Clusters renew their key (every 30 days by
//! default), so the pinned key goes stale: sealing to it still works (the
//! cluster keeps old keys to decrypt) until the key is retired or deleted.
//!
//! For one cluster ([`ClusterKeys`]), each line of a pin file is one of:
//! * a **cluster line**: a recipient whose key id is one of the cluster's
//!   keys, listed in its `keys.json` in any state or recorded in its
//!   held-key-ids annotation (a deleted key);
//! * a **pin comment**, which kseal owns: the comment [`update`] writes
//!   above the cluster line (`# kseal: active key <id> of context <context>,
//!   pinned <time>`) for this context or for one of the cluster's keys, and
//!   the comment `kseal fetch-keys` writes above a key (`# key id <id>
//!   (…)`) for one of the cluster's keys;
//! * anything else: other recipients (an offline recovery key, another
//!   cluster), other comments, blank lines. These are never changed.
//!
//! Lines are read as age reads a recipients file (and as
//! [`parse_recipients_file`](crate::x25519::parse_recipients_file) does):
//! `\n` or `\r\n` line ends, surrounding white space ignored, `#` starts a
//! comment. A line that is neither blank, a comment nor a recipient is an
//! error, named by its number and never quoted (it could be a private key).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::contract::KeyState;
use crate::published::PublishedKeys;
use crate::x25519::{KeyId, Recipient};

/// How the comment [`update`] writes above the pinned key begins.
pub const PIN_COMMENT_PREFIX: &str = "# kseal: active key ";

/// How `kseal fetch-keys` (the controller's `recipients.txt`) describes a
/// key in a comment above it.
const FETCH_KEYS_COMMENT_PREFIX: &str = "# key id ";

/// The state of one of a cluster's keys, as a pin file sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PinnedKeyState {
    /// Active: the cluster seals to it (two keys are active for a moment
    /// during a rotation; [`ClusterKeys::active`] is the one published).
    Active,
    /// Rotated out: it still decrypts, new values should not be sealed to it.
    DecryptOnly,
    /// Retired: it no longer decrypts.
    Retired,
    /// Deleted: the cluster held it once (held-key-ids) but lists it no more.
    Deleted,
}

impl PinnedKeyState {
    /// `active`, `decrypt-only`, `retired` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            PinnedKeyState::Active => "active",
            PinnedKeyState::DecryptOnly => "decrypt-only",
            PinnedKeyState::Retired => "retired",
            PinnedKeyState::Deleted => "deleted",
        }
    }
}

impl fmt::Display for PinnedKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One cluster's keys: the active key it publishes, every key it lists,
/// and every key it ever held.
#[derive(Debug, Clone)]
pub struct ClusterKeys {
    context: String,
    active: Recipient,
    listed: BTreeMap<KeyId, KeyState>,
    held: BTreeSet<KeyId>,
}

impl ClusterKeys {
    /// The keys of the cluster of `context`, from its checked published
    /// keys ([`crate::published::check`]) and its held key ids
    /// ([`crate::published::held_key_ids`]). Control characters in
    /// `context` are written as `?` (`.kseal.yaml` refuses them anyway):
    /// the context goes into a comment line.
    pub fn new(context: &str, published: &PublishedKeys, held: &[KeyId]) -> Self {
        let mut listed: BTreeMap<KeyId, KeyState> = published
            .keys
            .iter()
            .filter_map(|key| key.id.parse::<KeyId>().ok().map(|id| (id, key.state)))
            .collect();
        listed.insert(published.recipient.key_id(), KeyState::Active);
        Self {
            context: context
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
            active: published.recipient.clone(),
            listed,
            held: held.iter().copied().collect(),
        }
    }

    /// The kube context, as written in comments.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The key the cluster publishes to seal to.
    pub fn active(&self) -> &Recipient {
        &self.active
    }

    /// The state of key `id` if it is one of the cluster's keys, else `None`.
    pub fn state(&self, id: KeyId) -> Option<PinnedKeyState> {
        self.listed_state(id)
            .or_else(|| self.held.contains(&id).then_some(PinnedKeyState::Deleted))
    }

    /// The state of key `id` if the cluster lists it (`keys.json`), else
    /// `None`: a key only in its record of held keys is not enough to drop
    /// a line, since that record is an annotation someone else could have
    /// written (the id of a recovery key is public).
    fn listed_state(&self, id: KeyId) -> Option<PinnedKeyState> {
        match self.listed.get(&id) {
            Some(KeyState::Active) => Some(PinnedKeyState::Active),
            Some(KeyState::DecryptOnly) => Some(PinnedKeyState::DecryptOnly),
            Some(KeyState::Retired) => Some(PinnedKeyState::Retired),
            None => None,
        }
    }

    fn is_cluster_key(&self, id: KeyId) -> bool {
        self.listed_state(id).is_some()
    }
}

/// Why a pin file cannot be updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// A line that is neither blank, a comment nor a recipient.
    #[error("line {line}: not a recipient: {reason}")]
    InvalidLine {
        /// 1-based.
        line: usize,
        /// Why (never the line's content).
        reason: String,
    },
}

/// What [`update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file pins exactly the active key already: nothing changed.
    UpToDate,
    /// The cluster lines were replaced by the active key (or a stale pin
    /// comment was rewritten).
    Replaced,
    /// The file had no cluster line: the active key was appended.
    Appended,
}

/// The result of [`update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The new text of the file (the input itself when up to date).
    pub text: String,
    /// The key ids of the cluster lines before, in file order.
    pub before: Vec<KeyId>,
    /// The key pinned now (the cluster's active key).
    pub after: KeyId,
    /// What changed.
    pub outcome: Outcome,
}

/// The comment [`update`] writes above the pinned key.
pub fn pin_comment(active: KeyId, context: &str, pinned_at: &str) -> String {
    format!("{PIN_COMMENT_PREFIX}{active} of context {context}, pinned {pinned_at}")
}

/// Rewrites pin file `text` to pin `keys`' active key, `pinned_at` (an RFC
/// 3339 time) going into the pin comment.
///
/// Every cluster line is replaced by one line with the active recipient, at
/// the position of the first, below a new pin comment; earlier pin comments
/// go. With no cluster line, the comment and the key are appended at the
/// end. Every other line is kept byte for byte, in order. A file that
/// already pins exactly the active key, with no pin comment naming another
/// key or context, is returned unchanged ([`Outcome::UpToDate`]): the
/// comment keeps its time, so running this twice changes nothing the
/// second time.
///
/// New lines end like the line they replace (else like the file's first
/// line, else `\n`); a file that did not end with a line break still does
/// not when its last line was the one replaced.
pub fn update(text: &str, keys: &ClusterKeys, pinned_at: &str) -> Result<Update, PinError> {
    let lines = split_lines(text);
    let kinds = classify_all(&lines, keys);
    if let Some((line, Kind::Invalid(reason))) = lines
        .iter()
        .zip(&kinds)
        .find(|(_, kind)| matches!(kind, Kind::Invalid(_)))
    {
        return Err(PinError::InvalidLine {
            line: line.number,
            reason: reason.clone(),
        });
    }
    let active = keys.active.key_id();
    let before: Vec<KeyId> = kinds
        .iter()
        .filter_map(|kind| match kind {
            Kind::Cluster(id) => Some(*id),
            _ => None,
        })
        .collect();
    let stale_comment = kinds
        .iter()
        .any(|kind| matches!(kind, Kind::PinComment { current: false }));
    if before == [active] && !stale_comment {
        return Ok(Update {
            text: text.to_owned(),
            before,
            after: active,
            outcome: Outcome::UpToDate,
        });
    }
    let file_eol = lines
        .iter()
        .map(|line| line.eol)
        .find(|eol| !eol.is_empty())
        .unwrap_or("\n");
    let comment = pin_comment(active, &keys.context, pinned_at);
    let mut out = String::with_capacity(text.len() + comment.len() + 80);
    let mut placed = false;
    for (line, kind) in lines.iter().zip(&kinds) {
        match kind {
            Kind::Cluster(_) if !placed => {
                placed = true;
                let eol = if line.eol.is_empty() {
                    file_eol
                } else {
                    line.eol
                };
                out.push_str(&comment);
                out.push_str(eol);
                out.push_str(&keys.active.to_string());
                out.push_str(line.eol);
            }
            Kind::Cluster(_) | Kind::PinComment { .. } => {}
            Kind::Other | Kind::Invalid(_) => {
                out.push_str(line.text);
                out.push_str(line.eol);
            }
        }
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(file_eol);
        }
        out.push_str(&comment);
        out.push_str(file_eol);
        out.push_str(&keys.active.to_string());
        out.push_str(file_eol);
    }
    Ok(Update {
        text: out,
        outcome: if placed {
            Outcome::Replaced
        } else {
            Outcome::Appended
        },
        before,
        after: active,
    })
}

/// What is wrong with a pin file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// It names a key of the cluster that the cluster no longer seals to.
    NotActive(PinnedKeyState),
    /// It lacks the cluster's active key.
    MissingActive,
    /// It names no key at all.
    NoKey,
    /// A line that is neither blank, a comment nor a recipient (why).
    InvalidLine(String),
}

impl ProblemKind {
    /// A short name: `decrypt-only`, `retired`, `deleted`,
    /// `missing-active`, `no-key`, `invalid-line`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::NotActive(state) => state.as_str(),
            ProblemKind::MissingActive => "missing-active",
            ProblemKind::NoKey => "no-key",
            ProblemKind::InvalidLine(_) => "invalid-line",
        }
    }
}

/// One problem of a pin file, for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The 1-based line it is on, if it is on one.
    pub line: Option<usize>,
    /// The key it is about: the stale key, or the missing active key.
    pub key_id: Option<KeyId>,
    /// What it is.
    pub kind: ProblemKind,
    /// Said in a sentence, naming the key and the context (never a line's
    /// content).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What is wrong with pin file `text` for `keys`' cluster: each cluster key
/// it names that is not active (decrypt-only, retired or deleted), the
/// active key when it lacks it, a file that names no key at all, and lines
/// that are not recipients. Empty when the file pins the active key and no
/// key of the cluster it no longer seals to.
pub fn check(text: &str, keys: &ClusterKeys) -> Vec<Problem> {
    let active = keys.active.key_id();
    let context = &keys.context;
    let mut problems = Vec::new();
    let mut any_recipient = false;
    let mut has_active = false;
    let lines = split_lines(text);
    let kinds = classify_all(&lines, keys);
    for (line, kind) in lines.iter().zip(&kinds) {
        let parsed = match recipient_line(line.text) {
            None => continue,
            Some(Err(reason)) => {
                problems.push(Problem {
                    line: Some(line.number),
                    key_id: None,
                    message: format!("not a recipient: {reason}"),
                    kind: ProblemKind::InvalidLine(reason),
                });
                continue;
            }
            Some(Ok(recipient)) => recipient,
        };
        any_recipient = true;
        let id = parsed.key_id();
        if id == active {
            has_active = true;
            continue;
        }
        let state = match (keys.listed_state(id), kind) {
            (Some(state), _) => state,
            // Under kseal's pin comment, but no longer listed.
            (None, Kind::Cluster(_)) => PinnedKeyState::Deleted,
            (None, _) if keys.held.contains(&id) => PinnedKeyState::Deleted,
            (None, _) => continue,
        };
        let why = match (state, kind) {
            (PinnedKeyState::Active, _) => continue,
            (PinnedKeyState::DecryptOnly, _) => {
                "is decrypt-only: the cluster no longer seals to it (renewed or rotated)"
            }
            (PinnedKeyState::Retired, _) => "is retired: the cluster no longer decrypts with it",
            (PinnedKeyState::Deleted, Kind::Cluster(_)) => {
                "is pinned by kseal for this context, but the cluster no longer lists it (deleted, or its record lost)"
            }
            (PinnedKeyState::Deleted, _) => {
                "is not listed by the cluster, but its record of held keys (kseal.dev/held-key-ids) names it: a key it deleted (remove the line by hand; kseal pins update keeps it), or a record someone else wrote, if this is your recovery key (compare with kseal keys list)"
            }
        };
        problems.push(Problem {
            line: Some(line.number),
            key_id: Some(id),
            kind: ProblemKind::NotActive(state),
            message: format!(
                "key {id} of context {context} {why}; its active key is {active} (kseal pins update)"
            ),
        });
    }
    if !any_recipient {
        problems.push(Problem {
            line: None,
            key_id: Some(active),
            kind: ProblemKind::NoKey,
            message: format!(
                "names no key at all; the active key of context {context} is {active} (kseal pins update)"
            ),
        });
    } else if !has_active {
        problems.push(Problem {
            line: None,
            key_id: Some(active),
            kind: ProblemKind::MissingActive,
            message: format!(
                "lacks the active key {active} of context {context} (kseal pins update)"
            ),
        });
    }
    problems
}

/// One line of a file: its text without the line end, and the line end
/// (`\n`, `\r\n`, or empty for a last line without one).
struct Line<'a> {
    number: usize,
    text: &'a str,
    eol: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(index, chunk)| {
            let (text, eol) = if let Some(text) = chunk.strip_suffix("\r\n") {
                (text, "\r\n")
            } else if let Some(text) = chunk.strip_suffix('\n') {
                (text, "\n")
            } else {
                (chunk, "")
            };
            Line {
                number: index + 1,
                text,
                eol,
            }
        })
        .collect()
}

/// A line's recipient: `None` for a blank or comment line, else the
/// recipient or why the line is none (never quoting it).
fn recipient_line(text: &str) -> Option<Result<Recipient, String>> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    Some(trimmed.parse::<Recipient>().map_err(|err| err.to_string()))
}

/// A line, as [`update`] sees it for one cluster.
enum Kind {
    /// A recipient of the cluster.
    Cluster(KeyId),
    /// A pin comment; `current` when it names the active key (and, for
    /// kseal's own, this context), so it need not be rewritten.
    PinComment { current: bool },
    /// Kept as it is.
    Other,
    /// Not a recipient (why).
    Invalid(String),
}

/// Every line's kind. The recipient right under kseal's own pin comment
/// for this context, whose key is the one the comment names (the pair
/// `update` wrote), is the cluster's even when the cluster no longer lists
/// that key: a key the cluster forgot (its record lost or flooded) is
/// still replaced, never kept as another recipient. Any other recipient
/// there (a recovery key someone moved) is not.
fn classify_all(lines: &[Line<'_>], keys: &ClusterKeys) -> Vec<Kind> {
    let mut kinds = Vec::with_capacity(lines.len());
    let mut pinned_above: Option<KeyId> = None;
    for line in lines {
        let mut kind = classify(line.text, keys);
        if let (Some(pinned), Kind::Other) = (pinned_above, &kind)
            && let Some(Ok(recipient)) = recipient_line(line.text)
            && recipient.key_id() == pinned
        {
            kind = Kind::Cluster(pinned);
        }
        pinned_above = our_pin_comment(line.text, keys);
        kinds.push(kind);
    }
    kinds
}

/// The key id kseal's pin comment for this context names, if the line is
/// one.
fn our_pin_comment(text: &str, keys: &ClusterKeys) -> Option<KeyId> {
    text.trim()
        .strip_prefix(PIN_COMMENT_PREFIX)
        .and_then(parse_pin_comment)
        .filter(|(_, context)| *context == keys.context)
        .and_then(|(id, _)| id)
}

fn classify(text: &str, keys: &ClusterKeys) -> Kind {
    let active = keys.active.key_id();
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix(PIN_COMMENT_PREFIX)
        && let Some((id, context)) = parse_pin_comment(rest)
        && (context == keys.context || id.is_some_and(|id| keys.is_cluster_key(id)))
    {
        return Kind::PinComment {
            current: id == Some(active) && context == keys.context,
        };
    }
    if let Some(rest) = trimmed.strip_prefix(FETCH_KEYS_COMMENT_PREFIX)
        && let Some(id) = rest
            .get(..16)
            .filter(|_| rest.len() == 16 || rest[16..].starts_with(" ("))
            .and_then(|id| id.parse::<KeyId>().ok())
        && keys.is_cluster_key(id)
    {
        return Kind::PinComment {
            current: id == active,
        };
    }
    match recipient_line(text) {
        None => Kind::Other,
        Some(Err(reason)) => Kind::Invalid(reason),
        Some(Ok(recipient)) if keys.is_cluster_key(recipient.key_id()) => {
            Kind::Cluster(recipient.key_id())
        }
        Some(Ok(_)) => Kind::Other,
    }
}

/// `<id> of context <context>, pinned <time>` (after the prefix): the key
/// id (`None` when it is not one) and the context.
fn parse_pin_comment(rest: &str) -> Option<(Option<KeyId>, &str)> {
    let (id, rest) = rest.split_once(" of context ")?;
    let (context, _time) = rest.rsplit_once(", pinned ")?;
    Some((id.parse().ok(), context))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::contract::PublishedKey;
    use crate::x25519::Identity;

    const AT: &str = "2026-03-01T10:00:00Z";
    const LATER: &str = "2026-04-01T10:00:00Z";

    /// A cluster's keys, newest first, with their states; the first active
    /// one is published. `deleted`: held once, no longer listed.
    struct Cluster {
        keys: Vec<(Identity, KeyState)>,
        deleted: Vec<Identity>,
    }

    impl Cluster {
        fn new(states: &[KeyState], deleted: usize) -> Self {
            Self {
                keys: states
                    .iter()
                    .map(|state| (Identity::generate(), *state))
                    .collect(),
                deleted: (0..deleted).map(|_| Identity::generate()).collect(),
            }
        }

        fn key(&self, index: usize) -> String {
            self.keys[index].0.recipient().to_string()
        }

        fn id(&self, index: usize) -> KeyId {
            self.keys[index].0.key_id()
        }

        fn deleted(&self, index: usize) -> String {
            self.deleted[index].recipient().to_string()
        }

        fn keys(&self, context: &str) -> ClusterKeys {
            let listed: Vec<PublishedKey> = self
                .keys
                .iter()
                .map(|(identity, state)| PublishedKey {
                    id: identity.key_id().to_string(),
                    recipient: identity.recipient().to_string(),
                    created: "2026-01-01T00:00:00Z".into(),
                    state: *state,
                })
                .collect();
            let active = self
                .keys
                .iter()
                .find(|(_, state)| *state == KeyState::Active)
                .unwrap();
            let recipients = format!("{}\n", active.0.recipient());
            let published =
                crate::published::check(&recipients, &serde_json::to_string(&listed).unwrap())
                    .unwrap();
            let mut held: Vec<KeyId> = self.deleted.iter().map(Identity::key_id).collect();
            held.extend(self.keys.iter().map(|(identity, _)| identity.key_id()));
            ClusterKeys::new(context, &published, &held)
        }
    }

    /// The usual case: active, the previous key decrypt-only.
    fn rotated() -> Cluster {
        Cluster::new(&[KeyState::Active, KeyState::DecryptOnly], 0)
    }

    fn recovery() -> String {
        Identity::generate().recipient().to_string()
    }

    #[test]
    fn a_rotated_key_is_replaced_in_place_and_the_rest_kept() {
        let cluster = rotated();
        let recovery = recovery();
        let (old, new) = (cluster.key(1), cluster.key(0));
        let text = format!(
            "# Public keys of the prod cluster\n{old}\n\n# recovery (offline)\n{recovery}   \n"
        );
        let keys = cluster.keys("prod");
        let update = update(&text, &keys, AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "# Public keys of the prod cluster\n# kseal: active key {} of context prod, pinned {AT}\n{new}\n\n# recovery (offline)\n{recovery}   \n",
                cluster.id(0)
            )
        );
        assert_eq!(update.before, vec![cluster.id(1)]);
        assert_eq!(update.after, cluster.id(0));
        assert_eq!(update.outcome, Outcome::Replaced);
        // Twice: nothing changes, the comment keeps its time.
        let again = super::update(&update.text, &keys, LATER).unwrap();
        assert_eq!(again.text, update.text);
        assert_eq!(again.outcome, Outcome::UpToDate);
        assert_eq!(again.before, vec![cluster.id(0)]);
    }

    #[test]
    fn several_cluster_lines_become_one_at_the_first() {
        // Every state of the cluster's keys, deleted ones included, and the
        // active key itself among them.
        let cluster = Cluster::new(
            &[KeyState::Active, KeyState::DecryptOnly, KeyState::Retired],
            1,
        );
        let recovery = recovery();
        let text = format!(
            "{recovery}\n{}\n# between\n{}\n{}\n{}\n# end\n",
            cluster.key(2),
            cluster.deleted(0),
            cluster.key(0),
            cluster.key(1)
        );
        let update = update(&text, &cluster.keys("c"), AT).unwrap();
        // A key only in the cluster's record of held keys (deleted) is
        // kept: that record is an annotation anyone able to write the
        // ConfigMap could fill with a recovery key's (public) id.
        assert_eq!(
            update.text,
            format!(
                "{recovery}\n# kseal: active key {} of context c, pinned {AT}\n{}\n# between\n{}\n# end\n",
                cluster.id(0),
                cluster.key(0),
                cluster.deleted(0)
            )
        );
        assert_eq!(
            update.before,
            vec![cluster.id(2), cluster.id(0), cluster.id(1)]
        );
        assert_eq!(update.outcome, Outcome::Replaced);
        // The check names it, and says why it was kept.
        let problems = check(&update.text, &cluster.keys("c"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].kind,
            ProblemKind::NotActive(PinnedKeyState::Deleted)
        );
        assert!(problems[0].message.contains("kseal pins update keeps it"));
        // Under kseal's own pin comment naming it, a key the cluster no
        // longer lists at all (its record lost) is the cluster's line: it
        // is replaced, never kept as another recipient.
        let forgotten = Identity::generate();
        let text = format!(
            "{recovery}\n# kseal: active key {} of context c, pinned {AT}\n{}\n",
            forgotten.recipient().key_id(),
            forgotten.recipient()
        );
        let problems = check(&text, &cluster.keys("c"));
        assert!(
            problems
                .iter()
                .any(|p| p.key_id == Some(forgotten.recipient().key_id())),
            "{problems:?}"
        );
        let update = super::update(&text, &cluster.keys("c"), AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "{recovery}\n# kseal: active key {} of context c, pinned {AT}\n{}\n",
                cluster.id(0),
                cluster.key(0)
            )
        );
        // A recipient moved under that comment that is not the key it
        // names (the recovery key) stays.
        let text = format!(
            "# kseal: active key {} of context c, pinned {AT}\n{recovery}\n",
            forgotten.recipient().key_id(),
        );
        let update = super::update(&text, &cluster.keys("c"), AT).unwrap();
        assert!(
            update.text.contains(&format!("{recovery}\n")),
            "{}",
            update.text
        );
        assert_eq!(update.outcome, Outcome::Appended);
        // The active key twice is not up to date either.
        let text = format!("{}\n{}\n", cluster.key(0), cluster.key(0));
        let update = super::update(&text, &cluster.keys("c"), AT).unwrap();
        assert_eq!(update.outcome, Outcome::Replaced);
        assert_eq!(update.text.matches(&cluster.key(0)).count(), 1);
    }

    #[test]
    fn crlf_files_stay_crlf_byte_for_byte() {
        let cluster = rotated();
        let recovery = recovery();
        let text = format!(
            "# prod\r\n{}\r\n# recovery\r\n{recovery}\r\n",
            cluster.key(1)
        );
        let update = update(&text, &cluster.keys("prod"), AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "# prod\r\n# kseal: active key {} of context prod, pinned {AT}\r\n{}\r\n# recovery\r\n{recovery}\r\n",
                cluster.id(0),
                cluster.key(0)
            )
        );
        // Appended to a CRLF file: CRLF too.
        let text = format!("# only a recovery key\r\n{recovery}\r\n");
        let update = super::update(&text, &cluster.keys("prod"), AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "{text}# kseal: active key {} of context prod, pinned {AT}\r\n{}\r\n",
                cluster.id(0),
                cluster.key(0)
            )
        );
    }

    #[test]
    fn a_file_without_a_final_line_break() {
        let cluster = rotated();
        let recovery = recovery();
        // The replaced line was the last: still no final line break.
        let text = format!("{recovery}\n{}", cluster.key(1));
        let update = update(&text, &cluster.keys("p"), AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "{recovery}\n# kseal: active key {} of context p, pinned {AT}\n{}",
                cluster.id(0),
                cluster.key(0)
            )
        );
        assert_eq!(
            super::update(&update.text, &cluster.keys("p"), LATER)
                .unwrap()
                .outcome,
            Outcome::UpToDate
        );
        // Appended: the last line gets its line break, then the key.
        let text = format!("# recovery\n{recovery}");
        let update = super::update(&text, &cluster.keys("p"), AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "{text}\n# kseal: active key {} of context p, pinned {AT}\n{}\n",
                cluster.id(0),
                cluster.key(0)
            )
        );
        assert_eq!(update.outcome, Outcome::Appended);
        assert!(update.before.is_empty());
        // A whole file on one line, CRLF elsewhere never seen: `\n`.
        let text = cluster.key(1);
        let update = super::update(&text, &cluster.keys("p"), AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "# kseal: active key {} of context p, pinned {AT}\n{}",
                cluster.id(0),
                cluster.key(0)
            )
        );
    }

    #[test]
    fn an_empty_file_or_one_without_cluster_lines_gets_the_key_appended() {
        let cluster = rotated();
        let keys = cluster.keys("p");
        let expected = format!(
            "# kseal: active key {} of context p, pinned {AT}\n{}\n",
            cluster.id(0),
            cluster.key(0)
        );
        for text in ["", "\n", "# nothing yet\n"] {
            let update = update(text, &keys, AT).unwrap();
            assert_eq!(update.text, format!("{text}{expected}"), "{text:?}");
            assert_eq!(update.outcome, Outcome::Appended);
        }
        // Another cluster's key is not this cluster's: kept, and appended to.
        let other = rotated();
        let text = format!("{}\n", other.key(0));
        let update = update(&text, &keys, AT).unwrap();
        assert_eq!(update.text, format!("{text}{expected}"));
    }

    #[test]
    fn pin_comments_are_replaced_never_accumulated() {
        let cluster = Cluster::new(
            &[KeyState::Active, KeyState::DecryptOnly, KeyState::Retired],
            0,
        );
        let recovery = recovery();
        let keys = cluster.keys("prod");
        // kseal's comment for this context (another key), for a key of this
        // cluster under a context since renamed, and fetch-keys' comments
        // for this cluster's keys; a comment about another key, and one
        // that merely looks alike, stay.
        let stranger = recovery.clone();
        let stranger_id = KeyId::of_recipient_str(&stranger);
        let text = format!(
            "# kseal: public keys of this cluster. Seal to these recipients.\n\
             # key id {} (active, created 2026-01-01T00:00:00Z)\n\
             # kseal: active key {} of context prod, pinned 2026-01-01T00:00:00Z\n\
             {}\n\
             # kseal: active key {} of context old-name, pinned 2025-12-01T00:00:00Z\n\
             # kseal: active key {stranger_id} of context other, pinned 2025-12-01T00:00:00Z\n\
             # key id {stranger_id} (active, created 2026-01-01T00:00:00Z)\n\
             # kseal: active key is something else\n\
             {stranger}\n",
            cluster.id(1),
            cluster.id(1),
            cluster.key(1),
            cluster.id(2),
        );
        let update = update(&text, &keys, AT).unwrap();
        assert_eq!(
            update.text,
            format!(
                "# kseal: public keys of this cluster. Seal to these recipients.\n\
                 # kseal: active key {} of context prod, pinned {AT}\n\
                 {}\n\
                 # kseal: active key {stranger_id} of context other, pinned 2025-12-01T00:00:00Z\n\
                 # key id {stranger_id} (active, created 2026-01-01T00:00:00Z)\n\
                 # kseal: active key is something else\n\
                 {stranger}\n",
                cluster.id(0),
                cluster.key(0),
            )
        );
        assert_eq!(update.text.matches("of context prod").count(), 1);
        assert_eq!(
            super::update(&update.text, &keys, LATER).unwrap().text,
            update.text
        );
    }

    #[test]
    fn up_to_date_files_are_left_alone_whatever_their_comments() {
        let cluster = rotated();
        let keys = cluster.keys("prod");
        // The active key, hand-pinned without a kseal comment, upper case,
        // indented: up to date, not rewritten.
        for text in [
            format!("{}\n", cluster.key(0)),
            format!("  {}\r\n# other\n", cluster.key(0).to_uppercase()),
            format!(
                "# key id {} (active, created 2026-01-01T00:00:00Z)\n{}\n",
                cluster.id(0),
                cluster.key(0)
            ),
        ] {
            let update = update(&text, &keys, AT).unwrap();
            assert_eq!(update.outcome, Outcome::UpToDate, "{text}");
            assert_eq!(update.text, text);
        }
        // A pin comment naming the wrong key, or another context, is
        // rewritten although the key is current.
        let text = format!(
            "# kseal: active key {} of context prod, pinned 2026-01-01T00:00:00Z\n{}\n",
            cluster.id(1),
            cluster.key(0)
        );
        let update = super::update(&text, &keys, AT).unwrap();
        assert_eq!(update.outcome, Outcome::Replaced);
        assert_eq!(
            update.text,
            format!(
                "# kseal: active key {} of context prod, pinned {AT}\n{}\n",
                cluster.id(0),
                cluster.key(0)
            )
        );
        let renamed = super::update(&update.text, &cluster.keys("prod-eu"), AT).unwrap();
        assert_eq!(renamed.outcome, Outcome::Replaced);
        assert!(renamed.text.contains("of context prod-eu,"));
        assert!(!renamed.text.contains("of context prod,"));
    }

    #[test]
    fn lines_that_are_not_recipients_are_refused_unquoted() {
        let cluster = rotated();
        let secret = Identity::generate();
        let secret = {
            use age::secrecy::ExposeSecret;
            secret.to_secret_string().expose_secret().to_owned()
        };
        for (text, line) in [
            (format!("{}\nnot-a-key\n", cluster.key(1)), 2),
            (format!("# ok\n{secret}\n"), 2),
            (format!("ssh-ed25519 AAAA\n{}", cluster.key(1)), 1),
        ] {
            let err = update(&text, &cluster.keys("p"), AT).unwrap_err();
            let PinError::InvalidLine { line: at, .. } = &err;
            assert_eq!(*at, line, "{text}");
            let message = err.to_string();
            assert!(!message.contains("not-a-key"), "{message}");
            assert!(
                !message.to_uppercase().contains("AGE-SECRET-KEY"),
                "{message}"
            );
            let problems = check(&text, &cluster.keys("p"));
            assert!(
                problems
                    .iter()
                    .any(|p| p.line == Some(line) && matches!(p.kind, ProblemKind::InvalidLine(_))),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn check_names_each_stale_key_and_the_missing_active_one() {
        let cluster = Cluster::new(
            &[KeyState::Active, KeyState::DecryptOnly, KeyState::Retired],
            1,
        );
        let keys = cluster.keys("prod");
        let recovery = recovery();
        let text = format!(
            "# prod\n{}\n{recovery}\n{}\n\n{}\n",
            cluster.key(1),
            cluster.key(2),
            cluster.deleted(0)
        );
        let problems = check(&text, &keys);
        let summary: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.key_id, p.kind.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    Some(2),
                    Some(cluster.id(1)),
                    ProblemKind::NotActive(PinnedKeyState::DecryptOnly)
                ),
                (
                    Some(4),
                    Some(cluster.id(2)),
                    ProblemKind::NotActive(PinnedKeyState::Retired)
                ),
                (
                    Some(6),
                    Some(cluster.deleted[0].key_id()),
                    ProblemKind::NotActive(PinnedKeyState::Deleted)
                ),
                (None, Some(cluster.id(0)), ProblemKind::MissingActive),
            ]
        );
        assert_eq!(
            problems[0].message,
            format!(
                "key {} of context prod is decrypt-only: the cluster no longer seals to it (renewed or rotated); its active key is {} (kseal pins update)",
                cluster.id(1),
                cluster.id(0)
            )
        );
        assert_eq!(
            problems[3].message,
            format!(
                "lacks the active key {} of context prod (kseal pins update)",
                cluster.id(0)
            )
        );
        // The active key next to a stale one: only the stale one.
        let text = format!("{}\n{}\n", cluster.key(0), cluster.key(1));
        let problems = check(&text, &keys);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(2));
        // After an update: nothing.
        let updated = update(&format!("{text}{recovery}\n"), &keys, AT).unwrap();
        assert!(check(&updated.text, &keys).is_empty());
    }

    #[test]
    fn check_passes_a_current_pin_and_fails_an_empty_file() {
        let cluster = rotated();
        let keys = cluster.keys("p");
        assert!(check(&format!("# c\n{}\n{}\n", recovery(), cluster.key(0)), &keys).is_empty());
        // Mid-rotation, an older key still active next to the published one.
        let mid = Cluster::new(&[KeyState::Active, KeyState::Active], 0);
        let text = format!("{}\n{}\n", mid.key(0), mid.key(1));
        assert!(check(&text, &mid.keys("p")).is_empty());
        // …but without the published one, it lacks the active key.
        let problems = check(&format!("{}\n", mid.key(1)), &mid.keys("p"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, ProblemKind::MissingActive);
        for text in ["", "# only comments\n\n"] {
            let problems = check(text, &keys);
            assert_eq!(problems.len(), 1, "{text:?}");
            assert_eq!(problems[0].kind, ProblemKind::NoKey);
            assert_eq!(problems[0].key_id, Some(cluster.id(0)));
        }
        // Only another cluster's key: lacks this one's.
        let problems = check(&format!("{}\n", rotated().key(0)), &keys);
        assert_eq!(problems[0].kind, ProblemKind::MissingActive);
    }

    /// Whatever the file, an update passes the check and a second update
    /// changes nothing; every line that is not the cluster's is kept, in
    /// order.
    #[test]
    fn update_is_idempotent_and_keeps_every_other_line() {
        let cluster = Cluster::new(
            &[KeyState::Active, KeyState::DecryptOnly, KeyState::Retired],
            1,
        );
        let keys = cluster.keys("prod");
        let recovery = recovery();
        let pieces = [
            cluster.key(0),
            cluster.key(1),
            cluster.key(2),
            cluster.deleted(0),
            recovery.clone(),
            "# a comment".to_owned(),
            String::new(),
            format!(
                "# kseal: active key {} of context prod, pinned x",
                cluster.id(1)
            ),
        ];
        let eols = ["\n", "\r\n"];
        // Every sequence of up to 4 pieces, with both line ends and with or
        // without a final one.
        let mut count = 0;
        for n in 0..=4u32 {
            for mut code in 0..pieces.len().pow(n) * 4 {
                let (eol, last) = (eols[code % 2], code / 2 % 2 == 0);
                code /= 4;
                let mut text = String::new();
                let mut chosen = Vec::new();
                for _ in 0..n {
                    chosen.push(&pieces[code % pieces.len()]);
                    code /= pieces.len();
                }
                for (i, piece) in chosen.iter().enumerate() {
                    text.push_str(piece);
                    if last || i + 1 < chosen.len() {
                        text.push_str(eol);
                    }
                }
                let first = update(&text, &keys, AT).unwrap();
                // Only a key in the record of held keys alone is left (and
                // named by the check): update keeps it, see above.
                assert!(
                    check(&first.text, &keys).iter().all(|problem| problem.kind
                        == ProblemKind::NotActive(PinnedKeyState::Deleted)
                        && problem.key_id == Some(cluster.deleted[0].key_id())),
                    "{text:?} → {:?}",
                    first.text
                );
                let second = update(&first.text, &keys, LATER).unwrap();
                assert_eq!(second.outcome, Outcome::UpToDate, "{text:?}");
                assert_eq!(second.text, first.text);
                // The kept lines, in order.
                let kept = |text: &str| -> Vec<String> {
                    let lines = split_lines(text);
                    let kinds = classify_all(&lines, &keys);
                    lines
                        .iter()
                        .zip(&kinds)
                        .filter(|(_, kind)| matches!(kind, Kind::Other))
                        .map(|(line, _)| line.text.to_owned())
                        .collect()
                };
                assert_eq!(kept(&first.text), kept(&text), "{text:?}");
                count += 1;
            }
        }
        assert!(count > 4000);
    }

    #[test]
    fn states_of_the_clusters_keys() {
        let cluster = Cluster::new(
            &[KeyState::Active, KeyState::DecryptOnly, KeyState::Retired],
            1,
        );
        let keys = cluster.keys("p");
        assert_eq!(keys.state(cluster.id(0)), Some(PinnedKeyState::Active));
        assert_eq!(keys.state(cluster.id(1)), Some(PinnedKeyState::DecryptOnly));
        assert_eq!(keys.state(cluster.id(2)), Some(PinnedKeyState::Retired));
        assert_eq!(
            keys.state(cluster.deleted[0].key_id()),
            Some(PinnedKeyState::Deleted)
        );
        assert_eq!(keys.state(Identity::generate().key_id()), None);
        assert_eq!(keys.active().key_id(), cluster.id(0));
        assert_eq!(
            ClusterKeys::new("a\nb", &published_of(&cluster), &[]).context(),
            "a?b"
        );
    }

    fn published_of(cluster: &Cluster) -> PublishedKeys {
        PublishedKeys {
            recipient: cluster.keys[0].0.recipient().clone(),
            keys: Vec::new(),
        }
    }

    #[test]
    fn lines_split_with_their_ends() {
        let parts: Vec<(usize, &str, &str)> = split_lines("a\r\nb\n\nc\rd\r\ne")
            .iter()
            .map(|line| (line.number, line.text, line.eol))
            .collect();
        assert_eq!(
            parts,
            vec![
                (1, "a", "\r\n"),
                (2, "b", "\n"),
                (3, "", "\n"),
                (4, "c\rd", "\r\n"),
                (5, "e", "")
            ]
        );
        assert!(split_lines("").is_empty());
        let lone_cr: Vec<_> = split_lines("x\r").iter().map(|l| (l.text, l.eol)).collect();
        assert_eq!(lone_cr, vec![("x\r", "")]);
    }
}
