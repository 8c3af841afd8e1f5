//! The control plane: etcd, kube-apiserver and kube-controller-manager as
//! local processes, with a generated PKI and kubeconfigs.
//!
//! [`ControlPlane::start_with`] goes through these phases, each in its
//! module:
//!
//! 1. the binaries ([`crate::bins::ensure`]) and a state directory;
//! 2. the PKI ([`pki`]): CA, serving certificate, ServiceAccount keys;
//! 3. ports, then the kubeconfigs of the admin and the controller manager
//!    ([`users`]);
//! 4. each component's command line ([`components`]; the API server's
//!    audit policy is in [`audit`]);
//! 5. starting etcd, the API server and the controller manager in turn,
//!    each waited for ([`lifecycle`]);
//! 6. with [`Options::node`], the RBAC the node needs and the node itself.

mod audit;
mod components;
mod lifecycle;
mod pki;
mod users;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::{Api, Client};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::bins::{self, BinDir};
use crate::certs::Ca;
use crate::node::{self, Node, NodeLock, NodeStartup};
use crate::ports::{self, Port};
use crate::process::Component;

pub use users::{User, client_from_kubeconfig};

/// The API server's user towards the kubelet (bound to
/// `system:kubelet-api-admin`).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// How long to wait for a component to become ready, unless overridden.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 40;

/// The admin user: in `system:masters`, so it may do anything.
pub const ADMIN_USER: &str = "kseal-testenv-admin";

/// Options for [`ControlPlane::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Timeout for each readiness wait (etcd health, `/readyz`, kcm).
    pub ready_timeout: Duration,
    /// Keep the state directory after the control plane is dropped (also
    /// enabled by `KSEAL_TESTENV_KEEP=1`).
    pub keep_dir: bool,
    /// Add one real worker node ([`Node`]): the API server then binds and
    /// advertises the node address so pods reach it through the
    /// `kubernetes` Service, and the scheduler and the controllers pods
    /// need (endpoints, deployments, replica sets, node lifecycle) run.
    /// One node per machine: fails at once if another is up.
    pub node: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ready_timeout: DEFAULT_READY_TIMEOUT,
            keep_dir: std::env::var("KSEAL_TESTENV_KEEP").is_ok_and(|v| v == "1"),
            node: false,
        }
    }
}

/// How long the start-up took.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    /// Spawning etcd → etcd `/health` ok.
    pub etcd_healthy: Duration,
    /// Spawning etcd → kube-apiserver `/readyz` ok.
    pub apiserver_ready: Duration,
    /// Spawning etcd → kube-controller-manager working (`default/default`
    /// ServiceAccount created).
    pub controller_manager_ready: Duration,
    /// Everything, PKI generation included (not the node).
    pub total: Duration,
    /// The node's start-up, when there is one.
    pub node: Option<NodeStartup>,
}

/// A running control plane. Dropping it kills every process it started (also
/// while a test panics, in which case the tail of each log is printed first)
/// and removes its state directory.
pub struct ControlPlane {
    // Field order matters for Drop: processes go before the directory, the
    // node before the control plane.
    node: Option<Node>,
    controller_manager: Component,
    apiserver: Component,
    etcd: Component,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    ca: Ca,
    bins: BinDir,
    apiserver_host: Ipv4Addr,
    apiserver_port: u16,
    etcd_client_port: u16,
    admin: User,
    options: Options,
    startup: Startup,
    users: AtomicUsize,
    /// etcd's client and peer ports, the API server's; after the processes,
    /// so they are released once those are gone.
    _ports: [Port; 3],
    /// The slot it holds (`None`: the second and later of a fleet, which
    /// the first one's slot covers).
    _slot: Option<SemaphorePermit<'static>>,
}

/// Limits how many control planes one process runs at once (they are heavy on
/// a small machine): `KSEAL_TESTENV_MAX_CLUSTERS`, default 1. Others wait.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let n = std::env::var("KSEAL_TESTENV_MAX_CLUSTERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        Semaphore::new(n)
    })
}

/// Where one control plane's files and ports are; what its components'
/// command lines are made of.
struct Layout {
    /// The state directory (see [`ControlPlane::dir`]).
    root: PathBuf,
    /// The address the API server binds and advertises.
    apiserver_host: Ipv4Addr,
    /// etcd's client port.
    etcd_client_port: u16,
    /// etcd's peer port.
    etcd_peer_port: u16,
    /// The API server's port.
    apiserver_port: u16,
    /// Whether a node is added ([`Options::node`]).
    node: bool,
}

impl Layout {
    /// The PKI directory: `ca.crt`, `apiserver.{crt,key}`, `sa.{key,pub}`…
    fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// `https://<apiserver host>:<port>`.
    fn server_url(&self) -> String {
        format!("https://{}:{}", self.apiserver_host, self.apiserver_port)
    }
}

impl ControlPlane {
    /// Builds the binaries if needed and starts a control plane with default
    /// options; returns once the API server is ready and the controller
    /// manager works.
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// `count` control planes running at once (two clusters for a test of
    /// a fleet), each with default options. They take one control-plane
    /// slot together (`KSEAL_TESTENV_MAX_CLUSTERS`): a slot per control
    /// plane would wait forever with the default of one.
    pub async fn start_fleet(count: usize) -> Result<Vec<Self>> {
        let slot = slots()
            .acquire()
            .await
            .context("control-plane slots closed")?;
        let mut fleet = Vec::with_capacity(count);
        let mut slot = Some(slot);
        for _ in 0..count {
            fleet.push(Self::start_in_slot(Options::default(), slot.take()).await?);
        }
        Ok(fleet)
    }

    /// Like [`ControlPlane::start`] with explicit options.
    pub async fn start_with(options: Options) -> Result<Self> {
        let slot = slots()
            .acquire()
            .await
            .context("control-plane slots closed")?;
        Self::start_in_slot(options, Some(slot)).await
    }

    /// Starts one control plane (and its node, if asked) holding `slot`.
    async fn start_in_slot(
        options: Options,
        slot: Option<SemaphorePermit<'static>>,
    ) -> Result<Self> {
        // Before anything starts: a second node fails at once.
        let node_lock = if options.node {
            Some(NodeLock::acquire().await?)
        } else {
            None
        };
        let bins = tokio::task::spawn_blocking(bins::ensure)
            .await
            .context("binary build task panicked")??;
        let begin = Instant::now();
        let (dir, ports, layout) = prepare(&options)?;
        let ca = pki::generate(&layout)?;
        let admin = users::control_plane_kubeconfigs(&layout, &ca)?;
        let mut cp = Self {
            node: None,
            controller_manager: components::controller_manager(&layout, &bins),
            apiserver: components::apiserver(&layout, &bins)?,
            etcd: components::etcd(&layout, &bins),
            dir: Some(dir),
            root: layout.root,
            ca,
            bins,
            apiserver_host: layout.apiserver_host,
            apiserver_port: layout.apiserver_port,
            etcd_client_port: layout.etcd_client_port,
            admin,
            options,
            startup: Startup::default(),
            users: AtomicUsize::new(0),
            _ports: ports,
            _slot: slot,
        };
        if let Err(e) = cp.boot(begin).await {
            let logs = cp.log_tails(TAIL_LINES);
            return Err(e.context(format!("starting the control plane failed\n{logs}")));
        }
        if let Some(lock) = node_lock {
            cp.start_node(lock).await?;
        }
        Ok(cp)
    }

    /// Grants the API server access to the kubelet, then starts the node
    /// (holding `lock`); on failure the error carries the control plane's
    /// log tails.
    async fn start_node(&mut self, lock: NodeLock) -> Result<()> {
        let admin = self.client().await?;
        grant_kubelet_access(&admin).await?;
        let ca_file = self.root.join("pki/ca.crt");
        let server = self.server_url();
        let node = Node::start(
            lock,
            node::NodeContext {
                ca: &self.ca,
                ca_file: &ca_file,
                server: &server,
                bins: &self.bins,
                admin,
                timeout: self.options.ready_timeout,
            },
        )
        .await;
        match node {
            Ok(node) => {
                self.startup.node = Some(node.startup().clone());
                self.node = Some(node);
                Ok(())
            }
            Err(e) => {
                let logs = self.log_tails(TAIL_LINES);
                Err(e.context(format!("control plane logs:\n{logs}")))
            }
        }
    }

    /// The node, if started with [`Options::node`].
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// The node, mutable (to check its processes).
    pub fn node_mut(&mut self) -> Option<&mut Node> {
        self.node.as_mut()
    }

    /// Time from creating the state dir (PKI generation included) to a ready
    /// control plane (API server ready, controller manager working).
    pub fn start_time(&self) -> Duration {
        self.startup.total
    }

    /// Start-up milestones, each measured from spawning etcd.
    pub fn startup(&self) -> &Startup {
        &self.startup
    }

    /// The state directory (PKI, kubeconfigs, logs, etcd data).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The binaries in use.
    pub fn bins(&self) -> &BinDir {
        &self.bins
    }

    /// `https://127.0.0.1:<port>` (with a node: the node address).
    pub fn server_url(&self) -> String {
        format!("https://{}:{}", self.apiserver_host, self.apiserver_port)
    }

    /// `http://127.0.0.1:<port>` of etcd.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_client_port)
    }

    /// The CA certificate (PEM) that signed the serving and client certificates.
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The admin kubeconfig (user in `system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin.kubeconfig
    }

    /// The real `kubectl`, acting as the admin, with a discovery cache of
    /// this control plane's own: kubectl's default, `~/.kube/cache/<host>_<port>`,
    /// would be read by a later control plane on the same port (ports are
    /// reused; with a node the host is always the node's address), and it
    /// writes into the user's home. Add the subcommand and its arguments.
    pub fn kubectl(&self) -> std::process::Command {
        let mut kubectl = std::process::Command::new(self.bins.kubectl());
        kubectl
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .arg("--cache-dir")
            .arg(self.kube_cache_dir());
        kubectl
    }

    /// The discovery and HTTP cache [`Self::kubectl`] gives kubectl, in
    /// the state directory. For a kubectl run another way, pass it as
    /// `--cache-dir`; for helm, which has no such flag, as `KUBECACHEDIR`
    /// (both read it through k8s.io/cli-runtime).
    pub fn kube_cache_dir(&self) -> PathBuf {
        self.root.join("kubectl-cache")
    }

    /// The admin user.
    pub fn admin(&self) -> &User {
        &self.admin
    }

    /// A kube client acting as the admin.
    pub async fn client(&self) -> Result<Client> {
        self.admin.client().await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "kseal-testenv: test failed; control plane state in {}\n{}",
                self.root.display(),
                self.log_tails(TAIL_LINES)
            );
        }
        // The node first (its Drop prints its logs on panic and undoes its
        // host changes).
        drop(self.node.take());
        self.controller_manager.kill();
        self.apiserver.kill();
        self.etcd.kill();
        if self.options.keep_dir
            && let Some(dir) = self.dir.take()
        {
            eprintln!("kseal-testenv: keeping {}", dir.keep().display());
        }
    }
}

/// The state directory (with its `pki`, `logs`, `users`, `etcd-data` and
/// `apiserver-certs`), the three reserved ports, and where everything
/// goes. With a node, the API server listens on the node address (on lo)
/// so pods reach it; otherwise on 127.0.0.1.
fn prepare(options: &Options) -> Result<(tempfile::TempDir, [Port; 3], Layout)> {
    let apiserver_host = if options.node {
        node::net::NODE_IP.parse()?
    } else {
        Ipv4Addr::LOCALHOST
    };
    let dir = tempfile::Builder::new()
        .prefix("kseal-testenv-")
        .tempdir()
        .context("creating the control plane's temp dir")?;
    let root = dir.path().to_owned();
    for sub in ["pki", "logs", "users", "etcd-data", "apiserver-certs"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    // Reserved for as long as the control plane lives (restarts of a
    // component bind the same ports again).
    let ports = [ports::reserve()?, ports::reserve()?, ports::reserve()?];
    let [etcd_client_port, etcd_peer_port, apiserver_port] = ports.each_ref().map(Port::get);
    let layout = Layout {
        root,
        apiserver_host,
        etcd_client_port,
        etcd_peer_port,
        apiserver_port,
        node: options.node,
    };
    Ok((dir, ports, layout))
}

/// Binds the API server's kubelet client to `system:kubelet-api-admin`:
/// what kubeadm grants it (logs, exec, port-forward, node proxy; the
/// kubelet asks by webhook).
async fn grant_kubelet_access(admin: &Client) -> Result<()> {
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kseal-testenv:apiserver-kubelet-client"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [{
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "User",
            "name": KUBELET_CLIENT_USER,
        }],
    }))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&kube::api::PostParams::default(), &binding)
        .await
        .context("granting the API server access to the kubelet")?;
    Ok(())
}
