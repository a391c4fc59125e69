//! The catalog's tables, as one ordered list of migrations. Kept apart from
//! the queries so the whole layout can be read in one place.
//!
//! `user_version` records how many migrations a catalog file has had. Opening
//! applies the missing ones in one transaction and writes nothing when there
//! are none (`status` and the page renderer open the catalog beside a running
//! daemon and must not take its write lock). A file newer than this build is
//! refused rather than damaged.

use rusqlite::Connection;

/// Every migration, oldest first; a migration is never edited once released,
/// only followed by another. Times are microseconds since the Unix epoch
/// (`_us`) unless a column says otherwise.
const MIGRATIONS: &[&str] = &[
    // 1: the first layout (times in seconds).
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
    // 2: sub-second first-seen times (an archive copied with its times keeps
    // its order), the inode in file stamps (a file replaced by another of the
    // same size and mtime is read again), and removals held for an operator.
    "
    ALTER TABLE identities RENAME COLUMN first_seen TO first_seen_us;
    ALTER TABLE identities RENAME COLUMN changed_at TO changed_at_us;
    UPDATE identities SET first_seen_us = first_seen_us * 1000000,
                          changed_at_us = changed_at_us * 1000000;
    ALTER TABLE articles RENAME COLUMN published TO published_us;
    UPDATE articles SET published_us = published_us * 1000000;
    ALTER TABLE memberships RENAME COLUMN published TO published_us;
    UPDATE memberships SET published_us = published_us * 1000000;
    ALTER TABLE files ADD COLUMN inode INTEGER NOT NULL DEFAULT 0;
    -- A file refused because another holds its id names that id here, so it
    -- is read again when the owner leaves (not found by matching messages).
    ALTER TABLE rejections ADD COLUMN duplicate_of TEXT;
    CREATE INDEX rejections_by_duplicate ON rejections(duplicate_of) WHERE duplicate_of IS NOT NULL;
    -- Files whose disappearance would remove more than watch.max_removals
    -- articles at once: kept in the feeds until an operator approves
    -- (feedwire apply-removals) or the files come back.
    CREATE TABLE held_removals (
        path        TEXT PRIMARY KEY,
        article_id  TEXT NOT NULL,
        held_at     INTEGER NOT NULL,
        approved    INTEGER NOT NULL DEFAULT 0
    );
    ",
    // 3: syndication's tables join the migration list (they used to be
    // created by syndicate itself): the outbox, the hub's subscriptions with
    // the client that made each, and places reserved by verifications in
    // flight. `IF NOT EXISTS`: catalogs of earlier releases have the first
    // two, without the client.
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
    ALTER TABLE syndicate_subscriptions ADD COLUMN client TEXT NOT NULL DEFAULT '';
    CREATE INDEX syndicate_subscriptions_client ON syndicate_subscriptions(client);
    CREATE TABLE syndicate_verifying (
        id          INTEGER PRIMARY KEY,
        topic       TEXT NOT NULL,
        callback    TEXT NOT NULL,
        client      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX syndicate_verifying_topic ON syndicate_verifying(topic);
    CREATE INDEX syndicate_verifying_client ON syndicate_verifying(client);
    ",
    // 4: the newsroom lifecycle. An id's version and the moment it first
    // became public; whether it is killed (not published again until
    // reinstated) and why; an article's state and embargo; tombstones kept
    // in the feeds for `lifecycle.tombstone_days`; editors' overrides from
    // the command line, and the log of their commands (who, when).
    "
    ALTER TABLE identities ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE identities ADD COLUMN public_since_us INTEGER;
    ALTER TABLE identities ADD COLUMN killed_at_us INTEGER;
    ALTER TABLE identities ADD COLUMN kill_reason TEXT;
    UPDATE identities SET public_since_us = first_seen_us
        WHERE id IN (SELECT id FROM articles);
    ALTER TABLE articles ADD COLUMN state TEXT NOT NULL DEFAULT 'usable';
    ALTER TABLE articles ADD COLUMN embargo_until_us INTEGER;
    CREATE INDEX articles_by_embargo ON articles(embargo_until_us) WHERE embargo_until_us IS NOT NULL;
    CREATE TABLE tombstones (
        id             TEXT PRIMARY KEY,
        killed_at_us   INTEGER NOT NULL,
        reason         TEXT,
        -- The feeds it was in, as a JSON array of stored feed keys.
        feeds          TEXT NOT NULL,
        expires_at_us  INTEGER NOT NULL
    );
    CREATE INDEX tombstones_by_expiry ON tombstones(expires_at_us);
    CREATE TABLE editorial (
        id                TEXT PRIMARY KEY,
        status            TEXT,
        embargo_until_us  INTEGER,
        correction        TEXT,
        reason            TEXT,
        updated_at_us     INTEGER NOT NULL
    );
    CREATE TABLE operator_commands (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        command     TEXT NOT NULL,
        article_id  TEXT NOT NULL,
        argument    TEXT,
        who         TEXT NOT NULL,
        at_us       INTEGER NOT NULL,
        applied     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX operator_commands_pending ON operator_commands(applied) WHERE applied = 0;
    ",
    // 5: RFC 5005 archives. A membership's `page` is 0 while it is in the
    // feed's live window and the archive page it was moved to (1 = oldest)
    // once it left it; it never goes back. The index keeps both the live
    // window and one page a range scan, whatever the archive size. Each
    // page records how many entries were ever placed in it (a kill does not
    // give room back: a page that filled up stays as it was) and whether it
    // changed since it was last published.
    "
    ALTER TABLE memberships ADD COLUMN page INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX memberships_by_page ON memberships(feed, page, published_us, article_id);
    CREATE TABLE archive_pages (
        feed      TEXT NOT NULL,
        page      INTEGER NOT NULL,
        assigned  INTEGER NOT NULL DEFAULT 0,
        stale     INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (feed, page)
    ) WITHOUT ROWID;
    CREATE INDEX archive_pages_stale ON archive_pages(stale) WHERE stale = 1;
    ",
    // 6: withheld articles newest first, for the pull feeds of partners
    // allowed embargoed copy: a few index rows, instead of a scan of every
    // article's row (the state column sits after the entry's JSON).
    "
    CREATE INDEX articles_withheld ON articles(published_us DESC, id DESC) WHERE state = 'withheld';
    ",
];

/// How many migrations this build knows.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    // First, so everything below waits for a busy writer instead of failing.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // WAL: readers (the `status` command) never block the daemon, and a commit
    // costs one fsync of the log rather than of the database.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "catalog schema version {version} is newer than this feedwire understands ({SCHEMA_VERSION}); upgrade feedwire"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = super::write_transaction(conn)?;
    // Read again under the write lock: another process may have migrated
    // between the first look and the lock.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A catalog written by the first release keeps its identities, now in
    /// microseconds, and reaches the newest version.
    #[test]
    fn a_version_one_catalog_is_migrated_keeping_its_data() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO identities VALUES('a', 1700000000, 'h', 1700000100)",
            [],
        )
        .unwrap();
        conn.execute("INSERT INTO memberships VALUES('', 1700000000, 'a')", [])
            .unwrap();
        prepare(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let (first, changed): (i64, i64) = conn
            .query_row(
                "SELECT first_seen_us, changed_at_us FROM identities WHERE id = 'a'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (first, changed),
            (1_700_000_000_000_000, 1_700_000_100_000_000)
        );
        let published: i64 = conn
            .query_row("SELECT published_us FROM memberships", [], |r| r.get(0))
            .unwrap();
        assert_eq!(published, 1_700_000_000_000_000);
        assert!(columns(&conn, "files").contains(&"inode".to_string()));
    }

    /// A catalog from before archives keeps every membership, all live
    /// (page 0), and has no pages yet: the daemon's first full publish
    /// archives each feed's overflow.
    #[test]
    fn a_version_four_catalog_gains_archive_pages_with_every_member_live() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO memberships VALUES('', 1700000000000000, 'a'), ('thoi-su', 1700000000000000, 'a')",
            [],
        )
        .unwrap();
        prepare(&mut conn).unwrap();
        let pages: Vec<i64> = conn
            .prepare("SELECT page FROM memberships")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(pages, [0, 0]);
        assert_eq!(
            columns(&conn, "archive_pages"),
            ["feed", "page", "assigned", "stale"]
        );
        let n: i64 = conn
            .query_row("SELECT count(*) FROM archive_pages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// Opening a current catalog changes nothing (no write, no lock needed),
    /// and a newer one is refused.
    #[test]
    fn opening_is_idempotent_and_refuses_newer_files() {
        let mut conn = Connection::open_in_memory().unwrap();
        prepare(&mut conn).unwrap();
        let before = conn.total_changes();
        prepare(&mut conn).unwrap();
        assert_eq!(conn.total_changes(), before);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = prepare(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer than this feedwire"), "{err}");
    }
}
