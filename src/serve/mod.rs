//! Serve: the HTTP face of feedwire.
//!
//! This module owns the route table and the cross-cutting rules every request
//! goes through (request counting, the 404 fallback), and runs the server:
//! its own accept loop ([`connections`]) bounds connections in number and
//! time, and [`bounds`] bounds every request's head and body, on every route
//! the daemon merges in as well. Live feed documents are answered from the
//! in-memory [`Store`] by exact key; archive pages are read from the feeds
//! folder only for paths that parse strictly as one (`documents`), so no
//! request path can reach another file; the readable HTML pages are
//! rendered from the catalog on a second, read-only connection with a thread
//! of its own and answered with validators and compression like feeds; so
//! are an article's ninjs document ([`ninjs`]) and a partner's private pull
//! feeds ([`partners`], behind its token).
//!
//! The daemon builds an [`AppState`], calls [`routes`] (merging in its own
//! routers such as the WebSub `/hub`), binds a listener and hands both to
//! [`serve`] with the [`Limits`] and a shutdown future. A GET of a live
//! document skips the router: the [`front`] door answers it from the store
//! with the same handler code, bounds and request count.

mod bounds;
mod conditional;
mod connections;
mod documents;
mod front;
mod health;
mod html;
mod negotiate;
mod ninjs;
mod page_cache;
mod pages;
mod partners;
mod representation;
mod site_documents;

pub use connections::SHUTDOWN_GRACE;

use crate::catalog::ArticleReader;
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
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Page queries waiting for the catalog thread beyond those already running.
/// Requests past this wait in their own (async) task, which a client that
/// hangs up ends; a query already queued here runs even if its client left,
/// so this is kept small.
const CATALOG_QUEUE: usize = 8;

/// A catalog query for a page, run on the pages' catalog thread.
type CatalogJob = Box<dyn FnOnce(&dyn ArticleReader) + Send>;

/// Everything the handlers share. Cloning is one reference count: the
/// router clones its route's state for every request, and a field-wise clone
/// (six reference counts and two channel handles) showed up in profiles of
/// polling load.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub cfg: Arc<Config>,
    /// The published documents, filled by the pipeline's publisher.
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Queries for the HTML pages, run in order on one thread that owns a
    /// second catalog connection (not the pipeline's). One thread, not the
    /// blocking pool: the connection answers one query at a time anyway, and
    /// a flood of page requests once parked a pool thread per request.
    catalog_jobs: mpsc::Sender<CatalogJob>,
    /// Compressed copies of rendered pages and of archive pages.
    pages: Arc<PageCache>,
    /// Partners' pull tokens, for `/partners/…`.
    pull: Arc<partners::PullAuth>,
}

impl AppState {
    /// `catalog` should be a connection of its own, not the pipeline's. Its
    /// thread ends when the last clone of the state is dropped.
    pub fn new(
        cfg: Arc<Config>,
        store: Store,
        metrics: Arc<Metrics>,
        catalog: impl ArticleReader + 'static,
    ) -> Result<Self> {
        let (catalog_jobs, mut jobs) = mpsc::channel::<CatalogJob>(CATALOG_QUEUE);
        std::thread::Builder::new()
            .name("feedwire-pages".into())
            .spawn(move || {
                while let Some(job) = jobs.blocking_recv() {
                    job(&catalog);
                }
            })
            .context("cannot start the thread that reads the catalog for HTML pages")?;
        let pages = Arc::new(PageCache::new(cfg.server.page_cache_bytes));
        let pull = Arc::new(partners::PullAuth::new(&cfg));
        Ok(AppState(Arc::new(Shared {
            cfg,
            store,
            metrics,
            catalog_jobs,
            pages,
            pull,
        })))
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
    /// HTTP worker threads (already resolved: never 0).
    pub workers: usize,
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
            workers: server.worker_threads(),
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
    let mut router = Router::new();
    // The site-root documents a publish may produce (their handler serves
    // only what is in the store).
    for path in ["/robots.txt", "/sitemap.xml", "/news-sitemap.xml"] {
        router = router.route(path, get(site_documents::document));
    }
    // Rendered from the listing on demand: a large archive has hundreds.
    router = router.route("/sitemaps/{file}", get(site_documents::sitemap_file));
    if !state.cfg.indexnow.key.is_empty() {
        let key = crate::render::sitemap::key_path(&state.cfg.indexnow.key);
        router = router.route(&format!("/{key}"), get(site_documents::document));
    }
    router
        .route("/", get(pages::home))
        .route("/feeds/", get(pages::main_feed_view))
        .route("/feeds/{*path}", get(documents::feeds_path))
        .route("/articles/{id}", get(pages::article))
        .route("/ninjs/{file}", get(ninjs::article))
        .route("/partners/{name}/{file}", get(partners::feed))
        .route("/extensions", get(pages::extensions))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(metrics, count_requests))
        .with_state(state)
}

/// What the server answers: a router, and, when it serves the published
/// documents, their state, so the front door can answer a live document
/// without the router.
pub struct Routes {
    router: Router,
    feeds: Option<AppState>,
}

impl Routes {
    /// Add the daemon's own routes (the WebSub `/hub`).
    pub fn merge(mut self, other: Router) -> Routes {
        self.router = self.router.merge(other);
        self
    }
}

impl From<Router> for Routes {
    /// Every request through `router`.
    fn from(router: Router) -> Routes {
        Routes {
            router,
            feeds: None,
        }
    }
}

/// Every feedwire route, as [`router`] makes them, with the front door's
/// direct path to the live documents.
pub fn routes(state: AppState) -> Routes {
    Routes {
        router: router(state.clone()),
        feeds: Some(state),
    }
}

/// Run the server until `shutdown` resolves, then let in-flight requests
/// finish (for at most [`SHUTDOWN_GRACE`]) and close every connection.
///
/// The request bounds are applied here, to the whole `router`, so routes the
/// caller merged in are covered like ours.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: impl Into<Routes>,
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
    let Routes { router, feeds } = routes.into();
    let bounds = Arc::new(limits.clone());
    let router = router
        .layer(middleware::from_fn_with_state(
            bounds.clone(),
            bounds::bound_request,
        ))
        // Bodies reach handlers already read within max_body_bytes; this only
        // keeps axum's own extractors from assuming a larger default.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let front = front::Front::new(router, feeds, bounds);
    connections::accept_loop(listener, front, &limits, shutdown).await;
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
        Some("/ninjs/{file}") => "ninjs",
        Some("/partners/{name}/{file}") => "partner_feed",
        Some("/extensions") => "extensions",
        Some("/healthz") => "healthz",
        Some("/metrics") => "metrics",
        Some("/robots.txt") => "robots",
        Some("/sitemap.xml" | "/news-sitemap.xml" | "/sitemaps/{file}") => "sitemaps",
        // The only other route of that shape: the IndexNow key file.
        Some(p) if p.ends_with(".txt") => "indexnow_key",
        _ => "not_found",
    }
}

/// Run a catalog query on the pages' catalog thread.
pub(crate) async fn with_catalog<T, F>(state: &AppState, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn ArticleReader) -> Result<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job: CatalogJob = Box::new(move |catalog| {
        // A panic in one query must not take every page down with it: the
        // thread lives on, and this request gets an error (reply dropped).
        if let Ok(result) = std::panic::catch_unwind(AssertUnwindSafe(|| f(catalog))) {
            let _ = reply.send(result);
        }
    });
    state
        .catalog_jobs
        .send(job)
        .await
        .map_err(|_| anyhow::anyhow!("the thread that reads the catalog for pages has stopped"))?;
    answer.await.context("a catalog query panicked")?
}
