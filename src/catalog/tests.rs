//! The catalog's behaviour, through the `Catalog` API, on every backend
//! available: SQLite always, PostgreSQL when `FEEDWIRE_TEST_DATABASE_URL`
//! names a cluster to create databases in. Each test runs once per backend;
//! a failure names the backend first (`backend: …` in its output).

use super::postgres::testing::TestDatabase;
use super::*;
use crate::article::{Article, Encoding, Format};
use chrono::{Duration as Span, TimeZone};
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const TZ: Tz = chrono_tz::Asia::Ho_Chi_Minh;

/// Where a test's catalog lives; `open` gives another handle on it.
pub(super) enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Place {
    fn name(&self) -> &'static str {
        match self {
            Place::Sqlite(_) => "sqlite",
            Place::Postgres(_) => "postgres",
        }
    }

    fn location(&self) -> CatalogLocation {
        match self {
            Place::Sqlite(dir) => CatalogLocation::Sqlite(dir.path().join("catalog.sqlite")),
            Place::Postgres(db) => CatalogLocation::Postgres(db.url.clone()),
        }
    }

    pub(super) fn open(&self) -> Catalog {
        Catalog::open(&self.location(), TZ).unwrap()
    }
}

/// Run `test` on a fresh catalog of every available backend.
pub(super) fn on_every_backend(test: impl Fn(&Place)) {
    let mut places = vec![Place::Sqlite(tempfile::tempdir().unwrap())];
    places.extend(TestDatabase::create().map(Place::Postgres));
    for place in places {
        eprintln!("backend: {}", place.name());
        test(&place);
    }
}

fn article(id: &str, title: &str, categories: &[&str]) -> Article {
    Article {
        id: id.into(),
        format: Format::Wire,
        encoding: Encoding::Utf8,
        title: title.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        tags: vec![],
        dateline: None,
        lead: Some(format!("Sapo {title}")),
        authors: vec![],
        paragraphs: vec![format!("Thân bài {title}")],
        captions: vec![],
        see_more: false,
        content_html: format!("<p>Thân bài {title}</p>"),
        image: None,
        published: None,
        updated: None,
        front_matter: None,
        lifecycle: Default::default(),
        language: "vi".into(),
    }
}

fn stamp(n: u64) -> FileStamp {
    FileStamp {
        size: n,
        mtime_ns: n as i64,
        inode: n,
        hash: format!("h{n}"),
    }
}

/// A moment with microseconds, so precision loss shows.
fn at(second: i64, micros: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + second, micros * 1000)
        .unwrap()
}

fn upsert(c: &mut Catalog, path: &str, a: &Article, seen: DateTime<Utc>) -> ChangeCounts {
    let mut b = c.batch().unwrap();
    b.upsert(path, &stamp(a.title.len() as u64), a, seen)
        .unwrap();
    b.commit().unwrap().1
}

#[test]
fn first_seen_never_moves_and_updated_moves_only_with_the_content() {
    on_every_backend(|place| {
        let mut c = place.open();
        let first = at(0, 123_456);
        let counts = upsert(&mut c, "a.txt", &article("a", "Một", &["Thời sự"]), first);
        assert_eq!(counts.added, 1);
        let e = c.entry("a").unwrap().unwrap();
        assert_eq!(e.published, first, "first-seen exact to the microsecond");
        assert_eq!(e.updated, first);

        // Same content later: nothing changes.
        let counts = upsert(
            &mut c,
            "a.txt",
            &article("a", "Một", &["Thời sự"]),
            at(60, 0),
        );
        assert_eq!(counts, ChangeCounts::default());

        // New content: `updated` moves, `published` does not.
        let edited = at(120, 7);
        let counts = upsert(
            &mut c,
            "a.txt",
            &article("a", "Một (sửa)", &["Thời sự"]),
            edited,
        );
        assert_eq!(counts.updated, 1);
        let e = c.entry("a").unwrap().unwrap();
        assert_eq!(
            (e.published, e.updated),
            (first.fixed_offset(), edited.fixed_offset())
        );

        // Removed: a deletion is a kill. The file coming back does not bring
        // it back; after a reinstate it returns with its first-seen time.
        let mut b = c.batch().unwrap();
        assert!(b.remove_file("a.txt").unwrap().is_empty());
        b.settle().unwrap();
        let (affected, counts) = b.commit().unwrap();
        assert_eq!(counts.removed, 1);
        assert!(affected.contains(&FeedKey::Category("thoi-su".into())));
        assert!(c.entry("a").unwrap().is_none());
        upsert(
            &mut c,
            "b.txt",
            &article("a", "Một", &["Thời sự"]),
            at(999, 0),
        );
        assert!(c.entry("a").unwrap().is_none(), "killed until reinstated");
        let mut b = c.batch().unwrap();
        b.reinstate("a").unwrap();
        b.commit().unwrap();
        upsert(
            &mut c,
            "b.txt",
            &article("a", "Một", &["Thời sự"]),
            at(1000, 0),
        );
        assert_eq!(c.entry("a").unwrap().unwrap().published, first);
    });
}

#[test]
fn embargoes_kills_tombstones_and_editors_commands() {
    on_every_backend(|place| {
        let mut c = place.open();
        c.set_tombstone_days(7);
        let now = Utc::now();
        let until = now + Span::hours(1);

        // An editor embargoes an id before its file arrives: the command is
        // logged with who and when, and the override holds the article back.
        c.record_command("e", &EditorCommand::Embargo { until }, "biên tập viên", now)
            .unwrap();
        let pending = c.pending_commands().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (
                pending[0].id.as_str(),
                pending[0].command.as_str(),
                pending[0].who.as_str()
            ),
            ("e", "embargo", "biên tập viên")
        );
        c.mark_commands_applied(pending[0].seq).unwrap();
        assert!(c.pending_commands().unwrap().is_empty());
        let overrides = c.overrides().unwrap();
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].0, "e");
        assert_eq!(overrides[0].1.status, Some(Status::Withheld));
        assert_eq!(
            overrides[0].1.embargo_until.map(|t| t.timestamp_micros()),
            Some(until.timestamp_micros())
        );

        upsert(&mut c, "e.txt", &article("e", "Cấm vận", &["Thời sự"]), now);
        assert!(c.entry("e").unwrap().is_none(), "withheld, not in feeds");
        assert!(matches!(
            c.article_state("e").unwrap(),
            ArticleState::Withheld
        ));
        assert!(c.newest(&FeedKey::Main, 10).unwrap().is_empty());
        assert_eq!(
            c.next_lifecycle_deadline()
                .unwrap()
                .map(|t| t.timestamp_micros()),
            Some(until.timestamp_micros())
        );
        assert!(c.lapsed_embargoes(now).unwrap().is_empty());
        assert_eq!(
            c.lapsed_embargoes(until).unwrap(),
            vec!["e.txt".to_string()]
        );
        assert_eq!(c.file_of("e").unwrap().as_deref(), Some("e.txt"));

        // A public article killed with a reason: it leaves the feeds and a
        // tombstone stays in each for the configured days.
        upsert(&mut c, "k.txt", &article("k", "Rút tin", &["Thời sự"]), now);
        assert!(matches!(
            c.article_state("k").unwrap(),
            ArticleState::Public(_)
        ));
        let mut b = c.batch().unwrap();
        b.kill("k", Some("sai\0 sự thật".into())).unwrap();
        b.commit().unwrap();
        match c.article_state("k").unwrap() {
            ArticleState::Killed { reason, .. } => {
                assert!(reason.unwrap().contains("sự thật"))
            }
            other => panic!("expected killed, got {other:?}"),
        }
        let later = Utc::now();
        let stones = c
            .tombstones_for(&FeedKey::Category("thoi-su".into()), later)
            .unwrap();
        assert_eq!(stones.len(), 1);
        assert_eq!(stones[0].id, "k");
        let kept = stones[0].expires_at - stones[0].killed_at;
        assert_eq!(kept, Span::days(7));
        assert!(
            c.tombstones_for(&FeedKey::Main, later + Span::days(8))
                .unwrap()
                .is_empty()
        );

        // Reinstated: the tombstone goes; the id may be published again.
        let mut b = c.batch().unwrap();
        b.reinstate("k").unwrap();
        b.commit().unwrap();
        assert!(c.tombstones_for(&FeedKey::Main, later).unwrap().is_empty());
        assert!(matches!(
            c.article_state("k").unwrap(),
            ArticleState::Unknown
        ));
        upsert(
            &mut c,
            "k.txt",
            &article("k", "Rút tin (sửa)", &["Thời sự"]),
            later,
        );
        assert!(c.entry("k").unwrap().is_some());

        // A correction: logged, kept as an override, and reinstate keeps it.
        c.record_command(
            "k",
            &EditorCommand::Correct {
                note: "Sửa tên".into(),
            },
            "ed",
            later,
        )
        .unwrap();
        c.record_command("k", &EditorCommand::Reinstate, "ed", later)
            .unwrap();
        let o = c.overrides().unwrap();
        let k = &o.iter().find(|(id, _)| id == "k").unwrap().1;
        assert_eq!(k.correction.as_deref(), Some("Sửa tên"));
        assert_eq!(k.status, None);
        assert_eq!(c.pending_commands().unwrap().len(), 2);

        // Tombstones past their time are purged from the store, and the
        // next deadline moves on to the embargo.
        c.set_tombstone_days(0);
        let mut b = c.batch().unwrap();
        b.kill("k", None).unwrap();
        b.commit().unwrap();
        assert!(c.next_lifecycle_deadline().unwrap().unwrap() < until);
        let mut b = c.batch().unwrap();
        b.purge_tombstones().unwrap();
        b.commit().unwrap();
        assert_eq!(
            c.next_lifecycle_deadline()
                .unwrap()
                .map(|t| t.timestamp_micros()),
            Some(until.timestamp_micros())
        );
    });
}

#[test]
fn files_seen_together_get_distinct_first_seen_times_and_feeds_list_newest_first() {
    on_every_backend(|place| {
        let mut c = place.open();
        let seen = at(10, 999_999);
        let mut b = c.batch().unwrap();
        for (i, id) in ["x", "y", "z"].iter().enumerate() {
            b.upsert(
                &format!("{id}.txt"),
                &stamp(i as u64),
                &article(id, id, &["Kinh tế"]),
                seen,
            )
            .unwrap();
        }
        assert_eq!(b.changes().len(), 3);
        b.commit().unwrap();
        let newest = c.newest(&FeedKey::Main, 10).unwrap();
        let ids: Vec<&str> = newest.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["z", "y", "x"]);
        assert_eq!(newest[2].published, seen);
        assert_eq!(newest[0].published, seen + Span::microseconds(2));
        assert_eq!(
            c.newest(&FeedKey::Category("kinh-te".into()), 2)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(c.article_count().unwrap(), 3);
        let feeds = c.feeds().unwrap();
        assert_eq!(feeds.len(), 2);
        assert_eq!(c.category("kinh-te").unwrap().unwrap().name, "Kinh tế");
        let known = c.known_files().unwrap();
        assert_eq!(known["y.txt"].id.as_deref(), Some("y"));
        assert_eq!(known["y.txt"].stamp, stamp(1));
        let some = c.known_files_among(["x.txt", "nope.txt"]).unwrap();
        assert_eq!(some.len(), 1);
    });
}

#[test]
fn a_second_file_claiming_an_id_waits_for_the_first_to_leave() {
    on_every_backend(|place| {
        let mut c = place.open();
        upsert(&mut c, "a.txt", &article("same", "A", &[]), at(0, 0));
        let mut b = c.batch().unwrap();
        let err = b
            .upsert("b.txt", &stamp(2), &article("same", "B", &[]), at(1, 0))
            .unwrap_err();
        assert!(matches!(&err, StoreError::DuplicateId { owner, .. } if owner == "a.txt"));
        b.reject("b.txt", &stamp(2), &err.to_string(), Some("same"), at(1, 0))
            .unwrap();
        b.commit().unwrap();
        assert_eq!(c.rejection_count().unwrap(), 1);
        let r = &c.rejections().unwrap()[0];
        assert_eq!((r.path.as_str(), r.at), ("b.txt", at(1, 0)));
        assert!(c.known_files().unwrap()["b.txt"].id.is_none());

        let mut b = c.batch().unwrap();
        assert_eq!(b.remove_file("a.txt").unwrap(), ["b.txt"]);
        b.upsert("b.txt", &stamp(3), &article("same", "B", &[]), at(2, 0))
            .unwrap();
        b.commit().unwrap();
        assert_eq!(c.rejection_count().unwrap(), 0);
        let e = c.entry("same").unwrap().unwrap();
        assert_eq!(
            (e.title.as_str(), e.published),
            ("B", at(0, 0).fixed_offset())
        );
    });
}

#[test]
fn held_removals_wait_for_approval_and_another_handle_sees_it() {
    on_every_backend(|place| {
        let mut daemon = place.open();
        upsert(&mut daemon, "a.txt", &article("a", "A", &[]), at(0, 0));
        let mut b = daemon.batch().unwrap();
        assert!(b.hold_removal("a.txt", "a", at(5, 0)).unwrap());
        assert!(!b.hold_removal("a.txt", "a", at(6, 0)).unwrap());
        b.commit().unwrap();
        let version = daemon.data_version().unwrap();

        let operator = place.open();
        let held = operator.held_removals().unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].id.as_str(), held[0].held_at, held[0].approved),
            ("a", at(5, 0), false)
        );
        assert_eq!(operator.approve_held_removals().unwrap(), 1);
        assert_ne!(
            daemon.data_version().unwrap(),
            version,
            "the daemon must notice an operator's approval"
        );
        let mut b = daemon.batch().unwrap();
        assert!(b.held_removal_paths().unwrap()["a.txt"]);
        assert!(b.release_hold("a.txt").unwrap());
        b.commit().unwrap();
        assert!(daemon.held_removals().unwrap().is_empty());
    });
}

#[test]
fn published_versions_meta_and_file_stamps() {
    on_every_backend(|place| {
        let c = place.open();
        c.record_published("rss.xml", "h1", at(3, 0)).unwrap();
        c.record_published("atom.xml", "h2", at(4, 0)).unwrap();
        c.record_published("rss.xml", "h3", at(5, 0)).unwrap();
        let feeds = c.published_feeds().unwrap();
        let got: Vec<(&str, &str)> = feeds
            .iter()
            .map(|f| (f.path.as_str(), f.hash.as_str()))
            .collect();
        assert_eq!(got, [("atom.xml", "h2"), ("rss.xml", "h3")]);
        assert_eq!(feeds[1].published_at, at(5, 0));
        assert_eq!(c.meta("parser").unwrap(), None);
        c.set_meta("parser", "1").unwrap();
        c.set_meta("parser", "2").unwrap();
        assert_eq!(c.meta("parser").unwrap().as_deref(), Some("2"));

        let mut w = place.open();
        upsert(&mut w, "a.txt", &article("a", "A", &[]), at(0, 0));
        w.forget_file_stamps().unwrap();
        assert_eq!(c.known_files().unwrap()["a.txt"].stamp.size, u64::MAX);
    });
}

fn feed_row(topic: &str) -> NewDelivery {
    NewDelivery::Feed {
        kind: DeliveryKind::Hub,
        target: "https://hub.example/".into(),
        topic: topic.into(),
    }
}

fn partner_row(article: &str, body: &str) -> NewDelivery {
    NewDelivery::Partner {
        partner: "p".into(),
        article: article.into(),
        body: body.as_bytes().to_vec(),
        content_type: "application/atom+xml".into(),
        idempotency_key: format!("k-{body}"),
    }
}

fn enqueue(c: &mut Catalog, rows: &[NewDelivery]) -> usize {
    let mut b = c.batch().unwrap();
    let n = b.enqueue(rows).unwrap();
    b.commit().unwrap();
    n
}

#[test]
fn outbox_gates_order_retries_merges_and_dead_letters() {
    on_every_backend(|place| {
        let mut c = place.open();
        let now = Utc::now().timestamp_millis() + 1000;
        let none = DueFilter::default();
        // A copy of a row still waiting is not queued twice.
        assert_eq!(
            enqueue(&mut c, &[feed_row("rss.xml"), feed_row("rss.xml")]),
            1
        );
        assert!(
            c.due_deliveries(now, 10, &none).unwrap().is_empty(),
            "gated"
        );
        assert_eq!(c.open_gate("rss.xml").unwrap(), 1);
        assert_eq!(enqueue(&mut c, &[feed_row("rss.xml")]), 1);
        assert_eq!(c.open_stale_gates(now).unwrap(), 1);
        let due = c.due_deliveries(now, 10, &none).unwrap();
        assert_eq!(due.len(), 2);
        // A failed attempt with `merge` folds the other waiting copy in.
        c.update_outbox(
            &[OutboxUpdate::Retry {
                id: due[0].id,
                next_ms: 0,
                error: "503 from the hub\0".into(),
                merge: true,
            }],
            &HashSet::new(),
        )
        .unwrap();
        let due = c.due_deliveries(now, 10, &none).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempts, 1);

        // Partner rows go in order per article.
        assert_eq!(
            enqueue(
                &mut c,
                &[
                    partner_row("a", "v1"),
                    partner_row("a", "v2"),
                    partner_row("b", "v1")
                ]
            ),
            3
        );
        let filter = DueFilter {
            targets: vec!["https://hub.example/"],
            ..DueFilter::default()
        };
        let due = c.due_deliveries(now, 10, &filter).unwrap();
        let bodies: Vec<(&str, &[u8])> = due
            .iter()
            .map(|r| (r.article.as_str(), r.body.as_deref().unwrap()))
            .collect();
        assert_eq!(bodies, [("a", b"v1".as_slice()), ("b", b"v1".as_slice())]);
        assert_eq!(due[0].idempotency_key, "k-v1");
        c.update_outbox(
            &[
                OutboxUpdate::Remove(due[0].id),
                OutboxUpdate::DeadLetter {
                    id: due[1].id,
                    error: "gave up".into(),
                },
            ],
            &HashSet::new(),
        )
        .unwrap();
        let due = c.due_deliveries(now, 10, &filter).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].body.as_deref(), Some(b"v2".as_slice()));
        let summary = c.outbox_summary(0).unwrap();
        assert_eq!(
            (summary.pending, summary.dead, summary.pending_hub),
            (2, 1, 1)
        );
        assert_eq!(summary.partners.len(), 1);
        assert_eq!(
            (summary.partners[0].pending, summary.partners[0].dead),
            (1, 1)
        );
        assert_eq!(summary.partners[0].last_error.as_deref(), Some("gave up"));
        assert_eq!(c.outbox_backlog().unwrap(), (2, 1));
        assert_eq!(c.redeliver("p", now).unwrap(), 1);
        assert_eq!(c.outbox_backlog().unwrap(), (3, 0));
    });
}

fn limits(per_topic: usize) -> SubscriptionLimits {
    SubscriptionLimits {
        per_topic,
        per_client: 100,
        total: 100,
    }
}

fn subscription<'a>(topic: &'a str, callback: &'a str) -> Subscription<'a> {
    Subscription {
        topic,
        callback,
        client: "192.0.2.1",
        lease_secs: 3600,
        secret: Some("s"),
    }
}

#[test]
fn reservations_count_against_limits_and_subscriptions_fan_out() {
    on_every_backend(|place| {
        let mut c = place.open();
        let topic = "http://127.0.0.1:8080/feeds/rss.xml";
        let now = 1_000_000;
        let one = limits(1);
        let Reservation::Held(first) = c
            .reserve_subscription(topic, "http://cb/1", "192.0.2.1", one, now, 0)
            .unwrap()
        else {
            panic!("the first place is free");
        };
        assert_eq!(
            c.reserve_subscription(topic, "http://cb/2", "192.0.2.1", one, now, 0)
                .unwrap(),
            Reservation::Denied(LimitHit::Topic),
            "a verification in flight holds its place"
        );
        c.release_reservation(first).unwrap();
        let Reservation::Held(second) = c
            .reserve_subscription(topic, "http://cb/2", "192.0.2.1", one, now, 0)
            .unwrap()
        else {
            panic!("a released place is free again");
        };
        c.store_subscription(&subscription(topic, "http://cb/2"), Some(second), one, now)
            .unwrap()
            .unwrap();
        assert_eq!(
            c.reserve_subscription(topic, "http://cb/2", "192.0.2.1", one, now, 0)
                .unwrap(),
            Reservation::Renewal
        );
        assert_eq!(
            c.store_subscription(&subscription(topic, "http://cb/3"), None, one, now)
                .unwrap(),
            Err(LimitHit::Topic)
        );
        let active = c
            .active_subscription(topic, "http://cb/2", now)
            .unwrap()
            .unwrap();
        assert_eq!(
            (active.secret.as_deref(), active.client.as_str()),
            (Some("s"), "192.0.2.1")
        );

        // A feed change fans out to the subscriber, once.
        let fanout = NewDelivery::Feed {
            kind: DeliveryKind::Fanout,
            target: String::new(),
            topic: "rss.xml".into(),
        };
        enqueue(&mut c, std::slice::from_ref(&fanout));
        c.open_all_gates().unwrap();
        let prefix = "http://127.0.0.1:8080/feeds/";
        assert_eq!(
            c.expand_fanouts(prefix, now * 1000, &HashSet::new())
                .unwrap(),
            1
        );
        enqueue(&mut c, &[fanout]);
        c.open_all_gates().unwrap();
        assert_eq!(
            c.expand_fanouts(prefix, now * 1000, &HashSet::new())
                .unwrap(),
            0
        );
        let due = c
            .due_deliveries(i64::MAX, 10, &DueFilter::default())
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].kind, due[0].target.as_str()),
            (DeliveryKind::WebSub, "http://cb/2")
        );
        let busy = DueFilter {
            clients: vec!["192.0.2.1"],
            topic_prefix: prefix.into(),
            ..DueFilter::default()
        };
        assert!(c.due_deliveries(i64::MAX, 10, &busy).unwrap().is_empty());
        assert_eq!(c.outbox_summary(now).unwrap().active_subscriptions, 1);
        c.remove_subscription(topic, "http://cb/2").unwrap();
        assert!(
            c.active_subscription(topic, "http://cb/2", now)
                .unwrap()
                .is_none()
        );
        c.store_subscription(&subscription(topic, "http://cb/4"), None, one, now)
            .unwrap()
            .unwrap();
        assert_eq!(c.purge_expired_subscriptions(now + 3600).unwrap(), 1);
        c.reserve_subscription(topic, "http://cb/5", "192.0.2.1", one, now, 0)
            .unwrap();
        assert_eq!(c.clear_reservations().unwrap(), 1);
    });
}

/// Subscribe requests racing for the last places: the count and the insert
/// are one step, so exactly `per_topic` of them get a place.
#[test]
fn concurrent_reservations_never_exceed_a_limit() {
    on_every_backend(|place| {
        const RACERS: usize = 8;
        let start = Arc::new(Barrier::new(RACERS));
        let held = std::thread::scope(|s| {
            let handles: Vec<_> = (0..RACERS)
                .map(|i| {
                    let mut c = place.open();
                    let start = start.clone();
                    s.spawn(move || {
                        start.wait();
                        c.reserve_subscription(
                            "t",
                            &format!("http://cb/{i}"),
                            &format!("c{i}"),
                            limits(3),
                            0,
                            0,
                        )
                        .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|r| matches!(r, Reservation::Held(_)))
                .count()
        });
        assert_eq!(held, 3);
    });
}

/// A batch left open while another handle updates the outbox: neither
/// fails, both commit (the outbox writer waits for, or runs beside, it).
#[test]
fn a_batch_does_not_lose_to_a_concurrent_outbox_update() {
    on_every_backend(|place| {
        let mut pipeline = place.open();
        let mut worker = place.open();
        enqueue(&mut pipeline, &[partner_row("a", "v1")]);
        let row = worker
            .due_deliveries(i64::MAX, 1, &DueFilter::default())
            .unwrap()[0]
            .id;

        let mut batch = pipeline.batch().unwrap();
        batch
            .upsert("a.txt", &stamp(1), &article("a", "A", &[]), at(0, 0))
            .unwrap();
        let updated = std::thread::scope(|s| {
            let update = s.spawn(|| {
                worker.update_outbox(
                    &[OutboxUpdate::Retry {
                        id: row,
                        next_ms: 5,
                        error: "timeout".into(),
                        merge: false,
                    }],
                    &HashSet::new(),
                )
            });
            std::thread::sleep(Duration::from_millis(200));
            batch.enqueue(&[partner_row("a", "v2")]).unwrap();
            batch.commit().unwrap();
            update.join().unwrap()
        });
        updated.unwrap();
        let c = place.open();
        assert_eq!(c.article_count().unwrap(), 1);
        assert_eq!(c.outbox_backlog().unwrap(), (2, 0));
        assert_eq!(
            c.due_deliveries(i64::MAX, 5, &DueFilter::default())
                .unwrap()[0]
                .attempts,
            1
        );
    });
}

/// A batch dropped without a commit changes nothing, and its connection
/// serves the next batch.
#[test]
fn a_dropped_batch_rolls_back() {
    on_every_backend(|place| {
        let mut c = place.open();
        {
            let mut b = c.batch().unwrap();
            b.upsert("a.txt", &stamp(1), &article("a", "A", &[]), at(0, 0))
                .unwrap();
        }
        assert_eq!(c.article_count().unwrap(), 0);
        upsert(&mut c, "a.txt", &article("a", "A", &[]), at(1, 0));
        assert_eq!(place.open().article_count().unwrap(), 1);
    });
}
