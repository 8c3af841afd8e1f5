//! `kseal rewrap --online` in bulk: every SealedSecret of every file is
//! sent to the controller's `/v1/rewrap-batch` many at a time (within the
//! controller's limits: at most `MAX_VALUES` values per request and a body
//! well under its size limit), before any file is rewritten. A controller
//! without that endpoint gets one `/v1/rewrap` per object instead. Answers
//! `429` (the controller's request and work budgets) and `503` (busy) are
//! retried with backoff: a bulk re-wrap runs at the pace the controller
//! allows rather than failing.
//!
//! What answers is not trusted to be the controller (`--controller-url`
//! may be plain HTTP, or not the controller at all): every value that
//! comes back changed must be a re-wrap of the value sent
//! ([`SealedValue::check_rewrap_of`]: the same ciphertext and key
//! commitment, so the same plaintext) and be sealed to the cluster's
//! published key, read through whatever kubeconfig can be found (with
//! none at all, only to the same keys as every other value of the run).
//! One answer that is not refuses the whole run before any file is
//! written.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use kseal_shared::contract::{
    REWRAP_BATCH_PATH, REWRAP_PATH, RewrapBatchRequest, RewrapBatchResponse, ValueFailures,
};
use kseal_shared::envelope::{FormatVersion, RewrapChanges, SealedValue};
use kseal_shared::manifest::{DocumentKind, ManifestFile};
use kseal_shared::sealed_secret::{MAX_VALUES, SealedSecret};
use kseal_shared::validation;
use kseal_shared::x25519::KeyId;

use crate::cluster::{self, ApiResponse, ClusterArgs, ControllerApi};
use crate::io::Source;
use crate::walk::ManifestPath;

/// Body bytes per batch: half the controller's default 2 MiB limit.
const BATCH_BYTES: usize = 1024 * 1024;
/// How long one request is retried while the controller answers 429/503.
const RETRY_FOR: Duration = Duration::from_secs(300);

/// The outcome for one SealedSecret.
pub(crate) struct ObjectResult {
    pub encrypted: BTreeMap<String, String>,
    pub rewrapped: usize,
    /// Of those, upgraded from format v1.
    pub upgraded: usize,
    pub current: usize,
    pub failures: Vec<(String, String)>,
    /// What the re-wraps did to the recipients.
    pub changes: RecipientChanges,
}

/// The controller's answers for every SealedSecret of the files, by file
/// and ordinal of the SealedSecret in it (an error says why one has none).
#[derive(Default)]
pub(crate) struct Prefetched {
    /// With the object as it was sent, to apply an answer only to that.
    results: HashMap<(PathBuf, usize), (SealedSecret, Result<ObjectResult, String>)>,
    /// The cluster's keys, when they were read.
    cluster_keys: Option<HashSet<KeyId>>,
}

impl Prefetched {
    /// The cluster's keys (every state), when they were read.
    pub fn cluster_keys(&self) -> Option<&HashSet<KeyId>> {
        self.cluster_keys.as_ref()
    }

    /// The answer for the `ordinal`-th SealedSecret of `path`.
    /// The answer for the `ordinal`-th SealedSecret of `path`, which now
    /// reads as `current`: refused when the object changed since it was
    /// sent (an answer for an older value must not overwrite a newer one).
    pub fn take(
        &mut self,
        path: &Path,
        ordinal: usize,
        current: &SealedSecret,
    ) -> Result<ObjectResult> {
        match self.results.remove(&(path.to_owned(), ordinal)) {
            Some((sent, _))
                if sent.metadata.namespace != current.metadata.namespace
                    || sent.metadata.name != current.metadata.name
                    || sent.spec.scope != current.spec.scope
                    || sent.spec.encrypted_data != current.spec.encrypted_data =>
            {
                bail!("the file changed while the controller re-wrapped it; run kseal rewrap again")
            }
            Some((_, Ok(result))) => Ok(result),
            Some((_, Err(message))) => Err(anyhow!(message)),
            None => bail!("no answer from the controller for this object"),
        }
    }
}

/// One SealedSecret to send.
struct Pending {
    path: PathBuf,
    ordinal: usize,
    sealed: SealedSecret,
    bytes: usize,
}

/// The cluster's key ids as published: what to seal to and every key it
/// holds in any state (the keys a re-wrap may replace).
#[derive(Clone)]
pub(crate) struct ClusterKeyIds {
    /// The active key (what re-wrapped values must be wrapped to).
    pub active: HashSet<KeyId>,
    /// Every key the cluster lists, active, decrypt-only and retired.
    pub all: HashSet<KeyId>,
}

impl ClusterKeyIds {
    /// Reads and checks the published keys ([`cluster::fetch_published`]).
    pub(crate) fn fetch(cluster: &ClusterArgs) -> Result<Self> {
        let (_, published) = cluster::fetch_published(cluster)?;
        Ok(Self {
            active: HashSet::from([published.recipient.key_id()]),
            all: published
                .keys
                .iter()
                .filter_map(|key| key.id.parse().ok())
                .chain([published.recipient.key_id()])
                .collect(),
        })
    }
}

/// What the re-wrapped values of a run must look like.
pub(crate) enum Expected {
    /// The cluster's published keys, read through the API server (a
    /// channel that does not depend on who answers the re-wrap), and which
    /// kubeconfig they were read through, for messages: every value is
    /// wrapped afresh to the active key exactly, and drops only keys the
    /// cluster lists.
    Published(ClusterKeyIds, String),
    /// Unknown (`--controller-url` and no kubeconfig at all): at least
    /// every value of the run must be wrapped afresh to the same keys.
    Consistent(Option<BTreeSet<KeyId>>),
}

/// What the re-wraps of a run did to the recipients, for the summary: a
/// re-wrap never drops a recipient silently.
#[derive(Debug, Default, Clone)]
pub(crate) struct RecipientChanges {
    /// Key ids wrapped to afresh.
    pub fresh: BTreeSet<KeyId>,
    /// Key ids dropped, with how many values each.
    pub dropped: BTreeMap<KeyId, usize>,
    /// Key ids kept byte for byte, with how many values each.
    pub kept: BTreeMap<KeyId, usize>,
}

impl RecipientChanges {
    fn add(&mut self, changes: &RewrapChanges) {
        self.fresh.extend(changes.fresh.iter().copied());
        for id in &changes.dropped {
            *self.dropped.entry(*id).or_default() += 1;
        }
        for id in &changes.kept {
            *self.kept.entry(*id).or_default() += 1;
        }
    }

    /// Adds another run's (or object's) changes.
    pub(crate) fn merge(&mut self, other: &RecipientChanges) {
        self.fresh.extend(other.fresh.iter().copied());
        for (id, count) in &other.dropped {
            *self.dropped.entry(*id).or_default() += count;
        }
        for (id, count) in &other.kept {
            *self.kept.entry(*id).or_default() += count;
        }
    }

    /// The summary lines (empty when nothing was re-wrapped).
    pub(crate) fn summary(&self, cluster: Option<&HashSet<KeyId>>) -> Vec<String> {
        let ids = |ids: &mut dyn Iterator<Item = &KeyId>| {
            ids.map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        let counted = |map: &BTreeMap<KeyId, usize>| {
            map.iter()
                .map(|(id, count)| format!("{id} ({count} value(s))"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut lines = Vec::new();
        if self.fresh.is_empty() {
            return lines;
        }
        lines.push(format!(
            "kseal: wrapped to the cluster's key {}",
            ids(&mut self.fresh.iter())
        ));
        if !self.dropped.is_empty() {
            let (ours, others): (BTreeMap<KeyId, usize>, BTreeMap<KeyId, usize>) = self
                .dropped
                .iter()
                .partition(|(id, _)| cluster.is_some_and(|cluster| cluster.contains(*id)));
            if !ours.is_empty() {
                lines.push(format!(
                    "kseal: replaced the cluster's older key(s) {}",
                    counted(&ours)
                ));
            }
            if !others.is_empty() {
                lines.push(format!(
                    "kseal: warning: no longer sealed to key(s) {}{}",
                    counted(&others),
                    if cluster.is_some() {
                        ""
                    } else {
                        " (whether they are the cluster's is unknown without a kubeconfig)"
                    }
                ));
            }
        }
        if !self.kept.is_empty() {
            lines.push(format!(
                "kseal: kept the other recipient(s) byte for byte: {}",
                counted(&self.kept)
            ));
        }
        lines
    }
}

impl Expected {
    /// What to check the answers against: the published keys whenever a
    /// kubeconfig can be found (`--kubeconfig`, `$KUBECONFIG`,
    /// `~/.kube/config`; `published`, when already fetched for `--stale`).
    pub(crate) fn for_run(
        cluster: &ClusterArgs,
        published: Option<&ClusterKeyIds>,
    ) -> Result<Self> {
        let source = kubeconfig_source(cluster);
        if let Some(published) = published {
            return Ok(Expected::Published(
                published.clone(),
                source.unwrap_or_else(|| "the kubeconfig".to_owned()),
            ));
        }
        // Through the service proxy the kubeconfig is needed anyway. With
        // a direct URL, whatever kubeconfig is found is used too: a stand-in
        // on that URL is what the published key catches, and a kubeconfig
        // for another cluster fails the run loudly (the message names it),
        // never writes a wrong value.
        let source = match (source, &cluster.controller_url) {
            (Some(source), _) => source,
            // Reading the key fails, saying there is no kubeconfig.
            (None, None) => "the kubeconfig".to_owned(),
            (None, Some(_)) => {
                eprintln!(
                    "kseal: note: the answers are checked to keep every value's ciphertext and every recipient they keep, but not against the cluster's published key: there is no kubeconfig to read it through (pass --kubeconfig, or set $KUBECONFIG, for that)"
                );
                return Ok(Expected::Consistent(None));
            }
        };
        let published = ClusterKeyIds::fetch(cluster).map_err(|err| {
            err.context(format!(
                "cannot read the cluster's published key, which the controller's answers are held to (through {source})"
            ))
        })?;
        Ok(Expected::Published(published, source))
    }

    /// The cluster's keys, when known.
    pub(crate) fn cluster_keys(&self) -> Option<&HashSet<KeyId>> {
        match self {
            Expected::Published(published, _) => Some(&published.all),
            Expected::Consistent(_) => None,
        }
    }

    /// Checks what one re-wrap did to the recipients: wrapped afresh to
    /// the cluster's active key exactly; dropped only keys of the cluster
    /// (never a recovery key or another cluster's); kept no other key of
    /// the cluster.
    fn check(&mut self, changes: &RewrapChanges) -> Result<(), String> {
        let fresh: BTreeSet<KeyId> = changes.fresh.iter().copied().collect();
        let show = |ids: &mut dyn Iterator<Item = &KeyId>| {
            ids.map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        match self {
            Expected::Published(published, source) => {
                if fresh.len() != published.active.len()
                    || !fresh.iter().all(|id| published.active.contains(id))
                {
                    return Err(format!(
                        "it is wrapped to key id(s) {}, not to the cluster's published key {} (read through {source}; if a key rotation happened meanwhile, run the re-wrap again)",
                        show(&mut fresh.iter()),
                        show(&mut published.active.iter())
                    ));
                }
                let foreign: Vec<&KeyId> = changes
                    .dropped
                    .iter()
                    .filter(|id| !published.all.contains(*id))
                    .collect();
                if !foreign.is_empty() {
                    return Err(format!(
                        "it would no longer be sealed to key id(s) {}, which are not this cluster's keys (a recovery key, another cluster): an online re-wrap keeps every other recipient",
                        show(&mut foreign.into_iter())
                    ));
                }
                let stale: Vec<&KeyId> = changes
                    .kept
                    .iter()
                    .filter(|id| published.all.contains(*id) && !published.active.contains(*id))
                    .collect();
                if !stale.is_empty() {
                    return Err(format!(
                        "it is still sealed to the cluster's older key id(s) {}",
                        show(&mut stale.into_iter())
                    ));
                }
                Ok(())
            }
            Expected::Consistent(first) => match first {
                None => {
                    *first = Some(fresh);
                    Ok(())
                }
                Some(first) if *first == fresh => Ok(()),
                Some(first) => Err(format!(
                    "it is wrapped to key id(s) {}, other values of this run to {}",
                    show(&mut fresh.iter()),
                    show(&mut first.iter())
                )),
            },
        }
    }
}

/// Where the kubeconfig comes from ([`cluster::kubeconfig_file`]) and
/// which context, for messages; `None` when there is none and no
/// `--context` asks for one.
fn kubeconfig_source(cluster: &ClusterArgs) -> Option<String> {
    match (cluster::kubeconfig_file(cluster), &cluster.context) {
        (Some(file), Some(context)) => Some(format!("{file}, context {context}")),
        (Some(file), None) => Some(file),
        (None, Some(context)) => Some(format!("context {context}")),
        (None, None) => None,
    }
}

/// A value of an answer that is not a re-wrap of what was sent.
struct Refused {
    /// The data key (`None`: the object's key set itself).
    key: Option<String>,
    reason: String,
}

/// Reads every file and asks the controller to re-wrap every well-formed
/// SealedSecret in them, many per request. Objects that do not parse or
/// validate are left out: the per-file pass reports them. With `only_stale`
/// (`--stale`: the cluster's active key ids), so are objects none of whose
/// values is sealed to none of them. Every answer is checked (see the
/// module documentation); one that fails ends the run with an error,
/// before anything is written.
///
/// A format v1 value in an object to send refuses the run before anything
/// is sent, unless `trust_v1` (`--trust-controller-for-v1`): v1 is not
/// key-committing, so [`SealedValue::check_rewrap_of`] cannot tell the
/// controller's upgrade of it from another value of the same length sealed
/// to the cluster's key.
pub(crate) fn prefetch(
    files: &[ManifestPath],
    cluster: &ClusterArgs,
    only_stale: Option<&ClusterKeyIds>,
    trust_v1: bool,
) -> Result<Prefetched> {
    let mut pending = Vec::new();
    let mut v1_values = Vec::new();
    for file in files {
        let path = &file.path;
        let Ok(text) = Source::File(path.clone()).read() else {
            continue;
        };
        let file = ManifestFile::new(&text);
        let Ok(objects) = file.objects() else {
            continue;
        };
        let sealed_objects = objects
            .iter()
            .filter(|o| o.kind == DocumentKind::SealedSecret);
        for (ordinal, object) in sealed_objects.enumerate() {
            let Ok(sealed) = kseal_shared::sealed_secret::from_document(&object.value) else {
                continue;
            };
            if !validation::sealed_secret_problems(&sealed).is_empty() {
                continue;
            }
            if let Some(ClusterKeyIds { active, .. }) = only_stale
                && !sealed
                    .spec
                    .encrypted_data
                    .values()
                    .any(|value| is_stale(value, active))
            {
                continue;
            }
            // Every v1 value of an object sent, stale or not: the
            // controller upgrades each it is given.
            {
                for (key, value) in &sealed.spec.encrypted_data {
                    if let Ok(v1) = SealedValue::parse(value)
                        && v1.version() == FormatVersion::V1
                    {
                        v1_values.push((
                            format!(
                                "  {}: SealedSecret {}: key {key:?}",
                                path.display(),
                                object_name(&sealed)
                            ),
                            v1.key_ids().to_vec(),
                        ));
                    }
                }
            }
            let bytes = serde_json::to_vec(&sealed)?.len();
            pending.push(Pending {
                path: path.clone(),
                ordinal,
                sealed,
                bytes,
            });
        }
    }
    if !v1_values.is_empty() && !trust_v1 {
        bail!(
            "{} format v1 value(s), which an online re-wrap would upgrade unchecked (v1 is not key-committing: whoever answers could return another value sealed to the cluster's key), so nothing was sent or written:\n{}\nupgrade them offline with `kseal rewrap -i IDENTITY …` (a backed-up key that opens them), or pass --trust-controller-for-v1 to take the controller's word for them",
            v1_values.len(),
            v1_values
                .iter()
                .map(|(at, _)| at.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let mut prefetched = Prefetched {
        results: HashMap::new(),
        cluster_keys: None,
    };
    if pending.is_empty() {
        return Ok(prefetched);
    }
    let mut expected = Expected::for_run(cluster, only_stale)?;
    prefetched.cluster_keys = expected.cluster_keys().cloned();
    // An upgrade makes a new data key, so it cannot keep the stanzas of
    // other recipients: refuse before anything is sent.
    if let Some(cluster_keys) = expected.cluster_keys() {
        let keeping: Vec<String> = v1_values
            .iter()
            .filter(|(_, ids)| ids.iter().any(|id| !cluster_keys.contains(id)))
            .map(|(at, ids)| {
                let others: Vec<String> = ids
                    .iter()
                    .filter(|id| !cluster_keys.contains(*id))
                    .map(ToString::to_string)
                    .collect();
                format!("{at}: also sealed to {}", others.join(", "))
            })
            .collect();
        if !keeping.is_empty() {
            bail!(
                "{} format v1 value(s) are also sealed to keys that are not this cluster's (a recovery key, another cluster); upgrading one online makes a new data key, which only the cluster's key would open, so nothing was sent or written:\n{}\nupgrade them offline to every recipient: `kseal rewrap -i IDENTITY -R RECIPIENTS_FILE --in-place …` (an identity that opens them, such as the recovery key)",
                keeping.len(),
                keeping.join("\n")
            );
        }
    }
    let api = ControllerApi::connect(cluster)?;
    let mut batch_endpoint = true;
    for batch in batches(pending) {
        let mut answers = None;
        if batch_endpoint {
            answers = send_batch(&api, &batch, &mut expected)?;
            // None: an older controller; one object per request from now on.
            batch_endpoint = answers.is_some();
        }
        let answers = match answers {
            Some(answers) => answers,
            None => batch
                .iter()
                .map(|item| match rewrap_one(&api, &item.sealed, &mut expected) {
                    Ok(answer) => answer,
                    Err(err) => Ok(Err(format!("{err:#}"))),
                })
                .collect(),
        };
        let mut refused = Vec::new();
        for (item, answer) in batch.into_iter().zip(answers) {
            match answer {
                Ok(result) => {
                    prefetched
                        .results
                        .insert((item.path, item.ordinal), (item.sealed, result));
                }
                Err(values) => {
                    let at = format!(
                        "{}: SealedSecret {}",
                        item.path.display(),
                        object_name(&item.sealed)
                    );
                    refused.extend(values.into_iter().map(|value| match value.key {
                        Some(key) => format!("  {at}: key {key:?}: {}", value.reason),
                        None => format!("  {at}: {}", value.reason),
                    }));
                }
            }
        }
        if !refused.is_empty() {
            let from = match &cluster.controller_url {
                Some(url) => format!("the answer from {url} (is it the kseal controller?)"),
                None => "the controller's answer (through the API server's service proxy)".into(),
            };
            bail!(
                "{from} is not a faithful re-wrap of what was sent, so nothing was written:\n{}",
                refused.join("\n")
            );
        }
    }
    Ok(prefetched)
}

fn object_name(sealed: &SealedSecret) -> String {
    match &sealed.metadata.namespace {
        Some(namespace) => format!(
            "{namespace}/{}",
            sealed.metadata.name.as_deref().unwrap_or("")
        ),
        None => sealed.metadata.name.clone().unwrap_or_default(),
    }
}

/// Whether a well-formed value names none of the `active` key ids.
pub(crate) fn is_stale(value: &str, active: &HashSet<KeyId>) -> bool {
    SealedValue::parse(value)
        .is_ok_and(|value| !value.key_ids().iter().any(|id| active.contains(id)))
}

/// Groups objects into batches of at most `MAX_VALUES` values (and
/// objects) and about `BATCH_BYTES` of body; an object larger than that
/// goes alone.
fn batches(pending: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut batches: Vec<Vec<Pending>> = Vec::new();
    let mut current: Vec<Pending> = Vec::new();
    let (mut values, mut bytes) = (0, 0);
    for item in pending {
        let item_values = item.sealed.spec.encrypted_data.len();
        let full = values + item_values > MAX_VALUES
            || bytes + item.bytes > BATCH_BYTES
            || current.len() >= MAX_VALUES;
        if full && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
            (values, bytes) = (0, 0);
        }
        values += item_values;
        bytes += item.bytes;
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// POSTs `body` to `path`, retrying while the controller answers 429 or
/// 503 (its budgets), with backoff from 100 ms to 400 ms: a batch at the
/// value cap costs more than the work budget's one-second burst, so it
/// waits ~1.5 s at the default budget; a short cap keeps the wait close to
/// that (a longer one measured ~35% slower in bulk) for at most 2.5 of the
/// controller's 20 requests a second.
fn post_retrying(api: &ControllerApi, path: &str, body: &[u8]) -> Result<ApiResponse> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        let response = api.send(path, body.to_vec())?;
        let busy = response.status == 429 || response.status == 503 && !response.body.is_empty();
        if !busy || started.elapsed() > RETRY_FOR {
            return Ok(response);
        }
        std::thread::sleep(wait);
        wait = (wait * 3 / 2).min(Duration::from_millis(400));
    }
}

/// The answer for one object: its result (or why the controller could not
/// re-wrap it), or the values that are not a re-wrap of what was sent.
type Answer = Result<Result<ObjectResult, String>, Vec<Refused>>;

/// One batch; `None` if the controller has no batch endpoint.
fn send_batch(
    api: &ControllerApi,
    batch: &[Pending],
    expected: &mut Expected,
) -> Result<Option<Vec<Answer>>> {
    let request = RewrapBatchRequest {
        items: batch.iter().map(|item| item.sealed.clone()).collect(),
    };
    let response = post_retrying(api, REWRAP_BATCH_PATH, &serde_json::to_vec(&request)?)?;
    match response.status {
        200 => {}
        404 | 405 => return Ok(None),
        status => {
            let message = format!(
                "the controller refused (HTTP {status}): {}",
                cluster::error_message(&response.body)
            );
            return Ok(Some(
                batch.iter().map(|_| Ok(Err(message.clone()))).collect(),
            ));
        }
    }
    let answer: RewrapBatchResponse = serde_json::from_slice(&response.body)
        .map_err(|err| anyhow!("unexpected answer from the controller: {err}"))?;
    if answer.items.len() != batch.len() {
        bail!(
            "the controller answered {} results for {} objects",
            answer.items.len(),
            batch.len()
        );
    }
    let results = batch
        .iter()
        .zip(answer.items)
        .map(|(item, answer)| {
            let sent = &item.sealed.spec.encrypted_data;
            match answer.encrypted_data {
                Some(encrypted) => checked(sent, encrypted, expected).map(Ok),
                None => Ok(Ok(ObjectResult {
                    encrypted: sent.clone(),
                    rewrapped: 0,
                    upgraded: 0,
                    current: 0,
                    changes: RecipientChanges::default(),
                    failures: answer
                        .failures
                        .into_iter()
                        .map(|(key, failure)| (key, failure.message))
                        .collect(),
                })),
            }
        })
        .collect();
    Ok(Some(results))
}

/// The controller's new values for an object, checked: the keys sent, and
/// every changed value a re-wrap of the value sent, sealed to the
/// `expected` keys. Counts what changed.
fn checked(
    sent: &BTreeMap<String, String>,
    encrypted: BTreeMap<String, String>,
    expected: &mut Expected,
) -> Result<ObjectResult, Vec<Refused>> {
    if encrypted.keys().ne(sent.keys()) {
        return Err(vec![Refused {
            key: None,
            reason: "the answer has other data keys than were sent".to_owned(),
        }]);
    }
    let mut refused = Vec::new();
    let mut rewrapped = 0;
    let mut changes = RecipientChanges::default();
    for (key, new) in &encrypted {
        let Some(old) = sent.get(key).filter(|old| *old != new) else {
            continue;
        };
        match check_value(old, new, expected) {
            Ok(value_changes) => {
                rewrapped += 1;
                changes.add(&value_changes);
            }
            Err(reason) => refused.push(Refused {
                key: Some(key.clone()),
                reason,
            }),
        }
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let is_v1 = |value: &String| {
        SealedValue::parse(value).is_ok_and(|value| value.version() == FormatVersion::V1)
    };
    let upgraded = sent
        .iter()
        .filter(|(key, value)| is_v1(value) && encrypted.get(*key).is_some_and(|new| !is_v1(new)))
        .count();
    Ok(ObjectResult {
        encrypted,
        rewrapped,
        upgraded,
        current: sent.len() - rewrapped,
        failures: Vec::new(),
        changes,
    })
}

/// Checks one changed value: it parses, it is a re-wrap of the value sent
/// (same ciphertext and key commitment), wrapped afresh to the expected
/// keys, keeping every other recipient (see [`Expected::check`]); gives
/// what it did to the recipients.
fn check_value(old: &str, new: &str, expected: &mut Expected) -> Result<RewrapChanges, String> {
    let new = SealedValue::parse(new)
        .map_err(|err| format!("the answer is not a sealed value kseal reads: {err}"))?;
    // The values sent were validated: each parses.
    let old = SealedValue::parse(old).map_err(|err| format!("the value sent: {err}"))?;
    new.check_rewrap_of(&old).map_err(|mismatch| {
        format!("{mismatch}: a re-wrap changes only the key ids and the wrapped data key, so this would be another value")
    })?;
    let changes = new.rewrap_changes(&old);
    expected.check(&changes)?;
    Ok(changes)
}

/// Sends one object to the controller's `/v1/rewrap`; only its
/// `encryptedData` is taken from the answer.
fn rewrap_one(
    api: &ControllerApi,
    sealed: &SealedSecret,
    expected: &mut Expected,
) -> Result<Answer> {
    let response = post_retrying(api, REWRAP_PATH, &serde_json::to_vec(sealed)?)?;
    match response.status {
        200 => {
            let answer: SealedSecret = serde_json::from_slice(&response.body)
                .map_err(|err| anyhow!("unexpected answer from the controller: {err}"))?;
            Ok(checked(
                &sealed.spec.encrypted_data,
                answer.spec.encrypted_data,
                expected,
            )
            .map(Ok))
        }
        422 => {
            let answer: ValueFailures = serde_json::from_slice(&response.body)
                .map_err(|err| anyhow!("unexpected answer from the controller: {err}"))?;
            Ok(Ok(Ok(ObjectResult {
                encrypted: sealed.spec.encrypted_data.clone(),
                rewrapped: 0,
                upgraded: 0,
                current: 0,
                changes: RecipientChanges::default(),
                failures: answer
                    .values
                    .into_iter()
                    .map(|(key, failure)| (key, failure.message))
                    .collect(),
            })))
        }
        404 => bail!(
            "the kseal controller did not answer at {REWRAP_PATH} (HTTP 404); check --controller-namespace/--controller-service or use --controller-url"
        ),
        status => bail!(
            "the controller refused (HTTP {status}): {}",
            cluster::error_message(&response.body)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(values: usize, bytes: usize) -> Pending {
        let mut sealed = SealedSecret::new("x", Default::default());
        for k in 0..values {
            sealed
                .spec
                .encrypted_data
                .insert(format!("k{k}"), String::new());
        }
        Pending {
            path: PathBuf::new(),
            ordinal: 0,
            sealed,
            bytes,
        }
    }

    /// Batches stay within the value cap and the byte budget; an object
    /// over the byte budget goes alone; order is kept.
    #[test]
    fn batches_respect_the_limits() {
        let sizes =
            |batches: &[Vec<Pending>]| -> Vec<usize> { batches.iter().map(Vec::len).collect() };
        // 5 values each: 204 objects (1,020 values) per batch.
        let all: Vec<Pending> = (0..500).map(|_| pending(5, 100)).collect();
        assert_eq!(sizes(&batches(all)), vec![204, 204, 92]);
        // Bytes bind first.
        let all: Vec<Pending> = (0..10).map(|_| pending(1, BATCH_BYTES / 4)).collect();
        assert_eq!(sizes(&batches(all)), vec![4, 4, 2]);
        // Too large alone: on its own, neighbours unaffected.
        let all = vec![pending(1, 10), pending(1, BATCH_BYTES + 1), pending(1, 10)];
        assert_eq!(sizes(&batches(all)), vec![1, 1, 1]);
        // Objects without values still count against the object cap.
        let all: Vec<Pending> = (0..MAX_VALUES + 1).map(|_| pending(0, 1)).collect();
        assert_eq!(sizes(&batches(all)), vec![MAX_VALUES, 1]);
        // Exactly at the value cap: one batch.
        let all: Vec<Pending> = (0..2).map(|_| pending(MAX_VALUES / 2, 1)).collect();
        assert_eq!(sizes(&batches(all)), vec![2]);
        assert!(batches(Vec::new()).is_empty());
    }
}
