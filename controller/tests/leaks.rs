//! Leak check: seal known canary values, drive every failure path of the
//! controller, its HTTP API and the CLI, then scan everything a user or an
//! operator can see (controller logs at debug level, Events, statuses, the
//! public-key ConfigMap, HTTP answers, CLI output and error messages) for
//! the canaries and for the cluster's private key. Nothing may appear.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kseal_shared::{binding::Scope, sealed_secret::SealedSecret, x25519::Identity};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

/// Every canary starts with this; none is a substring of anything kseal
/// prints on its own.
const CANARY: &str = "leakcanary";

fn canary(n: u32) -> String {
    format!("{CANARY}-5b1e9d0c-{n}")
}

/// What a leak scan looks for: the canary prefix, and every form of the
/// cluster's private key.
struct Needles(Vec<(String, String)>);

impl Needles {
    fn check(&self, place: &str, text: &str) {
        for (what, needle) in &self.0 {
            assert!(
                !text.contains(needle.as_str()),
                "{what} found in {place}:\n{text}"
            );
        }
    }
}

fn sealed_yaml(sealed: &SealedSecret) -> String {
    kseal_shared::manifest::to_yaml(&serde_json::to_value(sealed).unwrap()).unwrap()
}

#[tokio::test]
async fn no_plaintext_or_key_material_leaks_on_failure_paths() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    fixture.namespace("other").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let dir = fixture.dir.clone();

    // The cluster's private key, in every spelling it could leak in.
    let key_secret = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap()
        .items
        .pop()
        .unwrap();
    let identity_file =
        String::from_utf8(key_secret.data.as_ref().unwrap()["identity.txt"].0.clone()).unwrap();
    let secret_key = identity_file
        .lines()
        .find(|line| line.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let needles = Needles(vec![
        ("a canary".into(), CANARY.into()),
        ("the private key".into(), secret_key.clone()),
        (
            "the private key (lower case)".into(),
            secret_key.to_lowercase(),
        ),
        (
            "the private key's body".into(),
            secret_key[16..60].to_owned(),
        ),
        (
            "the key Secret's data (base64)".into(),
            BASE64_STANDARD.encode(identity_file.as_bytes())[..40].to_owned(),
        ),
        ("an identity prefix".into(), "AGE-SECRET-KEY-1".into()),
    ]);

    // --- Failure paths in the cluster ---------------------------------
    let good = seal(
        &plain("app", "good", &[("k", &canary(1))]),
        Scope::Strict,
        &recipients,
    );
    let mut tampered = seal(
        &plain("app", "tampered", &[("k", &canary(2))]),
        Scope::Strict,
        &recipients,
    );
    {
        // Flip one bit of the ciphertext (well-formed, fails the AEAD).
        let value = tampered.spec.encrypted_data.get_mut("k").unwrap();
        let (head, ciphertext) = value.rsplit_once(':').unwrap();
        let mut bytes = BASE64_STANDARD.decode(ciphertext).unwrap();
        bytes[0] ^= 1;
        *value = format!("{head}:{}", BASE64_STANDARD.encode(bytes));
    }
    let mut moved = seal(
        &plain("other", "moved", &[("k", &canary(3))]),
        Scope::Strict,
        &recipients,
    );
    moved.metadata.namespace = Some("app".into());
    let stranger = Identity::generate();
    let unknown = seal(
        &plain("app", "unknown", &[("k", &canary(4))]),
        Scope::Strict,
        &[stranger.recipient().clone()],
    );
    // Plaintext pasted into encryptedData by mistake, bare and dressed up
    // as a sealed value of an unknown version.
    let mut pasted = good.clone();
    pasted.metadata.name = Some("pasted".into());
    pasted.spec.encrypted_data = BTreeMap::from([
        ("bare".into(), canary(5)),
        ("versioned".into(), format!("kseal:{}:x:y:z:w", canary(6))),
        (
            "fields".into(),
            format!("kseal:v2:{}:0:AA==:AA==:AA==:AA==", canary(7)),
        ),
    ]);
    // A Secret in the way (not ours), holding a canary of its own.
    let mut in_the_way = Secret::default();
    in_the_way.metadata.name = Some("taken".into());
    in_the_way.metadata.namespace = Some("app".into());
    in_the_way.data = Some(BTreeMap::from([(
        "k".into(),
        ByteString(canary(8).into_bytes()),
    )]));
    fixture
        .secrets("app")
        .create(&PostParams::default(), &in_the_way)
        .await
        .unwrap();
    let taken = seal(
        &plain("app", "taken", &[("k", &canary(9))]),
        Scope::Strict,
        &recipients,
    );
    // An immutable Secret whose data then changes: recreated.
    let mut frozen_secret = plain("app", "frozen", &[("k", &canary(10))]);
    frozen_secret.immutable = Some(true);
    let frozen = seal(&frozen_secret, Scope::Strict, &recipients);
    fixture.apply(&good).await;
    fixture.apply(&frozen).await;
    assert_eq!(
        fixture.wait_ready("app", "frozen", "True").await,
        "Unsealed"
    );
    let mut refrozen_secret = plain("app", "frozen", &[("k", &canary(11))]);
    refrozen_secret.immutable = Some(true);
    fixture
        .apply(&seal(&refrozen_secret, Scope::Strict, &recipients))
        .await;
    for bad in [&tampered, &moved, &unknown, &pasted, &taken] {
        fixture.apply(bad).await;
    }
    for (name, reason) in [
        ("tampered", "DecryptFailed"),
        ("moved", "DecryptFailed"),
        ("unknown", "UnknownKey"),
        ("pasted", "MalformedValue"),
        ("taken", "SecretNotOwned"),
    ] {
        assert_eq!(
            fixture.wait_ready("app", name, "False").await,
            reason,
            "{name}"
        );
    }
    assert_eq!(fixture.wait_ready("app", "good", "True").await, "Unsealed");
    // The immutable Secret is deleted and created again with its new data
    // (a Recreated Event).
    eventually("frozen recreated", || async {
        fixture
            .secrets("app")
            .get_opt("frozen")
            .await
            .unwrap()
            .is_some_and(|secret| data_of(&secret, "k") == canary(11))
    })
    .await;

    // --- Failure paths of the HTTP API ----------------------------------
    let mut answers = Vec::new();
    let plaintext_secret_yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: oops\n  namespace: app\nstringData:\n  password: {}\ndata:\n  token: {}\n",
        canary(12),
        BASE64_STANDARD.encode(canary(13))
    );
    let plaintext_secret_json = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "oops", "namespace": "app"},
        "stringData": {"password": canary(14)},
    })
    .to_string();
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "/v1/verify",
            "application/json",
            serde_json::to_vec(&tampered).unwrap(),
        ),
        (
            "/v1/verify",
            "application/json",
            serde_json::to_vec(&moved).unwrap(),
        ),
        (
            "/v1/verify",
            "application/json",
            serde_json::to_vec(&unknown).unwrap(),
        ),
        (
            "/v1/verify",
            "application/json",
            serde_json::to_vec(&pasted).unwrap(),
        ),
        (
            "/v1/verify",
            "application/yaml",
            plaintext_secret_yaml.clone().into_bytes(),
        ),
        (
            "/v1/verify",
            "application/json",
            plaintext_secret_json.clone().into_bytes(),
        ),
        (
            "/v1/verify",
            "application/json",
            format!(
                "{{\"metadata\":{{\"name\":\"x\"}},\"spec\":{{\"encryptedData\":\"{}\"}}}}",
                canary(15)
            )
            .into_bytes(),
        ),
        (
            "/v1/verify",
            "application/yaml",
            format!(
                "metadata: {{name: x}}\nspec:\n  encryptedData: [{}]\n",
                canary(16)
            )
            .into_bytes(),
        ),
        (
            "/v1/verify",
            "application/yaml",
            format!(
                "metadata: {{name: x}}\nspec: {{encryptedData: {{k: [{}\n",
                canary(17)
            )
            .into_bytes(),
        ),
        (
            "/v1/rewrap",
            "application/json",
            serde_json::to_vec(&tampered).unwrap(),
        ),
        (
            "/v1/rewrap",
            "application/json",
            serde_json::to_vec(&unknown).unwrap(),
        ),
        (
            "/v1/rewrap",
            "application/yaml",
            plaintext_secret_yaml.clone().into_bytes(),
        ),
        (
            "/v1/rewrap",
            "text/plain",
            plaintext_secret_yaml.clone().into_bytes(),
        ),
    ];
    for (path, content_type, body) in bodies {
        // Paced under the API's rate limit.
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let (status, answer) = controller.post(path, content_type, body).await;
        // (A value already sealed to the current key is returned as it is
        // by rewrap, tampered or not: 200 is possible there.)
        assert!(
            (400..500).contains(&status) || path == "/v1/rewrap",
            "{path} {content_type}: {status} {answer}"
        );
        answers.push((format!("{path} {content_type} -> {status}"), answer));
    }
    for path in ["/v1/public-keys", "/metrics", "/readyz", "/healthz"] {
        let (_, answer) = controller.get(path).await;
        answers.push((path.to_owned(), answer));
    }

    // --- Failure paths of the CLI ---------------------------------------
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        name.to_owned()
    };
    let right_key = write("right-key.txt", &identity_file);
    let wrong = Identity::generate();
    let wrong_key = write(
        "wrong-key.txt",
        &format!(
            "{}\n",
            kseal_shared::age::secrecy::ExposeSecret::expose_secret(&wrong.to_secret_string())
        ),
    );
    let wrong_needle =
        kseal_shared::age::secrecy::ExposeSecret::expose_secret(&wrong.to_secret_string())
            .to_owned();
    let tampered_file = write("tampered.yaml", &sealed_yaml(&tampered));
    let moved_file = write("moved.yaml", &sealed_yaml(&moved));
    let unknown_file = write("unknown.yaml", &sealed_yaml(&unknown));
    let pasted_file = write("pasted.yaml", &sealed_yaml(&pasted));
    let plaintext_file = write("plaintext.yaml", &plaintext_secret_yaml);
    let bad_base64 = write(
        "bad-base64.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: app}}\ndata:\n  k: {}!!\n",
            canary(18)
        ),
    );
    let bad_key_name = write(
        "bad-key-name.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: app}}\nstringData:\n  \"bad/key\": {}\n",
            canary(19)
        ),
    );
    let bad_yaml = write(
        "bad-yaml.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: app}}\nstringData:\n  k: [{}\n  j: {{{}\n",
            canary(20),
            canary(21)
        ),
    );
    let bad_type = write(
        "bad-type.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: app}}\nstringData:\n  k: {{nested: {}}}\n",
            canary(22)
        ),
    );
    let recipients_file = write("cluster.pub", &format!("{}\n", recipients[0]));
    let other_file = write("other.pub", &format!("{}\n", stranger.recipient()));
    let kubeconfig = fixture.cp.admin_kubeconfig().to_string_lossy().into_owned();
    let url = controller.url("");
    let commands: Vec<Vec<&str>> = vec![
        vec!["unseal", "-i", &wrong_key, "-f", &right_key],
        vec!["unseal", "-i", &wrong_key, "-f", &tampered_file],
        vec!["unseal", "-i", &right_key, "-f", &tampered_file],
        vec!["unseal", "-i", &right_key, "-f", &moved_file],
        vec!["unseal", "-i", &right_key, "-f", &unknown_file],
        vec!["unseal", "-i", &right_key, "-f", &pasted_file],
        vec!["validate", &tampered_file, &pasted_file, &unknown_file],
        vec![
            "validate",
            "--online",
            "--controller-url",
            &url,
            &tampered_file,
        ],
        vec![
            "validate",
            "--online",
            "--controller-url",
            &url,
            &pasted_file,
        ],
        vec!["inspect", &tampered_file, &pasted_file],
        vec!["check", &plaintext_file, &bad_yaml],
        vec!["seal", "-R", &recipients_file, "-f", &bad_base64],
        vec!["seal", "-R", &recipients_file, "-f", &bad_key_name],
        vec!["seal", "-R", &recipients_file, "-f", &bad_yaml],
        vec!["seal", "-R", &recipients_file, "-f", &bad_type],
        vec!["seal", "-R", &wrong_key, "-f", &plaintext_file],
        vec!["seal", "-R", &right_key, "-f", &plaintext_file],
        vec![
            "rewrap",
            "-i",
            &wrong_key,
            "-R",
            &other_file,
            &tampered_file,
        ],
        vec![
            "rewrap",
            "-i",
            &right_key,
            "-R",
            &other_file,
            &tampered_file,
        ],
        vec![
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            &tampered_file,
        ],
        vec!["fetch-keys", "--kubeconfig", &kubeconfig],
        vec!["keys", "list", "--kubeconfig", &kubeconfig],
    ];
    let mut cli_outputs = Vec::new();
    for args in &commands {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let (code, stdout, stderr) = kseal(&dir, args, None);
        let place = format!("kseal {}", args.join(" "));
        let may_succeed = ["fetch-keys", "keys", "inspect"].contains(&args[0])
            || args[..2] == ["rewrap", "--online"];
        if !may_succeed {
            assert_ne!(code, 0, "{place} succeeded:\n{stdout}\n{stderr}");
        }
        assert!(
            !stdout.contains(&wrong_needle) && !stderr.contains(&wrong_needle),
            "{place} printed the identity it was given"
        );
        cli_outputs.push((place, format!("{stdout}\n{stderr}")));
    }

    // --- The scan ---------------------------------------------------------
    for (place, text) in &answers {
        needles.check(&format!("the HTTP answer of {place}"), text);
    }
    for (place, text) in &cli_outputs {
        needles.check(&format!("the output of {place}"), text);
    }
    needles.check("the controller log", &controller.log());
    assert!(
        controller.log().contains("DEBUG"),
        "the controller did not log at debug level"
    );
    for namespace in ["app", "other", NAMESPACE, "default"] {
        let events: Api<Event> = Api::namespaced(fixture.client.clone(), namespace);
        for event in events.list(&ListParams::default()).await.unwrap() {
            let text = serde_json::to_string(&event).unwrap();
            needles.check(&format!("event {}", event.name_any()), &text);
        }
        for sealed in fixture
            .sealed_secrets(namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            let text = serde_json::to_string(&sealed.status).unwrap();
            needles.check(&format!("the status of {}", sealed.name_any()), &text);
            // Annotations and labels the controller may have written.
            let text = serde_json::to_string(&sealed.metadata).unwrap();
            needles.check(&format!("the metadata of {}", sealed.name_any()), &text);
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    for config_map in config_maps.list(&ListParams::default()).await.unwrap() {
        let text = serde_json::to_string(&config_map).unwrap();
        needles.check(&format!("ConfigMap {}", config_map.name_any()), &text);
    }
    // The Secret in the way was left alone.
    let left = fixture.secrets("app").get("taken").await.unwrap();
    assert_eq!(data_of(&left, "k"), canary(8));
}
