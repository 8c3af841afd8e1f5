//! `cargo xtask bench-e2e --count N`: kseal end to end at scale, on a local
//! control plane, against the targets in `/work/shared/product.md`.
//!
//! 1. Baseline: the applying client creates N Secrets (5 values each) with
//!    server-side apply, `--concurrency` requests in flight, with the
//!    controller's client and `--client-qps`/`--client-burst` as its rate
//!    limit (none by default); the time until the last one is accepted.
//! 2. Controller: the release `kseal-controller` runs (default flags except
//!    `--key-renew-period 0`, plus any `--controller-arg`); N SealedSecrets
//!    sealed to its published key (before the clock starts) are applied with
//!    the same client settings; the clock stops when every SealedSecret is
//!    `Ready=True` for its current generation and every Secret holds exactly
//!    the right values (followed with watches, checked again with a list).
//!    Peak resident memory is the controller's `VmHWM`; `VmRSS` is sampled.
//! 3. Restart: SIGTERM, start again; time to `/readyz` and to its first full
//!    resync (`kseal_reconcile_duration_seconds_count` reaching N), and the
//!    API requests it made, from the API server's `apiserver_request_total`.
//!
//! Progress goes to stderr; the last line of stdout is the figures as JSON.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_shared::manifest::{PlainSecret, SealOptions, seal_secret};
use kseal_shared::{
    binding::Scope, sealed_secret::SealedSecret, secret::SecretBytes, x25519::Recipient,
};
use kseal_testenv::ControlPlane;
use kseal_testenv::process::Component;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;

pub(crate) const KEY_NAMESPACE: &str = "kseal-system";
const BASELINE_NAMESPACE: &str = "bench-baseline";
pub(crate) const NAMESPACE: &str = "bench";
const FIELD_MANAGER: &str = "kseal-bench";
/// Bytes per generated value.
const VALUE_LEN: usize = 32;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SealedSecrets to apply (and Secrets to create for the baseline)
    #[arg(long, default_value_t = 1000)]
    pub(crate) count: usize,
    /// Values (keys) per object
    #[arg(long, default_value_t = 5)]
    pub(crate) values: usize,
    /// Requests the applying client keeps in flight (baseline and controller run)
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Client-side request rate limit of the applying client, requests per
    /// second, in both runs (0: none, like a client that leaves throttling to
    /// the API server's priority and fairness). E.g. 50 with burst 300 is
    /// Flux's client setting when the API server does not do that.
    #[arg(long, default_value_t = 0.0, value_name = "QPS")]
    pub(crate) client_qps: f64,
    /// Requests the applying client may send at once above --client-qps
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub(crate) client_burst: u32,
    /// Extra argument for kseal-controller; repeatable, e.g.
    /// `--controller-arg=--kube-qps=0`
    #[arg(
        long = "controller-arg",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub(crate) controller_args: Vec<String>,
    /// Use this kseal-controller binary instead of building the release one
    /// (e.g. a build of an older commit, for before/after figures)
    #[arg(long, value_name = "FILE")]
    pub(crate) controller_bin: Option<PathBuf>,
    /// Skip the baseline
    #[arg(long)]
    pub(crate) no_baseline: bool,
    /// Skip the restart measurement
    #[arg(long)]
    pub(crate) no_restart: bool,
    /// Give up after this many seconds per phase
    #[arg(long, default_value_t = 1800)]
    pub(crate) timeout: u64,
    /// Also run another tool on the same control plane after kseal, with
    /// the same N, values, applier and client settings: `bitnami`
    /// (sealed-secrets v0.36.6, at its defaults and with
    /// `--kubeclient-qps=-1`); adds key rotation and re-encryption of the N
    /// objects for both tools
    #[arg(long, value_name = "TOOL", value_parser = ["bitnami"])]
    pub(crate) compare: Option<String>,
    /// Extra Bitnami controller runs' flags instead of the two default runs
    /// (`""` = its defaults); repeatable, e.g. `--bitnami-run=--kubeclient-qps=-1`
    #[arg(long = "bitnami-run", value_name = "FLAGS", allow_hyphen_values = true)]
    pub(crate) bitnami_runs: Vec<String>,
    /// Rotation under load instead of the sync benchmark: N SealedSecrets in
    /// sync, an applier adding and updating objects continuously while the
    /// key is rotated, all N re-wrapped online in bulk, the old key retired
    #[arg(long, conflicts_with = "compare")]
    pub(crate) rotation_under_load: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.count == 0 || args.values == 0 || args.concurrency == 0 {
        bail!("--count, --values and --concurrency must be at least 1");
    }
    if !args.client_qps.is_finite() || args.client_qps < 0.0 {
        bail!("--client-qps must be 0 (no limit) or a positive number");
    }
    let release = build_release()?;
    // Private copies: a target directory shared with other checkouts may
    // get their builds of the same binaries while this runs (the controller
    // is started again for the restart).
    let private = tempfile_dir("kseal-bench-bins")?;
    for binary in ["kseal-controller", "kseal"] {
        std::fs::copy(release.join(binary), private.path().join(binary))
            .with_context(|| format!("copying {binary}"))?;
    }
    let controller_bin = match &args.controller_bin {
        Some(bin) => bin.clone(),
        None => private.path().join("kseal-controller"),
    };
    let kseal_bin = private.path().join("kseal");
    if !controller_bin.exists() {
        bail!("{} does not exist", controller_bin.display());
    }
    // One thread: processes started from it (with setpriv --pdeathsig) live
    // as long as this thread, and the client's own work stays on one core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = if args.rotation_under_load {
        rt.block_on(crate::rotation_load::bench(
            &args,
            &controller_bin,
            &kseal_bin,
        ))?
    } else {
        rt.block_on(bench(&args, &controller_bin, &kseal_bin))?
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn client_limit(args: &Args) -> String {
    if args.client_qps > 0.0 {
        format!("{} (burst {})", args.client_qps, args.client_burst)
    } else {
        "unlimited".to_owned()
    }
}

pub(crate) fn note(text: &str) {
    eprintln!("bench-e2e: {text}");
}

pub(crate) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn load1() -> f64 {
    load()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(f64::NAN)
}

pub(crate) fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// A directory removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(prefix: &str) -> Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(TempDir(dir))
}

/// `cargo build --release -p kseal-controller -p kseal-cli`; returns the
/// directory the binaries are in (`<target-dir>/release`).
pub(crate) fn build_release() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("locating the workspace")?;
    note("building release binaries (cargo build --release -p kseal-controller -p kseal-cli)");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kseal-controller",
            "-p",
            "kseal-cli",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let metadata = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let target = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(Path::new(target).join("release"))
}

/// The value of key `k` of object `i`: `VALUE_LEN` printable bytes.
pub(crate) fn value(i: usize, k: usize) -> String {
    let mut value = format!("v{i:06}-{k}-");
    while value.len() < VALUE_LEN {
        value.push(char::from(b'a' + ((i + k + value.len()) % 26) as u8));
    }
    value
}

pub(crate) fn name(i: usize) -> String {
    format!("s{i:06}")
}

fn index_of(name: &str) -> Option<usize> {
    name.strip_prefix('s')?.parse().ok()
}

pub(crate) async fn wait_for<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > timeout {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

pub(crate) async fn setup(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &kseal_shared::sealed_secret::custom_resource_definition(),
    )
    .await?;
    for name in [KEY_NAMESPACE, BASELINE_NAMESPACE, NAMESPACE] {
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.to_owned());
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
    }
    wait_for("the CRD to be established", Duration::from_secs(60), || {
        kseal_testenv::crd_established(client, "sealedsecrets.kseal.dev")
    })
    .await?;
    Ok(())
}

/// Applies every object with `concurrency` requests in flight; returns the
/// time until the last is accepted.
pub(crate) async fn apply_all<K>(
    api: &Api<K>,
    objects: &[K],
    concurrency: usize,
) -> Result<Duration>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let started = Instant::now();
    futures::stream::iter(objects.iter().map(Ok))
        .try_for_each_concurrent(concurrency, |object| {
            let params = &params;
            async move {
                let name = object.meta().name.as_deref().unwrap_or_default();
                api.patch(name, params, &Patch::Apply(object))
                    .await
                    .map(drop)
                    .with_context(|| format!("applying {name}"))
            }
        })
        .await?;
    Ok(started.elapsed())
}

fn baseline_secrets(count: usize, values: usize) -> Vec<Secret> {
    (0..count)
        .map(|i| {
            let mut secret = Secret::default();
            secret.metadata.name = Some(name(i));
            secret.metadata.namespace = Some(BASELINE_NAMESPACE.to_owned());
            secret.type_ = Some("Opaque".to_owned());
            secret.data = Some(
                (0..values)
                    .map(|k| (format!("key{k}"), ByteString(value(i, k).into_bytes())))
                    .collect(),
            );
            secret
        })
        .collect()
}

/// Seals N objects on every core (before any clock starts).
pub(crate) fn sealed_secrets(
    count: usize,
    values: usize,
    recipients: &[Recipient],
) -> Result<Vec<SealedSecret>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = count.div_ceil(threads);
    let indices: Vec<usize> = (0..count).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = indices
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&i| {
                            let mut secret = PlainSecret {
                                name: name(i),
                                namespace: NAMESPACE.to_owned(),
                                ..PlainSecret::default()
                            };
                            for k in 0..values {
                                secret
                                    .insert(
                                        &format!("key{k}"),
                                        SecretBytes::from(value(i, k).as_bytes()),
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
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
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

/// Whether a Secret holds exactly the values of object `i`.
pub(crate) fn secret_correct(secret: &Secret, values: usize) -> bool {
    let Some(i) = secret.metadata.name.as_deref().and_then(index_of) else {
        return false;
    };
    let Some(data) = &secret.data else {
        return false;
    };
    data.len() == values
        && (0..values).all(|k| {
            data.get(&format!("key{k}"))
                .is_some_and(|v| v.0 == value(i, k).as_bytes())
        })
}

pub(crate) fn sealed_ready(sealed: &SealedSecret) -> bool {
    sealed.status.as_ref().is_some_and(|status| {
        status.observed_generation.is_some()
            && status.observed_generation == sealed.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Follows one kind in a namespace with one long watch (re-opened from the
/// last resourceVersion when the server ends it); keeps, per object name,
/// whether `done` holds for its latest version.
pub(crate) struct Follower<K> {
    api: Api<K>,
    version: String,
    stream: Option<futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>>,
    pub(crate) done: HashMap<String, bool>,
}

impl<K> Follower<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    pub(crate) async fn start(api: Api<K>) -> Result<Self> {
        let list = api.list_metadata(&ListParams::default().limit(1)).await?;
        let version = list.metadata.resource_version.unwrap_or_default();
        Ok(Self {
            api,
            version,
            stream: None,
            done: HashMap::new(),
        })
    }

    pub(crate) fn complete(&self, count: usize) -> usize {
        self.done.values().filter(|done| **done).count().min(count)
    }

    /// Reads the events that arrive until `deadline`.
    pub(crate) async fn follow(
        &mut self,
        done: impl Fn(&K) -> bool,
        deadline: tokio::time::Instant,
    ) -> Result<()> {
        loop {
            if self.stream.is_none() {
                let params = WatchParams::default().timeout(290);
                let api = self.api.clone();
                let version = self.version.clone();
                let stream = api.watch(&params, &version).await?.boxed();
                self.stream = Some(stream);
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let event = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => return Ok(()),
                Ok(None) => {
                    self.stream = None;
                    continue;
                }
                Ok(Some(event)) => event?,
            };
            match event {
                WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                    self.remember(&object);
                    let name = object.meta().name.clone().unwrap_or_default();
                    self.done.insert(name, done(&object));
                }
                WatchEvent::Deleted(object) => {
                    self.remember(&object);
                    self.done
                        .remove(object.meta().name.as_deref().unwrap_or_default());
                }
                WatchEvent::Bookmark(bookmark) => {
                    self.version = bookmark.metadata.resource_version;
                }
                // The watch started before a long apply and fell behind the
                // API server's compaction (every 5 minutes): start again
                // from a full list.
                WatchEvent::Error(error) if error.code == 410 => {
                    self.relist(&done).await?;
                    self.stream = None;
                }
                WatchEvent::Error(error) => bail!("watch error: {error:?}"),
            }
        }
    }

    /// Replaces what is known with a full list, and watches on from it.
    async fn relist(&mut self, done: &impl Fn(&K) -> bool) -> Result<()> {
        let mut params = ListParams::default().limit(500);
        let mut fresh = HashMap::new();
        loop {
            let page = self.api.list(&params).await?;
            for object in &page.items {
                let name = object.meta().name.clone().unwrap_or_default();
                fresh.insert(name, done(object));
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => {
                    self.version = page.metadata.resource_version.unwrap_or_default();
                    self.done = fresh;
                    return Ok(());
                }
            }
        }
    }

    fn remember(&mut self, object: &K) {
        if let Some(version) = &object.meta().resource_version {
            self.version.clone_from(version);
        }
    }
}

/// The controller process and where to reach it.
pub(crate) struct Controller {
    pub(crate) process: Component,
    pub(crate) port: u16,
}

impl Controller {
    pub(crate) fn pid(&self) -> Result<u32> {
        self.process.pid().context("the controller is not running")
    }

    pub(crate) async fn get(&self, path: &str) -> Option<(u16, String)> {
        let host = format!("127.0.0.1:{}", self.port);
        kseal_testenv::http::request(&host, "GET", path, None, &[]).await
    }

    /// Counter `name` from the controller's /metrics.
    pub(crate) async fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) = self.get("/metrics").await?;
        if status != 200 {
            return None;
        }
        body.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = rest.strip_prefix(' ').or_else(|| {
                rest.strip_prefix('{')
                    .and_then(|r| r.split_once("} ").map(|(_, v)| v))
            })?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }
}

/// `(VmHWM, VmRSS)` of a process, in KiB.
pub(crate) fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The controller's memory as the objects it holds grow: `VmRSS` and
/// `VmHWM` the first time its `kseal_sealed_secrets` count reaches each
/// checkpoint (1k, 2k, 5k, 10k, 15k, 20k, … up to N), sampled during the
/// apply.
struct MemoryCurve {
    checkpoints: Vec<usize>,
    points: Vec<serde_json::Value>,
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
        let Some((200, body)) = controller.get("/metrics").await else {
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
        self.points.push(json!({
            "objects": held as u64,
            "rss_mib": mib(rss),
            "peak_rss_mib": mib(hwm),
            "load": load1(),
        }));
    }

    fn figures(&self) -> serde_json::Value {
        serde_json::Value::Array(self.points.clone())
    }
}

pub(crate) fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

/// `apiserver_request_total`, summed by (verb, resource, subresource, code),
/// for the resources kseal touches. Failed requests (e.g. a create answered
/// 409) count too: they cost the API server as much.
pub(crate) type RequestCounts = BTreeMap<(String, String, String, String), f64>;

/// Leases are left out: kube-controller-manager renews its own every 2 s.
const RESOURCES: [&str; 4] = ["secrets", "sealedsecrets", "events", "configmaps"];
const WRITE_VERBS: [&str; 8] = [
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "CREATE",
    "UPDATE",
    "APPLY",
    "DELETECOLLECTION",
];

pub(crate) async fn api_requests(client: &Client) -> Result<RequestCounts> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut counts = RequestCounts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, number)) = rest.split_once("} ") else {
            continue;
        };
        let labels: HashMap<&str, &str> = labels
            .split("\",")
            .filter_map(|pair| {
                let (key, value) = pair.split_once("=\"")?;
                Some((key, value.trim_end_matches('"')))
            })
            .collect();
        let resource = labels.get("resource").copied().unwrap_or_default();
        if !RESOURCES.contains(&resource) {
            continue;
        }
        let Ok(number) = number.trim().parse::<f64>() else {
            continue;
        };
        let key = (
            labels.get("verb").copied().unwrap_or_default().to_owned(),
            resource.to_owned(),
            labels
                .get("subresource")
                .copied()
                .unwrap_or_default()
                .to_owned(),
            labels.get("code").copied().unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_default() += number;
    }
    Ok(counts)
}

/// Requests between two scrapes: (writes, reads, breakdown).
pub(crate) fn requests_between(
    before: &RequestCounts,
    after: &RequestCounts,
) -> (u64, u64, serde_json::Value) {
    let mut writes = 0.0;
    let mut reads = 0.0;
    let mut breakdown = serde_json::Map::new();
    for (key, count) in after {
        let delta = count - before.get(key).copied().unwrap_or_default();
        if delta <= 0.0 {
            continue;
        }
        let (verb, resource, subresource, code) = key;
        if WRITE_VERBS.contains(&verb.as_str()) {
            writes += delta;
        } else {
            reads += delta;
        }
        let mut label = if subresource.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{subresource}")
        };
        // Successful requests by verb and resource; others with their code.
        if !code.starts_with('2') {
            label = format!("{label} {code}");
        }
        let total = breakdown.entry(label).or_insert(json!(0));
        *total = json!(total.as_u64().unwrap_or(0) + delta as u64);
    }
    (
        writes as u64,
        reads as u64,
        serde_json::Value::Object(breakdown),
    )
}

/// CPU time (user + system) a process has used, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th; in clock ticks (USER_HZ, 100).
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A TCP port reserved for a process this run starts (see
/// `kseal_testenv::ports`); keep it while the process may run.
pub(crate) fn free_port() -> Result<kseal_testenv::ports::Port> {
    kseal_testenv::ports::reserve()
}

/// Deletes a namespace and waits until it is gone.
pub(crate) async fn delete_namespace(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<Duration> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(name, &Default::default()).await?;
    wait_for(
        &format!("namespace {name} to be deleted"),
        timeout,
        || async { namespaces.get_opt(name).await.is_ok_and(|ns| ns.is_none()) },
    )
    .await
}

/// Creates a namespace.
pub(crate) async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_owned());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

/// The applying client: the controller's own client implementation, with
/// the requested rate limit (none by default).
pub(crate) async fn applying_client(cp: &ControlPlane, args: &Args) -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.admin_kubeconfig())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kseal_controller::client::build(
        config,
        args.client_qps,
        args.client_burst,
    )?)
}

async fn bench(args: &Args, controller_bin: &Path, kseal_bin: &Path) -> Result<serde_json::Value> {
    let n = args.count;
    let timeout = Duration::from_secs(args.timeout);
    let load_start = load();
    note(&format!(
        "N={n}, {} values each, client concurrency {}, client QPS {}; load {load_start}",
        args.values,
        args.concurrency,
        client_limit(args)
    ));
    if cfg!(debug_assertions) {
        note(
            "xtask is a debug build: the applying client is the same in both runs, but `cargo run --release -p xtask -- bench-e2e` keeps its CPU use lower",
        );
    }
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    note(&format!(
        "control plane up in {:.1}s ({})",
        cp.start_time().as_secs_f64(),
        cp.dir().display()
    ));
    setup(&client).await?;
    // The applying client: the controller's own client implementation, with
    // the requested rate limit (none by default).
    let apply_client = applying_client(&cp, args).await?;

    // Baseline: the same client settings creating the same N Secrets directly.
    let baseline_s = if args.no_baseline {
        None
    } else {
        let secrets = baseline_secrets(n, args.values);
        let api: Api<Secret> = Api::namespaced(apply_client.clone(), BASELINE_NAMESPACE);
        let load_before = load();
        let elapsed = apply_all(&api, &secrets, args.concurrency).await?;
        note(&format!(
            "baseline: {n} Secrets created in {:.2}s ({:.0}/s); load {load_before} → {}",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            load()
        ));
        // Make room for the controller run: the namespace controller deletes
        // them in the background, so wait until it is gone.
        Api::<Namespace>::all(client.clone())
            .delete(BASELINE_NAMESPACE, &Default::default())
            .await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let gone = wait_for("the baseline namespace to be deleted", timeout, || async {
            namespaces
                .get_opt(BASELINE_NAMESPACE)
                .await
                .is_ok_and(|ns| ns.is_none())
        })
        .await?;
        note(&format!(
            "baseline namespace deleted in {:.1}s",
            gone.as_secs_f64()
        ));
        Some(elapsed.as_secs_f64())
    };

    // The controller: release build, default flags except key renewal.
    let reserved_port = free_port()?;
    let port = reserved_port.get();
    let kubeconfig = cp.admin_kubeconfig().display().to_string();
    let mut controller_args = crate::demo::local_controller_args(&kubeconfig, port);
    controller_args.extend(args.controller_args.iter().map(OsString::from));
    note(&format!(
        "controller: {} {}",
        controller_bin.display(),
        args.controller_args.join(" ")
    ));
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
    wait_for("controller /readyz", Duration::from_secs(120), || async {
        controller
            .get("/readyz")
            .await
            .is_some_and(|(s, _)| s == 200)
    })
    .await?;

    let sealing = Instant::now();
    let objects = sealed_secrets(n, args.values, &recipients)?;
    note(&format!(
        "sealed {n}×{} values in {:.1}s (not timed)",
        args.values,
        sealing.elapsed().as_secs_f64()
    ));

    let sealed_api: Api<SealedSecret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut sealed_follower = Follower::start(sealed_api.clone()).await?;
    let mut secret_follower = Follower::start(secret_api.clone()).await?;
    let requests_before = api_requests(&client).await?;
    let load_before = load();
    let cpu_before = cpu_seconds(controller.pid()?);

    let mut curve = MemoryCurve::new(n);
    let started = Instant::now();
    let (applied, mut peak_rss_sampled) = {
        let pid = controller.pid()?;
        let apply_api: Api<SealedSecret> = Api::namespaced(apply_client.clone(), NAMESPACE);
        let apply = apply_all(&apply_api, &objects, args.concurrency);
        let mut apply = std::pin::pin!(apply);
        let mut peak = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut ticks = 0u64;
        let applied = loop {
            tokio::select! {
                result = &mut apply => break result?,
                _ = tick.tick() => {
                    peak = peak.max(memory_kib(pid).1);
                    // Every 2 s: memory against the objects the controller holds.
                    ticks += 1;
                    if ticks.is_multiple_of(10) {
                        curve.sample(&controller, pid).await;
                    }
                }
            }
        };
        (applied, peak)
    };
    let applied_at = k8s_openapi::jiff::Timestamp::now();
    note(&format!(
        "applied {n} SealedSecrets in {:.2}s",
        applied.as_secs_f64()
    ));
    let values = args.values;
    let pid = controller.pid()?;
    let mut last_report = Instant::now();
    let controller_elapsed = loop {
        // Alternate between the two watches; each gets a short slice.
        let slice = tokio::time::Instant::now() + Duration::from_millis(100);
        sealed_follower.follow(sealed_ready, slice).await?;
        let slice = tokio::time::Instant::now() + Duration::from_millis(100);
        secret_follower
            .follow(|s| secret_correct(s, values), slice)
            .await?;
        peak_rss_sampled = peak_rss_sampled.max(memory_kib(pid).1);
        let ready = sealed_follower.complete(n);
        let correct = secret_follower.complete(n);
        if ready == n && correct == n {
            break started.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            note(&format!(
                "{:.0}s: {ready}/{n} Ready, {correct}/{n} Secrets correct; RSS {} MiB; load {}",
                started.elapsed().as_secs_f64(),
                mib(memory_kib(pid).1),
                load()
            ));
        }
        if started.elapsed() > timeout {
            bail!("timed out: {ready}/{n} Ready, {correct}/{n} Secrets correct");
        }
        controller.process.check_alive()?;
    };
    let requests_after = api_requests(&client).await?;
    let run_cpu = cpu_seconds(pid) - cpu_before;
    let (peak_kib, synced_kib) = memory_kib(pid);
    let load_after = load();
    note(&format!(
        "controller: all {n} Ready and correct in {:.2}s; peak RSS {} MiB (sampled {} MiB); load {load_before} → {load_after}",
        controller_elapsed.as_secs_f64(),
        mib(peak_kib),
        mib(peak_rss_sampled)
    ));

    // Check again with a full list, independent of the watches.
    let listed_secrets = list_all(&secret_api).await?;
    let listed_sealed = list_all(&sealed_api).await?;
    // When the controller itself finished, by the API server's clock (whole
    // seconds): the last Ready transition and the last Secret created. The
    // watches above can lag behind that when they must relist.
    let last_ready = listed_sealed
        .iter()
        .filter_map(|sealed| {
            let status = sealed.status.as_ref()?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            ready
                .last_transition_time
                .parse::<k8s_openapi::jiff::Timestamp>()
                .ok()
        })
        .max();
    let last_secret = listed_secrets
        .iter()
        .filter_map(|secret| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .max();
    let done_after_apply_s = last_ready.max(last_secret).map(|last| {
        (last - applied_at)
            .total(k8s_openapi::jiff::Unit::Second)
            .unwrap_or(f64::NAN)
    });
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

    // Requests during the run: everything on these resources minus the
    // applier's N applies (the only other writer).
    let (run_writes, run_reads, run_breakdown) =
        requests_between(&requests_before, &requests_after);
    let controller_writes = run_writes.saturating_sub(n as u64);
    note(&format!("API requests during the run: {run_breakdown}"));

    let mut figures = json!({
        "count": n,
        "values_per_object": values,
        "client_concurrency": args.concurrency,
        "client_qps": args.client_qps,
        "client_burst": (args.client_qps > 0.0).then_some(args.client_burst),
        "controller_args": args.controller_args,
        "baseline_s": baseline_s.map(|s| round(s, 3)),
        "controller_apply_s": round(applied.as_secs_f64(), 3),
        "controller_s": round(controller_elapsed.as_secs_f64(), 3),
        "ratio": baseline_s.map(|b| round(controller_elapsed.as_secs_f64() / b, 3)),
        "controller_peak_rss_mib": mib(peak_kib),
        "controller_sampled_rss_mib": mib(peak_rss_sampled),
        "controller_rss_synced_mib": mib(synced_kib),
        "controller_rss_curve": curve.figures(),
        "controller_done_after_apply_s": done_after_apply_s,
        "controller_writes": controller_writes,
        "controller_cpu_s": round(run_cpu, 2),
        "controller_cpu_ms_per_object": round(run_cpu * 1000.0 / n as f64, 3),
        "controller_qps": round(controller_writes as f64 / controller_elapsed.as_secs_f64(), 1),
        "run_requests": run_breakdown,
        "run_reads": run_reads,
        "machine_load": load1(),
        "machine_load_start": load_start,
        "machine_load_end": load_after,
    });

    if !args.no_restart {
        let restart = restart(&client, &mut controller, n, timeout).await?;
        if let (Some(target), Some(source)) = (figures.as_object_mut(), restart.as_object()) {
            target.extend(source.clone());
        }
    }
    if args.compare.is_some() {
        let rotation = kseal_rotation(
            &client,
            &controller,
            kseal_bin,
            &objects,
            cp.dir(),
            cp.admin_kubeconfig(),
        )
        .await?;
        figures["rotation"] = rotation;
    }
    figures["machine_load_end"] = json!(load());
    controller.process.terminate(Duration::from_secs(10));
    if args.compare.is_some() {
        drop(objects);
        // Bitnami's controller watches every Secret in the cluster: kseal's
        // N Secrets go first, so both tools see the same cluster.
        let gone = delete_namespace(&client, NAMESPACE, timeout).await?;
        note(&format!(
            "kseal's namespace deleted in {:.1}s",
            gone.as_secs_f64()
        ));
        let runs = if args.bitnami_runs.is_empty() {
            vec![String::new(), "--kubeclient-qps=-1".to_owned()]
        } else {
            args.bitnami_runs.clone()
        };
        let compared = crate::bench_bitnami::runs(&cp, &client, &apply_client, args, &runs).await?;
        figures["ratios"] = crate::bench_bitnami::ratios(&figures, &compared);
        figures["bitnami"] = json!(compared);
        figures["machine_load_end"] = json!(load());
    }
    drop(cp);
    Ok(figures)
}

pub(crate) async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(all),
        }
    }
}

/// Stops the controller with everything in sync, starts it again, and
/// measures how long until it is ready and has resynced, and what it wrote.
async fn restart(
    client: &Client,
    controller: &mut Controller,
    n: usize,
    timeout: Duration,
) -> Result<serde_json::Value> {
    // Let trailing writes (events, status) land before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    controller.process.terminate(Duration::from_secs(10));
    let before = api_requests(client).await?;
    let load_before = load();
    let started = Instant::now();
    controller.process.start()?;
    let pid = controller.pid()?;
    let cpu_start = cpu_seconds(pid);
    wait_for("controller /readyz after restart", timeout, || async {
        controller
            .get("/readyz")
            .await
            .is_some_and(|(s, _)| s == 200)
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
    // Anything the resync triggers (writes, then their watch events) lands
    // within a few seconds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = api_requests(client).await?;
    let cpu = cpu_seconds(pid) - cpu_start;
    let (writes, reads, breakdown) = requests_between(&before, &after);
    let (peak_kib, _) = memory_kib(pid);
    let secret_gets = breakdown
        .get("GET secrets")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    note(&format!(
        "restart: {writes} writes, {reads} reads: {breakdown}; peak RSS {} MiB; load {load_before} → {}",
        mib(peak_kib),
        load()
    ));
    Ok(json!({
        "restart_ready_s": round(ready.as_secs_f64(), 3),
        "restart_resync_s": resynced.ok().map(|d| round(d.as_secs_f64(), 3)),
        "restart_writes": writes,
        "restart_reads": reads,
        "restart_requests": breakdown,
        "restart_peak_rss_mib": mib(peak_kib),
        "restart_cpu_s": round(cpu, 2),
        "restart_secret_gets": secret_gets,
        "restart_reads_per_object": round(reads as f64 / n as f64, 4),
        "restart_writes_per_object": round(writes as f64 / n as f64, 4),
    }))
}

/// kseal's rotation, then re-wrapping the N objects as files (one per
/// file, as in a GitOps repository): online through the controller
/// (`kseal rewrap --online`, batched) and offline with the backed-up
/// identities (`kseal rewrap -i … -R …`).
async fn kseal_rotation(
    client: &Client,
    controller: &Controller,
    kseal: &Path,
    objects: &[SealedSecret],
    dir: &Path,
    kubeconfig: &Path,
) -> Result<serde_json::Value> {
    let n = objects.len();
    let values: usize = objects.iter().map(|o| o.spec.encrypted_data.len()).sum();
    let tree = dir.join("kseal-repo");
    std::fs::create_dir_all(&tree)?;
    for object in objects {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        std::fs::write(
            tree.join(format!("{name}.json")),
            serde_json::to_vec(object)?,
        )?;
    }
    let old =
        kseal_testenv::published_recipients(client, KEY_NAMESPACE, Duration::from_secs(10)).await?;
    let load_before = load();
    let started = Instant::now();
    run_tool(
        Command::new(kseal)
            .args(["keys", "rotate", "--kubeconfig"])
            .arg(kubeconfig),
    )?;
    wait_for(
        "the new key to be published",
        Duration::from_secs(60),
        || async {
            kseal_testenv::published_recipients(client, KEY_NAMESPACE, Duration::from_secs(10))
                .await
                .is_ok_and(|new| {
                    new.first().map(Recipient::key_id) != old.first().map(Recipient::key_id)
                })
        },
    )
    .await?;
    let rotate = started.elapsed();
    let new =
        kseal_testenv::published_recipients(client, KEY_NAMESPACE, Duration::from_secs(10)).await?;
    note(&format!(
        "kseal: key rotated and published in {:.2}s",
        rotate.as_secs_f64()
    ));

    // Online: the controller re-wraps to its current key.
    let online_tree = dir.join("kseal-repo-online");
    copy_tree(&tree, &online_tree)?;
    let url = format!("http://127.0.0.1:{}", controller.port);
    let started = Instant::now();
    let cpu_before = cpu_seconds(controller.pid()?);
    run_tool(
        Command::new(kseal)
            .args(["rewrap", "--online", "--controller-url", &url, "--in-place"])
            .arg(&online_tree),
    )?;
    let online = started.elapsed();
    let online_cpu = cpu_seconds(controller.pid()?) - cpu_before;
    let new_id = new
        .first()
        .map(Recipient::key_id)
        .context("no published key")?;
    check_tree(&online_tree, n, &new_id.to_string())?;
    note(&format!(
        "kseal rewrap --online: {n} files, {values} values in {:.2}s ({:.0} values/s); controller CPU {online_cpu:.2}s",
        online.as_secs_f64(),
        values as f64 / online.as_secs_f64()
    ));

    // Offline: the identities as a backup would hold them.
    let keys: Api<Secret> = Api::namespaced(client.clone(), KEY_NAMESPACE);
    let mut identities = String::new();
    for secret in keys
        .list(&ListParams::default().labels(kseal_shared::contract::SEALING_KEY_LABEL))
        .await?
    {
        if let Some(identity) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(kseal_shared::contract::IDENTITY_DATA_KEY))
        {
            identities.push_str(&String::from_utf8_lossy(&identity.0));
            identities.push('\n');
        }
    }
    let identity_file = dir.join("kseal-identities.txt");
    std::fs::write(&identity_file, identities)?;
    let recipients_file = dir.join("kseal-new.pub");
    std::fs::write(&recipients_file, format!("{}\n", new[0]))?;
    let offline_tree = dir.join("kseal-repo-offline");
    copy_tree(&tree, &offline_tree)?;
    let started = Instant::now();
    run_tool(
        Command::new(kseal)
            .arg("rewrap")
            .arg("-i")
            .arg(&identity_file)
            .arg("-R")
            .arg(&recipients_file)
            .arg("--in-place")
            .arg(&offline_tree),
    )?;
    let offline = started.elapsed();
    std::fs::remove_file(&identity_file)?;
    check_tree(&offline_tree, n, &new_id.to_string())?;
    note(&format!(
        "kseal rewrap offline: {values} values in {:.2}s ({:.0} values/s); load {load_before} → {}",
        offline.as_secs_f64(),
        values as f64 / offline.as_secs_f64(),
        load()
    ));
    for t in [&tree, &online_tree, &offline_tree] {
        std::fs::remove_dir_all(t)?;
    }
    Ok(json!({
        "rotate_s": round(rotate.as_secs_f64(), 3),
        "rewrap_online_s": round(online.as_secs_f64(), 3),
        "rewrap_online_values_per_s": round(values as f64 / online.as_secs_f64(), 0),
        "rewrap_online_controller_cpu_s": round(online_cpu, 2),
        "rewrap_offline_s": round(offline.as_secs_f64(), 3),
        "rewrap_offline_values_per_s": round(values as f64 / offline.as_secs_f64(), 0),
        "objects": n,
        "values": values,
        "machine_load_start": load_before,
        "machine_load_end": load(),
    }))
}

/// Runs a command; fails with its stderr if it fails.
pub(crate) fn run_tool(command: &mut Command) -> Result<std::process::Output> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Every file of the tree holds a SealedSecret whose values name only `key_id`.
fn check_tree(tree: &Path, n: usize, key_id: &str) -> Result<()> {
    let mut count = 0;
    for entry in std::fs::read_dir(tree)? {
        let text = std::fs::read_to_string(entry?.path())?;
        let object: SealedSecret = serde_json::from_str(&text)
            .or_else(|_| serde_saphyr::from_str(&text).map_err(anyhow::Error::from))?;
        for value in object.spec.encrypted_data.values() {
            let parsed = kseal_shared::envelope::SealedValue::parse(value)?;
            let ids: Vec<String> = parsed.key_ids().iter().map(ToString::to_string).collect();
            if ids != [key_id] {
                bail!("a value is sealed to {ids:?}, not {key_id}");
            }
        }
        count += 1;
    }
    if count != n {
        bail!("{count} files, expected {n}");
    }
    Ok(())
}
