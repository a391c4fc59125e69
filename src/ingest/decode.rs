//! Bytes → clean NFC text, and which encoding the bytes were in.
//!
//! The rules are the corpus README's: a BOM decides; otherwise valid UTF-8 is
//! UTF-8; otherwise Windows-1258, unless the bytes contain a byte that code
//! page leaves unassigned or look like damaged UTF-8 (UTF-8 sequences of
//! Vietnamese letters, which real Windows-1258 text never produces).
//!
//! The returned text has LF line breaks only, no BOM, none of the characters
//! [`is_forbidden`] rejects, and is in Unicode NFC.

use super::IngestError;
use super::text::{is_forbidden, is_vietnamese_letter};
use crate::article::Encoding;
use unicode_normalization::UnicodeNormalization;

/// Decoded text and what was detected about the raw bytes.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// NFC text with `\n` line breaks and no XML-forbidden characters.
    pub text: String,
    pub encoding: Encoding,
}

/// Bytes Windows-1258 leaves unassigned.
const UNASSIGNED_1258: [u8; 9] = [0x81, 0x8A, 0x8D, 0x8E, 0x8F, 0x90, 0x9A, 0x9D, 0x9E];

/// Decode one file's bytes. Errors: [`IngestError::Empty`] (no bytes, or only
/// whitespace after decoding), [`IngestError::Binary`] (NUL bytes outside
/// UTF-16), [`IngestError::Encoding`] (malformed UTF-16/UTF-8-with-BOM, or
/// neither UTF-8 nor Windows-1258).
pub fn decode(bytes: &[u8]) -> Result<Decoded, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::Empty);
    }
    let (raw, encoding) = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        check_binary(rest)?;
        let text = simdutf8::compat::from_utf8(rest).map_err(|e| {
            IngestError::Encoding(format!(
                "it starts with a UTF-8 byte order mark but byte {} is not valid UTF-8",
                e.valid_up_to() + 3
            ))
        })?;
        (text.to_string(), Encoding::Utf8Bom)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        (
            utf16(rest, encoding_rs::UTF_16LE, "UTF-16 LE")?,
            Encoding::Utf16LeBom,
        )
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        (
            utf16(rest, encoding_rs::UTF_16BE, "UTF-16 BE")?,
            Encoding::Utf16BeBom,
        )
    } else {
        check_binary(bytes)?;
        // SIMD: most files are UTF-8, and the standard check was a sixth
        // of ingest's time in a cold build's profile.
        match simdutf8::compat::from_utf8(bytes) {
            Ok(text) => (text.to_string(), Encoding::Utf8),
            Err(e) => (windows_1258(bytes, e.valid_up_to())?, Encoding::Windows1258),
        }
    };
    let text = clean(&raw);
    if text.trim().is_empty() {
        return Err(IngestError::Empty);
    }
    Ok(Decoded { text, encoding })
}

fn check_binary(bytes: &[u8]) -> Result<(), IngestError> {
    if bytes.contains(&0) {
        Err(IngestError::Binary)
    } else {
        Ok(())
    }
}

fn utf16(
    bytes: &[u8],
    enc: &'static encoding_rs::Encoding,
    name: &str,
) -> Result<String, IngestError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(IngestError::Encoding(format!(
            "it starts with a {name} byte order mark but has an odd number of bytes"
        )));
    }
    enc.decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| {
            IngestError::Encoding(format!(
                "it starts with a {name} byte order mark but contains an unpaired surrogate"
            ))
        })
}

fn windows_1258(bytes: &[u8], first_invalid: usize) -> Result<String, IngestError> {
    if let Some(pos) = bytes.iter().position(|b| UNASSIGNED_1258.contains(b)) {
        return Err(IngestError::Encoding(format!(
            "byte 0x{:02X} at offset {pos} is unassigned in Windows-1258, and byte {first_invalid} is not valid UTF-8",
            bytes[pos]
        )));
    }
    if let Some((pos, c, len)) = find_utf8_vietnamese(bytes) {
        let seq: Vec<String> = bytes[pos..pos + len]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        return Err(IngestError::Encoding(format!(
            "damaged UTF-8: bytes {} at offset {pos} spell \"{c}\" in UTF-8, but byte {first_invalid} is not valid UTF-8",
            seq.join(" ")
        )));
    }
    encoding_rs::WINDOWS_1258
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| IngestError::Encoding("not decodable as Windows-1258".to_string()))
}

/// The first well-formed UTF-8 sequence of a Vietnamese letter or tone mark:
/// its offset, the character and its length in bytes.
fn find_utf8_vietnamese(bytes: &[u8]) -> Option<(usize, char, usize)> {
    for i in 0..bytes.len() {
        let len = match bytes[i] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => continue,
        };
        let Some(seq) = bytes.get(i..i + len) else {
            continue;
        };
        let Ok(s) = std::str::from_utf8(seq) else {
            continue;
        };
        let c = s.chars().next().expect("non-empty");
        let tone_mark = matches!(c, '\u{300}' | '\u{301}' | '\u{303}' | '\u{309}' | '\u{323}');
        if tone_mark || is_vietnamese_letter(c) {
            return Some((i, c, len));
        }
    }
    None
}

/// Line breaks to LF, forbidden characters and a leading BOM removed, NFC.
fn clean(raw: &str) -> String {
    let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let unified = if needs_cleaning(raw) {
        unify(raw)
    } else {
        raw.to_owned()
    };
    // Most files arrive composed already: the quick check avoids rebuilding
    // every string (it was a third of a cold build).
    match unicode_normalization::is_nfc_quick(unified.chars()) {
        unicode_normalization::IsNormalized::Yes => unified,
        _ => unified.nfc().collect(),
    }
}

/// Could `unify` change anything? A byte scan: CR, C0 controls other than
/// tab and LF, DEL, C1 controls (`C2 80`–`C2 9F`) and U+FFFE/U+FFFF
/// (`EF BF BE`/`EF BF BF`). Most files have none and skip the char-by-char copy.
fn needs_cleaning(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.iter().enumerate().any(|(i, &x)| match x {
        b'\t' | b'\n' => false,
        0..=0x1f | 0x7f => true,
        0xC2 => matches!(b.get(i + 1), Some(0x80..=0x9f)),
        0xEF => b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)),
        _ => false,
    })
}

/// Line breaks to LF and forbidden characters removed.
fn unify(raw: &str) -> String {
    let mut unified = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                unified.push('\n');
            }
            c if is_forbidden(c) => {}
            c => unified.push(c),
        }
    }
    unified
}

#[cfg(test)]
mod tests {
    #[test]
    fn needs_cleaning_sees_every_character_unify_would_change() {
        let cases = [
            ("Thời sự\nTTXVN - tin\tmới", false),
            ("a\u{a0}b", false),
            ("CRLF\r\n", true),
            ("vtab\u{b}", true),
            ("del\u{7f}", true),
            ("c1\u{85}", true),
            ("nonchar\u{fffe}", true),
            ("nonchar\u{ffff}", true),
            ("replacement\u{fffd}", false),
        ];
        for (text, want) in cases {
            assert_eq!(super::needs_cleaning(text), want, "{text:?}");
            assert_eq!(
                super::unify(text) != text,
                want,
                "{text:?}: unify and the scan disagree"
            );
        }
    }

    use super::*;

    /// Does the error match what the case expects?
    type Check = fn(&IngestError) -> bool;

    fn utf16be_bom(s: &str) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF];
        for unit in s.encode_utf16() {
            out.extend_from_slice(&unit.to_be_bytes());
        }
        out
    }

    fn utf16le_bom(s: &str) -> Vec<u8> {
        let mut out = vec![0xFF, 0xFE];
        for unit in s.encode_utf16() {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out
    }

    #[test]
    fn decodes_supported_encodings() {
        let cases: Vec<(&str, Vec<u8>, &str, Encoding)> = vec![
            (
                "utf-8",
                "Hà Nội\n".as_bytes().to_vec(),
                "Hà Nội\n",
                Encoding::Utf8,
            ),
            (
                "utf-8 bom",
                b"\xEF\xBB\xBFH\xC3\xA0".to_vec(),
                "Hà",
                Encoding::Utf8Bom,
            ),
            (
                "utf-16 le bom",
                utf16le_bom("Cần Thơ"),
                "Cần Thơ",
                Encoding::Utf16LeBom,
            ),
            (
                "utf-16 be bom",
                utf16be_bom("Cần Thơ\r\nđ"),
                "Cần Thơ\nđ",
                Encoding::Utf16BeBom,
            ),
            // "Tiếng" in Windows-1258: ê (0xEA) + combining acute (0xEC).
            (
                "windows-1258",
                b"Ti\xEA\xECng \x93x\x94 \x85".to_vec(),
                "Tiếng “x” …",
                Encoding::Windows1258,
            ),
            // ơ (0xF5) + combining dot below (0xF2) composes to ợ.
            (
                "windows-1258 half-composed",
                b"\xF5\xF2".to_vec(),
                "ợ",
                Encoding::Windows1258,
            ),
            (
                "nfd utf-8",
                "Ha\u{300} No\u{302}\u{323}i".as_bytes().to_vec(),
                "Hà Nội",
                Encoding::Utf8,
            ),
            (
                "crlf and lone cr",
                b"a\r\nb\rc\n".to_vec(),
                "a\nb\nc\n",
                Encoding::Utf8,
            ),
            (
                "forbidden chars",
                "a\u{b}b\u{fffe}c\u{ffff}d\u{85}e\u{1}f".as_bytes().to_vec(),
                "abcdef",
                Encoding::Utf8,
            ),
        ];
        for (name, bytes, want, encoding) in cases {
            let got = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.text, want, "{name}");
            assert_eq!(got.encoding, encoding, "{name}");
        }
    }

    #[test]
    fn rejects_undecodable_input() {
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("empty", vec![], |e| *e == IngestError::Empty),
            ("whitespace only", b" \r\n\t\n ".to_vec(), |e| {
                *e == IngestError::Empty
            }),
            ("bom only", b"\xEF\xBB\xBF".to_vec(), |e| {
                *e == IngestError::Empty
            }),
            ("only forbidden chars", b"\x0b\x0c\n".to_vec(), |e| {
                *e == IngestError::Empty
            }),
            ("nul byte", b"abc\x00def".to_vec(), |e| {
                *e == IngestError::Binary
            }),
            (
                "nul byte after utf-8 bom",
                b"\xEF\xBB\xBFa\x00".to_vec(),
                |e| *e == IngestError::Binary,
            ),
            (
                "damaged utf-8",
                b"Ng\xE1\xBA\xA1i \xFF".to_vec(),
                |e| matches!(e, IngestError::Encoding(m) if m.contains("damaged UTF-8") && m.contains("E1 BA A1")),
            ),
            (
                "damaged utf-8 with dd",
                b"\xC4\x91i \xE9".to_vec(),
                |e| matches!(e, IngestError::Encoding(m) if m.contains("C4 91")),
            ),
            (
                "unassigned 1258 byte",
                b"abc \x81 \xEA".to_vec(),
                |e| matches!(e, IngestError::Encoding(m) if m.contains("0x81")),
            ),
            (
                "utf-8 bom then invalid",
                b"\xEF\xBB\xBFa\xFF".to_vec(),
                |e| matches!(e, IngestError::Encoding(_)),
            ),
            ("utf-16 odd length", b"\xFF\xFEa\x00b".to_vec(), |e| {
                matches!(e, IngestError::Encoding(_))
            }),
            (
                "utf-16 lone surrogate",
                b"\xFE\xFF\xD8\x00\x00a".to_vec(),
                |e| matches!(e, IngestError::Encoding(_)),
            ),
        ];
        for (name, bytes, check) in cases {
            match decode(&bytes) {
                Ok(d) => panic!("{name}: expected an error, got {:?}", d.text),
                Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
            }
        }
    }

    #[test]
    fn utf16_may_contain_nul_bytes() {
        // Every ASCII character in UTF-16 has a zero byte; that is not "binary".
        let d = decode(&utf16le_bom("abc")).expect("decodes");
        assert_eq!(d.text, "abc");
    }
}
