//! An OCI registry on loopback for tests and `cargo xtask`: the CNCF
//! distribution registry (`registry serve`, built by
//! [`crate::release_tools`]), plain HTTP on `127.0.0.1` and a port reserved
//! with [`crate::ports`], no authentication, its storage in its own temp
//! dir.
//!
//! It makes no outbound connections: no notification endpoints, no
//! pull-through proxy, and OpenTelemetry tracing (on by default in the
//! binary, which would export to `localhost:4318`) is turned off with
//! `OTEL_TRACES_EXPORTER=none`, as the upstream image does.
//!
//! It speaks plain HTTP. go-containerregistry (crane, cosign) uses plain
//! HTTP for loopback hosts on its own (`crane --insecure` and `cosign
//! --allow-http-registry` say so explicitly); helm needs `--plain-http`.
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! let tools = kseal_testenv::release_tools::ensure()?;
//! let registry = kseal_testenv::registry::Registry::start(&tools)?;
//! let image = format!("{}/kseal/kseal-controller:dev", registry.host());
//! # let _ = image; Ok(()) }
//! ```

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ports::Port;
use crate::process::Component;
use crate::release_tools::ReleaseTools;

/// How long [`Registry::start`] waits for `/v2/` to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry. Dropping it kills the process (and waits for it),
/// then releases its port and deletes its storage.
#[derive(Debug)]
pub struct Registry {
    process: Component,
    port: Port,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on a reserved loopback port and waits (up to
    /// [`READY_TIMEOUT`]) until `GET /v2/` answers 200. Call it on a thread
    /// that lives as long as the registry should: like every process the
    /// harness starts, it gets a parent-death signal, which Linux sends
    /// when the spawning *thread* exits (a tokio blocking-pool thread does
    /// after ten idle seconds).
    pub fn start(tools: &ReleaseTools) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("kseal-registry-")
            .tempdir()
            .context("creating the registry's temp dir")?;
        let port = crate::ports::reserve()?;
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).with_context(|| format!("creating {}", storage.display()))?;
        let config = dir.path().join("config.yml");
        fs::write(&config, config_yaml(&storage, port.get()))
            .with_context(|| format!("writing {}", config.display()))?;

        // `env` sets the registry's environment and execs it (so the pid,
        // and setpriv's parent-death signal, are the registry's).
        let mut process = Component::new(
            "registry",
            PathBuf::from("env"),
            vec![
                "OTEL_TRACES_EXPORTER=none".into(),
                "OTEL_SDK_DISABLED=true".into(),
                tools.registry.clone().into(),
                "serve".into(),
                config.into(),
            ],
            dir.path().join("registry.log"),
        );
        process.start()?;
        let mut registry = Registry { process, port, dir };
        registry.wait_ready(READY_TIMEOUT)?;
        Ok(registry)
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port.get())
    }

    /// The registry's temp dir (its `config.yml`, `storage/` and
    /// `registry.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `n` lines of the registry's log.
    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// The process id of the registry.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port.get()));
        loop {
            self.process
                .check_alive()
                .context("the registry did not start")?;
            let last = match get_status(addr, "/v2/") {
                Ok(200) => return Ok(()),
                Ok(status) => format!("GET /v2/ answered {status}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "the registry on {addr} was not ready within {timeout:?} ({last}); \
                     last lines of its log:\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Before the port and the temp dir go.
        self.process.kill();
    }
}

/// The registry's configuration: filesystem storage under `storage`,
/// deletes allowed, plain HTTP on `127.0.0.1:port`, no auth, no
/// notifications, no proxy.
fn config_yaml(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: kseal-testenv-loopback
",
        // A JSON string is a YAML double-quoted scalar.
        storage = serde_json::Value::from(storage.to_string_lossy()),
    )
}

/// The status of `GET path` on `addr` (HTTP/1.0, one connection).
fn get_status(addr: SocketAddr, path: &str) -> Result<u16> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .with_context(|| format!("writing to {addr}"))?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        let n = stream
            .read(&mut head[len..])
            .with_context(|| format!("reading from {addr}"))?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let text = String::from_utf8_lossy(&head[..len]);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok());
    status.with_context(|| format!("{addr} answered no HTTP status: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_quotes_the_storage_path() {
        let yaml = config_yaml(Path::new("/tmp/a b/storage"), 20123);
        assert!(
            yaml.contains("rootdirectory: \"/tmp/a b/storage\""),
            "{yaml}"
        );
        assert!(yaml.contains("addr: 127.0.0.1:20123"), "{yaml}");
    }
}
