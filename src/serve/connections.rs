//! Connections: the accept loop and every bound on a connection's life.
//!
//! This module owns who gets a connection (an overall cap kept below the
//! open-file limit, and a per-client cap), how long a connection may take to
//! send a request head or sit idle (hyper's header-read timer), how long it
//! may refuse to read our responses (the send timeout), and how shutdown ends
//! connections (in-flight requests finish, idle and slow ones are closed,
//! nothing is waited on longer than [`SHUTDOWN_GRACE`]).
//!
//! Connections are accepted on the daemon's runtime and served on the HTTP
//! worker threads (`server.workers`), one single-threaded runtime each; every
//! request goes to the [`Front`] door, which gives routed requests
//! `ConnectInfo<SocketAddr>` as axum's `into_make_service_with_connect_info`
//! would, so handlers (the hub's per-client rate limit) can see the peer.

use super::Limits;
use super::front::Front;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// After shutdown is asked for, in-flight requests get this long to finish;
/// then every remaining connection is dropped. Short: the daemon's whole
/// shutdown is bounded, and a request here takes milliseconds.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// File descriptors kept free for everything that is not an HTTP client:
/// article files read in parallel, the catalog's connections (each with its
/// WAL and shared-memory files), published feeds being written, the watcher,
/// and outbound WebSub and partner connections.
const RESERVED_FDS: u64 = 256;

/// Hyper's connection read buffer is at least this large (its own minimum).
const MIN_READ_BUFFER: usize = 8192;

/// Warnings about refused connections are logged at most this often, so a
/// flood cannot flood the log too.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Run the accept loop until `shutdown` resolves, then shut down as
/// described in the module documentation.
///
/// Connections are accepted here, on the daemon's runtime, where the caps
/// are kept in one place; each admitted connection is then handed to the
/// least busy of the [`workers`](Workers), which serves it start to finish.
/// A request is so handled on one thread: on a shared multi-threaded runtime
/// the thread woken by the socket was often not the one running the
/// connection, and those wake-ups were a quarter of the CPU time of a
/// polling load.
pub async fn accept_loop(
    listener: TcpListener,
    front: Front,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = connection_cap(limits.max_connections, raise_fd_limit());
    let slots = Arc::new(Semaphore::new(max_connections));
    let clients = Arc::new(ClientCounts::new(
        limits.max_connections_per_client.min(max_connections),
    ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // Hyper's default cap is 100 headers, which is ours; setting it
        // explicitly, even to 100, makes hyper fill a fresh array per request.
        // A head over either bound is refused with 431 by hyper itself; the
        // exact per-part limits (414, 431) are checked again in `bounds`.
        .max_header_size(limits.max_header_bytes + limits.max_uri_bytes + 1024)
        .max_buf_size((limits.max_header_bytes + limits.max_uri_bytes + 1024).max(MIN_READ_BUFFER));
    let tracker = TaskTracker::new();
    let graceful = CancellationToken::new();
    let forced = CancellationToken::new();
    let served = Served {
        http,
        front,
        send_timeout: limits.send_timeout,
        tracker: tracker.clone(),
        graceful: graceful.clone(),
        forced: forced.clone(),
    };
    let workers = match Workers::start(limits.workers, &served) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP worker threads; serving HTTP on the daemon's runtime");
            Workers::default()
        }
    };
    let mut refusals = RefusalLog::default();

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.note(
                "server.max_connections",
                max_connections,
                "every connection slot is taken",
            );
            refuse(&stream, OVERLOADED);
            continue;
        };
        let Some(client) = clients.admit(peer.ip()) else {
            refusals.note(
                "server.max_connections_per_client",
                clients.max,
                "one client address holds its whole share",
            );
            refuse(&stream, TOO_MANY);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let admitted = Admitted {
            stream,
            peer,
            held: (slot, client),
        };
        if let Some(refused) = workers.hand(admitted) {
            // No worker threads (they could not start): serve right here.
            served.spawn(refused.stream, refused.peer, refused.held);
        }
    }

    // Stop accepting first, so new clients are refused by the kernel at once.
    drop(listener);
    graceful.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::info!(
            connections = tracker.len(),
            "closing HTTP connections still open after the shutdown grace period"
        );
        forced.cancel();
        tracker.wait().await;
    }
    // Every connection has ended; the workers' queues close with `workers`.
    drop(workers);
}

/// A connection past the caps, with what it holds of them (given back when
/// it is dropped).
struct Admitted {
    stream: TcpStream,
    peer: SocketAddr,
    held: Held,
}

type Held = (OwnedSemaphorePermit, ClientSlot);

/// A connection on its way to a worker: the socket (deregistered from the
/// accepting runtime), its peer, its caps, and its share of the worker's load.
type Handed = (std::net::TcpStream, SocketAddr, Held, Load);

/// What serving a connection needs, on whichever runtime serves it.
#[derive(Clone)]
struct Served {
    http: http1::Builder,
    front: Front,
    send_timeout: Duration,
    /// Every connection, on every worker: shutdown waits on it.
    tracker: TaskTracker,
    graceful: CancellationToken,
    forced: CancellationToken,
}

impl Served {
    /// Serve one connection on the current runtime, until it closes or
    /// shutdown ends it.
    fn spawn(&self, stream: TcpStream, peer: SocketAddr, held: impl Send + 'static) {
        let io = TokioIo::new(SendTimeout::new(stream, self.send_timeout));
        let front = self.front.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| front.call(req, peer));
        let conn = self.http.serve_connection(io, service);
        let (graceful, forced) = (self.graceful.clone(), self.forced.clone());
        tokio::spawn(self.tracker.track_future(async move {
            let _held = held;
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = graceful.cancelled() => {
                    // Idle connections close now; a request in progress finishes.
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        r = conn.as_mut() => r,
                        _ = forced.cancelled() => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                // Timeouts, resets and malformed requests are the client's
                // business; they are not worth more than a debug line.
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        }));
    }
}

/// The HTTP worker threads, each running a single-threaded runtime that
/// serves the connections handed to it. Their queues need no bound of their
/// own: a connection is queued only while it holds one of the
/// `max_connections` slots.
#[derive(Default)]
struct Workers {
    queues: Vec<mpsc::UnboundedSender<Handed>>,
    /// Connections each worker is serving.
    loads: Vec<Arc<AtomicUsize>>,
}

/// One connection's share of its worker's load; given back on drop.
struct Load(Arc<AtomicUsize>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    fn start(count: usize, served: &Served) -> io::Result<Workers> {
        let mut workers = Workers::default();
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (queue, mut handed) = mpsc::unbounded_channel::<Handed>();
            let served = served.clone();
            std::thread::Builder::new()
                .name(format!("feedwire-http-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some((stream, peer, held, load)) = handed.recv().await {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => served.spawn(stream, peer, (held, load)),
                                Err(e) => tracing::debug!(client = %peer, error = %e, "cannot serve a handed-over connection"),
                            }
                        }
                        // The accept loop has waited for every connection.
                        served.tracker.wait().await;
                    });
                })?;
            workers.queues.push(queue);
            workers.loads.push(Arc::new(AtomicUsize::new(0)));
        }
        Ok(workers)
    }

    /// Give a connection to the worker serving the fewest; `Some` back if
    /// there is none to take it.
    fn hand(&self, c: Admitted) -> Option<Admitted> {
        let Some(i) = (0..self.loads.len()).min_by_key(|&i| self.loads[i].load(Ordering::Relaxed))
        else {
            return Some(c);
        };
        let stream = match c.stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(client = %c.peer, error = %e, "cannot hand a connection to a worker");
                return None;
            }
        };
        self.loads[i].fetch_add(1, Ordering::Relaxed);
        let load = Load(self.loads[i].clone());
        if let Err(mpsc::error::SendError((stream, peer, held, _))) =
            self.queues[i].send((stream, c.peer, c.held, load))
        {
            let stream = TcpStream::from_std(stream).ok()?;
            return Some(Admitted { stream, peer, held });
        }
        None
    }
}

/// Answer written to a connection refused for lack of a free slot, without
/// waiting: if the socket cannot take it at once, the client only sees the
/// connection close.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n";
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n";

fn refuse(stream: &TcpStream, answer: &[u8]) {
    let _ = stream.try_write(answer);
}

/// An accept error: per-connection ones (the client already gave up) are
/// ignored; running out of descriptors or memory is waited out briefly, as
/// retrying at once would spin.
async fn accept_failed(e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept HTTP connections; retrying in 100 ms (is the open-file limit too low for server.max_connections?)");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Rate-limited warning about refused connections.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since_last: u64,
}

impl RefusalLog {
    fn note(&mut self, key: &str, limit: usize, why: &str) {
        self.since_last += 1;
        if self
            .last
            .is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            refused = self.since_last,
            limit,
            "refusing HTTP connections: {why} ({key}); if these are real readers, raise {key}"
        );
        self.last = Some(Instant::now());
        self.since_last = 0;
    }
}

/// Connections per client address. Entries exist only while a client holds
/// a connection, so the map is never larger than the connection cap.
struct ClientCounts {
    max: usize,
    counts: Mutex<HashMap<ClientKey, usize>>,
}

/// The unit one client is counted by: an IPv4 address, or an IPv6 /64
/// (one subscriber line usually gets a whole /64, so counting single IPv6
/// addresses would give one machine billions of shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Prefix(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.into()),
                None => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl ClientCounts {
    fn new(max: usize) -> ClientCounts {
        ClientCounts {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = ClientKey::of(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.clone(),
            key,
        })
    }
}

/// One admitted connection's share of its client's count; given back on drop.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    key: ClientKey,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Raise the soft open-file limit to the hard one (systemd and most shells
/// start services at 1024 however high the hard limit is) and return the
/// soft limit now in force; `None` if it cannot be read.
fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    // An "unlimited" hard limit cannot be set as the soft one (the kernel's
    // nr_open caps it); a million descriptors is far beyond any cap here.
    let wanted = lim.rlim_max.min(1 << 20);
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass by pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = wanted;
        }
    }
    Some(lim.rlim_cur)
}

/// The connection cap actually used: the configured one, lowered if the
/// open-file limit leaves less than that after [`RESERVED_FDS`].
fn connection_cap(configured: usize, fd_limit: Option<u64>) -> usize {
    let Some(fd_limit) = fd_limit else {
        return configured;
    };
    let available = if fd_limit > 2 * RESERVED_FDS {
        fd_limit - RESERVED_FDS
    } else {
        fd_limit / 2
    };
    let cap = (configured as u64).min(available).max(1) as usize;
    if cap < configured {
        tracing::warn!(
            configured,
            serving = cap,
            open_file_limit = fd_limit,
            "server.max_connections is more than the open-file limit allows ({RESERVED_FDS} descriptors are kept for files, the catalog and outbound connections); raise the limit (LimitNOFILE= in the systemd unit, or ulimit -n) to serve more"
        );
    } else {
        tracing::debug!(
            max_connections = cap,
            open_file_limit = fd_limit,
            "connection cap"
        );
    }
    cap
}

/// A connection whose writes fail once the client has accepted no bytes for
/// `limit`. Hyper has no write timeout of its own: without this, a client
/// that requests a large feed and never reads would hold its connection (and
/// its slot) forever.
struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Running while a write (or flush) is waiting on the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> SendTimeout<S> {
    fn new(inner: S, limit: Duration) -> SendTimeout<S> {
        SendTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Called when the inner write is pending: start or check the clock.
    fn check_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client accepted no response bytes within server.send_timeout_secs",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.check_stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn serve_clients_are_counted_by_ipv4_address_or_ipv6_prefix() {
        let v4 = |s: &str| ClientKey::of(s.parse::<Ipv4Addr>().unwrap().into());
        let v6 = |s: &str| ClientKey::of(s.parse::<Ipv6Addr>().unwrap().into());
        assert_ne!(v4("127.0.0.1"), v4("127.0.0.2"));
        assert_eq!(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff::9"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(v6("::ffff:127.0.0.1"), v4("127.0.0.1"));
    }

    #[test]
    fn serve_client_slots_are_capped_and_given_back() {
        let counts = Arc::new(ClientCounts::new(2));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let a = counts.admit(ip).unwrap();
        let _b = counts.admit(ip).unwrap();
        assert!(counts.admit(ip).is_none(), "third connection refused");
        assert!(counts.admit(other).is_some(), "other clients unaffected");
        drop(a);
        let _c = counts
            .admit(ip)
            .expect("a closed connection frees its slot");
        drop(_c);
        drop(_b);
        assert!(
            counts.counts.lock().unwrap().is_empty(),
            "no entry outlives its connections"
        );
    }

    #[test]
    fn serve_connection_cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(1024, None), 1024);
        assert_eq!(connection_cap(1024, Some(65536)), 1024);
        assert_eq!(
            connection_cap(1024, Some(1024)),
            1024 - RESERVED_FDS as usize
        );
        assert_eq!(connection_cap(1024, Some(300)), 150);
        assert_eq!(connection_cap(10, Some(1)), 1);
    }
}
