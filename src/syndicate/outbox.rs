//! The outbox: every pending delivery, in the catalog database, written in the
//! same transaction as the change that caused it and removed only once
//! delivered (or, for partners, parked as a dead letter after the give-up age).
//!
//! Row kinds:
//! - `fanout`: "feed <topic> changed" for the built-in hub; expanded into one
//!   `websub` row per active subscriber once the Store has the new document.
//! - `websub`: deliver the current document of `topic` to callback `target`.
//! - `hub`: publish ping for `topic` to the external hub `target`.
//! - `ping`: legacy XML-RPC `weblogUpdates.ping` to server `target`.
//! - `partner`: the rendered single-entry `body` for partner `target`.
//!
//! Rows about a feed (`fanout`, `hub`, `ping`) start *gated* (`ready = 0`):
//! they wait until the Store announces the new version of their topic, so a
//! hub or subscriber never fetches the previous one.

use super::partner;
use crate::catalog::{Change, FeedKey, NewDelivery, write_transaction};
use crate::config::Config;
use crate::render::{DocKind, FeedInfo};
use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeSet, HashSet};

pub(crate) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    create_tables(conn)?;
    // Catalogs made before subscriptions recorded their client.
    if !has_column(conn, "syndicate_subscriptions", "client")?
        && let Err(e) = conn.execute_batch(
            "ALTER TABLE syndicate_subscriptions ADD COLUMN client TEXT NOT NULL DEFAULT ''",
        )
        // Another connection may have added it meanwhile.
        && !has_column(conn, "syndicate_subscriptions", "client")?
    {
        return Err(e);
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS syndicate_subscriptions_client ON syndicate_subscriptions(client);",
    )
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |r| r.get(0),
    )
}

fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "
        CREATE TABLE IF NOT EXISTS syndicate_outbox (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            kind         TEXT NOT NULL,
            target       TEXT NOT NULL,
            topic        TEXT NOT NULL DEFAULT '',
            article      TEXT NOT NULL DEFAULT '',
            body         BLOB,
            content_type TEXT NOT NULL DEFAULT '',
            idem         TEXT NOT NULL DEFAULT '',
            ready        INTEGER NOT NULL,
            state        TEXT NOT NULL DEFAULT 'pending',
            created_ms   INTEGER NOT NULL,
            next_ms      INTEGER NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS syndicate_outbox_due ON syndicate_outbox(state, ready, next_ms);
        CREATE INDEX IF NOT EXISTS syndicate_outbox_order ON syndicate_outbox(kind, target, article, id);
        CREATE INDEX IF NOT EXISTS syndicate_outbox_topic ON syndicate_outbox(topic, ready);
        CREATE TABLE IF NOT EXISTS syndicate_subscriptions (
            topic       TEXT NOT NULL,
            callback    TEXT NOT NULL,
            secret      TEXT,
            lease_secs  INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL,
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (topic, callback)
        );
        -- Subscribe requests accepted and not yet verified: each holds a
        -- place under the subscription limits until it is verified or not.
        CREATE TABLE IF NOT EXISTS syndicate_verifying (
            id          INTEGER PRIMARY KEY,
            topic       TEXT NOT NULL,
            callback    TEXT NOT NULL,
            client      TEXT NOT NULL,
            created_at  INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS syndicate_verifying_topic ON syndicate_verifying(topic);
        CREATE INDEX IF NOT EXISTS syndicate_verifying_client ON syndicate_verifying(client);
        ",
    )
}

pub(crate) use crate::catalog::DeliveryKind as Kind;

/// One delivery taken from the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: i64,
    pub kind: Kind,
    pub target: String,
    pub topic: String,
    pub article: String,
    pub body: Option<Vec<u8>>,
    pub content_type: String,
    pub idem: String,
    pub created_ms: i64,
    pub attempts: i64,
}

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
    if cfg.hub_url().is_some() {
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

/// The Store has a new version of `path`: its gated rows may go.
pub(crate) fn open_gate(conn: &Connection, path: &str) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE syndicate_outbox SET ready = 1 WHERE ready = 0 AND topic = ?1",
        [path],
    )?)
}

/// Gated rows older than `age_ms` go anyway (the document did not change
/// bytes, so no announcement will come; or it was missed).
pub(crate) fn open_stale_gates(conn: &Connection, now: i64, age_ms: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE syndicate_outbox SET ready = 1 WHERE ready = 0 AND created_ms < ?1",
        [now - age_ms],
    )?)
}

/// Every gate (after a lagged announcement channel).
pub(crate) fn open_all_gates(conn: &Connection) -> Result<usize> {
    Ok(conn.execute("UPDATE syndicate_outbox SET ready = 1 WHERE ready = 0", [])?)
}

/// Turn ready `fanout` rows into one `websub` row per active subscriber.
pub(crate) fn expand_fanouts(
    conn: &mut Connection,
    cfg: &Config,
    now: i64,
    in_flight: &HashSet<i64>,
) -> Result<usize> {
    let tx = write_transaction(conn)?;
    let fanouts: Vec<(i64, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, topic FROM syndicate_outbox WHERE kind = 'fanout' AND ready = 1 AND state = 'pending'",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut n = 0;
    for (id, path) in &fanouts {
        // A subscriber that already has a delivery of this topic waiting
        // (not on its way) gets no second row: when it goes it sends the
        // then-current document. With one delivery on its way per callback
        // (see `deliver`), a subscriber holds at most two rows per topic,
        // however often the feed changes and however slow its callback.
        let sql = format!(
            "INSERT INTO syndicate_outbox(kind, target, topic, ready, created_ms, next_ms)
             SELECT 'websub', s.callback, ?1, 1, ?3, ?3 FROM syndicate_subscriptions s
             WHERE s.topic = ?2 AND s.expires_at > ?4
               AND NOT EXISTS (SELECT 1 FROM syndicate_outbox o
                               WHERE o.kind = 'websub' AND o.target = s.callback AND o.topic = ?1
                                 AND o.state = 'pending' AND o.ready = 1 {})",
            not_in("o.id", in_flight)
        );
        n += tx.execute(&sql, params![path, cfg.feed_url(path), now, now / 1000])?;
        tx.execute("DELETE FROM syndicate_outbox WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(n)
}

/// `AND <column> NOT IN (…)` for a set of row ids (integers, written
/// inline), or nothing for an empty set.
fn not_in(column: &str, ids: &HashSet<i64>) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("AND {column} NOT IN ({})", list.join(","))
}

/// Rows [`due`] leaves out: they could not be sent now anyway.
pub(crate) struct Skip<'a> {
    /// Targets that are busy or paused.
    pub targets: Vec<&'a str>,
    /// Subscriber clients with their share of deliveries on the way.
    pub clients: Vec<&'a str>,
    /// `<base_url>/feeds/`: a row's topic path under it is the
    /// subscription's topic URL.
    pub topic_prefix: String,
}

/// Due rows, oldest first. A partner row is due only when it is the oldest
/// row left for its (partner, article): update N+1 never overtakes N.
pub(crate) fn due(conn: &Connection, now: i64, limit: usize, skip: &Skip<'_>) -> Result<Vec<Row>> {
    let mut values: Vec<rusqlite::types::Value> = vec![now.into(), (limit as i64).into()];
    let mut placeholders = |items: &[&str]| -> String {
        let mut marks = Vec::with_capacity(items.len());
        for item in items {
            values.push(item.to_string().into());
            marks.push(format!("?{}", values.len()));
        }
        marks.join(",")
    };
    let mut filter = String::new();
    if !skip.targets.is_empty() {
        filter.push_str(&format!(
            " AND o.target NOT IN ({})",
            placeholders(&skip.targets)
        ));
    }
    if !skip.clients.is_empty() {
        let clients = placeholders(&skip.clients);
        let prefix = placeholders(&[skip.topic_prefix.as_str()]);
        filter.push_str(&format!(
            " AND (o.kind != 'websub' OR NOT EXISTS (
                SELECT 1 FROM syndicate_subscriptions s
                WHERE s.topic = {prefix} || o.topic AND s.callback = o.target AND s.client IN ({clients})))"
        ));
    }
    let sql = format!(
        "SELECT o.id, o.kind, o.target, o.topic, o.article, o.body, o.content_type, o.idem, o.created_ms, o.attempts
         FROM syndicate_outbox o
         WHERE o.state = 'pending' AND o.ready = 1 AND o.next_ms <= ?1 AND o.kind != 'fanout'
           AND (o.kind != 'partner' OR NOT EXISTS (
                SELECT 1 FROM syndicate_outbox p
                WHERE p.kind = 'partner' AND p.target = o.target AND p.article = o.article AND p.id < o.id)){filter}
         ORDER BY o.id LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        Ok(Row {
            id: r.get(0)?,
            kind: Kind::parse(&r.get::<_, String>(1)?).unwrap_or(Kind::Fanout),
            target: r.get(2)?,
            topic: r.get(3)?,
            article: r.get(4)?,
            body: r.get(5)?,
            content_type: r.get(6)?,
            idem: r.get(7)?,
            created_ms: r.get(8)?,
            attempts: r.get(9)?,
        })
    })?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|r| r.kind != Kind::Fanout)
        .collect())
}

/// An active subscription as the dispatcher needs it.
pub(crate) struct ActiveSubscription {
    pub secret: Option<String>,
    /// The address that subscribed (`""` for subscriptions made before it
    /// was recorded).
    pub client: String,
}

/// The subscription behind a WebSub row; `None` when it has ended.
pub(crate) fn active_subscription(
    conn: &Connection,
    topic_url: &str,
    callback: &str,
    now_secs: i64,
) -> Result<Option<ActiveSubscription>> {
    Ok(conn
        .query_row(
            "SELECT secret, client FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2 AND expires_at > ?3",
            params![topic_url, callback, now_secs],
            |r| {
                Ok(ActiveSubscription {
                    secret: r.get(0)?,
                    client: r.get(1)?,
                })
            },
        )
        .optional()?)
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
pub(crate) fn apply(
    conn: &mut Connection,
    cfg: &Config,
    outcomes: &[Outcome],
    in_flight: &HashSet<i64>,
) -> Result<Vec<GaveUp>> {
    let mut gave_up = Vec::new();
    if outcomes.is_empty() {
        return Ok(gave_up);
    }
    let now = now_ms();
    let tx = write_transaction(conn)?;
    let mut retried: HashSet<(Kind, String, String)> = HashSet::new();
    {
        let mut delete = tx.prepare_cached("DELETE FROM syndicate_outbox WHERE id = ?1")?;
        let mut dead = tx.prepare_cached(
            "UPDATE syndicate_outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
        )?;
        let mut retry = tx.prepare_cached(
            "UPDATE syndicate_outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
        )?;
        for o in outcomes {
            match o {
                Outcome::Delivered(id) | Outcome::Dropped(id) => {
                    delete.execute([id])?;
                }
                Outcome::Gone {
                    id,
                    topic_url,
                    callback,
                } => {
                    delete.execute([id])?;
                    tx.execute(
                        "DELETE FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2",
                        params![topic_url, callback],
                    )?;
                }
                Outcome::Dead { id, error } => {
                    dead.execute(params![id, error])?;
                }
                Outcome::Failed {
                    row,
                    error,
                    retry_after_ms,
                    permanent,
                } => {
                    let give_up_secs = if row.kind == Kind::Partner {
                        cfg.delivery.partner_give_up_secs
                    } else {
                        cfg.websub.give_up_secs
                    };
                    let age = now - row.created_ms;
                    if *permanent || age >= give_up_secs as i64 * 1000 {
                        let dead_letter = row.kind == Kind::Partner;
                        if dead_letter {
                            dead.execute(params![row.id, error])?;
                        } else {
                            // WebSub: the subscription stays; later updates are still delivered (WS-H15).
                            delete.execute([row.id])?;
                        }
                        gave_up.push(GaveUp {
                            kind: row.kind,
                            target: row.target.clone(),
                            topic: row.topic.clone(),
                            article: row.article.clone(),
                            attempts: row.attempts + 1,
                            error: error.clone(),
                            dead_letter,
                        });
                    } else {
                        let wait = backoff_ms(cfg, row.attempts).max(
                            retry_after_ms
                                .unwrap_or(0)
                                .min(cfg.delivery.retry_max_ms as i64),
                        );
                        retry.execute(params![row.id, now + wait, error])?;
                        if row.kind != Kind::Partner {
                            retried.insert((row.kind, row.target.clone(), row.topic.clone()));
                        }
                    }
                }
            }
        }
    }
    for (kind, target, topic) in &retried {
        merge_waiting(&tx, *kind, target, topic, in_flight)?;
    }
    tx.commit()?;
    Ok(gave_up)
}

/// Keep one waiting row per (kind, target, topic) for WebSub deliveries and
/// pings. Such a row carries no document of its own: whenever it is sent,
/// it sends (or announces) the current one, so a second waiting row only
/// repeats the first. Without this a receiver that keeps failing collects a
/// row per feed change until the give-up age. Rows being sent and rows still
/// waiting for their document (`ready = 0`) are left alone.
fn merge_waiting(
    tx: &rusqlite::Transaction<'_>,
    kind: Kind,
    target: &str,
    topic: &str,
    in_flight: &HashSet<i64>,
) -> Result<()> {
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id FROM syndicate_outbox
             WHERE kind = ?1 AND target = ?2 AND topic = ?3 AND state = 'pending' AND ready = 1
             ORDER BY id",
        )?;
        stmt.query_map(params![kind.as_str(), target, topic], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut delete = tx.prepare_cached("DELETE FROM syndicate_outbox WHERE id = ?1")?;
    // The oldest stays: its age is the one the give-up rule should see.
    for id in ids.iter().filter(|id| !in_flight.contains(id)).skip(1) {
        delete.execute([id])?;
    }
    Ok(())
}

/// Forget subscriptions whose lease has ended.
pub(crate) fn purge_expired(conn: &Connection, now_secs: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM syndicate_subscriptions WHERE expires_at <= ?1",
        [now_secs],
    )?)
}

/// Pending rows (every kind).
pub(crate) fn backlog(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'dead'), 0) FROM syndicate_outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Dead letters of a partner back to pending, due now, with a fresh give-up
/// clock. Returns how many.
pub(crate) fn redeliver(conn: &Connection, partner: &str) -> Result<usize> {
    let now = now_ms();
    Ok(conn.execute(
        "UPDATE syndicate_outbox SET state = 'pending', attempts = 0, next_ms = ?2, created_ms = ?2
         WHERE kind = 'partner' AND target = ?1 AND state = 'dead'",
        params![partner, now],
    )?)
}
