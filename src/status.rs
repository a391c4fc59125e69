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
    if cfg.catalog.url.is_some() {
        for line in cluster_lines(&catalog, cfg)? {
            writeln!(out, "{line}")?;
        }
    }
    Ok(out)
}

/// The instances on a PostgreSQL catalog, the leader and its lease.
fn cluster_lines(catalog: &Catalog, cfg: &Config) -> Result<Vec<String>> {
    let lease_length = cfg.cluster_settings().lease();
    let tz = cfg.time_zone()?;
    let ago = |d: chrono::TimeDelta| format!("{:.1} s", d.num_milliseconds().max(0) as f64 / 1e3);
    let mut out = Vec::new();
    let instances = catalog.instances()?;
    match catalog.lease()? {
        // Only `build` or `migrate-catalog` have used it: nothing to tell.
        None if instances.is_empty() => return Ok(out),
        None => out.push("cluster   no leader yet".into()),
        Some(l) if l.expires_at > l.now => out.push(format!(
            "cluster   leader {} (term {}) since {}; lease renewed {} ago, expires in {} (cluster.lease_secs = {})",
            l.holder_name,
            l.term,
            l.acquired_at.with_timezone(&tz).to_rfc3339(),
            ago(l.now - l.renewed_at),
            ago(l.expires_at - l.now),
            lease_length.as_secs(),
        )),
        Some(l) => out.push(format!(
            "cluster   no leader: the lease of {} (term {}) lapsed {} ago; a standby takes it at its next attempt (a stopped cluster has none)",
            l.holder_name,
            l.term,
            ago(l.now - l.expires_at),
        )),
    }
    let alive = chrono::TimeDelta::from_std(lease_length).unwrap_or_default();
    for i in instances {
        let state = if i.role == "stopped" {
            "stopped"
        } else if i.now - i.seen_at > alive {
            "gone"
        } else {
            i.role.as_str()
        };
        let http = if i.http.is_empty() {
            String::new()
        } else {
            format!(" http {}", i.http)
        };
        out.push(format!(
            "  instance {} {state}{http}; seen {} ago, started {}",
            i.name,
            ago(i.now - i.seen_at),
            i.started_at.with_timezone(&tz).to_rfc3339(),
        ));
    }
    Ok(out)
}
