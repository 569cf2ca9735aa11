//! Latencies in HdrHistograms, answers counted, medians over repeated runs.

use hdrhistogram::Histogram;

/// A histogram of values from 1 to `high`, three significant digits.
pub fn histogram(high: u64) -> Histogram<u64> {
    // Bounds are constants chosen by the callers (high >= 2): never refused.
    Histogram::new_with_bounds(1, high.max(2), 3).expect("valid histogram bounds")
}

/// Microseconds as milliseconds.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// What one run (or one worker of a run) saw: latencies in nanoseconds (up to 60 s),
/// answers as expected, errors, the first error's text, requests dropped.
#[derive(Clone)]
pub struct Stats {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub dropped: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Self {
            hist: histogram(60_000_000_000),
            ok: 0,
            errors: 0,
            first_error: None,
            dropped: 0,
        }
    }

    /// Adds another's counts and latencies (the first error seen stays).
    pub fn add(&mut self, o: &Stats) {
        self.hist.add(&o.hist).expect("same bounds");
        self.ok += o.ok;
        self.errors += o.errors;
        self.dropped += o.dropped;
        if self.first_error.is_none() {
            self.first_error = o.first_error.clone();
        }
    }

    pub fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// Counts a judged answer and records its latency.
    pub fn record(&mut self, verdict: Result<(), String>, latency: std::time::Duration) {
        match verdict {
            Ok(()) => self.ok += 1,
            Err(e) => self.error(e),
        }
        self.hist.saturating_record(latency.as_nanos() as u64);
    }

    /// The latency at quantile `q`, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The median (the mean of the middle two for an even count; NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn medians() {
        assert!(median(vec![]).is_nan());
        assert_eq!(median(vec![3.0]), 3.0);
        assert_eq!(median(vec![5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn percentiles_within_three_digits() {
        let mut s = Stats::new();
        // 1..=1000 µs, one each.
        for us in 1..=1000u64 {
            s.record(Ok(()), Duration::from_micros(us));
        }
        assert_eq!(s.ok, 1000);
        assert_eq!(s.hist.len(), 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(s.quantile_us(0.5), 500.0), "{}", s.quantile_us(0.5));
        assert!(close(s.quantile_us(0.99), 990.0), "{}", s.quantile_us(0.99));
        assert!(
            close(s.quantile_us(0.999), 999.0),
            "{}",
            s.quantile_us(0.999)
        );
        assert!(close(s.quantile_us(1.0), 1000.0), "{}", s.quantile_us(1.0));
    }

    #[test]
    fn a_latency_past_the_bound_is_saturated_not_lost() {
        let mut s = Stats::new();
        s.record(Ok(()), Duration::from_secs(3600));
        assert_eq!(s.hist.len(), 1);
        assert!(s.hist.max() >= 60_000_000_000 * 999 / 1000);
    }

    #[test]
    fn errors_keep_the_first_text() {
        let mut a = Stats::new();
        a.record(Err("first".into()), Duration::from_micros(5));
        a.record(Err("second".into()), Duration::from_micros(5));
        let mut b = Stats::new();
        b.record(Ok(()), Duration::from_micros(7));
        b.dropped = 3;
        b.add(&a);
        assert_eq!((b.ok, b.errors, b.dropped), (1, 2, 3));
        assert_eq!(b.first_error.as_deref(), Some("first"));
        assert_eq!(b.hist.len(), 3);
    }

    #[test]
    fn small_histograms_and_milliseconds() {
        let mut h = histogram(60_000_000);
        h.saturating_record(1500);
        assert!((ms(h.value_at_quantile(0.5)) - 1.5).abs() < 0.01);
    }
}
