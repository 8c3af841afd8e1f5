//! The configuration files of the node's components: containerd, the CNI
//! network, the kubelet and kube-proxy.

use std::path::Path;

use super::net;

/// containerd's config: its own root, state and socket under `dir`, the CRI
/// plugin with the native snapshotter, runc with cgroupfs, the local pause
/// image, CNI from Debian's plugin directory and network namespaces under
/// the state dir (not `/run/netns`), and registry hosts from
/// `<dir>/containerd/certs.d` ([`registry_hosts`]).
pub fn containerd(dir: &Path, pause_image: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
# Plugins a node here never uses (and that would probe the host).
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"

  # Registries the node may pull from, one hosts.toml each (written by
  # Node::trust_registry); containerd reads the directory at every pull.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/containerd/certs.d"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d}/cni/net.d"
    max_conf_num = 1
"#,
        cni_bin = net::CNI_BIN_DIR,
    )
}

/// `hosts.toml` for a plain-HTTP registry at `host` (`127.0.0.1:PORT`, on
/// loopback): pull and resolve from it over HTTP, nothing else.
pub fn registry_hosts(host: &str) -> String {
    format!(
        r#"server = "http://{host}"

[host."http://{host}"]
  capabilities = ["pull", "resolve"]
"#
    )
}

/// The CNI network: a bridge with the pod range, no masquerading and no
/// default route (pods reach the pod range, the service range and the node
/// address only); IPAM state under `dir`.
pub fn cni(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "kseal-node",
        "plugins": [{
            "type": "bridge",
            "bridge": net::BRIDGE,
            "isGateway": true,
            "isDefaultGateway": false,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": dir.join("cni/ipam"),
                "ranges": [[{"subnet": net::POD_CIDR, "gateway": net::POD_GATEWAY}]],
                "routes": [
                    {"dst": net::SERVICE_CIDR},
                    {"dst": format!("{}/32", net::NODE_IP)},
                ],
            },
        }],
    })
    .to_string()
}

/// Paths the kubelet config refers to.
pub struct KubeletPaths<'a> {
    /// The node's state dir.
    pub dir: &'a Path,
    /// The cluster CA (client certificates the kubelet accepts).
    pub ca: &'a Path,
    /// The kubelet's serving certificate and key.
    pub cert: &'a Path,
    /// Its key.
    pub key: &'a Path,
}

/// The kubelet's config: cgroup v1 with cgroupfs, webhook authentication and
/// authorization (no anonymous access), a serving certificate from the
/// cluster CA, no image garbage collection (images are imported, never
/// pulled), everything it may move off the host's paths moved under `dir`.
pub fn kubelet(p: &KubeletPaths<'_>) -> String {
    let d = p.dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
tlsCertFile: {cert}
tlsPrivateKeyFile: {key}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 10s
  x509:
    clientCAFile: {ca}
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 10s
    cacheUnauthorizedTTL: 5s
containerRuntimeEndpoint: unix://{d}/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: {d}/resolv.conf
podLogsDir: {d}/pod-logs
volumePluginDir: {d}/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
maxPods: 30
serializeImagePulls: false
shutdownGracePeriod: 0s
containerLogMaxSize: 10Mi
"#,
        ip = net::NODE_IP,
        port = net::KUBELET_PORT,
        healthz = net::KUBELET_HEALTHZ_PORT,
        cert = p.cert.display(),
        key = p.key.display(),
        ca = p.ca.display(),
    )
}

/// kube-proxy's config: iptables mode, node ports only on the node address,
/// no localhost node ports (so `route_localnet` stays), conntrack sysctls
/// left alone.
pub fn kube_proxy(kubeconfig: &Path, node_name: &str) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node_name}
mode: iptables
clusterCIDR: {pods}
healthzBindAddress: 127.0.0.1:{healthz}
metricsBindAddress: 127.0.0.1:{metrics}
nodePortAddresses: ["{ip}/32"]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kubeconfig = kubeconfig.display(),
        pods = net::POD_CIDR,
        healthz = net::KUBE_PROXY_HEALTHZ_PORT,
        metrics = net::KUBE_PROXY_METRICS_PORT,
        ip = net::NODE_IP,
    )
}
