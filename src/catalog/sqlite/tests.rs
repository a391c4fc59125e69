//! Concurrency between the pipeline's batch and the other connections that
//! share the catalog file (syndication's outbox writers, `status`, the page
//! renderer).

use crate::catalog::Catalog;
use rusqlite::{Connection, ErrorCode};
use std::time::Duration;

fn catalog() -> (tempfile::TempDir, std::path::PathBuf, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    let catalog = Catalog::open(&path, chrono_tz::Asia::Ho_Chi_Minh).unwrap();
    (dir, path, catalog)
}

/// A batch reads, then writes. Had it started deferred, another connection
/// could commit between the two and the batch's first write would fail at
/// once with SQLITE_BUSY (no busy wait applies to that upgrade); this is how
/// a partner retry loop once stopped the daemon's pipeline. The batch must
/// hold the write lock from its start, so other writers wait instead.
#[test]
fn a_batch_holds_the_write_lock_from_its_start() {
    let (_dir, path, mut catalog) = catalog();
    let other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::ZERO).unwrap();

    let batch = catalog.batch().unwrap();
    let err = other
        .execute("INSERT INTO meta(key, value) VALUES ('k', 'v')", [])
        .expect_err("a second writer slipped into an open batch");
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy));
    batch.commit().unwrap();

    other
        .execute("INSERT INTO meta(key, value) VALUES ('k', 'v')", [])
        .unwrap();
}

/// `status` and the page renderer open the catalog while the daemon holds a
/// batch open; opening must not need the write lock (it would wait for the
/// batch, and fail if the batch were long).
#[test]
fn opening_the_catalog_beside_an_open_batch_needs_no_write_lock() {
    let (_dir, path, mut catalog) = catalog();
    let batch = catalog.batch().unwrap();
    // Needing the lock would wait out the busy timeout, then fail.
    let reader = Catalog::open(&path, chrono_tz::Asia::Ho_Chi_Minh)
        .expect("opening needed the write lock the batch holds");
    assert_eq!(reader.article_count().unwrap(), 0);
    batch.commit().unwrap();
}

/// SQLite is one instance's catalog: it always wins the lease, fencing
/// changes nothing, a claim is simply the due rows, and published versions
/// are recorded without their bytes (nobody else serves them).
#[test]
fn sqlite_is_one_instance_that_always_leads() {
    use crate::catalog::{DueFilter, Election, Member, NewDelivery, PublishedDocument};
    let (_dir, _path, mut catalog) = catalog();
    let me = Member::new("only", "");
    let Election::Won(term) = catalog.elect(&me, Duration::from_secs(1), false).unwrap() else {
        panic!("SQLite's only instance leads");
    };
    catalog.fence_writes(Some(term.clone()));
    assert!(catalog.renew(&term, Duration::from_secs(1)).unwrap());
    let mut b = catalog.batch().unwrap();
    b.enqueue(&[NewDelivery::Partner {
        partner: "p".into(),
        article: "a".into(),
        body: b"{}".to_vec(),
        content_type: "application/json".into(),
        idempotency_key: "k".into(),
    }])
    .unwrap();
    b.commit().unwrap();
    let now = chrono::Utc::now().timestamp_millis() + 1000;
    let due = catalog
        .claim_due_deliveries(now, 10, &DueFilter::default(), &me.token, now + 1000)
        .unwrap();
    assert_eq!(due.len(), 1);
    let body = b"<rss/>".to_vec();
    catalog
        .record_published_documents(&[PublishedDocument {
            path: "rss.xml",
            hash: "h",
            first_published: chrono::Utc::now(),
            body: &body,
        }])
        .unwrap();
    assert_eq!(catalog.published_feeds().unwrap()[0].hash, "h");
    assert!(catalog.published_documents_since(0).unwrap().is_empty());
    assert!(catalog.lease().unwrap().is_none());
}

/// An entry stored by a build from before `first_seen`/`content_created`
/// were kept gains them when its file is read again (every release reads
/// every file), quietly: no change for readers or partners, so an upgrade
/// does not re-send the archive. A real edit still is one.
#[test]
fn an_entry_from_an_earlier_build_gains_the_new_facts_without_a_change() {
    use crate::catalog::{Change, FileStamp};
    let (_dir, path, mut catalog) = catalog();
    let opts = crate::ingest::IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 1 << 20,
        now: chrono::Utc::now(),
        limits: Default::default(),
    };
    let text = |body: &str| {
        format!(
            "---\ntitle: Tin\ncategory: Thời sự\ndate: 2026-01-02T08:00:00+07:00\n---\n{body}\n"
        )
    };
    let article = crate::ingest::parse("tin.md", text("Một.").as_bytes(), &opts).unwrap();
    let stamp = FileStamp {
        size: 1,
        mtime_ns: 1,
        inode: 1,
        hash: "h".into(),
    };
    let seen = chrono::Utc::now();
    let mut batch = catalog.batch().unwrap();
    batch.upsert("tin.md", &stamp, &article, seen).unwrap();
    assert!(matches!(batch.changes(), [Change::Added(_)]));
    batch.commit().unwrap();
    let stored = catalog.entry("tin").unwrap().unwrap();
    assert!(stored.first_seen.is_some() && stored.content_created.is_some());

    // What an earlier build stored: the same entry without the new facts.
    let old = serde_json::to_string(&stored.without_later_facts()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE articles SET entry = ?1 WHERE id = 'tin'", [&old])
        .unwrap();
    let mut batch = catalog.batch().unwrap();
    batch.upsert("tin.md", &stamp, &article, seen).unwrap();
    assert!(batch.changes().is_empty(), "{:?}", batch.changes());
    let (feeds, counts) = batch.commit().unwrap();
    assert!(feeds.is_empty() && counts == Default::default());
    assert_eq!(catalog.entry("tin").unwrap().unwrap(), stored);

    let edited = crate::ingest::parse("tin.md", text("Hai.").as_bytes(), &opts).unwrap();
    let mut batch = catalog.batch().unwrap();
    batch.upsert("tin.md", &stamp, &edited, seen).unwrap();
    assert!(matches!(batch.changes(), [Change::Updated(e)] if e.version == 2));
    batch.commit().unwrap();
}

/// The live window, its overflow and one archive page are read by range
/// scans of `memberships_by_page` (no full scan, no sort): per-event work
/// stays the same however large a feed's archive grows.
#[test]
fn archive_queries_are_index_range_scans() {
    let (_dir, path, _catalog) = catalog();
    let conn = Connection::open(&path).unwrap();
    // Enough rows that the planner has a choice to make.
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..2000 {
        conn.execute(
            "INSERT INTO memberships(feed, published_us, article_id, page) VALUES('', ?1, ?2, ?3)",
            rusqlite::params![i, format!("a{i}"), if i < 1950 { 1 + i / 50 } else { 0 }],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT; ANALYZE").unwrap();
    for sql in [super::LIVE_NEWEST, super::LIVE_BEYOND, super::PAGE_ENTRIES] {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map(["", "1"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let memberships = plan
            .iter()
            .find(|l| {
                l.contains("memberships") || l.starts_with("SEARCH m") || l.starts_with("SCAN m")
            })
            .unwrap_or_else(|| panic!("no memberships step in {plan:?}"));
        assert!(
            memberships.starts_with("SEARCH") && memberships.contains("memberships_by_page"),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "{sql} sorts: {plan:?}"
        );
    }
}
