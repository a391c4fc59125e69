//! `feedwire run` end to end: the real daemon on a temporary folder, files
//! dropped, edited, moved and removed the way editors and sync tools do it,
//! outcomes awaited by polling the published feeds (never fixed sleeps).

use crate::common::*;
use std::io::Write;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn daemon_site(extra: &str) -> Site {
    Site::new(&format!("[watch]\ndebounce_ms = 100\n{extra}"))
}

fn has_title(site: &Site, feed: &str, title: &str) -> bool {
    site.try_feed(feed)
        .is_some_and(|f| titles(&f).iter().any(|t| t == title))
}

const T000: &str =
    "Cụm thi đua các thành phố trực thuộc Trung ương thực hiện hiệu quả công tác Mặt trận";
const T001: &str = "Hà Nội thí điểm tuyến buýt điện kết nối ga đường sắt đô thị với khu dân cư";

#[test]
fn new_edit_delete_flow_through_main_and_category_feeds() {
    let site = daemon_site("");
    let daemon = site.start();

    // New file → main and category feeds.
    let path = site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    wait_for("new article in main feed", WAIT, || {
        has_title(&site, "atom.xml", T000).then_some(())
    });
    wait_for("new article in category feed", WAIT, || {
        has_title(&site, "xay-dung-dang/rss.xml", T000).then_some(())
    });
    let first = site.feed("atom.xml").entries[0].clone();
    wait_for("a log line per processed change", WAIT, || {
        daemon
            .log()
            .lines()
            .any(|l| {
                l.contains("published")
                    && l.contains("000_ee2825b76e43200a.txt")
                    && l.contains("event_to_publish_ms")
            })
            .then_some(())
    });

    // Edit → same id, new updated, one entry.
    std::thread::sleep(Duration::from_millis(1100));
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace(T000, &format!("{T000} (sửa)"));
    std::fs::write(&path, edited).unwrap();
    let new_title = format!("{T000} (sửa)");
    wait_for("edited title", WAIT, || {
        has_title(&site, "atom.xml", &new_title).then_some(())
    });
    let feed = site.feed("atom.xml");
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(feed.entries[0].id, first.id);
    assert_eq!(feed.entries[0].published, first.published);
    assert!(feed.entries[0].updated > first.updated);

    // Delete → gone from both feeds.
    std::fs::remove_file(&path).unwrap();
    wait_for("deleted article gone", WAIT, || {
        site.try_feed("atom.xml")
            .is_some_and(|f| f.entries.is_empty())
            .then_some(())
    });
    wait_for("gone from category", WAIT, || {
        site.try_feed("xay-dung-dang/atom.xml")
            .is_some_and(|f| f.entries.is_empty())
            .then_some(())
    });

    // Move in and out of the folder.
    let outside = site.path().join("staging.txt");
    std::fs::copy(wire("001_ee64584de29b6e91.txt"), &outside).unwrap();
    std::fs::rename(&outside, site.articles().join("001_ee64584de29b6e91.txt")).unwrap();
    wait_for("moved-in article", WAIT, || {
        has_title(&site, "rss.xml", T001).then_some(())
    });
    std::fs::rename(site.articles().join("001_ee64584de29b6e91.txt"), &outside).unwrap();
    wait_for("moved-out article gone", WAIT, || {
        site.try_feed("rss.xml")
            .is_some_and(|f| f.entries.is_empty())
            .then_some(())
    });

    // A whole folder moved in.
    let staged = site.path().join("batch");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::copy(
        wire("002_215819bbd3215a5f.txt"),
        staged.join("002_215819bbd3215a5f.txt"),
    )
    .unwrap();
    std::fs::rename(&staged, site.articles().join("batch")).unwrap();
    wait_for("article in a moved-in folder", WAIT, || {
        site.try_feed("kinh-te/rss.xml")
            .is_some_and(|f| f.entries.len() == 1)
            .then_some(())
    });

    let status = daemon.terminate();
    assert!(status.success(), "SIGTERM must exit 0: {status:?}");
}

/// Save the way editors and sync tools do: write `temp` beside the target in
/// the articles folder, then rename it over `target`.
fn save_through(site: &Site, temp: &str, target: &std::path::Path, contents: &str) {
    let temp = site.articles().join(temp);
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, target).unwrap();
}

#[test]
fn atomic_saves_produce_one_update_and_no_temp_entries() {
    let site = daemon_site("");
    site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    let daemon = site.start();
    wait_for("initial article", WAIT, || {
        has_title(&site, "rss.xml", T000).then_some(())
    });
    let target = site.articles().join("000_ee2825b76e43200a.txt");
    let text = std::fs::read_to_string(&target).unwrap();

    // vim: probe file 4913, swap file, write to a backup then rename over.
    std::fs::write(site.articles().join("4913"), "").unwrap();
    std::fs::remove_file(site.articles().join("4913")).unwrap();
    std::fs::write(
        site.articles().join(".000_ee2825b76e43200a.txt.swp"),
        b"\x00\x01swap",
    )
    .unwrap();
    let vim_title = format!("{T000} (vim)");
    std::fs::write(site.articles().join("000_ee2825b76e43200a.txt~"), &text).unwrap();
    save_through(
        &site,
        ".000_ee2825b76e43200a.txt.tmp",
        &target,
        &text.replace(T000, &vim_title),
    );
    wait_for("vim save", WAIT, || {
        has_title(&site, "rss.xml", &vim_title).then_some(())
    });

    // rsync: .name.XXXXXX temp file renamed into place.
    let rsync_title = format!("{T000} (rsync)");
    save_through(
        &site,
        ".000_ee2825b76e43200a.txt.Ab12Cd",
        &target,
        &text.replace(T000, &rsync_title),
    );
    wait_for("rsync save", WAIT, || {
        has_title(&site, "rss.xml", &rsync_title).then_some(())
    });

    let feed = site.feed("rss.xml");
    assert_eq!(
        titles(&feed),
        vec![rsync_title],
        "exactly one entry, no temp files"
    );
    let log = daemon.log();
    for leftover in ["4913", ".swp", "txt~", ".tmp", "Ab12Cd"] {
        assert!(
            !log.contains(&format!("{leftover} rejected"))
                && !log
                    .lines()
                    .any(|l| l.contains("rejected") && l.contains(leftover)),
            "{leftover} was processed:\n{log}"
        );
    }
    let published_lines = || {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("published") && l.contains("000_ee2825b76e43200a.txt"))
            .count()
    };
    wait_for("log lines of both saves", WAIT, || {
        (published_lines() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(published_lines(), 2, "one update per save:\n{log}");
    std::fs::remove_file(site.articles().join(".000_ee2825b76e43200a.txt.swp")).unwrap();
}

#[test]
fn a_slowly_written_file_is_published_only_complete() {
    let site = daemon_site("");
    let _daemon = site.start();
    let text = std::fs::read(wire("000_ee2825b76e43200a.txt")).unwrap();
    let path = site.articles().join("000_ee2825b76e43200a.txt");
    let mut file = std::fs::File::create(&path).unwrap();
    // Chunks with pauses well over the debounce, the file held open throughout
    // like a slow network copy.
    let chunks: Vec<&[u8]> = text.chunks(text.len() / 5 + 1).collect();
    for chunk in &chunks {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(400));
        if let Some(feed) = site.try_feed("rss.xml") {
            assert!(
                feed.entries.is_empty(),
                "published while still being written"
            );
        }
    }
    drop(file);
    wait_for("complete article", WAIT, || {
        has_title(&site, "atom.xml", T000).then_some(())
    });
    let atom = std::fs::read_to_string(site.feeds().join("atom.xml")).unwrap();
    assert!(
        atom.contains("góp ý xây dựng Đảng, xây dựng chính quyền"),
        "the last paragraph is missing:\n{}",
        _daemon.log()
    );
}

/// 2,000 wire files in one go: every one ends up published once.
#[test]
fn a_burst_of_two_thousand_files_is_all_published() {
    let site = daemon_site("[feeds]\nmax_items = 2500\nmax_bytes = 67108864\n");
    let daemon = site.start();
    let staging = site.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    for i in 0..2000 {
        let text = wire_text(
            "Thời sự",
            &format!("Tin nhanh số {i}"),
            &["Nội dung bản tin.", "Đoạn cuối"],
            "Phóng viên",
        );
        std::fs::write(staging.join(format!("{i:04}_burst.txt")), text).unwrap();
    }
    for i in 0..2000 {
        let name = format!("{i:04}_burst.txt");
        std::fs::rename(staging.join(&name), site.articles().join(&name)).unwrap();
    }
    let feed = wait_for("2000 entries", Duration::from_secs(180), || {
        site.try_feed("thoi-su/atom.xml")
            .filter(|f| f.entries.len() == 2000)
    });
    let mut ids = ids(&feed);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "each article exactly once");
    assert!(daemon.terminate().success());
}

#[test]
fn restart_reconciles_changes_made_while_stopped() {
    let site = daemon_site("");
    site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    site.add_wire("001_ee64584de29b6e91.txt", "001_ee64584de29b6e91.txt");
    let daemon = site.start();
    wait_for("two articles", WAIT, || {
        site.try_feed("rss.xml").filter(|f| f.entries.len() == 2)
    });
    let before = site.feed("atom.xml");
    assert!(daemon.terminate().success());

    // While stopped: one removed, one edited, one added.
    std::fs::remove_file(site.articles().join("001_ee64584de29b6e91.txt")).unwrap();
    let p = site.articles().join("000_ee2825b76e43200a.txt");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace(T000, "Tiêu đề đã sửa"),
    )
    .unwrap();
    site.add_wire("002_215819bbd3215a5f.txt", "002_215819bbd3215a5f.txt");

    let daemon = site.start();
    let feed = site.feed("atom.xml");
    let mut t = titles(&feed);
    t.sort();
    assert_eq!(
        t,
        vec![
            "Tiêu đề đã sửa",
            "Xuất khẩu thanh long sang Nhật Bản tăng mạnh nhờ chuẩn hóa vùng trồng"
        ]
    );
    let kept = feed
        .entries
        .iter()
        .find(|e| e.id.ends_with("000_ee2825b76e43200a"))
        .unwrap();
    let orig = before
        .entries
        .iter()
        .find(|e| e.id.ends_with("000_ee2825b76e43200a"))
        .unwrap();
    assert_eq!(
        kept.published, orig.published,
        "published survives restarts and edits"
    );
    assert!(
        site.try_feed("thoi-su/rss.xml")
            .is_none_or(|f| f.entries.is_empty())
    );
    // A restart over unchanged files reads none of them.
    assert!(daemon.terminate().success());
    let daemon = site.start();
    let log = daemon.log();
    let ready = log.lines().find(|l| l.contains("ready")).unwrap();
    assert!(
        ready.contains("changed=0") && ready.contains("unchanged=2"),
        "{ready}"
    );
}

/// kill -9 in the middle of a burst, restart: every article exactly once, ids
/// and published dates unchanged.
#[test]
fn kill_nine_mid_burst_then_restart_converges() {
    let site = daemon_site("[feeds]\nmax_items = 1000\nmax_bytes = 67108864\n");
    let daemon = site.start();
    for i in 0..300 {
        let text = wire_text(
            "Kinh tế",
            &format!("Tin kinh tế {i}"),
            &["Nội dung.", "Hết"],
            "Phóng viên",
        );
        std::fs::write(site.articles().join(format!("{i:03}_k.txt")), text).unwrap();
        if i == 150 {
            // Let some of the burst land, then pull the plug mid-stream.
            wait_for("first part published", WAIT, || {
                site.try_feed("rss.xml").filter(|f| !f.entries.is_empty())
            });
        }
    }
    daemon.kill9();
    let partial = site
        .try_feed("atom.xml")
        .expect("feeds on disk are complete documents after kill -9");
    let published_before: std::collections::HashMap<String, _> = partial
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.published))
        .collect();

    let daemon = site.start();
    let feed = wait_for("all 300 after restart", WAIT, || {
        site.try_feed("atom.xml").filter(|f| f.entries.len() == 300)
    });
    let mut all = ids(&feed);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 300, "none lost, none twice");
    for e in &feed.entries {
        if let Some(p) = published_before.get(&e.id) {
            assert_eq!(&e.published, p, "{} published date moved", e.id);
        }
    }
    assert!(daemon.terminate().success());
}

#[test]
fn a_bad_file_is_logged_once_and_never_stops_the_daemon() {
    let site = daemon_site("");
    let daemon = site.start();
    site.write("broken.md", "---\ntitle: [oops\n---\nbody\n");
    site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    wait_for("good article despite a bad one", WAIT, || {
        has_title(&site, "rss.xml", T000).then_some(())
    });
    wait_for("rejection logged", WAIT, || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("broken.md") && l.contains("rejected"))
            .then_some(())
    });
    let status = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("broken.md") && text.contains("front matter"),
        "{text}"
    );
    assert!(text.contains("articles  1 in the catalog"), "{text}");
    assert!(daemon.terminate().success());
}

/// A batch that fails (here: a category folder under `feeds/` is blocked by a
/// plain file, so its feeds cannot be written) is logged and retried; once the
/// obstacle is gone the daemon recovers on its own, without a restart.
#[test]
fn a_failed_publish_is_retried_until_it_succeeds() {
    let site = daemon_site("");
    let daemon = site.start();
    std::fs::write(site.feeds().join("xa-hoi"), "not a folder").unwrap();
    site.write(
        "a.txt",
        wire_text("Xã hội", "Tin bị chặn", &["Nội dung."], "Phóng viên"),
    );
    wait_for("the failure logged", WAIT, || {
        daemon
            .log()
            .contains("could not process changes")
            .then_some(())
    });
    assert!(site.try_feed("xa-hoi/rss.xml").is_none());
    std::fs::remove_file(site.feeds().join("xa-hoi")).unwrap();
    wait_for("recovered without a restart", WAIT, || {
        (has_title(&site, "xa-hoi/rss.xml", "Tin bị chặn")
            && has_title(&site, "rss.xml", "Tin bị chặn"))
        .then_some(())
    });
    // The log line follows the publish it reports.
    wait_for("recovery logged", WAIT, || {
        daemon.log().contains("recovered").then_some(())
    });
    // Later events are handled as usual.
    site.write(
        "b.txt",
        wire_text("Xã hội", "Tin sau đó", &["Nội dung."], "Phóng viên"),
    );
    wait_for("a later article", WAIT, || {
        has_title(&site, "xa-hoi/atom.xml", "Tin sau đó").then_some(())
    });
    assert!(daemon.terminate().success());
}

/// If the pipeline cannot run at all (here the start-up publish cannot replace
/// `feeds/rss.xml`, a folder), the daemon exits non-zero naming the reason,
/// so a supervisor notices; it does not linger serving feeds that never move.
#[test]
fn a_pipeline_that_cannot_start_stops_the_daemon_with_the_reason() {
    let site = daemon_site("");
    std::fs::create_dir_all(site.feeds().join("rss.xml").join("x")).unwrap();
    let out = site.cli(&["run", "--config", site.config().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the pipeline stopped"), "{err}");
    assert!(
        err.contains("rss.xml") && err.contains("Is a directory"),
        "{err}"
    );
}

/// The daemon's own HTTP server follows the folder: a dropped article changes
/// the served feed and its ETag; the old validator then gets a 200, the new a 304.
#[test]
fn served_feed_follows_the_folder_over_http() {
    let site = daemon_site("[server]\nenabled = true\nlisten = \"127.0.0.1:0\"\n");
    site.add_wire("001_ee64584de29b6e91.txt", "001_ee64584de29b6e91.txt");
    let daemon = site.start();
    let base = format!("http://{}", daemon.http_addr());
    let http = http_client();
    let get = |path: &str| http.get(format!("{base}{path}")).send().unwrap();
    assert_eq!(get("/healthz").status(), 200);
    let first = get("/feeds/rss.xml");
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body = first.bytes().unwrap();
    assert_eq!(
        body.as_ref(),
        std::fs::read(site.feeds().join("rss.xml"))
            .unwrap()
            .as_slice()
    );
    // HTTP-04: the validator gives a 304.
    let again = http
        .get(format!("{base}/feeds/rss.xml"))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);

    site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    let changed = wait_for("served feed changes", WAIT, || {
        let r = http
            .get(format!("{base}/feeds/rss.xml"))
            .header("If-None-Match", &etag)
            .send()
            .unwrap();
        (r.status() == 200).then_some(r)
    });
    let new_etag = changed.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let feed = parse_feed(&changed.bytes().unwrap());
    let mut got = titles(&feed);
    got.sort();
    assert_eq!(got, vec![T000.to_string(), T001.to_string()]);
    // The article page is the entry link.
    let page = get("/articles/000_ee2825b76e43200a").text().unwrap();
    assert!(page.contains(T000));
    assert!(daemon.terminate().success());
}

/// `paths.articles` spelled with `..` (relative to the config): the watcher
/// reports unresolved absolute paths, which must still map to catalog keys.
#[test]
fn an_articles_path_with_dot_dot_is_watched() {
    let site = daemon_site("[paths]\narticles = \"sub/../wire\"\n");
    std::fs::create_dir_all(site.path().join("sub")).unwrap();
    std::fs::create_dir_all(site.path().join("wire")).unwrap();
    let daemon = site.start();
    let staged = site.path().join("staged.txt");
    std::fs::copy(wire("000_ee2825b76e43200a.txt"), &staged).unwrap();
    std::fs::rename(&staged, site.path().join("wire/000_ee2825b76e43200a.txt")).unwrap();
    wait_for("article in a ..-spelled folder", WAIT, || {
        has_title(&site, "rss.xml", T000).then_some(())
    });
    assert!(daemon.terminate().success());
}
