//! Render: catalog entries → feed documents (RSS 2.0, Atom 1.0, JSON Feed 1.1,
//! OPML), IPTC ninjs 3.1 documents, and the site's own documents
//! (sitemaps, robots.txt, the IndexNow key file: [`sitemap`]). One file per
//! format.
//!
//! A feed is its live documents (`rss.xml`, `atom.xml`, `feed.json`: the
//! newest entries) and, once entries leave that window, RFC 5005 archive
//! pages under its folder (`archive/atom-<n>.xml`, `archive/rss-<n>.xml`,
//! `archive/feed-<n>.json`; n = 1 is the oldest). The live documents link
//! to the newest page (`prev-archive`; `next_url` in JSON Feed), each page
//! to the one before it and back to the live document (`current`).
//!
//! Rendering is a pure function of the entries and the configuration: the
//! same articles give byte-identical documents, and a feed's date is its
//! newest entry's, never the clock's. That is what lets `publish` skip
//! unchanged files and lets HTTP validators survive restarts.

mod atom;
mod fragments;
mod json;
mod ninjs;
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

pub use fragments::{DEFAULT_BUDGET as FRAGMENTS_BUDGET, Fragments, Reuse};
pub(crate) use ninjs::parse_back as ninjs_parse_back;
pub use ninjs::{NINJS_SCHEMA, NINJS_VERSION, ninjs_path, render_canceled, render_ninjs};
pub use opml::render_opml;

/// The kinds of document feedwire publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    Rss,
    Atom,
    Json,
    Opml,
    /// IPTC ninjs 3.1: one article (`ninjs/<id>.json`, partners' pushes), or
    /// a partner's pull feed (`ninjs.json`, a JSON array of articles).
    Ninjs,
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
            DocKind::Ninjs => "ninjs.json",
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
            // IPTC registers no media type of its own for ninjs.
            DocKind::Ninjs => "application/json; charset=utf-8",
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

    /// An archive page's file name: `atom-3.xml`, `rss-3.xml`, `feed-3.json`.
    fn archive_file_name(self, page: u32) -> String {
        let (stem, ext) = self.file_name().split_once('.').unwrap_or(("feed", "xml"));
        format!("{stem}-{page}.{ext}")
    }
}

/// The folder under a feed's folder that holds its archive pages.
pub const ARCHIVE_DIR: &str = "archive";

/// A path (relative to the feeds folder) that names an archive page:
/// `[<category>/]archive/<atom|rss|feed>-<n>.<xml|json>`, n from 1 without
/// leading zeros. Parsing is strict, so a request path either names exactly
/// one page file or nothing (no `..`, no other file, no second spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivePath<'a> {
    /// The feed's category slug; `None` for the main feed.
    pub slug: Option<&'a str>,
    pub kind: DocKind,
    pub page: u32,
}

impl<'a> ArchivePath<'a> {
    pub fn parse(path: &'a str) -> Option<ArchivePath<'a>> {
        let parts: Vec<&str> = path.split('/').collect();
        let (slug, dir, name) = match parts.as_slice() {
            [dir, name] => (None, *dir, *name),
            [slug, dir, name] => (Some(*slug), *dir, *name),
            _ => return None,
        };
        // Category slugs as `article::category_slug` makes them.
        let slug_ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if dir != ARCHIVE_DIR || !slug.is_none_or(slug_ok) {
            return None;
        }
        let (stem, ext) = name.split_once('.')?;
        let (format, number) = stem.split_once('-')?;
        let kind = DocKind::FEEDS
            .into_iter()
            .find(|k| k.file_name() == format!("{format}.{ext}"))?;
        if number.is_empty()
            || number.starts_with('0')
            || !number.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let page = number.parse().ok()?;
        Some(ArchivePath { slug, kind, page })
    }

    pub fn feed(&self) -> FeedKey {
        match self.slug {
            None => FeedKey::Main,
            Some(slug) => FeedKey::Category(slug.to_string()),
        }
    }

    /// The path of the same feed's page `page` in the same format.
    pub fn with_page(&self, page: u32) -> String {
        let dir = self.slug.map(|s| format!("{s}/")).unwrap_or_default();
        format!("{dir}{ARCHIVE_DIR}/{}", self.kind.archive_file_name(page))
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
    /// How many archive pages the feed has (0: none yet); the live
    /// documents link to the newest.
    pub archive_pages: u32,
    /// A partner's pull feed (`/partners/<name>/…`): its own self links and
    /// id, no hub and no archive (it is never published, and WebSub is for
    /// the public).
    pub partner: Option<String>,
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
            archive_pages: 0,
            partner: None,
        }
    }

    /// The pull feed of partner `name` (`/partners/<name>/atom.xml` …).
    pub fn for_partner(cfg: &Config, name: &str) -> FeedInfo {
        FeedInfo {
            key: FeedKey::Main,
            category: None,
            title: format!("{} — {name}", cfg.site.title),
            description: format!("{}: {name}", cfg.site.description),
            archive_pages: 0,
            partner: Some(name.to_string()),
        }
    }

    /// Folder of this feed under the feeds folder, with a trailing slash
    /// (empty for the main feed). A partner's feed is never published: its
    /// "folder" only names it (`partners/<name>/`).
    pub fn dir(&self) -> String {
        if let Some(name) = &self.partner {
            return format!("partners/{}/", site::encode_segment(name));
        }
        match &self.key {
            FeedKey::Main => String::new(),
            FeedKey::Category(slug) => format!("{slug}/"),
        }
    }

    pub fn path(&self, kind: DocKind) -> String {
        format!("{}{}", self.dir(), kind.file_name())
    }

    /// Path of archive page `page` (1 = the oldest) in one format.
    pub fn archive_path(&self, kind: DocKind, page: u32) -> String {
        format!(
            "{}{ARCHIVE_DIR}/{}",
            self.dir(),
            kind.archive_file_name(page)
        )
    }

    /// The human-readable page for this feed (served by feedwire); a
    /// partner's feed has none of its own: the site's home page.
    pub fn html_url(&self, cfg: &Config) -> String {
        if self.partner.is_some() {
            return format!("{}/", cfg.site.base_url);
        }
        format!("{}/feeds/{}", cfg.site.base_url, self.dir())
    }
}

/// Render all three formats of one feed, each capped to `feeds.max_bytes` by
/// leaving out the oldest entries. `tombstones` are the feed's killed
/// articles still announced (RFC 6721 in Atom, an extension in JSON Feed).
///
/// With `reuse`, the documents are joined from entry fragments found in
/// the memo or in the last version of a served document, and only the
/// entries found in neither are rendered (the same bytes).
pub fn render_feed(
    cfg: &Config,
    info: &FeedInfo,
    entries: &[Entry],
    tombstones: &[Tombstone],
    reuse: Option<Reuse<'_>>,
) -> Result<Vec<Document>> {
    let keys = Keyed::new(entries, reuse);
    DocKind::FEEDS
        .iter()
        .map(|&kind| render_keyed(cfg, info, &keys, tombstones, kind))
        .collect()
}

/// Entries with their fragment keys, when fragments are reused.
struct Keyed<'a> {
    entries: &'a [Entry],
    reuse: Option<(Reuse<'a>, Vec<fragments::Key>)>,
}

impl<'a> Keyed<'a> {
    fn new(entries: &'a [Entry], reuse: Option<Reuse<'a>>) -> Keyed<'a> {
        Keyed {
            entries,
            reuse: reuse.map(|r| (r, entries.iter().map(fragments::key).collect())),
        }
    }

    /// How fragments are reused, with the keys of the first `n` entries.
    fn reuse(&self, n: usize) -> Option<(Reuse<'a>, &[fragments::Key])> {
        self.reuse.as_ref().map(|(r, keys)| (*r, &keys[..n]))
    }
}

/// Render archive page `page` of a feed (its entries newest first) in all
/// three formats. Pages are not capped by `feeds.max_bytes`: leaving an
/// entry out would leave it out of every document of the feed.
pub fn render_archive_page(
    cfg: &Config,
    info: &FeedInfo,
    page: u32,
    entries: &[Entry],
    reuse: Option<Reuse<'_>>,
) -> Result<Vec<Document>> {
    let keys = Keyed::new(entries, reuse);
    DocKind::FEEDS
        .iter()
        .map(|&kind| {
            let ctx = Context {
                cfg,
                info,
                updated: newest(entries).unwrap_or_else(epoch),
                tombstones: &[],
                page: Some(page),
                fragments: keys.reuse(entries.len()),
            };
            Ok(Document {
                path: info.archive_path(kind, page),
                kind,
                bytes: render_with(&ctx, entries, kind)?,
                entries: entries.len(),
                updated: newest(entries),
            })
        })
        .collect()
}

/// One format of one feed, capped to `feeds.max_bytes` like the published
/// ones: a partner's pull feed in its `kind` (ninjs: a JSON array of
/// articles, then a canceled notice per tombstone).
pub fn render_capped(
    cfg: &Config,
    info: &FeedInfo,
    entries: &[Entry],
    tombstones: &[Tombstone],
    kind: DocKind,
) -> Result<Document> {
    render_keyed(cfg, info, &Keyed::new(entries, None), tombstones, kind)
}

fn render_keyed(
    cfg: &Config,
    info: &FeedInfo,
    keyed: &Keyed<'_>,
    tombstones: &[Tombstone],
    kind: DocKind,
) -> Result<Document> {
    let entries = keyed.entries;
    let max = cfg.feeds.max_bytes;
    let mut n = entries.len();
    loop {
        let bytes = render_one(cfg, info, &entries[..n], keyed.reuse(n), tombstones, kind)?;
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
    fragments: Option<(Reuse<'_>, &[fragments::Key])>,
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
        page: None,
        fragments,
    };
    render_with(&ctx, entries, kind)
}

fn render_with(ctx: &Context, entries: &[Entry], kind: DocKind) -> Result<Vec<u8>> {
    match kind {
        DocKind::Rss => rss::render(ctx, entries),
        DocKind::Atom => atom::render(ctx, entries),
        DocKind::Json => json::render(ctx, entries),
        DocKind::Ninjs => ninjs::render_list(ctx, entries),
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
        page: None,
        fragments: None,
    };
    let entries = std::slice::from_ref(entry);
    match kind {
        DocKind::Atom => atom::render_entry(&ctx, entry),
        DocKind::Rss => rss::render(&ctx, entries),
        DocKind::Json => json::render(&ctx, entries),
        DocKind::Ninjs => ninjs::render_ninjs(cfg, entry),
        DocKind::Opml | DocKind::Sitemap | DocKind::Text => {
            anyhow::bail!("{kind:?} has no single-entry form")
        }
    }
}

/// Namespace of RFC 5005 feed history (`fh:archive`).
pub const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";

/// Namespace of RFC 6721 tombstones.
pub const TOMBSTONES_NS: &str = "http://purl.org/atompub/tombstones/1.0";

/// Namespace of feedwire's own extension elements (prefix `fw`): the mark on
/// embargoed copy sent to the partners allowed to receive it early,
/// `<fw:status embargoed-until="…">withheld</fw:status>`.
pub const LIFECYCLE_NS: &str = "tag:feedwire.dev,2026:lifecycle";

/// A deletion notice for an article id: an RFC 6721
/// `<at:deleted-entry ref="…" when="…">` document (with `<at:comment>` when a
/// reason was given) for Atom and RSS, `{"deleted": {"id": …, "when": …,
/// "reason": …}}` for JSON, and a `pubStatus: canceled` document for ninjs.
pub fn render_deletion(
    cfg: &Config,
    kind: DocKind,
    id: &str,
    when: DateTime<FixedOffset>,
    reason: Option<&str>,
) -> Result<Vec<u8>> {
    if kind == DocKind::Ninjs {
        return ninjs::render_canceled(cfg, id, when, reason);
    }
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
        DocKind::Ninjs | DocKind::Opml | DocKind::Sitemap | DocKind::Text => {
            anyhow::bail!("no deletion notice in {kind:?}")
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
    /// The archive page being rendered; `None` for the live documents.
    page: Option<u32>,
    /// Where to find the entries' fragments to join the document from,
    /// with their keys; `None` renders every entry in place.
    fragments: Option<(Reuse<'a>, &'a [fragments::Key])>,
}

/// RFC 5005 links of one document besides `self`: (rel, URL).
struct History {
    /// The live document (`current`), on archive pages only.
    current: Option<String>,
    /// The next older document: the newest page from the live document,
    /// page n-1 from page n (`prev-archive`; `next_url` in JSON Feed).
    older: Option<String>,
}

impl Context<'_> {
    fn self_url(&self, kind: DocKind) -> String {
        match self.page {
            Some(page) => site::feed_url(self.cfg, &self.info.archive_path(kind, page)),
            None => self.live_url(kind),
        }
    }

    /// The feed's live document (a partner's is served under
    /// `/partners/`, not published under `/feeds/`).
    fn live_url(&self, kind: DocKind) -> String {
        match &self.info.partner {
            Some(_) => format!("{}/{}", self.cfg.site.base_url, self.info.path(kind)),
            None => site::feed_url(self.cfg, &self.info.path(kind)),
        }
    }

    fn history(&self, kind: DocKind) -> History {
        let url = |page: u32| site::feed_url(self.cfg, &self.info.archive_path(kind, page));
        match self.page {
            None => History {
                current: None,
                older: (self.info.archive_pages > 0).then(|| url(self.info.archive_pages)),
            },
            Some(page) => History {
                current: Some(site::feed_url(self.cfg, &self.info.path(kind))),
                older: (page > 1).then(|| url(page - 1)),
            },
        }
    }

    /// Archive pages advertise no hub: nobody subscribes to an archive; nor
    /// does a partner's private feed.
    fn hubs(&self) -> Vec<String> {
        match (self.page, &self.info.partner) {
            (None, None) => site::advertised_hubs(self.cfg),
            _ => Vec::new(),
        }
    }

    fn feed_id(&self) -> String {
        match &self.info.partner {
            Some(_) => format!("tag:{}:{}", self.cfg.site.tag_authority, self.info.dir()),
            None => format!(
                "tag:{}:feeds/{}",
                self.cfg.site.tag_authority,
                self.info.dir()
            ),
        }
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
    fn archive_paths_parse_strictly_and_round_trip() {
        let cfg = Config::from_toml("", std::path::Path::new("/tmp/config.toml")).unwrap();
        for (key, kind, page) in [
            (FeedKey::Main, DocKind::Atom, 1),
            (FeedKey::Category("thoi-su".into()), DocKind::Rss, 12),
            (
                FeedKey::Category("archive".into()),
                DocKind::Json,
                4_000_000_000,
            ),
        ] {
            let info = FeedInfo::new(&cfg, key.clone(), None);
            let path = info.archive_path(kind, page);
            let parsed = ArchivePath::parse(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((parsed.feed(), parsed.kind, parsed.page), (key, kind, page));
            assert_eq!(parsed.with_page(page), path);
        }
        assert_eq!(
            FeedInfo::new(&cfg, FeedKey::Main, None).archive_path(DocKind::Json, 3),
            "archive/feed-3.json"
        );
        for bad in [
            "archive/atom-0.xml",
            "archive/atom-01.xml",
            "archive/atom-1.json",
            "archive/feed-1.xml",
            "archive/opml-1.xml",
            "archive/index-1.opml",
            "archive/atom-.xml",
            "archive/atom-1x.xml",
            "archive/atom-+1.xml",
            "archive/atom-99999999999.xml",
            "archive/atom.xml",
            "archive/.atom-1.xml.1.2.tmp",
            "../archive/atom-1.xml",
            "./archive/atom-1.xml",
            "a/b/archive/atom-1.xml",
            "Thoi-Su/archive/atom-1.xml",
            "-x/archive/atom-1.xml",
            "/archive/atom-1.xml",
            "archive//atom-1.xml",
            "archives/atom-1.xml",
            "archive/atom-1.xml/",
            "atom.xml",
        ] {
            assert_eq!(ArchivePath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc822_dates_have_two_digit_days_and_real_offsets() {
        let t = FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2023, 8, 3, 14, 5, 9)
            .unwrap();
        assert_eq!(rfc822(&t), "Thu, 03 Aug 2023 14:05:09 +0700");
    }
}
