//! `rewrap`, `inspect`, `validate`, `check`, `.kseal.yaml`, completions and
//! the man page, through the real binary.

mod common;

use common::*;

fn sealed_fields(value: &str) -> Vec<String> {
    value.split(':').map(str::to_owned).collect()
}

#[test]
fn rewrap_in_place_over_a_tree() {
    let old = Workspace::new();
    let new = Workspace::new();
    let sealed = old.seal(SECRET, &[]);
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:   {name: keep-me}   # odd\n";
    old.write("repo/app/db.yaml", &format!("{config_map}---\n{sealed}"));
    old.write("repo/app/nested/db.json", &ws_json(&old));
    old.write("repo/README.md", "not a manifest\n");
    old.write("repo/.git/ignored.yaml", "kind: [broken");
    let output = old
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&old.identity)
        .args(["-r", &new.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output)
            .contains("4 value(s) re-wrapped, 0 already current, 0 failed; 2 file(s) rewritten"),
        "{}",
        stderr(&output)
    );
    let rewrapped = old.read("repo/app/db.yaml");
    assert!(
        rewrapped.starts_with(&format!("{config_map}---\n")),
        "{rewrapped}"
    );
    for key in ["username", "password", "binary"] {
        let (before, after) = (
            sealed_fields(&value_of(&sealed, key)),
            sealed_fields(&value_of(&rewrapped, key)),
        );
        assert_eq!(before[3], after[3], "{key}: seal time changed");
        assert_eq!(
            before[5..],
            after[5..],
            "{key}: nonce, commitment or ciphertext changed"
        );
        assert_ne!(before[2], after[2], "{key}: key ids unchanged");
    }
    // The new key opens it, the old one does not.
    let doc = rewrapped.split("---\n").nth(1).unwrap().to_owned();
    assert_exit(&new.unseal(&doc), 0);
    assert_exit(&old.unseal(&doc), 1);
    // A second run finds everything current and writes nothing.
    let output = old
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&new.identity)
        .args(["-r", &new.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("0 value(s) re-wrapped, 4 already current"),
        "{}",
        stderr(&output)
    );
    assert_eq!(old.read("repo/app/db.yaml"), rewrapped);
}

fn ws_json(ws: &Workspace) -> String {
    ws.seal(
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j","namespace":"ns"},"data":{"k":"dg=="}}"#,
        &["--format", "json"],
    )
}

#[test]
fn rewrap_single_file_to_stdout_and_failures() {
    let old = Workspace::new();
    let new = Workspace::new();
    let sealed = old.seal(SECRET, &[]);
    old.write("one.yaml", &sealed);
    let output = old
        .cmd()
        .args(["rewrap", "-i"])
        .arg(&old.identity)
        .args(["-r", &new.recipient, "one.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_exit(&new.unseal(&stdout(&output)), 0);
    assert_eq!(
        old.read("one.yaml"),
        sealed,
        "file changed without --in-place"
    );
    // A directory needs --in-place.
    let output = old
        .cmd()
        .args(["rewrap", "-i"])
        .arg(&old.identity)
        .args(["-r", &new.recipient, "."])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    // With the wrong identity every value fails and the file is untouched.
    let output = old
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&new.identity)
        .args(["-r", &new.recipient])
        .arg("one.yaml")
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("3 failed"), "{}", stderr(&output));
    assert_eq!(old.read("one.yaml"), sealed);
    // Without --in-place, a failure prints nothing: `kseal rewrap f > out`
    // must not leave a copy that was not re-wrapped.
    let output = old
        .cmd()
        .args(["rewrap", "-i"])
        .arg(&new.identity)
        .args(["-r", &new.recipient])
        .arg("one.yaml")
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("nothing was written to stdout"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn inspect_shows_keys_without_decrypting() {
    let a = Workspace::new();
    let b = Workspace::new();
    let sealed = a.seal(SECRET, &["-r", &b.recipient]);
    a.write("s.yaml", &sealed);
    let key_id = |recipient: &str| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(recipient.as_bytes())[..8]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let output = a.cmd().args(["inspect", "s.yaml"]).output().unwrap();
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("SealedSecret app/db (scope strict)"),
        "{text}"
    );
    assert!(
        text.contains("password: v2, sealed ") && text.contains(" (less than an hour ago), keys "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            ", keys {},{}",
            key_id(&a.recipient),
            key_id(&b.recipient)
        )),
        "{text}"
    );
    let output = a
        .cmd()
        .args(["inspect", "--format", "json", "s.yaml"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json[0]["scope"], "strict");
    assert_eq!(json[0]["values"].as_array().unwrap().len(), 3);
    assert_eq!(json[0]["values"][0]["key_ids"][0], key_id(&a.recipient));
    // From stdin.
    let output = a.cmd().arg("inspect").write_stdin(sealed).output().unwrap();
    assert_exit(&output, 0);
}

#[test]
fn validate_reports_every_problem() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    ws.write("good.yaml", &sealed);
    let output = ws.cmd().args(["validate", "good.yaml"]).output().unwrap();
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("1 SealedSecret(s), 3 value(s): well-formed"));

    let broken = edit_value(&sealed, "username", |v| {
        v.replacen("kseal:v2:", "kseal:v9:", 1)
    });
    let broken = edit_value(&broken, "password", |v| {
        let mut fields = sealed_fields(v);
        fields[2] = "0000000000000000".into();
        fields.join(":")
    });
    let broken = broken.replace("  namespace: app\n", "");
    ws.write("bad.yaml", &broken);
    let output = ws
        .cmd()
        .args(["validate", "good.yaml", "bad.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("bad.yaml: document 1 (line 1)"), "{err}");
    assert!(err.contains("metadata.namespace is missing"), "{err}");
    assert!(
        err.contains("\"username\": unsupported sealed-value format version \"v9\""),
        "{err}"
    );
    assert!(
        err.contains("\"password\": malformed sealed value: key ids do not match"),
        "{err}"
    );
    assert!(err.contains("3 problem(s)"), "{err}");
}

/// An object with more values than the controller accepts is reported
/// (and never sent to the controller by `--online`).
#[test]
fn validate_refuses_more_values_than_the_controller_accepts() {
    use kseal_shared::sealed_secret::MAX_VALUES;
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    let value = value_of(&sealed, "password");
    for (count, ok) in [(MAX_VALUES, true), (MAX_VALUES + 1, false)] {
        let data: serde_json::Map<String, serde_json::Value> = (0..count)
            .map(|i| (format!("k{i}"), serde_json::Value::from(value.as_str())))
            .collect();
        let object = serde_json::json!({
            "apiVersion": "kseal.dev/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": "many", "namespace": "app"},
            "spec": {"encryptedData": data},
        });
        ws.write("many.json", &object.to_string());
        let output = ws.cmd().args(["validate", "many.json"]).output().unwrap();
        let err = stderr(&output);
        assert_exit(&output, if ok { 0 } else { 1 });
        assert_eq!(
            err.contains(&format!("a SealedSecret holds at most {MAX_VALUES}")),
            !ok,
            "{err}"
        );
        // unseal and rewrap refuse it too, before opening any value, and
        // write nothing. (The copies of one value would not open under
        // other keys: that they are not even tried is what is shown.)
        if ok {
            continue;
        }
        let output = ws
            .cmd()
            .args(["unseal", "-i"])
            .arg(&ws.identity)
            .args(["-f", "many.json"])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        assert!(stdout(&output).is_empty());
        let err = stderr(&output);
        assert!(
            err.contains(&format!("holds at most {MAX_VALUES}, so none was opened")),
            "{err}"
        );
        assert!(!err.contains("key \"k"), "a value was opened: {err}");
        let output = ws
            .cmd()
            .args(["rewrap", "-i"])
            .arg(&ws.identity)
            .args(["-r", &ws.recipient, "many.json"])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        assert!(
            stdout(&output).is_empty(),
            "a failing rewrap printed the file"
        );
        let err = stderr(&output);
        assert!(
            err.contains(&format!("a SealedSecret holds at most {MAX_VALUES}")),
            "{err}"
        );
    }
}

#[test]
fn check_finds_plaintext_secrets() {
    let ws = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    ws.write("repo/sealed.yaml", &sealed);
    ws.write(
        "repo/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
    );
    ws.write(
        "repo/empty-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: e}\n",
    );
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 0);

    ws.write(
        "repo/deep/leak.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n{SECRET}"),
    );
    ws.write("repo/chart/templates/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  password: {{ .Values.pw | b64enc }}\n");
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    // The template could not be checked: exit 2, not a finding's 1.
    assert_exit(&output, 2);
    let found = stdout(&output);
    assert!(
        found.contains("leak.yaml: document 2 (line 5): plaintext Secret \"db\""),
        "{found}"
    );
    // A template is no YAML: not parsed, so not checked, so a failure.
    assert!(
        found.contains("templates/secret.yaml: cannot read: document 1 (line 4): invalid YAML"),
        "{found}"
    );
    assert!(!found.contains("hunter2"));
}

/// The gate fails closed, and reads documents as kubectl does (checked
/// against kubectl 1.36.3, which creates each of these Secrets): JSON
/// values written one after the other (JSON Lines), `---` directly followed
/// by a comment as a separator, duplicate keys (kubectl keeps the last:
/// kseal takes the last in JSON, as kubectl, and refuses them in YAML), and
/// a document that parses not at all (a template quoting or indenting
/// `kind`, which the old textual fallback missed) fails as "cannot read"
/// while every other finding is still reported. Each of these passed
/// before.
#[test]
fn check_fails_closed_on_what_it_cannot_parse() {
    let ws = Workspace::new();
    let secret = |name: &str| {
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{{\"name\":\"{name}\"}},\"stringData\":{{\"password\":\"hunter2\"}}}}"
        )
    };
    ws.write(
        "repo/a-ndjson.json",
        &format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"c\"}}}}\n{}\n",
            secret("ndjson")
        ),
    );
    ws.write(
        "repo/b-comment-marker.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---# note\napiVersion: v1\nkind: Secret\nmetadata: {name: hashed}\nstringData: {password: hunter2}\n",
    );
    ws.write(
        "repo/c-duplicate.yaml",
        "\"apiVersion\": v1\n\"kind\": ConfigMap\n\"kind\": Secret\nmetadata: {name: dup}\nstringData: {password: hunter2}\n",
    );
    ws.write(
        "repo/d-duplicate.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"dup-json\"}, \"stringData\": {\"password\": \"hunter2\"}}\n",
    );
    ws.write(
        "repo/e-template.yaml",
        "apiVersion: v1\n\"kind\": Secret\nmetadata:\n  name: {{ .Release.Name }}\n  \"data\": x\nstringData:\n  password: {{ .Values.pw }}\n",
    );
    ws.write(
        "repo/f-broken-ndjson.json",
        &format!("{}\n{{\"kind\": \"Secret\", oops}}\n", secret("first")),
    );
    ws.write("repo/g-ok.yaml", &ws.seal(SECRET, &[]));
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    // Documents not checked: exit 2, even beside the findings.
    assert_exit(&output, 2);
    let out = stdout(&output);
    for expected in [
        "repo/a-ndjson.json: document 2 (line 2): plaintext Secret \"ndjson\"",
        "repo/b-comment-marker.yaml: document 2 (line 5): plaintext Secret \"hashed\"",
        "repo/c-duplicate.yaml: cannot read: document 1 (line 3): invalid YAML",
        "repo/d-duplicate.json: document 1 (line 1): plaintext Secret \"dup-json\"",
        "repo/e-template.yaml: cannot read: document 1",
        "repo/f-broken-ndjson.json: cannot read: document 1",
    ] {
        assert!(out.contains(expected), "{expected}\n{out}");
    }
    assert!(!out.contains("g-ok.yaml"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let err = stderr(&output);
    assert!(
        err.contains("3 plaintext Secret(s) or kustomize secretGenerator(s) found")
            && err.contains("3 document(s) could not be parsed, so were not checked"),
        "{err}"
    );

    // seal splits where check does: the Secret after `---#` is sealed.
    ws.write("marked.yaml", &format!("# head\n---# note\n{SECRET}"));
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient, "-f", "marked.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = stdout(&output);
    assert!(
        sealed.contains("kind: SealedSecret") && sealed.contains("name: db"),
        "{sealed}"
    );
}

#[test]
fn kseal_yaml_rules_pick_recipients_and_scope() {
    let prod = Workspace::new();
    let staging = Workspace::new();
    // A repository: the search for .kseal.yaml goes up to its root (outside
    // a repository only the working directory counts).
    prod.write(".git/HEAD", "ref: refs/heads/main\n");
    prod.write(
        "keys/staging.txt",
        &format!("# staging cluster\n{}\n", staging.recipient),
    );
    prod.write(
        ".kseal.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^clusters/prod/\n    recipients: [{}]\n  - path_regex: ^clusters/staging/\n    recipients_file: keys/staging.txt\n    scope: namespace-wide\n",
            prod.recipient
        ),
    );
    std::fs::create_dir_all(prod.path("clusters/prod")).unwrap();
    std::fs::create_dir_all(prod.path("clusters/staging/sub")).unwrap();
    let output = prod
        .cmd()
        .args(["seal", "-o", "clusters/prod/db.yaml"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let output = prod
        .cmd()
        .current_dir(prod.path("clusters/staging/sub"))
        .args(["seal", "-o", "db.yaml"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let prod_sealed = prod.read("clusters/prod/db.yaml");
    let staging_sealed = prod.read("clusters/staging/sub/db.yaml");
    assert!(prod_sealed.contains("scope: strict"));
    assert!(staging_sealed.contains("scope: namespace-wide"));
    assert_exit(&prod.unseal(&prod_sealed), 0);
    assert_exit(&staging.unseal(&staging_sealed), 0);
    assert_exit(&prod.unseal(&staging_sealed), 1);
    // A path no rule matches.
    let output = prod
        .cmd()
        .args(["seal", "-o", "elsewhere.yaml"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no creation rule"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn completions_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let output = kseal().args(["completions", shell]).output().unwrap();
        assert_exit(&output, 0);
        assert!(stdout(&output).contains("rewrap"), "{shell}");
    }
    let output = kseal().args(["seal", "--help"]).output().unwrap();
    assert!(stdout(&output).contains("--merge-into"));
}

/// The committed man page is generated from the clap definitions; it must
/// not drift from them. Regenerate: `cargo run -p kseal-cli -- man > docs/man/kseal.1`
#[test]
fn man_page_matches_the_cli() {
    let output = kseal().arg("man").output().unwrap();
    assert_exit(&output, 0);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/man/kseal.1"))
            .unwrap();
    assert!(
        stdout(&output) == committed,
        "docs/man/kseal.1 is stale: run `cargo run -p kseal-cli -- man > docs/man/kseal.1`"
    );
}

/// `--verbose` says which `.kseal.yaml` and rule chose the recipients; a
/// config's `recipients_file` outside its directory tree is refused without
/// quoting the file.
#[test]
fn verbose_names_the_config_and_rule_and_configs_stay_inside() {
    let ws = Workspace::new();
    ws.write("repo/.git/HEAD", "ref: refs/heads/main\n");
    ws.write("repo/keys/prod.txt", &format!("{}\n", ws.recipient));
    ws.write(
        "repo/.kseal.yaml",
        "creation_rules:\n  - path_regex: ^dev/\n    recipients: []\n    recipients_file: keys/prod.txt\n  - path_regex: ^prod/\n    recipients_file: keys/prod.txt\n    scope: namespace-wide\n",
    );
    std::fs::create_dir_all(ws.path("repo/prod")).unwrap();
    let output = ws
        .cmd()
        .current_dir(ws.path("repo"))
        .args(["seal", "--verbose", "-o", "prod/db.yaml"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(err.contains(".kseal.yaml creation_rules[1]"), "{err}");
    assert!(err.contains("path_regex \"^prod/\""), "{err}");
    assert!(err.contains("scope namespace-wide"), "{err}");
    assert!(err.contains("key id(s) "), "{err}");
    assert!(exists(&ws.path("repo/prod/db.yaml")));

    // A pull request pointing recipients_file at the CI's environment.
    ws.write(
        "repo/.kseal.yaml",
        "creation_rules:\n  - recipients_file: /proc/self/environ\n",
    );
    let output = ws
        .cmd()
        .current_dir(ws.path("repo"))
        .env("KSEAL_CANARY", "hunter2-canary")
        .args(["seal", "-o", "prod/db2.yaml"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("relative to the config file"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!exists(&ws.path("repo/prod/db2.yaml")));
}

/// `kseal check` finds plaintext Secrets in every shape kubectl applies: a
/// document starting on its `---` line, a `SecretList`, a `List` inside a
/// `List`; each is reported once.
#[test]
fn check_finds_secrets_in_every_shape() {
    let ws = Workspace::new();
    let secret = |name: &str| {
        format!("{{apiVersion: v1, kind: Secret, metadata: {{name: {name}}}, data: {{k: dg==}}}}")
    };
    ws.write("inline.yaml", &format!("--- {}\n", secret("inline")));
    ws.write(
        "secretlist.yaml",
        &format!(
            "apiVersion: v1\nkind: SecretList\nitems:\n  - {}\n",
            secret("listed")
        ),
    );
    ws.write(
        "nested.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: List\n    items:\n      - {}\n",
            secret("nested")
        ),
    );
    ws.write(
        "list.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n  - {}\n",
            secret("once")
        ),
    );
    for (file, name) in [
        ("inline.yaml", "inline"),
        ("secretlist.yaml", "listed"),
        ("nested.yaml", "nested"),
        ("list.yaml", "once"),
    ] {
        let output = ws.cmd().args(["check", file]).output().unwrap();
        assert_exit(&output, 1);
        let out = stdout(&output);
        assert_eq!(
            out.matches(&format!("\"{name}\"")).count(),
            1,
            "{file}: {out}"
        );
    }
}

/// `validate` fails when a file holds no kseal SealedSecret (a plaintext
/// Secret or a Bitnami SealedSecret under a `*.sealed.yaml` name), and
/// refuses fields the CRD does not have (`encrytedData`).
#[test]
fn validate_needs_a_sealed_secret_and_refuses_unknown_fields() {
    let ws = Workspace::new();
    ws.write("plain.sealed.yaml", SECRET);
    let output = ws
        .cmd()
        .args(["validate", "plain.sealed.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no kseal SealedSecret found"),
        "{}",
        stderr(&output)
    );
    let sealed = ws.seal(SECRET, &[]);
    ws.write(
        "typo.yaml",
        &sealed.replace("encryptedData:", "encrytedData:"),
    );
    for command in ["validate", "inspect"] {
        let output = ws.cmd().args([command, "typo.yaml"]).output().unwrap();
        assert_exit(&output, 1);
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(all.contains("spec.encrytedData"), "{command}: {all}");
    }
    let output = ws
        .cmd()
        .args(["unseal", "-i"])
        .arg(&ws.identity)
        .args(["-f", "typo.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
}

/// `--merge-into` refuses a `--scope` that differs from the object's (the
/// value would take the object's scope), and warns when the merged value is
/// sealed to other keys than the object's values.
#[test]
fn merge_into_refuses_another_scope_and_warns_about_other_keys() {
    let ws = Workspace::new();
    let other = Workspace::new();
    ws.write("db.yaml", &ws.seal(SECRET, &["--scope", "namespace-wide"]));
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--scope",
            "strict",
            "--name",
            "db",
        ])
        .args([
            "--namespace",
            "app",
            "--from-literal",
            "x=y",
            "--merge-into",
            "db.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--scope strict"),
        "{}",
        stderr(&output)
    );
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &other.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
        ])
        .args(["--from-literal", "x=y", "--merge-into", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("warning"), "{}", stderr(&output));
}

/// A Helm template in a tree (not YAML kseal can read, no kseal object in
/// it) is skipped by inspect, validate and rewrap with a note; a broken
/// SealedSecret never is, and a file named on the command line never is.
#[test]
fn trees_with_templates_are_walked() {
    let ws = Workspace::new();
    let new = Workspace::new();
    ws.write("repo/app/db.yaml", &ws.seal(SECRET, &[]));
    ws.write(
        "repo/chart/templates/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"x.fullname\" . }}\n",
    );
    for args in [vec!["inspect", "repo"], vec!["validate", "repo"]] {
        let output = ws.cmd().args(&args).output().unwrap();
        assert_exit(&output, 0);
        assert!(
            stderr(&output).contains("skipped"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = ws
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&ws.identity)
        .args(["-r", &new.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("skipped"), "{}", stderr(&output));
    // Named explicitly: an error.
    let output = ws
        .cmd()
        .args(["validate", "repo/chart/templates/deploy.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    // A broken SealedSecret in the tree: an error, never skipped.
    ws.write(
        "repo/app/broken.yaml",
        "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: x\n",
    );
    let output = ws.cmd().args(["validate", "repo"]).output().unwrap();
    assert_exit(&output, 1);
}

/// Without -r/-R, `rewrap` takes each file's recipients from its
/// `.kseal.yaml` rule (as `sops updatekeys` does), and `-v` says which.
#[test]
fn rewrap_follows_kseal_yaml_rules() {
    let prod = Workspace::new();
    let staging = Workspace::new();
    let new_prod = Workspace::new();
    let new_staging = Workspace::new();
    prod.write(".git/HEAD", "ref: refs/heads/main\n");
    let staging_secret = SECRET.replace("name: db", "name: cache");
    prod.write("clusters/prod/db.yaml", &prod.seal(SECRET, &[]));
    prod.write(
        "clusters/staging/cache.yaml",
        &staging.seal(&staging_secret, &[]),
    );
    prod.write(
        ".kseal.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^clusters/prod/\n    recipients: [{}]\n  - path_regex: ^clusters/staging/\n    recipients: [{}]\n",
            new_prod.recipient, new_staging.recipient
        ),
    );
    let output = prod
        .cmd()
        .args(["rewrap", "-v", "--in-place", "-i"])
        .arg(&prod.identity)
        .arg("-i")
        .arg(&staging.identity)
        .arg("clusters")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("creation_rules[1]"),
        "{}",
        stderr(&output)
    );
    assert_exit(&new_prod.unseal(&prod.read("clusters/prod/db.yaml")), 0);
    assert_exit(
        &new_staging.unseal(&prod.read("clusters/staging/cache.yaml")),
        0,
    );
    assert_exit(&new_staging.unseal(&prod.read("clusters/prod/db.yaml")), 1);
}

/// `kseal check` reads `apiVersion` as kubectl does: split at its `/` into
/// group and version, the empty group being core, so `/v1` is a Secret
/// too, alone and in lists (`kubectl apply` creates all of these, checked
/// against kubectl and the API server 1.36). Spellings they refuse are not
/// Secrets. A file that starts with a YAML flow mapping (taken for JSON,
/// and failing as such) is read as YAML.
#[test]
fn check_reads_api_version_as_kubectl_does() {
    let ws = Workspace::new();
    let secret = |api_version: &str, name: &str| {
        format!(
            "{{apiVersion: {api_version}, kind: Secret, metadata: {{name: {name}}}, stringData: {{k: v}}}}"
        )
    };
    ws.write("leaks/slash.yaml", &format!("{}\n", secret("/v1", "slash")));
    // A file starting with a YAML flow mapping is no JSON, and no less a
    // Secret to kubectl.
    ws.write("leaks/flow.yaml", &format!("{}\n", secret("v1", "flow")));
    ws.write(
        "leaks/quoted.json",
        r#"{"apiVersion": "/v1", "kind": "Secret", "metadata": {"name": "quoted"}, "data": {"k": "dg=="}}"#,
    );
    ws.write(
        "leaks/list.yaml",
        &format!(
            "apiVersion: /v1\nkind: List\nitems:\n  - {}\n  - {}\n",
            secret("/v1", "in-slash-list"),
            secret("v1", "plain-in-slash-list")
        ),
    );
    ws.write(
        "leaks/secretlist.yaml",
        &format!(
            "apiVersion: /v1\nkind: SecretList\nitems:\n  - {}\n",
            secret("/v1", "in-secretlist")
        ),
    );
    let output = ws.cmd().args(["check", "leaks"]).output().unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    for name in [
        "slash",
        "flow",
        "quoted",
        "in-slash-list",
        "plain-in-slash-list",
        "in-secretlist",
    ] {
        assert_eq!(
            out.matches(&format!("\"{name}\"")).count(),
            1,
            "{name}: {out}"
        );
    }
    // kubectl finds no mapping (` v1`, `V1`, `core/v1`, `v1/`), cannot
    // parse it (`//v1`), or the API server refuses it (kind `secret`).
    for (api_version, kind) in [
        ("\" v1\"", "Secret"),
        ("V1", "Secret"),
        ("core/v1", "Secret"),
        ("v1/", "Secret"),
        ("//v1", "Secret"),
        ("v1", "secret"),
    ] {
        ws.write(
            "refused.yaml",
            &format!(
                "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nstringData: {{k: v}}\n"
            ),
        );
        let output = ws.cmd().args(["check", "refused.yaml"]).output().unwrap();
        assert_exit(&output, 0);
    }
}

/// `kseal check DIR` sees what `kubectl apply -R -f DIR` applies: files in
/// hidden directories, hidden files, and symlinked files wherever they
/// point; a symlinked directory is not followed (nor by kubectl), and is
/// named on stderr. A symlink it cannot follow is reported and fails the
/// gate.
#[cfg(unix)]
#[test]
fn check_walks_what_kubectl_applies() {
    use std::os::unix::fs::symlink;
    let ws = Workspace::new();
    let secret = |name: &str| SECRET.replace("name: db", &format!("name: {name}"));
    ws.write("repo/.hidden/a.yaml", &secret("in-hidden-dir"));
    ws.write("repo/.b.yml", &secret("hidden-file"));
    ws.write("outside/c.yaml", &secret("linked-from-outside"));
    ws.write("elsewhere/d.yaml", &secret("behind-a-linked-dir"));
    ws.write("repo/app/ok.yaml", &ws.seal(SECRET, &[]));
    symlink(ws.path("outside/c.yaml"), ws.path("repo/app/c.yaml")).unwrap();
    symlink(ws.path("elsewhere"), ws.path("repo/linked-dir")).unwrap();
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    for name in ["in-hidden-dir", "hidden-file", "linked-from-outside"] {
        assert!(out.contains(&format!("\"{name}\"")), "{name}: {out}");
    }
    assert!(!out.contains("behind-a-linked-dir"), "{out}");
    assert!(
        stderr(&output).contains("repo/linked-dir: skipped: a symlink to a directory"),
        "{}",
        stderr(&output)
    );

    // A dangling symlink and a loop: errors, not passes.
    for (name, target) in [
        ("dangling.yaml", "nowhere.yaml"),
        ("loop.yaml", "loop.yaml"),
    ] {
        let clean = Workspace::new();
        clean.write("repo/ok.yaml", &clean.seal(SECRET, &[]));
        symlink(target, clean.path(&format!("repo/{name}"))).unwrap();
        let output = clean.cmd().args(["check", "repo"]).output().unwrap();
        assert_exit(&output, 2);
        assert!(
            stdout(&output).contains(&format!("repo/{name}: a symlink kseal cannot follow"))
                && stderr(&output).contains("1 path(s) could not be read"),
            "{}{}",
            stdout(&output),
            stderr(&output)
        );
    }
}

/// The other walks agree: `inspect` and `rewrap --in-place` see SealedSecrets
/// in hidden directories and behind symlinks. Edits follow a symlink to its
/// target inside the tree and keep the link; a symlink out of the tree is
/// refused and the run fails, whether the link was found or named
/// (`rewrap FILE`, `seal --merge-into FILE`; the tree of a named file is
/// its git repository, else its directory).
#[cfg(unix)]
#[test]
fn edits_follow_symlinks_only_inside_the_tree() {
    use std::os::unix::fs::symlink;
    let ws = Workspace::new();
    let new = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    ws.write("repo/.shared/db.yaml", &sealed);
    std::fs::create_dir_all(ws.path("repo/app")).unwrap();
    symlink("../.shared/db.yaml", ws.path("repo/app/db.yaml")).unwrap();
    let output = ws.cmd().args(["inspect", "repo"]).output().unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("app/db"), "{}", stdout(&output));

    let rewrap = |ws: &Workspace, path: &str| {
        ws.cmd()
            .args(["rewrap", "--in-place", "-i"])
            .arg(&ws.identity)
            .args(["-r", &new.recipient, path])
            .output()
            .unwrap()
    };
    // Inside the tree: the target is rewritten once, the link stays.
    let output = rewrap(&ws, "repo");
    assert_exit(&output, 0);
    assert!(
        stderr(&output)
            .contains("3 value(s) re-wrapped, 0 already current, 0 failed; 1 file(s) rewritten"),
        "{}",
        stderr(&output)
    );
    assert!(
        std::fs::symlink_metadata(ws.path("repo/app/db.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let rewrapped = ws.read("repo/.shared/db.yaml");
    assert_ne!(rewrapped, sealed);
    assert_exit(&new.unseal(&rewrapped), 0);

    // Out of the tree: refused, the target untouched, the run failed.
    let out = Workspace::new();
    let outside = out.seal(SECRET, &[]);
    out.write("outside/db.yaml", &outside);
    std::fs::create_dir_all(out.path("repo")).unwrap();
    symlink(out.path("outside/db.yaml"), out.path("repo/db.yaml")).unwrap();
    for path in ["repo", "repo/db.yaml"] {
        let output = rewrap(&out, path);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("repo/db.yaml: a symlink to")
                && stderr(&output).contains("not edited"),
            "{path}: {}",
            stderr(&output)
        );
        assert_eq!(out.read("outside/db.yaml"), outside);
    }
    let output = out
        .cmd()
        .args(["seal", "-r", &out.recipient, "--merge-into", "repo/db.yaml"])
        .args([
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "extra=x",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not edited"),
        "{}",
        stderr(&output)
    );
    assert_eq!(out.read("outside/db.yaml"), outside);

    // A named link's tree is its git repository (else its directory):
    // --merge-into through a link inside the repository merges at the
    // target, and the link stays a link.
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &new.recipient,
            "--merge-into",
            "repo/app/db.yaml",
        ])
        .args([
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "extra=x",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not edited"),
        "{}",
        stderr(&output)
    );
    std::fs::create_dir_all(ws.path("repo/.git")).unwrap();
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &new.recipient,
            "--merge-into",
            "repo/app/db.yaml",
        ])
        .args([
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "extra=x",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        std::fs::symlink_metadata(ws.path("repo/app/db.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(ws.read("repo/.shared/db.yaml").contains("extra: kseal:v2:"));
}

/// `inspect --stale`, `validate` and `rewrap` read SealedSecrets wherever
/// kubectl applies them (checked against kubectl 1.36): in a `/v1 List`
/// (core v1 to kubectl), in the `items` of any object (kubectl reads every
/// object with `items` as a list), and as items of a `SealedSecretList`
/// that name neither apiVersion nor kind (they take the list's). A re-wrap
/// edits such an item in place, adding no kind to it.
#[test]
fn tree_commands_read_every_list_kubectl_applies() {
    let old = Workspace::new();
    let new = Workspace::new();
    let sealed = old.seal(SECRET, &[]);
    let item = |lines: &mut dyn Iterator<Item = &str>| -> String {
        let text: String = lines.map(|line| format!("    {line}\n")).collect();
        text.replacen("    ", "  - ", 1)
    };
    let with_kind = item(&mut sealed.lines());
    let kindless = item(
        &mut sealed
            .lines()
            .filter(|line| !line.starts_with("apiVersion:") && !line.starts_with("kind:")),
    );
    old.write(
        "repo/slash-list.yaml",
        &format!("apiVersion: /v1\nkind: List\nitems:\n{with_kind}"),
    );
    old.write(
        "repo/config-map.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\nitems:\n{with_kind}"),
    );
    old.write(
        "repo/sealed-list.yaml",
        &format!("apiVersion: kseal.dev/v1alpha1\nkind: SealedSecretList\nitems:\n{kindless}"),
    );
    let output = old.cmd().args(["validate", "repo"]).output().unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("3 SealedSecret(s), 9 value(s): well-formed"),
        "{}",
        stderr(&output)
    );
    let stale = |ws: &Workspace| {
        ws.cmd()
            .args(["inspect", "--stale", "-r", &new.recipient, "repo"])
            .output()
            .unwrap()
    };
    let output = stale(&old);
    assert_exit(&output, 1);
    for file in ["slash-list", "config-map", "sealed-list"] {
        assert_eq!(
            stdout(&output)
                .matches(&format!(
                    "repo/{file}.yaml: document 1 (line 1), item 1: app/db: "
                ))
                .count(),
            3,
            "{file}: {}",
            stdout(&output)
        );
    }
    let output = old
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&old.identity)
        .args(["-r", &new.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output)
            .contains("9 value(s) re-wrapped, 0 already current, 0 failed; 3 file(s) rewritten"),
        "{}",
        stderr(&output)
    );
    assert_exit(&stale(&old), 0);
    let rewritten = old.read("repo/sealed-list.yaml");
    assert_eq!(rewritten.matches("kind:").count(), 1, "{rewritten}");
    let password = |text: &str| {
        text.lines()
            .find_map(|line| line.trim_start().strip_prefix("password: "))
            .map(str::to_owned)
    };
    assert!(password(&rewritten).is_some(), "{rewritten}");
    assert_ne!(password(&rewritten), password(&sealed), "{rewritten}");
}

/// `kseal check` decodes a file exactly as `kseal seal` does (UTF-16 with a
/// byte-order mark, which kubectl applies too), and a file it cannot read
/// (a dangling symlink, bytes that are no text) is reported as a failure
/// while every other finding of the tree is still reported. The old check
/// stopped at a UTF-16 file ("not UTF-8 text (byte 0)") and said nothing of
/// the Secrets after it.
#[cfg(unix)]
#[test]
fn check_reads_what_seal_reads_and_reports_what_it_cannot() {
    use std::os::unix::fs::symlink;
    let ws = Workspace::new();
    let secret = |name: &str| SECRET.replace("name: db", &format!("name: {name}"));
    let mut utf16 = vec![0xff, 0xfe];
    for unit in secret("in-utf16").encode_utf16() {
        utf16.extend(unit.to_le_bytes());
    }
    std::fs::create_dir_all(ws.path("repo")).unwrap();
    std::fs::write(ws.path("repo/a-u16.yaml"), &utf16).unwrap();
    // Latin-1 in a comment: kubectl would apply it (with U+FFFD), seal
    // refuses it, so the gate cannot vouch for it.
    let mut latin1 = secret("in-latin1").into_bytes();
    latin1.extend(b"# caf\xe9\n");
    std::fs::write(ws.path("repo/b-latin1.yaml"), &latin1).unwrap();
    symlink("nowhere.yaml", ws.path("repo/c-dangling.yaml")).unwrap();
    ws.write("repo/d-leak.yaml", &secret("after-them"));
    ws.write("repo/e-ok.yaml", &ws.seal(SECRET, &[]));

    // seal takes the UTF-16 file: so must check.
    let output = ws
        .cmd()
        .args(["seal", "-r", &ws.recipient, "-f", "repo/a-u16.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);

    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    // Paths not checked: exit 2, even beside the findings.
    assert_exit(&output, 2);
    let out = stdout(&output);
    assert!(
        out.contains("repo/a-u16.yaml: document 1 (line 1): plaintext Secret \"in-utf16\""),
        "{out}"
    );
    assert!(
        out.contains("repo/d-leak.yaml: document 1 (line 1): plaintext Secret \"after-them\""),
        "{out}"
    );
    assert!(
        out.contains("repo/b-latin1.yaml: not UTF-8 text") && out.contains("(not checked)"),
        "{out}"
    );
    assert!(
        out.contains("repo/c-dangling.yaml: a symlink kseal cannot follow"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    let err = stderr(&output);
    assert!(
        err.contains("2 plaintext Secret(s) or kustomize secretGenerator(s) found")
            && err.contains("2 path(s) could not be read, so were not checked"),
        "{err}"
    );

    // Only an unreadable file: still a failure, said as such.
    let clean = Workspace::new();
    clean.write("repo/ok.yaml", &clean.seal(SECRET, &[]));
    std::fs::write(clean.path("repo/bad.json"), b"{\"kind\": \"\xff\"}").unwrap();
    let output = clean.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("1 path(s) could not be read"),
        "{}",
        stderr(&output)
    );
    // A missing path named on the command line, next to a good one.
    let output = clean
        .cmd()
        .args(["check", "missing.yaml", "repo/ok.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stdout(&output).contains("missing.yaml: cannot read"),
        "{}",
        stdout(&output)
    );
}

/// A hard link is two files to kubectl (it applies each name) and to every
/// kseal walk: each name is read, and a Secret in it reported under each,
/// without a "same file" note (that is for symlinks and paths given twice);
/// an edit in place writes each name in the tree as a file of its own.
#[cfg(unix)]
#[test]
fn hard_links_are_read_under_each_name() {
    let ws = Workspace::new();
    ws.write("repo/a.yaml", SECRET);
    std::fs::hard_link(ws.path("repo/a.yaml"), ws.path("repo/b.yaml")).unwrap();
    std::os::unix::fs::symlink("a.yaml", ws.path("repo/c.yaml")).unwrap();
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 1);
    let out = stdout(&output);
    for name in ["a.yaml", "b.yaml"] {
        assert!(
            out.contains(&format!(
                "repo/{name}: document 1 (line 1): plaintext Secret \"db\""
            )),
            "{name}: {out}"
        );
    }
    assert!(!out.contains("c.yaml"), "{out}");
    let err = stderr(&output);
    assert!(
        err.contains("repo/c.yaml: skipped: the same file as") && !err.contains("repo/b.yaml"),
        "{err}"
    );

    // An edit in place writes a new file under each name it edits: both
    // names in the tree are re-wrapped, a name outside it is not written.
    let new = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    ws.write("tree/a.yaml", &sealed);
    std::fs::hard_link(ws.path("tree/a.yaml"), ws.path("tree/b.yaml")).unwrap();
    std::fs::hard_link(ws.path("tree/a.yaml"), ws.path("outside.yaml")).unwrap();
    let output = ws
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&ws.identity)
        .args(["-r", &new.recipient, "tree"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output)
            .contains("6 value(s) re-wrapped, 0 already current, 0 failed; 2 file(s) rewritten"),
        "{}",
        stderr(&output)
    );
    for name in ["tree/a.yaml", "tree/b.yaml"] {
        assert_exit(&new.unseal(&ws.read(name)), 0);
    }
    assert_eq!(ws.read("outside.yaml"), sealed);
}

/// Offline, each file is written on its own: a file that cannot be written
/// (a symlink out of the tree) is reported, and its values are not counted
/// as re-wrapped (the old summary counted them); the other files are
/// written, and the summary says which is which.
#[cfg(unix)]
#[test]
fn rewrap_counts_only_what_it_wrote() {
    use std::os::unix::fs::symlink;
    let ws = Workspace::new();
    let new = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    ws.write("repo/a.yaml", &sealed);
    ws.write(
        "repo/b.yaml",
        &ws.seal(&SECRET.replace("name: db", "name: other"), &[]),
    );
    ws.write("outside/db.yaml", &sealed);
    symlink(ws.path("outside/db.yaml"), ws.path("repo/out.yaml")).unwrap();
    let output = ws
        .cmd()
        .args(["rewrap", "--in-place", "-i"])
        .arg(&ws.identity)
        .args(["-r", &new.recipient, "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(
            "6 value(s) re-wrapped, 0 already current, 3 failed; 2 file(s) rewritten, 1 not written"
        ),
        "{err}"
    );
    assert!(err.contains("repo/out.yaml: a symlink to"), "{err}");
    assert_eq!(ws.read("outside/db.yaml"), sealed);
    assert_ne!(ws.read("repo/a.yaml"), sealed);
    assert_exit(&new.unseal(&ws.read("repo/b.yaml")), 0);
}

/// `kseal check` is a gate with grep's and ripgrep's exit statuses: 0 when
/// everything was checked and nothing found, 1 for findings, 2 for every
/// failure that is not one (a path it cannot read, even beside findings; a
/// bad .kseal.yaml; a usage error), so a CI job can tell them apart.
#[test]
fn check_exit_status_tells_findings_from_errors() {
    let ws = Workspace::new();
    ws.write("repo/sealed.yaml", &ws.seal(SECRET, &[]));
    ws.write(
        "repo/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let check = |args: &[&str]| ws.cmd().arg("check").args(args).output().unwrap();

    let clean = check(&["repo"]);
    assert_exit(&clean, 0);
    assert_eq!(stdout(&clean), "");

    ws.write("leak/secret.yaml", SECRET);
    let finding = check(&["repo", "leak"]);
    assert_exit(&finding, 1);
    assert!(
        stdout(&finding).contains("leak/secret.yaml: document 1 (line 1): plaintext Secret"),
        "{}",
        stdout(&finding)
    );

    let missing = check(&["repo", "missing.yaml"]);
    assert_exit(&missing, 2);
    assert!(
        stdout(&missing).contains("missing.yaml: cannot read")
            && stderr(&missing).contains("1 path(s) could not be read"),
        "{}{}",
        stdout(&missing),
        stderr(&missing)
    );

    // Not everything checked: 2 even beside a finding, which is still
    // reported.
    let both = check(&["leak", "missing.yaml"]);
    assert_exit(&both, 2);
    assert!(
        stdout(&both).contains("plaintext Secret") && stdout(&both).contains("missing.yaml"),
        "{}",
        stdout(&both)
    );

    // A .kseal.yaml that does not load: an error of the check, not a
    // finding.
    ws.write(
        "repo/.kseal.yaml",
        "creation_rules:\n  - path_regex: .*\n    max_age: 90d\n",
    );
    let bad_config = check(&["--rotation", "repo"]);
    assert_exit(&bad_config, 2);
    assert!(
        stderr(&bad_config).contains(".kseal.yaml"),
        "{}",
        stderr(&bad_config)
    );

    // Files a kustomization names that cannot be read or parsed were not
    // checked either: 2, not a finding.
    ws.write(
        "kustomized/kustomization.yaml",
        "resources: [other.txt]\npatches:\n- patch: |-\n    a: [\n",
    );
    ws.write("kustomized/other.txt", "a: [\n");
    let kustomized = check(&["kustomized"]);
    assert_exit(&kustomized, 2);
    assert!(
        stdout(&kustomized).contains("other.txt: cannot parse it (not checked)")
            && stdout(&kustomized).contains("an inline patch kseal cannot parse")
            && stderr(&kustomized).contains("2 file(s) or patch(es) a kustomization names"),
        "{}{}",
        stdout(&kustomized),
        stderr(&kustomized)
    );

    // A reader that stops early (`| head`) does not turn the verdict into a
    // success: the listing (here larger than a pipe's buffer) meets a closed
    // pipe, and the exit status is still the finding's.
    for i in 0..1500 {
        ws.write(
            &format!("many/secret-{i}.yaml"),
            &SECRET.replace("name: db", &format!("name: db-{i}")),
        );
    }
    let closed = ws.output_with_stdout_closed(&["check", "many"]);
    assert_exit(&closed, 1);

    // Usage errors, as for every command.
    assert_exit(&check(&["--no-such-flag", "repo"]), 2);
    assert_exit(&check(&[]), 2);

    // Said in `--help`.
    let help = check(&["--help"]);
    assert_exit(&help, 0);
    assert!(
        stdout(&help).contains("Exit status: 0 when everything was checked and nothing found; 1"),
        "{}",
        stdout(&help)
    );
}

/// Every command whose exit status is a verdict keeps it when the reader of
/// its listing stops early (`| head`): `check` (above), `inspect` of a
/// malformed SealedSecret and `inspect --stale`.
#[test]
fn verdicts_survive_a_closed_pipe() {
    let ws = Workspace::new();
    let other = Workspace::new();
    let sealed = ws.seal(SECRET, &[]);
    // Sealed to another key than this workspace's: stale for `--stale -r`.
    let stale = other.seal(SECRET, &[]);
    let malformed = sealed.replacen("kseal:v2:", "kseal:v2:x", 1);
    for i in 0..400 {
        ws.write(&format!("bad/{i}.yaml"), &malformed);
        ws.write(&format!("stale/{i}.yaml"), &stale);
    }
    // The same verdicts with the whole listing read.
    let read = |args: &[&str]| ws.cmd().args(args).output().unwrap();
    let recipient = ws.recipient.clone();
    for args in [
        vec!["inspect", "bad"],
        vec!["inspect", "--stale", "-r", recipient.as_str(), "stale"],
    ] {
        let whole = read(&args);
        assert_exit(&whole, 1);
        assert!(stdout(&whole).len() > 65_536, "{args:?}: a short listing");
        assert_exit(&ws.output_with_stdout_closed(&args), 1);
    }
}
