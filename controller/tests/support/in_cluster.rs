//! The controller as users run it: a release built from the repository
//! (`kseal_testenv::release`, the code behind `cargo xtask release`),
//! published to a real OCI registry on loopback (CNCF distribution), its
//! checksums and signatures verified with cosign, the chart installed from
//! the registry with the pinned `helm` (`helm install oci://…`), the node's
//! containerd pulling the image by digest from the registry; the real
//! `kubectl` and `kseal` CLIs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kseal_shared::x25519::Recipient;
use kseal_testenv::image;
use kseal_testenv::registry::Registry;
use kseal_testenv::release::{self, Arch, Published, Release, Signer};
use kseal_testenv::{ControlPlane, Options};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The two controller images a cluster's registry holds: the release's
/// (`TAG_1`, what the chart pins) and the same build under another digest
/// (`TAG_2`), so `helm upgrade` has a new image to roll out.
pub const TAG_1: &str = "e2e-1";
pub const TAG_2: &str = "e2e-2";
/// The registry namespace releases are published under here (as
/// `ghcr.io/kseal-dev` publicly).
pub const NAMESPACE: &str = "kseal-dev";

pub const WAIT: Duration = Duration::from_secs(120);

pub struct Cluster {
    pub cp: ControlPlane,
    pub client: Client,
    pub work: tempfile::TempDir,
    /// The registry the node pulls from (dropped after the control plane).
    pub registry: Registry,
    /// The release, as built (its directory is what users download).
    pub release: Release,
    /// Where it was published.
    pub published: Published,
    /// `TAG_2`'s image, `<repository>@<digest>`.
    pub second_image: String,
}

impl Cluster {
    /// A control plane with a node and a registry holding a verified
    /// release; `None` when the binaries cannot be built or a node cannot
    /// run here, outside CI.
    pub async fn start() -> Option<Self> {
        kseal_testenv::bins_or_skip()?;
        if !kseal_testenv::node::node_or_skip() {
            return None;
        }
        let work = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let release_dir = work.path().join("release");
        // Started on this thread: its process gets a parent-death signal
        // tied to the spawning thread, and a blocking-pool thread exits
        // when idle.
        let tools = kseal_testenv::release_tools::ensure().unwrap();
        let registry = Registry::start(&tools).unwrap();
        let host = registry.host();
        let (release, published, second_image) =
            tokio::task::spawn_blocking(move || publish_release(&release_dir, &host))
                .await
                .unwrap();
        eprintln!(
            "release built, published and verified: {:.1}s (cargo {:.1}s)",
            t.elapsed().as_secs_f64(),
            release.cargo_time.as_secs_f64()
        );
        let t = Instant::now();
        let cp = ControlPlane::start_with(Options {
            node: true,
            ..Options::default()
        })
        .await
        .unwrap();
        cp.node().unwrap().trust_registry(&registry.host()).unwrap();
        eprintln!(
            "control plane + node: {:.1}s ({:?})",
            t.elapsed().as_secs_f64(),
            cp.startup()
        );
        let client = cp.client().await.unwrap();
        Some(Self {
            cp,
            client,
            work,
            registry,
            release,
            published,
            second_image,
        })
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    pub fn kubeconfig(&self) -> String {
        self.cp.admin_kubeconfig().to_str().unwrap().to_owned()
    }

    /// Runs the pinned helm as the admin; panics with its output on failure.
    pub fn helm(&self, args: &[&str]) -> String {
        let out = Command::new(self.cp.bins().helm())
            .args(args)
            .args(["--kubeconfig", &self.kubeconfig()])
            .env("HELM_CACHE_HOME", self.dir().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir().join("helm/config"))
            .env("HELM_DATA_HOME", self.dir().join("helm/data"))
            .env("KUBECACHEDIR", self.cp.kube_cache_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?} failed: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.cp.node().map(|n| n.log_tails(20)).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `helm install|upgrade RELEASE oci://…/charts/kseal --version V -n NS`
    /// from the cluster's registry, plus `sets`; `TAG_2` sets the second
    /// image's digest, `TAG_1` keeps the one the chart pins. Waits for the
    /// rollout.
    pub fn helm_release(&self, verb: &str, release: &str, ns: &str, tag: &str, sets: &[&str]) {
        let image = match tag {
            TAG_1 => None,
            TAG_2 => Some(format!(
                "image.digest={}",
                self.second_image.rsplit_once('@').unwrap().1
            )),
            other => panic!("no image {other}"),
        };
        let mut args = vec![
            verb,
            release,
            &self.published.chart,
            "--version",
            &self.release.manifest.version,
            "--plain-http",
            "--namespace",
            ns,
            "--create-namespace",
            "--wait",
            // Generous: a rollout on a loaded machine, and a hang still ends.
            "--timeout",
            "300s",
        ];
        if let Some(image) = &image {
            args.extend(["--set", image]);
        }
        for s in sets {
            args.extend(["--set", s]);
        }
        self.helm(&args);
    }

    /// The image reference Pods of `tag` run.
    pub fn image_of(&self, tag: &str) -> String {
        match tag {
            TAG_1 => self.published.image.clone(),
            TAG_2 => self.second_image.clone(),
            other => panic!("no image {other}"),
        }
    }

    /// Runs the real kubectl as the admin; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = self
            .cp
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn namespace(&self, name: &str) {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        let _ = Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await;
    }

    /// The controller Pods of the release in `ns` that are not terminating.
    pub async fn controller_pods(&self, ns: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels("app.kubernetes.io/name=kseal-controller"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Waits until exactly `n` controller Pods in `ns` run `tag`, all Ready.
    pub async fn wait_pods_ready(&self, ns: &str, tag: &str, n: usize) -> Vec<Pod> {
        let deadline = Instant::now() + WAIT;
        loop {
            let pods = self.controller_pods(ns).await;
            let ok = pods.len() == n
                && pods.iter().all(|p| {
                    pod_ready(p)
                        && p.spec.as_ref().is_some_and(|s| {
                            s.containers[0].image.as_deref() == Some(&self.image_of(tag))
                        })
                });
            if ok {
                return pods;
            }
            assert!(
                Instant::now() < deadline,
                "{n} Ready controller pods with {tag} in {ns}: have {:?}",
                pods.iter()
                    .map(|p| (p.metadata.name.clone(), pod_ready(p)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The published recipients of the release in `ns`.
    pub async fn recipients(&self, ns: &str) -> Vec<Recipient> {
        kseal_testenv::published_recipients(&self.client, ns, WAIT)
            .await
            .expect("no published keys")
    }

    /// A client acting with the Pod's own ServiceAccount token, read from
    /// the volume the kubelet mounted for it: exactly what the controller
    /// in that Pod authenticates with.
    pub async fn pod_client(&self, pod: &Pod) -> Client {
        let uid = pod.metadata.uid.as_deref().unwrap();
        let node = self.cp.node().unwrap();
        let projected = node
            .dir()
            .join("kubelet/pods")
            .join(uid)
            .join("volumes/kubernetes.io~projected");
        let token_dir = std::fs::read_dir(&projected)
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("kube-api-access-")
            })
            .unwrap()
            .path();
        let token = std::fs::read_to_string(token_dir.join("token")).unwrap();
        let kubeconfig = self.dir().join(format!(
            "{}.kubeconfig",
            pod.metadata.name.as_deref().unwrap()
        ));
        let b64 = base64::engine::general_purpose::STANDARD;
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
                 certificate-authority-data: {}\nusers:\n- name: pod\n  user:\n    token: {}\n\
                 contexts:\n- name: c\n  context: {{cluster: c, user: pod}}\ncurrent-context: c\n",
                self.cp.server_url(),
                b64.encode(self.cp.ca_cert_pem()),
                token.trim()
            ),
        )
        .unwrap();
        kseal_testenv::client_from_kubeconfig(&kubeconfig)
            .await
            .unwrap()
    }

    /// GET through the API server's service proxy to the release's Service.
    pub async fn service_proxy_get(&self, ns: &str, path: &str) -> String {
        let req = http::Request::get(format!(
            "/api/v1/namespaces/{ns}/services/kseal-controller:http/proxy{path}"
        ))
        .body(Vec::new())
        .unwrap();
        self.client.request_text(req).await.unwrap()
    }
}

pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kseal")
}

/// Builds a release for this machine's platform (the tests' faster
/// profile; the same code as `cargo xtask release`) into `dir`, publishes
/// it and a second image to the registry at `host`, and verifies
/// everything as a user does before installing: `SHA256SUMS` and its
/// signature, the chart's and the provenance's signatures, and the
/// signatures of the image and the chart in the registry.
fn publish_release(dir: &Path, host: &str) -> (Release, Published, String) {
    let tools = kseal_testenv::release_tools::ensure().unwrap();
    let release = release::build(&release::Options {
        out: dir.to_owned(),
        profile: "image-test".to_owned(),
        platforms: vec![Arch::host().expect("a release platform")],
        registry: format!("{host}/{NAMESPACE}"),
        signer: Some(Signer::Ephemeral),
        download_url: None,
        image_annotations: BTreeMap::new(),
    })
    .unwrap();
    let published = release::publish(&release, true).unwrap();
    let second =
        release::publish_relabelled(&release, ("dev.kseal.test/image", TAG_2), TAG_2, true)
            .unwrap();
    release::verify_dir(&tools.cosign, dir).unwrap();
    let public = dir.join(release::PUBLIC_KEY_FILE);
    for reference in [
        published.image.clone(),
        second.clone(),
        format!(
            "{}@{}",
            published.chart.trim_start_matches("oci://"),
            published.chart_digest
        ),
    ] {
        release::verify_artifact(&tools.cosign, &public, &reference, true).unwrap();
    }
    (release, published, second)
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// Whether a kube call was refused by RBAC.
pub fn forbidden<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

/// The host pids of processes running `/usr/local/bin/kseal-controller`
/// (the image's entrypoint) in the node's pods.
pub fn controller_pids() -> Vec<u32> {
    kseal_testenv::node::host::processes()
        .into_iter()
        .filter(|(_, args)| args.first().map(String::as_str) == Some(image::ENTRYPOINT))
        .map(|(pid, _)| pid)
        .collect()
}

/// With the chart's default (`rollout.enabled` off): the controller Pod's
/// token may neither list nor patch workloads in `namespace`, nor patch
/// Pods there.
pub async fn check_rollout_refused(c: &Cluster, pod: &Pod, namespace: &str) {
    let sa = c.pod_client(pod).await;
    let everything = ListParams::default();
    let deployments: Api<Deployment> = Api::namespaced(sa.clone(), namespace);
    assert!(forbidden(&deployments.list(&everything).await));
    assert!(forbidden(
        &Api::<StatefulSet>::namespaced(sa.clone(), namespace)
            .list(&everything)
            .await
    ));
    assert!(forbidden(
        &Api::<DaemonSet>::namespaced(sa.clone(), namespace)
            .list(&everything)
            .await
    ));
    let dry_patch = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let restart = json!({"spec": {"template": {"metadata": {"annotations": {
        "kseal.dev/restarted-at": "2026-01-01T00:00:00Z"
    }}}}});
    // Forbidden comes before not-found: the Deployment need not exist.
    assert!(forbidden(
        &deployments
            .patch("api", &dry_patch, &Patch::Merge(&restart))
            .await
    ));
    assert!(forbidden(
        &Api::<StatefulSet>::namespaced(sa.clone(), namespace)
            .patch("api", &dry_patch, &Patch::Merge(&restart))
            .await
    ));
    assert!(forbidden(
        &Api::<DaemonSet>::namespaced(sa.clone(), namespace)
            .patch("api", &dry_patch, &Patch::Merge(&restart))
            .await
    ));
    let touch = json!({"metadata": {"annotations": {"kseal.dev/privilege-check": "dry-run"}}});
    assert!(forbidden(
        &Api::<Pod>::namespaced(sa, namespace)
            .patch("api", &dry_patch, &Patch::Merge(&touch))
            .await
    ));
}
