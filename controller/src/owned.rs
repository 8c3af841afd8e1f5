//! The Secrets kseal owns, as much as reconciling needs to know about them:
//! which exist, and their `resourceVersion`. Whether one is in sync is the
//! signed record in its SealedSecret's status (`record`): a Secret whose
//! `resourceVersion` here equals the record's is unchanged since.
//!
//! Fed by the metadata-only watch of owned Secrets, and by the controller's
//! own writes (see [`OwnedSecrets::begin_write`]): the watch of Secrets and
//! the watch of SealedSecrets are two streams with no order between them,
//! so the status event that follows a write can arrive before the Secret
//! event of that write. Without the write-through, the reconcile that event
//! starts would see the Secret's previous version, take it for a change
//! and read the Secret again.
//!
//! kube's reflector store
//! would keep each Secret's whole `ObjectMeta` (~1.4 KiB with owner
//! references and labels); this keeps ~100 bytes, which is a third of the
//! controller's memory growth per object at thousands of SealedSecrets.
//! Entries go away with their Secret, so nothing accumulates as objects come
//! and go.

use std::collections::HashMap;
use std::sync::RwLock;

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
    /// Writes in flight, by (namespace, name): whether a watch event for
    /// that Secret (or a re-list) came in since the write began.
    writes: HashMap<(Box<str>, Box<str>), bool>,
    /// The watch failed and has not delivered an event since: it may be
    /// stuck retrying (e.g. list allowed, watch forbidden) and never report
    /// a later change, so nothing is written through meanwhile.
    watch_failing: bool,
}

impl Index {
    /// Something that may show a later state of every Secret (a re-list,
    /// a watch failure) came in: no write in flight is taken in.
    fn disturb_all(&mut self) {
        self.writes
            .values_mut()
            .for_each(|disturbed| *disturbed = true);
    }

    /// A watch event for `namespace/name` was taken in.
    fn disturb(&mut self, namespace: &str, name: &str) {
        if self.writes.is_empty() {
            return;
        }
        if let Some(disturbed) = self.writes.get_mut(&(namespace.into(), name.into())) {
            *disturbed = true;
        }
    }
}

/// Shared between the watch that fills it and every reconcile.
#[derive(Debug)]
pub(crate) struct OwnedSecrets {
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
    pub(crate) fn apply<K: kube::Resource>(&self, event: &watcher::Event<K>) {
        let Ok(mut index) = self.index.write() else {
            return;
        };
        let index = &mut *index;
        index.watch_failing = false;
        match event {
            watcher::Event::Apply(secret) => {
                if let Some((namespace, name, version)) = identity(secret) {
                    index.disturb(namespace, name);
                    insert(&mut index.live, namespace, name, version);
                }
            }
            watcher::Event::Delete(secret) => {
                if let Some((namespace, name, _)) = identity(secret) {
                    index.disturb(namespace, name);
                    if let Some(by_name) = index.live.get_mut(namespace) {
                        by_name.remove(name);
                        if by_name.is_empty() {
                            index.live.remove(namespace);
                        }
                    }
                }
            }
            watcher::Event::Init => {
                index.relisting = Some(HashMap::new());
                index.disturb_all();
            }
            watcher::Event::InitApply(secret) => {
                if let Some((namespace, name, version)) = identity(secret) {
                    index.disturb(namespace, name);
                    if let Some(relisting) = index.relisting.as_mut() {
                        insert(relisting, namespace, name, version);
                    }
                }
            }
            watcher::Event::InitDone => {
                index.disturb_all();
                if let Some(fresh) = index.relisting.take() {
                    index.live = fresh;
                }
                self.ready.send_replace(true);
            }
        }
    }

    /// Waits until the first complete list is in: before that, a Secret
    /// missing from the index may well exist.
    pub(crate) async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// The resourceVersion of the owned Secret `namespace/name`, if the
    /// watch has reported it. `None` while the watch re-lists: the re-list
    /// triggers reconciles (its objects count as touched) before it is
    /// complete, and until then `live` may hold a version the Secret no
    /// longer has (edited while the watch was down), so the caller reads.
    pub(crate) fn resource_version(&self, namespace: &str, name: &str) -> Option<String> {
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

    /// Takes in a failure of the watch: until its next event, no write is
    /// taken in without it (see [`PendingWrite::wrote`]).
    pub(crate) fn watch_failed(&self) {
        if let Ok(mut index) = self.index.write() {
            index.watch_failing = true;
            index.disturb_all();
        }
    }

    /// Marks the start of a write (create or update) of the owned Secret
    /// `namespace/name`; report its outcome with [`PendingWrite::wrote`].
    /// Call it before the first write request. At most one write per Secret
    /// is in flight (the reconciler never runs one object twice at once).
    pub(crate) fn begin_write(&self, namespace: &str, name: &str) -> PendingWrite<'_> {
        if let Ok(mut index) = self.index.write() {
            // During a (re-)list, the list may already show a later state
            // (a delete has no InitApply): such a write is never taken in.
            let disturbed = index.relisting.is_some();
            index
                .writes
                .insert((namespace.into(), name.into()), disturbed);
        }
        PendingWrite {
            owned: self,
            key: Some((namespace.into(), name.into())),
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

/// A write of an owned Secret in flight (see [`OwnedSecrets::begin_write`]).
/// Dropped without [`Self::wrote`], it changes nothing.
#[derive(Debug)]
pub(crate) struct PendingWrite<'a> {
    owned: &'a OwnedSecrets,
    key: Option<(Box<str>, Box<str>)>,
}

impl PendingWrite<'_> {
    /// The write succeeded (or a read after [`OwnedSecrets::begin_write`]
    /// found the Secret in sync) and the Secret now has `version`: the
    /// index takes it at once, unless a watch event for this Secret (or a
    /// re-list, or a watch failure) came in meanwhile. Pass `None` when the
    /// Secret as the API server returned it lacks the owned label: the
    /// watch never reports such a Secret, so the index must not hold it.
    ///
    /// Why this is sound: the Secret carries the owned label (so the watch
    /// will report `version` too), and every event the watch still
    /// holds back for this Secret is then either older than `version` (the
    /// watch reports one object's changes in order; such an event only makes
    /// a reconcile read once, as before) or later (it replaces `version`,
    /// and starts a reconcile that sees it). An event taken in during the
    /// write may already be `version` or a later change, so then the index
    /// keeps what the watch said.
    pub(crate) fn wrote(mut self, version: Option<&str>) {
        let Some(key) = self.key.take() else {
            return;
        };
        let Ok(mut index) = self.owned.index.write() else {
            return;
        };
        let disturbed = index.writes.remove(&key).unwrap_or(true);
        if let Some(version) = version
            && !disturbed
            && !index.watch_failing
            && index.relisting.is_none()
        {
            insert(&mut index.live, &key.0, &key.1, version);
        }
    }
}

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(mut index) = self.owned.index.write()
        {
            index.writes.remove(&key);
        }
    }
}

fn identity<K: kube::Resource>(secret: &K) -> Option<(&str, &str, &str)> {
    let metadata = secret.meta();
    Some((
        metadata.namespace.as_deref()?,
        metadata.name.as_deref()?,
        metadata.resource_version.as_deref()?,
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
    use crate::listing::OwnedSecretMeta;

    type Ev = watcher::Event<OwnedSecretMeta>;

    fn secret(namespace: &str, name: &str, version: &str) -> OwnedSecretMeta {
        let mut meta = OwnedSecretMeta::default();
        meta.metadata.namespace = Some(namespace.into());
        meta.metadata.name = Some(name.into());
        meta.metadata.resource_version = Some(version.into());
        meta
    }

    #[test]
    fn follows_the_watch() {
        let owned = OwnedSecrets::default();
        owned.apply(&Ev::Init);
        owned.apply(&Ev::InitApply(secret("a", "one", "1")));
        assert_eq!(
            owned.resource_version("a", "one"),
            None,
            "not before InitDone"
        );
        owned.apply(&Ev::InitDone);
        assert_eq!(owned.resource_version("a", "one").as_deref(), Some("1"));
        owned.apply(&Ev::Apply(secret("b", "two", "2")));
        owned.apply(&Ev::Apply(secret("a", "one", "3")));
        assert_eq!(owned.resource_version("a", "one").as_deref(), Some("3"));
        assert_eq!(owned.resource_version("b", "two").as_deref(), Some("2"));
        owned.apply(&Ev::Delete(secret("b", "two", "4")));
        assert_eq!(owned.resource_version("b", "two"), None);
        assert_eq!(owned.len(), 1);
    }

    fn ready(owned: &OwnedSecrets) {
        owned.apply(&Ev::Init);
        owned.apply(&Ev::InitDone);
    }

    /// The status event after a write may start a reconcile before the
    /// Secret's own event: the index already knows the version written.
    #[test]
    fn a_write_is_known_before_its_watch_event() {
        let owned = OwnedSecrets::default();
        ready(&owned);
        owned.apply(&Ev::Apply(secret("a", "edited", "5")));
        // An update of a Secret the watch reported, and a create.
        owned.begin_write("a", "edited").wrote(Some("6"));
        owned.begin_write("a", "new").wrote(Some("7"));
        assert_eq!(owned.resource_version("a", "edited").as_deref(), Some("6"));
        assert_eq!(owned.resource_version("a", "new").as_deref(), Some("7"));
        // Their events arrive later and agree; a later change wins.
        owned.apply(&Ev::Apply(secret("a", "edited", "6")));
        owned.apply(&Ev::Apply(secret("a", "new", "8")));
        assert_eq!(owned.resource_version("a", "edited").as_deref(), Some("6"));
        assert_eq!(owned.resource_version("a", "new").as_deref(), Some("8"));
        // A Secret outside the watch (its label removed by hand) that the
        // write labels again.
        owned.begin_write("a", "unlabelled").wrote(Some("9"));
        assert_eq!(
            owned.resource_version("a", "unlabelled").as_deref(),
            Some("9")
        );
    }

    /// Any event for the Secret during the write may be the write itself
    /// followed by a later change: then the watch has the last word, in
    /// whatever order the events came.
    #[test]
    fn an_event_during_the_write_keeps_the_watchs_word() {
        type Events = &'static [(&'static str, Option<&'static str>)];
        // (event kind, version) taken in while the write of version 6 is
        // in flight; what the index must say afterwards.
        let cases: [(&str, Events, Option<&str>); 5] = [
            ("the write's own event", &[("apply", Some("6"))], Some("6")),
            (
                "the write, then a hand edit",
                &[("apply", Some("6")), ("apply", Some("7"))],
                Some("7"),
            ),
            (
                "the write, then a delete",
                &[("apply", Some("6")), ("delete", Some("7"))],
                None,
            ),
            ("an older edit", &[("apply", Some("4"))], Some("4")),
            ("a delete", &[("delete", Some("4"))], None),
        ];
        for (what, events, expected) in cases {
            let owned = OwnedSecrets::default();
            ready(&owned);
            owned.apply(&Ev::Apply(secret("a", "s", "3")));
            let write = owned.begin_write("a", "s");
            for (kind, version) in events {
                let object = secret("a", "s", version.unwrap_or_default());
                owned.apply(&match *kind {
                    "apply" => Ev::Apply(object),
                    _ => Ev::Delete(object),
                });
            }
            write.wrote(Some("6"));
            assert_eq!(
                owned.resource_version("a", "s").as_deref(),
                expected,
                "{what}"
            );
        }
        // Events for other Secrets do not count.
        let owned = OwnedSecrets::default();
        ready(&owned);
        let write = owned.begin_write("a", "s");
        owned.apply(&Ev::Apply(secret("a", "other", "5")));
        owned.apply(&Ev::Apply(secret("b", "s", "5")));
        write.wrote(Some("6"));
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("6"));
    }

    /// A re-list that begins during the write and lists the Secret deleted
    /// (no InitApply) or edited after the write: the index ends with what
    /// the list said, never the version written (nothing is pending after
    /// the list to correct it).
    #[test]
    fn a_relist_during_the_write_has_the_last_word() {
        for (what, listed, expected) in [
            ("deleted after the write", None, None),
            ("edited after the write", Some("7"), Some("7")),
        ] {
            // Init before the write ends, the list after.
            let owned = OwnedSecrets::default();
            ready(&owned);
            owned.apply(&Ev::Apply(secret("a", "s", "3")));
            let write = owned.begin_write("a", "s");
            owned.apply(&Ev::Init);
            if let Some(version) = listed {
                owned.apply(&Ev::InitApply(secret("a", "s", version)));
            }
            owned.apply(&Ev::InitDone);
            write.wrote(Some("6"));
            assert_eq!(
                owned.resource_version("a", "s").as_deref(),
                expected,
                "{what}"
            );

            // The whole re-list while the write is in flight, Init first.
            let owned = OwnedSecrets::default();
            owned.apply(&Ev::Init);
            let write = owned.begin_write("a", "s");
            if let Some(version) = listed {
                owned.apply(&Ev::InitApply(secret("a", "s", version)));
            }
            owned.apply(&Ev::InitDone);
            write.wrote(Some("6"));
            assert_eq!(
                owned.resource_version("a", "s").as_deref(),
                expected,
                "{what}, first list"
            );
        }
    }

    /// An event older than the write that comes after it takes the index
    /// back (one read more, never a wrong skip); the write's own event
    /// follows and restores it.
    #[test]
    fn an_older_event_after_the_write_costs_a_read_only() {
        let owned = OwnedSecrets::default();
        ready(&owned);
        owned.begin_write("a", "s").wrote(Some("6"));
        owned.apply(&Ev::Apply(secret("a", "s", "4")));
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("4"));
        owned.apply(&Ev::Apply(secret("a", "s", "6")));
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("6"));
    }

    /// After a watch failure nothing is written through until the watch
    /// delivers again: it may be stuck and never report a later change.
    #[test]
    fn a_failing_watch_stops_the_write_through() {
        let owned = OwnedSecrets::default();
        ready(&owned);
        owned.apply(&Ev::Apply(secret("a", "s", "3")));
        let in_flight = owned.begin_write("a", "s");
        owned.watch_failed();
        in_flight.wrote(Some("6"));
        owned.begin_write("a", "s").wrote(Some("7"));
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("3"));
        owned.apply(&Ev::Apply(secret("a", "other", "8")));
        owned.begin_write("a", "s").wrote(Some("9"));
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("9"));
    }

    /// A re-list during the write, a failed write, an answer without a
    /// version: the index keeps to the watch.
    #[test]
    fn a_relist_or_a_failed_write_changes_nothing() {
        let owned = OwnedSecrets::default();
        ready(&owned);
        owned.apply(&Ev::Apply(secret("a", "s", "3")));
        let write = owned.begin_write("a", "s");
        owned.apply(&Ev::Init);
        owned.apply(&Ev::InitApply(secret("a", "s", "3")));
        owned.apply(&Ev::InitDone);
        write.wrote(Some("6"));
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("3"));

        // Begun before a re-list, finished while it runs.
        let write = owned.begin_write("a", "s");
        owned.apply(&Ev::Init);
        write.wrote(Some("6"));
        owned.apply(&Ev::InitApply(secret("a", "s", "3")));
        owned.apply(&Ev::InitDone);
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("3"));

        drop(owned.begin_write("a", "s"));
        owned.begin_write("a", "s").wrote(None);
        assert_eq!(owned.resource_version("a", "s").as_deref(), Some("3"));
        let writes = owned.index.read().unwrap().writes.len();
        assert_eq!(writes, 0, "no marker left behind");
    }

    #[test]
    fn a_relist_drops_what_is_gone_once_complete() {
        let owned = OwnedSecrets::default();
        owned.apply(&Ev::Apply(secret("a", "kept", "1")));
        owned.apply(&Ev::Apply(secret("a", "gone", "2")));
        owned.apply(&Ev::Init);
        owned.apply(&Ev::InitApply(secret("a", "kept", "3")));
        // While the list is incomplete nothing is vouched for: "kept" may
        // have been edited, "gone" deleted, while the watch was down.
        for name in ["kept", "gone"] {
            assert_eq!(owned.resource_version("a", name), None, "{name}");
        }
        owned.apply(&Ev::InitDone);
        assert_eq!(owned.resource_version("a", "gone"), None);
        assert_eq!(owned.resource_version("a", "kept").as_deref(), Some("3"));
        assert_eq!(owned.len(), 1);
    }
}
