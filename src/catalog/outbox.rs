//! Syndication's durable state, as the catalog keeps it: the outbox of
//! deliveries and the built-in hub's subscriptions. What to send, when, and
//! what an answer means are syndicate's business; these are the values it
//! stores and gets back.
//!
//! Rows about a feed (fan-out, hub ping, legacy ping) start *gated*: they
//! wait until the new version of their topic is served, so a hub or
//! subscriber never fetches the previous one. A partner row is due only when
//! it is the oldest left for its (partner, article): update N+1 never
//! overtakes N.

use super::DeliveryKind;

/// One delivery taken from the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: DeliveryKind,
    /// Partner name, hub or ping-server URL, or subscriber callback.
    pub target: String,
    /// The feed path (relative to the feeds folder) a row is about.
    pub topic: String,
    pub article: String,
    pub body: Option<Vec<u8>>,
    pub content_type: String,
    pub idempotency_key: String,
    pub created_ms: i64,
    pub attempts: i64,
}

/// Rows [`due`](super::Catalog::due_deliveries) leaves out: they could not
/// be sent now anyway, and must not hide everyone else's.
#[derive(Debug, Default)]
pub struct DueFilter<'a> {
    /// Targets that are busy or paused.
    pub targets: Vec<&'a str>,
    /// Subscriber clients with their share of deliveries on the way.
    pub clients: Vec<&'a str>,
    /// `<base_url>/feeds/`: a row's topic path under it is the
    /// subscription's topic URL.
    pub topic_prefix: String,
    /// Rows this worker is sending right now.
    pub in_flight: Vec<i64>,
}

/// What an attempt's outcome does to the outbox.
#[derive(Debug, Clone)]
pub enum OutboxUpdate {
    /// Delivered, or nothing left to do: the row goes.
    Remove(i64),
    /// A subscriber answered 410 Gone: the row and its subscription go.
    EndSubscription {
        id: i64,
        topic_url: String,
        callback: String,
    },
    /// Parked as a dead letter (`feedwire redeliver` brings it back).
    DeadLetter { id: i64, error: String },
    /// Try again at `next_ms`. With `merge`, other rows still waiting for the
    /// same kind, target and topic fold into the oldest (a WebSub delivery or
    /// a ping carries no document of its own: one waiting row is enough).
    Retry {
        id: i64,
        next_ms: i64,
        error: String,
        merge: bool,
    },
}

/// An active subscription as the dispatcher needs it.
#[derive(Debug, Clone)]
pub struct ActiveSubscription {
    pub secret: Option<String>,
    /// The address that subscribed (`""` for subscriptions made before it
    /// was recorded).
    pub client: String,
}

/// One partner's queue, for `status`.
#[derive(Debug, Clone)]
pub struct PartnerBacklog {
    pub partner: String,
    pub pending: i64,
    pub dead: i64,
    pub oldest_ms: i64,
    pub most_attempts: i64,
    /// The oldest row's last error, when it has one.
    pub last_error: Option<String>,
}

/// The outbox at a glance, for `status` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct OutboxSummary {
    pub pending: i64,
    pub dead: i64,
    pub active_subscriptions: i64,
    /// Pending rows of each non-partner kind.
    pub pending_websub: i64,
    pub pending_fanout: i64,
    pub pending_hub: i64,
    pub pending_ping: i64,
    pub pending_indexnow: i64,
    pub partners: Vec<PartnerBacklog>,
}

/// The hub's subscription limits, counted over active subscriptions and
/// places reserved by verifications in flight.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionLimits {
    pub per_topic: usize,
    pub per_client: usize,
    pub total: usize,
}

/// Which limit a subscription would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Topic,
    Client,
    Total,
}

/// A subscribe request's place under the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Already active: a renewal, which needs no new place.
    Renewal,
    /// A place held (by this id) until the verification ends.
    Held(i64),
    Denied(LimitHit),
}

/// A verified subscription, as stored.
#[derive(Debug, Clone)]
pub struct Subscription<'a> {
    pub topic: &'a str,
    pub callback: &'a str,
    pub client: &'a str,
    pub lease_secs: u64,
    pub secret: Option<&'a str>,
}

/// Row and subscription operations a backend provides for syndication.
pub(crate) trait OutboxBackend {
    fn open_gate(&self, topic: &str) -> anyhow::Result<usize>;
    fn open_stale_gates(&self, created_before_ms: i64) -> anyhow::Result<usize>;
    fn open_all_gates(&self) -> anyhow::Result<usize>;
    fn expand_fanouts(
        &mut self,
        topic_prefix: &str,
        now_ms: i64,
        in_flight: &HashSet<i64>,
    ) -> anyhow::Result<usize>;
    fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
    ) -> anyhow::Result<Vec<OutboxRow>>;
    fn indexnow_batch(&self, endpoint: &str, limit: usize) -> anyhow::Result<Vec<OutboxRow>>;
    fn claim_due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
        claimant: &str,
        claim_until_ms: i64,
    ) -> anyhow::Result<Vec<OutboxRow>>;
    fn give_back_deliveries(&self, claimant: &str, ids: &[i64]) -> anyhow::Result<()>;
    fn active_subscription(
        &self,
        topic_url: &str,
        callback: &str,
        now_s: i64,
    ) -> anyhow::Result<Option<ActiveSubscription>>;
    fn update_outbox(
        &mut self,
        updates: &[OutboxUpdate],
        in_flight: &HashSet<i64>,
    ) -> anyhow::Result<()>;
    fn purge_expired_subscriptions(&self, now_s: i64) -> anyhow::Result<usize>;
    fn outbox_backlog(&self) -> anyhow::Result<(i64, i64)>;
    fn outbox_summary(&self, now_s: i64) -> anyhow::Result<OutboxSummary>;
    fn redeliver(&self, partner: &str, now_ms: i64) -> anyhow::Result<usize>;
    fn reserve_subscription(
        &mut self,
        topic: &str,
        callback: &str,
        client: &str,
        limits: SubscriptionLimits,
        now_s: i64,
        stale_before_s: i64,
    ) -> anyhow::Result<Reservation>;
    fn release_reservation(&self, id: i64) -> anyhow::Result<()>;
    fn store_subscription(
        &mut self,
        sub: &Subscription<'_>,
        reservation: Option<i64>,
        limits: SubscriptionLimits,
        now_s: i64,
    ) -> anyhow::Result<Result<(), LimitHit>>;
    fn remove_subscription(&self, topic: &str, callback: &str) -> anyhow::Result<()>;
    fn clear_reservations(&self) -> anyhow::Result<usize>;
}

use super::Catalog;
use anyhow::Result;
use std::collections::HashSet;

/// Syndication's methods on a catalog handle.
impl Catalog {
    /// The new version of `topic` is served: its gated rows may go.
    pub fn open_gate(&self, topic: &str) -> Result<usize> {
        self.backend.open_gate(topic)
    }

    /// Gated rows queued before `created_before_ms` go anyway (the document
    /// did not change bytes, so no announcement will come; or it was missed).
    pub fn open_stale_gates(&self, created_before_ms: i64) -> Result<usize> {
        self.backend.open_stale_gates(created_before_ms)
    }

    /// Every gate (after a lagged announcement channel).
    pub fn open_all_gates(&self) -> Result<usize> {
        self.backend.open_all_gates()
    }

    /// Turn ready fan-out rows into one WebSub row per active subscriber of
    /// the topic (`topic_prefix` + path is the subscription's topic URL). A
    /// subscriber that already has a delivery of the topic waiting (and not
    /// in `in_flight`) gets no second row.
    pub fn expand_fanouts(
        &mut self,
        topic_prefix: &str,
        now_ms: i64,
        in_flight: &HashSet<i64>,
    ) -> Result<usize> {
        self.backend.expand_fanouts(topic_prefix, now_ms, in_flight)
    }

    /// Rows due at `now_ms`, oldest first, at most `limit`.
    pub fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
    ) -> Result<Vec<OutboxRow>> {
        self.backend.due_deliveries(now_ms, limit, filter)
    }

    /// Every URL waiting for an IndexNow endpoint, due or not yet (the ones
    /// still in their batching window join the request that is going),
    /// oldest first, at most `limit`.
    pub fn indexnow_batch(&self, endpoint: &str, limit: usize) -> Result<Vec<OutboxRow>> {
        self.backend.indexnow_batch(endpoint, limit)
    }

    /// Like [`Catalog::due_deliveries`], and the rows become `claimant`'s
    /// until `claim_until_ms`: another instance's claim leaves them out (and
    /// rows another claimer has locked this moment are skipped, not waited
    /// for), so two instances never take the same row. A row's claim ends
    /// with its outcome ([`Catalog::update_outbox`]), at `claim_until_ms`,
    /// or when its claimer is gone ([`Catalog::heartbeat`]). On SQLite, one
    /// instance's, this is `due_deliveries`.
    pub fn claim_due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
        filter: &DueFilter<'_>,
        claimant: &str,
        claim_until_ms: i64,
    ) -> Result<Vec<OutboxRow>> {
        self.backend
            .claim_due_deliveries(now_ms, limit, filter, claimant, claim_until_ms)
    }

    /// Rows `claimant` claimed and could not start after all (its limits
    /// were reached): free for every instance again, now.
    pub fn give_back_deliveries(&self, claimant: &str, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.backend.give_back_deliveries(claimant, ids)
    }

    /// The subscription behind a WebSub row; `None` when it has ended.
    pub fn active_subscription(
        &self,
        topic_url: &str,
        callback: &str,
        now_s: i64,
    ) -> Result<Option<ActiveSubscription>> {
        self.backend.active_subscription(topic_url, callback, now_s)
    }

    /// Record attempts' outcomes, in one transaction (all or none).
    pub fn update_outbox(
        &mut self,
        updates: &[OutboxUpdate],
        in_flight: &HashSet<i64>,
    ) -> Result<()> {
        self.backend.update_outbox(updates, in_flight)
    }

    /// Forget subscriptions whose lease has ended; returns how many.
    pub fn purge_expired_subscriptions(&self, now_s: i64) -> Result<usize> {
        self.backend.purge_expired_subscriptions(now_s)
    }

    /// Pending rows and dead letters.
    pub fn outbox_backlog(&self) -> Result<(i64, i64)> {
        self.backend.outbox_backlog()
    }

    pub fn outbox_summary(&self, now_s: i64) -> Result<OutboxSummary> {
        self.backend.outbox_summary(now_s)
    }

    /// `feedwire redeliver`: a partner's dead letters back to pending, due
    /// now, with a fresh give-up clock. Returns how many.
    pub fn redeliver(&self, partner: &str, now_ms: i64) -> Result<usize> {
        self.backend.redeliver(partner, now_ms)
    }

    /// One write transaction: a subscribe request for a subscription not
    /// already active gets a place under the limits (counted by every later
    /// check until its verification ends), or is denied. Reservations older
    /// than `stale_before_s` are dropped first.
    pub fn reserve_subscription(
        &mut self,
        topic: &str,
        callback: &str,
        client: &str,
        limits: SubscriptionLimits,
        now_s: i64,
        stale_before_s: i64,
    ) -> Result<Reservation> {
        self.backend
            .reserve_subscription(topic, callback, client, limits, now_s, stale_before_s)
    }

    /// A verification that failed gives its place back.
    pub fn release_reservation(&self, id: i64) -> Result<()> {
        self.backend.release_reservation(id)
    }

    /// A verified subscription takes effect, in one write transaction: a
    /// reserved place becomes the subscription; a renewal without one is
    /// checked against the limits again.
    pub fn store_subscription(
        &mut self,
        sub: &Subscription<'_>,
        reservation: Option<i64>,
        limits: SubscriptionLimits,
        now_s: i64,
    ) -> Result<Result<(), LimitHit>> {
        self.backend
            .store_subscription(sub, reservation, limits, now_s)
    }

    /// A verified unsubscribe.
    pub fn remove_subscription(&self, topic: &str, callback: &str) -> Result<()> {
        self.backend.remove_subscription(topic, callback)
    }

    /// Forget reservations of verifications a previous run did not finish.
    pub fn clear_reservations(&self) -> Result<usize> {
        self.backend.clear_reservations()
    }
}
