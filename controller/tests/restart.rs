//! A restarted controller against a real control plane: what is in sync
//! costs no Secret read or write (counted by the API server itself, in its
//! audit log of the controller's own requests), what
//! changed while it was down is corrected, and a status record it did not
//! sign for that very object is not trusted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kseal_shared::sealed_secret::SecretRecord;
use kseal_shared::{binding::Scope, x25519::Recipient};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

const CANARY: &str = "canary-restart-51d2";
/// Who the controller is to the API server.
const CONTROLLER_USER: &str = "kseal-restart-controller";

/// The controller's requests on Secrets and SealedSecrets so far, by (verb,
/// resource, subresource), as the API server's audit log has them.
fn controller_requests(fixture: &Fixture) -> Requests {
    fixture.cp.audited_requests(CONTROLLER_USER).unwrap()
}

type Requests = BTreeMap<(String, String, String), u64>;

/// Requests between two [`controller_requests`] for `resource` (and
/// `subresource`, "" for the object itself), by verb, non-zero only.
fn between(
    before: &Requests,
    after: &Requests,
    resource: &str,
    subresource: &str,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|((_, r, s), _)| r == resource && s == subresource)
        .filter_map(|(key, count)| {
            let delta = count - before.get(key).copied().unwrap_or_default();
            (delta > 0).then(|| (key.0.clone(), delta))
        })
        .collect()
}

fn value(i: usize) -> String {
    format!("{CANARY}-{i}")
}

fn name(i: usize) -> String {
    format!("s{i}")
}

/// Seals and applies `count` objects in `namespace` (a template label and
/// annotation on each) and waits until every one is Ready.
async fn apply_objects(fixture: &Fixture, namespace: &str, count: usize, recipients: &[Recipient]) {
    for i in 0..count {
        let mut secret = plain(
            namespace,
            &name(i),
            &[("password", &value(i)), ("user", "admin")],
        );
        secret.labels = BTreeMap::from([("team".into(), "payments".into())]);
        secret.annotations = BTreeMap::from([("owner".into(), "alice".into())]);
        fixture
            .apply(&seal(&secret, Scope::Strict, recipients))
            .await;
    }
    for i in 0..count {
        assert_eq!(
            fixture.wait_ready(namespace, &name(i), "True").await,
            "Unsealed"
        );
    }
}

/// Reads one object with a LIST by name (the test's own requests are not
/// counted either way: see [`controller_requests`]).
async fn read<K>(api: &kube::Api<K>, name: &str) -> Option<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    api.list(&params).await.unwrap().items.into_iter().next()
}

/// Whether the Secret of object `i` holds exactly what was sealed.
async fn correct(fixture: &Fixture, namespace: &str, i: usize) -> bool {
    let Some(secret) = read(&fixture.secrets(namespace), &name(i)).await else {
        return false;
    };
    let data = secret.data.clone().unwrap_or_default();
    data.len() == 2
        && data_of(&secret, "password") == value(i)
        && data_of(&secret, "user") == "admin"
        && secret.labels().get("team").map(String::as_str) == Some("payments")
        && secret.labels().get("kseal.dev/owned").map(String::as_str) == Some("true")
        && secret.annotations().get("owner").map(String::as_str) == Some("alice")
}

/// The record in the status of object `i`, and the Secret's current
/// resourceVersion.
async fn record_and_version(
    fixture: &Fixture,
    namespace: &str,
    i: usize,
) -> (Option<SecretRecord>, Option<String>) {
    let sealed = read(&fixture.sealed_secrets(namespace), &name(i))
        .await
        .unwrap();
    let secret = read(&fixture.secrets(namespace), &name(i)).await;
    (
        sealed.status.and_then(|status| status.secret_record),
        secret.and_then(|secret| secret.metadata.resource_version),
    )
}

/// Restarts the controller and waits until it has reconciled at least
/// `count` objects since (its own counter), and then until it is idle:
/// everything those reconciles started (watch events of their own writes)
/// has run too.
async fn restart_and_resync(controller: &mut Controller, count: usize) {
    controller.process.start().unwrap();
    eventually("the resync after the restart", || async {
        controller
            .reconciles()
            .await
            .is_some_and(|n| n >= count as u64)
    })
    .await;
    controller.settle().await;
}

/// Waits until the controller is idle (its trailing status writes landed),
/// then stops it.
async fn stop(controller: &mut Controller) {
    controller.settle().await;
    controller.process.terminate(Duration::from_secs(10));
}

#[tokio::test]
async fn a_restart_reads_nothing_it_knows_and_corrects_what_changed_meanwhile() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    const NS: &str = "app";
    const COUNT: usize = 24;
    fixture.namespace(NS).await;
    // A user of its own, so the audit log tells its requests from the
    // test's and the controller manager's.
    let user = fixture
        .cp
        .mint_user(CONTROLLER_USER, &["system:masters"])
        .unwrap();
    let mut controller = fixture.controller_as(
        "kseal-controller",
        &user.kubeconfig,
        &["--key-renew-period", "0"],
    );
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    apply_objects(&fixture, NS, COUNT, &recipients).await;
    for i in 0..COUNT {
        let (record, version) = record_and_version(&fixture, NS, i).await;
        let record = record.expect("a record in the status");
        assert_eq!(Some(record.resource_version.clone()), version, "{i}");
        assert!(!serde_json::to_string(&record).unwrap().contains(CANARY));
    }

    // (a) Everything in sync: the restart reads and writes no Secret, no
    // SealedSecret (beyond the watches' lists) and no status.
    stop(&mut controller).await;
    let before = controller_requests(&fixture);
    restart_and_resync(&mut controller, COUNT).await;
    let after = controller_requests(&fixture);
    let secrets = between(&before, &after, "secrets", "");
    let sealed = between(&before, &after, "sealedsecrets", "");
    let status = between(&before, &after, "sealedsecrets", "status");
    for verb in ["GET", "POST", "PUT", "PATCH", "DELETE", "APPLY"] {
        assert_eq!(secrets.get(verb), None, "{verb} secrets: {secrets:?}");
        assert_eq!(sealed.get(verb), None, "{verb} sealedsecrets: {sealed:?}");
        assert_eq!(status.get(verb), None, "{verb} status: {status:?}");
    }
    // A list, or a watch that sends the initial list (streaming lists,
    // which the API server here has: see `listing`).
    let lists = |verbs: &std::collections::BTreeMap<String, u64>| {
        verbs.contains_key("LIST") || verbs.contains_key("WATCH")
    };
    assert!(
        lists(&secrets) && lists(&sealed),
        "the restart lists both: {secrets:?} {sealed:?}"
    );
    for i in 0..COUNT {
        assert!(correct(&fixture, NS, i).await, "{i}");
    }

    // (b) Changed while the controller was down: each kind is corrected
    // after the restart, and only those cost reads.
    stop(&mut controller).await;
    let secrets_api = fixture.secrets(NS);
    type Drift = serde_json::Value;
    let drifts: [(usize, &str, Option<Drift>); 6] = [
        (
            0,
            "data edited",
            Some(serde_json::json!({"stringData": {"password": "edited-by-hand"}})),
        ),
        (
            1,
            "key added",
            Some(serde_json::json!({"stringData": {"extra": "x"}})),
        ),
        (
            2,
            "template label changed",
            Some(serde_json::json!({"metadata": {"labels": {"team": "other"}}})),
        ),
        (
            3,
            "annotation removed",
            Some(serde_json::json!({"metadata": {"annotations": {"owner": null}}})),
        ),
        (
            4,
            "kseal label removed",
            Some(serde_json::json!({"metadata": {"labels": {"kseal.dev/owned": null}}})),
        ),
        (5, "deleted", None),
    ];
    for (i, what, patch) in &drifts {
        match patch {
            Some(patch) => {
                secrets_api
                    .patch(&name(*i), &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
            }
            None => {
                secrets_api
                    .delete(&name(*i), &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
        assert!(!correct(&fixture, NS, *i).await, "{what} did not drift");
    }
    let before = controller_requests(&fixture);
    restart_and_resync(&mut controller, COUNT).await;
    for (i, what, _) in &drifts {
        eventually(what, || correct(&fixture, NS, *i)).await;
        let (record, version) = record_and_version(&fixture, NS, *i).await;
        assert_eq!(
            record.map(|record| record.resource_version),
            version,
            "{what}: the record names the corrected Secret"
        );
    }
    // The status write of each correction starts one more reconcile, whose
    // watch events may come in either order: let them run before counting.
    controller.settle().await;
    let after = controller_requests(&fixture);
    let secrets = between(&before, &after, "secrets", "");
    // The five that exist are read once each (the removed label hides one
    // from the watch: its create answers 409 and a read follows); none of
    // the 18 in sync is, and no correction is read again after it was
    // written, whichever of its watch events comes first.
    let reads = secrets.get("GET").copied().unwrap_or_default();
    assert_eq!(reads, 5, "Secret reads {secrets:?}");
    for i in drifts.len()..COUNT {
        assert!(correct(&fixture, NS, i).await, "{i}");
    }

    // (c) Records not signed for this object and this Secret version are
    // not trusted: each Secret was edited by hand, and its status given a
    // record that names its new resourceVersion.
    stop(&mut controller).await;
    let sealed_api = fixture.sealed_secrets(NS);
    let (Some(other_record), _) = record_and_version(&fixture, NS, 23).await else {
        panic!("no record on s23")
    };
    type Forge = fn(&SecretRecord, &SecretRecord, &str) -> SecretRecord;
    let forgeries: [(usize, &str, Forge); 5] = [
        (10, "copied from another object", |_, other, _| {
            other.clone()
        }),
        (
            11,
            "another object's, with this resourceVersion",
            |_, other, version| SecretRecord {
                resource_version: version.into(),
                ..other.clone()
            },
        ),
        (
            12,
            "its own, with the new resourceVersion",
            |own, _, version| SecretRecord {
                resource_version: version.into(),
                ..own.clone()
            },
        ),
        (
            13,
            "its own fields with another object's MAC",
            |own, other, version| SecretRecord {
                resource_version: version.into(),
                mac: other.mac.clone(),
                ..own.clone()
            },
        ),
        (14, "signed by an unknown key", |own, _, version| {
            SecretRecord {
                resource_version: version.into(),
                key_id: "0123456789abcdef".into(),
                ..own.clone()
            }
        }),
    ];
    for (i, what, forge) in &forgeries {
        let (Some(own), _) = record_and_version(&fixture, NS, *i).await else {
            panic!("no record on {i}")
        };
        let patch = serde_json::json!({"stringData": {"password": "edited-by-hand"}});
        let edited = secrets_api
            .patch(&name(*i), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let version = edited.metadata.resource_version.unwrap();
        let forged = forge(&own, &other_record, &version);
        let patch = serde_json::json!({"status": {"secretRecord": forged}});
        sealed_api
            .patch_status(&name(*i), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let (record, _) = record_and_version(&fixture, NS, *i).await;
        assert_eq!(record.as_ref(), Some(&forged), "{what}: forged in place");
    }
    restart_and_resync(&mut controller, COUNT).await;
    for (i, what, _) in &forgeries {
        eventually(what, || correct(&fixture, NS, *i)).await;
        let (record, version) = record_and_version(&fixture, NS, *i).await;
        assert_eq!(
            record.map(|record| record.resource_version),
            version,
            "{what}: a valid record again"
        );
    }

    // Through all of it, no value reached the log (debug level).
    assert!(!controller.log().contains(CANARY), "a value in the log");
}
