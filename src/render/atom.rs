//! Atom 1.0 (RFC 4287).

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
    for hub in site::advertised_hubs(cfg) {
        links.push(link(&hub, "hub", None));
    }
    let feed = atom::Feed {
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
        entries: entries.iter().map(|e| entry(ctx, e)).collect(),
        ..Default::default()
    };
    let config = atom::WriteConfig {
        write_document_declaration: true,
        indent_size: Some(2),
    };
    let mut out = Vec::with_capacity(16 * 1024);
    feed.write_with_config(&mut out, config)?;
    Ok(out)
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
