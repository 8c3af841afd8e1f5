//! Reading a 1,000-document manifest file (1,000 Secrets with 5 values each,
//! as `kseal seal -f` reads it): splitting and parsing the YAML, then turning
//! each document into a `PlainSecret`. Throughput is in documents per second.
//! `cargo bench -p kseal-shared --bench manifest`

#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kseal_shared::manifest::{ManifestFile, PlainSecret};

#[path = "support/mod.rs"]
mod support;

use support::{DOCUMENTS, manifest};

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
