//! What `kseal seal` and `kseal fetch-keys` say when the cluster answers
//! but its published keys do not hold together (someone other than the
//! controller changed the ConfigMap): that the cluster's keys were refused,
//! first, not that no cluster could be reached. A fake API server serves
//! the ConfigMap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::*;
use kseal_shared::contract::{
    KEYS_DATA_KEY, KeyState, PUBLIC_KEYS_CONFIGMAP, PublishedKey, RECIPIENTS_DATA_KEY,
};
use kseal_shared::x25519::Identity;

/// Serves `config_map` (JSON) for every request until the test ends;
/// returns the server's URL.
fn serve(config_map: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            // GET requests: no body; read up to the blank line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{config_map}",
                config_map.len()
            );
        }
    });
    url
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
}
