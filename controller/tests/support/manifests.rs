//! Rendered or example manifests: split, parse, and create them (for real or
//! as a server-side dry run) through discovery, whatever their kind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

/// The documents of a multi-document YAML stream (empty ones dropped).
pub fn parse_docs(text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        if !current.trim().is_empty() {
            let doc: Value = serde_saphyr::from_str(current)
                .unwrap_or_else(|err| panic!("cannot parse document: {err}\n{current}"));
            if !doc.is_null() {
                docs.push(doc);
            }
        }
        current.clear();
    };
    for line in text.lines() {
        if line.trim_end() == "---" {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    docs
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

/// Runs helm; panics with its stderr when it fails.
pub fn helm(helm: &Path, args: &[&str]) -> String {
    let output = Command::new(helm).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `helm template kseal charts/kseal --namespace kseal-system` with `sets`.
pub fn render(helm_bin: &Path, sets: &[&str]) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kseal");
    let chart = chart.to_str().unwrap();
    let mut args = vec!["template", "kseal", chart, "--namespace", "kseal-system"];
    for set in sets {
        args.extend(["--set", set]);
    }
    parse_docs(&helm(helm_bin, &args))
}

/// Creates `doc` as the client's user; `dry_run` asks the API server to
/// validate and admit it without storing it.
///
/// A kind whose CRD was just established may not be in discovery (or
/// served) yet: "not found" is retried for up to a minute, then returned.
pub async fn create(client: &Client, doc: &Value, dry_run: bool) -> Result<(), kube::Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match create_once(client, doc, dry_run).await {
            Err(err) if not_served(&err) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => return result,
        }
    }
}

/// Whether the API server does not know (yet) the kind or resource.
fn not_served(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}

async fn create_once(client: &Client, doc: &Value, dry_run: bool) -> Result<(), kube::Error> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind(doc));
    let (resource, caps) = pinned_kind(client, &gvk).await?;
    let object: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    api.create(&params, &object).await.map(|_| ())
}

/// Whether a result is the API server's 403 Forbidden.
pub fn is_forbidden<T>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}
