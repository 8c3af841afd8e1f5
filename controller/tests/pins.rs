//! `kseal pins check` and `kseal pins update` against a real API server
//! and controller: a repository pins the prod cluster's key (and an
//! offline recovery key) through a `.kseal.yaml` rule with `context:`;
//! the cluster rotates its key; the check fails naming the rotated-out key
//! and the missing active one; the update rewrites the file keeping every
//! other line byte for byte; a second update changes nothing; a key
//! deleted from the cluster is named as deleted (held-key-ids).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use kseal_shared::x25519::Identity;
use kube::config::Kubeconfig;

/// The admin kubeconfig with its context renamed `prod`, and a current
/// context `elsewhere` whose server nothing answers: only the rule's
/// context can reach the cluster.
fn fleet_kubeconfig(admin: &Path, path: &Path) {
    let mut config = Kubeconfig::read_from(admin).unwrap();
    let mut prod = config.contexts[0].clone();
    prod.name = "prod".into();
    let mut nowhere = config.clusters[0].clone();
    nowhere.name = "nowhere".into();
    nowhere.cluster.as_mut().unwrap().server = Some("https://127.0.0.1:1".into());
    let mut elsewhere = config.contexts[0].clone();
    elsewhere.name = "elsewhere".into();
    elsewhere.context.as_mut().unwrap().cluster = "nowhere".into();
    config.clusters.push(nowhere);
    config.contexts = vec![elsewhere, prod];
    config.current_context = Some("elsewhere".into());
    // JSON is YAML.
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

#[tokio::test]
async fn pins_follow_the_cluster_through_a_rotation() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let first = fixture.recipients().await.remove(0);

    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let kubeconfig = dir.join("fleet.kubeconfig");
    fleet_kubeconfig(fixture.cp.admin_kubeconfig(), &kubeconfig);
    let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
    let connection = ["--kubeconfig", kubeconfig.as_str()];
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(
        dir.join(".kseal.yaml"),
        "creation_rules:\n  - path_regex: ^clusters/prod/\n    recipients_file: keys/prod.txt\n    context: prod\n",
    )
    .unwrap();
    let recovery = Identity::generate().recipient().to_string();
    // A comment, the cluster key, and the recovery key with odd spacing and
    // no final line break: kept byte for byte.
    let recovery_lines = format!("# recovery (offline, kept by the security team)\n  {recovery}  ");
    std::fs::write(
        dir.join("keys/prod.txt"),
        format!("# prod\n{first}\n{recovery_lines}"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(connection);
        kseal(dir, &all, None)
    };

    // Pinned to the active key: the check passes.
    let (code, out, err) = run(&["pins", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "keys/prod.txt: context prod: ok (pins the active key {})",
            first.key_id()
        )),
        "{err}"
    );

    // The cluster rotates.
    let (code, rotated, err) = run(&["keys", "rotate", "--context", "prod"]);
    assert_eq!(code, 0, "kseal keys rotate: {err}");
    let new_id = rotated.split_whitespace().next().unwrap().to_owned();
    let new_key = rotated.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(new_id, first.key_id().to_string());

    // The check fails, naming the rotated-out key on its line, and the
    // missing active key.
    let (code, out, err) = run(&["pins", "check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "keys/prod.txt:2: key {old} of context prod is decrypt-only: the cluster no longer seals to it (renewed or rotated); its active key is {new_id} (kseal pins update)\n\
             keys/prod.txt: lacks the active key {new_id} of context prod (kseal pins update)\n",
            old = first.key_id()
        )
    );
    assert!(
        err.contains("kseal: error: pins check: 2 problem(s) in 1 of 1 pinned file(s)"),
        "{err}"
    );

    // The update rewrites the cluster line only.
    let (code, _, err) = run(&["pins", "update"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "keys/prod.txt: context prod: {} -> {new_id}\n",
            first.key_id()
        )),
        "{err}"
    );
    assert!(
        err.contains("kseal: pins update: 1 file(s) updated, 0 up to date, 0 failed"),
        "{err}"
    );
    let updated = std::fs::read_to_string(dir.join("keys/prod.txt")).unwrap();
    let (head, rest) = updated
        .split_once(&format!(
            "# kseal: active key {new_id} of context prod, pinned "
        ))
        .unwrap();
    assert_eq!(head, "# prod\n");
    let (time, rest) = rest.split_once('\n').unwrap();
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert_eq!(rest, format!("{new_key}\n{recovery_lines}"));

    // Now the check passes, and a second update is a no-op.
    let (code, out, err) = run(&["pins", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&["pins", "update"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("keys/prod.txt: context prod: up to date"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keys/prod.txt")).unwrap(),
        updated
    );

    // The old key, deleted from the cluster, is still known as the
    // cluster's (held-key-ids): a stale branch that pins it fails the check.
    let (code, _, err) = run(&[
        "keys",
        "retire",
        &first.key_id().to_string(),
        "--delete",
        "--context",
        "prod",
    ]);
    assert_eq!(code, 0, "kseal keys retire --delete: {err}");
    std::fs::write(dir.join("keys/prod.txt"), format!("{first}\n{recovery}\n")).unwrap();
    // Only the record of held keys names it: that record is an annotation
    // (a recovery key's id is public), so the check names it and says so,
    // and the update leaves the line for a person to remove.
    let expected = format!(
        "keys/prod.txt:1: key {} of context prod is not listed by the cluster, but its record of held keys (kseal.dev/held-key-ids) names it",
        first.key_id()
    );
    let mut last = String::new();
    eventually("the deleted key reported as deleted", || {
        let (code, out, _) = run(&["pins", "check"]);
        let done = code == 1 && out.starts_with(&expected);
        last = out;
        async move { done }
    })
    .await;
    assert!(last.contains("lacks the active key"), "{last}");
    let (code, _, err) = run(&["pins", "update"]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(dir.join("keys/prod.txt")).unwrap();
    assert!(
        text.starts_with(&format!("{first}\n{recovery}\n# kseal: active key "))
            && text.ends_with(&format!("\n{new_key}\n")),
        "{text}"
    );
    // Removed by hand, the pin passes.
    std::fs::write(
        dir.join("keys/prod.txt"),
        text.replacen(&format!("{first}\n"), "", 1),
    )
    .unwrap();
    let (code, out, err) = run(&["pins", "check"]);
    assert_eq!(code, 0, "{out}{err}");
}
