//! Fixed-count loops of the operations the `seal` and `manifest` benches
//! time, for instruction counts under callgrind, which, unlike wall-clock
//! time, do not depend on what else the machine is doing:
//!
//! ```sh
//! cargo bench -p kseal-shared --bench ops --no-run   # prints the binary path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null <ops binary> seal/32B 200
//! ```
//!
//! `benches/callgrind.sh` runs every operation with 0 and N iterations and
//! prints instructions per operation. Under `cargo bench` (no operation
//! given) it does nothing.

#![allow(clippy::expect_used)]

use std::hint::black_box;

use kseal_shared::envelope::{Keyring, open, rewrap, seal};
use kseal_shared::manifest::{ManifestFile, PlainSecret};
use kseal_shared::{
    binding::{Binding, Scope},
    x25519::Identity,
};

#[path = "support/mod.rs"]
mod support;

use support::manifest;

const OPERATIONS: [&str; 9] = [
    "seal/32B",
    "seal/1KiB",
    "seal/64KiB",
    "unseal/32B",
    "unseal/1KiB",
    "unseal/64KiB",
    "unseal/32B/age-identity",
    "rewrap",
    "manifest/1000-docs",
];

fn size_of(operation: &str) -> usize {
    match operation.rsplit('/').next() {
        Some("1KiB") => 1024,
        Some("64KiB") => 64 * 1024,
        _ => 32,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(operation) = args.first().filter(|a| OPERATIONS.contains(&a.as_str())) else {
        eprintln!(
            "ops: give an operation ({}) and a count; see benches/callgrind.sh",
            OPERATIONS.join(", ")
        );
        return;
    };
    let count: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1);

    let identity = Identity::generate();
    let recipients = [identity.recipient().clone()];
    let keyring = Keyring::new([identity.clone()]);
    let binding = Binding::new(Scope::Strict, "payments", "db-credentials", "password");
    let plaintext: Vec<u8> = (0..size_of(operation))
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let sealed = seal(&plaintext, &binding, &recipients).expect("seal");
    let next = Identity::generate();
    let next_recipients = [next.recipient().clone()];
    let text = manifest();
    let reference: age::x25519::Identity = {
        use age::secrecy::ExposeSecret;
        identity
            .to_secret_string()
            .expose_secret()
            .parse()
            .expect("own identity parses")
    };

    for _ in 0..count {
        match operation.split('/').next() {
            Some("seal") => {
                black_box(seal(black_box(&plaintext), &binding, &recipients).expect("seal"));
            }
            Some("unseal") if operation.ends_with("age-identity") => {
                let decryptor =
                    age::Decryptor::new(black_box(sealed.wrapped_key())).expect("header");
                let mut reader = decryptor
                    .decrypt(std::iter::once(&reference as &dyn age::Identity))
                    .expect("unwrap");
                std::io::copy(&mut reader, &mut std::io::sink()).expect("read");
            }
            Some("unseal") => {
                black_box(open(black_box(&sealed), &binding, &keyring).expect("open"));
            }
            Some("rewrap") => {
                black_box(
                    rewrap(black_box(&sealed), &binding, &keyring, &next_recipients)
                        .expect("rewrap"),
                );
            }
            _ => {
                let file = ManifestFile::new(black_box(&text));
                let secrets: Vec<PlainSecret> = file
                    .objects()
                    .expect("parses")
                    .into_iter()
                    .map(|document| PlainSecret::from_value(document.value).expect("a Secret"))
                    .collect();
                black_box(secrets);
            }
        }
    }
}
