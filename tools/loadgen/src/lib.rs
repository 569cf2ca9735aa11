//! ward's load generator, shared by the `e2e` and `soak` benches.
//!
//! - [`client`]: a gRPC client of `Authorization/Check` that sends pre-encoded requests
//!   and decodes only what [`verdict`] judges, so the generator costs the same whatever
//!   server answers.
//! - [`verdict`]: the cheap answer classifier (allowed, or refused with which HTTP status
//!   and reason), and the check of an answer against what was expected.
//! - [`load`]: the load shapes: a closed loop at a fixed concurrency (one in flight is
//!   concurrency 1), and an open loop at a fixed rate whose latencies count from each
//!   request's due time (free of coordinated omission).
//! - [`stats`]: HdrHistogram recording, medians and percentiles; [`summary`]: a run
//!   against one server and the medians of repeated runs.
//! - [`process`]: servers as child processes (pinned to a CPU or not), the do-nothing
//!   baseline server (the bench binary re-executed), readiness.
//! - [`procfs`]: CPU time, RSS, sleeps, open files and the machine's other load, read
//!   from /proc.
//! - [`metrics`]: reading a Prometheus text exposition.
//! - [`flaky`]: HTTP servers whose state a scheduler sets (up, failing, hanging, down).
//! - [`args`]: parsing of the benches' command-line values; [`clock`]: one clock for a run.

pub mod args;
pub mod baseline;
pub mod client;
pub mod clock;
pub mod flaky;
pub mod load;
pub mod metrics;
pub mod process;
pub mod procfs;
pub mod stats;
pub mod summary;
pub mod verdict;

/// The same token with one signature character changed: well-formed, known kid, bad
/// signature (the server has to verify the signature to refuse it). A string without a
/// signature is changed in its middle; an empty one stays empty.
pub fn tamper(token: &str) -> String {
    let sig_at = token.rfind('.').map_or(0, |i| i + 1);
    let mut b = token.as_bytes().to_vec();
    let i = sig_at + (b.len() - sig_at) / 2;
    if i < b.len() {
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(b).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::tamper;

    #[test]
    fn tamper_changes_one_signature_character() {
        let t = "aGVhZGVy.Y2xhaW1z.c2lnbmF0dXJlAAA";
        let bad = tamper(t);
        assert_eq!(bad.len(), t.len());
        let (head, sig) = bad.rsplit_once('.').expect("three parts");
        assert_eq!(head, "aGVhZGVy.Y2xhaW1z");
        let diff: Vec<usize> = sig
            .bytes()
            .zip("c2lnbmF0dXJlAAA".bytes())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(diff, vec![7]);
    }

    #[test]
    fn tamper_flips_an_a_to_b() {
        assert_eq!(tamper("h.p.AAA"), "h.p.ABA");
        assert_eq!(tamper("h.p.xyz"), "h.p.xAz");
    }

    #[test]
    fn tamper_never_panics() {
        assert_eq!(tamper(""), "");
        assert_eq!(tamper("abc."), "abc.");
        assert_eq!(tamper("abcd"), "abAd");
    }
}
