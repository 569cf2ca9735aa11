//! Raw config structs and their compilation into the immutable [`Config`].
//!
//! Each section, provider and route is deserialized on its own, so the errors of every
//! element are reported together; then cross-references (route -> provider) and semantic
//! rules are checked. Nothing here runs per request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Dur, Errors, Mode, Sources};
use crate::authn::alg::Alg;
use crate::authn::apikey::{self, ApiKey, ApiKeySettings};
use crate::authn::claims::ClaimPath;
use crate::authn::introspection::{
    self, Audiences, AuthMethod, BreakerSettings, Endpoint, IntrospectionSettings, Secret,
};
use crate::authn::jwks::{KeySet, KeySource};
use crate::authn::jwt::JwtSettings;
use crate::authn::mesh::{self, MeshSettings};
use crate::authn::token::TokenSource;
use crate::authn::{ProviderKind, ProviderSettings};
use crate::authz::condition;
use crate::authz::route::{HostPattern, PathMatch, Route, RouteMatch};
use crate::header::{self, HeaderName};

/// The compiled, immutable configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub identity_headers: IdentityHeaders,
    pub strip_authorization: bool,
    pub token_cache_max_entries: u64,
    pub providers: Vec<Arc<ProviderSettings>>,
    pub routes: Vec<Route>,
    pub logging: LoggingConfig,
}

/// How decisions are logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggingConfig {
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
    Plain,
    None,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub shutdown_grace: Duration,
    /// How often the config file is checked for changes; `None` (`0s`) turns it off.
    pub watch_interval: Option<Duration>,
    /// The bounds on the work one gRPC request or connection may make ward do.
    pub limits: RequestLimits,
}

/// What a client of the gRPC port may hold (SPEC §7, "Bounded work per request"). Read
/// when the listener starts; a reload does not change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// A request must arrive whole (its message and the end of its stream) within this.
    pub request_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Bytes of requests being received, over all connections, that ward holds at once.
    pub max_inflight_request_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            max_concurrent_streams: 1024,
            max_inflight_request_bytes: 128 * 1024 * 1024,
        }
    }
}

/// The smallest `max_inflight_request_bytes` accepted: a cap below one ordinary request
/// would refuse every check (and is most likely a value meant in KiB or MiB).
const MIN_INFLIGHT_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

/// The headers ward owns: set from a verified identity, removed otherwise.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub subject: HeaderName,
    pub issuer: HeaderName,
    pub provider: HeaderName,
    pub roles: HeaderName,
    pub scopes: HeaderName,
}

// === raw shapes ===

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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    grpc_addr: Option<String>,
    admin_addr: Option<String>,
    tls: Option<RawTls>,
    shutdown_grace: Option<Dur>,
    watch_interval: Option<Dur>,
    request_timeout: Option<Dur>,
    max_concurrent_streams: Option<u32>,
    max_inflight_request_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
    client_ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentityHeaders {
    subject: Option<String>,
    issuer: Option<String>,
    provider: Option<String>,
    roles: Option<String>,
    scopes: Option<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    jwt: Option<Value>,
    api_key: Option<Value>,
    introspection: Option<Value>,
    mesh: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: String,
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    jwks_file: Option<String>,
    jwks: Option<Value>,
    discovery: Option<bool>,
    algorithms: Option<Vec<String>>,
    leeway: Option<Dur>,
    refresh_interval: Option<Dur>,
    min_refetch_interval: Option<Dur>,
    timeout: Option<Dur>,
    ca_file: Option<String>,
    max_token_bytes: Option<usize>,
    claims: Option<RawClaimMap>,
    token_from: Option<Vec<RawTokenSource>>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimMap {
    roles: Option<Value>,
    scopes: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenSource {
    header: Option<String>,
    prefix: Option<String>,
    cookie: Option<String>,
    query: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    header: Option<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
    /// A YAML or JSON list of keys (a mounted Kubernetes Secret).
    keys_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntrospection {
    endpoint: Option<String>,
    discovery: Option<bool>,
    client_id: String,
    client_secret: String,
    auth_method: Option<RawAuthMethod>,
    issuer: Option<String>,
    /// A list, or `any`.
    audiences: Option<Value>,
    leeway: Option<Dur>,
    /// Claim paths, in order (or one).
    subject: Option<Value>,
    cache_ttl: Option<Dur>,
    negative_cache_ttl: Option<Dur>,
    timeout: Option<Dur>,
    ca_file: Option<String>,
    max_token_bytes: Option<usize>,
    claims: Option<RawClaimMap>,
    token_from: Option<Vec<RawTokenSource>>,
    headers: Option<BTreeMap<String, String>>,
    circuit_breaker: Option<RawBreaker>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failures: Option<u32>,
    cool_down: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMesh {
    trust_domains: Vec<String>,
    from_certificate: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    sha256: String,
    subject: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(rename = "match")]
    matcher: RawMatch,
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default)]
    providers: Vec<String>,
    require: Option<Value>,
    #[serde(default)]
    mode: Mode,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    path: Option<String>,
    path_prefix: Option<String>,
    methods: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    context: Option<BTreeMap<String, String>>,
}

// === compile ===

const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

const TOP_KEYS: &[&str] = &[
    "server",
    "identity_headers",
    "strip_authorization",
    "token_cache",
    "logging",
    "providers",
    "routes",
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
            errors.add(
                &k,
                format!(
                    "unknown field `{k}`, expected one of {}",
                    TOP_KEYS
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
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

    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    if top.routes.is_empty() {
        errors.add(
            "routes",
            "no routes: every request would be denied with no_route",
        );
    }
    for (i, raw) in top.routes.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        if let Some(r) = compile_route(raw, &path, &names, errors) {
            if !route_names.insert(r.name.to_string()) {
                errors.add(
                    &format!("{path}.name"),
                    format!("duplicate route name `{}`", r.name),
                );
            }
            routes.push(r);
        }
    }

    let logging: RawLogging = if top.logging.is_null() {
        RawLogging::default()
    } else {
        errors.parse("logging", top.logging).unwrap_or_default()
    };
    let allowed_sample = logging.allowed_sample.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&allowed_sample) {
        errors.add("logging.allowed_sample", "a fraction from 0.0 to 1.0");
    }

    let max_entries = token_cache.max_entries.unwrap_or(100_000);
    Some(Config {
        server: server?,
        identity_headers: identity_headers?,
        strip_authorization: top.strip_authorization,
        token_cache_max_entries: max_entries,
        providers,
        routes,
        logging: LoggingConfig {
            subject: logging.subject,
            allowed_sample,
        },
    })
}

fn compile_server(v: Value, base: &Path, errors: &mut Errors) -> Option<ServerConfig> {
    let raw: RawServer = if v.is_null() {
        RawServer::default()
    } else {
        errors.parse("server", v)?
    };
    let limits = compile_limits(&raw, errors);
    let addr = |errors: &mut Errors, field: &str, text: Option<String>, default: &str| {
        let text = text.unwrap_or_else(|| default.to_string());
        text.parse::<SocketAddr>()
            .map_err(|_| {
                errors.add(
                    &format!("server.{field}"),
                    format!("`{text}` is not a socket address like 0.0.0.0:9001"),
                )
            })
            .ok()
    };
    let grpc_addr = addr(errors, "grpc_addr", raw.grpc_addr, "0.0.0.0:9001");
    let admin_addr = addr(errors, "admin_addr", raw.admin_addr, "0.0.0.0:9002");
    let tls = raw.tls.map(|t| TlsConfig {
        cert_file: base.join(t.cert_file),
        key_file: base.join(t.key_file),
        client_ca_file: t.client_ca_file.map(|c| base.join(c)),
    });
    Some(ServerConfig {
        grpc_addr: grpc_addr?,
        admin_addr: admin_addr?,
        tls,
        shutdown_grace: raw.shutdown_grace.map_or(Duration::from_secs(10), |d| d.0),
        watch_interval: Some(raw.watch_interval.map_or(Duration::from_secs(2), |d| d.0))
            .filter(|d| !d.is_zero()),
        limits: limits?,
    })
}

fn compile_limits(raw: &RawServer, errors: &mut Errors) -> Option<RequestLimits> {
    let default = RequestLimits::default();
    let before = errors.count();
    let request_timeout = raw.request_timeout.map_or(default.request_timeout, |d| d.0);
    if request_timeout.is_zero() {
        errors.add("server.request_timeout", "must be greater than 0s");
    }
    let max_concurrent_streams = raw
        .max_concurrent_streams
        .unwrap_or(default.max_concurrent_streams);
    if max_concurrent_streams == 0 {
        errors.add("server.max_concurrent_streams", "must be greater than 0");
    }
    let max_inflight_request_bytes = raw
        .max_inflight_request_bytes
        .unwrap_or(default.max_inflight_request_bytes);
    if max_inflight_request_bytes < MIN_INFLIGHT_REQUEST_BYTES {
        errors.add(
            "server.max_inflight_request_bytes",
            format!(
                "must be at least {MIN_INFLIGHT_REQUEST_BYTES} (64 KiB); the value is in bytes"
            ),
        );
    }
    (errors.count() == before).then_some(RequestLimits {
        request_timeout,
        max_concurrent_streams,
        max_inflight_request_bytes,
    })
}

fn compile_identity_headers(v: Value, errors: &mut Errors) -> Option<IdentityHeaders> {
    let raw: RawIdentityHeaders = if v.is_null() {
        RawIdentityHeaders::default()
    } else {
        errors.parse("identity_headers", v)?
    };
    let mut name = |field: &str, val: Option<String>, default: &str| {
        owned_header(
            errors,
            &format!("identity_headers.{field}"),
            val.as_deref().unwrap_or(default),
        )
    };
    let subject = name("subject", raw.subject, "x-auth-subject");
    let issuer = name("issuer", raw.issuer, "x-auth-issuer");
    let provider = name("provider", raw.provider, "x-auth-provider");
    let roles = name("roles", raw.roles, "x-auth-roles");
    let scopes = name("scopes", raw.scopes, "x-auth-scopes");
    Some(IdentityHeaders {
        subject: subject?,
        issuer: issuer?,
        provider: provider?,
        roles: roles?,
        scopes: scopes?,
    })
}

/// A header ward sets upstream: a valid name that Envoy will let an ext_authz server set.
fn owned_header(errors: &mut Errors, path: &str, name: &str) -> Option<HeaderName> {
    match HeaderName::parse(name) {
        Ok(h) if header::is_reserved(h.as_str()) => {
            errors.add(
                path,
                format!(
                    "`{name}` cannot be an identity header: Envoy or the credential itself owns it"
                ),
            );
            None
        }
        Ok(h) => Some(h),
        Err(e) => {
            errors.add(path, e);
            None
        }
    }
}

/// Every header name ward owns must be distinct, or a removal could cancel a set.
fn check_owned_headers(
    ih: &IdentityHeaders,
    providers: &[Arc<ProviderSettings>],
    errors: &mut Errors,
) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    let fixed = [
        ("identity_headers.subject", &ih.subject),
        ("identity_headers.issuer", &ih.issuer),
        ("identity_headers.provider", &ih.provider),
        ("identity_headers.roles", &ih.roles),
        ("identity_headers.scopes", &ih.scopes),
    ];
    for (path, h) in fixed {
        if let Some(prev) = seen.insert(h.as_str(), path.to_string()) {
            errors.add(path, format!("`{h}` is already used by {prev}"));
        }
    }
    for (i, p) in providers.iter().enumerate() {
        let kind = match &p.kind {
            ProviderKind::Jwt(_) => "jwt",
            ProviderKind::Introspection(_) => "introspection",
            ProviderKind::ApiKey(_) | ProviderKind::Mesh(_) => continue,
        };
        for (_, h) in p.claim_headers() {
            if let Some(prev) = seen.get(h.as_str()) {
                if !prev.starts_with("providers") {
                    errors.add(
                        &format!("providers[{i}].{kind}.headers"),
                        format!("`{h}` is already used by {prev}"),
                    );
                }
            } else {
                seen.insert(h.as_str(), format!("providers[{i}].{kind}.headers"));
            }
        }
    }
}

fn compile_provider(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<ProviderSettings> {
    let raw: RawProvider = errors.parse(path, v)?;
    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        errors.add(
            &format!("{path}.name"),
            "a provider name is letters, digits, `-`, `_` or `.` (it is a metric label)",
        );
    }
    let kinds = [
        raw.jwt.is_some(),
        raw.api_key.is_some(),
        raw.introspection.is_some(),
        raw.mesh.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        errors.add(
            path,
            "a provider has exactly one of `jwt`, `api_key`, `introspection`, `mesh`",
        );
        return None;
    }
    let name: Arc<str> = raw.name.into();
    let kind = if let Some(jwt) = raw.jwt {
        ProviderKind::Jwt(Box::new(compile_jwt(
            jwt,
            &format!("{path}.jwt"),
            base,
            sources,
            errors,
        )?))
    } else if let Some(ak) = raw.api_key {
        ProviderKind::ApiKey(compile_api_key(
            ak,
            &format!("{path}.api_key"),
            base,
            sources,
            errors,
        )?)
    } else if let Some(i) = raw.introspection {
        ProviderKind::Introspection(Box::new(compile_introspection(
            i,
            &format!("{path}.introspection"),
            base,
            sources,
            errors,
        )?))
    } else {
        let m = raw.mesh?;
        ProviderKind::Mesh(compile_mesh(m, &format!("{path}.mesh"), errors)?)
    };
    Some(ProviderSettings { name, kind })
}

fn compile_jwt(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<JwtSettings> {
    let raw: RawJwt = errors.parse(path, v)?;
    let before = errors.count();

    if raw.issuer.is_empty() {
        errors.add(&format!("{path}.issuer"), "the issuer must not be empty");
    }
    if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
        errors.add(
            &format!("{path}.audiences"),
            "list at least one audience: a token is accepted only when its `aud` names one",
        );
    }

    let given = [
        raw.jwks_uri.is_some(),
        raw.jwks_file.is_some(),
        raw.jwks.is_some(),
        raw.discovery == Some(true),
    ];
    let key_source = match given.iter().filter(|s| **s).count() {
        1 => {
            if let Some(file) = raw.jwks_file {
                let full = base.join(&file);
                match sources.read_to_string(&full) {
                    Ok(text) => keyset_from_text(&text, &format!("{path}.jwks_file"), errors)
                        .map(KeySource::Static),
                    Err(e) => {
                        errors.add(
                            &format!("{path}.jwks_file"),
                            format!("cannot read {}: {e}", full.display()),
                        );
                        None
                    }
                }
            } else if let Some(jwks) = raw.jwks {
                keyset_from_value(&jwks, &format!("{path}.jwks"), errors).map(KeySource::Static)
            } else if let Some(uri) = raw.jwks_uri {
                check_url(&uri, &format!("{path}.jwks_uri"), errors).map(KeySource::Remote)
            } else {
                let issuer = raw.issuer.trim_end_matches('/');
                check_url(&raw.issuer, &format!("{path}.issuer"), errors).map(|_| {
                    KeySource::Discovery(format!("{issuer}/.well-known/openid-configuration"))
                })
            }
        }
        n => {
            errors.add(
                path,
                format!(
                    "exactly one key source is needed (jwks_uri, jwks_file, jwks or discovery: true); found {n}"
                ),
            );
            None
        }
    };

    let algorithms = match raw.algorithms {
        None => Alg::ASYMMETRIC.to_vec(),
        Some(list) if list.is_empty() => {
            errors.add(&format!("{path}.algorithms"), "list at least one algorithm");
            Vec::new()
        }
        Some(list) => {
            let mut algs = Vec::new();
            for (i, a) in list.iter().enumerate() {
                match Alg::parse(a) {
                    Some(alg) => algs.push(alg),
                    None => errors.add(
                        &format!("{path}.algorithms[{i}]"),
                        format!(
                            "`{a}` is not an accepted algorithm (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512; `none` is never accepted)"
                        ),
                    ),
                }
            }
            algs
        }
    };

    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if max_token_bytes == 0 {
        errors.add(&format!("{path}.max_token_bytes"), "must be greater than 0");
    }

    let (roles_claim, scopes_claim) = claim_map(raw.claims, path, errors);
    let token_from = token_from(raw.token_from, path, errors);
    let claim_headers = claim_headers(raw.headers, path, errors);

    let timeout = raw.timeout.map_or(Duration::from_secs(5), |d| d.0);
    if timeout.is_zero() {
        errors.add(&format!("{path}.timeout"), "must be greater than 0");
    }
    let refresh_interval = raw
        .refresh_interval
        .map_or(Duration::from_secs(600), |d| d.0);
    if refresh_interval < Duration::from_secs(1) {
        errors.add(&format!("{path}.refresh_interval"), "must be at least 1s");
    }
    // It bounds the fetches that unknown kids and `max-age=0` can cause: never zero.
    let min_refetch_interval = raw
        .min_refetch_interval
        .map_or(Duration::from_secs(30), |d| d.0);
    if min_refetch_interval < Duration::from_secs(1) {
        errors.add(
            &format!("{path}.min_refetch_interval"),
            "must be at least 1s (it bounds how often unknown kids make ward fetch keys)",
        );
    }

    let ca_file = raw.ca_file.map(|c| base.join(c));
    if let Some(ca) = &ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            errors.add(
                &format!("{path}.ca_file"),
                format!("cannot read {}: {e}", ca.display()),
            );
        }
        if matches!(key_source, Some(KeySource::Static(_))) {
            errors.add(
                &format!("{path}.ca_file"),
                "`ca_file` applies to jwks_uri and discovery only",
            );
        }
    }

    if errors.count() != before {
        return None;
    }
    Some(JwtSettings {
        issuer: raw.issuer.into(),
        audiences: raw.audiences,
        key_source: key_source?,
        algorithms,
        leeway: raw.leeway.map_or(Duration::from_secs(30), |d| d.0),
        refresh_interval,
        min_refetch_interval,
        timeout,
        ca_file,
        max_token_bytes,
        roles_claim,
        scopes_claim,
        token_from,
        claim_headers,
    })
}

/// `claims: {roles, scopes}`: where roles and scopes are read (defaults `roles`, `scope`).
fn claim_map(raw: Option<RawClaimMap>, path: &str, errors: &mut Errors) -> (ClaimPath, ClaimPath) {
    let (roles, scopes) = match raw {
        Some(c) => (
            c.roles
                .map(|v| claim_path(&v, &format!("{path}.claims.roles"), errors)),
            c.scopes
                .map(|v| claim_path(&v, &format!("{path}.claims.scopes"), errors)),
        ),
        None => (None, None),
    };
    (
        roles.unwrap_or_else(|| ClaimPath::parse("roles").expect("static path")),
        scopes.unwrap_or_else(|| ClaimPath::parse("scope").expect("static path")),
    )
}

/// `token_from`: where the bearer token is read (default `Authorization: Bearer`).
fn token_from(
    raw: Option<Vec<RawTokenSource>>,
    path: &str,
    errors: &mut Errors,
) -> Vec<TokenSource> {
    match raw {
        None => vec![TokenSource::default_bearer()],
        Some(list) if list.is_empty() => {
            errors.add(
                &format!("{path}.token_from"),
                "list at least one place to read the token from",
            );
            Vec::new()
        }
        Some(list) => list
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| token_source(s, &format!("{path}.token_from[{i}]"), errors))
            .collect(),
    }
}

/// `headers: {claim: header}`: claims passed upstream.
fn claim_headers(
    raw: Option<BTreeMap<String, String>>,
    path: &str,
    errors: &mut Errors,
) -> Vec<(ClaimPath, HeaderName)> {
    let mut out = Vec::new();
    for (claim, header) in raw.unwrap_or_default() {
        let p = format!("{path}.headers.{claim}");
        let cp = claim_path(&Value::String(claim.clone()), &p, errors);
        if let Some(h) = owned_header(errors, &p, &header) {
            out.push((cp, h));
        }
    }
    out
}

fn compile_introspection(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<IntrospectionSettings> {
    let raw: RawIntrospection = errors.parse(path, v)?;
    let before = errors.count();

    let endpoint = match (raw.endpoint, raw.discovery == Some(true)) {
        (Some(url), false) => {
            check_url(&url, &format!("{path}.endpoint"), errors).map(Endpoint::Url)
        }
        (None, true) => match raw.issuer.as_deref() {
            None => {
                errors.add(
                    &format!("{path}.issuer"),
                    "`discovery: true` finds the endpoint from the issuer's OpenID configuration: set `issuer`",
                );
                None
            }
            Some(issuer) => check_url(issuer, &format!("{path}.issuer"), errors).map(|_| {
                let base = issuer.trim_end_matches('/');
                Endpoint::Discovery(format!("{base}/.well-known/openid-configuration"))
            }),
        },
        _ => {
            errors.add(path, "give exactly one of `endpoint` and `discovery: true`");
            None
        }
    };
    if raw.client_id.is_empty() {
        errors.add(&format!("{path}.client_id"), "must not be empty");
    }
    if raw.client_secret.is_empty() {
        // Never echo the value: it is (or should have been) a secret.
        errors.add(
            &format!("{path}.client_secret"),
            "must not be empty (set it from the environment: `${WARD_INTROSPECTION_SECRET}`)",
        );
    }
    if raw.issuer.as_deref() == Some("") {
        errors.add(
            &format!("{path}.issuer"),
            "must not be empty: leave it out to accept any `iss`",
        );
    }
    let audiences = introspection_audiences(raw.audiences, &format!("{path}.audiences"), errors);
    let subject = subject_claims(raw.subject, &format!("{path}.subject"), errors);
    let positive = |d: Option<Dur>, default: Duration, key: &str, errors: &mut Errors| {
        let d = d.map_or(default, |d| d.0);
        if d.is_zero() {
            errors.add(&format!("{path}.{key}"), "must be greater than 0");
        }
        d
    };
    let timeout = positive(raw.timeout, Duration::from_secs(2), "timeout", errors);
    let cache_ttl = raw.cache_ttl.map_or(Duration::from_secs(60), |d| d.0);
    let negative_cache_ttl = raw
        .negative_cache_ttl
        .map_or(Duration::from_secs(10), |d| d.0);
    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if max_token_bytes == 0 {
        errors.add(&format!("{path}.max_token_bytes"), "must be greater than 0");
    }
    let breaker = match raw.circuit_breaker {
        None => BreakerSettings {
            failures: 5,
            cool_down: introspection::MAX_COOL_DOWN,
        },
        Some(b) => {
            let failures = b.failures.unwrap_or(5);
            if failures == 0 {
                errors.add(
                    &format!("{path}.circuit_breaker.failures"),
                    "must be at least 1",
                );
            }
            let cool_down = positive(
                b.cool_down,
                introspection::MAX_COOL_DOWN,
                "circuit_breaker.cool_down",
                errors,
            );
            if cool_down > introspection::MAX_COOL_DOWN {
                errors.add(
                    &format!("{path}.circuit_breaker.cool_down"),
                    "must be at most 5s: an open breaker probes the endpoint at least every 5s, so a recovered endpoint serves again within 5s",
                );
            }
            BreakerSettings {
                failures,
                cool_down,
            }
        }
    };
    let ca_file = raw.ca_file.map(|c| base.join(c));
    // Read here so that a rotated bundle reloads the config (its HTTP client is rebuilt).
    if let Some(ca) = &ca_file
        && let Err(e) = sources.read(ca)
    {
        errors.add(
            &format!("{path}.ca_file"),
            format!("cannot read {}: {e}", ca.display()),
        );
    }
    let (roles_claim, scopes_claim) = claim_map(raw.claims, path, errors);
    let token_from = token_from(raw.token_from, path, errors);
    let claim_headers = claim_headers(raw.headers, path, errors);

    if errors.count() != before {
        return None;
    }
    Some(IntrospectionSettings {
        endpoint: endpoint?,
        client_id: raw.client_id,
        client_secret: Secret::new(raw.client_secret),
        auth_method: match raw.auth_method {
            None | Some(RawAuthMethod::ClientSecretBasic) => AuthMethod::ClientSecretBasic,
            Some(RawAuthMethod::ClientSecretPost) => AuthMethod::ClientSecretPost,
        },
        issuer: raw.issuer.map(Into::into),
        audiences: audiences?,
        leeway: raw.leeway.map_or(Duration::from_secs(30), |d| d.0),
        subject,
        cache_ttl,
        negative_cache_ttl,
        timeout,
        ca_file,
        max_token_bytes,
        roles_claim,
        scopes_claim,
        token_from,
        claim_headers,
        breaker,
    })
}

/// `audiences` of an introspection provider: required, a list or `any`.
fn introspection_audiences(v: Option<Value>, path: &str, errors: &mut Errors) -> Option<Audiences> {
    let list: Option<Vec<String>> = match &v {
        Some(Value::String(any)) if any == "any" => return Some(Audiences::Any),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    };
    match list {
        Some(l) if l.iter().any(String::is_empty) => {
            errors.add(path, "an audience must not be empty");
            None
        }
        Some(l) => Some(Audiences::OneOf(l)),
        None => {
            errors.add(
                path,
                "list the audiences a token must name (`audiences: [orders-api]`), or write `audiences: any` for an authorization server that returns no `aud`",
            );
            None
        }
    }
}

/// `subject`: the claims that give the subject, in order (default `[sub]`).
fn subject_claims(v: Option<Value>, path: &str, errors: &mut Errors) -> Vec<ClaimPath> {
    match v {
        None => vec![ClaimPath::parse("sub").expect("static path")],
        Some(one @ Value::String(_)) => vec![claim_path(&one, path, errors)],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(_) => claim_path(item, &format!("{path}[{i}]"), errors),
                _ => {
                    errors.add(&format!("{path}[{i}]"), "a claim name, such as `client_id`");
                    ClaimPath::empty()
                }
            })
            .collect(),
        Some(_) => {
            errors.add(path, "list at least one claim, such as `[sub, client_id]`");
            Vec::new()
        }
    }
}

fn compile_mesh(v: Value, path: &str, errors: &mut Errors) -> Option<MeshSettings> {
    let raw: RawMesh = errors.parse(path, v)?;
    let before = errors.count();
    if raw.trust_domains.is_empty() {
        errors.add(
            &format!("{path}.trust_domains"),
            "list at least one trust domain, such as `cluster.local`",
        );
    }
    for (i, td) in raw.trust_domains.iter().enumerate() {
        if !mesh::valid_trust_domain(td) {
            errors.add(
                &format!("{path}.trust_domains[{i}]"),
                format!(
                    "`{td}` is not a SPIFFE trust domain: lower-case letters, digits, `.`, `-`, `_`, without `spiffe://` (e.g. `cluster.local`)"
                ),
            );
        }
    }
    if errors.count() != before {
        return None;
    }
    Some(MeshSettings {
        trust_domains: raw.trust_domains,
        from_certificate: raw.from_certificate.unwrap_or(true),
    })
}

fn check_url(url: &str, path: &str, errors: &mut Errors) -> Option<String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Some(url.to_string())
    } else {
        errors.add(path, format!("`{url}` is not an http(s) URL"));
        None
    }
}

fn keyset_from_text(text: &str, path: &str, errors: &mut Errors) -> Option<Arc<KeySet>> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => keyset_from_value(&v, path, errors),
        Err(e) => {
            errors.add(path, format!("the JWKS is not JSON: {e}"));
            None
        }
    }
}

fn keyset_from_value(v: &Value, path: &str, errors: &mut Errors) -> Option<Arc<KeySet>> {
    match KeySet::from_jwks(v) {
        Ok((set, _skipped)) if !set.is_empty() => Some(Arc::new(set)),
        Ok((_, skipped)) => {
            let why = skipped
                .first()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            errors.add(path, format!("the JWKS holds no usable signing key{why}"));
            None
        }
        Err(e) => {
            errors.add(path, e.to_string());
            None
        }
    }
}

fn claim_path(v: &Value, path: &str, errors: &mut Errors) -> ClaimPath {
    let parsed = match v {
        Value::String(s) => ClaimPath::parse(s),
        Value::Array(items) => {
            let segs: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            segs.ok_or_else(|| "a claim path list holds strings".to_string())
                .and_then(ClaimPath::from_segments)
        }
        _ => Err("a claim path is a dotted string or a list of names".to_string()),
    };
    parsed.unwrap_or_else(|e| {
        errors.add(path, e);
        ClaimPath::empty()
    })
}

fn token_source(raw: RawTokenSource, path: &str, errors: &mut Errors) -> Option<TokenSource> {
    let set = [
        raw.header.is_some(),
        raw.cookie.is_some(),
        raw.query.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        errors.add(
            path,
            "a token source has exactly one of `header`, `cookie`, `query`",
        );
        return None;
    }
    if raw.prefix.is_some() && raw.header.is_none() {
        errors.add(
            &format!("{path}.prefix"),
            "`prefix` goes with `header` only",
        );
        return None;
    }
    if let Some(h) = raw.header {
        match HeaderName::parse(&h) {
            Ok(name) => Some(TokenSource::Header {
                name,
                prefix: raw.prefix,
            }),
            Err(e) => {
                errors.add(&format!("{path}.header"), e);
                None
            }
        }
    } else if let Some(c) = raw.cookie {
        non_empty(c, &format!("{path}.cookie"), errors).map(TokenSource::Cookie)
    } else {
        non_empty(raw.query?, &format!("{path}.query"), errors).map(TokenSource::Query)
    }
}

fn non_empty(s: String, path: &str, errors: &mut Errors) -> Option<String> {
    if s.is_empty() {
        errors.add(path, "must not be empty");
        None
    } else {
        Some(s)
    }
}

fn compile_api_key(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<ApiKeySettings> {
    let raw: RawApiKey = errors.parse(path, v)?;
    let before = errors.count();
    let header = match HeaderName::parse(raw.header.as_deref().unwrap_or("x-api-key")) {
        Ok(h) => Some(h),
        Err(e) => {
            errors.add(&format!("{path}.header"), e);
            None
        }
    };
    // Each key with the config path its errors are reported at.
    let mut keys: Vec<(ApiKey, String)> = Vec::new();
    for (i, k) in raw.keys.into_iter().enumerate() {
        let at = format!("{path}.keys[{i}]");
        for (field, e) in apikey::identity_errors(&k.subject, &k.roles) {
            errors.add(&format!("{at}.{field}"), e);
        }
        match ApiKey::new(&k.sha256, k.subject, k.roles) {
            Ok(key) => keys.push((key, at)),
            Err(e) => errors.add(&format!("{at}.sha256"), e),
        }
    }
    if let Some(file) = &raw.keys_file {
        let at = format!("{path}.keys_file");
        let full = base.join(file);
        match sources.read_to_string(&full) {
            Ok(text) => match keys_from_file(&text) {
                Ok(list) => keys.extend(list.into_iter().map(|(k, i)| (k, format!("{at}[{i}]")))),
                Err(msgs) => {
                    for m in msgs {
                        errors.add(&at, format!("{}: {m}", full.display()));
                    }
                }
            },
            Err(e) => errors.add(&at, format!("cannot read {}: {e}", full.display())),
        }
    }
    if keys.is_empty() && errors.count() == before {
        errors.add(
            &format!("{path}.keys"),
            "list at least one key (in `keys` or `keys_file`)",
        );
    }
    for (i, (k, at)) in keys.iter().enumerate() {
        if let Some((_, first)) = keys[..i].iter().find(|(o, _)| o.same_key(k)) {
            errors.add(at, format!("the same key is already listed at {first}"));
        }
    }
    if errors.count() != before {
        return None;
    }
    Some(ApiKeySettings {
        header: header?,
        keys: keys.into_iter().map(|(k, _)| k).collect(),
    })
}

/// Keys from a `keys_file`: a YAML (or JSON) list of `{sha256, subject, roles}`. Errors
/// name the file's own line and element.
fn keys_from_file(text: &str) -> Result<Vec<(ApiKey, usize)>, Vec<String>> {
    let (value, lines) = super::yaml::parse(text)
        .map_err(|e| vec![format!("line {}: invalid YAML: {}", e.line, e.message)])?;
    let Value::Array(items) = value else {
        return Err(vec![
            "expected a list of keys like `- {sha256: <hex>, subject: <name>, roles: [..]}`".into(),
        ]);
    };
    let mut keys = Vec::new();
    let mut errs = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let here = |field: &str| {
            let p = if field.is_empty() {
                format!("[{i}]")
            } else {
                format!("[{i}].{field}")
            };
            match lines.line_of(&p) {
                Some(l) => format!("line {l}: {p}"),
                None => p,
            }
        };
        match serde_path_to_error::deserialize::<_, RawKey>(item) {
            Err(e) => {
                let inner = e.path().to_string();
                let field = if inner == "." { String::new() } else { inner };
                errs.push(format!("{}: {}", here(&field), e.into_inner()));
            }
            Ok(k) => {
                let bad = apikey::identity_errors(&k.subject, &k.roles);
                for (field, e) in &bad {
                    errs.push(format!("{}: {e}", here(field)));
                }
                match ApiKey::new(&k.sha256, k.subject, k.roles) {
                    Ok(key) if bad.is_empty() => keys.push((key, i)),
                    Ok(_) => {}
                    Err(e) => errs.push(format!("{}: {e}", here("sha256"))),
                }
            }
        }
    }
    if errs.is_empty() { Ok(keys) } else { Err(errs) }
}

fn compile_route(
    v: Value,
    path: &str,
    names: &HashMap<String, usize>,
    errors: &mut Errors,
) -> Option<Route> {
    let raw: RawRoute = errors.parse(path, v)?;
    let before = errors.count();
    let m = raw.matcher;
    let mpath = format!("{path}.match");

    let path_match = match (m.path, m.path_prefix) {
        (Some(_), Some(_)) => {
            errors.add(&mpath, "use `path` or `path_prefix`, not both");
            None
        }
        (Some(p), None) => match PathMatch::pattern(&p) {
            Ok(pm) => Some(pm),
            Err(e) => {
                errors.add(&format!("{mpath}.path"), e);
                None
            }
        },
        (None, Some(p)) => match PathMatch::prefix(&p) {
            Ok(pm) => Some(pm),
            Err(e) => {
                errors.add(&format!("{mpath}.path_prefix"), e);
                None
            }
        },
        (None, None) => None,
    };
    let methods = m
        .methods
        .map(|ms| normalize_methods(ms, &format!("{mpath}.methods"), errors));
    let hosts = m.hosts.map(|hs| {
        hs.iter()
            .enumerate()
            .filter_map(|(i, h)| {
                HostPattern::parse(h)
                    .map_err(|e| errors.add(&format!("{mpath}.hosts[{i}]"), e))
                    .ok()
            })
            .collect::<Vec<_>>()
    });

    let mut route_providers = Vec::new();
    for (i, name) in raw.providers.iter().enumerate() {
        match names.get(name) {
            Some(idx) => route_providers.push(*idx),
            None => errors.add(
                &format!("{path}.providers[{i}]"),
                format!("no provider is named `{name}`"),
            ),
        }
    }

    let params = path_match
        .as_ref()
        .map(PathMatch::params)
        .unwrap_or_default();
    let require = raw.require.map(|c| {
        let ctx = condition::CompileCtx { params: &params };
        condition::compile(&c, &format!("{path}.require"), &ctx, errors)
    });

    if raw.providers.is_empty() && require.is_none() && !raw.allow_anonymous {
        errors.add(
            path,
            "this route names no providers and no `require`, so it would allow every request: set `allow_anonymous: true` to say so",
        );
    }

    if errors.count() != before {
        return None;
    }
    let name: Arc<str> = raw.name.into();
    Some(Route {
        name,
        matcher: RouteMatch {
            path: path_match,
            methods,
            hosts,
            context: m.context.unwrap_or_default().into_iter().collect(),
        },
        providers: route_providers,
        allow_anonymous: raw.allow_anonymous,
        require: require.flatten(),
        mode: raw.mode,
    })
}

pub(crate) fn normalize_methods(ms: Vec<String>, path: &str, errors: &mut Errors) -> Vec<String> {
    if ms.is_empty() {
        errors.add(path, "list at least one method");
    }
    ms.into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) {
                Some(m.to_ascii_uppercase())
            } else {
                errors.add(
                    &format!("{path}[{i}]"),
                    format!("`{m}` is not an HTTP method"),
                );
                None
            }
        })
        .collect()
}
