//! RFC 7662 token introspection, for opaque tokens: ward asks the authorization server
//! that issued a token whether it is active and whom it belongs to.
//!
//! One exchange: `POST endpoint` with `token=<tok>&token_type_hint=access_token`,
//! authenticated as ward's own client (`client_secret_basic` or `client_secret_post`).
//! The endpoint is configured, or found once in the issuer's OpenID configuration
//! (`discovery: true`). The answer is a JSON object; `active: false` is an inactive
//! token (401), `active: true` carries the identity (`sub`, `scope`, `client_id`, `exp`,
//! `iss`, `aud`, ...), which ward checks as SPEC §3 says: the RFC 7662 §2.2 field types,
//! an access token's `token_type`, `nbf`/`exp` within the leeway, `iss`, `aud`, and an
//! identity that reaches the upstream as judged (representable).
//!
//! Whose fault a failure is decides what it costs (SPEC §7):
//! - the token's: `active: false`, or an OAuth error about the token
//!   (`400 {"error":"unsupported_token_type"}` and the like). An inactive token, cached
//!   for `negative_cache_ttl`, so a repeated junk token costs one call; it never counts
//!   as the endpoint failing;
//! - the provider's: refused, timed out, 5xx, 429, any other status, not JSON, too
//!   large. 503 for that check, never cached, and counted by the breaker.
//!
//! What keeps a slow or broken endpoint from hurting Envoy, and junk tokens from
//! hurting valid users:
//! - answers are cached (bounded, keyed by SHA-256 of provider and token, never the
//!   token) for `min(cache_ttl, exp - now)`, refusals for `negative_cache_ttl`; a cached
//!   answer serves whatever state the endpoint is in;
//! - concurrent checks of one token share one call (moka `try_get_with`);
//! - each call has a `timeout` (discovery, connect, send and body together) and a 1 MiB
//!   body cap;
//! - a circuit breaker: after `failures` provider failures in a row, or at once when a
//!   429 or 503 carries `Retry-After`, it opens: checks that need a call answer 503 at
//!   once, and one probe call goes through every `cool_down` (at most 5 s, sooner when
//!   `Retry-After` says so). The first success closes it, so a recovered endpoint
//!   serves again within 5 s whatever made it fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use moka::Expiry;
use moka::future::Cache;
use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::authn::cache::TokenCache;
use crate::authn::claims::{self, ClaimPath, Identity, List, Part};
use crate::authn::http::{self, HttpError};
use crate::authn::strict_json;
use crate::authn::token::TokenSource;
use crate::header::HeaderName;
use crate::metrics::{CacheCounters, Metrics};

/// The longest an open breaker waits before its next probe: a recovered endpoint serves
/// again within this (SPEC §7).
pub const MAX_COOL_DOWN: Duration = Duration::from_secs(5);

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
    /// Consecutive provider failures that open the breaker.
    pub failures: u32,
    /// How long an open breaker waits between probes (at most [`MAX_COOL_DOWN`]); a
    /// shorter `Retry-After` shortens it.
    pub cool_down: Duration,
}

/// Where the introspection endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Url(String),
    /// The `introspection_endpoint` of the OpenID configuration at this URL, which must
    /// name the provider's `issuer`.
    Discovery(String),
}

/// The `aud` an active answer must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audiences {
    /// `audiences: any`: the authorization server returns no `aud`, so none is asked for.
    Any,
    /// `aud` must name at least one.
    OneOf(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionSettings {
    pub endpoint: Endpoint,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_method: AuthMethod,
    /// When set, `iss` must equal it exactly. Required with discovery.
    pub issuer: Option<Arc<str>>,
    pub audiences: Audiences,
    /// How far `nbf` and `exp` may be off ward's clock.
    pub leeway: Duration,
    /// The claims that give the subject, in order: the first present decides.
    pub subject: Vec<ClaimPath>,
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

/// Why introspection gave no verdict on a token: the provider's fault. Never cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A status other than 200 that is not an error about the token, with the OAuth
    /// `error` code of its body (RFC 6749 §5.2) when it has one.
    #[error("status {status}{}", oauth_suffix(.error))]
    Status {
        status: u16,
        error: Option<Box<str>>,
    },
    /// `discovery: true` found no usable endpoint.
    #[error("discovery: {0}")]
    Discovery(String),
    #[error("circuit breaker open")]
    CircuitOpen,
}

fn oauth_suffix(error: &Option<Box<str>>) -> String {
    error
        .as_ref()
        .map_or_else(String::new, |e| format!(", OAuth error `{e}`"))
}

impl IntrospectError {
    /// Bounded metric label (`result` of `ward_introspection_requests_total`).
    pub fn label(&self) -> &'static str {
        match self {
            IntrospectError::Http(e) => e.label(),
            IntrospectError::Status { .. } => "http_status",
            IntrospectError::Discovery(_) => "invalid",
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
            IntrospectError::Http(HttpError::Status(_)) | IntrospectError::Status { .. } => {
                "introspection endpoint answered an error status"
            }
            IntrospectError::Http(HttpError::TooLarge) => "introspection response too large",
            IntrospectError::Http(HttpError::NotJson) => {
                "introspection response is not a JSON object"
            }
            IntrospectError::Discovery(_) => "introspection endpoint not found by discovery",
            IntrospectError::CircuitOpen => {
                "introspection endpoint failing: backing off, not called"
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
    shared: Arc<Shared>,
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
                Cache::builder()
                    .max_capacity(max_entries)
                    .expire_after(Lifetimes {
                        positive: settings.cache_ttl,
                        negative: settings.negative_cache_ttl,
                    })
                    .build(),
                Arc::new(Shared {
                    breaker: Breaker::new(settings.breaker),
                    discovered: ArcSwapOption::empty(),
                    discovery: tokio::sync::Mutex::new(()),
                }),
            ),
        };
        Ok(Self {
            shared,
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
        let leeway = self.settings.leeway.as_secs();
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
                    // moka's expiry is set from whole seconds of `exp`; never serve past
                    // it (and its leeway, within which an answer was accepted uncached).
                    if id
                        .expires_at
                        .is_some_and(|exp| exp.saturating_add(leeway) <= cache_now())
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
                if permit.failure(retry_after) {
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
        Ok(self.verdict(doc, now).map(Arc::new))
    }

    fn closed(&self, closed: bool) {
        if closed {
            tracing::info!(
                provider = &*self.provider,
                "introspection endpoint answers again: circuit closed"
            );
        }
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
        let answer = match http::answer(req.form(&form), self.settings.timeout).await {
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
        let (doc, _) = http::json_object(req, self.settings.timeout).await?;
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

    /// The identity of an answer, or why ward refuses the token (SPEC §3).
    fn verdict(&self, doc: Map<String, Value>, now: u64) -> Result<Identity, TokenError> {
        let s = &self.settings;
        match doc.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err(TokenError::Inactive),
            _ => return Err(TokenError::ClaimType("active")),
        }
        // RFC 7662 §2.2 types: those of RFC 7519, and these strings.
        claims::registered_types(&doc)?;
        for name in ["client_id", "username", "token_type"] {
            if doc.get(name).is_some_and(|v| !v.is_string()) {
                return Err(TokenError::ClaimType(name));
            }
        }
        // A refresh token (or any other kind) never authorizes.
        if let Some(Value::String(t)) = doc.get("token_type")
            && !is_access_token_type(t)
        {
            return Err(TokenError::Inactive);
        }
        let (now_f, leeway) = (now as f64, s.leeway.as_secs_f64());
        let exp = doc.get("exp").and_then(Value::as_f64);
        if exp.is_some_and(|e| now_f >= e + leeway) {
            return Err(TokenError::Expired);
        }
        let nbf = doc.get("nbf").and_then(Value::as_f64);
        if nbf.is_some_and(|nbf| now_f + leeway < nbf) {
            return Err(TokenError::NotYetValid);
        }
        let iss: Option<Arc<str>> = match (doc.get("iss").and_then(Value::as_str), &s.issuer) {
            (None, None) => None,
            (Some(i), Some(want)) if **want == *i => Some(want.clone()),
            (Some(i), None) => Some(i.into()),
            (_, Some(_)) => return Err(TokenError::Issuer),
        };
        if let Audiences::OneOf(accepted) = &s.audiences
            && !claims::audience_ok(doc.get("aud"), accepted)
        {
            return Err(TokenError::Audience);
        }
        let subject = subject(&doc, &s.subject)?;
        Ok(Identity {
            provider: self.provider.clone(),
            subject,
            issuer: iss,
            roles: claims::names(s.roles_claim.lookup_in(&doc), List::Roles)?,
            scopes: claims::names(s.scopes_claim.lookup_in(&doc), List::Scopes)?,
            expires_at: exp.map(|e| e.max(0.0) as u64),
            claim_headers: claims::claim_headers(&doc, &s.claim_headers),
            claims: claims::Claims::kept(doc, &self.kept_claims),
        })
    }
}

/// The subject: the first of `claims` present in the answer, which must be a
/// representable string. None when none is present.
fn subject(doc: &Map<String, Value>, claims: &[ClaimPath]) -> Result<Option<Box<str>>, TokenError> {
    let Some((path, v)) = claims.iter().find_map(|p| Some((p, p.lookup_in(doc)?))) else {
        return Ok(None);
    };
    match v {
        Value::String(s) if claims::representable(s, |_| false) => Ok(Some(s.as_str().into())),
        Value::String(_) => Err(TokenError::Unrepresentable(Part::Claim(claim_name(path)))),
        _ => Err(TokenError::ClaimType(claim_name(path))),
    }
}

/// The name a refusal's detail gives a subject claim: the claims RFC 7662 and OpenID
/// define by their name, any other as `subject` (a detail is fixed text).
fn claim_name(path: &ClaimPath) -> &'static str {
    const NAMED: &[&str] = &[
        "sub",
        "client_id",
        "username",
        "email",
        "preferred_username",
        "azp",
    ];
    NAMED
        .iter()
        .find(|n| **n == path.as_str())
        .copied()
        .unwrap_or("subject")
}

/// `token_type` of an access token: `access_token` (RFC 8693), `Bearer` (RFC 6750),
/// `N_A` (RFC 8693's "not applicable"), in any case.
fn is_access_token_type(t: &str) -> bool {
    ["access_token", "bearer", "n_a"]
        .iter()
        .any(|a| t.eq_ignore_ascii_case(a))
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
/// calls in a row failed (and no 429 or 503 asked to back off); then open: no calls,
/// except one probe at a time once `cool_down` (or a shorter `Retry-After`) has passed
/// since it opened or since the last probe failed. Any success closes it.
struct Breaker {
    settings: BreakerSettings,
    failures: AtomicU32,
    /// Milliseconds since `epoch` from which the next probe may go; 0 while closed.
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

    /// Milliseconds since `epoch`, from 1: 0 is the closed breaker's `open_until`.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn acquire(&self) -> Option<Permit<'_>> {
        let permit = |probe| Permit {
            breaker: self,
            probe,
            done: false,
        };
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Some(permit(false));
        }
        if self.now_ms() < until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| permit(true))
    }

    /// When the next probe may go after a failure now, `retry_after` shortening the wait.
    fn next_probe(&self, retry_after: Option<Duration>) -> u64 {
        let wait = retry_after.map_or(self.settings.cool_down, |r| r.min(self.settings.cool_down));
        self.now_ms()
            .saturating_add(wait.as_millis().try_into().unwrap_or(u64::MAX))
    }
}

impl Permit<'_> {
    /// Records an answer; true when this closed an open breaker.
    fn success(mut self) -> bool {
        self.done = true;
        let b = self.breaker;
        b.failures.store(0, Ordering::Release);
        let was = b.open_until.swap(0, Ordering::AcqRel);
        b.probing.store(false, Ordering::Release);
        was != 0
    }

    /// Records a provider failure, with the wait it asked for; true when this opened
    /// (or reopened) the breaker.
    fn failure(mut self, retry_after: Option<Duration>) -> bool {
        self.done = true;
        let b = self.breaker;
        let n = b.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if self.probe {
            b.open_until
                .store(b.next_probe(retry_after), Ordering::Release);
            b.probing.store(false, Ordering::Release);
            return true;
        }
        // A call let through before the breaker opened: the probes decide now.
        if b.open_until.load(Ordering::Acquire) != 0 {
            return false;
        }
        if n >= b.settings.failures || retry_after.is_some() {
            return b
                .open_until
                .compare_exchange(
                    0,
                    b.next_probe(retry_after),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok();
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

    fn breaker(failures: u32, cool_down_ms: u64) -> Breaker {
        Breaker::new(BreakerSettings {
            failures,
            cool_down: Duration::from_millis(cool_down_ms),
        })
    }

    #[test]
    fn breaker_opens_fails_fast_then_probes_once() {
        let b = breaker(2, 50);
        assert!(!b.acquire().unwrap().failure(None));
        assert!(b.acquire().unwrap().failure(None), "second failure opens");
        assert!(b.acquire().is_none(), "open: no calls");
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.acquire().expect("half-open lets one probe");
        assert!(b.acquire().is_none(), "only one probe at a time");
        assert!(probe.failure(None), "a failed probe reopens");
        assert!(b.acquire().is_none());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.acquire().expect("probe");
        assert!(probe.success(), "a good probe closes");
        assert!(b.acquire().is_some());
        assert!(b.acquire().is_some());
    }

    #[test]
    fn retry_after_opens_at_once_and_only_shortens_the_wait() {
        let b = breaker(5, 60_000);
        let asked = Some(Duration::ZERO);
        assert!(
            b.acquire().unwrap().failure(asked),
            "a 429 with Retry-After opens"
        );
        let probe = b
            .acquire()
            .expect("Retry-After: 0 lets the next call probe");
        // A Retry-After of an hour waits no longer than the cool-down.
        assert!(probe.failure(Some(Duration::from_secs(3600))));
        let until = b.open_until.load(Ordering::Acquire);
        assert!(until <= b.now_ms() + 60_000, "capped by cool_down");
        assert!(b.acquire().is_none());
    }

    #[test]
    fn calls_from_before_the_breaker_opened_do_not_postpone_the_probe() {
        let b = breaker(1, 50);
        let (late, first) = (b.acquire().unwrap(), b.acquire().unwrap());
        assert!(first.failure(None), "opens");
        let until = b.open_until.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            !late.failure(Some(Duration::from_millis(50))),
            "already open"
        );
        assert_eq!(b.open_until.load(Ordering::Acquire), until);
        // Any success closes it, a probe's or not.
        let b = breaker(1, 60_000);
        let in_flight = b.acquire().unwrap();
        b.acquire().unwrap().failure(None);
        assert!(b.acquire().is_none());
        assert!(in_flight.success(), "an answer closes");
        assert!(b.acquire().is_some());
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let b = breaker(1, 0);
        b.acquire().unwrap().failure(None);
        let probe = b.acquire().expect("probe");
        assert!(b.acquire().is_none());
        drop(probe);
        assert!(b.acquire().is_some(), "the next caller may probe");
    }

    #[test]
    fn retry_after_reads_seconds_and_takes_a_date_as_later() {
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h, Duration::from_secs(5))
        };
        assert_eq!(with("2"), Some(Duration::from_secs(2)));
        assert_eq!(with(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            with("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            with("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(with("-1"), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&HeaderMap::new(), Duration::from_secs(5)), None);
    }

    #[test]
    fn oauth_error_codes_are_read_only_when_safe_to_log() {
        let code = |body: &str| oauth_error(body.as_bytes());
        assert_eq!(
            code(r#"{"error":"invalid_client","error_description":"no"}"#).as_deref(),
            Some("invalid_client")
        );
        for bad in [
            r#"{"error":""}"#,
            r#"{"error":"a\nb"}"#,
            r#"{"error":"quote\"d"}"#,
            r#"{"error":7}"#,
            r#"{"nothing":1}"#,
            "<html>",
            r#"{"error":"é"}"#,
        ] {
            assert_eq!(code(bad), None, "{bad}");
        }
        assert_eq!(code(&format!(r#"{{"error":"{}"}}"#, "x".repeat(65))), None);
        assert!(is_about_the_token("unsupported_token_type"));
        assert!(!is_about_the_token("invalid_request") && !is_about_the_token("invalid_client"));
    }

    #[test]
    fn access_token_types() {
        for t in [
            "access_token",
            "Bearer",
            "bearer",
            "N_A",
            "n_a",
            "ACCESS_TOKEN",
        ] {
            assert!(is_access_token_type(t), "{t}");
        }
        for t in ["refresh_token", "id_token", "", "Bearer ", "DPoP"] {
            assert!(!is_access_token_type(t), "{t}");
        }
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

    // === reading an answer ===

    const NOW: u64 = 1_800_000_000;

    fn answer_settings() -> IntrospectionSettings {
        let h = |n: &str| HeaderName::parse(n).expect("test header name");
        let p = |n: &str| ClaimPath::parse(n).expect("test claim path");
        IntrospectionSettings {
            endpoint: Endpoint::Url("https://idp.example.com/introspect".into()),
            client_id: "ward".into(),
            client_secret: Secret::new("x".into()),
            auth_method: AuthMethod::ClientSecretBasic,
            issuer: Some("https://idp.example.com".into()),
            audiences: Audiences::OneOf(vec!["orders-api".into(), "billing-api".into()]),
            leeway: Duration::from_secs(30),
            subject: vec![p("sub"), p("client_id")],
            cache_ttl: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            ca_file: None,
            max_token_bytes: 4096,
            roles_claim: p("realm_access.roles"),
            scopes_claim: p("scope"),
            token_from: vec![TokenSource::default_bearer()],
            claim_headers: vec![(p("email"), h("x-auth-email"))],
            breaker: BreakerSettings {
                failures: 5,
                cool_down: Duration::from_secs(1),
            },
        }
    }

    fn reader(settings: IntrospectionSettings) -> Introspector {
        let kept = vec![Arc::from("tenant")];
        Introspector::new(
            "partners".into(),
            settings,
            10,
            Arc::new(Metrics::new()),
            kept,
            None,
        )
        .expect("test introspector")
    }

    /// An active answer that passes every check, with `extra` merged in (a null removes).
    fn answer(extra: Value) -> Map<String, Value> {
        let mut doc = serde_json::json!({
            "active": true,
            "sub": "alice",
            "iss": "https://idp.example.com",
            "aud": "orders-api",
            "exp": NOW + 600,
        });
        let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) else {
            unreachable!("objects")
        };
        for (k, v) in e {
            if v.is_null() {
                d.remove(&k);
            } else {
                d.insert(k, v);
            }
        }
        let Value::Object(d) = doc else {
            unreachable!()
        };
        d
    }

    fn read(r: &Introspector, extra: Value) -> Result<Identity, TokenError> {
        r.verdict(answer(extra), NOW)
    }

    #[test]
    fn an_active_answer_gives_its_identity() {
        use serde_json::json;
        let r = reader(answer_settings());
        let id = read(
            &r,
            json!({
                "realm_access": {"roles": ["orders-reader", "admin"]},
                "scope": "orders.read orders.write",
                "email": "alice@example.com",
                "tenant": "acme",
                "other": 1,
            }),
        )
        .unwrap();
        assert_eq!(&*id.provider, "partners");
        assert_eq!(id.subject.as_deref(), Some("alice"));
        assert_eq!(id.issuer.as_deref(), Some("https://idp.example.com"));
        assert_eq!(id.roles, claims::Names::from(["orders-reader", "admin"]));
        assert_eq!(
            id.scopes,
            claims::Names::from(["orders.read", "orders.write"])
        );
        assert_eq!(id.expires_at, Some(NOW + 600));
        let email = HeaderName::parse("x-auth-email").unwrap();
        assert_eq!(*id.claim_headers, [(email, "alice@example.com".into())]);
        assert_eq!(id.claims.names().collect::<Vec<_>>(), ["tenant"]);
        assert_eq!(id.claims.get("tenant"), Some(&json!("acme")));
        // No exp: the identity does not expire by itself.
        let id = read(&r, json!({"exp": null})).unwrap();
        assert_eq!(id.expires_at, None);
    }

    #[test]
    fn only_active_true_is_active() {
        use serde_json::json;
        let r = reader(answer_settings());
        assert_eq!(
            read(&r, json!({"active": false})).unwrap_err(),
            TokenError::Inactive
        );
        for wrong in [json!("true"), json!(1), json!([true])] {
            assert_eq!(
                read(&r, json!({ "active": wrong })).unwrap_err(),
                TokenError::ClaimType("active"),
                "{wrong}"
            );
        }
        assert_eq!(
            read(&r, json!({"active": null})).unwrap_err(),
            TokenError::ClaimType("active"),
            "absent"
        );
    }

    #[test]
    fn answer_fields_must_have_their_rfc_7662_types() {
        use serde_json::json;
        let r = reader(answer_settings());
        for (name, v) in [
            ("exp", json!("1")),
            ("sub", json!(7)),
            ("client_id", json!(7)),
            ("username", json!(["alice"])),
            ("token_type", json!(true)),
        ] {
            let mut extra = Map::new();
            extra.insert(name.to_owned(), v);
            assert_eq!(
                read(&r, Value::Object(extra)).unwrap_err(),
                TokenError::ClaimType(name),
                "{name}"
            );
        }
        let fine = json!({"client_id": "app", "username": "alice", "token_type": "Bearer"});
        assert!(read(&r, fine).is_ok());
    }

    #[test]
    fn only_an_access_token_type_authorizes() {
        use serde_json::json;
        let r = reader(answer_settings());
        for t in ["refresh_token", "id_token", ""] {
            assert_eq!(
                read(&r, json!({ "token_type": t })).unwrap_err(),
                TokenError::Inactive,
                "{t}"
            );
        }
        for t in ["access_token", "Bearer", "N_A"] {
            assert!(read(&r, json!({ "token_type": t })).is_ok(), "{t}");
        }
    }

    #[test]
    fn exp_and_nbf_hold_within_the_leeway() {
        use serde_json::json;
        let r = reader(answer_settings());
        // exp + leeway is the first second the answer is expired.
        assert_eq!(
            read(&r, json!({"exp": NOW - 30})).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            read(&r, json!({"exp": NOW - 31})).unwrap_err(),
            TokenError::Expired
        );
        assert!(read(&r, json!({"exp": NOW - 29})).is_ok());
        // Valid from nbf - leeway.
        assert!(read(&r, json!({"nbf": NOW + 30})).is_ok());
        assert!(read(&r, json!({"nbf": NOW})).is_ok());
        assert_eq!(
            read(&r, json!({"nbf": NOW + 31})).unwrap_err(),
            TokenError::NotYetValid
        );
    }

    #[test]
    fn iss_must_be_the_configured_issuer() {
        use serde_json::json;
        let r = reader(answer_settings());
        for wrong in [json!(null), json!("https://idp.example.com/"), json!("x")] {
            assert_eq!(
                read(&r, json!({ "iss": wrong })).unwrap_err(),
                TokenError::Issuer,
                "{wrong}"
            );
        }
        // Without a configured issuer, whatever the answer says is kept (or none).
        let mut s = answer_settings();
        s.issuer = None;
        let r = reader(s);
        let id = read(&r, json!({"iss": "https://other.example.com"})).unwrap();
        assert_eq!(id.issuer.as_deref(), Some("https://other.example.com"));
        let id = read(&r, json!({"iss": null})).unwrap();
        assert_eq!(id.issuer, None);
    }

    #[test]
    fn aud_must_name_an_accepted_audience_unless_any() {
        use serde_json::json;
        let r = reader(answer_settings());
        assert!(read(&r, json!({"aud": ["x", "billing-api"]})).is_ok());
        for wrong in [json!(null), json!("x"), json!(["x"]), json!([])] {
            assert_eq!(
                read(&r, json!({ "aud": wrong })).unwrap_err(),
                TokenError::Audience,
                "{wrong}"
            );
        }
        let mut s = answer_settings();
        s.audiences = Audiences::Any;
        let r = reader(s);
        assert!(read(&r, json!({"aud": null})).is_ok());
        assert!(read(&r, json!({"aud": "x"})).is_ok());
    }

    #[test]
    fn the_subject_is_the_first_listed_claim_present() {
        use serde_json::json;
        let r = reader(answer_settings());
        let id = read(&r, json!({"sub": null, "client_id": "app"})).unwrap();
        assert_eq!(id.subject.as_deref(), Some("app"));
        let id = read(&r, json!({"client_id": "app"})).unwrap();
        assert_eq!(id.subject.as_deref(), Some("alice"), "sub comes first");
        let id = read(&r, json!({"sub": null})).unwrap();
        assert_eq!(id.subject, None);
        // The first present decides, even when it cannot be used.
        let unusable = read(&r, json!({"sub": " alice", "client_id": "app"})).unwrap_err();
        assert_eq!(unusable, TokenError::Unrepresentable(Part::Claim("sub")));
        // A subject claim of another name is named `subject` in the refusal.
        let mut s = answer_settings();
        s.subject = vec![ClaimPath::parse("ext.user").unwrap()];
        let r = reader(s);
        assert_eq!(
            read(&r, json!({"ext": {"user": 7}})).unwrap_err(),
            TokenError::ClaimType("subject")
        );
        assert_eq!(
            read(&r, json!({"ext": {"user": "bob\n"}})).unwrap_err(),
            TokenError::Unrepresentable(Part::Claim("subject"))
        );
        assert_eq!(
            read(&r, json!({"ext": {"user": "bob"}}))
                .unwrap()
                .subject
                .as_deref(),
            Some("bob")
        );
    }

    #[test]
    fn subject_claims_known_by_name_are_named_in_refusals() {
        for name in [
            "sub",
            "client_id",
            "username",
            "email",
            "preferred_username",
            "azp",
        ] {
            assert_eq!(claim_name(&ClaimPath::parse(name).unwrap()), name);
        }
        assert_eq!(claim_name(&ClaimPath::parse("uid").unwrap()), "subject");
    }

    #[test]
    fn unrepresentable_roles_and_scopes_refuse_the_answer() {
        use serde_json::json;
        let r = reader(answer_settings());
        assert_eq!(
            read(&r, json!({"realm_access": {"roles": ["a,b"]}})).unwrap_err(),
            TokenError::Unrepresentable(Part::Role)
        );
        assert_eq!(
            read(&r, json!({"scope": ["a b"]})).unwrap_err(),
            TokenError::Unrepresentable(Part::Scope)
        );
    }
}
