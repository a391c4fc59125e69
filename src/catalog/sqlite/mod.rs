//! The embedded SQLite backend: one file under `paths.state`, in WAL mode
//! (readers never block the daemon; a commit costs one fsync of the log).
//!
//! Several connections share the file (the pipeline's, the page renderer's,
//! syndication's), so every write transaction is `BEGIN IMMEDIATE`: a
//! deferred transaction that reads first and writes later fails at once with
//! `SQLITE_BUSY` if another connection committed in between (the busy timeout
//! does not cover that upgrade); taken up front, the lock is waited for.

mod cluster;
mod outbox;
mod schema;
#[cfg(test)]
mod tests;

use super::{
    ArticleRow, ArticleState, Backend, EditorCommand, FeedKey, FeedRecord, FileStamp, HeldRemoval,
    Identity, KnownFile, NewDelivery, NewsPage, Override, PageUrl, PendingCommand, Rejection,
    SitemapPage, SitemapUrl, Status, Tombstone, Tx,
};
use crate::article::Category;
use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashMap;
use std::path::Path;

/// A TEXT column as a `String`, its UTF-8 checked with SIMD. Entries are
/// kilobytes of Vietnamese text, read back for every document that holds
/// them; rusqlite's own check (the standard library's) was 7 % of a cold
/// build's CPU.
fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let bytes = r.get_ref(i)?.as_bytes().map_err(|e| failed(Box::new(e)))?;
    simdutf8::basic::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| failed(Box::new(e)))
}

/// A transaction that holds the write lock from its start (see the module
/// doc). Every writer of the catalog file uses one.
fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Run `f` in an immediate transaction on a shared connection.
fn write_transaction_on<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A feed's live window, newest first (`memberships_by_page`: a range scan
/// of `limit` rows, whatever the archive size).
pub(super) const LIVE_NEWEST: &str =
    "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
     WHERE m.feed = ?1 AND m.page = 0
     ORDER BY m.published_us DESC, m.article_id DESC LIMIT ?2";

/// A feed's live members past its newest `?2`: the same scan, continued.
pub(super) const LIVE_BEYOND: &str =
    "SELECT article_id FROM memberships WHERE feed = ?1 AND page = 0
     ORDER BY published_us DESC, article_id DESC LIMIT -1 OFFSET ?2";

/// One archive page's entries, newest first: a range scan of the page.
pub(super) const PAGE_ENTRIES: &str =
    "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
     WHERE m.feed = ?1 AND m.page = ?2
     ORDER BY m.published_us DESC, m.article_id DESC";

pub(super) struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    pub(super) fn open(path: &Path) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the state folder {}", dir.display()))?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open the catalog {}", path.display()))?;
        schema::prepare(&mut conn)
            .with_context(|| format!("cannot prepare the catalog {}", path.display()))?;
        Ok(Sqlite { conn })
    }

    /// The connection, for the copy into PostgreSQL (`migrate-catalog`).
    pub(in crate::catalog) fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A `files` row (size, mtime_ns, hash, article_id, inode) as a `KnownFile`.
fn known_file(r: &rusqlite::Row<'_>) -> rusqlite::Result<KnownFile> {
    Ok(KnownFile {
        stamp: FileStamp {
            size: r.get::<_, i64>(0)? as u64,
            mtime_ns: r.get(1)?,
            inode: r.get::<_, i64>(4)? as u64,
            hash: r.get(2)?,
        },
        id: r.get(3)?,
    })
}

/// Feed keys as a tombstone stores them (a JSON array).
fn stored_feeds(json: &str) -> Result<Vec<FeedKey>> {
    let keys: Vec<String> = serde_json::from_str(json)?;
    Ok(keys.into_iter().map(FeedKey::from_stored).collect())
}

/// An `editorial` row (status, embargo_until_us, correction, reason).
fn override_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Override> {
    Ok(Override {
        status: r
            .get::<_, Option<String>>(0)?
            .and_then(|s| Status::parse(&s)),
        embargo_until: r
            .get::<_, Option<i64>>(1)?
            .and_then(DateTime::from_timestamp_micros),
        correction: r.get(2)?,
        reason: r.get(3)?,
    })
}

fn from_unix(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

impl Backend for Sqlite {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(SqliteTx {
            tx: write_transaction(&mut self.conn)?,
        }))
    }

    fn known_files(&self) -> Result<HashMap<String, KnownFile>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, mtime_ns, hash, article_id, inode, path FROM files")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(5)?, known_file(r)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn known_files_among(
        &self,
        keys: &mut dyn Iterator<Item = &str>,
    ) -> Result<HashMap<String, KnownFile>> {
        let mut out = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT size, mtime_ns, hash, article_id, inode FROM files WHERE path = ?1",
        )?;
        for key in keys {
            if let Some(k) = stmt.query_row([key], known_file).optional()? {
                out.insert(key.to_string(), k);
            }
        }
        Ok(out)
    }

    fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(LIVE_NEWEST)?;
        let rows = stmt.query_map(params![feed.stored(), limit as i64], |r| text(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn archive_page_count(&self, feed: &FeedKey) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached("SELECT coalesce(max(page), 0) FROM archive_pages WHERE feed = ?1")?
            .query_row([feed.stored()], |r| r.get(0))?)
    }

    fn archive_page(&self, feed: &FeedKey, page: u32) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(PAGE_ENTRIES)?;
        let rows = stmt.query_map(params![feed.stored(), page], |r| text(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stale_archive_pages(&self) -> Result<Vec<(FeedKey, u32)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT feed, page FROM archive_pages WHERE stale = 1 ORDER BY feed, page",
        )?;
        let rows = stmt.query_map([], |r| Ok((FeedKey::from_stored(r.get(0)?), r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn archive_page_published(&self, feed: &FeedKey, page: u32) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE archive_pages SET stale = 0 WHERE feed = ?1 AND page = ?2")?
            .execute(params![feed.stored(), page])?;
        Ok(())
    }

    fn entry(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT entry FROM articles WHERE id = ?1 AND state = 'usable'")?
            .query_row([id], |r| text(r, 0))
            .optional()?)
    }

    fn categories(&self) -> Result<Vec<Category>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT slug, name FROM categories ORDER BY slug")?;
        let rows = stmt.query_map([], |r| {
            Ok(Category {
                slug: r.get(0)?,
                name: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn category(&self, slug: &str) -> Result<Option<Category>> {
        Ok(self
            .conn
            .prepare_cached("SELECT name FROM categories WHERE slug = ?1")?
            .query_row([slug], |r| r.get::<_, String>(0))
            .optional()?
            .map(|name| Category {
                name,
                slug: slug.to_string(),
            }))
    }

    fn article_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM articles", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    fn rejection_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM rejections", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    fn rejections(&self) -> Result<Vec<Rejection>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, reason, at FROM rejections ORDER BY at DESC, path")?;
        let rows = stmt.query_map([], |r| {
            Ok(Rejection {
                path: r.get(0)?,
                reason: r.get(1)?,
                at: from_unix(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn held_removals(&self) -> Result<Vec<HeldRemoval>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, article_id, held_at, approved FROM held_removals ORDER BY held_at, path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(HeldRemoval {
                path: r.get(0)?,
                id: r.get(1)?,
                held_at: from_unix(r.get(2)?),
                approved: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn approve_held_removals(&self) -> Result<usize> {
        Ok(write_transaction_on(&self.conn, |tx| {
            tx.execute(
                "UPDATE held_removals SET approved = 1 WHERE approved = 0",
                [],
            )
        })?)
    }

    fn record_published(&self, path: &str, hash: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO published(path, hash, at) VALUES(?1, ?2, ?3)
             ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, at = excluded.at",
            params![path, hash, at.timestamp()],
        )?;
        Ok(())
    }

    fn published_feeds(&self) -> Result<Vec<FeedRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, hash, at FROM published ORDER BY path")?;
        let rows = stmt.query_map([], |r| {
            Ok(FeedRecord {
                path: r.get(0)?,
                hash: r.get(1)?,
                published_at: from_unix(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn forget_file_stamps(&self) -> Result<()> {
        self.conn
            .execute("UPDATE files SET size = -1, mtime_ns = -1, hash = ''", [])?;
        Ok(())
    }

    fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    fn article_state(&self, id: &str) -> Result<ArticleState> {
        let row: Option<(String, String)> = self
            .conn
            .prepare_cached("SELECT state, entry FROM articles WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, text(r, 1)?)))
            .optional()?;
        if let Some((state, entry)) = row {
            return Ok(match Status::parse(&state) {
                Some(Status::Usable) | None => {
                    ArticleState::Public(Box::new(serde_json::from_str(&entry)?))
                }
                _ => ArticleState::Withheld,
            });
        }
        let killed: Option<(Option<i64>, Option<String>)> = self
            .conn
            .prepare_cached("SELECT killed_at_us, kill_reason FROM identities WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match killed {
            Some((Some(at), reason)) => ArticleState::Killed {
                at: DateTime::from_timestamp_micros(at).unwrap_or_default(),
                reason,
            },
            _ => ArticleState::Unknown,
        })
    }

    fn tombstones(&self, now_us: i64) -> Result<Vec<Tombstone>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, killed_at_us, reason, feeds, expires_at_us FROM tombstones WHERE expires_at_us > ?1",
        )?;
        let rows = stmt.query_map([now_us], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, killed, reason, feeds, expires) = row?;
            out.push(Tombstone {
                id,
                killed_at: DateTime::from_timestamp_micros(killed).unwrap_or_default(),
                reason,
                feeds: stored_feeds(&feeds)?,
                expires_at: DateTime::from_timestamp_micros(expires).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn next_lifecycle_deadline(&self) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT min(t) FROM (
                SELECT min(embargo_until_us) AS t FROM articles
                 WHERE state = 'withheld' AND embargo_until_us IS NOT NULL
                UNION ALL SELECT min(expires_at_us) FROM tombstones)",
            [],
            |r| r.get(0),
        )?)
    }

    fn lapsed_embargoes(&self, now_us: i64) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path FROM articles WHERE state = 'withheld' AND embargo_until_us <= ?1 ORDER BY path",
        )?;
        let rows = stmt.query_map([now_us], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn withheld(&self, offset: usize, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry FROM articles WHERE state = 'withheld'
             ORDER BY published_us DESC, id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], |r| text(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn file_of(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT path FROM files WHERE article_id = ?1 ORDER BY path LIMIT 1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    fn record_command(
        &self,
        id: &str,
        command: &EditorCommand,
        who: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let at_us = at.timestamp_micros();
        Ok(write_transaction_on(&self.conn, |tx| {
            let argument: Option<String> = match command {
                EditorCommand::Embargo { until } => Some(until.to_rfc3339()),
                EditorCommand::Kill { reason } => reason.clone(),
                EditorCommand::Correct { note } => Some(note.clone()),
                EditorCommand::Reinstate => None,
            };
            tx.execute(
                "INSERT INTO operator_commands(command, article_id, argument, who, at_us) VALUES(?1, ?2, ?3, ?4, ?5)",
                params![command.name(), id, argument, who, at_us],
            )?;
            match command {
                EditorCommand::Embargo { until } => tx.execute(
                    "INSERT INTO editorial(id, status, embargo_until_us, updated_at_us) VALUES(?1, 'withheld', ?2, ?3)
                     ON CONFLICT(id) DO UPDATE SET status = 'withheld', embargo_until_us = excluded.embargo_until_us,
                       updated_at_us = excluded.updated_at_us",
                    params![id, until.timestamp_micros(), at_us],
                ),
                EditorCommand::Kill { reason } => tx.execute(
                    "INSERT INTO editorial(id, status, reason, updated_at_us) VALUES(?1, 'canceled', ?2, ?3)
                     ON CONFLICT(id) DO UPDATE SET status = 'canceled', reason = excluded.reason,
                       updated_at_us = excluded.updated_at_us",
                    params![id, reason, at_us],
                ),
                EditorCommand::Correct { note } => tx.execute(
                    "INSERT INTO editorial(id, correction, updated_at_us) VALUES(?1, ?2, ?3)
                     ON CONFLICT(id) DO UPDATE SET correction = excluded.correction,
                       updated_at_us = excluded.updated_at_us",
                    params![id, note, at_us],
                ),
                // Back to what the file says: the kill and any embargo or
                // status an editor set are dropped (a correction stays).
                EditorCommand::Reinstate => tx.execute(
                    "UPDATE editorial SET status = NULL, embargo_until_us = NULL, reason = NULL,
                       updated_at_us = ?2 WHERE id = ?1",
                    params![id, at_us],
                ),
            }
        })
        .map(|_| ())?)
    }

    fn pending_commands(&self) -> Result<Vec<PendingCommand>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, article_id, command, who, at_us FROM operator_commands WHERE applied = 0 ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingCommand {
                seq: r.get(0)?,
                id: r.get(1)?,
                command: r.get(2)?,
                who: r.get(3)?,
                at: DateTime::from_timestamp_micros(r.get(4)?).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn mark_commands_applied(&self, up_to_seq: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE operator_commands SET applied = 1 WHERE applied = 0 AND seq <= ?1",
            [up_to_seq],
        )?;
        Ok(())
    }

    fn overrides(&self) -> Result<Vec<(String, Override)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, status, embargo_until_us, correction, reason FROM editorial
             WHERE status IS NOT NULL OR embargo_until_us IS NOT NULL OR correction IS NOT NULL
             ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Override {
                    status: r
                        .get::<_, Option<String>>(1)?
                        .and_then(|s| Status::parse(&s)),
                    embargo_until: r
                        .get::<_, Option<i64>>(2)?
                        .and_then(DateTime::from_timestamp_micros),
                    correction: r.get(3)?,
                    reason: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn sitemap_pages(&self) -> Result<Vec<SitemapPage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT page, urls, bytes, changed_us FROM sitemap_pages ORDER BY page",
        )?;
        let rows = stmt.query_map([], sitemap_page)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn sitemap_page_urls(&self, page: i64) -> Result<Vec<PageUrl>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT article_id, lastmod_us FROM sitemap_urls WHERE page = ?1
             ORDER BY published_us, article_id",
        )?;
        let rows = stmt.query_map([page], |r| {
            Ok(PageUrl {
                id: r.get(0)?,
                lastmod_us: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn news_urls(&self, since_us: i64) -> Result<Vec<SitemapUrl>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT article_id, published_us, lastmod_us, title, language, bytes FROM sitemap_urls
             WHERE published_us >= ?1 ORDER BY published_us DESC, article_id DESC",
        )?;
        let rows = stmt.query_map([since_us], sitemap_url)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn news_page_urls(&self, page: i64, since_us: i64) -> Result<Vec<SitemapUrl>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT article_id, published_us, lastmod_us, title, language, bytes FROM sitemap_urls
             WHERE page = ?1 AND published_us >= ?2 ORDER BY published_us DESC, article_id DESC",
        )?;
        let rows = stmt.query_map([page, since_us], sitemap_url)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn sitemap_page_row(&self, page: i64) -> Result<Option<SitemapPage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT page, urls, bytes, changed_us FROM sitemap_pages WHERE page = ?1",
        )?;
        Ok(stmt.query_row([page], sitemap_page).optional()?)
    }

    fn news_count_up_to(&self, since_us: i64, limit: i64) -> Result<i64> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM sitemap_urls WHERE published_us >= ?1 LIMIT ?2)",
        )?;
        Ok(stmt.query_row([since_us, limit], |r| r.get(0))?)
    }

    fn news_pages_left(&self, from_us: i64, to_us: i64) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT page FROM sitemap_urls
             WHERE published_us >= ?1 AND published_us < ?2 ORDER BY page",
        )?;
        let rows = stmt.query_map([from_us, to_us], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn news_pages(&self, since_us: i64) -> Result<Vec<NewsPage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT page, COUNT(*), MAX(lastmod_us), MIN(published_us) FROM sitemap_urls
             WHERE published_us >= ?1 GROUP BY page ORDER BY page",
        )?;
        let rows = stmt.query_map([since_us], |r| {
            Ok(NewsPage {
                page: r.get(0)?,
                urls: r.get(1)?,
                lastmod_us: r.get(2)?,
                oldest_us: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A `sitemap_urls` row as the news sitemap reads it.
fn sitemap_url(r: &rusqlite::Row<'_>) -> rusqlite::Result<SitemapUrl> {
    Ok(SitemapUrl {
        id: r.get(0)?,
        published_us: r.get(1)?,
        lastmod_us: r.get(2)?,
        title: r.get(3)?,
        language: r.get(4)?,
        bytes: r.get(5)?,
    })
}

/// A `sitemap_pages` row (page, urls, bytes, changed_us).
fn sitemap_page(r: &rusqlite::Row<'_>) -> rusqlite::Result<SitemapPage> {
    Ok(SitemapPage {
        page: r.get(0)?,
        urls: r.get(1)?,
        bytes: r.get(2)?,
        changed_us: r.get(3)?,
    })
}

/// A batch's transaction. Statements go through the connection's statement
/// cache: a build runs the same few statements 100,000 times, and
/// re-preparing them was a tenth of its time.
struct SqliteTx<'c> {
    tx: Transaction<'c>,
}

impl SqliteTx<'_> {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.tx.prepare_cached(sql)?.execute(params)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        self.tx.prepare_cached(sql)?.query_row(params, f).optional()
    }

    fn strings(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |r| text(r, 0))?;
        rows.collect()
    }
}

impl Tx for SqliteTx<'_> {
    fn article_path(&mut self, id: &str) -> Result<Option<String>> {
        Ok(
            self.row("SELECT path FROM articles WHERE id = ?1", [id], |r| {
                r.get(0)
            })?,
        )
    }

    fn article_at(&mut self, path: &str) -> Result<Option<String>> {
        Ok(
            self.row("SELECT id FROM articles WHERE path = ?1", [path], |r| {
                r.get(0)
            })?,
        )
    }

    fn identity(&mut self, id: &str) -> Result<Option<Identity>> {
        Ok(self.row(
            "SELECT first_seen_us, content_hash, changed_at_us, version, public_since_us,
                    killed_at_us, kill_reason
             FROM identities WHERE id = ?1",
            [id],
            |r| {
                Ok(Identity {
                    id: id.to_string(),
                    first_seen_us: r.get(0)?,
                    content_hash: r.get(1)?,
                    changed_at_us: r.get(2)?,
                    version: r.get(3)?,
                    public_since_us: r.get(4)?,
                    killed_at_us: r.get(5)?,
                    kill_reason: r.get(6)?,
                })
            },
        )?)
    }

    fn put_identity(&mut self, i: &Identity) -> Result<()> {
        // First-seen never moves, whatever the caller says.
        self.exec(
            "INSERT INTO identities(id, first_seen_us, content_hash, changed_at_us, version,
                                    public_since_us, killed_at_us, kill_reason)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET content_hash = excluded.content_hash,
               changed_at_us = excluded.changed_at_us, version = excluded.version,
               public_since_us = excluded.public_since_us, killed_at_us = excluded.killed_at_us,
               kill_reason = excluded.kill_reason",
            params![
                i.id,
                i.first_seen_us,
                i.content_hash,
                i.changed_at_us,
                i.version,
                i.public_since_us,
                i.killed_at_us,
                i.kill_reason
            ],
        )?;
        Ok(())
    }

    fn article_entry(&mut self, id: &str) -> Result<Option<String>> {
        Ok(
            self.row("SELECT entry FROM articles WHERE id = ?1", [id], |r| {
                text(r, 0)
            })?,
        )
    }

    fn article_status(&mut self, id: &str) -> Result<Option<Status>> {
        Ok(self
            .row("SELECT state FROM articles WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })?
            .map(|s| Status::parse(&s).unwrap_or_default()))
    }

    fn put_article(&mut self, a: &ArticleRow<'_>) -> Result<()> {
        self.exec(
            "INSERT INTO articles(id, path, published_us, entry, state, embargo_until_us)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET path = excluded.path, published_us = excluded.published_us,
               entry = excluded.entry, state = excluded.state, embargo_until_us = excluded.embargo_until_us",
            params![
                a.id,
                a.path,
                a.published_us,
                a.entry,
                a.status.as_str(),
                a.embargo_until_us
            ],
        )?;
        Ok(())
    }

    fn editorial(&mut self, id: &str) -> Result<Option<Override>> {
        Ok(self.row(
            "SELECT status, embargo_until_us, correction, reason FROM editorial WHERE id = ?1",
            [id],
            override_row,
        )?)
    }

    fn put_tombstone(&mut self, t: &Tombstone) -> Result<()> {
        let feeds: Vec<&str> = t.feeds.iter().map(FeedKey::stored).collect();
        self.exec(
            "INSERT INTO tombstones(id, killed_at_us, reason, feeds, expires_at_us) VALUES(?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET killed_at_us = excluded.killed_at_us, reason = excluded.reason,
               feeds = excluded.feeds, expires_at_us = excluded.expires_at_us",
            params![
                t.id,
                t.killed_at.timestamp_micros(),
                t.reason,
                serde_json::to_string(&feeds)?,
                t.expires_at.timestamp_micros()
            ],
        )?;
        Ok(())
    }

    fn delete_tombstone(&mut self, id: &str) -> Result<Vec<FeedKey>> {
        let feeds = self.row("SELECT feeds FROM tombstones WHERE id = ?1", [id], |r| {
            r.get::<_, String>(0)
        })?;
        self.exec("DELETE FROM tombstones WHERE id = ?1", [id])?;
        feeds.map_or(Ok(Vec::new()), |f| stored_feeds(&f))
    }

    fn purge_tombstones(&mut self, now_us: i64) -> Result<Vec<FeedKey>> {
        let lists = self.strings(
            "SELECT feeds FROM tombstones WHERE expires_at_us <= ?1",
            [now_us],
        )?;
        self.exec("DELETE FROM tombstones WHERE expires_at_us <= ?1", [now_us])?;
        let mut out = Vec::new();
        for list in lists {
            out.extend(stored_feeds(&list)?);
        }
        Ok(out)
    }

    fn delete_article(&mut self, id: &str) -> Result<()> {
        self.exec("DELETE FROM memberships WHERE article_id = ?1", [id])?;
        self.exec("DELETE FROM articles WHERE id = ?1", [id])?;
        Ok(())
    }

    fn memberships(&mut self, id: &str) -> Result<Vec<FeedKey>> {
        Ok(self
            .strings("SELECT feed FROM memberships WHERE article_id = ?1", [id])?
            .into_iter()
            .map(FeedKey::from_stored)
            .collect())
    }

    fn set_memberships(&mut self, id: &str, published_us: i64, feeds: &[FeedKey]) -> Result<()> {
        self.exec("DELETE FROM memberships WHERE article_id = ?1", [id])?;
        for feed in feeds {
            self.exec(
                "INSERT OR IGNORE INTO memberships(feed, published_us, article_id) VALUES(?1, ?2, ?3)",
                params![feed.stored(), published_us, id],
            )?;
        }
        Ok(())
    }

    fn archive_pages_of(&mut self, id: &str) -> Result<Vec<(FeedKey, u32)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT feed, page FROM memberships WHERE article_id = ?1 AND page > 0",
        )?;
        let rows = stmt.query_map([id], |r| Ok((FeedKey::from_stored(r.get(0)?), r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn live_beyond(&mut self, feed: &FeedKey, keep: usize) -> Result<Vec<String>> {
        let mut ids = self.strings(LIVE_BEYOND, params![feed.stored(), keep as i64])?;
        ids.reverse();
        Ok(ids)
    }

    fn newest_archive_page(&mut self, feed: &FeedKey) -> Result<Option<(u32, u32)>> {
        Ok(self.row(
            "SELECT page, assigned FROM archive_pages WHERE feed = ?1 ORDER BY page DESC LIMIT 1",
            [feed.stored()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    fn move_to_page(&mut self, feed: &FeedKey, id: &str, page: u32) -> Result<()> {
        self.exec(
            "UPDATE memberships SET page = ?3 WHERE feed = ?1 AND article_id = ?2",
            params![feed.stored(), id, page],
        )?;
        Ok(())
    }

    fn touch_archive_page(
        &mut self,
        feed: &FeedKey,
        page: u32,
        assigned: Option<u32>,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO archive_pages(feed, page, assigned, stale) VALUES(?1, ?2, coalesce(?3, 0), 1)
             ON CONFLICT(feed, page) DO UPDATE SET stale = 1,
               assigned = coalesce(?3, archive_pages.assigned)",
            params![feed.stored(), page, assigned],
        )?;
        Ok(())
    }

    fn ensure_category(&mut self, c: &Category) -> Result<()> {
        self.exec(
            "INSERT INTO categories(slug, name) VALUES(?1, ?2) ON CONFLICT(slug) DO NOTHING",
            params![c.slug, c.name],
        )?;
        Ok(())
    }

    fn put_file(&mut self, path: &str, stamp: &FileStamp, id: Option<&str>) -> Result<()> {
        self.exec(
            "INSERT INTO files(path, size, mtime_ns, hash, article_id, inode) VALUES(?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
               hash = excluded.hash, article_id = excluded.article_id, inode = excluded.inode",
            params![path, stamp.size as i64, stamp.mtime_ns, stamp.hash, id, stamp.inode as i64],
        )?;
        Ok(())
    }

    fn touch_file(&mut self, path: &str, stamp: &FileStamp) -> Result<()> {
        self.exec(
            "UPDATE files SET size = ?2, mtime_ns = ?3, hash = ?4, inode = ?5 WHERE path = ?1",
            params![
                path,
                stamp.size as i64,
                stamp.mtime_ns,
                stamp.hash,
                stamp.inode as i64
            ],
        )?;
        Ok(())
    }

    fn delete_file(&mut self, path: &str) -> Result<()> {
        self.exec("DELETE FROM files WHERE path = ?1", [path])?;
        self.exec("DELETE FROM rejections WHERE path = ?1", [path])?;
        self.exec("DELETE FROM held_removals WHERE path = ?1", [path])?;
        Ok(())
    }

    fn put_rejection(
        &mut self,
        path: &str,
        reason: &str,
        duplicate_of: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO rejections(path, reason, at, duplicate_of) VALUES(?1, ?2, ?3, ?4)
             ON CONFLICT(path) DO UPDATE SET reason = excluded.reason, at = excluded.at,
               duplicate_of = excluded.duplicate_of",
            params![path, reason, at.timestamp(), duplicate_of],
        )?;
        Ok(())
    }

    fn clear_rejection(&mut self, path: &str) -> Result<()> {
        self.exec("DELETE FROM rejections WHERE path = ?1", [path])?;
        Ok(())
    }

    fn waiting_on(&mut self, id: &str) -> Result<Vec<String>> {
        Ok(self.strings("SELECT path FROM rejections WHERE duplicate_of = ?1", [id])?)
    }

    fn held_removals(&mut self) -> Result<HashMap<String, bool>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT path, approved FROM held_removals")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn hold_removal(&mut self, path: &str, id: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.exec(
            "INSERT INTO held_removals(path, article_id, held_at) VALUES(?1, ?2, ?3)
             ON CONFLICT(path) DO NOTHING",
            params![path, id, at.timestamp()],
        )? > 0)
    }

    fn release_hold(&mut self, path: &str) -> Result<bool> {
        Ok(self.exec("DELETE FROM held_removals WHERE path = ?1", [path])? > 0)
    }

    fn enqueue(&mut self, deliveries: &[NewDelivery]) -> Result<usize> {
        let now = Utc::now().timestamp_millis();
        let mut n = 0;
        for d in deliveries {
            n += match d {
                NewDelivery::Feed {
                    kind,
                    target,
                    topic,
                } => self.exec(
                    "INSERT INTO syndicate_outbox(kind, target, topic, ready, created_ms, next_ms)
                     SELECT ?1, ?2, ?3, 0, ?4, ?4
                     WHERE NOT EXISTS (SELECT 1 FROM syndicate_outbox
                                       WHERE kind = ?1 AND target = ?2 AND topic = ?3 AND ready = 0 AND attempts = 0)",
                    params![kind.as_str(), target, topic, now],
                )?,
                NewDelivery::Partner {
                    partner,
                    article,
                    body,
                    content_type,
                    idempotency_key,
                } => self.exec(
                    "INSERT INTO syndicate_outbox(kind, target, article, body, content_type, idem, ready, created_ms, next_ms)
                     VALUES('partner', ?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                    params![partner, article, body, content_type, idempotency_key, now],
                )?,
                NewDelivery::IndexNow {
                    endpoint,
                    url,
                    article,
                    delay_ms,
                } => self.exec(
                    "INSERT INTO syndicate_outbox(kind, target, topic, article, ready, created_ms, next_ms)
                     VALUES('indexnow', ?1, ?2, ?3, 1, ?4, ?5)",
                    params![endpoint, url, article, now, now + delay_ms],
                )?,
            };
        }
        Ok(n)
    }

    fn sitemap_url(&mut self, id: &str) -> Result<Option<(i64, i64)>> {
        Ok(self.row(
            "SELECT page, bytes FROM sitemap_urls WHERE article_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    fn put_sitemap_url(&mut self, page: i64, u: &SitemapUrl) -> Result<()> {
        self.exec(
            "INSERT INTO sitemap_urls(article_id, page, published_us, lastmod_us, title, language, bytes)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(article_id) DO UPDATE SET page = excluded.page,
               published_us = excluded.published_us, lastmod_us = excluded.lastmod_us,
               title = excluded.title, language = excluded.language, bytes = excluded.bytes",
            params![
                u.id,
                page,
                u.published_us,
                u.lastmod_us,
                u.title,
                u.language,
                u.bytes
            ],
        )?;
        Ok(())
    }

    fn delete_sitemap_url(&mut self, id: &str) -> Result<Option<(i64, i64, i64)>> {
        let row = self.row(
            "SELECT page, bytes, published_us FROM sitemap_urls WHERE article_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if row.is_some() {
            self.exec("DELETE FROM sitemap_urls WHERE article_id = ?1", [id])?;
        }
        Ok(row)
    }

    fn sitemap_page(&mut self, page: i64) -> Result<Option<SitemapPage>> {
        Ok(self.row(
            "SELECT page, urls, bytes, changed_us FROM sitemap_pages WHERE page = ?1",
            [page],
            sitemap_page,
        )?)
    }

    fn last_filled_sitemap_page(&mut self) -> Result<Option<SitemapPage>> {
        Ok(self.row(
            "SELECT page, urls, bytes, changed_us FROM sitemap_pages WHERE urls > 0
             ORDER BY page DESC LIMIT 1",
            [],
            sitemap_page,
        )?)
    }

    fn put_sitemap_page(&mut self, p: &SitemapPage) -> Result<()> {
        self.exec(
            "INSERT INTO sitemap_pages(page, urls, bytes, changed_us) VALUES(?1, ?2, ?3, ?4)
             ON CONFLICT(page) DO UPDATE SET urls = excluded.urls, bytes = excluded.bytes,
               changed_us = excluded.changed_us",
            params![p.page, p.urls, p.bytes, p.changed_us],
        )?;
        Ok(())
    }

    fn clear_sitemap(&mut self, now_us: i64) -> Result<()> {
        self.exec("DELETE FROM sitemap_urls", [])?;
        self.exec(
            "UPDATE sitemap_pages SET urls = 0, bytes = 0, changed_us = ?1",
            [now_us],
        )?;
        Ok(())
    }

    fn public_entries_after(
        &mut self,
        published_us: i64,
        id: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        // The main feed's memberships are exactly the public articles, in
        // an index ordered by publication time.
        Ok(self.strings(
            "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
             WHERE m.feed = '' AND (m.published_us > ?1 OR (m.published_us = ?1 AND m.article_id > ?2))
             ORDER BY m.published_us, m.article_id LIMIT ?3",
            params![published_us, id, limit as i64],
        )?)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}
