//! The delivery worker: takes due rows from the outbox, sends them with
//! bounded concurrency, and records outcomes in batches.
//!
//! One dispatcher task owns its own catalog connection. It wakes on the commit
//! hook's nudge, on the Store's "path changed" announcements (which open the
//! gates of rows waiting for a new document), when a send finishes, and on a
//! short tick (retries, lease expiry). Sends run as separate tasks, at most
//! `delivery.websub_concurrency` for WebSub/hub/ping rows and `concurrency`
//! per partner, so a slow partner never holds up anyone else.

use super::Shared;
use super::outbox::{self, Kind, Outcome, Row};
use super::{allow, partner};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Gated rows go anyway after this long without an announcement.
const GATE_PATIENCE_MS: i64 = 10_000;
const TICK: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut conn: Connection,
    mut shutdown: broadcast::Receiver<()>,
) {
    let mut changed = shared.store.subscribe();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Kind, String, Outcome)>();
    let mut inflight: HashSet<i64> = HashSet::new();
    let mut websub_busy = 0usize;
    let mut partner_busy: HashMap<String, usize> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let partner_slots: usize = shared.cfg.partners.iter().map(|p| p.concurrency).sum();
    loop {
        let mut paths: Vec<String> = Vec::new();
        let mut lagged = false;
        let mut ticked = false;
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = shared.wake.notified() => {}
            r = changed.recv() => match r {
                Ok(p) => paths.push(p),
                Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                Err(broadcast::error::RecvError::Closed) => {}
            },
            Some(d) = done_rx.recv() => finish(d, &mut inflight, &mut websub_busy, &mut partner_busy, &mut outcomes),
            _ = tick.tick() => ticked = true,
        }
        loop {
            match changed.try_recv() {
                Ok(p) => paths.push(p),
                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(_) => break,
            }
        }
        while let Ok(d) = done_rx.try_recv() {
            finish(
                d,
                &mut inflight,
                &mut websub_busy,
                &mut partner_busy,
                &mut outcomes,
            );
        }
        let now = outbox::now_ms();
        // The step may wait on the catalog's write lock while the pipeline
        // commits a large batch; let the runtime move the HTTP server's work
        // off this thread meanwhile.
        let step = tokio::task::block_in_place(|| -> anyhow::Result<()> {
            outbox::apply(&mut conn, &shared.cfg, &outcomes)?;
            outcomes.clear();
            if lagged {
                outbox::open_all_gates(&conn)?;
            }
            for p in &paths {
                outbox::open_gate(&conn, p)?;
            }
            if ticked {
                outbox::open_stale_gates(&conn, now, GATE_PATIENCE_MS)?;
                let gone = outbox::purge_expired(&conn, now / 1000)?;
                if gone > 0 {
                    tracing::info!(subscriptions = gone, "websub leases ended");
                }
                let (pending, dead) = outbox::backlog(&conn)?;
                shared.metrics.set_gauge(
                    "feedwire_delivery_backlog",
                    "Deliveries waiting in the outbox (WebSub, hub pings, partners).",
                    pending as f64,
                );
                shared.metrics.set_gauge(
                    "feedwire_delivery_dead_letters",
                    "Partner deliveries that gave up (feedwire redeliver).",
                    dead as f64,
                );
            }
            outbox::expand_fanouts(&mut conn, &shared.cfg, now)?;
            let free = shared
                .cfg
                .delivery
                .websub_concurrency
                .saturating_sub(websub_busy)
                + partner_slots;
            if free == 0 {
                return Ok(());
            }
            let rows = outbox::due(&conn, now, inflight.len() + free + 64)?;
            for row in rows {
                if inflight.contains(&row.id) {
                    continue;
                }
                let secret = match row.kind {
                    Kind::Partner => {
                        let Some(p) = shared.cfg.partners.iter().find(|p| p.name == row.target)
                        else {
                            outcomes.push(Outcome::Dead {
                                id: row.id,
                                error: "partner no longer configured".into(),
                            });
                            continue;
                        };
                        let busy = partner_busy.entry(row.target.clone()).or_default();
                        if *busy >= p.concurrency {
                            continue;
                        }
                        *busy += 1;
                        None
                    }
                    _ => {
                        if websub_busy >= shared.cfg.delivery.websub_concurrency {
                            continue;
                        }
                        let mut secret = None;
                        if row.kind == Kind::WebSub {
                            let url = shared.cfg.feed_url(&row.topic);
                            match outbox::active_secret(&conn, &url, &row.target, now / 1000)? {
                                Some(s) => secret = s,
                                None => {
                                    outcomes.push(Outcome::Dropped(row.id));
                                    continue;
                                }
                            }
                        }
                        websub_busy += 1;
                        secret
                    }
                };
                inflight.insert(row.id);
                let shared = shared.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let kind = row.kind;
                    let target = row.target.clone();
                    let outcome = send(&shared, row, secret).await;
                    let _ = done.send((kind, target, outcome));
                });
            }
            outbox::apply(&mut conn, &shared.cfg, &outcomes)?;
            outcomes.clear();
            Ok(())
        });
        if let Err(e) = step {
            // Outcomes not yet recorded stay for the next step (`apply` is
            // one transaction: all of them were recorded or none), so a
            // delivered row is not sent again because of a busy catalog.
            tracing::warn!(error = %format!("{e:#}"), "outbox step failed; retrying shortly");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tracing::debug!(
        in_flight = inflight.len(),
        "delivery worker stopped; unfinished deliveries stay queued"
    );
}

fn finish(
    (kind, target, outcome): (Kind, String, Outcome),
    inflight: &mut HashSet<i64>,
    websub_busy: &mut usize,
    partner_busy: &mut HashMap<String, usize>,
    outcomes: &mut Vec<Outcome>,
) {
    let id = match &outcome {
        Outcome::Delivered(id) | Outcome::Dropped(id) => *id,
        Outcome::Gone { id, .. } | Outcome::Dead { id, .. } => *id,
        Outcome::Failed { row, .. } => row.id,
    };
    inflight.remove(&id);
    if kind == Kind::Partner {
        if let Some(b) = partner_busy.get_mut(&target) {
            *b = b.saturating_sub(1);
        }
    } else {
        *websub_busy = websub_busy.saturating_sub(1);
    }
    outcomes.push(outcome);
}

fn failed(row: Row, error: impl Into<String>) -> Outcome {
    Outcome::Failed {
        row: Box::new(row),
        error: error.into(),
    }
}

/// A reqwest error without the URL (it may carry tokens).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        format!("{e}")
    }
}

async fn send(shared: &Shared, row: Row, secret: Option<String>) -> Outcome {
    match row.kind {
        Kind::WebSub => send_websub(shared, row, secret).await,
        Kind::Hub => send_hub_ping(shared, row).await,
        Kind::Ping => send_xmlrpc_ping(shared, row).await,
        Kind::Partner => send_partner(shared, row).await,
        Kind::Fanout => Outcome::Dropped(row.id),
    }
}

/// Content distribution (WS-H11..H15): the full current document.
async fn send_websub(shared: &Shared, row: Row, secret: Option<String>) -> Outcome {
    let Some(doc) = shared.store.get(&row.topic) else {
        return Outcome::Dropped(row.id);
    };
    let Ok(url) = url::Url::parse(&row.target) else {
        return Outcome::Dropped(row.id);
    };
    if let Err(reason) = allow::check(
        &shared.cfg.websub,
        &url,
        Duration::from_millis(shared.cfg.delivery.timeout_ms),
    )
    .await
    {
        return failed(row, reason);
    }
    let topic_url = shared.cfg.feed_url(&row.topic);
    let mut links: Vec<String> = shared
        .cfg
        .advertised_hubs()
        .iter()
        .map(|h| format!("<{h}>; rel=\"hub\""))
        .collect();
    links.push(format!("<{topic_url}>; rel=\"self\""));
    let mut req = shared
        .callback_client
        .post(url)
        .header("Content-Type", doc.kind.content_type())
        .header("Link", links.join(", "))
        .body(doc.body.clone());
    if let Some(secret) = secret {
        let sig = partner::hmac_hex(secret.as_bytes(), &[&doc.body]);
        req = req.header("X-Hub-Signature", format!("sha256={sig}"));
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(row.id),
        Ok(resp) if resp.status() == reqwest::StatusCode::GONE => {
            tracing::info!(topic = %topic_url, "subscriber answered 410 Gone: subscription ended");
            Outcome::Gone {
                id: row.id,
                topic_url,
                callback: row.target,
            }
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            failed(row, format!("HTTP {status}"))
        }
        Err(e) => failed(row, describe(e)),
    }
}

/// Publish ping to an external hub (WS-P03): form-encoded `hub.mode=publish`
/// with the topic in each configured parameter.
async fn send_hub_ping(shared: &Shared, row: Row) -> Outcome {
    let topic_url = shared.cfg.feed_url(&row.topic);
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("hub.mode", "publish");
        for p in &shared.cfg.websub.ping_params {
            form.append_pair(p, &topic_url);
        }
        form.finish()
    };
    let req = shared
        .client
        .post(&row.target)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(row.id),
        Ok(resp) => {
            let status = resp.status().as_u16();
            failed(row, format!("HTTP {status}"))
        }
        Err(e) => failed(row, describe(e)),
    }
}

/// Legacy `weblogUpdates.ping` (PING-01, PING-03): site name and URL.
async fn send_xmlrpc_ping(shared: &Shared, row: Row) -> Outcome {
    let name: String = shared.cfg.site.title.chars().take(1024).collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<methodCall><methodName>weblogUpdates.ping</methodName><params><param><value><string>{}</string></value></param><param><value><string>{}</string></value></param></params></methodCall>\n",
        crate::html::escape_html(&name),
        crate::html::escape_html(&shared.cfg.site.base_url)
    );
    let req = shared
        .client
        .post(&row.target)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body);
    match req.send().await {
        Ok(resp) if resp.status().is_success() => {
            let text = resp.text().await.unwrap_or_default();
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains("<fault>")
                || compact.contains("<name>flerror</name><value><boolean>1</boolean>")
            {
                failed(row, "ping server answered flerror/fault")
            } else {
                Outcome::Delivered(row.id)
            }
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            failed(row, format!("HTTP {status}"))
        }
        Err(e) => failed(row, describe(e)),
    }
}

/// A signed single-entry document to a partner.
async fn send_partner(shared: &Shared, row: Row) -> Outcome {
    let Some(p) = shared.cfg.partners.iter().find(|p| p.name == row.target) else {
        return Outcome::Dead {
            id: row.id,
            error: "partner no longer configured".into(),
        };
    };
    let body = row.body.clone().unwrap_or_default();
    let ts = chrono::Utc::now().timestamp();
    let mut req = shared
        .client
        .post(&p.url)
        .header("Content-Type", &row.content_type)
        .header("X-Feedwire-Timestamp", ts.to_string())
        .header(
            "X-Feedwire-Signature",
            partner::signature(&p.secret, ts, &body),
        )
        .header("Idempotency-Key", &row.idem);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(row.id),
        Ok(resp) => {
            let status = resp.status().as_u16();
            tracing::debug!(partner = %p.name, article = %row.article, status, "partner delivery failed; will retry");
            failed(row, format!("HTTP {status}"))
        }
        Err(e) => failed(row, describe(e)),
    }
}
