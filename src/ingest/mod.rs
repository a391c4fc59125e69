//! Ingest: bytes in, [`Article`] or a typed [`IngestError`] out.
//!
//! This stage is pure on purpose: it never touches the file system, the clock
//! or the catalog, so it can run on any thread, be fuzzed, and be called by
//! `feedwire check` exactly as the daemon calls it. Everything it needs from
//! the outside (time zone, size limits, "now" for plausibility checks) comes in
//! [`IngestOptions`].
//!
//! Its work is linear in the input. Hostile shapes (quotes or HTML elements
//! nested thousands deep, entity floods, formatting tags the HTML parser
//! reopens in every paragraph) are measured against [`Limits`] before the
//! parser that would be slow on them sees them, and rejected with an error
//! that names the limit.

mod decode;
mod html;
mod markdown;
mod probe;
mod text;
mod wire;
mod yaml;

pub use decode::{Decoded, decode};

use crate::article::Article;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Bump whenever parsing changes what an article says: the catalog then
/// re-reads every file once instead of trusting unchanged file stamps.
pub const REVISION: u32 = 2;

/// What ingest needs to know about the world.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Offset-less front-matter dates are read in this zone.
    pub time_zone: Tz,
    /// Files larger than this are rejected before decoding.
    pub max_bytes: u64,
    /// Dates after `now + 24h` or before 1990 are rejected as absurd.
    pub now: DateTime<Utc>,
    /// Bounds on what one article may build (`[ingest]` in the config).
    pub limits: Limits,
}

/// Bounds on the structure an article builds, so that one file can neither
/// make ingest slow nor crowd the other entries out of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `ingest.max_html_bytes`: the largest body HTML (`content_html`) an
    /// article may produce. Feeds carry it once or twice per entry, escaped
    /// in Atom, so it is kept well under `feeds.max_bytes`.
    pub max_html_bytes: usize,
    /// `ingest.max_nesting`: how deep quotes, lists, inline markup, HTML
    /// elements and front-matter values may nest. HTML parsing costs grow
    /// with depth for every element, so without a bound nested input is
    /// quadratic.
    pub max_nesting: usize,
}

impl Limits {
    /// 256 KiB is over ten times the longest feature article we have seen
    /// and a quarter of the default `feeds.max_bytes`.
    pub const DEFAULT_MAX_HTML_BYTES: usize = 256 << 10;
    /// Real articles nest a dozen levels at most (a list in a list in a
    /// quote, with emphasis and a link).
    pub const DEFAULT_MAX_NESTING: usize = 64;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_html_bytes: Limits::DEFAULT_MAX_HTML_BYTES,
            max_nesting: Limits::DEFAULT_MAX_NESTING,
        }
    }
}

/// Why a file could not become an article. Each message names the reason in
/// words an editor can act on; the caller adds the file name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, over the limit of {limit} bytes (ingest.max_bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error("the file looks binary (it contains NUL bytes), not an article")]
    Binary,
    #[error("the text is neither UTF-8 nor Windows-1258 ({0}); save it as UTF-8")]
    Encoding(String),
    #[error("broken front matter: {0}")]
    FrontMatter(String),
    #[error("bad date in `{field}`: {reason}")]
    Date { field: String, reason: String },
    #[error("missing {0}")]
    Missing(String),
    #[error(
        "the {0} is made only of invisible characters (zero-width spaces, word joiners, byte order marks, no-break spaces and the like); write it in visible text"
    )]
    Invisible(String),
    #[error(
        "the article nests {what} more than {limit} levels deep (ingest.max_nesting); flatten it"
    )]
    TooDeep { what: String, limit: usize },
    #[error(
        "the article's body would be more than {limit} bytes of HTML (ingest.max_html_bytes); shorten it or split it into several articles"
    )]
    HtmlTooLarge { limit: usize },
    #[error(
        "cleaning the article's HTML would take more work than its size allows (ingest.max_html_bytes): {0}"
    )]
    HtmlTooCostly(String),
    #[error("not an article: {0}")]
    Layout(String),
    #[error("unsupported file type `{0}` (feedwire reads .txt wire files and .md Markdown)")]
    UnsupportedType(String),
}

/// Parse one file's bytes. `file_name` is the base name (e.g.
/// `000_ee2825b76e43200a.txt`); it selects the format and gives the default id.
///
/// Order of checks: file type, size, decoding ([`decode`]: empty, binary,
/// encoding), then the format's own rules (wire: missing or invisible title
/// and category / layout; Markdown: front matter, dates, missing or
/// invisible title), then the body's nesting and HTML size ([`Limits`]). All
/// text fields of the result are trimmed, single-line plain text with at
/// least one visible character and none that XML forbids; `content_html` is
/// sanitised, at most `max_html_bytes` long, free of XML-forbidden
/// characters and never contains `]]>`.
pub fn parse(file_name: &str, bytes: &[u8], opts: &IngestOptions) -> Result<Article, IngestError> {
    let format = crate::article::Format::from_file_name(file_name)
        .ok_or_else(|| IngestError::UnsupportedType(file_name.to_string()))?;
    if bytes.len() as u64 > opts.max_bytes {
        return Err(IngestError::TooLarge {
            size: bytes.len() as u64,
            limit: opts.max_bytes,
        });
    }
    let decoded = decode(bytes)?;
    let stem = file_stem(file_name);
    match format {
        crate::article::Format::Wire => wire::parse(stem, decoded, &opts.limits),
        crate::article::Format::Markdown => markdown::parse(stem, decoded, opts),
    }
}

/// The file name without its last extension: the default article id.
pub fn file_stem(file_name: &str) -> &str {
    match file_name.rfind('.') {
        Some(dot) if dot > 0 => &file_name[..dot],
        _ => file_name,
    }
}

#[cfg(test)]
mod tests;
