//! The publish gate: a document must parse back, with the entries it claims,
//! before it may replace the last good one.

use crate::render::{DocKind, Document};
use anyhow::{Context, Result, bail};

/// Parse a rendered document back and check it is what it claims to be.
pub fn verify(doc: &Document) -> Result<()> {
    let text = std::str::from_utf8(&doc.bytes).context("not valid UTF-8")?;
    if !matches!(doc.kind, DocKind::Json | DocKind::Ninjs)
        && let Some((at, c)) = text.char_indices().find(|(_, c)| !is_xml_char(*c))
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
            let value: serde_json::Value =
                serde_json::from_slice(&doc.bytes).context("JSON Feed does not parse")?;
            if value["version"] != "https://jsonfeed.org/version/1.1" {
                bail!("JSON Feed lacks its version");
            }
            value["items"]
                .as_array()
                .context("JSON Feed lacks items")?
                .len()
        }
        DocKind::Ninjs => crate::render::ninjs_parse_back(&doc.bytes)?,
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
    };
    if found != doc.entries {
        bail!("{} entries rendered but {found} parse back", doc.entries);
    }
    Ok(())
}

/// XML 1.0 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn accepts_a_minimal_valid_rss() {
        let ok = "<rss version=\"2.0\"><channel><title>t</title><link>http://x/</link><description>d</description></channel></rss>";
        verify(&doc(DocKind::Rss, ok, 0)).unwrap();
    }
}
