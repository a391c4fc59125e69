//! Syndicate: push changes out. WebSub (publish pings to external hubs, and a
//! built-in hub with subscriptions and content distribution), signed
//! single-entry deliveries to partner portals, and legacy XML-RPC pings.
//!
//! Nothing is lost: the commit hook writes every delivery a batch causes to
//! the outbox in the catalog, in the batch's own transaction, and a row leaves
//! the outbox only once delivered. See `docs/SYNDICATION.md`.
//!
//! - [`outbox`]: the tables and every query on them.
//! - [`hub`]: `POST /hub`, intent verification, subscriptions.
//! - [`deliver`]: the worker that sends due rows.
//! - [`partner`]: partner documents and signatures.
//! - [`indexnow`]: submissions of article URLs to IndexNow endpoints.
//! - [`allow`]: which callback hosts may be contacted.
//! - [`admit`]: per-client rate limit and the bounded verification queue.
//! - [`reply`]: reading receivers' answers with a cap.
//! - [`health`]: failures per target in `/metrics` and the log; pacing.
//! - [`xmlrpc`]: the legacy ping, written and read with quick-xml.

mod admit;
mod allow;
mod deliver;
mod health;
mod hub;
mod indexnow;
mod outbox;
mod partner;
mod reply;
mod xmlrpc;

use crate::catalog::{Batch, Catalog};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::publish::Store;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the worker and the hub share.
pub(crate) struct Shared {
    pub cfg: Config,
    pub store: Store,
    /// Hubs, ping servers and partners (configured by the operator).
    pub client: reqwest::Client,
    /// Subscriber callbacks (named by strangers): resolution is filtered by
    /// the callback policy, see `allow::GuardedResolver`.
    pub callback_client: reqwest::Client,
    pub metrics: Arc<Metrics>,
    /// Nudged by the commit hook when rows were queued.
    pub wake: Arc<Notify>,
}

fn client(cfg: &Config) -> Result<reqwest::Client> {
    client_builder(cfg)
        .build()
        .context("cannot build the HTTP client for deliveries")
}

fn callback_client(cfg: &Config) -> Result<reqwest::Client> {
    client_builder(cfg)
        .dns_resolver(Arc::new(allow::GuardedResolver {
            cfg: cfg.websub.clone(),
        }))
        .build()
        .context("cannot build the HTTP client for WebSub callbacks")
}

fn client_builder(cfg: &Config) -> reqwest::ClientBuilder {
    crate::install_tls_provider();
    let timeout = Duration::from_millis(cfg.delivery.timeout_ms);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(cfg.delivery.websub_concurrency.max(8))
        .user_agent(concat!("feedwire/", env!("CARGO_PKG_VERSION")))
}

/// The commit hook the pipeline runs inside each batch's transaction:
/// every delivery the batch causes is queued there, so it commits (or not)
/// with the change itself; `wake` nudges the worker.
pub fn commit_hook(
    cfg: &Config,
    wake: Arc<Notify>,
) -> impl FnMut(&mut Batch<'_>) -> Result<()> + Send + 'static {
    let cfg = cfg.clone();
    move |batch| {
        let deliveries = outbox::deliveries(&cfg, batch.affected_since_drain(), batch.changes())?;
        if batch.enqueue(&deliveries)? > 0 {
            wake.notify_one();
        }
        Ok(())
    }
}

/// Who takes deliveries from the outbox, and for how long a row taken stays
/// theirs: with several instances on one catalog, each claims the rows it
/// sends, so they share the queue and never send a row twice at once.
#[derive(Debug, Clone)]
pub struct Claimant {
    /// The instance's token (`catalog::Member::token`).
    pub token: String,
    /// `cluster.claim_secs`.
    pub length: Duration,
}

/// Start the delivery worker on `tracker`, with a catalog handle of its own.
/// It wakes on `wake`, on the store's announcements and on a short tick; when
/// `stop` is cancelled it takes no new rows, lets the sends in flight finish
/// (a few seconds at most), records them, and gives back the rows it
/// claimed and did not finish.
pub fn spawn_worker(
    cfg: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    wake: Arc<Notify>,
    claimant: Claimant,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> Result<()> {
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        store: store.clone(),
        client: client(cfg)?,
        callback_client: callback_client(cfg)?,
        metrics: metrics.clone(),
        wake,
    });
    let catalog = Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
    if let Some(warning) = indexnow::misplaced_key(cfg) {
        tracing::warn!("{warning}");
    }
    tracker.spawn(deliver::run(shared, catalog, claimant, stop));
    Ok(())
}

/// The built-in hub's routes (`POST /hub`); empty when `websub.builtin_hub`
/// is off. The server must provide `ConnectInfo<SocketAddr>` (per-client
/// limits). Verifications run on `tracker` and are abandoned when `stop` is
/// cancelled (their places are released at the next start; the subscriber
/// asks again).
pub fn hub_router(
    cfg: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> Result<axum::Router> {
    if crate::site::hub_url(cfg).is_none() {
        return Ok(axum::Router::new());
    }
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        store: store.clone(),
        client: client(cfg)?,
        callback_client: callback_client(cfg)?,
        metrics: metrics.clone(),
        wake: Arc::new(Notify::new()),
    });
    let db = Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
    // On PostgreSQL other instances may be verifying right now: their
    // places stay, and a place a crash left behind is dropped after an hour.
    if cfg.catalog.url.is_none() {
        db.clear_reservations()
            .context("cannot clear unfinished hub verifications")?;
    }
    Ok(hub::router(hub::HubState::new(
        shared,
        db,
        tracker.clone(),
        stop,
    )))
}

/// Lines for `feedwire status`: backlog per partner and for WebSub, dead
/// letters. Never shows secrets, bodies or callback URLs.
pub fn status_lines(catalog: &Catalog) -> Result<Vec<String>> {
    let summary = catalog.outbox_summary(chrono::Utc::now().timestamp())?;
    let mut out = vec![format!(
        "syndication  {} pending deliver{}, {} dead letter(s)",
        summary.pending,
        if summary.pending == 1 { "y" } else { "ies" },
        summary.dead
    )];
    out.push(format!(
        "  websub     {} active subscription(s); {} pending deliveries, {} feed change(s) awaiting fan-out",
        summary.active_subscriptions, summary.pending_websub, summary.pending_fanout
    ));
    out.push(format!(
        "  hub pings  {} pending; legacy pings {} pending",
        summary.pending_hub, summary.pending_ping
    ));
    out.push(format!(
        "  indexnow   {} URL submission(s) pending",
        summary.pending_indexnow
    ));
    for p in &summary.partners {
        let oldest = chrono::DateTime::from_timestamp_millis(p.oldest_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let mut line = format!(
            "  partner {}: {} pending, {} dead letter(s); oldest queued {oldest}, most attempts {}",
            p.partner, p.pending, p.dead, p.most_attempts
        );
        if let Some(e) = &p.last_error {
            line.push_str(&format!("; last error: {e}"));
        }
        if p.dead > 0 {
            line.push_str(&format!(" (retry with `feedwire redeliver {}`)", p.partner));
        }
        out.push(line);
    }
    Ok(out)
}

/// `feedwire redeliver <partner>`: dead letters back to pending. Returns how
/// many; a running daemon picks them up within a second.
pub fn redeliver(catalog: &Catalog, partner: &str) -> Result<usize> {
    catalog.redeliver(partner, outbox::now_ms())
}
