//! The CLI against a cluster: sealing with the published keys, fetching
//! them, and the controller's verify and rewrap endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kseal_shared::{sealed_secret::SealedSecret, x25519::Identity};

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: api
  namespace: app
stringData:
  token: online-canary
";

#[tokio::test]
async fn cli_uses_the_cluster_keys_and_controller() {
    let Some(fixture) = Fixture::start().await else {
        return;
    };
    fixture.namespace("app").await;
    let controller = fixture.controller("kseal-controller", &["--key-renew-period", "0"]);
    controller.wait_healthy().await;
    let recipients = fixture.recipients().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let kubeconfig = fixture.cp.admin_kubeconfig().to_str().unwrap().to_owned();

    // fetch-keys prints the published recipients file.
    let (code, keys, err) = kseal(dir, &["fetch-keys", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0, "{err}");
    assert!(keys.contains(&recipients[0].to_string()), "{keys}");
    let (code, _, err) = kseal(
        dir,
        &[
            "fetch-keys",
            "--kubeconfig",
            &kubeconfig,
            "-o",
            "cluster.pub",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(dir.join("cluster.pub"))
            .unwrap()
            .contains(&recipients[0].to_string())
    );

    // seal with no -r and no .kseal.yaml: the cluster's key.
    let (code, sealed, err) = kseal(dir, &["seal", "--kubeconfig", &kubeconfig], Some(SECRET));
    assert_eq!(code, 0, "{err}");
    assert!(
        sealed.contains(&recipients[0].key_id().to_string()),
        "{sealed}"
    );
    let object: SealedSecret = serde_saphyr::from_str(&sealed).unwrap();
    fixture.apply(&object).await;
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
    // Unreachable cluster: a clear error naming every source of recipients.
    let (code, _, err) = kseal(dir, &["seal", "--kubeconfig", "/nonexistent"], Some(SECRET));
    assert_eq!(code, 1);
    assert!(
        err.contains("no recipients") && err.contains(".kseal.yaml"),
        "{err}"
    );

    // validate --online: the controller can decrypt it…
    std::fs::write(dir.join("api.yaml"), &sealed).unwrap();
    let url = controller.url("");
    let (code, _, err) = kseal(
        dir,
        &["validate", "--online", "--controller-url", &url, "api.yaml"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    // …but not a value moved to another name.
    std::fs::write(
        dir.join("moved.yaml"),
        sealed.replace("name: api", "name: moved"),
    )
    .unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "validate",
            "--online",
            "--controller-url",
            &url,
            "moved.yaml",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("the cluster cannot decrypt it"), "{err}");
    assert!(!err.contains("online-canary"));

    // rewrap --online: a value sealed to the cluster key and an extra
    // recipient comes back sealed to the cluster key only; other documents
    // and the ciphertext are unchanged.
    let extra = Identity::generate();
    let (code, two, err) = kseal(
        dir,
        &[
            "seal",
            "-r",
            &recipients[0].to_string(),
            "-r",
            &extra.recipient().to_string(),
        ],
        Some(SECRET),
    );
    assert_eq!(code, 0, "{err}");
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}   # untouched\n";
    std::fs::create_dir_all(dir.join("repo")).unwrap();
    std::fs::write(dir.join("repo/api.yaml"), format!("{other}---\n{two}")).unwrap();
    let (code, _, err) = kseal(
        dir,
        &[
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            "--in-place",
            "repo",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 value(s) re-wrapped"), "{err}");
    let rewritten = std::fs::read_to_string(dir.join("repo/api.yaml")).unwrap();
    assert!(
        rewritten.starts_with(&format!("{other}---\n")),
        "{rewritten}"
    );
    let value = |text: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap()
            .to_owned()
    };
    let (before, after) = (value(&two), value(&rewritten));
    let fields = |v: &str| v.split(':').map(str::to_owned).collect::<Vec<_>>();
    // Seal time (3), nonce, commitment and ciphertext (5..) unchanged.
    assert_eq!(fields(&before)[3], fields(&after)[3]);
    assert_eq!(fields(&before)[5..], fields(&after)[5..]);
    assert_eq!(fields(&after)[2], recipients[0].key_id().to_string());
    // Running it again finds nothing to do.
    let (code, _, err) = kseal(
        dir,
        &[
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            "--in-place",
            "repo",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 value(s) re-wrapped, 1 already current"),
        "{err}"
    );

    // keys rotate: the controller makes a new active key; an online rewrap
    // moves the repository to it; the object keeps unsealing.
    let (code, rotated, err) = kseal(dir, &["keys", "rotate", "--kubeconfig", &kubeconfig], None);
    assert_eq!(code, 0, "{err}");
    let new_key_id = rotated.split_whitespace().next().unwrap().to_owned();
    assert_ne!(new_key_id, recipients[0].key_id().to_string());
    assert_eq!(
        fixture.recipients().await[0].key_id().to_string(),
        new_key_id
    );
    let (code, _, err) = kseal(
        dir,
        &[
            "rewrap",
            "--online",
            "--controller-url",
            &url,
            "--in-place",
            "api.yaml",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let rewrapped = std::fs::read_to_string(dir.join("api.yaml")).unwrap();
    assert!(
        rewrapped.contains(&format!("kseal:v2:{new_key_id}:")),
        "{rewrapped}"
    );
    fixture
        .apply(&serde_saphyr::from_str::<SealedSecret>(&rewrapped).unwrap())
        .await;
    eventually("status shows the new key", || async {
        fixture
            .sealed_secrets("app")
            .get("api")
            .await
            .ok()
            .and_then(|s| s.status)
            .is_some_and(|s| s.key_ids == vec![new_key_id.clone()])
    })
    .await;
    assert_eq!(fixture.wait_ready("app", "api", "True").await, "Unsealed");
}
