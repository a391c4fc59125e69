//! The `Article`: what ingest understood from one file, and the only shape the
//! later stages (catalog, render, syndicate) ever see. Keeping one plain data
//! type here is what lets every stage stay ignorant of file formats.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// Which input layout a file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The agency's plain-text wire layout (`.txt`).
    Wire,
    /// Markdown, optionally with YAML or TOML front matter (`.md`).
    Markdown,
}

/// How the bytes of a file were stored; reported by `feedwire check` so an
/// editor can see what was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "utf-8-bom")]
    Utf8Bom,
    #[serde(rename = "utf-16le-bom")]
    Utf16LeBom,
    #[serde(rename = "utf-16be-bom")]
    Utf16BeBom,
    #[serde(rename = "windows-1258")]
    Windows1258,
}

/// One article, fully understood. All text is NFC-normalised and free of
/// characters XML 1.0 forbids; `content_html` is already sanitised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    /// Stable identity: front-matter `id`, else the file stem.
    pub id: String,
    pub format: Format,
    pub encoding: Encoding,
    pub title: String,
    /// Categories in the order the file gives them; the first is the primary one.
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    /// Wire only: the place line ("Cần Thơ").
    pub dateline: Option<String>,
    /// The lead (wire sapo) or front-matter `summary`: plain text.
    pub lead: Option<String>,
    pub authors: Vec<String>,
    /// Body paragraphs as plain text (wire), used for counts and previews.
    pub paragraphs: Vec<String>,
    /// Photo captions as plain text (wire).
    pub captions: Vec<String>,
    /// Wire only: a trailing "Xem thêm" was present and dropped.
    pub see_more: bool,
    /// The full article body as sanitised HTML (lead excluded).
    pub content_html: String,
    /// Absolute URL of the lead image, if any.
    pub image: Option<String>,
    /// From the file itself (front matter). `None` means "use the moment
    /// feedwire first saw the file", which only the catalog knows.
    pub published: Option<DateTime<FixedOffset>>,
    /// From the file itself (front matter `updated`).
    pub updated: Option<DateTime<FixedOffset>>,
    /// Markdown only: `yaml`, `toml` or `None`.
    pub front_matter: Option<String>,
    /// BCP 47 language tag guessed from the text (`vi` or `en`).
    pub language: String,
}

impl Article {
    /// The primary category, if any.
    pub fn category(&self) -> Option<&str> {
        self.categories.first().map(String::as_str)
    }
}
