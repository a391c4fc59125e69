//! The catalog: feedwire's one source of truth, an embedded SQLite database.
//!
//! It owns what exists (accepted articles and the files they came from), when
//! each id was first seen (so `published` never moves across rebuilds and
//! restarts), which feeds every article belongs to (kept as an index ordered
//! newest first, so rendering a feed reads only its newest N rows no matter how
//! large the archive is), and which files were rejected and why.
//!
//! Changes go through a [`Batch`], one SQLite transaction: a crash either keeps
//! the whole batch or none of it. Other modules see entries and feed keys, never
//! tables.

mod schema;
#[cfg(test)]
mod tests;

use crate::article::{Article, Category, Entry};
use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

/// A feed the catalog can list entries for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeedKey {
    /// Every article.
    Main,
    /// Articles in one category, by slug.
    Category(String),
}

impl FeedKey {
    fn column(&self) -> &str {
        match self {
            FeedKey::Main => "",
            FeedKey::Category(slug) => slug,
        }
    }
    fn from_column(s: String) -> FeedKey {
        if s.is_empty() {
            FeedKey::Main
        } else {
            FeedKey::Category(s)
        }
    }
}

/// What the file system said about a file the last time it was read. If size
/// and modification time are unchanged the file is not read again; if they
/// differ but the content hash is the same it is not parsed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    /// A file replaced by another of the same size and mtime (a restore, a
    /// sync tool) is a different inode, and is read again.
    pub inode: u64,
    pub hash: String,
}

/// A file the catalog knows, accepted or rejected.
#[derive(Debug, Clone)]
pub struct KnownFile {
    pub stamp: FileStamp,
    /// The article id, for accepted files.
    pub id: Option<String>,
}

/// What happened to an article in a batch; syndication turns these into
/// deliveries.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Added(Entry),
    Updated(Entry),
    /// `categories` are the slugs it was filed under, for routing the notice.
    Removed {
        id: String,
        categories: Vec<String>,
    },
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Change::Added(e) | Change::Updated(e) => &e.id,
            Change::Removed { id, .. } => id,
        }
    }
}

/// A rejected file and the reason, for `status`.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub path: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A file whose disappearance is waiting for an operator (see
/// `watch.max_removals`).
#[derive(Debug, Clone)]
pub struct HeldRemoval {
    pub path: String,
    pub id: String,
    pub held_at: DateTime<Utc>,
    /// `feedwire apply-removals` was run: removed at the next reconciliation.
    pub approved: bool,
}

/// Per-feed publish record, for `status`.
#[derive(Debug, Clone)]
pub struct FeedRecord {
    pub path: String,
    pub hash: String,
    pub published_at: DateTime<Utc>,
}

pub struct Catalog {
    conn: Connection,
    tz: Tz,
}

/// Why an article could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("duplicate id `{id}`: already used by {owner}")]
    DuplicateId { id: String, owner: String },
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

/// A transaction that holds the write lock from its start (`BEGIN
/// IMMEDIATE`). Every writer of the catalog file uses one: the pipeline's
/// batches and syndication's outbox updates come from different connections,
/// and a deferred transaction that reads first and writes later fails at once
/// with `SQLITE_BUSY` if another connection committed in between (the busy
/// timeout does not cover that upgrade). Taken up front, the lock is waited for.
pub(crate) fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Run `f` in an immediate transaction on a shared connection (the CLI's
/// commands, which hold the catalog by `&`).
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

impl Catalog {
    /// Open (creating if needed) the catalog at `path`.
    pub fn open(path: &Path, tz: Tz) -> Result<Catalog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the state folder {}", dir.display()))?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open the catalog {}", path.display()))?;
        schema::prepare(&mut conn)
            .with_context(|| format!("cannot prepare the catalog {}", path.display()))?;
        Ok(Catalog { conn, tz })
    }

    /// Open read-only-ish for `status`: same as `open` but never migrates a
    /// missing file into existence.
    pub fn open_existing(path: &Path, tz: Tz) -> Result<Catalog> {
        if !path.exists() {
            anyhow::bail!(
                "no catalog at {} yet: run `feedwire build` or `feedwire run` first",
                path.display()
            );
        }
        Self::open(path, tz)
    }

    /// Every file the catalog has seen, by path relative to the articles folder.
    pub fn known_files(&self) -> Result<HashMap<String, KnownFile>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, mtime_ns, hash, article_id, inode, path FROM files")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(5)?, known_file(r)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What the catalog knows of just these files: per-event work must not
    /// load the whole archive's file list.
    pub fn known_files_among<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
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

    /// Removals waiting for an operator, oldest first.
    pub fn held_removals(&self) -> Result<Vec<HeldRemoval>> {
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

    /// `feedwire apply-removals`: approve every held removal. The next
    /// reconciliation (a running daemon notices within a second) removes the
    /// articles whose files are still gone. Returns how many were approved.
    pub fn approve_held_removals(&self) -> Result<usize> {
        Ok(write_transaction_on(&self.conn, |tx| {
            tx.execute(
                "UPDATE held_removals SET approved = 1 WHERE approved = 0",
                [],
            )
        })?)
    }

    /// A number that changes whenever another connection commits to the
    /// catalog: a cheap way for the daemon to notice an operator's command.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    pub fn rejection_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM rejections", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Start a batch of changes (one transaction, see [`write_transaction`]).
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        let tx = write_transaction(&mut self.conn)?;
        Ok(Batch {
            tx,
            tz: self.tz,
            affected: BTreeSet::new(),
            fresh_affected: BTreeSet::new(),
            changes: Vec::new(),
            counts: ChangeCounts::default(),
            first_seen_taken: HashSet::new(),
        })
    }

    /// The newest `limit` entries of a feed, newest first.
    pub fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.entry FROM memberships m JOIN articles a ON a.id = m.article_id
             WHERE m.feed = ?1 ORDER BY m.published_us DESC, m.article_id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![feed.column(), limit as i64], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|json| {
            let json = json?;
            serde_json::from_str(&json).context("a catalog entry does not decode")
        })
        .collect()
    }

    /// One entry by article id.
    pub fn entry(&self, id: &str) -> Result<Option<Entry>> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT entry FROM articles WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        json.map(|j| serde_json::from_str(&j).context("a catalog entry does not decode"))
            .transpose()
    }

    /// Every feed, main first, then categories by slug. A category whose
    /// last article left keeps its (empty) feed: subscribers still poll it.
    pub fn feeds(&self) -> Result<Vec<(FeedKey, Option<Category>)>> {
        let mut out = vec![(FeedKey::Main, None)];
        let mut stmt = self
            .conn
            .prepare_cached("SELECT slug, name FROM categories ORDER BY slug")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (slug, name) = row?;
            out.push((
                FeedKey::Category(slug.clone()),
                Some(Category { name, slug }),
            ));
        }
        Ok(out)
    }

    /// The display name of a category slug.
    pub fn category(&self, slug: &str) -> Result<Option<Category>> {
        Ok(self
            .conn
            .query_row("SELECT name FROM categories WHERE slug = ?1", [slug], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map(|name| Category {
                name,
                slug: slug.to_string(),
            }))
    }

    pub fn article_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM articles", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Rejected files, newest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>> {
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

    /// Remember that a feed document was published with this content hash.
    pub fn record_published(&self, path: &str, hash: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO published(path, hash, at) VALUES(?1, ?2, ?3)
             ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, at = excluded.at",
            params![path, hash, at.timestamp()],
        )?;
        Ok(())
    }

    pub fn published_feeds(&self) -> Result<Vec<FeedRecord>> {
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

    /// Settings the catalog keeps between runs (e.g. the parser version).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Forget every file stamp so the next reconciliation re-reads and
    /// re-parses every file (after a parser upgrade). Identities stay.
    pub fn forget_file_stamps(&self) -> Result<()> {
        self.conn
            .execute("UPDATE files SET size = -1, mtime_ns = -1, hash = ''", [])?;
        Ok(())
    }

    /// The raw connection, for stages that keep their own tables in the same
    /// database (the syndication outbox must commit with the change).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// How many articles a batch added, updated and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
}

/// One transaction's worth of changes. Collects which feeds it touched.
///
/// Change records (with their entries) are kept only until the next
/// [`drain`](Batch::drain), so a 100,000-file import does not hold every
/// article body until its commit.
pub struct Batch<'c> {
    tx: Transaction<'c>,
    tz: Tz,
    affected: BTreeSet<FeedKey>,
    /// Feeds touched since the last drain.
    fresh_affected: BTreeSet<FeedKey>,
    /// Changes since the last drain.
    changes: Vec<Change>,
    counts: ChangeCounts,
    /// First-seen times handed out in this batch: each is unique, so files
    /// that arrive together (a burst, or an archive whose files share an
    /// mtime) still have an order and distinct `updated` values.
    first_seen_taken: HashSet<i64>,
}

impl Batch<'_> {
    /// Run a statement through the connection's statement cache: a build
    /// runs the same few statements 100,000 times, and re-preparing them was
    /// a tenth of its time.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.tx.prepare_cached(sql)?.execute(params)
    }

    /// One optional row, through the statement cache.
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        self.tx.prepare_cached(sql)?.query_row(params, f).optional()
    }
    /// Store an accepted article read from `path`. `seen_at` becomes its
    /// first-seen time if its id is new (made unique within the batch by
    /// moving it a microsecond at a time), and its change time if what it says
    /// changed.
    pub fn upsert(
        &mut self,
        path: &str,
        stamp: &FileStamp,
        article: &Article,
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let seen_us = seen_at.timestamp_micros();
        // Who owns this id today? A different, still-present file wins.
        let owner: Option<String> = self
            .row(
                "SELECT path FROM articles WHERE id = ?1",
                [&article.id],
                |r| r.get(0),
            )
            .map_err(anyhow::Error::from)?;
        if let Some(owner) = owner.filter(|o| o != path) {
            return Err(StoreError::DuplicateId {
                id: article.id.clone(),
                owner,
            });
        }
        // The file may have carried another id before (edited front matter).
        let previous_id: Option<String> = self
            .row("SELECT id FROM articles WHERE path = ?1", [path], |r| {
                r.get(0)
            })
            .map_err(anyhow::Error::from)?;
        if let Some(prev) = previous_id.filter(|p| p != &article.id) {
            self.remove_article(&prev)?;
        }

        let content_hash = article_hash(article);
        let identity: Option<(i64, String, i64)> = self
            .row(
                "SELECT first_seen_us, content_hash, changed_at_us FROM identities WHERE id = ?1",
                [&article.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(anyhow::Error::from)?;
        let (first_seen, changed_at) = match &identity {
            Some((first, hash, changed)) if *hash == content_hash => (*first, *changed),
            Some((first, _, _)) => (*first, seen_us.max(*first)),
            None => {
                let mut first = seen_us;
                while !self.first_seen_taken.insert(first) {
                    first += 1;
                }
                (first, first)
            }
        };
        let published = article.published.unwrap_or_else(|| self.local(first_seen));
        // A content change moves `updated`; the file's own `updated` wins when given.
        let updated = match article.updated {
            Some(u) => u,
            None if identity.is_none() => published,
            None => {
                if changed_at <= first_seen {
                    published
                } else {
                    self.local(changed_at)
                }
            }
        };
        let updated = updated.max(published);
        let entry = Entry::new(article, published, updated);
        let entry_json = serde_json::to_string(&entry).map_err(anyhow::Error::from)?;

        self.exec(
            "INSERT INTO identities(id, first_seen_us, content_hash, changed_at_us) VALUES(?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET content_hash = excluded.content_hash, changed_at_us = excluded.changed_at_us",
            params![article.id, first_seen, content_hash, changed_at],
        )
        .map_err(anyhow::Error::from)?;

        let old: Option<String> = self
            .row(
                "SELECT entry FROM articles WHERE id = ?1",
                [&article.id],
                |r| r.get(0),
            )
            .map_err(anyhow::Error::from)?;
        let old_feeds = self.memberships_of(&article.id)?;
        if old.as_deref() == Some(entry_json.as_str()) {
            // Same article, same dates: only the file stamp moves.
            self.record_file(path, stamp, Some(&article.id))?;
            return Ok(());
        }
        self.exec(
            "INSERT INTO articles(id, path, published_us, entry) VALUES(?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET path = excluded.path, published_us = excluded.published_us, entry = excluded.entry",
            params![article.id, path, published.timestamp_micros(), entry_json],
        )
        .map_err(anyhow::Error::from)?;
        self.exec(
            "DELETE FROM memberships WHERE article_id = ?1",
            [&article.id],
        )
        .map_err(anyhow::Error::from)?;
        let mut new_feeds = vec![FeedKey::Main];
        for c in &entry.categories {
            self.exec(
                "INSERT INTO categories(slug, name) VALUES(?1, ?2) ON CONFLICT(slug) DO NOTHING",
                params![c.slug, c.name],
            )
            .map_err(anyhow::Error::from)?;
            new_feeds.push(FeedKey::Category(c.slug.clone()));
        }
        for feed in &new_feeds {
            self.exec(
                "INSERT OR IGNORE INTO memberships(feed, published_us, article_id) VALUES(?1, ?2, ?3)",
                params![feed.column(), published.timestamp_micros(), article.id],
            )
            .map_err(anyhow::Error::from)?;
        }
        self.fresh_affected.extend(old_feeds.iter().cloned());
        self.fresh_affected.extend(new_feeds.iter().cloned());
        self.affected.extend(old_feeds);
        self.affected.extend(new_feeds);
        if old.is_some() {
            self.counts.updated += 1;
        } else {
            self.counts.added += 1;
        }
        self.changes.push(if old.is_some() {
            Change::Updated(entry)
        } else {
            Change::Added(entry)
        });
        self.record_file(path, stamp, Some(&article.id))?;
        self.exec("DELETE FROM rejections WHERE path = ?1", [path])
            .map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// The file's bytes changed but its content hash did not: refresh the stamp.
    pub fn touch(&mut self, path: &str, stamp: &FileStamp) -> Result<()> {
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

    /// A file could not be ingested or stored: remember why, and take out any
    /// article it used to provide (the last good version must not linger under
    /// a file that now says something else).
    ///
    /// `duplicate_of` names the id another file holds, when that is the
    /// reason: the file is read again when that owner leaves.
    pub fn reject(
        &mut self,
        path: &str,
        stamp: &FileStamp,
        reason: &str,
        duplicate_of: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.remove_path_article(path)?;
        self.record_file(path, stamp, None)?;
        self.exec(
            "INSERT INTO rejections(path, reason, at, duplicate_of) VALUES(?1, ?2, ?3, ?4)
             ON CONFLICT(path) DO UPDATE SET reason = excluded.reason, at = excluded.at,
               duplicate_of = excluded.duplicate_of",
            params![path, reason, at.timestamp(), duplicate_of],
        )?;
        Ok(())
    }

    /// A file is gone. Returns paths that were rejected as duplicates of the
    /// id it provided: they may now be accepted and should be read again.
    pub fn remove_file(&mut self, path: &str) -> Result<Vec<String>> {
        let id = self.remove_path_article(path)?;
        self.exec("DELETE FROM files WHERE path = ?1", [path])?;
        self.exec("DELETE FROM rejections WHERE path = ?1", [path])?;
        self.exec("DELETE FROM held_removals WHERE path = ?1", [path])?;
        let mut retry = Vec::new();
        if let Some(id) = id {
            let mut stmt = self
                .tx
                .prepare_cached("SELECT path FROM rejections WHERE duplicate_of = ?1")?;
            let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
            for row in rows {
                retry.push(row?);
            }
        }
        Ok(retry)
    }

    /// Keep the article of a file that disappeared in the feeds until an
    /// operator approves its removal or the file comes back. Returns whether
    /// the hold is new.
    pub fn hold_removal(&mut self, path: &str, id: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.exec(
            "INSERT INTO held_removals(path, article_id, held_at) VALUES(?1, ?2, ?3)
             ON CONFLICT(path) DO NOTHING",
            params![path, id, at.timestamp()],
        )? > 0)
    }

    /// Paths of held removals, and whether each was approved.
    pub fn held_removal_paths(&self) -> Result<HashMap<String, bool>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT path, approved FROM held_removals")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The file of a held removal is back (or was read again): the hold ends.
    pub fn release_hold(&mut self, path: &str) -> Result<bool> {
        Ok(self.exec("DELETE FROM held_removals WHERE path = ?1", [path])? > 0)
    }

    fn remove_path_article(&mut self, path: &str) -> Result<Option<String>> {
        let id: Option<String> =
            self.row("SELECT id FROM articles WHERE path = ?1", [path], |r| {
                r.get(0)
            })?;
        if let Some(id) = &id {
            self.remove_article(id)?;
        }
        Ok(id)
    }

    fn remove_article(&mut self, id: &str) -> Result<()> {
        let feeds = self.memberships_of(id)?;
        let categories = feeds
            .iter()
            .filter_map(|f| match f {
                FeedKey::Category(s) => Some(s.clone()),
                FeedKey::Main => None,
            })
            .collect();
        self.exec("DELETE FROM memberships WHERE article_id = ?1", [id])?;
        self.exec("DELETE FROM articles WHERE id = ?1", [id])?;
        self.fresh_affected.extend(feeds.iter().cloned());
        self.affected.extend(feeds);
        self.counts.removed += 1;
        self.changes.push(Change::Removed {
            id: id.to_string(),
            categories,
        });
        Ok(())
    }

    fn memberships_of(&self, id: &str) -> Result<Vec<FeedKey>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT feed FROM memberships WHERE article_id = ?1")?;
        let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
        Ok(rows
            .map(|r| r.map(FeedKey::from_column))
            .collect::<rusqlite::Result<_>>()?)
    }

    fn record_file(&self, path: &str, stamp: &FileStamp, id: Option<&str>) -> Result<()> {
        self.exec(
            "INSERT INTO files(path, size, mtime_ns, hash, article_id, inode) VALUES(?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
               hash = excluded.hash, article_id = excluded.article_id, inode = excluded.inode",
            params![path, stamp.size as i64, stamp.mtime_ns, stamp.hash, id, stamp.inode as i64],
        )?;
        Ok(())
    }

    fn local(&self, unix_us: i64) -> DateTime<FixedOffset> {
        DateTime::from_timestamp_micros(unix_us)
            .unwrap_or_default()
            .with_timezone(&self.tz)
            .fixed_offset()
    }

    /// Feeds this batch has touched so far.
    /// (Since the last [`drain`](Self::drain).)
    pub fn affected_since_drain(&self) -> &BTreeSet<FeedKey> {
        &self.fresh_affected
    }

    /// Forget the change records seen so far (hooks have handled them); the
    /// totals and the feeds to publish are kept for the commit.
    pub fn drain(&mut self) {
        self.changes.clear();
        self.fresh_affected.clear();
    }

    /// The article changes since the last drain.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The transaction, for stages that must write in the same commit (the
    /// syndication outbox).
    pub fn transaction(&self) -> &Transaction<'_> {
        &self.tx
    }

    /// Commit; returns the feeds whose content may have changed and how many
    /// articles changed.
    pub fn commit(self) -> Result<(BTreeSet<FeedKey>, ChangeCounts)> {
        self.tx.commit().context("cannot commit to the catalog")?;
        Ok((self.affected, self.counts))
    }
}

/// A `files` row (size, mtime_ns, hash, article_id first) as a `KnownFile`.
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

/// Hash of what an article says (not of its bytes), so re-saving a file with
/// other line endings or encoding does not count as an edit.
fn article_hash(article: &Article) -> String {
    let mut normalised = article.clone();
    normalised.encoding = crate::article::Encoding::Utf8;
    let json = serde_json::to_vec(&normalised).expect("articles always serialise");
    blake3::hash(&json).to_hex()[..32].to_string()
}

fn from_unix(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}
