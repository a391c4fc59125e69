//! Several instances on one catalog: the leader's lease, fencing, delivery
//! claims and the shared published set, through the `Catalog` API with a
//! handle per instance. They need `FEEDWIRE_TEST_DATABASE_URL` (see
//! `testing`); without it they say so and check nothing.

use super::testing::{ADMIN_URL_VAR, TestDatabase};
use crate::catalog::{
    Catalog, DueFilter, Election, LeaseLost, Member, NewDelivery, Notice, OutboxUpdate,
    PublishedDocument, Role, Term,
};
use crate::config::CatalogLocation;
use crate::source::FileStamp;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn database() -> Option<TestDatabase> {
    let db = TestDatabase::create();
    if db.is_none() {
        eprintln!("skipped: {ADMIN_URL_VAR} is not set");
    }
    db
}

fn open(db: &TestDatabase) -> Catalog {
    Catalog::open(&CatalogLocation::Postgres(db.url.clone()), chrono_tz::UTC).unwrap()
}

fn won(e: Election) -> Term {
    match e {
        Election::Won(t) => t,
        held => panic!("expected to win the lease, got {held:?}"),
    }
}

/// A batch with one write in it (a rejected file), left open.
fn stamp() -> FileStamp {
    FileStamp {
        size: 1,
        mtime_ns: 1,
        inode: 1,
        hash: "h".into(),
    }
}

/// Two instances ask at the same moment: exactly one wins, the other is
/// told who holds it and when it lapses. Renewals keep it; once it lapses
/// the other takes it with the next term, and the former holder can no
/// longer renew. A resignation frees it at once.
#[test]
fn one_of_two_instances_wins_the_lease_and_it_passes_on_when_it_lapses() {
    let Some(db) = database() else { return };
    let lease = Duration::from_millis(1500);
    let (a, b) = (Member::new("a", ""), Member::new("b", ""));
    let start = Arc::new(Barrier::new(2));
    let attempts: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|me| {
            let (catalog, start) = (open(&db), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (me.name.clone(), catalog.elect(&me, lease, false).unwrap())
            })
        })
        .collect();
    let results: Vec<(String, Election)> =
        attempts.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, e)| matches!(e, Election::Won(_)))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one leader: {results:?}");
    let (leader, standby) = if winners[0] == "a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let term = match &results.iter().find(|(n, _)| *n == leader.name).unwrap().1 {
        Election::Won(t) => t.clone(),
        _ => unreachable!(),
    };
    match &results.iter().find(|(n, _)| *n == standby.name).unwrap().1 {
        Election::Held { by, lapses_in } => {
            assert_eq!(by, &leader.name);
            assert!(*lapses_in <= lease, "{lapses_in:?}");
        }
        won => panic!("the second must be told the lease is held: {won:?}"),
    }

    let c = open(&db);
    assert!(c.renew(&term, lease).unwrap(), "the holder renews");
    let info = c.lease().unwrap().unwrap();
    assert_eq!(
        (info.holder_name.as_str(), info.term),
        (leader.name.as_str(), term.number)
    );
    assert!(matches!(
        c.elect(standby, lease, false).unwrap(),
        Election::Held { .. }
    ));

    // The holder stops renewing (killed): the lease lapses by the
    // database's clock, and the standby takes it with the next term.
    std::thread::sleep(lease + Duration::from_millis(200));
    let next = won(c.elect(standby, lease, false).unwrap());
    assert_eq!(next.number, term.number + 1);
    assert!(
        !c.renew(&term, lease).unwrap(),
        "a former holder must not renew a lease it lost"
    );

    // A resignation frees it at once (a clean shutdown).
    c.resign(&next).unwrap();
    let again = won(c.elect(leader, lease, false).unwrap());
    assert_eq!(again.number, next.number + 1);

    // An instance configured to be alone takes it whoever holds it.
    let alone = Member::new("alone", "");
    let taken = won(c.elect(&alone, lease, true).unwrap());
    assert_eq!(taken.number, again.number + 1);
    assert!(!c.renew(&again, lease).unwrap());
}

/// A leader that lost its lease (paused past its expiry, and another took
/// over) cannot commit a batch, record published documents or mark
/// commands applied: each fails with `LeaseLost` and writes nothing. The
/// new leader's writes go through.
#[test]
fn a_former_leaders_writes_are_refused() {
    let Some(db) = database() else { return };
    let lease = Duration::from_millis(1000);
    let (old, new) = (Member::new("old", ""), Member::new("new", ""));
    let mut stale = open(&db);
    let old_term = won(stale.elect(&old, lease, false).unwrap());
    stale.fence_writes(Some(old_term.clone()));

    // While the lease holds, fenced writes go through.
    let mut b = stale.batch().unwrap();
    b.reject("while-leading.txt", &stamp(), "r", None, Utc::now())
        .unwrap();
    b.commit().unwrap();

    // A batch begun under the lease, committed after the takeover.
    let mut b = stale.batch().unwrap();
    b.reject("stale.txt", &stamp(), "r", None, Utc::now())
        .unwrap();
    std::thread::sleep(lease + Duration::from_millis(200));
    let mut fresh = open(&db);
    let new_term = won(fresh.elect(&new, lease, false).unwrap());
    fresh.fence_writes(Some(new_term));
    let err = b
        .commit()
        .expect_err("a stale leader's batch must not commit");
    assert!(LeaseLost::caused(&err), "{err:#}");

    let body = b"<rss/>".to_vec();
    let doc = PublishedDocument {
        path: "rss.xml",
        hash: "stale",
        first_published: Utc::now(),
        body: &body,
    };
    let err = stale.record_published_documents(&[doc]).unwrap_err();
    assert!(LeaseLost::caused(&err), "{err:#}");
    let err = stale.mark_commands_applied(i64::MAX).unwrap_err();
    assert!(LeaseLost::caused(&err), "{err:#}");
    let err = stale.set_meta("parser", "stale").unwrap_err();
    assert!(LeaseLost::caused(&err), "{err:#}");

    let rejected: Vec<String> = fresh
        .rejections()
        .unwrap()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        rejected,
        ["while-leading.txt"],
        "nothing of the stale batch"
    );
    assert!(fresh.published_feeds().unwrap().is_empty());
    assert_eq!(fresh.meta("parser").unwrap(), None);

    // The new leader writes.
    let mut b = fresh.batch().unwrap();
    b.reject("new.txt", &stamp(), "r", None, Utc::now())
        .unwrap();
    b.commit().unwrap();
    let doc = PublishedDocument { hash: "new", ..doc };
    fresh.record_published_documents(&[doc]).unwrap();
    assert_eq!(fresh.published_feeds().unwrap()[0].hash, "new");
}

fn partner_rows(n: usize) -> Vec<NewDelivery> {
    (0..n)
        .map(|i| NewDelivery::Partner {
            partner: "p".into(),
            article: format!("a{i}"),
            body: b"{}".to_vec(),
            content_type: "application/json".into(),
            idempotency_key: format!("k{i}"),
        })
        .collect()
}

fn enqueue(c: &mut Catalog, rows: &[NewDelivery]) {
    let mut b = c.batch().unwrap();
    b.enqueue(rows).unwrap();
    b.commit().unwrap();
}

/// Two workers claiming from one outbox at once never get the same row,
/// and between them they get every row.
#[test]
fn two_claimers_never_take_the_same_row() {
    let Some(db) = database() else { return };
    let mut c = open(&db);
    enqueue(&mut c, &partner_rows(300));
    let start = Arc::new(Barrier::new(2));
    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|token| {
            let (mut catalog, start) = (open(&db), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                loop {
                    let now = Utc::now().timestamp_millis();
                    let rows = catalog
                        .claim_due_deliveries(now, 7, &DueFilter::default(), token, now + 60_000)
                        .unwrap();
                    if rows.is_empty() {
                        return mine;
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    mine.extend(&ids);
                    let done: Vec<OutboxUpdate> =
                        ids.iter().map(|id| OutboxUpdate::Remove(*id)).collect();
                    catalog.update_outbox(&done, &HashSet::new()).unwrap();
                }
            })
        })
        .collect();
    let taken: Vec<Vec<i64>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let (a, b): (HashSet<i64>, HashSet<i64>) = (
        taken[0].iter().copied().collect(),
        taken[1].iter().copied().collect(),
    );
    assert_eq!(a.len(), taken[0].len(), "a claimed a row twice");
    assert_eq!(b.len(), taken[1].len(), "b claimed a row twice");
    assert!(
        a.is_disjoint(&b),
        "a row went to both: {:?}",
        a.intersection(&b)
    );
    assert_eq!(a.len() + b.len(), 300, "every row was taken");
    assert!(!a.is_empty() && !b.is_empty(), "both took a share");
}

/// A claim keeps a row from the others until it ends; then (the claimer
/// died) another takes it over. The claims of an instance that has not
/// been seen for a lease, or that stopped, go back at once; a retry
/// records the outcome and frees the row.
#[test]
fn claims_end_with_their_time_their_claimer_or_their_outcome() {
    let Some(db) = database() else { return };
    let mut c = open(&db);
    enqueue(&mut c, &partner_rows(1));
    let none = DueFilter::default();
    let t = Utc::now().timestamp_millis();
    let first = c
        .claim_due_deliveries(t, 10, &none, "dead", t + 1000)
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        c.claim_due_deliveries(t + 500, 10, &none, "alive", t + 1500)
            .unwrap()
            .is_empty(),
        "a claimed row is not handed out again while the claim lasts"
    );
    let over = c
        .claim_due_deliveries(t + 1001, 10, &none, "alive", t + 60_000)
        .unwrap();
    assert_eq!(over.len(), 1, "an expired claim is taken over");
    assert_eq!(over[0].id, first[0].id);

    // The claimer's heartbeat lapses: its claims go back.
    let (gone, living) = (Member::new("gone", ""), Member::new("living", ""));
    let mut gone_claimer = open(&db);
    gone_claimer
        .update_outbox(
            &[OutboxUpdate::Retry {
                id: over[0].id,
                next_ms: t,
                error: "HTTP 503".into(),
                merge: false,
            }],
            &HashSet::new(),
        )
        .unwrap();
    gone_claimer
        .heartbeat(&gone, Role::Standby, Duration::from_secs(10))
        .unwrap();
    let now = Utc::now().timestamp_millis();
    let taken = c
        .claim_due_deliveries(now, 10, &none, &gone.token, now + 600_000)
        .unwrap();
    assert_eq!(taken.len(), 1, "a retried row is free again");
    assert_eq!(
        c.heartbeat(&living, Role::Leader, Duration::from_secs(10))
            .unwrap(),
        0,
        "the claimer was seen just now"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.heartbeat(&living, Role::Leader, Duration::from_millis(200))
            .unwrap(),
        1,
        "not seen for longer than the limit: its claim goes back"
    );
    let now = Utc::now().timestamp_millis();
    let back = c
        .claim_due_deliveries(now, 10, &none, &living.token, now + 600_000)
        .unwrap();
    assert_eq!(back.len(), 1);

    // A clean stop gives the rest back too.
    gone_claimer
        .heartbeat(&gone, Role::Stopped, Duration::from_secs(10))
        .unwrap();
    assert_eq!(c.release_claims(&living.token).unwrap(), 1);
    assert!(
        c.instances()
            .unwrap()
            .iter()
            .any(|i| i.name == "gone" && i.role == "stopped")
    );
}

/// What the leader publishes reaches the other instances: the documents
/// recorded after the last one seen, each version once; a notice wakes a
/// listener when they change and when the leader resigns.
#[test]
fn published_documents_are_shared_and_announced() {
    let Some(db) = database() else { return };
    let leader = open(&db);
    let standby = open(&db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut notices = standby.listen().unwrap();
    let next = |n: &mut crate::catalog::Notifications| {
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), n.recv()).await })
            .expect("a notice within 10 s")
            .expect("the listener runs")
    };
    assert_eq!(next(&mut notices), Notice::Listening);

    let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let (rss, atom) = (b"<rss>1</rss>".to_vec(), b"<feed>1</feed>".to_vec());
    let docs = [
        PublishedDocument {
            path: "rss.xml",
            hash: "r1",
            first_published: at,
            body: &rss,
        },
        PublishedDocument {
            path: "atom.xml",
            hash: "a1",
            first_published: at,
            body: &atom,
        },
    ];
    leader.record_published_documents(&docs).unwrap();
    assert_eq!(next(&mut notices), Notice::Published);
    let got = standby.published_documents_since(0).unwrap();
    let paths: Vec<&str> = got.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["rss.xml", "atom.xml"]);
    assert_eq!(got[0].body, rss);
    assert_eq!((got[0].hash.as_str(), got[0].first_published), ("r1", at));
    let seen = got.iter().map(|d| d.seq).max().unwrap();

    // The same versions again (a new leader's first full publish): nothing
    // new for the followers.
    leader.record_published_documents(&docs).unwrap();
    assert!(standby.published_documents_since(seen).unwrap().is_empty());

    let rss2 = b"<rss>2</rss>".to_vec();
    leader
        .record_published_documents(&[PublishedDocument {
            hash: "r2",
            body: &rss2,
            ..docs[0]
        }])
        .unwrap();
    assert_eq!(next(&mut notices), Notice::Published);
    let got = standby.published_documents_since(seen).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].path.as_str(), got[0].body.as_slice()),
        ("rss.xml", &rss2[..])
    );

    let me = Member::new("leader", "");
    let term = won(leader.elect(&me, Duration::from_secs(30), false).unwrap());
    leader.resign(&term).unwrap();
    assert_eq!(next(&mut notices), Notice::LeaseReleased);
}

/// Archive pages are not handed to followers with the live documents (a
/// large archive is thousands of pages; nobody holds them all in memory),
/// but each can be read by its path. Paths are told apart as
/// `render::ArchivePath` tells them, so a category named `archive` keeps its
/// live feeds.
#[test]
fn archive_pages_are_read_one_at_a_time_not_followed() {
    let Some(db) = database() else { return };
    let leader = open(&db);
    let standby = open(&db);
    let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let paths = [
        "rss.xml",
        "archive/rss.xml",
        "archive/rss-1.xml",
        "thoi-su/archive/atom-12.xml",
        "thoi-su/archive/feed-3.json",
    ];
    let bodies: Vec<Vec<u8>> = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    let docs: Vec<PublishedDocument<'_>> = paths
        .iter()
        .zip(&bodies)
        .map(|(path, body)| PublishedDocument {
            path,
            hash: path,
            first_published: at,
            body,
        })
        .collect();
    leader.record_published_documents(&docs).unwrap();
    let followed: Vec<String> = standby
        .published_documents_since(0)
        .unwrap()
        .into_iter()
        .map(|d| d.path)
        .collect();
    for path in paths {
        let archive = crate::render::ArchivePath::parse(path).is_some();
        assert_eq!(followed.contains(&path.to_string()), !archive, "{path}");
        let one = standby.published_document(path).unwrap().unwrap();
        assert_eq!(
            (one.body.as_slice(), one.first_published),
            (path.as_bytes(), at)
        );
    }
    assert!(
        standby
            .published_document("archive/rss-2.xml")
            .unwrap()
            .is_none()
    );
}

/// An instance's delivery worker may claim rows before its first heartbeat
/// is committed (they start together): another instance's heartbeat must not
/// take such a claim for one of a departed instance, or both send the same
/// delivery. A claimer nobody has seen keeps its rows until the claim ends.
#[test]
fn a_claimer_not_yet_seen_keeps_its_claims() {
    let Some(db) = database() else { return };
    let mut c = open(&db);
    enqueue(&mut c, &partner_rows(1));
    let none = DueFilter::default();
    let now = Utc::now().timestamp_millis();
    let newcomer = Member::new("newcomer", "");
    let claimed = c
        .claim_due_deliveries(now, 10, &none, &newcomer.token, now + 600_000)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let living = Member::new("living", "");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        c.heartbeat(&living, Role::Leader, Duration::from_millis(10))
            .unwrap(),
        0,
        "the claim of an instance not yet seen stays its own"
    );
    let now = Utc::now().timestamp_millis();
    assert!(
        c.claim_due_deliveries(now, 10, &none, &living.token, now + 600_000)
            .unwrap()
            .is_empty(),
        "nobody else sends it meanwhile"
    );
}
