//! Ingest micro-benchmarks: one article's bytes → `Article`
//! (`feedwire::ingest::parse`: decode, NFC, layout, sanitised HTML), and the
//! worst hostile shapes at two sizes five times apart: with throughput in
//! bytes, equal rates at both sizes mean the work is linear in the input.
//!
//! `cargo bench --bench ingest` (`-- hostile` for the hostile group only)

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/hostile.rs"]
mod hostile;

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

/// The shapes that were quadratic (or worse) before ingest bounded them,
/// one per cause: tree-builder depth (Markdown quotes, lists, raw HTML),
/// reopened formatting, foster parenting, the serialiser's rescans, HTML
/// expansion, YAML flow nesting and aliases; plus two accepted shapes.
const WORST: [&str; 12] = [
    "md_quote_no_space",
    "md_list_one_line",
    "md_html_div_nested",
    "md_html_reopened_attribute",
    "md_html_foster_parented",
    "md_html_bare_ampersands",
    "md_link_long_url_ampersands",
    "md_table_padding",
    "md_yaml_nested",
    "md_yaml_aliases",
    "md_entities_line",
    "wire_quotes_line",
];

fn bench_hostile(c: &mut Criterion) {
    let opts = opts();
    let mut group = c.benchmark_group("hostile");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for name in WORST {
        let shape = hostile::shape(name).expect("a known shape");
        for size in [40_000, 200_000] {
            let bytes = (shape.make)(size);
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_function(format!("{name}/{}KB", size / 1000), |b| {
                // Most of these are refused; the time to say so is the point.
                b.iter(|| parse(black_box(shape.file_name), black_box(&bytes), &opts).is_ok())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_ingest, bench_hostile);
criterion_main!(benches);
