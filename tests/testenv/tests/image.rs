//! The Dockerfile (for Docker users) and `cargo xtask image` (the OCI
//! archive the tests import) build the same image: same user, entrypoint,
//! exposed ports and OCI annotation keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kseal_testenv::image;

/// The final stage's instruction `name` (continuation lines joined).
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines[last_from..]
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[test]
fn dockerfile_and_xtask_image_agree() {
    let text = std::fs::read_to_string(image::workspace_root().join("Dockerfile")).unwrap();
    let stage = final_stage(&text);
    let get = |k: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(get("FROM"), ["scratch"], "empty base");
    assert_eq!(get("USER"), [image::USER]);
    let entrypoint: Vec<String> = serde_json::from_str(&get("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, [image::ENTRYPOINT]);
    let exposed: Vec<String> = get("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(exposed, image::EXPOSED_PORTS);
    let copy = get("COPY");
    assert!(
        copy.iter()
            .any(|c| c.ends_with(&format!(" {}", image::ENTRYPOINT))),
        "{copy:?}"
    );
    let labels = get("LABEL").join(" ");
    for key in ["source", "revision", "version"] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "{labels}"
        );
    }
    assert!(labels.contains(image::SOURCE), "{labels}");
    assert!(
        labels.contains(&format!(
            "org.opencontainers.image.version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{labels}"
    );
    // Both build the gnu target with +crt-static (a static-pie binary).
    assert!(text.contains("+crt-static"));
    assert!(text.contains("-unknown-linux-gnu"));
}
