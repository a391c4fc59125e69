//! IPTC ninjs 3.1 ("News in JSON", iptc.org/std/ninjs): one article as a
//! news item, a kill as a `pubStatus: canceled` item, and a partner's pull
//! feed as a JSON array of items (the form of IPTC's own collection
//! examples).
//!
//! Only properties the 3.1 schema defines are written (the schema refuses
//! any other, `unevaluatedProperties: false`); the struct below is the whole
//! vocabulary feedwire uses, and the tests check every document against the
//! schema itself. Which article field becomes which property is listed in
//! the README ("What ninjs holds").

use super::{Context, embargo_mark, image_type};
use crate::article::{Entry, Status};
use crate::config::Config;
use crate::html::escape_html;
use crate::site;
use anyhow::Result;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// The version of ninjs written, as `standard.version` names it.
pub const NINJS_VERSION: &str = "3.1";
/// The schema the documents conform to, as `standard.schema` names it.
pub const NINJS_SCHEMA: &str = "http://www.iptc.org/std/ninjs/ninjs-schema_3.1.json#";

/// One ninjs news item. Field names are the schema's; empty optional
/// properties are left out rather than written empty. `Deserialize` with
/// `deny_unknown_fields` is the publish gate's parse-back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Item {
    pub uri: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub standard: Standard,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representation_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_created: Option<String>,
    pub pub_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embargoed_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ed_note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alt_ids: Vec<AltId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headlines: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptions: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bodies: Vec<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<Rendition>,
}

/// `standard`: which standard, version and schema the item follows.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Standard {
    pub name: String,
    pub version: String,
    pub schema: String,
}

/// A headline, description or body: `role`, `contentType`, `value`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Text {
    pub role: String,
    pub content_type: String,
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AltId {
    pub role: String,
    pub value: String,
}

/// A category (`rel: category`, its slug as `literal`) or a tag.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Subject {
    pub name: String,
    pub rel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
}

/// The lead image, and the article's web page.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Rendition {
    pub name: String,
    pub href: String,
    pub content_type: String,
}

fn standard() -> Standard {
    Standard {
        name: "ninjs".into(),
        version: NINJS_VERSION.into(),
        schema: NINJS_SCHEMA.into(),
    }
}

/// Where an article's ninjs document is published, under the feeds folder:
/// `ninjs/<id>.json`, the id percent-encoded as in its URL
/// (`/ninjs/<id>.json`), so no id can name another folder.
pub fn ninjs_path(id: &str) -> String {
    format!("ninjs/{}.json", site::encode_segment(id))
}

/// One article as a ninjs document: usable, or (for partners allowed
/// embargoed copy) withheld with `embargoedUntil`.
pub fn render_ninjs(cfg: &Config, entry: &Entry) -> Result<Vec<u8>> {
    to_bytes(&item(cfg, entry))
}

/// A killed article: `pubStatus: canceled`, when it was withdrawn as
/// `versionCreated`, and the editors' reason, if any, as `edNote` (a note
/// for the receiving newsroom, not for publication).
pub fn render_canceled(
    cfg: &Config,
    id: &str,
    when: DateTime<FixedOffset>,
    reason: Option<&str>,
) -> Result<Vec<u8>> {
    to_bytes(&canceled(cfg, id, when, reason))
}

/// A partner's pull feed: its entries, newest first, then a canceled item
/// for each article of its feeds killed within `lifecycle.tombstone_days`.
pub(super) fn render_list(ctx: &Context, entries: &[Entry]) -> Result<Vec<u8>> {
    let tz = ctx.cfg.time_zone().unwrap_or(chrono_tz::UTC);
    let mut items: Vec<Item> = entries.iter().map(|e| item(ctx.cfg, e)).collect();
    items.extend(ctx.tombstones.iter().map(|t| {
        canceled(
            ctx.cfg,
            &t.id,
            t.killed_at.with_timezone(&tz).fixed_offset(),
            t.reason.as_deref(),
        )
    }));
    to_bytes(&items)
}

fn to_bytes(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(value)?;
    out.push(b'\n');
    Ok(out)
}

fn canceled(cfg: &Config, id: &str, when: DateTime<FixedOffset>, reason: Option<&str>) -> Item {
    Item {
        uri: site::entry_id(cfg, id),
        kind: "text".into(),
        standard: standard(),
        representation_type: None,
        version: None,
        first_created: None,
        version_created: Some(when.to_rfc3339()),
        content_created: None,
        pub_status: Status::Canceled.as_str().into(),
        embargoed_until: None,
        ed_note: reason.map(str::to_string),
        language: None,
        alt_ids: alt_ids(id),
        headlines: Vec::new(),
        descriptions: Vec::new(),
        bodies: Vec::new(),
        by: None,
        located: None,
        subjects: Vec::new(),
        renditions: Vec::new(),
    }
}

fn alt_ids(id: &str) -> Vec<AltId> {
    vec![AltId {
        role: "feedwire-id".into(),
        value: id.to_string(),
    }]
}

fn item(cfg: &Config, e: &Entry) -> Item {
    let withheld = e.status == Status::Withheld;
    let mut subjects: Vec<Subject> = e
        .categories
        .iter()
        .map(|c| Subject {
            name: c.name.clone(),
            rel: "category".into(),
            literal: Some(c.slug.clone()),
        })
        .collect();
    subjects.extend(
        e.tags
            .iter()
            .filter(|t| !e.categories.iter().any(|c| &c.name == *t))
            .map(|t| Subject {
                name: t.clone(),
                rel: "tag".into(),
                literal: None,
            }),
    );
    let mut renditions = Vec::new();
    // The schema wants a URI: an image address that does not parse as an
    // absolute http(s) URL is left out rather than sent malformed.
    if let Some(image) = e
        .image
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    {
        renditions.push(Rendition {
            name: "image".into(),
            content_type: image_type(image.as_str()).into(),
            href: image.into(),
        });
    }
    renditions.push(Rendition {
        name: "web".into(),
        href: site::article_link(cfg, &e.id),
        content_type: "text/html".into(),
    });
    fn non_empty(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|v| !v.trim().is_empty())
    }
    Item {
        uri: site::entry_id(cfg, &e.id),
        kind: "text".into(),
        standard: standard(),
        representation_type: Some("full".into()),
        version: Some(e.version.to_string()),
        first_created: e.first_seen.map(|t| t.to_rfc3339()),
        version_created: Some(e.updated.to_rfc3339()),
        content_created: e.content_created.map(|t| t.to_rfc3339()),
        pub_status: e.status.as_str().into(),
        embargoed_until: if withheld {
            embargo_mark(e).filter(|t| !t.is_empty())
        } else {
            None
        },
        ed_note: None,
        language: Some(e.language.clone()),
        alt_ids: alt_ids(&e.id),
        headlines: vec![Text {
            role: "main".into(),
            content_type: "text/plain".into(),
            value: e.title.clone(),
        }],
        descriptions: non_empty(&e.summary)
            .map(|lead| Text {
                role: "summary".into(),
                content_type: "text/plain".into(),
                value: lead.to_string(),
            })
            .into_iter()
            .collect(),
        bodies: vec![Text {
            role: "main".into(),
            content_type: "text/html".into(),
            value: body_html(e),
        }],
        by: (!e.authors.is_empty()).then(|| e.authors.join(", ")),
        located: non_empty(&e.dateline).map(str::to_string),
        subjects,
        renditions,
    }
}

/// The body as the feeds carry it (sanitised at ingest), the correction
/// note at the end; the lead is the item's description, not repeated here.
fn body_html(e: &Entry) -> String {
    let mut html = e.content_html.clone();
    if let Some(note) = &e.correction {
        html.push_str(&format!(
            "\n<p class=\"correction\"><strong>Đính chính:</strong> {}</p>",
            escape_html(note)
        ));
    }
    html
}

/// The publish gate's check: the bytes parse back as ninjs items of the
/// vocabulary above (nothing else), each with a `uri`; returns how many.
pub(crate) fn parse_back(text: &str) -> Result<usize> {
    use anyhow::Context as _;
    // Straight into items, not through a `serde_json::Value` first:
    // building that tree was most of the time this check took. The gate
    // has checked the bytes are UTF-8 already.
    let items: Vec<Item> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).context("ninjs does not parse as items of the known shape")?
    } else {
        vec![
            serde_json::from_str(text)
                .context("ninjs does not parse as an item of the known shape")?,
        ]
    };
    if items.iter().any(|i| i.uri.is_empty()) {
        anyhow::bail!("a ninjs item lacks its uri");
    }
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Category;
    use std::path::Path;

    fn cfg() -> Config {
        Config::from_toml(
            "[site]\ntag_authority = \"t.example,2026\"\nbase_url = \"https://tin.example\"\n",
            Path::new("/tmp/config.toml"),
        )
        .unwrap()
    }

    fn entry() -> Entry {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05+07:00").unwrap();
        Entry {
            id: "a/b c".into(),
            title: "Tiêu đề".into(),
            summary: Some("Tóm tắt".into()),
            content_html: "<p>Nội dung</p>".into(),
            authors: vec!["Lê A".into(), "Trần B".into()],
            categories: vec![Category::new("Thể thao")],
            tags: vec!["Thể thao".into(), "bóng đá".into()],
            image: Some("https://img.example/ảnh 1.png".into()),
            language: "vi".into(),
            dateline: Some("Cần Thơ".into()),
            published: t,
            updated: t + chrono::Duration::hours(2),
            version: 3,
            status: Status::Usable,
            embargoed_until: None,
            correction: Some("Sửa <tên>".into()),
            first_seen: Some(t + chrono::Duration::minutes(1)),
            content_created: Some(t),
        }
    }

    #[test]
    fn ninjs_item_maps_every_field() {
        let v: serde_json::Value =
            serde_json::from_slice(&render_ninjs(&cfg(), &entry()).unwrap()).unwrap();
        assert_eq!(v["uri"], "tag:t.example,2026:articles/a%2Fb%20c");
        assert_eq!(v["type"], "text");
        assert_eq!(v["version"], "3");
        assert_eq!(v["pubStatus"], "usable");
        assert_eq!(v["firstCreated"], "2026-01-02T03:05:05+07:00");
        assert_eq!(v["contentCreated"], "2026-01-02T03:04:05+07:00");
        assert_eq!(v["versionCreated"], "2026-01-02T05:04:05+07:00");
        assert!(v.get("embargoedUntil").is_none());
        assert_eq!(v["by"], "Lê A, Trần B");
        assert_eq!(v["located"], "Cần Thơ");
        assert_eq!(v["descriptions"][0]["value"], "Tóm tắt");
        let body = v["bodies"][0]["value"].as_str().unwrap();
        assert!(body.starts_with("<p>Nội dung</p>"), "{body}");
        assert!(body.contains("Sửa &lt;tên&gt;"), "{body}");
        assert_eq!(v["subjects"][0]["literal"], "the-thao");
        assert_eq!(v["subjects"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(
            v["renditions"][0]["href"],
            "https://img.example/%E1%BA%A3nh%201.png"
        );
        assert_eq!(v["renditions"][0]["contentType"], "image/png");
        assert_eq!(v["altIds"][0]["value"], "a/b c");
        assert_eq!(
            parse_back(&String::from_utf8(render_ninjs(&cfg(), &entry()).unwrap()).unwrap())
                .unwrap(),
            1
        );
    }

    #[test]
    fn ninjs_withheld_and_canceled() {
        let mut e = entry();
        e.status = Status::Withheld;
        e.embargoed_until = Some(e.updated + chrono::Duration::days(1));
        let v: serde_json::Value =
            serde_json::from_slice(&render_ninjs(&cfg(), &e).unwrap()).unwrap();
        assert_eq!(v["pubStatus"], "withheld");
        assert_eq!(v["embargoedUntil"], "2026-01-03T05:04:05+07:00");

        let bytes = render_canceled(&cfg(), "x", e.updated, Some("sai")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["pubStatus"], "canceled");
        assert_eq!(v["edNote"], "sai");
        assert!(v.get("headlines").is_none() && v.get("bodies").is_none());
        assert_eq!(parse_back(std::str::from_utf8(&bytes).unwrap()).unwrap(), 1);
    }

    #[test]
    fn ninjs_gate_counts_a_list_and_refuses_what_is_not_items() {
        let one = render_ninjs(&cfg(), &entry()).unwrap();
        let one = std::str::from_utf8(&one).unwrap();
        let list = format!("[{one},\n{one}]");
        assert_eq!(parse_back(&list).unwrap(), 2);
        assert_eq!(parse_back("  []").unwrap(), 0);
        for bad in [
            "{}".to_string(),
            "[1]".to_string(),
            "null".to_string(),
            format!("{one} trailing"),
            one.replace("\"uri\"", "\"uri\":\"\",\"x\""),
        ] {
            assert!(parse_back(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ninjs_gate_refuses_unknown_properties() {
        let bytes = render_ninjs(&cfg(), &entry()).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["bylines"] = "x".into();
        assert!(parse_back(&v.to_string()).is_err());
        assert_eq!(ninjs_path("a/../b"), "ninjs/a%2F..%2Fb.json");
    }
}
