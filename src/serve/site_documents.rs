//! Published documents that live at the site's root rather than under
//! `/feeds/`: `/sitemap.xml`, `/news-sitemap.xml`, their files under
//! `/sitemaps/`, `/robots.txt` and the IndexNow key file `/{key}.txt`.
//! Answered from the in-memory store like feeds (exact key, validators,
//! compression); only documents of the site-root kinds are served here,
//! and only feeds under `/feeds/`.
//!
//! The files under `/sitemaps/` are the exception: a large archive has
//! hundreds, so none is held in memory (the pipeline writes them to the
//! targets only). Each is rendered from the catalog's listing when asked
//! for, like a ninjs document: the same bytes the pipeline publishes for
//! the listing as it is now, a strong ETag from them, 304s, and each
//! version compressed once in the bounded page cache.

use super::negotiate::Coding;
use super::ninjs::{Fresh, rendered};
use super::representation::{self, Representation, put};
use super::{AppState, pages, with_catalog};
use crate::render::DocKind;
use crate::render::sitemap::{self as sitemap_render, PageFile};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
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

/// `/sitemaps/{file}`: a page of the full sitemap or its news file,
/// rendered from the listing. A page the listing does not have is a 404.
pub async fn sitemap_file(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    file: Result<Path<String>, PathRejection>,
) -> Response {
    let Some((kind, page)) = file
        .ok()
        .and_then(|Path(f)| sitemap_render::parse_page_file(&f))
    else {
        return pages::not_found_page(&state);
    };
    if !state.cfg.sitemaps.enabled {
        return pages::not_found_page(&state);
    }
    let window = chrono::Duration::hours(state.cfg.sitemaps.news_window_hours.into());
    let since = (chrono::Utc::now() - window).timestamp_micros();
    let cfg = state.cfg.clone();
    let found = with_catalog(&state, move |c| match kind {
        PageFile::Full => Ok(match c.sitemap_page(page)? {
            Some((p, urls)) => Some((
                sitemap_render::render_page(&cfg, &sitemap_render::page_path(page), &urls)?,
                Some(p.changed_us),
            )),
            None => None,
        }),
        PageFile::News => Ok(
            match c.news_page(page, since, cfg.sitemaps.news_max_urls)? {
                Some(urls) => Some((
                    sitemap_render::render_news(
                        &cfg,
                        &sitemap_render::news_page_path(page),
                        &urls,
                    )?,
                    urls.iter().map(|u| u.lastmod_us).max(),
                )),
                None => None,
            },
        ),
    })
    .await;
    match found {
        Ok(Some((doc, changed_us))) => {
            let mut out = HeaderMap::new();
            put(&mut out, CACHE_CONTROL, &state.cfg.server.cache_control);
            let fresh = Fresh {
                label: "sitemaps",
                content_type: DocKind::Sitemap.content_type(),
                headers: out,
                last_modified: changed_us
                    .and_then(chrono::DateTime::from_timestamp_micros)
                    .map(SystemTime::from),
            };
            rendered(&state, &method, &headers, fresh, Bytes::from(doc.bytes))
        }
        Ok(None) => pages::not_found_page(&state),
        Err(e) => {
            tracing::error!(route = "sitemaps", error = %format!("{e:#}"), "cannot render a sitemap file");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                [(CACHE_CONTROL, "no-store")],
                axum::Extension(super::RouteLabel("sitemaps")),
                "the sitemap cannot be shown right now; try again later\n",
            )
                .into_response()
        }
    }
}
