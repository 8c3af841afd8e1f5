//! Scenario: kseal's key rotation with N objects in sync, then re-wrapping
//! the N objects as files (one per file, as in a GitOps repository):
//! online through the controller (`kseal rewrap --online`, batched) and
//! offline with the backed-up identities (`kseal rewrap -i … -R …`). Run by
//! `bench-e2e --compare`, after the sync, beside the other tool's own
//! rotation.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::Recipient;
use kseal_testenv::controller::Controller;
use kseal_testenv::poll::wait_for;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;

use super::harness::cluster::KEY_NAMESPACE;
use super::harness::objects::{check_tree, write_tree};
use super::harness::process::cpu_seconds;
use super::harness::{copy_tree, load, note, round, run_tool};

/// What the rotation measured (`rotation` in `bench-e2e`'s JSON).
#[derive(Debug, Clone, Serialize)]
pub struct RotationFigures {
    pub rotate_s: f64,
    pub rewrap_online_s: f64,
    pub rewrap_online_values_per_s: f64,
    pub rewrap_online_controller_cpu_s: f64,
    pub rewrap_offline_s: f64,
    pub rewrap_offline_values_per_s: f64,
    pub objects: usize,
    pub values: usize,
    pub machine_load_start: String,
    pub machine_load_end: String,
}

/// Where the scenario runs.
pub struct Rotation<'a> {
    pub client: &'a Client,
    pub controller: &'a Controller,
    /// The `kseal` binary.
    pub kseal: &'a Path,
    /// A directory for the trees of files.
    pub dir: &'a Path,
    pub kubeconfig: &'a Path,
}

impl Rotation<'_> {
    /// Rotates the key, then re-wraps `objects` online and offline.
    pub async fn run(&self, objects: &[SealedSecret]) -> Result<RotationFigures> {
        let n = objects.len();
        let values: usize = objects.iter().map(|o| o.spec.encrypted_data.len()).sum();
        let tree = self.dir.join("kseal-repo");
        write_tree(&tree, objects)?;
        let load_before = load();
        let (rotate, new) = self.rotate().await?;
        let new_id = new
            .first()
            .map(Recipient::key_id)
            .context("no published key")?
            .to_string();

        let online_tree = self.dir.join("kseal-repo-online");
        copy_tree(&tree, &online_tree)?;
        let (online, online_cpu) = self.rewrap_online(&online_tree)?;
        check_tree(&online_tree, n, &new_id)?;
        note(&format!(
            "kseal rewrap --online: {n} files, {values} values in {:.2}s ({:.0} values/s); controller CPU {online_cpu:.2}s",
            online.as_secs_f64(),
            values as f64 / online.as_secs_f64()
        ));

        let offline_tree = self.dir.join("kseal-repo-offline");
        copy_tree(&tree, &offline_tree)?;
        let offline = self.rewrap_offline(&offline_tree, &new[0]).await?;
        check_tree(&offline_tree, n, &new_id)?;
        note(&format!(
            "kseal rewrap offline: {values} values in {:.2}s ({:.0} values/s); load {load_before} → {}",
            offline.as_secs_f64(),
            values as f64 / offline.as_secs_f64(),
            load()
        ));
        for t in [&tree, &online_tree, &offline_tree] {
            std::fs::remove_dir_all(t)?;
        }
        Ok(RotationFigures {
            rotate_s: round(rotate.as_secs_f64(), 3),
            rewrap_online_s: round(online.as_secs_f64(), 3),
            rewrap_online_values_per_s: round(values as f64 / online.as_secs_f64(), 0),
            rewrap_online_controller_cpu_s: round(online_cpu, 2),
            rewrap_offline_s: round(offline.as_secs_f64(), 3),
            rewrap_offline_values_per_s: round(values as f64 / offline.as_secs_f64(), 0),
            objects: n,
            values,
            machine_load_start: load_before,
            machine_load_end: load(),
        })
    }

    async fn published(&self) -> Result<Vec<Recipient>> {
        kseal_testenv::published_recipients(self.client, KEY_NAMESPACE, Duration::from_secs(10))
            .await
    }

    /// `kseal keys rotate` until the new key is published; the time that
    /// took and the published keys.
    async fn rotate(&self) -> Result<(Duration, Vec<Recipient>)> {
        let old = self.published().await?;
        let started = Instant::now();
        run_tool(
            Command::new(self.kseal)
                .args(["keys", "rotate", "--kubeconfig"])
                .arg(self.kubeconfig),
        )?;
        wait_for(
            "the new key to be published",
            Duration::from_secs(60),
            || async {
                self.published().await.is_ok_and(|new| {
                    new.first().map(Recipient::key_id) != old.first().map(Recipient::key_id)
                })
            },
        )
        .await?;
        let rotate = started.elapsed();
        note(&format!(
            "kseal: key rotated and published in {:.2}s",
            rotate.as_secs_f64()
        ));
        Ok((rotate, self.published().await?))
    }

    /// Online: the controller re-wraps to its current key; the time and the
    /// controller's CPU.
    fn rewrap_online(&self, tree: &Path) -> Result<(Duration, f64)> {
        let url = self.controller.url("");
        let started = Instant::now();
        let cpu_before = cpu_seconds(self.controller.pid()?);
        run_tool(
            Command::new(self.kseal)
                .args(["rewrap", "--online", "--controller-url", &url, "--in-place"])
                .arg(tree),
        )?;
        let online = started.elapsed();
        Ok((online, cpu_seconds(self.controller.pid()?) - cpu_before))
    }

    /// Offline: the identities as a backup would hold them, re-wrapped to
    /// `new`.
    async fn rewrap_offline(&self, tree: &Path, new: &Recipient) -> Result<Duration> {
        let keys: Api<Secret> = Api::namespaced(self.client.clone(), KEY_NAMESPACE);
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
        let identity_file = self.dir.join("kseal-identities.txt");
        std::fs::write(&identity_file, identities)?;
        let recipients_file = self.dir.join("kseal-new.pub");
        std::fs::write(&recipients_file, format!("{new}\n"))?;
        let started = Instant::now();
        run_tool(
            Command::new(self.kseal)
                .arg("rewrap")
                .arg("-i")
                .arg(&identity_file)
                .arg("-R")
                .arg(&recipients_file)
                .arg("--in-place")
                .arg(tree),
        )?;
        let offline = started.elapsed();
        std::fs::remove_file(&identity_file)?;
        Ok(offline)
    }
}
