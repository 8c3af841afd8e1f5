//! What `kseal seal` trusts as the cluster's keys (docs/security.md,
//! "Security round three"): the public-key ConfigMap, against a real
//! control plane.
//! - Tampered while no controller runs: the CLI refuses to seal to it or
//!   pin it; a starting controller restores it, with a Warning Event.
//! - Tampered while the controller runs: restored at once (an appended
//!   recipient, a replaced one, a foreign data key, a deleted ConfigMap).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kseal_shared::contract::{KEYS_DATA_KEY, PUBLIC_KEYS_CONFIGMAP, RECIPIENTS_DATA_KEY};
use kseal_shared::x25519::Identity;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

fn config_maps(fixture: &Fixture) -> Api<ConfigMap> {
    Api::namespaced(fixture.client.clone(), NAMESPACE)
}

async fn data(fixture: &Fixture) -> Option<(String, String)> {
    let config_map = config_maps(fixture)
        .get_opt(PUBLIC_KEYS_CONFIGMAP)
        .await
        .ok()??;
    let mut data = config_map.data.unwrap_or_default();
    if data.len() != 2 {
        return None;
    }
    Some((
        data.remove(RECIPIENTS_DATA_KEY)?,
        data.remove(KEYS_DATA_KEY)?,
    ))
}

async fn tamper(fixture: &Fixture, patch: serde_json::Value) {
    config_maps(fixture)
        .patch(
            PUBLIC_KEYS_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

async fn restored_events(fixture: &Fixture) -> usize {
    Api::<Event>::namespaced(fixture.client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|event| {
            event.reason.as_deref() == Some("PublicKeysRestored")
                && event.type_.as_deref() == Some("Warning")
                && event.involved_object.name.as_deref() == Some(PUBLIC_KEYS_CONFIGMAP)
        })
        // Repeats are aggregated into a series on one Event.
        .map(|event| {
            let series = event.series.as_ref().and_then(|series| series.count);
            series.max(event.count).unwrap_or(1).max(1) as usize
        })
        .sum()
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\nstringData:\n  password: hunter2\n";

#[tokio::test]
async fn the_public_keys_are_restored_and_checked() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let args = ["--key-renew-period", "0"];
    let mut controller = fixture.controller("kseal-controller", &args);
    controller.wait_healthy().await;
    let cluster = fixture.recipients().await;
    let good = data(&fixture).await.unwrap();
    let attacker = Identity::generate();
    let appended = format!("{}{}\n", good.0, attacker.recipient());
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();

    // 1. No controller running: the CLI is the only check.
    controller.process.kill();
    tamper(&fixture, json!({"data": {RECIPIENTS_DATA_KEY: appended}})).await;
    for args in [
        vec!["seal", "--kubeconfig", &kubeconfig],
        vec!["fetch-keys", "--kubeconfig", &kubeconfig],
    ] {
        let stdin = (args[0] == "seal").then_some(SECRET);
        let (code, out, err) = kseal(&fixture.dir, &args, stdin);
        assert_ne!(code, 0, "kseal {args:?} used tampered keys: {out}");
        assert!(
            err.contains("does not hold together") && out.is_empty(),
            "kseal {args:?}: {err}"
        );
    }
    // A replaced recipient (listed nowhere as active) is refused too.
    let replaced = format!("# kseal\n{}\n", attacker.recipient());
    tamper(
        &fixture,
        json!({"data": {RECIPIENTS_DATA_KEY: replaced.clone()}}),
    )
    .await;
    let (code, _, err) = kseal(
        &fixture.dir,
        &["seal", "--kubeconfig", &kubeconfig],
        Some(SECRET),
    );
    assert_ne!(code, 0, "sealed to a replaced recipient");
    assert!(err.contains("does not give as active"), "{err}");
    // A forgery that holds together (the attacker's key, listed as active
    // under its own id) passes the CLI's check: only the controller, which
    // knows its keys, can tell. It is what the controller finds at start.
    let forged = json!([{
        "id": attacker.key_id().to_string(),
        "recipient": attacker.recipient().to_string(),
        "created": "2026-12-01T00:00:00Z",
        "state": "active",
    }]);
    tamper(
        &fixture,
        json!({"data": {KEYS_DATA_KEY: forged.to_string(), RECIPIENTS_DATA_KEY: replaced}}),
    )
    .await;

    // 2. The controller starts: restored, with a Warning Event.
    controller.process.start().unwrap();
    eventually("the public keys restored at start", || async {
        data(&fixture).await.as_ref() == Some(&good)
    })
    .await;
    eventually("a PublicKeysRestored event", || async {
        restored_events(&fixture).await >= 1
    })
    .await;
    let (code, sealed, err) = kseal(
        &fixture.dir,
        &["seal", "--kubeconfig", &kubeconfig],
        Some(SECRET),
    );
    assert_eq!(code, 0, "seal after the restore: {err}");
    assert!(sealed.contains("kind: SealedSecret"));

    // 3. While it runs: each kind of change is undone at once.
    let changes = [
        json!({"data": {RECIPIENTS_DATA_KEY: appended}}),
        json!({"data": {"extra.txt": attacker.recipient().to_string()}}),
        json!({"data": {KEYS_DATA_KEY: "[]", RECIPIENTS_DATA_KEY: "# none\n"}}),
    ];
    for change in changes {
        let events = restored_events(&fixture).await;
        tamper(&fixture, change.clone()).await;
        eventually("the change undone", || async {
            data(&fixture).await.as_ref() == Some(&good)
        })
        .await;
        eventually("a Warning for it", || async {
            restored_events(&fixture).await > events
        })
        .await;
    }
    // The record of held keys (kseal pins update and keys list read it): a
    // recovery key's public id added to it, or a forged key list whose ids
    // it would absorb, is undone too, never kept as "held".
    let held = || async {
        config_maps(&fixture)
            .get(PUBLIC_KEYS_CONFIGMAP)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .get("kseal.dev/held-key-ids")
            .cloned()
            .unwrap_or_default()
    };
    let held_before = held().await;
    let recovery_id = attacker.recipient().key_id().to_string();
    let forged_list = serde_json::to_string(&json!([{
        "id": recovery_id,
        "recipient": attacker.recipient().to_string(),
        "created": "2026-01-01T00:00:00Z",
        "state": "retired",
    }]))
    .unwrap();
    for change in [
        json!({"metadata": {"annotations": {"kseal.dev/held-key-ids": format!("{held_before},{recovery_id}")}}}),
        json!({"data": {KEYS_DATA_KEY: forged_list}}),
    ] {
        let events = restored_events(&fixture).await;
        tamper(&fixture, change.clone()).await;
        eventually("the record restored", || async {
            held().await == held_before && data(&fixture).await.as_ref() == Some(&good)
        })
        .await;
        eventually("a Warning for it", || async {
            restored_events(&fixture).await > events
        })
        .await;
        controller.settle().await;
        assert!(!held().await.contains(&recovery_id), "{change}");
    }
    let events_before_delete = restored_events(&fixture).await;
    config_maps(&fixture)
        .delete(PUBLIC_KEYS_CONFIGMAP, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted ConfigMap re-created", || async {
        data(&fixture).await.as_ref() == Some(&good)
    })
    .await;
    eventually("a Warning for the deletion", || async {
        restored_events(&fixture).await > events_before_delete
    })
    .await;
    assert_eq!(fixture.recipients().await, cluster);

    // The controller's own changes are not tampering: a rotation publishes
    // a new key with no Warning.
    let events = restored_events(&fixture).await;
    let (code, _, err) = kseal(
        &fixture.dir,
        &["keys", "rotate", "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 0, "rotate: {err}");
    assert_ne!(fixture.recipients().await, cluster);
    controller.settle().await;
    assert_eq!(
        restored_events(&fixture).await,
        events,
        "a rotation was taken for tampering"
    );
}
