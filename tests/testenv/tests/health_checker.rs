//! The health checker (`tests/gomod/health`) on hand-written SealedSecrets,
//! one per state the controller can leave an object in: what kstatus,
//! Flux's CEL `healthCheckExprs` and Argo CD's health Lua, as shipped in
//! `examples/gitops`, make of each. Needs Go, no cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use kseal_testenv::health::{self, Health};
use serde_json::{Value, json};

fn examples() -> PathBuf {
    kseal_testenv::image::workspace_root().join("examples/gitops")
}

fn argocd_cm() -> PathBuf {
    examples().join("argocd/argocd-cm.yaml")
}

fn flux_files() -> [PathBuf; 2] {
    [
        examples().join("flux/prod.yaml"),
        examples().join("flux/staging.yaml"),
    ]
}

/// The checker, or `None` (after a loud notice) when Go is not installed
/// outside CI. Under `CI=true`, or when Go is there, a failed build fails.
fn checker() -> Option<PathBuf> {
    let go = std::process::Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output();
    if !go.is_ok_and(|o| o.status.success()) && !kseal_testenv::is_ci() {
        eprintln!("\n!!!!! SKIPPING the health checker test: Go is not installed\n");
        return None;
    }
    Some(health::ensure_checker().expect("building the health checker"))
}

const TIME: &str = "2026-01-01T00:00:00Z";

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": TIME,
        "observedGeneration": generation,
    })
}

/// A SealedSecret as the API server returns it: `generation`, and `status`
/// as the controller wrote it, or `{}` (kseal's CRD defaults `status` to
/// `{}`, and the API server applies the default on every read).
fn sealed_secret(generation: i64, status: Option<Value>) -> Value {
    json!({
        "apiVersion": "kseal.dev/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {
            "name": "db-credentials",
            "namespace": "demo",
            "uid": "8d6a3c2e-3f0e-4a3e-9a51-0c1d2e3f4a5b",
            "resourceVersion": "4242",
            "generation": generation,
            "creationTimestamp": TIME,
        },
        "spec": {
            "scope": "strict",
            "encryptedData": {"password": "kseal:v2:84763f302a7af62f:1796007628:AAAA:BBBB:CCCC:DDDD"},
        },
        "status": status.unwrap_or_else(|| json!({})),
    })
}

fn status(observed: i64, conditions: Vec<Value>) -> Option<Value> {
    Some(json!({"observedGeneration": observed, "conditions": conditions}))
}

const SYNCED: &str = "Secret demo/db-credentials is in sync";
const UNKNOWN_KEY: &str =
    "value \"password\" is sealed to 84763f302a7af62f, which this cluster does not hold";
const CONFLICT: &str = "writing Secret demo/db-credentials: the object has been modified";
const ROTATION: &str = "value \"password\" was sealed 40 days ago (maxAge 30d)";

/// One state: the object and what (kstatus, Flux, Argo CD) must say.
struct Case {
    name: &'static str,
    object: Value,
    kstatus: &'static str,
    flux: &'static str,
    argocd: &'static str,
    /// Must appear in the Argo CD message.
    argocd_message: &'static str,
}

fn cases() -> Vec<Case> {
    let ready = |g| condition("Ready", "True", "Unsealed", SYNCED, g);
    let unknown_key = |g| {
        vec![
            condition("Ready", "False", "UnknownKey", UNKNOWN_KEY, g),
            condition("Stalled", "True", "UnknownKey", UNKNOWN_KEY, g),
        ]
    };
    vec![
        Case {
            name: "no status yet",
            object: sealed_secret(1, None),
            kstatus: "Current",
            flux: "InProgress",
            argocd: "Progressing",
            argocd_message: "Waiting for the kseal controller",
        },
        Case {
            name: "synced",
            object: sealed_secret(3, status(3, vec![ready(3)])),
            kstatus: "Current",
            flux: "Current",
            argocd: "Healthy",
            argocd_message: "Unsealed: Secret demo/db-credentials is in sync",
        },
        Case {
            name: "synced, rotation and re-wrap due",
            object: sealed_secret(
                3,
                status(
                    3,
                    vec![
                        ready(3),
                        condition("RotationDue", "True", "MaxAgeExceeded", ROTATION, 3),
                        condition("RewrapDue", "True", "KeyNotActive", "re-wrap soon", 3),
                    ],
                ),
            ),
            kstatus: "Current",
            flux: "Current",
            argocd: "Healthy",
            argocd_message: "Unsealed: Secret demo/db-credentials is in sync; RotationDue MaxAgeExceeded: value \"password\" was sealed 40 days ago",
        },
        Case {
            name: "synced, rotation not due",
            object: sealed_secret(
                3,
                status(
                    3,
                    vec![
                        condition("RotationDue", "False", "WithinMaxAge", "", 3),
                        ready(3),
                        condition("RewrapDue", "False", "ActiveKey", "", 3),
                    ],
                ),
            ),
            kstatus: "Current",
            flux: "Current",
            argocd: "Healthy",
            argocd_message: "Unsealed: Secret demo/db-credentials is in sync",
        },
        Case {
            name: "stalled: unknown key",
            object: sealed_secret(2, status(2, unknown_key(2))),
            kstatus: "Failed",
            flux: "Failed",
            argocd: "Degraded",
            argocd_message: "UnknownKey: value \"password\" is sealed to 84763f302a7af62f",
        },
        Case {
            name: "stalled: a Secret kseal does not own",
            object: sealed_secret(
                2,
                status(
                    2,
                    vec![
                        condition("Ready", "False", "SecretNotOwned", "Secret exists", 2),
                        condition("Stalled", "True", "SecretNotOwned", "Secret exists", 2),
                        condition("RotationDue", "False", "WithinMaxAge", "", 2),
                    ],
                ),
            ),
            kstatus: "Failed",
            flux: "Failed",
            argocd: "Degraded",
            argocd_message: "SecretNotOwned: Secret exists",
        },
        Case {
            name: "transient: retrying a Kubernetes error",
            object: sealed_secret(
                2,
                status(
                    2,
                    vec![
                        condition("Ready", "False", "KubernetesError", CONFLICT, 2),
                        condition("Reconciling", "True", "KubernetesError", CONFLICT, 2),
                    ],
                ),
            ),
            kstatus: "InProgress",
            flux: "InProgress",
            argocd: "Progressing",
            argocd_message: "KubernetesError: writing Secret demo/db-credentials",
        },
        Case {
            name: "generation ahead of observedGeneration, old Ready=True",
            object: sealed_secret(4, status(3, vec![ready(3)])),
            kstatus: "InProgress",
            flux: "InProgress",
            argocd: "Progressing",
            argocd_message: "observe generation 4",
        },
        Case {
            name: "generation ahead of observedGeneration, old Stalled=True",
            object: sealed_secret(4, status(3, unknown_key(3))),
            kstatus: "InProgress",
            flux: "InProgress",
            argocd: "Progressing",
            argocd_message: "observe generation 4",
        },
        Case {
            // observedGeneration caught up but the conditions are older: they
            // do not count for this generation.
            name: "conditions of an older generation",
            object: sealed_secret(4, status(4, unknown_key(3))),
            kstatus: "Failed",
            flux: "InProgress",
            argocd: "Progressing",
            argocd_message: "Waiting for the kseal controller",
        },
        Case {
            name: "status without conditions",
            object: sealed_secret(1, Some(json!({"observedGeneration": 1}))),
            kstatus: "Current",
            flux: "InProgress",
            argocd: "Progressing",
            argocd_message: "Waiting for the kseal controller",
        },
    ]
}

fn run(checker: &Path, flux: &Path, objects: &[Value]) -> Vec<Health> {
    health::check(checker, &argocd_cm(), flux, objects).unwrap()
}

#[test]
fn each_state_gets_the_expected_health() {
    let Some(checker) = checker() else { return };
    let cases = cases();
    let objects: Vec<Value> = cases.iter().map(|c| c.object.clone()).collect();
    for flux in flux_files() {
        let results = run(&checker, &flux, &objects);
        let mut wrong = Vec::new();
        for (case, got) in cases.iter().zip(&results) {
            let ok = got.kstatus.status == case.kstatus
                && got.flux.status == case.flux
                && got.argocd.status == case.argocd
                && got.argocd.message.contains(case.argocd_message);
            if !ok {
                wrong.push(format!(
                    "{}: want kstatus {}, Flux {}, Argo CD {} ({:?}); got {got:#?}",
                    case.name, case.kstatus, case.flux, case.argocd, case.argocd_message
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "with {}:\n{}",
            flux.display(),
            wrong.join("\n")
        );
    }
}

#[test]
fn messages_carry_what_each_client_reports() {
    let Some(checker) = checker() else { return };
    let cases = cases();
    let find = |name: &str| cases.iter().find(|c| c.name == name).unwrap();
    let objects = [
        find("stalled: unknown key").object.clone(),
        find("generation ahead of observedGeneration, old Ready=True")
            .object
            .clone(),
        find("synced").object.clone(),
    ];
    let [stalled, ahead, synced] =
        <[Health; 3]>::try_from(run(&checker, &flux_files()[0], &objects)).unwrap();
    // kstatus shows the Stalled condition's message as is.
    assert_eq!(stalled.kstatus.message, UNKNOWN_KEY);
    assert_eq!(
        ahead.kstatus.message,
        "SealedSecret generation is 4, but latest observed generation is 3"
    );
    // Argo CD: "<Ready reason>: <Ready message>".
    assert_eq!(stalled.argocd.message, format!("UnknownKey: {UNKNOWN_KEY}"));
    assert_eq!(
        ahead.argocd.message,
        "Waiting for the kseal controller to observe generation 4 (last observed: 3)"
    );
    // Flux's CEL status reader returns a status and no message.
    for h in [&stalled, &ahead, &synced] {
        assert_eq!(h.flux.message, "", "{h:#?}");
    }
}

#[test]
fn deletion_and_an_older_crd() {
    let Some(checker) = checker() else { return };
    let mut deleting = sealed_secret(
        2,
        status(2, vec![condition("Ready", "True", "Unsealed", SYNCED, 2)]),
    );
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    deleting["metadata"]["finalizers"] = json!(["example.com/hold"]);
    // A CRD without the status default (kseal before it): a new object has
    // no `status` at all. The expressions cannot read it, and Flux's reader
    // answers Unknown with the error: it waits, never calls it healthy.
    let mut bare = sealed_secret(1, None);
    bare.as_object_mut().unwrap().remove("status");

    let [deleting, bare] =
        <[Health; 2]>::try_from(run(&checker, &flux_files()[0], &[deleting, bare])).unwrap();
    // Being deleted: kstatus says so; the expressions and the script read
    // the conditions as usual (Argo CD itself reports a resource with a
    // deletionTimestamp as Progressing before it runs any health script).
    assert_eq!(deleting.kstatus.status, "Terminating");
    assert_eq!(deleting.flux.status, "Current");
    assert_eq!(deleting.argocd.status, "Healthy");

    assert_eq!(bare.flux.status, "Unknown", "{bare:#?}");
    assert!(bare.flux.message.contains("no such attribute"), "{bare:#?}");
    assert_eq!(bare.kstatus.status, "Current");
    assert_eq!(bare.argocd.status, "Progressing");
}

/// The expressions docs/gitops-health.md shows are the shipped ones.
#[test]
fn the_documented_expressions_are_the_shipped_ones() {
    let doc = std::fs::read_to_string(
        kseal_testenv::image::workspace_root().join("docs/gitops-health.md"),
    )
    .unwrap();
    let start = doc
        .find("  healthCheckExprs:\n")
        .expect("expressions in the docs");
    let block = &doc[start..];
    let block = &block[..block.find("```").expect("end of the YAML block")];
    for flux in flux_files() {
        let shipped = std::fs::read_to_string(&flux).unwrap();
        assert!(
            shipped.contains(block),
            "{} lacks the expressions docs/gitops-health.md shows:\n{block}",
            flux.display()
        );
    }
}

/// Writes `text` to a temp file.
fn temp_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_input_fails_with_a_clear_error() {
    let Some(checker) = checker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let flux = &flux_files()[0];
    let object = [sealed_secret(1, None)];
    let err = |argocd: &Path, flux: &Path, objects: &[Value]| {
        format!(
            "{:#}",
            health::check(&checker, argocd, flux, objects).unwrap_err()
        )
    };

    let missing = dir.path().join("missing.yaml");
    let e = err(&missing, flux, &object);
    assert!(e.contains("missing.yaml"), "{e}");

    let no_exprs = temp_file(
        &dir,
        "no-exprs.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n\
         metadata: {name: demo}\nspec:\n  healthCheckExprs:\n\
         \x20   - {apiVersion: apps/v1, kind: Deployment, current: 'true'}\n",
    );
    let e = err(&argocd_cm(), &no_exprs, &object);
    assert!(
        e.contains(
            "no Kustomization has a healthCheckExprs entry for kseal.dev/v1alpha1 SealedSecret"
        ),
        "{e}"
    );

    // Two Kustomizations that disagree.
    let shipped = std::fs::read_to_string(flux).unwrap();
    let changed = shipped.replacen("c.type == 'Ready'", "c.type == 'Synced'", 1);
    assert_ne!(shipped, changed);
    let two = temp_file(&dir, "two.yaml", &format!("{shipped}\n---\n{changed}"));
    let e = err(&argocd_cm(), &two, &object);
    assert!(e.contains("differs from"), "{e}");

    let no_script = temp_file(
        &dir,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata: {}\n",
    );
    let e = err(&no_script, flux, &object);
    assert!(
        e.contains("resource.customizations.health.kseal.dev_SealedSecret"),
        "{e}"
    );

    let lua_error = temp_file(
        &dir,
        "lua-error.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata:\n\
         \x20 resource.customizations.health.kseal.dev_SealedSecret: |\n\
         \x20   return string.format('%s', obj.kind)\n",
    );
    // Argo CD opens no string library for health scripts.
    let e = err(&lua_error, flux, &object);
    assert!(
        e.contains("Argo CD health Lua") && e.contains("string"),
        "{e}"
    );

    let mut not_sealed = sealed_secret(1, None);
    not_sealed["kind"] = json!("Secret");
    let e = err(&argocd_cm(), flux, &[not_sealed]);
    assert!(
        e.contains("is not a kseal.dev/v1alpha1 SealedSecret"),
        "{e}"
    );
}
