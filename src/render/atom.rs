//! Atom 1.0 (RFC 4287).

use super::fragments::{find, join_document, rfind};
use super::{Context, DocKind, full_html, image_type};
use crate::article::Entry;
use crate::site;
use anyhow::Result;
use atom_syndication as atom;

pub(super) fn render(ctx: &Context, entries: &[Entry]) -> Result<Vec<u8>> {
    let cfg = ctx.cfg;
    let mut links = vec![
        link(
            &ctx.self_url(DocKind::Atom),
            "self",
            Some("application/atom+xml"),
        ),
        link(&ctx.info.html_url(cfg), "alternate", Some("text/html")),
    ];
    for hub in ctx.hubs() {
        links.push(link(&hub, "hub", None));
    }
    // RFC 5005: the live feed points at its newest archive page; a page at
    // the live feed (`current`) and at the page before it.
    let history = ctx.history(DocKind::Atom);
    if let Some(current) = &history.current {
        links.push(link(current, "current", Some("application/atom+xml")));
    }
    if let Some(older) = &history.older {
        links.push(link(older, "prev-archive", Some("application/atom+xml")));
    }
    let mut namespaces = std::collections::BTreeMap::new();
    if !ctx.tombstones.is_empty() {
        namespaces.insert("at".to_string(), super::TOMBSTONES_NS.to_string());
    }
    let mut extensions = tombstones(ctx);
    if ctx.page.is_some() {
        namespaces.insert("fh".to_string(), super::HISTORY_NS.to_string());
        extensions.extend(archive_mark());
    }
    let mut feed = atom::Feed {
        title: text(&ctx.info.title),
        id: ctx.feed_id(),
        updated: ctx.updated,
        authors: vec![person(&cfg.site.author)],
        links,
        subtitle: Some(text(&ctx.info.description)),
        generator: Some(atom::Generator {
            value: "feedwire".into(),
            ..Default::default()
        }),
        lang: Some(cfg.site.language.clone()),
        namespaces,
        extensions,
        ..Default::default()
    };
    let Some((reuse, keys)) = ctx.fragments.filter(|_| !entries.is_empty()) else {
        feed.entries = entries.iter().map(|e| entry(ctx, e)).collect();
        return write(&feed);
    };
    // The feed written around an empty placeholder entry, with the
    // entries' fragments in its place (extensions such as tombstones follow
    // the entries, so the placeholder is found from the front).
    feed.entries = vec![atom::Entry::default()];
    let around = write(&feed)?;
    let start = find(&around, ENTRY_START).ok_or_else(misplaced)?;
    let end = find(&around[start..], ENTRY_END).ok_or_else(misplaced)? + start + ENTRY_END.len();
    let fragments = reuse.fragments(DocKind::Atom, entries, keys, |e| fragment(ctx, e))?;
    Ok(join_document(
        ctx,
        DocKind::Atom,
        &around[..start],
        fragments,
        b"",
        &around[end..],
    ))
}

/// An entry's start in a feed, with the line break and indentation before
/// it. Nothing before the entries is written raw (text is escaped), so the
/// first one found is an entry's.
const ENTRY_START: &[u8] = b"\n  <entry>";
const ENTRY_END: &[u8] = b"</entry>";

fn misplaced() -> anyhow::Error {
    anyhow::anyhow!("the Atom writer did not write the entry where expected")
}

fn write(feed: &atom::Feed) -> Result<Vec<u8>> {
    let config = atom::WriteConfig {
        write_document_declaration: true,
        indent_size: Some(2),
    };
    let mut out = Vec::with_capacity(16 * 1024);
    feed.write_with_config(&mut out, config)?;
    Ok(out)
}

/// One entry's `<entry>` as it stands in any feed: written alone in an
/// otherwise empty feed, from its start to the last `</entry>` (only
/// `</feed>` follows it).
fn fragment(ctx: &Context, e: &Entry) -> Result<Vec<u8>> {
    let feed = atom::Feed {
        entries: vec![entry(ctx, e)],
        ..Default::default()
    };
    let out = write(&feed)?;
    match (find(&out, ENTRY_START), rfind(&out, ENTRY_END)) {
        (Some(start), Some(end)) if start < end => Ok(out[start..end + ENTRY_END.len()].to_vec()),
        _ => Err(misplaced()),
    }
}

/// One entry as a standalone Atom entry document (RFC 4287 §4.1.2).
pub(super) fn render_entry(ctx: &Context, e: &Entry) -> Result<Vec<u8>> {
    let config = atom::WriteConfig {
        write_document_declaration: true,
        indent_size: Some(2),
    };
    let mut standalone = entry(ctx, e);
    // No feed around it to inherit an author from (RFC 4287 §4.1.2).
    if standalone.authors.is_empty() {
        standalone.authors = vec![person(&ctx.cfg.site.author)];
    }
    let mut out = Vec::with_capacity(8 * 1024);
    standalone.write_with_config(&mut out, config)?;
    Ok(out)
}

/// RFC 6721: an `at:deleted-entry` for each killed article the feed still
/// announces, with `at:comment` carrying the reason when one was given.
fn tombstones(ctx: &Context) -> atom_syndication::extension::ExtensionMap {
    use atom_syndication::extension::Extension;
    let mut map = atom_syndication::extension::ExtensionMap::new();
    if ctx.tombstones.is_empty() {
        return map;
    }
    let tz = ctx.cfg.time_zone().unwrap_or(chrono_tz::UTC);
    let elements = ctx
        .tombstones
        .iter()
        .map(|t| {
            let mut children = std::collections::BTreeMap::new();
            if let Some(reason) = &t.reason {
                children.insert(
                    "comment".to_string(),
                    vec![Extension {
                        name: "at:comment".into(),
                        value: Some(reason.clone()),
                        ..Default::default()
                    }],
                );
            }
            Extension {
                name: "at:deleted-entry".into(),
                attrs: [
                    ("ref".to_string(), site::entry_id(ctx.cfg, &t.id)),
                    (
                        "when".to_string(),
                        t.killed_at.with_timezone(&tz).to_rfc3339(),
                    ),
                ]
                .into(),
                children,
                ..Default::default()
            }
        })
        .collect();
    map.entry("at".into())
        .or_default()
        .insert("deleted-entry".into(), elements);
    map
}

/// `<fh:archive/>`: this document is an archive page (RFC 5005 §4), its
/// entries fixed but for kills and edits.
fn archive_mark() -> atom_syndication::extension::ExtensionMap {
    use atom_syndication::extension::Extension;
    let mark = Extension {
        name: "fh:archive".into(),
        value: Some(String::new()),
        ..Default::default()
    };
    let mut map = atom_syndication::extension::ExtensionMap::new();
    map.entry("fh".into())
        .or_default()
        .insert("archive".into(), vec![mark]);
    map
}

/// `<fw:status embargoed-until="…">withheld</fw:status>` on embargoed copy
/// for partners allowed it early (the namespace is declared on the element:
/// an entry document has no feed around it).
fn withheld_mark(until: String) -> atom_syndication::extension::ExtensionMap {
    use atom_syndication::extension::Extension;
    let mark = Extension {
        name: "fw:status".into(),
        value: Some("withheld".into()),
        attrs: [
            ("xmlns:fw".to_string(), super::LIFECYCLE_NS.to_string()),
            ("embargoed-until".to_string(), until),
        ]
        .into(),
        ..Default::default()
    };
    let mut map = atom_syndication::extension::ExtensionMap::new();
    map.entry("fw".into())
        .or_default()
        .insert("status".into(), vec![mark]);
    map
}

fn entry(ctx: &Context, e: &Entry) -> atom::Entry {
    let cfg = ctx.cfg;
    let mut links = vec![link(
        &site::article_link(cfg, &e.id),
        "alternate",
        Some("text/html"),
    )];
    if let Some(image) = &e.image {
        links.push(link(image, "enclosure", Some(image_type(image))));
    }
    atom::Entry {
        title: text(&e.title),
        id: site::entry_id(cfg, &e.id),
        updated: e.updated,
        published: Some(e.published),
        authors: e.authors.iter().map(|a| person(a)).collect(),
        categories: e
            .categories
            .iter()
            .map(|c| atom::Category {
                term: c.slug.clone(),
                label: Some(c.name.clone()),
                scheme: None,
            })
            .collect(),
        links,
        summary: e.summary.as_deref().map(text),
        content: Some(atom::Content {
            value: Some(full_html(e)),
            content_type: Some("html".into()),
            lang: (e.language != cfg.site.language).then(|| e.language.clone()),
            ..Default::default()
        }),
        extensions: super::embargo_mark(e)
            .map(withheld_mark)
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn text(s: &str) -> atom::Text {
    atom::Text::plain(s)
}

fn person(name: &str) -> atom::Person {
    atom::Person {
        name: name.to_string(),
        ..Default::default()
    }
}

fn link(href: &str, rel: &str, mime: Option<&str>) -> atom::Link {
    atom::Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..Default::default()
    }
}
