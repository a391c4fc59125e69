//! WebSub fan-out of a running `feedwire run` daemon: how long until 1,000
//! loopback subscribers all have a signed update.
//!
//! ```sh
//! cargo run --release --example websub_fanout -- --addr 127.0.0.1:18080 \
//!     --articles DIR --feeds DIR [--subscribers 1000] [--timeout-secs 60]
//! ```
//!
//! Starts one loopback HTTP server that stands in for N subscribers
//! (`/cb/0` … `/cb/N-1`, each with its own secret), subscribes them all to the
//! daemon's `/feeds/atom.xml` through `POST /hub`, waits until every intent
//! verification was answered and the subscriptions had a moment to become
//! active, then renames a new article into the watched folder. The clock
//! starts just before the rename and stops when the last subscriber has
//! received a POST whose `X-Hub-Signature` verifies. The daemon needs
//! `websub.allowed_callback_hosts = ["127.0.0.1"]`.
//!
//! Prints `fanout_ms=… first_ms=… drain_per_s=… subscribers=N` (times
//! include the daemon's debounce).

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use hmac::{KeyInit, Mac};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    verified: usize,
    /// Arrival of the first valid signed delivery per subscriber.
    delivered: HashMap<usize, Instant>,
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
        s.delivered.entry(i).or_insert(at);
    } else {
        s.bad_signatures += 1;
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

#[tokio::main]
async fn main() {
    let addr = arg("--addr").expect("--addr HOST:PORT");
    let articles = PathBuf::from(arg("--articles").expect("--articles DIR"));
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
    let topic = format!("http://{addr}/feeds/atom.xml");
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
        assert_eq!(status, 202, "subscription {i} refused");
    }
    let deadline = Instant::now() + timeout;
    while seen.lock().unwrap().verified < n {
        assert!(Instant::now() < deadline, "verifications did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Activation is written right after the verification answer arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let staging = articles
        .parent()
        .unwrap_or(&articles)
        .join("fanout-staging.txt");
    let text = "Thời sự\n\nĐo thời gian phân phối WebSub\n\nHà Nội\n\nBản tin đo đạc.\n\nTTXVN - Nội dung đo thời gian phân phối tới một nghìn người đăng ký./.\n\nPhóng viên\n";
    std::fs::write(&staging, text).unwrap();
    let t0 = Instant::now();
    std::fs::rename(&staging, articles.join("999999_fanout0000000001.txt")).unwrap();
    loop {
        {
            let s = seen.lock().unwrap();
            if s.delivered.len() >= n {
                let first = s.delivered.values().min().unwrap().duration_since(t0);
                let last = s.delivered.values().max().unwrap().duration_since(t0);
                let spread = (last - first).as_secs_f64().max(1e-3);
                println!(
                    "fanout_ms={:.1} first_ms={:.1} drain_per_s={:.0} subscribers={n} bad_signatures={}",
                    last.as_secs_f64() * 1e3,
                    first.as_secs_f64() * 1e3,
                    n as f64 / spread,
                    s.bad_signatures
                );
                break;
            }
        }
        if Instant::now() > deadline + timeout {
            let s = seen.lock().unwrap();
            eprintln!(
                "timed out: {} of {n} delivered, {} bad signatures",
                s.delivered.len(),
                s.bad_signatures
            );
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Leave the daemon as we found it: unsubscribe everyone (intent is
    // verified against this server, so it must stay up until then), so later
    // measurements on the same daemon do not pay for deliveries to nobody.
    for i in 0..n {
        let callback = format!("http://{cb_addr}/cb/{i}");
        hub_request(&client, &addr, "unsubscribe", &topic, &callback, None).await;
    }
    let deadline = Instant::now() + timeout;
    while seen.lock().unwrap().verified < 2 * n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}
