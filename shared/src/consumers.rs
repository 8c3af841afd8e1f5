//! How a pod template reads Secrets, and which of those reads keep an old
//! value when the Secret changes.
//!
//! Kubernetes resolves a Secret for a container in four ways
//! (<https://kubernetes.io/docs/concepts/configuration/secret/>):
//! * `env[].valueFrom.secretKeyRef`: one key, read once at container start;
//! * `envFrom[].secretRef`: every key, read once at container start;
//! * a `secret` volume or a `projected` volume's `secret` source, mounted
//!   into the container: the kubelet updates the files in place, within
//!   its sync period, so the running pod sees a new value;
//! * such a volume mounted with `subPath` (or `subPathExpr`): a bind mount
//!   of one file or directory, which the kubelet never updates.
//!
//! Env reads and `subPath` mounts keep the old value until the pod is
//! replaced ([`SecretRead::keeps_old_value`]); that is what
//! `spec.rollout` restarts for.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, KeyToPath, PodSpec, Volume};

use crate::sealed_secret::Rollout;

/// The keys of a Secret a read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Every key of the Secret (`envFrom`, a volume without `items`, a
    /// `subPathExpr` that cannot be resolved without a running pod).
    All,
    /// Only these keys.
    Only(BTreeSet<String>),
}

impl Keys {
    /// Whether `key` is among them.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            Keys::All => true,
            Keys::Only(keys) => keys.contains(key),
        }
    }
}

/// How a container reads a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `env[].valueFrom.secretKeyRef`: `variable` holds the value of `key`.
    EnvKey {
        /// The environment variable's name.
        variable: String,
        /// The Secret data key.
        key: String,
    },
    /// `envFrom[].secretRef`: a variable per key, with `prefix` before it.
    EnvFrom {
        /// `envFrom[].prefix`, if any.
        prefix: Option<String>,
    },
    /// A `secret` or `projected` volume mounted whole at `mount_path`: its
    /// files follow the Secret.
    File {
        /// The volume's name in the pod spec.
        volume: String,
        /// Where the container mounts it.
        mount_path: String,
        /// The keys the volume holds (`items`, or all).
        keys: Keys,
    },
    /// Such a volume mounted with `subPath` or `subPathExpr`: never updated.
    SubPath {
        /// The volume's name in the pod spec.
        volume: String,
        /// Where the container mounts it.
        mount_path: String,
        /// The keys whose files are at or below the sub-path.
        keys: Keys,
    },
}

/// One way one container of a pod template reads one Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRead {
    /// The Secret's name.
    pub secret: String,
    /// The container (or init container) that reads it.
    pub container: String,
    /// How.
    pub via: Via,
}

impl SecretRead {
    /// Whether the read covers `key`.
    pub fn reads_key(&self, key: &str) -> bool {
        match &self.via {
            Via::EnvKey { key: read, .. } => read == key,
            Via::EnvFrom { .. } => true,
            Via::File { keys, .. } | Via::SubPath { keys, .. } => keys.contains(key),
        }
    }

    /// Whether a running container keeps the old value after a change
    /// (env and `subPath`; see the module documentation).
    pub fn keeps_old_value(&self) -> bool {
        !matches!(self.via, Via::File { .. })
    }

    /// Whether a change of `key` calls for a restart under `rollout`.
    pub fn restart_for(&self, key: &str, rollout: Rollout) -> bool {
        self.reads_key(key)
            && match rollout {
                Rollout::EnvConsumers => self.keeps_old_value(),
                Rollout::AllConsumers => true,
            }
    }

    /// A short description for people: `env DB_PASSWORD`, `envFrom`,
    /// `volume creds at /etc/creds`, `subPath of volume creds at /app/pw`.
    pub fn describe(&self) -> String {
        match &self.via {
            Via::EnvKey { variable, .. } => format!("env {variable}"),
            Via::EnvFrom { prefix: None } => "envFrom".to_owned(),
            Via::EnvFrom {
                prefix: Some(prefix),
            } => format!("envFrom (prefix {prefix})"),
            Via::File {
                volume, mount_path, ..
            } => format!("volume {volume} at {mount_path}"),
            Via::SubPath {
                volume, mount_path, ..
            } => format!("subPath of volume {volume} at {mount_path}"),
        }
    }
}

/// Every way the containers and init containers of `spec` read Secrets, in
/// the order they appear. Volumes no container mounts read nothing.
pub fn secret_reads(spec: &PodSpec) -> Vec<SecretRead> {
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut reads = Vec::new();
    for container in containers {
        env_reads(container, &mut reads);
        volume_reads(container, volumes, &mut reads);
    }
    reads
}

/// The reads of Secret `secret` that call for a restart when the keys
/// `changed` change, under `rollout`; empty when none does.
pub fn restarting_reads<'a>(
    reads: &'a [SecretRead],
    secret: &str,
    changed: &BTreeSet<String>,
    rollout: Rollout,
) -> Vec<&'a SecretRead> {
    reads
        .iter()
        .filter(|read| read.secret == secret)
        .filter(|read| changed.iter().any(|key| read.restart_for(key, rollout)))
        .collect()
}

fn env_reads(container: &Container, reads: &mut Vec<SecretRead>) {
    for var in container.env.iter().flatten() {
        if let Some(reference) = var
            .value_from
            .as_ref()
            .and_then(|from| from.secret_key_ref.as_ref())
        {
            reads.push(SecretRead {
                secret: reference.name.clone(),
                container: container.name.clone(),
                via: Via::EnvKey {
                    variable: var.name.clone(),
                    key: reference.key.clone(),
                },
            });
        }
    }
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.secret_ref {
            reads.push(SecretRead {
                secret: reference.name.clone(),
                container: container.name.clone(),
                via: Via::EnvFrom {
                    prefix: source.prefix.clone().filter(|p| !p.is_empty()),
                },
            });
        }
    }
}

/// A Secret a volume holds: its name, and the file each selected key lands
/// at (`None`: every key, at its own name).
struct VolumeSecret<'a> {
    secret: &'a str,
    items: Option<&'a [KeyToPath]>,
}

fn volume_secrets(volume: &Volume) -> Vec<VolumeSecret<'_>> {
    let mut found = Vec::new();
    if let Some(source) = &volume.secret
        && let Some(secret) = source.secret_name.as_deref()
    {
        found.push(VolumeSecret {
            secret,
            items: source.items.as_deref(),
        });
    }
    if let Some(projected) = &volume.projected {
        for source in projected.sources.iter().flatten() {
            if let Some(projection) = &source.secret {
                found.push(VolumeSecret {
                    secret: &projection.name,
                    items: projection.items.as_deref(),
                });
            }
        }
    }
    found
}

fn volume_reads(container: &Container, volumes: &[Volume], reads: &mut Vec<SecretRead>) {
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.iter().find(|v| v.name == mount.name) else {
            continue;
        };
        let sub_path = mount.sub_path.as_deref().filter(|p| !p.is_empty());
        let sub_path_expr = mount
            .sub_path_expr
            .as_deref()
            .is_some_and(|p| !p.is_empty());
        for held in volume_secrets(volume) {
            let via = if sub_path_expr {
                // Expanded from the pod's environment at start: which file
                // it names cannot be known here, so assume any.
                Via::SubPath {
                    volume: volume.name.clone(),
                    mount_path: mount.mount_path.clone(),
                    keys: selected(held.items),
                }
            } else if let Some(sub_path) = sub_path {
                let keys = keys_below(held.items, sub_path);
                if keys == Keys::Only(BTreeSet::new()) {
                    continue;
                }
                Via::SubPath {
                    volume: volume.name.clone(),
                    mount_path: mount.mount_path.clone(),
                    keys,
                }
            } else {
                Via::File {
                    volume: volume.name.clone(),
                    mount_path: mount.mount_path.clone(),
                    keys: selected(held.items),
                }
            };
            reads.push(SecretRead {
                secret: held.secret.to_owned(),
                container: container.name.clone(),
                via,
            });
        }
    }
}

fn selected(items: Option<&[KeyToPath]>) -> Keys {
    match items {
        None => Keys::All,
        Some(items) => Keys::Only(items.iter().map(|item| item.key.clone()).collect()),
    }
}

/// The keys whose files are `sub_path` or below it. Without `items` each
/// key is a file named after it at the top; the kubelet's own entries
/// (`..data`, `..2024_…`) hold them all.
fn keys_below(items: Option<&[KeyToPath]>, sub_path: &str) -> Keys {
    let sub_path = normalize(sub_path);
    if sub_path.is_empty() || sub_path.starts_with("..") {
        return selected(items);
    }
    let below = |path: &str| {
        let path = normalize(path);
        path == sub_path
            || path
                .strip_prefix(sub_path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    };
    match items {
        None => Keys::Only(
            std::iter::once(sub_path.clone())
                .filter(|key| !key.contains('/'))
                .collect(),
        ),
        Some(items) => Keys::Only(
            items
                .iter()
                .filter(|item| below(&item.path))
                .map(|item| item.key.clone())
                .collect(),
        ),
    }
}

/// `a//b/./c/` as `a/b/c`: the kubelet joins paths with Go's
/// `filepath.Join`, which cleans them the same way.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: serde_json::Value) -> PodSpec {
        serde_json::from_value(yaml).unwrap_or_else(|e| panic!("bad pod spec: {e}"))
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    /// Every consumer form, one container each, all reading Secret `s`.
    fn every_form() -> PodSpec {
        spec(serde_json::json!({
            "initContainers": [
                {"name": "init-env", "env": [
                    {"name": "PLAIN", "value": "x"},
                    {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "s", "key": "a"}}},
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a"}}}
                ]}
            ],
            "containers": [
                {"name": "env-from", "envFrom": [
                    {"configMapRef": {"name": "s"}},
                    {"secretRef": {"name": "s"}, "prefix": "S_"}
                ]},
                {"name": "whole", "volumeMounts": [{"name": "all", "mountPath": "/all"}]},
                {"name": "items", "volumeMounts": [{"name": "some", "mountPath": "/some"}]},
                {"name": "projected", "volumeMounts": [{"name": "proj", "mountPath": "/proj"}]},
                {"name": "sub", "volumeMounts": [
                    {"name": "all", "mountPath": "/b", "subPath": "b"},
                    {"name": "some", "mountPath": "/dir", "subPath": "./dir/"},
                    {"name": "proj", "mountPath": "/none", "subPath": "nothing-here"}
                ]},
                {"name": "expr", "volumeMounts": [
                    {"name": "proj", "mountPath": "/e", "subPathExpr": "$(POD_NAME)"}
                ]},
                {"name": "cm-only", "volumeMounts": [{"name": "cm", "mountPath": "/cm"}]}
            ],
            "volumes": [
                {"name": "all", "secret": {"secretName": "s"}},
                {"name": "some", "secret": {"secretName": "s", "items": [
                    {"key": "c", "path": "dir/c"}, {"key": "d", "path": "d"}
                ]}},
                {"name": "proj", "projected": {"sources": [
                    {"configMap": {"name": "s"}},
                    {"secret": {"name": "s", "items": [{"key": "e", "path": "e"}]}},
                    {"secret": {"name": "other"}}
                ]}},
                {"name": "cm", "configMap": {"name": "s"}},
                {"name": "unmounted", "secret": {"secretName": "s"}}
            ]
        }))
    }

    #[test]
    fn every_form_is_found_with_its_keys() {
        let reads = secret_reads(&every_form());
        let summary: Vec<(String, String, String)> = reads
            .iter()
            .map(|r| (r.container.clone(), r.secret.clone(), r.describe()))
            .collect();
        let want = [
            ("init-env", "s", "env A"),
            ("env-from", "s", "envFrom (prefix S_)"),
            ("whole", "s", "volume all at /all"),
            ("items", "s", "volume some at /some"),
            ("projected", "s", "volume proj at /proj"),
            ("projected", "other", "volume proj at /proj"),
            ("sub", "s", "subPath of volume all at /b"),
            ("sub", "s", "subPath of volume some at /dir"),
            ("sub", "other", "subPath of volume proj at /none"),
            ("expr", "s", "subPath of volume proj at /e"),
            ("expr", "other", "subPath of volume proj at /e"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(c, s, d)| ((*c).to_owned(), (*s).to_owned(), (*d).to_owned()))
            .collect();
        assert_eq!(summary, want);
        let keys = |container: &str, mount: &str| {
            reads
                .iter()
                .find(|r| {
                    r.container == container
                        && r.secret == "s"
                        && r.describe().ends_with(&format!("at {mount}"))
                })
                .map(|r| match &r.via {
                    Via::File { keys, .. } | Via::SubPath { keys, .. } => keys.clone(),
                    _ => Keys::All,
                })
        };
        assert_eq!(keys("whole", "/all"), Some(Keys::All));
        assert_eq!(keys("items", "/some"), Some(Keys::Only(set(&["c", "d"]))));
        assert_eq!(keys("projected", "/proj"), Some(Keys::Only(set(&["e"]))));
        assert_eq!(keys("sub", "/b"), Some(Keys::Only(set(&["b"]))));
        assert_eq!(keys("sub", "/dir"), Some(Keys::Only(set(&["c"]))));
        assert_eq!(keys("expr", "/e"), Some(Keys::Only(set(&["e"]))));
    }

    /// Which containers a change of each key restarts, per rollout.
    #[test]
    fn restarts_follow_the_key_and_the_form() {
        let reads = secret_reads(&every_form());
        let restarted = |changed: &[&str], rollout: Rollout| -> BTreeSet<String> {
            restarting_reads(&reads, "s", &set(changed), rollout)
                .into_iter()
                .map(|r| r.container.clone())
                .collect()
        };
        use Rollout::{AllConsumers, EnvConsumers};
        // `a`: read by env in the init container, envFrom, and the whole volume.
        assert_eq!(
            restarted(&["a"], EnvConsumers),
            set(&["init-env", "env-from"])
        );
        assert_eq!(
            restarted(&["a"], AllConsumers),
            set(&["init-env", "env-from", "whole"])
        );
        // `b`: also the subPath mount of `b`.
        assert_eq!(restarted(&["b"], EnvConsumers), set(&["env-from", "sub"]));
        // `c`: the items volume, and the subPath of its directory.
        assert_eq!(restarted(&["c"], EnvConsumers), set(&["env-from", "sub"]));
        assert_eq!(
            restarted(&["c"], AllConsumers),
            set(&["env-from", "whole", "items", "sub"])
        );
        // `d`: items volume, but not below the sub-path `dir`.
        assert_eq!(restarted(&["d"], EnvConsumers), set(&["env-from"]));
        assert_eq!(
            restarted(&["d"], AllConsumers),
            set(&["env-from", "whole", "items"])
        );
        // `e`: projected; the subPathExpr mount may name it.
        assert_eq!(restarted(&["e"], EnvConsumers), set(&["env-from", "expr"]));
        // Another Secret's reads never count, nor do ConfigMaps of that name.
        assert!(restarting_reads(&reads, "t", &set(&["a"]), AllConsumers).is_empty());
        assert!(restarted(&[], AllConsumers).is_empty());
    }

    #[test]
    fn a_template_that_reads_only_other_keys_is_not_restarted() {
        let reads = secret_reads(&spec(serde_json::json!({
            "containers": [{"name": "app",
                "env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "username"}}}],
                "volumeMounts": [{"name": "tls", "mountPath": "/tls", "subPath": "tls.crt"}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "db"}}]
        })));
        for rollout in [Rollout::EnvConsumers, Rollout::AllConsumers] {
            assert!(restarting_reads(&reads, "db", &set(&["password"]), rollout).is_empty());
            assert_eq!(
                restarting_reads(&reads, "db", &set(&["username"]), rollout).len(),
                1
            );
            assert_eq!(
                restarting_reads(&reads, "db", &set(&["tls.crt"]), rollout).len(),
                1
            );
        }
    }

    #[test]
    fn sub_paths_are_cleaned_as_the_kubelet_does() {
        let items = [KeyToPath {
            key: "k".into(),
            path: "a/b/k".into(),
            ..KeyToPath::default()
        }];
        for sub_path in ["a", "a/", "./a", "a//b", "a/b/k", "a/./b"] {
            assert_eq!(
                keys_below(Some(&items), sub_path),
                Keys::Only(set(&["k"])),
                "{sub_path}"
            );
        }
        for sub_path in ["b", "a/b/k2", "ab", "a/bk"] {
            assert_eq!(
                keys_below(Some(&items), sub_path),
                Keys::Only(BTreeSet::new()),
                "{sub_path}"
            );
        }
        // The kubelet's `..data` directory holds every file.
        assert_eq!(keys_below(None, "..data"), Keys::All);
        assert_eq!(keys_below(None, "x/y"), Keys::Only(BTreeSet::new()));
    }
}
