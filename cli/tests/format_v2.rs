//! Format v2 from the command line (the real `kseal` binary): what `inspect`
//! shows, `check --max-age` as a CI gate (flag and `.kseal.yaml`), `rewrap`
//! upgrading v1 values, and every manifest vector through `kseal validate`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Workspace, assert_exit, stderr, stdout};
use kseal_shared::binding::{Binding, Scope};
use kseal_shared::envelope::{SEALED_AT_UNRECORDED, SealedValue, seal_at};
use kseal_shared::x25519::Recipient;
use serde_json::Value;

const DAY: u64 = 86_400;

fn now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap()
}

/// A SealedSecret `app/db` whose values were sealed `ages` days ago
/// (`None`: seal time not recorded).
fn manifest(recipient: &str, ages: &[(&str, Option<u64>)]) -> String {
    let recipient: Recipient = recipient.parse().unwrap();
    let mut out = String::from(
        "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: app\nspec:\n  encryptedData:\n",
    );
    for (key, age) in ages {
        let sealed_at = age.map_or(SEALED_AT_UNRECORDED, |days| now() - days * DAY);
        let binding = Binding::new(Scope::Strict, "app", "db", key);
        let value = seal_at(b"v", &binding, std::slice::from_ref(&recipient), sealed_at).unwrap();
        out.push_str(&format!("    {key}: {}\n", value.encode()));
    }
    out
}

#[test]
fn check_max_age_lists_every_overdue_value() {
    let ws = Workspace::new();
    ws.write(
        "repo/app/db.yaml",
        &manifest(
            &ws.recipient,
            &[("fresh", Some(10)), ("old", Some(120)), ("unknown", None)],
        ),
    );
    ws.write(
        "repo/app/other.yaml",
        &manifest(&ws.recipient, &[("edge", Some(89)), ("ancient", Some(400))]),
    );
    // (max age, values reported)
    for (max_age, expected) in [
        ("90d", vec!["old", "unknown", "ancient"]),
        ("13w", vec!["old", "unknown", "ancient"]),
        ("2160h", vec!["old", "unknown", "ancient"]),
        ("1d", vec!["fresh", "old", "unknown", "edge", "ancient"]),
        ("1000d", vec!["unknown"]),
    ] {
        let output = ws
            .cmd()
            .args(["check", "--max-age", max_age, "repo"])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        let listed = stdout(&output);
        for key in ["fresh", "old", "unknown", "edge", "ancient"] {
            assert_eq!(
                listed.contains(&format!(": {key}: ")),
                expected.contains(&key),
                "--max-age {max_age}, {key}:\n{listed}"
            );
        }
        assert!(
            stderr(&output).contains(&format!(
                "{} sealed value(s) due for rotation",
                expected.len()
            )),
            "{}",
            stderr(&output)
        );
    }
    assert!(
        stdout(
            &ws.cmd()
                .args(["check", "--max-age", "90d", "repo"])
                .output()
                .unwrap()
        )
        .contains("seal time not recorded")
    );
    // Without a max age nothing is judged.
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 0);
    for bad in ["90", "90days", "0d", "-1d", "1.5d"] {
        let output = ws
            .cmd()
            .args(["check", "--max-age", bad, "repo"])
            .output()
            .unwrap();
        assert_exit(&output, 2);
    }
}

#[test]
fn check_takes_max_age_from_the_matching_kseal_yaml_rule() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("repo/.git")).unwrap();
    ws.write(
        "repo/.kseal.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^prod/\n    recipients: [{r}]\n    max_age: 30d\n  - recipients: [{r}]\n",
            r = ws.recipient
        ),
    );
    ws.write(
        "repo/prod/db.yaml",
        &manifest(&ws.recipient, &[("a", Some(45))]),
    );
    ws.write(
        "repo/dev/db.yaml",
        &manifest(&ws.recipient, &[("b", Some(45))]),
    );
    // Plain `kseal check` (the pre-commit hook) looks for plaintext only.
    let output = ws.cmd().args(["check", "repo"]).output().unwrap();
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("no plaintext Secret"));
    let output = ws
        .cmd()
        .args(["check", "--rotation", "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let listed = stdout(&output);
    assert!(
        listed.contains("prod/db.yaml") && listed.contains(": a: "),
        "{listed}"
    );
    assert!(listed.contains("max age 30d, .kseal.yaml"), "{listed}");
    assert!(!listed.contains("dev/db.yaml"), "{listed}");
    // kseal seal writes the rule's max age into the object, for the
    // controller; a path without one gets none.
    for (out, expected) in [("prod/new.yaml", true), ("dev/new.yaml", false)] {
        let output = ws
            .cmd()
            .current_dir(ws.path("repo"))
            .args(["seal", "--name", "new", "--namespace", "app"])
            .args(["--from-literal", "k=v", "-o", out])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        let written = ws.read(&format!("repo/{out}"));
        assert_eq!(
            written.contains("maxAge: 30d"),
            expected,
            "{out}: {written}"
        );
    }
    // The flag wins over the rule.
    let output = ws
        .cmd()
        .args(["check", "--max-age", "60d", "repo"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    // A bad max_age in the config is an error naming it.
    ws.write(
        "repo/.kseal.yaml",
        &format!(
            "creation_rules:\n  - recipients: [{}]\n    max_age: 3 months\n",
            ws.recipient
        ),
    );
    let output = ws
        .cmd()
        .args(["check", "--rotation", "repo"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("max_age"), "{}", stderr(&output));
}

/// `--rotation` judges each object by the stricter of its rule's max_age
/// and its spec.maxAge; values it cannot read, and a spec.maxAge it cannot
/// read, fail the gate.
#[test]
fn check_rotation_takes_the_stricter_max_age_and_fails_on_what_it_cannot_read() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("repo/.git")).unwrap();
    ws.write(
        "repo/.kseal.yaml",
        &format!(
            "creation_rules:\n  - recipients: [{}]\n    max_age: 90d\n",
            ws.recipient
        ),
    );
    let with_spec = |max_age: &str, ages: &[(&str, Option<u64>)]| {
        manifest(&ws.recipient, ages).replace("spec:\n", &format!("spec:\n  maxAge: {max_age}\n"))
    };
    // (file, content, reported keys, source named)
    let cases = [
        (
            "stricter-spec.yaml",
            with_spec("30d", &[("a", Some(45))]),
            vec!["a"],
            "spec.maxAge",
        ),
        (
            "laxer-spec.yaml",
            with_spec("200d", &[("b", Some(120))]),
            vec!["b"],
            ".kseal.yaml",
        ),
        (
            "fresh.yaml",
            with_spec("200d", &[("c", Some(10))]),
            vec![],
            "",
        ),
    ];
    for (file, content, keys, source) in &cases {
        ws.write(&format!("repo/{file}"), content);
        let output = ws
            .cmd()
            .args(["check", "--rotation", &format!("repo/{file}")])
            .output()
            .unwrap();
        let listed = stdout(&output);
        assert_exit(&output, if keys.is_empty() { 0 } else { 1 });
        for key in keys {
            assert!(listed.contains(&format!(": {key}: ")), "{file}: {listed}");
            assert!(listed.contains(source), "{file}: {listed}");
        }
    }
    // A malformed value, a bad spec.maxAge, a future seal time.
    let good = manifest(&ws.recipient, &[("v", Some(1))]);
    let value = common::value_of(&good, "v");
    let mut fields: Vec<&str> = value.split(':').collect();
    let bad_time = format!("0{}", fields[3]);
    fields[3] = &bad_time;
    ws.write(
        "repo/malformed.yaml",
        &good.replace(&value, &fields.join(":")),
    );
    ws.write("repo/bad-spec.yaml", &with_spec("90x", &[("v", Some(1))]));
    let recipient: Recipient = ws.recipient.parse().unwrap();
    let in_future = seal_at(
        b"v",
        &Binding::new(Scope::Strict, "app", "db", "f"),
        std::slice::from_ref(&recipient),
        now() + 30 * DAY,
    )
    .unwrap()
    .encode();
    ws.write(
        "repo/future.yaml",
        &good.replace(&format!("    v: {value}"), &format!("    f: {in_future}")),
    );
    for (file, expected) in [
        (
            "malformed.yaml",
            "v: cannot tell its age: malformed sealed value",
        ),
        ("bad-spec.yaml", "spec.maxAge: invalid max age"),
        ("future.yaml", "f: sealed in the future"),
    ] {
        let output = ws
            .cmd()
            .args(["check", "--rotation", &format!("repo/{file}")])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        assert!(
            stdout(&output).contains(expected),
            "{file}: {}",
            stdout(&output)
        );
    }
}

/// `--merge-into` gives each value it replaces a new seal time and leaves
/// the others byte-identical.
#[test]
fn merge_into_seals_replaced_values_now() {
    let ws = Workspace::new();
    ws.write(
        "db.yaml",
        &manifest(&ws.recipient, &[("old", Some(200)), ("kept", Some(100))]),
    );
    let kept = common::value_of(&ws.read("db.yaml"), "kept");
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
        ])
        .args(["--from-literal", "old=rotated", "--merge-into", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let after = ws.read("db.yaml");
    assert_eq!(common::value_of(&after, "kept"), kept);
    let rotated = SealedValue::parse(&common::value_of(&after, "old")).unwrap();
    let age = now() - rotated.sealed_at_seconds();
    assert!(age < 600, "{age}");
    let output = ws
        .cmd()
        .args(["check", "--max-age", "150d", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
}

#[test]
fn inspect_shows_version_and_age() {
    let ws = Workspace::new();
    ws.write(
        "db.yaml",
        &manifest(&ws.recipient, &[("a", Some(3)), ("b", None)]),
    );
    let output = ws
        .cmd()
        .args(["inspect", "--format", "json", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let values = report[0]["values"].as_array().unwrap();
    assert_eq!(values[0]["version"], "v2");
    assert_eq!(values[0]["age_days"], 3);
    assert!(values[0]["sealed_at"].as_str().unwrap().ends_with('Z'));
    assert!(values[1].get("sealed_at").is_none());
    let text = stdout(&ws.cmd().args(["inspect", "db.yaml"]).output().unwrap());
    assert!(
        text.contains("a: v2, sealed ") && text.contains("(3 days ago)"),
        "{text}"
    );
    assert!(text.contains("b: v2, seal time not recorded"), "{text}");
}

/// The v1 test vectors (format v1 is no longer written): their identity and
/// a strict value for payments/db-credentials/password.
fn v1_vector() -> (String, String, String) {
    let vectors: Value =
        serde_json::from_str(include_str!("../../shared/tests/vectors/v1.json")).unwrap();
    let identity = vectors["identities"][0].as_str().unwrap().to_owned();
    let case = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["comment"] == "strict")
        .unwrap();
    (
        identity,
        case["sealed"].as_str().unwrap().to_owned(),
        case["plaintext_base64"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn rewrap_upgrades_v1_values_and_says_so() {
    let ws = Workspace::new();
    let (identity, v1, plaintext_base64) = v1_vector();
    ws.write("old-key.txt", &format!("{identity}\n"));
    let old = SealedValue::parse(&v1).unwrap();
    let manifest = format!(
        "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db-credentials\n  namespace: payments\nspec:\n  encryptedData:\n    password: {v1}\n"
    );
    ws.write("db.yaml", &manifest);
    let inspect = stdout(&ws.cmd().args(["inspect", "db.yaml"]).output().unwrap());
    assert!(
        inspect.contains("password: v1, seal time not recorded"),
        "{inspect}"
    );
    // Re-wrapped to the same key it is sealed to: still upgraded.
    let recipient = kseal_shared::x25519::parse_identity_file(&identity).unwrap()[0]
        .recipient()
        .to_string();
    let output = ws
        .cmd()
        .args([
            "rewrap",
            "-i",
            "old-key.txt",
            "-r",
            &recipient,
            "--in-place",
            "db.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("1 of them upgraded from format v1 to v2"),
        "{}",
        stderr(&output)
    );
    let upgraded = common::value_of(&ws.read("db.yaml"), "password");
    let new = SealedValue::parse(&upgraded).unwrap();
    assert_eq!(new.version().as_str(), "v2");
    assert_eq!(new.sealed_at(), None);
    assert_eq!(new.key_ids(), old.key_ids());
    // It still opens to the same plaintext.
    let output = ws
        .cmd()
        .args(["unseal", "-i", "old-key.txt", "-f", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains(&plaintext_base64),
        "{}",
        stdout(&output)
    );
    // A second run finds nothing to do.
    let output = ws
        .cmd()
        .args([
            "rewrap",
            "-i",
            "old-key.txt",
            "-r",
            &recipient,
            "--in-place",
            "db.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("0 value(s) re-wrapped, 1 already current"));
}

/// Every manifest vector through the real `kseal validate`.
#[test]
fn validate_agrees_with_the_manifest_vectors() {
    let ws = Workspace::new();
    let vectors: Value =
        serde_json::from_str(include_str!("../../shared/tests/vectors/v2.json")).unwrap();
    for case in vectors["manifests"].as_array().unwrap() {
        let comment = case["comment"].as_str().unwrap();
        ws.write("m.yaml", case["yaml"].as_str().unwrap());
        let output = ws.cmd().args(["validate", "m.yaml"]).output().unwrap();
        let expected = if case["expect"] == "ok" { 0 } else { 1 };
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{comment}: {}",
            stderr(&output)
        );
    }
}

/// Lists as kubectl applies them: `SealedSecretList` and `v1 List` are read
/// by inspect, validate and check; a SealedSecret in a nested List is
/// refused loudly, and a rotation gate fails a file it cannot read.
#[test]
fn lists_are_read_or_refused_never_skipped() {
    let ws = Workspace::new();
    let object = manifest(&ws.recipient, &[("old", Some(365))]);
    let item: String = object
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
        .replacen("    apiVersion", "  - apiVersion", 1);
    for (file, text) in [
        (
            "sealed-list.yaml",
            format!("apiVersion: kseal.dev/v1alpha1\nkind: SealedSecretList\nitems:\n{item}"),
        ),
        (
            "list.yaml",
            format!("apiVersion: v1\nkind: List\nitems:\n{item}"),
        ),
    ] {
        ws.write(file, &text);
        let output = ws.cmd().args(["validate", file]).output().unwrap();
        assert_exit(&output, 0);
        let output = ws
            .cmd()
            .args(["check", "--max-age", "90d", file])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        assert!(
            stdout(&output).contains(": old: sealed 365 days ago"),
            "{file}: {}",
            stdout(&output)
        );
    }
    let nested: String = item
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
        .replacen(
            "      - apiVersion",
            "  - apiVersion: v1\n    kind: List\n    items:\n      - apiVersion",
            1,
        );
    ws.write(
        "nested.yaml",
        &format!("apiVersion: v1\nkind: List\nitems:\n{nested}"),
    );
    // `check` could not check the ages: an error of the check (2), not a
    // finding (1).
    for (command, code) in [
        (vec!["validate", "nested.yaml"], 1),
        (vec!["check", "--max-age", "90d", "nested.yaml"], 2),
    ] {
        let output = ws.cmd().args(&command).output().unwrap();
        assert_exit(&output, code);
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert!(said.contains("a List inside a List"), "{command:?}: {said}");
    }
    // A file with one document kseal cannot parse: plaintext is still
    // looked for, but a rotation gate fails it, as not checked (2).
    ws.write(
        "templated.yaml",
        &format!("{object}---\nkind: Secret\nmetadata: {{{{ .Values.x }}\n"),
    );
    let output = ws
        .cmd()
        .args(["check", "--max-age", "90d", "templated.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stdout(&output).contains("cannot read it, so no age was checked"),
        "{}",
        stdout(&output)
    );
}

/// The rotation gate reads SealedSecrets wherever kubectl applies them: in
/// a `List` whose `apiVersion` is `/v1` (core v1 to kubectl) and in the
/// `items` of any object (kubectl reads every object with `items` as a
/// list), not only in the lists kseal's other commands read.
#[test]
fn check_rotation_reads_every_list_kubectl_applies() {
    let ws = Workspace::new();
    let object = manifest(&ws.recipient, &[("old", Some(365))]);
    let item: String = object
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
        .replacen("    apiVersion", "  - apiVersion", 1);
    for (file, text) in [
        (
            "slash-list.yaml",
            format!("apiVersion: /v1\nkind: List\nitems:\n{item}"),
        ),
        (
            "config-map.yaml",
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\nitems:\n{item}"),
        ),
    ] {
        ws.write(file, &text);
        let output = ws
            .cmd()
            .args(["check", "--max-age", "90d", file])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        assert!(
            stdout(&output).contains(": old: sealed 365 days ago"),
            "{file}: {}",
            stdout(&output)
        );
    }
}
