//! `feedwire check`: what ingest understood from files, without publishing.
//! The JSON form is one object per file per line, stable for scripts.

use crate::article::Article;
use crate::ingest::{self, IngestOptions};
use serde_json::{Value, json};
use std::path::Path;

/// Check one file; the JSON report and whether it passed.
pub fn check_file(path: &Path, opts: &IngestOptions) -> (Value, Option<Article>) {
    let file = path.display().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = match std::fs::metadata(path) {
        Err(e) => Err(format!("cannot read the file: {e}")),
        Ok(m) if m.len() > opts.max_bytes => Err(ingest::IngestError::TooLarge {
            size: m.len(),
            limit: opts.max_bytes,
        }
        .to_string()),
        Ok(_) => match std::fs::read(path) {
            Err(e) => Err(format!("cannot read the file: {e}")),
            Ok(bytes) => ingest::parse(&name, &bytes, opts).map_err(|e| e.to_string()),
        },
    };
    match result {
        Ok(a) => (report(&file, &a), Some(a)),
        Err(error) => (json!({ "file": file, "ok": false, "error": error }), None),
    }
}

fn report(file: &str, a: &Article) -> Value {
    json!({
        "file": file,
        "ok": true,
        "error": null,
        "format": a.format,
        "encoding": a.encoding,
        "id": a.id,
        "title": a.title,
        "category": a.category(),
        "categories": a.categories,
        "tags": a.tags,
        "dateline": a.dateline,
        "lead": a.lead,
        "authors": a.authors,
        "captions": a.captions.len(),
        "paragraphs": a.paragraphs.len(),
        "see_more": a.see_more,
        "image": a.image,
        "front_matter": a.front_matter,
        "language": a.language,
        "published": a.published.map(|d| d.to_rfc3339()),
        "updated": a.updated.map(|d| d.to_rfc3339()),
    })
}

/// A human-readable rendering of a report.
pub fn describe(v: &Value) -> String {
    let file = v["file"].as_str().unwrap_or("?");
    if v["ok"] != true {
        return format!("{file}: error: {}", v["error"].as_str().unwrap_or("?"));
    }
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "—".into())
    };
    let list = |k: &str| {
        let items: Vec<&str> = v[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "—".to_string()
        } else {
            items.join(", ")
        }
    };
    let mut out = format!("{file}: ok ({}, {})\n", s("format"), s("encoding"));
    out += &format!("  id          {}\n", s("id"));
    out += &format!("  title       {}\n", s("title"));
    out += &format!("  categories  {}\n", list("categories"));
    out += &format!("  dateline    {}\n", s("dateline"));
    let lead = s("lead");
    let lead: String = if lead.chars().count() > 80 {
        lead.chars().take(79).collect::<String>() + "…"
    } else {
        lead
    };
    out += &format!("  lead        {lead}\n");
    out += &format!("  authors     {}\n", list("authors"));
    out += &format!(
        "  body        {} paragraphs, {} captions\n",
        v["paragraphs"], v["captions"]
    );
    out += &format!(
        "  published   {}\n",
        v["published"].as_str().unwrap_or("when first seen")
    );
    out
}
