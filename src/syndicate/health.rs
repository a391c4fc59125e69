//! How delivery outcomes reach the operator, and how a failing receiver is
//! paced.
//!
//! - `/metrics` counts deliveries, failed attempts and give-ups per target:
//!   partners by name, external hubs and ping servers by their configured URL
//!   (without credentials or query), and every WebSub subscriber under the
//!   one label `subscribers` (callbacks are named by strangers: one label
//!   each would let them grow `/metrics` without limit).
//! - The log gets the first failure of each configured target with the
//!   status and the start of the answer, its recovery, and every give-up; a
//!   target's give-ups, and subscriber failures, are written at most once a
//!   minute, with a count of what was left out.
//! - A configured target that fails is paused as a whole: its queued rows
//!   wait for one shared backoff (and its `Retry-After`), then one row goes
//!   alone as a probe; only a success lets the rest through. So a hub that
//!   is down sees one request per backoff step, not one per queued ping.

use super::outbox::{self, GaveUp, Kind, Outcome};
use crate::config::Config;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A target's give-ups, and subscriber failures, are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

const DELIVERED: &str = "feedwire_deliveries_total";
const DELIVERED_HELP: &str = "Deliveries answered 2xx, by kind and target (WebSub subscribers share the target `subscribers`).";
const FAILED: &str = "feedwire_delivery_failures_total";
const FAILED_HELP: &str =
    "Failed delivery attempts (non-2xx, timeout, connection refused), by kind and target.";
const GAVE_UP: &str = "feedwire_delivery_give_ups_total";
const GAVE_UP_HELP: &str = "Deliveries given up (partner dead letters, dropped WebSub deliveries and pings), by kind and target.";

pub(crate) struct Health {
    cfg: Config,
    metrics: Arc<Metrics>,
    /// Keyed by (kind, configured target); subscribers and targets no
    /// longer configured share one entry per kind. Bounded by the config.
    targets: HashMap<(Kind, String), Target>,
}

#[derive(Default)]
struct Target {
    label: String,
    /// Failed attempts since the last success.
    failures: u64,
    /// Failed rounds since the last success; drives the pause.
    rounds: i64,
    paused_until_ms: i64,
    /// A probe of a failing target is on its way.
    probing: bool,
    failure_log: LogGate,
    give_up_log: LogGate,
}

/// At most one line per [`LOG_EVERY`], counting the ones left out.
#[derive(Default)]
struct LogGate {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    /// `Some(left out since the last line)` when a line may be written.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Health {
    pub(crate) fn new(cfg: Config, metrics: Arc<Metrics>) -> Health {
        Health {
            cfg,
            metrics,
            targets: HashMap::new(),
        }
    }

    /// The entry a row's target is tracked under, and whether it is paced.
    fn key(&self, kind: Kind, target: &str) -> ((Kind, String), bool) {
        let cfg = &self.cfg;
        let configured = match kind {
            Kind::Partner => cfg.partners.iter().any(|p| p.name == target),
            Kind::Hub => cfg.websub.hubs.iter().any(|h| h == target),
            Kind::Ping => cfg.websub.ping_servers.iter().any(|h| h == target),
            Kind::IndexNow => cfg.indexnow.endpoints.iter().any(|e| e == target),
            Kind::WebSub | Kind::Fanout => false,
        };
        if configured {
            ((kind, target.to_string()), true)
        } else {
            ((kind, String::new()), false)
        }
    }

    fn target(&mut self, kind: Kind, target: &str) -> (&mut Target, bool) {
        let (key, paced) = self.key(kind, target);
        let entry = self
            .targets
            .entry(key)
            .or_insert_with_key(|(kind, t)| Target {
                label: label(*kind, t),
                ..Target::default()
            });
        (entry, paced)
    }

    /// False while the target is paused after a failure, or while the
    /// one probe of a failing target is on its way.
    pub(crate) fn may_send(&self, kind: Kind, target: &str, now_ms: i64) -> bool {
        let (key, paced) = self.key(kind, target);
        !paced
            || self
                .targets
                .get(&key)
                .is_none_or(|t| t.failures == 0 || (t.paused_until_ms <= now_ms && !t.probing))
    }

    /// Configured targets nothing may be sent to now (see [`Health::may_send`]).
    pub(crate) fn blocked(&self, now_ms: i64) -> Vec<String> {
        self.targets
            .iter()
            .filter(|((kind, target), _)| {
                !target.is_empty() && !self.may_send(*kind, target, now_ms)
            })
            .map(|((_, target), _)| target.clone())
            .collect()
    }

    /// A row is being sent to this target (after [`Health::may_send`]).
    pub(crate) fn sending(&mut self, kind: Kind, target: &str) {
        let (t, paced) = self.target(kind, target);
        if paced && t.failures > 0 {
            t.probing = true;
        }
    }

    fn rounds(&self, kind: Kind, target: &str) -> i64 {
        self.targets
            .get(&self.key(kind, target).0)
            .map_or(0, |t| t.rounds)
    }

    /// Count and report one attempt's outcome.
    pub(crate) fn attempt(&mut self, kind: Kind, target: &str, outcome: &Outcome) {
        let now_ms = outbox::now_ms();
        let metrics = self.metrics.clone();
        let step = outbox::backoff_ms(&self.cfg, self.rounds(kind, target));
        let retry_max_ms = self.cfg.delivery.retry_max_ms as i64;
        let callback_host = (kind == Kind::WebSub)
            .then(|| url::Url::parse(target).ok()?.host_str().map(str::to_string))
            .flatten()
            .unwrap_or_default();
        let (t, paced) = self.target(kind, target);
        t.probing = false;
        let labels = [("kind", kind.as_str()), ("target", t.label.as_str())];
        match outcome {
            Outcome::Delivered(_) => {
                metrics.add(DELIVERED, DELIVERED_HELP, &labels, 1);
                if paced && t.failures > 0 {
                    tracing::info!(kind = %kind.as_str(), target = %t.label, failed_attempts = t.failures,
                        "delivery target recovered");
                }
                t.failures = 0;
                t.rounds = 0;
                t.paused_until_ms = 0;
            }
            Outcome::Failed {
                row,
                error,
                retry_after_ms,
                permanent,
            } => {
                metrics.add(FAILED, FAILED_HELP, &labels, 1);
                t.failures += 1;
                if paced {
                    // A permanent failure is logged as the give-up it becomes.
                    if t.failures == 1 && !permanent {
                        tracing::warn!(kind = %kind.as_str(), target = %t.label, topic = %row.topic,
                            article = %row.article, error = %error,
                            "delivery failed; retrying with backoff (`feedwire status` shows the backlog; later failures of this target are logged at debug level)");
                    } else {
                        tracing::debug!(kind = %kind.as_str(), target = %t.label, failures = t.failures,
                            error = %error, "delivery failed again");
                    }
                    // Rows sent in the same round fail together: one step each round.
                    if t.paused_until_ms <= now_ms {
                        t.rounds += 1;
                        t.paused_until_ms = now_ms + step;
                    }
                    if let Some(wait) = retry_after_ms {
                        let wait = (*wait).min(retry_max_ms);
                        t.paused_until_ms = t.paused_until_ms.max(now_ms + wait);
                    }
                } else if let Some(left_out) = t.failure_log.allow(Instant::now()) {
                    tracing::warn!(kind = %kind.as_str(), target = %t.label, callback_host = %callback_host,
                        topic = %row.topic, error = %error, similar_failures_not_logged = left_out,
                        "delivery to a WebSub subscriber failed; retrying with backoff (at most one such line a minute)");
                } else {
                    tracing::debug!(kind = %kind.as_str(), callback_host = %callback_host,
                        topic = %row.topic, error = %error, "delivery to a WebSub subscriber failed");
                }
            }
            Outcome::Gone { .. } | Outcome::Dropped(_) | Outcome::Dead { .. } => {}
        }
    }

    /// Count and log a delivery that will not be tried again.
    pub(crate) fn gave_up(&mut self, g: &GaveUp) {
        let metrics = self.metrics.clone();
        let (t, _) = self.target(g.kind, &g.target);
        metrics.add(
            GAVE_UP,
            GAVE_UP_HELP,
            &[("kind", g.kind.as_str()), ("target", t.label.as_str())],
            1,
        );
        let Some(left_out) = t.give_up_log.allow(Instant::now()) else {
            return;
        };
        if g.dead_letter {
            tracing::error!(partner = %t.label, article = %g.article, attempts = g.attempts, error = %g.error,
                give_ups_not_logged = left_out,
                "partner delivery gave up: dead letter (`feedwire redeliver {}` sends it again)", t.label);
        } else {
            tracing::warn!(kind = %g.kind.as_str(), target = %t.label, topic = %g.topic, attempts = g.attempts,
                error = %g.error, give_ups_not_logged = left_out,
                "delivery gave up (refused with a 4xx that retrying cannot fix, or still failing after websub.give_up_secs, or indexnow.give_up_secs for IndexNow); the next change is sent again");
        }
    }
}

/// The `/metrics` and log name of a target (see the module comment).
fn label(kind: Kind, target: &str) -> String {
    match kind {
        Kind::WebSub | Kind::Fanout => "subscribers".into(),
        _ if target.is_empty() => "unconfigured".into(),
        Kind::Partner => target.to_string(),
        Kind::Hub | Kind::Ping | Kind::IndexNow => match url::Url::parse(target) {
            Ok(mut url) => {
                // Credentials or tokens in a configured URL stay out of logs.
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.set_fragment(None);
                url.to_string()
            }
            Err(_) => "unconfigured".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_carry_credentials_or_callbacks() {
        assert_eq!(
            label(Kind::Hub, "https://user:pw@hub.example/ping?token=x#f"),
            "https://hub.example/ping"
        );
        assert_eq!(
            label(Kind::WebSub, "http://evil.example/a?b"),
            "subscribers"
        );
        assert_eq!(label(Kind::Partner, "portal-a"), "portal-a");
        assert_eq!(label(Kind::Ping, ""), "unconfigured");
    }

    fn failed(kind: Kind, target: &str) -> Outcome {
        Outcome::Failed {
            row: Box::new(outbox::Row {
                id: 1,
                kind,
                target: target.into(),
                topic: "rss.xml".into(),
                article: String::new(),
                body: None,
                content_type: String::new(),
                idempotency_key: String::new(),
                created_ms: 0,
                attempts: 0,
            }),
            error: "HTTP 503: down".into(),
            retry_after_ms: None,
            permanent: false,
        }
    }

    /// A failing hub is paused, then probed by one row at a time; a success
    /// lets everything through again. Subscribers are never paused (one
    /// failing callback must not hold up the others).
    #[test]
    fn a_failing_target_is_paused_then_probed_one_row_at_a_time() {
        let hub = "http://127.0.0.1:9/hub";
        let cfg = Config::from_toml(
            &format!("[websub]\nhubs = [\"{hub}\"]\n[delivery]\nretry_base_ms = 1000\n"),
            std::path::Path::new("/tmp/config.toml"),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut h = Health::new(cfg, metrics.clone());
        let now = outbox::now_ms();
        assert!(h.may_send(Kind::Hub, hub, now));
        h.sending(Kind::Hub, hub);
        h.sending(Kind::Hub, hub);
        assert!(h.may_send(Kind::Hub, hub, now), "healthy: no limit");
        h.attempt(Kind::Hub, hub, &failed(Kind::Hub, hub));
        h.attempt(Kind::Hub, hub, &failed(Kind::Hub, hub));
        assert!(!h.may_send(Kind::Hub, hub, now), "paused after failing");
        let later = now + 60_000;
        assert!(h.may_send(Kind::Hub, hub, later), "probe after the pause");
        h.sending(Kind::Hub, hub);
        assert!(!h.may_send(Kind::Hub, hub, later), "one probe at a time");
        h.attempt(Kind::Hub, hub, &Outcome::Delivered(1));
        h.sending(Kind::Hub, hub);
        assert!(h.may_send(Kind::Hub, hub, later), "recovered: no limit");
        assert_eq!(
            metrics.counter(FAILED, &[("kind", "hub"), ("target", hub)]),
            2
        );

        let cb = "http://127.0.0.1:9/cb?secret";
        h.attempt(Kind::WebSub, cb, &failed(Kind::WebSub, cb));
        assert!(
            h.may_send(Kind::WebSub, cb, now),
            "subscribers are not paused"
        );
        assert_eq!(
            metrics.counter(FAILED, &[("kind", "websub"), ("target", "subscribers")]),
            1
        );
    }

    #[test]
    fn log_gate_lets_one_line_a_minute_through_and_counts_the_rest() {
        let mut gate = LogGate::default();
        let t0 = Instant::now();
        assert_eq!(gate.allow(t0), Some(0));
        assert_eq!(gate.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(gate.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(gate.allow(t0 + LOG_EVERY), Some(2));
    }
}
