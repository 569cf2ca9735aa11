//! What every front end does once a request is decided (the gRPC server, the tower
//! layer): count it in the metrics and write its decision log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{LoggingConfig, SubjectLog};
use crate::decision::{Decision, DenyReason, Verdict};
use crate::metrics::Metrics;

/// Counts and logs decisions; shared by every request of one front end.
pub struct Observer {
    metrics: Arc<Metrics>,
    /// Allowed decisions seen, for sampling their log lines.
    allowed_seen: AtomicU64,
}

impl Observer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            allowed_seen: AtomicU64::new(0),
        }
    }

    /// Counts and logs one decision.
    pub fn decided(
        &self,
        d: &Decision,
        request_id: &str,
        path: &str,
        elapsed: Duration,
        logging: &LoggingConfig,
    ) {
        self.record(d, elapsed);
        self.log(d, request_id, path, elapsed, logging);
    }

    /// `ward_check_requests_total` and `ward_check_duration_seconds`.
    pub fn record(&self, d: &Decision, elapsed: Duration) {
        let route = d.route.as_deref().unwrap_or("none");
        let provider = d.provider.as_deref().unwrap_or("none");
        self.metrics
            .check_requests
            .with_label_values(&[route, provider, d.label(), d.reason_code()])
            .inc();
        let refused = match (&d.verdict, &d.shadow_deny) {
            (Verdict::Deny(DenyReason::InvalidToken(e)), _)
            | (Verdict::Allow(_), Some(DenyReason::InvalidToken(e))) => Some(e),
            _ => None,
        };
        if let Some(e) = refused {
            self.metrics
                .credential_rejections
                .with_label_values(&[provider, e.metric_detail()])
                .inc();
        }
        let idp = if d.waited_on_idp { "waited" } else { "none" };
        self.metrics
            .check_duration
            .with_label_values(&[d.label(), idp])
            .observe(elapsed.as_secs_f64());
    }

    /// One line per decision: denials and shadow denials at info, allows at debug (and
    /// the `allowed_sample` share of them at info). Never the token; the path without its
    /// query string (tokens travel in queries too); the subject hashed unless configured
    /// otherwise.
    pub fn log(
        &self,
        d: &Decision,
        request_id: &str,
        path: &str,
        elapsed: Duration,
        logging: &LoggingConfig,
    ) {
        let sampled =
            d.is_allow() && d.shadow_deny.is_none() && self.sample(logging.allowed_sample);
        let subject_log = logging.subject;
        let route = d.route.as_deref().unwrap_or("");
        let provider = d.provider.as_deref().unwrap_or("");
        let latency_us = elapsed.as_micros() as u64;
        match (&d.verdict, &d.shadow_deny) {
            (Verdict::Deny(r), _) => tracing::info!(
                request_id, route, provider, subject = subject_for(d, subject_log), path, decision = "deny", reason = r.code(),
                detail = %r.explain(), latency_us, "check denied"
            ),
            (Verdict::Allow(_), Some(r)) => tracing::info!(
                request_id, route, provider, subject = subject_for(d, subject_log), path, decision = "shadow_deny", reason = r.code(),
                detail = %r.explain(), latency_us, "check would be denied (shadow mode)"
            ),
            (Verdict::Allow(_), None) if sampled => tracing::info!(
                request_id,
                route,
                provider,
                subject = subject_for(d, subject_log),
                path,
                decision = "allow",
                latency_us,
                "check allowed (sampled)"
            ),
            (Verdict::Allow(_), None) => tracing::debug!(
                request_id,
                route,
                provider,
                subject = subject_for(d, subject_log),
                path,
                decision = "allow",
                latency_us,
                "check allowed"
            ),
        }
    }

    /// Whether this allowed decision is one of the `rate` share logged at info: every
    /// `1/rate`-th one, so the share holds exactly without a random source.
    fn sample(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let every = (1.0 / rate).round().max(1.0) as u64;
        let n = self.allowed_seen.fetch_add(1, Ordering::Relaxed);
        n.is_multiple_of(every)
    }
}

/// The subject as logs show it. Called inside the log macros, so it is computed only
/// for lines that are actually written (not for every allowed check at `info`).
fn subject_for(d: &Decision, subject_log: SubjectLog) -> String {
    d.identity
        .as_ref()
        .and_then(|i| i.subject.as_deref())
        .map(|s| match subject_log {
            SubjectLog::Plain => s.to_string(),
            SubjectLog::Hash => crate::authn::apikey::sha256_hex(s.as_bytes())[..16].to_string(),
            SubjectLog::None => String::new(),
        })
        .unwrap_or_default()
}

/// Whether a check waited on an identity provider (a key fetch, an introspection call):
/// such a check takes the IdP's time, not ward's, and the latency SLO counts it apart
/// (`ward_check_duration_seconds{idp="waited"}`). Marked by the code that waits, read by
/// the engine once the check is decided; no cost but a thread-local swap per poll.
pub(crate) mod idp_wait {
    use std::cell::Cell;
    use std::future::Future;

    tokio::task_local! {
        static WAITED: Cell<bool>;
    }

    /// Marks the check being decided (if any) as one that waited on an IdP.
    pub(crate) fn mark() {
        let _ = WAITED.try_with(|w| w.set(true));
    }

    /// Runs `check`, and tells whether it waited on an IdP.
    pub(crate) async fn scope<T>(check: impl Future<Output = T>) -> (T, bool) {
        WAITED
            .scope(Cell::new(false), async {
                let out = check.await;
                (out, WAITED.with(Cell::get))
            })
            .await
    }
}
