//! Scenario: `cargo xtask bench-hostile`: the controller's memory when whoever may
//! write Secrets or SealedSecrets makes them as large as the API server
//! allows (docs/security.md, "Security round three"). Peak resident memory
//! (`VmHWM`) of a freshly started controller, once it has listed and
//! reconciled everything, as the hostile objects grow:
//!
//! 1. foreign Secrets labelled `kseal.dev/owned=true`, ~1 MiB of labels each
//!    (they reach the controller through its watch of owned Secrets);
//! 2. SealedSecrets whose template carries ~1 MiB of annotations, sealed to
//!    a key the cluster lacks (never in sync, so never dropped as in sync);
//! 3. SealedSecrets in sync whose templates carry 60 KiB of annotations
//!    (within kseal's limits).
//!
//! Prints a table on stderr and the figures as JSON on the last line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::binding::Scope;
use kseal_shared::manifest::{PlainSecret, SealOptions, seal_secret};
use kseal_shared::sealed_secret::{SealedSecret, SecretTemplate, TemplateMetadata};
use kseal_shared::secret::SecretBytes;
use kseal_shared::x25519::{Identity, Recipient};
use kseal_testenv::ControlPlane;
use kseal_testenv::controller::Controller;
use kseal_testenv::poll::wait_for;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;

use super::harness::cluster::{KEY_NAMESPACE, NAMESPACE, kseal_controller, setup};
use super::harness::process::memory_kib;
use super::harness::{build_release, mib, note, print_figures, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// Numbers of hostile objects to measure at, per kind
    #[arg(long, value_delimiter = ',', default_value = "0,10,20,40")]
    counts: Vec<usize>,
    /// The controller binary [default: a release build of this checkout]
    #[arg(long, value_name = "FILE")]
    controller_bin: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let controller_bin = match &args.controller_bin {
        Some(bin) => bin.clone(),
        None => build_release()?.join("kseal-controller"),
    };
    let figures = runtime()?.block_on(bench(&args, &controller_bin))?;
    print_figures(&figures)
}

/// What `bench-hostile` prints.
#[derive(Debug, Clone, Serialize)]
pub struct HostileFigures {
    /// The controller binary measured.
    pub controller: String,
    pub points: Vec<HostilePoint>,
}

/// The controller's peak memory with so many hostile objects of a kind.
#[derive(Debug, Clone, Serialize)]
pub struct HostilePoint {
    pub kind: &'static str,
    pub objects: usize,
    pub peak_rss_mib: f64,
}

/// ~1 MiB of labels: 14,000 of 63-character values.
fn big_labels() -> BTreeMap<String, String> {
    (0..14_000)
        .map(|i| (format!("hostile.example/l{i:05}"), "x".repeat(63)))
        .collect()
}

/// `count` annotations of `bytes` each.
fn annotations(count: usize, bytes: usize) -> BTreeMap<String, String> {
    (0..count)
        .map(|i| (format!("hostile.example/a{i:02}"), "y".repeat(bytes)))
        .collect()
}

fn with_template(mut sealed: SealedSecret, annotations: BTreeMap<String, String>) -> SealedSecret {
    sealed.spec.template = Some(SecretTemplate {
        metadata: Some(TemplateMetadata {
            labels: BTreeMap::new(),
            annotations,
        }),
        ..SecretTemplate::default()
    });
    sealed
}

async fn bench(args: &Args, controller_bin: &Path) -> Result<HostileFigures> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    setup(&client, &[KEY_NAMESPACE, NAMESPACE]).await?;
    // A first start makes the cluster's key.
    let recipients = {
        let controller = start(&cp, controller_bin)?;
        let recipients =
            kseal_testenv::published_recipients(&client, KEY_NAMESPACE, Duration::from_secs(120))
                .await?;
        drop(controller);
        recipients
    };
    let stranger = Identity::generate().recipient().clone();
    let kinds: [(&str, Kind); 3] = [
        (
            "foreign Secrets labelled kseal.dev/owned=true, 1 MiB of labels",
            Kind::OwnedLabel,
        ),
        (
            "SealedSecrets never in sync, 1 MiB template annotations",
            Kind::Unsealable,
        ),
        (
            "SealedSecrets in sync, 60 KiB template annotations",
            Kind::InSync,
        ),
    ];
    let mut results = Vec::new();
    for (what, kind) in kinds {
        let mut made = 0;
        for &count in &args.counts {
            while made < count {
                create(&client, kind, made, &recipients, &stranger).await?;
                made += 1;
            }
            let peak = measure(&cp, controller_bin, &client, kind, count).await?;
            note(&format!("{what}: {count:>3} → peak {} MiB", mib(peak)));
            results.push(HostilePoint {
                kind: what,
                objects: count,
                peak_rss_mib: mib(peak),
            });
        }
        clean(&client).await?;
    }
    Ok(HostileFigures {
        controller: controller_bin.display().to_string(),
        points: results,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    OwnedLabel,
    Unsealable,
    InSync,
}

async fn create(
    client: &Client,
    kind: Kind,
    i: usize,
    recipients: &[Recipient],
    stranger: &Recipient,
) -> Result<()> {
    let name = format!("hostile-{i:03}");
    match kind {
        Kind::OwnedLabel => {
            let mut secret = Secret::default();
            secret.metadata.name = Some(name);
            let mut labels = big_labels();
            labels.insert("kseal.dev/owned".into(), "true".into());
            secret.metadata.labels = Some(labels);
            Api::<Secret>::namespaced(client.clone(), NAMESPACE)
                .create(&PostParams::default(), &secret)
                .await
                .context("creating a hostile Secret")?;
        }
        Kind::Unsealable | Kind::InSync => {
            let (to, annotations) = match kind {
                Kind::Unsealable => (std::slice::from_ref(stranger), annotations(64, 16_000)),
                _ => (recipients, annotations(15, 4_000)),
            };
            // Sealed under its own name: a Strict value is bound to it.
            let mut secret = PlainSecret {
                name,
                namespace: NAMESPACE.to_owned(),
                ..PlainSecret::default()
            };
            secret
                .insert("password", SecretBytes::from(&b"hostile"[..]))
                .map_err(anyhow::Error::msg)?;
            let sealed = seal_secret(
                &secret,
                SealOptions {
                    scope: Scope::Strict,
                    recipients: to,
                    allow_empty_data: false,
                },
            )
            .map_err(anyhow::Error::msg)?;
            Api::<SealedSecret>::namespaced(client.clone(), NAMESPACE)
                .create(&PostParams::default(), &with_template(sealed, annotations))
                .await
                .context("creating a hostile SealedSecret")?;
        }
    }
    Ok(())
}

/// Starts a controller, waits until it has listed and reconciled
/// everything (its reconcile count unchanged for 3 s, and for in-sync
/// objects every Secret made), and returns its peak RSS in KiB.
async fn measure(
    cp: &ControlPlane,
    controller_bin: &Path,
    client: &Client,
    kind: Kind,
    count: usize,
) -> Result<u64> {
    let controller = start(cp, controller_bin)?;
    wait_for("controller /readyz", Duration::from_secs(120), || {
        controller.is_ready()
    })
    .await?;
    if let Kind::InSync = kind {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
        wait_for("every Secret", Duration::from_secs(120), || async {
            secrets
                .list(&ListParams::default().labels("kseal.dev/owned=true"))
                .await
                .is_ok_and(|list| list.items.len() >= count)
        })
        .await?;
    }
    let mut last = None;
    let mut quiet = 0;
    while quiet < 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = controller
            .metric("kseal_reconcile_duration_seconds_count")
            .await;
        quiet = if now.is_some() && now == last {
            quiet + 1
        } else {
            0
        };
        last = now;
    }
    let (peak, _) = memory_kib(controller.pid()?);
    Ok(peak)
}

/// Starts a controller (its defaults but `--key-renew-period 0`).
fn start(cp: &ControlPlane, controller_bin: &Path) -> Result<Controller> {
    kseal_controller(cp, controller_bin, &[])
}

async fn clean(client: &Client) -> Result<()> {
    let all = ListParams::default();
    Api::<SealedSecret>::namespaced(client.clone(), NAMESPACE)
        .delete_collection(&DeleteParams::default(), &all)
        .await?;
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .delete_collection(&DeleteParams::default(), &all)
        .await?;
    Ok(())
}
