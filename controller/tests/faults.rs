//! Fault injection against the real control plane.
//!
//! * While 1,000 SealedSecrets sync, the controller is SIGKILLed at random
//!   moments (three times), the API server is restarted and etcd is killed
//!   and restarted. The end state is exactly 1,000 correct Secrets, every
//!   status Ready=True for the current generation, and the controller never
//!   exits on its own.
//! * Every key Secret deleted (after a rotation, whose served request must
//!   not be served again): the controller says so (UnknownKey statuses and
//!   events naming the key id, an error log line, a metric), keeps the
//!   Secrets it made, and does not generate a new key that would strand the
//!   SealedSecrets silently, not even after a restart. Restoring the key
//!   Secrets heals everything. With no SealedSecret at all, the keys the
//!   cluster held are remembered, so they are not replaced either.
//!
//! `KSEAL_FAULT_SEED` replays a run's random moments (each run prints its
//! seed); `KSEAL_FAULT_COUNT` changes the number of objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kseal_shared::{binding::Scope, sealed_secret::SealedSecret, x25519::Recipient};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

const NS: &str = "load";

/// A tiny deterministic generator (xorshift64*), so a failing run can be
/// replayed with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

fn value(i: usize, k: usize) -> String {
    format!("fault-value-{i}-{k}")
}

/// Applies with retries: the API server may be down for a moment.
async fn apply_retrying(client: &Client, sealed: &SealedSecret) {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), NS);
    let name = sealed.name_any();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match api
            .patch(
                &name,
                &PatchParams::apply("kseal-fault-test").force(),
                &Patch::Apply(sealed),
            )
            .await
        {
            Ok(_) => return,
            Err(err) => {
                assert!(Instant::now() < deadline, "cannot apply {name}: {err}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// How many SealedSecrets are Ready=True for their current generation, and
/// how many exist.
async fn ready_count(client: &Client) -> Option<(usize, usize)> {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), NS);
    let list = api.list(&ListParams::default()).await.ok()?;
    let ready = list
        .items
        .iter()
        .filter(|s| {
            s.status.as_ref().is_some_and(|st| {
                st.observed_generation == s.metadata.generation
                    && st
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count();
    Some((ready, list.items.len()))
}

fn build(count: usize, recipients: &[Recipient]) -> Vec<SealedSecret> {
    (0..count)
        .map(|i| {
            let values: Vec<(String, String)> =
                (0..3).map(|k| (format!("key{k}"), value(i, k))).collect();
            let pairs: Vec<(&str, &str)> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            seal(
                &plain(NS, &format!("s{i}"), &pairs),
                Scope::Strict,
                recipients,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_large_sync_survives_kills_and_restarts() {
    let count: usize = std::env::var("KSEAL_FAULT_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("KSEAL_FAULT_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("fault test: {count} objects, KSEAL_FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    let Some(mut fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace(NS).await;
    let args = [
        "--key-renew-period",
        "0",
        "--kube-qps",
        "200",
        "--kube-burst",
        "400",
    ];
    let mut controller = fixture.controller("kseal-controller", &args);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let objects = build(count, &recipients);
    let client = fixture.client.clone();
    let started = Instant::now();

    let apply = async {
        futures::stream::iter(objects.iter())
            .for_each_concurrent(16, |object| apply_retrying(&client, object))
            .await;
        eprintln!("fault test: all applied after {:?}", started.elapsed());
    };
    // The faults, at random moments while the objects are applied and
    // reconciled. Before each, the controller must still be running: it
    // never exits on its own.
    let chaos = async {
        let mut log = Vec::new();
        let alive = |controller: &mut Controller, when: &str| {
            assert!(
                controller.process.is_running(),
                "the controller exited on its own {when}"
            );
        };
        for round in 0..3 {
            tokio::time::sleep(rng.millis(1_000, 6_000)).await;
            alive(&mut controller, "before a kill");
            let progress = ready_count(&client).await;
            controller.process.kill();
            log.push(format!(
                "{:?}: SIGKILL controller ({progress:?} ready)",
                started.elapsed()
            ));
            tokio::time::sleep(rng.millis(200, 2_000)).await;
            controller.process.start().unwrap();
            match round {
                0 => {
                    tokio::time::sleep(rng.millis(1_000, 5_000)).await;
                    alive(&mut controller, "before the API server restart");
                    log.push(format!("{:?}: restart API server", started.elapsed()));
                    fixture.cp.stop_apiserver();
                    tokio::time::sleep(rng.millis(500, 3_000)).await;
                    fixture.cp.start_apiserver().await.unwrap();
                }
                1 => {
                    tokio::time::sleep(rng.millis(1_000, 5_000)).await;
                    alive(&mut controller, "before the etcd restart");
                    log.push(format!("{:?}: SIGKILL and restart etcd", started.elapsed()));
                    fixture.cp.kill_etcd();
                    tokio::time::sleep(rng.millis(500, 3_000)).await;
                    fixture.cp.start_etcd().await.unwrap();
                }
                _ => {}
            }
        }
        log
    };
    let ((), log) = tokio::join!(apply, chaos);
    eprintln!("fault test: faults\n  {}", log.join("\n  "));

    // Everything converges, and the controller stays up meanwhile (a debug
    // build on a loaded machine takes minutes after three faults).
    let deadline = Instant::now() + Duration::from_secs(480);
    loop {
        assert!(
            controller.process.is_running(),
            "the controller exited on its own while converging"
        );
        let progress = ready_count(&client).await;
        if progress == Some((count, count)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not converged after the faults: {progress:?} (ready, total)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("fault test: all Ready after {:?}", started.elapsed());

    // Exactly the expected Secrets, each with exactly the expected data.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let list = secrets.list(&ListParams::default()).await.unwrap();
    let mut by_name: BTreeMap<String, Secret> = list
        .items
        .into_iter()
        .filter(|s| s.labels().contains_key("kseal.dev/owned"))
        .map(|s| (s.name_any(), s))
        .collect();
    assert_eq!(by_name.len(), count, "wrong number of Secrets");
    for i in 0..count {
        let secret = by_name
            .remove(&format!("s{i}"))
            .unwrap_or_else(|| panic!("Secret s{i} missing"));
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data.len(), 3, "s{i}: wrong keys");
        for k in 0..3 {
            assert_eq!(
                data[&format!("key{k}")].0,
                value(i, k).into_bytes(),
                "s{i}/key{k}: wrong value"
            );
        }
        assert_eq!(secret.owner_references().len(), 1, "s{i}: owners");
    }
    // One key, never regenerated by the restarts.
    let keys = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1, "the key set changed");
    assert_eq!(fixture.recipients().await, recipients);
    let log = controller.log();
    assert!(!log.contains("panicked"), "the controller panicked");
    assert!(
        !log.contains("fault-value-"),
        "plaintext in the controller log"
    );
    assert!(controller.process.is_running());
    eprintln!("fault test: done in {:?}", started.elapsed());
}

/// `kseal keys rotate` as an admin; waits for the new key.
async fn rotate(fixture: &Fixture) {
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let dir = fixture.dir.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        kseal(&dir, &["keys", "rotate", "--kubeconfig", &kubeconfig], None)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "kseal keys rotate: {err}");
}

async fn key_secrets(fixture: &Fixture) -> Vec<Secret> {
    fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_deleted_key_secret_is_reported_not_silently_replaced() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let args = ["--key-renew-period", "0"];
    let mut controller = fixture.controller("kseal-controller", &args);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let key_id = recipients[0].key_id().to_string();
    for name in ["a", "b", "c"] {
        fixture
            .apply(&seal(
                &plain("app", name, &[("k", &format!("key-loss-{name}"))]),
                Scope::Strict,
                &recipients,
            ))
            .await;
    }
    for name in ["a", "b", "c"] {
        assert_eq!(fixture.wait_ready("app", name, "True").await, "Unsealed");
    }
    // A rotation, as operators run one: its request stays in the
    // key-operations ConfigMap, served.
    rotate(&fixture).await;
    assert_eq!(key_secrets(&fixture).await.len(), 2);

    // The accident: every key Secret is deleted.
    let saved = key_secrets(&fixture).await;
    for key in &saved {
        fixture
            .secrets(NAMESPACE)
            .delete(&key.name_any(), &DeleteParams::default())
            .await
            .unwrap();
    }

    // Reported: every SealedSecret turns UnknownKey naming the key id, with
    // a Warning event; the metric counts them; the Secrets stay.
    for name in ["a", "b", "c"] {
        assert_eq!(fixture.wait_ready("app", name, "False").await, "UnknownKey");
        let sealed = fixture.sealed_secrets("app").get(name).await.unwrap();
        let condition = &sealed.status.unwrap().conditions[0];
        assert!(
            condition.message.contains(&key_id),
            "the condition does not name the missing key: {}",
            condition.message
        );
        let secret = fixture.secrets("app").get(name).await.unwrap();
        assert_eq!(data_of(&secret, "k"), format!("key-loss-{name}"));
    }
    let events: Api<Event> = Api::namespaced(fixture.client.clone(), "app");
    eventually("UnknownKey events naming the key", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("UnknownKey")
                    && e.message.as_deref().unwrap_or_default().contains(&key_id)
            })
    })
    .await;
    eventually("kseal_sealed_secrets_without_key 3", || async {
        controller
            .get("/metrics")
            .await
            .1
            .contains("kseal_sealed_secrets_without_key 3")
    })
    .await;

    // No new key, neither now nor after a restart (which runs the startup
    // key check again); the restart logs an error naming the missing key.
    // The controller has taken in the loss (the metric above) and then gone
    // quiet: had it made a key, it would be there by now.
    controller.settle().await;
    assert!(
        key_secrets(&fixture).await.is_empty(),
        "a key was generated"
    );
    let log_before = controller.log().len();
    controller.process.kill();
    controller.process.start().unwrap();
    eventually("the restarted controller reports the lost key", || async {
        let log = controller.log();
        let log = log.get(log_before..).unwrap_or(&log);
        log.contains("not generating a new key") && log.contains(&key_id)
    })
    .await;
    // The restarted process has reconciled every object against the keys
    // it found (its own metric counts them again) and gone quiet.
    eventually(
        "the restarted controller's kseal_sealed_secrets_without_key 3",
        || async {
            controller
                .get("/metrics")
                .await
                .1
                .contains("kseal_sealed_secrets_without_key 3")
        },
    )
    .await;
    controller.settle().await;
    assert!(
        key_secrets(&fixture).await.is_empty(),
        "a key was generated after the restart"
    );
    assert!(controller.process.is_running());
    for name in ["a", "b", "c"] {
        assert_eq!(fixture.wait_ready("app", name, "False").await, "UnknownKey");
    }

    // Restoring the key Secrets from the backup heals everything.
    for saved in &saved {
        let restored = Secret {
            metadata: kube::core::ObjectMeta {
                name: saved.metadata.name.clone(),
                namespace: saved.metadata.namespace.clone(),
                labels: saved.metadata.labels.clone(),
                annotations: saved.metadata.annotations.clone(),
                ..Default::default()
            },
            data: saved.data.clone(),
            type_: saved.type_.clone(),
            ..Default::default()
        };
        fixture
            .secrets(NAMESPACE)
            .create(&PostParams::default(), &restored)
            .await
            .unwrap();
    }
    for name in ["a", "b", "c"] {
        assert_eq!(fixture.wait_ready("app", name, "True").await, "Unsealed");
    }
    eventually("kseal_sealed_secrets_without_key 0", || async {
        controller
            .get("/metrics")
            .await
            .1
            .contains("kseal_sealed_secrets_without_key 0")
    })
    .await;
    assert_ne!(
        fixture.recipients().await,
        recipients,
        "the rotated key is active again"
    );

    // Starting over on purpose still works: with the keys deleted again, a
    // new rotation request (`kseal keys rotate`) makes a new key.
    let old_ids: Vec<String> = saved
        .iter()
        .map(|key| key.labels()["kseal.dev/key-id"].clone())
        .collect();
    for key in &saved {
        fixture
            .secrets(NAMESPACE)
            .delete(&key.name_any(), &DeleteParams::default())
            .await
            .unwrap();
    }
    rotate(&fixture).await;
    let now = key_secrets(&fixture).await;
    assert_eq!(now.len(), 1, "one new key");
    assert!(!old_ids.contains(&now[0].labels()["kseal.dev/key-id"]));
    let log = controller.log();
    assert!(
        !log.contains("key-loss-"),
        "plaintext in the controller log"
    );
    assert!(!log.contains("AGE-SECRET-KEY"), "a private key in the log");
}

/// With no SealedSecret to show that keys were in use, the cluster still
/// remembers the keys it held (the public-key ConfigMap records them): after
/// a rotation, deleting every key Secret makes no new key, while running,
/// after a restart, or when the served rotation request is seen again.
#[tokio::test]
async fn keys_once_held_are_not_replaced_even_with_no_sealed_secret() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let args = ["--key-renew-period", "0"];
    let mut controller = fixture.controller("kseal-controller", &args);
    controller.wait_healthy().await;
    let first = fixture.recipients().await;
    rotate(&fixture).await;
    for key in key_secrets(&fixture).await {
        fixture
            .secrets(NAMESPACE)
            .delete(&key.name_any(), &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("the running controller reports the loss", || async {
        controller
            .log()
            .contains("every sealing key Secret is gone")
    })
    .await;
    // A re-list of the key-operations ConfigMap (as after a watch timeout)
    // shows the served request again; touching it sends it now.
    let config_maps: Api<ConfigMap> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    let touch = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
    config_maps
        .patch(
            "kseal-key-operations",
            &PatchParams::default(),
            &Patch::Merge(&touch),
        )
        .await
        .unwrap();
    controller.settle().await;
    assert!(
        key_secrets(&fixture).await.is_empty(),
        "a key was generated"
    );

    let log_before = controller.log().len();
    controller.process.kill();
    controller.process.start().unwrap();
    eventually(
        "the restarted controller refuses to replace the keys",
        || async {
            let log = controller.log();
            let log = log.get(log_before..).unwrap_or(&log);
            log.contains("not generating a new key") && log.contains(&first[0].key_id().to_string())
        },
    )
    .await;
    controller.settle().await;
    assert!(
        key_secrets(&fixture).await.is_empty(),
        "a key was generated after the restart"
    );
    // Nothing is sealed to a key the cluster does not hold.
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let (code, _, err) = kseal(
        &fixture.dir,
        &["fetch-keys", "--kubeconfig", &kubeconfig],
        None,
    );
    assert_ne!(code, 0, "fetch-keys with no key");
    assert!(err.contains("no active sealing key"), "{err}");
}
