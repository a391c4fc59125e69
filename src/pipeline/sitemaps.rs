//! The sitemaps' part of the pipeline: the catalog's listing follows every
//! change, and a publish renders only the sitemap files a change touched.
//!
//! - **Listing.** A commit hook (the first the pipeline runs, inside the
//!   batch's transaction) lists each article that became public or changed
//!   and unlists each that was withheld again or killed, so the listing can
//!   never disagree with the catalog. When the sitemaps' settings (limits,
//!   article URLs) differ from those the listing was made with, or it was
//!   never made (a catalog from before sitemaps, or sitemaps turned back
//!   on), the archive is listed again from scratch, once, at start-up.
//! - **Publishing.** The full sitemap is fixed pages (see
//!   `catalog::sitemap`) of at most `sitemaps.max_urls` (1,000) URLs: a
//!   publish renders the pages the batch touched and the index, so a new
//!   article costs one page whatever the archive's size; pages go out
//!   before the index that points to them. The news sitemap follows the
//!   same pages: past `sitemaps.news_max_urls` articles in its window it is
//!   an index of one file per page, each that page's recent articles, so a
//!   new article changes one file there too (below that, the one file
//!   holds them all: at most 1,000). A file whose articles all left the
//!   window is emptied, never removed. Everything is rendered at start-up
//!   (`publish(None)`), and when the number of pages moves (the index's
//!   shape changes); unchanged files are not rewritten. The news sitemap's
//!   files change without any change of the catalog when their oldest
//!   article leaves the window (a deadline the driver waits for like an
//!   embargo's end).
//! - **Memory.** The pages' files go to the targets only, like the ninjs
//!   documents, not into the in-memory store: a large archive has hundreds
//!   of them, and HTTP renders one from the listing when it is asked for
//!   (`serve::site_documents`). The indexes, `robots.txt` and a one-file
//!   sitemap are in the store like the feeds.

use super::Scope;
use crate::catalog::{Batch, Catalog, Change, NewsPage, SitemapLimits, SitemapUrl};
use crate::config::Config;
use crate::publish::{Publisher, Report};
use crate::render::Document;
use crate::render::sitemap::{self as render, NEWS_SITEMAP, SITEMAP};
use crate::site;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Meta key: the settings the listing was made with (or `off`).
const LAYOUT_KEY: &str = "sitemap_layout";
/// Meta key: the highest page whose news file was ever written (files of
/// pages with nothing in the window are kept empty).
const NEWS_FILES_KEY: &str = "news_sitemap_files";
/// Meta key: `current;…` (a [`Mark`]) when the sitemaps' files are what
/// the listing said at their last publish, `pending` from the first batch
/// after it until the next. A start trusts the files of a current mark
/// (after one look-up) and renders only what changed since, instead of
/// every page of a large archive.
const MARK_KEY: &str = "sitemaps_published";
/// Pages of the full sitemap rendered and published at a time, so that
/// publishing a large archive holds a few pages in memory, not all of them.
const PAGES_PER_ROUND: usize = 4;
/// Public articles read at a time when the archive is listed again.
const LIST_CHUNK: usize = 500;

/// What commits changed since the last publish.
#[derive(Debug, Default)]
struct Touched {
    pages: BTreeSet<i64>,
    /// Pages whose news file changed (an article in the window).
    news: BTreeSet<i64>,
}

pub(super) struct Sitemaps {
    limits: SitemapLimits,
    window: chrono::Duration,
    /// Filled by the commit hook, emptied by each publish. A batch that
    /// rolled back may leave pages here that did not change: they render
    /// to the bytes already published, which are not written again.
    touched: Arc<Mutex<Touched>>,
    /// Pages of the full sitemap at the last publish.
    pages_published: Option<usize>,
    /// What the news files held at the last publish, per page (`None`
    /// before the first).
    news_pages: Option<BTreeMap<i64, NewsPage>>,
    /// Whether the last publish made the news sitemap an index of files.
    news_split: Option<bool>,
    /// The window's start when the news files were last rendered.
    news_since: Option<i64>,
    /// The mark found at start-up (current, with the listing's settings
    /// unchanged), for the first publish.
    start_mark: Option<Mark>,
    /// Whether the catalog's mark says `pending`.
    marked: bool,
}

/// What the sitemaps' files were rendered with at their last complete
/// publish.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    /// What their bytes depend on besides the listing (a digest).
    settings: String,
    news_since: i64,
    news_split: bool,
    pages: usize,
}

impl Mark {
    fn parse(meta: &str) -> Option<Mark> {
        let mut parts = meta.strip_prefix("current;")?.split(';');
        let mark = Mark {
            settings: parts.next()?.to_string(),
            news_since: parts.next()?.parse().ok()?,
            news_split: parts.next()? == "1",
            pages: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(mark)
    }

    fn to_meta(&self) -> String {
        format!(
            "current;{};{};{};{}",
            self.settings,
            self.news_since,
            u8::from(self.news_split),
            self.pages
        )
    }
}

/// A digest of what the files' bytes depend on besides the listing: the
/// site (addresses, time zone, names) and the sitemaps' settings, and the
/// renderer (this feedwire).
fn render_settings(cfg: &Config) -> String {
    let all = format!(
        "{}|{:?}|{:?}",
        env!("CARGO_PKG_VERSION"),
        cfg.site,
        cfg.sitemaps
    );
    blake3::hash(all.as_bytes()).to_hex()[..16].to_string()
}

impl Sitemaps {
    /// The sitemaps of this configuration (`None` when they are off), with
    /// the catalog's listing made current.
    pub(super) fn open(cfg: &Config, catalog: &mut Catalog) -> Result<Option<Sitemaps>> {
        // Whatever happens below, the files are not trusted again until a
        // publish says so.
        let found = catalog.meta(MARK_KEY)?;
        if !cfg.sitemaps.enabled {
            // Changes are not listed while sitemaps are off: when they come
            // back on, the archive is listed again.
            if catalog.meta(LAYOUT_KEY)?.as_deref() != Some("off") {
                catalog.set_meta(LAYOUT_KEY, "off")?;
            }
            return Ok(None);
        }
        let overhead = render::page_overhead() as i64;
        let mut sitemaps = Sitemaps {
            limits: SitemapLimits {
                max_urls: cfg.sitemaps.max_urls as i64,
                max_bytes: cfg.sitemaps.max_bytes as i64 - overhead,
            },
            window: chrono::Duration::hours(cfg.sitemaps.news_window_hours.into()),
            touched: Arc::default(),
            pages_published: None,
            news_pages: None,
            news_split: None,
            news_since: None,
            start_mark: None,
            marked: false,
        };
        let layout = format!(
            "1;max_urls={};max_bytes={};url={}",
            cfg.sitemaps.max_urls,
            cfg.sitemaps.max_bytes,
            site::article_link(cfg, "ID")
        );
        if catalog.meta(LAYOUT_KEY)?.as_deref() != Some(layout.as_str()) {
            let listed = sitemaps
                .list_archive(cfg, catalog)
                .context("cannot list the archive in the sitemaps")?;
            catalog.set_meta(LAYOUT_KEY, &layout)?;
            tracing::info!(
                articles = listed,
                "sitemaps: listed every public article (first start with sitemaps, or their settings changed)"
            );
        } else {
            sitemaps.start_mark = found
                .as_deref()
                .and_then(Mark::parse)
                .filter(|m| m.settings == render_settings(cfg));
        }
        Ok(Some(sitemaps))
    }

    /// List every public article again, in publication order, in one
    /// transaction.
    fn list_archive(&self, cfg: &Config, catalog: &mut Catalog) -> Result<usize> {
        let tz = cfg.time_zone()?;
        let mut batch = catalog.batch()?;
        batch.clear_sitemap()?;
        let mut after: Option<(i64, String)> = None;
        let mut listed = 0;
        loop {
            let entries = batch.public_entries_after(
                after.as_ref().map(|(t, id)| (*t, id.as_str())),
                LIST_CHUNK,
            )?;
            let Some(last) = entries.last() else { break };
            after = Some((last.published.timestamp_micros(), last.id.clone()));
            for e in &entries {
                batch.list_in_sitemap(&listing(cfg, tz, e)?, self.limits)?;
            }
            listed += entries.len();
        }
        batch.commit()?;
        Ok(listed)
    }

    /// Before a batch: record in the catalog that the files may fall
    /// behind the listing, so a crash before the next publish is repaired
    /// at the next start. Written once until that publish.
    pub(super) fn before_batch(&mut self, catalog: &Catalog) -> Result<()> {
        if !self.marked {
            catalog.set_meta(MARK_KEY, "pending")?;
            self.marked = true;
        }
        Ok(())
    }

    /// The commit hook that keeps the listing in step with the batch's
    /// changes.
    pub(super) fn hook(&self, cfg: &Config) -> Result<super::CommitHook> {
        let cfg = cfg.clone();
        let tz = cfg.time_zone()?;
        let (limits, window, touched) = (self.limits, self.window, self.touched.clone());
        Ok(Box::new(move |batch: &mut Batch<'_>| {
            let news_since = (Utc::now() - window).timestamp_micros();
            let steps: Vec<Step> = batch
                .changes()
                .iter()
                .map(|change| {
                    Ok(match change {
                        Change::Added(e) | Change::Updated(e) => Step::List(listing(&cfg, tz, e)?),
                        Change::Withheld(e) => Step::Unlist(e.id.clone()),
                        Change::Killed { id, .. } => Step::Unlist(id.clone()),
                    })
                })
                .collect::<Result<_>>()?;
            let mut pages = BTreeSet::new();
            let mut news = BTreeSet::new();
            for step in steps {
                match step {
                    Step::List(url) => {
                        let page = batch.list_in_sitemap(&url, limits)?;
                        pages.insert(page);
                        if url.published_us >= news_since {
                            news.insert(page);
                        }
                    }
                    Step::Unlist(id) => {
                        if let Some(gone) = batch.unlist_from_sitemap(&id)? {
                            pages.insert(gone.page);
                            if gone.published_us >= news_since {
                                news.insert(gone.page);
                            }
                        }
                    }
                }
            }
            let mut t = touched.lock().unwrap_or_else(|e| e.into_inner());
            t.pages.extend(pages);
            t.news.extend(news);
            Ok(())
        }))
    }

    /// When the news sitemap must be rendered again without any change:
    /// its oldest article leaves the window.
    pub(super) fn deadline(&self) -> Option<DateTime<Utc>> {
        let oldest = self
            .news_pages
            .as_ref()?
            .values()
            .map(|p| p.oldest_us)
            .min()?;
        DateTime::from_timestamp_micros(oldest).map(|t| t + self.window)
    }

    /// True when the news sitemap's window has moved past its oldest
    /// article by `now`: the next publish renders the files it left.
    pub(super) fn window_passed(&mut self, now: DateTime<Utc>) -> bool {
        self.deadline().is_some_and(|t| t <= now)
    }

    /// Render and publish what changed since the last publish, or
    /// everything (see [`Scope`]; a start trusts the files when the mark
    /// and a look-up of the last page say they are current). Pages go
    /// before the index that lists them.
    pub(super) fn publish(
        &mut self,
        cfg: &Config,
        catalog: &Catalog,
        publisher: &mut Publisher,
        scope: Scope,
    ) -> Result<Report> {
        let touched = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()));
        let now = Utc::now();
        let since = (now - self.window).timestamp_micros();
        let all = scope != Scope::Changed;
        let pages = catalog.sitemap_pages()?;
        let trusted = match (scope, self.start_mark.take()) {
            (Scope::Repair, Some(mark)) => self
                .last_page_is_current(cfg, catalog, publisher, &pages, &touched.pages)?
                .then_some(mark),
            _ => None,
        };
        if all {
            self.pages_published = trusted.as_ref().map(|m| m.pages);
            self.news_pages = None;
            self.news_split = trusted.as_ref().map(|m| m.news_split);
        }
        let mut report = Report::default();
        let mut last: Vec<Document> = Vec::new();

        let everything = self.pages_published != Some(pages.len());
        tracing::debug!(
            ?scope,
            trusted = trusted.is_some(),
            everything,
            pages = touched.pages.len(),
            news_files = touched.news.len(),
            "publishing the sitemaps"
        );
        if all || everything || !touched.pages.is_empty() {
            if pages.len() <= 1 {
                let urls = match pages.first() {
                    Some(p) => catalog.sitemap_page_urls(p.page)?,
                    None => Vec::new(),
                };
                last.push(render::render_page(cfg, SITEMAP, &urls)?);
            } else {
                let wanted: Vec<i64> = pages
                    .iter()
                    .map(|p| p.page)
                    .filter(|n| everything || touched.pages.contains(n))
                    .collect();
                for round in wanted.chunks(PAGES_PER_ROUND) {
                    let mut docs = Vec::with_capacity(round.len());
                    for &n in round {
                        let urls = catalog.sitemap_page_urls(n)?;
                        docs.push(render::render_page(cfg, &render::page_path(n), &urls)?);
                    }
                    report.absorb(publisher.publish_articles(docs, &[])?);
                }
                let files: Vec<(String, i64)> = pages
                    .iter()
                    .filter(|p| p.urls > 0)
                    .map(|p| (render::page_path(p.page), p.changed_us))
                    .collect();
                last.push(render::render_index(cfg, SITEMAP, &files)?);
            }
        }
        self.pages_published = Some(pages.len());

        let expired = self
            .news_pages
            .as_ref()
            .is_some_and(|held| held.values().any(|p| p.oldest_us < since));
        if self.news_pages.is_none() || expired || !touched.news.is_empty() {
            // Trusted files lost what left the window while we were down.
            let left_since = trusted.as_ref().map(|m| m.news_since);
            let (files, head) =
                self.news_documents(cfg, catalog, publisher, since, &touched.news, left_since)?;
            report.absorb(files);
            last.push(head);
        }
        if all {
            last.push(render::render_robots(cfg));
        }
        if !last.is_empty() {
            report.absorb(super::publish_recorded(
                publisher,
                catalog,
                crate::publish::Checked::in_parallel(last),
                all,
            )?);
        }
        if self.marked || all {
            let mark = Mark {
                settings: render_settings(cfg),
                news_since: self.news_since.unwrap_or(since),
                news_split: self.news_split.unwrap_or(false),
                pages: pages.len(),
            };
            catalog.set_meta(MARK_KEY, &mark.to_meta())?;
            self.marked = false;
        }
        Ok(report)
    }

    /// Whether every target holds the last page of the full sitemap that
    /// no batch `touched` since the last publish, as it renders now: when
    /// not, the files there are not the listing's (the feeds folder was
    /// emptied, a target was added) and every one is rendered again. True
    /// when the sitemap has no such page file.
    fn last_page_is_current(
        &self,
        cfg: &Config,
        catalog: &Catalog,
        publisher: &Publisher,
        pages: &[crate::catalog::SitemapPage],
        touched: &BTreeSet<i64>,
    ) -> Result<bool> {
        if pages.len() <= 1 {
            return Ok(true);
        }
        let Some(last) = pages
            .iter()
            .rev()
            .find(|p| p.urls > 0 && !touched.contains(&p.page))
        else {
            return Ok(true);
        };
        let urls = catalog.sitemap_page_urls(last.page)?;
        let doc = render::render_page(cfg, &render::page_path(last.page), &urls)?;
        publisher.holds_everywhere(&doc)
    }

    /// Publish the news files that changed and return `news-sitemap.xml`
    /// to go out after them. Past `news_max_urls` articles in the window
    /// it is an index of one file per page: the files of the pages
    /// `touched` and of those whose oldest article left the window by
    /// `since` are rendered again (every page's, when the sitemap has just
    /// become an index). Otherwise it holds the articles itself, and the
    /// files an index had are emptied.
    fn news_documents(
        &mut self,
        cfg: &Config,
        catalog: &Catalog,
        publisher: &mut Publisher,
        since: i64,
        touched: &BTreeSet<i64>,
        left_since: Option<i64>,
    ) -> Result<(Report, Document)> {
        let mut fetched: BTreeMap<i64, Vec<SitemapUrl>> = BTreeMap::new();
        let was_split = self.news_split;
        let changed: BTreeSet<i64> = match &mut self.news_pages {
            Some(held) => {
                let mut changed = touched.clone();
                changed.extend(
                    held.values()
                        .filter(|p| p.oldest_us < since)
                        .map(|p| p.page),
                );
                for &page in &changed {
                    let urls = catalog.news_page_urls(page, since)?;
                    match news_page(page, &urls) {
                        Some(p) => held.insert(page, p),
                        None => held.remove(&page),
                    };
                    fetched.insert(page, urls);
                }
                changed
            }
            None => {
                let held: BTreeMap<i64, NewsPage> = catalog
                    .news_pages(since)?
                    .into_iter()
                    .map(|p| (p.page, p))
                    .collect();
                let changed = match left_since {
                    // Files as published, but for what changed since.
                    Some(from) => {
                        let mut changed = touched.clone();
                        changed.extend(catalog.news_pages_left(from, since)?);
                        changed
                    }
                    None => held.keys().copied().collect(),
                };
                self.news_pages = Some(held);
                changed
            }
        };
        self.news_since = Some(since);
        let held = self.news_pages.as_ref().expect("set above");
        let total: i64 = held.values().map(|p| p.urls).sum();
        let split = total > cfg.sitemaps.news_max_urls as i64;
        self.news_split = Some(split);
        // Every file there may be (`None`: this process has not published
        // them yet): none may keep what it held before.
        let written: i64 = catalog
            .meta(NEWS_FILES_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let wanted: BTreeSet<i64> = match (split, was_split) {
            (true, Some(true)) => changed,
            (true, _) => (1..=written).chain(held.keys().copied()).collect(),
            (false, Some(false)) => BTreeSet::new(),
            (false, _) => (1..=written).collect(),
        };
        // Recorded before the files are written, so a crash in between
        // cannot leave a file that is never emptied.
        let highest = wanted.last().copied().unwrap_or(0);
        if highest > written {
            catalog.set_meta(NEWS_FILES_KEY, &highest.to_string())?;
        }
        let mut report = Report::default();
        let wanted: Vec<i64> = wanted.into_iter().collect();
        for round in wanted.chunks(PAGES_PER_ROUND) {
            let mut docs = Vec::with_capacity(round.len());
            for &page in round {
                let urls = match (split, fetched.remove(&page)) {
                    (false, _) => Vec::new(),
                    (true, Some(urls)) => urls,
                    (true, None) => catalog.news_page_urls(page, since)?,
                };
                docs.push(render::render_news(
                    cfg,
                    &render::news_page_path(page),
                    &urls,
                )?);
            }
            report.absorb(publisher.publish_articles(docs, &[])?);
        }

        let head = if split {
            let index: Vec<(String, i64)> = held
                .values()
                .map(|p| (render::news_page_path(p.page), p.lastmod_us))
                .collect();
            render::render_index(cfg, NEWS_SITEMAP, &index)?
        } else {
            render::render_news(cfg, NEWS_SITEMAP, &catalog.news_urls(since)?)?
        };
        Ok((report, head))
    }
}

/// What a page's news file holds, from its URLs (`None`: nothing).
fn news_page(page: i64, urls: &[SitemapUrl]) -> Option<NewsPage> {
    Some(NewsPage {
        page,
        urls: urls.len() as i64,
        lastmod_us: urls.iter().map(|u| u.lastmod_us).max()?,
        oldest_us: urls.iter().map(|u| u.published_us).min()?,
    })
}

/// What the hook does for one change.
enum Step {
    List(SitemapUrl),
    Unlist(String),
}

/// A public entry as the sitemaps list it.
fn listing(cfg: &Config, tz: Tz, e: &crate::article::Entry) -> Result<SitemapUrl> {
    let lastmod_us = e.updated.timestamp_micros();
    let loc = site::article_link(cfg, &e.id);
    let bytes = render::url_element(&loc, &render::w3c_date(lastmod_us, tz))?.len() as i64;
    Ok(SitemapUrl {
        id: e.id.clone(),
        published_us: e.published.timestamp_micros(),
        lastmod_us,
        title: e.title.clone(),
        language: e.language.clone(),
        bytes,
    })
}
