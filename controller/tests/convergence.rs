//! Every change of `spec.template` reaches the Secret, against a real API
//! server: a type change (immutable in Kubernetes) recreates it, labels and
//! annotations removed from the template leave it while what others added
//! stays, an immutable Secret whose data changes is recreated, and a Secret
//! orphaned by `--cascade=orphan` is adopted again while someone else's is
//! not. A recreate blocked by a finalizer is reported as work in progress
//! (`Reconciling`) and finishes once the finalizer goes. No condition or
//! Event on the way reads like a Rust `Debug` form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Event, Secret};
use kseal_shared::binding::Scope;
use kseal_shared::sealed_secret::SealedSecret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Api, ResourceExt};

async fn events_for(fixture: &Fixture, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(fixture.client.clone(), "app");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| event.involved_object.name.as_deref() == Some(name))
        .collect()
}

/// Polls `probe` until it gives something, for up to a minute.
async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Waits for an Event of `reason` on `name` and returns its note.
async fn wait_event(fixture: &Fixture, name: &str, reason: &str) -> String {
    poll(&format!("{reason} Event on {name}"), || async {
        events_for(fixture, name)
            .await
            .into_iter()
            .find(|event| event.reason.as_deref() == Some(reason))
            .and_then(|event| event.message)
    })
    .await
}

/// Waits until the Secret `name` satisfies `check`, and returns it.
async fn wait_secret(
    fixture: &Fixture,
    name: &str,
    what: &str,
    check: impl Fn(&Secret) -> bool,
) -> Secret {
    poll(what, || async {
        fixture
            .secrets("app")
            .get_opt(name)
            .await
            .unwrap()
            .filter(|secret| check(secret))
    })
    .await
}

fn conditions(sealed: &SealedSecret) -> Vec<(String, String, String)> {
    sealed
        .status
        .iter()
        .flat_map(|status| &status.conditions)
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn labelled(
    name: &str,
    value: &str,
    type_: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    recipients: &[kseal_shared::x25519::Recipient],
) -> SealedSecret {
    let mut secret = plain("app", name, &[("tls.crt", value), ("tls.key", value)]);
    secret.type_ = Some(type_.into());
    secret.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    secret.annotations = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    seal(&secret, Scope::Strict, recipients)
}

#[tokio::test]
async fn template_changes_reach_the_secret() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let secrets = fixture.secrets("app");

    // --- The type: Opaque to kubernetes.io/tls -----------------------------
    fixture
        .apply(&labelled("web", "one", "Opaque", &[], &[], &recipients))
        .await;
    assert_eq!(fixture.wait_ready("app", "web", "True").await, "Unsealed");
    // Someone else labels it; the re-created Secret keeps that.
    let theirs = serde_json::json!({"metadata": {"labels": {"team-tool": "on"}}});
    secrets
        .patch("web", &PatchParams::default(), &Patch::Merge(&theirs))
        .await
        .unwrap();
    let before = secrets.get("web").await.unwrap();
    fixture
        .apply(&labelled(
            "web",
            "one",
            "kubernetes.io/tls",
            &[],
            &[],
            &recipients,
        ))
        .await;
    let after = wait_secret(&fixture, "web", "Secret web of type tls", |s| {
        s.type_.as_deref() == Some("kubernetes.io/tls")
    })
    .await;
    assert_ne!(after.metadata.uid, before.metadata.uid, "not recreated");
    assert_eq!(data_of(&after, "tls.key"), "one");
    assert_eq!(after.labels()["team-tool"], "on");
    assert_eq!(after.owner_references()[0].name, "web");
    assert_eq!(fixture.wait_ready("app", "web", "True").await, "Unsealed");
    let note = wait_event(&fixture, "web", "Recreated").await;
    assert!(
        note.contains("Secret web") && note.contains("type"),
        "{note}"
    );

    // --- A type change the API server would refuse: nothing is deleted ----
    let mut keyless = plain("app", "keyless", &[("k", "v")]);
    fixture
        .apply(&seal(&keyless, Scope::Strict, &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "keyless", "True").await,
        "Unsealed"
    );
    let kept = secrets.get("keyless").await.unwrap();
    // Without the keys its type requires, the controller says so itself
    // (the shared definition of a well-formed SealedSecret), by name.
    keyless.type_ = Some("kubernetes.io/tls".into());
    fixture
        .apply(&seal_then_retype(&keyless, Scope::Strict, &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "keyless", "False").await,
        "InvalidSpec"
    );
    let object = fixture.sealed_secrets("app").get("keyless").await.unwrap();
    let found = conditions(&object);
    assert!(
        found.contains(&("Stalled".into(), "True".into(), "InvalidSpec".into())),
        "{found:?}"
    );
    let message = &object.status.as_ref().unwrap().conditions[0].message;
    assert!(message.contains("requires data[tls.crt]"), "{message}");
    let still = secrets.get("keyless").await.unwrap();
    assert_eq!(
        still.metadata.uid, kept.metadata.uid,
        "the Secret was deleted"
    );
    // What only the values show, the API server refuses: the old Secret is
    // kept, and the refusal quotes no value (the API server's JSON error
    // for a bad .dockerconfigjson names the value's first byte).
    let mut docker = plain("app", "docker", &[(".dockerconfigjson", "Zleaked")]);
    fixture
        .apply(&seal(&docker, Scope::Strict, &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "docker", "True").await,
        "Unsealed"
    );
    let kept = secrets.get("docker").await.unwrap();
    docker.type_ = Some("kubernetes.io/dockerconfigjson".into());
    fixture
        .apply(&seal_then_retype(&docker, Scope::Strict, &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "docker", "False").await,
        "SecretRejected"
    );
    let object = fixture.sealed_secrets("app").get("docker").await.unwrap();
    assert!(
        conditions(&object).contains(&("Stalled".into(), "True".into(), "SecretRejected".into())),
        "{:?}",
        conditions(&object)
    );
    assert_eq!(
        secrets.get("docker").await.unwrap().metadata.uid,
        kept.metadata.uid,
        "the Secret was deleted"
    );
    let object = fixture.sealed_secrets("app").get("docker").await.unwrap();
    let message = &object.status.unwrap().conditions[0].message;
    assert!(message.contains("<secret contents redacted>"), "{message}");
    assert!(!message.contains("'Z'"), "{message}");

    // An admission policy whose message quotes the value it refuses: the
    // message is withheld, whatever the answer's code.
    let policy: serde_json::Value = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "echo"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["secrets"],
            }]},
            "matchConditions": [{
                "name": "echo-only",
                "expression": "has(object.metadata.labels) && 'echo-test' in object.metadata.labels",
            }],
            "validations": [{
                "expression": "false",
                "reason": "RequestEntityTooLarge",
                "messageExpression": "'refused, value is ' + string(object.data['password'])",
            }],
        },
    });
    let binding = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "echo"},
        "spec": {"policyName": "echo", "validationActions": ["Deny"]},
    });
    for object in [policy, binding] {
        let object: kube::api::DynamicObject = serde_json::from_value(object).unwrap();
        let gvk = kube::api::GroupVersionKind::try_from(object.types.as_ref().unwrap()).unwrap();
        let api: Api<kube::api::DynamicObject> = Api::all_with(
            fixture.client.clone(),
            &kube::api::ApiResource::from_gvk(&gvk),
        );
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    let mut echoed = plain("app", "echoed", &[("password", "hunter2-canary")]);
    echoed.labels.insert("echo-test".into(), "1".into());
    // The policy takes a moment to be enforced: until the object is
    // refused, look again.
    fixture
        .apply(&seal(&echoed, Scope::Strict, &recipients))
        .await;
    let object = poll("the echoed Secret refused", || async {
        let object = fixture.sealed_secrets("app").get("echoed").await.ok()?;
        let ready = object.status.as_ref()?.conditions.first()?.clone();
        if ready.status == "True" {
            // Made before the policy took effect: change it to be refused.
            let _ = secrets.delete("echoed", &DeleteParams::default()).await;
            return None;
        }
        (ready.reason == "SecretRejected").then_some(ready)
    })
    .await;
    assert!(!object.message.contains("hunter2"), "{}", object.message);
    assert!(object.message.contains("withheld"), "{}", object.message);
    for event in events_for(&fixture, "echoed").await {
        let message = event.message.unwrap_or_default();
        assert!(!message.contains("hunter2"), "{message}");
    }

    // --- An empty type is Opaque: no re-create when others touch it --------
    fixture
        .apply(&labelled("untyped", "v", "", &[], &[], &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "untyped", "True").await,
        "Unsealed"
    );
    let first = secrets.get("untyped").await.unwrap();
    let touch = serde_json::json!({"metadata": {"annotations": {"touched": "yes"}}});
    secrets
        .patch("untyped", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    controller.settle().await;
    let touched = secrets.get("untyped").await.unwrap();
    assert_eq!(touched.metadata.uid, first.metadata.uid, "re-created");
    assert_eq!(touched.annotations()["touched"], "yes");

    // --- Events say the latest cause, not the first one of their reason ----
    for type_ in [
        "kubernetes.io/service-account-token",
        "bootstrap.kubernetes.io/token",
    ] {
        let mut denied = plain("app", "denied", &[("k", "v")]);
        denied.type_ = Some(type_.into());
        fixture
            .apply(&seal_then_retype(&denied, Scope::Strict, &recipients))
            .await;
        poll(&format!("a PolicyDenied Event naming {type_}"), || async {
            events_for(&fixture, "denied")
                .await
                .into_iter()
                .filter(|event| event.reason.as_deref() == Some("PolicyDenied"))
                .find(|event| {
                    event
                        .message
                        .as_deref()
                        .is_some_and(|message| message.contains(type_))
                })
        })
        .await;
    }

    // --- Labels and annotations removed from the template ------------------
    let first = labelled(
        "dash",
        "v",
        "Opaque",
        &[("team", "payments"), ("example.com/dashboard", "1")],
        &[("owner", "alice"), ("argocd.example/note", "x")],
        &recipients,
    );
    fixture.apply(&first).await;
    assert_eq!(fixture.wait_ready("app", "dash", "True").await, "Unsealed");
    // Others add their own.
    let theirs = serde_json::json!({"metadata": {
        "labels": {"added-by-other": "yes"},
        "annotations": {"other.example/note": "keep me"},
    }});
    secrets
        .patch("dash", &PatchParams::default(), &Patch::Merge(&theirs))
        .await
        .unwrap();
    let second = labelled(
        "dash",
        "v",
        "Opaque",
        &[("team", "payments")],
        &[],
        &recipients,
    );
    fixture.apply(&second).await;
    let dash = wait_secret(&fixture, "dash", "template metadata removed", |s| {
        !s.labels().contains_key("example.com/dashboard") && !s.annotations().contains_key("owner")
    })
    .await;
    assert_eq!(dash.labels()["team"], "payments");
    assert_eq!(dash.labels()["added-by-other"], "yes");
    assert_eq!(dash.labels()["kseal.dev/owned"], "true");
    assert_eq!(dash.annotations()["other.example/note"], "keep me");
    assert!(!dash.annotations().contains_key("argocd.example/note"));
    assert_eq!(
        dash.annotations()["kseal.dev/template-metadata"],
        r#"{"labels":["team"],"annotations":[]}"#
    );
    assert_eq!(fixture.wait_ready("app", "dash", "True").await, "Unsealed");
    // Down to no template metadata: the record goes too, theirs stays.
    fixture
        .apply(&labelled("dash", "v", "Opaque", &[], &[], &recipients))
        .await;
    let dash = wait_secret(&fixture, "dash", "no template metadata", |s| {
        !s.labels().contains_key("team")
    })
    .await;
    assert!(
        !dash
            .annotations()
            .contains_key("kseal.dev/template-metadata")
    );
    assert_eq!(dash.labels()["added-by-other"], "yes");
    assert_eq!(dash.annotations()["other.example/note"], "keep me");
    // A record edited by hand to name kseal's own label does not take the
    // label away; the edit is undone.
    let edited = serde_json::json!({"metadata": {"annotations": {
        "kseal.dev/template-metadata": r#"{"labels":["kseal.dev/owned"],"annotations":[]}"#,
    }}});
    secrets
        .patch("dash", &PatchParams::default(), &Patch::Merge(&edited))
        .await
        .unwrap();
    let dash = wait_secret(&fixture, "dash", "hand-edited record undone", |s| {
        !s.annotations().contains_key("kseal.dev/template-metadata")
    })
    .await;
    assert_eq!(dash.labels()["kseal.dev/owned"], "true");

    // --- An immutable Secret whose data changes ----------------------------
    let mut frozen = plain("app", "frozen", &[("k", "first")]);
    frozen.immutable = Some(true);
    fixture
        .apply(&seal(&frozen, Scope::Strict, &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "frozen", "True").await,
        "Unsealed"
    );
    let mut refrozen = plain("app", "frozen", &[("k", "second")]);
    refrozen.immutable = Some(true);
    fixture
        .apply(&seal(&refrozen, Scope::Strict, &recipients))
        .await;
    let secret = wait_secret(&fixture, "frozen", "immutable Secret recreated", |s| {
        s.data.as_ref().is_some_and(|d| d["k"].0 == b"second")
    })
    .await;
    assert_eq!(secret.immutable, Some(true));
    let note = wait_event(&fixture, "frozen", "Recreated").await;
    assert!(note.contains("immutable"), "{note}");

    // --- A recreate a finalizer holds up: in progress, then done -----------
    fixture
        .apply(&labelled("held", "v", "Opaque", &[], &[], &recipients))
        .await;
    assert_eq!(fixture.wait_ready("app", "held", "True").await, "Unsealed");
    let finalizer = serde_json::json!({"metadata": {"finalizers": ["example.com/hold"]}});
    secrets
        .patch("held", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .unwrap();
    fixture
        .apply(&labelled(
            "held",
            "v",
            "kubernetes.io/tls",
            &[],
            &[],
            &recipients,
        ))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "held", "False").await,
        "RecreatePending"
    );
    let held = fixture.sealed_secrets("app").get("held").await.unwrap();
    let found = conditions(&held);
    assert!(
        found.contains(&(
            "Reconciling".into(),
            "True".into(),
            "RecreatePending".into()
        )),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|(type_, ..)| type_ == "Stalled"),
        "{found:?}"
    );
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    secrets
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    wait_secret(&fixture, "held", "held Secret recreated as tls", |s| {
        s.type_.as_deref() == Some("kubernetes.io/tls")
    })
    .await;
    assert_eq!(fixture.wait_ready("app", "held", "True").await, "Unsealed");
    let held = fixture.sealed_secrets("app").get("held").await.unwrap();
    let found = conditions(&held);
    assert!(
        !found
            .iter()
            .any(|(type_, ..)| type_ == "Reconciling" || type_ == "Stalled"),
        "Reconciling is removed once the work is done: {found:?}"
    );

    // --- Orphaned by --cascade=orphan, then applied again -------------------
    // Three rounds, the controller running throughout: a reconcile of the
    // object being deleted (the orphan finalizer bumps its generation) must
    // not give the Secret its owner back, or the garbage collector deletes
    // it with the object after all.
    let delete = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    fixture
        .apply(&labelled("orphan", "v0", "Opaque", &[], &[], &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "orphan", "True").await,
        "Unsealed"
    );
    let first_uid = secrets.get("orphan").await.unwrap().metadata.uid;
    for round in 1..=3 {
        fixture
            .sealed_secrets("app")
            .delete("orphan", &delete)
            .await
            .unwrap();
        eventually("SealedSecret orphan gone", || async {
            fixture
                .sealed_secrets("app")
                .get_opt("orphan")
                .await
                .unwrap()
                .is_none()
        })
        .await;
        controller.settle().await;
        let left = secrets.get("orphan").await.unwrap();
        assert_eq!(
            left.metadata.uid, first_uid,
            "round {round}: not the same Secret"
        );
        assert!(left.owner_references().is_empty(), "round {round}");
        assert_eq!(left.labels()["kseal.dev/owned"], "true");

        let value = format!("v{round}");
        fixture
            .apply(&labelled("orphan", &value, "Opaque", &[], &[], &recipients))
            .await;
        assert_eq!(
            fixture.wait_ready("app", "orphan", "True").await,
            "Unsealed"
        );
        let uid = fixture
            .sealed_secrets("app")
            .get("orphan")
            .await
            .unwrap()
            .metadata
            .uid;
        let adopted = secrets.get("orphan").await.unwrap();
        assert_eq!(data_of(&adopted, "tls.key"), value);
        assert_eq!(adopted.metadata.uid, first_uid, "adopted, not recreated");
        assert_eq!(Some(adopted.owner_references()[0].uid.clone()), uid);
    }
    let note = wait_event(&fixture, "orphan", "Adopted").await;
    assert!(note.contains("--cascade=orphan"), "{note}");

    // A copy of a kseal Secret under another name (kubectl get | apply, a
    // policy engine's clone) keeps the label and the origin mark of its
    // first place: never adopted.
    let mut copy = secrets.get("orphan").await.unwrap();
    copy.metadata = kube::api::ObjectMeta {
        name: Some("copied".into()),
        namespace: Some("app".into()),
        labels: copy.metadata.labels.take(),
        annotations: copy.metadata.annotations.take(),
        ..Default::default()
    };
    assert!(copy.annotations().contains_key("kseal.dev/origin"));
    secrets.create(&PostParams::default(), &copy).await.unwrap();
    fixture
        .apply(&labelled("copied", "mine", "Opaque", &[], &[], &recipients))
        .await;
    assert_eq!(
        fixture.wait_ready("app", "copied", "False").await,
        "SecretNotOwned"
    );
    assert_eq!(
        data_of(&secrets.get("copied").await.unwrap(), "tls.key"),
        "v3"
    );

    // Not adopted: kseal's label but another controller (a live object, or
    // the garbage collector would delete the Secret), or no label.
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(fixture.client.clone(), "app");
    let someone: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "someone"}})).unwrap();
    let someone = configmaps
        .create(&PostParams::default(), &someone)
        .await
        .unwrap();
    let other_owner = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": "claimed", "namespace": "app",
            "labels": {"kseal.dev/owned": "true"},
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "someone",
                "uid": someone.metadata.uid, "controller": true,
            }],
        },
        "stringData": {"k": "theirs"},
    });
    let unlabelled = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plain", "namespace": "app"},
        "stringData": {"k": "theirs"},
    });
    for secret in [other_owner, unlabelled] {
        let secret: Secret = serde_json::from_value(secret).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    for name in ["claimed", "plain"] {
        fixture
            .apply(&labelled(name, "mine", "Opaque", &[], &[], &recipients))
            .await;
        assert_eq!(
            fixture.wait_ready("app", name, "False").await,
            "SecretNotOwned",
            "{name}"
        );
        let object = fixture.sealed_secrets("app").get(name).await.unwrap();
        let found = conditions(&object);
        assert!(
            found.contains(&("Stalled".into(), "True".into(), "SecretNotOwned".into())),
            "{name}: {found:?}"
        );
        assert_eq!(
            data_of(&secrets.get(name).await.unwrap(), "k"),
            "theirs",
            "{name}"
        );
    }

    // Every condition and Event on the way is a sentence, never a Rust
    // Debug form (the held recreate quoted the API server's 409).
    let mut texts = Vec::new();
    for sealed in fixture
        .sealed_secrets("app")
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        for condition in sealed.status.iter().flat_map(|s| &s.conditions) {
            assert_eq!(condition.observed_generation, sealed.metadata.generation);
            texts.push(condition.message.clone());
        }
    }
    let events: Api<Event> = Api::namespaced(fixture.client.clone(), "app");
    texts.extend(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|event| event.message),
    );
    assert!(
        texts.iter().any(|t| t.contains("example.com/hold")),
        "{texts:#?}"
    );
    for text in &texts {
        assert!(
            !kseal_shared::looks_like_rust_debug(text),
            "a Debug form reached people: {text}"
        );
    }
}
