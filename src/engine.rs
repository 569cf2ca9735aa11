//! The decision engine: one request in, one [`Decision`] out. No network types here;
//! the gRPC server, `ward check` and the tower layer all call [`Engine::check`].
//!
//! Phases run in order (route -> credential -> verification -> rules), each returning a
//! typed result; shadow mode is applied once, at the end.

use std::collections::HashMap;
use std::sync::Arc;

use crate::authn::cache::{TokenCache, Verified};
use crate::authn::introspection::{Introspector, Refusal};
use crate::authn::jwks::{KeySources, KeyStore};
use crate::authn::jwt;
use crate::authn::token::{self, Found, TokenSource};
use crate::authn::{Identity, ProviderKind, ProviderSettings, TokenError};
use crate::authz::condition::EvalCtx;
use crate::authz::path::{self, Params};
use crate::authz::route::{Mode, Route, RouteIndex};
use crate::clock::Clock;
use crate::config::Config;
use crate::decision::{Decision, DenyReason, Mutations, Verdict};
use crate::header::{self, HeaderName};
use crate::metrics::{CacheCounters, Metrics};
use crate::request::CheckInput;

/// A provider as used at run time: its settings, where it reads credentials, its keys.
pub struct Provider {
    pub settings: Arc<ProviderSettings>,
    sources: Vec<TokenSource>,
    pub keys: Option<KeyStore>,
    /// The client, cache and breaker of an introspection provider.
    pub introspector: Option<Arc<Introspector>>,
    /// Its verified-token cache counters (JWT providers).
    cache_counters: Option<CacheCounters>,
}

pub struct Engine {
    config: Arc<Config>,
    providers: Vec<Provider>,
    /// `config.routes` by first path segment.
    route_index: RouteIndex,
    /// Per route: issuer -> JWT providers of that route with that issuer.
    route_issuers: Vec<HashMap<String, Vec<usize>>>,
    /// The top-level claims some `claim:` condition reads: the only ones a cached
    /// identity keeps.
    kept_claims: Vec<Arc<str>>,
    /// Every header ward owns, in a fixed order.
    owned: Vec<HeaderName>,
    /// The lengths of the owned names (`length_bit`): most request headers are ruled
    /// out as another spelling of one by their length alone.
    owned_lengths: u64,
    /// Per route, with `strip_authorization`: the credential headers removed upstream
    /// (`authorization` and every header the route's providers read a credential from).
    strip: Vec<Box<[HeaderName]>>,
    cache: TokenCache,
    metrics: Arc<Metrics>,
    /// The time tokens, caches and key refreshes are judged by.
    clock: Clock,
}

impl Engine {
    /// Builds an engine on the system clock; remote key sources are fetched on demand
    /// only (no background refresh). The server uses [`Engine::with_key_stores`] with a
    /// shared [`KeySources`] instead.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(config, metrics, Clock::system())
    }

    /// [`Engine::new`] on `clock`.
    pub fn with_clock(config: Config, metrics: Arc<Metrics>, clock: Clock) -> Self {
        let sources = KeySources::with_clock(metrics.clone(), false, clock.clone());
        let stores = sources
            .stores_for(config.providers.iter().map(|p| p.keys_wanted()))
            .unwrap_or_else(|_| vec![None; config.providers.len()]);
        Self::with_key_stores(config, stores, metrics, clock)
    }

    /// Builds an engine with the given key store for each provider (same order), judging
    /// time by `clock` (the one the stores' [`KeySources`] reads).
    pub fn with_key_stores(
        config: Config,
        stores: Vec<Option<KeyStore>>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        Self::build(config, stores, metrics, clock, None)
    }

    /// The engine for a reloaded `config`, which replaces this one. An introspection
    /// provider left unchanged keeps this engine's cache and circuit breaker, as JWT
    /// providers keep their keys through `stores`.
    pub fn reloaded(&self, config: Config, stores: Vec<Option<KeyStore>>) -> Self {
        Self::build(
            config,
            stores,
            self.metrics.clone(),
            self.clock.clone(),
            Some(self),
        )
    }

    fn build(
        config: Config,
        stores: Vec<Option<KeyStore>>,
        metrics: Arc<Metrics>,
        clock: Clock,
        previous: Option<&Engine>,
    ) -> Self {
        let mut names = Vec::new();
        for r in &config.routes {
            if let Some(c) = &r.require {
                c.claim_names(&mut names);
            }
        }
        names.sort();
        names.dedup();
        let kept_claims: Vec<Arc<str>> = names.into_iter().map(Into::into).collect();
        let providers: Vec<Provider> = config
            .providers
            .iter()
            .zip(stores)
            .map(|(p, keys)| Provider {
                sources: p.sources(),
                introspector: introspector_for(
                    p,
                    config.token_cache_max_entries,
                    &metrics,
                    &kept_claims,
                    &clock,
                    previous.and_then(|e| e.introspector(&p.name)),
                ),
                cache_counters: matches!(p.kind, ProviderKind::Jwt(_))
                    .then(|| metrics.token_cache(&p.name)),
                settings: p.clone(),
                keys,
            })
            .collect();
        let route_issuers = config
            .routes
            .iter()
            .map(|r| {
                let mut m: HashMap<String, Vec<usize>> = HashMap::new();
                for &i in &r.providers {
                    if let ProviderKind::Jwt(j) = &config.providers[i].kind {
                        m.entry(j.issuer.to_string()).or_default().push(i);
                    }
                }
                m
            })
            .collect();
        let ih = &config.identity_headers;
        let mut owned = vec![
            ih.subject.clone(),
            ih.issuer.clone(),
            ih.provider.clone(),
            ih.roles.clone(),
            ih.scopes.clone(),
        ];
        for p in &config.providers {
            for (_, h) in p.claim_headers() {
                if !owned.contains(h) {
                    owned.push(h.clone());
                }
            }
        }
        let strip = config
            .routes
            .iter()
            .map(|r| {
                if !config.strip_authorization {
                    return Box::default();
                }
                let authorization = HeaderName::parse("authorization").expect("static name");
                let mut names = vec![authorization];
                let headers = r
                    .providers
                    .iter()
                    .flat_map(|&i| config.providers[i].sources());
                for source in headers {
                    if let TokenSource::Header { name, .. } = source
                        && !names.contains(&name)
                        && !owned.contains(&name)
                    {
                        names.push(name);
                    }
                }
                names.into_boxed_slice()
            })
            .collect();
        let owned_lengths = owned
            .iter()
            .fold(0, |bits, h| bits | length_bit(h.as_str().len()));
        Self {
            owned_lengths,
            route_index: RouteIndex::new(&config.routes),
            cache: TokenCache::new(config.token_cache_max_entries),
            kept_claims,
            config: Arc::new(config),
            providers,
            route_issuers,
            owned,
            strip,
            metrics,
            clock,
        }
    }

    /// The introspection client of the provider named `name`.
    fn introspector(&self, name: &str) -> Option<&Introspector> {
        self.providers
            .iter()
            .find(|p| *p.settings.name == *name)
            .and_then(|p| p.introspector.as_deref())
    }

    /// The clock this engine judges time by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Every JWT provider holds at least one key.
    pub fn ready(&self) -> bool {
        self.without_keys().next().is_none()
    }

    /// The names of the JWT providers that hold no key (yet), in config order.
    pub fn without_keys(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().filter_map(|p| {
            let ready = match (&p.settings.kind, &p.keys) {
                (ProviderKind::Jwt(_), Some(k)) => k.has_keys(),
                (ProviderKind::Jwt(_), None) => false,
                _ => true,
            };
            (!ready).then_some(&*p.settings.name)
        })
    }

    /// Decides one request.
    pub async fn check(&self, input: &CheckInput<'_>) -> Decision {
        let segments = match path::normalize(input.path) {
            Ok(s) => s,
            Err(e) => return deny(None, e.into()),
        };
        let Some((ri, route, params)) =
            self.route_index
                .select(&self.config.routes, input, &segments)
        else {
            return deny(None, DenyReason::NoRoute);
        };
        let now = self.clock.unix_secs();
        let identity = match self.authenticate(ri, route, input, now).await {
            Ok(id) => id,
            Err(Refused { reason, provider }) => {
                let mut d = self.refuse(ri, input, reason, None);
                d.provider = provider;
                return d;
            }
        };
        if let Some(req) = &route.require {
            let anon = Identity::default();
            // A mesh identity read from `source.certificate` is also the peer principal
            // that `source_principals` conditions see.
            let with_peer;
            let rule_input = match identity.as_deref() {
                Some(id) if input.source_principal.is_empty() && self.is_mesh(&id.provider) => {
                    with_peer = CheckInput {
                        source_principal: id.subject.as_deref().unwrap_or(""),
                        ..input.clone()
                    };
                    &with_peer
                }
                _ => input,
            };
            let ctx = EvalCtx {
                identity: identity.as_deref().unwrap_or(&anon),
                params: &params,
                input: rule_input,
            };
            if let Err(f) = req.eval(&ctx) {
                return self.refuse(ri, input, DenyReason::Forbidden(f), identity);
            }
        }
        let _: &Params<'_> = &params;
        self.allow(ri, input, identity, None)
    }

    fn allow(
        &self,
        ri: usize,
        input: &CheckInput<'_>,
        identity: Option<Arc<Identity>>,
        shadow: Option<DenyReason>,
    ) -> Decision {
        Decision {
            route: Some(self.config.routes[ri].name.clone()),
            verdict: Verdict::Allow(self.mutations(ri, input, identity.as_deref())),
            provider: identity.as_ref().map(|id| id.provider.clone()),
            identity,
            shadow_deny: shadow,
        }
    }

    /// A denial, unless the route is in shadow mode: then the request goes through, as
    /// the verified identity when the rules failed, as anonymous when the credential did.
    fn refuse(
        &self,
        ri: usize,
        input: &CheckInput<'_>,
        reason: DenyReason,
        identity: Option<Arc<Identity>>,
    ) -> Decision {
        let route = &self.config.routes[ri];
        if route.mode == Mode::Shadow {
            let keep = matches!(reason, DenyReason::Forbidden(_));
            return self.allow(ri, input, identity.filter(|_| keep), Some(reason));
        }
        Decision {
            route: Some(route.name.clone()),
            verdict: Verdict::Deny(reason),
            provider: identity.as_ref().map(|id| id.provider.clone()),
            identity,
            shadow_deny: None,
        }
    }

    fn is_mesh(&self, provider: &str) -> bool {
        self.providers.iter().any(|p| {
            &*p.settings.name == provider && matches!(p.settings.kind, ProviderKind::Mesh(_))
        })
    }

    /// Finds and verifies the route's credential. `Ok(None)` is an anonymous request on
    /// a route that accepts one (or has no providers).
    ///
    /// Precedence: the route's providers are tried in the order listed and the first one
    /// that finds its credential in the request decides, success or failure; a credential
    /// of another kind in the same request is ignored. A `mesh` provider finds one on
    /// every mTLS connection, so it goes last on a route that also takes tokens.
    async fn authenticate(
        &self,
        ri: usize,
        route: &Route,
        input: &CheckInput<'_>,
        now: u64,
    ) -> Result<Option<Arc<Identity>>, Refused> {
        for &pi in &route.providers {
            let p = &self.providers[pi];
            // The provider that decides, for the denial log: the one that found the
            // credential, or the one its issuer picked.
            let mut by = pi;
            let refused = |reason, by: usize| Refused {
                reason,
                provider: Some(self.providers[by].settings.name.clone()),
            };
            if let ProviderKind::Mesh(m) = &p.settings.kind {
                let Some(peer) = m.find(input) else { continue };
                return m
                    .verify(peer, &p.settings.name)
                    .map(|id| Some(Arc::new(id)))
                    .map_err(|e| refused(DenyReason::InvalidToken(e), pi));
            }
            let reason = match token::find_in(&p.sources, input) {
                Found::Nothing => continue,
                Found::Duplicate => DenyReason::InvalidToken(TokenError::Duplicate),
                Found::Unreadable => DenyReason::InvalidToken(TokenError::Malformed),
                Found::One(tok) => match self.verify(ri, pi, &tok, input, now, &mut by).await {
                    Ok(id) => return Ok(Some(id)),
                    Err(reason) => reason,
                },
            };
            return Err(refused(reason, by));
        }
        if route.providers.is_empty() || route.allow_anonymous {
            Ok(None)
        } else {
            Err(Refused {
                reason: DenyReason::MissingCredential,
                provider: None,
            })
        }
    }

    /// Verifies `tok`, which provider `pi` found; `by` is set to the provider that
    /// decides it (another JWT provider of the route when the token's issuer picks one).
    async fn verify(
        &self,
        ri: usize,
        pi: usize,
        tok: &str,
        input: &CheckInput<'_>,
        now: u64,
        by: &mut usize,
    ) -> Result<Arc<Identity>, DenyReason> {
        let p = &self.providers[pi];
        let invalid = DenyReason::InvalidToken;
        match &p.settings.kind {
            ProviderKind::ApiKey(ak) => ak
                .verify(tok, &p.settings.name)
                .map(Arc::new)
                .map_err(invalid),
            ProviderKind::Introspection(_) => {
                let client = p.introspector.as_ref().ok_or(DenyReason::AuthnUnavailable(
                    "introspection client unavailable",
                ))?;
                // Boxed, as the key fetch below: these futures are large (HTTP client,
                // cache, single flight) and would otherwise be part of every check's
                // future, copied on every request even when no call is made.
                Box::pin(client.verify(tok, now))
                    .await
                    .map_err(|r| match r {
                        Refusal::Token(e) => invalid(e),
                        Refusal::Unavailable(u) => DenyReason::AuthnUnavailable(u.0),
                    })
            }
            // The peer identity is not a token: `authenticate` verifies it.
            ProviderKind::Mesh(_) => Err(invalid(TokenError::PeerIdentity)),
            ProviderKind::Jwt(s) => {
                if tok.len() > s.max_token_bytes {
                    return Err(invalid(TokenError::TooLarge));
                }
                let key = TokenCache::key(tok);
                if let Some(v) = self.cache.get(&key, now)
                    && let Some(c) = self.still_counts(ri, pi, &s.issuer, &v, tok, input)
                {
                    self.count_cache(c, true);
                    return Ok(v.identity);
                }
                let parsed = match jwt::parse(tok, s.max_token_bytes) {
                    Ok(t) => t,
                    Err(e) => {
                        self.count_cache(pi, false);
                        return Err(invalid(e));
                    }
                };
                let chosen = self.pick(ri, pi, &s.issuer, parsed.issuer(), tok, input);
                *by = chosen;
                self.count_cache(chosen, false);
                let p = &self.providers[chosen];
                let ProviderKind::Jwt(s) = &p.settings.kind else {
                    return Err(invalid(TokenError::Issuer));
                };
                let store = p
                    .keys
                    .as_ref()
                    .ok_or(DenyReason::AuthnUnavailable("provider has no key source"))?;
                let keys = Box::pin(store.keys_for(parsed.kid.as_deref()))
                    .await
                    .map_err(|u| DenyReason::AuthnUnavailable(u.0))?;
                let (id, by) =
                    jwt::verify_keyed(parsed, s, &keys, &p.settings.name, now, &self.kept_claims)
                        .map_err(invalid)?;
                let id = Arc::new(id);
                let verified = Verified {
                    identity: id.clone(),
                    key: by,
                };
                self.cache.insert(key, verified, now);
                Ok(id)
            }
        }
    }

    /// The JWT provider that decides a token on route `ri`, where provider `pi` (whose
    /// issuer is `own_issuer`) found it: the token's issuer picks among the route's JWT
    /// providers that read the same credential (one lookup, not a trial of every
    /// provider's keys); a token of `pi`'s own issuer, of none, or of an issuer the route
    /// does not trust is `pi`'s to decide.
    fn pick(
        &self,
        ri: usize,
        pi: usize,
        own_issuer: &str,
        iss: Option<&str>,
        tok: &str,
        input: &CheckInput<'_>,
    ) -> usize {
        iss.filter(|iss| *iss != own_issuer)
            .and_then(|iss| self.route_issuers[ri].get(iss))
            .and_then(|cands| {
                cands
                    .iter()
                    .copied()
                    .find(|&c| self.reads_same_credential(pi, c, tok, input))
            })
            .unwrap_or(pi)
    }

    /// Which provider a cached verification stands for on this route, if it still
    /// counts here: only where the route would pick the provider that verified it for
    /// this token (so a warm cache decides as a cold one), and only while the key that
    /// verified it is in that provider's current key set (a key removed from the JWKS
    /// revokes its tokens, cached or not). The cache is keyed by the token alone.
    fn still_counts(
        &self,
        ri: usize,
        pi: usize,
        own_issuer: &str,
        v: &Verified,
        tok: &str,
        input: &CheckInput<'_>,
    ) -> Option<usize> {
        let id = &v.identity;
        let c = self.pick(ri, pi, own_issuer, id.issuer.as_deref(), tok, input);
        let p = &self.providers[c];
        (Arc::ptr_eq(&p.settings.name, &id.provider)
            && p.keys.as_ref().is_some_and(|k| k.holds(v.key)))
        .then_some(c)
    }

    /// Whether provider `c` finds `tok`, the credential provider `pi` found, in `input`.
    fn reads_same_credential(
        &self,
        pi: usize,
        c: usize,
        tok: &str,
        input: &CheckInput<'_>,
    ) -> bool {
        let (a, b) = (&self.providers[pi], &self.providers[c]);
        a.sources == b.sources || token::find_in(&b.sources, input) == Found::One(tok.into())
    }

    fn count_cache(&self, pi: usize, hit: bool) {
        if let Some(c) = &self.providers[pi].cache_counters {
            c.count(hit);
        }
    }

    /// Sets every identity header that has a value; removes every other header ward owns,
    /// so a client can never smuggle one upstream.
    fn mutations(&self, ri: usize, input: &CheckInput<'_>, id: Option<&Identity>) -> Mutations {
        let ih = &self.config.identity_headers;
        let mut set: Vec<(HeaderName, String)> = Vec::new();
        if let Some(id) = id {
            set.reserve_exact(self.owned.len());
            let mut put = |h: &HeaderName, v: Option<String>| {
                // Verification refused unrepresentable subjects, roles and scopes; this
                // keeps any other value (an introspected `iss`) from being read otherwise.
                if let Some(v) = v.filter(|v| header::is_exact_value(v)) {
                    set.push((h.clone(), v));
                }
            };
            put(&ih.subject, id.subject.as_deref().map(str::to_owned));
            put(&ih.issuer, id.issuer.as_deref().map(str::to_owned));
            put(&ih.provider, Some(id.provider.to_string()));
            put(&ih.roles, Some(id.roles.join(',')));
            put(&ih.scopes, Some(id.scopes.join(' ')));
            for (h, v) in &id.claim_headers {
                put(h, Some(v.to_string()));
            }
        }
        let strip = &self.strip[ri];
        let mut remove = Vec::with_capacity(self.owned.len() + strip.len());
        for h in &self.owned {
            if !set.iter().any(|(s, _)| s == h) {
                remove.push(h.clone());
            }
        }
        // `x_auth_subject` is `x-auth-subject` to CGI-style upstreams (both become
        // HTTP_X_AUTH_SUBJECT): a client header that spells an owned name with `_` for
        // `-` or `-` for `_` goes too, unless ward sets that very name.
        for (name, _) in input.headers.iter() {
            if self.owned_lengths & length_bit(name.len()) != 0
                && self
                    .owned
                    .iter()
                    .any(|o| o.as_str() != name && other_spelling(name, o))
                && !set.iter().any(|(s, _)| s.as_str() == name)
                && let Ok(h) = HeaderName::parse(name)
                && !remove.contains(&h)
            {
                remove.push(h);
            }
        }
        remove.extend(strip.iter().cloned());
        Mutations { set, remove }
    }
}

/// The run-time client of an introspection provider. A client that cannot be built (an
/// unreadable `ca_file` since validation) is logged; its checks answer 503.
fn introspector_for(
    p: &ProviderSettings,
    max_entries: u64,
    metrics: &Arc<Metrics>,
    kept_claims: &[Arc<str>],
    clock: &Clock,
    previous: Option<&Introspector>,
) -> Option<Arc<Introspector>> {
    let ProviderKind::Introspection(s) = &p.kind else {
        return None;
    };
    let (name, settings) = (p.name.clone(), (**s).clone());
    match Introspector::new(
        name,
        settings,
        max_entries,
        metrics.clone(),
        kept_claims.to_vec(),
        clock.clone(),
        previous,
    ) {
        Ok(i) => Some(Arc::new(i)),
        Err(error) => {
            tracing::error!(provider = &*p.name, %error, "introspection client unavailable");
            None
        }
    }
}

/// One bit per name length; lengths from 63 on share the last bit.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// Whether `name` is `owned` with some of its `-` and `_` swapped (CGI reads both as `_`).
fn other_spelling(name: &str, owned: &HeaderName) -> bool {
    let separator = |c: u8| c == b'-' || c == b'_';
    let owned = owned.as_str().as_bytes();
    name.len() == owned.len()
        && name
            .bytes()
            .zip(owned)
            .all(|(a, &b)| a == b || (separator(a) && separator(b)))
}

fn deny(route: Option<Arc<str>>, reason: DenyReason) -> Decision {
    Decision {
        route,
        verdict: Verdict::Deny(reason),
        provider: None,
        identity: None,
        shadow_deny: None,
    }
}

/// Why `authenticate` refused a request, and which provider refused it (none when no
/// credential was found).
struct Refused {
    reason: DenyReason,
    provider: Option<Arc<str>>,
}

#[cfg(test)]
mod tests;
