//! Workloads that read Secrets through environment variables, for `kseal
//! check --secrets-in-env` (CIS Kubernetes Benchmark 5.4.1: "Prefer using
//! secrets as files over secrets as environment variables"). Which reads a
//! pod spec makes is [`kseal_shared::consumers`]'s; this module finds the
//! pod specs of the workload kinds in a manifest and reports the env reads.

use k8s_openapi::api::core::v1::PodSpec;
use kseal_shared::consumers::{Via, secret_reads};
use kseal_shared::manifest::{is_core_v1, list_items};
use serde_json::Value;

/// One read of a Secret through the environment, for people: names the
/// workload, container, variable (or `envFrom` and its prefix), Secret and
/// key; never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRead {
    /// `Deployment app/api`.
    pub workload: String,
    /// The container or init container.
    pub container: String,
    /// The Secret's name.
    pub secret: String,
    /// The data key (`None`: every key, through `envFrom`).
    pub key: Option<String>,
    /// `env DB_PASSWORD`, `envFrom`, `envFrom (prefix DB_)`.
    pub how: String,
}

impl std::fmt::Display for EnvRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: container {}: {} reads ",
            self.workload, self.container, self.how
        )?;
        match &self.key {
            Some(key) => write!(f, "key {key:?} of Secret {:?}", self.secret)?,
            None => write!(f, "every key of Secret {:?}", self.secret)?,
        }
        f.write_str(" through the environment (CIS Kubernetes Benchmark 5.4.1: mount it as a file)")
    }
}

/// Where the pod spec of each workload kind is, by API group (the part of
/// `apiVersion` before `/`; `""` for the core group) and kind. Any version:
/// an older one (`extensions/v1beta1`, `batch/v1beta1`) holds its pod spec
/// at the same place.
fn pod_spec_path(api_version: &str, kind: &str) -> Option<&'static str> {
    let group = match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    };
    match (group, kind) {
        _ if is_core_v1(api_version) && kind == "Pod" => Some("/spec"),
        _ if is_core_v1(api_version) && kind == "ReplicationController" => {
            Some("/spec/template/spec")
        }
        ("apps" | "extensions", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            Some("/spec/template/spec")
        }
        ("batch", "Job") => Some("/spec/template/spec"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// `Kind namespace/name` (or `Kind name`), for messages.
fn workload_name(kind: &str, object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    match (text("/metadata/namespace"), text("/metadata/name")) {
        (Some(namespace), Some(name)) if !namespace.is_empty() => {
            format!("{kind} {namespace}/{name}")
        }
        (_, Some(name)) => format!("{kind} {name}"),
        _ => format!("{kind} <unnamed>"),
    }
}

/// The Secrets the workloads in `value` read through the environment:
/// itself when it is a workload, and those among its items when kubectl
/// reads it as a list (at any depth, as `kseal check` reads Secrets). A
/// workload whose pod spec does not read as one is an `Err` naming it and
/// where the pod spec is (never the text): a gate fails on what it cannot
/// read.
pub fn secrets_in_env(value: &Value) -> Vec<Result<EnvRead, String>> {
    let mut out = Vec::new();
    collect(value, &mut out);
    out
}

fn collect(value: &Value, out: &mut Vec<Result<EnvRead, String>>) {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    if let Some(path) = pod_spec_path(field("apiVersion"), field("kind")) {
        let workload = workload_name(field("kind"), value);
        match value.pointer(path) {
            None | Some(Value::Null) => {}
            Some(spec) => match serde_json::from_value::<PodSpec>(env_fields(spec)) {
                Ok(spec) => {
                    for read in secret_reads(&spec) {
                        let (how, key) = match read.via {
                            Via::EnvKey { variable, key } => (format!("env {variable}"), Some(key)),
                            Via::EnvFrom { prefix: None } => ("envFrom".to_owned(), None),
                            Via::EnvFrom {
                                prefix: Some(prefix),
                            } => (format!("envFrom (prefix {prefix})"), None),
                            Via::File { .. } | Via::SubPath { .. } => continue,
                        };
                        out.push(Ok(EnvRead {
                            workload: workload.clone(),
                            container: read.container,
                            secret: read.secret,
                            key,
                            how,
                        }));
                    }
                }
                Err(_) => out.push(Err(format!(
                    "{workload}: {} does not read as a pod spec, so it was not checked for Secrets in the environment",
                    path.trim_start_matches('/').replace('/', ".")
                ))),
            },
        }
    }
    for item in list_items(value).unwrap_or_default() {
        collect(&item, out);
    }
}

/// The fields of a pod spec that env reads depend on: each container's
/// and init container's `name`, `env[].name`, `env[].valueFrom.secretKeyRef`
/// and `envFrom[].{prefix,secretRef}`. The rest is left out, so that a
/// field kseal reads otherwise than kubectl (`defaultMode: 0440`, octal in
/// kubectl's YAML 1.1, not a number in YAML 1.2) cannot fail the check.
fn env_fields(spec: &Value) -> Value {
    let pick = |from: &Value, fields: &[&str]| -> Value {
        let mut picked = serde_json::Map::new();
        for field in fields {
            if let Some(value) = from.get(*field).filter(|value| !value.is_null()) {
                picked.insert((*field).to_owned(), value.clone());
            }
        }
        Value::Object(picked)
    };
    let list = |from: &Value, field: &str, each: &dyn Fn(&Value) -> Value| -> Option<Value> {
        match from.get(field)? {
            Value::Array(items) => Some(Value::Array(items.iter().map(each).collect())),
            Value::Null => None,
            other => Some(other.clone()),
        }
    };
    let env = |var: &Value| {
        let mut picked = pick(var, &["name"]);
        if let (Value::Object(picked), Some(reference)) =
            (&mut picked, var.pointer("/valueFrom/secretKeyRef"))
        {
            picked.insert(
                "valueFrom".to_owned(),
                serde_json::json!({ "secretKeyRef": reference }),
            );
        }
        picked
    };
    let env_from = |source: &Value| pick(source, &["prefix", "secretRef"]);
    let container = |container: &Value| {
        let mut picked = pick(container, &["name"]);
        if let Value::Object(fields) = &mut picked {
            for (field, value) in [
                ("env", list(container, "env", &env)),
                ("envFrom", list(container, "envFrom", &env_from)),
            ] {
                if let Some(value) = value {
                    fields.insert(field.to_owned(), value);
                }
            }
        }
        picked
    };
    let mut pod = serde_json::Map::new();
    for field in ["containers", "initContainers"] {
        if let Some(containers) = list(spec, field, &container) {
            pod.insert(field.to_owned(), containers);
        }
    }
    Value::Object(pod)
}

/// What to do instead, for the first read found: a secret volume, its
/// mount, and the file the app reads (printed on stderr by `kseal check`).
pub fn volume_example(read: &EnvRead) -> String {
    let volume = &read.secret;
    let file = read.key.as_deref().unwrap_or("KEY");
    let container = &read.container;
    format!(
        "kseal: read Secrets from files instead (CIS Kubernetes Benchmark 5.4.1): environment variables end up in crash dumps, logs and child processes, and never change while the container runs. For {}, container {container}, in its pod spec:
  containers:
    - name: {container}
      volumeMounts:
        - name: {volume}
          mountPath: /etc/{volume}
          readOnly: true
  volumes:
    - name: {volume}
      secret:
        secretName: {volume}
        defaultMode: 0440   # with securityContext.fsGroup: readable by the pod's group
and have the app read /etc/{volume}/{file} (many images take a *_FILE variable naming the file).",
        read.workload
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn pod_spec() -> Value {
        json!({
            "containers": [{"name": "app",
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                "volumeMounts": [{"name": "tls", "mountPath": "/tls"}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "tls"}}]
        })
    }

    #[test]
    fn every_workload_kind_at_its_place() {
        let template = json!({"template": {"spec": pod_spec()}});
        let cases = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}, "spec": pod_spec()}),
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "p"}, "spec": template}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "p"}, "spec": {"jobTemplate": {"spec": template}}}),
        ];
        for case in &cases {
            let reads = secrets_in_env(case);
            assert_eq!(reads.len(), 1, "{case}");
            let read = reads[0].as_ref().unwrap();
            assert_eq!(read.secret, "db");
            assert_eq!(read.key.as_deref(), Some("password"));
            assert_eq!(read.how, "env PW");
        }
        // The same shapes under other kinds or groups are not workloads.
        for other in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "spec": pod_spec()}),
            json!({"apiVersion": "example.com/v1", "kind": "Deployment", "spec": template}),
            json!({"apiVersion": "apps/v1", "kind": "Job", "spec": template}),
            json!({"apiVersion": "core/v1", "kind": "Pod", "spec": pod_spec()}),
        ] {
            assert!(secrets_in_env(&other).is_empty(), "{other}");
        }
        // Lists, at any depth.
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "List", "items": [cases[0].clone()]}, cases[2].clone()
        ]});
        assert_eq!(secrets_in_env(&list).len(), 2);
        // Messages name the workload, never a value.
        let message = secrets_in_env(&cases[0])[0].as_ref().unwrap().to_string();
        assert!(
            message.starts_with(
                "Pod n/p: container app: env PW reads key \"password\" of Secret \"db\""
            ),
            "{message}"
        );
    }

    #[test]
    fn a_pod_spec_that_does_not_read_fails_closed() {
        let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": 12345, "key": "k"}}}
        ]}]}}}});
        let reads = secrets_in_env(&bad);
        let err = reads[0].as_ref().unwrap_err();
        assert!(
            err.contains("Deployment d: spec.template.spec does not read"),
            "{err}"
        );
        assert!(!err.contains("12345"), "{err}");
        // Fields env reads do not depend on are not read: a mode YAML 1.2
        // leaves a string, a literal value of the wrong type, resources.
        let odd = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": 5, "resources": {"limits": {"cpu": []}},
                "env": [{"name": "N", "value": 12345},
                        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": 1}}, {"secretRef": {"name": "t"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "s", "defaultMode": "0440"}}]
        }});
        let reads: Vec<String> = secrets_in_env(&odd)
            .into_iter()
            .map(|read| read.unwrap().how)
            .collect();
        assert_eq!(reads, ["env S", "envFrom"]);
        // No pod spec at all (a kustomize patch of replicas): nothing to read.
        let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2}});
        assert!(secrets_in_env(&patch).is_empty());
    }
}
