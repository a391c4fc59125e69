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
}

impl Sitemaps {
    /// The sitemaps of this configuration (`None` when they are off), with
    /// the catalog's listing made current.
    pub(super) fn open(cfg: &Config, catalog: &mut Catalog) -> Result<Option<Sitemaps>> {
        if !cfg.sitemaps.enabled {
            // Changes are not listed while sitemaps are off: when they come
            // back on, the archive is listed again.
            if catalog.meta(LAYOUT_KEY)?.as_deref() != Some("off") {
                catalog.set_meta(LAYOUT_KEY, "off")?;
            }
            return Ok(None);
        }
        let overhead = render::page_overhead() as i64;
        let sitemaps = Sitemaps {
            limits: SitemapLimits {
                max_urls: cfg.sitemaps.max_urls as i64,
                max_bytes: cfg.sitemaps.max_bytes as i64 - overhead,
            },
            window: chrono::Duration::hours(cfg.sitemaps.news_window_hours.into()),
            touched: Arc::default(),
            pages_published: None,
            news_pages: None,
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

    /// Render and publish what changed since the last publish (`all`:
    /// everything). Pages go before the index that lists them.
    pub(super) fn publish(
        &mut self,
        cfg: &Config,
        catalog: &Catalog,
        publisher: &mut Publisher,
        all: bool,
    ) -> Result<Report> {
        let touched = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()));
        let now = Utc::now();
        let mut report = Report::default();
        let mut last: Vec<Document> = Vec::new();

        let pages = catalog.sitemap_pages()?;
        let everything = all || self.pages_published != Some(pages.len());
        if everything || !touched.pages.is_empty() {
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

        let since = (now - self.window).timestamp_micros();
        if all {
            self.news_pages = None;
        }
        let expired = self
            .news_pages
            .as_ref()
            .is_some_and(|held| held.values().any(|p| p.oldest_us < since));
        if all || self.news_pages.is_none() || expired || !touched.news.is_empty() {
            let (files, head) =
                self.news_documents(cfg, catalog, publisher, since, &touched.news)?;
            report.absorb(files);
            last.push(head);
        }
        if all {
            last.push(render::render_robots(cfg));
        }
        if !last.is_empty() {
            report.absorb(super::publish_recorded(publisher, catalog, last, all)?);
        }
        Ok(report)
    }

    /// Publish the news files that changed: the pages `touched` and those
    /// whose oldest article left the window by `since` (every page's, the
    /// first time); and return `news-sitemap.xml` (the URLs, or the index
    /// of the files) to go out after them.
    fn news_documents(
        &mut self,
        cfg: &Config,
        catalog: &Catalog,
        publisher: &mut Publisher,
        since: i64,
        touched: &BTreeSet<i64>,
    ) -> Result<(Report, Document)> {
        let mut fetched: BTreeMap<i64, Vec<SitemapUrl>> = BTreeMap::new();
        let wanted: BTreeSet<i64> = match &mut self.news_pages {
            Some(held) => {
                let mut wanted = touched.clone();
                wanted.extend(
                    held.values()
                        .filter(|p| p.oldest_us < since)
                        .map(|p| p.page),
                );
                for &page in &wanted {
                    let urls = catalog.news_page_urls(page, since)?;
                    match news_page(page, &urls) {
                        Some(p) => held.insert(page, p),
                        None => held.remove(&page),
                    };
                    fetched.insert(page, urls);
                }
                wanted
            }
            None => {
                let held: BTreeMap<i64, NewsPage> = catalog
                    .news_pages(since)?
                    .into_iter()
                    .map(|p| (p.page, p))
                    .collect();
                // Every file there may be: nothing old may stay in one.
                let before: i64 = catalog
                    .meta(NEWS_FILES_KEY)?
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let wanted = (1..=before).chain(held.keys().copied()).collect();
                self.news_pages = Some(held);
                wanted
            }
        };
        // Recorded before the files are written, so a crash in between
        // cannot leave a file that is never emptied.
        let highest = wanted.last().copied().unwrap_or(0);
        let before: i64 = catalog
            .meta(NEWS_FILES_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if highest > before {
            catalog.set_meta(NEWS_FILES_KEY, &highest.to_string())?;
        }
        let mut report = Report::default();
        let wanted: Vec<i64> = wanted.into_iter().collect();
        for round in wanted.chunks(PAGES_PER_ROUND) {
            let mut docs = Vec::with_capacity(round.len());
            for &page in round {
                let urls = match fetched.remove(&page) {
                    Some(urls) => urls,
                    None => catalog.news_page_urls(page, since)?,
                };
                docs.push(render::render_news(
                    cfg,
                    &render::news_page_path(page),
                    &urls,
                )?);
            }
            report.absorb(publisher.publish_articles(docs, &[])?);
        }

        let held = self.news_pages.as_ref().expect("set above");
        let total: i64 = held.values().map(|p| p.urls).sum();
        let head = if total <= cfg.sitemaps.news_max_urls as i64 {
            render::render_news(cfg, NEWS_SITEMAP, &catalog.news_urls(since)?)?
        } else {
            let index: Vec<(String, i64)> = held
                .values()
                .map(|p| (render::news_page_path(p.page), p.lastmod_us))
                .collect();
            render::render_index(cfg, NEWS_SITEMAP, &index)?
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
