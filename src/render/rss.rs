//! RSS 2.0 with the content, Dublin Core, Atom and Media RSS extensions.

use super::fragments::{find, join_document, rfind};
use super::{Context, DocKind, full_html, image_type, rfc822};
use crate::article::Entry;
use crate::html::escape_html;
use crate::site;
use anyhow::Result;
use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};
use std::collections::BTreeMap;

const MEDIA_NS: &str = "http://search.yahoo.com/mrss/";

pub(super) fn render(ctx: &Context, entries: &[Entry]) -> Result<Vec<u8>> {
    let cfg = ctx.cfg;
    let mut links = vec![Link {
        href: ctx.self_url(DocKind::Rss),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..Default::default()
    }];
    for hub in ctx.hubs() {
        links.push(Link {
            href: hub,
            rel: "hub".into(),
            ..Default::default()
        });
    }
    // RFC 5005 Appendix B: the same relations as Atom, as `atom:link`.
    let history = ctx.history(DocKind::Rss);
    for (rel, href) in [
        ("current", history.current),
        ("prev-archive", history.older),
    ] {
        if let Some(href) = href {
            links.push(Link {
                href,
                rel: rel.into(),
                mime_type: Some("application/rss+xml".into()),
                ..Default::default()
            });
        }
    }
    let mut namespaces = BTreeMap::new();
    if entries.iter().any(|e| e.image.is_some()) {
        namespaces.insert("media".to_string(), MEDIA_NS.to_string());
    }
    let mut extensions = ExtensionMap::new();
    if ctx.page.is_some() {
        namespaces.insert("fh".to_string(), super::HISTORY_NS.to_string());
        let mark = Extension {
            name: "fh:archive".into(),
            value: Some(String::new()),
            ..Default::default()
        };
        extensions
            .entry("fh".into())
            .or_default()
            .insert("archive".into(), vec![mark]);
    }
    let mut channel = rss::Channel {
        title: ctx.info.title.clone(),
        link: ctx.info.html_url(cfg),
        description: ctx.info.description.clone(),
        language: Some(cfg.site.language.clone()),
        last_build_date: Some(rfc822(&ctx.updated)),
        generator: Some("feedwire".into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        atom_ext: Some(AtomExtension { links }),
        namespaces,
        extensions,
        ..Default::default()
    };
    let Some((reuse, keys)) = ctx.fragments.filter(|_| !entries.is_empty()) else {
        channel.items = entries.iter().map(|e| item(ctx, e)).collect();
        return write(&channel);
    };
    // Items are the last thing in a channel: the document is the channel
    // written around a placeholder item that declares the namespaces the
    // real items use (content always, Dublin Core with any author), with
    // the items' fragments in its place.
    channel.items = vec![rss::Item {
        content: Some(String::new()),
        dublin_core_ext: entries
            .iter()
            .any(|e| !e.authors.is_empty())
            .then(DublinCoreExtension::default),
        ..Default::default()
    }];
    let around = write(&channel)?;
    let (start, end) = item_span(&around)?;
    let fragments = reuse.fragments(DocKind::Rss, entries, keys, |e| fragment(ctx, e))?;
    Ok(join_document(
        ctx,
        DocKind::Rss,
        &around[..start],
        fragments,
        b"",
        &around[end..],
    ))
}

fn write(channel: &rss::Channel) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16 * 1024);
    channel.pretty_write_to(&mut out, b' ', 2)?;
    Ok(out)
}

/// Where the only item of a written channel starts (with the line break
/// and indentation before it) and ends. Nothing before the items is
/// written raw (CDATA is only used inside items), so the first `<item>` is
/// the item's; nothing after it but `</channel>`, so the last `</item>` is.
fn item_span(channel: &[u8]) -> Result<(usize, usize)> {
    const START: &[u8] = b"\n    <item>";
    const END: &[u8] = b"</item>";
    match (find(channel, START), rfind(channel, END)) {
        (Some(start), Some(end)) if start < end => Ok((start, end + END.len())),
        _ => anyhow::bail!("the RSS writer did not write the item where expected"),
    }
}

/// One entry's `<item>` as it stands in any channel.
fn fragment(ctx: &Context, e: &Entry) -> Result<Vec<u8>> {
    let channel = rss::Channel {
        items: vec![item(ctx, e)],
        ..Default::default()
    };
    let out = write(&channel)?;
    let (start, end) = item_span(&out)?;
    Ok(out[start..end].to_vec())
}

fn item(ctx: &Context, e: &Entry) -> rss::Item {
    let cfg = ctx.cfg;
    let link = site::article_link(cfg, &e.id);
    // `description` is HTML by convention: the lead, escaped; `content:encoded`
    // carries the whole article.
    let description = match &e.summary {
        Some(lead) => escape_html(lead),
        None => e.content_html.clone(),
    };
    let mut extensions = ExtensionMap::new();
    let enclosure = e.image.as_ref().map(|url| {
        let mut attrs = BTreeMap::new();
        attrs.insert("url".to_string(), url.clone());
        attrs.insert("medium".to_string(), "image".to_string());
        attrs.insert("type".to_string(), image_type(url).to_string());
        let media = Extension {
            name: "media:content".into(),
            attrs,
            ..Default::default()
        };
        extensions
            .entry("media".into())
            .or_default()
            .insert("content".into(), vec![media]);
        rss::Enclosure {
            url: url.clone(),
            length: "0".into(),
            mime_type: image_type(url).into(),
        }
    });
    rss::Item {
        title: Some(e.title.clone()),
        link: Some(link),
        description: Some(description),
        content: Some(full_html(e)),
        guid: Some(rss::Guid {
            value: site::entry_id(cfg, &e.id),
            permalink: false,
        }),
        pub_date: Some(rfc822(&e.published)),
        categories: e
            .categories
            .iter()
            .map(|c| rss::Category {
                name: c.name.clone(),
                domain: None,
            })
            .collect(),
        dublin_core_ext: (!e.authors.is_empty()).then(|| DublinCoreExtension {
            creators: e.authors.clone(),
            ..Default::default()
        }),
        enclosure,
        extensions: {
            // The same mark Atom carries on embargoed copy for partners.
            if let Some(until) = super::embargo_mark(e) {
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
                extensions
                    .entry("fw".into())
                    .or_default()
                    .insert("status".into(), vec![mark]);
            }
            extensions
        },
        ..Default::default()
    }
}
