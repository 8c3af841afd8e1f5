//! What `kseal check` sees beyond Secret manifests: kustomize
//! `secretGenerator`s holding or reading plaintext, and `.ksealignore`
//! files that exclude what is not YAML (a Helm chart's templates), said
//! on stderr, never for a file named on the command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn check(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd().arg("check").args(args).output().unwrap()
}

#[test]
fn kustomize_secret_generators_are_plaintext() {
    let ws = Workspace::new();
    ws.write(
        "app/kustomization.yaml",
        "resources: [deploy.yaml]\nsecretGenerator:\n- name: db\n  literals:\n  - password=hunter2\n  - user=app\n- name: env\n  envs: [db.env]\n- name: tls\n  files: [tls.key, ca=ca.crt]\n- name: legacy\n  env: old.env\n- name: none\n  options: {disableNameSuffixHash: true}\n",
    );
    ws.write(
        "app/deploy.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    // kustomize's extensionless name, and a Component by its kind.
    ws.write(
        "other/Kustomization",
        "secretGenerator:\n- name: x\n  literals: [k=v]\n",
    );
    ws.write(
        "other/component.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nsecretGenerator:\n- name: y\n  literals: [k=v]\n",
    );
    // Flux's Kustomization is something else: nothing to find.
    ws.write(
        "other/flux.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: f}\nspec: {path: ./app, secretGenerator: [{name: z, literals: [k=v]}]}\n",
    );
    let output = check(&ws, &["."]);
    assert_exit(&output, 1);
    let out = stdout(&output);
    for finding in [
        "app/kustomization.yaml: document 1 (line 1): kustomize secretGenerator \"db\": 2 plaintext value(s) in its literals",
        "kustomize secretGenerator \"env\": reads plaintext from env file(s) in envs: db.env",
        "kustomize secretGenerator \"tls\": reads plaintext from file(s) in files: tls.key, ca.crt",
        "kustomize secretGenerator \"legacy\": reads plaintext from env file(s) in env: old.env",
        "other/Kustomization",
        "other/component.yaml",
    ] {
        assert!(out.contains(finding), "{finding}\n{out}");
    }
    assert!(
        !out.contains("\"none\"") && !out.contains("flux.yaml"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "a value was printed: {out}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(
        stderr(&output).contains("6 plaintext Secret(s) or kustomize secretGenerator(s) found"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn ksealignore_excludes_in_gitignore_syntax_and_says_so() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("repo/.git")).unwrap();
    let template = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\n{{- if .Values.x }}\nstringData: {a: b}\n{{- end }}\n";
    ws.write("repo/charts/app/templates/secret.yaml", template);
    ws.write(
        "repo/charts/app/templates/keep/real.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: real}\nstringData: {a: b}\n",
    );
    ws.write("repo/charts/app/values.yaml", "x: 1\n");
    ws.write(
        "repo/clusters/prod/ok.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    // Without an ignore file the template fails the gate (cannot read).
    let output = check(&ws, &["repo/clusters", "repo/charts"]);
    assert_exit(&output, 1);
    assert!(
        stdout(&output).contains("cannot read"),
        "{}",
        stdout(&output)
    );

    // At the repository's top, applying to a walk that starts below it; a
    // `!` re-includes.
    ws.write(
        "repo/.ksealignore",
        "# Helm templates are not YAML until rendered\ncharts/*/templates/*\n!charts/*/templates/keep/\n",
    );
    let output = check(&ws, &["repo/charts"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("repo/charts/app/templates/secret.yaml: skipped: excluded by")
            && err.contains(".ksealignore: charts/*/templates/*"),
        "{err}"
    );
    // The re-included directory is read: its plaintext Secret is found.
    assert!(
        stdout(&output).contains("plaintext Secret \"real\""),
        "{}",
        stdout(&output)
    );
    assert!(
        !stdout(&output).contains("cannot read"),
        "{}",
        stdout(&output)
    );

    // A directory is excluded whole and said once; the gate passes.
    ws.write("repo/charts/.ksealignore", "app/\n");
    let output = check(&ws, &["repo"]);
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(
        err.contains("repo/charts/app: skipped: excluded by"),
        "{err}"
    );
    assert_eq!(err.matches("skipped").count(), 1, "{err}");

    // --no-ignore: a CI gate that does not take the tree's word for it.
    let output = check(&ws, &["--no-ignore", "repo"]);
    assert_exit(&output, 1);
    assert!(
        stdout(&output).contains("plaintext Secret \"real\""),
        "{}",
        stdout(&output)
    );
    assert!(
        !stderr(&output).contains("excluded by"),
        "{}",
        stderr(&output)
    );

    // A file named on the command line is read whatever the ignore files
    // say (a hook names each staged file).
    let output = check(&ws, &["repo/charts/app/templates/secret.yaml"]);
    assert_exit(&output, 1);
    assert!(
        stdout(&output).contains("cannot read"),
        "{}",
        stdout(&output)
    );

    // Every walking command honours them.
    let output = ws.cmd().args(["validate", "repo"]).output().unwrap();
    assert!(
        stderr(&output).contains("skipped: excluded by"),
        "{}",
        stderr(&output)
    );

    // A bad ignore file fails the gate rather than exclude more or less.
    ws.write("repo/clusters/.ksealignore", "[z-a]\n");
    let output = check(&ws, &["repo/clusters"]);
    assert_exit(&output, 1);
    assert!(
        stdout(&output)
            .contains("repo/clusters/.ksealignore: cannot read, so nothing is excluded by it"),
        "{}",
        stdout(&output)
    );
}

/// What the gate flags is what kustomize (the one built into the pinned
/// kubectl) turns into a Secret with data, one row per source of values;
/// what it passes makes none.
#[test]
fn flagged_generators_are_what_kustomize_makes_secrets_from() {
    let Some(bins) = kseal_testenv::bins_or_skip() else {
        return;
    };
    let ws = Workspace::new();
    ws.write("src/db.env", "PASSWORD=hunter2\n");
    ws.write("src/tls.key", "key\n");
    let rows: [(&str, &str, bool); 6] = [
        ("literals", "literals: [password=hunter2]", true),
        ("envs", "envs: [db.env]", true),
        ("env", "env: db.env", true),
        ("files", "files: [tls.key]", true),
        ("files-keyed", "files: [key=tls.key]", true),
        ("configmap", "", false),
    ];
    for (name, source, flagged) in rows {
        let dir = format!("src/{name}");
        let kustomization = if flagged {
            format!("secretGenerator:\n- name: s\n  {source}\n")
        } else {
            "configMapGenerator:\n- name: c\n  literals: [a=b]\n".to_owned()
        };
        ws.write(&format!("{dir}/kustomization.yaml"), &kustomization);
        for file in ["db.env", "tls.key"] {
            std::fs::copy(
                ws.path(&format!("src/{file}")),
                ws.path(&format!("{dir}/{file}")),
            )
            .unwrap();
        }
        let built = std::process::Command::new(bins.kubectl())
            .arg("kustomize")
            .arg(ws.path(&dir))
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let rendered = String::from_utf8_lossy(&built.stdout);
        let makes_secret = rendered.contains("kind: Secret") && rendered.contains("data:");
        assert_eq!(makes_secret, flagged, "{name}: kustomize made\n{rendered}");
        let output = check(&ws, &[&dir]);
        assert_exit(&output, if flagged { 1 } else { 0 });
        assert_eq!(
            stdout(&output).contains("kustomize secretGenerator \"s\""),
            flagged,
            "{name}: {}",
            stdout(&output)
        );
    }
}
