//! The control plane side of a benchmark: the CRD and namespaces, the
//! applying client, many objects applied and listed, the kseal controller,
//! and the API server's request counts.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_shared::x25519::Recipient;
use kseal_testenv::ControlPlane;
use kseal_testenv::api_requests::RequestCounts;
use kseal_testenv::controller::Controller;
use kseal_testenv::poll::wait_for;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};

use super::{Settings, note};

/// Where the kseal controller keeps its keys.
pub const KEY_NAMESPACE: &str = "kseal-system";
/// Where the measured objects go.
pub const NAMESPACE: &str = "bench";
const FIELD_MANAGER: &str = "kseal-bench";

/// Leases are left out of request counts: kube-controller-manager renews
/// its own every 2 s.
const RESOURCES: [&str; 4] = ["secrets", "sealedsecrets", "events", "configmaps"];

/// Starts a control plane and an admin client.
pub async fn start() -> Result<(ControlPlane, Client)> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    note(&format!(
        "control plane up in {:.1}s ({})",
        cp.start_time().as_secs_f64(),
        cp.dir().display()
    ));
    Ok((cp, client))
}

/// Installs kseal's CRD and creates `namespaces`; waits until the CRD is
/// established.
pub async fn setup(client: &Client, namespaces: &[&str]) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &kseal_shared::sealed_secret::custom_resource_definition(),
    )
    .await?;
    for name in namespaces {
        create_namespace(client, name).await?;
    }
    wait_for("the CRD to be established", Duration::from_secs(60), || {
        kseal_testenv::crd_established(client, "sealedsecrets.kseal.dev")
    })
    .await?;
    Ok(())
}

/// The applying client: the controller's own client implementation, with
/// the requested rate limit (none by default).
pub async fn applying_client(cp: &ControlPlane, settings: &Settings) -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.admin_kubeconfig())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kseal_controller::client::build(
        config,
        settings.client_qps,
        settings.client_burst,
    )?)
}

/// Applies every object with `concurrency` requests in flight; returns the
/// time until the last is accepted.
pub async fn apply_all<K>(api: &Api<K>, objects: &[K], concurrency: usize) -> Result<Duration>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let started = Instant::now();
    futures::stream::iter(objects.iter().map(Ok))
        .try_for_each_concurrent(concurrency, |object| {
            let params = &params;
            async move {
                let name = object.meta().name.as_deref().unwrap_or_default();
                api.patch(name, params, &Patch::Apply(object))
                    .await
                    .map(drop)
                    .with_context(|| format!("applying {name}"))
            }
        })
        .await?;
    Ok(started.elapsed())
}

/// Every object, listed 500 at a time.
pub async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(all),
        }
    }
}

/// Creates a namespace.
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_owned());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

/// Deletes a namespace and waits until it is gone (the namespace
/// controller deletes what it holds in the background); the time that
/// took.
pub async fn delete_namespace(client: &Client, name: &str, timeout: Duration) -> Result<Duration> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(name, &Default::default()).await?;
    let gone = wait_for(
        &format!("namespace {name} to be deleted"),
        timeout,
        || async { namespaces.get_opt(name).await.is_ok_and(|ns| ns.is_none()) },
    )
    .await?;
    Ok(gone)
}

/// Starts the kseal controller `binary` on the control plane: its
/// defaults but `--key-renew-period 0`, then `extra`; its log in the
/// control plane's directory.
pub fn kseal_controller(cp: &ControlPlane, binary: &Path, extra: &[String]) -> Result<Controller> {
    Controller::builder(binary, cp.admin_kubeconfig())
        .log_dir(cp.dir())
        .no_key_renewal()
        .args(extra)
        .start()
}

/// Waits until the controller has published its keys and is ready; the
/// published keys.
pub async fn published_and_ready(
    client: &Client,
    controller: &Controller,
) -> Result<Vec<Recipient>> {
    let wait = Duration::from_secs(120);
    let recipients = kseal_testenv::published_recipients(client, KEY_NAMESPACE, wait).await?;
    wait_for("controller /readyz", wait, || controller.is_ready()).await?;
    Ok(recipients)
}

/// The API server's `apiserver_request_total` for the resources kseal
/// touches (secrets, sealedsecrets, events, configmaps). Failed requests
/// (e.g. a create answered 409) count too: they cost the API server as
/// much.
pub async fn api_requests(client: &Client) -> Result<RequestCounts> {
    Ok(RequestCounts::scrape(client)
        .await?
        .of_resources(&RESOURCES))
}
