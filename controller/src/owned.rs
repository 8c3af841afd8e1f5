//! The Secrets kseal owns, as much as reconciling needs to know about them:
//! which exist, their `resourceVersion`, and which version was last seen in
//! sync with which content.
//!
//! Fed by the metadata-only watch of owned Secrets. kube's reflector store
//! would keep each Secret's whole `ObjectMeta` (~1.4 KiB with owner
//! references and labels); this keeps ~150 bytes, which is a third of the
//! controller's memory growth per object at thousands of SealedSecrets.
//! Entries go away with their Secret, so nothing accumulates as objects come
//! and go.

use std::collections::HashMap;
use std::sync::RwLock;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use tokio::sync::watch;

/// A digest of everything the controller writes into a Secret (see
/// `reconcile::Desired::digest`).
pub type ContentDigest = [u8; 32];

/// What a sync was computed from: the SealedSecret's uid and generation and
/// the key set's generation, hashed. While all three stay the same, so does
/// what decrypting would give, and a reconcile can skip it.
pub type SourceStamp = [u8; 16];

/// A Secret as a reconcile last found or made it in sync.
#[derive(Debug, Clone)]
pub struct Synced {
    pub version: Box<str>,
    pub content: ContentDigest,
    pub source: SourceStamp,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    /// The resourceVersion the watch last reported (`None`: not seen yet).
    seen: Option<Box<str>>,
    synced: Option<Synced>,
}

impl Entry {
    /// The last sync, if the watch shows the Secret unchanged since.
    fn current_sync(&self) -> Option<&Synced> {
        let synced = self.synced.as_ref()?;
        (self.seen.as_deref() == Some(&*synced.version)).then_some(synced)
    }
}

type ByName = HashMap<Box<str>, Entry>;

#[derive(Debug, Default)]
struct Index {
    /// namespace → name → entry.
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
                    entry_in(&mut index.live, namespace, name).seen = Some(version.into());
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
                    entry_in(relisting, namespace, name).seen = Some(version.into());
                }
            }
            watcher::Event::InitDone => {
                if let Some(mut fresh) = index.relisting.take() {
                    // What was known to be in sync stays known, for the
                    // Secrets that still exist.
                    for (namespace, by_name) in &mut fresh {
                        for (name, entry) in by_name.iter_mut() {
                            entry.synced = index
                                .live
                                .get(namespace)
                                .and_then(|old| old.get(name))
                                .and_then(|old| old.synced.clone());
                        }
                    }
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
    /// watch has reported it.
    pub fn resource_version(&self, namespace: &str, name: &str) -> Option<String> {
        let index = self.index.read().ok()?;
        let entry = index.live.get(namespace)?.get(name)?;
        entry.seen.as_deref().map(str::to_owned)
    }

    /// Whether the Secret is, as far as the watch says, still exactly as a
    /// reconcile last found or made it, from this very source.
    pub fn in_sync_from(&self, namespace: &str, name: &str, source: &SourceStamp) -> bool {
        self.current_sync(namespace, name, |synced| synced.source == *source)
    }

    /// Whether the Secret is, as far as the watch says, still exactly as a
    /// reconcile last found or made it with this content.
    pub fn unchanged_since_sync(
        &self,
        namespace: &str,
        name: &str,
        content: &ContentDigest,
    ) -> bool {
        self.current_sync(namespace, name, |synced| synced.content == *content)
    }

    fn current_sync(&self, namespace: &str, name: &str, test: impl Fn(&Synced) -> bool) -> bool {
        let Ok(index) = self.index.read() else {
            return false;
        };
        index
            .live
            .get(namespace)
            .and_then(|by_name| by_name.get(name))
            .and_then(Entry::current_sync)
            .is_some_and(test)
    }

    /// Records that the Secret is in sync as `synced` says (`None`: forget;
    /// it is not ours, or not in sync).
    pub fn mark_synced(&self, namespace: &str, name: &str, synced: Option<Synced>) {
        let Ok(mut index) = self.index.write() else {
            return;
        };
        match synced {
            Some(synced) => entry_in(&mut index.live, namespace, name).synced = Some(synced),
            None => {
                if let Some(entry) = index
                    .live
                    .get_mut(namespace)
                    .and_then(|by_name| by_name.get_mut(name))
                {
                    entry.synced = None;
                }
            }
        }
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

fn entry_in<'a>(
    map: &'a mut HashMap<Box<str>, ByName>,
    namespace: &str,
    name: &str,
) -> &'a mut Entry {
    map.entry(namespace.into())
        .or_default()
        .entry(name.into())
        .or_default()
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

    fn synced(version: &str, content: u8, source: u8) -> Option<Synced> {
        Some(Synced {
            version: version.into(),
            content: [content; 32],
            source: [source; 16],
        })
    }

    #[test]
    fn in_sync_only_at_the_recorded_version_and_content() {
        let owned = OwnedSecrets::default();
        owned.apply(&watcher::Event::Apply(secret("a", "one", "5")));
        assert!(!owned.unchanged_since_sync("a", "one", &[1; 32]));
        owned.mark_synced("a", "one", synced("5", 1, 9));
        assert!(owned.unchanged_since_sync("a", "one", &[1; 32]));
        assert!(
            !owned.unchanged_since_sync("a", "one", &[2; 32]),
            "other content"
        );
        assert!(owned.in_sync_from("a", "one", &[9; 16]));
        assert!(!owned.in_sync_from("a", "one", &[8; 16]), "other source");
        owned.apply(&watcher::Event::Apply(secret("a", "one", "6")));
        assert!(
            !owned.unchanged_since_sync("a", "one", &[1; 32]),
            "changed since"
        );
        assert!(!owned.in_sync_from("a", "one", &[9; 16]), "changed since");
        owned.mark_synced("a", "one", synced("6", 1, 9));
        owned.mark_synced("a", "one", None);
        assert!(
            !owned.unchanged_since_sync("a", "one", &[1; 32]),
            "forgotten"
        );
    }

    #[test]
    fn a_sync_recorded_before_the_watch_reports_the_secret_counts_once_it_does() {
        let owned = OwnedSecrets::default();
        owned.mark_synced("a", "one", synced("7", 3, 3));
        assert_eq!(owned.resource_version("a", "one"), None);
        assert!(!owned.unchanged_since_sync("a", "one", &[3; 32]));
        owned.apply(&watcher::Event::Apply(secret("a", "one", "7")));
        assert!(owned.unchanged_since_sync("a", "one", &[3; 32]));
    }

    #[test]
    fn a_relist_keeps_what_is_in_sync_and_drops_what_is_gone() {
        let owned = OwnedSecrets::default();
        owned.apply(&watcher::Event::Apply(secret("a", "kept", "1")));
        owned.apply(&watcher::Event::Apply(secret("a", "gone", "2")));
        owned.mark_synced("a", "kept", synced("1", 4, 4));
        owned.apply(&watcher::Event::Init);
        owned.apply(&watcher::Event::InitApply(secret("a", "kept", "1")));
        assert_eq!(
            owned.resource_version("a", "gone").as_deref(),
            Some("2"),
            "the old view serves until the list is complete"
        );
        owned.apply(&watcher::Event::InitDone);
        assert_eq!(owned.resource_version("a", "gone"), None);
        assert!(owned.unchanged_since_sync("a", "kept", &[4; 32]));
        assert_eq!(owned.len(), 1);
    }
}
