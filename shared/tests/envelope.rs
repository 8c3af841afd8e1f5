//! Properties of the sealed-value format: round trips, scope bindings,
//! tamper rejection and re-wrapping.

use kseal_shared::envelope::{Keyring, SealedValue, open, rewrap, seal, unwrap_data_key};
use kseal_shared::{
    binding::{Binding, Scope},
    error::SealError,
    x25519::Identity,
};
use proptest::prelude::*;

fn keyring(identities: &[&Identity]) -> Keyring {
    identities
        .iter()
        .map(|identity| (*identity).clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_arbitrary_bytes(
        plaintext in proptest::collection::vec(any::<u8>(), 0..4096),
        // Valid Secret data keys: no leading "." (so never ".", ".." or "..x").
        key in "[-_a-zA-Z0-9][-._a-zA-Z0-9]{0,39}",
        namespace in "[a-z0-9-]{1,20}",
        name in "[a-z0-9.-]{1,30}",
        scope in prop::sample::select(Scope::ALL.to_vec()),
    ) {
        let identity = Identity::generate();
        let binding = Binding::new(scope, &namespace, &name, &key);
        let sealed = seal(&plaintext, &binding, &[identity.recipient().clone()]).unwrap();
        let encoded = sealed.encode();
        let parsed = SealedValue::parse(&encoded).unwrap();
        prop_assert_eq!(&parsed, &sealed);
        let opened = open(&parsed, &binding, &keyring(&[&identity])).unwrap();
        prop_assert_eq!(opened.expose(), plaintext.as_slice());
    }
}

/// Which moves each scope allows: (namespace changes, name changes, scope
/// field changes to) → may it open?
#[test]
fn scope_binding_rules() {
    let identity = Identity::generate();
    let ring = keyring(&[&identity]);
    let recipients = [identity.recipient().clone()];
    for scope in Scope::ALL {
        let original = Binding::new(scope, "team-a", "db", "password");
        let sealed = seal(b"s3cret", &original, &recipients).unwrap();
        let try_open = |binding: Binding<'_>| open(&sealed, &binding, &ring);

        // Same place: always opens.
        assert!(try_open(original).is_ok(), "{scope}");
        // Another data key: never.
        let moved_key = Binding {
            key: "user",
            ..original
        };
        assert_eq!(
            try_open(moved_key).unwrap_err(),
            SealError::DecryptFailed,
            "{scope}"
        );
        // Another name: only when the scope does not bind it.
        let renamed = Binding {
            name: "other",
            ..original
        };
        assert_eq!(
            try_open(renamed).is_ok(),
            !scope.binds_name(),
            "{scope} rename"
        );
        // Another namespace: only cluster-wide.
        let moved_ns = Binding {
            namespace: "team-b",
            ..original
        };
        assert_eq!(
            try_open(moved_ns).is_ok(),
            !scope.binds_namespace(),
            "{scope} namespace"
        );
        // Editing spec.scope never widens (or narrows) a value.
        for other in Scope::ALL.into_iter().filter(|other| *other != scope) {
            let rescoped = Binding {
                scope: other,
                ..original
            };
            assert_eq!(
                try_open(rescoped).unwrap_err(),
                SealError::DecryptFailed,
                "{scope}->{other}"
            );
        }
    }
}

/// Every single-bit change of an encoded value, at every position, is
/// rejected: by the parser, by age's header MAC or by the AEAD.
#[test]
fn every_bit_flip_is_rejected() {
    let a = Identity::generate();
    let b = Identity::generate();
    let binding = Binding::new(Scope::Strict, "ns", "name", "key");
    // Two recipients, opened with only one of them: a flip in the other's key
    // id must not slip through.
    let sealed = seal(
        b"the value",
        &binding,
        &[a.recipient().clone(), b.recipient().clone()],
    )
    .unwrap()
    .encode();
    let ring = keyring(&[&b]);
    assert!(open(&SealedValue::parse(&sealed).unwrap(), &binding, &ring).is_ok());
    let bytes = sealed.as_bytes();
    let mut flips = 0;
    for position in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.to_vec();
            tampered[position] ^= 1 << bit;
            flips += 1;
            let Ok(text) = String::from_utf8(tampered) else {
                continue; // not a string: cannot even reach a manifest
            };
            let opened = SealedValue::parse(&text).and_then(|value| open(&value, &binding, &ring));
            assert!(
                opened.is_err(),
                "flip at byte {position} bit {bit} was accepted"
            );
        }
    }
    assert_eq!(flips, bytes.len() * 8);
}

#[test]
fn every_recipient_can_open() {
    let identities: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
    let recipients: Vec<_> = identities.iter().map(|i| i.recipient().clone()).collect();
    let binding = Binding::new(Scope::NamespaceWide, "ns", "", "k");
    let sealed = seal(b"v", &binding, &recipients).unwrap();
    assert_eq!(sealed.key_ids().len(), 3);
    for identity in &identities {
        assert_eq!(
            open(&sealed, &binding, &keyring(&[identity]))
                .unwrap()
                .expose(),
            b"v"
        );
    }
    let stranger = Identity::generate();
    assert!(matches!(
        open(&sealed, &binding, &keyring(&[&stranger])),
        Err(SealError::NoMatchingIdentity { .. })
    ));
}

#[test]
fn duplicate_recipients_are_wrapped_once() {
    let identity = Identity::generate();
    let binding = Binding::new(Scope::ClusterWide, "", "", "k");
    let recipient = identity.recipient().clone();
    let sealed = seal(b"v", &binding, &[recipient.clone(), recipient]).unwrap();
    assert_eq!(sealed.key_ids(), &[identity.key_id()]);
}

#[test]
fn rewrap_keeps_nonce_and_ciphertext() {
    let old = Identity::generate();
    let new = Identity::generate();
    let binding = Binding::new(Scope::Strict, "ns", "n", "k");
    let sealed = seal(b"value", &binding, &[old.recipient().clone()]).unwrap();
    let rewrapped = rewrap(
        &sealed,
        &binding,
        &keyring(&[&old]),
        &[new.recipient().clone()],
    )
    .unwrap();
    assert_eq!(rewrapped.nonce(), sealed.nonce());
    assert_eq!(rewrapped.ciphertext(), sealed.ciphertext());
    assert_eq!(rewrapped.key_ids(), &[new.key_id()]);
    assert_ne!(rewrapped.wrapped_key(), sealed.wrapped_key());
    // The encoded strings differ only in key ids (2) and wrapped key (4):
    // seal time, nonce, commitment and ciphertext are byte-identical.
    let fields =
        |v: &SealedValue| -> Vec<String> { v.encode().split(':').map(str::to_owned).collect() };
    let (before, after) = (fields(&sealed), fields(&rewrapped));
    assert_eq!(before[..2], after[..2]);
    assert_eq!(before[3], after[3]);
    assert_eq!(before[5..], after[5..]);
    // The new key opens it; the old key no longer does.
    assert_eq!(
        open(&rewrapped, &binding, &keyring(&[&new]))
            .unwrap()
            .expose(),
        b"value"
    );
    assert!(open(&rewrapped, &binding, &keyring(&[&old])).is_err());
    // The data key itself did not change.
    assert_eq!(
        unwrap_data_key(&sealed, &keyring(&[&old]))
            .unwrap()
            .expose(),
        unwrap_data_key(&rewrapped, &keyring(&[&new]))
            .unwrap()
            .expose()
    );
}

#[test]
fn rewrap_refuses_a_value_that_does_not_open_here() {
    let old = Identity::generate();
    let binding = Binding::new(Scope::Strict, "ns", "n", "k");
    let sealed = seal(b"value", &binding, &[old.recipient().clone()]).unwrap();
    let elsewhere = Binding::new(Scope::Strict, "other", "n", "k");
    assert_eq!(
        rewrap(
            &sealed,
            &elsewhere,
            &keyring(&[&old]),
            &[old.recipient().clone()]
        )
        .unwrap_err(),
        SealError::DecryptFailed
    );
}

#[test]
fn parse_errors_are_specific() {
    assert_eq!(
        SealedValue::parse("AgBy3i4OJSWK+PiTySYZZA==").unwrap_err(),
        SealError::NotSealedValue
    );
    assert_eq!(
        SealedValue::parse("kseal:v3:0011223344556677:AA==:AA==:AA==").unwrap_err(),
        SealError::UnsupportedVersion("v3".into())
    );
    assert!(matches!(
        SealedValue::parse("kseal:v1:zz:AA==:AA==:AA=="),
        Err(SealError::Malformed(_))
    ));
    assert!(matches!(
        SealedValue::parse("kseal:v1"),
        Err(SealError::Malformed(_))
    ));
    let message = SealError::UnsupportedVersion("v9".into()).to_string();
    assert!(
        message.contains("v9") && message.contains("v1"),
        "{message}"
    );
}

#[test]
fn moving_a_value_between_keys_fails() {
    let identity = Identity::generate();
    let ring = keyring(&[&identity]);
    let recipients = [identity.recipient().clone()];
    let user = seal(
        b"admin",
        &Binding::new(Scope::Strict, "ns", "db", "user"),
        &recipients,
    )
    .unwrap();
    // Swapped into the "password" key of the same object.
    assert_eq!(
        open(
            &user,
            &Binding::new(Scope::Strict, "ns", "db", "password"),
            &ring
        )
        .unwrap_err(),
        SealError::DecryptFailed
    );
}

#[test]
fn oversized_values_are_refused() {
    let identity = Identity::generate();
    let big = vec![0u8; 1024 * 1024 + 1];
    assert_eq!(
        seal(
            &big,
            &Binding::new(Scope::ClusterWide, "", "", "k"),
            &[identity.recipient().clone()]
        )
        .unwrap_err(),
        SealError::TooLarge
    );
}

/// Only values that parse name keys: a bogus `kseal:v1:<hex>` names none.
#[test]
fn key_ids_come_only_from_values_that_parse() {
    let a = Identity::generate();
    let b = Identity::generate();
    let binding = Binding::new(Scope::ClusterWide, "", "", "k");
    let sealed = kseal_shared::envelope::seal(b"v", &binding, &[a.recipient().clone()])
        .unwrap()
        .encode();
    let bogus = [
        format!("kseal:v1:{}", b.key_id()),
        format!("kseal:v1:{}:x:y:z", b.key_id()),
        format!("kseal:v1:{},{}:AAAA:AAAA:AAAA", a.key_id(), b.key_id()),
        "plaintext pasted by mistake".to_owned(),
    ];
    let values = std::iter::once(sealed.as_str()).chain(bogus.iter().map(String::as_str));
    let ids = kseal_shared::envelope::key_ids_in(values);
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), [a.key_id()]);
    assert!(kseal_shared::envelope::key_ids_in(bogus.iter().map(String::as_str)).is_empty());
}
