//! The control plane: etcd, kube-apiserver and kube-controller-manager as
//! local processes, with a generated PKI and kubeconfigs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::bins::{self, BinDir};
use crate::certs::{self, Ca};
use crate::node::{self, Node, NodeLock, NodeStartup};
use crate::ports::{self, Port};
use crate::process::Component;

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

/// A user minted by [`ControlPlane::mint_user`]: a client certificate with
/// CN = name and one O per group, and a kubeconfig using it.
#[derive(Debug, Clone)]
pub struct User {
    /// The user name (certificate CN).
    pub name: String,
    /// The groups (certificate O attributes).
    pub groups: Vec<String>,
    /// A kubeconfig file for this user.
    pub kubeconfig: PathBuf,
}

impl User {
    /// A kube client acting as this user.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }
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

impl ControlPlane {
    /// Builds the binaries if needed and starts a control plane with default
    /// options; returns once the API server is ready and the controller
    /// manager works.
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// `count` control planes running at once (two clusters for a test of
    /// a fleet), each with default options. They take one slot of
    /// [`slots`] together: a slot per control plane would wait forever
    /// with the default of one.
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
        // With a node, the API server listens on the node address (on lo)
        // so pods reach it; otherwise on 127.0.0.1.
        let apiserver_host = if options.node {
            node::net::NODE_IP.parse()?
        } else {
            Ipv4Addr::LOCALHOST
        };
        let bins = tokio::task::spawn_blocking(bins::ensure)
            .await
            .context("binary build task panicked")??;
        let begin = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("kseal-testenv-")
            .tempdir()
            .context("creating the control plane's temp dir")?;
        let root = dir.path().to_owned();
        for sub in ["pki", "logs", "users", "etcd-data", "apiserver-certs"] {
            fs::create_dir_all(root.join(sub))?;
        }

        // PKI.
        let pki = root.join("pki");
        let ca = Ca::new("kseal-testenv-ca")?;
        fs::write(pki.join("ca.crt"), ca.cert_pem())?;
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let serving = ca.serving_cert(
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            &[
                localhost,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V4(apiserver_host),
            ],
        )?;
        fs::write(pki.join("apiserver.crt"), &serving.cert_pem)?;
        fs::write(pki.join("apiserver.key"), &serving.key_pem)?;
        let (sa_key, sa_pub) = certs::service_account_key()?;
        fs::write(pki.join("sa.key"), sa_key)?;
        fs::write(pki.join("sa.pub"), sa_pub)?;

        // Reserved for as long as the control plane lives (restarts of a
        // component bind the same ports again).
        let ports = [ports::reserve()?, ports::reserve()?, ports::reserve()?];
        let [etcd_client_port, etcd_peer_port, apiserver_port] = ports.each_ref().map(Port::get);
        let server = format!("https://{apiserver_host}:{apiserver_port}");

        let admin_cert = ca.client_cert(ADMIN_USER, &["system:masters"])?;
        let admin_kubeconfig = root.join("admin.kubeconfig");
        write_kubeconfig(
            &admin_kubeconfig,
            &server,
            ca.cert_pem(),
            ADMIN_USER,
            &admin_cert,
        )?;
        let kcm_cert = ca.client_cert("system:kube-controller-manager", &[])?;
        let kcm_kubeconfig = root.join("kube-controller-manager.kubeconfig");
        write_kubeconfig(
            &kcm_kubeconfig,
            &server,
            ca.cert_pem(),
            "system:kube-controller-manager",
            &kcm_cert,
        )?;

        let audit_policy = root.join("audit-policy.yaml");
        fs::write(&audit_policy, AUDIT_POLICY)?;

        let etcd_url = format!("http://127.0.0.1:{etcd_client_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd = Component::new(
            "etcd",
            bins.etcd(),
            args([
                "--name=testenv".to_owned(),
                format!("--data-dir={}", root.join("etcd-data").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=testenv={peer_url}"),
                "--initial-cluster-state=new".to_owned(),
                // Durability against power loss is irrelevant here; SIGKILL
                // still loses nothing the kernel has accepted.
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ]),
            root.join("logs/etcd.log"),
        );

        let mut apiserver_args = args([
            format!("--etcd-servers={etcd_url}"),
            format!("--bind-address={apiserver_host}"),
            format!("--advertise-address={apiserver_host}"),
            format!("--secure-port={apiserver_port}"),
            format!("--cert-dir={}", root.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
            format!(
                "--tls-private-key-file={}",
                pki.join("apiserver.key").display()
            ),
            format!("--client-ca-file={}", pki.join("ca.crt").display()),
            "--authorization-mode=Node,RBAC".to_owned(),
            "--anonymous-auth=false".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!(
                "--service-account-key-file={}",
                pki.join("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.join("sa.key").display()
            ),
            "--allow-privileged=true".to_owned(),
            // Without a bound, SIGTERM waits for the controller
            // manager's open watches and takes longer than 40 s.
            "--shutdown-watch-termination-grace-period=2s".to_owned(),
            "--profiling=false".to_owned(),
            // Who asked for what (see `audited_requests`).
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", root.join(AUDIT_LOG).display()),
        ]);
        if options.node {
            // Pods reach the API server through the `kubernetes` Service,
            // whose endpoint is the advertised node address. The API server
            // authenticates to the kubelet with a client certificate and
            // checks the kubelet's serving certificate.
            let kubelet_client = ca.client_cert(KUBELET_CLIENT_USER, &[])?;
            fs::write(
                pki.join("apiserver-kubelet-client.crt"),
                &kubelet_client.cert_pem,
            )?;
            fs::write(
                pki.join("apiserver-kubelet-client.key"),
                &kubelet_client.key_pem,
            )?;
            apiserver_args.extend(args([
                "--endpoint-reconciler-type=lease".to_owned(),
                format!(
                    "--kubelet-client-certificate={}",
                    pki.join("apiserver-kubelet-client.crt").display()
                ),
                format!(
                    "--kubelet-client-key={}",
                    pki.join("apiserver-kubelet-client.key").display()
                ),
                format!(
                    "--kubelet-certificate-authority={}",
                    pki.join("ca.crt").display()
                ),
                "--kubelet-preferred-address-types=InternalIP".to_owned(),
                "--enable-admission-plugins=NodeRestriction".to_owned(),
            ]));
        } else {
            // The `kubernetes` Service cannot point at a loopback address;
            // nothing runs in-cluster here, so skip it rather than log an
            // error every 10 s.
            apiserver_args.push("--endpoint-reconciler-type=none".into());
        }
        let apiserver = Component::new(
            "kube-apiserver",
            bins.kube_apiserver(),
            apiserver_args,
            root.join("logs/kube-apiserver.log"),
        );
        let mut kcm_controllers = "garbage-collector-controller,namespace-controller,\
             serviceaccount-controller,serviceaccount-token-controller,\
             clusterrole-aggregation-controller"
            .to_owned();
        if options.node {
            // What Deployments, Services and a node need.
            kcm_controllers.push_str(
                ",endpoints-controller,endpointslice-controller,\
                 endpointslice-mirroring-controller,root-ca-certificate-publisher-controller,\
                 deployment-controller,replicaset-controller,node-lifecycle-controller,\
                 disruption-controller",
            );
        }

        let controller_manager = Component::new(
            "kube-controller-manager",
            bins.kube_controller_manager(),
            args([
                format!("--kubeconfig={}", kcm_kubeconfig.display()),
                format!("--controllers={kcm_controllers}"),
                format!(
                    "--service-account-private-key-file={}",
                    pki.join("sa.key").display()
                ),
                format!("--root-ca-file={}", pki.join("ca.crt").display()),
                // Each controller runs as its own ServiceAccount with the
                // bootstrap RBAC roles, as in kubeadm clusters.
                "--use-service-account-credentials=true".to_owned(),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                "--profiling=false".to_owned(),
            ]),
            root.join("logs/kube-controller-manager.log"),
        );

        let mut cp = Self {
            node: None,
            controller_manager,
            apiserver,
            etcd,
            dir: Some(dir),
            root,
            ca,
            bins,
            apiserver_host,
            apiserver_port,
            etcd_client_port,
            admin: User {
                name: ADMIN_USER.to_owned(),
                groups: vec!["system:masters".to_owned()],
                kubeconfig: admin_kubeconfig,
            },
            options,
            startup: Startup::default(),
            users: AtomicUsize::new(0),
            _ports: ports,
            _slot: slot,
        };
        match cp.boot(begin).await {
            Ok(()) => {}
            Err(e) => {
                let logs = cp.log_tails(TAIL_LINES);
                return Err(e.context(format!("starting the control plane failed\n{logs}")));
            }
        }
        if let Some(lock) = node_lock {
            cp.start_node(lock).await?;
        }
        Ok(cp)
    }

    async fn start_node(&mut self, lock: NodeLock) -> Result<()> {
        use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
        // What kubeadm grants the API server's kubelet client: logs, exec,
        // port-forward, node proxy (the kubelet asks by webhook).
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
        let admin = self.client().await?;
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(&kube::api::PostParams::default(), &binding)
            .await
            .context("granting the API server access to the kubelet")?;
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

    async fn boot(&mut self, begin: Instant) -> Result<()> {
        let spawn = Instant::now();
        self.start_etcd().await?;
        self.startup.etcd_healthy = spawn.elapsed();
        self.start_apiserver().await?;
        self.startup.apiserver_ready = spawn.elapsed();
        self.start_controller_manager().await?;
        self.startup.controller_manager_ready = spawn.elapsed();
        self.startup.total = begin.elapsed();
        Ok(())
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
    /// Requests on Secrets and SealedSecrets that `username` made, as the
    /// API server's audit log has them, counted by (verb, resource,
    /// subresource) with the verbs of `apiserver_request_total` (`GET`,
    /// `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`). Counting one
    /// client's requests, unlike the API server's own metrics, leaves out
    /// what the controller manager does meanwhile (its garbage collector
    /// reads owners it has not seen yet). Only requests that completed
    /// (or, for watches, started) are in the log.
    ///
    /// Errors when the log cannot be read; a line that is not an audit
    /// event is skipped (the log may end in a line still being written).
    pub fn audited_requests(
        &self,
        username: &str,
    ) -> Result<BTreeMap<(String, String, String), u64>> {
        let path = self.root.join(AUDIT_LOG);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            // A watch is logged when it starts and again when it ends;
            // every other request once, when it completes.
            let once = match event["stage"].as_str() {
                Some("ResponseStarted") => true,
                Some("ResponseComplete" | "Panic") => event["verb"] != "watch",
                _ => false,
            };
            if !once || event["user"]["username"] != username {
                continue;
            }
            let verb = match event["verb"].as_str().unwrap_or_default() {
                "get" => "GET",
                "list" => "LIST",
                "watch" => "WATCH",
                "create" => "POST",
                "update" => "PUT",
                "patch" => "PATCH",
                "delete" | "deletecollection" => "DELETE",
                other => other,
            };
            let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
            let key = (
                verb.to_owned(),
                text(&event["objectRef"]["resource"]),
                text(&event["objectRef"]["subresource"]),
            );
            *counts.entry(key).or_default() += 1;
        }
        Ok(counts)
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin.kubeconfig
    }

    /// The admin user.
    pub fn admin(&self) -> &User {
        &self.admin
    }

    /// A kube client acting as the admin.
    pub async fn client(&self) -> Result<Client> {
        self.admin.client().await
    }

    /// Mints a client certificate for `name` in `groups` and writes a
    /// kubeconfig for it. The user has no permissions beyond what RBAC grants
    /// that name or those groups (plus `system:authenticated`).
    pub fn mint_user(&self, name: &str, groups: &[&str]) -> Result<User> {
        let cert = self.ca.client_cert(name, groups)?;
        let n = self.users.fetch_add(1, Ordering::Relaxed);
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self
            .root
            .join("users")
            .join(format!("{n:03}-{file}.kubeconfig"));
        write_kubeconfig(&path, &self.server_url(), self.ca.cert_pem(), name, &cert)?;
        Ok(User {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            kubeconfig: path,
        })
    }

    /// A kube client for a freshly minted user (see [`ControlPlane::mint_user`]).
    pub async fn client_for_user(&self, name: &str, groups: &[&str]) -> Result<Client> {
        self.mint_user(name, groups)?.client().await
    }

    /// Mints the identity of ServiceAccount `namespace/name`: user
    /// `system:serviceaccount:<ns>:<name>` in groups `system:serviceaccounts`
    /// and `system:serviceaccounts:<ns>`, which is what RBAC matches for a
    /// ServiceAccount subject. (The ServiceAccount object itself need not exist.)
    pub fn mint_service_account(&self, namespace: &str, name: &str) -> Result<User> {
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let ns_group = format!("system:serviceaccounts:{namespace}");
        self.mint_user(&user, &["system:serviceaccounts", &ns_group])
    }

    /// Starts etcd (again, with the same data dir and ports) and waits until
    /// it reports healthy.
    pub async fn start_etcd(&mut self) -> Result<()> {
        self.etcd.start()?;
        let deadline = Instant::now() + self.options.ready_timeout;
        loop {
            self.etcd.check_alive()?;
            if etcd_healthy(self.etcd_client_port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd not healthy after {:?}; last lines of its log:\n{}",
                    self.options.ready_timeout,
                    self.etcd.log_tail(TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops etcd gracefully (SIGTERM, then SIGKILL after 10 s).
    pub fn stop_etcd(&mut self) {
        self.etcd.terminate(Duration::from_secs(10));
    }

    /// Kills etcd with SIGKILL.
    pub fn kill_etcd(&mut self) {
        self.etcd.kill();
    }

    /// Starts kube-apiserver (again, same port and flags) and waits for
    /// `/readyz`.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        self.apiserver.start()?;
        self.wait_apiserver_ready().await
    }

    /// Stops kube-apiserver gracefully (SIGTERM, then SIGKILL after 15 s;
    /// it normally exits within 2 s).
    pub fn stop_apiserver(&mut self) {
        self.apiserver.terminate(Duration::from_secs(15));
    }

    /// Kills kube-apiserver with SIGKILL.
    pub fn kill_apiserver(&mut self) {
        self.apiserver.kill();
    }

    /// Starts kube-controller-manager and waits until it works (the
    /// ServiceAccount controller has created `default/default`).
    pub async fn start_controller_manager(&mut self) -> Result<()> {
        self.controller_manager.start()?;
        let client = self.client().await?;
        let sas: Api<ServiceAccount> = Api::namespaced(client, "default");
        let deadline = Instant::now() + self.options.ready_timeout;
        loop {
            self.controller_manager.check_alive()?;
            if let Ok(Some(_)) = sas.get_opt("default").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-controller-manager did not create ServiceAccount default/default \
                     within {:?}; last lines of its log:\n{}",
                    self.options.ready_timeout,
                    self.controller_manager.log_tail(TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops kube-controller-manager gracefully.
    pub fn stop_controller_manager(&mut self) {
        self.controller_manager.terminate(Duration::from_secs(10));
    }

    /// Waits until `/readyz` answers `ok` (as the admin).
    pub async fn wait_apiserver_ready(&mut self) -> Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + self.options.ready_timeout;
        let mut last;
        loop {
            self.apiserver.check_alive()?;
            let req = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver /readyz not ok after {:?} (last answer: {last}); \
                     last lines of its log:\n{}",
                    self.options.ready_timeout,
                    self.apiserver.log_tail(TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The log files of etcd, kube-apiserver and kube-controller-manager.
    pub fn log_paths(&self) -> [&Path; 3] {
        [
            self.etcd.log_path(),
            self.apiserver.log_path(),
            self.controller_manager.log_path(),
        ]
    }

    /// The last `n` lines of every component's log, with headers.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for c in [&self.etcd, &self.apiserver, &self.controller_manager] {
            let _ = writeln!(
                out,
                "----- last {n} lines of {} ({}) -----\n{}",
                c.name(),
                c.log_path().display(),
                c.log_tail(n)
            );
        }
        out
    }

    /// Fails (with the log tail) if a component that should be running has
    /// exited.
    pub fn check_processes(&mut self) -> Result<()> {
        self.etcd.check_alive()?;
        self.apiserver.check_alive()?;
        self.controller_manager.check_alive()?;
        if let Some(node) = &mut self.node {
            node.check_processes()?;
        }
        Ok(())
    }

    /// Stops everything (the node, controller manager, API server, etcd, in
    /// that order).
    pub fn stop(&mut self) {
        if let Some(node) = self.node.take()
            && let Err(e) = node.stop()
        {
            eprintln!("kseal-testenv: the node's teardown was incomplete: {e:#}");
        }
        self.controller_manager.terminate(Duration::from_secs(5));
        self.apiserver.terminate(Duration::from_secs(10));
        self.etcd.terminate(Duration::from_secs(5));
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

/// The API server's audit log, in the state directory.
const AUDIT_LOG: &str = "logs/audit.log";

/// What the audit log holds: the metadata (never a body, so no Secret value)
/// of every request on Secrets and SealedSecrets, once, when it completes
/// (a watch: when it starts).
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets"]
      - group: "kseal.dev"
        resources: ["sealedsecrets", "sealedsecrets/status"]
  - level: None
"#;

fn args<const N: usize>(a: [String; N]) -> Vec<OsString> {
    a.into_iter().map(OsString::from).collect()
}

/// `GET /health` on etcd's client URL with a bare HTTP/1.0 request.
async fn etcd_healthy(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(resp)) => resp.starts_with("HTTP/1.") && resp.contains(r#""health":"true""#),
        _ => false,
    }
}

/// Writes a kubeconfig with the CA and the client certificate embedded.
pub(crate) fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    cert: &certs::CertKey,
) -> Result<()> {
    let user_json = serde_json::to_string(user)?;
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kseal-testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user_json}\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n\
         contexts:\n\
         - name: kseal-testenv\n  context:\n    cluster: kseal-testenv\n    user: {user_json}\n    namespace: default\n\
         current-context: kseal-testenv\n",
        ca = B64.encode(ca_pem),
        crt = B64.encode(&cert.cert_pem),
        key = B64.encode(&cert.key_pem),
    );
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A kube client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Client::try_from(config).context("building a kube client")
}
