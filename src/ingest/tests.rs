//! End-to-end tests of [`parse`]: bytes and a file name in, article or error out.

use super::text;
use super::*;
use crate::article::{Encoding, Format};
use chrono::{DateTime, TimeZone, Utc};

/// Does the error match what the case expects?
type Check = fn(&IngestError) -> bool;

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
fn errors() {
    let long = "x".repeat(101);
    let small = IngestOptions {
        max_bytes: 100,
        ..opts()
    };
    // (case, file name, bytes, options, expected error)
    let cases: Vec<(&str, &str, Vec<u8>, IngestOptions, Check)> = vec![
        ("empty", "a.txt", vec![], opts(), |e| {
            *e == IngestError::Empty
        }),
        (
            "whitespace only",
            "a.md",
            b"  \n\t\r\n".to_vec(),
            opts(),
            |e| *e == IngestError::Empty,
        ),
        (
            "nul byte",
            "a.txt",
            b"Th\x00i s\xe1\xbb\xb1".to_vec(),
            opts(),
            |e| *e == IngestError::Binary,
        ),
        (
            "damaged utf-8",
            "a.txt",
            b"Tin\n\nNg\xE1\xBA\xA1i \xC3".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Encoding(m) if m.contains("damaged")),
        ),
        (
            "byte unassigned in 1258",
            "a.txt",
            b"Tin\n\nA \x81 \xEA".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Encoding(m) if m.contains("0x81")),
        ),
        ("too large", "a.txt", long.into_bytes(), small, |e| {
            *e == IngestError::TooLarge {
                size: 101,
                limit: 100,
            }
        }),
        ("unsupported type", "a.docx", b"x".to_vec(), opts(), |e| {
            matches!(e, IngestError::UnsupportedType(_))
        }),
        (
            "wire without title",
            "a.txt",
            b"Th\xe1\xbb\x9di s\xe1\xbb\xb1\n".to_vec(),
            opts(),
            |e| *e == IngestError::Missing("title".into()),
        ),
        (
            "markdown without title",
            "a.md",
            b"Just a paragraph.\n\n## Not level one\n".to_vec(),
            opts(),
            |e| *e == IngestError::Missing("title".into()),
        ),
        (
            "front matter without title",
            "a.md",
            b"---\nauthor: A\n---\nBody\n".to_vec(),
            opts(),
            |e| *e == IngestError::Missing("title".into()),
        ),
        (
            "unclosed yaml",
            "a.md",
            b"---\ntitle: A\n\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::FrontMatter(m) if m.contains("never closed")),
        ),
        (
            "unclosed toml",
            "a.md",
            b"+++\ntitle = \"A\"\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::FrontMatter(m) if m.contains("never closed")),
        ),
        (
            "broken yaml",
            "a.md",
            b"---\ntitle: A\ntags: [a, b\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::FrontMatter(m) if m.starts_with("YAML error: ") && m.contains("at line 4 column 1")),
        ),
        (
            "broken toml",
            "a.md",
            b"+++\ntitle = \"A\"\ndate = = 3\n+++\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::FrontMatter(m) if m.starts_with("TOML error at line 3")),
        ),
        (
            "unparseable date",
            "a.md",
            b"---\ntitle: A\ndate: next Tuesday\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Date { field, reason } if field == "date" && reason.contains("next Tuesday")),
        ),
        (
            "date in 1970",
            "a.md",
            b"---\ntitle: A\ndate: 1970-01-01T00:00:00Z\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Date { field, reason } if field == "date" && reason.contains("implausible")),
        ),
        (
            "date in 2099",
            "a.md",
            b"+++\ntitle = \"A\"\ndate = 2099-01-01T00:00:00+07:00\n+++\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Date { field, reason } if field == "date" && reason.contains("implausible")),
        ),
        (
            "bad updated",
            "a.md",
            b"---\ntitle: A\nupdated: 2024-13-45\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Date { field, .. } if field == "updated"),
        ),
        (
            "published key",
            "a.md",
            b"---\ntitle: A\npublished: soon\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::Date { field, .. } if field == "published"),
        ),
        (
            "title as a list",
            "a.md",
            b"---\ntitle: [a, b]\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::FrontMatter(m) if m.contains("title")),
        ),
        (
            "yaml that is not a mapping",
            "a.md",
            b"---\n- a\n- b\n---\nBody\n".to_vec(),
            opts(),
            |e| matches!(e, IngestError::FrontMatter(_)),
        ),
    ];
    for (case, name, bytes, opts, check) in cases {
        match parse(name, &bytes, &opts) {
            Ok(a) => panic!("{case}: expected an error, got {a:?}"),
            Err(e) => assert!(check(&e), "{case}: unexpected error {e:?} ({e})"),
        }
    }
}

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
fn markdown_body_is_sanitised() {
    let src = "# T\n\n<script>alert(1)</script>\n\n<p onclick=\"steal()\">hi</p>\n\n[x](javascript:alert(2)) <a href=\"JAVASCRIPT:alert(3)\">y</a>\n\n<iframe src=\"https://e.com\"></iframe><form><input></form>\n\nCDATA end ]]> here and `]]>` in code.\n";
    let a = ok("a.md", src.as_bytes());
    let html = a.content_html.to_lowercase();
    for bad in [
        "<script",
        "alert",
        "onclick",
        "javascript",
        "<iframe",
        "<form",
        "<input",
        "]]>",
    ] {
        assert!(!html.contains(bad), "{bad:?} survived: {}", a.content_html);
    }
    assert!(a.content_html.contains("]]&gt;"));
    assert!(a.content_html.contains("hi"));
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
fn forbidden_characters_are_removed_everywhere() {
    let dirty = WIRE
        .replace("Hà Nội mở", "Hà\u{b} Nội\u{fffe} mở\u{1}")
        .replace("Đoạn một", "Đoạn\u{ffff} một\u{85}");
    let a = ok("a.txt", dirty.as_bytes());
    let b = ok("a.txt", WIRE.as_bytes());
    assert_eq!(a, b);
    let md = ok(
        "a.md",
        "---\ntitle: \"A\u{b}B\"\n---\nx\u{fffe}y\n".as_bytes(),
    );
    assert_eq!(md.title, "AB");
    assert_eq!(md.content_html, "<p>xy</p>\n");
}

#[test]
fn utf16_be_with_bom_decodes() {
    let mut bytes = vec![0xFE, 0xFF];
    for unit in WIRE.encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    let a = ok("a.txt", &bytes);
    assert_eq!(a.encoding, Encoding::Utf16BeBom);
    assert_eq!(
        Article {
            encoding: Encoding::Utf8,
            ..a
        },
        ok("a.txt", WIRE.as_bytes())
    );
}

#[test]
fn windows_1258_wire_decodes() {
    // Tone marks are combining characters after the base letter (ê + 0xEC
    // acute, ê + 0xF2 dot below, ơ 0xF5 + 0xEC acute, a + 0xF2); 0x93/0x94 are
    // curly quotes and 0xD0 is Đ.
    let raw = b"Tin\n\nTi\xEA\xECng Vi\xEA\xF2t \x93m\xF5\xECi\x94\n\nTTXVN - \xD0oa\xF2n./.\n";
    let a = ok("a.txt", raw);
    assert_eq!(a.encoding, Encoding::Windows1258);
    assert_eq!(a.title, "Tiếng Việt “mới”");
    assert_eq!(a.paragraphs, ["TTXVN - Đoạn./."]);
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
fn html_cap_rejects_naming_the_key() {
    let opts = with_limits(4096, 64);
    let too_large = IngestError::HtmlTooLarge { limit: 4096 };
    // (case, file name, bytes)
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "long markdown",
            "a.md",
            format!("# T\n\n{}", "word ".repeat(1000)).into_bytes(),
        ),
        // 1 KB of Markdown that renders to far more HTML.
        (
            "expanding table",
            "a.md",
            format!(
                "# T\n\n{}|\n{}|\n{}",
                "|a".repeat(100),
                "|-".repeat(100),
                "x\n".repeat(50)
            )
            .into_bytes(),
        ),
        (
            "links gain rel=",
            "a.md",
            format!("# T\n\n{}", "<a href=\"/x\">y</a>".repeat(150)).into_bytes(),
        ),
        (
            "wire escaping",
            "a.txt",
            format!("Tin\n\nTitle\n\nTTXVN - {}/.\n", "\"".repeat(1000)).into_bytes(),
        ),
        (
            "wire many paragraphs",
            "a.txt",
            format!("Tin\n\nTitle\n\n{}", "Đoạn văn.\n\n".repeat(400)).into_bytes(),
        ),
    ];
    for (case, name, bytes) in cases {
        match parse(name, &bytes, &opts) {
            Err(e) => {
                assert_eq!(e, too_large, "{case}");
                assert!(
                    e.to_string().contains("ingest.max_html_bytes"),
                    "{case}: {e}"
                );
            }
            Ok(a) => panic!("{case}: accepted {} bytes of HTML", a.content_html.len()),
        }
    }
    // Just under the cap is fine.
    let a = parse(
        "a.md",
        format!("# T\n\n{}", "word ".repeat(700)).as_bytes(),
        &opts,
    )
    .expect("3.5 KB of HTML is under 4 KB");
    assert!(a.content_html.len() <= 4096);
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

#[test]
fn characters_xml_forbids_do_not_come_back_through_escapes() {
    // (case, file name, text): entities and YAML/TOML escapes can spell
    // characters that decoding already removed from the raw text.
    let cases = [
        (
            "heading entity",
            "a.md",
            "# A&#1;B\n\nx&#2;y <span title=\"p&#3;q\">z</span>\n",
        ),
        (
            "yaml escape",
            "a.md",
            "---\ntitle: \"A\\u0001B\"\nauthor: \"C\\x02D\"\n---\nx&#xFFFE;y\n",
        ),
        (
            "toml escape",
            "a.md",
            "+++\ntitle = \"A\\u0001B\"\nauthor = \"C\\u0002D\"\n+++\nx&#x85;y\n",
        ),
    ];
    for (case, name, text) in cases {
        let a = ok(name, text.as_bytes());
        assert_eq!(a.title, "AB", "{case}");
        let all = format!("{} {:?} {}", a.title, a.authors, a.content_html);
        assert!(!all.chars().any(text::is_forbidden), "{case}: {all:?}");
    }
}
