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
//!   `catalog::sitemap`): a publish renders the pages the batch touched and
//!   the index, so a new article costs one page whatever the archive's
//!   size; pages go out before the index that points to them. Everything is
//!   rendered at start-up (`publish(None)`), and when the number of pages
//!   moves (the index's shape changes); unchanged files are not rewritten.
//!   The news sitemap (two days by default) is rendered whole when an
//!   article in its window changed, and when its oldest article leaves the
//!   window (a deadline the driver waits for like an embargo's end).

use crate::catalog::{Batch, Catalog, Change, SitemapLimits, SitemapUrl};
use crate::config::Config;
use crate::publish::{Publisher, Report};
use crate::render::Document;
use crate::render::sitemap::{self as render, NEWS_SITEMAP, SITEMAP};
use crate::site;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Meta key: the settings the listing was made with (or `off`).
const LAYOUT_KEY: &str = "sitemap_layout";
/// Meta key: the most files the news sitemap ever had (the ones it no
/// longer has are kept empty).
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
    news: bool,
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
    /// When the oldest article of the published news sitemap leaves it.
    news_expires: Option<DateTime<Utc>>,
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
            news_expires: None,
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
            let mut news = false;
            for step in steps {
                match step {
                    Step::List(url) => {
                        pages.insert(batch.list_in_sitemap(&url, limits)?);
                        news |= url.published_us >= news_since;
                    }
                    Step::Unlist(id) => {
                        if let Some(gone) = batch.unlist_from_sitemap(&id)? {
                            pages.insert(gone.page);
                            news |= gone.published_us >= news_since;
                        }
                    }
                }
            }
            let mut t = touched.lock().unwrap_or_else(|e| e.into_inner());
            t.pages.extend(pages);
            t.news |= news;
            Ok(())
        }))
    }

    /// When the news sitemap must be rendered again without any change:
    /// its oldest article leaves the window.
    pub(super) fn deadline(&self) -> Option<DateTime<Utc>> {
        self.news_expires
    }

    /// True (once) when the news sitemap's window has moved past its
    /// oldest article by `now`: the next publish renders it again.
    pub(super) fn window_passed(&mut self, now: DateTime<Utc>) -> bool {
        if self.news_expires.is_none_or(|t| t > now) {
            return false;
        }
        self.news_expires = None;
        self.touched.lock().unwrap_or_else(|e| e.into_inner()).news = true;
        true
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
                    report.absorb(super::publish_recorded(publisher, catalog, docs, all)?);
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

        if all || touched.news || self.news_expires.is_some_and(|t| t <= now) {
            let (files, head) = self.news_documents(cfg, catalog, now)?;
            if !files.is_empty() {
                report.absorb(super::publish_recorded(publisher, catalog, files, all)?);
            }
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

    /// The news sitemap: its files (when it needs more than one, and the
    /// emptied files of a longer one before) and `news-sitemap.xml` (the
    /// URLs, or the index of the files).
    fn news_documents(
        &mut self,
        cfg: &Config,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Document>, Document)> {
        let urls = catalog.news_urls((now - self.window).timestamp_micros())?;
        self.news_expires = urls
            .last()
            .and_then(|u| DateTime::from_timestamp_micros(u.published_us))
            .map(|t| t + self.window);
        let before: usize = catalog
            .meta(NEWS_FILES_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let max = cfg.sitemaps.news_max_urls;
        let mut files = Vec::new();
        let head = if urls.len() <= max {
            render::render_news(cfg, NEWS_SITEMAP, &urls)?
        } else {
            let mut index = Vec::new();
            for (i, chunk) in urls.chunks(max).enumerate() {
                let path = render::news_page_path(i + 1);
                let changed = chunk.iter().map(|u| u.lastmod_us).max().unwrap_or(0);
                files.push(render::render_news(cfg, &path, chunk)?);
                index.push((path, changed));
            }
            render::render_index(cfg, NEWS_SITEMAP, &index)?
        };
        let used = files.len();
        // Nothing points at the files a longer news sitemap had, and
        // nothing old may stay in them.
        for n in used + 1..=before {
            files.push(render::render_news(cfg, &render::news_page_path(n), &[])?);
        }
        if used > before {
            catalog.set_meta(NEWS_FILES_KEY, &used.to_string())?;
        }
        Ok((files, head))
    }
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
