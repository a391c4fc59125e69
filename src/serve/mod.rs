//! Serve: the HTTP face of feedwire.
//!
//! This module owns the route table and the cross-cutting rules every request
//! goes through (request counting, the 404 fallback), and runs the server:
//! its own accept loop ([`connections`]) bounds connections in number and
//! time, and [`bounds`] bounds every request's head and body, on every route
//! the daemon merges in as well. Feed documents are answered from the
//! in-memory [`Store`] by exact key, never from disk, so no request path can
//! reach a file; the readable HTML pages are rendered from the catalog on a
//! second, read-mostly connection and answered with validators and
//! compression like feeds.
//!
//! The daemon builds an [`AppState`], calls [`router`] (merging in its own
//! routers such as the WebSub `/hub`), binds a listener and hands both to
//! [`serve`] with the [`Limits`] and a shutdown future.

mod bounds;
mod conditional;
mod connections;
mod documents;
mod health;
mod html;
mod negotiate;
mod page_cache;
mod pages;
mod representation;

pub use connections::SHUTDOWN_GRACE;

use crate::catalog::Catalog;
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::publish::Store;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use page_cache::PageCache;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Catalog queries for pages admitted at once. The catalog connection runs
/// one query at a time anyway; a few more waiting on the blocking pool keep
/// it busy, while everyone else waits here, where a client that hangs up
/// stops waiting (a task queued on the blocking pool would still run).
const CATALOG_QUERIES_AT_ONCE: usize = 2;

/// Everything the handlers share. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    /// The published documents, filled by the pipeline's publisher.
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// A second connection to the catalog (not the pipeline's), for the HTML
    /// pages. Queries run on the blocking pool, one at a time.
    catalog: Arc<Mutex<Catalog>>,
    catalog_queries: Arc<Semaphore>,
    /// Compressed copies of rendered pages.
    pages: Arc<PageCache>,
}

impl AppState {
    /// `catalog` should be a connection of its own, not the pipeline's.
    pub fn new(cfg: Arc<Config>, store: Store, metrics: Arc<Metrics>, catalog: Catalog) -> Self {
        let pages = Arc::new(PageCache::new(cfg.server.page_cache_bytes));
        AppState {
            cfg,
            store,
            metrics,
            catalog: Arc::new(Mutex::new(catalog)),
            catalog_queries: Arc::new(Semaphore::new(CATALOG_QUERIES_AT_ONCE)),
            pages,
        }
    }
}

/// Every bound the server puts on clients; see `[server]` in the README.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub send_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
}

impl Limits {
    pub fn from_config(server: &config::Server) -> Limits {
        Limits {
            max_connections: server.max_connections,
            max_connections_per_client: server.max_connections_per_client,
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(server.body_read_timeout_secs),
            send_timeout: Duration::from_secs(server.send_timeout_secs),
            max_body_bytes: server.max_body_bytes,
            max_header_bytes: server.max_header_bytes,
            max_uri_bytes: server.max_uri_bytes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&config::Server::default())
    }
}

/// The route label a handler reports for `/metrics`; responses without one
/// are labelled from the matched route.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteLabel(pub &'static str);

/// Every feedwire route. Composable: the daemon may `merge` more routers
/// (the WebSub hub) into the result; `/hub` is deliberately not defined here.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/", get(pages::home))
        .route("/feeds/", get(pages::main_feed_view))
        .route("/feeds/{*path}", get(documents::feeds_path))
        .route("/articles/{id}", get(pages::article))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(metrics, count_requests))
        .with_state(state)
}

/// Run the server until `shutdown` resolves, then let in-flight requests
/// finish (for at most [`SHUTDOWN_GRACE`]) and close every connection.
///
/// The request bounds are applied here, to the whole `router`, so routes the
/// caller merged in are covered like ours.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .context("the HTTP listener has no local address")?;
    tracing::info!(
        address = %addr,
        max_connections = limits.max_connections,
        max_connections_per_client = limits.max_connections_per_client,
        "HTTP server listening"
    );
    let router = router
        .layer(middleware::from_fn_with_state(
            Arc::new(limits.clone()),
            bounds::bound_request,
        ))
        // Bodies reach handlers already read within max_body_bytes; this only
        // keeps axum's own extractors from assuming a larger default.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    connections::accept_loop(listener, router, &limits, shutdown).await;
    Ok(())
}

/// Count each request under its route label and final status.
async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = label_for_route(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let res = next.run(req).await;
    let label = res.extensions().get::<RouteLabel>().map_or(route, |l| l.0);
    metrics.count_request(label, res.status().as_u16());
    res
}

/// Label for responses no handler labelled (405s from the method router).
fn label_for_route(matched: Option<&str>) -> &'static str {
    match matched {
        Some("/") => "home",
        Some("/feeds/") => "feed_view",
        Some("/feeds/{*path}") => "feeds",
        Some("/articles/{id}") => "article",
        Some("/healthz") => "healthz",
        Some("/metrics") => "metrics",
        _ => "not_found",
    }
}

/// Run a catalog query on the blocking pool.
pub(crate) async fn with_catalog<T, F>(state: &AppState, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Catalog) -> Result<T> + Send + 'static,
{
    let catalog = state.catalog.clone();
    let admitted = state
        .catalog_queries
        .clone()
        .acquire_owned()
        .await
        .context("the catalog query queue is closed")?;
    tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        // A panic in another query must not take every page down with it.
        let guard = catalog.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    })
    .await
    .context("a catalog query panicked")?
}
