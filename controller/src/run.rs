//! Wiring: the key watch and HTTP API on every replica; on the leader, key
//! generation, renewal, publication and the reconciler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use kseal_shared::error_text::describe;
use kseal_shared::sealed_secret::SealedSecret;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;

use crate::events::EventSink;
use crate::rollout::Rollouts;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::cached::CachedSealedSecret;
use crate::config::Settings;
use crate::context::Context;
use crate::crypto_pool::CryptoPool;
use crate::http::{self, ApiState};
use crate::leader::LeaderElector;
use crate::listing::{ListStrategy, OwnedSecretMeta};
use crate::metrics::Metrics;
use crate::owned::OwnedSecrets;
use crate::rate_limit::RateLimiter;
use crate::reconcile::{RESYNC, error_policy, reconcile};
use crate::sealing_keys::{KeyManager, KeyStore};
use kseal_shared::contract::{OWNED_LABEL, SecretPolicy};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot find a Kubernetes configuration: {}",
        kseal_shared::error_text::describe(.0)
    )]
    Config(#[from] kube::config::InferConfigError),
    #[error(
        "cannot read the kubeconfig: {}",
        kseal_shared::error_text::describe(.0)
    )]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    #[error("invalid settings: {0}")]
    Settings(String),
}

/// Runs the controller until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let rewrap_grace = settings.rewrap_grace_period().map_err(RunError::Settings)?;
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = crate::client::build(config.clone(), settings.kube_qps, settings.kube_burst)?;
    // Events go through a client of their own, so they never use the
    // budget Secrets and statuses need.
    let event_client = crate::client::build(config, settings.event_qps, 20)?;
    let instance = instance_name(settings.pod_name.as_deref());
    let identity = lease_identity(&instance);
    let keys = KeyStore::new();
    let metrics = Arc::new(Metrics::new().with_rewrap_grace(rewrap_grace));
    let events = EventSink::spawn(
        event_client,
        Reporter {
            controller: "kseal-controller".into(),
            instance: Some(instance),
        },
        metrics.events_dropped.clone(),
    );
    let sealed_store: Arc<Mutex<Vec<Store<CachedSealedSecret>>>> = Arc::default();
    // One pool for the API's and the reconciler's crypto: together they
    // never take more than one blocking thread per CPU.
    let crypto = CryptoPool::per_cpu();

    tokio::spawn(
        keys.clone()
            .watch(client.clone(), settings.namespace.clone()),
    );

    let state = ApiState {
        keys: keys.clone(),
        metrics: metrics.clone(),
        sealed_secrets: sealed_store.clone(),
        limiter: Arc::new(RateLimiter::new(settings.api_rate)),
        work_limiter: Arc::new(RateLimiter::new(settings.api_work_rate)),
        crypto: crypto.clone(),
    };
    let listener = tokio::net::TcpListener::bind(settings.http_addr).await?;
    let probe_listener = tokio::net::TcpListener::bind(settings.health_addr).await?;
    tracing::info!(
        addr = %settings.http_addr,
        probes = %settings.health_addr,
        crypto_threads = crypto.concurrency(),
        "serving HTTP"
    );
    let probes = tokio::spawn(http::serve(
        probe_listener,
        http::probe_router(state.clone()),
        http::ServerLimits::probes(),
    ));
    let router = http::router(state, settings.max_body_bytes);
    let server = tokio::spawn(http::serve(
        listener,
        router,
        http::ServerLimits::new(settings.max_body_bytes),
    ));

    let (leading_tx, mut leading) = watch::channel(!settings.leader_elect);
    let elector = || {
        LeaderElector::new(
            client.clone(),
            &settings.namespace,
            &settings.lease_name,
            &identity,
            settings.lease_duration,
        )
    };
    // Without leader election the sender stays here, so `leading` stays true.
    let (election, _always_leading) = if settings.leader_elect {
        (Some(tokio::spawn(elector().run(leading_tx))), None)
    } else {
        (None, Some(leading_tx))
    };

    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ready = leading.wait_for(|leading| *leading) => {
                if ready.is_err() { break; }
            }
        }
        tracing::info!(identity = %identity, "leading: reconciling and managing keys");
        metrics.leader.set(1);
        let lead = lead(
            &client,
            &settings,
            &keys,
            &metrics,
            &sealed_store,
            &events,
            &crypto,
        );
        tokio::select! {
            _ = &mut shutdown => break,
            _ = leading.wait_for(|leading| !*leading) => {
                tracing::warn!("lost leadership: stopped reconciling");
            }
            () = lead => tracing::warn!("reconciler stopped; restarting"),
        }
        metrics.leader.set(0);
        if let Ok(mut slot) = sealed_store.lock() {
            slot.clear();
        }
    }
    tracing::info!("shutting down");
    server.abort();
    probes.abort();
    // No longer leading (the loop above dropped the leader's work): give
    // the Lease up, so a successor need not wait for it to expire.
    if let Some(election) = election {
        election.abort();
        let _ = election.await;
        match tokio::time::timeout(Duration::from_secs(2), elector().release()).await {
            Ok(Ok(())) => tracing::info!("released the Lease"),
            Ok(Err(err)) => tracing::warn!(error = %describe(&err), "could not release the Lease"),
            Err(_) => tracing::warn!("could not release the Lease in 2s"),
        }
    }
    Ok(())
}

/// Everything only the leader does. Returns only if the reconciler stops.
async fn lead(
    client: &Client,
    settings: &Settings,
    keys: &KeyStore,
    metrics: &Arc<Metrics>,
    sealed_store: &Arc<Mutex<Vec<Store<CachedSealedSecret>>>>,
    events: &EventSink,
    crypto: &CryptoPool,
) {
    let manager = KeyManager {
        client: client.clone(),
        namespace: settings.namespace.clone(),
        store: keys.clone(),
        events: Some(events.clone()),
    };
    while let Err(err) = async {
        manager
            .ensure_key_watching(&settings.watch_namespaces)
            .await?;
        manager.ensure_key_operations().await
    }
    .await
    {
        tracing::warn!(error = %describe(&err), "cannot check the sealing keys; retrying in 2s");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Reconciling before the keys are loaded would report every object as
    // sealed to an unknown key.
    let mut loaded = keys.subscribe();
    let _ = loaded.wait_for(|generation| *generation > 0).await;

    let period = settings.key_renew_period;
    let renew = async {
        if period.is_zero() {
            std::future::pending::<()>().await;
        }
        manager.renew_loop(period).await;
    };
    let publish = manager.publish_loop();
    let requests = manager.rotation_requests_loop();
    let single_active = manager.single_active_loop();
    let reconciler = reconciler(
        client,
        settings,
        keys,
        metrics,
        sealed_store,
        events,
        crypto,
    );
    tokio::select! {
        () = renew => {}
        () = publish => {}
        () = requests => {}
        () = single_active => {}
        () = reconciler => {}
    }
}

/// Runs the reconciler: one `Controller` over every namespace, or, with
/// `--watch-namespaces`, one per listed namespace (so the controller needs
/// no cluster-wide permissions).
async fn reconciler(
    client: &Client,
    settings: &Settings,
    keys: &KeyStore,
    metrics: &Arc<Metrics>,
    sealed_store: &Arc<Mutex<Vec<Store<CachedSealedSecret>>>>,
    events: &EventSink,
    crypto: &CryptoPool,
) {
    let scopes: Vec<Option<&str>> = if settings.watch_namespaces.is_empty() {
        vec![None]
    } else {
        settings
            .watch_namespaces
            .iter()
            .map(|namespace| Some(namespace.as_str()))
            .collect()
    };
    let controllers = scopes.into_iter().map(|namespace| {
        reconcile_in(
            client,
            settings,
            keys,
            metrics,
            sealed_store,
            events,
            crypto,
            namespace,
        )
    });
    // Returns when any of them stops, so the caller restarts them all.
    futures::future::select_all(controllers.map(Box::pin)).await;
}

/// One `Controller` for SealedSecrets in `namespace` (`None`: all).
// Each argument is a distinct shared handle of `run`; a struct for them
// would only be unpacked here.
#[allow(clippy::too_many_arguments)]
async fn reconcile_in(
    client: &Client,
    settings: &Settings,
    keys: &KeyStore,
    metrics: &Arc<Metrics>,
    sealed_store: &Arc<Mutex<Vec<Store<CachedSealedSecret>>>>,
    events: &EventSink,
    crypto: &CryptoPool,
    namespace: Option<&str>,
) {
    let (sealed_api, secret_api): (Api<SealedSecret>, Api<OwnedSecretMeta>) = match namespace {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        // `OwnedSecretMeta` makes metadata-only list and watch requests.
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    // Both watches list objects whose size others choose: one at a time
    // where the API server can (see `listing`).
    let strategy = ListStrategy::probe(client, namespace).await;
    tracing::info!(strategy = ?strategy, namespace = namespace.unwrap_or("*"), "listing");
    // Owned Secrets: label-selected, metadata only (no data in memory), and
    // of that only what reconciling needs (see `owned` and `listing`).
    let owned_secrets = Arc::new(OwnedSecrets::default());
    let (index, failing) = (owned_secrets.clone(), owned_secrets.clone());
    let owned = watcher(
        secret_api,
        strategy.config().labels(&format!("{OWNED_LABEL}=true")),
    )
    .default_backoff()
    .map_ok(move |event| {
        index.apply(&event);
        event
    })
    .inspect_err(move |_| failing.watch_failed())
    .touched_objects();
    // SealedSecrets, cached with only what reconciling reads (see `cached`).
    // Streamed one at a time, or in pages of at most 16 MiB: a page is
    // parsed whole (managedFields and all) while the cached copies are made.
    let policy = SecretPolicy {
        allow_types: settings.allow_secret_types.iter().cloned().collect(),
        allow_prefixes: settings.allow_metadata_prefixes.iter().cloned().collect(),
    };
    let (sealed_reader, sealed_writer) = reflector::store();
    let sealed = watcher(sealed_api, strategy.config())
        .default_backoff()
        .map_ok({
            let policy = policy.clone();
            move |event| to_cached(event, &policy)
        })
        .reflect(sealed_writer)
        .applied_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        policy: policy.clone(),
        controller_namespace: settings.namespace.clone(),
        reconcile_controller_namespace: settings.reconcile_controller_namespace,
        keys: keys.clone(),
        rewrap_grace: metrics.rewrap_grace(),
        metrics: metrics.clone(),
        events: events.clone(),
        rollouts: Arc::new(Rollouts::new(
            settings.rollout_settings(),
            client.clone(),
            events.clone(),
            metrics.clone(),
        )),
        crypto: crypto.clone(),
        owned_secrets,
        failures: Mutex::new(HashMap::new()),
        written_status: Mutex::new(HashMap::new()),
    });
    let controller = Controller::for_stream(sealed, sealed_reader)
        .owns_stream(owned)
        .reconcile_all_on(futures::stream::select(key_changes(keys), every(RESYNC)))
        .with_config(controller::Config::default().concurrency(settings.concurrency));
    if let Ok(mut slot) = sealed_store.lock() {
        slot.push(controller.store());
    }
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %describe(&err), "reconcile");
            }
        })
        .await;
}

/// This replica's name (in Events, and the first part of its Lease
/// identity): its pod name, else the host name (a pod's, in Kubernetes).
fn instance_name(pod_name: Option<&str>) -> String {
    let host = || {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
    };
    pod_name
        .map(str::to_owned)
        .filter(|name| !name.is_empty())
        .or_else(host)
        .unwrap_or_else(|| "kseal-controller".to_owned())
}

/// This replica's identity in the Lease: its name and a random suffix, as
/// client-go makes them (`<hostname>_<uuid>`). Leader election is only as
/// good as the identities are unique, and nothing else makes them so: in a
/// container the pid is 1 in every replica, and a name can be given twice
/// by mistake. (Pod names cannot contain `_`, so the name part is plain.)
fn lease_identity(instance: &str) -> String {
    format!("{instance}_{:016x}", rand::random::<u64>())
}

fn to_cached(
    event: watcher::Event<SealedSecret>,
    policy: &SecretPolicy,
) -> watcher::Event<CachedSealedSecret> {
    let cache = |sealed| CachedSealedSecret::watched(sealed, policy);
    match event {
        watcher::Event::Apply(sealed) => watcher::Event::Apply(cache(sealed)),
        watcher::Event::Delete(sealed) => watcher::Event::Delete(cache(sealed)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(sealed) => watcher::Event::InitApply(cache(sealed)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Emits once per `period`.
fn every(period: Duration) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// Emits once per change of the key set, so objects sealed to a key that
/// just appeared (or was restored) are retried at once.
fn key_changes(keys: &KeyStore) -> impl Stream<Item = ()> + Send + 'static {
    let receiver = keys.subscribe();
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        Some(((), receiver))
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
