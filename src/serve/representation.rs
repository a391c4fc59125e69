//! One cacheable representation on the wire, the same for feeds and pages:
//! negotiated coding, a strong ETag per coding, Last-Modified, a 304 when
//! the client's copy is current, and HEAD without a body.

use super::RouteLabel;
use super::conditional;
use super::negotiate::{self, Coding};
use axum::body::{Body, Bytes};
use axum::http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::SystemTime;

/// What a response needs to know about the resource, whatever its body.
pub(crate) struct Representation<'a> {
    /// Strong ETag of the identity bytes, quoted.
    pub etag: &'a str,
    /// The newest date the content shows, if it shows any.
    pub last_modified: Option<SystemTime>,
    pub content_type: &'static str,
    pub label: &'static str,
    /// Sent on 200 and 304 alike (Cache-Control, Link …).
    pub headers: HeaderMap,
}

/// The full answer: 200 with the negotiated body (none for HEAD), or 304
/// with the same validators and caching headers. `body` is asked only for
/// the coding chosen, and only when a body is sent.
pub(crate) fn respond(
    rep: Representation<'_>,
    method: &Method,
    req: &HeaderMap,
    body: impl FnOnce(Coding) -> Bytes,
) -> Response {
    let coding = negotiate::choose(req);
    let etag = variant_etag(rep.etag, coding);
    let now = SystemTime::now();
    // HTTP-03: never later than Date; whole seconds as IMF-fixdate carries them.
    let last_modified = rep.last_modified.map(|t| t.min(now));

    let mut headers = rep.headers;
    put(&mut headers, ETAG, &etag);
    if let Some(t) = last_modified {
        put(&mut headers, LAST_MODIFIED, &httpdate::fmt_http_date(t));
    }
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));

    let label = axum::Extension(RouteLabel(rep.label));
    if conditional::not_modified(req, &etag, last_modified, now) {
        // HTTP-05: no body, but the validators and caching headers a 200 has.
        return (StatusCode::NOT_MODIFIED, headers, label).into_response();
    }

    headers.insert(CONTENT_TYPE, HeaderValue::from_static(rep.content_type));
    if let Some(enc) = coding.header() {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    let bytes = body(coding);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    // HEAD: the same headers, Content-Length of the representation, no body.
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    (StatusCode::OK, headers, label, body).into_response()
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
pub(crate) fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
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
