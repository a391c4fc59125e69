//! Reading a chunk of files: a `stat` each to skip unchanged ones, then
//! read and parse on the reader threads, each file within the per-file time
//! budget (`ingest.parse_budget_ms`), so one hostile file delays the others
//! by at most that much; and links are resolved at read time, so nothing
//! outside the articles folder is ever read.

use super::Interrupted;
use crate::catalog::{FileStamp, KnownFile};
use crate::ingest::{self, IngestOptions};
use crate::source::{self, SourceFile};
use anyhow::Result;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What reading one file gave. Short-lived (one chunk of files), so the
/// large `Parsed` variant is not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Read {
    /// Stamp matches the catalog: not read.
    Unchanged,
    /// Bytes identical to what the catalog has: only the stamp moved.
    SameContent(FileStamp),
    Parsed(
        FileStamp,
        Result<Box<crate::article::Article>, ingest::IngestError>,
    ),
    /// Changed while being read: try again later.
    Unsettled,
    /// Gone, or it leads outside the articles folder (a link): not an article.
    Gone,
    Unreadable(FileStamp, String),
}

/// Reads and parses files on the reader threads, each within the per-file
/// time budget.
#[derive(Clone, Copy)]
pub(super) struct ChunkReader<'a> {
    pub pool: &'a rayon::ThreadPool,
    pub known: &'a HashMap<String, KnownFile>,
    pub opts: &'a IngestOptions,
    pub canonical_root: &'a Path,
    pub budget: Duration,
}

/// A chunk whose files are being read.
pub(super) struct Submitted {
    /// One slot per file; filled at once for files settled without reading
    /// (stamp unchanged), the others as their reads finish.
    reads: Vec<Option<Read>>,
    waiting: usize,
    paths: Vec<PathBuf>,
    rx: mpsc::Receiver<(usize, ReadEvent)>,
    budget: Duration,
}

enum ReadEvent {
    Started(Instant),
    Done(Read),
}

impl ChunkReader<'_> {
    /// Start reading a chunk. Unchanged files are recognised here by their
    /// stamp (a `stat` each, in parallel); the others are queued on the
    /// reader threads.
    pub(super) fn submit(&self, chunk: &[SourceFile]) -> Submitted {
        let checks: Vec<Option<Read>> = chunk
            .par_iter()
            .map(|f| unchanged(f, self.known.get(&f.rel)))
            .collect();
        let (tx, rx) = mpsc::channel();
        let mut waiting = 0;
        for (i, (file, check)) in chunk.iter().zip(&checks).enumerate() {
            if check.is_some() {
                continue;
            }
            waiting += 1;
            let tx = tx.clone();
            let file = file.clone();
            let known = self.known.get(&file.rel).cloned();
            let opts = self.opts.clone();
            let root = self.canonical_root.to_path_buf();
            self.pool.spawn(move || {
                let _ = tx.send((i, ReadEvent::Started(Instant::now())));
                // A parser bug must reject one file, not take the daemon down.
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    read_one(&file, known.as_ref(), &opts, &root)
                }))
                .unwrap_or_else(|_| {
                    Read::Unreadable(
                        stamp_without_hash(&file.abs),
                        "feedwire failed while parsing this file (a bug: please report it with the file)"
                            .into(),
                    )
                });
                let _ = tx.send((i, ReadEvent::Done(read)));
            });
        }
        Submitted {
            reads: checks,
            waiting,
            paths: chunk.iter().map(|f| f.abs.clone()).collect(),
            rx,
            budget: self.budget,
        }
    }
}

impl Submitted {
    /// Wait for the chunk's files. A file still parsing `budget` after its
    /// parse started is rejected as too complex, so one hostile file delays
    /// the others by at most the budget; its parse finishes on its thread and
    /// the result is dropped.
    pub(super) fn collect(self, interrupted: &AtomicBool) -> Result<Vec<Read>> {
        let Submitted {
            mut reads,
            mut waiting,
            paths,
            rx,
            budget,
        } = self;
        let mut started: HashMap<usize, Instant> = HashMap::new();
        while waiting > 0 {
            if interrupted.load(Ordering::Relaxed) {
                return Err(Interrupted.into());
            }
            let now = Instant::now();
            let next_expiry = started.values().map(|t| *t + budget).min();
            // Wake at least every 100 ms to notice an interruption.
            let wait = next_expiry
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(now)
                })
                .min(Duration::from_millis(100));
            match rx.recv_timeout(wait) {
                Ok((i, ReadEvent::Started(at))) => {
                    started.insert(i, at);
                }
                Ok((i, ReadEvent::Done(read))) => {
                    if reads[i].is_none() {
                        started.remove(&i);
                        reads[i] = Some(read);
                        waiting -= 1;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    let expired: Vec<usize> = started
                        .iter()
                        .filter(|(_, at)| now.duration_since(**at) >= budget)
                        .map(|(i, _)| *i)
                        .collect();
                    for i in expired {
                        started.remove(&i);
                        reads[i] = Some(Read::Unreadable(
                            stamp_without_hash(&paths[i]),
                            format!(
                                "parsing took longer than {} ms (ingest.parse_budget_ms): the file is too large or too deeply nested; simplify it",
                                budget.as_millis()
                            ),
                        ));
                        waiting -= 1;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("the reader threads stopped")
                }
            }
        }
        Ok(reads
            .into_iter()
            .map(|r| r.expect("every file has a read"))
            .collect())
    }
}

/// The stamp of a file that could not be read through: enough to read it
/// again when it changes.
fn stamp_without_hash(path: &Path) -> FileStamp {
    let s = source::stat(path).unwrap_or(source::Stat {
        size: 0,
        mtime_ns: 0,
        inode: 0,
    });
    FileStamp {
        size: s.size,
        mtime_ns: s.mtime_ns,
        inode: s.inode,
        hash: String::new(),
    }
}

/// `Some` when a file need not be read: its stamp matches the catalog's.
/// Rejected files too: they are read again only when they change (or when
/// the parser or its settings do), never because feedwire looked at them.
fn unchanged(file: &SourceFile, known: Option<&KnownFile>) -> Option<Read> {
    let known = known?;
    let stat = source::stat(&file.abs).ok()?;
    stat.matches(&known.stamp).then_some(Read::Unchanged)
}

fn read_one(
    file: &SourceFile,
    known: Option<&KnownFile>,
    opts: &IngestOptions,
    canonical_root: &Path,
) -> Read {
    // Checked on the canonical path at read time: a link (to a file or a
    // folder) leading outside the articles folder is not an article.
    let Some(real) = source::resolve_inside(canonical_root, &file.abs) else {
        if file.abs.exists() {
            tracing::debug!(file = %file.abs.display(), "leads outside the articles folder; not read");
        }
        return Read::Gone;
    };
    let (stamp, bytes) = match source::read(&real, opts.max_bytes) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Gone,
        Err(e) => {
            return Read::Unreadable(
                stamp_without_hash(&real),
                format!("cannot read the file: {e}"),
            );
        }
    };
    if !source::is_settled(&real, &stamp)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A chunk of one file whose read runs `work` on a reader thread.
    fn one(
        pool: &rayon::ThreadPool,
        budget: Duration,
        work: impl FnOnce() -> Read + Send + 'static,
    ) -> Submitted {
        let (tx, rx) = mpsc::channel();
        pool.spawn(move || {
            let _ = tx.send((0, ReadEvent::Started(Instant::now())));
            let read = work();
            let _ = tx.send((0, ReadEvent::Done(read)));
        });
        Submitted {
            reads: vec![None],
            waiting: 1,
            paths: vec![PathBuf::from("/nonexistent/slow.md")],
            rx,
            budget,
        }
    }

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
    }

    /// One slow file is cut off at the budget with a reason an editor can
    /// act on; the batch does not wait for it.
    #[test]
    fn a_parse_over_budget_is_rejected_without_waiting_for_it() {
        let pool = pool();
        let slow = one(&pool, Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(3));
            Read::Unchanged
        });
        let reads = slow.collect(&AtomicBool::new(false)).unwrap();
        match &reads[0] {
            Read::Unreadable(_, reason) => {
                assert!(reason.contains("ingest.parse_budget_ms"), "{reason}")
            }
            _ => panic!("a file over budget must be rejected"),
        }
    }

    /// Shutdown interrupts a batch waiting on a long parse.
    #[test]
    fn an_interrupt_stops_waiting_for_reads() {
        let pool = pool();
        let slow = one(&pool, Duration::from_secs(60), || {
            std::thread::sleep(Duration::from_secs(3));
            Read::Unchanged
        });
        let flag = Arc::new(AtomicBool::new(false));
        let setter = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            setter.store(true, Ordering::Relaxed);
        });
        let err = slow.collect(&flag).err().expect("interrupted");
        assert!(err.is::<Interrupted>(), "{err:#}");
    }

    /// A read that finishes within the budget is kept.
    #[test]
    fn a_read_within_budget_is_kept() {
        let pool = pool();
        let quick = one(&pool, Duration::from_secs(60), || Read::Unsettled);
        let reads = quick.collect(&AtomicBool::new(false)).unwrap();
        assert!(matches!(reads[0], Read::Unsettled));
    }
}
