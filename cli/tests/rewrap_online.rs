//! `kseal rewrap --online` takes from the controller only what a re-wrap
//! can be: a stand-in answering on `--controller-url` (plain HTTP, or a
//! rogue endpoint), or a controller whose answers were altered, must not
//! get another value written into the repository. The stand-in is exactly
//! the attack, so these tests talk to a fake HTTP server that answers the
//! controller's endpoints (and the API server's, for the published keys),
//! well or badly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use common::*;
use kseal_shared::contract::{
    KeyState, PublishedKey, RewrapBatchItem, RewrapBatchRequest, RewrapBatchResponse,
};
use kseal_shared::envelope::{
    FormatVersion, Keyring, SealedValue, rewrap, rewrap_replacing, seal, seal_at,
};
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
    /// Keeps every ciphertext, but wraps every value to another key than
    /// the cluster publishes (so the values agree with each other).
    AllToStranger,
    /// Puts a value of its own in place of every v1 value: v2, sealed to
    /// the new key, seal time unrecorded, its ciphertext the length of the
    /// original's, which is all a v1 upgrade can be checked for.
    SameLengthForV1,
    /// Re-wraps to the new key only, as controllers before 0.4 did:
    /// every other recipient (a recovery key) is dropped.
    DropOthers,
}

struct Fake {
    behaviour: Behaviour,
    /// Without the batch endpoint (an older controller): `/v1/rewrap` only.
    batch: bool,
    /// The key the values are sealed to now.
    old: Keyring,
    /// Its public half, which the cluster lists as decrypt-only.
    old_recipients: Vec<Recipient>,
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
                    Behaviour::AllToStranger => &self.stranger,
                    _ => &self.new,
                };
                let mut own: HashSet<_> = self.old.key_ids().copied().collect();
                own.insert(self.new.key_id());
                if self.behaviour == Behaviour::Rewrap
                    && value.is_current_for_cluster(&own, &[self.new.key_id()])
                {
                    // Nothing to do, as the controller answers.
                    return (key.clone(), encoded.clone());
                }
                let mut new = match self.behaviour {
                    Behaviour::DropOthers
                    | Behaviour::OtherRecipient
                    | Behaviour::AllToStranger => {
                        rewrap(&value, &binding, &self.old, std::slice::from_ref(to))
                    }
                    _ => rewrap_replacing(
                        &value,
                        &binding,
                        &self.old,
                        &own,
                        std::slice::from_ref(to),
                    ),
                }
                .unwrap()
                .encode();
                if self.behaviour == Behaviour::SameLengthForV1
                    && value.version() == FormatVersion::V1
                {
                    // The AEAD tag is 16 bytes in either format.
                    let plaintext = vec![b'x'; value.ciphertext().len() - 16];
                    new = seal_at(&plaintext, &binding, std::slice::from_ref(&self.new), 0)
                        .unwrap()
                        .encode();
                }
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
            // The keys the values are sealed to now are the cluster's
            // older ones.
            let mut keys = vec![PublishedKey {
                id: self.new.key_id().to_string(),
                recipient: self.new.to_string(),
                created: "2026-01-01T00:00:00Z".into(),
                state: KeyState::Active,
            }];
            keys.extend(self.old_recipients.iter().map(|old| PublishedKey {
                id: old.key_id().to_string(),
                recipient: old.to_string(),
                created: "2025-12-01T00:00:00Z".into(),
                state: KeyState::DecryptOnly,
            }));
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
            old_recipients: old.iter().map(|id| id.recipient().clone()).collect(),
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

    /// `rewrap --online --in-place repo` with these connection flags, and
    /// no kubeconfig but what the test gives (`$HOME` is the workspace's
    /// `home`, empty unless the test writes `home/.kube/config`).
    fn rewrap(&self, connection: &[&str]) -> std::process::Output {
        self.rewrap_with(connection, &[])
    }

    /// The same, with these environment variables set.
    fn rewrap_with(&self, connection: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut command = self.ws.cmd();
        command.env("HOME", self.ws.path("home"));
        for (name, value) in env {
            command.env(name, value);
        }
        command
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
        // Without any kubeconfig the published key cannot be read: said so.
        assert!(
            err.contains("not against the cluster's published key: there is no kubeconfig"),
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
            err.contains("key \"password\": it is wrapped to key id(s)")
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

/// With `--controller-url`, a kubeconfig found the default way
/// (`$KUBECONFIG`, `~/.kube/config`) is used to read the published key as
/// much as `--kubeconfig`: a value wrapped to another key is refused, and
/// no note says the check was skipped. The old code checked only with
/// `--kubeconfig`/`--context`, and took the stand-in's answer here as long
/// as its values agreed with each other.
#[test]
fn a_default_kubeconfig_holds_answers_to_the_published_key() {
    for default in ["$KUBECONFIG", "~/.kube/config"] {
        let setup = Setup::new();
        let before = setup.files();
        // Every value to the same foreign key: they agree with each other.
        let url = setup.fake(Behaviour::AllToStranger, true);
        let kubeconfig = setup.kubeconfig(&url);
        let env: Vec<(&str, &str)> = if default == "$KUBECONFIG" {
            vec![("KUBECONFIG", kubeconfig.as_str())]
        } else {
            let home = setup.ws.path("home/.kube");
            std::fs::create_dir_all(&home).unwrap();
            std::fs::copy(&kubeconfig, home.join("config")).unwrap();
            Vec::new()
        };
        let output = setup.rewrap_with(&["--controller-url", &url], &env);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains(&format!(
                "not to the cluster's published key {}",
                setup.new.key_id()
            )) && !err.contains("note:"),
            "{default}: {err}"
        );
        assert_eq!(setup.files(), before, "{default}");

        // The faithful controller passes, without the note.
        let url = setup.fake(Behaviour::Rewrap, true);
        let kubeconfig = setup.kubeconfig(&url);
        if default == "~/.kube/config" {
            std::fs::copy(&kubeconfig, setup.ws.path("home/.kube/config")).unwrap();
        }
        let env: Vec<(&str, &str)> = if default == "$KUBECONFIG" {
            vec![("KUBECONFIG", kubeconfig.as_str())]
        } else {
            Vec::new()
        };
        let output = setup.rewrap_with(&["--controller-url", &url], &env);
        assert_exit(&output, 0);
        let err = stderr(&output);
        assert!(
            err.contains("6 value(s) re-wrapped") && !err.contains("note:"),
            "{default}: {err}"
        );
    }
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

/// A v1 value (not key-committing) upgraded online can be checked only for
/// its length and unrecorded seal time, so a stand-in's own value of the
/// same length passes `check_rewrap_of`. Online v1 upgrades are therefore
/// refused by default, before anything is sent, naming file, object and
/// key, and pointing at the offline upgrade; `--trust-controller-for-v1`
/// takes the controller's word (and then the stand-in's value would be
/// written: what the flag gives up). The old code wrote the substitute,
/// saying "upgraded from format v1".
#[test]
fn a_v1_value_is_not_upgraded_online_by_default() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../shared/tests/vectors/v1.json")).unwrap();
    let case = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["comment"] == "strict")
        .unwrap();
    let identity = vectors["identities"][0].as_str().unwrap();
    let manifest = format!(
        "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db-credentials\n  namespace: payments\nspec:\n  encryptedData:\n    password: {}\n",
        case["sealed"].as_str().unwrap()
    );
    for batch in [true, false] {
        let ws = Workspace::new();
        ws.write("repo/db.yaml", &manifest);
        let new = Identity::generate();
        let fake = |behaviour| {
            Fake {
                behaviour,
                batch,
                old_recipients: parse_identity_file(identity)
                    .unwrap()
                    .iter()
                    .map(|id| id.recipient().clone())
                    .collect(),
                old: Keyring::new(parse_identity_file(identity).unwrap()),
                new: new.recipient().clone(),
                stranger: Identity::generate().recipient().clone(),
            }
            .start()
        };
        let run = |url: &str, extra: &[&str]| {
            ws.cmd()
                .env("HOME", ws.path("home"))
                .args(["rewrap", "--online", "--in-place", "--controller-url", url])
                .args(extra)
                .arg("repo")
                .output()
                .unwrap()
        };
        let url = fake(Behaviour::SameLengthForV1);
        let output = run(&url, &[]);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("format v1 value(s)")
                && err.contains(
                    "repo/db.yaml: SealedSecret payments/db-credentials: key \"password\""
                )
                && err.contains("kseal rewrap -i IDENTITY")
                && err.contains("--trust-controller-for-v1"),
            "batch {batch}: {err}"
        );
        assert_eq!(ws.read("repo/db.yaml"), manifest, "batch {batch}");

        // Opted in: the faithful upgrade is written, and so would be the
        // substitute, which nothing without the key can tell from it.
        let url = fake(Behaviour::Rewrap);
        let output = run(&url, &["--trust-controller-for-v1"]);
        assert_exit(&output, 0);
        assert!(
            stderr(&output).contains("upgraded from format v1"),
            "{}",
            stderr(&output)
        );
        ws.write("repo/db.yaml", &manifest);
        let url = fake(Behaviour::SameLengthForV1);
        let output = run(&url, &["--trust-controller-for-v1"]);
        assert_exit(&output, 0);
        assert_ne!(ws.read("repo/db.yaml"), manifest);
    }
}

/// The repository's layout: values sealed to the cluster's key and an
/// offline recovery key. The re-wrap replaces only the cluster's stanza:
/// the recovery key opens every value afterwards, its stanza is byte for
/// byte the one it was, and the summary says so. A stand-in (or an old
/// controller) that drops the recovery key is refused, nothing written.
#[test]
fn the_recovery_recipient_is_kept_and_never_dropped_silently() {
    for batch in [true, false] {
        let setup = Setup::new();
        let recovery = Identity::generate();
        let recovery_recipient = recovery.recipient().to_string();
        let sealed = setup.ws.seal(SECRET, &["-r", recovery_recipient.as_str()]);
        setup.ws.write("repo/app/db.yaml", &sealed);
        setup.ws.write(
            "repo/other/api.yaml",
            &setup.ws.seal(
                &SECRET.replace("name: db", "name: api"),
                &["-r", recovery_recipient.as_str()],
            ),
        );
        let before = setup.files();

        // A re-wrap that drops the recovery key: refused.
        let url = setup.fake(Behaviour::DropOthers, batch);
        let kubeconfig = setup.kubeconfig(&url);
        let output = setup.rewrap(&["--controller-url", &url, "--kubeconfig", &kubeconfig]);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("nothing was written")
                && err.contains(&format!(
                    "it would no longer be sealed to key id(s) {}, which are not this cluster's keys",
                    recovery.recipient().key_id()
                )),
            "batch {batch}: {err}"
        );
        assert_eq!(setup.files(), before, "batch {batch}");
        // Without a kubeconfig (whose keys are the cluster's is unknown),
        // the drop is written but said, never silent.
        let output = setup.rewrap(&["--controller-url", &url]);
        assert_exit(&output, 0);
        let err = stderr(&output);
        assert!(
            err.lines().any(
                |line| line.starts_with("kseal: warning: no longer sealed to key(s) ")
                    && line.contains(&format!("{} (6 value(s))", recovery.recipient().key_id()))
            ),
            "batch {batch}: {err}"
        );
        for (file, text) in ["repo/app/db.yaml", "repo/other/api.yaml"]
            .iter()
            .zip(&before)
        {
            setup.ws.write(file, text);
        }

        // The controller's re-wrap: the recovery stanza kept.
        let url = setup.fake(Behaviour::Rewrap, batch);
        let kubeconfig = setup.kubeconfig(&url);
        let output = setup.rewrap(&["--controller-url", &url, "--kubeconfig", &kubeconfig]);
        assert_exit(&output, 0);
        let err = stderr(&output);
        let new_id = setup.new.recipient().key_id().to_string();
        let recovery_id = recovery.recipient().key_id().to_string();
        assert!(
            err.contains(&format!("kseal: wrapped to the cluster's key {new_id}"))
                && err.contains("kseal: replaced the cluster's older key(s) ")
                && err.contains(&format!(
                    "kseal: kept the other recipient(s) byte for byte: {recovery_id} (6 value(s))"
                )),
            "batch {batch}: {err}"
        );
        let after = setup.files();
        let values = |text: &str| -> Vec<SealedValue> {
            text.lines()
                .filter_map(|line| line.split_once(": kseal:"))
                .map(|(_, v)| SealedValue::parse(&format!("kseal:{v}")).unwrap())
                .collect()
        };
        for (old_text, new_text) in before.iter().zip(&after) {
            for (old, new) in values(old_text).iter().zip(values(new_text)) {
                let changes = new.rewrap_changes(old);
                assert_eq!(changes.kept, vec![recovery.recipient().key_id()]);
                assert_eq!(changes.fresh, vec![setup.new.recipient().key_id()]);
            }
        }
        // The recovery key opens every value; the new key does too.
        setup.ws.write(
            "recovery.txt",
            &format!(
                "{}\n",
                kseal_shared::age::secrecy::ExposeSecret::expose_secret(
                    &recovery.to_secret_string()
                )
            ),
        );
        for file in ["repo/app/db.yaml", "repo/other/api.yaml"] {
            let output = setup
                .ws
                .cmd()
                .args(["unseal", "-i", "recovery.txt", "-f", file])
                .output()
                .unwrap();
            assert_exit(&output, 0);
        }
        // Nothing left to do: a second run re-wraps nothing.
        let output = setup.rewrap(&["--controller-url", &url, "--kubeconfig", &kubeconfig]);
        assert_exit(&output, 0);
        assert!(
            stderr(&output).contains("0 value(s) re-wrapped, 6 already current"),
            "{}",
            stderr(&output)
        );
        assert_eq!(setup.files(), after);
    }
}
