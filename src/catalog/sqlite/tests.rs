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
