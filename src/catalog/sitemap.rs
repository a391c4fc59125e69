//! The sitemaps' listing, as the catalog keeps it: which articles the
//! sitemaps list (the public ones, nothing withheld or killed), what the
//! news sitemap shows of each, and on which page of the full sitemap each
//! one is.
//!
//! Pages are fixed. An article is given a page when it is first listed (the
//! last page while it has room, under both the URL and the byte limit, else
//! a new one) and keeps it while it is listed, so a new article changes only
//! the last page, an edit or a kill only the page that holds the article,
//! and the cost of either does not grow with the archive. A page whose
//! articles all left stays, empty: page numbers never move. The rendering
//! (what a `<url>` looks like, hence how many bytes it takes) is the
//! caller's; the catalog keeps the numbers it is given.

use super::{Batch, Catalog};
use crate::article::Entry;
use anyhow::Result;

/// An article as the sitemaps list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitemapUrl {
    pub id: String,
    /// Its publication date (the news sitemap's window and
    /// `news:publication_date`).
    pub published_us: i64,
    /// When what it says last changed (`<lastmod>`).
    pub lastmod_us: i64,
    pub title: String,
    pub language: String,
    /// Bytes its `<url>` element takes in a page of the full sitemap.
    pub bytes: i64,
}

/// A page's capacity: at most `max_urls` URLs whose elements take at most
/// `max_bytes` together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SitemapLimits {
    pub max_urls: i64,
    pub max_bytes: i64,
}

/// One page of the full sitemap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitemapPage {
    /// From 1.
    pub page: i64,
    pub urls: i64,
    /// Bytes its URLs' elements take.
    pub bytes: i64,
    /// When its content last changed (its `<lastmod>` in the index).
    pub changed_us: i64,
}

/// A URL as a page of the full sitemap shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl {
    pub id: String,
    pub lastmod_us: i64,
}

/// What the news sitemap holds of one page of the full sitemap: the
/// page's articles still in the news window. Each page's recent articles
/// make one file of the news sitemap when it is an index, so a new article
/// changes one file however many are in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewsPage {
    pub page: i64,
    pub urls: i64,
    /// The latest `<lastmod>` among them (the file's `<lastmod>`).
    pub lastmod_us: i64,
    /// The oldest publication among them: when it leaves the window, the
    /// file changes.
    pub oldest_us: i64,
}

/// What was listed of an article that left the sitemaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlisted {
    pub page: i64,
    pub published_us: i64,
}

impl Batch<'_> {
    /// List a public article, or refresh what is listed of it (it keeps its
    /// page). Returns its page.
    pub fn list_in_sitemap(&mut self, url: &SitemapUrl, limits: SitemapLimits) -> Result<i64> {
        let now = self.now.timestamp_micros();
        if let Some((page, old_bytes)) = self.tx.sitemap_url(&url.id)? {
            self.tx.put_sitemap_url(page, url)?;
            let mut p = self.tx.sitemap_page(page)?.unwrap_or(SitemapPage {
                page,
                urls: 1,
                bytes: old_bytes,
                changed_us: now,
            });
            p.bytes += url.bytes - old_bytes;
            p.changed_us = now;
            self.tx.put_sitemap_page(&p)?;
            return Ok(page);
        }
        let open = self.tx.last_filled_sitemap_page()?;
        let fits = |p: &SitemapPage| {
            p.urls == 0 || (p.urls < limits.max_urls && p.bytes + url.bytes <= limits.max_bytes)
        };
        let number = match open {
            Some(p) if fits(&p) => p.page,
            Some(p) => p.page + 1,
            None => 1,
        };
        // The page may exist already, emptied by kills or a rebuild.
        let mut p = match self.tx.sitemap_page(number)? {
            Some(p) => p,
            None => SitemapPage {
                page: number,
                urls: 0,
                bytes: 0,
                changed_us: now,
            },
        };
        p.urls += 1;
        p.bytes += url.bytes;
        p.changed_us = now;
        self.tx.put_sitemap_url(number, url)?;
        self.tx.put_sitemap_page(&p)?;
        Ok(number)
    }

    /// An article leaves the sitemaps (withheld again, or killed). Returns
    /// what was listed of it, if anything.
    pub fn unlist_from_sitemap(&mut self, id: &str) -> Result<Option<Unlisted>> {
        let Some((page, bytes, published_us)) = self.tx.delete_sitemap_url(id)? else {
            return Ok(None);
        };
        if let Some(mut p) = self.tx.sitemap_page(page)? {
            p.urls = (p.urls - 1).max(0);
            p.bytes = (p.bytes - bytes).max(0);
            p.changed_us = self.now.timestamp_micros();
            self.tx.put_sitemap_page(&p)?;
        }
        Ok(Some(Unlisted { page, published_us }))
    }

    /// Forget every listing, to list the archive again (the sitemaps'
    /// settings changed). Pages stay, empty, so none is left behind holding
    /// what it held before.
    pub fn clear_sitemap(&mut self) -> Result<()> {
        let now = self.now.timestamp_micros();
        self.tx.clear_sitemap(now)
    }

    /// Public articles in publication order, `limit` at a time after
    /// `after` (a publication time and id), for listing the archive.
    pub fn public_entries_after(
        &mut self,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let (us, id) = after.unwrap_or((i64::MIN, ""));
        self.tx
            .public_entries_after(us, id, limit)?
            .iter()
            .map(|json| super::decode(json))
            .collect()
    }
}

impl Catalog {
    /// Every page of the full sitemap, first to last.
    pub fn sitemap_pages(&self) -> Result<Vec<SitemapPage>> {
        self.backend.sitemap_pages()
    }

    /// The URLs of one page, in publication order.
    pub fn sitemap_page_urls(&self, page: i64) -> Result<Vec<PageUrl>> {
        self.backend.sitemap_page_urls(page)
    }

    /// Listed articles published at or after `since_us`, newest first (the
    /// news sitemap).
    pub fn news_urls(&self, since_us: i64) -> Result<Vec<SitemapUrl>> {
        self.backend.news_urls(since_us)
    }

    /// Listed articles of one page published at or after `since_us`,
    /// newest first (one file of the news sitemap).
    pub fn news_page_urls(&self, page: i64, since_us: i64) -> Result<Vec<SitemapUrl>> {
        self.backend.news_page_urls(page, since_us)
    }

    /// Pages holding articles published in `[from_us, to_us)`: those whose
    /// news files lost articles when the window's start moved from one to
    /// the other.
    pub fn news_pages_left(&self, from_us: i64, to_us: i64) -> Result<Vec<i64>> {
        self.backend.news_pages_left(from_us, to_us)
    }

    /// Per page, what the news sitemap holds of it at `since_us` (pages
    /// with nothing in the window are left out), first to last.
    pub fn news_pages(&self, since_us: i64) -> Result<Vec<NewsPage>> {
        self.backend.news_pages(since_us)
    }
}
