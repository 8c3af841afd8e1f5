//! Restarts for `spec.rollout`: when the controller changes a Secret's
//! data, the Deployments, StatefulSets and DaemonSets of that namespace
//! that would keep an old value are restarted, as `kubectl rollout
//! restart` does it (a pod-template annotation), each once per batch.
//!
//! Which workloads: [`kseal_shared::consumers`] reads each pod template;
//! `EnvConsumers` restarts those that read a changed key through env or a
//! `subPath` mount, `AllConsumers` also those that mount it as a file.
//!
//! Batching: a GitOps sync applies many SealedSecrets within a second or
//! two. Changes are gathered per namespace until none has come for
//! `--rollout-batch-window` (at most [`MAX_BATCH_WINDOWS`] windows after
//! the first), then each workload is patched once for all of them.
//!
//! The batch lives in memory only: a controller that stops between writing
//! the Secret and the end of the window restarts nothing for that change
//! (docs/rollout.md says so, and how to restart by hand).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, PodTemplateSpec};
use kseal_shared::consumers::{self, SecretRead};
use kseal_shared::contract::{
    RESTARTED_AT_ANNOTATION, RESTARTED_FOR_ANNOTATION, RESTARTED_FOR_MAX,
};
use kseal_shared::error_text::describe;
use kseal_shared::sealed_secret::Rollout;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::events::EventSink;
use crate::metrics::Metrics;

/// A batch is restarted at the latest this many windows after its first
/// change, however often changes keep coming.
pub(crate) const MAX_BATCH_WINDOWS: u32 = 6;
/// Attempts at a list or patch that fails for a reason other than the
/// request itself (a 5xx, a timeout): once, and twice more after a pause.
const ATTEMPTS: u32 = 3;

/// One SealedSecret's change to its Secret's data.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The SealedSecret, for its Events.
    pub sealed: ObjectReference,
    /// Its name, which is the Secret's.
    pub name: String,
    /// The data keys whose values changed, were added or were removed.
    pub keys: BTreeSet<String>,
    /// `spec.rollout`.
    pub rollout: Rollout,
}

/// Settings: `--rollout-restarts`, `--rollout-batch-window` and
/// `--rollout-min-interval`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RolloutSettings {
    /// Whether workloads are restarted at all.
    pub enabled: bool,
    /// How long a batch waits for more changes.
    pub window: Duration,
    /// The least time between two batches of one namespace: a Secret that
    /// someone else keeps changing back (another controller, a replicator)
    /// restarts its consumers at most this often.
    pub min_interval: Duration,
}

/// The changes of one namespace waiting to be acted on.
struct Batch {
    changes: Vec<Change>,
    first: Instant,
    last: Instant,
}

/// Gathers changes and restarts their consumers (see the module docs).
pub(crate) struct Rollouts {
    settings: RolloutSettings,
    client: Client,
    events: EventSink,
    metrics: Arc<Metrics>,
    pending: Mutex<HashMap<String, Batch>>,
    /// When each namespace's last batch closed (see `min_interval`).
    closed: Mutex<HashMap<String, Instant>>,
    /// Changes of recreates that stopped after the delete, by namespace
    /// and name, until the Secret is created again.
    interrupted: Mutex<HashMap<(String, String), Change>>,
}

impl Rollouts {
    pub(crate) fn new(
        settings: RolloutSettings,
        client: Client,
        events: EventSink,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            settings,
            client,
            events,
            metrics,
            pending: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
            interrupted: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers the change of a recreate that is about to delete the
    /// Secret (see [`Rollouts::take_interrupted`]).
    pub(crate) fn remember_interrupted(&self, namespace: &str, change: Change) {
        if let Ok(mut interrupted) = self.interrupted.lock() {
            interrupted.insert((namespace.to_owned(), change.name.clone()), change);
        }
    }

    /// The change remembered for `namespace`/`name`, forgotten now: the
    /// Secret exists again.
    pub(crate) fn take_interrupted(&self, namespace: &str, name: &str) -> Option<Change> {
        self.interrupted
            .lock()
            .ok()?
            .remove(&(namespace.to_owned(), name.to_owned()))
    }

    /// Takes a change made in `namespace`; its restarts follow when the
    /// batch closes. With restarts disabled, the SealedSecret gets a
    /// `RolloutDisabled` Warning instead.
    pub(crate) fn submit(self: &Arc<Self>, namespace: &str, change: Change) {
        if change.keys.is_empty() {
            return;
        }
        if !self.settings.enabled {
            let note = format!(
                "spec.rollout is {}, but this controller restarts no workloads (chart value rollout.enabled, flag --rollout-restarts); restart the consumers of {} yourself",
                change.rollout,
                key_list(&change.keys)
            );
            self.event(&change.sealed, EventType::Warning, "RolloutDisabled", note);
            return;
        }
        let now = Instant::now();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some(batch) = pending.get_mut(namespace) {
            batch.changes.push(change);
            batch.last = now;
            return;
        }
        pending.insert(
            namespace.to_owned(),
            Batch {
                changes: vec![change],
                first: now,
                last: now,
            },
        );
        let this = Arc::clone(self);
        let namespace = namespace.to_owned();
        tokio::spawn(async move { this.close_batch(namespace).await });
    }

    /// Waits until the batch of `namespace` is due, then restarts.
    async fn close_batch(self: Arc<Self>, namespace: String) {
        loop {
            let wait = {
                let Ok(pending) = self.pending.lock() else {
                    return;
                };
                let Some(batch) = pending.get(&namespace) else {
                    return;
                };
                let window = self.settings.window;
                let mut due = (batch.last + window).min(batch.first + window * MAX_BATCH_WINDOWS);
                if let Some(closed) = self
                    .closed
                    .lock()
                    .ok()
                    .and_then(|closed| closed.get(&namespace).copied())
                {
                    due = due.max(closed + self.settings.min_interval);
                }
                due.saturating_duration_since(Instant::now())
            };
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let changes = match self.pending.lock() {
            Ok(mut pending) => pending
                .remove(&namespace)
                .map(|batch| batch.changes)
                .unwrap_or_default(),
            Err(_) => return,
        };
        if let Ok(mut closed) = self.closed.lock() {
            let now = Instant::now();
            // Bounded: entries older than the interval mean nothing.
            closed.retain(|_, at| now.duration_since(*at) < self.settings.min_interval);
            closed.insert(namespace.clone(), now);
        }
        self.restart(&namespace, &merged(changes)).await;
    }

    /// Restarts, once each, the workloads of `namespace` that `changes`
    /// call for.
    pub(crate) async fn restart(&self, namespace: &str, changes: &[Change]) {
        let at = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        self.restart_kind::<Deployment>(namespace, changes, &at, |d| {
            let held = d.spec.paused == Some(true);
            (
                Some(&d.spec.template),
                held.then(|| "it is paused".to_owned()),
            )
        })
        .await;
        self.restart_kind::<StatefulSet>(namespace, changes, &at, |s| {
            let strategy = s.spec.update_strategy.as_ref();
            let held = if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
                Some("its updateStrategy is OnDelete".to_owned())
            } else {
                strategy
                    .and_then(|u| u.rolling_update.as_ref())
                    .and_then(|r| r.partition)
                    .filter(|partition| *partition > 0)
                    .map(|partition| format!("its rollingUpdate.partition is {partition}"))
            };
            (Some(&s.spec.template), held)
        })
        .await;
        self.restart_kind::<DaemonSet>(namespace, changes, &at, |d| {
            let on_delete = d
                .spec
                .update_strategy
                .as_ref()
                .and_then(|u| u.type_.as_deref())
                == Some("OnDelete");
            (
                Some(&d.spec.template),
                on_delete.then(|| "its updateStrategy is OnDelete".to_owned()),
            )
        })
        .await;
    }

    async fn restart_kind<K>(
        &self,
        namespace: &str,
        changes: &[Change],
        at: &str,
        template: impl Fn(&K) -> (Option<&PodTemplateSpec>, Option<String>),
    ) where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + Debug
            + DeserializeOwned,
    {
        let kind = <K as k8s_openapi::Resource>::KIND;
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let listed = list_all(&api).await;
        let workloads = match listed {
            Ok(workloads) => workloads,
            Err(err) => {
                for change in changes {
                    self.event(
                        &change.sealed,
                        EventType::Warning,
                        "RestartFailed",
                        format!(
                            "could not list the {kind}s of namespace {namespace} to restart those that read {}: {}",
                            key_list(&change.keys),
                            describe(&err)
                        ),
                    );
                }
                self.metrics.count_restart(kind, "failed");
                return;
            }
        };
        for workload in &workloads {
            let (template, held_back) = template(workload);
            let Some(spec) = template.and_then(|t| t.spec.as_ref()) else {
                continue;
            };
            let reads = consumers::secret_reads(spec);
            let causes = restart_causes(&reads, changes);
            if causes.is_empty() {
                continue;
            }
            let name = workload.name_any();
            let reason = restarted_for(&causes);
            let patch = serde_json::json!({
                "spec": {"template": {"metadata": {"annotations": {
                    RESTARTED_AT_ANNOTATION: at,
                    RESTARTED_FOR_ANNOTATION: reason,
                }}}}
            });
            let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
            let result = retrying(|| api.patch(&name, &params, &patch)).await;
            let reference = workload.object_ref(&());
            match result {
                Ok(_) if held_back.is_some() => {
                    // Annotated, but the workload's own settings keep its
                    // pods: say so rather than "restarted".
                    self.metrics.count_restart(kind, "held");
                    let why = held_back.unwrap_or_default();
                    let note = format!(
                        "kseal set {RESTARTED_AT_ANNOTATION}, but {why}: its pods are not replaced until that changes ({})",
                        described(&causes)
                    );
                    self.event(&reference, EventType::Warning, "RestartHeldBack", note);
                    for (change, reads) in &causes {
                        self.event(
                            &change.sealed,
                            EventType::Warning,
                            "RestartHeldBack",
                            format!(
                                "{kind} {name} reads {} and was annotated for a restart, but {why}: its pods keep the old value until that changes",
                                described_reads(change, reads)
                            ),
                        );
                    }
                }
                Ok(_) => {
                    self.metrics.count_restart(kind, "ok");
                    tracing::info!(kind, namespace, name = %name, changed = %reason, "restarted a workload that read changed Secret keys");
                    self.event(
                        &reference,
                        EventType::Normal,
                        "Restarted",
                        format!("kseal restarted the pods: {}", described(&causes)),
                    );
                    for (change, reads) in &causes {
                        self.event(
                            &change.sealed,
                            EventType::Normal,
                            "Restarted",
                            format!(
                                "restarted {kind} {name}, which read {}",
                                described_reads(change, reads)
                            ),
                        );
                    }
                }
                Err(err) => {
                    self.metrics.count_restart(kind, "failed");
                    let why = describe(&err);
                    tracing::warn!(kind, namespace, name = %name, error = %why, "could not restart a workload");
                    for (change, reads) in &causes {
                        self.event(
                            &change.sealed,
                            EventType::Warning,
                            "RestartFailed",
                            format!(
                                "could not restart {kind} {name}, which reads {}: {why}",
                                described_reads(change, reads)
                            ),
                        );
                    }
                }
            }
        }
    }

    fn event(&self, reference: &ObjectReference, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Restart".to_owned(),
            secondary: None,
        };
        self.events.publish(event, reference.clone());
    }
}

/// One change per SealedSecret (by uid, else name): the union of its keys
/// and the stronger of its `spec.rollout`s.
pub(crate) fn merged(changes: Vec<Change>) -> Vec<Change> {
    let mut by_object: BTreeMap<(String, String), Change> = BTreeMap::new();
    for change in changes {
        let id = (
            change.name.clone(),
            change.sealed.uid.clone().unwrap_or_default(),
        );
        match by_object.get_mut(&id) {
            Some(seen) => {
                seen.keys.extend(change.keys);
                // The stronger: a change asking for file readers keeps them.
                if change.rollout == Rollout::AllConsumers {
                    seen.rollout = Rollout::AllConsumers;
                }
            }
            None => {
                by_object.insert(id, change);
            }
        }
    }
    by_object.into_values().collect()
}

/// The changes that call for restarting a workload whose pod template
/// reads `reads`, each with the reads that do.
pub(crate) fn restart_causes<'a>(
    reads: &'a [SecretRead],
    changes: &'a [Change],
) -> Vec<(&'a Change, Vec<&'a SecretRead>)> {
    changes
        .iter()
        .filter_map(|change| {
            let reads =
                consumers::restarting_reads(reads, &change.name, &change.keys, change.rollout);
            (!reads.is_empty()).then_some((change, reads))
        })
        .collect()
}

/// [`RESTARTED_FOR_ANNOTATION`]: `db: password,user; api: token`, the
/// changed keys each workload reads, cut to [`RESTARTED_FOR_MAX`] bytes.
pub(crate) fn restarted_for(causes: &[(&Change, Vec<&SecretRead>)]) -> String {
    let text = causes
        .iter()
        .map(|(change, reads)| {
            let keys: Vec<&str> = read_keys(change, reads);
            format!("{}: {}", change.name, keys.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ");
    cut(text, RESTARTED_FOR_MAX)
}

/// The changed keys of `change` that `reads` read.
fn read_keys<'a>(change: &'a Change, reads: &[&SecretRead]) -> Vec<&'a str> {
    change
        .keys
        .iter()
        .filter(|key| {
            reads
                .iter()
                .any(|read| read.restart_for(key, change.rollout))
        })
        .map(String::as_str)
        .collect()
}

fn described(causes: &[(&Change, Vec<&SecretRead>)]) -> String {
    causes
        .iter()
        .map(|(change, reads)| {
            format!(
                "SealedSecret {} changed {}",
                change.name,
                described_reads(change, reads)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `password (env DB_PASSWORD in container app)`.
fn described_reads(change: &Change, reads: &[&SecretRead]) -> String {
    let keys = read_keys(change, reads).join(", ");
    let how: BTreeSet<String> = reads
        .iter()
        .map(|read| format!("{} in container {}", read.describe(), read.container))
        .collect();
    format!(
        "{keys} ({})",
        how.into_iter().collect::<Vec<_>>().join(", ")
    )
}

fn key_list(keys: &BTreeSet<String>) -> String {
    cut(
        keys.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        RESTARTED_FOR_MAX,
    )
}

/// `text` cut on a char boundary to at most `max` bytes, ending in `…`.
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `rollout`, or `AllConsumers` when running pods keep even their files
/// (an immutable Secret was replaced: the kubelet does not follow it).
pub(crate) fn stronger(rollout: Rollout, files_stale: bool) -> Rollout {
    if files_stale {
        Rollout::AllConsumers
    } else {
        rollout
    }
}

/// Every object of `api`, listed in pages of [`PAGE`] (a namespace with
/// thousands of workloads is never one response).
async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = retrying(|| api.list(&params)).await?;
        token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        all.extend(page.items);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// Workloads per list request.
const PAGE: u32 = 500;

/// Runs `request` up to [`ATTEMPTS`] times while it fails for a reason
/// other than the request (an API answer below 500 is final).
async fn retrying<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(value) => return Ok(value),
            Err(kube::Error::Api(status)) if status.code < 500 => {
                return Err(kube::Error::Api(status));
            }
            Err(err) if attempt >= ATTEMPTS => return Err(err),
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn change(name: &str, uid: &str, keys: &[&str], rollout: Rollout) -> Change {
        Change {
            sealed: ObjectReference {
                name: Some(name.into()),
                uid: Some(uid.into()),
                ..ObjectReference::default()
            },
            name: name.into(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            rollout,
        }
    }

    fn reads(spec: serde_json::Value) -> Vec<SecretRead> {
        let spec: PodSpec = serde_json::from_value(spec).unwrap_or_default();
        consumers::secret_reads(&spec)
    }

    #[test]
    fn changes_of_one_object_merge_and_others_stay_apart() {
        let merged = merged(vec![
            change("db", "u1", &["password"], Rollout::EnvConsumers),
            change("api", "u2", &["token"], Rollout::EnvConsumers),
            change("db", "u1", &["user"], Rollout::AllConsumers),
            // Deleted and created again under the same name: another object;
            // the stronger rollout of its two changes stays.
            change("db", "u3", &["w"], Rollout::AllConsumers),
            change("db", "u3", &["x"], Rollout::EnvConsumers),
        ]);
        let summary: Vec<(String, Vec<String>, Rollout)> = merged
            .into_iter()
            .map(|c| (c.name, c.keys.into_iter().collect(), c.rollout))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("api".into(), vec!["token".into()], Rollout::EnvConsumers),
                (
                    "db".into(),
                    vec!["password".into(), "user".into()],
                    Rollout::AllConsumers
                ),
                (
                    "db".into(),
                    vec!["w".into(), "x".into()],
                    Rollout::AllConsumers
                ),
            ]
        );
    }

    /// A workload reading two changed Secrets gets one annotation naming
    /// both, with only the keys it reads.
    #[test]
    fn one_restart_names_every_cause() {
        let reads = reads(serde_json::json!({
            "containers": [{"name": "app",
                "env": [
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
                ]}]
        }));
        let changes = vec![
            change("db", "u1", &["password", "unread"], Rollout::EnvConsumers),
            change("api", "u2", &["token"], Rollout::AllConsumers),
            change("other", "u3", &["password"], Rollout::AllConsumers),
        ];
        let causes = restart_causes(&reads, &changes);
        assert_eq!(restarted_for(&causes), "db: password; api: token");
        assert_eq!(
            described(&causes),
            "SealedSecret db changed password (env DB_PASSWORD in container app); SealedSecret api changed token (env TOKEN in container app)"
        );
        // Only unread keys changed: nothing.
        let unread = vec![change("db", "u1", &["unread"], Rollout::AllConsumers)];
        assert!(restart_causes(&reads, &unread).is_empty());
    }

    #[test]
    fn the_annotation_is_bounded() {
        let keys: Vec<String> = (0..500).map(|i| format!("key-{i:04}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let reads = reads(serde_json::json!({
            "containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "db"}}]}]
        }));
        let changes = vec![change("db", "u1", &keys, Rollout::EnvConsumers)];
        let text = restarted_for(&restart_causes(&reads, &changes));
        assert!(text.len() <= RESTARTED_FOR_MAX, "{}", text.len());
        assert!(text.starts_with("db: key-0000,key-0001"));
        assert!(text.ends_with('…'));
        assert_eq!(cut("é".repeat(600), 7), "éé…");
    }
}
