//! A batch: one transaction's worth of changes, and the rules that decide
//! what a change means, written once for every backend.
//!
//! The rules: an id's first-seen moment never moves (so `published` never
//! does), `updated` moves only when what the article says changes, a second
//! file claiming an id is refused until the first leaves, and every change
//! records which feeds it touched. Backends only store and fetch rows
//! ([`Tx`]).

use super::{Change, ChangeCounts, FeedKey, FileStamp, Identity, NewDelivery, StoreError, Tx};
use crate::article::{Article, Entry};
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
}

impl<'c> Batch<'c> {
    pub(super) fn new(tx: Box<dyn Tx + 'c>, tz: Tz) -> Batch<'c> {
        Batch {
            tx,
            tz,
            affected: BTreeSet::new(),
            fresh_affected: BTreeSet::new(),
            changes: Vec::new(),
            counts: ChangeCounts::default(),
            first_seen_taken: HashSet::new(),
        }
    }

    /// Store an accepted article read from `path`. `seen_at` becomes its
    /// first-seen time if its id is new (made unique within the batch by
    /// moving it a microsecond at a time), and its change time if what it says
    /// changed.
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
        // The file may have carried another id before (edited front matter).
        if let Some(prev) = self.tx.article_at(path)?.filter(|p| p != &article.id) {
            self.remove_article(&prev)?;
        }

        let content_hash = article_hash(article);
        let identity = self.tx.identity(&article.id)?;
        let (first_seen, changed_at) = match &identity {
            Some(i) if i.content_hash == content_hash => (i.first_seen_us, i.changed_at_us),
            Some(i) => (i.first_seen_us, seen_us.max(i.first_seen_us)),
            None => {
                let mut first = seen_us;
                while !self.first_seen_taken.insert(first) {
                    first += 1;
                }
                (first, first)
            }
        };
        let published = article.published.unwrap_or_else(|| self.local(first_seen));
        // A content change moves `updated`; the file's own `updated` wins when given.
        let updated = match article.updated {
            Some(u) => u,
            None if identity.is_none() || changed_at <= first_seen => published,
            None => self.local(changed_at),
        };
        let updated = updated.max(published);
        let entry = Entry::new(article, published, updated);
        let entry_json = serde_json::to_string(&entry).context("an entry does not encode")?;

        self.tx.put_identity(&Identity {
            id: article.id.clone(),
            first_seen_us: first_seen,
            content_hash,
            changed_at_us: changed_at,
        })?;

        let old = self.tx.article_entry(&article.id)?;
        if old.as_deref() == Some(entry_json.as_str()) {
            // Same article, same dates: only the file stamp moves.
            self.tx.put_file(path, stamp, Some(&article.id))?;
            return Ok(());
        }
        let old_feeds = self.tx.memberships(&article.id)?;
        let published_us = published.timestamp_micros();
        self.tx
            .put_article(&article.id, path, published_us, &entry_json)?;
        let mut new_feeds = vec![FeedKey::Main];
        for c in &entry.categories {
            self.tx.ensure_category(c)?;
            new_feeds.push(FeedKey::Category(c.slug.clone()));
        }
        self.tx
            .set_memberships(&article.id, published_us, &new_feeds)?;
        self.fresh_affected.extend(old_feeds.iter().cloned());
        self.fresh_affected.extend(new_feeds.iter().cloned());
        self.affected.extend(old_feeds);
        self.affected.extend(new_feeds);
        if old.is_some() {
            self.counts.updated += 1;
            self.changes.push(Change::Updated(entry));
        } else {
            self.counts.added += 1;
            self.changes.push(Change::Added(entry));
        }
        self.tx.put_file(path, stamp, Some(&article.id))?;
        self.tx.clear_rejection(path)?;
        Ok(())
    }

    /// The file's bytes changed but its content hash did not: refresh the stamp.
    pub fn touch(&mut self, path: &str, stamp: &FileStamp) -> Result<()> {
        self.tx.touch_file(path, stamp)
    }

    /// A file could not be ingested or stored: remember why, and take out any
    /// article it used to provide (the last good version must not linger under
    /// a file that now says something else).
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
        self.remove_path_article(path)?;
        self.tx.put_file(path, stamp, None)?;
        self.tx.put_rejection(path, reason, duplicate_of, at)
    }

    /// A file is gone. Returns paths that were rejected as duplicates of the
    /// id it provided: they may now be accepted and should be read again.
    pub fn remove_file(&mut self, path: &str) -> Result<Vec<String>> {
        let id = self.remove_path_article(path)?;
        self.tx.delete_file(path)?;
        match id {
            Some(id) => self.tx.waiting_on(&id),
            None => Ok(Vec::new()),
        }
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

    fn remove_path_article(&mut self, path: &str) -> Result<Option<String>> {
        let id = self.tx.article_at(path)?;
        if let Some(id) = &id {
            self.remove_article(id)?;
        }
        Ok(id)
    }

    fn remove_article(&mut self, id: &str) -> Result<()> {
        let feeds = self.tx.memberships(id)?;
        let categories = feeds
            .iter()
            .filter_map(|f| match f {
                FeedKey::Category(s) => Some(s.clone()),
                FeedKey::Main => None,
            })
            .collect();
        self.tx.delete_article(id)?;
        self.fresh_affected.extend(feeds.iter().cloned());
        self.affected.extend(feeds);
        self.counts.removed += 1;
        self.changes.push(Change::Removed {
            id: id.to_string(),
            categories,
        });
        Ok(())
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

    /// Commit; returns the feeds whose content may have changed and how many
    /// articles changed.
    pub fn commit(self) -> Result<(BTreeSet<FeedKey>, ChangeCounts)> {
        self.tx.commit().context("cannot commit to the catalog")?;
        Ok((self.affected, self.counts))
    }
}

/// Hash of what an article says (not of its bytes), so re-saving a file with
/// other line endings or encoding does not count as an edit.
fn article_hash(article: &Article) -> String {
    let mut normalised = article.clone();
    normalised.encoding = crate::article::Encoding::Utf8;
    let json = serde_json::to_vec(&normalised).expect("articles always serialise");
    blake3::hash(&json).to_hex()[..32].to_string()
}
