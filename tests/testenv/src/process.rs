//! One process the harness runs (a control-plane component, the node's
//! daemons, the registry, a controller): spawn with output to a log file,
//! stop (gracefully or with SIGKILL), restart with the same arguments.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A process of the control plane. Dropping it kills the process.
#[derive(Debug)]
pub struct Component {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
}

impl Component {
    /// A component that is not started yet; its output goes to `log`.
    pub fn new(name: &'static str, program: PathBuf, args: Vec<OsString>, log: PathBuf) -> Self {
        Self {
            name,
            program,
            args,
            log,
            child: None,
        }
    }

    /// The component's name (`etcd`, `kube-apiserver`, …).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process. Fails if it is already running.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        writeln!(
            log,
            "===== kseal-testenv: starting {} {}",
            self.program.display(),
            self.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        // With util-linux `setpriv`, the kernel kills the process when the
        // thread that spawned it dies, so a test binary killed by SIGKILL or
        // Ctrl-C (which skips all Drop impls) leaves nothing behind. setpriv
        // execs the program, so the pid is the program's.
        let mut cmd = if has_setpriv() {
            let mut c = Command::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--"]).arg(&self.program);
            c
        } else {
            Command::new(&self.program)
        };
        let child = cmd
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process was started and has not been stopped or exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Fails (with the log tail) if the process was started but has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!(
                "{} exited unexpectedly ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Kills the process with SIGKILL (no cleanup, like a crash or OOM kill)
    /// and reaps it. A no-op when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit, then SIGKILLs.
    pub fn terminate(&mut self, grace: Duration) {
        let Some(child) = &mut self.child else {
            return;
        };
        // std only sends SIGKILL; `kill(1)` sends SIGTERM without unsafe code.
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if sent {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        match fs::read(&self.log) {
            Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), n),
            Err(e) => format!("(cannot read {}: {e})", self.log.display()),
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn has_setpriv() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn start_stop_and_exit_detection() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut c = Component::new(
            "sleep",
            PathBuf::from("sleep"),
            vec!["30".into()],
            log.clone(),
        );
        c.start().unwrap();
        assert!(c.is_running());
        assert!(c.start().is_err(), "double start must fail");
        c.terminate(Duration::from_secs(5));
        assert!(!c.is_running());
        // Restart works and the log keeps both runs.
        c.start().unwrap();
        c.kill();
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.matches("===== kseal-testenv: starting").count(), 2);

        let mut f = Component::new(
            "false",
            PathBuf::from("sh"),
            vec!["-c".into(), "echo boom; exit 3".into()],
            dir.path().join("false.log"),
        );
        f.start().unwrap();
        // Alive until it has exited; then the error, with its log tail.
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            match f.check_alive() {
                Ok(()) => assert!(Instant::now() < deadline, "sh did not exit"),
                Err(err) => break err.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(err.contains("boom"), "{err}");
    }
}
