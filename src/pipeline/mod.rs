//! The pipeline: drives files through ingest → catalog → render → publish.
//!
//! `build`, the daemon's start-up reconciliation and its per-event batches all
//! come through here, so a file is treated the same however it arrived. Reading
//! and parsing run in parallel, each file within a time budget; storing is one
//! catalog transaction per batch; rendering touches only the feeds a batch
//! affected.
//!
//! Two guards keep a folder accident from emptying the feeds: a missing
//! articles folder removes nothing, and a batch that would remove more than
//! `watch.max_removals` articles holds those removals for an operator.

pub mod driver;
mod ninjs;
mod read;
mod sitemaps;

use read::{ChunkReader, Read};

use crate::catalog::{
    Batch, Catalog, ChangeCounts, FeedKey, FileStamp, KnownFile, PublishedDocument, StoreError,
    Term,
};
use crate::config::Config;
use crate::ingest::{self, IngestOptions};
use crate::publish::{self, Publisher, Store, Version};
use crate::render::{self, FeedInfo};
use crate::source::{self, SourceFile};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Files are read and parsed this many at a time, so memory holds one chunk of
/// article bodies, never the archive.
const CHUNK: usize = 512;

/// Archive pages are read, rendered and published this many at a time, so
/// a build holds a few pages' documents in memory, never the archive's.
const ARCHIVE_CHUNK: usize = 32;

/// The catalog setting that records what the archive pages on the targets
/// were rendered with; when it differs (a new feedwire, other site
/// settings), every page is rendered again once.
const ARCHIVE_RENDER_KEY: &str = "archive_render";

/// Removals count against `watch.max_removals` over this window, not only
/// per batch: a sync tool deleting files over several seconds arrives as
/// several batches, and must trip the guard as one deletion would.
const REMOVAL_WINDOW: Duration = Duration::from_secs(60);

/// Re-parse everything when the parser changes (a new feedwire version).
fn parser_version() -> String {
    format!("{}+{}", env!("CARGO_PKG_VERSION"), ingest::REVISION)
}

/// How a batch's files came to be looked at. It decides a new file's
/// first-seen time: a live event means "now"; a file found by a
/// reconciliation (start-up, a rescan, `build`) was there before feedwire
/// looked, so its modification time is the better guess, and an archive
/// copied with its times keeps its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Event,
    Reconciliation,
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
    /// Removals newly held by this batch (over `watch.max_removals`).
    pub held: Vec<String>,
    /// Nothing was held before this batch: the guard has just tripped.
    pub hold_started: bool,
    /// Held removals whose files came back.
    pub released: Vec<String>,
    /// The articles folder itself is missing: nothing was looked at or removed.
    pub folder_missing: bool,
}

/// Which documents of those kept in step with the listing (the ninjs
/// documents, the sitemaps' files) a publish renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Those changed since the last publish.
    Changed,
    /// Those, or every one when one may be missing or stale (a marker, or
    /// a look-up of one of them, says so): a start.
    Repair,
    /// Every one: `feedwire build`, the way to repair the targets.
    Everything,
}

/// Hook run inside a batch's transaction, before commit; syndication uses it
/// to enqueue deliveries atomically with the change that caused them.
pub type CommitHook = Box<dyn FnMut(&mut crate::catalog::Batch<'_>) -> Result<()> + Send>;

pub struct Pipeline {
    pub cfg: Config,
    catalog: Catalog,
    publisher: Publisher,
    hooks: Vec<CommitHook>,
    /// Parsing runs here, not in rayon's global pool, so a file that blows its
    /// time budget keeps one of these threads busy, not the renderers'.
    readers: rayon::ThreadPool,
    /// Set by [`Pipeline::interrupt_handle`]'s owner to abandon a batch.
    interrupted: Arc<AtomicBool>,
    /// Articles removed (not approved by an operator) in the last
    /// [`REMOVAL_WINDOW`], by batch.
    recent_removals: std::collections::VecDeque<(Instant, usize)>,
    /// The sitemaps (`sitemaps.enabled`): their listing follows every
    /// batch through a commit hook; `publish` renders what it touched.
    sitemaps: Option<sitemaps::Sitemaps>,
    /// Each article's ninjs document: which changed since the last publish.
    article_docs: ninjs::ArticleDocs,
    /// Entries' rendered fragments, so that an event renders the entry that
    /// changed, not every entry of the windows and pages it is in.
    fragments: render::Fragments,
}

/// A batch stopped because the daemon is shutting down; its transaction was
/// rolled back and its files are looked at again at the next start.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by shutdown; unfinished files are redone at the next start")]
pub struct Interrupted;

impl Pipeline {
    pub fn open(cfg: Config, store: Option<Store>) -> Result<Pipeline> {
        Self::open_fenced(cfg, store, None)
    }

    /// Open as the leader of several instances: every write this pipeline
    /// makes to the catalog checks that `term` still holds the lease, so
    /// once another instance took over, nothing more is written
    /// (`catalog::LeaseLost`).
    pub fn open_fenced(cfg: Config, store: Option<Store>, term: Option<Term>) -> Result<Pipeline> {
        let mut catalog = Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
        catalog.fence_writes(term);
        catalog.set_tombstone_days(cfg.lifecycle.tombstone_days);
        catalog.set_archive(cfg.feeds.max_items, cfg.feeds.archive_page_size);
        if catalog.meta("parser")? != Some(parser_version()) {
            catalog.forget_file_stamps()?;
            catalog.set_meta("parser", &parser_version())?;
        }
        // What a file says depends on these settings too: when they change,
        // rejected and accepted files alike are read again once.
        let settings = ingest_settings(&cfg);
        if catalog.meta("ingest_settings")? != Some(settings.clone()) {
            catalog.forget_file_stamps()?;
            catalog.set_meta("ingest_settings", &settings)?;
        }
        let known = catalog
            .published_feeds()?
            .into_iter()
            // Files of the sitemaps' pages are rendered from the listing
            // and kept nowhere but the targets (see `sitemaps`); an older
            // feedwire recorded them.
            .filter(|r| !r.path.starts_with(render::sitemap::PAGES_DIR))
            .map(|r| {
                (
                    r.path,
                    Version {
                        hash: r.hash,
                        first_published: r.published_at,
                    },
                )
            })
            .collect();
        let publisher = Publisher::new(publish::targets(&cfg)?, store, known);
        let readers = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("feedwire-read-{i}"))
            .build()
            .context("cannot start the reader threads")?;
        let sitemaps = sitemaps::Sitemaps::open(&cfg, &mut catalog)?;
        let article_docs = ninjs::ArticleDocs::open(&catalog)?;
        // The sitemaps' listing is settled first, before the ninjs
        // documents' and syndication's hooks run.
        let mut hooks = match &sitemaps {
            Some(s) => vec![s.hook(&cfg)?],
            None => Vec::new(),
        };
        hooks.push(article_docs.hook());
        Ok(Pipeline {
            cfg,
            catalog,
            publisher,
            hooks,
            readers,
            interrupted: Arc::default(),
            recent_removals: Default::default(),
            sitemaps,
            article_docs,
            fragments: render::Fragments::new(render::FRAGMENTS_BUDGET),
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

    /// Setting this flag makes the batch in progress stop at the next file
    /// and roll back ([`Interrupted`]), and nothing more is published:
    /// shutdown never waits out a long import, and a leader that lost its
    /// lease stops at once.
    pub fn interrupt_handle(&self) -> Arc<AtomicBool> {
        self.interrupted.clone()
    }

    /// Obey `flag` instead of a flag of its own (set by whoever may have to
    /// stop this pipeline before it was even opened).
    pub fn interrupt_with(&mut self, flag: Arc<AtomicBool>) {
        self.interrupted = flag;
    }

    fn ingest_options(&self) -> Result<IngestOptions> {
        Ok(IngestOptions {
            time_zone: self.cfg.time_zone()?,
            max_bytes: self.cfg.ingest.max_bytes,
            now: Utc::now(),
            limits: self.cfg.ingest.limits(),
        })
    }

    fn root(&self) -> &Path {
        &self.cfg.paths.articles
    }

    /// Bring the catalog in line with the folder: new, changed and removed
    /// files since the catalog last looked. Unchanged files are recognised by
    /// their stamp and never read. A missing folder changes nothing.
    pub fn reconcile(&mut self) -> Result<Outcome> {
        if !self.root().is_dir() {
            return Ok(Outcome {
                folder_missing: true,
                ..Outcome::default()
            });
        }
        let files = source::list(self.root())?;
        let known = self.catalog.known_files()?;
        let present: HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        let removed: Vec<String> = known
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        self.process(
            files,
            removed,
            &known,
            &HashSet::new(),
            Origin::Reconciliation,
        )
    }

    /// Process the given paths (relative keys): present files are read, absent
    /// ones removed. Files in `provisional` may still be being written, so a
    /// parse failure there means "not yet", not "rejected".
    pub fn apply(
        &mut self,
        keys: &BTreeSet<String>,
        provisional: &HashSet<String>,
    ) -> Result<Outcome> {
        let root = self.root().to_path_buf();
        if !root.is_dir() {
            // The folder went away (renamed, deleted, unmounted): its files'
            // events must not turn into removals.
            return Ok(Outcome {
                folder_missing: true,
                ..Outcome::default()
            });
        }
        let known = self
            .catalog
            .known_files_among(keys.iter().map(String::as_str))?;
        let mut files = Vec::new();
        let mut removed = Vec::new();
        for key in keys {
            let abs = root.join(key);
            // Links are judged at read time, on the canonical path.
            if source::is_article_path(&root, &abs) && abs.is_file() {
                files.push(SourceFile {
                    rel: key.clone(),
                    abs,
                });
            } else if known.contains_key(key) {
                removed.push(key.clone());
            }
        }
        self.process(files, removed, &known, provisional, Origin::Event)
    }

    fn process(
        &mut self,
        files: Vec<SourceFile>,
        removed: Vec<String>,
        known: &HashMap<String, KnownFile>,
        provisional: &HashSet<String>,
        origin: Origin,
    ) -> Result<Outcome> {
        let opts = self.ingest_options()?;
        let canonical_root = self.root().canonicalize().with_context(|| {
            format!(
                "the articles folder {} is not readable",
                self.root().display()
            )
        })?;
        let budget = Duration::from_millis(self.cfg.ingest.parse_budget_ms);
        let max_removals = self.cfg.watch.max_removals;
        let mut outcome = Outcome::default();
        self.before_batch()?;
        let mut batch = self.catalog.batch()?;
        let mut retry: Vec<String> = Vec::new();
        let now = Utc::now();

        // Removal guard. A held file that is back ends its hold; approved
        // holds are removed like any other; the rest are held when too many
        // would go at once, or while earlier ones are still held (a slow
        // deletion must not slip through once the guard has tripped).
        let held = batch.held_removal_paths()?;
        for f in &files {
            if held.contains_key(&f.rel) && batch.release_hold(&f.rel)? {
                outcome.released.push(f.rel.clone());
            }
        }
        let mut to_remove = Vec::new();
        let mut candidates = Vec::new();
        for key in removed {
            match held.get(&key) {
                Some(true) => to_remove.push(key),
                _ => candidates.push(key),
            }
        }
        let with_article: Vec<&String> = candidates
            .iter()
            .filter(|k| known.get(*k).is_some_and(|f| f.id.is_some()))
            .collect();
        let still_holding = held
            .iter()
            .any(|(path, approved)| !approved && !outcome.released.contains(path));
        let clock = Instant::now();
        while self
            .recent_removals
            .front()
            .is_some_and(|(at, _)| clock.duration_since(*at) > REMOVAL_WINDOW)
        {
            self.recent_removals.pop_front();
        }
        let recent: usize = self.recent_removals.iter().map(|(_, n)| n).sum();
        let hold = !with_article.is_empty()
            && (still_holding || (max_removals > 0 && recent + with_article.len() > max_removals));
        if !hold && !with_article.is_empty() {
            self.recent_removals.push_back((clock, with_article.len()));
        }
        outcome.hold_started = hold && !still_holding;
        for key in candidates {
            match known.get(&key).and_then(|f| f.id.as_deref()) {
                Some(id) if hold => {
                    if batch.hold_removal(&key, id, now)? {
                        outcome.held.push(key);
                    }
                }
                _ => to_remove.push(key),
            }
        }
        for key in &to_remove {
            retry.extend(batch.remove_file(key)?);
            outcome.removed.push(key.clone());
        }

        let batch_now = now;
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
                    if known.get(&file.rel).is_some() {
                        retry.extend(batch.remove_file(&file.rel)?);
                        outcome.removed.push(file.rel.clone());
                    }
                }
                Read::Unreadable(stamp, reason) => {
                    batch.reject(&file.rel, &stamp, &reason, None, batch_now)?;
                    outcome.rejected.push((file.rel.clone(), reason));
                }
                Read::Parsed(_, Err(e)) if provisional.contains(&file.rel) => {
                    tracing::debug!(file = %file.rel, error = %e, "not readable yet; waiting for the writer");
                    outcome.unsettled.push(file.rel.clone());
                }
                Read::Parsed(stamp, Err(e)) => {
                    let reason = e.to_string();
                    batch.reject(&file.rel, &stamp, &reason, None, batch_now)?;
                    outcome.rejected.push((file.rel.clone(), reason));
                }
                Read::Parsed(stamp, Ok(article)) => {
                    let seen_at = match origin {
                        Origin::Event => batch_now,
                        Origin::Reconciliation => modified_at(&stamp).min(batch_now),
                    };
                    match batch.upsert(&file.rel, &stamp, &article, seen_at) {
                        Ok(()) => outcome.accepted.push(file.rel.clone()),
                        Err(StoreError::DuplicateId { id, owner }) => {
                            let reason = format!(
                                "duplicate id `{id}`: already used by {owner}; give this file another id"
                            );
                            batch.reject(&file.rel, &stamp, &reason, Some(&id), batch_now)?;
                            outcome.rejected.push((file.rel.clone(), reason));
                        }
                        Err(StoreError::Db(e)) => return Err(e),
                    }
                }
            }
            Ok(())
        };
        // Reading and parsing the next chunk (on the reader threads) overlaps
        // storing the current one (on this thread, which owns the
        // transaction): a build is then bound by the slower of the two
        // rather than their sum.
        let reader = ChunkReader {
            pool: &self.readers,
            known,
            opts: &opts,
            canonical_root: &canonical_root,
            budget,
        };
        let mut chunks = files.chunks(CHUNK);
        let mut current = chunks.next().map(|c| (c, reader.submit(c)));
        while let Some((chunk, submitted)) = current.take() {
            current = chunks.next().map(|c| (c, reader.submit(c)));
            let reads = submitted.collect(&self.interrupted)?;
            for (file, read) in chunk.iter().zip(reads) {
                if self.interrupted.load(Ordering::Relaxed) {
                    return Err(Interrupted.into());
                }
                handle(&mut batch, &mut outcome, &mut retry, file, read)?;
            }
            run_hooks(&mut self.hooks, &mut batch)?;
        }
        // Files that lost a duplicate-id contest may win now that the owner left.
        let retry_files: Vec<SourceFile> = std::mem::take(&mut retry)
            .into_iter()
            .filter(|k| !to_remove.contains(k))
            .map(|rel| SourceFile {
                abs: self.cfg.paths.articles.join(&rel),
                rel,
            })
            .collect();
        if !retry_files.is_empty() {
            let no_known = HashMap::new();
            let reads = ChunkReader {
                known: &no_known,
                ..reader
            }
            .submit(&retry_files)
            .collect(&self.interrupted)?;
            for (file, read) in retry_files.iter().zip(reads) {
                handle(&mut batch, &mut outcome, &mut retry, file, read)?;
            }
        }
        // Files gone for good (not moved to another name) are killed now,
        // before the last hooks, so partners hear of it in this commit.
        batch.settle()?;
        run_hooks(&mut self.hooks, &mut batch)?;
        let (affected, counts) = batch.commit()?;
        outcome.affected = affected;
        outcome.counts = counts;
        Ok(outcome)
    }

    /// Read these files again whatever their stamps say (an editor's
    /// command or an embargo's end changed what they mean, not their bytes).
    fn reread(&mut self, keys: BTreeSet<String>) -> Result<Outcome> {
        let root = self.root().to_path_buf();
        let files: Vec<SourceFile> = keys
            .into_iter()
            .map(|rel| SourceFile {
                abs: root.join(&rel),
                rel,
            })
            .filter(|f| f.abs.is_file())
            .collect();
        self.process(
            files,
            Vec::new(),
            &HashMap::new(),
            &HashSet::new(),
            Origin::Event,
        )
    }

    /// When the next embargo ends, tombstone expires or article leaves the
    /// news sitemap's window; the daemon sets a timer for it.
    pub fn next_lifecycle_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        let catalog = self.catalog.next_lifecycle_deadline()?;
        let news = self.sitemaps.as_ref().and_then(|s| s.deadline());
        Ok(catalog.into_iter().chain(news).min())
    }

    /// What time changed: embargoes that ended become public (their files
    /// are read again, and publish as new), tombstones past
    /// `lifecycle.tombstone_days` leave their feeds. Also at start-up, for
    /// what lapsed while the daemon was down.
    pub fn apply_lifecycle(&mut self) -> Result<Outcome> {
        let now = Utc::now();
        let lapsed: BTreeSet<String> = self.catalog.lapsed_embargoes(now)?.into_iter().collect();
        for path in &lapsed {
            tracing::info!(file = %self.root().join(path).display(), "embargo ended: publishing");
        }
        let mut outcome = if lapsed.is_empty() {
            Outcome::default()
        } else {
            self.reread(lapsed)?
        };
        self.before_batch()?;
        let mut batch = self.catalog.batch()?;
        batch.purge_tombstones()?;
        let (affected, _) = batch.commit()?;
        outcome.affected.extend(affected);
        // An article left the news sitemap's window: the main listing's
        // publish renders it again.
        if self.sitemaps.as_mut().is_some_and(|s| s.window_passed(now)) {
            outcome.affected.insert(FeedKey::Main);
        }
        Ok(outcome)
    }

    /// Act on editors' commands recorded by `feedwire embargo/kill/correct/
    /// reinstate` (their overrides are already in the catalog): re-read the
    /// articles' files, kill or reinstate ids without one. Logged with who
    /// and when.
    pub fn apply_commands(&mut self) -> Result<Outcome> {
        let pending = self.catalog.pending_commands()?;
        let Some(last) = pending.last().map(|c| c.seq) else {
            return Ok(Outcome::default());
        };
        let mut files = BTreeSet::new();
        self.before_batch()?;
        let mut batch = self.catalog.batch()?;
        for c in &pending {
            tracing::info!(
                command = %c.command,
                article = %c.id,
                who = %c.who,
                at = %c.at.to_rfc3339(),
                "editor's command"
            );
            if c.command == "reinstate" {
                batch.reinstate(&c.id)?;
                self.article_docs.note(&c.id);
            }
        }
        let (mut affected, _) = batch.commit()?;
        let mut without_file = Vec::new();
        for c in &pending {
            match self.catalog.file_of(&c.id)? {
                Some(path) if self.root().join(&path).is_file() => {
                    files.insert(path);
                }
                _ => without_file.push(c),
            }
        }
        // A kill of an article whose file is already gone: the id is marked.
        let kills: Vec<&&crate::catalog::PendingCommand> = without_file
            .iter()
            .filter(|c| c.command == "kill")
            .collect();
        if !kills.is_empty() {
            let overrides: HashMap<String, crate::catalog::Override> =
                self.catalog.overrides()?.into_iter().collect();
            self.before_batch()?;
            let mut batch = self.catalog.batch()?;
            for c in kills {
                let reason = overrides.get(&c.id).and_then(|o| o.reason.clone());
                batch.kill(&c.id, reason)?;
            }
            run_hooks(&mut self.hooks, &mut batch)?;
            let (more, _) = batch.commit()?;
            affected.extend(more);
        }
        let mut outcome = if files.is_empty() {
            Outcome::default()
        } else {
            self.reread(files)?
        };
        outcome.affected.extend(affected);
        self.catalog.mark_commands_applied(last)?;
        Ok(outcome)
    }

    /// Render and publish feeds: the given ones, or all of them (`None`), and
    /// the archive pages that changed since they were last published. The
    /// OPML index is refreshed too, and the sitemaps a change touched (all
    /// of them, robots.txt and the IndexNow key file with `None`).
    /// Publishing every feed also archives any overflow (a catalog from
    /// before archives, a smaller `feeds.max_items`) and renders every
    /// archive page again when what they were rendered with changed. Then
    /// the ninjs documents of the articles that changed (of every article
    /// with `None`, when one may be missing or stale).
    pub fn publish(&mut self, only: Option<&BTreeSet<FeedKey>>) -> Result<publish::Report> {
        // A leader that is stepping down publishes nothing more.
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(Interrupted.into());
        }
        let every_page = only.is_none()
            && self.catalog.meta(ARCHIVE_RENDER_KEY)? != Some(self.archive_render_settings());
        let mut report = self.publish_scope(only, every_page)?;
        let scope = match only {
            None => Scope::Repair,
            Some(_) => Scope::Changed,
        };
        report.absorb(self.article_docs.flush(
            &self.cfg,
            &self.catalog,
            &mut self.publisher,
            scope,
        )?);
        Ok(report)
    }

    fn publish_scope(
        &mut self,
        only: Option<&BTreeSet<FeedKey>>,
        every_page: bool,
    ) -> Result<publish::Report> {
        let all = self.catalog.feeds()?;
        let keys: Vec<FeedKey> = match only {
            None => {
                let keys: Vec<FeedKey> = all.iter().map(|(k, _)| k.clone()).collect();
                let mut batch = self.catalog.batch()?;
                for key in &keys {
                    batch.archive_overflow(key, self.cfg.feeds.max_items)?;
                }
                batch.commit()?;
                keys
            }
            Some(keys) => keys.iter().cloned().collect(),
        };
        // The fragment memo serves the rounds that follow a change. A round
        // over every feed (a start, a build) would fill it with fragments no
        // event may need, and pay to cut them out.
        let memo = only.is_some();
        // Live documents first, so a feed over `feeds.max_bytes` can move
        // the entries it could not hold to its archive (no entry may be left
        // out of every document) and be rendered again with the rest.
        let mut live = self.render_live(&keys, memo)?;
        let over: BTreeMap<FeedKey, usize> = live
            .iter()
            .filter_map(|(info, window, docs)| {
                let held = docs.iter().map(|d| d.entries).min().unwrap_or(0);
                (held < *window).then(|| (info.key.clone(), held))
            })
            .collect();
        if !over.is_empty() {
            let mut batch = self.catalog.batch()?;
            for (key, held) in &over {
                batch.archive_overflow(key, *held)?;
            }
            batch.commit()?;
            tracing::info!(
                feeds = over.len(),
                "entries left out of a live feed by feeds.max_bytes moved to its archive"
            );
            let keys: Vec<FeedKey> = over.keys().cloned().collect();
            live.retain(|(info, _, _)| !over.contains_key(&info.key));
            live.extend(self.render_live(&keys, memo)?);
        }
        // Archive pages before the live documents that link to them.
        let pages = if every_page {
            let mut pages = Vec::new();
            for (key, _) in &all {
                let count = self.catalog.archive_page_count(key)?;
                pages.extend((1..=count).map(|n| (key.clone(), n)));
            }
            pages
        } else {
            self.catalog.stale_archive_pages()?
        };
        let mut docs: Vec<render::Document> =
            live.into_iter().flat_map(|(_, _, docs)| docs).collect();
        let index: Vec<FeedInfo> = all
            .into_iter()
            .map(|(k, c)| FeedInfo::new(&self.cfg, k, c))
            .collect();
        docs.push(render::render_opml(&self.cfg, &index)?);
        if only.is_none() && !self.cfg.indexnow.key.is_empty() {
            docs.push(render::sitemap::render_key_file(&self.cfg.indexnow.key));
        }
        // The gate reads the live documents on a thread of its own while
        // the archive pages are rendered, checked and written: the pages
        // still reach the targets first, and much of their round is spent
        // waiting for the disk. With no page to publish (a start, most
        // often) the live documents are checked on every core instead.
        let (archived, live) = if pages.is_empty() {
            let checked = publish::Checked::in_parallel(docs);
            (Ok(publish::Report::default()), Ok(Ok(checked)))
        } else {
            std::thread::scope(|scope| {
                let live = std::thread::Builder::new()
                    .name("feedwire-gate".into())
                    .spawn_scoped(scope, || publish::Checked::one_by_one(docs));
                let archived = self.publish_archive_pages(&pages, every_page, memo);
                (archived, live.map(|h| h.join()))
            })
        };
        let mut report = archived?;
        let live = match live {
            Ok(Ok(checked)) => checked,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => return Err(e).context("cannot start a thread for the gate"),
        };
        if every_page && report.refused.is_empty() {
            self.catalog
                .set_meta(ARCHIVE_RENDER_KEY, &self.archive_render_settings())?;
        }
        report.absorb(publish_recorded(
            &mut self.publisher,
            &self.catalog,
            live,
            only.is_none(),
        )?);
        // The live documents joined in this round, as HTTP now serves them,
        // are where the next round finds their unchanged entries.
        // Without a store (nothing served) the round's notes are dropped.
        let store = self.publisher.store();
        self.fragments.adopt(|path| {
            store
                .and_then(|store| store.get(path))
                .map(|served| served.body.clone())
        });
        if let Some(s) = &mut self.sitemaps {
            let scope = match (only, every_page) {
                (Some(_), _) => Scope::Changed,
                (None, false) => Scope::Repair,
                (None, true) => Scope::Everything,
            };
            report.absorb(s.publish(&self.cfg, &self.catalog, &mut self.publisher, scope)?);
        }
        Ok(report)
    }

    /// What a feed's documents are, with its category's name and archive
    /// page count.
    fn feed_info(&self, key: &FeedKey) -> Result<FeedInfo> {
        let category = match key {
            FeedKey::Main => None,
            FeedKey::Category(slug) => self.catalog.category(slug)?,
        };
        Ok(FeedInfo::new(&self.cfg, key.clone(), category))
    }

    /// Render the live documents of these feeds: each feed's info, how many
    /// entries its live window holds, and its three documents.
    fn render_live(
        &self,
        keys: &[FeedKey],
        memo: bool,
    ) -> Result<Vec<(FeedInfo, usize, Vec<render::Document>)>> {
        // Read sequentially (one connection), render in parallel (pure).
        let now = Utc::now();
        let mut inputs = Vec::with_capacity(keys.len());
        for key in keys {
            let mut info = self.feed_info(key)?;
            info.archive_pages = self.catalog.archive_page_count(key)?;
            inputs.push((
                self.catalog.newest(key, self.cfg.feeds.max_items)?,
                self.catalog.tombstones_for(key, now)?,
                info,
            ));
        }
        let cfg = &self.cfg;
        let fragments = memo.then_some(&self.fragments);
        inputs
            .into_par_iter()
            .map(|(entries, tombstones, info)| {
                let reuse = reuse_for(fragments, &info.key);
                let docs = render::render_feed(cfg, &info, &entries, &tombstones, reuse)?;
                Ok((info, entries.len(), docs))
            })
            .collect()
    }

    /// Render and publish these archive pages, a few at a time; each page
    /// whose documents all passed the gate is recorded as published.
    fn publish_archive_pages(
        &mut self,
        pages: &[(FeedKey, u32)],
        full: bool,
        memo: bool,
    ) -> Result<publish::Report> {
        let mut report = publish::Report::default();
        let mut infos: HashMap<FeedKey, FeedInfo> = HashMap::new();
        for chunk in pages.chunks(ARCHIVE_CHUNK) {
            for (key, _) in chunk {
                if !infos.contains_key(key) {
                    infos.insert(key.clone(), self.feed_info(key)?);
                }
            }
            let mut inputs = Vec::with_capacity(chunk.len());
            for (key, page) in chunk {
                inputs.push((&infos[key], *page, self.catalog.archive_page(key, *page)?));
            }
            let cfg = &self.cfg;
            // An event's stale page holds entries that left the live window
            // lately, whose fragments the memo has.
            let fragments = memo.then_some(&self.fragments);
            let rendered: Vec<Result<Vec<render::Document>>> = inputs
                .par_iter()
                .map(|(info, page, entries)| {
                    let reuse = reuse_for(fragments, &info.key);
                    render::render_archive_page(cfg, info, *page, entries, reuse)
                })
                .collect();
            let mut docs = Vec::with_capacity(chunk.len() * render::DocKind::FEEDS.len());
            for r in rendered {
                docs.extend(r?);
            }
            let round = self.publish_documents(docs, full)?;
            for (key, page) in chunk {
                let info = &infos[key];
                let refused = render::DocKind::FEEDS.iter().any(|&kind| {
                    let path = info.archive_path(kind, *page);
                    round.refused.iter().any(|(p, _)| *p == path)
                });
                if !refused {
                    self.catalog.archive_page_published(key, *page)?;
                }
            }
            report.absorb(round);
        }
        Ok(report)
    }

    /// Publish documents, recording each version first published, with its
    /// bytes, before anyone is served it: a version's first-publish time is
    /// its Last-Modified across restarts, and other instances serve what the
    /// catalog holds. With `full` (a round over every feed) every document
    /// is recorded, so a catalog holding versions without their bytes gets
    /// them.
    fn publish_documents(
        &mut self,
        docs: Vec<render::Document>,
        full: bool,
    ) -> Result<publish::Report> {
        publish_recorded(
            &mut self.publisher,
            &self.catalog,
            publish::Checked::in_parallel(docs),
            full,
        )
    }

    /// Before a batch: the documents kept in step with the listing record
    /// that they may fall behind it until their next publish.
    fn before_batch(&mut self) -> Result<()> {
        self.article_docs.before_batch(&self.catalog)?;
        if let Some(s) = &mut self.sitemaps {
            s.before_batch(&self.catalog)?;
        }
        Ok(())
    }

    /// Publish the ninjs documents of the articles changed since the last
    /// publish, when no feed changed (see [`Pipeline::publish`]).
    pub fn publish_article_documents(&mut self) -> Result<publish::Report> {
        self.article_docs.flush(
            &self.cfg,
            &self.catalog,
            &mut self.publisher,
            Scope::Changed,
        )
    }

    /// What the archive pages' bytes depend on besides their entries.
    fn archive_render_settings(&self) -> String {
        format!("{}|{:?}", env!("CARGO_PKG_VERSION"), self.cfg.site)
    }

    /// Reconcile and publish every feed: `feedwire build`.
    pub fn build(&mut self) -> Result<(Outcome, publish::Report)> {
        let started = Instant::now();
        let mut outcome = self.reconcile()?;
        // Editors' commands and embargoes that ended count in a build too.
        for more in [self.apply_commands()?, self.apply_lifecycle()?] {
            outcome.accepted.extend(more.accepted);
            outcome.rejected.extend(more.rejected);
            outcome.removed.extend(more.removed);
        }
        // Every archive page and every article's ninjs document too: a
        // build is the way to repair the targets.
        let mut report = self.publish_scope(None, true)?;
        report.absorb(self.article_docs.flush(
            &self.cfg,
            &self.catalog,
            &mut self.publisher,
            Scope::Everything,
        )?);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "build finished"
        );
        Ok((outcome, report))
    }
}

/// The settings that change what ingest makes of a file.
/// Publish `docs` and record in the catalog (fenced, with their bytes where
/// other instances serve them) each version that is new, or every one when
/// `full` (a full publish repairs what a former leader left unrecorded).
pub(crate) fn publish_recorded(
    publisher: &mut Publisher,
    catalog: &Catalog,
    docs: publish::Checked,
    full: bool,
) -> Result<publish::Report> {
    publisher.publish_checked(docs, |published| {
        let record: Vec<PublishedDocument<'_>> = published
            .iter()
            .filter(|p| p.new || full)
            .map(|p| PublishedDocument {
                path: &p.doc.path,
                hash: &p.version.hash,
                first_published: p.version.first_published,
                body: &p.doc.bytes,
            })
            .collect();
        catalog.record_published_documents(&record)
    })
}

/// How a feed's documents use the fragment memo. Every feed's live
/// documents reuse the fragments of their last served version; only the
/// main feed's fragments are kept in the memo, for its archive page. Every
/// event touches the main feed, whose newest page then gains an entry that
/// left its window lately; a category comes round once per so many events
/// that the memo would have to hold every feed's window and page (20 MiB
/// at 100k articles, measured) to help its page.
fn reuse_for<'a>(memo: Option<&'a render::Fragments>, feed: &FeedKey) -> Option<render::Reuse<'a>> {
    memo.map(|memo| render::Reuse {
        memo,
        remember: *feed == FeedKey::Main,
    })
}

fn ingest_settings(cfg: &Config) -> String {
    let limits = cfg.ingest.limits();
    format!(
        "max_bytes={};time_zone={};max_html_bytes={};max_nesting={}",
        cfg.ingest.max_bytes, cfg.site.time_zone, limits.max_html_bytes, limits.max_nesting
    )
}

/// A file's modification time as a first-seen candidate.
fn modified_at(stamp: &FileStamp) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(stamp.mtime_ns)
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
