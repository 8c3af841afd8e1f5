//! Scenario: `cargo xtask bench-e2e --rotation-under-load --count N`:
//! rotating keys on a busy day. With N SealedSecrets in sync and an
//! applier adding and updating other objects continuously (sealing each to
//! the key published at that moment, as a team's CI would), it:
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
//!
//! The applier and the monitor are in [`busy`].

mod busy;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::Recipient;
use kseal_testenv::ControlPlane;
use kseal_testenv::controller::Controller;
use kseal_testenv::poll::wait_for;
use kube::{Api, Client};
use serde::Serialize;

use self::busy::{APPLIER_RATE, Applied, Applier, Monitor, Seen, live_value};
use super::harness::cluster::{
    self, NAMESPACE, apply_all, applying_client, kseal_controller, list_all, published_and_ready,
    setup,
};
use super::harness::measure::{Measured, Window};
use super::harness::objects::{
    read_tree, sealed_ready, sealed_secrets, secret_correct, write_tree,
};
use super::harness::process::{cpu_seconds, memory_kib};
use super::harness::watch::{Convergence, Follower};
use super::harness::{Settings, json, load1, mib, note, round};

/// What the scenario measured (`bench-e2e --rotation-under-load`'s JSON).
#[derive(Debug, Clone, Serialize)]
pub struct RotationLoadFigures {
    /// `rotation-under-load`.
    pub mode: &'static str,
    pub count: usize,
    pub values_per_object: usize,
    pub applier_ops_per_s: f64,
    pub applier_ops_in_window: u64,
    pub live_objects: usize,
    pub rotate_s: f64,
    pub rewrap_online_s: f64,
    pub rewrap_online_values_per_s: f64,
    pub rewrap_controller_cpu_s: f64,
    pub apply_rewrapped_s: f64,
    pub all_on_new_key_s: f64,
    pub retire_s: f64,
    pub window_s: f64,
    pub window_writes: u64,
    pub window_reads: u64,
    /// Writes besides the applier's and the N re-wrapped applies.
    pub extra_writes: u64,
    pub window_requests: BTreeMap<String, u64>,
    pub controller_cpu_s: f64,
    pub controller_peak_rss_mib: f64,
    pub secret_events_seen: u64,
    pub sealed_events_seen: u64,
    pub violations: u64,
    pub violation_examples: Vec<String>,
    pub settled: bool,
    pub machine_load: f64,
    pub machine_load_start: String,
    pub machine_load_end: String,
}

/// The timed steps.
struct Steps {
    rotate: Duration,
    rewrap: Duration,
    rewrap_cpu: f64,
    apply: Duration,
    resync: Duration,
    retire: Duration,
}

/// The control plane, the controller, and how to run `kseal` against them.
struct Scenario {
    cp: ControlPlane,
    client: Client,
    apply_client: Client,
    controller: Controller,
    kubeconfig: String,
    kseal: PathBuf,
    settings: Settings,
}

/// Runs the scenario with the controller `controller_bin` (its defaults
/// but `--key-renew-period 0`, then `controller_args`) and `kseal_bin`.
/// Prints the figures and fails when there was a violation.
pub async fn bench(
    settings: &Settings,
    controller_args: &[String],
    controller_bin: &Path,
    kseal_bin: &Path,
) -> Result<RotationLoadFigures> {
    let (n, values) = (settings.count, settings.values);
    note(&format!(
        "rotation under load: N={n}, {values} values each, applier {APPLIER_RATE} ops/s; load {}",
        super::harness::load()
    ));
    let (mut scenario, recipients) =
        Scenario::start(settings, controller_args, controller_bin, kseal_bin).await?;
    let old_id = recipients[0].key_id().to_string();
    let objects = scenario.first_sync(&recipients).await?;

    let applied = Arc::new(Mutex::new(Applied::default()));
    let monitor = Monitor::start(&scenario.client, values, applied.clone()).await?;
    let applier = Applier::start(&scenario.client, &scenario.apply_client, values, &applied);
    // Let the load settle in first.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let pid = scenario.controller.pid()?;
    let window = Window::start(&scenario.client, pid).await?;
    let applier_before = applier.ops();
    let (new_id, rotate) = scenario.rotate().await?;
    let (rewrapped, rewrap, rewrap_cpu) = scenario.rewrap(&objects).await?;
    let (apply, resync) = scenario.apply_rewrapped(&rewrapped, &new_id).await?;
    let retire = scenario.retire(&old_id, &new_id, &applied).await?;
    let window_s = window.started.elapsed();
    let measured = window.stop(&scenario.client).await?;
    let applier_ops = applier.ops() - applier_before;

    // The applier keeps going a little on the new key alone, then stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    applier.stop().await?;
    let live: BTreeMap<String, (Vec<u32>, String)> = applied
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .versions
        .clone()
        .into_iter()
        .collect();
    let settled = scenario.settle(&live).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = monitor.stop().await?;
    let (peak_kib, _) = memory_kib(pid);
    let steps = Steps {
        rotate,
        rewrap,
        rewrap_cpu,
        apply,
        resync,
        retire,
    };
    let figures = figures(
        settings,
        &steps,
        window_s,
        &measured,
        applier_ops,
        live.len(),
        peak_kib,
        &seen,
        settled.is_ok(),
    );
    scenario
        .controller
        .process
        .terminate(Duration::from_secs(10));
    drop(scenario);
    if seen.violation_count > 0 {
        println!("{}", json(&figures));
        bail!("{} violations", seen.violation_count);
    }
    settled.context("the objects did not settle")?;
    Ok(figures)
}

/// The figures of a run, with notes on the window and the monitor.
#[allow(clippy::too_many_arguments)]
fn figures(
    settings: &Settings,
    steps: &Steps,
    window_s: Duration,
    measured: &Measured,
    applier_ops: u64,
    live_objects: usize,
    peak_kib: u64,
    seen: &Seen,
    settled: bool,
) -> RotationLoadFigures {
    let (n, values) = (settings.count, settings.values);
    let (writes, reads) = (measured.requests.writes(), measured.requests.reads());
    let breakdown = measured.requests.breakdown();
    // Besides the applier: the bench's N applies of the re-wrapped objects.
    let extra_writes = writes.saturating_sub(applier_ops + n as u64);
    note(&format!(
        "window {:.1}s: {writes} writes ({applier_ops} by the applier, {n} re-wrapped applies, {extra_writes} by the controller and kseal), {reads} reads: {}",
        window_s.as_secs_f64(),
        json(&breakdown)
    ));
    note(&format!(
        "monitor: {} Secret events, {} SealedSecret events, {} violations; {live_objects} live objects",
        seen.secret_events, seen.sealed_events, seen.violation_count,
    ));
    let rewrap_values = n * values;
    RotationLoadFigures {
        mode: "rotation-under-load",
        count: n,
        values_per_object: values,
        applier_ops_per_s: APPLIER_RATE,
        applier_ops_in_window: applier_ops,
        live_objects,
        rotate_s: round(steps.rotate.as_secs_f64(), 3),
        rewrap_online_s: round(steps.rewrap.as_secs_f64(), 3),
        rewrap_online_values_per_s: round(rewrap_values as f64 / steps.rewrap.as_secs_f64(), 0),
        rewrap_controller_cpu_s: round(steps.rewrap_cpu, 2),
        apply_rewrapped_s: round(steps.apply.as_secs_f64(), 3),
        all_on_new_key_s: round(steps.resync.as_secs_f64(), 3),
        retire_s: round(steps.retire.as_secs_f64(), 3),
        window_s: round(window_s.as_secs_f64(), 3),
        window_writes: writes,
        window_reads: reads,
        extra_writes,
        window_requests: breakdown,
        controller_cpu_s: round(measured.cpu_s, 2),
        controller_peak_rss_mib: mib(peak_kib),
        secret_events_seen: seen.secret_events,
        sealed_events_seen: seen.sealed_events,
        violations: seen.violation_count,
        violation_examples: seen.violations.clone(),
        settled,
        machine_load: load1(),
        machine_load_start: measured.load_before.clone(),
        machine_load_end: measured.load_after.clone(),
    }
}

impl Scenario {
    /// A control plane, the applying client, the controller with its key
    /// published and ready; the published keys.
    async fn start(
        settings: &Settings,
        controller_args: &[String],
        controller_bin: &Path,
        kseal_bin: &Path,
    ) -> Result<(Self, Vec<Recipient>)> {
        let (cp, client) = cluster::start().await?;
        setup(&client, &[cluster::KEY_NAMESPACE, NAMESPACE]).await?;
        let apply_client = applying_client(&cp, settings).await?;
        let controller = kseal_controller(&cp, controller_bin, controller_args)?;
        let recipients = published_and_ready(&client, &controller).await?;
        let kubeconfig = cp.admin_kubeconfig().display().to_string();
        let scenario = Self {
            cp,
            client,
            apply_client,
            controller,
            kubeconfig,
            kseal: kseal_bin.to_path_buf(),
            settings: settings.clone(),
        };
        Ok((scenario, recipients))
    }

    fn sealed_api(&self) -> Api<SealedSecret> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// N in sync.
    async fn first_sync(&self, recipients: &[Recipient]) -> Result<Vec<SealedSecret>> {
        let (n, values) = (self.settings.count, self.settings.values);
        let objects = sealed_secrets(n, values, recipients)?;
        let secret_api: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut convergence =
            Convergence::start(self.sealed_api(), secret_api, n, self.settings.timeout).await?;
        let started = Instant::now();
        let apply_api: Api<SealedSecret> = Api::namespaced(self.apply_client.clone(), NAMESPACE);
        apply_all(&apply_api, &objects, self.settings.concurrency).await?;
        convergence
            .wait(
                "the first sync",
                started,
                sealed_ready,
                |s| secret_correct(s, values),
                |_| Ok(()),
            )
            .await?;
        note(&format!(
            "{n} in sync after {:.1}s; load {}",
            started.elapsed().as_secs_f64(),
            super::harness::load()
        ));
        Ok(objects)
    }

    /// Runs `kseal` with `args`; its stdout.
    async fn kseal(&self, args: &[OsString]) -> Result<String> {
        let output = tokio::process::Command::new(&self.kseal)
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

    /// Step 1: rotates until the new key is published; its id and the time.
    async fn rotate(&self) -> Result<(String, Duration)> {
        let t = Instant::now();
        let rotated = self
            .kseal(&os(&["keys", "rotate", "--kubeconfig", &self.kubeconfig]))
            .await?;
        let new_id = rotated
            .split_whitespace()
            .next()
            .context("kseal keys rotate printed no key id")?
            .to_owned();
        wait_for(
            "the new key to be published",
            self.settings.timeout,
            || async {
                kseal_testenv::published_recipients(
                    &self.client,
                    cluster::KEY_NAMESPACE,
                    Duration::from_secs(10),
                )
                .await
                .is_ok_and(|r| r[0].key_id().to_string() == new_id)
            },
        )
        .await?;
        let rotate = t.elapsed();
        note(&format!(
            "1. rotated to {new_id} in {:.2}s",
            rotate.as_secs_f64()
        ));
        Ok((new_id, rotate))
    }

    /// Step 2: re-wraps the N online, in bulk, as a tree of files; the
    /// re-wrapped objects, the time, and the controller's CPU.
    async fn rewrap(&self, objects: &[SealedSecret]) -> Result<(Vec<SealedSecret>, Duration, f64)> {
        let tree = self.cp.dir().join("rotation-repo");
        write_tree(&tree, objects)?;
        let rewrap_values = objects.len() * self.settings.values;
        let pid = self.controller.pid()?;
        let cpu_before = cpu_seconds(pid);
        let t = Instant::now();
        let url = self.controller.url("");
        let mut args = os(&["rewrap", "--online", "--controller-url", &url, "--in-place"]);
        args.push(tree.clone().into_os_string());
        self.kseal(&args).await?;
        let rewrap = t.elapsed();
        let cpu = cpu_seconds(pid) - cpu_before;
        note(&format!(
            "2. kseal rewrap --online: {} objects, {rewrap_values} values in {:.2}s ({:.0} values/s), controller CPU {cpu:.2}s",
            objects.len(),
            rewrap.as_secs_f64(),
            rewrap_values as f64 / rewrap.as_secs_f64()
        ));
        let rewrapped = read_tree(&tree)?;
        std::fs::remove_dir_all(&tree)?;
        Ok((rewrapped, rewrap, cpu))
    }

    /// Step 3: applies the re-wrapped N; waits until all are Ready on the new
    /// key. The time to apply, and until all were on the new key.
    async fn apply_rewrapped(
        &mut self,
        rewrapped: &[SealedSecret],
        new_id: &str,
    ) -> Result<(Duration, Duration)> {
        let n = rewrapped.len();
        let on_new_key = |s: &SealedSecret| {
            sealed_ready(s) && s.status.as_ref().is_some_and(|st| st.key_ids == [new_id])
        };
        let mut follower = Follower::start(self.sealed_api()).await?;
        let apply_api: Api<SealedSecret> = Api::namespaced(self.apply_client.clone(), NAMESPACE);
        let t = Instant::now();
        apply_all(&apply_api, rewrapped, self.settings.concurrency).await?;
        let apply = t.elapsed();
        loop {
            follower
                .follow_for(on_new_key, Duration::from_millis(200))
                .await?;
            let done = rewrapped
                .iter()
                .filter_map(|o| o.metadata.name.as_ref())
                .filter(|name| follower.done.get(*name).copied().unwrap_or(false))
                .count();
            if done == n {
                break;
            }
            if t.elapsed() > self.settings.timeout {
                bail!("{done}/{n} on the new key");
            }
            self.controller.process.check_alive()?;
        }
        let resync = t.elapsed();
        note(&format!(
            "3. applied the re-wrapped {n} in {:.2}s; all Ready on the new key after {:.2}s",
            apply.as_secs_f64(),
            resync.as_secs_f64()
        ));
        Ok((apply, resync))
    }

    /// Step 4: retires the old key, once the applier's own objects are
    /// re-sealed (retrying while the controller refuses); the time.
    async fn retire(
        &self,
        old_id: &str,
        new_id: &str,
        applied: &Mutex<Applied>,
    ) -> Result<Duration> {
        let t = Instant::now();
        let timeout = self.settings.timeout;
        wait_for("the applier's objects on the new key", timeout, || async {
            applied
                .lock()
                .is_ok_and(|a| a.versions.values().all(|(_, key)| *key == new_id))
        })
        .await?;
        let retire = os(&["keys", "retire", old_id, "--kubeconfig", &self.kubeconfig]);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.kseal(&retire).await {
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
        let retired = t.elapsed();
        note(&format!(
            "4. retired {old_id} after {:.2}s ({attempts} attempt(s))",
            retired.as_secs_f64()
        ));
        Ok(retired)
    }

    /// Everything settles: every object Ready for its generation, every
    /// Secret with its latest values (`live`: the applier's objects and
    /// their versions).
    async fn settle(&self, live: &BTreeMap<String, (Vec<u32>, String)>) -> Result<()> {
        let values = self.settings.values;
        let total = self.settings.count + live.len();
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
        let secret_api: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        let sealed_api = self.sealed_api();
        wait_for("every object settled", self.settings.timeout, || async {
            let (Ok(secrets), Ok(sealed)) =
                (list_all(&secret_api).await, list_all(&sealed_api).await)
            else {
                return false;
            };
            secrets.len() == total
                && sealed.len() == total
                && secrets.iter().all(latest_ok)
                && sealed.iter().all(sealed_ready)
        })
        .await?;
        Ok(())
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}
