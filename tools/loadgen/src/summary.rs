//! One measured run against one server, and the summary of repeated runs: median rate,
//! latency percentiles, server CPU and sleeps per check, the load generator's own CPU
//! share and the machine's other load.

use std::time::Duration;

use crate::stats::{Stats, median};

/// One measured run.
pub struct RunResult {
    pub stats: Stats,
    pub elapsed: Duration,
    pub server_cpu: Duration,
    /// CPU time used on the machine by neither server under test nor this process
    /// during the run (other jobs: the measurement's noise).
    pub foreign_cpu: Duration,
    /// How many times the server went to sleep during the run.
    pub server_sleeps: u64,
    /// CPU time of this process (the load generator) during the run.
    pub client_cpu: Duration,
}

impl RunResult {
    /// Answers per second.
    pub fn rate(&self) -> f64 {
        self.stats.hist.len() as f64 / self.elapsed.as_secs_f64()
    }
    /// Latency at quantile `q`, µs.
    pub fn p(&self, q: f64) -> f64 {
        self.stats.quantile_us(q)
    }
    /// Server CPU time per answer, µs.
    pub fn cpu_per_check_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.stats.hist.len().max(1) as f64
    }
    /// `n` per answer.
    pub fn per_check(&self, n: u64) -> f64 {
        n as f64 / self.stats.hist.len().max(1) as f64
    }
    /// The load generator's CPU time as a share of its one CPU: near 100 %, it and not
    /// the server may be what limits the rate.
    pub fn client_share(&self) -> f64 {
        self.client_cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Foreign load as a share of one CPU.
    pub fn foreign_share(&self) -> f64 {
        self.foreign_cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Medians over repeated runs.
#[derive(Default)]
pub struct Summary {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub cpu: f64,
    pub sleeps: f64,
    /// The load generator's median CPU share.
    pub client: f64,
    pub rates: Vec<f64>,
    pub dropped: u64,
    /// The largest foreign load seen in one of the runs, as a share of one CPU (none
    /// when the runs were too short for /proc/stat's 10 ms ticks).
    pub noise: Option<f64>,
}

/// The medians of `runs`.
pub fn summarize(runs: &[RunResult]) -> Summary {
    Summary {
        rate: median(runs.iter().map(RunResult::rate).collect()),
        p50: median(runs.iter().map(|r| r.p(0.5)).collect()),
        p99: median(runs.iter().map(|r| r.p(0.99)).collect()),
        p999: median(runs.iter().map(|r| r.p(0.999)).collect()),
        cpu: median(runs.iter().map(RunResult::cpu_per_check_us).collect()),
        sleeps: median(runs.iter().map(|r| r.per_check(r.server_sleeps)).collect()),
        client: median(runs.iter().map(RunResult::client_share).collect()),
        rates: runs.iter().map(RunResult::rate).collect(),
        dropped: runs.iter().map(|r| r.stats.dropped).sum(),
        noise: runs
            .iter()
            .filter(|r| r.elapsed >= Duration::from_secs(1))
            .map(RunResult::foreign_share)
            .reduce(f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(latencies_us: &[u64], secs: u64, server_cpu_ms: u64, sleeps: u64) -> RunResult {
        let mut stats = Stats::new();
        for us in latencies_us {
            stats.record(Ok(()), Duration::from_micros(*us));
        }
        RunResult {
            stats,
            elapsed: Duration::from_secs(secs),
            server_cpu: Duration::from_millis(server_cpu_ms),
            foreign_cpu: Duration::from_millis(100 * secs),
            server_sleeps: sleeps,
            client_cpu: Duration::from_millis(500 * secs),
        }
    }

    #[test]
    fn a_run_per_check() {
        let r = run(&[100; 1000], 2, 50, 250);
        assert_eq!(r.rate(), 500.0);
        assert_eq!(r.cpu_per_check_us(), 50.0);
        assert_eq!(r.per_check(r.server_sleeps), 0.25);
        assert_eq!(r.client_share(), 0.5);
        assert!((r.foreign_share() - 0.1).abs() < 1e-9);
        assert!((r.p(0.5) - 100.0).abs() < 0.1);
    }

    #[test]
    fn an_empty_run_divides_by_one() {
        let r = run(&[], 1, 10, 3);
        assert_eq!(r.rate(), 0.0);
        assert_eq!(r.cpu_per_check_us(), 10_000.0);
        assert_eq!(r.per_check(3), 3.0);
    }

    #[test]
    fn summaries_are_medians() {
        let runs = [
            run(&[100; 100], 1, 10, 0),
            run(&[300; 300], 1, 30, 0),
            run(&[200; 200], 1, 20, 0),
        ];
        let s = summarize(&runs);
        assert_eq!(s.rate, 200.0);
        assert_eq!(s.rates, vec![100.0, 300.0, 200.0]);
        assert!((s.p50 - 200.0).abs() < 0.2, "{}", s.p50);
        assert_eq!(s.cpu, 100.0);
        assert_eq!(s.noise, Some(0.1));
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn short_runs_say_nothing_of_noise() {
        let mut r = run(&[50; 10], 1, 1, 0);
        r.elapsed = Duration::from_millis(200);
        r.stats.dropped = 4;
        let s = summarize(&[r]);
        assert_eq!(s.noise, None);
        assert_eq!(s.dropped, 4);
    }
}
