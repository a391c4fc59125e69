//! The PostgreSQL backend (`[catalog] url`): the same tables and rules as
//! SQLite, for agencies that run several feedwire processes on one catalog
//! or keep their state in a managed database.
//!
//! Connections come from one pool per database per process
//! (`deadpool-postgres`, at most `catalog.max_connections`), shared by every
//! handle on it and closed when the last handle goes; a broken connection is
//! replaced at its next use. The async client runs on the catalog's own
//! runtime ([`bridge`]).
//!
//! Transactions and locking. PostgreSQL lets readers and writers of
//! different rows proceed together; SQLite makes every writer wait for one
//! lock. Where feedwire's rules rely on that, the lock is taken explicitly:
//! - a batch (`begin`) holds an advisory transaction lock for its whole
//!   length, so batches (of this process or another on the same catalog)
//!   apply their rules one after another, and `apply-removals` takes it too;
//!   outbox writers, the pages and `status` do not wait for a batch;
//! - the hub's reservation and subscription steps count, then insert, under
//!   their own advisory lock, so two subscribe requests cannot both take the
//!   last place under a limit;
//! - the delivery worker's read-then-write steps (`expand_fanouts`,
//!   `update_outbox`'s merges) lock the rows they read (`FOR UPDATE`).
//!
//! No statement a batch runs can fail because another connection committed
//! in between (READ COMMITTED waits for row locks instead), so a batch never
//! loses to a concurrent outbox update.

/// Run `$body` (statements on `$c`, a pooled connection) to completion.
macro_rules! pg {
    ($self:ident, $c:ident, $body:block) => {
        block_on(async {
            let conn = $self.client().await?;
            let $c: &Object = &conn;
            $body
        })?
    };
}

/// Run `$body` (statements on `$tx`, a transaction of its own) and commit,
/// after checking the handle's fence (`cluster::check_fence`): a pipeline
/// write of an instance that lost the lease fails and writes nothing.
macro_rules! fenced {
    ($self:ident, $tx:ident, $body:block) => {
        block_on(async {
            let mut conn = $self.client().await?;
            let $tx = conn.transaction().await?;
            let out = $body;
            $crate::catalog::postgres::check_fence(&$tx, $self.fence.as_ref()).await?;
            $tx.commit().await?;
            anyhow::Ok(out)
        })??
    };
}

/// Run `$body` (statements on `$c`, the transaction's connection).
macro_rules! in_tx {
    ($self:ident, $c:ident, $body:block) => {{
        let $c: &Object = $self.c();
        block_on(async { $body })?
    }};
}

pub(super) mod bridge;
mod cluster;
mod copy;

use cluster::check_fence;
mod outbox;
mod schema;
#[cfg(test)]
pub(super) mod testing;

pub use copy::CopyReport;
pub(crate) use copy::copy_from_sqlite;

use super::{
    ArticleRow, ArticleState, Backend, EditorCommand, FeedKey, FeedRecord, FileStamp, HeldRemoval,
    Identity, KnownFile, NewDelivery, NewsPage, Override, PageUrl, PendingCommand, Rejection,
    SitemapPage, SitemapUrl, Status, Term, Tombstone, Tx,
};
use crate::article::Category;
use crate::config::PostgresUrl;
use anyhow::{Context, Result};
use bridge::block_on;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};

/// Advisory lock keys (per database): batches, the hub's limit checks,
/// migrations. Arbitrary but fixed: "feedwire" in ASCII, plus one.
const BATCH_LOCK: i64 = 0x6665_6564_7769_7265;
const HUB_LOCK: i64 = BATCH_LOCK + 1;
const MIGRATE_LOCK: i64 = BATCH_LOCK + 2;

/// Pools by URL: handles on one database share one pool, which lives as
/// long as one of them does.
static POOLS: Mutex<Vec<(String, Weak<Pool>)>> = Mutex::new(Vec::new());

fn pool_for(url: &PostgresUrl) -> Result<Arc<Pool>> {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    pools.retain(|(_, p)| p.strong_count() > 0);
    if let Some(pool) = pools
        .iter()
        .find(|(u, _)| u == url.secret_url())
        .and_then(|(_, p)| p.upgrade())
    {
        return Ok(pool);
    }
    let config = client_config(url, "feedwire")?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(url.max_connections)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(url.acquire_timeout))
        .create_timeout(Some(url.connect_timeout))
        .recycle_timeout(Some(url.connect_timeout))
        .build()
        .context("cannot set up the PostgreSQL connection pool")?;
    let pool = Arc::new(pool);
    pools.push((url.secret_url().to_string(), Arc::downgrade(&pool)));
    Ok(pool)
}

/// How every connection to `url` is opened: within `connect_timeout`,
/// and closed once the server has shown no sign of life for `tcp_timeout`
/// (data sent and not acknowledged, or an idle connection's keepalive
/// probes unanswered: idle half of it, then three probes a sixth apart).
/// On a network partition a query then fails, and a `LISTEN` reconnects,
/// within that bound instead of the kernel's (about 15 minutes for
/// unacknowledged data, two hours before an idle probe).
pub(super) fn client_config(
    url: &PostgresUrl,
    application: &str,
) -> Result<tokio_postgres::Config> {
    // The parser's own message may quote the URL, password included.
    let mut config = tokio_postgres::Config::from_str(url.secret_url())
        .map_err(|_| anyhow::anyhow!("catalog.url: `{url}` is not a PostgreSQL connection URL"))?;
    let probe = |part: u32| (url.tcp_timeout / part).max(std::time::Duration::from_secs(1));
    config
        .connect_timeout(url.connect_timeout)
        .application_name(application)
        .tcp_user_timeout(url.tcp_timeout)
        .keepalives(true)
        .keepalives_idle(probe(2))
        .keepalives_interval(probe(6))
        .keepalives_retries(3);
    Ok(config)
}

/// Statements through the connection's statement cache (a build runs the
/// same few statements for every article). Only fixed SQL goes through
/// here: a statement text that varied would grow the cache without bound.
pub(super) mod q {
    use anyhow::Result;
    use deadpool_postgres::GenericClient;
    use tokio_postgres::Row;
    use tokio_postgres::types::ToSql;

    pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

    pub async fn rows(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.query(&stmt, params).await?)
    }

    pub async fn opt(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.query_opt(&stmt, params).await?)
    }

    pub async fn one(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Row> {
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.query_one(&stmt, params).await?)
    }

    pub async fn exec(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64> {
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.execute(&stmt, params).await?)
    }

    pub async fn strings(
        c: &impl GenericClient,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<String>> {
        Ok(rows(c, sql, params)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

/// PostgreSQL refuses NUL in text; free text (a rejection's reason, a
/// receiver's error) may carry one from a hostile file or answer.
pub(super) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

pub(super) struct Postgres {
    pool: Arc<Pool>,
    /// For messages: the URL without its password.
    shown: String,
    /// For `LISTEN`, which needs a connection of its own.
    url: PostgresUrl,
    /// The lease term this handle's pipeline writes must still hold
    /// (`Catalog::fence_writes`).
    fence: Option<Term>,
}

impl Postgres {
    /// Open (creating the tables if needed) the catalog in `url`'s database.
    pub(super) fn open(url: &PostgresUrl) -> Result<Postgres> {
        let pg = Postgres {
            pool: pool_for(url)?,
            shown: url.to_string(),
            url: url.clone(),
            fence: None,
        };
        block_on(async {
            let mut c = pg.client().await?;
            schema::prepare(&mut c).await
        })?
        .with_context(|| format!("cannot prepare the PostgreSQL catalog {}", pg.shown))?;
        Ok(pg)
    }

    /// Open for commands: a database feedwire never wrote to is an error,
    /// not a new empty catalog.
    pub(super) fn open_existing(url: &PostgresUrl) -> Result<Postgres> {
        let pg = Postgres {
            pool: pool_for(url)?,
            shown: url.to_string(),
            url: url.clone(),
            fence: None,
        };
        let seen = block_on(async { schema::version(&pg.client().await?).await })??;
        if seen.is_none() {
            anyhow::bail!(
                "no catalog in PostgreSQL {} yet: run `feedwire build` or `feedwire run` first (or `feedwire migrate-catalog` to bring a SQLite one)",
                pg.shown
            );
        }
        Self::open(url)
    }

    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .with_context(|| format!("cannot reach the PostgreSQL catalog {}", self.shown))
    }
}

/// A `files` row (size, mtime_ns, hash, article_id, inode) as a `KnownFile`.
fn known_file(r: &tokio_postgres::Row) -> KnownFile {
    KnownFile {
        stamp: FileStamp {
            size: r.get::<_, i64>(0) as u64,
            mtime_ns: r.get(1),
            inode: r.get::<_, i64>(4) as u64,
            hash: r.get(2),
        },
        id: r.get(3),
    }
}

fn from_unix(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// A page number or count as stored (BIGINT) back to what the catalog API uses.
fn page_number(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Feed keys as a tombstone stores them (a JSON array).
fn stored_feeds(json: &str) -> Result<Vec<FeedKey>> {
    let keys: Vec<String> = serde_json::from_str(json)?;
    Ok(keys.into_iter().map(FeedKey::from_stored).collect())
}

/// An `editorial` row (status, embargo_until_us, correction, reason) from
/// column `first` on.
fn override_row(r: &tokio_postgres::Row, first: usize) -> Override {
    Override {
        status: r
            .get::<_, Option<String>>(first)
            .and_then(|s| Status::parse(&s)),
        embargo_until: r
            .get::<_, Option<i64>>(first + 1)
            .and_then(DateTime::from_timestamp_micros),
        correction: r.get(first + 2),
        reason: r.get(first + 3),
    }
}

impl Backend for Postgres {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>> {
        let client = block_on(async {
            let c = self.client().await?;
            c.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({BATCH_LOCK})"
            ))
            .await
            .context("cannot start a catalog transaction")?;
            anyhow::Ok(c)
        })??;
        Ok(Box::new(PgTx {
            client: Some(client),
            fence: self.fence.clone(),
        }))
    }

    fn known_files(&self) -> Result<HashMap<String, KnownFile>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT size, mtime_ns, hash, article_id, inode, path FROM files",
                &[],
            )
            .await?;
            Ok(rows.iter().map(|r| (r.get(5), known_file(r))).collect())
        })
    }

    fn known_files_among(
        &self,
        keys: &mut dyn Iterator<Item = &str>,
    ) -> Result<HashMap<String, KnownFile>> {
        let keys: Vec<&str> = keys.collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT size, mtime_ns, hash, article_id, inode, path FROM files WHERE path = ANY($1)",
                &[&keys],
            )
            .await?;
            Ok(rows.iter().map(|r| (r.get(5), known_file(r))).collect())
        })
    }

    fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<String>> {
        let limit = limit as i64;
        pg!(self, c, {
            q::strings(
                c,
                "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
                 WHERE m.feed = $1 AND m.page = 0
                 ORDER BY m.published_us DESC, m.article_id DESC LIMIT $2",
                &[&feed.stored(), &limit],
            )
            .await
        })
    }

    fn entry(&self, id: &str) -> Result<Option<String>> {
        pg!(self, c, {
            Ok(q::opt(
                c,
                "SELECT entry FROM articles WHERE id = $1 AND state = 'usable'",
                &[&id],
            )
            .await?
            .map(|r| r.get(0)))
        })
    }

    fn categories(&self) -> Result<Vec<Category>> {
        pg!(self, c, {
            let rows = q::rows(c, "SELECT slug, name FROM categories ORDER BY slug", &[]).await?;
            Ok(rows
                .iter()
                .map(|r| Category {
                    slug: r.get(0),
                    name: r.get(1),
                })
                .collect())
        })
    }

    fn category(&self, slug: &str) -> Result<Option<Category>> {
        pg!(self, c, {
            Ok(
                q::opt(c, "SELECT name FROM categories WHERE slug = $1", &[&slug])
                    .await?
                    .map(|r| Category {
                        name: r.get(0),
                        slug: slug.to_string(),
                    }),
            )
        })
    }

    fn article_count(&self) -> Result<u64> {
        pg!(self, c, {
            Ok(q::one(c, "SELECT count(*) FROM articles", &[])
                .await?
                .get::<_, i64>(0) as u64)
        })
    }

    fn rejection_count(&self) -> Result<u64> {
        pg!(self, c, {
            Ok(q::one(c, "SELECT count(*) FROM rejections", &[])
                .await?
                .get::<_, i64>(0) as u64)
        })
    }

    fn rejections(&self) -> Result<Vec<Rejection>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT path, reason, at FROM rejections ORDER BY at DESC, path",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| Rejection {
                    path: r.get(0),
                    reason: r.get(1),
                    at: from_unix(r.get(2)),
                })
                .collect())
        })
    }

    fn held_removals(&self) -> Result<Vec<HeldRemoval>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT path, article_id, held_at, approved FROM held_removals ORDER BY held_at, path",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| HeldRemoval {
                    path: r.get(0),
                    id: r.get(1),
                    held_at: from_unix(r.get(2)),
                    approved: r.get(3),
                })
                .collect())
        })
    }

    fn approve_held_removals(&self) -> Result<usize> {
        block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // After any batch in progress, as SQLite's write lock orders them.
            tx.query("SELECT pg_advisory_xact_lock($1)", &[&BATCH_LOCK])
                .await?;
            let n = tx
                .execute(
                    "UPDATE held_removals SET approved = true WHERE NOT approved",
                    &[],
                )
                .await?;
            tx.commit().await?;
            Ok(n as usize)
        })?
    }

    fn record_published(&self, path: &str, hash: &str, at: DateTime<Utc>) -> Result<()> {
        let at = at.timestamp();
        fenced!(self, tx, {
            q::exec(
                &tx,
                "INSERT INTO published(path, hash, at) VALUES($1, $2, $3)
                 ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, at = excluded.at",
                &[&path, &hash, &at],
            )
            .await?;
        });
        Ok(())
    }

    fn published_feeds(&self) -> Result<Vec<FeedRecord>> {
        pg!(self, c, {
            let rows =
                q::rows(c, "SELECT path, hash, at FROM published ORDER BY path", &[]).await?;
            Ok(rows
                .iter()
                .map(|r| FeedRecord {
                    path: r.get(0),
                    hash: r.get(1),
                    published_at: from_unix(r.get(2)),
                })
                .collect())
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        pg!(self, c, {
            Ok(q::opt(c, "SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .map(|r| r.get(0)))
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        fenced!(self, tx, {
            q::exec(
                &tx,
                "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await?;
        });
        Ok(())
    }

    fn forget_file_stamps(&self) -> Result<()> {
        fenced!(self, tx, {
            q::exec(
                &tx,
                "UPDATE files SET size = -1, mtime_ns = -1, hash = ''",
                &[],
            )
            .await?;
        });
        Ok(())
    }

    fn data_version(&self) -> Result<i64> {
        pg!(self, c, {
            Ok(q::one(c, "SELECT version FROM data_version", &[])
                .await?
                .get(0))
        })
    }

    fn archive_page_count(&self, feed: &FeedKey) -> Result<u32> {
        pg!(self, c, {
            let n: i64 = q::one(
                c,
                "SELECT coalesce(max(page), 0) FROM archive_pages WHERE feed = $1",
                &[&feed.stored()],
            )
            .await?
            .get(0);
            Ok(page_number(n))
        })
    }

    fn archive_page(&self, feed: &FeedKey, page: u32) -> Result<Vec<String>> {
        let page = i64::from(page);
        pg!(self, c, {
            q::strings(
                c,
                "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
                 WHERE m.feed = $1 AND m.page = $2
                 ORDER BY m.published_us DESC, m.article_id DESC",
                &[&feed.stored(), &page],
            )
            .await
        })
    }

    fn stale_archive_pages(&self) -> Result<Vec<(FeedKey, u32)>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT feed, page FROM archive_pages WHERE stale ORDER BY feed, page",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| (FeedKey::from_stored(r.get(0)), page_number(r.get(1))))
                .collect())
        })
    }

    fn archive_page_published(&self, feed: &FeedKey, page: u32) -> Result<()> {
        let page = i64::from(page);
        pg!(self, c, {
            q::exec(
                c,
                "UPDATE archive_pages SET stale = false WHERE feed = $1 AND page = $2",
                &[&feed.stored(), &page],
            )
            .await?;
            Ok(())
        })
    }

    fn article_state(&self, id: &str) -> Result<ArticleState> {
        pg!(self, c, {
            if let Some(r) =
                q::opt(c, "SELECT state, entry FROM articles WHERE id = $1", &[&id]).await?
            {
                let state: String = r.get(0);
                return Ok(match Status::parse(&state) {
                    Some(Status::Usable) | None => {
                        ArticleState::Public(Box::new(serde_json::from_str(r.get(1))?))
                    }
                    _ => ArticleState::Withheld,
                });
            }
            let killed = q::opt(
                c,
                "SELECT killed_at_us, kill_reason FROM identities WHERE id = $1",
                &[&id],
            )
            .await?;
            Ok(
                match killed.map(|r| (r.get::<_, Option<i64>>(0), r.get(1))) {
                    Some((Some(at), reason)) => ArticleState::Killed {
                        at: from_micros(at),
                        reason,
                    },
                    _ => ArticleState::Unknown,
                },
            )
        })
    }

    fn tombstones(&self, now_us: i64) -> Result<Vec<Tombstone>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT id, killed_at_us, reason, feeds, expires_at_us FROM tombstones WHERE expires_at_us > $1",
                &[&now_us],
            )
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Tombstone {
                        id: r.get(0),
                        killed_at: from_micros(r.get(1)),
                        reason: r.get(2),
                        feeds: stored_feeds(r.get(3))?,
                        expires_at: from_micros(r.get(4)),
                    })
                })
                .collect()
        })
    }

    fn next_lifecycle_deadline(&self) -> Result<Option<i64>> {
        pg!(self, c, {
            Ok(q::one(
                c,
                "SELECT min(t) FROM (
                    SELECT min(embargo_until_us) AS t FROM articles
                     WHERE state = 'withheld' AND embargo_until_us IS NOT NULL
                    UNION ALL SELECT min(expires_at_us) FROM tombstones) AS deadlines",
                &[],
            )
            .await?
            .get(0))
        })
    }

    fn lapsed_embargoes(&self, now_us: i64) -> Result<Vec<String>> {
        pg!(self, c, {
            q::strings(
                c,
                "SELECT path FROM articles WHERE state = 'withheld' AND embargo_until_us <= $1 ORDER BY path",
                &[&now_us],
            )
            .await
        })
    }

    fn withheld(&self, offset: usize, limit: usize) -> Result<Vec<String>> {
        let (offset, limit) = (offset as i64, limit as i64);
        pg!(self, c, {
            q::strings(
                c,
                "SELECT entry FROM articles WHERE state = 'withheld'
                 ORDER BY published_us DESC, id DESC LIMIT $1 OFFSET $2",
                &[&limit, &offset],
            )
            .await
        })
    }

    fn file_of(&self, id: &str) -> Result<Option<String>> {
        pg!(self, c, {
            Ok(q::opt(
                c,
                "SELECT path FROM files WHERE article_id = $1 ORDER BY path LIMIT 1",
                &[&id],
            )
            .await?
            .map(|r| r.get(0)))
        })
    }

    fn record_command(
        &self,
        id: &str,
        command: &EditorCommand,
        who: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let at_us = at.timestamp_micros();
        let argument: Option<String> = match command {
            EditorCommand::Embargo { until } => Some(until.to_rfc3339()),
            EditorCommand::Kill { reason } => reason.clone(),
            EditorCommand::Correct { note } => Some(note.clone()),
            EditorCommand::Reinstate => None,
        };
        let argument = argument.as_deref().map(storable);
        let argument = argument.as_deref();
        let who = storable(who);
        let who = who.as_ref();
        block_on(async {
            let mut conn = self.client().await?;
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO operator_commands(command, article_id, argument, who, at_us) VALUES($1, $2, $3, $4, $5)",
                &[&command.name(), &id, &argument, &who, &at_us],
            )
            .await?;
            match command {
                EditorCommand::Embargo { until } => {
                    tx.execute(
                        "INSERT INTO editorial(id, status, embargo_until_us, updated_at_us) VALUES($1, 'withheld', $2, $3)
                         ON CONFLICT(id) DO UPDATE SET status = 'withheld', embargo_until_us = excluded.embargo_until_us,
                           updated_at_us = excluded.updated_at_us",
                        &[&id, &until.timestamp_micros(), &at_us],
                    )
                    .await?
                }
                EditorCommand::Kill { .. } => {
                    tx.execute(
                        "INSERT INTO editorial(id, status, reason, updated_at_us) VALUES($1, 'canceled', $2, $3)
                         ON CONFLICT(id) DO UPDATE SET status = 'canceled', reason = excluded.reason,
                           updated_at_us = excluded.updated_at_us",
                        &[&id, &argument, &at_us],
                    )
                    .await?
                }
                EditorCommand::Correct { .. } => {
                    tx.execute(
                        "INSERT INTO editorial(id, correction, updated_at_us) VALUES($1, $2, $3)
                         ON CONFLICT(id) DO UPDATE SET correction = excluded.correction,
                           updated_at_us = excluded.updated_at_us",
                        &[&id, &argument, &at_us],
                    )
                    .await?
                }
                // Back to what the file says: the kill and any embargo or
                // status an editor set are dropped (a correction stays).
                EditorCommand::Reinstate => {
                    tx.execute(
                        "UPDATE editorial SET status = NULL, embargo_until_us = NULL, reason = NULL,
                           updated_at_us = $2 WHERE id = $1",
                        &[&id, &at_us],
                    )
                    .await?
                }
            };
            tx.commit().await?;
            anyhow::Ok(())
        })?
    }

    fn pending_commands(&self) -> Result<Vec<PendingCommand>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT seq, article_id, command, who, at_us FROM operator_commands WHERE NOT applied ORDER BY seq",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| PendingCommand {
                    seq: r.get(0),
                    id: r.get(1),
                    command: r.get(2),
                    who: r.get(3),
                    at: from_micros(r.get(4)),
                })
                .collect())
        })
    }

    fn mark_commands_applied(&self, up_to_seq: i64) -> Result<()> {
        fenced!(self, tx, {
            q::exec(
                &tx,
                "UPDATE operator_commands SET applied = true WHERE NOT applied AND seq <= $1",
                &[&up_to_seq],
            )
            .await?;
        });
        Ok(())
    }

    fn overrides(&self) -> Result<Vec<(String, Override)>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT id, status, embargo_until_us, correction, reason FROM editorial
                 WHERE status IS NOT NULL OR embargo_until_us IS NOT NULL OR correction IS NOT NULL
                 ORDER BY id",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), override_row(r, 1)))
                .collect())
        })
    }

    fn sitemap_pages(&self) -> Result<Vec<SitemapPage>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT page, urls, bytes, changed_us FROM sitemap_pages ORDER BY page",
                &[],
            )
            .await?;
            Ok(rows.iter().map(sitemap_page).collect())
        })
    }

    fn sitemap_page_urls(&self, page: i64) -> Result<Vec<PageUrl>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT article_id, lastmod_us FROM sitemap_urls WHERE page = $1
                 ORDER BY published_us, article_id",
                &[&page],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| PageUrl {
                    id: r.get(0),
                    lastmod_us: r.get(1),
                })
                .collect())
        })
    }

    fn news_urls(&self, since_us: i64) -> Result<Vec<SitemapUrl>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT article_id, published_us, lastmod_us, title, language, bytes FROM sitemap_urls
                 WHERE published_us >= $1 ORDER BY published_us DESC, article_id DESC",
                &[&since_us],
            )
            .await?;
            Ok(rows.iter().map(sitemap_url).collect())
        })
    }

    fn news_page_urls(&self, page: i64, since_us: i64) -> Result<Vec<SitemapUrl>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT article_id, published_us, lastmod_us, title, language, bytes FROM sitemap_urls
                 WHERE page = $1 AND published_us >= $2 ORDER BY published_us DESC, article_id DESC",
                &[&page, &since_us],
            )
            .await?;
            Ok(rows.iter().map(sitemap_url).collect())
        })
    }

    fn sitemap_page_row(&self, page: i64) -> Result<Option<SitemapPage>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT page, urls, bytes, changed_us FROM sitemap_pages WHERE page = $1",
                &[&page],
            )
            .await?;
            Ok(rows.first().map(sitemap_page))
        })
    }

    fn news_count_up_to(&self, since_us: i64, limit: i64) -> Result<i64> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT COUNT(*) FROM (SELECT 1 FROM sitemap_urls WHERE published_us >= $1 LIMIT $2) AS w",
                &[&since_us, &limit],
            )
            .await?;
            Ok(rows.first().map(|r| r.get(0)).unwrap_or(0))
        })
    }

    fn news_pages_left(&self, from_us: i64, to_us: i64) -> Result<Vec<i64>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT DISTINCT page FROM sitemap_urls
                 WHERE published_us >= $1 AND published_us < $2 ORDER BY page",
                &[&from_us, &to_us],
            )
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn news_pages(&self, since_us: i64) -> Result<Vec<NewsPage>> {
        pg!(self, c, {
            let rows = q::rows(
                c,
                "SELECT page, COUNT(*), MAX(lastmod_us), MIN(published_us) FROM sitemap_urls
                 WHERE published_us >= $1 GROUP BY page ORDER BY page",
                &[&since_us],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| NewsPage {
                    page: r.get(0),
                    urls: r.get(1),
                    lastmod_us: r.get(2),
                    oldest_us: r.get(3),
                })
                .collect())
        })
    }
}

/// A `sitemap_urls` row as the news sitemap reads it.
fn sitemap_url(r: &tokio_postgres::Row) -> SitemapUrl {
    SitemapUrl {
        id: r.get(0),
        published_us: r.get(1),
        lastmod_us: r.get(2),
        title: r.get(3),
        language: r.get(4),
        bytes: r.get(5),
    }
}

/// A `sitemap_pages` row (page, urls, bytes, changed_us).
fn sitemap_page(r: &tokio_postgres::Row) -> SitemapPage {
    SitemapPage {
        page: r.get(0),
        urls: r.get(1),
        bytes: r.get(2),
        changed_us: r.get(3),
    }
}

/// A batch's transaction on one pooled connection, holding the batch lock
/// from its start. Dropped without a commit, it rolls back before the
/// connection goes back to the pool (or the connection is closed, which
/// rolls back too).
struct PgTx {
    client: Option<Object>,
    /// Checked just before the commit (see `cluster::check_fence`).
    fence: Option<Term>,
}

impl PgTx {
    fn c(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a transaction's connection is held until it ends")
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let rolled_back = block_on(client.batch_execute("ROLLBACK")).is_ok_and(|r| r.is_ok());
        if !rolled_back {
            // Never hand a connection in an unknown state to the next user:
            // closing it makes the server roll back.
            drop(Object::take(client));
        }
    }
}

impl Tx for PgTx {
    fn article_path(&mut self, id: &str) -> Result<Option<String>> {
        in_tx!(self, c, {
            Ok(q::opt(c, "SELECT path FROM articles WHERE id = $1", &[&id])
                .await?
                .map(|r| r.get(0)))
        })
    }

    fn article_at(&mut self, path: &str) -> Result<Option<String>> {
        in_tx!(self, c, {
            Ok(
                q::opt(c, "SELECT id FROM articles WHERE path = $1", &[&path])
                    .await?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn identity(&mut self, id: &str) -> Result<Option<Identity>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "SELECT first_seen_us, content_hash, changed_at_us, version, public_since_us,
                        killed_at_us, kill_reason
                 FROM identities WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|r| Identity {
                id: id.to_string(),
                first_seen_us: r.get(0),
                content_hash: r.get(1),
                changed_at_us: r.get(2),
                version: u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX),
                public_since_us: r.get(4),
                killed_at_us: r.get(5),
                kill_reason: r.get(6),
            }))
        })
    }

    fn put_identity(&mut self, i: &Identity) -> Result<()> {
        let version = i64::from(i.version);
        let reason = i.kill_reason.as_deref().map(storable);
        let reason = reason.as_deref();
        // First-seen never moves, whatever the caller says.
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO identities(id, first_seen_us, content_hash, changed_at_us, version,
                                        public_since_us, killed_at_us, kill_reason)
                 VALUES($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT(id) DO UPDATE SET content_hash = excluded.content_hash,
                   changed_at_us = excluded.changed_at_us, version = excluded.version,
                   public_since_us = excluded.public_since_us, killed_at_us = excluded.killed_at_us,
                   kill_reason = excluded.kill_reason",
                &[
                    &i.id,
                    &i.first_seen_us,
                    &i.content_hash,
                    &i.changed_at_us,
                    &version,
                    &i.public_since_us,
                    &i.killed_at_us,
                    &reason,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn article_entry(&mut self, id: &str) -> Result<Option<String>> {
        in_tx!(self, c, {
            Ok(
                q::opt(c, "SELECT entry FROM articles WHERE id = $1", &[&id])
                    .await?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn article_status(&mut self, id: &str) -> Result<Option<Status>> {
        in_tx!(self, c, {
            Ok(
                q::opt(c, "SELECT state FROM articles WHERE id = $1", &[&id])
                    .await?
                    .map(|r| Status::parse(r.get(0)).unwrap_or_default()),
            )
        })
    }

    fn put_article(&mut self, a: &ArticleRow<'_>) -> Result<()> {
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO articles(id, path, published_us, entry, state, embargo_until_us)
                 VALUES($1, $2, $3, $4, $5, $6)
                 ON CONFLICT(id) DO UPDATE SET path = excluded.path, published_us = excluded.published_us,
                   entry = excluded.entry, state = excluded.state, embargo_until_us = excluded.embargo_until_us",
                &[
                    &a.id,
                    &a.path,
                    &a.published_us,
                    &a.entry,
                    &a.status.as_str(),
                    &a.embargo_until_us,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn editorial(&mut self, id: &str) -> Result<Option<Override>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "SELECT status, embargo_until_us, correction, reason FROM editorial WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|r| override_row(&r, 0)))
        })
    }

    fn put_tombstone(&mut self, t: &Tombstone) -> Result<()> {
        let feeds: Vec<&str> = t.feeds.iter().map(FeedKey::stored).collect();
        let feeds = serde_json::to_string(&feeds)?;
        let reason = t.reason.as_deref().map(storable);
        let reason = reason.as_deref();
        let (killed, expires) = (
            t.killed_at.timestamp_micros(),
            t.expires_at.timestamp_micros(),
        );
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO tombstones(id, killed_at_us, reason, feeds, expires_at_us) VALUES($1, $2, $3, $4, $5)
                 ON CONFLICT(id) DO UPDATE SET killed_at_us = excluded.killed_at_us, reason = excluded.reason,
                   feeds = excluded.feeds, expires_at_us = excluded.expires_at_us",
                &[&t.id, &killed, &reason, &feeds, &expires],
            )
            .await?;
            Ok(())
        })
    }

    fn delete_tombstone(&mut self, id: &str) -> Result<Vec<FeedKey>> {
        let feeds: Option<String> = in_tx!(self, c, {
            anyhow::Ok(
                q::opt(
                    c,
                    "DELETE FROM tombstones WHERE id = $1 RETURNING feeds",
                    &[&id],
                )
                .await?
                .map(|r| r.get(0)),
            )
        })?;
        feeds.map_or(Ok(Vec::new()), |f| stored_feeds(&f))
    }

    fn purge_tombstones(&mut self, now_us: i64) -> Result<Vec<FeedKey>> {
        let lists = in_tx!(self, c, {
            q::strings(
                c,
                "DELETE FROM tombstones WHERE expires_at_us <= $1 RETURNING feeds",
                &[&now_us],
            )
            .await
        })?;
        let mut out = Vec::new();
        for list in lists {
            out.extend(stored_feeds(&list)?);
        }
        Ok(out)
    }

    fn delete_article(&mut self, id: &str) -> Result<()> {
        in_tx!(self, c, {
            q::exec(c, "DELETE FROM memberships WHERE article_id = $1", &[&id]).await?;
            q::exec(c, "DELETE FROM articles WHERE id = $1", &[&id]).await?;
            Ok(())
        })
    }

    fn memberships(&mut self, id: &str) -> Result<Vec<FeedKey>> {
        in_tx!(self, c, {
            Ok(q::strings(
                c,
                "SELECT feed FROM memberships WHERE article_id = $1",
                &[&id],
            )
            .await?
            .into_iter()
            .map(FeedKey::from_stored)
            .collect())
        })
    }

    fn set_memberships(&mut self, id: &str, published_us: i64, feeds: &[FeedKey]) -> Result<()> {
        let feeds: Vec<&str> = feeds.iter().map(FeedKey::stored).collect();
        in_tx!(self, c, {
            q::exec(c, "DELETE FROM memberships WHERE article_id = $1", &[&id]).await?;
            q::exec(
                c,
                "INSERT INTO memberships(feed, published_us, article_id)
                 SELECT f, $2, $3 FROM unnest($1::text[]) AS f ON CONFLICT DO NOTHING",
                &[&feeds, &published_us, &id],
            )
            .await?;
            Ok(())
        })
    }

    fn archive_pages_of(&mut self, id: &str) -> Result<Vec<(FeedKey, u32)>> {
        in_tx!(self, c, {
            let rows = q::rows(
                c,
                "SELECT feed, page FROM memberships WHERE article_id = $1 AND page > 0",
                &[&id],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| (FeedKey::from_stored(r.get(0)), page_number(r.get(1))))
                .collect())
        })
    }

    fn live_beyond(&mut self, feed: &FeedKey, keep: usize) -> Result<Vec<String>> {
        let keep = keep as i64;
        let mut ids = in_tx!(self, c, {
            q::strings(
                c,
                "SELECT article_id FROM memberships WHERE feed = $1 AND page = 0
                 ORDER BY published_us DESC, article_id DESC OFFSET $2",
                &[&feed.stored(), &keep],
            )
            .await
        })?;
        ids.reverse();
        Ok(ids)
    }

    fn newest_archive_page(&mut self, feed: &FeedKey) -> Result<Option<(u32, u32)>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "SELECT page, assigned FROM archive_pages WHERE feed = $1 ORDER BY page DESC LIMIT 1",
                &[&feed.stored()],
            )
            .await?
            .map(|r| (page_number(r.get(0)), page_number(r.get(1)))))
        })
    }

    fn move_to_page(&mut self, feed: &FeedKey, id: &str, page: u32) -> Result<()> {
        let page = i64::from(page);
        in_tx!(self, c, {
            q::exec(
                c,
                "UPDATE memberships SET page = $3 WHERE feed = $1 AND article_id = $2",
                &[&feed.stored(), &id, &page],
            )
            .await?;
            Ok(())
        })
    }

    fn touch_archive_page(
        &mut self,
        feed: &FeedKey,
        page: u32,
        assigned: Option<u32>,
    ) -> Result<()> {
        let page = i64::from(page);
        let assigned = assigned.map(i64::from);
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO archive_pages(feed, page, assigned, stale) VALUES($1, $2, coalesce($3::bigint, 0), true)
                 ON CONFLICT(feed, page) DO UPDATE SET stale = true,
                   assigned = coalesce($3::bigint, archive_pages.assigned)",
                &[&feed.stored(), &page, &assigned],
            )
            .await?;
            Ok(())
        })
    }

    fn ensure_category(&mut self, cat: &Category) -> Result<()> {
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO categories(slug, name) VALUES($1, $2) ON CONFLICT(slug) DO NOTHING",
                &[&cat.slug, &cat.name],
            )
            .await?;
            Ok(())
        })
    }

    fn put_file(&mut self, path: &str, stamp: &FileStamp, id: Option<&str>) -> Result<()> {
        let (size, inode) = (stamp.size as i64, stamp.inode as i64);
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO files(path, size, mtime_ns, hash, article_id, inode) VALUES($1, $2, $3, $4, $5, $6)
                 ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                   hash = excluded.hash, article_id = excluded.article_id, inode = excluded.inode",
                &[&path, &size, &stamp.mtime_ns, &stamp.hash, &id, &inode],
            )
            .await?;
            Ok(())
        })
    }

    fn touch_file(&mut self, path: &str, stamp: &FileStamp) -> Result<()> {
        let (size, inode) = (stamp.size as i64, stamp.inode as i64);
        in_tx!(self, c, {
            q::exec(
                c,
                "UPDATE files SET size = $2, mtime_ns = $3, hash = $4, inode = $5 WHERE path = $1",
                &[&path, &size, &stamp.mtime_ns, &stamp.hash, &inode],
            )
            .await?;
            Ok(())
        })
    }

    fn delete_file(&mut self, path: &str) -> Result<()> {
        in_tx!(self, c, {
            q::exec(c, "DELETE FROM files WHERE path = $1", &[&path]).await?;
            q::exec(c, "DELETE FROM rejections WHERE path = $1", &[&path]).await?;
            q::exec(c, "DELETE FROM held_removals WHERE path = $1", &[&path]).await?;
            Ok(())
        })
    }

    fn put_rejection(
        &mut self,
        path: &str,
        reason: &str,
        duplicate_of: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let reason = storable(reason);
        let at = at.timestamp();
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO rejections(path, reason, at, duplicate_of) VALUES($1, $2, $3, $4)
                 ON CONFLICT(path) DO UPDATE SET reason = excluded.reason, at = excluded.at,
                   duplicate_of = excluded.duplicate_of",
                &[&path, &reason.as_ref(), &at, &duplicate_of],
            )
            .await?;
            Ok(())
        })
    }

    fn clear_rejection(&mut self, path: &str) -> Result<()> {
        in_tx!(self, c, {
            q::exec(c, "DELETE FROM rejections WHERE path = $1", &[&path]).await?;
            Ok(())
        })
    }

    fn waiting_on(&mut self, id: &str) -> Result<Vec<String>> {
        in_tx!(self, c, {
            q::strings(
                c,
                "SELECT path FROM rejections WHERE duplicate_of = $1",
                &[&id],
            )
            .await
        })
    }

    fn held_removals(&mut self) -> Result<HashMap<String, bool>> {
        in_tx!(self, c, {
            let rows = q::rows(c, "SELECT path, approved FROM held_removals", &[]).await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn hold_removal(&mut self, path: &str, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let at = at.timestamp();
        in_tx!(self, c, {
            Ok(q::exec(
                c,
                "INSERT INTO held_removals(path, article_id, held_at) VALUES($1, $2, $3)
                 ON CONFLICT(path) DO NOTHING",
                &[&path, &id, &at],
            )
            .await?
                > 0)
        })
    }

    fn release_hold(&mut self, path: &str) -> Result<bool> {
        in_tx!(self, c, {
            Ok(q::exec(c, "DELETE FROM held_removals WHERE path = $1", &[&path]).await? > 0)
        })
    }

    fn enqueue(&mut self, deliveries: &[NewDelivery]) -> Result<usize> {
        let now = Utc::now().timestamp_millis();
        in_tx!(self, c, {
            let mut n = 0;
            for d in deliveries {
                n += match d {
                    NewDelivery::Feed {
                        kind,
                        target,
                        topic,
                    } => {
                        q::exec(
                            c,
                            "INSERT INTO syndicate_outbox(kind, target, topic, ready, created_ms, next_ms)
                             SELECT $1::text, $2::text, $3::text, false, $4::bigint, $4::bigint
                             WHERE NOT EXISTS (SELECT 1 FROM syndicate_outbox
                                               WHERE kind = $1 AND target = $2 AND topic = $3 AND NOT ready AND attempts = 0)",
                            &[&kind.as_str(), target, topic, &now],
                        )
                        .await?
                    }
                    NewDelivery::Partner {
                        partner,
                        article,
                        body,
                        content_type,
                        idempotency_key,
                    } => {
                        q::exec(
                            c,
                            "INSERT INTO syndicate_outbox(kind, target, article, body, content_type, idem, ready, created_ms, next_ms)
                             VALUES('partner', $1, $2, $3, $4, $5, true, $6, $6)",
                            &[partner, article, body, content_type, idempotency_key, &now],
                        )
                        .await?
                    }
                    NewDelivery::IndexNow {
                        endpoint,
                        url,
                        article,
                        delay_ms,
                    } => {
                        q::exec(
                            c,
                            "INSERT INTO syndicate_outbox(kind, target, topic, article, ready, created_ms, next_ms)
                             VALUES('indexnow', $1, $2, $3, true, $4, $5)",
                            &[endpoint, url, article, &now, &(now + delay_ms)],
                        )
                        .await?
                    }
                } as usize;
            }
            Ok(n)
        })
    }

    fn sitemap_url(&mut self, id: &str) -> Result<Option<(i64, i64)>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "SELECT page, bytes FROM sitemap_urls WHERE article_id = $1",
                &[&id],
            )
            .await?
            .map(|r| (r.get(0), r.get(1))))
        })
    }

    fn put_sitemap_url(&mut self, page: i64, u: &SitemapUrl) -> Result<()> {
        let title = storable(&u.title);
        let title = title.as_ref();
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO sitemap_urls(article_id, page, published_us, lastmod_us, title, language, bytes)
                 VALUES($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT(article_id) DO UPDATE SET page = excluded.page,
                   published_us = excluded.published_us, lastmod_us = excluded.lastmod_us,
                   title = excluded.title, language = excluded.language, bytes = excluded.bytes",
                &[
                    &u.id,
                    &page,
                    &u.published_us,
                    &u.lastmod_us,
                    &title,
                    &u.language,
                    &u.bytes,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn delete_sitemap_url(&mut self, id: &str) -> Result<Option<(i64, i64, i64)>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "DELETE FROM sitemap_urls WHERE article_id = $1 RETURNING page, bytes, published_us",
                &[&id],
            )
            .await?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
        })
    }

    fn sitemap_page(&mut self, page: i64) -> Result<Option<SitemapPage>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "SELECT page, urls, bytes, changed_us FROM sitemap_pages WHERE page = $1",
                &[&page],
            )
            .await?
            .map(|r| sitemap_page(&r)))
        })
    }

    fn last_filled_sitemap_page(&mut self) -> Result<Option<SitemapPage>> {
        in_tx!(self, c, {
            Ok(q::opt(
                c,
                "SELECT page, urls, bytes, changed_us FROM sitemap_pages WHERE urls > 0
                 ORDER BY page DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|r| sitemap_page(&r)))
        })
    }

    fn put_sitemap_page(&mut self, p: &SitemapPage) -> Result<()> {
        in_tx!(self, c, {
            q::exec(
                c,
                "INSERT INTO sitemap_pages(page, urls, bytes, changed_us) VALUES($1, $2, $3, $4)
                 ON CONFLICT(page) DO UPDATE SET urls = excluded.urls, bytes = excluded.bytes,
                   changed_us = excluded.changed_us",
                &[&p.page, &p.urls, &p.bytes, &p.changed_us],
            )
            .await?;
            Ok(())
        })
    }

    fn clear_sitemap(&mut self, now_us: i64) -> Result<()> {
        in_tx!(self, c, {
            q::exec(c, "DELETE FROM sitemap_urls", &[]).await?;
            q::exec(
                c,
                "UPDATE sitemap_pages SET urls = 0, bytes = 0, changed_us = $1",
                &[&now_us],
            )
            .await?;
            Ok(())
        })
    }

    fn public_entries_after(
        &mut self,
        published_us: i64,
        id: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let limit = limit as i64;
        // The main feed's memberships are exactly the public articles, in
        // an index ordered by publication time.
        in_tx!(self, c, {
            q::strings(
                c,
                "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
                 WHERE m.feed = '' AND (m.published_us, m.article_id) > ($1, $2)
                 ORDER BY m.published_us, m.article_id LIMIT $3",
                &[&published_us, &id, &limit],
            )
            .await
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // The last statement: a takeover after this waits for the commit.
        // On failure the drop rolls the whole batch back.
        in_tx!(self, c, { check_fence(c, self.fence.as_ref()).await })?;
        let client = self
            .client
            .take()
            .expect("a transaction's connection is held until it ends");
        let committed = block_on(client.batch_execute("COMMIT"))?;
        if let Err(e) = committed {
            drop(Object::take(client));
            return Err(e.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod connection_tests {
    use super::client_config;
    use crate::config::{CatalogConfig, PostgresUrl};
    use std::time::Duration;

    /// Every connection gives up on a silent server within
    /// `catalog.tcp_timeout_secs`: unacknowledged data by the TCP user
    /// timeout, an idle connection by keepalive probes that all fit in it.
    #[test]
    fn a_connection_gives_up_on_a_silent_server_within_the_tcp_timeout() {
        for secs in [6, 30, 3600] {
            let settings = CatalogConfig {
                tcp_timeout_secs: secs,
                ..CatalogConfig::default()
            };
            let url = PostgresUrl::from_setting(
                "postgres://u:pw@127.0.0.1:5/db",
                "catalog.url",
                &settings,
            )
            .unwrap();
            let config = client_config(&url, "feedwire").unwrap();
            let bound = Duration::from_secs(secs);
            assert_eq!(config.get_tcp_user_timeout(), Some(&bound));
            assert!(config.get_keepalives());
            let interval = config.get_keepalives_interval().unwrap();
            let retries = config.get_keepalives_retries().unwrap();
            let detected = config.get_keepalives_idle() + interval * retries;
            assert!(
                detected <= bound,
                "{secs} s: a dead idle connection is noticed after {detected:?}"
            );
            assert!(interval >= Duration::from_secs(1));
            assert_eq!(config.get_connect_timeout(), Some(&url.connect_timeout));
        }
    }
}
