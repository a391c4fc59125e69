//! The documents feedwire publishes for the site's root rather than for feed
//! readers: sitemaps (sitemaps.org 0.9, newsroom.md NR-07), the Google News
//! sitemap (NR-06), `robots.txt` naming both, and the IndexNow key file
//! (NR-08). Pure, like the feeds: the same listing gives the same bytes.
//!
//! Their paths are relative to the site's root (`sitemap.xml` is
//! `{base_url}/sitemap.xml`), as feed paths are relative to `/feeds/`; both
//! kinds are published side by side in the feeds folder and the object
//! store (see README, "Output layout").

use super::{DocKind, Document};
use crate::catalog::{PageUrl, SitemapUrl};
use crate::config::Config;
use crate::site;
use anyhow::Result;
use chrono::{DateTime, SecondsFormat};
use chrono_tz::Tz;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// The sitemaps.org namespace.
pub const SITEMAP_NS: &str = "http://www.sitemaps.org/schemas/sitemap/0.9";
/// The Google News extension's namespace (prefix `news`).
pub const NEWS_NS: &str = "http://www.google.com/schemas/sitemap-news/0.9";

/// The full sitemap: a page's URLs, or the index of the pages.
pub const SITEMAP: &str = "sitemap.xml";
/// The news sitemap: its URLs, or the index of its files.
pub const NEWS_SITEMAP: &str = "news-sitemap.xml";
pub const ROBOTS: &str = "robots.txt";

/// Where the files the indexes point to are: a page of the full sitemap,
/// and the news sitemap's file of the same page.
pub const PAGES_DIR: &str = "sitemaps/";

/// A page of the full sitemap, when there is more than one.
pub fn page_path(page: i64) -> String {
    format!("{PAGES_DIR}sitemap-{page:05}.xml")
}

/// The news sitemap's file of a page of the full sitemap: that page's
/// articles still in the news window.
pub fn news_page_path(page: i64) -> String {
    format!("{PAGES_DIR}news-{page:04}.xml")
}

/// Which file under [`PAGES_DIR`] a name is (`sitemap-00012.xml`,
/// `news-0012.xml`), as its kind and page number: what HTTP renders on
/// demand. Only the names [`page_path`] and [`news_page_path`] give.
pub fn parse_page_file(name: &str) -> Option<(PageFile, i64)> {
    let (kind, digits, width) = if let Some(rest) = name.strip_prefix("sitemap-") {
        (PageFile::Full, rest.strip_suffix(".xml")?, 5)
    } else {
        let rest = name.strip_prefix("news-")?;
        (PageFile::News, rest.strip_suffix(".xml")?, 4)
    };
    if digits.len() < width || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let page: i64 = digits.parse().ok()?;
    let canonical = match kind {
        PageFile::Full => page_path(page),
        PageFile::News => news_page_path(page),
    };
    (page >= 1 && canonical[PAGES_DIR.len()..] == *name).then_some((kind, page))
}

/// The two kinds of file under [`PAGES_DIR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFile {
    Full,
    News,
}

/// Where the IndexNow key file is, under the site's root.
pub fn key_path(key: &str) -> String {
    format!("{key}.txt")
}

/// A W3C datetime to the second in the site's zone
/// (`2026-12-03T08:15:00+07:00`): the same width for every moment, so a
/// URL's element keeps its size when its date moves.
pub fn w3c_date(unix_us: i64, tz: Tz) -> String {
    DateTime::from_timestamp_micros(unix_us)
        .unwrap_or_default()
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// One `<url>` of a page of the full sitemap, as the page carries it (one
/// line). Its length is what the catalog counts against
/// `sitemaps.max_bytes`.
pub fn url_element(loc: &str, lastmod: &str) -> Result<Vec<u8>> {
    let mut w = Writer::new(Vec::with_capacity(loc.len() + 64));
    entry(&mut w, "url", loc, lastmod)?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

/// Bytes a page of the full sitemap takes besides its URLs.
pub fn page_overhead() -> usize {
    let (head, tail) = urlset_frame();
    head.len() + tail.len()
}

/// A page of the full sitemap: each URL's article page and `<lastmod>`.
pub fn render_page(cfg: &Config, path: &str, urls: &[PageUrl]) -> Result<Document> {
    let tz = cfg.time_zone()?;
    let (head, tail) = urlset_frame();
    let mut bytes = Vec::with_capacity(head.len() + urls.len() * 96 + tail.len());
    bytes.extend_from_slice(&head);
    for u in urls {
        let loc = site::article_link(cfg, &u.id);
        bytes.extend_from_slice(&url_element(&loc, &w3c_date(u.lastmod_us, tz))?);
    }
    bytes.extend_from_slice(&tail);
    Ok(Document {
        path: path.to_string(),
        kind: DocKind::Sitemap,
        bytes,
        entries: urls.len(),
        updated: None,
    })
}

/// A sitemap index: each listed file's address and when it last changed.
pub fn render_index(cfg: &Config, path: &str, files: &[(String, i64)]) -> Result<Document> {
    let tz = cfg.time_zone()?;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let root = BytesStart::new("sitemapindex").with_attributes([("xmlns", SITEMAP_NS)]);
    w.write_event(Event::Start(root))?;
    for (file, changed_us) in files {
        let loc = site::root_url(cfg, file);
        entry(&mut w, "sitemap", &loc, &w3c_date(*changed_us, tz))?;
    }
    w.write_event(Event::End(BytesEnd::new("sitemapindex")))?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(Document {
        path: path.to_string(),
        kind: DocKind::Sitemap,
        bytes,
        entries: files.len(),
        updated: None,
    })
}

/// A Google News sitemap: each article's page with its publication (name
/// and language), publication date and title.
pub fn render_news(cfg: &Config, path: &str, urls: &[SitemapUrl]) -> Result<Document> {
    let tz = cfg.time_zone()?;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let root =
        BytesStart::new("urlset").with_attributes([("xmlns", SITEMAP_NS), ("xmlns:news", NEWS_NS)]);
    w.write_event(Event::Start(root))?;
    for u in urls {
        let loc = site::article_link(cfg, &u.id);
        let language = news_language(if u.language.is_empty() {
            &cfg.site.language
        } else {
            &u.language
        });
        w.create_element("url").write_inner_content(|w| {
            w.create_element("loc")
                .write_text_content(BytesText::new(&loc))?;
            w.create_element("news:news").write_inner_content(|w| {
                w.create_element("news:publication")
                    .write_inner_content(|w| {
                        w.create_element("news:name")
                            .write_text_content(BytesText::new(&cfg.site.publication_name))?;
                        w.create_element("news:language")
                            .write_text_content(BytesText::new(&language))?;
                        Ok(())
                    })?;
                w.create_element("news:publication_date")
                    .write_text_content(BytesText::new(&w3c_date(u.published_us, tz)))?;
                w.create_element("news:title")
                    .write_text_content(BytesText::new(&u.title))?;
                Ok(())
            })?;
            Ok(())
        })?;
    }
    w.write_event(Event::End(BytesEnd::new("urlset")))?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(Document {
        path: path.to_string(),
        kind: DocKind::Sitemap,
        bytes,
        entries: urls.len(),
        updated: None,
    })
}

/// `robots.txt`: crawlers are welcome everywhere but the machine endpoints,
/// and told where both sitemaps are.
pub fn render_robots(cfg: &Config) -> Document {
    let prefix = url::Url::parse(&cfg.site.base_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let mut text = String::from(
        "# Published by feedwire: every article page is listed in the sitemaps below.\n\
         User-agent: *\n",
    );
    // Not `/partners/`: a Disallow line is a public pointer to what it
    // hides (robots.txt is the first file a prober reads), and no public
    // document names the partners' pull feeds (tests/partner_pull.rs).
    // Without a token they answer every client, crawlers included, 401.
    for endpoint in ["hub", "metrics", "healthz"] {
        text.push_str(&format!("Disallow: {prefix}/{endpoint}\n"));
    }
    text.push('\n');
    for file in [SITEMAP, NEWS_SITEMAP] {
        text.push_str(&format!("Sitemap: {}\n", site::root_url(cfg, file)));
    }
    Document {
        path: ROBOTS.to_string(),
        kind: DocKind::Text,
        bytes: text.into_bytes(),
        entries: 0,
        updated: None,
    }
}

/// The IndexNow key file: the key and nothing else (IndexNow compares the
/// body with the key it was sent).
pub fn render_key_file(key: &str) -> Document {
    Document {
        path: key_path(key),
        kind: DocKind::Text,
        bytes: key.as_bytes().to_vec(),
        entries: 0,
        updated: None,
    }
}

/// What a news sitemap's `news:language` takes: an ISO 639 code, lower
/// case, without region, except the two Chinese scripts Google News names
/// `zh-cn` and `zh-tw`.
fn news_language(tag: &str) -> String {
    let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
    match tag.as_str() {
        "zh-cn" | "zh-hans" | "zh-sg" => "zh-cn".into(),
        "zh-tw" | "zh-hant" | "zh-hk" => "zh-tw".into(),
        other => other.split('-').next().unwrap_or(other).to_string(),
    }
}

/// `<name><loc>…</loc><lastmod>…</lastmod></name>`.
fn entry(w: &mut Writer<Vec<u8>>, name: &str, loc: &str, lastmod: &str) -> std::io::Result<()> {
    w.create_element(name).write_inner_content(|w| {
        w.create_element("loc")
            .write_text_content(BytesText::new(loc))?;
        w.create_element("lastmod")
            .write_text_content(BytesText::new(lastmod))?;
        Ok(())
    })?;
    Ok(())
}

/// What a page of the full sitemap has before and after its URLs.
fn urlset_frame() -> (Vec<u8>, Vec<u8>) {
    let head =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"{SITEMAP_NS}\">\n");
    (head.into_bytes(), b"</urlset>\n".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_toml(
            &format!("[site]\nbase_url = \"https://tin.example.vn\"\n{extra}"),
            std::path::Path::new("/tmp/config.toml"),
        )
        .unwrap()
    }

    #[test]
    fn dates_have_one_width_in_the_site_zone() {
        let tz: Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        assert_eq!(
            w3c_date(1_767_225_600_000_000, tz),
            "2026-01-01T07:00:00+07:00"
        );
        assert_eq!(
            w3c_date(1_767_225_600_123_456, chrono_tz::UTC),
            "2026-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn a_page_is_its_frame_and_its_url_elements() {
        let cfg = cfg("");
        let urls = [
            PageUrl {
                id: "a&b".into(),
                lastmod_us: 0,
            },
            PageUrl {
                id: "tin mới".into(),
                lastmod_us: 0,
            },
        ];
        let page = render_page(&cfg, SITEMAP, &urls).unwrap();
        let text = String::from_utf8(page.bytes.clone()).unwrap();
        assert!(text.contains("<loc>https://tin.example.vn/articles/a%26b</loc>"));
        assert!(text.contains("<loc>https://tin.example.vn/articles/tin%20m%E1%BB%9Bi</loc>"));
        let elements: usize = urls
            .iter()
            .map(|u| {
                url_element(
                    &site::article_link(&cfg, &u.id),
                    &w3c_date(u.lastmod_us, cfg.time_zone().unwrap()),
                )
                .unwrap()
                .len()
            })
            .sum();
        assert_eq!(page.bytes.len(), page_overhead() + elements);
        crate::publish::verify(&page).unwrap();
    }

    #[test]
    fn a_template_with_a_query_is_escaped() {
        let cfg = cfg("article_url = \"{base_url}/a?id={id}&x=1\"\n");
        let page = render_page(
            &cfg,
            SITEMAP,
            &[PageUrl {
                id: "z".into(),
                lastmod_us: 0,
            }],
        )
        .unwrap();
        let text = String::from_utf8(page.bytes).unwrap();
        assert!(
            text.contains("<loc>https://tin.example.vn/a?id=z&amp;x=1</loc>"),
            "{text}"
        );
    }

    #[test]
    fn languages_are_what_google_news_accepts() {
        assert_eq!(news_language("vi"), "vi");
        assert_eq!(news_language("en-US"), "en");
        assert_eq!(news_language("zh_Hant"), "zh-tw");
        assert_eq!(news_language("zh-CN"), "zh-cn");
    }

    #[test]
    fn robots_names_both_sitemaps_under_the_base_path() {
        let root = String::from_utf8(render_robots(&cfg("")).bytes).unwrap();
        assert!(root.contains("Sitemap: https://tin.example.vn/sitemap.xml\n"));
        assert!(root.contains("Sitemap: https://tin.example.vn/news-sitemap.xml\n"));
        assert!(root.contains("Disallow: /hub\n"));
        let sub = Config::from_toml(
            "[site]\nbase_url = \"https://tin.example.vn/tin/\"\n",
            std::path::Path::new("/tmp/config.toml"),
        )
        .unwrap();
        let sub = String::from_utf8(render_robots(&sub).bytes).unwrap();
        assert!(sub.contains("Disallow: /tin/metrics\n"), "{sub}");
        assert!(sub.contains("Sitemap: https://tin.example.vn/tin/sitemap.xml\n"));
    }
}
