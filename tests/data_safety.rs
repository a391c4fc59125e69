//! Hardening, data safety (issue 9, points 1, 3, 9, 10, 13, 15): the real
//! daemon and CLI on a temporary folder, doing what sync tools, mounts and
//! careless configs do to a newsroom's folder. Outcomes are awaited by
//! polling the published feeds, the log and `feedwire status`, with generous
//! deadlines. Each test fails on the build before the hardening (run with
//! `FEEDWIRE_TEST_BIN=<old binary>`).

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const WAIT: Duration = Duration::from_secs(60);

fn daemon_site(extra: &str) -> Site {
    Site::new(&format!("[watch]\ndebounce_ms = 100\n{extra}"))
}

fn n_wire(site: &Site, n: usize) -> Vec<std::path::PathBuf> {
    (0..n)
        .map(|i| {
            site.write(
                &format!("tin-{i:03}.txt"),
                wire_text(
                    "Thời sự",
                    &format!("Bản tin số {i}"),
                    &["Nội dung bản tin."],
                    "Phóng viên",
                ),
            )
        })
        .collect()
}

fn status(site: &Site) -> String {
    let out = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn entries(site: &Site, feed: &str) -> usize {
    site.try_feed(feed).map_or(0, |f| f.entries.len())
}

/// Point 1: `run` with a misspelt `paths.articles` refuses to start (exit 2,
/// the key and the path named) instead of creating the folder and
/// publishing empty feeds.
#[test]
fn run_refuses_a_missing_articles_folder() {
    let site = Site::new("[paths]\narticles = \"artcles\"\n");
    let mut child = Command::new(bin())
        .args(["run", "--config", site.config().to_str().unwrap()])
        .current_dir(site.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("feedwire run kept running on a missing articles folder");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("paths.articles") && stderr.contains("artcles"),
        "the message names the key and the path: {stderr}"
    );
    assert!(
        !site.path().join("artcles").exists(),
        "the folder was created"
    );
    assert!(!site.feeds().join("rss.xml").exists(), "feeds were written");
}

/// Point 1: a folder emptied at once (a sync tool, `rm *`) holds the
/// removals: feeds and partners unchanged, one error, `status` says what is
/// held and how to proceed. Restoring the files cancels the hold;
/// `apply-removals` applies it, and only then are partners told.
#[test]
fn a_mass_removal_is_held_until_approved_or_restored() {
    // The partner's address refuses connections, so whatever is queued for
    // it stays visible in `status` as pending. A socket bound to the port
    // but never listening makes the refusal, and holds the port for the
    // whole test so that nothing else can start answering there.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead_port = refusing.local_addr().unwrap().port();
    let site = daemon_site(&format!(
        "max_removals = 50\n[feeds]\nmax_items = 100\n[[partners]]\nname = \"portal\"\nurl = \"http://127.0.0.1:{dead_port}/in\"\nsecret = \"k\"\n"
    ));
    let files = n_wire(&site, 60);
    let daemon = site.start();
    wait_for("60 articles", WAIT, || {
        (entries(&site, "atom.xml") == 60).then_some(())
    });
    let pending = |site: &Site| {
        let text = status(site);
        let line = text
            .lines()
            .find(|l| l.contains("partner portal"))
            .map(str::to_string)
            .unwrap_or_default();
        line.split_whitespace()
            .find_map(|w| w.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let queued_for_adds = pending(&site);

    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    wait_for("the hold is logged", WAIT, || {
        daemon.log().contains("watch.max_removals").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(entries(&site, "atom.xml"), 60, "feeds unchanged while held");
    assert_eq!(
        pending(&site),
        queued_for_adds,
        "no deletion notice queued for the partner"
    );
    let errors = daemon
        .log()
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("watch.max_removals"))
        .count();
    assert_eq!(errors, 1, "one error logged:\n{}", daemon.log());
    let text = status(&site);
    assert!(text.contains("60 removal(s) held"), "{text}");
    assert!(text.contains("feedwire apply-removals"), "{text}");
    assert!(text.contains("tin-000.txt"), "{text}");

    // Restoring the files cancels the hold.
    let restored = n_wire(&site, 60);
    wait_for("the hold ends when the files are back", WAIT, || {
        (!status(&site).contains("held back")).then_some(())
    });
    assert_eq!(entries(&site, "atom.xml"), 60);

    // Delete again, and this time approve.
    for f in &restored {
        std::fs::remove_file(f).unwrap();
    }
    wait_for("held again", WAIT, || {
        status(&site).contains("60 removal(s) held").then_some(())
    });
    let out = site.cli(&[
        "apply-removals",
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("60 held removal(s) approved"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_for("removals applied by the running daemon", WAIT, || {
        (entries(&site, "atom.xml") == 0).then_some(())
    });
    assert!(!status(&site).contains("held back"));
    wait_for("partners told only now", WAIT, || {
        (pending(&site) == queued_for_adds + 60).then_some(())
    });
    assert!(daemon.terminate().success());
}

/// Point 1: the articles folder renamed away (or unmounted) while running
/// removes nothing; when it is back it is reconciled and watched again.
#[test]
fn a_vanished_folder_removes_nothing_and_is_watched_again_when_back() {
    let site = daemon_site("rescan_secs = 0\n");
    n_wire(&site, 3);
    let daemon = site.start();
    wait_for("3 articles", WAIT, || {
        (entries(&site, "rss.xml") == 3).then_some(())
    });
    let away = site.path().join("articles.away");
    std::fs::rename(site.articles(), &away).unwrap();
    wait_for("the missing folder is noticed", WAIT, || {
        daemon
            .log()
            .contains("articles folder is missing")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(entries(&site, "rss.xml"), 3, "nothing removed");
    std::fs::rename(&away, site.articles()).unwrap();
    wait_for("the folder is back", WAIT, || {
        daemon
            .log()
            .contains("articles folder is back")
            .then_some(())
    });
    site.write(
        "moi.txt",
        wire_text(
            "Thời sự",
            "Tin sau khi thư mục trở lại",
            &["Nội dung."],
            "PV",
        ),
    );
    wait_for("a new file is picked up by the new watch", WAIT, || {
        (entries(&site, "rss.xml") == 4).then_some(())
    });
    assert!(daemon.terminate().success());
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Point 3: files found by a reconciliation (here `build`) take their
/// modification time as first-seen time, with sub-second precision where the
/// format allows it; files sharing an mtime still get distinct `updated`
/// values (no W3C `DuplicateUpdated`); a future mtime is not trusted.
#[test]
fn backfilled_files_keep_their_modification_times_in_order() {
    let site = Site::new("");
    let files = n_wire(&site, 4);
    let base = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_250); // 2026-01-01T00:00:00.250Z
    set_mtime(&files[0], base);
    set_mtime(&files[1], base); // same instant as files[0]
    set_mtime(&files[2], base + Duration::from_secs(3600));
    set_mtime(
        &files[3],
        SystemTime::now() + Duration::from_secs(7 * 86400),
    );
    let built_at = chrono::Utc::now();
    site.build();
    let atom = site.feed("atom.xml");
    let published = |title: &str| {
        atom.entries
            .iter()
            .find(|e| e.title.as_ref().unwrap().content == title)
            .unwrap_or_else(|| panic!("{title} missing"))
            .published
            .unwrap()
    };
    let t0 = published("Bản tin số 0");
    let t1 = published("Bản tin số 1");
    let t2 = published("Bản tin số 2");
    let t3 = published("Bản tin số 3");
    let expect = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.250Z").unwrap();
    assert_eq!(t0, expect, "first-seen is the mtime, milliseconds kept");
    assert!(
        t1 > t0 && (t1 - t0) < chrono::Duration::milliseconds(1),
        "a shared mtime still gives an order: {t0} {t1}"
    );
    assert_eq!(t2, expect + chrono::Duration::hours(1));
    assert!(
        t3 >= built_at - chrono::Duration::seconds(5) && t3 <= chrono::Utc::now(),
        "a future mtime is not trusted: {t3}"
    );
    let mut updated: Vec<_> = atom.entries.iter().map(|e| e.updated.unwrap()).collect();
    updated.sort();
    updated.dedup();
    assert_eq!(updated.len(), 4, "no two entries share `updated`");
    // The raw Atom carries the fraction.
    let raw = std::fs::read_to_string(site.feeds().join("atom.xml")).unwrap();
    assert!(raw.contains("2026-01-01T07:00:00.250+07:00"), "{raw}");
}

/// Point 3: a file dropped while the daemon runs keeps "now" as its
/// first-seen time, whatever its mtime says.
#[test]
fn live_drops_are_first_seen_now() {
    let site = daemon_site("");
    let daemon = site.start();
    let outside = site.path().join("old.txt");
    std::fs::write(
        &outside,
        wire_text("Thời sự", "Tin cũ chép vào", &["Nội dung."], "PV"),
    )
    .unwrap();
    set_mtime(
        &outside,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
    );
    let dropped_at = chrono::Utc::now();
    std::fs::rename(&outside, site.articles().join("old.txt")).unwrap();
    wait_for("live drop", WAIT, || {
        (entries(&site, "atom.xml") == 1).then_some(())
    });
    let published = site.feed("atom.xml").entries[0].published.unwrap();
    assert!(
        published >= dropped_at - chrono::Duration::seconds(2),
        "{published}"
    );
    assert!(daemon.terminate().success());
}

/// Point 3, on the shipped articles: no two Atom entries share `updated`
/// (the W3C validator's `DuplicateUpdated` warned 15 times before).
#[test]
fn shipped_articles_have_distinct_updated_times() {
    let site = Site::new("[feeds]\nmax_items = 100\n");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("articles");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), site.articles().join(entry.file_name())).unwrap();
    }
    site.build();
    for feed in ["atom.xml", "xay-dung-dang/atom.xml", "kinh-te/atom.xml"] {
        let Some(f) = site.try_feed(feed) else {
            continue;
        };
        let mut updated: Vec<_> = f.entries.iter().map(|e| e.updated.unwrap()).collect();
        let n = updated.len();
        updated.sort();
        updated.dedup();
        assert_eq!(updated.len(), n, "{feed}: duplicate updated values");
    }
}

/// Point 9: links leading outside the articles folder never get a file read
/// through them: a folder link and a file link made before start, and the
/// same made while running; files written into the outside folder
/// afterwards stay out of the feeds too.
#[test]
fn links_leading_outside_are_never_read_through() {
    let site = daemon_site("");
    let outside = site.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = |name: &str, title: &str| {
        std::fs::write(
            outside.join(name),
            wire_text("Bí mật", title, &["Không được công bố."], "PV"),
        )
        .unwrap();
    };
    secret("a.txt", "Bí mật A");
    secret("b.txt", "Bí mật B");
    std::os::unix::fs::symlink(&outside, site.articles().join("linked-before")).unwrap();
    std::os::unix::fs::symlink(outside.join("b.txt"), site.articles().join("b-link.txt")).unwrap();
    let daemon = site.start();
    std::os::unix::fs::symlink(&outside, site.articles().join("linked-while")).unwrap();
    std::os::unix::fs::symlink(outside.join("a.txt"), site.articles().join("a-link.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Written into the outside folder after the links exist.
    secret("c.txt", "Bí mật C");
    std::thread::sleep(Duration::from_millis(500));
    // A marker file inside: once it is published, the daemon has handled
    // everything before it.
    site.write(
        "marker.txt",
        wire_text("Thời sự", "Tin đánh dấu", &["Nội dung."], "PV"),
    );
    wait_for("marker published", WAIT, || {
        site.try_feed("rss.xml")
            .filter(|f| titles(f).contains(&"Tin đánh dấu".to_string()))
    });
    std::thread::sleep(Duration::from_millis(1000));
    let t = titles(&site.feed("rss.xml"));
    assert_eq!(t, vec!["Tin đánh dấu".to_string()], "{t:?}");
    assert!(daemon.terminate().success());
}

/// Point 10: a rejected file is read and logged once per change, never
/// because feedwire itself opened it.
#[test]
fn a_rejected_file_is_logged_once_per_change() {
    let site = daemon_site("");
    let daemon = site.start();
    let bad = site.write("hong.md", "---\ntitle: [oops\n---\nbody\n");
    let lines = |daemon: &Daemon| {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("hong.md") && l.contains("rejected"))
            .count()
    };
    wait_for("rejected once", WAIT, || {
        (lines(&daemon) >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        lines(&daemon),
        1,
        "re-read without a change:\n{}",
        daemon.log()
    );
    std::fs::write(&bad, "---\ntitle: [still broken\n---\nbody\n").unwrap();
    wait_for("rejected again after a change", WAIT, || {
        (lines(&daemon) >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(&daemon), 2, "{}", daemon.log());
    assert!(daemon.terminate().success());
    // A restart does not read it again either (its stamp is unchanged).
    let daemon = site.start();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines(&daemon), 0, "{}", daemon.log());
}

/// Point 13: `event_to_publish_ms` counts from a file's first event, so a
/// stall shows in the figure instead of being hidden. The stall here is a
/// hostile file (40 KB of nested quotes) that takes a long parse, or at most
/// the parse budget; a good file dropped meanwhile must report its real wait.
#[test]
fn event_to_publish_counts_from_the_first_event() {
    let site = daemon_site("");
    let daemon = site.start();
    site.write(
        "long-parse.md",
        format!("# Tiêu đề\n\n{} x\n", ">".repeat(40_000)),
    );
    // Past the debounce: the hostile file's batch is under way.
    std::thread::sleep(Duration::from_millis(400));
    let dropped = Instant::now();
    site.write(
        "zz-late.txt",
        wire_text("Thời sự", "Tin đến sau", &["Nội dung."], "PV"),
    );
    wait_for("the late file is published", WAIT, || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("zz-late.txt") && l.contains("event_to_publish_ms"))
            .then_some(())
    });
    let observed_ms = dropped.elapsed().as_secs_f64() * 1e3;
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("zz-late.txt") && l.contains("event_to_publish_ms"))
        .unwrap();
    let logged_ms: f64 = line
        .split("event_to_publish_ms=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"));
    // The log line appears after the publish, so the test's clock can only
    // run ahead of the logged figure, by the log pipe and the polling.
    assert!(
        logged_ms + 300.0 >= observed_ms,
        "logged {logged_ms:.0} ms but the file waited about {observed_ms:.0} ms"
    );
    assert!(daemon.terminate().success());
}

/// Point 13: SIGTERM while a hostile file is being parsed ends the daemon
/// well inside the unit's `TimeoutStopSec=20`; the batch is redone at the
/// next start (nothing lost).
#[test]
fn sigterm_during_a_long_parse_stops_promptly() {
    let site = daemon_site("");
    let daemon = site.start();
    site.write(
        "long-parse.md",
        format!("# Tiêu đề\n\n{} x\n", ">".repeat(80_000)),
    );
    site.write(
        "good.txt",
        wire_text("Thời sự", "Tin tốt", &["Nội dung."], "PV"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let status = daemon.terminate();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(15), "SIGTERM took {took:?}");
    // Nothing lost: the good file is there after a restart.
    let daemon = site.start();
    wait_for("good file after restart", WAIT, || {
        site.try_feed("rss.xml")
            .filter(|f| titles(f).contains(&"Tin tốt".to_string()))
    });
    assert!(daemon.terminate().success());
}

/// Point 15: logs written to a pipe carry no colour codes, fields print as
/// plain values, and `log.format = "json"` gives one JSON object per line.
#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    for (format, extra) in [("text", ""), ("json", "[log]\nformat = \"json\"\n")] {
        let site = Site::new(&format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra}"));
        let mut child = Command::new(bin())
            .args(["run", "--config", site.config().to_str().unwrap()])
            .current_dir(site.path())
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut s = String::new();
            let _ = std::io::BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        std::thread::sleep(Duration::from_secs(2));
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let _ = child.wait();
        let log = reader.join().unwrap();
        assert!(log.contains("ready"), "{format}: {log}");
        assert!(
            !log.contains('\u{1b}'),
            "{format}: colour codes in a pipe: {log:?}"
        );
        assert!(
            !log.contains("Some("),
            "{format}: Debug-printed values: {log}"
        );
        if format == "json" {
            for line in log.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(
                    v.get("level").is_some() && v.get("timestamp").is_some(),
                    "{line}"
                );
            }
        }
    }
}

/// Point 2: a document's Last-Modified is when its version was first
/// published, kept across restarts (the catalog records it), and a restart
/// that republishes the same bytes does not move it.
#[test]
fn last_modified_survives_a_restart() {
    let site = daemon_site("[server]\nlisten = \"127.0.0.1:0\"\n");
    n_wire(&site, 2);
    let http = http_client();
    let daemon = site.start();
    let addr = daemon.http_addr();
    let get = |addr: &str| {
        let r = http
            .get(format!("http://{addr}/feeds/rss.xml"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        (
            r.headers()["last-modified"].to_str().unwrap().to_string(),
            r.headers()["etag"].to_str().unwrap().to_string(),
        )
    };
    let first = get(&addr);
    assert!(daemon.terminate().success());
    std::thread::sleep(Duration::from_millis(1100));
    let daemon = site.start();
    let again = get(&daemon.http_addr());
    assert_eq!(
        again, first,
        "same version, same Last-Modified after a restart"
    );
    assert!(daemon.terminate().success());
}
