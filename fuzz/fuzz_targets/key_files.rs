//! Identity files (`AGE-SECRET-KEY-1…`), recipients files (`age1…`), single
//! recipients and key ids.
//!
//! Properties: no panic; a parsed recipient prints in a form that parses to
//! the same key id; a parsed key id prints as itself; errors about identity
//! files never quote an identity line.
#![no_main]

use std::str::FromStr;

use kseal_shared::x25519::{parse_identity_file, parse_recipients_file};
use kseal_shared::x25519::{Identity, KeyId, Recipient};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_identity_file(text) {
        Ok(identities) => {
            for identity in identities {
                let recipient = identity.recipient().to_string();
                let again = Recipient::from_str(&recipient).expect("own recipient parses");
                assert_eq!(again.key_id(), identity.key_id());
            }
        }
        Err(err) => kseal_fuzz::assert_no_secret_key_echo(text, &err.to_string()),
    }
    if let Ok(recipients) = parse_recipients_file(text) {
        for recipient in recipients {
            let again = Recipient::from_str(&recipient.to_string()).expect("round trip");
            assert_eq!(again, recipient);
            assert_eq!(
                KeyId::of_recipient_str(&recipient.to_string()),
                recipient.key_id()
            );
        }
    }
    for line in text.lines().take(8) {
        if let Err(err) = Identity::from_str(line) {
            kseal_fuzz::assert_no_secret_key_echo(line, &err.to_string());
        }
        let _ = Recipient::from_str(line);
        if let Ok(id) = KeyId::from_str(line) {
            assert_eq!(id.to_string(), line);
        }
    }
});
