//! `kseal migrate` against the real Bitnami tool: `kubeseal` v0.36.6, built
//! from its Go module on first use (cached under `~/.cache/kseal/bin`, or
//! `$KSEAL_KUBESEAL`), seals Secrets offline with `--cert`; `kseal migrate`
//! converts them; `kseal unseal` proves every value survived.
//!
//! Without Go or openssl the kubeseal tests are skipped with a loud
//! `SKIPPED:` line, except under `CI=true`, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use common::*;
use kseal_shared::manifest::{DocumentKind, ManifestFile, to_yaml};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Tools: kubeseal and three Bitnami key pairs, made once per test process.

/// A Bitnami controller key: private key (PKCS#8 PEM, as openssl writes it)
/// and self-signed certificate, as the controller makes them.
struct KeyPair {
    key: PathBuf,
    cert: PathBuf,
}

struct Tools {
    _dir: tempfile::TempDir,
    kubeseal: PathBuf,
    /// 2048-bit.
    a: KeyPair,
    /// 4096-bit, Bitnami's default size.
    b: KeyPair,
    /// 2048-bit, never exported in `keys_list`.
    c: KeyPair,
    /// `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`
    /// as it would look with keys A (PKCS#1, as Bitnami's controller stores
    /// keys) and B.
    keys_list: PathBuf,
}

fn tools() -> Option<&'static Tools> {
    static TOOLS: OnceLock<Option<Tools>> = OnceLock::new();
    TOOLS
        .get_or_init(|| match Tools::new() {
            Ok(tools) => Some(tools),
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("kubeseal interop tests need their tools under CI=true: {err}")
            }
            Err(err) => {
                loud(&format!("SKIPPED: kubeseal interop tests: {err}"));
                None
            }
        })
        .as_ref()
}

/// Straight to the process's stderr, past the test harness's capture.
fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

impl Tools {
    fn new() -> Result<Self, String> {
        let kubeseal = kubeseal()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let a = key_pair(dir.path(), "a", 2048)?;
        let b = key_pair(dir.path(), "b", 4096)?;
        let c = key_pair(dir.path(), "c", 2048)?;
        let a_pkcs1 = dir.path().join("a-pkcs1.key");
        run(Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&a.key)
            .arg("-out")
            .arg(&a_pkcs1))?;
        let pkcs1 = fs::read_to_string(&a_pkcs1).map_err(|e| e.to_string())?;
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let secret = |name: &str, key: &Path, cert: &Path| {
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {
                    "name": name,
                    "namespace": "kube-system",
                    "generateName": "sealed-secrets-key",
                    "labels": {"sealedsecrets.bitnami.com/sealed-secrets-key": "active"},
                    "resourceVersion": "1234",
                    "uid": "0b5a6c8e-0000-4000-8000-000000000000",
                },
                "data": {
                    "tls.crt": BASE64_STANDARD.encode(fs::read(cert).unwrap()),
                    "tls.key": BASE64_STANDARD.encode(fs::read(key).unwrap()),
                },
            })
        };
        let list = json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": [
                secret("sealed-secrets-keyaaaaa", &a_pkcs1, &a.cert),
                secret("sealed-secrets-keybbbbb", &b.key, &b.cert),
            ],
        });
        let keys_list = dir.path().join("bitnami-keys.yaml");
        fs::write(&keys_list, to_yaml(&list).unwrap()).map_err(|e| e.to_string())?;
        Ok(Self {
            _dir: dir,
            kubeseal,
            a,
            b,
            c,
            keys_list,
        })
    }

    /// Seals a Secret (YAML) with `kubeseal --cert`, offline.
    fn seal(&self, pair: &KeyPair, secret: &str, scope: &str) -> String {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(&self.kubeseal)
            .arg("--cert")
            .arg(&pair.cert)
            .args(["--scope", scope, "-o", "yaml"])
            .env_remove("KUBECONFIG")
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubeseal: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A key pair as the Bitnami docs make a custom key.
fn key_pair(dir: &Path, name: &str, bits: u32) -> Result<KeyPair, String> {
    let pair = KeyPair {
        key: dir.join(format!("{name}.key")),
        cert: dir.join(format!("{name}.crt")),
    };
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", &format!("rsa:{bits}"), "-nodes"])
        .arg("-keyout")
        .arg(&pair.key)
        .arg("-out")
        .arg(&pair.cert)
        .args([
            "-subj",
            "/CN=sealed-secret/O=sealed-secret",
            "-days",
            "3650",
        ]))
    .map_err(|err| format!("openssl: {err}"))?;
    Ok(pair)
}

/// `$KSEAL_KUBESEAL`, or the pinned release built from its Go module and
/// cached by kseal-testenv (`kseal_testenv::sealed_secrets`, shared with
/// the Bitnami benchmark).
fn kubeseal() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("KSEAL_KUBESEAL").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("KSEAL_KUBESEAL={} is not a file", path.display()))
        };
    }
    kseal_testenv::sealed_secrets::kubeseal()
        .map_err(|err| format!("cannot build kubeseal: {err:#}"))
}

// ---------------------------------------------------------------------------
// Helpers over manifests.

/// The objects of a manifest as JSON values.
fn objects(text: &str) -> Vec<Value> {
    ManifestFile::new(text)
        .objects()
        .unwrap()
        .into_iter()
        .map(|o| o.value)
        .collect()
}

/// Unseals one kseal SealedSecret with the workspace identity; returns the
/// Secret as JSON.
fn unseal_one(ws: &Workspace, sealed: &Value) -> Value {
    assert_eq!(
        DocumentKind::of(sealed),
        DocumentKind::SealedSecret,
        "{sealed}"
    );
    let output = ws
        .cmd()
        .args(["unseal", "--format", "json", "-i"])
        .arg(&ws.identity)
        .write_stdin(to_yaml(sealed).unwrap())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    serde_json::from_slice(&output.stdout).unwrap()
}

fn data(secret: &Value, key: &str) -> Vec<u8> {
    BASE64_STANDARD
        .decode(secret["data"][key].as_str().unwrap())
        .unwrap()
}

fn binary_value() -> Vec<u8> {
    (0..=255u8).rev().chain(0..=255u8).collect()
}

fn strict_secret() -> String {
    "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: app
  labels:
    team: payments
  annotations:
    note: kept
type: kubernetes.io/basic-auth
immutable: true
data:
  binary: AP8AAQ==
stringData:
  username: admin
  password: hunter2-canary
"
    .into()
}

fn namespace_wide_secret() -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: tls-bundle
  namespace: app
type: Opaque
data:
  blob: {}
  empty: \"\"
",
        BASE64_STANDARD.encode(binary_value())
    )
}

fn cluster_wide_secret() -> String {
    "apiVersion: v1
kind: Secret
metadata:
  name: registry
  labels:
    shared: \"true\"
stringData:
  token: s3cr3t-token-canary
"
    .into()
}

const CONFIG_MAP: &str = "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata:   {name: keep-me}   # odd\ndata: {a: b}\n";

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn every_scope_survives_migration() {
    let Some(tools) = tools() else {
        return loud("SKIPPED: every_scope_survives_migration");
    };
    let ws = Workspace::new();
    let file = format!(
        "{CONFIG_MAP}{}{}{}",
        tools.seal(&tools.a, &strict_secret(), "strict"),
        tools.seal(&tools.a, &namespace_wide_secret(), "namespace-wide"),
        tools.seal(&tools.b, &cluster_wide_secret(), "cluster-wide"),
    );
    ws.write("repo/app/secrets.yaml", &file);
    ws.write("repo/app/other.yaml", CONFIG_MAP);
    let output = ws
        .cmd()
        .args(["migrate", "--in-place", "--bitnami-key"])
        .arg(&tools.keys_list)
        .args(["-r", &ws.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains(
            "3 SealedSecret(s) migrated (6 value(s)), 0 left behind; 1 file(s) rewritten"
        ),
        "{}",
        stderr(&output)
    );
    let migrated = ws.read("repo/app/secrets.yaml");
    assert!(migrated.starts_with(CONFIG_MAP), "{migrated}");
    assert_eq!(ws.read("repo/app/other.yaml"), CONFIG_MAP);
    assert!(!migrated.contains("bitnami"), "{migrated}");
    let objects = objects(&migrated);
    assert_eq!(objects.len(), 4);

    // strict: every value, type, labels, annotations, immutable.
    let strict = &objects[1];
    assert_eq!(strict["spec"]["scope"], "strict");
    let secret = unseal_one(&ws, strict);
    assert_eq!(secret["metadata"]["name"], "db");
    assert_eq!(secret["metadata"]["namespace"], "app");
    assert_eq!(secret["metadata"]["labels"], json!({"team": "payments"}));
    assert_eq!(secret["metadata"]["annotations"], json!({"note": "kept"}));
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(secret["immutable"], true);
    assert_eq!(data(&secret, "binary"), [0, 0xff, 0, 1]);
    assert_eq!(data(&secret, "username"), b"admin");
    assert_eq!(data(&secret, "password"), b"hunter2-canary");

    // namespace-wide: binary and empty values.
    let namespace_wide = &objects[2];
    assert_eq!(namespace_wide["spec"]["scope"], "namespace-wide");
    let secret = unseal_one(&ws, namespace_wide);
    assert_eq!(secret["metadata"]["name"], "tls-bundle");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(data(&secret, "blob"), binary_value());
    assert_eq!(data(&secret, "empty"), b"");

    // cluster-wide, sealed with the 4096-bit key, no namespace.
    let cluster_wide = &objects[3];
    assert_eq!(cluster_wide["spec"]["scope"], "cluster-wide");
    assert!(cluster_wide["metadata"].get("namespace").is_none());
    let secret = unseal_one(&ws, cluster_wide);
    assert_eq!(secret["metadata"]["labels"], json!({"shared": "true"}));
    assert_eq!(data(&secret, "token"), b"s3cr3t-token-canary");

    // A second run finds nothing left to migrate and writes nothing.
    let output = ws
        .cmd()
        .args(["migrate", "--in-place", "--bitnami-key"])
        .arg(&tools.keys_list)
        .args(["-r", &ws.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains(
            "0 SealedSecret(s) migrated (0 value(s)), 0 left behind; 0 file(s) rewritten"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("repo/app/secrets.yaml"), migrated);
}

#[test]
fn a_file_sealed_with_several_keys() {
    let Some(tools) = tools() else {
        return loud("SKIPPED: a_file_sealed_with_several_keys");
    };
    let ws = Workspace::new();
    let secret = |name: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: app}}\nstringData: {{value: {value}}}\n"
        )
    };
    // Renewed keys: A (oldest), B (4096-bit), C (given as a separate PEM).
    let file = format!(
        "{}{}{}",
        tools.seal(&tools.a, &secret("old", "sealed-with-a"), "strict"),
        tools.seal(&tools.b, &secret("newer", "sealed-with-b"), "strict"),
        tools.seal(&tools.c, &secret("newest", "sealed-with-c"), "strict"),
    );
    let path = ws.write("mixed.yaml", &file);

    // All keys: everything migrates; one file goes to stdout, untouched.
    let output = ws
        .cmd()
        .args(["migrate", "--bitnami-key"])
        .arg(&tools.keys_list)
        .arg("--bitnami-key")
        .arg(&tools.c.key)
        .args(["-r", &ws.recipient])
        .arg(&path)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(ws.read("mixed.yaml"), file);
    let migrated = objects(&stdout(&output));
    assert_eq!(migrated.len(), 3);
    for (object, expected) in migrated.iter().zip(["a", "b", "c"]) {
        let secret = unseal_one(&ws, object);
        assert_eq!(
            data(&secret, "value"),
            format!("sealed-with-{expected}").as_bytes()
        );
    }

    // Without key C, the others still migrate and C's object stays behind.
    let output = ws
        .cmd()
        .args(["migrate", "--in-place", "--bitnami-key", "-"])
        .args(["-r", &ws.recipient])
        .arg(&path)
        .write_stdin(fs::read_to_string(&tools.keys_list).unwrap())
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "{}: document 3 (line 28): app/newest: not migrated: key \"value\": none of the 2 given Bitnami key(s) decrypts it",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("2 SealedSecret(s) migrated (2 value(s)), 1 left behind; 1 file(s) rewritten"),
        "{err}"
    );
    let rewritten = ws.read("mixed.yaml");
    let objects = objects(&rewritten);
    assert_eq!(objects[0]["apiVersion"], "kseal.dev/v1alpha1");
    assert_eq!(objects[1]["apiVersion"], "kseal.dev/v1alpha1");
    assert_eq!(objects[2]["apiVersion"], "bitnami.com/v1alpha1");
    // The object left behind keeps its bytes.
    let third = file.split("---\n").nth(3).unwrap();
    assert!(rewritten.ends_with(third), "{rewritten}");
}

#[test]
fn unsupported_objects_are_reported_and_the_rest_migrates() {
    let Some(tools) = tools() else {
        return loud("SKIPPED: unsupported_objects_are_reported_and_the_rest_migrates");
    };
    let ws = Workspace::new();
    let good = tools.seal(&tools.a, &strict_secret(), "strict");
    // spec.template.data: Bitnami renders these from the decrypted values.
    let templated = tools
        .seal(&tools.a, &namespace_wide_secret(), "namespace-wide")
        .replace(
            "    type: Opaque\n",
            "    type: Opaque\n    data:\n      dsn: 'postgres://u:{{ index . \"blob\" }}@db'\n",
        );
    assert!(templated.contains("dsn"), "{templated}");
    let legacy = "---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: legacy, namespace: app}\nspec:\n  data: AAECAw==\n";
    let future = "---\napiVersion: bitnami.com/v1beta1\nkind: SealedSecret\nmetadata: {name: future, namespace: app}\nspec: {encryptedData: {}}\n";
    let unknown_key = tools.seal(&tools.c, &cluster_wide_secret(), "cluster-wide");
    let file = format!("{good}{templated}{legacy}{future}{unknown_key}");
    let path = ws.write("app.yaml", &file);
    let output = ws
        .cmd()
        .args(["migrate", "--in-place", "--bitnami-key"])
        .arg(&tools.keys_list)
        .args(["-r", &ws.recipient])
        .arg(&path)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    let at = |document: usize| format!("{}: document {document} (line ", path.display());
    for (document, name, reason) in [
        (
            2,
            "app/tls-bundle",
            "spec.template.data templates key(s) dsn",
        ),
        (
            3,
            "app/legacy",
            "uses the deprecated single-blob spec.data format",
        ),
        (
            4,
            "app/future",
            "unsupported Bitnami SealedSecret apiVersion \"bitnami.com/v1beta1\"",
        ),
        (
            5,
            "registry",
            "key \"token\": none of the 2 given Bitnami key(s)",
        ),
    ] {
        let line = err
            .lines()
            .find(|line| line.contains(&at(document)))
            .unwrap_or_else(|| panic!("document {document} not reported:\n{err}"));
        assert!(
            line.contains(&format!("{name}: not migrated: {reason}")),
            "{line}"
        );
    }
    assert!(
        err.contains("1 SealedSecret(s) migrated (3 value(s)), 4 left behind; 1 file(s) rewritten"),
        "{err}"
    );
    assert!(
        err.contains("kseal: error: 4 SealedSecret(s) or file(s) could not be migrated"),
        "{err}"
    );
    for canary in ["hunter2", "s3cr3t", "postgres"] {
        assert!(!err.contains(canary), "{err}");
        assert!(!stdout(&output).contains(canary));
    }
    let rewritten = ws.read("app.yaml");
    assert_eq!(objects(&rewritten)[0]["apiVersion"], "kseal.dev/v1alpha1");
    assert!(rewritten.ends_with(&format!("{templated}{legacy}{future}{unknown_key}")));
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let Some(tools) = tools() else {
        return loud("SKIPPED: dry_run_reports_and_writes_nothing");
    };
    let ws = Workspace::new();
    let one = format!(
        "{CONFIG_MAP}{}",
        tools.seal(&tools.a, &strict_secret(), "strict")
    );
    let two = format!(
        "{}{}",
        tools.seal(&tools.b, &namespace_wide_secret(), "namespace-wide"),
        tools.seal(&tools.c, &cluster_wide_secret(), "cluster-wide")
    );
    ws.write("repo/one.yaml", &one);
    ws.write("repo/sub/two.yaml", &two);
    let output = ws
        .cmd()
        .args(["migrate", "--dry-run", "--bitnami-key"])
        .arg(&tools.keys_list)
        .args(["-r", &ws.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("repo/one.yaml: document 2 (line 7): app/db: would migrate (strict): keys binary, password, username; Bitnami key(s) "),
        "{out}"
    );
    assert!(
        lines[1].starts_with("repo/sub/two.yaml: document 1 (line 2): app/tls-bundle: would migrate (namespace-wide): keys blob, empty; Bitnami key(s) "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("repo/sub/two.yaml: document 2 (line "),
        "{out}"
    );
    assert!(
        lines[2].contains("registry: would not migrate: key \"token\": none of the 2 given"),
        "{out}"
    );
    assert!(
        stderr(&output).contains(
            "2 SealedSecret(s) would be migrated (5 value(s)), 1 left behind; 0 file(s) rewritten"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!out.contains("hunter2") && !out.contains("s3cr3t"));
    assert_eq!(ws.read("repo/one.yaml"), one);
    assert_eq!(ws.read("repo/sub/two.yaml"), two);
    // Key C too: everything would migrate; exit 0; still nothing written.
    let output = ws
        .cmd()
        .args(["migrate", "--dry-run", "--in-place", "--bitnami-key"])
        .arg(&tools.keys_list)
        .arg("--bitnami-key")
        .arg(&tools.c.key)
        .args(["-r", &ws.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(ws.read("repo/one.yaml"), one);
    assert_eq!(ws.read("repo/sub/two.yaml"), two);
}

#[test]
fn recipients_come_from_kseal_yaml_by_path() {
    let Some(tools) = tools() else {
        return loud("SKIPPED: recipients_come_from_kseal_yaml_by_path");
    };
    let ws = Workspace::new();
    let staging = Workspace::new();
    ws.write(
        ".kseal.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^prod/\n    recipients: [{}]\n    scope: cluster-wide\n  - path_regex: ^staging/\n    recipients: [{}]\n",
            ws.recipient, staging.recipient
        ),
    );
    let sealed = tools.seal(&tools.a, &strict_secret(), "strict");
    ws.write("prod/db.yaml", &sealed);
    ws.write("staging/db.yaml", &sealed);
    ws.write("dev/db.yaml", &sealed);
    let output = ws
        .cmd()
        .args(["migrate", "--in-place", "--bitnami-key"])
        .arg(&tools.keys_list)
        .args(["prod", "staging", "dev"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(
            "dev/db.yaml: 1 Bitnami SealedSecret(s) not migrated: no recipients: no creation rule"
        ),
        "{err}"
    );
    assert!(
        err.contains("2 SealedSecret(s) migrated (6 value(s)), 1 left behind; 2 file(s) rewritten"),
        "{err}"
    );
    assert_eq!(ws.read("dev/db.yaml"), sealed);
    // Each file is sealed to its rule's recipients; the rule's scope does not
    // override Bitnami's.
    let prod = objects(&ws.read("prod/db.yaml")).remove(0);
    assert_eq!(prod["spec"]["scope"], "strict");
    assert_eq!(data(&unseal_one(&ws, &prod), "password"), b"hunter2-canary");
    let staged = objects(&ws.read("staging/db.yaml")).remove(0);
    assert_eq!(
        data(&unseal_one(&staging, &staged), "password"),
        b"hunter2-canary"
    );
    assert_exit(&ws.unseal(&to_yaml(&staged).unwrap()), 1);
}

#[test]
fn usage_errors() {
    // No kubeseal needed.
    let ws = Workspace::new();
    ws.write("repo/a.yaml", CONFIG_MAP);
    ws.write(
        "key.pem",
        include_str!("../../shared/src/bitnami/testdata/key-a.pem"),
    );
    let run = |args: &[&str]| ws.cmd().args(args).output().unwrap();

    let output = run(&[
        "migrate",
        "--bitnami-key",
        "key.pem",
        "-r",
        &ws.recipient,
        "repo",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("pass --in-place"),
        "{}",
        stderr(&output)
    );

    // No -r/-R, no .kseal.yaml, no reachable cluster: a clear error naming
    // every source of recipients, nothing written.
    ws.write(
        "bitnami/sealed.yaml",
        include_str!("../../shared/src/bitnami/testdata/sealed.yaml"),
    );
    let before = ws.read("bitnami/sealed.yaml");
    let output = run(&[
        "migrate",
        "--bitnami-key",
        "key.pem",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--in-place",
        "bitnami/sealed.yaml",
    ]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("no recipients") && err.contains(".kseal.yaml") && err.contains("cluster"),
        "{err}"
    );
    assert_eq!(ws.read("bitnami/sealed.yaml"), before);

    let output = run(&["migrate", "-r", &ws.recipient, "repo/a.yaml"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--bitnami-key"),
        "{}",
        stderr(&output)
    );

    // Not a key: exit 1, the file named, nothing of its content quoted.
    ws.write(
        "not-a-key.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ndata: {tls.key: aHVudGVyMg==}\n",
    );
    let output = run(&[
        "migrate",
        "--bitnami-key",
        "not-a-key.yaml",
        "-r",
        &ws.recipient,
        "repo/a.yaml",
    ]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("not-a-key.yaml: Bitnami key: document 1 (line 1) (k): data.tls.key holds no PEM private key"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2") && !err.contains("aHVudGVyMg"),
        "{err}"
    );

    // A file without Bitnami objects passes through untouched.
    let output = run(&[
        "migrate",
        "--bitnami-key",
        "key.pem",
        "-r",
        &ws.recipient,
        "repo/a.yaml",
    ]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), CONFIG_MAP);
}

/// What `migrate` writes passes `validate`; a Bitnami SealedSecret whose
/// names Kubernetes would refuse (here a label key, which Bitnami never
/// checks) is left behind with the rule, and the rest migrates.
#[test]
fn migrated_output_validates_and_refused_names_stay_behind() {
    let Some(tools) = tools() else {
        return loud("SKIPPED: migrated_output_validates_and_refused_names_stay_behind");
    };
    let ws = Workspace::new();
    let bad = strict_secret()
        .replace("name: db", "name: bad")
        .replace("team: payments", "-team: payments");
    let file = format!(
        "{CONFIG_MAP}{}{}",
        tools.seal(&tools.a, &strict_secret(), "strict"),
        tools.seal(&tools.a, &bad, "strict"),
    );
    ws.write("secrets.yaml", &file);
    let output = ws
        .cmd()
        .args(["migrate", "--in-place", "--bitnami-key"])
        .arg(&tools.keys_list)
        .args(["-r", &ws.recipient, "secrets.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("app/bad: not migrated: cannot seal for kseal: invalid label key \"-team\""),
        "{err}"
    );
    assert!(err.contains("1 SealedSecret(s) migrated"), "{err}");
    let migrated = ws.read("secrets.yaml");
    for command in ["validate", "inspect"] {
        let output = ws.cmd().args([command, "secrets.yaml"]).output().unwrap();
        assert_exit(&output, 0);
    }
    let objects = objects(&migrated);
    assert_eq!(objects[1]["kind"], "SealedSecret");
    assert_eq!(objects[1]["apiVersion"], "kseal.dev/v1alpha1");
    assert_eq!(objects[2]["apiVersion"], "bitnami.com/v1alpha1");
}
