//! The controller as users run it: a control plane with a real node, the
//! controller image built from the repository and imported into the node's
//! containerd, the chart installed with the pinned `helm`, the real
//! `kubectl` and `kseal` CLIs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kseal_shared::x25519::Recipient;
use kseal_testenv::image::{self, Build, Built};
use kseal_testenv::{ControlPlane, Options};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Image names in the node's containerd: two tags of the same build, so
/// `helm upgrade` has a new image to roll out.
pub const REPOSITORY: &str = image::LOCAL_REPOSITORY;
pub const TAG_1: &str = "e2e-1";
pub const TAG_2: &str = "e2e-2";

pub const WAIT: Duration = Duration::from_secs(120);

/// The controller image (profile `image-test`), built once per test binary
/// under both tags.
pub fn controller_images() -> (Built, Built) {
    static BUILT: Mutex<Option<(Built, Built)>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = &*built {
        return b.clone();
    }
    let t = Instant::now();
    let build = |tag: &str| {
        image::build(&Build {
            profile: "image-test".to_owned(),
            name: Some(format!("{REPOSITORY}:{tag}")),
            out: None,
        })
        .unwrap()
    };
    let pair = (build(TAG_1), build(TAG_2));
    eprintln!(
        "controller image built in {:.1}s (cargo {:.1}s)",
        t.elapsed().as_secs_f64(),
        pair.0.cargo_time.as_secs_f64()
    );
    *built = Some(pair.clone());
    pair
}

pub struct Cluster {
    pub cp: ControlPlane,
    pub client: Client,
    pub work: tempfile::TempDir,
}

impl Cluster {
    /// A control plane with a node and both controller images imported;
    /// `None` when the binaries cannot be built or a node cannot run here,
    /// outside CI.
    pub async fn start() -> Option<Self> {
        kseal_testenv::bins_or_skip()?;
        if !kseal_testenv::node::node_or_skip() {
            return None;
        }
        let images = tokio::task::spawn_blocking(controller_images)
            .await
            .unwrap();
        let t = Instant::now();
        let cp = ControlPlane::start_with(Options {
            node: true,
            ..Options::default()
        })
        .await
        .unwrap();
        let node = cp.node().unwrap();
        node.import_image(&images.0.archive).unwrap();
        node.import_image(&images.1.archive).unwrap();
        eprintln!(
            "control plane + node + image import: {:.1}s ({:?})",
            t.elapsed().as_secs_f64(),
            cp.startup()
        );
        let client = cp.client().await.unwrap();
        Some(Self {
            cp,
            client,
            work: tempfile::tempdir().unwrap(),
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

    /// `helm install|upgrade RELEASE charts/kseal -n NS` with the local
    /// image, never pulled, plus `sets`; waits for the rollout.
    pub fn helm_release(&self, verb: &str, release: &str, ns: &str, tag: &str, sets: &[&str]) {
        let chart = chart_dir();
        let image = format!("image.repository={REPOSITORY},image.tag={tag},image.pullPolicy=Never");
        let mut args = vec![
            verb,
            release,
            chart.to_str().unwrap(),
            "--namespace",
            ns,
            "--create-namespace",
            "--wait",
            // Generous: a rollout on a loaded machine, and a hang still ends.
            "--timeout",
            "300s",
            "--set",
            &image,
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        self.helm(&args);
    }

    /// Runs the real kubectl as the admin; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = Command::new(self.cp.bins().kubectl())
            .arg("--kubeconfig")
            .arg(self.cp.admin_kubeconfig())
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
                            s.containers[0].image.as_deref() == Some(&format!("{REPOSITORY}:{tag}"))
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
