//! `feedwire migrate-catalog`: an agency moves its SQLite catalog into
//! PostgreSQL without re-dating its archive. Needs a test cluster
//! (`FEEDWIRE_TEST_DATABASE_URL`, which `.ci/run` always sets); without one
//! the test says so and checks nothing.

use crate::common::*;
use feedwire::catalog::{
    Catalog, DeliveryKind, DueFilter, EditorCommand, FeedKey, NewDelivery, Reservation,
    Subscription, SubscriptionLimits,
};
use feedwire::config::Config;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The feeds folder holds exactly `before`, byte for byte.
fn assert_same_feeds(site: &Site, before: &BTreeMap<String, Vec<u8>>) {
    let now = tree(&site.feeds());
    let differ: std::collections::BTreeSet<&String> = before
        .keys()
        .chain(now.keys())
        .filter(|k| before.get(*k) != now.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "feeds built from PostgreSQL differ from those built from SQLite: {differ:?}"
    );
}

/// Ids with their published and updated times, newest first.
fn dates(catalog: &Catalog) -> Vec<(String, String, String)> {
    catalog
        .newest(&FeedKey::Main, 1000)
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.published.to_rfc3339(), e.updated.to_rfc3339()))
        .collect()
}

/// `status` without its first line (which names the backend).
fn status_body(site: &Site) -> String {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(first.starts_with("catalog   "), "{first}");
    rest.to_string()
}

#[test]
fn a_sqlite_catalog_moves_to_postgres_keeping_ids_dates_feeds_outbox_and_subscriptions() {
    let Some(db) = TestDatabase::create() else {
        eprintln!("skipped: {DATABASE_URL_VAR} is not set");
        return;
    };
    let site = Site::new_sqlite("[feeds]\nmax_items = 100\n");
    for (i, name) in [
        "000_ee2825b76e43200a.txt",
        "001_ee64584de29b6e91.txt",
        "002_215819bbd3215a5f.txt",
        "003_0e5d2ba19f99a187.txt",
    ]
    .iter()
    .enumerate()
    {
        site.add_wire(name, &format!("tin-{i}.txt"));
    }
    site.write("hong.txt", "");
    site.build();

    // What syndication had queued, and a subscriber, as the daemon leaves them.
    let cfg = Config::load(&site.config()).unwrap();
    let tz = cfg.time_zone().unwrap();
    let topic = format!("{}/feeds/rss.xml", cfg.site.base_url);
    {
        let mut sqlite = Catalog::open(&cfg.catalog_path(), tz).unwrap();
        let mut batch = sqlite.batch().unwrap();
        batch
            .enqueue(&[
                NewDelivery::Partner {
                    partner: "bao-doi-tac".into(),
                    article: "tin-0".into(),
                    body: b"<entry/>".to_vec(),
                    content_type: "application/atom+xml".into(),
                    idempotency_key: "k1".into(),
                },
                NewDelivery::Feed {
                    kind: DeliveryKind::Hub,
                    target: "https://hub.example/".into(),
                    topic: "rss.xml".into(),
                },
            ])
            .unwrap();
        batch.commit().unwrap();
        // An editor's standing correction and embargo for ids not in yet.
        let now = chrono::Utc::now();
        sqlite
            .record_command(
                "sap-toi",
                &EditorCommand::Embargo {
                    until: now + chrono::Duration::days(1),
                },
                "bien-tap",
                now,
            )
            .unwrap();
        sqlite
            .record_command(
                "da-sua",
                &EditorCommand::Correct {
                    note: "Đính chính: tên nhân vật".into(),
                },
                "bien-tap",
                now,
            )
            .unwrap();
        let limits = SubscriptionLimits {
            per_topic: 10,
            per_client: 10,
            total: 10,
        };
        let now = chrono::Utc::now().timestamp();
        let Reservation::Held(place) = sqlite
            .reserve_subscription(&topic, "http://127.0.0.1:9/cb", "127.0.0.1", limits, now, 0)
            .unwrap()
        else {
            panic!("a place for the subscriber");
        };
        sqlite
            .store_subscription(
                &Subscription {
                    topic: &topic,
                    callback: "http://127.0.0.1:9/cb",
                    client: "127.0.0.1",
                    lease_secs: 86400,
                    secret: Some("bí mật"),
                },
                Some(place),
                limits,
                now,
            )
            .unwrap()
            .unwrap();
    }
    let sqlite = Catalog::open(&cfg.catalog_path(), tz).unwrap();
    let sqlite_dates = dates(&sqlite);
    assert_eq!(sqlite_dates.len(), 4);
    let sqlite_due = sqlite
        .due_deliveries(i64::MAX, 10, &DueFilter::default())
        .unwrap();
    let sqlite_overrides = sqlite.overrides().unwrap();
    assert_eq!(sqlite_overrides.len(), 2);
    drop(sqlite);
    let sqlite_status = status_body(&site);
    assert!(
        sqlite_status.contains("1 active subscription"),
        "{sqlite_status}"
    );
    assert!(
        sqlite_status.contains("rejected  1 file"),
        "{sqlite_status}"
    );
    let feeds_before = tree(&site.feeds());

    // A catalog that re-dated the archive would take these times.
    for i in 0..4 {
        std::fs::File::options()
            .write(true)
            .open(site.articles().join(format!("tin-{i}.txt")))
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + i))
            .unwrap();
    }
    std::fs::remove_dir_all(site.feeds()).unwrap();

    let out = site.cli(&[
        "migrate-catalog",
        "--to",
        &db.url,
        "--config",
        site.config().to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("identities") && said.contains(" 4\n"),
        "{said}"
    );
    assert!(
        said.contains("syndicate_subscriptions") && said.contains("[catalog] url"),
        "{said}"
    );
    // The sitemaps' listing is copied, not rebuilt: four articles on one page.
    for (table, rows) in [("sitemap_urls", 4), ("sitemap_pages", 1)] {
        assert!(
            said.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [table, &rows.to_string()]),
            "{table}: {said}"
        );
    }

    let mut config = std::fs::read_to_string(site.config()).unwrap();
    config.push_str(&format!("\n[catalog]\nurl = \"{}\"\n", db.url));
    std::fs::write(site.config(), config).unwrap();
    site.build();
    assert_same_feeds(&site, &feeds_before);
    let postgres_status = status_body(&site);
    assert_eq!(
        postgres_status, sqlite_status,
        "status tells the same story"
    );
    let status = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    let first_line = String::from_utf8_lossy(&status.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first_line.contains("PostgreSQL postgres://"),
        "{first_line}"
    );

    // An article taken out (a kill), put back and reinstated keeps its
    // first-seen time: only the copied identity knows it.
    let away = site.path().join("tin-3.txt");
    std::fs::rename(site.articles().join("tin-3.txt"), &away).unwrap();
    site.build();
    assert_ne!(tree(&site.feeds()), feeds_before);
    std::fs::rename(&away, site.articles().join("tin-3.txt")).unwrap();
    let check = site.cli(&[
        "check",
        "--json",
        site.articles().join("tin-3.txt").to_str().unwrap(),
    ]);
    let understood: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let gone = understood["id"].as_str().unwrap().to_string();
    let out = site.cli(&[
        "reinstate",
        &gone,
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.build();
    assert_same_feeds(&site, &feeds_before);

    let cfg = Config::load(&site.config()).unwrap();
    let postgres = Catalog::open_existing(&cfg.catalog_path(), tz).unwrap();
    assert_eq!(dates(&postgres), sqlite_dates, "same ids, same dates");
    assert_eq!(
        postgres.overrides().unwrap(),
        sqlite_overrides,
        "editors' overrides came along"
    );
    let due = postgres
        .due_deliveries(i64::MAX, 10, &DueFilter::default())
        .unwrap();
    let shape = |rows: &[feedwire::catalog::OutboxRow]| -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {:?} {} {} {} {:?} {} {}",
                    r.id,
                    r.kind,
                    r.target,
                    r.topic,
                    r.article,
                    r.body,
                    r.idempotency_key,
                    r.created_ms
                )
            })
            .collect()
    };
    assert_eq!(shape(&due), shape(&sqlite_due), "the outbox, row for row");
    let sub = postgres
        .active_subscription(
            &topic,
            "http://127.0.0.1:9/cb",
            chrono::Utc::now().timestamp(),
        )
        .unwrap()
        .expect("the subscription came along");
    assert_eq!(sub.secret.as_deref(), Some("bí mật"));
    // New outbox rows continue after the copied ones.
    drop(postgres);
    let mut postgres = Catalog::open(&cfg.catalog_path(), tz).unwrap();
    let mut batch = postgres.batch().unwrap();
    batch
        .enqueue(&[NewDelivery::Feed {
            kind: DeliveryKind::Ping,
            target: "http://127.0.0.1:9/ping".into(),
            topic: "atom.xml".into(),
        }])
        .unwrap();
    batch.commit().unwrap();
    postgres.open_all_gates().unwrap();
    let ids: Vec<i64> = postgres
        .due_deliveries(i64::MAX, 10, &DueFilter::default())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]) && ids.len() == 3,
        "{ids:?}"
    );

    // A second copy into the same database is refused: it is not empty.
    let again = site.cli(&[
        "migrate-catalog",
        "--to",
        &db.url,
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("not empty"), "{err}");
}

/// The URL must be PostgreSQL's; the message names the option and never
/// shows the password.
#[test]
fn migrate_catalog_refuses_another_kind_of_url() {
    let site = Site::new_sqlite("");
    site.write("a.txt", "x");
    let out = site.cli(&[
        "migrate-catalog",
        "--to",
        "mysql://feedwire:s3cret@127.0.0.1/db",
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--to") && !err.contains("s3cret"), "{err}");
}
