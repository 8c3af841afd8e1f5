//! `cargo xtask cluster up [--node]`: a local control plane (with `--node`,
//! a real worker node and a loopback registry too) until Ctrl-C.

use anyhow::{Context, Result};
use clap::Subcommand;
use kseal_testenv::{ControlPlane, Options};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Subcommand)]
pub enum Action {
    /// Build what is missing, start etcd, kube-apiserver and
    /// kube-controller-manager, print the kubeconfig, run until Ctrl-C
    /// (SIGINT) or SIGTERM, then stop everything.
    Up {
        /// Keep the state directory (PKI, kubeconfig, logs, etcd data) on exit.
        #[arg(long)]
        keep: bool,
        /// Add one real worker node (kubelet, kube-proxy, kube-scheduler,
        /// containerd): pods run. One per machine. Also starts an OCI
        /// registry on loopback that the node pulls from, to publish
        /// releases to (`cargo xtask release --push --plain-http`).
        #[arg(long)]
        node: bool,
    },
}

pub fn run(action: Action) -> Result<()> {
    // One thread: the processes are spawned from (and, through setpriv's
    // parent-death signal, tied to) the main thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match action {
        Action::Up { keep, node } => rt.block_on(up(keep, node)),
    }
}

async fn up(keep: bool, node: bool) -> Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let options = Options {
        keep_dir: keep || Options::default().keep_dir,
        node,
        ..Options::default()
    };
    let mut cp = tokio::select! {
        cp = ControlPlane::start_with(options) => cp?,
        _ = sigint.recv() => { eprintln!("interrupted"); return Ok(()) }
        _ = sigterm.recv() => { eprintln!("terminated"); return Ok(()) }
    };
    let version = cp.client().await?.apiserver_version().await?;
    let kubeconfig = cp.admin_kubeconfig().display().to_string();
    println!(
        "kseal: control plane up in {:.1}s: Kubernetes {} at {}",
        cp.start_time().as_secs_f64(),
        version.git_version,
        cp.server_url()
    );
    let s = cp.startup();
    println!(
        "kseal: from spawning etcd: etcd healthy {:.1}s, /readyz ok {:.1}s, \
         controller manager working {:.1}s",
        s.etcd_healthy.as_secs_f64(),
        s.apiserver_ready.as_secs_f64(),
        s.controller_manager_ready.as_secs_f64()
    );
    // The node's registry: started after the node, stopped after it.
    let mut registry = None;
    if let Some(n) = cp.node() {
        let tools = kseal_testenv::release_tools::ensure()?;
        let r = registry.insert(kseal_testenv::registry::Registry::start(&tools)?);
        n.trust_registry(&r.host())?;
        let s = n.startup();
        println!(
            "kseal: node {} Ready {:.1}s after its start (containerd {:.1}s, pause image {:.1}s, \
             kube-proxy rules {:.1}s)",
            kseal_testenv::node::NODE_NAME,
            s.node_ready.as_secs_f64(),
            s.containerd_ready.as_secs_f64(),
            s.pause_imported.as_secs_f64(),
            s.proxy_ready.as_secs_f64()
        );
        println!(
            "kseal: images: {} (import more with `ctr --address {} -n k8s.io images import \
             --snapshotter native FILE`)",
            n.pause_image(),
            n.containerd_socket().display()
        );
        let host = r.host();
        println!(
            "kseal: registry http://{host} (loopback; the node pulls from it). Publish a release \
             to it with\n  cargo xtask release --out DIR --registry {host}/kseal-dev --push \
             --plain-http\nand install it with\n  helm install kseal \
             oci://{host}/kseal-dev/charts/kseal --version {} --plain-http -n kseal-system \
             --create-namespace",
            kseal_testenv::release::VERSION
        );
    }
    println!("kseal: state and logs in {}", cp.dir().display());
    println!("kseal: admin kubeconfig: {kubeconfig}");
    println!(
        "kseal: kubectl and helm of the pinned versions: {} and {}",
        cp.bins().kubectl().display(),
        cp.bins().helm().display()
    );
    // kubectl's and helm's discovery cache too: the default,
    // ~/.kube/cache/<host>_<port>, may hold what an earlier control plane on
    // the same address served.
    println!(
        "export KUBECONFIG={kubeconfig} KUBECACHEDIR={}",
        cp.kube_cache_dir().display()
    );
    println!("kseal: press Ctrl-C to stop");
    let mut watch = tokio::time::interval(std::time::Duration::from_secs(2));
    let result = loop {
        tokio::select! {
            _ = sigint.recv() => break Ok(()),
            _ = sigterm.recv() => break Ok(()),
            _ = watch.tick() => {
                if let Err(e) = cp.check_processes() {
                    break Err(e);
                }
            }
        }
    };
    eprintln!("kseal: stopping the control plane");
    cp.stop();
    drop(cp);
    drop(registry);
    eprintln!("kseal: stopped");
    result
}
