//! The newsroom lifecycle end to end (issue 12): embargoes, kills,
//! corrections and reinstatements, from Markdown front matter, wire
//! sidecars and the editors' commands, seen through every output: feeds
//! (parsed back with feed-rs; tombstones read with quick-xml for RFC 6721's
//! names and namespace), pages over HTTP, and loopback partners (one plain,
//! one allowed embargoed copy). The real daemon; generous deadlines.

use crate::common::recorder::*;
use crate::common::*;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const TOMBSTONES_NS: &str = "http://purl.org/atompub/tombstones/1.0";

struct Newsroom {
    site: Site,
    plain: Recorder,
    early: Recorder,
}

/// A site with two partners: `plain` (Atom) and `early` (JSON, allowed
/// embargoed copy).
fn newsroom(extra: &str) -> Newsroom {
    let plain = Recorder::start(|_| (200, Vec::new()));
    let early = Recorder::start(|_| (200, Vec::new()));
    let site = Site::new(&format!(
        "[watch]\ndebounce_ms = 100\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[partners]]\nname = \"plain\"\nurl = \"{}\"\nformat = \"atom\"\nsecret = \"k1\"\n\
         [[partners]]\nname = \"early\"\nurl = \"{}\"\nformat = \"json\"\nsecret = \"k2\"\nembargoed = true\n\
         {extra}",
        plain.url("/in"),
        early.url("/in"),
    ));
    Newsroom { site, plain, early }
}

fn entry_id(id: &str) -> String {
    format!("tag:test.example,2026:articles/{id}")
}

fn titles_in(site: &Site, feed: &str) -> Vec<String> {
    site.try_feed(feed).map(|f| titles(&f)).unwrap_or_default()
}

fn has(site: &Site, title: &str) -> bool {
    ["rss.xml", "atom.xml", "feed.json"]
        .iter()
        .all(|f| titles_in(site, f).iter().any(|t| t == title))
}

fn absent(site: &Site, title: &str) -> bool {
    ["rss.xml", "atom.xml", "feed.json"]
        .iter()
        .all(|f| !titles_in(site, f).iter().any(|t| t == title))
}

fn markdown(title: &str, extra_front_matter: &str) -> String {
    format!(
        "---\ntitle: \"{title}\"\ncategory: Thời sự\n{extra_front_matter}---\nNội dung của {title}.\n"
    )
}

/// Bodies a partner received, as text.
fn bodies(rec: &Recorder) -> Vec<String> {
    rec.at("POST", "/in")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

fn get(daemon: &Daemon, path: &str) -> (u16, String) {
    let r = http_client()
        .get(format!("http://{}{path}", daemon.http_addr()))
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn command(site: &Site, args: &[&str]) -> String {
    let mut full: Vec<&str> = args.to_vec();
    let cfg = site.config();
    full.extend(["--config", cfg.to_str().unwrap()]);
    let out = site.cli(&full);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RFC 6721 tombstones of an Atom document: (ref, when, comment), read
/// with a namespace-aware parser so the element and its namespace are
/// checked, not a prefix spelling.
fn tombstones(atom: &[u8]) -> Vec<(String, String, Option<String>)> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::reader::NsReader::from_reader(atom);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut in_comment = false;
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).unwrap();
        let is_at = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == TOMBSTONES_NS.as_bytes());
        match event {
            Event::Start(e) | Event::Empty(e)
                if is_at && e.local_name().as_ref() == b"deleted-entry" =>
            {
                let attr = |name: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| {
                            quick_xml::escape::unescape(&String::from_utf8_lossy(&a.value))
                                .unwrap()
                                .into_owned()
                        })
                        .unwrap_or_default()
                };
                out.push((attr(b"ref"), attr(b"when"), None));
            }
            Event::Start(e) if is_at && e.local_name().as_ref() == b"comment" => in_comment = true,
            Event::Text(t) if in_comment => {
                if let Some(last) = out.last_mut() {
                    last.2 = Some(t.decode().unwrap().into_owned());
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"comment" => in_comment = false,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

/// Point 2: an embargo in the front matter keeps the article out of every
/// public output and the plain partner's inbox; the partner allowed
/// embargoed copy gets it, marked withheld. At its time (a timer, not a
/// scan) it is published everywhere.
#[test]
fn an_embargo_holds_until_its_time_then_publishes_everywhere() {
    let n = newsroom("");
    let daemon = n.site.start();
    let until = chrono::Utc::now() + chrono::Duration::seconds(5);
    n.site.write(
        "bao-cao.md",
        markdown(
            "Báo cáo cấm đăng trước giờ",
            &format!("id: bao-cao\nembargo: {}\n", until.to_rfc3339()),
        ),
    );
    n.site.write("mo.md", markdown("Tin công khai", "id: mo\n"));
    wait_for("the public article", WAIT, || {
        has(&n.site, "Tin công khai").then_some(())
    });
    wait_for("embargoed copy for the early partner", WAIT, || {
        bodies(&n.early)
            .iter()
            .any(|b| b.contains("Báo cáo cấm đăng") && b.contains("\"withheld\""))
            .then_some(())
    });
    assert!(absent(&n.site, "Báo cáo cấm đăng trước giờ"));
    assert_eq!(
        get(&daemon, "/articles/bao-cao").0,
        404,
        "withheld: no page"
    );
    assert!(
        !bodies(&n.plain)
            .iter()
            .any(|b| b.contains("Báo cáo cấm đăng")),
        "the plain partner never sees embargoed copy"
    );
    let early_copy = bodies(&n.early)
        .into_iter()
        .find(|b| b.contains("Báo cáo cấm đăng"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&early_copy).unwrap();
    let mark = &v["items"][0]["_feedwire"];
    assert_eq!(mark["status"], "withheld", "{early_copy}");
    let marked_until =
        chrono::DateTime::parse_from_rfc3339(mark["embargoed_until"].as_str().unwrap()).unwrap();
    assert_eq!(marked_until.timestamp(), until.timestamp());

    wait_for("published at its time", WAIT, || {
        has(&n.site, "Báo cáo cấm đăng trước giờ").then_some(())
    });
    let late = chrono::Utc::now() - until;
    println!(
        "FIGURE embargo published {} ms after its time",
        late.num_milliseconds()
    );
    assert!(
        late < chrono::Duration::seconds(3),
        "published {late} after its embargo (the timer aims at under a second)"
    );
    let entry = n
        .site
        .feed("atom.xml")
        .entries
        .into_iter()
        .find(|e| e.id == entry_id("bao-cao"))
        .unwrap();
    assert!(
        entry.published.unwrap().timestamp() >= until.timestamp(),
        "published when it became public"
    );
    assert_eq!(get(&daemon, "/articles/bao-cao").0, 200);
    wait_for("the plain partner gets it now", WAIT, || {
        bodies(&n.plain)
            .iter()
            .any(|b| b.contains("Báo cáo cấm đăng") && !b.contains("withheld"))
            .then_some(())
    });
    assert!(daemon.terminate().success());
}

/// Point 2: an embargo that ended while the daemon was down is published at
/// start.
#[test]
fn an_embargo_that_lapsed_while_stopped_is_published_at_start() {
    let n = newsroom("");
    let daemon = n.site.start();
    let until = chrono::Utc::now() + chrono::Duration::seconds(3);
    n.site.write(
        "cho.md",
        markdown("Tin chờ giờ", &format!("embargo: {}\n", until.to_rfc3339())),
    );
    wait_for("stored as withheld", WAIT, || {
        bodies(&n.early)
            .iter()
            .any(|b| b.contains("Tin chờ giờ"))
            .then_some(())
    });
    assert!(daemon.terminate().success());
    assert!(absent(&n.site, "Tin chờ giờ"));
    std::thread::sleep(Duration::from_secs(4));
    let daemon = n.site.start();
    assert!(has(&n.site, "Tin chờ giờ"), "published at start");
    assert!(daemon.terminate().success());
}

/// Point 3: `feedwire kill` with a reason. The article leaves every feed;
/// Atom carries an RFC 6721 tombstone with the reason, JSON Feed the
/// documented extension; its page answers 410 with the reason; partners
/// receive a tombstone with the reason; the command is logged with who and
/// when. A killed id is not published again when its file is saved, until
/// `feedwire reinstate`.
#[test]
fn a_kill_reaches_every_output_and_holds_until_reinstated() {
    let n = newsroom("");
    let daemon = n.site.start();
    let path = n.site.write(
        "sai.txt",
        wire_text("Kinh tế", "Số liệu sai", &["Nội dung."], "PV"),
    );
    wait_for("published", WAIT, || {
        has(&n.site, "Số liệu sai").then_some(())
    });
    wait_for("partner copy", WAIT, || {
        bodies(&n.plain)
            .iter()
            .any(|b| b.contains("Số liệu sai"))
            .then_some(())
    });

    let said = command(
        &n.site,
        &["kill", "sai", "--reason", "Số liệu chưa được kiểm chứng"],
    );
    assert!(said.contains("kill `sai` recorded"), "{said}");
    wait_for("gone from the feeds", WAIT, || {
        absent(&n.site, "Số liệu sai").then_some(())
    });
    let atom = std::fs::read(n.site.feeds().join("atom.xml")).unwrap();
    let stones = tombstones(&atom);
    assert_eq!(stones.len(), 1, "{}", String::from_utf8_lossy(&atom));
    assert_eq!(stones[0].0, entry_id("sai"));
    assert!(chrono::DateTime::parse_from_rfc3339(&stones[0].1).is_ok());
    assert_eq!(stones[0].2.as_deref(), Some("Số liệu chưa được kiểm chứng"));
    // Category feeds it was in carry it too; the feed still parses.
    let category = std::fs::read(n.site.feeds().join("kinh-te/atom.xml")).unwrap();
    assert_eq!(tombstones(&category).len(), 1);
    assert!(parse_feed(&category).entries.is_empty());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(n.site.feeds().join("feed.json")).unwrap()).unwrap();
    let deleted = &json["_feedwire"]["deleted"][0];
    assert_eq!(deleted["id"], entry_id("sai"));
    assert_eq!(deleted["reason"], "Số liệu chưa được kiểm chứng");

    let (status, page) = get(&daemon, "/articles/sai");
    assert_eq!(status, 410);
    assert!(page.contains("Số liệu chưa được kiểm chứng"), "{page}");
    for partner in [&n.plain, &n.early] {
        wait_for("partner tombstone", WAIT, || {
            bodies(partner)
                .iter()
                .any(|b| b.contains("deleted") && b.contains("Số liệu chưa được kiểm chứng"))
                .then_some(())
        });
    }
    let notice = bodies(&n.plain)
        .into_iter()
        .find(|b| b.contains("deleted-entry"))
        .unwrap();
    let stones = tombstones(notice.as_bytes());
    assert_eq!(stones[0].0, entry_id("sai"));
    assert_eq!(stones[0].2.as_deref(), Some("Số liệu chưa được kiểm chứng"));
    assert!(
        daemon
            .log()
            .lines()
            .any(|l| l.contains("editor's command") && l.contains("kill") && l.contains("who=")),
        "{}",
        daemon.log()
    );

    // Saving the file again does not bring it back.
    std::fs::write(
        &path,
        wire_text("Kinh tế", "Số liệu sai (sửa)", &["Nội dung."], "PV"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(absent(&n.site, "Số liệu sai (sửa)"));
    let status = command(&n.site, &["status"]);
    assert!(status.contains("feedwire reinstate sai"), "{status}");

    command(&n.site, &["reinstate", "sai"]);
    wait_for("back after reinstate", WAIT, || {
        has(&n.site, "Số liệu sai (sửa)").then_some(())
    });
    let atom = std::fs::read(n.site.feeds().join("atom.xml")).unwrap();
    assert!(
        tombstones(&atom).is_empty(),
        "the tombstone leaves the feed"
    );
    assert_eq!(get(&daemon, "/articles/sai").0, 200);
    assert!(daemon.terminate().success());
}

/// Point 1: deleting a file is a kill (no reason); renaming it is not.
#[test]
fn deleting_a_file_is_a_kill_and_renaming_it_is_not() {
    let n = newsroom("");
    let daemon = n.site.start();
    let a = n
        .site
        .write("cu.md", markdown("Tin đổi tên", "id: doi-ten\n"));
    wait_for("published", WAIT, || {
        has(&n.site, "Tin đổi tên").then_some(())
    });
    let b = n.site.articles().join("moi.md");
    std::fs::rename(&a, &b).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(has(&n.site, "Tin đổi tên"), "a rename keeps it published");
    let atom = std::fs::read(n.site.feeds().join("atom.xml")).unwrap();
    assert!(tombstones(&atom).is_empty());
    assert!(!bodies(&n.plain).iter().any(|b| b.contains("deleted-entry")));

    std::fs::remove_file(&b).unwrap();
    wait_for("killed", WAIT, || {
        absent(&n.site, "Tin đổi tên").then_some(())
    });
    let atom = std::fs::read(n.site.feeds().join("atom.xml")).unwrap();
    let stones = tombstones(&atom);
    assert_eq!(stones.len(), 1);
    assert_eq!(stones[0].0, entry_id("doi-ten"));
    assert_eq!(stones[0].2, None, "a deletion gives no reason");
    wait_for("partner tombstone", WAIT, || {
        bodies(&n.plain)
            .iter()
            .any(|b| b.contains("deleted-entry") && b.contains("doi-ten"))
            .then_some(())
    });
    assert_eq!(get(&daemon, "/articles/doi-ten").0, 410);
    assert!(daemon.terminate().success());
}

/// Point 4: `feedwire correct` shows the note at the end of the entry and on
/// the page, moves `updated`, and partners get the new version under its
/// own idempotency key.
#[test]
fn a_correction_is_shown_and_delivered_as_a_new_version() {
    let n = newsroom("");
    let daemon = n.site.start();
    n.site.write(
        "dinh-chinh.txt",
        wire_text("Xã hội", "Tin cần đính chính", &["Nội dung."], "PV"),
    );
    wait_for("published", WAIT, || {
        has(&n.site, "Tin cần đính chính").then_some(())
    });
    wait_for("partner copy", WAIT, || {
        (bodies(&n.plain).len() == 1).then_some(())
    });
    let before = n.site.feed("atom.xml").entries[0].clone();
    std::thread::sleep(Duration::from_millis(1100));

    command(
        &n.site,
        &[
            "correct",
            "dinh-chinh",
            "--note",
            "Sửa tên nhân vật ở đoạn hai.",
        ],
    );
    wait_for("the note in the feed", WAIT, || {
        n.site
            .try_feed("atom.xml")
            .and_then(|f| f.entries.into_iter().next())
            .filter(|e| {
                e.content
                    .as_ref()
                    .and_then(|c| c.body.as_deref())
                    .is_some_and(|b| b.contains("Đính chính") && b.contains("Sửa tên nhân vật"))
            })
    });
    let after = n.site.feed("atom.xml").entries[0].clone();
    assert_eq!(after.id, before.id);
    assert_eq!(after.published, before.published);
    assert!(after.updated > before.updated, "updated moves");
    let (_, page) = get(&daemon, "/articles/dinh-chinh");
    assert!(page.contains("Sửa tên nhân vật"), "{page}");
    wait_for("the new version at the partner", WAIT, || {
        (n.plain.at("POST", "/in").len() == 2).then_some(())
    });
    let sent = n.plain.at("POST", "/in");
    assert!(String::from_utf8_lossy(&sent[1].body).contains("Sửa tên nhân vật"));
    assert_ne!(
        sent[0].headers["idempotency-key"], sent[1].headers["idempotency-key"],
        "each version has its own idempotency key"
    );
    assert!(daemon.terminate().success());
}

/// Point 1: a wire file's sidecar carries its embargo, and later its kill
/// with a reason.
#[test]
fn a_sidecar_embargoes_and_kills_a_wire_article() {
    let n = newsroom("");
    let daemon = n.site.start();
    let until = chrono::Utc::now() + chrono::Duration::seconds(4);
    // The sidecar first, so the article is never public before its time.
    n.site.write(
        "tin.meta.toml",
        format!("embargo = \"{}\"\n", until.to_rfc3339()),
    );
    n.site.write(
        "tin.txt",
        wire_text("Thế giới", "Tin có tệp đi kèm", &["Nội dung."], "PV"),
    );
    wait_for("withheld copy for the early partner", WAIT, || {
        bodies(&n.early)
            .iter()
            .any(|b| b.contains("Tin có tệp đi kèm") && b.contains("withheld"))
            .then_some(())
    });
    assert!(absent(&n.site, "Tin có tệp đi kèm"));
    wait_for("published at its time", WAIT, || {
        has(&n.site, "Tin có tệp đi kèm").then_some(())
    });
    n.site.write(
        "tin.meta.toml",
        "status = \"canceled\"\nkill_reason = \"Trùng với bản tin khác\"\n",
    );
    wait_for("killed by its sidecar", WAIT, || {
        absent(&n.site, "Tin có tệp đi kèm").then_some(())
    });
    let stones = tombstones(&std::fs::read(n.site.feeds().join("atom.xml")).unwrap());
    assert_eq!(stones[0].2.as_deref(), Some("Trùng với bản tin khác"));
    assert!(daemon.terminate().success());
}

/// A bad sidecar is a clear rejection naming it; the article's last good
/// version stays published.
#[test]
fn a_bad_sidecar_is_rejected_and_the_article_stays() {
    let n = newsroom("");
    let daemon = n.site.start();
    n.site.write(
        "x.txt",
        wire_text("Thời sự", "Tin giữ nguyên", &["Nội dung."], "PV"),
    );
    wait_for("published", WAIT, || {
        has(&n.site, "Tin giữ nguyên").then_some(())
    });
    let started = Instant::now();
    n.site.write("x.meta.toml", "embarg = \"2030-01-01\"\n");
    wait_for("rejection logged", WAIT, || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("x.txt") && l.contains("unknown key `embarg`"))
            .then_some(())
    });
    assert!(started.elapsed() < WAIT);
    assert!(has(&n.site, "Tin giữ nguyên"), "nobody deleted it");
    assert!(!bodies(&n.plain).iter().any(|b| b.contains("deleted-entry")));
    assert!(daemon.terminate().success());
}
