//! `kseal keys …`: the cluster's sealing keys. The CLI never sees a private
//! key: it asks the controller, through the Kubernetes API, to act.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::args::{KeysArgs, KeysCommand, RotateArgs};
use crate::cluster::{self, PUBLIC_KEYS_CONFIGMAP};

/// Annotation the controller watches for rotation requests.
const ROTATE_REQUEST_ANNOTATION: &str = "kseal.dev/rotate-requested-at";

pub fn run(args: KeysArgs) -> Result<()> {
    match args.command {
        KeysCommand::Rotate(args) => rotate(args),
    }
}

/// Asks the controller for a new active key (RBAC: patch on the public-key
/// ConfigMap in the controller's namespace) and waits until it is published.
fn rotate(args: RotateArgs) -> Result<()> {
    let cluster = &args.cluster;
    let before = cluster::fetch_recipients(cluster)?;
    cluster::block_on(async {
        let client = cluster::client(cluster).await?;
        let api: Api<ConfigMap> = Api::namespaced(client, &cluster.controller_namespace);
        let request = jiff::Timestamp::now().to_string();
        let patch =
            serde_json::json!({"metadata": {"annotations": {ROTATE_REQUEST_ANNOTATION: request}}});
        api.patch(
            PUBLIC_KEYS_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context("cannot request a rotation (needs patch on the kseal-public-keys ConfigMap)")?;
        Ok(())
    })?;
    eprintln!("kseal: rotation requested; waiting for the controller to publish the new key…");
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    loop {
        let now = cluster::fetch_recipients(cluster)?;
        if now.first() != before.first() {
            if let Some(active) = now.first() {
                println!("{} {}", active.key_id(), active);
            }
            eprintln!(
                "kseal: new active key published; the old key keeps decrypting. Re-wrap the repository to the new key: kseal rewrap --online --in-place PATH"
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no new key was published within {}s: is the kseal controller running (and leading)?",
                args.timeout_seconds
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
