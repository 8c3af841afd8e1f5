//! One value: seal, unseal and re-wrap, against the targets in
//! `docs/benchmarks.md` (≥ 16,000 seals/s and ≥ 21,000 unseals/s on one core
//! for small values). Throughput is in values (elements) per second.
//! `cargo bench -p kseal-shared --bench seal`

#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kseal_shared::envelope::{Keyring, open, rewrap, seal};
use kseal_shared::{
    binding::{Binding, Scope},
    x25519::Identity,
};

/// Value sizes: a password, a certificate-sized value, a large blob.
const SIZES: [(&str, usize); 3] = [("32B", 32), ("1KiB", 1024), ("64KiB", 64 * 1024)];

fn bench(c: &mut Criterion) {
    let identity = Identity::generate();
    let recipients = [identity.recipient().clone()];
    let keyring = Keyring::new([identity.clone()]);
    let binding = Binding::new(Scope::Strict, "payments", "db-credentials", "password");

    let mut group = c.benchmark_group("value");
    group.throughput(Throughput::Elements(1));
    for (label, size) in SIZES {
        let plaintext: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        group.bench_function(format!("seal/{label}"), |b| {
            b.iter(|| seal(black_box(&plaintext), &binding, &recipients))
        });
        let sealed = seal(&plaintext, &binding, &recipients).expect("seal");
        group.bench_function(format!("unseal/{label}"), |b| {
            b.iter(|| open(black_box(&sealed), &binding, &keyring))
        });
    }

    let sealed = seal(&[b'a'; 32], &binding, &recipients).expect("seal");
    // Unwrapping the data key with age's stock X25519 identity, which
    // recomputes its public key on every unwrap: the gap a cached identity closes.
    let reference = age::x25519::Identity::from_str_secret(&identity);
    group.bench_function("unseal/32B/age-identity", |b| {
        b.iter(|| {
            let decryptor = age::Decryptor::new(black_box(sealed.wrapped_key())).expect("header");
            let mut reader = decryptor
                .decrypt(std::iter::once(&reference as &dyn age::Identity))
                .expect("unwrap");
            std::io::copy(&mut reader, &mut std::io::sink()).expect("read")
        })
    });
    // Re-wrap: the data key to a new recipient; the ciphertext is untouched,
    // so the cost does not depend on the value's size.
    let next = Identity::generate();
    let next_recipients = [next.recipient().clone()];
    group.bench_function("rewrap", |b| {
        b.iter(|| rewrap(black_box(&sealed), &binding, &keyring, &next_recipients))
    });
    group.finish();
}

/// age's stock identity, for comparison with the cached one.
trait FromSecret {
    fn from_str_secret(identity: &Identity) -> Self;
}

impl FromSecret for age::x25519::Identity {
    fn from_str_secret(identity: &Identity) -> Self {
        use age::secrecy::ExposeSecret;
        identity
            .to_secret_string()
            .expose_secret()
            .parse()
            .expect("own identity parses")
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
