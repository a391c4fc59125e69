//! The delivery worker: takes due rows from the outbox, sends them with
//! bounded concurrency, and records outcomes in batches.
//!
//! One dispatcher task owns its own catalog connection. It wakes on the commit
//! hook's nudge, on the Store's "path changed" announcements (which open the
//! gates of rows waiting for a new document), when a send finishes, and on a
//! short tick (retries, lease expiry). Sends run as separate tasks, at most
//! `delivery.websub_concurrency` for WebSub/hub/ping rows and `concurrency`
//! per partner, so a slow partner never holds up anyone else; a configured
//! target that failed is paused as a whole (see [`super::health`]).
//!
//! With several instances on one catalog, each worker *claims* the rows it
//! takes (for `cluster.claim_secs`): the others skip them, so deliveries
//! spread over the instances and none is sent twice at once; a row whose
//! claimer died goes back to the queue when the claim ends, or sooner, once
//! that instance has not been seen for a lease (`catalog::Catalog::heartbeat`).
//!
//! Every request has the `delivery.timeout_ms` timeout, and an answer is
//! read only as far as needed ([`super::reply`]): the status, the start of
//! the body when it failed, an XML-RPC reply up to `delivery.max_reply_bytes`.

use super::health::Health;
use super::outbox::{self, Kind, Outcome, Row};
use super::{Claimant, Shared};
use super::{allow, indexnow, partner, reply, xmlrpc};
use crate::catalog::{Catalog, DueFilter};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Gated rows go anyway after this long without an announcement.
const GATE_PATIENCE_MS: i64 = 10_000;
const TICK: Duration = Duration::from_millis(500);
/// At shutdown, sends in flight get this long to finish and be recorded.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// What is being sent right now. Concurrency is semaphores: a send task
/// holds its permits and gives them back when it ends, however it ends.
/// Every table here is bounded by the number of sends in flight.
struct InFlight {
    rows: HashSet<i64>,
    /// WebSub, hub and ping sends (`delivery.websub_concurrency`).
    websub: Arc<Semaphore>,
    /// Sends per partner (`concurrency` of each).
    partners: HashMap<String, Arc<Semaphore>>,
    /// WebSub callbacks with a delivery on its way: one at a time each, so a
    /// slow callback holds one slot, and its later rows wait (merged).
    callbacks: HashSet<String>,
    /// Deliveries on their way per subscriber client (the address that
    /// subscribed), at most `websub.max_deliveries_in_flight_per_client`:
    /// one requester's slow callbacks cannot take every slot. An entry goes
    /// when its client has nothing on the way.
    clients: HashMap<String, Arc<Semaphore>>,
    per_client: usize,
    /// IndexNow endpoints with a submission on its way: one at a time
    /// each (it carries every URL waiting for the endpoint).
    indexnow: HashSet<String>,
}

impl InFlight {
    fn new(cfg: &crate::config::Config) -> InFlight {
        InFlight {
            rows: HashSet::new(),
            websub: Arc::new(Semaphore::new(cfg.delivery.websub_concurrency)),
            partners: cfg
                .partners
                .iter()
                .map(|p| (p.name.clone(), Arc::new(Semaphore::new(p.concurrency))))
                .collect(),
            callbacks: HashSet::new(),
            clients: HashMap::new(),
            per_client: cfg.websub.max_deliveries_in_flight_per_client,
            indexnow: HashSet::new(),
        }
    }

    /// Sends that could start now.
    fn free(&self) -> usize {
        self.websub.available_permits()
            + self
                .partners
                .values()
                .map(|s| s.available_permits())
                .sum::<usize>()
    }

    fn client(&mut self, client: &str) -> Arc<Semaphore> {
        let per_client = self.per_client;
        self.clients
            .entry(client.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(per_client)))
            .clone()
    }
}

/// A finished send, reported back to the dispatcher.
struct Done {
    kind: Kind,
    target: String,
    /// The subscriber client of a WebSub delivery.
    client: Option<String>,
    outcome: Outcome,
    /// The other rows the same request carried (an IndexNow submission).
    others: Vec<Outcome>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut catalog: Catalog,
    claimant: Claimant,
    stop: CancellationToken,
) {
    let claim_ms = claimant.length.as_millis() as i64;
    let mut changed = shared.store.subscribe();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut busy = InFlight::new(&shared.cfg);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut health = Health::new(shared.cfg.clone(), shared.metrics.clone());
    loop {
        let mut paths: Vec<String> = Vec::new();
        let mut lagged = false;
        let mut ticked = false;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = shared.wake.notified() => {}
            r = changed.recv() => match r {
                Ok(p) => paths.push(p),
                Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                Err(broadcast::error::RecvError::Closed) => {}
            },
            Some(d) = done_rx.recv() => finish(d, &mut busy, &mut outcomes, &mut health),
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
            finish(d, &mut busy, &mut outcomes, &mut health);
        }
        let now = outbox::now_ms();
        // The step may wait on the catalog's write lock while the pipeline
        // commits a large batch; let the runtime move the HTTP server's work
        // off this thread meanwhile.
        let step = tokio::task::block_in_place(|| -> anyhow::Result<()> {
            for gave_up in outbox::apply(&mut catalog, &shared.cfg, &outcomes, &busy.rows)? {
                health.gave_up(&gave_up);
            }
            outcomes.clear();
            if lagged {
                catalog.open_all_gates()?;
            }
            for p in &paths {
                catalog.open_gate(p)?;
            }
            if ticked {
                catalog.open_stale_gates(now - GATE_PATIENCE_MS)?;
                let gone = catalog.purge_expired_subscriptions(now / 1000)?;
                if gone > 0 {
                    tracing::info!(subscriptions = gone, "websub leases ended");
                }
                let (pending, dead) = catalog.outbox_backlog()?;
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
            catalog.expand_fanouts(&crate::site::feed_url(&shared.cfg, ""), now, &busy.rows)?;
            let free = busy.free();
            if free == 0 {
                return Ok(());
            }
            // Rows that could not go now are left out of the query, so that
            // a backlog for one busy receiver never hides everyone else's.
            let blocked = health.blocked(now);
            let mut skip = DueFilter {
                targets: blocked.iter().map(String::as_str).collect(),
                clients: Vec::new(),
                topic_prefix: crate::site::feed_url(&shared.cfg, ""),
                in_flight: busy.rows.iter().copied().collect(),
            };
            for (name, slots) in &busy.partners {
                if slots.available_permits() == 0 {
                    skip.targets.push(name);
                }
            }
            skip.targets
                .extend(busy.callbacks.iter().map(String::as_str));
            skip.targets
                .extend(busy.indexnow.iter().map(String::as_str));
            skip.clients.extend(
                busy.clients
                    .iter()
                    .filter(|(_, slots)| slots.available_permits() == 0)
                    .map(|(c, _)| c.as_str()),
            );
            let rows =
                catalog.claim_due_deliveries(now, free, &skip, &claimant.token, now + claim_ms)?;
            drop(skip);
            if !rows.is_empty() {
                tracing::debug!(rows = rows.len(), "claimed deliveries");
            }
            let claimed: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let outcomes_before = outcomes.len();
            for row in rows {
                if busy.rows.contains(&row.id) || !health.may_send(row.kind, &row.target, now) {
                    continue;
                }
                if row.kind == Kind::IndexNow {
                    // One due URL sends every URL waiting for its endpoint.
                    if busy.indexnow.contains(&row.target) {
                        continue;
                    }
                    let Ok(permit) = busy.websub.clone().try_acquire_owned() else {
                        continue;
                    };
                    let rows = catalog
                        .indexnow_batch(&row.target, shared.cfg.indexnow.max_urls_per_request)?;
                    if rows.is_empty() {
                        continue;
                    }
                    busy.rows.extend(rows.iter().map(|r| r.id));
                    busy.indexnow.insert(row.target.clone());
                    health.sending(row.kind, &row.target);
                    let shared = shared.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let mut outcomes = indexnow::send(&shared, rows).await.into_iter();
                        drop(permit);
                        if let Some(outcome) = outcomes.next() {
                            let _ = done.send(Done {
                                kind: Kind::IndexNow,
                                target: row.target,
                                client: None,
                                outcome,
                                others: outcomes.collect(),
                            });
                        }
                    });
                    continue;
                }
                let mut client = None;
                // The permits this send holds until it ends.
                let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
                let secret = match row.kind {
                    Kind::Partner => {
                        let Some(slots) = busy.partners.get(&row.target) else {
                            outcomes.push(Outcome::Dead {
                                id: row.id,
                                error: "partner no longer configured".into(),
                            });
                            continue;
                        };
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            continue;
                        };
                        permits.push(permit);
                        None
                    }
                    _ => {
                        let Ok(permit) = busy.websub.clone().try_acquire_owned() else {
                            continue;
                        };
                        permits.push(permit);
                        let mut secret = None;
                        if row.kind == Kind::WebSub {
                            if busy.callbacks.contains(&row.target) {
                                continue;
                            }
                            let url = crate::site::feed_url(&shared.cfg, &row.topic);
                            let Some(sub) =
                                catalog.active_subscription(&url, &row.target, now / 1000)?
                            else {
                                outcomes.push(Outcome::Dropped(row.id));
                                continue;
                            };
                            // Subscriptions older than the client column have
                            // none and are not limited per client.
                            if !sub.client.is_empty() {
                                let Ok(permit) = busy.client(&sub.client).try_acquire_owned()
                                else {
                                    continue;
                                };
                                permits.push(permit);
                                client = Some(sub.client);
                            }
                            busy.callbacks.insert(row.target.clone());
                            secret = sub.secret;
                        }
                        secret
                    }
                };
                busy.rows.insert(row.id);
                health.sending(row.kind, &row.target);
                let shared = shared.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let kind = row.kind;
                    let target = row.target.clone();
                    let outcome = send(&shared, row, secret).await;
                    drop(permits);
                    let _ = done.send(Done {
                        kind,
                        target,
                        client,
                        outcome,
                        others: Vec::new(),
                    });
                });
            }
            // Rows claimed that could not start after all (a partner's
            // slots filled up within this step) go back at once, rather than
            // waiting out their claim.
            let decided: HashSet<i64> = outcomes[outcomes_before..]
                .iter()
                .map(Outcome::id)
                .collect();
            let unstarted: Vec<i64> = claimed
                .into_iter()
                .filter(|id| !busy.rows.contains(id) && !decided.contains(id))
                .collect();
            catalog.give_back_deliveries(&claimant.token, &unstarted)?;
            for gave_up in outbox::apply(&mut catalog, &shared.cfg, &outcomes, &busy.rows)? {
                health.gave_up(&gave_up);
            }
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
    // Shutting down: no new rows; sends already on their way get a moment
    // to finish, and what they achieved is recorded, so a delivered row is
    // not sent again after the restart.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN;
    while !busy.rows.is_empty() {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(d)) => finish(d, &mut busy, &mut outcomes, &mut health),
            _ => break,
        }
    }
    let recorded = tokio::task::block_in_place(|| {
        outbox::apply(&mut catalog, &shared.cfg, &outcomes, &busy.rows)
    });
    if let Err(e) = recorded {
        tracing::warn!(error = %format!("{e:#}"), "could not record the last deliveries; they will be sent again");
    }
    // Rows taken and not finished: another instance may send them now
    // rather than when the claims run out.
    if let Err(e) = tokio::task::block_in_place(|| catalog.release_claims(&claimant.token)) {
        tracing::warn!(error = %format!("{e:#}"), "could not give back unfinished deliveries; other instances take them when their claims end");
    }
    tracing::debug!(
        in_flight = busy.rows.len(),
        "delivery worker stopped; unfinished deliveries stay queued"
    );
}

fn finish(done: Done, busy: &mut InFlight, outcomes: &mut Vec<Outcome>, health: &mut Health) {
    let Done {
        kind,
        target,
        client,
        outcome,
        others,
    } = done;
    // One attempt, however many rows it carried.
    health.attempt(kind, &target, &outcome);
    for o in std::iter::once(&outcome).chain(&others) {
        busy.rows.remove(&row_id(o));
    }
    match kind {
        Kind::WebSub => {
            busy.callbacks.remove(&target);
        }
        Kind::IndexNow => {
            busy.indexnow.remove(&target);
        }
        _ => {}
    }
    // The send gave its permits back as it ended; a client with nothing on
    // the way is forgotten.
    if let Some(c) = client
        && busy
            .clients
            .get(&c)
            .is_some_and(|slots| slots.available_permits() == busy.per_client)
    {
        busy.clients.remove(&c);
    }
    outcomes.push(outcome);
    outcomes.extend(others);
}

fn row_id(outcome: &Outcome) -> i64 {
    match outcome {
        Outcome::Delivered(id) | Outcome::Dropped(id) => *id,
        Outcome::Gone { id, .. } | Outcome::Dead { id, .. } => *id,
        Outcome::Failed { row, .. } => row.id,
    }
}

fn failed(row: Row, error: impl Into<String>) -> Outcome {
    Outcome::Failed {
        row: Box::new(row),
        error: error.into(),
        retry_after_ms: None,
        permanent: false,
    }
}

/// An attempt answered with a non-2xx status: the status, the start of the
/// answer, and its `Retry-After`. `permanent` when sending the same request
/// again cannot help.
async fn refused(row: Row, resp: reqwest::Response, permanent: bool) -> Outcome {
    let retry_after_ms = reply::retry_after_ms(&resp);
    Outcome::Failed {
        row: Box::new(row),
        error: reply::describe_failure(resp).await,
        retry_after_ms,
        permanent,
    }
}

/// A 4xx other than 408 (timeout), 425 (too early) and 429 (rate limit):
/// the receiver refuses this request as made.
fn is_refusal(status: reqwest::StatusCode) -> bool {
    status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429)
}

/// A reqwest error without the URL (it may carry tokens).
pub(super) fn describe(e: reqwest::Error) -> String {
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
        // Fan-outs are expanded, IndexNow rows sent in batches, never here.
        Kind::Fanout | Kind::IndexNow => Outcome::Dropped(row.id),
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
    let timeout = Duration::from_millis(shared.cfg.delivery.timeout_ms);
    if let Err(reason) = allow::check(&shared.cfg.websub, &url, timeout).await {
        return failed(row, reason);
    }
    let topic_url = crate::site::feed_url(&shared.cfg, &row.topic);
    let mut links: Vec<String> = crate::site::advertised_hubs(&shared.cfg)
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
        Ok(resp) => refused(row, resp, false).await,
        Err(e) => failed(row, describe(e)),
    }
}

/// Publish ping to an external hub (WS-P03): form-encoded `hub.mode=publish`
/// with the topic in each configured parameter.
async fn send_hub_ping(shared: &Shared, row: Row) -> Outcome {
    let topic_url = crate::site::feed_url(&shared.cfg, &row.topic);
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
    // A hub that refuses the ping (4xx) will refuse it again: the next feed
    // change pings anew, so give up at once (logged with its answer).
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(row.id),
        Ok(resp) => {
            let permanent = is_refusal(resp.status());
            refused(row, resp, permanent).await
        }
        Err(e) => failed(row, describe(e)),
    }
}

/// Legacy `weblogUpdates.ping` (PING-01, PING-03): site name and URL.
async fn send_xmlrpc_ping(shared: &Shared, row: Row) -> Outcome {
    let name: String = shared.cfg.site.title.chars().take(1024).collect();
    let body = match xmlrpc::ping_request(&name, &shared.cfg.site.base_url) {
        Ok(b) => b,
        Err(e) => return failed(row, format!("cannot write the ping: {e:#}")),
    };
    let req = shared
        .client
        .post(&row.target)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body);
    match req.send().await {
        Ok(mut resp) if resp.status().is_success() => {
            // A real reply is a few hundred bytes; a fault is never further in.
            let text =
                match reply::read_capped(&mut resp, shared.cfg.delivery.max_reply_bytes).await {
                    Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => return failed(row, format!("reading the reply: {}", describe(e))),
                };
            match xmlrpc::reply_is_fault(text.as_bytes()) {
                Ok(false) => Outcome::Delivered(row.id),
                fault => {
                    let start: String = reply::printable(text.as_bytes())
                        .chars()
                        .take(reply::SNIPPET_BYTES)
                        .collect();
                    let what = if fault.is_ok() {
                        "answered flerror/fault"
                    } else {
                        "answered something that is not XML-RPC"
                    };
                    failed(row, format!("ping server {what}: {start}"))
                }
            }
        }
        Ok(resp) => {
            let permanent = is_refusal(resp.status());
            refused(row, resp, permanent).await
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
    let Some(url) = &p.url else {
        return Outcome::Dead {
            id: row.id,
            error: "partner has no url any more (it only pulls)".into(),
        };
    };
    let body = row.body.clone().unwrap_or_default();
    let ts = chrono::Utc::now().timestamp();
    let mut req = shared
        .client
        .post(url)
        .header("Content-Type", &row.content_type)
        .header("X-Feedwire-Timestamp", ts.to_string())
        .header(
            "X-Feedwire-Signature",
            partner::signature(&p.secret, ts, &body),
        )
        .header("Idempotency-Key", &row.idempotency_key);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(row.id),
        // Retried even after a 4xx: a partner's refusal (expired token,
        // rejected document) is fixed on their side or ours, and the dead
        // letter after delivery.partner_give_up_secs keeps it for redelivery.
        Ok(resp) => refused(row, resp, false).await,
        Err(e) => failed(row, describe(e)),
    }
}
