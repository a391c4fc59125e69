//! WebSub fan-out of a running `feedwire run` daemon: how long until N
//! loopback subscribers (1,000 by default) all have a signed update. This is
//! the benchmark figure; `tests/syndicate.rs` checks the same delivery
//! contract with a few subscribers.
//!
//! ```sh
//! cargo run --release --example websub_fanout -- --addr 127.0.0.1:18080 \
//!     --config SITE/config.toml [--subscribers 1000] [--timeout-secs 60]
//! ```
//!
//! `--addr` is where the daemon listens; `--config` is the daemon's own
//! config: topic URLs start with its `site.base_url` (what the hub checks
//! `hub.topic` against), the article is dropped into its `paths.articles`,
//! and its catalog says when the subscriptions are active (as
//! `feedwire status` does).
//!
//! Starts one loopback HTTP server that stands in for N subscribers
//! (`/cb/0` … `/cb/N-1`, each with its own secret), subscribes them all to
//! `/feeds/atom.xml` through `POST /hub`, waits until all N are active, then
//! renames a new article into the watched folder. The clock starts just
//! before the rename and stops when the last subscriber has received a POST
//! whose `X-Hub-Signature` verifies with its secret. Then, as the test
//! checks it: after a moment for strays, every subscriber must have had
//! exactly one delivery, correctly signed, carrying the new article. Last,
//! everyone is unsubscribed, so later measurements on the same daemon do not
//! pay for deliveries to nobody.
//!
//! The subscribers are all one client (127.0.0.1), so the daemon needs
//! `websub.allowed_callback_hosts = ["127.0.0.1"]` and per-client limits
//! raised to fit N (`client_burst`, `max_pending_verifications_per_client`,
//! `max_subscriptions_per_client`; `bench/run.sh` also raises
//! `max_deliveries_in_flight_per_client`).
//!
//! Prints `fanout_ms=… first_ms=… drain_per_s=… subscribers=N` (times
//! include the daemon's debounce) and exits 0, or says what went wrong and
//! exits 1.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use feedwire::config::Config;
use hmac::{KeyInit, Mac};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TITLE: &str = "Đo thời gian phân phối WebSub";

#[derive(Default)]
struct Seen {
    verified: usize,
    /// Arrival of the first correctly signed delivery per subscriber.
    first_signed: HashMap<usize, Instant>,
    /// Deliveries per subscriber, signed or not.
    deliveries: HashMap<usize, usize>,
    /// Each distinct body delivered (normally one document), checked after
    /// the measurement so the receiver stays cheap while it runs.
    bodies: Vec<axum::body::Bytes>,
    bad_signatures: usize,
}

type Shared = Arc<Mutex<Seen>>;

async fn verify(State(seen): State<Shared>, Query(q): Query<HashMap<String, String>>) -> String {
    seen.lock().unwrap().verified += 1;
    q.get("hub.challenge").cloned().unwrap_or_default()
}

async fn deliver(
    State(seen): State<Shared>,
    UrlPath(i): UrlPath<usize>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) {
    let at = Instant::now();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret(i).as_bytes()).unwrap();
    mac.update(&body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let got = headers
        .get("x-hub-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut s = seen.lock().unwrap();
    if got == want {
        s.first_signed.entry(i).or_insert(at);
    } else {
        s.bad_signatures += 1;
    }
    *s.deliveries.entry(i).or_default() += 1;
    if !s.bodies.contains(&body) {
        s.bodies.push(body);
    }
}

/// A form-encoded request to the daemon's hub; returns the HTTP status.
async fn hub_request(
    client: &reqwest::Client,
    addr: &str,
    mode: &str,
    topic: &str,
    callback: &str,
    secret: Option<&str>,
) -> u16 {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("hub.mode", mode)
        .append_pair("hub.topic", topic)
        .append_pair("hub.callback", callback);
    if let Some(s) = secret {
        form.append_pair("hub.secret", s);
    }
    client
        .post(format!("http://{addr}/hub"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.finish())
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

fn secret(i: usize) -> String {
    format!("bench-secret-{i}")
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Active WebSub subscriptions, read from the catalog the way
/// `feedwire status` reads it.
fn active_subscriptions(cfg: &Config) -> usize {
    let status = feedwire::status::render(cfg).expect("feedwire status over --config's catalog");
    status
        .lines()
        .find_map(|l| {
            let (before, _) = l.split_once(" active subscription")?;
            before.split_whitespace().last()?.parse().ok()
        })
        .expect("an `N active subscription(s)` line in feedwire status")
}

/// What is wrong with the deliveries, if anything: the test's contract.
fn problems(seen: &Seen, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    if seen.bad_signatures > 0 {
        out.push(format!(
            "{} deliveries without a valid X-Hub-Signature",
            seen.bad_signatures
        ));
    }
    let missing = (0..n).filter(|i| !seen.deliveries.contains_key(i)).count();
    if missing > 0 {
        out.push(format!("{missing} subscribers got no delivery"));
    }
    let repeated = seen.deliveries.values().filter(|&&d| d > 1).count();
    if repeated > 0 {
        out.push(format!("{repeated} subscribers got more than one delivery"));
    }
    for body in &seen.bodies {
        match feed_rs::parser::parse(body.as_ref()) {
            Ok(feed) => {
                let has_title = feed
                    .entries
                    .iter()
                    .any(|e| e.title.as_ref().is_some_and(|t| t.content == TITLE));
                if !has_title {
                    out.push(format!("a delivered document lacks the entry {TITLE:?}"));
                }
            }
            Err(e) => out.push(format!("a delivered document is not a feed: {e}")),
        }
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = arg("--addr").expect("--addr HOST:PORT (where the daemon listens)");
    let config = PathBuf::from(arg("--config").expect("--config PATH (the daemon's config)"));
    let cfg = Config::load(&config).unwrap_or_else(|e| panic!("{e:#}"));
    let n: usize = arg("--subscribers").map_or(1000, |v| v.parse().unwrap());
    let timeout = Duration::from_secs(arg("--timeout-secs").map_or(60, |v| v.parse().unwrap()));

    let seen: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/cb/{i}", get(verify).post(deliver))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cb_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = {
        feedwire::install_tls_provider();
        reqwest::Client::new()
    };
    let topic = format!("{}/feeds/atom.xml", cfg.site.base_url.trim_end_matches('/'));
    let already_active = active_subscriptions(&cfg);
    for i in 0..n {
        let callback = format!("http://{cb_addr}/cb/{i}");
        let status = hub_request(
            &client,
            &addr,
            "subscribe",
            &topic,
            &callback,
            Some(&secret(i)),
        )
        .await;
        if status != 202 {
            eprintln!(
                "subscription {i} answered {status}, not 202: raise the per-client limits in [websub] (see this example's doc comment)"
            );
            return ExitCode::FAILURE;
        }
    }
    let deadline = Instant::now() + timeout;
    while active_subscriptions(&cfg) < already_active + n {
        if Instant::now() > deadline {
            eprintln!(
                "timed out: {} of {n} subscriptions active after {timeout:?}",
                active_subscriptions(&cfg) - already_active
            );
            return ExitCode::FAILURE;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let articles = &cfg.paths.articles;
    let staging = articles
        .parent()
        .unwrap_or(articles)
        .join("fanout-staging.txt");
    let text = format!(
        "Thời sự\n\n{TITLE}\n\nHà Nội\n\nBản tin đo đạc.\n\nTTXVN - Nội dung đo thời gian phân phối tới một nghìn người đăng ký./.\n\nPhóng viên\n"
    );
    std::fs::write(&staging, text).unwrap();
    let t0 = Instant::now();
    std::fs::rename(&staging, articles.join("999999_fanout0000000001.txt")).unwrap();
    let deadline = Instant::now() + timeout;
    let (first, last) = loop {
        {
            let s = seen.lock().unwrap();
            if s.first_signed.len() >= n {
                let first = s.first_signed.values().min().unwrap().duration_since(t0);
                let last = s.first_signed.values().max().unwrap().duration_since(t0);
                break (first, last);
            }
            if Instant::now() > deadline {
                eprintln!(
                    "timed out: {} of {n} subscribers have a signed delivery after {timeout:?}; {}",
                    s.first_signed.len(),
                    problems(&s, n).join("; ")
                );
                return ExitCode::FAILURE;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // Give stray deliveries a chance to show up before counting them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let problems = problems(&seen.lock().unwrap(), n);

    // Leave the daemon as we found it (intent is verified against this
    // server, so it must stay up until then).
    let verified_before = seen.lock().unwrap().verified;
    for i in 0..n {
        let callback = format!("http://{cb_addr}/cb/{i}");
        hub_request(&client, &addr, "unsubscribe", &topic, &callback, None).await;
    }
    let deadline = Instant::now() + timeout;
    while seen.lock().unwrap().verified < verified_before + n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    if !problems.is_empty() {
        eprintln!("the fan-out went wrong: {}", problems.join("; "));
        return ExitCode::FAILURE;
    }
    let spread = (last - first).as_secs_f64().max(1e-3);
    println!(
        "fanout_ms={:.1} first_ms={:.1} drain_per_s={:.0} subscribers={n}",
        last.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        n as f64 / spread,
    );
    ExitCode::SUCCESS
}
