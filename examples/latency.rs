//! Event-to-publish latency of a running `feedwire run` daemon.
//!
//! ```sh
//! cargo run --release --example latency -- --articles DIR --feeds DIR --staging DIR \
//!     [--count 200] [--seed 99] [--debounce-ms 50] [--timeout-secs 30]
//! ```
//!
//! Drops `--count` new generated wire articles into the watched folder one at
//! a time: each is written completely to `--staging` (outside the watched
//! folder, same file system) and then renamed in. The clock starts just before
//! the rename and stops when the article's title is in `FEEDS/rss.xml` on
//! disk; the next article is dropped only then. The feeds folder is watched
//! with inotify (via `notify`), with a 2 ms stat poll as a safety net, and
//! `rss.xml` is re-read only when its inode, size or mtime changed.
//!
//! Prints one line of `key=value` pairs: p50/p99/max/mean of the raw latency
//! and of the latency minus the debounce (`watch.debounce_ms` of the daemon,
//! passed as `--debounce-ms`; this tool cannot change it).

#[path = "../benches/support/corpus.rs"]
mod corpus;

use notify::Watcher;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Args {
    articles: PathBuf,
    feeds: PathBuf,
    staging: PathBuf,
    count: usize,
    seed: u64,
    debounce_ms: f64,
    timeout: Duration,
}

fn args() -> Result<Args, String> {
    let mut articles = None;
    let mut feeds = None;
    let mut staging = None;
    let mut count = 200;
    let mut seed = 99;
    let mut debounce_ms = 0.0;
    let mut timeout = Duration::from_secs(30);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{a}: not a number"));
        match a.as_str() {
            "--articles" => articles = Some(PathBuf::from(v)),
            "--feeds" => feeds = Some(PathBuf::from(v)),
            "--staging" => staging = Some(PathBuf::from(v)),
            "--count" => count = num(&v)? as usize,
            "--seed" => seed = num(&v)?,
            "--debounce-ms" => debounce_ms = num(&v)? as f64,
            "--timeout-secs" => timeout = Duration::from_secs(num(&v)?),
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    Ok(Args {
        articles: articles.ok_or("--articles is required")?,
        feeds: feeds.ok_or("--feeds is required")?,
        staging: staging.ok_or("--staging is required")?,
        count,
        seed,
        debounce_ms,
        timeout,
    })
}

/// What identifies one version of a file replaced by rename.
fn stamp(path: &Path) -> Option<(u64, u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("latency: {e}");
            return ExitCode::from(2);
        }
    };
    std::fs::create_dir_all(&a.staging).expect("staging folder");
    let rss = a.feeds.join("rss.xml");
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    })
    .expect("inotify watcher");
    watcher
        .watch(&a.feeds, notify::RecursiveMode::NonRecursive)
        .expect("watch the feeds folder");

    // A nonce keeps markers unique across runs over the same archive.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        % 1_000_000_000;
    let mut raw_ms = Vec::with_capacity(a.count);
    for i in 0..a.count {
        // Indexes far above any generated archive, so ids never collide.
        let mut g = corpus::article(a.seed, 900_000 + i as u64);
        let marker = format!("LAT{nonce}x{i:05}");
        g.title = format!("{} {marker}", g.title);
        let name = format!("lat_{nonce}_{i:05}_{}", g.wire_name());
        let staged = a.staging.join(&name);
        std::fs::write(&staged, g.to_wire()).expect("write the staged article");
        while rx.try_recv().is_ok() {}
        let mut last = stamp(&rss);
        let target = a.articles.join(&name);
        let t0 = Instant::now();
        std::fs::rename(&staged, &target).expect("rename into the watched folder");
        loop {
            let _ = rx.recv_timeout(Duration::from_millis(2));
            let now = stamp(&rss);
            if now.is_some() && now != last {
                last = now;
                if let Ok(bytes) = std::fs::read(&rss)
                    && contains(&bytes, marker.as_bytes())
                {
                    raw_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    break;
                }
            }
            if t0.elapsed() > a.timeout {
                eprintln!(
                    "latency: {name} not in {} after {:?}; giving up",
                    rss.display(),
                    a.timeout
                );
                return ExitCode::FAILURE;
            }
        }
    }
    drop(watcher);
    let mut sorted = raw_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    let d = a.debounce_ms;
    println!(
        "n={} debounce_ms={d} raw_p50_ms={:.1} raw_p99_ms={:.1} raw_max_ms={:.1} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} mean_ms={:.1} min_ms={:.1}",
        sorted.len(),
        quantile(&sorted, 0.5),
        quantile(&sorted, 0.99),
        sorted[sorted.len() - 1],
        quantile(&sorted, 0.5) - d,
        quantile(&sorted, 0.99) - d,
        sorted[sorted.len() - 1] - d,
        mean - d,
        sorted[0] - d,
    );
    ExitCode::SUCCESS
}
