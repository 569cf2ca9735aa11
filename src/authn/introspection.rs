//! RFC 7662 token introspection, for opaque tokens: ward asks the authorization server
//! that issued a token whether it is active and whom it belongs to.
//!
//! One exchange: `POST endpoint` with `token=<tok>&token_type_hint=access_token`,
//! authenticated as ward's own client (`client_secret_basic` or `client_secret_post`).
//! The answer is a JSON object; `active: false` is an inactive token (401), `active:
//! true` carries the identity (`sub`, `scope`, `client_id`, `exp`, `iss`, `aud`, ...).
//!
//! What keeps a slow or broken endpoint from hurting Envoy:
//! - answers are cached (bounded, keyed by SHA-256 of provider and token, never the
//!   token) for `min(cache_ttl, exp - now)`; inactive or refused tokens for
//!   `negative_cache_ttl`; failures are never cached;
//! - concurrent checks of one token share one call (moka `try_get_with`);
//! - each call has a `timeout` (connect, send and body together) and a 1 MiB body cap;
//! - a circuit breaker: after `failures` consecutive failed calls (refused, timed out,
//!   non-200, not JSON, no boolean `active`) calls stop for `cool_down` and checks that
//!   need one answer 503 at once; then one probe call is let through, and its success
//!   closes the breaker.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::future::Cache;
use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::authn::cache::TokenCache;
use crate::authn::claims::{self, ClaimPath, Identity};
use crate::authn::http::{self, HttpError};
use crate::authn::token::TokenSource;
use crate::header::HeaderName;
use crate::metrics::{CacheCounters, Metrics};

/// How ward authenticates itself to the introspection endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Basic base64(urlencode(client_id):urlencode(client_secret))`.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A secret from the config: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed calls that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub cool_down: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionSettings {
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_method: AuthMethod,
    /// When set, `iss` must equal it exactly.
    pub issuer: Option<Arc<str>>,
    /// When non-empty, `aud` must name at least one.
    pub audiences: Vec<String>,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub max_token_bytes: usize,
    pub roles_claim: ClaimPath,
    pub scopes_claim: ClaimPath,
    pub token_from: Vec<TokenSource>,
    pub claim_headers: Vec<(ClaimPath, HeaderName)>,
    pub breaker: BreakerSettings,
}

/// Why introspection gave no verdict on a token. Never cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("response has no boolean `active`")]
    NoActive,
    #[error("circuit breaker open")]
    CircuitOpen,
}

impl IntrospectError {
    /// Bounded metric label (`result` of `ward_introspection_requests_total`).
    pub fn label(&self) -> &'static str {
        match self {
            IntrospectError::Http(e) => e.label(),
            IntrospectError::NoActive => "invalid",
            IntrospectError::CircuitOpen => "circuit_open",
        }
    }

    /// Fixed text for `DenyReason::AuthnUnavailable` (logs, `ward check`).
    pub fn explain(&self) -> &'static str {
        match self {
            IntrospectError::Http(HttpError::Unreachable(_)) => {
                "introspection endpoint unreachable"
            }
            IntrospectError::Http(HttpError::Timeout) => "introspection endpoint timed out",
            IntrospectError::Http(HttpError::Status(_)) => {
                "introspection endpoint answered an error status"
            }
            IntrospectError::Http(HttpError::TooLarge) => "introspection response too large",
            IntrospectError::Http(HttpError::NotJson) => {
                "introspection response is not a JSON object"
            }
            IntrospectError::NoActive => "introspection response has no boolean `active`",
            IntrospectError::CircuitOpen => {
                "introspection endpoint failing: circuit breaker open, not called"
            }
        }
    }
}

/// The outcome of introspecting one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The token is not accepted (401 `invalid_token`).
    Token(TokenError),
    /// No verdict could be had (503 `authn_unavailable`).
    Unavailable(IntrospectError),
}

/// A cached verdict: the identity of an active token, or why it is refused.
type Verdict = Result<Arc<Identity>, TokenError>;

/// Per-entry lifetime: an identity until `min(cache_ttl, exp - now)`, a refusal for
/// `negative_cache_ttl`.
struct Lifetimes {
    positive: Duration,
    negative: Duration,
}

impl Expiry<[u8; 32], Verdict> for Lifetimes {
    fn expire_after_create(&self, _: &[u8; 32], v: &Verdict, _: Instant) -> Option<Duration> {
        Some(match v {
            Ok(id) => match id.expires_at {
                Some(exp) => self.positive.min(until(exp)),
                None => self.positive,
            },
            Err(_) => self.negative,
        })
    }
}

/// Time from now to the unix second `exp` (zero when past; `Duration::MAX` when beyond
/// what the clock can represent, such as Java's `Long.MAX_VALUE` for "never").
fn until(exp: u64) -> Duration {
    match UNIX_EPOCH.checked_add(Duration::from_secs(exp)) {
        Some(exp) => exp
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
        None => Duration::MAX,
    }
}

// === impl Introspector ===

/// The run-time client of one introspection provider: HTTP client, cache, breaker.
pub struct Introspector {
    provider: Arc<str>,
    settings: IntrospectionSettings,
    client: reqwest::Client,
    /// Precomputed `Authorization` value for `client_secret_basic`, marked sensitive.
    basic: Option<reqwest::header::HeaderValue>,
    /// Shared with the previous config's client when a reload left the provider as it was.
    cache: Cache<[u8; 32], Verdict>,
    breaker: Arc<Breaker>,
    metrics: Arc<Metrics>,
    cache_counters: CacheCounters,
    /// The claims `claim:` conditions read (sorted): all an identity keeps.
    kept_claims: Vec<Arc<str>>,
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
        // A reload that leaves the provider as it was keeps its answers and its breaker:
        // the cached verdicts were made by the same settings, for the same claims. The
        // HTTP client is always new, so a rotated `ca_file` applies.
        let kept = previous.filter(|p| {
            p.provider == provider
                && p.settings == settings
                && p.kept_claims == kept_claims
                && p.cache.policy().max_capacity() == Some(max_entries)
        });
        let (cache, breaker) = match kept {
            Some(p) => (p.cache.clone(), p.breaker.clone()),
            None => (
                Cache::builder()
                    .max_capacity(max_entries)
                    .expire_after(Lifetimes {
                        positive: settings.cache_ttl,
                        negative: settings.negative_cache_ttl,
                    })
                    .build(),
                Arc::new(Breaker::new(settings.breaker)),
            ),
        };
        Ok(Self {
            breaker,
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

    pub fn settings(&self) -> &IntrospectionSettings {
        &self.settings
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
        let key = TokenCache::key(token);
        // Twice at most: a hit found stale by the exp check below is dropped and fetched.
        for _ in 0..2 {
            let called = AtomicBool::new(false);
            let got = self
                .cache
                .try_get_with(key, async {
                    called.store(true, Ordering::Relaxed);
                    self.introspect(token, now).await
                })
                .await;
            self.cache_counters.count(!called.load(Ordering::Relaxed));
            match got {
                Err(e) => return Err(Refusal::Unavailable((*e).clone())),
                Ok(Err(t)) => return Err(Refusal::Token(t)),
                Ok(Ok(id)) => {
                    // moka's expiry is set from whole seconds of `exp`; never serve past it.
                    if id.expires_at.is_some_and(|exp| exp <= cache_now()) {
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
        let Some(permit) = self.breaker.acquire() else {
            m.introspection_requests
                .with_label_values(&[provider, IntrospectError::CircuitOpen.label()])
                .inc();
            return Err(IntrospectError::CircuitOpen);
        };
        let started = Instant::now();
        let outcome = self
            .call(token)
            .await
            .and_then(|doc| match doc.get("active") {
                Some(Value::Bool(active)) => Ok((*active, doc)),
                _ => Err(IntrospectError::NoActive),
            });
        m.introspection_duration
            .with_label_values(&[provider])
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok((active, doc)) => {
                if permit.success() {
                    tracing::info!(
                        provider,
                        "introspection endpoint answers again: circuit closed"
                    );
                }
                let result = if active { "active" } else { "inactive" };
                m.introspection_requests
                    .with_label_values(&[provider, result])
                    .inc();
                if !active {
                    return Ok(Err(TokenError::Inactive));
                }
                Ok(self.identity(doc, now).map(Arc::new))
            }
            Err(e) => {
                m.introspection_requests
                    .with_label_values(&[provider, e.label()])
                    .inc();
                // The breaker bounds these logs to `failures` per cool-down.
                if permit.failure() {
                    tracing::warn!(
                        provider, error = %e,
                        cool_down_ms = self.settings.breaker.cool_down.as_millis() as u64,
                        "introspection failing: circuit open, checks that need it answer 503"
                    );
                } else {
                    tracing::warn!(provider, error = %e, "introspection call failed");
                }
                Err(e)
            }
        }
    }

    /// The HTTP exchange, bounded by `timeout` as a whole and by the body cap.
    async fn call(&self, token: &str) -> Result<Map<String, Value>, IntrospectError> {
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let mut req = self
            .client
            .post(&self.settings.endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.basic {
            Some(v) => req = req.header(reqwest::header::AUTHORIZATION, v.clone()),
            None => {
                form.push(("client_id", &self.settings.client_id));
                form.push(("client_secret", self.settings.client_secret.expose()));
            }
        }
        let (doc, _) = http::json_object(req.form(&form), self.settings.timeout).await?;
        Ok(doc)
    }

    /// The identity of an active token, or why ward refuses it anyway.
    fn identity(&self, doc: Map<String, Value>, now: u64) -> Result<Identity, TokenError> {
        let s = &self.settings;
        let exp = match doc.get("exp") {
            None => None,
            Some(Value::Number(n)) => Some(n.as_f64().ok_or(TokenError::Malformed)?),
            Some(_) => return Err(TokenError::Malformed),
        };
        if exp.is_some_and(|e| e <= now as f64) {
            return Err(TokenError::Expired);
        }
        let iss: Option<Arc<str>> = match (doc.get("iss"), &s.issuer) {
            (None, None) => None,
            (Some(Value::String(i)), Some(want)) if **want == **i => Some(want.clone()),
            (Some(Value::String(i)), None) => Some(i.as_str().into()),
            (Some(Value::String(_)) | None, Some(_)) => return Err(TokenError::Issuer),
            (Some(_), _) => return Err(TokenError::Malformed),
        };
        if !s.audiences.is_empty() {
            let aud_ok = claims::audience_ok(doc.get("aud"), &s.audiences);
            if !aud_ok {
                return Err(TokenError::Audience);
            }
        }
        Ok(Identity {
            provider: self.provider.clone(),
            subject: doc.get("sub").and_then(Value::as_str).map(Into::into),
            issuer: iss,
            roles: claims::string_list(s.roles_claim.lookup_in(&doc)),
            scopes: claims::string_list(s.scopes_claim.lookup_in(&doc)),
            expires_at: exp.map(|e| e.max(0.0) as u64),
            claim_headers: claims::claim_headers(&doc, &s.claim_headers),
            claims: claims::Claims::kept(doc, &self.kept_claims),
        })
    }
}

/// The current unix second, for the stale-hit check (not the check's `now`, which was
/// taken before any wait on a shared call).
fn cache_now() -> u64 {
    crate::authn::cache::unix_now()
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

// === impl Breaker ===

/// Consecutive-failure circuit breaker, lock-free. Closed while fewer than `failures`
/// calls in a row failed; then open for `cool_down`; then half-open: one probe call at
/// a time, whose success closes it and whose failure reopens it.
struct Breaker {
    settings: BreakerSettings,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open.
    open_until: AtomicU64,
    probing: AtomicBool,
    epoch: Instant,
}

/// Leave to make one call. A probe permit dropped without a result (the check was
/// cancelled) frees the probe slot for the next caller.
struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn acquire(&self) -> Option<Permit<'_>> {
        let permit = |probe| Permit {
            breaker: self,
            probe,
            done: false,
        };
        if self.failures.load(Ordering::Acquire) < self.settings.failures {
            return Some(permit(false));
        }
        if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| permit(true))
    }
}

impl Permit<'_> {
    /// Records a good answer; true when this closed an open breaker.
    fn success(mut self) -> bool {
        self.done = true;
        let b = self.breaker;
        let before = b.failures.swap(0, Ordering::AcqRel);
        b.open_until.store(0, Ordering::Release);
        b.probing.store(false, Ordering::Release);
        before >= b.settings.failures
    }

    /// Records a failed call; true when this opened (or reopened) the breaker.
    fn failure(mut self) -> bool {
        self.done = true;
        let b = self.breaker;
        let n = b.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if n >= b.settings.failures {
            let until = b.now_ms() + b.settings.cool_down.as_millis() as u64;
            b.open_until.store(until, Ordering::Release);
            b.probing.store(false, Ordering::Release);
            return n == b.settings.failures || self.probe;
        }
        false
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.done {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_fails_fast_then_probes_once() {
        let b = Breaker::new(BreakerSettings {
            failures: 2,
            cool_down: Duration::from_millis(50),
        });
        assert!(!b.acquire().unwrap().failure());
        assert!(b.acquire().unwrap().failure(), "second failure opens");
        assert!(b.acquire().is_none(), "open: no calls");
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.acquire().expect("half-open lets one probe");
        assert!(b.acquire().is_none(), "only one probe at a time");
        assert!(probe.failure(), "a failed probe reopens");
        assert!(b.acquire().is_none());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.acquire().expect("probe");
        assert!(probe.success(), "a good probe closes");
        assert!(b.acquire().is_some());
        assert!(b.acquire().is_some());
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let b = Breaker::new(BreakerSettings {
            failures: 1,
            cool_down: Duration::ZERO,
        });
        b.acquire().unwrap().failure();
        let probe = b.acquire().expect("probe");
        assert!(b.acquire().is_none());
        drop(probe);
        assert!(b.acquire().is_some(), "the next caller may probe");
    }

    #[test]
    fn until_saturates_instead_of_overflowing() {
        assert_eq!(until(0), Duration::ZERO, "past");
        assert_eq!(until(u64::MAX), Duration::MAX);
        assert!(until(i64::MAX as u64) > Duration::from_secs(1 << 62));
        assert_eq!(until(1 << 63), Duration::MAX, "i64::MAX through an f64");
        let soon = until(crate::authn::cache::unix_now() + 100);
        assert!(soon > Duration::from_secs(98) && soon <= Duration::from_secs(100));
    }

    #[test]
    fn b64tokens_only() {
        assert!(is_b64token("abc-._~+/DEF=="));
        for bad in [
            "", "==", " abc", "abc ", "a b", "a\tb", "é", "a,b", "a=b", "a\"b",
        ] {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }

    #[test]
    fn client_credentials_are_form_encoded() {
        assert_eq!(form_encode("ward"), "ward");
        assert_eq!(form_encode("a b:c+d/é"), "a%20b%3Ac%2Bd%2F%C3%A9");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
    }
}
