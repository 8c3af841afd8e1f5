//! A real control plane with the CRD installed and kseal-controller
//! processes running against it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::collapsible_if
)]

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_shared::manifest::{PlainSecret, SealOptions, seal_secret};
use kseal_shared::{
    binding::Scope, sealed_secret::SealedSecret, secret::SecretBytes, x25519::Recipient,
};
use kseal_testenv::ControlPlane;
use kseal_testenv::poll::Poll;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

pub const NAMESPACE: &str = "kseal-system";
pub const WAIT: Duration = Duration::from_secs(60);
/// How often [`eventually`] checks.
pub const POLL: Duration = Duration::from_millis(200);
/// How long a controller must finish no reconcile to count as idle.
pub const QUIET: Duration = Duration::from_secs(5);
/// The longest one request to a controller's HTTP API may take in a test.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits up to [`WAIT`] for `check` to hold; panics naming `what` when it
/// never does ([`kseal_testenv::poll`]).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if let Err(timed_out) = Poll::new(WAIT).every(POLL).until(what, check).await {
        panic!("{timed_out}");
    }
}

/// A running `kseal-controller` ([`kseal_testenv::controller::Controller`]:
/// its process, ports and log; killed on drop), with the tests' HTTP
/// helpers.
pub struct Controller(pub kseal_testenv::controller::Controller);

impl Deref for Controller {
    type Target = kseal_testenv::controller::Controller;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Controller {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Controller {
    pub async fn get(&self, path: &str) -> (u16, String) {
        http(&self.url(path), "GET", None, None).await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
        http(&self.url(path), "POST", Some(content_type), Some(body)).await
    }

    /// How many reconciles this process has finished (its
    /// `kseal_reconcile_duration_seconds_count`); `None` while it does not
    /// answer.
    pub async fn reconciles(&self) -> Option<u64> {
        self.metric("kseal_reconcile_duration_seconds_count")
            .await
            .map(|n| n as u64)
    }

    /// Waits until the controller is idle: no reconcile finished for
    /// [`QUIET`] (each one a controller starts ends within milliseconds, and
    /// every write it makes starts its follow-up through a watch within a
    /// fraction of a second, even on a loaded machine). Use it before taking
    /// request counts or stopping, instead of a fixed sleep.
    pub async fn settle(&self) {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        let mut quiet_since = Instant::now();
        loop {
            let now = self.reconciles().await;
            if now.is_none() || now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the controller did not settle (reconciles: {last:?})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn wait_healthy(&self) {
        eventually("controller /readyz", || async {
            self.get("/readyz").await.0 == 200
        })
        .await;
    }
}

/// One request to the controller's HTTP API (`http://host:port/path`);
/// status 0 and no body when it cannot connect.
pub async fn http(
    url: &str,
    method: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap();
    let body = body.unwrap_or_default();
    // Bounded, so a request that hangs fails the check that made it instead
    // of outliving the deadline of the `eventually` around it.
    let request = kseal_testenv::http::request(host, method, &path, content_type, &body);
    match tokio::time::timeout(HTTP_TIMEOUT, request).await {
        Ok(Some(answer)) => answer,
        _ => (0, String::new()),
    }
}

pub struct Fixture {
    pub cp: ControlPlane,
    pub client: Client,
    pub dir: PathBuf,
}

impl Fixture {
    /// A control plane with the CRD and the controller namespace; `None` when
    /// the binaries cannot be built outside CI.
    pub async fn start() -> Option<Self> {
        kseal_testenv::bins_or_skip()?;
        let cp = ControlPlane::start().await.unwrap();
        Some(Self::with(cp).await)
    }

    /// `count` fixtures running at once: one cluster each, for a test of a
    /// fleet; `None` as for [`Fixture::start`].
    pub async fn start_fleet(count: usize) -> Option<Vec<Self>> {
        kseal_testenv::bins_or_skip()?;
        let mut fleet = Vec::with_capacity(count);
        for cp in ControlPlane::start_fleet(count).await.unwrap() {
            fleet.push(Self::with(cp).await);
        }
        Some(fleet)
    }

    async fn with(cp: ControlPlane) -> Self {
        let client = cp.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(
            &PostParams::default(),
            &kseal_shared::sealed_secret::custom_resource_definition(),
        )
        .await
        .unwrap();
        eventually("CRD established", || {
            kseal_testenv::crd_established(&client, "sealedsecrets.kseal.dev")
        })
        .await;
        let dir = cp.dir().to_path_buf();
        let fixture = Self { cp, client, dir };
        fixture.namespace(NAMESPACE).await;
        fixture
    }

    pub async fn namespace(&self, name: &str) {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        let _ = Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await;
    }

    /// Starts a controller process with extra arguments.
    pub fn controller(&self, name: &'static str, extra: &[&str]) -> Controller {
        self.controller_as(name, self.cp.admin_kubeconfig(), extra)
    }

    /// Starts a controller process acting as the user of `kubeconfig` (e.g.
    /// a minted ServiceAccount identity) with extra arguments.
    pub fn controller_as(
        &self,
        name: &'static str,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> Controller {
        let controller = kseal_testenv::controller::Controller::builder(
            env!("CARGO_BIN_EXE_kseal-controller"),
            kubeconfig,
        )
        .name(name)
        .log_dir(&self.dir)
        .namespace(NAMESPACE)
        .log_level("debug,hyper=info,tower=info,rustls=info,kube_client=info")
        .pod_name(name)
        .args(extra)
        .start()
        .unwrap();
        Controller(controller)
    }

    pub async fn recipients(&self) -> Vec<Recipient> {
        kseal_testenv::published_recipients(&self.client, NAMESPACE, WAIT)
            .await
            .expect("timed out waiting for published keys")
    }

    pub fn sealed_secrets(&self, namespace: &str) -> Api<SealedSecret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn apply(&self, sealed: &SealedSecret) {
        let namespace = sealed.metadata.namespace.clone().unwrap();
        self.sealed_secrets(&namespace)
            .patch(
                sealed.metadata.name.as_deref().unwrap(),
                &PatchParams::apply("kseal-test").force(),
                &Patch::Apply(sealed),
            )
            .await
            .unwrap();
    }

    /// Waits until the SealedSecret's Ready condition has `status` and
    /// returns its reason.
    pub async fn wait_ready(&self, namespace: &str, name: &str, status: &str) -> String {
        let api = self.sealed_secrets(namespace);
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(sealed) = api.get(name).await {
                let generation = sealed.metadata.generation;
                if let Some(current) = sealed.status {
                    if let Some(ready) = current.conditions.iter().find(|c| c.type_ == "Ready") {
                        if ready.status == status && current.observed_generation == generation {
                            return ready.reason.clone();
                        }
                        last = Some(ready.clone());
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {namespace}/{name} Ready={status}; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A Secret with string values, for sealing.
pub fn plain(namespace: &str, name: &str, values: &[(&str, &str)]) -> PlainSecret {
    let mut secret = PlainSecret {
        name: name.into(),
        namespace: namespace.into(),
        ..PlainSecret::default()
    };
    for (key, value) in values {
        secret
            .insert(key, SecretBytes::from(value.as_bytes()))
            .unwrap();
    }
    secret
}

pub fn seal(secret: &PlainSecret, scope: Scope, recipients: &[Recipient]) -> SealedSecret {
    seal_secret(
        secret,
        SealOptions {
            scope,
            recipients,
            allow_empty_data: false,
        },
    )
    .unwrap()
}

/// A SealedSecret whose template type was edited by hand after sealing:
/// `kseal seal` refuses a Secret its type's rules refuse (a tls Secret
/// without tls.key, …), so objects the controller must refuse are made
/// this way. The values are bound to names and keys, not to the type.
pub fn seal_then_retype(
    secret: &PlainSecret,
    scope: Scope,
    recipients: &[Recipient],
) -> SealedSecret {
    let mut untyped = secret.clone();
    let type_ = untyped.type_.take();
    let mut sealed = seal(&untyped, scope, recipients);
    sealed
        .spec
        .template
        .get_or_insert_with(Default::default)
        .type_ = type_;
    sealed
}

pub fn data_of(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The `kseal` CLI binary of this workspace, built if needed.
pub fn kseal_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/kseal
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = profile_dir.join("kseal");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "kseal-cli", "--bin", "kseal"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the kseal CLI failed");
    }
    bin
}

/// Runs the CLI; returns (exit code, stdout, stderr).
pub fn kseal(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    kseal_with_kubeconfig(dir, args, stdin, None)
}

/// [`kseal`] with `$KUBECONFIG` set to `kubeconfig` (`None`: unset), as an
/// operator's shell has it.
pub fn kseal_with_kubeconfig(
    dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
    kubeconfig: Option<&Path>,
) -> (i32, String, String) {
    use std::io::Write;
    let mut command = std::process::Command::new(kseal_bin());
    command.env_remove("KUBECONFIG");
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let mut child = command
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that fails before reading its input closes the pipe: that
    // is its answer, not a test error.
    let _ = input.write_all(stdin.unwrap_or_default().as_bytes());
    drop(input);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
