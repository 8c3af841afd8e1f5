//! Attacks on what the controller creates and trusts, against a real control
//! plane (docs/security.md, "Security round two"):
//! - a SealedSecret that would install a sealing key of the attacker's
//!   choice (in the controller's namespace, or anywhere with the key's
//!   labels and type);
//! - a Secret that looks like a key but was made from a SealedSecret;
//! - SealedSecrets asking for dangerous Secrets (service-account tokens,
//!   replication annotations, keys that Istio, cert-manager or Grafana act
//!   on);
//! - a real key whose creation time is garbage or in the future.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kseal_shared::age::secrecy::ExposeSecret;
use kseal_shared::contract::{
    IDENTITY_DATA_KEY, KEY_CREATED_ANNOTATION, KEY_ID_LABEL, KEY_STATE_LABEL, KEYS_DATA_KEY,
    PUBLIC_KEYS_CONFIGMAP, PublishedKey, SEALING_KEY_LABEL, SEALING_KEY_SECRET_TYPE,
};
use kseal_shared::sealed_secret::{SealedSecret, SecretTemplate, TemplateMetadata};
use kseal_shared::{binding::Scope, x25519::Identity};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

/// The keys the controller publishes.
async fn published(fixture: &Fixture) -> Vec<PublishedKey> {
    let api: Api<ConfigMap> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    let Ok(config_map) = api.get(PUBLIC_KEYS_CONFIGMAP).await else {
        return Vec::new();
    };
    let text = config_map
        .data
        .unwrap_or_default()
        .remove(KEYS_DATA_KEY)
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

async fn has_warning(fixture: &Fixture, namespace: &str, name: &str, reason: &str) -> bool {
    let api: Api<Event> = Api::namespaced(fixture.client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|event| {
            event.involved_object.name.as_deref() == Some(name)
                && event.type_.as_deref() == Some("Warning")
                && event.reason.as_deref() == Some(reason)
        })
}

/// A SealedSecret (sealed to the cluster) whose Secret would carry this
/// type, labels and annotations.
fn sealed_with_template(
    namespace: &str,
    name: &str,
    values: &[(&str, &str)],
    type_: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    recipients: &[kseal_shared::x25519::Recipient],
) -> SealedSecret {
    let mut sealed = seal(&plain(namespace, name, values), Scope::Strict, recipients);
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    sealed.spec.template = Some(SecretTemplate {
        type_: Some(type_.to_owned()),
        immutable: None,
        metadata: Some(TemplateMetadata {
            labels: map(labels),
            annotations: map(annotations),
        }),
    });
    sealed
}

#[tokio::test]
async fn sealed_secrets_cannot_install_keys_or_dangerous_secrets() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let controller = fixture.controller("kseal-controller", &[]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let genuine = published(&fixture).await;
    assert_eq!(genuine.len(), 1, "{genuine:?}");

    // The attacker's key, as the key Secret the controller itself writes.
    let attacker = Identity::generate();
    let identity_file = attacker.to_secret_string().expose_secret().to_owned();
    let attacker_id = attacker.key_id().to_string();
    let key_labels = [
        (SEALING_KEY_LABEL, "true"),
        (KEY_STATE_LABEL, "active"),
        (KEY_ID_LABEL, attacker_id.as_str()),
    ];
    let key_annotations = [(KEY_CREATED_ANNOTATION, "2999-01-01T00:00:00Z")];

    // 1. In the controller's namespace: not reconciled at all.
    let in_controller_ns = sealed_with_template(
        NAMESPACE,
        "evil-key",
        &[(IDENTITY_DATA_KEY, &identity_file)],
        SEALING_KEY_SECRET_TYPE,
        &key_labels,
        &key_annotations,
        &recipients,
    );
    fixture.apply(&in_controller_ns).await;
    assert_eq!(
        fixture.wait_ready(NAMESPACE, "evil-key", "False").await,
        "PolicyDenied"
    );
    // 2. The same template in an application namespace: the key type and
    // the kseal.dev/ labels are refused.
    let in_app_ns = sealed_with_template(
        "app",
        "evil-key",
        &[(IDENTITY_DATA_KEY, &identity_file)],
        SEALING_KEY_SECRET_TYPE,
        &key_labels,
        &key_annotations,
        &recipients,
    );
    fixture.apply(&in_app_ns).await;
    assert_eq!(
        fixture.wait_ready("app", "evil-key", "False").await,
        "PolicyDenied"
    );
    let labels_only = sealed_with_template(
        "app",
        "evil-labels",
        &[("k", "v")],
        "Opaque",
        &[(SEALING_KEY_LABEL, "true")],
        &[],
        &recipients,
    );
    fixture.apply(&labels_only).await;
    assert_eq!(
        fixture.wait_ready("app", "evil-labels", "False").await,
        "PolicyDenied"
    );
    eventually("a PolicyDenied Warning event", || async {
        has_warning(&fixture, "app", "evil-key", "PolicyDenied").await
    })
    .await;
    for (namespace, name) in [
        (NAMESPACE, "evil-key"),
        ("app", "evil-key"),
        ("app", "evil-labels"),
    ] {
        assert!(
            fixture
                .secrets(namespace)
                .get_opt(name)
                .await
                .unwrap()
                .is_none(),
            "{namespace}/{name} was created"
        );
    }

    // 3. What an older controller would have made from such a SealedSecret:
    // a Secret with the key type and labels, owned by a SealedSecret. It is
    // not a key.
    let owner = fixture
        .sealed_secrets(NAMESPACE)
        .get("evil-key")
        .await
        .unwrap();
    let mut made: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "evil-key",
            "namespace": NAMESPACE,
            "labels": {SEALING_KEY_LABEL: "true", KEY_STATE_LABEL: "active", KEY_ID_LABEL: attacker_id},
            "annotations": {KEY_CREATED_ANNOTATION: "2999-01-01T00:00:00Z"},
            "ownerReferences": [{
                "apiVersion": "kseal.dev/v1alpha1", "kind": "SealedSecret",
                "name": "evil-key", "uid": owner.uid().unwrap(), "controller": true,
            }],
        },
        "type": SEALING_KEY_SECRET_TYPE,
        "stringData": {IDENTITY_DATA_KEY: identity_file},
    }))
    .unwrap();
    fixture
        .secrets(NAMESPACE)
        .create(&PostParams::default(), &made)
        .await
        .unwrap();
    made.string_data = None;
    // The controller logs it as ignored, and never publishes it.
    eventually("the forged key Secret reported as ignored", || async {
        controller
            .log()
            .contains("not a sealing key made by the controller")
    })
    .await;
    let keys = published(&fixture).await;
    assert!(
        keys.iter().all(|key| key.id != attacker_id),
        "the attacker's key was published: {keys:?}"
    );
    let (status, body) = controller.get("/v1/public-keys").await;
    assert_eq!(status, 200);
    assert!(!body.contains(&attacker_id), "{body}");
    assert!(!body.contains(&attacker.recipient().to_string()), "{body}");

    // 4. Dangerous Secrets from an application namespace.
    let token = sealed_with_template(
        "app",
        "token",
        &[("extra", "x")],
        "kubernetes.io/service-account-token",
        &[],
        &[("kubernetes.io/service-account.name", "default")],
        &recipients,
    );
    let replicated = sealed_with_template(
        "app",
        "replicated",
        &[("password", "p")],
        "Opaque",
        &[],
        &[("replicator.v1.mittwald.de/replicate-to", "other-team")],
        &recipients,
    );
    let fine = sealed_with_template(
        "app",
        "fine",
        &[("password", "p")],
        "kubernetes.io/basic-auth",
        &[("team", "a"), ("app.kubernetes.io/name", "db")],
        &[
            ("example.com/note", "x"),
            ("argocd.argoproj.io/sync-wave", "1"),
        ],
        &recipients,
    );
    for sealed in [&token, &replicated, &fine] {
        fixture.apply(sealed).await;
    }
    assert_eq!(
        fixture.wait_ready("app", "token", "False").await,
        "PolicyDenied"
    );
    assert_eq!(
        fixture.wait_ready("app", "replicated", "False").await,
        "PolicyDenied"
    );
    assert_eq!(fixture.wait_ready("app", "fine", "True").await, "Unsealed");
    assert!(
        fixture
            .secrets("app")
            .get_opt("token")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        fixture
            .secrets("app")
            .get_opt("replicated")
            .await
            .unwrap()
            .is_none()
    );
    let status = fixture
        .sealed_secrets("app")
        .get("token")
        .await
        .unwrap()
        .status
        .unwrap();
    let message = &status.conditions[0].message;
    assert!(message.contains("--allow-secret-types"), "{message}");

    // Secrets other controllers act on by a label or annotation (security
    // issue #23, item 5): istiod (remote clusters' kubeconfigs),
    // cert-manager's cainjector (CA bundles of webhooks), Grafana's sidecar
    // (data sources). The API server accepts these keys; the policy does not.
    let consumers = [
        (
            "mesh",
            &[("istio/multiCluster", "true")][..],
            &[][..],
            "istio/multiCluster",
        ),
        (
            "injected",
            &[],
            &[("cert-manager.io/allow-direct-injection", "true")][..],
            "cert-manager.io/",
        ),
        (
            "datasource",
            &[("grafana_datasource", "1")],
            &[],
            "grafana_datasource",
        ),
    ];
    for (name, labels, annotations, _) in consumers {
        let sealed = sealed_with_template(
            "app",
            name,
            &[("ca.crt", "x")],
            "Opaque",
            labels,
            annotations,
            &recipients,
        );
        fixture.apply(&sealed).await;
    }
    for (name, _, _, entry) in consumers {
        assert_eq!(
            fixture.wait_ready("app", name, "False").await,
            "PolicyDenied",
            "{name}"
        );
        assert!(
            fixture
                .secrets("app")
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
        );
        let status = fixture
            .sealed_secrets("app")
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap();
        let message = &status.conditions[0].message;
        assert!(
            message.contains("--allow-metadata-prefixes") && message.contains(entry),
            "{message}"
        );
    }

    // 5. A real key whose creation time is in the far future or garbage:
    // renewal neither stops nor runs again and again.
    let key_secrets = fixture.secrets(NAMESPACE);
    let real = key_secrets
        .list(&ListParams::default().labels(&format!("{SEALING_KEY_LABEL}=true")))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|secret| {
            secret.type_.as_deref() == Some(SEALING_KEY_SECRET_TYPE)
                && secret.owner_references().is_empty()
        })
        .unwrap();
    // Every event of the key watch logs the forged key Secret of step 3
    // again: one more such line shows the controller has read a change.
    let forged_reports = || {
        controller
            .log()
            .matches("not a sealing key made by the controller")
            .count()
    };
    for created in ["2999-01-01T00:00:00Z", "not a time"] {
        let reports = forged_reports();
        let patch =
            serde_json::json!({"metadata": {"annotations": {KEY_CREATED_ANNOTATION: created}}});
        key_secrets
            .patch(
                &real.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        eventually("the controller read the patched key Secret", || async {
            forged_reports() > reports
        })
        .await;
        let keys = published(&fixture).await;
        assert_eq!(
            keys.iter().map(|key| key.id.as_str()).collect::<Vec<_>>(),
            [genuine[0].id.as_str()],
            "created-at {created:?} made the controller generate keys"
        );
    }
}

/// Template metadata a tenant chooses is bounded where it enters: the API
/// server refuses more than 64 labels or annotations (the CRD), and the
/// controller refuses annotations over 64 KiB together (`InvalidSpec`, no
/// Secret) before it would hold them.
#[tokio::test]
async fn template_metadata_is_bounded() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let many: Vec<(String, String)> = (0..65)
        .map(|i| (format!("team.example/l{i}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (labels, annotations) in [(&many[..], &[][..]), (&[][..], &many[..])] {
        let sealed = sealed_with_template(
            "app",
            "many",
            &[("k", "v")],
            "Opaque",
            labels,
            annotations,
            &recipients,
        );
        let result = fixture
            .sealed_secrets("app")
            .create(&PostParams::default(), &sealed)
            .await;
        assert!(
            matches!(&result, Err(kube::Error::Api(status)) if status.code == 422),
            "65 entries admitted: {result:?}"
        );
    }
    let large = "x".repeat(40 * 1024);
    let sealed = sealed_with_template(
        "app",
        "large",
        &[("k", "v")],
        "Opaque",
        &[],
        &[
            ("team.example/a", large.as_str()),
            ("team.example/b", large.as_str()),
        ],
        &recipients,
    );
    fixture.apply(&sealed).await;
    assert_eq!(
        fixture.wait_ready("app", "large", "False").await,
        "InvalidSpec"
    );
    let status = fixture
        .sealed_secrets("app")
        .get("large")
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(
        status.conditions[0]
            .message
            .contains("kseal allows at most 65536"),
        "{}",
        status.conditions[0].message
    );
    assert!(
        fixture
            .secrets("app")
            .get_opt("large")
            .await
            .unwrap()
            .is_none()
    );

    // A well-formed object over the cache's per-object budget (a 200 KiB
    // value) is not held whole, but read again when reconciled: unsealed.
    let value = "v".repeat(200 * 1024);
    fixture
        .apply(&seal(
            &plain("app", "big", &[("blob", value.as_str())]),
            Scope::Strict,
            &recipients,
        ))
        .await;
    assert_eq!(fixture.wait_ready("app", "big", "True").await, "Unsealed");
    let secret = fixture.secrets("app").get("big").await.unwrap();
    assert_eq!(data_of(&secret, "blob").len(), value.len());
}
