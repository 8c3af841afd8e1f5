//! Helpers shared by the CLI tests: they run the real `kseal` binary.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::new_without_default
)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn kseal() -> Command {
    let mut command = Command::cargo_bin("kseal").expect("kseal binary");
    command.env_remove("KUBECONFIG");
    command
}

/// A temporary directory with an identity; commands run inside it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub identity: PathBuf,
    pub recipient: String,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = dir.path().join("key.txt");
        let output = kseal()
            .arg("keygen")
            .arg("-o")
            .arg(&identity)
            .output()
            .expect("keygen");
        assert!(output.status.success(), "{output:?}");
        let recipient = String::from_utf8(output.stdout)
            .expect("utf8")
            .trim()
            .to_owned();
        Self {
            dir,
            identity,
            recipient,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read")
    }

    pub fn cmd(&self) -> Command {
        let mut command = kseal();
        command.current_dir(self.dir.path());
        command
    }

    /// Runs `kseal ARGS` here with its stdout closed before it writes (a
    /// reader that stopped early, as `| head` does): what the exit status
    /// says then.
    pub fn output_with_stdout_closed(&self, args: &[&str]) -> std::process::Output {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kseal"))
            .current_dir(self.dir.path())
            .env_remove("KUBECONFIG")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kseal starts");
        drop(child.stdout.take());
        child.wait_with_output().expect("kseal finishes")
    }

    /// Seals `secret` (YAML) to this workspace's key; returns the output.
    pub fn seal(&self, secret: &str, extra: &[&str]) -> String {
        let output = self
            .cmd()
            .args(["seal", "-r", &self.recipient])
            .args(extra)
            .write_stdin(secret.to_owned())
            .output()
            .expect("seal");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf8")
    }

    pub fn unseal(&self, sealed: &str) -> std::process::Output {
        self.cmd()
            .args(["unseal", "-i"])
            .arg(&self.identity)
            .write_stdin(sealed.to_owned())
            .output()
            .expect("unseal")
    }
}

pub const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: app
  labels:
    team: payments
  annotations:
    note: kept
type: kubernetes.io/basic-auth
data:
  binary: AP8AAQ==
stringData:
  username: admin
  password: hunter2-canary
";

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
pub fn assert_exit(output: &std::process::Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// Replaces the field `index` (0-based, `:`-separated) of every sealed value
/// in a manifest for key `key` with `f(field)`.
pub fn edit_value(manifest: &str, key: &str, f: impl Fn(&str) -> String) -> String {
    manifest
        .lines()
        .map(|line| {
            let prefix = format!("    {key}: ");
            match line.strip_prefix(&prefix) {
                Some(value) => format!("{prefix}{}", f(value)),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub fn value_of(manifest: &str, key: &str) -> String {
    let prefix = format!("    {key}: ");
    manifest
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no value {key} in\n{manifest}"))
        .to_owned()
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A fake Kubernetes API server for GET requests, until the test ends:
/// `answer(path)` (the path without its query) gives the JSON body of a
/// 200, `None` a Kubernetes 404 Status. Returns its URL.
pub fn fake_api_server(answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            // GET requests: no body; read up to the blank line.
            let mut path = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                    break;
                }
                if path.is_empty() {
                    path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                }
            }
            let path = path.split('?').next().unwrap_or_default();
            let (status, body) = match answer(path) {
                Some(body) => ("200 OK", body),
                None => (
                    "404 Not Found",
                    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404}"#.to_owned(),
                ),
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// Unseals `sealed` with the workspace's identity into data key → plaintext
/// bytes (the whole Secret must open).
pub fn unsealed_values(
    ws: &Workspace,
    sealed: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    use base64::Engine as _;
    let output = ws
        .cmd()
        .args(["unseal", "--format", "json", "-i"])
        .arg(&ws.identity)
        .write_stdin(sealed.to_owned())
        .output()
        .expect("unseal");
    assert_exit(&output, 0);
    let secret: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    secret["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(key, value)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().expect("string"))
                .expect("base64");
            (key.clone(), bytes)
        })
        .collect()
}
