//! The SealedSecrets the controller keeps in memory: what reconciling and
//! the metrics read, and nothing more.
//!
//! Every SealedSecret the controller watches stays in memory, so at
//! thousands of objects their representation is most of its resident
//! memory. Compared with the whole `SealedSecret`, this drops the metadata
//! nothing reads (labels, annotations, managedFields, owner references,
//! timestamps) and holds the sealed values in one exact-size slice instead
//! of a B-tree node sized for eleven entries.
//!
//! The sealed values themselves (~0.5 KiB each) and the template are kept
//! only while the object is not known to be in sync: once its status
//! carries a signed record for its current generation (see `record`), only
//! their key ids stay, and a reconcile that needs the values after all (the
//! Secret was edited or deleted) reads the SealedSecret once. They are not
//! kept either when they are larger than [`CACHED_BYTES_PER_OBJECT`], or
//! when the object is not well-formed (it fails before it needs them): what
//! the controller holds per object is then bounded by what kseal needs, not
//! by what whoever writes SealedSecrets chooses. The policy's verdict on
//! the template is taken when the object is cached, so the template need
//! not stay for it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kseal_shared::contract::{PolicyViolation, SecretPolicy};
use kseal_shared::envelope::SealedValue;
use kseal_shared::rotation::{MaxAge, MaxAgeError};
use kseal_shared::sealed_secret::{MAX_VALUES, Rollout, SecretTemplate};
use kseal_shared::validation::{self, ObjectError, SecretNames};
use kseal_shared::x25519::KeyId;
use kseal_shared::{
    binding::{Binding, Scope},
    sealed_secret::{SealedSecret, SealedSecretStatus},
};
use kube::Resource;
use serde::Deserialize;

/// `(data key, sealed value)` pairs, exact size.
type SealedValues = Box<[(Box<str>, Box<str>)]>;

/// The most bytes of sealed values and template (keys, values, labels and
/// annotations together) kept per object not yet in sync: a Secret of
/// typical size (a few values and labels: ~1–4 KiB) is well under it, and
/// a larger one is read again when it is reconciled. A SealedSecret may be
/// ~1.5 MiB (the API server's limit); without this bound, a few thousand
/// objects sealed to a key the cluster lacks (never in sync) would hold
/// that much each.
pub(crate) const CACHED_BYTES_PER_OBJECT: usize = 64 * 1024;

/// A SealedSecret as the controller caches it.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "SealedSecret")]
pub(crate) struct CachedSealedSecret {
    /// Name, namespace, uid, resourceVersion, generation and
    /// deletionTimestamp only.
    pub metadata: ObjectMeta,
    pub scope: Scope,
    /// `(data key, sealed value)`, in key order; `None` when dropped (see
    /// the module documentation).
    encrypted_data: Option<SealedValues>,
    /// The distinct sets of key ids the well-formed values name.
    key_id_sets: Box<[Box<[KeyId]>]>,
    /// Per value, in key order, what rotation needs (kept when the values
    /// are dropped).
    value_facts: Box<[ValueFact]>,
    /// What makes the object not well-formed (see [`Self::problems`]),
    /// found when it was cached.
    problems: Box<[ObjectError]>,
    /// Kept with the values (see the module documentation).
    pub template: Option<Box<SecretTemplate>>,
    /// The Secret policy's verdict on the template, taken when cached.
    policy: Result<(), PolicyViolation>,
    /// `spec.maxAge`, parsed (an invalid one is reported per object).
    pub max_age: Option<Result<MaxAge, MaxAgeError>>,
    /// `spec.rollout` (an invalid one is among the problems).
    pub rollout: Option<Rollout>,
    pub status: Option<SealedSecretStatus>,
}

impl From<SealedSecret> for CachedSealedSecret {
    /// [`CachedSealedSecret::watched`] under the strictest policy.
    fn from(sealed: SealedSecret) -> Self {
        Self::watched(sealed, &SecretPolicy::default())
    }
}

impl CachedSealedSecret {
    /// The cached form of an object as the watch delivers it.
    pub(crate) fn watched(sealed: SealedSecret, policy: &SecretPolicy) -> Self {
        // In sync at this generation by its own status's account: the
        // values are not needed unless that turns out wrong (a forged or
        // stale record costs one read, never a wrong Secret).
        let recorded = sealed
            .status
            .as_ref()
            .and_then(|status| status.secret_record.as_ref())
            .is_some_and(|record| Some(record.generation) == sealed.metadata.generation);
        Self::with_policy(sealed, !recorded, policy)
    }

    /// The cached form; `keep_values`: with the sealed values (and the
    /// template), within [`CACHED_BYTES_PER_OBJECT`]. The policy verdict
    /// is the strictest policy's (nothing dangerous allowed): the
    /// controller caches through [`CachedSealedSecret::with_policy`].
    #[cfg(test)]
    pub(crate) fn new(sealed: SealedSecret, keep_values: bool) -> Self {
        Self::with_policy(sealed, keep_values, &SecretPolicy::default())
    }

    /// The cached form under `policy`; `keep_values`: with the sealed
    /// values (and the template), within [`CACHED_BYTES_PER_OBJECT`].
    pub(crate) fn with_policy(
        sealed: SealedSecret,
        keep_values: bool,
        policy: &SecretPolicy,
    ) -> Self {
        Self::build(sealed, keep_values, true, policy)
    }

    /// An object just read to be reconciled: with its values and template
    /// whatever their size (held for that reconcile only, not cached).
    pub(crate) fn read_for_reconcile(sealed: SealedSecret, policy: &SecretPolicy) -> Self {
        Self::build(sealed, true, false, policy)
    }

    /// `bounded`: keep values only within [`CACHED_BYTES_PER_OBJECT`] and
    /// for well-formed objects.
    fn build(
        sealed: SealedSecret,
        keep_values: bool,
        bounded: bool,
        policy: &SecretPolicy,
    ) -> Self {
        let SealedSecret {
            metadata,
            spec,
            status,
        } = sealed;
        let empty = BTreeMap::new();
        let template_metadata = spec
            .template
            .as_ref()
            .and_then(|template| template.metadata.as_ref());
        let mut problems = validation::object_problems(
            SecretNames {
                scope: spec.scope,
                name: metadata.name.as_deref().unwrap_or_default(),
                namespace: metadata.namespace.as_deref().unwrap_or_default(),
                labels: template_metadata.map_or(&empty, |metadata| &metadata.labels),
                annotations: template_metadata.map_or(&empty, |metadata| &metadata.annotations),
            },
            spec.encrypted_data.keys().map(String::as_str),
        );
        // The keys and annotations the type requires: a Secret the API
        // server would refuse is reported as the spec's fault, by name.
        problems.extend(
            kseal_shared::secret_type::presence_problems(
                spec.template
                    .as_ref()
                    .and_then(|template| template.type_.as_deref()),
                template_metadata.map_or(&empty, |metadata| &metadata.annotations),
                |key| spec.encrypted_data.contains_key(key),
            )
            .into_iter()
            .map(ObjectError::from),
        );
        let rollout = spec.parsed_rollout().unwrap_or_else(|err| {
            problems.push(err.into());
            None
        });
        let mut key_id_sets: Vec<Box<[KeyId]>> = Vec::new();
        let mut value_facts = Vec::new();
        // Per value facts only for an object that can be reconciled: one
        // with bad keys or too many values fails before they are needed, and
        // must not cost a copy of each of its keys.
        let facts_wanted = problems.is_empty() && spec.encrypted_data.len() <= MAX_VALUES;
        for (key, value) in spec.encrypted_data.iter().filter(|_| facts_wanted) {
            let mut fact = ValueFact {
                key: key.as_str().into(),
                sealed_at: None,
                key_id_set: None,
            };
            if let Ok(parsed) = SealedValue::parse(value) {
                let set = match key_id_sets
                    .iter()
                    .position(|set| **set == *parsed.key_ids())
                {
                    Some(set) => set,
                    None => {
                        key_id_sets.push(parsed.key_ids().into());
                        key_id_sets.len() - 1
                    }
                };
                fact.key_id_set = u32::try_from(set).ok();
                fact.sealed_at = Some(parsed.sealed_at_seconds());
            }
            value_facts.push(fact);
        }
        let verdict = policy.check(
            spec.template
                .as_ref()
                .and_then(|template| template.type_.as_deref())
                .unwrap_or("Opaque"),
            template_metadata
                .into_iter()
                .flat_map(|metadata| &metadata.labels),
            template_metadata
                .into_iter()
                .flat_map(|metadata| metadata.annotations.keys()),
        );
        let size = spec
            .encrypted_data
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum::<usize>()
            + template_metadata.map_or(0, |metadata| {
                metadata
                    .labels
                    .iter()
                    .chain(&metadata.annotations)
                    .map(|(key, value)| key.len() + value.len())
                    .sum()
            });
        let keep_values =
            keep_values && (!bounded || problems.is_empty() && size <= CACHED_BYTES_PER_OBJECT);
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
            encrypted_data: keep_values.then(|| {
                spec.encrypted_data
                    .into_iter()
                    .map(|(key, value)| (key.into_boxed_str(), value.into_boxed_str()))
                    .collect()
            }),
            key_id_sets: key_id_sets.into(),
            value_facts: value_facts.into(),
            problems: problems.into(),
            template: spec.template.filter(|_| keep_values).map(Box::new),
            policy: verdict,
            max_age: spec.max_age.as_deref().map(str::parse),
            rollout,
            status,
        }
    }

    /// The Secret policy's verdict on the template (taken when cached).
    pub(crate) fn policy_verdict(&self) -> Result<(), &PolicyViolation> {
        self.policy.as_ref().map(|_| ())
    }

    /// Whether the sealed values and the template are at hand (else they
    /// were dropped: read the object to decrypt).
    pub(crate) fn has_values(&self) -> bool {
        self.encrypted_data.is_some()
    }

    /// `(data key, sealed value)` pairs, in key order (none when dropped).
    pub(crate) fn encrypted_data(&self) -> impl Iterator<Item = (&str, &str)> {
        self.encrypted_data
            .iter()
            .flatten()
            .map(|(key, value)| (&**key, &**value))
    }

    /// The distinct sets of key ids the well-formed values are sealed to.
    pub(crate) fn key_id_sets(&self) -> impl Iterator<Item = &[KeyId]> {
        self.key_id_sets.iter().map(|set| &**set)
    }

    /// Per value, in key order: its data key, seal time and key ids, as
    /// the text says (trusted once every value opened: see `rotation`).
    pub(crate) fn value_facts(&self) -> impl Iterator<Item = ValueView<'_>> {
        self.value_facts.iter().map(|fact| ValueView {
            key: &fact.key,
            sealed_at: fact.sealed_at,
            key_ids: fact
                .key_id_set
                .and_then(|set| self.key_id_sets.get(usize::try_from(set).ok()?))
                .map(|set| &**set),
        })
    }

    /// The key ids the well-formed values are sealed to (sorted, unique).
    pub(crate) fn key_ids(&self) -> BTreeSet<KeyId> {
        self.key_id_sets().flatten().copied().collect()
    }

    /// What makes this SealedSecret not well-formed, by the shared
    /// definition ([`kseal_shared::validation::object_problems`] and the
    /// keys its type requires, [`kseal_shared::secret_type::presence_problems`]).
    pub(crate) fn problems(&self) -> &[ObjectError] {
        &self.problems
    }

    /// Where the value under `key` may be unsealed: this object's scope,
    /// namespace and name (as `kseal_shared::manifest::value_binding`).
    pub(crate) fn binding<'a>(&'a self, key: &'a str) -> Binding<'a> {
        Binding::new(
            self.scope,
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
            key,
        )
    }
}

/// What rotation needs of one value: ~40 bytes instead of the ~0.5 KiB
/// value.
#[derive(Clone, Debug)]
struct ValueFact {
    key: Box<str>,
    /// Seconds since the Unix epoch (0: not recorded); `None` when the
    /// value does not parse.
    sealed_at: Option<u64>,
    /// Index into `key_id_sets`; `None` when the value does not parse.
    key_id_set: Option<u32>,
}

/// One value's data key, seal time and key ids (see
/// [`CachedSealedSecret::value_facts`]); `None`s when it does not parse.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValueView<'a> {
    /// The data key.
    pub key: &'a str,
    /// Seconds since the Unix epoch, 0 when not recorded.
    pub sealed_at: Option<u64>,
    /// The key ids it is sealed to.
    pub key_ids: Option<&'a [KeyId]>,
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
                // A type with no rule of its own (a tls one would need
                // tls.crt and tls.key: see the test below).
                template: Some(SecretTemplate {
                    type_: Some("example.com/custom".into()),
                    ..SecretTemplate::default()
                }),
                max_age: None,
                ..Default::default()
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
        assert_eq!(cached.encrypted_data().count(), 2);
        assert_eq!(
            CachedSealedSecret::url_path(&(), Some("app")),
            SealedSecret::url_path(&(), Some("app"))
        );
    }

    #[test]
    fn values_are_dropped_only_with_a_record_for_the_current_generation() {
        use kseal_shared::sealed_secret::SecretRecord;
        let recipient = kseal_shared::x25519::Identity::generate()
            .recipient()
            .clone();
        let mut with_values = sealed();
        let value = kseal_shared::envelope::seal(
            b"v",
            &value_binding(&with_values, "a"),
            std::slice::from_ref(&recipient),
        )
        .unwrap()
        .encode();
        with_values.spec.encrypted_data.insert("a".into(), value);
        let status = |generation| SealedSecretStatus {
            secret_record: Some(SecretRecord {
                generation,
                ..SecretRecord::default()
            }),
            ..SealedSecretStatus::default()
        };
        for (status, kept) in [
            (None, true),
            (Some(SealedSecretStatus::default()), true),
            (Some(status(2)), true),
            (Some(status(3)), false),
        ] {
            let mut object = with_values.clone();
            object.status = status.clone();
            let cached = CachedSealedSecret::from(object);
            assert_eq!(cached.has_values(), kept, "{status:?}");
            assert_eq!(cached.encrypted_data().count(), if kept { 2 } else { 0 });
            // The key ids of the well-formed values stay either way.
            let sets: Vec<&[KeyId]> = cached.key_id_sets().collect();
            assert_eq!(sets, vec![&[recipient.key_id()][..]]);
            assert!(cached.problems().is_empty());
        }
    }

    #[test]
    fn what_is_kept_per_object_is_bounded_and_the_policy_verdict_stays() {
        use kseal_shared::sealed_secret::TemplateMetadata;
        let with_template = |labels: usize, value: usize| {
            let mut object = sealed();
            object.spec.template = Some(SecretTemplate {
                metadata: Some(TemplateMetadata {
                    labels: (0..labels).map(|i| (format!("l{i}"), "v".into())).collect(),
                    annotations: BTreeMap::from([(
                        "grafana_datasource".to_owned(),
                        "x".repeat(value),
                    )]),
                }),
                ..SecretTemplate::default()
            });
            object
        };
        // Small: kept; the verdict names the dangerous annotation either way.
        let small = CachedSealedSecret::from(with_template(3, 10));
        assert!(small.has_values() && small.template.is_some());
        assert!(small.policy_verdict().is_err());
        // Larger than the per-object budget: neither values nor template.
        let large = CachedSealedSecret::from(with_template(3, CACHED_BYTES_PER_OBJECT));
        assert!(!large.has_values() && large.template.is_none());
        assert!(
            large.policy_verdict().is_err(),
            "the verdict outlives the template"
        );
        // Read again to be reconciled, it has them.
        let read = CachedSealedSecret::read_for_reconcile(
            with_template(3, CACHED_BYTES_PER_OBJECT),
            &SecretPolicy::default(),
        );
        assert!(read.has_values() && read.template.is_some());
        // Not well-formed (too many labels for kseal): nothing kept but why.
        let invalid = CachedSealedSecret::from(with_template(65, 1));
        assert!(!invalid.has_values() && invalid.template.is_none());
        assert!(matches!(
            invalid.problems(),
            [ObjectError::TooManyTemplateEntries { count: 65, .. }]
        ));
        // In sync: the template goes with the values.
        let mut recorded = with_template(3, 10);
        recorded.status = Some(SealedSecretStatus {
            secret_record: Some(kseal_shared::sealed_secret::SecretRecord {
                generation: 3,
                ..Default::default()
            }),
            ..SealedSecretStatus::default()
        });
        let recorded = CachedSealedSecret::from(recorded);
        assert!(!recorded.has_values() && recorded.template.is_none());
        // An operator who allows it gets a passing verdict.
        let policy = SecretPolicy {
            allow_prefixes: ["grafana_datasource".to_owned()].into(),
            ..SecretPolicy::default()
        };
        let allowed = CachedSealedSecret::watched(with_template(3, 10), &policy);
        assert!(allowed.policy_verdict().is_ok());
    }

    /// The keys a type requires are part of being well-formed: a tls
    /// object without them is a problem, named, and its values are not
    /// kept.
    #[test]
    fn a_type_s_required_keys_are_problems() {
        let mut object = sealed();
        object.spec.template = Some(SecretTemplate {
            type_: Some("kubernetes.io/tls".into()),
            ..SecretTemplate::default()
        });
        let cached = CachedSealedSecret::from(object.clone());
        let problems: Vec<String> = cached.problems().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("data[tls.crt]") && problems[1].contains("data[tls.key]"));
        object.spec.encrypted_data = BTreeMap::from([
            ("tls.crt".to_owned(), "kseal:v1:one".to_owned()),
            ("tls.key".to_owned(), "kseal:v1:two".to_owned()),
        ]);
        assert!(CachedSealedSecret::from(object).problems().is_empty());
    }

    #[test]
    fn many_data_keys_cost_no_copy_each() {
        let mut object = sealed();
        object.spec.encrypted_data = (0..2_000)
            .map(|i| (format!("!{i}"), String::new()))
            .collect();
        let cached = CachedSealedSecret::from(object.clone());
        assert_eq!(cached.value_facts().count(), 0);
        assert!(!cached.has_values());
        // The first problems, then a count of the rest.
        assert_eq!(cached.problems().len(), validation::MAX_PROBLEMS + 1);
        assert!(matches!(
            cached.problems().last(),
            Some(ObjectError::MoreProblems { count }) if *count == 2_000 - validation::MAX_PROBLEMS
        ));
        // Valid names, but more than a SealedSecret may hold.
        object.spec.encrypted_data = (0..=MAX_VALUES)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert_eq!(CachedSealedSecret::from(object).value_facts().count(), 0);
    }
}
