//! Ingest: bytes in, [`Article`] or a typed [`IngestError`] out.
//!
//! This stage is pure on purpose: it never touches the file system, the clock
//! or the catalog, so it can run on any thread, be fuzzed, and be called by
//! `feedwire check` exactly as the daemon calls it. Everything it needs from
//! the outside (time zone, size limit, "now" for plausibility checks) comes in
//! [`IngestOptions`].

mod decode;
mod html;
mod markdown;
mod text;
mod wire;

pub use decode::{Decoded, decode};

use crate::article::Article;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Bump whenever parsing changes what an article says: the catalog then
/// re-reads every file once instead of trusting unchanged file stamps.
pub const REVISION: u32 = 1;

/// What ingest needs to know about the world.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Offset-less front-matter dates are read in this zone.
    pub time_zone: Tz,
    /// Files larger than this are rejected before decoding.
    pub max_bytes: u64,
    /// Dates after `now + 24h` or before 1990 are rejected as absurd.
    pub now: DateTime<Utc>,
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
    #[error("not an article: {0}")]
    Layout(String),
    #[error("unsupported file type `{0}` (feedwire reads .txt wire files and .md Markdown)")]
    UnsupportedType(String),
}

/// Parse one file's bytes. `file_name` is the base name (e.g.
/// `000_ee2825b76e43200a.txt`); it selects the format and gives the default id.
///
/// Order of checks: file type, size, decoding ([`decode`]: empty, binary,
/// encoding), then the format's own rules (wire: missing title / layout;
/// Markdown: front matter, dates, missing title). All text fields of the
/// result are NFC, trimmed, single-line plain text; `content_html` is
/// sanitised and never contains `]]>`.
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
        crate::article::Format::Wire => wire::parse(stem, decoded),
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
