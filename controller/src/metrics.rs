//! Prometheus metrics. Label values are reasons, results, key states and
//! the ids of keys the cluster holds: never anything secret, and never
//! anything whoever writes a SealedSecret or Secret chooses. Every label
//! set is fixed or bounded by what the operator made (one series per key
//! Secret, plus [`OTHER_KEY_IDS`] for every other key id): a label per key
//! id named in a value let 16 SealedSecrets make 92,160 series (4.6 MB a
//! scrape).
//!
//! A scrape is rendered at most once per [`RENDER_INTERVAL`], and
//! concurrent scrapes share that one body ([`Metrics::exposition`]), so
//! many scrapers, slow or not, cost one rendering and one body.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use kseal_shared::x25519::KeyId;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{Error, Reason};
use kseal_shared::contract::KeyState;

use crate::cached::CachedSealedSecret;
use crate::sealing_keys::KeySet;

type Labels = Vec<(&'static str, String)>;

/// The `key_id` label of `kseal_sealed_secrets` that counts SealedSecrets
/// with a value sealed to any key id the cluster holds no key Secret for
/// (another cluster's key, an offline recovery key, a lost key, or ids made
/// up by whoever wrote the object), each object once.
pub(crate) const OTHER_KEY_IDS: &str = "other";

/// The workload kinds `spec.rollout` restarts (the `kind` label of
/// `kseal_workload_restarts_total`).
pub(crate) const RESTARTED_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// How long a rendered exposition is served again before the next scrape
/// renders a new one.
pub(crate) const RENDER_INTERVAL: Duration = Duration::from_secs(1);

/// The last exposition rendered, and when it was done.
struct Rendered {
    at: Instant,
    body: Bytes,
}

/// The controller's metrics: one registry, shared by the reconciler and
/// both HTTP listeners.
pub(crate) struct Metrics {
    registry: Registry,
    /// Unseals by result: `ok` or an error reason.
    pub unseals: Family<Labels, Counter>,
    /// Reconcile durations.
    pub reconcile_duration: Histogram,
    /// Failed reconciles by reason.
    pub reconcile_errors: Family<Labels, Counter>,
    /// Keys by state (set at scrape time).
    keys: Family<Labels, Gauge>,
    /// SealedSecrets by the cluster's key ids their values are sealed to,
    /// and [`OTHER_KEY_IDS`] (set at scrape time).
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
    /// Values sealed only to keys that are no longer active, within the
    /// re-wrap grace period (set at scrape time): not due yet.
    pub values_within_rewrap_grace: Gauge,
    /// `--rewrap-grace-period` (zero unless [`Metrics::with_rewrap_grace`]).
    rewrap_grace: Duration,
    /// Events dropped because the publishing queue was full.
    pub events_dropped: Counter,
    /// Workload restarts for `spec.rollout`, by kind and result (`ok`;
    /// `held`: annotated, but paused or OnDelete; `failed`).
    workload_restarts: Family<Labels, Counter>,
    /// The last exposition, shared by scrapes (see [`Metrics::exposition`]);
    /// the lock is held while one is rendered.
    last: Arc<tokio::sync::Mutex<Option<Rendered>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
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
        let workload_restarts = Family::<Labels, Counter>::default();
        registry.register(
            "workload_restarts",
            "Workloads restarted because they read a changed Secret key (spec.rollout), by kind and result",
            workload_restarts.clone(),
        );
        for kind in RESTARTED_KINDS {
            for result in ["ok", "held", "failed"] {
                workload_restarts
                    .get_or_create(&vec![
                        ("kind", kind.to_owned()),
                        ("result", result.to_owned()),
                    ])
                    .inc_by(0);
            }
        }
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
        let values_within_rewrap_grace = Gauge::default();
        registry.register(
            "values_within_rewrap_grace",
            "Sealed values sealed only to keys that are no longer active, within the re-wrap grace period",
            values_within_rewrap_grace.clone(),
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
            values_within_rewrap_grace,
            rewrap_grace: Duration::ZERO,
            events_dropped,
            workload_restarts,
            last: Arc::default(),
        }
    }

    /// Counts values sealed only to keys no longer active as due only
    /// `grace` after the newest of their keys was replaced
    /// (`--rewrap-grace-period`, as `RewrapDue` does).
    pub(crate) fn with_rewrap_grace(mut self, grace: Duration) -> Self {
        self.rewrap_grace = grace;
        self
    }

    pub(crate) fn rewrap_grace(&self) -> Duration {
        self.rewrap_grace
    }

    pub(crate) fn observe_reconcile(&self, elapsed: Duration, error: Option<&Error>) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&vec![("reason", error.reason().as_str().to_owned())])
                .inc();
        }
    }

    /// Counts a workload restart: `kind` is one of [`RESTARTED_KINDS`],
    /// `result` `ok`, `held` or `failed` (fixed sets: no object's text becomes a
    /// label).
    pub(crate) fn count_restart(&self, kind: &'static str, result: &'static str) {
        self.workload_restarts
            .get_or_create(&vec![
                ("kind", kind.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Counts unsealed values by `result`, `ok` or a reason: a fixed set,
    /// hence `'static` (no text from an object can become a label).
    pub(crate) fn count_unseals(&self, result: &'static str, values: u64) {
        self.unseals
            .get_or_create(&vec![("result", result.to_owned())])
            .inc_by(values);
    }

    /// Renders the text exposition, after refreshing scrape-time gauges.
    /// `sealed_by_key`: SealedSecrets per key id (as [`Metrics::scrape`]
    /// counts them). Only the ids of `keys` become label values (each with
    /// a series, 0 included); any other id is added to [`OTHER_KEY_IDS`],
    /// so no input makes more than one series per key Secret plus one.
    pub(crate) fn render(&self, keys: &KeySet, sealed_by_key: &[(String, i64)]) -> String {
        for state in KeyState::ALL {
            self.keys
                .get_or_create(&vec![("state", state.as_str().to_owned())])
                .set(keys.count(state) as i64);
        }
        let mut by_label: BTreeMap<&str, i64> =
            keys.keys.iter().map(|key| (key.id.as_str(), 0)).collect();
        by_label.insert(OTHER_KEY_IDS, 0);
        for (key_id, count) in sealed_by_key {
            let label = if keys.keys.iter().any(|key| key.id == *key_id) {
                key_id.as_str()
            } else {
                OTHER_KEY_IDS
            };
            *by_label.entry(label).or_default() += count;
        }
        self.sealed_secrets.clear();
        for (key_id, count) in by_label {
            self.sealed_secrets
                .get_or_create(&vec![("key_id", key_id.to_owned())])
                .set(count);
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

    /// Sets the gauges computed from the SealedSecrets this replica caches
    /// and renders the exposition. Each object counts once under every key
    /// of `keys` one of its well-formed values names, and once under
    /// [`OTHER_KEY_IDS`] if any value names another key id. CPU work that
    /// grows with the objects: run it off the async workers, through
    /// [`Metrics::exposition`].
    pub(crate) fn scrape<'a>(
        &self,
        keys: &KeySet,
        objects: impl IntoIterator<Item = &'a CachedSealedSecret>,
    ) -> String {
        let mut by_key: BTreeMap<KeyId, i64> = BTreeMap::new();
        let (mut other, mut stranded, mut overdue, mut stale) = (0, 0, 0, 0);
        let mut within_grace = 0;
        let ages = crate::rotation::KeyAges::new(keys);
        let now = jiff::Timestamp::now();
        for sealed in objects {
            // Only well-formed key ids count (the field could hold
            // anything, plaintext pasted by mistake included), and only
            // the cluster's own become label values.
            let mut names_other = false;
            for id in sealed.key_ids() {
                if keys.contains(&id) {
                    *by_key.entry(id).or_default() += 1;
                } else {
                    names_other = true;
                }
            }
            other += i64::from(names_other);
            if has_value_without_key(sealed, &keys.keyring) {
                stranded += 1;
            }
            // Seal times and key ids count once every value opened (the
            // text alone is whatever was committed).
            if !crate::rotation::is_unsealed(sealed) {
                continue;
            }
            for value in sealed.value_facts() {
                if let (Some(Ok(max_age)), Some(sealed_at)) = (&sealed.max_age, value.sealed_at)
                    && max_age.verdict_at(sealed_at, now).is_due()
                {
                    overdue += 1;
                }
                match ages.verdict(value.key_ids, self.rewrap_grace, now) {
                    crate::rotation::Rewrap::Due { .. } => stale += 1,
                    crate::rotation::Rewrap::WithinGrace { .. } => within_grace += 1,
                    crate::rotation::Rewrap::Current => {}
                }
            }
        }
        self.without_key.set(stranded);
        self.values_overdue.set(overdue);
        self.values_sealed_to_inactive_key.set(stale);
        self.values_within_rewrap_grace.set(within_grace);
        let mut by_key: Vec<(String, i64)> = by_key
            .into_iter()
            .map(|(id, count)| (id.to_string(), count))
            .collect();
        by_key.push((OTHER_KEY_IDS.to_owned(), other));
        self.render(keys, &by_key)
    }

    /// The exposition as `render` makes it (on a blocking thread), rendered
    /// at most once per [`RENDER_INTERVAL`]: scrapes within the interval
    /// get the same body (one allocation, however many connections send
    /// it), and scrapes arriving while it is rendered wait for it instead
    /// of rendering their own. `None` if `render` panicked.
    pub(crate) async fn exposition<F>(&self, render: F) -> Option<Bytes>
    where
        F: FnOnce() -> String + Send + 'static,
    {
        let mut last = self.last.clone().lock_owned().await;
        if let Some(rendered) = &*last
            && rendered.at.elapsed() < RENDER_INTERVAL
        {
            return Some(rendered.body.clone());
        }
        // The lock goes with the rendering: a scraper that disconnects
        // meanwhile neither cancels it nor lets another one start.
        tokio::task::spawn_blocking(move || {
            let body = Bytes::from(render());
            *last = Some(Rendered {
                at: Instant::now(),
                body: body.clone(),
            });
            body
        })
        .await
        .ok()
    }
}

/// Whether a well-formed value of the SealedSecret names only keys this
/// replica does not hold (lost or never had): it cannot be unsealed here.
fn has_value_without_key(
    sealed: &CachedSealedSecret,
    keyring: &kseal_shared::envelope::Keyring,
) -> bool {
    sealed
        .key_id_sets()
        .any(|ids| !ids.iter().any(|id| keyring.contains(id)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kseal_shared::age::secrecy::ExposeSecret;
    use kseal_shared::binding::{Binding, Scope};
    use kseal_shared::contract::{IDENTITY_DATA_KEY, KEY_STATE_LABEL, SEALING_KEY_SECRET_TYPE};
    use kseal_shared::envelope::{SealedValue, seal};
    use kseal_shared::sealed_secret::{SealedSecret, SealedSecretSpec};
    use kseal_shared::x25519::{Identity, Recipient};

    use super::*;

    fn key_secret(identity: &Identity, state: KeyState) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some(format!("kseal-key-{}", identity.key_id()));
        secret.metadata.labels = Some(BTreeMap::from([(
            KEY_STATE_LABEL.to_owned(),
            state.as_str().to_owned(),
        )]));
        secret.type_ = Some(SEALING_KEY_SECRET_TYPE.to_owned());
        let file = identity.to_keygen_file("2026-01-01T00:00:00Z");
        secret.data = Some(BTreeMap::from([(
            IDENTITY_DATA_KEY.to_owned(),
            ByteString(file.expose_secret().as_bytes().to_vec()),
        )]));
        secret
    }

    fn sealed_to(recipients: &[Recipient]) -> String {
        let binding = Binding::new(Scope::Strict, "app", "x", "k");
        seal(b"v", &binding, recipients).unwrap().encode()
    }

    /// `value` naming `ids` instead of its own key ids (in the key-ids field
    /// and stanza): it still parses, as anyone can write it, for free.
    fn renamed(value: &str, ids: &[KeyId]) -> String {
        use base64::Engine;
        use base64::prelude::BASE64_STANDARD;
        let fields: Vec<&str> = value.split(':').collect();
        let mut wrapped = BASE64_STANDARD.decode(fields[4]).unwrap();
        for (theirs, id) in fields[2].split(',').zip(ids) {
            let at = wrapped
                .windows(theirs.len())
                .position(|w| w == theirs.as_bytes())
                .unwrap();
            wrapped[at..at + theirs.len()].copy_from_slice(id.to_string().as_bytes());
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        fields[2] = ids.join(",");
        fields[4] = BASE64_STANDARD.encode(&wrapped);
        let value = fields.join(":");
        assert_eq!(
            SealedValue::parse(&value).unwrap().key_ids().len(),
            ids.len()
        );
        value
    }

    fn object(name: &str, values: Vec<String>) -> CachedSealedSecret {
        let mut sealed = SealedSecret::new(
            name,
            SealedSecretSpec {
                scope: Scope::Strict,
                encrypted_data: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| (format!("k{i:03}"), value))
                    .collect(),
                template: None,
                max_age: None,
                ..Default::default()
            },
        );
        sealed.metadata.namespace = Some("app".into());
        CachedSealedSecret::new(sealed, true)
    }

    fn series<'a>(body: &'a str, metric: &str) -> BTreeMap<&'a str, &'a str> {
        body.lines()
            .filter_map(|line| line.strip_prefix(metric)?.strip_prefix("{key_id=\""))
            .filter_map(|rest| rest.split_once("\"} "))
            .collect()
    }

    /// Values naming thousands of key ids nobody holds (each value 64,
    /// all distinct) make one series, `other`, next to one per key Secret:
    /// before, every id was a label value (16,384 series here).
    #[test]
    fn sealed_secret_series_are_bounded_by_the_keys() {
        let [active, decrypt_only, retired] = [(); 3].map(|()| Identity::generate());
        let keys = KeySet::from_secrets(&[
            key_secret(&active, KeyState::Active),
            key_secret(&decrypt_only, KeyState::DecryptOnly),
            key_secret(&retired, KeyState::Retired),
        ]);
        assert_eq!(keys.keys.len(), 3, "{:?}", keys.problems);
        let throwaway: Vec<Recipient> = (0..kseal_shared::envelope::MAX_RECIPIENTS)
            .map(|_| Identity::generate().recipient().clone())
            .collect();
        let base = sealed_to(&throwaway);
        let mut objects: Vec<CachedSealedSecret> = (0..8)
            .map(|o| {
                let values = (0..32)
                    .map(|v| {
                        let ids: Vec<KeyId> = (0..throwaway.len())
                            .map(|i| KeyId::of_recipient_str(&format!("foreign-{o}-{v}-{i}")))
                            .collect();
                        renamed(&base, &ids)
                    })
                    .collect();
                object(&format!("hostile-{o}"), values)
            })
            .collect();
        objects.push(object(
            "mine",
            vec![sealed_to(std::slice::from_ref(active.recipient()))],
        ));
        // A retired key and an offline recovery key: both counted.
        objects.push(object(
            "old",
            vec![sealed_to(&[
                retired.recipient().clone(),
                Identity::generate().recipient().clone(),
            ])],
        ));
        let named: usize = objects.iter().map(|o| o.key_ids().len()).sum();
        assert!(named > 16_000, "{named}");

        let metrics = Metrics::new();
        let body = metrics.scrape(&keys, &objects);
        let found = series(&body, "kseal_sealed_secrets");
        assert_eq!(found.len(), 4, "one series per key and one for the rest");
        let expected = BTreeMap::from([
            (active.key_id().to_string(), "1"),
            (decrypt_only.key_id().to_string(), "0"),
            (retired.key_id().to_string(), "1"),
            (OTHER_KEY_IDS.to_owned(), "9"),
        ]);
        let found: BTreeMap<String, &str> = found
            .into_iter()
            .map(|(id, count)| (id.to_owned(), count))
            .collect();
        assert_eq!(found, expected);
        // Fixed series (reasons, restart kinds and results) plus one per
        // key: a few KiB whatever the objects say.
        assert!(body.len() < 6144, "{} bytes", body.len());
        // (A retired key opens nothing: "old" cannot be unsealed either.)
        assert!(
            body.contains("kseal_sealed_secrets_without_key 9\n"),
            "{body}"
        );

        // Whatever a caller of `render` passes, only the keys' ids are
        // label values.
        let made_up: Vec<(String, i64)> = (0..1000)
            .map(|i| (format!("{i:016x}"), 1))
            .chain([(active.key_id().to_string(), 2)])
            .collect();
        let body = metrics.render(&keys, &made_up);
        let found = series(&body, "kseal_sealed_secrets");
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found[OTHER_KEY_IDS], "1000");
        assert_eq!(found[active.key_id().to_string().as_str()], "2");
    }

    /// Concurrent scrapes wait for the one rendering under way and share
    /// its body (before, each rendered and held its own: 48 slow scrapers
    /// held 48 bodies); the next interval renders again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_scrapes_share_one_rendering() {
        let metrics = Arc::new(Metrics::new());
        let renders = Arc::new(AtomicUsize::new(0));
        let scrape = |metrics: Arc<Metrics>, renders: Arc<AtomicUsize>| async move {
            metrics
                .exposition(move || {
                    renders.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    "x".repeat(100_000)
                })
                .await
                .unwrap()
        };
        let scrapes = (0..48).map(|_| tokio::spawn(scrape(metrics.clone(), renders.clone())));
        let bodies: Vec<Bytes> = futures::future::join_all(scrapes)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        assert!(
            bodies
                .iter()
                .all(|body| body.as_ptr() == bodies[0].as_ptr() && body.len() == 100_000),
            "a scrape got a body of its own"
        );
        tokio::time::sleep(RENDER_INTERVAL).await;
        scrape(metrics.clone(), renders.clone()).await;
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }

    /// A scraper that disconnects while the body is rendered neither wastes
    /// the rendering nor lets a second one start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_scrape_still_renders_once() {
        let metrics = Arc::new(Metrics::new());
        let renders = Arc::new(AtomicUsize::new(0));
        let counted = renders.clone();
        let first = tokio::spawn({
            let metrics = metrics.clone();
            async move {
                metrics
                    .exposition(move || {
                        counted.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        "first".to_owned()
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.abort();
        let counted = renders.clone();
        let body = metrics
            .exposition(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                "second".to_owned()
            })
            .await
            .unwrap();
        assert_eq!(&body[..], b"first");
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }
}
