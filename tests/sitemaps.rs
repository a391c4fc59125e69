//! Sitemaps end to end (issue 13, point 2): the real daemon over HTTP, every
//! sitemap parsed back with a namespace-aware XML parser (quick-xml's
//! `NsReader`) and checked field by field against newsroom.md NR-06 (Google
//! News) and NR-07 (sitemaps.org): what is listed (public articles only,
//! never withheld or killed ones), the news sitemap's two-day window and
//! its 1,000-URL files, the full sitemap's fixed pages (a new article or a
//! kill rewrites one page, not the others), robots.txt, and the listing
//! made again when the sitemaps' settings change. Generous deadlines.

use crate::common::*;
use chrono::{DateTime, Duration as Span, FixedOffset, SecondsFormat, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const SITEMAP_NS: &str = "http://www.sitemaps.org/schemas/sitemap/0.9";
const NEWS_NS: &str = "http://www.google.com/schemas/sitemap-news/0.9";
const PUBLICATION: &str = "Thông tấn xã thử nghiệm";

// ---------------------------------------------------------------- helpers

/// A `<url>` of a urlset, with its `news:news` when it has one.
#[derive(Debug, Clone, Default, PartialEq)]
struct Url {
    loc: String,
    lastmod: Option<String>,
    news: Option<News>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct News {
    name: String,
    language: String,
    publication_date: String,
    title: String,
}

/// A sitemap file as a crawler reads it.
#[derive(Debug)]
enum Sitemap {
    Urls(Vec<Url>),
    /// A sitemap index: each file's loc and lastmod.
    Index(Vec<(String, String)>),
}

impl Sitemap {
    #[track_caller]
    fn urls(self) -> Vec<Url> {
        match self {
            Sitemap::Urls(u) => u,
            Sitemap::Index(i) => panic!("a urlset was expected, got an index of {i:?}"),
        }
    }

    #[track_caller]
    fn index(self) -> Vec<(String, String)> {
        match self {
            Sitemap::Index(i) => i,
            Sitemap::Urls(u) => panic!("an index was expected, got {} URLs", u.len()),
        }
    }
}

/// Parse a sitemap, a sitemap index or a news sitemap, checking every
/// element's namespace (not its prefix's spelling).
fn parse_sitemap(bytes: &[u8]) -> Sitemap {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::reader::NsReader::from_reader(bytes);
    let mut buf = Vec::new();
    // (namespace, local name) of the open elements.
    let mut path: Vec<(String, String)> = Vec::new();
    let mut root = None;
    let mut urls: Vec<Url> = Vec::new();
    let mut index: Vec<(String, String)> = Vec::new();
    // The text of the innermost element, entities resolved (quick-xml
    // reports `&amp;` and the like as events of their own).
    let mut text = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).unwrap();
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8(n.as_ref().to_vec()).unwrap(),
            _ => String::new(),
        };
        match event {
            Event::Start(e) => {
                let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                match (path.len(), local.as_str()) {
                    (0, _) => {
                        assert_eq!(ns, SITEMAP_NS, "the root is in the sitemaps namespace");
                        root = Some(local.clone());
                    }
                    (1, "url") => urls.push(Url::default()),
                    (1, "sitemap") => index.push(Default::default()),
                    (2, "news") => urls.last_mut().unwrap().news = Some(News::default()),
                    _ => {}
                }
                path.push((ns, local));
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => match r.resolve_char_ref().unwrap() {
                Some(c) => text.push(c),
                None => text.push_str(
                    quick_xml::escape::resolve_predefined_entity(&r.decode().unwrap())
                        .unwrap_or_else(|| panic!("unknown entity {r:?}")),
                ),
            },
            Event::End(_) => {
                let value = std::mem::take(&mut text);
                let names: Vec<(&str, &str)> =
                    path.iter().map(|(n, l)| (n.as_str(), l.as_str())).collect();
                match names.as_slice() {
                    [_, (SITEMAP_NS, "url"), (SITEMAP_NS, "loc")] => {
                        urls.last_mut().unwrap().loc = value
                    }
                    [_, (SITEMAP_NS, "url"), (SITEMAP_NS, "lastmod")] => {
                        urls.last_mut().unwrap().lastmod = Some(value)
                    }
                    [_, (SITEMAP_NS, "sitemap"), (SITEMAP_NS, "loc")] => {
                        index.last_mut().unwrap().0 = value
                    }
                    [_, (SITEMAP_NS, "sitemap"), (SITEMAP_NS, "lastmod")] => {
                        index.last_mut().unwrap().1 = value
                    }
                    [_, _, (NEWS_NS, "news"), rest @ ..] if !rest.is_empty() => {
                        let news = urls.last_mut().unwrap().news.as_mut().unwrap();
                        match rest {
                            [(NEWS_NS, "publication"), (NEWS_NS, "name")] => news.name = value,
                            [(NEWS_NS, "publication"), (NEWS_NS, "language")] => {
                                news.language = value
                            }
                            [(NEWS_NS, "publication")] => {}
                            [(NEWS_NS, "publication_date")] => news.publication_date = value,
                            [(NEWS_NS, "title")] => news.title = value,
                            other => panic!("unexpected news element {other:?}"),
                        }
                    }
                    _ if value.trim().is_empty() => {}
                    other => panic!("text in an unexpected place {other:?}: {value:?}"),
                }
                path.pop();
            }
            Event::Empty(e) => panic!(
                "empty element {:?} in a sitemap",
                String::from_utf8_lossy(e.name().as_ref())
            ),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    match root.as_deref() {
        Some("urlset") => Sitemap::Urls(urls),
        Some("sitemapindex") => Sitemap::Index(index),
        other => panic!("a sitemap's root is {other:?}"),
    }
}

/// GET a site path: status, content type, ETag, body.
fn get(daemon: &Daemon, path: &str) -> (u16, String, String, Vec<u8>) {
    let r = http_client()
        .get(format!("http://{}{path}", daemon.http_addr()))
        .send()
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, content_type, etag) =
        (r.status().as_u16(), header("content-type"), header("etag"));
    (status, content_type, etag, r.bytes().unwrap().to_vec())
}

/// A sitemap file served by the daemon, parsed; it must be there.
#[track_caller]
fn sitemap(daemon: &Daemon, path: &str) -> Sitemap {
    let (status, content_type, _, body) = get(daemon, path);
    assert_eq!(status, 200, "{path}");
    assert_eq!(content_type, "application/xml; charset=utf-8", "{path}");
    parse_sitemap(&body)
}

/// A file an index lists, fetched from the daemon by its path.
fn listed_file(daemon: &Daemon, loc: &str) -> Sitemap {
    let path = loc
        .strip_prefix(BASE_URL)
        .unwrap_or_else(|| panic!("{loc} is not under {BASE_URL}"));
    sitemap(daemon, path)
}

fn link(id: &str) -> String {
    format!("{BASE_URL}/articles/{id}")
}

fn locs(urls: &[Url]) -> BTreeSet<String> {
    urls.iter().map(|u| u.loc.clone()).collect()
}

/// A site serving HTTP on a port the system picks, publishing as
/// `PUBLICATION` (the lines before any table belong to `[site]`).
fn site(extra: &str) -> Site {
    Site::new(&format!(
        "publication_name = \"{PUBLICATION}\"\n[watch]\ndebounce_ms = 100\n[server]\nlisten = \"127.0.0.1:0\"\n{extra}"
    ))
}

/// A Markdown article published at `date` (whole seconds).
fn markdown(id: &str, title: &str, date: DateTime<Utc>, extra: &str) -> String {
    format!(
        "---\nid: {id}\ntitle: \"{title}\"\ndate: {}\ncategory: Thời sự\n{extra}---\nNội dung của {title}.\n",
        date.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

fn command(site: &Site, args: &[&str]) {
    let mut full: Vec<&str> = args.to_vec();
    let cfg = site.config();
    full.extend(["--config", cfg.to_str().unwrap()]);
    let out = site.cli(&full);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn date(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

// ---------------------------------------------------------------- tests

/// NR-06, NR-07: the full sitemap lists every public article's page with
/// its `lastmod`; the news sitemap lists those of the last two days with
/// the publication's name and language, the publication date and the
/// title; robots.txt names both. A withheld article is in neither until
/// its embargo ends; a killed one leaves both.
#[test]
fn sitemaps_list_every_public_article_and_the_news_of_two_days() {
    let site = site("");
    let now = whole_seconds(Utc::now());
    let articles = [
        ("moi", "Tin mới nhất & đáng chú ý", now - Span::hours(1)),
        ("hom-qua", "Tin hôm qua", now - Span::hours(47)),
        ("tuan-truoc", "Tin tuần trước", now - Span::hours(49)),
        ("rut", "Tin sẽ bị rút", now - Span::hours(2)),
    ];
    for (id, title, at) in &articles {
        site.write(&format!("{id}.md"), markdown(id, title, *at, ""));
    }
    let until = now + Span::seconds(6);
    site.write(
        "cam.md",
        format!(
            "---\nid: cam\ntitle: \"Tin cấm đăng\"\ncategory: Thời sự\nembargo: {}\n---\nNội dung.\n",
            until.to_rfc3339()
        ),
    );
    let daemon = site.start();

    // The full sitemap: every public article, none withheld.
    let full = sitemap(&daemon, "/sitemap.xml").urls();
    let want: BTreeSet<String> = articles.iter().map(|(id, _, _)| link(id)).collect();
    assert_eq!(locs(&full), want, "public articles only");
    for (id, _, at) in &articles {
        let url = full.iter().find(|u| u.loc == link(id)).unwrap();
        let lastmod = date(url.lastmod.as_deref().expect("every url has a lastmod"));
        assert_eq!(lastmod, *at, "{id}: lastmod is when it last changed");
        assert_eq!(
            lastmod.offset().local_minus_utc(),
            7 * 3600,
            "{id}: in the site's zone"
        );
        assert!(url.news.is_none(), "the full sitemap carries no news");
    }

    // The news sitemap: the last two days only, every field.
    let news = sitemap(&daemon, "/news-sitemap.xml").urls();
    let in_window = ["moi", "rut", "hom-qua"];
    assert_eq!(
        news.iter().map(|u| u.loc.clone()).collect::<Vec<_>>(),
        in_window.map(link),
        "newest first, none older than two days"
    );
    for (id, title, at) in articles.iter().filter(|a| in_window.contains(&a.0)) {
        let url = news.iter().find(|u| u.loc == link(id)).unwrap();
        let n = url.news.as_ref().expect("news:news");
        assert_eq!(n.name, PUBLICATION, "{id}: site.publication_name");
        assert_eq!(n.language, "vi", "{id}");
        assert_eq!(date(&n.publication_date), *at, "{id}");
        assert_eq!(n.title, *title, "{id}: the title, unescaped");
    }

    // robots.txt names both; the files are at the site's root only.
    let (status, content_type, _, body) = get(&daemon, "/robots.txt");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/plain; charset=utf-8")
    );
    let robots = String::from_utf8(body).unwrap();
    let sitemap_lines: Vec<&str> = robots
        .lines()
        .filter_map(|l| l.strip_prefix("Sitemap: "))
        .collect();
    assert_eq!(
        sitemap_lines,
        [
            format!("{BASE_URL}/sitemap.xml"),
            format!("{BASE_URL}/news-sitemap.xml")
        ]
    );
    assert!(robots.contains("User-agent: *"), "{robots}");
    assert_eq!(get(&daemon, "/feeds/sitemap.xml").0, 404);
    assert_eq!(
        get(&daemon, "/sitemaps/sitemap-00001.xml").0,
        404,
        "one page: no files"
    );
    assert_eq!(
        get(&daemon, "/sitemaps/news-0001.xml").0,
        404,
        "under 1,000 news articles: no news files"
    );
    assert!(
        !site.feeds().join("sitemaps").exists(),
        "no files on disk either"
    );
    // The same bytes are published beside the feeds.
    assert_eq!(
        std::fs::read(site.feeds().join("sitemap.xml")).unwrap(),
        get(&daemon, "/sitemap.xml").3
    );

    // A kill: the article leaves both sitemaps.
    command(&site, &["kill", "rut", "--reason", "Sai số liệu"]);
    wait_for("the killed article to leave the sitemaps", WAIT, || {
        let gone = |path| !locs(&sitemap(&daemon, path).urls()).contains(&link("rut"));
        (gone("/sitemap.xml") && gone("/news-sitemap.xml")).then_some(())
    });
    assert!(
        !String::from_utf8(std::fs::read(site.feeds().join("news-sitemap.xml")).unwrap())
            .unwrap()
            .contains("/articles/rut<")
    );

    // The embargo ends: the article is published, and listed in both.
    wait_for("the embargoed article once public", WAIT, || {
        let there = |path| locs(&sitemap(&daemon, path).urls()).contains(&link("cam"));
        (there("/sitemap.xml") && there("/news-sitemap.xml")).then_some(())
    });
    let news = sitemap(&daemon, "/news-sitemap.xml").urls();
    let cam = news.iter().find(|u| u.loc == link("cam")).unwrap();
    assert!(
        date(&cam.news.as_ref().unwrap().publication_date).timestamp() >= until.timestamp(),
        "published when its embargo ended"
    );

    // After a restart nothing comes back.
    assert!(daemon.terminate().success());
    let daemon = site.start();
    let full = locs(&sitemap(&daemon, "/sitemap.xml").urls());
    assert!(
        !full.contains(&link("rut")) && full.contains(&link("cam")),
        "{full:?}"
    );
    assert!(daemon.terminate().success());
}

/// An article leaves the news sitemap when it turns two days old, without
/// any change to wait for (a timer, like an embargo's end); it stays in
/// the full sitemap.
#[test]
fn an_article_leaves_the_news_sitemap_when_it_turns_two_days_old() {
    let site = site("");
    let almost = whole_seconds(Utc::now()) - Span::hours(48) + Span::seconds(5);
    site.write("sap-cu.md", markdown("sap-cu", "Tin sắp cũ", almost, ""));
    let daemon = site.start();
    assert_eq!(
        locs(&sitemap(&daemon, "/news-sitemap.xml").urls()),
        BTreeSet::from([link("sap-cu")])
    );
    wait_for("the article to leave the news sitemap", WAIT, || {
        sitemap(&daemon, "/news-sitemap.xml")
            .urls()
            .is_empty()
            .then_some(())
    });
    assert!(
        Utc::now() >= almost + Span::hours(48),
        "not before its time"
    );
    assert_eq!(
        locs(&sitemap(&daemon, "/sitemap.xml").urls()),
        BTreeSet::from([link("sap-cu")])
    );
    assert!(daemon.terminate().success());
}

/// Past `sitemaps.max_urls` the full sitemap is an index of fixed pages,
/// and a new article rewrites only the last page and a kill only its own
/// page: the others keep their bytes and ETags. Past 1,000 news articles
/// the news sitemap is an index of the same pages' recent articles, one
/// file each, and the same holds there.
#[test]
fn large_sitemaps_are_indexes_of_files_and_changes_touch_one_page() {
    let site = site("[sitemaps]\nmax_urls = 400\n");
    let now = whole_seconds(Utc::now());
    let n = 1_001;
    let id = |i: usize| format!("tin-{i:04}");
    // tin-0000 is the newest; all within the last two days.
    for i in 0..n {
        let at = now - Span::hours(1) - Span::seconds(i as i64);
        site.write(
            &format!("{}.md", id(i)),
            markdown(&id(i), &format!("Tin số {i}"), at, ""),
        );
    }
    let daemon = site.start();

    let all: BTreeSet<String> = (0..n).map(|i| link(&id(i))).collect();

    // The full sitemap: an index of pages of 400 in publication order.
    let pages = sitemap(&daemon, "/sitemap.xml").index();
    let page_locs: Vec<String> = pages.iter().map(|p| p.0.clone()).collect();
    assert_eq!(
        page_locs,
        (1..=3)
            .map(|p| format!("{BASE_URL}/sitemaps/sitemap-{p:05}.xml"))
            .collect::<Vec<_>>()
    );
    let contents: Vec<Vec<Url>> = page_locs
        .iter()
        .map(|loc| listed_file(&daemon, loc).urls())
        .collect();
    assert_eq!(
        contents.iter().map(Vec::len).collect::<Vec<_>>(),
        [400, 400, 201]
    );
    // Within a page, in publication order (tin-0000 is the newest).
    for page in &contents {
        let numbers: Vec<&str> = page.iter().map(|u| &u.loc[u.loc.len() - 4..]).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] > w[1]),
            "oldest first within a page: {numbers:?}"
        );
    }
    let mut full_locs = BTreeSet::new();
    for page in &contents {
        full_locs.extend(locs(page));
    }
    assert_eq!(full_locs, all);

    // The news sitemap (1,001 articles in its window, over 1,000): an
    // index of one file per page of the full sitemap, each that page's
    // recent articles, newest first.
    let files = sitemap(&daemon, "/news-sitemap.xml").index();
    let news_path = |p: usize| format!("/sitemaps/news-{p:04}.xml");
    assert_eq!(
        files.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
        (1..=3)
            .map(|p| format!("{BASE_URL}{}", news_path(p)))
            .collect::<Vec<_>>()
    );
    let news: Vec<Vec<Url>> = files
        .iter()
        .map(|f| listed_file(&daemon, &f.0).urls())
        .collect();
    for (file, page) in news.iter().zip(&contents) {
        assert_eq!(
            locs(file),
            locs(page),
            "a page's news file holds its articles"
        );
        let numbers: Vec<&str> = file.iter().map(|u| &u.loc[u.loc.len() - 4..]).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "newest first within a news file: {numbers:?}"
        );
        assert!(file.iter().all(|u| u.news.is_some()));
    }
    for (loc, lastmod) in &files {
        date(lastmod);
        assert!(!loc.is_empty());
    }
    let news_etags = || -> Vec<String> { (1..=3).map(|p| get(&daemon, &news_path(p)).2).collect() };
    let news_before = news_etags();
    let path = |p: usize| format!("/sitemaps/sitemap-{p:05}.xml");
    let etags = || -> Vec<String> { (1..=3).map(|p| get(&daemon, &path(p)).2).collect() };
    let disk = |p: usize| std::fs::read(site.feeds().join(&path(p)[1..])).unwrap();
    let before = etags();
    let (page1, page2) = (disk(1), disk(2));

    // A new article: only the last page changes.
    site.write("moi-nhat.md", markdown("moi-nhat", "Tin mới nhất", now, ""));
    wait_for("the new article on the last page", WAIT, || {
        locs(&sitemap(&daemon, &path(3)).urls())
            .contains(&link("moi-nhat"))
            .then_some(())
    });
    let after = etags();
    assert_eq!(after[..2], before[..2], "pages 1 and 2 untouched");
    assert_ne!(after[2], before[2]);
    assert_eq!((disk(1), disk(2)), (page1.clone(), page2.clone()));
    let news_after = news_etags();
    assert_eq!(
        news_after[..2],
        news_before[..2],
        "news files 1 and 2 untouched"
    );
    assert_ne!(news_after[2], news_before[2]);
    // HTTP renders a file from the listing: the bytes the pipeline wrote.
    for p in 1..=3 {
        assert_eq!(
            get(&daemon, &news_path(p)).3,
            std::fs::read(site.feeds().join(&news_path(p)[1..])).unwrap()
        );
        assert_eq!(get(&daemon, &path(p)).3, disk(p));
    }

    // A kill on the first page: only that page changes.
    let oldest = contents[0][0].loc.rsplit('/').next().unwrap().to_string();
    command(&site, &["kill", &oldest]);
    wait_for("the killed article to leave page 1", WAIT, || {
        (!locs(&sitemap(&daemon, &path(1)).urls()).contains(&link(&oldest))).then_some(())
    });
    let killed = etags();
    assert_ne!(killed[0], after[0]);
    assert_eq!(killed[1..], after[1..], "pages 2 and 3 untouched");
    assert_eq!(disk(2), page2);
    assert_eq!(sitemap(&daemon, &path(1)).urls().len(), 399);
    // Its news file lost it too.
    let news_now: usize = sitemap(&daemon, "/news-sitemap.xml")
        .index()
        .iter()
        .map(|f| listed_file(&daemon, &f.0).urls().len())
        .sum();
    assert_eq!(news_now, n, "1,001 + the new one − the killed one");

    // Back to 1,000 or fewer: the news sitemap holds them itself, and the
    // files it pointed to are emptied (nothing stale stays on the disk).
    for i in [10, 11] {
        command(&site, &["kill", &id(i)]);
    }
    let single = wait_for(
        "the news sitemap to hold its articles itself",
        WAIT,
        || match sitemap(&daemon, "/news-sitemap.xml") {
            Sitemap::Urls(urls) if urls.len() == n - 2 => Some(urls),
            _ => None,
        },
    );
    assert!(single.iter().all(|u| u.news.is_some()));
    for p in 1..=3 {
        assert_eq!(get(&daemon, &news_path(p)).0, 404, "no news files");
        let on_disk = std::fs::read(site.feeds().join(&news_path(p)[1..])).unwrap();
        assert!(
            parse_sitemap(&on_disk).urls().is_empty(),
            "news file {p} emptied"
        );
    }
    assert!(daemon.terminate().success());
}

/// The listing is made again when its settings change (here the page
/// size), and articles that arrived while sitemaps were off are listed
/// when they come back on.
#[test]
fn changed_settings_and_sitemaps_turned_back_on_list_the_archive_again() {
    let site = Site::new("[sitemaps]\nmax_urls = 1000\n");
    let now = whole_seconds(Utc::now());
    for i in 0..5 {
        site.write(
            &format!("a{i}.md"),
            markdown(
                &format!("a{i}"),
                &format!("Tin {i}"),
                now - Span::minutes(i),
                "",
            ),
        );
    }
    site.build();
    let read = |rel: &str| parse_sitemap(&std::fs::read(site.feeds().join(rel)).unwrap());
    assert_eq!(read("sitemap.xml").urls().len(), 5);

    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("max_urls = 1000", "max_urls = 2"),
    )
    .unwrap();
    site.build();
    let index = read("sitemap.xml").index();
    assert_eq!(index.len(), 3, "5 articles on pages of 2");
    let mut listed = BTreeSet::new();
    for (loc, _) in &index {
        let rel = loc.strip_prefix(&format!("{BASE_URL}/")).unwrap();
        listed.extend(locs(&read(rel).urls()));
    }
    assert_eq!(listed.len(), 5);

    // Off: new articles are not listed (nor published as sitemaps)...
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("[sitemaps]\n", "[sitemaps]\nenabled = false\n"),
    )
    .unwrap();
    site.write("b.md", markdown("b", "Tin khi tắt", now, ""));
    site.build();
    // ...and back on: they are.
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(site.config(), config.replace("enabled = false\n", "")).unwrap();
    site.build();
    let mut listed = BTreeSet::new();
    for (loc, _) in &read("sitemap.xml").index() {
        let rel = loc.strip_prefix(&format!("{BASE_URL}/")).unwrap();
        listed.extend(locs(&read(rel).urls()));
    }
    assert!(listed.contains(&link("b")), "{listed:?}");
    assert_eq!(listed.len(), 6);
    let news: BTreeMap<String, Url> = read("news-sitemap.xml")
        .urls()
        .into_iter()
        .map(|u| (u.loc.clone(), u))
        .collect();
    assert!(news.contains_key(&link("b")));
}

/// A start does not render a large archive's sitemap files again when the
/// last publish completed (the catalog's mark says so): it renders what
/// changed while the daemon was down. When the targets do not hold the
/// last page as the listing renders it (here the feeds' `sitemaps/` was
/// emptied), every file is rendered again.
#[test]
fn a_restart_renders_what_changed_and_repairs_missing_files() {
    let site = site("[sitemaps]\nmax_urls = 2\nnews_max_urls = 2\n");
    let now = whole_seconds(Utc::now());
    let id = |i: usize| format!("tin-{i}");
    for i in 0..5 {
        let at = now - Span::hours(1) - Span::minutes(i as i64);
        site.write(&format!("{}.md", id(i)), markdown(&id(i), "Tin", at, ""));
    }
    let daemon = site.start();
    let file = |rel: &str| site.feeds().join(rel);
    let read = |rel: &str| parse_sitemap(&std::fs::read(file(rel)).unwrap());
    assert_eq!(read("sitemap.xml").index().len(), 3, "pages of 2");
    assert_eq!(read("news-sitemap.xml").index().len(), 3, "news files of 2");
    assert!(daemon.terminate().success());

    // While it is down: an article arrives (on the last page), and the
    // first page's file is damaged; the last page is intact.
    site.write("moi.md", markdown("moi", "Tin mới", now, ""));
    let damaged = b"not the listing".to_vec();
    std::fs::write(file("sitemaps/sitemap-00001.xml"), &damaged).unwrap();
    let daemon = site.start();
    let all: BTreeSet<String> = (0..5)
        .map(id)
        .chain(["moi".to_string()])
        .map(|i| link(&i))
        .collect();
    let listed = || -> BTreeSet<String> {
        (2..=3)
            .flat_map(|p| locs(&read(&format!("sitemaps/sitemap-{p:05}.xml")).urls()))
            .collect()
    };
    assert!(listed().contains(&link("moi")), "the new article's page");
    assert!(
        read("sitemaps/news-0003.xml")
            .urls()
            .iter()
            .any(|u| u.loc == link("moi")),
        "and its news file"
    );
    // Trusted: the damaged page was not rendered again...
    assert_eq!(
        std::fs::read(file("sitemaps/sitemap-00001.xml")).unwrap(),
        damaged
    );
    // ...though HTTP renders it from the listing.
    assert_eq!(
        sitemap(&daemon, "/sitemaps/sitemap-00001.xml").urls().len(),
        2
    );
    assert!(daemon.terminate().success());

    // The files gone: the look-up of the last page fails, and every file
    // is rendered again, the damaged one too.
    std::fs::remove_dir_all(file("sitemaps")).unwrap();
    let daemon = site.start();
    let mut every = listed();
    every.extend(locs(&read("sitemaps/sitemap-00001.xml").urls()));
    assert_eq!(every, all);
    let news: BTreeSet<String> = (1..=3)
        .flat_map(|p| locs(&read(&format!("sitemaps/news-{p:04}.xml")).urls()))
        .collect();
    assert_eq!(news, all);
    assert!(daemon.terminate().success());
}
