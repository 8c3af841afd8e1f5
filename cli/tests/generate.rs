//! Generated values through the real binary: `kseal seal --generate`
//! (alone, with other sources, with -f, with --merge-into) and `kseal
//! regenerate` (--key, --due), and their errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Workspace, assert_exit, stderr, stdout, unsealed_values, value_of};
use kseal_shared::binding::{Binding, Scope};
use kseal_shared::envelope::{SealedValue, seal_at};
use kseal_shared::x25519::Recipient;

const DAY: u64 = 86_400;

fn now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap()
}

fn is_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b"0123456789abcdef".contains(b))
}

/// `--generate` alone and with a literal: each form unseals to a value of
/// that form, recorded in spec.generated; two runs draw different values.
#[test]
fn generated_values_unseal_to_their_form() {
    let ws = Workspace::new();
    let seal = || {
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
            .args(["--from-literal", "username=admin"])
            .args(["--generate", "hex=hex:16", "--generate", "b64=base64:10"])
            .args(["--generate", "an=alnum:40", "--generate", "id=uuid"])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        stdout(&output)
    };
    let sealed = seal();
    assert!(
        sealed.contains(
            "  generated:\n    an: alnum:40\n    b64: base64:10\n    hex: hex:16\n    id: uuid\n"
        ),
        "{sealed}"
    );
    let values = unsealed_values(&ws, &sealed);
    assert_eq!(values["username"], b"admin");
    assert_eq!(values["hex"].len(), 32);
    assert!(is_hex(&values["hex"]));
    {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&values["b64"])
            .unwrap();
        assert_eq!(decoded.len(), 10);
    }
    assert_eq!(values["an"].len(), 40);
    assert!(values["an"].iter().all(u8::is_ascii_alphanumeric));
    let id = std::str::from_utf8(&values["id"]).unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "{id}");
    assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    // Fresh every time.
    let again = unsealed_values(&ws, &seal());
    for key in ["hex", "b64", "an", "id"] {
        assert_ne!(values[key], again[key], "{key}");
    }
}

/// A generated value appears nowhere but sealed: not on stdout or stderr,
/// not in the file written, and no other file is left.
#[test]
fn generated_values_are_never_shown() {
    let ws = Workspace::new();
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
        .args(["--generate", "password=alnum:32", "-o", "db.yaml", "-v"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = ws.read("db.yaml");
    let value = unsealed_values(&ws, &sealed).remove("password").unwrap();
    let text = String::from_utf8(value).unwrap();
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&text)
    };
    for place in [&stdout(&output), &stderr(&output), &sealed] {
        assert!(
            !place.contains(&text) && !place.contains(&encoded),
            "{place}"
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(ws.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["db.yaml", "key.txt"]);
    // Through --merge-into and regenerate too.
    for args in [
        vec![
            "seal",
            "--name",
            "db",
            "--namespace",
            "app",
            "--generate",
            "token=hex:32",
            "--merge-into",
            "db.yaml",
        ],
        vec!["regenerate", "--key", "token", "--in-place", "db.yaml"],
        vec!["regenerate", "--key", "token", "db.yaml"],
    ] {
        let output = ws
            .cmd()
            .args(&args)
            .args(["-r", &ws.recipient])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        // The result: the file, or (without --in-place) stdout.
        let (sealed, shown) = if args.contains(&"db.yaml")
            && args[0] == "regenerate"
            && !args.contains(&"--in-place")
        {
            (stdout(&output), stderr(&output))
        } else {
            assert!(stdout(&output).is_empty());
            (ws.read("db.yaml"), stderr(&output))
        };
        let token =
            String::from_utf8(unsealed_values(&ws, &sealed).remove("token").unwrap()).unwrap();
        assert_eq!(token.len(), 64);
        assert!(is_hex(token.as_bytes()));
        assert!(
            !shown.contains(&token) && !sealed.contains(&token),
            "{args:?}"
        );
    }
}

/// With -f the generated values join the manifest's one Secret.
#[test]
fn generate_with_a_manifest() {
    let ws = Workspace::new();
    // `-f -`: without -f, --generate builds the Secret from flags (as
    // --from-literal does) and stdin is not read.
    let sealed = ws.seal(
        common::SECRET,
        &["-f", "-", "--generate", "api-key=base64:24"],
    );
    assert!(
        sealed.contains("  generated:\n    api-key: base64:24\n"),
        "{sealed}"
    );
    let values = unsealed_values(&ws, &sealed);
    assert_eq!(values["password"], b"hunter2-canary");
    assert_eq!(values["api-key"].len(), 32);
    // Two Secrets: which one would get it? Refused.
    let two = format!(
        "{}---\n{}",
        common::SECRET,
        common::SECRET.replace("name: db", "name: db2")
    );
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "-f",
            "-",
            "--generate",
            "k=uuid",
        ])
        .write_stdin(two)
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--generate adds to one Secret; <stdin> holds 2"));
    // A key the manifest has already.
    let output = ws
        .cmd()
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "-f",
            "-",
            "--generate",
            "password=uuid",
        ])
        .write_stdin(common::SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output)
            .contains("--generate password: <stdin> has a value for \"password\" already"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}

/// `--merge-into` with `--generate`: the new value and its record are
/// added, every other byte stays; a key then sealed from another source
/// loses its record (and `generated:` goes with its last record).
#[test]
fn merge_into_records_generated_values() {
    let ws = Workspace::new();
    let sealed = ws.seal(common::SECRET, &[]);
    // Comments and a blank line, which the edit must keep.
    let original = sealed.replace("spec:\n", "# the database\nspec:\n\n");
    ws.write("db.yaml", &original);
    let before = unsealed_values(&ws, &original);
    let merge = |args: &[&str]| {
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
            .args(args)
            .args(["--merge-into", "db.yaml"])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        output
    };
    let output = merge(&["--generate", "api=hex:32"]);
    assert!(
        stderr(&output).contains("sealed api into app/db; generated: api (hex:32)"),
        "{}",
        stderr(&output)
    );
    let merged = ws.read("db.yaml");
    let api_line = format!("    api: {}\n", value_of(&merged, "api"));
    let last_value = format!("    username: {}\n", value_of(&original, "username"));
    assert_eq!(
        merged,
        original.replace(
            &last_value,
            &format!("{last_value}{api_line}  generated:\n    api: hex:32\n")
        )
    );
    let after = unsealed_values(&ws, &merged);
    assert_eq!(after["api"].len(), 64);
    assert!(is_hex(&after["api"]));
    for (key, value) in &before {
        assert_eq!(&after[key], value, "{key}");
    }

    // A second generated key joins the record; `password` is generated now.
    merge(&["--generate", "password=alnum:20"]);
    let merged2 = ws.read("db.yaml");
    let password_line = |text: &str| format!("    password: {}\n", value_of(text, "password"));
    assert_eq!(
        merged2,
        merged
            .replace(&password_line(&merged), &password_line(&merged2))
            .replace(
                "    api: hex:32\n",
                "    api: hex:32\n    password: alnum:20\n"
            )
    );

    // Sealed from a literal: the record of password goes, api's stays.
    let output = merge(&["--from-literal", "password=chosen"]);
    assert!(stderr(&output).contains("no longer recorded as generated: password"));
    let merged3 = ws.read("db.yaml");
    assert_eq!(
        merged3,
        merged2
            .replace(&password_line(&merged2), &password_line(&merged3))
            .replace("    password: alnum:20\n", "")
    );
    assert_eq!(unsealed_values(&ws, &merged3)["password"], b"chosen");

    // The last record goes: `generated:` too, and the file is the original
    // with the new values.
    merge(&["--from-literal", "api=chosen"]);
    let merged4 = ws.read("db.yaml");
    let api_line4 = format!("    api: {}\n", value_of(&merged4, "api"));
    assert_eq!(
        merged4,
        original
            .replace(&password_line(&original), &password_line(&merged3))
            .replace(&last_value, &format!("{last_value}{api_line4}"))
    );
}

/// `regenerate --key` replaces that value only: every other byte of the
/// file stays; without --in-place the result goes to stdout and the file
/// is untouched.
#[test]
fn regenerate_a_named_key() {
    let ws = Workspace::new();
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
        .args(["--from-literal", "username=admin"])
        .args([
            "--generate",
            "password=alnum:16",
            "--generate",
            "token=uuid",
        ])
        .args(["--scope", "namespace-wide", "-o", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let original = format!("# keep\n{}", ws.read("db.yaml"));
    ws.write("db.yaml", &original);
    let before = unsealed_values(&ws, &original);

    // To stdout.
    let output = ws
        .cmd()
        .args([
            "regenerate",
            "-r",
            &ws.recipient,
            "--key",
            "password",
            "db.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(ws.read("db.yaml"), original);
    let printed = stdout(&output);
    let line = |text: &str| format!("    password: {}\n", value_of(text, "password"));
    assert_ne!(line(&printed), line(&original));
    assert_eq!(printed, original.replace(&line(&original), &line(&printed)));
    assert!(
        stderr(&output).contains(
            "regenerated db.yaml: document 1 (line 1): app/db: password (alnum:16): named with --key"
        ),
        "{}",
        stderr(&output)
    );

    // In place.
    let output = ws
        .cmd()
        .args([
            "regenerate",
            "-r",
            &ws.recipient,
            "--key",
            "password",
            "--in-place",
            "db.yaml",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty());
    let rewritten = ws.read("db.yaml");
    assert_eq!(
        rewritten,
        original.replace(&line(&original), &line(&rewritten))
    );
    let after = unsealed_values(&ws, &rewritten);
    assert_ne!(after["password"], before["password"]);
    assert_eq!(after["password"].len(), 16);
    assert!(after["password"].iter().all(u8::is_ascii_alphanumeric));
    assert_eq!(after["token"], before["token"]);
    assert_eq!(after["username"], before["username"]);
    // Bound as before: the scope is kept (namespace-wide opens under
    // another name in the namespace; strict would not).
    let renamed = rewritten.replace("  name: db\n", "  name: other\n");
    assert_eq!(
        unsealed_values(&ws, &renamed)["password"],
        after["password"]
    );
}

/// A SealedSecret `app/db` with each value sealed `days` ago (by the
/// library, as a value sealed then would be), `spec.generated` as given,
/// and `spec.maxAge` when given.
fn aged(
    recipient: &str,
    values: &[(&str, u64)],
    generated: &[(&str, &str)],
    max_age: Option<&str>,
) -> (String, BTreeMap<String, String>) {
    let recipient: Recipient = recipient.parse().unwrap();
    let mut out = String::from(
        "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: app\nspec:\n  encryptedData:\n",
    );
    let mut plaintexts = BTreeMap::new();
    for (key, days) in values {
        let plaintext = format!("old-{key}");
        let binding = Binding::new(Scope::Strict, "app", "db", key);
        let value = seal_at(
            plaintext.as_bytes(),
            &binding,
            std::slice::from_ref(&recipient),
            now() - days * DAY,
        )
        .unwrap();
        out.push_str(&format!("    {key}: {}\n", value.encode()));
        plaintexts.insert((*key).to_owned(), plaintext);
    }
    if !generated.is_empty() {
        out.push_str("  generated:\n");
        for (key, spec) in generated {
            out.push_str(&format!("    {key}: {spec}\n"));
        }
    }
    if let Some(max_age) = max_age {
        out.push_str(&format!("  maxAge: {max_age}\n"));
    }
    out.push_str("  scope: strict\n");
    (out, plaintexts)
}

/// `--due` replaces exactly the generated values older than the max age
/// (spec.maxAge here), lists the due values kseal did not generate, and
/// leaves every other byte.
#[test]
fn due_regenerates_exactly_the_overdue_generated_values() {
    let ws = Workspace::new();
    let (original, plaintexts) = aged(
        &ws.recipient,
        &[
            ("gen-old", 120),
            ("gen-fresh", 10),
            ("manual-old", 200),
            ("manual-fresh", 1),
        ],
        &[("gen-fresh", "uuid"), ("gen-old", "hex:8")],
        Some("90d"),
    );
    ws.write("repo/db.yaml", &original);
    let output = ws
        .cmd()
        .args([
            "regenerate",
            "--due",
            "--in-place",
            "-r",
            &ws.recipient,
            "repo",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let err = stderr(&output);
    let rewritten = ws.read("repo/db.yaml");
    let line = |text: &str| format!("    gen-old: {}\n", value_of(text, "gen-old"));
    assert_ne!(line(&rewritten), line(&original));
    assert_eq!(
        rewritten,
        original.replace(&line(&original), &line(&rewritten))
    );
    let values = unsealed_values(&ws, &rewritten);
    assert_eq!(values["gen-old"].len(), 16);
    assert!(is_hex(&values["gen-old"]));
    for key in ["gen-fresh", "manual-old", "manual-fresh"] {
        assert_eq!(values[key], plaintexts[key].as_bytes(), "{key}");
    }
    // The new value is sealed now.
    let sealed_at = SealedValue::parse(&value_of(&rewritten, "gen-old"))
        .unwrap()
        .sealed_at_seconds();
    assert!(now() - sealed_at < 600);
    assert!(
        err.contains(
            "app/db: gen-old (hex:8): due: sealed 120 days ago (max age 90d, spec.maxAge)"
        ),
        "{err}"
    );
    assert!(
        err.contains("app/db: manual-old: due, sealed 200 days ago (max age 90d, spec.maxAge); not generated by kseal"),
        "{err}"
    );
    assert!(
        err.contains("1 value(s) due but not generated by kseal"),
        "{err}"
    );
    assert!(err.contains("1 value(s) regenerated in 1 file(s)"), "{err}");
    for key in ["gen-fresh", "manual-fresh"] {
        assert!(!err.contains(&format!("db: {key}")), "{key}: {err}");
    }

    // Run again: nothing is due among the generated values; nothing changes.
    let output = ws
        .cmd()
        .args([
            "regenerate",
            "--due",
            "--in-place",
            "-r",
            &ws.recipient,
            "repo",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(ws.read("repo/db.yaml"), rewritten);
    assert!(stderr(&output).contains("0 value(s) regenerated in 0 file(s)"));
}

/// The max age and the recipients come from `.kseal.yaml` as for `kseal
/// check --rotation` and `kseal seal`; `--max-age` overrides the age.
#[test]
fn due_follows_kseal_yaml_rules_and_max_age() {
    let ws = Workspace::new();
    ws.write(
        "repo/.kseal.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^apps/\n    recipients: [{}]\n    max_age: 30d\n",
            ws.recipient
        ),
    );
    std::fs::create_dir_all(ws.path("repo/.git")).unwrap();
    let (original, _) = aged(
        &ws.recipient,
        &[("a", 40), ("b", 20)],
        &[("a", "alnum:8"), ("b", "alnum:8")],
        None,
    );
    ws.write("repo/apps/db.yaml", &original);
    let run = |extra: &[&str]| {
        let output = ws
            .cmd()
            .current_dir(ws.path("repo"))
            .args(["regenerate", "--due", "--in-place"])
            .args(extra)
            .arg(".")
            .output()
            .unwrap();
        assert_exit(&output, 0);
        output
    };
    let output = run(&[]);
    assert!(
        stderr(&output).contains("a (alnum:8): due: sealed 40 days ago (max age 30d, .kseal.yaml)"),
        "{}",
        stderr(&output)
    );
    let first = ws.read("repo/apps/db.yaml");
    assert_ne!(value_of(&first, "a"), value_of(&original, "a"));
    assert_eq!(value_of(&first, "b"), value_of(&original, "b"));
    // Sealed to the rule's recipient: the workspace's key opens it.
    assert_eq!(unsealed_values(&ws, &first)["a"].len(), 8);
    // --max-age 10d: b is due now too.
    let output = run(&["--max-age", "10d"]);
    assert!(
        stderr(&output).contains("b (alnum:8): due: sealed 20 days ago (max age 10d, --max-age)")
    );
    let second = ws.read("repo/apps/db.yaml");
    assert_eq!(value_of(&second, "a"), value_of(&first, "a"));
    assert_ne!(value_of(&second, "b"), value_of(&first, "b"));
}

/// A scheduled job on a tree where nothing is due: exit 0, no file
/// written (the same inode), nothing on stdout.
#[cfg(unix)]
#[test]
fn nothing_due_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let ws = Workspace::new();
    let (fresh, _) = aged(&ws.recipient, &[("a", 1)], &[("a", "uuid")], Some("90d"));
    ws.write("repo/a/db.yaml", &fresh);
    let (no_rule, _) = aged(&ws.recipient, &[("a", 900)], &[("a", "uuid")], None);
    ws.write("repo/b/db.yaml", &no_rule);
    ws.write(
        "repo/c/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let inodes = |ws: &Workspace| -> Vec<u64> {
        ["repo/a/db.yaml", "repo/b/db.yaml", "repo/c/other.yaml"]
            .iter()
            .map(|file| std::fs::metadata(ws.path(file)).unwrap().ino())
            .collect()
    };
    let before = inodes(&ws);
    let output = ws
        .cmd()
        .args([
            "regenerate",
            "--due",
            "--in-place",
            "-r",
            &ws.recipient,
            "repo",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).contains("0 value(s) regenerated in 0 file(s)"));
    assert_eq!(inodes(&ws), before);
    assert_eq!(ws.read("repo/a/db.yaml"), fresh);
    assert_eq!(ws.read("repo/b/db.yaml"), no_rule);
}

/// Errors, with their exit codes; nothing is written and no value shown.
#[test]
fn errors_name_what_is_wrong() {
    let ws = Workspace::new();
    let seal = |args: &[&str]| {
        ws.cmd()
            .args([
                "seal",
                "-r",
                &ws.recipient,
                "--name",
                "db",
                "--namespace",
                "app",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    // Bad specs: usage errors (2), naming the rule; what may be a value is
    // never shown.
    for (spec, message) in [
        (
            "hex:0",
            "generator \"hex:0\": N must be a whole number from 1 to 4096",
        ),
        ("alnum:4097", "generator \"alnum:4097\": N must be"),
        ("uuid:4", "uuid takes no length"),
        ("hunter2-canary", "not a generator (the text is not shown"),
        ("hex:hunter2-canary", "generator \"hex:N\": N must be"),
    ] {
        let output = seal(&["--generate", &format!("password={spec}"), "-o", "out.yaml"]);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(message),
            "{spec}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
        assert!(!ws.path("out.yaml").exists());
    }
    let output = seal(&["--generate", "hunter2-canary"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--generate expects KEY=SPEC"));
    assert!(!stderr(&output).contains("hunter2"));
    // One source per key.
    let output = seal(&["--generate", "a=uuid", "--generate", "a=hex:1"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--generate: key \"a\" given twice"));
    let output = seal(&["--from-literal", "a=x", "--generate", "a=uuid"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--generate a: another flag gives a value for \"a\" already"));
    let output = seal(&["--generate", "a/b=uuid"]);
    assert_exit(&output, 2);
    let output = seal(&["--raw", "--generate", "a=uuid"]);
    assert_exit(&output, 2);

    // regenerate.
    let output = seal(&[
        "--from-literal",
        "user=admin",
        "--generate",
        "pw=hex:4",
        "-o",
        "db.yaml",
    ]);
    assert_exit(&output, 0);
    let original = ws.read("db.yaml");
    let regenerate = |args: &[&str]| {
        ws.cmd()
            .args(["regenerate", "-r", &ws.recipient])
            .args(args)
            .output()
            .unwrap()
    };
    let output = regenerate(&["--key", "user", "--in-place", "db.yaml"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output)
            .contains("app/db: --key user: the value of \"user\" was not generated by kseal"),
        "{}",
        stderr(&output)
    );
    let output = regenerate(&["--key", "pw", "--key", "nope", "--in-place", "db.yaml"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output)
            .contains("--key nope: no SealedSecret given has a generated value \"nope\""),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("nothing was regenerated or written"));
    assert_eq!(ws.read("db.yaml"), original);
    // Without stdout on failure.
    let output = regenerate(&["--key", "pw", "--key", "user", "db.yaml"]);
    assert_exit(&output, 1);
    assert!(stdout(&output).is_empty());
    // A record that does not parse.
    ws.write("bad.yaml", &original.replace("pw: hex:4", "pw: hex:0"));
    let output = regenerate(&["--key", "pw", "bad.yaml"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("spec.generated.pw: generator \"hex:0\""),
        "{}",
        stderr(&output)
    );
    // Usage errors.
    for args in [
        &["db.yaml"][..],
        &["--key", "pw", "."][..],
        &["--key", "a/b", "db.yaml"][..],
        &["--max-age", "30d", "--key", "pw", "db.yaml"][..],
    ] {
        let output = regenerate(args);
        assert_exit(&output, 2);
        assert!(stdout(&output).is_empty());
    }
    assert_eq!(ws.read("db.yaml"), original);
}
