//! Several instances on one catalog: what the catalog keeps so that they
//! agree on who does what.
//!
//! - **The leader's lease**: one row naming the instance that may run the
//!   pipeline, with an expiry the holder renews (the database's clock decides
//!   when it lapsed, so the instances' clocks need not agree). Each new
//!   holder gets the next *term*; a handle told its term
//!   ([`Catalog::fence_writes`]) checks, as the last statement of every
//!   pipeline write, that the term still holds the lease, under a row lock
//!   that orders it before any takeover. So a leader that was paused, lost
//!   its lease and woke up cannot commit a batch or a published document.
//! - **Instances**: each records that it is alive; a delivery claimed by an
//!   instance that has not been seen for a lease goes back to the others.
//! - **Published documents**: the leader stores each new version of every
//!   document with its bytes, so the other instances serve the same set;
//!   [`Catalog::listen`] wakes them when it changes (and when a leader
//!   resigns, so a standby takes over at once).
//!
//! On SQLite a catalog has one instance: it always leads, fencing is
//! nothing, and there is nothing to share or listen to.

use super::Catalog;
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One running instance, as the lease, its heartbeat and its delivery
/// claims know it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Unique to this process (never reused): the lease and claims are held
    /// by it, so a restarted instance with the same name is a new member.
    pub token: String,
    /// `cluster.instance`: the name operators see.
    pub name: String,
    /// Where it serves HTTP (`127.0.0.1:8080`), or empty.
    pub http: String,
}

impl Member {
    /// A member with a fresh random token.
    pub fn new(name: &str, http: &str) -> Member {
        Member {
            token: format!("{:032x}", rand::random::<u128>()),
            name: name.to_string(),
            http: http.to_string(),
        }
    }
}

/// A lease this member acquired: the proof a fenced handle shows with each
/// write. Terms only grow; a takeover starts the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The holder's token.
    pub holder: String,
    pub number: i64,
}

/// The outcome of an attempt to become the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// This member holds the lease, for the lease's length from (at the
    /// earliest) the moment the attempt was sent.
    Won(Term),
    /// Another instance holds it; it lapses in `lapses_in` unless renewed.
    Held { by: String, lapses_in: Duration },
}

/// The lease as `status` shows it.
#[derive(Debug, Clone)]
pub struct LeaseInfo {
    pub holder_name: String,
    pub holder_token: String,
    pub term: i64,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The database's clock when this was read.
    pub now: DateTime<Utc>,
}

/// What an instance is doing, as it last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Standby,
    /// Shut down cleanly.
    Stopped,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Standby => "standby",
            Role::Stopped => "stopped",
        }
    }
}

/// An instance as the catalog last heard of it.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub token: String,
    pub name: String,
    /// `leader`, `standby` or `stopped`.
    pub role: String,
    pub http: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// The database's clock when this was read.
    pub now: DateTime<Utc>,
}

/// A version of a published document, as the leader records it.
#[derive(Debug, Clone, Copy)]
pub struct PublishedDocument<'a> {
    pub path: &'a str,
    pub hash: &'a str,
    pub first_published: DateTime<Utc>,
    pub body: &'a [u8],
}

/// A published document read back by another instance.
#[derive(Debug, Clone)]
pub struct SharedDocument {
    pub path: String,
    pub hash: String,
    pub first_published: DateTime<Utc>,
    pub body: Vec<u8>,
    /// Grows with every document recorded: ask for those after the last one
    /// seen ([`Catalog::published_documents_since`]).
    pub seq: i64,
}

/// A fenced write refused: this handle's term no longer holds the lease.
#[derive(Debug, thiserror::Error)]
#[error(
    "this instance is no longer the leader (its lease, term {term}, lapsed or was taken over): nothing was written; it stops publishing and serves as a standby"
)]
pub struct LeaseLost {
    pub term: i64,
}

impl LeaseLost {
    /// Whether `error` (or what caused it) is a lost lease.
    pub fn caused(error: &anyhow::Error) -> bool {
        error.chain().any(|e| e.is::<LeaseLost>())
    }
}

/// What [`Notifications`] says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The leader recorded new documents.
    Published,
    /// The leader resigned: the lease is free now.
    LeaseReleased,
    /// The connection was (re)made: notices may have been missed meanwhile.
    Listening,
}

/// Changes other instances made, as they happen (PostgreSQL
/// `LISTEN`/`NOTIFY` on a connection of its own, remade when it breaks).
/// On SQLite nothing ever arrives: there are no other instances.
pub struct Notifications {
    rx: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    /// Keeps a channel with no other sender open (SQLite).
    _quiet: Option<tokio::sync::mpsc::UnboundedSender<Notice>>,
}

impl Notifications {
    pub(crate) fn from_channel(rx: tokio::sync::mpsc::UnboundedReceiver<Notice>) -> Notifications {
        Notifications { rx, _quiet: None }
    }

    pub(crate) fn none() -> Notifications {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Notifications {
            rx,
            _quiet: Some(tx),
        }
    }

    /// The next notice; `None` once the listener gave up for good.
    pub async fn recv(&mut self) -> Option<Notice> {
        self.rx.recv().await
    }

    /// A notice already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Notice> {
        self.rx.try_recv().ok()
    }
}

/// What a backend provides for several instances.
pub(crate) trait ClusterBackend {
    /// Check, in this handle's later pipeline writes, that `term` still
    /// holds the lease (`None`: no check).
    fn set_fence(&mut self, term: Option<Term>);
    fn elect(&self, me: &Member, lease: Duration, take_over: bool) -> Result<Election>;
    fn renew(&self, term: &Term, lease: Duration) -> Result<bool>;
    fn resign(&self, term: &Term) -> Result<()>;
    fn lease(&self) -> Result<Option<LeaseInfo>>;
    fn heartbeat(&self, me: &Member, role: Role, departed_after: Duration) -> Result<usize>;
    fn instances(&self) -> Result<Vec<InstanceInfo>>;
    fn record_published_documents(&self, docs: &[PublishedDocument<'_>]) -> Result<()>;
    fn published_documents_since(&self, seq: i64) -> Result<Vec<SharedDocument>>;
    fn published_document(&self, path: &str) -> Result<Option<SharedDocument>>;
    fn listen(&self) -> Result<Notifications>;
    fn release_claims(&self, token: &str) -> Result<usize>;
}

impl Catalog {
    /// From now on, every pipeline write through this handle (a batch's
    /// commit, published documents, applied commands, settings) first checks
    /// that `term` still holds the lease, and fails with [`LeaseLost`]
    /// otherwise. `None` turns the check off.
    pub fn fence_writes(&mut self, term: Option<Term>) {
        self.backend.set_fence(term);
    }

    /// Try to become the leader for `lease`: succeeds when nobody holds the
    /// lease or it lapsed (by the database's clock), or at once when
    /// `take_over` (an instance that is alone by configuration).
    pub fn elect(&self, me: &Member, lease: Duration, take_over: bool) -> Result<Election> {
        self.backend.elect(me, lease, take_over)
    }

    /// Extend the lease `term` holds by `lease` from now; `false` when it
    /// lapsed or another instance holds it (the caller stops leading).
    pub fn renew(&self, term: &Term, lease: Duration) -> Result<bool> {
        self.backend.renew(term, lease)
    }

    /// Give the lease up now and tell the standbys (clean shutdown).
    pub fn resign(&self, term: &Term) -> Result<()> {
        self.backend.resign(term)
    }

    /// The lease, for `status`.
    pub fn lease(&self) -> Result<Option<LeaseInfo>> {
        self.backend.lease()
    }

    /// Record that `me` is alive in `role`; deliveries claimed by instances
    /// not seen for `departed_after` go back to the queue. Returns how many.
    pub fn heartbeat(&self, me: &Member, role: Role, departed_after: Duration) -> Result<usize> {
        self.backend.heartbeat(me, role, departed_after)
    }

    /// Every instance heard of lately, leader first, then by name.
    pub fn instances(&self) -> Result<Vec<InstanceInfo>> {
        self.backend.instances()
    }

    /// Record these document versions (fenced): their hashes and
    /// first-publish times (`Last-Modified` across restarts), and, where
    /// other instances serve them (PostgreSQL), their bytes.
    pub fn record_published_documents(&self, docs: &[PublishedDocument<'_>]) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        self.backend.record_published_documents(docs)
    }

    /// Live documents recorded after `seq`, oldest first (PostgreSQL; empty
    /// on SQLite, whose only instance publishes them itself). Archive pages
    /// are left out: like the publisher, a standby keeps them out of memory
    /// and reads one at a time with [`Catalog::published_document`].
    pub fn published_documents_since(&self, seq: i64) -> Result<Vec<SharedDocument>> {
        self.backend.published_documents_since(seq)
    }

    /// The current recorded version of one document with its bytes, if the
    /// catalog holds them (PostgreSQL; always `None` on SQLite): how an
    /// instance whose feeds folder lacks an archive page serves it.
    pub fn published_document(&self, path: &str) -> Result<Option<SharedDocument>> {
        self.backend.published_document(path)
    }

    /// Notices of other instances' changes (see [`Notifications`]).
    pub fn listen(&self) -> Result<Notifications> {
        self.backend.listen()
    }

    /// Deliveries `token` claimed and did not finish go back to the queue
    /// (its clean shutdown). Returns how many.
    pub fn release_claims(&self, token: &str) -> Result<usize> {
        self.backend.release_claims(token)
    }
}
