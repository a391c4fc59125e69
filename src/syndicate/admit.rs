//! Admission to the built-in hub: who is asking, how often they may ask,
//! and how much verification work they may leave queued.
//!
//! A *client* is the address a `POST /hub` came from: an IPv4 address, or
//! the /64 network of an IPv6 address (one subscriber usually holds a whole
//! /64). Behind a reverse proxy every request has the proxy's address, so
//! these limits then apply to all subscribers together.
//!
//! Both tables here are bounded: the rate limiter remembers at most
//! `websub.max_tracked_clients` clients, and the pending table only holds
//! clients with work queued (at most `websub.max_pending_verifications`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The unit every per-client limit counts by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(String);

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(v4.to_string()),
            IpAddr::V6(v6) => {
                let net = u128::from(v6) & (u128::MAX << 64);
                ClientKey(format!("{}/64", std::net::Ipv6Addr::from(net)))
            }
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token bucket per client: `burst` requests at once, then
/// `per_minute` a minute.
pub(crate) struct RateLimiter {
    per_sec: f64,
    burst: f64,
    max_clients: usize,
    buckets: Mutex<HashMap<ClientKey, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32, burst: u32, max_clients: usize) -> RateLimiter {
        RateLimiter {
            per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst),
            max_clients,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request's token, or say how long until one is available.
    pub(crate) fn check(&self, client: &ClientKey, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if !buckets.contains_key(client) && buckets.len() >= self.max_clients {
            self.forget_some(&mut buckets, now);
        }
        let bucket = buckets.entry(client.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        }
    }

    /// Make room: clients whose bucket has refilled are the same as new
    /// ones and go first; if none has, the least recently seen goes.
    fn forget_some(&self, buckets: &mut HashMap<ClientKey, Bucket>, now: Instant) {
        let full = |b: &Bucket| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.per_sec
                >= self.burst
        };
        buckets.retain(|_, b| !full(b));
        if buckets.len() >= self.max_clients
            && let Some(oldest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
        {
            buckets.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// Why a request could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// This client already has its share pending.
    Client,
    /// The hub-wide queue is full.
    Hub,
}

/// Counts of verifications accepted and not yet finished, overall and per
/// client.
pub(crate) struct Pending {
    max: usize,
    max_per_client: usize,
    counts: Mutex<(usize, HashMap<ClientKey, usize>)>,
}

/// One place in the pending queue, given back when dropped.
pub(crate) struct Slot {
    pending: Arc<Pending>,
    client: ClientKey,
}

impl Pending {
    pub(crate) fn new(max: usize, max_per_client: usize) -> Arc<Pending> {
        Arc::new(Pending {
            max,
            max_per_client,
            counts: Mutex::new((0, HashMap::new())),
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, client: &ClientKey) -> Result<Slot, Busy> {
        let mut guard = self.counts.lock().expect("pending lock");
        let (total, per_client) = &mut *guard;
        let mine = per_client.get(client).copied().unwrap_or(0);
        if mine >= self.max_per_client {
            return Err(Busy::Client);
        }
        if *total >= self.max {
            return Err(Busy::Hub);
        }
        *total += 1;
        per_client.insert(client.clone(), mine + 1);
        Ok(Slot {
            pending: self.clone(),
            client: client.clone(),
        })
    }

    /// Verifications accepted and not finished.
    pub(crate) fn len(&self) -> usize {
        self.counts.lock().expect("pending lock").0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.pending.counts.lock().expect("pending lock");
        let (total, per_client) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_networks() {
        assert_eq!(key("203.0.113.5").as_str(), "203.0.113.5");
        assert_eq!(key("::ffff:203.0.113.5").as_str(), "203.0.113.5");
        assert_eq!(key("2001:db8:1:2:3:4:5:6").as_str(), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::9"), key("2001:db8:1:2:ffff::1"));
        assert_ne!(key("2001:db8:1:2::9"), key("2001:db8:1:3::9"));
    }

    #[test]
    fn burst_then_rate_with_a_retry_hint() {
        let limiter = RateLimiter::new(60, 3, 100);
        let (a, b) = (key("192.0.2.1"), key("192.0.2.2"));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&a, t0).is_ok());
        }
        let wait = limiter.check(&a, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limiter.check(&b, t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(
            limiter.check(&a, t0 + Duration::from_secs(1)).is_ok(),
            "refilled one"
        );
        assert!(limiter.check(&a, t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn the_client_table_stays_bounded() {
        let limiter = RateLimiter::new(1, 1, 50);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0xc000_0200 + i);
            let _ = limiter.check(&ClientKey::of(ip.into()), t0);
        }
        assert!(limiter.tracked() <= 50, "{}", limiter.tracked());
    }

    #[test]
    fn pending_is_bounded_per_client_and_overall_and_freed_on_drop() {
        let pending = Pending::new(3, 2);
        let (a, b, c) = (key("192.0.2.1"), key("192.0.2.2"), key("192.0.2.3"));
        let a1 = pending.admit(&a).unwrap();
        let _a2 = pending.admit(&a).unwrap();
        assert_eq!(pending.admit(&a).err(), Some(Busy::Client));
        let _b1 = pending.admit(&b).unwrap();
        assert_eq!(pending.admit(&c).err(), Some(Busy::Hub));
        drop(a1);
        assert_eq!(pending.len(), 2);
        let _c1 = pending.admit(&c).unwrap();
        assert_eq!(pending.admit(&a).err(), Some(Busy::Hub), "full again");
    }
}
