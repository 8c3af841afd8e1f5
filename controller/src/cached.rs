//! The SealedSecrets the controller keeps in memory: what reconciling and
//! the metrics read, and nothing more.
//!
//! Every SealedSecret the controller watches stays in memory, so at
//! thousands of objects their representation is most of its resident
//! memory. Compared with the whole `SealedSecret`, this drops the metadata
//! nothing reads (labels, annotations, managedFields, owner references,
//! timestamps) and holds the sealed values in one exact-size slice instead
//! of a B-tree node sized for eleven entries.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kseal_shared::rotation::{MaxAge, MaxAgeError};
use kseal_shared::sealed_secret::SecretTemplate;
use kseal_shared::validation::{self, ObjectError, SecretNames};
use kseal_shared::{
    binding::{Binding, Scope},
    sealed_secret::{SealedSecret, SealedSecretStatus},
};
use kube::Resource;
use serde::Deserialize;

/// A SealedSecret as the controller caches it.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "SealedSecret")]
pub struct CachedSealedSecret {
    /// Name, namespace, uid, resourceVersion, generation and
    /// deletionTimestamp only.
    pub metadata: ObjectMeta,
    pub scope: Scope,
    /// `(data key, sealed value)`, in key order.
    encrypted_data: Box<[(Box<str>, Box<str>)]>,
    pub template: Option<Box<SecretTemplate>>,
    /// `spec.maxAge`, parsed (an invalid one is reported per object).
    pub max_age: Option<Result<MaxAge, MaxAgeError>>,
    pub status: Option<SealedSecretStatus>,
}

impl From<SealedSecret> for CachedSealedSecret {
    fn from(sealed: SealedSecret) -> Self {
        let SealedSecret {
            metadata,
            spec,
            status,
        } = sealed;
        Self {
            metadata: ObjectMeta {
                name: metadata.name,
                namespace: metadata.namespace,
                uid: metadata.uid,
                resource_version: metadata.resource_version,
                generation: metadata.generation,
                deletion_timestamp: metadata.deletion_timestamp,
                ..ObjectMeta::default()
            },
            scope: spec.scope,
            // A BTreeMap iterates in key order, which this keeps.
            encrypted_data: spec
                .encrypted_data
                .into_iter()
                .map(|(key, value)| (key.into_boxed_str(), value.into_boxed_str()))
                .collect(),
            template: spec.template.map(Box::new),
            max_age: spec.max_age.as_deref().map(str::parse),
            status,
        }
    }
}

impl CachedSealedSecret {
    /// `(data key, sealed value)` pairs, in key order.
    pub fn encrypted_data(&self) -> impl Iterator<Item = (&str, &str)> {
        self.encrypted_data
            .iter()
            .map(|(key, value)| (&**key, &**value))
    }

    /// The sealed values.
    pub fn sealed_values(&self) -> impl Iterator<Item = &str> {
        self.encrypted_data.iter().map(|(_, value)| &**value)
    }

    /// What makes this SealedSecret not well-formed, by the shared
    /// definition ([`kseal_shared::validation::object_problems`]).
    pub fn problems(&self) -> Vec<ObjectError> {
        let empty = BTreeMap::new();
        let template_metadata = self
            .template
            .as_ref()
            .and_then(|template| template.metadata.as_ref());
        validation::object_problems(
            SecretNames {
                scope: self.scope,
                name: self.metadata.name.as_deref().unwrap_or_default(),
                namespace: self.metadata.namespace.as_deref().unwrap_or_default(),
                labels: template_metadata.map_or(&empty, |metadata| &metadata.labels),
                annotations: template_metadata.map_or(&empty, |metadata| &metadata.annotations),
            },
            self.encrypted_data.iter().map(|(key, _)| &**key),
        )
    }

    /// Where the value under `key` may be unsealed: this object's scope,
    /// namespace and name (as `kseal_shared::manifest::value_binding`).
    pub fn binding<'a>(&'a self, key: &'a str) -> Binding<'a> {
        Binding::new(
            self.scope,
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
            key,
        )
    }
}

impl Resource for CachedSealedSecret {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        SealedSecret::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        SealedSecret::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        SealedSecret::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        SealedSecret::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kseal_shared::manifest::value_binding;
    use kseal_shared::sealed_secret::SealedSecretSpec;

    use super::*;

    fn sealed() -> SealedSecret {
        let mut sealed = SealedSecret::new(
            "db",
            SealedSecretSpec {
                scope: Scope::NamespaceWide,
                encrypted_data: BTreeMap::from([
                    ("b".to_owned(), "kseal:v1:two".to_owned()),
                    ("a".to_owned(), "kseal:v1:one".to_owned()),
                ]),
                template: Some(SecretTemplate {
                    type_: Some("kubernetes.io/tls".into()),
                    ..SecretTemplate::default()
                }),
                max_age: None,
            },
        );
        sealed.metadata.namespace = Some("app".into());
        sealed.metadata.uid = Some("u-1".into());
        sealed.metadata.generation = Some(3);
        sealed.metadata.labels = Some(BTreeMap::from([("l".into(), "v".into())]));
        sealed.metadata.annotations = Some(BTreeMap::from([("a".into(), "v".into())]));
        sealed
    }

    #[test]
    fn keeps_what_reconciling_reads_and_drops_the_rest() {
        let original = sealed();
        let cached = CachedSealedSecret::from(original.clone());
        assert_eq!(
            cached.encrypted_data().collect::<Vec<_>>(),
            vec![("a", "kseal:v1:one"), ("b", "kseal:v1:two")]
        );
        assert_eq!(cached.metadata.name.as_deref(), Some("db"));
        assert_eq!(cached.metadata.namespace.as_deref(), Some("app"));
        assert_eq!(cached.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(cached.metadata.generation, Some(3));
        assert!(cached.metadata.labels.is_none() && cached.metadata.annotations.is_none());
        assert_eq!(cached.template.as_deref(), original.spec.template.as_ref());
        assert_eq!(cached.binding("a"), value_binding(&original, "a"));
        assert_eq!(
            cached.controller_owner_ref(&()),
            original.controller_owner_ref(&())
        );
        assert_eq!(cached.object_ref(&()), original.object_ref(&()));
    }

    #[test]
    fn deserializes_from_the_api_representation() {
        let json = serde_json::to_value(sealed()).unwrap();
        let cached: CachedSealedSecret = serde_json::from_value(json).unwrap();
        assert_eq!(cached.sealed_values().count(), 2);
        assert_eq!(
            CachedSealedSecret::url_path(&(), Some("app")),
            SealedSecret::url_path(&(), Some("app"))
        );
    }
}
