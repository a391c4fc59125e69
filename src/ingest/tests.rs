//! End-to-end tests of [`parse`]: bytes and a file name in, article or error out.
//!
//! File-shaped cases (broken and hostile files, encodings, deep nesting,
//! floods) live in `testdata/`, one input per file with its expected outcome
//! beside it in `NAME.expect`, and [`testdata`] walks them all. The tests
//! below cover relations between inputs and sweeps over generated ones.

use super::text;
use super::*;
use crate::article::Format;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value as Json;
use std::path::Path;

fn opts() -> IngestOptions {
    IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 4 << 20,
        now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        limits: Default::default(),
    }
}

fn ok(name: &str, bytes: &[u8]) -> Article {
    parse(name, bytes, &opts()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const WIRE: &str = "Thời sự\n\nHà Nội mở tuyến buýt mới\n\nHà Nội\n\nLead của bài.\n\nTTXVN - Đoạn một.\n\nẢnh minh họa. (Ảnh: TTXVN)\n\nĐoạn hai./.\n\nHoài Nam\n";

const MD_YAML: &str = "---\ntitle: Test\ndate: 2024-09-15T19:30:00+07:00\n---\n\nBody.\n";

#[test]
fn date_within_a_day_of_now_is_accepted() {
    let a = ok(
        "a.md",
        b"---\ntitle: A\ndate: 2026-01-01T23:00:00Z\n---\nBody\n",
    );
    assert_eq!(
        a.published.unwrap().to_rfc3339(),
        "2026-01-01T23:00:00+00:00"
    );
}

#[test]
fn dates() {
    // (front matter, expected published, expected updated)
    let cases = [
        (
            "---\ntitle: A\ndate: \"2024-09-15T19:30:00+07:00\"\n---\n",
            Some("2024-09-15T19:30:00+07:00"),
            None,
        ),
        (
            "---\ntitle: A\ndate: 2024-09-15T12:30:00Z\n---\n",
            Some("2024-09-15T12:30:00+00:00"),
            None,
        ),
        (
            "---\ntitle: A\npublished: 2024-09-15T19:30:00+07:00\n---\n",
            Some("2024-09-15T19:30:00+07:00"),
            None,
        ),
        // Offset-less and bare dates are read in the configured zone.
        (
            "---\ntitle: A\ndate: 2024-09-15 19:30\n---\n",
            Some("2024-09-15T19:30:00+07:00"),
            None,
        ),
        (
            "---\ntitle: A\ndate: 2024-09-15\n---\n",
            Some("2024-09-15T00:00:00+07:00"),
            None,
        ),
        (
            "+++\ntitle = \"A\"\ndate = 2024-09-15T19:30:00\n+++\n",
            Some("2024-09-15T19:30:00+07:00"),
            None,
        ),
        (
            "+++\ntitle = \"A\"\ndate = 2024-09-15\n+++\n",
            Some("2024-09-15T00:00:00+07:00"),
            None,
        ),
        (
            "+++\ntitle = \"A\"\ndate = \"2024-09-15T19:30:00+07:00\"\n+++\n",
            Some("2024-09-15T19:30:00+07:00"),
            None,
        ),
        // `updated` before `published` is clamped to `published`.
        (
            "---\ntitle: A\ndate: 2024-09-15T19:30:00+07:00\nupdated: 2024-09-14T00:00:00+07:00\n---\n",
            Some("2024-09-15T19:30:00+07:00"),
            Some("2024-09-15T19:30:00+07:00"),
        ),
        (
            "---\ntitle: A\nupdated: 2024-09-14T00:00:00+07:00\n---\n",
            None,
            Some("2024-09-14T00:00:00+07:00"),
        ),
    ];
    for (fm, published, updated) in cases {
        let a = ok("a.md", format!("{fm}\nBody.\n").as_bytes());
        assert_eq!(
            a.published.map(|d| d.to_rfc3339()).as_deref(),
            published,
            "{fm}"
        );
        assert_eq!(
            a.updated.map(|d| d.to_rfc3339()).as_deref(),
            updated,
            "{fm}"
        );
        if let Some(p) = published {
            assert_eq!(
                a.published.unwrap(),
                DateTime::parse_from_rfc3339(p).unwrap(),
                "{fm}"
            );
        }
    }
}

#[test]
fn markdown_fields() {
    let src = "---\ntitle: \"  A   title\\n split \"\nid: my-id\nauthor: Ann\nauthors: [Bob, Ann]\ncategory: News\ntags: one\nsummary: >-\n  Line one\n  line two.\nimage: /relative.jpg\nextra:\n  nested: true\n---\nBody &nbsp; text.\n";
    let a = ok("post.md", src.as_bytes());
    assert_eq!(a.title, "A title split");
    assert_eq!(a.id, "my-id");
    assert_eq!(a.authors, ["Bob", "Ann"]);
    assert_eq!(a.categories, ["News"]);
    assert_eq!(a.tags, ["one"]);
    assert_eq!(a.lead.as_deref(), Some("Line one line two."));
    assert_eq!(a.image, None, "a relative image URL is ignored");
    assert_eq!(a.front_matter.as_deref(), Some("yaml"));
    assert_eq!(a.format, Format::Markdown);
    assert_eq!(a.language, "en");
    assert_eq!(
        a.content_html, "<p>Body \u{a0} text.</p>\n",
        "&nbsp; becomes the character"
    );

    for (image, want) in [
        (
            "https://example.com/a.jpg",
            Some("https://example.com/a.jpg"),
        ),
        ("http://example.com/a.jpg", Some("http://example.com/a.jpg")),
        ("ftp://example.com/a.jpg", None),
        ("javascript:alert(1)", None),
        ("a.jpg", None),
    ] {
        let a = ok(
            "a.md",
            format!("---\ntitle: A\nimage: \"{image}\"\n---\nB\n").as_bytes(),
        );
        assert_eq!(a.image.as_deref(), want, "{image}");
    }
}

#[test]
fn title_from_first_heading_is_not_repeated() {
    let a = ok(
        "note.md",
        "Intro line.\n\n# Tiêu đề *chính*\n\nĐoạn văn có dấu tiếng Việt.\n\n# Second\n".as_bytes(),
    );
    assert_eq!(a.title, "Tiêu đề chính");
    assert_eq!(a.id, "note");
    assert_eq!(a.front_matter, None);
    assert!(!a.content_html.contains("Tiêu đề"), "{}", a.content_html);
    assert!(a.content_html.contains("<p>Intro line.</p>"));
    assert!(
        a.content_html.contains("<h1>Second</h1>"),
        "only the first heading is the title"
    );
    assert_eq!(a.language, "vi");
}

#[test]
fn markdown_extensions_render() {
    let src =
        "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ and a note[^1].\n\n[^1]: The note.\n";
    let a = ok("a.md", src.as_bytes());
    for want in [
        "<table>",
        "<td>1</td>",
        "<del>old</del>",
        "footnote-reference",
        "The note.",
    ] {
        assert!(
            a.content_html.contains(want),
            "missing {want:?} in {}",
            a.content_html
        );
    }
}

#[test]
fn nfd_and_nfc_headlines_compare_equal() {
    let nfc = "Thời sự\n\nNhật Bản thử nghiệm tàu điện\n\nTTXVN - Đoạn một./.\n";
    let nfd: String = unicode_normalization::UnicodeNormalization::nfd(nfc).collect();
    assert_ne!(nfc.as_bytes(), nfd.as_bytes());
    let (a, b) = (ok("a.txt", nfc.as_bytes()), ok("a.txt", nfd.as_bytes()));
    assert_eq!(a.title, "Nhật Bản thử nghiệm tàu điện");
    assert_eq!(a, b);
}

#[test]
fn crlf_lf_and_cr_give_identical_articles() {
    let lf = ok("a.txt", WIRE.as_bytes());
    let crlf = ok("a.txt", WIRE.replace('\n', "\r\n").as_bytes());
    let cr = ok("a.txt", WIRE.replace('\n', "\r").as_bytes());
    assert_eq!(lf, crlf);
    assert_eq!(lf, cr);
    let md_lf = ok("a.md", MD_YAML.as_bytes());
    let md_crlf = ok("a.md", MD_YAML.replace('\n', "\r\n").as_bytes());
    assert_eq!(md_lf, md_crlf);
}

#[test]
fn wire_fields_and_html() {
    let a = ok(
        "007_abc.txt",
        WIRE.replace("Hà Nội mở", "A & B <c> \"Hà Nội\" mở")
            .as_bytes(),
    );
    assert_eq!(a.id, "007_abc");
    assert_eq!(
        a.title, "A & B <c> \"Hà Nội\" mở tuyến buýt mới",
        "titles stay plain text"
    );
    assert_eq!(a.categories, ["Thời sự"]);
    assert_eq!(a.dateline.as_deref(), Some("Hà Nội"));
    assert_eq!(a.lead.as_deref(), Some("Lead của bài."));
    assert_eq!(a.authors, ["Hoài Nam"]);
    assert_eq!(a.language, "vi");
    assert_eq!(a.published, None);
    assert_eq!(
        a.content_html,
        "<p>TTXVN - Đoạn một.</p><figure><figcaption>Ảnh minh họa. (Ảnh: TTXVN)</figcaption></figure><p>Đoạn hai./.</p>"
    );
}

fn with_limits(max_html_bytes: usize, max_nesting: usize) -> IngestOptions {
    IngestOptions {
        limits: Limits {
            max_html_bytes,
            max_nesting,
        },
        ..opts()
    }
}

/// How deep the elements of sanitised HTML nest (ammonia's output is
/// well-formed, so counting start and end tags is enough).
fn html_depth(html: &str) -> usize {
    const VOID: [&str; 4] = ["br", "hr", "img", "wbr"];
    let (mut depth, mut max) = (0usize, 0usize);
    for tag in html.split('<').skip(1) {
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if tag.starts_with('/') {
            depth -= 1;
        } else if !VOID.contains(&name.as_str()) && !name.is_empty() {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

#[test]
fn nesting_is_bounded() {
    // (case, file name, body nested `n` deep): at the limit the article is
    // accepted and its HTML nests no deeper; one level more is refused.
    type Nest = fn(usize) -> String;
    let cases: [(&str, &str, Nest, &str); 7] = [
        (
            "quotes",
            "a.md",
            |n| format!("# T\n\n{}x\n", "> ".repeat(n)),
            "quotes",
        ),
        (
            "lists",
            "a.md",
            |n| format!("# T\n\n{}x\n", "- ".repeat(n / 2)),
            "quotes",
        ),
        (
            "emphasis",
            "a.md",
            |n| format!("# T\n\n{}b{}\n", "_a ".repeat(n - 1), "_".repeat(n - 1)),
            "quotes",
        ),
        (
            "nested images",
            "a.md",
            |n| format!("# T\n\n{}a{}\n", "![".repeat(n - 1), "](u)".repeat(n - 1)),
            "quotes",
        ),
        (
            "raw divs",
            "a.md",
            |n| format!("# T\n\n{}x\n", "<div>".repeat(n)),
            "HTML elements",
        ),
        (
            "raw spans in a paragraph",
            "a.md",
            |n| format!("# T\n\nx {}y\n", "<span>".repeat(n - 1)),
            "HTML elements",
        ),
        (
            "reopened formatting",
            "a.md",
            |n| {
                format!(
                    "# T\n\n<div>{}<p>x</p>\n",
                    (0..n).map(|i| format!("<b title={i}>")).collect::<String>()
                )
            },
            "HTML elements",
        ),
    ];
    let limit = 16;
    let opts = with_limits(256 << 10, limit);
    for (case, name, nest, what) in cases {
        // Markdown puts its own block (a paragraph) around inline content,
        // so find the deepest input that is accepted, then check around it.
        let deepest_ok = (1..=limit + 2)
            .take_while(|&n| parse(name, nest(n).as_bytes(), &opts).is_ok())
            .last()
            .unwrap_or_else(|| panic!("{case}: even one level is refused"));
        assert!(
            deepest_ok + 3 >= limit,
            "{case}: only {deepest_ok} levels accepted"
        );
        let a = parse(name, nest(deepest_ok).as_bytes(), &opts).unwrap();
        assert!(
            html_depth(&a.content_html) <= limit,
            "{case}: output nests {} deep: {}",
            html_depth(&a.content_html),
            a.content_html
        );
        match parse(name, nest(deepest_ok + 1).as_bytes(), &opts) {
            Err(IngestError::TooDeep {
                what: got,
                limit: l,
            }) => {
                assert_eq!(l, limit, "{case}");
                assert!(
                    got.contains(what.split(' ').next().unwrap()),
                    "{case}: {got}"
                );
            }
            other => panic!("{case}: one level deeper gave {other:?}"),
        }
        // Thousands of levels cost no more than the limit's worth.
        let e = parse(name, nest(4000).as_bytes(), &opts).unwrap_err();
        assert!(matches!(e, IngestError::TooDeep { .. }), "{case}: {e:?}");
        assert!(e.to_string().contains("ingest.max_nesting"), "{e}");
    }
}

#[test]
fn invisible_single_line_fields() {
    // Every sort of character that shows as nothing.
    let invisibles = [
        "\u{200b}\u{200b}",       // zero-width spaces
        "\u{2060}",               // word joiner
        "\u{a0}\u{feff}",         // a byte order mark that does not start the file
        "\u{a0}\u{a0}",           // no-break spaces
        "\u{200b}\u{a0}\u{2060}", // a mixture
        "\u{200c}\u{200d}\u{200e}\u{ad}\u{3164}\u{2800}",
    ];
    for inv in invisibles {
        // A line of nothing but no-break spaces is a blank line in the wire
        // layout (they are whitespace), which shifts the blocks instead.
        let blank = inv.trim().is_empty();
        // (case, file name, text, expected outcome given `blank`)
        type Want = fn(&Result<Article, IngestError>, bool) -> bool;
        let cases: Vec<(&str, &str, String, Want)> = vec![
            (
                "wire title",
                "a.txt",
                format!("Tin\n\n{inv}\n\nTTXVN - Body./.\n"),
                |r, blank| match r {
                    Err(IngestError::Invisible(f)) => f == "title" && !blank,
                    Err(IngestError::Layout(_)) => blank,
                    _ => false,
                },
            ),
            (
                "wire category",
                "a.txt",
                format!("{inv}\n\nTitle\n\nTTXVN - Body./.\n"),
                |r, blank| match r {
                    Err(IngestError::Invisible(f)) => f == "category" && !blank,
                    Err(IngestError::Layout(_)) => blank,
                    _ => false,
                },
            ),
            (
                "wire byline",
                "a.txt",
                format!("Tin\n\nTitle\n\nTTXVN - Body./.\n\n{inv}\n"),
                |r, _| r.as_ref().is_ok_and(|a| a.authors.is_empty()),
            ),
            (
                "wire dateline",
                "a.txt",
                format!("Tin\n\nTitle\n\n{inv}\n\nLead.\n\nTTXVN - Body./.\n"),
                |r, _| r.as_ref().is_ok_and(|a| a.dateline.is_none()),
            ),
            (
                "markdown front-matter title",
                "a.md",
                format!("---\ntitle: \"{inv}\"\n---\nBody\n"),
                |r, blank| match r {
                    Err(IngestError::Invisible(f)) => f == "title" && !blank,
                    Err(IngestError::Missing(f)) => f == "title" && blank,
                    _ => false,
                },
            ),
            (
                "markdown heading title",
                "a.md",
                format!("# {inv}\n\nBody\n"),
                |r, blank| match r {
                    Err(IngestError::Invisible(f)) => f == "title" && !blank,
                    Err(IngestError::Missing(f)) => f == "title" && blank,
                    _ => false,
                },
            ),
            (
                "markdown toml title",
                "a.md",
                format!("+++\ntitle = \"{inv}\"\n+++\nBody\n"),
                |r, blank| match r {
                    Err(IngestError::Invisible(f)) => f == "title" && !blank,
                    Err(IngestError::Missing(f)) => f == "title" && blank,
                    _ => false,
                },
            ),
            (
                "markdown author, category, tag, summary, id",
                "post.md",
                format!(
                    "---\ntitle: T\nauthor: \"{inv}\"\ncategories: [\"{inv}\", News]\ntags: [\"{inv}\"]\nsummary: \"{inv}\"\nid: \"{inv}\"\n---\nBody\n"
                ),
                |r, _| {
                    r.as_ref().is_ok_and(|a| {
                        a.authors.is_empty()
                            && a.categories == ["News"]
                            && a.tags.is_empty()
                            && a.lead.is_none()
                            && a.id == "post"
                    })
                },
            ),
        ];
        for (case, name, text, want) in cases {
            let got = parse(name, text.as_bytes(), &opts());
            assert!(want(&got, blank), "{case} with {inv:?}: {got:?}");
            if let Err(IngestError::Invisible(_)) = &got {
                let message = got.unwrap_err().to_string();
                assert!(
                    message.contains("invisible characters"),
                    "{case}: {message}"
                );
            }
        }
    }
    // Invisible characters around visible text do not make it missing.
    let a = ok(
        "a.txt",
        "Tin\n\n\u{200b}Tiêu đề\u{2060}\n\nTTXVN - Body./.\n".as_bytes(),
    );
    assert_eq!(a.title, "\u{200b}Tiêu đề\u{2060}");
}

/// Every file in `testdata/` against its `NAME.expect`, a JSON object:
///
/// - `options`: `max_bytes`, `max_html_bytes`, `max_nesting` to parse with
///   (otherwise the defaults);
/// - `error`: the `IngestError` variant expected, and `message`: strings its
///   message must contain;
/// - or `article`: fields of the article as `Article` serialises them, each
///   compared exactly; `html_contains` / `html_excludes` (case-insensitive):
///   strings `content_html` must or must not contain; `max_html_depth`: how
///   deep its elements may nest.
///
/// Every accepted article must also keep ingest's promises: a visible
/// title, nothing XML forbids in any field, `content_html` within
/// `max_html_bytes` and free of `]]>`.
#[test]
fn testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ingest/testdata");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let expects: Vec<&String> = names.iter().filter(|n| n.ends_with(".expect")).collect();
    for expect in &expects {
        let input = expect.trim_end_matches(".expect");
        assert!(
            names.iter().any(|n| n == input),
            "{expect} has no input file"
        );
    }
    let inputs: Vec<&String> = names.iter().filter(|n| !n.ends_with(".expect")).collect();
    assert!(
        inputs.len() >= 50,
        "only {} cases found in {}",
        inputs.len(),
        dir.display()
    );
    for name in inputs {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let expect_text = std::fs::read_to_string(dir.join(format!("{name}.expect")))
            .unwrap_or_else(|e| panic!("{name}: no {name}.expect ({e})"));
        let expect: Json = serde_json::from_str(&expect_text)
            .unwrap_or_else(|e| panic!("{name}.expect: not JSON: {e}"));
        check_case(name, &bytes, &expect);
    }
}

fn check_case(name: &str, bytes: &[u8], expect: &Json) {
    let known = [
        "options",
        "error",
        "message",
        "article",
        "html_contains",
        "html_excludes",
        "max_html_depth",
    ];
    let object = expect
        .as_object()
        .unwrap_or_else(|| panic!("{name}.expect: not an object"));
    for key in object.keys() {
        assert!(
            known.contains(&key.as_str()),
            "{name}.expect: unknown key `{key}`"
        );
    }
    let mut opts = opts();
    if let Some(o) = expect.get("options") {
        let get = |key: &str| o.get(key).and_then(Json::as_u64);
        if let Some(n) = get("max_bytes") {
            opts.max_bytes = n;
        }
        if let Some(n) = get("max_html_bytes") {
            opts.limits.max_html_bytes = n as usize;
        }
        if let Some(n) = get("max_nesting") {
            opts.limits.max_nesting = n as usize;
        }
    }
    let strings = |key: &str| -> Vec<String> {
        expect
            .get(key)
            .map(|v| {
                v.as_array()
                    .unwrap_or_else(|| panic!("{name}.expect: `{key}` must be a list"))
                    .iter()
                    .map(|s| s.as_str().expect("a list of strings").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    match (parse(name, bytes, &opts), expect.get("error")) {
        (Err(e), Some(want)) => {
            let debug = format!("{e:?}");
            let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert_eq!(Some(variant.as_str()), want.as_str(), "{name}: {e:?}");
            let message = e.to_string();
            for part in strings("message") {
                assert!(
                    message.contains(&part),
                    "{name}: {message:?} lacks {part:?}"
                );
            }
        }
        (Err(e), None) => panic!("{name}: expected an article, got {e:?} ({e})"),
        (Ok(a), Some(want)) => panic!("{name}: expected {want}, got an article: {a:?}"),
        (Ok(a), None) => {
            check_promises(name, &a, &opts);
            let json = serde_json::to_value(&a).unwrap();
            if let Some(fields) = expect.get("article") {
                for (key, want) in fields.as_object().expect("`article` is an object") {
                    let got = json
                        .get(key)
                        .unwrap_or_else(|| panic!("{name}: no field {key}"));
                    assert_eq!(got, want, "{name}: {key}");
                }
            }
            let html = a.content_html.to_lowercase();
            for part in strings("html_contains") {
                assert!(
                    html.contains(&part.to_lowercase()),
                    "{name}: {part:?} missing"
                );
            }
            for part in strings("html_excludes") {
                assert!(
                    !html.contains(&part.to_lowercase()),
                    "{name}: {part:?} survived"
                );
            }
            if let Some(max) = expect.get("max_html_depth").and_then(Json::as_u64) {
                let depth = html_depth(&a.content_html);
                assert!(depth as u64 <= max, "{name}: HTML nests {depth} deep");
            }
        }
    }
}

/// What ingest promises about every article it returns.
fn check_promises(name: &str, a: &Article, opts: &IngestOptions) {
    assert!(
        text::is_visible(&a.title),
        "{name}: invisible title {:?}",
        a.title
    );
    let mut fields: Vec<&str> = vec![&a.id, &a.title, &a.content_html, &a.language];
    fields.extend(a.dateline.as_deref());
    fields.extend(a.lead.as_deref());
    for list in [
        &a.categories,
        &a.tags,
        &a.authors,
        &a.paragraphs,
        &a.captions,
    ] {
        fields.extend(list.iter().map(String::as_str));
    }
    for field in fields {
        assert!(!field.chars().any(text::is_forbidden), "{name}: {field:?}");
    }
    assert!(
        a.content_html.len() <= opts.limits.max_html_bytes,
        "{name}: HTML too large"
    );
    assert!(
        !a.content_html.contains("]]>"),
        "{name}: ]]> in content_html"
    );
}
