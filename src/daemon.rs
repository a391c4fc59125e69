//! The daemon (`feedwire run`): reconcile, then watch the articles folder and
//! keep every feed current, serve HTTP, and push changes out.
//!
//! One thread owns the [`Pipeline`] (and so the catalog connection) and does
//! all writing of articles and feeds; file events, the periodic rescan and
//! shutdown reach it as messages on one channel. That makes ordering obvious:
//! a batch is read, committed and published before the next one starts. The
//! async runtime hosts the signal handlers, the HTTP server and syndication,
//! which read from the published store and write only the outbox and
//! subscriptions (each batch takes SQLite's write lock up front, so those
//! writers wait rather than break it).
//!
//! A batch that fails (a full disk, a locked catalog) does not stop the
//! daemon: it is logged, counted in `/metrics`, and retried with a growing
//! wait as a full reconciliation and republish. If the pipeline thread ends
//! anyway, the daemon shuts down with an error so a supervisor restarts it,
//! rather than serving feeds that no longer move.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{Outcome, Pipeline};
use crate::publish::Store;
use crate::source;
use anyhow::{Context, Result};
use notify::Watcher;
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A file with an open writer (no close seen yet) is read anyway once it has
/// been quiet this long: some writers (network file systems, some sync tools)
/// never report a close.
const OPEN_WRITER_PATIENCE: Duration = Duration::from_secs(3);

/// At most this many files per batch, so a bulk import publishes progressively
/// instead of in one long silence.
const MAX_BATCH: usize = 5000;

/// After a failed batch, the first retry waits this long, doubling up to
/// `MAX_RETRY` while failures continue (a full disk, a locked catalog).
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What the processing thread is told.
pub enum Msg {
    Fs(notify::Result<notify::Event>),
    /// Stop after the batch in hand.
    Shutdown,
}

/// Run the daemon until SIGINT or SIGTERM.
pub fn run(cfg: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("feedwire-io")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(cfg))
}

async fn run_async(mut cfg: Config) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::new();
    std::fs::create_dir_all(&cfg.paths.articles).with_context(|| {
        format!(
            "cannot create the articles folder {}",
            cfg.paths.articles.display()
        )
    })?;
    // The watcher reports paths under the root it was given, made absolute
    // but not resolved (`/srv/site/../wire/x.txt`); a canonical root keeps
    // event paths and catalog keys in one spelling.
    cfg.paths.articles = cfg.paths.articles.canonicalize().with_context(|| {
        format!(
            "cannot resolve the articles folder {}",
            cfg.paths.articles.display()
        )
    })?;
    let root = cfg.paths.articles.clone();

    // Bind before anything slow so a busy port fails fast and loudly.
    let listener = if cfg.server.enabled {
        let addr = cfg.server.listen_addr()?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (server.listen): is another feedwire or web server running there?")
        })?;
        tracing::info!("serving http://{}/", listener.local_addr()?);
        Some(listener)
    } else {
        None
    };

    // Watch before reconciling: a file that lands during start-up reconciliation
    // then produces an event and is not missed.
    let (tx, rx) = mpsc::channel::<Msg>();
    let fs_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = fs_tx.send(Msg::Fs(event));
    })
    .context("cannot start the file watcher")?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", root.display()))?;
    tracing::info!(folder = %root.display(), debounce_ms = cfg.watch.debounce_ms, "watching for articles");

    let mut pipeline = Pipeline::open(cfg.clone(), Some(store.clone()))?;
    let (shutdown_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();

    // Syndication registers its commit hook (outbox rows commit with the
    // change that caused them) and starts its delivery workers.
    tasks.extend(crate::syndicate::start(
        &cfg,
        &mut pipeline,
        &store,
        &metrics,
        &shutdown_tx,
    )?);

    if let Some(listener) = listener {
        // A second catalog connection for page rendering; WAL lets it read
        // while the pipeline thread writes.
        let catalog = crate::catalog::Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
        let state = crate::serve::AppState {
            cfg: Arc::new(cfg.clone()),
            store: store.clone(),
            metrics: metrics.clone(),
            catalog: Arc::new(std::sync::Mutex::new(catalog)),
        };
        let router = crate::serve::router(state)
            .merge(crate::syndicate::hub_router(&cfg, &pipeline, &metrics)?);
        let mut stop = shutdown_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.recv().await;
            };
            if let Err(e) = crate::serve::serve(listener, router, shutdown).await {
                tracing::error!(error = %format!("{e:#}"), "the HTTP server stopped");
            }
        }));
    }

    let proc_metrics = metrics.clone();
    // Dropped when the pipeline thread ends, however it ends: a daemon whose
    // pipeline has stopped must not go on serving stale feeds as if healthy.
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let processor = std::thread::Builder::new()
        .name("feedwire-pipeline".into())
        .spawn(move || {
            let _ended = ended_tx;
            process_loop(pipeline, rx, &proc_metrics, &root)
        })
        .context("cannot start the pipeline thread")?;

    tokio::select! {
        _ = wait_for_signal() => {
            tracing::info!("shutting down: finishing the batch in hand");
        }
        _ = ended_rx => {
            tracing::error!("the pipeline stopped; shutting down so a supervisor can restart feedwire");
        }
    }
    drop(watcher);
    let _ = tx.send(Msg::Shutdown);
    let result = tokio::task::spawn_blocking(move || processor.join())
        .await
        .context("the pipeline thread could not be joined")?;
    let _ = shutdown_tx.send(());
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    match result {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the pipeline thread panicked"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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

fn process_loop(
    mut pipeline: Pipeline,
    rx: mpsc::Receiver<Msg>,
    metrics: &Metrics,
    root: &Path,
) -> Result<()> {
    let debounce = Duration::from_millis(pipeline.cfg.watch.debounce_ms);
    let rescan_every = (pipeline.cfg.watch.rescan_secs > 0)
        .then(|| Duration::from_secs(pipeline.cfg.watch.rescan_secs));
    // Notify may report paths through the canonical root; accept both spellings.
    let roots: Vec<PathBuf> = [Some(root.to_path_buf()), root.canonicalize().ok()]
        .into_iter()
        .flatten()
        .collect();

    let started = Instant::now();
    let outcome = pipeline.reconcile()?;
    log_rejections(&outcome, root);
    // Publish everything at start-up: a crash between a catalog commit and the
    // publish that should have followed it is repaired here (unchanged
    // documents are not rewritten).
    let report = pipeline.publish(None)?;
    metrics
        .articles
        .store(pipeline.catalog().article_count()?, Ordering::Relaxed);
    update_gauges(&pipeline, metrics, Default::default());
    metrics.publishes.fetch_add(1, Ordering::Relaxed);
    metrics
        .documents_written
        .fetch_add(report.written.len() as u64, Ordering::Relaxed);
    metrics.ready.store(true, Ordering::Release);
    tracing::info!(
        articles = metrics.articles.load(Ordering::Relaxed),
        changed = outcome.accepted.len(),
        removed = outcome.removed.len(),
        unchanged = outcome.unchanged,
        written = report.written.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ready"
    );

    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut rescan = false;
    let mut next_rescan = rescan_every.map(|d| Instant::now() + d);
    // After a failed batch: when to retry, and the wait that led there.
    let mut retry: Option<(Instant, Duration)> = None;
    loop {
        let now = Instant::now();
        let mut deadline = pending.values().map(|p| p.due(debounce)).min();
        if let Some(r) = next_rescan {
            deadline = Some(deadline.map_or(r, |d| d.min(r)));
        }
        // While a retry waits, events only accumulate: the retry looks at the
        // whole folder anyway.
        if let Some((at, _)) = retry {
            deadline = Some(at);
        }
        let timeout = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(now)
        });
        let first = match rx.recv_timeout(timeout) {
            Ok(msg) => Some(msg),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Take everything already queued, so a burst becomes one batch.
        let mut stop = false;
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match msg {
                Msg::Shutdown => stop = true,
                Msg::Fs(Err(e)) => {
                    tracing::warn!(error = %e, "file watcher error; rescanning the folder");
                    rescan = true;
                }
                Msg::Fs(Ok(event)) => note_event(&event, &roots, &mut pending, &mut rescan),
            }
        }
        if stop {
            break;
        }
        let now = Instant::now();
        let recovering = match retry {
            Some((at, _)) if now < at => continue,
            Some(_) => true,
            None => false,
        };
        let periodic = next_rescan.is_some_and(|r| now >= r) && pending.is_empty();
        let result = if rescan || periodic || recovering {
            if recovering {
                tracing::info!("retrying: reconciling the articles folder and republishing");
            } else if periodic {
                tracing::debug!("periodic reconciliation");
            } else {
                tracing::info!(
                    "rescanning the articles folder (watcher overflow or folder change)"
                );
            }
            pending.clear();
            rescan = false;
            next_rescan = rescan_every.map(|d| Instant::now() + d);
            full_pass(&mut pipeline, metrics, root, recovering)
        } else {
            process_due(&mut pipeline, metrics, root, &mut pending, debounce, now)
        };
        retry = match result {
            Ok(()) => None,
            Err(e) => {
                // A failed batch left the catalog as it was (its transaction
                // rolled back) or committed without publishing; a full pass
                // later repairs both. The daemon stays up meanwhile: feeds
                // keep their last good version.
                let wait = retry.map_or(FIRST_RETRY, |(_, w)| (w * 2).min(MAX_RETRY));
                metrics.batch_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %format!("{e:#}"),
                    retry_in_s = wait.as_secs(),
                    "could not process changes; feeds keep their last good version"
                );
                Some((Instant::now() + wait, wait))
            }
        };
    }
    tracing::info!("pipeline stopped; catalog closed");
    Ok(())
}

/// Reconcile the whole folder, publish what changed, and after a failure
/// publish every feed (a commit may have gone through without its publish).
fn full_pass(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    root: &Path,
    publish_all: bool,
) -> Result<()> {
    let started = Instant::now();
    let outcome = pipeline.reconcile()?;
    finish_batch(pipeline, metrics, root, outcome, &HashMap::new(), started)?;
    if publish_all {
        pipeline.publish(None)?;
        tracing::info!("recovered: catalog and feeds are current");
    }
    Ok(())
}

/// Process the files whose events have settled.
fn process_due(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    root: &Path,
    pending: &mut HashMap<String, Pending>,
    debounce: Duration,
    now: Instant,
) -> Result<()> {
    let mut ready: Vec<String> = pending
        .iter()
        .filter(|(_, p)| p.due(debounce) <= now)
        .map(|(k, _)| k.clone())
        .collect();
    if ready.is_empty() {
        return Ok(());
    }
    ready.sort();
    ready.truncate(MAX_BATCH);
    let mut taken = HashMap::new();
    for key in &ready {
        if let Some(p) = pending.remove(key) {
            taken.insert(key.clone(), p);
        }
    }
    let provisional: HashSet<String> = taken
        .iter()
        .filter(|(_, p)| p.writing)
        .map(|(k, _)| k.clone())
        .collect();
    let keys: BTreeSet<String> = ready.into_iter().collect();
    let started = Instant::now();
    let outcome = pipeline.apply(&keys, &provisional)?;
    // Files still changing go back to wait for their next quiet moment.
    for key in &outcome.unsettled {
        if let Some(mut p) = taken.remove(key) {
            p.last_event = Instant::now();
            pending.insert(key.clone(), p);
        }
    }
    finish_batch(pipeline, metrics, root, outcome, &taken, started)
}

/// Turn one notify event into pending work.
fn note_event(
    event: &notify::Event,
    roots: &[PathBuf],
    pending: &mut HashMap<String, Pending>,
    rescan: &mut bool,
) {
    if event.need_rescan() {
        *rescan = true;
        return;
    }
    let now = Instant::now();
    for path in &event.paths {
        let Some((root, key)) = roots
            .iter()
            .find_map(|r| source::relative_key(r, path).map(|k| (r, k)))
        else {
            continue;
        };
        if source::is_article_path(root, path) {
            let p = pending.entry(key).or_insert(Pending {
                first_event: now,
                last_event: now,
                writing: false,
            });
            p.last_event = now;
            match event.kind {
                EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => {
                    p.writing = true
                }
                EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Remove(_) => p.writing = false,
                _ => {}
            }
        } else if matches!(event.kind, EventKind::Access(_)) {
            // Reads of anything are not changes.
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir_like =
                crate::ingest::format_for(&name).is_none() && !source::is_ignored_name(&name);
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
                *rescan = true;
            }
        }
    }
}

fn finish_batch(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    root: &Path,
    outcome: Outcome,
    events: &HashMap<String, Pending>,
    started: Instant,
) -> Result<()> {
    log_rejections(&outcome, root);
    if outcome.affected.is_empty() {
        if !outcome.accepted.is_empty() {
            tracing::debug!(files = outcome.accepted.len(), "no feed content changed");
        }
        update_gauges(pipeline, metrics, outcome.counts);
        return Ok(());
    }
    let report = pipeline.publish(Some(&outcome.affected))?;
    metrics.publishes.fetch_add(1, Ordering::Relaxed);
    metrics
        .documents_written
        .fetch_add(report.written.len() as u64, Ordering::Relaxed);
    update_gauges(pipeline, metrics, outcome.counts);
    let feeds = report.written.join(" ");
    let done = Instant::now();
    for key in outcome.accepted.iter().chain(&outcome.removed) {
        let since = events.get(key).map_or(started, |p| p.first_event);
        let latency = done.duration_since(since);
        metrics.observe_latency(latency.as_secs_f64());
        let verb = if outcome.removed.contains(key) {
            "removed"
        } else {
            "published"
        };
        tracing::info!(
            file = %root.join(key).display(),
            feeds = %feeds,
            event_to_publish_ms = latency.as_secs_f64() * 1e3,
            "{verb}"
        );
    }
    for (path, reason) in &report.refused {
        tracing::error!(feed = %path, reason = %reason, "feed not published; the last good version stays");
    }
    Ok(())
}

fn log_rejections(outcome: &Outcome, root: &Path) {
    for (key, reason) in &outcome.rejected {
        tracing::warn!(file = %root.join(key).display(), "rejected: {reason}");
    }
}

/// Gauges after a batch. The article count moves by the batch's changes
/// rather than by a `count(*)`, which would scan the whole archive per event.
fn update_gauges(pipeline: &Pipeline, metrics: &Metrics, counts: crate::catalog::ChangeCounts) {
    metrics.articles.fetch_add(counts.added, Ordering::Relaxed);
    metrics
        .articles
        .fetch_sub(counts.removed, Ordering::Relaxed);
    if let Ok(n) = pipeline.catalog().rejection_count() {
        metrics.rejected_files.store(n, Ordering::Relaxed);
    }
}
