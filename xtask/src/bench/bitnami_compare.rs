//! Scenario: the Bitnami side of `bench-e2e --compare bitnami`: the same
//! measurements as kseal's run (sync, CPU, peak RSS, API requests by verb,
//! restart), on the same control plane, with the same N, values, applier
//! and client settings; then Bitnami's own key renewal (SIGUSR1, its
//! documented way to force a new key) and `kubeseal --re-encrypt` of the N
//! objects. Each run gets a fresh namespace, deleted afterwards. The
//! controller itself is driven by [`super::bitnami`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kseal_testenv::ControlPlane;
use kseal_testenv::poll::wait_for;
use kube::api::DynamicObject;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

use super::bitnami::{self, BitnamiController};
use super::harness::cluster::{apply_all, create_namespace, delete_namespace, list_all};
use super::harness::figures::Headline;
use super::harness::measure::{Restart, Window};
use super::harness::objects::{name, on_every_core, secret_correct, value, write_tree};
use super::harness::process::{cpu_seconds, memory_kib, sampling_rss};
use super::harness::watch::Convergence;
use super::harness::{Settings, json, load, load1, mib, note, round, run_tool};

const NAMESPACE: &str = "bench-bitnami";

/// One run of Bitnami's controller (an entry of `bitnami` in
/// `bench-e2e`'s JSON).
#[derive(Debug, Clone, Serialize)]
pub struct BitnamiRun {
    /// Its flags besides its defaults.
    pub flags: Vec<String>,
    #[serde(flatten)]
    pub sync: BitnamiSync,
    #[serde(flatten)]
    pub restart: BitnamiRestart,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<BitnamiRotation>,
}

/// Its sync of the N objects.
#[derive(Debug, Clone, Serialize)]
pub struct BitnamiSync {
    pub controller_apply_s: f64,
    pub controller_s: f64,
    pub controller_cpu_s: f64,
    pub controller_cpu_ms_per_object: f64,
    pub controller_peak_rss_mib: f64,
    pub controller_writes: u64,
    pub run_reads: u64,
    pub run_requests: BTreeMap<String, u64>,
    pub machine_load: f64,
    pub machine_load_start: String,
    pub machine_load_end: String,
}

impl BitnamiRun {
    /// The figures a comparison with kseal divides.
    pub fn headline(&self) -> Headline {
        Headline {
            sync_s: self.sync.controller_s,
            cpu_ms_per_object: self.sync.controller_cpu_ms_per_object,
            restart_resync_s: Some(self.restart.restart_resync_s),
            peak_rss_mib: self.sync.controller_peak_rss_mib,
        }
    }
}

/// Its restart with N in sync.
#[derive(Debug, Clone, Serialize)]
pub struct BitnamiRestart {
    pub restart_ready_s: f64,
    pub restart_resync_s: f64,
    pub restart_writes: u64,
    pub restart_reads: u64,
    pub restart_requests: BTreeMap<String, u64>,
    pub restart_cpu_s: f64,
    pub restart_peak_rss_mib: f64,
}

/// Its key renewal and `kubeseal --re-encrypt` of the N objects.
#[derive(Debug, Clone, Serialize)]
pub struct BitnamiRotation {
    pub rotate_s: f64,
    pub reencrypt_s: f64,
    pub reencrypt_values_per_s: f64,
    pub reencrypt_controller_cpu_s: f64,
    pub objects: usize,
    pub values: usize,
    pub machine_load_start: String,
    pub machine_load_end: String,
}

/// Runs Bitnami's controller once per entry of `runs` (its extra flags,
/// space-separated; empty: its defaults). The last run also renews the key
/// and re-encrypts the N objects.
pub async fn runs(
    cp: &ControlPlane,
    client: &Client,
    apply_client: &Client,
    settings: &Settings,
    runs: &[String],
) -> Result<Vec<BitnamiRun>> {
    let compare = Compare {
        cp,
        client,
        apply_client,
        settings,
        controller_bin: bitnami::controller_binary()?,
        kubeseal: bitnami::kubeseal_binary()?,
    };
    bitnami::setup(client).await?;
    let mut all = Vec::new();
    for (i, flags) in runs.iter().enumerate() {
        let flags: Vec<String> = flags.split_whitespace().map(str::to_owned).collect();
        let log_name = format!("sealed-secrets-controller-{i}.log");
        all.push(compare.run(&flags, &log_name, i + 1 == runs.len()).await?);
    }
    Ok(all)
}

/// Where the runs happen, and with what.
struct Compare<'a> {
    cp: &'a ControlPlane,
    client: &'a Client,
    apply_client: &'a Client,
    settings: &'a Settings,
    controller_bin: PathBuf,
    kubeseal: PathBuf,
}

impl Compare<'_> {
    /// One run: start, seal, sync, restart, and with `rotate` the rotation.
    async fn run(&self, flags: &[String], log_name: &str, rotate: bool) -> Result<BitnamiRun> {
        let (n, values) = (self.settings.count, self.settings.values);
        create_namespace(self.client, NAMESPACE).await?;
        let (mut controller, cert) = self.start(flags, log_name).await?;
        let cert_file = self.cp.dir().join("bitnami-cert.pem");
        std::fs::write(&cert_file, &cert)?;
        // Sealed with kubeseal --cert (not timed), both cores.
        let sealing = Instant::now();
        let objects = seal_all(&self.kubeseal, &cert_file, n, values)?;
        note(&format!(
            "bitnami: sealed {n}×{values} values with kubeseal in {:.1}s (not timed)",
            sealing.elapsed().as_secs_f64()
        ));
        let sync = self.sync(&mut controller, &objects).await?;
        let restart = self.restart(&mut controller).await?;
        let rotation = if rotate {
            Some(self.rotation(&controller, &objects, &cert).await?)
        } else {
            None
        };
        let mut figures = BitnamiRun {
            flags: flags.to_vec(),
            sync,
            restart,
            rotation,
        };
        figures.sync.machine_load_end = load();
        controller.process.terminate(Duration::from_secs(10));
        let gone = delete_namespace(self.client, NAMESPACE, self.settings.timeout).await?;
        note(&format!(
            "bitnami: namespace deleted in {:.1}s",
            gone.as_secs_f64()
        ));
        Ok(figures)
    }

    /// Starts the controller; its certificate once it has a key (RSA-4096
    /// key generation on first start takes a while).
    async fn start(&self, flags: &[String], log_name: &str) -> Result<(BitnamiController, String)> {
        let mut controller =
            BitnamiController::new(self.cp, self.client, &self.controller_bin, flags, log_name)
                .await?;
        note(&format!(
            "bitnami: {} {}",
            self.controller_bin.display(),
            if flags.is_empty() {
                "(defaults)".to_owned()
            } else {
                flags.join(" ")
            }
        ));
        controller.process.start()?;
        let started = Instant::now();
        while controller.cert().await.is_none() {
            controller.process.check_alive()?;
            if started.elapsed() > self.settings.timeout {
                bail!(
                    "no certificate from Bitnami's controller: {}",
                    controller.process.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let cert = controller.cert().await.context("no certificate")?;
        Ok((controller, cert))
    }

    /// Applies the N objects and waits until all are `Synced` and every
    /// Secret is right; checks again with a list.
    async fn sync(
        &self,
        controller: &mut BitnamiController,
        objects: &[DynamicObject],
    ) -> Result<BitnamiSync> {
        let (n, values) = (self.settings.count, self.settings.values);
        let resource = bitnami::api_resource();
        let sealed_api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), NAMESPACE, &resource);
        let secret_api: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut convergence = Convergence::start(
            sealed_api.clone(),
            secret_api.clone(),
            n,
            self.settings.timeout,
        )
        .await?;
        let pid = controller.pid()?;
        let window = Window::start(self.client, pid).await?;
        let apply_api: Api<DynamicObject> =
            Api::namespaced_with(self.apply_client.clone(), NAMESPACE, &resource);
        let apply = apply_all(&apply_api, objects, self.settings.concurrency);
        let (applied, _) = sampling_rss(pid, apply, async || {}).await?;
        note(&format!(
            "bitnami: applied {n} SealedSecrets in {:.2}s",
            applied.as_secs_f64()
        ));
        let mut last_report = Instant::now();
        let elapsed = convergence
            .wait(
                "Bitnami's SealedSecrets Synced and Secrets correct",
                window.started,
                bitnami::synced,
                |s| secret_correct(s, values),
                |progress| {
                    if last_report.elapsed() > Duration::from_secs(15) {
                        last_report = Instant::now();
                        note(&format!(
                            "bitnami: {:.0}s: {}/{n} Synced, {}/{n} Secrets correct; RSS {} MiB; load {}",
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
        let measured = window.stop(self.client).await?;
        note(&format!(
            "bitnami: all {n} Synced and correct in {:.2}s; CPU {:.2}s; peak RSS {} MiB; load {} → {}",
            elapsed.as_secs_f64(),
            measured.cpu_s,
            mib(measured.peak_kib),
            measured.load_before,
            measured.load_after
        ));
        let listed_secrets = list_all(&secret_api).await?;
        let listed_sealed = list_all(&sealed_api).await?;
        let bad = listed_secrets
            .iter()
            .filter(|s| !secret_correct(s, values))
            .count();
        let unsynced = listed_sealed.iter().filter(|s| !bitnami::synced(s)).count();
        if listed_secrets.len() != n || listed_sealed.len() != n || bad + unsynced > 0 {
            bail!(
                "bitnami: final check failed: {} Secrets ({bad} wrong), {} SealedSecrets ({unsynced} not Synced)",
                listed_secrets.len(),
                listed_sealed.len()
            );
        }
        let breakdown = measured.requests.breakdown();
        note(&format!(
            "bitnami: API requests during the run: {}",
            json(&breakdown)
        ));
        Ok(BitnamiSync {
            controller_apply_s: round(applied.as_secs_f64(), 3),
            controller_s: round(elapsed.as_secs_f64(), 3),
            controller_cpu_s: round(measured.cpu_s, 2),
            controller_cpu_ms_per_object: round(measured.cpu_s * 1000.0 / n as f64, 3),
            controller_peak_rss_mib: mib(measured.peak_kib),
            controller_writes: measured.requests.writes().saturating_sub(n as u64),
            run_reads: measured.requests.reads(),
            run_requests: breakdown,
            machine_load: load1(),
            machine_load_start: measured.load_before,
            machine_load_end: measured.load_after,
        })
    }

    /// Restart with N in sync: until `/healthz`, then until N unseals.
    async fn restart(&self, controller: &mut BitnamiController) -> Result<BitnamiRestart> {
        let timeout = self.settings.timeout;
        let n = self.settings.count;
        let restart = Restart::begin(self.client, &mut controller.process).await?;
        let started = restart.started();
        wait_for("Bitnami /healthz after restart", timeout, || async {
            controller
                .get("/healthz")
                .await
                .is_some_and(|(s, _)| s == 200)
        })
        .await?;
        let ready = started.elapsed();
        wait_for("Bitnami's resync (N unseals)", timeout, || async {
            controller
                .unseal_requests()
                .await
                .is_some_and(|count| count >= n as f64)
        })
        .await?;
        let resynced = started.elapsed();
        let measured = restart.end(self.client).await?;
        let (writes, reads) = (measured.requests.writes(), measured.requests.reads());
        let breakdown = measured.requests.breakdown();
        note(&format!(
            "bitnami restart: /healthz after {:.2}s, {n} unseals after {:.2}s; {writes} writes, {reads} reads: {}; CPU {:.2}s; peak RSS {} MiB; load {} → {}",
            ready.as_secs_f64(),
            resynced.as_secs_f64(),
            json(&breakdown),
            measured.cpu_s,
            mib(measured.peak_kib),
            measured.load_before,
            measured.load_after
        ));
        Ok(BitnamiRestart {
            restart_ready_s: round(ready.as_secs_f64(), 3),
            restart_resync_s: round(resynced.as_secs_f64(), 3),
            restart_writes: writes,
            restart_reads: reads,
            restart_requests: breakdown,
            restart_cpu_s: round(measured.cpu_s, 2),
            restart_peak_rss_mib: mib(measured.peak_kib),
        })
    }

    /// Bitnami's key renewal (SIGUSR1, what `--key-renew-period` does on
    /// its schedule) until the new certificate is served, then `kubeseal
    /// --re-encrypt` of every object, one process per file as its docs show.
    async fn rotation(
        &self,
        controller: &BitnamiController,
        objects: &[DynamicObject],
        old_cert: &str,
    ) -> Result<BitnamiRotation> {
        let n = objects.len();
        let tree = self.cp.dir().join("bitnami-repo");
        let files = write_tree(&tree, objects)?;
        let load_before = load();
        let pid = controller.pid()?;
        let started = Instant::now();
        run_tool(std::process::Command::new("kill").args(["-USR1", &pid.to_string()]))?;
        wait_for(
            "Bitnami's new certificate",
            Duration::from_secs(300),
            || async { controller.cert().await.is_some_and(|cert| cert != old_cert) },
        )
        .await?;
        let rotate = started.elapsed();
        note(&format!(
            "bitnami: key renewed (SIGUSR1) and served in {:.2}s",
            rotate.as_secs_f64()
        ));
        let cpu_before = cpu_seconds(pid);
        let started = Instant::now();
        self.reencrypt(controller, &files).await?;
        let elapsed = started.elapsed();
        let cpu = cpu_seconds(pid) - cpu_before;
        let values = check_reencrypted(&files, objects)?;
        note(&format!(
            "bitnami: kubeseal --re-encrypt of {n} files ({values} values) in {:.2}s ({:.0} values/s); controller CPU {cpu:.2}s; load {load_before} → {}",
            elapsed.as_secs_f64(),
            values as f64 / elapsed.as_secs_f64(),
            load()
        ));
        std::fs::remove_dir_all(&tree)?;
        Ok(BitnamiRotation {
            rotate_s: round(rotate.as_secs_f64(), 3),
            reencrypt_s: round(elapsed.as_secs_f64(), 3),
            reencrypt_values_per_s: round(values as f64 / elapsed.as_secs_f64(), 0),
            reencrypt_controller_cpu_s: round(cpu, 2),
            objects: n,
            values,
            machine_load_start: load_before,
            machine_load_end: load(),
        })
    }

    /// `kubeseal --re-encrypt` of each file in place, through a
    /// [`bitnami::Forwarder`].
    async fn reencrypt(&self, controller: &BitnamiController, files: &[PathBuf]) -> Result<()> {
        let forwarder = bitnami::Forwarder::start(self.client, controller.port).await?;
        let kubeconfig = bitnami::forwarder_kubeconfig(self.cp.dir(), forwarder.port)?;
        // kubeseal is a blocking process per file: off the runtime thread,
        // so the forwarder keeps running.
        let (kubeseal, files) = (self.kubeseal.clone(), files.to_vec());
        tokio::task::spawn_blocking(move || {
            for file in &files {
                bitnami::kubeseal_reencrypt(&kubeseal, &kubeconfig, file)?;
            }
            anyhow::Ok(())
        })
        .await??;
        drop(forwarder);
        Ok(())
    }
}

/// Every object changed: its values are encrypted to the new key. The
/// number of values.
fn check_reencrypted(files: &[PathBuf], objects: &[DynamicObject]) -> Result<usize> {
    for (file, object) in files.iter().zip(objects) {
        let text = std::fs::read_to_string(file)?;
        let new: serde_json::Value = serde_json::from_str(&text)?;
        let (old, new) = (
            &object.data["spec"]["encryptedData"],
            &new["spec"]["encryptedData"],
        );
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if keys(old) != keys(new) || old == new {
            bail!("{}: not re-encrypted", file.display());
        }
    }
    Ok(objects
        .iter()
        .map(|o| {
            o.data["spec"]["encryptedData"]
                .as_object()
                .map_or(0, |m| m.len())
        })
        .sum())
}

/// Seals N Secrets with `kubeseal --cert`, one process per Secret (it
/// reads one object), on every core.
fn seal_all(kubeseal: &Path, cert: &Path, n: usize, values: usize) -> Result<Vec<DynamicObject>> {
    on_every_core(n, |i| {
        let data: serde_json::Map<String, serde_json::Value> = (0..values)
            .map(|k| (format!("key{k}"), json!(value(i, k))))
            .collect();
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name(i), "namespace": NAMESPACE},
            "stringData": data,
        });
        let sealed = bitnami::kubeseal_seal(kubeseal, cert, &serde_json::to_vec(&secret)?)?;
        Ok(serde_json::from_value(sealed)?)
    })
}
