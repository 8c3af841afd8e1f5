//! The sealed-value parser (`kseal:v2:…` and `kseal:v1:…`), and opening
//! whatever parses.
//!
//! Properties: no panic; whatever parses re-encodes to a string that parses
//! to the same value; opening never panics, and a value that opens under one
//! binding opens under no other.
#![no_main]

use std::sync::OnceLock;

use kseal_shared::envelope::{Keyring, SealedValue, open};
use kseal_shared::binding::{Binding, Scope};
use libfuzzer_sys::fuzz_target;

static KEYRING: OnceLock<Keyring> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = SealedValue::parse(text) else {
        return;
    };
    let encoded = value.encode();
    let reparsed = SealedValue::parse(&encoded).expect("an encoded value parses");
    assert_eq!(reparsed, value);
    let keyring = KEYRING.get_or_init(kseal_fuzz::keyring);
    // The seeds are sealed strict to fuzz/seed/<key>.
    let binding = Binding::new(Scope::Strict, "fuzz", "seed", "key");
    if open(&value, &binding, keyring).is_ok() {
        for other in [
            Binding::new(Scope::Strict, "fuzz", "seed", "other"),
            Binding::new(Scope::Strict, "fuzz", "other", "key"),
            Binding::new(Scope::Strict, "other", "seed", "key"),
            Binding::new(Scope::NamespaceWide, "fuzz", "seed", "key"),
            Binding::new(Scope::ClusterWide, "fuzz", "seed", "key"),
        ] {
            assert!(open(&value, &other, keyring).is_err(), "moved value opened");
        }
    }
});
