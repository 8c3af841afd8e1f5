//! Rotating the key on a busy day, against the real API server: with
//! SealedSecrets in sync and an applier adding and updating others all the
//! while (each sealed to the key published at that moment), the key is
//! rotated, every object re-wrapped online in bulk (`kseal rewrap --online`,
//! the controller's batch endpoint) and applied, and the old key retired.
//! Two watches look at every change meanwhile: no Secret is ever deleted or
//! holds values of no version applied, no SealedSecret is ever `Ready`
//! other than `True`. (The benchmark of the same at 5,000 objects is
//! `cargo xtask bench-e2e --rotation-under-load`; nothing here is timed.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::binding::Scope;
use kseal_shared::contract::{KEY_ID_LABEL, KEY_STATE_LABEL};
use kseal_shared::sealed_secret::SealedSecret;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, Client, Resource};

const NS: &str = "busy";
/// Objects in sync before the rotation (all re-wrapped in bulk).
const COUNT: usize = 60;
const VALUES: usize = 3;

fn values_of(name: &str, version: u32) -> Vec<(String, String)> {
    (0..VALUES)
        .map(|k| (format!("key{k}"), format!("{name}-v{version}-{k}")))
        .collect()
}

fn sealed_to(
    name: &str,
    version: u32,
    recipients: &[kseal_shared::x25519::Recipient],
) -> SealedSecret {
    let values = values_of(name, version);
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    seal(&plain(NS, name, &pairs), Scope::Strict, recipients)
}

/// Every version applied per object, and the key id of the latest.
type Applied = Arc<Mutex<HashMap<String, (Vec<u32>, String)>>>;

fn holds_a_version(secret: &Secret, applied: &Applied) -> bool {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let applied = applied.lock().unwrap();
    let Some((versions, _)) = applied.get(&name) else {
        return false;
    };
    let data = secret.data.clone().unwrap_or_default();
    versions.iter().any(|&v| {
        let expected = values_of(&name, v);
        data.len() == expected.len()
            && expected
                .iter()
                .all(|(k, value)| data.get(k).is_some_and(|d| d.0 == value.as_bytes()))
    })
}

/// Long enough for the bulk steps (hundreds of objects through a debug
/// controller) on a loaded machine; a hang still ends.
const BULK_WAIT: Duration = Duration::from_secs(180);

/// Polls `check` every 200 ms until it holds; panics after `timeout`.
async fn eventually_within<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A resourceVersion as a number (the API server's are etcd revisions), to
/// tell whether a watch has caught up with a write.
fn revision(version: &str) -> u64 {
    version
        .parse()
        .unwrap_or_else(|_| panic!("resourceVersion {version:?} is not a number"))
}

/// Watches `api` until `stop`, recording what `check` calls a violation;
/// `seen` is the newest resourceVersion it has taken in. When the watch
/// cannot resume (410 Gone after a compaction, a dropped connection), it
/// lists again and checks every object as if added, then watches on.
fn monitor<K>(
    api: Api<K>,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    violations: Arc<Mutex<Vec<String>>>,
    check: impl Fn(&WatchEvent<K>) -> Option<String> + Send + 'static,
) -> tokio::task::JoinHandle<usize>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = 0;
        let record = move |event: WatchEvent<K>, events: &mut usize| {
            *events += 1;
            if let Some(violation) = check(&event) {
                violations.lock().unwrap().push(violation);
            }
        };
        // The first list only sets where to start: the monitors watch what
        // happens from here on.
        let mut version = retry_list(&api, &stop, true)
            .await
            .map(|list| list.metadata.resource_version.unwrap_or_default());
        while !stop.load(Ordering::Relaxed) {
            let from = match version.clone() {
                Some(from) => from,
                None => {
                    let Some(list) = retry_list(&api, &stop, false).await else {
                        break;
                    };
                    for object in list.items {
                        record(WatchEvent::Added(object), &mut events);
                    }
                    list.metadata.resource_version.unwrap_or_default()
                }
            };
            seen.fetch_max(revision(&from), Ordering::Relaxed);
            version = Some(from.clone());
            let Ok(stream) = api.watch(&WatchParams::default().timeout(60), &from).await else {
                // Not connected: nothing missed yet, try again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut stream = stream.boxed();
            loop {
                let next = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
                let event = match next {
                    Err(_) if stop.load(Ordering::Relaxed) => return events,
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(Ok(event))) => event,
                    // A broken stream: resume from the last version seen.
                    Ok(Some(Err(_))) => break,
                };
                let at = match &event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                        o.meta().resource_version.clone()
                    }
                    WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
                    WatchEvent::Error(_) => {
                        // Events since `version` are gone: list again.
                        version = None;
                        break;
                    }
                };
                if let Some(at) = at {
                    seen.fetch_max(revision(&at), Ordering::Relaxed);
                    version = Some(at);
                }
                if !matches!(event, WatchEvent::Bookmark(_)) {
                    record(event, &mut events);
                }
            }
        }
        events
    })
}

/// Lists `api` (only the list's resourceVersion when `metadata_only`),
/// retrying transient failures; `None` once `stop` is set.
async fn retry_list<K>(
    api: &Api<K>,
    stop: &AtomicBool,
    metadata_only: bool,
) -> Option<kube::core::ObjectList<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let params = if metadata_only {
            ListParams::default().limit(1)
        } else {
            ListParams::default()
        };
        match api.list(&params).await {
            Ok(list) => return Some(list),
            Err(err) => assert!(Instant::now() < deadline, "cannot list: {err}"),
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates and updates `live-*` objects until `stop`, each sealed to the
/// key published at that moment; objects on an older key are re-sealed
/// first.
async fn applier(
    client: Client,
    applied: Applied,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> usize {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), NS);
    let params = PatchParams::apply("busy-applier").force();
    let (mut created, mut turn, mut ops) = (0usize, 0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        let recipients = kseal_testenv::published_recipients(&client, NAMESPACE, WAIT)
            .await
            .unwrap();
        let current = recipients[0].key_id().to_string();
        let stale = applied
            .lock()
            .unwrap()
            .iter()
            .find(|(name, (_, key))| name.starts_with("live-") && *key != current)
            .map(|(name, _)| name.clone());
        let name = match stale {
            Some(name) => name,
            None if ops % 2 == 0 || created == 0 => {
                created += 1;
                format!("live-{}", created - 1)
            }
            None => {
                turn += 1;
                format!("live-{}", turn % created)
            }
        };
        let version = {
            let mut applied = applied.lock().unwrap();
            let entry = applied
                .entry(name.clone())
                .or_insert_with(|| (Vec::new(), current.clone()));
            let version = entry.0.last().map_or(0, |v| v + 1);
            entry.0.push(version);
            entry.1.clone_from(&current);
            version
        };
        let object = sealed_to(&name, version, &recipients);
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .unwrap();
        ops += 1;
        done.store(ops, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_loses_nothing() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace(NS).await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let old_id = recipients[0].key_id().to_string();
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();

    // COUNT objects in sync, also as files (the repository to re-wrap).
    let applied: Applied = Arc::default();
    for i in 0..COUNT {
        let name = format!("app-{i:03}");
        let object = sealed_to(&name, 0, &recipients);
        applied
            .lock()
            .unwrap()
            .insert(name.clone(), (vec![0], old_id.clone()));
        std::fs::write(
            repo.join(format!("{name}.json")),
            serde_json::to_string_pretty(&object).unwrap(),
        )
        .unwrap();
        fixture.apply(&object).await;
    }
    for i in 0..COUNT {
        fixture.wait_ready(NS, &format!("app-{i:03}"), "True").await;
    }

    // Watch everything from here on; start the applier.
    let stop_monitors = Arc::new(AtomicBool::new(false));
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let (secrets_at, sealed_at) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let secrets_seen = {
        let applied = applied.clone();
        monitor(
            fixture.secrets(NS),
            stop_monitors.clone(),
            secrets_at.clone(),
            violations.clone(),
            move |event| match event {
                WatchEvent::Added(s) | WatchEvent::Modified(s) if !holds_a_version(s, &applied) => {
                    Some(format!(
                        "Secret {} holds values of no version applied",
                        s.metadata.name.clone().unwrap_or_default()
                    ))
                }
                WatchEvent::Deleted(s) => Some(format!(
                    "Secret {} deleted",
                    s.metadata.name.clone().unwrap_or_default()
                )),
                _ => None,
            },
        )
    };
    let sealed_seen = monitor(
        fixture.sealed_secrets(NS),
        stop_monitors.clone(),
        sealed_at.clone(),
        violations.clone(),
        |event| match event {
            WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                let status = s.status.as_ref()?;
                let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
                (ready.status != "True").then(|| {
                    format!(
                        "SealedSecret {} Ready={} ({})",
                        s.metadata.name.clone().unwrap_or_default(),
                        ready.status,
                        ready.reason
                    )
                })
            }
            _ => None,
        },
    );
    let stop_applier = Arc::new(AtomicBool::new(false));
    let applier_ops = Arc::new(AtomicUsize::new(0));
    let applier_task = tokio::spawn(applier(
        fixture.client.clone(),
        applied.clone(),
        stop_applier.clone(),
        applier_ops.clone(),
    ));
    // The applier is at work before the rotation.
    eventually_within("the applier's first applies", BULK_WAIT, || async {
        applier_ops.load(Ordering::Relaxed) >= 10
    })
    .await;

    // Rotate.
    let (code, rotated, err) = kseal(
        work.path(),
        &["keys", "rotate", "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let new_id = rotated.split_whitespace().next().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    eventually("the new key published", || async {
        fixture.recipients().await[0].key_id().to_string() == new_id
    })
    .await;

    // Re-wrap the repository online, in bulk, and apply it.
    let url = controller.url("");
    let (code, _, err) = kseal(
        work.path(),
        &[
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            "--in-place",
            repo.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{} value(s) re-wrapped", COUNT * VALUES)),
        "{err}"
    );
    for entry in std::fs::read_dir(&repo).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(text.contains(&new_id) && !text.contains(&old_id), "{text}");
        fixture
            .apply(&serde_saphyr::from_str::<SealedSecret>(&text).unwrap())
            .await;
    }
    eventually_within("every object Ready on the new key", BULK_WAIT, || async {
        let all = fixture
            .sealed_secrets(NS)
            .list(&ListParams::default())
            .await
            .unwrap();
        all.items
            .iter()
            .filter(|s| s.metadata.name.as_ref().unwrap().starts_with("app-"))
            .all(|s| {
                s.status.as_ref().is_some_and(|st| {
                    st.observed_generation == s.metadata.generation
                        && st.key_ids == [new_id.clone()]
                        && st
                            .conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
    })
    .await;

    // The applier's own objects move to the new key too; then retire.
    eventually_within(
        "the applier's objects on the new key",
        BULK_WAIT,
        || async {
            applied
                .lock()
                .unwrap()
                .iter()
                .filter(|(name, _)| name.starts_with("live-"))
                .all(|(_, (_, key))| *key == new_id)
        },
    )
    .await;
    // Refused while a SealedSecret still holds an old value (the applier's
    // last re-seals may still be landing): retry until a deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, _, err) = kseal(
            work.path(),
            &["keys", "retire", &old_id, "--kubeconfig", &kubeconfig],
            None,
        );
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old key could not be retired: {err}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let keys: Api<Secret> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    let old_key = keys
        .list(&ListParams::default().labels(&format!("{KEY_ID_LABEL}={old_id}")))
        .await
        .unwrap();
    assert_eq!(
        old_key.items[0].metadata.labels.as_ref().unwrap()[KEY_STATE_LABEL],
        "retired"
    );

    // The applier goes on a little with the old key retired, then stops;
    // everything settles on the latest values.
    let before = applier_ops.load(Ordering::Relaxed);
    eventually_within("more applies after the retirement", BULK_WAIT, || async {
        applier_ops.load(Ordering::Relaxed) >= before + 10
    })
    .await;
    stop_applier.store(true, Ordering::Relaxed);
    let ops = applier_task.await.unwrap();
    let expected: HashMap<String, Vec<(String, String)>> = applied
        .lock()
        .unwrap()
        .iter()
        .map(|(name, (versions, _))| (name.clone(), values_of(name, *versions.last().unwrap())))
        .collect();
    assert!(expected.len() > COUNT, "the applier created nothing");
    eventually_within("every Secret with its latest values", BULK_WAIT, || async {
        let secrets = fixture
            .secrets(NS)
            .list(&ListParams::default())
            .await
            .unwrap();
        secrets.items.len() == expected.len()
            && secrets.items.iter().all(|s| {
                let data = s.data.clone().unwrap_or_default();
                expected[s.metadata.name.as_ref().unwrap()]
                    .iter()
                    .all(|(k, v)| data.get(k).is_some_and(|d| d.0 == v.as_bytes()))
            })
    })
    .await;
    // The monitors must have seen every write before they stop: once the
    // controller is idle, wait until each has taken in the newest
    // resourceVersion of its kind.
    controller.settle().await;
    let newest = |versions: Vec<Option<String>>| {
        versions
            .iter()
            .flatten()
            .map(|v| revision(v))
            .max()
            .unwrap_or(0)
    };
    let secrets_newest = newest(
        fixture
            .secrets(NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.metadata.resource_version)
            .collect(),
    );
    let sealed_newest = newest(
        fixture
            .sealed_secrets(NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.metadata.resource_version)
            .collect(),
    );
    eventually("the monitors caught up with the last writes", || async {
        secrets_at.load(Ordering::Relaxed) >= secrets_newest
            && sealed_at.load(Ordering::Relaxed) >= sealed_newest
    })
    .await;
    stop_monitors.store(true, Ordering::Relaxed);
    let (secret_events, sealed_events) = (secrets_seen.await.unwrap(), sealed_seen.await.unwrap());
    let violations = violations.lock().unwrap().clone();
    println!(
        "applier: {ops} applies, {} live objects; monitors: {secret_events} Secret and {sealed_events} SealedSecret events",
        expected.len() - COUNT
    );
    assert!(secret_events > 0 && sealed_events > 0);
    assert!(violations.is_empty(), "{violations:#?}");
}
