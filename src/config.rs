//! Configuration: `config.toml`, parsed and validated once at start-up.
//!
//! Every other module receives typed, already-checked values from here, so a
//! typo is caught before the daemon touches a single file. Unknown keys are
//! errors (a misspelt `max_item` silently ignored is worse than a refusal),
//! and every validation message names the key at fault.

use anyhow::{Context, Result, bail};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration, with paths already resolved against the folder
/// that holds the config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub source: PathBuf,
    pub site: Site,
    pub paths: Paths,
    pub feeds: Feeds,
    pub ingest: Ingest,
    pub watch: Watch,
    pub lifecycle: Lifecycle,
    pub server: Server,
    pub log: Log,
    pub websub: WebSub,
    pub partners: Vec<Partner>,
    pub delivery: Delivery,
    pub publish: Publish,
    pub catalog: CatalogConfig,
    pub sitemaps: Sitemaps,
    pub indexnow: IndexNow,
    /// `[cluster]`, when the config has the section (PostgreSQL only).
    pub cluster: Option<Cluster>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Site {
    /// Feed title for the site-wide feeds; category feeds append the category name.
    pub title: String,
    pub description: String,
    /// Public address the feeds are reached at, without a trailing slash. Self
    /// links and entry links are built from it.
    pub base_url: String,
    /// Entry link template; `{base_url}` and `{id}` are substituted. Empty means
    /// `{base_url}/articles/{id}` (served by feedwire itself).
    pub article_url: String,
    /// BCP 47 language of the site (`vi`).
    pub language: String,
    /// Feed-level author, so that Atom's author rule holds even for articles
    /// without a byline.
    pub author: String,
    /// Authority part of `tag:` URIs (RFC 4151), e.g. `example.com,2026`. It is
    /// fixed once, never derived from `base_url`, so moving the site never
    /// changes an entry id.
    pub tag_authority: String,
    /// Offset-less dates and first-seen times are shown in this zone.
    pub time_zone: String,
    /// The publication's name as Google News knows it (`news:name` in the
    /// news sitemap). Empty means `title`; `validate` fills it in.
    pub publication_name: String,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            title: "feedwire".into(),
            description: "Latest articles".into(),
            base_url: "http://127.0.0.1:8080".into(),
            article_url: String::new(),
            language: "vi".into(),
            author: "feedwire".into(),
            tag_authority: "feedwire.localhost,2026".into(),
            time_zone: "Asia/Ho_Chi_Minh".into(),
            publication_name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub articles: PathBuf,
    pub feeds: PathBuf,
    /// Holds the catalog (`catalog.sqlite`, unless `catalog.url` names a
    /// PostgreSQL database); must survive restarts.
    pub state: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            articles: "articles".into(),
            feeds: "feeds".into(),
            state: "state".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Feeds {
    /// Newest entries per feed.
    pub max_items: usize,
    /// A feed larger than this drops its oldest entries until it fits: several
    /// popular readers and aggregators refuse feeds over about 1 MiB.
    /// Entries it leaves out of a live document move to the archive.
    pub max_bytes: usize,
    /// Entries per RFC 5005 archive page: what leaves a feed's live window
    /// goes to its newest archive page until that page holds this many,
    /// then a new page starts (`archive/atom-<n>.xml`, n = 1 the oldest).
    /// Archive pages are not capped by `max_bytes`: an entry must not be
    /// left out of every document.
    pub archive_page_size: u32,
}

impl Feeds {
    /// Largest `archive_page_size` accepted: a page is one document that
    /// readers fetch whole.
    pub const MAX_ARCHIVE_PAGE_SIZE: u32 = 1000;
}

impl Default for Feeds {
    fn default() -> Self {
        Feeds {
            max_items: 50,
            max_bytes: 1 << 20,
            archive_page_size: 50,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// Larger article files are rejected before they are decoded.
    pub max_bytes: u64,
    /// The largest body HTML one article may produce; larger ones are
    /// rejected so that one article cannot crowd the others out of a feed.
    /// Unset, it is 256 KiB or a quarter of `feeds.max_bytes`, whichever is
    /// smaller; `validate` fills it in.
    pub max_html_bytes: Option<usize>,
    /// How deep quotes, lists, inline markup, HTML elements and front-matter
    /// values may nest; deeper articles are rejected (parsing costs grow
    /// with depth for every element).
    pub max_nesting: usize,
    /// A file still parsing this long after its parse started is rejected as
    /// too complex, so one hostile file delays the others by at most this.
    pub parse_budget_ms: u64,
}

impl Default for Ingest {
    fn default() -> Self {
        let limits = crate::ingest::Limits::default();
        Ingest {
            max_bytes: 4 << 20,
            max_html_bytes: None,
            max_nesting: limits.max_nesting,
            parse_budget_ms: 2000,
        }
    }
}

impl Ingest {
    /// The bounds ingest applies to every article.
    pub fn limits(&self) -> crate::ingest::Limits {
        let defaults = crate::ingest::Limits::default();
        crate::ingest::Limits {
            max_html_bytes: self.max_html_bytes.unwrap_or(defaults.max_html_bytes),
            max_nesting: self.max_nesting,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watch {
    /// Quiet time after the last event on a file before it is read.
    pub debounce_ms: u64,
    /// A full reconciliation scan this often, as a safety net for events the
    /// OS never delivered (network mounts, overflows). 0 disables it.
    pub rescan_secs: u64,
    /// A batch that would remove more articles than this at once (a folder
    /// emptied by a sync tool, a mount gone) is held until an operator runs
    /// `feedwire apply-removals` or the files come back. 0 = no limit.
    pub max_removals: usize,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            debounce_ms: 200,
            rescan_secs: 600,
            max_removals: 50,
        }
    }
}

/// The newsroom lifecycle: how long a killed article's tombstone stays in
/// its feeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    pub tombstone_days: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle { tombstone_days: 7 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub enabled: bool,
    pub listen: String,
    /// `Cache-Control` sent with feeds and pages.
    pub cache_control: String,
    /// Connections the kernel completes and queues for the daemon to
    /// accept: a burst of readers beyond it waits for a retried handshake.
    pub listen_backlog: u32,
    /// `Cache-Control` sent with archive pages that are full (every page but
    /// a feed's newest, which still fills and gets `cache_control`). They
    /// change only when one of their entries is killed or edited.
    pub archive_cache_control: String,
    /// Connections served at once, whoever they come from. Kept below the
    /// open-file limit (with room for files, the catalog and outbound
    /// connections), so a flood cannot starve the rest of the daemon.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold at once. Behind
    /// a reverse proxy every client is the proxy: raise it to `max_connections`.
    pub max_connections_per_client: usize,
    /// Time to receive a request's head, counted from when the server is
    /// ready for it: a new connection, or the previous response sent. So it
    /// is also how long an idle keep-alive connection is kept.
    pub header_read_timeout_secs: u64,
    /// Time to receive a whole request body.
    pub body_read_timeout_secs: u64,
    /// A client that accepts no response bytes for this long is disconnected.
    pub send_timeout_secs: u64,
    /// Largest request body on any route (`POST /hub` needs a few hundred bytes).
    pub max_body_bytes: usize,
    /// Sum of a request's header names and values.
    pub max_header_bytes: usize,
    /// Longest request target (path and query).
    pub max_uri_bytes: usize,
    /// Memory for gzip/brotli copies of rendered HTML pages and archive pages.
    pub page_cache_bytes: usize,
    /// Threads serving HTTP connections, each with a runtime of its own (a
    /// connection stays on one thread, so a request costs no wake-ups across
    /// threads). 0: one per CPU core.
    pub workers: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            cache_control: "public, max-age=60".into(),
            listen_backlog: 1024,
            archive_cache_control: "public, max-age=86400".into(),
            max_connections: 1024,
            max_connections_per_client: 64,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            send_timeout_secs: 20,
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 4 * 1024,
            page_cache_bytes: 8 << 20,
            workers: 0,
        }
    }
}

impl Server {
    /// Most HTTP worker threads `server.workers` may ask for.
    pub const MAX_WORKERS: usize = 256;

    /// The number of HTTP worker threads: `workers`, or one per core.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().with_context(|| {
            format!(
                "server.listen: `{}` is not an address like 127.0.0.1:8080",
                self.listen
            )
        })
    }

    fn validate_limits(&self) -> Result<()> {
        let at_least = |key: &str, value: u64, min: u64| -> Result<()> {
            if value < min {
                bail!("server.{key} must be at least {min} (it is {value})");
            }
            Ok(())
        };
        at_least("max_connections", self.max_connections as u64, 1)?;
        at_least("listen_backlog", self.listen_backlog as u64, 1)?;
        at_least(
            "max_connections_per_client",
            self.max_connections_per_client as u64,
            1,
        )?;
        if self.max_connections_per_client > self.max_connections {
            bail!(
                "server.max_connections_per_client ({}) must not exceed server.max_connections ({})",
                self.max_connections_per_client,
                self.max_connections
            );
        }
        at_least("header_read_timeout_secs", self.header_read_timeout_secs, 1)?;
        at_least("body_read_timeout_secs", self.body_read_timeout_secs, 1)?;
        at_least("send_timeout_secs", self.send_timeout_secs, 1)?;
        // Below these, ordinary browsers and feed readers would be refused.
        at_least("max_body_bytes", self.max_body_bytes as u64, 1024)?;
        at_least("max_header_bytes", self.max_header_bytes as u64, 4096)?;
        at_least("max_uri_bytes", self.max_uri_bytes as u64, 256)?;
        // Each worker is a thread with a runtime of its own; past this it is
        // a typo, not a machine.
        if self.workers > Self::MAX_WORKERS {
            bail!(
                "server.workers must be at most {} (it is {}); 0 means one per CPU core",
                Self::MAX_WORKERS,
                self.workers
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter (`info`, `feedwire=debug`); `RUST_LOG` wins if set.
    pub level: String,
    /// `text` (human-readable) or `json` (one object per line, for log shippers).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSub {
    /// External hubs to ping when a feed changes.
    pub hubs: Vec<String>,
    /// Run the built-in hub at `POST /hub`.
    pub builtin_hub: bool,
    /// Hosts (names or IPs) callbacks may point at. Empty means any public
    /// host; loopback and private addresses must be listed explicitly.
    pub allowed_callback_hosts: Vec<String>,
    pub lease_min_secs: u64,
    pub lease_max_secs: u64,
    pub lease_default_secs: u64,
    pub max_subscriptions_per_topic: usize,
    pub max_subscriptions: usize,
    /// Subscriptions one client address (an IPv4 address, an IPv6 /64) may
    /// hold, so one requester cannot fill a topic over time.
    pub max_subscriptions_per_client: usize,
    /// Longest `hub.callback` accepted (it is stored with the subscription).
    pub max_callback_bytes: usize,
    /// `POST /hub` requests one client address may make per minute (a token
    /// bucket refilled at this rate); over it the answer is 429 with
    /// `Retry-After`.
    pub client_requests_per_minute: u32,
    /// Requests a client may make at once before the rate applies.
    pub client_burst: u32,
    /// Client addresses the rate limiter remembers; beyond it, the least
    /// recently seen is forgotten.
    pub max_tracked_clients: usize,
    /// Verifications (and denials) accepted but not finished, hub-wide; when
    /// full, `POST /hub` answers 503 with `Retry-After`.
    pub max_pending_verifications: usize,
    /// Pending verifications one client address may have; over it, 429.
    pub max_pending_verifications_per_client: usize,
    /// WebSub deliveries on their way at once to the subscriptions one
    /// client address made, so its slow callbacks cannot take every
    /// delivery slot (`delivery.websub_concurrency`).
    pub max_deliveries_in_flight_per_client: usize,
    /// Whole verification or denial request to a callback: connect, answer
    /// and the challenge echo, also the callback host's name resolution.
    pub verify_timeout_ms: u64,
    /// Give up on a delivery this long after it was first queued.
    pub give_up_secs: u64,
    /// Parameter names the publish ping carries the feed URL in.
    pub ping_params: Vec<String>,
    /// Legacy XML-RPC `weblogUpdates.ping` endpoints, pinged when the site changes.
    pub ping_servers: Vec<String>,
}

impl Default for WebSub {
    fn default() -> Self {
        WebSub {
            hubs: Vec::new(),
            builtin_hub: true,
            allowed_callback_hosts: Vec::new(),
            lease_min_secs: 3600,
            lease_max_secs: 30 * 86400,
            lease_default_secs: 10 * 86400,
            max_subscriptions_per_topic: 10_000,
            max_subscriptions: 100_000,
            max_subscriptions_per_client: 1_000,
            max_callback_bytes: 2048,
            client_requests_per_minute: 60,
            client_burst: 20,
            max_tracked_clients: 10_000,
            max_pending_verifications: 1_000,
            max_pending_verifications_per_client: 8,
            max_deliveries_in_flight_per_client: 8,
            verify_timeout_ms: 5_000,
            give_up_secs: 2 * 86400,
            ping_params: vec!["hub.url".into(), "hub.topic".into()],
            ping_servers: Vec::new(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    pub name: String,
    /// Where changes are pushed (`POST`); a partner that only pulls has none.
    #[serde(default)]
    pub url: Option<String>,
    /// What pushes carry: `atom`, `rss`, `json` or `ninjs`.
    #[serde(default = "default_partner_format")]
    pub format: String,
    /// Category slugs; empty means everything.
    #[serde(default)]
    pub categories: Vec<String>,
    /// HMAC-SHA256 key for pushes; `env:NAME` reads it from the
    /// environment. Needed with `url`.
    #[serde(default)]
    pub secret: String,
    /// Opens `/partners/<name>/{atom.xml,rss.xml,feed.json,ninjs.json}` to
    /// `Authorization: Bearer <token>`; `env:NAME` reads it from the
    /// environment. `None`: the partner does not pull.
    #[serde(default)]
    pub pull_token: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_partner_concurrency")]
    pub concurrency: usize,
    /// May receive embargoed copy before its time, clearly marked as
    /// withheld (`fw:status` in Atom/RSS, `_feedwire` in JSON).
    #[serde(default)]
    pub embargoed: bool,
}

/// How outbound deliveries (WebSub, hub pings, partners) are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// First retry delay; each further failure doubles it (with jitter).
    pub retry_base_ms: u64,
    /// Ceiling for the retry delay.
    pub retry_max_ms: u64,
    /// Per-request timeout (connect + response).
    pub timeout_ms: u64,
    /// A partner delivery still failing this long after it was queued becomes
    /// a dead letter (see `feedwire status`, `feedwire redeliver`).
    pub partner_give_up_secs: u64,
    /// WebSub deliveries, verifications and hub pings in flight at once.
    pub websub_concurrency: usize,
    /// Most bytes read of any receiver's answer (the XML-RPC ping reply is
    /// the only one read past its first 200 bytes); the rest is never read.
    pub max_reply_bytes: usize,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            retry_base_ms: 1000,
            retry_max_ms: 15 * 60 * 1000,
            timeout_ms: 10_000,
            partner_give_up_secs: 2 * 86400,
            websub_concurrency: 64,
            max_reply_bytes: 64 * 1024,
        }
    }
}

/// `[cluster]`: several `feedwire run` instances on one PostgreSQL catalog.
/// One of them (the leader, holding a lease row in the catalog) watches the
/// articles folder and publishes; every instance serves HTTP and delivers.
/// Without the section, an instance on PostgreSQL still takes the lease (so
/// nothing else writes beside it) but takes it at once at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This instance's name in `status` and the logs; empty means
    /// `<hostname>-<pid>`.
    pub instance: String,
    /// How long the leader's lease lasts without a renewal: a standby takes
    /// over at most this long after the leader died.
    pub lease_secs: u64,
    /// How often the leader renews its lease (and every instance records
    /// that it is alive).
    pub renew_secs: u64,
    /// How long a delivery an instance took from the outbox stays its own;
    /// after that (or once the instance has not been seen for `lease_secs`)
    /// another instance may send it.
    pub claim_secs: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            instance: String::new(),
            lease_secs: 10,
            renew_secs: 3,
            claim_secs: 60,
        }
    }
}

impl Cluster {
    /// The instance's name: `instance`, or `<hostname>-<pid>`.
    pub fn instance_name(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        format!("{}-{}", hostname(), std::process::id())
    }

    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs)
    }

    pub fn renew_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.renew_secs)
    }

    pub fn claim(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.claim_secs)
    }
}

/// The machine's host name, for default instance names.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "feedwire".to_string(),
    }
}

/// Where the catalog lives: `[catalog]`. Without `url`, the SQLite file
/// under `paths.state`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// `postgres://user:password@host:port/db` selects PostgreSQL;
    /// `env:NAME` reads it from the environment (it carries a password).
    pub url: Option<String>,
    /// PostgreSQL connections one feedwire process opens at most (the
    /// pipeline, the pages, the hub and the delivery worker hold one each
    /// while they work).
    pub max_connections: usize,
    /// Time to open one PostgreSQL connection before the attempt fails.
    pub connect_timeout_secs: u64,
    /// Time to wait for a free connection when all are in use.
    pub acquire_timeout_secs: u64,
    /// Longest a PostgreSQL connection may go without a sign of life from
    /// the server before it is closed: sent bytes unacknowledged (TCP user
    /// timeout) or an idle connection's keepalive probes unanswered. Without
    /// it, a network partition leaves a query, or a standby's `LISTEN`,
    /// waiting for the kernel's own limits (minutes, or hours when idle).
    pub tcp_timeout_secs: u64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            url: None,
            max_connections: 8,
            connect_timeout_secs: 10,
            acquire_timeout_secs: 30,
            tcp_timeout_secs: 30,
        }
    }
}

/// The URL's password never reaches a log through `{:?}`.
impl std::fmt::Debug for CatalogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogConfig")
            .field("url", &self.url.as_deref().map(redact))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .field("tcp_timeout_secs", &self.tcp_timeout_secs)
            .finish()
    }
}

/// Which storage the catalog uses, and where: what `Catalog::open` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// The SQLite file.
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

impl CatalogLocation {
    /// What `status` and messages show: the backend and where it is,
    /// never a password.
    pub fn describe(&self) -> String {
        match self {
            CatalogLocation::Sqlite(path) => format!("SQLite {}", path.display()),
            CatalogLocation::Postgres(url) => format!("PostgreSQL {url}"),
        }
    }
}

/// A PostgreSQL connection URL with its pool settings. `Display` and
/// `Debug` leave the password out, so it cannot reach a log or `status`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
    pub max_connections: usize,
    pub connect_timeout: std::time::Duration,
    pub acquire_timeout: std::time::Duration,
    pub tcp_timeout: std::time::Duration,
}

impl PostgresUrl {
    /// Check a URL: `postgres://` or `postgresql://`, parseable. `key` names
    /// where it came from, for the message.
    pub fn parse(url: &str, key: &str) -> Result<PostgresUrl> {
        let defaults = CatalogConfig::default();
        let parsed = url::Url::parse(url).ok();
        match parsed.as_ref().map(url::Url::scheme) {
            Some("postgres" | "postgresql") => {}
            _ => bail!(
                "{key}: `{}` must be a PostgreSQL URL like postgres://user:password@host:5432/feedwire",
                redact(url)
            ),
        }
        Ok(PostgresUrl {
            url: url.to_string(),
            max_connections: defaults.max_connections,
            connect_timeout: std::time::Duration::from_secs(defaults.connect_timeout_secs),
            acquire_timeout: std::time::Duration::from_secs(defaults.acquire_timeout_secs),
            tcp_timeout: std::time::Duration::from_secs(defaults.tcp_timeout_secs),
        })
    }

    /// A URL as an operator writes it (`env:NAME` allowed), with this
    /// config's pool settings; `key` names where it came from.
    pub fn from_setting(value: &str, key: &str, settings: &CatalogConfig) -> Result<PostgresUrl> {
        let value = resolve_env(value).with_context(|| key.to_string())?;
        let mut url = PostgresUrl::parse(&value, key)?;
        url.max_connections = settings.max_connections;
        url.connect_timeout = std::time::Duration::from_secs(settings.connect_timeout_secs);
        url.acquire_timeout = std::time::Duration::from_secs(settings.acquire_timeout_secs);
        url.tcp_timeout = std::time::Duration::from_secs(settings.tcp_timeout_secs);
        Ok(url)
    }

    /// The URL with its password, for the client only.
    pub fn secret_url(&self) -> &str {
        &self.url
    }
}

/// A URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Unparseable: show only the scheme, the rest may hold a password.
        Err(_) => format!("{}…", url.split(':').next().unwrap_or_default()),
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// Secrets and header values never reach logs through `{:?}`.
impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("format", &self.format)
            .field("categories", &self.categories)
            .field("secret", &"<redacted>")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("concurrency", &self.concurrency)
            .field("embargoed", &self.embargoed)
            .field(
                "pull_token",
                &self.pull_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A pull token shorter than this is refused: it is all that stands
/// between the internet and the partner's full text and embargoed copy.
pub const MIN_PULL_TOKEN_BYTES: usize = 16;

fn default_partner_format() -> String {
    "atom".into()
}
fn default_partner_concurrency() -> usize {
    4
}

/// `[sitemaps]`: the sitemaps.org sitemap of every article page
/// (`/sitemap.xml`), the Google News sitemap of the newest ones
/// (`/news-sitemap.xml`) and the `/robots.txt` that names both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sitemaps {
    pub enabled: bool,
    /// URLs per page of the full sitemap; more make `/sitemap.xml` an index
    /// of fixed pages. sitemaps.org allows 50,000, but a new article
    /// re-renders its page, and each page's recent articles are one file
    /// of the news sitemap: so at most `news_max_urls`, 1,000 by default.
    pub max_urls: usize,
    /// Bytes per file of the full sitemap, uncompressed (sitemaps.org allows
    /// 50 MB, 52,428,800 bytes); a page that would grow past it is closed.
    pub max_bytes: usize,
    /// Articles first published this many hours ago or less are in the news
    /// sitemap (Google News reads two days).
    pub news_window_hours: u32,
    /// URLs per news sitemap file (Google News allows 1,000); more make
    /// `/news-sitemap.xml` an index.
    pub news_max_urls: usize,
}

impl Sitemaps {
    /// The protocols' own ceilings (sitemaps.org; Google News).
    pub const MAX_URLS: usize = 50_000;
    /// URLs per page by default: a page is re-rendered on every change to
    /// one of its articles, so its size is the sitemaps' cost per article.
    pub const PAGE_URLS: usize = 1_000;
    pub const MAX_BYTES: usize = 52_428_800;
    pub const NEWS_MAX_URLS: usize = 1_000;
}

impl Default for Sitemaps {
    fn default() -> Self {
        Sitemaps {
            enabled: true,
            max_urls: Self::PAGE_URLS,
            max_bytes: Self::MAX_BYTES,
            news_window_hours: 48,
            news_max_urls: Self::NEWS_MAX_URLS,
        }
    }
}

/// `[indexnow]`: tell search engines (IndexNow, indexnow.org) about every
/// article page that was published, changed or killed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexNow {
    /// The site's IndexNow key: 8 to 128 letters, digits or `-`. It is
    /// public by design (served at `/{key}.txt`); `env:NAME` reads it from
    /// the environment.
    pub key: String,
    /// Where submissions go, each an absolute URL such as
    /// `https://api.indexnow.org/indexnow`. Empty: the key file is
    /// published, nothing is submitted.
    pub endpoints: Vec<String>,
    /// URLs queued within this long go in one request.
    pub batch_window_ms: u64,
    /// URLs per request (IndexNow accepts 10,000).
    pub max_urls_per_request: usize,
    /// A submission still failing this long after it was queued is dropped
    /// (and logged): the sitemap still lists the page.
    pub give_up_secs: u64,
}

impl IndexNow {
    /// The protocol's ceiling of URLs per request.
    pub const MAX_URLS_PER_REQUEST: usize = 10_000;

    /// Whether anything is submitted.
    pub fn submits(&self) -> bool {
        !self.key.is_empty() && !self.endpoints.is_empty()
    }

    fn validate(&mut self) -> Result<()> {
        self.key = resolve_env(&self.key).context("indexnow.key")?;
        let key_ok = (8..=128).contains(&self.key.len())
            && self
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !self.key.is_empty() && !key_ok {
            bail!(
                "indexnow.key must be 8 to 128 characters, each a letter a-z or A-Z, a digit or `-` (it is {} characters); generate one with `openssl rand -hex 16`",
                self.key.chars().count()
            );
        }
        if self.key.is_empty() && !self.endpoints.is_empty() {
            bail!(
                "indexnow.endpoints is set but indexnow.key is not: set indexnow.key (8 to 128 letters, digits or `-`, e.g. from `openssl rand -hex 16`)"
            );
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            match url::Url::parse(endpoint) {
                Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {}
                _ => bail!(
                    "indexnow.endpoints[{i}]: `{endpoint}` must be an absolute http(s) URL like https://api.indexnow.org/indexnow"
                ),
            }
        }
        if self.batch_window_ms == 0 {
            bail!("indexnow.batch_window_ms must be at least 1");
        }
        if !(1..=Self::MAX_URLS_PER_REQUEST).contains(&self.max_urls_per_request) {
            bail!(
                "indexnow.max_urls_per_request must be between 1 and {} (IndexNow's limit); it is {}",
                Self::MAX_URLS_PER_REQUEST,
                self.max_urls_per_request
            );
        }
        if self.give_up_secs == 0 {
            bail!("indexnow.give_up_secs must be at least 1");
        }
        Ok(())
    }
}

impl Default for IndexNow {
    fn default() -> Self {
        IndexNow {
            key: String::new(),
            endpoints: Vec::new(),
            batch_window_ms: 2_000,
            max_urls_per_request: Self::MAX_URLS_PER_REQUEST,
            give_up_secs: 2 * 86400,
        }
    }
}

/// Where published documents go besides the in-memory set HTTP serves: the
/// feeds folder, object storage, or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Publish {
    /// Write documents to `paths.feeds` (also when `target` is set, so a
    /// local copy can stay alongside object storage).
    pub folder: bool,
    /// Object storage to publish to as well: `s3://bucket/prefix`.
    pub target: Option<String>,
    /// How to reach `target`; only meaningful with it.
    pub s3: Option<PublishS3>,
    /// `target`, checked and split by `validate`.
    #[serde(skip)]
    pub location: Option<S3Location>,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            folder: true,
            target: None,
            s3: None,
            location: None,
        }
    }
}

/// A bucket and the key prefix every document is published under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; empty means the bucket's root.
    pub prefix: String,
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// `[publish.s3]`: the S3 (or S3-compatible) service `publish.target` is on.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishS3 {
    /// The service's address; empty means AWS's own for `region`.
    pub endpoint: String,
    pub region: String,
    /// `env:NAME` reads it from the environment.
    pub access_key_id: String,
    /// `env:NAME` reads it from the environment.
    pub secret_access_key: String,
    /// Allow a plain-http `endpoint` (a store on the same host or network).
    pub allow_http: bool,
    /// Also write `<key>.gz`, gzip-encoded, for a CDN to serve to clients
    /// that accept gzip.
    pub gzip: bool,
    /// Requests to the store in flight at once (uploads and look-ups).
    pub concurrency: usize,
    /// One request's whole time (connect, send, answer); a request that
    /// fails is retried (a few times) while less than this has passed since
    /// its first try.
    pub timeout_secs: u64,
}

impl Default for PublishS3 {
    fn default() -> Self {
        PublishS3 {
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
            gzip: true,
            concurrency: 8,
            timeout_secs: 30,
        }
    }
}

/// Keys never reach logs through `{:?}`.
impl std::fmt::Debug for PublishS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishS3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .field("gzip", &self.gzip)
            .field("concurrency", &self.concurrency)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl Publish {
    fn validate(&mut self) -> Result<()> {
        let Some(target) = &self.target else {
            if self.s3.is_some() {
                bail!(
                    "publish.s3 is set but publish.target is not: add publish.target = \"s3://bucket/prefix\", or remove [publish.s3]"
                );
            }
            if !self.folder {
                bail!(
                    "publish.folder is false and publish.target is not set: nothing would be published; set either"
                );
            }
            return Ok(());
        };
        self.location = Some(parse_s3_target(target).with_context(|| {
            format!("publish.target: `{target}` must look like s3://bucket/prefix")
        })?);
        let s3 = self.s3.get_or_insert_with(PublishS3::default);
        if !s3.endpoint.is_empty() {
            match url::Url::parse(&s3.endpoint) {
                Ok(u) if u.scheme() == "https" => {}
                Ok(u) if u.scheme() == "http" && s3.allow_http => {}
                Ok(u) if u.scheme() == "http" => bail!(
                    "publish.s3.endpoint: `{}` is plain http; set publish.s3.allow_http = true to allow it (requests, their signatures and the feeds then cross the network unencrypted)",
                    s3.endpoint
                ),
                _ => bail!(
                    "publish.s3.endpoint: `{}` must be an absolute http(s) URL like https://s3.example.com",
                    s3.endpoint
                ),
            }
        }
        if s3.region.trim().is_empty() {
            bail!(
                "publish.s3.region must not be empty (AWS: the bucket's region; other stores: usually us-east-1)"
            );
        }
        for (key, value) in [
            ("access_key_id", &mut s3.access_key_id),
            ("secret_access_key", &mut s3.secret_access_key),
        ] {
            *value = resolve_env(value).with_context(|| format!("publish.s3.{key}"))?;
            if value.is_empty() {
                bail!(
                    "publish.s3.{key} must be set (requests are signed with it; `env:NAME` reads it from the environment)"
                );
            }
        }
        if s3.concurrency == 0 {
            bail!("publish.s3.concurrency must be at least 1");
        }
        if s3.timeout_secs == 0 {
            bail!("publish.s3.timeout_secs must be at least 1");
        }
        Ok(())
    }
}

/// `s3://bucket/prefix` → bucket and prefix, checked against S3's naming
/// rules so a typo is caught here rather than as a signing error later.
fn parse_s3_target(target: &str) -> Result<S3Location> {
    let rest = target
        .strip_prefix("s3://")
        .context("only s3:// targets are supported")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_bucket {
        bail!(
            "the bucket name `{bucket}` must be 3 to 63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit"
        );
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty()
        && prefix
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        bail!("the prefix `{prefix}` must not contain empty, `.` or `..` parts");
    }
    Ok(S3Location {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

/// The file as written, before path resolution and checks.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    site: Site,
    paths: Paths,
    feeds: Feeds,
    ingest: Ingest,
    watch: Watch,
    lifecycle: Lifecycle,
    server: Server,
    log: Log,
    websub: WebSub,
    partners: Vec<Partner>,
    delivery: Delivery,
    publish: Publish,
    catalog: CatalogConfig,
    sitemaps: Sitemaps,
    indexnow: IndexNow,
    cluster: Option<Cluster>,
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the config file {} (pass another one with --config PATH)",
                path.display()
            )
        })?;
        Self::from_toml(&text, path)
    }

    /// Parse config text; relative paths resolve against `path`'s folder.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{}: invalid config: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        // An empty parent (config in the working folder) keeps paths short in messages.
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let mut cfg = Config {
            source: path.to_path_buf(),
            paths: Paths {
                articles: resolve(&raw.paths.articles),
                feeds: resolve(&raw.paths.feeds),
                state: resolve(&raw.paths.state),
            },
            site: raw.site,
            feeds: raw.feeds,
            ingest: raw.ingest,
            watch: raw.watch,
            lifecycle: raw.lifecycle,
            server: raw.server,
            log: raw.log,
            websub: raw.websub,
            partners: raw.partners,
            delivery: raw.delivery,
            publish: raw.publish,
            catalog: raw.catalog,
            sitemaps: raw.sitemaps,
            indexnow: raw.indexnow,
            cluster: raw.cluster,
        };
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
        Ok(cfg)
    }

    fn validate(&mut self) -> Result<()> {
        self.site.base_url = self.site.base_url.trim_end_matches('/').to_string();
        match url::Url::parse(&self.site.base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => bail!(
                "site.base_url: `{}` must be an absolute http(s) URL",
                self.site.base_url
            ),
        }
        if self.site.title.trim().is_empty() {
            bail!("site.title must not be empty (feeds require a title)");
        }
        if self.site.publication_name.trim().is_empty() {
            self.site.publication_name = self.site.title.clone();
        }
        if self.site.author.trim().is_empty() {
            bail!("site.author must not be empty (Atom feeds need an author)");
        }
        if self.site.tag_authority.trim().is_empty() || self.site.tag_authority.contains(':') {
            bail!(
                "site.tag_authority: `{}` must look like `example.com,2026`",
                self.site.tag_authority
            );
        }
        self.time_zone()?;
        if self.feeds.max_items == 0 {
            bail!("feeds.max_items must be at least 1");
        }
        if self.feeds.max_bytes < 4096 {
            bail!(
                "feeds.max_bytes must be at least 4096 (it is {})",
                self.feeds.max_bytes
            );
        }
        if !(1..=Feeds::MAX_ARCHIVE_PAGE_SIZE).contains(&self.feeds.archive_page_size) {
            bail!(
                "feeds.archive_page_size must be between 1 and {} (it is {})",
                Feeds::MAX_ARCHIVE_PAGE_SIZE,
                self.feeds.archive_page_size
            );
        }
        let archive_cc = &self.server.archive_cache_control;
        if archive_cc.is_empty() || !archive_cc.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            bail!(
                "server.archive_cache_control: `{}` must be a non-empty Cache-Control value in plain ASCII, like \"public, max-age=86400\"",
                archive_cc.escape_debug()
            );
        }
        if self.ingest.max_bytes == 0 {
            bail!("ingest.max_bytes must be at least 1");
        }
        // An entry is carried up to three times its HTML in a feed (Atom
        // escapes it), so a quarter of the feed still leaves room for others.
        let quarter = self.feeds.max_bytes / 4;
        match self.ingest.max_html_bytes {
            None => {
                let default = crate::ingest::Limits::DEFAULT_MAX_HTML_BYTES;
                self.ingest.max_html_bytes = Some(default.min(quarter));
            }
            Some(n) if n < 1024 || n > quarter => bail!(
                "ingest.max_html_bytes must be between 1024 and a quarter of feeds.max_bytes ({quarter}); it is {n}"
            ),
            Some(_) => {}
        }
        if !(8..=1000).contains(&self.ingest.max_nesting) {
            bail!(
                "ingest.max_nesting must be between 8 and 1000 (it is {})",
                self.ingest.max_nesting
            );
        }
        if self.ingest.parse_budget_ms == 0 {
            bail!("ingest.parse_budget_ms must be at least 1");
        }
        if self.server.enabled {
            self.server.listen_addr()?;
        }
        self.server.validate_limits()?;
        if self.websub.lease_min_secs > self.websub.lease_max_secs {
            bail!("websub.lease_min_secs must not exceed websub.lease_max_secs");
        }
        for (i, hub) in self.websub.hubs.iter().enumerate() {
            if url::Url::parse(hub).is_err() {
                bail!("websub.hubs[{i}]: `{hub}` is not an absolute URL");
            }
        }
        for (i, server) in self.websub.ping_servers.iter().enumerate() {
            if url::Url::parse(server).is_err() {
                bail!("websub.ping_servers[{i}]: `{server}` is not an absolute URL");
            }
        }
        if self.websub.ping_params.is_empty() {
            bail!("websub.ping_params must name at least one parameter (hub.url, hub.topic)");
        }
        if self.delivery.retry_base_ms == 0
            || self.delivery.retry_max_ms < self.delivery.retry_base_ms
        {
            bail!("delivery.retry_base_ms must be at least 1 and at most delivery.retry_max_ms");
        }
        if self.delivery.timeout_ms == 0 || self.delivery.websub_concurrency == 0 {
            bail!("delivery.timeout_ms and delivery.websub_concurrency must be at least 1");
        }
        if self.delivery.max_reply_bytes < 1024 {
            bail!(
                "delivery.max_reply_bytes must be at least 1024 (it is {})",
                self.delivery.max_reply_bytes
            );
        }
        let w = &self.websub;
        for (key, value) in [
            (
                "max_subscriptions_per_client",
                w.max_subscriptions_per_client as u64,
            ),
            (
                "client_requests_per_minute",
                u64::from(w.client_requests_per_minute),
            ),
            ("client_burst", u64::from(w.client_burst)),
            ("max_tracked_clients", w.max_tracked_clients as u64),
            (
                "max_pending_verifications",
                w.max_pending_verifications as u64,
            ),
            (
                "max_pending_verifications_per_client",
                w.max_pending_verifications_per_client as u64,
            ),
            (
                "max_deliveries_in_flight_per_client",
                w.max_deliveries_in_flight_per_client as u64,
            ),
            ("verify_timeout_ms", w.verify_timeout_ms),
        ] {
            if value == 0 {
                bail!(
                    "websub.{key} must be at least 1 (it bounds what one client can make the hub do)"
                );
            }
        }
        if w.max_callback_bytes < 64 {
            bail!(
                "websub.max_callback_bytes must be at least 64 (it is {})",
                w.max_callback_bytes
            );
        }
        self.validate_catalog()?;
        self.validate_cluster()?;
        let mut names = std::collections::HashSet::new();
        for p in &mut self.partners {
            if p.name.is_empty() || !names.insert(p.name.clone()) {
                bail!(
                    "partners: every partner needs a unique `name` (`{}`)",
                    p.name
                );
            }
            if p.url.is_none() && p.pull_token.is_none() {
                bail!(
                    "partners `{}`: give it a `url` to push to, a `pull_token` to pull with, or both",
                    p.name
                );
            }
            if let Some(url) = &p.url
                && url::Url::parse(url).is_err()
            {
                bail!("partners `{}`.url: `{url}` is not an absolute URL", p.name);
            }
            if !matches!(p.format.as_str(), "atom" | "rss" | "json" | "ninjs") {
                bail!(
                    "partners `{}`.format: `{}` must be atom, rss, json or ninjs",
                    p.name,
                    p.format
                );
            }
            if p.concurrency == 0 {
                bail!("partners `{}`.concurrency must be at least 1", p.name);
            }
            p.secret =
                resolve_env(&p.secret).with_context(|| format!("partners `{}`.secret", p.name))?;
            if p.url.is_some() && p.secret.is_empty() {
                bail!(
                    "partners `{}`.secret must not be empty (deliveries are signed with it)",
                    p.name
                );
            }
            if let Some(token) = &mut p.pull_token {
                *token = resolve_env(token)
                    .with_context(|| format!("partners `{}`.pull_token", p.name))?;
                if token.len() < MIN_PULL_TOKEN_BYTES {
                    bail!(
                        "partners `{}`.pull_token must be at least {MIN_PULL_TOKEN_BYTES} bytes (make one with `openssl rand -hex 32`)",
                        p.name
                    );
                }
                if !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    bail!(
                        "partners `{}`.name: a partner that pulls is reached at /partners/<name>/, so its name may hold only letters, digits, `-`, `_` and `.`",
                        p.name
                    );
                }
            }
            for (k, v) in p.headers.iter_mut() {
                *v =
                    resolve_env(v).with_context(|| format!("partners `{}`.headers.{k}", p.name))?;
            }
        }
        self.publish.validate()?;
        self.validate_sitemaps()?;
        self.indexnow.validate()?;
        Ok(())
    }

    fn validate_sitemaps(&self) -> Result<()> {
        let s = &self.sitemaps;
        // Checked first: max_urls is bounded by it.
        if !(1..=Sitemaps::NEWS_MAX_URLS).contains(&s.news_max_urls) {
            bail!(
                "sitemaps.news_max_urls must be between 1 and {} (the Google News limit); it is {}",
                Sitemaps::NEWS_MAX_URLS,
                s.news_max_urls
            );
        }
        // A page's recent articles make one file of the news sitemap.
        if !(1..=s.news_max_urls.min(Sitemaps::MAX_URLS)).contains(&s.max_urls) {
            bail!(
                "sitemaps.max_urls must be between 1 and sitemaps.news_max_urls ({}): each page's recent articles are one file of the news sitemap; it is {}",
                s.news_max_urls,
                s.max_urls
            );
        }
        // Room for the file's own lines and one URL of the longest kind.
        if !(16 * 1024..=Sitemaps::MAX_BYTES).contains(&s.max_bytes) {
            bail!(
                "sitemaps.max_bytes must be between 16384 and {} (the sitemaps.org limit); it is {}",
                Sitemaps::MAX_BYTES,
                s.max_bytes
            );
        }
        if s.news_window_hours == 0 {
            bail!("sitemaps.news_window_hours must be at least 1 (Google News reads 48)");
        }
        Ok(())
    }

    /// The configured zone, already checked by `validate`.
    pub fn time_zone(&self) -> Result<Tz> {
        self.site.time_zone.parse::<Tz>().map_err(|_| {
            anyhow::anyhow!(
                "site.time_zone: `{}` is not an IANA zone name like Asia/Ho_Chi_Minh",
                self.site.time_zone
            )
        })
    }

    /// Where the catalog is: the PostgreSQL database of `catalog.url`, or
    /// the SQLite file inside the state folder.
    pub fn catalog_path(&self) -> CatalogLocation {
        match &self.catalog.url {
            Some(url) => CatalogLocation::Postgres(
                PostgresUrl::from_setting(url, "catalog.url", &self.catalog)
                    .expect("catalog.url was checked by validate"),
            ),
            None => CatalogLocation::Sqlite(self.sqlite_catalog_path()),
        }
    }

    /// The SQLite catalog file, whichever backend is configured (the source
    /// of `feedwire migrate-catalog`).
    pub fn sqlite_catalog_path(&self) -> PathBuf {
        self.paths.state.join("catalog.sqlite")
    }

    /// The cluster settings in force: `[cluster]`, or (an instance on
    /// PostgreSQL without the section) the defaults, with the claim long
    /// enough for `delivery.timeout_ms`.
    pub fn cluster_settings(&self) -> Cluster {
        self.cluster.clone().unwrap_or_else(|| {
            let mut c = Cluster::default();
            c.claim_secs = c.claim_secs.max(min_claim_secs(self.delivery.timeout_ms));
            c
        })
    }

    fn validate_cluster(&mut self) -> Result<()> {
        let Some(c) = &self.cluster else {
            return Ok(());
        };
        if self.catalog.url.is_none() {
            bail!(
                "cluster: [cluster] needs the PostgreSQL catalog (catalog.url): instances share one catalog only through PostgreSQL, and a SQLite catalog is always a single instance; set catalog.url, or remove [cluster]"
            );
        }
        if c.instance.len() > 100 || c.instance.chars().any(char::is_control) {
            bail!("cluster.instance must be at most 100 characters, without control characters");
        }
        if !(2..=3600).contains(&c.lease_secs) {
            bail!(
                "cluster.lease_secs must be between 2 and 3600 (it is {})",
                c.lease_secs
            );
        }
        if c.renew_secs == 0 || c.renew_secs * 2 > c.lease_secs {
            bail!(
                "cluster.renew_secs must be at least 1 and at most half of cluster.lease_secs ({}), so that one late renewal does not lose the lease; it is {}",
                c.lease_secs,
                c.renew_secs
            );
        }
        let min_claim = min_claim_secs(self.delivery.timeout_ms);
        if c.claim_secs < min_claim {
            bail!(
                "cluster.claim_secs must be at least {min_claim} (twice delivery.timeout_ms, so no other instance takes a delivery still on its way); it is {}",
                c.claim_secs
            );
        }
        Ok(())
    }

    fn validate_catalog(&mut self) -> Result<()> {
        let c = &mut self.catalog;
        if let Some(url) = &c.url {
            let url = resolve_env(url).context("catalog.url")?;
            PostgresUrl::parse(&url, "catalog.url")?;
            c.url = Some(url);
        }
        if c.max_connections < 2 {
            bail!(
                "catalog.max_connections must be at least 2 (a batch holds one while others read); it is {}",
                c.max_connections
            );
        }
        if c.connect_timeout_secs == 0 || c.acquire_timeout_secs == 0 {
            bail!(
                "catalog.connect_timeout_secs and catalog.acquire_timeout_secs must be at least 1"
            );
        }
        if !(6..=3600).contains(&c.tcp_timeout_secs) {
            bail!(
                "catalog.tcp_timeout_secs must be between 6 and 3600 (it is {}); 30 is the default",
                c.tcp_timeout_secs
            );
        }
        Ok(())
    }
}

/// The shortest delivery claim that outlasts two request timeouts.
fn min_claim_secs(timeout_ms: u64) -> u64 {
    (2 * timeout_ms).div_ceil(1000).max(1)
}

/// `env:NAME` reads NAME from the environment; anything else is literal.
fn resolve_env(value: &str) -> Result<String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name)
            .map_err(|_| anyhow::anyhow!("the environment variable {name} is not set")),
        None => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml(text, Path::new("/srv/feedwire/config.toml"))
    }

    #[test]
    fn defaults_are_valid_and_paths_resolve_against_the_config_folder() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.paths.articles, PathBuf::from("/srv/feedwire/articles"));
        assert_eq!(cfg.feeds.max_items, 50);
        assert_eq!(cfg.feeds.max_bytes, 1 << 20);
        assert_eq!(cfg.feeds.archive_page_size, 50);
        assert_eq!(cfg.server.archive_cache_control, "public, max-age=86400");
        assert_eq!(cfg.ingest.limits(), crate::ingest::Limits::default());
        assert_eq!(cfg.ingest.max_html_bytes, Some(256 << 10));
        assert_eq!(cfg.ingest.max_nesting, 64);
        assert_eq!(cfg.time_zone().unwrap(), chrono_tz::Asia::Ho_Chi_Minh);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[feeds]\nmax_items = 0", "feeds.max_items"),
            ("[feeds]\narchive_page_size = 0", "feeds.archive_page_size"),
            (
                "[feeds]\narchive_page_size = 100000",
                "feeds.archive_page_size",
            ),
            (
                "[server]\narchive_cache_control = \"\"",
                "server.archive_cache_control",
            ),
            (
                "[server]\narchive_cache_control = \"max-age=1\\n\"",
                "server.archive_cache_control",
            ),
            ("[feeds]\nmax_item = 3", "max_item"),
            ("[feeds]\nmax_items = \"many\"", "max_items"),
            ("[site]\nbase_url = \"ftp://x\"", "site.base_url"),
            ("[site]\ntime_zone = \"Mars/Base\"", "site.time_zone"),
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[ingest]\nmax_html_bytes = 100", "ingest.max_html_bytes"),
            (
                "[feeds]\nmax_bytes = 65536\n[ingest]\nmax_html_bytes = 32768",
                "ingest.max_html_bytes",
            ),
            ("[ingest]\nmax_nesting = 2", "ingest.max_nesting"),
            ("[ingest]\nmax_nesting = 100000", "ingest.max_nesting"),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[server]\nmax_connections = 10\nmax_connections_per_client = 11",
                "server.max_connections_per_client",
            ),
            (
                "[server]\nheader_read_timeout_secs = 0",
                "server.header_read_timeout_secs",
            ),
            (
                "[server]\nsend_timeout_secs = 0",
                "server.send_timeout_secs",
            ),
            ("[server]\nworkers = 257", "server.workers"),
            ("[server]\nmax_body_bytes = 10", "server.max_body_bytes"),
            ("[server]\nmax_header_bytes = 10", "server.max_header_bytes"),
            ("[websub]\nclient_burst = 0", "websub.client_burst"),
            (
                "[websub]\nmax_pending_verifications = 0",
                "websub.max_pending_verifications",
            ),
            (
                "[websub]\nverify_timeout_ms = 0",
                "websub.verify_timeout_ms",
            ),
            (
                "[websub]\nmax_callback_bytes = 10",
                "websub.max_callback_bytes",
            ),
            (
                "[delivery]\nmax_reply_bytes = 10",
                "delivery.max_reply_bytes",
            ),
            (
                "[[partners]]\nname=\"a\"\nurl=\"http://127.0.0.1:1/\"\nsecret=\"env:FEEDWIRE_TEST_UNSET_VAR\"",
                "FEEDWIRE_TEST_UNSET_VAR",
            ),
            ("[publish]\nfolder = false", "publish.folder"),
            ("[publish]\ntarget = \"https://x/y\"", "publish.target"),
            (
                "[publish]\ntarget = \"s3://Upper_Case/y\"",
                "publish.target",
            ),
            (
                "[publish]\ntarget = \"s3://bucket-a/a//b\"",
                "publish.target",
            ),
            ("[publish.s3]\nregion = \"eu-west-1\"", "publish.target"),
            ("[publish.s3]\nbucket = \"b\"", "bucket"),
            (
                "[publish]\ntarget = \"s3://bucket-a/feeds\"",
                "publish.s3.access_key_id",
            ),
            ("[catalog]\nurl = \"mysql://u@h/db\"", "catalog.url"),
            ("[catalog]\nurl = \"catalog.sqlite\"", "catalog.url"),
            (
                "[catalog]\nurl = \"env:FEEDWIRE_TEST_UNSET_VAR\"",
                "catalog.url",
            ),
            ("[catalog]\nmax_connections = 1", "catalog.max_connections"),
            ("[catalog]\nurl = \"postgres://h/db\"\nport = 5", "port"),
            ("[sitemaps]\nmax_urls = 1001", "sitemaps.max_urls"),
            (
                "[sitemaps]\nmax_urls = 600\nnews_max_urls = 500",
                "sitemaps.news_max_urls (500)",
            ),
            ("[sitemaps]\nmax_urls = 0", "sitemaps.max_urls"),
            ("[sitemaps]\nmax_bytes = 52428801", "sitemaps.max_bytes"),
            ("[sitemaps]\nnews_max_urls = 1001", "sitemaps.news_max_urls"),
            (
                "[sitemaps]\nnews_window_hours = 0",
                "sitemaps.news_window_hours",
            ),
            ("[sitemaps]\nnews_days = 2", "news_days"),
            ("[indexnow]\nkey = \"short\"", "indexnow.key"),
            ("[indexnow]\nkey = \"under_score\"", "indexnow.key"),
            (
                "[indexnow]\nendpoints = [\"https://api.indexnow.org/indexnow\"]",
                "indexnow.key",
            ),
            (
                "[indexnow]\nkey = \"abcd1234\"\nendpoints = [\"api.indexnow.org\"]",
                "indexnow.endpoints[0]",
            ),
            (
                "[indexnow]\nkey = \"abcd1234\"\nmax_urls_per_request = 10001",
                "indexnow.max_urls_per_request",
            ),
            (
                "[indexnow]\nkey = \"env:FEEDWIRE_TEST_UNSET_VAR\"",
                "indexnow.key",
            ),
            ("[cluster]\nlease_secs = 10", "catalog.url"),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n[cluster]\nlease_secs = 1",
                "cluster.lease_secs",
            ),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n[cluster]\nlease_secs = 4\nrenew_secs = 3",
                "cluster.renew_secs",
            ),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n[cluster]\nrenew_secs = 0",
                "cluster.renew_secs",
            ),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n[cluster]\nclaim_secs = 19",
                "cluster.claim_secs",
            ),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n[cluster]\ninstance = \"a\\u0007b\"",
                "cluster.instance",
            ),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n[cluster]\nleader = true",
                "leader",
            ),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(
                err.contains(key),
                "error for {text:?} should name {key}: {err}"
            );
        }
    }

    #[test]
    fn sitemaps_and_indexnow_defaults() {
        let cfg = parse("[site]\ntitle = \"Tin TTXVN\"").unwrap();
        assert_eq!(
            cfg.site.publication_name, "Tin TTXVN",
            "defaults to site.title"
        );
        assert!(cfg.sitemaps.enabled);
        assert_eq!(cfg.sitemaps.max_urls, 1_000);
        assert_eq!(cfg.sitemaps.max_bytes, 52_428_800);
        assert_eq!(cfg.sitemaps.news_window_hours, 48);
        assert_eq!(cfg.sitemaps.news_max_urls, 1_000);
        assert!(!cfg.indexnow.submits());
        assert_eq!(cfg.indexnow.max_urls_per_request, 10_000);
        assert_eq!(cfg.indexnow.batch_window_ms, 2_000);
        let named = parse("[site]\npublication_name = \"Thông tấn xã Việt Nam\"").unwrap();
        assert_eq!(named.site.publication_name, "Thông tấn xã Việt Nam");
        let on = parse(
            "[indexnow]\nkey = \"0123456789abcdef-XYZ\"\nendpoints = [\"http://127.0.0.1:9/indexnow\"]",
        )
        .unwrap();
        assert!(on.indexnow.submits());
    }

    /// Without `[catalog] url` the SQLite file under `paths.state`; with it,
    /// PostgreSQL, and no message or `status` line shows the password.
    #[test]
    fn catalog_url_selects_postgres_and_never_shows_the_password() {
        let sqlite = parse("").unwrap().catalog_path();
        assert_eq!(
            sqlite,
            CatalogLocation::Sqlite(PathBuf::from("/srv/feedwire/state/catalog.sqlite"))
        );
        let cfg = parse(
            "[catalog]\nurl = \"postgresql://feedwire:s3cret@db.example:5433/news\"\nmax_connections = 4",
        )
        .unwrap();
        let CatalogLocation::Postgres(pg) = cfg.catalog_path() else {
            panic!("a catalog.url must select PostgreSQL");
        };
        assert_eq!(pg.max_connections, 4);
        assert_eq!(
            pg.secret_url(),
            "postgresql://feedwire:s3cret@db.example:5433/news"
        );
        for shown in [
            cfg.catalog_path().describe(),
            format!("{pg}"),
            format!("{pg:?}"),
            format!("{cfg:?}"),
        ] {
            assert!(!shown.contains("s3cret"), "the password shows in {shown}");
        }
        assert_eq!(
            cfg.catalog_path().describe(),
            "PostgreSQL postgresql://feedwire:***@db.example:5433/news"
        );
        let err = format!(
            "{:#}",
            parse("[catalog]\nurl = \"mysql://feedwire:s3cret@h/db\"").unwrap_err()
        );
        assert!(
            err.contains("catalog.url") && !err.contains("s3cret"),
            "{err}"
        );
    }

    /// `catalog.tcp_timeout_secs`: 30 by default, reaches the connection
    /// settings, and a value the keepalive arithmetic cannot honour is
    /// refused with the range.
    #[test]
    fn catalog_tcp_timeout_has_a_default_and_a_range() {
        let pg = |extra: &str| {
            parse(&format!("[catalog]\nurl = \"postgres://h/db\"\n{extra}")).map(|cfg| {
                match cfg.catalog_path() {
                    CatalogLocation::Postgres(pg) => pg.tcp_timeout,
                    other => panic!("not PostgreSQL: {other:?}"),
                }
            })
        };
        assert_eq!(pg("").unwrap(), std::time::Duration::from_secs(30));
        assert_eq!(
            pg("tcp_timeout_secs = 120").unwrap(),
            std::time::Duration::from_secs(120)
        );
        for bad in ["tcp_timeout_secs = 5", "tcp_timeout_secs = 3601"] {
            let err = format!("{:#}", pg(bad).unwrap_err());
            assert!(
                err.contains("catalog.tcp_timeout_secs must be between 6 and 3600"),
                "{err}"
            );
        }
    }

    /// `[cluster]` is PostgreSQL's: refused on SQLite, with a message that
    /// says what to do. Its defaults, and an instance on PostgreSQL without
    /// the section getting them too (with a claim that outlasts a long
    /// delivery timeout).
    #[test]
    fn cluster_needs_postgres_and_has_defaults() {
        let err = format!("{:#}", parse("[cluster]").unwrap_err());
        assert!(
            err.contains("[cluster] needs the PostgreSQL catalog")
                && err.contains("set catalog.url"),
            "{err}"
        );
        let cfg = parse("[catalog]\nurl = \"postgres://h/db\"\n[cluster]").unwrap();
        let c = cfg.cluster.clone().unwrap();
        assert_eq!((c.lease_secs, c.renew_secs, c.claim_secs), (10, 3, 60));
        let name = c.instance_name();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        let named =
            parse("[catalog]\nurl = \"postgres://h/db\"\n[cluster]\ninstance = \"web-1\"").unwrap();
        assert_eq!(named.cluster_settings().instance_name(), "web-1");
        let alone =
            parse("[catalog]\nurl = \"postgres://h/db\"\n[delivery]\ntimeout_ms = 45000").unwrap();
        assert!(alone.cluster.is_none());
        assert_eq!(alone.cluster_settings().claim_secs, 90);
    }

    #[test]
    fn catalog_url_may_come_from_the_environment() {
        // SAFETY: no other test reads or writes this variable.
        unsafe {
            std::env::set_var(
                "FEEDWIRE_TEST_CATALOG_URL",
                "postgres://feedwire:pw@127.0.0.1:5432/feedwire",
            )
        };
        let cfg = parse("[catalog]\nurl = \"env:FEEDWIRE_TEST_CATALOG_URL\"").unwrap();
        assert_eq!(
            cfg.catalog_path().describe(),
            "PostgreSQL postgres://feedwire:***@127.0.0.1:5432/feedwire"
        );
    }

    #[test]
    fn s3_errors_name_the_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{S3_KEYS}secret_access_key = \"\""),
                "publish.s3.secret_access_key",
            ),
            (
                format!("{S3_KEYS}secret_access_key = \"env:FEEDWIRE_TEST_UNSET_VAR\""),
                "publish.s3.secret_access_key",
            ),
            (
                format!("{S3_KEYS}secret_access_key = \"s\"\nendpoint = \"http://127.0.0.1:9000\""),
                "publish.s3.allow_http",
            ),
            (
                format!("{S3_KEYS}secret_access_key = \"s\"\nendpoint = \"localhost\""),
                "publish.s3.endpoint",
            ),
            (
                format!("{S3_KEYS}secret_access_key = \"s\"\nregion = \"\""),
                "publish.s3.region",
            ),
            (
                format!("{S3_KEYS}secret_access_key = \"s\"\nconcurrency = 0"),
                "publish.s3.concurrency",
            ),
            (
                format!("{S3_KEYS}secret_access_key = \"s\"\ntimeout_secs = 0"),
                "publish.s3.timeout_secs",
            ),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(
                err.contains(key),
                "error for {text:?} should name {key}: {err}"
            );
        }
    }

    /// A target and an access key id; each case adds the rest.
    const S3_KEYS: &str =
        "[publish]\ntarget = \"s3://bucket-a/feeds\"\n[publish.s3]\naccess_key_id = \"k\"\n";

    #[test]
    fn publish_defaults_to_the_folder_alone() {
        let cfg = parse("").unwrap();
        assert!(cfg.publish.folder);
        assert_eq!(cfg.publish.location, None);
        assert!(cfg.publish.s3.is_none());
    }

    #[test]
    fn an_s3_target_is_split_its_keys_resolved_and_never_logged() {
        // PATH is always set; setting a variable here would race the other tests' reads.
        let secret = std::env::var("PATH").unwrap();
        let cfg = parse(
            "[publish]\nfolder = false\ntarget = \"s3://news.example-1/site/feeds/\"\n[publish.s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"env:PATH\"",
        )
        .unwrap();
        let location = cfg.publish.location.clone().unwrap();
        assert_eq!(location.bucket, "news.example-1");
        assert_eq!(location.prefix, "site/feeds");
        assert_eq!(location.to_string(), "s3://news.example-1/site/feeds");
        let s3 = cfg.publish.s3.clone().unwrap();
        assert_eq!(s3.secret_access_key, secret);
        assert_eq!(s3.region, "us-east-1");
        assert!(s3.gzip);
        assert_eq!((s3.concurrency, s3.timeout_secs), (8, 30));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains(&secret) && !shown.contains("AKIDEXAMPLE"));
        let root = parse(
            &format!("{S3_KEYS}secret_access_key = \"s\"").replace("bucket-a/feeds", "bucket-a"),
        )
        .unwrap();
        assert_eq!(root.publish.location.unwrap().prefix, "");
    }

    #[test]
    fn html_cap_defaults_to_a_quarter_of_a_small_feed() {
        let small = parse("[feeds]\nmax_bytes = 8192").unwrap();
        assert_eq!(small.ingest.limits().max_html_bytes, 2048);
        let set = parse("[feeds]\nmax_bytes = 8192\n[ingest]\nmax_html_bytes = 1500").unwrap();
        assert_eq!(set.ingest.limits().max_html_bytes, 1500);
    }
}
