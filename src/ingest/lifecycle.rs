//! An article's lifecycle as a file states it: `embargo`, `status`,
//! `correction` and `kill_reason`, from Markdown front matter or from a wire
//! file's sidecar (`<name>.meta.toml` beside it; wire copy has no place for
//! them). Pure, like the rest of ingest: the caller reads the sidecar.

use super::text::{is_visible, one_line};
use super::{IngestError, IngestOptions};
use crate::article::{Lifecycle, Status};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};

/// The sidecar of an article file: same folder, the article's file name
/// without its extension, then `.meta.toml` (`003_x.txt` → `003_x.meta.toml`).
pub fn sidecar_name(article_file_name: &str) -> String {
    format!("{}.meta.toml", super::file_stem(article_file_name))
}

/// Parse a sidecar. Unknown keys are errors (a misspelt `embarg` silently
/// ignored would publish embargoed copy).
pub fn parse_sidecar(bytes: &[u8], opts: &IngestOptions) -> Result<Lifecycle, IngestError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| IngestError::Sidecar("it is not UTF-8 text".into()))?;
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| IngestError::Sidecar(format!("it is not valid TOML: {}", e.message())))?;
    let mut raw = RawLifecycle::default();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Datetime(d) => d.to_string(),
            other => {
                return Err(IngestError::Sidecar(format!(
                    "`{key}` must be text or a date, not {}",
                    other.type_str()
                )));
            }
        };
        match key.as_str() {
            "embargo" => raw.embargo = Some(text),
            "status" => raw.status = Some(text),
            "correction" => raw.correction = Some(text),
            "kill_reason" => raw.kill_reason = Some(text),
            _ => {
                return Err(IngestError::Sidecar(format!(
                    "unknown key `{key}` (feedwire reads embargo, status, correction, kill_reason)"
                )));
            }
        }
    }
    raw.resolve(opts)
        .map_err(|e| IngestError::Sidecar(e.to_string()))
}

/// The four fields as written, before checking.
#[derive(Debug, Default)]
pub(super) struct RawLifecycle {
    pub embargo: Option<String>,
    pub status: Option<String>,
    pub correction: Option<String>,
    pub kill_reason: Option<String>,
}

impl RawLifecycle {
    pub(super) fn resolve(self, opts: &IngestOptions) -> Result<Lifecycle, IngestError> {
        let status = match self
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                IngestError::FrontMatter(format!(
                    "`status: {s}` is not a status: write usable, withheld or canceled"
                ))
            })?),
        };
        let embargo = match self
            .embargo
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(raw) => Some(embargo_time(raw, opts)?),
        };
        let note = |s: Option<String>| s.map(|s| one_line(&s)).filter(|s| is_visible(s));
        Ok(Lifecycle {
            status,
            embargo,
            correction: note(self.correction),
            kill_reason: note(self.kill_reason),
        })
    }
}

/// An embargo moment: RFC 3339, or a local date-time read in the site's time
/// zone. Unlike a publication date it may lie far ahead (next week's
/// budget), but not absurdly: before 1990 or more than ten years out is a
/// typing slip.
pub fn embargo_time(raw: &str, opts: &IngestOptions) -> Result<DateTime<FixedOffset>, IngestError> {
    let err = |reason: String| IngestError::Date {
        field: "embargo".to_string(),
        reason,
    };
    let dt = super::markdown::parse_date(raw, opts).map_err(err)?;
    let earliest = Utc
        .with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    if dt < earliest || dt > opts.now + chrono::Duration::days(3660) {
        return Err(err(format!(
            "{} is implausible for an embargo",
            dt.to_rfc3339()
        )));
    }
    Ok(dt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> IngestOptions {
        IngestOptions {
            time_zone: chrono_tz::Asia::Ho_Chi_Minh,
            max_bytes: 1 << 20,
            now: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            limits: Default::default(),
        }
    }

    #[test]
    fn sidecars_are_read_and_checked() {
        let ok = parse_sidecar(
            b"embargo = \"2026-12-24 08:00\"\nstatus = \"withheld\"\ncorrection = \"S\xe1\xbb\xada t\xc3\xaan\"\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(ok.status, Some(Status::Withheld));
        assert_eq!(
            ok.embargo.unwrap().to_rfc3339(),
            "2026-12-24T08:00:00+07:00",
            "offset-less times are read in the site's zone"
        );
        assert_eq!(ok.correction.as_deref(), Some("Sửa tên"));
        let native = parse_sidecar(b"embargo = 2026-12-24T01:00:00Z\n", &opts()).unwrap();
        assert_eq!(
            native.embargo.unwrap().to_rfc3339(),
            "2026-12-24T01:00:00+00:00"
        );
        let killed = parse_sidecar(
            b"status = \"canceled\"\nkill_reason = \"Sai s\xe1\xbb\x91 li\xe1\xbb\x87u\"\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(killed.status, Some(Status::Canceled));
        assert_eq!(killed.kill_reason.as_deref(), Some("Sai số liệu"));
        for (bad, want) in [
            (&b"embarg = \"2026-12-24\"\n"[..], "unknown key `embarg`"),
            (b"status = \"pending\"\n", "is not a status"),
            (b"embargo = \"tomorrow\"\n", "bad date in `embargo`"),
            (b"embargo = \"1970-01-01\"\n", "implausible"),
            (b"status = 3\n", "must be text"),
            (b"status = \n", "not valid TOML"),
        ] {
            let err = parse_sidecar(bad, &opts()).unwrap_err().to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        assert_eq!(sidecar_name("003_x.txt"), "003_x.meta.toml");
    }
}
