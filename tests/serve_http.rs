//! The `serve` stage over real HTTP: a real server on an ephemeral port,
//! feeds published by the real pipeline into the in-memory store and
//! `feeds/`, and a real HTTP client. Row ids (HTTP-xx) refer to
//! `protocols.md` §7, the behaviour feed readers rely on.
//!
//! Articles are put into the catalog directly (not parsed from files) so these
//! tests depend only on catalog → render → publish → serve.

use crate::common::parse_feed;
use chrono::{DateTime, Utc};
use feedwire::article::{Article, Encoding, Format};
use feedwire::catalog::{Catalog, FileStamp};
use feedwire::config::Config;
use feedwire::metrics::Metrics;
use feedwire::pipeline::Pipeline;
use feedwire::publish::Store;
use feedwire::serve::{AppState, Limits, router, routes, serve};
use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use unicode_normalization::UnicodeNormalization;

const HEADLINE: &str =
    "Cụm thi đua các thành phố trực thuộc Trung ương thực hiện hiệu quả công tác Mặt trận";
const CATEGORY: &str = "Xây dựng Đảng";
const SLUG: &str = "xay-dung-dang";

const CONFIG: &str = r#"
[site]
title = "Tin tức feedwire"
description = "Tin mới nhất từ phòng biên tập"
base_url = "http://feeds.example.vn"
author = "Phòng biên tập"
tag_authority = "feeds.example.vn,2026"
time_zone = "Asia/Ho_Chi_Minh"

[server]
cache_control = "public, max-age=300"

[websub]
hubs = ["https://hub.example.net/"]
"#;

/// A running server over its own temp dir.
struct Fixture {
    _tmp: tempfile::TempDir,
    cfg: Config,
    pipeline: Pipeline,
    writer: Catalog,
    metrics: Arc<Metrics>,
    addr: String,
    http: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Fixture {
    /// Catalog with three articles (two categories), everything published,
    /// server listening on 127.0.0.1:0.
    fn start() -> Fixture {
        let limits =
            Limits::from_config(&Config::from_toml(CONFIG, "c.toml".as_ref()).unwrap().server);
        Fixture::start_with(limits)
    }

    /// The same, with the connection and request limits given.
    fn start_with(limits: Limits) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let cfg_path = tmp.path().join("config.toml");
        std::fs::write(&cfg_path, CONFIG).unwrap();
        let cfg = Config::from_toml(CONFIG, &cfg_path).unwrap();
        let store = Store::new();
        let pipeline = Pipeline::open(cfg.clone(), Some(store.clone())).unwrap();
        let tz = cfg.time_zone().unwrap();
        let writer = Catalog::open(&cfg.catalog_path(), tz).unwrap();
        let reader = Catalog::open(&cfg.catalog_path(), tz).unwrap();
        let metrics = Arc::new(Metrics::default());
        let state = AppState::new(Arc::new(cfg.clone()), store, metrics.clone(), reader).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The daemon's routes: live documents through the front door's
        // direct path, everything else through the router.
        rt.spawn(serve(listener, routes(state), limits, async move {
            let _ = stopped.await;
        }));
        feedwire::install_tls_provider();
        let http = Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut f = Fixture {
            _tmp: tmp,
            cfg,
            pipeline,
            writer,
            metrics,
            addr,
            http,
            stop: Some(stop),
            rt: Some(rt),
        };
        f.add(&article(
            "000_ee2825b76e43200a",
            HEADLINE,
            &[CATEGORY],
            "2023-08-03T14:05:00+07:00",
        ));
        f.add(&article(
            "urn:uuid:6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
            "Khai mạc Hội nghị Trung ương lần thứ tám",
            &[CATEGORY, "Thời sự"],
            "2023-08-04T09:00:00+07:00",
        ));
        f.add(&article(
            "tin-mới-đà-nẵng",
            "Đà Nẵng đón du khách quốc tế",
            &["Du lịch"],
            "2023-08-02T08:30:00+07:00",
        ));
        f.publish();
        f
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn add(&mut self, a: &Article) {
        let mut batch = self.writer.batch().unwrap();
        let stamp = FileStamp {
            size: a.title.len() as u64,
            mtime_ns: 1,
            inode: 1,
            hash: a.id.clone(),
        };
        batch
            .upsert(&format!("{}.txt", a.id), &stamp, a, Utc::now())
            .unwrap();
        batch.commit().unwrap();
    }

    fn remove(&mut self, id: &str) {
        let mut batch = self.writer.batch().unwrap();
        batch.remove_file(&format!("{id}.txt")).unwrap();
        batch.commit().unwrap();
    }

    fn publish(&mut self) {
        let report = self.pipeline.publish(None).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
    }

    fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().unwrap()
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.http.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap()
    }

    fn text(&self, path: &str) -> (u16, HeaderMap, String) {
        let r = self.get(path);
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().unwrap())
    }

    fn disk(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.cfg.paths.feeds.join(rel)).unwrap()
    }

    fn state_dir(&self) -> PathBuf {
        self.cfg.paths.state.clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn article(id: &str, title: &str, categories: &[&str], published: &str) -> Article {
    Article {
        id: id.into(),
        format: Format::Wire,
        encoding: Encoding::Utf8,
        title: title.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        tags: vec![],
        dateline: Some("Cần Thơ".into()),
        lead: Some(format!("Tóm tắt: {title}.")),
        authors: vec!["Thu Hiền".into()],
        paragraphs: vec!["TTXVN - Chiều 3/8, tại thành phố Cần Thơ.".into()],
        captions: vec![],
        see_more: false,
        content_html: "<p>TTXVN - Chiều 3/8, tại thành phố <em>Cần Thơ</em>.</p>".into(),
        image: None,
        published: Some(DateTime::parse_from_rfc3339(published).unwrap()),
        updated: None,
        front_matter: None,
        language: "vi".into(),
        lifecycle: Default::default(),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

/// One request with raw bytes on the wire, so no client normalises `..`.
fn raw_request(addr: &str, method: &str, target: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
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

fn ungzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Live documents are answered by the front door without the router; a
/// query string sends the same request through the router. Both must give
/// the same status, headers and body, for every kind of request a reader
/// makes (HTTP-02, HTTP-04, HTTP-06, HTTP-07).
#[test]
fn serve_front_door_answers_as_the_router_does() {
    let f = Fixture::start();
    let etag_of = |path: &str, coding: &str| {
        header(
            f.get_with(path, &[("accept-encoding", coding)]).headers(),
            "etag",
        )
        .to_string()
    };
    for doc in [
        "rss.xml",
        "atom.xml",
        "feed.json",
        &format!("{SLUG}/rss.xml"),
    ] {
        let direct = format!("/feeds/{doc}");
        let routed = format!("/feeds/{doc}?via=router");
        let gz_tag = etag_of(&direct, "gzip");
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("GET", vec![]),
            ("GET", vec![("accept-encoding", "gzip")]),
            ("GET", vec![("accept-encoding", "br;q=1, gzip;q=0.5")]),
            (
                "GET",
                vec![("accept-encoding", "gzip"), ("if-none-match", &gz_tag)],
            ),
            ("GET", vec![("if-none-match", &gz_tag)]),
            ("GET", vec![("if-none-match", "W/\"nope\", *")]),
            (
                "GET",
                vec![("if-modified-since", "Sun, 06 Nov 2050 08:49:37 GMT")],
            ),
            ("HEAD", vec![("accept-encoding", "gzip")]),
        ];
        for (method, headers) in cases {
            let send = |path: &str| {
                let mut req = f.http.request(method.parse().unwrap(), f.url(path));
                if !headers.iter().any(|(k, _)| *k == "accept-encoding") {
                    req = req.header("accept-encoding", "identity");
                }
                for (k, v) in &headers {
                    req = req.header(*k, *v);
                }
                let r = req.send().unwrap();
                let status = r.status();
                let mut h = r.headers().clone();
                h.remove("date");
                (status, h, r.bytes().unwrap())
            };
            let (a, b) = (send(&direct), send(&routed));
            assert_eq!(a.0, b.0, "{method} {doc} {headers:?}: status");
            assert_eq!(a.1, b.1, "{method} {doc} {headers:?}: headers");
            assert_eq!(a.2, b.2, "{method} {doc} {headers:?}: body");
        }
    }
}

/// More request headers than the cap (100, hyper's default, which the
/// server relies on) are refused before any handler runs.
#[test]
fn serve_too_many_request_headers_are_refused() {
    let f = Fixture::start();
    let mut s = std::net::TcpStream::connect(&f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = String::from("GET /feeds/rss.xml HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..120 {
        head.push_str(&format!("X-H{i}: 1\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");
    let (status, _) = raw_request(&f.addr, "GET", "/feeds/rss.xml");
    assert_eq!(status, 200, "a normal request is still served");
}

/// HTTP-01: exact Content-Type per format; the served bytes are the file on
/// disk, and parsed field by field they agree.
#[test]
fn serve_http01_content_types_and_documents_match_disk() {
    let f = Fixture::start();
    let cases = [
        ("rss.xml", "application/rss+xml; charset=utf-8"),
        ("atom.xml", "application/atom+xml; charset=utf-8"),
        ("feed.json", "application/feed+json; charset=utf-8"),
        ("index.opml", "text/x-opml; charset=utf-8"),
        (
            "xay-dung-dang/rss.xml",
            "application/rss+xml; charset=utf-8",
        ),
        (
            "xay-dung-dang/atom.xml",
            "application/atom+xml; charset=utf-8",
        ),
        (
            "xay-dung-dang/feed.json",
            "application/feed+json; charset=utf-8",
        ),
    ];
    for (rel, ctype) in cases {
        let r = f.get(&format!("/feeds/{rel}"));
        assert_eq!(r.status(), 200, "{rel}");
        let h = r.headers().clone();
        assert_eq!(header(&h, "content-type"), ctype, "{rel}");
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert_eq!(header(&h, "cache-control"), "public, max-age=300"); // HTTP-08
        assert_eq!(header(&h, "vary"), "Accept-Encoding"); // HTTP-07
        assert!(h.get("date").is_some(), "HTTP-13: Date on every response");
        let body = r.bytes().unwrap();
        assert_eq!(header(&h, "content-length"), body.len().to_string());
        assert_eq!(
            &body[..],
            &f.disk(rel)[..],
            "{rel}: served bytes = file on disk"
        );

        if rel.ends_with("opml") {
            continue;
        }
        let served = parse_feed(&body);
        let on_disk = parse_feed(&f.disk(rel));
        assert_eq!(
            served.title.as_ref().map(|t| &t.content),
            on_disk.title.as_ref().map(|t| &t.content)
        );
        let ids = |feed: &feed_rs::model::Feed| {
            feed.entries
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>()
        };
        let titles = |feed: &feed_rs::model::Feed| {
            feed.entries
                .iter()
                .map(|e| e.title.as_ref().map(|t| t.content.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&served), ids(&on_disk), "{rel}");
        assert_eq!(titles(&served), titles(&on_disk), "{rel}");
        let expected = if rel.starts_with("xay-dung-dang/") {
            2
        } else {
            3
        };
        assert_eq!(served.entries.len(), expected, "{rel}");
        assert!(
            titles(&served).contains(&Some(HEADLINE.to_string())),
            "{rel}: the Vietnamese headline survives HTTP byte for byte"
        );
    }
}

/// HTTP-03 and WebSub discovery: Last-Modified is an IMF-fixdate of when
/// this version was first published (not an entry's date: see
/// `serve_last_modified_never_goes_back_after_a_delete`), never after Date;
/// Link carries rel=self and every advertised hub.
#[test]
fn serve_http03_last_modified_and_link_headers() {
    let f = Fixture::start();
    let r = f.get("/feeds/xay-dung-dang/atom.xml");
    let h = r.headers();
    let lm = httpdate::parse_http_date(header(h, "last-modified")).unwrap();
    let date = httpdate::parse_http_date(header(h, "date")).unwrap();
    assert!(lm <= date, "Last-Modified after Date");
    assert!(
        date.duration_since(lm).unwrap() < Duration::from_secs(300),
        "Last-Modified is when the fixture published, not the newest entry's 2023 date"
    );
    let links: Vec<&str> = h
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        links.contains(&"<http://feeds.example.vn/feeds/xay-dung-dang/atom.xml>; rel=\"self\""),
        "{links:?}"
    );
    assert!(
        links.contains(&"<http://feeds.example.vn/hub>; rel=\"hub\""),
        "{links:?}"
    );
    assert!(
        links.contains(&"<https://hub.example.net/>; rel=\"hub\""),
        "{links:?}"
    );
}

/// HTTP-04 / HTTP-05: If-None-Match (exact, weak, list, `*`) gives 304 with
/// no body and the validators and caching headers; a stale tag gives 200, and
/// a stale INM wins over a fresh IMS.
#[test]
fn serve_http04_if_none_match_gives_304() {
    let f = Fixture::start();
    let first = f.get("/feeds/rss.xml");
    let etag = header(first.headers(), "etag").to_string();
    let last_modified = header(first.headers(), "last-modified").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );

    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".to_string(),
    ] {
        let r = f.get_with("/feeds/rss.xml", &[("if-none-match", &inm)]);
        assert_eq!(r.status(), 304, "If-None-Match: {inm}");
        let h = r.headers().clone();
        assert_eq!(header(&h, "etag"), etag);
        assert_eq!(header(&h, "cache-control"), "public, max-age=300");
        assert_eq!(header(&h, "vary"), "Accept-Encoding");
        assert!(
            h.get("link").is_some(),
            "HTTP-05: 304 keeps the WebSub Link"
        );
        assert!(h.get("date").is_some());
        assert!(
            h.get("content-length").is_none_or(|v| v == "0"),
            "no body on 304"
        );
        assert!(r.bytes().unwrap().is_empty());
    }

    let stale = f.get_with("/feeds/rss.xml", &[("if-none-match", "\"stale\"")]);
    assert_eq!(stale.status(), 200);
    let both = f.get_with(
        "/feeds/rss.xml",
        &[
            ("if-none-match", "\"stale\""),
            ("if-modified-since", &last_modified),
        ],
    );
    assert_eq!(both.status(), 200, "IMS is ignored when INM is present");
}

/// HTTP-04: If-Modified-Since compared as a date; invalid or future dates
/// are ignored.
#[test]
fn serve_http04_if_modified_since_gives_304() {
    let f = Fixture::start();
    // Last-Modified is the publish moment: let a second pass so that one
    // second after it is not a date in the future (which is ignored).
    std::thread::sleep(Duration::from_millis(1100));
    let first = f.get("/feeds/atom.xml");
    let lm = header(first.headers(), "last-modified").to_string();
    let lm_time = httpdate::parse_http_date(&lm).unwrap();
    let later = httpdate::fmt_http_date(lm_time + Duration::from_secs(1));
    let earlier = httpdate::fmt_http_date(lm_time - Duration::from_secs(1));
    let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(86400));

    for (ims, want) in [
        (lm.as_str(), 304),
        (later.as_str(), 304),
        (earlier.as_str(), 200),
        ("not a date", 200),
        (future.as_str(), 200),
    ] {
        let r = f.get_with("/feeds/atom.xml", &[("if-modified-since", ims)]);
        assert_eq!(r.status(), want, "If-Modified-Since: {ims}");
        if want == 304 {
            assert!(r.headers().get("etag").is_some());
            assert!(r.bytes().unwrap().is_empty());
        }
    }
}

/// HTTP-07 / HTTP-02: gzip and br bodies decode to exactly the identity
/// bytes, Content-Length is the encoded size, q=0 is respected, and each
/// coding has its own strong ETag that revalidates.
#[test]
fn serve_http07_gzip_and_brotli_decode_to_identity_bytes() {
    let f = Fixture::start();
    let identity = f.get_with("/feeds/feed.json", &[("accept-encoding", "identity")]);
    assert!(identity.headers().get("content-encoding").is_none());
    let id_etag = header(identity.headers(), "etag").to_string();
    let canonical = identity.bytes().unwrap().to_vec();
    assert_eq!(canonical, f.disk("feed.json"));

    let none = f.get("/feeds/feed.json");
    assert!(none.headers().get("content-encoding").is_none());
    assert_eq!(none.bytes().unwrap().to_vec(), canonical);

    let mut etags = vec![id_etag];
    for (ae, want) in [
        ("gzip", "gzip"),
        ("br,gzip", "br"), // what Miniflux sends
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0, br", "br"),
    ] {
        let r = f.get_with("/feeds/feed.json", &[("accept-encoding", ae)]);
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        assert_eq!(
            header(&h, "content-encoding"),
            want,
            "Accept-Encoding: {ae}"
        );
        assert_eq!(header(&h, "vary"), "Accept-Encoding");
        let body = r.bytes().unwrap().to_vec();
        assert_eq!(header(&h, "content-length"), body.len().to_string());
        let decoded = if want == "gzip" {
            ungzip(&body)
        } else {
            unbrotli(&body)
        };
        assert_eq!(decoded, canonical, "{want} decodes to the identity bytes");
        let etag = header(&h, "etag").to_string();
        // Revalidating the same variant gives 304.
        let again = f.get_with(
            "/feeds/feed.json",
            &[("accept-encoding", ae), ("if-none-match", &etag)],
        );
        assert_eq!(again.status(), 304);
        etags.push(etag);
    }
    let identity_etag = &etags[0];
    let gzip_etag = &etags[1];
    let br_etag = &etags[2];
    assert_ne!(identity_etag, gzip_etag, "HTTP-02: variants differ");
    assert_ne!(identity_etag, br_etag);
    assert_ne!(gzip_etag, br_etag);
}

/// HTTP-06: HEAD has the GET headers and no body.
#[test]
fn serve_http06_head_has_headers_but_no_body() {
    let f = Fixture::start();
    for ae in ["identity", "gzip", "br"] {
        let get = f.get_with("/feeds/rss.xml", &[("accept-encoding", ae)]);
        let get_h = get.headers().clone();
        let get_len = get.bytes().unwrap().len();
        let head = f
            .http
            .head(f.url("/feeds/rss.xml"))
            .header("accept-encoding", ae)
            .send()
            .unwrap();
        assert_eq!(head.status(), 200);
        let head_h = head.headers().clone();
        for name in [
            "content-type",
            "content-length",
            "etag",
            "last-modified",
            "cache-control",
            "vary",
            "x-content-type-options",
        ] {
            assert_eq!(head_h.get(name), get_h.get(name), "{name} ({ae})");
        }
        assert_eq!(
            head_h.get_all("link").iter().collect::<Vec<_>>(),
            get_h.get_all("link").iter().collect::<Vec<_>>()
        );
        assert_eq!(header(&head_h, "content-length"), get_len.to_string());
        assert!(head.bytes().unwrap().is_empty());
    }
    // On the wire, too: nothing after the header block.
    let (status, raw) = raw_request(&f.addr, "HEAD", "/feeds/atom.xml");
    assert_eq!(status, 200);
    assert!(raw.ends_with("\r\n\r\n"), "HEAD sent a body: {raw:?}");
}

/// HTTP-02 / HTTP-12: a new article, once published, changes the served
/// feed and its ETag; the old ETag no longer revalidates.
#[test]
fn serve_http02_publish_changes_served_feed_and_etag() {
    let mut f = Fixture::start();
    let before = f.get("/feeds/xay-dung-dang/rss.xml");
    let old_etag = header(before.headers(), "etag").to_string();
    let old_lm = httpdate::parse_http_date(header(before.headers(), "last-modified")).unwrap();
    assert_eq!(parse_feed(&before.bytes().unwrap()).entries.len(), 2);

    // Publishing again with nothing new keeps the ETag (deterministic output).
    f.publish();
    let same = f.get("/feeds/xay-dung-dang/rss.xml");
    assert_eq!(header(same.headers(), "etag"), old_etag);

    let title = "Đại hội Đảng bộ thành phố Cần Thơ nhiệm kỳ mới";
    f.add(&article(
        "001_new",
        title,
        &[CATEGORY],
        "2023-08-05T10:00:00+07:00",
    ));
    f.publish();
    let after = f.get_with(
        "/feeds/xay-dung-dang/rss.xml",
        &[("if-none-match", &old_etag)],
    );
    assert_eq!(after.status(), 200, "a stale ETag must not hide the update");
    let new_etag = header(after.headers(), "etag").to_string();
    assert_ne!(new_etag, old_etag);
    let new_lm = httpdate::parse_http_date(header(after.headers(), "last-modified")).unwrap();
    assert!(new_lm >= old_lm, "Last-Modified moved backwards");
    let body = after.bytes().unwrap();
    assert_eq!(&body[..], &f.disk("xay-dung-dang/rss.xml")[..]);
    let feed = parse_feed(&body);
    assert_eq!(feed.entries.len(), 3);
    assert_eq!(
        feed.entries[0].title.as_ref().map(|t| t.content.as_str()),
        Some(title)
    );
    // And the pages read the same catalog.
    let (_, _, home) = f.text("/");
    assert!(home.contains(title));
}

/// Only the store's exact keys are served: traversal, raw or encoded, is 404
/// (never 500, never a listing, never the catalog file).
#[test]
fn serve_traversal_and_unknown_paths_are_404() {
    let f = Fixture::start();
    assert!(f.state_dir().join("catalog.sqlite").is_file());
    for target in [
        "/feeds/../state/catalog.sqlite",
        "/feeds/../../etc/passwd",
        "/feeds/%2e%2e/state/catalog.sqlite",
        "/feeds/%2E%2E%2Fstate%2Fcatalog.sqlite",
        "/feeds/..%2fstate/catalog.sqlite",
        "/feeds/..%2Fstate%2Fcatalog.sqlite",
        "/feeds/%252e%252e/state/catalog.sqlite",
        "/feeds/%252e%252e%252fstate%252fcatalog.sqlite",
        "/feeds/./rss.xml/..",
        "/feeds/..%5cstate%5ccatalog.sqlite",
        "/feeds/%c0%ae%c0%ae/state/catalog.sqlite",
        "/feeds/xay-dung-dang/../../state/catalog.sqlite",
        "/feeds/../",
        "/feeds/%2e%2e/",
        "/state/catalog.sqlite",
        "/articles/..%2f..%2fstate%2fcatalog.sqlite",
        "/feeds/nope.xml",
        "/feeds/nope/",
        "/feeds/rss.xml/",
        "/nope",
        "/articles/khong-co",
    ] {
        let (status, raw) = raw_request(&f.addr, "GET", target);
        assert_eq!(status, 404, "{target}");
        assert!(
            !raw.contains("SQLite format"),
            "{target} leaked the catalog"
        );
        assert!(raw.contains("Không tìm thấy trang"), "{target}: 404 page");
    }
}

/// Wrong methods on known routes are 405 with Allow; bodies are bounded.
#[test]
fn serve_wrong_methods_are_405_with_allow() {
    let f = Fixture::start();
    for path in ["/feeds/rss.xml", "/feeds/", "/", "/articles/x", "/healthz"] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let r = f
                .http
                .request(method.clone(), f.url(path))
                .body("x")
                .send()
                .unwrap();
            assert_eq!(r.status(), 405, "{method} {path}");
            let allow = header(r.headers(), "allow").to_string();
            assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
        }
    }
    // A large body is refused without being read in full.
    let big = vec![b'x'; 1 << 20];
    let r = f.http.post(f.url("/feeds/rss.xml")).body(big).send();
    if let Ok(r) = r {
        assert!(r.status().is_client_error());
    }
    // Oversized request headers: 431.
    let huge = "a".repeat(20 * 1024);
    let r = f.get_with("/feeds/rss.xml", &[("x-filler", &huge)]);
    assert_eq!(r.status(), 431);
}

/// `/healthz` is 503 until ready, then 200 "ok"; `/metrics` is Prometheus
/// text and counts requests by route and status.
#[test]
fn serve_healthz_and_metrics_count_requests() {
    let f = Fixture::start();
    let r = f.get("/healthz");
    assert_eq!(r.status(), 503);
    f.metrics.ready.store(true, Ordering::Release);
    let r = f.get("/healthz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "ok");

    let count = |text: &str, route: &str, status: u16| -> u64 {
        let key = format!("feedwire_http_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    let (status, h, before) = f.text("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(count(&before, "healthz", 503), 1);
    assert_eq!(count(&before, "healthz", 200), 1);

    f.get("/feeds/rss.xml");
    f.get("/feeds/rss.xml");
    let etag = header(f.get("/feeds/rss.xml").headers(), "etag").to_string();
    f.get_with("/feeds/rss.xml", &[("if-none-match", &etag)]);
    f.get("/");
    f.get("/feeds/");
    f.get(&format!("/feeds/{SLUG}/"));
    f.get("/articles/000_ee2825b76e43200a");
    f.get("/nowhere");
    f.http.post(f.url("/feeds/rss.xml")).send().unwrap();

    let (_, _, after) = f.text("/metrics");
    assert_eq!(
        count(&after, "feeds", 200),
        count(&before, "feeds", 200) + 3
    );
    assert_eq!(count(&after, "feeds", 304), 1);
    assert_eq!(count(&after, "feeds", 405), 1);
    assert_eq!(count(&after, "home", 200), 1);
    assert_eq!(count(&after, "feed_view", 200), 2);
    assert_eq!(count(&after, "article", 200), 1);
    assert_eq!(count(&after, "not_found", 404), 1);
    assert_eq!(count(&after, "metrics", 200), 1);
}

/// Home, feed views and the article page show the Vietnamese text exactly
/// (NFC) and carry autodiscovery links (JF-15).
#[test]
fn serve_pages_show_vietnamese_text_and_autodiscovery() {
    let f = Fixture::start();
    assert_eq!(
        HEADLINE.nfc().collect::<String>(),
        HEADLINE,
        "fixture is NFC"
    );
    let article_href = "/articles/000_ee2825b76e43200a";

    let (status, h, home) = f.text("/");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    for needle in [
        "<html lang=\"vi\">",
        "<meta charset=\"utf-8\">",
        "name=\"viewport\"",
        HEADLINE,
        "Tin tức feedwire",
        CATEGORY,
        "Thời sự",
        "Du lịch",
        "<link rel=\"alternate\" type=\"application/rss+xml\" href=\"http://feeds.example.vn/feeds/rss.xml\"",
        "<link rel=\"alternate\" type=\"application/atom+xml\" href=\"http://feeds.example.vn/feeds/atom.xml\"",
        "<link rel=\"alternate\" type=\"application/feed+json\" href=\"http://feeds.example.vn/feeds/feed.json\"",
        "href=\"/feeds/xay-dung-dang/\"",
        "href=\"http://feeds.example.vn/feeds/xay-dung-dang/rss.xml\"",
        article_href,
        // Ids that need encoding are linked encoded.
        "/articles/urn:uuid:6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "/articles/tin-m%E1%BB%9Bi-%C4%91%C3%A0-n%E1%BA%B5ng",
        // 2023-08-03T14:05+07:00 shown in Asia/Ho_Chi_Minh.
        "14:05, 03/08/2023",
    ] {
        assert!(home.contains(needle), "home page lacks {needle:?}");
    }

    let (status, _, all) = f.text("/feeds/");
    assert_eq!(status, 200);
    assert!(all.contains(HEADLINE) && all.contains("Đà Nẵng đón du khách quốc tế"));
    assert!(all.contains("<link rel=\"alternate\" type=\"application/rss+xml\""));

    let (status, _, cat) = f.text(&format!("/feeds/{SLUG}/"));
    assert_eq!(status, 200);
    assert!(cat.contains("Tin tức feedwire — Xây dựng Đảng"));
    assert!(cat.contains(HEADLINE));
    assert!(
        !cat.contains("Đà Nẵng đón du khách"),
        "other categories stay out"
    );
    assert!(cat.contains(
        "<link rel=\"alternate\" type=\"application/atom+xml\" href=\"http://feeds.example.vn/feeds/xay-dung-dang/atom.xml\""
    ));

    let (status, _, page) = f.text(article_href);
    assert_eq!(status, 200);
    for needle in [
        &format!("<h1>{HEADLINE}</h1>") as &str,
        "Cần Thơ",
        "Thu Hiền",
        "<p>TTXVN - Chiều 3/8, tại thành phố <em>Cần Thơ</em>.</p>",
        "href=\"/feeds/xay-dung-dang/\"",
        "<link rel=\"alternate\" type=\"application/rss+xml\"",
        "<link rel=\"alternate\" type=\"application/feed+json\" href=\"http://feeds.example.vn/feeds/xay-dung-dang/feed.json\"",
    ] {
        assert!(page.contains(needle), "article page lacks {needle:?}");
    }

    // Percent-encoded ids decode to the catalog id.
    for path in [
        "/articles/urn:uuid:6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "/articles/urn%3Auuid%3A6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "/articles/tin-m%E1%BB%9Bi-%C4%91%C3%A0-n%E1%BA%B5ng",
    ] {
        let (status, _, page) = f.text(path);
        assert_eq!(status, 200, "{path}");
        assert!(page.contains("<h1>"), "{path}");
    }
    let (status, _, page) = f.text("/articles/tin-m%E1%BB%9Bi-%C4%91%C3%A0-n%E1%BA%B5ng");
    assert_eq!(status, 200);
    assert!(page.contains("Đà Nẵng đón du khách quốc tế"));
}

/// Markup in titles and leads is text, not HTML, on every page.
#[test]
fn serve_script_in_a_title_is_escaped() {
    let mut f = Fixture::start();
    let mut a = article(
        "002_xss",
        "<script>alert(1)</script> Tin \"nóng\" & mới",
        &[CATEGORY],
        "2023-08-06T10:00:00+07:00",
    );
    a.lead = Some("<img src=x onerror=alert(2)>".into());
    f.add(&a);
    f.publish();
    for path in ["/", "/feeds/", "/feeds/xay-dung-dang/", "/articles/002_xss"] {
        let (status, _, page) = f.text(path);
        assert_eq!(status, 200, "{path}");
        assert!(!page.contains("<script>"), "{path} has a raw <script>");
        assert!(!page.contains("<img src=x"), "{path} has a raw <img>");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; Tin &quot;nóng&quot; &amp; mới"),
            "{path} shows the title as text"
        );
    }
}

/// The daemon merges its WebSub `/hub` router into ours; both keep working
/// and our fallback still answers unknown paths.
#[test]
fn serve_router_composes_with_a_hub_router() {
    let f = Fixture::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml(CONFIG, &tmp.path().join("config.toml")).unwrap();
    let state = AppState::new(
        Arc::new(cfg.clone()),
        f.pipeline.store().unwrap().clone(),
        Arc::new(Metrics::default()),
        Catalog::open(&f.cfg.catalog_path(), cfg.time_zone().unwrap()).unwrap(),
    )
    .unwrap();
    let app = router(state)
        .merge(axum::Router::new().route("/hub", axum::routing::post(|| async { "hub" })));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        rt.block_on(serve(listener, app, Limits::default(), async move {
            let _ = stopped.await;
        }))
    });
    assert_eq!(raw_request(&addr, "POST", "/hub").0, 200);
    assert_eq!(raw_request(&addr, "GET", "/feeds/rss.xml").0, 200);
    assert_eq!(raw_request(&addr, "GET", "/nope").0, 404);
    stop.send(()).unwrap();
    server
        .join()
        .unwrap()
        .expect("graceful shutdown ends serve() with Ok");
}

/// HTTP-04 (issue 9, point 13): `If-None-Match` is read as a typed header.
/// Only `*` alone or a listed entity tag matches; a value that is neither
/// (it once sufficed to start with `*`) is ignored and the feed is sent.
#[test]
fn serve_http04_unparsable_if_none_match_gives_200() {
    let f = Fixture::start();
    let etag = header(f.get("/feeds/rss.xml").headers(), "etag").to_string();
    for inm in [
        "*garbage",
        "**",
        "*, \"nope\"",
        "W/",
        "abc",
        "\"unterminated",
    ] {
        let r = f.get_with("/feeds/rss.xml", &[("if-none-match", inm)]);
        assert_eq!(r.status(), 200, "If-None-Match: {inm}");
        assert_eq!(r.bytes().unwrap()[..], f.disk("rss.xml")[..]);
    }
    let r = f.get_with("/feeds/rss.xml", &[("if-none-match", "*")]);
    assert_eq!(r.status(), 304);
    let r = f.get_with(
        "/feeds/rss.xml",
        &[("if-none-match", &format!("*garbage, {etag}"))],
    );
    assert_eq!(r.status(), 304, "a valid tag in the list still matches");
}

const PAGES: [&str; 4] = [
    "/",
    "/feeds/",
    "/feeds/xay-dung-dang/",
    "/articles/000_ee2825b76e43200a",
];

/// Issue 9, point 17: HTML pages carry a strong ETag and Last-Modified and
/// revalidate to 304 like feeds, with the caching headers a 200 has.
#[test]
fn serve_http17_pages_have_validators_and_revalidate() {
    let f = Fixture::start();
    for path in PAGES {
        let r = f.get(path);
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        let body = r.bytes().unwrap();
        let etag = header(&h, "etag").to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
            "{path}: strong ETag, got {etag}"
        );
        assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&h, "cache-control"), "public, max-age=300");
        assert_eq!(header(&h, "vary"), "Accept-Encoding");
        assert_eq!(header(&h, "content-length"), body.len().to_string());
        let lm = header(&h, "last-modified").to_string();
        httpdate::parse_http_date(&lm).unwrap_or_else(|_| panic!("{path}: Last-Modified {lm}"));

        // The same bytes again: the same ETag.
        assert_eq!(header(f.get(path).headers(), "etag"), etag, "{path}");

        for (name, value) in [("if-none-match", etag.as_str()), ("if-modified-since", &lm)] {
            let r = f.get_with(path, &[(name, value)]);
            assert_eq!(r.status(), 304, "{path} with {name}: {value}");
            let h = r.headers().clone();
            assert_eq!(header(&h, "etag"), etag);
            assert_eq!(header(&h, "cache-control"), "public, max-age=300");
            assert!(r.bytes().unwrap().is_empty());
        }
        let stale = f.get_with(path, &[("if-none-match", "\"stale\"")]);
        assert_eq!(stale.status(), 200, "{path}");

        let head = f.http.head(f.url(path)).send().unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers().get("etag"), h.get("etag"), "{path}");
        assert_eq!(
            header(head.headers(), "content-length"),
            body.len().to_string()
        );
        assert!(head.bytes().unwrap().is_empty(), "{path}: HEAD has no body");
    }

    // Last-Modified is the newest date a page shows: a feed view's is its
    // feed's, the home page's the site-wide feed's, an article's its own.
    let lm = |path: &str| header(f.get(path).headers(), "last-modified").to_string();
    assert_eq!(lm("/"), lm("/feeds/rss.xml"));
    assert_eq!(lm("/feeds/"), lm("/feeds/rss.xml"));
    assert_eq!(
        lm("/feeds/xay-dung-dang/"),
        lm("/feeds/xay-dung-dang/rss.xml")
    );
    assert_eq!(
        lm("/articles/000_ee2825b76e43200a"),
        "Thu, 03 Aug 2023 07:05:00 GMT"
    );
}

/// Point 17: pages are sent gzip- or brotli-compressed when asked, each
/// coding with its own ETag, decoding to exactly the identity bytes.
#[test]
fn serve_http17_pages_are_compressed_per_coding() {
    let f = Fixture::start();
    for path in PAGES {
        let identity = f.get_with(path, &[("accept-encoding", "identity")]);
        assert!(identity.headers().get("content-encoding").is_none());
        let id_etag = header(identity.headers(), "etag").to_string();
        let canonical = identity.bytes().unwrap().to_vec();
        let mut etags = vec![id_etag];
        for (ae, want) in [("gzip", "gzip"), ("br, gzip", "br")] {
            let r = f.get_with(path, &[("accept-encoding", ae)]);
            assert_eq!(r.status(), 200);
            let h = r.headers().clone();
            assert_eq!(header(&h, "content-encoding"), want, "{path}");
            let body = r.bytes().unwrap().to_vec();
            assert_eq!(header(&h, "content-length"), body.len().to_string());
            assert!(body.len() < canonical.len(), "{path}: {want} is smaller");
            let decoded = if want == "gzip" {
                ungzip(&body)
            } else {
                unbrotli(&body)
            };
            assert_eq!(decoded, canonical, "{path}: {want} decodes to the page");
            let etag = header(&h, "etag").to_string();
            let again = f.get_with(path, &[("accept-encoding", ae), ("if-none-match", &etag)]);
            assert_eq!(again.status(), 304, "{path} {want} revalidates");
            etags.push(etag);
        }
        etags.sort();
        etags.dedup();
        assert_eq!(etags.len(), 3, "{path}: one ETag per coding");
    }
}

/// Point 17: pages are rendered from the catalog, never from a cache that
/// could miss a change: editing an article changes its page and ETag at
/// once, even before any feed is republished.
#[test]
fn serve_http17_page_etag_follows_the_catalog() {
    let mut f = Fixture::start();
    let path = "/articles/000_ee2825b76e43200a";
    let before = f.get_with(path, &[("accept-encoding", "br")]);
    let old_etag = header(before.headers(), "etag").to_string();
    let mut edited = article(
        "000_ee2825b76e43200a",
        "Tiêu đề đã sửa",
        &[CATEGORY],
        "2023-08-03T14:05:00+07:00",
    );
    edited.paragraphs = vec!["TTXVN - Nội dung mới.".into()];
    edited.content_html = "<p>TTXVN - Nội dung mới.</p>".into();
    f.add(&edited);
    let after = f.get_with(
        path,
        &[("accept-encoding", "br"), ("if-none-match", &old_etag)],
    );
    assert_eq!(
        after.status(),
        200,
        "a stale page ETag must not hide the edit"
    );
    assert_ne!(header(after.headers(), "etag"), old_etag);
    let page = String::from_utf8(unbrotli(&after.bytes().unwrap())).unwrap();
    assert!(page.contains("Tiêu đề đã sửa"), "the edited title is shown");
}

/// A TCP connection from a chosen loopback address (blocking, 10 s reads).
fn connect_from(local: &str, addr: &str) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
        let s = socket.connect(addr.parse().unwrap()).await.unwrap();
        s.into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One keep-alive request on an open connection; the status code.
fn exchange(s: &mut std::net::TcpStream, path: &str) -> u16 {
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("connection ended mid-response: {other:?} after {head:?}"),
        }
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Does the server end this connection (EOF or reset) within `limit`?
/// Any answer it writes first (a 429 or 503) is returned too.
fn ended_within(s: &mut std::net::TcpStream, limit: Duration) -> Option<String> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(String::from_utf8_lossy(&got).into()),
        }
    }
}

/// The server on a router of our own (merged onto feedwire's, as the daemon
/// does with `/hub`), stopped through the returned sender.
fn serve_app(
    f: &Fixture,
    extra: axum::Router,
    limits: Limits,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Receiver<anyhow::Result<()>>,
) {
    let state = AppState::new(
        Arc::new(f.cfg.clone()),
        f.pipeline.store().unwrap().clone(),
        Arc::new(Metrics::default()),
        Catalog::open(&f.cfg.catalog_path(), f.cfg.time_zone().unwrap()).unwrap(),
    )
    .unwrap();
    let app = router(state).merge(extra);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = rt.block_on(serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        let _ = done_tx.send(result);
    });
    (addr, stop, done)
}

/// Every request carries `ConnectInfo<SocketAddr>` (the hub's per-client
/// rate limit reads it), on merged routes too.
#[test]
fn serve_connect_info_reaches_every_handler() {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let f = Fixture::start();
    let peer = axum::Router::new().route(
        "/peer",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            peer.ip().to_string()
        }),
    );
    let (addr, stop, _done) = serve_app(&f, peer, Limits::default());
    let mut s = connect_from("127.0.0.3", &addr);
    write!(
        s,
        "GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("127.0.0.3"), "{answer}");
    stop.send(()).unwrap();
}

/// Issue 9, point 6, the mechanism: connections are capped per client
/// address and overall; a refused connection is answered (429 / 503) and
/// closed at once, and a closed connection gives its slot back.
#[test]
fn serve_caps_connections_per_client_and_overall() {
    let f = Fixture::start_with(Limits {
        max_connections: 4,
        max_connections_per_client: 2,
        ..Limits::default()
    });
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.5", &f.addr);
        assert_eq!(exchange(&mut s, "/feeds/rss.xml"), 200);
        held.push(s);
    }
    let mut third = connect_from("127.0.0.5", &f.addr);
    let answer = ended_within(&mut third, Duration::from_secs(5))
        .expect("a third connection from one address is refused at once");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 429"),
        "{answer}"
    );

    for _ in 0..2 {
        let mut s = connect_from("127.0.0.6", &f.addr);
        assert_eq!(
            exchange(&mut s, "/feeds/rss.xml"),
            200,
            "another address is served"
        );
        held.push(s);
    }
    let mut fifth = connect_from("127.0.0.7", &f.addr);
    let answer = ended_within(&mut fifth, Duration::from_secs(5))
        .expect("over the overall cap a connection is refused at once");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );

    drop(held.remove(0));
    wait_for_served(&f.addr, "127.0.0.7");
}

fn wait_for_served(addr: &str, from: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect_from(from, addr);
        if write!(
            s,
            "GET /feeds/rss.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .is_ok()
        {
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a freed connection slot was never given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Point 6, what hyper's header timer covers: it runs from the moment the
/// server waits for a request head, for the first request and for every
/// later one on a keep-alive connection. So an active connection lives on,
/// an idle one is closed, and a slow second request is cut off too.
#[test]
fn serve_header_timeout_covers_idle_and_later_keep_alive_requests() {
    let f = Fixture::start_with(Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    });
    // Busy for 3 s, one request every 300 ms: never cut off.
    let mut busy = connect_from("127.0.0.8", &f.addr);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(exchange(&mut busy, "/feeds/rss.xml"), 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Then idle: closed.
    assert!(
        ended_within(&mut busy, Duration::from_secs(10)).is_some(),
        "an idle keep-alive connection stayed open"
    );

    // A fast first request, then a second one whose head trickles in.
    let mut slow = connect_from("127.0.0.8", &f.addr);
    assert_eq!(exchange(&mut slow, "/feeds/rss.xml"), 200);
    slow.write_all(b"GET /feeds/rss.xml HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let dripping = std::time::Instant::now();
    let mut cut_off = false;
    while dripping.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(b"X-Slow: a\r\n").is_err() {
            cut_off = true;
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(_) => {
                cut_off = true;
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "a second request's slow head was never cut off");
}

/// Graceful shutdown: a request in flight is answered, idle and slow
/// connections do not hold the server up, and serve() returns Ok.
#[test]
fn serve_graceful_shutdown_finishes_in_flight_requests() {
    let f = Fixture::start();
    let slow_route = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        }),
    );
    let (addr, stop, done) = serve_app(&f, slow_route, Limits::default());
    let _idle = connect_from("127.0.0.9", &addr);
    let mut dripping = connect_from("127.0.0.9", &addr);
    dripping
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut s = connect_from("127.0.0.10", &addr);
            write!(s, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    stop.send(()).unwrap();
    let answer = in_flight.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("done"), "{answer:?}");
    done.recv_timeout(Duration::from_secs(15))
        .expect("serve() did not return after shutdown with slow clients connected")
        .expect("serve() ends Ok");
}

/// Issue 9 point 2: deleting the newest article makes the feed's newest
/// entry older, but its Last-Modified must not go back: a client sending only
/// If-Modified-Since with the date it saw must get the changed feed.
#[test]
fn serve_last_modified_never_goes_back_after_a_delete() {
    let mut f = Fixture::start();
    let path = "/feeds/xay-dung-dang/atom.xml";
    let before = f.get(path);
    let lm_before = header(before.headers(), "last-modified").to_string();
    let etag_before = header(before.headers(), "etag").to_string();
    // The next version is published at least a second later.
    std::thread::sleep(Duration::from_millis(1100));
    f.remove("urn:uuid:6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b");
    f.publish();
    let after = f.get_with(path, &[("if-modified-since", &lm_before)]);
    assert_eq!(
        after.status(),
        200,
        "the feed changed: If-Modified-Since {lm_before} must not get 304"
    );
    assert_ne!(header(after.headers(), "etag"), etag_before);
    let parse = |s: &str| httpdate::parse_http_date(s).unwrap();
    let lm_after = header(after.headers(), "last-modified").to_string();
    assert!(
        parse(&lm_after) > parse(&lm_before),
        "Last-Modified {lm_after} is not later than {lm_before}"
    );
    // And a client holding the new date revalidates.
    let again = f.get_with(path, &[("if-modified-since", &lm_after)]);
    assert_eq!(again.status(), 304);
}
