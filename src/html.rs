//! HTML text escaping shared by ingest (building wire HTML), render (RSS
//! descriptions) and serve (pages): one rule, so text is never escaped twice
//! or not at all depending on who wrote it.

/// Escape text for use in HTML element content or a quoted attribute.
pub fn escape_html(s: &str) -> String {
    if !s
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            super::escape_html(r#"<a href="x">AT&T's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;AT&amp;T&#39;s&lt;/a&gt;"
        );
    }
}
