//! Partners who pull (issue 13, point 4), with the real daemon over HTTP:
//! `/partners/{name}/{atom.xml,rss.xml,feed.json,ninjs.json}` behind
//! `Authorization: Bearer <pull_token>`: one 401 for every refusal, the
//! partner's categories only, full text, withheld copy (marked) only for a
//! partner allowed it, kills as tombstones and canceled items, private
//! caching with ETag/304, per-partner counts in `/metrics`, and never a
//! link from anything public. Feeds parsed back with feed-rs, ninjs items
//! checked against the IPTC schema.

use crate::common::ninjs::parse_list;
use crate::common::*;
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const SPORT_TOKEN: &str = "sport-0123456789abcdef-token";
const DESK_TOKEN: &str = "desk-fedcba9876543210-token";

fn entry_id(id: &str) -> String {
    format!("tag:test.example,2026:articles/{id}")
}

/// `sport` pulls Thể thao only and is not allowed embargoed copy; `desk`
/// pulls everything, embargoed copy included; `pushy` only takes pushes.
fn site() -> Site {
    Site::new(&format!(
        "[watch]\ndebounce_ms = 100\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[partners]]\nname = \"sport\"\ncategories = [\"the-thao\"]\npull_token = \"{SPORT_TOKEN}\"\n\
         [[partners]]\nname = \"desk\"\npull_token = \"{DESK_TOKEN}\"\nembargoed = true\n\
         [[partners]]\nname = \"pushy\"\nurl = \"http://127.0.0.1:9/in\"\nsecret = \"k\"\n"
    ))
}

fn markdown(id: &str, title: &str, category: &str, extra: &str) -> String {
    format!(
        "---\nid: {id}\ntitle: \"{title}\"\ncategory: {category}\n{extra}---\nToàn văn của {title}: đoạn đầy đủ.\n"
    )
}

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn get(daemon: &Daemon, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = http_client().get(format!("http://{}{path}", daemon.http_addr()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str() != "date")
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: r.bytes().unwrap().to_vec(),
    }
}

fn pull(daemon: &Daemon, partner: &str, file: &str, token: &str) -> Answer {
    get(
        daemon,
        &format!("/partners/{partner}/{file}"),
        &[("authorization", &format!("Bearer {token}"))],
    )
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// Point 4: the token opens its own partner's feeds and nothing else; every
/// refusal (no token, a wrong one, another partner's, a partner that does
/// not pull, a name that is no partner's) is the same 401, to the byte.
#[test]
fn pull_feeds_need_the_partner_s_own_token_and_refuse_alike() {
    let site = site();
    site.write(
        "tran-dau.md",
        markdown("tran-dau", "Trận đấu", "Thể thao", ""),
    );
    let daemon = site.start();
    assert_eq!(pull(&daemon, "sport", "atom.xml", SPORT_TOKEN).status, 200);
    let refusals = [
        get(&daemon, "/partners/sport/atom.xml", &[]),
        pull(&daemon, "sport", "atom.xml", "sport-0123456789abcdef-tokeN"),
        pull(&daemon, "sport", "atom.xml", DESK_TOKEN),
        get(
            &daemon,
            "/partners/sport/atom.xml",
            &[("authorization", &format!("Basic {SPORT_TOKEN}"))],
        ),
        pull(&daemon, "pushy", "atom.xml", SPORT_TOKEN),
        pull(&daemon, "nobody", "atom.xml", SPORT_TOKEN),
        pull(&daemon, "nobody", "no-such-file", ""),
        pull(&daemon, "desk", "ninjs.json", SPORT_TOKEN),
    ];
    let first = &refusals[0];
    assert_eq!(first.status, 401);
    assert_eq!(
        first.headers["www-authenticate"],
        "Bearer realm=\"feedwire partners\""
    );
    assert_eq!(first.headers["cache-control"], "no-store");
    for (i, r) in refusals.iter().enumerate() {
        assert_eq!(r.status, 401, "refusal {i}: {}", text(r));
        assert_eq!(r.headers, first.headers, "refusal {i}: the same headers");
        assert_eq!(r.body, first.body, "refusal {i}: the same body");
        assert!(!text(r).contains("Trận đấu"));
    }
    // Once admitted, an unknown file is an ordinary 404.
    assert_eq!(
        pull(&daemon, "sport", "index.opml", SPORT_TOKEN).status,
        404
    );
    assert!(daemon.terminate().success());
}

/// Point 4: each format carries the partner's categories only, full text,
/// newest first, bounded by feeds.max_items; the partner allowed embargoed
/// copy also gets withheld articles, marked, and the other does not. A
/// kill shows as a tombstone (Atom) and a canceled item (ninjs). Answers
/// are private, with a strong ETag and 304 on a match.
#[test]
fn pull_feeds_carry_the_partner_s_categories_with_withheld_copy_only_when_allowed() {
    let site = site();
    site.write(
        "tran-dau.md",
        markdown("tran-dau", "Trận đấu", "Thể thao", ""),
    );
    site.write(
        "gia-vang.md",
        markdown("gia-vang", "Giá vàng", "Kinh tế", ""),
    );
    let until = chrono::Utc::now() + chrono::Duration::days(1);
    site.write(
        "chung-ket.md",
        markdown(
            "chung-ket",
            "Chung kết chờ giờ",
            "Thể thao",
            &format!("embargo: {}\n", until.to_rfc3339()),
        ),
    );
    let daemon = site.start();

    // sport: Thể thao only, nothing withheld, every format parses back.
    for file in ["atom.xml", "rss.xml", "feed.json"] {
        let a = pull(&daemon, "sport", file, SPORT_TOKEN);
        assert_eq!(a.status, 200, "{file}: {}", text(&a));
        let feed = parse_feed(&a.body);
        assert_eq!(titles(&feed), ["Trận đấu"], "{file}");
        assert_eq!(ids(&feed), [entry_id("tran-dau")], "{file}");
        assert!(
            text(&a).contains("Toàn văn của Trận đấu: đoạn đầy đủ."),
            "{file}: full text"
        );
        assert!(!text(&a).contains("withheld"), "{file}");
        assert!(
            !text(&a).contains("/hub"),
            "{file}: no hub in a private feed"
        );
        assert!(
            text(&a).contains(&format!("{BASE_URL}/partners/sport/{file}")),
            "{file}: its own self link"
        );
        assert!(a.headers["cache-control"].contains("private"), "{file}");
        assert!(!a.headers.contains_key("last-modified"), "{file}");
    }
    let sport_ninjs = parse_list(&pull(&daemon, "sport", "ninjs.json", SPORT_TOKEN).body);
    assert_eq!(sport_ninjs.len(), 1);
    assert_eq!(sport_ninjs[0]["uri"], entry_id("tran-dau"));
    assert_eq!(sport_ninjs[0]["pubStatus"], "usable");

    // desk: everything, the withheld article marked in every format.
    let atom = pull(&daemon, "desk", "atom.xml", DESK_TOKEN);
    let feed = parse_feed(&atom.body);
    let mut got = titles(&feed);
    got.sort();
    assert_eq!(got, ["Chung kết chờ giờ", "Giá vàng", "Trận đấu"]);
    assert!(
        text(&atom).contains("<fw:status") && text(&atom).contains(">withheld</fw:status>"),
        "marked withheld: {}",
        text(&atom)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&pull(&daemon, "desk", "feed.json", DESK_TOKEN).body).unwrap();
    let withheld = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == entry_id("chung-ket"))
        .unwrap();
    assert_eq!(withheld["_feedwire"]["status"], "withheld");
    let items = parse_list(&pull(&daemon, "desk", "ninjs.json", DESK_TOKEN).body);
    assert_eq!(items.len(), 3);
    let item = items
        .iter()
        .find(|i| i["uri"] == entry_id("chung-ket"))
        .unwrap();
    assert_eq!(item["pubStatus"], "withheld");
    let marked =
        chrono::DateTime::parse_from_rfc3339(item["embargoedUntil"].as_str().unwrap()).unwrap();
    assert_eq!(marked.timestamp(), until.timestamp());
    assert!(
        items
            .iter()
            .filter(|i| i["uri"] != entry_id("chung-ket"))
            .all(|i| i["pubStatus"] == "usable")
    );

    // Strong ETag, 304 on a match (any coding), a new tag when it changes.
    let first = pull(&daemon, "sport", "atom.xml", SPORT_TOKEN);
    let etag = first.headers["etag"].clone();
    assert!(etag.starts_with('"'), "strong: {etag}");
    let again = get(
        &daemon,
        "/partners/sport/atom.xml",
        &[
            ("authorization", &format!("Bearer {SPORT_TOKEN}")),
            ("if-none-match", &etag),
        ],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert!(again.headers["cache-control"].contains("private"));
    // Without the token, even a matching ETag gets the 401.
    let sneaky = get(
        &daemon,
        "/partners/sport/atom.xml",
        &[("if-none-match", &etag)],
    );
    assert_eq!(sneaky.status, 401);

    // A kill: a tombstone for sport's Atom, a canceled ninjs item.
    let cfg = site.config();
    let out = site.cli(&[
        "kill",
        "tran-dau",
        "--reason",
        "Sai tỉ số",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let atom = wait_for("the kill in sport's feed", WAIT, || {
        let a = pull(&daemon, "sport", "atom.xml", SPORT_TOKEN);
        titles(&parse_feed(&a.body)).is_empty().then_some(a)
    });
    assert_ne!(atom.headers["etag"], etag, "a changed feed has a new tag");
    assert!(
        text(&atom).contains("deleted-entry") && text(&atom).contains("Sai tỉ số"),
        "{}",
        text(&atom)
    );
    let items = parse_list(&pull(&daemon, "sport", "ninjs.json", SPORT_TOKEN).body);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["pubStatus"], "canceled");
    assert_eq!(items[0]["uri"], entry_id("tran-dau"));
    assert_eq!(items[0]["edNote"], "Sai tỉ số");
    assert!(daemon.terminate().success());
}

/// Point 4: a pull feed holds the newest `feeds.max_items` of the
/// partner's categories, however many there are.
#[test]
fn pull_feeds_are_bounded_by_max_items() {
    let site = Site::new(&format!(
        "[feeds]\nmax_items = 3\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[partners]]\nname = \"desk\"\npull_token = \"{DESK_TOKEN}\"\nembargoed = true\n"
    ));
    for i in 0..8 {
        site.write(
            &format!("a{i}.md"),
            markdown(
                &format!("a{i}"),
                &format!("Bài {i}"),
                if i % 2 == 0 {
                    "Thể thao"
                } else {
                    "Kinh tế"
                },
                &format!("date: 2026-01-0{}T08:00:00+07:00\n", i + 1),
            ),
        );
    }
    let daemon = site.start();
    let feed = parse_feed(&pull(&daemon, "desk", "atom.xml", DESK_TOKEN).body);
    assert_eq!(titles(&feed), ["Bài 7", "Bài 6", "Bài 5"], "newest first");
    assert_eq!(
        parse_list(&pull(&daemon, "desk", "ninjs.json", DESK_TOKEN).body).len(),
        3
    );
    assert!(daemon.terminate().success());
}

/// Point 4: `/metrics` counts each partner's requests by result (only
/// configured partners: a stranger's made-up names share one series), and no
/// public page, OPML, published file or feed mentions the pull feeds.
#[test]
fn pull_feeds_are_counted_per_partner_and_never_linked_publicly() {
    let site = site();
    site.write(
        "tran-dau.md",
        markdown("tran-dau", "Trận đấu", "Thể thao", ""),
    );
    let daemon = site.start();
    for _ in 0..3 {
        assert_eq!(pull(&daemon, "sport", "rss.xml", SPORT_TOKEN).status, 200);
    }
    assert_eq!(
        pull(&daemon, "sport", "rss.xml", "wrong-token-0123456789").status,
        401
    );
    assert_eq!(pull(&daemon, "desk", "feed.json", DESK_TOKEN).status, 200);
    assert_eq!(
        pull(&daemon, "ghost-partner", "rss.xml", DESK_TOKEN).status,
        401
    );
    let metrics = text(&get(&daemon, "/metrics", &[]));
    for line in [
        "feedwire_partner_pull_requests_total{partner=\"sport\",result=\"ok\"} 3",
        "feedwire_partner_pull_requests_total{partner=\"sport\",result=\"unauthorized\"} 1",
        "feedwire_partner_pull_requests_total{partner=\"desk\",result=\"ok\"} 1",
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    assert!(!metrics.contains("ghost-partner"), "{metrics}");
    assert!(
        metrics.contains(
            "feedwire_partner_pull_requests_total{partner=\"(unknown)\",result=\"unauthorized\"} 1"
        ),
        "made-up names share one series: {metrics}"
    );

    for path in [
        "/",
        "/feeds/",
        "/feeds/the-thao/",
        "/feeds/index.opml",
        "/feeds/rss.xml",
        "/feeds/atom.xml",
        "/feeds/feed.json",
        "/articles/tran-dau",
        "/ninjs/tran-dau.json",
        "/sitemap.xml",
        "/robots.txt",
    ] {
        let a = get(&daemon, path, &[]);
        assert!(
            !text(&a).contains("/partners/") && !text(&a).contains(SPORT_TOKEN),
            "{path} mentions the pull feeds:\n{}",
            text(&a)
        );
    }
    // Nothing of them is published.
    let mut published = Vec::new();
    let mut dirs = vec![site.feeds()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                published.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    assert!(!published.is_empty());
    assert!(!site.feeds().join("partners").exists());
    assert!(published.iter().all(|doc| !doc.contains("/partners/")));
    assert!(daemon.terminate().success());
}

/// `pull_token` is checked at start: a short token, or a pulling partner
/// whose name cannot be a URL segment, is refused with the key named.
#[test]
fn pull_tokens_are_checked_at_start() {
    for (partner, says) in [
        (
            "name = \"p\"\npull_token = \"short\"\n",
            "partners `p`.pull_token must be at least 16 bytes",
        ),
        (
            "name = \"a b\"\npull_token = \"0123456789abcdef0\"\n",
            "partners `a b`.name",
        ),
        (
            "name = \"p\"\npull_token = \"env:FEEDWIRE_TEST_UNSET_PULL_TOKEN\"\n",
            "partners `p`.pull_token",
        ),
        (
            "name = \"p\"\n",
            "give it a `url` to push to, a `pull_token`",
        ),
    ] {
        let site = Site::new(&format!("[[partners]]\n{partner}"));
        let out = site.cli(&["build", "--config", site.config().to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{partner}");
        assert!(err.contains(says), "{partner}: {err}");
    }
}
