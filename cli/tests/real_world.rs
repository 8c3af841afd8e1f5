//! Real-world inputs (issue 15), through the real binary:
//! names Kubernetes refuses are refused before sealing, in every command;
//! every output of every command passes `validate` and `inspect`; edits
//! (`--merge-into`, `rewrap --in-place`) change only the edited values'
//! text, every other byte of a hand-written file stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;

// ---------------------------------------------------------------------------
// Helpers

fn run(ws: &Workspace, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut command = ws.cmd();
    command.args(args);
    if let Some(stdin) = stdin {
        command.write_stdin(stdin.to_owned());
    }
    command.output().unwrap()
}

/// `validate` and `inspect` both accept the file.
fn assert_valid(ws: &Workspace, file: &str, what: &str) {
    for command in ["validate", "inspect"] {
        let output = run(ws, &[command, file], None);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{what}: `kseal {command}` rejects kseal's own output:\n{}\n{}\n{}",
            ws.read(file),
            stdout(&output),
            stderr(&output)
        );
    }
}

/// The data of the Secret that `unseal` makes of `file` (its first
/// document), as base64 strings.
fn unsealed_data(ws: &Workspace, file: &str) -> BTreeMap<String, String> {
    let text = ws.read(file);
    let first = text.split("\n---\n").next().unwrap().to_owned() + "\n";
    let ext = if file.ends_with(".json") {
        "json"
    } else {
        "yaml"
    };
    let file = &format!("first-document.{ext}");
    ws.write(file, &first);
    let output = run(
        ws,
        &[
            "unseal",
            "-i",
            ws.identity.to_str().unwrap(),
            "-f",
            file,
            "--format",
            "json",
        ],
        None,
    );
    assert_exit(&output, 0);
    let secret: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    secret["data"]
        .as_object()
        .map(|data| {
            data.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::prelude::BASE64_STANDARD.encode(text)
}

// ---------------------------------------------------------------------------
// Kind 2: names Kubernetes would refuse are refused before sealing.

fn secret_with(metadata: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n{metadata}stringData:\n{data}")
}

/// (what, metadata lines, stringData lines, fragments of the error; empty:
/// accepted). Each Secret is the second document of its file, at line 8.
fn name_table() -> Vec<(&'static str, String, String, Vec<String>)> {
    let ok_meta = "  name: db\n  namespace: app\n".to_owned();
    let ok_data = "  k: v\n".to_owned();
    let name253 = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    let name254 = format!("{name253}x");
    let ns63 = "n".repeat(63);
    let ns64 = "n".repeat(64);
    let label63 = "v".repeat(63);
    let label64 = "v".repeat(64);
    let big = "x".repeat(256 * 1024);
    let subdomain = "RFC 1123 subdomain".to_owned();
    let label = "RFC 1123 label".to_owned();
    let key_rule = "a Secret data key".to_owned();
    let qualified = "a qualified name".to_owned();
    let s = |x: &str| x.to_owned();
    vec![
        ("valid", ok_meta.clone(), ok_data.clone(), vec![]),
        (
            "name of 253 characters",
            format!("  name: {name253}\n  namespace: app\n"),
            ok_data.clone(),
            vec![],
        ),
        (
            "namespace of 63 characters",
            format!("  name: db\n  namespace: {ns63}\n"),
            ok_data.clone(),
            vec![],
        ),
        (
            "camelCase name",
            s("  name: runnerToken\n  namespace: app\n"),
            ok_data.clone(),
            vec![
                s("invalid metadata.name \"runnerToken\""),
                subdomain.clone(),
                s("character 7"),
            ],
        ),
        (
            "namespace with uppercase and _",
            s("  name: runner-token\n  namespace: Gitlab_Runners\n"),
            ok_data.clone(),
            vec![
                s("invalid metadata.namespace \"Gitlab_Runners\""),
                label.clone(),
            ],
        ),
        (
            "name of 254 characters",
            format!("  name: {name254}\n  namespace: app\n"),
            ok_data.clone(),
            vec![s("254 characters, more than 253"), subdomain.clone()],
        ),
        (
            "namespace of 64 characters",
            format!("  name: db\n  namespace: {ns64}\n"),
            ok_data.clone(),
            vec![s("64 characters, more than 63"), label.clone()],
        ),
        (
            "name with a leading '-'",
            s("  name: -db\n  namespace: app\n"),
            ok_data.clone(),
            vec![s("does not start"), subdomain.clone()],
        ),
        (
            "name with a trailing '-'",
            s("  name: db-\n  namespace: app\n"),
            ok_data.clone(),
            vec![s("does not end"), subdomain.clone()],
        ),
        (
            "name with '..'",
            s("  name: a..b\n  namespace: app\n"),
            ok_data.clone(),
            vec![s("character 3"), subdomain.clone()],
        ),
        (
            "namespace with a dot",
            s("  name: db\n  namespace: a.b\n"),
            ok_data.clone(),
            vec![s("character 2"), label.clone()],
        ),
        (
            "data key '..'",
            ok_meta.clone(),
            s("  '..': v\n"),
            vec![s("invalid data key name \"..\""), key_rule.clone()],
        ),
        (
            "data key starting with '..'",
            ok_meta.clone(),
            s("  ..x: v\n"),
            vec![s("invalid data key name \"..x\""), key_rule.clone()],
        ),
        (
            "data key with ':'",
            ok_meta.clone(),
            s("  'a:b': v\n"),
            vec![s("invalid data key name \"a:b\""), key_rule.clone()],
        ),
        (
            "label key with an uppercase prefix",
            s("  name: db\n  namespace: app\n  labels: {Example.com/team: a}\n"),
            ok_data.clone(),
            vec![
                s("invalid label key \"Example.com/team\""),
                qualified.clone(),
            ],
        ),
        (
            "label value of 63 characters",
            format!("  name: db\n  namespace: app\n  labels: {{team: {label63}}}\n"),
            ok_data.clone(),
            vec![],
        ),
        (
            "label value of 64 characters",
            format!("  name: db\n  namespace: app\n  labels: {{team: {label64}}}\n"),
            ok_data.clone(),
            vec![
                s("invalid value of label \"team\""),
                s("64 characters, more than 63"),
            ],
        ),
        (
            "label value with a trailing '.'",
            s("  name: db\n  namespace: app\n  labels: {team: a.}\n"),
            ok_data.clone(),
            vec![s("invalid value of label \"team\""), s("does not end")],
        ),
        (
            "annotation key with an uppercase prefix (lowercased before the check)",
            s("  name: db\n  namespace: app\n  annotations: {Example.com/note: a}\n"),
            ok_data.clone(),
            vec![],
        ),
        (
            "annotation key with two '/'",
            s("  name: db\n  namespace: app\n  annotations: {a/b/c: x}\n"),
            ok_data.clone(),
            vec![
                s("invalid annotation key \"a/b/c\""),
                s("more than one '/'"),
            ],
        ),
        (
            "annotations over 256 KiB",
            format!("  name: db\n  namespace: app\n  annotations: {{note: {big}}}\n"),
            ok_data.clone(),
            vec![s("the annotations total 262148 bytes")],
        ),
    ]
}

#[test]
fn seal_refuses_names_kubernetes_refuses() {
    let ws = Workspace::new();
    let first = "apiVersion: v1\nkind: Secret\nmetadata: {name: first, namespace: app}\nstringData: {a: b}\n---\n";
    for (what, metadata, data, fragments) in name_table() {
        ws.write(
            "in.yaml",
            &format!("{first}{}", secret_with(&metadata, &data)),
        );
        let _ = std::fs::remove_file(ws.path("out.yaml"));
        let output = run(
            &ws,
            &[
                "seal",
                "-r",
                &ws.recipient,
                "-f",
                "in.yaml",
                "-o",
                "out.yaml",
            ],
            None,
        );
        if fragments.is_empty() {
            assert_exit(&output, 0);
            assert_valid(&ws, "out.yaml", what);
            continue;
        }
        assert_exit(&output, 1);
        let err = stderr(&output);
        for fragment in fragments
            .iter()
            .map(String::as_str)
            .chain(["in.yaml: document 2 (line 6)"])
        {
            assert!(
                err.contains(fragment),
                "{what}: {fragment:?} missing in {err}"
            );
        }
        assert!(!ws.path("out.yaml").exists(), "{what}: output written");
    }
}

#[test]
fn flags_refuse_names_kubernetes_refuses() {
    let ws = Workspace::new();
    // (name, namespace, literal, error fragment or "" when accepted)
    // Also `--raw --key K` with the value on stdin.
    for (name, namespace, key, fragment) in [
        ("db", "app", "k", ""),
        (
            "runnerToken",
            "app",
            "k",
            "invalid metadata.name \"runnerToken\"",
        ),
        (
            "db",
            "Gitlab_Runners",
            "k",
            "invalid metadata.namespace \"Gitlab_Runners\"",
        ),
        ("db", "app", "a b", "invalid data key name \"a b\""),
    ] {
        let output = run(
            &ws,
            &[
                "seal",
                "-r",
                &ws.recipient,
                "--raw",
                "--key",
                key,
                "--name",
                name,
                "--namespace",
                namespace,
            ],
            Some("value"),
        );
        if fragment.is_empty() {
            assert_exit(&output, 0);
        } else {
            assert_exit(&output, 1);
            assert!(stderr(&output).contains(fragment), "{}", stderr(&output));
        }
    }
    let table = [
        ("db", "app", "k=v", ""),
        (
            "runnerToken",
            "app",
            "k=v",
            "invalid metadata.name \"runnerToken\"",
        ),
        (
            "db",
            "Gitlab_Runners",
            "k=v",
            "invalid metadata.namespace \"Gitlab_Runners\"",
        ),
        ("db", "app", "..=v", "invalid data key name \"..\""),
        ("db", "app", "a b=v", "invalid data key name \"a b\""),
    ];
    for (name, namespace, literal, fragment) in table {
        for raw in [false, true] {
            let mut args = vec![
                "seal",
                "-r",
                &ws.recipient,
                "--name",
                name,
                "--namespace",
                namespace,
                "--from-literal",
                literal,
            ];
            if raw {
                args.push("--raw");
            }
            let output = run(&ws, &args, None);
            if fragment.is_empty() {
                assert_exit(&output, 0);
            } else {
                assert_ne!(
                    output.status.code(),
                    Some(0),
                    "{name} {namespace} {literal} raw={raw}"
                );
                assert!(
                    stderr(&output).contains(fragment),
                    "{fragment:?} missing in {}",
                    stderr(&output)
                );
            }
        }
    }
}

/// A sealed file whose name, namespace or key was then edited by hand to
/// something Kubernetes refuses.
fn sealed_with_bad_names(ws: &Workspace) -> Vec<(&'static str, String, &'static str)> {
    let sealed = ws.seal(SECRET, &[]);
    let head = "# first\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n";
    vec![
        (
            "name",
            format!("{head}{}", sealed.replace("name: db", "name: runnerToken")),
            "invalid metadata.name \"runnerToken\"",
        ),
        (
            "namespace",
            format!(
                "{head}{}",
                sealed.replace("namespace: app", "namespace: Gitlab_Runners")
            ),
            "invalid metadata.namespace \"Gitlab_Runners\"",
        ),
        (
            "data key",
            format!(
                "{head}{}",
                sealed.replace("    password: ", "    ..password: ")
            ),
            "invalid data key name \"..password\"",
        ),
        (
            "label key",
            format!(
                "{head}{}",
                sealed.replace("team: payments", "-team: payments")
            ),
            "invalid label key \"-team\"",
        ),
    ]
}

#[test]
fn validate_inspect_merge_and_rewrap_refuse_names_kubernetes_refuses() {
    let ws = Workspace::new();
    let (_new_identity, new_recipient) = {
        let path = ws.path("new-key.txt");
        let output = run(&ws, &["keygen", "-o", path.to_str().unwrap()], None);
        assert_exit(&output, 0);
        (path, stdout(&output).trim().to_owned())
    };
    for (what, text, fragment) in sealed_with_bad_names(&ws) {
        let located = "bad.yaml: document 2 (line 6)";
        for args in [
            vec!["validate", "bad.yaml"],
            vec!["inspect", "bad.yaml"],
            vec![
                "rewrap",
                "-i",
                ws.identity.to_str().unwrap(),
                "-r",
                &new_recipient,
                "--in-place",
                "bad.yaml",
            ],
            vec![
                "seal",
                "-r",
                &ws.recipient,
                "--from-literal",
                "extra=x",
                "--merge-into",
                "bad.yaml",
            ],
        ] {
            ws.write("bad.yaml", &text);
            let output = run(&ws, &args, None);
            assert_exit(&output, 1);
            let all = format!("{}{}", stdout(&output), stderr(&output));
            assert!(
                all.contains(fragment),
                "{what}: {args:?}: {fragment:?} missing in {all}"
            );
            assert!(
                all.contains(located),
                "{what}: {args:?}: {located:?} missing in {all}"
            );
            assert_eq!(
                ws.read("bad.yaml"),
                text,
                "{what}: {args:?} changed the file"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Kind 3: what kseal writes, kseal's own tools accept.

#[test]
fn every_output_of_every_command_passes_validate() {
    let ws = Workspace::new();
    let new_key = ws.path("new-key.txt");
    let output = run(&ws, &["keygen", "-o", new_key.to_str().unwrap()], None);
    assert_exit(&output, 0);
    let new_recipient = stdout(&output).trim().to_owned();
    let empty = "apiVersion: v1\nkind: Secret\nmetadata: {name: empty, namespace: app}\n";
    let two = format!("{SECRET}---\n{}", SECRET.replace("name: db", "name: db2"));
    let r = ws.recipient.clone();
    // (output file, command): each command writes the file; then the file
    // must pass validate and inspect.
    let mut outputs: Vec<(&str, Vec<String>, Option<String>)> = Vec::new();
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    outputs.push((
        "yaml.yaml",
        args(&["seal", "-r", &r, "-o", "yaml.yaml"]),
        Some(SECRET.into()),
    ));
    outputs.push((
        "json.json",
        args(&["seal", "-r", &r, "--format", "json", "-o", "json.json"]),
        Some(SECRET.into()),
    ));
    outputs.push((
        "multi.yaml",
        args(&["seal", "-r", &r, "-o", "multi.yaml"]),
        Some(two.clone()),
    ));
    outputs.push((
        "list.json",
        args(&["seal", "-r", &r, "--format", "json", "-o", "list.json"]),
        Some(two),
    ));
    outputs.push((
        "empty.yaml",
        args(&["seal", "-r", &r, "--allow-empty-data", "-o", "empty.yaml"]),
        Some(empty.into()),
    ));
    outputs.push((
        "cluster.yaml",
        args(&[
            "seal",
            "-r",
            &r,
            "--scope",
            "cluster-wide",
            "--name",
            "reg",
            "--from-literal",
            "k=v",
            "-o",
            "cluster.yaml",
        ]),
        None,
    ));
    outputs.push((
        "nswide.yaml",
        args(&[
            "seal",
            "-r",
            &r,
            "--scope",
            "namespace-wide",
            "--name",
            "reg",
            "--namespace",
            "app",
            "--from-literal",
            "k=v",
            "-o",
            "nswide.yaml",
        ]),
        None,
    ));
    // --merge-into: replace, add, and into the empty SealedSecret.
    outputs.push((
        "yaml.yaml",
        args(&[
            "seal",
            "-r",
            &r,
            "--from-literal",
            "password=p2",
            "--merge-into",
            "yaml.yaml",
        ]),
        None,
    ));
    outputs.push((
        "json.json",
        args(&[
            "seal",
            "-r",
            &r,
            "--from-literal",
            "added=a",
            "--merge-into",
            "json.json",
        ]),
        None,
    ));
    outputs.push((
        "empty.yaml",
        args(&[
            "seal",
            "-r",
            &r,
            "--from-literal",
            "first=1",
            "--merge-into",
            "empty.yaml",
        ]),
        None,
    ));
    // rewrap, in place and to stdout.
    let id = ws.identity.to_str().unwrap().to_owned();
    outputs.push((
        "multi.yaml",
        args(&[
            "rewrap",
            "-i",
            &id,
            "-r",
            &r,
            "-r",
            &new_recipient,
            "--in-place",
            "multi.yaml",
        ]),
        None,
    ));
    for (file, command, stdin) in outputs {
        let output = run(
            &ws,
            &command.iter().map(String::as_str).collect::<Vec<_>>(),
            stdin.as_deref(),
        );
        assert_exit(&output, 0);
        assert_valid(&ws, file, &format!("{command:?}"));
    }
    // The empty SealedSecret as written.
    assert!(
        ws.read("empty.yaml").contains("first:"),
        "{}",
        ws.read("empty.yaml")
    );
    let output = run(&ws, &["seal", "-r", &r, "--allow-empty-data"], Some(empty));
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("encryptedData: {}"),
        "{}",
        stdout(&output)
    );
    ws.write("empty2.yaml", &stdout(&output));
    assert_valid(&ws, "empty2.yaml", "seal --allow-empty-data");
    // rewrap to stdout.
    let output = run(
        &ws,
        &["rewrap", "-i", &id, "-r", &new_recipient, "json.json"],
        None,
    );
    assert_exit(&output, 0);
    ws.write("rewrapped.json", &stdout(&output));
    assert_valid(&ws, "rewrapped.json", "rewrap to stdout");
    // --raw: the value, put into a SealedSecret by hand, validates and opens.
    let output = run(
        &ws,
        &[
            "seal",
            "-r",
            &r,
            "--raw",
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "k=raw-v",
        ],
        None,
    );
    assert_exit(&output, 0);
    let raw = stdout(&output).trim().to_owned();
    ws.write(
        "raw.yaml",
        &format!("apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: app\nspec:\n  encryptedData:\n    k: {raw}\n"),
    );
    assert_valid(&ws, "raw.yaml", "seal --raw");
    assert_eq!(unsealed_data(&ws, "raw.yaml")["k"], b64("raw-v"));
}

// ---------------------------------------------------------------------------
// Kind 4: users' formatting survives edits.

/// A hand-written SealedSecret with comments in every position, blank lines,
/// its own key order and every quoting style, then a second document.
fn hand_written(values: &BTreeMap<String, String>) -> String {
    format!(
        "# leading comment
apiVersion: kseal.dev/v1alpha1   # trailing on apiVersion
kind: SealedSecret

metadata:
  # under metadata
  namespace: app   # namespace before name, on purpose
  name: db
  # after name
spec:
  # above encryptedData
  encryptedData:
    # above a value
    username: {username}   # trailing on a value

    \"password\": \"{password}\"
    # between values
    binary: '{binary}'
  # after encryptedData
  scope: strict
  template:
    type: kubernetes.io/basic-auth # type comment
    metadata:
      labels: {{team: payments}}   # flow style
# end of document
---
# the next document
apiVersion: v1
kind: ConfigMap
metadata:   {{name: untouched}}   # odd spacing
",
        username = values["username"],
        password = values["password"],
        binary = values["binary"],
    )
}

fn hand_written_json(values: &BTreeMap<String, String>) -> String {
    format!(
        "{{
    \"kind\": \"SealedSecret\",
    \"apiVersion\": \"kseal.dev/v1alpha1\",
    \"metadata\": {{ \"namespace\": \"app\", \"name\": \"db\" }},
    \"spec\": {{
        \"encryptedData\": {{
            \"username\": \"{username}\",
            \"password\": \"{password}\",

            \"binary\": \"{binary}\"
        }},
        \"scope\": \"strict\"
    }}
}}
",
        username = values["username"],
        password = values["password"],
        binary = values["binary"],
    )
}

fn sealed_values(ws: &Workspace) -> BTreeMap<String, String> {
    let sealed = ws.seal(SECRET, &[]);
    ["username", "password", "binary"]
        .into_iter()
        .map(|key| (key.to_owned(), value_of(&sealed, key)))
        .collect()
}

/// The lines of `after` that differ from `before`'s (same number of lines).
fn changed_lines(before: &str, after: &str) -> Vec<usize> {
    let (a, b): (Vec<_>, Vec<_>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(a.len(), b.len(), "line count changed:\n{after}");
    assert_eq!(before.ends_with('\n'), after.ends_with('\n'));
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in\n{text}"))
}

#[test]
fn merge_into_changes_only_the_merged_value() {
    let ws = Workspace::new();
    let values = sealed_values(&ws);
    for (file, text) in [
        ("hand.yaml", hand_written(&values)),
        ("hand.json", hand_written_json(&values)),
    ] {
        // Replace a value in the middle (quoted), then one on the first line.
        for key in ["password", "username", "binary"] {
            ws.write(file, &text);
            let literal = format!("{key}=new-{key}");
            let output = run(
                &ws,
                &[
                    "seal",
                    "-r",
                    &ws.recipient,
                    "--from-literal",
                    &literal,
                    "--merge-into",
                    file,
                ],
                None,
            );
            assert_exit(&output, 0);
            assert!(
                stderr(&output).contains(&format!("sealed {key} into app/db")),
                "{}",
                stderr(&output)
            );
            let after = ws.read(file);
            let line = line_of(&text, &values[key]);
            assert_eq!(
                changed_lines(&text, &after),
                vec![line],
                "{file} {key}:\n{after}"
            );
            // The line differs only in the value.
            let (old_line, new_line) = (
                text.lines().nth(line).unwrap(),
                after.lines().nth(line).unwrap(),
            );
            let new_value = value_of_line(new_line);
            assert_eq!(
                new_line.replace(&new_value, ""),
                old_line.replace(&values[key], "")
            );
            let data = unsealed_data(&ws, file);
            assert_eq!(data[key], b64(&format!("new-{key}")));
            assert_eq!(data.len(), 3);
            assert_valid(&ws, file, "merge-into");
        }
        // Add a key: one line (YAML) or member (JSON) more, after the last
        // value; removing it gives the original back.
        ws.write(file, &text);
        let output = run(
            &ws,
            &[
                "seal",
                "-r",
                &ws.recipient,
                "--from-literal",
                "token=t0k",
                "--merge-into",
                file,
            ],
            None,
        );
        assert_exit(&output, 0);
        assert!(
            stderr(&output).contains("sealed token into app/db"),
            "{}",
            stderr(&output)
        );
        let after = ws.read(file);
        let added: Vec<&str> = after
            .lines()
            .filter(|line| line.contains("token"))
            .collect();
        assert_eq!(added.len(), 1, "{after}");
        let restored = if file.ends_with(".json") {
            after.replace(&format!(",\n{}", added[0]), "")
        } else {
            after.replace(&format!("{}\n", added[0]), "")
        };
        assert_eq!(
            restored, text,
            "{file}: more than the added key changed:\n{after}"
        );
        let binary_line = line_of(&after, &values["binary"]);
        assert_eq!(line_of(&after, "token"), binary_line + 1, "{after}");
        let data = unsealed_data(&ws, file);
        assert_eq!(data["token"], b64("t0k"));
        assert_eq!(data.len(), 4);
        assert_valid(&ws, file, "merge-into (add)");
    }
}

/// The sealed value in a line (`kseal:v2:…` up to a quote or space).
fn value_of_line(line: &str) -> String {
    let start = line.find("kseal:v2:").unwrap();
    line[start..]
        .split(['"', '\'', ' '])
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn rewrap_in_place_changes_only_the_values() {
    let ws = Workspace::new();
    let new_key = ws.path("new-key.txt");
    let output = run(&ws, &["keygen", "-o", new_key.to_str().unwrap()], None);
    assert_exit(&output, 0);
    let new_recipient = stdout(&output).trim().to_owned();
    let values = sealed_values(&ws);
    for (file, text) in [
        ("hand.yaml", hand_written(&values)),
        ("hand.json", hand_written_json(&values)),
    ] {
        ws.write(file, &text);
        let output = run(
            &ws,
            &[
                "rewrap",
                "-i",
                ws.identity.to_str().unwrap(),
                "-r",
                &new_recipient,
                "--in-place",
                file,
            ],
            None,
        );
        assert_exit(&output, 0);
        let after = ws.read(file);
        let mut expected: Vec<usize> = values.values().map(|value| line_of(&text, value)).collect();
        expected.sort();
        assert_eq!(changed_lines(&text, &after), expected, "{file}:\n{after}");
        for line in expected {
            let (old_line, new_line) = (
                text.lines().nth(line).unwrap(),
                after.lines().nth(line).unwrap(),
            );
            let new_value = value_of_line(new_line);
            let old_value = value_of_line(old_line);
            assert_ne!(new_value, old_value);
            assert_eq!(
                new_line.replace(&new_value, "V"),
                old_line.replace(&old_value, "V")
            );
        }
        // Opens with the new key only.
        let first = after.split("\n---\n").next().unwrap().to_owned() + "\n";
        let first_file = if file.ends_with(".json") {
            "first.json"
        } else {
            "first.yaml"
        };
        ws.write(first_file, &first);
        let output = run(
            &ws,
            &["unseal", "-i", new_key.to_str().unwrap(), "-f", first_file],
            None,
        );
        assert_exit(&output, 0);
        assert_valid(&ws, file, "rewrap --in-place");
    }
}
