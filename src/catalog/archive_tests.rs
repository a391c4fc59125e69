//! The archive rules of a batch (RFC 5005), on every backend: a
//! feed's live window, fixed pages, backdated arrivals, kills, edits and
//! renames of archived entries, and which pages each change marks for
//! publishing.

use super::tests::on_every_backend;
use super::{Catalog, FeedKey};
use crate::article::Article;
use crate::source::FileStamp;
use chrono::{DateTime, TimeZone, Utc};

/// Article `i`, published at minute `minute` of a fixed day.
fn article(i: u32, minute: u32, title: &str) -> Article {
    let text = format!(
        "---\ntitle: \"{title}\"\ncategory: Thời sự\ndate: 2024-03-01T08:{minute:02}:00+07:00\n---\nNội dung {i}.\n"
    );
    let opts = crate::ingest::IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 1 << 20,
        now: Utc::now(),
        limits: crate::ingest::Limits::default(),
    };
    crate::ingest::parse(&format!("a{i:02}.md"), text.as_bytes(), &opts).unwrap()
}

fn stamp(i: u32) -> FileStamp {
    FileStamp {
        size: u64::from(i),
        mtime_ns: i64::from(i),
        inode: u64::from(i),
        hash: format!("h{i}"),
    }
}

fn seen() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

/// Add article `i` (published at minute `i`) in a batch of its own.
fn add(catalog: &mut Catalog, i: u32) {
    add_at(catalog, i, i);
}

fn add_at(catalog: &mut Catalog, i: u32, minute: u32) {
    let mut batch = catalog.batch().unwrap();
    batch
        .upsert(
            &format!("a{i:02}.md"),
            &stamp(i),
            &article(i, minute, &format!("Bài {i}")),
            seen(),
        )
        .unwrap();
    batch.commit().unwrap();
}

fn numbers(entries: Vec<crate::article::Entry>) -> Vec<u32> {
    entries
        .iter()
        .map(|e| e.id.trim_start_matches('a').parse().unwrap())
        .collect()
}

fn live(catalog: &Catalog) -> Vec<u32> {
    numbers(catalog.newest(&FeedKey::Main, 100).unwrap())
}

fn page(catalog: &Catalog, n: u32) -> Vec<u32> {
    numbers(catalog.archive_page(&FeedKey::Main, n).unwrap())
}

/// Pages marked for publishing in the main feed; marks them published.
fn stale(catalog: &Catalog) -> Vec<u32> {
    let mut out = Vec::new();
    for (feed, n) in catalog.stale_archive_pages().unwrap() {
        catalog.archive_page_published(&feed, n).unwrap();
        if feed == FeedKey::Main {
            out.push(n);
        }
    }
    out
}

#[test]
fn entries_leaving_the_live_window_fill_pages_that_then_stay_fixed() {
    on_every_backend(|place| {
        let mut c = place.open();
        c.set_archive(3, 2);
        for i in 1..=3 {
            add(&mut c, i);
        }
        assert_eq!(live(&c), [3, 2, 1]);
        assert_eq!(c.archive_page_count(&FeedKey::Main).unwrap(), 0);
        assert!(stale(&c).is_empty());
        add(&mut c, 4);
        assert_eq!((live(&c), page(&c, 1)), (vec![4, 3, 2], vec![1]));
        assert_eq!(stale(&c), [1]);
        add(&mut c, 5);
        assert_eq!(page(&c, 1), [2, 1]);
        assert_eq!(stale(&c), [1]);
        // Page 1 is full: the next one starts page 2, and page 1 is not
        // marked again (its bytes do not change).
        add(&mut c, 6);
        assert_eq!((page(&c, 1), page(&c, 2)), (vec![2, 1], vec![3]));
        assert_eq!(stale(&c), [2]);
        assert_eq!(c.archive_page_count(&FeedKey::Main).unwrap(), 2);
        // Several displaced at once (a smaller window): oldest first, filling
        // the newest page and starting the next.
        let mut batch = c.batch().unwrap();
        assert!(batch.archive_overflow(&FeedKey::Main, 1).unwrap());
        batch.commit().unwrap();
        assert_eq!(
            (page(&c, 2), page(&c, 3), live(&c)),
            (vec![4, 3], vec![5], vec![6])
        );
        assert_eq!(stale(&c), [2, 3]);
        // The live window is counted among members not archived: back at 3,
        // nothing comes back; new articles fill it again.
        add(&mut c, 7);
        assert_eq!((live(&c), page(&c, 3)), (vec![7, 6], vec![5]));
        assert!(stale(&c).is_empty());
    });
}

#[test]
fn a_backdated_arrival_below_the_window_goes_straight_to_the_newest_page() {
    on_every_backend(|place| {
        let mut c = place.open();
        c.set_archive(2, 3);
        for i in 10..=14 {
            add(&mut c, i);
        }
        assert_eq!((live(&c), page(&c, 1)), (vec![14, 13], vec![12, 11, 10]));
        stale(&c);
        // Published before everything, it never shows in the live feed.
        add_at(&mut c, 1, 1);
        assert_eq!((live(&c), page(&c, 2)), (vec![14, 13], vec![1]));
        assert_eq!(stale(&c), [2]);
    });
}

#[test]
fn a_kill_takes_the_entry_out_of_its_page_and_gives_no_room_back() {
    on_every_backend(|place| {
        let mut c = place.open();
        c.set_archive(2, 2);
        for i in 1..=6 {
            add(&mut c, i);
        }
        assert_eq!((page(&c, 1), page(&c, 2)), (vec![2, 1], vec![4, 3]));
        stale(&c);
        let mut batch = c.batch().unwrap();
        batch.kill("a01", Some("sai".into())).unwrap();
        let (affected, _) = batch.commit().unwrap();
        assert!(affected.contains(&FeedKey::Main));
        assert_eq!(page(&c, 1), [2]);
        assert_eq!(stale(&c), [1]);
        // Page 1 stays as it is: the next displaced entry starts page 3.
        add(&mut c, 7);
        assert_eq!((page(&c, 1), page(&c, 3)), (vec![2], vec![5]));
        assert_eq!(stale(&c), [3]);
    });
}

#[test]
fn an_edited_or_renamed_archived_entry_stays_in_its_page() {
    on_every_backend(|place| {
        let mut c = place.open();
        c.set_archive(2, 2);
        for i in 1..=5 {
            add(&mut c, i);
        }
        assert_eq!(page(&c, 1), [2, 1]);
        stale(&c);
        // An edit: its page shows the new title (and is published again); the
        // entry does not come back to the live feed.
        let mut batch = c.batch().unwrap();
        batch
            .upsert("a01.md", &stamp(101), &article(1, 1, "Bài 1 (sửa)"), seen())
            .unwrap();
        batch.commit().unwrap();
        assert_eq!((live(&c), page(&c, 1)), (vec![5, 4], vec![2, 1]));
        let titles: Vec<String> = c
            .archive_page(&FeedKey::Main, 1)
            .unwrap()
            .into_iter()
            .map(|e| e.title)
            .collect();
        assert_eq!(titles, ["Bài 2", "Bài 1 (sửa)"]);
        assert_eq!(stale(&c), [1]);
        // A rename (the file moved within one batch) is not a kill: the entry
        // keeps its page.
        let mut batch = c.batch().unwrap();
        batch.remove_file("a02.md").unwrap();
        batch
            .upsert("moved/a02.md", &stamp(2), &article(2, 2, "Bài 2"), seen())
            .unwrap();
        batch.commit().unwrap();
        assert_eq!((live(&c), page(&c, 1)), (vec![5, 4], vec![2, 1]));
        assert!(matches!(
            c.article_state("a02").unwrap(),
            super::ArticleState::Public(_)
        ));
    });
}
