//! One real worker node joined to a [`ControlPlane`](crate::ControlPlane):
//! containerd + runc + the CNI bridge (Debian packages), the kubelet,
//! kube-proxy and kube-scheduler (built from the pinned module), and a pod
//! sandbox image built locally. Nothing is pulled: images are imported.
//!
//! One node per machine: a lock file ([`LOCK_PATH`]) is held while a node is
//! up, and everything the node changes on the host is recorded first
//! ([`RECORD_PATH`]) and undone when it stops, or by the next start if the
//! process that ran it was killed.

pub mod config;
pub mod host;
pub mod net;
pub mod pause;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::{Api, Client};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::bins::BinDir;
use crate::certs::Ca;
use crate::process::Component;

pub use host::HostSnapshot;

/// The node's name (and its identity `system:node:kseal-node`).
pub const NODE_NAME: &str = "kseal-node";

/// Held (flock) while a node is up on this machine.
pub const LOCK_PATH: &str = "/run/lock/kseal-testenv-node.lock";

/// What the running node changed on the host (JSON), removed after teardown.
pub const RECORD_PATH: &str = "/run/lock/kseal-testenv-node.json";

/// The Debian packages the node needs (installed on first use, see
/// [`crate::system`]; `.ci/run` names the same list).
pub const PACKAGES: [&str; 8] = [
    "iproute2",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "nftables",
    "gcc",
    "libc6-dev",
];

/// How long the node's start-up steps took (each from the node's start).
#[derive(Debug, Clone, Default)]
pub struct NodeStartup {
    /// containerd answering on its socket.
    pub containerd_ready: Duration,
    /// The pause image built (or found in the cache) and imported.
    pub pause_imported: Duration,
    /// The Node object `Ready` without the not-ready taint.
    pub node_ready: Duration,
    /// kube-proxy has programmed the `kubernetes` Service.
    pub proxy_ready: Duration,
}

/// The machine-wide node lock and the host prepared for a node (the node
/// address on `lo`, the egress rule), taken before the control plane starts:
/// a second node fails at once, and the API server can bind the node
/// address. Dropping it undoes the host changes.
pub struct NodeLock {
    file: Option<fs::File>,
    record: Option<host::Record>,
    dir: PathBuf,
    _slot: SemaphorePermit<'static>,
}

impl std::fmt::Debug for NodeLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeLock")
    }
}

/// Node tests in one process wait for each other; across processes the lock
/// file fails fast with a clear message.
fn in_process() -> &'static Semaphore {
    static ONE: OnceLock<Semaphore> = OnceLock::new();
    ONE.get_or_init(|| Semaphore::new(1))
}

impl NodeLock {
    /// Takes the lock, cleans up after a node that was not stopped, and
    /// checks the prerequisites and that the node's ranges are free.
    pub async fn acquire() -> Result<Self> {
        check_prerequisites()?;
        let slot = in_process().acquire().await.context("node slot closed")?;
        let file = lock_file()?;
        if let Ok(text) = fs::read_to_string(RECORD_PATH) {
            crate::say(&format!(
                "kseal-testenv: cleaning up after a node that was not stopped ({RECORD_PATH})"
            ));
            let record: host::Record =
                serde_json::from_str(&text).with_context(|| format!("reading {RECORD_PATH}"))?;
            record
                .teardown()
                .context("cleaning up after the previous node")?;
            fs::remove_file(RECORD_PATH)?;
        }
        net::check_ranges_free()?;
        let dir = tempfile::Builder::new()
            .prefix("kseal-testenv-node-")
            .tempdir()
            .context("creating the node's state dir")?
            .keep();
        let record = host::Record::take(&dir)?;
        save_record(&record)?;
        let mut lock = Self {
            file: Some(file),
            record: Some(record),
            dir,
            _slot: slot,
        };
        lock.prepare_host()?;
        Ok(lock)
    }

    fn prepare_host(&mut self) -> Result<()> {
        // The node address on lo.
        host::run(
            "ip",
            &["addr", "add", &format!("{}/32", net::NODE_IP), "dev", "lo"],
        )?;
        if let Some(r) = &mut self.record {
            r.lo_address_added = true;
            save_record(r)?;
        }
        // Pod traffic may only leave through the bridge (mangle FORWARD runs
        // before kube-proxy's filter rules, whose order it manages).
        let c = net::EGRESS_CHAIN;
        host::run("iptables", &["-t", "mangle", "-N", c])?;
        host::run(
            "iptables",
            &[
                "-t",
                "mangle",
                "-A",
                c,
                "-s",
                net::POD_CIDR,
                "!",
                "-o",
                net::BRIDGE,
                "-m",
                "comment",
                "--comment",
                "kseal-testenv: pod traffic stays on this machine",
                "-j",
                "DROP",
            ],
        )?;
        host::run("iptables", &["-t", "mangle", "-I", "FORWARD", "1", "-j", c])?;
        Ok(())
    }

    /// Undoes the host changes and releases the lock.
    fn release(&mut self) -> Result<()> {
        let result = match self.record.take() {
            Some(record) => {
                let r = record.teardown();
                if r.is_ok() {
                    let _ = fs::remove_file(RECORD_PATH);
                }
                r
            }
            None => Ok(()),
        };
        drop(self.file.take());
        result
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!(
                "kseal-testenv: the node's teardown was incomplete ({e:#}); the next node start \
                 retries it from {RECORD_PATH}"
            );
        }
    }
}

/// Takes the machine-wide lock file (no waiting): fails with a clear message
/// naming the holder when a node is already up on this machine.
pub fn lock_file() -> Result<fs::File> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(LOCK_PATH)
        .with_context(|| format!("opening {LOCK_PATH}"))?;
    if file.try_lock().is_err() {
        let holder = fs::read_to_string(LOCK_PATH).unwrap_or_default();
        bail!(
            "a kseal-testenv node is already up on this machine (process {} holds \
             {LOCK_PATH}); only one node can run per machine: stop the other one \
             (a running test or `cargo xtask cluster up --node`) first",
            holder.trim()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// For tests: `true` when a node can run here (root, cgroup v1 or v2 mounted,
/// the Debian packages installed or installable). Otherwise a loud SKIPPING
/// message and `false`, or a panic under `CI=true`, so CI never skips.
pub fn node_or_skip() -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let result = if !root {
        Err(anyhow::anyhow!(
            "a node needs root (it runs containerd and the kubelet)"
        ))
    } else if !Path::new("/sys/fs/cgroup").is_dir() {
        Err(anyhow::anyhow!("no /sys/fs/cgroup"))
    } else {
        check_prerequisites()
    };
    match result {
        Ok(()) => true,
        Err(e) if crate::is_ci() => panic!("CI=true and a node cannot run here: {e:#}"),
        Err(e) => {
            crate::say(&format!(
                "\n!!!!! SKIPPING end-to-end test on a real node: {e:#}\n!!!!! under CI=true \
                 this is a failure.\n"
            ));
            false
        }
    }
}

fn check_prerequisites() -> Result<()> {
    crate::system::ensure_debian_packages(&PACKAGES)?;
    let mut missing = Vec::new();
    for tool in [
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "iptables",
        "nft",
        "gcc",
        "nsenter",
        "ip",
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()));
        if !found {
            missing.push(tool.to_owned());
        }
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        if !Path::new(net::CNI_BIN_DIR).join(plugin).is_file() {
            missing.push(format!("{}/{plugin}", net::CNI_BIN_DIR));
        }
    }
    if !missing.is_empty() {
        bail!(
            "a kseal-testenv node needs {} (missing); install them with: {}",
            missing.join(", "),
            crate::system::install_command(&PACKAGES)
        );
    }
    Ok(())
}

/// The node's configuration and identities in `dir`: containerd's (with
/// the sandbox image `pause_image`), the CNI network's, the kubelet's (a
/// client certificate as `system:node:<name>`, a serving certificate for
/// the node address), kube-proxy's and the scheduler's kubeconfigs.
fn write_config(dir: &Path, cx: &NodeContext<'_>, pause_image: &str) -> Result<()> {
    fs::write(dir.join("resolv.conf"), "")?;
    fs::write(
        dir.join("containerd.toml"),
        config::containerd(dir, pause_image),
    )?;
    fs::write(dir.join("cni/net.d/10-kseal.conflist"), config::cni(dir))?;
    let pki = dir.join("pki");
    let node_user = format!("system:node:{NODE_NAME}");
    let kubelet_client = cx.ca.client_cert(&node_user, &["system:nodes"])?;
    crate::certs::write_kubeconfig(
        &dir.join("kubelet.kubeconfig"),
        cx.server,
        cx.ca.cert_pem(),
        &node_user,
        &kubelet_client,
    )?;
    let serving = cx.ca.serving_cert(
        &node_user,
        &[NODE_NAME],
        &[std::net::IpAddr::V4(net::NODE_IP.parse()?)],
    )?;
    fs::write(pki.join("kubelet.crt"), &serving.cert_pem)?;
    fs::write(pki.join("kubelet.key"), &serving.key_pem)?;
    fs::write(
        dir.join("kubelet.yaml"),
        config::kubelet(&config::KubeletPaths {
            dir,
            ca: cx.ca_file,
            cert: &pki.join("kubelet.crt"),
            key: &pki.join("kubelet.key"),
        }),
    )?;
    for (user, file) in [
        ("system:kube-proxy", "kube-proxy.kubeconfig"),
        ("system:kube-scheduler", "kube-scheduler.kubeconfig"),
    ] {
        let cert = cx.ca.client_cert(user, &[])?;
        crate::certs::write_kubeconfig(&dir.join(file), cx.server, cx.ca.cert_pem(), user, &cert)?;
    }
    fs::write(
        dir.join("kube-proxy.yaml"),
        config::kube_proxy(&dir.join("kube-proxy.kubeconfig"), NODE_NAME),
    )?;
    Ok(())
}

/// What the node needs from its control plane.
pub(crate) struct NodeContext<'a> {
    pub ca: &'a Ca,
    pub ca_file: &'a Path,
    pub server: &'a str,
    pub bins: &'a BinDir,
    pub admin: Client,
    pub timeout: Duration,
}

/// A running node. Dropping it stops every process and undoes every change
/// on the host (see [`host::Record::teardown`]).
pub struct Node {
    // Processes first: Drop stops them before the teardown.
    kubelet: Component,
    kube_proxy: Component,
    scheduler: Component,
    containerd: Component,
    dir: PathBuf,
    bins: BinDir,
    startup: NodeStartup,
    pause_image: String,
    lock: Option<NodeLock>,
}

impl Node {
    pub(crate) async fn start(lock: NodeLock, cx: NodeContext<'_>) -> Result<Self> {
        let begin = Instant::now();
        let dir = lock.dir.clone();
        for sub in [
            "pki",
            "logs",
            "cni/net.d",
            "cni/ipam",
            "kubelet",
            "pod-logs",
            "volume-plugins",
            "images",
        ] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let log = |n: &str| dir.join("logs").join(format!("{n}.log"));
        let d = |p: &str| dir.join(p);
        let mut node = Self {
            kubelet: Component::new(
                "kubelet",
                cx.bins.kubelet(),
                vec![
                    format!("--config={}", d("kubelet.yaml").display()).into(),
                    format!("--kubeconfig={}", d("kubelet.kubeconfig").display()).into(),
                    format!("--root-dir={}", d("kubelet").display()).into(),
                    format!("--cert-dir={}", d("pki").display()).into(),
                    format!("--hostname-override={NODE_NAME}").into(),
                    format!("--node-ip={}", net::NODE_IP).into(),
                ],
                log("kubelet"),
            ),
            kube_proxy: Component::new(
                "kube-proxy",
                cx.bins.kube_proxy(),
                vec![format!("--config={}", d("kube-proxy.yaml").display()).into()],
                log("kube-proxy"),
            ),
            scheduler: Component::new(
                "kube-scheduler",
                cx.bins.kube_scheduler(),
                vec![
                    format!("--kubeconfig={}", d("kube-scheduler.kubeconfig").display()).into(),
                    "--leader-elect=false".into(),
                    "--secure-port=0".into(),
                ],
                log("kube-scheduler"),
            ),
            containerd: Component::new(
                "containerd",
                PathBuf::from("containerd"),
                vec![
                    "--config".into(),
                    d("containerd.toml").into_os_string(),
                    "--log-level=warn".into(),
                ],
                log("containerd"),
            ),
            dir: dir.clone(),
            bins: cx.bins.clone(),
            startup: NodeStartup::default(),
            pause_image: String::new(),
            lock: Some(lock),
        };
        match node.boot(begin, &cx).await {
            Ok(()) => Ok(node),
            Err(e) => Err(e.context(format!("starting the node failed\n{}", node.log_tails(30)))),
        }
    }

    /// Writes the configuration, then starts containerd (importing the
    /// sandbox image), the scheduler, kube-proxy and the kubelet, and waits
    /// until the node is Ready and kube-proxy has programmed the
    /// `kubernetes` Service; records the milestones from `begin`.
    async fn boot(&mut self, begin: Instant, cx: &NodeContext<'_>) -> Result<()> {
        let pause = tokio::task::spawn_blocking(pause::ensure)
            .await
            .context("pause build task panicked")??;
        self.pause_image = pause.name.clone();
        write_config(&self.dir, cx, &pause.name)?;

        // containerd, then the sandbox image.
        self.containerd.start()?;
        let deadline = Instant::now() + cx.timeout;
        loop {
            self.containerd.check_alive()?;
            if self.ctr(&["version"]).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("containerd not answering after {:?}", cx.timeout);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.startup.containerd_ready = begin.elapsed();
        self.import_image(&pause.archive)?;
        self.startup.pause_imported = begin.elapsed();

        self.scheduler.start()?;
        self.kube_proxy.start()?;
        self.kubelet.start()?;

        let nodes: Api<NodeObject> = Api::all(cx.admin.clone());
        let deadline = Instant::now() + cx.timeout;
        loop {
            self.check_processes()?;
            if let Ok(Some(n)) = nodes.get_opt(NODE_NAME).await
                && node_schedulable(&n)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {NODE_NAME} not Ready within {:?}", cx.timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.startup.node_ready = begin.elapsed();
        // kube-proxy's own wait: it may start syncing only once the node is
        // Ready.
        let deadline = Instant::now() + cx.timeout;
        loop {
            self.check_processes()?;
            let nat = host::run("iptables", &["-t", "nat", "-S"]).unwrap_or_default();
            if nat.contains("default/kubernetes:https") && nat.contains(net::NODE_IP) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-proxy did not program the kubernetes Service within {:?}",
                    cx.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.startup.proxy_ready = begin.elapsed();
        Ok(())
    }

    /// Start-up timings.
    pub fn startup(&self) -> &NodeStartup {
        &self.startup
    }

    /// The node's state dir (containerd, kubelet, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The pod sandbox image's name.
    pub fn pause_image(&self) -> &str {
        &self.pause_image
    }

    /// Runs `ctr` against the node's containerd in the `k8s.io` namespace
    /// (the CRI's); returns its stdout.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        let sock = self.containerd_socket();
        let mut all = vec![
            "--address",
            sock.to_str().unwrap_or_default(),
            "-n",
            "k8s.io",
        ];
        all.extend_from_slice(args);
        host::run("ctr", &all)
    }

    /// Imports an OCI image archive (see [`crate::oci`]) into the node's
    /// containerd, unpacked for the native snapshotter; pods can then use it
    /// with `imagePullPolicy: Never`.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let path = archive.to_str().context("non-UTF-8 image path")?;
        self.ctr(&["images", "import", "--snapshotter", "native", path])
            .map(drop)
            .with_context(|| format!("importing {path}"))
    }

    /// Lets the node's containerd pull from the plain-HTTP registry at
    /// `host` (`127.0.0.1:PORT`, loopback only: the node never pulls from
    /// anywhere else).
    pub fn trust_registry(&self, host: &str) -> Result<()> {
        ensure!(
            host.starts_with("127.0.0.1:") && host[10..].parse::<u16>().is_ok(),
            "only a registry on loopback: {host}"
        );
        let dir = self.dir.join("containerd/certs.d").join(host);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join("hosts.toml"), config::registry_hosts(host))
            .with_context(|| format!("writing {}/hosts.toml", dir.display()))
    }

    /// Runs a command in the network namespace of the pod with IP `pod_ip`
    /// (found through the processes in the kubepods cgroups), e.g.
    /// `["ip", "route"]`; returns stdout. Reads only: tests never send
    /// traffic anywhere from here.
    pub fn in_pod_netns(&self, pod_ip: &str, args: &[&str]) -> Result<String> {
        let mut seen = std::collections::BTreeSet::new();
        let hierarchies = self
            .lock
            .as_ref()
            .and_then(|l| l.record.as_ref())
            .map(|r| r.cgroup_hierarchies.clone())
            .unwrap_or_default();
        for h in &hierarchies {
            let root = h.join(host::KUBEPODS);
            let mut stack = vec![root];
            while let Some(d) = stack.pop() {
                if let Ok(text) = fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/net")) else {
                            continue;
                        };
                        if !seen.insert(ns) {
                            continue;
                        }
                        let netns = format!("--net=/proc/{pid}/ns/net");
                        let addrs = host::run("nsenter", &[&netns, "ip", "-4", "-o", "addr"])?;
                        if addrs.contains(&format!("inet {pod_ip}/")) {
                            let mut all = vec![netns.as_str()];
                            all.extend_from_slice(args);
                            return host::run("nsenter", &all);
                        }
                    }
                }
                if let Ok(entries) = fs::read_dir(&d) {
                    stack.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
            }
        }
        bail!("no process with pod IP {pod_ip} in the kubepods cgroups")
    }

    /// Fails (with the log tail) if a node process has exited.
    pub fn check_processes(&mut self) -> Result<()> {
        self.containerd.check_alive()?;
        self.scheduler.check_alive()?;
        self.kube_proxy.check_alive()?;
        self.kubelet.check_alive()
    }

    /// The binaries in use.
    pub fn bins(&self) -> &BinDir {
        &self.bins
    }

    /// The last `n` lines of each node component's log.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for c in [
            &self.containerd,
            &self.kubelet,
            &self.kube_proxy,
            &self.scheduler,
        ] {
            out.push_str(&format!(
                "----- last {n} lines of {} ({}) -----\n{}\n",
                c.name(),
                c.log_path().display(),
                c.log_tail(n)
            ));
        }
        out
    }

    /// Stops every process and undoes every host change; the errors of the
    /// teardown, if any (Drop prints them instead).
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(mut lock) = self.lock.take() else {
            return Ok(());
        };
        // The kubelet first, so it restarts nothing; the rest can just die.
        self.kubelet.terminate(Duration::from_secs(2));
        self.kube_proxy.kill();
        self.scheduler.kill();
        self.containerd.kill();
        lock.release()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kseal-testenv: node logs\n{}", self.log_tails(40));
        }
        if let Err(e) = self.shutdown() {
            eprintln!(
                "kseal-testenv: the node's teardown was incomplete ({e:#}); the next node start \
                 retries it from {RECORD_PATH}"
            );
        }
    }
}

fn save_record(record: &host::Record) -> Result<()> {
    let tmp = format!("{RECORD_PATH}.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    fs::rename(&tmp, RECORD_PATH).with_context(|| format!("writing {RECORD_PATH}"))
}

/// Ready, and the not-ready/uninitialized taints gone (pods can be scheduled).
fn node_schedulable(n: &NodeObject) -> bool {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.effect == "NoSchedule"));
    ready && !tainted
}
