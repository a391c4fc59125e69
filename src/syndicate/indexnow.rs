//! IndexNow (indexnow.org, newsroom.md NR-08): search engines are told of
//! every article page that was published, changed or killed.
//!
//! Each such page's URL becomes one outbox row per configured endpoint, in
//! the batch's own transaction (nothing is lost across crashes or
//! restarts), due after `indexnow.batch_window_ms`. When one of an
//! endpoint's rows is due, the worker sends all of that endpoint's waiting
//! URLs in one JSON POST (`host`, `key`, `keyLocation` when the key file is
//! not at the host's root, `urlList`; at most
//! `indexnow.max_urls_per_request`), one request per endpoint at a time.
//! A failed request is retried with the outbox's backoff, the endpoint
//! paused as a whole and its `Retry-After` honoured (429); 400 and 422 say
//! the request itself is wrong and are given up at once, with the reason.
//! Withheld articles are never submitted (their pages answer 404 until the
//! embargo ends, which is a publication); a killed one is submitted only if
//! it had been public (its page now answers 410).
//!
//! Endpoints are the operator's, so the subscriber-callback policy of the
//! hub (`websub.allowed_callback_hosts`) does not apply to them.

use super::Shared;
use super::outbox::{Outcome, Row};
use super::reply;
use crate::catalog::{Change, NewDelivery};
use crate::config::Config;
use crate::render::sitemap::key_path;
use crate::site;
use anyhow::Result;
use std::collections::HashSet;

/// The outbox rows a batch's changes cause.
pub(crate) fn deliveries(cfg: &Config, changes: &[Change]) -> Vec<NewDelivery> {
    if !cfg.indexnow.submits() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for change in changes {
        let id = match change {
            Change::Added(e) | Change::Updated(e) => &e.id,
            Change::Killed {
                id,
                was_public: true,
                ..
            } => id,
            Change::Withheld(_) | Change::Killed { .. } => continue,
        };
        let url = site::article_link(cfg, id);
        for endpoint in &cfg.indexnow.endpoints {
            out.push(NewDelivery::IndexNow {
                endpoint: endpoint.clone(),
                url: url.clone(),
                article: id.clone(),
                delay_ms: cfg.indexnow.batch_window_ms as i64,
            });
        }
    }
    out
}

/// Where the key file is published: `{base_url}/{key}.txt`.
pub(crate) fn key_url(cfg: &Config) -> String {
    site::root_url(cfg, &key_path(&cfg.indexnow.key))
}

/// The host the article pages are on (what `host` says, and what every
/// URL of `urlList` must be on).
fn host(cfg: &Config) -> Option<String> {
    let page = url::Url::parse(&site::article_link(cfg, "x")).ok()?;
    page.host_str().map(str::to_string)
}

/// `keyLocation`: the key file's URL when it is not `/{key}.txt` at the
/// root of the article pages' host (a `site.base_url` with a path). A key
/// file on another host cannot vouch for those pages: the operator must
/// serve the key at that host's root (see [`misplaced_key`]), and nothing
/// is sent.
fn key_location(cfg: &Config) -> Option<String> {
    let key = url::Url::parse(&key_url(cfg)).ok()?;
    if key.host_str().map(str::to_string) != host(cfg) {
        return None;
    }
    (key.path() != format!("/{}", key_path(&cfg.indexnow.key))).then(|| key.to_string())
}

/// A warning for the operator when the key file feedwire serves cannot
/// verify the article pages (they are on another host).
pub(crate) fn misplaced_key(cfg: &Config) -> Option<String> {
    if !cfg.indexnow.submits() {
        return None;
    }
    let key_host = url::Url::parse(&key_url(cfg))
        .ok()?
        .host_str()
        .map(str::to_string);
    let pages = host(cfg)?;
    (key_host.as_deref() != Some(pages.as_str())).then(|| {
        format!(
            "indexnow: article pages are on {pages} (site.article_url) but feedwire serves the key file at {}; serve the same file at https://{pages}/{} too, or IndexNow will refuse the submissions (403)",
            key_url(cfg),
            key_path(&cfg.indexnow.key)
        )
    })
}

/// The JSON body of one submission: each URL once, in queue order.
pub(crate) fn request_body<'a>(
    cfg: &Config,
    urls: impl Iterator<Item = &'a str>,
) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    let list: Vec<&str> = urls.filter(|u| seen.insert(*u)).collect();
    let mut body = serde_json::json!({
        "host": host(cfg).unwrap_or_default(),
        "key": cfg.indexnow.key,
        "urlList": list,
    });
    if let Some(location) = key_location(cfg) {
        body["keyLocation"] = location.into();
    }
    Ok(serde_json::to_vec(&body)?)
}

/// Send one endpoint's waiting URLs (`rows`, all for one endpoint) in one
/// request; every row shares the outcome.
pub(crate) async fn send(shared: &Shared, rows: Vec<Row>) -> Vec<Outcome> {
    let Some(endpoint) = rows.first().map(|r| r.target.clone()) else {
        return Vec::new();
    };
    let fail_all = |rows: Vec<Row>, error: String, retry_after_ms, permanent| {
        rows.into_iter()
            .map(|row| Outcome::Failed {
                row: Box::new(row),
                error: error.clone(),
                retry_after_ms,
                permanent,
            })
            .collect()
    };
    let body = match request_body(&shared.cfg, rows.iter().map(|r| r.topic.as_str())) {
        Ok(b) => b,
        Err(e) => {
            return fail_all(
                rows,
                format!("cannot write the submission: {e:#}"),
                None,
                true,
            );
        }
    };
    let req = shared
        .client
        .post(&endpoint)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body);
    match req.send().await {
        Ok(resp) if resp.status().is_success() => {
            rows.iter().map(|r| Outcome::Delivered(r.id)).collect()
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after_ms = reply::retry_after_ms(&resp);
            let answer = reply::describe_failure(resp).await;
            let (meaning, permanent) = match status {
                400 => ("bad request: the submission is malformed".to_string(), true),
                403 => (
                    format!(
                        "key not valid: check that {} answers exactly indexnow.key",
                        key_url(&shared.cfg)
                    ),
                    false,
                ),
                422 => (
                    "the URLs do not belong to the host, or the key does not match: check site.base_url and site.article_url".to_string(),
                    true,
                ),
                429 => ("too many requests: waiting as asked".to_string(), false),
                _ => ("the endpoint failed; retrying".to_string(), false),
            };
            fail_all(
                rows,
                format!("{answer} (IndexNow: {meaning})"),
                retry_after_ms,
                permanent,
            )
        }
        Err(e) => fail_all(rows, super::deliver::describe(e), None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(site: &str) -> Config {
        Config::from_toml(
            &format!(
                "[site]\n{site}\n[indexnow]\nkey = \"k3y-0123456789\"\nendpoints = [\"https://engine.example/indexnow\"]\n"
            ),
            std::path::Path::new("/tmp/config.toml"),
        )
        .unwrap()
    }

    fn body(cfg: &Config, urls: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&request_body(cfg, urls.iter().copied()).unwrap()).unwrap()
    }

    #[test]
    fn a_key_at_the_host_root_needs_no_key_location() {
        let cfg = cfg("base_url = \"https://tin.example.vn\"");
        let b = body(
            &cfg,
            &[
                "https://tin.example.vn/articles/a",
                "https://tin.example.vn/articles/b",
                "https://tin.example.vn/articles/a",
            ],
        );
        assert_eq!(
            b,
            serde_json::json!({
                "host": "tin.example.vn",
                "key": "k3y-0123456789",
                "urlList": ["https://tin.example.vn/articles/a", "https://tin.example.vn/articles/b"],
            })
        );
        assert!(misplaced_key(&cfg).is_none());
    }

    #[test]
    fn a_key_under_a_path_is_located() {
        let cfg = cfg("base_url = \"https://tin.example.vn/feedwire\"");
        let b = body(&cfg, &["https://tin.example.vn/feedwire/articles/a"]);
        assert_eq!(
            b["keyLocation"],
            "https://tin.example.vn/feedwire/k3y-0123456789.txt"
        );
        assert_eq!(b["host"], "tin.example.vn");
    }

    #[test]
    fn pages_on_another_host_are_warned_about() {
        let cfg = cfg(
            "base_url = \"https://feeds.example.vn\"\narticle_url = \"https://tin.example.vn/a/{id}\"",
        );
        let b = body(&cfg, &["https://tin.example.vn/a/x"]);
        assert_eq!(b["host"], "tin.example.vn");
        assert!(b.get("keyLocation").is_none());
        let warning = misplaced_key(&cfg).unwrap();
        assert!(
            warning.contains("https://tin.example.vn/k3y-0123456789.txt"),
            "{warning}"
        );
    }

    #[test]
    fn withheld_articles_and_kills_never_public_are_not_submitted() {
        let cfg = cfg("base_url = \"https://tin.example.vn\"");
        let killed = |was_public| Change::Killed {
            id: "k".into(),
            categories: vec![],
            reason: None,
            was_public,
        };
        let rows = deliveries(&cfg, &[killed(false), killed(true)]);
        assert_eq!(rows.len(), 1);
        assert!(matches!(
            &rows[0],
            NewDelivery::IndexNow { url, article, delay_ms: 2000, .. }
                if url == "https://tin.example.vn/articles/k" && article == "k"
        ));
    }
}
