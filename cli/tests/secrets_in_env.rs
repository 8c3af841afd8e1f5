//! `kseal check --secrets-in-env` through the real binary: every workload
//! kind and container kind, every env form, volume readers left alone,
//! exit codes, stdin, .ksealignore, and the repository's own examples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{Workspace, assert_exit, stderr, stdout};

/// A pod spec whose init container and container read Secret `s` every
/// env way (secretKeyRef; envFrom with and without a prefix), and every
/// file way, which is fine (a secret volume, a projected one, a subPath),
/// beside reads of ConfigMaps and literal values, which are not Secrets.
fn pod_spec(indent: usize) -> String {
    let spec = r#"initContainers:
  - name: init
    env:
      - name: INIT_TOKEN
        valueFrom:
          secretKeyRef: {name: s, key: token}
      - name: LITERAL
        value: not-a-secret-canary
containers:
  - name: app
    image: example
    env:
      - name: FROM_CM
        valueFrom:
          configMapKeyRef: {name: s, key: token}
      - name: DB_PASSWORD
        valueFrom:
          secretKeyRef: {name: s, key: password, optional: true}
    envFrom:
      - configMapRef: {name: s}
      - secretRef: {name: s}
      - prefix: S_
        secretRef: {name: t}
    volumeMounts:
      - {name: files, mountPath: /etc/s, readOnly: true}
      - {name: proj, mountPath: /etc/p}
      - {name: files, mountPath: /etc/one, subPath: password}
volumes:
  - name: files
    secret: {secretName: s, defaultMode: 0440}
  - name: proj
    projected:
      sources:
        - secret: {name: s, items: [{key: token, path: token}]}
"#;
    spec.lines()
        .map(|line| format!("{}{line}\n", " ".repeat(indent)))
        .collect()
}

/// Each workload kind, in a file of its own: (file, kind, pod spec depth).
fn workloads() -> Vec<(String, String)> {
    let meta = |kind: &str, api: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: w\n  namespace: ns\n")
    };
    let templated = |kind: &str, api: &str| {
        format!(
            "{}spec:\n  template:\n    spec:\n{}",
            meta(kind, api),
            pod_spec(6)
        )
    };
    vec![
        (
            "pod.yaml".into(),
            format!("{}spec:\n{}", meta("Pod", "v1"), pod_spec(2)),
        ),
        ("rc.yaml".into(), templated("ReplicationController", "v1")),
        ("deployment.yaml".into(), templated("Deployment", "apps/v1")),
        (
            "statefulset.yaml".into(),
            templated("StatefulSet", "apps/v1"),
        ),
        ("daemonset.yaml".into(), templated("DaemonSet", "apps/v1")),
        ("replicaset.yaml".into(), templated("ReplicaSet", "apps/v1")),
        ("job.yaml".into(), templated("Job", "batch/v1")),
        (
            "cronjob.yaml".into(),
            format!(
                "{}spec:\n  schedule: \"@daily\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n{}",
                meta("CronJob", "batch/v1"),
                pod_spec(10)
            ),
        ),
    ]
}

const KINDS: [(&str, &str); 8] = [
    ("pod.yaml", "Pod"),
    ("rc.yaml", "ReplicationController"),
    ("deployment.yaml", "Deployment"),
    ("statefulset.yaml", "StatefulSet"),
    ("daemonset.yaml", "DaemonSet"),
    ("replicaset.yaml", "ReplicaSet"),
    ("job.yaml", "Job"),
    ("cronjob.yaml", "CronJob"),
];

/// What each workload's finding lines must be (after the file and location).
fn expected_reads(kind: &str) -> Vec<String> {
    [
        "container init: env INIT_TOKEN reads key \"token\" of Secret \"s\"",
        "container app: env DB_PASSWORD reads key \"password\" of Secret \"s\"",
        "container app: envFrom reads every key of Secret \"s\"",
        "container app: envFrom (prefix S_) reads every key of Secret \"t\"",
    ]
    .iter()
    .map(|read| {
        format!(
            "{kind} ns/w: {read} through the environment (CIS Kubernetes Benchmark 5.4.1: mount it as a file)"
        )
    })
    .collect()
}

#[test]
fn every_env_form_in_every_workload_kind() {
    let ws = Workspace::new();
    for (file, text) in workloads() {
        ws.write(&format!("tree/{file}"), &text);
    }
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "tree"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    let lines: BTreeSet<String> = out.lines().map(str::to_owned).collect();
    let mut expected = BTreeSet::new();
    for (file, kind) in KINDS {
        for read in expected_reads(kind) {
            expected.insert(format!("tree/{file}: document 1 (line 1): {read}"));
        }
    }
    assert_eq!(lines, expected, "{out}");
    assert!(!out.contains("canary"), "{out}");
    let err = stderr(&output);
    assert!(
        err.contains(
            "32 Secret read(s) through environment variables found (CIS Kubernetes Benchmark 5.4.1)"
        ),
        "{err}"
    );
    // The way out, for the first finding: a secret volume and its mount,
    // in the init container's list, since it is one.
    assert!(
        err.contains("      secret:\n        secretName: s\n"),
        "{err}"
    );
    assert!(err.contains("have the app read /etc/s/token"), "{err}");
    assert!(
        err.contains(
            ", init container init, in its pod spec:\n  initContainers:\n    - name: init\n      volumeMounts:\n"
        ),
        "{err}"
    );
    assert!(!err.contains("  containers:\n    - name: init\n"), "{err}");

    // Without the flag, env reads are not looked at.
    let output = ws.cmd().args(["check", "tree"]).output().unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty());
}

/// Files only (secret and projected volumes, subPath) and other kinds: a
/// clean tree passes.
#[test]
fn a_tree_that_reads_secrets_from_files_passes() {
    let ws = Workspace::new();
    let files_only = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          env:\n            - {name: PASSWORD_FILE, value: /etc/s/password}\n            - name: FROM_CM\n              valueFrom:\n                configMapKeyRef: {name: s, key: k}\n          envFrom:\n            - configMapRef: {name: c}\n          volumeMounts:\n            - {name: s, mountPath: /etc/s}\n            - {name: s, mountPath: /one, subPath: password}\n      volumes:\n        - name: s\n          secret: {secretName: s, defaultMode: 0400}\n";
    ws.write("clean/deployment.yaml", files_only);
    // Text that merely mentions the words: a ConfigMap holding a pod spec
    // as text, a CRD whose schema describes containers.
    ws.write("clean/configmap.yaml", &words_only());
    ws.write("clean/crd.yaml", CRD);
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "clean"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains(
            "3 file(s) checked: no plaintext Secret, no Secret read through environment variables"
        ),
        "{}",
        stderr(&output)
    );
}

/// A ConfigMap whose data is a pod spec as text (and a key named like it).
fn words_only() -> String {
    let text: String = pod_spec(4);
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: words}}\ndata:\n  containers: envFrom secretRef secretKeyRef\n  pod.yaml: |\n{text}"
    )
}

/// A CRD whose schema describes a pod spec: `containers` is a mapping
/// there, and `env`/`envFrom` are schemas.
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: runners.example.com}
spec:
  group: example.com
  names: {kind: Runner, plural: runners}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                containers:
                  type: array
                  items:
                    type: object
                    properties:
                      name: {type: string}
                      env:
                        type: array
                        items:
                          type: object
                          properties:
                            valueFrom:
                              properties:
                                secretKeyRef: {type: object}
                      envFrom:
                        type: array
                        items:
                          properties:
                            secretRef: {type: object}
";

/// Kinds kseal does not know are searched for pod specs wherever they are
/// (an Argo Rollout, a PodTemplate, a Knative Service, an OpenShift
/// DeploymentConfig, a KEDA ScaledJob, any custom resource), and reported
/// with the object's kind and name; a ConfigMap or CRD that merely
/// mentions the words is not.
#[test]
fn pod_specs_of_any_kind_are_checked() {
    let ws = Workspace::new();
    let meta = |api: &str, kind: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: w\n  namespace: ns\n")
    };
    let env_from = |indent: usize| {
        "containers:\n  - name: app\n    envFrom:\n      - secretRef: {name: s}\n"
            .lines()
            .map(|line| format!("{}{line}\n", " ".repeat(indent)))
            .collect::<String>()
    };
    let files = [
        (
            "rollout.yaml",
            "Rollout",
            format!(
                "{}spec:\n  strategy: {{canary: {{}}}}\n  template:\n    spec:\n{}",
                meta("argoproj.io/v1alpha1", "Rollout"),
                env_from(6)
            ),
        ),
        (
            "podtemplate.yaml",
            "PodTemplate",
            format!(
                "{}template:\n  spec:\n{}",
                meta("v1", "PodTemplate"),
                env_from(4)
            ),
        ),
        (
            "knative.yaml",
            "Service",
            format!(
                "{}spec:\n  template:\n    spec:\n{}",
                meta("serving.knative.dev/v1", "Service"),
                env_from(6)
            ),
        ),
        (
            "deploymentconfig.yaml",
            "DeploymentConfig",
            format!(
                "{}spec:\n  replicas: 1\n  template:\n    spec:\n{}",
                meta("apps.openshift.io/v1", "DeploymentConfig"),
                env_from(6)
            ),
        ),
        (
            "scaledjob.yaml",
            "ScaledJob",
            format!(
                "{}spec:\n  jobTargetRef:\n    template:\n      spec:\n{}",
                meta("keda.sh/v1alpha1", "ScaledJob"),
                env_from(8)
            ),
        ),
    ];
    for (file, _, text) in &files {
        ws.write(&format!("tree/{file}"), text);
    }
    ws.write("tree/words.yaml", &words_only());
    ws.write("tree/crd.yaml", CRD);
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "tree"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    let lines: BTreeSet<String> = out.lines().map(str::to_owned).collect();
    let expected: BTreeSet<String> = files
        .iter()
        .map(|(file, kind, _)| {
            format!(
                "tree/{file}: document 1 (line 1): {kind} ns/w: container app: envFrom reads every key of Secret \"s\" through the environment (CIS Kubernetes Benchmark 5.4.1: mount it as a file)"
            )
        })
        .collect();
    assert_eq!(lines, expected, "{out}");
    assert!(
        stderr(&output).contains("5 Secret read(s) through environment variables found"),
        "{}",
        stderr(&output)
    );
    // Alone, the ConfigMap and the CRD pass.
    for file in ["words.yaml", "crd.yaml"] {
        let output = ws
            .cmd()
            .args(["check", "--secrets-in-env"])
            .arg(format!("tree/{file}"))
            .output()
            .unwrap();
        assert_exit(&output, 0);
        assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    }
}

/// `optional: yes` (a boolean to kubectl's YAML 1.1, a string to kseal's
/// YAML 1.2) is an env read like any other, not a pod spec kseal cannot
/// read; and what kseal cannot read is not said to be refused by kubectl.
#[test]
fn optional_yes_is_read_and_unread_specs_are_worded_right() {
    let ws = Workspace::new();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: app\n      env:\n        - name: PW\n          valueFrom:\n            secretKeyRef: {name: db, key: password, optional: yes}\n      envFrom:\n        - secretRef: {name: all, optional: on}\n";
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "-"])
        .write_stdin(pod)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert_eq!(
        stdout(&output),
        "-: document 1 (line 1): Pod p: container app: env PW reads key \"password\" of Secret \"db\" through the environment (CIS Kubernetes Benchmark 5.4.1: mount it as a file)\n-: document 1 (line 1): Pod p: container app: envFrom reads every key of Secret \"all\" through the environment (CIS Kubernetes Benchmark 5.4.1: mount it as a file)\n"
    );
    let err = stderr(&output);
    assert!(!err.contains("could not be read"), "{err}");
    // A field kseal reads as another type: not said to be refused by
    // kubectl, which may read it otherwise.
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "-"])
        .write_stdin(pod.replace("{name: db,", "{name: 0o17,"))
        .output()
        .unwrap();
    // Not checked: exit 2, even beside the read found.
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains("1 pod spec(s) could not be read, so were not checked for Secrets in the environment: a container, env or envFrom field of the wrong type as kseal reads YAML (1.2); kubectl reads YAML 1.1"),
        "{err}"
    );
    assert!(!err.contains("refuses"), "{err}");
}

/// Lists, stdin, .ksealignore and --no-ignore, as for every other check.
#[test]
fn walks_like_every_check() {
    let ws = Workspace::new();
    let all = workloads();
    let (_, deployment) = all
        .iter()
        .find(|(file, _)| file == "deployment.yaml")
        .unwrap();
    // A List holding the Deployment.
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        deployment
            .lines()
            .enumerate()
            .map(|(i, line)| if i == 0 {
                format!("- {line}\n")
            } else {
                format!("  {line}\n")
            })
            .collect::<String>()
    );
    ws.write("tree/list.yaml", &list);
    ws.write("tree/ignored/pod.yaml", &all[0].1);
    ws.write("tree/.ksealignore", "ignored/\n");
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "tree"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.lines().all(|line| line.starts_with(
            "tree/list.yaml: document 1 (line 1), item 1: Deployment ns/w: container "
        )),
        "{out}"
    );
    assert!(
        stderr(&output).contains("skipped: excluded by"),
        "{}",
        stderr(&output)
    );
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "--no-ignore", "tree"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert_eq!(stdout(&output).lines().count(), 8);
    // What kustomize or helm renders, on stdin.
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "-"])
        .write_stdin(deployment.clone())
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stdout(&output)
            .starts_with("-: document 1 (line 1): Deployment ns/w: container init: env INIT_TOKEN"),
        "{}",
        stdout(&output)
    );
    // A pod spec with an env field of the wrong type fails closed (not
    // checked: exit 2), naming the workload, never the value.
    let output = ws
        .cmd()
        .args(["check", "--secrets-in-env", "-"])
        .write_stdin("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: app\n      envFrom: canary-not-a-list\n")
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stdout(&output).contains("Pod p: spec does not read as a pod spec"),
        "{}",
        stdout(&output)
    );
    assert!(!stdout(&output).contains("canary") && !stderr(&output).contains("canary"));
}

/// The repository's examples read their Secrets from files.
#[test]
fn the_examples_are_clean() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let output = common::kseal()
        .args(["check", "--secrets-in-env", "gitops"])
        .current_dir(examples)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    // The whole of examples/ holds the demo's plaintext Secret on purpose
    // (cargo xtask demo seals it): no env read is reported beside it.
    let output = common::kseal()
        .args(["check", "--secrets-in-env", "."])
        .current_dir(examples)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("plaintext Secret"), "{out}");
    // The demo app mounts the Secret as a file and is told where it is.
    let deployment =
        std::fs::read_to_string(format!("{examples}/gitops/apps/demo/deployment.yaml")).unwrap();
    assert!(deployment.contains("secretName: db-credentials"));
    assert!(deployment.contains("value: /etc/db-credentials/password"));
    assert!(deployment.contains("mountPath: /etc/db-credentials"));
}

/// The suggested fix names the list the container is in: `containers:`
/// for a container, `initContainers:` for an init container.
#[test]
fn the_suggested_fix_names_the_container_list() {
    let ws = Workspace::new();
    let pod = |init: &str, app: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers:\n    - name: setup\n{init}  containers:\n    - name: app\n{app}"
        )
    };
    let env = "      env:\n        - name: PW\n          valueFrom:\n            secretKeyRef: {name: db, key: password}\n";
    for (text, list, container, not) in [
        (
            pod(env, ""),
            "  initContainers:\n    - name: setup\n",
            "init container setup",
            "  containers:\n    - name: setup\n",
        ),
        (
            pod("", env),
            "  containers:\n    - name: app\n",
            "container app",
            "  initContainers:\n",
        ),
    ] {
        let output = ws
            .cmd()
            .args(["check", "--secrets-in-env", "-"])
            .write_stdin(text)
            .output()
            .unwrap();
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains(&format!("For Pod p, {container}, in its pod spec:\n{list}")),
            "{err}"
        );
        assert!(!err.contains(not), "{err}");
    }
}
