//! What the CLI says about a cluster's keys, against a fake API server
//! that serves the published-key ConfigMap (and SealedSecrets):
//! * `kseal seal` and `kseal fetch-keys` when the cluster answers but its
//!   published keys do not hold together (someone other than the
//!   controller changed the ConfigMap): that the cluster's keys were
//!   refused, first, not that no cluster could be reached;
//! * `kseal seal` sealing to the cluster: which key, which context;
//! * `kseal fetch-keys` and `seal` on a cluster with no key;
//! * `kseal keys list`: keys SealedSecrets use that the cluster no longer
//!   holds, and `-o json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;

use common::*;
use kseal_shared::binding::Scope;
use kseal_shared::contract::{
    HELD_KEYS_ANNOTATION, KEYS_DATA_KEY, KeyState, PUBLIC_KEYS_CONFIGMAP, PublishedKey,
    RECIPIENTS_DATA_KEY,
};
use kseal_shared::manifest::{PlainSecret, SealOptions, seal_secret};
use kseal_shared::secret::SecretBytes;
use kseal_shared::x25519::{Identity, Recipient};

/// Serves `config_map` (JSON) for every request until the test ends;
/// returns the server's URL.
fn serve(config_map: String) -> String {
    serve_routes(vec![("/", config_map)])
}

/// Serves each GET the body of the first route whose path its path starts
/// with (JSON, 200), and a Kubernetes 404 Status for any other, until the
/// test ends; returns the server's URL.
fn serve_routes(routes: Vec<(&'static str, String)>) -> String {
    fake_api_server(move |path| {
        routes
            .iter()
            .find(|(route, _)| path.starts_with(route))
            .map(|(_, body)| body.clone())
    })
}

/// A published-keys ConfigMap whose recipients file names one more
/// recipient than the key list gives as active (an appended key).
fn tampered() -> String {
    let active = Identity::generate().recipient().clone();
    let appended = Identity::generate().recipient().clone();
    let keys = vec![PublishedKey {
        id: active.key_id().to_string(),
        recipient: active.to_string(),
        created: "2026-01-01T00:00:00Z".into(),
        state: KeyState::Active,
    }];
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": PUBLIC_KEYS_CONFIGMAP, "namespace": "kseal-system"},
        "data": {
            RECIPIENTS_DATA_KEY: format!("{active}\n{appended}\n"),
            KEYS_DATA_KEY: serde_json::to_string(&keys).unwrap(),
        },
    })
    .to_string()
}

fn kubeconfig(ws: &Workspace, url: &str) -> String {
    let path = ws.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    );
    path.to_str().unwrap().to_owned()
}

/// The cluster answered with keys kseal refuses: `seal` says so first
/// (the old message led with "pass -r … or reach a cluster running
/// kseal"), and neither it nor `fetch-keys` claims to seal anything.
#[test]
fn refused_published_keys_are_said_first() {
    let ws = Workspace::new();
    let kubeconfig = kubeconfig(&ws, &serve(tampered()));
    let output = ws
        .cmd()
        .args(["seal", "--kubeconfig", &kubeconfig])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.starts_with(
            "kseal: error: no recipients: the cluster was reached, but its published keys were refused: ConfigMap kseal-system/kseal-public-keys does not hold together as the kseal controller writes it, so kseal does not use it"
        ),
        "{err}"
    );
    assert!(
        err.contains("without the cluster, pass -r/--recipient"),
        "{err}"
    );
    assert!(!err.contains("reach a cluster"), "{err}");
    assert!(stdout(&output).is_empty());

    let output = ws
        .cmd()
        .args(["fetch-keys", "--kubeconfig", &kubeconfig])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(
            "does not hold together as the kseal controller writes it, so kseal does not use it"
        ) && !err.contains("sealed"),
        "{err}"
    );
    assert!(stdout(&output).is_empty());
}

/// No cluster answering: the message still offers every way to recipients.
#[test]
fn an_unreachable_cluster_is_said_as_before() {
    let ws = Workspace::new();
    // A port nothing listens on (bound, then closed).
    let url = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let kubeconfig = kubeconfig(&ws, &url);
    let output = ws
        .cmd()
        .args(["seal", "--kubeconfig", &kubeconfig])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("no recipients: pass -r/--recipient")
            && err.contains("or reach a cluster running kseal"),
        "{err}"
    );
    // The cause in words: not hyper's `client error (Connect)`.
    assert!(!kseal_shared::looks_like_rust_debug(&err), "{err}");
    assert!(err.contains("cannot connect: "), "{err}");
}

const PUBLIC_KEYS_PATH: &str = "/api/v1/namespaces/kseal-system/configmaps/kseal-public-keys";
const SEALED_SECRETS_PATH: &str = "/apis/kseal.dev/v1alpha1/sealedsecrets";

/// The public-key ConfigMap as the controller writes it: every key of
/// `keys` with its state and creation time, the (first) active one in the
/// recipients file, and `held` as the held-key annotation.
fn published(keys: &[(&Identity, KeyState, &str)], held: &[&Identity]) -> String {
    let mut recipients =
        String::from("# kseal: public keys of this cluster. Seal to these recipients.\n");
    if let Some((active, _, _)) = keys.iter().find(|(_, state, _)| *state == KeyState::Active) {
        recipients.push_str(&format!("{}\n", active.recipient()));
    }
    let list: Vec<PublishedKey> = keys
        .iter()
        .map(|(identity, state, created)| PublishedKey {
            id: identity.key_id().to_string(),
            recipient: identity.recipient().to_string(),
            created: (*created).to_owned(),
            state: *state,
        })
        .collect();
    let held: Vec<String> = held.iter().map(|key| key.key_id().to_string()).collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": PUBLIC_KEYS_CONFIGMAP,
            "namespace": "kseal-system",
            "annotations": {HELD_KEYS_ANNOTATION: held.join(",")},
        },
        "data": {
            RECIPIENTS_DATA_KEY: recipients,
            KEYS_DATA_KEY: serde_json::to_string(&list).unwrap(),
        },
    })
    .to_string()
}

/// A SealedSecret `namespace/name` with one value sealed to `recipients`,
/// its status naming their key ids as the controller's would.
fn sealed_secret(namespace: &str, name: &str, recipients: &[Recipient]) -> serde_json::Value {
    let mut secret = PlainSecret {
        name: name.into(),
        namespace: namespace.into(),
        ..PlainSecret::default()
    };
    secret
        .insert("password", SecretBytes::from(&b"hunter2"[..]))
        .unwrap();
    let sealed = seal_secret(
        &secret,
        SealOptions {
            scope: Scope::Strict,
            recipients,
            allow_empty_data: false,
        },
    )
    .unwrap();
    let mut value = serde_json::to_value(&sealed).unwrap();
    let mut ids: Vec<String> = recipients
        .iter()
        .map(|recipient| recipient.key_id().to_string())
        .collect();
    ids.sort();
    value["status"] = serde_json::json!({"keyIds": ids});
    value
}

fn sealed_secret_list(items: Vec<serde_json::Value>) -> String {
    serde_json::json!({
        "apiVersion": "kseal.dev/v1alpha1",
        "kind": "SealedSecretList",
        "metadata": {"resourceVersion": "7"},
        "items": items,
    })
    .to_string()
}

/// The fields of the table row for `id`.
fn row(table: &str, id: &str) -> Vec<String> {
    table
        .lines()
        .find(|line| line.starts_with(id))
        .unwrap_or_else(|| panic!("no row for {id} in\n{table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Keys that SealedSecrets still use and the cluster no longer holds are
/// listed (`deleted` when the cluster held them once, `unknown` when it
/// never did), with a warning naming the SealedSecrets it cannot decrypt;
/// a key that is only an extra recipient (an offline recovery key) is
/// listed as `other`, without a warning. `-o json` gives the same rows.
#[test]
fn keys_list_shows_keys_in_use_that_the_cluster_no_longer_holds() {
    let ws = Workspace::new();
    let active = Identity::generate();
    let decrypt_only = Identity::generate();
    let deleted = Identity::generate();
    let recovery = Identity::generate();
    let stranger = Identity::generate();
    let config_map = published(
        &[
            (&active, KeyState::Active, "2026-03-01T10:00:00.123456789Z"),
            (&decrypt_only, KeyState::DecryptOnly, "2026-01-01T00:00:00Z"),
        ],
        &[&deleted, &decrypt_only, &active],
    );
    let r = |identity: &Identity| identity.recipient().clone();
    let list = sealed_secret_list(vec![
        sealed_secret("app", "one", &[r(&active)]),
        sealed_secret("app", "two", &[r(&deleted)]),
        sealed_secret("app", "three", &[r(&active), r(&recovery)]),
        sealed_secret("other", "four", &[r(&stranger)]),
    ]);
    let url = serve_routes(vec![
        (PUBLIC_KEYS_PATH, config_map),
        (SEALED_SECRETS_PATH, list),
    ]);
    let kubeconfig = kubeconfig(&ws, &url);
    let id = |identity: &Identity| identity.key_id().to_string();

    let output = ws
        .cmd()
        .args(["keys", "list", "--kubeconfig", &kubeconfig])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let table = stdout(&output);
    assert!(table.starts_with("KEY ID"), "{table}");
    assert_eq!(
        row(&table, &id(&active)),
        [&id(&active), "active", "2026-03-01T10:00:00Z", "2"]
    );
    assert_eq!(
        row(&table, &id(&decrypt_only)),
        [
            &id(&decrypt_only),
            "decrypt-only",
            "2026-01-01T00:00:00Z",
            "0"
        ]
    );
    assert_eq!(
        row(&table, &id(&deleted)),
        [&id(&deleted), "deleted", "-", "1"]
    );
    assert_eq!(
        row(&table, &id(&recovery)),
        [&id(&recovery), "other", "-", "1"]
    );
    assert_eq!(
        row(&table, &id(&stranger)),
        [&id(&stranger), "unknown", "-", "1"]
    );
    // The held keys first, in the published order; then the others by id.
    let mut missing = [id(&deleted), id(&recovery), id(&stranger)];
    missing.sort();
    let order: Vec<String> = table
        .lines()
        .skip(1)
        .map(|line| line[..16].to_owned())
        .collect();
    assert_eq!(order[..2], [id(&active), id(&decrypt_only)]);
    assert_eq!(order[2..], missing);

    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "kseal: warning: key {} is deleted: this cluster held it once and no longer does; 1 SealedSecret(s) sealed to it cannot be decrypted by this cluster: app/two; restore the key from a backup (kseal keys restore) or seal their values again",
            id(&deleted)
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "kseal: warning: key {} is unknown: this cluster does not hold it and, as far as it records, never did; 1 SealedSecret(s) sealed to it cannot be decrypted by this cluster: other/four;",
            id(&stranger)
        )),
        "{err}"
    );
    // A key that only ever sits beside the cluster's (the recovery key of
    // the recommended layout) is expected: no warning, no note.
    assert!(!err.contains(&id(&recovery)), "{err}");
    assert!(err.contains("no key backup recorded"), "{err}");

    // JSON: the same rows, every user named; warnings still on stderr only.
    for flag in ["-o", "--output"] {
        let output = ws
            .cmd()
            .args(["keys", "list", flag, "json", "--kubeconfig", &kubeconfig])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        let rows: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[0],
            serde_json::json!({
                "id": id(&active),
                "state": "active",
                "created": "2026-03-01T10:00:00.123456789Z",
                "sealedSecrets": 2,
                "users": ["app/one", "app/three"],
            })
        );
        assert_eq!(
            rows[1],
            serde_json::json!({
                "id": id(&decrypt_only),
                "state": "decrypt-only",
                "created": "2026-01-01T00:00:00Z",
                "sealedSecrets": 0,
                "users": [],
            })
        );
        let deleted_row = rows.iter().find(|row| row["id"] == id(&deleted)).unwrap();
        assert_eq!(
            deleted_row,
            &serde_json::json!({
                "id": id(&deleted),
                "state": "deleted",
                "created": null,
                "sealedSecrets": 1,
                "users": ["app/two"],
            })
        );
        let err = stderr(&output);
        assert!(err.contains("kseal: warning: key"), "{err}");
        assert!(err.contains("no key backup recorded"), "{err}");
    }
    let output = ws
        .cmd()
        .args(["keys", "list", "-o", "yaml", "--kubeconfig", &kubeconfig])
        .output()
        .unwrap();
    assert_exit(&output, 2);
}

/// Sealing to the cluster's key (no -r/-R, no .kseal.yaml) says on stderr,
/// every time, which key of which cluster; recipients from flags do not.
#[test]
fn sealing_to_the_cluster_names_its_key_and_context() {
    let ws = Workspace::new();
    let active = Identity::generate();
    let url = serve(published(
        &[(&active, KeyState::Active, "2026-01-01T00:00:00Z")],
        &[&active],
    ));
    // Two contexts: the current one, and another with its own server URL
    // (the same fake server, with a path).
    let path = ws.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{url}\"}}}}, {{name: d, cluster: {{server: \"{url}/\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}, {{name: y, context: {{cluster: d, user: u}}}}]\ncurrent-context: x\n"
        ),
    );
    let kubeconfig = path.to_str().unwrap();
    let id = active.key_id();
    let expected = |context: &str, server: &str| {
        format!(
            "kseal: sealing to key {id} (active) of the cluster in kube context \"{context}\" ({server})\n"
        )
    };
    let output = ws
        .cmd()
        .args(["seal", "--kubeconfig", kubeconfig])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(stderr(&output), expected("x", &url));
    assert!(stdout(&output).contains(&id.to_string()));
    // From $KUBECONFIG, and with --context.
    let output = ws
        .cmd()
        .args(["seal", "--context", "y"])
        .env("KUBECONFIG", kubeconfig)
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(stderr(&output), expected("y", &format!("{url}/")));
    // -r: the cluster is not asked, and nothing is said.
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient, "--kubeconfig", kubeconfig])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(stderr(&output), "");
    // A .kseal.yaml rule: nor then.
    ws.write(
        ".kseal.yaml",
        &format!("creation_rules:\n  - recipients: [{}]\n", ws.recipient),
    );
    let output = ws
        .cmd()
        .args(["seal", "--kubeconfig", kubeconfig])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(stderr(&output), "");
}

/// A cluster with no key (lost, or all retired): `fetch-keys` fails and
/// says what to do, and `seal` seals to nothing.
#[test]
fn a_cluster_with_no_key_is_said_clearly() {
    let ws = Workspace::new();
    let retired = Identity::generate();
    let url = serve(published(
        &[(&retired, KeyState::Retired, "2026-01-01T00:00:00Z")],
        &[&retired],
    ));
    let kubeconfig = kubeconfig(&ws, &url);
    let output = ws
        .cmd()
        .args(["fetch-keys", "--kubeconfig", &kubeconfig])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("the cluster publishes no key to seal to (it has no active sealing key)")
            && err.contains(
                "restore them (`kseal keys restore`) or start over (`kseal keys rotate`)"
            ),
        "{err}"
    );
    assert!(stdout(&output).is_empty());
    let output = ws
        .cmd()
        .args([
            "fetch-keys",
            "--kubeconfig",
            &kubeconfig,
            "-o",
            "cluster.pub",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(!ws.path("cluster.pub").exists());
    let output = ws
        .cmd()
        .args(["seal", "--kubeconfig", &kubeconfig])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("no active sealing key") && !err.contains("sealing to key"),
        "{err}"
    );
    assert!(stdout(&output).is_empty());
}
