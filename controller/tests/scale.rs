//! Scale check (not part of the default suite): N SealedSecrets applied at
//! once become N correct Secrets; prints the time and the controller's peak
//! memory. `cargo test -p kseal-controller --test scale -- --ignored --nocapture`
//! (`KSEAL_SCALE_COUNT` sets N, default 1000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use futures::StreamExt;
use kseal_shared::{Scope, SealedSecret};
use kube::api::ListParams;

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "a measurement; run explicitly"]
async fn many_sealed_secrets_become_secrets() {
    let count: usize = std::env::var("KSEAL_SCALE_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("scale").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let objects: Vec<SealedSecret> = (0..count)
        .map(|i| {
            let values: Vec<(String, String)> = (0..5)
                .map(|k| (format!("key{k}"), format!("value-{i}-{k}")))
                .collect();
            let pairs: Vec<(&str, &str)> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            seal(
                &plain("scale", &format!("s{i}"), &pairs),
                Scope::Strict,
                &recipients,
            )
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(objects.iter())
        .for_each_concurrent(16, |object| fixture.apply(object))
        .await;
    let applied = started.elapsed();
    let api = fixture.sealed_secrets("scale");
    loop {
        let ready = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.conditions.iter().any(|c| c.status == "True"))
            })
            .count();
        if ready == count {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 1800,
            "only {ready}/{count} Ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let all_ready = started.elapsed();
    let secrets = fixture
        .secrets("scale")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(secrets.items.len(), count);
    for secret in &secrets.items {
        let name = secret.metadata.name.as_deref().unwrap();
        let i: usize = name[1..].parse().unwrap();
        assert_eq!(data_of(secret, "key3"), format!("value-{i}-3"));
    }
    let peak = peak_rss_kib(controller.process.pid().unwrap());
    println!(
        "{{\"count\": {count}, \"applied_s\": {:.1}, \"all_ready_s\": {:.1}, \"controller_peak_rss_mib\": {:.1}}}",
        applied.as_secs_f64(),
        all_ready.as_secs_f64(),
        peak as f64 / 1024.0
    );
}
