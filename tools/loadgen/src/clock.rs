//! One clock for a whole run: seconds since it was first read.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Starts the clock (the first call wins; later ones change nothing).
pub fn start() {
    START.get_or_init(Instant::now);
}

/// Seconds since the clock started (it starts at the first call if [`start`] was not
/// called).
pub fn now_s() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The wall clock, in seconds since the Unix epoch.
pub fn unix_now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_moves_forward() {
        super::start();
        let a = super::now_s();
        let b = super::now_s();
        assert!(a >= 0.0 && b >= a);
        assert!(super::unix_now_f() > 1.7e9);
    }
}
