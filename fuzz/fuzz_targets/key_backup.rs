//! Key backups (`kseal keys backup` / `restore`): an age file holding a JSON
//! `List` of key Secrets, decrypted with the fuzz identity.
//!
//! Properties: no panic; what decrypts is a list of key Secrets.
#![no_main]

use std::str::FromStr;
use std::sync::OnceLock;

use kseal_shared::x25519::Identity;
use kseal_shared::backup::decrypt;
use libfuzzer_sys::fuzz_target;

static IDENTITY: OnceLock<Identity> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let identity = IDENTITY.get_or_init(|| {
        Identity::from_str(kseal_fuzz::FUZZ_IDENTITY).expect("the fuzz identity parses")
    });
    if let Ok(items) = decrypt(data, std::slice::from_ref(identity)) {
        for item in items {
            assert_eq!(item["kind"], "Secret");
            assert!(item["metadata"]["name"].is_string());
        }
    }
});
