//! Small text helpers shared by the wire and Markdown parsers.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// True for characters XML 1.0 forbids (C0 controls other than tab, LF and
/// CR; U+FFFE; U+FFFF) and for the C1 controls U+0080–U+009F, which are
/// allowed by XML but never meaningful in an article and break many readers.
pub fn is_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

/// `s` without the characters [`is_forbidden`] rejects. Decoding already
/// removed them from the file's text, but character references (`&#1;` in
/// Markdown or HTML) and YAML/TOML escapes (`"\u0001"`) bring them back, and
/// one of them in a title or body makes every feed carrying the article
/// unpublishable.
pub fn strip_forbidden(s: &str) -> Cow<'_, str> {
    // Every forbidden character is a C0 control other than tab, LF and CR,
    // or DEL, or starts with byte C2 (C1 controls) or EF (U+FFFE, U+FFFF): a
    // byte scan settles most text.
    let suspect = |b: u8| {
        (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) | (b == 0x7f) | (b == 0xc2) | (b == 0xef)
    };
    // Folding whole chunks (no early exit inside one) lets the compiler use
    // vector instructions: this runs over every article body.
    let maybe = s
        .as_bytes()
        .chunks(256)
        .any(|chunk| chunk.iter().fold(false, |acc, &b| acc | suspect(b)));
    if maybe && s.chars().any(is_forbidden) {
        Cow::Owned(s.chars().filter(|&c| !is_forbidden(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// A character a reader can see: anything but controls, format characters
/// (zero-width space and joiners, bidi marks, soft hyphen, BOM, tags), space
/// and line/paragraph separators (no-break spaces included), the other
/// default-ignorable code points (variation selectors, Hangul fillers) and the
/// blank braille pattern.
static VISIBLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[^\p{Cc}\p{Cf}\p{Z}\p{Default_Ignorable_Code_Point}\x{2800}]")
        .expect("valid regex")
});

/// Does `s` contain at least one character a reader can see? A title made
/// only of zero-width spaces is present but shows as nothing.
pub fn is_visible(s: &str) -> bool {
    VISIBLE.is_match(s)
}

/// A single-line plain-text field: trimmed, every run of whitespace (including
/// line breaks) collapsed to one space, characters XML forbids removed.
pub fn one_line(s: &str) -> String {
    let cleaned = strip_forbidden(s);
    let s = &*cleaned;
    // Fast path: already single spaces between words (the usual case).
    let tidy = !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains("  ")
        && !has_whitespace_other_than_space(s);
    if tidy {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Whether `s` has a character `char::is_whitespace` holds for other than
/// U+0020, found from the bytes of the UTF-8 encodings (the `White_Space`
/// property: U+0009–U+000D, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028,
/// U+2029, U+202F, U+205F, U+3000). Decoding every character of a
/// Vietnamese title to ask was a few percent of a cold build; almost every
/// character there is multibyte, and none of them starts like these.
fn has_whitespace_other_than_space(s: &str) -> bool {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    b.iter().enumerate().any(|(i, &x)| match x {
        0x09..=0x0d => true,
        0xc2 => matches!(at(i + 1), 0x85 | 0xa0),
        0xe1 => at(i + 1) == 0x9a && at(i + 2) == 0x80,
        0xe2 => matches!(
            (at(i + 1), at(i + 2)),
            (0x80, 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf) | (0x81, 0x9f)
        ),
        0xe3 => at(i + 1) == 0x80 && at(i + 2) == 0x80,
        _ => false,
    })
}

/// Letters that mark Vietnamese text: ă â đ ê ô ơ ư (either case) and vowels
/// carrying one of the five tone marks. Expects NFC text.
pub fn is_vietnamese_letter(c: char) -> bool {
    matches!(
        c,
        'ă' | 'Ă'
            | 'â'
            | 'Â'
            | 'đ'
            | 'Đ'
            | 'ê'
            | 'Ê'
            | 'ô'
            | 'Ô'
            | 'ơ'
            | 'Ơ'
            | 'ư'
            | 'Ư'
            | 'à'
            | 'á'
            | 'ã'
            | 'è'
            | 'é'
            | 'ì'
            | 'í'
            | 'ò'
            | 'ó'
            | 'õ'
            | 'ù'
            | 'ú'
            | 'ý'
            | 'À'
            | 'Á'
            | 'Ã'
            | 'È'
            | 'É'
            | 'Ì'
            | 'Í'
            | 'Ò'
            | 'Ó'
            | 'Õ'
            | 'Ù'
            | 'Ú'
            | 'Ý'
            | 'ĩ'
            | 'Ĩ'
            | 'ũ'
            | 'Ũ'
            | '\u{1ea0}'..='\u{1ef9}'
    )
}

/// Guess the language of NFC text: `vi` or `en`.
///
/// A bare "contains a Vietnamese letter" test would label every English
/// story that names "Hội An" or "Đà Nẵng" as Vietnamese, so we require the
/// marked letters to be at least 5% of all letters. Vietnamese prose runs at
/// 15–30%; English prose quoting a few place names stays far below 5%.
pub fn guess_language(text: &str) -> &'static str {
    let mut letters = 0usize;
    let mut marked = 0usize;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if is_vietnamese_letter(c) {
            marked += 1;
        }
    }
    if marked > 0 && marked * 20 >= letters {
        "vi"
    } else {
        "en"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_found_from_bytes_is_exactly_char_is_whitespace() {
        // Every character up to U+FFFF, alone (at the end of the text) and
        // between Vietnamese letters; beyond, a sample: the bytes of their
        // 4-byte encodings (F0–F4, then 80–BF) are none the scan looks for.
        let mut between = String::new();
        let mut alone = [0u8; 4];
        let chars = (0..=0xffff).chain((0x10000..=0x10ffff).step_by(97));
        for c in chars.filter_map(char::from_u32) {
            let want = c.is_whitespace() && c != ' ';
            between.clear();
            between.extend(['ạ', c, 'ữ']);
            for s in [&*c.encode_utf8(&mut alone), &between] {
                assert_eq!(
                    has_whitespace_other_than_space(s),
                    want,
                    "U+{:04X}",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn one_line_collapses_whitespace() {
        let cases = [
            ("  a  b\t\tc \n d ", "a b c d"),
            ("", ""),
            ("x", "x"),
            ("a\u{a0}b", "a b"),
        ];
        for (input, want) in cases {
            assert_eq!(one_line(input), want, "input {input:?}");
        }
    }

    #[test]
    fn one_line_drops_forbidden_characters() {
        for (input, want) in [
            ("A\u{1}B", "AB"),
            ("\u{fffe} x \u{85}", "x"),
            ("Hà Nội", "Hà Nội"),
        ] {
            assert_eq!(one_line(input), want, "input {input:?}");
        }
    }

    #[test]
    fn visibility() {
        // (text, visible?)
        let cases = [
            ("Tin mới", true),
            ("a", true),
            ("\u{200b}x\u{200b}", true),
            ("·", true),
            ("", false),
            (" \t", false),
            ("\u{200b}", false),                 // zero-width space (Cf)
            ("\u{2060}", false),                 // word joiner (Cf)
            ("\u{feff}", false),                 // byte order mark (Cf)
            ("\u{a0}\u{202f}\u{3000}", false),   // no-break and ideographic spaces (Zs)
            ("\u{200c}\u{200d}", false),         // non-joiner, joiner
            ("\u{200e}\u{200f}\u{202e}", false), // bidi marks and overrides
            ("\u{ad}", false),                   // soft hyphen
            ("\u{2028}\u{2029}", false),         // line and paragraph separators
            ("\u{180e}", false),                 // Mongolian vowel separator
            ("\u{3164}\u{ffa0}", false),         // Hangul fillers
            ("\u{fe0f}", false),                 // variation selector
            ("\u{e0041}", false),                // tag character
            ("\u{2800}", false),                 // blank braille pattern
            ("\u{85}\u{1}", false),              // controls
        ];
        for (text, want) in cases {
            assert_eq!(is_visible(text), want, "{text:?}");
        }
    }

    #[test]
    fn forbidden_characters() {
        for c in [
            '\u{0}', '\u{b}', '\u{c}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}', '\u{fffe}',
            '\u{ffff}',
        ] {
            assert!(is_forbidden(c), "{c:?} should be forbidden");
        }
        for c in ['\t', '\n', '\r', ' ', 'a', '\u{a0}', 'ạ', '\u{fffd}'] {
            assert!(!is_forbidden(c), "{c:?} should be allowed");
        }
    }

    #[test]
    fn language_guess() {
        let cases = [
            ("Hà Nội mở thêm 5 tuyến phố đi bộ cuối tuần", "vi"),
            (
                "Hanoi's metro & bus network: daily ridership tops 100,000",
                "en",
            ),
            (
                "Farmers near Hội An and Đà Nẵng say the new rice variety held its yield through the whole dry season this year",
                "en",
            ),
            ("", "en"),
        ];
        for (input, want) in cases {
            assert_eq!(guess_language(input), want, "input {input:?}");
        }
    }
}
