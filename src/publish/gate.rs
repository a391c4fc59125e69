//! The publish gate: a document must parse back, with the entries it claims,
//! before it may replace the last good one.

use crate::render::{DocKind, Document};
use anyhow::{Context, Result, bail};

/// Parse a rendered document back and check it is what it claims to be.
pub fn verify(doc: &Document) -> Result<()> {
    // Feeds are mostly Vietnamese, multi-byte text: the standard library's
    // check was the gate's largest cost, SIMD's is a fraction of it. The
    // standard one runs only to say where a bad byte is.
    let text = match simdutf8::basic::from_utf8(&doc.bytes) {
        Ok(text) => text,
        Err(_) => std::str::from_utf8(&doc.bytes).context("not valid UTF-8")?,
    };
    if !matches!(doc.kind, DocKind::Json | DocKind::Ninjs)
        && let Some((at, c)) = first_non_xml_char(text)
    {
        bail!(
            "character U+{:04X} at byte {at} is not allowed in XML 1.0",
            c as u32
        );
    }
    let found = match doc.kind {
        DocKind::Rss => {
            let channel =
                rss::Channel::read_from(doc.bytes.as_slice()).context("RSS does not parse")?;
            if channel.title.is_empty() || channel.link.is_empty() {
                bail!("RSS channel lacks a title or link");
            }
            channel.items.len()
        }
        DocKind::Atom => {
            let feed = atom_syndication::Feed::read_from(doc.bytes.as_slice())
                .context("Atom does not parse")?;
            if feed
                .entries
                .iter()
                .any(|e| e.id.is_empty() || e.title.value.is_empty())
            {
                bail!("an Atom entry lacks an id or title");
            }
            feed.entries.len()
        }
        DocKind::Json => {
            let feed: JsonFeedShape<'_> =
                serde_json::from_str(text).context("JSON Feed does not parse")?;
            if feed.version != "https://jsonfeed.org/version/1.1" {
                bail!("JSON Feed lacks its version");
            }
            feed.items.len()
        }
        DocKind::Ninjs => crate::render::ninjs_parse_back(text)?,
        DocKind::Opml => {
            let mut reader = quick_xml::Reader::from_reader(doc.bytes.as_slice());
            let mut buf = Vec::new();
            let mut outlines = 0;
            loop {
                match reader
                    .read_event_into(&mut buf)
                    .context("OPML does not parse")?
                {
                    quick_xml::events::Event::Eof => break,
                    quick_xml::events::Event::Empty(e) if e.name().as_ref() == b"outline" => {
                        outlines += 1
                    }
                    _ => {}
                }
                buf.clear();
            }
            outlines / DocKind::FEEDS.len()
        }
        DocKind::Sitemap => sitemap_entries(&doc.bytes)?,
        DocKind::Text => 0,
    };
    if found != doc.entries {
        bail!("{} entries rendered but {found} parse back", doc.entries);
    }
    Ok(())
}

/// What the gate needs of a JSON Feed: its version and how many items it
/// has. The items are parsed (it must be valid JSON) but not built, which
/// a `serde_json::Value` of the whole feed did, every string copied.
#[derive(serde::Deserialize)]
struct JsonFeedShape<'a> {
    #[serde(borrow)]
    version: std::borrow::Cow<'a, str>,
    items: Vec<serde::de::IgnoredAny>,
}

/// Check a sitemap, sitemap index or news sitemap as a crawler reads it: a
/// `urlset` or `sitemapindex` in the sitemaps.org namespace, within the
/// protocol's limits, each `url` or `sitemap` with an absolute http(s)
/// `loc`. Returns how many there are.
fn sitemap_entries(bytes: &[u8]) -> Result<usize> {
    use crate::config::Sitemaps;
    use crate::render::sitemap::SITEMAP_NS;
    use quick_xml::events::Event;
    if bytes.len() > Sitemaps::MAX_BYTES {
        bail!(
            "sitemap of {} bytes is over the protocol's {}",
            bytes.len(),
            Sitemaps::MAX_BYTES
        );
    }
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut entries = 0;
    let mut loc: Option<String> = None;
    let mut locs = LocCheck::default();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .context("sitemap does not parse")?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.name().as_ref().to_vec();
                if path.is_empty() {
                    if name != b"urlset" && name != b"sitemapindex" {
                        bail!("a sitemap's root must be urlset or sitemapindex");
                    }
                    let ns = e
                        .try_get_attribute("xmlns")
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned());
                    if ns.as_deref() != Some(SITEMAP_NS.as_bytes()) {
                        bail!("a sitemap's root must be in the namespace {SITEMAP_NS}");
                    }
                }
                if path.len() == 1 {
                    entries += 1;
                    loc = None;
                    if empty {
                        bail!("sitemap entry {entries} lacks an absolute http(s) loc");
                    }
                }
                if !empty {
                    path.push(name);
                }
            }
            Event::Text(t) if path.len() == 3 && path[2] == b"loc" => {
                let text = t.decode().context("a sitemap loc is not text")?;
                let text = quick_xml::escape::unescape(&text)
                    .context("a sitemap loc is not text")?
                    .into_owned();
                loc.get_or_insert_with(String::new).push_str(&text);
            }
            Event::End(_) => {
                if path.len() == 2 && !locs.accepts(loc.as_deref()) {
                    bail!("sitemap entry {entries} lacks an absolute http(s) loc");
                }
                path.pop();
            }
            Event::Eof if path.is_empty() => break,
            Event::Eof => bail!("sitemap does not parse: it ends inside an element"),
            _ => {}
        }
        buf.clear();
    }
    if entries > Sitemaps::MAX_URLS {
        bail!(
            "sitemap of {entries} entries is over the protocol's {}",
            Sitemaps::MAX_URLS
        );
    }
    Ok(entries)
}

/// Whether a sitemap's `loc` is an absolute http(s) URL, as `url::Url::parse`
/// says. A sitemap's locs share their origin, and parsing each one was a
/// fifth of the sitemaps' cost per event (a news sitemap holds up to 1,000):
/// once a loc has parsed, a later one that starts with the same text up to
/// the first `/` after `://` is accepted without parsing, since what follows
/// is a path, query or fragment, which the parser percent-encodes and never
/// refuses. Only the scheme and authority can fail, and theirs is text that
/// already passed.
#[derive(Default)]
struct LocCheck {
    /// `scheme://authority/` of a loc that parsed, as written.
    origin: Option<String>,
}

impl LocCheck {
    fn accepts(&mut self, loc: Option<&str>) -> bool {
        let Some(loc) = loc else { return false };
        if let Some(origin) = &self.origin
            && loc.starts_with(origin.as_str())
        {
            return true;
        }
        let parsed = url::Url::parse(loc).ok();
        let ok = parsed.is_some_and(|u| u.scheme() == "http" || u.scheme() == "https");
        if ok
            && let Some(after) = loc.find("://").map(|i| i + 3)
            && let Some(slash) = loc[after..].find('/')
        {
            self.origin = Some(loc[..after + slash + 1].to_string());
        }
        ok
    }
}

/// XML 1.0 `Char`.
/// The first character XML 1.0 does not allow, found by scanning bytes: in
/// valid UTF-8 only two kinds of byte can start one (a C0 control other than
/// tab, newline and carriage return; EF BF BE/BF for U+FFFE/U+FFFF;
/// surrogates cannot be encoded), so each is checked by decoding only there.
/// Decoding every character instead was the largest single cost of the gate.
///
/// Bytes are tested a block at a time without an early exit, which the
/// compiler turns into SIMD; only a block holding a suspect byte is looked
/// at byte by byte. (A `position` over every byte was a third of the gate.)
fn first_non_xml_char(text: &str) -> Option<(usize, char)> {
    const BLOCK: usize = 64;
    let suspect = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF;
    let bytes = text.as_bytes();
    for (n, block) in bytes.chunks(BLOCK).enumerate() {
        if !block.iter().fold(false, |any, &b| any | suspect(b)) {
            continue;
        }
        for (i, &b) in block.iter().enumerate() {
            if suspect(b) {
                // An ASCII control or a three-byte sequence's lead byte:
                // a character starts here.
                let at = n * BLOCK + i;
                let c = text[at..].chars().next().expect("a character starts here");
                if !is_xml_char(c) {
                    return Some((at, c));
                }
            }
        }
    }
    None
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_scan_finds_what_decoding_every_character_finds() {
        let samples = [
            "plain ascii\tand\nlines\r",
            "Tiếng Việt: Hà Nội, Đà Nẵng",
            "bell \u{7} here",
            "nul \u{0}",
            "private \u{E000} and \u{FFFD} fine, \u{FFFE} not",
            "\u{FFFF} at the start",
            "ﾊﾝｶｸ \u{EF00} \u{10FFFF} \u{1F600}",
            "\u{1F}",
            &format!("{}\u{FFFE}", "Hà Nội ".repeat(40)),
            &format!("{}\u{EF00}{}\u{B}", "a".repeat(63), "b".repeat(70)),
        ];
        for text in samples {
            let slow = text.char_indices().find(|(_, c)| !is_xml_char(*c));
            assert_eq!(first_non_xml_char(text), slow, "{text:?}");
        }
    }

    fn doc(kind: DocKind, text: &str, entries: usize) -> Document {
        Document {
            path: "x".into(),
            kind,
            bytes: text.as_bytes().to_vec(),
            entries,
            updated: None,
        }
    }

    #[test]
    fn refuses_broken_documents() {
        let cases = [
            (
                DocKind::Rss,
                "<rss version=\"2.0\"><channel><title>t</title>",
                0,
                "parse",
            ),
            (
                DocKind::Rss,
                "<rss version=\"2.0\"><channel><title>t\u{b}</title><link>l</link><description>d</description></channel></rss>",
                0,
                "U+000B",
            ),
            (
                DocKind::Atom,
                "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry>",
                1,
                "parse",
            ),
            (
                DocKind::Json,
                "{\"version\":\"https://jsonfeed.org/version/1.1\",\"items\":[]}",
                2,
                "2 entries",
            ),
            (DocKind::Json, "{\"items\":[]", 0, "parse"),
        ];
        for (kind, text, entries, want) in cases {
            let err = format!("{:#}", verify(&doc(kind, text, entries)).unwrap_err());
            assert!(err.contains(want), "{kind:?} {text:?}: {err}");
        }
    }

    #[test]
    fn refuses_bytes_that_are_not_utf8_whatever_the_kind() {
        for kind in [DocKind::Rss, DocKind::Atom, DocKind::Json, DocKind::Ninjs] {
            let mut d = doc(kind, "[]", 0);
            d.bytes = b"[\xff]".to_vec();
            let err = format!("{:#}", verify(&d).unwrap_err());
            assert!(err.contains("not valid UTF-8"), "{kind:?}: {err}");
        }
    }

    #[test]
    fn refuses_broken_sitemaps() {
        let ns = crate::render::sitemap::SITEMAP_NS;
        let cases = [
            (
                format!("<urlset xmlns=\"{ns}\"><url><loc>x</loc></url></urlset>"),
                1,
                "loc",
            ),
            (
                format!("<urlset xmlns=\"{ns}\"><url></url></urlset>"),
                1,
                "loc",
            ),
            (
                "<urlset><url><loc>https://a/</loc></url></urlset>".to_string(),
                1,
                "namespace",
            ),
            (format!("<feed xmlns=\"{ns}\"/>"), 0, "root"),
            (
                format!("<urlset xmlns=\"{ns}\"><url><loc>https://a/</loc>"),
                1,
                "parse",
            ),
            (
                format!("<urlset xmlns=\"{ns}\"><url><loc>https://a/</loc></url></urlset>"),
                2,
                "2 entries",
            ),
        ];
        for (text, entries, want) in cases {
            let err = format!(
                "{:#}",
                verify(&doc(DocKind::Sitemap, &text, entries)).unwrap_err()
            );
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let ok = format!(
            "<sitemapindex xmlns=\"{ns}\"><sitemap><loc>https://a/s-1.xml</loc></sitemap><sitemap><loc>https://a/s-2.xml?a=1&amp;b=2</loc></sitemap></sitemapindex>"
        );
        verify(&doc(DocKind::Sitemap, &ok, 2)).unwrap();
    }

    #[test]
    fn a_loc_is_judged_as_the_url_parser_judges_it() {
        let parser = |l: &str| {
            url::Url::parse(l).is_ok_and(|u| u.scheme() == "http" || u.scheme() == "https")
        };
        let first = [
            "https://tin.example.vn/",
            "http://tin.example.vn:8080/a",
            "https://user:pw@tin.example.vn/x",
            "https://[::1]/a",
            "https://tin.example.vn?q",
            "ftp://tin.example.vn/a",
            "https://exa mple.vn/a",
            "https://tin.example.vn:99999/a",
            "tin.example.vn/a",
        ];
        let then = [
            "https://tin.example.vn/bài-viết/a b%zz?x=1&y=\\#frag",
            "https://tin.example.vn//..//./%00",
            "https://tin.example.vn/\u{1F600}\t\n",
            "https://tin.example.vn.evil/a",
            "https://tin.example.vn:0/a",
            "https://tin.example.vn:99999/a",
            "https://exa mple.vn/a",
            "http://tin.example.vn:8080/a/b",
            "https://[::1]/z",
            "https://[::1/z",
            "HTTPS://tin.example.vn/a",
            "ftp://tin.example.vn/b",
            "",
        ];
        for a in first {
            for b in then {
                let mut check = LocCheck::default();
                assert_eq!(check.accepts(Some(a)), parser(a), "{a}");
                assert_eq!(check.accepts(Some(b)), parser(b), "{b} after {a}");
            }
        }
        assert!(!LocCheck::default().accepts(None));
    }

    #[test]
    fn accepts_a_minimal_valid_rss() {
        let ok = "<rss version=\"2.0\"><channel><title>t</title><link>http://x/</link><description>d</description></channel></rss>";
        verify(&doc(DocKind::Rss, ok, 0)).unwrap();
    }
}
