//! Interoperability with the stock `age` CLI (Debian package `age`): key
//! files work both ways, and a wrapped data key extracted as
//! `docs/format.md` describes decrypts with `age -d` to the key that opens
//! the value.

#![allow(clippy::expect_used)]

mod common;

use std::process::Command;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use common::*;

/// `age` and `age-keygen` (installed with apt-get on first use where
/// possible, see `kseal_testenv::system`), or `false` outside CI when they
/// cannot be.
fn age_available() -> bool {
    if let Err(e) = kseal_testenv::system::ensure_debian_packages(&["age"]) {
        eprintln!("{e:#}");
    }
    let found = Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("age-keygen")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the age CLI is required in CI (apt-get install age)"
        );
        eprintln!("SKIPPED: the age CLI is not installed (apt-get install age)");
    }
    found
}

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("spawn");
    assert!(output.status.success(), "{command:?}: {}", stderr(&output));
    output
}

#[test]
fn age_keygen_identity_seals_and_unseals() {
    if !age_available() {
        return;
    }
    let ws = Workspace::new();
    let key = ws.path("age-key.txt");
    run(Command::new("age-keygen").arg("-o").arg(&key));
    let recipient = stdout(&run(Command::new("age-keygen").arg("-y").arg(&key)))
        .trim()
        .to_owned();
    let sealed = ws
        .cmd()
        .args(["seal", "-r", &recipient])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_exit(&sealed, 0);
    let output = ws
        .cmd()
        .args(["unseal", "-i"])
        .arg(&key)
        .write_stdin(stdout(&sealed))
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("password: aHVudGVyMi1jYW5hcnk="));
}

#[test]
fn kseal_keygen_identity_works_with_age() {
    if !age_available() {
        return;
    }
    let ws = Workspace::new();
    // age derives the same recipient from kseal's key file…
    let derived = stdout(&run(Command::new("age-keygen").arg("-y").arg(&ws.identity)))
        .trim()
        .to_owned();
    assert_eq!(derived, ws.recipient);
    // …and decrypts what is encrypted to it.
    ws.write("plain.txt", "interop");
    run(Command::new("age")
        .args(["-r", &ws.recipient, "-o"])
        .arg(ws.path("plain.age"))
        .arg(ws.path("plain.txt")));
    let output = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&ws.identity)
        .arg(ws.path("plain.age")));
    assert_eq!(stdout(&output), "interop");
}

#[test]
fn wrapped_data_key_decrypts_with_age_and_opens_the_value() {
    if !age_available() {
        return;
    }
    let ws = Workspace::new();
    let output = ws
        .cmd()
        .args([
            "seal",
            "--raw",
            "-r",
            &ws.recipient,
            "--name",
            "db",
            "--namespace",
            "app",
            "--from-literal",
            "password=by-hand",
        ])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let sealed = stdout(&output).trim().to_owned();
    // kseal:v2:<key ids>:<sealed at>:<wrapped key>:<nonce>:<commitment>:<ciphertext>
    let fields: Vec<&str> = sealed.split(':').collect();
    assert_eq!(fields.len(), 8);
    assert_eq!(fields[1], "v2");
    std::fs::write(
        ws.path("dek.age"),
        BASE64_STANDARD.decode(fields[4]).unwrap(),
    )
    .unwrap();
    let dek = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&ws.identity)
        .arg(ws.path("dek.age")))
    .stdout;
    assert_eq!(dek.len(), 32);
    let nonce = BASE64_STANDARD.decode(fields[5]).unwrap();
    // K_aead ‖ K_commit = HKDF-SHA-256(DEK, salt = nonce, info, 64), and the
    // commitment must match before anything is decrypted.
    let mut okm = [0u8; 64];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&nonce), &dek)
        .expand(b"kseal.dev/sealed-value/v2", &mut okm)
        .unwrap();
    assert_eq!(
        BASE64_STANDARD.decode(fields[6]).unwrap(),
        okm[32..],
        "the commitment"
    );
    // The associated data, built by hand as docs/format.md specifies.
    let mut aad = Vec::new();
    for field in [
        &b"kseal.dev/sealed-value/v2"[..],
        b"strict",
        b"app",
        b"db",
        b"password",
    ] {
        aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
        aad.extend_from_slice(field);
    }
    let sealed_at: u64 = fields[3].parse().unwrap();
    aad.extend_from_slice(&sealed_at.to_be_bytes());
    let ciphertext = BASE64_STANDARD.decode(fields[7]).unwrap();
    let plaintext = XChaCha20Poly1305::new_from_slice(&okm[..32])
        .unwrap()
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .expect("the key derived from the DEK opens the value");
    assert_eq!(plaintext, b"by-hand");
}
