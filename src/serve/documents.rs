//! Published feed documents under `/feeds/…`: exact-key lookups in the
//! in-memory store with content negotiation, validators and the headers feed
//! readers rely on (protocols.md §7, HTTP-01…HTTP-08).

use super::negotiate::Coding;
use super::representation::{self, Representation, put};
use super::{AppState, pages};
use crate::publish::Served;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, LINK};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use std::time::SystemTime;

/// `/feeds/{*path}`: a directory-style path (`xay-dung-dang/`) is the readable
/// view of that category's feed; anything else must be a published document's
/// exact key. Traversal attempts are simply keys that do not exist.
pub async fn feeds_path(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    // A segment that does not decode to UTF-8 cannot name anything we publish.
    let Ok(Path(path)) = path else {
        return pages::not_found_page(&state);
    };
    if let Some(slug) = path.strip_suffix('/') {
        return pages::category_feed_view(&state, &method, &headers, slug).await;
    }
    // Sitemaps and text live at the site's root, not here.
    match state.store.get(&path).filter(|d| !d.kind.at_site_root()) {
        Some(doc) => document(&state, &doc, &method, &headers),
        None => pages::not_found_page(&state),
    }
}

/// One published document, from the store's bytes and its precomputed
/// compressed copies.
fn document(state: &AppState, doc: &Served, method: &Method, req: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    put(&mut headers, CACHE_CONTROL, &state.cfg.server.cache_control);
    let self_url = crate::site::feed_url(&state.cfg, &doc.path);
    put(&mut headers, LINK, &format!("<{self_url}>; rel=\"self\""));
    for hub in crate::site::advertised_hubs(&state.cfg) {
        if let Ok(v) = HeaderValue::from_str(&format!("<{hub}>; rel=\"hub\"")) {
            headers.append(LINK, v);
        }
    }
    let rep = Representation {
        etag: &doc.etag,
        last_modified: Some(SystemTime::from(doc.last_modified)),
        content_type: doc.kind.content_type(),
        label: "feeds",
        headers,
    };
    representation::respond(rep, method, req, |coding| match coding {
        Coding::Identity => doc.body.clone(),
        Coding::Gzip => doc.gzip().clone(),
        Coding::Brotli => doc.brotli().clone(),
    })
}
