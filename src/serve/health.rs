//! Operational endpoints: `/healthz` (ready once the first publish is done)
//! and `/metrics` (Prometheus text exposition).

use super::{AppState, RouteLabel};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

pub async fn healthz(State(state): State<AppState>) -> Response {
    let (status, body) = if state.metrics.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    };
    (
        status,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        Extension(RouteLabel("healthz")),
        body,
    )
        .into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        Extension(RouteLabel("metrics")),
        state.metrics.render(),
    )
        .into_response()
}
