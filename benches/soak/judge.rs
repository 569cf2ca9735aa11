//! Judging the soak run's answers: what each credential should get given what ward can
//! know at the time (a key it verified a token with, a cached introspection answer, a
//! removed key it has refetched), counted by what was sent and what came back.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use loadgen::flaky::Mode;
use loadgen::load::lock;
use loadgen::verdict::Answer;

use crate::world::World;
use crate::{INTRO_MARGIN, INTRO_TTL, RECOVERY_BOUND, REVOCATION_GRACE};

// === classification ===

#[derive(Debug, Clone, Copy)]
pub(crate) enum Junk {
    Malformed,
    UnknownKid,
    Tampered,
    Opaque,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cred {
    Jwt { key: usize, fresh: bool },
    Intro { fresh: bool },
    Junk(Junk),
    Anon,
}

pub(crate) struct Window {
    pub(crate) hist: Histogram<u64>,
    /// Checks that need no identity provider: a JWT whose key ward holds, an opaque
    /// token whose answer is cached, an anonymous route.
    pub(crate) cached: Histogram<u64>,
    pub(crate) jwks: BTreeSet<String>,
    pub(crate) intro: BTreeSet<String>,
}

impl Window {
    pub(crate) fn new() -> Self {
        Window {
            hist: hist(),
            cached: hist(),
            jwks: BTreeSet::new(),
            intro: BTreeSet::new(),
        }
    }
}

/// Latencies in µs, up to 60 s.
pub(crate) fn hist() -> Histogram<u64> {
    loadgen::stats::histogram(60_000_000)
}

pub(crate) struct Tally {
    /// (what was sent, what came back) -> count.
    pub(crate) counts: BTreeMap<(String, String), u64>,
    pub(crate) valid_failed: u64,
    pub(crate) other_failed: u64,
    pub(crate) notes: Vec<String>,
    pub(crate) window: Window,
    pub(crate) total: Histogram<u64>,
    pub(crate) total_cached: Histogram<u64>,
    pub(crate) not_sent: u64,
}

impl Tally {
    pub(crate) fn count(&mut self, what: &str, outcome: String) {
        *self.counts.entry((what.to_string(), outcome)).or_default() += 1;
    }

    pub(crate) fn fail(&mut self, valid: bool, note: String) {
        if valid {
            self.valid_failed += 1;
        } else {
            self.other_failed += 1;
        }
        if self.notes.len() < 40 {
            self.notes.push(note);
        }
    }
}

/// Judges one answer. `sent` is the check's scheduled send time, `got` its arrival
/// (seconds since start), `token` the credential (for the introspection server's record).
/// True when the check needed no identity provider (see [`Window::cached`]).
pub(crate) fn judge(
    w: &World,
    cred: Cred,
    token: &str,
    sent: f64,
    got: f64,
    ans: Result<Answer, String>,
) -> bool {
    let cached = match cred {
        Cred::Jwt { key, .. } => {
            let keys = lock(&w.keys);
            let k = &keys.keys[key];
            k.verified_at.is_some_and(|v| v < sent) && k.removed_at.is_none_or(|r| r > sent)
        }
        Cred::Intro { .. } => introspection_cached(w, token, sent).0,
        Cred::Anon => true,
        Cred::Junk(_) => false,
    };
    classify(w, cred, token, sent, got, ans);
    cached
}

/// Whether the introspection server's active answer for `token` is younger than the
/// cache TTL (less the margin) at `sent`, and when it was given.
pub(crate) fn introspection_cached(w: &World, token: &str, sent: f64) -> (bool, Option<f64>) {
    let answered = lock(&w.intro)
        .valid
        .get(token)
        .and_then(|times| times.iter().rev().find(|a| **a <= sent).copied());
    (
        answered.is_some_and(|a| sent < a + INTRO_TTL - INTRO_MARGIN),
        answered,
    )
}

pub(crate) fn classify(
    w: &World,
    cred: Cred,
    token: &str,
    sent: f64,
    got: f64,
    ans: Result<Answer, String>,
) {
    let jwks_mode = w.jwks_server.get().map_or(Mode::Up, |s| s.mode()).label();
    let intro_mode = w.intro_server.get().map_or(Mode::Up, |s| s.mode()).label();
    let context = || {
        format!(
            "sent t={sent:.3}s, answered t={got:.3}s, JWKS {jwks_mode}, introspection {intro_mode}"
        )
    };
    let ans = match ans {
        Ok(a) => a,
        Err(e) => {
            let mut t = lock(&w.tally);
            t.count("any", "transport error".into());
            t.fail(false, format!("{cred:?}: {e} ({})", context()));
            return;
        }
    };
    match cred {
        Cred::Jwt { key, fresh } => {
            let mut keys = lock(&w.keys);
            let k = &mut keys.keys[key];
            let kind = if fresh { "fresh" } else { "pooled" };
            let removed = k.removed_at;
            let refetched = k.refetched_at;
            let verified = k.verified_at;
            if ans.allowed && verified.is_none() && removed.is_none() {
                k.verified_at = Some(got);
            }
            let key_age = sent - k.published_at;
            drop(keys);
            let mut t = lock(&w.tally);
            match removed {
                Some(r) if r <= sent => {
                    let what = "JWT of a removed key";
                    if !ans.allowed {
                        t.count(what, format!("{} (revoked, expected)", ans.refusal()));
                    } else if refetched.is_some_and(|f| sent > f + REVOCATION_GRACE) {
                        t.count(what, "ALLOWED after ward refetched the keys".into());
                        t.fail(
                            false,
                            format!(
                                "{kind} JWT of key #{key} removed at t={r:.1}s, ward refetched by t={:.1}s, allowed ({})",
                                refetched.unwrap_or(0.0),
                                context()
                            ),
                        );
                    } else {
                        t.count(
                            what,
                            "allowed before ward refetched the keys (expected)".into(),
                        );
                    }
                }
                _ => {
                    let cached = verified.is_some_and(|v| v < sent);
                    let what = if cached {
                        "valid JWT, key cached"
                    } else {
                        "valid JWT, key not yet verified by ward"
                    };
                    if ans.allowed {
                        t.count(what, "allowed".into());
                    } else if removed.is_some_and(|r| r < got) {
                        // Removed while the check was in flight.
                        t.count(
                            "JWT of a removed key",
                            format!("{} (revoked in flight, expected)", ans.refusal()),
                        );
                    } else if cached {
                        t.count(what, format!("{} FAILED", ans.refusal()));
                        t.fail(
                            true,
                            format!(
                                "{kind} JWT of key #{key} (published {key_age:.1}s before, verified by ward at t={:.3}s): {} ({})",
                                verified.unwrap_or(0.0),
                                ans.refusal(),
                                context()
                            ),
                        );
                    } else if ans.http == 403 {
                        t.count(what, format!("{} FAILED", ans.refusal()));
                        t.fail(
                            false,
                            format!(
                                "{kind} JWT of key #{key}: {} ({})",
                                ans.refusal(),
                                context()
                            ),
                        );
                    } else {
                        t.count(
                            what,
                            format!("{} (expected: key not fetched yet)", ans.refusal()),
                        );
                    }
                }
            }
        }
        Cred::Intro { fresh } => {
            let (cached, answered) = introspection_cached(w, token, sent);
            let up_since = w.intro_server.get().and_then(|s| s.up_since());
            let mut t = lock(&w.tally);
            let what = match (cached, fresh) {
                (true, _) => "introspected token, answer cached",
                (false, false) => "introspected token (pool), not cached",
                (false, true) => "introspected token (fresh), not cached",
            };
            if ans.allowed {
                t.count(what, "allowed".into());
            } else if cached {
                t.count(what, format!("{} FAILED", ans.refusal()));
                t.fail(
                    true,
                    format!(
                        "introspected token answered active at t={:.3}s: {} ({})",
                        answered.unwrap_or(0.0),
                        ans.refusal(),
                        context()
                    ),
                );
            } else if ans.http == 503 {
                if let Some(u) = up_since.filter(|u| sent - u > RECOVERY_BOUND) {
                    t.count(
                        what,
                        format!(
                            "{} > {RECOVERY_BOUND}s after recovery FAILED",
                            ans.refusal()
                        ),
                    );
                    t.fail(
                        false,
                        format!(
                            "introspected token refused {:.1}s after the endpoint came back at t={u:.1}s: {} ({})",
                            sent - u,
                            ans.refusal(),
                            context()
                        ),
                    );
                } else {
                    t.count(
                        what,
                        format!(
                            "{} (expected: endpoint failing, nothing cached)",
                            ans.refusal()
                        ),
                    );
                }
            } else {
                t.count(what, format!("{} FAILED", ans.refusal()));
                t.fail(
                    false,
                    format!(
                        "valid introspected token: {} ({})",
                        ans.refusal(),
                        context()
                    ),
                );
            }
        }
        Cred::Junk(j) => {
            let what = match j {
                Junk::Malformed => "junk: not a JWT",
                Junk::UnknownKid => "junk: JWT of an unknown kid",
                Junk::Tampered => "junk: JWT with a bad signature",
                Junk::Opaque => "junk: unknown opaque token",
            };
            let mut t = lock(&w.tally);
            if ans.allowed {
                t.count(what, "ALLOWED".into());
                t.fail(false, format!("{what}: allowed ({})", context()));
            } else {
                t.count(what, ans.refusal());
            }
        }
        Cred::Anon => {
            let mut t = lock(&w.tally);
            if ans.allowed {
                t.count("anonymous route", "allowed".into());
            } else {
                t.count("anonymous route", format!("{} FAILED", ans.refusal()));
                t.fail(
                    false,
                    format!("anonymous route: {} ({})", ans.refusal(), context()),
                );
            }
        }
    }
}
