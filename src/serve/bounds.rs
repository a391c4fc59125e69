//! Request bounds every route gets, including routes merged in by the daemon
//! (the WebSub `/hub`) and any added later: they are applied once, in
//! [`super::serve`], to the whole router.
//!
//! A request target or header block over its limit is refused (414, 431)
//! before any handler runs. A body is read here, in full, within
//! `server.max_body_bytes` and `server.body_read_timeout_secs`, so no handler
//! can be made to buffer more or wait longer; over the cap is 413, too slow
//! is 408, and both close the connection (the rest of the body is never read).

use super::Limits;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;

pub(super) async fn bound_request(
    State(limits): State<Arc<Limits>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(refused) = refusal(&req, &limits) {
        return refused;
    }
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    // A declared length over the cap is refused before a byte of it is read.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, limits.max_body_bytes).collect();
    let bytes = match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The refusal for a request target or header block over its limit.
/// Measured without formatting the URI: this runs on every request.
pub(super) fn refusal<B>(req: &axum::http::Request<B>, limits: &Limits) -> Option<Response> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Some(refuse(StatusCode::URI_TOO_LONG, "request target too long"));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        ));
    }
    None
}

/// A plain-text refusal that also ends the connection: whatever the client
/// still has to send is not worth reading.
fn refuse(status: StatusCode, reason: &str) -> Response {
    let mut res = (status, format!("{reason}\n")).into_response();
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    res
}
