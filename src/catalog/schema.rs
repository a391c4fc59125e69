//! The catalog's tables. Kept apart from the queries so the whole layout can
//! be read in one place.

use rusqlite::Connection;

/// Bump when the layout changes; `prepare` refuses a newer catalog rather than
/// damage it.
const SCHEMA_VERSION: i64 = 1;

pub(super) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    // WAL: readers (the `status` command) never block the daemon, and a commit
    // costs one fsync of the log rather than of the database.
    // First, so everything below waits for a busy writer instead of failing.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "catalog schema version {version} is newer than this feedwire understands ({SCHEMA_VERSION}); upgrade feedwire"
        )));
    }
    conn.execute_batch(
        "
        -- Identity outlives files: a deleted and restored article keeps its
        -- first-seen moment, so its published date never moves.
        CREATE TABLE IF NOT EXISTS identities (
            id            TEXT PRIMARY KEY,
            first_seen    INTEGER NOT NULL,
            content_hash  TEXT NOT NULL,
            changed_at    INTEGER NOT NULL
        );
        -- Accepted articles, with the entry as render needs it (JSON).
        CREATE TABLE IF NOT EXISTS articles (
            id         TEXT PRIMARY KEY,
            path       TEXT NOT NULL UNIQUE,
            published  INTEGER NOT NULL,
            entry      TEXT NOT NULL
        );
        -- Feed membership ordered newest first: a feed's newest N is an index
        -- range scan, whatever the archive size. feed '' is the main feed.
        CREATE TABLE IF NOT EXISTS memberships (
            feed        TEXT NOT NULL,
            published   INTEGER NOT NULL,
            article_id  TEXT NOT NULL,
            PRIMARY KEY (feed, published, article_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS memberships_by_article ON memberships(article_id);
        CREATE TABLE IF NOT EXISTS categories (
            slug  TEXT PRIMARY KEY,
            name  TEXT NOT NULL
        );
        -- Every file seen, accepted or not, for cheap restart reconciliation.
        CREATE TABLE IF NOT EXISTS files (
            path        TEXT PRIMARY KEY,
            size        INTEGER NOT NULL,
            mtime_ns    INTEGER NOT NULL,
            hash        TEXT NOT NULL,
            article_id  TEXT
        );
        CREATE TABLE IF NOT EXISTS rejections (
            path    TEXT PRIMARY KEY,
            reason  TEXT NOT NULL,
            at      INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS published (
            path  TEXT PRIMARY KEY,
            hash  TEXT NOT NULL,
            at    INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS meta (
            key    TEXT PRIMARY KEY,
            value  TEXT NOT NULL
        );
        ",
    )?;
    // Only when it changes: `status` and the page renderer open the catalog
    // beside a running daemon and should not take the write lock to say
    // what is already said.
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(())
}
