//! Workloads that read Secrets through environment variables, for `kseal
//! check --secrets-in-env` (CIS Kubernetes Benchmark 5.4.1: "Prefer using
//! secrets as files over secrets as environment variables"). Which reads a
//! pod spec makes is [`kseal_shared::consumers`]'s; this module finds the
//! pod specs in a manifest and reports the env reads.
//!
//! The built-in workload kinds are read at their pod spec's place
//! ([`pod_spec_path`]). Any other object (an Argo `Rollout`, a `PodTemplate`,
//! a Knative `Service`, an OpenShift `DeploymentConfig`, a KEDA
//! `ScaledJob`, any custom resource that embeds a pod template) is searched
//! whole for pod specs: a mapping whose `containers` is a sequence, with a
//! container (or init container) that is a mapping with an `env` or
//! `envFrom` sequence ([`is_pod_spec`]). Text that merely mentions the
//! words (a ConfigMap's data, a CRD's schema, where `containers` is a
//! mapping) is no pod spec.

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
    /// Whether it is an init container (`initContainers`).
    pub init: bool,
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
    let items = list_items(value);
    if let Some(path) = pod_spec_path(field("apiVersion"), field("kind")) {
        let workload = workload_name(field("kind"), value);
        match value.pointer(path) {
            None | Some(Value::Null) => {}
            Some(spec) => read_pod_spec(
                &workload,
                &path.trim_start_matches('/').replace('/', "."),
                spec,
                out,
            ),
        }
    } else {
        // Any other kind: every pod spec in it, wherever it is (the items
        // of a list are read below, each as an object of its own).
        let kind = match field("kind") {
            "" => "object",
            kind => kind,
        };
        let workload = workload_name(kind, value);
        let mut found = Vec::new();
        if let Value::Object(fields) = value {
            for (name, child) in fields {
                if !(items.is_some() && name == "items") {
                    find_pod_specs(child, name.clone(), &mut found);
                }
            }
        }
        for (path, spec) in found {
            read_pod_spec(&workload, &path, spec, out);
        }
    }
    for item in items.unwrap_or_default() {
        collect(&item, out);
    }
}

/// Whether `value` is a pod spec for [`find_pod_specs`]: a mapping with a
/// `containers` sequence, one of whose containers or init containers is a
/// mapping with an `env` or `envFrom` sequence. A `containers` that is a
/// mapping (a CRD's schema: `containers: {type: array, …}`) or a string
/// (a ConfigMap's data) is none.
fn is_pod_spec(value: &Value) -> bool {
    let Some(Value::Array(containers)) = value.get("containers") else {
        return false;
    };
    let init = match value.get("initContainers") {
        Some(Value::Array(init)) => init.as_slice(),
        _ => &[],
    };
    containers.iter().chain(init).any(|container| {
        ["env", "envFrom"]
            .iter()
            .any(|field| matches!(container.get(*field), Some(Value::Array(_))))
    })
}

/// Every pod spec ([`is_pod_spec`]) in `value`, at any depth, with where it
/// is (`spec.template.spec`, `objects[0].spec`); not searched below one.
fn find_pod_specs<'a>(value: &'a Value, path: String, found: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(_) if is_pod_spec(value) => found.push((path, value)),
        Value::Object(fields) => {
            for (name, child) in fields {
                find_pod_specs(child, format!("{path}.{name}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                find_pod_specs(child, format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

/// The env reads of the pod spec `spec` of `workload`, at `path` (for the
/// message when it does not read as a pod spec).
fn read_pod_spec(workload: &str, path: &str, spec: &Value, out: &mut Vec<Result<EnvRead, String>>) {
    match serde_json::from_value::<PodSpec>(env_fields(spec)) {
                Ok(spec) => {
                    // Names are unique among a pod's containers and init
                    // containers, so the name says which list it is in.
                    let init: Vec<&str> = spec
                        .init_containers
                        .iter()
                        .flatten()
                        .map(|container| container.name.as_str())
                        .collect();
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
                            workload: workload.to_owned(),
                            init: init.contains(&read.container.as_str()),
                            container: read.container,
                            secret: read.secret,
                            key,
                            how,
                        }));
                    }
                }
                Err(_) => out.push(Err(format!(
                    "{workload}: {path} does not read as a pod spec, so it was not checked for Secrets in the environment"
                ))),
    }
}

/// The fields of a pod spec that env reads depend on: each container's
/// and init container's `name`, `env[].name`, `env[].valueFrom.secretKeyRef`
/// and `envFrom[].{prefix,secretRef}`, without the references' `optional`
/// (an optional Secret read through the environment is read all the same).
/// The rest is left out, so that a field kseal reads otherwise than kubectl
/// (`defaultMode: 0440`, octal in kubectl's YAML 1.1, not a number in YAML
/// 1.2; `optional: yes`, a boolean in YAML 1.1, a string in YAML 1.2)
/// cannot fail the check. A container without a name (Knative's may have
/// none) is named by its place: `containers[0]`.
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
    // A reference without `optional`; one that is no mapping stays as it
    // is, and fails to read (closed).
    let without_optional = |reference: &Value| match reference {
        Value::Object(fields) => {
            let mut fields = fields.clone();
            fields.remove("optional");
            Value::Object(fields)
        }
        other => other.clone(),
    };
    let env = |var: &Value| {
        let mut picked = pick(var, &["name"]);
        if let (Value::Object(picked), Some(reference)) =
            (&mut picked, var.pointer("/valueFrom/secretKeyRef"))
        {
            picked.insert(
                "valueFrom".to_owned(),
                serde_json::json!({ "secretKeyRef": without_optional(reference) }),
            );
        }
        picked
    };
    let env_from = |source: &Value| {
        let mut picked = pick(source, &["prefix"]);
        if let (Value::Object(picked), Some(reference)) = (
            &mut picked,
            source.get("secretRef").filter(|r| !r.is_null()),
        ) {
            picked.insert("secretRef".to_owned(), without_optional(reference));
        }
        picked
    };
    let container = |place: String, container: &Value| {
        let mut picked = pick(container, &["name"]);
        if let Value::Object(fields) = &mut picked
            && container.is_object()
            && !fields.contains_key("name")
        {
            fields.insert("name".to_owned(), Value::String(place));
        }
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
        let containers = match spec.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| container(format!("{field}[{index}]"), item))
                    .collect(),
            ),
            Some(other) => other.clone(),
        };
        pod.insert(field.to_owned(), containers);
    }
    Value::Object(pod)
}

/// What to do instead, for the first read found: a secret volume, its
/// mount, and the file the app reads (printed on stderr by `kseal check`).
pub fn volume_example(read: &EnvRead) -> String {
    let volume = &read.secret;
    let file = read.key.as_deref().unwrap_or("KEY");
    let container = &read.container;
    let (list, what) = if read.init {
        ("initContainers", "init container")
    } else {
        ("containers", "container")
    };
    format!(
        "kseal: read Secrets from files instead (CIS Kubernetes Benchmark 5.4.1): environment variables end up in crash dumps, logs and child processes, and never change while the container runs. For {}, {what} {container}, in its pod spec:
  {list}:
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
        // The same shapes under other kinds or groups are found too, by
        // looking for pod specs anywhere in the object.
        for (other, at) in [
            (
                json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "p"}, "spec": template}),
                "Deployment p",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Job", "metadata": {"name": "p"}, "spec": template}),
                "Job p",
            ),
            (
                json!({"apiVersion": "core/v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec()}),
                "Pod p",
            ),
            (
                json!({"spec": {"deep": [{"x": pod_spec()}]}}),
                "object <unnamed>",
            ),
        ] {
            let reads = secrets_in_env(&other);
            assert_eq!(reads.len(), 1, "{other}");
            assert_eq!(reads[0].as_ref().unwrap().workload, at);
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

    /// Kinds kseal does not know: each pod spec is found wherever it is,
    /// and named with the object's kind and name.
    #[test]
    fn pod_specs_of_other_kinds_are_found_anywhere() {
        let meta = json!({"name": "w", "namespace": "ns"});
        let template = json!({"template": {"spec": pod_spec()}});
        for (object, path) in [
            (
                json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": meta, "spec": template}),
                "spec.template.spec",
            ),
            (
                json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": {"spec": pod_spec()}}),
                "template.spec",
            ),
            (
                json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": meta, "spec": template}),
                "spec.template.spec",
            ),
            (
                json!({"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig", "metadata": meta, "spec": template}),
                "spec.template.spec",
            ),
            (
                json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": meta, "spec": {"jobTargetRef": template}}),
                "spec.jobTargetRef.template.spec",
            ),
        ] {
            let kind = object["kind"].as_str().unwrap();
            let reads = secrets_in_env(&object);
            assert_eq!(reads.len(), 1, "{object}");
            let read = reads[0].as_ref().unwrap();
            assert_eq!(read.workload, format!("{kind} ns/w"));
            assert_eq!((read.secret.as_str(), read.how.as_str()), ("db", "env PW"));
            // Where it is, said when it does not read.
            let mut bad = object.clone();
            let spec = bad
                .pointer_mut(&format!("/{}", path.replace('.', "/")))
                .unwrap();
            spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] = json!(1);
            let err = secrets_in_env(&bad).remove(0).unwrap_err();
            assert!(
                err.starts_with(&format!("{kind} ns/w: {path} does not read as a pod spec")),
                "{err}"
            );
        }
        // Several, in sequences (an OpenShift Template's objects): each.
        let template = json!({"apiVersion": "template.openshift.io/v1", "kind": "Template",
            "metadata": {"name": "t"}, "objects": [
                {"kind": "Deployment", "spec": {"template": {"spec": pod_spec()}}},
                {"kind": "ConfigMap", "data": {"a": "b"}},
                {"kind": "Job", "spec": {"template": {"spec": pod_spec()}}}]});
        assert_eq!(secrets_in_env(&template).len(), 2);
        // Unnamed containers (Knative's) are named by their place.
        let knative = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "k"}, "spec": {"template": {"spec": {"containers": [
                {"image": "x", "envFrom": [{"secretRef": {"name": "s"}}]}]}}}});
        let reads = secrets_in_env(&knative);
        assert_eq!(reads[0].as_ref().unwrap().container, "containers[0]");
    }

    /// What merely mentions the words is no pod spec: a ConfigMap's data,
    /// a CRD's schema (`containers` is a mapping there), a `containers`
    /// sequence of strings or without env reads.
    #[test]
    fn words_are_not_pod_specs() {
        let text = "containers:\n  - name: app\n    envFrom:\n      - secretRef: {name: db}\n";
        let crd_container = json!({"type": "object", "properties": {
            "env": {"type": "array", "items": {"type": "object", "properties": {
                "valueFrom": {"properties": {"secretKeyRef": {"type": "object"}}}}}},
            "envFrom": {"type": "array", "items": {"properties": {"secretRef": {"type": "object"}}}}}});
        for object in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"pod.yaml": text, "containers": "envFrom secretRef"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "x.example.com"}, "spec": {"versions": [{"name": "v1",
                "schema": {"openAPIV3Schema": {"properties": {"spec": {"properties": {
                    "containers": {"type": "array", "items": crd_container},
                    "envFrom": {"type": "array"}}}}}}}]}}),
            json!({"kind": "Thing", "spec": {"containers": ["env", "envFrom"]}}),
            json!({"kind": "Thing", "spec": {"containers": [{"name": "a", "env": "x"}]}}),
            json!({"kind": "Thing", "spec": {"containers": [{"name": "a", "image": "x"}]}}),
            json!({"kind": "Thing", "spec": {"containers": {"env": [], "envFrom": []}}}),
        ] {
            assert!(secrets_in_env(&object).is_empty(), "{object}");
        }
        // A list's items are read each on its own, named by their own kind.
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
             "spec": {"template": {"spec": pod_spec()}}}]});
        let reads = secrets_in_env(&list);
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].as_ref().unwrap().workload, "Rollout r");
    }

    /// `optional` is not read (an optional Secret is read all the same):
    /// `optional: yes`, a string to kseal's YAML 1.2 and a boolean to
    /// kubectl's YAML 1.1, is an env read like any other.
    #[test]
    fn optional_is_not_read() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app",
                "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": "yes"}}}],
                "envFrom": [{"secretRef": {"name": "t", "optional": "on"}}]}]}});
        let reads: Vec<String> = secrets_in_env(&pod)
            .into_iter()
            .map(|read| read.unwrap().how)
            .collect();
        assert_eq!(reads, ["env S", "envFrom"]);
        // A reference that is no mapping still fails closed.
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "envFrom": [{"secretRef": "t"}]}]}});
        assert!(secrets_in_env(&bad)[0].is_err());
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
        // An init container is said to be one.
        let init = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "setup", "env": [
                {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}],
            "containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "t"}}]}]
        }});
        let reads: Vec<(String, bool)> = secrets_in_env(&init)
            .into_iter()
            .map(|read| read.map(|read| (read.container, read.init)).unwrap())
            .collect();
        assert_eq!(
            reads,
            [("setup".to_owned(), true), ("app".to_owned(), false)]
        );
        // No pod spec at all (a kustomize patch of replicas): nothing to read.
        let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2}});
        assert!(secrets_in_env(&patch).is_empty());
    }
}
