//! Reading a 1,000-document manifest file (1,000 Secrets with 5 values each,
//! as `kseal seal -f` reads it): splitting and parsing the YAML, then turning
//! each document into a `PlainSecret`. Throughput is in documents per second.
//! `cargo bench -p kseal-shared --bench manifest`

#![allow(clippy::expect_used)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kseal_shared::manifest::{ManifestFile, PlainSecret};

const DOCUMENTS: usize = 1000;

/// 1,000 `v1` Secrets, 5 `data` values each (base64 of 32 bytes), with a
/// label and an annotation: about 400 KiB.
fn manifest() -> String {
    let mut text = String::new();
    for i in 0..DOCUMENTS {
        let _ = write!(
            text,
            "---\n# Secret {i}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}\n  namespace: team-{}\n  labels:\n    app.kubernetes.io/name: app-{i}\n  annotations:\n    owner: team-{}\ntype: Opaque\ndata:\n",
            i % 10,
            i % 10
        );
        for k in 0..5 {
            let _ = writeln!(text, "  key{k}: {}", base64_32(i, k));
        }
    }
    text
}

fn base64_32(i: usize, k: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // 32 bytes: 42 characters, a 43rd carrying 4 bits (low 2 bits zero), '='.
    let mut out: String = (0..42)
        .map(|n| char::from(ALPHABET[(i * 7 + k * 13 + n) % 64]))
        .collect();
    out.push('A');
    out.push('=');
    out
}

fn bench(c: &mut Criterion) {
    let text = manifest();
    let mut group = c.benchmark_group("manifest");
    group.throughput(Throughput::Elements(DOCUMENTS as u64));
    group.bench_function("parse/1000-docs", |b| {
        b.iter(|| {
            let file = ManifestFile::new(black_box(&text));
            file.objects().expect("parses")
        })
    });
    group.bench_function("parse+plain-secret/1000-docs", |b| {
        b.iter(|| {
            let file = ManifestFile::new(black_box(&text));
            file.objects()
                .expect("parses")
                .into_iter()
                .map(|document| PlainSecret::from_value(document.value).expect("a Secret"))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
