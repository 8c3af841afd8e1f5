//! The Secrets kseal owns, as much as reconciling needs to know about them:
//! which exist, and their `resourceVersion`. Whether one is in sync is the
//! signed record in its SealedSecret's status (`record`): a Secret whose
//! `resourceVersion` here equals the record's is unchanged since.
//!
//! Fed by the metadata-only watch of owned Secrets. kube's reflector store
//! would keep each Secret's whole `ObjectMeta` (~1.4 KiB with owner
//! references and labels); this keeps ~100 bytes, which is a third of the
//! controller's memory growth per object at thousands of SealedSecrets.
//! Entries go away with their Secret, so nothing accumulates as objects come
//! and go.

use std::collections::HashMap;
use std::sync::RwLock;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use tokio::sync::watch;

/// name → the resourceVersion the watch last reported.
type ByName = HashMap<Box<str>, Box<str>>;

#[derive(Debug, Default)]
struct Index {
    /// namespace → name → resourceVersion.
    live: HashMap<Box<str>, ByName>,
    /// Being filled by a (re-)list; replaces `live` when complete.
    relisting: Option<HashMap<Box<str>, ByName>>,
}

/// Shared between the watch that fills it and every reconcile.
#[derive(Debug)]
pub struct OwnedSecrets {
    index: RwLock<Index>,
    ready: watch::Sender<bool>,
}

impl Default for OwnedSecrets {
    fn default() -> Self {
        Self {
            index: RwLock::default(),
            ready: watch::Sender::new(false),
        }
    }
}

impl OwnedSecrets {
    /// Takes in one watch event (call it for every event, in order).
    pub fn apply(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let Ok(mut index) = self.index.write() else {
            return;
        };
        let index = &mut *index;
        match event {
            watcher::Event::Apply(secret) => {
                if let Some((namespace, name, version)) = identity(secret) {
                    insert(&mut index.live, namespace, name, version);
                }
            }
            watcher::Event::Delete(secret) => {
                if let Some((namespace, name, _)) = identity(secret)
                    && let Some(by_name) = index.live.get_mut(namespace)
                {
                    by_name.remove(name);
                    if by_name.is_empty() {
                        index.live.remove(namespace);
                    }
                }
            }
            watcher::Event::Init => index.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(secret) => {
                if let (Some(relisting), Some((namespace, name, version))) =
                    (index.relisting.as_mut(), identity(secret))
                {
                    insert(relisting, namespace, name, version);
                }
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = index.relisting.take() {
                    index.live = fresh;
                }
                self.ready.send_replace(true);
            }
        }
    }

    /// Waits until the first complete list is in: before that, a Secret
    /// missing from the index may well exist.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// The resourceVersion of the owned Secret `namespace/name`, if the
    /// watch has reported it. `None` while the watch re-lists: the re-list
    /// triggers reconciles (its objects count as touched) before it is
    /// complete, and until then `live` may hold a version the Secret no
    /// longer has (edited while the watch was down), so the caller reads.
    pub fn resource_version(&self, namespace: &str, name: &str) -> Option<String> {
        let index = self.index.read().ok()?;
        if index.relisting.is_some() {
            return None;
        }
        index
            .live
            .get(namespace)?
            .get(name)
            .map(|version| version.to_string())
    }

    /// How many Secrets the index holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index
            .read()
            .map(|index| index.live.values().map(HashMap::len).sum())
            .unwrap_or(0)
    }
}

fn identity(secret: &PartialObjectMeta<Secret>) -> Option<(&str, &str, &str)> {
    Some((
        secret.metadata.namespace.as_deref()?,
        secret.metadata.name.as_deref()?,
        secret.metadata.resource_version.as_deref()?,
    ))
}

fn insert(map: &mut HashMap<Box<str>, ByName>, namespace: &str, name: &str, version: &str) {
    map.entry(namespace.into())
        .or_default()
        .insert(name.into(), version.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(namespace: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata.namespace = Some(namespace.into());
        meta.metadata.name = Some(name.into());
        meta.metadata.resource_version = Some(version.into());
        meta
    }

    #[test]
    fn follows_the_watch() {
        let owned = OwnedSecrets::default();
        owned.apply(&watcher::Event::Init);
        owned.apply(&watcher::Event::InitApply(secret("a", "one", "1")));
        assert_eq!(
            owned.resource_version("a", "one"),
            None,
            "not before InitDone"
        );
        owned.apply(&watcher::Event::InitDone);
        assert_eq!(owned.resource_version("a", "one").as_deref(), Some("1"));
        owned.apply(&watcher::Event::Apply(secret("b", "two", "2")));
        owned.apply(&watcher::Event::Apply(secret("a", "one", "3")));
        assert_eq!(owned.resource_version("a", "one").as_deref(), Some("3"));
        assert_eq!(owned.resource_version("b", "two").as_deref(), Some("2"));
        owned.apply(&watcher::Event::Delete(secret("b", "two", "4")));
        assert_eq!(owned.resource_version("b", "two"), None);
        assert_eq!(owned.len(), 1);
    }

    #[test]
    fn a_relist_drops_what_is_gone_once_complete() {
        let owned = OwnedSecrets::default();
        owned.apply(&watcher::Event::Apply(secret("a", "kept", "1")));
        owned.apply(&watcher::Event::Apply(secret("a", "gone", "2")));
        owned.apply(&watcher::Event::Init);
        owned.apply(&watcher::Event::InitApply(secret("a", "kept", "3")));
        // While the list is incomplete nothing is vouched for: "kept" may
        // have been edited, "gone" deleted, while the watch was down.
        for name in ["kept", "gone"] {
            assert_eq!(owned.resource_version("a", name), None, "{name}");
        }
        owned.apply(&watcher::Event::InitDone);
        assert_eq!(owned.resource_version("a", "gone"), None);
        assert_eq!(owned.resource_version("a", "kept").as_deref(), Some("3"));
        assert_eq!(owned.len(), 1);
    }
}
