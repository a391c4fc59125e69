//! The watch stage: file-system events in, work for the pipeline out.
//!
//! It owns the `notify` watcher on the articles folder, turns raw events into
//! debounced batches of article files (waiting for a writer to finish), and
//! decides when the whole folder must be reconciled instead: a watcher
//! overflow, a folder moved in or out, the periodic safety rescan, the
//! articles folder itself disappearing or coming back. What to *do* with a
//! file is the pipeline's business; the watcher only says which paths to
//! look at, so lost or reordered events cannot corrupt anything.

use crate::source;
use anyhow::{Context, Result};
use notify::Watcher;
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A file with an open writer (no close seen yet) is read anyway once it has
/// been quiet this long: some writers (network file systems, some sync tools)
/// never report a close.
const OPEN_WRITER_PATIENCE: Duration = Duration::from_secs(3);

/// At most this many files per batch, so a bulk import publishes progressively
/// instead of in one long silence.
const MAX_BATCH: usize = 5000;

/// A file that is gone waits this long after its last event before its
/// removal is handed over, and then every other gone file goes with it: a
/// folder emptied by `rm` or a sync tool arrives as one batch, which the
/// pipeline's `watch.max_removals` guard can see whole.
const REMOVAL_SETTLE: Duration = Duration::from_secs(1);

/// While the articles folder is missing, look for it this often.
const FOLDER_POLL: Duration = Duration::from_secs(1);

/// What the pipeline thread is told.
pub enum Msg {
    /// A watcher event, stamped when it arrived (not when it was handled: a
    /// long batch must not hide the wait from `event_to_publish_ms`).
    Fs(notify::Result<notify::Event>, Instant),
    /// Stop after the batch in hand.
    Shutdown,
}

/// Work the watch stage hands the pipeline.
pub enum Work {
    /// These files (keys relative to the articles folder) settled.
    Files {
        keys: BTreeSet<String>,
        /// Still had an open writer when they were taken: a parse failure
        /// means "not yet", not "rejected".
        provisional: HashSet<String>,
        /// When each file's first unhandled event arrived.
        first_event: HashMap<String, Instant>,
    },
    /// Look at the whole folder.
    Reconcile(Reason),
}

/// Why the whole folder is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A watcher overflow, or a folder moved in, out or removed.
    Rescan,
    /// The periodic safety net (`watch.rescan_secs`).
    Periodic,
    /// The articles folder came back after being missing.
    FolderBack,
}

/// A file with events not yet acted on.
struct Pending {
    first_event: Instant,
    last_event: Instant,
    /// A write was seen and no close since: someone may still be writing.
    writing: bool,
}

impl Pending {
    fn due(&self, debounce: Duration) -> Instant {
        let wait = if self.writing {
            debounce.max(OPEN_WRITER_PATIENCE)
        } else {
            debounce
        };
        self.last_event + wait
    }
}

pub struct Watch {
    root: PathBuf,
    /// Notify may report paths through the canonical root; both spellings.
    roots: Vec<PathBuf>,
    debounce: Duration,
    rescan_every: Option<Duration>,
    tx: mpsc::Sender<Msg>,
    watcher: Option<notify::RecommendedWatcher>,
    pending: HashMap<String, Pending>,
    rescan: bool,
    next_rescan: Option<Instant>,
    /// The folder is missing; looked for every [`FOLDER_POLL`].
    folder_gone: bool,
}

impl Watch {
    /// Start watching `root` (which must exist). Events arrive on `tx`.
    pub fn start(
        root: &Path,
        debounce: Duration,
        rescan_every: Option<Duration>,
        tx: mpsc::Sender<Msg>,
    ) -> Result<Watch> {
        let mut watch = Watch {
            root: root.to_path_buf(),
            roots: Vec::new(),
            debounce,
            rescan_every,
            tx,
            watcher: None,
            pending: HashMap::new(),
            rescan: false,
            next_rescan: rescan_every.map(|d| Instant::now() + d),
            folder_gone: false,
        };
        watch.watcher = Some(watch.new_watcher()?);
        Ok(watch)
    }

    fn new_watcher(&mut self) -> Result<notify::RecommendedWatcher> {
        self.roots = [Some(self.root.clone()), self.root.canonicalize().ok()]
            .into_iter()
            .flatten()
            .collect();
        let tx = self.tx.clone();
        // Links are not followed: a linked folder outside the articles folder
        // must not be watched (the pipeline refuses to read through it anyway).
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = notify::RecommendedWatcher::new(
            move |event| {
                let _ = tx.send(Msg::Fs(event, Instant::now()));
            },
            config,
        )
        .context("cannot start the file watcher")?;
        watcher
            .watch(&self.root, notify::RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", self.root.display()))?;
        Ok(watcher)
    }

    /// How long the caller may sleep before [`Watch::take`] has something.
    pub fn timeout(&self, now: Instant) -> Duration {
        let mut deadline = self
            .pending
            .iter()
            .map(|(key, p)| self.ready_at(key, p))
            .min();
        if let Some(r) = self.next_rescan {
            deadline = Some(deadline.map_or(r, |d| d.min(r)));
        }
        let wait = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(now)
        });
        if self.folder_gone || self.rescan {
            wait.min(FOLDER_POLL)
        } else {
            wait
        }
    }

    /// Take in one watcher message.
    pub fn note(&mut self, event: notify::Result<notify::Event>, at: Instant) {
        match event {
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; rescanning the folder");
                self.rescan = true;
            }
            Ok(event) => self.note_event(&event, at),
        }
    }

    /// Ask for a reconciliation at the next [`Watch::take`].
    pub fn request_rescan(&mut self) {
        self.rescan = true;
    }

    /// The pipeline found the articles folder missing: stop watching (its
    /// watch died with it), forget pending files (their events are not
    /// removals), and look for it every second.
    pub fn folder_missing(&mut self) {
        if !self.folder_gone {
            tracing::error!(
                folder = %self.root.display(),
                "the articles folder is missing (renamed, deleted or unmounted): nothing is removed from the feeds; waiting for it to come back"
            );
        }
        self.folder_gone = true;
        self.watcher = None;
        self.pending.clear();
        self.rescan = false;
    }

    /// What is due now: the whole folder, or the files whose events settled.
    pub fn take(&mut self, now: Instant) -> Option<Work> {
        if self.folder_gone {
            if !self.root.is_dir() {
                return None;
            }
            match self.new_watcher() {
                Ok(w) => {
                    tracing::info!(folder = %self.root.display(), "the articles folder is back; reconciling");
                    self.watcher = Some(w);
                    self.folder_gone = false;
                    self.pending.clear();
                    self.next_rescan = self.rescan_every.map(|d| now + d);
                    return Some(Work::Reconcile(Reason::FolderBack));
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot watch the articles folder yet");
                    return None;
                }
            }
        }
        let periodic = self.next_rescan.is_some_and(|r| now >= r) && self.pending.is_empty();
        if self.rescan || periodic {
            let reason = if self.rescan {
                Reason::Rescan
            } else {
                Reason::Periodic
            };
            self.pending.clear();
            self.rescan = false;
            self.next_rescan = self.rescan_every.map(|d| now + d);
            return Some(Work::Reconcile(reason));
        }
        let mut removals_due = false;
        let mut ready: Vec<String> = Vec::new();
        for (key, p) in &self.pending {
            if self.ready_at(key, p) > now {
                continue;
            }
            if self.gone(key) {
                removals_due = true;
            } else {
                ready.push(key.clone());
            }
        }
        if removals_due {
            ready.extend(self.pending.keys().filter(|k| self.gone(k)).cloned());
        }
        if ready.is_empty() {
            return None;
        }
        ready.sort();
        ready.truncate(MAX_BATCH);
        let mut provisional = HashSet::new();
        let mut first_event = HashMap::new();
        for key in &ready {
            if let Some(p) = self.pending.remove(key) {
                if p.writing {
                    provisional.insert(key.clone());
                }
                first_event.insert(key.clone(), p.first_event);
            }
        }
        Some(Work::Files {
            keys: ready.into_iter().collect(),
            provisional,
            first_event,
        })
    }

    fn gone(&self, key: &str) -> bool {
        std::fs::symlink_metadata(self.root.join(key)).is_err()
    }

    /// When a pending file may be handed over: after the debounce, and for a
    /// file that is gone, after [`REMOVAL_SETTLE`] too.
    fn ready_at(&self, key: &str, p: &Pending) -> Instant {
        let due = p.due(self.debounce);
        if self.gone(key) {
            due.max(p.last_event + REMOVAL_SETTLE)
        } else {
            due
        }
    }

    /// Files still changing go back to wait for their next quiet moment,
    /// keeping the time of their first event.
    pub fn requeue(&mut self, key: &str, first_event: Instant) {
        let now = Instant::now();
        let p = self.pending.entry(key.to_string()).or_insert(Pending {
            first_event,
            last_event: now,
            writing: true,
        });
        p.last_event = now;
        p.first_event = p.first_event.min(first_event);
    }

    /// Turn one notify event into pending work.
    fn note_event(&mut self, event: &notify::Event, at: Instant) {
        if event.need_rescan() {
            self.rescan = true;
            return;
        }
        for path in &event.paths {
            // The articles folder itself (or a folder above it) moved or went
            // away: only a reconciliation can tell what is left.
            if self.roots.iter().any(|r| r.starts_with(path)) {
                if !matches!(event.kind, EventKind::Access(_)) {
                    self.rescan = true;
                }
                continue;
            }
            let Some((root, key)) = self
                .roots
                .iter()
                .find_map(|r| source::relative_key(r, path).map(|k| (r, k)))
            else {
                continue;
            };
            // A sidecar's change is a change of its article (whichever of
            // the names exists; the others are not known and are ignored).
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(articles) = source::articles_of_sidecar(&name)
                && !source::is_ignored_name(&name)
            {
                if matches!(event.kind, EventKind::Access(_)) {
                    continue;
                }
                let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
                for article in articles {
                    let key = if dir.is_empty() {
                        article
                    } else {
                        format!("{dir}/{article}")
                    };
                    let p = self.pending.entry(key).or_insert(Pending {
                        first_event: at,
                        last_event: at,
                        writing: false,
                    });
                    p.last_event = p.last_event.max(at);
                }
                continue;
            }
            if source::is_article_path(root, path) {
                let writing = match event.kind {
                    // Reads (ours included) change nothing: feedwire opening
                    // a file must never make it pending again.
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
                    EventKind::Access(_) => continue,
                    EventKind::Create(CreateKind::File)
                    | EventKind::Modify(ModifyKind::Data(_)) => true,
                    EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => false,
                    _ => self.pending.get(&key).is_some_and(|p| p.writing),
                };
                let p = self.pending.entry(key).or_insert(Pending {
                    first_event: at,
                    last_event: at,
                    writing,
                });
                p.last_event = p.last_event.max(at);
                p.writing = writing;
            } else if matches!(event.kind, EventKind::Access(_)) {
                // Reads of anything are not changes.
            } else {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir_like = crate::article::Format::from_file_name(&name).is_none()
                    && !source::is_ignored_name(&name);
                // A folder moved in, out or removed: its files produce no events of
                // their own, so look at the whole tree (cheap: unchanged files are
                // only stat'ed).
                if dir_like
                    && (path.is_dir()
                        || matches!(
                            event.kind,
                            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                        ))
                {
                    self.rescan = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, Event};

    fn watch(dir: &Path) -> Watch {
        let (tx, _rx) = mpsc::channel();
        Watch::start(dir, Duration::from_millis(10), None, tx).unwrap()
    }

    /// A file's wait is counted from when its first event arrived, not from
    /// when the pipeline thread got round to it.
    #[test]
    fn a_batch_carries_the_arrival_time_of_each_file_s_first_event() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), "x").unwrap();
        let mut w = watch(&root);
        let arrived = Instant::now() - Duration::from_secs(5);
        let event = Event::new(EventKind::Create(CreateKind::File)).add_path(root.join("a.txt"));
        w.note(Ok(event), arrived);
        let later = Instant::now() + Duration::from_secs(10);
        match w.take(later) {
            Some(Work::Files { first_event, .. }) => {
                assert_eq!(first_event.get("a.txt"), Some(&arrived))
            }
            _ => panic!("a.txt should be due"),
        }
    }

    /// Reading a file (feedwire's own read included) never makes it pending.
    #[test]
    fn reads_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), "x").unwrap();
        let mut w = watch(&root);
        for kind in [
            AccessKind::Open(notify::event::AccessMode::Any),
            AccessKind::Close(AccessMode::Read),
            AccessKind::Read,
        ] {
            let event = Event::new(EventKind::Access(kind)).add_path(root.join("a.txt"));
            w.note(Ok(event), Instant::now());
        }
        assert!(w.take(Instant::now() + Duration::from_secs(10)).is_none());
    }
}
