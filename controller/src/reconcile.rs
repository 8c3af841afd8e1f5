//! Reconciling one SealedSecret: decrypt its values with the key each names,
//! create or correct the Secret it owns, report the outcome in its status
//! and as Events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kseal_shared::envelope::{SealedValue, open};
use kseal_shared::sealed_secret::{Condition, MAX_VALUES, SealedSecretStatus, SecretRecord};
use kseal_shared::{sealed_secret::SealedSecret, x25519::KeyId};

use crate::cached::CachedSealedSecret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use kseal_shared::contract::{ORIGIN_ANNOTATION, OWNED_LABEL, PolicyViolation};

use crate::conditions::{READY, RECONCILING, STALLED};
use crate::context::Context;
use crate::error::{CONDITION_MESSAGE_MAX, Error, bounded, secret_write};
use crate::record::Subject;
use crate::rotation;
use crate::sealing_keys::KeySet;
use decision::{
    Correction, Desired, Existing, Ownership, Plaintext, Refusal, Want, WriteDecision, decide,
    scrub,
};

mod decision;

/// Every object is looked at again this often even without a change (all
/// at once, see `run`: a timer per object would cost ~0.5 KiB each).
pub(crate) const RESYNC: Duration = Duration::from_secs(3600);
/// Bad input is retried this often (and at once when keys change).
const PERMANENT_RETRY: Duration = Duration::from_secs(300);
/// A Secret in the way is looked at again this often, so annotating it
/// with kseal.dev/managed takes effect soon.
const NOT_OWNED_RETRY: Duration = Duration::from_secs(30);
/// Transient errors back off exponentially up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What a successful sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Created,
    /// Corrected in place; `was`: whose the Secret was before (now ours);
    /// `changed`: the data keys whose values changed, came or went.
    Updated {
        was: Ownership,
        changed: BTreeSet<String>,
    },
    /// Deleted and created again, because a field that Kubernetes does not
    /// let change in place had to change (`why` says which); `changed` as
    /// for `Updated`; `files_stale`: the old Secret was immutable, so the
    /// kubelet does not update the files of running pods either.
    Recreated {
        why: String,
        changed: BTreeSet<String>,
        files_stale: bool,
    },
    InSync,
}

impl Outcome {
    /// The Normal Event that tells people what the sync did, if anything.
    fn event(&self, name: &str) -> Option<(&'static str, String)> {
        match self {
            Outcome::InSync => None,
            Outcome::Created => Some(("Unsealed", format!("Secret {name} created"))),
            Outcome::Updated {
                was: Ownership::Owned | Ownership::Foreign,
                ..
            } => Some(("Unsealed", format!("Secret {name} updated"))),
            Outcome::Updated {
                was: Ownership::Managed,
                ..
            } => Some((
                "TakenOver",
                format!(
                    "Secret {name} was annotated kseal.dev/managed=true: taken over and updated"
                ),
            )),
            Outcome::Updated {
                was: Ownership::Orphan,
                ..
            } => Some((
                "Adopted",
                format!(
                    "Secret {name} carried kseal's owned label and had no owner (its SealedSecret was deleted with --cascade=orphan): adopted and updated"
                ),
            )),
            Outcome::Recreated { why, .. } => Some((
                "Recreated",
                format!(
                    "Secret {name} was deleted and created again: {why}, which Kubernetes does not allow to change in place"
                ),
            )),
        }
    }
}

impl Outcome {
    /// The data keys whose values the sync changed, and whether running
    /// pods keep even their files (none for a Secret it created: no pod
    /// can have read an older value of it).
    fn changed_keys(&self) -> Option<(&BTreeSet<String>, bool)> {
        match self {
            Outcome::Updated { changed, .. } => Some((changed, false)),
            Outcome::Recreated {
                changed,
                files_stale,
                ..
            } => Some((changed, *files_stale)),
            Outcome::Created | Outcome::InSync => None,
        }
    }
}

pub(crate) async fn reconcile(
    sealed: Arc<CachedSealedSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // Being deleted: the garbage collector decides what becomes of the
    // Secret. With --cascade=orphan it has just removed the owner
    // reference (the orphan finalizer runs before the object goes); a
    // reconcile now would put it back, and the Secret would be collected
    // with its owner after all.
    if sealed.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let object = ObjectRef::from_obj(sealed.as_ref());
    let (result, record) = match sync_secret(&sealed, &ctx).await {
        Ok((outcome, record)) => (Ok(outcome), record),
        Err(err) => (Err(err), None),
    };
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.as_ref().err());
    let recheck_at = update_status(&sealed, &ctx, &result, record).await?;
    let outcome = result?;
    ctx.clear_failures(&object);
    if let Some((reason, note)) = outcome.event(&sealed.name_any()) {
        publish(&ctx, &sealed, EventType::Normal, reason, note);
    }
    if let Some(rollout) = sealed.rollout
        && let Some(namespace) = sealed.namespace()
    {
        let change = match outcome.changed_keys() {
            Some((changed, files_stale)) => Some(crate::rollout::Change {
                sealed: sealed.object_ref(&()),
                name: sealed.name_any(),
                keys: changed.clone(),
                rollout: crate::rollout::stronger(rollout, files_stale),
            }),
            // Created where a recreate of ours had deleted the old one.
            None if outcome == Outcome::Created => ctx
                .rollouts
                .take_interrupted(&namespace, &sealed.name_any()),
            None => None,
        };
        if let Some(change) = change {
            ctx.rollouts.submit(&namespace, change);
        }
    }
    // A grace period that ends before the next resync: look again then, so
    // RewrapDue turns True on time with no change to the object.
    Ok(recheck_at
        .and_then(|at| rotation::recheck_after(at, jiff::Timestamp::now()))
        .filter(|after| *after < RESYNC)
        .map_or_else(Action::await_change, Action::requeue))
}

pub(crate) fn error_policy(
    sealed: Arc<CachedSealedSecret>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let object = ObjectRef::from_obj(sealed.as_ref());
    if let Error::SecretNotOwned(_) = error {
        return Action::requeue(NOT_OWNED_RETRY);
    }
    if error.is_permanent() {
        return Action::requeue(PERMANENT_RETRY);
    }
    let failures = ctx.record_failure(&object);
    let backoff = Duration::from_millis(500)
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF);
    tracing::warn!(object = %object, error = %error, retry_in = ?backoff, "reconcile failed");
    Action::requeue(backoff)
}

/// Decrypts every value. Refuses more than [`MAX_VALUES`] values before
/// any decryption. CPU-bound: runs in the crypto pool (see
/// [`sync_secret`]).
fn decrypt_all(sealed: &CachedSealedSecret, keys: &KeySet) -> Result<Plaintext, Error> {
    // A cached object whose values were dropped would decrypt to nothing:
    // an empty Secret, never written.
    if !sealed.has_values() {
        return Err(Error::Internal(
            "the SealedSecret's values are not at hand (read it first)".to_owned(),
        ));
    }
    let count = sealed.encrypted_data().count();
    if count > MAX_VALUES {
        return Err(Error::TooManyValues { count });
    }
    let keyring = &keys.keyring;
    let mut data = Plaintext(BTreeMap::new());
    for (key, encoded) in sealed.encrypted_data() {
        // In the order of docs/format.md §4: the value, then its binding,
        // then the keys.
        let failure = |source| Error::value_failure(key, source, |id| keys.is_retired(id));
        let value = SealedValue::parse(encoded).map_err(failure)?;
        let binding = sealed.binding(key);
        binding
            .validate()
            .map_err(|err| Error::InvalidSpec(err.to_string()))?;
        let plaintext = open(&value, &binding, keyring).map_err(failure)?;
        data.0
            .insert(key.to_owned(), ByteString(plaintext.expose().to_vec()));
    }
    Ok(data)
}

/// The key ids the object's values are sealed to (sorted, unique).
pub(crate) fn key_ids_of(sealed: &CachedSealedSecret) -> Vec<String> {
    sealed.key_ids().iter().map(KeyId::to_string).collect()
}

fn owner_reference(sealed: &CachedSealedSecret) -> Option<OwnerReference> {
    sealed.controller_owner_ref(&())
}

/// Whether the SealedSecret may be reconciled at all: not in the
/// controller's namespace, well-formed, within the policy.
fn admit(sealed: &CachedSealedSecret, namespace: &str, ctx: &Context) -> Result<(), Error> {
    if namespace == ctx.controller_namespace && !ctx.reconcile_controller_namespace {
        return Err(Error::PolicyDenied(format!(
            "SealedSecrets in the controller's namespace {namespace} are not reconciled (it holds the sealing keys; see --reconcile-controller-namespace)"
        )));
    }
    // The template as written (before the controller adds its own label),
    // checked when it was cached: a kseal.dev/ label there is refused, not
    // silently overwritten. First: a type the cluster forbids is the answer
    // whatever else is wrong (a service-account token without its
    // annotation is denied, not "invalid").
    sealed
        .policy_verdict()
        .map_err(|violation| Error::PolicyDenied(with_flag(violation)))?;
    // The one definition of a well-formed SealedSecret (kseal_shared's
    // validation, and the keys its type requires); an empty encryptedData
    // makes a Secret without data.
    let problems = sealed.problems();
    if !problems.is_empty() {
        return Err(Error::invalid_spec(problems));
    }
    Ok(())
}

/// What reconciling one object knows before it decrypts anything.
struct Known<'a> {
    namespace: &'a str,
    name: &'a str,
    owner: OwnerReference,
    /// The owned Secret's resourceVersion as the watch last reported it.
    current_version: Option<String>,
    /// The object's status record, if it verifies for this object.
    recorded: Option<SecretRecord>,
    keys: Arc<KeySet>,
}

impl Known<'_> {
    fn subject(&self) -> Subject<'_> {
        Subject {
            namespace: self.namespace,
            name: self.name,
            uid: &self.owner.uid,
        }
    }

    /// The valid record, if the Secret is unchanged since it was made.
    fn unchanged_record(&self) -> Option<&SecretRecord> {
        let record = self.recorded.as_ref()?;
        (Some(&record.resource_version) == self.current_version.as_ref()).then_some(record)
    }
}

/// Brings the owned Secret in sync; returns what it did and the record of
/// the Secret as it is now (`None`: no key to sign with).
async fn sync_secret(
    sealed: &Arc<CachedSealedSecret>,
    ctx: &Context,
) -> Result<(Outcome, Option<SecretRecord>), Error> {
    let name = sealed.name_any();
    let namespace = sealed
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("the SealedSecret has no namespace".into()))?;
    admit(sealed, &namespace, ctx)?;
    let owner = owner_reference(sealed)
        .ok_or_else(|| Error::InvalidSpec("the SealedSecret has no uid yet".into()))?;
    // Until the first list of owned Secrets is in, a missing Secret means
    // nothing; wait (well under a second at start) rather than guess.
    // Bounded: an index that is slow to fill only costs reads.
    let owned_secrets = &ctx.owned_secrets;
    let _ = tokio::time::timeout(Duration::from_secs(30), owned_secrets.wait_until_ready()).await;
    let keys = ctx.keys.get();
    let object = ObjectRef::from_obj(sealed.as_ref());
    let mut known = Known {
        namespace: &namespace,
        name: &name,
        current_version: owned_secrets.resource_version(&namespace, &name),
        recorded: None,
        keys,
        owner,
    };
    // The record: ours (signed with a key held here) and for this object.
    known.recorded = ctx
        .known_status(&object, &known.owner.uid, sealed.status.as_ref())
        .and_then(|status| status.secret_record)
        .filter(|record| {
            known
                .keys
                .record_keys
                .verify(known.subject(), record)
                .is_some()
        });
    // Fast path, without reading or decrypting: the Secret is unchanged
    // since a reconcile of this very generation made or checked it, and
    // every value can still be decrypted here (a key removed since makes
    // the object fail as it should).
    if let Some(record) = known.unchanged_record()
        && Some(record.generation) == sealed.metadata.generation
        && sealed
            .key_id_sets()
            .all(|ids| ids.iter().any(|id| known.keys.keyring.contains(id)))
    {
        return Ok((Outcome::InSync, Some(record.clone())));
    }
    if sealed.has_values() {
        return write_secret(sealed, ctx, &known).await;
    }
    tracing::debug!(
        object = %object,
        secret_version = ?known.current_version,
        recorded_version = ?known.recorded.as_ref().map(|r| &r.resource_version),
        recorded_generation = ?known.recorded.as_ref().map(|r| r.generation),
        generation = ?sealed.metadata.generation,
        "not known to be in sync, and the values are not cached: reading the SealedSecret"
    );
    // The cache dropped the values of an object it took to be in sync:
    // read it once. It may be newer than the cached copy; then it is what
    // the Secret must hold (its own watch event follows). A list by name,
    // not a GET: the chart's role lets the controller list and watch
    // SealedSecrets, and that is all it needs.
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    let fresh = api
        .list(&by_name)
        .await?
        .items
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Internal("the SealedSecret was deleted while it was reconciled".into())
        })?;
    if fresh.metadata.uid.as_deref() != Some(known.owner.uid.as_str()) {
        return Err(Error::Internal(
            "the SealedSecret was replaced while it was reconciled; retrying".into(),
        ));
    }
    let fresh = Arc::new(CachedSealedSecret::read_for_reconcile(fresh, &ctx.policy));
    admit(&fresh, &namespace, ctx)?;
    write_secret(&fresh, ctx, &known).await
}

/// Decrypts `sealed` and makes the owned Secret hold exactly that.
async fn write_secret(
    sealed: &Arc<CachedSealedSecret>,
    ctx: &Context,
    known: &Known<'_>,
) -> Result<(Outcome, Option<SecretRecord>), Error> {
    let (namespace, name) = (known.namespace, known.name);
    let owner = known.owner.clone();
    let subject = known.subject();
    let desired = Desired::of(sealed);
    let keys = Arc::clone(&known.keys);
    let decrypting = (Arc::clone(sealed), Arc::clone(&keys));
    let decrypted = ctx
        .crypto
        .run(move || {
            let (sealed, keys) = decrypting;
            decrypt_all(&sealed, &keys)
        })
        .await
        .map_err(|err| Error::Internal(err.to_string()))
        .and_then(|result| result);
    let data = match decrypted {
        Ok(data) => data,
        Err(err) => {
            ctx.metrics.count_unseals(err.reason().as_str(), 1);
            return Err(err);
        }
    };
    ctx.metrics.count_unseals("ok", data.0.len() as u64);
    let generation = sealed.metadata.generation.unwrap_or_default();
    let signer = keys.record_keys.active();
    let content = signer.map(|signer| desired.content(signer, subject, &data));
    let record = |version: Option<String>| {
        Some(signer?.sign(subject, &version?, generation, content.clone()?))
    };
    // The Secret is unchanged since it was recorded with this very content
    // (a re-wrap, a new key set): no need to read it.
    if let Some(recorded) = known.unchanged_record()
        && let Some(recorder) = keys.record_keys.verify(subject, recorded)
        && desired.content(recorder, subject, &data) == recorded.content
    {
        return Ok((
            Outcome::InSync,
            record(Some(recorded.resource_version.clone())),
        ));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let quotes = &|text: &str| data.quoted_in(text);
    // kseal's mark of origin on the Secret (see `Signer::origin`): any mark
    // a held key made will do, so a key rotation rewrites no Secret.
    let marked = |secret: &Secret| {
        secret
            .annotations()
            .get(ORIGIN_ANNOTATION)
            .is_some_and(|mark| keys.record_keys.verify_origin(namespace, name, mark))
    };
    // Everything kseal writes besides `desired`: the mark and the owner.
    // A write that happens anyway renews a mark made with an older key, so
    // marks follow rotation without a write of their own.
    let finish = |secret: &mut Secret| {
        if let Some(signer) = signer {
            let mark = signer.origin(namespace, name);
            if secret.annotations().get(ORIGIN_ANNOTATION) != Some(&mark) {
                secret
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ORIGIN_ANNOTATION.to_owned(), mark);
            }
        }
        let references = secret
            .metadata
            .owner_references
            .get_or_insert_with(Vec::new);
        references
            .retain(|reference| reference.controller != Some(true) && reference.uid != owner.uid);
        references.push(owner.clone());
    };
    let fresh = || {
        let mut secret = Wiped(Secret::default());
        secret.metadata.name = Some(name.to_owned());
        secret.metadata.namespace = Some(namespace.to_owned());
        desired.apply_to(&mut secret, &data);
        finish(&mut secret);
        secret
    };
    // What this write makes, the index of owned Secrets knows at once (see
    // `owned`): the status event it causes may come before the Secret's.
    let write = ctx.owned_secrets.begin_write(namespace, name);
    // Not among the Secrets we own: almost always it does not exist yet, so
    // create it at once (what `decide` answers for no Secret, in one request
    // instead of two); a Secret in the way answers 409 and is read below.
    let existing = if known.current_version.is_none() {
        match api.create(&PostParams::default(), &fresh()).await {
            Ok(created) => {
                let created = Wiped(created);
                write.wrote(watched_version(&created));
                return Ok((
                    Outcome::Created,
                    record(created.metadata.resource_version.clone()),
                ));
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                api.get_opt(name).await?.map(Wiped)
            }
            Err(err) => return Err(secret_write(name, err, quotes)),
        }
    } else {
        api.get_opt(name).await?.map(Wiped)
    };
    let want = Want {
        desired: &desired,
        data: &data,
        owner: &owner,
        marking: signer.is_some(),
    };
    let decision = decide(
        &want,
        existing.as_deref().map(|secret| Existing {
            secret,
            marked: marked(secret),
        }),
    );
    let (was, changed, how, mut existing) = match (decision, existing) {
        (WriteDecision::Create, _) => {
            let created = api
                .create(&PostParams::default(), &fresh())
                .await
                .map(Wiped)
                .map_err(|err| secret_write(name, err, quotes))?;
            write.wrote(watched_version(&created));
            return Ok((
                Outcome::Created,
                record(created.metadata.resource_version.clone()),
            ));
        }
        (WriteDecision::Refuse(Refusal::NotOwned), _) => {
            return Err(Error::SecretNotOwned(name.to_owned()));
        }
        (WriteDecision::InSync, Some(existing)) => {
            // Read after the write began: as good as a write for the index.
            write.wrote(watched_version(&existing));
            return Ok((
                Outcome::InSync,
                record(existing.metadata.resource_version.clone()),
            ));
        }
        (WriteDecision::Correct { was, changed, how }, Some(existing)) => {
            (was, changed, how, existing)
        }
        // `decide` answers these only about a Secret that is there.
        (WriteDecision::InSync | WriteDecision::Correct { .. }, None) => {
            return Err(Error::Internal(
                "a write was decided for a Secret that is not there".into(),
            ));
        }
    };
    if was == Ownership::Orphan {
        // The garbage collector removes the owner reference when this very
        // object is being deleted with --cascade=orphan, maybe after this
        // reconcile began: adopting the Secret then would hand it back to
        // the collector. The object as the API server has it now decides.
        let sealed_api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), namespace);
        let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
        let now = sealed_api.list(&by_name).await?.items.into_iter().next();
        if now.is_none_or(|now| {
            now.metadata.deletion_timestamp.is_some()
                || now.metadata.uid.as_deref() != Some(owner.uid.as_str())
        }) {
            return Err(Error::Internal(
                "the SealedSecret is being deleted: its Secret is left as the garbage collector leaves it".into(),
            ));
        }
    }
    if let Correction::Recreate { why, files_stale } = how {
        // Remembered until the new Secret is there: a recreate that stops
        // after the delete (finalizers, an error) ends in a create later,
        // which must still restart for these keys.
        if let Some(rollout) = sealed.rollout
            && !changed.is_empty()
        {
            ctx.rollouts.remember_interrupted(
                namespace,
                crate::rollout::Change {
                    sealed: sealed.object_ref(&()),
                    name: name.to_owned(),
                    keys: changed.clone(),
                    rollout: crate::rollout::stronger(rollout, files_stale),
                },
            );
        }
        let created = recreate(&api, name, &existing, quotes, |replacement| {
            desired.apply_to(replacement, &data);
            finish(replacement);
        })
        .await?;
        ctx.rollouts.take_interrupted(namespace, name);
        write.wrote(watched_version(&created));
        return Ok((
            Outcome::Recreated {
                why,
                changed,
                files_stale,
            },
            record(created.metadata.resource_version.clone()),
        ));
    }
    desired.apply_to(&mut existing, &data);
    finish(&mut existing);
    let updated = api
        .replace(name, &PostParams::default(), &existing)
        .await
        .map(Wiped)
        .map_err(|err| secret_write(name, err, quotes))?;
    write.wrote(watched_version(&updated));
    Ok((
        Outcome::Updated { was, changed },
        record(updated.metadata.resource_version.clone()),
    ))
}

/// Deletes `existing` and creates it again as `make` turns a copy of it
/// (labels, annotations and other owners kept; data, type, immutability
/// and kseal's metadata from `make`). Returns the new Secret.
///
/// The API server is asked first, with a dry run, whether it would take
/// the new Secret: validation and admission answer before the name's
/// existence does (409), so a Secret it would refuse (a TLS Secret without
/// `tls.key`, an admission policy) is never deleted. Only the version read
/// is deleted (uid and resourceVersion preconditions). Between the delete
/// and the create, whoever may create Secrets here can take the name; that
/// is reported ([`Error::SecretTakenDuringRecreate`]), and docs/security.md
/// lists it as a known limit.
async fn recreate(
    api: &Api<Secret>,
    name: &str,
    existing: &Secret,
    quotes: &(dyn Fn(&str) -> bool + Sync),
    make: impl FnOnce(&mut Secret),
) -> Result<Wiped, Error> {
    let mut replacement = Wiped(existing.clone());
    make(&mut replacement);
    // A new object: nothing of the old one's identity or life.
    let metadata = &mut replacement.metadata;
    metadata.uid = None;
    metadata.resource_version = None;
    metadata.creation_timestamp = None;
    metadata.deletion_timestamp = None;
    metadata.deletion_grace_period_seconds = None;
    metadata.generation = None;
    metadata.managed_fields = None;
    metadata.finalizers = None;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // Only "this name exists" means the rest passed: a webhook may refuse
    // with 409 too.
    match api.create(&dry_run, &replacement).await.map(Wiped) {
        Ok(_) => {}
        Err(kube::Error::Api(status))
            if status.code == 409
                && status.reason == "AlreadyExists"
                && status.details.as_ref().is_some_and(|d| d.name == name) => {}
        Err(err) => return Err(secret_write(name, err, quotes)),
    }
    let delete = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.metadata.uid.clone(),
            resource_version: existing.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    let deleted = api
        .delete(name, &delete)
        .await
        .map_err(|err| secret_write(name, err, quotes))?;
    drop(deleted.map_left(Wiped));
    match api.create(&PostParams::default(), &replacement).await {
        Ok(created) => Ok(Wiped(created)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            match api.get_opt(name).await?.map(Wiped) {
                Some(now) if now.metadata.uid != existing.metadata.uid => {
                    Err(Error::SecretTakenDuringRecreate(name.to_owned()))
                }
                // The same Secret, held by finalizers: retried until they
                // are removed (its deletion starts a reconcile too).
                Some(now) => Err(Error::RecreatePending {
                    name: name.to_owned(),
                    finalizers: crate::error::named(
                        now.metadata.finalizers.as_deref().unwrap_or_default(),
                        ", ",
                    ),
                }),
                // Gone since: created at the next look.
                None => Err(Error::Kube(kube::Error::Api(status))),
            }
        }
        Err(err) => Err(secret_write(name, err, quotes)),
    }
}

/// The resourceVersion of `secret` as the owned-Secrets watch reports it:
/// `None` when it lacks the owned label (say, a mutating webhook removed
/// it), since the label-selected watch never reports such a Secret.
fn watched_version(secret: &Secret) -> Option<&str> {
    (secret.labels().get(OWNED_LABEL).map(String::as_str) == Some("true"))
        .then_some(secret.metadata.resource_version.as_deref())
        .flatten()
}

/// A policy violation with the controller flag that allows it, if any.
fn with_flag(violation: &PolicyViolation) -> String {
    match violation {
        PolicyViolation::DeniedType(_) | PolicyViolation::DeniedLabel { .. } => {
            format!("{violation} (--allow-secret-types)")
        }
        PolicyViolation::DeniedPrefix { .. } => format!("{violation} (--allow-metadata-prefixes)"),
        PolicyViolation::ReservedType(_) | PolicyViolation::ReservedKey { .. } => {
            violation.to_string()
        }
    }
}

/// A Secret read from (or returned by) the API server, whose data is wiped
/// when it is dropped, on every path.
struct Wiped(Secret);

impl std::ops::Deref for Wiped {
    type Target = Secret;
    fn deref(&self) -> &Secret {
        &self.0
    }
}

impl std::ops::DerefMut for Wiped {
    fn deref_mut(&mut self) -> &mut Secret {
        &mut self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        scrub(&mut self.0);
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes the status when it changed; emits a Warning event when a failure
/// is new (not on every retry). Returns when a rotation condition changes
/// by itself (the end of a re-wrap grace period), if it does.
async fn update_status(
    sealed: &CachedSealedSecret,
    ctx: &Context,
    result: &Result<Outcome, Error>,
    record: Option<SecretRecord>,
) -> Result<Option<jiff::Timestamp>, Error> {
    let (status, reason, message) = match result {
        Ok(_) => (
            "True",
            "Unsealed",
            format!("Secret {} is in sync", sealed.name_any()),
        ),
        Err(err) => ("False", err.reason().as_str(), err.to_string()),
    };
    // Messages may quote what the object's author wrote: bounded, so its
    // status (and every watcher's copy) stays small.
    let message = bounded(message, CONDITION_MESSAGE_MAX);
    let generation = sealed.metadata.generation;
    let object = ObjectRef::from_obj(sealed);
    let uid = sealed.metadata.uid.clone().unwrap_or_default();
    // What the API server holds: our last write if the watch has not shown
    // it yet, else the watched status.
    let known = ctx.known_status(&object, &uid, sealed.status.as_ref());
    let previous_of = |type_: &str| {
        known
            .as_ref()
            .and_then(|status| status.conditions.iter().find(|c| c.type_ == type_))
    };
    let condition = |type_: &str, status: &str, reason: &str, message: String| {
        // The time of the last change of status, kept while it holds.
        let last_transition_time = match previous_of(type_) {
            Some(previous) if previous.status == status => previous.last_transition_time.clone(),
            _ => now(),
        };
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: generation,
        }
    };
    let previous = previous_of(READY);
    let mut conditions = vec![condition(READY, status, reason, message.clone())];
    // The kstatus conventions (sigs.k8s.io/cli-utils, used by Flux): a
    // failure that only a change to the object or the cluster can fix is
    // Stalled (kstatus: Failed), one being retried is Reconciling
    // (InProgress). Each is present only while True, as kstatus expects.
    if let Err(err) = result {
        let type_ = if err.is_permanent() {
            STALLED
        } else {
            RECONCILING
        };
        conditions.push(condition(type_, "True", reason, message.clone()));
    }
    let keys = ctx.keys.get();
    let mut recheck_at = None;
    for due in rotation::conditions(
        sealed,
        &keys,
        ctx.rewrap_grace,
        jiff::Timestamp::now(),
        result.is_ok(),
    ) {
        recheck_at = [recheck_at, due.recheck_at].into_iter().flatten().min();
        // Names up to ten data keys of the author's choosing.
        let message = bounded(due.message, CONDITION_MESSAGE_MAX);
        let previous = previous_of(due.type_);
        // One Warning when a value becomes due, not one per reconcile.
        if due.warn && previous.is_none_or(|p| p.status != due.status || p.reason != due.reason) {
            publish(ctx, sealed, EventType::Warning, due.reason, message.clone());
        }
        conditions.push(condition(due.type_, due.status, due.reason, message));
    }
    let new_status = SealedSecretStatus {
        observed_generation: generation,
        conditions,
        key_ids: key_ids_of(sealed),
        // A failed reconcile leaves the last record: it stays true of the
        // Secret version it names, and is checked before every use.
        secret_record: record.or_else(|| known.as_ref()?.secret_record.clone()),
    };
    let changed_condition = previous.is_none_or(|p| p.reason != reason || p.message != message);
    if let Err(err) = result
        && changed_condition
    {
        publish(
            ctx,
            sealed,
            EventType::Warning,
            err.reason().as_str(),
            message,
        );
    }
    if known.as_ref() == Some(&new_status) {
        return Ok(recheck_at);
    }
    let api: Api<SealedSecret> = Api::namespaced(
        ctx.client.clone(),
        sealed.namespace().as_deref().unwrap_or_default(),
    );
    let patch = serde_json::json!({ "status": new_status });
    api.patch_status(
        &sealed.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    ctx.remember_status(object, uid, new_status);
    Ok(recheck_at)
}

fn publish(
    ctx: &Context,
    sealed: &CachedSealedSecret,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Unseal".to_owned(),
        secondary: None,
    };
    ctx.events.publish(event, sealed.object_ref(&()));
}
