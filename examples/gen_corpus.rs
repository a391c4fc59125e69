//! Deterministic synthetic corpus for the benchmarks.
//!
//! ```sh
//! cargo run --release --example gen_corpus -- --count 10000 --out /tmp/c/wire --seed 1 \
//!     [--markdown /tmp/c/hugo]
//! ```
//!
//! Writes `--count` wire articles (`NNNNNN_<16 hex>.txt`) into `--out`; with
//! `--markdown SITE`, the same articles as Markdown with YAML front matter in
//! `SITE/content/posts/` and a Hugo config (RSS output only) in `SITE/hugo.toml`.
//! The same seed always gives the same bytes. The logic lives in
//! `benches/support/corpus.rs`, shared with the benches and the smoke test.

#[path = "../benches/support/corpus.rs"]
mod corpus;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut count: Option<u64> = None;
    let mut out: Option<PathBuf> = None;
    let mut seed: u64 = 1;
    let mut markdown: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--count" => count = Some(value("--count").parse().expect("--count: a number")),
            "--out" => out = Some(value("--out").into()),
            "--seed" => seed = value("--seed").parse().expect("--seed: a number"),
            "--markdown" => markdown = Some(value("--markdown").into()),
            "-h" | "--help" => {
                println!("usage: gen_corpus --count N --out DIR [--seed S] [--markdown HUGO_SITE]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument `{other}`; try --help");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(count), Some(out)) = (count, out) else {
        eprintln!("usage: gen_corpus --count N --out DIR [--seed S] [--markdown HUGO_SITE]");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    let w = match corpus::write_corpus(&out, markdown.as_deref(), count, seed) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot write the corpus: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pct = |p: usize| {
        w.sizes
            .get((w.sizes.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} wire articles ({} bytes; size min {} / median {} / p90 {} / max {}){} in {:.2}s (seed {seed})",
        w.files,
        w.bytes,
        pct(0),
        pct(50),
        pct(90),
        pct(100),
        if markdown.is_some() {
            " + Markdown"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
