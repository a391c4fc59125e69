//! RFC 5005 archived feeds (issue 12, point 5), end to end: `feedwire
//! build` and the real daemon with a small live window (`max_items = 5`)
//! and small pages (`archive_page_size = 4`). Every document, live or
//! archive, is parsed back with feed-rs; `fh:archive` and its namespace are
//! read with quick-xml. Following `prev-archive` (Atom, RSS) or `next_url`
//! (JSON Feed) from any live feed, from the feeds folder and over HTTP,
//! gives each of its articles exactly once (FH-04, FH-05, FH-08); pages
//! already full never change when articles arrive (FH-06); a kill changes
//! only its page; pages are served with validators, compression and a long
//! `Cache-Control` (FH-10), and only paths that name a page reach the disk.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";
const ARCHIVE_CACHE: &str = "public, max-age=86400";
const LIVE_CACHE: &str = "public, max-age=60";

/// The three formats: live file name, archive file stem and extension.
const FORMATS: [(&str, &str); 3] = [
    ("atom.xml", "atom-{n}.xml"),
    ("rss.xml", "rss-{n}.xml"),
    ("feed.json", "feed-{n}.json"),
];

fn archive_site(extra: &str) -> Site {
    Site::new(&format!(
        "[feeds]\nmax_items = 5\narchive_page_size = 4\n[watch]\ndebounce_ms = 100\n\
         [server]\nlisten = \"127.0.0.1:0\"\n{extra}"
    ))
}

/// Article `i`: published on its own minute (so the order is known), in
/// "Thời sự" when `i` is even and "Kinh tế" when odd.
fn article(i: u32) -> (String, String) {
    let category = if i.is_multiple_of(2) {
        "Thời sự"
    } else {
        "Kinh tế"
    };
    let name = format!("bai-{i:02}.md");
    let text = format!(
        "---\ntitle: \"Bài số {i:02}\"\ncategory: {category}\ndate: 2024-03-01T{:02}:{:02}:00+07:00\n---\nNội dung bài {i}.\n",
        8 + i / 60,
        i % 60
    );
    (name, text)
}

fn write_article(site: &Site, i: u32) {
    let (name, text) = article(i);
    site.write(&name, text);
}

/// Article `i` with a body of about `bytes` bytes.
fn write_long_article(site: &Site, i: u32, bytes: usize) {
    let (name, text) = article(i);
    let sentence = "Một câu dài để bài viết có kích thước đáng kể trong nguồn tin. ";
    let body = sentence.repeat(bytes / sentence.len() + 1);
    site.write(&name, text.replace(&format!("Nội dung bài {i}."), &body));
}

fn entry_id(i: u32) -> String {
    format!("tag:test.example,2026:articles/bai-{i:02}")
}

fn feed_url(rel: &str) -> String {
    format!("{BASE_URL}/feeds/{rel}")
}

/// The article numbers each feed folder must carry, of articles `ids`.
fn expected(ids: &BTreeSet<u32>) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut want: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for &i in ids {
        want.entry("").or_default().insert(entry_id(i));
        let folder = if i.is_multiple_of(2) {
            "thoi-su/"
        } else {
            "kinh-te/"
        };
        want.entry(folder).or_default().insert(entry_id(i));
    }
    want
}

/// Where documents are read from: the feeds folder or the daemon over HTTP.
enum From<'a> {
    Folder(&'a Path),
    Http(&'a str),
}

impl From<'_> {
    #[track_caller]
    fn get(&self, url: &str) -> Vec<u8> {
        let rel = url
            .strip_prefix(&format!("{BASE_URL}/feeds/"))
            .unwrap_or_else(|| panic!("{url} is not under the site's feeds"));
        match self {
            From::Folder(dir) => {
                std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
            }
            From::Http(addr) => {
                let r = http_client()
                    .get(format!("http://{addr}/feeds/{rel}"))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200, "GET /feeds/{rel}");
                r.bytes().unwrap().to_vec()
            }
        }
    }
}

/// One document of a chain, as read back.
struct Doc {
    url: String,
    feed: feed_rs::model::Feed,
    /// `prev-archive` (Atom, RSS) or `next_url` (JSON Feed).
    older: Option<String>,
    current: Option<String>,
    self_link: Option<String>,
    /// `<fh:archive/>` in the feed head, in its namespace.
    archive_mark: bool,
}

fn link(feed: &feed_rs::model::Feed, rel: &str) -> Option<String> {
    let found: Vec<&feed_rs::model::Link> = feed
        .links
        .iter()
        .filter(|l| l.rel.as_deref() == Some(rel))
        .collect();
    assert!(found.len() <= 1, "more than one rel={rel} link");
    found.first().map(|l| l.href.clone())
}

/// Whether `<fh:archive/>` (namespace-checked) is a child of the feed head
/// (`feed` in Atom, `channel` in RSS), and nowhere else.
fn archive_mark(xml: &[u8]) -> bool {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::reader::NsReader::from_reader(xml);
    let mut buf = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut found = false;
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).unwrap();
        let is_fh = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == HISTORY_NS.as_bytes());
        match event {
            Event::Start(ref e) | Event::Empty(ref e)
                if is_fh && e.local_name().as_ref() == b"archive" =>
            {
                let parent = stack.last().map(Vec::as_slice);
                assert!(
                    matches!(parent, Some(b"feed") | Some(b"channel")),
                    "fh:archive outside the feed head"
                );
                assert!(!found, "fh:archive twice");
                found = true;
                if let Event::Start(_) = event {
                    stack.push(b"archive".to_vec());
                }
            }
            Event::Start(e) => stack.push(e.local_name().as_ref().to_vec()),
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    found
}

fn read_doc(from: &From, url: &str) -> Doc {
    let bytes = from.get(url);
    let feed = parse_feed(&bytes);
    if url.ends_with(".json") {
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        Doc {
            url: url.to_string(),
            older: json["next_url"].as_str().map(str::to_string),
            // JSON Feed names the feed, not the page: every page's
            // feed_url is the live feed's.
            current: json["feed_url"].as_str().map(str::to_string),
            self_link: None,
            archive_mark: false,
            feed,
        }
    } else {
        Doc {
            url: url.to_string(),
            older: link(&feed, "prev-archive"),
            current: link(&feed, "current"),
            self_link: link(&feed, "self"),
            archive_mark: archive_mark(&bytes),
            feed,
        }
    }
}

/// Follow a feed's chain from its live document; every document in order.
/// Stops with a failure on a loop or a chain longer than `max`.
fn walk(from: &From, live_url: &str, max: usize) -> Vec<Doc> {
    let mut docs: Vec<Doc> = Vec::new();
    let mut next = Some(live_url.to_string());
    while let Some(url) = next {
        assert!(
            docs.iter().all(|d| d.url != url),
            "the chain from {live_url} loops back to {url}"
        );
        assert!(
            docs.len() < max,
            "the chain from {live_url} is longer than {max}"
        );
        let doc = read_doc(from, &url);
        next = doc.older.clone();
        docs.push(doc);
    }
    docs
}

/// Check one feed's chain in one format: the live document, then archive
/// pages newest to oldest, each with the RFC 5005 links; return the entry
/// ids in chain order (with repeats, if any).
fn check_chain(from: &From, folder: &str, live: &str, pattern: &str) -> Vec<String> {
    let live_url = feed_url(&format!("{folder}{live}"));
    let docs = walk(from, &live_url, 100);
    let pages = docs.len() - 1;
    let json = live.ends_with(".json");
    for (i, doc) in docs.iter().enumerate() {
        if i == 0 {
            assert!(
                !doc.archive_mark,
                "{}: the live feed is not an archive",
                doc.url
            );
            if !json {
                assert_eq!(doc.current, None, "{}", doc.url);
                assert_eq!(doc.self_link.as_deref(), Some(live_url.as_str()));
            }
            assert!(
                doc.feed.entries.len() <= 5,
                "{}: the live window is 5",
                doc.url
            );
        } else {
            // Pages newest first: n = pages, pages-1, …, 1.
            let n = pages + 1 - i;
            let want = feed_url(&format!(
                "{folder}archive/{}",
                pattern.replace("{n}", &n.to_string())
            ));
            assert_eq!(doc.url, want, "page order");
            assert_eq!(
                doc.current.as_deref(),
                Some(live_url.as_str()),
                "{}: rel=current",
                doc.url
            );
            if !json {
                assert!(doc.archive_mark, "{}: fh:archive", doc.url);
                assert_eq!(
                    doc.self_link.as_deref(),
                    Some(want.as_str()),
                    "{}: rel=self",
                    doc.url
                );
            }
            assert!(doc.feed.entries.len() <= 4, "{}: pages hold 4", doc.url);
            assert_eq!(
                doc.older.is_none(),
                n == 1,
                "{}: prev-archive iff n > 1",
                doc.url
            );
        }
    }
    docs.iter()
        .flat_map(|d| d.feed.entries.iter().map(|e| e.id.clone()))
        .collect()
}

/// Every entry of every document of a chain, field by field.
fn check_entries(from: &From, folder: &str) {
    for (live, _) in FORMATS {
        for doc in walk(from, &feed_url(&format!("{folder}{live}")), 100) {
            for e in &doc.feed.entries {
                let n: u32 = e.id.rsplit('-').next().unwrap().parse().unwrap();
                let title = e.title.as_ref().map(|t| t.content.as_str());
                assert_eq!(
                    title,
                    Some(format!("Bài số {n:02}").as_str()),
                    "{}",
                    doc.url
                );
                let published = e
                    .published
                    .unwrap_or_else(|| panic!("{}: no date", doc.url));
                assert_eq!(
                    published.to_rfc3339(),
                    format!("2024-03-01T{:02}:{:02}:00+00:00", 1 + n / 60, n % 60),
                    "{}: {}",
                    doc.url,
                    e.id
                );
                assert!(
                    e.links
                        .iter()
                        .any(|l| l.href == format!("{BASE_URL}/articles/bai-{n:02}")),
                    "{}: {} links to its page",
                    doc.url,
                    e.id
                );
            }
        }
    }
}

/// Every feed's chain, in every format, gives each of its articles exactly once.
#[track_caller]
fn assert_exactly_once(from: &From, ids: &BTreeSet<u32>) {
    for (folder, want) in expected(ids) {
        for (live, pattern) in FORMATS {
            let got = check_chain(from, folder, live, pattern);
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(
                unique.len(),
                got.len(),
                "{folder}{live}: an entry twice in {got:?}"
            );
            assert_eq!(unique, want, "{folder}{live}: the chain's entries");
        }
    }
}

/// Every file under the feeds folder: path → content hash and mtime.
fn snapshot(feeds: &Path) -> BTreeMap<String, (blake3::Hash, std::time::SystemTime)> {
    fn walk(
        dir: &Path,
        root: &Path,
        out: &mut BTreeMap<String, (blake3::Hash, std::time::SystemTime)>,
    ) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            // A publisher's temp file (`.<name>.<pid>.<n>.tmp`) is a write
            // in progress, not a published document; it may be gone by the
            // time it would be read.
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&path).unwrap();
                let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
                out.insert(rel, (blake3::hash(&bytes), mtime));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(feeds, feeds, &mut out);
    // Each article's own ninjs document (`ninjs/<id>.json`) changes with
    // its article, not with the feeds' pages: tests/ninjs.rs checks those.
    // The site-root documents (sitemaps, robots.txt) list every article
    // page, so they change with any article: tests/sitemaps.rs checks those.
    out.retain(|path, _| {
        !path.starts_with("ninjs/")
            && !path.starts_with("sitemaps/")
            && !matches!(
                path.as_str(),
                "sitemap.xml" | "news-sitemap.xml" | "robots.txt"
            )
    });
    out
}

/// Paths added, or whose bytes or mtime changed, between two snapshots.
fn changed(
    before: &BTreeMap<String, (blake3::Hash, std::time::SystemTime)>,
    after: &BTreeMap<String, (blake3::Hash, std::time::SystemTime)>,
) -> BTreeSet<String> {
    after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .collect()
}

fn page_paths(folder: &str, n: u32) -> Vec<String> {
    FORMATS
        .iter()
        .map(|(_, pattern)| format!("{folder}archive/{}", pattern.replace("{n}", &n.to_string())))
        .collect()
}

fn live_paths(folder: &str) -> Vec<String> {
    FORMATS
        .iter()
        .map(|(live, _)| format!("{folder}{live}"))
        .collect()
}

/// Wait until the live documents of the main feed and of article `i`'s
/// category, in every format, hold article `i`. Live documents are
/// published last in a round (after the pages they link to), so the round
/// is then on disk: a reader between the two could see an entry both in
/// its new page and in the old live document, never in neither.
fn wait_published(site: &Site, i: u32) {
    let category = if i.is_multiple_of(2) {
        "thoi-su/"
    } else {
        "kinh-te/"
    };
    wait_for(&format!("bai-{i:02} published"), WAIT, || {
        for folder in ["", category] {
            for (live, _) in FORMATS {
                let feed = site.try_feed(&format!("{folder}{live}"))?;
                if !ids(&feed).contains(&entry_id(i)) {
                    return None;
                }
            }
        }
        Some(())
    });
}

/// What a running daemon publishes event by event (the main feed's live
/// documents and archive pages joined from remembered entry fragments) is
/// byte for byte what `feedwire build` renders from scratch: after new
/// articles, pages filling and an edit of an article in the live window,
/// a build rewrites nothing.
#[test]
fn documents_published_by_events_are_the_documents_a_build_renders() {
    let site = archive_site("");
    for i in 1..=6 {
        write_article(&site, i);
    }
    let daemon = site.start();
    wait_published(&site, 6);
    for i in 7..=14 {
        write_article(&site, i);
        wait_published(&site, i);
    }
    // An edit of an entry the memo holds: its fragments must be new.
    let (name, text) = article(13);
    site.write(&name, text.replace("Bài số 13", "Bài số 13 (đã sửa)"));
    wait_for("the edit published", WAIT, || {
        let feed = site.try_feed("atom.xml")?;
        titles(&feed)
            .iter()
            .any(|t| t == "Bài số 13 (đã sửa)")
            .then_some(())
    });
    write_article(&site, 15);
    wait_published(&site, 15);
    assert!(daemon.terminate().success());
    let published = snapshot(&site.feeds());
    assert!(
        published.contains_key("archive/atom-3.xml"),
        "{published:?}"
    );
    site.build();
    let built = snapshot(&site.feeds());
    let differ: Vec<&String> = built
        .iter()
        .filter(|(p, (hash, _))| published.get(*p).map(|v| &v.0) != Some(hash))
        .map(|(p, _)| p)
        .collect();
    assert!(
        differ.is_empty(),
        "a build rendered these differently: {differ:?}"
    );
    assert_eq!(built.len(), published.len());
}

/// Point 5, test (1): 23 articles, live window 5, pages of 4. `feedwire
/// build` writes five pages for the main feed (4, 4, 4, 4, 2 entries) and
/// two for each category; the chains, read from the feeds folder and over
/// HTTP from the daemon, give every article of each feed exactly once, in
/// Atom, RSS and JSON Feed alike.
#[test]
fn following_the_archive_chain_gives_every_article_exactly_once() {
    let site = archive_site("");
    for i in 1..=23 {
        write_article(&site, i);
    }
    site.build();
    let all: BTreeSet<u32> = (1..=23).collect();
    let folder = From::Folder(&site.feeds());
    assert_exactly_once(&folder, &all);
    for f in ["", "thoi-su/", "kinh-te/"] {
        check_entries(&folder, f);
    }
    // The newest five are live, the oldest four are page 1.
    let live = site.feed("atom.xml");
    assert_eq!(
        ids(&live),
        (19..=23).rev().map(entry_id).collect::<Vec<_>>()
    );
    let first = site.feed("archive/atom-1.xml");
    assert_eq!(ids(&first), (1..=4).rev().map(entry_id).collect::<Vec<_>>());
    let newest = site.feed("archive/atom-5.xml");
    assert_eq!(
        ids(&newest),
        (17..=18).rev().map(entry_id).collect::<Vec<_>>()
    );
    assert!(!site.feeds().join("archive/atom-6.xml").exists());

    let daemon = site.start();
    let addr = daemon.http_addr();
    assert_exactly_once(&From::Http(&addr), &all);
}

/// Point 5, tests (2) and (3): adding one article rewrites only the live
/// documents of its feeds and their newest archive page; pages already full
/// keep their bytes and mtimes as articles keep arriving; killing an
/// archived article changes its page and the live documents (its
/// tombstone), nothing else; a backdated article goes straight to the
/// newest page.
#[test]
fn new_articles_touch_only_the_live_feed_and_the_newest_page() {
    let site = archive_site("");
    for i in 1..=23 {
        write_article(&site, i);
    }
    let daemon = site.start();
    wait_published(&site, 22);
    wait_published(&site, 23);
    let mut ids_now: BTreeSet<u32> = (1..=23).collect();
    assert_exactly_once(&From::Folder(&site.feeds()), &ids_now);

    // Article 24 is even: main and thoi-su. Main's page 5 held 2 (17, 18):
    // 19 moves there. thoi-su held 11 (2..22 even): live 14..22, pages
    // [2,4,6,8] [10,12]; 14 moves to its page 2.
    let before = snapshot(&site.feeds());
    // A new second: mtimes that did not change are then told apart.
    std::thread::sleep(Duration::from_millis(1100));
    write_article(&site, 24);
    wait_published(&site, 24);
    let after = snapshot(&site.feeds());
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    for f in ["", "thoi-su/"] {
        allowed.extend(live_paths(f));
    }
    allowed.extend(page_paths("", 5));
    allowed.extend(page_paths("thoi-su/", 2));
    let touched = changed(&before, &after);
    assert!(
        touched.is_subset(&allowed),
        "adding one article rewrote {:?}",
        touched.difference(&allowed).collect::<Vec<_>>()
    );
    for p in live_paths("").into_iter().chain(page_paths("", 5)) {
        assert!(touched.contains(&p), "{p} should have changed");
    }
    ids_now.insert(24);
    assert_exactly_once(&From::Folder(&site.feeds()), &ids_now);

    // Four more (25..28): main's page 5 fills (17..20) and page 6 starts;
    // pages 1..4 of main, full before, keep their bytes and mtimes.
    let full_before: BTreeMap<String, _> = before
        .iter()
        .filter(|(p, _)| (1..=4).any(|n| page_paths("", n).contains(p)))
        .map(|(p, v)| (p.clone(), *v))
        .collect();
    assert_eq!(full_before.len(), 12);
    for i in 25..=28 {
        write_article(&site, i);
        ids_now.insert(i);
    }
    wait_published(&site, 27);
    wait_published(&site, 28);
    wait_for("main page 6", WAIT, || {
        site.feeds()
            .join("archive/atom-6.xml")
            .exists()
            .then_some(())
    });
    let later = snapshot(&site.feeds());
    for (p, v) in &full_before {
        assert_eq!(later.get(p), Some(v), "{p}: a full page changed");
    }
    assert_exactly_once(&From::Folder(&site.feeds()), &ids_now);
    assert_eq!(ids(&site.feed("archive/atom-5.xml")).len(), 4);
    // Page 5 is full now; more articles leave it alone too.
    let page5 = snapshot(&site.feeds());
    write_article(&site, 29);
    ids_now.insert(29);
    wait_published(&site, 29);
    let now = snapshot(&site.feeds());
    for p in page_paths("", 5) {
        assert_eq!(
            now.get(&p),
            page5.get(&p),
            "{p}: page 5 filled, then changed"
        );
    }

    // A backdated article (published before everything) arrives below the
    // live window: straight into main's newest page, never live. Pages 1..6
    // are full (1..24), so it starts page 7; deleted, it leaves page 7 empty
    // (pages never renumber) and the chain still holds everything once.
    site.write(
        "cu.md",
        "---\ntitle: \"Bài cũ\"\ncategory: Thời sự\ndate: 2020-01-01T08:00:00+07:00\n---\nCũ.\n",
    );
    let old_id = "tag:test.example,2026:articles/cu";
    wait_for("backdated article archived", WAIT, || {
        let page = site.try_feed("archive/atom-7.xml")?;
        ids(&page).contains(&old_id.to_string()).then_some(())
    });
    assert!(!ids(&site.feed("atom.xml")).contains(&old_id.to_string()));
    std::fs::remove_file(site.articles().join("cu.md")).unwrap();
    wait_for("backdated article gone", WAIT, || {
        let page = site.try_feed("archive/atom-7.xml")?;
        (!ids(&page).contains(&old_id.to_string())).then_some(())
    });
    // Pages are published before the live documents that link to them:
    // wait for the live side of the same round (its tombstones) too.
    // Every live document that carries tombstones, not only one per feed:
    // a round's documents are renamed into place one after another.
    wait_for("tombstones of the backdated article", WAIT, || {
        [
            "atom.xml",
            "feed.json",
            "thoi-su/atom.xml",
            "thoi-su/feed.json",
        ]
        .iter()
        .all(|f| std::fs::read_to_string(site.feeds().join(f)).is_ok_and(|t| t.contains(old_id)))
        .then_some(())
    });

    // Kill an archived article (3, odd: main page 1, kinh-te page 1):
    // only those pages and the live documents (tombstones) change.
    let before_kill = snapshot(&site.feeds());
    std::thread::sleep(Duration::from_millis(1100));
    let out = site.cli(&[
        "kill",
        "bai-03",
        "--reason",
        "Sai sự thật",
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("killed article leaves page 1", WAIT, || {
        let page = site.try_feed("archive/atom-1.xml")?;
        (!ids(&page).contains(&entry_id(3))).then_some(())
    });
    wait_for("tombstones in the live feeds", WAIT, || {
        [
            "atom.xml",
            "feed.json",
            "kinh-te/atom.xml",
            "kinh-te/feed.json",
        ]
        .iter()
        .all(|f| {
            std::fs::read_to_string(site.feeds().join(f)).is_ok_and(|t| t.contains(&entry_id(3)))
        })
        .then_some(())
    });
    let after_kill = snapshot(&site.feeds());
    let touched = changed(&before_kill, &after_kill);
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    for f in ["", "kinh-te/"] {
        allowed.extend(live_paths(f));
    }
    allowed.extend(page_paths("", 1));
    allowed.extend(page_paths("kinh-te/", 1));
    assert!(
        touched.is_subset(&allowed),
        "a kill rewrote {:?}",
        touched.difference(&allowed).collect::<Vec<_>>()
    );
    for p in page_paths("", 1) {
        assert!(touched.contains(&p), "{p} should have changed");
    }
    ids_now.remove(&3);
    assert_exactly_once(&From::Folder(&site.feeds()), &ids_now);
    // The tombstone stays in the live documents only.
    for n in 1..=7 {
        let page =
            std::fs::read_to_string(site.feeds().join(format!("archive/atom-{n}.xml"))).unwrap();
        assert!(
            !page.contains("deleted-entry"),
            "page {n} carries a tombstone"
        );
    }
    daemon.terminate();
}

/// One GET with raw bytes on the wire: status and the whole answer.
fn raw_request(addr: &str, target: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = http_client().get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Point 5, test (4): archive pages over HTTP. A full page carries
/// `server.archive_cache_control`, the newest page the normal lifetime; a
/// strong ETag and Last-Modified, 304 on either, gzip that decodes to the
/// file's bytes, HEAD. Paths that do not name a page exactly, and a page
/// planted as a link to another file, are 404.
#[test]
fn archive_pages_are_served_with_validators_compression_and_long_lifetimes() {
    let site = archive_site("");
    for i in 1..=13 {
        write_article(&site, i);
    }
    let daemon = site.start();
    wait_published(&site, 12);
    wait_published(&site, 13);
    let addr = daemon.http_addr();
    // Main: live 9..13, pages [1..4] [5..8]: page 1 full, page 2 newest.
    for (path, cache) in [
        ("/feeds/archive/atom-1.xml", ARCHIVE_CACHE),
        ("/feeds/archive/rss-1.xml", ARCHIVE_CACHE),
        ("/feeds/archive/feed-1.json", ARCHIVE_CACHE),
        ("/feeds/archive/atom-2.xml", LIVE_CACHE),
        ("/feeds/thoi-su/archive/atom-1.xml", LIVE_CACHE),
    ] {
        let r = get(&addr, path, &[]);
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(
            header(&r, "cache-control").as_deref(),
            Some(cache),
            "{path}"
        );
        let etag = header(&r, "etag").unwrap_or_else(|| panic!("{path}: no ETag"));
        assert!(
            etag.starts_with('"') && etag.len() == 34,
            "{path}: strong ETag {etag}"
        );
        let modified = header(&r, "last-modified").unwrap();
        let body = r.bytes().unwrap();
        let file = std::fs::read(site.feeds().join(path.trim_start_matches("/feeds/"))).unwrap();
        assert_eq!(body.as_ref(), file.as_slice(), "{path}: the published file");
        parse_feed(&body);

        let again = get(&addr, path, &[("If-None-Match", &etag)]);
        assert_eq!(again.status().as_u16(), 304, "{path}: If-None-Match");
        assert_eq!(header(&again, "cache-control").as_deref(), Some(cache));
        let again = get(&addr, path, &[("If-Modified-Since", &modified)]);
        assert_eq!(again.status().as_u16(), 304, "{path}: If-Modified-Since");

        let gz = http_client()
            .get(format!("http://{addr}{path}"))
            .header("Accept-Encoding", "gzip")
            .send()
            .unwrap();
        assert_eq!(
            header(&gz, "content-encoding").as_deref(),
            Some("gzip"),
            "{path}"
        );
        assert_eq!(header(&gz, "vary").as_deref(), Some("Accept-Encoding"));
        let gz_etag = header(&gz, "etag").unwrap();
        assert_ne!(gz_etag, etag, "each coding its own ETag");
        let mut plain = Vec::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&gz.bytes().unwrap()[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, file, "{path}: gzip decodes to the file");

        let head = http_client()
            .head(format!("http://{addr}{path}"))
            .send()
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(
            header(&head, "content-length"),
            Some(file.len().to_string())
        );
        assert!(head.bytes().unwrap().is_empty());
    }
    // Content types per format.
    let json = get(&addr, "/feeds/archive/feed-1.json", &[]);
    assert!(
        header(&json, "content-type")
            .unwrap()
            .starts_with("application/feed+json")
    );
    let rss = get(&addr, "/feeds/archive/rss-1.xml", &[]);
    assert!(
        header(&rss, "content-type")
            .unwrap()
            .starts_with("application/rss+xml")
    );

    // A file an attacker (or an accident) left in the archive folder, as a
    // link to a secret: not served, whatever it is named.
    let secret = site.path().join("secret.txt");
    std::fs::write(&secret, "do not serve").unwrap();
    std::os::unix::fs::symlink(&secret, site.feeds().join("archive/atom-9.xml")).unwrap();
    std::fs::write(site.feeds().join("archive/notes.xml"), "<x/>").unwrap();
    // Raw bytes on the wire, so no client normalises `..` or `%2e%2e` away.
    for bogus in [
        "/feeds/archive/atom-9.xml",
        "/feeds/archive/atom-3.xml",
        "/feeds/archive/atom-0.xml",
        "/feeds/archive/atom-01.xml",
        "/feeds/archive/atom-1.json",
        "/feeds/archive/index-1.opml",
        "/feeds/archive/notes.xml",
        "/feeds/archive/atom-1.xml.tmp",
        "/feeds/archive/%2e%2e/atom.xml",
        "/feeds/archive/..%2fatom.xml",
        "/feeds/archive/atom-1.xml%00",
        "/feeds/x/y/archive/atom-1.xml",
        "/feeds/khong-co/archive/atom-1.xml",
        "/feeds/Thoi-Su/archive/atom-1.xml",
        "/feeds/archive/atom-99999999999.xml",
        "/feeds/%2e%2e/config.toml",
        "/feeds/archive/..%2f..%2fconfig.toml",
        "/feeds/archive/../../config.toml",
        "/feeds/thoi-su/archive/../../../secret.txt",
    ] {
        let (status, text) = raw_request(&addr, bogus);
        assert_eq!(status, 404, "{bogus}");
        assert!(
            !text.contains("do not serve") && !text.contains("[site]"),
            "{bogus}"
        );
    }
    daemon.terminate();
}

/// A catalog that existed before archives (every member live) is archived
/// at the next start: the daemon's first publish moves the overflow into
/// pages, and the chain is complete.
#[test]
fn a_build_with_a_smaller_window_archives_what_it_no_longer_holds() {
    let site = Site::new("[feeds]\nmax_items = 50\narchive_page_size = 4\n");
    for i in 1..=11 {
        write_article(&site, i);
    }
    site.build();
    assert!(
        !site.feeds().join("archive").exists(),
        "nothing to archive yet"
    );
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("max_items = 50", "max_items = 5"),
    )
    .unwrap();
    site.build();
    let all: BTreeSet<u32> = (1..=11).collect();
    assert_exactly_once(&From::Folder(&site.feeds()), &all);
    // Widening the window again brings nothing back: archived is archived.
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("max_items = 5", "max_items = 50"),
    )
    .unwrap();
    site.build();
    assert_eq!(site.feed("atom.xml").entries.len(), 5);
    let pages: PathBuf = site.feeds().join("archive/atom-2.xml");
    assert!(pages.exists());
    let mut found = BTreeSet::new();
    for f in ["atom.xml", "archive/atom-1.xml", "archive/atom-2.xml"] {
        found.extend(ids(&site.feed(f)));
    }
    assert_eq!(found.len(), 11);
}

/// A live feed over `feeds.max_bytes` holds fewer than `max_items`: the
/// entries it cannot hold move to the archive rather than being left out of
/// every document, so the chain still gives each article exactly once.
#[test]
fn entries_a_live_feed_cannot_hold_in_max_bytes_move_to_the_archive() {
    let site = Site::new("[feeds]\nmax_items = 5\narchive_page_size = 4\nmax_bytes = 4096\n");
    for i in 1..=12 {
        write_long_article(&site, i, 700);
    }
    site.build();
    for f in ["atom.xml", "rss.xml", "feed.json"] {
        let bytes = std::fs::read(site.feeds().join(f)).unwrap();
        assert!(bytes.len() <= 4096, "{f}: {} bytes", bytes.len());
    }
    let live = site.feed("atom.xml").entries.len();
    assert!((1..5).contains(&live), "the cap left {live} live entries");
    let all: BTreeSet<u32> = (1..=12).collect();
    assert_exactly_once(&From::Folder(&site.feeds()), &all);
    check_entries(&From::Folder(&site.feeds()), "");
}
