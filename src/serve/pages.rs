//! The readable HTML pages: home (every feed and the newest articles), a
//! feed's view (`/feeds/`, `/feeds/<slug>/`), an article, and the 404 page.
//! All are rendered from the catalog, not from the published XML, so they
//! need no XSLT and show the same entries the feeds carry; each request reads
//! the catalog afresh, so a page is never stale. Rendered pages are answered
//! like feeds: validators, 304s, gzip and brotli ([`page_response`]).

use super::html::{self, Page, esc};
use super::representation::{self, Representation, put};
use super::{AppState, with_catalog};
use crate::article::{Category, Entry};
use crate::catalog::FeedKey;
use crate::render::{DocKind, FeedInfo};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use std::fmt::Write;
use std::time::SystemTime;

/// Articles listed on the home page.
const HOME_ARTICLES: usize = 20;

/// `/`: every feed with subscribe links, then the newest articles.
pub async fn home(State(state): State<AppState>, method: Method, req: HeaderMap) -> Response {
    let loaded = with_catalog(&state, |c| {
        Ok((c.feeds()?, c.newest(&FeedKey::Main, HOME_ARTICLES)?))
    })
    .await;
    let (feeds, newest) = match loaded {
        Ok(v) => v,
        Err(e) => return server_error(&state, "home", e),
    };
    let cfg = &state.cfg;
    let main_info = FeedInfo::new(cfg, FeedKey::Main, None);
    let mut main = String::new();
    let _ = write!(
        main,
        "<h1>{}</h1>\n<p>{}</p>\n{}",
        esc(&cfg.site.title),
        esc(&cfg.site.description),
        html::subscribe_links(cfg, &main_info)
    );
    main.push_str("<h2>Tin mới nhất</h2>\n");
    main.push_str(&html::entry_list(cfg, &newest, true));
    main.push_str("<h2>Chuyên mục</h2>\n<ul class=\"feeds\">\n");
    // The page changes when a listed feed does (a new category, an entry
    // removed), which the shown entries' dates alone would not reveal.
    let mut last_modified = newest_update(&newest);
    for (key, category) in feeds {
        let info = FeedInfo::new(cfg, key, category.clone());
        if let Some(doc) = state.store.get(&info.path(DocKind::Rss)) {
            last_modified = last_modified.max(Some(SystemTime::from(doc.last_modified)));
        }
        let (href, name) = match &category {
            None => ("/feeds/".to_string(), "Tất cả tin".to_string()),
            Some(c) => (html::category_href(&c.slug), c.name.clone()),
        };
        let _ = writeln!(
            main,
            "<li><a href=\"{}\"><strong>{}</strong></a>{}</li>",
            esc(&href),
            esc(&name),
            html::subscribe_links(cfg, &info)
        );
    }
    main.push_str("</ul>\n<p class=\"subscribe\"><a href=\"/feeds/index.opml\">Tất cả nguồn tin (OPML)</a></p>\n");
    let page = Page {
        title: &cfg.site.title,
        head: html::alternates(cfg, &main_info),
        main,
    };
    page_response(&state, &method, &req, "home", page, last_modified)
}

/// `/feeds/`: the site-wide feed as a page.
pub async fn main_feed_view(
    State(state): State<AppState>,
    method: Method,
    req: HeaderMap,
) -> Response {
    feed_view(&state, &method, &req, FeedKey::Main, None).await
}

/// `/feeds/<slug>/`: one category's feed as a page; unknown slugs are 404.
pub async fn category_feed_view(
    state: &AppState,
    method: &Method,
    req: &HeaderMap,
    slug: &str,
) -> Response {
    let owned = slug.to_string();
    let category = match with_catalog(state, move |c| c.category(&owned)).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found_page(state),
        Err(e) => return server_error(state, "feed_view", e),
    };
    feed_view(
        state,
        method,
        req,
        FeedKey::Category(category.slug.clone()),
        Some(category),
    )
    .await
}

async fn feed_view(
    state: &AppState,
    method: &Method,
    req: &HeaderMap,
    key: FeedKey,
    category: Option<Category>,
) -> Response {
    let cfg = &state.cfg;
    let limit = cfg.feeds.max_items;
    let k = key.clone();
    let entries = match with_catalog(state, move |c| c.newest(&k, limit)).await {
        Ok(e) => e,
        Err(e) => return server_error(state, "feed_view", e),
    };
    let info = FeedInfo::new(cfg, key, category.clone());
    let mut main = String::new();
    if category.is_some() {
        main.push_str("<p class=\"meta\"><a href=\"/feeds/\">Tất cả tin</a></p>\n");
    }
    let _ = write!(
        main,
        "<h1>{}</h1>\n<p>{}</p>\n{}",
        esc(&info.title),
        esc(&info.description),
        html::subscribe_links(cfg, &info)
    );
    main.push_str(&html::entry_list(cfg, &entries, category.is_none()));
    let page = Page {
        title: &info.title,
        head: html::alternates(cfg, &info),
        main,
    };
    // The feed's own date moves when an entry leaves it too; the entries'
    // dates alone would not.
    let feed_date = state
        .store
        .get(&info.path(DocKind::Rss))
        .map(|doc| SystemTime::from(doc.last_modified));
    let last_modified = newest_update(&entries).max(feed_date);
    page_response(state, method, req, "feed_view", page, last_modified)
}

/// `/articles/{id}`: the article itself. The id arrives percent-decoded.
pub async fn article(
    State(state): State<AppState>,
    method: Method,
    req: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_page(&state);
    };
    let entry = match with_catalog(&state, move |c| c.entry(&id)).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found_page(&state),
        Err(e) => return server_error(&state, "article", e),
    };
    let cfg = &state.cfg;
    let mut head = html::alternates(cfg, &FeedInfo::new(cfg, FeedKey::Main, None));
    if let Some(c) = entry.categories.first() {
        let info = FeedInfo::new(cfg, FeedKey::Category(c.slug.clone()), Some(c.clone()));
        head.push_str(&html::alternates(cfg, &info));
    }
    let _ = writeln!(
        head,
        "<link rel=\"canonical\" href=\"{}\">",
        esc(&cfg.article_link(&entry.id))
    );
    let page = Page {
        title: &entry.title,
        head,
        main: article_body(&state, &entry),
    };
    let last_modified = Some(SystemTime::from(entry.updated));
    page_response(&state, &method, &req, "article", page, last_modified)
}

/// A rendered page as a cacheable representation, like a feed: a strong
/// ETag from the rendered bytes (so it changes exactly when the page does),
/// Last-Modified from the newest date it shows, 304s, gzip and brotli.
fn page_response(
    state: &AppState,
    method: &Method,
    req: &HeaderMap,
    label: &'static str,
    page: Page<'_>,
    last_modified: Option<SystemTime>,
) -> Response {
    let html = Bytes::from(html::render(&state.cfg, page));
    let hash = blake3::hash(&html);
    let etag = format!("\"{}\"", &hash.to_hex()[..32]);
    let mut headers = HeaderMap::new();
    put(&mut headers, CACHE_CONTROL, &state.cfg.server.cache_control);
    let rep = Representation {
        etag: &etag,
        last_modified,
        content_type: html::CONTENT_TYPE_HTML,
        label,
        headers,
    };
    representation::respond(rep, method, req, |coding| {
        state.pages.body(&hash, coding, &html)
    })
}

/// The newest `updated` among the entries a page lists.
fn newest_update(entries: &[Entry]) -> Option<SystemTime> {
    entries.iter().map(|e| SystemTime::from(e.updated)).max()
}

fn article_body(state: &AppState, e: &Entry) -> String {
    let cfg = &state.cfg;
    let mut out = String::from("<article>\n");
    if !e.categories.is_empty() {
        out.push_str("<p class=\"tags\">");
        for c in &e.categories {
            let _ = write!(
                out,
                "<a href=\"{}\">{}</a>",
                esc(&html::category_href(&c.slug)),
                esc(&c.name)
            );
        }
        out.push_str("</p>\n");
    }
    let _ = writeln!(out, "<h1>{}</h1>", esc(&e.title));
    out.push_str("<p class=\"meta\">");
    if let Some(place) = e.dateline.as_deref().filter(|d| !d.is_empty()) {
        let _ = write!(out, "<span class=\"dateline\">{}</span> · ", esc(place));
    }
    out.push_str(&html::time(cfg, &e.published));
    if e.updated > e.published {
        let _ = write!(out, " · cập nhật {}", html::time(cfg, &e.updated));
    }
    if !e.authors.is_empty() {
        let names: Vec<String> = e.authors.iter().map(|a| esc(a)).collect();
        let _ = write!(
            out,
            " · <span class=\"authors\">{}</span>",
            names.join(", ")
        );
    }
    out.push_str("</p>\n");
    if let Some(img) = e
        .image
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        let _ = writeln!(
            out,
            "<figure><img src=\"{}\" alt=\"\" loading=\"lazy\"></figure>",
            esc(img)
        );
    }
    if let Some(lead) = e.summary.as_deref().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(out, "<p class=\"lead\">{}</p>", esc(lead));
    }
    // Sanitised at ingest (ammonia); inserted as is.
    let _ = writeln!(out, "<div class=\"body\">\n{}\n</div>", e.content_html);
    out.push_str("</article>\n");
    out
}

/// Fallback for every unknown path.
pub async fn not_found(State(state): State<AppState>) -> Response {
    not_found_page(&state)
}

pub fn not_found_page(state: &AppState) -> Response {
    html::respond(
        &state.cfg,
        StatusCode::NOT_FOUND,
        "not_found",
        Page {
            title: "Không tìm thấy trang",
            head: String::new(),
            main:
                "<h1>Không tìm thấy trang</h1>\n<p>Trang bạn tìm không tồn tại hoặc đã bị gỡ.</p>\n\
<p><a href=\"/\">Về trang chủ</a></p>\n"
                    .into(),
        },
    )
}

fn server_error(state: &AppState, label: &'static str, e: anyhow::Error) -> Response {
    tracing::error!(route = label, error = %format!("{e:#}"), "cannot render a page");
    html::respond(
        &state.cfg,
        StatusCode::INTERNAL_SERVER_ERROR,
        label,
        Page {
            title: "Lỗi máy chủ",
            head: String::new(),
            main: "<h1>Lỗi máy chủ</h1>\n<p>Trang tạm thời không hiển thị được. Vui lòng thử lại sau.</p>\n"
                .into(),
        },
    )
}
