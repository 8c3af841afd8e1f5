//! `kseal rewrap --online` takes from the controller only what a re-wrap
//! can be: a stand-in answering on `--controller-url` (plain HTTP, or a
//! rogue endpoint), or a controller whose answers were altered, must not
//! get another value written into the repository. The stand-in is exactly
//! the attack, so these tests talk to a fake HTTP server that answers the
//! controller's endpoints (and the API server's, for the published keys),
//! well or badly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use common::*;
use kseal_shared::contract::{
    KeyState, PublishedKey, RewrapBatchItem, RewrapBatchRequest, RewrapBatchResponse,
};
use kseal_shared::envelope::{Keyring, SealedValue, rewrap, seal};
use kseal_shared::manifest::value_binding;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::{Identity, Recipient, parse_identity_file};

/// How the fake controller answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Re-wraps every value to the new key, as the controller does.
    Rewrap,
    /// Re-wraps, but puts a value of its own (sealed to the new key, so
    /// the cluster would decrypt it) in place of `password`.
    Substitute,
    /// Keeps every ciphertext, but wraps `password` to another key than
    /// the cluster publishes.
    OtherRecipient,
}

struct Fake {
    behaviour: Behaviour,
    /// Without the batch endpoint (an older controller): `/v1/rewrap` only.
    batch: bool,
    /// The key the values are sealed to now.
    old: Keyring,
    /// The cluster's active key: what it publishes and re-wraps to.
    new: Recipient,
    /// Not the cluster's.
    stranger: Recipient,
}

impl Fake {
    fn rewrap_object(&self, sealed: &SealedSecret) -> BTreeMap<String, String> {
        sealed
            .spec
            .encrypted_data
            .iter()
            .map(|(key, encoded)| {
                let value = SealedValue::parse(encoded).unwrap();
                let binding = value_binding(sealed, key);
                let to = match self.behaviour {
                    Behaviour::OtherRecipient if key == "password" => &self.stranger,
                    _ => &self.new,
                };
                let mut new = rewrap(&value, &binding, &self.old, std::slice::from_ref(to))
                    .unwrap()
                    .encode();
                if self.behaviour == Behaviour::Substitute && key == "password" {
                    new = seal(
                        b"chosen-by-the-stand-in",
                        &binding,
                        std::slice::from_ref(&self.new),
                    )
                    .unwrap()
                    .encode();
                }
                (key.clone(), new)
            })
            .collect()
    }

    /// The answer to one request: status and JSON body.
    fn answer(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let published = format!(
            "/api/v1/namespaces/kseal-system/configmaps/{}",
            kseal_shared::contract::PUBLIC_KEYS_CONFIGMAP
        );
        if method == "GET" && path == published {
            let keys = vec![PublishedKey {
                id: self.new.key_id().to_string(),
                recipient: self.new.to_string(),
                created: "2026-01-01T00:00:00Z".into(),
                state: KeyState::Active,
            }];
            let config_map = serde_json::json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": kseal_shared::contract::PUBLIC_KEYS_CONFIGMAP, "namespace": "kseal-system"},
                "data": {
                    kseal_shared::contract::RECIPIENTS_DATA_KEY: format!("{}\n", self.new),
                    kseal_shared::contract::KEYS_DATA_KEY: serde_json::to_string(&keys).unwrap(),
                },
            });
            return (200, config_map.to_string());
        }
        if method != "POST" {
            return (404, "{}".into());
        }
        if path.ends_with("/v1/rewrap-batch") && self.batch {
            let request: RewrapBatchRequest = serde_json::from_slice(body).unwrap();
            let items = request
                .items
                .iter()
                .map(|sealed| RewrapBatchItem {
                    encrypted_data: Some(self.rewrap_object(sealed)),
                    rewrapped: sealed.spec.encrypted_data.len(),
                    failures: BTreeMap::new(),
                })
                .collect();
            return (
                200,
                serde_json::to_string(&RewrapBatchResponse { items }).unwrap(),
            );
        }
        if path.ends_with("/v1/rewrap") {
            let mut sealed: SealedSecret = serde_json::from_slice(body).unwrap();
            sealed.spec.encrypted_data = self.rewrap_object(&sealed);
            return (200, serde_json::to_string(&sealed).unwrap());
        }
        (404, "{}".into())
    }

    /// Serves on a local port until the test ends; returns its URL.
    fn start(self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Arc::new(self);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let fake = Arc::clone(&fake);
                std::thread::spawn(move || serve(&fake, stream));
            }
        });
        url
    }
}

/// One request per connection, answered and closed.
fn serve(fake: &Fake, stream: std::net::TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = fake.answer(method, path, &body);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A repository of two files sealed to the workspace's key, and a fake
/// controller holding that key.
struct Setup {
    ws: Workspace,
    sealed: String,
    new: Identity,
}

impl Setup {
    fn new() -> Self {
        let ws = Workspace::new();
        let sealed = ws.seal(SECRET, &[]);
        ws.write("repo/app/db.yaml", &sealed);
        ws.write(
            "repo/other/api.yaml",
            &ws.seal(&SECRET.replace("name: db", "name: api"), &[]),
        );
        Self {
            ws,
            sealed,
            new: Identity::generate(),
        }
    }

    fn fake(&self, behaviour: Behaviour, batch: bool) -> String {
        let old = parse_identity_file(&self.ws.read("key.txt")).unwrap();
        Fake {
            behaviour,
            batch,
            old: Keyring::new(old),
            new: self.new.recipient().clone(),
            stranger: Identity::generate().recipient().clone(),
        }
        .start()
    }

    fn files(&self) -> [String; 2] {
        [
            self.ws.read("repo/app/db.yaml"),
            self.ws.read("repo/other/api.yaml"),
        ]
    }

    /// `rewrap --online --in-place repo` with these connection flags.
    fn rewrap(&self, connection: &[&str]) -> std::process::Output {
        self.ws
            .cmd()
            .args(["rewrap", "--online", "--in-place"])
            .args(connection)
            .arg("repo")
            .output()
            .unwrap()
    }

    fn kubeconfig(&self, url: &str) -> String {
        let path = self.ws.write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
            ),
        );
        path.to_str().unwrap().to_owned()
    }
}

/// A value replaced by one the stand-in sealed (the cluster would decrypt
/// it): refused, naming the file, object and data key; no file written,
/// at either endpoint. The old code wrote it and said "re-wrapped".
#[test]
fn a_substituted_value_is_refused_and_nothing_is_written() {
    for batch in [true, false] {
        let setup = Setup::new();
        let before = setup.files();
        let url = setup.fake(Behaviour::Substitute, batch);
        let output = setup.rewrap(&["--controller-url", &url]);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("is not a faithful re-wrap of what was sent, so nothing was written")
                && err.contains("app/db.yaml: SealedSecret app/db: key \"password\"")
                && err.contains("changed"),
            "batch {batch}: {err}"
        );
        // Only the substituted value is named.
        assert!(!err.contains("key \"username\""), "{err}");
        assert_eq!(setup.files(), before, "batch {batch}: a file was written");
    }
}

/// The same controller answering as it should: every value re-wrapped,
/// ciphertexts kept, sealed to the new key.
#[test]
fn a_faithful_answer_is_written() {
    for batch in [true, false] {
        let setup = Setup::new();
        let url = setup.fake(Behaviour::Rewrap, batch);
        let output = setup.rewrap(&["--controller-url", &url]);
        assert_exit(&output, 0);
        let err = stderr(&output);
        assert!(
            err.contains("6 value(s) re-wrapped, 0 already current, 0 failed; 2 file(s) rewritten"),
            "{err}"
        );
        // Without a kubeconfig the published key cannot be read: said so.
        assert!(
            err.contains("not against the cluster's published key"),
            "{err}"
        );
        let rewritten = setup.ws.read("repo/app/db.yaml");
        for key in ["username", "password", "binary"] {
            let (old, new) = (value_of(&setup.sealed, key), value_of(&rewritten, key));
            let fields = |v: &str| v.split(':').map(str::to_owned).collect::<Vec<_>>();
            assert_eq!(fields(&old)[3], fields(&new)[3]);
            assert_eq!(fields(&old)[5..], fields(&new)[5..]);
            assert_eq!(fields(&new)[2], setup.new.key_id().to_string());
        }
    }
}

/// With the cluster at hand (a kubeconfig), every re-wrapped value must be
/// sealed to the key the cluster publishes: one wrapped to another key,
/// its ciphertext intact, is refused. Through the service proxy and with
/// `--controller-url` and `--kubeconfig`.
#[test]
fn answers_are_held_to_the_published_key() {
    let setup = Setup::new();
    let before = setup.files();
    let url = setup.fake(Behaviour::OtherRecipient, true);
    let kubeconfig = setup.kubeconfig(&url);
    for connection in [
        vec!["--kubeconfig", kubeconfig.as_str()],
        vec![
            "--kubeconfig",
            kubeconfig.as_str(),
            "--controller-url",
            &url,
        ],
    ] {
        let output = setup.rewrap(&connection);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("key \"password\": it is sealed to key id(s)")
                && err.contains(&format!(
                    "not to the cluster's published key {}",
                    setup.new.key_id()
                )),
            "{connection:?}: {err}"
        );
        assert_eq!(setup.files(), before);
    }
    // The faithful controller passes the same check.
    let url = setup.fake(Behaviour::Rewrap, true);
    let kubeconfig = setup.kubeconfig(&url);
    let output = setup.rewrap(&["--kubeconfig", &kubeconfig]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("6 value(s) re-wrapped"),
        "{}",
        stderr(&output)
    );
}

/// Without a kubeconfig, values of one run wrapped to different keys are
/// refused: at least the answers must agree with each other.
#[test]
fn answers_without_the_published_key_must_agree() {
    let setup = Setup::new();
    let before = setup.files();
    let url = setup.fake(Behaviour::OtherRecipient, true);
    let output = setup.rewrap(&["--controller-url", &url]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("other values of this run to"),
        "{}",
        stderr(&output)
    );
    assert_eq!(setup.files(), before);
}
