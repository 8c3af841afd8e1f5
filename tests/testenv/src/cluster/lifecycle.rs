//! Starting, waiting for, stopping and killing the control plane's
//! processes, and their logs.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ControlPlane, TAIL_LINES};

impl ControlPlane {
    /// Starts etcd, the API server and the controller manager in turn, each
    /// once the previous one is ready, and records the milestones in
    /// [`ControlPlane::startup`] (`begin`: when the state directory was
    /// made).
    pub(super) async fn boot(&mut self, begin: Instant) -> Result<()> {
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
