//! kseal-controller against a real control plane: SealedSecrets become
//! Secrets; updates, deletions, drift, ownership, bad input, scopes,
//! keys; status, events; the HTTP API; no plaintext in logs,
//! events or statuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::core::v1::{Event, Secret};
use kseal_shared::manifest::{SealOptions, seal_secret};
use kseal_shared::sealed_secret::{SecretTemplate, TemplateMetadata};
use kseal_shared::{binding::Scope, sealed_secret::SealedSecret, x25519::Identity};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

const CANARY: &str = "canary-7f3a9c";

fn canary(n: u32) -> String {
    format!("{CANARY}-{n}")
}

async fn events_for(fixture: &Fixture, namespace: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(fixture.client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| event.involved_object.name.as_deref() == Some(name))
        .collect()
}

async fn has_event(
    fixture: &Fixture,
    namespace: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> bool {
    events_for(fixture, namespace, name)
        .await
        .iter()
        .any(|e| e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason))
}

#[tokio::test]
async fn sealed_secrets_become_secrets() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    fixture.namespace("other").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let (status, body) = controller.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A key is generated on first start, labelled, and published.
    let recipients = fixture.recipients().await;
    assert_eq!(recipients.len(), 1);
    let key_secrets = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap();
    assert_eq!(key_secrets.items.len(), 1);
    let key_secret = &key_secrets.items[0];
    assert_eq!(key_secret.labels()["kseal.dev/key-state"], "active");
    assert_eq!(
        key_secret.labels()["kseal.dev/key-id"],
        recipients[0].key_id().to_string()
    );
    assert!(
        key_secret
            .annotations()
            .contains_key("kseal.dev/created-at")
    );
    let (status, body) = controller.get("/v1/public-keys").await;
    assert_eq!(status, 200);
    assert!(body.contains(&recipients[0].to_string()), "{body}");

    // Create: the Secret appears with data, type, labels, annotations, owner.
    let mut secret = plain(
        "app",
        "db",
        &[("password", &canary(1)), ("username", "admin")],
    );
    secret.type_ = Some("kubernetes.io/basic-auth".into());
    secret.labels = BTreeMap::from([("team".into(), "payments".into())]);
    secret.annotations = BTreeMap::from([("owner".into(), "alice".into())]);
    let sealed = seal(&secret, Scope::Strict, &recipients);
    fixture.apply(&sealed).await;
    assert_eq!(fixture.wait_ready("app", "db", "True").await, "Unsealed");
    let created = fixture.secrets("app").get("db").await.unwrap();
    assert_eq!(data_of(&created, "password"), canary(1));
    assert_eq!(data_of(&created, "username"), "admin");
    assert_eq!(created.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(created.labels()["team"], "payments");
    assert_eq!(created.labels()["kseal.dev/owned"], "true");
    assert_eq!(created.annotations()["owner"], "alice");
    let owner = &created.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("SealedSecret", "db", Some(true))
    );
    let status = fixture
        .sealed_secrets("app")
        .get("db")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.key_ids, vec![recipients[0].key_id().to_string()]);
    assert!(!status.conditions[0].last_transition_time.is_empty());
    // Events are published after the status is written.
    eventually("Unsealed event", || {
        has_event(&fixture, "app", "db", "Normal", "Unsealed")
    })
    .await;

    // Update: a changed value reaches the Secret.
    let mut changed = plain(
        "app",
        "db",
        &[("password", &canary(2)), ("username", "admin")],
    );
    changed.type_ = secret.type_.clone();
    changed.labels = secret.labels.clone();
    fixture
        .apply(&seal(&changed, Scope::Strict, &recipients))
        .await;
    eventually("updated Secret", || async {
        fixture
            .secrets("app")
            .get("db")
            .await
            .is_ok_and(|s| data_of(&s, "password") == canary(2))
    })
    .await;

    // Delete the Secret: it is re-created.
    fixture
        .secrets("app")
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    eventually("re-created Secret", || async {
        fixture
            .secrets("app")
            .get("db")
            .await
            .is_ok_and(|s| data_of(&s, "password") == canary(2))
    })
    .await;

    // Edit the Secret by hand: it is set back.
    let patch = serde_json::json!({"stringData": {"password": "edited-by-hand"}});
    fixture
        .secrets("app")
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("drift corrected", || async {
        fixture
            .secrets("app")
            .get("db")
            .await
            .is_ok_and(|s| data_of(&s, "password") == canary(2))
    })
    .await;

    // A Secret kseal does not own is left alone and reported…
    let existing: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "legacy", "namespace": "app"},
        "stringData": {"token": "pre-existing"}
    }))
    .unwrap();
    fixture
        .secrets("app")
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();
    fixture
        .apply(&seal(
            &plain("app", "legacy", &[("token", &canary(3))]),
            Scope::Strict,
            &recipients,
        ))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "legacy", "False").await,
        "SecretNotOwned"
    );
    assert_eq!(
        data_of(
            &fixture.secrets("app").get("legacy").await.unwrap(),
            "token"
        ),
        "pre-existing"
    );
    eventually("SecretNotOwned event", || {
        has_event(&fixture, "app", "legacy", "Warning", "SecretNotOwned")
    })
    .await;
    // …until it is annotated as managed by kseal.
    let patch = serde_json::json!({"metadata": {"annotations": {"kseal.dev/managed": "true"}}});
    fixture
        .secrets("app")
        .patch("legacy", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        fixture.wait_ready("app", "legacy", "True").await,
        "Unsealed"
    );
    let taken = fixture.secrets("app").get("legacy").await.unwrap();
    assert_eq!(data_of(&taken, "token"), canary(3));
    assert_eq!(taken.owner_references()[0].name, "legacy");

    // Bad input: each gets Ready=False with its reason and a Warning event.
    let good = seal(
        &plain("app", "good", &[("k", &canary(4))]),
        Scope::Strict,
        &recipients,
    );
    fixture.apply(&good).await;
    let mut tampered = seal(
        &plain("app", "tampered", &[("k", &canary(5))]),
        Scope::Strict,
        &recipients,
    );
    let value = tampered.spec.encrypted_data.get_mut("k").unwrap();
    let last = value.pop().unwrap();
    let flipped = if value.ends_with('=') {
        last
    } else {
        if last == 'A' { 'B' } else { 'A' }
    };
    value.push(flipped);
    let (head, tail) = value.rsplit_once(':').unwrap();
    let mut tail = tail.to_owned();
    tail.replace_range(0..1, if tail.starts_with('A') { "B" } else { "A" });
    *value = format!("{head}:{tail}");
    let mut moved = seal(
        &plain("other", "moved", &[("k", &canary(6))]),
        Scope::Strict,
        &recipients,
    );
    moved.metadata.namespace = Some("app".into());
    let stranger = Identity::generate();
    let unknown = seal(
        &plain("app", "unknown", &[("k", &canary(7))]),
        Scope::Strict,
        &[stranger.recipient().clone()],
    );
    let mut malformed = seal(
        &plain("app", "malformed", &[("k", &canary(8))]),
        Scope::Strict,
        &recipients,
    );
    malformed
        .spec
        .encrypted_data
        .insert("k".into(), "kseal:v1:garbage".into());
    let mut future = seal(
        &plain("app", "future", &[("k", &canary(9))]),
        Scope::Strict,
        &recipients,
    );
    let v = future.spec.encrypted_data["k"].replacen("kseal:v2:", "kseal:v3:", 1);
    future.spec.encrypted_data.insert("k".into(), v);
    for bad in [&tampered, &moved, &unknown, &malformed, &future] {
        fixture.apply(bad).await;
    }
    for (name, reason) in [
        ("tampered", "DecryptFailed"),
        ("moved", "DecryptFailed"),
        ("unknown", "UnknownKey"),
        ("malformed", "MalformedValue"),
        ("future", "MalformedValue"),
    ] {
        assert_eq!(
            fixture.wait_ready("app", name, "False").await,
            reason,
            "{name}"
        );
        eventually(&format!("{name} Warning event"), || {
            has_event(&fixture, "app", name, "Warning", reason)
        })
        .await;
        assert!(
            fixture
                .secrets("app")
                .get_opt(name)
                .await
                .unwrap()
                .is_none(),
            "{name}: a Secret was created"
        );
    }
    assert_eq!(fixture.wait_ready("app", "good", "True").await, "Unsealed");

    // Scopes across names and namespaces.
    let mut wide = seal(
        &plain("app", "original-name", &[("k", &canary(10))]),
        Scope::NamespaceWide,
        &recipients,
    );
    wide.metadata.name = Some("renamed".into());
    fixture.apply(&wide).await;
    assert_eq!(
        fixture.wait_ready("app", "renamed", "True").await,
        "Unsealed"
    );
    let mut cluster = seal(
        &plain("", "anywhere", &[("k", &canary(11))]),
        Scope::ClusterWide,
        &recipients,
    );
    cluster.metadata.namespace = Some("other".into());
    fixture.apply(&cluster).await;
    assert_eq!(
        fixture.wait_ready("other", "anywhere", "True").await,
        "Unsealed"
    );
    let mut wide_elsewhere = seal(
        &plain("app", "ns-bound", &[("k", &canary(12))]),
        Scope::NamespaceWide,
        &recipients,
    );
    wide_elsewhere.metadata.namespace = Some("other".into());
    fixture.apply(&wide_elsewhere).await;
    assert_eq!(
        fixture.wait_ready("other", "ns-bound", "False").await,
        "DecryptFailed"
    );

    // A failure that needs a change to the object is reported once, not
    // retried in a loop.
    let unknown_warnings = || async {
        events_for(&fixture, "app", "unknown")
            .await
            .iter()
            .filter(|e| e.reason.as_deref() == Some("UnknownKey"))
            .map(|e| e.count.unwrap_or(1))
            .sum::<i32>()
    };
    // Counted once the controller is idle (the status write may cause one
    // more reconcile); then idle again for as long: a retry loop (backing
    // off from 1 s) would reconcile and warn again meanwhile.
    controller.settle().await;
    let warnings_before = unknown_warnings().await;
    controller.settle().await;
    let warnings_after = unknown_warnings().await;
    assert_eq!(
        warnings_before, warnings_after,
        "a stalled object retried in a loop"
    );

    // The template: type changes and annotations follow the SealedSecret.
    let mut templated = seal(
        &plain("app", "templated", &[("k", "v")]),
        Scope::Strict,
        &recipients,
    );
    templated.spec.template = Some(SecretTemplate {
        type_: Some("Opaque".into()),
        immutable: None,
        metadata: Some(TemplateMetadata {
            labels: BTreeMap::from([("l".into(), "1".into())]),
            annotations: BTreeMap::new(),
        }),
    });
    fixture.apply(&templated).await;
    assert_eq!(
        fixture.wait_ready("app", "templated", "True").await,
        "Unsealed"
    );

    // An empty encryptedData (what `kseal seal --allow-empty-data` writes)
    // is well-formed, as for `kseal validate`: a Secret without data.
    let empty = seal_secret(
        &plain("app", "empty", &[]),
        SealOptions {
            scope: Scope::Strict,
            recipients: &recipients,
            allow_empty_data: true,
        },
    )
    .unwrap();
    assert!(empty.spec.encrypted_data.is_empty());
    fixture.apply(&empty).await;
    assert_eq!(fixture.wait_ready("app", "empty", "True").await, "Unsealed");
    let secret = fixture.secrets("app").get("empty").await.unwrap();
    assert!(secret.data.unwrap_or_default().is_empty());
    let (status, answer) = controller
        .post(
            "/v1/verify",
            "application/json",
            serde_json::to_vec(&empty).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // HTTP API: verify, rewrap, limits.
    let body = serde_json::to_vec(&good).unwrap();
    let (status, answer) = controller
        .post("/v1/verify", "application/json", body.clone())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"decryptable\":true"), "{answer}");
    let (status, answer) = controller
        .post(
            "/v1/verify",
            "application/json",
            serde_json::to_vec(&tampered).unwrap(),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("DecryptFailed"), "{answer}");
    let yaml = kseal_shared::manifest::to_yaml(&serde_json::to_value(&good).unwrap()).unwrap();
    let (status, _) = controller
        .post("/v1/verify", "application/yaml", yaml.into_bytes())
        .await;
    assert_eq!(status, 200);
    let (status, _) = controller
        .post("/v1/verify", "text/plain", body.clone())
        .await;
    assert_eq!(status, 415);
    let (status, _) = controller
        .post("/v1/verify", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(status, 400);
    let (status, _) = controller
        .post(
            "/v1/verify",
            "application/json",
            vec![b' '; 3 * 1024 * 1024],
        )
        .await;
    assert_eq!(status, 413);
    let (status, _) = controller
        .post(
            "/v1/rewrap",
            "application/json",
            vec![b' '; 3 * 1024 * 1024],
        )
        .await;
    assert_eq!(status, 413);
    // Rewrap: a value sealed to the cluster's active key and an extra
    // recipient (a recovery key) is current: it comes back unchanged, the
    // extra recipient kept.
    let extra = Identity::generate();
    let two = seal(
        &plain("app", "two", &[("k", &canary(15))]),
        Scope::Strict,
        &[recipients[0].clone(), extra.recipient().clone()],
    );
    let (status, answer) = controller
        .post(
            "/v1/rewrap",
            "application/json",
            serde_json::to_vec(&two).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let rewrapped: SealedSecret = serde_json::from_str(&answer).unwrap();
    assert_eq!(rewrapped.spec.encrypted_data, two.spec.encrypted_data);
    assert!(!answer.contains(CANARY));

    // Metrics.
    let (status, metrics) = controller.get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "kseal_unseals_total{result=\"ok\"}",
        "kseal_keys{state=\"active\"} 1",
        "kseal_reconcile_duration_seconds",
        "kseal_build_info",
        &format!(
            "kseal_sealed_secrets{{key_id=\"{}\"}}",
            recipients[0].key_id()
        ),
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in\n{metrics}"
        );
    }

    // Deleting the SealedSecret garbage-collects its Secret.
    fixture
        .sealed_secrets("app")
        .delete("good", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Secret garbage-collected", || async {
        fixture
            .secrets("app")
            .get_opt("good")
            .await
            .unwrap()
            .is_none()
    })
    .await;

    // A restart keeps the same key.
    let log_before_restart = controller.log();
    drop(controller);
    let controller = fixture.controller("kseal-controller-2", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    assert_eq!(fixture.wait_ready("app", "db", "True").await, "Unsealed");
    assert_eq!(fixture.recipients().await, recipients);
    let keys = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1);

    // No plaintext anywhere: logs (debug level), events, statuses.
    let log = format!("{log_before_restart}{}", controller.log());
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "debug logging was not on"
    );
    assert!(!log.contains(CANARY), "canary in controller log");
    assert!(
        !log.contains("AGE-SECRET-KEY"),
        "private key in controller log"
    );
    for namespace in ["app", "other"] {
        let events: Api<Event> = Api::namespaced(fixture.client.clone(), namespace);
        for event in events.list(&ListParams::default()).await.unwrap() {
            let text = format!("{:?} {:?}", event.message, event.reason);
            assert!(!text.contains(CANARY), "canary in event {text}");
        }
        for sealed in fixture
            .sealed_secrets(namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            let text = serde_json::to_string(&sealed.status).unwrap();
            assert!(!text.contains(CANARY), "canary in status {text}");
        }
    }
}

/// The committed CRD (what the chart installs) must equal the one generated
/// from the Rust types. Regenerate: `cargo run -p kseal-controller -- crd > charts/kseal/crds/sealedsecrets.kseal.dev.yaml`
#[test]
fn committed_crd_matches_the_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/kseal/crds/sealedsecrets.kseal.dev.yaml"
    ))
    .unwrap();
    let generated = kseal_controller::crd::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "charts/kseal/crds/sealedsecrets.kseal.dev.yaml is stale: run `cargo run -p kseal-controller -- crd > charts/kseal/crds/sealedsecrets.kseal.dev.yaml`"
    );
}
