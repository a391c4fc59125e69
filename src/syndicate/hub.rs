//! The built-in WebSub hub: `POST /hub` (subscribe / unsubscribe), intent
//! verification, and the subscriptions table.
//!
//! A request passes, in order: the client's rate limit (429 with
//! `Retry-After`); the synchronous checks (mode, topic is one of our feeds,
//! callback URL and its length, secret size, lease: 400); a place in the
//! bounded queue of pending verifications (429 when this client already has
//! its share queued, 503 when the whole queue is full); the callback host
//! policy (403); and the subscription limits, checked in the same write
//! transaction that reserves a place for the new subscription, counting the
//! verifications still in flight, so concurrent requests cannot overshoot a
//! limit. Then it is answered `202` and the verification GET (or, over a
//! limit, the denial of WS-H10) runs from the queue (WS-H03): at most
//! `delivery.websub_concurrency` at once, first come first served, each
//! within `websub.verify_timeout_ms` and reading no more of the answer than
//! the challenge's length. Only a 2xx whose body is exactly the challenge
//! changes anything (WS-H06); subscriptions are keyed by (topic, callback),
//! so a re-subscribe updates the one row (WS-H07).

use super::admit::{Busy, ClientKey, Pending, RateLimiter, Slot};
use super::{Shared, allow, reply};
use crate::catalog::{Catalog, LimitHit, Reservation, Subscription, SubscriptionLimits};
use crate::config::WebSub;
use crate::render::DocKind;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A reservation older than this belongs to a verification that can no
/// longer be running (the queue drains far faster); it no longer counts.
const STALE_RESERVATION_SECS: i64 = 3600;

const REFUSED: &str = "feedwire_hub_refusals_total";
const REFUSED_HELP: &str = "POST /hub requests refused before verification, by reason.";
const VERIFICATIONS: &str = "feedwire_hub_verifications_total";
const VERIFICATIONS_HELP: &str = "Finished hub verifications: verified, failed (no 2xx with the exact challenge), denied (over a limit).";
const PENDING: &str = "feedwire_hub_pending_verifications";
const PENDING_HELP: &str = "Hub verifications accepted and not yet finished.";

#[derive(Clone)]
pub(crate) struct HubState {
    pub shared: Arc<Shared>,
    pub db: Arc<Mutex<Catalog>>,
    /// Verifications running at once.
    pub verifying: Arc<Semaphore>,
    pub rate: Arc<RateLimiter>,
    pub pending: Arc<Pending>,
    /// Verifications run here, so shutdown knows of them.
    pub tasks: TaskTracker,
    /// The daemon's runtime, where verifications run: the request that asks
    /// for one is served on an HTTP worker's runtime, which ends with the
    /// server, before the daemon's shutdown has waited for its tasks.
    pub runtime: tokio::runtime::Handle,
    pub stop: CancellationToken,
}

impl HubState {
    pub(crate) fn new(
        shared: Arc<Shared>,
        db: Catalog,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> HubState {
        let w = &shared.cfg.websub;
        HubState {
            verifying: Arc::new(Semaphore::new(shared.cfg.delivery.websub_concurrency)),
            rate: Arc::new(RateLimiter::new(
                w.client_requests_per_minute,
                w.client_burst,
                w.max_tracked_clients,
            )),
            pending: Pending::new(
                w.max_pending_verifications,
                w.max_pending_verifications_per_client,
            ),
            db: Arc::new(Mutex::new(db)),
            shared,
            tasks,
            runtime: tokio::runtime::Handle::current(),
            stop,
        }
    }

    fn verify_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.cfg.websub.verify_timeout_ms)
    }

    fn refused(&self, reason: &'static str) {
        self.shared
            .metrics
            .add(REFUSED, REFUSED_HELP, &[("reason", reason)], 1);
    }

    fn finished(&self, result: &'static str) {
        self.shared
            .metrics
            .add(VERIFICATIONS, VERIFICATIONS_HELP, &[("result", result)], 1);
    }

    fn report_pending(&self) {
        self.shared
            .metrics
            .set_gauge(PENDING, PENDING_HELP, self.pending.len() as f64);
    }

    /// Run `f` on the hub's connection, on the blocking pool (it may wait
    /// for the pipeline's batch to release the write lock).
    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Catalog) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut catalog = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut catalog)
        })
        .await?
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Subscribe,
    Unsubscribe,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Subscribe => "subscribe",
            Mode::Unsubscribe => "unsubscribe",
        }
    }
}

/// A request that passed the synchronous checks.
#[derive(Debug)]
struct Request {
    mode: Mode,
    topic: String,
    callback: url::Url,
    lease: u64,
    secret: Option<String>,
}

/// What admission decided for a request that will be answered 202.
#[derive(Debug)]
enum Admitted {
    /// Verify intent. A new subscription holds the reservation `Some(id)`.
    Verify(Option<i64>),
    /// A limit is reached: tell the callback so (WS-H10).
    Deny(String),
}

pub(crate) fn router(state: HubState) -> axum::Router {
    axum::Router::new()
        .route("/hub", axum::routing::post(post_hub))
        .with_state(state)
}

/// A refusal the client may retry after `wait`.
fn retry_later(status: StatusCode, wait: Duration, message: String) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    (
        status,
        [(header::RETRY_AFTER, secs.max(1).to_string())],
        format!("{message}\n"),
    )
        .into_response()
}

async fn post_hub(
    State(st): State<HubState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let client = ClientKey::of(peer.ip());
    let w = &st.shared.cfg.websub;
    if let Err(wait) = st.rate.check(&client, Instant::now()) {
        st.refused("rate_limited");
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            format!(
                "too many hub requests from your address (at most {} a minute); retry after Retry-After seconds",
                w.client_requests_per_minute
            ),
        );
    }
    let req = match parse(&st.shared, &body) {
        Ok(r) => r,
        Err(reason) => {
            st.refused("bad_request");
            tracing::debug!(reason = %reason, "hub request refused");
            return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response();
        }
    };
    let slot = match st.pending.admit(&client) {
        Ok(slot) => slot,
        Err(Busy::Client) => {
            st.refused("client_queue_full");
            return retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                st.verify_timeout(),
                format!(
                    "{} verifications for your address are still pending; retry when they are done",
                    w.max_pending_verifications_per_client
                ),
            );
        }
        Err(Busy::Hub) => {
            st.refused("queue_full");
            return retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                st.verify_timeout(),
                "the hub's queue of verifications is full; retry later".into(),
            );
        }
    };
    st.report_pending();
    // Host policy before anything is sent: a refused host is never contacted,
    // not even with a denial (the hub must not probe hosts it refuses).
    if let Err(reason) = allow::check(w, &req.callback, st.verify_timeout()).await {
        st.refused("callback_not_allowed");
        tracing::debug!(reason = %reason, "hub subscription refused: callback host not allowed");
        return (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response();
    }
    let admitted = {
        let (w, topic, callback, mode) = (
            w.clone(),
            req.topic.clone(),
            req.callback.to_string(),
            req.mode,
        );
        let client = client.clone();
        st.with_db(move |db| reserve(db, &w, mode, &topic, &callback, &client, now()))
            .await
    };
    let admitted = match admitted {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "hub cannot record a subscribe request; answered 503");
            return retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(5),
                "the hub cannot record the request now; retry shortly".into(),
            );
        }
    };
    let stop = st.stop.clone();
    let runtime = st.runtime.clone();
    runtime.spawn(st.tasks.clone().track_future(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = work(st, req, client, admitted, slot) => {}
        }
    }));
    (
        StatusCode::ACCEPTED,
        "accepted; verifying intent with the callback\n",
    )
        .into_response()
}

fn parse(shared: &Shared, body: &[u8]) -> Result<Request, String> {
    let mut mode = None;
    let mut topic = None;
    let mut callback = None;
    let mut lease = None;
    let mut secret = None;
    // First occurrence wins; unknown parameters are ignored (WS-H02).
    for (k, v) in url::form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "hub.mode" => &mut mode,
            "hub.topic" => &mut topic,
            "hub.callback" => &mut callback,
            "hub.lease_seconds" => &mut lease,
            "hub.secret" => &mut secret,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    let mode = match mode.as_deref() {
        Some("subscribe") => Mode::Subscribe,
        Some("unsubscribe") => Mode::Unsubscribe,
        Some(other) => {
            return Err(format!(
                "hub.mode `{other}` is not supported (subscribe or unsubscribe)"
            ));
        }
        None => return Err("hub.mode is required".into()),
    };
    let topic = topic.ok_or("hub.topic is required")?;
    let prefix = crate::site::feed_url(&shared.cfg, "");
    let own = topic
        .strip_prefix(&prefix)
        .filter(|path| {
            DocKind::from_path(path).is_some_and(|k| DocKind::FEEDS.contains(&k))
                && shared.store.get(path).is_some()
        })
        .is_some();
    if !own {
        return Err(format!("hub.topic `{topic}` is not a feed this hub serves"));
    }
    let callback = callback.ok_or("hub.callback is required")?;
    let max = shared.cfg.websub.max_callback_bytes;
    if callback.len() > max {
        return Err(format!(
            "hub.callback is longer than {max} bytes (websub.max_callback_bytes)"
        ));
    }
    let callback = url::Url::parse(&callback)
        .map_err(|_| "hub.callback is not an absolute URL".to_string())?;
    if !matches!(callback.scheme(), "http" | "https") || callback.host().is_none() {
        return Err("hub.callback must be an http or https URL".into());
    }
    if secret.as_ref().is_some_and(|s| s.len() >= 200) {
        return Err("hub.secret must be shorter than 200 bytes".into());
    }
    let w = &shared.cfg.websub;
    let lease = match lease.as_deref().map(str::trim) {
        None | Some("") => w.lease_default_secs,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| "hub.lease_seconds must be a positive integer".to_string())?,
    }
    .clamp(w.lease_min_secs, w.lease_max_secs);
    Ok(Request {
        mode,
        topic,
        callback,
        lease,
        secret: secret.filter(|s| !s.is_empty()),
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A random, single-use challenge: 256 bits as 64 hex characters.
fn challenge() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// One queued request, from its turn to its outcome. `slot` is its place
/// in the pending queue, given back when this ends.
async fn work(st: HubState, req: Request, client: ClientKey, admitted: Admitted, slot: Slot) {
    if let Ok(_running) = st.verifying.acquire().await {
        match admitted {
            Admitted::Deny(reason) => {
                st.finished("denied");
                deny(&st, &req, &reason).await;
            }
            Admitted::Verify(reservation) => verify(&st, &req, &client, reservation).await,
        }
    }
    drop(slot);
    st.report_pending();
}

async fn verify(st: &HubState, req: &Request, client: &ClientKey, reservation: Option<i64>) {
    let verified = intent_confirmed(st, req).await;
    let (w, mode, topic, callback, client) = (
        st.shared.cfg.websub.clone(),
        req.mode,
        req.topic.clone(),
        req.callback.to_string(),
        client.clone(),
    );
    let (lease, secret) = (req.lease, req.secret.clone());
    let stored = st
        .with_db(move |db| {
            if !verified {
                release(db, reservation)?;
                return Ok(None);
            }
            let sub = Subscription {
                topic: &topic,
                callback: &callback,
                client: client.as_str(),
                lease_secs: lease,
                secret: secret.as_deref(),
            };
            store(db, &w, mode, &sub, reservation, now()).map(Some)
        })
        .await;
    match stored {
        Ok(None) => {
            st.finished("failed");
            tracing::debug!(topic = %req.topic, mode = req.mode.as_str(),
                "hub verification failed (no 2xx with the exact challenge); nothing changed");
        }
        Ok(Some(Stored::Done)) => {
            st.finished("verified");
            tracing::info!(topic = %req.topic, mode = req.mode.as_str(), lease_secs = req.lease,
                signed = req.secret.is_some(), "hub subscription verified");
        }
        Ok(Some(Stored::Denied(reason))) => {
            st.finished("denied");
            deny(st, req, &reason).await;
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"),
            "cannot store the subscription; the subscriber has to subscribe again"),
    }
}

/// The verification GET: did the callback answer 2xx with exactly the
/// challenge?
async fn intent_confirmed(st: &HubState, req: &Request) -> bool {
    let challenge = challenge();
    let mut url = req.callback.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("hub.mode", req.mode.as_str())
            .append_pair("hub.topic", &req.topic)
            .append_pair("hub.challenge", &challenge);
        if req.mode == Mode::Subscribe {
            q.append_pair("hub.lease_seconds", &req.lease.to_string());
        }
    }
    let request = st
        .shared
        .callback_client
        .get(url)
        .timeout(st.verify_timeout());
    match request.send().await {
        Ok(mut resp) if resp.status().is_success() => {
            // One byte past the challenge's length already proves it wrong.
            matches!(
                reply::read_capped(&mut resp, challenge.len() + 1).await,
                Ok((body, _)) if body == challenge.as_bytes()
            )
        }
        _ => false,
    }
}

/// Admission's part in the catalog, one write transaction: a subscribe
/// request for a subscription not already active either gets a place under
/// the limits (counted by every later check until its verification ends) or
/// is denied.
fn reserve(
    db: &mut Catalog,
    w: &WebSub,
    mode: Mode,
    topic: &str,
    callback: &str,
    client: &ClientKey,
    now: i64,
) -> anyhow::Result<Admitted> {
    if mode == Mode::Unsubscribe {
        return Ok(Admitted::Verify(None));
    }
    Ok(
        match db.reserve_subscription(
            topic,
            callback,
            client.as_str(),
            limits(w),
            now,
            now - STALE_RESERVATION_SECS,
        )? {
            Reservation::Renewal => Admitted::Verify(None),
            Reservation::Held(id) => Admitted::Verify(Some(id)),
            Reservation::Denied(hit) => Admitted::Deny(limit_reason(hit)),
        },
    )
}

fn limits(w: &WebSub) -> SubscriptionLimits {
    SubscriptionLimits {
        per_topic: w.max_subscriptions_per_topic,
        per_client: w.max_subscriptions_per_client,
        total: w.max_subscriptions,
    }
}

/// What a subscriber is told when a limit stops it (`hub.reason`).
fn limit_reason(hit: LimitHit) -> String {
    match hit {
        LimitHit::Topic => "too many subscriptions to this topic".into(),
        LimitHit::Client => {
            "too many subscriptions from your address (websub.max_subscriptions_per_client)".into()
        }
        LimitHit::Total => "this hub has reached its subscription limit".into(),
    }
}

/// A verification that failed gives its place back.
fn release(db: &mut Catalog, reservation: Option<i64>) -> anyhow::Result<()> {
    if let Some(id) = reservation {
        db.release_reservation(id)?;
    }
    Ok(())
}

enum Stored {
    Done,
    /// A renewal whose subscription ended meanwhile, with no place left.
    Denied(String),
}

/// A verified request takes effect: a reserved place becomes the
/// subscription; a renewal without one is checked again.
fn store(
    db: &mut Catalog,
    w: &WebSub,
    mode: Mode,
    sub: &Subscription<'_>,
    reservation: Option<i64>,
    now: i64,
) -> anyhow::Result<Stored> {
    match mode {
        Mode::Subscribe => Ok(
            match db.store_subscription(sub, reservation, limits(w), now)? {
                Ok(()) => Stored::Done,
                Err(hit) => Stored::Denied(limit_reason(hit)),
            },
        ),
        Mode::Unsubscribe => {
            db.remove_subscription(sub.topic, sub.callback)?;
            Ok(Stored::Done)
        }
    }
}

/// WS-H10: tell the callback its subscription was denied. The answer is
/// not read at all.
async fn deny(st: &HubState, req: &Request, reason: &str) {
    tracing::debug!(topic = %req.topic, reason, "hub subscription denied");
    let mut url = req.callback.clone();
    url.query_pairs_mut()
        .append_pair("hub.mode", "denied")
        .append_pair("hub.topic", &req.topic)
        .append_pair("hub.reason", reason);
    let request = st
        .shared
        .callback_client
        .get(url)
        .timeout(st.verify_timeout());
    let _ = request.send().await;
}
