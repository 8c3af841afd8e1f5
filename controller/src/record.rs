//! Signed records of owned Secrets (`status.secretRecord`).
//!
//! When the controller writes a Secret, or reads it and finds it in sync,
//! it records in the SealedSecret's status the Secret's `resourceVersion`
//! at that moment, the generation it was in sync with and a keyed digest of
//! its content, all under a MAC. Any write to a Secret changes its
//! `resourceVersion`, and the metadata watch of owned Secrets reports it;
//! so a Secret whose watched `resourceVersion` equals a record the
//! controller signed for this object and generation holds exactly what the
//! controller last wrote or checked, and a reconcile (after a restart too)
//! needs neither to read it nor to decrypt anything.
//!
//! The MAC key is derived (HKDF-SHA256) from a cluster private key, which
//! only the controller holds, so whoever may write a SealedSecret's status
//! cannot forge a record for a hand-edited Secret; the record names the key
//! that signed it, so records stay valid across key rotation until that key
//! is retired. The MAC binds the SealedSecret's namespace, name and uid, so
//! a record copied from another object (or from an earlier object of the
//! same name) is not valid here. The content digest is an HMAC of the
//! Secret's data and metadata under the same key: it reveals nothing about
//! the values to anyone without the key, and lets a reconcile of a new
//! generation with the same content (a re-wrap) skip the read.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use kseal_shared::sealed_secret::SecretRecord;
use kseal_shared::x25519::{Identity, KeyId};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// HKDF `info` of the record key: a key for this purpose only.
const KEY_INFO: &[u8] = b"kseal.dev/v1 secret-record key";
/// Domain separation of the two MACs; bump the version when what the
/// controller writes into a Secret changes meaning.
// v2: maps carry their entry count (v1 records cost one read each, once).
// v3: the Secret carries the record of template keys (kseal.dev/
// template-metadata): each Secret is read once more, and gets it.
// v4: and the origin mark (kseal.dev/origin).
const CONTENT_LABEL: &[u8] = b"kseal.dev/v4 secret-record content";
const RECORD_LABEL: &[u8] = b"kseal.dev/v1 secret-record";
/// The origin mark on a Secret kseal made (see [`Signer::origin`]).
const ORIGIN_LABEL: &[u8] = b"kseal.dev/v1 secret-origin";
/// Both tags are truncated to 128 bits.
const TAG_LEN: usize = 16;

/// The SealedSecret a record belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// Record keys derived from the private keys that may decrypt, by key id.
/// `Debug` prints the key ids only.
#[derive(Clone, Default)]
pub(crate) struct RecordKeys {
    by_id: HashMap<KeyId, Zeroizing<[u8; 32]>>,
    /// The key new records are signed with (the active sealing key).
    active: Option<KeyId>,
}

impl fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKeys")
            .field("ids", &self.by_id.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

impl RecordKeys {
    /// Derives the record key of `identity`.
    pub(crate) fn insert(&mut self, identity: &Identity) {
        use kseal_shared::age::secrecy::ExposeSecret;
        let secret = identity.to_secret_string();
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, secret.expose_secret().as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8,160-byte limit.
        if hkdf.expand(KEY_INFO, key.as_mut()).is_ok() {
            self.by_id.insert(identity.key_id(), key);
        }
    }

    /// Signs new records with the key of `id` (when held).
    pub(crate) fn set_active(&mut self, id: Option<KeyId>) {
        self.active = id.filter(|id| self.by_id.contains_key(id));
    }

    /// Whether `mark` is an origin mark ([`Signer::origin`]) for the Secret
    /// `namespace/name`, made with a key this controller holds.
    pub(crate) fn verify_origin(&self, namespace: &str, name: &str, mark: &str) -> bool {
        let Some((id, tag)) = mark.split_once('.') else {
            return false;
        };
        let Some(key) = id.parse().ok().and_then(|id: KeyId| self.by_id.get(&id)) else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        tag.len() == TAG_LEN
            && origin_mac(key, namespace, name)
                .verify_truncated_left(&tag)
                .is_ok()
    }

    /// The signer for new records.
    pub(crate) fn active(&self) -> Option<Signer<'_>> {
        let id = self.active?;
        Some(Signer {
            id,
            key: self.by_id.get(&id)?,
        })
    }

    /// The signer of `record`, if `record` is valid for `subject`: signed
    /// by a key this controller holds, for this very object.
    pub(crate) fn verify(&self, subject: Subject<'_>, record: &SecretRecord) -> Option<Signer<'_>> {
        let id: KeyId = record.key_id.parse().ok()?;
        let signer = Signer {
            id,
            key: self.by_id.get(&id)?,
        };
        let tag = URL_SAFE_NO_PAD.decode(&record.mac).ok()?;
        if tag.len() != TAG_LEN {
            return None;
        }
        signer
            .record_mac(subject, record)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(signer)
    }
}

/// One record key.
#[derive(Clone, Copy)]
pub(crate) struct Signer<'a> {
    id: KeyId,
    key: &'a Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.id)
    }
}

/// Writes length-prefixed fields into a MAC, so no two field lists give
/// the same input.
pub(crate) struct Fields(HmacSha256);

impl Fields {
    /// Adds one field.
    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    /// Adds a named map: its name, its number of entries, then each key and
    /// value. With the count, an entry cannot move from one map to the next
    /// and give the same input (fields alone would not tell where one map
    /// ends).
    pub(crate) fn map<'a>(
        &mut self,
        name: &str,
        entries: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    ) {
        self.field(name.as_bytes());
        self.field(&(entries.len() as u64).to_be_bytes());
        for (key, value) in entries {
            self.field(key);
            self.field(value);
        }
    }
}

impl Signer<'_> {
    fn mac(&self, label: &[u8], subject: Subject<'_>) -> Fields {
        // An HMAC key of any length is valid.
        let mut fields = Fields(
            <HmacSha256 as Mac>::new_from_slice(self.key.as_ref())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        );
        fields.field(label);
        fields.field(subject.namespace.as_bytes());
        fields.field(subject.name.as_bytes());
        fields.field(subject.uid.as_bytes());
        fields
    }

    /// The keyed digest of a Secret's content for `subject`; `write` adds
    /// every field of the content.
    pub(crate) fn content(&self, subject: Subject<'_>, write: impl FnOnce(&mut Fields)) -> String {
        let mut fields = self.mac(CONTENT_LABEL, subject);
        write(&mut fields);
        let tag = fields.0.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
    }

    fn record_mac(&self, subject: Subject<'_>, record: &SecretRecord) -> HmacSha256 {
        let mut fields = self.mac(RECORD_LABEL, subject);
        fields.field(record.resource_version.as_bytes());
        fields.field(&record.generation.to_be_bytes());
        fields.field(record.key_id.as_bytes());
        fields.field(record.content.as_bytes());
        fields.0
    }

    /// A record that the Secret of `subject`, at `resource_version`, holds
    /// `content` and is in sync with `generation`.
    pub(crate) fn sign(
        &self,
        subject: Subject<'_>,
        resource_version: &str,
        generation: i64,
        content: String,
    ) -> SecretRecord {
        let mut record = SecretRecord {
            resource_version: resource_version.to_owned(),
            generation,
            key_id: self.id.to_string(),
            content,
            mac: String::new(),
        };
        let tag = self.record_mac(subject, &record).finalize().into_bytes();
        record.mac = URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN]);
        record
    }

    /// The origin mark of the Secret `namespace/name`: `<key id>.<tag>`,
    /// a MAC over the namespace and the name. kseal puts it on every Secret
    /// it makes (`kseal.dev/origin`), and adopts a Secret left without an
    /// owner only when its mark verifies: a copy of one of its Secrets
    /// under another name or namespace (a `kubectl get | apply`, a policy
    /// engine's clone) carries kseal's label, but not a mark for its new
    /// place. Not bound to the SealedSecret's uid, which an orphaning
    /// delete and a new apply change.
    pub(crate) fn origin(&self, namespace: &str, name: &str) -> String {
        let tag = origin_mac(self.key, namespace, name)
            .finalize()
            .into_bytes();
        format!("{}.{}", self.id, URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN]))
    }

    /// The key that signs.
    #[cfg(test)]
    pub(crate) fn key_id(&self) -> KeyId {
        self.id
    }
}

fn origin_mac(key: &Zeroizing<[u8; 32]>, namespace: &str, name: &str) -> HmacSha256 {
    let mut fields = Fields(
        <HmacSha256 as Mac>::new_from_slice(key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
    );
    fields.field(ORIGIN_LABEL);
    fields.field(namespace.as_bytes());
    fields.field(name.as_bytes());
    fields.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SUBJECT: Subject<'static> = Subject {
        namespace: "app",
        name: "db",
        uid: "uid-1",
    };

    fn keys(identities: &[&Identity], active: &Identity) -> RecordKeys {
        let mut keys = RecordKeys::default();
        for identity in identities {
            keys.insert(identity);
        }
        keys.set_active(Some(active.key_id()));
        keys
    }

    fn content(signer: Signer<'_>, subject: Subject<'_>, value: &[u8]) -> String {
        signer.content(subject, |fields| fields.field(value))
    }

    #[test]
    fn a_signed_record_verifies_only_for_its_object_and_fields() {
        let one = Identity::generate();
        let other = Identity::generate();
        let keys = keys(&[&one], &one);
        let signer = keys.active().unwrap();
        let record = signer.sign(SUBJECT, "42", 3, content(signer, SUBJECT, b"v"));
        assert_eq!(
            keys.verify(SUBJECT, &record).map(|s| s.key_id()),
            Some(one.key_id())
        );

        let elsewhere = [
            Subject {
                namespace: "other",
                ..SUBJECT
            },
            Subject {
                name: "db2",
                ..SUBJECT
            },
            Subject {
                uid: "uid-2",
                ..SUBJECT
            },
        ];
        for subject in elsewhere {
            assert!(keys.verify(subject, &record).is_none(), "{subject:?}");
        }
        type Edit = fn(&mut SecretRecord);
        let edits: [(&str, Edit); 7] = [
            ("resourceVersion", |r| r.resource_version = "43".into()),
            ("generation", |r| r.generation = 4),
            ("content", |r| r.content = "AAAAAAAAAAAAAAAAAAAAAA".into()),
            ("mac", |r| r.mac = "AAAAAAAAAAAAAAAAAAAAAA".into()),
            ("short mac", |r| {
                r.mac.pop();
            }),
            ("not base64", |r| r.mac = "!".repeat(22)),
            ("unknown key", |r| r.key_id = "0011223344556677".into()),
        ];
        for (what, edit) in edits {
            let mut forged = record.clone();
            edit(&mut forged);
            assert!(keys.verify(SUBJECT, &forged).is_none(), "{what}");
        }
        // The same fields signed with a key this controller does not hold.
        let stranger = keys_of(&other);
        let foreign = stranger
            .active()
            .unwrap()
            .sign(SUBJECT, "42", 3, record.content.clone());
        assert!(keys.verify(SUBJECT, &foreign).is_none(), "foreign key");
        let mut relabelled = foreign.clone();
        relabelled.key_id = one.key_id().to_string();
        assert!(keys.verify(SUBJECT, &relabelled).is_none(), "foreign MAC");
    }

    fn keys_of(identity: &Identity) -> RecordKeys {
        keys(&[identity], identity)
    }

    #[test]
    fn records_of_a_key_still_held_verify_after_rotation() {
        let old = Identity::generate();
        let new = Identity::generate();
        let before = keys(&[&old], &old);
        let record = before
            .active()
            .unwrap()
            .sign(SUBJECT, "7", 1, String::new());
        let after = keys(&[&new, &old], &new);
        assert_eq!(
            after.verify(SUBJECT, &record).map(|s| s.key_id()),
            Some(old.key_id())
        );
        assert_eq!(after.active().unwrap().key_id(), new.key_id());
        // Retired (no longer held): no longer trusted.
        assert!(keys_of(&new).verify(SUBJECT, &record).is_none());
    }

    /// An entry moved from one map to the next (an annotation that became a
    /// data key) changes the digest.
    #[test]
    fn maps_are_delimited() {
        let one = Identity::generate();
        let keys = keys_of(&one);
        let signer = keys.active().unwrap();
        let digest = |annotations: &[(&str, &str)], data: &[(&str, &str)]| {
            signer.content(SUBJECT, |fields| {
                fields.map(
                    "a",
                    annotations
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                        .collect::<Vec<_>>()
                        .into_iter(),
                );
                fields.map(
                    "d",
                    data.iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                        .collect::<Vec<_>>()
                        .into_iter(),
                );
            })
        };
        let before = digest(&[("token", "s3cr3t")], &[("url", "u")]);
        let after = digest(&[], &[("token", "s3cr3t"), ("url", "u")]);
        assert_ne!(before, after);
        assert_ne!(digest(&[], &[]), digest(&[("", "")], &[]));
    }

    #[test]
    fn content_digests_are_keyed_and_bound_to_the_object() {
        let one = Identity::generate();
        let two = Identity::generate();
        let k1 = keys_of(&one);
        let k2 = keys_of(&two);
        let (s1, s2) = (k1.active().unwrap(), k2.active().unwrap());
        let digest = content(s1, SUBJECT, b"value");
        assert_eq!(digest, content(s1, SUBJECT, b"value"), "deterministic");
        assert_ne!(digest, content(s1, SUBJECT, b"other"));
        assert_ne!(digest, content(s2, SUBJECT, b"value"), "keyed");
        let moved = Subject {
            uid: "uid-2",
            ..SUBJECT
        };
        assert_ne!(digest, content(s1, moved, b"value"), "bound to the object");
        // Fields are length-prefixed: a split elsewhere is another content.
        let split = s1.content(SUBJECT, |f| {
            f.field(b"val");
            f.field(b"ue");
        });
        let joined = s1.content(SUBJECT, |f| {
            f.field(b"va");
            f.field(b"lue");
        });
        assert_ne!(split, joined);
    }

    /// A mark verifies only for its own namespace and name, under a key
    /// still held, and not when edited.
    #[test]
    fn origin_marks_are_bound_to_the_secrets_place() {
        let one = Identity::generate();
        let two = Identity::generate();
        let keys = keys(&[&one, &two], &one);
        let mark = keys.active().unwrap().origin("app", "db");
        assert!(keys.verify_origin("app", "db", &mark));
        assert!(!keys.verify_origin("app", "db2", &mark));
        assert!(!keys.verify_origin("other", "db", &mark));
        // Length-prefixed: the boundary between namespace and name counts.
        let split = keys.active().unwrap().origin("ap", "pdb");
        assert!(!keys.verify_origin("app", "db", &split));
        let mut edited = mark.clone();
        edited.pop();
        edited.push(if mark.ends_with('A') { 'B' } else { 'A' });
        for bad in [edited.as_str(), "", ".", "nodot", &mark[..mark.len() - 2]] {
            assert!(!keys.verify_origin("app", "db", bad), "{bad}");
        }
        // Made with the other held key: valid; with a key no longer held: not.
        let by_two = keys_of(&two).active().unwrap().origin("app", "db");
        assert!(keys.verify_origin("app", "db", &by_two));
        assert!(!keys_of(&one).verify_origin("app", "db", &by_two));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let one = Identity::generate();
        let keys = keys_of(&one);
        let text = format!("{keys:?} {:?}", keys.active().unwrap());
        assert!(text.contains(&one.key_id().to_string()));
        let key = keys.by_id.get(&one.key_id()).unwrap();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex));
        assert!(!text.contains(&format!("{:?}", **key)));
    }
}
