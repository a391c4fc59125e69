//! `feedwire status`: what the catalog knows, for an operator.

use crate::catalog::Catalog;
use crate::config::Config;
use anyhow::Result;
use std::fmt::Write;

pub fn render(cfg: &Config) -> Result<String> {
    let catalog = Catalog::open_existing(&cfg.catalog_path(), cfg.time_zone()?)?;
    let mut out = String::new();
    writeln!(out, "catalog   {}", cfg.catalog_path().describe())?;
    writeln!(
        out,
        "articles  {} in the catalog (folder {})",
        catalog.article_count()?,
        cfg.paths.articles.display()
    )?;
    let feeds = catalog.published_feeds()?;
    let mut places = Vec::new();
    if cfg.publish.folder {
        places.push(cfg.paths.feeds.display().to_string());
    }
    if let Some(location) = &cfg.publish.location {
        places.push(location.to_string());
    }
    writeln!(
        out,
        "feeds     {} published to {}",
        feeds.len(),
        places.join(" and ")
    )?;
    for f in &feeds {
        writeln!(
            out,
            "  {:<40} updated {}",
            f.path,
            f.published_at.with_timezone(&cfg.time_zone()?).to_rfc3339()
        )?;
    }
    let held = catalog.held_removals()?;
    if !held.is_empty() {
        let approved = held.iter().filter(|h| h.approved).count();
        writeln!(
            out,
            "held      {} removal(s) held back: their files disappeared at once (more than watch.max_removals = {}), so the articles stay in the feeds and partners were told nothing{}",
            held.len(),
            cfg.watch.max_removals,
            if approved > 0 {
                format!("; {approved} approved, applied at the daemon's next look")
            } else {
                String::new()
            }
        )?;
        writeln!(
            out,
            "          to proceed: restore the files (the hold ends by itself), or run `feedwire apply-removals` if the deletion was intended"
        )?;
        for h in held.iter().take(50) {
            writeln!(
                out,
                "  {} (article {}, held since {}){}",
                h.path,
                h.id,
                h.held_at.with_timezone(&cfg.time_zone()?).to_rfc3339(),
                if h.approved { " approved" } else { "" }
            )?;
        }
        if held.len() > 50 {
            writeln!(out, "  … and {} more", held.len() - 50)?;
        }
    }
    let overrides = catalog.overrides()?;
    if !overrides.is_empty() {
        writeln!(out, "editors   {} override(s) in force", overrides.len())?;
        let tz = cfg.time_zone()?;
        for (id, o) in &overrides {
            let mut parts = Vec::new();
            if let Some(s) = o.status {
                parts.push(s.as_str().to_string());
            }
            if let Some(t) = o.embargo_until {
                parts.push(format!(
                    "embargoed until {}",
                    t.with_timezone(&tz).to_rfc3339()
                ));
            }
            if let Some(r) = &o.reason {
                parts.push(format!("reason: {r}"));
            }
            if let Some(c) = &o.correction {
                parts.push(format!("correction: {c}"));
            }
            writeln!(out, "  {id}: {}", parts.join("; "))?;
        }
    }
    let rejections = catalog.rejections()?;
    writeln!(out, "rejected  {} file(s)", rejections.len())?;
    for r in &rejections {
        writeln!(out, "  {}: {}", r.path, r.reason)?;
    }
    for line in crate::syndicate::status_lines(&catalog)? {
        writeln!(out, "{line}")?;
    }
    Ok(out)
}
