//! Partners who pull: `/partners/{name}/{atom.xml,rss.xml,feed.json,
//! ninjs.json}` with `Authorization: Bearer <pull_token>`.
//!
//! Each request renders the partner's feed from the catalog: the newest
//! `feeds.max_items` articles of its categories (every article when it names
//! none), full text, and, for a partner allowed embargoed copy, the withheld
//! articles of those categories marked as withheld; capped at
//! `feeds.max_bytes` like a published feed. Nothing of it is published or
//! linked from anywhere public. Answers are `Cache-Control: private,
//! no-cache` with a strong ETag (304 on a match); no `Last-Modified`, since
//! an article can leave a partner's feed without any date in it moving.
//!
//! A missing or wrong token, a partner that does not pull and a name that
//! is no partner's all get the same 401 after the same work: the presented
//! token's HMAC (under a key made at start-up) is compared in constant time
//! with the partner's, or with a dummy's when there is no such partner.

use super::ninjs::{Fresh, rendered};
use super::{AppState, RouteLabel, with_catalog};
use crate::config::{Config, Partner};
use crate::render::{self, DocKind, FeedInfo};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;

const LABEL: &str = "partner_feed";
/// Requests for each configured partner's pull feeds, by result.
const COUNTER: &str = "feedwire_partner_pull_requests_total";
const COUNTER_HELP: &str = "Requests for a partner's pull feeds, by partner and result (ok, not_modified, unauthorized, not_found, error); `(unknown)`: names that are no pulling partner's.";
/// The label of requests for names that are no pulling partner's (a pulling
/// partner's name cannot hold parentheses).
const UNKNOWN: &str = "(unknown)";

/// The pull tokens, kept only as HMACs under a key of this process.
pub(crate) struct PullAuth {
    key: [u8; 32],
    /// Partner name → HMAC of its token.
    tags: HashMap<String, [u8; 32]>,
    /// What a name that is no pulling partner's is compared with.
    dummy: [u8; 32],
}

impl PullAuth {
    pub(crate) fn new(cfg: &Config) -> PullAuth {
        let key: [u8; 32] = rand::random();
        let dummy_token: [u8; 32] = rand::random();
        let tags = cfg
            .partners
            .iter()
            .filter_map(|p| {
                let token = p.pull_token.as_ref()?;
                Some((p.name.clone(), tag(&key, token.as_bytes())))
            })
            .collect();
        PullAuth {
            dummy: tag(&key, &dummy_token),
            key,
            tags,
        }
    }

    /// Whether `presented` (the whole `Authorization` value) opens the
    /// feeds of `name`: the same work whether or not `name` pulls.
    fn admits(&self, name: &str, presented: Option<&[u8]>) -> bool {
        let token = presented.and_then(bearer_token).unwrap_or_default();
        let (expected, known) = match self.tags.get(name) {
            Some(t) => (t, true),
            None => (&self.dummy, false),
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        mac.update(token);
        // `verify_slice` compares in constant time.
        mac.verify_slice(expected).is_ok() && known
    }
}

fn tag(key: &[u8], token: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(token);
    mac.finalize().into_bytes().into()
}

/// The token of `Bearer <token>` (the scheme in any case, RFC 9110 §11.1).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// `/partners/{name}/{file}`.
pub async fn feed(
    State(state): State<AppState>,
    method: Method,
    req: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let (name, file) = match path {
        Ok(Path(p)) => p,
        Err(_) => (String::new(), String::new()),
    };
    let presented = req.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let admitted = state.pull.admits(&name, presented);
    // The whole list, whatever the name, and one count either way: a name
    // that is no pulling partner's costs what a wrong token does.
    let partner = state.cfg.partners.iter().fold(None, |found, p| {
        if p.pull_token.is_some() && p.name == name {
            Some(p)
        } else {
            found
        }
    });
    // Labels stay a bounded set: configured names, and one for the rest.
    let label = partner.map_or(UNKNOWN, |p| p.name.as_str());
    let count = |result: &str| {
        state.metrics.add(
            COUNTER,
            COUNTER_HELP,
            &[("partner", label), ("result", result)],
            1,
        );
    };
    let Some(partner) = partner.filter(|_| admitted) else {
        count("unauthorized");
        return unauthorized();
    };
    let Some(kind) = kind(&file) else {
        count("not_found");
        return super::pages::not_found_page(&state);
    };
    match render_for(&state, partner, kind).await {
        Ok(bytes) => {
            let mut headers = HeaderMap::new();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
            let fresh = Fresh {
                label: LABEL,
                content_type: kind.content_type(),
                headers,
                last_modified: None,
            };
            let response = rendered(&state, &method, &req, fresh, Bytes::from(bytes));
            count(if response.status() == StatusCode::NOT_MODIFIED {
                "not_modified"
            } else {
                "ok"
            });
            response
        }
        Err(e) => {
            count("error");
            tracing::error!(partner = %partner.name, error = %format!("{e:#}"), "cannot render a partner's pull feed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CACHE_CONTROL, "no-store")],
                Extension(RouteLabel(LABEL)),
                "the feed cannot be shown right now; try again later\n",
            )
                .into_response()
        }
    }
}

/// The format a pull feed's file name asks for.
fn kind(file: &str) -> Option<DocKind> {
    [DocKind::Atom, DocKind::Rss, DocKind::Json, DocKind::Ninjs]
        .into_iter()
        .find(|k| k.file_name() == file)
}

/// The partner's feed in `kind`, from the catalog as it is now.
async fn render_for(state: &AppState, partner: &Partner, kind: DocKind) -> anyhow::Result<Vec<u8>> {
    let categories = partner.categories.clone();
    let withheld = partner.embargoed;
    let limit = state.cfg.feeds.max_items;
    let (entries, tombstones) = with_catalog(state, move |c| {
        Ok((
            c.newest_for(&categories, withheld, limit)?,
            c.tombstones_in(&categories)?,
        ))
    })
    .await?;
    let info = FeedInfo::for_partner(&state.cfg, &partner.name);
    let doc = render::render_capped(&state.cfg, &info, &entries, &tombstones, kind)?;
    Ok(doc.bytes)
}

/// The one answer to every request that is not admitted.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (WWW_AUTHENTICATE, "Bearer realm=\"feedwire partners\""),
            (CACHE_CONTROL, "no-store"),
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        Extension(RouteLabel(LABEL)),
        "a partner's pull token is required: send `Authorization: Bearer <token>`\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn auth() -> PullAuth {
        let cfg = Config::from_toml(
            "[[partners]]\nname = \"p\"\npull_token = \"0123456789abcdef0123\"\n\
             [[partners]]\nname = \"push\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"s\"\n",
            Path::new("/tmp/config.toml"),
        )
        .unwrap();
        PullAuth::new(&cfg)
    }

    #[test]
    fn serve_pull_token_admits_only_its_partner() {
        let a = auth();
        let ok = b"Bearer 0123456789abcdef0123".as_slice();
        assert!(a.admits("p", Some(ok)));
        assert!(a.admits("p", Some(b"bearer  0123456789abcdef0123 ")));
        assert!(!a.admits("p", Some(b"Bearer 0123456789abcdef012")));
        assert!(!a.admits("p", Some(b"Basic 0123456789abcdef0123")));
        assert!(!a.admits("p", Some(b"0123456789abcdef0123")));
        assert!(!a.admits("p", None));
        assert!(
            !a.admits("other", Some(ok)),
            "a token opens its own partner only"
        );
        assert!(
            !a.admits("push", Some(ok)),
            "a partner without pull_token never pulls"
        );
        assert!(!a.admits("push", Some(b"Bearer ")));
    }
}
