//! `feedwire status`: what the catalog knows, for an operator.

use crate::catalog::Catalog;
use crate::config::Config;
use anyhow::Result;
use std::fmt::Write;

pub fn render(cfg: &Config) -> Result<String> {
    let catalog = Catalog::open_existing(&cfg.catalog_path(), cfg.time_zone()?)?;
    let mut out = String::new();
    writeln!(out, "catalog   {}", cfg.catalog_path().display())?;
    writeln!(
        out,
        "articles  {} in the catalog (folder {})",
        catalog.article_count()?,
        cfg.paths.articles.display()
    )?;
    let feeds = catalog.published_feeds()?;
    writeln!(
        out,
        "feeds     {} published under {}",
        feeds.len(),
        cfg.paths.feeds.display()
    )?;
    for f in &feeds {
        writeln!(
            out,
            "  {:<40} updated {}",
            f.path,
            f.published_at.with_timezone(&cfg.time_zone()?).to_rfc3339()
        )?;
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
