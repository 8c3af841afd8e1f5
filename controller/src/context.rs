//! The state every reconcile and HTTP handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kseal_shared::{SealedSecret, SealedSecretStatus};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::keys::KeyStore;
use crate::metrics::Metrics;

pub struct Context {
    pub client: Client,
    pub keys: KeyStore,
    pub metrics: Arc<Metrics>,
    pub events: crate::events::EventSink,
    /// Metadata of the Secrets kseal owns (label-selected, no data).
    pub owned_secrets: Store<PartialObjectMeta<Secret>>,
    /// resourceVersion of each owned Secret last seen in sync, by owner.
    /// Lets a reconcile of an unchanged Secret skip even the read.
    pub in_sync: Mutex<HashMap<ObjectRef<SealedSecret>, String>>,
    /// Consecutive transient failures per object, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<SealedSecret>, u32>>,
    /// The status this replica last wrote per object (with the object's
    /// uid): the watch cache can lag behind our own writes, and comparing
    /// with it alone would write the same status twice.
    pub written_status: Mutex<HashMap<ObjectRef<SealedSecret>, (String, SealedSecretStatus)>>,
}

impl Context {
    pub fn in_sync_version(&self, object: &ObjectRef<SealedSecret>) -> Option<String> {
        self.in_sync.lock().ok()?.get(object).cloned()
    }

    pub fn mark_in_sync(&self, object: ObjectRef<SealedSecret>, version: Option<String>) {
        if let Ok(mut map) = self.in_sync.lock() {
            match version {
                Some(version) => {
                    map.insert(object, version);
                }
                None => {
                    map.remove(&object);
                }
            }
        }
    }

    /// Records a transient failure; returns how many in a row.
    pub fn record_failure(&self, object: &ObjectRef<SealedSecret>) -> u32 {
        match self.failures.lock() {
            Ok(mut map) => {
                let count = map.entry(object.clone()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            }
            Err(_) => 1,
        }
    }

    /// The status last written for this object (same uid), if any.
    pub fn written_status(
        &self,
        object: &ObjectRef<SealedSecret>,
        uid: &str,
    ) -> Option<SealedSecretStatus> {
        let map = self.written_status.lock().ok()?;
        map.get(object)
            .filter(|(written_uid, _)| written_uid == uid)
            .map(|(_, status)| status.clone())
    }

    pub fn remember_status(
        &self,
        object: ObjectRef<SealedSecret>,
        uid: String,
        status: SealedSecretStatus,
    ) {
        if let Ok(mut map) = self.written_status.lock() {
            map.insert(object, (uid, status));
        }
    }

    pub fn clear_failures(&self, object: &ObjectRef<SealedSecret>) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(object);
        }
    }
}
