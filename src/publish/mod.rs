//! Publish: rendered documents → files on disk and the in-memory set HTTP
//! serves, through a gate that never lets a broken document out.
//!
//! Every document is parsed back by the same crates a reader would use before
//! it replaces anything; a document that fails keeps the last good one in
//! place and the failure is reported. Files are replaced atomically (temp file
//! in the same folder, fsync, rename, fsync of the folder), and a document
//! whose bytes did not change is not rewritten, so file mtimes and HTTP
//! validators only move when content does.

mod atomic;
mod gate;
mod store;

pub use atomic::{sync_dir, write_synced};
pub use gate::verify;
pub use store::{Served, Store};

use crate::render::Document;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::PathBuf;

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

pub struct Publisher {
    feeds_dir: PathBuf,
    /// Content hash of what is on disk, per path; filled lazily from disk.
    on_disk: HashMap<String, blake3::Hash>,
    /// The current version of each path, seeded from the catalog's record.
    versions: HashMap<String, Version>,
    store: Option<Store>,
}

impl Publisher {
    /// `known` is what the catalog recorded of earlier rounds (path → version).
    pub fn new(
        feeds_dir: PathBuf,
        store: Option<Store>,
        known: HashMap<String, Version>,
    ) -> Result<Publisher> {
        std::fs::create_dir_all(&feeds_dir)
            .with_context(|| format!("cannot create the feeds folder {}", feeds_dir.display()))?;
        Ok(Publisher {
            feeds_dir,
            on_disk: HashMap::new(),
            versions: known,
            store,
        })
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

    /// Gate, then write what changed. Documents are checked and written in
    /// parallel (each is independent); each folder that received a file is
    /// fsynced once at the end, so the renames are durable before we return.
    pub fn publish(&mut self, docs: Vec<Document>) -> Result<Report> {
        use rayon::prelude::*;
        enum Fate {
            Refused(String),
            Written(blake3::Hash),
            Unchanged(blake3::Hash),
        }
        let on_disk = &self.on_disk;
        let feeds_dir = &self.feeds_dir;
        let fates: Vec<Result<Fate>> = docs
            .par_iter()
            .map(|doc| {
                if let Err(e) = verify(doc) {
                    return Ok(Fate::Refused(format!("{e:#}")));
                }
                let hash = blake3::hash(&doc.bytes);
                let target = feeds_dir.join(&doc.path);
                let known = match on_disk.get(&doc.path) {
                    Some(h) => Some(*h),
                    None => std::fs::read(&target).ok().map(|b| blake3::hash(&b)),
                };
                if known == Some(hash) {
                    return Ok(Fate::Unchanged(hash));
                }
                write_synced(&target, &doc.bytes)?;
                Ok(Fate::Written(hash))
            })
            .collect();
        let mut report = Report::default();
        let mut dirs = std::collections::BTreeSet::new();
        // Whole seconds: HTTP dates carry no more, and a version published
        // within the second of its predecessor then shares its date rather
        // than appearing a fraction later and being rounded down to it.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default();
        for (doc, fate) in docs.iter().zip(fates) {
            let hash = match fate? {
                Fate::Refused(reason) => {
                    tracing::error!(feed = %doc.path, error = %reason, "refusing to publish a broken document; the last good version stays");
                    report.refused.push((doc.path.clone(), reason));
                    continue;
                }
                Fate::Written(hash) => {
                    report.written.push(doc.path.clone());
                    if let Some(dir) = self.feeds_dir.join(&doc.path).parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                    hash
                }
                Fate::Unchanged(hash) => {
                    report.unchanged += 1;
                    hash
                }
            };
            self.on_disk.insert(doc.path.clone(), hash);
            let version = self.next_version(&doc.path, &hash, now);
            if self.versions.get(&doc.path) != Some(&version) {
                self.versions.insert(doc.path.clone(), version.clone());
                report
                    .new_versions
                    .push((doc.path.clone(), version.clone()));
            }
            if let Some(store) = &self.store {
                store.put(doc, hash, version.first_published);
            }
        }
        for dir in dirs {
            sync_dir(&dir);
        }
        Ok(report)
    }
}
