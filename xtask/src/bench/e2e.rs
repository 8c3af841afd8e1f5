//! Scenario: kseal end to end at scale, on a local control plane, against
//! the targets docs/benchmarks.md compares with. Three phases, composed by
//! [`super::runner`]:
//!
//! 1. [`baseline`]: the applying client creates N Secrets (5 values each)
//!    with server-side apply, `--concurrency` requests in flight, with the
//!    controller's client and `--client-qps`/`--client-burst` as its rate
//!    limit (none by default); the time until the last one is accepted.
//! 2. [`sync`]: the release `kseal-controller` runs (default flags except
//!    `--key-renew-period 0`, plus any `--controller-arg`); N SealedSecrets
//!    sealed to its published key (before the clock starts) are applied
//!    with the same client settings; the clock stops when every
//!    SealedSecret is `Ready=True` for its current generation and every
//!    Secret holds exactly the right values (followed with watches, checked
//!    again with a list). Peak resident memory is the controller's
//!    `VmHWM`; `VmRSS` is sampled.
//! 3. [`restart`]: SIGTERM, start again; time to `/readyz` and to its first
//!    full resync (`kseal_reconcile_duration_seconds_count` reaching N),
//!    and the API requests it made, from the API server's
//!    `apiserver_request_total`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{Timestamp, Unit};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::Recipient;
use kseal_testenv::controller::Controller;
use kseal_testenv::poll::wait_for;
use kube::{Api, Client};
use serde::Serialize;

use super::harness::cluster::{NAMESPACE, apply_all, delete_namespace, list_all};
use super::harness::figures::Headline;
use super::harness::measure::{Measured, Restart, Window};
use super::harness::objects::{baseline_secrets, sealed_ready, sealed_secrets, secret_correct};
use super::harness::process::{memory_kib, sampling_rss};
use super::harness::watch::Convergence;
use super::harness::{Settings, json, load, load1, mib, note, round};

/// Where the baseline's Secrets go (deleted before the controller runs).
pub const BASELINE_NAMESPACE: &str = "bench-baseline";

/// What the sync phase measured (the first fields of `bench-e2e`'s JSON).
#[derive(Debug, Clone, Serialize)]
pub struct SyncFigures {
    pub count: usize,
    pub values_per_object: usize,
    pub client_concurrency: usize,
    pub client_qps: f64,
    pub client_burst: Option<u32>,
    pub controller_args: Vec<String>,
    pub baseline_s: Option<f64>,
    pub controller_apply_s: f64,
    pub controller_s: f64,
    /// `controller_s / baseline_s`.
    pub ratio: Option<f64>,
    pub controller_peak_rss_mib: f64,
    pub controller_sampled_rss_mib: f64,
    pub controller_rss_synced_mib: f64,
    pub controller_rss_curve: Vec<RssPoint>,
    /// By the API server's clock (whole seconds): the last Ready transition
    /// or Secret created, after the last apply.
    pub controller_done_after_apply_s: Option<f64>,
    pub controller_writes: u64,
    pub controller_cpu_s: f64,
    pub controller_cpu_ms_per_object: f64,
    pub controller_qps: f64,
    pub run_requests: BTreeMap<String, u64>,
    pub run_reads: u64,
    pub machine_load: f64,
    pub machine_load_start: String,
    pub machine_load_end: String,
    /// `controller_s` unrounded.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// The controller's memory when it first held so many objects.
#[derive(Debug, Clone, Serialize)]
pub struct RssPoint {
    pub objects: u64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub load: f64,
}

/// What the restart phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct RestartFigures {
    pub restart_ready_s: f64,
    /// `None` when the resync was not seen in time.
    pub restart_resync_s: Option<f64>,
    pub restart_writes: u64,
    pub restart_reads: u64,
    pub restart_requests: BTreeMap<String, u64>,
    pub restart_peak_rss_mib: f64,
    pub restart_cpu_s: f64,
    pub restart_secret_gets: u64,
    pub restart_reads_per_object: f64,
    pub restart_writes_per_object: f64,
}

impl SyncFigures {
    /// The run around the sync: its baseline (and the ratio to it), the
    /// controller's extra flags, the machine's load when it started.
    pub fn in_run(
        mut self,
        baseline_s: Option<f64>,
        controller_args: &[String],
        load_start: String,
    ) -> Self {
        self.baseline_s = baseline_s.map(|s| round(s, 3));
        self.ratio = baseline_s.map(|b| round(self.elapsed.as_secs_f64() / b, 3));
        self.controller_args = controller_args.to_vec();
        self.machine_load_start = load_start;
        self
    }
}

/// kseal's figures a comparison with another tool divides.
pub fn headline(sync: &SyncFigures, restart: Option<&RestartFigures>) -> Headline {
    Headline {
        sync_s: sync.controller_s,
        cpu_ms_per_object: sync.controller_cpu_ms_per_object,
        restart_resync_s: restart.and_then(|r| r.restart_resync_s),
        peak_rss_mib: sync.controller_peak_rss_mib,
    }
}

/// Phase 1: the same client settings creating the same N Secrets
/// directly; seconds until the last is accepted. Deletes them after.
pub async fn baseline(client: &Client, apply_client: &Client, settings: &Settings) -> Result<f64> {
    let n = settings.count;
    let secrets = baseline_secrets(BASELINE_NAMESPACE, n, settings.values);
    let api: Api<Secret> = Api::namespaced(apply_client.clone(), BASELINE_NAMESPACE);
    let load_before = load();
    let elapsed = apply_all(&api, &secrets, settings.concurrency).await?;
    note(&format!(
        "baseline: {n} Secrets created in {:.2}s ({:.0}/s); load {load_before} → {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        load()
    ));
    // Make room for the controller run.
    let gone = delete_namespace(client, BASELINE_NAMESPACE, settings.timeout).await?;
    note(&format!(
        "baseline namespace deleted in {:.1}s",
        gone.as_secs_f64()
    ));
    Ok(elapsed.as_secs_f64())
}

/// The controller's memory as the objects it holds grow: `VmRSS` and
/// `VmHWM` the first time its `kseal_sealed_secrets` count reaches each
/// checkpoint (1k, 2k, 5k, 10k, 15k, 20k, … up to N), sampled during the
/// apply.
struct MemoryCurve {
    checkpoints: Vec<usize>,
    points: Vec<RssPoint>,
}

impl MemoryCurve {
    fn new(n: usize) -> Self {
        let mut checkpoints: Vec<usize> = [1_000, 2_000, 5_000, 10_000, 15_000]
            .into_iter()
            .chain((20_000..).step_by(10_000))
            .take_while(|c| *c < n)
            .collect();
        checkpoints.push(n);
        Self {
            checkpoints,
            points: Vec::new(),
        }
    }

    async fn sample(&mut self, controller: &Controller, pid: u32) {
        let Some(next) = self.checkpoints.first().copied() else {
            return;
        };
        let Some(body) = controller.metrics().await else {
            return;
        };
        let held: f64 = body
            .lines()
            .filter_map(|line| line.strip_prefix("kseal_sealed_secrets{"))
            .filter_map(|rest| rest.split_once("} ")?.1.trim().parse::<f64>().ok())
            .sum();
        if (held as usize) < next {
            return;
        }
        let (hwm, rss) = memory_kib(pid);
        self.checkpoints.retain(|c| *c > held as usize);
        note(&format!(
            "{held} SealedSecrets held: RSS {} MiB, peak {} MiB; load {}",
            mib(rss),
            mib(hwm),
            load()
        ));
        self.points.push(RssPoint {
            objects: held as u64,
            rss_mib: mib(rss),
            peak_rss_mib: mib(hwm),
            load: load1(),
        });
    }
}

/// How the sync went, before the figures are made of it.
struct Synced {
    applied: Duration,
    applied_at: Timestamp,
    elapsed: Duration,
    sampled_rss_kib: u64,
    curve: Vec<RssPoint>,
    measured: Measured,
}

/// Phase 2: seals N objects to `recipients` (not timed), applies them and
/// waits until all are in sync; the figures, and the objects (for a
/// rotation after).
pub async fn sync(
    client: &Client,
    apply_client: &Client,
    controller: &mut Controller,
    recipients: &[Recipient],
    settings: &Settings,
) -> Result<(SyncFigures, Vec<SealedSecret>)> {
    let (n, values) = (settings.count, settings.values);
    let load_start = load();
    let sealing = Instant::now();
    let objects = sealed_secrets(n, values, recipients)?;
    note(&format!(
        "sealed {n}×{values} values in {:.1}s (not timed)",
        sealing.elapsed().as_secs_f64()
    ));
    let synced = apply_and_follow(client, apply_client, controller, &objects, settings).await?;
    let done_after_apply_s = final_check(client, n, values, synced.applied_at).await?;
    let Synced {
        applied,
        elapsed,
        measured,
        ..
    } = &synced;
    // Everything on these resources minus the applier's N applies (the only
    // other writer).
    let controller_writes = measured.requests.writes().saturating_sub(n as u64);
    let breakdown = measured.requests.breakdown();
    note(&format!(
        "API requests during the run: {}",
        json(&breakdown)
    ));
    let figures = SyncFigures {
        count: n,
        values_per_object: values,
        client_concurrency: settings.concurrency,
        client_qps: settings.client_qps,
        client_burst: (settings.client_qps > 0.0).then_some(settings.client_burst),
        controller_args: Vec::new(),
        baseline_s: None,
        controller_apply_s: round(applied.as_secs_f64(), 3),
        controller_s: round(elapsed.as_secs_f64(), 3),
        ratio: None,
        controller_peak_rss_mib: mib(measured.peak_kib),
        controller_sampled_rss_mib: mib(synced.sampled_rss_kib),
        controller_rss_synced_mib: mib(measured.rss_kib),
        controller_rss_curve: synced.curve.clone(),
        controller_done_after_apply_s: done_after_apply_s,
        controller_writes,
        controller_cpu_s: round(measured.cpu_s, 2),
        controller_cpu_ms_per_object: round(measured.cpu_s * 1000.0 / n as f64, 3),
        controller_qps: round(controller_writes as f64 / elapsed.as_secs_f64(), 1),
        run_requests: breakdown,
        run_reads: measured.requests.reads(),
        machine_load: load1(),
        machine_load_start: load_start,
        machine_load_end: measured.load_after.clone(),
        elapsed: *elapsed,
    };
    Ok((figures, objects))
}

/// Applies the objects (sampling the controller's memory meanwhile) and
/// follows SealedSecrets and Secrets until all are in sync.
async fn apply_and_follow(
    client: &Client,
    apply_client: &Client,
    controller: &mut Controller,
    objects: &[SealedSecret],
    settings: &Settings,
) -> Result<Synced> {
    let (n, values) = (settings.count, settings.values);
    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut convergence = Convergence::start(sealed_api, secret_api, n, settings.timeout).await?;
    let pid = controller.pid()?;
    let window = Window::start(client, pid).await?;
    let mut curve = MemoryCurve::new(n);
    let apply_api: Api<SealedSecret> = Api::namespaced(apply_client.clone(), NAMESPACE);
    let apply = apply_all(&apply_api, objects, settings.concurrency);
    let (applied, mut sampled) = sampling_rss(pid, apply, async || {
        // Every 2 s: memory against the objects the controller holds.
        curve.sample(controller, pid).await;
    })
    .await?;
    let applied_at = Timestamp::now();
    note(&format!(
        "applied {n} SealedSecrets in {:.2}s",
        applied.as_secs_f64()
    ));
    let mut last_report = Instant::now();
    let elapsed = convergence
        .wait(
            "kseal's SealedSecrets Ready and Secrets correct",
            window.started,
            sealed_ready,
            |s| secret_correct(s, values),
            |progress| {
                sampled = sampled.max(memory_kib(pid).1);
                if last_report.elapsed() > Duration::from_secs(5) {
                    last_report = Instant::now();
                    note(&format!(
                        "{:.0}s: {}/{n} Ready, {}/{n} Secrets correct; RSS {} MiB; load {}",
                        progress.elapsed.as_secs_f64(),
                        progress.ready,
                        progress.correct,
                        mib(memory_kib(pid).1),
                        load()
                    ));
                }
                controller.process.check_alive()
            },
        )
        .await?;
    let measured = window.stop(client).await?;
    note(&format!(
        "controller: all {n} Ready and correct in {:.2}s; peak RSS {} MiB (sampled {} MiB); load {} → {}",
        elapsed.as_secs_f64(),
        mib(measured.peak_kib),
        mib(sampled),
        measured.load_before,
        measured.load_after
    ));
    Ok(Synced {
        applied,
        applied_at,
        elapsed,
        sampled_rss_kib: sampled,
        curve: curve.points,
        measured,
    })
}

/// Checks again with a full list, independent of the watches; returns when
/// the controller itself finished, by the API server's clock (whole
/// seconds): the last Ready transition and the last Secret created, after
/// `applied_at`. The watches can lag behind that when they must relist.
async fn final_check(
    client: &Client,
    n: usize,
    values: usize,
    applied_at: Timestamp,
) -> Result<Option<f64>> {
    let listed_secrets = list_all(&Api::<Secret>::namespaced(client.clone(), NAMESPACE)).await?;
    let listed_sealed =
        list_all(&Api::<SealedSecret>::namespaced(client.clone(), NAMESPACE)).await?;
    let last_ready = listed_sealed
        .iter()
        .filter_map(|sealed| {
            let status = sealed.status.as_ref()?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            ready.last_transition_time.parse::<Timestamp>().ok()
        })
        .max();
    let last_secret = listed_secrets
        .iter()
        .filter_map(|secret| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .max();
    let done_after_apply_s = last_ready
        .max(last_secret)
        .map(|last| (last - applied_at).total(Unit::Second).unwrap_or(f64::NAN));
    note(&format!(
        "last Ready transition {last_ready:?}, last Secret created {last_secret:?}: {done_after_apply_s:?} s after the last apply (±1 s)"
    ));
    let bad_secrets = listed_secrets
        .iter()
        .filter(|s| !secret_correct(s, values))
        .count();
    let not_ready = listed_sealed.iter().filter(|s| !sealed_ready(s)).count();
    if listed_secrets.len() != n || listed_sealed.len() != n || bad_secrets + not_ready > 0 {
        bail!(
            "final check failed: {} Secrets ({bad_secrets} wrong), {} SealedSecrets ({not_ready} not Ready)",
            listed_secrets.len(),
            listed_sealed.len()
        );
    }
    note(&format!(
        "checked {n} Secrets × {values} values and {n} SealedSecrets with a list"
    ));
    Ok(done_after_apply_s)
}

/// Phase 3: stops the controller with everything in sync, starts it again,
/// and measures how long until it is ready and has resynced, and what it
/// did meanwhile.
pub async fn restart(
    client: &Client,
    controller: &mut Controller,
    n: usize,
    timeout: Duration,
) -> Result<RestartFigures> {
    let restart = Restart::begin(client, &mut controller.process).await?;
    let started = restart.started();
    wait_for("controller /readyz after restart", timeout, || {
        controller.is_ready()
    })
    .await?;
    let ready = started.elapsed();
    let resynced = wait_for("the first full resync", timeout, || async {
        controller
            .metric("kseal_reconcile_duration_seconds_count")
            .await
            .is_some_and(|count| count >= n as f64)
    })
    .await
    .map(|_| started.elapsed());
    match &resynced {
        Ok(resynced) => note(&format!(
            "restart: /readyz after {:.2}s, {n} reconciles after {:.2}s",
            ready.as_secs_f64(),
            resynced.as_secs_f64()
        )),
        Err(err) => note(&format!("restart: resync not seen: {err}")),
    }
    let measured = restart.end(client).await?;
    let (writes, reads) = (measured.requests.writes(), measured.requests.reads());
    let breakdown = measured.requests.breakdown();
    let secret_gets = breakdown.get("GET secrets").copied().unwrap_or(0);
    note(&format!(
        "restart: {writes} writes, {reads} reads: {}; peak RSS {} MiB; load {} → {}",
        json(&breakdown),
        mib(measured.peak_kib),
        measured.load_before,
        measured.load_after
    ));
    Ok(RestartFigures {
        restart_ready_s: round(ready.as_secs_f64(), 3),
        restart_resync_s: resynced.ok().map(|d| round(d.as_secs_f64(), 3)),
        restart_writes: writes,
        restart_reads: reads,
        restart_requests: breakdown,
        restart_peak_rss_mib: mib(measured.peak_kib),
        restart_cpu_s: round(measured.cpu_s, 2),
        restart_secret_gets: secret_gets,
        restart_reads_per_object: round(reads as f64 / n as f64, 4),
        restart_writes_per_object: round(writes as f64 / n as f64, 4),
    })
}
