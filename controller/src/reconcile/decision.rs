//! What the owned Secret must hold, and what to do about the one there: a
//! plain decision over plain data ([`decide`]), with no client and nothing
//! async, so every branch is tested without a cluster. `write_secret` (in
//! the parent module) reads, decrypts and acts on it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use kseal_shared::contract::{
    MANAGED_ANNOTATION, OWNED_LABEL, RESERVED_PREFIX, TEMPLATE_METADATA_ANNOTATION,
};

use crate::cached::CachedSealedSecret;
use crate::record::{Signer, Subject};

/// Decrypted data, wiped when dropped.
pub(super) struct Plaintext(pub(super) BTreeMap<String, ByteString>);

impl Plaintext {
    /// Whether `text` quotes one of the values, as is or base64-encoded (as
    /// an admission webhook sees a Secret's data). Values under 4 bytes are
    /// not looked for: they would be found in ordinary words.
    pub(super) fn quoted_in(&self, text: &str) -> bool {
        use base64::Engine;
        let text = text.as_bytes();
        self.0.values().any(|value| {
            let value = value.0.as_slice();
            if value.len() < 4 {
                return false;
            }
            let encoded =
                zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value));
            contains(text, value) || contains(text, encoded.as_bytes())
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            value.0.zeroize();
        }
    }
}

/// The keys whose values differ between the Secret's data (`old`) and
/// `new`, including keys only one of them has. Compares in constant time
/// per value, so how long it takes says nothing of where values differ.
fn changed_keys(old: Option<&BTreeMap<String, ByteString>>, new: &Plaintext) -> BTreeSet<String> {
    let empty = BTreeMap::new();
    let old = old.unwrap_or(&empty);
    let differs = |a: Option<&ByteString>, b: Option<&ByteString>| match (a, b) {
        (Some(a), Some(b)) => !bool::from(a.0.as_slice().ct_eq(b.0.as_slice())),
        (None, None) => false,
        _ => true,
    };
    old.keys()
        .chain(new.0.keys())
        .filter(|key| differs(old.get(*key), new.0.get(*key)))
        .cloned()
        .collect()
}

/// The label and annotation keys kseal copied onto a Secret from the
/// template, as recorded in [`TEMPLATE_METADATA_ANNOTATION`].
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TemplateKeys {
    #[serde(default)]
    labels: BTreeSet<String>,
    #[serde(default)]
    annotations: BTreeSet<String>,
}

impl TemplateKeys {
    /// The record on `secret`; none when absent or not one of ours (a hand
    /// edit): then nothing is removed, which is the safe side.
    fn on(secret: &Secret) -> Self {
        secret
            .annotations()
            .get(TEMPLATE_METADATA_ANNOTATION)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    /// The record's annotation value; `None` when it names nothing.
    fn annotation(&self) -> Option<String> {
        if self.labels.is_empty() && self.annotations.is_empty() {
            return None;
        }
        serde_json::to_string(self).ok()
    }
}

/// Labels, annotations, type and immutability the Secret must have.
pub(super) struct Desired {
    /// The template's labels and [`OWNED_LABEL`].
    labels: BTreeMap<String, String>,
    /// The template's annotations and, when it has labels or annotations,
    /// their record ([`TEMPLATE_METADATA_ANNOTATION`]).
    annotations: BTreeMap<String, String>,
    /// The keys copied from the template.
    template_keys: TemplateKeys,
    type_: String,
    immutable: Option<bool>,
}

impl Desired {
    pub(super) fn of(sealed: &CachedSealedSecret) -> Self {
        let template = sealed.template.as_deref().cloned().unwrap_or_default();
        let metadata = template.metadata.unwrap_or_default();
        let template_keys = TemplateKeys {
            labels: metadata.labels.keys().cloned().collect(),
            annotations: metadata.annotations.keys().cloned().collect(),
        };
        let mut labels = metadata.labels;
        labels.insert(OWNED_LABEL.to_owned(), "true".to_owned());
        let mut annotations = metadata.annotations;
        if let Some(record) = template_keys.annotation() {
            annotations.insert(TEMPLATE_METADATA_ANNOTATION.to_owned(), record);
        }
        Self {
            labels,
            annotations,
            template_keys,
            // The API server reads an empty type as Opaque: so must we, or
            // the Secret would differ (and be re-created) at every look.
            type_: template
                .type_
                .filter(|type_| !type_.is_empty())
                .unwrap_or_else(|| "Opaque".to_owned()),
            immutable: template.immutable,
        }
    }

    /// Why `existing` cannot be brought in sync in place, if it cannot: the
    /// API server refuses to change a Secret's type, and the data of a
    /// Secret that is immutable, or to make it mutable again.
    fn needs_recreate(&self, existing: &Secret, data: &Plaintext) -> Option<String> {
        let type_ = existing.type_.as_deref().unwrap_or("Opaque");
        if type_ != self.type_ {
            return Some(format!("its type changed from {type_} to {}", self.type_));
        }
        if existing.immutable == Some(true) {
            let data_differs = existing
                .data
                .as_ref()
                .map_or(!data.0.is_empty(), |d| *d != data.0);
            if data_differs {
                return Some("the data of an immutable Secret changed".to_owned());
            }
            if self.immutable == Some(false) {
                return Some(
                    "the Secret is immutable and the template makes it mutable".to_owned(),
                );
            }
        }
        None
    }

    /// Corrects `existing` in place: our data, type and immutability
    /// exactly; our labels and annotations over whatever else is there;
    /// what the previous template put there and this one no longer has
    /// removed, by the record on the Secret (see [`TemplateKeys`]).
    pub(super) fn apply_to(&self, existing: &mut Secret, data: &Plaintext) {
        let previous = TemplateKeys::on(existing);
        // The values replaced are wiped, not just dropped.
        scrub(existing);
        existing.data = Some(data.0.clone());
        existing.string_data = None;
        existing.type_ = Some(self.type_.clone());
        if self.immutable.is_some() {
            existing.immutable = self.immutable;
        }
        let metadata = &mut existing.metadata;
        for (map, was, now, ours) in [
            (
                &mut metadata.labels,
                &previous.labels,
                &self.template_keys.labels,
                &self.labels,
            ),
            (
                &mut metadata.annotations,
                &previous.annotations,
                &self.template_keys.annotations,
                &self.annotations,
            ),
        ] {
            let map = map.get_or_insert_with(BTreeMap::new);
            // kseal's own keys are never taken from a record, which anyone
            // who may edit the Secret can write.
            for stale in was.difference(now) {
                if !stale.starts_with(RESERVED_PREFIX) {
                    map.remove(stale);
                }
            }
            if !ours.contains_key(TEMPLATE_METADATA_ANNOTATION) {
                map.remove(TEMPLATE_METADATA_ANNOTATION);
            }
            map.extend(ours.clone());
        }
        if metadata
            .annotations
            .as_ref()
            .is_some_and(BTreeMap::is_empty)
        {
            metadata.annotations = None;
        }
    }

    /// The keyed digest of everything written (see `record`), to notice a
    /// changed spec without reading the Secret.
    pub(super) fn content(
        &self,
        signer: Signer<'_>,
        subject: Subject<'_>,
        data: &Plaintext,
    ) -> String {
        signer.content(subject, |fields| {
            fields.field(self.type_.as_bytes());
            fields.field(format!("{:?}", self.immutable).as_bytes());
            for (map_name, map) in [("l", &self.labels), ("a", &self.annotations)] {
                fields.map(
                    map_name,
                    map.iter()
                        .map(|(key, value)| (key.as_bytes(), value.as_bytes())),
                );
            }
            fields.map(
                "d",
                data.0
                    .iter()
                    .map(|(key, value)| (key.as_bytes(), value.0.as_slice())),
            );
        })
    }

    /// Whether `existing` already matches: same data, type and immutability,
    /// our labels and annotations present (others may add their own).
    fn matches(&self, existing: &Secret, data: &Plaintext) -> bool {
        existing
            .data
            .as_ref()
            .map_or(data.0.is_empty(), |d| *d == data.0)
            && existing.string_data.is_none()
            && existing.type_.as_deref().unwrap_or("Opaque") == self.type_
            && (self.immutable.is_none() || existing.immutable == self.immutable)
            && is_subset(&self.labels, existing.metadata.labels.as_ref())
            && is_subset(&self.annotations, existing.metadata.annotations.as_ref())
            // The record equal to ours (absent when ours is): nothing left
            // behind by an earlier template.
            && existing.annotations().get(TEMPLATE_METADATA_ANNOTATION)
                == self.annotations.get(TEMPLATE_METADATA_ANNOTATION)
    }
}

fn is_subset(want: &BTreeMap<String, String>, have: Option<&BTreeMap<String, String>>) -> bool {
    want.iter()
        .all(|(key, value)| have.and_then(|have| have.get(key)) == Some(value))
}

/// Whose a Secret of the SealedSecret's name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ownership {
    /// Ours: this SealedSecret is its controller.
    Owned,
    /// Someone annotated it with [`MANAGED_ANNOTATION`] to hand it over.
    Managed,
    /// kseal made it, here, under this name (it has [`OWNED_LABEL`] and an
    /// origin mark that verifies: [`ORIGIN_ANNOTATION`]), and it has no
    /// controller any more: its SealedSecret was deleted with
    /// `--cascade=orphan`. A copy of a kseal Secret elsewhere keeps the
    /// label but has no valid mark (docs/security.md, "Orphaned Secrets").
    ///
    /// [`ORIGIN_ANNOTATION`]: kseal_shared::contract::ORIGIN_ANNOTATION
    Orphan,
    /// Someone else's: left alone.
    Foreign,
}

impl Ownership {
    /// `marked`: whether the Secret's origin mark verifies.
    fn of(secret: &Secret, owner: &OwnerReference, marked: bool) -> Self {
        let references = secret.owner_references();
        if references
            .iter()
            .any(|reference| reference.uid == owner.uid && reference.controller == Some(true))
        {
            return Ownership::Owned;
        }
        if secret
            .annotations()
            .get(MANAGED_ANNOTATION)
            .map(String::as_str)
            == Some("true")
        {
            return Ownership::Managed;
        }
        let has_controller = references
            .iter()
            .any(|reference| reference.controller == Some(true));
        if !has_controller
            && marked
            && secret.labels().get(OWNED_LABEL).map(String::as_str) == Some("true")
        {
            return Ownership::Orphan;
        }
        Ownership::Foreign
    }
}

/// The Secret kseal would write, as [`decide`] compares it with the one
/// there.
pub(super) struct Want<'a> {
    /// Labels, annotations (with the template-metadata record), type and
    /// immutability.
    pub(super) desired: &'a Desired,
    /// The decrypted values.
    pub(super) data: &'a Plaintext,
    /// The SealedSecret's controller reference.
    pub(super) owner: &'a OwnerReference,
    /// Whether kseal holds a record key, and so puts its origin mark
    /// ([`ORIGIN_ANNOTATION`]) on what it writes: then a Secret of ours
    /// without a mark that verifies is written again to get one.
    ///
    /// [`ORIGIN_ANNOTATION`]: kseal_shared::contract::ORIGIN_ANNOTATION
    pub(super) marking: bool,
}

/// The Secret of the SealedSecret's name as read from the API server.
#[derive(Clone, Copy)]
pub(super) struct Existing<'a> {
    pub(super) secret: &'a Secret,
    /// Whether its origin mark ([`ORIGIN_ANNOTATION`]) verifies for this
    /// namespace and name with a key held here.
    ///
    /// [`ORIGIN_ANNOTATION`]: kseal_shared::contract::ORIGIN_ANNOTATION
    pub(super) marked: bool,
}

/// What to do about the owned Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WriteDecision {
    /// There is none: create it.
    Create,
    /// Ours, and already holds what we would write (and our origin mark,
    /// when we make one): nothing to write.
    InSync,
    /// Ours, handed over, or an orphan of ours: write it. When `was` is
    /// [`Ownership::Orphan`], the caller must first make sure the
    /// SealedSecret is not being deleted (the garbage collector removes the
    /// owner reference then, and adopting would hand the Secret back to it).
    Correct {
        /// Whose it was before.
        was: Ownership,
        /// The data keys whose values change, come or go (what
        /// `spec.rollout` restarts for).
        changed: BTreeSet<String>,
        /// In place, or by delete and create.
        how: Correction,
    },
    /// Not ours to write: left alone.
    Refuse(Refusal),
}

/// How a Secret is brought in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Correction {
    /// Replaced in place.
    InPlace,
    /// Deleted and created again: a field Kubernetes does not let change in
    /// place has to change (`why` says which).
    Recreate {
        why: String,
        /// The old Secret is immutable, so the kubelet does not update the
        /// files of running pods either.
        files_stale: bool,
    },
}

/// Why a Secret is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Someone else's ([`Ownership::Foreign`]): not controlled by this
    /// SealedSecret, not annotated [`MANAGED_ANNOTATION`], not an orphan
    /// with kseal's origin mark.
    NotOwned,
}

/// Decides what to do about `existing` (`None`: no Secret of that name) so
/// that it holds what `want` says. Immutability and type changes are not
/// refused: they are recreated (see [`Desired::needs_recreate`]).
pub(super) fn decide(want: &Want<'_>, existing: Option<Existing<'_>>) -> WriteDecision {
    let Some(Existing { secret, marked }) = existing else {
        return WriteDecision::Create;
    };
    let was = Ownership::of(secret, want.owner, marked);
    if was == Ownership::Foreign {
        return WriteDecision::Refuse(Refusal::NotOwned);
    }
    // Only a Secret we control can be in sync: one handed over or adopted
    // needs at least our owner reference.
    if was == Ownership::Owned
        && want.desired.matches(secret, want.data)
        && (!want.marking || marked)
    {
        return WriteDecision::InSync;
    }
    let changed = changed_keys(secret.data.as_ref(), want.data);
    let how = match want.desired.needs_recreate(secret, want.data) {
        Some(why) => Correction::Recreate {
            why,
            files_stale: secret.immutable == Some(true),
        },
        None => Correction::InPlace,
    };
    WriteDecision::Correct { was, changed, how }
}

/// Wipes the data of a Secret we are done with.
pub(super) fn scrub(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        for value in data.values_mut() {
            value.0.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kseal_shared::contract::ORIGIN_ANNOTATION;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// What `Desired::of` makes of a template with these labels and
    /// annotations.
    fn desired(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Desired {
        let template_keys = TemplateKeys {
            labels: labels.iter().map(|(k, _)| (*k).to_owned()).collect(),
            annotations: annotations.iter().map(|(k, _)| (*k).to_owned()).collect(),
        };
        let mut labels = map(labels);
        labels.insert(OWNED_LABEL.to_owned(), "true".to_owned());
        let mut annotations = map(annotations);
        if let Some(record) = template_keys.annotation() {
            annotations.insert(TEMPLATE_METADATA_ANNOTATION.to_owned(), record);
        }
        Desired {
            labels,
            annotations,
            template_keys,
            type_: "Opaque".to_owned(),
            immutable: None,
        }
    }

    fn data(value: &str) -> Plaintext {
        Plaintext(BTreeMap::from([(
            "k".to_owned(),
            ByteString(value.as_bytes().to_vec()),
        )]))
    }

    /// Keys the last template set and this one lacks go; keys others set,
    /// and kseal's own, stay; the result matches.
    #[test]
    fn removed_template_keys_leave_and_others_stay() {
        let before = desired(&[("team", "a"), ("grafana", "1")], &[("owner", "alice")]);
        let mut secret = Secret::default();
        before.apply_to(&mut secret, &data("v"));
        assert!(before.matches(&secret, &data("v")));
        let theirs = secret.metadata.labels.as_mut().unwrap();
        theirs.insert("added".into(), "x".into());
        secret
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("their/note".into(), "y".into());

        let after = desired(&[("team", "b")], &[]);
        assert!(!after.matches(&secret, &data("v")));
        after.apply_to(&mut secret, &data("v"));
        assert_eq!(
            secret.labels(),
            &map(&[("added", "x"), (OWNED_LABEL, "true"), ("team", "b")])
        );
        assert_eq!(
            secret.annotations(),
            &map(&[
                (
                    TEMPLATE_METADATA_ANNOTATION,
                    r#"{"labels":["team"],"annotations":[]}"#
                ),
                ("their/note", "y"),
            ])
        );
        assert!(after.matches(&secret, &data("v")));

        // No template metadata: the record goes, theirs stays.
        let none = desired(&[], &[]);
        assert!(!none.matches(&secret, &data("v")));
        none.apply_to(&mut secret, &data("v"));
        assert_eq!(
            secret.labels(),
            &map(&[("added", "x"), (OWNED_LABEL, "true")])
        );
        assert_eq!(secret.annotations(), &map(&[("their/note", "y")]));
        assert!(none.matches(&secret, &data("v")));
    }

    /// A record anyone who may edit the Secret wrote: kseal's own keys are
    /// never removed by it, and garbage removes nothing.
    #[test]
    fn a_forged_record_cannot_remove_kseals_keys() {
        let mut secret = Secret::default();
        secret.metadata.labels = Some(map(&[(OWNED_LABEL, "true"), ("kept", "1")]));
        secret.metadata.annotations = Some(map(&[
            (
                TEMPLATE_METADATA_ANNOTATION,
                r#"{"labels":["kseal.dev/owned"],"annotations":["kseal.dev/managed"]}"#,
            ),
            (MANAGED_ANNOTATION, "true"),
        ]));
        desired(&[], &[]).apply_to(&mut secret, &data("v"));
        assert_eq!(secret.labels()[OWNED_LABEL], "true");
        assert_eq!(secret.annotations()[MANAGED_ANNOTATION], "true");

        secret.metadata.annotations = Some(map(&[(TEMPLATE_METADATA_ANNOTATION, "{not json")]));
        desired(&[], &[]).apply_to(&mut secret, &data("v"));
        assert_eq!(secret.labels()["kept"], "1");
        assert!(secret.metadata.annotations.is_none());
    }

    /// A value is found as is and base64-encoded; short ones are not
    /// looked for.
    #[test]
    fn values_are_found_where_quoted() {
        let values = Plaintext(BTreeMap::from([
            ("password".to_owned(), ByteString(b"hunter2".to_vec())),
            ("pin".to_owned(), ByteString(b"42".to_vec())),
        ]));
        assert!(values.quoted_in("refused, value is hunter2"));
        assert!(values.quoted_in("data: aHVudGVyMg=="));
        assert!(!values.quoted_in("refused: 42 is not allowed"));
        assert!(!values.quoted_in("Required value"));
    }

    #[test]
    fn what_kubernetes_cannot_change_in_place_is_recreated() {
        let want = desired(&[], &[]);
        let mut secret = Secret::default();
        want.apply_to(&mut secret, &data("v"));
        assert_eq!(want.needs_recreate(&secret, &data("v")), None);
        assert_eq!(want.needs_recreate(&secret, &data("w")), None, "mutable");
        let mut tls = desired(&[], &[]);
        tls.type_ = "kubernetes.io/tls".to_owned();
        assert_eq!(
            tls.needs_recreate(&secret, &data("v")),
            Some("its type changed from Opaque to kubernetes.io/tls".to_owned())
        );
        secret.immutable = Some(true);
        assert_eq!(want.needs_recreate(&secret, &data("v")), None);
        assert!(want.needs_recreate(&secret, &data("w")).is_some());
        let mut mutable = desired(&[], &[]);
        mutable.immutable = Some(false);
        assert!(mutable.needs_recreate(&secret, &data("v")).is_some());
    }

    #[test]
    fn ownership_adopts_only_kseals_orphans() {
        let owner = OwnerReference {
            uid: "mine".into(),
            controller: Some(true),
            ..OwnerReference::default()
        };
        let other = OwnerReference {
            uid: "theirs".into(),
            controller: Some(true),
            ..OwnerReference::default()
        };
        let secret =
            |labels: &[(&str, &str)], annotations: &[(&str, &str)], owners: Vec<OwnerReference>| {
                let mut secret = Secret::default();
                secret.metadata.labels = Some(map(labels));
                secret.metadata.annotations = Some(map(annotations));
                secret.metadata.owner_references = Some(owners);
                secret
            };
        let owned = [(OWNED_LABEL, "true")];
        // (Secret, whether its origin mark verifies, what it is)
        let cases = [
            (
                secret(&owned, &[], vec![owner.clone()]),
                false,
                Ownership::Owned,
            ),
            (secret(&owned, &[], vec![]), true, Ownership::Orphan),
            // A copy made elsewhere: kseal's label, no mark for this place.
            (secret(&owned, &[], vec![]), false, Ownership::Foreign),
            (
                secret(&owned, &[], vec![other.clone()]),
                true,
                Ownership::Foreign,
            ),
            (
                secret(&[(OWNED_LABEL, "yes")], &[], vec![]),
                true,
                Ownership::Foreign,
            ),
            (secret(&[], &[], vec![]), true, Ownership::Foreign),
            (
                secret(&[], &[(MANAGED_ANNOTATION, "true")], vec![other.clone()]),
                false,
                Ownership::Managed,
            ),
            (
                secret(
                    &owned,
                    &[],
                    vec![OwnerReference {
                        controller: Some(false),
                        ..other
                    }],
                ),
                true,
                Ownership::Orphan,
            ),
        ];
        for (i, (secret, marked, expected)) in cases.iter().enumerate() {
            assert_eq!(
                Ownership::of(secret, &owner, *marked),
                *expected,
                "case {i}"
            );
        }
    }

    /// The SealedSecret's controller reference in the decision tests.
    fn owner() -> OwnerReference {
        OwnerReference {
            uid: "mine".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    /// Someone else's controller reference.
    fn other() -> OwnerReference {
        OwnerReference {
            uid: "theirs".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    /// A Secret as kseal writes it for `want` and `values`, controlled by
    /// `owners`.
    fn written(want: &Desired, values: &Plaintext, owners: Vec<OwnerReference>) -> Secret {
        let mut secret = Secret::default();
        want.apply_to(&mut secret, values);
        secret
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ORIGIN_ANNOTATION.to_owned(), "mark".to_owned());
        secret.metadata.owner_references = Some(owners);
        secret
    }

    /// [`decide`] for `want`/`values` (with origin marks when `marking`)
    /// against `existing` and whether its mark verifies.
    fn decision(
        want: &Desired,
        values: &Plaintext,
        marking: bool,
        existing: Option<(&Secret, bool)>,
    ) -> WriteDecision {
        let owner = owner();
        let want = Want {
            desired: want,
            data: values,
            owner: &owner,
            marking,
        };
        decide(
            &want,
            existing.map(|(secret, marked)| Existing { secret, marked }),
        )
    }

    fn keys(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn in_place(was: Ownership, changed: &[&str]) -> WriteDecision {
        WriteDecision::Correct {
            was,
            changed: keys(changed),
            how: Correction::InPlace,
        }
    }

    #[test]
    fn no_secret_is_created() {
        let want = desired(&[("team", "a")], &[]);
        assert_eq!(
            decision(&want, &data("v"), true, None),
            WriteDecision::Create
        );
        assert_eq!(
            decision(&want, &data("v"), false, None),
            WriteDecision::Create
        );
    }

    /// Ours, holding what we would write: nothing to do; our origin mark is
    /// required only while we make one.
    #[test]
    fn ours_and_matching_is_in_sync() {
        let want = desired(&[("team", "a")], &[("note", "x")]);
        let secret = written(&want, &data("v"), vec![owner()]);
        assert_eq!(
            decision(&want, &data("v"), true, Some((&secret, true))),
            WriteDecision::InSync
        );
        assert_eq!(
            decision(&want, &data("v"), false, Some((&secret, false))),
            WriteDecision::InSync
        );
        // Others may add labels and annotations of their own.
        let mut theirs = secret.clone();
        theirs
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("added".into(), "1".into());
        assert_eq!(
            decision(&want, &data("v"), true, Some((&theirs, true))),
            WriteDecision::InSync
        );
        // An immutable Secret that matches is in sync too.
        let mut immutable = secret;
        immutable.immutable = Some(true);
        assert_eq!(
            decision(&want, &data("v"), true, Some((&immutable, true))),
            WriteDecision::InSync
        );
    }

    /// A Secret of ours without a valid origin mark, while we make marks:
    /// written again (to get one), with no value changed.
    #[test]
    fn ours_without_our_mark_is_rewritten() {
        let want = desired(&[], &[]);
        let secret = written(&want, &data("v"), vec![owner()]);
        assert_eq!(
            decision(&want, &data("v"), true, Some((&secret, false))),
            in_place(Ownership::Owned, &[])
        );
    }

    /// What differs is corrected in place, and the changed keys are named:
    /// values that changed, came or went.
    #[test]
    fn ours_and_different_is_corrected_in_place() {
        let want = desired(&[("team", "a")], &[]);
        let secret = written(&want, &data("v"), vec![owner()]);
        assert_eq!(
            decision(&want, &data("w"), true, Some((&secret, true))),
            in_place(Ownership::Owned, &["k"])
        );
        let more = Plaintext(BTreeMap::from([
            ("k".to_owned(), ByteString(b"v".to_vec())),
            ("new".to_owned(), ByteString(b"n".to_vec())),
        ]));
        assert_eq!(
            decision(&want, &more, true, Some((&secret, true))),
            in_place(Ownership::Owned, &["new"])
        );
        let none = Plaintext(BTreeMap::new());
        assert_eq!(
            decision(&want, &none, true, Some((&secret, true))),
            in_place(Ownership::Owned, &["k"])
        );
        // Only the template's metadata changed: no value does.
        let relabelled = desired(&[("team", "b")], &[]);
        assert_eq!(
            decision(&relabelled, &data("v"), true, Some((&secret, true))),
            in_place(Ownership::Owned, &[])
        );
        // Someone added stringData: the API server would merge it in.
        let mut string_data = secret.clone();
        string_data.string_data = Some(map(&[("k", "x")]));
        assert_eq!(
            decision(&want, &data("v"), true, Some((&string_data, true))),
            in_place(Ownership::Owned, &[])
        );
        // Someone removed our label.
        let mut unlabelled = secret;
        unlabelled
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .remove(OWNED_LABEL);
        assert_eq!(
            decision(&want, &data("v"), true, Some((&unlabelled, true))),
            in_place(Ownership::Owned, &[])
        );
    }

    /// Annotated kseal.dev/managed=true: taken over (never in sync before
    /// it has our owner reference), whoever controlled it and with or
    /// without a mark.
    #[test]
    fn a_managed_secret_is_taken_over() {
        let want = desired(&[], &[]);
        let mut secret = written(&want, &data("v"), vec![other()]);
        secret
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(MANAGED_ANNOTATION.to_owned(), "true".to_owned());
        assert_eq!(
            decision(&want, &data("v"), true, Some((&secret, false))),
            in_place(Ownership::Managed, &[])
        );
        assert_eq!(
            decision(&want, &data("w"), false, Some((&secret, true))),
            in_place(Ownership::Managed, &["k"])
        );
    }

    /// An orphan (kseal's label, no controller) is adopted only when its
    /// origin mark verifies here: a copy of a kseal Secret is not.
    #[test]
    fn orphans_are_adopted_only_with_a_valid_mark() {
        let want = desired(&[], &[]);
        let orphan = written(&want, &data("v"), vec![]);
        assert_eq!(
            decision(&want, &data("v"), true, Some((&orphan, true))),
            in_place(Ownership::Orphan, &[])
        );
        assert_eq!(
            decision(&want, &data("w"), false, Some((&orphan, true))),
            in_place(Ownership::Orphan, &["k"])
        );
        assert_eq!(
            decision(&want, &data("v"), true, Some((&orphan, false))),
            WriteDecision::Refuse(Refusal::NotOwned)
        );
    }

    /// Someone else's Secret is refused, even when it holds exactly what
    /// we would write.
    #[test]
    fn a_foreign_secret_is_refused() {
        let want = desired(&[], &[]);
        let refused = WriteDecision::Refuse(Refusal::NotOwned);
        // Controlled by someone else, with kseal's label and a valid mark.
        let controlled = written(&want, &data("v"), vec![other()]);
        assert_eq!(
            decision(&want, &data("v"), true, Some((&controlled, true))),
            refused
        );
        // No owner and no kseal label.
        let plain = Secret {
            data: Some(data("v").0.clone()),
            ..Secret::default()
        };
        assert_eq!(
            decision(&want, &data("v"), false, Some((&plain, true))),
            refused
        );
        // kseal.dev/managed must be "true".
        let mut half = plain;
        half.metadata.annotations = Some(map(&[(MANAGED_ANNOTATION, "yes")]));
        assert_eq!(
            decision(&want, &data("v"), true, Some((&half, true))),
            refused
        );
    }

    /// A type change, or changed data or mutability of an immutable
    /// Secret, cannot be made in place: recreated, not refused.
    #[test]
    fn what_cannot_change_in_place_is_recreated_by_the_decision() {
        let want = desired(&[], &[]);
        let secret = written(&want, &data("v"), vec![owner()]);
        let mut tls = desired(&[], &[]);
        tls.type_ = "kubernetes.io/tls".to_owned();
        assert_eq!(
            decision(&tls, &data("v"), true, Some((&secret, true))),
            WriteDecision::Correct {
                was: Ownership::Owned,
                changed: keys(&[]),
                how: Correction::Recreate {
                    why: "its type changed from Opaque to kubernetes.io/tls".to_owned(),
                    files_stale: false,
                },
            }
        );
        let mut immutable = secret;
        immutable.immutable = Some(true);
        assert_eq!(
            decision(&want, &data("w"), true, Some((&immutable, true))),
            WriteDecision::Correct {
                was: Ownership::Owned,
                changed: keys(&["k"]),
                how: Correction::Recreate {
                    why: "the data of an immutable Secret changed".to_owned(),
                    files_stale: true,
                },
            }
        );
        let mut mutable = desired(&[], &[]);
        mutable.immutable = Some(false);
        assert_eq!(
            decision(&mutable, &data("v"), true, Some((&immutable, true))),
            WriteDecision::Correct {
                was: Ownership::Owned,
                changed: keys(&[]),
                how: Correction::Recreate {
                    why: "the Secret is immutable and the template makes it mutable".to_owned(),
                    files_stale: true,
                },
            }
        );
        // Metadata of an immutable Secret can change in place.
        let relabelled = desired(&[("team", "b")], &[]);
        assert_eq!(
            decision(&relabelled, &data("v"), true, Some((&immutable, true))),
            in_place(Ownership::Owned, &[])
        );
        // A Secret handed over whose type must change is recreated too.
        let mut managed = written(&want, &data("v"), vec![other()]);
        managed
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(MANAGED_ANNOTATION.to_owned(), "true".to_owned());
        assert!(matches!(
            decision(&tls, &data("v"), false, Some((&managed, false))),
            WriteDecision::Correct {
                was: Ownership::Managed,
                how: Correction::Recreate {
                    files_stale: false,
                    ..
                },
                ..
            }
        ));
    }
}
