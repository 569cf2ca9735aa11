//! Prometheus metrics over an owned registry (never the global one), with bounded labels:
//! route and provider names from config, decisions and reasons from fixed sets.

use std::collections::HashSet;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// One provider's `ward_token_cache_requests_total` series, looked up once (when the
/// engine is built), so a check counts its lookup without hashing label values.
#[derive(Clone)]
pub(crate) struct CacheCounters {
    hit: IntCounter,
    miss: IntCounter,
}

impl CacheCounters {
    pub(crate) fn count(&self, hit: bool) {
        if hit { &self.hit } else { &self.miss }.inc();
    }
}

/// One provider's `ward_token_decryptions_total` series (a provider with `decryption`),
/// looked up once when the engine is built.
#[derive(Clone)]
pub(crate) struct DecryptionCounters {
    success: IntCounter,
    failure: IntCounter,
}

impl DecryptionCounters {
    pub(crate) fn count(&self, ok: bool) {
        if ok { &self.success } else { &self.failure }.inc();
    }
}

/// ward's Prometheus metrics (SPEC §6), in a registry of their own.
pub struct Metrics {
    /// The registry every ward metric is in: gather it, or register a service's own
    /// collectors beside them.
    pub registry: Registry,
    pub(crate) check_requests: IntCounterVec,
    pub(crate) credential_rejections: IntCounterVec,
    pub(crate) token_cache_entries: IntGauge,
    pub(crate) config_info: IntGaugeVec,
    pub(crate) check_duration: HistogramVec,
    pub(crate) token_cache_requests: IntCounterVec,
    pub(crate) jwks_refresh: IntCounterVec,
    pub(crate) jwks_keys: IntGaugeVec,
    pub(crate) jwks_last_success: GaugeVec,
    pub(crate) introspection_requests: IntCounterVec,
    pub(crate) introspection_duration: HistogramVec,
    pub(crate) config_reloads: IntCounterVec,
    pub(crate) config_last_reload_success: Gauge,
    pub(crate) check_rejected: IntCounterVec,
    pub(crate) inflight_request_bytes: IntGauge,
    pub(crate) tokens_minted: IntCounterVec,
    pub(crate) token_exchange_requests: IntCounterVec,
    pub(crate) http_requests: IntCounterVec,
    pub(crate) dpop_proofs: IntCounterVec,
    pub(crate) dpop_replay_cache_entries: IntGauge,
    pub(crate) token_decryptions: IntCounterVec,
    pub(crate) introspection_circuit_open: IntGaugeVec,
    pub(crate) api_keys: IntGaugeVec,
    pub(crate) token_cache_evictions: IntCounter,
    pub(crate) tls_reloads: IntCounterVec,
    pub(crate) tls_certificate_expiry: Gauge,
    pub(crate) introspection_cache_entries: IntGaugeVec,
}

/// Buckets from 25 µs to 2.5 s: a cached check takes tens of microseconds, one waiting on
/// an IdP up to its timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

/// Buckets from 1 ms to 10 s: one call to an introspection endpoint, up to its timeout.
const INTROSPECTION_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Every ward metric, registered in a new registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let check_requests = IntCounterVec::new(
            Opts::new(
                "ward_check_requests_total",
                "Authorization checks by route, provider (none: no credential judged), decision and reason",
            ),
            &["route", "provider", "decision", "reason"],
        )
        .expect("valid metric");
        let token_cache_entries = IntGauge::new(
            "ward_token_cache_entries",
            "Verified tokens in the cache, read at scrape time",
        )
        .expect("valid metric");
        let config_info = IntGaugeVec::new(
            Opts::new(
                "ward_config_info",
                "1 for the config ward decides by: hash is a digest of its meaning (env expanded, comments left out) and of every file it reads; replicas that disagree show several",
            ),
            &["hash"],
        )
        .expect("valid metric");
        let credential_rejections = IntCounterVec::new(
            Opts::new(
                "ward_credential_rejections_total",
                "Credentials refused (401 invalid_token) by provider and a bounded detail: expired, unknown_key, audience, signature, issuer, malformed, type, inactive, other",
            ),
            &["provider", "detail"],
        )
        .expect("valid metric");
        let check_duration = HistogramVec::new(
            HistogramOpts::new(
                "ward_check_duration_seconds",
                "Time to decide one check; idp=waited: it waited on an identity provider (a key fetch, an introspection call)",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["decision", "idp"],
        )
        .expect("valid metric");
        let token_cache_requests = IntCounterVec::new(
            Opts::new(
                "ward_token_cache_requests_total",
                "Verified-token cache lookups",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let jwks_refresh = IntCounterVec::new(
            Opts::new(
                "ward_jwks_refresh_total",
                "Key set fetches by provider and result",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let jwks_keys = IntGaugeVec::new(
            Opts::new(
                "ward_jwks_keys",
                "Usable verification keys held per provider",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let jwks_last_success = GaugeVec::new(
            Opts::new(
                "ward_jwks_last_success_timestamp_seconds",
                "Unix time of the last successful key set fetch",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let introspection_requests = IntCounterVec::new(
            Opts::new(
                "ward_introspection_requests_total",
                "Token introspection calls by provider and result (active, inactive, or a failure: unreachable, timeout, http_status, too_large, not_json, invalid, circuit_open)",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let introspection_duration = HistogramVec::new(
            HistogramOpts::new(
                "ward_introspection_duration_seconds",
                "Time of one call to an introspection endpoint",
            )
            .buckets(INTROSPECTION_BUCKETS.to_vec()),
            &["provider"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new("ward_config_reloads_total", "Config reloads by result"),
            &["result"],
        )
        .expect("valid metric");
        let config_last_reload_success = Gauge::new(
            "ward_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
        )
        .expect("valid metric");
        let check_rejected = IntCounterVec::new(
            Opts::new(
                "ward_check_rejected_total",
                "gRPC requests refused before being decided: inflight_bytes (the cap on bytes being received), receive_timeout (not whole within request_timeout)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let inflight_request_bytes = IntGauge::new(
            "ward_inflight_request_bytes",
            "Bytes of gRPC requests being received, counted against max_inflight_request_bytes",
        )
        .expect("valid metric");
        let tokens_minted = IntCounterVec::new(
            Opts::new(
                "ward_tokens_minted_total",
                "Purpose tokens signed, by purpose (a route's or an exchange's name); a token handed out again from the mint cache is not counted",
            ),
            &["purpose"],
        )
        .expect("valid metric");
        let token_exchange_requests = IntCounterVec::new(
            Opts::new(
                "ward_token_exchange_requests_total",
                "Token exchange requests by result: issued, or the RFC 6749 error answered (invalid_request, invalid_grant, invalid_target, unsupported_grant_type, invalid_scope, server_error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "ward_http_requests_total",
                "Answers of the plain-HTTP listener by proxy shape (envoy, nginx, forward; none for a request to no auth endpoint) and HTTP status",
            ),
            &["shape", "status"],
        )
        .expect("valid metric");
        let dpop_proofs = IntCounterVec::new(
            Opts::new(
                "ward_dpop_proofs_total",
                "DPoP proofs checked for DPoP-bound tokens, by result: accepted, missing, cache_full (replay cache full, answered 503), or why the proof was refused",
            ),
            &["result"],
        )
        .expect("valid metric");
        let dpop_replay_cache_entries = IntGauge::new(
            "ward_dpop_replay_cache_entries",
            "DPoP proofs remembered against replay (bounded by dpop_replay_cache.max_entries)",
        )
        .expect("valid metric");
        let build_info =
            IntGaugeVec::new(Opts::new("ward_build_info", "ward's version"), &["version"])
                .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Known label values start at zero, so a rate() or an alert has a series to read
        // before the first event.
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        for reason in ["inflight_bytes", "receive_timeout"] {
            check_rejected.with_label_values(&[reason]);
        }
        for result in [
            "issued",
            "invalid_request",
            "invalid_grant",
            "invalid_target",
            "unsupported_grant_type",
            "invalid_scope",
            "server_error",
        ] {
            token_exchange_requests.with_label_values(&[result]);
        }

        let token_decryptions = IntCounterVec::new(
            Opts::new(
                "ward_token_decryptions_total",
                "Nested JWTs decrypted (success) or refused as undecryptable (failure), by provider; a cached token is not decrypted again",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");

        let introspection_circuit_open = IntGaugeVec::new(
            Opts::new(
                "ward_introspection_circuit_open",
                "1 while the provider's introspection endpoint is backed off (its breaker open: checks that need it answer 503 authn_unavailable, one probe at a time), else 0",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let api_keys = IntGaugeVec::new(
            Opts::new("ward_api_keys", "API keys held per api_key provider"),
            &["provider"],
        )
        .expect("valid metric");
        let token_cache_evictions = IntCounter::new(
            "ward_token_cache_evictions_total",
            "Verified tokens pushed out of a full cache before their exp (raise token_cache.max_entries when this grows steadily)",
        )
        .expect("valid metric");
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "ward_tls_reloads_total",
                "Reloads of the gRPC listener's certificate files after they changed, by result (failure: the previous certificate keeps serving)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let tls_certificate_expiry = Gauge::new(
            "ward_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the gRPC listener's serving certificate expires (notAfter), absent without TLS",
        )
        .expect("valid metric");

        let introspection_cache_entries = IntGaugeVec::new(
            Opts::new(
                "ward_introspection_cache_entries",
                "Introspection answers (active and inactive) cached per provider, read at scrape time",
            ),
            &["provider"],
        )
        .expect("valid metric");

        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(introspection_cache_entries.clone()),
            Box::new(introspection_circuit_open.clone()),
            Box::new(api_keys.clone()),
            Box::new(token_cache_evictions.clone()),
            Box::new(token_decryptions.clone()),
            Box::new(check_requests.clone()),
            Box::new(credential_rejections.clone()),
            Box::new(token_cache_entries.clone()),
            Box::new(config_info.clone()),
            Box::new(check_duration.clone()),
            Box::new(token_cache_requests.clone()),
            Box::new(jwks_refresh.clone()),
            Box::new(jwks_keys.clone()),
            Box::new(jwks_last_success.clone()),
            Box::new(introspection_requests.clone()),
            Box::new(introspection_duration.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_last_reload_success.clone()),
            Box::new(check_rejected.clone()),
            Box::new(inflight_request_bytes.clone()),
            Box::new(tokens_minted.clone()),
            Box::new(token_exchange_requests.clone()),
            Box::new(http_requests.clone()),
            Box::new(dpop_proofs.clone()),
            Box::new(dpop_replay_cache_entries.clone()),
            Box::new(build_info),
        ];
        for c in collectors {
            registry.register(c).expect("metric registered once");
        }
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = registry.register(Box::new(pc));
        }
        Self {
            registry,
            check_requests,
            credential_rejections,
            token_cache_entries,
            config_info,
            check_duration,
            token_cache_requests,
            jwks_refresh,
            jwks_keys,
            jwks_last_success,
            introspection_requests,
            introspection_duration,
            config_reloads,
            config_last_reload_success,
            check_rejected,
            inflight_request_bytes,
            tokens_minted,
            token_exchange_requests,
            http_requests,
            dpop_proofs,
            dpop_replay_cache_entries,
            token_decryptions,
            introspection_circuit_open,
            api_keys,
            token_cache_evictions,
            tls_reloads,
            tls_certificate_expiry,
            introspection_cache_entries,
        }
    }

    /// The TLS series, registered when the gRPC listener serves TLS (a server without it
    /// shows none): reloads by result from zero, and the serving certificate's expiry.
    pub(crate) fn track_tls(&self, not_after: Option<f64>) {
        for result in ["success", "failure"] {
            self.tls_reloads.with_label_values(&[result]);
        }
        // Registered once: a second server on the same metrics finds them there.
        let _ = self.registry.register(Box::new(self.tls_reloads.clone()));
        let _ = self
            .registry
            .register(Box::new(self.tls_certificate_expiry.clone()));
        if let Some(t) = not_after {
            self.tls_certificate_expiry.set(t);
        }
    }

    /// Counts one answer of the plain-HTTP listener. The status label is one of the
    /// statuses ward answers with, or `other`: bounded whatever happens.
    pub(crate) fn count_http(&self, shape: &'static str, status: u16) {
        let status = match status {
            200 => "200",
            400 => "400",
            401 => "401",
            403 => "403",
            404 => "404",
            503 => "503",
            _ => "other",
        };
        self.http_requests.with_label_values(&[shape, status]).inc();
    }

    /// The cache counters of `provider`; both series exist (at zero) from this call on.
    pub(crate) fn token_cache(&self, provider: &str) -> CacheCounters {
        let series = |result| {
            self.token_cache_requests
                .with_label_values(&[provider, result])
        };
        CacheCounters {
            hit: series("hit"),
            miss: series("miss"),
        }
    }

    /// Follows a new config (at start and on every reload): the series of providers and
    /// routes it no longer has are dropped, so none stays frozen at its last value; the
    /// failure series of the ones it has exist from now on, at zero, so `increase()`
    /// sees their first failure.
    pub(crate) fn track(&self, config: &crate::config::Config) {
        self.config_info.reset();
        self.config_info.with_label_values(&[config.hash()]).set(1);
        let providers: HashSet<&str> = config.provider_names().collect();
        let routes: HashSet<&str> = config.route_names().chain(["none"]).collect();
        let provider_ok = |v: &str| v == "none" || providers.contains(v);
        retain(&self.check_requests, |l| {
            routes.contains(label(l, "route")) && provider_ok(label(l, "provider"))
        });
        for vec in [
            &self.credential_rejections,
            &self.token_cache_requests,
            &self.jwks_refresh,
            &self.introspection_requests,
        ] {
            retain(vec, |l| providers.contains(label(l, "provider")));
        }
        retain(&self.jwks_keys, |l| {
            providers.contains(label(l, "provider"))
        });
        retain(&self.jwks_last_success, |l| {
            providers.contains(label(l, "provider"))
        });
        retain(&self.introspection_duration, |l| {
            providers.contains(label(l, "provider"))
        });
        retain(&self.introspection_circuit_open, |l| {
            providers.contains(label(l, "provider"))
        });
        self.api_keys.reset();
        for p in &config.providers {
            if let crate::authn::ProviderKind::ApiKey(a) = &p.kind {
                self.api_keys
                    .with_label_values(&[&*p.name])
                    .set(i64::try_from(a.keys.len()).unwrap_or(i64::MAX));
            }
        }
        let purposes: HashSet<&str> = config
            .route_names()
            .chain(config.exchanges.iter().map(|x| &*x.grant.purpose))
            .collect();
        retain(&self.tokens_minted, |l| {
            purposes.contains(label(l, "purpose"))
        });

        for p in &providers {
            for detail in crate::authn::REJECTION_DETAILS {
                self.credential_rejections.with_label_values(&[p, detail]);
            }
        }
        for (route, names) in config.route_providers() {
            self.check_requests
                .with_label_values(&[route, "none", "deny", "missing_credential"]);
            for p in names {
                for reason in ["invalid_token", "authn_unavailable", "forbidden"] {
                    self.check_requests
                        .with_label_values(&[route, p, "deny", reason]);
                }
            }
        }
    }

    /// The decryption counters of `provider`; both series exist (at zero) from this call
    /// on.
    pub(crate) fn token_decryptions(&self, provider: &str) -> DecryptionCounters {
        let series = |result| {
            self.token_decryptions
                .with_label_values(&[provider, result])
        };
        DecryptionCounters {
            success: series("success"),
            failure: series("failure"),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The value of label `name` in a series' labels ("" when it has none).
fn label<'l>(labels: &'l [prometheus::proto::LabelPair], name: &str) -> &'l str {
    labels
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

/// Removes every series of `vec` whose labels `keep` refuses.
fn retain<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    keep: impl Fn(&[prometheus::proto::LabelPair]) -> bool,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for m in family.get_metric() {
            let labels = m.get_label();
            if keep(labels) {
                continue;
            }
            let by_name: std::collections::HashMap<&str, &str> =
                labels.iter().map(|l| (l.name(), l.value())).collect();
            let _ = vec.remove(&by_name);
        }
    }
}
