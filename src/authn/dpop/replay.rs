//! The DPoP replay cache: every proof accepted, by (key thumbprint, `jti`), until its
//! `iat` window has passed (RFC 9449 §11.1).
//!
//! Bounded (`dpop_replay_cache.max_entries`) and sharded by the entry's hash, each shard
//! a `HashMap` behind its own short lock (the check-and-insert must be atomic, which a
//! lock-free cache with eviction cannot promise). When a shard is full its expired
//! entries are dropped; if none has expired the proof is refused (503), never accepted
//! by forgetting a proof early: an evicted entry is a replay window an attacker can open
//! by sending junk proofs. Refusing under such a flood costs availability for DPoP-bound
//! tokens only, and only until the window passes.
//!
//! The cache is per process: a proof replayed to another replica within its window is
//! accepted there (README, "DPoP").

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus::IntGauge;

const SHARDS: usize = 16;

/// What the cache said about a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before: now remembered.
    New,
    /// Seen before, within its window.
    Replayed,
    /// Not seen, but the cache is full of proofs still within their window.
    Full,
}

#[derive(Default)]
struct Shard {
    /// Entry -> unix second from which it may be forgotten.
    seen: HashMap<[u8; 32], u64>,
    /// The earliest of those seconds (a full shard with nothing expired is not scanned).
    earliest: u64,
}

pub struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    max_entries: u64,
    entries: IntGauge,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache of at most `max_entries` proofs, counted in `entries`.
    pub fn new(max_entries: u64, entries: IntGauge) -> Self {
        let total = usize::try_from(max_entries)
            .unwrap_or(usize::MAX)
            .max(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: total.div_ceil(SHARDS),
            max_entries,
            entries,
        }
    }

    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// How many proofs are remembered now (for `/status`).
    pub fn held(&self) -> u64 {
        u64::try_from(self.entries.get()).unwrap_or(0)
    }

    /// Remembers `entry` (a SHA-256, so its first byte picks a shard evenly) until
    /// `forget_at`, unless it was seen before or there is no room.
    pub fn check(&self, entry: [u8; 32], forget_at: u64, now: u64) -> Seen {
        let shard = &self.shards[usize::from(entry[0]) % SHARDS];
        let mut s = shard.lock().unwrap_or_else(PoisonError::into_inner);
        match s.seen.get(&entry) {
            Some(until) if *until > now => return Seen::Replayed,
            Some(_) => {
                s.seen.remove(&entry);
                self.entries.dec();
            }
            None => {}
        }
        if s.seen.len() >= self.per_shard {
            if s.earliest > now {
                return Seen::Full;
            }
            let before = s.seen.len();
            s.seen.retain(|_, until| *until > now);
            self.entries.sub((before - s.seen.len()) as i64);
            s.earliest = s.seen.values().copied().min().unwrap_or(u64::MAX);
            if s.seen.len() >= self.per_shard {
                return Seen::Full;
            }
        }
        if s.seen.is_empty() || forget_at < s.earliest {
            s.earliest = forget_at;
        }
        s.seen.insert(entry, forget_at);
        self.entries.inc();
        Seen::New
    }
}

impl Drop for ReplayCache {
    fn drop(&mut self) {
        let held: usize = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).seen.len())
            .sum();
        self.entries.sub(held as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> [u8; 32] {
        crate::digest::sha256(&i.to_be_bytes())
    }

    #[test]
    fn a_proof_is_accepted_once_within_its_window() {
        let g = IntGauge::new("g", "g").unwrap();
        let c = ReplayCache::new(100, g.clone());
        assert_eq!(c.check(entry(1), 160, 100), Seen::New);
        assert_eq!(c.check(entry(1), 160, 159), Seen::Replayed);
        assert_eq!(c.check(entry(2), 160, 100), Seen::New);
        assert_eq!(g.get(), 2);
        // Past its window the entry is forgotten (the proof's iat check refuses it then).
        assert_eq!(c.check(entry(1), 260, 160), Seen::New);
        assert_eq!(g.get(), 2);
        drop(c);
        assert_eq!(g.get(), 0);
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let g = IntGauge::new("g", "g").unwrap();
        let c = ReplayCache::new(16, g.clone());
        let mut full = 0;
        for i in 0..1000 {
            if c.check(entry(i), 200, 100) == Seen::Full {
                full += 1;
            }
        }
        assert!(full > 0);
        assert!(g.get() <= 16, "{}", g.get());
        // Every remembered proof is still refused as a replay.
        for i in 0..1000 {
            assert_ne!(c.check(entry(i), 200, 150), Seen::New, "{i}");
        }
        // Once the window has passed there is room again.
        assert_eq!(c.check(entry(5000), 400, 200), Seen::New);
    }
}
