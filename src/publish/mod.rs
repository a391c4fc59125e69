//! Publish: rendered documents → publish targets (the feeds folder,
//! [`Folder`]; object storage, [`S3`]) and the in-memory set HTTP serves,
//! through a gate that never lets a broken document out.
//!
//! Every document is parsed back by the same crates a reader would use before
//! it replaces anything; a document that fails keeps the last good one in
//! place and the failure is reported. A target replaces each document
//! atomically ([`Folder`]: temp file in the same folder, fsync, rename, fsync
//! of the folder; [`S3`]: one conditional PUT per object), and a document whose bytes did not change is not
//! rewritten, so file mtimes and HTTP validators only move when content does.
//! Each version's first-publish time is its `Last-Modified`. Archive pages
//! go to the targets like any document but not into the in-memory store.

mod articles;
mod atomic;
mod folder;
mod gate;
mod s3;
mod store;

pub use atomic::{sync_dir, write_all_synced, write_synced};
pub use folder::Folder;
pub use gate::verify;
pub use s3::S3;
pub use store::{Served, Store};
pub(crate) use store::{brotli, gzip};

use crate::config::Config;
use crate::render::{ArchivePath, Document};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// What one publish round did.
#[derive(Debug, Default)]
pub struct Report {
    /// Paths (relative to the feeds folder) whose bytes changed and were written.
    pub written: Vec<String>,
    pub unchanged: usize,
    /// Documents the gate refused, with the reason; their last good version stays.
    pub refused: Vec<(String, String)>,
    /// Versions first published in this round: the caller persists them, so
    /// `Last-Modified` survives restarts.
    pub new_versions: Vec<(String, Version)>,
}

impl Report {
    /// Add another round's results to this one.
    pub fn absorb(&mut self, other: Report) {
        self.written.extend(other.written);
        self.unchanged += other.unchanged;
        self.refused.extend(other.refused);
        self.new_versions.extend(other.new_versions);
    }
}

/// One version of a published document: its content hash and when it was
/// first published. HTTP's `Last-Modified` is that moment, never a date
/// taken from the entries: after a deletion the newest entry is older than
/// before, and a client asking `If-Modified-Since` must still see the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// First 32 hex digits of the BLAKE3 hash of the bytes.
    pub hash: String,
    pub first_published: DateTime<Utc>,
}

/// Where published documents are written: a folder on local disk
/// ([`Folder`]), object storage ([`S3`]). Documents reach a target only after
/// the gate, and only when their bytes differ from what the target holds, so
/// an unchanged feed is never rewritten (its mtime, and any CDN's cache of
/// it, stay put).
pub trait Target: Send + Sync {
    /// For logs and errors: `the feeds folder /srv/feeds`.
    fn describe(&self) -> String;
    /// Learn what the target holds at these paths, where it cannot tell
    /// cheaply (a remote store is asked once per path, all paths at once),
    /// so that [`Target::holds`] need not ask. Called before `holds`.
    fn look_up(&self, _paths: &[&str]) -> Result<()> {
        Ok(())
    }
    /// Does the target hold exactly these bytes at `path` already?
    fn holds(&self, path: &str, hash: &blake3::Hash) -> bool;
    /// Write the documents, each atomically (a reader sees the old or the new
    /// version, never a mix), all durably before returning.
    fn write(&mut self, docs: &[(&Document, blake3::Hash)]) -> Result<()>;
    /// Remove documents (an article's ninjs document when the article is
    /// withheld again); a path the target does not hold is not an error.
    fn remove(&mut self, paths: &[&str]) -> Result<()>;
}

/// Documents with the gate's verdict on each: the content hash of those
/// that passed, the reason for those that did not. Checking is pure, so a
/// round's documents can be checked on another thread while an earlier
/// round is written ([`Checked::one_by_one`]).
pub struct Checked {
    docs: Vec<Document>,
    gated: Vec<std::result::Result<blake3::Hash, String>>,
}

impl Checked {
    /// Check each document on rayon's threads.
    pub fn in_parallel(docs: Vec<Document>) -> Checked {
        use rayon::prelude::*;
        let gated = docs.par_iter().map(check).collect();
        Checked { docs, gated }
    }

    /// Check each document in turn on the calling thread: for a thread of
    /// its own beside a round that keeps rayon's threads busy.
    pub fn one_by_one(docs: Vec<Document>) -> Checked {
        let gated = docs.iter().map(check).collect();
        Checked { docs, gated }
    }
}

fn check(doc: &Document) -> std::result::Result<blake3::Hash, String> {
    verify(doc)
        .map(|()| blake3::hash(&doc.bytes))
        .map_err(|e| format!("{e:#}"))
}

/// A document that passed the gate in a publish round, as the round's
/// `record` step sees it.
#[derive(Debug, Clone, Copy)]
pub struct Published<'a> {
    pub doc: &'a Document,
    pub version: &'a Version,
    /// This version was first published in this round.
    pub new: bool,
}

pub struct Publisher {
    targets: Vec<Box<dyn Target>>,
    /// The current version of each path, seeded from the catalog's record.
    versions: HashMap<String, Version>,
    store: Option<Store>,
}

/// The targets the configuration asks for: the feeds folder
/// (`publish.folder`, the default) and object storage (`publish.target`).
pub fn targets(cfg: &Config) -> Result<Vec<Box<dyn Target>>> {
    let mut targets: Vec<Box<dyn Target>> = Vec::new();
    if cfg.publish.folder {
        targets.push(Box::new(Folder::new(cfg.paths.feeds.clone())?));
    }
    if cfg.publish.location.is_some() {
        targets.push(Box::new(S3::new(cfg)?));
    }
    Ok(targets)
}

impl Publisher {
    /// Publish to these targets (and the in-memory store, when given).
    /// `known` is what the catalog recorded of earlier rounds (path → version).
    pub fn new(
        targets: Vec<Box<dyn Target>>,
        store: Option<Store>,
        known: HashMap<String, Version>,
    ) -> Publisher {
        Publisher {
            targets,
            versions: known,
            store,
        }
    }

    /// The version of a path as a new round with these bytes makes it: the
    /// same when the bytes are, else first published now, but never before
    /// the version it replaces (a clock stepped back must not make
    /// `Last-Modified` go backwards).
    fn next_version(&self, path: &str, hash: &blake3::Hash, now: DateTime<Utc>) -> Version {
        let hash = hash.to_hex()[..32].to_string();
        match self.versions.get(path) {
            Some(v) if v.hash == hash => v.clone(),
            Some(v) => Version {
                hash,
                first_published: now.max(v.first_published),
            },
            None => Version {
                hash,
                first_published: now,
            },
        }
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Gate, then write what changed to every target, then hand every
    /// document that passed, with its version, to `record` (the caller keeps
    /// the versions, and where other instances serve them, the bytes), and
    /// only then serve them from the store. Documents are checked in
    /// parallel (each is independent); a refused one keeps its last good
    /// version everywhere. If `record` fails, nothing new is served and the
    /// versions are not taken as published: a later round does it again.
    pub fn publish(
        &mut self,
        docs: Vec<Document>,
        record: impl FnOnce(&[Published<'_>]) -> Result<()>,
    ) -> Result<Report> {
        self.publish_checked(Checked::in_parallel(docs), record)
    }

    /// [`Publisher::publish`] of documents the gate has already seen.
    pub fn publish_checked(
        &mut self,
        checked: Checked,
        record: impl FnOnce(&[Published<'_>]) -> Result<()>,
    ) -> Result<Report> {
        use rayon::prelude::*;
        let Checked { docs, gated } = checked;
        let mut report = Report::default();
        let mut passed: Vec<(&Document, blake3::Hash)> = Vec::new();
        for (doc, gate) in docs.iter().zip(gated) {
            match gate {
                Ok(hash) => passed.push((doc, hash)),
                Err(reason) => {
                    tracing::error!(feed = %doc.path, error = %reason, "refusing to publish a broken document; the last good version stays");
                    report.refused.push((doc.path.clone(), reason));
                }
            }
        }
        let mut written = std::collections::BTreeSet::new();
        let paths: Vec<&str> = passed.iter().map(|(doc, _)| doc.path.as_str()).collect();
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
            written.extend(changed.iter().map(|(doc, _)| doc.path.clone()));
        }
        // Whole seconds: HTTP dates carry no more, and a version published
        // within the second of its predecessor then shares its date rather
        // than appearing a fraction later and being rounded down to it.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default();
        let versions: Vec<Version> = passed
            .iter()
            .map(|(doc, hash)| self.next_version(&doc.path, hash, now))
            .collect();
        let published: Vec<Published<'_>> = passed
            .iter()
            .zip(&versions)
            .map(|((doc, _), version)| Published {
                doc,
                version,
                new: self.versions.get(&doc.path) != Some(version),
            })
            .collect();
        record(&published)?;
        for ((doc, hash), version) in passed.into_iter().zip(versions) {
            if written.contains(&doc.path) {
                report.written.push(doc.path.clone());
            } else {
                report.unchanged += 1;
            }
            // Archive pages stay out of memory (a large archive is thousands
            // of them); HTTP reads them from the feeds folder.
            if let Some(store) = &self.store
                && ArchivePath::parse(&doc.path).is_none()
            {
                store.put(doc, hash, version.first_published);
            }
            if self.versions.get(&doc.path) != Some(&version) {
                self.versions.insert(doc.path.clone(), version.clone());
                report.new_versions.push((doc.path.clone(), version));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DocKind;

    fn doc(path: &str) -> Document {
        let bytes = b"<rss version=\"2.0\"><channel><title>t</title><link>http://x/</link><description>d</description></channel></rss>".to_vec();
        Document {
            path: path.into(),
            kind: DocKind::Rss,
            bytes,
            entries: 0,
            updated: None,
        }
    }

    /// Archive pages reach the feeds folder but not the in-memory store
    /// HTTP answers live documents from: a large archive is thousands of
    /// pages, and the daemon must not hold them all.
    #[test]
    fn archive_pages_go_to_the_folder_but_not_into_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new();
        let folder = folder::Folder::new(dir.path().to_path_buf()).unwrap();
        let mut publisher =
            Publisher::new(vec![Box::new(folder)], Some(store.clone()), HashMap::new());
        let report = publisher
            .publish(
                vec![
                    doc("rss.xml"),
                    doc("archive/rss-1.xml"),
                    doc("thoi-su/archive/rss-12.xml"),
                ],
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(report.written.len(), 3);
        assert!(store.get("rss.xml").is_some());
        for page in ["archive/rss-1.xml", "thoi-su/archive/rss-12.xml"] {
            assert!(dir.path().join(page).is_file(), "{page} on disk");
            assert!(store.get(page).is_none(), "{page} held in memory");
        }
    }
}
