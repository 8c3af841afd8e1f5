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
            .args(["--generate", "hex=hex:16", "--generate", "b64=base64:20"])
            .args(["--generate", "an=alnum:40", "--generate", "id=uuid"])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        stdout(&output)
    };
    let sealed = seal();
    assert!(
        sealed.contains(
            "  generated:\n    an: alnum:40\n    b64: base64:20\n    hex: hex:16\n    id: uuid\n"
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
        assert_eq!(decoded.len(), 20);
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
    merge(&["--generate", "password=alnum:30"]);
    let merged2 = ws.read("db.yaml");
    let password_line = |text: &str| format!("    password: {}\n", value_of(text, "password"));
    assert_eq!(
        merged2,
        merged
            .replace(&password_line(&merged), &password_line(&merged2))
            .replace(
                "    api: hex:32\n",
                "    api: hex:32\n    password: alnum:30\n"
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
            .replace("    password: alnum:30\n", "")
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
            "password=alnum:24",
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
            "regenerated db.yaml: document 1 (line 1): app/db: password (alnum:24): named with --key"
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
    assert_eq!(after["password"].len(), 24);
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
        &[("gen-fresh", "uuid"), ("gen-old", "hex:16")],
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
    assert_eq!(values["gen-old"].len(), 32);
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
            "app/db: gen-old (hex:16): due: sealed 120 days ago (max age 90d, spec.maxAge)"
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
        &[("a", "alnum:22"), ("b", "alnum:22")],
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
        stderr(&output)
            .contains("a (alnum:22): due: sealed 40 days ago (max age 30d, .kseal.yaml)"),
        "{}",
        stderr(&output)
    );
    let first = ws.read("repo/apps/db.yaml");
    assert_ne!(value_of(&first, "a"), value_of(&original, "a"));
    assert_eq!(value_of(&first, "b"), value_of(&original, "b"));
    // Sealed to the rule's recipient: the workspace's key opens it.
    assert_eq!(unsealed_values(&ws, &first)["a"].len(), 22);
    // --max-age 10d: b is due now too.
    let output = run(&["--max-age", "10d"]);
    assert!(
        stderr(&output).contains("b (alnum:22): due: sealed 20 days ago (max age 10d, --max-age)")
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
    assert!(
        stderr(&output).contains("0 value(s) regenerated in 0 file(s); no file written"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("rewritten"),
        "{}",
        stderr(&output)
    );
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
    let output = seal(&["--generate", "a=uuid", "--generate", "a=hex:16"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--generate: key \"a\" given twice"));
    let output = seal(&["--from-literal", "a=x", "--generate", "a=uuid"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--generate a: --from-literal gives a value for \"a\" already"),
        "{}",
        stderr(&output)
    );
    // The clash names the flag (and its file) that gave the key.
    ws.write("app.env", "USER=app\nPASSWORD=hunter2-canary\n");
    ws.write("pw.txt", "hunter2-canary");
    for (flag, source, message) in [
        (
            "--from-env-file",
            "app.env",
            "--generate PASSWORD: --from-env-file app.env gives a value for \"PASSWORD\" already",
        ),
        (
            "--from-file",
            "PASSWORD=pw.txt",
            "--generate PASSWORD: --from-file PASSWORD=pw.txt gives a value for \"PASSWORD\" already",
        ),
    ] {
        let output = seal(&[
            "--from-literal",
            "x=y",
            flag,
            source,
            "--generate",
            "PASSWORD=uuid",
        ]);
        assert_exit(&output, 2);
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
        assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
    }
    // --merge-into a file that does not exist: -o creates one.
    let output = seal(&["--generate", "a=uuid", "--merge-into", "nope.yaml"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(
            "nope.yaml: cannot read: No such file or directory (os error 2) (--merge-into adds to an existing SealedSecret file; to create a new one, use -o nope.yaml instead)"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!ws.path("nope.yaml").exists());
    let output = seal(&["--generate", "a/b=uuid"]);
    assert_exit(&output, 2);
    let output = seal(&["--raw", "--generate", "a=uuid"]);
    assert_exit(&output, 2);

    // regenerate.
    let output = seal(&[
        "--from-literal",
        "user=admin",
        "--generate",
        "pw=hex:16",
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
    ws.write("bad.yaml", &original.replace("pw: hex:16", "pw: hex:0"));
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
    // Neither --key nor --due: one of them is required, and both are named.
    let output = regenerate(&["db.yaml"]);
    assert!(
        stderr(&output)
            .contains("the following required arguments were not provided:\n  <--key <KEY>|--due>"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("db.yaml"), original);
}

/// Without -f, --generate and --from-* build the Secret from flags and do
/// not read stdin: a manifest redirected from a file is refused (a usage
/// error, nothing written), one piped in is warned about, never silently
/// dropped; an empty stdin is fine.
#[test]
fn a_manifest_piped_without_f_is_refused_not_dropped() {
    let ws = Workspace::new();
    let original = ws.seal(common::SECRET, &[]);
    ws.write("db.yaml", &original);
    let seal = || {
        let mut command = ws.cmd();
        command.args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
        ]);
        command
    };
    // A pipe: whether data will come cannot be known without waiting for
    // a writer that may never close it, so it is not read; a warning says
    // what was not read, and the Secret from flags is sealed.
    for (index, (flags, says)) in [
        (
            &["--generate", "token=uuid"][..],
            "Pass -f - to add the generated values to the piped manifest",
        ),
        (
            &["--from-literal", "token=x"][..],
            "To seal a piped manifest, pass -f - without --from-*",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let out = format!("out-{index}.yaml");
        let output = seal()
            .args(flags)
            .args(["-o", &out])
            .write_stdin(common::SECRET)
            .output()
            .unwrap();
        assert_exit(&output, 0);
        let err = stderr(&output);
        assert!(
            err.contains("kseal: warning: stdin is a pipe and is not read: "),
            "{flags:?}: {err}"
        );
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(ws.path(&out).exists());
    }
    // Stdin redirected from a file that holds data: refused, nothing written.
    ws.write("secret.yaml", common::SECRET);
    ws.write("empty.yaml", "");
    let from_file = |file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kseal"))
            .current_dir(ws.dir.path())
            .env_remove("KUBECONFIG")
            .args(["seal", "-r", &ws.recipient, "--name", "db", "--namespace"])
            .args(["app", "--generate", "token=uuid"])
            .stdin(std::fs::File::open(ws.path(file)).unwrap())
            .output()
            .unwrap()
    };
    assert_exit(&from_file("secret.yaml"), 2);
    // Empty stdin (a pipe closed without data, an empty file): nothing is
    // dropped, so the Secret is built from flags.
    assert_exit(&from_file("empty.yaml"), 0);
    let output = seal()
        .args(["--generate", "token=uuid"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("    token: uuid\n"));
    // With -f - the piped manifest gets the generated value.
    let output = seal()
        .args(["-f", "-", "--generate", "token=uuid"])
        .write_stdin(common::SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let values = unsealed_values(&ws, &stdout(&output));
    assert_eq!(values["password"], b"hunter2-canary");
    assert_eq!(values["token"].len(), 36);
}

/// A Secret built from flags without --name or --namespace: one usage
/// error (exit 2), on one line.
#[test]
fn missing_names_are_one_usage_error() {
    let ws = Workspace::new();
    // stdin closed, as from a terminal or </dev/null: no warning about a
    // pipe (assert_cmd always pipes stdin).
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kseal"))
            .current_dir(ws.dir.path())
            .env_remove("KUBECONFIG")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let output = run(&["seal", "-r", &ws.recipient, "--generate", "token=uuid"]);
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert_eq!(
        err,
        "kseal: error: --name is required (the Secret built from flags has no name); --namespace is required by scope strict (or use --scope cluster-wide)\nRun 'kseal --help' for usage.\n"
    );
    let output = run(&[
        "seal",
        "-r",
        &ws.recipient,
        "--name",
        "db",
        "--from-literal",
        "a=b",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).starts_with(
            "kseal: error: --namespace is required by scope strict (or use --scope cluster-wide)\n"
        ),
        "{}",
        stderr(&output)
    );
}

/// `regenerate` on a tree without a SealedSecret says so, claims no
/// rewrite, and passes, as `rewrap` and `check` do on such a tree.
#[test]
fn regenerate_says_when_there_is_no_sealed_secret() {
    let ws = Workspace::new();
    ws.write(
        "repo/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    std::fs::create_dir_all(ws.path("empty")).unwrap();
    for (path, files) in [("repo", 1), ("empty", 0)] {
        let output = ws
            .cmd()
            .args([
                "regenerate",
                "--due",
                "--in-place",
                "-r",
                &ws.recipient,
                path,
            ])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        let err = stderr(&output);
        assert_eq!(
            err,
            format!(
                "kseal: no SealedSecret found in {path} ({files} file(s) read): nothing to regenerate, no file written\n"
            )
        );
        assert!(stdout(&output).is_empty());
        for command in [
            &[
                "rewrap",
                "-i",
                "key.txt",
                "-r",
                &ws.recipient,
                "--in-place",
                path,
            ][..],
            &["check", "--rotation", path][..],
        ] {
            assert_exit(&ws.cmd().args(command).output().unwrap(), 0);
        }
    }
    // --key there: the key is not found, which fails.
    let output = ws
        .cmd()
        .args([
            "regenerate",
            "--key",
            "pw",
            "--in-place",
            "-r",
            &ws.recipient,
            "repo",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no SealedSecret found in repo"),
        "{}",
        stderr(&output)
    );
}

/// `--rollout` and `--max-age` write spec.rollout and spec.maxAge: on a new
/// SealedSecret, and with --merge-into in place (only those lines); inspect
/// shows them and which values are generated, as text and JSON.
#[test]
fn rollout_and_max_age_are_set_and_inspected() {
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
        .args([
            "--from-literal",
            "username=app",
            "--generate",
            "pw=alnum:24",
        ])
        .args(["--rollout", "EnvConsumers", "--max-age", "30d"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = stdout(&output);
    assert!(
        sealed.contains("  maxAge: 30d\n  rollout: EnvConsumers\n  generated:\n    pw: alnum:24\n"),
        "{sealed}"
    );
    // With -f, and --max-age over the .kseal.yaml rule's max_age.
    ws.write(
        ".kseal.yaml",
        &format!(
            "creation_rules:\n  - recipients: [{}]\n    max_age: 90d\n",
            ws.recipient
        ),
    );
    let seal_by_rule = |flags: &[&str]| {
        let output = ws
            .cmd()
            .args(["seal", "-f", "-"])
            .args(flags)
            .write_stdin(common::SECRET)
            .output()
            .unwrap();
        assert_exit(&output, 0);
        stdout(&output)
    };
    let sealed = seal_by_rule(&["--rollout", "AllConsumers"]);
    assert!(
        sealed.contains("  maxAge: 90d\n  rollout: AllConsumers\n"),
        "{sealed}"
    );
    let sealed = seal_by_rule(&["--max-age", "2w"]);
    assert!(sealed.contains("  maxAge: 2w\n"), "{sealed}");
    assert!(!sealed.contains("rollout"), "{sealed}");
    std::fs::remove_file(ws.path(".kseal.yaml")).unwrap();
    // Values it does not take: usage errors.
    for flags in [
        &["--rollout", "envconsumers"][..],
        &["--rollout", "None"][..],
        &["--max-age", "90"][..],
        &[
            "--raw",
            "--rollout",
            "EnvConsumers",
            "--from-literal",
            "a=b",
        ][..],
    ] {
        let output = ws
            .cmd()
            .args(["seal", "-r", &ws.recipient, "--name", "db", "-n", "app"])
            .args(flags)
            .output()
            .unwrap();
        assert_exit(&output, 2);
    }
    let output = ws.cmd().args(["seal", "--rollout", "x"]).output().unwrap();
    assert!(
        stderr(&output).contains("[possible values: EnvConsumers, AllConsumers]"),
        "{}",
        stderr(&output)
    );

    // --merge-into: the fields are added after encryptedData, then replaced
    // in place; every other byte stays.
    let original = ws
        .seal(common::SECRET, &[])
        .replace("spec:\n", "# the database\nspec:\n");
    ws.write("db.yaml", &original);
    let merge = |flags: &[&str]| {
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
            .args(flags)
            .args(["--merge-into", "db.yaml"])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        stderr(&output)
    };
    let err = merge(&[
        "--generate",
        "token=hex:16",
        "--rollout",
        "AllConsumers",
        "--max-age",
        "13w",
    ]);
    assert!(
        err.contains(
            "sealed token into app/db; generated: token (hex:16); set spec.maxAge: 13w, spec.rollout: AllConsumers"
        ),
        "{err}"
    );
    let merged = ws.read("db.yaml");
    let last_value = format!("    username: {}\n", value_of(&original, "username"));
    let token_line = format!("    token: {}\n", value_of(&merged, "token"));
    assert_eq!(
        merged,
        original.replace(
            &last_value,
            &format!(
                "{last_value}{token_line}  maxAge: 13w\n  rollout: AllConsumers\n  generated:\n    token: hex:16\n"
            )
        )
    );
    let err = merge(&[
        "--from-literal",
        "extra=x",
        "--rollout",
        "EnvConsumers",
        "--max-age",
        "13w",
    ]);
    assert!(err.ends_with("; set spec.rollout: EnvConsumers\n"), "{err}");
    let merged2 = ws.read("db.yaml");
    let extra_line = format!("    extra: {}\n", value_of(&merged2, "extra"));
    assert_eq!(
        merged2,
        merged
            .replace(&token_line, &format!("{token_line}{extra_line}"))
            .replace("  rollout: AllConsumers\n", "  rollout: EnvConsumers\n")
    );
    let values = unsealed_values(&ws, &merged2);
    assert_eq!(values["password"], b"hunter2-canary");
    assert_eq!(values["token"].len(), 32);

    // inspect: the fields, and which values are generated and how.
    let output = ws.cmd().args(["inspect", "db.yaml"]).output().unwrap();
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains(
            "SealedSecret app/db (scope strict)\n  max age 13w (spec.maxAge)\n  rollout EnvConsumers (spec.rollout)\n"
        ),
        "{text}"
    );
    let line = |key: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("  {key}: v2, ")))
            .unwrap()
            .to_owned()
    };
    assert!(line("token").ends_with(", generated (hex:16)"), "{text}");
    assert!(!line("username").contains("generated"), "{text}");
    let output = ws
        .cmd()
        .args(["inspect", "--format", "json", "db.yaml"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json[0]["max_age"], "13w");
    assert_eq!(json[0]["rollout"], "EnvConsumers");
    let value = |key: &str| {
        json[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|value| value["key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(value("token")["generated"], "hex:16");
    assert!(value("username").get("generated").is_none());
    // Without them, nothing is added to the output.
    ws.write("plain.yaml", &original);
    let output = ws
        .cmd()
        .args(["inspect", "--format", "json", "plain.yaml"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(json[0].get("max_age").is_none() && json[0].get("rollout").is_none());
    let text = stdout(&ws.cmd().args(["inspect", "plain.yaml"]).output().unwrap());
    assert!(
        !text.contains("max age") && !text.contains("rollout"),
        "{text}"
    );
}

/// `check --rotation` points at `kseal regenerate --due` for the overdue
/// values kseal generated, and at `--merge-into` for the others.
#[test]
fn check_rotation_hint_names_regenerate_for_generated_values() {
    let ws = Workspace::new();
    let check = |text: &str, flags: &[&str]| {
        ws.write("repo/db.yaml", text);
        let output = ws
            .cmd()
            .arg("check")
            .args(flags)
            .arg("repo")
            .output()
            .unwrap();
        assert_exit(&output, 1);
        stderr(&output)
    };
    let (both, _) = aged(
        &ws.recipient,
        &[("gen", 120), ("manual", 200), ("fresh", 1)],
        &[("gen", "uuid"), ("fresh", "uuid")],
        Some("90d"),
    );
    let err = check(&both, &["--rotation"]);
    assert!(
        err.contains(
            "2 sealed value(s) due for rotation: 1 generated by kseal (spec.generated): replace those with `kseal regenerate --due --in-place PATH`; for the other 1, seal a new value for each (`kseal seal --merge-into FILE`)"
        ),
        "{err}"
    );
    let (generated, _) = aged(&ws.recipient, &[("gen", 120)], &[("gen", "uuid")], None);
    let err = check(&generated, &["--max-age", "30d"]);
    assert!(
        err.contains(
            "1 sealed value(s) due for rotation: all generated by kseal (spec.generated): replace them with `kseal regenerate --due --max-age 30d --in-place PATH`"
        ),
        "{err}"
    );
    assert!(!err.contains("--merge-into"), "{err}");
    let (manual, _) = aged(&ws.recipient, &[("manual", 120)], &[], Some("90d"));
    let err = check(&manual, &["--rotation"]);
    assert!(
        err.contains(
            "1 sealed value(s) due for rotation: seal a new value for each (`kseal seal --merge-into FILE`)"
        ),
        "{err}"
    );
    assert!(!err.contains("regenerate"), "{err}");
}

/// The key ids a sealed value names.
fn key_ids(value: &str) -> Vec<String> {
    SealedValue::parse(value)
        .unwrap()
        .key_ids()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn key_id(recipient: &str) -> String {
    recipient.parse::<Recipient>().unwrap().key_id().to_string()
}

/// `.kseal.yaml` rules match the file written, not a symlink to it: with
/// `^prod/` → R and `^staging/` → R2, a link `staging/db.yaml` to
/// `prod/db.sealed` (not named like a manifest, so only the link is
/// walked) must not get prod's values sealed to staging's key, nor judged
/// by staging's max_age. `regenerate`, `rewrap` and `seal --merge-into`
/// alike.
#[cfg(unix)]
#[test]
fn rules_match_the_file_written_not_the_symlink() {
    let prod = Workspace::new();
    let staging = Workspace::new();
    let ws = &prod;
    std::fs::create_dir_all(ws.path("repo/.git")).unwrap();
    ws.write(
        "repo/.kseal.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^prod/\n    recipients: [{}]\n    max_age: 30d\n  - path_regex: ^staging/\n    recipients: [{}]\n    max_age: 365d\n",
            prod.recipient, staging.recipient
        ),
    );
    let (original, _) = aged(
        &prod.recipient,
        &[("password", 40), ("username", 40)],
        &[("password", "alnum:32")],
        None,
    );
    ws.write("repo/prod/db.sealed", &original);
    std::fs::create_dir_all(ws.path("repo/staging")).unwrap();
    std::os::unix::fs::symlink("../prod/db.sealed", ws.path("repo/staging/db.yaml")).unwrap();
    let run = |args: &[&str]| {
        ws.cmd()
            .current_dir(ws.path("repo"))
            .args(args)
            .output()
            .unwrap()
    };
    let prod_id = key_id(&prod.recipient);

    // --key: the new value is sealed to prod's key, the rule of the file
    // written; the link stays a link.
    let output = run(&["regenerate", "--key", "password", "--in-place", "."]);
    assert_exit(&output, 0);
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    let first = ws.read("repo/prod/db.sealed");
    assert_ne!(
        value_of(&first, "password"),
        value_of(&original, "password")
    );
    assert_eq!(
        key_ids(&value_of(&first, "password")),
        std::slice::from_ref(&prod_id)
    );
    assert_eq!(unsealed_values(&prod, &first)["password"].len(), 32);
    assert!(
        std::fs::symlink_metadata(ws.path("repo/staging/db.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // --due: judged by prod's max_age (30d), not staging's (365d).
    ws.write("repo/prod/db.sealed", &original);
    let output = run(&["regenerate", "--due", "--in-place", "."]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains(
            "staging/db.yaml: document 1 (line 1): app/db: password (alnum:32): due: sealed 40 days ago (max age 30d, .kseal.yaml)"
        ),
        "{}",
        stderr(&output)
    );
    let due = ws.read("repo/prod/db.sealed");
    assert_eq!(
        key_ids(&value_of(&due, "password")),
        std::slice::from_ref(&prod_id)
    );
    assert!(
        stderr(&output).contains("username: due, sealed 40 days ago (max age 30d, .kseal.yaml)"),
        "{}",
        stderr(&output)
    );

    // rewrap: the values are current for prod's rule, so nothing changes
    // (through the link, staging's rule would re-wrap them to its key).
    ws.write("repo/prod/db.sealed", &original);
    let output = run(&["rewrap", "-i", "../key.txt", "--in-place", "."]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("0 value(s) re-wrapped, 2 already current"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("repo/prod/db.sealed"), original);

    // seal --merge-into the link: sealed to prod's key, merged at the target.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kseal"))
        .current_dir(ws.path("repo"))
        .env_remove("KUBECONFIG")
        .args(["seal", "--name", "db", "--namespace", "app"])
        .args([
            "--generate",
            "token=uuid",
            "--merge-into",
            "staging/db.yaml",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    let merged = ws.read("repo/prod/db.sealed");
    assert_eq!(key_ids(&value_of(&merged, "token")), [prod_id]);
    assert_eq!(unsealed_values(&prod, &merged)["token"].len(), 36);
}

/// Recipients that are not the keys an object's values are sealed to stop
/// `regenerate` (exit 1, nothing written), saying what differs and the way
/// on after a key rotation; `--allow-recipient-change` seals to them.
#[test]
fn regenerate_refuses_to_change_recipients_unless_allowed() {
    let ws = Workspace::new();
    let other = Workspace::new();
    let (original, plaintexts) = aged(
        &ws.recipient,
        &[("password", 1), ("username", 1)],
        &[("password", "alnum:32")],
        None,
    );
    ws.write("db.yaml", &original);
    let regenerate = |recipients: &[&str], extra: &[&str]| {
        let mut command = ws.cmd();
        command.arg("regenerate");
        for recipient in recipients {
            command.args(["-r", recipient]);
        }
        command
            .args(extra)
            .args(["--key", "password", "--in-place", "db.yaml"])
            .output()
            .unwrap()
    };
    let (old_id, new_id) = (key_id(&ws.recipient), key_id(&other.recipient));
    let output = regenerate(&[&other.recipient], &[]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "kseal: db.yaml: document 1 (line 1): app/db: not regenerated: the recipients for db.yaml, from -r/-R, are key id(s) {new_id}, but the object's values are sealed to key id(s) {old_id} (key id(s) {old_id} only in its values; key id(s) {new_id} only in the recipients)"
        )),
        "{err}"
    );
    assert!(
        err.contains("After a key rotation (`kseal pins update`), pass --allow-recipient-change"),
        "{err}"
    );
    assert!(err.contains("nothing was regenerated or written"), "{err}");
    assert_eq!(ws.read("db.yaml"), original);
    // A key added to the recipients is a change too.
    let output = regenerate(&[&ws.recipient, &other.recipient], &[]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(&format!("(key id(s) {new_id} only in the recipients)")),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("db.yaml"), original);
    // The same keys: fine.
    assert_exit(&regenerate(&[&ws.recipient], &[]), 0);
    let same = ws.read("db.yaml");
    assert_eq!(
        key_ids(&value_of(&same, "password")),
        std::slice::from_ref(&old_id)
    );
    // Allowed: sealed to the new key, with a warning.
    let output = regenerate(&[&other.recipient], &["--allow-recipient-change"]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains(&format!(
            "kseal: warning: db.yaml: document 1 (line 1): app/db: its values are sealed to key id(s) {old_id}, the regenerated ones to {new_id}"
        )),
        "{}",
        stderr(&output)
    );
    let changed = ws.read("db.yaml");
    assert_eq!(key_ids(&value_of(&changed, "password")), [new_id]);
    assert_eq!(
        value_of(&changed, "username"),
        value_of(&original, "username")
    );
    // The new value opens with the new key (the other keeps the old one).
    let username = format!("    username: {}\n", value_of(&changed, "username"));
    assert_eq!(
        unsealed_values(&other, &changed.replace(&username, ""))["password"].len(),
        32
    );
    assert_eq!(
        plaintexts["username"].as_bytes(),
        unsealed_values(
            &ws,
            &changed.replace(
                &format!("    password: {}\n", value_of(&changed, "password")),
                ""
            )
        )["username"]
    );
}

/// Generated values hold at least 128 bits of randomness unless
/// --allow-weak: hex:N and base64:N from 16, alnum:N from 22, uuid as it
/// is; `seal --generate` (also with --merge-into) refuses less as a usage
/// error, `regenerate` an edited record (nothing written).
#[test]
fn weak_generated_values_are_refused_unless_allowed() {
    let ws = Workspace::new();
    let seal = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kseal"))
            .current_dir(ws.dir.path())
            .env_remove("KUBECONFIG")
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
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for (spec, message) in [
        (
            "hex:1",
            "--generate pw=…: generator \"hex:1\" holds 8 bits of randomness, fewer than the 128 required: use hex:16 or more (--allow-weak allows it, for a legacy system that takes only a short value)",
        ),
        ("hex:15", "holds 120 bits of randomness"),
        ("base64:15", "use base64:16 or more"),
        ("alnum:1", "holds 5 bits of randomness"),
        (
            "alnum:21",
            "generator \"alnum:21\" holds 125 bits of randomness, fewer than the 128 required: use alnum:22 or more",
        ),
    ] {
        let output = seal(&["--generate", &format!("pw={spec}"), "-o", "out.yaml"]);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(message),
            "{spec}: {}",
            stderr(&output)
        );
        assert!(!ws.path("out.yaml").exists());
    }
    for spec in ["hex:16", "base64:16", "alnum:22", "uuid"] {
        let output = seal(&["--generate", &format!("pw={spec}")]);
        assert_exit(&output, 0);
    }
    // --allow-weak: a legacy system's short PIN.
    let output = seal(&[
        "--from-literal",
        "user=admin",
        "--generate",
        "pin=hex:2",
        "--allow-weak",
        "-o",
        "db.yaml",
    ]);
    assert_exit(&output, 0);
    let sealed = ws.read("db.yaml");
    assert!(
        sealed.contains("  generated:\n    pin: hex:2\n"),
        "{sealed}"
    );
    assert_eq!(unsealed_values(&ws, &sealed)["pin"].len(), 4);
    // --merge-into too.
    let output = seal(&["--generate", "more=alnum:8", "--merge-into", "db.yaml"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("use alnum:22 or more"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("db.yaml"), sealed);

    // regenerate: a record edited to a weak form (alnum:32 → hex:1).
    let output = seal(&["--generate", "password=alnum:32", "-o", "strong.yaml"]);
    assert_exit(&output, 0);
    let strong = ws.read("strong.yaml");
    let edited = strong.replace("password: alnum:32", "password: hex:1");
    ws.write("strong.yaml", &edited);
    let regenerate = |extra: &[&str]| {
        ws.cmd()
            .args([
                "regenerate",
                "-r",
                &ws.recipient,
                "--key",
                "password",
                "--in-place",
            ])
            .args(extra)
            .arg("strong.yaml")
            .output()
            .unwrap()
    };
    let output = regenerate(&[]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(
            "strong.yaml: document 1 (line 1): app/db: spec.generated.password: generator \"hex:1\" holds 8 bits of randomness, fewer than the 128 required: use hex:16 or more, so it is not regenerated (was the record edited?); --allow-weak allows it"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(ws.read("strong.yaml"), edited);
    // The pin is weak too: regenerating it needs --allow-weak as well.
    let output = ws
        .cmd()
        .args(["regenerate", "-r", &ws.recipient, "--key", "pin", "db.yaml"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let output = regenerate(&["--allow-weak"]);
    assert_exit(&output, 0);
    assert_eq!(
        unsealed_values(&ws, &ws.read("strong.yaml"))["password"].len(),
        2
    );
}

/// When an edit cannot be made in the text (a folded value), the document
/// is rewritten whole, and that is said on stderr: which file and
/// document, and that its formatting and comments were not kept.
#[test]
fn a_document_rewritten_whole_is_said() {
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
        .args([
            "--from-literal",
            "username=app",
            "--generate",
            "password=alnum:32",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = stdout(&output);
    let folded_value = |text: &str| {
        let value = value_of(text, "password");
        text.replace(
            &format!("    password: {value}\n"),
            &format!("    password: >-\n      {value}\n"),
        )
        .replace("spec:\n", "spec:\n  # inside the document\n")
    };
    let config_map =
        "# a ConfigMap\napiVersion: v1\nkind: ConfigMap   # kept\nmetadata: {name: c}\n---\n";
    let original = format!("{config_map}# before\n{}", folded_value(&sealed));
    ws.write("db.yaml", &original);
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
    let err = stderr(&output);
    assert!(
        err.contains(
            "kseal: db.yaml: document 2 (line 6): rewritten whole: the edit could not be made in its text (a folded or multi-line value, quoting with escapes, or flow style), so that document's formatting and comments inside it were not kept"
        ),
        "{err}"
    );
    let rewritten = ws.read("db.yaml");
    assert!(
        rewritten.starts_with(&format!("{config_map}# before\n")),
        "{rewritten}"
    );
    assert!(!rewritten.contains("# inside the document"), "{rewritten}");
    let document = |text: &str| text.rsplit("---\n").next().unwrap().to_owned();
    assert_eq!(
        unsealed_values(&ws, &document(&rewritten))["password"].len(),
        32
    );

    // --merge-into replacing a folded value: said too.
    ws.write("db.yaml", &original);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kseal"))
        .current_dir(ws.dir.path())
        .env_remove("KUBECONFIG")
        .args([
            "seal",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
        ])
        .args([
            "--from-literal",
            "password=chosen",
            "--merge-into",
            "db.yaml",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("kseal: db.yaml: document 2 (line 6): rewritten whole: "),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        unsealed_values(&ws, &document(&ws.read("db.yaml")))["password"],
        b"chosen"
    );

    // An edit the text takes: nothing is said.
    ws.write("db.yaml", &sealed);
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
    assert!(
        !stderr(&output).contains("rewritten whole"),
        "{}",
        stderr(&output)
    );
}
