//! The built-in Secret types' rules on every path into a SealedSecret:
//! `seal` from flags and manifests, `seal --merge-into` (on the merged
//! object), `validate` (the keys a type requires, without keys) and
//! `unseal`. What the API server itself refuses is in kubectl_parity.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn seal_flags(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "web",
            "--namespace",
            "app",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn seal_refuses_what_the_type_forbids_naming_type_and_key() {
    let ws = Workspace::new();
    let output = seal_flags(
        &ws,
        &["--type", "kubernetes.io/tls", "--from-literal", "tls.crt=c"],
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("type kubernetes.io/tls requires data[tls.key], which is missing"),
        "{err}"
    );
    assert!(stdout(&output).is_empty());

    // The JSON rule says where, never what.
    let output = seal_flags(
        &ws,
        &[
            "--type",
            "kubernetes.io/dockerconfigjson",
            "--from-literal",
            ".dockerconfigjson={\"auths\": hunter2}",
        ],
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(
            "requires data[.dockerconfigjson] to be a JSON object, but it is not JSON: an unexpected character at byte 10"
        ),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // From a manifest too, every problem at once.
    ws.write(
        "tls.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: web, namespace: app}\ntype: kubernetes.io/tls\nstringData: {ca.crt: c}\n",
    );
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient, "-f", "tls.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("data[tls.crt]") && err.contains("data[tls.key]"),
        "{err}"
    );

    // What the API server takes, kseal seals.
    for args in [
        &[
            "--type",
            "kubernetes.io/tls",
            "--from-literal",
            "tls.crt=c",
            "--from-literal",
            "tls.key=",
        ][..],
        &[
            "--type",
            "kubernetes.io/dockerconfigjson",
            "--from-literal",
            ".dockerconfigjson={\"auths\":{}}",
        ],
        &[
            "--type",
            "kubernetes.io/basic-auth",
            "--from-literal",
            "password=",
        ],
        &["--type", "example.com/anything", "--from-literal", "k=v"],
    ] {
        assert_exit(&seal_flags(&ws, args), 0);
    }
}

#[test]
fn merge_into_checks_the_merged_object() {
    let ws = Workspace::new();
    let output = seal_flags(
        &ws,
        &[
            "--type",
            "kubernetes.io/dockerconfigjson",
            "--from-literal",
            ".dockerconfigjson={}",
        ],
    );
    assert_exit(&output, 0);
    ws.write("pull.yaml", &stdout(&output));
    let merge = |args: &[&str]| {
        ws.cmd()
            .args(["seal", "-r", &ws.recipient, "--merge-into", "pull.yaml"])
            .args(args)
            .output()
            .unwrap()
    };
    // A new value must hold to the type's rule: the file is untouched.
    let before = ws.read("pull.yaml");
    let output = merge(&["--from-literal", ".dockerconfigjson=[]"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("but it is a JSON array, not an object"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("pull.yaml"), before);
    // Another type than the object's is refused, not silently dropped.
    let output = merge(&["--type", "Opaque", "--from-literal", "extra=v"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("of type \"Opaque\""),
        "{}",
        stderr(&output)
    );
    // A value the rule accepts, and an extra key, are merged.
    assert_exit(
        &merge(&["--from-literal", ".dockerconfigjson={\"auths\":{}}"]),
        0,
    );
    assert_exit(
        &merge(&[
            "--type",
            "kubernetes.io/dockerconfigjson",
            "--from-literal",
            "extra=v",
        ]),
        0,
    );

    // A key the type requires may arrive by a merge: a tls object whose
    // tls.key was left out by hand gets it back.
    let output = seal_flags(
        &ws,
        &[
            "--type",
            "kubernetes.io/tls",
            "--from-literal",
            "tls.crt=c",
            "--from-literal",
            "tls.key=k",
        ],
    );
    assert_exit(&output, 0);
    let without_key: String = stdout(&output)
        .lines()
        .filter(|line| !line.trim_start().starts_with("tls.key:"))
        .map(|line| format!("{line}\n"))
        .collect();
    ws.write("tls.yaml", &without_key);
    let output = ws.cmd().args(["validate", "tls.yaml"]).output().unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("type kubernetes.io/tls requires data[tls.key], which is missing"),
        "{}",
        stderr(&output)
    );
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--merge-into",
            "tls.yaml",
            "--from-literal",
            "tls.key=k",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_exit(
        &ws.cmd().args(["validate", "tls.yaml"]).output().unwrap(),
        0,
    );
}

#[test]
fn validate_checks_the_keys_and_annotation_each_type_requires() {
    let ws = Workspace::new();
    let sealed = ws.seal(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: app}\nstringData: {k: v}\n",
        &[],
    );
    for (type_, annotations, problem) in [
        ("kubernetes.io/tls", "", Some("data[tls.crt]")),
        ("kubernetes.io/ssh-auth", "", Some("data[ssh-privatekey]")),
        (
            "kubernetes.io/basic-auth",
            "",
            Some("data[username] or data[password]"),
        ),
        ("kubernetes.io/dockercfg", "", Some("data[.dockercfg]")),
        (
            "kubernetes.io/dockerconfigjson",
            "",
            Some("data[.dockerconfigjson]"),
        ),
        (
            "kubernetes.io/service-account-token",
            "",
            Some("kubernetes.io/service-account.name"),
        ),
        (
            "kubernetes.io/service-account-token",
            "{kubernetes.io/service-account.name: builder}",
            None,
        ),
        ("Opaque", "", None),
        ("bootstrap.kubernetes.io/token", "", None),
    ] {
        let metadata = if annotations.is_empty() {
            String::new()
        } else {
            format!("\n    metadata:\n      annotations: {annotations}")
        };
        let typed = sealed.replace(
            "spec:\n",
            &format!("spec:\n  template:\n    type: {type_}{metadata}\n"),
        );
        ws.write("typed.yaml", &typed);
        let output = ws.cmd().args(["validate", "typed.yaml"]).output().unwrap();
        match problem {
            Some(problem) => {
                assert_exit(&output, 1);
                assert!(
                    stderr(&output).contains(problem),
                    "{type_}: {}",
                    stderr(&output)
                );
            }
            None => assert_exit(&output, 0),
        }
    }
}
