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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub articles: PathBuf,
    pub feeds: PathBuf,
    /// Holds the catalog (`catalog.sqlite`); must survive restarts.
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
}

impl Default for Server {
    fn default() -> Self {
        Server {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            cache_control: "public, max-age=60".into(),
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
        }
    }
}

impl Server {
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
    pub url: String,
    #[serde(default = "default_partner_format")]
    pub format: String,
    /// Category slugs; empty means everything.
    #[serde(default)]
    pub categories: Vec<String>,
    /// HMAC-SHA256 key; `env:NAME` reads it from the environment.
    pub secret: String,
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
            .finish()
    }
}

fn default_partner_format() -> String {
    "atom".into()
}
fn default_partner_concurrency() -> usize {
    4
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
        let mut names = std::collections::HashSet::new();
        for p in &mut self.partners {
            if p.name.is_empty() || !names.insert(p.name.clone()) {
                bail!(
                    "partners: every partner needs a unique `name` (`{}`)",
                    p.name
                );
            }
            if url::Url::parse(&p.url).is_err() {
                bail!(
                    "partners `{}`.url: `{}` is not an absolute URL",
                    p.name,
                    p.url
                );
            }
            if !matches!(p.format.as_str(), "atom" | "rss" | "json") {
                bail!(
                    "partners `{}`.format: `{}` must be atom, rss or json",
                    p.name,
                    p.format
                );
            }
            if p.concurrency == 0 {
                bail!("partners `{}`.concurrency must be at least 1", p.name);
            }
            p.secret =
                resolve_env(&p.secret).with_context(|| format!("partners `{}`.secret", p.name))?;
            if p.secret.is_empty() {
                bail!(
                    "partners `{}`.secret must not be empty (deliveries are signed with it)",
                    p.name
                );
            }
            for (k, v) in p.headers.iter_mut() {
                *v =
                    resolve_env(v).with_context(|| format!("partners `{}`.headers.{k}", p.name))?;
            }
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

    /// The catalog file inside the state folder.
    pub fn catalog_path(&self) -> PathBuf {
        self.paths.state.join("catalog.sqlite")
    }
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
    fn html_cap_defaults_to_a_quarter_of_a_small_feed() {
        let small = parse("[feeds]\nmax_bytes = 8192").unwrap();
        assert_eq!(small.ingest.limits().max_html_bytes, 2048);
        let set = parse("[feeds]\nmax_bytes = 8192\n[ingest]\nmax_html_bytes = 1500").unwrap();
        assert_eq!(set.ingest.limits().max_html_bytes, 1500);
    }
}
