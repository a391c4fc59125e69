//! Deterministic synthetic corpus: wire-text articles in the agency layout
//! (see `tests/fixtures/corpus/README.md`) and the same articles as Markdown
//! with YAML front matter, laid out as a Hugo site.
//!
//! Shared by `examples/gen_corpus.rs`, `examples/latency.rs`, the criterion
//! benches and `tests/gen_corpus_smoke.rs` through `#[path]` includes, so it
//! stays out of `src/`. Every article is generated from its own PRNG stream
//! (seed, index), so article `i` is the same whatever `count` is and files can
//! be written in parallel without changing a byte.
#![allow(dead_code)]

#[path = "vocab.rs"]
mod vocab;

use rayon::prelude::*;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// SplitMix64: tiny, self-contained and stable across crate versions (a
/// `rand` upgrade must never change the corpus a seed names).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The stream of article `index` under `seed`.
    pub fn for_article(seed: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn with the given relative weights.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Sections of a Vietnamese news agency (16, so per-category feeds are many).
pub const CATEGORIES: &[&str] = &[
    "Xây dựng Đảng",
    "Thời sự",
    "Kinh tế",
    "Thế giới",
    "Xã hội",
    "Văn hóa",
    "Thể thao",
    "Khoa học - Công nghệ",
    "Pháp luật",
    "Giáo dục",
    "Y tế",
    "Môi trường",
    "Du lịch",
    "Đô thị",
    "Nông nghiệp",
    "Quốc phòng - An ninh",
];

/// Datelines seen in the corpus.
pub const DATELINES: &[&str] = &[
    "Bà Rịa - Vũng Tàu",
    "Bình Dương",
    "Bình Thuận",
    "Băng Cốc",
    "Cần Thơ",
    "Hà Giang",
    "Hà Nội",
    "Long An",
    "Lào Cai",
    "Nghệ An",
    "Quảng Nam",
    "Quảng Trị",
    "Sóc Trăng",
    "Thành phố Hồ Chí Minh",
    "Tokyo",
    "Trà Vinh",
    "Viêng Chăn",
    "Đà Nẵng",
];

/// Bylines seen in the corpus.
pub const AUTHORS: &[&str] = &[
    "Bích Huệ",
    "Bùi Giang",
    "Chí Tưởng",
    "Hoài Nam",
    "Hoàng Hải",
    "Hoàng Nhị",
    "Hồ Cầu",
    "Hồng Nhung",
    "Mai Phương",
    "Minh Anh",
    "Nguyễn Linh",
    "Ngọc Quang",
    "Ngọc Thiện",
    "Quốc Khánh",
    "Quốc Việt",
    "Thanh Hòa",
    "Thanh Hương",
    "Thanh Liêm",
    "Tiến Lực",
    "Trung Hiếu",
    "Trần Lê Lâm",
    "Tuấn Anh",
    "Đoàn Hữu Trung",
    "Đoàn Mạnh Dương",
    "Đào Thanh Tùng",
    "Đỗ Bá Thành",
];

/// Paragraph counts 1..=12: most articles have 4–7, briefs and long reads are rarer.
const PARAGRAPH_WEIGHTS: [u64; 12] = [5, 6, 9, 13, 15, 13, 11, 9, 7, 5, 4, 3];

/// Publication dates: article `i` is `i` steps after the epoch (plus jitter),
/// so the highest index is the newest.
const DATE_EPOCH: i64 = 1_672_506_000; // 2023-01-01T00:00:00+07:00
const DATE_STEP_SECS: i64 = 300;

/// One generated article.
#[derive(Debug, Clone, PartialEq)]
pub struct GenArticle {
    pub index: u64,
    /// `NNNNNN_<16 hex>`: the file stem, so wire and Markdown ids agree.
    pub id: String,
    pub category: &'static str,
    pub title: String,
    pub dateline: Option<&'static str>,
    pub lead: Option<String>,
    /// Body paragraphs; the first without the `TTXVN - ` credit, the last
    /// without the `/.` end mark (the writers add them).
    pub paragraphs: Vec<String>,
    /// (position, caption): the caption follows paragraph `position - 1`,
    /// or the lead when `position` is 0.
    pub captions: Vec<(usize, String)>,
    pub authors: Vec<&'static str>,
    pub see_more: bool,
    /// Unix seconds; written with a +07:00 offset.
    pub published: i64,
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// One corpus clause.
fn phrase(rng: &mut Rng) -> &'static str {
    vocab::PHRASES[rng.below(vocab::PHRASES.len() as u64) as usize]
}

/// 2–4 corpus clauses joined by commas, capitalised, with a full stop.
fn sentence(rng: &mut Rng) -> String {
    let n = rng.range(2, 4);
    let mut s = String::new();
    for i in 0..n {
        let p = phrase(rng);
        if i == 0 {
            s.push_str(&capitalize(p));
        } else {
            s.push_str(", ");
            s.push_str(p);
        }
    }
    s.push('.');
    s
}

fn paragraph(rng: &mut Rng) -> String {
    let n = rng.range(1, 5);
    (0..n).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
}

fn title(rng: &mut Rng) -> String {
    let mut t = capitalize(phrase(rng));
    if rng.chance(60) {
        t.push(' ');
        t.push_str(phrase(rng));
    }
    t
}

fn caption(rng: &mut Rng) -> String {
    let credit = if rng.chance(50) {
        "TTXVN phát".to_string()
    } else {
        format!("{}/TTXVN", rng.pick(AUTHORS))
    };
    format!("{}. (Ảnh: {credit})", capitalize(phrase(rng)))
}

/// Article `index` of the corpus named by `seed`.
pub fn article(seed: u64, index: u64) -> GenArticle {
    let mut rng = Rng::for_article(seed, index);
    let id = format!("{index:06}_{:016x}", rng.next_u64());
    let category = *rng.pick(CATEGORIES);
    let title = title(&mut rng);
    let dateline = rng.chance(70).then(|| *rng.pick(DATELINES));
    let lead = rng.chance(85).then(|| sentence(&mut rng));
    let n = rng.weighted(&PARAGRAPH_WEIGHTS) + 1;
    let paragraphs: Vec<String> = (0..n).map(|_| paragraph(&mut rng)).collect();
    let mut captions = Vec::new();
    for _ in 0..rng.weighted(&[35, 35, 20, 10]) {
        let at = rng.range(if lead.is_some() { 0 } else { 1 }, n);
        captions.push((at, caption(&mut rng)));
    }
    captions.sort_by_key(|(at, _)| *at);
    let authors = match rng.weighted(&[8, 72, 20]) {
        0 => vec![],
        1 => vec![*rng.pick(AUTHORS)],
        _ => {
            let a = *rng.pick(AUTHORS);
            let mut b = *rng.pick(AUTHORS);
            while b == a {
                b = *rng.pick(AUTHORS);
            }
            vec![a, b]
        }
    };
    let see_more = rng.chance(30);
    let published = DATE_EPOCH + index as i64 * DATE_STEP_SECS + rng.below(240) as i64;
    GenArticle {
        index,
        id,
        category,
        title,
        dateline,
        lead,
        paragraphs,
        captions,
        authors,
        see_more,
        published,
    }
}

impl GenArticle {
    pub fn wire_name(&self) -> String {
        format!("{}.txt", self.id)
    }

    pub fn markdown_name(&self) -> String {
        format!("{}.md", self.id)
    }

    fn captions_at(&self, at: usize) -> impl Iterator<Item = &str> {
        self.captions
            .iter()
            .filter(move |(p, _)| *p == at)
            .map(|(_, c)| c.as_str())
    }

    /// The article in the agency's wire layout (UTF-8, LF).
    pub fn to_wire(&self) -> String {
        let mut s = String::with_capacity(4096);
        let _ = write!(s, "{}\n\n{}\n\n", self.category, self.title);
        if let Some(d) = self.dateline {
            let _ = write!(s, "{d}\n\n");
        }
        if let Some(l) = &self.lead {
            let _ = write!(s, "{l}\n\n");
        }
        for c in self.captions_at(0) {
            let _ = write!(s, "{c}\n\n");
        }
        let last = self.paragraphs.len() - 1;
        for (i, p) in self.paragraphs.iter().enumerate() {
            if i == 0 {
                s.push_str("TTXVN - ");
            }
            s.push_str(p);
            if i == last {
                s.push_str("/.");
            }
            s.push_str("\n\n");
            for c in self.captions_at(i + 1) {
                let _ = write!(s, "{c}\n\n");
            }
        }
        if !self.authors.is_empty() {
            let _ = write!(s, "{}\n\n", self.authors.join(" - "));
        }
        if self.see_more {
            s.push_str("Xem thêm\n");
        }
        while s.ends_with("\n\n") {
            s.pop();
        }
        s
    }

    /// RFC 3339 with the +07:00 offset.
    pub fn date_rfc3339(&self) -> String {
        let t = chrono::DateTime::from_timestamp(self.published, 0)
            .expect("date in range")
            .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap());
        t.to_rfc3339()
    }

    /// The same article as Markdown with YAML front matter (strings written
    /// as JSON, which is valid YAML).
    pub fn to_markdown(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("string");
        let mut s = String::with_capacity(4096);
        s.push_str("---\n");
        let _ = writeln!(s, "title: {}", q(&self.title));
        let _ = writeln!(s, "date: {}", self.date_rfc3339());
        let _ = writeln!(s, "categories: [{}]", q(self.category));
        let authors: Vec<String> = self.authors.iter().map(|a| q(a)).collect();
        let _ = writeln!(s, "authors: [{}]", authors.join(", "));
        if let Some(l) = &self.lead {
            let _ = writeln!(s, "summary: {}", q(l));
        }
        s.push_str("---\n\n");
        for c in self.captions_at(0) {
            let _ = write!(s, "*{c}*\n\n");
        }
        for (i, p) in self.paragraphs.iter().enumerate() {
            if i == 0
                && let Some(d) = self.dateline
            {
                let _ = write!(s, "**{d}** – ");
            }
            let _ = write!(s, "{p}\n\n");
            for c in self.captions_at(i + 1) {
                let _ = write!(s, "*{c}*\n\n");
            }
        }
        s.pop();
        s
    }
}

/// A minimal Hugo (0.111) site configuration that renders RSS only: the home
/// feed and the `posts` section feed, `limit` items each, no HTML pages, no
/// taxonomies.
pub fn hugo_config(limit: usize) -> String {
    format!(
        r#"baseURL = "http://127.0.0.1:8080/"
languageCode = "vi"
title = "feedwire bench"
disableKinds = ["taxonomy", "term", "sitemap", "robotsTXT", "404"]
disableHugoGeneratorInject = true

[outputs]
home = ["RSS"]
section = ["RSS"]
page = []

[services.rss]
limit = {limit}
"#
    )
}

/// Sizes of what was written.
#[derive(Debug, Default, Clone)]
pub struct Written {
    pub files: usize,
    pub bytes: u64,
    /// Wire file sizes, sorted.
    pub sizes: Vec<usize>,
}

/// Write articles `0..count` of `seed` as wire files into `out`, and, with
/// `hugo_site`, as Markdown into `hugo_site/content/posts/` plus
/// `hugo_site/hugo.toml`.
pub fn write_corpus(
    out: &Path,
    hugo_site: Option<&Path>,
    count: u64,
    seed: u64,
) -> io::Result<Written> {
    std::fs::create_dir_all(out)?;
    let posts = hugo_site.map(|s| s.join("content").join("posts"));
    if let (Some(site), Some(posts)) = (hugo_site, &posts) {
        std::fs::create_dir_all(posts)?;
        std::fs::write(site.join("hugo.toml"), hugo_config(50))?;
    }
    let mut sizes: Vec<usize> = (0..count)
        .into_par_iter()
        .map(|i| -> io::Result<usize> {
            let a = article(seed, i);
            let wire = a.to_wire();
            std::fs::write(out.join(a.wire_name()), &wire)?;
            if let Some(posts) = &posts {
                std::fs::write(posts.join(a.markdown_name()), a.to_markdown())?;
            }
            Ok(wire.len())
        })
        .collect::<io::Result<Vec<usize>>>()?;
    sizes.sort_unstable();
    Ok(Written {
        files: sizes.len(),
        bytes: sizes.iter().map(|&s| s as u64).sum(),
        sizes,
    })
}
