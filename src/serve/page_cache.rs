//! Compressed copies of rendered HTML pages and of RFC 5005 archive pages
//! (read from the feeds folder, not kept in memory whole), bounded in bytes.
//!
//! Pages are rendered from the catalog on every request, so they are never
//! stale (an edit to an old article changes no feed, so nothing would tell a
//! cache of rendered pages to forget it). What is worth keeping is the
//! compression: the gzip and brotli copies are keyed by the hash of the
//! rendered bytes, so a page is compressed once per version and a changed
//! page simply has a new key. Old versions leave in insertion order once the
//! copies held exceed `server.page_cache_bytes`.

use super::negotiate::Coding;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

type Key = ([u8; 32], Coding);

pub(crate) struct PageCache {
    budget: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    bytes: usize,
    copies: HashMap<Key, Bytes>,
    /// Insertion order, oldest first: what leaves when over budget.
    order: VecDeque<Key>,
}

impl PageCache {
    pub(crate) fn new(budget: usize) -> PageCache {
        PageCache {
            budget,
            held: Mutex::default(),
        }
    }

    /// The page body in `coding`, compressed at most once per version while
    /// it stays in the cache.
    pub(crate) fn body(&self, hash: &blake3::Hash, coding: Coding, identity: &Bytes) -> Bytes {
        let compress: fn(&[u8]) -> Vec<u8> = match coding {
            Coding::Identity => return identity.clone(),
            Coding::Gzip => crate::publish::gzip,
            Coding::Brotli => crate::publish::brotli,
        };
        let key = (*hash.as_bytes(), coding);
        if let Some(hit) = self.lock().copies.get(&key) {
            return hit.clone();
        }
        // Compressed outside the lock: two first requests may both compress,
        // which costs a little CPU once and keeps every other page served.
        let copy = Bytes::from(compress(identity));
        self.keep(key, copy.clone());
        copy
    }

    fn keep(&self, key: Key, copy: Bytes) {
        if copy.len() > self.budget {
            return;
        }
        let mut held = self.lock();
        if held.copies.contains_key(&key) {
            return;
        }
        held.bytes += copy.len();
        held.copies.insert(key, copy);
        held.order.push_back(key);
        while held.bytes > self.budget {
            let Some(oldest) = held.order.pop_front() else {
                break;
            };
            if let Some(gone) = held.copies.remove(&oldest) {
                held.bytes -= gone.len();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn held_bytes(&self) -> (usize, usize) {
        let held = self.lock();
        (held.bytes, held.copies.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn page(n: usize) -> Bytes {
        // Incompressible enough that each copy has a real size.
        let mut x: u64 = n as u64 + 1;
        (0..4096)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn serve_page_cache_stays_within_its_byte_budget() {
        let cache = PageCache::new(20_000);
        for n in 0..50 {
            let body = page(n);
            let hash = blake3::hash(&body);
            cache.body(&hash, Coding::Gzip, &body);
            cache.body(&hash, Coding::Brotli, &body);
            let (bytes, _) = cache.held_bytes();
            assert!(bytes <= 20_000, "held {bytes} bytes after page {n}");
        }
        let (_, copies) = cache.held_bytes();
        assert!(copies >= 2, "the newest copies are kept");
    }

    #[test]
    fn serve_page_cache_returns_the_same_copy_and_it_decodes() {
        let cache = PageCache::new(1 << 20);
        let body = Bytes::from_static(b"<!DOCTYPE html><p>Tin m\xe1\xbb\x9bi</p>");
        let hash = blake3::hash(&body);
        let first = cache.body(&hash, Coding::Gzip, &body);
        let again = cache.body(&hash, Coding::Gzip, &body);
        assert_eq!(first.as_ptr(), again.as_ptr(), "compressed once");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert_eq!(cache.body(&hash, Coding::Identity, &body), body);
        let (_, copies) = PageCache::new(0).held_bytes();
        assert_eq!(copies, 0);
    }
}
