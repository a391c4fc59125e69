//! Roles: which instance runs the pipeline. The daemon's wiring (`app`)
//! starts the parts every instance runs (HTTP, the hub, the delivery
//! worker); this module decides, and changes at run time, whether this
//! instance also *leads*: watches the articles folder and runs the pipeline,
//! the only writer of articles and feeds.
//!
//! - **SQLite** is one instance: it leads from start to end (`Mode::Alone`).
//! - **PostgreSQL**: the leader is whoever holds the catalog's lease
//!   (`catalog::Catalog::elect`). A leader renews it every
//!   `cluster.renew_secs`; its pipeline writes are fenced by its term, so
//!   once the lease is lost nothing it writes to the catalog commits. If a
//!   renewal is refused, or none succeeded for almost `cluster.lease_secs`,
//!   it stops its pipeline at once and becomes a standby. A standby serves
//!   what the leader published (read from the catalog when the catalog
//!   says it changed) and tries to take the lease when it lapses, or at
//!   once when the leader resigns (a clean shutdown). Without `[cluster]`,
//!   an instance on PostgreSQL takes the lease at start-up whoever held it:
//!   it is configured as the only one.
//!
//! Every instance records that it is alive at each renewal interval; that
//! also hands the delivery claims of instances gone silent back to the
//! living.

use crate::catalog::{Catalog, Election, LeaseLost, Member, Notice, Role, Term};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, driver};
use crate::publish::Store;
use crate::render::DocKind;
use crate::watch::{Msg, Watch};
use anyhow::{Context, Result, bail};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the roles need from the daemon.
pub(crate) struct Parts {
    pub cfg: Config,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Nudges the delivery worker when a batch queued deliveries.
    pub wake: Arc<Notify>,
    /// This instance, as the lease and the delivery claims know it.
    pub member: Member,
}

/// Why [`Roles::run`] returned.
pub(crate) enum Exit {
    /// The daemon was asked to stop.
    Stopped,
    /// The pipeline ended by itself, or leading is impossible: the daemon
    /// stops with this error so a supervisor restarts it.
    Failed(anyhow::Error),
}

enum Mode {
    /// SQLite: always the leader.
    Alone,
    /// PostgreSQL: the lease decides. `take_over`: take it at start-up
    /// whoever holds it (no `[cluster]` section).
    Elected { take_over: bool },
}

/// What the loop has to do now.
enum Due {
    Nothing,
    Elect,
    Renew(Term, Duration),
    Expired,
}

enum State {
    Leader {
        leading: Leading,
        /// `None` when alone.
        term: Option<Term>,
        /// The local moment after which the lease may have lapsed: a
        /// leader not renewed by then stops.
        valid_until: Instant,
        renew_at: Instant,
    },
    Standby {
        following: Following,
        elect_at: Instant,
    },
    /// Between roles (only while switching or shutting down).
    Idle,
}

pub(crate) struct Roles {
    parts: Parts,
    mode: Mode,
    state: State,
    /// A handle of its own for the lease and heartbeats (used from the
    /// blocking pool, so a catalog that stops answering cannot hold up the
    /// loop that must step down in time).
    db: Arc<Mutex<Catalog>>,
    lease: Duration,
    renew_every: Duration,
    /// Subtracted from the lease for the local deadline: time to stop.
    margin: Duration,
    /// Tells the follower that the leader published.
    published: Arc<Notify>,
    ready_logged: Arc<AtomicBool>,
    /// After handing the lease back, this instance does not try again
    /// before this (another instance goes first).
    not_before: Instant,
}

impl Roles {
    pub(crate) fn new(parts: Parts) -> Result<Roles> {
        let cfg = &parts.cfg;
        let settings = cfg.cluster_settings();
        let mode = if cfg.catalog.url.is_some() {
            Mode::Elected {
                take_over: cfg.cluster.is_none(),
            }
        } else {
            Mode::Alone
        };
        let db = Catalog::open(&cfg.catalog_path(), cfg.time_zone()?)?;
        let lease = settings.lease();
        Ok(Roles {
            mode,
            state: State::Idle,
            db: Arc::new(Mutex::new(db)),
            lease,
            renew_every: settings.renew_every(),
            margin: (lease / 4).min(Duration::from_secs(1)),
            published: Arc::new(Notify::new()),
            ready_logged: Arc::new(AtomicBool::new(false)),
            not_before: Instant::now(),
            parts,
        })
    }

    /// Lead or stand by until `until` completes (a signal) or the pipeline
    /// fails. The role in hand keeps running: [`Roles::shutdown`] ends it.
    pub(crate) async fn run(&mut self, until: impl Future<Output = ()>) -> Exit {
        tokio::pin!(until);
        match self.mode {
            Mode::Alone => {
                match Leading::start(&self.parts, None) {
                    Ok(leading) => {
                        self.state = State::Leader {
                            leading,
                            term: None,
                            valid_until: far_future(),
                            renew_at: far_future(),
                        }
                    }
                    Err(e) => return Exit::Failed(e),
                }
                let State::Leader { leading, .. } = &mut self.state else {
                    unreachable!("just started leading")
                };
                tokio::select! {
                    _ = &mut until => Exit::Stopped,
                    ended = leading.ended() => Exit::Failed(pipeline_ended(ended)),
                }
            }
            Mode::Elected { take_over } => self.run_elected(take_over, until).await,
        }
    }

    async fn run_elected(
        &mut self,
        take_over: bool,
        mut until: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Exit {
        let mut notices = match self.db.lock().unwrap_or_else(|p| p.into_inner()).listen() {
            Ok(n) => n,
            Err(e) => return Exit::Failed(e),
        };
        // Idle until the first attempt: an instance that wins at once never
        // serves as a standby (nor says it is ready before it published).
        let now = Instant::now();
        self.state = State::Idle;
        let alone = take_over;
        let mut take_over = take_over;
        let mut heartbeat_at = now;
        loop {
            let now = Instant::now();
            if now >= heartbeat_at {
                heartbeat_at = now + self.renew_every;
                self.heartbeat().await;
            }
            let wake_at = match &self.state {
                State::Leader {
                    valid_until,
                    renew_at,
                    ..
                } => (*renew_at).min(*valid_until),
                State::Standby { elect_at, .. } => *elect_at,
                State::Idle => now,
            }
            .min(heartbeat_at);
            let leading = match &mut self.state {
                State::Leader { leading, .. } => Some(leading),
                _ => None,
            };
            tokio::select! {
                _ = &mut until => return Exit::Stopped,
                ended = async { leading.expect("guarded").ended().await }, if leading.is_some() => {
                    match ended {
                        Err(e) if LeaseLost::caused(&e) => {
                            tracing::warn!(error = %format!("{e:#}"), "the pipeline found the lease taken over");
                            self.step_down().await;
                        }
                        // Alone by configuration: stop, so a supervisor
                        // restarts it (as on SQLite).
                        other if alone => return Exit::Failed(pipeline_ended(other)),
                        other => self.hand_over(pipeline_ended(other)).await,
                    }
                }
                notice = notices.recv() => match notice {
                    Some(Notice::Published) => self.published.notify_one(),
                    Some(Notice::Listening) => self.published.notify_one(),
                    Some(Notice::LeaseReleased) => {
                        if let State::Standby { elect_at, .. } = &mut self.state {
                            *elect_at = Instant::now().max(self.not_before);
                        }
                    }
                    // The listener gave up for good: polling still works.
                    None => notices = crate::catalog::Notifications::none(),
                },
                _ = tokio::time::sleep_until(wake_at) => {}
            }
            let now = Instant::now();
            let due = match &self.state {
                State::Standby { elect_at, .. } if now >= *elect_at => Due::Elect,
                State::Idle => Due::Elect,
                State::Leader { valid_until, .. } if now >= *valid_until => Due::Expired,
                State::Leader {
                    valid_until,
                    renew_at,
                    term: Some(term),
                    ..
                } if now >= *renew_at => Due::Renew(term.clone(), *valid_until - now),
                _ => Due::Nothing,
            };
            match due {
                Due::Nothing => {}
                Due::Elect => {
                    let forced = std::mem::replace(&mut take_over, false);
                    self.try_to_lead(forced).await;
                }
                Due::Expired => {
                    tracing::error!(
                        lease_s = self.lease.as_secs(),
                        "the lease could not be renewed in time (is PostgreSQL reachable?): stopping the pipeline; serving as a standby"
                    );
                    self.step_down().await;
                }
                Due::Renew(term, bound) => self.renew(term, bound).await,
            }
        }
    }

    /// The leader's renewal: extend the local deadline, or step down when
    /// the lease is gone; a catalog that does not answer is asked again
    /// soon (the deadline still holds).
    async fn renew(&mut self, term: Term, bound: Duration) {
        let lease = self.lease;
        let sent = Instant::now();
        match self.with_db(bound, move |db| db.renew(&term, lease)).await {
            Ok(true) => {
                if let State::Leader {
                    valid_until,
                    renew_at,
                    ..
                } = &mut self.state
                {
                    *valid_until = sent + self.lease - self.margin;
                    *renew_at = sent + self.renew_every;
                }
            }
            Ok(false) => {
                tracing::error!(
                    "the lease was taken over by another instance: stopping the pipeline; serving as a standby"
                );
                self.step_down().await;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not renew the lease; trying again");
                if let State::Leader { renew_at, .. } = &mut self.state {
                    *renew_at = Instant::now() + self.renew_every.min(Duration::from_secs(1));
                }
            }
        }
    }

    /// A standby's attempt to take the lease; on success, stop following
    /// and start the pipeline under the new term.
    async fn try_to_lead(&mut self, take_over: bool) {
        let (member, lease) = (self.parts.member.clone(), self.lease);
        let sent = Instant::now();
        let attempt = self
            .with_db(self.renew_every.max(Duration::from_secs(1)), move |db| {
                let before = if take_over { db.lease()? } else { None };
                Ok((db.elect(&member, lease, take_over)?, before))
            })
            .await;
        let next_try = match attempt {
            Ok((Election::Won(term), before)) => {
                if let Some(b) = before.filter(|b| b.expires_at > b.now) {
                    tracing::warn!(
                        holder = %b.holder_name,
                        "took the catalog's lease from another live instance: this one has no [cluster] section, so it takes itself to be the only one (give every instance a [cluster] section to share the catalog)"
                    );
                }
                self.lead(term, sent).await;
                return;
            }
            Ok((Election::Held { by, lapses_in }, _)) => {
                tracing::debug!(leader = %by, lapses_in_ms = lapses_in.as_millis() as u64, "standing by");
                // Try again right when it would lapse (the leader may renew
                // meanwhile, and then this says when next).
                Instant::now() + lapses_in + Duration::from_millis(10)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not ask the catalog for the lease; trying again");
                Instant::now() + self.renew_every
            }
        };
        match &mut self.state {
            State::Standby { elect_at, .. } => *elect_at = next_try,
            _ => {
                self.state = State::Standby {
                    following: self.follow(),
                    elect_at: next_try,
                }
            }
        }
    }

    async fn lead(&mut self, term: Term, sent: Instant) {
        if let State::Standby { following, .. } = std::mem::replace(&mut self.state, State::Idle) {
            following.stop().await;
        }
        tracing::info!(
            instance = %self.parts.member.name,
            term = term.number,
            "became the leader: watching the articles folder and publishing"
        );
        self.set_leader_gauge(true);
        match Leading::start(&self.parts, Some(term.clone())) {
            Ok(leading) => {
                self.state = State::Leader {
                    leading,
                    term: Some(term),
                    valid_until: sent + self.lease - self.margin,
                    renew_at: sent + self.renew_every,
                };
                self.heartbeat().await;
            }
            Err(e) => {
                // Leave the lease to another instance.
                tracing::error!(error = %format!("{e:#}"), "cannot start the pipeline; resigning the lease");
                let _ = self
                    .with_db(Duration::from_secs(5), move |db| db.resign(&term))
                    .await;
                self.set_leader_gauge(false);
                self.not_before = Instant::now() + self.lease;
                self.state = State::Standby {
                    following: self.follow(),
                    elect_at: self.not_before,
                };
            }
        }
    }

    /// The pipeline failed (it could not start: the articles folder, the
    /// object store): resign, so that another instance tries, and stand by
    /// for a lease before trying again. The instance keeps serving and
    /// delivering meanwhile, which a restart would interrupt.
    async fn hand_over(&mut self, error: anyhow::Error) {
        tracing::error!(
            error = %format!("{error:#}"),
            retry_in_s = self.lease.as_secs(),
            "resigning the lease: another instance may lead; this one tries again later"
        );
        self.parts
            .metrics
            .batch_failures
            .fetch_add(1, Ordering::Relaxed);
        if let State::Leader { leading, term, .. } = std::mem::replace(&mut self.state, State::Idle)
        {
            let _ = leading
                .stop(Instant::now() + crate::app::SHUTDOWN_BOUND)
                .await;
            if let Some(term) = term {
                let _ = self
                    .with_db(self.renew_every, move |db| db.resign(&term))
                    .await;
            }
        }
        self.set_leader_gauge(false);
        self.not_before = Instant::now() + self.lease;
        self.state = State::Standby {
            following: self.follow(),
            elect_at: self.not_before,
        };
        self.heartbeat().await;
    }

    /// Stop the pipeline at once and serve as a standby.
    async fn step_down(&mut self) {
        // First: the lease is given up now, while stopping the pipeline can
        // take up to the shutdown bound (a batch stuck on a catalog that
        // does not answer). Monitoring must not see a leader meanwhile.
        self.set_leader_gauge(false);
        if let State::Leader { leading, .. } = std::mem::replace(&mut self.state, State::Idle)
            && let Err(e) = leading
                .stop(Instant::now() + crate::app::SHUTDOWN_BOUND)
                .await
        {
            tracing::warn!(error = %format!("{e:#}"), "the pipeline had failed as it stopped");
        }
        self.state = State::Standby {
            following: self.follow(),
            elect_at: Instant::now() + self.renew_every,
        };
        self.heartbeat().await;
    }

    fn follow(&self) -> Following {
        Following::start(
            &self.parts,
            self.published.clone(),
            self.renew_every,
            self.ready_logged.clone(),
        )
    }

    fn role(&self) -> Role {
        match self.state {
            State::Leader { .. } => Role::Leader,
            _ => Role::Standby,
        }
    }

    async fn heartbeat(&self) {
        let (member, role, lease) = (self.parts.member.clone(), self.role(), self.lease);
        match self
            .with_db(self.renew_every, move |db| {
                db.heartbeat(&member, role, lease)
            })
            .await
        {
            Ok(0) => {}
            Ok(freed) => tracing::info!(
                deliveries = freed,
                "deliveries claimed by an instance that is gone are back in the queue"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not record this instance as alive")
            }
        }
    }

    fn set_leader_gauge(&self, leading: bool) {
        self.parts.metrics.set_gauge(
            "feedwire_cluster_leader",
            "1 while this instance holds the catalog's lease and runs the pipeline.",
            if leading { 1.0 } else { 0.0 },
        );
    }

    /// Run `f` on the roles' catalog handle on the blocking pool, giving up
    /// waiting after `bound` (the call itself finishes in the background).
    async fn with_db<T: Send + 'static>(
        &self,
        bound: Duration,
        f: impl FnOnce(&Catalog) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        let call =
            tokio::task::spawn_blocking(move || f(&db.lock().unwrap_or_else(|p| p.into_inner())));
        match tokio::time::timeout(bound, call).await {
            Err(_) => bail!("the catalog did not answer within {} ms", bound.as_millis()),
            Ok(joined) => joined.context("a catalog call panicked")?,
        }
    }

    /// End the role in hand within `deadline`: a leader's pipeline stops
    /// (its batch rolls back) and it resigns, so a standby takes over at
    /// once; the instance is recorded as stopped.
    pub(crate) async fn shutdown(&mut self, deadline: Instant) -> Result<()> {
        let mut result = Ok(());
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Leader { leading, term, .. } => {
                result = leading.stop(deadline).await;
                if let Some(term) = term {
                    let bound = deadline.saturating_duration_since(Instant::now());
                    if let Err(e) = self.with_db(bound, move |db| db.resign(&term)).await {
                        tracing::warn!(error = %format!("{e:#}"), "could not resign the lease; a standby takes over when it lapses");
                    }
                }
            }
            State::Standby { following, .. } => following.stop().await,
            State::Idle => {}
        }
        if let Mode::Elected { .. } = self.mode {
            let (member, lease) = (self.parts.member.clone(), self.lease);
            let bound = deadline.saturating_duration_since(Instant::now());
            let _ = self
                .with_db(bound, move |db| db.heartbeat(&member, Role::Stopped, lease))
                .await;
        }
        result
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86400)
}

/// The error for a pipeline thread that ended while it should run.
fn pipeline_ended(ended: Result<()>) -> anyhow::Error {
    match ended {
        Ok(()) => anyhow::anyhow!("the pipeline stopped"),
        Err(e) => e.context("the pipeline stopped"),
    }
}

/// The leader's work: the watch stage and the pipeline thread.
struct Leading {
    tx: mpsc::Sender<Msg>,
    interrupt: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The thread's result, sent as it ends however it ends.
    ended: Option<oneshot::Receiver<Result<()>>>,
}

impl Leading {
    /// Start the watch stage and the pipeline on a thread of its own (it
    /// opens the catalog and the publish targets there: the S3 target blocks
    /// on a runtime of its own, which must not be inside the daemon's).
    fn start(parts: &Parts, term: Option<Term>) -> Result<Leading> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let interrupt = Arc::new(AtomicBool::new(false));
        let (ended_tx, ended_rx) = oneshot::channel();
        let cfg = parts.cfg.clone();
        let (store, metrics, wake) = (
            parts.store.clone(),
            parts.metrics.clone(),
            parts.wake.clone(),
        );
        let (events, flag) = (tx.clone(), interrupt.clone());
        let thread = std::thread::Builder::new()
            .name("feedwire-pipeline".into())
            .spawn(move || {
                let result = lead(cfg, store, &metrics, wake, term, events, rx, flag);
                let _ = ended_tx.send(result);
            })
            .context("cannot start the pipeline thread")?;
        Ok(Leading {
            tx,
            interrupt,
            thread: Some(thread),
            ended: Some(ended_rx),
        })
    }

    /// The pipeline thread's result, once it ends (never, while it runs).
    async fn ended(&mut self) -> Result<()> {
        match &mut self.ended {
            Some(rx) => {
                let result = rx
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the pipeline thread panicked")));
                self.ended = None;
                result
            }
            None => std::future::pending().await,
        }
    }

    /// Stop at once: the batch in hand stops at its next file and rolls
    /// back, nothing more is published; wait for the thread until
    /// `deadline`.
    async fn stop(mut self, deadline: Instant) -> Result<()> {
        self.interrupt.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Shutdown);
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let joined =
            tokio::time::timeout_at(deadline, tokio::task::spawn_blocking(move || thread.join()))
                .await;
        match joined {
            Err(_) => {
                tracing::warn!(
                    bound_s = crate::app::SHUTDOWN_BOUND.as_secs(),
                    "the pipeline did not stop in time; its batch is redone by the next leader"
                );
                Ok(())
            }
            Ok(Err(e)) => Err(e).context("the pipeline thread could not be joined"),
            Ok(Ok(Err(_))) => bail!("the pipeline thread panicked"),
            Ok(Ok(Ok(()))) => match self.ended.take().and_then(|mut rx| rx.try_recv().ok()) {
                // Stopping because the lease is gone is not a failure.
                Some(Err(e)) if !LeaseLost::caused(&e) => Err(e),
                _ => Ok(()),
            },
        }
    }
}

/// The pipeline thread: watch the folder, open the pipeline (fenced by the
/// term when elected), then run the driver until told to stop.
#[allow(clippy::too_many_arguments)]
fn lead(
    cfg: Config,
    store: Store,
    metrics: &Metrics,
    wake: Arc<Notify>,
    term: Option<Term>,
    events: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    interrupt: Arc<AtomicBool>,
) -> Result<()> {
    let root: PathBuf = cfg.paths.articles.clone();
    // Watch before reconciling: a file that lands during the start-up
    // reconciliation then produces an event and is not missed.
    let watch = Watch::start(
        &root,
        Duration::from_millis(cfg.watch.debounce_ms),
        (cfg.watch.rescan_secs > 0).then(|| Duration::from_secs(cfg.watch.rescan_secs)),
        events,
    )?;
    tracing::info!(folder = %root.display(), debounce_ms = cfg.watch.debounce_ms, "watching for articles");
    let mut pipeline = Pipeline::open_fenced(cfg.clone(), Some(store), term)?;
    pipeline.interrupt_with(interrupt);
    // Deliveries are queued in each batch's transaction (nothing is lost
    // between a change and its notice); the worker sends them.
    pipeline.add_commit_hook(Box::new(crate::syndicate::commit_hook(&cfg, wake)));
    driver::run(pipeline, watch, rx, metrics, &root)
}

/// A standby's copy of the published set: every document the leader
/// recorded, loaded into the store when the catalog says there is something
/// new, and every `poll` in case a notice was missed.
struct Following {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Following {
    fn start(
        parts: &Parts,
        published: Arc<Notify>,
        poll: Duration,
        ready_logged: Arc<AtomicBool>,
    ) -> Following {
        let stop = CancellationToken::new();
        let (cfg, store, metrics, name) = (
            parts.cfg.clone(),
            parts.store.clone(),
            parts.metrics.clone(),
            parts.member.name.clone(),
        );
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let opened = cfg
                .time_zone()
                .and_then(|tz| Catalog::open(&cfg.catalog_path(), tz));
            let catalog = match opened {
                Ok(c) => Arc::new(Mutex::new(c)),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "a standby cannot open the catalog; it serves nothing new until it can");
                    return;
                }
            };
            let mut seen = 0i64;
            let mut failing = false;
            loop {
                let db = catalog.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    db.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .published_documents_since(seen)
                })
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
                match loaded {
                    Ok(docs) => {
                        failing = false;
                        for d in docs {
                            seen = seen.max(d.seq);
                            let Some(kind) = DocKind::from_path(&d.path) else {
                                continue;
                            };
                            store.put_published(&d.path, kind, d.body, &d.hash, d.first_published);
                        }
                        // Ready once there is something to serve: a
                        // standby that starts before anything was published
                        // answers /healthz with 503 until then.
                        if seen > 0 && !ready_logged.swap(true, Ordering::AcqRel) {
                            metrics.ready.store(true, Ordering::Release);
                            tracing::info!(instance = %name, "ready as a standby: serving the published feeds; deliveries are shared");
                        }
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %format!("{e:#}"), "cannot read the published feeds from the catalog; the last ones loaded stay served");
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = published.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        });
        Following { stop, task }
    }

    /// Stop loading; returns once nothing more will be put in the store.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
