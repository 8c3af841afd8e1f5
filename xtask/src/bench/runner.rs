//! `cargo xtask bench-e2e`: its flags, and the scenarios it composes on
//! one control plane: [`e2e`] (baseline, sync, restart), then with
//! `--compare bitnami` [`rotation`](super::rotation) and [`bitnami_compare`]; or, with
//! `--rotation-under-load`, [`rotation_load`] alone.
//!
//! Progress goes to stderr; the last line of stdout is the figures as JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use super::bitnami_compare::{self, BitnamiRun};
use super::e2e::{self, BASELINE_NAMESPACE, RestartFigures, SyncFigures};
use super::harness::cluster::{
    self, KEY_NAMESPACE, NAMESPACE, applying_client, delete_namespace, kseal_controller,
    published_and_ready, setup,
};
use super::harness::figures::Ratios;
use super::harness::{Binaries, Settings, load, note, print_figures, runtime};
use super::rotation::{Rotation, RotationFigures};
use super::rotation_load;

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

impl Args {
    fn settings(&self) -> Settings {
        Settings {
            count: self.count,
            values: self.values,
            concurrency: self.concurrency,
            client_qps: self.client_qps,
            client_burst: self.client_burst,
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

/// What `bench-e2e` prints: the sync's figures, the restart's, and with
/// `--compare` kseal's rotation, the ratios to the other tool's runs and
/// those runs.
#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    #[serde(flatten)]
    pub sync: SyncFigures,
    #[serde(flatten)]
    pub restart: Option<RestartFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratios: Option<Vec<Ratios>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitnami: Option<Vec<BitnamiRun>>,
}

pub fn run(args: Args) -> Result<()> {
    if args.count == 0 || args.values == 0 || args.concurrency == 0 {
        bail!("--count, --values and --concurrency must be at least 1");
    }
    if !args.client_qps.is_finite() || args.client_qps < 0.0 {
        bail!("--client-qps must be 0 (no limit) or a positive number");
    }
    let bins = Binaries::build(args.controller_bin.as_deref())?;
    let rt = runtime()?;
    let settings = args.settings();
    if args.rotation_under_load {
        let figures = rt.block_on(rotation_load::bench(
            &settings,
            &args.controller_args,
            &bins.controller,
            &bins.kseal,
        ))?;
        print_figures(&figures)
    } else {
        print_figures(&rt.block_on(sync_bench(&args, &settings, &bins))?)
    }
}

/// The sync benchmark: baseline, kseal's sync and restart, and with
/// `--compare` both tools' rotations and the other tool's runs.
async fn sync_bench(args: &Args, settings: &Settings, bins: &Binaries) -> Result<E2eReport> {
    let n = settings.count;
    let load_start = load();
    note(&format!(
        "N={n}, {} values each, client concurrency {}, client QPS {}; load {load_start}",
        settings.values,
        settings.concurrency,
        settings.client_limit()
    ));
    if cfg!(debug_assertions) {
        note(
            "xtask is a debug build: the applying client is the same in both runs, but `cargo run --release -p xtask -- bench-e2e` keeps its CPU use lower",
        );
    }
    let (cp, client) = cluster::start().await?;
    setup(&client, &[KEY_NAMESPACE, BASELINE_NAMESPACE, NAMESPACE]).await?;
    let apply_client = applying_client(&cp, settings).await?;
    let baseline_s = if args.no_baseline {
        None
    } else {
        Some(e2e::baseline(&client, &apply_client, settings).await?)
    };

    // The controller: release build, default flags except key renewal.
    note(&format!(
        "controller: {} {}",
        bins.controller.display(),
        args.controller_args.join(" ")
    ));
    let mut controller = kseal_controller(&cp, &bins.controller, &args.controller_args)?;
    let recipients = published_and_ready(&client, &controller).await?;
    let (sync, objects) = e2e::sync(
        &client,
        &apply_client,
        &mut controller,
        &recipients,
        settings,
    )
    .await?;
    let mut report = E2eReport {
        sync: sync.in_run(baseline_s, &args.controller_args, load_start),
        restart: None,
        rotation: None,
        ratios: None,
        bitnami: None,
    };
    if !args.no_restart {
        report.restart = Some(e2e::restart(&client, &mut controller, n, settings.timeout).await?);
    }
    if args.compare.is_some() {
        let rotation = Rotation {
            client: &client,
            controller: &controller,
            kseal: &bins.kseal,
            dir: cp.dir(),
            kubeconfig: cp.admin_kubeconfig(),
        };
        report.rotation = Some(rotation.run(&objects).await?);
    }
    report.sync.machine_load_end = load();
    controller.process.terminate(Duration::from_secs(10));
    if args.compare.is_some() {
        drop(objects);
        // Bitnami's controller watches every Secret in the cluster: kseal's
        // N Secrets go first, so both tools see the same cluster.
        let gone = delete_namespace(&client, NAMESPACE, settings.timeout).await?;
        note(&format!(
            "kseal's namespace deleted in {:.1}s",
            gone.as_secs_f64()
        ));
        let runs = if args.bitnami_runs.is_empty() {
            vec![String::new(), "--kubeclient-qps=-1".to_owned()]
        } else {
            args.bitnami_runs.clone()
        };
        let compared = bitnami_compare::runs(&cp, &client, &apply_client, settings, &runs).await?;
        let kseal = e2e::headline(&report.sync, report.restart.as_ref());
        report.ratios = Some(
            compared
                .iter()
                .map(|b| Ratios::of(&kseal, &b.headline(), &b.flags))
                .collect(),
        );
        report.bitnami = Some(compared);
        report.sync.machine_load_end = load();
    }
    drop(cp);
    Ok(report)
}
