//! The verdict cache: an active token's identity for `min(cache_ttl, exp - now)`, a
//! refused token for `negative_cache_ttl`, keyed by SHA-256 of the token.
//!
//! Whether an entry still counts is decided by the provider's [`Clock`]: each entry
//! records when it stops counting, and a hit past that is dropped and asked again.
//! moka's own expiry, set to the same lifetime, only reclaims the memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::authn::TokenError;
use crate::authn::claims::Identity;
use crate::clock::Clock;

/// A verdict: the identity of an active token, or why it is refused.
pub(super) type Verdict = Result<Arc<Identity>, TokenError>;

/// The cache of one provider (shared by the next config's client when a reload leaves
/// the provider as it was).
pub(super) type Cache = moka::future::Cache<[u8; 32], Entry>;

/// A cached verdict, and until when it counts.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) verdict: Verdict,
    lifetime: Duration,
    /// The clock's elapsed milliseconds from which this entry no longer counts.
    until_ms: u64,
}

impl Entry {
    /// `verdict`, made now by `clock`, to be kept as long as `lifetimes` says.
    pub(super) fn new(verdict: Verdict, lifetimes: Lifetimes, clock: &Clock) -> Self {
        let lifetime = lifetimes.of(&verdict, clock.unix());
        let ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        Entry {
            verdict,
            lifetime,
            until_ms: clock.elapsed_ms().saturating_add(ms),
        }
    }

    /// Whether the entry's lifetime has passed by `clock`.
    pub(super) fn is_stale(&self, clock: &Clock) -> bool {
        clock.elapsed_ms() >= self.until_ms
    }
}

/// How long a verdict is kept: an identity until `min(cache_ttl, exp - now)`, a refusal
/// for `negative_cache_ttl`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetimes {
    pub(super) positive: Duration,
    pub(super) negative: Duration,
}

impl Lifetimes {
    fn of(self, v: &Verdict, now: Duration) -> Duration {
        match v {
            Ok(id) => match id.expires_at {
                Some(exp) => self.positive.min(until(exp, now)),
                None => self.positive,
            },
            Err(_) => self.negative,
        }
    }
}

/// moka reclaims an entry once its lifetime has passed.
struct Reclaim;

impl Expiry<[u8; 32], Entry> for Reclaim {
    fn expire_after_create(&self, _: &[u8; 32], e: &Entry, _: Instant) -> Option<Duration> {
        Some(e.lifetime)
    }
}

/// A bounded cache of at least one entry.
pub(super) fn build(max_entries: u64) -> Cache {
    moka::future::Cache::builder()
        .max_capacity(max_entries.max(1))
        .expire_after(Reclaim)
        .build()
}

/// Time from `now` (since the unix epoch) to the unix second `exp`: zero when past;
/// `Duration::MAX` when beyond what a system clock represents (i64 seconds), such as
/// Java's `Long.MAX_VALUE` for "never".
pub(super) fn until(exp: u64, now: Duration) -> Duration {
    if i64::try_from(exp).is_err() {
        return Duration::MAX;
    }
    Duration::from_secs(exp).saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            positive: Duration::from_secs(60),
            negative: Duration::from_secs(10),
        }
    }

    fn active(expires_at: Option<u64>) -> Verdict {
        Ok(Arc::new(Identity {
            expires_at,
            ..Default::default()
        }))
    }

    #[test]
    fn until_saturates_instead_of_overflowing() {
        let now = Clock::system().unix();
        assert_eq!(until(0, now), Duration::ZERO, "past");
        assert_eq!(until(u64::MAX, now), Duration::MAX);
        assert!(until(i64::MAX as u64, now) > Duration::from_secs(1 << 62));
        assert_eq!(
            until(1 << 63, now),
            Duration::MAX,
            "i64::MAX through an f64"
        );
        let soon = until(now.as_secs() + 100, now);
        assert!(soon > Duration::from_secs(98) && soon <= Duration::from_secs(100));
    }

    #[test]
    fn an_identity_counts_until_the_ttl_or_its_exp_whichever_is_first() {
        let (clock, hand) = Clock::manual(Duration::from_secs(1_000));
        let long = Entry::new(active(Some(10_000)), lifetimes(), &clock);
        let short = Entry::new(active(Some(1_030)), lifetimes(), &clock);
        let no_exp = Entry::new(active(None), lifetimes(), &clock);
        hand.advance(Duration::from_secs(29));
        assert!(!short.is_stale(&clock));
        hand.advance(Duration::from_secs(1));
        assert!(short.is_stale(&clock), "its exp");
        assert!(!long.is_stale(&clock) && !no_exp.is_stale(&clock));
        hand.advance(Duration::from_secs(30));
        assert!(long.is_stale(&clock), "cache_ttl");
        assert!(no_exp.is_stale(&clock), "cache_ttl");
    }

    #[test]
    fn a_refusal_counts_for_the_negative_ttl() {
        let (clock, hand) = Clock::manual(Duration::from_secs(1_000));
        let refused = Entry::new(Err(TokenError::Inactive), lifetimes(), &clock);
        hand.advance(Duration::from_millis(9_999));
        assert!(!refused.is_stale(&clock));
        hand.advance(Duration::from_millis(1));
        assert!(refused.is_stale(&clock));
    }
}
