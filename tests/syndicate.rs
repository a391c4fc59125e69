//! Syndication end to end: the real daemon on loopback, with small real HTTP
//! servers standing in for WebSub subscribers, an external hub and partner
//! portals. Row ids (WS-*) refer to /work/shared/reference/protocols.md §4.
//! Outcomes are awaited by polling with generous deadlines.

use crate::common::recorder::*;
use crate::common::*;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

/// A site whose daemon serves HTTP on a port the system picks (the daemon
/// logs it; see `Daemon::http_addr`). Topic URLs start with the configured
/// `site.base_url`, `BASE_URL`, wherever the daemon listens.
fn site(extra: &str) -> Site {
    Site::new(&format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{extra}\n"))
}

fn post_hub(daemon: &Daemon, params: &[(&str, &str)]) -> (u16, String) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let resp = http_client()
        .post(format!("http://{}/hub", daemon.http_addr()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().unwrap())
}

fn subscribe(
    daemon: &Daemon,
    topic: &str,
    callback: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut p = vec![
        ("hub.mode", "subscribe"),
        ("hub.topic", topic),
        ("hub.callback", callback),
    ];
    p.extend_from_slice(extra);
    post_hub(daemon, &p)
}

fn status(site: &Site) -> String {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Active subscriptions according to `feedwire status`.
fn active_subscriptions(site: &Site) -> Option<usize> {
    let s = status(site);
    let line = s.lines().find(|l| l.contains("active subscription"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "active")?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

fn article(site: &Site, file: &str, category: &str, title: &str) {
    site.write(
        file,
        wire_text(
            category,
            title,
            &[
                "Nội dung bài viết thử nghiệm cho phân phối.",
                "Đoạn thứ hai.",
            ],
            "Phóng viên",
        ),
    );
}

fn has_title(body: &[u8], title: &str) -> bool {
    titles(&parse_feed(body)).iter().any(|t| t == title)
}

// ---------------------------------------------------------------- tests

/// websub.rocks hub cases 100–104 (WS-H01..H08, H11..H14) plus bad requests
/// (WS-H01 oversized secret, WS-H03 4xx with a reason, foreign topic) and a
/// wrong challenge echo (WS-H06).
#[test]
fn hub_websub_rocks_cases_and_distribution() {
    let rec = Recorder::start(|r| {
        if r.path == "/cb/wrong" && r.method == "GET" {
            return (200, b"not-the-challenge".to_vec());
        }
        echo(r)
    });
    let site = site("[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\n");
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");

    // 100: typical subscriber request.
    let (code, _) = subscribe(&daemon, &topic, &rec.url("/cb/plain"), &[]);
    assert_eq!(code, 202);
    let v = wait_for("verification GET (100)", LONG, || {
        rec.at("GET", "/cb/plain").into_iter().next()
    });
    assert_eq!(v.query["hub.mode"], "subscribe");
    assert_eq!(v.query["hub.topic"], topic);
    assert!(v.query["hub.challenge"].len() >= 32, "WS-H05 challenge");
    assert_eq!(v.query["hub.lease_seconds"], "864000", "default lease");

    // 101: with a secret.
    let secret = "s3cr3t-twenty-chars!";
    assert_eq!(
        subscribe(
            &daemon,
            &topic,
            &rec.url("/cb/secret"),
            &[("hub.secret", secret)]
        )
        .0,
        202
    );
    // 102: extra parameters are ignored (WS-H02).
    assert_eq!(
        subscribe(
            &daemon,
            &topic,
            &rec.url("/cb/extra"),
            &[("foo", "bar"), ("hub.foo", "hub.bar")]
        )
        .0,
        202
    );
    // 103: re-subscribe updates the one subscription (WS-H07).
    wait_for("first verification done", LONG, || {
        (active_subscriptions(&site)? >= 1).then_some(())
    });
    assert_eq!(
        subscribe(&daemon, &topic, &rec.url("/cb/plain"), &[]).0,
        202
    );
    wait_for("second verification GET (103)", LONG, || {
        (rec.at("GET", "/cb/plain").len() >= 2).then_some(())
    });
    let challenges: Vec<String> = rec
        .at("GET", "/cb/plain")
        .iter()
        .map(|r| r.query["hub.challenge"].clone())
        .collect();
    assert_ne!(challenges[0], challenges[1], "WS-H05 single-use challenge");
    // Wrong echo: never active (WS-H06).
    assert_eq!(
        subscribe(&daemon, &topic, &rec.url("/cb/wrong"), &[]).0,
        202
    );
    // 104: unsubscribe.
    assert_eq!(
        subscribe(&daemon, &topic, &rec.url("/cb/unsub"), &[]).0,
        202
    );
    wait_for("plain, secret, extra, unsub active", LONG, || {
        (active_subscriptions(&site)? == 4).then_some(())
    });
    assert!(rec.at("GET", "/cb/wrong").len() == 1);
    let (code, _) = post_hub(
        &daemon,
        &[
            ("hub.mode", "unsubscribe"),
            ("hub.topic", &topic),
            ("hub.callback", &rec.url("/cb/unsub")),
        ],
    );
    assert_eq!(code, 202);
    wait_for("unsubscribe verified (104)", LONG, || {
        (active_subscriptions(&site)? == 3).then_some(())
    });
    let unsub_get = rec
        .at("GET", "/cb/unsub")
        .into_iter()
        .find(|r| r.query.get("hub.mode").map(String::as_str) == Some("unsubscribe"))
        .expect("unsubscribe verification GET");
    assert_eq!(unsub_get.query["hub.topic"], topic);

    // Bad requests: 4xx with a reason.
    let long_secret = "x".repeat(200);
    let (code, why) = subscribe(
        &daemon,
        &topic,
        &rec.url("/cb/long"),
        &[("hub.secret", &long_secret)],
    );
    assert_eq!(code, 400, "WS-H01: a 200-byte secret is refused");
    assert!(why.contains("hub.secret"), "{why}");
    let (code, why) = subscribe(
        &daemon,
        "http://elsewhere.example/feed.xml",
        &rec.url("/cb/foreign"),
        &[],
    );
    assert_eq!(code, 400, "foreign topic refused");
    assert!(why.contains("hub.topic"), "{why}");
    let (code, _) = post_hub(&daemon, &[("hub.mode", "subscribe"), ("hub.topic", &topic)]);
    assert_eq!(code, 400, "WS-H03: missing callback");
    let (code, _) = subscribe(&daemon, &topic, "ftp://127.0.0.1/x", &[]);
    assert_eq!(code, 400, "callback must be http(s)");
    let (code, _) = post_hub(&daemon, &[("hub.mode", "bogus"), ("hub.topic", &topic)]);
    assert_eq!(code, 400);

    // Content distribution (WS-H11..H14).
    article(&site, "tin-moi.txt", "Thể thao", "Bản tin phân phối WebSub");
    let title = "Bản tin phân phối WebSub";
    for cb in ["/cb/plain", "/cb/secret", "/cb/extra"] {
        wait_for(&format!("delivery to {cb}"), LONG, || {
            rec.at("POST", cb)
                .into_iter()
                .find(|r| has_title(&r.body, title))
        });
    }
    let plain = rec.at("POST", "/cb/plain").pop().unwrap();
    assert_eq!(
        plain.headers["content-type"], "application/atom+xml; charset=utf-8",
        "WS-H12"
    );
    let link = &plain.headers["link"];
    assert!(
        link.contains(&format!("<{BASE_URL}/hub>; rel=\"hub\"")),
        "WS-H13 {link}"
    );
    assert!(
        link.contains(&format!("<{topic}>; rel=\"self\"")),
        "WS-H13 {link}"
    );
    assert!(
        !plain.headers.contains_key("x-hub-signature"),
        "100: no signature without a secret (WS-H14)"
    );
    assert_eq!(
        plain.body,
        std::fs::read(site.feeds().join("atom.xml")).unwrap(),
        "WS-H11: the full topic document"
    );
    let signed = rec.at("POST", "/cb/secret").pop().unwrap();
    assert_eq!(
        signed.headers["x-hub-signature"],
        format!("sha256={}", hmac_hex(secret.as_bytes(), &signed.body)),
        "101: valid X-Hub-Signature (WS-H14)"
    );
    // Give stray deliveries a chance to show up before counting them.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rec.at("POST", "/cb/plain").len(),
        1,
        "103: one subscription, one delivery"
    );
    assert!(
        rec.at("POST", "/cb/unsub").is_empty(),
        "104: no delivery after unsubscribe"
    );
    assert!(
        rec.at("POST", "/cb/wrong").is_empty(),
        "WS-H06: wrong echo never active"
    );
    assert!(rec.at("GET", "/cb/long").is_empty() && rec.at("GET", "/cb/foreign").is_empty());
    daemon.terminate();

    // Subscriptions survive a restart.
    let daemon = site.start();
    assert_eq!(active_subscriptions(&site), Some(3));
    drop(daemon);
}

/// WS-H09 lease expiry and WS-H15 410 Gone.
#[test]
fn lease_expiry_and_gone_end_subscriptions() {
    let rec = Recorder::start(|r| {
        if r.path == "/cb/gone" && r.method == "POST" {
            return (410, Vec::new());
        }
        echo(r)
    });
    let site = site(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\nlease_min_secs = 1\nlease_max_secs = 3600\n",
    );
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/rss.xml");
    assert_eq!(
        subscribe(
            &daemon,
            &topic,
            &rec.url("/cb/short"),
            &[("hub.lease_seconds", "1")]
        )
        .0,
        202
    );
    assert_eq!(
        subscribe(
            &daemon,
            &topic,
            &rec.url("/cb/gone"),
            &[("hub.lease_seconds", "999999")]
        )
        .0,
        202
    );
    let v = wait_for("verification of /cb/gone", LONG, || {
        rec.at("GET", "/cb/gone").into_iter().next()
    });
    assert_eq!(
        v.query["hub.lease_seconds"], "3600",
        "WS-H09: clamped to lease_max_secs"
    );
    assert_eq!(
        rec.at("GET", "/cb/short")[0].query["hub.lease_seconds"],
        "1"
    );
    wait_for("short lease expired, long one active", LONG, || {
        (active_subscriptions(&site)? == 1).then_some(())
    });
    article(&site, "a.txt", "Kinh tế", "Bài sau khi hết hạn");
    wait_for("delivery to /cb/gone answered 410", LONG, || {
        rec.at("POST", "/cb/gone").into_iter().next()
    });
    wait_for("410 ended the subscription", LONG, || {
        (active_subscriptions(&site)? == 0).then_some(())
    });
    assert!(
        rec.at("POST", "/cb/short").is_empty(),
        "expired lease gets nothing"
    );
    article(&site, "b.txt", "Kinh tế", "Bài thứ hai");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rec.at("POST", "/cb/gone").len(), 1, "no delivery after 410");
}

/// A callback host outside `allowed_callback_hosts` (empty = public only) is
/// refused and never contacted.
#[test]
fn loopback_callback_refused_when_not_allowed() {
    let rec = Recorder::start(echo);
    let site = site("[websub]\nallowed_callback_hosts = []\n");
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let (code, why) = subscribe(&daemon, &topic, &rec.url("/cb"), &[]);
    assert_eq!(code, 403, "{why}");
    assert!(why.contains("not allowed"), "{why}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(rec.all().is_empty(), "a refused host is never contacted");
}

/// Verification edge cases: a callback URL with its own query string gets it
/// back intact beside the hub's parameters; a callback answering 302 or 500
/// (even with the right challenge) is not subscribed; a subscription over the
/// per-topic limit gets the `hub.mode=denied` GET with a reason (WS-H10).
#[test]
fn verification_keeps_callback_queries_refuses_non_2xx_and_denies_over_limit() {
    let rec = Recorder::start(|r| match r.query.get("hub.challenge") {
        Some(c) if r.path == "/redirect" => (302, c.clone().into_bytes()),
        Some(c) if r.path == "/error" => (500, c.clone().into_bytes()),
        Some(c) => (200, c.clone().into_bytes()),
        None => (200, Vec::new()),
    });
    let site = site(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\nmax_subscriptions_per_topic = 2\n",
    );
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");

    let with_query = rec.url("/cb?subscriber=42&lang=vi");
    assert_eq!(subscribe(&daemon, &topic, &with_query, &[]).0, 202);
    let get = wait_for("verification GET with the callback's query", LONG, || {
        rec.at("GET", "/cb").into_iter().next()
    });
    assert_eq!(get.query["subscriber"], "42");
    assert_eq!(get.query["lang"], "vi");
    assert_eq!(get.query["hub.mode"], "subscribe");
    wait_for("first subscription active", LONG, || {
        (active_subscriptions(&site)? == 1).then_some(())
    });

    for path in ["/redirect", "/error"] {
        assert_eq!(subscribe(&daemon, &topic, &rec.url(path), &[]).0, 202);
        wait_for("verification attempted", LONG, || {
            rec.at("GET", path).into_iter().next()
        });
    }

    // Fill the topic to its limit, then one more.
    assert_eq!(subscribe(&daemon, &topic, &rec.url("/second"), &[]).0, 202);
    wait_for("second subscription active", LONG, || {
        (active_subscriptions(&site)? == 2).then_some(())
    });
    assert_eq!(subscribe(&daemon, &topic, &rec.url("/third"), &[]).0, 202);
    let denied = wait_for("denied GET to the third callback", LONG, || {
        rec.at("GET", "/third").into_iter().next()
    });
    assert_eq!(denied.query["hub.mode"], "denied");
    assert_eq!(denied.query["hub.topic"], topic);
    assert!(
        denied.query["hub.reason"].contains("too many"),
        "{denied:?}"
    );
    assert!(!denied.query.contains_key("hub.challenge"));
    // The 302 and 500 answers never became subscriptions.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(active_subscriptions(&site), Some(2));
    // Re-subscribing an existing callback at the limit is a renewal, not denied.
    assert_eq!(subscribe(&daemon, &topic, &with_query, &[]).0, 202);
    wait_for("renewal verified", LONG, || {
        (rec.at("GET", "/cb").len() >= 2).then_some(())
    });
    assert!(
        rec.at("GET", "/cb")
            .iter()
            .all(|r| r.query["hub.mode"] == "subscribe")
    );
}

/// PING-01/PING-03: a legacy `weblogUpdates.ping` carries the site name and
/// URL as XML-RPC strings; an answer with `flerror` true is a failure and is
/// retried.
#[test]
fn legacy_xmlrpc_ping_is_well_formed_and_retried_on_flerror() {
    const FAULT: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
        <member><name>flerror</name><value><boolean>1</boolean></value></member>\
        <member><name>message</name><value><string>busy</string></value></member>\
        </struct></value></param></params></methodResponse>";
    const OK: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
        <member><name>flerror</name><value><boolean>0</boolean></value></member>\
        <member><name>message</name><value><string>Thanks for the ping.</string></value></member>\
        </struct></value></param></params></methodResponse>";
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    let rec = Recorder::start(move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        (200, if n == 0 { FAULT } else { OK }.as_bytes().to_vec())
    });
    let site = site(&format!(
        "[websub]\nping_servers = [\"{}\"]\n\n[delivery]\nretry_base_ms = 50\nretry_max_ms = 200\n",
        rec.url("/RPC2")
    ));
    let _daemon = site.start();
    article(&site, "p.txt", "Xã hội", "Tin cho máy ping");
    let pings = wait_for("a ping after the flerror answer", LONG, || {
        let p = rec.at("POST", "/RPC2");
        (p.len() >= 2).then_some(p)
    });
    for ping in &pings {
        assert!(ping.headers["content-type"].starts_with("text/xml"));
        let (method, strings) = xmlrpc_call(&ping.body);
        assert_eq!(method, "weblogUpdates.ping");
        assert_eq!(strings, vec!["Tin thử".to_string(), BASE_URL.to_string()]);
    }
    wait_for("ping row delivered", LONG, || {
        status(&site)
            .contains("legacy pings 0 pending")
            .then_some(())
    });
}

/// The method name and `<string>` parameters of an XML-RPC call, read with a
/// real XML parser (so a malformed body fails here).
fn xmlrpc_call(body: &[u8]) -> (String, Vec<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut method, mut strings, mut open) = (String::new(), Vec::new(), String::new());
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .expect("well-formed XML-RPC")
        {
            Event::Start(e) => open = String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            Event::Text(t) => {
                let text = t.xml10_content().unwrap().into_owned();
                match open.as_str() {
                    "methodName" => method = text,
                    "string" => strings.push(text),
                    _ => {}
                }
            }
            Event::End(_) => open.clear(),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    (method, strings)
}

/// WS-P03/P04: external hubs get `hub.mode=publish` with the topic in
/// `hub.url` and `hub.topic`; partners get signed single-entry documents and
/// deletion notices.
#[test]
fn external_hub_ping_and_partner_documents() {
    let rec = Recorder::start(echo);
    let site = site(&format!(
        r#"[websub]
hubs = ["{hub}"]
allowed_callback_hosts = ["127.0.0.1"]

[[partners]]
name = "atom-all"
url = "{pa}"
format = "atom"
secret = "env:FEEDWIRE_TEST_SECRET"
headers = {{ Authorization = "Bearer tok" }}

[[partners]]
name = "json-sport"
url = "{pj}"
format = "json"
categories = ["the-thao"]
secret = "json-secret"

[[partners]]
name = "rss-economy"
url = "{pr}"
format = "rss"
categories = ["kinh-te"]
secret = "rss-secret"
"#,
        hub = rec.url("/hub"),
        pa = rec.url("/p/atom"),
        pj = rec.url("/p/json"),
        pr = rec.url("/p/rss"),
    ));
    // The secret comes from the environment (env:NAME), inherited by the daemon.
    // SAFETY: set once, before the daemon starts; no other test reads it.
    unsafe { std::env::set_var("FEEDWIRE_TEST_SECRET", "atom-secret-from-env") };
    let child_env_site = site;
    let daemon = child_env_site.start();
    let title = "Đội tuyển thắng trận mở màn";
    article(&child_env_site, "the-thao-1.txt", "Thể thao", title);

    for path in ["atom.xml", "rss.xml", "feed.json"] {
        let topic = format!("{BASE_URL}/feeds/{path}");
        let ping = wait_for(&format!("hub ping for {path}"), LONG, || {
            rec.at("POST", "/hub").into_iter().find(|r| {
                let form: HashMap<String, String> =
                    url::form_urlencoded::parse(&r.body).into_owned().collect();
                form.get("hub.url") == Some(&topic)
            })
        });
        let form: HashMap<String, String> = url::form_urlencoded::parse(&ping.body)
            .into_owned()
            .collect();
        assert_eq!(form["hub.mode"], "publish");
        assert_eq!(form["hub.topic"], topic);
        assert_eq!(
            ping.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
    }

    let atom = wait_for("atom partner delivery", LONG, || {
        rec.at("POST", "/p/atom").into_iter().next()
    });
    let ts = &atom.headers["x-feedwire-timestamp"];
    let mut signed = ts.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&atom.body);
    assert_eq!(
        atom.headers["x-feedwire-signature"],
        format!("sha256={}", hmac_hex(b"atom-secret-from-env", &signed))
    );
    let key = &atom.headers["idempotency-key"];
    assert!(
        key.starts_with("the-thao-1:") && key.len() > "the-thao-1:".len(),
        "{key}"
    );
    assert_eq!(atom.headers["authorization"], "Bearer tok");
    let text = String::from_utf8(atom.body.clone()).unwrap();
    assert!(
        text.contains("<entry xmlns=\"http://www.w3.org/2005/Atom\""),
        "{text}"
    );
    assert!(text.contains(title));
    assert!(atom.headers["content-type"].starts_with("application/atom+xml"));

    let json = wait_for("json partner delivery", LONG, || {
        rec.at("POST", "/p/json").into_iter().next()
    });
    let doc: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(doc["items"].as_array().unwrap().len(), 1);
    assert_eq!(doc["items"][0]["title"], title);

    // Deletion notice (RFC 6721 for atom, {"deleted": …} for json).
    std::fs::remove_file(child_env_site.articles().join("the-thao-1.txt")).unwrap();
    let tomb = wait_for("atom deletion notice", LONG, || {
        rec.at("POST", "/p/atom")
            .into_iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains("deleted-entry"))
    });
    let text = String::from_utf8(tomb.body).unwrap();
    assert!(text.contains("xmlns:at=\"http://purl.org/atompub/tombstones/1.0\""));
    assert!(
        text.contains("ref=\"tag:test.example,2026:articles/the-thao-1\""),
        "{text}"
    );
    let jdel = wait_for("json deletion notice", LONG, || {
        rec.at("POST", "/p/json")
            .into_iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains("deleted"))
    });
    let v: serde_json::Value = serde_json::from_slice(&jdel.body).unwrap();
    assert_eq!(
        v["deleted"]["id"],
        "tag:test.example,2026:articles/the-thao-1"
    );
    assert!(rec.at("POST", "/p/rss").is_empty(), "category filter");

    // Secrets never appear in status output or the log.
    let st = status(&child_env_site);
    assert!(st.contains("syndication"), "{st}");
    for secret in ["atom-secret-from-env", "json-secret", "Bearer tok"] {
        assert!(!st.contains(secret) && !daemon.log().contains(secret));
    }
    drop(daemon);
}

/// A partner that is down (503), then the daemon killed with -9: after the
/// restart everything arrives, updates of one article in order, nothing lost.
#[test]
fn partner_outage_kill9_restart_delivers_everything_in_order() {
    let (rec, up) = Recorder::switchable(503);
    let site = site(&format!(
        r#"[delivery]
retry_base_ms = 50
retry_max_ms = 300

[[partners]]
name = "portal"
url = "{p}"
format = "rss"
secret = "k"
concurrency = 2
"#,
        p = rec.url("/in")
    ));
    let daemon = site.start();
    let pending = |site: &Site| -> Option<usize> {
        let s = status(site);
        if !s.contains("syndication") {
            return None;
        }
        // A partner with nothing queued has no line.
        let Some(line) = s.lines().find(|l| l.contains("partner portal:")) else {
            return Some(0);
        };
        line.split("partner portal: ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    article(&site, "a.txt", "Xã hội", "Phiên bản một");
    wait_for("v1 queued", LONG, || (pending(&site)? >= 1).then_some(()));
    article(&site, "a.txt", "Xã hội", "Phiên bản hai");
    article(&site, "b.txt", "Xã hội", "Bài B");
    article(&site, "c.txt", "Xã hội", "Bài C");
    wait_for("four deliveries queued", LONG, || {
        (pending(&site)? >= 4).then_some(())
    });
    wait_for("failed attempts seen", LONG, || {
        (rec.all().iter().filter(|r| r.status == 503).count() >= 3).then_some(())
    });
    daemon.kill9();
    assert!(pending(&site).unwrap() >= 4, "the outbox survived kill -9");

    up.store(true, Ordering::SeqCst);
    let _daemon = site.start();
    wait_for("outbox drained", LONG, || {
        (pending(&site)? == 0).then_some(())
    });
    let ok: Vec<Req> = rec.all().into_iter().filter(|r| r.status == 200).collect();
    let titles_of = |r: &Req| titles(&parse_feed(&r.body));
    let delivered: Vec<String> = ok.iter().flat_map(titles_of).collect();
    for t in ["Phiên bản một", "Phiên bản hai", "Bài B", "Bài C"] {
        assert!(delivered.iter().any(|d| d == t), "{t} lost: {delivered:?}");
    }
    let v1 = delivered.iter().position(|d| d == "Phiên bản một").unwrap();
    let v2 = delivered.iter().position(|d| d == "Phiên bản hai").unwrap();
    assert!(v1 < v2, "update N+1 never before N: {delivered:?}");
    // At-least-once with stable keys: duplicates share an idempotency key.
    let keys: std::collections::HashSet<&str> = ok
        .iter()
        .map(|r| r.headers["idempotency-key"].as_str())
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

/// After the give-up age a partner delivery becomes a dead letter, shown by
/// `status`; `feedwire redeliver` sends it again.
#[test]
fn dead_letters_and_redeliver() {
    let (rec, up) = Recorder::switchable(500);
    let site = site(&format!(
        "[delivery]\nretry_base_ms = 50\nretry_max_ms = 200\npartner_give_up_secs = 1\n\n[[partners]]\nname = \"slow\"\nurl = \"{}\"\nformat = \"json\"\nsecret = \"sekrit\"\n",
        rec.url("/in")
    ));
    let _daemon = site.start();
    article(&site, "x.txt", "Văn hóa", "Thư chết");
    let st = wait_for("dead letter in status", LONG, || {
        let s = status(&site);
        s.contains("partner slow: 0 pending, 1 dead letter(s)")
            .then_some(s)
    });
    assert!(st.contains("feedwire redeliver slow"), "{st}");
    assert!(st.contains("last error: HTTP 500"), "{st}");
    assert!(!st.contains("sekrit"));
    up.store(true, Ordering::SeqCst);
    let out = site.cli(&[
        "redeliver",
        "slow",
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 dead letter(s)"));
    wait_for("redelivered", LONG, || {
        rec.all().into_iter().find(|r| r.status == 200)
    });
    wait_for("outbox empty", LONG, || {
        let s = status(&site);
        (s.contains("syndication  0 pending deliveries, 0 dead letter(s)")
            && !s.contains("partner slow"))
        .then_some(())
    });
}

/// Fan-out (WS-H11, WS-H14): a change reaches every subscriber of the topic
/// exactly once, as the full topic document signed with that subscriber's
/// own secret. The subscribers are all one client (127.0.0.1), so the
/// per-client limits on subscribing are raised to let them in at once; the
/// per-client share of deliveries in flight keeps its default, below N, so
/// the fan-out also queues behind it without losing anyone. How long
/// 1,000 subscribers take is a benchmark figure, not a test:
/// `examples/websub_fanout.rs`, run by `bench/run.sh`.
#[test]
fn fanout_delivers_one_update_to_every_subscriber_signed_with_its_secret() {
    const N: usize = 20;
    let rec = Recorder::start(echo);
    let site = site(&format!(
        "[websub]\nallowed_callback_hosts = [\"127.0.0.1\"]\nclient_burst = {N}\n\
         max_pending_verifications_per_client = {N}\n"
    ));
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let secret = |i: usize| format!("secret-of-subscriber-{i}");
    for i in 0..N {
        let callback = rec.url(&format!("/cb/{i}"));
        let (code, why) = subscribe(&daemon, &topic, &callback, &[("hub.secret", &secret(i))]);
        assert_eq!(code, 202, "subscriber {i}: {why}");
    }
    wait_for(&format!("{N} subscriptions active"), LONG, || {
        (active_subscriptions(&site)? == N).then_some(())
    });
    let title = "Tin cho mọi người đăng ký";
    article(&site, "moi.txt", "Khoa học", title);
    let posts = || -> Vec<Req> {
        rec.all()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    };
    wait_for(&format!("{N} deliveries"), LONG, || {
        (posts().len() >= N).then_some(())
    });
    // Give stray deliveries a chance to show up before counting them.
    std::thread::sleep(Duration::from_millis(1500));
    let deliveries = posts();
    let paths: Vec<&str> = deliveries.iter().map(|r| r.path.as_str()).collect();
    let distinct: std::collections::HashSet<&str> = paths.iter().copied().collect();
    assert_eq!(
        (deliveries.len(), distinct.len()),
        (N, N),
        "every subscriber exactly once: {paths:?}"
    );
    let topic_document = std::fs::read(site.feeds().join("atom.xml")).unwrap();
    for delivery in &deliveries {
        let i: usize = delivery
            .path
            .strip_prefix("/cb/")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("a delivery to {}", delivery.path));
        assert_eq!(
            delivery.headers.get("x-hub-signature"),
            Some(&format!(
                "sha256={}",
                hmac_hex(secret(i).as_bytes(), &delivery.body)
            )),
            "subscriber {i}: signed with its own secret"
        );
        assert!(
            has_title(&delivery.body, title),
            "subscriber {i}: the change"
        );
        assert_eq!(
            delivery.body, topic_document,
            "subscriber {i}: the full topic document"
        );
    }
}

/// Issue 9, point 18: failed deliveries are not silent. An external hub
/// that answers 400 (the issue: retried 30 times in 14 s with no log line),
/// a partner in maintenance and a subscriber that breaks: the first failure
/// of each configured target is logged with the status and the start of the
/// answer, and only once; a ping refused with a 4xx is given up at once
/// (logged) rather than retried; `/metrics` counts failures per target,
/// with every WebSub subscriber under one label and no URL a stranger chose
/// (nor the token in a hub's configured URL).
#[test]
fn failed_deliveries_are_logged_once_per_target_and_counted_per_target() {
    let rec = Recorder::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/hub") => (400, b"hub.topic is not a URL this hub accepts\n".to_vec()),
        ("POST", "/portal") => (503, b"down for maintenance".to_vec()),
        ("POST", _) => (500, b"subscriber broke".to_vec()),
        _ => echo(r),
    });
    let hub = rec.url("/hub?token=secret-hub-token");
    let site = site(&format!(
        r#"[websub]
allowed_callback_hosts = ["127.0.0.1"]
hubs = ["{hub}"]

[delivery]
retry_base_ms = 100
retry_max_ms = 400

[[partners]]
name = "portal"
url = "{portal}"
format = "json"
secret = "k"
"#,
        portal = rec.url("/portal"),
    ));
    let daemon = site.start();
    let topic = format!("{BASE_URL}/feeds/atom.xml");
    let callback = rec.url("/cb/private-subscriber-path");
    assert_eq!(subscribe(&daemon, &topic, &callback, &[]).0, 202);
    wait_for("subscription active", LONG, || {
        (active_subscriptions(&site)? == 1).then_some(())
    });
    article(&site, "hong.txt", "Thể thao", "Bài cho các đích hỏng");

    let log = wait_for("the hub's refusal logged with its answer", LONG, || {
        let log = daemon.log();
        (log.contains("HTTP 400: hub.topic is not a URL this hub accepts")
            && log.contains("delivery gave up"))
        .then_some(log)
    });
    assert!(log.contains(&rec.url("/hub")), "the hub is named: {log}");
    wait_for("the partner's failure logged with its answer", LONG, || {
        daemon
            .log()
            .contains("HTTP 503: down for maintenance")
            .then_some(())
    });
    wait_for("the subscriber's failure logged", LONG, || {
        daemon
            .log()
            .contains("HTTP 500: subscriber broke")
            .then_some(())
    });
    // The partner keeps failing (retried); its failure is logged once.
    wait_for("several partner attempts", LONG, || {
        (rec.at("POST", "/portal").len() >= 4).then_some(())
    });
    let log = daemon.log();
    let first_failure_lines = log
        .lines()
        .filter(|l| l.contains("HTTP 503: down for maintenance") && l.contains("WARN"))
        .count();
    assert_eq!(
        first_failure_lines, 1,
        "first failure only, at warn level:\n{log}"
    );

    // A 400 to a ping is not retried: each topic was pinged once.
    let pinged: Vec<String> = rec
        .at("POST", "/hub")
        .iter()
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "hub.url")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = pinged.iter().collect();
    assert!(!pinged.is_empty());
    assert_eq!(
        pinged.len(),
        distinct.len(),
        "a topic was pinged again after a 400: {pinged:?}"
    );

    let metrics = http_client()
        .get(format!("http://{}/metrics", daemon.http_addr()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let counter = |name: &str, kind: &str, target: &str| -> u64 {
        let prefix = format!("{name}{{kind=\"{kind}\",target=\"{target}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let hub_label = rec.url("/hub");
    assert!(
        counter("feedwire_delivery_failures_total", "hub", &hub_label) >= 1,
        "{metrics}"
    );
    assert!(
        counter("feedwire_delivery_give_ups_total", "hub", &hub_label) >= 1,
        "{metrics}"
    );
    assert!(
        counter("feedwire_delivery_failures_total", "partner", "portal") >= 1,
        "{metrics}"
    );
    assert!(
        counter("feedwire_delivery_failures_total", "websub", "subscribers") >= 1,
        "{metrics}"
    );
    for secret in ["private-subscriber-path", "secret-hub-token"] {
        assert!(
            !metrics.contains(secret),
            "{secret} in /metrics:\n{metrics}"
        );
        assert!(!daemon.log().contains(secret), "{secret} in the log");
    }
}
