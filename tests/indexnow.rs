//! IndexNow end to end (issue 13, point 3; newsroom.md NR-08): the real
//! daemon submits to a loopback receiver standing in for a search engine.
//! What is submitted (published, changed and killed pages; never a
//! withheld one), how (one JSON POST per endpoint and batch with `host`,
//! `key`, `keyLocation` when the key file is not at the root, `urlList`;
//! URLs queued within `batch_window_ms` together; at most
//! `max_urls_per_request`), the key file, 429 with `Retry-After` honoured,
//! a refusal given up, and nothing lost when the daemon is killed and
//! restarted while the engine is down. Every JSON body is parsed and
//! checked field by field. Generous deadlines, lower bounds only.

use crate::common::recorder::*;
use crate::common::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const KEY: &str = "f3c1-0a9b7e2d4c6b8a01";

fn site(engine: &Recorder, extra: &str) -> Site {
    site_for(&[engine], extra)
}

/// A site submitting to every one of `engines`. `extra` goes in
/// `[indexnow]`; `batch_window_ms` is 500 unless `extra` sets it (TOML
/// refuses a key given twice).
fn site_for(engines: &[&Recorder], extra: &str) -> Site {
    let endpoints: Vec<String> = engines
        .iter()
        .map(|e| format!("\"{}\"", e.url("/indexnow")))
        .collect();
    let window = if extra.contains("batch_window_ms") {
        ""
    } else {
        "batch_window_ms = 500\n"
    };
    Site::new(&format!(
        "[watch]\ndebounce_ms = 100\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [delivery]\nretry_base_ms = 100\nretry_max_ms = 60000\n\
         [indexnow]\nkey = \"{KEY}\"\nendpoints = [{}]\n{window}{extra}",
        endpoints.join(", ")
    ))
}

fn link(id: &str) -> String {
    format!("{BASE_URL}/articles/{id}")
}

fn markdown(id: &str, title: &str, extra: &str) -> String {
    format!(
        "---\nid: {id}\ntitle: \"{title}\"\ncategory: Thời sự\n{extra}---\nNội dung của {title}.\n"
    )
}

/// A submission as the engine received it.
#[derive(Debug)]
struct Submission {
    status: u16,
    at: std::time::Instant,
    body: serde_json::Value,
    urls: Vec<String>,
}

fn submissions(engine: &Recorder) -> Vec<Submission> {
    engine
        .at("POST", "/indexnow")
        .into_iter()
        .map(|r| {
            assert_eq!(
                r.headers.get("content-type").map(String::as_str),
                Some("application/json; charset=utf-8")
            );
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let urls = body["urlList"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_string())
                .collect();
            Submission {
                status: r.status,
                at: r.at,
                body,
                urls,
            }
        })
        .collect()
}

/// Every URL the engine accepted.
fn accepted(engine: &Recorder) -> BTreeSet<String> {
    submissions(engine)
        .into_iter()
        .filter(|s| s.status == 200)
        .flat_map(|s| s.urls)
        .collect()
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

/// IndexNow URL submissions waiting, from `feedwire status`.
fn pending(site: &Site) -> usize {
    let status = command(site, &["status"]);
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with("indexnow"))
        .unwrap_or_else(|| panic!("no indexnow line in status:\n{status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- tests

/// Two engines. Articles present at start go to each in one request; an
/// edit and a kill are each submitted; an embargoed article is not
/// submitted until its embargo ends. Every request carries exactly the
/// host, the key and the URLs (no keyLocation: the key file is at the
/// host's root), and the daemon serves that key file as text, exactly the
/// key.
#[test]
fn published_changed_and_killed_pages_are_submitted_to_every_endpoint_and_withheld_ones_are_not() {
    let engines = [
        Recorder::start(|_| (200, Vec::new())),
        Recorder::start(|_| (200, Vec::new())),
    ];
    let site = site_for(&[&engines[0], &engines[1]], "");
    for id in ["a", "b", "c"] {
        site.write(&format!("{id}.md"), markdown(id, &format!("Tin {id}"), ""));
    }
    // Held far beyond the test; the edit and the kill are submitted
    // first, then an editor moves the embargo to a few seconds ahead.
    let held = chrono::Utc::now() + chrono::Duration::hours(1);
    site.write(
        "cam.md",
        markdown(
            "cam",
            "Tin cấm",
            &format!("embargo: {}\n", held.to_rfc3339()),
        ),
    );
    let daemon = site.start();

    // The key file, at the root, as IndexNow fetches it.
    let key_file = http_client()
        .get(format!("http://{}/{KEY}.txt", daemon.http_addr()))
        .send()
        .unwrap();
    assert_eq!(key_file.status(), 200);
    assert_eq!(
        key_file.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(key_file.text().unwrap(), KEY, "exactly the key");
    assert_eq!(
        std::fs::read_to_string(site.feeds().join(format!("{KEY}.txt"))).unwrap(),
        KEY,
        "published with the other documents"
    );

    for engine in &engines {
        let first = wait_for("the first submission", WAIT, || {
            submissions(engine).into_iter().next()
        });
        assert_eq!(
            first.urls.iter().cloned().collect::<BTreeSet<_>>(),
            ["a", "b", "c"].map(link).into(),
            "the three articles in one request to each endpoint"
        );
        assert_eq!(first.urls.len(), 3, "each once: {:?}", first.urls);
        assert_eq!(first.body["host"], "127.0.0.1");
        assert_eq!(first.body["key"], KEY);
        assert!(
            first.body.get("keyLocation").is_none(),
            "the key file is at the root: {}",
            first.body
        );
        assert_eq!(
            first.body.as_object().unwrap().len(),
            3,
            "host, key, urlList: {}",
            first.body
        );
    }

    // A submission after the first three containing `url`, on each engine.
    let later_with = |engine: &Recorder, url: &str| {
        submissions(engine)
            .into_iter()
            .skip(1)
            .find(|s| s.urls.iter().any(|u| u == url))
    };

    // An edit.
    site.write("b.md", markdown("b", "Tin b, đã sửa", ""));
    for engine in &engines {
        let edit = wait_for("the edited page submitted", WAIT, || {
            later_with(engine, &link("b"))
        });
        assert_eq!(edit.urls, [link("b")]);
        assert_eq!(edit.body["host"], "127.0.0.1");
        assert_eq!(edit.body["key"], KEY);
    }

    // A kill: the page now answers 410, and engines are told.
    command(&site, &["kill", "c", "--reason", "Sai"]);
    for engine in &engines {
        let kill = wait_for("the killed page submitted", WAIT, || {
            later_with(engine, &link("c"))
        });
        assert_eq!(kill.urls, [link("c")]);
        assert_eq!(kill.body["key"], KEY);
    }
    let gone = http_client()
        .get(format!("http://{}/articles/c", daemon.http_addr()))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 410, "what the engine will find");
    for engine in &engines {
        assert!(
            !accepted(engine).contains(&link("cam")),
            "withheld: not submitted"
        );
    }

    // The embargo ends: now it is published, and submitted, not before.
    let ahead = Duration::from_secs(3);
    let until = chrono::Utc::now() + chrono::Duration::from_std(ahead).unwrap();
    let until_instant = std::time::Instant::now() + ahead;
    command(&site, &["embargo", "cam", &until.to_rfc3339()]);
    for engine in &engines {
        let cam = wait_for("the embargoed page once public", WAIT, || {
            later_with(engine, &link("cam"))
        });
        assert_eq!(cam.urls, [link("cam")]);
        // The embargo's time may be read to the second.
        assert!(
            cam.at + Duration::from_secs(1) >= until_instant,
            "submitted {:?} before its embargo ended",
            until_instant - cam.at
        );
    }
    wait_for("an empty queue", WAIT, || {
        (pending(&site) == 0).then_some(())
    });
    // Each engine heard of each change once: a, b, c; b; c; cam.
    for engine in &engines {
        let mut heard: Vec<String> = submissions(engine)
            .into_iter()
            .flat_map(|s| s.urls)
            .collect();
        heard.sort();
        let mut want: Vec<String> = ["a", "b", "b", "c", "c", "cam"].map(link).into();
        want.sort();
        assert_eq!(heard, want);
        assert!(
            engine
                .all()
                .iter()
                .all(|r| r.method == "POST" && r.path == "/indexnow"),
            "only POSTs to the endpoint"
        );
    }
    assert!(daemon.terminate().success());
}

/// `keyLocation` is sent when the key file is not at the host's root (a
/// `site.base_url` with a path), and the URLs are the pages under it.
#[test]
fn a_key_file_under_a_path_is_located() {
    let engine = Recorder::start(|_| (200, Vec::new()));
    let site = site(&engine, "");
    let config = std::fs::read_to_string(site.config()).unwrap();
    let moved = config.replace(
        &format!("base_url = \"{BASE_URL}\""),
        &format!("base_url = \"{BASE_URL}/tin\""),
    );
    assert_ne!(moved, config);
    std::fs::write(site.config(), moved).unwrap();
    site.write("a.md", markdown("a", "Tin a", ""));
    let daemon = site.start();
    let sent = wait_for("the submission", WAIT, || {
        submissions(&engine).into_iter().next()
    });
    let body = sent.body.as_object().unwrap();
    assert_eq!(
        body.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ["host", "key", "keyLocation", "urlList"].into()
    );
    assert_eq!(body["host"], "127.0.0.1");
    assert_eq!(body["key"], KEY);
    assert_eq!(body["keyLocation"], format!("{BASE_URL}/tin/{KEY}.txt"));
    assert_eq!(sent.urls, [format!("{BASE_URL}/tin/articles/a")]);
    assert!(daemon.terminate().success());
}

/// URLs queued at different times within `batch_window_ms` go in one
/// request: three articles, each published in a batch of its own (the
/// next is written once the last is in the feed, about a second for the
/// three), all well within a 4 s window, reach the engine together, and no
/// sooner than the window.
#[test]
fn changes_within_the_window_go_in_one_request() {
    let engine = Recorder::start(|_| (200, Vec::new()));
    let window = Duration::from_secs(4);
    let site = site(
        &engine,
        &format!("batch_window_ms = {}\n", window.as_millis()),
    );
    let daemon = site.start();
    let feed = format!("http://{}/feeds/atom.xml", daemon.http_addr());
    let mut first_written = None;
    for id in ["w1", "w2", "w3"] {
        site.write(&format!("{id}.md"), markdown(id, &format!("Tin {id}"), ""));
        first_written.get_or_insert_with(std::time::Instant::now);
        wait_for("the article in the feed", WAIT, || {
            let body = http_client().get(&feed).send().ok()?.text().ok()?;
            body.contains(&format!("/articles/{id}")).then_some(())
        });
    }
    let first_written = first_written.unwrap();
    assert!(
        submissions(&engine).is_empty() || first_written.elapsed() >= window,
        "sent before the window closed"
    );
    let sent = wait_for("the submission", WAIT, || {
        submissions(&engine).into_iter().next()
    });
    assert!(
        sent.at >= first_written + window - Duration::from_millis(200),
        "sent {:?} after the first change, within the window",
        sent.at - first_written
    );
    assert_eq!(
        sent.urls.iter().cloned().collect::<BTreeSet<_>>(),
        ["w1", "w2", "w3"].map(link).into(),
        "the three changes in one request"
    );
    assert_eq!(sent.urls.len(), 3);
    wait_for("an empty queue", WAIT, || {
        (pending(&site) == 0).then_some(())
    });
    assert_eq!(submissions(&engine).len(), 1, "one request");
    assert!(daemon.terminate().success());
}

/// A burst larger than `max_urls_per_request` is split into requests of
/// at most that many URLs, none lost, none twice.
#[test]
fn a_burst_is_split_at_max_urls_per_request() {
    let engine = Recorder::start(|_| (200, Vec::new()));
    let site = site(&engine, "max_urls_per_request = 3\n");
    let ids: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    for id in &ids {
        site.write(&format!("{id}.md"), markdown(id, &format!("Tin {id}"), ""));
    }
    let daemon = site.start();
    let want: BTreeSet<String> = ids.iter().map(|id| link(id)).collect();
    wait_for("every URL submitted", WAIT, || {
        (accepted(&engine) == want).then_some(())
    });
    let all = submissions(&engine);
    assert!(
        all.iter().all(|s| s.urls.len() <= 3),
        "{:?}",
        all.iter().map(|s| s.urls.len()).collect::<Vec<_>>()
    );
    assert_eq!(
        all.iter().map(|s| s.urls.len()).sum::<usize>(),
        8,
        "none twice"
    );
    assert_eq!(all.len(), 3, "8 URLs in requests of 3, 3 and 2");
    assert!(daemon.terminate().success());
}

/// 429 with `Retry-After: 3`: the engine is asked again, with the same
/// URLs, no sooner than it said (the backoff alone would retry within
/// 100 ms), and then once only.
#[test]
fn a_429_with_retry_after_is_honoured() {
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let engine = Recorder::start_with_headers(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply {
                status: 429,
                headers: vec![("retry-after", "3".to_string())],
                body: b"slow down".to_vec(),
            }
        } else {
            Reply {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
    });
    let site = site(&engine, "");
    site.write("a.md", markdown("a", "Tin a", ""));
    let daemon = site.start();
    wait_for("the retry", WAIT, || {
        (submissions(&engine).len() >= 2).then_some(())
    });
    let all = submissions(&engine);
    assert_eq!((all[0].status, all[1].status), (429, 200));
    assert_eq!(all[0].urls, [link("a")]);
    assert_eq!(all[0].body, all[1].body, "the same submission again");
    let gap = all[1].at.duration_since(all[0].at);
    assert!(
        gap >= Duration::from_millis(2900),
        "asked again after {gap:?}, before the 3 s Retry-After"
    );
    wait_for("an empty queue", WAIT, || {
        (pending(&site) == 0).then_some(())
    });
    assert_eq!(submissions(&engine).len(), 2, "delivered once");
    assert!(
        daemon.log().contains("too many requests"),
        "the 429 is logged"
    );
    assert!(daemon.terminate().success());
}

/// 422 (URLs not on the host) cannot be fixed by sending the same request
/// again: it is given up at once, with the reason in the log.
#[test]
fn a_refusal_is_given_up_with_its_reason() {
    let engine = Recorder::start(|_| (422, b"Unprocessable Entity".to_vec()));
    let site = site(&engine, "");
    site.write("a.md", markdown("a", "Tin a", ""));
    let daemon = site.start();
    wait_for("the refused submission given up", WAIT, || {
        (submissions(&engine).len() == 1 && pending(&site) == 0).then_some(())
    });
    let log = daemon.log();
    assert!(
        log.contains("delivery gave up") && log.contains("do not belong to the host"),
        "{log}"
    );
    assert_eq!(submissions(&engine).len(), 1, "not retried");
    assert!(daemon.terminate().success());
}

/// Nothing is lost across restarts: the daemon is killed (`kill -9`) while
/// the engine is down, started again while it is still down (and fails
/// again), and once the engine is back the queued URL is delivered, once.
#[test]
fn submissions_survive_a_restart_while_the_engine_is_down() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let engine = Recorder::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            (200, Vec::new())
        } else {
            (503, b"down for maintenance".to_vec())
        }
    });
    let failed = |engine: &Recorder| {
        submissions(engine)
            .iter()
            .filter(|s| s.status == 503)
            .count()
    };
    let site = site(&engine, "");
    let daemon = site.start();
    site.write("a.md", markdown("a", "Tin a", ""));
    wait_for("a failed attempt", WAIT, || {
        (failed(&engine) > 0).then_some(())
    });
    daemon.kill9();
    assert_eq!(pending(&site), 1, "still queued after kill -9");

    // Restarted while the engine is still down: it tries again, fails,
    // and keeps the URL.
    let before = failed(&engine);
    let daemon = site.start();
    wait_for("an attempt by the restarted daemon", WAIT, || {
        (failed(&engine) > before).then_some(())
    });
    assert_eq!(pending(&site), 1, "still queued after a failure");

    up.store(true, Ordering::SeqCst);
    wait_for("the submission once the engine is back", WAIT, || {
        accepted(&engine).contains(&link("a")).then_some(())
    });
    wait_for("an empty queue", WAIT, || {
        (pending(&site) == 0).then_some(())
    });
    let all = submissions(&engine);
    assert!(
        all.iter().all(|s| s.urls == [link("a")]
            && s.body["host"] == "127.0.0.1"
            && s.body["key"] == KEY),
        "every attempt carries the same submission"
    );
    assert_eq!(
        all.iter().filter(|s| s.status == 200).count(),
        1,
        "delivered once"
    );
    assert!(daemon.terminate().success());
}
