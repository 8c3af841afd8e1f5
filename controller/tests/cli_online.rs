//! The CLI against a cluster: sealing with the published keys, fetching
//! them, and the controller's verify and rewrap endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kseal_shared::{sealed_secret::SealedSecret, x25519::Identity};

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: api
  namespace: app
stringData:
  token: online-canary
";

#[tokio::test]
async fn cli_uses_the_cluster_keys_and_controller() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    // No grace period after a rotation: RewrapDue is True at once (see
    // `rewrap_due_waits_for_the_grace_period` for the grace period).
    let controller = fixture.controller(
        "kseal-controller",
        &["--key-renew-period", "0", "--rewrap-grace-period", "0"],
    );
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();

    // fetch-keys prints the published recipients file.
    let (code, keys, err) = kseal(dir, &["fetch-keys", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0, "{err}");
    assert!(keys.contains(&recipients[0].to_string()), "{keys}");
    let (code, _, err) = kseal(
        dir,
        &[
            "fetch-keys",
            "--kubeconfig",
            &kubeconfig,
            "-o",
            "cluster.pub",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(dir.join("cluster.pub"))
            .unwrap()
            .contains(&recipients[0].to_string())
    );

    // seal with no -r and no .kseal.yaml: the cluster's key.
    let (code, sealed, err) = kseal(dir, &["seal", "--kubeconfig", &kubeconfig], Some(SECRET));
    assert_eq!(code, 0, "{err}");
    assert!(
        sealed.contains(&recipients[0].key_id().to_string()),
        "{sealed}"
    );
    let object: SealedSecret = serde_saphyr::from_str(&sealed).unwrap();
    fixture.apply(&object).await;
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
    // Unreachable cluster: a clear error naming every source of recipients.
    let (code, _, err) = kseal(dir, &["seal", "--kubeconfig", "/nonexistent"], Some(SECRET));
    assert_eq!(code, 1);
    assert!(
        err.contains("no recipients") && err.contains(".kseal.yaml"),
        "{err}"
    );

    // validate --online: the controller can decrypt it…
    std::fs::write(dir.join("api.yaml"), &sealed).unwrap();
    let url = controller.url("");
    let (code, _, err) = kseal(
        dir,
        &["validate", "--online", "--controller-url", &url, "api.yaml"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    // …but not a value moved to another name.
    std::fs::write(
        dir.join("moved.yaml"),
        sealed.replace("name: api", "name: moved"),
    )
    .unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "validate",
            "--online",
            "--controller-url",
            &url,
            "moved.yaml",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("the cluster cannot decrypt it"), "{err}");
    assert!(!err.contains("online-canary"));
    // …and the content its type requires, which only the controller can
    // open: a value that is not a JSON object under a template changed by
    // hand to kubernetes.io/dockerconfigjson. The answer names the rule,
    // not where in the value it breaks.
    let (code, pull, err) = kseal(
        dir,
        &[
            "seal",
            "--kubeconfig",
            &kubeconfig,
            "--name",
            "pull",
            "--namespace",
            "app",
            "--from-literal",
            ".dockerconfigjson={\"auths\": online-canary}",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let typed = pull.replace(
        "spec:\n",
        "spec:\n  template:\n    type: kubernetes.io/dockerconfigjson\n",
    );
    std::fs::write(dir.join("pull.yaml"), &typed).unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "validate",
            "--online",
            "--controller-url",
            &url,
            "pull.yaml",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("requires data[.dockerconfigjson] to be a JSON object, and it is not"),
        "{err}"
    );
    assert!(
        !err.contains("online-canary") && !err.contains("byte"),
        "{err}"
    );
    // Offline, validate sees only that the key is there.
    let (code, _, err) = kseal(dir, &["validate", "pull.yaml"], None);
    assert_eq!(code, 0, "{err}");

    // rewrap --online: a value sealed to the cluster key and an extra
    // recipient (a recovery key) is current: nothing is re-wrapped, the
    // file is left as it is.
    let extra = Identity::generate();
    let (code, two, err) = kseal(
        dir,
        &[
            "seal",
            "-r",
            &recipients[0].to_string(),
            "-r",
            &extra.recipient().to_string(),
        ],
        Some(SECRET),
    );
    assert_eq!(code, 0, "{err}");
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}   # untouched\n";
    std::fs::create_dir_all(dir.join("repo")).unwrap();
    std::fs::write(dir.join("repo/api.yaml"), format!("{other}---\n{two}")).unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            "--in-place",
            "repo",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 value(s) re-wrapped, 1 already current"),
        "{err}"
    );
    let rewritten = std::fs::read_to_string(dir.join("repo/api.yaml")).unwrap();
    assert_eq!(rewritten, format!("{other}---\n{two}"));
    // Running it again finds nothing to do.
    let (code, _, err) = kseal(
        dir,
        &[
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            "--in-place",
            "repo",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 value(s) re-wrapped, 1 already current"),
        "{err}"
    );

    // keys rotate: the controller makes a new active key; an online rewrap
    // moves the repository to it; the object keeps unsealing.
    let (code, rotated, err) = kseal(dir, &["keys", "rotate", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0, "{err}");
    let new_key_id = rotated.split_whitespace().next().unwrap().to_owned();
    assert_ne!(new_key_id, recipients[0].key_id().to_string());
    assert_eq!(
        fixture.recipients().await[0].key_id().to_string(),
        new_key_id
    );
    // The object in the cluster is still sealed to the old key: RewrapDue,
    // one Warning, the gauge; Ready stays True.
    assert_eq!(
        wait_condition(&fixture, "api", "RewrapDue", "True").await,
        "SealedToInactiveKey"
    );
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
    eventually("the stale-key gauge counts the value", || async {
        controller
            .get("/metrics")
            .await
            .1
            .contains("kseal_values_sealed_to_inactive_key 1")
    })
    .await;
    // Counted once the controller is idle: a second Warning would come from
    // a later reconcile.
    warnings(&fixture, "api", "SealedToInactiveKey").await;
    controller.settle().await;
    assert_eq!(warnings(&fixture, "api", "SealedToInactiveKey").await, 1);
    // rewrap --stale: only what names no active key; other.yaml's value is
    // sealed to the new key and must stay byte-identical.
    let current = {
        let (code, sealed, err) = kseal(
            dir,
            &["seal", "--kubeconfig", &kubeconfig],
            Some(&SECRET.replace("name: api", "name: current")),
        );
        assert_eq!(code, 0, "{err}");
        sealed
    };
    std::fs::write(dir.join("current.yaml"), &current).unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "rewrap",
            "--stale",
            "--online",
            "--kubeconfig",
            &kubeconfig,
            "--controller-url",
            &url,
            "--in-place",
            "api.yaml",
            "current.yaml",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 value(s) re-wrapped, 1 already current"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("current.yaml")).unwrap(),
        current
    );
    let rewrapped = std::fs::read_to_string(dir.join("api.yaml")).unwrap();
    assert!(
        rewrapped.contains(&format!("kseal:v2:{new_key_id}:")),
        "{rewrapped}"
    );
    fixture
        .apply(&serde_saphyr::from_str::<SealedSecret>(&rewrapped).unwrap())
        .await;
    eventually("status shows the new key", || async {
        fixture
            .sealed_secrets("app")
            .get("api")
            .await
            .ok()
            .and_then(|s| s.status)
            .is_some_and(|s| s.key_ids == vec![new_key_id.clone()])
    })
    .await;
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
    assert_eq!(
        wait_condition(&fixture, "api", "RewrapDue", "False").await,
        "SealedToActiveKey"
    );
    eventually("the stale-key gauge is back to 0", || async {
        controller
            .get("/metrics")
            .await
            .1
            .contains("kseal_values_sealed_to_inactive_key 0")
    })
    .await;
}

/// After a rotation, a value still sealed to the previous key is within the
/// grace period (`RewrapDue=False WithinGracePeriod`, no Warning, not in
/// the stale-key gauge) until the grace period after the rotation ends;
/// then it turns True by itself, with one Warning and no change to the
/// object.
#[tokio::test]
async fn rewrap_due_waits_for_the_grace_period() {
    use std::time::{Duration, Instant};
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let args = ["--key-renew-period", "0", "--rewrap-grace-period", "1h"];
    let controller = fixture.controller("kseal-controller", &args);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let old_key = recipients[0].key_id().to_string();
    fixture
        .apply(&seal(
            &plain("app", "api", &[("token", "pinned")]),
            kseal_shared::binding::Scope::Strict,
            &recipients,
        ))
        .await;
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
    assert_eq!(
        wait_condition(&fixture, "api", "RewrapDue", "False").await,
        "SealedToActiveKey"
    );
    let generation = fixture
        .sealed_secrets("app")
        .get("api")
        .await
        .unwrap()
        .metadata
        .generation;

    // Rotate: the value is now sealed to a key that is no longer active,
    // as everything sealed from a pinned public key is until the pin is
    // refreshed.
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let rotating = Instant::now();
    let (code, _, err) = kseal(
        work.path(),
        &["keys", "rotate", "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let replaced_at = active_key_created(&fixture).await;
    let deadline = |grace: Duration| {
        let end = replaced_at + jiff::SignedDuration::try_from(grace).unwrap();
        end.round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Ceil),
        )
        .unwrap()
    };
    let hour = deadline(Duration::from_secs(3600));
    let within = wait_rewrap(&fixture, "WithinGracePeriod", &hour.to_string()).await;
    assert_eq!(within.status, "False");
    assert!(
        within.message.starts_with(
            "1 value(s) sealed only to keys that are no longer active, within the 1h grace period"
        ) && within
            .message
            .contains(&format!("key {old_key} (replaced at "))
            && within
                .message
                .contains(&format!("before {hour}, when RewrapDue turns True")),
        "{}",
        within.message
    );
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
    eventually(
        "the gauges count the value as within the grace period",
        || async {
            let body = controller.get("/metrics").await.1;
            body.contains("kseal_values_sealed_to_inactive_key 0")
                && body.contains("kseal_values_within_rewrap_grace 1")
        },
    )
    .await;
    controller.settle().await;
    assert_eq!(
        warning_count(&fixture, "api", "SealedToInactiveKey").await,
        0
    );
    assert_eq!(warning_count(&fixture, "api", "WithinGracePeriod").await, 0);
    drop(controller);

    // A controller whose grace period ends ~30 s from now: the condition
    // turns True at the deadline by itself (the hourly resync is far off).
    // (In seconds that are no whole minute, so messages show it as given.)
    let short = (rotating.elapsed() + Duration::from_secs(30)).as_secs();
    let short = format!("{}s", short + u64::from(short.is_multiple_of(60)));
    let args = ["--key-renew-period", "0", "--rewrap-grace-period", &short];
    let controller = fixture.controller("kseal-controller-2", &args);
    controller.wait_healthy().await;
    let end = deadline(humantime::parse_duration(&short).unwrap());
    let within = wait_rewrap(&fixture, "WithinGracePeriod", &end.to_string()).await;
    assert!(
        within
            .message
            .contains(&format!("within the {short} grace period")),
        "{}",
        within.message
    );
    let started = Instant::now();
    let due = loop {
        let condition = rewrap_condition(&fixture).await;
        if condition.status == "True" {
            break condition;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "RewrapDue did not turn True after the grace period: {condition:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(jiff::Timestamp::now() >= end, "True before {end}");
    assert_eq!(due.reason, "SealedToInactiveKey");
    assert_eq!(
        due.message,
        format!(
            "1 value(s) sealed only to keys that are no longer active: token; re-wrap them with kseal rewrap --stale --online. They are sealed to key {old_key} (the {short} grace period ended at {end})."
        )
    );
    let object = fixture.sealed_secrets("app").get("api").await.unwrap();
    assert_eq!(object.metadata.generation, generation, "the object changed");
    eventually("the stale-key gauge counts the value", || async {
        let body = controller.get("/metrics").await.1;
        body.contains("kseal_values_sealed_to_inactive_key 1")
            && body.contains("kseal_values_within_rewrap_grace 0")
    })
    .await;
    warnings(&fixture, "api", "SealedToInactiveKey").await;
    controller.settle().await;
    assert_eq!(warnings(&fixture, "api", "SealedToInactiveKey").await, 1);
}

/// A grace period as long as the renewal period is refused at start.
#[test]
fn a_grace_period_as_long_as_the_renewal_period_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kseal-controller"))
        .args([
            "--kubeconfig",
            "/nonexistent",
            "--key-renew-period",
            "7d",
            "--rewrap-grace-period",
            "7d",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        log.contains("--rewrap-grace-period 7d must be shorter than --key-renew-period 7d"),
        "{log}"
    );
}

/// The creation time of the active sealing key.
async fn active_key_created(fixture: &Fixture) -> jiff::Timestamp {
    let keys = fixture
        .secrets(NAMESPACE)
        .list(&kube::api::ListParams::default().labels("kseal.dev/key-state=active"))
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1);
    keys.items[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(kseal_shared::contract::KEY_CREATED_ANNOTATION))
        .unwrap()
        .parse()
        .unwrap()
}

/// app/api's RewrapDue condition.
async fn rewrap_condition(fixture: &Fixture) -> kseal_shared::sealed_secret::Condition {
    fixture
        .sealed_secrets("app")
        .get("api")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "RewrapDue")
        .unwrap()
}

/// Waits for app/api's RewrapDue to have `reason` and a message that
/// contains `text`.
async fn wait_rewrap(
    fixture: &Fixture,
    reason: &str,
    text: &str,
) -> kseal_shared::sealed_secret::Condition {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = fixture
            .sealed_secrets("app")
            .get("api")
            .await
            .ok()
            .and_then(|s| s.status)
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "RewrapDue"));
        if let Some(condition) = &found
            && condition.reason == reason
            && condition.message.contains(text)
        {
            return condition.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for RewrapDue {reason} mentioning {text}: {found:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How many Warnings with this reason were recorded about app/`name` now.
async fn warning_count(fixture: &Fixture, name: &str, reason: &str) -> i32 {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(fixture.client.clone(), "app");
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some(reason)
                && e.involved_object.name.as_deref() == Some(name)
        })
        .map(|e| e.count.unwrap_or(1))
        .sum()
}

/// Waits for condition `type_` of app/`name` to have `status`; its reason.
async fn wait_condition(fixture: &Fixture, name: &str, type_: &str, status: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let found = fixture
            .sealed_secrets("app")
            .get(name)
            .await
            .ok()
            .and_then(|s| s.status)
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status);
        if let Some(condition) = found {
            return condition.reason;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {name}: {type_}={status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How many times a Warning with this reason was recorded about app/`name`
/// (waiting for the first; repeats are folded into one Event's count).
async fn warnings(fixture: &Fixture, name: &str, reason: &str) -> i32 {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(fixture.client.clone(), "app");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let count: i32 = events
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|e| {
                        e.type_.as_deref() == Some("Warning")
                            && e.reason.as_deref() == Some(reason)
                            && e.involved_object.name.as_deref() == Some(name)
                    })
                    .map(|e| {
                        e.count
                            .unwrap_or(1)
                            .max(e.series.as_ref().and_then(|s| s.count).unwrap_or(1))
                    })
                    .sum()
            })
            .unwrap_or(0);
        if count > 0 {
            return count;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for a Warning {reason} about {name}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `spec.maxAge`: a value sealed longer ago is reported by RotationDue (one
/// Warning, the gauge) while Ready stays True; a fresh one is not.
#[tokio::test]
async fn overdue_values_are_reported_apart_from_ready() {
    use kseal_shared::binding::{Binding, Scope};
    use kseal_shared::envelope::seal_at;
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let controller = fixture.controller("kseal-controller", &[]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap();
    let object = |name: &str, max_age: &str, ages: &[(&str, u64)]| {
        let values: serde_json::Map<String, serde_json::Value> = ages
            .iter()
            .map(|(key, days)| {
                let binding = Binding::new(Scope::Strict, "app", name, key);
                let value = seal_at(b"v", &binding, &recipients, now - days * 86_400).unwrap();
                ((*key).to_owned(), value.encode().into())
            })
            .collect();
        serde_json::from_value::<SealedSecret>(serde_json::json!({
            "apiVersion": "kseal.dev/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"maxAge": max_age, "encryptedData": values}
        }))
        .unwrap()
    };
    fixture
        .apply(&object("old", "30d", &[("a", 45), ("b", 1)]))
        .await;
    fixture.apply(&object("fresh", "30d", &[("a", 29)])).await;
    for longest in ["36525d", "876600h", "5217w"] {
        fixture
            .sealed_secrets("app")
            .create(
                &kube::api::PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &object("longest", longest, &[("a", 1)]),
            )
            .await
            .unwrap_or_else(|err| panic!("{longest}: {err}"));
    }
    // The CRD admits only max ages the controller reads: one it could not
    // decode would fail the controller's whole list. At most 100 years.
    for bad in [
        "0d",
        "090d",
        "90",
        "1y",
        "9999999999999w",
        "999999999999d",
        "100000d",
        "36526d",
        "876601h",
        "5218w",
    ] {
        let refused = fixture
            .sealed_secrets("app")
            .create(&Default::default(), &object("bad", bad, &[("a", 1)]))
            .await;
        assert!(
            matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422),
            "{bad}: {refused:?}"
        );
    }
    assert_eq!(
        wait_condition(&fixture, "old", "RotationDue", "True").await,
        "ValuesOverdue"
    );
    assert_eq!(fixture.wait_ready("app", "old", "True").await, "Unsealed");
    let message = fixture
        .sealed_secrets("app")
        .get("old")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "RotationDue")
        .unwrap()
        .message;
    assert!(
        message.contains("a (sealed 45 days ago)") && !message.contains("b ("),
        "{message}"
    );
    assert_eq!(
        wait_condition(&fixture, "fresh", "RotationDue", "False").await,
        "ValuesFresh"
    );
    warnings(&fixture, "old", "ValuesOverdue").await;
    controller.settle().await;
    assert_eq!(warnings(&fixture, "old", "ValuesOverdue").await, 1);
    // Another reconcile (a new generation) while still overdue: no second
    // Warning.
    let mut relabeled = object("old", "30d", &[("a", 45), ("b", 1)]);
    relabeled.spec.template = Some(kseal_shared::sealed_secret::SecretTemplate {
        metadata: Some(kseal_shared::sealed_secret::TemplateMetadata {
            labels: [("team".to_owned(), "payments".to_owned())].into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    fixture.apply(&relabeled).await;
    assert_eq!(fixture.wait_ready("app", "old", "True").await, "Unsealed");
    // Its Event would be published after the status: wait until idle.
    controller.settle().await;
    assert_eq!(warnings(&fixture, "old", "ValuesOverdue").await, 1);
    eventually("the overdue gauge", || async {
        controller
            .get("/metrics")
            .await
            .1
            .contains("kseal_values_overdue 1")
    })
    .await;
    // An object without spec.maxAge has no RotationDue condition.
    fixture
        .apply(&object("unlimited", "30d", &[("a", 400)]))
        .await;
    let mut unlimited = object("plain", "30d", &[("a", 400)]);
    unlimited.spec.max_age = None;
    fixture.apply(&unlimited).await;
    assert_eq!(fixture.wait_ready("app", "plain", "True").await, "Unsealed");
    let conditions: Vec<String> = fixture
        .sealed_secrets("app")
        .get("plain")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(conditions, ["Ready", "RewrapDue"]);
}
