//! Site identity and links: what an entry's permanent id is, and where every
//! public document and page lives. Render, serve and syndicate all ask here,
//! so an id or a URL is spelled one way everywhere.
//!
//! Entry ids never come from paths, URLs or clocks: a `tag:` URI under
//! `site.tag_authority` (fixed once), or the article's own absolute id. Links
//! follow `site.base_url` and may move with it; ids do not.

use crate::config::Config;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Kept literally in a path segment: RFC 3986 unreserved characters and `:`
/// (so `urn:uuid:…` ids stay readable); everything else, Vietnamese letters
/// and spaces included, is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Percent-encode one path segment.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The permanent id of an entry: the article's own id when it is already an
/// absolute URI (`urn:uuid:…`), else a `tag:` URI.
pub fn entry_id(cfg: &Config, id: &str) -> String {
    if is_absolute_uri(id) {
        id.to_string()
    } else {
        format!(
            "tag:{}:articles/{}",
            cfg.site.tag_authority,
            encode_segment(id)
        )
    }
}

/// Where an entry links to: `site.article_url` with `{base_url}` and `{id}`
/// filled in, or feedwire's own article page.
pub fn article_link(cfg: &Config, id: &str) -> String {
    let id = encode_segment(id);
    if cfg.site.article_url.is_empty() {
        format!("{}/articles/{id}", cfg.site.base_url)
    } else {
        cfg.site
            .article_url
            .replace("{base_url}", &cfg.site.base_url)
            .replace("{id}", &id)
    }
}

/// Site-relative path of an article page.
pub fn article_path(id: &str) -> String {
    format!("/articles/{}", encode_segment(id))
}

/// Site-relative path of a category's readable feed view.
pub fn category_path(slug: &str) -> String {
    format!("/feeds/{}/", encode_segment(slug))
}

/// The public URL of a published document (path relative to the feeds folder).
pub fn feed_url(cfg: &Config, rel_path: &str) -> String {
    format!("{}/feeds/{rel_path}", cfg.site.base_url)
}

/// The public URL of a document published for the site's root
/// (`sitemap.xml`, `robots.txt`).
pub fn root_url(cfg: &Config, rel_path: &str) -> String {
    format!("{}/{rel_path}", cfg.site.base_url)
}

/// The built-in hub's URL, when it is on.
pub fn hub_url(cfg: &Config) -> Option<String> {
    (cfg.websub.builtin_hub && cfg.server.enabled).then(|| format!("{}/hub", cfg.site.base_url))
}

/// Every hub a feed advertises: the built-in one first, then external ones.
pub fn advertised_hubs(cfg: &Config) -> Vec<String> {
    let mut hubs: Vec<String> = hub_url(cfg).into_iter().collect();
    hubs.extend(cfg.websub.hubs.iter().cloned());
    hubs
}

fn is_absolute_uri(s: &str) -> bool {
    (s.starts_with("urn:")
        || s.starts_with("tag:")
        || s.starts_with("http://")
        || s.starts_with("https://"))
        && url::Url::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        Config::from_toml(
            &format!("[site]\ntag_authority = \"ttxvn.example,2026\"\n{extra}"),
            Path::new("/tmp/config.toml"),
        )
        .unwrap()
    }

    #[test]
    fn entry_ids_are_tag_uris_unless_already_absolute() {
        let cfg = cfg("");
        for (id, want) in [
            ("000_ab", "tag:ttxvn.example,2026:articles/000_ab"),
            (
                "urn:uuid:6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
                "urn:uuid:6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
            ),
            (
                "tin mới",
                "tag:ttxvn.example,2026:articles/tin%20m%E1%BB%9Bi",
            ),
            ("a/b?c#d", "tag:ttxvn.example,2026:articles/a%2Fb%3Fc%23d"),
        ] {
            assert_eq!(entry_id(&cfg, id), want, "{id}");
        }
    }

    #[test]
    fn links_follow_the_base_url_and_template() {
        assert_eq!(
            article_link(&cfg(""), "a b"),
            "http://127.0.0.1:8080/articles/a%20b"
        );
        let templated = cfg("article_url = \"https://news.example/a/{id}.html\"\n");
        assert_eq!(
            article_link(&templated, "đà-nẵng"),
            "https://news.example/a/%C4%91%C3%A0-n%E1%BA%B5ng.html"
        );
        assert_eq!(
            feed_url(&cfg(""), "kinh-te/rss.xml"),
            "http://127.0.0.1:8080/feeds/kinh-te/rss.xml"
        );
        assert_eq!(category_path("xay dung"), "/feeds/xay%20dung/");
        assert_eq!(article_path("urn:uuid:1"), "/articles/urn:uuid:1");
    }
}
