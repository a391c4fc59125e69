//! The outbox and the hub's subscriptions in SQLite.

use super::{Sqlite, write_transaction};
use crate::catalog::DeliveryKind;
use crate::catalog::outbox::{
    ActiveSubscription, DueFilter, LimitHit, OutboxBackend, OutboxRow, OutboxSummary, OutboxUpdate,
    PartnerBacklog, Reservation, Subscription, SubscriptionLimits,
};
use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

/// `AND <column> NOT IN (…)` for a set of row ids (integers, written
/// inline), or nothing for an empty set.
fn not_in(column: &str, ids: &HashSet<i64>) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("AND {column} NOT IN ({})", list.join(","))
}

/// An outbox row (id, kind, target, topic, article, body, content_type,
/// idem, created_ms, attempts).
fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        kind: DeliveryKind::parse(&r.get::<_, String>(1)?).unwrap_or(DeliveryKind::Fanout),
        target: r.get(2)?,
        topic: r.get(3)?,
        article: r.get(4)?,
        body: r.get(5)?,
        content_type: r.get(6)?,
        idempotency_key: r.get(7)?,
        created_ms: r.get(8)?,
        attempts: r.get(9)?,
    })
}

fn is_active(db: &Connection, topic: &str, callback: &str, now: i64) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT count(*) > 0 FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2 AND expires_at > ?3",
        params![topic, callback, now],
        |r| r.get(0),
    )
}

/// Which limit one more subscription would exceed, counting active
/// subscriptions and places reserved by verifications in flight.
fn over_limit(
    db: &Connection,
    limits: SubscriptionLimits,
    topic: &str,
    client: &str,
    now: i64,
) -> rusqlite::Result<Option<LimitHit>> {
    let count = |filter: &str, value: &str| -> rusqlite::Result<usize> {
        let sql = format!(
            "SELECT (SELECT count(*) FROM syndicate_subscriptions WHERE {filter} AND expires_at > ?2)
                  + (SELECT count(*) FROM syndicate_verifying WHERE {filter})"
        );
        let n: i64 = db.query_row(&sql, params![value, now], |r| r.get(0))?;
        Ok(n as usize)
    };
    if count("topic = ?1", topic)? >= limits.per_topic {
        return Ok(Some(LimitHit::Topic));
    }
    if count("client = ?1", client)? >= limits.per_client {
        return Ok(Some(LimitHit::Client));
    }
    let total: i64 = db.query_row(
        "SELECT (SELECT count(*) FROM syndicate_subscriptions WHERE expires_at > ?1)
              + (SELECT count(*) FROM syndicate_verifying)",
        [now],
        |r| r.get(0),
    )?;
    if total as usize >= limits.total {
        return Ok(Some(LimitHit::Total));
    }
    Ok(None)
}

impl OutboxBackend for Sqlite {
    fn open_gate(&self, topic: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE syndicate_outbox SET ready = 1 WHERE ready = 0 AND topic = ?1",
            [topic],
        )?)
    }

    fn open_stale_gates(&self, created_before_ms: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE syndicate_outbox SET ready = 1 WHERE ready = 0 AND created_ms < ?1",
            [created_before_ms],
        )?)
    }

    fn open_all_gates(&self) -> Result<usize> {
        Ok(self
            .conn
            .execute("UPDATE syndicate_outbox SET ready = 1 WHERE ready = 0", [])?)
    }

    fn expand_fanouts(
        &mut self,
        topic_prefix: &str,
        now_ms: i64,
        in_flight: &HashSet<i64>,
    ) -> Result<usize> {
        let tx = write_transaction(&mut self.conn)?;
        let fanouts: Vec<(i64, String)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, topic FROM syndicate_outbox WHERE kind = 'fanout' AND ready = 1 AND state = 'pending'",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut n = 0;
        for (id, path) in &fanouts {
            // With one delivery on its way per callback (syndicate's rule), a
            // subscriber holds at most two rows per topic, however often the
            // feed changes and however slow its callback.
            let sql = format!(
                "INSERT INTO syndicate_outbox(kind, target, topic, ready, created_ms, next_ms)
                 SELECT 'websub', s.callback, ?1, 1, ?3, ?3 FROM syndicate_subscriptions s
                 WHERE s.topic = ?2 AND s.expires_at > ?4
                   AND NOT EXISTS (SELECT 1 FROM syndicate_outbox o
                                   WHERE o.kind = 'websub' AND o.target = s.callback AND o.topic = ?1
                                     AND o.state = 'pending' AND o.ready = 1 {})",
                not_in("o.id", in_flight)
            );
            n += tx.execute(
                &sql,
                params![path, format!("{topic_prefix}{path}"), now_ms, now_ms / 1000],
            )?;
            tx.execute("DELETE FROM syndicate_outbox WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
    ) -> Result<Vec<OutboxRow>> {
        let mut values: Vec<rusqlite::types::Value> = vec![now_ms.into(), (limit as i64).into()];
        let mut placeholders = |items: &[&str]| -> String {
            let mut marks = Vec::with_capacity(items.len());
            for item in items {
                values.push(item.to_string().into());
                marks.push(format!("?{}", values.len()));
            }
            marks.join(",")
        };
        let mut extra = String::new();
        if !filter.in_flight.is_empty() {
            let ids: Vec<String> = filter.in_flight.iter().map(i64::to_string).collect();
            extra.push_str(&format!(" AND o.id NOT IN ({})", ids.join(",")));
        }
        if !filter.targets.is_empty() {
            extra.push_str(&format!(
                " AND o.target NOT IN ({})",
                placeholders(&filter.targets)
            ));
        }
        if !filter.clients.is_empty() {
            let clients = placeholders(&filter.clients);
            let prefix = placeholders(&[filter.topic_prefix.as_str()]);
            extra.push_str(&format!(
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
                    WHERE p.kind = 'partner' AND p.target = o.target AND p.article = o.article AND p.id < o.id)){extra}
             ORDER BY o.id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), outbox_row)?;
        Ok(rows
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|r| r.kind != DeliveryKind::Fanout)
            .collect())
    }

    fn indexnow_batch(&self, endpoint: &str, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, target, topic, article, body, content_type, idem, created_ms, attempts
             FROM syndicate_outbox
             WHERE kind = 'indexnow' AND target = ?1 AND state = 'pending'
             ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![endpoint, limit as i64], outbox_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One instance: the rows it takes are its own without a mark.
    fn claim_due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
        _claimant: &str,
        _claim_until_ms: i64,
    ) -> Result<Vec<OutboxRow>> {
        self.due_deliveries(now_ms, limit, filter)
    }

    fn give_back_deliveries(&self, _claimant: &str, _ids: &[i64]) -> Result<()> {
        Ok(())
    }

    fn active_subscription(
        &self,
        topic_url: &str,
        callback: &str,
        now_s: i64,
    ) -> Result<Option<ActiveSubscription>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT secret, client FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2 AND expires_at > ?3",
            )?
            .query_row(params![topic_url, callback, now_s], |r| {
                Ok(ActiveSubscription {
                    secret: r.get(0)?,
                    client: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn update_outbox(&mut self, updates: &[OutboxUpdate], in_flight: &HashSet<i64>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let tx = write_transaction(&mut self.conn)?;
        let mut merges: HashSet<(String, String, String)> = HashSet::new();
        {
            let mut delete = tx.prepare_cached("DELETE FROM syndicate_outbox WHERE id = ?1")?;
            let mut dead = tx.prepare_cached(
                "UPDATE syndicate_outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?;
            let mut retry = tx.prepare_cached(
                "UPDATE syndicate_outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
            )?;
            for u in updates {
                match u {
                    OutboxUpdate::Remove(id) => {
                        delete.execute([id])?;
                    }
                    OutboxUpdate::EndSubscription {
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
                    OutboxUpdate::DeadLetter { id, error } => {
                        dead.execute(params![id, error])?;
                    }
                    OutboxUpdate::Retry {
                        id,
                        next_ms,
                        error,
                        merge,
                    } => {
                        retry.execute(params![id, next_ms, error])?;
                        if *merge
                            && let Some(key) = tx
                                .query_row(
                                    "SELECT kind, target, topic FROM syndicate_outbox WHERE id = ?1",
                                    [id],
                                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                                )
                                .optional()?
                        {
                            merges.insert(key);
                        }
                    }
                }
            }
        }
        // Keep one waiting row per (kind, target, topic); the oldest stays,
        // its age being the one the give-up rule should see. Rows being sent
        // and rows still waiting for their document are left alone.
        for (kind, target, topic) in &merges {
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id FROM syndicate_outbox
                     WHERE kind = ?1 AND target = ?2 AND topic = ?3 AND state = 'pending' AND ready = 1
                     ORDER BY id",
                )?;
                stmt.query_map(params![kind, target, topic], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut delete = tx.prepare_cached("DELETE FROM syndicate_outbox WHERE id = ?1")?;
            for id in ids.iter().filter(|id| !in_flight.contains(id)).skip(1) {
                delete.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn purge_expired_subscriptions(&self, now_s: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM syndicate_subscriptions WHERE expires_at <= ?1",
            [now_s],
        )?)
    }

    fn outbox_backlog(&self) -> Result<(i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'dead'), 0) FROM syndicate_outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    fn outbox_summary(&self, now_s: i64) -> Result<OutboxSummary> {
        let (pending, dead) = self.outbox_backlog()?;
        let active_subscriptions: i64 = self.conn.query_row(
            "SELECT count(*) FROM syndicate_subscriptions WHERE expires_at > ?1",
            [now_s],
            |r| r.get(0),
        )?;
        let count = |kind: DeliveryKind| -> rusqlite::Result<i64> {
            self.conn.query_row(
                "SELECT count(*) FROM syndicate_outbox WHERE kind = ?1 AND state = 'pending'",
                [kind.as_str()],
                |r| r.get(0),
            )
        };
        let mut partners = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT target, coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'dead'), 0),
                    min(created_ms), max(attempts)
             FROM syndicate_outbox WHERE kind = 'partner' GROUP BY target ORDER BY target",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PartnerBacklog {
                partner: r.get(0)?,
                pending: r.get(1)?,
                dead: r.get(2)?,
                oldest_ms: r.get(3)?,
                most_attempts: r.get(4)?,
                last_error: None,
            })
        })?;
        for row in rows {
            let mut p = row?;
            p.last_error = self
                .conn
                .query_row(
                    "SELECT last_error FROM syndicate_outbox WHERE kind = 'partner' AND target = ?1 AND last_error != ''
                     ORDER BY id LIMIT 1",
                    [&p.partner],
                    |r| r.get(0),
                )
                .optional()?;
            partners.push(p);
        }
        Ok(OutboxSummary {
            pending,
            dead,
            active_subscriptions,
            pending_websub: count(DeliveryKind::WebSub)?,
            pending_fanout: count(DeliveryKind::Fanout)?,
            pending_hub: count(DeliveryKind::Hub)?,
            pending_ping: count(DeliveryKind::Ping)?,
            pending_indexnow: count(DeliveryKind::IndexNow)?,
            partners,
        })
    }

    fn redeliver(&self, partner: &str, now_ms: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE syndicate_outbox SET state = 'pending', attempts = 0, next_ms = ?2, created_ms = ?2
             WHERE kind = 'partner' AND target = ?1 AND state = 'dead'",
            params![partner, now_ms],
        )?)
    }

    fn reserve_subscription(
        &mut self,
        topic: &str,
        callback: &str,
        client: &str,
        limits: SubscriptionLimits,
        now_s: i64,
        stale_before_s: i64,
    ) -> Result<Reservation> {
        let tx = write_transaction(&mut self.conn)?;
        tx.execute(
            "DELETE FROM syndicate_verifying WHERE created_at < ?1",
            [stale_before_s],
        )?;
        let reservation = if is_active(&tx, topic, callback, now_s)? {
            Reservation::Renewal
        } else if let Some(hit) = over_limit(&tx, limits, topic, client, now_s)? {
            Reservation::Denied(hit)
        } else {
            tx.execute(
                "INSERT INTO syndicate_verifying(topic, callback, client, created_at) VALUES(?1, ?2, ?3, ?4)",
                params![topic, callback, client, now_s],
            )?;
            Reservation::Held(tx.last_insert_rowid())
        };
        tx.commit()?;
        Ok(reservation)
    }

    fn release_reservation(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM syndicate_verifying WHERE id = ?1", [id])?;
        Ok(())
    }

    fn store_subscription(
        &mut self,
        sub: &Subscription<'_>,
        reservation: Option<i64>,
        limits: SubscriptionLimits,
        now_s: i64,
    ) -> Result<Result<(), LimitHit>> {
        let tx = write_transaction(&mut self.conn)?;
        if let Some(id) = reservation {
            tx.execute("DELETE FROM syndicate_verifying WHERE id = ?1", [id])?;
        } else if !is_active(&tx, sub.topic, sub.callback, now_s)?
            && let Some(hit) = over_limit(&tx, limits, sub.topic, sub.client, now_s)?
        {
            return Ok(Err(hit));
        }
        tx.execute(
            "INSERT INTO syndicate_subscriptions(topic, callback, secret, lease_secs, expires_at, created_at, client)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(topic, callback) DO UPDATE SET secret = excluded.secret,
               lease_secs = excluded.lease_secs, expires_at = excluded.expires_at,
               client = excluded.client",
            params![
                sub.topic,
                sub.callback,
                sub.secret,
                sub.lease_secs as i64,
                now_s + sub.lease_secs as i64,
                now_s,
                sub.client
            ],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }

    fn remove_subscription(&self, topic: &str, callback: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM syndicate_subscriptions WHERE topic = ?1 AND callback = ?2",
            params![topic, callback],
        )?;
        Ok(())
    }

    fn clear_reservations(&self) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM syndicate_verifying", [])?)
    }
}
