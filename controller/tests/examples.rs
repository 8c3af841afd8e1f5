//! Every file under examples/ is exercised: it parses; `.kseal.yaml` seals
//! each environment to its own keys; the committed SealedSecrets are valid
//! and sealed to the right keys; the pre-commit hooks' commands pass on the
//! repository and catch a plaintext Secret; and every Kubernetes object is
//! accepted by a real API server in a server-side dry run. Flux's and Argo
//! CD's own kinds are dry-run against minimal CRDs installed here (any
//! fields accepted): that checks group, version, kind, names and
//! namespaces, not the fields those projects' schemas define.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/manifests.rs"]
mod manifests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use manifests::{create, kind, name, parse_docs};
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn gitops() -> PathBuf {
    examples().join("gitops")
}

/// Every YAML file under `dir` (dotfiles included), sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The Kubernetes objects of the examples: documents with apiVersion and
/// kind, except kustomize's own kustomization.yaml files.
fn objects() -> Vec<(PathBuf, Value)> {
    yaml_files(&examples())
        .into_iter()
        .flat_map(|path| {
            let docs = parse_docs(&std::fs::read_to_string(&path).unwrap());
            docs.into_iter().map(move |doc| (path.clone(), doc))
        })
        .filter(|(_, doc)| doc["apiVersion"].is_string() && doc["kind"].is_string())
        .filter(|(_, doc)| {
            !doc["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("kustomize.config.k8s.io/")
        })
        .collect()
}

/// The key ids of an age recipients file.
fn key_ids(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    kseal_shared::x25519::parse_recipients_file(&text)
        .unwrap()
        .iter()
        .map(|r| r.key_id().to_string())
        .collect()
}

/// The key ids and scope of every value of a sealed file, from `kseal inspect`.
fn inspect(dir: &Path, file: &str) -> (String, BTreeSet<String>) {
    let (code, out, err) = kseal(dir, &["inspect", file], None);
    assert_eq!(code, 0, "inspect {file}: {err}");
    let scope = out
        .split("(scope ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .to_owned();
    let ids = out
        .lines()
        .filter_map(|line| line.split(" keys ").nth(1))
        .flat_map(|ids| ids.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    (scope, ids)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-token\n  namespace: demo\nstringData:\n  token: example\n";

#[test]
fn every_example_file_parses() {
    let files = yaml_files(&examples());
    assert!(files.len() >= 15, "{files:?}");
    for path in &files {
        let docs = parse_docs(&std::fs::read_to_string(path).unwrap());
        assert!(!docs.is_empty(), "{} has no document", path.display());
    }
    // The demo Secret `cargo xtask demo` seals is still there.
    assert!(examples().join("demo/secret.yaml").is_file());
    let kinds: BTreeSet<String> = objects()
        .iter()
        .map(|(_, doc)| kind(doc).to_owned())
        .collect();
    for expected in [
        "SealedSecret",
        "GitRepository",
        "HelmRelease",
        "Kustomization",
        "Application",
        "ConfigMap",
    ] {
        assert!(kinds.contains(expected), "{kinds:?}");
    }
}

#[test]
fn kseal_yaml_seals_each_environment_to_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    copy_dir(&gitops(), &repo);
    let staging = key_ids(&repo.join("keys/staging.txt"));
    let prod = key_ids(&repo.join("keys/prod.txt"));
    assert_eq!(staging.len(), 2);
    assert_eq!(prod.len(), 2);
    assert_eq!(
        staging.intersection(&prod).count(),
        1,
        "the shared recovery key"
    );

    for (env, ids, scope) in [
        ("staging", &staging, "namespace-wide"),
        ("prod", &prod, "strict"),
    ] {
        // A new Secret, sealed by path.
        let out = format!("clusters/{env}/demo/api-token.sealed.yaml");
        let (code, _, err) = kseal(&repo, &["seal", "-o", &out], Some(SECRET));
        assert_eq!(code, 0, "seal {out}: {err}");
        assert_eq!(inspect(&repo, &out), (scope.to_owned(), ids.clone()));
        // The committed one, sealed the same way, and valid.
        let committed = format!("clusters/{env}/demo/db-credentials.sealed.yaml");
        assert_eq!(inspect(&repo, &committed), (scope.to_owned(), ids.clone()));
        let (code, _, err) = kseal(&repo, &["validate", &committed], None);
        assert_eq!(code, 0, "validate {committed}: {err}");
    }
}

#[test]
fn pre_commit_hooks_pass_on_the_repository_and_catch_plaintext() {
    let repo = gitops();
    let config =
        &parse_docs(&std::fs::read_to_string(repo.join(".pre-commit-config.yaml")).unwrap())[0];
    let hooks = config["repos"][0]["hooks"].as_array().unwrap();
    assert!(hooks.iter().any(|h| h["entry"] == "kseal check"));
    // Run each hook as pre-commit would: its entry with the matching files.
    let all: Vec<String> = yaml_files(&repo)
        .iter()
        .map(|p| p.strip_prefix(&repo).unwrap().to_str().unwrap().to_owned())
        .collect();
    for hook in hooks {
        let entry: Vec<&str> = hook["entry"].as_str().unwrap().split(' ').collect();
        assert_eq!(entry[0], "kseal");
        // The two `files` patterns the config uses, without a regex engine.
        let pattern = hook["files"].as_str().unwrap();
        let matches = |f: &str| match pattern {
            r"\.(ya?ml|json)$|(^|/)\.kseal-" => {
                [".yaml", ".yml", ".json"].iter().any(|e| f.ends_with(e))
                    || f.starts_with(".kseal-")
                    || f.contains("/.kseal-")
            }
            r"\.sealed\.ya?ml$" => f.ends_with(".sealed.yaml") || f.ends_with(".sealed.yml"),
            other => panic!("unexpected files pattern {other}"),
        };
        let files: Vec<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|f| matches(f))
            .collect();
        assert!(!files.is_empty(), "{hook}");
        let mut args = entry[1..].to_vec();
        args.extend(files);
        let (code, out, err) = kseal(&repo, &args, None);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    // The same check fails on a plaintext Secret (the demo's).
    let (code, out, err) = kseal(&examples(), &["check", "demo/secret.yaml"], None);
    assert_eq!(code, 1, "{out}{err}");
}

/// Minimal CRDs (any fields) for the kinds of Flux and Argo CD the
/// examples use.
fn minimal_crd(group: &str, version: &str, kind_: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": kind_, "plural": plural, "singular": kind_.to_lowercase(), "listKind": format!("{kind_}List")},
            "scope": "Namespaced",
            "versions": [{
                "name": version, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn every_example_object_passes_server_side_dry_run() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let started = Instant::now();
    let client = fixture.client.clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        minimal_crd(
            "source.toolkit.fluxcd.io",
            "v1",
            "GitRepository",
            "gitrepositories",
        ),
        minimal_crd(
            "source.toolkit.fluxcd.io",
            "v1",
            "OCIRepository",
            "ocirepositories",
        ),
        minimal_crd(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
            "helmreleases",
        ),
        minimal_crd(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
            "kustomizations",
        ),
        minimal_crd("argoproj.io", "v1alpha1", "Application", "applications"),
    ] {
        let name = crd.metadata.name.clone().unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
        eventually(&format!("{name} established"), || {
            kseal_testenv::crd_established(&client, &name)
        })
        .await;
    }
    for ns in ["flux-system", "argocd"] {
        fixture.namespace(ns).await;
    }
    let objects = objects();
    // Namespaces for real first (objects in them cannot be dry-run before).
    for (path, doc) in objects.iter().filter(|(_, d)| kind(d) == "Namespace") {
        create(&client, doc, false)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    }
    let mut count = 0;
    for (path, doc) in objects.iter().filter(|(_, d)| kind(d) != "Namespace") {
        create(&client, doc, true).await.unwrap_or_else(|err| {
            panic!(
                "{}: {} {} refused: {err}",
                path.display(),
                kind(doc),
                name(doc)
            )
        });
        count += 1;
    }
    assert!(count >= 12, "{count}");
    eprintln!("{count} example objects dry-run: {:.1?}", started.elapsed());

    // The kustomizations build (when kubectl is there to build them).
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        for env in ["staging", "prod"] {
            let output = std::process::Command::new("kubectl")
                .args(["kustomize", &format!("clusters/{env}/demo")])
                .current_dir(gitops())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let built = String::from_utf8(output.stdout).unwrap();
            assert!(
                built.contains("kind: SealedSecret") && built.contains("kind: Deployment"),
                "{built}"
            );
        }
    }
}
