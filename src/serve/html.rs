//! The HTML shell every readable page shares: document head (charset,
//! viewport, autodiscovery links, the inline stylesheet), site header and
//! footer, plus the fragments pages are built from. Everything is a
//! `maud::html!` template, so every piece of text and every attribute value
//! is escaped by the template engine; the one raw insertion is the article
//! body (in `pages`), which ingest already sanitised.

use super::RouteLabel;
use crate::article::Entry;
use crate::config::Config;
use crate::render::{DocKind, FeedInfo};
use axum::http::header::{CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset};
use maud::{DOCTYPE, Markup, html};

/// Readable on a phone: system fonts, one column, generous line height.
///
/// Spliced into `<style>` as text like everything else, so it must contain
/// nothing the escaper rewrites (`&`, `<`, `>`, `"`): font names are quoted
/// with `'`, and selectors use descendant rather than child (`>`)
/// combinators. A test checks the sheet arrives intact.
pub(super) const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1a1a1a;--muted:#5f6368;--accent:#b3261e;--line:#e3e3e3;--bg:#fff}\
@media (prefers-color-scheme:dark){:root{--fg:#e8e8e8;--muted:#a0a4a8;--accent:#ff8a80;--line:#333;--bg:#121212}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Helvetica Neue',Arial,sans-serif;font-size:1.0625rem;line-height:1.6;-webkit-text-size-adjust:100%}\
.wrap{max-width:46rem;margin:0 auto;padding:0 1rem}\
header.site{border-bottom:3px solid var(--accent);padding:.75rem 0;margin-bottom:1.25rem}\
header.site a{color:var(--fg);text-decoration:none;font-weight:700;font-size:1.25rem}\
h1{font-size:1.75rem;line-height:1.25;margin:.5rem 0 .75rem}\
h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}\
a{color:var(--accent)}\
.meta{color:var(--muted);font-size:.9rem;margin:.25rem 0}\
.lead{font-weight:600}\
.subscribe{font-size:.9rem}\
.subscribe a{display:inline-block;margin-right:.75rem}\
ul.entries,ul.feeds{list-style:none;padding:0;margin:0}\
ul.entries li{padding:.75rem 0;border-bottom:1px solid var(--line)}\
ul.entries h3{font-size:1.1rem;line-height:1.35;margin:0}\
ul.entries h3 a{color:var(--fg);text-decoration:none}\
ul.entries h3 a:hover{text-decoration:underline}\
ul.entries p{margin:.25rem 0}\
ul.feeds li{padding:.5rem 0;border-bottom:1px solid var(--line)}\
.tags a{display:inline-block;margin-right:.5rem;font-size:.9rem}\
article img,article figure{max-width:100%;height:auto}\
article .body p{margin:0 0 1rem}\
footer.site{margin:2.5rem 0 1.5rem;color:var(--muted);font-size:.85rem;border-top:1px solid var(--line);padding-top:.75rem}";

/// A complete page.
pub struct Page<'a> {
    pub title: &'a str,
    /// Extra `<head>` content: autodiscovery and canonical links.
    pub head: Markup,
    /// Content of `<main>`.
    pub main: Markup,
}

/// The complete HTML document for a page.
pub fn render(cfg: &Config, page: Page<'_>) -> String {
    let site = &cfg.site.title;
    html! {
        (DOCTYPE)
        html lang="vi" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) }
                (page.head)
                style { (STYLE) }
            }
            body {
                header.site { div.wrap { a href="/" { (site) } } }
                main.wrap { (page.main) }
                footer.site {
                    div.wrap {
                        (site) " · "
                        a href="/feeds/" { "RSS / Atom / JSON Feed" }
                        " · "
                        a href="/feeds/index.opml" { "OPML" }
                    }
                }
            }
        }
    }
    .into_string()
}

/// A page that is an answer about the request (404, 500) rather than a
/// resource: no validators, not cached.
pub fn respond(cfg: &Config, status: StatusCode, label: &'static str, page: Page<'_>) -> Response {
    let html = render(cfg, page);
    let mut res = (status, axum::Extension(RouteLabel(label)), html).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_HTML));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";

/// `<link rel="alternate">` tags for the three formats of a feed.
pub fn alternates(cfg: &Config, info: &FeedInfo) -> Markup {
    html! {
        @for (kind, mime, name) in [
            (DocKind::Rss, "application/rss+xml", "RSS"),
            (DocKind::Atom, "application/atom+xml", "Atom"),
            (DocKind::Json, "application/feed+json", "JSON Feed"),
        ] {
            link rel="alternate" type=(mime)
                href=(crate::site::feed_url(cfg, &info.path(kind)))
                title={ (info.title) " (" (name) ")" };
        }
    }
}

/// Subscribe links (RSS · Atom · JSON Feed) for a feed.
pub fn subscribe_links(cfg: &Config, info: &FeedInfo) -> Markup {
    html! {
        p.subscribe {
            "Theo dõi: "
            @for (kind, name) in [
                (DocKind::Rss, "RSS"),
                (DocKind::Atom, "Atom"),
                (DocKind::Json, "JSON Feed"),
            ] {
                a href=(crate::site::feed_url(cfg, &info.path(kind)))
                    type=(kind.content_type().split(';').next().unwrap_or("application/xml"))
                    { (name) }
            }
        }
    }
}

/// A date in the configured zone, as Vietnamese readers write it:
/// `14:05, 03/08/2023`, inside a machine-readable `<time>`.
pub fn time(cfg: &Config, t: &DateTime<FixedOffset>) -> Markup {
    let tz = cfg.time_zone().unwrap_or(chrono_tz::UTC);
    let local = t.with_timezone(&tz);
    html! {
        time datetime=(t.to_rfc3339()) { (local.format("%H:%M, %d/%m/%Y")) }
    }
}

/// A list of entries: headline linking to the article page, date, category
/// (optionally), lead.
pub fn entry_list(cfg: &Config, entries: &[Entry], show_category: bool) -> Markup {
    html! {
        @if entries.is_empty() {
            p.meta { "Chưa có bài viết." }
        } @else {
            ul.entries {
                @for e in entries {
                    li {
                        h3 { a href=(crate::site::article_path(&e.id)) { (e.title) } }
                        p.meta {
                            (time(cfg, &e.published))
                            @if let Some(c) = e.categories.first().filter(|_| show_category) {
                                " · "
                                a href=(crate::site::category_path(&c.slug)) { (c.name) }
                            }
                        }
                        @if let Some(lead) = e.summary.as_deref().filter(|l| !l.trim().is_empty()) {
                            p { (lead) }
                        }
                    }
                }
            }
        }
    }
}
