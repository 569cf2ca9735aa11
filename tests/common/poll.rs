//! Waiting without fixed sleeps: [`eventually`] and [`wait_until`] poll with a deadline;
//! [`each_case`] runs a table test and reports every failing row by name.

use std::time::{Duration, Instant};

/// Runs `check` on every case, then fails naming each case that failed: a table test
/// reports all of its broken rows (each row's own panic message is printed as it
/// happens), as separate tests would, not only the first.
pub fn each_case<N: std::fmt::Display, T>(
    cases: impl IntoIterator<Item = (N, T)>,
    check: impl Fn(T),
) {
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, case)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)))
                .err()
                .map(|_| name.to_string())
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed, see their messages above: {}",
        failed.len(),
        failed.join("; ")
    );
}

/// Retries `attempt` every 20 ms until it returns `Ok`, and returns that value; fails the
/// test with the last `Err` once `within` has passed. For waiting on something that
/// happens in the background (readiness, a reload, a refresh), never with a fixed sleep.
pub async fn eventually<T>(
    within: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "after {within:?}: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`] for a plain condition: fails with `what` once `within` has passed.
pub async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    eventually(within, async || {
        if done().await {
            Ok(())
        } else {
            Err(format!("{what}: not yet"))
        }
    })
    .await
}
