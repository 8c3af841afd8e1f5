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
    pub(crate) kubeconfig: Option<std::path::PathBuf>,

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
    pub(crate) watch_namespaces: Vec<String>,

    /// Namespace holding the sealing keys, the public-key ConfigMap and the Lease
    #[arg(
        long,
        env = "KSEAL_NAMESPACE",
        default_value = "kseal-system",
        value_parser = namespace_name
    )]
    pub(crate) namespace: String,

    /// Create a new active key this often (e.g. 30d, 720h); 0 disables renewal
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    pub(crate) key_renew_period: Duration,

    /// How long after a renewal (or `kseal keys rotate`) values still sealed
    /// only to the previous key are not yet due for a re-wrap (e.g. 14d,
    /// 336h; 0 = none: due at once). Repositories pin the cluster's public
    /// key in a file, so every value sealed between a renewal and the
    /// refresh of that pin is sealed to a key that is no longer active; within
    /// the grace period `RewrapDue` is `False` (reason `WithinGracePeriod`,
    /// the message names the key and the deadline), after it `True`: two
    /// weeks is what a team needs to refresh its pins and re-wrap, and leaves
    /// half of the default 30-day renewal period before the next key. Must be
    /// shorter than a --key-renew-period that is not 0 [default: 14d, or half
    /// of --key-renew-period when that is shorter than 28d]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) rewrap_grace_period: Option<Duration>,

    /// Address for /healthz, /readyz, /metrics and the /v1 API
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub(crate) http_addr: SocketAddr,

    /// Address for /healthz, /readyz and /metrics only, on a listener of
    /// their own: clients of the API port cannot starve the kubelet's probes
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub(crate) health_addr: SocketAddr,

    /// SealedSecrets reconciled at once
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: u16,

    /// Kubernetes API requests per second (client-side limit; 0 = unlimited).
    /// The API server's priority and fairness protects it; this only stops a
    /// runaway loop. At the default the controller keeps up with thousands
    /// of SealedSecrets applied at once.
    #[arg(long, default_value_t = 500.0)]
    pub(crate) kube_qps: f64,

    /// Kubernetes API request burst above the QPS limit
    #[arg(long, default_value_t = 1000)]
    pub(crate) kube_burst: u32,

    /// Events per second, on a budget of their own so Events never delay Secrets
    #[arg(long, default_value_t = 10.0)]
    pub(crate) event_qps: f64,

    /// Restart the Deployments, StatefulSets and DaemonSets that read a
    /// changed Secret key, for SealedSecrets with `spec.rollout`
    /// (docs/rollout.md). Needs list and patch on those kinds where
    /// SealedSecrets are watched (chart value rollout.enabled grants them).
    /// Off: such SealedSecrets get a RolloutDisabled Warning Event instead
    #[arg(long, env = "KSEAL_ROLLOUT_RESTARTS")]
    pub(crate) rollout_restarts: bool,

    /// Changes within this long of each other restart a workload once (at
    /// most six windows after the first change of a batch); 100ms to 10m
    #[arg(long, value_parser = batch_window, default_value = "5s", value_name = "DURATION")]
    pub(crate) rollout_batch_window: Duration,

    /// The least time between two rounds of restarts in one namespace: a
    /// Secret someone else keeps changing back restarts its consumers at
    /// most this often (changes meanwhile wait and are restarted for
    /// together); 1s to 1h
    #[arg(long, value_parser = min_interval, default_value = "1m", value_name = "DURATION")]
    pub(crate) rollout_min_interval: Duration,

    /// Elect a leader with a Lease: only the leader reconciles and renews keys
    #[arg(long)]
    pub(crate) leader_elect: bool,

    /// Name of the Lease used for leader election
    #[arg(long, default_value = "kseal-controller")]
    pub(crate) lease_name: String,

    /// Lease duration; a leader that stops renewing loses the lease after this
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub(crate) lease_duration: Duration,

    /// Reconcile SealedSecrets in the controller's own namespace too. Off by
    /// default: that namespace holds the sealing keys, and whoever may create
    /// a SealedSecret there should not get Secrets next to them
    #[arg(long, env = "KSEAL_RECONCILE_CONTROLLER_NAMESPACE")]
    pub(crate) reconcile_controller_namespace: bool,

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
    pub(crate) allow_secret_types: Vec<String>,

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
    pub(crate) max_body_bytes: usize,

    /// Requests per second allowed on /v1/verify and /v1/rewrap (all clients together)
    #[arg(long, default_value_t = 20)]
    pub(crate) api_rate: u32,

    /// Work per second allowed on /v1/verify and /v1/rewrap (all clients
    /// together), in X25519 operations (~40 µs of CPU each): a request costs,
    /// per value, one per held key the value names (at least one), plus two
    /// per recipient when it is re-wrapped
    #[arg(long, default_value_t = 2000)]
    pub(crate) api_work_rate: u32,

    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax), e.g. info or kseal_controller=debug
    #[arg(long, env = "KSEAL_LOG", default_value = "info")]
    pub log_level: String,

    /// This replica's name in the Lease and in Events; a random suffix is added, so two replicas never share an identity [default: the host name]
    #[arg(long, env = "POD_NAME")]
    pub(crate) pod_name: Option<String>,
}

impl Settings {
    /// `--rollout-restarts` and `--rollout-batch-window`.
    pub(crate) fn rollout_settings(&self) -> crate::rollout::RolloutSettings {
        crate::rollout::RolloutSettings {
            enabled: self.rollout_restarts,
            window: self.rollout_batch_window,
            min_interval: self.rollout_min_interval,
        }
    }

    /// The re-wrap grace period in effect: `--rewrap-grace-period`, else
    /// [`DEFAULT_REWRAP_GRACE_PERIOD`] (at most half the renewal period, so
    /// a default never stops a controller with a short renewal period from
    /// starting). A grace period as long as the renewal period or longer is
    /// refused: a value could then be sealed to a key two renewals old and
    /// still not be due.
    pub(crate) fn rewrap_grace_period(&self) -> Result<Duration, String> {
        let renew = self.key_renew_period;
        match self.rewrap_grace_period {
            Some(grace) if !renew.is_zero() && grace >= renew => Err(format!(
                "--rewrap-grace-period {} must be shorter than --key-renew-period {}: values sealed to the previous key must become due before the next renewal; choose a shorter grace period (0 turns it off)",
                crate::rotation::format_duration(grace),
                crate::rotation::format_duration(renew),
            )),
            Some(grace) => Ok(grace),
            None if renew.is_zero() => Ok(DEFAULT_REWRAP_GRACE_PERIOD),
            None => Ok(DEFAULT_REWRAP_GRACE_PERIOD.min(renew / 2)),
        }
    }
}

/// Default re-wrap grace period: two weeks, for a team to refresh its
/// pinned public keys and re-wrap after a renewal (every 30 days by
/// default).
pub(crate) const DEFAULT_REWRAP_GRACE_PERIOD: Duration = Duration::from_secs(14 * 86_400);

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
    kseal_shared::names::check_namespace(value)
        .map(|()| value.to_owned())
        .map_err(|err| err.to_string())
}

/// The shortest and longest `--rollout-batch-window`: below 100 ms a sync's
/// changes would no longer share a restart; above 10 minutes a rotated
/// value would wait longer for its restart than anyone expects.
pub(crate) const BATCH_WINDOW_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(600);

fn batch_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if BATCH_WINDOW_RANGE.contains(&window) {
        Ok(window)
    } else {
        Err("must be from 100ms to 10m".to_owned())
    }
}

/// `--rollout-min-interval`: at least a second, so two rounds never share
/// a `kseal.dev/restarted-at` (RFC 3339 to the second; the same value
/// twice would not roll the workload out again), at most an hour.
fn min_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&interval) {
        Ok(interval)
    } else {
        Err("must be from 1s to 1h".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn batch_windows_are_bounded() {
        let parse = |window: &str| {
            Settings::try_parse_from(["kseal-controller", "--rollout-batch-window", window])
                .map(|settings| settings.rollout_settings().window)
        };
        assert_eq!(
            Settings::try_parse_from(["kseal-controller"])
                .unwrap()
                .rollout_settings()
                .window,
            Duration::from_secs(5)
        );
        assert_eq!(parse("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        for bad in ["0", "99ms", "10m 1ms", "1d", "5", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let interval = |text: &str| {
            Settings::try_parse_from(["kseal-controller", "--rollout-min-interval", text])
                .map(|settings| settings.rollout_settings().min_interval)
        };
        assert_eq!(interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(interval("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["999ms", "0", "2h", "5"] {
            assert!(interval(bad).is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn the_rewrap_grace_period_is_shorter_than_the_renewal_period() {
        let grace = |args: &[&str]| {
            Settings::try_parse_from(
                std::iter::once("kseal-controller").chain(args.iter().copied()),
            )
            .unwrap()
            .rewrap_grace_period()
        };
        let days = |n: u64| Duration::from_secs(n * 86_400);
        // The default: 14 days, at most half a shorter renewal period.
        assert_eq!(grace(&[]), Ok(days(14)));
        assert_eq!(grace(&["--key-renew-period", "0"]), Ok(days(14)));
        assert_eq!(grace(&["--key-renew-period", "20d"]), Ok(days(10)));
        assert_eq!(
            grace(&["--key-renew-period", "3s"]),
            Ok(Duration::from_millis(1500))
        );
        // Given: the same syntax as --key-renew-period.
        assert_eq!(grace(&["--rewrap-grace-period", "336h"]), Ok(days(14)));
        assert_eq!(grace(&["--rewrap-grace-period", "0"]), Ok(Duration::ZERO));
        assert_eq!(
            grace(&["--key-renew-period", "0", "--rewrap-grace-period", "400d"]),
            Ok(days(400))
        );
        assert_eq!(
            grace(&["--key-renew-period", "30d", "--rewrap-grace-period", "29d"]),
            Ok(days(29))
        );
        // As long as the renewal period or longer: refused, naming both.
        for too_long in ["30d", "31d", "720h"] {
            let err = grace(&["--rewrap-grace-period", too_long]).unwrap_err();
            assert!(
                err.contains("--rewrap-grace-period") && err.contains("--key-renew-period 30d"),
                "{err}"
            );
        }
        let parse = |args: &[&str]| {
            Settings::try_parse_from(
                std::iter::once("kseal-controller").chain(args.iter().copied()),
            )
        };
        assert!(parse(&["--rewrap-grace-period", "soon"]).is_err());
    }
}
