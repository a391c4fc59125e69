//! Reading what a receiver answers, bounded. Every outbound request
//! (verification and denial GETs, WebSub deliveries, hub and legacy pings,
//! partner webhooks) goes to a server someone else runs, and its body may be
//! endless; so a body is read chunk by chunk, only as far as the caller needs
//! it, and the rest is never read (dropping the response closes the
//! connection). The time spent is bounded by the request's own timeout.

/// How much of a failed answer's body is kept for the log and `status`.
pub(crate) const SNIPPET_BYTES: usize = 200;

/// At most `limit` bytes of the body, and whether more followed (left
/// unread). Memory held is `limit` plus one chunk at most.
pub(crate) async fn read_capped(
    resp: &mut reqwest::Response,
    limit: usize,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(limit.min(16 * 1024));
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

/// `HTTP <status>` followed by the start of the body, made printable (one
/// line, no control characters) so a receiver cannot forge log lines.
pub(crate) async fn describe_failure(mut resp: reqwest::Response) -> String {
    let status = resp.status().as_u16();
    let start = match read_capped(&mut resp, SNIPPET_BYTES).await {
        Ok((bytes, more)) => {
            let text = printable(&bytes);
            if more && !text.is_empty() {
                format!("{text}…")
            } else {
                text
            }
        }
        // The status is what matters; the body may simply have timed out.
        Err(_) => String::new(),
    };
    if start.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {start}")
    }
}

/// Bytes as one line of text: invalid UTF-8 replaced, control characters
/// and runs of whitespace turned into single spaces.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

/// A `Retry-After` given in seconds (the HTTP-date form is not worth the
/// parsing here), as milliseconds.
pub(crate) fn retry_after_ms(resp: &reqwest::Response) -> Option<i64> {
    let secs: i64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs >= 0).then(|| secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_is_one_line() {
        assert_eq!(
            printable(b"bad\r\nINFO forged line\t\x1b[31m  x \xff"),
            "bad INFO forged line [31m x \u{fffd}"
        );
        assert_eq!(printable(b"   "), "");
    }
}
