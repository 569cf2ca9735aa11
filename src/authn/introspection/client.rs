//! The client of one introspection provider: the exchange with the endpoint (and its
//! discovery), whose fault a failure is, the verdict cache and the breaker in front.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};

use crate::authn::http::{self, HttpError};
use crate::authn::introspection::answer;
use crate::authn::introspection::breaker::Breaker;
use crate::authn::introspection::cache::{self, Cache, Entry, Lifetimes, Verdict};
use crate::authn::introspection::{
    AuthMethod, Endpoint, IntrospectError, IntrospectionSettings, Refusal,
};
use crate::authn::strict_json;
use crate::authn::{Identity, TokenError, Unavailable};
use crate::clock::Clock;
use crate::metrics::{CacheCounters, Metrics};
use crate::telemetry::{self, IdpCall};

/// What one exchange with the endpoint came to.
enum Outcome {
    /// A 200 JSON object: the endpoint's answer, to be judged.
    Answer(Map<String, Value>),
    /// An OAuth error about the token itself (with its code): an inactive token.
    TokenRefused(Box<str>),
    /// The provider failed, and may have said when to come back (`Retry-After`).
    Failed(IntrospectError, Option<Duration>),
}

/// What a provider keeps across a reload that leaves its settings as they were: its
/// breaker and the endpoint it discovered.
struct Shared {
    breaker: Breaker,
    discovered: ArcSwapOption<String>,
    /// One discovery at a time: the checks that need it wait for the one fetch.
    discovery: tokio::sync::Mutex<()>,
    /// The last failed call (unix seconds, why), for `/status`.
    last_failure: ArcSwapOption<(u64, String)>,
}

/// What `/status` shows of an introspection provider.
#[derive(Debug, Clone)]
pub struct IntrospectionReport {
    /// The configured endpoint, or the discovery URL (and the endpoint it found).
    pub endpoint: Endpoint,
    pub discovered: Option<String>,
    /// Calls that failed in a row.
    pub consecutive_failures: u32,
    /// While the breaker is open: how long until the next probe may go.
    pub open_for: Option<Duration>,
    /// The last failed call: when (unix seconds) and why.
    pub last_failure: Option<(u64, String)>,
    /// Answers cached (approximate: the cache counts lazily).
    pub cache_entries: u64,
}

/// The run-time client of one introspection provider: HTTP client, cache, breaker.
pub struct Introspector {
    provider: Arc<str>,
    settings: IntrospectionSettings,
    client: reqwest::Client,
    /// Precomputed `Authorization` value for `client_secret_basic`, marked sensitive.
    basic: Option<reqwest::header::HeaderValue>,
    /// Shared with the previous config's client when a reload left the provider as it was.
    cache: Cache,
    lifetimes: Lifetimes,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    cache_counters: CacheCounters,
    /// The claims `claim:` conditions read (sorted): all an identity keeps.
    kept_claims: Vec<Arc<str>>,
    /// What token time, cache lifetimes and the breaker are judged by.
    clock: Clock,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("provider", &self.provider)
            .field("endpoint", &self.settings.endpoint)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub fn new(
        provider: Arc<str>,
        settings: IntrospectionSettings,
        max_entries: u64,
        metrics: Arc<Metrics>,
        kept_claims: Vec<Arc<str>>,
        clock: Clock,
        previous: Option<&Introspector>,
    ) -> Result<Self, String> {
        let client = http::client(settings.timeout, settings.ca_file.as_deref())?;
        let basic = match settings.auth_method {
            AuthMethod::ClientSecretPost => None,
            AuthMethod::ClientSecretBasic => {
                use base64::Engine as _;
                let pair = format!(
                    "{}:{}",
                    form_encode(&settings.client_id),
                    form_encode(settings.client_secret.expose())
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Basic {b64}"))
                    .map_err(|_| "client credentials do not form a header value".to_string())?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        // Known label values start at zero, so a rate() or an alert has a series to read
        // before the first call.
        for result in ["active", "inactive"] {
            metrics
                .introspection_requests
                .with_label_values(&[&*provider, result]);
        }
        metrics
            .introspection_duration
            .with_label_values(&[&*provider]);
        let cache_counters = metrics.token_cache(&provider);
        let max_entries = max_entries.max(1);
        // A reload that leaves the provider as it was keeps its answers, its breaker and
        // the endpoint it discovered: the cached verdicts were made by the same settings,
        // for the same claims. The HTTP client is always new, so a rotated `ca_file`
        // applies.
        let kept = previous.filter(|p| {
            p.provider == provider
                && p.settings == settings
                && p.kept_claims == kept_claims
                && p.cache.policy().max_capacity() == Some(max_entries)
        });
        let (cache, shared) = match kept {
            Some(p) => (p.cache.clone(), p.shared.clone()),
            None => (
                cache::build(max_entries),
                Arc::new(Shared {
                    breaker: Breaker::new(settings.breaker, clock.clone()),
                    discovered: ArcSwapOption::empty(),
                    discovery: tokio::sync::Mutex::new(()),
                    last_failure: ArcSwapOption::empty(),
                }),
            ),
        };
        // A kept breaker may be open: the series says so from the start, as from zero.
        metrics
            .introspection_circuit_open
            .with_label_values(&[&*provider])
            .set(i64::from(shared.breaker.is_open()));
        let lifetimes = Lifetimes {
            positive: settings.cache_ttl,
            negative: settings.negative_cache_ttl,
        };
        Ok(Self {
            shared,
            lifetimes,
            clock,
            provider,
            settings,
            client,
            basic,
            cache,
            metrics,
            cache_counters,
            kept_claims,
        })
    }

    /// The verdict on `token`: from the cache, or from one (shared) call.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Arc<Identity>, Refusal> {
        if token.len() > self.settings.max_token_bytes {
            return Err(Refusal::Token(TokenError::TooLarge));
        }
        // RFC 6750 b64token: anything else is not a bearer token and never reaches the
        // endpoint (nor its logs).
        if !is_b64token(token) {
            return Err(Refusal::Token(TokenError::Malformed));
        }
        let key = crate::digest::sha256(token.as_bytes());
        let leeway = self.settings.leeway.as_secs();
        // Twice at most: a hit found stale (its lifetime or its token's exp passed) is
        // dropped and fetched.
        for _ in 0..2 {
            let called = AtomicBool::new(false);
            let got = self
                .cache
                .try_get_with(key, async {
                    called.store(true, Ordering::Relaxed);
                    let verdict = self.introspect(token, now).await?;
                    Ok::<_, IntrospectError>(Entry::new(verdict, self.lifetimes, &self.clock))
                })
                .await;
            let called = called.load(Ordering::Relaxed);
            if let Ok(entry) = &got
                && !called
                && entry.is_stale(&self.clock)
            {
                self.cache.invalidate(&key).await;
                continue;
            }
            self.cache_counters.count(!called);
            match got.map(|e| e.verdict) {
                Err(e) => return Err(Refusal::Unavailable(Unavailable(e.explain()))),
                Ok(Err(t)) => return Err(Refusal::Token(t)),
                Ok(Ok(id)) => {
                    // moka's expiry is set from whole seconds of `exp`; never serve past
                    // it (and its leeway, within which an answer was accepted uncached).
                    if id
                        .expires_at
                        .is_some_and(|exp| exp.saturating_add(leeway) <= self.clock.unix_secs())
                    {
                        self.cache.invalidate(&key).await;
                        continue;
                    }
                    return Ok(id);
                }
            }
        }
        Err(Refusal::Token(TokenError::Expired))
    }

    /// One call through the breaker, timed and counted. `Ok` is a verdict to cache.
    async fn introspect(&self, token: &str, now: u64) -> Result<Verdict, IntrospectError> {
        let provider = &*self.provider;
        let m = &self.metrics;
        let count = |result: &str| {
            m.introspection_requests
                .with_label_values(&[provider, result])
                .inc();
        };
        let Some(permit) = self.shared.breaker.acquire() else {
            count(IntrospectError::CircuitOpen.label());
            return Err(IntrospectError::CircuitOpen);
        };
        crate::observe::idp_wait::mark();
        let started = Instant::now();
        // One bound for the whole call, discovery included.
        let outcome = tokio::time::timeout(self.settings.timeout, self.call(token))
            .await
            .unwrap_or(Outcome::Failed(HttpError::Timeout.into(), None));
        m.introspection_duration
            .with_label_values(&[provider])
            .observe(started.elapsed().as_secs_f64());
        let doc = match outcome {
            Outcome::Answer(doc) => doc,
            Outcome::TokenRefused(code) => {
                self.closed(permit.success());
                count("inactive");
                tracing::debug!(
                    provider,
                    oauth_error = &*code,
                    "introspection endpoint refused the token: inactive"
                );
                return Ok(Err(TokenError::Inactive));
            }
            Outcome::Failed(e, retry_after) => {
                count(e.label());
                self.shared
                    .last_failure
                    .store(Some(Arc::new((self.clock.unix_secs(), e.to_string()))));
                if permit.failure(retry_after) {
                    self.circuit_open(true);
                    // The probe rediscovers: the endpoint may have moved.
                    self.shared.discovered.store(None);
                    let wait = self
                        .settings
                        .breaker
                        .cool_down
                        .min(retry_after.unwrap_or(Duration::MAX));
                    tracing::warn!(
                        provider, error = %e,
                        probe_in_ms = wait.as_millis() as u64,
                        "introspection failing: backing off; checks whose token is not cached answer 503 until a probe succeeds"
                    );
                } else {
                    // Bounded by the breaker: `failures` lines, then one per probe.
                    tracing::warn!(provider, error = %e, "introspection call failed");
                }
                return Err(e);
            }
        };
        // Any answer shows the endpoint works, whatever it says of the token.
        self.closed(permit.success());
        count(match doc.get("active") {
            Some(Value::Bool(true)) => "active",
            Some(Value::Bool(false)) => "inactive",
            _ => "invalid",
        });
        Ok(
            answer::verdict(&self.provider, &self.settings, &self.kept_claims, doc, now)
                .map(Arc::new),
        )
    }

    /// What `/status` shows of this provider: no credential, no token.
    pub async fn report(&self) -> IntrospectionReport {
        let (consecutive_failures, open_for) = self.shared.breaker.snapshot();
        IntrospectionReport {
            endpoint: self.settings.endpoint.clone(),
            discovered: self.shared.discovered.load_full().map(|e| (*e).clone()),
            consecutive_failures,
            open_for,
            last_failure: self.shared.last_failure.load_full().map(|f| (*f).clone()),
            cache_entries: self.cache_entries().await,
        }
    }

    fn closed(&self, closed: bool) {
        if closed {
            self.circuit_open(false);
            tracing::info!(
                provider = &*self.provider,
                "introspection endpoint answers again: circuit closed"
            );
        }
    }

    /// How many answers the cache holds now (pending writes applied first: moka counts
    /// them lazily).
    pub async fn cache_entries(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// `ward_introspection_circuit_open` of this provider.
    fn circuit_open(&self, open: bool) {
        self.metrics
            .introspection_circuit_open
            .with_label_values(&[&*self.provider])
            .set(i64::from(open));
    }

    /// The exchange, and whose fault a failure is.
    async fn call(&self, token: &str) -> Outcome {
        let endpoint = match self.endpoint().await {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(e, None),
        };
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let mut req = self
            .client
            .post(endpoint.as_str())
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.basic {
            Some(v) => req = req.header(reqwest::header::AUTHORIZATION, v.clone()),
            None => {
                form.push(("client_id", &self.settings.client_id));
                form.push(("client_secret", self.settings.client_secret.expose()));
            }
        }
        let timeout = self.settings.timeout;
        let call = telemetry::idp_call(
            IdpCall::Introspection,
            &self.provider,
            req.form(&form),
            |req| http::answer(req, timeout),
        );
        let answer = match call.await {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e.into(), None),
        };
        let status = answer.status.as_u16();
        if status == 200 {
            return match strict_json::parse_object(&answer.body) {
                Ok(doc) => Outcome::Answer(doc),
                Err(_) => Outcome::Failed(HttpError::NotJson.into(), None),
            };
        }
        let error = oauth_error(&answer.body);
        if let Some(code) = error.as_deref()
            && status == 400
            && is_about_the_token(code)
        {
            return Outcome::TokenRefused(code.into());
        }
        let retry_after = match status {
            429 | 503 => retry_after(&answer.headers, self.settings.breaker.cool_down),
            _ => None,
        };
        Outcome::Failed(IntrospectError::Status { status, error }, retry_after)
    }

    /// The endpoint: configured, or discovered once (concurrent checks wait for the one
    /// fetch) and kept until the breaker opens.
    async fn endpoint(&self) -> Result<Arc<String>, IntrospectError> {
        let url = match &self.settings.endpoint {
            Endpoint::Url(u) => return Ok(Arc::new(u.clone())),
            Endpoint::Discovery(url) => url,
        };
        if let Some(e) = self.shared.discovered.load_full() {
            return Ok(e);
        }
        let _one = self.shared.discovery.lock().await;
        if let Some(e) = self.shared.discovered.load_full() {
            return Ok(e);
        }
        let req = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let timeout = self.settings.timeout;
        let (doc, _) = telemetry::idp_call(IdpCall::Discovery, &self.provider, req, |req| {
            http::json_object(req, timeout)
        })
        .await?;
        let want = self.settings.issuer.as_deref().unwrap_or_default();
        match doc.get("issuer") {
            Some(Value::String(named)) if named == want => {}
            Some(Value::String(named)) => {
                return Err(IntrospectError::Discovery(format!(
                    "the document names issuer `{named}`, not `{want}`"
                )));
            }
            _ => {
                return Err(IntrospectError::Discovery(
                    "the document names no issuer".into(),
                ));
            }
        }
        let endpoint = doc
            .get("introspection_endpoint")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| {
                IntrospectError::Discovery("the document has no introspection_endpoint".into())
            })?;
        let endpoint = Arc::new(endpoint.to_owned());
        self.shared.discovered.store(Some(endpoint.clone()));
        Ok(endpoint)
    }
}

/// OAuth error codes (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6750 §3.1) that say the
/// token, not the request or the client, is what the endpoint could not take.
fn is_about_the_token(code: &str) -> bool {
    matches!(
        code,
        "unsupported_token_type" | "invalid_token" | "invalid_grant"
    )
}

/// The `error` code of an OAuth error body, when it is one: RFC 6749 §5.2 limits it to
/// printable ASCII without `"` and `\` (and it is short), so it is safe to log.
fn oauth_error(body: &[u8]) -> Option<Box<str>> {
    let doc = strict_json::parse_object(body).ok()?;
    let code = doc.get("error")?.as_str()?;
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e));
    ok.then(|| code.into())
}

/// `Retry-After` (RFC 9110 §10.2.3) as a wait: delay-seconds as they are; an HTTP date,
/// which says "later" without a reliable clock to read it against, as `fallback`.
fn retry_after(headers: &reqwest::header::HeaderMap, fallback: Duration) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    Some(fallback)
}

/// `application/x-www-form-urlencoded` as RFC 6749 §2.3.1 asks for client credentials.
fn form_encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'*');
    utf8_percent_encode(s, FORM).to_string()
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests;
