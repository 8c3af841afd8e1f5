//! The Bitnami side of `bench-e2e --compare bitnami`: the same
//! measurements as kseal's run (sync, CPU, peak RSS, API requests by verb,
//! restart), on the same control plane, with the same N, values, applier
//! and client settings; then Bitnami's own key renewal (SIGUSR1, its
//! documented way to force a new key) and `kubeseal --re-encrypt` of the N
//! objects. Each run gets a fresh namespace, deleted afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kseal_testenv::ControlPlane;
use kube::api::DynamicObject;
use kube::{Api, Client};
use serde_json::json;

use crate::bench_e2e::{
    Args, Follower, api_requests, apply_all, cpu_seconds, create_namespace, delete_namespace,
    list_all, load, load1, memory_kib, mib, name, note, requests_between, round, secret_correct,
    value, wait_for,
};
use crate::bitnami::{self, BitnamiController};

const NAMESPACE: &str = "bench-bitnami";

/// Runs Bitnami's controller once per entry of `runs` (its extra flags,
/// space-separated; empty: its defaults). The last run also renews the key
/// and re-encrypts the N objects.
pub async fn runs(
    cp: &ControlPlane,
    client: &Client,
    apply_client: &Client,
    args: &Args,
    runs: &[String],
) -> Result<Vec<serde_json::Value>> {
    let controller_bin = bitnami::controller_binary()?;
    let kubeseal = bitnami::kubeseal_binary()?;
    bitnami::setup(client).await?;
    let mut all = Vec::new();
    for (i, flags) in runs.iter().enumerate() {
        let flags: Vec<String> = flags.split_whitespace().map(str::to_owned).collect();
        let last = i + 1 == runs.len();
        let figures = run(
            cp,
            client,
            apply_client,
            args,
            &controller_bin,
            &kubeseal,
            &flags,
            &format!("sealed-secrets-controller-{i}.log"),
            last,
        )
        .await?;
        all.push(figures);
    }
    Ok(all)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    cp: &ControlPlane,
    client: &Client,
    apply_client: &Client,
    args: &crate::bench_e2e::Args,
    controller_bin: &Path,
    kubeseal: &Path,
    flags: &[String],
    log_name: &str,
    rotate: bool,
) -> Result<serde_json::Value> {
    let n = args.count;
    let values = args.values;
    let timeout = Duration::from_secs(args.timeout);
    create_namespace(client, NAMESPACE).await?;
    let mut controller =
        BitnamiController::new(cp, client, controller_bin, flags, log_name).await?;
    note(&format!(
        "bitnami: {} {}",
        controller_bin.display(),
        if flags.is_empty() {
            "(defaults)".to_owned()
        } else {
            flags.join(" ")
        }
    ));
    controller.process.start()?;
    // RSA-4096 key generation on first start takes a while.
    let started_key = Instant::now();
    while controller.cert().await.is_none() {
        controller.process.check_alive()?;
        if started_key.elapsed() > timeout {
            bail!(
                "no certificate from Bitnami's controller: {}",
                controller.process.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cert = controller.cert().await.context("no certificate")?;
    let cert_file = cp.dir().join("bitnami-cert.pem");
    std::fs::write(&cert_file, &cert)?;

    // Sealed with kubeseal --cert (not timed), both cores.
    let sealing = Instant::now();
    let objects = seal_all(kubeseal, &cert_file, n, values)?;
    note(&format!(
        "bitnami: sealed {n}×{values} values with kubeseal in {:.1}s (not timed)",
        sealing.elapsed().as_secs_f64()
    ));

    let resource = bitnami::api_resource();
    let sealed_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut sealed_follower = Follower::start(sealed_api.clone()).await?;
    let mut secret_follower = Follower::start(secret_api.clone()).await?;
    let requests_before = api_requests(client).await?;
    let load_before = load();
    let pid = controller.pid()?;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let apply_api: Api<DynamicObject> =
        Api::namespaced_with(apply_client.clone(), NAMESPACE, &resource);
    let applied = {
        let apply = apply_all(&apply_api, &objects, args.concurrency);
        let mut apply = std::pin::pin!(apply);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                result = &mut apply => break result?,
                _ = tick.tick() => { memory_kib(pid); }
            }
        }
    };
    note(&format!(
        "bitnami: applied {n} SealedSecrets in {:.2}s",
        applied.as_secs_f64()
    ));
    let mut last_report = Instant::now();
    let elapsed = loop {
        let slice = tokio::time::Instant::now() + Duration::from_millis(100);
        sealed_follower.follow(bitnami::synced, slice).await?;
        let slice = tokio::time::Instant::now() + Duration::from_millis(100);
        secret_follower
            .follow(|s| secret_correct(s, values), slice)
            .await?;
        let ready = sealed_follower.complete(n);
        let correct = secret_follower.complete(n);
        if ready == n && correct == n {
            break started.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            note(&format!(
                "bitnami: {:.0}s: {ready}/{n} Synced, {correct}/{n} Secrets correct; RSS {} MiB; load {}",
                started.elapsed().as_secs_f64(),
                mib(memory_kib(pid).1),
                load()
            ));
        }
        if started.elapsed() > timeout {
            bail!("bitnami: timed out: {ready}/{n} Synced, {correct}/{n} Secrets correct");
        }
        controller.process.check_alive()?;
    };
    let requests_after = api_requests(client).await?;
    let cpu = cpu_seconds(pid) - cpu_before;
    let (peak_kib, _) = memory_kib(pid);
    let load_after = load();
    note(&format!(
        "bitnami: all {n} Synced and correct in {:.2}s; CPU {cpu:.2}s; peak RSS {} MiB; load {load_before} → {load_after}",
        elapsed.as_secs_f64(),
        mib(peak_kib)
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
    let (writes, reads, breakdown) = requests_between(&requests_before, &requests_after);
    note(&format!(
        "bitnami: API requests during the run: {breakdown}"
    ));

    let mut figures = json!({
        "flags": flags,
        "controller_apply_s": round(applied.as_secs_f64(), 3),
        "controller_s": round(elapsed.as_secs_f64(), 3),
        "controller_cpu_s": round(cpu, 2),
        "controller_cpu_ms_per_object": round(cpu * 1000.0 / n as f64, 3),
        "controller_peak_rss_mib": mib(peak_kib),
        "controller_writes": writes.saturating_sub(n as u64),
        "run_reads": reads,
        "run_requests": breakdown,
        "machine_load": load1(),
        "machine_load_start": load_before,
        "machine_load_end": load_after,
    });

    // Restart with N in sync.
    tokio::time::sleep(Duration::from_secs(3)).await;
    controller.process.terminate(Duration::from_secs(10));
    let before = api_requests(client).await?;
    let load_before = load();
    let started = Instant::now();
    controller.process.start()?;
    let pid = controller.pid()?;
    let cpu_start = cpu_seconds(pid);
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
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = api_requests(client).await?;
    let cpu = cpu_seconds(pid) - cpu_start;
    let (writes, reads, breakdown) = requests_between(&before, &after);
    let (peak_kib, _) = memory_kib(pid);
    note(&format!(
        "bitnami restart: /healthz after {:.2}s, {n} unseals after {:.2}s; {writes} writes, {reads} reads: {breakdown}; CPU {cpu:.2}s; peak RSS {} MiB; load {load_before} → {}",
        ready.as_secs_f64(),
        resynced.as_secs_f64(),
        mib(peak_kib),
        load()
    ));
    figures["restart_ready_s"] = json!(round(ready.as_secs_f64(), 3));
    figures["restart_resync_s"] = json!(round(resynced.as_secs_f64(), 3));
    figures["restart_writes"] = json!(writes);
    figures["restart_reads"] = json!(reads);
    figures["restart_requests"] = breakdown;
    figures["restart_cpu_s"] = json!(round(cpu, 2));
    figures["restart_peak_rss_mib"] = json!(mib(peak_kib));

    if rotate {
        figures["rotation"] = rotation(cp, client, &controller, kubeseal, &objects, &cert).await?;
    }
    figures["machine_load_end"] = json!(load());
    controller.process.terminate(Duration::from_secs(10));
    let gone = delete_namespace(client, NAMESPACE, timeout).await?;
    note(&format!(
        "bitnami: namespace deleted in {:.1}s",
        gone.as_secs_f64()
    ));
    Ok(figures)
}

/// Seals N Secrets with `kubeseal --cert`, one process per Secret (it
/// reads one object), on every core.
fn seal_all(kubeseal: &Path, cert: &Path, n: usize, values: usize) -> Result<Vec<DynamicObject>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let indices: Vec<usize> = (0..n).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = indices
            .chunks(n.div_ceil(threads).max(1))
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&i| {
                            let data: serde_json::Map<String, serde_json::Value> = (0..values)
                                .map(|k| (format!("key{k}"), json!(value(i, k))))
                                .collect();
                            let secret = json!({
                                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                "metadata": {"name": name(i), "namespace": NAMESPACE},
                                "stringData": data,
                            });
                            let sealed = bitnami::kubeseal_seal(
                                kubeseal,
                                cert,
                                &serde_json::to_vec(&secret)?,
                            )?;
                            Ok(serde_json::from_value(sealed)?)
                        })
                        .collect::<Result<Vec<DynamicObject>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a sealing thread panicked"))??,
            );
        }
        Ok(all)
    })
}

/// Bitnami's key renewal (SIGUSR1, what `--key-renew-period` does on its
/// schedule) until the new certificate is served, then `kubeseal
/// --re-encrypt` of every object, one process per file as its docs show.
async fn rotation(
    cp: &ControlPlane,
    client: &Client,
    controller: &BitnamiController,
    kubeseal: &Path,
    objects: &[DynamicObject],
    old_cert: &str,
) -> Result<serde_json::Value> {
    let n = objects.len();
    let tree = cp.dir().join("bitnami-repo");
    std::fs::create_dir_all(&tree)?;
    let mut files = Vec::with_capacity(n);
    for object in objects {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let file = tree.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(object)?)?;
        files.push(file);
    }
    let load_before = load();
    let pid = controller.pid()?;
    let started = Instant::now();
    crate::bench_e2e::run_tool(
        std::process::Command::new("kill").args(["-USR1", &pid.to_string()]),
    )?;
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
    let forwarder = bitnami::Forwarder::start(client, controller.port).await?;
    let kubeconfig = bitnami::forwarder_kubeconfig(cp.dir(), forwarder.port)?;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    // kubeseal is a blocking process per file: off the runtime thread, so
    // the forwarder keeps running.
    let reencrypted = {
        let (kubeseal, kubeconfig, files) =
            (kubeseal.to_owned(), kubeconfig.clone(), files.clone());
        tokio::task::spawn_blocking(move || {
            for file in &files {
                bitnami::kubeseal_reencrypt(&kubeseal, &kubeconfig, file)?;
            }
            anyhow::Ok(())
        })
    };
    reencrypted.await??;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    drop(forwarder);
    // Every object changed: its values are encrypted to the new key.
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
    let values: usize = objects
        .iter()
        .map(|o| {
            o.data["spec"]["encryptedData"]
                .as_object()
                .map_or(0, |m| m.len())
        })
        .sum();
    note(&format!(
        "bitnami: kubeseal --re-encrypt of {n} files ({values} values) in {:.2}s ({:.0} values/s); controller CPU {cpu:.2}s; load {load_before} → {}",
        elapsed.as_secs_f64(),
        values as f64 / elapsed.as_secs_f64(),
        load()
    ));
    std::fs::remove_dir_all(&tree)?;
    Ok(json!({
        "rotate_s": round(rotate.as_secs_f64(), 3),
        "reencrypt_s": round(elapsed.as_secs_f64(), 3),
        "reencrypt_values_per_s": round(values as f64 / elapsed.as_secs_f64(), 0),
        "reencrypt_controller_cpu_s": round(cpu, 2),
        "objects": n,
        "values": values,
        "machine_load_start": load_before,
        "machine_load_end": load(),
    }))
}

/// kseal against each Bitnami run: how many times faster (sync, restart),
/// less CPU per object, less peak memory.
pub fn ratios(kseal: &serde_json::Value, bitnami: &[serde_json::Value]) -> serde_json::Value {
    let ratio = |b: &serde_json::Value, key: &str| match (b[key].as_f64(), kseal[key].as_f64()) {
        (Some(b), Some(k)) if k > 0.0 => json!(round(b / k, 1)),
        _ => serde_json::Value::Null,
    };
    bitnami
        .iter()
        .map(|b| {
            json!({
                "flags": b["flags"],
                "sync_faster": ratio(b, "controller_s"),
                "cpu_per_object_less": ratio(b, "controller_cpu_ms_per_object"),
                "restart_faster": ratio(b, "restart_resync_s"),
                "peak_rss_less": ratio(b, "controller_peak_rss_mib"),
            })
        })
        .collect()
}
