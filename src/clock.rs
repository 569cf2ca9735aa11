//! The time ward decides by: token `exp`/`nbf`/`iat`, cache lifetimes, key refresh and
//! refetch limits, the introspection breaker.
//!
//! Every such read goes through a [`Clock`], handed to the engine, the key stores and
//! the introspection clients when they are built, never read from the system directly.
//! A `Clock` is a cheap handle (`Clone` copies a pointer at most):
//!
//! - [`Clock::system`], in production: the wall clock for unix seconds, a monotonic
//!   clock for intervals, tokio's timer for waits;
//! - [`Clock::manual`], in tests: time stands still until the test moves it with
//!   [`ManualClock::advance`]. Waits ([`Clock::sleep`]) end when an advance passes their
//!   deadline, so a refresh loop or a backoff runs exactly as far as the test says, and
//!   real network timeouts (tokio's own timer) are left alone.
//!
//! Two readings are kept apart: [`Clock::unix_secs`] (the calendar, for claims such as
//! `exp`) and [`Clock::elapsed`] (monotonic, for intervals: it never goes back when the
//! wall clock is set).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A handle on the time ward decides by. See the [module docs](self).
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<Manual>),
}

/// A manual clock's state: the unix time it started at, and how far it has been moved
/// (a `watch` channel, so waits wake when it moves).
struct Manual {
    unix_start: Duration,
    elapsed: watch::Sender<Duration>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Manual(m) => f
                .debug_struct("Clock::Manual")
                .field("unix_start", &m.unix_start)
                .field("elapsed", &*m.elapsed.borrow())
                .finish(),
        }
    }
}

/// The fixed origin of the system clock's monotonic readings.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock {
    /// The system clock: what a server runs on, and the default.
    pub fn system() -> Self {
        Clock(Source::System)
    }

    /// A clock that starts at `unix_start` since the epoch and moves only when the
    /// returned [`ManualClock`] advances it.
    pub fn manual(unix_start: Duration) -> (Self, ManualClock) {
        let manual = Arc::new(Manual {
            unix_start,
            elapsed: watch::Sender::new(Duration::ZERO),
        });
        (Clock(Source::Manual(manual.clone())), ManualClock(manual))
    }

    /// A manual clock that starts at the system's current time.
    pub fn manual_from_now() -> (Self, ManualClock) {
        Self::manual(system_unix())
    }

    /// Time since the unix epoch (zero before it).
    pub fn unix(&self) -> Duration {
        match &self.0 {
            Source::System => system_unix(),
            Source::Manual(m) => m.unix_start.saturating_add(*m.elapsed.borrow()),
        }
    }

    /// Whole seconds since the unix epoch: what `exp`, `nbf` and `iat` are compared with.
    pub fn unix_secs(&self) -> u64 {
        self.unix().as_secs()
    }

    /// Monotonic time since a fixed origin of this clock (the first reading of the
    /// system clock in this process; the start of a manual clock). Only differences
    /// between two readings of the same clock mean anything.
    pub fn elapsed(&self) -> Duration {
        match &self.0 {
            Source::System => origin().elapsed(),
            Source::Manual(m) => *m.elapsed.borrow(),
        }
    }

    /// [`Self::elapsed`] in whole milliseconds, saturating.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits for `d` of this clock's time, counted from this call (not from the first
    /// poll): tokio's timer for the system clock; for a manual clock, until advances
    /// have moved it `d` past the moment of the call.
    pub fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
        let manual = match &self.0 {
            Source::System => None,
            Source::Manual(m) => {
                let deadline = m.elapsed.borrow().saturating_add(d);
                Some((m.clone(), m.elapsed.subscribe(), deadline))
            }
        };
        let system_deadline = tokio::time::Instant::now().checked_add(d);
        async move {
            match (manual, system_deadline) {
                (None, Some(at)) => tokio::time::sleep_until(at).await,
                // Beyond what the clock represents: never.
                (None, None) => std::future::pending().await,
                // `m` keeps the sender alive, so this ends only at the deadline.
                (Some((_m, mut rx, deadline)), _) => {
                    let _ = rx.wait_for(|now| *now >= deadline).await;
                }
            }
        }
    }
}

fn system_unix() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// The hand that moves a [manual](Clock::manual) clock.
#[derive(Clone)]
pub struct ManualClock(Arc<Manual>);

impl ManualClock {
    /// Moves the clock (and every handle on it) forward by `d`, waking the waits whose
    /// deadline this reaches.
    pub fn advance(&self, d: Duration) {
        self.0.elapsed.send_modify(|e| *e = e.saturating_add(d));
    }

    /// A handle on the clock this moves.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.clone()))
    }
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.clock().fmt(f)
    }
}

/// The system clock's unix seconds, for what is not a decision: minting tokens (`ward
/// test`, ward's own tests and benches). Not API: a user reads [`Clock::unix_secs`].
#[doc(hidden)]
pub fn unix_now() -> u64 {
    system_unix().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let (clock, hand) = Clock::manual(Duration::from_secs(1_000));
        let copy = clock.clone();
        assert_eq!(clock.unix_secs(), 1_000);
        assert_eq!(clock.elapsed(), Duration::ZERO);
        hand.advance(Duration::from_millis(1_500));
        assert_eq!(clock.unix_secs(), 1_001);
        assert_eq!(copy.elapsed_ms(), 1_500, "every handle sees the same time");
        assert_eq!(hand.clock().elapsed_ms(), 1_500);
    }

    #[test]
    fn the_system_clock_reads_the_system() {
        let c = Clock::system();
        let before = unix_now();
        let read = c.unix_secs();
        assert!(read >= before && read <= unix_now());
        let a = c.elapsed();
        assert!(c.elapsed() >= a, "monotonic");
    }

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_passes_its_deadline() {
        let (clock, hand) = Clock::manual(Duration::ZERO);
        let sleeping = tokio::spawn(clock.sleep(Duration::from_secs(10)));
        hand.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        assert!(!sleeping.is_finished(), "9 s of 10");
        hand.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeping)
            .await
            .expect("woke once 10 s had passed")
            .expect("the task ran");
    }

    #[tokio::test]
    async fn a_zero_sleep_on_a_manual_clock_is_immediate() {
        let (clock, _hand) = Clock::manual(Duration::ZERO);
        tokio::time::timeout(Duration::from_secs(5), clock.sleep(Duration::ZERO))
            .await
            .expect("no advance needed");
    }
}
