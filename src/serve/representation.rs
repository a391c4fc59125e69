//! One cacheable representation on the wire, the same for feeds and pages:
//! negotiated coding, a strong ETag per coding, Last-Modified, a 304 when
//! the client's copy is current, and HEAD without a body.

use super::RouteLabel;
use super::conditional;
use super::negotiate::{self, Coding};
use axum::body::{Body, Bytes};
use axum::http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
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
    add_validators(&mut headers, &etag, last_modified);

    let label = axum::Extension(RouteLabel(rep.label));
    if conditional::not_modified(req, &etag, last_modified, now) {
        // HTTP-05: no body, but the validators and caching headers a 200 has.
        return (StatusCode::NOT_MODIFIED, headers, label).into_response();
    }

    let bytes = body(coding);
    add_body_headers(&mut headers, rep.content_type, coding, bytes.len());
    // HEAD: the same headers, Content-Length of the representation, no body.
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    (StatusCode::OK, headers, label, body).into_response()
}

/// A representation's response heads made once, for a body that does not
/// change (a published document version): a poll then costs the coding
/// choice, a comparison of the client's validator with ours and a copy of a
/// ready header map, where [`respond`] formats and inserts every header.
pub(crate) struct Prepared {
    /// By coding: identity, gzip, brotli.
    variants: [Variant; 3],
    /// Whole seconds, as Last-Modified carries it.
    last_modified: Option<SystemTime>,
    content_type: &'static str,
    label: &'static str,
}

struct Variant {
    etag: String,
    /// The 304's head: validators and caching headers.
    not_modified: HeaderMap,
    /// The 200's head, made when this coding's body is first sent (its
    /// Content-Length needs the compressed body).
    ok: OnceLock<HeaderMap>,
}

impl Prepared {
    pub(crate) fn new(rep: Representation<'_>) -> Prepared {
        let last_modified = rep.last_modified.map(whole_seconds);
        let variant = |coding: Coding| {
            let etag = variant_etag(rep.etag, coding);
            let mut headers = rep.headers.clone();
            add_validators(&mut headers, &etag, last_modified);
            Variant {
                etag,
                not_modified: headers,
                ok: OnceLock::new(),
            }
        };
        Prepared {
            variants: [
                variant(Coding::Identity),
                variant(Coding::Gzip),
                variant(Coding::Brotli),
            ],
            last_modified,
            content_type: rep.content_type,
            label: rep.label,
        }
    }

    /// The same answer [`respond`] gives for this representation, from the
    /// ready heads. A Last-Modified later than the clock (a clock set back
    /// since publishing) cannot be sent as prepared: `None`, and the caller
    /// uses [`respond`], which clamps it.
    pub(crate) fn respond(
        &self,
        method: &Method,
        req: &HeaderMap,
        body: impl FnOnce(Coding) -> Bytes,
    ) -> Option<Response> {
        let now = SystemTime::now();
        if self.last_modified.is_some_and(|t| t > now) {
            return None;
        }
        let coding = negotiate::choose(req);
        let variant = &self.variants[coding as usize];
        let label = RouteLabel(self.label);
        // A reader that polls sends back exactly the tag it was given: that
        // is a match without parsing. Anything else takes the full rules.
        let echoed = req
            .get(IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == variant.etag.as_bytes());
        if echoed || conditional::not_modified(req, &variant.etag, self.last_modified, now) {
            return Some(with_head(
                StatusCode::NOT_MODIFIED,
                variant.not_modified.clone(),
                label,
                Body::empty(),
            ));
        }
        let bytes = body(coding);
        let head = variant.ok.get_or_init(|| {
            let mut headers = variant.not_modified.clone();
            add_body_headers(&mut headers, self.content_type, coding, bytes.len());
            headers
        });
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(bytes)
        };
        Some(with_head(StatusCode::OK, head.clone(), label, body))
    }
}

/// What a 200 and a 304 both carry: the coding's validators, and that the
/// answer varies with Accept-Encoding.
fn add_validators(headers: &mut HeaderMap, etag: &str, last_modified: Option<SystemTime>) {
    put(headers, ETAG, etag);
    if let Some(t) = last_modified {
        put(headers, LAST_MODIFIED, &httpdate::fmt_http_date(t));
    }
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// What only a 200 carries: the body's type, coding and length.
fn add_body_headers(
    headers: &mut HeaderMap,
    content_type: &'static str,
    coding: Coding,
    len: usize,
) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(enc) = coding.header() {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

/// A response from a ready head, without re-inserting header by header.
fn with_head(status: StatusCode, headers: HeaderMap, label: RouteLabel, body: Body) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res.extensions_mut().insert(label);
    res
}

/// Truncated to whole seconds, which is all an HTTP date carries: a 304 for
/// an If-Modified-Since equal to what we sent.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
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

    /// The prepared heads answer exactly what `respond` answers, for
    /// plain, compressed, conditional and HEAD requests alike.
    #[test]
    fn serve_prepared_heads_answer_as_respond_does() {
        use axum::http::header::{ACCEPT_ENCODING, IF_MODIFIED_SINCE, IF_NONE_MATCH};
        let published = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let rep = || {
            let mut headers = HeaderMap::new();
            put(
                &mut headers,
                axum::http::header::CACHE_CONTROL,
                "max-age=60",
            );
            Representation {
                etag: "\"abc\"",
                last_modified: Some(published),
                content_type: "application/rss+xml",
                label: "feeds",
                headers,
            }
        };
        let body = |coding: Coding| Bytes::from(format!("body {coding:?}"));
        let prepared = Prepared::new(rep());
        let requests: [&[(HeaderName, &str)]; 6] = [
            &[],
            &[(ACCEPT_ENCODING, "gzip")],
            &[(ACCEPT_ENCODING, "br, gzip"), (IF_NONE_MATCH, "\"abc-br\"")],
            &[
                (ACCEPT_ENCODING, "gzip"),
                (IF_NONE_MATCH, "W/\"abc-gzip\", \"x\""),
            ],
            &[(ACCEPT_ENCODING, "gzip"), (IF_NONE_MATCH, "\"abc\"")],
            &[(IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT")],
        ];
        for (i, request) in requests.iter().enumerate() {
            let mut req = HeaderMap::new();
            for (name, value) in request.iter() {
                req.insert(name.clone(), HeaderValue::from_str(value).unwrap());
            }
            for method in [Method::GET, Method::HEAD] {
                let want = respond(rep(), &method, &req, body);
                let got = prepared.respond(&method, &req, body).unwrap();
                assert_eq!(got.status(), want.status(), "request {i} {method}");
                assert_eq!(got.headers(), want.headers(), "request {i} {method}");
            }
        }
    }

    #[test]
    fn serve_variant_etags_differ_per_coding() {
        assert_eq!(variant_etag("\"ab\"", Coding::Identity), "\"ab\"");
        assert_eq!(variant_etag("\"ab\"", Coding::Gzip), "\"ab-gzip\"");
        assert_eq!(variant_etag("\"ab\"", Coding::Brotli), "\"ab-br\"");
    }
}
