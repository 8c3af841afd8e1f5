//! The state every reconcile and HTTP handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kseal_shared::contract::SecretPolicy;
use kseal_shared::sealed_secret::SealedSecretStatus;
use kube::Client;
use kube::runtime::reflector::ObjectRef;

use crate::cached::CachedSealedSecret;
use crate::metrics::Metrics;
use crate::owned::OwnedSecrets;
use crate::sealing_keys::KeyStore;

pub(crate) struct Context {
    pub client: Client,
    /// What a SealedSecret may create.
    pub policy: SecretPolicy,
    /// The controller's namespace, and whether SealedSecrets there are
    /// reconciled.
    pub controller_namespace: String,
    pub reconcile_controller_namespace: bool,
    pub keys: KeyStore,
    /// `--rewrap-grace-period`: how long after a key is replaced values
    /// sealed only to it are not yet `RewrapDue=True` (see `rotation`).
    pub rewrap_grace: std::time::Duration,
    pub metrics: Arc<Metrics>,
    pub events: crate::events::EventSink,
    /// Restarts for `spec.rollout`.
    pub rollouts: Arc<crate::rollout::Rollouts>,
    /// Where decrypting runs (off the async workers; shared with the API).
    pub crypto: crate::crypto_pool::CryptoPool,
    /// The Secrets kseal owns (label-selected, no data), and which of them
    /// are known to be in sync: lets a reconcile of an unchanged Secret skip
    /// even the read.
    pub owned_secrets: Arc<OwnedSecrets>,
    /// Consecutive transient failures per object, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<CachedSealedSecret>, u32>>,
    /// The status this replica last wrote per object (with the object's
    /// uid), until the watch shows it: the watch cache can lag behind our
    /// own writes, and comparing with it alone would write the same status
    /// twice.
    pub written_status: Mutex<HashMap<ObjectRef<CachedSealedSecret>, (String, SealedSecretStatus)>>,
}

impl Context {
    /// Records a transient failure; returns how many in a row.
    pub(crate) fn record_failure(&self, object: &ObjectRef<CachedSealedSecret>) -> u32 {
        match self.failures.lock() {
            Ok(mut map) => {
                let count = map.entry(object.clone()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            }
            Err(_) => 1,
        }
    }

    /// The status the API server holds for this object, as far as this
    /// replica knows: what it last wrote, until the watched copy (`cached`)
    /// shows that write; then the watched copy.
    pub(crate) fn known_status(
        &self,
        object: &ObjectRef<CachedSealedSecret>,
        uid: &str,
        cached: Option<&SealedSecretStatus>,
    ) -> Option<SealedSecretStatus> {
        if let Ok(mut map) = self.written_status.lock()
            && let Some((written_uid, written)) = map.get(object)
        {
            if written_uid == uid && cached != Some(written) {
                return Some(written.clone());
            }
            // Caught up (or the object was re-created): nothing to remember.
            map.remove(object);
        }
        cached.cloned()
    }

    pub(crate) fn remember_status(
        &self,
        object: ObjectRef<CachedSealedSecret>,
        uid: String,
        status: SealedSecretStatus,
    ) {
        if let Ok(mut map) = self.written_status.lock() {
            map.insert(object, (uid, status));
        }
    }

    pub(crate) fn clear_failures(&self, object: &ObjectRef<CachedSealedSecret>) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(object);
        }
    }
}
