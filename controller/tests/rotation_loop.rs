//! The whole rotation loop on a real node (issue #27), with the commands of
//! docs/runbooks/rotating-a-credential.md run verbatim: the chart with
//! restarts on, a credential generated and sealed by the CLI (never seen),
//! overdue, replaced by `kseal regenerate --due --in-place .` (the chosen
//! `username`, due too, sealed again with `kseal seal --merge-into`),
//! applied with kubectl; then the workloads as the kubelet runs them:
//!
//! * `api` reads `password` through env: the controller restarts it, and
//!   its new pod sees the new value;
//! * `backup` mounts the Secret as files: it is not restarted, and its file
//!   changes to the new value in the same pod;
//! * `audit` reads only `username`: it keeps its pod.
//!
//! Each workload runs the probe image (tests/testenv/probe/probe.c), which
//! reports SHA-256 digests of what it reads into a hostPath directory this
//! test reads on the host; the test compares them with digests of the
//! Secret's values, which it reads with the admin client and never prints.
//! No value appears in any CLI output, controller log, Event, workload
//! annotation or probe output. `RotationDue` is `True` while the value is
//! overdue and `False` after the rotation. The controller Pod's own token
//! may list and patch workloads only with `rollout.enabled`, only in the
//! watched namespace, and never create, update or delete them or patch
//! Pods. With restarts switched off again, the runbook's restart by hand
//! does the job.
//!
//! `spec.maxAge` counts in hours at the least (`1h`), too long to wait in a
//! test: the first value is sealed with the CLI's clock set 91 days back
//! (an `LD_PRELOAD` shim on `clock_gettime`, see [`CLOCK_SHIM`]), so the
//! runbook's `max_age: 90d` finds it overdue. Everything after that runs on
//! the real clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/in_cluster.rs"]
mod in_cluster;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use in_cluster::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kseal_shared::contract::{RESTARTED_AT_ANNOTATION, RESTARTED_FOR_ANNOTATION};
use kseal_shared::envelope::SealedValue;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_testenv::probe::{self, Report};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const RUNBOOK: &str = include_str!("../../docs/runbooks/rotating-a-credential.md");

/// The release's namespace, the watched one, and one it does not watch.
const NS: &str = "kseal-system";
const APP: &str = "app";
const ELSEWHERE: &str = "elsewhere";

// The runbook's commands and files, each checked verbatim against it.
const KSEAL_YAML: &str = "creation_rules:
  - path_regex: ^clusters/prod/
    recipients_file: keys/prod.txt
    context: prod
    scope: strict
    max_age: 90d
";
const HELM_ROLLOUT_ON: &str = "helm upgrade kseal oci://ghcr.io/kseal-dev/charts/kseal --version 0.1.0 --namespace kseal-system --reuse-values --set rollout.enabled=true";
const SEAL: &str = "kseal seal --name db --namespace app --from-literal username=app --generate password=alnum:32 --rollout EnvConsumers -o clusters/prod/app/db.sealed.yaml";
const SEALED_FILE: &str = "clusters/prod/app/db.sealed.yaml";
const APPLY: &str = "kubectl apply -f clusters/prod/app/db.sealed.yaml";
const REGENERATE_DUE: &str = "kseal regenerate --due --in-place .";
const RESEAL_CHOSEN: &str = "kseal seal --name db --namespace app --from-literal username=app --merge-into clusters/prod/app/db.sealed.yaml";
const ROTATION_DUE: &str = r#"kubectl get sealedsecret db -n app -o jsonpath='{.status.conditions[?(@.type=="RotationDue")].status}'"#;
const RESTARTED_EVENTS: &str = "kubectl get events -n app --field-selector reason=Restarted";
const ANNOTATIONS: &str =
    "kubectl get deployment api -n app -o jsonpath='{.spec.template.metadata.annotations}'";
const ROLLOUT_STATUS: &str = "kubectl rollout status deployment/api -n app";
const DISABLED_EVENTS: &str = "kubectl get events -n app --field-selector reason=RolloutDisabled";
const RESTART_BY_HAND: &str = "kubectl rollout restart deployment/api -n app";
const REGENERATE_NOW: &str =
    "kseal regenerate --key password --in-place clusters/prod/app/db.sealed.yaml";

/// The first value is sealed this long ago: past the runbook's `90d`.
const SEALED_AGO_SECONDS: i64 = 91 * 86_400;
/// How long the kubelet may take to update a mounted Secret's files: its
/// sync period (1 minute by default, the node's config leaves it) plus
/// jitter and its cache, with room for a loaded machine.
const FILE_UPDATE_WAIT: Duration = Duration::from_secs(240);
/// Long enough after a restart for a wrong one to have happened too (the
/// batch window is 5 s).
const SETTLE: Duration = Duration::from_secs(8);

/// An `LD_PRELOAD` library that moves `CLOCK_REALTIME` back by
/// `KSEAL_TEST_CLOCK_BACK` seconds for the process it is loaded into (the
/// CLI, dynamically linked: Rust's `SystemTime::now` calls libc's
/// `clock_gettime`).
const CLOCK_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
int clock_gettime(clockid_t id, struct timespec *ts) {
  static int (*real)(clockid_t, struct timespec *);
  if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
  int r = real(id, ts);
  const char *back = getenv("KSEAL_TEST_CLOCK_BACK");
  if (r == 0 && back && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
    ts->tv_sec -= atol(back);
  return r;
}
"#;

#[tokio::test]
async fn a_generated_credential_rotates_and_its_consumers_follow() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let c = &cluster;
    let total = Instant::now();
    let mut shown = Shown::default();
    let probe_image = tokio::task::spawn_blocking(probe::ensure)
        .await
        .unwrap()
        .unwrap();
    c.cp.node()
        .unwrap()
        .import_image(&probe_image.archive)
        .unwrap();
    for ns in [APP, ELSEWHERE] {
        c.namespace(ns).await;
    }
    let reports = c.dir().join("probe-reports");
    std::fs::create_dir(&reports).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The probes run as 65532.
        std::fs::set_permissions(&reports, std::fs::Permissions::from_mode(0o777)).unwrap();
    }

    // The chart's defaults, watching `app`: restarts off, no access to
    // workloads at all.
    let t = Instant::now();
    c.helm_release("install", "kseal", NS, TAG_1, &["watchNamespaces={app}"]);
    let pod = controller_pod(c, false).await;
    let recipients = c.recipients(NS).await;
    eprintln!("helm install to Ready: {:.1}s", t.elapsed().as_secs_f64());
    check_rollout_refused(c, &pod, APP).await;

    // Step 1: restarts on, with the runbook's helm command.
    let t = Instant::now();
    helm_step(c, HELM_ROLLOUT_ON);
    let controller = controller_pod(c, true).await;
    eprintln!(
        "helm upgrade (rollout on) to Ready: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // The repository: .kseal.yaml (step 2) pins the cluster's key.
    let repo = c.dir().join("repo");
    std::fs::create_dir_all(repo.join("keys")).unwrap();
    std::fs::create_dir_all(repo.join("clusters/prod/app")).unwrap();
    assert!(RUNBOOK.contains(KSEAL_YAML), "the runbook's .kseal.yaml");
    std::fs::write(repo.join(".kseal.yaml"), KSEAL_YAML).unwrap();
    std::fs::write(
        repo.join("keys/prod.txt"),
        format!("# the prod cluster's public key\n{}\n", recipients[0]),
    )
    .unwrap();

    // Step 3: seal, on a clock 91 days back.
    let shim = clock_shim(c.dir());
    let (code, out, err) = kseal_step(&repo, SEAL, Some((&shim, SEALED_AGO_SECONDS)));
    shown.add("kseal seal", &out, &err);
    assert_eq!(code, 0, "kseal seal failed: {err}");
    let sealed_path = repo.join(SEALED_FILE);
    let first = read_sealed(&sealed_path);
    assert_eq!(first.spec.max_age.as_deref(), Some("90d"));
    assert_eq!(
        first.spec.generated.get("password").map(String::as_str),
        Some("alnum:32")
    );
    assert!(!first.spec.generated.contains_key("username"));
    let ago = jiff::Timestamp::now().as_second() - sealed_at(&first, "password");
    assert!(
        (SEALED_AGO_SECONDS - 600..SEALED_AGO_SECONDS + 600).contains(&ago),
        "the clock shim did not take: sealed {ago}s ago"
    );

    // Step 4: restarts asked for by --rollout in step 3.
    let first = read_sealed(&sealed_path);
    assert_eq!(first.spec.rollout.as_deref(), Some("EnvConsumers"));

    // Step 5: apply. The Secret appears; the value is overdue.
    let (ok, out, err) = kubectl_step(c, &repo, APPLY, &[]);
    shown.add("kubectl apply", &out, &err);
    assert!(ok, "{err}");
    let old = wait_password(c, None).await;
    let username = secret_value(c, "username").await.unwrap();
    assert_eq!(username, b"app");
    wait_rotation_due(c, "True", "ValuesOverdue").await;
    let (ok, out, err) = kubectl_step(c, &repo, ROTATION_DUE, &[]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "True");

    // The consumers, and one in a namespace the controller does not watch.
    let t = Instant::now();
    for (name, spec) in workloads(&probe_image.name, &reports) {
        create_deployment(c, APP, name, 1, spec).await;
    }
    let (_, env_api) = &workloads(&probe_image.name, &reports)[0];
    create_deployment(c, ELSEWHERE, "api", 0, env_api.clone()).await;
    let api_before = wait_probe(c, &reports, "api", |_, r| r.env == digest(&old)).await;
    let backup_before = wait_probe(c, &reports, "backup", |_, r| r.file == digest(&old)).await;
    let audit_before = wait_probe(c, &reports, "audit", |_, r| r.env == digest(&username)).await;
    assert_eq!(api_before.1.file, "unreadable");
    assert_eq!(backup_before.1.env, "unset");
    eprintln!("consumers Running: {:.1}s", t.elapsed().as_secs_f64());

    // What the controller's own token may do with restarts on.
    check_rollout_privilege(c, &controller).await;

    // Step 6: the scheduled job.
    let before = std::fs::read_to_string(&sealed_path).unwrap();
    let (code, out, err) = kseal_step(&repo, REGENERATE_DUE, None);
    shown.add("kseal regenerate --due", &out, &err);
    assert_eq!(code, 0, "kseal regenerate --due failed: {err}");
    assert!(err.contains("password"), "the summary names the key: {err}");
    let rotated = read_sealed(&sealed_path);
    assert_ne!(
        rotated.spec.encrypted_data["password"],
        first.spec.encrypted_data["password"]
    );
    assert_eq!(
        rotated.spec.encrypted_data["username"], first.spec.encrypted_data["username"],
        "a value kseal did not generate stays byte for byte"
    );
    assert_eq!(rotated.spec.rollout, first.spec.rollout);
    assert_eq!(rotated.spec.max_age, first.spec.max_age);
    assert_eq!(rotated.spec.generated, first.spec.generated);
    assert!((jiff::Timestamp::now().as_second() - sealed_at(&rotated, "password")).abs() < 600);
    let after = std::fs::read_to_string(&sealed_path).unwrap();
    assert_eq!(
        changed_lines(&before, &after),
        1,
        "only the password's line"
    );
    // Nothing generated is due any more: a second run changes nothing.
    let (code, out, err) = kseal_step(&repo, REGENERATE_DUE, None);
    shown.add("kseal regenerate --due (again)", &out, &err);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&sealed_path).unwrap(), after);
    // The username, chosen and sealed with the password, is due too and
    // left alone; sealed again by hand as the runbook says.
    assert!(
        err.contains("username") && err.contains("not generated by kseal"),
        "{err}"
    );
    let (code, out, err) = kseal_step(&repo, RESEAL_CHOSEN, None);
    shown.add("kseal seal --merge-into", &out, &err);
    assert_eq!(code, 0, "kseal seal --merge-into failed: {err}");
    let resealed = read_sealed(&sealed_path);
    assert_eq!(
        resealed.spec.encrypted_data["password"],
        rotated.spec.encrypted_data["password"]
    );
    assert!((jiff::Timestamp::now().as_second() - sealed_at(&resealed, "username")).abs() < 600);
    assert_eq!(resealed.spec.rollout, first.spec.rollout);
    assert_eq!(resealed.spec.max_age, first.spec.max_age);
    assert_eq!(resealed.spec.generated, first.spec.generated);
    let rotated_text = after;
    let after = std::fs::read_to_string(&sealed_path).unwrap();
    assert_eq!(
        changed_lines(&rotated_text, &after),
        1,
        "only the username's line"
    );

    // Step 5 again, after the merge: apply.
    let t = Instant::now();
    let (ok, out, err) = kubectl_step(c, &repo, APPLY, &[]);
    shown.add("kubectl apply (rotated)", &out, &err);
    assert!(ok, "{err}");
    let new = wait_password(c, Some(&old)).await;
    assert_eq!(new.len(), 32);
    assert!(new.iter().all(u8::is_ascii_alphanumeric));

    // The env consumer: a new pod that reads the new value.
    let (api_pod, api_report) = wait_probe(c, &reports, "api", |p, r| {
        p.metadata.uid != api_before.0.metadata.uid && r.env == digest(&new)
    })
    .await;
    eprintln!(
        "apply -> api restarted with the new value: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert!(api_report.started >= api_before.1.started);
    let (ok, out, err) = kubectl_step(c, &repo, ROLLOUT_STATUS, &["--timeout=180s"]);
    shown.add("kubectl rollout status", &out, &err);
    assert!(ok, "{err}");
    let api_uid = &api_pod.metadata.uid;
    until("api's old pod gone", WAIT, || async move {
        let pods = workload_pods(c, APP, "api").await;
        (pods.len() == 1 && &pods[0].metadata.uid == api_uid).then_some(())
    })
    .await;
    let annotations = template_annotations(c, APP, "api").await;
    let at = annotations
        .get(RESTARTED_AT_ANNOTATION)
        .expect("restarted-at on api");
    let at: jiff::Timestamp = at.parse().unwrap();
    assert!((jiff::Timestamp::now().as_second() - at.as_second()).abs() < 600);
    assert_eq!(
        annotations
            .get(RESTARTED_FOR_ANNOTATION)
            .map(String::as_str),
        Some("db: password")
    );
    let (ok, out, err) = kubectl_step(c, &repo, ANNOTATIONS, &[]);
    shown.add("kubectl get deployment annotations", &out, &err);
    assert!(ok, "{err}");
    assert!(out.contains(RESTARTED_AT_ANNOTATION), "{out}");
    assert!(out.contains("db: password"), "{out}");

    // The file consumer: the same pod, the same process, the new file.
    let t = Instant::now();
    let (backup_pod, backup_report) =
        wait_probe_for(c, &reports, "backup", FILE_UPDATE_WAIT, |_, r| {
            r.file == digest(&new)
        })
        .await;
    eprintln!(
        "backup's file updated in place: {:.1}s after api's restart",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(backup_pod.metadata.uid, backup_before.0.metadata.uid);
    assert_eq!(backup_report.uid, backup_before.1.uid);
    assert_eq!(backup_report.started, backup_before.1.started);
    assert_eq!(restarts(&backup_pod), 0);
    assert_eq!(workload_pods(c, APP, "backup").await.len(), 1);
    assert_eq!(replica_sets(c, "backup").await, 1);
    assert_no_restart_annotation(c, APP, "backup").await;

    // The consumer of another key: untouched.
    tokio::time::sleep(SETTLE.saturating_sub(t.elapsed())).await;
    let audit = workload_pods(c, APP, "audit").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].metadata.uid, audit_before.0.metadata.uid);
    assert_eq!(restarts(&audit[0]), 0);
    let audit_report = read_report(&reports, &audit[0]).unwrap();
    assert_eq!(audit_report.env, digest(&username));
    assert_eq!(audit_report.started, audit_before.1.started);
    assert_eq!(replica_sets(c, "audit").await, 1);
    assert_no_restart_annotation(c, APP, "audit").await;
    assert_no_restart_annotation(c, ELSEWHERE, "api").await;
    assert_eq!(replica_sets(c, "api").await, 2);

    // RotationDue is False again.
    wait_rotation_due(c, "False", "ValuesFresh").await;
    let (ok, out, err) = kubectl_step(c, &repo, ROTATION_DUE, &[]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "False");

    // One Restarted Event on the SealedSecret, one on api, none for the
    // others.
    let restarted = events(c, APP, "Restarted").await;
    let about = |kind: &str, name: &str| {
        restarted
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some(kind)
                    && e.involved_object.name.as_deref() == Some(name)
            })
            .map(|e| e.message.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        about("SealedSecret", "db"),
        ["restarted Deployment api, which read password (env DB_PASSWORD in container app)"]
    );
    assert_eq!(
        about("Deployment", "api"),
        [
            "kseal restarted the pods: SealedSecret db changed password (env DB_PASSWORD in container app)"
        ]
    );
    assert_eq!(restarted.len(), 2, "{restarted:?}");
    assert!(RUNBOOK.contains(
        "(`restarted Deployment api, which read password (env DB_PASSWORD in\ncontainer app)`)"
    ));
    let (ok, out, err) = kubectl_step(c, &repo, RESTARTED_EVENTS, &[]);
    shown.add("kubectl get events (Restarted)", &out, &err);
    assert!(ok, "{err}");
    assert!(
        out.contains("Restarted") && out.contains("restarted Deployment api"),
        "{out}"
    );
    let metrics = c.service_proxy_get(NS, "/metrics").await;
    assert!(
        metrics.contains(r#"kseal_workload_restarts_total{kind="Deployment",result="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kseal_workload_restarts_total{kind="Deployment",result="failed"} 0"#),
        "{metrics}"
    );
    assert!(metrics.contains("kseal_values_overdue 0"), "{metrics}");
    shown.add("metrics", &metrics, "");

    // The controller's log says what it restarted, and no value.
    let log = controller_log(c, &controller);
    assert!(
        log.contains("restarted a workload that read changed Secret keys"),
        "{log}"
    );
    shown.add("controller log (restarts on)", &log, "");

    // Restarts off: the default chart again. The token loses its access;
    // a rotation now (the runbook's "rotate now") gets a RolloutDisabled
    // Warning, and the runbook's restart by hand does the job.
    let t = Instant::now();
    c.helm_release("upgrade", "kseal", NS, TAG_1, &["watchNamespaces={app}"]);
    let controller_off = controller_pod(c, false).await;
    check_rollout_refused(c, &controller_off, APP).await;
    let (code, out, err) = kseal_step(&repo, REGENERATE_NOW, None);
    shown.add("kseal regenerate --key", &out, &err);
    assert_eq!(code, 0, "kseal regenerate --key failed: {err}");
    let (ok, out, err) = kubectl_step(c, &repo, APPLY, &[]);
    shown.add("kubectl apply (rotated by hand)", &out, &err);
    assert!(ok, "{err}");
    let third = wait_password(c, Some(&new)).await;
    let disabled = until("a RolloutDisabled Warning", WAIT, || async move {
        let found = events(c, APP, "RolloutDisabled").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert!(disabled.iter().all(|e| {
        e.type_.as_deref() == Some("Warning")
            && e.involved_object.name.as_deref() == Some("db")
            && e.message.as_deref().is_some_and(|m| m.contains("password"))
    }));
    let (ok, out, err) = kubectl_step(c, &repo, DISABLED_EVENTS, &[]);
    shown.add("kubectl get events (RolloutDisabled)", &out, &err);
    assert!(ok && out.contains("RolloutDisabled"), "{out}{err}");
    // Not restarted by the controller: api still runs the pod with the
    // previous value.
    tokio::time::sleep(SETTLE).await;
    let pods = workload_pods(c, APP, "api").await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].metadata.uid, api_pod.metadata.uid);
    assert_eq!(read_report(&reports, &pods[0]).unwrap().env, digest(&new));
    let (ok, out, err) = kubectl_step(c, &repo, RESTART_BY_HAND, &[]);
    shown.add("kubectl rollout restart", &out, &err);
    assert!(ok, "{err}");
    wait_probe(c, &reports, "api", |p, r| {
        p.metadata.uid != api_pod.metadata.uid && r.env == digest(&third)
    })
    .await;
    eprintln!(
        "restarts off, rotated and restarted by hand: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // No value anywhere: CLI output, controller logs, Events, workloads
    // (annotations and all), the SealedSecret, what the probes wrote and
    // printed, the repository.
    shown.add(
        "controller log (restarts off)",
        &controller_log(c, &controller_off),
        "",
    );
    sweep(c, &mut shown, &reports).await;
    shown.add(
        "the repository's file",
        &std::fs::read_to_string(&sealed_path).unwrap(),
        "",
    );
    shown.assert_free_of(&[&old, &new, &third]);
    eprintln!("rotation loop: {:.1}s", total.elapsed().as_secs_f64());
}

/// Adds what the cluster stores and the probes wrote to `shown`: every
/// Event of the test's namespaces, the workloads (Deployments, ReplicaSets
/// and Pods, annotations and all), the SealedSecret, the probe reports and
/// the probe pods' logs.
async fn sweep(c: &Cluster, shown: &mut Shown, reports: &Path) {
    for ns in [APP, NS, ELSEWHERE] {
        let list = Api::<Event>::namespaced(c.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        shown.add(
            &format!("Events in {ns}"),
            &serde_json::to_string(&list.items).unwrap(),
            "",
        );
    }
    for ns in [APP, ELSEWHERE] {
        let deployments = Api::<Deployment>::namespaced(c.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        let replica_sets = Api::<ReplicaSet>::namespaced(c.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        let pods = Api::<Pod>::namespaced(c.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        shown.add(
            &format!("workloads in {ns}"),
            &serde_json::to_string(&(deployments.items, replica_sets.items)).unwrap(),
            &serde_json::to_string(&pods.items).unwrap(),
        );
    }
    let sealed = Api::<SealedSecret>::namespaced(c.client.clone(), APP)
        .get("db")
        .await
        .unwrap();
    shown.add(
        "the SealedSecret",
        &serde_json::to_string(&sealed).unwrap(),
        "",
    );
    for entry in std::fs::read_dir(reports).unwrap() {
        let path = entry.unwrap().path();
        shown.add(
            &format!("probe report {}", path.display()),
            &std::fs::read_to_string(&path).unwrap_or_default(),
            "",
        );
    }
    for pod in Api::<Pod>::namespaced(c.client.clone(), APP)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        let name = pod.name_any();
        let (_, out, err) = c.kubectl(&["logs", "-n", APP, &name], None);
        shown.add(&format!("kubectl logs {name}"), &out, &err);
    }
}

/// With `rollout.enabled`: what the controller Pod's own token may do with
/// workloads. List Deployments, StatefulSets and DaemonSets and patch them
/// where it watches SealedSecrets; nothing else: no create, update or
/// delete, no Pods, no other namespace. Dry runs: nothing changes.
async fn check_rollout_privilege(c: &Cluster, pod: &Pod) {
    let sa = c.pod_client(pod).await;
    let everything = ListParams::default();
    let deployments: Api<Deployment> = Api::namespaced(sa.clone(), APP);
    deployments.list(&everything).await.unwrap();
    Api::<StatefulSet>::namespaced(sa.clone(), APP)
        .list(&everything)
        .await
        .unwrap();
    Api::<DaemonSet>::namespaced(sa.clone(), APP)
        .list(&everything)
        .await
        .unwrap();
    let dry_patch = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let restart = json!({"spec": {"template": {"metadata": {"annotations": {
        "kseal.dev/privilege-check": "dry-run"
    }}}}});
    deployments
        .patch("api", &dry_patch, &Patch::Merge(&restart))
        .await
        .unwrap();

    let dry_delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    let dry_post = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    assert!(forbidden(&deployments.delete("api", &dry_delete).await));
    let existing = Api::<Deployment>::namespaced(c.client.clone(), APP)
        .get("api")
        .await
        .unwrap();
    assert!(forbidden(
        &deployments.replace("api", &dry_post, &existing).await
    ));
    let mut copy = existing.clone();
    copy.metadata = kube::api::ObjectMeta {
        name: Some("api-copy".into()),
        namespace: Some(APP.into()),
        ..kube::api::ObjectMeta::default()
    };
    assert!(forbidden(&deployments.create(&dry_post, &copy).await));
    assert!(forbidden(&deployments.get("api").await));

    let pod_name = workload_pods(c, APP, "api").await[0].name_any();
    let pods: Api<Pod> = Api::namespaced(sa.clone(), APP);
    let touch = json!({"metadata": {"annotations": {"kseal.dev/privilege-check": "dry-run"}}});
    assert!(forbidden(
        &pods
            .patch(&pod_name, &dry_patch, &Patch::Merge(&touch))
            .await
    ));
    assert!(forbidden(&pods.delete(&pod_name, &dry_delete).await));

    let elsewhere: Api<Deployment> = Api::namespaced(sa.clone(), ELSEWHERE);
    assert!(forbidden(
        &elsewhere
            .patch("api", &dry_patch, &Patch::Merge(&restart))
            .await
    ));
    assert!(forbidden(&elsewhere.list(&everything).await));
    assert!(forbidden(
        &Api::<Deployment>::all(sa).list(&everything).await
    ));
}

/// The three consumers of Secret `db`: name → pod spec.
fn workloads(image: &str, reports: &Path) -> Vec<(&'static str, Value)> {
    let secret_env = |variable: &str, key: &str| json!({"name": variable, "valueFrom": {"secretKeyRef": {"name": "db", "key": key}}});
    let plain_env = |name: &str, value: &str| json!({"name": name, "value": value});
    vec![
        (
            "api",
            probe_pod(
                image,
                reports,
                vec![
                    secret_env("DB_PASSWORD", "password"),
                    plain_env("PROBE_ENV", "DB_PASSWORD"),
                ],
                vec![],
                vec![],
            ),
        ),
        (
            "backup",
            probe_pod(
                image,
                reports,
                vec![plain_env("PROBE_FILE", "/etc/db/password")],
                vec![json!({"name": "creds", "mountPath": "/etc/db", "readOnly": true})],
                vec![json!({"name": "creds", "secret": {"secretName": "db"}})],
            ),
        ),
        (
            "audit",
            probe_pod(
                image,
                reports,
                vec![
                    secret_env("DB_USER", "username"),
                    plain_env("PROBE_ENV", "DB_USER"),
                ],
                vec![],
                vec![],
            ),
        ),
    ]
}

/// A pod spec running the probe as container `app`, reporting into the
/// host directory `reports`.
fn probe_pod(
    image: &str,
    reports: &Path,
    mut env: Vec<Value>,
    mut mounts: Vec<Value>,
    mut volumes: Vec<Value>,
) -> Value {
    env.extend([
        json!({"name": "PROBE_OUT", "value": "/reports"}),
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}),
    ]);
    mounts.push(json!({"name": "reports", "mountPath": "/reports"}));
    volumes.push(json!({"name": "reports", "hostPath": {
        "path": reports.to_str().unwrap(), "type": "Directory"
    }}));
    json!({
        "terminationGracePeriodSeconds": 2,
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "containers": [{
            "name": "app",
            "image": image,
            "imagePullPolicy": "Never",
            "env": env,
            "volumeMounts": mounts,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
        "volumes": volumes,
    })
}

async fn create_deployment(c: &Cluster, ns: &str, name: &str, replicas: i32, spec: Value) {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(c.client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
}

/// The pods of Deployment `name` (label `app=name`) that are not
/// terminating.
async fn workload_pods(c: &Cluster, ns: &str, name: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn replica_sets(c: &Cluster, name: &str) -> usize {
    Api::<ReplicaSet>::namespaced(c.client.clone(), APP)
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
        .len()
}

/// The probe's last report of `pod`, if it wrote one (and it is that
/// pod's).
fn read_report(dir: &Path, pod: &Pod) -> Option<Report> {
    let text = std::fs::read_to_string(dir.join(pod.name_any())).ok()?;
    Report::parse(&text).filter(|r| Some(&r.uid) == pod.metadata.uid.as_ref())
}

/// Waits for a Ready pod of Deployment `name` in `app` whose fresh report
/// (written within the last 5 s) satisfies `check`.
async fn wait_probe(
    c: &Cluster,
    dir: &Path,
    name: &str,
    check: impl Fn(&Pod, &Report) -> bool,
) -> (Pod, Report) {
    wait_probe_for(c, dir, name, WAIT, check).await
}

async fn wait_probe_for(
    c: &Cluster,
    dir: &Path,
    name: &str,
    timeout: Duration,
    check: impl Fn(&Pod, &Report) -> bool,
) -> (Pod, Report) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = jiff::Timestamp::now().as_second();
        let pods = workload_pods(c, APP, name).await;
        let found = pods.iter().filter(|p| pod_ready(p)).find_map(|pod| {
            let report = read_report(dir, pod)?;
            (now - report.now < 5 && check(pod, &report)).then(|| (pod.clone(), report))
        });
        if let Some(found) = found {
            return found;
        }
        if Instant::now() > deadline {
            // Pod states and report fields (digests only), for the reader.
            let states: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "{} ready={} status={:?} report={:?}",
                        p.name_any(),
                        pod_ready(p),
                        p.status.as_ref().map(|s| (&s.phase, &s.container_statuses)),
                        read_report(dir, p)
                    )
                })
                .collect();
            panic!("timed out waiting for a probe report of {name} as expected: {states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn until<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn secret_value(c: &Cluster, key: &str) -> Option<Vec<u8>> {
    Api::<Secret>::namespaced(c.client.clone(), APP)
        .get_opt("db")
        .await
        .unwrap()?
        .data?
        .remove(key)
        .map(|v| v.0)
}

/// Waits for Secret `db`'s password to exist and differ from `previous`;
/// returns it (the test's only copy; never printed).
async fn wait_password(c: &Cluster, previous: Option<&[u8]>) -> Vec<u8> {
    until("the Secret's new password", WAIT, || async move {
        secret_value(c, "password")
            .await
            .filter(|v| Some(v.as_slice()) != previous)
    })
    .await
}

async fn wait_rotation_due(c: &Cluster, status: &str, reason: &str) {
    let api: Api<SealedSecret> = Api::namespaced(c.client.clone(), APP);
    let what = format!("RotationDue {status} ({reason})");
    let api = &api;
    until(&what, WAIT, || async move {
        let sealed = api.get("db").await.ok()?;
        let st = sealed.status?;
        (st.observed_generation == sealed.metadata.generation
            && st.conditions.iter().any(|cond| {
                cond.type_ == "RotationDue" && cond.status == status && cond.reason == reason
            }))
        .then_some(())
    })
    .await;
}

async fn template_annotations(
    c: &Cluster,
    ns: &str,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    Api::<Deployment>::namespaced(c.client.clone(), ns)
        .get(name)
        .await
        .unwrap()
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .unwrap_or_default()
}

async fn assert_no_restart_annotation(c: &Cluster, ns: &str, name: &str) {
    let annotations = template_annotations(c, ns, name).await;
    assert!(
        !annotations.contains_key(RESTARTED_AT_ANNOTATION)
            && !annotations.contains_key(RESTARTED_FOR_ANNOTATION),
        "{ns}/{name} was restarted: {annotations:?}"
    );
}

/// The Events in `ns` with `reason`.
async fn events(c: &Cluster, ns: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(c.client.clone(), ns)
        .list(&ListParams::default().fields(&format!("reason={reason}")))
        .await
        .unwrap()
        .items
}

/// Waits until exactly one controller Pod is Ready, not terminating, with
/// `--rollout-restarts` among its arguments or not.
async fn controller_pod(c: &Cluster, rollout: bool) -> Pod {
    let what = format!("one Ready controller pod with rollout restarts {rollout}");
    until(&what, WAIT, || async move {
        let pods = c.controller_pods(NS).await;
        let args = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.containers[0].args.clone())
                .unwrap_or_default()
        };
        match pods.as_slice() {
            [pod]
                if pod_ready(pod)
                    && args(pod).iter().any(|a| a == "--rollout-restarts") == rollout =>
            {
                Some(pod.clone())
            }
            _ => None,
        }
    })
    .await
}

fn controller_log(c: &Cluster, pod: &Pod) -> String {
    let (ok, out, err) = c.kubectl(&["logs", "-n", NS, &pod.name_any()], None);
    assert!(ok, "kubectl logs of the controller: {err}");
    out
}

fn read_sealed(path: &Path) -> SealedSecret {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The seal time of `key`'s value, seconds since the epoch.
fn sealed_at(sealed: &SealedSecret, key: &str) -> i64 {
    let value = SealedValue::parse(&sealed.spec.encrypted_data[key]).unwrap();
    i64::try_from(value.sealed_at_seconds()).unwrap()
}

fn changed_lines(a: &str, b: &str) -> usize {
    assert_eq!(a.lines().count(), b.lines().count());
    a.lines().zip(b.lines()).filter(|(x, y)| x != y).count()
}

fn digest(value: &[u8]) -> String {
    probe::digest(value)
}

/// Everything the test saw printed or stored, to be searched for values.
#[derive(Default)]
struct Shown(Vec<(String, String)>);

impl Shown {
    fn add(&mut self, what: &str, stdout: &str, stderr: &str) {
        self.0
            .push((what.to_owned(), format!("{stdout}\n{stderr}")));
    }

    /// Fails naming the place (never the value) where a value, or its
    /// base64, appears.
    fn assert_free_of(&self, values: &[&[u8]]) {
        let b64 = base64::engine::general_purpose::STANDARD;
        for (i, value) in values.iter().enumerate() {
            let forms = [
                String::from_utf8(value.to_vec()).unwrap(),
                b64.encode(value),
            ];
            for (what, text) in &self.0 {
                for form in &forms {
                    assert!(
                        !text.contains(form.as_str()),
                        "value #{i} appears in {what}"
                    );
                }
            }
        }
        assert!(self.0.len() > 20, "searched {} outputs", self.0.len());
    }
}

/// Builds [`CLOCK_SHIM`] into `dir`.
fn clock_shim(dir: &Path) -> PathBuf {
    let src = dir.join("clock-shim.c");
    let lib = dir.join("clock-shim.so");
    std::fs::write(&src, CLOCK_SHIM).unwrap();
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the clock shim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// Runs a `kseal` command the runbook shows, verbatim, in the repository;
/// with `clock`, on a clock that many seconds back. Returns (exit code,
/// stdout, stderr).
fn kseal_step(repo: &Path, command: &str, clock: Option<(&Path, i64)>) -> (i32, String, String) {
    let words = doc_words(command);
    assert_eq!(words[0], "kseal");
    let mut cmd = Command::new(common::kseal_bin());
    cmd.args(&words[1..])
        .current_dir(repo)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    if let Some((shim, back)) = clock {
        cmd.env("LD_PRELOAD", shim)
            .env("KSEAL_TEST_CLOCK_BACK", back.to_string());
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a `kubectl` command the runbook shows, verbatim, in the repository
/// as the admin, with `extra` appended.
fn kubectl_step(c: &Cluster, repo: &Path, command: &str, extra: &[&str]) -> (bool, String, String) {
    let words = doc_words(command);
    assert_eq!(words[0], "kubectl");
    let out =
        c.cp.kubectl()
            .args(&words[1..])
            .args(extra)
            .current_dir(repo)
            .stdin(Stdio::null())
            .output()
            .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a `helm` command the runbook shows, verbatim but for the registry:
/// the public one (`oci://ghcr.io/kseal-dev/`) is the cluster's registry
/// on loopback, which speaks plain HTTP. With `--wait`.
fn helm_step(c: &Cluster, command: &str) {
    const PUBLIC: &str = "oci://ghcr.io/kseal-dev/";
    let mut words = doc_words(command);
    assert_eq!(words[0], "helm");
    let local = format!("oci://{}/{}/", c.registry.host(), NAMESPACE);
    let chart = words
        .iter_mut()
        .find(|w| w.starts_with(PUBLIC))
        .expect("the runbook installs from the public registry");
    *chart = chart.replacen(PUBLIC, &local, 1);
    words.push("--plain-http".to_owned());
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(c.cp.bins().helm())
        .args(&words[1..])
        .args([
            "--wait",
            "--timeout",
            "300s",
            "--kubeconfig",
            &c.kubeconfig(),
        ])
        .current_dir(checkout)
        .env("HELM_CACHE_HOME", c.dir().join("helm/cache"))
        .env("HELM_CONFIG_HOME", c.dir().join("helm/config"))
        .env("HELM_DATA_HOME", c.dir().join("helm/data"))
        .env("KUBECACHEDIR", c.cp.kube_cache_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The words of a command the runbook shows, checked verbatim against it.
fn doc_words(command: &str) -> Vec<String> {
    assert!(
        RUNBOOK.contains(command),
        "the runbook does not show `{command}`"
    );
    shell_words(command)
}

/// Splits a command line as a POSIX shell would for the simple commands
/// the runbook shows: whitespace between words, `'…'` literal, `"…"`
/// without expansions.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut quote: Option<char> = None;
    for ch in command.chars() {
        match (quote, ch) {
            (Some(q), _) if ch == q => quote = None,
            (Some(_), _) => current.get_or_insert_default().push(ch),
            (None, '\'' | '"') => {
                quote = Some(ch);
                current.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(current.take()),
            (None, c) => current.get_or_insert_default().push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in `{command}`");
    words.extend(current);
    words
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(ROTATION_DUE),
        [
            "kubectl",
            "get",
            "sealedsecret",
            "db",
            "-n",
            "app",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="RotationDue")].status}"#,
        ]
    );
    assert_eq!(shell_words(r#"a "b c"  '' d"#), ["a", "b c", "", "d"]);
}
