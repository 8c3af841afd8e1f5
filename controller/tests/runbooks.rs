//! The runbooks in docs/runbooks/, executed step for step against a real
//! control plane with the commands the documents show (plus the connection
//! flags an operator's kubeconfig and port-forward provide).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use kseal_shared::{binding::Scope, sealed_secret::SealedSecret, x25519::Identity};
use kube::ResourceExt;
use kube::api::ListParams;

const ROTATION: &str = include_str!("../../docs/runbooks/key-rotation.md");
const COMPROMISED: &str = include_str!("../../docs/runbooks/compromised-key.md");
const RECOVERY: &str = include_str!("../../docs/runbooks/disaster-recovery.md");

/// Runs a command the runbook shows (checked verbatim against the
/// document), with connection flags appended.
fn step(doc: &str, dir: &Path, command: &str, connection: &[&str]) -> (i32, String, String) {
    let args = doc_args(doc, dir, command, connection);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kseal(dir, &args, None)
}

/// The arguments of a command the document shows (checked verbatim
/// against it; a line continued with `\` is one command), without
/// `kseal`, with `extra` appended.
fn doc_args(doc: &str, dir: &Path, command: &str, extra: &[&str]) -> Vec<String> {
    assert!(
        doc.contains(command),
        "the document does not show `{command}`"
    );
    let mut args: Vec<String> = shell_words(&command.replace("\\\n", " "))
        .into_iter()
        .map(|word| {
            match word
                .strip_prefix("$(cat ")
                .and_then(|w| w.strip_suffix(')'))
            {
                // The one shell substitution the documents use.
                Some(file) => std::fs::read_to_string(dir.join(file))
                    .unwrap()
                    .trim()
                    .to_owned(),
                None => word,
            }
        })
        .collect();
    assert_eq!(args.remove(0), "kseal");
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Splits a command line on spaces, honouring double quotes.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in command.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Writes `count` SealedSecrets (two values each) sealed to `recipients`
/// under `dir/clusters/prod/`, and returns the plaintexts by name.
fn write_repo(
    dir: &Path,
    count: usize,
    recipients: &[kseal_shared::x25519::Recipient],
) -> BTreeMap<String, String> {
    let prod = dir.join("clusters/prod");
    std::fs::create_dir_all(&prod).unwrap();
    let mut values = BTreeMap::new();
    for i in 0..count {
        let name = format!("app-{i:03}");
        let value = format!("secret-{i}");
        let sealed = seal(
            &plain("apps", &name, &[("password", &value), ("user", "svc")]),
            Scope::Strict,
            recipients,
        );
        let yaml =
            kseal_shared::manifest::to_yaml(&serde_json::to_value(&sealed).unwrap()).unwrap();
        std::fs::write(prod.join(format!("{name}.yaml")), yaml).unwrap();
        values.insert(name, value);
    }
    values
}

async fn apply_repo(fixture: &Fixture, dir: &Path) {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("clusters/prod"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let objects: Vec<SealedSecret> = files
        .iter()
        .map(|file| serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap())
        .collect();
    use futures::StreamExt;
    futures::stream::iter(objects.iter())
        .for_each_concurrent(16, |object| fixture.apply(object))
        .await;
}

async fn all_ready_with(
    fixture: &Fixture,
    values: &BTreeMap<String, String>,
    key_id: Option<&str>,
) {
    eventually(
        "every SealedSecret Ready with its Secret correct",
        || async {
            let sealed = fixture
                .sealed_secrets("apps")
                .list(&ListParams::default())
                .await
                .unwrap();
            let secrets = fixture
                .secrets("apps")
                .list(&ListParams::default())
                .await
                .unwrap();
            let ready = sealed.items.iter().filter(|s| {
                s.status.as_ref().is_some_and(|st| {
                    st.conditions.iter().any(|c| c.status == "True")
                        && st.observed_generation == s.metadata.generation
                        && key_id.is_none_or(|id| st.key_ids == vec![id.to_owned()])
                })
            });
            let correct = secrets.items.iter().filter(|s| {
                values
                    .get(&s.name_any())
                    .is_some_and(|v| data_of(s, "password") == *v)
            });
            ready.count() == values.len() && correct.count() == values.len()
        },
    )
    .await;
}

fn key_state(list: &str, id: &str) -> Option<(String, usize)> {
    list.lines().find(|l| l.starts_with(id)).map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[1].to_owned(), fields[3].parse().unwrap())
    })
}

fn fields(value: &str) -> Vec<String> {
    value.split(':').map(str::to_owned).collect()
}

fn value_of(file: &Path, key: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix(&format!("{key}: "))
                .map(str::to_owned)
        })
        .unwrap()
}

#[tokio::test]
async fn routine_rotation_of_100_sealed_secrets() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("apps").await;
    let controller = fixture.controller(
        "kseal-controller",
        &[
            "--key-renew-period",
            "0",
            "--kube-qps",
            "200",
            "--kube-burst",
            "400",
        ],
    );
    controller.wait_healthy().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // The runbook's commands name the cluster's kube context.
    let config_dir = tempfile::tempdir().unwrap();
    let prod_kubeconfig = config_dir.path().join("kubeconfig");
    fleet_kubeconfig(&prod_kubeconfig, &[("prod", &fixture)]);
    let kubeconfig = prod_kubeconfig.to_str().unwrap().to_owned();
    let kc = ["--kubeconfig", kubeconfig.as_str()];
    let url = controller.url("");
    let online = [
        "--controller-url",
        url.as_str(),
        "--kubeconfig",
        kubeconfig.as_str(),
    ];
    let recovery = Identity::generate();
    std::fs::write(
        dir.join("recovery.pub"),
        format!("{}\n", recovery.recipient()),
    )
    .unwrap();
    let old = fixture.recipients().await;
    let old_id = old[0].key_id().to_string();
    let values = write_repo(dir, 100, &old);
    let before_rewrap = tempfile::tempdir().unwrap();
    copy_dir(
        &dir.join("clusters"),
        &before_rewrap.path().join("clusters"),
    );
    apply_repo(&fixture, dir).await;
    all_ready_with(&fixture, &values, Some(&old_id)).await;

    // 1. Look at the keys.
    let (code, list, err) = step(ROTATION, dir, "kseal keys list --context prod", &kc);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        key_state(&list, &old_id),
        Some(("active".into(), 100)),
        "{list}"
    );

    // 2. Rotate.
    let (code, rotated, err) = step(ROTATION, dir, "kseal keys rotate --context prod", &kc);
    assert_eq!(code, 0, "{err}");
    let new_id = rotated.split_whitespace().next().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    // Retiring the old key is refused while the SealedSecrets still need it.
    let (code, _, err) = kseal(
        dir,
        &["keys", "retire", &old_id, "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refusing to retire") && err.contains("apps/app-000"),
        "{err}"
    );

    // 3. (No pinned files in this repository.) 4. Re-wrap it online.
    let (code, _, err) = step(
        ROTATION,
        dir,
        "kseal rewrap --online --in-place --context prod clusters/prod/",
        &online,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("200 value(s) re-wrapped, 0 already current, 0 failed; 100 file(s) rewritten"),
        "{err}"
    );
    let file = dir.join("clusters/prod/app-007.yaml");
    let (a, b) = (
        fields(&value_of(
            &before_rewrap.path().join("clusters/prod/app-007.yaml"),
            "password",
        )),
        fields(&value_of(&file, "password")),
    );
    assert_eq!(a[3], b[3], "seal time changed");
    assert_eq!(a[5..], b[5..], "ciphertext changed");
    assert_eq!(b[2], new_id);

    // 4. Nothing stale.
    let (code, _, err) = step(ROTATION, dir, "kseal inspect --stale clusters/prod/", &kc);
    assert_eq!(code, 0, "{err}");
    let (code, stale, _) = kseal(
        before_rewrap.path(),
        &[
            "inspect",
            "--stale",
            "clusters/prod/",
            "--kubeconfig",
            &kubeconfig,
        ],
        None,
    );
    assert_eq!(code, 1);
    assert_eq!(stale.lines().count(), 200);

    // 5. Apply (what GitOps does after the commit).
    assert!(ROTATION.contains("git commit -am"));
    apply_repo(&fixture, dir).await;
    all_ready_with(&fixture, &values, Some(&new_id)).await;

    // 6. The old key is unused: retire it. (`keys list` shows what the
    // controller publishes: the demotion, a write of its own after the new
    // key, may reach it later than the new key did.)
    eventually("the old key decrypt-only in `kseal keys list`", || async {
        let (_, list, _) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
        key_state(&list, &old_id).is_some_and(|(state, _)| state == "decrypt-only")
    })
    .await;
    let (code, list, err) = step(ROTATION, dir, "kseal keys list --context prod", &kc);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        key_state(&list, &old_id),
        Some(("decrypt-only".into(), 0)),
        "{list}"
    );
    assert_eq!(
        key_state(&list, &new_id),
        Some(("active".into(), 100)),
        "{list}"
    );
    assert!(ROTATION.contains("kseal keys retire OLD_KEY_ID --context prod"));
    let (code, _, err) = kseal(
        dir,
        &["keys", "retire", &old_id, "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("old key retired", || async {
        let (_, list, _) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
        key_state(&list, &old_id).is_some_and(|(state, _)| state == "retired")
    })
    .await;

    // 8. Back up; `keys list` stops warning about a missing backup.
    let (code, _, err) = step(
        ROTATION,
        dir,
        r#"kseal keys backup --context prod --recipient "$(cat recovery.pub)" -o kseal-keys-backup.age"#,
        &kc,
    );
    assert_eq!(code, 0, "{err}");
    let (_, _, warnings) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
    assert!(!warnings.contains("warning"), "{warnings}");

    // Every Secret unchanged, nothing lost.
    all_ready_with(&fixture, &values, Some(&new_id)).await;

    // The old and new keys cannot open each other's values.
    let backup_file = std::fs::read(dir.join("kseal-keys-backup.age")).unwrap();
    let keys =
        kseal_shared::backup::decrypt(&backup_file, std::slice::from_ref(&recovery)).unwrap();
    let identity_of = |id: &str| -> String {
        let item = keys
            .iter()
            .find(|k| k["metadata"]["labels"]["kseal.dev/key-id"] == id)
            .unwrap();
        let encoded = item["data"]["identity.txt"].as_str().unwrap();
        use base64::Engine;
        String::from_utf8(base64::prelude::BASE64_STANDARD.decode(encoded).unwrap()).unwrap()
    };
    std::fs::write(dir.join("old.key"), identity_of(&old_id)).unwrap();
    std::fs::write(dir.join("new.key"), identity_of(&new_id)).unwrap();
    let new_file = "clusters/prod/app-001.yaml";
    let old_file = before_rewrap.path().join("clusters/prod/app-001.yaml");
    let old_file = old_file.to_str().unwrap();
    assert_eq!(
        kseal(dir, &["unseal", "-i", "new.key", "-f", new_file], None).0,
        0
    );
    assert_eq!(
        kseal(dir, &["unseal", "-i", "old.key", "-f", new_file], None).0,
        1
    );
    assert_eq!(
        kseal(dir, &["unseal", "-i", "old.key", "-f", old_file], None).0,
        0
    );
    assert_eq!(
        kseal(dir, &["unseal", "-i", "new.key", "-f", old_file], None).0,
        1
    );

    // Offline rewrap (with the backed-up old key) has the same effect as the
    // online one: same key ids, same nonces and ciphertexts.
    let new_recipient = fixture.recipients().await[0].to_string();
    let offline = before_rewrap.path();
    let old_key = dir.join("old.key");
    let (code, _, err) = kseal(
        offline,
        &[
            "rewrap",
            "-i",
            old_key.to_str().unwrap(),
            "-r",
            &new_recipient,
            "--in-place",
            "clusters/prod/",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    for name in values.keys() {
        for key in ["password", "user"] {
            let a = fields(&value_of(
                &offline.join(format!("clusters/prod/{name}.yaml")),
                key,
            ));
            let b = fields(&value_of(
                &dir.join(format!("clusters/prod/{name}.yaml")),
                key,
            ));
            // Everything but the (randomized) wrapped key.
            assert_eq!((&a[..4], &a[5..]), (&b[..4], &b[5..]), "{name}/{key}");
        }
    }
    // A retired key no longer decrypts: an object still sealed to it reports so.
    let mut leftover: SealedSecret =
        serde_saphyr::from_str(&std::fs::read_to_string(old_file).unwrap()).unwrap();
    leftover.metadata.name = Some("leftover".into());
    let stale_value = seal(
        &plain("apps", "leftover", &[("k", "v")]),
        Scope::Strict,
        &old,
    );
    leftover.spec = stale_value.spec;
    fixture.apply(&leftover).await;
    assert_eq!(
        fixture.wait_ready("apps", "leftover", "False").await,
        "RetiredKey"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn disaster_recovery_into_a_new_cluster() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let recovery = Identity::generate();
    std::fs::write(
        dir.join("recovery.pub"),
        format!("{}\n", recovery.recipient()),
    )
    .unwrap();
    {
        use kseal_shared::age::secrecy::ExposeSecret;
        let file = recovery.to_keygen_file("2026-01-01T00:00:00Z");
        std::fs::write(dir.join("recovery-key.txt"), file.expose_secret()).unwrap();
    }
    // The old cluster: SealedSecrets in sync, keys backed up.
    let (values, old_id) = {
        let Some(fixture) = Fixture::start().await else {
            return;
        };
        fixture.namespace("apps").await;
        let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
        controller.wait_healthy().await;
        let recipients = fixture.recipients().await;
        let values = write_repo(dir, 20, &recipients);
        apply_repo(&fixture, dir).await;
        all_ready_with(&fixture, &values, None).await;
        let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
        let (code, _, err) = step(
            RECOVERY,
            dir,
            r#"kseal keys backup --recipient "$(cat recovery.pub)" -o kseal-keys-backup.age"#,
            &["--kubeconfig", &kubeconfig],
        );
        assert_eq!(code, 0, "{err}");
        (values, recipients[0].key_id().to_string())
        // The cluster is lost here: etcd, API server and controller stop.
    };

    // A new cluster with a fresh etcd; its controller makes a fresh key.
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("apps").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let fresh = fixture.recipients().await;
    assert_ne!(fresh[0].key_id().to_string(), old_id);
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let kc = ["--kubeconfig", kubeconfig.as_str()];

    // The review step: what would be installed, and nothing installed.
    let (code, _, err) = step(
        RECOVERY,
        dir,
        "kseal keys restore kseal-keys-backup.age --identity recovery-key.txt --dry-run",
        &kc,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("kseal: key {old_id} (age1"))
            && err.contains("would be restored as decrypt-only")
            && err.contains("dry run, nothing installed: 1 key(s) would be restored"),
        "{err}"
    );
    let key_secrets = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap();
    assert_eq!(key_secrets.items.len(), 1, "the dry run installed a key");
    assert!(
        key_secrets.items.iter().all(|secret| secret
            .labels()
            .get("kseal.dev/key-id")
            .is_some_and(|id| *id == fresh[0].key_id().to_string())),
        "the dry run installed a key"
    );

    let (code, _, err) = step(
        RECOVERY,
        dir,
        "kseal keys restore kseal-keys-backup.age --identity recovery-key.txt",
        &kc,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("restored 1 key(s)"), "{err}");
    assert!(
        err.contains(&format!("kseal: installed key {old_id} as decrypt-only")),
        "{err}"
    );
    // `keys list` shows what the controller publishes, which follows the
    // restored key Secrets moments later.
    eventually("the restored key in `kseal keys list`", || async {
        let (code, list, err) = step(RECOVERY, dir, "kseal keys list", &kc);
        assert_eq!(code, 0, "{err}");
        list.contains(&old_id)
    })
    .await;
    // Restoring twice changes nothing.
    let (code, _, err) = step(
        RECOVERY,
        dir,
        "kseal keys restore kseal-keys-backup.age --identity recovery-key.txt",
        &kc,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 already present"), "{err}");
    // A wrong recovery identity is refused clearly.
    let stranger = Identity::generate();
    {
        use kseal_shared::age::secrecy::ExposeSecret;
        std::fs::write(
            dir.join("wrong.txt"),
            stranger.to_secret_string().expose_secret(),
        )
        .unwrap();
    }
    let (code, _, err) = kseal(
        dir,
        &[
            "keys",
            "restore",
            "kseal-keys-backup.age",
            "--identity",
            "wrong.txt",
            "--kubeconfig",
            &kubeconfig,
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot be decrypted"), "{err}");

    // The SealedSecrets in git decrypt again.
    apply_repo(&fixture, dir).await;
    all_ready_with(&fixture, &values, Some(&old_id)).await;
    let (code, _, err) = step(
        RECOVERY,
        dir,
        r#"kseal keys backup --recipient "$(cat recovery.pub)" -o kseal-keys-backup.age"#,
        &kc,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 key(s) backed up"), "{err}");
}

#[tokio::test]
async fn compromised_key_values_are_replaced_and_the_key_deleted() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("apps").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let config_dir = tempfile::tempdir().unwrap();
    let prod_kubeconfig = config_dir.path().join("kubeconfig");
    fleet_kubeconfig(&prod_kubeconfig, &[("prod", &fixture)]);
    let kubeconfig = prod_kubeconfig.to_str().unwrap().to_owned();
    let kc = ["--kubeconfig", kubeconfig.as_str()];
    let old = fixture.recipients().await;
    let old_id = old[0].key_id().to_string();
    let original = write_repo(dir, 5, &old);
    let leaked_copy = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("clusters"), &leaked_copy.path().join("clusters"));
    apply_repo(&fixture, dir).await;
    all_ready_with(&fixture, &original, Some(&old_id)).await;

    // 1. Rotate now.
    let (code, rotated, err) = step(COMPROMISED, dir, "kseal keys rotate --context prod", &kc);
    assert_eq!(code, 0, "{err}");
    let new_id = rotated.split_whitespace().next().unwrap().to_owned();
    // 2. Find everything sealed to the compromised key.
    let (code, stale, _) = step(
        COMPROMISED,
        dir,
        "kseal inspect --stale clusters/prod/",
        &kc,
    );
    assert_eq!(code, 1);
    assert_eq!(stale.lines().count(), 10, "{stale}");
    // 3. New values, sealed into each file with --merge-into.
    assert!(COMPROMISED.contains("kseal seal --name db-credentials --namespace demo \\\n  --from-literal password=NEW-PASSWORD --merge-into"));
    let mut replaced = BTreeMap::new();
    for name in original.keys() {
        let password = format!("rotated-{name}");
        let file = format!("clusters/prod/{name}.yaml");
        let (code, _, err) = kseal(
            dir,
            &[
                "seal",
                "--name",
                name,
                "--namespace",
                "apps",
                "--from-literal",
                &format!("password={password}"),
                "--from-literal",
                "user=svc-2",
                "--merge-into",
                &file,
                "--kubeconfig",
                &kubeconfig,
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
        replaced.insert(name.clone(), password);
    }
    let (code, _, err) = kseal(
        dir,
        &[
            "inspect",
            "--stale",
            "clusters/prod/",
            "--kubeconfig",
            &kubeconfig,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    // 4. Apply.
    apply_repo(&fixture, dir).await;
    all_ready_with(&fixture, &replaced, Some(&new_id)).await;
    // 5. Retire and delete the compromised key (once `keys list` shows
    // the demotion, which follows the new key's publication).
    eventually("the old key decrypt-only in `kseal keys list`", || async {
        let (_, list, _) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
        key_state(&list, &old_id).is_some_and(|(state, _)| state == "decrypt-only")
    })
    .await;
    let (code, list, _) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0);
    assert_eq!(
        key_state(&list, &old_id),
        Some(("decrypt-only".into(), 0)),
        "{list}"
    );
    assert!(COMPROMISED.contains("kseal keys retire COMPROMISED_KEY_ID --delete --context prod"));
    let (code, _, err) = kseal(
        dir,
        &[
            "keys",
            "retire",
            &old_id,
            "--delete",
            "--kubeconfig",
            &kubeconfig,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    eventually("the compromised key is gone", || async {
        let keys = fixture
            .secrets(NAMESPACE)
            .list(&ListParams::default().labels(&format!("kseal.dev/key-id={old_id}")))
            .await
            .unwrap();
        keys.items.is_empty()
    })
    .await;
    // Whoever re-applies a leaked old file gets nothing from the cluster.
    let leaked: SealedSecret = serde_saphyr::from_str(
        &std::fs::read_to_string(leaked_copy.path().join("clusters/prod/app-000.yaml")).unwrap(),
    )
    .unwrap();
    let mut leaked = leaked;
    leaked.metadata.name = Some("replayed".into());
    fixture.apply(&leaked).await;
    assert_eq!(
        fixture.wait_ready("apps", "replayed", "False").await,
        "UnknownKey"
    );
}

const GITOPS: &str = include_str!("../../examples/gitops/README.md");
const GITOPS_CONFIG: &str = include_str!("../../examples/gitops/.kseal.yaml");

/// [`step`] in an operator's shell: `$KUBECONFIG` names a kubeconfig with
/// a context per cluster, so the documents' commands run as written
/// (`--controller-url` is the one flag added, for the port-forward the
/// runbook describes: the controllers here are processes, not pods).
fn run_doc(
    doc: &str,
    dir: &Path,
    kubeconfig: &Path,
    command: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let args = doc_args(doc, dir, command, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kseal_with_kubeconfig(dir, &args, None, Some(kubeconfig))
}

/// One kubeconfig with a context per cluster, named as `.kseal.yaml`'s
/// rules name them.
fn fleet_kubeconfig(path: &Path, clusters: &[(&str, &Fixture)]) {
    let (mut all_clusters, mut users, mut contexts) = (vec![], vec![], vec![]);
    for (name, fixture) in clusters {
        let text = std::fs::read_to_string(fixture.cp.admin_kubeconfig()).unwrap();
        let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        all_clusters
            .push(serde_json::json!({"name": name, "cluster": config["clusters"][0]["cluster"]}));
        users.push(serde_json::json!({"name": name, "user": config["users"][0]["user"]}));
        contexts
            .push(serde_json::json!({"name": name, "context": {"cluster": name, "user": name}}));
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": all_clusters,
        "users": users,
        "contexts": contexts,
        "current-context": clusters[0].0,
    });
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Every SealedSecret under `dir/clusters/<cluster>/`, applied.
async fn apply_cluster_dir(fixture: &Fixture, dir: &Path, cluster: &str) {
    for file in sealed_files(dir, cluster) {
        let object: SealedSecret =
            serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        fixture.apply(&object).await;
    }
}

fn sealed_files(dir: &Path, cluster: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("clusters").join(cluster).join("demo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The key ids of every value under `clusters/<cluster>/`.
fn key_ids_of_values(dir: &Path, cluster: &str) -> Vec<std::collections::BTreeSet<String>> {
    sealed_files(dir, cluster)
        .iter()
        .flat_map(|file| {
            let object: SealedSecret =
                serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            object
                .spec
                .encrypted_data
                .values()
                .map(|value| fields(value)[2].split(',').map(str::to_owned).collect())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits until every SealedSecret is Ready (for its generation), its
/// Secret holds `values`, and its `RewrapDue` condition is `rewrap_due`
/// (status and reason, e.g. "False SealedToActiveKey").
async fn in_sync(fixture: &Fixture, values: &BTreeMap<String, String>, rewrap_due: &str) {
    let what = format!("every SealedSecret Ready, its Secret correct, RewrapDue {rewrap_due}");
    eventually(&what, || async {
        let mut reasons = BTreeMap::new();
        let sealed = fixture
            .sealed_secrets("demo")
            .list(&ListParams::default())
            .await
            .unwrap();
        let secrets = fixture
            .secrets("demo")
            .list(&ListParams::default())
            .await
            .unwrap();
        let ready = sealed
            .items
            .iter()
            .filter(|s| {
                s.status.as_ref().is_some_and(|st| {
                    let condition = |kind: &str| st.conditions.iter().find(|c| c.type_ == kind);
                    if let Some(rewrap) = condition("RewrapDue") {
                        reasons
                            .insert(s.name_any(), format!("{} {}", rewrap.status, rewrap.reason));
                    }
                    condition("Ready").is_some_and(|c| c.status == "True")
                        && st.observed_generation == s.metadata.generation
                })
            })
            .count();
        let correct = secrets
            .items
            .iter()
            .filter(|s| {
                values
                    .get(&s.name_any())
                    .is_some_and(|v| data_of(s, "password") == *v)
            })
            .count();
        let done = ready == values.len()
            && correct == values.len()
            && reasons.len() == values.len()
            && reasons.values().all(|reason| reason == rewrap_due);
        if !done {
            eprintln!("waiting: {ready} ready, {correct} correct, RewrapDue {reasons:?}");
        }
        done
    })
    .await;
}

/// The recovery identity opens every value of every file (the
/// `kseal unseal` a recovery would run), with the expected password.
fn recovery_opens_everything(dir: &Path, values: &BTreeMap<(String, String), String>) {
    for ((cluster, name), password) in values {
        let file = format!("clusters/{cluster}/demo/{name}.sealed.yaml");
        let (code, out, err) = kseal(
            dir,
            &["unseal", "-i", "../recovery-key.txt", "-f", &file],
            None,
        );
        assert_eq!(code, 0, "{file}: {err}");
        use base64::Engine;
        let encoded = base64::prelude::BASE64_STANDARD.encode(password);
        assert!(
            out.contains(&encoded) || out.contains(password.as_str()),
            "{file}: {out}"
        );
    }
}

/// The layout the project recommends, run as the documents say: two
/// clusters (each its own API server, etcd and controller, renewal on with
/// the chart's defaults), a `.kseal.yaml` pinning each cluster's key with
/// an offline recovery key, and one kubeconfig with a context per cluster.
/// Through a scheduled renewal, a routine rotation run by the fleet job of
/// examples/gitops/README.md and a compromise, every command of
/// docs/runbooks/key-rotation.md, docs/runbooks/compromised-key.md and the
/// README's pin commands runs verbatim. After each: the recovery key opens
/// every value, nothing is `RewrapDue=True`, and after the compromise no
/// value names the compromised key.
#[tokio::test]
async fn runbooks_in_the_pinned_layout_on_two_clusters() {
    let Some(mut fleet) = Fixture::start_fleet(2).await else {
        return;
    };
    let (Some(prod), Some(staging)) = (fleet.pop(), fleet.pop()) else {
        unreachable!("two fixtures");
    };
    let staging_controller = staging.controller("kseal-controller", &[]);
    let prod_controller = prod.controller("kseal-controller", &[]);
    for fixture in [&staging, &prod] {
        fixture.namespace("demo").await;
    }
    staging_controller.wait_healthy().await;
    prod_controller.wait_healthy().await;
    // Healthy comes before the first key is published.
    let _ = (staging.recipients().await, prod.recipients().await);
    let prod_url = prod_controller.url("");
    let online = ["--controller-url", prod_url.as_str()];
    let work = tempfile::tempdir().unwrap();
    // The repository, and beside it what stays out of git.
    let dir = &work.path().join("repo");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let kubeconfig = &work.path().join("kubeconfig");
    fleet_kubeconfig(kubeconfig, &[("staging", &staging), ("prod", &prod)]);
    let recovery = Identity::generate();
    {
        use kseal_shared::age::secrecy::ExposeSecret;
        let file = recovery.to_keygen_file("2026-01-01T00:00:00Z");
        std::fs::write(work.path().join("recovery-key.txt"), file.expose_secret()).unwrap();
    }
    let recovery_id = recovery.recipient().key_id().to_string();
    std::fs::write(
        dir.join("recovery.pub"),
        format!("{}\n", recovery.recipient()),
    )
    .unwrap();
    std::fs::write(dir.join(".kseal.yaml"), GITOPS_CONFIG).unwrap();
    let recovery_lines = format!(
        "# recovery (offline, kept by the security team)\n{}\n",
        recovery.recipient()
    );
    for cluster in ["staging", "prod"] {
        std::fs::write(dir.join(format!("keys/{cluster}.txt")), &recovery_lines).unwrap();
    }
    let pin_of =
        |cluster: &str| std::fs::read_to_string(dir.join(format!("keys/{cluster}.txt"))).unwrap();

    // The README: pins made from the recovery line alone.
    let (code, _, err) = run_doc(GITOPS, dir, kubeconfig, "kseal pins update", &[]);
    assert_eq!(code, 0, "{err}");
    for (cluster, fixture) in [("staging", &staging), ("prod", &prod)] {
        let pin = pin_of(cluster);
        assert!(pin.contains(&recovery_lines), "{pin}");
        assert!(
            pin.contains(&fixture.recipients().await[0].to_string()),
            "{pin}"
        );
    }
    let (code, _, err) = run_doc(GITOPS, dir, kubeconfig, "kseal pins check", &[]);
    assert_eq!(code, 0, "{err}");

    // Sealing as the README shows: offline, from the pins.
    let mut values: BTreeMap<(String, String), String> = BTreeMap::new();
    assert!(GITOPS.contains("| kseal seal -o clusters/prod/demo/api-token.sealed.yaml"));
    for cluster in ["staging", "prod"] {
        for name in ["api-token", "db-credentials", "smtp"] {
            let password = format!("{cluster}-{name}-1");
            let secret = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: demo\nstringData:\n  password: {password}\n"
            );
            let out = format!("clusters/{cluster}/demo/{name}.sealed.yaml");
            let (code, _, err) = kseal(dir, &["seal", "-o", &out], Some(&secret));
            assert_eq!(code, 0, "{err}");
            values.insert((cluster.to_owned(), name.to_owned()), password);
        }
    }
    let of_cluster = |values: &BTreeMap<(String, String), String>, cluster: &str| {
        values
            .iter()
            .filter(|((c, _), _)| c == cluster)
            .map(|((_, name), v)| (name.clone(), v.clone()))
            .collect::<BTreeMap<String, String>>()
    };
    apply_cluster_dir(&staging, dir, "staging").await;
    apply_cluster_dir(&prod, dir, "prod").await;
    in_sync(
        &staging,
        &of_cluster(&values, "staging"),
        "False SealedToActiveKey",
    )
    .await;
    in_sync(
        &prod,
        &of_cluster(&values, "prod"),
        "False SealedToActiveKey",
    )
    .await;
    recovery_opens_everything(dir, &values);
    let staging_key = active_key(&staging).await;
    let staging_files_before: Vec<String> = sealed_files(dir, "staging")
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();

    // Rotation 1: prod's scheduled renewal. Thirty days pass (the active
    // key's creation time moves back); the controller renews on its own.
    let first = active_key(&prod).await;
    let key_secrets = prod
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels(&format!("kseal.dev/key-id={first}")))
        .await
        .unwrap();
    let month_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(31 * 24))
        .unwrap()
        .to_string();
    prod.secrets(NAMESPACE)
        .patch(
            &key_secrets.items[0].name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {"kseal.dev/created-at": month_ago}}
            })),
        )
        .await
        .unwrap();
    eventually("prod renews its key", || async {
        active_key(&prod).await != first
    })
    .await;
    let second = active_key(&prod).await;
    // Within the grace period nothing is RewrapDue, but the pin is stale.
    in_sync(
        &prod,
        &of_cluster(&values, "prod"),
        "False WithinGracePeriod",
    )
    .await;
    let (code, out, err) = kseal_with_kubeconfig(dir, &["pins", "check"], None, Some(kubeconfig));
    assert_eq!(code, 1, "{out}{err}");
    assert!(format!("{out}{err}").contains(&first), "{out}{err}");
    // The rotation runbook, steps 3 to 8 (a renewal did step 2).
    let (code, _, err) = run_doc(ROTATION, dir, kubeconfig, "kseal pins update", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(pin_of("prod").contains(&recovery_lines));
    let (code, _, err) = run_doc(
        ROTATION,
        dir,
        kubeconfig,
        "kseal rewrap --online --in-place --context prod clusters/prod/",
        &online,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("3 value(s) re-wrapped")
            && err.contains(&format!(
                "kept the other recipient(s) byte for byte: {recovery_id} (3 value(s))"
            )),
        "{err}"
    );
    for command in ["kseal pins check", "kseal inspect --stale clusters/prod/"] {
        let (code, _, err) = run_doc(ROTATION, dir, kubeconfig, command, &[]);
        assert_eq!(code, 0, "{command}: {err}");
    }
    for ids in key_ids_of_values(dir, "prod") {
        assert_eq!(ids, [second.clone(), recovery_id.clone()].into(), "{ids:?}");
    }
    assert!(ROTATION.contains("git commit -am"));
    apply_cluster_dir(&prod, dir, "prod").await;
    in_sync(
        &prod,
        &of_cluster(&values, "prod"),
        "False SealedToActiveKey",
    )
    .await;
    recovery_opens_everything(dir, &values);
    retire_when_unused(
        dir,
        kubeconfig,
        &first,
        ROTATION,
        "kseal keys retire OLD_KEY_ID --context prod",
    )
    .await;
    let (code, _, err) = run_doc(
        ROTATION,
        dir,
        kubeconfig,
        r#"kseal keys backup --context prod --recipient "$(cat recovery.pub)" -o kseal-keys-backup.age"#,
        &[],
    );
    assert_eq!(code, 0, "{err}");

    // Rotation 2: `kseal keys rotate`, then the README's fleet job.
    for command in [
        "kseal keys list --context prod",
        "kseal keys rotate --context prod",
    ] {
        let (code, _, err) = run_doc(ROTATION, dir, kubeconfig, command, &[]);
        assert_eq!(code, 0, "{command}: {err}");
    }
    let third = active_key(&prod).await;
    assert_ne!(third, second);
    let (code, _, err) = run_doc(GITOPS, dir, kubeconfig, "kseal pins update", &[]);
    assert_eq!(code, 0, "{err}");
    let job =
        "kseal rewrap --online --in-place --stale --context \"$cluster\" \"clusters/$cluster/\"";
    assert!(GITOPS.contains(job) && GITOPS.contains("for cluster in staging prod; do"));
    for (cluster, controller) in [("staging", &staging_controller), ("prod", &prod_controller)] {
        let command = job
            .replace("\"$cluster\"", cluster)
            .replace("\"clusters/$cluster/\"", &format!("clusters/{cluster}/"));
        let url = controller.url("");
        let mut args: Vec<&str> = command.split(' ').skip(1).collect();
        args.extend(["--controller-url", url.as_str()]);
        let (code, _, err) = kseal_with_kubeconfig(dir, &args, None, Some(kubeconfig));
        assert_eq!(code, 0, "{cluster}: {err}");
        let expected = if cluster == "prod" {
            "3 value(s) re-wrapped"
        } else {
            "0 value(s) re-wrapped"
        };
        assert!(err.contains(expected), "{cluster}: {err}");
    }
    assert!(GITOPS.contains("kseal pins check && kseal inspect --stale clusters/"));
    for command in ["kseal pins check", "kseal inspect --stale clusters/"] {
        let (code, _, err) = kseal_with_kubeconfig(
            dir,
            &command.split(' ').skip(1).collect::<Vec<_>>(),
            None,
            Some(kubeconfig),
        );
        assert_eq!(code, 0, "{command}: {err}");
    }
    apply_cluster_dir(&prod, dir, "prod").await;
    in_sync(
        &prod,
        &of_cluster(&values, "prod"),
        "False SealedToActiveKey",
    )
    .await;
    recovery_opens_everything(dir, &values);
    retire_when_unused(
        dir,
        kubeconfig,
        &second,
        ROTATION,
        "kseal keys retire OLD_KEY_ID --context prod",
    )
    .await;

    // The compromise: prod's active key leaked.
    let compromised = third;
    let (code, _, err) = run_doc(
        COMPROMISED,
        dir,
        kubeconfig,
        "kseal keys rotate --context prod",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let fourth = active_key(&prod).await;
    assert_ne!(fourth, compromised);
    // Before the pin is refreshed, the check names the compromised key.
    let (code, out, err) = kseal_with_kubeconfig(dir, &["pins", "check"], None, Some(kubeconfig));
    assert_eq!(code, 1);
    assert!(format!("{out}{err}").contains(&compromised), "{out}{err}");
    for command in ["kseal pins update", "kseal pins check"] {
        let (code, _, err) = run_doc(COMPROMISED, dir, kubeconfig, command, &[]);
        assert_eq!(code, 0, "{command}: {err}");
    }
    assert!(!pin_of("prod").contains(&compromised_recipient(&prod, &compromised).await));
    let (code, _, err) = run_doc(
        COMPROMISED,
        dir,
        kubeconfig,
        "kseal keys list --context prod",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, stale, _) = run_doc(
        COMPROMISED,
        dir,
        kubeconfig,
        "kseal inspect --stale clusters/prod/",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(stale.lines().count(), 3, "{stale}");
    // The document's command for db-credentials, verbatim; the same form
    // for the other files.
    let (code, _, err) = run_doc(
        COMPROMISED,
        dir,
        kubeconfig,
        "kseal seal --name db-credentials --namespace demo \\\n  --from-literal password=NEW-PASSWORD --merge-into clusters/prod/demo/db-credentials.sealed.yaml",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    values.insert(
        ("prod".to_owned(), "db-credentials".to_owned()),
        "NEW-PASSWORD".to_owned(),
    );
    for name in ["api-token", "smtp"] {
        let password = format!("prod-{name}-replaced");
        let file = format!("clusters/prod/demo/{name}.sealed.yaml");
        let (code, _, err) = kseal_with_kubeconfig(
            dir,
            &[
                "seal",
                "--name",
                name,
                "--namespace",
                "demo",
                "--from-literal",
                &format!("password={password}"),
                "--merge-into",
                &file,
            ],
            None,
            Some(kubeconfig),
        );
        assert_eq!(code, 0, "{err}");
        values.insert(("prod".to_owned(), name.to_owned()), password);
    }
    let (code, _, err) = run_doc(
        COMPROMISED,
        dir,
        kubeconfig,
        "kseal inspect --stale clusters/prod/",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // The compromised key seals nothing new: every value names the new key
    // and the recovery key only.
    for ids in key_ids_of_values(dir, "prod") {
        assert_eq!(ids, [fourth.clone(), recovery_id.clone()].into(), "{ids:?}");
    }
    apply_cluster_dir(&prod, dir, "prod").await;
    in_sync(
        &prod,
        &of_cluster(&values, "prod"),
        "False SealedToActiveKey",
    )
    .await;
    retire_when_unused(
        dir,
        kubeconfig,
        &compromised,
        COMPROMISED,
        "kseal keys retire COMPROMISED_KEY_ID --delete --context prod",
    )
    .await;
    let (code, _, err) = kseal_with_kubeconfig(dir, &["pins", "check"], None, Some(kubeconfig));
    assert_eq!(code, 0, "{err}");

    // The other cluster was never touched; the recovery key opens all.
    assert_eq!(active_key(&staging).await, staging_key);
    let staging_files_after: Vec<String> = sealed_files(dir, "staging")
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(staging_files_before, staging_files_after);
    in_sync(
        &staging,
        &of_cluster(&values, "staging"),
        "False SealedToActiveKey",
    )
    .await;
    recovery_opens_everything(dir, &values);
}

/// The recipient of a key the cluster lists.
async fn compromised_recipient(fixture: &Fixture, id: &str) -> String {
    let keys = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels(&format!("kseal.dev/key-id={id}")))
        .await
        .unwrap();
    keys.items[0]
        .annotations()
        .iter()
        .find(|(_, v)| v.starts_with("age1"))
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// Waits until `kseal keys list` shows `id` decrypt-only and unused, then
/// runs the document's retire command for it.
async fn retire_when_unused(dir: &Path, kubeconfig: &Path, id: &str, doc: &str, command: &str) {
    assert!(doc.contains(command), "{command}");
    eventually("the old key decrypt-only and unused", || async {
        let (code, list, _) = kseal_with_kubeconfig(
            dir,
            &["keys", "list", "--context", "prod"],
            None,
            Some(kubeconfig),
        );
        code == 0 && key_state(&list, id) == Some(("decrypt-only".into(), 0))
    })
    .await;
    let placeholder = command.split(' ').nth(3).unwrap();
    let command = command.replace(placeholder, id);
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let (code, _, err) = kseal_with_kubeconfig(dir, &args, None, Some(kubeconfig));
    assert_eq!(code, 0, "{err}");
}

/// The id of the key a cluster publishes to seal to.
async fn active_key(fixture: &Fixture) -> String {
    fixture.recipients().await[0].key_id().to_string()
}
