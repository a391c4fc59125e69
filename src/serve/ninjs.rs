//! `/ninjs/{id}.json`: an article as an IPTC ninjs 3.1 document, rendered
//! from the catalog on each request (a large archive has 100,000 of them:
//! none is held in memory) and answered like a page: strong ETag from the
//! bytes, `Last-Modified` from the article's `updated`, 304s, gzip and
//! brotli. A withheld (embargoed) article does not exist here: the same 404
//! as an unknown id. A killed one is `410 Gone` with its `pubStatus:
//! canceled` document, the one the feeds folder holds in its place.

use super::representation::{self, Representation, put};
use super::{AppState, RouteLabel, pages, with_catalog};
use crate::catalog::ArticleState;
use crate::render::{self, DocKind};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::SystemTime;

const LABEL: &str = "ninjs";

/// `/ninjs/{id}.json`; the id arrives percent-decoded.
pub async fn article(
    State(state): State<AppState>,
    method: Method,
    req: HeaderMap,
    file: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = file
        .ok()
        .and_then(|Path(f)| f.strip_suffix(".json").map(str::to_string))
    else {
        return pages::not_found_page(&state);
    };
    let lookup = id.clone();
    let found = match with_catalog(&state, move |c| c.article(&lookup)).await {
        Ok(found) => found,
        Err(e) => return server_error(&e),
    };
    let cfg = &state.cfg;
    match found {
        ArticleState::Public(entry) => match render::render_ninjs(cfg, &entry) {
            Ok(bytes) => {
                let mut headers = HeaderMap::new();
                put(&mut headers, CACHE_CONTROL, &cfg.server.cache_control);
                let fresh = Fresh {
                    label: LABEL,
                    content_type: DocKind::Ninjs.content_type(),
                    headers,
                    last_modified: Some(SystemTime::from(entry.updated)),
                };
                rendered(&state, &method, &req, fresh, Bytes::from(bytes))
            }
            Err(e) => server_error(&e),
        },
        ArticleState::Killed { at, reason } => {
            let when = at
                .with_timezone(&cfg.time_zone().unwrap_or(chrono_tz::UTC))
                .fixed_offset();
            match render::render_canceled(cfg, &id, when, reason.as_deref()) {
                Ok(bytes) => {
                    let mut headers = HeaderMap::new();
                    put(&mut headers, CACHE_CONTROL, &cfg.server.cache_control);
                    headers.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static(DocKind::Ninjs.content_type()),
                    );
                    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                    (
                        StatusCode::GONE,
                        headers,
                        Extension(RouteLabel(LABEL)),
                        bytes,
                    )
                        .into_response()
                }
                Err(e) => server_error(&e),
            }
        }
        // Embargoed copy does not exist for the public, not even as a 404
        // that differs from any other.
        ArticleState::Withheld | ArticleState::Unknown => pages::not_found_page(&state),
    }
}

/// What a document rendered for one request is, besides its bytes.
pub(super) struct Fresh {
    pub label: &'static str,
    pub content_type: &'static str,
    /// Sent on 200 and 304 alike (Cache-Control …).
    pub headers: HeaderMap,
    pub last_modified: Option<SystemTime>,
}

/// A document rendered for this request, answered like a published one:
/// a strong ETag from its bytes, 304s, the negotiated compression (each
/// version compressed once, in the bounded page cache), HEAD.
pub(super) fn rendered(
    state: &AppState,
    method: &Method,
    req: &HeaderMap,
    fresh: Fresh,
    bytes: Bytes,
) -> Response {
    let hash = blake3::hash(&bytes);
    let etag = format!("\"{}\"", &hash.to_hex()[..32]);
    let rep = Representation {
        etag: &etag,
        last_modified: fresh.last_modified,
        content_type: fresh.content_type,
        label: fresh.label,
        headers: fresh.headers,
    };
    representation::respond(rep, method, req, |coding| {
        state.pages.body(&hash, coding, &bytes)
    })
}

fn server_error(e: &anyhow::Error) -> Response {
    tracing::error!(route = LABEL, error = %format!("{e:#}"), "cannot render a ninjs document");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(CACHE_CONTROL, "no-store")],
        Extension(RouteLabel(LABEL)),
        "the document cannot be shown right now; try again later\n",
    )
        .into_response()
}
