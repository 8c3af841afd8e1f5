//! age plugin recipients (`age1yubikey1…`, `age1tpm1…`, …) are refused
//! wherever recipients are read, with a message that names the plugin and
//! says what to do instead, and never quotes more of the recipient than
//! its Bech32 prefix: kseal format v2 wraps data keys with X25519 stanzas
//! only (docs/format.md §1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// The example recipient of age-plugin-yubikey users (valid Bech32).
const YUBIKEY: &str = "age1yubikey1qgyl9efw5cexsg8ee66jpxglnvfaswhd4zjhntqawagp4zgh064puht4g9l";
/// Valid Bech32 strings with the prefixes of age-plugin-tpm and
/// age-plugin-se (a 33-byte payload, as those plugins encode).
const TPM: &str = "age1tpm1q0zzrw07lqwzvm3lzgg5wdm236xg6d55actz2ykr4306pe97jw3l5ltcnps";
const SECURE_ENCLAVE: &str = "age1se1q06qgkcqh9ccssuzzc8rtkucpt8n4xqwau2ee838eznfk8xnwtccgeayatw";

const REFUSAL_END: &str = "is not supported: kseal seals to X25519 recipients only (docs/format.md §1); keep the recovery key as an X25519 identity offline, e.g. encrypted with a passphrase (age -p) or on an air-gapped machine";

/// The refusal for `hrp`, and that nothing after the prefix is quoted.
fn assert_refused(output: &std::process::Output, recipient: &str, hrp: &str) {
    let err = stderr(output);
    assert!(
        err.contains(&format!("age plugin recipient ({hrp}1…) {REFUSAL_END}")),
        "{err}"
    );
    let data = &recipient[hrp.len() + 1..];
    assert!(!err.contains(data), "quoted the recipient: {err}");
    assert!(!err.contains("incorrect HRP"), "{err}");
    assert!(stdout(output).is_empty(), "{}", stdout(output));
}

fn seal(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .arg("seal")
        .args(args)
        .args([
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "a=b",
        ])
        .output()
        .unwrap()
}

#[test]
fn on_the_command_line() {
    let ws = Workspace::new();
    // Alone, and beside an X25519 recipient (a recovery key on a YubiKey
    // next to the cluster's key: the case that made users try it).
    for args in [
        vec!["-r", YUBIKEY],
        vec!["-r", &ws.recipient, "-r", YUBIKEY],
    ] {
        let output = seal(&ws, &args);
        assert_exit(&output, 1);
        assert_refused(&output, YUBIKEY, "age1yubikey");
        assert!(stderr(&output).contains("-r/--recipient"));
    }
    // Upper case is the same recipient.
    let output = seal(&ws, &["-r", &TPM.to_ascii_uppercase()]);
    assert_exit(&output, 1);
    assert_refused(&output, &TPM.to_ascii_uppercase(), "age1tpm");
}

#[test]
fn in_a_recipients_file() {
    let ws = Workspace::new();
    let file = ws.write(
        "recipients.txt",
        &format!("# cluster\n{}\n# recovery\n{TPM}\n", ws.recipient),
    );
    let output = seal(&ws, &["-R", file.to_str().unwrap()]);
    assert_exit(&output, 1);
    assert_refused(&output, TPM, "age1tpm");
    assert!(stderr(&output).contains("line 4"), "{}", stderr(&output));
}

#[test]
fn in_kseal_yaml() {
    // Listed in a rule…
    let ws = Workspace::new();
    ws.write(
        ".kseal.yaml",
        &format!(
            "creation_rules:\n  - recipients:\n      - {}\n      - {YUBIKEY}\n",
            ws.recipient
        ),
    );
    let output = seal(&ws, &[]);
    assert_exit(&output, 1);
    assert_refused(&output, YUBIKEY, "age1yubikey");
    // …or in its recipients_file.
    let ws = Workspace::new();
    ws.write("keys/recovery.txt", &format!("{SECURE_ENCLAVE}\n"));
    ws.write(
        ".kseal.yaml",
        "creation_rules:\n  - recipients_file: keys/recovery.txt\n",
    );
    let output = seal(&ws, &[]);
    assert_exit(&output, 1);
    assert_refused(&output, SECURE_ENCLAVE, "age1se");
}

/// `keys backup --recipient`: refused before any cluster is asked for keys
/// (there is none here).
#[test]
fn as_the_backup_recipient() {
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args([
            "keys",
            "backup",
            "--recipient",
            YUBIKEY,
            "-o",
            "backup.age",
            "--kubeconfig",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert_refused(&output, YUBIKEY, "age1yubikey");
    assert!(!ws.path("backup.age").exists());
}
