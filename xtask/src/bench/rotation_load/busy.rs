//! The busy day of the rotation-under-load scenario: the [`Applier`]
//! writing objects continuously, and the [`Monitor`] flagging every change
//! that should never happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::Recipient;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use crate::bench::harness::cluster::{KEY_NAMESPACE, NAMESPACE};
use crate::bench::harness::note;
use crate::bench::harness::objects::{seal, secret_correct};

/// Operations per second of the applier (creates and updates together).
pub const APPLIER_RATE: f64 = 20.0;

/// Values of version `v` of live object `j`.
pub fn live_value(j: usize, v: u32, k: usize) -> String {
    format!("live{j:05}-v{v:04}-{k}-payload-xx")
}

fn live_name(j: usize) -> String {
    format!("live{j:05}")
}

/// What the applier has applied, shared with the monitor.
#[derive(Default)]
pub struct Applied {
    /// Per live object: every version applied so far, and the key id the
    /// latest one is sealed to.
    pub versions: HashMap<String, (Vec<u32>, String)>,
}

/// What the monitor saw.
#[derive(Default)]
pub struct Seen {
    pub secret_events: u64,
    pub sealed_events: u64,
    /// The first 20 violations.
    pub violations: Vec<String>,
    pub violation_count: u64,
}

impl Seen {
    fn violation(&mut self, what: String) {
        self.violation_count += 1;
        if self.violations.len() < 20 {
            note(&format!("VIOLATION: {what}"));
            self.violations.push(what);
        }
    }
}

/// Whether a Secret holds exactly the values of one version applied for
/// it (originals: version 0, the bench's values).
fn secret_acceptable(secret: &Secret, values: usize, applied: &Applied) -> bool {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    if !name.starts_with("live") {
        return secret_correct(secret, values);
    }
    let Some((versions, _)) = applied.versions.get(name) else {
        return false;
    };
    let Some(j) = name.strip_prefix("live").and_then(|n| n.parse().ok()) else {
        return false;
    };
    let data = secret.data.clone().unwrap_or_default();
    versions.iter().any(|&v| {
        data.len() == values
            && (0..values).all(|k| {
                data.get(&format!("key{k}"))
                    .is_some_and(|d| d.0 == live_value(j, v, k).as_bytes())
            })
    })
}

/// Watches `api` from `version` until `stop`, handing every event to `on`.
async fn watch_all<K>(
    api: Api<K>,
    mut version: String,
    stop: Arc<AtomicBool>,
    mut on: impl FnMut(WatchEvent<K>),
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    while !stop.load(Ordering::Relaxed) {
        let params = WatchParams::default().timeout(290);
        let mut stream = api.watch(&params, &version).await?.boxed();
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return Ok(()); }
                    continue;
                }
            };
            let Some(event) = event else { break };
            let event = event?;
            match &event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                    if let Some(v) = &o.meta().resource_version {
                        version.clone_from(v);
                    }
                }
                WatchEvent::Bookmark(b) => version.clone_from(&b.metadata.resource_version),
                WatchEvent::Error(e) => bail!("watch error: {e:?}"),
            }
            on(event);
        }
    }
    Ok(())
}

/// The current resourceVersion of a kind in the namespace.
async fn current_version<K>(api: &Api<K>) -> Result<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list_metadata(&ListParams::default().limit(1)).await?;
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// One watch on Secrets and one on SealedSecrets, from now until
/// [`Monitor::stop`].
pub struct Monitor {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    tasks: [JoinHandle<Result<()>>; 2],
}

impl Monitor {
    /// Starts both watches; a Secret is checked against what `applied`
    /// holds when its event arrives.
    pub async fn start(
        client: &Client,
        values: usize,
        applied: Arc<Mutex<Applied>>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
        let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), NAMESPACE);
        let (sealed_version, secret_version) = (
            current_version(&sealed_api).await?,
            current_version(&secret_api).await?,
        );
        let secrets = {
            let seen = seen.clone();
            watch_all(secret_api, secret_version, stop.clone(), move |event| {
                let Ok(mut seen) = seen.lock() else { return };
                seen.secret_events += 1;
                match event {
                    WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                        let ok = applied
                            .lock()
                            .is_ok_and(|applied| secret_acceptable(&s, values, &applied));
                        if !ok {
                            seen.violation(format!(
                                "Secret {} holds values of no version applied",
                                s.metadata.name.unwrap_or_default()
                            ));
                        }
                    }
                    WatchEvent::Deleted(s) => seen.violation(format!(
                        "Secret {} deleted",
                        s.metadata.name.unwrap_or_default()
                    )),
                    _ => {}
                }
            })
        };
        let sealed = {
            let seen = seen.clone();
            watch_all(sealed_api, sealed_version, stop.clone(), move |event| {
                let Ok(mut seen) = seen.lock() else { return };
                seen.sealed_events += 1;
                if let WatchEvent::Added(s) | WatchEvent::Modified(s) = event {
                    let bad = s.status.as_ref().and_then(|status| {
                        status
                            .conditions
                            .iter()
                            .find(|c| c.type_ == "Ready" && c.status != "True")
                            .map(|c| format!("{}: {}", c.status, c.reason))
                    });
                    if let Some(bad) = bad {
                        seen.violation(format!(
                            "SealedSecret {} Ready={bad}",
                            s.metadata.name.unwrap_or_default()
                        ));
                    }
                }
            })
        };
        Ok(Self {
            stop,
            seen,
            tasks: [tokio::spawn(secrets), tokio::spawn(sealed)],
        })
    }

    /// Stops both watches; what they saw.
    pub async fn stop(self) -> Result<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await??;
        }
        let mut seen = self.seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        Ok(std::mem::take(&mut *seen))
    }
}

fn seal_live(j: usize, v: u32, values: usize, recipients: &[Recipient]) -> Result<SealedSecret> {
    seal(
        &live_name(j),
        (0..values).map(|k| live_value(j, v, k)),
        recipients,
    )
}

/// The applier, running until [`Applier::stop`].
pub struct Applier {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    task: JoinHandle<Result<()>>,
}

impl Applier {
    /// Every `1 / APPLIER_RATE` s, creates a live object or updates one
    /// (round-robin; objects on a key that is no longer published first),
    /// sealed to the key published at that moment; records each version in
    /// `applied` before applying it.
    pub fn start(
        client: &Client,
        apply_client: &Client,
        values: usize,
        applied: &Arc<Mutex<Applied>>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(apply(
            client.clone(),
            Api::namespaced(apply_client.clone(), NAMESPACE),
            values,
            applied.clone(),
            stop.clone(),
            requests.clone(),
        ));
        Self {
            stop,
            requests,
            task,
        }
    }

    /// Applies sent so far.
    pub fn ops(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops after the current operation; fails if the applier failed.
    pub async fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

/// Which live object the next operation writes: one sealed to an older key
/// first; else every other operation creates, the others update
/// round-robin.
fn next_object(
    applied: &Mutex<Applied>,
    current: &str,
    op: u64,
    created: &mut usize,
    turn: &mut usize,
) -> Result<usize> {
    let stale = {
        let applied = applied.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        applied
            .versions
            .iter()
            .find(|(_, (_, key))| key != current)
            .map(|(name, _)| name.clone())
    };
    Ok(match stale {
        Some(name) => name
            .strip_prefix("live")
            .and_then(|n| n.parse().ok())
            .context("live name")?,
        None if op.is_multiple_of(2) || *created == 0 => {
            *created += 1;
            *created - 1
        }
        None => {
            *turn += 1;
            *turn % *created
        }
    })
}

async fn apply(
    client: Client,
    api: Api<SealedSecret>,
    values: usize,
    applied: Arc<Mutex<Applied>>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
) -> Result<()> {
    let params = PatchParams::apply("kseal-bench-applier").force();
    let published =
        || kseal_testenv::published_recipients(&client, KEY_NAMESPACE, Duration::from_secs(10));
    let mut recipients = published().await?;
    let mut refreshed = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / APPLIER_RATE));
    let (mut created, mut turn, mut op) = (0usize, 0usize, 0u64);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if refreshed.elapsed() > Duration::from_millis(500) {
            recipients = published().await?;
            refreshed = Instant::now();
        }
        let current = recipients[0].key_id().to_string();
        op += 1;
        let j = next_object(&applied, &current, op, &mut created, &mut turn)?;
        let version = {
            let mut applied = applied.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let entry = applied
                .versions
                .entry(live_name(j))
                .or_insert_with(|| (Vec::new(), current.clone()));
            let v = entry.0.last().map_or(0, |v| v + 1);
            // Recorded before the apply: the Secret may change right after.
            entry.0.push(v);
            entry.1.clone_from(&current);
            v
        };
        let object = seal_live(j, version, values, &recipients)?;
        requests.fetch_add(1, Ordering::Relaxed);
        api.patch(&live_name(j), &params, &Patch::Apply(&object))
            .await
            .with_context(|| format!("applier: applying {}", live_name(j)))?;
    }
    Ok(())
}
