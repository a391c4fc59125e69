//! Building and sanitising article HTML.
//!
//! Everything that ends up in [`Article::content_html`](crate::article::Article)
//! passes through [`sanitize`], so later stages can embed it in a page, an
//! RSS `<description>` CDATA section or an Atom `<content type="html">`
//! without thinking about scripts, event handlers, `]]>`, characters XML
//! forbids, or a size that crowds other entries out of a feed.

use super::text::strip_forbidden;
use super::{IngestError, Limits, probe};
use crate::html::escape_html;
use std::sync::LazyLock;

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    // ammonia's defaults already drop script/style/iframe/object/embed/form,
    // every `on*` attribute and any URL scheme outside its allow-list (so no
    // `javascript:`); relative URLs pass through because only the render
    // stage knows the site's base URL. Links get rel="noopener noreferrer".
    // Footnotes from pulldown-cmark need their anchors and classes to work.
    b.add_tag_attributes("div", ["id"])
        .add_allowed_classes("div", ["footnote-definition"])
        .add_allowed_classes("sup", ["footnote-reference", "footnote-definition-label"]);
    b
});

/// Sanitise untrusted HTML (rendered Markdown, which may embed raw HTML;
/// `well_formed` says it does not).
///
/// Nothing reaches ammonia unless [`probe::check`] found its structure within
/// `limits` (ammonia's parser and serialiser are quadratic on deep or
/// repetitive input), or [`probe::needed`] shows it cannot cross them; the
/// result is at most `limits.max_html_bytes`.
///
/// The result is also made safe for XML-based feeds: `&nbsp;` (which the
/// serialiser emits for U+00A0 but XML does not define) is written as the
/// character itself, `]]>` never appears literally, and characters XML
/// forbids (which character references such as `&#1;` produce) are dropped.
pub fn sanitize(html: &str, well_formed: bool, limits: &Limits) -> Result<String, IngestError> {
    let too_large = IngestError::HtmlTooLarge {
        limit: limits.max_html_bytes,
    };
    if html.len() > limits.max_html_bytes {
        return Err(too_large);
    }
    if probe::needed(html, well_formed, limits) {
        probe::check(html, limits)?;
    }
    let clean = SANITIZER.clean(html).to_string();
    let clean = clean.replace("&nbsp;", "\u{a0}").replace("]]>", "]]&gt;");
    let clean = match strip_forbidden(&clean) {
        std::borrow::Cow::Borrowed(_) => clean,
        std::borrow::Cow::Owned(stripped) => stripped,
    };
    // ammonia adds `rel` to every link, so the result can outgrow its input.
    if clean.len() > limits.max_html_bytes {
        return Err(too_large);
    }
    Ok(clean)
}

/// `<p>` element for a plain-text paragraph.
pub fn paragraph(text: &str) -> String {
    format!("<p>{}</p>", escape_html(text))
}

/// A photo caption without its photo: `<figure><figcaption>…</figcaption></figure>`.
pub fn caption(text: &str) -> String {
    format!(
        "<figure><figcaption>{}</figcaption></figure>",
        escape_html(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_dangerous_markup() {
        // (input, must contain, must not contain)
        let cases: [(&str, &[&str], &[&str]); 10] = [
            (
                "<p>a<script>alert(1)</script>b</p>",
                &["<p>ab</p>"],
                &["script", "alert"],
            ),
            (
                r#"<p onclick="steal()">x</p>"#,
                &["<p>x</p>"],
                &["onclick", "steal"],
            ),
            (
                r#"<a href="javascript:alert(1)">x</a>"#,
                &[">x</a>"],
                &["javascript"],
            ),
            (
                r#"<a href="JaVaScRiPt:alert(1)">x</a>"#,
                &[">x</a>"],
                &["alert"],
            ),
            (
                r#"<a href="https://e.com/">x</a>"#,
                &[r#"href="https://e.com/""#, r#"rel="noopener noreferrer""#],
                &[],
            ),
            (
                r#"<a href="/relative">x</a>"#,
                &[r#"href="/relative""#],
                &[],
            ),
            (
                "<iframe src=x></iframe><object></object><embed><form><input></form>",
                &[],
                &["iframe", "object", "embed", "form", "input"],
            ),
            (
                "<style>p{}</style><p style=\"color:red\">x</p>",
                &["<p>x</p>"],
                &["style", "color"],
            ),
            ("<p>a ]]> b</p>", &["]]&gt;"], &["]]>"]),
            (r#"<p title="]]>">x</p>"#, &["]]&gt;"], &["]]>"]),
        ];
        for (input, want, forbid) in cases {
            let got = sanitize(input, false, &Limits::default()).unwrap();
            for w in want {
                assert!(got.contains(w), "{input:?} → {got:?} should contain {w:?}");
            }
            for f in forbid {
                assert!(
                    !got.to_lowercase().contains(f),
                    "{input:?} → {got:?} must not contain {f:?}"
                );
            }
        }
    }

    #[test]
    fn sanitize_writes_nbsp_as_a_character() {
        assert_eq!(
            sanitize("<p>a\u{a0}b</p>", false, &Limits::default()).unwrap(),
            "<p>a\u{a0}b</p>"
        );
    }

    #[test]
    fn sanitize_drops_characters_xml_forbids() {
        let got = sanitize(
            "<p title=\"a&#2;b\">x&#1;y&#xFFFE;z&#x81;</p>",
            false,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(got, "<p title=\"ab\">xyz</p>");
    }

    #[test]
    fn sanitize_bounds_the_result() {
        let limits = Limits {
            max_html_bytes: 100,
            ..Limits::default()
        };
        let too_large = Err(IngestError::HtmlTooLarge { limit: 100 });
        assert_eq!(sanitize(&"<p>x</p>".repeat(13), false, &limits), too_large);
        // 96 bytes in, but ammonia adds rel="noopener noreferrer" to links.
        assert_eq!(
            sanitize(&"<a href=\"/x\">y</a>".repeat(6), false, &limits),
            too_large
        );
        assert!(sanitize(&"<p>x</p>".repeat(12), false, &limits).is_ok());
    }

    #[test]
    fn builders_escape_text() {
        assert_eq!(paragraph("a < b & c"), "<p>a &lt; b &amp; c</p>");
        assert_eq!(
            caption("Ảnh <1> (Ảnh: TTXVN)"),
            "<figure><figcaption>Ảnh &lt;1&gt; (Ảnh: TTXVN)</figcaption></figure>"
        );
    }
}
