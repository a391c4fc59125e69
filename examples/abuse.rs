//! Abuse harness: one named attack against a running `feedwire run` daemon,
//! while a separate client measures what a normal reader gets meanwhile.
//!
//! ```sh
//! cargo run --release --example abuse -- --addr 127.0.0.1:18090 --pid PID \
//!     --attack slow-headers [--seconds 30] [--rate 20] [attack options]
//! ```
//!
//! `bench/abuse.sh` starts a fresh daemon for each attack and runs this; see
//! its header and BENCHMARKS.md. Everything stays on loopback: the attacker
//! connects from 127.0.0.1 and runs its callback servers there; the normal
//! reader connects from `--probe-from` (127.0.0.2), so a per-client cap on
//! 127.0.0.1 does not count it as the attacker.
//!
//! While the attack runs for `--seconds`:
//! - the reader sends `GET /feeds/rss.xml` at `--rate` per second on a new
//!   connection each (open loop: a slow answer does not delay the next
//!   request), from its own thread and runtime so the attacker's tasks do not
//!   delay it. A request that fails, answers other than 200 or takes longer
//!   than `--probe-timeout-ms` is a failure and counts as the timeout in the
//!   percentiles (so failures push p99 up instead of hiding);
//! - with `--pid`, the daemon's `VmRSS` is read from `/proc/<pid>/status`
//!   every 100 ms; over `--rss-ceiling-mib` the daemon is killed (SIGKILL) so
//!   a runaway daemon cannot take the machine down, and the row says so.
//!
//! Then the attack is torn down (every attacker socket is closed with a reset,
//! so no TIME_WAIT is left for the next run), and after `--settle-secs` the
//! daemon's `VmRSS` (is memory given back?), `VmHWM` (its peak since start)
//! and `GET /healthz` are read. Prints one Markdown table row on stdout
//! (`abuse --header` prints the table's header); progress goes to stderr.
//!
//! The harness bounds itself: it reads at most 16 KiB of any answer it
//! provokes and 4 MiB of a feed, sends bodies from one shared buffer, and
//! caps its connections below its own `RLIMIT_NOFILE` (raised at start to
//! the hard limit, or to what the idle flood needs when it may raise the hard
//! limit too, as root may).

use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::get;
use clap::{Parser, ValueEnum};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Every attacking connection and attacker-run server uses this address.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Descriptors kept free for the reader, the callback servers and the runtime
/// when the idle flood opens as many connections as it can.
const FD_RESERVE: u64 = 300;
/// Most of an answer the harness ever reads from the daemon.
const ANSWER_CAP: usize = 16 * 1024;
/// Most of a feed document the reader reads.
const FEED_CAP: usize = 4 * 1024 * 1024;
/// Write size for bodies; every body is sent from one shared buffer.
const PIECE: usize = 64 * 1024;

/// The table header matching the row this program prints (`--header`).
const HEADER: &str = "| attack | load | RSS idle | peak RSS (VmHWM) | RSS 5 s after | normal p50 / p99 / max | failed / sent | survived | what happened |\n|---|---|---|---|---|---|---|---|---|";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Attack {
    /// No attack: the reader alone, for comparison.
    Baseline,
    /// Connections that send one header byte per second and never finish.
    SlowHeaders,
    /// As many idle TCP connections as the attacker can open, held open.
    IdleFlood,
    /// `POST /hub` declaring a ~2 MB body, sending all but its last byte, then stalling.
    SlowHubBody,
    /// `POST /hub` with bodies of several MB at full speed, many in parallel.
    BigHubBody,
    /// Subscriptions whose callbacks answer the verification GET with a huge body.
    HugeCallbackReply,
    /// A flood of subscriptions plus never-answering callbacks, while a
    /// legitimate subscriber from another address waits for its verification.
    SubscriptionFlood,
}

#[derive(Parser, Debug)]
#[command(
    about = "Run one attack against a running feedwire daemon and measure a normal reader meanwhile"
)]
struct Opts {
    /// The daemon's HTTP address (loopback only).
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, value_enum)]
    attack: Attack,
    /// How long the attack runs (the subscription flood runs at least this
    /// long and until the legitimate subscriber is answered).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The daemon's process id, for memory sampling and the RSS ceiling.
    #[arg(long)]
    pid: Option<i32>,
    /// The daemon's `site.base_url`; hub topics are `<base_url>/feeds/rss.xml`.
    /// Default: http://ADDR.
    #[arg(long)]
    base_url: Option<String>,
    /// Normal requests per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Source address of the normal reader and of the legitimate subscriber.
    #[arg(long, default_value = "127.0.0.2")]
    probe_from: IpAddr,
    /// A normal request not answered in full within this is a failure.
    #[arg(long, default_value_t = 5000)]
    probe_timeout_ms: u64,
    /// Attacking connections: slow-headers 500, idle-flood 20000 (capped by
    /// RLIMIT_NOFILE), slow-hub-body 300, big-hub-body 64 in parallel.
    #[arg(long)]
    conns: Option<usize>,
    /// slow-hub-body: the Content-Length declared (all but one byte is sent).
    #[arg(long, default_value_t = 2_097_151)]
    slow_body_length: usize,
    /// big-hub-body: body size per request.
    #[arg(long, default_value_t = 8)]
    body_mib: usize,
    /// huge-callback-reply: callbacks subscribed at once.
    #[arg(long, default_value_t = 4)]
    callbacks: usize,
    /// huge-callback-reply: size of each verification answer; 0 = endless.
    #[arg(long, default_value_t = 1024)]
    reply_mib: u64,
    /// subscription-flood: subscribe requests for distinct, answering callbacks.
    #[arg(long, default_value_t = 10_100)]
    flood: usize,
    /// subscription-flood: subscribe requests for callbacks that never answer.
    #[arg(long, default_value_t = 320)]
    stalled: usize,
    /// subscription-flood: how long to wait for the legitimate subscriber's
    /// verification after its request.
    #[arg(long, default_value_t = 120)]
    legit_wait_secs: u64,
    /// subscription-flood: hub requests in flight at once.
    #[arg(long, default_value_t = 32)]
    post_concurrency: usize,
    /// Kill the daemon (SIGKILL) when its VmRSS exceeds this.
    #[arg(long, default_value_t = 4096)]
    rss_ceiling_mib: u64,
    /// Wait this long after the attack before reading RSS and /healthz.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
}

impl Opts {
    fn base_url(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
            .trim_end_matches('/')
            .to_string()
    }
    fn topic(&self) -> String {
        format!("{}/feeds/rss.xml", self.base_url())
    }
    fn conns(&self) -> usize {
        self.conns.unwrap_or(match self.attack {
            Attack::SlowHeaders => 500,
            Attack::IdleFlood => 20_000,
            Attack::SlowHubBody => 300,
            Attack::BigHubBody => 64,
            _ => 0,
        })
    }
}

/// What the attacker saw; read after the attack, which may have been cancelled.
#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    connect_failed: AtomicU64,
    /// Connections the daemon answered, closed or reset.
    ended_by_daemon: AtomicU64,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    /// Bytes the attacker's callback servers sent to the daemon.
    bytes_served: AtomicU64,
    verification_gets: AtomicU64,
    denials: AtomicU64,
    stalled_accepted: AtomicU64,
    /// "413", "closed", "reset", "POST 202", …
    outcomes: Mutex<BTreeMap<String, u64>>,
    stop_reason: Mutex<Option<String>>,
    legit: Mutex<Option<String>>,
}

impl Tally {
    fn count(&self, what: impl Into<String>) {
        *self
            .outcomes
            .lock()
            .unwrap()
            .entry(what.into())
            .or_default() += 1;
    }
    fn outcomes(&self) -> String {
        let o = self.outcomes.lock().unwrap();
        if o.is_empty() {
            return "none".into();
        }
        o.iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// How the daemon ended a connection the attacker was holding.
enum Ending {
    Answered(u16),
    Closed,
    Reset,
}

impl Ending {
    fn label(&self) -> String {
        match self {
            Ending::Answered(code) => code.to_string(),
            Ending::Closed => "closed".into(),
            Ending::Reset => "reset".into(),
        }
    }
}

/// Wait until the daemon answers (status line) or ends the connection,
/// reading at most `ANSWER_CAP` bytes.
async fn await_ending(rd: &mut (impl AsyncRead + Unpin)) -> Ending {
    let mut buf = [0u8; 64];
    let mut got = 0;
    let mut total = 0;
    loop {
        match rd.read(&mut buf[got..]).await {
            Ok(0) => return Ending::Closed,
            Err(_) => return Ending::Reset,
            Ok(n) => {
                got += n;
                total += n;
            }
        }
        if got >= 12 {
            let code = std::str::from_utf8(&buf[9..12])
                .ok()
                .and_then(|s| s.parse().ok());
            return code.map_or(Ending::Closed, Ending::Answered);
        }
        if total >= ANSWER_CAP {
            return Ending::Closed;
        }
    }
}

/// A connection from the attacker's address that resets on close (no
/// TIME_WAIT left behind to eat the next run's ports).
async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_zero_linger()?;
    let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Raises the soft descriptor limit to the hard one, or to `wanted` when that
/// is higher and the process may raise its hard limit (root); returns it.
fn raise_nofile_limit(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on structs we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let high = wanted.max(lim.rlim_max);
        for target in [high, lim.rlim_max] {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: target,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return target;
            }
        }
    }
    lim.rlim_cur
}

// ------------------------------------------------------------------ daemon memory

#[derive(Clone, Copy, Default)]
struct ProcStatus {
    rss_kib: u64,
    hwm_kib: u64,
    alive: bool,
}

fn read_status(pid: i32) -> Option<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut st = ProcStatus {
        alive: true,
        ..Default::default()
    };
    for line in text.lines() {
        let kib = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if line.starts_with("VmRSS:") {
            st.rss_kib = kib();
        } else if line.starts_with("VmHWM:") {
            st.hwm_kib = kib();
        } else if let Some(state) = line.strip_prefix("State:") {
            // A zombie (Z) or dead (X) daemon is waiting for its parent to reap it.
            st.alive = !matches!(state.trim_start().chars().next(), Some('Z' | 'X'));
        }
    }
    Some(st)
}

#[derive(Default)]
struct MemoryWatch {
    peak_rss_kib: u64,
    /// Highest VmHWM seen while the daemon was alive.
    hwm_kib: u64,
    /// VmRSS when the ceiling was passed, and when.
    killed: Option<(u64, Instant)>,
}

/// Samples the daemon every 100 ms on its own thread until `stop`.
fn watch_memory(
    pid: i32,
    ceiling_kib: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<MemoryWatch> {
    std::thread::spawn(move || {
        let mut w = MemoryWatch::default();
        while !stop.load(Relaxed) {
            match read_status(pid) {
                Some(st) if st.alive => {
                    w.peak_rss_kib = w.peak_rss_kib.max(st.rss_kib);
                    w.hwm_kib = w.hwm_kib.max(st.hwm_kib);
                    if st.rss_kib > ceiling_kib && w.killed.is_none() {
                        eprintln!(
                            "[abuse] daemon VmRSS {} MiB is over the ceiling; killing it (SIGKILL)",
                            st.rss_kib / 1024
                        );
                        // SAFETY: sending a signal to the pid we were given.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        w.killed = Some((st.rss_kib, Instant::now()));
                    }
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        w
    })
}

// ------------------------------------------------------------------ the normal reader

struct Sample {
    sent_at: Instant,
    ms: f64,
    failure: Option<&'static str>,
}

/// Sends normal requests at a steady rate until `stop`, on its own thread and
/// runtime; returns one sample per request sent.
fn read_feed_meanwhile(opts: &Opts, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Sample>> {
    let url = format!("http://{}/feeds/rss.xml", opts.addr);
    let from = opts.probe_from;
    let timeout = Duration::from_millis(opts.probe_timeout_ms);
    let period = Duration::from_secs_f64(1.0 / f64::from(opts.rate.max(1)));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the reader");
        rt.block_on(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .local_address(from)
                .pool_max_idle_per_host(0)
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .expect("the reader's HTTP client");
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut inflight = JoinSet::new();
            while !stop.load(Relaxed) {
                tick.tick().await;
                let (client, url) = (client.clone(), url.clone());
                inflight.spawn(async move {
                    let t0 = Instant::now();
                    let failure = tokio::time::timeout(timeout, read_feed(&client, &url))
                        .await
                        .unwrap_or(Err("timeout"))
                        .err();
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    Sample {
                        sent_at: t0,
                        ms: if failure.is_some() {
                            ms.max(timeout.as_secs_f64() * 1e3)
                        } else {
                            ms
                        },
                        failure,
                    }
                });
            }
            inflight.join_all().await
        })
    })
}

async fn read_feed(client: &reqwest::Client, url: &str) -> Result<(), &'static str> {
    let mut resp = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "error"
        }
    })?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err("not 200");
    }
    let mut n = 0;
    while let Some(chunk) = resp.chunk().await.map_err(|_| "body")? {
        n += chunk.len();
        if n > FEED_CAP {
            break;
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ------------------------------------------------------------------ attacks

/// One byte of a never-ending header per second on each connection; a slot
/// whose connection the daemon ends reconnects a second later.
async fn slow_headers(opts: &Opts, tally: Arc<Tally>) {
    let head = Arc::new(format!(
        "GET /feeds/rss.xml HTTP/1.1\r\nHost: {}\r\nX-Slow: ",
        opts.addr
    ));
    let mut slots = JoinSet::new();
    for _ in 0..opts.conns() {
        let (tally, head, addr) = (tally.clone(), head.clone(), opts.addr);
        slots.spawn(async move {
            loop {
                let Ok(mut s) = connect(addr).await else {
                    tally.connect_failed.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                tally.opened.fetch_add(1, Relaxed);
                let (mut rd, mut wr) = s.split();
                let trickle = async {
                    if wr.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        if wr.write_all(b"a").await.is_err() {
                            return;
                        }
                        tally.bytes_sent.fetch_add(1, Relaxed);
                    }
                };
                let ending = tokio::select! {
                    e = await_ending(&mut rd) => e,
                    () = trickle => Ending::Reset,
                };
                tally.ended_by_daemon.fetch_add(1, Relaxed);
                tally.count(ending.label());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    slots.join_all().await;
}

/// Opens idle connections until the target, the descriptor limit or a
/// refusal, and holds them. A refusal is a connect the daemon's host refuses,
/// or a whole window of connects in a row timing out (its accept queue is
/// full); a single slow connect on a busy machine does not end the flood.
async fn idle_flood(opts: &Opts, tally: Arc<Tally>, nofile: u64) {
    let target = opts.conns();
    let cap = target.min(nofile.saturating_sub(FD_RESERVE) as usize);
    if cap < target {
        *tally.stop_reason.lock().unwrap() = Some(format!(
            "capped at {cap} by the harness's RLIMIT_NOFILE {nofile}"
        ));
    }
    const IN_FLIGHT: usize = 64;
    let refused = Arc::new(AtomicBool::new(false));
    let failures_in_a_row = Arc::new(AtomicUsize::new(0));
    let opening = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut held = JoinSet::new();
    for _ in 0..cap {
        if refused.load(Relaxed) {
            break;
        }
        let permit = opening.clone().acquire_owned().await.expect("open");
        let (tally, refused, in_a_row, addr) = (
            tally.clone(),
            refused.clone(),
            failures_in_a_row.clone(),
            opts.addr,
        );
        held.spawn(async move {
            match connect(addr).await {
                Ok(mut s) => {
                    tally.opened.fetch_add(1, Relaxed);
                    in_a_row.store(0, Relaxed);
                    drop(permit);
                    let ending = await_ending(&mut s).await;
                    tally.ended_by_daemon.fetch_add(1, Relaxed);
                    tally.count(ending.label());
                }
                Err(e) => {
                    tally.connect_failed.fetch_add(1, Relaxed);
                    let n = in_a_row.fetch_add(1, Relaxed) + 1;
                    let refusal = e.kind() == std::io::ErrorKind::ConnectionRefused;
                    if (refusal || n >= IN_FLIGHT) && !refused.swap(true, Relaxed) {
                        *tally.stop_reason.lock().unwrap() = Some(if refusal {
                            format!("stopped: connect refused ({e})")
                        } else {
                            format!("stopped: {n} connects in a row failed ({e})")
                        });
                    }
                }
            }
        });
    }
    eprintln!(
        "[abuse] idle-flood: {} connections open",
        Tally::get(&tally.opened)
    );
    held.join_all().await;
    std::future::pending::<()>().await;
}

/// `POST /hub` declaring `slow_body_length` bytes, sending all but the last
/// at full speed, then stalling; reconnects a second after the daemon ends one.
async fn slow_hub_body(opts: &Opts, tally: Arc<Tally>) {
    let length = opts.slow_body_length.max(1);
    let head = Arc::new(format!(
        "POST /hub HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n",
        opts.addr
    ));
    let body: Arc<[u8]> = vec![b'a'; PIECE].into();
    let mut slots = JoinSet::new();
    for _ in 0..opts.conns() {
        let (tally, head, body, addr) = (tally.clone(), head.clone(), body.clone(), opts.addr);
        slots.spawn(async move {
            loop {
                let Ok(mut s) = connect(addr).await else {
                    tally.connect_failed.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                tally.opened.fetch_add(1, Relaxed);
                let (mut rd, mut wr) = s.split();
                let send_then_stall = async {
                    if wr.write_all(head.as_bytes()).await.is_ok() {
                        let mut left = length - 1;
                        while left > 0 {
                            let n = left.min(PIECE);
                            if wr.write_all(&body[..n]).await.is_err() {
                                break;
                            }
                            tally.bytes_sent.fetch_add(n as u64, Relaxed);
                            left -= n;
                        }
                    }
                    std::future::pending::<()>().await;
                };
                let ending = tokio::select! {
                    e = await_ending(&mut rd) => e,
                    () = send_then_stall => unreachable!(),
                };
                tally.ended_by_daemon.fetch_add(1, Relaxed);
                tally.count(ending.label());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    slots.join_all().await;
}

/// Back-to-back `POST /hub` with `body_mib` MiB bodies at full speed from
/// `conns` workers; even workers declare a Content-Length, odd ones send
/// chunked bodies (no length known up front).
async fn big_hub_body(opts: &Opts, tally: Arc<Tally>) {
    let size = opts.body_mib.max(1) * 1024 * 1024;
    let piece: Arc<[u8]> = vec![b'a'; PIECE].into();
    let mut workers = JoinSet::new();
    for w in 0..opts.conns() {
        let (tally, piece, addr) = (tally.clone(), piece.clone(), opts.addr);
        let chunked = w % 2 == 1;
        let head = if chunked {
            format!(
                "POST /hub HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
        } else {
            format!(
                "POST /hub HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {size}\r\n\r\n"
            )
        };
        workers.spawn(async move {
            loop {
                let Ok(mut s) = connect(addr).await else {
                    tally.connect_failed.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                tally.opened.fetch_add(1, Relaxed);
                let (mut rd, mut wr) = s.split();
                let send = async {
                    if wr.write_all(head.as_bytes()).await.is_ok() {
                        let frame = format!("{PIECE:x}\r\n");
                        let mut left = size;
                        while left > 0 {
                            let n = left.min(PIECE);
                            let sent = if chunked {
                                let frame = if n == PIECE {
                                    frame.clone()
                                } else {
                                    format!("{n:x}\r\n")
                                };
                                wr.write_all(frame.as_bytes()).await.is_ok()
                                    && wr.write_all(&piece[..n]).await.is_ok()
                                    && wr.write_all(b"\r\n").await.is_ok()
                            } else {
                                wr.write_all(&piece[..n]).await.is_ok()
                            };
                            if !sent {
                                break;
                            }
                            tally.bytes_sent.fetch_add(n as u64, Relaxed);
                            left -= n;
                        }
                        if left == 0 && chunked {
                            let _ = wr.write_all(b"0\r\n\r\n").await;
                        }
                    }
                    std::future::pending::<()>().await;
                };
                let ending = tokio::select! {
                    e = await_ending(&mut rd) => e,
                    () = send => unreachable!(),
                };
                tally.requests.fetch_add(1, Relaxed);
                tally.count(ending.label());
            }
        });
    }
    workers.join_all().await;
}

/// The attacker's callback server for `huge-callback-reply`: answers every
/// verification GET on `/huge/<i>` with `reply` bytes (None: until the daemon
/// hangs up), from one shared buffer.
async fn huge_reply_server(
    listener: TcpListener,
    reply: Option<u64>,
    tally: Arc<Tally>,
    ended: Arc<Vec<AtomicU64>>,
) {
    let piece: Arc<[u8]> = vec![b'x'; PIECE].into();
    let mut conns = JoinSet::new();
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_zero_linger();
        let (tally, ended, piece) = (tally.clone(), ended.clone(), piece.clone());
        conns.spawn(async move {
            let Some(target) = read_request_target(&mut s).await else {
                return;
            };
            if target.contains("hub.mode=denied") {
                tally.denials.fetch_add(1, Relaxed);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
            tally.verification_gets.fetch_add(1, Relaxed);
            let index = target
                .strip_prefix("/huge/")
                .and_then(|rest| rest.split('?').next())
                .and_then(|i| i.parse::<usize>().ok());
            let head = match reply {
                Some(n) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
                ),
                None => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                    .to_string(),
            };
            if s.write_all(head.as_bytes()).await.is_ok() {
                let mut left = reply.unwrap_or(u64::MAX);
                while left > 0 {
                    let n = left.min(PIECE as u64) as usize;
                    if s.write_all(&piece[..n]).await.is_err() {
                        break;
                    }
                    tally.bytes_served.fetch_add(n as u64, Relaxed);
                    left -= n as u64;
                }
            }
            if let Some(i) = index.filter(|&i| i < ended.len()) {
                ended[i].fetch_add(1, Relaxed);
            }
        });
    }
}

/// Reads a request head (at most `ANSWER_CAP` bytes, 10 s) and returns its target.
async fn read_request_target(s: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; ANSWER_CAP];
    let mut got = 0;
    let read = async {
        while got < buf.len() {
            let n = s.read(&mut buf[got..]).await.ok()?;
            if n == 0 {
                return None;
            }
            got += n;
            if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                let line = std::str::from_utf8(&buf[..got]).ok()?.lines().next()?;
                return line.split_whitespace().nth(1).map(str::to_string);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
}

fn hub_client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(from)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client for the hub")
}

/// A form-encoded subscribe request; returns the status, or why none came.
async fn subscribe(
    client: &reqwest::Client,
    addr: SocketAddr,
    topic: &str,
    callback: &str,
) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.topic", topic)
        .append_pair("hub.callback", callback)
        .finish();
    match client
        .post(format!("http://{addr}/hub"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) if e.is_timeout() => "timeout".into(),
        Err(_) => "error".into(),
    }
}

/// Subscribes `callbacks` callbacks whose verification answers are huge; each
/// is subscribed again as soon as the daemon has finished (or abandoned) the
/// previous answer, so the pressure lasts the whole attack.
async fn huge_callback_reply(opts: &Opts, tally: Arc<Tally>) {
    let listener = TcpListener::bind((ATTACKER, 0))
        .await
        .expect("bind a callback server");
    let cb = listener.local_addr().expect("callback address");
    let ended: Arc<Vec<AtomicU64>> =
        Arc::new((0..opts.callbacks).map(|_| AtomicU64::new(0)).collect());
    let reply = (opts.reply_mib > 0).then(|| opts.reply_mib * 1024 * 1024);
    let mut tasks = JoinSet::new();
    tasks.spawn(huge_reply_server(
        listener,
        reply,
        tally.clone(),
        ended.clone(),
    ));
    let client = hub_client(ATTACKER);
    let topic = opts.topic();
    for i in 0..opts.callbacks {
        let (tally, ended, client, topic, addr) = (
            tally.clone(),
            ended.clone(),
            client.clone(),
            topic.clone(),
            opts.addr,
        );
        tasks.spawn(async move {
            let callback = format!("http://{cb}/huge/{i}");
            loop {
                let before = ended[i].load(Relaxed);
                let status = subscribe(&client, addr, &topic, &callback).await;
                tally.count(format!("POST {status}"));
                let wait_until = Instant::now() + Duration::from_secs(30);
                while ended[i].load(Relaxed) == before && Instant::now() < wait_until {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    tasks.join_all().await;
}

async fn echo_challenge(
    State(tally): State<Arc<Tally>>,
    Query(q): Query<HashMap<String, String>>,
) -> String {
    if q.get("hub.mode").map(String::as_str) == Some("denied") {
        tally.denials.fetch_add(1, Relaxed);
        return String::new();
    }
    tally.verification_gets.fetch_add(1, Relaxed);
    q.get("hub.challenge").cloned().unwrap_or_default()
}

/// What the legitimate subscriber's callback saw first: when, and the mode.
type LegitSeen = Arc<Mutex<Option<(Instant, String)>>>;

async fn legit_callback(
    State(seen): State<LegitSeen>,
    UrlPath(_): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> String {
    let mode = q.get("hub.mode").cloned().unwrap_or_default();
    seen.lock()
        .unwrap()
        .get_or_insert_with(|| (Instant::now(), mode.clone()));
    if mode == "denied" {
        String::new()
    } else {
        q.get("hub.challenge").cloned().unwrap_or_default()
    }
}

/// Sends one subscribe request per callback, `concurrency` at a time.
async fn post_all(
    opts: &Opts,
    client: &reqwest::Client,
    callbacks: Vec<String>,
    tally: &Arc<Tally>,
) {
    let callbacks = Arc::new(callbacks);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..opts.post_concurrency.max(1) {
        let (callbacks, next, client, tally, topic, addr) = (
            callbacks.clone(),
            next.clone(),
            client.clone(),
            tally.clone(),
            opts.topic(),
            opts.addr,
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(callback) = callbacks.get(i) else {
                    return;
                };
                let status = subscribe(&client, addr, &topic, callback).await;
                tally.requests.fetch_add(1, Relaxed);
                tally.count(format!("POST {status}"));
            }
        });
    }
    workers.join_all().await;
}

/// First the never-answering callbacks (they take the verification slots),
/// then the flood, then one legitimate subscriber from `--probe-from`, whose
/// verification is timed. Runs at least `--seconds`.
async fn subscription_flood(opts: &Opts, tally: Arc<Tally>, window_end: tokio::time::Instant) {
    let mut servers = JoinSet::new();

    let echo = TcpListener::bind((ATTACKER, 0))
        .await
        .expect("bind the echo callback server");
    let echo_addr = echo.local_addr().expect("echo address");
    let app = axum::Router::new()
        .route("/flood/{i}", get(echo_challenge))
        .with_state(tally.clone());
    servers.spawn(async move {
        let _ = axum::serve(echo, app).await;
    });

    let stall = TcpListener::bind((ATTACKER, 0))
        .await
        .expect("bind the stalling server");
    let stall_addr = stall.local_addr().expect("stall address");
    let stall_tally = tally.clone();
    servers.spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = stall.accept().await {
                stall_tally.stalled_accepted.fetch_add(1, Relaxed);
                held.push(s);
            }
        }
    });

    let legit_seen: LegitSeen = Arc::default();
    let legit = TcpListener::bind((opts.probe_from, 0))
        .await
        .expect("bind the legitimate callback");
    let legit_addr = legit.local_addr().expect("legitimate callback address");
    let app = axum::Router::new()
        .route("/{name}", get(legit_callback))
        .with_state(legit_seen.clone());
    servers.spawn(async move {
        let _ = axum::serve(legit, app).await;
    });

    let client = hub_client(ATTACKER);
    let t_start = Instant::now();
    let stalled = (0..opts.stalled)
        .map(|i| format!("http://{stall_addr}/stall/{i}"))
        .collect();
    post_all(opts, &client, stalled, &tally).await;
    let flood = (0..opts.flood)
        .map(|i| format!("http://{echo_addr}/flood/{i}"))
        .collect();
    post_all(opts, &client, flood, &tally).await;
    let sent_in = t_start.elapsed();
    eprintln!(
        "[abuse] subscription-flood: {} hub requests sent in {:.1} s; the legitimate subscriber asks now",
        opts.stalled + opts.flood,
        sent_in.as_secs_f64()
    );

    let legit_client = hub_client(opts.probe_from);
    let t0 = Instant::now();
    let status = subscribe(
        &legit_client,
        opts.addr,
        &opts.topic(),
        &format!("http://{legit_addr}/legit"),
    )
    .await;
    let outcome = if status != "202" {
        format!("its request was answered {status}")
    } else {
        let deadline = t0 + Duration::from_secs(opts.legit_wait_secs);
        loop {
            if let Some((at, mode)) = legit_seen.lock().unwrap().clone() {
                let secs = at.duration_since(t0).as_secs_f64();
                break if mode == "denied" {
                    format!("**denied** after {secs:.1} s")
                } else {
                    format!("verification GET after {secs:.1} s")
                };
            }
            if Instant::now() > deadline {
                break format!("**no verification within {} s**", opts.legit_wait_secs);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    eprintln!("[abuse] legitimate subscriber: {outcome}");
    *tally.legit.lock().unwrap() = Some(format!(
        "{outcome} (asked after the flood was sent, {:.1} s in)",
        sent_in.as_secs_f64()
    ));
    tokio::time::sleep_until(window_end).await;
}

// ------------------------------------------------------------------ the row

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn mib_bytes(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
}

/// (load, what happened) for the row.
fn describe(opts: &Opts, tally: &Tally, nofile: u64) -> (String, String) {
    let n = opts.conns();
    let opened = Tally::get(&tally.opened);
    let ended = Tally::get(&tally.ended_by_daemon);
    let failed = Tally::get(&tally.connect_failed);
    let failed = if failed > 0 {
        format!(", {failed} connects failed")
    } else {
        String::new()
    };
    match opts.attack {
        Attack::Baseline => ("none".into(), "—".into()),
        Attack::SlowHeaders => (
            format!("{n} conns, 1 header byte/s each, reconnect 1 s after an end"),
            format!(
                "{opened} conns opened{failed}; daemon ended {ended}: {}",
                tally.outcomes()
            ),
        ),
        Attack::IdleFlood => {
            let cap = n.min(nofile.saturating_sub(FD_RESERVE) as usize);
            let why = tally
                .stop_reason
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "all opened".into());
            (
                format!("up to {cap} idle conns, held"),
                format!(
                    "{opened} held ({why}){failed}; daemon ended {ended}: {}",
                    tally.outcomes()
                ),
            )
        }
        Attack::SlowHubBody => (
            format!(
                "{n} conns × POST /hub, Content-Length {}, all but 1 byte sent, then stall; reconnect 1 s after an end",
                opts.slow_body_length
            ),
            format!(
                "{opened} conns opened{failed}, {} sent; daemon ended {ended}: {}",
                mib_bytes(Tally::get(&tally.bytes_sent)),
                tally.outcomes()
            ),
        ),
        Attack::BigHubBody => (
            format!(
                "{n} workers × back-to-back POST /hub of {} MiB (half Content-Length, half chunked)",
                opts.body_mib
            ),
            format!(
                "{} requests{failed}, {} sent; answers: {}",
                Tally::get(&tally.requests),
                mib_bytes(Tally::get(&tally.bytes_sent)),
                tally.outcomes()
            ),
        ),
        Attack::HugeCallbackReply => (
            format!(
                "{} callbacks answering the verification GET with {}, re-subscribed after each answer",
                opts.callbacks,
                if opts.reply_mib == 0 {
                    "an endless body".to_string()
                } else {
                    format!("{} MiB", opts.reply_mib)
                }
            ),
            format!(
                "hub answers: {}; {} verification GETs, {} sent to the daemon",
                tally.outcomes(),
                Tally::get(&tally.verification_gets),
                mib_bytes(Tally::get(&tally.bytes_served))
            ),
        ),
        Attack::SubscriptionFlood => (
            format!(
                "{} subscribes (distinct answering callbacks) after {} whose callbacks never answer, from 127.0.0.1",
                opts.flood, opts.stalled
            ),
            format!(
                "hub answers: {}; flood callbacks got {} verification GETs and {} denials; stalling callbacks contacted {}; legitimate subscriber from {}: {}",
                tally.outcomes(),
                Tally::get(&tally.verification_gets),
                Tally::get(&tally.denials),
                Tally::get(&tally.stalled_accepted),
                opts.probe_from,
                tally
                    .legit
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| "did not get to ask".into())
            ),
        ),
    }
}

async fn healthy(opts: &Opts) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .local_address(opts.probe_from)
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    matches!(
        client.get(format!("http://{}/healthz", opts.addr)).send().await,
        Ok(r) if r.status() == reqwest::StatusCode::OK
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--header") {
        println!("{HEADER}");
        return;
    }
    let opts = Opts::parse();
    // The harness attacks loopback only.
    assert!(
        opts.addr.ip().is_loopback() && opts.probe_from.is_loopback(),
        "--addr and --probe-from must be loopback addresses"
    );
    feedwire::install_tls_provider();
    let nofile = raise_nofile_limit(opts.conns() as u64 + FD_RESERVE);
    let name = opts
        .attack
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    eprintln!(
        "[abuse] {name} for {} s against {} (RLIMIT_NOFILE {nofile})",
        opts.seconds, opts.addr
    );

    let idle = opts.pid.and_then(read_status);
    let stop_watch = Arc::new(AtomicBool::new(false));
    let memory = opts
        .pid
        .map(|pid| watch_memory(pid, opts.rss_ceiling_mib * 1024, stop_watch.clone()));
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader = read_feed_meanwhile(&opts, stop_reader.clone());

    let tally = Arc::new(Tally::default());
    let window_end = tokio::time::Instant::now() + Duration::from_secs(opts.seconds);
    let t_attack = Instant::now();
    match opts.attack {
        Attack::Baseline => tokio::time::sleep_until(window_end).await,
        Attack::SubscriptionFlood => subscription_flood(&opts, tally.clone(), window_end).await,
        attack => {
            let run = async {
                match attack {
                    Attack::SlowHeaders => slow_headers(&opts, tally.clone()).await,
                    Attack::IdleFlood => idle_flood(&opts, tally.clone(), nofile).await,
                    Attack::SlowHubBody => slow_hub_body(&opts, tally.clone()).await,
                    Attack::BigHubBody => big_hub_body(&opts, tally.clone()).await,
                    Attack::HugeCallbackReply => huge_callback_reply(&opts, tally.clone()).await,
                    Attack::Baseline | Attack::SubscriptionFlood => unreachable!(),
                }
            };
            // Dropping the attack at the deadline aborts its tasks and closes
            // every attacking connection.
            let _ = tokio::time::timeout_at(window_end, run).await;
        }
    }
    let attack_secs = t_attack.elapsed().as_secs_f64();
    stop_reader.store(true, Relaxed);
    let samples = tokio::task::spawn_blocking(move || reader.join().expect("the reader"))
        .await
        .expect("join the reader");
    eprintln!(
        "[abuse] attack over after {attack_secs:.1} s; settling {} s",
        opts.settle_secs
    );
    tokio::time::sleep(Duration::from_secs(opts.settle_secs)).await;

    let after = opts.pid.and_then(read_status);
    stop_watch.store(true, Relaxed);
    let memory = match memory {
        Some(h) => Some(
            tokio::task::spawn_blocking(move || h.join().expect("the memory watch"))
                .await
                .expect("join the memory watch"),
        ),
        None => None,
    };
    let answers = healthy(&opts).await;

    let mut lat: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    lat.sort_by(f64::total_cmp);
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &samples {
        if let Some(f) = s.failure {
            *failures.entry(f).or_default() += 1;
        }
    }
    let failed: usize = failures.values().sum();

    let alive = after.is_some_and(|s| s.alive);
    let killed = memory.as_ref().and_then(|m| m.killed);
    let survived = match (alive, answers, killed) {
        (_, _, Some((kib, at))) => format!(
            "**no**: killed by the harness at VmRSS {}, {:.1} s into the attack",
            mib(kib),
            at.saturating_duration_since(t_attack).as_secs_f64()
        ),
        (true, true, None) => "yes".into(),
        (true, false, None) => "**no**: running but /healthz does not answer 200".into(),
        (false, _, None) => "**no**: the daemon exited".into(),
    };
    let dash = || "—".to_string();
    let idle_rss = idle.map_or_else(dash, |s| mib(s.rss_kib));
    let peak = match (&memory, after) {
        (Some(m), Some(a)) if a.alive => mib(m.peak_rss_kib.max(a.hwm_kib)),
        (Some(m), _) => format!("≥ {}", mib(m.peak_rss_kib.max(m.hwm_kib))),
        _ => dash(),
    };
    let after_rss = after
        .filter(|s| s.alive)
        .map_or_else(dash, |s| mib(s.rss_kib));
    let (load, mut happened) = describe(&opts, &tally, nofile);
    if failed > 0 {
        let kinds = failures
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        happened.push_str(&format!("; normal requests failed: {kinds}"));
    }
    if let Some((_, at)) = killed {
        // What the reader got while the daemon was still alive.
        let before: Vec<&Sample> = samples.iter().filter(|s| s.sent_at < at).collect();
        let mut ms: Vec<f64> = before.iter().map(|s| s.ms).collect();
        ms.sort_by(f64::total_cmp);
        happened.push_str(&format!(
            "; normal requests sent before the kill: p50 / p99 / max {:.1} / {:.1} / {:.1} ms, {} of {} failed",
            percentile(&ms, 0.50),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(f64::NAN),
            before.iter().filter(|s| s.failure.is_some()).count(),
            before.len()
        ));
    }
    if opts.attack == Attack::SubscriptionFlood {
        happened.push_str(&format!("; attack lasted {attack_secs:.0} s"));
    }
    println!(
        "| {name} | {load} | {idle_rss} | {peak} | {after_rss} | {:.1} / {:.1} / {:.1} ms | {failed} / {} | {survived} | {happened} |",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        samples.len(),
    );
}
