//! What a running kseal controller publishes, as tests and benchmarks read
//! it: the recipients in the public-key ConfigMap.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kseal_shared::contract::{PUBLIC_KEYS_CONFIGMAP, RECIPIENTS_DATA_KEY};
use kseal_shared::x25519::{Recipient, parse_recipients_file};
use kube::{Api, Client};

/// Waits (polling every 100 ms, at most `timeout`) until the controller in
/// `namespace` publishes at least one recipient, and returns them.
pub async fn published_recipients(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<Vec<Recipient>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    loop {
        if let Ok(config_map) = api.get(PUBLIC_KEYS_CONFIGMAP).await {
            let text = config_map
                .data
                .unwrap_or_default()
                .remove(RECIPIENTS_DATA_KEY)
                .unwrap_or_default();
            if let Ok(found) = parse_recipients_file(&text)
                && !found.is_empty()
            {
                return Ok(found);
            }
        }
        if started.elapsed() > timeout {
            bail!("no keys published in {namespace} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
