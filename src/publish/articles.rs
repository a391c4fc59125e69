//! Per-article documents (ninjs, `ninjs/<id>.json`): through the same gate
//! and to the same targets as the feeds, but never into the in-memory
//! [`Store`](super::Store) and without a recorded version. There is one per
//! article, 100,000 in a large archive: HTTP renders them from the catalog
//! on demand instead, and a version record per article would only repeat
//! the article's own dates.

use super::{Publisher, Report, verify};
use crate::render::Document;
use anyhow::{Context, Result};

impl Publisher {
    /// Whether every target holds exactly this document (asking a remote
    /// one once): a cheap probe of whether the article documents there are
    /// still what the catalog says.
    pub fn holds_everywhere(&self, doc: &Document) -> Result<bool> {
        let hash = blake3::hash(&doc.bytes);
        for target in &self.targets {
            target
                .look_up(&[doc.path.as_str()])
                .with_context(|| format!("cannot read {}", target.describe()))?;
            if !target.holds(&doc.path, &hash) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Gate `docs`, write those whose bytes changed to every target, and
    /// remove `gone` from every target (a path a target does not hold is
    /// fine). A refused document keeps its last good version, like a feed.
    pub fn publish_articles(&mut self, docs: Vec<Document>, gone: &[String]) -> Result<Report> {
        use rayon::prelude::*;
        let gated: Vec<std::result::Result<blake3::Hash, String>> = docs
            .par_iter()
            .map(|doc| {
                verify(doc)
                    .map(|()| blake3::hash(&doc.bytes))
                    .map_err(|e| format!("{e:#}"))
            })
            .collect();
        let mut report = Report::default();
        let mut passed = Vec::new();
        for (doc, gate) in docs.iter().zip(gated) {
            // A category whose slug is `ninjs` has its feeds in the same
            // folder: its `feed.json` wins over an article with id `feed`.
            let gate = gate.and_then(|hash| match self.versions.contains_key(&doc.path) {
                true => Err(format!(
                    "{} is a feed's path (a category with the slug `ninjs`); give the article another id or rename the category",
                    doc.path
                )),
                false => Ok(hash),
            });
            match gate {
                Ok(hash) => passed.push((doc, hash)),
                Err(reason) => {
                    tracing::error!(document = %doc.path, error = %reason, "refusing to publish a broken article document; the last good version stays");
                    report.refused.push((doc.path.clone(), reason));
                }
            }
        }
        let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
        let paths: Vec<&str> = passed.iter().map(|(doc, _)| doc.path.as_str()).collect();
        let mut written = std::collections::BTreeSet::new();
        for target in &mut self.targets {
            target
                .look_up(&paths)
                .with_context(|| format!("cannot publish to {}", target.describe()))?;
            let changed: Vec<(&Document, blake3::Hash)> = passed
                .par_iter()
                .filter(|(doc, hash)| !target.holds(&doc.path, hash))
                .map(|(doc, hash)| (*doc, *hash))
                .collect();
            target
                .write(&changed)
                .with_context(|| format!("cannot publish to {}", target.describe()))?;
            target
                .remove(&gone)
                .with_context(|| format!("cannot remove documents from {}", target.describe()))?;
            written.extend(changed.iter().map(|(doc, _)| doc.path.clone()));
        }
        for (doc, _) in passed {
            if written.contains(&doc.path) {
                report.written.push(doc.path.clone());
            } else {
                report.unchanged += 1;
            }
        }
        Ok(report)
    }
}
