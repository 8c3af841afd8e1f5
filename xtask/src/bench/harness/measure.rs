//! Measured stretches of a run: a [`Window`] (API requests, the
//! controller's CPU and memory, the machine's load, from start to stop) and
//! a [`Restart`] (a controller stopped with everything in sync and started
//! again).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kseal_testenv::api_requests::{RequestCounts, Requests, requests_between};
use kseal_testenv::process::Component;
use kube::Client;

use super::cluster::api_requests;
use super::load;
use super::process::{cpu_seconds, memory_kib};

/// A stretch of a run being measured, from [`Window::start`].
pub struct Window {
    pid: u32,
    requests: RequestCounts,
    cpu: f64,
    /// The machine's load at the start.
    pub load_before: String,
    /// When it started.
    pub started: Instant,
}

/// What a [`Window`] measured.
pub struct Measured {
    /// API requests served meanwhile (secrets, sealedsecrets, events,
    /// configmaps).
    pub requests: Requests,
    /// The controller's CPU time meanwhile, seconds.
    pub cpu_s: f64,
    /// The controller's `VmHWM` at the end, KiB.
    pub peak_kib: u64,
    /// Its `VmRSS` at the end, KiB.
    pub rss_kib: u64,
    /// The machine's load at the start and at the end.
    pub load_before: String,
    pub load_after: String,
}

impl Window {
    /// Starts measuring the process `pid`.
    pub async fn start(client: &Client, pid: u32) -> Result<Self> {
        Ok(Self {
            pid,
            requests: api_requests(client).await?,
            cpu: cpu_seconds(pid),
            load_before: load(),
            started: Instant::now(),
        })
    }

    /// Stops measuring.
    pub async fn stop(self, client: &Client) -> Result<Measured> {
        let after = api_requests(client).await?;
        let cpu_s = cpu_seconds(self.pid) - self.cpu;
        let (peak_kib, rss_kib) = memory_kib(self.pid);
        Ok(Measured {
            requests: requests_between(&self.requests, &after),
            cpu_s,
            peak_kib,
            rss_kib,
            load_before: self.load_before,
            load_after: load(),
        })
    }
}

/// A controller's restart with everything in sync: [`Restart::begin`]
/// stops it and starts it again; the caller waits for what it measures
/// (ready, resynced) against [`Restart::started`]; [`Restart::end`] counts
/// what it did meanwhile.
pub struct Restart {
    window: Window,
}

impl Restart {
    /// Lets trailing writes (events, status) land, stops the process
    /// (SIGTERM), then starts the clock and the process again.
    pub async fn begin(client: &Client, process: &mut Component) -> Result<Self> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        process.terminate(Duration::from_secs(10));
        let requests = api_requests(client).await?;
        let load_before = load();
        let started = Instant::now();
        process.start()?;
        let pid = process
            .pid()
            .context("the restarted process is not running")?;
        Ok(Self {
            window: Window {
                pid,
                requests,
                cpu: cpu_seconds(pid),
                load_before,
                started,
            },
        })
    }

    /// When the process was started again.
    pub fn started(&self) -> Instant {
        self.window.started
    }

    /// Waits for anything the resync triggered (writes, then their watch
    /// events), which lands within a few seconds, then measures.
    pub async fn end(self, client: &Client) -> Result<Measured> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.window.stop(client).await
    }
}
