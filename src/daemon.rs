//! The daemon (`feedwire run`): reconcile, then watch the articles folder and
//! keep every feed current, serve HTTP, and push changes out.
//!
//! One thread owns the [`Pipeline`] (and so the catalog connection) and does
//! all writing of articles and feeds; file events (from the [`watch`]
//! stage), the periodic rescan and shutdown reach it as messages on one
//! channel. That makes ordering obvious: a batch is read, committed and
//! published before the next one starts. The async runtime hosts the signal
//! handlers, the HTTP server and syndication, which read from the published
//! store and write only the outbox and subscriptions (each batch takes
//! SQLite's write lock up front, so those writers wait rather than break it).
//!
//! A batch that fails (a full disk, a locked catalog) does not stop the
//! daemon: it is logged, counted in `/metrics`, and retried with a growing
//! wait as a full reconciliation and republish. If the pipeline thread ends
//! anyway, the daemon shuts down with an error so a supervisor restarts it,
//! rather than serving feeds that no longer move.
//!
//! Shutdown is bounded: a signal interrupts the batch in hand (its
//! transaction rolls back; its files are redone at the next start) and every
//! task gets one shared deadline, well inside systemd's `TimeoutStopSec`.
//!
//! [`watch`]: crate::watch

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{Interrupted, Outcome, Pipeline};
use crate::publish::Store;
use crate::watch::{Msg, Reason, Watch, Work};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// After a failed batch, the first retry waits this long, doubling up to
/// `MAX_RETRY` while failures continue (a full disk, a locked catalog).
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Everything still running at shutdown gets this long in all, well inside
/// the shipped unit's `TimeoutStopSec=20`.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// How often the pipeline thread looks for operators' commands in the
/// catalog (`feedwire apply-removals`): one cheap `PRAGMA data_version`.
const COMMAND_POLL: Duration = Duration::from_secs(1);

/// Run the daemon until SIGINT or SIGTERM.
pub fn run(cfg: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("feedwire-io")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run_async(cfg));
    // Tasks that outlived the shutdown bound are dropped, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn run_async(mut cfg: Config) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::new();
    // A missing folder is a misspelt or unmounted `paths.articles`, never an
    // empty newsroom: starting would publish empty feeds and tell every
    // partner to delete every article.
    if !cfg.paths.articles.is_dir() {
        anyhow::bail!(
            "paths.articles: the articles folder {} does not exist; create it, or correct paths.articles in {}",
            cfg.paths.articles.display(),
            cfg.source.display()
        );
    }
    // The watcher reports paths under the root it was given, made absolute
    // but not resolved (`/srv/site/../wire/x.txt`); a canonical root keeps
    // event paths and catalog keys in one spelling.
    cfg.paths.articles = cfg.paths.articles.canonicalize().with_context(|| {
        format!(
            "paths.articles: cannot resolve the articles folder {}",
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
    let watch = Watch::start(
        &root,
        Duration::from_millis(cfg.watch.debounce_ms),
        (cfg.watch.rescan_secs > 0).then(|| Duration::from_secs(cfg.watch.rescan_secs)),
        tx.clone(),
    )?;
    tracing::info!(folder = %root.display(), debounce_ms = cfg.watch.debounce_ms, "watching for articles");

    let mut pipeline = Pipeline::open(cfg.clone(), Some(store.clone()))?;
    let interrupt = pipeline.interrupt_handle();
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
        let state = crate::serve::AppState::new(
            Arc::new(cfg.clone()),
            store.clone(),
            metrics.clone(),
            catalog,
        )?;
        let router = crate::serve::router(state)
            .merge(crate::syndicate::hub_router(&cfg, &pipeline, &metrics)?);
        let limits = crate::serve::Limits::from_config(&cfg.server);
        let mut stop = shutdown_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.recv().await;
            };
            if let Err(e) = crate::serve::serve(listener, router, limits, shutdown).await {
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
            process_loop(pipeline, watch, rx, &proc_metrics, &root)
        })
        .context("cannot start the pipeline thread")?;

    tokio::select! {
        _ = wait_for_signal() => {
            tracing::info!("shutting down: stopping the batch in hand");
        }
        _ = ended_rx => {
            tracing::error!("the pipeline stopped; shutting down so a supervisor can restart feedwire");
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BOUND;
    interrupt.store(true, Ordering::Relaxed);
    let _ = tx.send(Msg::Shutdown);
    let _ = shutdown_tx.send(());
    let joined = tokio::time::timeout_at(
        deadline,
        tokio::task::spawn_blocking(move || processor.join()),
    )
    .await;
    for task in tasks {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    match joined {
        Err(_) => {
            tracing::warn!(
                bound_s = SHUTDOWN_BOUND.as_secs(),
                "the pipeline did not stop in time; its batch is redone at the next start"
            );
        }
        Ok(Err(e)) => return Err(e).context("the pipeline thread could not be joined"),
        Ok(Ok(Err(_))) => anyhow::bail!("the pipeline thread panicked"),
        Ok(Ok(Ok(result))) => result?,
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

fn process_loop(
    mut pipeline: Pipeline,
    mut watch: Watch,
    rx: mpsc::Receiver<Msg>,
    metrics: &Metrics,
    root: &Path,
) -> Result<()> {
    let started = Instant::now();
    let outcome = match pipeline.reconcile() {
        Err(e) if e.is::<Interrupted>() => return Ok(()),
        r => r?,
    };
    report_outcome(&outcome, root, &mut watch);
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

    // After a failed batch: when to retry, and the wait that led there.
    let mut retry: Option<(Instant, Duration)> = None;
    let mut data_version = pipeline.catalog().data_version()?;
    let mut next_command_poll = Instant::now() + COMMAND_POLL;
    loop {
        let now = Instant::now();
        // While a retry waits, events only accumulate: the retry looks at the
        // whole folder anyway.
        let timeout = match retry {
            Some((at, _)) => at.saturating_duration_since(now),
            None => watch.timeout(now),
        }
        .min(next_command_poll.saturating_duration_since(now));
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
                Msg::Fs(event, at) => watch.note(event, at),
            }
        }
        if stop {
            break;
        }
        let now = Instant::now();
        if now >= next_command_poll {
            next_command_poll = now + COMMAND_POLL;
            if operator_acted(&pipeline, &mut data_version) {
                watch.request_rescan();
            }
        }
        let recovering = match retry {
            Some((at, _)) if now < at => continue,
            Some(_) => true,
            None => false,
        };
        let result = if recovering {
            tracing::info!("retrying: reconciling the articles folder and republishing");
            full_pass(&mut pipeline, metrics, root, &mut watch, true)
        } else {
            match watch.take(now) {
                None => Ok(()),
                Some(Work::Reconcile(reason)) => {
                    match reason {
                        Reason::Periodic => tracing::debug!("periodic reconciliation"),
                        Reason::Rescan => tracing::info!(
                            "rescanning the articles folder (watcher overflow, folder change or an operator's command)"
                        ),
                        Reason::FolderBack => {}
                    }
                    full_pass(&mut pipeline, metrics, root, &mut watch, false)
                }
                Some(Work::Files {
                    keys,
                    provisional,
                    first_event,
                }) => {
                    let started = Instant::now();
                    pipeline.apply(&keys, &provisional).and_then(|outcome| {
                        for key in &outcome.unsettled {
                            if let Some(at) = first_event.get(key) {
                                watch.requeue(key, *at);
                            }
                        }
                        finish_batch(
                            &mut pipeline,
                            metrics,
                            root,
                            &mut watch,
                            outcome,
                            &first_event,
                            started,
                        )
                    })
                }
            }
        };
        retry = match result {
            Ok(()) => None,
            Err(e) if e.is::<Interrupted>() => break,
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
        // Our own commits move the data version too; only others' count.
        data_version = pipeline.catalog().data_version().unwrap_or(data_version);
    }
    tracing::info!("pipeline stopped; catalog closed");
    Ok(())
}

/// Has another process (an operator's `feedwire apply-removals`) changed the
/// catalog in a way the pipeline must act on?
fn operator_acted(pipeline: &Pipeline, data_version: &mut i64) -> bool {
    let Ok(v) = pipeline.catalog().data_version() else {
        return false;
    };
    if v == *data_version {
        return false;
    }
    *data_version = v;
    pipeline
        .catalog()
        .held_removals()
        .is_ok_and(|held| held.iter().any(|h| h.approved))
}

/// Reconcile the whole folder, publish what changed, and after a failure
/// publish every feed (a commit may have gone through without its publish).
fn full_pass(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    root: &Path,
    watch: &mut Watch,
    publish_all: bool,
) -> Result<()> {
    let started = Instant::now();
    let outcome = pipeline.reconcile()?;
    finish_batch(
        pipeline,
        metrics,
        root,
        watch,
        outcome,
        &HashMap::new(),
        started,
    )?;
    if publish_all {
        pipeline.publish(None)?;
        tracing::info!("recovered: catalog and feeds are current");
    }
    Ok(())
}

fn finish_batch(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    root: &Path,
    watch: &mut Watch,
    outcome: Outcome,
    first_event: &HashMap<String, Instant>,
    started: Instant,
) -> Result<()> {
    report_outcome(&outcome, root, watch);
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
        // From the first event the file caused, so a stall anywhere (a long
        // batch before this one included) shows in the figure.
        let since = first_event.get(key).copied().unwrap_or(started);
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

/// Log what a batch means for an operator: rejections (once per change of
/// the file), removals held back, a missing folder.
fn report_outcome(outcome: &Outcome, root: &Path, watch: &mut Watch) {
    if outcome.folder_missing {
        watch.folder_missing();
        return;
    }
    for (key, reason) in &outcome.rejected {
        tracing::warn!(file = %root.join(key).display(), "rejected: {reason}");
    }
    if outcome.hold_started {
        tracing::error!(
            held = outcome.held.len(),
            first = %outcome.held.first().map(String::as_str).unwrap_or(""),
            "more articles would be removed at once than watch.max_removals allows: the removals are held and feeds, pages and partners are unchanged; restore the files to cancel, or run `feedwire apply-removals` if the deletion was intended (`feedwire status` lists them)"
        );
    } else if !outcome.held.is_empty() {
        tracing::warn!(
            held = outcome.held.len(),
            "more removals joined the ones already held (feedwire status)"
        );
    }
    if !outcome.released.is_empty() {
        tracing::info!(
            files = outcome.released.len(),
            "held removals cancelled: the files are back"
        );
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
