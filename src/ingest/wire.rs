//! The agency's plain-text wire layout (see `tests/fixtures/corpus/README.md`).
//!
//! A wire file is a sequence of blank-line separated blocks: category, title,
//! optional dateline, optional lead, body paragraphs and photo captions up to
//! the end mark `/.`, then an optional byline and a scraped "Xem thêm".

use super::html;
use super::text::one_line;
use super::{Decoded, IngestError};
use crate::article::{Article, Format};
use regex::Regex;
use std::sync::LazyLock;

static CAPTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\(Ảnh:[^()]*\)$").expect("valid regex"));

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

pub fn parse(stem: &str, decoded: Decoded) -> Result<Article, IngestError> {
    let mut blocks = blocks(&decoded.text);
    let see_more = blocks.len() > 2 && blocks.last().is_some_and(|b| b == SEE_MORE);
    if see_more {
        blocks.pop();
    }
    let mut rest = blocks.into_iter();
    let category = rest.next().ok_or(IngestError::Empty)?;
    let title = rest.next().ok_or_else(|| {
        IngestError::Missing("title".to_string())
    })?;
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
            Some(last) if rest.len() > start && looks_like_byline(last) => rest.split_off(rest.len() - 1),
            _ => Vec::new(),
        },
    };
    let body = &rest[start.min(rest.len())..];

    let mut paragraphs = Vec::new();
    let mut captions = Vec::new();
    let mut content = String::new();
    for block in body {
        if is_caption(block) {
            content.push_str(&html::caption(block));
            captions.push(block.clone());
        } else {
            content.push_str(&html::paragraph(block));
            paragraphs.push(block.clone());
        }
    }
    let mut byline = None;
    for block in tail {
        if is_caption(&block) {
            content.push_str(&html::caption(&block));
            captions.push(block);
        } else if byline.is_none() {
            byline = Some(block);
        }
        // Further non-caption blocks after the byline are scrape leftovers
        // (like "Xem thêm"); they are not part of the article.
    }
    if paragraphs.is_empty() && lead.is_none() {
        return Err(IngestError::Layout("no lead and no body paragraph after the headline".to_string()));
    }
    let authors = byline
        .map(|b| b.split(" - ").map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect())
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
        content_html: content,
        image: None,
        published: None,
        updated: None,
        front_matter: None,
        language: "vi".to_string(),
    })
}
