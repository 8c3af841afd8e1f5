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
    for file in ["db.env", "tls.key", "ca.crt", "old.env"] {
        ws.write(&format!("app/{file}"), "x\n");
    }
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

/// A value written in the wrong field (`files: [password=hunter2]`) is
/// counted, never printed: only entries that are files here are named.
#[test]
fn generator_sources_that_are_no_files_are_not_printed() {
    let ws = Workspace::new();
    ws.write(
        "k/kustomization.yaml",
        "secretGenerator:\n- name: s\n  files: [password=hunter2]\n  envs: [TOKEN=s3cr3t]\n",
    );
    let output = check(&ws, &["k"]);
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert!(out.contains("1 not shown (no such file here"), "{out}");
    assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
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
    // Without an ignore file the template fails the gate (cannot read: not
    // checked, exit 2, even beside the plaintext Secret found).
    let output = check(&ws, &["repo/clusters", "repo/charts"]);
    assert_exit(&output, 2);
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

    // --no-ignore: a CI gate that does not take the tree's word for it
    // (the template read again cannot be checked: exit 2).
    let output = check(&ws, &["--no-ignore", "repo"]);
    assert_exit(&output, 2);
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
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("read although excluded by"),
        "{}",
        stderr(&output)
    );
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

    // A bad ignore file fails the gate rather than exclude more or less:
    // an error of the check (2), not a finding.
    ws.write("repo/clusters/.ksealignore", "[z-a]\n");
    let output = check(&ws, &["repo/clusters"]);
    assert_exit(&output, 2);
    let out = stdout(&output);
    assert!(
        out.contains("repo/clusters/.ksealignore: line 1: not a pattern gitignore syntax reads (the line is not shown), so nothing is excluded by it"),
        "{out}"
    );
    assert!(!out.contains("[z-a]"), "{out}");
    // A symlinked ignore file is not read (it could point at the
    // environment of the CI job), and its target is never quoted.
    ws.write("outside/env", "TOKEN={unclosed\n");
    std::fs::remove_file(ws.path("repo/clusters/.ksealignore")).unwrap();
    std::os::unix::fs::symlink(
        ws.path("outside/env"),
        ws.path("repo/clusters/.ksealignore"),
    )
    .unwrap();
    let output = check(&ws, &["repo/clusters"]);
    assert_exit(&output, 2);
    let out = stdout(&output);
    assert!(out.contains("not a regular file"), "{out}");
    assert!(!out.contains("TOKEN"), "{out}");
}

/// What the gate flags is what kustomize (the one built into the pinned
/// kubectl) turns into a Secret with data, one row per route to one (the
/// routes an attack review found included: field names in any case, as
/// Go's encoding/json matches them, generator configs, patches, kind
/// changes, resources under other file names); what it passes makes none.
/// The rendered output through `kseal check -` agrees.
#[test]
fn flagged_kustomizations_are_what_kustomize_makes_secrets_from() {
    let Some(bins) = kseal_testenv::bins_or_skip() else {
        return;
    };
    let secret = |name: &str| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n");
    /// What the row is, its files, and whether kustomize makes a Secret
    /// with data of them.
    type Row<'a> = (&'a str, Vec<(&'a str, String)>, bool);
    let rows: Vec<Row> = vec![
        ("literals", vec![("kustomization.yaml", "secretGenerator:\n- name: s\n  literals: [password=hunter2]\n".into())], true),
        ("envs", vec![("kustomization.yaml", "secretGenerator:\n- name: s\n  envs: [db.env]\n".into()), ("db.env", "PASSWORD=hunter2\n".into())], true),
        ("env", vec![("kustomization.yaml", "secretGenerator:\n- name: s\n  env: db.env\n".into()), ("db.env", "PASSWORD=hunter2\n".into())], true),
        ("files", vec![("kustomization.yaml", "secretGenerator:\n- name: s\n  files: [key=tls.key]\n".into()), ("tls.key", "k\n".into())], true),
        ("field names in another case", vec![("kustomization.yaml", "SecretGenerator:\n- Name: s\n  Literals: [password=hunter2]\n".into())], true),
        ("field names with a Unicode fold", vec![("kustomization.yaml", "\u{17f}ecretGenerator:\n- name: s\n  literal\u{17f}: [password=hunter2]\n".into())], true),
        ("JSON, lower case", vec![("kustomization.yaml", "{\"secretgenerator\":[{\"name\":\"s\",\"literals\":[\"password=hunter2\"]}]}\n".into())], true),
        ("extensionless Kustomization", vec![("Kustomization", "secretGenerator:\n- name: s\n  literals: [password=hunter2]\n".into())], true),
        ("a generator config file", vec![("kustomization.yaml", "generators: [gen.yaml]\n".into()), ("gen.yaml", "apiVersion: builtin\nkind: SecretGenerator\nmetadata: {name: s}\nliterals: [password=hunter2]\n".into())], true),
        ("an inline generator config", vec![("kustomization.yaml", "generators:\n- |-\n  apiVersion: builtin\n  kind: SecretGenerator\n  metadata: {name: s}\n  literals: [password=hunter2]\n".into())], true),
        ("an inline strategic-merge patch", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata: {name: s}\n    stringData: {password: hunter2}\n".into()), ("s.yaml", secret("s"))], true),
        ("patchesStrategicMerge inline", vec![("kustomization.yaml", "resources: [s.yaml]\npatchesStrategicMerge:\n- |-\n  apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n  stringData: {password: hunter2}\n".into()), ("s.yaml", secret("s"))], true),
        ("a JSON 6902 patch", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- target: {kind: Secret, name: s}\n  patch: |-\n    - op: add\n      path: /stringData\n      value: {password: hunter2}\n".into()), ("s.yaml", secret("s"))], true),
        ("a JSON 6902 patch in a file", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- target: {kind: Secret, name: s}\n  path: add.yaml\n".into()), ("s.yaml", secret("s")), ("add.yaml", "- op: add\n  path: /data\n  value: {password: aHVudGVyMg==}\n".into())], true),
        ("a kind change", vec![("kustomization.yaml", "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: s}\n  patch: |-\n    - op: replace\n      path: /kind\n      value: Secret\n  options: {allowKindChange: true}\n".into()), ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\nstringData: {password: hunter2}\n".into())], true),
        ("a resource under another file name", vec![("kustomization.yaml", "resources: [secret.txt]\n".into()), ("secret.txt", format!("{}stringData: {{password: hunter2}}\n", secret("s")))], true),
        // From a second attack review: entries read as kustomize reads them,
        // and what kustomize can do that a static reading cannot follow.
        ("a one-line JSON patch", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- target: {kind: Secret, name: s}\n  patch: '{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"},\"stringData\":{\"password\":\"hunter2\"}}'\n".into()), ("s.yaml", secret("s"))], true),
        ("a one-line JSON 6902 kind change", vec![("kustomization.yaml", "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: db}\n  patch: '[{\"op\":\"replace\",\"path\":\"/kind\",\"value\":\"Secret\"}]'\n".into()), ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {password: aHVudGVyMg==}\n".into())], true),
        ("a patch of another kind aimed at a Secret", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- target: {kind: Secret, name: s}\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: whatever}\n    data: {password: aHVudGVyMg==}\n".into()), ("s.yaml", secret("s"))], true),
        ("an inline PatchTransformer", vec![("kustomization.yaml", "resources: [s.yaml]\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  target: {kind: Secret}\n  patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata: {name: s}\n    stringData: {password: hunter2}\n".into()), ("s.yaml", secret("s"))], true),
        ("replacements into a Secret", vec![("kustomization.yaml", "resources: [res.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: src, fieldPath: data.password}\n  targets:\n  - select: {kind: Secret, name: db}\n    fieldPaths: [stringData.password]\n    options: {create: true}\n".into()), ("res.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: src}\ndata: {password: hunter2}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\n".into())], true),
        ("a JSON 6902 patch replacing the whole object", vec![("kustomization.yaml", "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: db}\n  patch: |-\n    - op: replace\n      path: \"\"\n      value: {apiVersion: v1, kind: Secret, metadata: {name: db}, stringData: {password: hunter2}}\n".into()), ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {password: aHVudGVyMg==}\n".into())], true),
        ("allowKindChange: yes", vec![("kustomization.yaml", "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: db}\n  patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata: {name: db}\n  options: {allowKindChange: yes}\n".into()), ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {password: aHVudGVyMg==}\n".into())], true),
        ("a JSON 6902 apiVersion change", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- target: {kind: Secret, name: s}\n  patch: |-\n    - op: replace\n      path: /apiVersion\n      value: v1\n".into()), ("s.yaml", "apiVersion: example.com/v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n".into())], true),
        ("a one-line inline generator", vec![("kustomization.yaml", "generators:\n- '{apiVersion: builtin, kind: SecretGenerator, metadata: {name: db}, literals: [password=hunter2]}'\n".into())], true),
        ("a patch kseal cannot parse fails closed", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- target: {kind: Secret, name: s}\n  patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: s\n      annotations:\n        x: \"a\n    b\"\n    stringData:\n      password: hunter2\n".into()), ("s.yaml", secret("s"))], true),
        ("a patch file in UTF-16", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- path: patch.txt\n".into()), ("s.yaml", secret("s")), ("patch.txt", "UTF16:apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n".into())], true),
        ("a patch of a Deployment", vec![("kustomization.yaml", "resources: [d.yaml]\npatches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: d}\n    spec: {replicas: 2}\n".into()), ("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n".into())], false),
        ("a ConfigMap data patch", vec![("kustomization.yaml", "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: db}\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: db}\n    data: {extra: x}\n".into()), ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {password: aHVudGVyMg==}\n".into())], false),
        ("a configMapGenerator only", vec![("kustomization.yaml", "configMapGenerator:\n- name: c\n  literals: [a=b]\n".into())], false),
        ("a patch that labels a Secret", vec![("kustomization.yaml", "resources: [s.yaml]\npatches:\n- patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata: {name: s, labels: {a: b}}\n".into()), ("s.yaml", secret("s"))], false),
    ];
    for (index, (name, files, flagged)) in rows.iter().enumerate() {
        let ws = Workspace::new();
        let dir = format!("k{index}");
        for (file, content) in files {
            match content.strip_prefix("UTF16:") {
                Some(text) => {
                    let mut bytes = vec![0xff, 0xfe];
                    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
                    std::fs::write(ws.path(&format!("{dir}/{file}")), bytes).unwrap();
                }
                None => {
                    ws.write(&format!("{dir}/{file}"), content);
                }
            }
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
        let rendered = String::from_utf8_lossy(&built.stdout).into_owned();
        let makes_secret_data = rendered.split("---").any(|object| {
            object.contains("kind: Secret")
                && (object.contains("\ndata:") || object.contains("\nstringData:"))
        });
        assert_eq!(
            makes_secret_data, *flagged,
            "{name}: kustomize made\n{rendered}"
        );
        let output = check(&ws, &[&dir]);
        // What kseal cannot read it does not judge: the gate fails, as
        // "not checked" (2), not as a finding (1).
        let not_checked = name.contains("cannot parse");
        assert_exit(
            &output,
            match (not_checked, *flagged) {
                (true, _) => 2,
                (false, true) => 1,
                (false, false) => 0,
            },
        );
        assert!(
            !stdout(&output).contains("hunter2"),
            "{name}: {}",
            stdout(&output)
        );
        // The complete gate, on what kustomize renders.
        let output = ws
            .cmd()
            .args(["check", "-"])
            .write_stdin(rendered.clone())
            .output()
            .unwrap();
        assert_exit(&output, if *flagged { 1 } else { 0 });
    }
}

/// A spec.maxAge that does not parse is a field to fix, not values to
/// rotate, and every command names the field.
#[test]
fn a_bad_max_age_is_a_field_to_fix() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    for (max_age, named) in [
        ("36526d", "invalid max age \"36526d\""),
        ("90", "spec.maxAge must be a string"),
    ] {
        ws.write(
            "s.yaml",
            &sealed.replace("spec:\n", &format!("spec:\n  maxAge: {max_age}\n")),
        );
        let output = check(&ws, &["--rotation", "s.yaml"]);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("with a spec.maxAge that does not parse"),
            "{err}"
        );
        assert!(!err.contains("due for rotation"), "{err}");
        let output = ws.cmd().args(["validate", "s.yaml"]).output().unwrap();
        assert_exit(&output, 1);
        assert!(stderr(&output).contains(named), "{}", stderr(&output));
    }
}
