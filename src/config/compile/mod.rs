//! The compilation of raw config into the immutable [`Config`], one module per section.
//!
//! Each section, provider and route is deserialized on its own, so the errors of every
//! element are reported together; then cross-references (route -> provider) and semantic
//! rules are checked. Nothing here runs per request.
//!
//! This module walks the top level; `server`, `headers`, `providers`, `routes` and
//! `conditions` (a route's `require`) compile their sections.

mod conditions;
mod headers;
mod issuing;
mod providers;
mod routes;
mod server;
mod telemetry;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Errors, Sources};
use crate::authn::ProviderSettings;
use crate::authz::condition::Condition;
use crate::authz::route::Route;
use crate::issuer::{ExchangeSpec, Signing};
use headers::{check_owned_headers, compile_identity_headers};
use providers::compile_provider;
use routes::compile_route;
use server::compile_server;

pub use headers::IdentityHeaders;
pub use server::{RequestLimits, ServerConfig, TlsConfig};
pub use telemetry::TelemetryConfig;

/// A compiled, immutable configuration: every matcher, rule and header name already
/// built and checked, so nothing in it can fail per request.
///
/// Made by [`load_file`](crate::config::load_file) or
/// [`load_str`](crate::config::load_str); run by [`Ward::new`](crate::Ward::new), or
/// read back from a running policy with [`Ward::config`](crate::Ward::config).
#[derive(Debug)]
pub struct Config {
    /// The `server` section. Not API: public only because ward's own tests read its
    /// request limits; users read it through the accessors below.
    #[doc(hidden)]
    pub server: ServerConfig,
    pub(crate) identity_headers: IdentityHeaders,
    pub(crate) strip_authorization: bool,
    pub(crate) token_cache_max_entries: u64,
    /// `dpop_replay_cache.max_entries`: DPoP proofs remembered against replay.
    pub(crate) dpop_replay_max_entries: u64,
    pub(crate) providers: Vec<Arc<ProviderSettings>>,
    pub(crate) routes: Vec<Route>,
    pub(crate) logging: LoggingConfig,
    /// ward's own issuer and keys (`signing`), when it mints or exchanges tokens.
    pub(crate) signing: Option<Signing>,
    /// The token exchange purposes (`exchange`).
    pub(crate) exchanges: Vec<ExchangeSpec>,
    /// `defaults.require`: checked on every route that does not opt out, before the
    /// route's own `require`.
    pub(crate) defaults: Option<Condition>,
    /// A digest of what the config means (see [`Config::hash`]).
    pub(crate) hash: String,
    /// `telemetry`: where traces go; `None`: no traces.
    pub(crate) telemetry: Option<TelemetryConfig>,
}

impl Config {
    /// The names of the providers, in config order.
    pub fn provider_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.providers.iter().map(|p| &*p.name)
    }

    /// The names of the routes, in config order: the order they are tried in (the first
    /// that matches a request decides it).
    pub fn route_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.routes.iter().map(|r| &*r.name)
    }

    /// The headers ward owns: the identity headers, every provider's claim headers and
    /// every route's minted-token header. Client-sent copies never reach an upstream.
    pub fn owned_headers(&self) -> Vec<crate::header::HeaderName> {
        let ih = &self.identity_headers;
        let mut owned = vec![
            ih.subject.clone(),
            ih.issuer.clone(),
            ih.provider.clone(),
            ih.roles.clone(),
            ih.scopes.clone(),
        ];
        let claim_headers = self
            .providers
            .iter()
            .flat_map(|p| p.claim_headers().iter().map(|(_, h)| h));
        let mint_headers = self
            .routes
            .iter()
            .filter_map(|r| r.mint.as_ref().map(|m| &m.header));
        for h in claim_headers.chain(mint_headers) {
            if !owned.contains(h) {
                owned.push(h.clone());
            }
        }
        owned
    }

    /// The request headers ward reads to decide: where providers find credentials
    /// (`cookie` for a cookie), `x-request-id`, and the headers routes match on and
    /// conditions compare. Lower case, each once.
    pub fn headers_read(&self) -> Vec<String> {
        use crate::authn::token::TokenSource;
        let mut out: Vec<String> = Vec::new();
        let mut add = |h: &str| {
            let h = h.to_ascii_lowercase();
            if !out.contains(&h) {
                out.push(h);
            }
        };
        for p in &self.providers {
            for s in p.sources() {
                match s {
                    TokenSource::Header { name, .. } => add(name.as_str()),
                    TokenSource::Cookie(_) => add("cookie"),
                    TokenSource::Query(_) => {}
                }
            }
        }
        add("x-request-id");
        // A DPoP proof, and the scheme of the URL it names (SPEC §10).
        if self
            .providers
            .iter()
            .any(|p| matches!(p.kind, crate::authn::ProviderKind::Jwt(_)))
        {
            add("dpop");
            add("x-forwarded-proto");
        }
        for r in &self.routes {
            for (name, _) in &r.matcher.headers {
                add(name);
            }
            // A login redirect goes to browsers only, and names the request's scheme.
            if r.login_redirect.is_some() {
                add("accept");
                add("x-forwarded-proto");
            }
        }
        let mut compared = Vec::new();
        let rules = self.routes.iter().filter_map(|r| r.require.as_ref());
        let exchange_rules = self.exchanges.iter().filter_map(|x| x.require.as_ref());
        for c in rules.chain(exchange_rules).chain(self.defaults.as_ref()) {
            c.header_names(&mut compared);
        }
        for h in compared {
            add(&h);
        }
        out
    }

    /// A short digest (16 hex digits) of what the config means: its value with `${VAR}`s
    /// expanded (comments and layout left out) and the content of every file it reads.
    /// Replicas with the same hash decide alike; `ward_config_info{hash}` exports it.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Each route's name with the names of the providers it lists.
    pub(crate) fn route_providers(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.routes.iter().map(|r| {
            let names = r
                .providers
                .iter()
                .filter_map(|&i| self.providers.get(i))
                .map(|p| &*p.name)
                .collect();
            (&*r.name, names)
        })
    }

    /// Where the gRPC listener binds (`server.grpc_addr`).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.server.grpc_addr
    }

    /// Where the admin HTTP listener binds (`server.admin_addr`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.server.admin_addr
    }

    /// Where the plain-HTTP authorization listener binds (`server.http_addr`), if the
    /// config asks for one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.server.http_addr
    }

    /// How often the config file is checked for changes (`server.watch_interval`);
    /// `None` when watching is turned off.
    pub fn watch_interval(&self) -> Option<Duration> {
        self.server.watch_interval
    }

    /// The compiled routes. Not API: for ward's own benches and fuzzers.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The compiled providers. Not API: for ward's own fuzzers.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn providers(&self) -> &[Arc<ProviderSettings>] {
        &self.providers
    }

    /// `telemetry`: where ward exports its traces (OTLP), or `None` when it exports none.
    /// Read when `ward serve` starts; a reload does not change it.
    pub fn telemetry(&self) -> Option<&TelemetryConfig> {
        self.telemetry.as_ref()
    }

    /// How decisions are logged. Not API: for ward's own benches.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn logging(&self) -> &LoggingConfig {
        &self.logging
    }
}

/// How decisions are logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggingConfig {
    /// How the subject appears in a decision log.
    pub subject: SubjectLog,
    /// The fraction of allowed decisions also logged at info (all are logged at debug).
    pub allowed_sample: f64,
}

/// How a subject appears in decision logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubjectLog {
    /// The first 16 hex digits of SHA-256(subject): correlatable, not readable.
    #[default]
    Hash,
    /// The subject as the credential gave it.
    Plain,
    /// Not logged.
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    #[serde(default)]
    server: Value,
    #[serde(default)]
    identity_headers: Value,
    #[serde(default)]
    strip_authorization: bool,
    #[serde(default)]
    token_cache: Value,
    #[serde(default)]
    logging: Value,
    #[serde(default)]
    providers: Vec<Value>,
    #[serde(default)]
    routes: Vec<Value>,
    #[serde(default)]
    signing: Value,
    #[serde(default)]
    exchange: Vec<Value>,
    #[serde(default)]
    defaults: Value,
    #[serde(default)]
    dpop_replay_cache: Value,
    #[serde(default)]
    telemetry: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    require: Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default)]
    subject: SubjectLog,
    allowed_sample: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTokenCache {
    max_entries: Option<u64>,
}

const TOP_KEYS: &[&str] = &[
    "server",
    "identity_headers",
    "strip_authorization",
    "token_cache",
    "logging",
    "providers",
    "routes",
    "signing",
    "exchange",
    "defaults",
    "dpop_replay_cache",
    "telemetry",
];

pub(super) fn compile(
    value: Value,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<Config> {
    if !value.is_object() {
        errors.add(
            "",
            "the config must be a YAML mapping with `providers` and `routes`",
        );
        return None;
    }
    // Unknown top-level keys are reported and dropped first, so one typo (`route:`)
    // does not hide every other error in the file.
    let mut value = value;
    if let Value::Object(map) = &mut value {
        let unknown: Vec<String> = map
            .keys()
            .filter(|k| !TOP_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            errors.add(&k, super::unknown::message(&k, TOP_KEYS));
            map.remove(&k);
        }
    }
    let top: RawTop = errors.parse("", value)?;

    let server = compile_server(top.server, base, errors);
    let identity_headers = compile_identity_headers(top.identity_headers, errors);
    let token_cache: RawTokenCache = if top.token_cache.is_null() {
        RawTokenCache::default()
    } else {
        errors
            .parse("token_cache", top.token_cache)
            .unwrap_or_default()
    };

    let dpop_replay: RawTokenCache = if top.dpop_replay_cache.is_null() {
        RawTokenCache::default()
    } else {
        errors
            .parse("dpop_replay_cache", top.dpop_replay_cache)
            .unwrap_or_default()
    };
    let dpop_replay_max_entries = dpop_replay.max_entries.unwrap_or(100_000);
    if dpop_replay_max_entries == 0 {
        errors.add(
            "dpop_replay_cache.max_entries",
            "must be greater than 0 (no room would refuse every DPoP proof)",
        );
    }

    let mut providers = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, raw) in top.providers.into_iter().enumerate() {
        let path = format!("providers[{i}]");
        let name = raw.get("name").and_then(Value::as_str).map(str::to_owned);
        let Some(p) = compile_provider(raw, &path, base, sources, errors) else {
            // Known, though broken: routes naming it get no second, misleading error
            // ("no provider is named"). The config is rejected anyway.
            if let Some(n) = name {
                names.entry(n).or_insert(usize::MAX);
            }
            continue;
        };
        if names.insert(p.name.to_string(), providers.len()).is_some() {
            errors.add(
                &format!("{path}.name"),
                format!("duplicate provider name `{}`", p.name),
            );
        }
        providers.push(Arc::new(p));
    }

    if let Some(ih) = &identity_headers {
        check_owned_headers(ih, &providers, errors);
    }

    let signing_given = !top.signing.is_null();
    let exchanges_given = top.exchange.len();
    let signing = if !signing_given {
        None
    } else {
        issuing::compile_signing(top.signing, base, sources, errors)
    };

    let defaults = if top.defaults.is_null() {
        None
    } else {
        let all: Vec<String> = providers.iter().map(|p| p.name.to_string()).collect();
        errors
            .parse::<RawDefaults>("defaults", top.defaults)
            .and_then(|d| {
                let ctx = conditions::CompileCtx {
                    params: &[],
                    providers: &all,
                };
                conditions::compile(&d.require, "defaults.require", &ctx, errors)
            })
    };

    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    let mut mint_paths = Vec::new();
    if top.routes.is_empty() {
        errors.add(
            "routes",
            "no routes: every request would be denied with no_route",
        );
    }
    for (i, raw) in top.routes.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        if let Some(r) = compile_route(raw, &path, &names, &providers, errors) {
            mint_paths.push(path.clone());
            if !route_names.insert(r.name.to_string()) {
                errors.add(
                    &format!("{path}.name"),
                    format!("duplicate route name `{}`", r.name),
                );
            }
            routes.push(r);
        }
    }

    let exchanges = issuing::compile_exchanges(top.exchange, &names, errors);
    let mints: Vec<_> = mint_paths
        .into_iter()
        .zip(&routes)
        .map(|(path, r)| (path, r.mint.as_ref()))
        .collect();
    issuing::check_issuing(
        signing_given,
        &mints,
        exchanges_given,
        identity_headers.as_ref(),
        &providers,
        errors,
    );

    let logging: RawLogging = if top.logging.is_null() {
        RawLogging::default()
    } else {
        errors.parse("logging", top.logging).unwrap_or_default()
    };
    let allowed_sample = logging.allowed_sample.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&allowed_sample) {
        errors.add("logging.allowed_sample", "a fraction from 0.0 to 1.0");
    }

    let telemetry = telemetry::compile_telemetry(top.telemetry, errors);

    let max_entries = token_cache.max_entries.unwrap_or(100_000);
    Some(Config {
        server: server?,
        identity_headers: identity_headers?,
        strip_authorization: top.strip_authorization,
        token_cache_max_entries: max_entries,
        dpop_replay_max_entries,
        providers,
        routes,
        logging: LoggingConfig {
            subject: logging.subject,
            allowed_sample,
        },
        signing,
        exchanges,
        defaults,
        hash: String::new(),
        telemetry,
    })
}

/// Reads the PEM key file `key_file` (relative to the config's directory `base`) that
/// `at.key_file` names and parses it with `parse`; a file that cannot be read or parsed is
/// an error at `at.key_file` naming the file.
fn read_key_file<K, E: std::fmt::Display>(
    sources: &mut Sources,
    base: &Path,
    key_file: &str,
    at: &str,
    errors: &mut Errors,
    parse: impl FnOnce(&[u8]) -> Result<K, E>,
) -> Option<K> {
    let full = base.join(key_file);
    let here = format!("{at}.key_file");
    match sources.read(&full) {
        Ok(pem) => match parse(&pem) {
            Ok(key) => Some(key),
            Err(e) => {
                errors.add(&here, format!("{}: {e}", full.display()));
                None
            }
        },
        Err(e) => {
            errors.add(&here, format!("cannot read {}: {e}", full.display()));
            None
        }
    }
}
