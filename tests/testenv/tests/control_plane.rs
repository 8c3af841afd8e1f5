//! End-to-end checks of the harness against the real control plane: the API
//! works, kube-controller-manager works (garbage collection, namespaces,
//! ServiceAccounts), RBAC is enforced for minted users, and data survives
//! restarts of the API server and etcd.
//!
//! The binaries are built on first use (several minutes, then cached). Without
//! Go these tests skip loudly, except under `CI=true` where they fail.

// clippy.toml allows these inside #[test] functions only; the helpers below
// are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_testenv::{ControlPlane, Versions, bins_or_skip};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// Polls `check` every 200 ms until it returns true, or panics after `timeout`.
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn is_forbidden<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

fn is_not_found<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 404)
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = from_json(json!({"metadata": {"name": name}}));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn secret(name: &str, value: &str) -> Secret {
    from_json(json!({
        "metadata": {"name": name},
        "stringData": {"value": value},
    }))
}

fn secret_value(s: &Secret) -> String {
    let data = s.data.as_ref().expect("secret has data");
    String::from_utf8(data["value"].0.clone()).unwrap()
}

#[tokio::test]
async fn api_gc_rbac_and_namespaces() {
    if bins_or_skip().is_none() {
        return;
    }
    let cp = ControlPlane::start().await.unwrap();
    eprintln!(
        "control plane ready in {:.1}s at {}: {:?}",
        cp.start_time().as_secs_f64(),
        cp.server_url(),
        cp.startup()
    );
    let admin = cp.client().await.unwrap();

    // /version reports the pinned release (the ldflags took effect).
    let version = admin.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, Versions::pinned().unwrap().kubernetes);

    // --- Namespace, CRD, custom object, Secret as the admin.
    let ns = "e2e";
    create_namespace(&admin, ns).await;

    let crds = Api::<CustomResourceDefinition>::all(admin.clone());
    let crd: CustomResourceDefinition = from_json(json!({
        "metadata": {"name": "widgets.testenv.kseal.dev"},
        "spec": {
            "group": "testenv.kseal.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object",
                        "properties": {"size": {"type": "integer"}}}}
                }}
            }]
        }
    }));
    crds.create(&PostParams::default(), &crd).await.unwrap();
    eventually("the CRD to be established", WAIT, || {
        kseal_testenv::crd_established(&admin, "widgets.testenv.kseal.dev")
    })
    .await;
    let gvk = GroupVersionKind::gvk("testenv.kseal.dev", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), ns, &ApiResource::from_gvk(&gvk));
    let widget: DynamicObject = from_json(json!({
        "apiVersion": "testenv.kseal.dev/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }));
    // Discovery of a new CRD can lag a moment behind Established.
    eventually("creating a Widget", WAIT, || async {
        widgets
            .create(&PostParams::default(), &widget)
            .await
            .is_ok()
    })
    .await;
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["size"], 3);
    // The schema is enforced by the real API server.
    let bad: DynamicObject = from_json(json!({
        "apiVersion": "testenv.kseal.dev/v1", "kind": "Widget",
        "metadata": {"name": "bad"}, "spec": {"size": "three"}
    }));
    let err = widgets.create(&PostParams::default(), &bad).await;
    assert!(
        matches!(err, Err(kube::Error::Api(ref s)) if s.code == 422),
        "{err:?}"
    );

    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    secrets
        .create(&PostParams::default(), &secret("plain", "hunter2"))
        .await
        .unwrap();
    assert_eq!(
        secret_value(&secrets.get("plain").await.unwrap()),
        "hunter2"
    );

    // --- Garbage collection (kube-controller-manager).
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    let owner_of = |cm: &ConfigMap| {
        json!([{
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": cm.metadata.name.clone().unwrap(),
            "uid": cm.metadata.uid.clone().unwrap(),
        }])
    };
    let live: ConfigMap = from_json(json!({"metadata": {"name": "live-owner"}}));
    let live = configmaps
        .create(&PostParams::default(), &live)
        .await
        .unwrap();
    let gone: ConfigMap = from_json(json!({"metadata": {"name": "gone-owner"}}));
    let gone = configmaps
        .create(&PostParams::default(), &gone)
        .await
        .unwrap();
    configmaps
        .delete("gone-owner", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted owner to disappear", WAIT, || async {
        is_not_found(&configmaps.get("gone-owner").await)
    })
    .await;
    let orphan: Secret = from_json(json!({
        "metadata": {"name": "orphan", "ownerReferences": owner_of(&gone)},
        "stringData": {"value": "x"},
    }));
    let kept: Secret = from_json(json!({
        "metadata": {"name": "owned", "ownerReferences": owner_of(&live)},
        "stringData": {"value": "y"},
    }));
    secrets
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    secrets.create(&PostParams::default(), &kept).await.unwrap();
    eventually(
        "the garbage collector to delete the Secret whose owner is gone",
        WAIT,
        || async { is_not_found(&secrets.get("orphan").await) },
    )
    .await;
    // The collector has processed the graph by now; the live owner's Secret stays.
    assert!(secrets.get("owned").await.is_ok());
    // Deleting the live owner collects its dependent too.
    configmaps
        .delete("live-owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the owned Secret to be collected", WAIT, || async {
        is_not_found(&secrets.get("owned").await)
    })
    .await;

    // --- RBAC: minted users start with nothing and get exactly what is bound.
    let alice_user = cp.mint_user("alice", &["kseal-e2e", "readers"]).unwrap();
    assert_eq!(alice_user.groups, ["kseal-e2e", "readers"]);
    let alice = alice_user.client().await.unwrap();
    let alice_secrets: Api<Secret> = Api::namespaced(alice.clone(), ns);
    assert!(is_forbidden(&alice_secrets.get("plain").await));
    assert!(is_forbidden(
        &alice_secrets.list(&ListParams::default()).await
    ));

    let roles: Api<Role> = Api::namespaced(admin.clone(), ns);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    let role: Role = from_json(json!({
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    }));
    roles.create(&PostParams::default(), &role).await.unwrap();
    // Bound through the *second* group: proves certificates carry several O=.
    let binding: RoleBinding = from_json(json!({
        "metadata": {"name": "readers-read-secrets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "readers"}]
    }));
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    eventually(
        "the RoleBinding to let alice read Secrets",
        WAIT,
        || async { alice_secrets.get("plain").await.is_ok() },
    )
    .await;
    assert_eq!(
        secret_value(&alice_secrets.get("plain").await.unwrap()),
        "hunter2"
    );
    assert!(alice_secrets.list(&ListParams::default()).await.is_ok());
    // Still nothing beyond the Role: no writes, no other namespace.
    assert!(is_forbidden(
        &alice_secrets
            .create(&PostParams::default(), &secret("nope", "x"))
            .await
    ));
    let default_secrets: Api<Secret> = Api::namespaced(alice.clone(), "default");
    assert!(is_forbidden(
        &default_secrets.list(&ListParams::default()).await
    ));
    // A user outside the group stays denied.
    let mallory = cp.client_for_user("mallory", &["kseal-e2e"]).await.unwrap();
    assert!(is_forbidden(
        &Api::<Secret>::namespaced(mallory, ns).get("plain").await
    ));

    // A ServiceAccount identity: denied, then allowed by a binding to the SA.
    let sa = cp.mint_service_account(ns, "kseal-controller").unwrap();
    let sa_secrets: Api<Secret> = Api::namespaced(sa.client().await.unwrap(), ns);
    assert!(is_forbidden(&sa_secrets.get("plain").await));
    let sa_binding: RoleBinding = from_json(json!({
        "metadata": {"name": "controller-reads-secrets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "kseal-controller", "namespace": ns}]
    }));
    bindings
        .create(&PostParams::default(), &sa_binding)
        .await
        .unwrap();
    eventually(
        "the RoleBinding to let the ServiceAccount read",
        WAIT,
        || async { sa_secrets.get("plain").await.is_ok() },
    )
    .await;

    // --- ServiceAccount controller: every namespace gets a `default` SA.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    eventually("ServiceAccount e2e/default", WAIT, || async {
        sas.get_opt("default").await.unwrap().is_some()
    })
    .await;

    // --- Namespace controller: deleting a namespace empties and removes it.
    let namespaces = Api::<Namespace>::all(admin.clone());
    namespaces
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "namespace e2e to be finalized and removed",
        WAIT,
        || async { is_not_found(&namespaces.get(ns).await) },
    )
    .await;
}

#[tokio::test]
async fn data_survives_apiserver_and_etcd_restarts() {
    if bins_or_skip().is_none() {
        return;
    }
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    let mut cp = ControlPlane::start().await.unwrap();
    step("control plane up");
    let admin = cp.client().await.unwrap();
    create_namespace(&admin, "keep").await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "keep");
    secrets
        .create(&PostParams::default(), &secret("before", "one"))
        .await
        .unwrap();

    // API server restart (graceful stop): same port, same data.
    cp.stop_apiserver();
    step("API server stopped");
    assert!(
        secrets.get("before").await.is_err(),
        "API server should be down"
    );
    cp.start_apiserver().await.unwrap();
    assert_eq!(secret_value(&secrets.get("before").await.unwrap()), "one");

    // etcd crash (SIGKILL) under a running API server: writes fail until etcd
    // is back, then the API server recovers by itself.
    cp.kill_etcd();
    step("etcd killed");
    // (The API server may hold the request until its own timeout: waiting
    // 5 s without success counts as failed.)
    let failing = tokio::time::timeout(
        Duration::from_secs(5),
        secrets.create(&PostParams::default(), &secret("during", "x")),
    )
    .await;
    assert!(
        !matches!(failing, Ok(Ok(_))),
        "a write without etcd must fail"
    );
    step("write without etcd failed");
    cp.start_etcd().await.unwrap();
    cp.wait_apiserver_ready().await.unwrap();
    step("etcd back, API server ready");
    eventually("a write after etcd came back", WAIT, || async {
        secrets
            .create(&PostParams::default(), &secret("after-etcd", "two"))
            .await
            .is_ok()
    })
    .await;

    // Both down, then up again in order.
    cp.kill_apiserver();
    cp.stop_etcd();
    step("API server killed, etcd stopped");
    cp.start_etcd().await.unwrap();
    cp.start_apiserver().await.unwrap();
    assert_eq!(secret_value(&secrets.get("before").await.unwrap()), "one");
    assert_eq!(
        secret_value(&secrets.get("after-etcd").await.unwrap()),
        "two"
    );
    step("done");
}

/// helm is built with the pinned version and defaults to the pinned Kubernetes
/// minor for `helm template` (no cluster needed).
#[test]
fn helm_reports_pinned_versions() {
    let Some(bins) = bins_or_skip() else {
        return;
    };
    let versions = Versions::pinned().unwrap();
    let out = std::process::Command::new(bins.helm())
        .args(["version", "--short"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&versions.helm), "{text}");

    let chart = tempfile::tempdir().unwrap();
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::create_dir(chart.path().join("templates")).unwrap();
    std::fs::write(
        chart.path().join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )
    .unwrap();
    let out = std::process::Command::new(bins.helm())
        .arg("template")
        .arg(chart.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (major, minor) = versions.kubernetes_major_minor().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("kube: \"v{major}.{minor}.0\"")),
        "{text}"
    );
}
