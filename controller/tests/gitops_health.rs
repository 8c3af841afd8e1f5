//! What Flux and Argo CD conclude from a SealedSecret's status, computed by
//! their own code on live objects in every state: kstatus
//! (`sigs.k8s.io/cli-utils` `status.Compute`, Flux's default health check),
//! Flux's CEL health expressions as shipped in examples/gitops/flux, and the
//! Argo CD health Lua of examples/gitops/argocd under gopher-lua. The
//! expected results are the table in docs/gitops-health.md, read here, so
//! the documentation cannot drift from what the clients say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use kseal_shared::binding::{Binding, Scope};
use kseal_shared::envelope::seal_at;
use kseal_shared::sealed_secret::{SealedSecret, SecretTemplate, TemplateMetadata};
use kseal_shared::x25519::{Identity, Recipient};
use kube::api::{Patch, PatchParams, PostParams};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One row of the table: the state's name, then what kstatus, the Flux
/// expressions and Argo CD say.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    kstatus: String,
    flux: String,
    argocd: String,
}

/// The table in docs/gitops-health.md: rows whose first cell starts with a
/// state name in backticks.
fn documented() -> BTreeMap<String, Expected> {
    let path = repo().join("docs/gitops-health.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let Some(state) = cells
            .first()
            .and_then(|cell| cell.strip_prefix('`'))
            .and_then(|cell| cell.split('`').next())
        else {
            continue;
        };
        assert!(cells.len() >= 5, "{}: short row {line}", path.display());
        let word = |cell: &str| {
            cell.trim_matches('*')
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches('*')
                .to_owned()
        };
        rows.insert(
            state.to_owned(),
            Expected {
                kstatus: word(cells[2]),
                flux: word(cells[3]),
                argocd: word(cells[4]),
            },
        );
    }
    rows
}

fn sealed_at_age(name: &str, days: u64, recipients: &[Recipient]) -> SealedSecret {
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap();
    let binding = Binding::new(Scope::Strict, "app", name, "k");
    let value = seal_at(b"v", &binding, recipients, now - days * 86_400).unwrap();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kseal.dev/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"maxAge": "30d", "encryptedData": {"k": value.encode()}},
    }))
    .unwrap()
}

async fn wait_condition(fixture: &Fixture, name: &str, type_: &str, want: &str) {
    eventually(&format!("{name}: {type_}={want}"), || async {
        let Ok(object) = fixture.sealed_secrets("app").get(name).await else {
            return false;
        };
        let generation = object.metadata.generation;
        object.status.is_some_and(|status| {
            status.observed_generation == generation
                && status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == want)
        })
    })
    .await;
}

#[tokio::test]
async fn flux_and_argocd_read_every_state_as_documented() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let checker = kseal_testenv::health::ensure_checker().unwrap();
    fixture.namespace("app").await;
    let api = fixture.sealed_secrets("app");
    let secrets = fixture.secrets("app");

    // The cluster's key, from a first controller run. (A SealedSecret
    // sealed to a key this cluster never had keeps a fresh controller from
    // making its first key: lost keys are not silently replaced.)
    let controller = fixture.controller("kseal-controller-first", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    drop(controller);
    let stranger = Identity::generate();
    let strangers = [stranger.recipient().clone()];
    // Not yet seen: applied while no controller runs.
    fixture
        .apply(&seal(
            &plain("app", "new", &[("k", "v")]),
            Scope::Strict,
            &recipients,
        ))
        .await;
    let new = api.get("new").await.unwrap();

    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let sealed = |name: &str, value: &str| {
        seal(
            &plain("app", name, &[("k", value)]),
            Scope::Strict,
            &recipients,
        )
    };

    fixture.apply(&sealed("synced", "one")).await;
    fixture
        .apply(&sealed_at_age("rotation-due", 45, &recipients))
        .await;
    fixture
        .apply(&seal(
            &plain("app", "unknown-key", &[("k", "v")]),
            Scope::Strict,
            &strangers,
        ))
        .await;
    let mut malformed = sealed("malformed", "v");
    malformed
        .spec
        .encrypted_data
        .insert("k".into(), "kseal:v2:garbage".into());
    fixture.apply(&malformed).await;
    // Sealed for another name: does not open here.
    let mut moved = sealed("elsewhere", "v");
    moved.metadata.name = Some("decrypt-failed".into());
    fixture.apply(&moved).await;
    // A template label Kubernetes would refuse.
    let mut invalid = sealed("invalid-spec", "v");
    invalid.spec.template = Some(SecretTemplate {
        metadata: Some(TemplateMetadata {
            labels: BTreeMap::from([("not a label key!".to_owned(), "x".to_owned())]),
            annotations: BTreeMap::new(),
        }),
        ..SecretTemplate::default()
    });
    fixture.apply(&invalid).await;
    let mut denied = plain("app", "policy-denied", &[("k", "v")]);
    denied.type_ = Some("kubernetes.io/service-account-token".into());
    fixture
        .apply(&seal_then_retype(&denied, Scope::Strict, &recipients))
        .await;
    let theirs: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "not-owned", "namespace": "app"},
        "stringData": {"k": "theirs"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    fixture.apply(&sealed("not-owned", "v")).await;
    // Retrying: a type change whose recreate a finalizer holds up.
    fixture.apply(&sealed("retrying", "v")).await;
    assert_eq!(
        fixture.wait_ready("app", "retrying", "True").await,
        "Unsealed"
    );
    let hold = serde_json::json!({"metadata": {"finalizers": ["example.com/hold"]}});
    secrets
        .patch("retrying", &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    let mut retyped = plain("app", "retrying", &[("k", "v")]);
    retyped.type_ = Some("example.com/other".into());
    fixture
        .apply(&seal(&retyped, Scope::Strict, &recipients))
        .await;
    fixture.apply(&sealed("updated-while-down", "one")).await;
    fixture
        .apply(&seal(
            &plain("app", "stalled-updated-while-down", &[("k", "v")]),
            Scope::Strict,
            &strangers,
        ))
        .await;

    for (name, reason) in [
        ("synced", "Unsealed"),
        ("rotation-due", "Unsealed"),
        ("updated-while-down", "Unsealed"),
    ] {
        assert_eq!(
            fixture.wait_ready("app", name, "True").await,
            reason,
            "{name}"
        );
    }
    wait_condition(&fixture, "rotation-due", "RotationDue", "True").await;
    for (name, reason) in [
        ("unknown-key", "UnknownKey"),
        ("stalled-updated-while-down", "UnknownKey"),
        ("malformed", "MalformedValue"),
        ("decrypt-failed", "DecryptFailed"),
        ("invalid-spec", "InvalidSpec"),
        ("policy-denied", "PolicyDenied"),
        ("not-owned", "SecretNotOwned"),
        ("retrying", "RecreatePending"),
    ] {
        assert_eq!(
            fixture.wait_ready("app", name, "False").await,
            reason,
            "{name}"
        );
    }
    wait_condition(&fixture, "retrying", "Reconciling", "True").await;
    wait_condition(&fixture, "unknown-key", "Stalled", "True").await;

    // Updated while the controller is down: generation ahead of status.
    drop(controller);
    fixture.apply(&sealed("updated-while-down", "two")).await;
    let mut other_stranger = plain("app", "stalled-updated-while-down", &[("k", "w")]);
    other_stranger.labels.insert("changed".into(), "yes".into());
    fixture
        .apply(&seal(&other_stranger, Scope::Strict, &strangers))
        .await;

    let documented = documented();
    let mut objects = vec![("new".to_owned(), serde_json::to_value(&new).unwrap())];
    for name in documented.keys().filter(|name| *name != "new") {
        let object = api
            .get(name)
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        objects.push((name.clone(), serde_json::to_value(&object).unwrap()));
    }
    let values: Vec<serde_json::Value> = objects.iter().map(|(_, object)| object.clone()).collect();
    let verdicts = kseal_testenv::health::check(
        &checker,
        &repo().join("examples/gitops/argocd/argocd-cm.yaml"),
        &repo().join("examples/gitops/flux/prod.yaml"),
        &values,
    )
    .unwrap();
    assert_eq!(verdicts.len(), objects.len());
    let mut wrong = Vec::new();
    for ((name, object), health) in objects.iter().zip(&verdicts) {
        let said = Expected {
            kstatus: health.kstatus.status.clone(),
            flux: health.flux.status.clone(),
            argocd: health.argocd.status.clone(),
        };
        if said != documented[name] {
            wrong.push(format!(
                "{name}: documented {:?}, the clients said {health:?}\n  status: {}",
                documented[name], object["status"]
            ));
        }
        // What they show people is a sentence, never a Rust Debug form.
        for verdict in [&health.kstatus, &health.flux, &health.argocd] {
            assert!(
                !kseal_shared::looks_like_rust_debug(&verdict.message),
                "{name}: {}",
                verdict.message
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every state the table names was produced here, and no other.
    let produced: Vec<&str> = objects.iter().map(|(name, _)| name.as_str()).collect();
    let named: Vec<&str> = documented.keys().map(String::as_str).collect();
    let mut produced_sorted = produced.clone();
    produced_sorted.sort_unstable();
    assert_eq!(produced_sorted, named);
}
