//! Command-line settings of the controller.

use std::net::SocketAddr;

use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand, ValueEnum};
use kseal_shared::contract::{DANGEROUS_METADATA_PREFIXES, DANGEROUS_SECRET_TYPES};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kseal-controller",
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("KSEAL_GIT_COMMIT"),
        ")"
    ),
    about = "Keeps a decrypted Secret for every kseal SealedSecret"
)]
pub struct Settings {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Kubeconfig to use outside a cluster [default: in-cluster config, then $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Watch SealedSecrets and manage Secrets only in these namespaces
    /// (comma-separated); empty: every namespace. With a list, the
    /// controller needs RBAC only in those namespaces.
    #[arg(
        long,
        env = "KSEAL_WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,...",
        value_parser = namespace_name
    )]
    pub watch_namespaces: Vec<String>,

    /// Namespace holding the sealing keys, the public-key ConfigMap and the Lease
    #[arg(
        long,
        env = "KSEAL_NAMESPACE",
        default_value = "kseal-system",
        value_parser = namespace_name
    )]
    pub namespace: String,

    /// Create a new active key this often (e.g. 30d, 720h); 0 disables renewal
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    pub key_renew_period: Duration,

    /// Address for /healthz, /readyz, /metrics and the /v1 API
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address for /healthz, /readyz and /metrics only, on a listener of
    /// their own: clients of the API port cannot starve the kubelet's probes
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,

    /// SealedSecrets reconciled at once
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,

    /// Kubernetes API requests per second (client-side limit; 0 = unlimited).
    /// The API server's priority and fairness protects it; this only stops a
    /// runaway loop. At the default the controller keeps up with thousands
    /// of SealedSecrets applied at once.
    #[arg(long, default_value_t = 500.0)]
    pub kube_qps: f64,

    /// Kubernetes API request burst above the QPS limit
    #[arg(long, default_value_t = 1000)]
    pub kube_burst: u32,

    /// Events per second, on a budget of their own so Events never delay Secrets
    #[arg(long, default_value_t = 10.0)]
    pub event_qps: f64,

    /// Elect a leader with a Lease: only the leader reconciles and renews keys
    #[arg(long)]
    pub leader_elect: bool,

    /// Name of the Lease used for leader election
    #[arg(long, default_value = "kseal-controller")]
    pub lease_name: String,

    /// Lease duration; a leader that stops renewing loses the lease after this
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_duration: Duration,

    /// Reconcile SealedSecrets in the controller's own namespace too. Off by
    /// default: that namespace holds the sealing keys, and whoever may create
    /// a SealedSecret there should not get Secrets next to them
    #[arg(long, env = "KSEAL_RECONCILE_CONTROLLER_NAMESPACE")]
    pub reconcile_controller_namespace: bool,

    /// Dangerous Secret types SealedSecrets may create anyway
    /// (comma-separated). Each possible value is refused by default: another
    /// controller trusts Secrets of that type (docs/security.md, "The Secret
    /// policy")
    // The possible values are the policy's own list
    // (kseal_shared::contract), so help, parsing and policy never disagree.
    #[arg(
        long,
        env = "KSEAL_ALLOW_SECRET_TYPES",
        value_delimiter = ',',
        value_name = "TYPE,...",
        value_parser = PossibleValuesParser::new(DANGEROUS_SECRET_TYPES)
    )]
    pub allow_secret_types: Vec<String>,

    /// Dangerous label/annotation key prefixes SealedSecrets may set anyway
    /// (comma-separated). Each possible value is refused by default: another
    /// controller trusts or copies Secrets with such a key (docs/security.md,
    /// "The Secret policy"). kseal.dev/ is always refused
    #[arg(
        long,
        env = "KSEAL_ALLOW_METADATA_PREFIXES",
        value_delimiter = ',',
        value_name = "PREFIX,...",
        value_parser = PossibleValuesParser::new(DANGEROUS_METADATA_PREFIXES)
    )]
    pub allow_metadata_prefixes: Vec<String>,

    /// Largest request body the HTTP API accepts, in bytes
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Requests per second allowed on /v1/verify and /v1/rewrap (all clients together)
    #[arg(long, default_value_t = 20)]
    pub api_rate: u32,

    /// Work per second allowed on /v1/verify and /v1/rewrap (all clients
    /// together), in X25519 operations (~40 µs of CPU each): a request costs,
    /// per value, one per held key the value names (at least one), plus two
    /// per recipient when it is re-wrapped
    #[arg(long, default_value_t = 2000)]
    pub api_work_rate: u32,

    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax), e.g. info or kseal_controller=debug
    #[arg(long, env = "KSEAL_LOG", default_value = "info")]
    pub log_level: String,

    /// This replica's name in the Lease and in Events; a random suffix is added, so two replicas never share an identity [default: the host name]
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the SealedSecret CRD (YAML) and exit
    Crd,
}

/// A namespace name as Kubernetes requires it. An empty one (`KSEAL_NAMESPACE=`)
/// would make every namespaced request cluster-wide: the key watch would
/// load every installation's keys.
fn namespace_name(value: &str) -> Result<String, String> {
    kseal_shared::validation::check_namespace(value)
        .map(|()| value.to_owned())
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn namespaces_must_be_names() {
        let parse = |args: &[&str]| {
            Settings::try_parse_from(
                std::iter::once("kseal-controller").chain(args.iter().copied()),
            )
        };
        assert_eq!(parse(&[]).unwrap().namespace, "kseal-system");
        for bad in ["", "Kseal", "a/b"] {
            assert!(parse(&["--namespace", bad]).is_err(), "{bad:?}");
            assert!(parse(&["--watch-namespaces", bad]).is_err(), "{bad:?}");
        }
        let ok = parse(&["--watch-namespaces", "team-a,team-b"]).unwrap();
        assert_eq!(ok.watch_namespaces, ["team-a", "team-b"]);
    }
}
