//! Wiring: the key watch and HTTP API on every replica; on the leader, key
//! generation, renewal, publication and the reconciler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::sealed_secret::SealedSecret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;

use crate::events::EventSink;
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
use crate::metrics::Metrics;
use crate::owned::OwnedSecrets;
use crate::rate_limit::RateLimiter;
use crate::reconcile::{RESYNC, error_policy, reconcile};
use crate::sealing_keys::{KeyManager, KeyStore};
use kseal_shared::contract::{OWNED_LABEL, SecretPolicy};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot find a Kubernetes configuration: {0}")]
    Config(#[from] kube::config::InferConfigError),
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs the controller until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> Result<(), RunError> {
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
    let identity = settings
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("kseal-controller-{}", std::process::id()));
    let keys = KeyStore::new();
    let metrics = Arc::new(Metrics::new());
    let events = EventSink::spawn(
        event_client,
        Reporter {
            controller: "kseal-controller".into(),
            instance: Some(identity.clone()),
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
    if settings.leader_elect {
        let elector = LeaderElector::new(
            client.clone(),
            &settings.namespace,
            &settings.lease_name,
            &identity,
            settings.lease_duration,
        );
        tokio::spawn(elector.run(leading_tx));
    }

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
    };
    while let Err(err) = manager
        .ensure_key_watching(&settings.watch_namespaces)
        .await
    {
        tracing::warn!(error = %err, "cannot check the sealing keys; retrying in 2s");
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
    let (sealed_api, secret_api): (Api<SealedSecret>, Api<PartialObjectMeta<Secret>>) =
        match namespace {
            Some(namespace) => (
                Api::namespaced(client.clone(), namespace),
                Api::namespaced(client.clone(), namespace),
            ),
            // `Api<PartialObjectMeta<_>>` makes metadata-only list and watch requests.
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
    // Owned Secrets: label-selected, metadata only (no data in memory), and
    // of that only what reconciling needs (see `owned`).
    let owned_secrets = Arc::new(OwnedSecrets::default());
    let (index, failing) = (owned_secrets.clone(), owned_secrets.clone());
    let owned = watcher(
        secret_api,
        watcher::Config::default().labels(&format!("{OWNED_LABEL}=true")),
    )
    .default_backoff()
    .map_ok(move |event| {
        index.apply(&event);
        event
    })
    .inspect_err(move |_| failing.watch_failed())
    .touched_objects();
    // SealedSecrets, cached with only what reconciling reads (see `cached`).
    // Listed 100 at a time: a page is parsed whole (managedFields and all,
    // ~8 KiB an object) while the cached copies are made, and with pages of
    // 500 a restart at 5,000 objects peaked 20 MiB above the bulk sync.
    let (sealed_reader, sealed_writer) = reflector::store();
    let sealed = watcher(sealed_api, watcher::Config::default().page_size(100))
        .default_backoff()
        .map_ok(to_cached)
        .reflect(sealed_writer)
        .applied_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        policy: SecretPolicy {
            allow_types: settings.allow_secret_types.iter().cloned().collect(),
            allow_prefixes: settings.allow_metadata_prefixes.iter().cloned().collect(),
        },
        controller_namespace: settings.namespace.clone(),
        reconcile_controller_namespace: settings.reconcile_controller_namespace,
        keys: keys.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
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
                tracing::debug!(error = %err, "reconcile");
            }
        })
        .await;
}

fn to_cached(event: watcher::Event<SealedSecret>) -> watcher::Event<CachedSealedSecret> {
    match event {
        watcher::Event::Apply(sealed) => watcher::Event::Apply(sealed.into()),
        watcher::Event::Delete(sealed) => watcher::Event::Delete(sealed.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(sealed) => watcher::Event::InitApply(sealed.into()),
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
