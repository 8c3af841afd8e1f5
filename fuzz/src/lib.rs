//! Helpers shared by the fuzz targets.

use std::str::FromStr;

use kseal_shared::{envelope::Keyring, x25519::Identity};

/// The identity the committed seeds (`fuzz/seeds/`) are sealed to, so the
/// fuzzer reaches age's header MAC and the AEAD, not just the parser. A
/// throwaway key made for fuzzing: it protects nothing.
pub const FUZZ_IDENTITY: &str =
    "AGE-SECRET-KEY-1LH0HYQKKGCYA0V6KE8MP5JZLGQHY4NMAAUHRQ6WMWE23RYKLCEASGDEC0Y";

pub fn keyring() -> Keyring {
    match Identity::from_str(FUZZ_IDENTITY) {
        Ok(identity) => Keyring::new([identity]),
        Err(_) => unreachable!("the fuzz identity parses"),
    }
}

/// Asserts that a message does not quote a line of the input that looks
/// like a private key: errors about identity files must never echo them.
pub fn assert_no_secret_key_echo(input: &str, message: &str) {
    for line in input.lines() {
        let line = line.trim();
        if line.len() >= 20 && line.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-1") {
            assert!(
                !message.contains(line),
                "an error message quotes an identity line"
            );
        }
    }
}
