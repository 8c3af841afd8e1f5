//! The Helm chart: `helm lint`, the schema, `helm template`, a server-side
//! dry run of everything it renders, and its RBAC proved on a real API
//! server: the controller runs as the chart's ServiceAccount (an identity
//! bound exactly like the chart binds it) through create, update, delete and
//! key rotation, and is refused what the chart does not grant. A non-admin
//! user seals with the cluster's keys but cannot read the key Secrets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/manifests.rs"]
mod manifests;

use std::path::Path;
use std::time::Instant;

use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_shared::binding::Scope;
use kseal_shared::sealed_secret::{SealedSecret, SealedSecretStatus};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use manifests::{create, is_forbidden, kind, name, render};
use serde_json::{Value, json};

const SA: &str = "kseal-controller";

fn helm_bin() -> Option<std::path::PathBuf> {
    Some(kseal_testenv::bins_or_skip()?.helm())
}

fn chart_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kseal")
}

fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    docs.iter()
        .find(|doc| kind(doc) == kind_ && name(doc) == name_)
        .unwrap_or_else(|| panic!("{kind_} {name_} not rendered"))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|doc| format!("{}/{}", kind(doc), name(doc)))
        .collect()
}

/// `helm lint`, the schema refusing typos, and what the default and the
/// fullest renderings contain. No cluster needed.
#[test]
fn chart_lints_and_renders() {
    let Some(helm) = helm_bin() else { return };
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let started = Instant::now();
    manifests::helm(&helm, &["lint", "--strict", chart]);
    manifests::helm(
        &helm,
        &[
            "lint",
            "--strict",
            chart,
            "--set",
            "replicaCount=3,watchNamespaces={a,b},serviceMonitor.enabled=true,networkPolicy.enabled=true",
        ],
    );

    // values.schema.json rejects typos and wrong types.
    for bad in [
        "replicaCont=2",
        "controller.logFormat=xml",
        "image.pullpolicy=Always",
        "serviceAccount.create=maybe",
        "watchNamespaces={Not_A_Namespace}",
        "podDisruptionBudget.maxUnavailable=lots",
        "controller.healthPort=8080",
        "controller.apiWorkRate=0",
    ] {
        let output = std::process::Command::new(&helm)
            .args(["template", "kseal", chart, "--set", bad])
            .output()
            .unwrap();
        assert!(!output.status.success(), "--set {bad} was accepted");
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains("values don't meet the specifications")
                || String::from_utf8_lossy(&output.stderr).contains("at '/"),
            "--set {bad}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Defaults: cluster-wide mode, one replica, no leader election.
    let docs = render(&helm, &[]);
    let deployment = find(&docs, "Deployment", "kseal-controller");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], SA);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The probes use the probe port, which clients of the API port cannot
    // starve.
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "health");
    assert_eq!(
        container["ports"],
        json!([
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
        ])
    );
    assert_eq!(
        container["image"],
        "ghcr.io/kseal-dev/kseal-controller:0.1.0"
    );
    assert!(container["resources"]["limits"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!args.contains(&"--leader-elect"), "{args:?}");
    assert!(args.contains(&"--health-addr=0.0.0.0:8081"), "{args:?}");
    assert!(args.contains(&"--api-work-rate=2000"), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--watch-namespaces")));
    assert_eq!(
        find(&docs, "ServiceAccount", SA)["automountServiceAccountToken"],
        false
    );
    let service = find(&docs, "Service", "kseal-controller");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    // Cluster-scoped names carry the release namespace (two releases in two
    // namespaces never collide).
    find(&docs, "ClusterRole", "kseal-controller-kseal-system");
    find(&docs, "ClusterRoleBinding", "kseal-controller-kseal-system");
    find(&docs, "PodDisruptionBudget", "kseal-controller");
    let role = find(&docs, "Role", "kseal-controller");
    assert!(
        !role.to_string().contains("leases"),
        "no Lease rights without leader election"
    );
    let all = kinds(&docs);
    assert!(
        !all.iter().any(|k| k.starts_with("ServiceMonitor/")),
        "{all:?}"
    );
    // The NetworkPolicy is on by default: the API port from anywhere (the
    // service proxy comes from control-plane addresses), the probe port from
    // the node (always allowed) and the monitoring namespace, egress to the
    // API server's ports only.
    let policy = find(&docs, "NetworkPolicy", "kseal-controller");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            {"ports": [{"port": "http", "protocol": "TCP"}]},
            {
                "ports": [{"port": "health", "protocol": "TCP"}],
                "from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "monitoring"}}}],
            },
        ])
    );
    assert_eq!(
        policy["spec"]["egress"],
        json!([{"ports": [
            {"port": 443, "protocol": "TCP"},
            {"port": 6443, "protocol": "TCP"},
        ]}])
    );
    let all = kinds(&render(&helm, &["networkPolicy.enabled=false"]));
    assert!(
        !all.iter().any(|k| k.starts_with("NetworkPolicy/")),
        "{all:?}"
    );
    // The ServiceMonitor scrapes the probe port through a Service of its
    // own (the public service-proxy rights name only the controller's).
    let docs_monitored = render(&helm, &["serviceMonitor.enabled=true"]);
    let metrics = find(&docs_monitored, "Service", "kseal-controller-metrics");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "health");
    let monitor = find(&docs_monitored, "ServiceMonitor", "kseal-controller");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "health");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "metrics"
    );
    // Nobody but the controller is granted anything on Secrets.
    for doc in &docs {
        if kind(doc) == "Role" && name(doc) != "kseal-controller"
            || kind(doc) == "ClusterRole" && name(doc) != "kseal-controller-kseal-system"
        {
            assert!(!doc.to_string().contains("\"secrets\""), "{doc}");
        }
    }

    // Several replicas: leader election, with rights on the Lease only.
    let docs = render(&helm, &["replicaCount=2", "watchNamespaces={app,other}"]);
    let args =
        find(&docs, "Deployment", "kseal-controller")["spec"]["template"]["spec"]["containers"][0]
            ["args"]
            .to_string();
    assert!(args.contains("--leader-elect"), "{args}");
    assert!(args.contains("--watch-namespaces=app,other"), "{args}");
    assert!(
        find(&docs, "Role", "kseal-controller")
            .to_string()
            .contains("leases")
    );
    // Namespaced mode: Roles in the listed namespaces, no ClusterRole.
    let all = kinds(&docs);
    assert!(!all.iter().any(|k| k.starts_with("Cluster")), "{all:?}");
    let reconcile_roles: Vec<&str> = docs
        .iter()
        .filter(|d| kind(d) == "Role" && name(d) == "kseal-controller-kseal-system")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(reconcile_roles, ["app", "other"]);
    eprintln!("chart lint and render checks: {:.1?}", started.elapsed());
}

/// A minimal CRD for the Prometheus Operator's ServiceMonitor, so the
/// optional ServiceMonitor can be dry-run.
fn service_monitor_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))
    .unwrap()
}

async fn crd_established(client: &Client, name: &str) {
    eventually(&format!("CRD {name} established"), || {
        kseal_testenv::crd_established(client, name)
    })
    .await;
}

/// Everything the chart renders, in both modes and with every optional
/// object on, is accepted by the API server (dryRun=All); so is the chart's
/// own CRD file.
#[tokio::test]
async fn rendered_chart_passes_server_side_dry_run() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let helm = fixture.cp.bins().helm();
    let client = fixture.client.clone();
    for ns in ["app", "other"] {
        fixture.namespace(ns).await;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &service_monitor_crd())
        .await
        .unwrap();
    crd_established(&client, "servicemonitors.monitoring.coreos.com").await;

    // The chart's crds/ file: the CRD is installed already, so dry-run its
    // replacement to check the file is a valid, identical-named CRD.
    let crd_text =
        std::fs::read_to_string(chart_dir().join("crds/sealedsecrets.kseal.dev.yaml")).unwrap();
    let crd = &manifests::parse_docs(&crd_text)[0];
    let mut crd_obj: CustomResourceDefinition = serde_json::from_value(crd.clone()).unwrap();
    crd_obj.metadata.resource_version = crds
        .get("sealedsecrets.kseal.dev")
        .await
        .unwrap()
        .metadata
        .resource_version;
    crds.replace(
        "sealedsecrets.kseal.dev",
        &PostParams {
            dry_run: true,
            ..PostParams::default()
        },
        &crd_obj,
    )
    .await
    .unwrap();

    let started = Instant::now();
    let mut count = 0;
    for sets in [
        &[][..],
        &[
            "replicaCount=3",
            "watchNamespaces={app,other}",
            "serviceMonitor.enabled=true",
            "serviceMonitor.labels.release=prometheus",
            "networkPolicy.enabled=true",
            "networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.team=monitoring",
            "networkPolicy.egress[0].ports[0].port=443",
            "rbac.keyOperatorSubjects[0].kind=Group",
            "rbac.keyOperatorSubjects[0].name=kseal-operators",
            "rbac.keyOperatorSubjects[0].apiGroup=rbac.authorization.k8s.io",
            "image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "podAnnotations.example=yes",
            "resources.limits.cpu=500m",
        ][..],
    ] {
        for doc in render(&helm, sets) {
            create(&client, &doc, true).await.unwrap_or_else(|err| {
                panic!("dry run of {} {} refused: {err}", kind(&doc), name(&doc))
            });
            count += 1;
        }
    }
    assert!(count > 20, "{count}");
    eprintln!(
        "{count} rendered objects dry-run: {:.1?}",
        started.elapsed()
    );
}

fn sar(
    user: &kseal_testenv::User,
    verb: &str,
    resource: &str,
    sub: &str,
    ns: &str,
    name_: &str,
) -> SubjectAccessReview {
    let mut groups = user.groups.clone();
    groups.push("system:authenticated".into());
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(groups),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: (!sub.is_empty()).then(|| sub.into()),
                namespace: Some(ns.into()),
                name: (!name_.is_empty()).then(|| name_.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

async fn allowed(admin: &Client, review: SubjectAccessReview) -> bool {
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

fn secret(namespace: &str, name_: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name_, "namespace": namespace},
        "stringData": {"token": "not-for-kseal"}
    }))
    .unwrap()
}

/// Renders the chart, creates every object for real (as admin), and starts
/// a controller as the chart's ServiceAccount.
async fn install(fixture: &Fixture, sets: &[&str], extra: &[&str]) -> Controller {
    let helm = fixture.cp.bins().helm();
    let docs = render(&helm, sets);
    for doc in &docs {
        create(&fixture.client, doc, false)
            .await
            .unwrap_or_else(|err| panic!("creating {} {}: {err}", kind(doc), name(doc)));
    }
    let identity = fixture.cp.mint_service_account(NAMESPACE, SA).unwrap();
    // The API server authorizes from a cache that follows the RBAC objects
    // a moment later: start the controller once every rule the chart grants
    // it is in effect, so a denial in its log means a missing rule.
    rbac_in_effect(&fixture.client, &identity, &docs).await;
    let controller = fixture.controller_as("kseal-controller", &identity.kubeconfig, extra);
    controller.wait_healthy().await;
    controller
}

/// Waits until every rule of every rendered Role and ClusterRole bound to
/// `user` (directly or through one of its groups) allows it.
async fn rbac_in_effect(admin: &Client, user: &kseal_testenv::User, docs: &[Value]) {
    let mut groups = user.groups.clone();
    groups.push("system:authenticated".into());
    let mut reviews = Vec::new();
    for binding in docs
        .iter()
        .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
    {
        let bound = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| match s["kind"].as_str() {
                Some("ServiceAccount") => {
                    format!(
                        "system:serviceaccount:{}:{}",
                        s["namespace"].as_str().unwrap_or_default(),
                        s["name"].as_str().unwrap_or_default()
                    ) == user.name
                }
                Some("User") => s["name"].as_str() == Some(user.name.as_str()),
                Some("Group") => groups.iter().any(|g| s["name"].as_str() == Some(g)),
                _ => false,
            });
        if !bound {
            continue;
        }
        // Where the grant applies (as `create` places objects); a
        // ClusterRoleBinding's applies everywhere, so here too.
        let namespace = match kind(binding) {
            "RoleBinding" => binding["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default"),
            _ => NAMESPACE,
        };
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap();
        let role_name = binding["roleRef"]["name"].as_str().unwrap();
        // A role the chart does not render (a built-in one) is in effect.
        let Some(role) = docs.iter().find(|d| {
            kind(d) == role_kind
                && name(d) == role_name
                && (role_kind == "ClusterRole"
                    || d["metadata"]["namespace"].as_str() == Some(namespace))
        }) else {
            continue;
        };
        for rule in role["rules"].as_array().unwrap() {
            let strings = |field: &str| -> Vec<String> {
                rule[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            let group = strings("apiGroups").first().cloned().unwrap_or_default();
            let resource_name = strings("resourceNames").first().cloned();
            for resource in strings("resources") {
                let (resource, sub) = resource
                    .split_once('/')
                    .map_or((resource.clone(), None), |(r, s)| {
                        (r.to_owned(), Some(s.to_owned()))
                    });
                for verb in strings("verbs") {
                    reviews.push(SubjectAccessReview {
                        spec: SubjectAccessReviewSpec {
                            user: Some(user.name.clone()),
                            groups: Some(groups.clone()),
                            resource_attributes: Some(ResourceAttributes {
                                group: Some(group.clone()),
                                verb: Some(verb),
                                resource: Some(resource.clone()),
                                subresource: sub.clone(),
                                namespace: Some(namespace.to_owned()),
                                name: resource_name.clone(),
                                ..ResourceAttributes::default()
                            }),
                            ..SubjectAccessReviewSpec::default()
                        },
                        ..SubjectAccessReview::default()
                    });
                }
            }
        }
    }
    assert!(
        !reviews.is_empty(),
        "no rule of the chart binds {}",
        user.name
    );
    eventually("the chart's RBAC in effect", || async {
        for review in &reviews {
            if !allowed(admin, review.clone()).await {
                return false;
            }
        }
        true
    })
    .await;
}

/// What both modes must do as the ServiceAccount: create, update, re-create
/// (deleted by hand, and for a type change), delete, events, and a rotation
/// requested by an admin.
async fn drive_lifecycle(fixture: &Fixture, controller: &Controller, namespace: &str) {
    let recipients = fixture.recipients().await;
    assert_eq!(recipients.len(), 1);
    let secrets = fixture.secrets(namespace);

    // Create.
    let sealed = seal(
        &plain(namespace, "db", &[("password", "one")]),
        Scope::Strict,
        &recipients,
    );
    fixture.apply(&sealed).await;
    assert_eq!(
        fixture.wait_ready(namespace, "db", "True").await,
        "Unsealed"
    );
    assert_eq!(
        data_of(&secrets.get("db").await.unwrap(), "password"),
        "one"
    );
    let events: Api<Event> = Api::namespaced(fixture.client.clone(), namespace);
    eventually("an Unsealed event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("Unsealed")
                    && e.involved_object.name.as_deref() == Some("db")
            })
    })
    .await;

    // Update.
    let sealed = seal(
        &plain(namespace, "db", &[("password", "two")]),
        Scope::Strict,
        &recipients,
    );
    fixture.apply(&sealed).await;
    eventually("the Secret updated", || async {
        secrets
            .get("db")
            .await
            .is_ok_and(|s| data_of(&s, "password") == "two")
    })
    .await;

    // A deleted owned Secret comes back.
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Secret re-created", || async {
        secrets
            .get("db")
            .await
            .is_ok_and(|s| data_of(&s, "password") == "two")
    })
    .await;

    // A type change: the Secret is deleted and created again.
    let mut retyped = plain(namespace, "db", &[("password", "two")]);
    retyped.type_ = Some("example.com/retyped".into());
    fixture
        .apply(&seal(&retyped, Scope::Strict, &recipients))
        .await;
    eventually("the Secret re-created with its new type", || async {
        secrets.get("db").await.is_ok_and(|s| {
            s.type_.as_deref() == Some("example.com/retyped") && data_of(&s, "password") == "two"
        })
    })
    .await;

    // Rotation: an admin asks, the controller (as the ServiceAccount) makes
    // and publishes a new key and demotes the old one.
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let (code, _, err) = kseal(
        &fixture.dir,
        &["keys", "rotate", "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 0, "kseal keys rotate: {err}");
    let old_key = recipients[0].key_id().to_string();
    eventually("a new published key", || async {
        fixture.recipients().await[0].key_id().to_string() != old_key
    })
    .await;
    // The old key is demoted after the new one is published (its own
    // write): wait for that, not for the publication.
    let key_states = || async {
        let key_secrets = fixture
            .secrets(NAMESPACE)
            .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
            .await
            .unwrap();
        key_secrets
            .items
            .iter()
            .map(|s| s.metadata.labels.as_ref().unwrap()["kseal.dev/key-state"].clone())
            .collect::<Vec<String>>()
    };
    eventually("the old key demoted", || async {
        key_states().await.iter().any(|s| s == "decrypt-only")
    })
    .await;
    let states = key_states().await;
    assert!(
        states.iter().any(|s| s == "active") && states.iter().any(|s| s == "decrypt-only"),
        "{states:?}"
    );
    let new_recipients = fixture.recipients().await;
    let sealed = seal(
        &plain(namespace, "api", &[("token", "three")]),
        Scope::Strict,
        &new_recipients,
    );
    fixture.apply(&sealed).await;
    assert_eq!(
        fixture.wait_ready(namespace, "api", "True").await,
        "Unsealed"
    );
    assert_eq!(
        fixture.wait_ready(namespace, "db", "True").await,
        "Unsealed"
    );

    // Delete: the SealedSecret goes, its Secret is garbage-collected.
    fixture
        .sealed_secrets(namespace)
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the owned Secret garbage-collected", || async {
        secrets.get_opt("api").await.unwrap().is_none()
    })
    .await;

    let log = controller.log().to_lowercase();
    assert!(
        // kube-rs reports a denial as `… is forbidden: … code: 403`; a bare
        // "403" would also match timestamps such as 45.403161Z.
        !log.contains("forbidden") && !log.contains("code: 403"),
        "the controller hit a permission error:\n{}",
        controller.log()
    );
}

/// Someone changes the public-key ConfigMap: the controller, as the
/// chart's ServiceAccount, restores it and says so with a Warning Event in
/// its own namespace, with no permission error (in namespaced mode no
/// other rule covers that namespace).
async fn public_keys_restored(fixture: &Fixture, controller: &Controller) {
    let config_maps: Api<ConfigMap> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    let before = config_maps.get("kseal-public-keys").await.unwrap().data;
    config_maps
        .patch(
            "kseal-public-keys",
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"recipients.txt": "# emptied\n"}})),
        )
        .await
        .unwrap();
    eventually("the public keys restored", || async {
        config_maps.get("kseal-public-keys").await.unwrap().data == before
    })
    .await;
    let events: Api<Event> = Api::namespaced(fixture.client.clone(), NAMESPACE);
    eventually("a PublicKeysRestored event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("PublicKeysRestored"))
    })
    .await;
    let log = controller.log().to_lowercase();
    assert!(
        !log.contains("forbidden") && !log.contains("code: 403"),
        "the controller hit a permission error:\n{}",
        controller.log()
    );
}

/// Namespaced mode: the ServiceAccount deletes no Secret outside the
/// namespaces it watches, its key Secrets included. (In cluster-wide mode
/// the ClusterRole's `delete` reaches every namespace, as its `update`
/// always did: charts/kseal/README.md.)
async fn deletes_only_where_it_watches(fixture: &Fixture, sa: &Client) {
    let key_name = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let ns_secrets: Api<Secret> = Api::namespaced(sa.clone(), NAMESPACE);
    let other_secrets: Api<Secret> = Api::namespaced(sa.clone(), "other");
    assert!(is_forbidden(
        &ns_secrets.delete(&key_name, &DeleteParams::default()).await
    ));
    assert!(is_forbidden(
        &other_secrets
            .delete("unrelated", &DeleteParams::default())
            .await
    ));
}

/// With restarts off (the chart's default), no access to workloads at all.
async fn no_workload_access(sa: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(sa.clone(), "app");
    let merge = json!({"spec": {"template": {"metadata": {"annotations": {"touched": "yes"}}}}});
    assert!(is_forbidden(
        &deployments.list(&ListParams::default()).await
    ));
    assert!(is_forbidden(
        &deployments
            .patch("web", &PatchParams::default(), &Patch::Merge(&merge))
            .await
    ));
    assert!(is_forbidden(
        &Api::<DaemonSet>::namespaced(sa.clone(), "app")
            .list(&ListParams::default())
            .await
    ));
}

/// What no mode grants the ServiceAccount.
async fn never_granted(fixture: &Fixture, sa: &Client) {
    let other_secrets: Api<Secret> = Api::namespaced(sa.clone(), "other");
    let app_secrets: Api<Secret> = Api::namespaced(sa.clone(), "app");
    let configmaps: Api<ConfigMap> = Api::namespaced(sa.clone(), NAMESPACE);
    let leases: Api<Lease> = Api::namespaced(sa.clone(), NAMESPACE);
    let sealed_app: Api<SealedSecret> = Api::namespaced(sa.clone(), "app");
    let bindings: Api<RoleBinding> = Api::namespaced(sa.clone(), NAMESPACE);
    let merge = json!({"metadata": {"labels": {"touched": "yes"}}});
    // Deleting Secrets where it reconciles: yes, to re-create one whose
    // type changes (see deletes_only_where_it_watches for namespaced mode).
    let dry_run = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    let deleted = app_secrets.delete("db", &dry_run).await;
    assert!(deleted.is_ok(), "{:?}", deleted.err());
    // Patching Secrets outside its own namespace.
    assert!(is_forbidden(
        &other_secrets
            .patch("unrelated", &PatchParams::default(), &Patch::Merge(&merge))
            .await
    ));
    // ConfigMaps other than its public-key ConfigMap, even in its namespace.
    assert!(is_forbidden(&configmaps.get("unrelated").await));
    assert!(is_forbidden(&configmaps.list(&ListParams::default()).await));
    assert!(is_forbidden(
        &configmaps
            .patch("unrelated", &PatchParams::default(), &Patch::Merge(&merge))
            .await
    ));
    assert!(is_forbidden(
        &Api::<ConfigMap>::namespaced(sa.clone(), "other")
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap()
            )
            .await
    ));
    // Another Lease.
    assert!(is_forbidden(&leases.get("someone-elses-lease").await));
    // SealedSecrets: no create, no spec changes, no delete.
    let sealed = seal(
        &plain("app", "forged", &[("k", "v")]),
        Scope::Strict,
        &fixture.recipients().await,
    );
    assert!(is_forbidden(
        &sealed_app.create(&PostParams::default(), &sealed).await
    ));
    assert!(is_forbidden(
        &sealed_app
            .patch("db", &PatchParams::default(), &Patch::Merge(&merge))
            .await
    ));
    assert!(is_forbidden(
        &sealed_app.delete("db", &DeleteParams::default()).await
    ));
    // No escalation.
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "escalate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}]
    }))
    .unwrap();
    assert!(is_forbidden(
        &bindings.create(&PostParams::default(), &binding).await
    ));
}

/// A non-admin user seals with the cluster's public keys, may reach the
/// controller through the service proxy, and cannot read the key Secrets.
async fn non_admin_user(fixture: &Fixture) {
    let alice = fixture.cp.mint_user("alice", &["developers"]).unwrap();
    let alice_client = alice.client().await.unwrap();
    let kubeconfig = alice.kubeconfig.to_str().unwrap();
    let (code, keys, err) = kseal(
        &fixture.dir,
        &["fetch-keys", "--kubeconfig", kubeconfig],
        None,
    );
    assert_eq!(code, 0, "fetch-keys as alice: {err}");
    assert!(keys.lines().any(|l| l.starts_with("age1")), "{keys}");
    let secret_yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: alices\n  namespace: app\nstringData:\n  k: v\n";
    let (code, sealed_yaml, err) = kseal(
        &fixture.dir,
        &["seal", "--kubeconfig", kubeconfig],
        Some(secret_yaml),
    );
    assert_eq!(code, 0, "seal as alice: {err}");
    let doc = &manifests::parse_docs(&sealed_yaml)[0];
    let sealed: SealedSecret = serde_json::from_value(doc.clone()).unwrap();
    fixture.apply(&sealed).await;
    assert_eq!(
        fixture.wait_ready("app", "alices", "True").await,
        "Unsealed"
    );

    let secrets: Api<Secret> = Api::namespaced(alice_client.clone(), NAMESPACE);
    let key_name = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    assert!(is_forbidden(&secrets.get(&key_name).await));
    assert!(is_forbidden(&secrets.list(&ListParams::default()).await));
    assert!(is_forbidden(
        &Api::<ConfigMap>::namespaced(alice_client.clone(), NAMESPACE)
            .get("unrelated")
            .await
    ));
    assert!(is_forbidden(
        &Api::<ConfigMap>::namespaced(alice_client.clone(), NAMESPACE)
            .patch(
                "kseal-public-keys",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {"x": "y"}}}))
            )
            .await
    ));
    // The service proxy to the controller's http port, and nothing else.
    let admin = &fixture.client;
    assert!(
        allowed(
            admin,
            sar(
                &alice,
                "create",
                "services",
                "proxy",
                NAMESPACE,
                "kseal-controller:http"
            )
        )
        .await
    );
    assert!(
        allowed(
            admin,
            sar(
                &alice,
                "get",
                "services",
                "proxy",
                NAMESPACE,
                "kseal-controller:http"
            )
        )
        .await
    );
    assert!(
        !allowed(
            admin,
            sar(
                &alice,
                "create",
                "services",
                "proxy",
                NAMESPACE,
                "other:http"
            )
        )
        .await
    );
    assert!(
        !allowed(
            admin,
            sar(
                &alice,
                "create",
                "services",
                "proxy",
                "app",
                "kseal-controller:http"
            )
        )
        .await
    );
    // The proxy request itself is authorized (no endpoint answers here: the
    // controller runs outside the cluster, so the proxy fails with 503).
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{NAMESPACE}/services/kseal-controller:http/proxy/v1/verify"
    ))
    .header("content-type", "application/yaml")
    .body(sealed_yaml.into_bytes())
    .unwrap();
    let result = alice_client.request_text(request).await;
    assert!(!is_forbidden(&result), "{result:?}");
}

/// A key operator (the chart's key-operator role) requests rotations, and
/// cannot change what `kseal seal` trusts as the cluster's keys: appending
/// their own recipient to the public-key ConfigMap would have made every
/// later value readable to them.
async fn key_operator(fixture: &Fixture) {
    let olivia = fixture
        .cp
        .mint_user("olivia", &["kseal-operators"])
        .unwrap();
    let client = olivia.client().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let own = kseal_shared::x25519::Identity::generate();
    let public = config_maps.get("kseal-public-keys").await.unwrap();
    let appended = format!(
        "{}{}\n",
        public.data.as_ref().unwrap()["recipients.txt"],
        own.recipient()
    );
    for patch in [
        json!({"data": {"recipients.txt": appended}}),
        json!({"metadata": {"annotations": {"x": "y"}}}),
    ] {
        assert!(is_forbidden(
            &config_maps
                .patch(
                    "kseal-public-keys",
                    &PatchParams::default(),
                    &Patch::Merge(&patch)
                )
                .await
        ));
    }
    assert!(is_forbidden(
        &config_maps
            .replace("kseal-public-keys", &PostParams::default(), &public)
            .await
    ));
    assert!(is_forbidden(
        &config_maps
            .delete("kseal-public-keys", &DeleteParams::default())
            .await
    ));
    // What the role is for: a rotation, through the key-operations ConfigMap.
    let before = fixture.recipients().await;
    let kubeconfig = olivia.kubeconfig.to_str().unwrap();
    let (code, _, err) = kseal(
        &fixture.dir,
        &["keys", "rotate", "--kubeconfig", kubeconfig],
        None,
    );
    assert_eq!(code, 0, "kseal keys rotate as a key operator: {err}");
    assert_ne!(fixture.recipients().await, before);
    // Nothing else of kseal's: no key Secret, no other ConfigMap.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    assert!(is_forbidden(&secrets.list(&ListParams::default()).await));
    assert!(is_forbidden(&config_maps.get("unrelated").await));
}

async fn bystanders(fixture: &Fixture) {
    for ns in ["app", "other"] {
        fixture.namespace(ns).await;
    }
    fixture
        .secrets("other")
        .create(&PostParams::default(), &secret("other", "unrelated"))
        .await
        .unwrap();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "unrelated"}, "data": {"a": "b"}}))
            .unwrap();
    Api::<ConfigMap>::namespaced(fixture.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

/// Default (cluster-wide) mode, with leader election on.
#[tokio::test]
async fn chart_rbac_cluster_wide_mode() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let started = Instant::now();
    bystanders(&fixture).await;
    let controller = install(
        &fixture,
        &[
            "leaderElection.enabled=true",
            "rbac.keyOperatorSubjects[0].kind=Group",
            "rbac.keyOperatorSubjects[0].name=kseal-operators",
            "rbac.keyOperatorSubjects[0].apiGroup=rbac.authorization.k8s.io",
        ],
        &["--leader-elect", "--key-renew-period", "0"],
    )
    .await;
    drive_lifecycle(&fixture, &controller, "app").await;
    public_keys_restored(&fixture, &controller).await;
    let identity = fixture.cp.mint_service_account(NAMESPACE, SA).unwrap();
    let sa = identity.client().await.unwrap();
    never_granted(&fixture, &sa).await;
    no_workload_access(&sa).await;
    // What this mode does grant, as documented in the chart's README: every
    // Secret in the cluster can be read (GET by name and list/watch cannot
    // be limited to kseal's own Secrets by RBAC).
    let other: Api<Secret> = Api::namespaced(sa.clone(), "other");
    assert!(other.get("unrelated").await.is_ok());
    let leases: Api<Lease> = Api::namespaced(sa.clone(), NAMESPACE);
    assert!(leases.get("kseal-controller").await.is_ok());
    non_admin_user(&fixture).await;
    key_operator(&fixture).await;
    eprintln!("cluster-wide RBAC scenario: {:.1?}", started.elapsed());
}

/// Namespaced mode (`watchNamespaces`): the controller works in `app` and
/// can neither read nor write Secrets anywhere else.
#[tokio::test]
async fn chart_rbac_namespaced_mode() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let started = Instant::now();
    bystanders(&fixture).await;
    let controller = install(
        &fixture,
        &["replicaCount=2", "watchNamespaces={app}"],
        &[
            "--leader-elect",
            "--key-renew-period",
            "0",
            "--watch-namespaces",
            "app",
        ],
    )
    .await;
    drive_lifecycle(&fixture, &controller, "app").await;
    public_keys_restored(&fixture, &controller).await;
    let identity = fixture.cp.mint_service_account(NAMESPACE, SA).unwrap();
    let sa = identity.client().await.unwrap();
    never_granted(&fixture, &sa).await;
    no_workload_access(&sa).await;
    deletes_only_where_it_watches(&fixture, &sa).await;

    // No Secret outside `app` and its own namespace: not read, not listed,
    // not written.
    let other: Api<Secret> = Api::namespaced(sa.clone(), "other");
    assert!(is_forbidden(&other.get("unrelated").await));
    assert!(is_forbidden(&other.list(&ListParams::default()).await));
    assert!(is_forbidden(
        &other
            .create(&PostParams::default(), &secret("other", "planted"))
            .await
    ));
    assert!(is_forbidden(
        &Api::<Secret>::namespaced(sa.clone(), "kube-system")
            .create(&PostParams::default(), &secret("kube-system", "planted"))
            .await
    ));
    assert!(is_forbidden(
        &Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        &Api::<SealedSecret>::all(sa.clone())
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        &Api::<SealedSecret>::namespaced(sa.clone(), "other")
            .list(&ListParams::default())
            .await
    ));

    // A SealedSecret in an unwatched namespace is left alone.
    let recipients = fixture.recipients().await;
    fixture
        .apply(&seal(
            &plain("other", "ignored", &[("k", "v")]),
            Scope::Strict,
            &recipients,
        ))
        .await;
    let sealed_app = seal(
        &plain("app", "after", &[("k", "v")]),
        Scope::Strict,
        &recipients,
    );
    fixture.apply(&sealed_app).await;
    fixture.wait_ready("app", "after", "True").await;
    assert!(
        fixture
            .secrets("other")
            .get_opt("ignored")
            .await
            .unwrap()
            .is_none()
    );
    let ignored = fixture
        .sealed_secrets("other")
        .get("ignored")
        .await
        .unwrap();
    // Untouched: the status is the CRD's default, `{}`.
    assert_eq!(
        ignored.status.unwrap_or_default(),
        SealedSecretStatus::default()
    );

    non_admin_user(&fixture).await;
    eprintln!("namespaced RBAC scenario: {:.1?}", started.elapsed());
}

/// `rollout.enabled=true` (namespaced): the controller, as the chart's
/// ServiceAccount, restarts a Deployment that reads a changed key, and
/// may list and patch Deployments, StatefulSets and DaemonSets in the
/// namespace it watches, nothing more: no create, update or delete of
/// them, no other kind, nothing in another namespace.
#[tokio::test]
async fn chart_rbac_rollout_restarts() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    bystanders(&fixture).await;
    let web = |namespace: &str| -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web",
                        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]}
                }
            }
        }))
        .unwrap()
    };
    for namespace in ["app", "other"] {
        Api::<Deployment>::namespaced(fixture.client.clone(), namespace)
            .create(&PostParams::default(), &web(namespace))
            .await
            .unwrap();
    }
    let _controller = install(
        &fixture,
        &[
            "watchNamespaces={app}",
            "rollout.enabled=true",
            "rollout.batchWindow=1s",
        ],
        &[
            "--key-renew-period",
            "0",
            "--watch-namespaces",
            "app",
            "--rollout-restarts",
            "--rollout-batch-window",
            "1s",
        ],
    )
    .await;
    let identity = fixture.cp.mint_service_account(NAMESPACE, SA).unwrap();
    let sa = identity.client().await.unwrap();

    // The restart works with what the chart grants.
    let recipients = fixture.recipients().await;
    let db = |password: &str| {
        let mut sealed = seal(
            &plain("app", "db", &[("password", password)]),
            Scope::Strict,
            &recipients,
        );
        sealed.spec.rollout = Some("EnvConsumers".into());
        sealed
    };
    fixture.apply(&db("first")).await;
    fixture.wait_ready("app", "db", "True").await;
    fixture.apply(&db("second")).await;
    let deployments: Api<Deployment> = Api::namespaced(fixture.client.clone(), "app");
    eventually("the Deployment restarted", || async {
        deployments
            .get("web")
            .await
            .unwrap()
            .spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .is_some_and(|a| {
                a.get("kseal.dev/restarted-for").map(String::as_str) == Some("db: password")
            })
    })
    .await;

    never_granted(&fixture, &sa).await;
    // Granted: list and patch of the three kinds where it watches.
    let dry_run = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let merge = json!({"spec": {"template": {"metadata": {"annotations": {"touched": "yes"}}}}});
    let app: Api<Deployment> = Api::namespaced(sa.clone(), "app");
    app.list(&ListParams::default()).await.unwrap();
    app.patch("web", &dry_run, &Patch::Merge(&merge))
        .await
        .unwrap();
    Api::<StatefulSet>::namespaced(sa.clone(), "app")
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<DaemonSet>::namespaced(sa.clone(), "app")
        .list(&ListParams::default())
        .await
        .unwrap();
    // Not granted: reading one by name, create, replace, delete; other
    // kinds; other namespaces.
    assert!(is_forbidden(&app.get("web").await));
    assert!(is_forbidden(
        &app.create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &web("app")
        )
        .await
    ));
    assert!(is_forbidden(
        &app.replace(
            "web",
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &web("app")
        )
        .await
    ));
    assert!(is_forbidden(
        &app.delete(
            "web",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            }
        )
        .await
    ));
    assert!(is_forbidden(
        &Api::<Pod>::namespaced(sa.clone(), "app")
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        &Api::<ReplicaSet>::namespaced(sa.clone(), "app")
            .list(&ListParams::default())
            .await
    ));
    let other: Api<Deployment> = Api::namespaced(sa.clone(), "other");
    assert!(is_forbidden(&other.list(&ListParams::default()).await));
    assert!(is_forbidden(
        &other.patch("web", &dry_run, &Patch::Merge(&merge)).await
    ));
    assert!(is_forbidden(
        &Api::<Deployment>::all(sa.clone())
            .list(&ListParams::default())
            .await
    ));
}
