//! The outbox and the hub's subscriptions in PostgreSQL. Sets of ids,
//! targets and clients travel as array parameters, so every statement has
//! one fixed text (and one cached plan per connection).

use super::{HUB_LOCK, Postgres, block_on, q, storable};
use crate::catalog::DeliveryKind;
use crate::catalog::outbox::{
    ActiveSubscription, DueFilter, LimitHit, OutboxBackend, OutboxRow, OutboxSummary, OutboxUpdate,
    PartnerBacklog, Reservation, Subscription, SubscriptionLimits,
};
use anyhow::Result;
use deadpool_postgres::{GenericClient, Object};
use std::collections::HashSet;

/// An outbox row's columns, in the order [`outbox_rows`] reads them.
const ROW_COLUMNS: &str = "o.id, o.kind, o.target, o.topic, o.article, o.body, o.content_type, o.idem, o.created_ms, o.attempts";

/// Rows due at `$1` (ms): pending, gate open, not a fan-out, a partner's row
/// only when it is the oldest left for its article, none for the targets in
/// `$3` or the subscriber clients in `$4` (topic URLs are `$5` + path), none
/// in `$6` (being sent by this worker), and none another instance has
/// claimed and may still be sending.
const DUE: &str = "o.state = 'pending' AND o.ready AND o.next_ms <= $1 AND o.kind <> 'fanout'
    AND (o.claimed_until_ms IS NULL OR o.claimed_until_ms <= $1)
    AND NOT (o.id = ANY($6::bigint[]))
    AND (o.kind <> 'partner' OR NOT EXISTS (
         SELECT 1 FROM syndicate_outbox p
         WHERE p.kind = 'partner' AND p.target = o.target AND p.article = o.article AND p.id < o.id))
    AND NOT (o.target = ANY($3::text[]))
    AND (o.kind <> 'websub' OR cardinality($4::text[]) = 0 OR NOT EXISTS (
         SELECT 1 FROM syndicate_subscriptions s
         WHERE s.topic = $5::text || o.topic AND s.callback = o.target AND s.client = ANY($4::text[])))";

/// The rows a delivery worker may send: fan-out rows are expanded, never sent.
fn outbox_rows(rows: &[tokio_postgres::Row]) -> Vec<OutboxRow> {
    rows.iter()
        .filter_map(outbox_row)
        .filter(|r| r.kind != DeliveryKind::Fanout)
        .collect()
}

async fn is_active(db: &impl GenericClient, topic: &str, callback: &str, now: i64) -> Result<bool> {
    Ok(q::one(
        db,
        "SELECT EXISTS (SELECT 1 FROM syndicate_subscriptions WHERE topic = $1 AND callback = $2 AND expires_at > $3)",
        &[&topic, &callback, &now],
    )
    .await?
    .get(0))
}

/// Which limit one more subscription would exceed, counting active
/// subscriptions and places reserved by verifications in flight. Callers
/// hold the hub lock, so the count and the insert that follows are one step.
async fn over_limit(
    db: &impl GenericClient,
    limits: SubscriptionLimits,
    topic: &str,
    client: &str,
    now: i64,
) -> Result<Option<LimitHit>> {
    let per_topic: i64 = q::one(
        db,
        "SELECT (SELECT count(*) FROM syndicate_subscriptions WHERE topic = $1 AND expires_at > $2)
              + (SELECT count(*) FROM syndicate_verifying WHERE topic = $1)",
        &[&topic, &now],
    )
    .await?
    .get(0);
    if per_topic as usize >= limits.per_topic {
        return Ok(Some(LimitHit::Topic));
    }
    let per_client: i64 = q::one(
        db,
        "SELECT (SELECT count(*) FROM syndicate_subscriptions WHERE client = $1 AND expires_at > $2)
              + (SELECT count(*) FROM syndicate_verifying WHERE client = $1)",
        &[&client, &now],
    )
    .await?
    .get(0);
    if per_client as usize >= limits.per_client {
        return Ok(Some(LimitHit::Client));
    }
    let total: i64 = q::one(
        db,
        "SELECT (SELECT count(*) FROM syndicate_subscriptions WHERE expires_at > $1)
              + (SELECT count(*) FROM syndicate_verifying)",
        &[&now],
    )
    .await?
    .get(0);
    if total as usize >= limits.total {
        return Ok(Some(LimitHit::Total));
    }
    Ok(None)
}

/// An outbox row (id, kind, target, topic, article, body, content_type,
/// idem, created_ms, attempts); `None` for a kind this build does not know.
fn outbox_row(r: &tokio_postgres::Row) -> Option<OutboxRow> {
    Some(OutboxRow {
        id: r.get(0),
        kind: DeliveryKind::parse(r.get(1))?,
        target: r.get(2),
        topic: r.get(3),
        article: r.get(4),
        body: r.get(5),
        content_type: r.get(6),
        idempotency_key: r.get(7),
        created_ms: r.get(8),
        attempts: r.get(9),
    })
}

impl OutboxBackend for Postgres {
    fn open_gate(&self, topic: &str) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(
                c,
                "UPDATE syndicate_outbox SET ready = true WHERE NOT ready AND topic = $1",
                &[&topic],
            )
            .await? as usize)
        })
    }

    fn open_stale_gates(&self, created_before_ms: i64) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(
                c,
                "UPDATE syndicate_outbox SET ready = true WHERE NOT ready AND created_ms < $1",
                &[&created_before_ms],
            )
            .await? as usize)
        })
    }

    fn open_all_gates(&self) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(
                c,
                "UPDATE syndicate_outbox SET ready = true WHERE NOT ready",
                &[],
            )
            .await? as usize)
        })
    }

    fn expand_fanouts(
        &mut self,
        topic_prefix: &str,
        now_ms: i64,
        in_flight: &HashSet<i64>,
    ) -> Result<usize> {
        let in_flight: Vec<i64> = in_flight.iter().copied().collect();
        let now_s = now_ms / 1000;
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            // Locked: a second worker on the same catalog expands each once.
            let fanouts = q::rows(
                &tx,
                "SELECT id, topic FROM syndicate_outbox
                 WHERE kind = 'fanout' AND ready AND state = 'pending' ORDER BY id FOR UPDATE",
                &[],
            )
            .await?;
            let mut n = 0;
            for row in &fanouts {
                let (id, path): (i64, String) = (row.get(0), row.get(1));
                let topic_url = format!("{topic_prefix}{path}");
                // With one delivery on its way per callback (syndicate's rule),
                // a subscriber holds at most two rows per topic, however often
                // the feed changes and however slow its callback.
                n += q::exec(
                    &tx,
                    "INSERT INTO syndicate_outbox(kind, target, topic, ready, created_ms, next_ms)
                     SELECT 'websub', s.callback, $1::text, true, $3::bigint, $3::bigint
                     FROM syndicate_subscriptions s
                     WHERE s.topic = $2 AND s.expires_at > $4
                       AND NOT EXISTS (SELECT 1 FROM syndicate_outbox o
                                       WHERE o.kind = 'websub' AND o.target = s.callback AND o.topic = $1
                                         AND o.state = 'pending' AND o.ready AND NOT (o.id = ANY($5))
                                         AND (o.claimed_until_ms IS NULL OR o.claimed_until_ms <= $3))
                     ORDER BY s.callback",
                    &[&path, &topic_url, &now_ms, &now_s, &in_flight],
                )
                .await?;
                q::exec(&tx, "DELETE FROM syndicate_outbox WHERE id = $1", &[&id]).await?;
            }
            tx.commit().await?;
            Ok(n as usize)
        })?
    }

    fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
    ) -> Result<Vec<OutboxRow>> {
        let limit = limit as i64;
        pg!(self, c, {
            let rows = q::rows(
                c,
                &format!(
                    "SELECT {ROW_COLUMNS} FROM syndicate_outbox o WHERE {DUE} ORDER BY o.id LIMIT $2"
                ),
                &[
                    &now_ms,
                    &limit,
                    &filter.targets,
                    &filter.clients,
                    &filter.topic_prefix,
                    &filter.in_flight,
                ],
            )
            .await?;
            Ok(outbox_rows(&rows))
        })
    }

    fn claim_due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
        claimant: &str,
        claim_until_ms: i64,
    ) -> Result<Vec<OutboxRow>> {
        let limit = limit as i64;
        pg!(self, c, {
            // Rows another claimer locked this moment are skipped, not
            // waited for: each instance takes what is free and goes.
            let rows = q::rows(
                c,
                &format!(
                    "WITH due AS (
                         SELECT o.id FROM syndicate_outbox o WHERE {DUE}
                         ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED)
                     UPDATE syndicate_outbox o SET claimed_by = $7, claimed_until_ms = $8
                     FROM due WHERE o.id = due.id
                     RETURNING {ROW_COLUMNS}"
                ),
                &[
                    &now_ms,
                    &limit,
                    &filter.targets,
                    &filter.clients,
                    &filter.topic_prefix,
                    &filter.in_flight,
                    &claimant,
                    &claim_until_ms,
                ],
            )
            .await?;
            let mut rows = outbox_rows(&rows);
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })
    }

    fn give_back_deliveries(&self, claimant: &str, ids: &[i64]) -> Result<()> {
        pg!(self, c, {
            q::exec(
                c,
                "UPDATE syndicate_outbox SET claimed_by = NULL, claimed_until_ms = NULL
                 WHERE id = ANY($1) AND claimed_by = $2",
                &[&ids, &claimant],
            )
            .await?;
            Ok(())
        })
    }

    fn indexnow_batch(&self, endpoint: &str, limit: usize) -> Result<Vec<OutboxRow>> {
        let limit = limit as i64;
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT id, kind, target, topic, article, body, content_type, idem, created_ms, attempts
                 FROM syndicate_outbox
                 WHERE kind = 'indexnow' AND target = $1 AND state = 'pending'
                 ORDER BY id LIMIT $2",
                &[&endpoint, &limit],
            )
            .await?;
            Ok(rows.iter().filter_map(outbox_row).collect())
        })
    }

    fn active_subscription(
        &self,
        topic_url: &str,
        callback: &str,
        now_s: i64,
    ) -> Result<Option<ActiveSubscription>> {
        pg!(self, c, {
            Ok(q::opt(
                c,
                "SELECT secret, client FROM syndicate_subscriptions WHERE topic = $1 AND callback = $2 AND expires_at > $3",
                &[&topic_url, &callback, &now_s],
            )
            .await?
            .map(|r| ActiveSubscription {
                secret: r.get(0),
                client: r.get(1),
            }))
        })
    }

    fn update_outbox(&mut self, updates: &[OutboxUpdate], in_flight: &HashSet<i64>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            let mut merges: Vec<(String, String, String)> = Vec::new();
            for u in updates {
                match u {
                    OutboxUpdate::Remove(id) => {
                        q::exec(&tx, "DELETE FROM syndicate_outbox WHERE id = $1", &[id]).await?;
                    }
                    OutboxUpdate::EndSubscription {
                        id,
                        topic_url,
                        callback,
                    } => {
                        q::exec(&tx, "DELETE FROM syndicate_outbox WHERE id = $1", &[id]).await?;
                        q::exec(
                            &tx,
                            "DELETE FROM syndicate_subscriptions WHERE topic = $1 AND callback = $2",
                            &[topic_url, callback],
                        )
                        .await?;
                    }
                    OutboxUpdate::DeadLetter { id, error } => {
                        q::exec(
                            &tx,
                            "UPDATE syndicate_outbox SET state = 'dead', attempts = attempts + 1, last_error = $2,
                               claimed_by = NULL, claimed_until_ms = NULL
                             WHERE id = $1",
                            &[id, &storable(error).as_ref()],
                        )
                        .await?;
                    }
                    OutboxUpdate::Retry {
                        id,
                        next_ms,
                        error,
                        merge,
                    } => {
                        let row = q::opt(
                            &tx,
                            "UPDATE syndicate_outbox SET attempts = attempts + 1, next_ms = $2, last_error = $3,
                               claimed_by = NULL, claimed_until_ms = NULL
                             WHERE id = $1 RETURNING kind, target, topic",
                            &[id, next_ms, &storable(error).as_ref()],
                        )
                        .await?;
                        if *merge && let Some(r) = row {
                            let key = (r.get(0), r.get(1), r.get(2));
                            if !merges.contains(&key) {
                                merges.push(key);
                            }
                        }
                    }
                }
            }
            // Keep one waiting row per (kind, target, topic); the oldest stays,
            // its age being the one the give-up rule should see. Rows being
            // sent (here, or claimed by another instance) and rows still
            // waiting for their document are left alone.
            let now_ms = chrono::Utc::now().timestamp_millis();
            for (kind, target, topic) in &merges {
                let ids: Vec<i64> = q::rows(
                    &tx,
                    "SELECT id FROM syndicate_outbox
                     WHERE kind = $1 AND target = $2 AND topic = $3 AND state = 'pending' AND ready
                       AND (claimed_until_ms IS NULL OR claimed_until_ms <= $4)
                     ORDER BY id FOR UPDATE",
                    &[kind, target, topic, &now_ms],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
                let extra: Vec<i64> = ids
                    .into_iter()
                    .filter(|id| !in_flight.contains(id))
                    .skip(1)
                    .collect();
                if !extra.is_empty() {
                    q::exec(
                        &tx,
                        "DELETE FROM syndicate_outbox WHERE id = ANY($1)",
                        &[&extra],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })?
    }

    fn purge_expired_subscriptions(&self, now_s: i64) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(
                c,
                "DELETE FROM syndicate_subscriptions WHERE expires_at <= $1",
                &[&now_s],
            )
            .await? as usize)
        })
    }

    fn outbox_backlog(&self) -> Result<(i64, i64)> {
        pg!(self, c, { backlog(c).await })
    }

    fn outbox_summary(&self, now_s: i64) -> Result<OutboxSummary> {
        pg!(self, c, {
            let (pending, dead) = backlog(c).await?;
            let active_subscriptions: i64 = q::one(
                c,
                "SELECT count(*) FROM syndicate_subscriptions WHERE expires_at > $1",
                &[&now_s],
            )
            .await?
            .get(0);
            let pending_of = async |kind: DeliveryKind| -> Result<i64> {
                Ok(q::one(
                    c,
                    "SELECT count(*) FROM syndicate_outbox WHERE kind = $1 AND state = 'pending'",
                    &[&kind.as_str()],
                )
                .await?
                .get(0))
            };
            let mut partners = Vec::new();
            for r in q::rows(
                c,
                "SELECT target, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead'),
                        min(created_ms), max(attempts)
                 FROM syndicate_outbox WHERE kind = 'partner' GROUP BY target ORDER BY target",
                &[],
            )
            .await?
            {
                let partner: String = r.get(0);
                let last_error = q::opt(
                    c,
                    "SELECT last_error FROM syndicate_outbox WHERE kind = 'partner' AND target = $1 AND last_error <> ''
                     ORDER BY id LIMIT 1",
                    &[&partner],
                )
                .await?
                .map(|e| e.get(0));
                partners.push(PartnerBacklog {
                    partner,
                    pending: r.get(1),
                    dead: r.get(2),
                    oldest_ms: r.get(3),
                    most_attempts: r.get(4),
                    last_error,
                });
            }
            Ok(OutboxSummary {
                pending,
                dead,
                active_subscriptions,
                pending_websub: pending_of(DeliveryKind::WebSub).await?,
                pending_fanout: pending_of(DeliveryKind::Fanout).await?,
                pending_hub: pending_of(DeliveryKind::Hub).await?,
                pending_ping: pending_of(DeliveryKind::Ping).await?,
                pending_indexnow: pending_of(DeliveryKind::IndexNow).await?,
                partners,
            })
        })
    }

    fn redeliver(&self, partner: &str, now_ms: i64) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(
                c,
                "UPDATE syndicate_outbox SET state = 'pending', attempts = 0, next_ms = $2, created_ms = $2
                 WHERE kind = 'partner' AND target = $1 AND state = 'dead'",
                &[&partner, &now_ms],
            )
            .await? as usize)
        })
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
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            tx.query("SELECT pg_advisory_xact_lock($1)", &[&HUB_LOCK])
                .await?;
            q::exec(
                &tx,
                "DELETE FROM syndicate_verifying WHERE created_at < $1",
                &[&stale_before_s],
            )
            .await?;
            let reservation = if is_active(&tx, topic, callback, now_s).await? {
                Reservation::Renewal
            } else if let Some(hit) = over_limit(&tx, limits, topic, client, now_s).await? {
                Reservation::Denied(hit)
            } else {
                let id: i64 = q::one(
                    &tx,
                    "INSERT INTO syndicate_verifying(topic, callback, client, created_at)
                     VALUES($1, $2, $3, $4) RETURNING id",
                    &[&topic, &callback, &client, &now_s],
                )
                .await?
                .get(0);
                Reservation::Held(id)
            };
            tx.commit().await?;
            Ok(reservation)
        })?
    }

    fn release_reservation(&self, id: i64) -> Result<()> {
        pg!(self, c, {
            q::exec(c, "DELETE FROM syndicate_verifying WHERE id = $1", &[&id]).await?;
            Ok(())
        })
    }

    fn store_subscription(
        &mut self,
        sub: &Subscription<'_>,
        reservation: Option<i64>,
        limits: SubscriptionLimits,
        now_s: i64,
    ) -> Result<Result<(), LimitHit>> {
        let lease = sub.lease_secs as i64;
        let expires = now_s + lease;
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            tx.query("SELECT pg_advisory_xact_lock($1)", &[&HUB_LOCK])
                .await?;
            if let Some(id) = reservation {
                q::exec(&tx, "DELETE FROM syndicate_verifying WHERE id = $1", &[&id]).await?;
            } else if !is_active(&tx, sub.topic, sub.callback, now_s).await?
                && let Some(hit) = over_limit(&tx, limits, sub.topic, sub.client, now_s).await?
            {
                tx.rollback().await?;
                return Ok(Err(hit));
            }
            q::exec(
                &tx,
                "INSERT INTO syndicate_subscriptions(topic, callback, secret, lease_secs, expires_at, created_at, client)
                 VALUES($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT(topic, callback) DO UPDATE SET secret = excluded.secret,
                   lease_secs = excluded.lease_secs, expires_at = excluded.expires_at,
                   client = excluded.client",
                &[
                    &sub.topic,
                    &sub.callback,
                    &sub.secret,
                    &lease,
                    &expires,
                    &now_s,
                    &sub.client,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(()))
        })?
    }

    fn remove_subscription(&self, topic: &str, callback: &str) -> Result<()> {
        pg!(self, c, {
            q::exec(
                c,
                "DELETE FROM syndicate_subscriptions WHERE topic = $1 AND callback = $2",
                &[&topic, &callback],
            )
            .await?;
            Ok(())
        })
    }

    fn clear_reservations(&self) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(c, "DELETE FROM syndicate_verifying", &[]).await? as usize)
        })
    }
}

async fn backlog(c: &Object) -> Result<(i64, i64)> {
    let r = q::one(
        c,
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead')
         FROM syndicate_outbox",
        &[],
    )
    .await?;
    Ok((r.get(0), r.get(1)))
}
