//! Published feed documents under `/feeds/…`: exact-key lookups in the
//! in-memory store with content negotiation, validators and the headers feed
//! readers rely on (protocols.md §7, HTTP-01…HTTP-08).
//!
//! Archive pages (RFC 5005) are not held in memory: a path that parses as
//! one ([`ArchivePath`], strictly, so it names one page file or nothing) is
//! read from the feeds folder, with the same validators (an ETag from the
//! content hash, Last-Modified from the file, written only when its bytes
//! change) and compression (copies kept in the bounded page cache, by
//! content hash). A full page gets `server.archive_cache_control`; a feed's
//! newest page, which still fills, gets `server.cache_control`. A page the
//! folder lacks is served from the catalog's record of it when the catalog
//! keeps published bytes (PostgreSQL: another instance published it).

use super::negotiate::Coding;
use super::representation::{self, Prepared, Representation, put};
use super::{AppState, pages};
use crate::publish::Served;
use crate::render::{ArchivePath, DocKind};
use anyhow::Context;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, LINK};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use std::time::SystemTime;

/// `/feeds/{*path}`: a directory-style path (`xay-dung-dang/`) is the readable
/// view of that category's feed; anything else must be a published document's
/// exact key. Traversal attempts are simply keys that do not exist.
pub async fn feeds_path(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    // A segment that does not decode to UTF-8 cannot name anything we publish.
    let Ok(Path(path)) = path else {
        return pages::not_found_page(&state);
    };
    if let Some(slug) = path.strip_suffix('/') {
        return pages::category_feed_view(&state, &method, &headers, slug).await;
    }
    if let Some(archive) = ArchivePath::parse(&path) {
        let newer = archive.page.checked_add(1).map(|n| archive.with_page(n));
        return archive_page(&state, &path, archive.kind, newer, &method, &headers).await;
    }
    live_document(&state, &path, &method, &headers).unwrap_or_else(|| pages::not_found_page(&state))
}

/// The answer for the live document published under `key` (a decoded path
/// below `/feeds/`), if there is one: not a category view, not an archive
/// page, not a site-root document. The front door calls this directly.
pub(super) fn live_document(
    state: &AppState,
    key: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response> {
    if key.ends_with('/') || ArchivePath::parse(key).is_some() {
        return None;
    }
    // Sitemaps and text live at the site's root, not here.
    let doc = state.store.get(key).filter(|d| !d.kind.at_site_root())?;
    Some(document(state, &doc, method, headers))
}

/// One published document, from the store's bytes and its precomputed
/// compressed copies, with response heads prepared once per version.
fn document(state: &AppState, doc: &Served, method: &Method, req: &HeaderMap) -> Response {
    let body = |coding| match coding {
        Coding::Identity => doc.body.clone(),
        Coding::Gzip => doc.gzip().clone(),
        Coding::Brotli => doc.brotli().clone(),
    };
    let prepared = doc.prepared(|doc| Prepared::new(representation_of(state, doc)));
    if let Some(res) = prepared.and_then(|p| p.respond(method, req, body)) {
        return res;
    }
    representation::respond(representation_of(state, doc), method, req, body)
}

/// What a published document's responses say besides its body.
fn representation_of<'a>(state: &AppState, doc: &'a Served) -> Representation<'a> {
    let mut headers = HeaderMap::new();
    put(&mut headers, CACHE_CONTROL, &state.cfg.server.cache_control);
    let self_url = crate::site::feed_url(&state.cfg, &doc.path);
    put(&mut headers, LINK, &format!("<{self_url}>; rel=\"self\""));
    for hub in crate::site::advertised_hubs(&state.cfg) {
        if let Ok(v) = HeaderValue::from_str(&format!("<{hub}>; rel=\"hub\"")) {
            headers.append(LINK, v);
        }
    }
    Representation {
        etag: &doc.etag,
        last_modified: Some(SystemTime::from(doc.last_modified)),
        content_type: doc.kind.content_type(),
        label: "feeds",
        headers,
    }
}

/// An archive page as read from the feeds folder.
struct PageFile {
    body: axum::body::Bytes,
    modified: SystemTime,
    /// The next page exists: this one is full and fixed.
    full: bool,
}

/// Read an archive page (and whether the page after it exists) off the
/// async threads. A missing or non-regular file is `None`.
fn read_page(
    feeds: &std::path::Path,
    path: &str,
    newer: Option<&str>,
) -> std::io::Result<Option<PageFile>> {
    use std::io::Read;
    let file = feeds.join(path);
    // No symbolic links: the publisher writes regular files only.
    match std::fs::symlink_metadata(&file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    // Content and date from one handle: a page replaced in between (an
    // atomic rename) is read whole, old or new, with its own date.
    let mut handle = match std::fs::File::open(&file) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = handle.metadata()?;
    let mut body = Vec::with_capacity(meta.len() as usize);
    handle.read_to_end(&mut body)?;
    let full = newer.is_some_and(|n| feeds.join(n).is_file());
    Ok(Some(PageFile {
        body: body.into(),
        modified: meta.modified()?,
        full,
    }))
}

/// An archive page this instance's feeds folder lacks, as the catalog
/// recorded it (PostgreSQL keeps every published version's bytes): a
/// standby, or a leader that publishes to object storage only, serves the
/// pages another instance wrote to its own folder. `None` when the catalog
/// has no bytes for it either.
async fn recorded_page(
    state: &AppState,
    path: &str,
    newer: Option<String>,
) -> anyhow::Result<Option<PageFile>> {
    // Only PostgreSQL keeps the bytes: on SQLite a missing page is simply
    // missing, without a trip to the catalog thread.
    if state.cfg.catalog.url.is_none() {
        return Ok(None);
    }
    let owned = path.to_string();
    super::with_catalog(state, move |c| {
        let Some(doc) = c.published_document(&owned)? else {
            return Ok(None);
        };
        let full = match newer {
            Some(newer) => c.published_document(&newer)?.is_some(),
            None => false,
        };
        Ok(Some(PageFile {
            body: doc.body.into(),
            modified: SystemTime::from(doc.first_published),
            full,
        }))
    })
    .await
    .with_context(|| format!("cannot read the archive page {path} from the catalog"))
}

async fn archive_page(
    state: &AppState,
    path: &str,
    kind: DocKind,
    newer: Option<String>,
    method: &Method,
    req: &HeaderMap,
) -> Response {
    let feeds = state.cfg.paths.feeds.clone();
    let owned = path.to_string();
    let newer_path = newer.clone();
    let read =
        tokio::task::spawn_blocking(move || read_page(&feeds, &owned, newer.as_deref())).await;
    let page = match read {
        Ok(Ok(Some(page))) => page,
        Ok(Ok(None)) => match recorded_page(state, path, newer_path).await {
            Ok(Some(page)) => page,
            Ok(None) => return pages::not_found_page(state),
            Err(e) => return pages::server_error(state, "feeds", e),
        },
        Ok(Err(e)) => {
            return pages::server_error(
                state,
                "feeds",
                anyhow::Error::from(e).context(format!(
                    "cannot read the archive page {path} from the feeds folder"
                )),
            );
        }
        Err(e) => {
            return pages::server_error(
                state,
                "feeds",
                anyhow::anyhow!("reading an archive page failed: {e}"),
            );
        }
    };
    let hash = blake3::hash(&page.body);
    let etag = format!("\"{}\"", &hash.to_hex()[..32]);
    let mut headers = HeaderMap::new();
    let cache_control = if page.full {
        &state.cfg.server.archive_cache_control
    } else {
        &state.cfg.server.cache_control
    };
    put(&mut headers, CACHE_CONTROL, cache_control);
    let self_url = crate::site::feed_url(&state.cfg, path);
    put(&mut headers, LINK, &format!("<{self_url}>; rel=\"self\""));
    let rep = Representation {
        etag: &etag,
        last_modified: Some(page.modified),
        content_type: kind.content_type(),
        label: "feeds",
        headers,
    };
    let cache = state.pages.clone();
    representation::respond(rep, method, req, move |coding| {
        cache.body(&hash, coding, &page.body)
    })
}
