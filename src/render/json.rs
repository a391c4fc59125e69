//! JSON Feed 1.1 (jsonfeed.org/version/1.1), written with serde.

use super::fragments::{find, join_document};
use super::{Context, DocKind, full_html};
use crate::article::Entry;
use crate::site;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Feed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: String,
    /// The live feed's URL on every page: it identifies the feed.
    feed_url: String,
    /// The next older document (JSON Feed's pagination): the newest
    /// archive page from the live feed, page n-1 from page n.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
    description: &'a str,
    language: &'a str,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub>,
    items: Vec<Item<'a>>,
    /// feedwire's extension (JSON Feed's underscore rule): killed articles
    /// the feed still announces, like Atom's RFC 6721 tombstones.
    #[serde(rename = "_feedwire", skip_serializing_if = "Option::is_none")]
    feedwire: Option<FeedExtension>,
}

#[derive(Serialize)]
struct FeedExtension {
    about: String,
    deleted: Vec<Deleted>,
}

#[derive(Serialize)]
struct Deleted {
    id: String,
    when: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// feedwire's extension on an item: the mark on embargoed copy.
#[derive(Serialize)]
struct ItemExtension {
    about: String,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    embargoed_until: String,
}

/// Where the extension is described (JSON Feed asks for it): a page feedwire
/// serves itself.
fn about(cfg: &crate::config::Config) -> String {
    format!("{}/extensions", cfg.site.base_url)
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Hub {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
struct Item<'a> {
    id: String,
    url: String,
    title: &'a str,
    content_html: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    language: &'a str,
    #[serde(rename = "_feedwire", skip_serializing_if = "Option::is_none")]
    feedwire: Option<ItemExtension>,
}

pub(super) fn render(ctx: &Context, entries: &[Entry]) -> Result<Vec<u8>> {
    let cfg = ctx.cfg;
    let mut feed = Feed {
        version: "https://jsonfeed.org/version/1.1",
        title: &ctx.info.title,
        home_page_url: ctx.info.html_url(cfg),
        feed_url: ctx.live_url(DocKind::Json),
        next_url: ctx.history(DocKind::Json).older,
        description: &ctx.info.description,
        language: &cfg.site.language,
        authors: vec![Author {
            name: &cfg.site.author,
        }],
        hubs: ctx
            .hubs()
            .into_iter()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .collect(),
        items: Vec::new(),
        feedwire: (!ctx.tombstones.is_empty()).then(|| {
            let tz = cfg.time_zone().unwrap_or(chrono_tz::UTC);
            FeedExtension {
                about: about(cfg),
                deleted: ctx
                    .tombstones
                    .iter()
                    .map(|t| Deleted {
                        id: site::entry_id(cfg, &t.id),
                        when: t.killed_at.with_timezone(&tz).to_rfc3339(),
                        reason: t.reason.clone(),
                    })
                    .collect(),
            }
        }),
    };
    let Some((reuse, keys)) = ctx.fragments.filter(|_| !entries.is_empty()) else {
        feed.items = entries.iter().map(|e| item(ctx, e)).collect();
        let mut out = serde_json::to_vec_pretty(&feed)?;
        out.push(b'\n');
        return Ok(out);
    };
    // The feed written with no items, the items' fragments then joined into
    // the empty array. A line break is escaped inside JSON strings, so the
    // key at the start of a line is the feed's own `items`.
    let mut around = serde_json::to_vec_pretty(&feed)?;
    around.push(b'\n');
    let at = find(&around, EMPTY_ITEMS)
        .ok_or_else(|| anyhow::anyhow!("the JSON writer did not write the items where expected"))?;
    let fragments = reuse.fragments(DocKind::Json, entries, keys, |e| fragment(ctx, e))?;
    let mut head = around[..at].to_vec();
    head.extend_from_slice(ITEMS_OPEN);
    let mut tail = ITEMS_CLOSE.to_vec();
    tail.extend_from_slice(&around[at + EMPTY_ITEMS.len()..]);
    Ok(join_document(
        ctx,
        DocKind::Json,
        &head,
        fragments,
        b",",
        &tail,
    ))
}

const EMPTY_ITEMS: &[u8] = b"\n  \"items\": []";
const ITEMS_OPEN: &[u8] = b"\n  \"items\": [";
const ITEMS_CLOSE: &[u8] = b"\n  ]";

/// One item as it stands in a feed's `items` array (indented two levels,
/// from the line break before it; items are joined with a comma).
fn fragment(ctx: &Context, e: &Entry) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct One<'a> {
        items: [Item<'a>; 1],
    }
    let out = serde_json::to_vec_pretty(&One {
        items: [item(ctx, e)],
    })?;
    let start = ITEMS_OPEN.len() + 1; // `{` then the key and the bracket
    let end = out.len() - ITEMS_CLOSE.len() - 2; // the closing bracket, `\n}`
    match out.get(start..end) {
        Some(f)
            if out.starts_with(b"{")
                && out[1..].starts_with(ITEMS_OPEN)
                && out.ends_with(b"\n  ]\n}") =>
        {
            Ok(f.to_vec())
        }
        _ => anyhow::bail!("the JSON writer did not write the item where expected"),
    }
}

fn item<'a>(ctx: &Context, e: &'a Entry) -> Item<'a> {
    let cfg = ctx.cfg;
    let mut tags: Vec<&str> = e.categories.iter().map(|c| c.name.as_str()).collect();
    tags.extend(
        e.tags
            .iter()
            .map(String::as_str)
            .filter(|t| !e.categories.iter().any(|c| c.name == *t)),
    );
    Item {
        id: site::entry_id(cfg, &e.id),
        url: site::article_link(cfg, &e.id),
        title: &e.title,
        content_html: full_html(e),
        summary: e.summary.as_deref(),
        image: e.image.as_deref(),
        date_published: e.published.to_rfc3339(),
        date_modified: e.updated.to_rfc3339(),
        authors: e.authors.iter().map(|a| Author { name: a }).collect(),
        tags,
        language: &e.language,
        feedwire: super::embargo_mark(e).map(|until| ItemExtension {
            about: about(cfg),
            status: "withheld",
            embargoed_until: until,
        }),
    }
}
