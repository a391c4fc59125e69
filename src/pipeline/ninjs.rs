//! Each article's ninjs document in the publish targets
//! (`ninjs/<id>.json`), kept in line with the catalog:
//!
//! - public: the full document, rewritten when the article changes;
//! - withheld (embargoed, or put back under embargo): no document (removed
//!   if there was one): the feeds folder is public;
//! - killed after it was public: a `pubStatus: canceled` document in its
//!   place, kept (until a reinstatement), so whoever copied the article
//!   learns it was withdrawn; killed before it was ever public: nothing.
//!
//! A commit hook notes which articles a batch changed; after the commit,
//! [`ArticleDocs::flush`] renders those from the catalog and publishes them.
//! A catalog marker (`meta` key [`MARKER`]) says whether every document is
//! current: it is set to `pending` before a batch and to `current` after
//! the flush, so a crash in between (or a catalog from before ninjs
//! documents existed) makes the next full publish (start-up, `build`)
//! render every article's document once; unchanged files are not rewritten.
//! A full publish also looks up the newest article's document in every
//! target: when one does not hold it as it would be rendered now (the feeds
//! folder was emptied, a target added, a setting or feedwire changed what
//! documents say), every document is rendered again too.

use super::{CommitHook, Scope};
use crate::catalog::{ArticleState, Catalog, Change, FeedKey};
use crate::config::Config;
use crate::publish::{Publisher, Report};
use crate::render::{self, DocKind, Document};
use anyhow::Result;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The catalog `meta` key that says whether the documents are current.
pub(crate) const MARKER: &str = "ninjs_documents";

/// Articles rendered and published at a time: one chunk of documents in
/// memory, whatever the archive's size.
const CHUNK: usize = 256;

/// Per-article documents: what changed since the last flush.
pub(crate) struct ArticleDocs {
    /// Ids whose document may have changed, noted by the commit hook.
    pending: Arc<Mutex<BTreeSet<String>>>,
    /// The catalog's marker says `pending`.
    marked: bool,
    /// The marker did not say `current` when this process opened the
    /// catalog: the next full publish renders every document.
    repair: bool,
}

impl ArticleDocs {
    /// Read the marker before this process's first batch sets it.
    pub(crate) fn open(catalog: &Catalog) -> Result<ArticleDocs> {
        let marker = catalog.meta(MARKER)?;
        Ok(ArticleDocs {
            pending: Arc::default(),
            marked: marker.as_deref() == Some("pending"),
            repair: marker.as_deref() != Some("current"),
        })
    }

    /// The commit hook that notes every article a batch changed. A kill of
    /// an article that was never public is not noted: it has no document,
    /// and a canceled one would tell the public its id.
    pub(crate) fn hook(&self) -> CommitHook {
        let pending = self.pending.clone();
        Box::new(move |batch| {
            let mut pending = pending.lock().expect("pending ninjs lock");
            for change in batch.changes() {
                if let Change::Killed {
                    was_public: false, ..
                } = change
                {
                    continue;
                }
                pending.insert(change.id().to_string());
            }
            Ok(())
        })
    }

    /// Note an article whose document may have changed outside a batch's
    /// changes (a reinstated id).
    pub(crate) fn note(&self, id: &str) {
        self.pending
            .lock()
            .expect("pending ninjs lock")
            .insert(id.to_string());
    }

    /// Before a batch: record in the catalog that documents may fall behind
    /// it, so a crash before [`flush`](Self::flush) is repaired at the next
    /// start. Written once until the next flush.
    pub(crate) fn before_batch(&mut self, catalog: &Catalog) -> Result<()> {
        if !self.marked {
            catalog.set_meta(MARKER, "pending")?;
            self.marked = true;
        }
        Ok(())
    }

    /// Publish the documents of the articles noted since the last flush, or
    /// of every article (see [`Scope`]).
    pub(crate) fn flush(
        &mut self,
        cfg: &Config,
        catalog: &Catalog,
        publisher: &mut Publisher,
        scope: Scope,
    ) -> Result<Report> {
        let noted = std::mem::take(&mut *self.pending.lock().expect("pending ninjs lock"));
        let everything = match scope {
            Scope::Changed => false,
            Scope::Repair => self.repair || !newest_is_current(cfg, catalog, publisher)?,
            Scope::Everything => true,
        };
        let mut report = Report::default();
        if everything {
            // Every article's document is rendered: what was noted (every
            // article, in a build) need not be held while that happens.
            drop(noted);
            // Every stored article (its file is known), and every article
            // killed recently enough to have a tombstone (its file may be
            // gone): the kills a crash may have kept from their document.
            let now = chrono::Utc::now();
            // Every public article is in the main feed, so its tombstones
            // are every tombstone.
            let tombstones: BTreeSet<String> = catalog
                .tombstones_for(&FeedKey::Main, now)?
                .into_iter()
                .map(|t| t.id)
                .collect();
            let mut ids: BTreeSet<String> = catalog
                .known_files()?
                .into_values()
                .filter_map(|f| f.id)
                .collect();
            ids.extend(tombstones.iter().cloned());
            tracing::info!(
                articles = ids.len(),
                "publishing every article's ninjs document"
            );
            let ids: Vec<String> = ids.into_iter().collect();
            for chunk in ids.chunks(CHUNK) {
                report.absorb(publish_chunk(
                    cfg,
                    catalog,
                    publisher,
                    chunk,
                    Some(&tombstones),
                )?);
            }
        } else {
            let ids: Vec<String> = noted.into_iter().collect();
            for chunk in ids.chunks(CHUNK) {
                report.absorb(publish_chunk(cfg, catalog, publisher, chunk, None)?);
            }
        }
        if self.marked || everything {
            catalog.set_meta(MARKER, "current")?;
            self.marked = false;
        }
        self.repair &= !everything;
        Ok(report)
    }
}

/// Whether every target holds the newest article's document as it would be
/// rendered now. When not, the documents there are not the catalog's: the
/// feeds folder was emptied, a target was added, or what a document says
/// changed (`site.base_url`, a new feedwire), and every one is rendered
/// again. One document rendered and looked up, at every full publish.
fn newest_is_current(cfg: &Config, catalog: &Catalog, publisher: &Publisher) -> Result<bool> {
    let Some(entry) = catalog.newest(&FeedKey::Main, 1)?.into_iter().next() else {
        return Ok(true);
    };
    let doc = Document {
        bytes: render::render_ninjs(cfg, &entry)?,
        path: render::ninjs_path(&entry.id),
        kind: DocKind::Ninjs,
        entries: 1,
        updated: Some(entry.updated),
    };
    publisher.holds_everywhere(&doc)
}

/// Render these articles' documents from the catalog's current state and
/// publish them. In a full pass (`tombstoned` given), a killed article
/// without a tombstone is left alone: it was never public (nothing to
/// write), or its canceled document was written when it was killed.
fn publish_chunk(
    cfg: &Config,
    catalog: &Catalog,
    publisher: &mut Publisher,
    ids: &[String],
    tombstoned: Option<&BTreeSet<String>>,
) -> Result<Report> {
    let tz = cfg.time_zone()?;
    let mut docs = Vec::new();
    let mut gone = Vec::new();
    for id in ids {
        let path = render::ninjs_path(id);
        match catalog.article_state(id)? {
            ArticleState::Public(entry) => docs.push(Document {
                bytes: render::render_ninjs(cfg, &entry)?,
                path,
                kind: DocKind::Ninjs,
                entries: 1,
                updated: Some(entry.updated),
            }),
            ArticleState::Killed { at, reason } => {
                if tombstoned.is_some_and(|t| !t.contains(id)) {
                    continue;
                }
                let when = at.with_timezone(&tz).fixed_offset();
                docs.push(Document {
                    bytes: render::render_canceled(cfg, id, when, reason.as_deref())?,
                    path,
                    kind: DocKind::Ninjs,
                    entries: 1,
                    updated: Some(when),
                });
            }
            ArticleState::Withheld | ArticleState::Unknown => gone.push(path),
        }
    }
    publisher.publish_articles(docs, &gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;

    fn doc(dir: &std::path::Path, id: &str) -> Option<serde_json::Value> {
        let bytes = std::fs::read(dir.join(format!("feeds/ninjs/{id}.json"))).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    /// A crash between a batch's commit and its flush (the pipeline is
    /// dropped with the change committed and nothing written) is repaired
    /// by the next start's full publish: a new article gets its document,
    /// a killed one its canceled document. Once current, a full publish
    /// renders only the newest article's document, to look it up; when a
    /// target lacks it (the folder was emptied), every document again.
    #[test]
    fn pipeline_ninjs_a_crash_before_the_flush_is_repaired_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let articles = dir.path().join("articles");
        std::fs::create_dir_all(&articles).unwrap();
        let md = |title: &str| format!("---\ntitle: {title}\ncategory: Thời sự\n---\nNội dung.\n");
        std::fs::write(articles.join("old.md"), md("Cũ")).unwrap();
        let cfg = Config::from_toml(
            "[server]\nenabled = false\n",
            &dir.path().join("config.toml"),
        )
        .unwrap();
        let mut p = Pipeline::open(cfg.clone(), None).unwrap();
        p.build().unwrap();
        assert_eq!(doc(dir.path(), "old").unwrap()["pubStatus"], "usable");

        // Committed, never flushed: a kill (its file deleted) and a new article.
        std::fs::remove_file(articles.join("old.md")).unwrap();
        std::fs::write(articles.join("new.md"), md("Mới")).unwrap();
        p.reconcile().unwrap();
        drop(p);
        assert_eq!(doc(dir.path(), "old").unwrap()["pubStatus"], "usable");
        assert!(doc(dir.path(), "new").is_none());

        let mut p = Pipeline::open(cfg.clone(), None).unwrap();
        p.reconcile().unwrap();
        p.publish(None).unwrap();
        assert_eq!(doc(dir.path(), "old").unwrap()["pubStatus"], "canceled");
        assert_eq!(doc(dir.path(), "new").unwrap()["pubStatus"], "usable");
        assert_eq!(
            p.catalog().meta(MARKER).unwrap().as_deref(),
            Some("current")
        );

        // Current: a restart's full publish (after its reconciliation)
        // renders no document beyond the newest one it looks up.
        drop(p);
        std::fs::remove_file(dir.path().join("feeds/ninjs/old.json")).unwrap();
        let mut p = Pipeline::open(cfg.clone(), None).unwrap();
        p.reconcile().unwrap();
        p.publish(None).unwrap();
        assert!(doc(dir.path(), "old").is_none());

        // The feeds folder emptied: the newest document is missing, so
        // every one is rendered again.
        drop(p);
        std::fs::remove_dir_all(dir.path().join("feeds")).unwrap();
        let mut p = Pipeline::open(cfg, None).unwrap();
        p.reconcile().unwrap();
        p.publish(None).unwrap();
        assert_eq!(doc(dir.path(), "old").unwrap()["pubStatus"], "canceled");
        assert_eq!(doc(dir.path(), "new").unwrap()["pubStatus"], "usable");
    }
}
