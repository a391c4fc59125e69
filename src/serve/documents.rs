//! Published feed documents under `/feeds/…`: exact-key lookups in the
//! in-memory store with content negotiation, validators and the headers feed
//! readers rely on (protocols.md §7, HTTP-01…HTTP-08).

use super::negotiate::{self, Coding};
use super::{AppState, RouteLabel, conditional, pages};
use crate::publish::Served;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED, LINK, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
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
        return pages::category_feed_view(&state, slug).await;
    }
    match state.store.get(&path) {
        Some(doc) => document(&state, &doc, &method, &headers),
        None => pages::not_found_page(&state),
    }
}

/// The full answer for one published document: 200 with the negotiated body
/// (none for HEAD), or 304 with the same validators and caching headers.
fn document(state: &AppState, doc: &Served, method: &Method, req: &HeaderMap) -> Response {
    let coding = negotiate::choose(req);
    let etag = variant_etag(&doc.etag, coding);
    let now = SystemTime::now();
    // HTTP-03: never later than Date; whole seconds as IMF-fixdate carries them.
    let last_modified = SystemTime::from(doc.last_modified).min(now);

    let mut headers = HeaderMap::new();
    put(&mut headers, ETAG, &etag);
    put(
        &mut headers,
        LAST_MODIFIED,
        &httpdate::fmt_http_date(last_modified),
    );
    put(&mut headers, CACHE_CONTROL, &state.cfg.server.cache_control);
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let self_url = state.cfg.feed_url(&doc.path);
    put(&mut headers, LINK, &format!("<{self_url}>; rel=\"self\""));
    for hub in state.cfg.advertised_hubs() {
        if let Ok(v) = HeaderValue::from_str(&format!("<{hub}>; rel=\"hub\"")) {
            headers.append(LINK, v);
        }
    }

    let label = RouteLabel("feeds");
    if conditional::not_modified(req, &etag, Some(last_modified), now) {
        // HTTP-05: no body, but the validators and caching headers a 200 has.
        return (StatusCode::NOT_MODIFIED, headers, axum::Extension(label)).into_response();
    }

    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(doc.kind.content_type()),
    );
    if let Some(enc) = coding.header() {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    let bytes = match coding {
        Coding::Identity => &doc.body,
        Coding::Gzip => doc.gzip(),
        Coding::Brotli => doc.brotli(),
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    // HEAD: the same headers, Content-Length of the representation, no body.
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes.clone())
    };
    (StatusCode::OK, headers, axum::Extension(label), body).into_response()
}

/// Each coding is its own representation and gets its own strong ETag
/// (HTTP-02): `"hash"`, `"hash-gzip"`, `"hash-br"`.
fn variant_etag(etag: &str, coding: Coding) -> String {
    match etag.strip_suffix('"') {
        Some(open) => format!("{open}{}\"", coding.etag_suffix()),
        None => etag.to_string(),
    }
}

/// Set a header from configuration-derived text, skipping values HTTP cannot carry.
fn put(headers: &mut HeaderMap, name: axum::http::HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => tracing::warn!(header = %name, value, "value cannot be sent as an HTTP header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_variant_etags_differ_per_coding() {
        assert_eq!(variant_etag("\"ab\"", Coding::Identity), "\"ab\"");
        assert_eq!(variant_etag("\"ab\"", Coding::Gzip), "\"ab-gzip\"");
        assert_eq!(variant_etag("\"ab\"", Coding::Brotli), "\"ab-br\"");
    }
}
