//! The command lines of etcd, kube-apiserver and kube-controller-manager
//! (not started here: see [`super::lifecycle`]). Each logs to
//! `<state dir>/logs/<name>.log`.

use std::ffi::OsString;

use anyhow::Result;

use super::{Layout, audit};
use crate::bins::BinDir;
use crate::process::Component;

/// etcd, data in `<state dir>/etcd-data`, on its client and peer ports of
/// 127.0.0.1 (plain HTTP).
pub(super) fn etcd(layout: &Layout, bins: &BinDir) -> Component {
    let etcd_url = etcd_url(layout);
    let peer_url = format!("http://127.0.0.1:{}", layout.etcd_peer_port);
    Component::new(
        "etcd",
        bins.etcd(),
        args([
            "--name=testenv".to_owned(),
            format!("--data-dir={}", layout.root.join("etcd-data").display()),
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
        layout.root.join("logs/etcd.log"),
    )
}

/// kube-apiserver: client certificates only (no anonymous access), Node
/// and RBAC authorization, the audit log of [`audit`] (its policy file is
/// written here); with a node, the flags to reach the kubelet. Errors when
/// the audit policy cannot be written.
pub(super) fn apiserver(layout: &Layout, bins: &BinDir) -> Result<Component> {
    let root = &layout.root;
    let pki = layout.pki();
    let host = layout.apiserver_host;
    let audit_policy = audit::write_policy(root)?;
    let mut flags = args([
        format!("--etcd-servers={}", etcd_url(layout)),
        format!("--bind-address={host}"),
        format!("--advertise-address={host}"),
        format!("--secure-port={}", layout.apiserver_port),
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
        format!("--audit-log-path={}", root.join(audit::LOG).display()),
    ]);
    if layout.node {
        // Pods reach the API server through the `kubernetes` Service,
        // whose endpoint is the advertised node address. The API server
        // authenticates to the kubelet with a client certificate and
        // checks the kubelet's serving certificate.
        flags.extend(args([
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
        flags.push("--endpoint-reconciler-type=none".into());
    }
    Ok(Component::new(
        "kube-apiserver",
        bins.kube_apiserver(),
        flags,
        root.join("logs/kube-apiserver.log"),
    ))
}

/// kube-controller-manager with the controllers the tests need (more with
/// a node), each as its own ServiceAccount; it talks to the API server
/// with [`super::users::KCM_KUBECONFIG`].
pub(super) fn controller_manager(layout: &Layout, bins: &BinDir) -> Component {
    let pki = layout.pki();
    let mut controllers = "garbage-collector-controller,namespace-controller,\
         serviceaccount-controller,serviceaccount-token-controller,\
         clusterrole-aggregation-controller"
        .to_owned();
    if layout.node {
        // What Deployments, Services and a node need.
        controllers.push_str(
            ",endpoints-controller,endpointslice-controller,\
             endpointslice-mirroring-controller,root-ca-certificate-publisher-controller,\
             deployment-controller,replicaset-controller,node-lifecycle-controller,\
             disruption-controller",
        );
    }
    let kubeconfig = layout.root.join(super::users::KCM_KUBECONFIG);
    Component::new(
        "kube-controller-manager",
        bins.kube_controller_manager(),
        args([
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--controllers={controllers}"),
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
        layout.root.join("logs/kube-controller-manager.log"),
    )
}

/// `http://127.0.0.1:<etcd client port>`.
fn etcd_url(layout: &Layout) -> String {
    format!("http://127.0.0.1:{}", layout.etcd_client_port)
}

fn args<const N: usize>(a: [String; N]) -> Vec<OsString> {
    a.into_iter().map(OsString::from).collect()
}
