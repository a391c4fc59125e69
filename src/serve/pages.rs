//! The readable HTML pages: home (every feed and the newest articles), a
//! feed's view (`/feeds/`, `/feeds/<slug>/`), an article, and the 404 page.
//! All are rendered from the catalog, not from the published XML, so they
//! need no XSLT and show the same entries the feeds carry; each request reads
//! the catalog afresh, so a page is never stale. Rendered pages are answered
//! like feeds: validators, 304s, gzip and brotli ([`page_response`]).
//!
//! Each handler loads what its page shows and hands it to a template
//! function (`home_page`, `feed_page`, `article_page`, …) that only builds
//! markup, so the templates can be checked without a catalog.

use super::html::{self, Page};
use super::representation::{self, Representation, put};
use super::{AppState, with_catalog};
use crate::article::{Category, Entry};
use crate::catalog::{ArticleState, FeedKey};
use crate::config::Config;
use crate::render::{DocKind, FeedInfo};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use maud::{PreEscaped, html};
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
    let feeds: Vec<FeedInfo> = feeds
        .into_iter()
        .map(|(key, category)| FeedInfo::new(cfg, key, category))
        .collect();
    // The page changes when a listed feed does (a new category, an entry
    // removed), which the shown entries' dates alone would not reveal.
    let mut last_modified = newest_update(&newest);
    for info in &feeds {
        if let Some(doc) = state.store.get(&info.path(DocKind::Rss)) {
            last_modified = last_modified.max(Some(SystemTime::from(doc.last_modified)));
        }
    }
    let main_info = FeedInfo::new(cfg, FeedKey::Main, None);
    let page = home_page(cfg, &main_info, &feeds, &newest);
    page_response(&state, &method, &req, "home", page, last_modified)
}

/// The home page: the site, its newest articles, every feed to subscribe to.
fn home_page<'a>(
    cfg: &'a Config,
    main_info: &FeedInfo,
    feeds: &[FeedInfo],
    newest: &[Entry],
) -> Page<'a> {
    let main = html! {
        h1 { (cfg.site.title) }
        p { (cfg.site.description) }
        (html::subscribe_links(cfg, main_info))
        h2 { "Tin mới nhất" }
        (html::entry_list(cfg, newest, true))
        h2 { "Chuyên mục" }
        ul.feeds {
            @for info in feeds {
                li {
                    @match &info.category {
                        None => a href="/feeds/" { strong { "Tất cả tin" } },
                        Some(c) => a href=(crate::site::category_path(&c.slug)) { strong { (c.name) } },
                    }
                    (html::subscribe_links(cfg, info))
                }
            }
        }
        p.subscribe { a href="/feeds/index.opml" { "Tất cả nguồn tin (OPML)" } }
    };
    Page {
        title: &cfg.site.title,
        head: html::alternates(cfg, main_info),
        main,
    }
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
    let info = FeedInfo::new(cfg, key, category);
    let page = feed_page(cfg, &info, &entries);
    // The feed's own date moves when an entry leaves it too; the entries'
    // dates alone would not.
    let feed_date = state
        .store
        .get(&info.path(DocKind::Rss))
        .map(|doc| SystemTime::from(doc.last_modified));
    let last_modified = newest_update(&entries).max(feed_date);
    page_response(state, method, req, "feed_view", page, last_modified)
}

/// A feed as a page: its title and description, subscribe links, entries.
fn feed_page<'a>(cfg: &Config, info: &'a FeedInfo, entries: &[Entry]) -> Page<'a> {
    let is_category = info.category.is_some();
    let main = html! {
        @if is_category {
            p.meta { a href="/feeds/" { "Tất cả tin" } }
        }
        h1 { (info.title) }
        p { (info.description) }
        (html::subscribe_links(cfg, info))
        (html::entry_list(cfg, entries, !is_category))
    };
    Page {
        title: &info.title,
        head: html::alternates(cfg, info),
        main,
    }
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
    let entry = match with_catalog(&state, move |c| c.article(&id)).await {
        Ok(ArticleState::Public(e)) => e,
        // Embargoed copy does not exist for the public, not even as a 404
        // that differs from any other.
        Ok(ArticleState::Withheld | ArticleState::Unknown) => return not_found_page(&state),
        Ok(ArticleState::Killed { at, reason }) => return gone_page(&state, at, reason),
        Err(e) => return server_error(&state, "article", e),
    };
    let page = article_page(&state.cfg, &entry);
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

/// An article page, with autodiscovery for its feeds and a canonical link.
fn article_page<'a>(cfg: &Config, e: &'a Entry) -> Page<'a> {
    let category_info = e
        .categories
        .first()
        .map(|c| FeedInfo::new(cfg, FeedKey::Category(c.slug.clone()), Some(c.clone())));
    let head = html! {
        (html::alternates(cfg, &FeedInfo::new(cfg, FeedKey::Main, None)))
        @if let Some(info) = &category_info {
            (html::alternates(cfg, info))
        }
        link rel="canonical" href=(crate::site::article_link(cfg, &e.id));
    };
    let image = e
        .image
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let main = html! {
        article {
            @if !e.categories.is_empty() {
                p.tags {
                    @for c in &e.categories {
                        a href=(crate::site::category_path(&c.slug)) { (c.name) }
                    }
                }
            }
            h1 { (e.title) }
            p.meta {
                @if let Some(place) = e.dateline.as_deref().filter(|d| !d.is_empty()) {
                    span.dateline { (place) } " · "
                }
                (html::time(cfg, &e.published))
                @if e.updated > e.published {
                    " · cập nhật " (html::time(cfg, &e.updated))
                }
                @if !e.authors.is_empty() {
                    " · "
                    span.authors {
                        @for (i, author) in e.authors.iter().enumerate() {
                            @if i > 0 { ", " }
                            (author)
                        }
                    }
                }
            }
            @if let Some(src) = image {
                figure { img src=(src) alt="" loading="lazy"; }
            }
            @if let Some(lead) = e.summary.as_deref().filter(|l| !l.trim().is_empty()) {
                p.lead { (lead) }
            }
            // The one raw insertion: ingest sanitised the body with ammonia
            // (an allow-list of tags and attributes), so it is markup to
            // keep, not text to escape.
            div.body { (PreEscaped(&e.content_html)) }
            @if let Some(note) = &e.correction {
                aside.correction {
                    p { strong { "Đính chính: " } (note) }
                }
            }
        }
    };
    Page {
        title: &e.title,
        head,
        main,
    }
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
        not_found_body(),
    )
}

fn not_found_body() -> Page<'static> {
    Page {
        title: "Không tìm thấy trang",
        head: html! {},
        main: html! {
            h1 { "Không tìm thấy trang" }
            p { "Trang bạn tìm không tồn tại hoặc đã bị gỡ." }
            p { a href="/" { "Về trang chủ" } }
        },
    }
}

/// `/extensions`: what feedwire's extension elements and objects mean (JSON
/// Feed's `about` points here).
pub async fn extensions(State(state): State<AppState>, method: Method, req: HeaderMap) -> Response {
    let page = Page {
        title: "feedwire extensions",
        head: html! {},
        main: html! {
            h1 { "feedwire extensions" }
            h2 { "Killed articles" }
            p {
                "Atom feeds carry RFC 6721 tombstones (" code { "at:deleted-entry" }
                ", namespace " code { (crate::render::TOMBSTONES_NS) } ") for articles withdrawn "
                "in the last days, with " code { "at:comment" } " giving the reason when there is one. "
                "JSON Feed carries the same as " code { "_feedwire.deleted" } ": a list of objects with "
                code { "id" } " (the entry id), " code { "when" } " (RFC 3339) and an optional "
                code { "reason" } ". Remove such entries."
            }
            h2 { "Embargoed copy" }
            p {
                "Partners allowed to receive embargoed copy early get it marked: in Atom and RSS "
                code { "<fw:status embargoed-until=\"…\">withheld</fw:status>" } " (namespace "
                code { (crate::render::LIFECYCLE_NS) } "), in JSON Feed items "
                code { "_feedwire.status = \"withheld\"" } " with " code { "_feedwire.embargoed_until" }
                ". Do not publish such copy before that moment."
            }
        },
    };
    page_response(&state, &method, &req, "extensions", page, None)
}

/// A killed article: `410 Gone` with a short notice (and the reason, when
/// the editors gave one), so readers and crawlers know it was withdrawn.
fn gone_page(
    state: &AppState,
    at: chrono::DateTime<chrono::Utc>,
    reason: Option<String>,
) -> Response {
    html::respond(
        &state.cfg,
        StatusCode::GONE,
        "article",
        gone_body(&state.cfg, at, reason.as_deref()),
    )
}

fn gone_body(
    cfg: &Config,
    at: chrono::DateTime<chrono::Utc>,
    reason: Option<&str>,
) -> Page<'static> {
    let when = html::time(cfg, &at.fixed_offset());
    let reason = reason.map(str::to_string);
    Page {
        title: "Bài viết đã bị gỡ",
        head: html! {},
        main: html! {
            h1 { "Bài viết đã bị gỡ" }
            p.meta { "Bài viết này đã được gỡ bỏ lúc " (when) "." }
            @if let Some(reason) = &reason {
                p { strong { "Lý do: " } (reason) }
            }
            p { a href="/" { "Về trang chủ" } }
        },
    }
}

pub(super) fn server_error(state: &AppState, label: &'static str, e: anyhow::Error) -> Response {
    tracing::error!(route = label, error = %format!("{e:#}"), "cannot render a page");
    html::respond(
        &state.cfg,
        StatusCode::INTERNAL_SERVER_ERROR,
        label,
        server_error_body(),
    )
}

fn server_error_body() -> Page<'static> {
    Page {
        title: "Lỗi máy chủ",
        head: html! {},
        main: html! {
            h1 { "Lỗi máy chủ" }
            p { "Trang tạm thời không hiển thị được. Vui lòng thử lại sau." }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Text that would run script, break out of an attribute or start an
    /// entity if a template inserted it unescaped.
    const HOSTILE: &str = r#"<script>alert(1)</script> "x" & y"#;
    const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt; &quot;x&quot; &amp; y";
    /// Already sanitised at ingest: must arrive as markup, not as text.
    const BODY: &str = "<p>Nội dung <em>đã lọc</em></p>";

    fn config() -> Config {
        // TOML literal strings: HOSTILE holds no `'`.
        let toml = format!("[site]\ntitle = '{HOSTILE}'\ndescription = 'Mô tả {HOSTILE}'\n");
        Config::from_toml(&toml, Path::new("/srv/feedwire/config.toml")).unwrap()
    }

    fn entry() -> Entry {
        let t = chrono::DateTime::parse_from_rfc3339("2023-08-06T10:00:00+07:00").unwrap();
        Entry {
            id: HOSTILE.into(),
            title: HOSTILE.into(),
            summary: Some(HOSTILE.into()),
            content_html: BODY.into(),
            authors: vec![HOSTILE.into(), "Lê Văn B".into()],
            categories: vec![Category::new(HOSTILE)],
            tags: vec![],
            image: Some(format!("https://img.example/a.jpg?{HOSTILE}")),
            language: "vi".into(),
            dateline: Some(HOSTILE.into()),
            published: t,
            updated: t + chrono::Duration::hours(1),
            version: 1,
            status: Default::default(),
            embargoed_until: None,
            correction: Some(HOSTILE.into()),
            first_seen: None,
            content_created: None,
        }
    }

    /// Nothing of HOSTILE got through raw, and every `expected` fragment
    /// (HOSTILE escaped, in its place) is in the document.
    fn assert_escaped(route: &str, doc: &str, expected: &[String]) {
        let without_body = doc.replacen(BODY, "", 1);
        for raw in ["<script", r#""x""#, "& y"] {
            assert!(
                !without_body.contains(raw),
                "{route}: raw {raw:?} in\n{doc}"
            );
        }
        for fragment in expected {
            assert!(doc.contains(fragment), "{route}: no {fragment:?} in\n{doc}");
        }
    }

    /// What the shell shows of the site title on every page.
    fn shell() -> Vec<String> {
        vec![
            format!(r#"<a href="/">{ESCAPED}</a>"#),
            format!("<div class=\"wrap\">{ESCAPED} · "),
        ]
    }

    #[test]
    fn serve_home_escapes_every_text() {
        let cfg = config();
        let e = entry();
        let main_info = FeedInfo::new(&cfg, FeedKey::Main, None);
        let category = e.categories[0].clone();
        let feeds = [
            FeedInfo::new(&cfg, FeedKey::Main, None),
            FeedInfo::new(
                &cfg,
                FeedKey::Category(category.slug.clone()),
                Some(category),
            ),
        ];
        let doc = html::render(&cfg, home_page(&cfg, &main_info, &feeds, &[e]));
        let mut expected = shell();
        expected.extend([
            format!("<title>{ESCAPED}</title>"),
            format!(r#"title="{ESCAPED} (RSS)""#),
            format!("<h1>{ESCAPED}</h1>"),
            format!("<p>Mô tả {ESCAPED}</p>"),
            format!(">{ESCAPED}</a></h3>"),
            format!(r#"/">{ESCAPED}</a></p>"#),
            format!("<p>{ESCAPED}</p>"),
            format!("<strong>{ESCAPED}</strong>"),
        ]);
        assert_escaped("/", &doc, &expected);
    }

    #[test]
    fn serve_feed_views_escape_every_text() {
        let cfg = config();
        let e = entry();
        let main = FeedInfo::new(&cfg, FeedKey::Main, None);
        let doc = html::render(&cfg, feed_page(&cfg, &main, std::slice::from_ref(&e)));
        let mut expected = shell();
        expected.extend([
            format!("<title>{ESCAPED}</title>"),
            format!("<h1>{ESCAPED}</h1>"),
            format!(">{ESCAPED}</a></h3>"),
            format!(r#"/">{ESCAPED}</a></p>"#),
            format!("<p>{ESCAPED}</p>"),
        ]);
        assert_escaped("/feeds/", &doc, &expected);

        let category = e.categories[0].clone();
        let key = FeedKey::Category(category.slug.clone());
        let info = FeedInfo::new(&cfg, key, Some(category));
        let doc = html::render(&cfg, feed_page(&cfg, &info, &[e]));
        let mut expected = shell();
        expected.extend([
            format!("<title>{ESCAPED} — {ESCAPED}</title>"),
            format!(r#"title="{ESCAPED} — {ESCAPED} (Atom)""#),
            format!("<h1>{ESCAPED} — {ESCAPED}</h1>"),
            format!("<p>Mô tả {ESCAPED}: {ESCAPED}</p>"),
            format!(">{ESCAPED}</a></h3>"),
        ]);
        assert_escaped("/feeds/<slug>/", &doc, &expected);
    }

    #[test]
    fn serve_article_escapes_every_text_and_keeps_the_sanitised_body() {
        let cfg = config();
        let e = entry();
        let doc = html::render(&cfg, article_page(&cfg, &e));
        let mut expected = shell();
        expected.extend([
            format!("<title>{ESCAPED}</title>"),
            format!(r#"title="{ESCAPED} — {ESCAPED} (JSON Feed)""#),
            format!("<h1>{ESCAPED}</h1>"),
            format!(r#"/">{ESCAPED}</a></p>"#),
            format!(r#"<span class="dateline">{ESCAPED}</span>"#),
            format!(r#"<span class="authors">{ESCAPED}, Lê Văn B</span>"#),
            format!(r#"<img src="https://img.example/a.jpg?{ESCAPED}""#),
            format!(r#"<p class="lead">{ESCAPED}</p>"#),
            format!(r#"<div class="body">{BODY}</div>"#),
        ]);
        assert_escaped("/articles/{id}", &doc, &expected);
        let canonical = crate::site::article_link(&cfg, HOSTILE);
        assert!(
            doc.contains(&format!(r#"<link rel="canonical" href="{canonical}">"#)),
            "the id is percent-encoded into the canonical link:\n{doc}"
        );
    }

    #[test]
    fn serve_error_pages_escape_the_site_title() {
        let cfg = config();
        for (route, page) in [("404", not_found_body()), ("500", server_error_body())] {
            let doc = html::render(&cfg, page);
            assert_escaped(route, &doc, &shell());
        }
    }

    /// The stylesheet is spliced as text: it must contain nothing the
    /// escaper would rewrite, or the CSS would break silently.
    #[test]
    fn serve_stylesheet_arrives_intact() {
        let doc = html::render(&config(), not_found_body());
        assert!(doc.contains(&format!("<style>{}</style>", html::STYLE)));
    }
}
