//! The agency's plain-text wire layout (see `tests/fixtures/corpus/README.md`).
//!
//! A wire file is a sequence of blank-line separated blocks: category, title,
//! optional dateline, optional lead, body paragraphs and photo captions up to
//! the end mark `/.`, then an optional byline and a scraped "Xem thêm".

use super::html;
use super::text::{is_visible, one_line};
use super::{Decoded, IngestError, Limits};
use crate::article::{Article, Format};
use regex::Regex;
use std::sync::LazyLock;

static CAPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\(Ảnh:[^()]*\)$").expect("valid regex"));

const CREDIT: &str = "TTXVN - ";
const SEE_MORE: &str = "Xem thêm";
const END_MARK: &str = "/.";

fn is_caption(block: &str) -> bool {
    CAPTION.is_match(block)
}

fn is_dateline(block: &str) -> bool {
    block.chars().count() <= 40
        && !block.ends_with(['.', '!', '?', '…', ':', ';', ')'])
        && !block.starts_with(CREDIT)
}

/// Without an end mark, the last block is a byline only if it looks like one.
fn looks_like_byline(block: &str) -> bool {
    block.chars().count() <= 60 && !is_caption(block) && !block.ends_with(['.', '!', '?', '…'])
}

/// Split text into blocks: runs of non-blank lines, each line trimmed, joined
/// by one space, inner whitespace collapsed.
fn blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                out.push(one_line(&current.join(" ")));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(one_line(&current.join(" ")));
    }
    out
}

/// The category and title must show; a dateline, lead or author made only of
/// invisible characters counts as absent. The body HTML is at most
/// `limits.max_html_bytes` (escaping can make it six times the text).
pub fn parse(stem: &str, decoded: Decoded, limits: &Limits) -> Result<Article, IngestError> {
    let mut blocks = blocks(&decoded.text);
    let see_more = blocks.len() > 2 && blocks.last().is_some_and(|b| b == SEE_MORE);
    if see_more {
        blocks.pop();
    }
    let mut rest = blocks.into_iter();
    let category = rest.next().ok_or(IngestError::Empty)?;
    let title = rest
        .next()
        .ok_or_else(|| IngestError::Missing("title".to_string()))?;
    for (field, value) in [("category", &category), ("title", &title)] {
        if !is_visible(value) {
            return Err(IngestError::Invisible(field.to_string()));
        }
    }
    let mut rest: Vec<String> = rest.collect();

    // The final body paragraph: the last block ending with the end mark.
    let end = rest.iter().rposition(|b| b.ends_with(END_MARK));

    let mut start = 0;
    let dateline = match rest.first() {
        Some(b) if is_dateline(b) && end != Some(0) => {
            start = 1;
            Some(b.clone())
        }
        _ => None,
    };
    let lead = match rest.get(start) {
        Some(b) if !b.starts_with(CREDIT) && !is_caption(b) && end != Some(start) => {
            start += 1;
            Some(b.clone())
        }
        _ => None,
    };

    // Split what follows the lead into body and tail (after the final paragraph).
    let tail: Vec<String> = match end {
        Some(end) => rest.split_off(end + 1),
        None => match rest.last() {
            Some(last) if rest.len() > start && looks_like_byline(last) => {
                rest.split_off(rest.len() - 1)
            }
            _ => Vec::new(),
        },
    };
    let body = &rest[start.min(rest.len())..];
    let dateline = dateline.filter(|d| is_visible(d));
    let lead = lead.filter(|l| is_visible(l));

    let mut paragraphs = Vec::new();
    let mut captions = Vec::new();
    let mut content = Html {
        out: String::new(),
        limit: limits.max_html_bytes,
    };
    for block in body {
        if is_caption(block) {
            content.push(&html::caption(block))?;
            captions.push(block.clone());
        } else {
            content.push(&html::paragraph(block))?;
            paragraphs.push(block.clone());
        }
    }
    let mut byline = None;
    for block in tail {
        if is_caption(&block) {
            content.push(&html::caption(&block))?;
            captions.push(block);
        } else if byline.is_none() {
            byline = Some(block);
        }
        // Further non-caption blocks after the byline are scrape leftovers
        // (like "Xem thêm"); they are not part of the article.
    }
    if paragraphs.is_empty() && lead.is_none() {
        return Err(IngestError::Layout(
            "no lead and no body paragraph after the headline".to_string(),
        ));
    }
    let authors = byline
        .map(|b| {
            b.split(" - ")
                .map(str::trim)
                .filter(|a| is_visible(a))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();

    Ok(Article {
        id: stem.to_string(),
        format: Format::Wire,
        encoding: decoded.encoding,
        title,
        categories: vec![category],
        tags: Vec::new(),
        dateline,
        lead,
        authors,
        paragraphs,
        captions,
        see_more,
        content_html: content.out,
        image: None,
        published: None,
        updated: None,
        front_matter: None,
        language: "vi".to_string(),
        // Wire copy has no place for it: a sidecar file carries it.
        lifecycle: Default::default(),
    })
}

/// Body HTML that stops growing at `limit` bytes.
struct Html {
    out: String,
    limit: usize,
}

impl Html {
    fn push(&mut self, s: &str) -> Result<(), IngestError> {
        if self.out.len() + s.len() > self.limit {
            return Err(IngestError::HtmlTooLarge { limit: self.limit });
        }
        self.out.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Encoding;

    fn wire(text: &str) -> Result<Article, IngestError> {
        parse(
            "x",
            Decoded {
                text: text.to_string(),
                encoding: Encoding::Utf8,
            },
            &Limits::default(),
        )
    }

    struct Want {
        dateline: Option<&'static str>,
        lead: Option<&'static str>,
        paragraphs: &'static [&'static str],
        captions: usize,
        authors: &'static [&'static str],
        see_more: bool,
    }

    #[test]
    fn layouts() {
        let cases: Vec<(&str, &str, Want)> = vec![
            (
                "full article",
                "Cat\n\nTitle\n\nCần Thơ\n\nLead text.\n\nTTXVN - One.\n\nPhoto. (Ảnh: TTXVN)\n\nTwo./.\n\nA - B\n\nXem thêm\n",
                Want {
                    dateline: Some("Cần Thơ"),
                    lead: Some("Lead text."),
                    paragraphs: &["TTXVN - One.", "Two./."],
                    captions: 1,
                    authors: &["A", "B"],
                    see_more: true,
                },
            ),
            (
                "brief: credited paragraph right after the title",
                "Cat\n\nTitle\n\nTTXVN - Only paragraph./.",
                Want {
                    dateline: None,
                    lead: None,
                    paragraphs: &["TTXVN - Only paragraph./."],
                    captions: 0,
                    authors: &[],
                    see_more: false,
                },
            ),
            (
                "no dateline: block 3 ends with a full stop, so it is the lead",
                "Cat\n\nTitle\n\nShort lead.\n\nTTXVN - Body./.\n\nByline",
                Want {
                    dateline: None,
                    lead: Some("Short lead."),
                    paragraphs: &["TTXVN - Body./."],
                    captions: 0,
                    authors: &["Byline"],
                    see_more: false,
                },
            ),
            (
                "dateline with a hyphen, caption right after the lead, captions after the end",
                "Cat\n\nTitle\n\nBà Rịa - Vũng Tàu\n\nLead\n\nFirst. (Ảnh: X)\n\nTTXVN - Body\nwrapped   line./.\n\nAfter. (Ảnh: Y)\n\nTên Một\n\nXem thêm",
                Want {
                    dateline: Some("Bà Rịa - Vũng Tàu"),
                    lead: Some("Lead"),
                    paragraphs: &["TTXVN - Body wrapped line./."],
                    captions: 2,
                    authors: &["Tên Một"],
                    see_more: true,
                },
            ),
            (
                "long block 3 is not a dateline",
                "Cat\n\nTitle\n\nA lead that is clearly longer than forty characters without a stop\n\nTTXVN - Body./.",
                Want {
                    dateline: None,
                    lead: Some(
                        "A lead that is clearly longer than forty characters without a stop",
                    ),
                    paragraphs: &["TTXVN - Body./."],
                    captions: 0,
                    authors: &[],
                    see_more: false,
                },
            ),
            (
                "extra blank lines and stray whitespace",
                "  Cat \t\n\n\n \t\nTitle\n   \n\nTTXVN - Body./.\n\n\n",
                Want {
                    dateline: None,
                    lead: None,
                    paragraphs: &["TTXVN - Body./."],
                    captions: 0,
                    authors: &[],
                    see_more: false,
                },
            ),
            (
                "the last /. block ends the body",
                "Cat\n\nTitle\n\nTTXVN - Quoted a/. b/.\n\nEnd./.\n\nName",
                Want {
                    dateline: None,
                    lead: None,
                    paragraphs: &["TTXVN - Quoted a/. b/.", "End./."],
                    captions: 0,
                    authors: &["Name"],
                    see_more: false,
                },
            ),
            (
                "no end mark: short last block is the byline",
                "Cat\n\nTitle\n\nTTXVN - One.\n\nTwo.\n\nNgọc Thiện",
                Want {
                    dateline: None,
                    lead: None,
                    paragraphs: &["TTXVN - One.", "Two."],
                    captions: 0,
                    authors: &["Ngọc Thiện"],
                    see_more: false,
                },
            ),
            (
                "no end mark: last block ending with a stop is body",
                "Cat\n\nTitle\n\nTTXVN - One.\n\nTwo.",
                Want {
                    dateline: None,
                    lead: None,
                    paragraphs: &["TTXVN - One.", "Two."],
                    captions: 0,
                    authors: &[],
                    see_more: false,
                },
            ),
        ];
        for (name, text, want) in cases {
            let a = wire(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(a.categories, ["Cat"], "{name}");
            assert_eq!(a.title, "Title", "{name}");
            assert_eq!(a.dateline.as_deref(), want.dateline, "{name}: dateline");
            assert_eq!(a.lead.as_deref(), want.lead, "{name}: lead");
            assert_eq!(a.paragraphs, want.paragraphs, "{name}: paragraphs");
            assert_eq!(a.captions.len(), want.captions, "{name}: captions");
            assert_eq!(a.authors, want.authors, "{name}: authors");
            assert_eq!(a.see_more, want.see_more, "{name}: see_more");
        }
    }

    #[test]
    fn caption_positions_in_html() {
        let a = wire("C\n\nT\n\nL\n\nA. (Ảnh: 1)\n\nTTXVN - P./.\n\nB. (Ảnh: 2)\n\nName").unwrap();
        assert_eq!(
            a.content_html,
            "<figure><figcaption>A. (Ảnh: 1)</figcaption></figure><p>TTXVN - P./.</p>\
             <figure><figcaption>B. (Ảnh: 2)</figcaption></figure>"
        );
        assert!(
            !a.content_html.contains(">L<"),
            "the lead is not in content_html"
        );
    }

    #[test]
    fn caption_rule() {
        for (block, want) in [
            ("Quang cảnh hội nghị. (Ảnh: TTXVN phát)", true),
            ("Ảnh: X (Ảnh: Minh Tâm/TTXVN)", true),
            ("Text (Ảnh: X) more", false),
            ("Text (Ảnh: (nested))", false),
            ("Text (Ảnh X)", false),
        ] {
            assert_eq!(is_caption(block), want, "{block}");
        }
    }

    #[test]
    fn layout_errors() {
        assert_eq!(
            wire("Only a category\n").unwrap_err(),
            IngestError::Missing("title".into())
        );
        assert!(matches!(
            wire("Cat\n\nTitle\n").unwrap_err(),
            IngestError::Layout(_)
        ));
    }
}
