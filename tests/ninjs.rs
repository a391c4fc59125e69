//! IPTC ninjs 3.1 for every article (issue 13, point 1), end to end with
//! the real daemon: the document in the feeds folder, `/ninjs/{id}.json`
//! over HTTP (validators, 304, gzip), and signed pushes to loopback
//! partners with `format = "ninjs"`. Every document is checked against the
//! IPTC's JSON Schema (tests/fixtures/ninjs/) and field by field against
//! the article it came from; withheld and killed articles in each output.

use crate::common::ninjs::{assert_valid, parse_item};
use crate::common::recorder::*;
use crate::common::*;
use hmac::{KeyInit, Mac};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn entry_id(id: &str) -> String {
    format!("tag:test.example,2026:articles/{id}")
}

struct Agency {
    site: Site,
    /// `format = "ninjs"`, plain.
    plain: Recorder,
    /// `format = "ninjs"`, allowed embargoed copy.
    early: Recorder,
}

fn agency() -> Agency {
    let plain = Recorder::start(|_| (200, Vec::new()));
    let early = Recorder::start(|_| (200, Vec::new()));
    let site = Site::new(&format!(
        "[watch]\ndebounce_ms = 100\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[partners]]\nname = \"plain\"\nurl = \"{}\"\nformat = \"ninjs\"\nsecret = \"k-plain\"\n\
         [[partners]]\nname = \"early\"\nurl = \"{}\"\nformat = \"ninjs\"\nsecret = \"k-early\"\nembargoed = true\n",
        plain.url("/in"),
        early.url("/in"),
    ));
    Agency { site, plain, early }
}

/// GET over HTTP: status, headers (lower-case names), body bytes.
fn get(
    daemon: &Daemon,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    let mut req = http_client().get(format!("http://{}{path}", daemon.http_addr()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let h = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, h, r.bytes().unwrap().to_vec())
}

/// Pushes a partner received about an article (by its ninjs `uri`), each
/// checked: signed with the partner's secret over "<timestamp>.<body>",
/// JSON, and valid ninjs.
fn pushes(rec: &Recorder, secret: &str, id: &str) -> Vec<serde_json::Value> {
    rec.at("POST", "/in")
        .into_iter()
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            (v["uri"] == entry_id(id)).then_some((r, v))
        })
        .map(|(r, v)| {
            let ts = &r.headers["x-feedwire-timestamp"];
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(&r.body);
            let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(
                r.headers["x-feedwire-signature"], want,
                "signed like every push"
            );
            assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
            assert_valid(&v);
            v
        })
        .collect()
}

fn markdown_article() -> String {
    "---\nid: bong-da\ntitle: \"Đội tuyển thắng\"\ndate: 2026-03-01T08:00:00+07:00\n\
     author: Nguyễn Văn C\ncategory: Thể thao\ntags: [bóng đá]\n\
     summary: Tóm tắt trận đấu.\nimage: https://img.example/tran-dau.jpg\n---\n\
     Nội dung **trận đấu** hôm nay.\n"
        .to_string()
}

/// Point 1: what ninjs holds, property by property, for a wire article
/// (dateline, byline, lead, first-seen date) and a Markdown one (its own
/// date, image, tags); the same bytes in the feeds folder and over HTTP,
/// with ETag/304 and gzip; pushed, signed, to `format = "ninjs"` partners.
#[test]
fn every_article_has_a_ninjs_document_on_disk_over_http_and_pushed() {
    let a = agency();
    a.site.write(
        "dien.txt",
        wire_text(
            "Kinh tế",
            "Giá điện tăng",
            &["Đoạn một của bài.", "Đoạn hai."],
            "Lê Văn A - Trần Thị B",
        ),
    );
    a.site.write("bong-da.md", markdown_article());
    let daemon = a.site.start();

    let (status, headers, body) = get(&daemon, "/ninjs/dien.json", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    let v = parse_item(&body);
    assert_eq!(v["uri"], entry_id("dien"));
    assert_eq!(v["type"], "text");
    assert_eq!(v["version"], "1");
    assert_eq!(v["pubStatus"], "usable");
    assert_eq!(v["language"], "vi");
    assert_eq!(v["headlines"][0]["value"], "Giá điện tăng");
    assert_eq!(
        v["descriptions"][0]["value"], "Bản tin ngắn về Giá điện tăng.",
        "the lead"
    );
    assert_eq!(v["bodies"][0]["contentType"], "text/html");
    let html = v["bodies"][0]["value"].as_str().unwrap();
    assert!(
        html.contains("<p>TTXVN - Đoạn một của bài.</p>"),
        "sanitised HTML as the feeds carry it: {html}"
    );
    assert_eq!(v["by"], "Lê Văn A, Trần Thị B");
    assert_eq!(v["located"], "Hà Nội", "the dateline");
    assert_eq!(v["subjects"][0]["name"], "Kinh tế");
    assert_eq!(
        v["subjects"][0]["literal"], "kinh-te",
        "the category's slug"
    );
    assert!(v.get("embargoedUntil").is_none());
    assert!(
        v.get("contentCreated").is_none(),
        "a wire file gives no date of its own: {v}"
    );
    // firstCreated is the first-seen time, which is also when a wire
    // article was published: the feeds' date for it.
    let atom = a.site.feed("atom.xml");
    let feed_entry = atom
        .entries
        .iter()
        .find(|e| e.id == entry_id("dien"))
        .unwrap();
    let first = chrono::DateTime::parse_from_rfc3339(v["firstCreated"].as_str().unwrap()).unwrap();
    assert_eq!(first, feed_entry.published.unwrap());
    let version_created =
        chrono::DateTime::parse_from_rfc3339(v["versionCreated"].as_str().unwrap()).unwrap();
    assert_eq!(version_created, feed_entry.updated.unwrap());
    assert!(
        v["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "web" && r["href"] == format!("{BASE_URL}/articles/dien")),
        "{v}"
    );

    // The same bytes in the feeds folder.
    let on_disk = std::fs::read(a.site.feeds().join("ninjs/dien.json")).unwrap();
    assert_eq!(on_disk, body);

    // Validators and compression like every other document.
    let etag = headers["etag"].clone();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    let (status, _, body304) = get(&daemon, "/ninjs/dien.json", &[("if-none-match", &etag)]);
    assert_eq!(status, 304);
    assert!(body304.is_empty());
    let (status, gz_headers, gz) = get(&daemon, "/ninjs/dien.json", &[("accept-encoding", "gzip")]);
    assert_eq!(status, 200);
    assert_eq!(gz_headers["content-encoding"], "gzip");
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, body);

    // The Markdown article: its own date, image, author, tags.
    let (status, _, body) = get(&daemon, "/ninjs/bong-da.json", &[]);
    assert_eq!(status, 200);
    let v = parse_item(&body);
    assert_eq!(v["contentCreated"], "2026-03-01T08:00:00+07:00");
    assert_ne!(
        v["firstCreated"], v["contentCreated"],
        "first seen ≠ written"
    );
    assert_eq!(v["by"], "Nguyễn Văn C");
    assert!(v.get("located").is_none(), "no dateline in Markdown");
    assert_eq!(v["descriptions"][0]["value"], "Tóm tắt trận đấu.");
    assert!(
        v["bodies"][0]["value"]
            .as_str()
            .unwrap()
            .contains("<strong>trận đấu</strong>")
    );
    let renditions = v["renditions"].as_array().unwrap();
    let image = renditions.iter().find(|r| r["name"] == "image").unwrap();
    assert_eq!(image["href"], "https://img.example/tran-dau.jpg");
    assert_eq!(image["contentType"], "image/jpeg");
    let subjects = v["subjects"].as_array().unwrap();
    assert!(
        subjects.iter().any(|s| s["name"] == "Thể thao"
            && s["literal"] == "the-thao"
            && s["rel"] == "category")
    );
    assert!(
        subjects
            .iter()
            .any(|s| s["name"] == "bóng đá" && s["rel"] == "tag")
    );

    // Pushed to both ninjs partners, signed; the same document.
    for (rec, secret) in [(&a.plain, "k-plain"), (&a.early, "k-early")] {
        let got = wait_for("the ninjs push", WAIT, || {
            let p = pushes(rec, secret, "bong-da");
            (!p.is_empty()).then_some(p)
        });
        assert_eq!(got[0], v);
    }

    // An edit is a new version: rewritten on disk, served, pushed.
    a.site.write(
        "bong-da.md",
        markdown_article().replace("hôm nay", "hôm qua"),
    );
    let v2 = wait_for("version 2 served", WAIT, || {
        let (status, _, body) = get(&daemon, "/ninjs/bong-da.json", &[]);
        let v = parse_item(&body);
        (status == 200 && v["version"] == "2").then_some(v)
    });
    assert!(
        v2["bodies"][0]["value"]
            .as_str()
            .unwrap()
            .contains("hôm qua")
    );
    assert!(v2["versionCreated"].as_str() > v["versionCreated"].as_str());
    assert_eq!(
        v2["firstCreated"], v["firstCreated"],
        "first seen never moves"
    );
    wait_for("version 2 on disk", WAIT, || {
        let disk = std::fs::read(a.site.feeds().join("ninjs/bong-da.json")).ok()?;
        (parse_item(&disk)["version"] == "2").then_some(())
    });
    wait_for("version 2 pushed", WAIT, || {
        pushes(&a.plain, "k-plain", "bong-da")
            .iter()
            .any(|p| p["version"] == "2")
            .then_some(())
    });
    assert!(daemon.terminate().success());
}

/// Point 1, the lifecycle in each ninjs output: a withheld (embargoed)
/// article has no document on disk and none over HTTP (404), is pushed
/// marked `pubStatus: withheld` with `embargoedUntil` to the partner
/// allowed embargoed copy only, and appears everywhere at its time. A
/// killed one is replaced by a `pubStatus: canceled` document (on disk,
/// over HTTP with 410, pushed) carrying the reason as `edNote`. An article
/// put back under embargo loses its document.
#[test]
fn withheld_and_killed_articles_in_every_ninjs_output() {
    let a = agency();
    let daemon = a.site.start();
    let until = chrono::Utc::now() + chrono::Duration::seconds(6);
    a.site.write(
        "cam.md",
        format!(
            "---\nid: cam\ntitle: \"Tin cấm đăng\"\ncategory: Thời sự\nembargo: {}\n---\nNội dung chờ.\n",
            until.to_rfc3339()
        ),
    );
    a.site.write(
        "sai.txt",
        wire_text("Kinh tế", "Số liệu sai", &["Nội dung."], "PV"),
    );
    wait_for("the public article's document", WAIT, || {
        a.site.feeds().join("ninjs/sai.json").exists().then_some(())
    });

    // Withheld: only the early partner hears of it, marked.
    let early = wait_for("embargoed copy for the early partner", WAIT, || {
        pushes(&a.early, "k-early", "cam").into_iter().next()
    });
    assert_eq!(early["pubStatus"], "withheld");
    let marked =
        chrono::DateTime::parse_from_rfc3339(early["embargoedUntil"].as_str().unwrap()).unwrap();
    assert_eq!(marked.timestamp(), until.timestamp());
    assert_eq!(early["headlines"][0]["value"], "Tin cấm đăng");
    assert!(pushes(&a.plain, "k-plain", "cam").is_empty());
    assert!(!a.site.feeds().join("ninjs/cam.json").exists());
    assert_eq!(get(&daemon, "/ninjs/cam.json", &[]).0, 404);
    assert_eq!(
        get(&daemon, "/ninjs/cam.json", &[]).2,
        get(&daemon, "/ninjs/khong-co.json", &[]).2,
        "withheld looks exactly like unknown"
    );

    // At its time: public everywhere, usable.
    let v = wait_for("published at its time", WAIT, || {
        let (status, _, body) = get(&daemon, "/ninjs/cam.json", &[]);
        (status == 200).then(|| parse_item(&body))
    });
    assert_eq!(v["pubStatus"], "usable");
    assert!(v.get("embargoedUntil").is_none());
    // Served from the catalog as soon as it commits; written to the feeds
    // folder by the publish that follows.
    wait_for("the document written", WAIT, || {
        a.site.feeds().join("ninjs/cam.json").exists().then_some(())
    });
    wait_for("the plain partner gets it now", WAIT, || {
        pushes(&a.plain, "k-plain", "cam")
            .iter()
            .any(|p| p["pubStatus"] == "usable")
            .then_some(())
    });

    // Killed with a reason: canceled everywhere.
    let cfg = a.site.config();
    let out = a.site.cli(&[
        "kill",
        "sai",
        "--reason",
        "Số liệu chưa được kiểm chứng",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, headers, body) = wait_for("410 for the killed article", WAIT, || {
        let r = get(&daemon, "/ninjs/sai.json", &[]);
        (r.0 == 410).then_some(r)
    });
    assert_eq!(status, 410);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    let canceled = parse_item(&body);
    assert_eq!(canceled["uri"], entry_id("sai"));
    assert_eq!(canceled["pubStatus"], "canceled");
    assert_eq!(canceled["edNote"], "Số liệu chưa được kiểm chứng");
    assert!(canceled.get("bodies").is_none() && canceled.get("headlines").is_none());
    let disk = wait_for("the canceled document on disk", WAIT, || {
        let disk = std::fs::read(a.site.feeds().join("ninjs/sai.json")).ok()?;
        let v = parse_item(&disk);
        (v["pubStatus"] == "canceled").then_some(v)
    });
    assert_eq!(disk, canceled);
    for (rec, secret) in [(&a.plain, "k-plain"), (&a.early, "k-early")] {
        wait_for("the canceled push", WAIT, || {
            pushes(rec, secret, "sai")
                .iter()
                .any(|p| {
                    p["pubStatus"] == "canceled" && p["edNote"] == "Số liệu chưa được kiểm chứng"
                })
                .then_some(())
        });
    }

    // Put back under embargo: its public document goes.
    let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let out = a
        .site
        .cli(&["embargo", "cam", &later, "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the document removed", WAIT, || {
        (!a.site.feeds().join("ninjs/cam.json").exists()).then_some(())
    });
    assert_eq!(get(&daemon, "/ninjs/cam.json", &[]).0, 404);
    assert!(daemon.terminate().success());
}

/// A restart repairs nothing that was not broken: the documents written
/// before it stay byte-identical, and the daemon does not rewrite them.
#[test]
fn documents_survive_a_restart_unchanged() {
    let a = agency();
    a.site.write("bong-da.md", markdown_article());
    a.site.build();
    let path = a.site.feeds().join("ninjs/bong-da.json");
    let before = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let daemon = a.site.start();
    let (status, _, body) = get(&daemon, "/ninjs/bong-da.json", &[]);
    assert_eq!(status, 200);
    assert_eq!(body, before);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert!(daemon.terminate().success());
}

/// The validator the tests rely on is strict: an unknown property (ninjs
/// 1.x's `byline`, the issue's `bylines`), a malformed date and a status
/// outside the three are refused; so a document passing it holds only
/// what the schema defines, each by its rules.
#[test]
fn the_schema_check_refuses_what_ninjs_does_not_define() {
    let good = serde_json::json!({"uri": "tag:test.example,2026:articles/a", "type": "text", "pubStatus": "usable"});
    assert_valid(&good);
    for bad in [
        serde_json::json!({"uri": "tag:test.example,2026:articles/a", "bylines": [{"value": "x"}]}),
        serde_json::json!({"uri": "tag:test.example,2026:articles/a", "byline": "x"}),
        serde_json::json!({"uri": "tag:test.example,2026:articles/a", "versionCreated": "yesterday"}),
        serde_json::json!({"uri": "tag:test.example,2026:articles/a", "pubStatus": "killed"}),
        serde_json::json!({"uri": "not a uri"}),
    ] {
        let refused = std::panic::catch_unwind(|| assert_valid(&bad));
        assert!(refused.is_err(), "the schema must refuse {bad}");
    }
}
