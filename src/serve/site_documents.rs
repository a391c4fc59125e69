//! Published documents that live at the site's root rather than under
//! `/feeds/`: `/sitemap.xml`, `/news-sitemap.xml`, their files under
//! `/sitemaps/`, `/robots.txt` and the IndexNow key file `/{key}.txt`.
//! Answered from the in-memory store like feeds (exact key, validators,
//! compression); only documents of the site-root kinds are served here,
//! and only feeds under `/feeds/`.

use super::negotiate::Coding;
use super::representation::{self, Representation, put};
use super::{AppState, pages};
use crate::render::DocKind;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use std::time::SystemTime;

/// The document published at this request's path, if it is one of ours.
pub async fn document(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some(doc) = state.store.get(path).filter(|d| d.kind.at_site_root()) else {
        return pages::not_found_page(&state);
    };
    let mut out = HeaderMap::new();
    put(&mut out, CACHE_CONTROL, &state.cfg.server.cache_control);
    let rep = Representation {
        etag: &doc.etag,
        last_modified: Some(SystemTime::from(doc.last_modified)),
        content_type: doc.kind.content_type(),
        label: match doc.kind {
            DocKind::Sitemap => "sitemaps",
            _ if path == crate::render::sitemap::ROBOTS => "robots",
            _ => "indexnow_key",
        },
        headers: out,
    };
    representation::respond(rep, &method, &headers, |coding| match coding {
        Coding::Identity => doc.body.clone(),
        Coding::Gzip => doc.gzip().clone(),
        Coding::Brotli => doc.brotli().clone(),
    })
}
