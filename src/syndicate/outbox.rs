//! The outbox's policy: which deliveries a change causes, and what an
//! attempt's outcome means (retry when, give up when). The rows themselves
//! live in the catalog (see `catalog::outbox`), written in the same
//! transaction as the change that caused them and removed only once
//! delivered (or, for partners, parked as a dead letter after the give-up age).
//!
//! Row kinds:
//! - `fanout`: "feed <topic> changed" for the built-in hub; expanded into one
//!   `websub` row per active subscriber once the Store has the new document.
//! - `websub`: deliver the current document of `topic` to callback `target`.
//! - `hub`: publish ping for `topic` to the external hub `target`.
//! - `ping`: legacy XML-RPC `weblogUpdates.ping` to server `target`.
//! - `partner`: the rendered single-entry `body` for partner `target`.
//! - `indexnow`: article page URL `topic` for IndexNow endpoint `target`;
//!   due after the batching window, then sent with every other URL waiting
//!   for that endpoint in one request.
//!
//! Rows about a feed (`fanout`, `hub`, `ping`) start *gated* (`ready = 0`):
//! they wait until the Store announces the new version of their topic, so a
//! hub or subscriber never fetches the previous one.

use super::partner;
use crate::catalog::{Catalog, Change, FeedKey, NewDelivery, OutboxUpdate};
use crate::config::Config;
use crate::render::{DocKind, FeedInfo};
use anyhow::Result;
use std::collections::{BTreeSet, HashSet};

pub(crate) use crate::catalog::DeliveryKind as Kind;
/// One delivery taken from the outbox.
pub(crate) type Row = crate::catalog::OutboxRow;

/// What one attempt gave.
#[derive(Debug)]
pub(crate) enum Outcome {
    Delivered(i64),
    /// 410 Gone from a WebSub subscriber: the subscription ends.
    Gone {
        id: i64,
        topic_url: String,
        callback: String,
    },
    /// Nothing to do any more (subscription ended, feed gone).
    Dropped(i64),
    Failed {
        row: Box<Row>,
        /// `HTTP <status>: <start of the answer>`, or what went wrong.
        error: String,
        /// The receiver's `Retry-After`, when it gave one.
        retry_after_ms: Option<i64>,
        /// Sending the same request again cannot help (a ping refused with
        /// a 4xx): give up now instead of retrying.
        permanent: bool,
    },
    /// Will never succeed as configured (partner removed): dead letter now.
    Dead {
        id: i64,
        error: String,
    },
}

impl Outcome {
    /// The outbox row it is about.
    pub(crate) fn id(&self) -> i64 {
        match self {
            Outcome::Delivered(id) | Outcome::Dropped(id) => *id,
            Outcome::Gone { id, .. } | Outcome::Dead { id, .. } => *id,
            Outcome::Failed { row, .. } => row.id,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The published paths of the feeds a batch touched (every format).
pub(crate) fn topic_paths(cfg: &Config, affected: &BTreeSet<FeedKey>) -> Vec<String> {
    let mut out = Vec::new();
    for key in affected {
        let info = FeedInfo::new(cfg, key.clone(), None);
        for kind in DocKind::FEEDS {
            out.push(info.path(kind));
        }
    }
    out
}

/// The commit hook's work: every delivery a batch causes, to be queued in
/// the batch's own transaction.
pub(crate) fn deliveries(
    cfg: &Config,
    affected: &BTreeSet<FeedKey>,
    changes: &[Change],
) -> Result<Vec<NewDelivery>> {
    let mut out = Vec::new();
    let paths = topic_paths(cfg, affected);
    let feed = |kind: Kind, target: &str, topic: &str| NewDelivery::Feed {
        kind,
        target: target.to_string(),
        topic: topic.to_string(),
    };
    if crate::site::hub_url(cfg).is_some() {
        for path in &paths {
            out.push(feed(Kind::Fanout, "", path));
        }
    }
    for hub in &cfg.websub.hubs {
        for path in &paths {
            out.push(feed(Kind::Hub, hub, path));
        }
    }
    if !paths.is_empty() {
        // The main feed changes with every article: its path gates the ping.
        let main = FeedInfo::new(cfg, FeedKey::Main, None).path(DocKind::Rss);
        for server in &cfg.websub.ping_servers {
            out.push(feed(Kind::Ping, server, &main));
        }
    }
    out.extend(super::indexnow::deliveries(cfg, changes));
    for change in changes {
        for p in &cfg.partners {
            if !partner::wants(p, change) {
                continue;
            }
            let doc = partner::document(cfg, p, change, chrono::Utc::now())?;
            out.push(NewDelivery::Partner {
                partner: p.name.clone(),
                article: change.id().to_string(),
                body: doc.body,
                content_type: doc.content_type,
                idempotency_key: doc.idempotency_key,
            });
        }
    }
    Ok(out)
}

/// Retry delay after `attempts` failures: exponential, capped, with jitter
/// (a random 50–100 % of the step) so a recovering endpoint is not hit by
/// every queued delivery at once.
pub(crate) fn backoff_ms(cfg: &Config, attempts: i64) -> i64 {
    let base = cfg.delivery.retry_base_ms as f64;
    let step =
        (base * 2f64.powi(attempts.clamp(0, 40) as i32)).min(cfg.delivery.retry_max_ms as f64);
    (step * rand::random_range(0.5..=1.0)) as i64
}

/// A delivery that will not be tried again (the caller logs it).
#[derive(Debug)]
pub(crate) struct GaveUp {
    pub kind: Kind,
    pub target: String,
    pub topic: String,
    pub article: String,
    pub attempts: i64,
    pub error: String,
    /// Became a dead letter (partners) rather than being dropped.
    pub dead_letter: bool,
}

/// Record attempt outcomes, in one transaction; returns the deliveries given
/// up. `in_flight` are rows being sent right now (never merged away).
///
/// A failed WebSub delivery or ping that will be retried also folds other
/// rows waiting for the same receiver and topic into it: such a row carries
/// no document of its own (it sends or announces the current one when it
/// goes), so without this a receiver that keeps failing would collect a row
/// per feed change until the give-up age.
pub(crate) fn apply(
    catalog: &mut Catalog,
    cfg: &Config,
    outcomes: &[Outcome],
    in_flight: &HashSet<i64>,
) -> Result<Vec<GaveUp>> {
    let mut gave_up = Vec::new();
    if outcomes.is_empty() {
        return Ok(gave_up);
    }
    let now = now_ms();
    let mut updates = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        updates.push(match o {
            Outcome::Delivered(id) | Outcome::Dropped(id) => OutboxUpdate::Remove(*id),
            Outcome::Gone {
                id,
                topic_url,
                callback,
            } => OutboxUpdate::EndSubscription {
                id: *id,
                topic_url: topic_url.clone(),
                callback: callback.clone(),
            },
            Outcome::Dead { id, error } => OutboxUpdate::DeadLetter {
                id: *id,
                error: error.clone(),
            },
            Outcome::Failed {
                row,
                error,
                retry_after_ms,
                permanent,
            } => {
                let give_up_secs = match row.kind {
                    Kind::Partner => cfg.delivery.partner_give_up_secs,
                    Kind::IndexNow => cfg.indexnow.give_up_secs,
                    _ => cfg.websub.give_up_secs,
                };
                let age = now - row.created_ms;
                if *permanent || age >= give_up_secs as i64 * 1000 {
                    let dead_letter = row.kind == Kind::Partner;
                    gave_up.push(GaveUp {
                        kind: row.kind,
                        target: row.target.clone(),
                        topic: row.topic.clone(),
                        article: row.article.clone(),
                        attempts: row.attempts + 1,
                        error: error.clone(),
                        dead_letter,
                    });
                    if dead_letter {
                        OutboxUpdate::DeadLetter {
                            id: row.id,
                            error: error.clone(),
                        }
                    } else {
                        // WebSub: the subscription stays; later updates are still delivered (WS-H15).
                        OutboxUpdate::Remove(row.id)
                    }
                } else {
                    let wait = backoff_ms(cfg, row.attempts).max(
                        retry_after_ms
                            .unwrap_or(0)
                            .min(cfg.delivery.retry_max_ms as i64),
                    );
                    OutboxUpdate::Retry {
                        id: row.id,
                        next_ms: now + wait,
                        error: error.clone(),
                        merge: row.kind != Kind::Partner,
                    }
                }
            }
        });
    }
    catalog.update_outbox(&updates, in_flight)?;
    Ok(gave_up)
}
