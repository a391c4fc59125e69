//! Render micro-benchmarks: 50 entries → RSS 2.0 + Atom 1.0 + JSON Feed 1.1
//! (`feedwire::render::render_feed`), rendered whole and joined from
//! remembered entry fragments, and the publish gate that parses each
//! document back before it replaces the last good one
//! (`feedwire::publish::verify`), also on a 1,000-URL sitemap page.
//!
//! `cargo bench --bench render`

#[path = "support/corpus.rs"]
mod corpus;

use chrono::{DateTime, FixedOffset};
use criterion::{Criterion, criterion_group, criterion_main};
use feedwire::article::Entry;
use feedwire::catalog::FeedKey;
use feedwire::config::Config;
use feedwire::ingest::{IngestOptions, parse};
use feedwire::render::{FRAGMENTS_BUDGET, FeedInfo, Fragments, Reuse, render_feed};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

/// 50 entries from generated articles, newest first, as the catalog gives them.
fn entries(n: u64) -> Vec<Entry> {
    let opts = IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 4 << 20,
        now: chrono::Utc::now(),
        limits: Default::default(),
    };
    (0..n)
        .rev()
        .map(|i| {
            let g = corpus::article(1, i);
            let article = parse(&g.wire_name(), g.to_wire().as_bytes(), &opts).unwrap();
            let at: DateTime<FixedOffset> =
                DateTime::parse_from_rfc3339(&g.date_rfc3339()).unwrap();
            Entry::new(&article, at, at)
        })
        .collect()
}

fn bench_render(c: &mut Criterion) {
    let cfg = Config::from_toml(
        "[site]\ntitle = \"Tin tức feedwire\"\nbase_url = \"http://127.0.0.1:8080\"\n",
        Path::new("config.toml"),
    )
    .unwrap();
    let entries = entries(50);
    let info = FeedInfo::new(&cfg, FeedKey::Main, None);
    let docs = render_feed(&cfg, &info, &entries, &[], None).unwrap();
    for d in &docs {
        assert_eq!(d.entries, 50, "{} was capped", d.path);
    }

    let mut group = c.benchmark_group("render");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    group.bench_function("render_feed_50_entries_rss_atom_json", |b| {
        b.iter(|| render_feed(&cfg, &info, black_box(&entries), &[], None).unwrap())
    });
    // An event's main feed: every entry's fragments remembered (49 of 50
    // in the daemon), the documents joined from them.
    let memo = Fragments::new(FRAGMENTS_BUDGET);
    let reuse = Some(Reuse {
        memo: &memo,
        remember: true,
    });
    let joined = render_feed(&cfg, &info, &entries, &[], reuse).unwrap();
    for (a, b) in docs.iter().zip(&joined) {
        assert!(a.bytes == b.bytes, "{} joined differs", a.path);
    }
    group.bench_function("render_feed_50_entries_joined_from_fragments", |b| {
        b.iter(|| render_feed(&cfg, &info, black_box(&entries), &[], reuse).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("publish_gate");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    // A page of the full sitemap as an event rewrites it: 1,000 article
    // pages of one site.
    let urls: Vec<feedwire::catalog::PageUrl> = crate::entries(1000)
        .iter()
        .map(|e| feedwire::catalog::PageUrl {
            id: e.id.clone(),
            lastmod_us: e.updated.timestamp_micros(),
        })
        .collect();
    let sitemap =
        feedwire::render::sitemap::render_page(&cfg, "sitemaps/sitemap-00001.xml", &urls).unwrap();
    for d in docs.iter().chain([&sitemap]) {
        let label = format!(
            "verify_{}_{}KB",
            d.path.replace('.', "_"),
            d.bytes.len() / 1024
        );
        group.bench_function(label, |b| {
            b.iter(|| feedwire::publish::verify(black_box(d)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
