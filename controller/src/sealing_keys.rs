//! Sealing keys: Secrets in the controller's namespace, loaded by every
//! replica, generated and renewed by the leader, and published as public
//! keys in a ConfigMap that every authenticated user may read.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kseal_shared::age::secrecy::ExposeSecret;
use kseal_shared::contract::{
    HELD_KEYS_ANNOTATION, IDENTITY_DATA_KEY, KEY_CREATED_ANNOTATION, KEY_ID_LABEL,
    KEY_MADE_FOR_REQUEST_ANNOTATION, KEY_OPERATIONS_CONFIGMAP, KEY_RECIPIENT_ANNOTATION,
    KEY_STATE_LABEL, KEYS_DATA_KEY, KeyState, OWNED_LABEL, PUBLIC_KEYS_CONFIGMAP, PublishedKey,
    RECIPIENTS_DATA_KEY, ROTATION_REQUEST_DATA_KEY, ROTATION_SERVED_DATA_KEY, SEALING_KEY_LABEL,
    SEALING_KEY_SECRET_TYPE,
};
use kseal_shared::envelope::key_ids_in;
use kseal_shared::error_text::describe;
use kseal_shared::x25519::parse_identity_file;
use kseal_shared::{
    envelope::Keyring,
    x25519::{Identity, KeyId, Recipient},
};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::events::EventSink;
use crate::record::RecordKeys;
use zeroize::Zeroizing;

/// Field manager for server-side apply.
pub(crate) const FIELD_MANAGER: &str = "kseal-controller";

/// One key as loaded from its Secret (public facts only).
#[derive(Debug, Clone)]
pub(crate) struct KeyInfo {
    /// The key id, as text.
    pub id: String,
    /// The public key, `age1…`.
    pub recipient: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Lifecycle state.
    pub state: KeyState,
    key_id: Option<KeyId>,
    recipient_parsed: Option<Recipient>,
    /// `created`, parsed: keys are ordered by time, not by its text (a
    /// time with fractions of a second sorts before one without as text).
    created_at: Option<jiff::Timestamp>,
}

impl KeyInfo {
    /// The key as published in the ConfigMap and over HTTP.
    pub(crate) fn published(&self) -> PublishedKey {
        PublishedKey {
            id: self.id.clone(),
            recipient: self.recipient.clone(),
            created: self.created.clone(),
            state: self.state,
        }
    }
}

/// All keys this replica knows, newest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    pub keys: Vec<KeyInfo>,
    /// Private keys that may decrypt (active and decrypt-only).
    pub keyring: Keyring,
    /// Key Secrets that could not be read (names and reasons, no contents).
    pub problems: Vec<String>,
    /// The keys of the signed Secret records, one per key in `keyring`.
    pub record_keys: RecordKeys,
}

impl KeySet {
    /// Builds the set from key Secrets.
    pub(crate) fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut set = KeySet::default();
        for secret in secrets {
            match read_key_secret(secret) {
                Ok((info, identity)) => {
                    if info.state != KeyState::Retired {
                        set.record_keys.insert(&identity);
                        set.keyring.insert(identity);
                    }
                    set.keys.push(info);
                }
                Err(problem) => set
                    .problems
                    .push(format!("key Secret {}: {problem}", secret.name_any())),
            }
        }
        set.keys
            // Newest first; of two made at the same time, the larger id
            // (the order `KeyManager::demote_older` keeps the newest by).
            .sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let active = set.active().and_then(|key| key.key_id);
        set.record_keys.set_active(active);
        set
    }

    /// The key to seal to: the newest active one.
    pub(crate) fn active(&self) -> Option<&KeyInfo> {
        self.keys.iter().find(|key| key.state == KeyState::Active)
    }

    /// The ids of every key of this set, in any state: the keys whose
    /// stanzas a re-wrap replaces (every other recipient's it keeps).
    pub(crate) fn own_key_ids(&self) -> std::collections::HashSet<KeyId> {
        self.keys.iter().filter_map(|key| key.key_id).collect()
    }

    /// Recipients new values (and re-wraps) are sealed to.
    pub(crate) fn sealing_recipients(&self) -> Vec<Recipient> {
        self.active()
            .and_then(|key| key.recipient_parsed.clone())
            .into_iter()
            .collect()
    }

    pub(crate) fn count(&self, state: KeyState) -> usize {
        self.keys.iter().filter(|key| key.state == state).count()
    }

    pub(crate) fn contains(&self, id: &KeyId) -> bool {
        self.keys.iter().any(|key| key.key_id.as_ref() == Some(id))
    }

    /// Whether `id` is a key this cluster retired.
    pub(crate) fn is_retired(&self, id: &KeyId) -> bool {
        self.keys
            .iter()
            .any(|key| key.key_id.as_ref() == Some(id) && key.state == KeyState::Retired)
    }
}

/// Whether a Secret is a sealing key the controller made: the key type
/// together with no owner reference and no owned-Secret label. Secrets made
/// from SealedSecrets always have an owner reference and the label, and the
/// policy refuses the key type and every `kseal.dev/` label for them; so no
/// SealedSecret can produce a Secret that passes this check.
pub(crate) fn is_sealing_key(secret: &Secret) -> bool {
    secret.type_.as_deref() == Some(SEALING_KEY_SECRET_TYPE)
        && secret.owner_references().is_empty()
        && !secret.labels().contains_key(OWNED_LABEL)
}

/// How far in the future a key's recorded creation time may be (clock skew
/// between replicas).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// When a key was made: its creation annotation (kept across backup and
/// restore) when that is a valid time not in the future, else the Secret's
/// creation time as the API server recorded it. An unparseable or
/// far-future annotation can then neither stop renewal nor make it run
/// again and again.
fn key_created(secret: &Secret) -> String {
    let server_time = || {
        secret
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|time| time.0.to_string())
    };
    let latest = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(
            MAX_CLOCK_SKEW.as_secs() as i64
        ))
        .unwrap_or(jiff::Timestamp::MAX);
    secret
        .annotations()
        .get(KEY_CREATED_ANNOTATION)
        .filter(|text| {
            text.parse::<jiff::Timestamp>()
                .is_ok_and(|time| time <= latest)
        })
        .cloned()
        .or_else(server_time)
        .unwrap_or_default()
}

fn read_key_secret(secret: &Secret) -> Result<(KeyInfo, Identity), String> {
    if !is_sealing_key(secret) {
        return Err(format!(
            "ignored: not a sealing key made by the controller (type must be {SEALING_KEY_SECRET_TYPE}, with no owner reference)"
        ));
    }
    let data = secret
        .data
        .as_ref()
        .and_then(|data| data.get(IDENTITY_DATA_KEY))
        .ok_or_else(|| format!("no data.{IDENTITY_DATA_KEY}"))?;
    let text = Zeroizing::new(
        String::from_utf8(data.0.clone()).map_err(|_| "identity is not UTF-8".to_owned())?,
    );
    let identity = parse_identity_file(&text)
        .map_err(|err| err.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "no identity".to_owned())?;
    let labels = secret.labels();
    let state = labels
        .get(KEY_STATE_LABEL)
        .and_then(|state| KeyState::from_str(state).ok())
        .unwrap_or(KeyState::DecryptOnly);
    let created = key_created(secret);
    let created_at = created.parse().ok();
    let info = KeyInfo {
        id: identity.key_id().to_string(),
        recipient: identity.recipient().to_string(),
        created,
        state,
        key_id: Some(identity.key_id()),
        recipient_parsed: Some(identity.recipient().clone()),
        created_at,
    };
    Ok((info, identity))
}

/// Shared, watched key state.
#[derive(Clone)]
pub(crate) struct KeyStore {
    current: Arc<RwLock<Arc<KeySet>>>,
    changes: watch::Sender<u64>,
    /// Ids of keys that were active or decrypt-only and went away, until
    /// they come back (for the error that names them all).
    lost: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Default for KeyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyStore {
    pub(crate) fn new() -> Self {
        let (changes, _) = watch::channel(0);
        Self {
            current: Arc::new(RwLock::new(Arc::new(KeySet::default()))),
            changes,
            lost: Arc::default(),
        }
    }

    /// A snapshot of the keys.
    pub(crate) fn get(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Notified after every change of the key set (first load included).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Counts changes of the key set; read it before [`KeyStore::get`] to
    /// know the set is at least that new.
    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Whether the keys have been loaded at least once.
    pub(crate) fn loaded(&self) -> bool {
        *self.changes.borrow() > 0
    }

    /// Watches the key Secrets and keeps the set current. Runs forever.
    pub(crate) async fn watch(self, client: Client, namespace: String) {
        let api: Api<Secret> = Api::namespaced(client, &namespace);
        let config = watcher::Config::default().labels(&format!("{SEALING_KEY_LABEL}=true"));
        let (reader, writer) = kube::runtime::reflector::store();
        // Deletions matter too (a deleted key must stop decrypting).
        let stream = kube::runtime::reflector(writer, watcher(api, config)).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => self.on_event(&event, &reader),
                Err(err) => tracing::warn!(error = %describe(&err), "watching key Secrets"),
            }
        }
    }

    /// Takes in one event of the key watch, after the reflector has.
    fn on_event(&self, event: &watcher::Event<Secret>, reader: &Store<Secret>) {
        match event {
            // The reflector keeps serving the previous list until the new
            // one is complete (empty at start): loading it now would publish
            // an empty key set and fail every reconcile with UnknownKey
            // until InitDone, moments later.
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone => {
                self.refresh_from(&reader.state());
            }
        }
    }

    fn refresh_from(&self, secrets: &[Arc<Secret>]) {
        let set = KeySet::from_secrets(secrets.iter().map(|s| s.as_ref()));
        for problem in &set.problems {
            tracing::error!(problem = %problem, "unusable key Secret");
        }
        let before = self.get();
        if self.loaded()
            && let Ok(mut lost) = self.lost.lock()
        {
            report_lost_keys(&before, &set, &mut lost);
        }
        let changed = !self.loaded()
            || before.keys.len() != set.keys.len()
            || before
                .keys
                .iter()
                .zip(&set.keys)
                .any(|(a, b)| a.id != b.id || a.state != b.state || a.created != b.created);
        if changed {
            tracing::info!(
                keys = set.keys.len(),
                active = set.active().map(|k| k.id.as_str()).unwrap_or("none"),
                "sealing keys loaded"
            );
            self.set(set);
        }
    }
}

/// Logs, as errors, keys that were active or decrypt-only and are gone:
/// that does not happen in normal operation (a key is retired before anyone
/// deletes it), values sealed to them no longer open, and with no active
/// key nothing can be sealed. `lost` keeps every such id until its key
/// comes back, so keys deleted one event at a time are all named.
fn report_lost_keys(
    before: &KeySet,
    after: &KeySet,
    lost: &mut std::collections::BTreeSet<String>,
) {
    lost.retain(|id| !after.keys.iter().any(|key| key.id == *id));
    let gone: Vec<&KeyInfo> = before
        .keys
        .iter()
        .filter(|key| key.state != KeyState::Retired)
        .filter(|key| !after.keys.iter().any(|now| now.id == key.id))
        .collect();
    if gone.is_empty() {
        return;
    }
    lost.extend(gone.iter().map(|key| key.id.clone()));
    let lost = lost
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",");
    if after.keys.is_empty() {
        tracing::error!(
            lost_key_ids = %lost,
            "every sealing key Secret is gone; not generating a new key: restore the key Secrets from a backup (`kseal keys restore`), or run `kseal keys rotate` to start over with a new key"
        );
    } else if after.active().is_none() {
        tracing::error!(
            lost_key_ids = %lost,
            "the active sealing key Secret is gone: nothing can be sealed to this cluster until it is restored (`kseal keys restore`) or a new key is made (`kseal keys rotate`)"
        );
    } else {
        tracing::error!(
            lost_key_ids = %lost,
            "a sealing key Secret that still decrypted is gone: values sealed only to it no longer open; restore it (`kseal keys restore`), or retire keys with `kseal keys retire` before deleting them"
        );
    }
}

/// Now, in RFC 3339 with nanoseconds: keys made in the same second (a
/// rotation right after the first key, two controllers at once) still
/// have an order, the one every controller agrees on.
fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// The key Secret for a new identity.
fn key_secret(
    identity: &Identity,
    namespace: &str,
    state: KeyState,
    created: &str,
    request: Option<&str>,
) -> Secret {
    let id = identity.key_id().to_string();
    let mut secret = Secret::default();
    secret.metadata.name = Some(format!("kseal-key-{id}"));
    secret.metadata.namespace = Some(namespace.to_owned());
    secret.metadata.labels = Some(BTreeMap::from([
        (SEALING_KEY_LABEL.to_owned(), "true".to_owned()),
        (KEY_STATE_LABEL.to_owned(), state.as_str().to_owned()),
        (KEY_ID_LABEL.to_owned(), id),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "kseal".to_owned(),
        ),
    ]));
    secret.metadata.annotations = Some(BTreeMap::from([
        (KEY_CREATED_ANNOTATION.to_owned(), created.to_owned()),
        (
            KEY_MADE_FOR_REQUEST_ANNOTATION.to_owned(),
            request.unwrap_or("scheduled").to_owned(),
        ),
        (
            KEY_RECIPIENT_ANNOTATION.to_owned(),
            identity.recipient().to_string(),
        ),
    ]));
    secret.type_ = Some(SEALING_KEY_SECRET_TYPE.to_owned());
    let file = identity.to_keygen_file(created);
    secret.data = Some(BTreeMap::from([(
        IDENTITY_DATA_KEY.to_owned(),
        ByteString(file.expose_secret().as_bytes().to_vec()),
    )]));
    secret
}

/// Leader-side key management: generation, renewal, publication.
pub(crate) struct KeyManager {
    pub client: Client,
    pub namespace: String,
    pub store: KeyStore,
    /// Where the Warning about a changed public-key ConfigMap goes.
    pub events: Option<EventSink>,
}

impl KeyManager {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Generates a new active key; previous active keys become decrypt-only.
    pub(crate) async fn rotate(&self, request: Option<&str>) -> Result<KeyId, kube::Error> {
        let identity = Identity::generate();
        let created = now_rfc3339();
        let secret = key_secret(
            &identity,
            &self.namespace,
            KeyState::Active,
            &created,
            request,
        );
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await?;
        tracing::info!(key_id = %identity.key_id(), "generated a new active sealing key");
        self.demote_older(&created, &identity.key_id().to_string())
            .await?;
        Ok(identity.key_id())
    }

    /// Keeps one active key: whenever the key set shows more than one (two
    /// controllers that rotated at once, each before seeing the other's
    /// key; a stop between making a key and demoting the old one), demotes
    /// all but the newest, as every controller computes it. Runs forever.
    pub(crate) async fn single_active_loop(&self) {
        let mut changes = self.store.subscribe();
        loop {
            let set = self.store.get();
            if set.count(KeyState::Active) > 1
                && let Some(newest) = set.active()
                && let Err(err) = self.demote_older(&newest.created, &newest.id).await
            {
                tracing::warn!(error = %describe(&err), "demoting older active keys failed; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Demotes to decrypt-only every active key older than the one made at
    /// `created` with id `id` (older: created earlier, or at the same second
    /// with a smaller id). Never a newer one: two controllers that both
    /// rotate (two leaders for a moment, as in a rolling update without
    /// leader election) then agree on which key stays active, instead of
    /// each demoting the other's and leaving none.
    async fn demote_older(&self, created: &str, id: &str) -> Result<(), kube::Error> {
        let params = ListParams::default().labels(&format!(
            "{SEALING_KEY_LABEL}=true,{KEY_STATE_LABEL}=active"
        ));
        let newest = (created.parse::<jiff::Timestamp>().ok(), id);
        for old in self.secrets().list(&params).await? {
            let Some(old_id) = old.labels().get(KEY_ID_LABEL) else {
                continue;
            };
            let old_created = key_created(&old);
            if !is_sealing_key(&old)
                || (old_created.parse::<jiff::Timestamp>().ok(), old_id.as_str()) >= newest
            {
                continue;
            }
            let patch = serde_json::json!({"metadata": {"labels": {KEY_STATE_LABEL: KeyState::DecryptOnly.as_str()}}});
            self.secrets()
                .patch(
                    &old.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        Ok(())
    }

    /// On a new cluster (no key, and none ever held), creates the first one,
    /// for a controller that watches SealedSecrets in `namespaces` only (all
    /// namespaces when empty). Keys that exist but cannot be read are
    /// reported, not replaced.
    ///
    /// No key Secret at all, but keys held before (the public-key ConfigMap
    /// records them) or SealedSecrets sealed to keys, means the keys were
    /// lost (a key Secret deleted by accident or on purpose, a namespace
    /// re-created): a new key would not open any of the values, and would
    /// look as if all was well. So no key is generated then; the controller
    /// logs an error naming the missing key ids, and every such SealedSecret
    /// reports `Ready=False UnknownKey` with the key ids. Restoring the key
    /// Secrets fixes everything; `kseal keys rotate` starts over with a new
    /// key.
    pub(crate) async fn ensure_key_watching(
        &self,
        namespaces: &[String],
    ) -> Result<(), kube::Error> {
        let params = ListParams::default().labels(&format!("{SEALING_KEY_LABEL}=true"));
        let mut existing = self.secrets().list(&params).await?;
        existing.items.retain(is_sealing_key);
        if existing.items.is_empty() {
            let (mut missing, objects) = self.key_ids_in_use(namespaces).await?;
            let published: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let held = published
                .get_opt(PUBLIC_KEYS_CONFIGMAP)
                .await?
                .map(|config_map| held_key_ids(&config_map, true))
                .unwrap_or_default();
            missing.extend(held);
            if missing.is_empty() {
                self.rotate(None).await?;
            } else {
                let missing: Vec<String> = missing.into_iter().collect();
                tracing::error!(
                    missing_key_ids = %missing.join(","),
                    sealed_secrets = objects,
                    "no sealing key Secret exists, but this cluster held keys before (SealedSecrets are sealed to them, or the public-key ConfigMap records them); not generating a new key that would leave them undecryptable: restore the key Secrets from a backup, or run `kseal keys rotate` to start over with a new key"
                );
            }
        } else if KeySet::from_secrets(existing.items.iter())
            .active()
            .is_none()
        {
            tracing::error!(
                "key Secrets exist but none is active and readable; not generating a new key (run `kseal keys rotate` to create one)"
            );
        }
        Ok(())
    }

    /// The key ids the SealedSecrets in `namespaces` (all when empty) are
    /// sealed to, and how many SealedSecrets have at least one value.
    async fn key_ids_in_use(
        &self,
        namespaces: &[String],
    ) -> Result<(std::collections::BTreeSet<String>, usize), kube::Error> {
        let apis: Vec<Api<kseal_shared::sealed_secret::SealedSecret>> = if namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            namespaces
                .iter()
                .map(|namespace| Api::namespaced(self.client.clone(), namespace))
                .collect()
        };
        let mut key_ids = std::collections::BTreeSet::new();
        let mut objects = 0;
        for api in apis {
            // Paged as the watches are when lists cannot stream (see
            // `listing`): this reads whole objects.
            let mut params = ListParams::default().limit(crate::listing::FALLBACK_PAGE_SIZE);
            loop {
                let page = api.list(&params).await?;
                for sealed in &page.items {
                    let ids = key_ids_in(sealed.spec.encrypted_data.values().map(String::as_str));
                    objects += usize::from(!ids.is_empty());
                    key_ids.extend(ids.iter().map(KeyId::to_string));
                }
                match page.metadata.continue_.filter(|token| !token.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
        Ok((key_ids, objects))
    }

    /// How long until the active key is due for renewal (zero when overdue or
    /// when there is no active key).
    pub(crate) fn renewal_due_in(&self, period: Duration) -> Duration {
        let set = self.store.get();
        let Some(active) = set.active() else {
            return Duration::ZERO;
        };
        let Ok(created) = jiff::Timestamp::from_str(&active.created) else {
            return Duration::ZERO;
        };
        let age = jiff::Timestamp::now().duration_since(created);
        let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
        period.saturating_sub(age)
    }

    /// Renews the active key every `period`. Runs forever.
    pub(crate) async fn renew_loop(&self, period: Duration) {
        loop {
            // Subscribed before `due` is computed: a change in between wakes
            // the wait below instead of being missed.
            let mut changes = self.store.subscribe();
            let due = self.renewal_due_in(period);
            if due.is_zero() && self.store.loaded() && self.store.get().active().is_some() {
                if let Err(err) = self.rotate(None).await {
                    tracing::warn!(error = %describe(&err), "key renewal failed; retrying in 30s");
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    continue;
                }
                // Wait for the watcher to load the new key.
                let _ = tokio::time::timeout(Duration::from_secs(10), changes.changed()).await;
                continue;
            }
            // Re-check at least hourly, so a changed clock is noticed, and
            // at once when the key set changes (a key restored, rotated or
            // deleted by hand changes what is due).
            let sleep = if self.store.loaded() {
                due.min(Duration::from_secs(3600))
            } else {
                Duration::from_secs(1)
            };
            let sleep = tokio::time::sleep(sleep.max(Duration::from_secs(1)));
            tokio::pin!(sleep);
            tokio::select! {
                () = &mut sleep => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        sleep.await;
                    }
                }
            }
        }
    }

    /// Keeps the public-key ConfigMap equal to the key set: after every
    /// change of the key set, and at once after anyone else changes or
    /// deletes it (it is what `kseal seal` trusts, so a recipient added there
    /// would receive every new value). Runs forever.
    pub(crate) async fn publish_loop(&self) {
        let mut changes = self.store.subscribe();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={PUBLIC_KEYS_CONFIGMAP}"));
        let watch = watcher(api, config).default_backoff();
        let mut watch = std::pin::pin!(watch);
        // What the watch (or our own last write) says the ConfigMap is.
        let mut published: Option<ConfigMap> = None;
        let mut confirmed = None;
        let mut listed = false;
        loop {
            if self.store.loaded() && listed {
                match self.publish(published.as_ref(), &mut confirmed).await {
                    Ok(written) => published = written,
                    Err(err) => {
                        tracing::warn!(error = %describe(&err), "publishing public keys failed; retrying in 5s");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                }
            }
            // Wait for the next reason to look again.
            loop {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return } else { break },
                    event = watch.next() => match event {
                        None => return,
                        Some(Ok(watcher::Event::Init)) => listed = false,
                        Some(Ok(watcher::Event::InitApply(config_map))) => published = Some(config_map),
                        Some(Ok(watcher::Event::Apply(config_map))) => {
                            // The event of a write older than the one we
                            // made since is not news.
                            if !is_older(&config_map, published.as_ref()) {
                                published = Some(config_map);
                                break;
                            }
                        }
                        Some(Ok(watcher::Event::Delete(_))) => {
                            published = None;
                            break;
                        }
                        Some(Ok(watcher::Event::InitDone)) => {
                            listed = true;
                            break;
                        }
                        Some(Err(err)) => tracing::warn!(error = %describe(&err), "watching the public-key ConfigMap"),
                    },
                }
            }
        }
    }

    /// Creates the key-operations ConfigMap (where `kseal keys rotate` asks
    /// for a key) unless it exists. The controller creates it because RBAC
    /// cannot limit `create` to one name: key operators get and patch it
    /// only.
    pub(crate) async fn ensure_key_operations(&self) -> Result<(), kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        if api.get_opt(KEY_OPERATIONS_CONFIGMAP).await?.is_some() {
            return Ok(());
        }
        let mut config_map = ConfigMap::default();
        config_map.metadata.name = Some(KEY_OPERATIONS_CONFIGMAP.to_owned());
        config_map.metadata.namespace = Some(self.namespace.clone());
        config_map.metadata.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "kseal".to_owned(),
        )]));
        match api.create(&PostParams::default(), &config_map).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Answers rotation requests (`kseal keys rotate` writes one into the
    /// key-operations ConfigMap): a request not served yet gets a new active
    /// key, once. Runs forever.
    pub(crate) async fn rotation_requests_loop(&self) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={KEY_OPERATIONS_CONFIGMAP}"));
        let stream = watcher(api, config).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let config_map = match event {
                Ok(watcher::Event::Apply(config_map) | watcher::Event::InitApply(config_map)) => {
                    config_map
                }
                // Deleted: made again at once, so `kseal keys rotate` keeps
                // working without a restart.
                Ok(watcher::Event::Delete(_)) => {
                    if let Err(err) = self.ensure_key_operations().await {
                        tracing::warn!(error = %describe(&err), "re-creating the key-operations ConfigMap failed");
                    }
                    continue;
                }
                _ => continue,
            };
            let Some(request) = pending_rotation_request(&config_map) else {
                continue;
            };
            if let Err(err) = self.answer_rotation_request(&request).await {
                tracing::warn!(error = %describe(&err), "answering a rotation request failed");
            }
        }
    }

    /// Serves `request` unless a key Secret records it already (the
    /// controller stopped between making the key and recording the request
    /// as served), then records it as served, so no later event, re-list,
    /// restart or loss of every key Secret serves it again.
    async fn answer_rotation_request(&self, request: &str) -> Result<(), kube::Error> {
        let params = ListParams::default().labels(&format!("{SEALING_KEY_LABEL}=true"));
        let made = self
            .secrets()
            .list(&params)
            .await?
            .items
            .into_iter()
            .filter(is_sealing_key)
            .find(|secret| {
                secret
                    .annotations()
                    .get(KEY_MADE_FOR_REQUEST_ANNOTATION)
                    .map(String::as_str)
                    == Some(request)
            });
        match made {
            // Made before a stop: finish what the stop may have cut short.
            Some(key) => {
                if let Some(id) = key.labels().get(KEY_ID_LABEL) {
                    self.demote_older(&key_created(&key), id).await?;
                }
            }
            None => {
                tracing::info!(request, "rotation requested");
                self.rotate(Some(request)).await?;
            }
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let served = serde_json::json!({"data": {ROTATION_SERVED_DATA_KEY: request}});
        api.patch(
            KEY_OPERATIONS_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&served),
        )
        .await?;
        Ok(())
    }

    /// Makes the public-key ConfigMap say what the key set says, given what
    /// the watch last saw of it (`None`: it does not exist) and the data it
    /// had when it last said what this controller meant (`confirmed`).
    /// Returns the ConfigMap as written, or `current` when nothing was to
    /// be written.
    async fn publish(
        &self,
        current: Option<&ConfigMap>,
        confirmed: &mut Option<Confirmed>,
    ) -> Result<Option<ConfigMap>, kube::Error> {
        let set = self.store.get();
        // The ids held before: what this controller last wrote, once it
        // has; on a new leader, the ConfigMap's record, and the ids it lists
        // only when it holds together as the controller writes it (a forged
        // list must not become "held" for good: `kseal pins update` and
        // `keys list` read this record).
        let held = match (confirmed.as_ref(), current) {
            (Some(confirmed), _) => confirmed.held.clone(),
            (None, Some(current)) => held_key_ids(
                current,
                published_is_ours(current) && !publishes_unheld_key(current, &set),
            ),
            (None, None) => Vec::new(),
        };
        let wanted = public_keys_config_map(&set, &self.namespace, &held);
        // Someone else wrote it: it changed since it last said what we
        // meant, or (on a new leader) it does not hold together the way the
        // controller writes it. A change of the key set is not this: the
        // ConfigMap still holds what we wrote for the previous set.
        let changed_by_others = match (current, confirmed.as_ref()) {
            (Some(current), Some(confirmed)) => {
                current.data.as_ref() != Some(&confirmed.data)
                    || current.annotations().get(HELD_KEYS_ANNOTATION)
                        != confirmed.annotation.as_ref()
            }
            (None, Some(_)) => true,
            // A new leader: it did not write what is there, but can tell
            // whether the controller could have: consistent, and sealing to
            // a key this cluster holds.
            (Some(current), None) => {
                !set.keys.is_empty()
                    && current.data != wanted.data
                    && (!published_is_ours(current) || publishes_unheld_key(current, &set))
            }
            (None, None) => false,
        };
        if changed_by_others {
            tracing::warn!(
                configmap = PUBLIC_KEYS_CONFIGMAP,
                "the public-key ConfigMap was changed or deleted by someone other than the controller; restoring it"
            );
            if let Some(events) = &self.events {
                let reference = match current {
                    Some(current) => kube::Resource::object_ref(current, &()),
                    // Deleted: the Event names it all the same.
                    None => k8s_openapi::api::core::v1::ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("ConfigMap".into()),
                        name: Some(PUBLIC_KEYS_CONFIGMAP.into()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                };
                events.publish(
                    kube::runtime::events::Event {
                        type_: kube::runtime::events::EventType::Warning,
                        reason: "PublicKeysRestored".into(),
                        note: Some(
                            "changed by someone other than the kseal controller; restored to the controller's keys"
                                .into(),
                        ),
                        action: "Restore".into(),
                        secondary: None,
                    },
                    reference,
                );
            }
        }
        if let Some(current) = current
            && current.data == wanted.data
            && current.annotations().get(HELD_KEYS_ANNOTATION)
                == wanted.annotations().get(HELD_KEYS_ANNOTATION)
        {
            *confirmed = Some(Confirmed::of(current));
            return Ok(Some(current.clone()));
        }
        // Server-side apply leaves fields another manager added: remove
        // foreign data keys first, so only ours remain.
        let foreign: serde_json::Map<String, serde_json::Value> = current
            .and_then(|current| current.data.as_ref())
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.as_str() != RECIPIENTS_DATA_KEY && key.as_str() != KEYS_DATA_KEY)
            .map(|(key, _)| (key.clone(), serde_json::Value::Null))
            .collect();
        if !foreign.is_empty() {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            api.patch(
                PUBLIC_KEYS_CONFIGMAP,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"data": foreign})),
            )
            .await?;
        }
        let written = self.apply_public_keys(&wanted).await?;
        *confirmed = Some(Confirmed::of(&written));
        Ok(Some(written))
    }

    async fn apply_public_keys(&self, config_map: &ConfigMap) -> Result<ConfigMap, kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch(
            PUBLIC_KEYS_CONFIGMAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(config_map),
        )
        .await
    }
}

/// The rotation request in a key-operations ConfigMap that has not been
/// served yet: a non-empty [`ROTATION_REQUEST_DATA_KEY`] that differs from
/// [`ROTATION_SERVED_DATA_KEY`].
///
/// A request is a time (`kseal keys rotate` writes RFC 3339 with
/// nanoseconds) of at most [`MAX_REQUEST_LEN`] bytes; anything else is
/// ignored with a warning, since it is copied into the new key Secret's
/// annotation and the log, which every replica holds.
fn pending_rotation_request(config_map: &ConfigMap) -> Option<String> {
    let data = config_map.data.as_ref()?;
    let request = data.get(ROTATION_REQUEST_DATA_KEY)?.trim();
    let served = data
        .get(ROTATION_SERVED_DATA_KEY)
        .map(|served| served.trim());
    if request.is_empty() || served == Some(request) {
        return None;
    }
    if request.len() > MAX_REQUEST_LEN || request.parse::<jiff::Timestamp>().is_err() {
        tracing::warn!(
            len = request.len(),
            "ignoring a rotation request that is not a time (kseal keys rotate writes one)"
        );
        return None;
    }
    Some(request.to_owned())
}

/// The longest rotation request served: an RFC 3339 time with nanoseconds
/// and an offset is 35 bytes.
const MAX_REQUEST_LEN: usize = 64;

/// The most key ids [`HELD_KEYS_ANNOTATION`] keeps (the newest): that
/// keys were held at all is what it is for, and renewing monthly makes 12
/// a year; without a bound, a key operator rotating in a loop would make
/// the annotation too long to publish.
const MAX_HELD_IDS: usize = 256;

/// Whether `event` shows an older version of the ConfigMap than `seen`.
/// resourceVersions are opaque to clients in general, but the API server's
/// are etcd revisions: for one object, a later write has a larger one. When
/// either does not parse as a number, nothing is taken as older.
fn is_older(event: &ConfigMap, seen: Option<&ConfigMap>) -> bool {
    let version = |config_map: &ConfigMap| {
        config_map
            .metadata
            .resource_version
            .as_deref()
            .and_then(|version| version.parse::<u64>().ok())
    };
    match (version(event), seen.and_then(version)) {
        (Some(event), Some(seen)) => event < seen,
        _ => false,
    }
}

/// Whether a public-key ConfigMap holds together the way the controller
/// writes it (see [`kseal_shared::published::check`]), or is empty of keys.
fn published_is_ours(config_map: &ConfigMap) -> bool {
    let data = config_map.data.clone().unwrap_or_default();
    let (Some(recipients), Some(keys)) = (data.get(RECIPIENTS_DATA_KEY), data.get(KEYS_DATA_KEY))
    else {
        return false;
    };
    let only_ours = data.len() == 2;
    let consistent = match kseal_shared::published::check(recipients, keys) {
        Ok(_) | Err(kseal_shared::published::PublishedKeysError::NoActiveKey) => true,
        Err(_) => false,
    };
    only_ours && consistent
}

/// Whether a public-key ConfigMap tells the CLI to seal to a key that no
/// key Secret of this cluster holds: a forgery that holds together (a new
/// recipient with its own id in both files) looks like the controller's
/// work in every other way.
fn publishes_unheld_key(config_map: &ConfigMap, set: &KeySet) -> bool {
    let recipients = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(RECIPIENTS_DATA_KEY))
        .map(|text| kseal_shared::x25519::parse_recipients_file(text).unwrap_or_default())
        .unwrap_or_default();
    recipients
        .iter()
        .any(|recipient| !set.contains(&recipient.key_id()))
}

/// The key ids a public-key ConfigMap records as held (see
/// [`HELD_KEYS_ANNOTATION`]), and those its key list names (ConfigMaps
/// written before the annotation existed).
/// What the public-key ConfigMap held when it last said what this
/// controller meant: its data, its record of held key ids (the annotation
/// as written, and parsed).
pub(crate) struct Confirmed {
    data: BTreeMap<String, String>,
    annotation: Option<String>,
    held: Vec<String>,
}

impl Confirmed {
    fn of(config_map: &ConfigMap) -> Self {
        Self {
            data: config_map.data.clone().unwrap_or_default(),
            annotation: config_map.annotations().get(HELD_KEYS_ANNOTATION).cloned(),
            held: held_key_ids(config_map, true),
        }
    }
}

/// The key ids a public-key ConfigMap records as held: its annotation, and
/// with `with_listed` the ids `keys.json` lists too.
fn held_key_ids(config_map: &ConfigMap, with_listed: bool) -> Vec<String> {
    let mut held: Vec<String> = config_map
        .annotations()
        .get(HELD_KEYS_ANNOTATION)
        .map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|id| id.parse::<KeyId>().is_ok())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let listed: Vec<PublishedKey> = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(KEYS_DATA_KEY))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    for key in listed.into_iter().filter(|_| with_listed) {
        if key.id.parse::<KeyId>().is_ok() && !held.contains(&key.id) {
            held.push(key.id);
        }
    }
    held
}

/// The published ConfigMap: `recipients.txt` (what to seal to, in age's
/// recipients-file format), `keys.json` (every key with its state), and the
/// ids of every key held so far (`held` and the set's, oldest first).
pub(crate) fn public_keys_config_map(set: &KeySet, namespace: &str, held: &[String]) -> ConfigMap {
    let mut recipients =
        String::from("# kseal: public keys of this cluster. Seal to these recipients.\n");
    if let Some(active) = set.active() {
        recipients.push_str(&format!(
            "# key id {} (active, created {})\n{}\n",
            active.id, active.created, active.recipient
        ));
    }
    // Every key with its state, retired ones included: public facts that let
    // `kseal keys list` show the whole lifecycle without reading key Secrets.
    let published: Vec<PublishedKey> = set.keys.iter().map(KeyInfo::published).collect();
    let keys_json = serde_json::to_string_pretty(&published).unwrap_or_else(|_| "[]".into());
    let mut config_map = ConfigMap::default();
    config_map.metadata.name = Some(PUBLIC_KEYS_CONFIGMAP.to_owned());
    config_map.metadata.namespace = Some(namespace.to_owned());
    config_map.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_owned(),
        "kseal".to_owned(),
    )]));
    let mut held = held.to_vec();
    for key in set.keys.iter().rev() {
        if !held.contains(&key.id) {
            held.push(key.id.clone());
        }
    }
    if held.len() > MAX_HELD_IDS {
        held.drain(..held.len() - MAX_HELD_IDS);
    }
    if !held.is_empty() {
        config_map.metadata.annotations = Some(BTreeMap::from([(
            HELD_KEYS_ANNOTATION.to_owned(),
            held.join(","),
        )]));
    }
    config_map.data = Some(BTreeMap::from([
        (RECIPIENTS_DATA_KEY.to_owned(), recipients),
        (KEYS_DATA_KEY.to_owned(), keys_json),
    ]));
    // Server-side apply needs apiVersion and kind in the body.
    config_map
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;

    use super::*;

    #[test]
    fn a_list_in_progress_is_not_loaded_as_an_empty_key_set() {
        let keys = KeyStore::new();
        let (reader, mut writer) = reflector::store();
        let secret = key_secret(
            &Identity::generate(),
            "kseal-system",
            KeyState::Active,
            "2026-11-22T00:00:00Z",
            None,
        );
        let mut feed = |event: watcher::Event<Secret>| {
            writer.apply_watcher_event(&event);
            keys.on_event(&event, &reader);
        };
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(secret.clone()));
        assert!(!keys.loaded(), "loaded before the list was complete");
        feed(watcher::Event::InitDone);
        assert!(keys.loaded());
        assert_eq!(keys.get().keys.len(), 1);
        assert!(keys.get().active().is_some());

        // A re-list keeps the current keys until it is complete.
        let generation = keys.generation();
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(secret));
        assert_eq!(keys.get().keys.len(), 1);
        feed(watcher::Event::InitDone);
        assert_eq!(
            keys.generation(),
            generation,
            "an unchanged set is not a change"
        );
    }

    #[test]
    fn only_bounded_times_are_rotation_requests() {
        let config_map = |request: &str, served: Option<&str>| {
            let mut data =
                BTreeMap::from([(ROTATION_REQUEST_DATA_KEY.to_owned(), request.to_owned())]);
            if let Some(served) = served {
                data.insert(ROTATION_SERVED_DATA_KEY.to_owned(), served.to_owned());
            }
            ConfigMap {
                data: Some(data),
                ..ConfigMap::default()
            }
        };
        let time = "2026-12-05T01:02:03.123456789Z";
        assert_eq!(
            pending_rotation_request(&config_map(time, None)).as_deref(),
            Some(time)
        );
        assert_eq!(
            pending_rotation_request(&config_map(time, Some(time))),
            None
        );
        assert_eq!(
            pending_rotation_request(&config_map(time, Some("2026-01-01T00:00:00Z"))).as_deref(),
            Some(time)
        );
        for bad in ["", "now", &"9".repeat(240_000), "2026-12-05T01:02:03Z junk"] {
            assert_eq!(
                pending_rotation_request(&config_map(bad, None)),
                None,
                "{}",
                bad.len()
            );
        }
    }

    #[test]
    fn the_held_key_record_is_bounded() {
        let held: Vec<String> = (0..300).map(|i| format!("{i:016x}")).collect();
        let set = KeySet::default();
        let config_map = public_keys_config_map(&set, "kseal-system", &held);
        let recorded = held_key_ids(&config_map, true);
        assert_eq!(recorded.len(), MAX_HELD_IDS);
        assert_eq!(recorded.last(), held.last(), "the newest are kept");
    }

    /// A rotation in the same second as the key before it (a first key, then
    /// `kseal keys rotate` at once): the new key is the newer one, by time,
    /// not by the text of the time or by chance of the ids.
    #[test]
    fn keys_made_in_the_same_second_are_ordered_by_time() {
        for _ in 0..20 {
            let first = key_secret(
                &Identity::generate(),
                "kseal-system",
                KeyState::Active,
                "2026-12-05T02:01:43Z",
                None,
            );
            let second = key_secret(
                &Identity::generate(),
                "kseal-system",
                KeyState::Active,
                "2026-12-05T02:01:43.946858123Z",
                None,
            );
            let set = KeySet::from_secrets([&first, &second]);
            let newest = second.labels()[KEY_ID_LABEL].clone();
            assert_eq!(set.active().map(|key| key.id.clone()), Some(newest));
        }
    }
}
