//! OPML 2.0 list of every feed, so a reader or partner can subscribe to all
//! categories at once.

use super::{DocKind, Document, FeedInfo};
use crate::config::Config;
use crate::site;
use anyhow::Result;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

pub fn render_opml(cfg: &Config, feeds: &[FeedInfo]) -> Result<Document> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    let mut opml = BytesStart::new("opml");
    opml.push_attribute(("version", "2.0"));
    w.write_event(Event::Start(opml))?;
    w.write_event(Event::Start(BytesStart::new("head")))?;
    w.write_event(Event::Start(BytesStart::new("title")))?;
    w.write_event(Event::Text(BytesText::new(&cfg.site.title)))?;
    w.write_event(Event::End(BytesEnd::new("title")))?;
    w.write_event(Event::End(BytesEnd::new("head")))?;
    w.write_event(Event::Start(BytesStart::new("body")))?;
    for feed in feeds {
        for kind in DocKind::FEEDS {
            let mut outline = BytesStart::new("outline");
            let kind_name = match kind {
                DocKind::Rss => "rss",
                DocKind::Atom => "atom",
                _ => "json",
            };
            outline.push_attribute(("type", "rss"));
            outline.push_attribute(("text", format!("{} ({kind_name})", feed.title).as_str()));
            outline.push_attribute(("title", feed.title.as_str()));
            outline.push_attribute(("xmlUrl", site::feed_url(cfg, &feed.path(kind)).as_str()));
            outline.push_attribute(("htmlUrl", feed.html_url(cfg).as_str()));
            if let Some(c) = &feed.category {
                outline.push_attribute(("category", c.name.as_str()));
            }
            w.write_event(Event::Empty(outline))?;
        }
    }
    w.write_event(Event::End(BytesEnd::new("body")))?;
    w.write_event(Event::End(BytesEnd::new("opml")))?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(Document {
        path: DocKind::Opml.file_name().into(),
        kind: DocKind::Opml,
        bytes,
        entries: feeds.len(),
        updated: None,
    })
}
