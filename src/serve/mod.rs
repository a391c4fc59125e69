//! Serve: the HTTP face of feedwire.
//!
//! This module owns the route table and the cross-cutting rules every request
//! goes through (request counting, header and body bounds, the 404 fallback).
//! Feed documents are answered from the in-memory [`Store`] by exact key, never
//! from disk, so no request path can reach a file; the readable HTML pages are
//! rendered from the catalog on a second, read-mostly connection.
//!
//! The daemon builds an [`AppState`], calls [`router`] (merging in its own
//! routers such as the WebSub `/hub`), binds a listener and hands both to
//! [`serve`] with a shutdown future.

mod conditional;
mod documents;
mod health;
mod html;
mod negotiate;
mod pages;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::publish::Store;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Request bodies are never needed on these routes; anything larger is refused.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Sum of header names and values a request may carry (hyper's own limit is
/// far larger); over it the answer is 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest request target accepted; over it the answer is 414.
const MAX_URI_BYTES: usize = 4 * 1024;

/// Everything the handlers share. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    /// The published documents, filled by the pipeline's publisher.
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// A second connection to the catalog (not the pipeline's), for the HTML
    /// pages. Queries run on the blocking pool, one at a time.
    pub catalog: Arc<Mutex<Catalog>>,
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
        .layer(middleware::from_fn(bound_request_head))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Run the server until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(address = ?addr, "HTTP server listening");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("the HTTP server stopped with an error")
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

/// Refuse oversized request heads before any handler runs.
async fn bound_request_head(req: Request, next: Next) -> Response {
    // Measured without formatting the URI: this runs on every request.
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return (StatusCode::URI_TOO_LONG, "request target too long\n").into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// Run a catalog query on the blocking pool.
pub(crate) async fn with_catalog<T, F>(state: &AppState, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Catalog) -> Result<T> + Send + 'static,
{
    let catalog = state.catalog.clone();
    tokio::task::spawn_blocking(move || {
        // A panic in another query must not take every page down with it.
        let guard = catalog.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    })
    .await
    .context("a catalog query panicked")?
}
