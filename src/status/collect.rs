//! Builds the [`Status`] document from ward's own state: one engine snapshot (an
//! `ArcSwap` load, as a check does), the key stores' and introspection clients' reports,
//! and the [`StatusLog`](super::StatusLog). Nothing a check takes is locked; nothing
//! secret is read into the document.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    CacheStatus, ConfigStatus, FetchStatus, IntrospectionStatus, KeySourceStatus, KeyStatus,
    MatchStatus, ProviderStatus, RouteStatus, SCHEMA, Status, ValueMatchStatus, public_url,
};
use crate::authn::ProviderKind;
use crate::authn::alg::Alg;
use crate::authn::introspection::Endpoint;
use crate::authn::jwks::remote::{FetchReport, Locator};
use crate::authn::jwks::{KeySet, KeySource, KeyStore};
use crate::authz::path::{HostPattern, PatSeg, PathMatch};
use crate::authz::route::{Mode, Route, ValueMatch};
use crate::engine::ProviderView;
use crate::state::AppState;

/// What `state` holds now.
pub(crate) async fn collect(state: &AppState) -> Status {
    let engine = state.engine.load();
    let now = state.key_sources.clock().unix_secs();
    let log = state.status.snapshot();
    let config = engine.config();
    let mut providers: Vec<ProviderStatus> = Vec::new();
    for v in engine.provider_views() {
        providers.push(provider(&v, &log.static_keys, now).await);
    }
    let introspection_cache_entries = providers
        .iter()
        .filter_map(|p| p.introspection.as_ref())
        .map(|i| i.cache_entries)
        .sum();
    Status {
        schema: SCHEMA,
        version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: now,
        config: ConfigStatus {
            source: log.source,
            hash: config.hash().to_string(),
            loaded_at: log.loaded_at,
            last_reload: log.last_reload,
        },
        routes: config
            .routes
            .iter()
            .map(|r| route(r, config.provider_names().collect::<Vec<_>>().as_slice()))
            .collect(),
        providers,
        caches: CacheStatus {
            token_cache_entries: engine.token_cache_entries() as u64,
            introspection_cache_entries,
            dpop_replay_entries: engine.dpop_replay_entries(),
        },
    }
}

async fn provider(
    v: &ProviderView<'_>,
    static_keys: &std::collections::HashMap<crate::authn::jwks::KeyId, u64>,
    now: u64,
) -> ProviderStatus {
    let s = v.settings;
    let mut out = ProviderStatus {
        name: s.name.to_string(),
        kind: s.kind_name().to_string(),
        issuer: None,
        key_source: None,
        keys: Vec::new(),
        using_fallback: false,
        last_fetch: None,
        last_success_at: None,
        next_refresh_at: None,
        introspection: None,
        api_keys: None,
        trust_domains: None,
    };
    match &s.kind {
        ProviderKind::Jwt(j) => {
            out.issuer = Some(j.issuer.to_string());
            let (kind, location) = match &j.key_source {
                KeySource::Static(_) => match &j.jwks_file {
                    Some(f) => ("jwks_file", Some(f.display().to_string())),
                    None => ("inline", None),
                },
                KeySource::Remote(u) => ("jwks_uri", Some(public_url(u))),
                KeySource::Discovery(u) => ("discovery", Some(public_url(u))),
            };
            let mut source = KeySourceStatus {
                kind: kind.into(),
                location,
                discovered_jwks_uri: None,
                fallback_file: j
                    .jwks_fallback_file
                    .as_ref()
                    .map(|f| f.display().to_string()),
            };
            let algorithms = &j.algorithms;
            match v.keys {
                Some(KeyStore::Static(set)) => {
                    out.keys = keys(set, algorithms, |id| static_keys.get(&id).copied(), now);
                }
                Some(KeyStore::Remote(r)) => {
                    let report: FetchReport = r.fetch_report();
                    if let Some(set) = r.held_keys() {
                        out.keys = keys(
                            &set,
                            algorithms,
                            |id| report.first_seen.get(&id).copied(),
                            now,
                        );
                    }
                    out.using_fallback = r.using_fallback();
                    out.last_fetch = report.last.map(|(at, error)| fetch(at, error));
                    out.last_success_at = report.last_success;
                    out.next_refresh_at = report.next_refresh;
                    if let Locator::Discovery { .. } = r.settings().locator {
                        source.discovered_jwks_uri = r.discovered().map(|u| public_url(&u));
                    }
                }
                None => {}
            }
            out.key_source = Some(source);
        }
        ProviderKind::Introspection(i) => {
            out.issuer = i.issuer.as_ref().map(ToString::to_string);
            if let Some(client) = v.introspector {
                let r = client.report().await;
                let breaker = match r.open_for {
                    None => "closed",
                    Some(w) if w.is_zero() => "half_open",
                    Some(_) => "open",
                };
                out.introspection = Some(IntrospectionStatus {
                    endpoint: match &r.endpoint {
                        Endpoint::Url(u) | Endpoint::Discovery(u) => public_url(u),
                    },
                    discovered_endpoint: r.discovered.as_deref().map(public_url),
                    breaker: breaker.into(),
                    consecutive_failures: r.consecutive_failures,
                    open_until: r
                        .open_for
                        .filter(|w| !w.is_zero())
                        .map(|w| now.saturating_add(w.as_secs_f64().ceil() as u64)),
                    last_failure: r.last_failure.map(|(at, e)| fetch(at, Some(e))),
                    cache_entries: r.cache_entries,
                });
            }
        }
        ProviderKind::ApiKey(a) => out.api_keys = Some(a.keys.len()),
        ProviderKind::Mesh(m) => out.trust_domains = Some(m.trust_domains.clone()),
    }
    out
}

fn fetch(at: u64, error: Option<String>) -> FetchStatus {
    FetchStatus {
        at,
        result: if error.is_none() {
            "success"
        } else {
            "failure"
        }
        .into(),
        error,
    }
}

fn keys(
    set: &Arc<KeySet>,
    algorithms: &[Alg],
    held_since: impl Fn(crate::authn::jwks::KeyId) -> Option<u64>,
    now: u64,
) -> Vec<KeyStatus> {
    set.keys()
        .map(|k| {
            let algs: Vec<String> = match k.alg {
                Some(a) => vec![a.as_str().to_string()],
                None => algorithms
                    .iter()
                    .filter(|a| k.kind.allows(**a))
                    .map(|a| a.as_str().to_string())
                    .collect(),
            };
            let since = held_since(k.id());
            KeyStatus {
                kid: k.kid.clone(),
                family: k.kind.label().to_string(),
                algorithms: algs,
                held_since: since,
                age_seconds: since.map(|s| now.saturating_sub(s)),
            }
        })
        .collect()
}

fn route(r: &Route, provider_names: &[&str]) -> RouteStatus {
    let m = &r.matcher;
    let (path, path_kind) = match &m.path {
        Some(PathMatch::Pattern(segs)) => (
            Some(format!(
                "/{}",
                segs.iter()
                    .map(|s| match s {
                        PatSeg::Lit(l) => l.clone(),
                        PatSeg::Param(n) => format!("{{{n}}}"),
                        PatSeg::One => "*".into(),
                        PatSeg::Rest => "**".into(),
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            )),
            Some("pattern".to_string()),
        ),
        Some(PathMatch::Prefix(segs)) => (
            Some(format!("/{}", segs.join("/"))),
            Some("prefix".to_string()),
        ),
        None => (None, None),
    };
    let values = |list: &[(String, ValueMatch)]| {
        list.iter()
            .map(|(name, test)| ValueMatchStatus {
                name: name.clone(),
                test: match test {
                    ValueMatch::Exact(_) => "exact",
                    ValueMatch::Regex(_) => "regex",
                    ValueMatch::Present(true) => "present",
                    ValueMatch::Present(false) => "absent",
                }
                .into(),
            })
            .collect()
    };
    RouteStatus {
        name: r.name.to_string(),
        mode: match r.mode {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
        .into(),
        matcher: MatchStatus {
            path,
            path_kind,
            methods: m.methods.clone(),
            hosts: m.hosts.as_ref().map(|hs| {
                hs.iter()
                    .map(|h| match h {
                        HostPattern::Exact(h) => h.clone(),
                        HostPattern::Suffix(s) => format!("*{s}"),
                    })
                    .collect()
            }),
            context: m.context.iter().cloned().collect::<BTreeMap<_, _>>(),
            headers: values(&m.headers),
            query: values(&m.query),
        },
        providers: r
            .providers
            .iter()
            .filter_map(|&i| provider_names.get(i).map(|n| n.to_string()))
            .collect(),
        allow_anonymous: r.allow_anonymous,
    }
}
