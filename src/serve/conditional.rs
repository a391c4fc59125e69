//! Conditional requests (RFC 9110 §13): whether a GET or HEAD can be answered
//! `304 Not Modified` from `If-None-Match` / `If-Modified-Since`, read with
//! the `headers` crate's typed headers rather than by hand.

use axum::http::HeaderMap;
use headers::{ETag, HeaderMapExt, IfModifiedSince, IfNoneMatch};
use std::time::SystemTime;

/// True when the client's copy is current and a 304 is the answer.
///
/// `If-None-Match` is evaluated with the weak comparison (§13.1.2): a listed
/// tag matches the representation's ETag when their opaque parts are equal,
/// whatever `W/` prefixes they carry; `*` alone matches anything that exists.
/// List items that are not entity tags match nothing, so a garbled header
/// never yields a 304. When `If-None-Match` is present `If-Modified-Since` is
/// ignored (§13.2.2); otherwise an IMS date at or after `last_modified`
/// (whole seconds) gives 304, and an unparsable or future IMS date, or a
/// representation without a date, is ignored.
pub fn not_modified(
    headers: &HeaderMap,
    etag: &str,
    last_modified: Option<SystemTime>,
    now: SystemTime,
) -> bool {
    if headers.contains_key(axum::http::header::IF_NONE_MATCH) {
        let Ok(etag) = etag.parse::<ETag>() else {
            return false;
        };
        return headers
            .typed_get::<IfNoneMatch>()
            .is_some_and(|inm| !inm.precondition_passes(&etag));
    }
    let (Some(ims), Some(last_modified)) = (headers.typed_get::<IfModifiedSince>(), last_modified)
    else {
        return false;
    };
    if SystemTime::from(ims) > now {
        return false;
    }
    !ims.is_modified(last_modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
    use std::time::{Duration, UNIX_EPOCH};

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
        not_modified(&h, ETAG, Some(lm), now)
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

    // HTTP-04: a header that is not `*` or a list of entity tags must never
    // turn into a 304 (it once did, for anything starting with `*`).
    #[test]
    fn serve_unparsable_if_none_match_never_matches() {
        for garbage in [
            "*garbage",
            "**",
            "* , \"zzz\"",
            "W/",
            "W/abc123",
            "\"\"abc123\"",
            "abc123\"",
            "",
            ",",
        ] {
            assert!(!check(Some(garbage), None, 0), "If-None-Match: {garbage}");
        }
        // Garbage does not hide a matching tag next to it, nor bring IMS back.
        assert!(check(Some("*garbage, \"abc123\""), None, 0));
        assert!(!check(
            Some("*garbage"),
            Some("Wed, 15 Nov 2023 00:00:00 GMT"),
            1_700_000_000
        ));
    }

    #[test]
    fn serve_if_none_match_values_on_several_lines_are_one_list() {
        let mut h = HeaderMap::new();
        h.append(IF_NONE_MATCH, HeaderValue::from_static("\"zzz\""));
        h.append(IF_NONE_MATCH, HeaderValue::from_static("W/\"abc123\""));
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(not_modified(&h, ETAG, None, now));
    }

    #[test]
    fn serve_if_modified_since_needs_a_date_to_compare() {
        let mut h = HeaderMap::new();
        h.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Wed, 15 Nov 2023 00:00:00 GMT"),
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(!not_modified(&h, ETAG, None, now));
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
