//! The catalog: feedwire's one source of truth, and the only module that
//! knows how it is stored.
//!
//! It owns what exists (accepted articles and the files they came from), when
//! each id was first seen (so `published` never moves across rebuilds and
//! restarts), which feeds every article belongs to (kept as an index ordered
//! newest first, so rendering a feed reads only its newest N rows no matter how
//! large the archive is), which archive page each entry that left a feed's
//! live window was placed in (RFC 5005), which files were rejected and why,
//! removals held for an operator, what was published when, and syndication's
//! outbox and subscriptions (which must commit in the same transaction as the
//! change that caused them).
//!
//! Other modules see typed values and methods, never tables or SQL. Storage
//! is a [`Backend`]: SQLite in `sqlite/` (a file under `paths.state`, the
//! default) or PostgreSQL in `postgres/` (`[catalog] url`); the rules of a change are written
//! once, in [`Batch`], over a backend's row operations ([`Tx`]). Changes go
//! through a batch, one transaction: a crash keeps the whole batch or none.
//! Several instances on one PostgreSQL catalog agree on a leader through it
//! (`cluster.rs`).

#[cfg(test)]
mod archive_tests;
mod batch;
mod cluster;
mod outbox;
mod postgres;
mod sitemap;
mod sqlite;
#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use cluster::{
    Election, InstanceInfo, LeaseInfo, LeaseLost, Member, Notice, Notifications, PublishedDocument,
    Role, SharedDocument, Term,
};
pub use outbox::{
    ActiveSubscription, DueFilter, LimitHit, OutboxRow, OutboxSummary, OutboxUpdate,
    PartnerBacklog, Reservation, Subscription, SubscriptionLimits,
};

pub use sitemap::{NewsPage, PageUrl, SitemapLimits, SitemapPage, SitemapUrl, Unlisted};

pub use crate::config::CatalogLocation;
pub use postgres::CopyReport;

use crate::article::{Category, Entry};
use crate::config::PostgresUrl;
use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::path::Path;

/// A feed the catalog can list entries for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeedKey {
    /// Every article.
    Main,
    /// Articles in one category, by slug.
    Category(String),
}

impl FeedKey {
    /// The key as stored: `""` for the main feed, else the slug.
    pub(crate) fn stored(&self) -> &str {
        match self {
            FeedKey::Main => "",
            FeedKey::Category(slug) => slug,
        }
    }

    pub(crate) fn from_stored(s: String) -> FeedKey {
        if s.is_empty() {
            FeedKey::Main
        } else {
            FeedKey::Category(s)
        }
    }
}

pub use crate::source::FileStamp;

/// A file the catalog knows, accepted or rejected.
#[derive(Debug, Clone)]
pub struct KnownFile {
    pub stamp: FileStamp,
    /// The article id, for accepted files.
    pub id: Option<String>,
}

/// What happened to an article in a batch; syndication turns these into
/// deliveries.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Became public (new, an embargo lifted, or reinstated).
    Added(Entry),
    /// A public article changed what it says (its version went up).
    Updated(Entry),
    /// Stored but not public yet (embargoed): only partners allowed
    /// embargoed copy hear of it, clearly marked.
    Withheld(Entry),
    /// Killed: its file was deleted, or an editor withdrew it. `categories`
    /// are the slugs it was filed under, for routing the notice;
    /// `was_public` says whether readers and every partner saw it (an
    /// embargoed article killed before its time was seen by fewer).
    Killed {
        id: String,
        categories: Vec<String>,
        reason: Option<String>,
        was_public: bool,
    },
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Change::Added(e) | Change::Updated(e) | Change::Withheld(e) => &e.id,
            Change::Killed { id, .. } => id,
        }
    }
}

pub use crate::article::Status;

/// An editor's override of what a file says about its article, set by
/// `feedwire embargo`, `kill` and `correct` and cleared by `reinstate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Override {
    pub status: Option<Status>,
    pub embargo_until: Option<DateTime<Utc>>,
    pub correction: Option<String>,
    /// Why it was killed.
    pub reason: Option<String>,
}

/// An editor's command, as the command line records it for the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum EditorCommand {
    Embargo { until: DateTime<Utc> },
    Kill { reason: Option<String> },
    Correct { note: String },
    Reinstate,
}

impl EditorCommand {
    pub fn name(&self) -> &'static str {
        match self {
            EditorCommand::Embargo { .. } => "embargo",
            EditorCommand::Kill { .. } => "kill",
            EditorCommand::Correct { .. } => "correct",
            EditorCommand::Reinstate => "reinstate",
        }
    }
}

/// A command recorded and not yet acted on by the pipeline.
#[derive(Debug, Clone)]
pub struct PendingCommand {
    pub seq: i64,
    pub id: String,
    pub command: String,
    pub who: String,
    pub at: DateTime<Utc>,
}

/// A killed article's notice, kept in the feeds it was in for a while
/// (RFC 6721 `at:deleted-entry`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub id: String,
    pub killed_at: DateTime<Utc>,
    pub reason: Option<String>,
    pub feeds: Vec<FeedKey>,
    pub expires_at: DateTime<Utc>,
}

/// What there is to show for an article id.
#[derive(Debug, Clone)]
pub enum ArticleState {
    Public(Box<Entry>),
    /// Embargoed: not public yet (a page says nothing of it: 404).
    Withheld,
    /// Killed (410 Gone with a notice).
    Killed {
        at: DateTime<Utc>,
        reason: Option<String>,
    },
    Unknown,
}

/// How many articles a batch added, updated and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
}

/// A rejected file and the reason, for `status`.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub path: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A file whose disappearance is waiting for an operator (see
/// `watch.max_removals`).
#[derive(Debug, Clone)]
pub struct HeldRemoval {
    pub path: String,
    pub id: String,
    pub held_at: DateTime<Utc>,
    /// `feedwire apply-removals` was run: removed at the next reconciliation.
    pub approved: bool,
}

/// The version of a published document the catalog recorded: its content
/// hash and when it was first published.
#[derive(Debug, Clone)]
pub struct FeedRecord {
    pub path: String,
    pub hash: String,
    pub published_at: DateTime<Utc>,
}

/// An id's lasting record: when it was first seen and what it last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub id: String,
    pub first_seen_us: i64,
    /// Hash of what the article says (not of the file's bytes).
    pub content_hash: String,
    /// When what it says last changed.
    pub changed_at_us: i64,
    /// Goes up by one with each change of what it says.
    pub version: u32,
    /// When it first became public (an embargo's end, or its first-seen time).
    pub public_since_us: Option<i64>,
    /// Set while killed: not published again until reinstated.
    pub killed_at_us: Option<i64>,
    pub kill_reason: Option<String>,
}

/// What kind of delivery an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    /// "Feed <topic> changed" for the built-in hub; expanded into one
    /// `WebSub` row per active subscriber once the new version is served.
    Fanout,
    /// The current document of a topic to one subscriber's callback.
    WebSub,
    /// A publish ping to an external hub.
    Hub,
    /// A legacy XML-RPC `weblogUpdates.ping`.
    Ping,
    /// A rendered single-entry document for a partner.
    Partner,
    /// An article page's URL for an IndexNow endpoint; the worker sends the
    /// endpoint's waiting URLs together, one request for many.
    IndexNow,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Fanout => "fanout",
            DeliveryKind::WebSub => "websub",
            DeliveryKind::Hub => "hub",
            DeliveryKind::Ping => "ping",
            DeliveryKind::Partner => "partner",
            DeliveryKind::IndexNow => "indexnow",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<DeliveryKind> {
        [
            DeliveryKind::Fanout,
            DeliveryKind::WebSub,
            DeliveryKind::Hub,
            DeliveryKind::Ping,
            DeliveryKind::Partner,
            DeliveryKind::IndexNow,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A delivery for the outbox, queued in a batch's transaction.
#[derive(Debug, Clone)]
pub enum NewDelivery {
    /// About a feed document (fan-out, hub ping, legacy ping): it waits
    /// (gated) until the new version of `topic` is served, so nobody fetches
    /// the previous one; a copy of a row still waiting is not queued twice.
    Feed {
        kind: DeliveryKind,
        target: String,
        topic: String,
    },
    /// A partner's rendered document, in order per article.
    Partner {
        partner: String,
        article: String,
        body: Vec<u8>,
        content_type: String,
        idempotency_key: String,
    },
    /// An article page's URL for an IndexNow endpoint, due `delay_ms` from
    /// now so that the URLs of a burst go in one request.
    IndexNow {
        endpoint: String,
        url: String,
        article: String,
        delay_ms: i64,
    },
}

/// How a feed's entries are split between its live document and its
/// archive pages (`feeds.max_items`, `feeds.archive_page_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArchiveRule {
    /// Entries in the live window.
    pub live: usize,
    /// Entries placed in one archive page before the next starts.
    pub page_size: u32,
}

impl Default for ArchiveRule {
    fn default() -> Self {
        ArchiveRule {
            live: 50,
            page_size: 50,
        }
    }
}

/// Why an article could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("duplicate id `{id}`: already used by {owner}")]
    DuplicateId { id: String, owner: String },
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

/// Row operations inside one write transaction: what a backend must provide
/// for [`Batch`] to apply its rules. Dropping a `Tx` without [`Tx::commit`]
/// rolls it back.
pub(crate) trait Tx {
    /// The file that provides an article id.
    fn article_path(&mut self, id: &str) -> Result<Option<String>>;
    /// The article id a file provides.
    fn article_at(&mut self, path: &str) -> Result<Option<String>>;
    fn identity(&mut self, id: &str) -> Result<Option<Identity>>;
    fn put_identity(&mut self, identity: &Identity) -> Result<()>;
    /// The stored entry (JSON) of an article.
    fn article_entry(&mut self, id: &str) -> Result<Option<String>>;
    /// The stored state of an article: public or withheld.
    fn article_status(&mut self, id: &str) -> Result<Option<Status>>;
    fn put_article(&mut self, row: &ArticleRow<'_>) -> Result<()>;
    /// An editor's override for an id.
    fn editorial(&mut self, id: &str) -> Result<Option<Override>>;
    fn put_tombstone(&mut self, t: &Tombstone) -> Result<()>;
    /// Remove an id's tombstone; the feeds it was in.
    fn delete_tombstone(&mut self, id: &str) -> Result<Vec<FeedKey>>;
    /// Remove tombstones that expired by `now_us`; the feeds they were in.
    fn purge_tombstones(&mut self, now_us: i64) -> Result<Vec<FeedKey>>;
    /// Remove an article and its memberships (its identity stays).
    fn delete_article(&mut self, id: &str) -> Result<()>;
    fn memberships(&mut self, id: &str) -> Result<Vec<FeedKey>>;
    /// Replace an article's memberships (all live: archive pages are set
    /// again with [`Tx::move_to_page`]).
    fn set_memberships(&mut self, id: &str, published_us: i64, feeds: &[FeedKey]) -> Result<()>;
    /// The archive pages an article is in: its memberships that left their
    /// feed's live window, as (feed, page).
    fn archive_pages_of(&mut self, id: &str) -> Result<Vec<(FeedKey, u32)>>;
    /// A feed's live members (not archived) past its newest `keep`, oldest
    /// first: the ones to archive. Reads `keep` + that many rows.
    fn live_beyond(&mut self, feed: &FeedKey, keep: usize) -> Result<Vec<String>>;
    /// A feed's newest archive page and how many entries were ever placed in it.
    fn newest_archive_page(&mut self, feed: &FeedKey) -> Result<Option<(u32, u32)>>;
    /// Put an article's membership of `feed` in archive page `page`.
    fn move_to_page(&mut self, feed: &FeedKey, id: &str, page: u32) -> Result<()>;
    /// An archive page changed and is to be published again (created if
    /// new); `assigned`, when given, is its new count of entries ever placed
    /// in it.
    fn touch_archive_page(
        &mut self,
        feed: &FeedKey,
        page: u32,
        assigned: Option<u32>,
    ) -> Result<()>;
    /// Record a category's display name the first time its slug is seen.
    fn ensure_category(&mut self, category: &Category) -> Result<()>;
    fn put_file(&mut self, path: &str, stamp: &FileStamp, id: Option<&str>) -> Result<()>;
    fn touch_file(&mut self, path: &str, stamp: &FileStamp) -> Result<()>;
    /// Forget a file: its stamp, rejection and held removal.
    fn delete_file(&mut self, path: &str) -> Result<()>;
    fn put_rejection(
        &mut self,
        path: &str,
        reason: &str,
        duplicate_of: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    fn clear_rejection(&mut self, path: &str) -> Result<()>;
    /// Files rejected because `id` was taken.
    fn waiting_on(&mut self, id: &str) -> Result<Vec<String>>;
    /// Held removals: path → approved.
    fn held_removals(&mut self) -> Result<HashMap<String, bool>>;
    fn hold_removal(&mut self, path: &str, id: &str, at: DateTime<Utc>) -> Result<bool>;
    fn release_hold(&mut self, path: &str) -> Result<bool>;
    fn enqueue(&mut self, deliveries: &[NewDelivery]) -> Result<usize>;
    /// The page and bytes of a listed article.
    fn sitemap_url(&mut self, id: &str) -> Result<Option<(i64, i64)>>;
    /// List an article on a page, or replace what is listed of it.
    fn put_sitemap_url(&mut self, page: i64, url: &SitemapUrl) -> Result<()>;
    /// Unlist an article; its page, bytes and publication time.
    fn delete_sitemap_url(&mut self, id: &str) -> Result<Option<(i64, i64, i64)>>;
    fn sitemap_page(&mut self, page: i64) -> Result<Option<SitemapPage>>;
    /// The last page that lists anything.
    fn last_filled_sitemap_page(&mut self) -> Result<Option<SitemapPage>>;
    fn put_sitemap_page(&mut self, page: &SitemapPage) -> Result<()>;
    /// Unlist everything; every page stays, empty, changed at `now_us`.
    fn clear_sitemap(&mut self, now_us: i64) -> Result<()>;
    /// Entries (JSON) of public articles after (`published_us`, `id`) in
    /// publication order, at most `limit`.
    fn public_entries_after(
        &mut self,
        published_us: i64,
        id: &str,
        limit: usize,
    ) -> Result<Vec<String>>;
    fn commit(self: Box<Self>) -> Result<()>;
}

/// An article as stored.
pub(crate) struct ArticleRow<'a> {
    pub id: &'a str,
    pub path: &'a str,
    pub published_us: i64,
    pub entry: &'a str,
    pub status: Status,
    pub embargo_until_us: Option<i64>,
}

/// A storage backend: everything the catalog does outside a batch, and the
/// start of one. Each handle is one connection (or session) of its own.
pub(crate) trait Backend: outbox::OutboxBackend + cluster::ClusterBackend + Send {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>>;
    fn known_files(&self) -> Result<HashMap<String, KnownFile>>;
    fn known_files_among(
        &self,
        keys: &mut dyn Iterator<Item = &str>,
    ) -> Result<HashMap<String, KnownFile>>;
    /// The newest `limit` live (not archived) entries of a feed, newest first.
    fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<String>>;
    /// How many archive pages a feed has (its newest page's number; 0 = none).
    fn archive_page_count(&self, feed: &FeedKey) -> Result<u32>;
    /// The entries of one archive page, newest first.
    fn archive_page(&self, feed: &FeedKey, page: u32) -> Result<Vec<String>>;
    /// Archive pages that changed since they were last published.
    fn stale_archive_pages(&self) -> Result<Vec<(FeedKey, u32)>>;
    /// An archive page was published as it stands.
    fn archive_page_published(&self, feed: &FeedKey, page: u32) -> Result<()>;
    fn entry(&self, id: &str) -> Result<Option<String>>;
    fn categories(&self) -> Result<Vec<Category>>;
    fn category(&self, slug: &str) -> Result<Option<Category>>;
    fn article_count(&self) -> Result<u64>;
    fn rejection_count(&self) -> Result<u64>;
    fn rejections(&self) -> Result<Vec<Rejection>>;
    fn held_removals(&self) -> Result<Vec<HeldRemoval>>;
    fn approve_held_removals(&self) -> Result<usize>;
    fn record_published(&self, path: &str, hash: &str, at: DateTime<Utc>) -> Result<()>;
    fn published_feeds(&self) -> Result<Vec<FeedRecord>>;
    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    fn forget_file_stamps(&self) -> Result<()>;
    /// Changes when another connection changed what an operator's command
    /// changes (held removals): SQLite's `PRAGMA data_version` (any commit
    /// by another connection), PostgreSQL's counter moved by a trigger.
    fn data_version(&self) -> Result<i64>;
    fn article_state(&self, id: &str) -> Result<ArticleState>;
    /// Tombstones alive at `now_us` (every feed; few).
    fn tombstones(&self, now_us: i64) -> Result<Vec<Tombstone>>;
    /// The next moment an embargo ends or a tombstone expires.
    fn next_lifecycle_deadline(&self) -> Result<Option<i64>>;
    /// Files of withheld articles whose embargo ended by `now_us`.
    fn lapsed_embargoes(&self, now_us: i64) -> Result<Vec<String>>;
    /// Entries (JSON) of withheld articles, newest first by published time
    /// then id descending, skipping `offset`: few, and indexed.
    fn withheld(&self, offset: usize, limit: usize) -> Result<Vec<String>>;
    /// The file that provides an id (accepted, withheld or killed).
    fn file_of(&self, id: &str) -> Result<Option<String>>;
    /// Record an editor's command and its override, in one transaction.
    fn record_command(
        &self,
        id: &str,
        command: &EditorCommand,
        who: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    fn pending_commands(&self) -> Result<Vec<PendingCommand>>;
    fn mark_commands_applied(&self, up_to_seq: i64) -> Result<()>;
    /// Every override in force, for `status`.
    fn overrides(&self) -> Result<Vec<(String, Override)>>;
    fn sitemap_pages(&self) -> Result<Vec<SitemapPage>>;
    fn sitemap_page_urls(&self, page: i64) -> Result<Vec<PageUrl>>;
    fn news_urls(&self, since_us: i64) -> Result<Vec<SitemapUrl>>;
    fn news_page_urls(&self, page: i64, since_us: i64) -> Result<Vec<SitemapUrl>>;
    fn sitemap_page_row(&self, page: i64) -> Result<Option<SitemapPage>>;
    /// Listed articles published at or after `since_us`, counted up to
    /// `limit` (a bounded read, whatever the window holds).
    fn news_count_up_to(&self, since_us: i64, limit: i64) -> Result<i64>;
    fn news_pages(&self, since_us: i64) -> Result<Vec<NewsPage>>;
    fn news_pages_left(&self, from_us: i64, to_us: i64) -> Result<Vec<i64>>;
}

/// What readers of published articles may ask (the HTML pages): the
/// read-only face of the catalog, so `serve` cannot change anything.
pub trait ArticleReader: Send {
    /// The newest `limit` entries of a feed, newest first.
    fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<Entry>>;
    /// What there is to show for an article id.
    fn article(&self, id: &str) -> Result<ArticleState>;
    /// Every feed, main first, then categories by slug.
    fn feeds(&self) -> Result<Vec<(FeedKey, Option<Category>)>>;
    /// The display name of a category slug.
    fn category(&self, slug: &str) -> Result<Option<Category>>;
    /// A partner's view: see [`Catalog::newest_for`].
    fn newest_for(&self, categories: &[String], withheld: bool, limit: usize)
    -> Result<Vec<Entry>>;
    /// Tombstones alive now in any of these categories' feeds (every feed
    /// when empty), newest first.
    fn tombstones_in(&self, categories: &[String]) -> Result<Vec<Tombstone>>;
    /// A published document's current version with its bytes, where the
    /// catalog keeps them: see [`Catalog::published_document`].
    fn published_document(&self, path: &str) -> Result<Option<cluster::SharedDocument>> {
        let _ = path;
        Ok(None)
    }
    /// A page of the full sitemap with its URLs, if the sitemap has such
    /// a file: the page exists and is not the only one (one page is
    /// `sitemap.xml` itself).
    fn sitemap_page(&self, page: i64) -> Result<Option<(SitemapPage, Vec<PageUrl>)>> {
        let _ = page;
        Ok(None)
    }
    /// A page's articles published at or after `since_us`, newest first
    /// (its news file), if the news sitemap has such a file: the page
    /// exists and more than `max_urls` articles are in the window (fewer
    /// are `news-sitemap.xml` itself).
    fn news_page(
        &self,
        page: i64,
        since_us: i64,
        max_urls: usize,
    ) -> Result<Option<Vec<SitemapUrl>>> {
        let _ = (page, since_us, max_urls);
        Ok(None)
    }
}

impl ArticleReader for Catalog {
    fn published_document(&self, path: &str) -> Result<Option<cluster::SharedDocument>> {
        Catalog::published_document(self, path)
    }
    fn sitemap_page(&self, page: i64) -> Result<Option<(SitemapPage, Vec<PageUrl>)>> {
        let Some(p) = self.backend.sitemap_page_row(page)? else {
            return Ok(None);
        };
        // Pages are never removed, so a second one means an index.
        if self.backend.sitemap_page_row(2)?.is_none() {
            return Ok(None);
        }
        Ok(Some((p, self.sitemap_page_urls(page)?)))
    }
    fn news_page(
        &self,
        page: i64,
        since_us: i64,
        max_urls: usize,
    ) -> Result<Option<Vec<SitemapUrl>>> {
        let limit = max_urls as i64 + 1;
        if self.backend.sitemap_page_row(page)?.is_none()
            || self.backend.news_count_up_to(since_us, limit)? < limit
        {
            return Ok(None);
        }
        Ok(Some(self.news_page_urls(page, since_us)?))
    }
    fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<Entry>> {
        Catalog::newest(self, feed, limit)
    }
    fn article(&self, id: &str) -> Result<ArticleState> {
        Catalog::article_state(self, id)
    }
    fn feeds(&self) -> Result<Vec<(FeedKey, Option<Category>)>> {
        Catalog::feeds(self)
    }
    fn category(&self, slug: &str) -> Result<Option<Category>> {
        Catalog::category(self, slug)
    }
    fn newest_for(
        &self,
        categories: &[String],
        withheld: bool,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        Catalog::newest_for(self, categories, withheld, limit)
    }
    fn tombstones_in(&self, categories: &[String]) -> Result<Vec<Tombstone>> {
        let now = Utc::now();
        let mut out: Vec<Tombstone> = Vec::new();
        for key in feed_keys(categories) {
            for t in self.tombstones_for(&key, now)? {
                if !out.iter().any(|seen| seen.id == t.id) {
                    out.push(t);
                }
            }
        }
        out.sort_by(|a, b| b.killed_at.cmp(&a.killed_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// The feeds a reader of these category slugs reads: the main feed when
/// none are named.
fn feed_keys(categories: &[String]) -> Vec<FeedKey> {
    if categories.is_empty() {
        vec![FeedKey::Main]
    } else {
        categories
            .iter()
            .map(|slug| FeedKey::Category(slug.clone()))
            .collect()
    }
}

/// What [`Catalog::open`] accepts: a SQLite file's path, or where the
/// config says the catalog is (`Config::catalog_path`).
pub trait Locate {
    fn catalog_location(&self) -> CatalogLocation;
}

impl Locate for Path {
    fn catalog_location(&self) -> CatalogLocation {
        CatalogLocation::Sqlite(self.to_path_buf())
    }
}

impl Locate for std::path::PathBuf {
    fn catalog_location(&self) -> CatalogLocation {
        CatalogLocation::Sqlite(self.clone())
    }
}

impl Locate for CatalogLocation {
    fn catalog_location(&self) -> CatalogLocation {
        self.clone()
    }
}

/// A handle on the catalog. Each handle holds its own connection; open one
/// per thread or task that needs it.
pub struct Catalog {
    backend: Box<dyn Backend>,
    tz: Tz,
    /// How long a killed article's tombstone stays in its feeds.
    tombstone_keep: chrono::Duration,
    archive: ArchiveRule,
}

impl Catalog {
    /// Open (creating and migrating if needed) the catalog: a SQLite file
    /// (a path) or a PostgreSQL database (`Config::catalog_path`).
    pub fn open(at: &(impl Locate + ?Sized), tz: Tz) -> Result<Catalog> {
        let backend: Box<dyn Backend> = match at.catalog_location() {
            CatalogLocation::Sqlite(path) => Box::new(sqlite::Sqlite::open(&path)?),
            CatalogLocation::Postgres(url) => Box::new(postgres::Postgres::open(&url)?),
        };
        Ok(Catalog::on(backend, tz))
    }

    /// A handle on an open backend, with the default lifecycle and archive
    /// rules (the daemon sets its configured ones).
    fn on(backend: Box<dyn Backend>, tz: Tz) -> Catalog {
        Catalog {
            backend,
            tz,
            tombstone_keep: chrono::Duration::days(7),
            archive: ArchiveRule::default(),
        }
    }

    /// Open for commands (`status`, `apply-removals`): like `open`, but a
    /// missing catalog is an error, not a new empty one.
    pub fn open_existing(at: &(impl Locate + ?Sized), tz: Tz) -> Result<Catalog> {
        match at.catalog_location() {
            CatalogLocation::Sqlite(path) => {
                if !path.exists() {
                    anyhow::bail!(
                        "no catalog at {} yet: run `feedwire build` or `feedwire run` first",
                        path.display()
                    );
                }
                Self::open(&path, tz)
            }
            CatalogLocation::Postgres(url) => Ok(Catalog::on(
                Box::new(postgres::Postgres::open_existing(&url)?),
                tz,
            )),
        }
    }

    /// `feedwire migrate-catalog`: copy the SQLite catalog at `sqlite` into
    /// the empty PostgreSQL catalog at `to`, every table in one transaction.
    /// Only outside an async runtime (the command line).
    pub fn copy_sqlite_to_postgres(sqlite: &Path, to: &PostgresUrl) -> Result<CopyReport> {
        postgres::copy_from_sqlite(sqlite, to)
    }

    /// Start a batch of changes: one write transaction, holding the write
    /// lock from its start so other writers wait rather than break it.
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        let (tz, keep, archive) = (self.tz, self.tombstone_keep, self.archive);
        Ok(Batch::new(self.backend.begin()?, tz, keep, archive))
    }

    /// How long tombstones stay in the feeds (`lifecycle.tombstone_days`).
    pub fn set_tombstone_days(&mut self, days: u32) {
        self.tombstone_keep = chrono::Duration::days(days.into());
    }

    /// How many entries a feed's live window holds (`feeds.max_items`) and
    /// how many go in one archive page (`feeds.archive_page_size`).
    pub fn set_archive(&mut self, live: usize, page_size: u32) {
        self.archive = ArchiveRule { live, page_size };
    }

    /// How many archive pages a feed has: the newest page's number (pages
    /// count from 1, the oldest); 0 when nothing is archived yet.
    pub fn archive_page_count(&self, feed: &FeedKey) -> Result<u32> {
        self.backend.archive_page_count(feed)
    }

    /// The entries of one archive page, newest first.
    pub fn archive_page(&self, feed: &FeedKey, page: u32) -> Result<Vec<Entry>> {
        self.backend
            .archive_page(feed, page)?
            .iter()
            .map(|json| decode(json))
            .collect()
    }

    /// Archive pages that changed since they were last published (kept in
    /// the catalog, so a crash between a commit and its publish is repaired
    /// at the next publish).
    pub fn stale_archive_pages(&self) -> Result<Vec<(FeedKey, u32)>> {
        self.backend.stale_archive_pages()
    }

    /// An archive page was published as it stands now.
    pub fn archive_page_published(&self, feed: &FeedKey, page: u32) -> Result<()> {
        self.backend.archive_page_published(feed, page)
    }

    /// What there is to show for an article id: public, withheld, killed.
    pub fn article_state(&self, id: &str) -> Result<ArticleState> {
        self.backend.article_state(id)
    }

    /// Tombstones in a feed at `now`, newest first.
    pub fn tombstones_for(&self, feed: &FeedKey, now: DateTime<Utc>) -> Result<Vec<Tombstone>> {
        let mut out: Vec<Tombstone> = self
            .backend
            .tombstones(now.timestamp_micros())?
            .into_iter()
            .filter(|t| t.feeds.contains(feed))
            .collect();
        out.sort_by(|a, b| b.killed_at.cmp(&a.killed_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The next moment an embargo ends or a tombstone expires: the daemon
    /// sets a timer for it (not a periodic scan).
    pub fn next_lifecycle_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .backend
            .next_lifecycle_deadline()?
            .and_then(DateTime::from_timestamp_micros))
    }

    /// Files of withheld articles whose embargo has ended by `now`.
    pub fn lapsed_embargoes(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.backend.lapsed_embargoes(now.timestamp_micros())
    }

    /// The file that provides an id, if the catalog knows one.
    pub fn file_of(&self, id: &str) -> Result<Option<String>> {
        self.backend.file_of(id)
    }

    /// An editor's command (`feedwire embargo/kill/correct/reinstate`): its
    /// override takes effect in the catalog at once, and the command is
    /// logged (who, when) for the daemon, which acts on it within a second.
    pub fn record_command(
        &self,
        id: &str,
        command: &EditorCommand,
        who: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.backend.record_command(id, command, who, at)
    }

    /// Commands the pipeline has not acted on yet, oldest first.
    pub fn pending_commands(&self) -> Result<Vec<PendingCommand>> {
        self.backend.pending_commands()
    }

    pub fn mark_commands_applied(&self, up_to_seq: i64) -> Result<()> {
        self.backend.mark_commands_applied(up_to_seq)
    }

    /// Every editor's override in force, for `status`.
    pub fn overrides(&self) -> Result<Vec<(String, Override)>> {
        self.backend.overrides()
    }

    /// Every file the catalog has seen, by path relative to the articles folder.
    pub fn known_files(&self) -> Result<HashMap<String, KnownFile>> {
        self.backend.known_files()
    }

    /// What the catalog knows of just these files: per-event work must not
    /// load the whole archive's file list.
    pub fn known_files_among<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<HashMap<String, KnownFile>> {
        self.backend.known_files_among(&mut keys.into_iter())
    }

    /// The newest `limit` live entries of a feed (not archived), newest first.
    pub fn newest(&self, feed: &FeedKey, limit: usize) -> Result<Vec<Entry>> {
        self.backend
            .newest(feed, limit)?
            .iter()
            .map(|json| decode(json))
            .collect()
    }

    /// The newest `limit` entries in any of these categories (slugs; every
    /// article when empty), newest first: a partner's pull feed. With
    /// `withheld`, embargoed articles of those categories are among them,
    /// marked as withheld (only for partners allowed embargoed copy). Reads
    /// at most `limit` entries per category plus the withheld ones looked
    /// at, never the archive.
    pub fn newest_for(
        &self,
        categories: &[String],
        withheld: bool,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let mut out: Vec<Entry> = Vec::new();
        for key in feed_keys(categories) {
            out.extend(self.newest(&key, limit)?);
        }
        if withheld {
            let wanted = |e: &Entry| {
                categories.is_empty()
                    || e.categories
                        .iter()
                        .any(|c| categories.iter().any(|s| s == &c.slug))
            };
            let mut offset = 0;
            let mut found = 0;
            while found < limit {
                let page = self.backend.withheld(offset, limit)?;
                offset += page.len();
                for json in &page {
                    let entry = decode(json)?;
                    if wanted(&entry) {
                        found += 1;
                        out.push(entry);
                    }
                }
                if page.len() < limit {
                    break;
                }
            }
        }
        out.sort_by(|a, b| b.published.cmp(&a.published).then(b.id.cmp(&a.id)));
        out.dedup_by(|a, b| a.id == b.id);
        out.truncate(limit);
        Ok(out)
    }

    /// One entry by article id.
    pub fn entry(&self, id: &str) -> Result<Option<Entry>> {
        self.backend.entry(id)?.as_deref().map(decode).transpose()
    }

    /// Every feed, main first, then categories by slug. A category whose
    /// last article left keeps its (empty) feed: subscribers still poll it.
    pub fn feeds(&self) -> Result<Vec<(FeedKey, Option<Category>)>> {
        let mut out = vec![(FeedKey::Main, None)];
        for c in self.backend.categories()? {
            out.push((FeedKey::Category(c.slug.clone()), Some(c)));
        }
        Ok(out)
    }

    /// The display name of a category slug.
    pub fn category(&self, slug: &str) -> Result<Option<Category>> {
        self.backend.category(slug)
    }

    pub fn article_count(&self) -> Result<u64> {
        self.backend.article_count()
    }

    pub fn rejection_count(&self) -> Result<u64> {
        self.backend.rejection_count()
    }

    /// Rejected files, newest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>> {
        self.backend.rejections()
    }

    /// Removals waiting for an operator, oldest first.
    pub fn held_removals(&self) -> Result<Vec<HeldRemoval>> {
        self.backend.held_removals()
    }

    /// `feedwire apply-removals`: approve every held removal. The next
    /// reconciliation (a running daemon notices within a second) removes the
    /// articles whose files are still gone. Returns how many were approved.
    pub fn approve_held_removals(&self) -> Result<usize> {
        self.backend.approve_held_removals()
    }

    /// Remember that a document's version with this content hash was first
    /// published at `at`.
    pub fn record_published(&self, path: &str, hash: &str, at: DateTime<Utc>) -> Result<()> {
        self.backend.record_published(path, hash, at)
    }

    /// The recorded version of every published document.
    pub fn published_feeds(&self) -> Result<Vec<FeedRecord>> {
        self.backend.published_feeds()
    }

    /// Settings the catalog keeps between runs (e.g. the parser version).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.backend.meta(key)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.backend.set_meta(key, value)
    }

    /// Forget every file stamp so the next reconciliation re-reads and
    /// re-parses every file (after a parser upgrade). Identities stay.
    pub fn forget_file_stamps(&self) -> Result<()> {
        self.backend.forget_file_stamps()
    }

    /// A number that changes when another connection changes what an
    /// operator's command changes (held removals): a cheap way for the
    /// daemon to notice `apply-removals`. SQLite moves it at every commit of
    /// another connection; PostgreSQL keeps a counter that a trigger moves.
    pub fn data_version(&self) -> Result<i64> {
        self.backend.data_version()
    }
}

fn decode(json: &str) -> Result<Entry> {
    use anyhow::Context;
    serde_json::from_str(json).context("a catalog entry does not decode")
}
