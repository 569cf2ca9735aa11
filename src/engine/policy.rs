//! The policy a [`Config`] compiles to, once: every route owns what a check on it needs
//! (its providers, its issuer index, its strip list), so the check walks from the route
//! down and never looks anything up by index.

use std::collections::HashMap;
use std::sync::Arc;

use super::verifier::JwtVerifier;
use crate::authn::cache::TokenCache;
use crate::authn::dpop::Dpop;
use crate::authn::introspection::Introspector;
use crate::authn::jwks::KeyStore;
use crate::authn::token::TokenSource;
use crate::authn::{ProviderKind, ProviderSettings};
use crate::authz::condition::Condition;
use crate::authz::path::{Params, Segments};
use crate::authz::route::Mode;
use crate::authz::route::RouteIndex;
use crate::clock::Clock;
use crate::config::Config;
use crate::decision::{Answer, DenyReason};
use crate::header::HeaderName;
use crate::issuer::MintSpec;
use crate::issuer::mint::{Grant, Issuer};
use crate::metrics::Metrics;
use crate::request::CheckInput;
use prometheus::IntCounter;

/// A provider as used at run time: its settings, where it reads credentials, and what
/// verifies them.
pub(crate) struct Provider {
    pub(super) settings: Arc<ProviderSettings>,
    pub(super) sources: Vec<TokenSource>,
    /// Equal for providers that read their credential from the same places (the same
    /// `sources`): a token one of them found is the token the other would find.
    pub(super) reads: usize,
    /// The keys and the verified-token cache of a JWT provider.
    pub(super) jwt: Option<JwtVerifier>,
    /// The client, cache and breaker of an introspection provider.
    pub(super) introspector: Option<Arc<Introspector>>,
}

impl Provider {
    /// A JWT provider without a key (yet) is not ready; every other provider is.
    fn ready(&self) -> bool {
        match (&self.settings.kind, &self.jwt) {
            (ProviderKind::Jwt(_), Some(v)) => v.has_keys(),
            (ProviderKind::Jwt(_), None) => false,
            _ => true,
        }
    }

    pub(super) fn is_mesh(&self) -> bool {
        matches!(self.settings.kind, ProviderKind::Mesh(_))
    }
}

/// A route and everything a check on it needs.
pub(crate) struct Route {
    pub(super) name: Arc<str>,
    /// The providers tried in order: the first that finds its credential decides.
    pub(super) providers: Vec<Arc<Provider>>,
    /// Issuer -> this route's JWT providers of that issuer, in route order.
    pub(super) issuers: HashMap<Arc<str>, Vec<Arc<Provider>>>,
    /// With `strip_authorization`: the credential headers removed upstream
    /// (`authorization` and every header this route's providers read a credential from).
    pub(super) strip: Box<[HeaderName]>,
    pub(super) allow_anonymous: bool,
    pub(super) mode: Mode,
    /// What an allow on this route mints, and the counter of its signatures.
    pub(super) mint: Option<Mint>,
    /// Every provider sees the one credential (an exchange's subject token), so the
    /// issuer pick needs no second look at the request.
    pub(super) one_credential: bool,
    /// The query parameters a login redirect leaves out of `{url}`: every provider's
    /// query sources (a token meant for another route must not be handed back either).
    login_hidden: Arc<[TokenSource]>,
    /// The config that holds this route's rules, and the route's place in it.
    config: Arc<Config>,
    at: Place,
}

/// Where a compiled route's rules are in its config.
#[derive(Clone, Copy)]
enum Place {
    Route(usize),
    Exchange(usize),
}

/// A route's `mint:` at run time.
pub(crate) struct Mint {
    pub(super) spec: MintSpec,
    /// `ward_tokens_minted_total{purpose}` of this route.
    pub(super) minted: IntCounter,
}

impl Route {
    /// The route's `require`.
    pub(super) fn rules(&self) -> Option<&Condition> {
        match self.at {
            Place::Route(at) => self.config.routes[at].require.as_ref(),
            Place::Exchange(at) => self.config.exchanges[at].require.as_ref(),
        }
    }

    /// How this route answers `reason`, when not as ward usually does: a browser (one
    /// that accepts `text/html`) without a valid credential is redirected to log in
    /// (`on_unauthenticated`); other 401 and 403 denials take the route's `deny:` shape.
    /// An outage (503) or a bad request (400) is always answered as usual.
    pub(super) fn answer(&self, reason: &DenyReason, input: &CheckInput<'_>) -> Option<Answer> {
        let Place::Route(at) = self.at else {
            return None;
        };
        let r = &self.config.routes[at];
        let unauthenticated = matches!(
            reason,
            DenyReason::MissingCredential | DenyReason::InvalidToken(_)
        );
        if unauthenticated
            && let Some(template) = &r.login_redirect
            && accepts_html(input)
        {
            return Some(Answer::Redirect(login_location(
                template,
                input,
                &self.login_hidden,
            )));
        }
        let shaped = unauthenticated || matches!(reason, DenyReason::Forbidden(_));
        r.deny.clone().filter(|_| shaped).map(Answer::Shaped)
    }

    /// `defaults.require`, for a route that did not opt out (exchanges have none).
    pub(super) fn defaults(&self) -> Option<&Condition> {
        match self.at {
            Place::Route(at) if self.config.routes[at].defaults => self.config.defaults.as_ref(),
            _ => None,
        }
    }
}

/// An `exchange:` purpose at run time: its providers as a route (no match, no mint).
pub(crate) struct Exchange {
    pub(super) route: Route,
    pub(super) grant: Grant,
    pub(super) minted: IntCounter,
}

/// A compiled config: immutable, shared by every check until the next reload.
pub(crate) struct Policy {
    pub(super) config: Arc<Config>,
    /// Picks the config's route; `routes` holds its compiled form at the same place.
    index: RouteIndex,
    pub(super) routes: Vec<Route>,
    /// Every provider, in config order.
    pub(super) providers: Vec<Arc<Provider>>,
    /// Every header ward owns, in a fixed order.
    pub(super) owned: Vec<HeaderName>,
    /// The lengths of the owned names ([`length_bit`]): most request headers are ruled
    /// out as another spelling of one by their length alone.
    pub(super) owned_lengths: u64,
    /// ward's own issuer (`signing`): its keys and mint cache.
    pub(super) issuer: Option<Arc<Issuer>>,
    /// The token exchange purposes, in config order.
    pub(super) exchanges: Vec<Exchange>,
    /// The DPoP replay cache and proof counters.
    pub(super) dpop: Arc<Dpop>,
}

impl Policy {
    /// Compiles `config` with the given key store for each provider (same order; a
    /// provider without one has no keys). An introspection provider left unchanged
    /// since `previous` keeps its client, cache and circuit breaker.
    pub(super) fn compile(
        config: Config,
        stores: Vec<Option<KeyStore>>,
        metrics: &Arc<Metrics>,
        clock: &Clock,
        previous: Option<&Policy>,
    ) -> Self {
        let config = Arc::new(config);
        let kept_claims = kept_claims(&config);
        let cache = TokenCache::new(
            config.token_cache_max_entries,
            metrics.token_cache_evictions.clone(),
        );
        // Proofs seen before a reload stay seen after it (unless the bound changed).
        let dpop = previous
            .map(|p| p.dpop.clone())
            .filter(|d| d.replay.max_entries() == config.dpop_replay_max_entries)
            .unwrap_or_else(|| Dpop::new(config.dpop_replay_max_entries, metrics));
        let mut stores = stores.into_iter();
        let sources: Vec<Vec<TokenSource>> = config.providers.iter().map(|p| p.sources()).collect();
        let providers: Vec<Arc<Provider>> = config
            .providers
            .iter()
            .zip(&sources)
            .enumerate()
            .map(|(i, (p, own))| {
                let keys = stores.next().flatten();
                let provider = Provider {
                    jwt: matches!(p.kind, ProviderKind::Jwt(_)).then(|| {
                        let decrypts =
                            matches!(&p.kind, ProviderKind::Jwt(j) if j.decryption.is_some());
                        JwtVerifier::new(
                            keys,
                            cache.clone(),
                            metrics.token_cache(&p.name),
                            kept_claims.clone(),
                            dpop.clone(),
                            decrypts.then(|| metrics.token_decryptions(&p.name)),
                        )
                    }),
                    introspector: introspector_for(
                        p,
                        config.token_cache_max_entries,
                        metrics,
                        &kept_claims,
                        clock,
                        previous.and_then(|prev| prev.introspector(&p.name)),
                    ),
                    settings: p.clone(),
                    sources: own.clone(),
                    reads: sources.iter().position(|s| s == own).unwrap_or(i),
                };
                Arc::new(provider)
            })
            .collect();
        let login_hidden: Arc<[TokenSource]> = sources
            .iter()
            .flatten()
            .filter(|s| matches!(s, TokenSource::Query(_)))
            .cloned()
            .collect();
        let owned = config.owned_headers();
        let minted = |purpose: &str| metrics.tokens_minted.with_label_values(&[purpose]);
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(at, r)| {
                let mut route = compile_route(
                    &config,
                    Place::Route(at),
                    &r.name,
                    &r.providers,
                    &providers,
                    &owned,
                );
                route.allow_anonymous = r.allow_anonymous;
                if r.login_redirect.is_some() {
                    route.login_hidden = login_hidden.clone();
                }
                route.mode = r.mode;
                route.mint = r.mint.as_ref().map(|spec| Mint {
                    spec: spec.clone(),
                    minted: minted(&spec.grant.purpose),
                });
                route
            })
            .collect();
        let exchanges = config
            .exchanges
            .iter()
            .enumerate()
            .map(|(at, x)| {
                let mut route = compile_route(
                    &config,
                    Place::Exchange(at),
                    &x.grant.purpose,
                    &x.providers,
                    &providers,
                    &[],
                );
                route.one_credential = true;
                // An exchange hands out a token, not the request: nothing to strip.
                route.strip = Box::default();
                Exchange {
                    route,
                    grant: x.grant.clone(),
                    minted: minted(&x.grant.purpose),
                }
            })
            .collect();
        let issuer = config.signing.as_ref().map(|s| {
            Arc::new(Issuer::new(
                s.issuer.clone(),
                s.keys.clone(),
                config.token_cache_max_entries,
            ))
        });
        Self {
            dpop,
            issuer,
            exchanges,
            owned_lengths: owned
                .iter()
                .fold(0, |bits, h| bits | length_bit(h.as_str().len())),
            index: RouteIndex::new(&config.routes),
            routes,
            providers,
            owned,
            config,
        }
    }

    /// The first route that matches, with its path parameters.
    #[inline]
    pub(super) fn select<'a>(
        &self,
        input: &CheckInput<'_>,
        segments: &Segments<'a>,
    ) -> Option<(&Route, Params<'a>)> {
        let (at, _, params) = self.index.select(&self.config.routes, input, segments)?;
        Some((self.routes.get(at)?, params))
    }

    /// The introspection client of the provider named `name`.
    fn introspector(&self, name: &str) -> Option<&Introspector> {
        self.providers
            .iter()
            .find(|p| *p.settings.name == *name)
            .and_then(|p| p.introspector.as_deref())
    }

    /// Each introspection provider's name and the answers its cache holds.
    pub(super) async fn introspection_cache_entries(&self) -> Vec<(&str, u64)> {
        let mut out = Vec::new();
        for p in &self.providers {
            if let Some(i) = &p.introspector {
                out.push((&*p.settings.name, i.cache_entries().await));
            }
        }
        out
    }

    /// The names of the JWT providers that hold no key (yet), in config order.
    pub(super) fn without_keys(&self) -> impl Iterator<Item = &str> {
        self.providers
            .iter()
            .filter(|p| !p.ready())
            .map(|p| &*p.settings.name)
    }
}

fn compile_route(
    config: &Arc<Config>,
    at: Place,
    name: &Arc<str>,
    wanted: &[usize],
    all: &[Arc<Provider>],
    owned: &[HeaderName],
) -> Route {
    let providers: Vec<Arc<Provider>> =
        wanted.iter().filter_map(|&i| all.get(i).cloned()).collect();
    let mut issuers: HashMap<Arc<str>, Vec<Arc<Provider>>> = HashMap::new();
    for p in &providers {
        if let ProviderKind::Jwt(j) = &p.settings.kind {
            issuers.entry(j.issuer.clone()).or_default().push(p.clone());
        }
    }
    let strip = if config.strip_authorization {
        strip_list(&providers, owned)
    } else {
        Box::default()
    };
    Route {
        name: name.clone(),
        issuers,
        strip,
        allow_anonymous: false,
        mode: Mode::Enforce,
        mint: None,
        one_credential: false,
        providers,
        login_hidden: Arc::from([]),
        config: config.clone(),
        at,
    }
}

/// `authorization` and every other header the providers read a credential from, unless
/// ward owns it (and so removes it anyway).
fn strip_list(providers: &[Arc<Provider>], owned: &[HeaderName]) -> Box<[HeaderName]> {
    let authorization = HeaderName::parse("authorization").expect("static name");
    let mut names = vec![authorization];
    for source in providers.iter().flat_map(|p| &p.sources) {
        if let TokenSource::Header { name, .. } = source
            && !names.contains(name)
            && !owned.contains(name)
        {
            names.push(name.clone());
        }
    }
    names.into_boxed_slice()
}

/// The top-level claims some `claim:` condition reads or a minted token copies: the
/// only ones a cached identity keeps.
fn kept_claims(config: &Config) -> Arc<[Arc<str>]> {
    let mut names = Vec::new();
    let rules = config.routes.iter().filter_map(|r| r.require.as_ref());
    let exchange_rules = config.exchanges.iter().filter_map(|x| x.require.as_ref());
    for c in rules.chain(exchange_rules).chain(config.defaults.as_ref()) {
        c.claim_names(&mut names);
    }
    let grants = config
        .routes
        .iter()
        .filter_map(|r| r.mint.as_ref().map(|m| &m.grant));
    for g in grants.chain(config.exchanges.iter().map(|x| &x.grant)) {
        // `sub`, `roles` and `scope` are the identity's own, not copied claims.
        let copied = g
            .claims
            .iter()
            .filter(|c| !matches!(&***c, "sub" | "roles" | "scope"));
        names.extend(copied.map(|c| c.to_string()));
    }
    names.sort();
    names.dedup();
    names.into_iter().map(Into::into).collect()
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
pub(super) fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// Whether the request is a browser's: its `accept` names `text/html`.
fn accepts_html(input: &CheckInput<'_>) -> bool {
    input
        .headers
        .get_all("accept")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
        })
}

/// The login URL for this request: `{url}` replaced by the request's own URL
/// (percent-encoded), built from its scheme (`x-forwarded-proto`, else the scheme the
/// edge reports, else https), the host and the path with its query, less the query
/// parameters a credential is read from (`sources`): the `location` goes back to the
/// client and on to the login page, and a token must not travel with it.
fn login_location(template: &str, input: &CheckInput<'_>, sources: &[TokenSource]) -> String {
    let scheme = input
        .headers
        .get_str("x-forwarded-proto")
        .unwrap_or(input.scheme);
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        "https"
    };
    let path = crate::authn::token::without_query_credentials(input.path, sources);
    let url = format!("{scheme}://{}{path}", input.host);
    // RFC 3986 unreserved characters stay as they are; everything else is encoded.
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(&url, COMPONENT).to_string();
    template.replace("{url}", &encoded)
}
