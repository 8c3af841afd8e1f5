//! The controller's request bodies (`POST /v1/verify`, `POST /v1/rewrap`):
//! `kseal_controller::http::parse_sealed_secret_body`, exactly the code the
//! handlers run. The first input byte picks the content type.
//!
//! Properties: no panic; a body that parses has a name; errors never quote
//! the body beyond the parser's own position information.
#![no_main]

use kseal_controller::http::parse_sealed_secret_body;
use kseal_shared::envelope::SealedValue;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/yaml"),
    Some("application/x-yaml"),
    Some("text/yaml"),
    Some("text/plain"),
    Some(""),
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(*selector) % CONTENT_TYPES.len()];
    match parse_sealed_secret_body(content_type, body) {
        Ok(sealed) => {
            assert!(!sealed.metadata.name.unwrap_or_default().is_empty());
            for value in sealed.spec.encrypted_data.values() {
                let _ = SealedValue::parse(value);
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
