//! `kseal keys …` and sealing to the cluster, against a real API server and
//! controller: what `keys list` shows of keys the cluster no longer holds,
//! with the access a user without any right to the key Secrets has (the
//! API server's audit log shows it never asks for one); what `seal` says
//! when it seals to the cluster; and `keys restore --dry-run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kseal_shared::{binding::Scope, x25519::Identity};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

fn is_forbidden<T>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

/// Grants group `group` what `kseal keys list` reads: get on the public-key
/// ConfigMap (and, with `operations`, the key-operations one) in the
/// controller's namespace, and list on SealedSecrets everywhere. Nothing
/// on Secrets.
async fn grant_keys_list(fixture: &Fixture, group: &str, operations: bool) {
    let mut names = vec!["kseal-public-keys"];
    if operations {
        names.push("kseal-key-operations");
    }
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": group, "namespace": NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                   "resourceNames": names, "verbs": ["get"]}],
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": group, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": group},
        "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .unwrap();
    let cluster_role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": group},
        "rules": [{"apiGroups": ["kseal.dev"], "resources": ["sealedsecrets"],
                   "verbs": ["list"]}],
    }))
    .unwrap();
    let cluster_binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": group},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": group},
        "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .unwrap();
    let client = &fixture.client;
    let post = PostParams::default();
    Api::<Role>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &binding)
        .await
        .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&post, &cluster_role)
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&post, &cluster_binding)
        .await
        .unwrap();
}

/// The fields of the `keys list` row for `id`.
fn row(table: &str, id: &str) -> Option<Vec<String>> {
    table
        .lines()
        .find(|line| line.starts_with(id))
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
}

/// The key Secrets in the controller's namespace, by key id.
async fn key_ids(fixture: &Fixture) -> Vec<String> {
    let mut ids: Vec<String> = fixture
        .secrets(NAMESPACE)
        .list(&ListParams::default().labels("kseal.dev/sealing-key=true"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|secret| {
            secret
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get("kseal.dev/key-id").cloned())
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn keys_list_shows_deleted_keys_without_reading_key_secrets() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let dir = &fixture.dir;
    let admin = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();
    let old = fixture.recipients().await;
    let old_id = old[0].key_id().to_string();

    // Sealing to the cluster names the key and the cluster.
    let secret_yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: app\nstringData:\n  token: t\n";
    let (code, sealed, err) = kseal(dir, &["seal", "--kubeconfig", &admin], Some(secret_yaml));
    assert_eq!(code, 0, "{err}");
    assert!(sealed.contains(&old_id), "{sealed}");
    assert!(
        err.starts_with(&format!(
            "kseal: sealing to key {old_id} (active) of the cluster in kube context \""
        )) && err
            .trim_end()
            .ends_with(&format!("({})", fixture.cp.server_url()))
            && err.lines().count() == 1,
        "{err}"
    );

    // A backup while the old key is the only one.
    let recovery = Identity::generate();
    {
        use kseal_shared::age::secrecy::ExposeSecret;
        let file = recovery.to_keygen_file("2026-01-01T00:00:00Z");
        std::fs::write(dir.join("recovery-key.txt"), file.expose_secret()).unwrap();
    }
    let (code, _, err) = kseal(
        dir,
        &[
            "keys",
            "backup",
            "--recipient",
            &recovery.recipient().to_string(),
            "-o",
            "backup.age",
            "--kubeconfig",
            &admin,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");

    // SealedSecrets sealed to the old key, to the new one, and to a key
    // this cluster never held.
    fixture
        .apply(&seal(
            &plain("app", "old", &[("k", "v")]),
            Scope::Strict,
            &old,
        ))
        .await;
    let (code, _, err) = kseal(dir, &["keys", "rotate", "--kubeconfig", &admin], None);
    assert_eq!(code, 0, "{err}");
    let new = fixture.recipients().await;
    let new_id = new[0].key_id().to_string();
    assert_ne!(new_id, old_id);
    fixture
        .apply(&seal(
            &plain("app", "new", &[("k", "v")]),
            Scope::Strict,
            &new,
        ))
        .await;
    let stranger = Identity::generate();
    let stranger_id = stranger.key_id().to_string();
    fixture
        .apply(&seal(
            &plain("app", "stranger", &[("k", "v")]),
            Scope::Strict,
            &[stranger.recipient().clone()],
        ))
        .await;
    // The old key is deleted although app/old still needs it.
    let (code, _, err) = kseal(
        dir,
        &[
            "keys",
            "retire",
            &old_id,
            "--force",
            "--delete",
            "--kubeconfig",
            &admin,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(key_ids(&fixture).await, vec![new_id.clone()]);

    // A user who may read the public ConfigMaps and list SealedSecrets, and
    // nothing else.
    grant_keys_list(&fixture, "kseal-viewers", true).await;
    let viewer = fixture.cp.mint_user("vera", &["kseal-viewers"]).unwrap();
    // Another member of the group tries what the role does not grant (so
    // that the audit log of the user who runs kseal stays clean).
    let probe = fixture.cp.mint_user("petra", &["kseal-viewers"]).unwrap();
    let viewer_client = probe.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(viewer_client.clone(), NAMESPACE);
    assert!(is_forbidden(&secrets.list(&ListParams::default()).await));
    assert!(is_forbidden(
        &secrets.get(&format!("kseal-key-{new_id}")).await
    ));
    assert!(is_forbidden(
        &Api::<ConfigMap>::namespaced(viewer_client.clone(), NAMESPACE)
            .get("kube-root-ca.crt")
            .await
    ));
    let kubeconfig = viewer.kubeconfig.to_str().unwrap().to_owned();

    // What the controller publishes follows the deletion moments later.
    eventually("the deleted key listed as deleted", || async {
        let (code, out, err) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
        assert_eq!(
            code, 0,
            "keys list as a user without access to Secrets: {err}"
        );
        row(&out, &old_id).is_some_and(|row| row[1] == "deleted")
    })
    .await;
    let (code, table, err) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        row(&table, &old_id).unwrap(),
        [&old_id, "deleted", "-", "1"]
    );
    assert_eq!(row(&table, &new_id).unwrap()[1..2], ["active"]);
    assert_eq!(row(&table, &new_id).unwrap()[3], "1");
    assert_eq!(
        row(&table, &stranger_id).unwrap(),
        [&stranger_id, "unknown", "-", "1"]
    );
    assert!(
        err.contains(&format!(
            "kseal: warning: key {old_id} is deleted: this cluster held it once and no longer does; 1 SealedSecret(s) sealed to it cannot be decrypted by this cluster: app/old;"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "kseal: warning: key {stranger_id} is unknown: this cluster does not hold it and, as far as it records, never did; 1 SealedSecret(s) sealed to it cannot be decrypted by this cluster: app/stranger;"
        )),
        "{err}"
    );
    // The backup recorded holds the old key only.
    assert!(
        err.contains(&format!(
            "the active key {new_id} is not in the last backup"
        )),
        "{err}"
    );
    let (code, json, err) = kseal(
        dir,
        &["keys", "list", "-o", "json", "--kubeconfig", &kubeconfig],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let deleted = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == old_id.as_str())
        .unwrap();
    assert_eq!(
        deleted,
        &json!({"id": old_id, "state": "deleted", "created": null,
                "sealedSecrets": 1, "users": ["app/old"]})
    );
    assert!(err.contains("kseal: warning: key"), "{err}");

    // Without the key-operations ConfigMap, it says it cannot tell whether
    // the keys are backed up (rather than that they are not).
    grant_keys_list(&fixture, "kseal-readers", false).await;
    let reader = fixture.cp.mint_user("rita", &["kseal-readers"]).unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "keys",
            "list",
            "--kubeconfig",
            reader.kubeconfig.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "cannot tell whether the keys are backed up: not allowed to read ConfigMap kseal-system/kseal-key-operations"
        ),
        "{err}"
    );

    // Neither user asked for a Secret, even in vain; the audit log has
    // their SealedSecret lists, so it records them, and it has the probing
    // user's forbidden attempts, so it records those too.
    let probed = fixture.cp.audited_requests("petra").unwrap();
    assert!(
        probed.keys().any(|(_, resource, _)| resource == "secrets"),
        "{probed:?}"
    );
    for user in ["vera", "rita"] {
        let requests = fixture.cp.audited_requests(user).unwrap();
        assert!(
            requests
                .keys()
                .all(|(_, resource, _)| resource != "secrets"),
            "{user} asked for Secrets: {requests:?}"
        );
        assert!(
            requests
                .keys()
                .any(|(verb, resource, _)| verb == "LIST" && resource == "sealedsecrets"),
            "{user}: {requests:?}"
        );
    }

    // keys restore --dry-run: the deleted key would come back, the new one
    // is present; nothing is installed.
    let restore = [
        "keys",
        "restore",
        "backup.age",
        "--identity",
        "recovery-key.txt",
        "--kubeconfig",
        &admin,
    ];
    let dry_run: Vec<&str> = restore.iter().copied().chain(["--dry-run"]).collect();
    let (code, out, err) = kseal(dir, &dry_run, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("kseal: key {old_id} ({}), created ", old[0]))
            && err.contains(&format!(
                ": would be restored as decrypt-only (Secret {NAMESPACE}/kseal-key-{old_id})"
            )),
        "{err}"
    );
    assert!(
        err.contains("dry run, nothing installed: 1 key(s) would be restored into kseal-system; 0 already present; 0 conflict(s)"),
        "{err}"
    );
    assert_eq!(key_ids(&fixture).await, vec![new_id.clone()]);
    // A Secret of another kind in the way of the key's name: a conflict,
    // said in the dry run and when restoring, and it is left alone.
    let blocker: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("kseal-key-{old_id}")},
        "stringData": {"note": "not a key"},
    }))
    .unwrap();
    fixture
        .secrets(NAMESPACE)
        .create(&PostParams::default(), &blocker)
        .await
        .unwrap();
    let (code, _, err) = kseal(dir, &dry_run, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            ": conflict: Secret {NAMESPACE}/kseal-key-{old_id} already exists and is not a kseal key Secret: would not be restored"
        )) && err.contains("0 key(s) would be restored into kseal-system; 0 already present; 1 conflict(s)"),
        "{err}"
    );
    let (code, _, err) = kseal(dir, &restore, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("kseal: restored 0 key(s) into kseal-system; 1 not restored"),
        "{err}"
    );
    assert_eq!(key_ids(&fixture).await, vec![new_id.clone()]);
    // Out of the way, the key is installed, and said so.
    fixture
        .secrets(NAMESPACE)
        .delete(&format!("kseal-key-{old_id}"), &Default::default())
        .await
        .unwrap();
    let (code, _, err) = kseal(dir, &restore, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "kseal: installed key {old_id} as decrypt-only (Secret {NAMESPACE}/kseal-key-{old_id})"
        )) && err.contains("kseal: restored 1 key(s) into kseal-system"),
        "{err}"
    );
    let mut both = vec![old_id.clone(), new_id.clone()];
    both.sort();
    assert_eq!(key_ids(&fixture).await, both);
    // And the list shows it held again, to a user who cannot read it.
    eventually("the restored key listed as decrypt-only", || async {
        let (code, out, err) = kseal(dir, &["keys", "list", "--kubeconfig", &kubeconfig], None);
        assert_eq!(code, 0, "{err}");
        row(&out, &old_id).is_some_and(|row| row[1] == "decrypt-only")
    })
    .await;
}
