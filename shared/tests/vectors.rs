//! The committed test vectors (`tests/vectors/v1.json`) must keep opening:
//! they pin the format so an independent implementation can check itself
//! against the same file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::str::FromStr;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use kseal_shared::envelope::{Keyring, SealedValue, open};
use kseal_shared::{
    binding::{Binding, Scope},
    error::SealError,
    x25519::{Identity, KeyId},
};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/v1.json")).expect("vectors parse")
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {value}"))
}

/// A value vector's string: `sealed`, or `sealed_fill` (`prefix`, then
/// `fill` repeated `count` times, then `suffix`) for the large ones.
fn sealed_of(case: &Value) -> String {
    match case.get("sealed_fill") {
        Some(fill) => {
            let count = usize::try_from(fill["count"].as_u64().unwrap()).unwrap();
            format!(
                "{}{}{}",
                text(fill, "prefix"),
                text(fill, "fill").repeat(count),
                text(fill, "suffix")
            )
        }
        None => text(case, "sealed").to_owned(),
    }
}

/// The binding a vector names (`scope`, `namespace`, `name`, `key`).
fn binding_of(case: &Value) -> Binding<'_> {
    Binding::new(
        Scope::from_str(text(case, "scope")).unwrap(),
        text(case, "namespace"),
        text(case, "name"),
        text(case, "key"),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn identities_recipients_and_key_ids() {
    let vectors = vectors();
    let identities = vectors["identities"].as_array().unwrap();
    let recipients = vectors["recipients"].as_array().unwrap();
    assert_eq!(identities.len(), recipients.len());
    for (identity, recipient) in identities.iter().zip(recipients) {
        let identity = Identity::from_str(identity.as_str().unwrap()).unwrap();
        assert_eq!(
            identity.recipient().to_string(),
            text(recipient, "recipient")
        );
        assert_eq!(identity.key_id().to_string(), text(recipient, "key_id"));
        assert_eq!(
            KeyId::of_recipient_str(text(recipient, "recipient")).to_string(),
            text(recipient, "key_id")
        );
    }
}

#[test]
fn associated_data() {
    for case in vectors()["associated_data"].as_array().unwrap() {
        let binding = binding_of(case);
        assert_eq!(
            hex(&binding.associated_data_v1()),
            text(case, "associated_data_hex")
        );
    }
}

#[test]
fn cases_open_or_fail_as_recorded() {
    let vectors = vectors();
    let keyring: Keyring = vectors["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Identity::from_str(s.as_str().unwrap()).unwrap())
        .collect();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let comment = text(case, "comment");
        let binding = binding_of(case);
        let value = SealedValue::parse(text(case, "sealed")).unwrap();
        let result = open(&value, &binding, &keyring);
        match text(case, "expect") {
            "ok" => {
                let expected = BASE64_STANDARD
                    .decode(text(case, "plaintext_base64"))
                    .unwrap();
                assert_eq!(result.unwrap().expose(), expected.as_slice(), "{comment}");
            }
            "decrypt-failed" => {
                assert_eq!(result.unwrap_err(), SealError::DecryptFailed, "{comment}")
            }
            "no-matching-identity" => assert!(
                matches!(result, Err(SealError::NoMatchingIdentity { .. })),
                "{comment}"
            ),
            other => panic!("unknown expectation {other}"),
        }
    }
}

#[test]
fn unsupported_inputs() {
    for case in vectors()["unsupported"].as_array().unwrap() {
        let err = SealedValue::parse(text(case, "sealed")).unwrap_err();
        match text(case, "expect") {
            "unsupported-version" => assert!(matches!(err, SealError::UnsupportedVersion(_))),
            "not-a-sealed-value" => assert_eq!(err, SealError::NotSealedValue),
            other => panic!("unknown expectation {other}"),
        }
    }
}

// ---- Format v2 (`tests/vectors/v2.json`, docs/format.md §10) ----

fn v2() -> Value {
    serde_json::from_str(include_str!("vectors/v2.json")).expect("v2 vectors parse")
}

/// The error category names of docs/format.md §4.
fn category(error: &SealError) -> &'static str {
    match error {
        SealError::NotSealedValue => "not-a-kseal-value",
        SealError::UnsupportedVersion(_) => "unsupported-version",
        SealError::Malformed(_) => "malformed",
        SealError::InvalidBinding(_) => "binding-invalid",
        SealError::NoMatchingIdentity { .. } => "no-matching-identity",
        SealError::UnwrapFailed => "unwrap-failed",
        SealError::CommitmentMismatch => "commitment-mismatch",
        SealError::DecryptFailed => "decrypt-failed",
        other => panic!("not a reader error: {other}"),
    }
}

/// Every reader rule of docs/format.md §4, each with at least one negative
/// vector.
const RULES: [&str; 18] = [
    "magic",
    "version",
    "fields",
    "key-ids",
    "sealed-at",
    "base64",
    "sizes",
    "age-grammar",
    "key-ids-stanza",
    "x25519-stanzas",
    "stanza-order",
    "v1-stanzas",
    "binding",
    "no-matching-identity",
    "unwrap",
    "commitment",
    "aead",
    "ok",
];

#[test]
fn v2_values_open_or_fail_as_recorded() {
    let vectors = v2();
    let keyring: Keyring = vectors["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Identity::from_str(s.as_str().unwrap()).unwrap())
        .collect();
    let mut per_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    for case in vectors["values"].as_array().unwrap() {
        let comment = text(case, "comment");
        let rule = text(case, "rule");
        assert!(RULES.contains(&rule), "{comment}: unknown rule {rule}");
        *per_rule.entry(rule).or_default() += 1;
        let binding = binding_of(case);
        let sealed = sealed_of(case);
        let result = SealedValue::parse(&sealed)
            .and_then(|value| open(&value, &binding, &keyring).map(|plaintext| (value, plaintext)));
        match (text(case, "expect"), result) {
            ("ok", Ok((value, plaintext))) => {
                let expected = BASE64_STANDARD
                    .decode(text(case, "plaintext_base64"))
                    .unwrap();
                assert_eq!(plaintext.expose(), expected.as_slice(), "{comment}");
                assert_eq!(
                    value.sealed_at().map(|at| at.as_second()),
                    case["sealed_at"].as_i64(),
                    "{comment}"
                );
                assert_eq!(value.version().as_str(), &sealed[6..8], "{comment}");
                assert_eq!(value.encode(), sealed, "{comment}: re-encodes");
            }
            ("ok", Err(err)) => panic!("{comment}: {err}"),
            (expected, Ok(_)) => panic!("{comment}: opened, expected {expected}"),
            (expected, Err(err)) => assert_eq!(category(&err), expected, "{comment}: {err}"),
        }
    }
    for rule in RULES {
        assert!(
            per_rule.get(rule).is_some_and(|n| *n > 0),
            "no vector for rule {rule}"
        );
    }
}

#[test]
fn v2_key_derivation_and_associated_data() {
    let vectors = v2();
    for case in vectors["associated_data"].as_array().unwrap() {
        let binding = binding_of(case);
        let sealed_at = case["sealed_at"].as_u64().unwrap();
        assert_eq!(
            hex(&binding.associated_data_v2(sealed_at)),
            text(case, "associated_data_hex")
        );
    }
    // HKDF-SHA-256(ikm = data key, salt = nonce, info, 64): recomputed here
    // with the hkdf crate directly, as an outside implementation would.
    for case in vectors["kdf"].as_array().unwrap() {
        let unhex = |field: &str| -> Vec<u8> {
            let text = text(case, field);
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect()
        };
        let mut okm = [0u8; 64];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(&unhex("nonce_hex")), &unhex("data_key_hex"))
            .expand(b"kseal.dev/sealed-value/v2", &mut okm)
            .unwrap();
        assert_eq!(hex(&okm[..32]), text(case, "aead_key_hex"));
        assert_eq!(hex(&okm[32..]), text(case, "commitment_hex"));
    }
}

#[test]
fn v2_identity_files() {
    for case in v2()["identity_files"].as_array().unwrap() {
        let comment = text(case, "comment");
        let result = kseal_shared::x25519::parse_identity_file(text(case, "text"));
        match text(case, "expect") {
            "ok" => {
                let ids: Vec<String> = result
                    .unwrap_or_else(|err| panic!("{comment}: {err}"))
                    .iter()
                    .map(|identity| identity.key_id().to_string())
                    .collect();
                let expected: Vec<String> = case["key_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|id| id.as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(ids, expected, "{comment}");
            }
            "identity-file-invalid" => assert!(result.is_err(), "{comment}: accepted"),
            other => panic!("unknown expectation {other}"),
        }
    }
}

/// What `kseal validate` checks of one object, without keys: the CRD's
/// fields, Kubernetes' names, at most 1,024 values, every value parses.
fn manifest_problems(yaml: &str) -> Vec<String> {
    let document: Value = match serde_saphyr::from_str(yaml) {
        Ok(document) => document,
        Err(err) => return vec![err.to_string()],
    };
    let sealed = match kseal_shared::sealed_secret::from_document(&document) {
        Ok(sealed) => sealed,
        Err(err) => return vec![err.to_string()],
    };
    let mut problems: Vec<String> = kseal_shared::validation::sealed_secret_problems(&sealed)
        .iter()
        .map(ToString::to_string)
        .collect();
    if sealed.spec.encrypted_data.len() > kseal_shared::sealed_secret::MAX_VALUES {
        problems.push("too many values".to_owned());
    }
    for value in sealed.spec.encrypted_data.values() {
        if let Err(err) = SealedValue::parse(value) {
            problems.push(err.to_string());
        }
    }
    problems
}

#[test]
fn v2_manifests() {
    for case in v2()["manifests"].as_array().unwrap() {
        let comment = text(case, "comment");
        let problems = manifest_problems(text(case, "yaml"));
        match text(case, "expect") {
            "ok" => assert!(problems.is_empty(), "{comment}: {problems:?}"),
            "manifest-invalid" => assert!(!problems.is_empty(), "{comment}: accepted"),
            other => panic!("unknown expectation {other}"),
        }
    }
}
