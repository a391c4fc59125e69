//! A batch: one transaction's worth of changes, and the rules that decide
//! what a change means, written once for every backend.
//!
//! The rules: an id's first-seen moment never moves; its version goes up,
//! and `updated` moves, only when what it says changes (a correction
//! included); a second file claiming an id is refused until the first
//! leaves. An article is *usable* (in the public feeds), *withheld* (stored,
//! embargoed: only partners allowed embargoed copy hear of it) or killed
//! (gone from every feed, a tombstone left for `lifecycle.tombstone_days`,
//! and not published again until an editor reinstates it). Deleting the file
//! is a kill; an editor's override (`feedwire embargo/kill/correct`) wins
//! over what the file says. Every change records which feeds it touched.
//!
//! Archives (RFC 5005): a feed's live window is its newest
//! `feeds.max_items` members not yet archived. At commit, every member a
//! touched feed's window no longer holds moves to the feed's newest archive
//! page (pages of `feeds.archive_page_size`, oldest first; a full page
//! starts the next), and never comes back: the live window is counted
//! among members not archived, so a backdated arrival below it goes
//! straight to the newest page. A page is full once that many entries were
//! placed in it, and then never takes another. The one exception to "a
//! page never changes": an entry killed, withheld again or moved out of the
//! feed leaves its page, and an edit of an entry shows in its page.
//! Backends only store and fetch rows ([`Tx`]).

use super::{
    ArchiveRule, ArticleRow, Change, ChangeCounts, FeedKey, FileStamp, Identity, NewDelivery,
    Override, Status, StoreError, Tombstone, Tx,
};
use crate::article::{Article, Entry, Lifecycle};
use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeSet, HashMap, HashSet};

/// One transaction's worth of changes. Collects which feeds it touched.
///
/// Change records (with their entries) are kept only until the next
/// [`drain`](Batch::drain), so a 100,000-file import does not hold every
/// article body until its commit.
pub struct Batch<'c> {
    tx: Box<dyn Tx + 'c>,
    tz: Tz,
    /// When this batch runs: embargoes end and tombstones expire against it.
    now: DateTime<Utc>,
    tombstone_keep: chrono::Duration,
    archive: ArchiveRule,
    affected: BTreeSet<FeedKey>,
    /// Feeds touched since the last drain.
    fresh_affected: BTreeSet<FeedKey>,
    /// Changes since the last drain.
    changes: Vec<Change>,
    counts: ChangeCounts,
    /// First-seen times handed out in this batch: each is unique, so files
    /// that arrive together (a burst, or an archive whose files share an
    /// mtime) still have an order and distinct `updated` values.
    first_seen_taken: HashSet<i64>,
    /// Articles whose file went in this batch. At [`settle`](Self::settle)
    /// each is killed, unless another file took up its id meanwhile (a
    /// renamed or moved file is not a kill).
    gone: HashMap<String, Gone>,
}

/// An article whose file went, waiting for the end of the batch.
struct Gone {
    feeds: Vec<FeedKey>,
    /// The archive pages it was in: a renamed file's article keeps them.
    pages: Vec<(FeedKey, u32)>,
    categories: Vec<String>,
    was_public: bool,
}

/// Where an article stands once the file and the editors have had their say.
enum Decision {
    Usable,
    Withheld(Option<DateTime<FixedOffset>>),
    Kill(Option<String>),
}

impl<'c> Batch<'c> {
    pub(super) fn new(
        tx: Box<dyn Tx + 'c>,
        tz: Tz,
        tombstone_keep: chrono::Duration,
        archive: ArchiveRule,
    ) -> Batch<'c> {
        Batch {
            tx,
            tz,
            now: Utc::now(),
            tombstone_keep,
            archive,
            affected: BTreeSet::new(),
            fresh_affected: BTreeSet::new(),
            changes: Vec::new(),
            counts: ChangeCounts::default(),
            first_seen_taken: HashSet::new(),
            gone: HashMap::new(),
        }
    }

    /// Store an accepted article read from `path`. `seen_at` becomes its
    /// first-seen time if its id is new (made unique within the batch by
    /// moving it a microsecond at a time), and its change time if what it says
    /// changed. What becomes of it (public, withheld, killed) follows from
    /// its lifecycle, an editor's override, and whether its id was killed.
    pub fn upsert(
        &mut self,
        path: &str,
        stamp: &FileStamp,
        article: &Article,
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let seen_us = seen_at.timestamp_micros();
        // Who owns this id today? A different, still-present file wins.
        if let Some(owner) = self.tx.article_path(&article.id)?.filter(|o| o != path) {
            return Err(StoreError::DuplicateId {
                id: article.id.clone(),
                owner,
            });
        }
        // The file may have carried another id before (edited front matter):
        // that one is gone, which is a kill.
        if let Some(prev) = self.tx.article_at(path)?.filter(|p| p != &article.id) {
            self.kill(&prev, None)?;
        }

        let overrides = self.tx.editorial(&article.id)?.unwrap_or_default();
        let lifecycle = effective_lifecycle(&article.lifecycle, &overrides);
        let content_hash = article_hash(article, overrides.correction.as_deref());
        let identity = self.tx.identity(&article.id)?;

        // A killed id stays killed, whatever its file says, until reinstated.
        if let Some(killed_at) = identity.as_ref().and_then(|i| i.killed_at_us) {
            self.tx.put_file(path, stamp, Some(&article.id))?;
            let when = DateTime::from_timestamp_micros(killed_at).unwrap_or_default();
            self.tx.put_rejection(
                path,
                &format!(
                    "`{}` was killed on {}: not published again until `feedwire reinstate {}`",
                    article.id,
                    when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    article.id
                ),
                None,
                self.now,
            )?;
            return Ok(());
        }

        let (first_seen, changed_at, version) = match &identity {
            Some(i) if i.content_hash == content_hash => {
                (i.first_seen_us, i.changed_at_us, i.version)
            }
            Some(i) => (
                i.first_seen_us,
                seen_us.max(i.first_seen_us),
                i.version.saturating_add(1),
            ),
            None => {
                let mut first = seen_us;
                while !self.first_seen_taken.insert(first) {
                    first += 1;
                }
                (first, first, 1)
            }
        };
        let decision = match (lifecycle.status, lifecycle.embargo) {
            (Some(Status::Canceled), _) => Decision::Kill(lifecycle.kill_reason.clone()),
            (_, Some(until)) if until.with_timezone(&Utc) > self.now => {
                Decision::Withheld(Some(until))
            }
            (Some(Status::Withheld), Some(_)) => Decision::Usable,
            (Some(Status::Withheld), None) => Decision::Withheld(None),
            _ => Decision::Usable,
        };
        let previous_public = identity.as_ref().and_then(|i| i.public_since_us);
        let public_since = match decision {
            Decision::Usable => Some(previous_public.unwrap_or_else(|| {
                // First public now: at its first sight, or when its
                // embargo ended if that was later.
                let embargo_end = lifecycle.embargo.map_or(i64::MIN, |e| e.timestamp_micros());
                first_seen.max(embargo_end)
            })),
            _ => previous_public,
        };
        self.tx.put_identity(&Identity {
            id: article.id.clone(),
            first_seen_us: first_seen,
            content_hash,
            changed_at_us: changed_at,
            version,
            public_since_us: public_since,
            killed_at_us: None,
            kill_reason: None,
        })?;
        if let Decision::Kill(reason) = decision {
            self.tx.put_file(path, stamp, Some(&article.id))?;
            self.tx.clear_rejection(path)?;
            return self.kill(&article.id, reason).map_err(StoreError::from);
        }

        // Without a date of its own, an article is published when it first
        // became public (or, withheld, when its embargo ends).
        let published = article
            .published
            .unwrap_or_else(|| match (&decision, public_since) {
                (_, Some(us)) => self.local(us),
                (Decision::Withheld(Some(until)), None) => {
                    self.local(first_seen.max(until.timestamp_micros()))
                }
                _ => self.local(first_seen),
            });
        // A content change moves `updated`; the file's own `updated` wins when given.
        let updated = match article.updated {
            Some(u) => u,
            None if identity.is_none() || changed_at <= first_seen => published,
            None => self.local(changed_at),
        };
        let mut entry = Entry::new(article, published, updated.max(published));
        entry.version = version;
        entry.correction = lifecycle.correction.clone();
        let (status, embargo) = match decision {
            Decision::Withheld(until) => (Status::Withheld, until),
            _ => (Status::Usable, None),
        };
        entry.status = status;
        entry.embargoed_until = embargo;
        entry.first_seen = Some(self.local(first_seen));
        let entry_json = serde_json::to_string(&entry).context("an entry does not encode")?;

        let old = self.tx.article_entry(&article.id)?;
        let old_status = self.tx.article_status(&article.id)?;
        self.tx.put_file(path, stamp, Some(&article.id))?;
        self.tx.clear_rejection(path)?;
        if old.as_deref() == Some(entry_json.as_str()) {
            // Same article, same dates, same state: only the file stamp moves.
            return Ok(());
        }
        let old_feeds = self.tx.memberships(&article.id)?;
        // An archived entry stays in its page (it never goes back to the
        // live window), including one whose file was renamed in this batch.
        let mut old_pages = self.tx.archive_pages_of(&article.id)?;
        if let Some(gone) = self.gone.get(&article.id) {
            old_pages.extend(gone.pages.iter().cloned());
        }
        let published_us = published.timestamp_micros();
        let row = ArticleRow {
            id: &article.id,
            path,
            published_us,
            entry: &entry_json,
            status,
            embargo_until_us: embargo.map(|e| e.timestamp_micros()),
        };
        // An entry stored by an earlier build lacks the facts kept since
        // (first-seen time, the file's own date). Adding them is not news:
        // a release re-reads every file, and must not re-send the archive
        // to every partner.
        let stored = old
            .as_deref()
            .and_then(|json| serde_json::from_str::<Entry>(json).ok());
        if stored.is_some_and(|s| {
            s.first_seen.is_none() && s.without_later_facts() == entry.without_later_facts()
        }) {
            self.tx.put_article(&row)?;
            return Ok(());
        }
        self.tx.put_article(&row)?;
        // Only public articles are members of feeds.
        let mut new_feeds = Vec::new();
        if status == Status::Usable {
            new_feeds.push(FeedKey::Main);
            for c in &entry.categories {
                self.tx.ensure_category(c)?;
                new_feeds.push(FeedKey::Category(c.slug.clone()));
            }
        }
        self.tx
            .set_memberships(&article.id, published_us, &new_feeds)?;
        // Its pages change either way: the entry is edited there, or it left.
        for (feed, page) in old_pages {
            if new_feeds.contains(&feed) {
                self.tx.move_to_page(&feed, &article.id, page)?;
            }
            self.tx.touch_archive_page(&feed, page, None)?;
        }
        self.touch_feeds(old_feeds.into_iter().chain(new_feeds));
        // Counts are of stored articles; the change is what readers and
        // partners see.
        if old_status.is_some() {
            self.counts.updated += 1;
        } else {
            self.counts.added += 1;
        }
        self.changes.push(match (old_status, status) {
            (Some(Status::Usable), Status::Usable) => Change::Updated(entry),
            (_, Status::Usable) => Change::Added(entry),
            // Withheld (again, if it was public: it leaves the feeds, and
            // nobody is told to delete it: nobody deleted it).
            _ => Change::Withheld(entry),
        });
        Ok(())
    }

    /// Kill an id: it leaves every feed, a tombstone stays in those feeds
    /// for a while, its partners are told (with the reason), and it is not
    /// published again until an editor reinstates it. Killing what is not
    /// stored (no file any more) still marks the id.
    pub fn kill(&mut self, id: &str, reason: Option<String>) -> Result<()> {
        let feeds = self.tx.memberships(id)?;
        let was_public = self.tx.article_status(id)? == Some(Status::Usable);
        if self.tx.article_entry(id)?.is_none() {
            // Nothing stored (its file is gone): only the id is marked.
            self.gone.remove(id);
            return self.mark_killed(id, reason, Vec::new(), Vec::new(), false);
        }
        let categories = self.categories_of(id)?;
        self.leave_archive_pages(id)?;
        self.tx.delete_article(id)?;
        self.mark_killed(id, reason, feeds, categories, was_public)
    }

    /// An article is leaving the store: the archive pages it was in change
    /// (RFC 5005 lets archives be corrected). Returns those pages.
    fn leave_archive_pages(&mut self, id: &str) -> Result<Vec<(FeedKey, u32)>> {
        let pages = self.tx.archive_pages_of(id)?;
        for (feed, page) in &pages {
            self.tx.touch_archive_page(feed, *page, None)?;
        }
        Ok(pages)
    }

    /// The category slugs of a stored article (for routing its notices).
    fn categories_of(&mut self, id: &str) -> Result<Vec<String>> {
        Ok(match self.tx.article_entry(id)? {
            Some(json) => serde_json::from_str::<Entry>(&json)
                .map(|e| e.categories.into_iter().map(|c| c.slug).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        })
    }

    /// The id is killed; its article already left the store.
    fn mark_killed(
        &mut self,
        id: &str,
        reason: Option<String>,
        feeds: Vec<FeedKey>,
        categories: Vec<String>,
        was_public: bool,
    ) -> Result<()> {
        let Some(mut identity) = self.tx.identity(id)? else {
            return Ok(());
        };
        if identity.killed_at_us.is_some() {
            return Ok(());
        }
        identity.killed_at_us = Some(self.now.timestamp_micros());
        identity.kill_reason = reason.clone();
        self.tx.put_identity(&identity)?;
        if was_public {
            self.tx.put_tombstone(&Tombstone {
                id: id.to_string(),
                killed_at: self.now,
                reason: reason.clone(),
                feeds: feeds.clone(),
                expires_at: self.now + self.tombstone_keep,
            })?;
        }
        self.touch_feeds(feeds);
        self.counts.removed += 1;
        self.changes.push(Change::Killed {
            id: id.to_string(),
            categories,
            reason,
            was_public,
        });
        Ok(())
    }

    /// `feedwire reinstate`: the id may be published again (its file, if
    /// there is one, is read again by the caller) and its tombstone leaves
    /// the feeds.
    pub fn reinstate(&mut self, id: &str) -> Result<()> {
        if let Some(mut identity) = self.tx.identity(id)? {
            identity.killed_at_us = None;
            identity.kill_reason = None;
            self.tx.put_identity(&identity)?;
        }
        let feeds = self.tx.delete_tombstone(id)?;
        self.touch_feeds(feeds);
        Ok(())
    }

    /// Tombstones older than `lifecycle.tombstone_days` leave their feeds.
    pub fn purge_tombstones(&mut self) -> Result<()> {
        let feeds = self.tx.purge_tombstones(self.now.timestamp_micros())?;
        self.touch_feeds(feeds);
        Ok(())
    }

    /// The file's bytes changed but its content hash did not: refresh the stamp.
    pub fn touch(&mut self, path: &str, stamp: &FileStamp) -> Result<()> {
        self.tx.touch_file(path, stamp)
    }

    /// A file could not be ingested: remember why. The article it provided
    /// (its last good version) stays as it was: nobody deleted it, and
    /// neither readers nor partners are told to; the editor sees the reason
    /// in `status` and in the log.
    ///
    /// `duplicate_of` names the id another file holds, when that is the
    /// reason: the file is read again when that owner leaves.
    pub fn reject(
        &mut self,
        path: &str,
        stamp: &FileStamp,
        reason: &str,
        duplicate_of: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let id = self.tx.article_at(path)?;
        self.tx.put_file(path, stamp, id.as_deref())?;
        self.tx.put_rejection(path, reason, duplicate_of, at)
    }

    /// A file is gone: its article leaves the feeds now, and at the end of
    /// the batch it is killed (no reason) unless another file took up its id
    /// (see [`settle`](Self::settle)). Returns paths that were rejected as
    /// duplicates of that id: they may now be accepted and should be read
    /// again.
    pub fn remove_file(&mut self, path: &str) -> Result<Vec<String>> {
        let id = self.tx.article_at(path)?;
        if let Some(id) = &id {
            let feeds = self.tx.memberships(id)?;
            let was_public = self.tx.article_status(id)? == Some(Status::Usable);
            let categories = self.categories_of(id)?;
            let pages = self.leave_archive_pages(id)?;
            self.tx.delete_article(id)?;
            self.touch_feeds(feeds.iter().cloned());
            self.gone.insert(
                id.clone(),
                Gone {
                    feeds,
                    pages,
                    categories,
                    was_public,
                },
            );
        }
        self.tx.delete_file(path)?;
        match id {
            Some(id) => self.tx.waiting_on(&id),
            None => Ok(Vec::new()),
        }
    }

    /// Kill the articles whose file went in this batch and whose id no
    /// other file took up (a rename is a move, not a kill). Run before the
    /// last commit hooks, so partners hear of the kills in this commit.
    pub fn settle(&mut self) -> Result<()> {
        for (id, gone) in std::mem::take(&mut self.gone) {
            if self.tx.article_entry(&id)?.is_some() {
                continue;
            }
            self.mark_killed(&id, None, gone.feeds, gone.categories, gone.was_public)?;
        }
        Ok(())
    }

    /// Keep the article of a file that disappeared in the feeds until an
    /// operator approves its removal or the file comes back. Returns whether
    /// the hold is new.
    pub fn hold_removal(&mut self, path: &str, id: &str, at: DateTime<Utc>) -> Result<bool> {
        self.tx.hold_removal(path, id, at)
    }

    /// Paths of held removals, and whether each was approved.
    pub fn held_removal_paths(&mut self) -> Result<HashMap<String, bool>> {
        self.tx.held_removals()
    }

    /// The file of a held removal is back (or was read again): the hold ends.
    pub fn release_hold(&mut self, path: &str) -> Result<bool> {
        self.tx.release_hold(path)
    }

    /// Queue deliveries in this batch's transaction, so they commit (or not)
    /// with the change that caused them. Returns how many were queued.
    pub fn enqueue(&mut self, deliveries: &[NewDelivery]) -> Result<usize> {
        self.tx.enqueue(deliveries)
    }

    fn touch_feeds(&mut self, feeds: impl IntoIterator<Item = FeedKey>) {
        for feed in feeds {
            self.fresh_affected.insert(feed.clone());
            self.affected.insert(feed);
        }
    }

    fn local(&self, unix_us: i64) -> DateTime<FixedOffset> {
        DateTime::from_timestamp_micros(unix_us)
            .unwrap_or_default()
            .with_timezone(&self.tz)
            .fixed_offset()
    }

    /// Feeds this batch has touched since the last [`drain`](Self::drain).
    pub fn affected_since_drain(&self) -> &BTreeSet<FeedKey> {
        &self.fresh_affected
    }

    /// Forget the change records seen so far (hooks have handled them); the
    /// totals and the feeds to publish are kept for the commit.
    pub fn drain(&mut self) {
        self.changes.clear();
        self.fresh_affected.clear();
    }

    /// The article changes since the last drain.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Move a feed's live members past its newest `keep` to its archive
    /// pages, oldest first: into the newest page until it holds
    /// `feeds.archive_page_size`, then into a new one. Reads the window and
    /// the displaced rows only, whatever the archive size. Returns whether
    /// anything moved. The live window is `feeds.max_items` at every commit;
    /// the publisher asks for fewer when a feed is over `feeds.max_bytes`.
    pub fn archive_overflow(&mut self, feed: &FeedKey, keep: usize) -> Result<bool> {
        let displaced = self.tx.live_beyond(feed, keep)?;
        if displaced.is_empty() {
            return Ok(false);
        }
        let size = self.archive.page_size.max(1);
        // No page yet: as if a full page 0 came before page 1.
        let (mut page, mut assigned) = self.tx.newest_archive_page(feed)?.unwrap_or((0, size));
        // Whether this call placed entries in `page` (a page already full
        // before it is left alone: its bytes do not change).
        let mut filled_here = false;
        for id in &displaced {
            if assigned >= size {
                if filled_here {
                    self.tx.touch_archive_page(feed, page, Some(assigned))?;
                }
                page += 1;
                assigned = 0;
            }
            self.tx.move_to_page(feed, id, page)?;
            assigned += 1;
            filled_here = true;
        }
        self.tx.touch_archive_page(feed, page, Some(assigned))?;
        self.touch_feeds([feed.clone()]);
        Ok(true)
    }

    /// Commit; returns the feeds whose content may have changed and how many
    /// articles changed. Every touched feed's overflow is archived first.
    pub fn commit(mut self) -> Result<(BTreeSet<FeedKey>, ChangeCounts)> {
        self.settle()?;
        let live = self.archive.live;
        for feed in self.affected.clone() {
            self.archive_overflow(&feed, live)?;
        }
        self.tx.commit().context("cannot commit to the catalog")?;
        Ok((self.affected, self.counts))
    }
}

/// What the file says, with an editor's override on top.
fn effective_lifecycle(file: &Lifecycle, editor: &Override) -> Lifecycle {
    Lifecycle {
        status: editor.status.or(file.status),
        embargo: editor
            .embargo_until
            .map(|t| t.fixed_offset())
            .or(file.embargo),
        correction: editor
            .correction
            .clone()
            .or_else(|| file.correction.clone()),
        kill_reason: editor.reason.clone().or_else(|| file.kill_reason.clone()),
    }
}

/// Hash of what an article says (not of its bytes), so re-saving a file with
/// other line endings or encoding does not count as an edit. An editor's
/// correction note is part of what it says.
fn article_hash(article: &Article, correction: Option<&str>) -> String {
    let mut normalised = article.clone();
    normalised.encoding = crate::article::Encoding::Utf8;
    let mut json = serde_json::to_vec(&normalised).expect("articles always serialise");
    if let Some(note) = correction {
        json.extend_from_slice(b"\0correction\0");
        json.extend_from_slice(note.as_bytes());
    }
    blake3::hash(&json).to_hex()[..32].to_string()
}
