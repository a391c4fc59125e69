//! The built-in WebSub hub: `POST /hub` (subscribe / unsubscribe), intent
//! verification, and the subscriptions table.
//!
//! A request is checked synchronously (mode, topic is one of our feeds,
//! callback URL and host policy, secret size, lease) and answered `202`; the
//! verification GET runs afterwards in its own task (WS-H03). Only a 2xx whose
//! body is exactly the challenge changes anything (WS-H06); subscriptions are
//! keyed by (topic, callback), so a re-subscribe updates the one row (WS-H07).

use super::{Shared, allow, outbox};
use crate::render::DocKind;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use rusqlite::{Connection, params};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub(crate) struct HubState {
    pub shared: Arc<Shared>,
    pub db: Arc<Mutex<Connection>>,
    pub verifying: Arc<Semaphore>,
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

pub(crate) fn router(state: HubState) -> axum::Router {
    axum::Router::new()
        .route("/hub", axum::routing::post(post_hub))
        .with_state(state)
}

async fn post_hub(State(st): State<HubState>, body: Bytes) -> (StatusCode, String) {
    let req = match parse(&st.shared, &body) {
        Ok(r) => r,
        Err(reason) => {
            tracing::debug!(reason = %reason, "hub request refused");
            return (StatusCode::BAD_REQUEST, format!("{reason}\n"));
        }
    };
    // Host policy before anything is sent: a refused host is never contacted,
    // not even with a denial (the hub must not probe hosts it refuses).
    if let Err(reason) = allow::check(
        &st.shared.cfg.websub,
        &req.callback,
        std::time::Duration::from_millis(st.shared.cfg.delivery.timeout_ms),
    )
    .await
    {
        tracing::info!(reason = %reason, "hub subscription refused: callback host not allowed");
        return (StatusCode::FORBIDDEN, format!("{reason}\n"));
    }
    tokio::spawn(verify(st, req));
    (
        StatusCode::ACCEPTED,
        "accepted; verifying intent with the callback\n".into(),
    )
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
    let prefix = shared.cfg.feed_url("");
    let own = topic
        .strip_prefix(&prefix)
        .filter(|path| {
            DocKind::from_path(path).is_some_and(|k| k != DocKind::Opml)
                && shared.store.get(path).is_some()
        })
        .is_some();
    if !own {
        return Err(format!("hub.topic `{topic}` is not a feed this hub serves"));
    }
    let callback = callback.ok_or("hub.callback is required")?;
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

/// A random, single-use challenge: 256 bits as 64 hex characters.
fn challenge() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

async fn verify(st: HubState, req: Request) {
    let Ok(_slot) = st.verifying.acquire().await else {
        return;
    };
    let w = &st.shared.cfg.websub;
    if req.mode == Mode::Subscribe {
        let refusal = {
            let db = st.db.lock().expect("hub db lock");
            limits(&db, w, &req.topic, req.callback.as_str())
        };
        match refusal {
            Ok(None) => {}
            Ok(Some(reason)) => return deny(&st, &req, &reason).await,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read subscriptions; verification skipped");
                return;
            }
        }
    }
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
    let verified = match st.shared.callback_client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.bytes().await {
            Ok(body) => body.as_ref() == challenge.as_bytes(),
            Err(_) => false,
        },
        _ => false,
    };
    if !verified {
        tracing::info!(topic = %req.topic, mode = req.mode.as_str(),
            "hub verification failed (no 2xx with the exact challenge); nothing changed");
        return;
    }
    let now = chrono::Utc::now().timestamp();
    // May wait for the pipeline's batch to release the write lock.
    let result = tokio::task::block_in_place(|| {
        let db = st.db.lock().expect("hub db lock");
        match req.mode {
            Mode::Subscribe => db.execute(
                "INSERT INTO syndicate_subscriptions(topic, callback, secret, lease_secs, expires_at, created_at)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(topic, callback) DO UPDATE SET secret = excluded.secret,
                   lease_secs = excluded.lease_secs, expires_at = excluded.expires_at",
                params![
                    req.topic,
                    req.callback.as_str(),
                    req.secret,
                    req.lease as i64,
                    now + req.lease as i64,
                    now
                ],
            ),
            Mode::Unsubscribe => db.execute(
                "DELETE FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2",
                params![req.topic, req.callback.as_str()],
            ),
        }
    });
    match result {
        Ok(_) => {
            tracing::info!(topic = %req.topic, mode = req.mode.as_str(), lease_secs = req.lease,
            signed = req.secret.is_some(), "hub subscription verified")
        }
        Err(e) => tracing::warn!(error = %e, "cannot store the subscription"),
    }
}

/// `Some(reason)` when a new subscription would exceed a limit.
fn limits(
    db: &Connection,
    w: &crate::config::WebSub,
    topic: &str,
    callback: &str,
) -> anyhow::Result<Option<String>> {
    let now = chrono::Utc::now().timestamp();
    let exists: bool = db.query_row(
        "SELECT count(*) > 0 FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2",
        params![topic, callback],
        |r| r.get(0),
    )?;
    if exists {
        return Ok(None);
    }
    let per_topic: i64 = db.query_row(
        "SELECT count(*) FROM syndicate_subscriptions WHERE topic = ?1 AND expires_at > ?2",
        params![topic, now],
        |r| r.get(0),
    )?;
    if per_topic as usize >= w.max_subscriptions_per_topic {
        return Ok(Some("too many subscriptions to this topic".into()));
    }
    let total: i64 = db.query_row(
        "SELECT count(*) FROM syndicate_subscriptions WHERE expires_at > ?1",
        [now],
        |r| r.get(0),
    )?;
    if total as usize >= w.max_subscriptions {
        return Ok(Some("this hub has reached its subscription limit".into()));
    }
    Ok(None)
}

/// WS-H10: tell the callback its subscription was denied.
async fn deny(st: &HubState, req: &Request, reason: &str) {
    tracing::info!(topic = %req.topic, reason, "hub subscription denied");
    let mut url = req.callback.clone();
    url.query_pairs_mut()
        .append_pair("hub.mode", "denied")
        .append_pair("hub.topic", &req.topic)
        .append_pair("hub.reason", reason);
    let _ = st.shared.callback_client.get(url).send().await;
}

/// Open a connection of the hub's own (the pipeline thread owns the other).
pub(crate) fn open_db(path: &std::path::Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    outbox::prepare(&conn)?;
    Ok(conn)
}
