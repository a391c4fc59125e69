//! Markdown articles with optional YAML (`---`) or TOML (`+++`) front matter.

use super::text::{guess_language, is_visible, one_line};
use super::{Decoded, IngestError, IngestOptions, Limits, html, yaml};
use crate::article::{Article, Format};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use regex::Regex;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A front-matter value reduced to what feedwire reads. Dates stay text so
/// YAML strings and native TOML datetimes go through the same parser.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    List(Vec<Value>),
    /// A nested table/mapping, or a null: carries no meaning for us.
    Other,
}

type FrontMatter = BTreeMap<String, Value>;

pub fn parse(stem: &str, decoded: Decoded, opts: &IngestOptions) -> Result<Article, IngestError> {
    let (kind, fm, body) = split_front_matter(&decoded.text)?;
    let fm = match kind {
        Some("yaml") => parse_yaml(fm, &opts.limits)?,
        Some("toml") => parse_toml(fm)?,
        _ => FrontMatter::new(),
    };
    let (heading, content_html) = render(body, !fm.contains_key("title"), &opts.limits)?;

    // A title that is there but shows as nothing is worse than none: say so.
    let title = match line(&fm, "title")?.or(heading) {
        Some(t) if is_visible(&t) => t,
        Some(t) if !t.is_empty() => return Err(IngestError::Invisible("title".to_string())),
        _ => return Err(IngestError::Missing("title".to_string())),
    };

    let id = text(&fm, "id")?.unwrap_or_else(|| stem.to_string());
    // `date` is the documented key; `published` is accepted as a synonym.
    let published = match fm.contains_key("date") {
        true => date(&fm, "date", opts)?,
        false => date(&fm, "published", opts)?,
    };
    let mut updated = date(&fm, "updated", opts)?;
    // An `updated` before the publication date is an editing slip; clamp it
    // rather than reject an otherwise fine article.
    if let (Some(p), Some(u)) = (published, updated)
        && u < p
    {
        updated = Some(p);
    }
    let authors = merged_list(&fm, "authors", "author")?;
    let categories = merged_list(&fm, "categories", "category")?;
    let tags = list(&fm, "tags")?;
    let lead = text(&fm, "summary")?;
    let image = text(&fm, "image")?.filter(|u| is_absolute_http_url(u));
    let language = guess_language(&format!("{title}\n{body}")).to_string();

    Ok(Article {
        id,
        format: Format::Markdown,
        encoding: decoded.encoding,
        title,
        categories,
        tags,
        dateline: None,
        lead,
        authors,
        paragraphs: Vec::new(),
        captions: Vec::new(),
        see_more: false,
        content_html,
        image,
        published,
        updated,
        front_matter: kind.map(String::from),
        language,
        lifecycle: Default::default(),
    })
}

/// `(kind, front matter text, body)`. The opening fence must be the file's
/// first line; the closing fence is the next line consisting of the same fence.
fn split_front_matter(text: &str) -> Result<(Option<&'static str>, &str, &str), IngestError> {
    let first_line = text.split('\n').next().unwrap_or("");
    let (kind, fence) = match first_line.trim_end() {
        "---" => ("yaml", "---"),
        "+++" => ("toml", "+++"),
        _ => return Ok((None, "", text)),
    };
    let start = first_line.len() + 1;
    if start > text.len() {
        return Err(unclosed(kind, fence));
    }
    let mut offset = start;
    for line in text[start..].split_inclusive('\n') {
        if line.trim_end() == fence {
            let fm = &text[start..offset];
            let body = &text[offset + line.len()..];
            return Ok((Some(kind), fm, body));
        }
        offset += line.len();
    }
    Err(unclosed(kind, fence))
}

fn unclosed(kind: &str, fence: &str) -> IngestError {
    IngestError::FrontMatter(format!(
        "the {} front matter opened by `{fence}` on line 1 is never closed by a `{fence}` line",
        kind.to_uppercase()
    ))
}

fn parse_yaml(src: &str, limits: &Limits) -> Result<FrontMatter, IngestError> {
    yaml::check(src, limits)?;
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(src).map_err(|e| {
        // The parser counts lines from the start of the front matter; the
        // editor sees the file, where the opening `---` is line 1.
        static LINE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\bline (\d+)").expect("valid regex"));
        let msg = e.to_string();
        let msg = LINE.replace_all(&msg, |c: &regex::Captures| match c[1].parse::<usize>() {
            Ok(n) => format!("line {}", n + 1),
            Err(_) => c[0].to_string(),
        });
        IngestError::FrontMatter(format!("YAML error: {msg}"))
    })?;
    match value {
        serde_yaml_ng::Value::Null => Ok(FrontMatter::new()),
        serde_yaml_ng::Value::Mapping(map) => {
            let mut out = FrontMatter::new();
            for (k, v) in map {
                let Value::Text(key) = from_yaml(k) else {
                    return Err(IngestError::FrontMatter(
                        "YAML keys must be plain words like `title`".to_string(),
                    ));
                };
                out.insert(key, from_yaml(v));
            }
            Ok(out)
        }
        _ => Err(IngestError::FrontMatter(
            "YAML front matter must be `key: value` lines".to_string(),
        )),
    }
}

fn from_yaml(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::String(s) => Value::Text(s),
        Y::Number(n) => Value::Text(n.to_string()),
        Y::Bool(b) => Value::Text(b.to_string()),
        Y::Sequence(items) => Value::List(items.into_iter().map(from_yaml).collect()),
        Y::Tagged(t) => from_yaml(t.value),
        Y::Null | Y::Mapping(_) => Value::Other,
    }
}

fn parse_toml(src: &str) -> Result<FrontMatter, IngestError> {
    let table: toml::Table = src.parse().map_err(|e: toml::de::Error| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                // +1 for the opening `+++` line, +1 because lines count from 1.
                let line = src[..span.start.min(src.len())].matches('\n').count() + 2;
                IngestError::FrontMatter(format!("TOML error at line {line}: {msg}"))
            }
            None => IngestError::FrontMatter(format!("TOML error: {msg}")),
        }
    })?;
    Ok(table.into_iter().map(|(k, v)| (k, from_toml(v))).collect())
}

fn from_toml(v: toml::Value) -> Value {
    use toml::Value as T;
    match v {
        T::String(s) => Value::Text(s),
        T::Integer(i) => Value::Text(i.to_string()),
        T::Float(f) => Value::Text(f.to_string()),
        T::Boolean(b) => Value::Text(b.to_string()),
        T::Datetime(d) => Value::Text(d.to_string()),
        T::Array(items) => Value::List(items.into_iter().map(from_toml).collect()),
        T::Table(_) => Value::Other,
    }
}

/// A single-line text field; empty or invisible counts as absent.
fn text(fm: &FrontMatter, key: &str) -> Result<Option<String>, IngestError> {
    Ok(line(fm, key)?.filter(|s| is_visible(s)))
}

/// A single-line text field as written (only an empty one is absent).
fn line(fm: &FrontMatter, key: &str) -> Result<Option<String>, IngestError> {
    match fm.get(key) {
        None | Some(Value::Other) => Ok(None),
        Some(Value::Text(s)) => Ok(Some(one_line(s)).filter(|s| !s.is_empty())),
        Some(Value::List(_)) => Err(IngestError::FrontMatter(format!(
            "`{key}` must be a single value, not a list"
        ))),
    }
}

/// A list field; a single value becomes a one-element list.
fn list(fm: &FrontMatter, key: &str) -> Result<Vec<String>, IngestError> {
    let items = match fm.get(key) {
        None | Some(Value::Other) => return Ok(Vec::new()),
        Some(Value::Text(s)) => vec![s.clone()],
        Some(Value::List(items)) => items
            .iter()
            .map(|item| match item {
                Value::Text(s) => Ok(s.clone()),
                _ => Err(IngestError::FrontMatter(format!(
                    "`{key}` must be a list of plain values"
                ))),
            })
            .collect::<Result<_, _>>()?,
    };
    let mut out: Vec<String> = Vec::new();
    for item in items.iter().map(|s| one_line(s)) {
        if is_visible(&item) && !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

/// `authors` + `author` (or `categories` + `category`), in that order, without duplicates.
fn merged_list(fm: &FrontMatter, plural: &str, singular: &str) -> Result<Vec<String>, IngestError> {
    let mut out = list(fm, plural)?;
    for item in list(fm, singular)? {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

fn date(
    fm: &FrontMatter,
    key: &str,
    opts: &IngestOptions,
) -> Result<Option<DateTime<FixedOffset>>, IngestError> {
    let raw = match fm.get(key) {
        None | Some(Value::Other) => return Ok(None),
        Some(Value::Text(s)) => s.trim(),
        Some(Value::List(_)) => {
            return Err(IngestError::Date {
                field: key.to_string(),
                reason: "expected one date, found a list".to_string(),
            });
        }
    };
    let err = |reason: String| IngestError::Date {
        field: key.to_string(),
        reason,
    };
    let dt = parse_date(raw, opts).map_err(err)?;
    let earliest = Utc
        .with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let latest = opts.now + chrono::Duration::hours(24);
    if dt < earliest {
        return Err(err(format!(
            "{} is implausible: it is before 1990",
            dt.to_rfc3339()
        )));
    }
    if dt > latest {
        return Err(err(format!(
            "{} is implausible: it is more than a day in the future (now is {})",
            dt.to_rfc3339(),
            opts.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(Some(dt))
}

/// RFC 3339 with an offset; or a local date-time / bare date read in
/// `opts.time_zone`.
fn parse_date(raw: &str, opts: &IngestOptions) -> Result<DateTime<FixedOffset>, String> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
        return Ok(dt);
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    let Some(local) = local else {
        return Err(format!(
            "`{raw}` is not a date; write RFC 3339 such as 2024-09-15T19:30:00+07:00 (or 2024-09-15)"
        ));
    };
    match opts.time_zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(dt) => Ok(dt.fixed_offset()),
        chrono::LocalResult::Ambiguous(earliest, _) => Ok(earliest.fixed_offset()),
        chrono::LocalResult::None => Err(format!(
            "`{raw}` does not exist in time zone {}",
            opts.time_zone
        )),
    }
}

fn is_absolute_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Render the body to sanitised HTML. With `take_heading`, the first level-1
/// heading is removed from the output and its text returned (it is the title).
///
/// Rendering stops early when the Markdown nests deeper than
/// `limits.max_nesting` or the HTML outgrows `limits.max_html_bytes`, so
/// neither the HTML writer nor the sanitiser ever sees such input.
fn render(
    body: &str,
    take_heading: bool,
    limits: &Limits,
) -> Result<(Option<String>, String), IngestError> {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
    let mut heading: Option<String> = None;
    let mut in_heading = false;
    let events = Parser::new_ext(body, options).filter(|event| {
        if !take_heading || (heading.is_some() && !in_heading) {
            return true;
        }
        match event {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) if heading.is_none() => {
                in_heading = true;
                heading = Some(String::new());
                false
            }
            Event::End(TagEnd::Heading(HeadingLevel::H1)) if in_heading => {
                in_heading = false;
                false
            }
            Event::Text(t) | Event::Code(t) if in_heading => {
                heading.get_or_insert_default().push_str(t);
                false
            }
            Event::SoftBreak | Event::HardBreak if in_heading => {
                heading.get_or_insert_default().push(' ');
                false
            }
            _ => !in_heading,
        }
    });
    let too_deep = Cell::new(false);
    let raw_html = Cell::new(false);
    let mut depth = 0usize;
    let events = events.map_while(|event| {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Html(_) | Event::InlineHtml(_) => raw_html.set(true),
            _ => {}
        }
        if depth > limits.max_nesting {
            too_deep.set(true);
            return None;
        }
        Some(event)
    });
    let mut raw = Capped {
        out: String::new(),
        limit: limits.max_html_bytes,
    };
    let written = pulldown_cmark::html::write_html_fmt(&mut raw, events);
    if too_deep.get() {
        return Err(IngestError::TooDeep {
            what: "quotes, lists or inline markup".to_string(),
            limit: limits.max_nesting,
        });
    }
    if written.is_err() {
        return Err(IngestError::HtmlTooLarge {
            limit: limits.max_html_bytes,
        });
    }
    let heading = heading.map(|h| one_line(&h)).filter(|h| !h.is_empty());
    Ok((heading, html::sanitize(&raw.out, !raw_html.get(), limits)?))
}

/// A string that refuses to grow past `limit` bytes, so that 40 KB of
/// Markdown cannot first become megabytes of HTML and only then be refused.
struct Capped {
    out: String,
    limit: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.out.len() + s.len() > self.limit {
            return Err(std::fmt::Error);
        }
        self.out.push_str(s);
        Ok(())
    }
}
