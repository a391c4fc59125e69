//! The pipeline: drives files through ingest → catalog → render → publish.
//!
//! `build`, the daemon's start-up reconciliation and its per-event batches all
//! come through here, so a file is treated the same however it arrived. Reading
//! and parsing run in parallel; storing is one catalog transaction per batch;
//! rendering touches only the feeds a batch affected.

use crate::catalog::{Batch, Catalog, ChangeCounts, FeedKey, FileStamp, KnownFile, StoreError};
use crate::config::Config;
use crate::ingest::{self, IngestOptions};
use crate::publish::{self, Publisher, Store};
use crate::render::{self, FeedInfo};
use crate::source::{self, SourceFile};
use anyhow::Result;
use chrono::Utc;
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// Files are read and parsed this many at a time, so memory holds one chunk of
/// article bodies, never the archive.
const CHUNK: usize = 512;

/// Re-parse everything when the parser changes (a new feedwire version).
fn parser_version() -> String {
    format!("{}+{}", env!("CARGO_PKG_VERSION"), ingest::REVISION)
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub accepted: Vec<String>,
    pub rejected: Vec<(String, String)>,
    pub removed: Vec<String>,
    /// Files still being written: read again on their next event.
    pub unsettled: Vec<String>,
    /// Files whose stamp matched the catalog (not read).
    pub unchanged: usize,
    pub affected: BTreeSet<FeedKey>,
    /// Articles added, updated and removed.
    pub counts: ChangeCounts,
}

/// Hook run inside a batch's transaction, before commit; syndication uses it
/// to enqueue deliveries atomically with the change that caused them.
pub type CommitHook = Box<dyn FnMut(&crate::catalog::Batch<'_>) -> Result<()> + Send>;

pub struct Pipeline {
    pub cfg: Config,
    catalog: Catalog,
    publisher: Publisher,
    hooks: Vec<CommitHook>,
}

/// What reading one file gave. Short-lived (one chunk of files), so the
/// large `Parsed` variant is not worth a box.
#[allow(clippy::large_enum_variant)]
enum Read {
    /// Size and mtime match the catalog: not read.
    Unchanged,
    /// Bytes identical to what the catalog has: only the stamp moved.
    SameContent(FileStamp),
    Parsed(
        FileStamp,
        Result<Box<crate::article::Article>, ingest::IngestError>,
    ),
    /// Changed while being read: try again later.
    Unsettled,
    Gone,
    Unreadable(FileStamp, String),
}

impl Pipeline {
    pub fn open(cfg: Config, store: Option<Store>) -> Result<Pipeline> {
        let catalog = Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
        if catalog.meta("parser")? != Some(parser_version()) {
            catalog.forget_file_stamps()?;
            catalog.set_meta("parser", &parser_version())?;
        }
        let publisher = Publisher::new(cfg.paths.feeds.clone(), store)?;
        Ok(Pipeline {
            cfg,
            catalog,
            publisher,
            hooks: Vec::new(),
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn add_commit_hook(&mut self, hook: CommitHook) {
        self.hooks.push(hook);
    }

    pub fn store(&self) -> Option<&Store> {
        self.publisher.store()
    }

    fn ingest_options(&self) -> Result<IngestOptions> {
        Ok(IngestOptions {
            time_zone: self.cfg.time_zone()?,
            max_bytes: self.cfg.ingest.max_bytes,
            now: Utc::now(),
            limits: self.cfg.ingest.limits(),
        })
    }

    /// Bring the catalog in line with the folder: new, changed and removed
    /// files since the catalog last looked. Unchanged files are recognised by
    /// size and mtime and never read.
    pub fn reconcile(&mut self) -> Result<Outcome> {
        let files = source::list(&self.cfg.paths.articles)?;
        let known = self.catalog.known_files()?;
        let present: std::collections::HashSet<&str> =
            files.iter().map(|f| f.rel.as_str()).collect();
        let removed: Vec<String> = known
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        self.process(files, removed, &known, &HashSet::new())
    }

    /// Process the given paths (relative keys): present files are read, absent
    /// ones removed. Files in `provisional` may still be being written, so a
    /// parse failure there means "not yet", not "rejected".
    pub fn apply(
        &mut self,
        keys: &BTreeSet<String>,
        provisional: &HashSet<String>,
    ) -> Result<Outcome> {
        let root = self.cfg.paths.articles.clone();
        let known = self
            .catalog
            .known_files_among(keys.iter().map(String::as_str))?;
        let mut files = Vec::new();
        let mut removed = Vec::new();
        for key in keys {
            let abs = root.join(key);
            let listed = source::is_article_path(&root, &abs)
                && abs.is_file()
                && (!abs.is_symlink() || source::resolves_inside(&root, &abs));
            if listed {
                files.push(SourceFile {
                    rel: key.clone(),
                    abs,
                });
            } else if known.contains_key(key) {
                removed.push(key.clone());
            }
        }
        self.process(files, removed, &known, provisional)
    }

    fn process(
        &mut self,
        files: Vec<SourceFile>,
        removed: Vec<String>,
        known: &HashMap<String, KnownFile>,
        provisional: &HashSet<String>,
    ) -> Result<Outcome> {
        let opts = self.ingest_options()?;
        let mut outcome = Outcome::default();
        let mut batch = self.catalog.batch()?;
        let mut retry: Vec<String> = Vec::new();
        for key in &removed {
            retry.extend(batch.remove_file(key)?);
            outcome.removed.push(key.clone());
        }
        let seen_at = Utc::now();
        let handle = |batch: &mut crate::catalog::Batch<'_>,
                      outcome: &mut Outcome,
                      retry: &mut Vec<String>,
                      file: &SourceFile,
                      read: Read|
         -> Result<()> {
            match read {
                Read::Unchanged => outcome.unchanged += 1,
                Read::SameContent(stamp) => {
                    batch.touch(&file.rel, &stamp)?;
                    outcome.unchanged += 1;
                }
                Read::Unsettled => outcome.unsettled.push(file.rel.clone()),
                Read::Gone => {
                    if known.contains_key(&file.rel) {
                        retry.extend(batch.remove_file(&file.rel)?);
                        outcome.removed.push(file.rel.clone());
                    }
                }
                Read::Unreadable(stamp, reason) => {
                    batch.reject(&file.rel, &stamp, &reason, seen_at)?;
                    outcome.rejected.push((file.rel.clone(), reason));
                }
                Read::Parsed(_, Err(e)) if provisional.contains(&file.rel) => {
                    tracing::debug!(file = %file.rel, error = %e, "not readable yet; waiting for the writer");
                    outcome.unsettled.push(file.rel.clone());
                }
                Read::Parsed(stamp, Err(e)) => {
                    let reason = e.to_string();
                    batch.reject(&file.rel, &stamp, &reason, seen_at)?;
                    outcome.rejected.push((file.rel.clone(), reason));
                }
                Read::Parsed(stamp, Ok(article)) => {
                    match batch.upsert(&file.rel, &stamp, &article, seen_at) {
                        Ok(()) => outcome.accepted.push(file.rel.clone()),
                        Err(StoreError::DuplicateId { id, owner }) => {
                            let reason = format!(
                                "duplicate id `{id}`: already used by {owner}; give this file another id"
                            );
                            batch.reject(&file.rel, &stamp, &reason, seen_at)?;
                            outcome.rejected.push((file.rel.clone(), reason));
                        }
                        Err(StoreError::Db(e)) => return Err(e),
                    }
                }
            }
            Ok(())
        };
        // Reading and parsing the next chunk (in the rayon pool) overlaps
        // storing the current one (on this thread, which owns the
        // transaction): a build is then bound by the slower of the two
        // rather than their sum.
        let read_chunk = |chunk: &[SourceFile]| -> Vec<Read> {
            chunk
                .par_iter()
                .map(|f| read_one(f, known.get(&f.rel), &opts))
                .collect()
        };
        let mut chunks = files.chunks(CHUNK);
        let mut current = chunks.next().map(|c| (c, read_chunk(c)));
        while let Some((chunk, reads)) = current.take() {
            let next = chunks.next();
            let stored = std::thread::scope(|scope| {
                let ahead = next.map(|c| scope.spawn(move || (c, read_chunk(c))));
                for (file, read) in chunk.iter().zip(reads) {
                    handle(&mut batch, &mut outcome, &mut retry, file, read)?;
                }
                run_hooks(&mut self.hooks, &mut batch)?;
                current = ahead.map(|h| h.join().expect("a reader thread panicked"));
                anyhow::Ok(())
            });
            stored?;
        }
        // Files that lost a duplicate-id contest may win now that the owner left.
        let retry_files: Vec<SourceFile> = std::mem::take(&mut retry)
            .into_iter()
            .filter(|k| !removed.contains(k))
            .map(|rel| SourceFile {
                abs: self.cfg.paths.articles.join(&rel),
                rel,
            })
            .collect();
        for file in &retry_files {
            let read = read_one(file, None, &opts);
            handle(&mut batch, &mut outcome, &mut retry, file, read)?;
        }
        run_hooks(&mut self.hooks, &mut batch)?;
        let (affected, counts) = batch.commit()?;
        outcome.affected = affected;
        outcome.counts = counts;
        Ok(outcome)
    }

    /// Render and publish feeds: the given ones, or all of them (`None`). The
    /// OPML index is refreshed too.
    pub fn publish(&mut self, only: Option<&BTreeSet<FeedKey>>) -> Result<publish::Report> {
        let all = self.catalog.feeds()?;
        let mut targets: Vec<FeedInfo> = Vec::new();
        match only {
            None => {
                for (key, category) in &all {
                    targets.push(FeedInfo::new(&self.cfg, key.clone(), category.clone()));
                }
            }
            Some(keys) => {
                for key in keys {
                    let category = match key {
                        FeedKey::Main => None,
                        FeedKey::Category(slug) => self.catalog.category(slug)?,
                    };
                    targets.push(FeedInfo::new(&self.cfg, key.clone(), category));
                }
            }
        }
        // Read sequentially (one connection), render in parallel (pure).
        let mut inputs = Vec::with_capacity(targets.len());
        for info in &targets {
            inputs.push((
                info,
                self.catalog.newest(&info.key, self.cfg.feeds.max_items)?,
            ));
        }
        let cfg = &self.cfg;
        let rendered: Vec<Result<Vec<render::Document>>> = inputs
            .par_iter()
            .map(|(info, entries)| render::render_feed(cfg, info, entries))
            .collect();
        let mut docs = Vec::new();
        for r in rendered {
            docs.extend(r?);
        }
        let index: Vec<FeedInfo> = all
            .into_iter()
            .map(|(k, c)| FeedInfo::new(&self.cfg, k, c))
            .collect();
        docs.push(render::render_opml(&self.cfg, &index)?);
        let report = self.publisher.publish(docs)?;
        let now = Utc::now();
        for path in &report.written {
            let hash = self
                .publisher
                .content_hash(path)
                .map(|h| h.to_hex()[..32].to_string())
                .unwrap_or_default();
            self.catalog.record_published(path, &hash, now)?;
        }
        Ok(report)
    }

    /// Reconcile and publish every feed: `feedwire build`.
    pub fn build(&mut self) -> Result<(Outcome, publish::Report)> {
        let started = Instant::now();
        let outcome = self.reconcile()?;
        let report = self.publish(None)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "build finished"
        );
        Ok((outcome, report))
    }
}

/// Let the commit hooks see the changes since their last run, then drop
/// those records: the hooks run per chunk so a large import never holds
/// every entry in memory.
fn run_hooks(hooks: &mut [CommitHook], batch: &mut Batch<'_>) -> Result<()> {
    if !batch.changes().is_empty() || !batch.affected_since_drain().is_empty() {
        for hook in hooks.iter_mut() {
            hook(batch)?;
        }
    }
    batch.drain();
    Ok(())
}

fn read_one(file: &SourceFile, known: Option<&KnownFile>, opts: &IngestOptions) -> Read {
    let (size, mtime) = match source::stat(&file.abs) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Gone,
        Err(e) => {
            return Read::Unreadable(
                FileStamp {
                    size: 0,
                    mtime_ns: 0,
                    hash: String::new(),
                },
                format!("cannot read the file: {e}"),
            );
        }
    };
    // Rejected files are always read again: they are few, and a fixed parser
    // or a freed duplicate id may accept them now.
    if let Some(k) = known.filter(|k| k.id.is_some())
        && k.stamp.size == size
        && k.stamp.mtime_ns == mtime
    {
        return Read::Unchanged;
    }
    let (stamp, bytes) = match source::read(&file.abs, opts.max_bytes) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Gone,
        Err(e) => {
            return Read::Unreadable(
                FileStamp {
                    size,
                    mtime_ns: mtime,
                    hash: String::new(),
                },
                format!("cannot read the file: {e}"),
            );
        }
    };
    if !source::is_settled(&file.abs, &stamp)
        || stamp.size != bytes.len() as u64 && stamp.size <= opts.max_bytes
    {
        return Read::Unsettled;
    }
    if let Some(k) = known
        && k.stamp.hash == stamp.hash
        && k.id.is_some()
    {
        return Read::SameContent(stamp);
    }
    let name = file.rel.rsplit('/').next().unwrap_or(&file.rel);
    let result = if stamp.size > opts.max_bytes {
        Err(ingest::IngestError::TooLarge {
            size: stamp.size,
            limit: opts.max_bytes,
        })
    } else {
        ingest::parse(name, &bytes, opts)
    };
    Read::Parsed(stamp, result.map(Box::new))
}
