//! The verified-token cache: a repeated token costs a hash and a lookup, not a signature.
//!
//! Keys are SHA-256 of the token, never the token: a dump of the cache holds no
//! credential, and a collision that could hand one token another's identity would need a
//! SHA-256 collision. The key does not name a provider: the cached identity records the
//! provider that verified it, and the engine accepts a hit only on a route of that
//! provider, so a token with several issuers' providers on its route hashes once.
//!
//! An entry also names the key that verified the token ([`KeyId`]): the engine counts
//! a hit only while that key is still in its provider's key set, so a key removed from
//! the JWKS revokes its tokens at the next check, cached or not.
//!
//! The map is `quick_cache` (CLOCK-PRO eviction, sharded), not moka: at the default bound
//! of 100 000 entries its per-entry bookkeeping is a slot of some 70 bytes against moka's
//! ~350 (entry, key, deque nodes, timer node), which is most of the difference between
//! ward fitting its memory budget or not (BENCHMARKS.md, memory). Entries carry no timer:
//! a hit at or past the token's `exp` is removed and answered as a miss, so an entry
//! never outlives its token, and expired entries are otherwise only ever evicted by the
//! bound, which caps their memory like any other entry's.

use std::sync::Arc;

use crate::authn::binding::Binding;
use crate::authn::claims::Identity;
use crate::authn::jwks::KeyId;

type Key = [u8; 32];

/// A verified token: who it says, and which key said so.
#[derive(Clone)]
pub struct Verified {
    pub identity: Arc<Identity>,
    pub key: KeyId,
    /// What the token is bound to (`cnf`): checked against every request that presents
    /// it, cached or not.
    pub binding: Option<Binding>,
}

/// Counts what the bound pushes out (`ward_token_cache_evictions_total`): a cache
/// too small for its traffic re-verifies tokens it has just forgotten.
#[derive(Clone)]
struct CountEvictions(prometheus::IntCounter);

impl quick_cache::Lifecycle<Key, Verified> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: Key, _: Verified) {
        self.0.inc();
    }
}

type Map = quick_cache::sync::Cache<
    Key,
    Verified,
    quick_cache::UnitWeighter,
    quick_cache::DefaultHashBuilder,
    CountEvictions,
>;

#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Map>,
}

impl TokenCache {
    /// A cache of at most `max_entries` verifications; each one its bound pushes out is
    /// counted in `evictions`.
    pub fn new(max_entries: u64, evictions: prometheus::IntCounter) -> Self {
        let bound = usize::try_from(max_entries).unwrap_or(usize::MAX).max(1);
        Self {
            inner: Arc::new(Map::with(
                bound,
                bound as u64,
                quick_cache::UnitWeighter,
                quick_cache::DefaultHashBuilder::default(),
                CountEvictions(evictions),
            )),
        }
    }

    /// How many verifications the cache holds now.
    pub fn entries(&self) -> usize {
        self.inner.len()
    }

    pub fn key(token: &str) -> Key {
        crate::digest::sha256(token.as_bytes())
    }

    /// A cached verification that is still within its token's `exp` at `now`.
    pub fn get(&self, key: &Key, now: u64) -> Option<Verified> {
        let v = self.inner.get(key)?;
        match v.identity.expires_at {
            Some(exp) if now >= exp => {
                self.inner.remove(key);
                None
            }
            _ => Some(v),
        }
    }

    pub fn insert(&self, key: Key, v: Verified, now: u64) {
        // A token already at or past its exp (accepted within leeway) is not cached.
        if v.identity.expires_at.is_some_and(|exp| exp > now) {
            self.inner.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::unix_now;

    fn evictions() -> prometheus::IntCounter {
        prometheus::IntCounter::new("evictions", "test").expect("valid counter")
    }

    fn verified(expires_at: u64) -> Verified {
        Verified {
            identity: Arc::new(Identity {
                expires_at: Some(expires_at),
                ..Default::default()
            }),
            key: KeyId::fixed(1),
            binding: None,
        }
    }

    #[test]
    fn never_serves_past_exp() {
        let c = TokenCache::new(10, evictions());
        let now = unix_now();
        let k = TokenCache::key("t");
        c.insert(k, verified(now + 100), now);
        assert!(c.get(&k, now).is_some());
        assert!(c.get(&k, now + 100).is_none());
        assert!(c.get(&k, now).is_none(), "expired entry was evicted");
    }

    #[test]
    fn the_bound_holds_and_what_it_pushes_out_is_counted() {
        let evicted = evictions();
        let c = TokenCache::new(100, evicted.clone());
        let now = unix_now();
        for i in 0..1000 {
            c.insert(TokenCache::key(&i.to_string()), verified(now + 100), now);
        }
        let held = c.inner.len();
        assert!((1..=100).contains(&held), "{held} entries");
        // Every insert was a new token: what is not held was evicted (quick_cache may
        // refuse a new entry at the door, which it counts as an eviction too).
        assert_eq!(evicted.get(), 1000 - held as u64);
        // An expired entry dropped by a lookup is not an eviction.
        let evicted = evictions();
        let c = TokenCache::new(10, evicted.clone());
        let k = TokenCache::key("t");
        c.insert(k, verified(now + 1), now);
        assert!(c.get(&k, now + 1).is_none());
        assert_eq!((c.inner.len(), evicted.get()), (0, 0));
    }

    #[test]
    fn keys_are_the_token_digest() {
        assert_ne!(TokenCache::key("a.b.c"), TokenCache::key("a.b.d"));
        assert_eq!(
            TokenCache::key("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 of `abc` (FIPS 180-2 test vector)"
        );
    }

    #[test]
    fn expired_tokens_are_not_cached() {
        let c = TokenCache::new(10, evictions());
        let now = unix_now();
        let k = TokenCache::key("t");
        c.insert(k, verified(now), now);
        assert!(c.get(&k, now - 1).is_none());
    }
}
