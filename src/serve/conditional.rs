//! Conditional requests (RFC 9110 §13): whether a GET or HEAD can be answered
//! `304 Not Modified` from `If-None-Match` / `If-Modified-Since`.

use axum::http::HeaderMap;
use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// True when the client's copy is current and a 304 is the answer.
///
/// `If-None-Match` is evaluated with the weak comparison (§13.1.2): a listed
/// tag matches the representation's ETag when their opaque parts are equal,
/// whatever `W/` prefixes they carry; `*` matches anything that exists. When
/// `If-None-Match` is present `If-Modified-Since` is ignored (§13.2.2);
/// otherwise an IMS date at or after `last_modified` (whole seconds) gives 304,
/// and an unparsable or future IMS date is ignored.
pub fn not_modified(
    headers: &HeaderMap,
    etag: &str,
    last_modified: SystemTime,
    now: SystemTime,
) -> bool {
    let inm: Vec<&str> = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if headers.contains_key(IF_NONE_MATCH) {
        return inm.iter().any(|list| list_matches(list, etag));
    }
    let Some(ims) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
    else {
        return false;
    };
    if ims > now {
        return false;
    }
    secs(last_modified) <= secs(ims)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Does an `If-None-Match` field value (`*` or a list of entity tags) match?
fn list_matches(list: &str, etag: &str) -> bool {
    let target = opaque(etag);
    let mut rest = list.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            break;
        }
        if rest.starts_with('*') {
            // `*` is only valid alone, but reading it as "any" is the safe side.
            return true;
        }
        let tag_start = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(body) = tag_start.strip_prefix('"') else {
            // Malformed: skip to the next comma.
            rest = rest.split_once(',').map_or("", |(_, r)| r);
            continue;
        };
        let Some(end) = body.find('"') else {
            return false;
        };
        if Some(&body[..end]) == target {
            return true;
        }
        rest = &body[end + 1..];
    }
    false
}

/// The opaque part of an entity tag, without `W/` and quotes.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ETAG: &str = "\"abc123\"";

    fn check(inm: Option<&str>, ims: Option<&str>, lm_secs: u64) -> bool {
        let mut h = HeaderMap::new();
        if let Some(v) = inm {
            h.insert(IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = ims {
            h.insert(IF_MODIFIED_SINCE, HeaderValue::from_str(v).unwrap());
        }
        let lm = UNIX_EPOCH + Duration::from_secs(lm_secs);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        not_modified(&h, ETAG, lm, now)
    }

    // HTTP-04 test matrix.
    #[test]
    fn serve_if_none_match_uses_weak_comparison_lists_and_star() {
        assert!(check(Some("\"abc123\""), None, 0));
        assert!(check(Some("W/\"abc123\""), None, 0));
        assert!(check(Some("\"zzz\", \"abc123\""), None, 0));
        assert!(check(Some("\"a,b\", W/\"abc123\""), None, 0));
        assert!(check(Some("*"), None, 0));
        assert!(!check(Some("\"zzz\""), None, 0));
        assert!(
            !check(Some("abc123"), None, 0),
            "quotes are part of the tag"
        );
        assert!(!check(Some("\"abc"), None, 0));
    }

    #[test]
    fn serve_if_modified_since_compares_dates_and_yields_to_inm() {
        let lm = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT
        assert!(check(None, Some("Tue, 14 Nov 2023 22:13:20 GMT"), lm));
        assert!(check(None, Some("Wed, 15 Nov 2023 00:00:00 GMT"), lm));
        assert!(!check(None, Some("Tue, 14 Nov 2023 22:13:19 GMT"), lm));
        assert!(
            !check(None, Some("yesterday"), lm),
            "invalid IMS is ignored"
        );
        assert!(
            !check(None, Some("Fri, 01 Jan 2100 00:00:00 GMT"), lm),
            "future IMS is ignored"
        );
        // A stale INM with a fresh IMS must give 200.
        assert!(!check(
            Some("\"old\""),
            Some("Wed, 15 Nov 2023 00:00:00 GMT"),
            lm
        ));
    }
}
