//! Partner deliveries: which changes a partner wants, the single-entry
//! document it gets, and the signature that proves it came from us.

use crate::catalog::Change;
use crate::config::{Config, Partner};
use crate::render::{self, DocKind};
use anyhow::Result;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A rendered partner delivery.
pub(crate) struct PartnerDoc {
    pub body: Vec<u8>,
    pub content_type: String,
    /// `<article id>:<content hash>`: the same content always gets the same key.
    pub idempotency_key: String,
}

/// The document kind a partner's `format` names.
pub(crate) fn kind(p: &Partner) -> DocKind {
    match p.format.as_str() {
        "rss" => DocKind::Rss,
        "json" => DocKind::Json,
        "ninjs" => DocKind::Ninjs,
        _ => DocKind::Atom,
    }
}

/// Whether a partner is told of a change: it takes pushes (has a `url`),
/// its category filter (empty = all), and for embargoed copy, whether it may
/// receive it early. A kill is told to whoever heard of the article:
/// everyone it matched once public, only the partners allowed embargoed
/// copy before that.
pub(crate) fn wants(p: &Partner, change: &Change) -> bool {
    if p.url.is_none() {
        return false;
    }
    let in_filter = |slugs: Vec<&str>| {
        p.categories.is_empty() || slugs.iter().any(|s| p.categories.iter().any(|c| c == s))
    };
    match change {
        Change::Added(e) | Change::Updated(e) => in_filter(slugs(e)),
        Change::Withheld(e) => p.embargoed && in_filter(slugs(e)),
        Change::Killed {
            categories,
            was_public,
            ..
        } => {
            (*was_public || p.embargoed)
                && in_filter(categories.iter().map(String::as_str).collect())
        }
    }
}

fn slugs(e: &crate::article::Entry) -> Vec<&str> {
    e.categories.iter().map(|c| c.slug.as_str()).collect()
}

/// Render a change for a partner: a single-entry document (embargoed copy
/// marked as withheld; ninjs: `pubStatus: withheld` and `embargoedUntil`),
/// or a deletion notice (RFC 6721 tombstone with the reason as
/// `at:comment`; `{"deleted": …}` for JSON; `pubStatus: canceled` with the
/// reason as `edNote` for ninjs).
pub(crate) fn document(
    cfg: &Config,
    p: &Partner,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<PartnerDoc> {
    let kind = kind(p);
    let (body, content_type) = match change {
        Change::Added(e) | Change::Updated(e) | Change::Withheld(e) => (
            render::render_single(cfg, kind, e)?,
            match kind {
                DocKind::Atom => "application/atom+xml; type=entry; charset=utf-8",
                other => other.content_type(),
            },
        ),
        Change::Killed { id, reason, .. } => {
            let when = now.with_timezone(&cfg.time_zone()?).fixed_offset();
            (
                render::render_deletion(cfg, kind, id, when, reason.as_deref())?,
                match kind {
                    DocKind::Json | DocKind::Ninjs => "application/json; charset=utf-8",
                    _ => "application/atom+xml; charset=utf-8",
                },
            )
        }
    };
    let hash = blake3::hash(&body).to_hex()[..32].to_string();
    Ok(PartnerDoc {
        idempotency_key: format!("{}:{hash}", change.id()),
        body,
        content_type: content_type.to_string(),
    })
}

/// Hex HMAC-SHA256 of `data` with `key`.
pub(crate) fn hmac_hex(key: &[u8], data: &[&[u8]]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for d in data {
        mac.update(d);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Feedwire-Signature` value: `sha256=<hex HMAC of "<timestamp>.<body>">`.
pub(crate) fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!(
        "sha256={}",
        hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b".", body])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::{Category, Entry};
    use std::path::Path;

    fn cfg() -> Config {
        Config::from_toml(
            "[site]\ntag_authority = \"t.example,2026\"\n[[partners]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"k\"\ncategories = [\"the-thao\"]\n",
            Path::new("/tmp/config.toml"),
        )
        .unwrap()
    }

    #[test]
    fn signature_matches_a_known_hmac() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        assert_eq!(
            hmac_hex(b"key", &[b"The quick brown fox jumps over the lazy dog"]),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            signature("key", 1, b"x"),
            format!("sha256={}", hmac_hex(b"key", &[b"1.x"]))
        );
    }

    #[test]
    fn filter_and_deletion_notice() {
        let cfg = cfg();
        let p = &cfg.partners[0];
        let removed = Change::Killed {
            id: "a1".into(),
            categories: vec!["the-thao".into()],
            reason: None,
            was_public: true,
        };
        assert!(wants(p, &removed));
        assert!(!wants(
            p,
            &Change::Killed {
                id: "a2".into(),
                categories: vec!["kinh-te".into()],
                reason: None,
                was_public: true,
            }
        ));
        let doc = document(&cfg, p, &removed, Utc::now()).unwrap();
        let text = String::from_utf8(doc.body).unwrap();
        assert!(text.contains("<at:deleted-entry xmlns:at=\"http://purl.org/atompub/tombstones/1.0\" ref=\"tag:t.example,2026:articles/a1\""), "{text}");
        assert!(doc.idempotency_key.starts_with("a1:"));
    }

    #[test]
    fn atom_partner_gets_an_entry_document() {
        let cfg = cfg();
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05+07:00").unwrap();
        let entry = Entry {
            id: "a1".into(),
            title: "Tiêu đề".into(),
            summary: Some("Tóm tắt".into()),
            content_html: "<p>Nội dung</p>".into(),
            image: None,
            authors: vec![],
            categories: vec![Category {
                name: "Thể thao".into(),
                slug: "the-thao".into(),
            }],
            tags: vec![],
            language: "vi".into(),
            dateline: None,
            published: t,
            updated: t,
            version: 1,
            status: Default::default(),
            embargoed_until: None,
            correction: None,
            first_seen: None,
            content_created: None,
        };
        let doc = document(&cfg, &cfg.partners[0], &Change::Added(entry), Utc::now()).unwrap();
        let text = String::from_utf8(doc.body).unwrap();
        assert!(
            text.contains("<entry xmlns=\"http://www.w3.org/2005/Atom\""),
            "{text}"
        );
        assert!(
            text.contains("<name>feedwire</name>"),
            "standalone entries carry an author: {text}"
        );
        assert_eq!(
            doc.content_type,
            "application/atom+xml; type=entry; charset=utf-8"
        );
    }
}
