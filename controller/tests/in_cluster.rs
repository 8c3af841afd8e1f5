//! The controller as users run it: a release built from the repository
//! (`cargo xtask release`'s code, profile `image-test`), published to a
//! registry on loopback and verified with cosign, installed with `helm
//! install oci://…` and pulled by digest by a real node, running in a Pod with
//! its ServiceAccount token, in-cluster config, the chart's securityContext
//! enforced by the runtime, probes hitting the Pod and the Service in front
//! of it. Everything a user does goes through the real `kubectl`, `helm`
//! and `kseal` CLIs and the API server's service proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/in_cluster.rs"]
mod in_cluster;

use std::time::{Duration, Instant};

use in_cluster::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kseal_shared::{sealed_secret::SealedSecret, x25519::Identity};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};

const NS: &str = "kseal-system";

fn secret_yaml(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\nstringData:\n  token: {value}\n"
    )
}

/// Seals with `kseal seal` and no recipient (the cluster's published key),
/// applies with the real kubectl, waits for the Secret.
async fn seal_apply_and_wait(
    c: &Cluster,
    ctl_ns: &str,
    ns: &str,
    name: &str,
    value: &str,
) -> String {
    let kubeconfig = c.kubeconfig();
    let (code, sealed, err) = kseal_cli(
        c,
        &[
            "seal",
            "--kubeconfig",
            &kubeconfig,
            "--controller-namespace",
            ctl_ns,
        ],
        Some(&secret_yaml(ns, name, value)),
    );
    assert_eq!(code, 0, "{err}");
    let (ok, _, err) = c.kubectl(&["apply", "-f", "-"], Some(&sealed));
    assert!(ok, "{err}");
    wait_secret(&c.client, ns, name, value).await;
    sealed
}

async fn wait_secret(client: &Client, ns: &str, name: &str, value: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(s) = api.get(name).await
            && s.data
                .as_ref()
                .and_then(|d| d.get("token"))
                .is_some_and(|v| v.0 == value.as_bytes())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Secret {ns}/{name} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kseal_cli(c: &Cluster, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    common::kseal(c.dir(), args, stdin)
}

/// What the chart grants and refuses, with the Pod's own token.
async fn check_least_privilege(c: &Cluster, pod: &Pod, namespaced: bool) {
    // Restarts are off by default: no access to workloads at all.
    check_rollout_refused(c, pod, "app").await;
    let sa = c.pod_client(pod).await;
    // What the controller needs.
    Api::<ConfigMap>::namespaced(sa.clone(), NS)
        .get("kseal-public-keys")
        .await
        .unwrap();
    Api::<Secret>::namespaced(sa.clone(), NS)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap();
    Api::<SealedSecret>::namespaced(sa.clone(), "app")
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<Secret>::namespaced(sa.clone(), "app")
        .list(&ListParams::default())
        .await
        .unwrap();
    // A Secret whose type changes is deleted and created again (docs/
    // security.md): delete is granted where SealedSecrets are watched.
    // A dry run, so nothing goes.
    let dry_run = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    let app_secrets: Api<Secret> = Api::namespaced(sa.clone(), "app");
    assert!(!forbidden(&app_secrets.delete("api", &dry_run).await));
    // What the chart says it must not do.
    let other_cm: Api<ConfigMap> = Api::namespaced(sa.clone(), NS);
    assert!(forbidden(&other_cm.get("kube-root-ca.crt").await));
    let sealed: Api<SealedSecret> = Api::namespaced(sa.clone(), "app");
    assert!(forbidden(
        &sealed.delete("api", &DeleteParams::default()).await
    ));
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kseal-escalation"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }))
    .unwrap();
    assert!(forbidden(
        &Api::<ClusterRole>::all(sa.clone())
            .create(&PostParams::default(), &role)
            .await
    ));
    let other_ns: Api<Secret> = Api::namespaced(sa.clone(), "default");
    let all: Api<Secret> = Api::all(sa.clone());
    if namespaced {
        assert!(forbidden(&other_ns.list(&ListParams::default()).await));
        assert!(forbidden(&other_ns.delete("api", &dry_run).await));
        assert!(forbidden(&all.list(&ListParams::default()).await));
    } else {
        other_ns.list(&ListParams::default()).await.unwrap();
    }
}

#[tokio::test]
async fn helm_install_runs_the_controller_as_users_run_it() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let total = Instant::now();
    c.namespace("app").await;

    // helm install with the chart's defaults, the local image, never pulled.
    let t = Instant::now();
    c.helm_release("install", "kseal", NS, TAG_1, &[]);
    let pods = c.wait_pods_ready(NS, TAG_1, 1).await;
    eprintln!("helm install to Ready: {:.1}s", t.elapsed().as_secs_f64());
    let recipients = c.recipients(NS).await;
    assert_eq!(recipients.len(), 1);

    // fetch-keys and seal with no recipient use the published key; the
    // SealedSecret applied with kubectl becomes a Secret.
    let kubeconfig = c.kubeconfig();
    let (code, keys, err) = kseal_cli(&c, &["fetch-keys", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0, "{err}");
    assert!(keys.contains(&recipients[0].to_string()), "{keys}");
    let sealed = seal_apply_and_wait(&c, NS, "app", "api", "in-cluster-canary").await;
    assert!(sealed.contains(&recipients[0].key_id().to_string()));

    // validate --online and rewrap --online through the service proxy.
    std::fs::write(c.dir().join("api.yaml"), &sealed).unwrap();
    let (code, _, err) = kseal_cli(
        &c,
        &[
            "validate",
            "--online",
            "--kubeconfig",
            &kubeconfig,
            "api.yaml",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(
        c.dir().join("moved.yaml"),
        sealed.replace("name: api", "name: moved"),
    )
    .unwrap();
    let (code, _, err) = kseal_cli(
        &c,
        &[
            "validate",
            "--online",
            "--kubeconfig",
            &kubeconfig,
            "moved.yaml",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the cluster cannot decrypt it"), "{err}");
    let extra = Identity::generate();
    let (code, two, err) = kseal_cli(
        &c,
        &[
            "seal",
            "-r",
            &recipients[0].to_string(),
            "-r",
            &extra.recipient().to_string(),
        ],
        Some(&secret_yaml("app", "api", "in-cluster-canary")),
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(c.dir().join("two.yaml"), &two).unwrap();
    let (code, _, err) = kseal_cli(
        &c,
        &[
            "rewrap",
            "--online",
            "--kubeconfig",
            &kubeconfig,
            "--in-place",
            "two.yaml",
        ],
        None,
    );
    // Through the service proxy; sealed to the cluster's key and an extra
    // recipient (a recovery key), the value is current and kept as it is.
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 value(s) re-wrapped, 1 already current"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(c.dir().join("two.yaml")).unwrap(),
        two
    );
    assert!(!err.contains("in-cluster-canary"));

    // Metrics through the Service (service proxy).
    let metrics = c.service_proxy_get(NS, "/metrics").await;
    assert!(metrics.contains("kseal_build_info"), "{metrics}");
    assert!(metrics.contains("kseal_unseals"), "{metrics}");

    // Least privilege with the Pod's own token (cluster-wide mode).
    check_least_privilege(&c, &pods[0], false).await;

    // Probes keep the Pod Ready (several readiness and liveness periods
    // have passed by now, no restart); a wedged controller (SIGSTOP through
    // the host, the process stays but stops answering) is restarted by the
    // liveness probe.
    let pod = &c.controller_pods(NS).await[0];
    assert!(pod_ready(pod));
    assert_eq!(restarts(pod), 0);
    let pids = controller_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let t = Instant::now();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let pods_api: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let name = pod.metadata.name.clone().unwrap();
    let mut went_unready = false;
    loop {
        let p = pods_api.get(&name).await.unwrap();
        went_unready |= !pod_ready(&p);
        if restarts(&p) >= 1 && pod_ready(&p) {
            break;
        }
        // Three failed liveness probes (30 s), the kill and the restart,
        // with room for a loaded machine.
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "wedged controller not restarted: {:?}",
            p.status
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(went_unready, "readiness never failed while wedged");
    assert!(!controller_pids().contains(&pids[0]));
    eprintln!(
        "wedged -> restarted and Ready: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // helm upgrade to a new image keeps the keys and the Secrets.
    let t = Instant::now();
    c.helm_release("upgrade", "kseal", NS, TAG_2, &[]);
    c.wait_pods_ready(NS, TAG_2, 1).await;
    eprintln!("helm upgrade to Ready: {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(c.recipients(NS).await, recipients);
    wait_secret(&c.client, "app", "api", "in-cluster-canary").await;
    seal_apply_and_wait(&c, NS, "app", "after-upgrade", "v2").await;

    // Two replicas with leader election: kill the leader's Pod, the other
    // takes over.
    c.helm_release("upgrade", "kseal", NS, TAG_2, &["replicaCount=2"]);
    c.wait_pods_ready(NS, TAG_2, 2).await;
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), NS);
    // `<pod name>_<random>`: the pod is the part before the `_`.
    let holder = |l: Lease| {
        l.spec
            .and_then(|s| s.holder_identity)
            .and_then(|h| h.split_once('_').map(|(pod, _)| pod.to_owned()))
            .unwrap_or_default()
    };
    let deadline = Instant::now() + WAIT;
    let leader = loop {
        if let Ok(l) = leases.get("kseal-controller").await {
            let h = holder(l);
            if !h.is_empty() {
                break h;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t = Instant::now();
    pods_api
        .delete(&leader, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    loop {
        let h = leases
            .get("kseal-controller")
            .await
            .map(holder)
            .unwrap_or_default();
        if !h.is_empty() && h != leader {
            break;
        }
        assert!(
            t.elapsed() < WAIT,
            "no new leader after {leader} was killed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "leader killed -> new leader: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    seal_apply_and_wait(&c, NS, "app", "after-failover", "v3").await;

    // Namespaced RBAC mode, proven with the new Pod's token.
    c.helm_release(
        "upgrade",
        "kseal",
        NS,
        TAG_2,
        &["replicaCount=1", "watchNamespaces={app}"],
    );
    let pods = c.wait_pods_ready(NS, TAG_2, 1).await;
    check_least_privilege(&c, &pods[0], true).await;
    seal_apply_and_wait(&c, NS, "app", "namespaced", "v4").await;

    // helm uninstall leaves the keys; a new install picks them up.
    c.helm(&["uninstall", "kseal", "--namespace", NS, "--wait"]);
    let keys: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let left = keys
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    c.helm_release("install", "kseal", NS, TAG_1, &[]);
    c.wait_pods_ready(NS, TAG_1, 1).await;
    assert_eq!(c.recipients(NS).await, recipients);
    seal_apply_and_wait(&c, NS, "app", "after-reinstall", "v5").await;
    eprintln!("in-cluster checks: {:.1}s", total.elapsed().as_secs_f64());
}

/// Two releases, each in its own namespace watching its own namespaces with
/// its own keys: neither touches the other's objects or events, and the
/// second `helm install` does not collide with the first.
#[tokio::test]
async fn two_releases_in_one_cluster() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let t = Instant::now();
    for ns in ["team-a", "team-b"] {
        c.namespace(ns).await;
    }
    c.helm_release(
        "install",
        "kseal-a",
        "kseal-a",
        TAG_1,
        &["watchNamespaces={team-a}"],
    );
    c.helm_release(
        "install",
        "kseal-b",
        "kseal-b",
        TAG_1,
        &["watchNamespaces={team-b}"],
    );
    let pods_a = c.wait_pods_ready("kseal-a", TAG_1, 1).await;
    let pods_b = c.wait_pods_ready("kseal-b", TAG_1, 1).await;
    let (keys_a, keys_b) = (c.recipients("kseal-a").await, c.recipients("kseal-b").await);
    assert_ne!(keys_a, keys_b, "each release has its own keys");

    // Each seals for its own namespaces and unseals them.
    seal_apply_and_wait(&c, "kseal-a", "team-a", "api", "a-canary").await;
    seal_apply_and_wait(&c, "kseal-b", "team-b", "api", "b-canary").await;

    // A SealedSecret in team-b sealed to A's key: B cannot decrypt it and
    // says so; A never touches it (no status, no event from A's Pod).
    let kubeconfig = c.kubeconfig();
    let (code, wrong, err) = kseal_cli(
        &c,
        &[
            "seal",
            "--kubeconfig",
            &kubeconfig,
            "--controller-namespace",
            "kseal-a",
        ],
        Some(&secret_yaml("team-b", "wrong-key", "x")),
    );
    assert_eq!(code, 0, "{err}");
    let (ok, _, err) = c.kubectl(&["apply", "-f", "-"], Some(&wrong));
    assert!(ok, "{err}");
    let events: Api<Event> = Api::namespaced(c.client.clone(), "team-b");
    let pod_a = pods_a[0].metadata.name.clone().unwrap();
    let pod_b = pods_b[0].metadata.name.clone().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let list = events.list(&ListParams::default()).await.unwrap();
        let about_wrong = list.items.iter().any(|e| {
            e.involved_object.name.as_deref() == Some("wrong-key")
                && e.reporting_instance.as_deref() == Some(pod_b.as_str())
        });
        if about_wrong {
            break;
        }
        assert!(Instant::now() < deadline, "B never reported wrong-key");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secrets_b: Api<Secret> = Api::namespaced(c.client.clone(), "team-b");
    assert!(secrets_b.get_opt("wrong-key").await.unwrap().is_none());
    for ns in ["team-a", "team-b", "kseal-a", "kseal-b"] {
        let list = Api::<Event>::namespaced(c.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        for e in list.items {
            let instance = e.reporting_instance.clone().unwrap_or_default();
            if ns.ends_with("-a") {
                assert_ne!(instance, pod_b, "B reported in {ns}: {e:?}");
            } else {
                assert_ne!(instance, pod_a, "A reported in {ns}: {e:?}");
            }
        }
    }
    // Each Pod's token reaches only its own namespaces.
    let sa_a = c.pod_client(&pods_a[0]).await;
    assert!(forbidden(
        &Api::<Secret>::namespaced(sa_a.clone(), "team-b")
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        &Api::<Secret>::namespaced(sa_a, "kseal-b")
            .list(&ListParams::default())
            .await
    ));
    let sa_b = c.pod_client(&pods_b[0]).await;
    assert!(forbidden(
        &Api::<Secret>::namespaced(sa_b, "team-a")
            .list(&ListParams::default())
            .await
    ));
    eprintln!("two releases: {:.1}s", t.elapsed().as_secs_f64());
}
