//! Ingest micro-benchmarks: one article's bytes → `Article`
//! (`feedwire::ingest::parse`: decode, NFC, layout, sanitised HTML).
//!
//! `cargo bench --bench ingest`

#[path = "support/corpus.rs"]
mod corpus;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use feedwire::ingest::{IngestOptions, parse};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn opts() -> IngestOptions {
    IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 4 << 20,
        now: chrono::Utc::now(),
        limits: Default::default(),
    }
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/corpus")
            .join(rel),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The generated article closest to the corpus median size (seed 1).
fn median_generated() -> corpus::GenArticle {
    let mut all: Vec<corpus::GenArticle> = (0..201).map(|i| corpus::article(1, i)).collect();
    all.sort_by_key(|a| a.to_wire().len());
    all.swap_remove(100)
}

fn bench_ingest(c: &mut Criterion) {
    let opts = opts();
    let g = median_generated();
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "wire/real_ttxvn_7.6KB",
            "000_ee2825b76e43200a.txt".into(),
            fixture("wire/000_ee2825b76e43200a.txt"),
        ),
        (
            "wire/generated_median",
            g.wire_name(),
            g.to_wire().into_bytes(),
        ),
        (
            "wire/windows-1258",
            "012_adf5ac6d4864a148.txt".into(),
            fixture("wire/012_adf5ac6d4864a148.txt"),
        ),
        (
            "markdown/yaml_fixture",
            "2024-09-15-dem-hoi-trang-ram-hoi-an.md".into(),
            fixture("markdown/2024-09-15-dem-hoi-trang-ram-hoi-an.md"),
        ),
        (
            "markdown/generated_median",
            g.markdown_name(),
            g.to_markdown().into_bytes(),
        ),
    ];
    let mut group = c.benchmark_group("ingest");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for (label, name, bytes) in &cases {
        parse(name, bytes, &opts).unwrap_or_else(|e| panic!("{label}: {e}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(*label, |b| {
            b.iter(|| parse(black_box(name), black_box(bytes), &opts).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_ingest);
criterion_main!(benches);
