//! Several instances on one PostgreSQL catalog: the leader's lease, the
//! instances' heartbeats, the published documents they share, and
//! `LISTEN`/`NOTIFY` (see `catalog::cluster` for the rules).
//!
//! The lease follows riverqueue/river's leader election: one row, taken with
//! an upsert that succeeds only once the row's expiry has passed, extended by
//! the holder's renewals, all by the database's clock. Unlike river it
//! carries a term, checked by every fenced write under a row lock:
//! - a takeover (an `UPDATE` of the row) waits for a fenced write that holds
//!   the row lock, so a write that passed its check commits before the next
//!   term begins;
//! - a fenced write that comes after a takeover sees the new term and fails.
//!
//! `clock_timestamp()`, not `now()`: the check may run long after its
//! transaction began (a batch), and must judge the lease as of that moment.

use super::bridge::{self, block_on};
use super::{Postgres, q};
use crate::catalog::cluster::{
    ClusterBackend, Election, InstanceInfo, LeaseInfo, LeaseLost, Member, Notice, Notifications,
    PublishedDocument, Role, SharedDocument, Term,
};
use crate::config::PostgresUrl;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use deadpool_postgres::Object;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// An archive page's path (`render::ArchivePath`: `[slug/]archive/rss-12.xml`)
/// as a POSIX regular expression; a live document never matches it.
const ARCHIVE_PAGE_PATH: &str = "^([a-z0-9][a-z0-9-]*/)?archive/[a-z]+-[1-9][0-9]*\\.[a-z]+$";

fn shared_document(r: &tokio_postgres::Row) -> SharedDocument {
    SharedDocument {
        path: r.get(0),
        hash: r.get(1),
        first_published: DateTime::<Utc>::from_timestamp(r.get(2), 0).unwrap_or_default(),
        body: r.get(3),
        seq: r.get(4),
    }
}

/// The channels `NOTIFY` speaks on.
const PUBLISHED_CHANNEL: &str = "feedwire_published";
const LEASE_CHANNEL: &str = "feedwire_lease";

/// Instances not seen for this long leave the table (and `status`).
const FORGET_INSTANCES_AFTER: &str = "1 day";

/// Fail with [`LeaseLost`] unless `fence` still holds the lease. Run as the
/// last statement of a fenced transaction: the share lock it takes on the
/// lease row makes a takeover wait until that transaction ends.
pub(super) async fn check_fence(c: &impl GenericClient, fence: Option<&Term>) -> Result<()> {
    let Some(term) = fence else {
        return Ok(());
    };
    let held = q::opt(
        c,
        "SELECT 1 FROM cluster_lease
         WHERE holder = $1 AND term = $2 AND expires_at > clock_timestamp() FOR SHARE",
        &[&term.holder, &term.number],
    )
    .await?;
    if held.is_none() {
        return Err(LeaseLost { term: term.number }.into());
    }
    Ok(())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl ClusterBackend for Postgres {
    fn set_fence(&mut self, term: Option<Term>) {
        self.fence = term;
    }

    fn elect(&self, me: &Member, lease: Duration, take_over: bool) -> Result<Election> {
        let lease_ms = millis(lease);
        pg!(self, c, {
            let won = q::opt(
                c,
                "INSERT INTO cluster_lease AS l (only_row, holder, holder_name, term, acquired_at, renewed_at, expires_at)
                 VALUES (true, $1, $2, 1, clock_timestamp(), clock_timestamp(),
                         clock_timestamp() + $3::float8 * interval '1 millisecond')
                 ON CONFLICT (only_row) DO UPDATE
                   SET holder = excluded.holder, holder_name = excluded.holder_name, term = l.term + 1,
                       acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at,
                       expires_at = excluded.expires_at
                   WHERE l.expires_at <= clock_timestamp() OR $4
                 RETURNING term",
                &[&me.token, &me.name, &lease_ms, &take_over],
            )
            .await?;
            if let Some(row) = won {
                return Ok(Election::Won(Term {
                    holder: me.token.clone(),
                    number: row.get(0),
                }));
            }
            let held = q::opt(
                c,
                "SELECT holder_name,
                        greatest(0, extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8
                 FROM cluster_lease",
                &[],
            )
            .await?;
            Ok(match held {
                Some(r) => Election::Held {
                    by: r.get(0),
                    lapses_in: Duration::from_secs_f64(r.get::<_, f64>(1) / 1e3),
                },
                // Deleted by hand between the two statements: try again soon.
                None => Election::Held {
                    by: String::new(),
                    lapses_in: Duration::ZERO,
                },
            })
        })
    }

    fn renew(&self, term: &Term, lease: Duration) -> Result<bool> {
        let lease_ms = millis(lease);
        pg!(self, c, {
            Ok(q::exec(
                c,
                "UPDATE cluster_lease
                 SET renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + $3::float8 * interval '1 millisecond'
                 WHERE holder = $1 AND term = $2 AND expires_at > clock_timestamp()",
                &[&term.holder, &term.number, &lease_ms],
            )
            .await?
                == 1)
        })
    }

    fn resign(&self, term: &Term) -> Result<()> {
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            let gave_up = q::exec(
                &tx,
                "UPDATE cluster_lease SET expires_at = clock_timestamp()
                 WHERE holder = $1 AND term = $2 AND expires_at > clock_timestamp()",
                &[&term.holder, &term.number],
            )
            .await?;
            if gave_up > 0 {
                // Delivered at commit: standbys try to take over at once.
                q::exec(&tx, "SELECT pg_notify($1, '')", &[&LEASE_CHANNEL]).await?;
            }
            tx.commit().await?;
            Ok(())
        })?
    }

    fn lease(&self) -> Result<Option<LeaseInfo>> {
        pg!(self, c, {
            Ok(q::opt(
                c,
                "SELECT holder_name, holder, term, acquired_at, renewed_at, expires_at, clock_timestamp()
                 FROM cluster_lease",
                &[],
            )
            .await?
            .map(|r| LeaseInfo {
                holder_name: r.get(0),
                holder_token: r.get(1),
                term: r.get(2),
                acquired_at: r.get(3),
                renewed_at: r.get(4),
                expires_at: r.get(5),
                now: r.get(6),
            }))
        })
    }

    fn heartbeat(&self, me: &Member, role: Role, departed_after: Duration) -> Result<usize> {
        let departed_ms = millis(departed_after);
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            q::exec(
                &tx,
                "INSERT INTO cluster_instances(token, name, role, http, started_at, seen_at)
                 VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp())
                 ON CONFLICT (token) DO UPDATE
                   SET name = excluded.name, role = excluded.role, http = excluded.http,
                       seen_at = excluded.seen_at",
                &[&me.token, &me.name, &role.as_str(), &me.http],
            )
            .await?;
            // Claims of instances that stopped being seen (killed, cut off)
            // go back to the queue for the living. Only of instances seen
            // before: a worker may claim before its instance's first
            // heartbeat commits, and taking that claim would send its rows
            // twice. A claimer never seen keeps its rows until the claim
            // ends (`cluster.claim_secs`).
            let freed = q::exec(
                &tx,
                "UPDATE syndicate_outbox SET claimed_by = NULL, claimed_until_ms = NULL
                 WHERE claimed_by IS NOT NULL AND claimed_by <> $1
                   AND claimed_by IN (
                       SELECT token FROM cluster_instances
                       WHERE role = 'stopped'
                          OR seen_at <= clock_timestamp() - $2::float8 * interval '1 millisecond')",
                &[&me.token, &departed_ms],
            )
            .await?;
            q::exec(
                &tx,
                &format!(
                    "DELETE FROM cluster_instances WHERE seen_at < clock_timestamp() - interval '{FORGET_INSTANCES_AFTER}'"
                ),
                &[],
            )
            .await?;
            tx.commit().await?;
            Ok(freed as usize)
        })?
    }

    fn instances(&self) -> Result<Vec<InstanceInfo>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT token, name, role, http, started_at, seen_at, clock_timestamp()
                 FROM cluster_instances ORDER BY role <> 'leader', name, started_at",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| InstanceInfo {
                    token: r.get(0),
                    name: r.get(1),
                    role: r.get(2),
                    http: r.get(3),
                    started_at: r.get(4),
                    seen_at: r.get(5),
                    now: r.get(6),
                })
                .collect())
        })
    }

    fn record_published_documents(&self, docs: &[PublishedDocument<'_>]) -> Result<()> {
        fenced!(self, tx, {
            let mut changed = 0;
            for d in docs {
                let at = d.first_published.timestamp();
                // A version already recorded (same bytes, same date) keeps
                // its sequence number: followers are not sent it again.
                changed += q::exec(
                    &tx,
                    "INSERT INTO published(path, hash, at, body, seq)
                     VALUES($1, $2, $3, $4, nextval('published_seq'))
                     ON CONFLICT(path) DO UPDATE
                       SET hash = excluded.hash, at = excluded.at, body = excluded.body, seq = excluded.seq
                       WHERE published.hash IS DISTINCT FROM excluded.hash
                          OR published.at IS DISTINCT FROM excluded.at
                          OR published.body IS NULL",
                    &[&d.path, &d.hash, &at, &d.body],
                )
                .await?;
            }
            if changed > 0 {
                q::exec(&tx, "SELECT pg_notify($1, '')", &[&PUBLISHED_CHANNEL]).await?;
            }
        });
        Ok(())
    }

    fn published_documents_since(&self, seq: i64) -> Result<Vec<SharedDocument>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT path, hash, at, body, seq FROM published
                 WHERE seq > $1 AND body IS NOT NULL AND path !~ $2 ORDER BY seq",
                &[&seq, &ARCHIVE_PAGE_PATH],
            )
            .await?;
            Ok(rows.iter().map(shared_document).collect())
        })
    }

    fn published_document(&self, path: &str) -> Result<Option<SharedDocument>> {
        pg!(self, c, {
            let row = q::opt(
                c,
                "SELECT path, hash, at, body, seq FROM published
                 WHERE path = $1 AND body IS NOT NULL",
                &[&path],
            )
            .await?;
            Ok(row.as_ref().map(shared_document))
        })
    }

    fn listen(&self) -> Result<Notifications> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        bridge::spawn(listen(self.url.clone(), self.shown.clone(), tx))?;
        Ok(Notifications::from_channel(rx))
    }

    fn release_claims(&self, token: &str) -> Result<usize> {
        pg!(self, c, {
            Ok(q::exec(
                c,
                "UPDATE syndicate_outbox SET claimed_by = NULL, claimed_until_ms = NULL WHERE claimed_by = $1",
                &[&token],
            )
            .await? as usize)
        })
    }
}

/// Keep a connection of its own listening, and forward what it hears until
/// the receiver is dropped. A broken connection is remade (waiting 1 s, 2 s …
/// 30 s between attempts); each success says [`Notice::Listening`], so the
/// receiver catches up on what it may have missed.
async fn listen(url: PostgresUrl, shown: String, out: tokio::sync::mpsc::UnboundedSender<Notice>) {
    let mut wait = Duration::from_secs(1);
    loop {
        let connected = tokio::select! {
            _ = out.closed() => return,
            r = listen_once(&url, &out) => r,
        };
        match connected {
            Ok(()) => wait = Duration::from_secs(1),
            Err(e) => tracing::warn!(
                catalog = %shown,
                error = %format!("{e:#}"),
                retry_in_s = wait.as_secs(),
                "cannot listen for other instances' changes; polling meanwhile"
            ),
        }
        tokio::select! {
            _ = out.closed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// One connection's life: `LISTEN`, then forward notifications until it
/// breaks (`Ok` when it was listening, so the next attempt starts afresh).
async fn listen_once(
    url: &PostgresUrl,
    out: &tokio::sync::mpsc::UnboundedSender<Notice>,
) -> Result<()> {
    let config = super::client_config(url, "feedwire-listen")?;
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .context("cannot connect")?;
    let forward = out.clone();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let notice = if n.channel() == LEASE_CHANNEL {
                        Notice::LeaseReleased
                    } else {
                        Notice::Published
                    };
                    if forward.send(notice).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client
        .batch_execute(&format!(
            "LISTEN {PUBLISHED_CHANNEL}; LISTEN {LEASE_CHANNEL}"
        ))
        .await
        .context("LISTEN failed")?;
    let _ = out.send(Notice::Listening);
    let _ = driver.await;
    drop(client);
    Ok(())
}
