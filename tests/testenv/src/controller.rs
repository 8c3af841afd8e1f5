//! A `kseal-controller` process beside a local control plane: its
//! arguments, its two ports (API and probes, reserved for as long as it
//! may run, restarts included), its log file; killed on drop.
//!
//! The binary is the caller's: a test passes
//! `env!("CARGO_BIN_EXE_kseal-controller")`, the demo and the benchmarks a
//! build of their own.
//!
//! ```no_run
//! # fn demo(cp: &kseal_testenv::ControlPlane) -> anyhow::Result<()> {
//! use kseal_testenv::controller::Controller;
//! let controller = Controller::builder("target/release/kseal-controller", cp.admin_kubeconfig())
//!     .log_dir(cp.dir())
//!     .no_key_renewal()
//!     .start()?;
//! println!("{}", controller.url("/v1/keys"));
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::ports::{self, Port};
use crate::process::Component;

/// How to run a controller; [`ControllerBuilder::build`] reserves its
/// ports.
#[derive(Debug, Clone)]
pub struct ControllerBuilder {
    binary: PathBuf,
    kubeconfig: PathBuf,
    name: &'static str,
    log_dir: Option<PathBuf>,
    namespace: Option<String>,
    log_level: Option<String>,
    pod_name: Option<String>,
    key_renewal: bool,
    extra: Vec<OsString>,
}

impl ControllerBuilder {
    /// The process's name: its log is `<log dir>/<name>.log`
    /// (default `kseal-controller`).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Where the log goes (default: the kubeconfig's directory, a control
    /// plane's own).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// `--namespace` (default: the controller's, `kseal-system`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// `--log-level`.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = Some(level.into());
        self
    }

    /// `--pod-name` (the controller's identity among replicas).
    pub fn pod_name(mut self, name: impl Into<String>) -> Self {
        self.pod_name = Some(name.into());
        self
    }

    /// `--key-renew-period 0`: no scheduled key renewal.
    pub fn no_key_renewal(mut self) -> Self {
        self.key_renewal = false;
        self
    }

    /// Arguments after the others.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line for a controller with its API on
    /// 127.0.0.1:`port` and its probes on 127.0.0.1:`health_port`.
    pub fn command_line(&self, port: u16, health_port: u16) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--kubeconfig".into(), self.kubeconfig.clone().into()];
        if let Some(namespace) = &self.namespace {
            args.extend(["--namespace".into(), namespace.into()]);
        }
        args.extend([
            "--http-addr".into(),
            format!("127.0.0.1:{port}").into(),
            "--health-addr".into(),
            format!("127.0.0.1:{health_port}").into(),
        ]);
        if let Some(level) = &self.log_level {
            args.extend(["--log-level".into(), level.into()]);
        }
        if let Some(pod) = &self.pod_name {
            args.extend(["--pod-name".into(), pod.into()]);
        }
        if !self.key_renewal {
            args.extend(["--key-renew-period".into(), "0".into()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Reserves the ports; the controller is not started.
    pub fn build(self) -> Result<Controller> {
        let ports = [ports::reserve()?, ports::reserve()?];
        let [port, health_port] = ports.each_ref().map(Port::get);
        let log_dir = match &self.log_dir {
            Some(dir) => dir.clone(),
            None => self
                .kubeconfig
                .parent()
                .context("the kubeconfig has no directory")?
                .to_path_buf(),
        };
        let process = Component::new(
            self.name,
            self.binary.clone(),
            self.command_line(port, health_port),
            log_dir.join(format!("{}.log", self.name)),
        );
        Ok(Controller {
            process,
            port,
            health_port,
            _ports: ports,
        })
    }

    /// [`build`](Self::build), then starts it.
    pub fn start(self) -> Result<Controller> {
        let mut controller = self.build()?;
        controller.process.start()?;
        Ok(controller)
    }
}

/// A `kseal-controller` process and where to reach it; killed on drop
/// (its log's tail printed when dropped during a panic).
#[derive(Debug)]
pub struct Controller {
    /// The process (start, stop, restart with the same arguments).
    pub process: Component,
    /// The API port (`--http-addr`).
    pub port: u16,
    /// The probe port (`--health-addr`).
    pub health_port: u16,
    /// Both ports, reserved for as long as the process may run (restarts
    /// bind them again); after `process`, so released once it is gone.
    _ports: [Port; 2],
}

impl Controller {
    /// A controller running `binary` as the user of `kubeconfig`, at the
    /// controller's defaults until the builder says otherwise.
    pub fn builder(
        binary: impl Into<PathBuf>,
        kubeconfig: impl Into<PathBuf>,
    ) -> ControllerBuilder {
        ControllerBuilder {
            binary: binary.into(),
            kubeconfig: kubeconfig.into(),
            name: "kseal-controller",
            log_dir: None,
            namespace: None,
            log_level: None,
            pod_name: None,
            key_renewal: true,
            extra: Vec::new(),
        }
    }

    /// `http://127.0.0.1:<port><path>` on the API port.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A URL on the probe port.
    pub fn health_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.health_port)
    }

    /// Its log so far (every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }

    /// Its process id; an error while it is not running.
    pub fn pid(&self) -> Result<u32> {
        self.process.pid().context("the controller is not running")
    }

    /// `GET path` on the API port: `(status, body)`, `None` when it does
    /// not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let host = format!("127.0.0.1:{}", self.port);
        crate::http::request(&host, "GET", path, None, &[]).await
    }

    /// Whether `/readyz` answers 200.
    pub async fn is_ready(&self) -> bool {
        self.get("/readyz")
            .await
            .is_some_and(|(status, _)| status == 200)
    }

    /// The probe port's `/metrics` (the API port's has a scrape budget);
    /// `None` while it does not answer 200.
    pub async fn metrics(&self) -> Option<String> {
        let host = format!("127.0.0.1:{}", self.health_port);
        match crate::http::request(&host, "GET", "/metrics", None, &[]).await? {
            (200, body) => Some(body),
            _ => None,
        }
    }

    /// The value of metric `name` (its first series, labels or not) from
    /// [`metrics`](Self::metrics); `None` while it does not answer or has
    /// no such series.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.metrics().await?, name)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.process.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (tail) ---\n{}",
                self.process.name(),
                self.process.log_tail(60)
            );
        }
    }
}

/// The first series of metric `name` in a Prometheus text exposition.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = rest.strip_prefix(' ').or_else(|| {
            rest.strip_prefix('{')
                .and_then(|r| r.rsplit_once("} ").map(|(_, v)| v))
        })?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn command_lines() {
        let local = Controller::builder("/bin/kseal-controller", "/tmp/cp/admin.kubeconfig")
            .no_key_renewal()
            .args(["--kube-qps=0"]);
        assert_eq!(
            strings(local.command_line(20001, 20002)),
            [
                "--kubeconfig",
                "/tmp/cp/admin.kubeconfig",
                "--http-addr",
                "127.0.0.1:20001",
                "--health-addr",
                "127.0.0.1:20002",
                "--key-renew-period",
                "0",
                "--kube-qps=0",
            ]
        );
        let test = Controller::builder("/bin/kseal-controller", "/tmp/cp/admin.kubeconfig")
            .namespace("kseal-system")
            .log_level("debug")
            .pod_name("a")
            .args(["--x"]);
        assert_eq!(
            strings(test.command_line(1, 2)),
            [
                "--kubeconfig",
                "/tmp/cp/admin.kubeconfig",
                "--namespace",
                "kseal-system",
                "--http-addr",
                "127.0.0.1:1",
                "--health-addr",
                "127.0.0.1:2",
                "--log-level",
                "debug",
                "--pod-name",
                "a",
                "--x",
            ]
        );
    }

    #[test]
    fn build_reserves_ports_and_names_the_log() {
        let controller = Controller::builder("/bin/true", "/tmp/cp/admin.kubeconfig")
            .name("replica-a")
            .build()
            .unwrap();
        assert_ne!(controller.port, controller.health_port);
        assert_eq!(
            controller.process.log_path(),
            std::path::Path::new("/tmp/cp/replica-a.log")
        );
        assert!(controller.pid().is_err(), "not started");
    }

    #[test]
    fn metric_values() {
        let text = "# TYPE x counter\nkseal_reconcile_duration_seconds_count 12\n\
                    kseal_sealed_secrets{namespace=\"a\"} 3\n";
        assert_eq!(
            metric_value(text, "kseal_reconcile_duration_seconds_count"),
            Some(12.0)
        );
        assert_eq!(metric_value(text, "kseal_sealed_secrets"), Some(3.0));
        assert_eq!(metric_value(text, "kseal_missing"), None);
    }
}
