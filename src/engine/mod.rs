//! The decision engine: one request in, one [`Decision`] out. No network types here;
//! the gRPC server, `ward check` and the tower layer all call [`Engine::check`].
//!
//! A config is compiled once into a [`Policy`] (`policy.rs`) whose routes own what a
//! check on them needs. A check then runs its phases top to bottom, each once: normalise
//! the path, select the route, find the credential and verify it (`authenticate.rs`,
//! `jwt.rs`: the token cache is consulted inside the verification), evaluate the route's
//! rules, decide. Shadow mode is applied once, at the end; the header mutations of an
//! allow are in `mutations.rs`.

mod authenticate;
pub mod exchange;
mod jwt;
mod mutations;
mod policy;
mod verifier;

use std::sync::Arc;

use crate::authn::Identity;
use crate::authn::jwks::{KeySources, KeyStore};
use crate::authz::condition::EvalCtx;
use crate::authz::path;
use crate::authz::route::Mode;
use crate::clock::Clock;
use crate::config::Config;
use crate::decision::{Decision, DenyReason, Verdict};
use crate::metrics::Metrics;
use crate::request::CheckInput;

use crate::issuer::mint::MintError;
use authenticate::{Authenticated, Refused, authenticate};
use policy::{Mint, Policy, Route};

pub struct Engine {
    policy: Policy,
    metrics: Arc<Metrics>,
    /// The time tokens, caches and key refreshes are judged by.
    clock: Clock,
}

impl Engine {
    /// Builds an engine on the system clock; remote key sources are fetched on demand
    /// only (no background refresh). The server uses [`Engine::with_key_stores`] with a
    /// shared [`KeySources`] instead. Should the key stores not be available, the error
    /// is logged and JWT providers answer as providers without keys.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(config, metrics, Clock::system())
    }

    /// [`Engine::new`] on `clock`.
    pub fn with_clock(config: Config, metrics: Arc<Metrics>, clock: Clock) -> Self {
        let sources = KeySources::with_clock(metrics.clone(), false, clock.clone());
        let stores = sources
            .stores_for(config.providers.iter().map(|p| p.keys_wanted()))
            .unwrap_or_else(|error| {
                tracing::error!(%error, "no key stores: JWT providers have no keys");
                Vec::new()
            });
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
        Self {
            policy: Policy::compile(config, stores, &metrics, &clock, None),
            metrics,
            clock,
        }
    }

    /// The engine for a reloaded `config`, which replaces this one. An introspection
    /// provider left unchanged keeps this engine's cache and circuit breaker, as JWT
    /// providers keep their keys through `stores`.
    pub fn reloaded(&self, config: Config, stores: Vec<Option<KeyStore>>) -> Self {
        Self {
            policy: Policy::compile(
                config,
                stores,
                &self.metrics,
                &self.clock,
                Some(&self.policy),
            ),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The clock this engine judges time by.
    #[cfg(any(test, feature = "internals"))]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.policy.config
    }

    /// The metrics this engine counts in (for tests and benches; the server reads them
    /// from its state).
    #[cfg(any(test, feature = "internals"))]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// How many verified tokens the cache holds (shared by every JWT provider).
    pub fn token_cache_entries(&self) -> usize {
        self.policy
            .providers
            .iter()
            .find_map(|p| p.jwt.as_ref())
            .map_or(0, |j| j.cache.entries())
    }

    /// Every JWT provider holds at least one key.
    pub fn ready(&self) -> bool {
        self.without_keys().next().is_none()
    }

    /// Each introspection provider's name and the answers its cache holds.
    pub async fn introspection_cache_entries(&self) -> Vec<(&str, u64)> {
        self.policy.introspection_cache_entries().await
    }

    /// The names of the JWT providers that hold no key (yet), in config order.
    pub fn without_keys(&self) -> impl Iterator<Item = &str> {
        self.policy.without_keys()
    }

    /// Decides one request.
    pub async fn check(&self, input: &CheckInput<'_>) -> Decision {
        let (mut d, waited) = crate::observe::idp_wait::scope(self.decide(input)).await;
        d.waited_on_idp = waited;
        d
    }

    async fn decide(&self, input: &CheckInput<'_>) -> Decision {
        let segments = match path::normalize(input.path) {
            Ok(s) => s,
            Err(e) => return Decision::deny(e.into()),
        };
        let Some((route, params)) = self.policy.select(input, &segments) else {
            return Decision::deny(DenyReason::NoRoute);
        };
        // A route without providers takes every request as anonymous.
        let (identity, by) = if route.providers.is_empty() {
            (None, None)
        } else {
            match authenticate(route, input, self.clock.unix_secs()).await {
                Ok(Authenticated { identity, by }) => (identity, by),
                Err(Refused { reason, provider }) => {
                    let mut d = self.refuse(route, input, reason, None);
                    d.provider = provider;
                    return d;
                }
            }
        };
        let (defaults, rules) = (route.defaults(), route.rules());
        if defaults.is_some() || rules.is_some() {
            let anon = Identity::default();
            // A mesh identity read from `source.certificate` is also the peer principal
            // that `source_principals` conditions see.
            let with_peer;
            let rule_input = match (identity.as_deref(), by) {
                (Some(id), Some(by)) if input.source_principal.is_empty() && by.is_mesh() => {
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
            // Every route's rules first (`defaults.require`), then the route's own.
            for rules in defaults.into_iter().chain(rules) {
                if let Err(f) = rules.eval(&ctx) {
                    return self.refuse(route, input, DenyReason::Forbidden(f), identity);
                }
            }
        }
        let minted = match (&route.mint, identity.as_deref()) {
            (Some(mint), Some(id)) => match self.mint(mint, id, &route.name) {
                Ok(token) => token,
                Err(reason) => return self.refuse(route, input, reason, identity),
            },
            _ => None,
        };
        self.allow(route, input, identity, None, minted.as_deref())
    }

    /// The token an allow on `route` carries upstream: none when the identity names no
    /// subject or is about to expire (the header is then removed, as every owned header
    /// without a value); a signing failure denies (fail closed).
    fn mint(
        &self,
        mint: &Mint,
        id: &Identity,
        route: &str,
    ) -> Result<Option<Arc<str>>, DenyReason> {
        let Some(issuer) = &self.policy.issuer else {
            return Ok(None);
        };
        match issuer.mint(
            &mint.spec.grant,
            id,
            self.clock.unix_secs(),
            true,
            &mint.minted,
        ) {
            Ok(m) => Ok(Some(m.token)),
            Err(MintError::Sign(e)) => {
                tracing::error!(route, error = %e, "purpose token not signed: request denied");
                Err(DenyReason::AuthnUnavailable("token signing failed"))
            }
            Err(e) => {
                tracing::debug!(route, reason = %e, "no purpose token minted");
                Ok(None)
            }
        }
    }

    fn allow(
        &self,
        route: &Route,
        input: &CheckInput<'_>,
        identity: Option<Arc<Identity>>,
        shadow: Option<DenyReason>,
        minted: Option<&str>,
    ) -> Decision {
        let mutations = self
            .policy
            .mutations(route, input, identity.as_deref(), minted);
        Decision {
            route: Some(route.name.clone()),
            verdict: Verdict::Allow(mutations),
            provider: identity.as_ref().map(|id| id.provider.clone()),
            identity,
            shadow_deny: shadow,
            answer: None,
            waited_on_idp: false,
        }
    }

    /// A denial, unless the route is in shadow mode: then the request goes through, as
    /// the verified identity when the rules failed, as anonymous when the credential did.
    fn refuse(
        &self,
        route: &Route,
        input: &CheckInput<'_>,
        reason: DenyReason,
        identity: Option<Arc<Identity>>,
    ) -> Decision {
        if route.mode == Mode::Shadow {
            let keep = matches!(reason, DenyReason::Forbidden(_));
            // Nothing is minted: a purpose token says the rules passed.
            return self.allow(route, input, identity.filter(|_| keep), Some(reason), None);
        }
        let answer = route.answer(&reason, input);
        Decision {
            route: Some(route.name.clone()),
            verdict: Verdict::Deny(reason),
            provider: identity.as_ref().map(|id| id.provider.clone()),
            identity,
            shadow_deny: None,
            answer,
            waited_on_idp: false,
        }
    }
}

/// What `/status` reads of one provider: its settings and what it holds at run time.
pub(crate) struct ProviderView<'a> {
    pub(crate) settings: &'a crate::authn::ProviderSettings,
    /// A JWT provider's keys.
    pub(crate) keys: Option<&'a KeyStore>,
    /// An introspection provider's client, cache and breaker.
    pub(crate) introspector: Option<&'a crate::authn::introspection::Introspector>,
}

impl Engine {
    /// Every provider, in config order, with what it holds (read by `/status`; nothing
    /// here is locked).
    pub(crate) fn provider_views(&self) -> impl Iterator<Item = ProviderView<'_>> {
        self.policy.providers.iter().map(|p| ProviderView {
            settings: &p.settings,
            keys: p.jwt.as_ref().and_then(|j| j.keys.as_ref()),
            introspector: p.introspector.as_deref(),
        })
    }

    /// How many DPoP proofs the replay cache remembers.
    pub(crate) fn dpop_replay_entries(&self) -> u64 {
        self.policy.dpop.replay.held()
    }
}

#[cfg(test)]
mod tests;
