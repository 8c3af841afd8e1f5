//! A Bitnami `SealedSecret` object: parsed, decrypted into a
//! [`PlainSecret`], and converted into a kseal [`SealedSecret`].

use std::collections::{BTreeMap, BTreeSet};

use kube::core::ObjectMeta;
use serde_json::{Map, Value};

use super::rsa_keys::BitnamiKeyring;
use super::value::{decrypt_value, oaep_label};
use super::{
    ANNOTATION_PREFIX, API_VERSION, CLUSTER_WIDE_ANNOTATION, GROUP, KIND,
    NAMESPACE_WIDE_ANNOTATION, ObjectError,
};
use crate::binding::Scope;
use crate::manifest::{PlainSecret, STRIPPED_ANNOTATIONS, SealOptions, seal_secret};
use crate::sealed_secret::SealedSecret;
use crate::x25519::Recipient;

/// Whether a manifest object is a Bitnami SealedSecret, of any version.
pub fn is_bitnami_sealed_secret(value: &Value) -> bool {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    field("kind") == KIND
        && field("apiVersion")
            .strip_prefix(GROUP)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The parts of a Bitnami SealedSecret a migration needs. Public data only:
/// the values are still sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitnamiSealedSecret {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty when unset).
    pub namespace: String,
    /// From the SealedSecret's own annotations, as Bitnami's controller reads it.
    pub scope: Scope,
    /// Labels and annotations of the SealedSecret object itself.
    pub labels: BTreeMap<String, String>,
    /// See `labels`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.encryptedData`: data key → Bitnami sealed value.
    pub encrypted_data: BTreeMap<String, String>,
    /// `spec.template`.
    pub type_: Option<String>,
    /// `spec.template.immutable`.
    pub immutable: Option<bool>,
    /// `spec.template.metadata.labels`.
    pub template_labels: BTreeMap<String, String>,
    /// `spec.template.metadata.annotations`.
    pub template_annotations: BTreeMap<String, String>,
    /// `spec.template.data` keys with a template (unsupported by kseal).
    pub templated_keys: Vec<String>,
    /// `spec.template.data` keys set to null: Bitnami leaves them out of the
    /// Secret.
    pub omitted_keys: Vec<String>,
}

/// The result of migrating one object.
#[derive(Clone, Debug)]
pub struct Migrated {
    /// The kseal SealedSecret (values sealed to the given recipients).
    pub sealed: SealedSecret,
    /// The data keys migrated.
    pub keys: Vec<String>,
    /// Annotations not carried over (Bitnami's own, and any that may hold
    /// plaintext), object and template together, sorted.
    pub dropped_annotations: Vec<String>,
    /// Indices (into the keyring) of the Bitnami keys that opened the values.
    pub bitnami_keys: BTreeSet<usize>,
}

impl BitnamiSealedSecret {
    /// Reads a Bitnami SealedSecret. Fails on an unknown version, the legacy
    /// `spec.data` format, or a malformed object; `spec.template.data` is
    /// recorded here and refused by [`Self::unseal`].
    pub fn parse(value: &Value) -> Result<Self, ObjectError> {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("the document is not a mapping"))?;
        let api_version = string_field(object, "apiVersion", "apiVersion")?.unwrap_or_default();
        let kind = string_field(object, "kind", "kind")?.unwrap_or_default();
        if kind != KIND || !is_bitnami_sealed_secret(value) {
            return Err(invalid(format!(
                "expected a {API_VERSION} {KIND}, found apiVersion {api_version:?}, kind {kind:?}"
            )));
        }
        if api_version != API_VERSION {
            return Err(ObjectError::UnsupportedVersion(api_version));
        }
        let empty = Map::new();
        let metadata = map_field(object, "metadata", "metadata")?.unwrap_or(&empty);
        let spec = map_field(object, "spec", "spec")?.unwrap_or(&empty);
        let has_legacy_data = match spec.get("data") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if has_legacy_data {
            return Err(ObjectError::LegacyData);
        }
        let template = map_field(spec, "template", "spec.template")?.unwrap_or(&empty);
        let template_metadata =
            map_field(template, "metadata", "spec.template.metadata")?.unwrap_or(&empty);
        let annotations = string_map(metadata, "annotations", "metadata.annotations")?;
        let scope = if annotations.get(CLUSTER_WIDE_ANNOTATION).map(String::as_str) == Some("true")
        {
            Scope::ClusterWide
        } else if annotations
            .get(NAMESPACE_WIDE_ANNOTATION)
            .map(String::as_str)
            == Some("true")
        {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        };
        let mut templated_keys = Vec::new();
        let mut omitted_keys = Vec::new();
        if let Some(data) = map_field(template, "data", "spec.template.data")? {
            for (key, value) in data {
                match value {
                    Value::Null => omitted_keys.push(key.clone()),
                    Value::String(_) => templated_keys.push(key.clone()),
                    _ => {
                        return Err(invalid(format!("spec.template.data.{key} is not a string")));
                    }
                }
            }
        }
        Ok(Self {
            name: string_field(metadata, "name", "metadata.name")?.unwrap_or_default(),
            namespace: string_field(metadata, "namespace", "metadata.namespace")?
                .unwrap_or_default(),
            scope,
            labels: string_map(metadata, "labels", "metadata.labels")?,
            annotations,
            encrypted_data: string_map(spec, "encryptedData", "spec.encryptedData")?,
            type_: string_field(template, "type", "spec.template.type")?,
            immutable: match template.get("immutable") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(invalid("spec.template.immutable is not a boolean")),
            },
            template_labels: string_map(
                template_metadata,
                "labels",
                "spec.template.metadata.labels",
            )?,
            template_annotations: string_map(
                template_metadata,
                "annotations",
                "spec.template.metadata.annotations",
            )?,
            templated_keys,
            omitted_keys,
        })
    }

    /// `namespace/name`, or what of it there is, for messages.
    pub fn display_name(&self) -> String {
        match (self.namespace.as_str(), self.name.as_str()) {
            (_, "") => "unnamed".into(),
            ("", name) => name.into(),
            (namespace, name) => format!("{namespace}/{name}"),
        }
    }

    /// The OAEP label every value of this object was sealed with.
    pub fn label(&self) -> String {
        oaep_label(self.scope, &self.namespace, &self.name)
    }

    fn check_binding(&self) -> Result<(), ObjectError> {
        if self.name.is_empty() {
            return Err(invalid("metadata.name is missing"));
        }
        if self.scope.binds_namespace() && self.namespace.is_empty() {
            return Err(invalid(format!(
                "metadata.namespace is missing, and Bitnami bound these {} values to the namespace they were sealed in: set it and migrate again",
                self.scope
            )));
        }
        if !self.templated_keys.is_empty() {
            return Err(ObjectError::TemplateData(self.templated_keys.clone()));
        }
        Ok(())
    }

    /// Decrypts every value into the Secret Bitnami's controller would
    /// create (template type, immutable, labels and annotations included;
    /// Bitnami's own annotations left out). Returns the Secret and the
    /// indices of the keys that opened its values. Every value that fails is
    /// reported.
    pub fn unseal(
        &self,
        keyring: &BitnamiKeyring,
    ) -> Result<(PlainSecret, BTreeSet<usize>), ObjectError> {
        self.check_binding()?;
        let label = self.label();
        let mut secret = PlainSecret {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            type_: self.type_.clone(),
            immutable: self.immutable,
            labels: self.template_labels.clone(),
            annotations: self
                .template_annotations
                .iter()
                .filter(|(key, _)| !key.starts_with(ANNOTATION_PREFIX))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            data: BTreeMap::new(),
        };
        let mut used = BTreeSet::new();
        let mut failures = Vec::new();
        for (key, encoded) in &self.encrypted_data {
            if self.omitted_keys.contains(key) {
                continue;
            }
            match decrypt_value(keyring, encoded, &label) {
                Ok((plaintext, index)) => {
                    used.insert(index);
                    secret
                        .insert(key, plaintext)
                        .map_err(|message| invalid(format!("spec.encryptedData: {message}")))?;
                }
                Err(error) => failures.push((key.clone(), error)),
            }
        }
        if failures.is_empty() {
            Ok((secret, used))
        } else {
            Err(ObjectError::Values(failures))
        }
    }

    /// Decrypts every value and seals it again for kseal, to `recipients`,
    /// keeping name, namespace, scope and template. The SealedSecret object's
    /// own labels and annotations are carried over too (GitOps tools read
    /// them), without Bitnami's.
    pub fn migrate(
        &self,
        keyring: &BitnamiKeyring,
        recipients: &[Recipient],
    ) -> Result<Migrated, ObjectError> {
        let (mut secret, bitnami_keys) = self.unseal(keyring)?;
        let mut dropped: BTreeSet<String> = self
            .template_annotations
            .keys()
            .chain(self.annotations.keys())
            .filter(|key| {
                is_bitnami_annotation(key) || STRIPPED_ANNOTATIONS.contains(&key.as_str())
            })
            .filter(|key| {
                !matches!(
                    key.as_str(),
                    NAMESPACE_WIDE_ANNOTATION | CLUSTER_WIDE_ANNOTATION
                )
            })
            .cloned()
            .collect();
        dropped.extend(secret.strip_leaky_annotations());
        let options = SealOptions {
            scope: self.scope,
            recipients,
            allow_empty_data: true,
        };
        let mut sealed = seal_secret(&secret, options).map_err(ObjectError::Seal)?;
        let keys = secret.data.keys().cloned().collect();
        // The plaintext is no longer needed; SecretBytes wipe on drop.
        secret.data.clear();
        let object_annotations: BTreeMap<String, String> = self
            .annotations
            .iter()
            .filter(|(key, _)| {
                !is_bitnami_annotation(key) && !STRIPPED_ANNOTATIONS.contains(&key.as_str())
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        sealed.metadata = ObjectMeta {
            labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
            annotations: (!object_annotations.is_empty()).then_some(object_annotations),
            ..sealed.metadata
        };
        Ok(Migrated {
            sealed,
            keys,
            dropped_annotations: dropped.into_iter().collect(),
            bitnami_keys,
        })
    }
}

fn is_bitnami_annotation(key: &str) -> bool {
    key.starts_with(ANNOTATION_PREFIX)
}

fn invalid(message: impl Into<String>) -> ObjectError {
    ObjectError::Invalid(message.into())
}

fn string_field(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<String>, ObjectError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{path} is not a string"))),
    }
}

fn map_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ObjectError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(invalid(format!("{path} is not a mapping"))),
    }
}

fn string_map(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, ObjectError> {
    let Some(map) = map_field(object, field, path)? else {
        return Ok(BTreeMap::new());
    };
    map.iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key.clone(), s.clone())),
            _ => Err(invalid(format!("{path}.{key} is not a string"))),
        })
        .collect()
}
