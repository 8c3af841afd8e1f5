//! Prometheus metrics. Label values are reasons, results, key states and
//! key ids: never anything secret.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{Error, Reason};
use kseal_shared::contract::KeyState;

use crate::sealing_keys::KeySet;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    /// Unseals by result: `ok` or an error reason.
    pub unseals: Family<Labels, Counter>,
    /// Reconcile durations.
    pub reconcile_duration: Histogram,
    /// Failed reconciles by reason.
    pub reconcile_errors: Family<Labels, Counter>,
    /// Keys by state (set at scrape time).
    keys: Family<Labels, Gauge>,
    /// SealedSecrets by the key ids their values are sealed to (set at scrape time).
    sealed_secrets: Family<Labels, Gauge>,
    /// Age of the active key in seconds (set at scrape time).
    active_key_age: Gauge<f64, AtomicU64>,
    /// Whether this replica is the leader.
    pub leader: Gauge,
    /// SealedSecrets with a value that none of this cluster's keys opens
    /// (set at scrape time): keys lost or never held.
    pub without_key: Gauge,
    /// Values older than their object's `spec.maxAge`, or of unknown age
    /// where a max age is set (set at scrape time).
    pub values_overdue: Gauge,
    /// Values sealed only to keys that are no longer active (set at scrape
    /// time): `kseal rewrap --stale` re-wraps them.
    pub values_sealed_to_inactive_key: Gauge,
    /// Events dropped because the publishing queue was full.
    pub events_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kseal");
        let unseals = Family::<Labels, Counter>::default();
        registry.register("unseals", "Values unsealed, by result", unseals.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one SealedSecret",
            reconcile_duration.clone(),
        );
        let reconcile_errors = Family::<Labels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by reason",
            reconcile_errors.clone(),
        );
        for reason in Reason::ALL {
            reconcile_errors
                .get_or_create(&vec![("reason", reason.as_str().to_owned())])
                .inc_by(0);
        }
        let keys = Family::<Labels, Gauge>::default();
        registry.register("keys", "Sealing keys, by state", keys.clone());
        let sealed_secrets = Family::<Labels, Gauge>::default();
        registry.register(
            "sealed_secrets",
            "SealedSecrets with values sealed to each key id",
            sealed_secrets.clone(),
        );
        let active_key_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "active_key_age_seconds",
            "Age of the active sealing key",
            active_key_age.clone(),
        );
        let events_dropped: Counter = Counter::default();
        registry.register(
            "events_dropped",
            "Events dropped because the publishing queue was full",
            events_dropped.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica is the leader",
            leader.clone(),
        );
        let without_key = Gauge::default();
        registry.register(
            "sealed_secrets_without_key",
            "SealedSecrets with a value sealed only to keys this cluster does not hold",
            without_key.clone(),
        );
        let values_overdue = Gauge::default();
        registry.register(
            "values_overdue",
            "Sealed values older than their SealedSecret's spec.maxAge (or of unknown age)",
            values_overdue.clone(),
        );
        let values_sealed_to_inactive_key = Gauge::default();
        registry.register(
            "values_sealed_to_inactive_key",
            "Sealed values sealed only to keys that are no longer active",
            values_sealed_to_inactive_key.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        registry.register("build_info", "Build information", build_info.clone());
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
            .set(1);
        Self {
            registry,
            unseals,
            reconcile_duration,
            reconcile_errors,
            keys,
            sealed_secrets,
            active_key_age,
            leader,
            without_key,
            values_overdue,
            values_sealed_to_inactive_key,
            events_dropped,
        }
    }

    pub fn observe_reconcile(&self, elapsed: Duration, error: Option<&Error>) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&vec![("reason", error.reason().as_str().to_owned())])
                .inc();
        }
    }

    pub fn count_unseals(&self, result: &str, values: u64) {
        self.unseals
            .get_or_create(&vec![("result", result.to_owned())])
            .inc_by(values);
    }

    /// Renders the text exposition, after refreshing scrape-time gauges.
    pub fn render(&self, keys: &KeySet, sealed_by_key: &[(String, i64)]) -> String {
        for state in KeyState::ALL {
            self.keys
                .get_or_create(&vec![("state", state.as_str().to_owned())])
                .set(keys.count(state) as i64);
        }
        self.sealed_secrets.clear();
        for (key_id, count) in sealed_by_key {
            self.sealed_secrets
                .get_or_create(&vec![("key_id", key_id.clone())])
                .set(*count);
        }
        let age = keys
            .active()
            .and_then(|key| key.created.parse::<jiff::Timestamp>().ok())
            .map(|created| jiff::Timestamp::now().duration_since(created).as_secs_f64())
            .unwrap_or(0.0);
        self.active_key_age.set(age);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
