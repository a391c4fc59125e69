//! Hostile clients of the built-in WebSub hub and hostile receivers of our
//! outbound requests (issue 9, points 4 and 7), against the real daemon on
//! loopback. Callbacks, hubs and partners here are real servers: a raw TCP
//! server that can answer with an endless body or not at all, and a small
//! HTTP server that echoes challenges.
//!
//! Memory is judged by the daemon's peak resident size (`VmHWM`), with a
//! generous margin; time only by generous deadlines. Clients that must count
//! as different subscribers send from different loopback addresses
//! (127.0.0.0/8 is all loopback on Linux).
//!
//! Each test prints a MEASUREMENT line (peak memory, how long a legitimate
//! subscriber's verification took); `FEEDWIRE_ABUSE_REPLY_MIB` sets the size
//! of the endless answers (default 128).

use crate::common::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const LONG: Duration = Duration::from_secs(60);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

// ---------------------------------------------------------------- servers

/// How the hostile server answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// 200 with the `hub.challenge` (or an empty body): a well-behaved callback.
    Echo,
    /// This status, then a body that goes on for `reply_bytes()`.
    Endless(u16),
    /// Read the request, then say nothing until the peer gives up.
    Silent,
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: HashMap<String, String>,
}

/// A raw TCP HTTP/1.1 server whose answers a routing function picks.
struct Hostile {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Endless answers begun, and ended (written in full or cut off by the peer).
    endless_started: Arc<AtomicUsize>,
    endless_ended: Arc<AtomicUsize>,
    /// Connections currently held open by `Silent`.
    silent_open: Arc<AtomicUsize>,
}

/// Size of every endless answer. Bounded so that the old daemon, which
/// reads them whole, cannot take the test machine down with it.
fn reply_bytes() -> u64 {
    let mib: u64 = std::env::var("FEEDWIRE_ABUSE_REPLY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    mib << 20
}

impl Hostile {
    fn start(route: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Hostile {
        let route = Arc::new(route);
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let h = Hostile {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            endless_started: Arc::default(),
            endless_ended: Arc::default(),
            silent_open: Arc::default(),
        };
        let (seen, started, ended, silent) = (
            h.seen.clone(),
            h.endless_started.clone(),
            h.endless_ended.clone(),
            h.silent_open.clone(),
        );
        runtime().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (route, seen, started, ended, silent) = (
                    route.clone(),
                    seen.clone(),
                    started.clone(),
                    ended.clone(),
                    silent.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve_connection(stream, &*route, seen, started, ended, silent).await;
                });
            }
        });
        h
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self, method: &str, prefix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn endless_all_ended(&self) -> bool {
        self.endless_ended.load(Ordering::SeqCst) == self.endless_started.load(Ordering::SeqCst)
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    route: &(dyn Fn(&Seen) -> Answer + Send + Sync),
    seen: Arc<Mutex<Vec<Seen>>>,
    started: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    silent: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        stream.read_exact(&mut body).await?;
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Seen {
            method,
            path: path.to_string(),
            query: url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        };
        let answer = route(&req);
        seen.lock().unwrap().push(req.clone());
        match answer {
            Answer::Echo => {
                let body = match req.query.get("hub.challenge") {
                    Some(c) if req.method == "GET" => c.clone(),
                    _ => String::new(),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.flush().await?;
            }
            Answer::Endless(status) => {
                started.fetch_add(1, Ordering::SeqCst);
                let result = endless(&mut stream, status).await;
                ended.fetch_add(1, Ordering::SeqCst);
                return result;
            }
            Answer::Silent => {
                silent.fetch_add(1, Ordering::SeqCst);
                // Until the peer hangs up (its timeout) or the test ends.
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await.unwrap_or(0) > 0 {}
                silent.fetch_sub(1, Ordering::SeqCst);
                return Ok(());
            }
        }
    }
}

async fn endless(
    stream: &mut BufReader<tokio::net::TcpStream>,
    status: u16,
) -> std::io::Result<()> {
    let total = reply_bytes();
    let head = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.len().min((total - sent) as usize);
        stream.get_mut().write_all(&chunk[..n]).await?;
        sent += n as u64;
    }
    stream.flush().await
}

/// A well-behaved callback that echoes the challenge, on its own port,
/// remembering when each request arrived.
struct Echo {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Arrival>>>,
}

/// A request the echo server received, and when.
struct Arrival {
    path: String,
    query: HashMap<String, String>,
    at: Instant,
}

impl Arrival {
    fn mode(&self) -> Option<&str> {
        self.query.get("hub.mode").map(String::as_str)
    }
}

impl Echo {
    /// `delay` before each answer widens any window between a limit check
    /// and the insert it guards.
    fn start(delay: Duration) -> Echo {
        let seen: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let sink = seen.clone();
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let sink = sink.clone();
            async move {
                let query: HashMap<String, String> =
                    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                sink.lock().unwrap().push(Arrival {
                    path: uri.path().to_string(),
                    query: query.clone(),
                    at: Instant::now(),
                });
                tokio::time::sleep(delay).await;
                query.get("hub.challenge").cloned().unwrap_or_default()
            }
        });
        runtime().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Echo { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// When the first GET with this `hub.mode` reached `path`.
    fn first(&self, path: &str, mode: &str) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.path == path && a.mode() == Some(mode))
            .map(|a| a.at)
    }

    /// When the first POST (a content delivery) reached `path`.
    fn first_post(&self, path: &str) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.path == path && a.mode().is_none())
            .map(|a| a.at)
    }

    fn count(&self, prefix: &str, mode: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.path.starts_with(prefix) && a.mode() == Some(mode))
            .count()
    }
}

// ---------------------------------------------------------------- daemon

/// A site whose daemon serves HTTP on a port the system picks (the daemon
/// logs it; see `Daemon::http_addr`). Topic URLs start with the configured
/// `site.base_url`, `BASE_URL`, wherever the daemon listens.
fn site(extra: &str) -> Site {
    Site::new(&format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{extra}\n"))
}

/// An HTTP client whose requests come from `from` (a loopback address).
fn client_from(from: &str) -> reqwest::blocking::Client {
    feedwire::install_tls_provider();
    reqwest::blocking::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

struct HubAnswer {
    status: u16,
    retry_after: Option<String>,
}

fn subscribe(
    client: &reqwest::blocking::Client,
    daemon: &Daemon,
    topic: &str,
    callback: &str,
) -> HubAnswer {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.topic", topic)
        .append_pair("hub.callback", callback)
        .finish();
    let resp = client
        .post(format!("http://{}/hub", daemon.http_addr()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    HubAnswer {
        status: resp.status().as_u16(),
        retry_after: resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string()),
    }
}

/// Active subscriptions according to `feedwire status`.
fn active_subscriptions(site: &Site) -> Option<usize> {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = s.lines().find(|l| l.contains("active subscription"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "active")?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

/// The daemon's peak resident set size so far, in bytes.
fn peak_rss(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn article(site: &Site, file: &str, title: &str) {
    site.write(
        file,
        wire_text(
            "Thể thao",
            title,
            &["Nội dung thử nghiệm.", "Đoạn thứ hai."],
            "Phóng viên",
        ),
    );
}

// ---------------------------------------------------------------- tests

/// Point 4: every outbound reply is read with a cap. Verification GETs
/// (issue: four callbacks answering with 1 GiB took the daemon from 49 MB to
/// 3.6 GB), denial GETs, WebSub content deliveries, hub pings, legacy
/// XML-RPC pings and partner webhooks all get endless answers here; the
/// daemon's peak memory must not follow them. A legitimate subscriber is
/// verified meanwhile.
#[test]
fn endless_replies_to_every_outbound_request_stay_out_of_memory() {
    let hostile = Hostile::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", p) if p.starts_with("/deliver/") => Answer::Echo,
        ("GET", _) => Answer::Endless(200),
        ("POST", "/hub") => Answer::Endless(400),
        ("POST", "/partner") => Answer::Endless(500),
        ("POST", _) => Answer::Endless(200),
        _ => Answer::Echo,
    });
    let legit = Echo::start(Duration::ZERO);
    let site = site(&format!(
        r#"[websub]
allowed_callback_hosts = ["127.0.0.1"]
max_subscriptions_per_topic = 4
hubs = ["{hub}"]
ping_servers = ["{rpc}"]

[delivery]
retry_base_ms = 60000

[[partners]]
name = "portal"
url = "{partner}"
format = "json"
secret = "k"
"#,
        hub = hostile.url("/hub"),
        rpc = hostile.url("/rpc"),
        partner = hostile.url("/partner"),
    ));
    let daemon = site.start();
    let atom = format!("{BASE_URL}/feeds/atom.xml");
    let rss = format!("{BASE_URL}/feeds/rss.xml");
    let json = format!("{BASE_URL}/feeds/feed.json");
    let attacker = client_from("127.0.0.1");

    // Four subscribers that verify properly and answer deliveries endlessly;
    // they fill atom.xml to its limit.
    for i in 0..4 {
        let cb = hostile.url(&format!("/deliver/{i}"));
        assert_eq!(subscribe(&attacker, &daemon, &atom, &cb).status, 202);
    }
    wait_for("four delivery subscribers active", LONG, || {
        (active_subscriptions(&site)? == 4).then_some(())
    });
    let baseline = peak_rss(&daemon);

    // Over the limit: denied, and the denial GET is answered endlessly.
    for i in 0..2 {
        let cb = hostile.url(&format!("/deny/{i}"));
        assert_eq!(subscribe(&attacker, &daemon, &atom, &cb).status, 202);
    }
    // The issue's attack: verification GETs answered endlessly.
    for i in 0..4 {
        let cb = hostile.url(&format!("/verify/{i}"));
        assert_eq!(subscribe(&attacker, &daemon, &rss, &cb).status, 202);
    }
    let t0 = Instant::now();
    let legit_client = client_from("127.0.0.2");
    assert_eq!(
        subscribe(&legit_client, &daemon, &json, &legit.url("/legit")).status,
        202
    );
    let verified_at = wait_for("the legitimate verification GET", LONG, || {
        legit.first("/legit", "subscribe")
    });
    wait_for("denials and verifications answered", LONG, || {
        (hostile.seen("GET", "/deny/").len() == 2
            && hostile.seen("GET", "/verify/").len() == 4
            && hostile.endless_all_ended())
        .then_some(())
    });
    assert!(
        hostile
            .seen("GET", "/deny/")
            .iter()
            .all(|r| r.query["hub.mode"] == "denied")
    );

    // A change: content deliveries, hub pings, the legacy ping and the
    // partner webhook, all answered endlessly.
    article(&site, "a.txt", "Bài thử trả lời vô tận");
    wait_for("every kind of delivery answered", LONG, || {
        (hostile.seen("POST", "/deliver/").len() >= 4
            && !hostile.seen("POST", "/hub").is_empty()
            && !hostile.seen("POST", "/rpc").is_empty()
            && !hostile.seen("POST", "/partner").is_empty()
            && hostile.endless_all_ended())
        .then_some(())
    });
    let peak = peak_rss(&daemon);
    let answered = hostile.endless_started.load(Ordering::SeqCst) as u64;
    println!(
        "MEASUREMENT endless replies: {answered} answers of {:.0} MiB each; daemon peak RSS {:.1} MiB (before the attack {:.1} MiB); legitimate verification after {:.3} s",
        mib(reply_bytes()),
        mib(peak),
        mib(baseline),
        verified_at.duration_since(t0).as_secs_f64()
    );
    assert!(
        peak < baseline + (64 << 20),
        "peak RSS grew from {:.1} MiB to {:.1} MiB while {answered} receivers answered {:.0} MiB each",
        mib(baseline),
        mib(peak),
        mib(reply_bytes())
    );
    drop(daemon);
}

/// Point 7, the flood: thousands of subscribe requests from one address
/// (issue: 10,100 stored 10,036 subscriptions, over the per-topic limit, and
/// a legitimate subscriber was then refused). One address is rate limited
/// (429 with `Retry-After`) long before it fills a topic; a subscriber from
/// another address still gets in.
#[test]
fn a_flood_from_one_address_is_rate_limited_and_cannot_fill_a_topic() {
    // The issue's scale is FEEDWIRE_ABUSE_FLOOD=10100 FEEDWIRE_ABUSE_TOPIC_LIMIT=10000.
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let flood = env("FEEDWIRE_ABUSE_FLOOD", 2_000);
    let topic_limit = env("FEEDWIRE_ABUSE_TOPIC_LIMIT", 500);
    let echo = Echo::start(Duration::ZERO);
    let site = site(&format!(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\nmax_subscriptions_per_topic = {topic_limit}\n"
    ));
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let baseline = peak_rss(&daemon);
    let attacker = client_from("127.0.0.1");
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut retry_after_missing = 0;
    for i in 0..flood {
        let answer = subscribe(
            &attacker,
            &daemon,
            &topic,
            &echo.url(&format!("/flood/{i}")),
        );
        *statuses.entry(answer.status).or_default() += 1;
        if answer.status == 429 && answer.retry_after.is_none() {
            retry_after_missing += 1;
        }
    }
    let t0 = Instant::now();
    let legit = client_from("127.0.0.2");
    let answer = subscribe(&legit, &daemon, &topic, &echo.url("/legit"));
    let verified = wait_for("the legitimate subscriber contacted", LONG, || {
        echo.first("/legit", "subscribe")
            .or_else(|| echo.first("/legit", "denied"))
    });
    let denied_legit = echo.count("/legit", "denied");
    // Settled: every verification GET answered has become a subscription.
    let active = wait_for("verified subscriptions stored", LONG, || {
        let n = active_subscriptions(&site)?;
        (n == echo.count("/", "subscribe")).then_some(n)
    });
    println!(
        "MEASUREMENT flood of {flood} subscribe requests from one address: answers {statuses:?}; {active} active subscriptions (topic limit {topic_limit}); legitimate subscriber {} after {:.3} s; daemon peak RSS {:.1} MiB (before {:.1} MiB)",
        if denied_legit > 0 {
            "DENIED"
        } else {
            "verified"
        },
        verified.duration_since(t0).as_secs_f64(),
        mib(peak_rss(&daemon)),
        mib(baseline),
    );
    assert_eq!(answer.status, 202, "another address is not rate limited");
    assert_eq!(denied_legit, 0, "the legitimate subscriber was denied");
    let limited = statuses.get(&429).copied().unwrap_or(0);
    assert!(
        limited > flood / 2,
        "most of the flood should be answered 429: {statuses:?}"
    );
    assert_eq!(retry_after_missing, 0, "every 429 carries Retry-After");
    assert!(
        active < topic_limit / 2,
        "one address holds {active} subscriptions of the topic's {topic_limit}"
    );
    drop(daemon);
}

/// Point 7, atomic limits: concurrent subscribe requests from many
/// addresses, each verification slowed down, never store more than the
/// per-topic limit; the rest are denied (WS-H10).
#[test]
fn concurrent_subscribes_never_exceed_the_topic_limit() {
    const LIMIT: usize = 10;
    const CLIENTS: usize = 40;
    const EACH: usize = 3;
    // Slow echoes keep many verifications in flight at once.
    let echo = Echo::start(Duration::from_millis(300));
    let site = site(&format!(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\nmax_subscriptions_per_topic = {LIMIT}\n"
    ));
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (daemon, topic, echo_url) = (&daemon, &topic, &echo);
            s.spawn(move || {
                let client = client_from(&format!("127.0.1.{}", c + 1));
                for i in 0..EACH {
                    let cb = echo_url.url(&format!("/cb/{c}/{i}"));
                    assert_eq!(subscribe(&client, daemon, topic, &cb).status, 202);
                }
            });
        }
    });
    let total = CLIENTS * EACH;
    wait_for("every request verified or denied", LONG, || {
        (echo.count("/cb/", "subscribe") + echo.count("/cb/", "denied") >= total).then_some(())
    });
    // Settled: every verification GET answered has become a subscription.
    let active = wait_for("verified subscriptions stored", LONG, || {
        let n = active_subscriptions(&site)?;
        (n == echo.count("/cb/", "subscribe")).then_some(n)
    });
    println!(
        "MEASUREMENT {total} concurrent subscribes, limit {LIMIT}: {active} stored, {} denied",
        echo.count("/cb/", "denied")
    );
    assert_eq!(active, LIMIT, "the per-topic limit holds exactly");
    assert_eq!(echo.count("/cb/", "denied"), total - LIMIT);
}

/// Point 7, starvation: 320 callbacks that never answer (issue: they
/// delayed a legitimate verification by 50 s). One address can only queue a
/// few verifications, each with a short timeout, so a subscriber from
/// another address is verified while they still hang. `delivery.timeout_ms`
/// is long here, as an operator may set it for slow partners: the hub's own
/// `websub.verify_timeout_ms` bounds verifications.
#[test]
fn callbacks_that_never_answer_do_not_delay_other_subscribers() {
    const SILENT: usize = 320;
    let silent = Hostile::start(|_| Answer::Silent);
    let echo = Echo::start(Duration::ZERO);
    let site = site(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\n\n[delivery]\ntimeout_ms = 120000\n",
    );
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let attacker = client_from("127.0.0.1");
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for i in 0..SILENT {
        let answer = subscribe(&attacker, &daemon, &topic, &silent.url(&format!("/s/{i}")));
        *statuses.entry(answer.status).or_default() += 1;
    }
    wait_for("the silent callbacks reached", LONG, || {
        (silent.silent_open.load(Ordering::SeqCst) > 0).then_some(())
    });
    let t0 = Instant::now();
    let legit = client_from("127.0.0.2");
    assert_eq!(
        subscribe(&legit, &daemon, &topic, &echo.url("/legit")).status,
        202
    );
    // Generous, and still far below the 120 s the silent callbacks could
    // hold a verification slot for if nothing bounded them.
    let verified = wait_for(
        "the legitimate verification GET",
        Duration::from_secs(40),
        || echo.first("/legit", "subscribe"),
    );
    let hanging = silent.silent_open.load(Ordering::SeqCst);
    println!(
        "MEASUREMENT {SILENT} silent callbacks from one address: answers {statuses:?}; {hanging} connections held; legitimate verification after {:.3} s; daemon peak RSS {:.1} MiB",
        verified.duration_since(t0).as_secs_f64(),
        mib(peak_rss(&daemon)),
    );
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > SILENT / 2,
        "one address cannot queue {SILENT} verifications: {statuses:?}"
    );
    wait_for("the legitimate subscription stored", LONG, || {
        (active_subscriptions(&site)? == 1).then_some(())
    });
}

/// Pending WebSub deliveries according to `feedwire status`.
fn pending_websub_deliveries(site: &Site) -> Option<usize> {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = s.lines().find(|l| l.contains("active subscription"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "pending")?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

fn fanout_done(site: &Site) -> bool {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).contains(" 0 feed change(s) awaiting fan-out")
}

/// A subscriber whose callback always fails holds one queued delivery per
/// topic, however often the feed changes: the queue a stranger can grow is
/// bounded by the subscriptions, not by time.
#[test]
fn a_failing_subscriber_holds_one_queued_delivery_however_often_the_feed_changes() {
    const CHANGES: usize = 5;
    let failing = Hostile::start(|r| match r.method.as_str() {
        "GET" => Answer::Echo,
        _ => Answer::Endless(500),
    });
    let site = site(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\n\n[delivery]\nretry_base_ms = 60000\n",
    );
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let client = client_from("127.0.0.1");
    assert_eq!(
        subscribe(&client, &daemon, &topic, &failing.url("/cb")).status,
        202
    );
    wait_for("subscription active", LONG, || {
        (active_subscriptions(&site)? == 1).then_some(())
    });
    for i in 0..CHANGES {
        let title = format!("Thay đổi số {i}");
        article(&site, &format!("c{i}.txt"), &title);
        wait_for("the change published and fanned out", LONG, || {
            let atom = std::fs::read_to_string(site.feeds().join("atom.xml")).ok()?;
            (atom.contains(&title) && fanout_done(&site)).then_some(())
        });
        wait_for("the first delivery attempted", LONG, || {
            (!failing.seen("POST", "/cb").is_empty()).then_some(())
        });
    }
    let pending = pending_websub_deliveries(&site).unwrap();
    println!("MEASUREMENT failing subscriber after {CHANGES} changes: {pending} queued deliveries");
    assert!(
        pending <= 1,
        "{pending} deliveries queued for one failing subscriber after {CHANGES} changes"
    );
}

/// Slow callbacks cannot take every delivery slot: the subscriptions one
/// address made get at most a share of them at once, so a subscriber from
/// another address receives its delivery while they hang.
#[test]
fn subscribers_that_never_answer_deliveries_do_not_delay_others() {
    const SLOW: usize = 16;
    let slow = Hostile::start(|r| match r.method.as_str() {
        "GET" => Answer::Echo,
        _ => Answer::Silent,
    });
    let echo = Echo::start(Duration::ZERO);
    let site = site(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\n\n\
         [delivery]\ntimeout_ms = 120000\nwebsub_concurrency = 16\n",
    );
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let attacker = client_from("127.0.0.1");
    for i in 0..SLOW {
        let cb = slow.url(&format!("/slow/{i}"));
        // Within the rate limit's burst; wait out the pending-queue share.
        wait_for("the hub accepting the request", LONG, || {
            (subscribe(&attacker, &daemon, &topic, &cb).status == 202).then_some(())
        });
    }
    let legit = client_from("127.0.0.2");
    assert_eq!(
        subscribe(&legit, &daemon, &topic, &echo.url("/legit")).status,
        202
    );
    wait_for("every subscription active", LONG, || {
        (active_subscriptions(&site)? == SLOW + 1).then_some(())
    });
    // The legitimate subscriber's row comes last, behind every slow one.
    let t0 = Instant::now();
    article(&site, "moi.txt", "Tin cho mọi người đăng ký");
    let delivered = wait_for(
        "the legitimate subscriber's delivery",
        Duration::from_secs(40),
        || echo.first_post("/legit"),
    );
    println!(
        "MEASUREMENT {SLOW} silent subscribers from one address: {} deliveries held open; the other subscriber's delivery after {:.3} s; daemon peak RSS {:.1} MiB",
        slow.silent_open.load(Ordering::SeqCst),
        delivered.duration_since(t0).as_secs_f64(),
        mib(peak_rss(&daemon))
    );
}
