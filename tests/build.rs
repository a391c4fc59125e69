//! `feedwire build` and `feedwire check` end to end: the real binary on a
//! temporary site, every output parsed back with feed-rs and checked field by
//! field.

use crate::common::*;
use std::collections::{BTreeMap, HashMap};

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(corpus().join("EXPECTED.json")).unwrap()).unwrap()
}

/// A site holding the whole corpus, with limits high enough that every
/// article is in the main feed.
fn corpus_site() -> Site {
    let site = Site::new("[feeds]\nmax_items = 100\n");
    for sub in ["wire", "markdown"] {
        let dir = site.articles().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(corpus().join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    site
}

fn entry_id(id: &str) -> String {
    if id.starts_with("urn:") {
        id.to_string()
    } else {
        format!("tag:test.example,2026:articles/{id}")
    }
}

#[test]
fn whole_corpus_builds_valid_feeds_with_every_article_once() {
    let site = corpus_site();
    let out = site.build();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("31 articles in the catalog"), "{stdout}");
    let exp = expected();
    let files = exp["files"].as_array().unwrap();

    for format in ["rss.xml", "atom.xml", "feed.json"] {
        let feed = site.feed(format);
        assert_eq!(feed.entries.len(), 31, "{format}");
        // ATOM-15 / RSS-14: ids unique within the feed.
        let mut seen = std::collections::HashSet::new();
        for id in ids(&feed) {
            assert!(seen.insert(id.clone()), "{format}: duplicate id {id}");
        }
        let by_id: HashMap<String, &feed_rs::model::Entry> =
            feed.entries.iter().map(|e| (e.id.clone(), e)).collect();
        for f in files {
            let id = entry_id(f["id"].as_str().unwrap());
            let entry = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("{format}: {id} missing"));
            assert_eq!(
                entry.title.as_ref().unwrap().content,
                f["title"].as_str().unwrap(),
                "{format} {id} title"
            );
            // Full content is present and carries the body.
            let content = entry
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .or_else(|| entry.summary.as_ref().map(|s| s.content.clone()))
                .unwrap_or_default();
            assert!(content.len() > 100, "{format} {id}: content missing");
            if let Some(prefix) = f["first_paragraph_prefix"].as_str() {
                let prefix = prefix
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                assert!(
                    content.contains(&prefix)
                        || content.contains(f["first_paragraph_prefix"].as_str().unwrap()),
                    "{format} {id}: body lacks its first paragraph"
                );
            }
            let authors: Vec<String> = entry
                .authors
                .iter()
                .filter_map(|p| p.name.clone())
                .collect();
            let want: Vec<String> = f["authors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            // feed-rs lets JSON Feed items inherit the feed's author.
            let inherited = format == "feed.json" && want.is_empty() && authors == ["feedwire"];
            assert!(
                authors == want || inherited,
                "{format} {id} authors: {authors:?} != {want:?}"
            );
            // Dates: front-matter dates exactly, with their offset.
            let published = entry
                .published
                .unwrap_or_else(|| panic!("{format} {id}: no published date"));
            if let Some(p) = f["published"].as_str() {
                let want = chrono::DateTime::parse_from_rfc3339(p).unwrap();
                assert_eq!(published, want, "{format} {id} published");
            }
            if let Some(u) = f["updated"].as_str()
                && format != "rss.xml"
            {
                let want = chrono::DateTime::parse_from_rfc3339(u).unwrap();
                assert_eq!(entry.updated.unwrap(), want, "{format} {id} updated");
            }
            // Categories (JSON Feed carries them as tags).
            let terms: Vec<String> = entry
                .categories
                .iter()
                .map(|c| c.label.clone().unwrap_or(c.term.clone()))
                .collect();
            if let Some(cat) = f["category"].as_str() {
                assert!(
                    terms.iter().any(|t| t == cat),
                    "{format} {id}: category {cat} not in {terms:?}"
                );
            }
        }
    }

    // Every article is in each of its category feeds exactly once.
    let mut by_category: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files {
        let cats: Vec<String> = match f["categories"].as_array() {
            Some(list) => list
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect(),
            None => vec![f["category"].as_str().unwrap().to_string()],
        };
        for c in cats {
            by_category
                .entry(feedwire::article::category_slug(&c))
                .or_default()
                .push(entry_id(f["id"].as_str().unwrap()));
        }
    }
    assert!(by_category.contains_key("xay-dung-dang"));
    for (slug, mut want) in by_category {
        for format in ["rss.xml", "atom.xml", "feed.json"] {
            let feed = site.feed(&format!("{slug}/{format}"));
            let mut got = ids(&feed);
            got.sort();
            want.sort();
            assert_eq!(got, want, "{slug}/{format}");
        }
    }
    // The OPML lists every feed.
    let opml = std::fs::read_to_string(site.feeds().join("index.opml")).unwrap();
    assert!(opml.contains("http://127.0.0.1:8080/feeds/xay-dung-dang/rss.xml"));
    assert!(opml.contains("Xây dựng Đảng"));
}

#[test]
fn rss_dates_and_structure_follow_the_profile() {
    let site = corpus_site();
    site.build();
    let rss = std::fs::read_to_string(site.feeds().join("rss.xml")).unwrap();
    // RSS-16: RFC 822 with two-digit day, four-digit year, numeric zone.
    let re = regex::Regex::new(r"<pubDate>(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}</pubDate>").unwrap();
    assert_eq!(re.find_iter(&rss).count(), 31);
    assert!(rss.contains("<pubDate>Sun, 15 Sep 2024 19:30:00 +0700</pubDate>"));
    // RSS-22: names go in dc:creator; no <author> without an e-mail.
    assert!(!rss.contains("<author>"));
    assert!(rss.contains("<dc:creator>Ngọc Thiện</dc:creator>"));
    // RSS-04 self link, RSS-15 non-permalink guid.
    assert!(rss.contains(r#"<atom:link href="http://127.0.0.1:8080/feeds/rss.xml" rel="self" type="application/rss+xml"/>"#));
    assert!(rss.contains(
        r#"<guid isPermaLink="false">tag:test.example,2026:articles/000_ee2825b76e43200a</guid>"#
    ));
    // Images become an enclosure and media:content.
    assert!(rss.contains(r#"<enclosure url="https://example.com/images/hoi-an-trung-thu.jpg" length="0" type="image/jpeg"/>"#));
    assert!(rss.contains("media:content"));
    // RSS-19: description before content:encoded.
    let item = &rss[rss.find("<item>").unwrap()..];
    assert!(item.find("<description>").unwrap() < item.find("<content:encoded>").unwrap());
    // Captions are figures, not body text.
    let atom = std::fs::read_to_string(site.feeds().join("atom.xml")).unwrap();
    assert!(atom.contains("&lt;figure&gt;&lt;figcaption&gt;Quang cảnh hội nghị. (Ảnh: TTXVN phát)&lt;/figcaption&gt;&lt;/figure&gt;"));
    // "Xem thêm" is dropped.
    assert!(!atom.contains("Xem thêm"));
}

#[test]
fn rebuilds_are_byte_identical_and_keep_ids_and_dates() {
    let site = corpus_site();
    site.build();
    let snapshot = |name: &str| std::fs::read(site.feeds().join(name)).unwrap();
    let first: Vec<Vec<u8>> = ["rss.xml", "atom.xml", "feed.json", "index.opml"]
        .iter()
        .map(|n| snapshot(n))
        .collect();
    let mtime = std::fs::metadata(site.feeds().join("rss.xml"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = site.build();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 feed documents written"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let second: Vec<Vec<u8>> = ["rss.xml", "atom.xml", "feed.json", "index.opml"]
        .iter()
        .map(|n| snapshot(n))
        .collect();
    assert_eq!(
        first, second,
        "an unchanged rebuild must give identical bytes"
    );
    assert_eq!(
        std::fs::metadata(site.feeds().join("rss.xml"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime,
        "unchanged feeds are not rewritten"
    );

    // Deleting the catalog-free outputs and rebuilding from the catalog gives the same feeds.
    std::fs::remove_dir_all(site.feeds()).unwrap();
    site.build();
    assert_eq!(snapshot("rss.xml"), first[0]);
}

#[test]
fn an_edit_keeps_id_and_published_and_moves_updated() {
    let site = Site::new("");
    let path = site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    site.add_wire("001_ee64584de29b6e91.txt", "001_ee64584de29b6e91.txt");
    site.build();
    let before = site.feed("atom.xml");
    let id = "tag:test.example,2026:articles/000_ee2825b76e43200a";
    let e0 = before.entries.iter().find(|e| e.id == id).unwrap().clone();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "Cụm thi đua các thành phố trực thuộc Trung ương thực hiện hiệu quả công tác Mặt trận",
        "Cụm thi đua các thành phố trực thuộc Trung ương thực hiện hiệu quả công tác Mặt trận (cập nhật)",
    );
    std::fs::write(&path, text).unwrap();
    site.build();
    let after = site.feed("atom.xml");
    assert_eq!(after.entries.len(), 2, "an edit never adds a second entry");
    let e1 = after.entries.iter().find(|e| e.id == id).unwrap();
    assert!(e1.title.as_ref().unwrap().content.ends_with("(cập nhật)"));
    assert_eq!(e1.published, e0.published, "published never moves");
    assert!(
        e1.updated.unwrap() > e0.updated.unwrap(),
        "updated moves on an edit"
    );
    // The other article is untouched.
    let other = |f: &feed_rs::model::Feed| {
        f.entries
            .iter()
            .find(|e| e.id.ends_with("001_ee64584de29b6e91"))
            .unwrap()
            .updated
    };
    assert_eq!(other(&before), other(&after));

    // Re-saving the same text with CRLF line endings is not an edit.
    let crlf = std::fs::read_to_string(&path)
        .unwrap()
        .replace('\n', "\r\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&path, crlf).unwrap();
    site.build();
    let again = site.feed("atom.xml");
    assert_eq!(
        again.entries.iter().find(|e| e.id == id).unwrap().updated,
        e1.updated
    );

    // Deleting the file kills the article: restoring the file does not
    // bring it back until an editor reinstates it; then it has the same
    // published date (identity outlives the file).
    let saved = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    site.build();
    assert_eq!(site.feed("atom.xml").entries.len(), 1);
    std::fs::write(&path, saved).unwrap();
    site.build();
    assert_eq!(
        site.feed("atom.xml").entries.len(),
        1,
        "a killed id is not published again by restoring its file"
    );
    let short = id.rsplit('/').next().unwrap();
    let out = site.cli(&[
        "reinstate",
        short,
        "--config",
        site.config().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.build();
    let restored = site.feed("atom.xml");
    assert_eq!(
        restored
            .entries
            .iter()
            .find(|e| e.id == id)
            .unwrap()
            .published,
        e0.published
    );
}

/// Bad input: one clear error naming the file and the reason; the good
/// article still publishes; nothing bad reaches a feed.
#[test]
fn bad_files_are_rejected_with_a_reason_and_the_rest_publishes() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"  \n\n \t\n", "empty"),
        (
            "binary.txt",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
            "binary",
        ),
        (
            "damaged.txt",
            b"Th\xe1\xbb\x9di s\xe1\xbb\xb1\n\nTi\xeau \xe1\xba\xa1 \x81 \xff\xfe\n\nabc",
            "UTF-8",
        ),
        (
            "broken-yaml.md",
            b"---\ntitle: [unclosed\ndate: 2024-01-01\n---\nbody\n",
            "front matter",
        ),
        (
            "unclosed.md",
            b"---\ntitle: x\n\nbody without a closing line\n",
            "front matter",
        ),
        (
            "bad-date.md",
            b"---\ntitle: x\ndate: not-a-date\n---\nbody\n",
            "date",
        ),
        (
            "absurd-date.md",
            b"---\ntitle: x\ndate: 1066-10-14T09:00:00+00:00\n---\nbody\n",
            "date",
        ),
        (
            "future-date.md",
            b"---\ntitle: x\ndate: 2999-01-01T00:00:00+07:00\n---\nbody\n",
            "date",
        ),
        (
            "no-title.md",
            b"just a paragraph, no heading, no front matter\n",
            "title",
        ),
    ];
    let site = Site::new("[ingest]\nmax_bytes = 20000\n");
    site.add_wire("000_ee2825b76e43200a.txt", "000_ee2825b76e43200a.txt");
    for (name, bytes, _) in cases {
        site.write(name, bytes);
    }
    site.write(
        "huge.txt",
        "Thời sự\n\nTiêu đề\n\n".to_string() + &"Đoạn văn dài. ".repeat(3000),
    );
    // Two files claiming one id: the second (by path order) is refused.
    site.write(
        "a-first.md",
        "---\ntitle: Bài một\nid: same-id\ndate: 2025-01-01T08:00:00+07:00\n---\nMột.\n",
    );
    site.write(
        "b-second.md",
        "---\ntitle: Bài hai\nid: same-id\ndate: 2025-01-02T08:00:00+07:00\n---\nHai.\n",
    );
    let out = site.cli(&["build", "--config", site.config().to_str().unwrap()]);
    assert!(out.status.success(), "rejections must not fail the build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, _, reason) in cases {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("articles/{name}:")))
            .unwrap_or_else(|| panic!("no error line for {name}:\n{stderr}"));
        assert!(
            line.to_lowercase().contains(&reason.to_lowercase()),
            "{name}: {line}"
        );
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.contains(&format!("articles/{name}:")))
                .count(),
            1,
            "one line per file"
        );
    }
    let huge = stderr
        .lines()
        .find(|l| l.contains("huge.txt"))
        .expect("huge.txt rejected");
    assert!(huge.contains("max_bytes"), "{huge}");
    let dup = stderr
        .lines()
        .find(|l| l.contains("b-second.md"))
        .expect("duplicate rejected");
    assert!(
        dup.contains("duplicate id `same-id`") && dup.contains("a-first.md"),
        "{dup}"
    );

    let feed = site.feed("rss.xml");
    let mut got = titles(&feed);
    got.sort();
    assert_eq!(
        got,
        vec![
            "Bài một",
            "Cụm thi đua các thành phố trực thuộc Trung ương thực hiện hiệu quả công tác Mặt trận"
        ]
    );

    // `status` lists the rejected files with their reasons.
    let status = site.cli(&["status", "--config", site.config().to_str().unwrap()]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("rejected  12 file(s)"), "{status}");
    assert!(status.contains("binary.txt"));

    // Once the first file goes, the duplicate is accepted.
    std::fs::remove_file(site.articles().join("a-first.md")).unwrap();
    site.build();
    assert!(titles(&site.feed("rss.xml")).contains(&"Bài hai".to_string()));
}

#[test]
fn hostile_text_yields_feeds_that_parse() {
    let site = Site::new("");
    let body = wire_text(
        "Thời sự",
        "Tiêu đề có ]]> và <script>alert(1)</script> & ký tự \u{b}lạ",
        &[
            "Nội dung có ]]> giữa câu, <script>alert('x')</script> và & cùng \u{b} ký tự điều khiển \u{fffe}.",
            "Đoạn hai <b>đậm</b> &amp; hết",
        ],
        "Phóng viên",
    );
    site.write("hostile.txt", body);
    site.write(
        "hostile-markdown.md",
        "---\ntitle: \"A ]]> B <i>C</i> & D\"\ndate: 2025-01-01T08:00:00+07:00\n---\n\n<script>alert(1)</script><a href=\"javascript:alert(1)\" onclick=\"x()\">link</a> ]]> &nbsp; text\n",
    );
    site.build();
    for name in ["rss.xml", "atom.xml", "feed.json", "thoi-su/rss.xml"] {
        let feed = site.feed(name);
        assert!(!feed.entries.is_empty(), "{name}");
        let raw = std::fs::read_to_string(site.feeds().join(name)).unwrap();
        assert!(
            !raw.contains('\u{b}') && !raw.contains('\u{fffe}'),
            "{name}: control characters leaked"
        );
        if name.ends_with(".json") {
            // Titles are plain text in JSON; only the HTML must be free of scripts.
            let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
            for item in v["items"].as_array().unwrap() {
                assert!(
                    !item["content_html"].as_str().unwrap().contains("<script"),
                    "{name}: script in HTML"
                );
            }
        } else {
            assert!(
                !raw.to_lowercase().contains("<script"),
                "{name}: raw script element"
            );
        }
        assert!(!raw.contains("javascript:"), "{name}: javascript URL");
        assert!(!raw.contains("onclick"), "{name}: event handler");
    }
    let feed = site.feed("atom.xml");
    let t = titles(&feed);
    assert!(
        t.contains(&"Tiêu đề có ]]> và <script>alert(1)</script> & ký tự lạ".to_string()),
        "{t:?}"
    );
    assert!(t.contains(&"A ]]> B <i>C</i> & D".to_string()), "{t:?}");
}

#[test]
fn size_cap_leaves_out_the_oldest_entries() {
    let site = Site::new("[feeds]\nmax_bytes = 8192\n");
    for i in 0..20 {
        let text = format!(
            "---\ntitle: Bài số {i}\ndate: 2025-01-{:02}T08:00:00+07:00\n---\n{}\n",
            i + 1,
            "Nội dung rất dài. ".repeat(40)
        );
        site.write(&format!("bai-{i:02}.md"), text);
    }
    site.build();
    for name in ["rss.xml", "atom.xml", "feed.json"] {
        let bytes = std::fs::metadata(site.feeds().join(name)).unwrap().len();
        assert!(bytes <= 8192, "{name} is {bytes} bytes");
        let feed = site.feed(name);
        let t = titles(&feed);
        assert!(t.len() >= 2 && t.len() < 20, "{name}: {} entries", t.len());
        // The newest stay; the oldest are left out.
        assert_eq!(t[0], "Bài số 19");
        assert!(!t.contains(&"Bài số 0".to_string()));
    }
}

#[test]
fn ignored_files_links_and_multiple_categories() {
    let site = Site::new("");
    site.write(
        "multi.md",
        "---\ntitle: Hai chuyên mục\ncategories: [\"Thời sự\", \"Đô thị\"]\ndate: 2025-01-01T08:00:00+07:00\n---\nNội dung.\n",
    );
    site.write(".hidden.md", "---\ntitle: hidden\n---\nx\n");
    site.write("multi.md.swp", "garbage");
    site.write("multi.md~", "---\ntitle: backup\n---\nx\n");
    site.write("notes.tmp", "x");
    let outside = site.path().join("outside.md");
    std::fs::write(&outside, "---\ntitle: Bên ngoài\n---\nx\n").unwrap();
    std::os::unix::fs::symlink(&outside, site.articles().join("link.md")).unwrap();
    let out = site.build();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 articles in the catalog"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(titles(&site.feed("rss.xml")), vec!["Hai chuyên mục"]);
    assert_eq!(
        titles(&site.feed("thoi-su/rss.xml")),
        vec!["Hai chuyên mục"]
    );
    assert_eq!(
        titles(&site.feed("do-thi/atom.xml")),
        vec!["Hai chuyên mục"]
    );
}

#[test]
fn check_json_matches_expected_for_every_corpus_file() {
    let exp = expected();
    let files: Vec<String> = exp["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            corpus()
                .join(f["file"].as_str().unwrap())
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["check", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = std::process::Command::new(bin())
        .args(&args)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 31);
    for (got, want) in lines.iter().zip(exp["files"].as_array().unwrap()) {
        let file = want["file"].as_str().unwrap();
        assert_eq!(got["ok"], true, "{file}");
        assert!(got["file"].as_str().unwrap().ends_with(file));
        for key in ["format", "id", "title", "category", "authors"] {
            assert_eq!(got[key], want[key], "{file}: {key}");
        }
        if want["format"] == "wire" {
            for key in ["dateline", "captions", "paragraphs", "see_more", "encoding"] {
                assert_eq!(got[key], want[key], "{file}: {key}");
            }
            let lead_prefix: Option<String> =
                got["lead"].as_str().map(|l| l.chars().take(60).collect());
            assert_eq!(
                lead_prefix.as_deref(),
                want["lead_prefix"].as_str(),
                "{file}: lead"
            );
        } else {
            for key in [
                "published",
                "updated",
                "tags",
                "categories",
                "image",
                "front_matter",
            ] {
                assert_eq!(got[key], want[key], "{file}: {key}");
            }
            assert_eq!(got["lead"], want["summary"], "{file}: summary");
        }
    }

    // A failing file: exit 1, ok=false, the reason.
    let bad = tempfile::NamedTempFile::with_suffix(".txt").unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--json", bad.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("empty"));

    // The human form shows what was understood.
    let out = std::process::Command::new(bin())
        .args([
            "check",
            corpus()
                .join("wire/000_ee2825b76e43200a.txt")
                .to_str()
                .unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Ngọc Thiện")
            && text.contains("10 paragraphs, 2 captions")
            && text.contains("Cần Thơ"),
        "{text}"
    );
}

#[test]
fn a_bad_config_names_the_key() {
    let site = Site::new("[feeds]\nmax_items = 0\n");
    let out = site.cli(&["build", "--config", site.config().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("feeds.max_items"), "{err}");
    let out = site.cli(&["build", "--config", "/nonexistent/config.toml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}
