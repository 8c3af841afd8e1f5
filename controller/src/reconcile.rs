//! Reconciling one SealedSecret: decrypt its values with the key each names,
//! create or correct the Secret it owns, report the outcome in its status
//! and as Events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kseal_shared::envelope::{SealedValue, open};
use kseal_shared::sealed_secret::{Condition, MAX_VALUES, SealedSecretStatus};
use kseal_shared::{sealed_secret::SealedSecret, x25519::KeyId};

use crate::cached::CachedSealedSecret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use kseal_shared::contract::{MANAGED_ANNOTATION, OWNED_LABEL, PolicyViolation};

use crate::context::Context;
use crate::error::Error;
use crate::owned::{ContentDigest, SourceStamp, Synced};
use crate::rotation;
use crate::sealing_keys::KeySet;

/// Condition type kstatus, Flux and Argo CD look for.
pub const READY: &str = "Ready";

/// Every object is looked at again this often even without a change (all
/// at once, see `run`: a timer per object would cost ~0.5 KiB each).
pub const RESYNC: Duration = Duration::from_secs(3600);
/// Bad input is retried this often (and at once when keys change).
const PERMANENT_RETRY: Duration = Duration::from_secs(300);
/// A Secret in the way is looked at again this often, so annotating it
/// with kseal.dev/managed takes effect soon.
const NOT_OWNED_RETRY: Duration = Duration::from_secs(30);
/// Transient errors back off exponentially up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What a successful sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    InSync,
}

pub async fn reconcile(
    sealed: Arc<CachedSealedSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let object = ObjectRef::from_obj(sealed.as_ref());
    let result = sync_secret(&sealed, &ctx).await;
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.as_ref().err());
    update_status(&sealed, &ctx, &result).await?;
    let outcome = result?;
    ctx.clear_failures(&object);
    if outcome != Outcome::InSync {
        let verb = if outcome == Outcome::Created {
            "created"
        } else {
            "updated"
        };
        publish(
            &ctx,
            &sealed,
            EventType::Normal,
            "Unsealed",
            format!("Secret {} {verb}", sealed.name_any()),
        );
    }
    Ok(Action::await_change())
}

pub fn error_policy(sealed: Arc<CachedSealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
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

/// Decrypted data, wiped when dropped.
struct Plaintext(BTreeMap<String, ByteString>);

impl Drop for Plaintext {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            value.0.zeroize();
        }
    }
}

/// Decrypts every value. Refuses more than [`MAX_VALUES`] values before
/// any decryption. CPU-bound: runs in the crypto pool (see
/// [`sync_secret`]).
fn decrypt_all(sealed: &CachedSealedSecret, keys: &KeySet) -> Result<Plaintext, Error> {
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
pub fn key_ids_of(sealed: &CachedSealedSecret) -> Vec<String> {
    kseal_shared::envelope::key_ids_in(sealed.sealed_values())
        .iter()
        .map(KeyId::to_string)
        .collect()
}

/// See [`SourceStamp`].
fn source_stamp(uid: &str, generation: Option<i64>, key_generation: u64) -> SourceStamp {
    let mut hash = Sha256::new();
    hash.update((uid.len() as u64).to_be_bytes());
    hash.update(uid.as_bytes());
    hash.update(generation.unwrap_or(-1).to_be_bytes());
    hash.update(key_generation.to_be_bytes());
    let digest = hash.finalize();
    let mut stamp = [0; 16];
    stamp.copy_from_slice(&digest[..16]);
    stamp
}

fn owner_reference(sealed: &CachedSealedSecret) -> Option<OwnerReference> {
    sealed.controller_owner_ref(&())
}

/// Labels, annotations, type and immutability the Secret must have.
struct Desired {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    type_: String,
    immutable: Option<bool>,
}

impl Desired {
    fn of(sealed: &CachedSealedSecret) -> Self {
        let template = sealed.template.as_deref().cloned().unwrap_or_default();
        let metadata = template.metadata.unwrap_or_default();
        let mut labels = metadata.labels;
        labels.insert(OWNED_LABEL.to_owned(), "true".to_owned());
        Self {
            labels,
            annotations: metadata.annotations,
            type_: template.type_.unwrap_or_else(|| "Opaque".to_owned()),
            immutable: template.immutable,
        }
    }

    /// A digest of everything written, to notice a changed spec without
    /// reading the Secret.
    fn digest(&self, data: &Plaintext, owner: &str) -> ContentDigest {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        field(owner.as_bytes());
        field(self.type_.as_bytes());
        field(format!("{:?}", self.immutable).as_bytes());
        for (map_name, map) in [("l", &self.labels), ("a", &self.annotations)] {
            field(map_name.as_bytes());
            for (key, value) in map {
                field(key.as_bytes());
                field(value.as_bytes());
            }
        }
        for (key, value) in &data.0 {
            field(key.as_bytes());
            field(&value.0);
        }
        hash.finalize().into()
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
    }
}

fn is_subset(want: &BTreeMap<String, String>, have: Option<&BTreeMap<String, String>>) -> bool {
    want.iter()
        .all(|(key, value)| have.and_then(|have| have.get(key)) == Some(value))
}

fn owned_by(secret: &Secret, owner: &OwnerReference) -> bool {
    secret
        .owner_references()
        .iter()
        .any(|reference| reference.uid == owner.uid && reference.controller == Some(true))
}

async fn sync_secret(sealed: &Arc<CachedSealedSecret>, ctx: &Context) -> Result<Outcome, Error> {
    let name = sealed.name_any();
    let namespace = sealed
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("the SealedSecret has no namespace".into()))?;
    if namespace == ctx.controller_namespace && !ctx.reconcile_controller_namespace {
        return Err(Error::PolicyDenied(format!(
            "SealedSecrets in the controller's namespace {namespace} are not reconciled (it holds the sealing keys; see --reconcile-controller-namespace)"
        )));
    }
    // The one definition of a well-formed SealedSecret (kseal_shared's
    // validation); an empty encryptedData makes a Secret without data.
    let problems = sealed.problems();
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Error::InvalidSpec(problems.join("; ")));
    }
    // The template as written (before the controller adds its own label):
    // a kseal.dev/ label there is refused, not silently overwritten.
    let template = sealed.template.as_deref();
    let metadata = template.and_then(|template| template.metadata.as_ref());
    ctx.policy
        .check(
            template
                .and_then(|template| template.type_.as_deref())
                .unwrap_or("Opaque"),
            metadata.into_iter().flat_map(|metadata| &metadata.labels),
            metadata
                .into_iter()
                .flat_map(|metadata| metadata.annotations.keys()),
        )
        .map_err(|violation| Error::PolicyDenied(with_flag(&violation)))?;
    let desired = Desired::of(sealed);
    let owner = owner_reference(sealed)
        .ok_or_else(|| Error::InvalidSpec("the SealedSecret has no uid yet".into()))?;
    // Fast path without decrypting: the Secret is unchanged since it was
    // synced from this very spec (generation) with this very key set. A
    // status write or a relabel of the SealedSecret lands here.
    let owned_secrets = &ctx.owned_secrets;
    let key_generation = ctx.keys.generation();
    let source = source_stamp(&owner.uid, sealed.metadata.generation, key_generation);
    if owned_secrets.in_sync_from(&namespace, &name, &source) {
        return Ok(Outcome::InSync);
    }
    let keys = ctx.keys.get();
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
    let digest = desired.digest(&data, &owner.uid);

    let remember = |version: Option<String>| {
        let synced = version.map(|version| Synced {
            version: version.into(),
            content: digest,
            source,
        });
        owned_secrets.mark_synced(&namespace, &name, synced);
    };
    // Fast path: the watch shows the Secret unchanged since a reconcile last
    // found or made it in sync with this very content.
    // Until the first list of owned Secrets is in, a missing Secret means
    // nothing; wait (well under a second at start) rather than guess.
    // Bounded: an index that is slow to fill only costs a 409 and a read.
    let _ = tokio::time::timeout(Duration::from_secs(2), owned_secrets.wait_until_ready()).await;
    if owned_secrets.unchanged_since_sync(&namespace, &name, &digest) {
        // Same content from a new source (a key rotation, say): remember
        // the new source so the next reconcile takes the fast path.
        if let Some(version) = owned_secrets.resource_version(&namespace, &name) {
            remember(Some(version));
        }
        return Ok(Outcome::InSync);
    }
    let cached_version = owned_secrets.resource_version(&namespace, &name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let create = || async {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.clone());
        secret.metadata.namespace = Some(namespace.clone());
        secret.metadata.labels = Some(desired.labels.clone());
        secret.metadata.annotations =
            (!desired.annotations.is_empty()).then(|| desired.annotations.clone());
        secret.metadata.owner_references = Some(vec![owner.clone()]);
        secret.type_ = Some(desired.type_.clone());
        secret.immutable = desired.immutable;
        secret.data = Some(data.0.clone());
        let result = api.create(&PostParams::default(), &secret).await;
        scrub(&mut secret);
        result.map(Wiped)
    };
    // Not among the Secrets we own: almost always it does not exist yet, so
    // create it at once (one request instead of two); a Secret in the way
    // answers 409 and is read below.
    let existing = if cached_version.is_none() {
        match create().await {
            Ok(created) => {
                remember(created.metadata.resource_version.clone());
                return Ok(Outcome::Created);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                api.get_opt(&name).await?.map(Wiped)
            }
            Err(err) => return Err(err.into()),
        }
    } else {
        api.get_opt(&name).await?.map(Wiped)
    };
    let Some(mut existing) = existing else {
        let created = create().await?;
        remember(created.metadata.resource_version.clone());
        return Ok(Outcome::Created);
    };
    let owned = owned_by(&existing, &owner);
    if !owned
        && existing
            .annotations()
            .get(MANAGED_ANNOTATION)
            .map(String::as_str)
            != Some("true")
    {
        remember(None);
        return Err(Error::SecretNotOwned(name));
    }
    if owned && desired.matches(&existing, &data) {
        remember(existing.metadata.resource_version.clone());
        return Ok(Outcome::InSync);
    }
    let content_differs = existing
        .data
        .as_ref()
        .map_or(!data.0.is_empty(), |d| *d != data.0)
        || existing.type_.as_deref().unwrap_or("Opaque") != desired.type_;
    if existing.immutable == Some(true) && content_differs {
        remember(None);
        return Err(Error::SecretImmutable(name));
    }
    // Correct the Secret: our data, type and immutability exactly; our labels
    // and annotations over whatever else is there; us as the controller.
    scrub(&mut existing);
    existing.data = Some(data.0.clone());
    existing.string_data = None;
    existing.type_ = Some(desired.type_.clone());
    if desired.immutable.is_some() {
        existing.immutable = desired.immutable;
    }
    existing
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(desired.labels.clone());
    if !desired.annotations.is_empty() {
        existing
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(desired.annotations.clone());
    }
    let references = existing
        .metadata
        .owner_references
        .get_or_insert_with(Vec::new);
    references.retain(|reference| reference.controller != Some(true) && reference.uid != owner.uid);
    references.push(owner);
    let updated = api
        .replace(&name, &PostParams::default(), &existing)
        .await
        .map(Wiped)?;
    remember(updated.metadata.resource_version.clone());
    Ok(Outcome::Updated)
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

/// Wipes the data of a Secret we are done with.
fn scrub(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        for value in data.values_mut() {
            value.0.zeroize();
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes the status when it changed; emits a Warning event when a failure
/// is new (not on every retry).
async fn update_status(
    sealed: &CachedSealedSecret,
    ctx: &Context,
    result: &Result<Outcome, Error>,
) -> Result<(), Error> {
    let (status, reason, message) = match result {
        Ok(_) => (
            "True",
            "Unsealed",
            format!("Secret {} is in sync", sealed.name_any()),
        ),
        Err(err) => ("False", err.reason().as_str(), err.to_string()),
    };
    let generation = sealed.metadata.generation;
    let object = ObjectRef::from_obj(sealed);
    let uid = sealed.metadata.uid.clone().unwrap_or_default();
    // What the API server holds: our last write if the watch has not shown
    // it yet, else the watched status.
    let known = ctx.known_status(&object, &uid, sealed.status.as_ref());
    let previous = known
        .as_ref()
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == READY));
    let last_transition_time = match previous {
        Some(previous) if previous.status == status => previous.last_transition_time.clone(),
        _ => now(),
    };
    let condition = Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.clone(),
        last_transition_time,
        observed_generation: generation,
    };
    let mut conditions = vec![condition];
    let keys = ctx.keys.get();
    for due in rotation::conditions(sealed, &keys, jiff::Timestamp::now(), result.is_ok()) {
        let previous = known
            .as_ref()
            .and_then(|status| status.conditions.iter().find(|c| c.type_ == due.type_));
        let last_transition_time = match previous {
            Some(previous) if previous.status == due.status => {
                previous.last_transition_time.clone()
            }
            _ => now(),
        };
        // One Warning when a value becomes due, not one per reconcile.
        if due.warn && previous.is_none_or(|p| p.status != due.status || p.reason != due.reason) {
            publish(
                ctx,
                sealed,
                EventType::Warning,
                due.reason,
                due.message.clone(),
            );
        }
        conditions.push(Condition {
            type_: due.type_.to_owned(),
            status: due.status.to_owned(),
            reason: due.reason.to_owned(),
            message: due.message,
            last_transition_time,
            observed_generation: generation,
        });
    }
    let new_status = SealedSecretStatus {
        observed_generation: generation,
        conditions,
        key_ids: key_ids_of(sealed),
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
        return Ok(());
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
    Ok(())
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
