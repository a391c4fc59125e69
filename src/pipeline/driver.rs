//! The driver: the pipeline thread's loop. It takes work from the
//! [`watch`](crate::watch) stage (settled files, or "look at the whole
//! folder"), runs it through the [`Pipeline`], publishes what changed, and
//! keeps the daemon's gauges. A batch that fails is logged, counted and
//! retried with a growing wait as a full reconciliation and republish; the
//! daemon never stops for it, unless it failed because another instance
//! took the lease over (`catalog::LeaseLost`): then the loop ends with that
//! error, and the daemon carries on as a standby. Operators' commands
//! (`apply-removals`) are noticed here within a second.

use super::{Interrupted, Outcome, Pipeline};
use crate::catalog::LeaseLost;
use crate::memory::Trim;
use crate::metrics::Metrics;
use crate::watch::{Msg, Reason, Watch, Work};
use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// After a failed batch, the first retry waits this long, doubling up to
/// `MAX_RETRY` while failures continue (a full disk, a locked catalog).
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// How often the pipeline thread looks for operators' commands in the
/// catalog (`feedwire apply-removals`): one cheap `PRAGMA data_version`.
const COMMAND_POLL: Duration = Duration::from_secs(1);

/// Run until [`Msg::Shutdown`] (or the channel closes): reconcile and
/// publish everything once, then follow the watch stage's work.
pub fn run(
    pipeline: Pipeline,
    watch: Watch,
    rx: mpsc::Receiver<Msg>,
    metrics: &Metrics,
    root: &Path,
) -> Result<()> {
    match process_loop(pipeline, watch, rx, metrics, root) {
        // Stopped in the middle of its start-up work: nothing is half done.
        Err(e) if e.is::<Interrupted>() => Ok(()),
        r => r,
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
    // What happened while the daemon was down: editors' commands, embargoes
    // that ended, tombstones that expired.
    let commands = pipeline.apply_commands()?;
    report_outcome(&commands, root, &mut watch);
    let lapsed = pipeline.apply_lifecycle()?;
    report_outcome(&lapsed, root, &mut watch);
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
    // The start-up publish is the largest burst of the daemon's life.
    crate::memory::release_free_memory();
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
    // Editors' commands seen and not yet applied: kept until a round applies
    // them, so neither a failed round nor a retry's wait loses them.
    let mut commands_waiting = false;
    let mut next_command_poll = Instant::now() + COMMAND_POLL;
    // The next embargo end or tombstone expiry: a timer, not a scan.
    let mut lifecycle_at = lifecycle_deadline(&pipeline);
    let mut trim = Trim::new();
    loop {
        let now = Instant::now();
        // While a retry waits, events only accumulate: the retry looks at the
        // whole folder anyway.
        let mut timeout = match retry {
            Some((at, _)) => at.saturating_duration_since(now),
            None => watch.timeout(now),
        }
        .min(next_command_poll.saturating_duration_since(now));
        if let Some(at) = lifecycle_at {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        let first = match rx.recv_timeout(timeout) {
            Ok(msg) => Some(msg),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Nothing arrived before the timeout: if no work is due either
        // (below), this is an idle moment.
        let quiet = first.is_none();
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
            let acted = operator_acted(&pipeline, &mut data_version);
            if acted.approved_removals {
                watch.request_rescan();
            }
            commands_waiting |= acted.commands;
        }
        // Whether this turn did work (and freed memory worth handing back).
        let mut worked = true;
        let recovering = match retry {
            Some((at, _)) if now < at => continue,
            Some(_) => true,
            None => false,
        };
        let lifecycle_due = lifecycle_at.is_some_and(|at| now >= at);
        let result = if recovering {
            tracing::info!("retrying: reconciling the articles folder and republishing");
            full_pass(&mut pipeline, metrics, root, &mut watch, true)
        } else if commands_waiting || lifecycle_due {
            let started = Instant::now();
            let applying_commands = commands_waiting;
            let outcome = if applying_commands {
                pipeline.apply_commands()
            } else {
                pipeline.apply_lifecycle()
            };
            let done = outcome.and_then(|outcome| {
                finish_batch(
                    &mut pipeline,
                    metrics,
                    root,
                    &mut watch,
                    outcome,
                    &HashMap::new(),
                    started,
                )
            });
            if done.is_ok() && applying_commands {
                commands_waiting = false;
            }
            done
        } else {
            match watch.take(now) {
                None => {
                    worked = false;
                    if quiet {
                        trim.when_idle(now);
                    }
                    Ok(())
                }
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
        if worked {
            trim.after_work();
        }
        retry = match result {
            Ok(()) => None,
            Err(e) if e.is::<Interrupted>() => break,
            // Another instance leads now: retrying could only fail again.
            Err(e) if LeaseLost::caused(&e) => return Err(e),
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
        // The data version is not read again here: a command committed while
        // this round ran would be taken for our own doing and wait for the
        // next unrelated commit. (Our own commits may move it too; that costs
        // one look at the pending commands, nothing more.)
        lifecycle_at = lifecycle_deadline(&pipeline);
    }
    tracing::info!("pipeline stopped; catalog closed");
    Ok(())
}

/// What another process (an operator's or editor's command) asked of the
/// pipeline through the catalog.
#[derive(Default)]
struct Acted {
    /// `feedwire apply-removals`: reconcile.
    approved_removals: bool,
    /// `feedwire embargo/kill/correct/reinstate`.
    commands: bool,
}

fn operator_acted(pipeline: &Pipeline, data_version: &mut i64) -> Acted {
    let Ok(v) = pipeline.catalog().data_version() else {
        return Acted::default();
    };
    if v == *data_version {
        return Acted::default();
    }
    *data_version = v;
    let catalog = pipeline.catalog();
    Acted {
        commands: catalog.pending_commands().is_ok_and(|c| !c.is_empty()),
        approved_removals: catalog
            .held_removals()
            .is_ok_and(|held| held.iter().any(|h| h.approved)),
    }
}

/// The next embargo end or tombstone expiry as a moment on this clock.
fn lifecycle_deadline(pipeline: &Pipeline) -> Option<Instant> {
    let at = pipeline.next_lifecycle_deadline().ok()??;
    let wait = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Some(Instant::now() + wait)
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
        // No feed changed, but an article's ninjs document may have (one
        // withheld again, or killed before it was public), and the catalog's
        // marker should say the documents are current.
        pipeline.publish_article_documents()?;
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
