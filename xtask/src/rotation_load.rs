//! `cargo xtask bench-e2e --rotation-under-load --count N`: rotating keys on
//! a busy day. With N SealedSecrets in sync and an applier adding and
//! updating other objects continuously (sealing each to the key published
//! at that moment, as a team's CI would), it:
//!
//! 1. rotates the key (`kseal keys rotate`) until the new one is published;
//! 2. re-wraps the N objects online, in bulk (`kseal rewrap --online
//!    --in-place` over a tree of N files: the controller's
//!    `/v1/rewrap-batch`, many objects per request);
//! 3. applies the re-wrapped N and waits until every one is `Ready=True`
//!    for its new generation with `status.keyIds` naming only the new key;
//! 4. retires the old key (`kseal keys retire`) once nothing needs it (the
//!    applier re-seals its own objects still on the old key first).
//!
//! Throughout, one watch on SealedSecrets and one on Secrets look at every
//! change: a Secret deleted, a Secret holding values that are not those of
//! a version applied for it, or a SealedSecret with a `Ready` condition
//! other than `True` is a violation. At the end every object is checked
//! with a list. Reports each step's time, the API requests besides the
//! applier's, and `kseal rewrap --online`'s throughput in values/s.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::binding::Scope;
use kseal_shared::manifest::{PlainSecret, SealOptions, seal_secret};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::secret::SecretBytes;
use kseal_shared::x25519::Recipient;
use kseal_testenv::ControlPlane;
use kseal_testenv::process::Component;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::bench_e2e::{
    Args, Controller, Follower, KEY_NAMESPACE, NAMESPACE, api_requests, apply_all, applying_client,
    cpu_seconds, free_port, list_all, load, load1, memory_kib, mib, note, requests_between, round,
    sealed_ready, sealed_secrets, secret_correct, setup, wait_for,
};

/// Operations per second of the applier (creates and updates together).
const APPLIER_RATE: f64 = 20.0;

/// Values of version `v` of live object `j`.
fn live_value(j: usize, v: u32, k: usize) -> String {
    format!("live{j:05}-v{v:04}-{k}-payload-xx")
}

fn live_name(j: usize) -> String {
    format!("live{j:05}")
}

/// What the applier has applied, shared with the monitor.
#[derive(Default)]
struct Applied {
    /// Per live object: every version applied so far, and the key id the
    /// latest one is sealed to.
    versions: HashMap<String, (Vec<u32>, String)>,
}

/// What the monitor saw.
#[derive(Default)]
struct Seen {
    secret_events: u64,
    sealed_events: u64,
    violations: Vec<String>,
    violation_count: u64,
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

fn seal_live(j: usize, v: u32, values: usize, recipients: &[Recipient]) -> Result<SealedSecret> {
    let mut secret = PlainSecret {
        name: live_name(j),
        namespace: NAMESPACE.to_owned(),
        ..PlainSecret::default()
    };
    for k in 0..values {
        secret
            .insert(
                &format!("key{k}"),
                SecretBytes::from(live_value(j, v, k).as_bytes()),
            )
            .map_err(anyhow::Error::msg)?;
    }
    seal_secret(
        &secret,
        SealOptions {
            scope: Scope::Strict,
            recipients,
            allow_empty_data: false,
        },
    )
    .map_err(anyhow::Error::msg)
}

/// The applier: every `1 / APPLIER_RATE` s, creates a live object or
/// updates one (round-robin; objects on a key that is no longer published
/// first), sealed to the key published at that moment.
async fn applier(
    client: Client,
    apply_client: Client,
    values: usize,
    applied: Arc<Mutex<Applied>>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
) -> Result<()> {
    let api: Api<SealedSecret> = Api::namespaced(apply_client, NAMESPACE);
    let params = PatchParams::apply("kseal-bench-applier").force();
    let mut recipients =
        kseal_testenv::published_recipients(&client, KEY_NAMESPACE, Duration::from_secs(10))
            .await?;
    let mut refreshed = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / APPLIER_RATE));
    let (mut created, mut turn, mut op) = (0usize, 0usize, 0u64);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if refreshed.elapsed() > Duration::from_millis(500) {
            recipients = kseal_testenv::published_recipients(
                &client,
                KEY_NAMESPACE,
                Duration::from_secs(10),
            )
            .await?;
            refreshed = Instant::now();
        }
        let current = recipients[0].key_id().to_string();
        op += 1;
        // Objects sealed to an older key first; else every other operation
        // creates, the others update round-robin.
        let stale = {
            let applied = applied.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            applied
                .versions
                .iter()
                .find(|(_, (_, key))| *key != current)
                .map(|(name, _)| name.clone())
        };
        let j = match stale {
            Some(name) => name
                .strip_prefix("live")
                .and_then(|n| n.parse().ok())
                .context("live name")?,
            None if op % 2 == 0 || created == 0 => {
                created += 1;
                created - 1
            }
            None => {
                turn += 1;
                turn % created
            }
        };
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

async fn kseal(kseal: &Path, args: &[OsString]) -> Result<String> {
    let output = tokio::process::Command::new(kseal)
        .args(args)
        .output()
        .await
        .context("running kseal")?;
    if !output.status.success() {
        bail!(
            "kseal {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

pub async fn bench(
    args: &Args,
    controller_bin: &Path,
    kseal_bin: &Path,
) -> Result<serde_json::Value> {
    let n = args.count;
    let values = args.values;
    let timeout = Duration::from_secs(args.timeout);
    let load_start = load();
    note(&format!(
        "rotation under load: N={n}, {values} values each, applier {APPLIER_RATE} ops/s; load {load_start}"
    ));
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    setup(&client).await?;
    let apply_client = applying_client(&cp, args).await?;
    let kubeconfig = cp.admin_kubeconfig().display().to_string();
    let reserved_port = free_port()?;
    let port = reserved_port.get();
    let mut controller_args = crate::demo::local_controller_args(&kubeconfig, port);
    controller_args.extend(args.controller_args.iter().map(OsString::from));
    let mut controller = Controller {
        process: Component::new(
            "kseal-controller",
            controller_bin.to_path_buf(),
            controller_args,
            cp.dir().join("kseal-controller.log"),
        ),
        port,
    };
    controller.process.start()?;
    let recipients =
        kseal_testenv::published_recipients(&client, KEY_NAMESPACE, Duration::from_secs(120))
            .await?;
    let old_id = recipients[0].key_id().to_string();
    wait_for("controller /readyz", Duration::from_secs(120), || async {
        controller
            .get("/readyz")
            .await
            .is_some_and(|(s, _)| s == 200)
    })
    .await?;

    // N in sync.
    let objects = sealed_secrets(n, values, &recipients)?;
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut sealed_follower = Follower::start(sealed_api.clone()).await?;
    let mut secret_follower = Follower::start(secret_api.clone()).await?;
    let started = Instant::now();
    let apply_api: Api<SealedSecret> = Api::namespaced(apply_client.clone(), NAMESPACE);
    apply_all(&apply_api, &objects, args.concurrency).await?;
    loop {
        let slice = tokio::time::Instant::now() + Duration::from_millis(100);
        sealed_follower.follow(sealed_ready, slice).await?;
        let slice = tokio::time::Instant::now() + Duration::from_millis(100);
        secret_follower
            .follow(|s| secret_correct(s, values), slice)
            .await?;
        if sealed_follower.complete(n) == n && secret_follower.complete(n) == n {
            break;
        }
        if started.elapsed() > timeout {
            bail!("the first sync did not finish");
        }
    }
    drop((sealed_follower, secret_follower));
    note(&format!(
        "{n} in sync after {:.1}s; load {}",
        started.elapsed().as_secs_f64(),
        load()
    ));

    // The monitor and the applier.
    let stop_monitor = Arc::new(AtomicBool::new(false));
    let stop_applier = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(Mutex::new(Applied::default()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let applier_requests = Arc::new(AtomicU64::new(0));
    let version = |list: kube::core::ObjectList<kube::core::PartialObjectMeta<SealedSecret>>| {
        list.metadata.resource_version.unwrap_or_default()
    };
    let sealed_version = version(
        sealed_api
            .list_metadata(&ListParams::default().limit(1))
            .await?,
    );
    let secret_version = secret_api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let secret_monitor = {
        let (seen, applied, stop) = (seen.clone(), applied.clone(), stop_monitor.clone());
        tokio::spawn(watch_all(
            secret_api.clone(),
            secret_version,
            stop,
            move |event| {
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
            },
        ))
    };
    let sealed_monitor = {
        let (seen, stop) = (seen.clone(), stop_monitor.clone());
        tokio::spawn(watch_all(
            sealed_api.clone(),
            sealed_version,
            stop,
            move |event| {
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
            },
        ))
    };
    let applier_task = tokio::spawn(applier(
        client.clone(),
        apply_client.clone(),
        values,
        applied.clone(),
        stop_applier.clone(),
        applier_requests.clone(),
    ));
    // Let the load settle in first.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let pid = controller.pid()?;
    let requests_before = api_requests(&client).await?;
    let applier_before = applier_requests.load(Ordering::Relaxed);
    let cpu_before = cpu_seconds(pid);
    let load_before = load();
    let window = Instant::now();

    // 1. Rotate.
    let t = Instant::now();
    let rotated = kseal(
        kseal_bin,
        &os(&["keys", "rotate", "--kubeconfig", &kubeconfig]),
    )
    .await?;
    let new_id = rotated
        .split_whitespace()
        .next()
        .context("kseal keys rotate printed no key id")?
        .to_owned();
    wait_for("the new key to be published", timeout, || async {
        kseal_testenv::published_recipients(&client, KEY_NAMESPACE, Duration::from_secs(10))
            .await
            .is_ok_and(|r| r[0].key_id().to_string() == new_id)
    })
    .await?;
    let rotate_s = t.elapsed();
    note(&format!(
        "1. rotated to {new_id} in {:.2}s",
        rotate_s.as_secs_f64()
    ));

    // 2. Re-wrap the N online, in bulk.
    let tree = cp.dir().join("rotation-repo");
    std::fs::create_dir_all(&tree)?;
    for object in &objects {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        std::fs::write(
            tree.join(format!("{name}.json")),
            serde_json::to_vec(object)?,
        )?;
    }
    let rewrap_values = n * values;
    let url = format!("http://127.0.0.1:{port}");
    let cpu_rewrap = cpu_seconds(pid);
    let t = Instant::now();
    let mut rewrap_args = os(&["rewrap", "--online", "--controller-url", &url, "--in-place"]);
    rewrap_args.push(tree.clone().into_os_string());
    kseal(kseal_bin, &rewrap_args).await?;
    let rewrap_s = t.elapsed();
    let rewrap_cpu = cpu_seconds(pid) - cpu_rewrap;
    note(&format!(
        "2. kseal rewrap --online: {n} objects, {rewrap_values} values in {:.2}s ({:.0} values/s), controller CPU {rewrap_cpu:.2}s",
        rewrap_s.as_secs_f64(),
        rewrap_values as f64 / rewrap_s.as_secs_f64()
    ));

    // 3. Apply the re-wrapped N; wait until all are Ready on the new key.
    let mut rewrapped = Vec::with_capacity(n);
    for entry in std::fs::read_dir(&tree)? {
        let text = std::fs::read_to_string(entry?.path())?;
        rewrapped.push(serde_json::from_str::<SealedSecret>(&text)?);
    }
    std::fs::remove_dir_all(&tree)?;
    let on_new_key = |s: &SealedSecret| {
        sealed_ready(s)
            && s.status
                .as_ref()
                .is_some_and(|st| st.key_ids == [new_id.clone()])
    };
    let mut follower = Follower::start(sealed_api.clone()).await?;
    let t = Instant::now();
    apply_all(&apply_api, &rewrapped, args.concurrency).await?;
    let apply_s = t.elapsed();
    loop {
        let slice = tokio::time::Instant::now() + Duration::from_millis(200);
        follower.follow(on_new_key, slice).await?;
        let done = rewrapped
            .iter()
            .filter(|o| {
                o.metadata
                    .name
                    .as_ref()
                    .is_some_and(|name| follower.done.get(name).copied().unwrap_or(false))
            })
            .count();
        if done == n {
            break;
        }
        if t.elapsed() > timeout {
            bail!("{done}/{n} on the new key");
        }
        controller.process.check_alive()?;
    }
    let resync_s = t.elapsed();
    note(&format!(
        "3. applied the re-wrapped {n} in {:.2}s; all Ready on the new key after {:.2}s",
        apply_s.as_secs_f64(),
        resync_s.as_secs_f64()
    ));

    // 4. Retire the old key, once the applier's own objects are re-sealed.
    let t = Instant::now();
    wait_for("the applier's objects on the new key", timeout, || async {
        applied
            .lock()
            .is_ok_and(|a| a.versions.values().all(|(_, key)| *key == new_id))
    })
    .await?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match kseal(
            kseal_bin,
            &os(&["keys", "retire", &old_id, "--kubeconfig", &kubeconfig]),
        )
        .await
        {
            Ok(_) => break,
            Err(err) if t.elapsed() < timeout => {
                if attempts == 1 {
                    note(&format!("retire refused for now: {err:#}"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
    let retire_s = t.elapsed();
    note(&format!(
        "4. retired {old_id} after {:.2}s ({attempts} attempt(s))",
        retire_s.as_secs_f64()
    ));
    let window_s = window.elapsed();
    let requests_after = api_requests(&client).await?;
    let applier_ops = applier_requests.load(Ordering::Relaxed) - applier_before;
    let cpu = cpu_seconds(pid) - cpu_before;
    let load_after = load();

    // The applier keeps going a little on the new key alone, then stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_applier.store(true, Ordering::Relaxed);
    applier_task.await??;
    let live: BTreeMap<String, (Vec<u32>, String)> = applied
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .versions
        .clone()
        .into_iter()
        .collect();
    let total = n + live.len();
    // Everything settles: every object Ready for its generation, every
    // Secret with its latest values.
    let latest_ok = |s: &Secret| {
        let name = s.metadata.name.as_deref().unwrap_or_default();
        match live.get(name) {
            None => secret_correct(s, values),
            Some((versions, _)) => {
                let j: usize = name[4..].parse().unwrap_or(usize::MAX);
                let v = versions.last().copied().unwrap_or(0);
                let data = s.data.clone().unwrap_or_default();
                data.len() == values
                    && (0..values).all(|k| {
                        data.get(&format!("key{k}"))
                            .is_some_and(|d| d.0 == live_value(j, v, k).as_bytes())
                    })
            }
        }
    };
    let settled = wait_for("every object settled", timeout, || async {
        let (Ok(secrets), Ok(sealed)) = (list_all(&secret_api).await, list_all(&sealed_api).await)
        else {
            return false;
        };
        secrets.len() == total
            && sealed.len() == total
            && secrets.iter().all(latest_ok)
            && sealed.iter().all(sealed_ready)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_monitor.store(true, Ordering::Relaxed);
    secret_monitor.await??;
    sealed_monitor.await??;
    let (peak_kib, _) = memory_kib(pid);
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let (writes, reads, breakdown) = requests_between(&requests_before, &requests_after);
    // Besides the applier: the bench's N applies of the re-wrapped objects.
    let extra_writes = writes.saturating_sub(applier_ops + n as u64);
    note(&format!(
        "window {:.1}s: {writes} writes ({applier_ops} by the applier, {n} re-wrapped applies, {extra_writes} by the controller and kseal), {reads} reads: {breakdown}",
        window_s.as_secs_f64()
    ));
    note(&format!(
        "monitor: {} Secret events, {} SealedSecret events, {} violations; {} live objects",
        seen.secret_events,
        seen.sealed_events,
        seen.violation_count,
        live.len()
    ));
    let figures = json!({
        "mode": "rotation-under-load",
        "count": n,
        "values_per_object": values,
        "applier_ops_per_s": APPLIER_RATE,
        "applier_ops_in_window": applier_ops,
        "live_objects": live.len(),
        "rotate_s": round(rotate_s.as_secs_f64(), 3),
        "rewrap_online_s": round(rewrap_s.as_secs_f64(), 3),
        "rewrap_online_values_per_s": round(rewrap_values as f64 / rewrap_s.as_secs_f64(), 0),
        "rewrap_controller_cpu_s": round(rewrap_cpu, 2),
        "apply_rewrapped_s": round(apply_s.as_secs_f64(), 3),
        "all_on_new_key_s": round(resync_s.as_secs_f64(), 3),
        "retire_s": round(retire_s.as_secs_f64(), 3),
        "window_s": round(window_s.as_secs_f64(), 3),
        "window_writes": writes,
        "window_reads": reads,
        "extra_writes": extra_writes,
        "window_requests": breakdown,
        "controller_cpu_s": round(cpu, 2),
        "controller_peak_rss_mib": mib(peak_kib),
        "secret_events_seen": seen.secret_events,
        "sealed_events_seen": seen.sealed_events,
        "violations": seen.violation_count,
        "violation_examples": seen.violations,
        "settled": settled.is_ok(),
        "machine_load": load1(),
        "machine_load_start": load_before,
        "machine_load_end": load_after,
    });
    controller.process.terminate(Duration::from_secs(10));
    drop(cp);
    if seen.violation_count > 0 {
        println!("{figures}");
        bail!("{} violations", seen.violation_count);
    }
    settled.context("the objects did not settle")?;
    Ok(figures)
}
