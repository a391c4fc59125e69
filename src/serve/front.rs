//! The front door: every request enters here, on the connection's thread.
//!
//! A polling feed reader asks for one live document again and again, and
//! almost always gets a 304: that request is most of a public feed server's
//! traffic. It is answered here, straight from the store's prepared heads,
//! without the router (its route lookup, boxed middleware, extractors that
//! copy the header map, and the per-request extension map). It gets exactly
//! what the router would give it: the same request bounds (`bounds`), the
//! same handler code (`documents::live_document`) and the same count in
//! `/metrics`. Everything else, including any request this path is unsure
//! of (a percent-encoded path, a body, another method), goes to the router.

use super::{AppState, Limits, RouteLabel, documents};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::response::Response;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::ServiceExt;
use tower::util::Oneshot;

/// The router with its layers, and the state the direct path reads.
#[derive(Clone)]
pub(crate) struct Front {
    router: Router,
    state: Option<AppState>,
    limits: Arc<Limits>,
}

impl Front {
    /// `state` is the feeds' state when `router` serves `/feeds/…` from it
    /// (the daemon); `None` sends every request through `router`.
    pub(crate) fn new(router: Router, state: Option<AppState>, limits: Arc<Limits>) -> Front {
        Front {
            router,
            state,
            limits,
        }
    }

    /// Answer one request from `peer`.
    pub(crate) fn call(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Answer {
        if let Some(res) = self.direct(&req) {
            return Answer::Ready(ready(Ok(res)));
        }
        req.extensions_mut().insert(ConnectInfo(peer));
        Answer::Routed(Box::pin(self.router.clone().oneshot(req.map(Body::new))))
    }

    /// The answer for a GET or HEAD of a live published document, if that
    /// is what `req` is.
    fn direct(&self, req: &Request<Incoming>) -> Option<Response> {
        let state = self.state.as_ref()?;
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return None;
        }
        let key = req.uri().path().strip_prefix("/feeds/")?;
        // Percent-escapes are the router's to decode; a query changes nothing
        // for a document, but the router is where it is ignored.
        if key.contains('%') || req.uri().query().is_some() {
            return None;
        }
        if !hyper::body::Body::is_end_stream(req.body())
            || super::bounds::refusal(req, &self.limits).is_some()
        {
            return None;
        }
        let res = documents::live_document(state, key, req.method(), req.headers())?;
        let label = res
            .extensions()
            .get::<RouteLabel>()
            .map_or("feeds", |l| l.0);
        state.metrics.count_request(label, res.status().as_u16());
        Some(res)
    }
}

/// A request's answer: ready at once, or the router's.
pub(crate) enum Answer {
    Ready(Ready<Result<Response, Infallible>>),
    Routed(Pin<Box<Oneshot<Router, Request<Body>>>>),
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Ready(r) => Pin::new(r).poll(cx),
            Answer::Routed(r) => r.as_mut().poll(cx),
        }
    }
}
