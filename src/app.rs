//! The daemon (`feedwire run`) wired together: the one place that builds the
//! stages and connects them.
//!
//! - the **watch** stage reports file events to the pipeline thread;
//! - one thread runs the [`pipeline`](crate::pipeline) driver, which owns
//!   the writing catalog connection and does all writing of articles and
//!   feeds (batch order is then obvious) — on the instance that leads
//!   (always, on SQLite; the lease holder, on PostgreSQL: see
//!   [`cluster`](crate::cluster), which starts and stops it);
//! - the async runtime hosts the HTTP server (`serve`, reading the published
//!   store and a read-only catalog handle), the built-in WebSub hub and the
//!   delivery worker (`syndicate`, with catalog handles of their own; their
//!   outbox rows are queued by a commit hook inside each batch).
//!
//! Shutdown is one [`CancellationToken`] every task observes, and one
//! [`TaskTracker`] that `run` waits on, all within [`SHUTDOWN_BOUND`]: a
//! signal interrupts the batch in hand (its transaction rolls back; its
//! files are redone at the next start), the server finishes in-flight
//! requests, the worker records the sends already on their way, a leader
//! resigns its lease so a standby takes over at once. If the pipeline thread
//! ends by itself (other than by losing the lease), the daemon shuts down
//! with an error so a supervisor restarts it, rather than serving feeds that
//! no longer move.

use crate::catalog::Member;
use crate::cluster::{Exit, Parts, Roles};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::publish::Store;
use crate::syndicate::Claimant;
use anyhow::{Context, Result};
use std::sync::Arc;
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

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let settings = cfg.cluster_settings();
    let http = match &listener {
        Some(l) => l.local_addr()?.to_string(),
        None => String::new(),
    };
    let member = Member::new(&settings.instance_name(), &http);
    if cfg.catalog.url.is_some() {
        tracing::info!(instance = %member.name, "joining the instances on this catalog");
    }

    // Every instance delivers: the worker claims rows, so several workers
    // on one catalog share the queue.
    let wake = Arc::new(Notify::new());
    crate::syndicate::spawn_worker(
        &cfg,
        &store,
        &metrics,
        wake.clone(),
        Claimant {
            token: member.token.clone(),
            length: settings.claim(),
        },
        &tasks,
        stop.clone(),
    )?;

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
        let routes = crate::serve::routes(state).merge(crate::syndicate::hub_router(
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
                crate::serve::serve(listener, routes, limits, stopped.cancelled_owned()).await
            {
                tracing::error!(error = %format!("{e:#}"), "the HTTP server stopped");
            }
        });
    }

    // Leading (the watch stage and the pipeline thread) or standing by.
    let mut roles = Roles::new(Parts {
        cfg: cfg.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        wake,
        member,
    })?;
    let failure = match roles.run(wait_for_signal()).await {
        Exit::Stopped => {
            tracing::info!("shutting down: stopping the batch in hand");
            None
        }
        Exit::Failed(e) => {
            tracing::error!(error = %format!("{e:#}"), "the pipeline stopped; shutting down so a supervisor can restart feedwire");
            Some(e)
        }
    };
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BOUND;
    stop.cancel();
    tasks.close();
    let stopped = roles.shutdown(deadline).await;
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
    if let Some(e) = failure {
        return Err(e);
    }
    stopped?;
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
