//! The load shapes. Requests are encoded before any run; request `i` of a list is entry
//! `i % len`, taken from a cursor that the caller keeps across runs (so a list of
//! distinct tokens is consumed in order and never sent twice to the same server).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::bytes::Bytes;

use crate::client::Client;
use crate::stats::Stats;
use crate::verdict::{Expect, judge};

/// Encoded requests, each with the answer it should get.
pub type Requests = Arc<Vec<(Bytes, Expect)>>;

/// Request `i` and its expected answer; always `Allow` when `all_allowed` (the baseline
/// allows everything).
pub fn nth(reqs: &Requests, i: usize, all_allowed: bool) -> (Bytes, Expect) {
    let (req, expect) = &reqs[i % reqs.len()];
    (
        req.clone(),
        if all_allowed { Expect::Allow } else { *expect },
    )
}

/// Closed loop: `concurrency` workers, each sending its next request when the previous
/// answers, until `duration` passes or the cursor reaches `limit`. Latencies are from
/// send to answer.
pub async fn closed_loop(
    clients: &[Client],
    reqs: &Requests,
    cursor: &Arc<AtomicUsize>,
    limit: usize,
    concurrency: usize,
    duration: Duration,
    all_allowed: bool,
) -> (Stats, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for k in 0..concurrency {
        let mut client = clients[k % clients.len()].clone();
        let reqs = reqs.clone();
        let cursor = cursor.clone();
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new();
            while Instant::now() < deadline {
                let i = cursor.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let (req, expect) = nth(&reqs, i, all_allowed);
                let t0 = Instant::now();
                let resp = client.check(req).await;
                let lat = t0.elapsed();
                st.record(judge(resp, expect), lat);
            }
            st
        }));
    }
    let mut all = Stats::new();
    for t in tasks {
        match t.await {
            Ok(st) => all.add(&st),
            Err(e) => all.error(format!("worker: {e}")),
        }
    }
    (all, start.elapsed())
}

/// Open loop: request `n` is due at `start + n / rate`, sent then whatever the server's
/// state, its latency counted from that due time (a stalled server is not hidden by
/// coordinated omission). More than `max_outstanding` requests in flight are dropped
/// (and counted) rather than queued without bound.
pub async fn open_loop(
    clients: &[Client],
    reqs: &Requests,
    cursor: &Arc<AtomicUsize>,
    rate: u64,
    duration: Duration,
    all_allowed: bool,
) -> (Stats, Duration) {
    let max_outstanding = 4096usize;
    let period_ns = 1_000_000_000 / rate.max(1);
    let total = (duration.as_secs_f64() * rate as f64) as u64;
    let shared = Arc::new(Mutex::new(Stats::new()));
    let outstanding = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let mut dropped = 0;
    let mut n = 0u64;
    while n < total {
        let now = Instant::now();
        while n < total && start + Duration::from_nanos(period_ns * n) <= now {
            let due = start + Duration::from_nanos(period_ns * n);
            n += 1;
            if outstanding.load(Ordering::Relaxed) >= max_outstanding {
                dropped += 1;
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            let (req, expect) = nth(reqs, i, all_allowed);
            let mut client = clients[i % clients.len()].clone();
            let (shared, outstanding, done) = (shared.clone(), outstanding.clone(), done.clone());
            tokio::spawn(async move {
                let resp = client.check(req).await;
                let lat = due.elapsed();
                let verdict = judge(resp, expect);
                lock(&shared).record(verdict, lat);
                if outstanding.fetch_sub(1, Ordering::Relaxed) == 1 {
                    done.notify_one();
                }
            });
        }
        tokio::task::yield_now().await;
    }
    while outstanding.load(Ordering::Relaxed) > 0 {
        let _ = tokio::time::timeout(Duration::from_millis(10), done.notified()).await;
    }
    let elapsed = start.elapsed();
    let mut st = lock(&shared).clone();
    st.dropped = dropped;
    (st, elapsed)
}

/// A mutex's content, even if a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
