//! Render: catalog entries → feed documents (RSS 2.0, Atom 1.0, JSON Feed 1.1,
//! OPML), and the site's own documents (sitemaps, robots.txt, the IndexNow
//! key file: [`sitemap`]). One file per format.
//!
//! Rendering is a pure function of the entries and the configuration: the
//! same articles give byte-identical documents, and a feed's date is its
//! newest entry's, never the clock's. That is what lets `publish` skip
//! unchanged files and lets HTTP validators survive restarts.

mod atom;
mod json;
mod opml;
mod rss;
pub mod sitemap;

use crate::article::{Category, Entry};
use crate::catalog::{FeedKey, Tombstone};
use crate::config::Config;
use crate::html::escape_html;
use crate::site;
use anyhow::Result;
use chrono::{DateTime, FixedOffset, TimeZone};

pub use opml::render_opml;

/// The kinds of document feedwire publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    Rss,
    Atom,
    Json,
    Opml,
    /// A sitemap, a sitemap index or a news sitemap, at the site's root.
    Sitemap,
    /// Plain text at the site's root: `robots.txt`, the IndexNow key file.
    Text,
}

impl DocKind {
    pub const FEEDS: [DocKind; 3] = [DocKind::Rss, DocKind::Atom, DocKind::Json];

    pub fn file_name(self) -> &'static str {
        match self {
            DocKind::Rss => "rss.xml",
            DocKind::Atom => "atom.xml",
            DocKind::Json => "feed.json",
            DocKind::Opml => "index.opml",
            DocKind::Sitemap => sitemap::SITEMAP,
            DocKind::Text => sitemap::ROBOTS,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            DocKind::Rss => "application/rss+xml; charset=utf-8",
            DocKind::Atom => "application/atom+xml; charset=utf-8",
            DocKind::Json => "application/feed+json; charset=utf-8",
            DocKind::Opml => "text/x-opml; charset=utf-8",
            DocKind::Sitemap => "application/xml; charset=utf-8",
            DocKind::Text => "text/plain; charset=utf-8",
        }
    }

    /// Served at the site's root (`/sitemap.xml`), not under `/feeds/`.
    pub fn at_site_root(self) -> bool {
        matches!(self, DocKind::Sitemap | DocKind::Text)
    }

    /// The kind a published path has, from its file name.
    pub fn from_path(path: &str) -> Option<DocKind> {
        let name = path.rsplit('/').next()?;
        [DocKind::Rss, DocKind::Atom, DocKind::Json, DocKind::Opml]
            .into_iter()
            .find(|k| k.file_name() == name)
    }
}

/// One rendered document, ready to publish.
#[derive(Debug, Clone)]
pub struct Document {
    /// Path relative to the feeds folder: `rss.xml`, `xay-dung-dang/atom.xml`.
    pub path: String,
    pub kind: DocKind,
    pub bytes: Vec<u8>,
    /// Entries it holds (after the size cap).
    pub entries: usize,
    /// Its `updated` time: the newest entry's.
    pub updated: Option<DateTime<FixedOffset>>,
}

/// What a feed is, independent of format.
#[derive(Debug, Clone)]
pub struct FeedInfo {
    pub key: FeedKey,
    pub category: Option<Category>,
    pub title: String,
    pub description: String,
}

impl FeedInfo {
    pub fn new(cfg: &Config, key: FeedKey, category: Option<Category>) -> FeedInfo {
        let (title, description) = match &category {
            None => (cfg.site.title.clone(), cfg.site.description.clone()),
            Some(c) => (
                format!("{} — {}", cfg.site.title, c.name),
                format!("{}: {}", cfg.site.description, c.name),
            ),
        };
        FeedInfo {
            key,
            category,
            title,
            description,
        }
    }

    /// Folder of this feed under the feeds folder, with a trailing slash
    /// (empty for the main feed).
    pub fn dir(&self) -> String {
        match &self.key {
            FeedKey::Main => String::new(),
            FeedKey::Category(slug) => format!("{slug}/"),
        }
    }

    pub fn path(&self, kind: DocKind) -> String {
        format!("{}{}", self.dir(), kind.file_name())
    }

    /// The human-readable page for this feed (served by feedwire).
    pub fn html_url(&self, cfg: &Config) -> String {
        format!("{}/feeds/{}", cfg.site.base_url, self.dir())
    }
}

/// Render all three formats of one feed, each capped to `feeds.max_bytes` by
/// leaving out the oldest entries. `tombstones` are the feed's killed
/// articles still announced (RFC 6721 in Atom, an extension in JSON Feed).
pub fn render_feed(
    cfg: &Config,
    info: &FeedInfo,
    entries: &[Entry],
    tombstones: &[Tombstone],
) -> Result<Vec<Document>> {
    DocKind::FEEDS
        .iter()
        .map(|&kind| render_capped(cfg, info, entries, tombstones, kind))
        .collect()
}

fn render_capped(
    cfg: &Config,
    info: &FeedInfo,
    entries: &[Entry],
    tombstones: &[Tombstone],
    kind: DocKind,
) -> Result<Document> {
    let max = cfg.feeds.max_bytes;
    let mut n = entries.len();
    loop {
        let bytes = render_one(cfg, info, &entries[..n], tombstones, kind)?;
        if bytes.len() <= max || n == 0 {
            if n < entries.len() {
                tracing::warn!(
                    feed = %info.path(kind), kept = n, left_out = entries.len() - n,
                    "feed over feeds.max_bytes ({max}); oldest entries left out"
                );
            }
            return Ok(Document {
                path: info.path(kind),
                kind,
                bytes,
                entries: n,
                updated: newest(&entries[..n]),
            });
        }
        // Shrink in proportion to the excess, at least by one entry.
        let estimate = (n as f64 * max as f64 / bytes.len() as f64 * 0.98) as usize;
        n = estimate.min(n - 1);
    }
}

fn render_one(
    cfg: &Config,
    info: &FeedInfo,
    entries: &[Entry],
    tombstones: &[Tombstone],
    kind: DocKind,
) -> Result<Vec<u8>> {
    // A kill changes the feed too: its date is the newest of its entries'
    // and its tombstones'.
    let killed = tombstones
        .iter()
        .map(|t| {
            t.killed_at
                .with_timezone(&cfg.time_zone().unwrap_or(chrono_tz::UTC))
                .fixed_offset()
        })
        .max();
    let updated = newest(entries).max(killed).unwrap_or_else(epoch);
    let ctx = Context {
        cfg,
        info,
        updated,
        tombstones,
    };
    match kind {
        DocKind::Rss => rss::render(&ctx, entries),
        DocKind::Atom => atom::render(&ctx, entries),
        DocKind::Json => json::render(&ctx, entries),
        DocKind::Opml => anyhow::bail!("OPML is rendered by render_opml"),
        DocKind::Sitemap | DocKind::Text => anyhow::bail!("not a feed: see render::sitemap"),
    }
}

/// One entry as a standalone document, for partners: an Atom entry document
/// (`<entry xmlns="http://www.w3.org/2005/Atom">`), an RSS channel with one
/// item, or a JSON Feed with one item. Built by the same code as the feeds.
pub fn render_single(cfg: &Config, kind: DocKind, entry: &Entry) -> Result<Vec<u8>> {
    let info = FeedInfo::new(cfg, FeedKey::Main, None);
    let ctx = Context {
        cfg,
        info: &info,
        updated: entry.updated,
        tombstones: &[],
    };
    let entries = std::slice::from_ref(entry);
    match kind {
        DocKind::Atom => atom::render_entry(&ctx, entry),
        DocKind::Rss => rss::render(&ctx, entries),
        DocKind::Json => json::render(&ctx, entries),
        DocKind::Opml | DocKind::Sitemap | DocKind::Text => {
            anyhow::bail!("{kind:?} has no single-entry form")
        }
    }
}

/// Namespace of RFC 6721 tombstones.
pub const TOMBSTONES_NS: &str = "http://purl.org/atompub/tombstones/1.0";

/// Namespace of feedwire's own extension elements (prefix `fw`): the mark on
/// embargoed copy sent to the partners allowed to receive it early,
/// `<fw:status embargoed-until="…">withheld</fw:status>`.
pub const LIFECYCLE_NS: &str = "tag:feedwire.dev,2026:lifecycle";

/// A deletion notice for an article id: an RFC 6721
/// `<at:deleted-entry ref="…" when="…">` document (with `<at:comment>` when a
/// reason was given) for Atom and RSS, and `{"deleted": {"id": …, "when": …,
/// "reason": …}}` for JSON.
pub fn render_deletion(
    cfg: &Config,
    kind: DocKind,
    id: &str,
    when: DateTime<FixedOffset>,
    reason: Option<&str>,
) -> Result<Vec<u8>> {
    let entry_id = site::entry_id(cfg, id);
    let when = when.to_rfc3339();
    match kind {
        DocKind::Atom | DocKind::Rss => {
            use quick_xml::events::{BytesDecl, BytesStart, Event};
            let mut writer = quick_xml::Writer::new(Vec::with_capacity(256));
            writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
            writer.get_mut().push(b'\n');
            let tombstone = BytesStart::new("at:deleted-entry").with_attributes([
                ("xmlns:at", TOMBSTONES_NS),
                ("ref", entry_id.as_str()),
                ("when", when.as_str()),
            ]);
            match reason {
                None => writer.write_event(Event::Empty(tombstone))?,
                Some(reason) => {
                    writer.write_event(Event::Start(tombstone.borrow()))?;
                    writer
                        .create_element("at:comment")
                        .write_text_content(quick_xml::events::BytesText::new(reason))?;
                    writer.write_event(Event::End(tombstone.to_end()))?;
                }
            }
            let mut out = writer.into_inner();
            out.push(b'\n');
            Ok(out)
        }
        DocKind::Json => {
            let mut deleted = serde_json::json!({ "id": entry_id, "when": when });
            if let Some(reason) = reason {
                deleted["reason"] = reason.into();
            }
            let mut out = serde_json::to_vec_pretty(&serde_json::json!({ "deleted": deleted }))?;
            out.push(b'\n');
            Ok(out)
        }
        DocKind::Opml | DocKind::Sitemap | DocKind::Text => {
            anyhow::bail!("{kind:?} has no deletion notice")
        }
    }
}

/// What every format needs besides the entries.
struct Context<'a> {
    cfg: &'a Config,
    info: &'a FeedInfo,
    /// The feed's own date: its newest entry's `updated` (or tombstone's).
    updated: DateTime<FixedOffset>,
    tombstones: &'a [Tombstone],
}

impl Context<'_> {
    fn self_url(&self, kind: DocKind) -> String {
        site::feed_url(self.cfg, &self.info.path(kind))
    }
    fn feed_id(&self) -> String {
        format!(
            "tag:{}:feeds/{}",
            self.cfg.site.tag_authority,
            self.info.dir()
        )
    }
}

/// The newest `updated` among entries.
fn newest(entries: &[Entry]) -> Option<DateTime<FixedOffset>> {
    entries.iter().map(|e| e.updated).max()
}

/// A fixed date for feeds with no entries yet: deterministic, never "now".
fn epoch() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .unwrap()
        .timestamp_opt(946_684_800, 0)
        .unwrap()
}

/// The full HTML of an entry as feeds carry it: the lead (bold, as a news
/// page shows it), the body, and a correction note at the end, marked as one.
fn full_html(entry: &Entry) -> String {
    let mut html = match &entry.summary {
        Some(lead) => format!(
            "<p><strong>{}</strong></p>\n{}",
            escape_html(lead),
            entry.content_html
        ),
        None => entry.content_html.clone(),
    };
    if let Some(note) = &entry.correction {
        html.push_str(&format!(
            "\n<p class=\"correction\"><strong>Đính chính:</strong> {}</p>",
            escape_html(note)
        ));
    }
    html
}

/// When a withheld entry becomes public, as its mark says it.
fn embargo_mark(entry: &Entry) -> Option<String> {
    (entry.status == crate::article::Status::Withheld).then(|| {
        entry
            .embargoed_until
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    })
}

/// RFC 822 date as RSS wants it: two-digit day, four-digit year, numeric zone,
/// English names whatever the locale.
fn rfc822(t: &DateTime<FixedOffset>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// A MIME type for an image URL, from its extension.
fn image_type(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("svg") => "image/svg+xml",
        _ => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rfc822_dates_have_two_digit_days_and_real_offsets() {
        let t = FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2023, 8, 3, 14, 5, 9)
            .unwrap();
        assert_eq!(rfc822(&t), "Thu, 03 Aug 2023 14:05:09 +0700");
    }
}
