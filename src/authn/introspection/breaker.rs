//! The introspection endpoint's circuit breaker.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::authn::introspection::BreakerSettings;
use crate::clock::Clock;

/// Consecutive-failure circuit breaker, lock-free. Closed while fewer than `failures`
/// calls in a row failed (and no 429 or 503 asked to back off); then open: no calls,
/// except one probe at a time once `cool_down` (or a shorter `Retry-After`) has passed
/// since it opened or since the last probe failed. Any success closes it.
pub(super) struct Breaker {
    settings: BreakerSettings,
    failures: AtomicU32,
    /// The clock's elapsed milliseconds (plus one) from which the next probe may go; 0
    /// while closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    clock: Clock,
}

/// Leave to make one call. A probe permit dropped without a result (the check was
/// cancelled) frees the probe slot for the next caller.
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub(super) fn new(settings: BreakerSettings, clock: Clock) -> Self {
        Self {
            settings,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            clock,
        }
    }

    /// The clock's elapsed milliseconds, from 1: 0 is the closed breaker's `open_until`.
    fn now_ms(&self) -> u64 {
        self.clock.elapsed_ms().saturating_add(1)
    }

    pub(super) fn acquire(&self) -> Option<Permit<'_>> {
        let permit = |probe| Permit {
            breaker: self,
            probe,
            done: false,
        };
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Some(permit(false));
        }
        if self.now_ms() < until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| permit(true))
    }

    /// Whether the breaker is open: the endpoint is backed off until a probe succeeds.
    pub(super) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// The breaker's state for `/status`: consecutive failures, and while open, how long
    /// until the next probe may go (zero: the next call probes).
    pub(super) fn snapshot(&self) -> (u32, Option<Duration>) {
        let failures = self.failures.load(Ordering::Acquire);
        let until = self.open_until.load(Ordering::Acquire);
        let wait = (until != 0).then(|| Duration::from_millis(until.saturating_sub(self.now_ms())));
        (failures, wait)
    }

    /// When the next probe may go after a failure now, `retry_after` shortening the wait.
    fn next_probe(&self, retry_after: Option<Duration>) -> u64 {
        let wait = retry_after.map_or(self.settings.cool_down, |r| r.min(self.settings.cool_down));
        self.now_ms()
            .saturating_add(wait.as_millis().try_into().unwrap_or(u64::MAX))
    }
}

impl Permit<'_> {
    /// Records an answer; true when this closed an open breaker.
    pub(super) fn success(mut self) -> bool {
        self.done = true;
        let b = self.breaker;
        b.failures.store(0, Ordering::Release);
        let was = b.open_until.swap(0, Ordering::AcqRel);
        b.probing.store(false, Ordering::Release);
        was != 0
    }

    /// Records a provider failure, with the wait it asked for; true when this opened
    /// (or reopened) the breaker.
    pub(super) fn failure(mut self, retry_after: Option<Duration>) -> bool {
        self.done = true;
        let b = self.breaker;
        let n = b.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if self.probe {
            b.open_until
                .store(b.next_probe(retry_after), Ordering::Release);
            b.probing.store(false, Ordering::Release);
            return true;
        }
        // A call let through before the breaker opened: the probes decide now.
        if b.open_until.load(Ordering::Acquire) != 0 {
            return false;
        }
        if n >= b.settings.failures || retry_after.is_some() {
            return b
                .open_until
                .compare_exchange(
                    0,
                    b.next_probe(retry_after),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok();
        }
        false
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.done {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A breaker on a manual clock, and the hand that moves it.
    fn breaker(failures: u32, cool_down_ms: u64) -> (Breaker, ManualClock) {
        let (clock, hand) = Clock::manual(Duration::from_secs(1_000));
        let settings = BreakerSettings {
            failures,
            cool_down: Duration::from_millis(cool_down_ms),
        };
        (Breaker::new(settings, clock), hand)
    }

    #[test]
    fn breaker_opens_fails_fast_then_probes_once() {
        let (b, hand) = breaker(2, 50);
        assert!(!b.acquire().unwrap().failure(None));
        assert!(b.acquire().unwrap().failure(None), "second failure opens");
        assert!(b.acquire().is_none(), "open: no calls");
        hand.advance(Duration::from_millis(49));
        assert!(b.acquire().is_none(), "still cooling down");
        hand.advance(Duration::from_millis(1));
        let probe = b.acquire().expect("half-open lets one probe");
        assert!(b.acquire().is_none(), "only one probe at a time");
        assert!(probe.failure(None), "a failed probe reopens");
        assert!(b.acquire().is_none());
        hand.advance(Duration::from_millis(50));
        let probe = b.acquire().expect("probe");
        assert!(probe.success(), "a good probe closes");
        assert!(b.acquire().is_some());
        assert!(b.acquire().is_some());
    }

    #[test]
    fn retry_after_opens_at_once_and_only_shortens_the_wait() {
        let (b, hand) = breaker(5, 60_000);
        let asked = Some(Duration::ZERO);
        assert!(
            b.acquire().unwrap().failure(asked),
            "a 429 with Retry-After opens"
        );
        let probe = b
            .acquire()
            .expect("Retry-After: 0 lets the next call probe");
        // A Retry-After of an hour waits no longer than the cool-down.
        assert!(probe.failure(Some(Duration::from_secs(3600))));
        let until = b.open_until.load(Ordering::Acquire);
        assert!(until <= b.now_ms() + 60_000, "capped by cool_down");
        assert!(b.acquire().is_none());
        hand.advance(Duration::from_millis(59_999));
        assert!(
            b.acquire().is_none(),
            "the hour was not waited, nor less than cool_down"
        );
        hand.advance(Duration::from_millis(1));
        assert!(b.acquire().is_some(), "probe after cool_down");
    }

    #[test]
    fn calls_from_before_the_breaker_opened_do_not_postpone_the_probe() {
        let (b, hand) = breaker(1, 50);
        let (late, first) = (b.acquire().unwrap(), b.acquire().unwrap());
        assert!(first.failure(None), "opens");
        let until = b.open_until.load(Ordering::Acquire);
        hand.advance(Duration::from_millis(5));
        assert!(
            !late.failure(Some(Duration::from_millis(50))),
            "already open"
        );
        assert_eq!(b.open_until.load(Ordering::Acquire), until);
        // Any success closes it, a probe's or not.
        let (b, _hand) = breaker(1, 60_000);
        let in_flight = b.acquire().unwrap();
        b.acquire().unwrap().failure(None);
        assert!(b.acquire().is_none());
        assert!(in_flight.success(), "an answer closes");
        assert!(b.acquire().is_some());
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let (b, _hand) = breaker(1, 0);
        b.acquire().unwrap().failure(None);
        let probe = b.acquire().expect("probe");
        assert!(b.acquire().is_none());
        drop(probe);
        assert!(b.acquire().is_some(), "the next caller may probe");
    }
}
