//! How the controller lists and watches objects whose size others choose,
//! so that what it holds while doing so is bounded by what kseal needs.
//!
//! * [`OwnedSecretMeta`]: an owned Secret decoded to what reconciling needs
//!   (name, namespace, uid, resourceVersion, its controller reference).
//!   Anyone who may create Secrets in a watched namespace can label theirs
//!   `kseal.dev/owned=true`; their labels, annotations and managed fields
//!   are skipped while parsing, never allocated.
//! * [`ListStrategy`]: the initial list as a stream of single objects
//!   (Kubernetes' streaming lists, `sendInitialEvents`), where the API
//!   server supports them (1.32 and later by default); otherwise pages of
//!   [`FALLBACK_PAGE_SIZE`] objects, so no page can hold more than
//!   [`PAGE_BYTES`]. A page is parsed whole, so its size, not the number
//!   of objects, is what bounds memory during a list.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The largest object the API server returns: etcd stores at most 1.5 MiB
/// (its default `--max-request-bytes`), and an object comes back with its
/// managed fields, which can double it.
pub(crate) const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;
/// The most bytes one page of a paged list may hold.
pub(crate) const PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Objects per page when the API server has no streaming lists: as many
/// objects of the largest size as fit in [`PAGE_BYTES`].
pub(crate) const FALLBACK_PAGE_SIZE: u32 = (PAGE_BYTES / MAX_OBJECT_BYTES) as u32;

/// How the initial list of a watch is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// A watch with `sendInitialEvents=true`: one object at a time.
    Streaming,
    /// Paged lists of [`FALLBACK_PAGE_SIZE`] objects.
    Paged,
}

impl ListStrategy {
    /// A watcher configuration that lists this way.
    pub(crate) fn config(self) -> watcher::Config {
        match self {
            Self::Streaming => watcher::Config::default().streaming_lists(),
            Self::Paged => watcher::Config::default().page_size(FALLBACK_PAGE_SIZE),
        }
    }

    /// Whether the API server streams initial lists: a metadata watch of
    /// Secrets in `namespace` (any, with no selector match) that asks for
    /// initial events must end its (empty) initial list with the bookmark
    /// that says so. A server without the feature refuses the parameter
    /// (1.27–1.31 with it off) or ignores it (older ones), and then no such
    /// bookmark comes.
    pub(crate) async fn probe(client: &Client, namespace: Option<&str>) -> Self {
        let api: Api<PartialObjectMeta<Secret>> = match namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        };
        let params = WatchParams::streaming_lists()
            .labels("kseal.dev/list-probe=none")
            .timeout(5);
        let Ok(stream) = api.watch(&params, "0").await else {
            return Self::Paged;
        };
        let mut stream = std::pin::pin!(stream);
        let ends_initial_list = async {
            use futures::StreamExt;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(WatchEvent::Bookmark(bookmark)) => {
                        return bookmark
                            .metadata
                            .annotations
                            .contains_key("k8s.io/initial-events-end");
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            false
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), ends_initial_list).await {
            Ok(true) => Self::Streaming,
            _ => Self::Paged,
        }
    }
}

/// An owned Secret as the watch of owned Secrets delivers it: metadata
/// only (`Accept: …;as=PartialObjectMetadata`), decoded to its name,
/// namespace, uid and resourceVersion and the one owner reference that
/// names its controller. Labels, annotations, managed fields and every
/// other owner reference are skipped while parsing.
#[derive(Clone, Debug, Default)]
pub(crate) struct OwnedSecretMeta {
    /// Only the fields named above are set.
    pub metadata: ObjectMeta,
}

impl Resource for OwnedSecretMeta {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Secret::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Secret::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Secret::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Secret::plural(dt)
    }
    fn metadata_api() -> bool {
        true
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> Deserialize<'de> for OwnedSecretMeta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Unknown fields (apiVersion, kind, and in metadata everything not
        // named) are skipped by serde without being kept.
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: WireMeta,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct WireMeta {
            name: Option<String>,
            namespace: Option<String>,
            uid: Option<String>,
            resource_version: Option<String>,
            #[serde(default, deserialize_with = "controller_reference")]
            owner_references: Option<OwnerReference>,
        }
        let wire = Wire::deserialize(deserializer)?;
        let meta = wire.metadata;
        Ok(Self {
            metadata: ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                resource_version: meta.resource_version,
                owner_references: meta.owner_references.map(|reference| vec![reference]),
                ..ObjectMeta::default()
            },
        })
    }
}

/// The first owner reference with `controller: true`; the others are
/// skipped one by one, never collected.
fn controller_reference<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<OwnerReference>, D::Error> {
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<OwnerReference>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of owner references")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while found.is_none() {
                match seq.next_element::<OwnerReference>()? {
                    Some(reference) if reference.controller == Some(true) => {
                        found = Some(reference);
                    }
                    Some(_) => {}
                    None => return Ok(None),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(found)
        }
    }
    deserializer.deserialize_any(First)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keeps_what_reconciling_needs_and_skips_the_rest() {
        let labels: serde_json::Map<String, serde_json::Value> = (0..1000)
            .map(|i| (format!("l{i}"), serde_json::json!("x".repeat(63))))
            .collect();
        let json = serde_json::json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "db", "namespace": "app", "uid": "u-1", "resourceVersion": "42",
                "labels": labels,
                "annotations": {"a": "b"},
                "managedFields": [{"manager": "kubectl"}],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u-2"},
                    {"apiVersion": "kseal.dev/v1alpha1", "kind": "SealedSecret", "name": "db",
                     "uid": "u-3", "controller": true},
                    {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-4", "controller": true}
                ]
            }
        });
        let meta: OwnedSecretMeta = serde_json::from_value(json).unwrap();
        assert_eq!(meta.metadata.name.as_deref(), Some("db"));
        assert_eq!(meta.metadata.namespace.as_deref(), Some("app"));
        assert_eq!(meta.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(meta.metadata.resource_version.as_deref(), Some("42"));
        assert!(meta.metadata.labels.is_none() && meta.metadata.annotations.is_none());
        assert!(meta.metadata.managed_fields.is_none());
        let owners = meta.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "u-3");
    }

    #[test]
    fn no_owner_references_and_a_deleted_final_state_decode() {
        for metadata in [
            serde_json::json!({"name": "s", "namespace": "n", "resourceVersion": "1"}),
            serde_json::json!({"name": "s", "namespace": "n", "resourceVersion": "1", "ownerReferences": null}),
            serde_json::json!({"name": "s", "namespace": "n", "resourceVersion": "1", "ownerReferences": []}),
        ] {
            let meta: OwnedSecretMeta =
                serde_json::from_value(serde_json::json!({ "metadata": metadata })).unwrap();
            assert!(meta.metadata.owner_references.is_none());
            assert_eq!(meta.metadata.name.as_deref(), Some("s"));
        }
    }

    #[test]
    fn a_page_holds_at_most_its_byte_budget() {
        assert_eq!(FALLBACK_PAGE_SIZE, 5);
        assert!(FALLBACK_PAGE_SIZE as usize * MAX_OBJECT_BYTES <= PAGE_BYTES);
    }
}
