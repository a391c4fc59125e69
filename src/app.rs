//! The daemon (`feedwire run`) wired together: the one place that builds the
//! stages and connects them.
//!
//! - the **watch** stage reports file events to the pipeline thread;
//! - one thread runs the [`pipeline`](crate::pipeline) driver, which owns
//!   the writing catalog connection and does all writing of articles and
//!   feeds (batch order is then obvious);
//! - the async runtime hosts the HTTP server (`serve`, reading the published
//!   store and a read-only catalog handle), the built-in WebSub hub and the
//!   delivery worker (`syndicate`, with catalog handles of their own; their
//!   outbox rows are queued by a commit hook inside each batch).
//!
//! Shutdown is one [`CancellationToken`] every task observes, and one
//! [`TaskTracker`] that `run` waits on, all within [`SHUTDOWN_BOUND`]: a
//! signal interrupts the batch in hand (its transaction rolls back; its
//! files are redone at the next start), the server finishes in-flight
//! requests, the worker records the sends already on their way. If the
//! pipeline thread ends by itself, the daemon shuts down with an error so a
//! supervisor restarts it, rather than serving feeds that no longer move.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, driver};
use crate::publish::Store;
use crate::watch::{Msg, Watch};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything still running at shutdown gets this long in all, well inside
/// the shipped unit's `TimeoutStopSec=20`.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

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
        let listener = listen(addr, cfg.server.listen_backlog).with_context(|| {
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

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut pipeline = Pipeline::open(cfg.clone(), Some(store.clone()))?;
    let interrupt = pipeline.interrupt_handle();

    // Deliveries are queued in each batch's transaction (nothing is lost
    // between a change and its notice); the worker sends them.
    let wake = Arc::new(Notify::new());
    pipeline.add_commit_hook(Box::new(crate::syndicate::commit_hook(&cfg, wake.clone())));
    crate::syndicate::spawn_worker(&cfg, &store, &metrics, wake, &tasks, stop.clone())?;

    if let Some(listener) = listener {
        // A catalog connection of its own for the pages (WAL lets it read
        // while the pipeline thread writes), behind the read-only interface.
        let catalog = crate::catalog::Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
        let state = crate::serve::AppState::new(
            Arc::new(cfg.clone()),
            store.clone(),
            metrics.clone(),
            catalog,
        )?;
        let router = crate::serve::router(state).merge(crate::syndicate::hub_router(
            &cfg,
            &store,
            &metrics,
            &tasks,
            stop.clone(),
        )?);
        let limits = crate::serve::Limits::from_config(&cfg.server);
        let stopped = stop.clone();
        tasks.spawn(async move {
            if let Err(e) =
                crate::serve::serve(listener, router, limits, stopped.cancelled_owned()).await
            {
                tracing::error!(error = %format!("{e:#}"), "the HTTP server stopped");
            }
        });
    }

    let proc_metrics = metrics.clone();
    // Dropped when the pipeline thread ends, however it ends: a daemon whose
    // pipeline has stopped must not go on serving stale feeds as if healthy.
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let processor = std::thread::Builder::new()
        .name("feedwire-pipeline".into())
        .spawn(move || {
            let _ended = ended_tx;
            driver::run(pipeline, watch, rx, &proc_metrics, &root)
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
    stop.cancel();
    tasks.close();
    let joined = tokio::time::timeout_at(
        deadline,
        tokio::task::spawn_blocking(move || processor.join()),
    )
    .await;
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            bound_s = SHUTDOWN_BOUND.as_secs(),
            tasks = tasks.len(),
            "tasks still running at the shutdown bound are dropped; queued deliveries stay queued"
        );
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

/// Bind with a backlog of our own: tokio's default (128) is small for a
/// daemon that allows a thousand connections, and a burst of readers beyond
/// it would see dropped handshakes and seconds of delay.
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
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
