//! `kseal pins update` and `kseal pins check` across a fleet: fake API
//! servers publish each cluster's keys, one context points nowhere, and
//! the files are checked byte for byte. (controller/tests/pins.rs runs the
//! same story against a real API server and controller.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use kseal_shared::contract::{
    HELD_KEYS_ANNOTATION, KEYS_DATA_KEY, KeyState, PUBLIC_KEYS_CONFIGMAP, PublishedKey,
    RECIPIENTS_DATA_KEY,
};
use kseal_shared::x25519::Identity;

/// A cluster's keys as its controller publishes them: keys newest first,
/// the first active one in recipients.txt, every id in held-key-ids plus
/// `deleted`.
#[derive(Default)]
struct Cluster {
    keys: Vec<(Identity, KeyState)>,
    deleted: Vec<Identity>,
}

impl Cluster {
    fn new() -> Self {
        Self {
            keys: vec![(Identity::generate(), KeyState::Active)],
            deleted: Vec::new(),
        }
    }

    /// A renewal: a new active key, the old ones decrypt-only.
    fn rotate(&mut self) {
        for (_, state) in &mut self.keys {
            if *state == KeyState::Active {
                *state = KeyState::DecryptOnly;
            }
        }
        self.keys
            .insert(0, (Identity::generate(), KeyState::Active));
    }

    fn key(&self, index: usize) -> String {
        self.keys[index].0.recipient().to_string()
    }

    fn id(&self, index: usize) -> String {
        self.keys[index].0.key_id().to_string()
    }

    fn config_map(&self) -> String {
        let listed: Vec<PublishedKey> = self
            .keys
            .iter()
            .map(|(identity, state)| PublishedKey {
                id: identity.key_id().to_string(),
                recipient: identity.recipient().to_string(),
                created: "2026-01-01T00:00:00Z".into(),
                state: *state,
            })
            .collect();
        let held: Vec<String> = self
            .deleted
            .iter()
            .chain(self.keys.iter().rev().map(|(identity, _)| identity))
            .map(|identity| identity.key_id().to_string())
            .collect();
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": PUBLIC_KEYS_CONFIGMAP,
                "namespace": "kseal-system",
                "annotations": {HELD_KEYS_ANNOTATION: held.join(",")},
            },
            "data": {
                RECIPIENTS_DATA_KEY: format!("# kseal: public keys of this cluster. Seal to these recipients.\n{}\n", self.key(0)),
                KEYS_DATA_KEY: serde_json::to_string(&listed).unwrap(),
            },
        })
        .to_string()
    }
}

/// Serves the ConfigMap `body` holds at each request (a 404 Status for any
/// other path) until the test ends; returns the server's URL.
fn serve(body: Arc<Mutex<String>>) -> String {
    let wanted = format!("/api/v1/namespaces/kseal-system/configmaps/{PUBLIC_KEYS_CONFIGMAP}");
    fake_api_server(move |path| (path == wanted).then(|| body.lock().unwrap().clone()))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fleet: prod and staging served, `down` unreachable; a repository
/// whose rules pin each.
struct Fleet {
    ws: Workspace,
    prod: Cluster,
    staging: Cluster,
    prod_body: Arc<Mutex<String>>,
    staging_body: Arc<Mutex<String>>,
    recovery: String,
    kubeconfig: String,
}

impl Fleet {
    fn new() -> Self {
        let ws = Workspace::new();
        let (prod, staging) = (Cluster::new(), Cluster::new());
        let prod_body = Arc::new(Mutex::new(prod.config_map()));
        let staging_body = Arc::new(Mutex::new(staging.config_map()));
        let (prod_url, staging_url) = (serve(prod_body.clone()), serve(staging_body.clone()));
        let down_url = format!("http://127.0.0.1:{}", closed_port());
        let mut clusters = String::new();
        let mut contexts = String::new();
        for (name, url) in [
            ("prod", &prod_url),
            ("staging", &staging_url),
            ("down", &down_url),
        ] {
            clusters.push_str(&format!(
                "  - name: {name}\n    cluster: {{server: \"{url}\"}}\n"
            ));
            contexts.push_str(&format!(
                "  - name: {name}\n    context: {{cluster: {name}, user: u}}\n"
            ));
        }
        let kubeconfig = ws.write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users: [{{name: u, user: {{}}}}]\ncontexts:\n{contexts}current-context: down\n"
            ),
        );
        let recovery = Identity::generate().recipient().to_string();
        let fleet = Self {
            kubeconfig: kubeconfig.to_str().unwrap().to_owned(),
            ws,
            prod,
            staging,
            prod_body,
            staging_body,
            recovery,
        };
        fleet.ws.write(
            ".kseal.yaml",
            "creation_rules:\n  - path_regex: ^clusters/prod/\n    recipients_file: keys/prod.txt\n    context: prod\n  - path_regex: ^clusters/staging/\n    recipients_file: keys/staging.txt\n    context: staging\n  - path_regex: ^clusters/down/\n    recipients_file: keys/down.txt\n    context: down\n",
        );
        fleet
    }

    fn publish(&self) {
        *self.prod_body.lock().unwrap() = self.prod.config_map();
        *self.staging_body.lock().unwrap() = self.staging.config_map();
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.ws
            .cmd()
            .args(args)
            .args(["--kubeconfig", &self.kubeconfig])
            .output()
            .unwrap()
    }
}

#[test]
fn a_fleet_is_updated_and_checked_and_one_cluster_down_stops_nothing_else() {
    let mut fleet = Fleet::new();
    let recovery = fleet.recovery.clone();
    // prod: CRLF, a recovery key with a comment, no final line break.
    let prod_before = format!(
        "# Public keys of the prod cluster\r\n{}\r\n# recovery (offline)\r\n{recovery}",
        fleet.prod.key(0)
    );
    fleet.ws.write("keys/prod.txt", &prod_before);
    let staging_before = format!("{}\n\n# recovery\n{recovery}\n", fleet.staging.key(0));
    fleet.ws.write("keys/staging.txt", &staging_before);
    let down_before = format!("{recovery}\n");
    fleet.ws.write("keys/down.txt", &down_before);

    // Only the unreachable context fails the check, with why.
    let output = fleet.run(&["pins", "check"]);
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("keys/down.txt: context down: cannot read the keys of context down: "),
        "{out}"
    );
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "keys/prod.txt: context prod: ok (pins the active key {})",
            fleet.prod.id(0)
        )),
        "{err}"
    );
    assert!(
        err.contains("kseal: error: pins check: 1 problem(s) in 1 of 3 pinned file(s)"),
        "{err}"
    );
    // Without the broken context, the check passes.
    let output = fleet.run(&["pins", "check", "keys/prod.txt", "keys/staging.txt"]);
    assert_exit(&output, 0);
    let output = fleet.run(&["pins", "check", "--context", "prod"]);
    assert_exit(&output, 0);

    // Both clusters renew their key; prod twice.
    fleet.prod.rotate();
    fleet.prod.rotate();
    fleet.staging.rotate();
    fleet.publish();
    let output = fleet.run(&["pins", "check", "keys/prod.txt", "keys/staging.txt"]);
    assert_exit(&output, 1);
    assert_eq!(
        stdout(&output),
        format!(
            "keys/prod.txt:2: key {old} of context prod is decrypt-only: the cluster no longer seals to it (renewed or rotated); its active key is {new} (kseal pins update)\n\
             keys/prod.txt: lacks the active key {new} of context prod (kseal pins update)\n\
             keys/staging.txt:1: key {sold} of context staging is decrypt-only: the cluster no longer seals to it (renewed or rotated); its active key is {snew} (kseal pins update)\n\
             keys/staging.txt: lacks the active key {snew} of context staging (kseal pins update)\n",
            old = fleet.prod.id(2),
            new = fleet.prod.id(0),
            sold = fleet.staging.id(1),
            snew = fleet.staging.id(0),
        )
    );
    // JSON: the same problems.
    let output = fleet.run(&["pins", "check", "-o", "json"]);
    assert_exit(&output, 1);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = json["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 5, "{json}");
    assert_eq!(problems[0]["file"], "keys/prod.txt");
    assert_eq!(problems[0]["line"], 2);
    assert_eq!(problems[0]["keyId"], fleet.prod.id(2));
    assert_eq!(problems[0]["problem"], "decrypt-only");
    assert_eq!(problems[1]["problem"], "missing-active");
    assert_eq!(problems[1]["line"], serde_json::Value::Null);
    assert_eq!(problems[4]["problem"], "unreachable");
    assert_eq!(json["checked"][0]["activeKeyId"], fleet.prod.id(0));
    assert_eq!(json["checked"][2]["activeKeyId"], serde_json::Value::Null);

    // The update: the reachable files are rewritten, the down one is not,
    // and the run fails.
    let output = fleet.run(&["pins", "update"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "keys/prod.txt: context prod: {} -> {}\n",
            fleet.prod.id(2),
            fleet.prod.id(0)
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "keys/staging.txt: context staging: {} -> {}\n",
            fleet.staging.id(1),
            fleet.staging.id(0)
        )),
        "{err}"
    );
    assert!(
        err.contains("keys/down.txt: context down: failed: cannot read the keys of context down"),
        "{err}"
    );
    assert!(
        err.contains("kseal: pins update: 2 file(s) updated, 0 up to date, 1 failed"),
        "{err}"
    );
    assert!(
        err.contains("kseal: error: 1 of 3 pinned file(s) could not be updated (keys/down.txt)"),
        "{err}"
    );
    let prod = fleet.ws.read("keys/prod.txt");
    let comment = |cluster: &Cluster, context: &str| {
        format!(
            "# kseal: active key {} of context {context}, pinned ",
            cluster.id(0)
        )
    };
    let (head, rest) = prod.split_once(&comment(&fleet.prod, "prod")).unwrap();
    assert_eq!(head, "# Public keys of the prod cluster\r\n");
    let (time, rest) = rest.split_once("\r\n").unwrap();
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert_eq!(
        rest,
        format!(
            "{}\r\n# recovery (offline)\r\n{recovery}",
            fleet.prod.key(0)
        )
    );
    let staging = fleet.ws.read("keys/staging.txt");
    assert!(staging.starts_with(&comment(&fleet.staging, "staging")));
    assert!(staging.ends_with(&format!(
        "\n{}\n\n# recovery\n{recovery}\n",
        fleet.staging.key(0)
    )));
    assert_eq!(fleet.ws.read("keys/down.txt"), down_before);

    // Again: nothing changes (the comment keeps its time).
    let output = fleet.run(&["pins", "update", "keys/prod.txt", "keys/staging.txt"]);
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(
        err.contains("keys/prod.txt: context prod: up to date"),
        "{err}"
    );
    assert!(
        err.contains("kseal: pins update: 0 file(s) updated, 2 up to date, 0 failed"),
        "{err}"
    );
    assert_eq!(fleet.ws.read("keys/prod.txt"), prod);
    assert_eq!(fleet.ws.read("keys/staging.txt"), staging);
    let output = fleet.run(&["pins", "check", "keys/prod.txt", "keys/staging.txt"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty());

    // A key deleted from the cluster (only in held-key-ids), under kseal's
    // pin comment naming it, is named as such.
    let stale = fleet.prod.key(0);
    fleet.prod.rotate();
    let (gone, _) = fleet.prod.keys.remove(1);
    fleet.prod.deleted.push(gone);
    fleet.publish();
    let output = fleet.run(&["pins", "check", "--context", "prod"]);
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert!(
        out.starts_with(&format!(
            "keys/prod.txt:3: key {} of context prod is pinned by kseal for this context, but the cluster no longer lists it (deleted, or its record lost)",
            kseal_shared::x25519::KeyId::of_recipient_str(&stale)
        )),
        "{out}"
    );
}

#[test]
fn files_are_written_at_their_target_keeping_mode_and_never_created() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = Fleet::new();
    // prod: a symlink into the repository; the link stays a link.
    fleet.ws.write(
        "keys/real/prod.txt",
        &format!("{}\n{}\n", fleet.recovery, fleet.staging.key(0)),
    );
    std::fs::set_permissions(
        fleet.ws.path("keys/real/prod.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("real/prod.txt", fleet.ws.path("keys/prod.txt")).unwrap();
    let output = fleet.run(&["pins", "update", "keys/prod.txt", "--context", "prod"]);
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "keys/prod.txt: context prod: no key of the cluster pinned -> {} (appended at the end)",
            fleet.prod.id(0)
        )),
        "{err}"
    );
    assert!(
        std::fs::symlink_metadata(fleet.ws.path("keys/prod.txt"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let real = fleet.ws.read("keys/real/prod.txt");
    // Another cluster's key is not prod's: kept.
    assert!(
        real.starts_with(&format!(
            "{}\n{}\n# kseal: active key ",
            fleet.recovery,
            fleet.staging.key(0)
        )),
        "{real}"
    );
    assert!(real.ends_with(&format!("\n{}\n", fleet.prod.key(0))));
    let mode = std::fs::metadata(fleet.ws.path("keys/real/prod.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    // staging: no file yet. It is not made (a misspelt recipients_file
    // would pin the cluster's key without the recovery key); an empty one
    // gets the key.
    let output = fleet.run(&["pins", "update", "--context", "staging"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("keys/staging.txt: failed: the file does not exist; create it"),
        "{}",
        stderr(&output)
    );
    assert!(!fleet.ws.path("keys/staging.txt").exists());
    fleet.ws.write("keys/staging.txt", "");
    let output = fleet.run(&["pins", "update", "--context", "staging"]);
    assert_exit(&output, 0);
    let created = fleet.ws.read("keys/staging.txt");
    assert!(created.ends_with(&format!("\n{}\n", fleet.staging.key(0))));
    assert_eq!(created.lines().count(), 2);
}

#[test]
fn usage_errors_and_refusals() {
    let fleet = Fleet::new();
    // A file no rule pins: a usage error, before any cluster is asked.
    fleet
        .ws
        .write("keys/other.txt", &format!("{}\n", fleet.recovery));
    let output = fleet.run(&["pins", "update", "keys/other.txt"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("no rule with a context in")
            && stderr(&output).contains("keys/other.txt"),
        "{}",
        stderr(&output)
    );
    // A line that is not a recipient: refused, named, never quoted, the
    // file left as it was.
    let broken = format!("{}\nhunter2-canary\n", fleet.prod.key(0));
    fleet.ws.write("keys/prod.txt", &broken);
    let output = fleet.run(&["pins", "update", "--context", "prod"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("keys/prod.txt: context prod: failed: line 2: not a recipient"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(fleet.ws.read("keys/prod.txt"), broken);
    let output = fleet.run(&["pins", "check", "--context", "prod"]);
    assert_exit(&output, 1);
    assert!(stdout(&output).starts_with("keys/prod.txt:2: not a recipient"));
    assert!(!stdout(&output).contains("hunter2"));
    // No rule with a context.
    fleet.ws.write(
        ".kseal.yaml",
        &format!("creation_rules:\n  - recipients: [{}]\n", fleet.recovery),
    );
    let output = fleet.run(&["pins", "check"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("has a context"),
        "{}",
        stderr(&output)
    );
    // context without recipients_file.
    fleet.ws.write(
        ".kseal.yaml",
        &format!(
            "creation_rules:\n  - recipients: [{}]\n    context: prod\n",
            fleet.recovery
        ),
    );
    let output = fleet.run(&["pins", "check"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("creation_rules[0]: context needs recipients_file"),
        "{}",
        stderr(&output)
    );
}
