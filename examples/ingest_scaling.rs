//! How `ingest::parse` time grows with input size for each hostile shape in
//! `benches/support/hostile.rs`: a Markdown table of seconds per size.
//!
//! ```sh
//! cargo run --release --example ingest_scaling [-- --timeout 60 --sizes 10k,20k,40k,80k,1m,2m,4m SHAPE…]
//! ```
//!
//! Each measurement runs in a child process with a timeout, so a shape that
//! is quadratic (or crashes the parser) cannot stall the table; once a size
//! times out, larger sizes of that shape are not tried. A cell reads
//! `seconds outcome`, where outcome is `ok <html bytes>` or the error kind.

#[path = "../benches/support/hostile.rs"]
mod hostile;

use feedwire::ingest::{IngestOptions, parse};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn opts() -> IngestOptions {
    IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 4 << 20,
        now: chrono::Utc::now(),
        limits: Default::default(),
    }
}

fn parse_size(s: &str) -> usize {
    let s = s.to_ascii_lowercase();
    let (num, mult) = match s.strip_suffix('k') {
        Some(n) => (n, 1000),
        None => match s.strip_suffix('m') {
            Some(n) => (n, 1_000_000),
            None => (s.as_str(), 1),
        },
    };
    num.parse::<usize>().expect("a size like 40k or 2m") * mult
}

fn label(size: usize) -> String {
    if size >= 1_000_000 {
        format!("{} MB", size / 1_000_000)
    } else {
        format!("{} KB", size / 1000)
    }
}

/// Child mode: parse one shape at one size and print `seconds outcome`.
fn one(name: &str, size: usize) -> ExitCode {
    let shape = hostile::shape(name).expect("known shape");
    let bytes = (shape.make)(size);
    let opts = opts();
    let started = Instant::now();
    let result = parse(shape.file_name, &bytes, &opts);
    let secs = started.elapsed().as_secs_f64();
    let outcome = match result {
        Ok(a) => format!("ok {}", a.content_html.len()),
        Err(e) => {
            let debug = format!("{e:?}");
            let kind = debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("?")
                .to_string();
            format!("err {kind}")
        }
    };
    println!("{secs:.4} {outcome}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        return one(&args[1], args[2].parse().expect("size"));
    }
    let mut timeout = Duration::from_secs(30);
    let mut sizes: Vec<usize> = ["10k", "20k", "40k", "80k", "1m", "2m", "4m"]
        .iter()
        .map(|s| parse_size(s))
        .collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--timeout" => {
                timeout = Duration::from_secs(args[i + 1].parse().expect("--timeout SECONDS"));
                args.drain(i..i + 2);
            }
            "--sizes" => {
                sizes = args[i + 1].split(',').map(parse_size).collect();
                args.drain(i..i + 2);
            }
            _ => i += 1,
        }
    }
    let shapes: Vec<&hostile::Shape> = if args.is_empty() {
        hostile::SHAPES.iter().collect()
    } else {
        args.iter()
            .map(|a| hostile::shape(a).unwrap_or_else(|| panic!("unknown shape {a}")))
            .collect()
    };
    let exe = std::env::current_exe().expect("own path");
    let header: Vec<String> = sizes.iter().map(|s| label(*s)).collect();
    println!("| shape | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(sizes.len()));
    for shape in shapes {
        let mut cells = Vec::new();
        let mut gave_up = false;
        for &size in &sizes {
            if gave_up {
                cells.push("–".to_string());
                continue;
            }
            let mut child = Command::new(&exe)
                .args(["--one", shape.name, &size.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn self");
            let started = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    break Some(status);
                }
                if started.elapsed() > timeout {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let cell = match status {
                None => {
                    gave_up = true;
                    format!("> {} s (killed)", timeout.as_secs())
                }
                Some(s) if !s.success() => {
                    gave_up = true;
                    format!("crashed ({s})")
                }
                Some(_) => {
                    let out = child.wait_with_output().expect("output");
                    String::from_utf8_lossy(&out.stdout).trim().to_string()
                }
            };
            cells.push(cell);
        }
        println!("| {} | {} |", shape.name, cells.join(" | "));
    }
    ExitCode::SUCCESS
}
