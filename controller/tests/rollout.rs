//! `spec.rollout` against a real API server: when the controller changes a
//! Secret's data, it restarts (pod-template annotations, as `kubectl
//! rollout restart` does) exactly the Deployments, StatefulSets and
//! DaemonSets that would keep an old value, once per batch, for every
//! consumer form (env key, envFrom, volume with and without items,
//! projected volume, subPath); a re-apply that changes no value restarts
//! nothing; with restarts off a Warning says so. No value appears in an
//! annotation, an Event or the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use kseal_shared::binding::Scope;
use kseal_shared::contract::{RESTARTED_AT_ANNOTATION, RESTARTED_FOR_ANNOTATION};
use kseal_shared::sealed_secret::SealedSecret;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const APP: &str = "app";
/// The batch window the controller runs with here.
const WINDOW: &str = "1s";
/// Long enough after the last restart for a wrong one to have happened.
const SETTLE: Duration = Duration::from_secs(4);

/// A pod template reading Secrets as `containers` say, with `volumes`.
fn template(containers: Value, volumes: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": containers, "volumes": volumes}
    })
}

fn env_key(secret: &str, key: &str) -> Value {
    json!([{"name": "c", "image": "example.invalid/app", "env": [
        {"name": "VALUE", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
    ]}])
}

fn mounts(mounts: Value) -> Value {
    json!([{"name": "c", "image": "example.invalid/app", "volumeMounts": mounts}])
}

/// The workloads of the test: name → (kind, pod template).
fn workloads() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        // Env reads of `password`.
        (
            "Deployment",
            "env-password",
            template(env_key("db", "password"), json!([])),
        ),
        (
            "StatefulSet",
            "env-from",
            template(
                json!([{"name": "c", "image": "example.invalid/app",
                    "envFrom": [{"secretRef": {"name": "db"}, "prefix": "DB_"}]}]),
                json!([]),
            ),
        ),
        (
            "DaemonSet",
            "subpath-password",
            template(
                mounts(json!([{"name": "v", "mountPath": "/pw", "subPath": "password"}])),
                json!([{"name": "v", "secret": {"secretName": "db"}}]),
            ),
        ),
        // File reads of `password`: updated in place by the kubelet.
        (
            "Deployment",
            "volume-all",
            template(
                mounts(json!([{"name": "v", "mountPath": "/db"}])),
                json!([{"name": "v", "secret": {"secretName": "db"}}]),
            ),
        ),
        (
            "StatefulSet",
            "projected-password",
            template(
                mounts(json!([{"name": "v", "mountPath": "/db"}])),
                json!([{"name": "v", "projected": {"sources": [
                    {"secret": {"name": "db", "items": [{"key": "password", "path": "pw"}]}}
                ]}}]),
            ),
        ),
        // Only `username`, through each form.
        (
            "Deployment",
            "env-username",
            template(env_key("db", "username"), json!([])),
        ),
        (
            "DaemonSet",
            "items-username",
            template(
                mounts(json!([{"name": "v", "mountPath": "/u"}])),
                json!([{"name": "v", "secret": {"secretName": "db",
                    "items": [{"key": "username", "path": "u"}]}}]),
            ),
        ),
        (
            "Deployment",
            "subpath-username",
            template(
                mounts(json!([{"name": "v", "mountPath": "/u", "subPath": "username"}])),
                json!([{"name": "v", "secret": {"secretName": "db"}}]),
            ),
        ),
        // Two Secrets at once.
        (
            "Deployment",
            "both",
            template(
                json!([{"name": "c", "image": "example.invalid/app", "env": [
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
                ]}]),
                json!([]),
            ),
        ),
        // Another Secret only, mounted as files.
        (
            "Deployment",
            "volume-token",
            template(
                mounts(json!([{"name": "v", "mountPath": "/t"}])),
                json!([{"name": "v", "secret": {"secretName": "api"}}]),
            ),
        ),
    ]
}

async fn create_workloads(client: &Client) {
    for (kind, name, template) in workloads() {
        let selector = json!({"matchLabels": {"app": "x"}});
        let spec = match kind {
            "StatefulSet" => {
                json!({"selector": selector, "serviceName": name, "template": template})
            }
            _ => json!({"selector": selector, "template": template}),
        };
        let object = json!({"metadata": {"name": name, "namespace": APP}, "spec": spec});
        let params = PostParams::default();
        match kind {
            "Deployment" => {
                Api::<Deployment>::namespaced(client.clone(), APP)
                    .create(&params, &serde_json::from_value(object).unwrap())
                    .await
                    .unwrap();
            }
            "StatefulSet" => {
                Api::<StatefulSet>::namespaced(client.clone(), APP)
                    .create(&params, &serde_json::from_value(object).unwrap())
                    .await
                    .unwrap();
            }
            _ => {
                Api::<DaemonSet>::namespaced(client.clone(), APP)
                    .create(&params, &serde_json::from_value(object).unwrap())
                    .await
                    .unwrap();
            }
        }
    }
}

/// Per workload: (generation, kseal's two pod-template annotations).
type Seen = BTreeMap<String, (i64, Option<String>, Option<String>)>;

async fn seen(client: &Client) -> Seen {
    fn row<K: ResourceExt>(
        object: &K,
        template: Option<&BTreeMap<String, String>>,
    ) -> (String, (i64, Option<String>, Option<String>)) {
        let annotation = |key: &str| template.and_then(|a| a.get(key)).cloned();
        (
            object.name_any(),
            (
                object.meta().generation.unwrap_or_default(),
                annotation(RESTARTED_AT_ANNOTATION),
                annotation(RESTARTED_FOR_ANNOTATION),
            ),
        )
    }
    let params = ListParams::default();
    let mut all = Seen::new();
    for d in Api::<Deployment>::namespaced(client.clone(), APP)
        .list(&params)
        .await
        .unwrap()
    {
        all.extend([row(
            &d,
            d.spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref()),
        )]);
    }
    for s in Api::<StatefulSet>::namespaced(client.clone(), APP)
        .list(&params)
        .await
        .unwrap()
    {
        all.extend([row(
            &s,
            s.spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref()),
        )]);
    }
    for d in Api::<DaemonSet>::namespaced(client.clone(), APP)
        .list(&params)
        .await
        .unwrap()
    {
        all.extend([row(
            &d,
            d.spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref()),
        )]);
    }
    all
}

/// The workloads whose generation grew since `before`.
fn restarted(before: &Seen, now: &Seen) -> BTreeSet<String> {
    now.iter()
        .filter(|(name, (generation, ..))| before.get(*name).is_some_and(|b| b.0 < *generation))
        .map(|(name, _)| name.clone())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Waits until exactly `want` have restarted since `before` (and stay so
/// for [`SETTLE`]); returns the state then.
async fn wait_restarts(client: &Client, before: &Seen, want: &BTreeSet<String>) -> Seen {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = seen(client).await;
        let got = restarted(before, &now);
        if &got == want {
            tokio::time::sleep(SETTLE).await;
            let settled = seen(client).await;
            assert_eq!(
                &restarted(before, &settled),
                want,
                "restarts after settling"
            );
            return settled;
        }
        assert!(
            got.is_subset(want),
            "restarted {:?}, expected only {want:?}",
            got.difference(want).collect::<Vec<_>>()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: restarted {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn with_rollout(mut sealed: SealedSecret, rollout: &str) -> SealedSecret {
    sealed.spec.rollout = Some(rollout.to_owned());
    sealed
}

async fn events(client: &Client) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), APP)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

fn notes(events: &[Event], object: &str, reason: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message.clone())
        .collect()
}

#[tokio::test]
async fn restarts_reach_exactly_the_consumers_of_changed_keys() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace(APP).await;
    let controller = fixture.controller(
        "rollout",
        &[
            "--rollout-restarts",
            "--rollout-batch-window",
            WINDOW,
            "--rollout-min-interval",
            "1s",
        ],
    );
    let recipients = fixture.recipients().await;
    create_workloads(&fixture.client).await;
    let client = &fixture.client;
    let db = |password: &str, username: &str, rollout: &str| {
        with_rollout(
            seal(
                &plain(APP, "db", &[("password", password), ("username", username)]),
                Scope::Strict,
                &recipients,
            ),
            rollout,
        )
    };
    let api = |token: &str| {
        with_rollout(
            seal(
                &plain(APP, "api", &[("token", token)]),
                Scope::Strict,
                &recipients,
            ),
            "AllConsumers",
        )
    };

    // Created: no pod can hold an older value; nothing restarts.
    let start = seen(client).await;
    fixture
        .apply(&db("pw-one-7f3a", "user-one-c2d1", "EnvConsumers"))
        .await;
    fixture.apply(&api("token-one-91be")).await;
    fixture.wait_ready(APP, "db", "True").await;
    fixture.wait_ready(APP, "api", "True").await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(restarted(&start, &seen(client).await), BTreeSet::new());

    // Both change in one apply: env and subPath readers of `password`
    // restart (EnvConsumers), every reader of `token` (AllConsumers);
    // `both` reads the two and restarts once.
    let before = seen(client).await;
    fixture
        .apply(&db("pw-two-5e0c", "user-one-c2d1", "EnvConsumers"))
        .await;
    fixture.apply(&api("token-two-44d7")).await;
    let after = wait_restarts(
        client,
        &before,
        &set(&[
            "env-password",
            "env-from",
            "subpath-password",
            "both",
            "volume-token",
        ]),
    )
    .await;
    assert_eq!(
        after["both"].0,
        before["both"].0 + 1,
        "one restart for two Secrets"
    );
    assert_eq!(after["both"].2.as_deref(), Some("api: token; db: password"));
    assert_eq!(after["env-from"].2.as_deref(), Some("db: password"));
    let at = after["both"].1.clone().unwrap();
    assert!(jiff::Timestamp::from_str(&at).is_ok(), "{at}");

    // A re-apply that changes no value (new ciphertexts, same values)
    // restarts nothing.
    let before = after;
    fixture
        .apply(&db("pw-two-5e0c", "user-one-c2d1", "EnvConsumers"))
        .await;
    fixture.apply(&api("token-two-44d7")).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(restarted(&before, &seen(client).await), BTreeSet::new());

    // AllConsumers: the file readers of `password` too, never those of
    // `username` alone.
    let before = seen(client).await;
    fixture
        .apply(&db("pw-three-0b9e", "user-one-c2d1", "AllConsumers"))
        .await;
    wait_restarts(
        client,
        &before,
        &set(&[
            "env-password",
            "env-from",
            "subpath-password",
            "both",
            "volume-all",
            "projected-password",
        ]),
    )
    .await;

    // `username` alone: its readers in every form, nobody else.
    let before = seen(client).await;
    fixture
        .apply(&db("pw-three-0b9e", "user-two-77aa", "EnvConsumers"))
        .await;
    wait_restarts(
        client,
        &before,
        &set(&["env-from", "env-username", "subpath-username"]),
    )
    .await;

    // Events on the workload and on the SealedSecret, metrics, and no
    // value anywhere.
    let events = events(client).await;
    let on_workload = notes(&events, "both", "Restarted");
    assert!(
        on_workload.iter().any(|n| n
            .contains("SealedSecret db changed password (env PW in container c)")
            && n.contains("SealedSecret api changed token (env TOKEN in container c)")),
        "{on_workload:?}"
    );
    let on_sealed = notes(&events, "db", "Restarted");
    assert!(
        on_sealed.iter().any(|n| n.contains(
            "restarted Deployment env-password, which read password (env VALUE in container c)"
        )),
        "{on_sealed:?}"
    );
    assert!(
        on_sealed
            .iter()
            .any(|n| n.contains("restarted StatefulSet env-from")),
        "{on_sealed:?}"
    );
    let (_, metrics) = controller.get("/metrics").await;
    let count = |kind: &str| -> u64 {
        let prefix = format!("kseal_workload_restarts_total{{kind=\"{kind}\",result=\"ok\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in metrics"))
    };
    // Per phase above: Deployments 3 + 3 + 2, StatefulSets 1 + 2 + 1,
    // DaemonSets 1 + 1 + 0.
    assert_eq!(
        (
            count("Deployment"),
            count("StatefulSet"),
            count("DaemonSet")
        ),
        (8, 4, 2)
    );
    let everything = format!(
        "{}\n{:?}\n{:?}",
        controller.log(),
        events.iter().map(|e| &e.message).collect::<Vec<_>>(),
        seen(client).await
    );
    for value in [
        "pw-one-7f3a",
        "pw-two-5e0c",
        "pw-three-0b9e",
        "user-one-c2d1",
        "user-two-77aa",
        "token-one-91be",
        "token-two-44d7",
    ] {
        assert!(!everything.contains(value), "{value} appears");
    }
}

/// Without --rollout-restarts (the chart's default) nothing is restarted,
/// and the SealedSecret says so.
#[tokio::test]
async fn restarts_off_restart_nothing_and_say_so() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace(APP).await;
    let _controller = fixture.controller("no-rollout", &[]);
    let recipients = fixture.recipients().await;
    create_workloads(&fixture.client).await;
    let client = &fixture.client;
    let db = |password: &str| {
        with_rollout(
            seal(
                &plain(APP, "db", &[("password", password), ("username", "u-5d1c")]),
                Scope::Strict,
                &recipients,
            ),
            "AllConsumers",
        )
    };
    // The CRD refuses any other spec.rollout.
    let bogus = with_rollout(db("pw-off-zero-91aa"), "Everything");
    let refused = fixture
        .sealed_secrets(APP)
        .create(&PostParams::default(), &bogus)
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422),
        "{refused:?}"
    );
    fixture.apply(&db("pw-off-one-3c8a")).await;
    fixture.wait_ready(APP, "db", "True").await;
    let before = seen(client).await;
    fixture.apply(&db("pw-off-two-e61f")).await;
    let note = poll_note(client, "db", "RolloutDisabled").await;
    assert!(
        note.contains("spec.rollout is AllConsumers, but this controller restarts no workloads")
            && note.contains("restart the consumers of password yourself"),
        "{note}"
    );
    assert!(!note.contains("pw-off"), "{note}");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(restarted(&before, &seen(client).await), BTreeSet::new());
}

async fn poll_note(client: &Client, object: &str, reason: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(note) = notes(&events(client).await, object, reason)
            .into_iter()
            .next()
        {
            return note;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {reason} Event on {object}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An immutable Secret is replaced, not updated, and the kubelet does not
/// follow the new one: file readers keep the old value and are restarted
/// even under EnvConsumers. A paused Deployment is annotated, and the
/// Events say its pods stay. Two rounds in one namespace are at least
/// --rollout-min-interval apart.
#[tokio::test]
async fn immutable_secrets_paused_workloads_and_spacing() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace(APP).await;
    let controller = fixture.controller(
        "rollout-spacing",
        &[
            "--rollout-restarts",
            "--rollout-batch-window",
            WINDOW,
            "--rollout-min-interval",
            "8s",
        ],
    );
    let recipients = fixture.recipients().await;
    let client = &fixture.client;
    create_workloads(client).await;
    let paused: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "paused-password", "namespace": APP},
        "spec": {
            "paused": true,
            "selector": {"matchLabels": {"app": "x"}},
            "template": template(env_key("db", "password"), json!([]))
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), APP)
        .create(&PostParams::default(), &paused)
        .await
        .unwrap();
    let db = |password: &str| {
        let mut sealed = with_rollout(
            seal(
                &plain(APP, "db", &[("password", password), ("username", "u-0d3e")]),
                Scope::Strict,
                &recipients,
            ),
            "EnvConsumers",
        );
        sealed.spec.template = Some(kseal_shared::sealed_secret::SecretTemplate {
            immutable: Some(true),
            ..Default::default()
        });
        sealed
    };
    fixture.apply(&db("pw-imm-one-19c4")).await;
    fixture.wait_ready(APP, "db", "True").await;

    let before = seen(client).await;
    fixture.apply(&db("pw-imm-two-8a2b")).await;
    let first = wait_restarts(
        client,
        &before,
        &set(&[
            "env-password",
            "env-from",
            "subpath-password",
            "both",
            "volume-all",
            "projected-password",
            "paused-password",
        ]),
    )
    .await;
    let note = poll_note(client, "paused-password", "RestartHeldBack").await;
    assert!(
        note.contains("but it is paused: its pods are not replaced until that changes"),
        "{note}"
    );
    let (_, metrics) = controller.get("/metrics").await;
    assert!(
        metrics.contains("kseal_workload_restarts_total{kind=\"Deployment\",result=\"held\"} 1"),
        "{metrics}"
    );

    // At once again: the second round waits for the interval.
    fixture.apply(&db("pw-imm-three-5f70")).await;
    let second = wait_restarts(
        client,
        &first,
        &set(&[
            "env-password",
            "env-from",
            "subpath-password",
            "both",
            "volume-all",
            "projected-password",
            "paused-password",
        ]),
    )
    .await;
    let at = |seen: &Seen| {
        jiff::Timestamp::from_str(seen["env-password"].1.as_deref().unwrap()).unwrap()
    };
    let apart = at(&second).duration_since(at(&first));
    assert!(
        apart >= jiff::SignedDuration::from_secs(7),
        "rounds {apart:?} apart"
    );
    let log = controller.log();
    for value in ["pw-imm-one-19c4", "pw-imm-two-8a2b", "pw-imm-three-5f70"] {
        assert!(!log.contains(value), "{value} in the log");
    }
}
