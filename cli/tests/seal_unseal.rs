//! `kseal keygen`, `seal` and `unseal` through the real binary.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn round_trip_keeps_data_type_labels_and_annotations() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    assert!(sealed.contains("kind: SealedSecret"));
    assert!(sealed.contains("scope: strict"));
    assert!(!sealed.contains("hunter2"), "plaintext in output");
    let output = ws.unseal(&sealed);
    assert_exit(&output, 0);
    let secret = stdout(&output);
    assert!(secret.contains("binary: AP8AAQ=="), "{secret}");
    assert!(
        secret.contains("password: aHVudGVyMi1jYW5hcnk="),
        "{secret}"
    );
    assert!(secret.contains("username: YWRtaW4="), "{secret}");
    assert!(secret.contains("type: kubernetes.io/basic-auth"));
    assert!(secret.contains("team: payments"));
    assert!(secret.contains("note: kept"));
}

#[test]
fn strips_plaintext_annotations_and_cluster_metadata() {
    let ws = Workspace::new();
    let input = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: app
  uid: 6c3f-11
  resourceVersion: \"42\"
  creationTimestamp: \"2026-01-01T00:00:00Z\"
  managedFields: [{manager: kubectl}]
  ownerReferences: [{apiVersion: v1, kind: Pod, name: p, uid: u}]
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"pw\":\"s3cr3t-value\"}}'
    copy-of-value: s3cr3t-value
stringData:
  pw: s3cr3t-value
";
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient])
        .write_stdin(input)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = stdout(&output);
    for gone in [
        "s3cr3t",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "ownerReferences",
        "last-applied",
        "copy-of-value",
    ] {
        assert!(!sealed.contains(gone), "{gone} in\n{sealed}");
    }
    assert!(stderr(&output).contains("dropped annotations"));
    assert!(!stderr(&output).contains("s3cr3t"));
}

#[test]
fn multi_document_yaml_and_json() {
    let ws = Workspace::new();
    let two = format!(
        "{SECRET}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: other, namespace: app}}\nstringData: {{k: v}}\n"
    );
    let sealed = ws.seal(&two, &[]);
    assert_eq!(sealed.matches("kind: SealedSecret").count(), 2);
    let secrets = stdout(&ws.unseal(&sealed));
    assert_eq!(secrets.matches("kind: Secret").count(), 2);

    let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j","namespace":"ns"},"data":{"k":"dg=="}}"#;
    let sealed_json = ws.seal(json, &["--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&sealed_json).unwrap();
    assert_eq!(parsed["kind"], "SealedSecret");
    let output = ws
        .cmd()
        .args(["unseal", "--format", "json", "-i"])
        .arg(&ws.identity)
        .write_stdin(sealed_json)
        .output()
        .unwrap();
    let secret: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(secret["data"]["k"], "dg==");
}

#[test]
fn builds_a_secret_from_literals_files_and_env_files() {
    let ws = Workspace::new();
    ws.write("cert.pem", "-----BEGIN-----\n");
    std::fs::write(ws.path("blob.bin"), [0u8, 159, 146, 150]).unwrap();
    ws.write("app.env", "# comment\nA=1\nB=two words\n");
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "mixed",
            "--namespace",
            "ns",
            "--type",
            "Opaque",
        ])
        .args([
            "--from-literal",
            "user=admin",
            "--from-file",
            "cert.pem",
            "--from-file",
            "bin=blob.bin",
            "--from-env-file",
            "app.env",
        ])
        .args(["-o", "out.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let secret = stdout(&ws.unseal(&ws.read("out.yaml")));
    for expected in [
        "user: YWRtaW4=",
        "cert.pem: LS0tLS1CRUdJTi0tLS0tCg==",
        "bin: AJ+Slg==",
        "A: MQ==",
        "B: dHdvIHdvcmRz",
        "type: Opaque",
    ] {
        assert!(secret.contains(expected), "{expected} missing in\n{secret}");
    }
}

#[test]
fn scopes_are_written_and_enforced_at_unseal() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &["--scope", "namespace-wide"]);
    assert!(sealed.contains("scope: namespace-wide"));
    // Renaming is fine for namespace-wide…
    let renamed = sealed.replace("name: db", "name: renamed");
    assert_exit(&ws.unseal(&renamed), 0);
    // …moving to another namespace is not.
    let moved = sealed.replace("namespace: app", "namespace: other");
    let output = ws.unseal(&moved);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("decryption failed"),
        "{}",
        stderr(&output)
    );
    // Widening the scope in the manifest does not widen the values.
    let widened = sealed.replace("scope: namespace-wide", "scope: cluster-wide");
    assert_exit(&ws.unseal(&widened), 1);
}

#[test]
fn cluster_wide_needs_no_namespace() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--scope",
            "cluster-wide",
            "--name",
            "reg",
            "--from-literal",
            "k=v",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = stdout(&output);
    let moved = sealed.replace("name: reg", "name: reg\n  namespace: anywhere");
    assert_exit(&ws.unseal(&moved), 0);
}

#[test]
fn tampered_and_moved_values_are_rejected() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    // Flip one character of the ciphertext.
    let tampered = edit_value(&sealed, "password", |value| {
        let mut fields: Vec<String> = value.split(':').map(str::to_owned).collect();
        let last = fields.last_mut().unwrap();
        let first = if last.starts_with('A') { "B" } else { "A" };
        last.replace_range(0..1, first);
        fields.join(":")
    });
    let output = ws.unseal(&tampered);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("\"password\""),
        "{}",
        stderr(&output)
    );
    // The username value moved into the password key.
    let username = value_of(&sealed, "username");
    let swapped = edit_value(&sealed, "password", |_| username.clone());
    let output = ws.unseal(&swapped);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("moved to another key"),
        "{}",
        stderr(&output)
    );
    // Another name (strict).
    assert_exit(&ws.unseal(&sealed.replace("name: db", "name: db2")), 1);
    // Nothing written on failure.
    let output = ws
        .cmd()
        .args(["unseal", "-o", "plain.yaml", "-i"])
        .arg(&ws.identity)
        .write_stdin(tampered)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(!ws.path("plain.yaml").exists());
}

#[test]
fn unknown_version_wrong_identity_and_empty_identity_file() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    let future = sealed.replace("kseal:v2:", "kseal:v7:");
    let output = ws.unseal(&future);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("unsupported sealed-value format version \"v7\""),
        "{}",
        stderr(&output)
    );

    let other = Workspace::new();
    let output = ws
        .cmd()
        .args(["unseal", "-i"])
        .arg(&other.identity)
        .write_stdin(sealed.clone())
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("none of the given identities"),
        "{}",
        stderr(&output)
    );

    ws.write("empty-key.txt", "# created: nothing here\n\n");
    let output = ws
        .cmd()
        .args(["unseal", "-i", "empty-key.txt"])
        .write_stdin(sealed)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("empty-key.txt: the identity file contains no identities"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn input_errors_name_file_document_and_line() {
    let ws = Workspace::new();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\ndata:\n  k: [unclosed\n",
            &["bad.yaml", "document 2", "line 7", "invalid YAML"],
        ),
        (
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            &["cm.yaml", "document 1", "expected a v1 Secret", "ConfigMap"],
        ),
        (
            "empty.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\n",
            &["empty.yaml", "no data", "--allow-empty-data"],
        ),
        (
            "key.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\nstringData: {\"bad/key\": v}\n",
            &["invalid data key name", "bad/key"],
        ),
        (
            "b64.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\ndata: {k: \"not*base64\"}\n",
            &["data.k is not valid base64"],
        ),
        (
            "nons.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: e}\nstringData: {k: v}\n",
            &["no metadata.namespace", "strict"],
        ),
    ];
    for (name, contents, expected) in cases {
        ws.write(name, contents);
        let output = ws
            .cmd()
            .args(["seal", "-r", &ws.recipient, "-f", name, "-o", "out.yaml"])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        let err = stderr(&output);
        for fragment in *expected {
            assert!(
                err.contains(fragment),
                "{name}: {fragment:?} missing in {err}"
            );
        }
        assert!(!err.contains("not*base64"), "value echoed: {err}");
        assert!(
            !ws.path("out.yaml").exists(),
            "{name}: output written on failure"
        );
    }
    // --allow-empty-data seals it anyway.
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "-f",
            "empty.yaml",
            "--allow-empty-data",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
}

#[test]
fn oversized_secret_is_refused() {
    let ws = Workspace::new();
    let big = "a".repeat(1024 * 1024 + 1);
    ws.write("big.txt", &big);
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "b",
            "--namespace",
            "n",
            "--from-file",
            "big.txt",
            "-o",
            "out.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("1 MiB"), "{}", stderr(&output));
    assert!(!ws.path("out.yaml").exists());
}

#[test]
fn failed_seal_leaves_existing_output_untouched() {
    let ws = Workspace::new();
    ws.write("out.yaml", "previous contents\n");
    ws.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\ndata: {k: \"***\"}\n",
    );
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "-f",
            "bad.yaml",
            "-o",
            "out.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert_eq!(ws.read("out.yaml"), "previous contents\n");
}

#[test]
fn usage_errors_exit_2() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args(["seal", "--scope", "galaxy-wide", "-r", &ws.recipient])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("galaxy-wide"));
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "-f",
            "x.yaml",
            "--from-literal",
            "a=b",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient, "--from-literal", "novalue"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    let output = ws.cmd().args(["frobnicate"]).output().unwrap();
    assert_exit(&output, 2);
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            "age1notarecipient",
            "--name",
            "x",
            "--namespace",
            "y",
            "--from-literal",
            "a=b",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("invalid recipient"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn no_recipient_is_a_clear_error() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args(["seal"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no recipients"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn merge_into_replaces_and_adds_keeping_other_values() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    let file = format!(
        "# the database\n{sealed}---\napiVersion: v1\nkind: ConfigMap\nmetadata:   {{name: untouched}}\n"
    );
    ws.write("sealed.yaml", &file);
    let before_username = value_of(&sealed, "username");
    let before_binary = value_of(&sealed, "binary");
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
        ])
        .args([
            "--from-literal",
            "password=new-password",
            "--from-literal",
            "token=t0k",
            "--merge-into",
            "sealed.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let merged = ws.read("sealed.yaml");
    assert!(merged.starts_with("# the database\n"));
    assert!(
        merged.ends_with("---\napiVersion: v1\nkind: ConfigMap\nmetadata:   {name: untouched}\n"),
        "{merged}"
    );
    assert_eq!(value_of(&merged, "username"), before_username);
    assert_eq!(value_of(&merged, "binary"), before_binary);
    assert_ne!(value_of(&merged, "password"), value_of(&sealed, "password"));
    let first_doc = merged.split("---\n").next().unwrap().to_owned();
    let secret = stdout(&ws.unseal(&first_doc));
    assert!(secret.contains("password: bmV3LXBhc3N3b3Jk"), "{secret}");
    assert!(secret.contains("token: dDBr"));
    assert!(secret.contains("username: YWRtaW4="));
    // Merging into a different object is refused and changes nothing.
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "other",
            "--namespace",
            "app",
            "--from-literal",
            "a=b",
            "--merge-into",
            "sealed.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert_eq!(ws.read("sealed.yaml"), merged);
}

#[test]
fn raw_prints_one_sealed_string() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args([
            "seal",
            "--raw",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "password=raw-value",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let raw = stdout(&output);
    assert!(
        raw.starts_with("kseal:v2:") && raw.ends_with('\n') && raw.lines().count() == 1,
        "{raw}"
    );
    // The raw value opens in a hand-written SealedSecret for the same place.
    let manifest = format!(
        "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: app\nspec:\n  encryptedData:\n    password: {}\n",
        raw.trim()
    );
    let secret = stdout(&ws.unseal(&manifest));
    assert!(secret.contains("password: cmF3LXZhbHVl"), "{secret}");

    // Value from stdin with --key.
    let output = ws
        .cmd()
        .args([
            "seal",
            "--raw",
            "-r",
            &ws.recipient,
            "--scope",
            "cluster-wide",
            "--key",
            "token",
        ])
        .write_stdin("from-stdin")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    // Missing name for strict scope is a usage error.
    let output = ws
        .cmd()
        .args(["seal", "--raw", "-r", &ws.recipient, "--key", "k"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("needs a namespace") || stderr(&output).contains("needs a name"),
        "{}",
        stderr(&output)
    );
    // Two values are refused.
    let output = ws
        .cmd()
        .args([
            "seal",
            "--raw",
            "-r",
            &ws.recipient,
            "--name",
            "a",
            "--namespace",
            "b",
            "--from-literal",
            "x=1",
            "--from-literal",
            "y=2",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 2);
}

#[test]
fn keygen_refuses_to_overwrite() {
    let ws = Workspace::new();
    let before = ws.read("key.txt");
    ws.cmd()
        .args(["keygen", "-o", "key.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(ws.read("key.txt"), before);
    ws.cmd()
        .args(["keygen", "-o", "key.txt", "--force"])
        .assert()
        .success();
    assert_ne!(ws.read("key.txt"), before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ws.path("key.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // To stdout: the identity file, and the public key on stderr.
    let output = ws.cmd().arg("keygen").output().unwrap();
    assert!(stdout(&output).contains("AGE-SECRET-KEY-1"));
    assert!(stderr(&output).starts_with("Public key: age1"));
}

#[test]
fn broken_pipe_is_not_an_error() {
    let ws = Workspace::new();
    ws.write("big.txt", &"x".repeat(600 * 1024));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kseal"))
        .current_dir(ws.dir.path())
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "b",
            "--namespace",
            "n",
            "--from-file",
            "big.txt",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before kseal writes its ~800 KB.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 0);
    // Only the warning that so large an object needs server-side apply.
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning") && err.contains("--server-side"),
        "{err}"
    );
}

/// A `--from-literal` without `=` may be a bare value: the error shows none
/// of it.
#[test]
fn literal_without_key_is_not_echoed() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
        ])
        .args(["--from-literal", "hunter2canary"])
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(all.contains("KEY=VALUE"), "{all}");
    assert!(!all.contains("hunter2canary"), "{all}");
}

/// `kseal seal` reads `apiVersion` and lists as kubectl does (checked
/// against kubectl 1.36): `/v1` is core v1, so a `/v1` Secret is sealed as
/// kubectl would create it (the API server stores it as `v1`), alone or in
/// a `/v1 List`; an item of a `SecretList` naming neither apiVersion nor
/// kind is a Secret. Spellings kubectl or the API server refuse are refused.
#[test]
fn seal_reads_api_version_as_kubectl_does() {
    let ws = Workspace::new();
    let secret = |api_version: &str, name: &str| {
        format!(
            "{{apiVersion: {api_version}, kind: Secret, metadata: {{name: {name}, namespace: app}}, stringData: {{k: v-{name}}}}}"
        )
    };
    let cases = [
        // Not a flow mapping first in the file: that is taken for JSON.
        (format!("---\n{}\n", secret("/v1", "slash")), vec!["slash"]),
        (
            format!(
                "apiVersion: /v1\nkind: List\nitems:\n  - {}\n  - {}\n",
                secret("/v1", "a"),
                secret("v1", "b")
            ),
            vec!["a", "b"],
        ),
        (
            "apiVersion: v1\nkind: SecretList\nitems:\n  - {metadata: {name: c, namespace: app}, stringData: {k: v-c}}\n".to_owned(),
            vec!["c"],
        ),
    ];
    for (input, names) in cases {
        let sealed = ws.seal(&input, &[]);
        assert_eq!(
            sealed.matches("kind: SealedSecret").count(),
            names.len(),
            "{input}\n{sealed}"
        );
        let output = ws.unseal(&sealed);
        assert_exit(&output, 0);
        let secrets = stdout(&output);
        for name in names {
            let value = base64_of(&format!("v-{name}"));
            assert!(secrets.contains(&format!("name: {name}\n")), "{secrets}");
            assert!(secrets.contains(&format!("k: {value}\n")), "{secrets}");
        }
        assert!(!secrets.contains("/v1"), "{secrets}");
    }
    for api_version in ["core/v1", "v1/", "//v1", "V1", "\" v1\""] {
        let output = ws
            .cmd()
            .args(["seal", "-r", &ws.recipient])
            .write_stdin(format!("---\n{}\n", secret(api_version, "x")))
            .output()
            .unwrap();
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("expected a v1 Secret"),
            "{api_version}: {}",
            stderr(&output)
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `-o` into a directory that does not exist yet (a new cluster's or app's
/// directory in the repository) makes it; a path whose parent is a file
/// fails, naming it, and writes nothing.
#[test]
fn output_directories_are_made() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "-o",
            "clusters/prod/demo/db.sealed.yaml",
        ])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        ws.read("clusters/prod/demo/db.sealed.yaml")
            .contains("kind: SealedSecret")
    );
    ws.write("file", "not a directory\n");
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient, "-o", "file/sub/db.yaml"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("cannot create directory file/sub"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("file"), "not a directory\n");
}
