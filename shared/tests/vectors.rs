//! The committed test vectors (`tests/vectors/v1.json`) must keep opening:
//! they pin the format so an independent implementation can check itself
//! against the same file.

#![allow(clippy::expect_used)]

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
        let binding = Binding::new(
            Scope::from_str(text(case, "scope")).unwrap(),
            text(case, "namespace"),
            text(case, "name"),
            text(case, "key"),
        );
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
        let binding = Binding::new(
            Scope::from_str(text(case, "scope")).unwrap(),
            text(case, "namespace"),
            text(case, "name"),
            text(case, "key"),
        );
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
