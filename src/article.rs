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

impl Format {
    /// Which layout a file name selects, or `None` for files feedwire
    /// ignores: `.txt` is wire copy, `.md` and `.markdown` are Markdown.
    pub fn from_file_name(file_name: &str) -> Option<Format> {
        let lower = file_name.to_ascii_lowercase();
        if lower.ends_with(".txt") {
            Some(Format::Wire)
        } else if lower.ends_with(".md") || lower.ends_with(".markdown") {
            Some(Format::Markdown)
        } else {
            None
        }
    }
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
    /// What the file (front matter, or a wire file's sidecar) says about the
    /// article's lifecycle: embargo, status, correction. Left out of the
    /// serialised form when empty, so articles without it hash as before.
    #[serde(default, skip_serializing_if = "Lifecycle::is_empty")]
    pub lifecycle: Lifecycle,
}

/// Where an article stands (IPTC's `pubStatus`): published, held back
/// (embargoed), or withdrawn (killed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Usable,
    Withheld,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Usable => "usable",
            Status::Withheld => "withheld",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s.trim().to_ascii_lowercase().as_str() {
            "usable" => Some(Status::Usable),
            "withheld" => Some(Status::Withheld),
            "canceled" | "cancelled" => Some(Status::Canceled),
            _ => None,
        }
    }

    fn is_usable(&self) -> bool {
        *self == Status::Usable
    }
}

/// What a file says about its article's lifecycle. Editors' commands
/// (`feedwire embargo/kill/correct/reinstate`) override it in the catalog.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Lifecycle {
    /// `status: withheld|canceled` (usable when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Not public before this moment (it makes the article withheld until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embargo: Option<DateTime<FixedOffset>>,
    /// A correction note shown with the article.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<String>,
    /// Why it was killed (with `status: canceled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_reason: Option<String>,
}

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self == &Lifecycle::default()
    }

    /// `other`'s fields where it has them (a sidecar over the file's own).
    pub fn overlaid_with(&self, other: &Lifecycle) -> Lifecycle {
        Lifecycle {
            status: other.status.or(self.status),
            embargo: other.embargo.or(self.embargo),
            correction: other.correction.clone().or_else(|| self.correction.clone()),
            kill_reason: other
                .kill_reason
                .clone()
                .or_else(|| self.kill_reason.clone()),
        }
    }
}

impl Article {
    /// The primary category, if any.
    pub fn category(&self) -> Option<&str> {
        self.categories.first().map(String::as_str)
    }
}

/// A category as feeds show it: the name as written and its URL slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    pub slug: String,
}

impl Category {
    pub fn new(name: &str) -> Category {
        Category {
            name: name.to_string(),
            slug: category_slug(name),
        }
    }
}

/// An article as the catalog knows it: everything a feed entry needs, with the
/// dates resolved (a wire file's `published` is the moment it was first seen).
/// This is what `render` and `syndicate` consume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub title: String,
    pub summary: Option<String>,
    pub content_html: String,
    pub authors: Vec<String>,
    pub categories: Vec<Category>,
    pub tags: Vec<String>,
    pub image: Option<String>,
    pub language: String,
    pub dateline: Option<String>,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
    /// Goes up by one with each change of what the article says (a
    /// correction included); starts at 1.
    #[serde(default = "first_version", skip_serializing_if = "is_first_version")]
    pub version: u32,
    /// `Usable` for everything in a public feed; `Withheld` only in
    /// documents for partners allowed embargoed copy.
    #[serde(default, skip_serializing_if = "Status::is_usable")]
    pub status: Status,
    /// For a withheld entry: when it becomes public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embargoed_until: Option<DateTime<FixedOffset>>,
    /// The correction note, shown at the end of the content and on the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<String>,
    /// When feedwire first saw this id (IPTC's `firstCreated`). Entries
    /// stored by builds before it was kept lack it until their file is read
    /// again (every release reads every file once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<FixedOffset>>,
    /// The date the file itself gives (front matter `date`/`published`),
    /// when it gives one (IPTC's `contentCreated`); `None` when `published`
    /// is feedwire's own first-public time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_created: Option<DateTime<FixedOffset>>,
}

fn first_version() -> u32 {
    1
}

fn is_first_version(v: &u32) -> bool {
    *v == 1
}

impl Entry {
    /// Combine an article with the dates the catalog resolved for it.
    pub fn new(
        article: &Article,
        published: DateTime<FixedOffset>,
        updated: DateTime<FixedOffset>,
    ) -> Entry {
        let mut categories: Vec<Category> = Vec::new();
        for name in &article.categories {
            let c = Category::new(name);
            if !categories.iter().any(|seen| seen.slug == c.slug) {
                categories.push(c);
            }
        }
        Entry {
            id: article.id.clone(),
            title: article.title.clone(),
            summary: article.lead.clone(),
            content_html: article.content_html.clone(),
            authors: article.authors.clone(),
            categories,
            tags: article.tags.clone(),
            image: article.image.clone(),
            language: article.language.clone(),
            dateline: article.dateline.clone(),
            published,
            updated,
            version: 1,
            status: Status::Usable,
            embargoed_until: None,
            correction: article.lifecycle.correction.clone(),
            first_seen: None,
            content_created: article.published,
        }
    }

    /// The same entry without the facts the catalog added to stored
    /// entries later (`first_seen`, `content_created`): what an entry
    /// stored by an earlier build is compared with.
    pub(crate) fn without_later_facts(&self) -> Entry {
        Entry {
            first_seen: None,
            content_created: None,
            ..self.clone()
        }
    }
}

/// URL slug of a category name: diacritics removed, `đ` → `d`, lower case,
/// runs of anything else → one `-` ("Xây dựng Đảng" → `xay-dung-dang`).
pub fn category_slug(name: &str) -> String {
    let ascii = deunicode::deunicode(name);
    let mut slug = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        // A name with nothing transliterable still needs a stable, unique path.
        slug = format!("category-{}", &blake3::hash(name.as_bytes()).to_hex()[..8]);
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::category_slug;

    #[test]
    fn slugs_drop_vietnamese_diacritics() {
        for (name, slug) in [
            ("Xây dựng Đảng", "xay-dung-dang"),
            ("Khoa học - Công nghệ", "khoa-hoc-cong-nghe"),
            ("Thời sự", "thoi-su"),
            ("Đô thị", "do-thi"),
            ("Transport", "transport"),
            ("  Văn hóa  ", "van-hoa"),
        ] {
            assert_eq!(category_slug(name), slug, "{name}");
        }
        // Nothing transliterable: a stable hashed slug rather than an empty path.
        assert_eq!(category_slug("!!!"), category_slug("!!!"));
        assert!(
            category_slug("!!!").starts_with("category-"),
            "{}",
            category_slug("!!!")
        );
    }
}
