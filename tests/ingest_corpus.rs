//! Every file of the sample corpus parses to exactly what `EXPECTED.json`
//! says, field by field. The corpus is a copy of the agency samples (see
//! `tests/fixtures/corpus/README.md`).

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use feedwire::article::{Article, Encoding, Format};
use feedwire::ingest::{IngestOptions, parse};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

fn opts() -> IngestOptions {
    IngestOptions {
        time_zone: chrono_tz::Asia::Ho_Chi_Minh,
        max_bytes: 4 << 20,
        now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        limits: Default::default(),
    }
}

fn prefix(s: &str) -> String {
    s.chars().take(60).collect()
}

fn opt_str(v: &Value) -> Option<&str> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => panic!("expected string or null, got {other}"),
    }
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|x| x.as_str().expect("list of strings").to_string())
        .collect()
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Utf8 => "utf-8",
        Encoding::Utf8Bom => "utf-8-bom",
        Encoding::Utf16LeBom => "utf-16le-bom",
        Encoding::Utf16BeBom => "utf-16be-bom",
        Encoding::Windows1258 => "windows-1258",
    }
}

/// `published`/`updated`: equal as instants *and* offsets, and written the same way.
fn check_date(file: &str, field: &str, got: Option<DateTime<FixedOffset>>, want: &Value) {
    match (got, opt_str(want)) {
        (None, None) => {}
        (Some(got), Some(want)) => {
            let parsed =
                DateTime::parse_from_rfc3339(want).expect("EXPECTED.json date is RFC 3339");
            assert_eq!(got, parsed, "{file}: {field}");
            assert_eq!(got.offset(), parsed.offset(), "{file}: {field} offset");
            assert_eq!(got.to_rfc3339(), want, "{file}: {field} as RFC 3339");
        }
        (got, want) => panic!("{file}: {field}: got {got:?}, want {want:?}"),
    }
}

fn check_common(file: &str, a: &Article, e: &Value) {
    assert_eq!(a.id, e["id"].as_str().unwrap(), "{file}: id");
    assert_eq!(a.title, e["title"].as_str().unwrap(), "{file}: title");
    assert_eq!(a.category(), opt_str(&e["category"]), "{file}: category");
    let format = match a.format {
        Format::Wire => "wire",
        Format::Markdown => "markdown",
    };
    assert_eq!(format, e["format"].as_str().unwrap(), "{file}: format");
    assert!(!a.content_html.is_empty(), "{file}: content_html is empty");
    assert!(
        !a.content_html.contains("]]>"),
        "{file}: content_html contains ]]>"
    );
}

fn check_wire(file: &str, a: &Article, e: &Value) {
    assert_eq!(
        encoding_name(a.encoding),
        e["encoding"].as_str().unwrap(),
        "{file}: encoding"
    );
    assert_eq!(
        a.dateline.as_deref(),
        opt_str(&e["dateline"]),
        "{file}: dateline"
    );
    assert_eq!(
        a.lead.as_deref().map(prefix).as_deref(),
        opt_str(&e["lead_prefix"]),
        "{file}: lead_prefix"
    );
    let first = a
        .paragraphs
        .first()
        .unwrap_or_else(|| panic!("{file}: no paragraphs"));
    assert_eq!(
        prefix(first),
        e["first_paragraph_prefix"].as_str().unwrap(),
        "{file}: first_paragraph_prefix"
    );
    assert_eq!(a.authors, str_list(&e["authors"]), "{file}: authors");
    assert_eq!(
        a.captions.len() as u64,
        e["captions"].as_u64().unwrap(),
        "{file}: captions"
    );
    assert_eq!(
        a.paragraphs.len() as u64,
        e["paragraphs"].as_u64().unwrap(),
        "{file}: paragraphs"
    );
    assert_eq!(
        a.see_more,
        e["see_more"].as_bool().unwrap(),
        "{file}: see_more"
    );
    assert_eq!(
        a.categories.len(),
        1,
        "{file}: a wire file has one category"
    );
    assert_eq!(a.language, "vi", "{file}: language");
    assert!(
        a.published.is_none() && a.updated.is_none(),
        "{file}: wire files carry no date"
    );
    assert!(a.front_matter.is_none(), "{file}: front_matter");
    // The HTML holds every paragraph and caption, and neither lead nor dateline.
    assert_eq!(
        a.content_html.matches("<p>").count(),
        a.paragraphs.len(),
        "{file}: <p> count"
    );
    assert_eq!(
        a.content_html.matches("<figcaption>").count(),
        a.captions.len(),
        "{file}: <figcaption> count"
    );
    if let Some(lead) = &a.lead {
        let escaped = lead
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            !a.content_html.contains(&escaped),
            "{file}: lead repeated in content_html"
        );
    }
}

fn check_markdown(file: &str, a: &Article, e: &Value) {
    assert_eq!(
        a.front_matter.as_deref(),
        opt_str(&e["front_matter"]),
        "{file}: front_matter"
    );
    check_date(file, "published", a.published, &e["published"]);
    check_date(file, "updated", a.updated, &e["updated"]);
    assert_eq!(a.authors, str_list(&e["authors"]), "{file}: authors");
    assert_eq!(
        a.categories,
        str_list(&e["categories"]),
        "{file}: categories"
    );
    assert_eq!(a.tags, str_list(&e["tags"]), "{file}: tags");
    assert_eq!(a.lead.as_deref(), opt_str(&e["summary"]), "{file}: summary");
    assert_eq!(a.image.as_deref(), opt_str(&e["image"]), "{file}: image");
    assert_eq!(a.encoding, Encoding::Utf8, "{file}: encoding");
    assert!(a.dateline.is_none(), "{file}: dateline");
    // The title is not repeated as a heading when it came from one.
    if e["front_matter"].is_null() {
        assert!(
            !a.content_html.contains("<h1>"),
            "{file}: title heading left in content_html"
        );
    }
}

#[test]
fn corpus_matches_expected() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(corpus().join("EXPECTED.json")).unwrap())
            .expect("EXPECTED.json");
    let files = expected["files"].as_array().expect("files");
    let (mut wire, mut markdown) = (0, 0);
    for e in files {
        let file = e["file"].as_str().unwrap();
        let bytes =
            std::fs::read(corpus().join(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let article = parse(name, &bytes, &opts()).unwrap_or_else(|err| panic!("{file}: {err}"));
        check_common(file, &article, e);
        match e["format"].as_str().unwrap() {
            "wire" => {
                check_wire(file, &article, e);
                wire += 1;
            }
            "markdown" => {
                check_markdown(file, &article, e);
                markdown += 1;
            }
            other => panic!("{file}: unknown format {other}"),
        }
    }
    assert_eq!(
        (wire, markdown),
        (25, 6),
        "every corpus file must be checked"
    );
}

/// The English Markdown stories are tagged `en`, the Vietnamese ones `vi`.
#[test]
fn markdown_language() {
    for (file, lang) in [
        ("markdown/2024-09-15-dem-hoi-trang-ram-hoi-an.md", "vi"),
        ("markdown/2024-10-10-hanoi-metro-ridership.md", "en"),
        ("markdown/2024-11-02-pho-di-bo-ha-noi.md", "vi"),
        ("markdown/2025-01-18-cau-di-bo-cai-khe.md", "vi"),
        ("markdown/2025-02-20-mekong-salt-tolerant-rice.md", "en"),
        ("markdown/nguoi-giu-nghe-non-la.md", "vi"),
    ] {
        let bytes = std::fs::read(corpus().join(file)).unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let a = parse(name, &bytes, &opts()).unwrap();
        assert_eq!(a.language, lang, "{file}");
    }
}

/// EXPECTED.json lists exactly the files in the fixture folders, so a file
/// added to the corpus without an expectation cannot go unchecked.
#[test]
fn every_corpus_file_is_listed() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(corpus().join("EXPECTED.json")).unwrap())
            .expect("EXPECTED.json");
    let listed: Vec<&str> = expected["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    let mut on_disk = Vec::new();
    for dir in ["wire", "markdown"] {
        for entry in std::fs::read_dir(corpus().join(dir)).unwrap() {
            on_disk.push(format!(
                "{dir}/{}",
                entry.unwrap().file_name().to_str().unwrap()
            ));
        }
    }
    on_disk.sort();
    let mut listed_sorted: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    listed_sorted.sort();
    assert_eq!(on_disk, listed_sorted);
    assert_eq!(on_disk.len(), 31);
}
