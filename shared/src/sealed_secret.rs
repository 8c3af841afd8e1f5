//! The `SealedSecret` custom resource (`kseal.dev/v1alpha1`). The CRD the
//! controller installs is generated from these types.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::binding::Scope;

/// API group of kseal's resources.
pub const GROUP: &str = "kseal.dev";
/// API version of the SealedSecret resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "kseal.dev/v1alpha1";
/// `kind` as written in manifests.
pub const KIND: &str = "SealedSecret";
/// At most this many values (`spec.encryptedData` entries) per SealedSecret.
/// Readers refuse more before any decryption, so one object or API request
/// asks for at most this many unwraps per key it names. An honest sealer
/// never gets near it: a Secret holds at most 1 MiB in all, real ones have
/// tens of keys, and the smallest sealed value takes ~360 bytes, so the API
/// server's ~1.5 MiB object limit already stops at ~4,300 values.
pub const MAX_VALUES: usize = 1024;

/// A Secret whose values are encrypted to the cluster's keys; safe to commit.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kseal.dev",
    version = "v1alpha1",
    kind = "SealedSecret",
    namespaced,
    status = "SealedSecretStatus",
    shortname = "kss",
    category = "kseal",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    doc = "A Secret whose values are encrypted to the cluster's keys; safe to commit. The kseal controller creates the Secret and reports on it in status (docs/gitops-health.md)."
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Where the values may be unsealed: `strict` (this namespace and name),
    /// `namespace-wide` (any name in this namespace) or `cluster-wide`.
    #[serde(default)]
    pub scope: Scope,
    /// One sealed value per Secret data key (`kseal:v2:…`); at most 1,024.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 1024))]
    pub encrypted_data: BTreeMap<String, String>,
    /// Metadata and settings of the Secret the controller creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
    /// How old a value may get before it is due for rotation (`90d`, `2160h`,
    /// `13w`; at most 100 years: `876600h`, `36525d`, `5217w`). The controller reports values older than this, or whose seal
    /// time was never recorded, with the `RotationDue` condition; the Secret
    /// is still kept in sync.
    // Kept as written and parsed where used (`parsed_max_age`): a field the
    // controller could not decode would fail the whole list it came in, for
    // every SealedSecret of the cluster. The pattern is
    // `rotation::MAX_AGE_PATTERN` (a test checks they agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::rotation::MAX_AGE_PATTERN))]
    pub max_age: Option<String>,
    /// Which workloads the controller restarts when it changes the
    /// Secret's data (docs/rollout.md): `EnvConsumers` restarts the
    /// Deployments, StatefulSets and DaemonSets of this namespace that read
    /// a changed key through an environment variable or a `subPath` mount
    /// (they would keep the old value); `AllConsumers` also those that
    /// mount it as a file. Absent: none. The controller acts on it only
    /// when restarts are enabled (chart value `rollout.enabled`).
    // A string checked where used (`parsed_rollout`), like maxAge: a value
    // a newer kseal defines must not fail an older controller's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [ROLLOUT_ENV_CONSUMERS, ROLLOUT_ALL_CONSUMERS]))]
    pub rollout: Option<String>,
    /// The data keys whose values kseal generated (`kseal seal --generate`),
    /// and how: `hex:N` or `base64:N` (N random bytes), `alnum:N` (N
    /// characters of `[A-Za-z0-9]`), `uuid` (a random UUID, version 4); N
    /// from 1 to 4096. Not secret: `kseal regenerate` reads it to make a
    /// new value of the same form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 1024,
        "additionalProperties" = {"type": "string", "pattern": GENERATOR_PATTERN}
    ))]
    pub generated: BTreeMap<String, String>,
}

/// `spec.rollout` value: restart consumers that read a changed key through
/// env or `subPath`.
pub const ROLLOUT_ENV_CONSUMERS: &str = "EnvConsumers";
/// `spec.rollout` value: restart every consumer of a changed key.
pub const ROLLOUT_ALL_CONSUMERS: &str = "AllConsumers";
/// The form of a `spec.generated` entry (see [`SealedSecretSpec::generated`]).
pub const GENERATOR_PATTERN: &str =
    "^((hex|base64|alnum):([1-9][0-9]{0,2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-6])|uuid)$";

/// Which consumers of a changed key the controller restarts
/// (`spec.rollout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rollout {
    /// Those that read a changed key through env or a `subPath` mount.
    EnvConsumers,
    /// Every consumer of a changed key, file mounts included.
    AllConsumers,
}

impl Rollout {
    /// The name as written in `spec.rollout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rollout::EnvConsumers => ROLLOUT_ENV_CONSUMERS,
            Rollout::AllConsumers => ROLLOUT_ALL_CONSUMERS,
        }
    }
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `spec.rollout` that is neither `EnvConsumers` nor `AllConsumers`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.rollout must be {ROLLOUT_ENV_CONSUMERS} or {ROLLOUT_ALL_CONSUMERS}")]
pub struct RolloutError;

impl std::str::FromStr for Rollout {
    type Err = RolloutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            ROLLOUT_ENV_CONSUMERS => Ok(Rollout::EnvConsumers),
            ROLLOUT_ALL_CONSUMERS => Ok(Rollout::AllConsumers),
            _ => Err(RolloutError),
        }
    }
}

impl SealedSecretSpec {
    /// `spec.maxAge` parsed ([`crate::rotation::MaxAge`]); `Ok(None)` when
    /// it is not set.
    pub fn parsed_max_age(
        &self,
    ) -> Result<Option<crate::rotation::MaxAge>, crate::rotation::MaxAgeError> {
        self.max_age.as_deref().map(str::parse).transpose()
    }

    /// `spec.rollout` parsed; `Ok(None)` when it is not set.
    pub fn parsed_rollout(&self) -> Result<Option<Rollout>, RolloutError> {
        self.rollout.as_deref().map(str::parse).transpose()
    }
}

/// The parts of the resulting Secret that are not its data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// The Secret's `type` (default `Opaque`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Whether the Secret is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Labels and annotations of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
}

/// Labels and annotations carried to the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels of the Secret; at most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the Secret; at most 64, of at most 64 KiB together
    /// (keys and values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: BTreeMap<String, String>,
}

/// What the controller last observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready` says whether the Secret is in sync;
    /// `RotationDue` whether a value is older than `spec.maxAge`;
    /// `RewrapDue` whether a value is sealed only to keys no longer active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The key ids the values are sealed to (sorted, unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
    /// The controller's signed record of the Secret it last wrote or found
    /// in sync, so that a restarted controller can trust a Secret unchanged
    /// since then without reading it. Says nothing about the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_record: Option<SecretRecord>,
}

/// The owned Secret as the controller last wrote or found it in sync: the
/// Secret's `resourceVersion` then, the generation it was in sync with, and
/// a digest of its content, under a MAC keyed with a key derived from a
/// cluster private key (`keyId`). Without that key neither can be forged
/// nor tells anything about the values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRecord {
    /// The owned Secret's `metadata.resourceVersion` when it was in sync.
    pub resource_version: String,
    /// The SealedSecret's `metadata.generation` it was in sync with.
    pub generation: i64,
    /// The key whose derived MAC key signed this record.
    pub key_id: String,
    /// A keyed digest of what the Secret holds (base64url, no padding).
    pub content: String,
    /// The MAC over all of the above and the object's identity (base64url,
    /// no padding).
    pub mac: String,
}

/// A condition in the standard Kubernetes form (`metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type: `Ready`; `Stalled` (a failure that needs a
    /// change to the object or the cluster) or `Reconciling` (a failure
    /// being retried), each present only while True; `RotationDue`,
    /// `RewrapDue`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, stable for automation.
    pub reason: String,
    /// A human-readable message; never contains secret material.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Why a document is not a SealedSecret this library reads. Names fields,
/// never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// A field the CRD does not have (a typo such as `encrytedData` would
    /// otherwise be dropped: the API server prunes unknown fields, and the
    /// controller would make a Secret without those values).
    #[error("unknown field {0:?} in a SealedSecret")]
    UnknownField(String),
    /// The fields there do not have the CRD's types.
    #[error("not a valid SealedSecret: {0}")]
    Invalid(String),
}

/// The fields a SealedSecret may have, by path (`""` is the object itself).
const KNOWN_FIELDS: [(&str, &[&str]); 4] = [
    ("", &["apiVersion", "kind", "metadata", "spec", "status"]),
    (
        "spec",
        &[
            "scope",
            "encryptedData",
            "template",
            "maxAge",
            "rollout",
            "generated",
        ],
    ),
    ("spec.template", &["type", "immutable", "metadata"]),
    ("spec.template.metadata", &["labels", "annotations"]),
];

/// The SealedSecret CRD as kseal installs it (the chart's
/// `crds/sealedsecrets.kseal.dev.yaml`): the one kube generates from these
/// types, with `status` defaulting to `{}`. The API server applies the
/// default whenever it returns an object, so a SealedSecret the controller
/// has not written yet reads `status: {}`, never no status at all: Flux's
/// CEL health expressions can test `has(status.conditions)`, which fails
/// on a missing `status` (docs/gitops-health.md).
pub fn custom_resource_definition()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON;
    use kube::CustomResourceExt;
    let mut crd = SealedSecret::crd();
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|schema| schema.open_api_v3_schema.as_mut())
            .and_then(|root| root.properties.as_mut())
            .and_then(|properties| properties.get_mut("status"));
        if let Some(status) = status {
            status.default = Some(JSON(serde_json::json!({})));
        }
    }
    crd
}

/// Reads a SealedSecret from a parsed manifest document, refusing fields the
/// CRD does not define in the object, `spec` and `spec.template` (as
/// kubectl's strict validation and `kseal seal` do for Secrets).
pub fn from_document(value: &serde_json::Value) -> Result<SealedSecret, DocumentError> {
    for (path, known) in KNOWN_FIELDS {
        let object = path
            .split('.')
            .filter(|part| !part.is_empty())
            .try_fold(value, |value, part| value.get(part));
        if let Some(serde_json::Value::Object(map)) = object
            && let Some(field) = map.keys().find(|key| !known.contains(&key.as_str()))
        {
            let full = if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            return Err(DocumentError::UnknownField(full));
        }
    }
    // The fields people write by hand, named when their type is wrong
    // (serde's own message names no field).
    for (pointer, field, example) in [
        (
            "/spec/maxAge",
            "spec.maxAge",
            "a string such as \"90d\" (quote it)",
        ),
        (
            "/spec/scope",
            "spec.scope",
            "one of \"strict\", \"namespace-wide\", \"cluster-wide\"",
        ),
        ("/spec/template/type", "spec.template.type", "a string"),
    ] {
        if let Some(found) = value.pointer(pointer)
            && !matches!(
                found,
                serde_json::Value::String(_) | serde_json::Value::Null
            )
        {
            return Err(DocumentError::Invalid(format!("{field} must be {example}")));
        }
    }
    serde_json::from_value(value.clone()).map_err(|err| DocumentError::Invalid(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let base = serde_json::json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "db", "namespace": "app"},
            "spec": {"encryptedData": {"k": "v"}, "template": {"type": "Opaque", "metadata": {"labels": {"a": "b"}}}},
        });
        assert!(from_document(&base).is_ok());
        for (path, field) in [
            ("spec", "encrytedData"),
            ("", "spce"),
            ("spec.template", "data"),
            ("spec.template.metadata", "lables"),
        ] {
            let mut value = base.clone();
            let target = path
                .split('.')
                .filter(|part| !part.is_empty())
                .fold(&mut value, |value, part| &mut value[part]);
            target[field] = serde_json::json!({});
            let full = if path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            assert_eq!(
                from_document(&value).err(),
                Some(DocumentError::UnknownField(full))
            );
        }
    }

    /// The API server refuses what the controller would refuse anyway, so a
    /// tenant cannot make it hold more.
    #[test]
    fn the_crd_caps_what_the_controller_caps() {
        let crd = serde_json::to_value(custom_resource_definition()).unwrap_or_default();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["encryptedData"]["maxProperties"], MAX_VALUES);
        assert_eq!(
            spec["rollout"]["enum"],
            serde_json::json!([ROLLOUT_ENV_CONSUMERS, ROLLOUT_ALL_CONSUMERS])
        );
        assert_eq!(
            spec["generated"]["additionalProperties"]["pattern"],
            GENERATOR_PATTERN
        );
        let metadata = &spec["template"]["properties"]["metadata"]["properties"];
        for field in ["labels", "annotations"] {
            assert_eq!(
                metadata[field]["maxProperties"],
                crate::validation::TEMPLATE_MAX_ENTRIES,
                "{field}"
            );
        }
    }

    #[test]
    fn rollout_is_one_of_two_names() {
        let spec = |rollout: Option<&str>| SealedSecretSpec {
            rollout: rollout.map(str::to_owned),
            ..SealedSecretSpec::default()
        };
        assert_eq!(spec(None).parsed_rollout(), Ok(None));
        assert_eq!(
            spec(Some("EnvConsumers")).parsed_rollout(),
            Ok(Some(Rollout::EnvConsumers))
        );
        assert_eq!(
            spec(Some("AllConsumers")).parsed_rollout(),
            Ok(Some(Rollout::AllConsumers))
        );
        for bad in ["", "envConsumers", "EnvConsumers ", "All", "none"] {
            assert_eq!(spec(Some(bad)).parsed_rollout(), Err(RolloutError), "{bad}");
        }
        for rollout in [Rollout::EnvConsumers, Rollout::AllConsumers] {
            assert_eq!(rollout.to_string().parse(), Ok(rollout));
        }
    }
}
