//! What a running ward holds, for the operator: `GET /status` on the admin listener
//! (JSON, or HTML for a browser) and `ward status` in a terminal (SPEC §5).
//!
//! [`Status`] is the document, schema version [`SCHEMA`]: the config's source, hash and
//! last reload; per provider its kind, key source, the keys held since when, the last
//! fetch and the next refresh, the introspection breaker; per route its match and
//! providers; the cache sizes. It is built from ward's own state (the engine snapshot,
//! the key stores, the introspection clients), read without taking any lock a check
//! takes, and holds no secret: no key material, no client secret, no API key or its
//! hash, no token. URLs lose their userinfo and query; header and query matches show
//! their names, not the values they compare.
//!
//! [`Status::html`] renders the page (every value escaped, no script), [`Status::text`]
//! what `ward status` prints (control characters escaped).

mod collect;
mod html;
mod log;
mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use collect::collect;
pub(crate) use log::{StatusLog, env_values, render_errors, scrub};

/// The version of the [`Status`] document. Fields may be added within a version; a
/// field is removed or changes meaning only with a new version.
pub const SCHEMA: u32 = 1;

/// What a running ward holds (`GET /status`). Times are unix seconds of ward's clock;
/// `generated_at` is "now" for every age in the document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// [`SCHEMA`].
    pub schema: u32,
    /// ward's version.
    pub version: String,
    /// When the document was made.
    pub generated_at: u64,
    /// The running config and its last reload.
    pub config: ConfigStatus,
    /// Every provider, in config order.
    pub providers: Vec<ProviderStatus>,
    /// Every route, in the order they are tried.
    pub routes: Vec<RouteStatus>,
    /// The caches shared by the providers.
    pub caches: CacheStatus,
}

/// The running config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// The file it was loaded from; null for a config given in process.
    pub source: Option<String>,
    /// `Config::hash`: replicas with the same hash decide alike.
    pub hash: String,
    /// When the running config was loaded (at start or by the last successful reload).
    pub loaded_at: u64,
    /// The last reload attempt since start; null when there was none.
    pub last_reload: Option<ReloadStatus>,
}

/// One reload attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When it ended.
    pub at: u64,
    /// `success` or `failure`.
    pub result: String,
    /// Why it failed, as `ward validate` prints it (file, line, path), one error a line;
    /// `${VAR}` values are shown as `${VAR}`.
    pub error: Option<String>,
}

/// One provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// Its name in the config.
    pub name: String,
    /// `jwt`, `introspection`, `api_key` or `mesh`.
    pub kind: String,
    /// The issuer tokens must name (JWT and introspection providers that set one).
    pub issuer: Option<String>,
    /// Where a JWT provider's keys come from.
    pub key_source: Option<KeySourceStatus>,
    /// The keys a JWT provider holds now (fetched, static or fallback).
    pub keys: Vec<KeyStatus>,
    /// Whether checks verify with the `jwks_fallback_file` keys (no fetch succeeded yet).
    pub using_fallback: bool,
    /// The last fetch of remote keys; null for static keys or before the first fetch.
    pub last_fetch: Option<FetchStatus>,
    /// When a fetch of remote keys last succeeded.
    pub last_success_at: Option<u64>,
    /// When the background refresh fetches next.
    pub next_refresh_at: Option<u64>,
    /// An introspection provider's endpoint, breaker and cache.
    pub introspection: Option<IntrospectionStatus>,
    /// How many keys an `api_key` provider accepts (never the keys or their hashes).
    pub api_keys: Option<usize>,
    /// The SPIFFE trust domains a `mesh` provider accepts.
    pub trust_domains: Option<Vec<String>>,
}

/// Where a JWT provider's keys come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySourceStatus {
    /// `jwks_uri`, `discovery`, `jwks_file` or `inline`.
    pub kind: String,
    /// The URL (without userinfo or query) or the file; null for inline keys.
    pub location: Option<String>,
    /// The `jwks_uri` that discovery found, without userinfo or query.
    pub discovered_jwks_uri: Option<String>,
    /// The `jwks_fallback_file`, if configured.
    pub fallback_file: Option<String>,
}

/// One key held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyStatus {
    /// Its `kid`; null for a key without one.
    pub kid: Option<String>,
    /// `RSA`, `EC P-256`, `EC P-384`, `EC P-521`, `OKP Ed25519` or `oct`.
    pub family: String,
    /// The provider's algorithms this key verifies (its own `alg` when it names one).
    pub algorithms: Vec<String>,
    /// Since when ward holds this key (its content: a kid whose key changed is new).
    pub held_since: Option<u64>,
    /// `generated_at - held_since`.
    pub age_seconds: Option<u64>,
}

/// One fetch of remote keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchStatus {
    /// When it ended.
    pub at: u64,
    /// `success` or `failure`.
    pub result: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// An introspection provider at run time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntrospectionStatus {
    /// The endpoint (or, with `discovery: true`, the discovery URL), without userinfo or
    /// query.
    pub endpoint: String,
    /// The endpoint discovery found.
    pub discovered_endpoint: Option<String>,
    /// `closed` (calls go through), `open` (no calls until `open_until`) or
    /// `half_open` (the next call is a probe).
    pub breaker: String,
    /// Calls that failed in a row.
    pub consecutive_failures: u32,
    /// While open: when the next probe may go.
    pub open_until: Option<u64>,
    /// The last failed call: when, and why.
    pub last_failure: Option<FetchStatus>,
    /// Answers cached (pending cache writes applied before counting).
    pub cache_entries: u64,
}

/// One route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteStatus {
    /// Its name.
    pub name: String,
    /// `enforce` or `shadow`.
    pub mode: String,
    /// What requests it takes.
    #[serde(rename = "match")]
    pub matcher: MatchStatus,
    /// The providers it tries, in order.
    pub providers: Vec<String>,
    /// Whether a request without a credential is let through.
    pub allow_anonymous: bool,
}

/// A route's `match`. Absent parts match every request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MatchStatus {
    /// `path` (a pattern) or `path_prefix`, as written.
    pub path: Option<String>,
    /// `pattern` or `prefix`.
    pub path_kind: Option<String>,
    /// Methods, upper case.
    pub methods: Option<Vec<String>>,
    /// Host patterns.
    pub hosts: Option<Vec<String>>,
    /// Envoy `context_extensions` that must be present with these values.
    pub context: BTreeMap<String, String>,
    /// Request headers that must match (names and how; values are not shown: a match
    /// may compare a shared secret).
    pub headers: Vec<ValueMatchStatus>,
    /// Query parameters that must match (as headers).
    pub query: Vec<ValueMatchStatus>,
}

impl MatchStatus {
    /// Each part of the match in words (`path_prefix /api`, `methods GET, POST`, …; `every
    /// request` when it has none), every value passed through `show` (escaped for where
    /// it is printed), lists joined with `sep`.
    pub(crate) fn describe(&self, show: impl Fn(&str) -> String, sep: &str) -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        if let (Some(p), Some(k)) = (&self.path, &self.path_kind) {
            let key = if k == "prefix" { "path_prefix" } else { "path" };
            parts.push(format!("{key} {}", show(p)));
        }
        if let Some(ms) = &self.methods {
            parts.push(format!("methods {}", show(&ms.join(sep))));
        }
        if let Some(hs) = &self.hosts {
            parts.push(format!("hosts {}", show(&hs.join(sep))));
        }
        for (k, v) in &self.context {
            parts.push(format!("context {}={}", show(k), show(v)));
        }
        for (kind, list) in [("header", &self.headers), ("query", &self.query)] {
            for v in list {
                parts.push(format!("{kind} {} ({})", show(&v.name), show(&v.test)));
            }
        }
        if parts.is_empty() {
            parts.push("every request".into());
        }
        parts
    }
}

/// One header or query parameter a route matches on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueMatchStatus {
    /// Its name.
    pub name: String,
    /// `exact`, `regex`, `present` or `absent`.
    pub test: String,
}

/// The shared caches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheStatus {
    /// Verified tokens (shared by every JWT provider).
    pub token_cache_entries: u64,
    /// Introspection answers, every provider together.
    pub introspection_cache_entries: u64,
    /// DPoP proofs remembered against replay.
    pub dpop_replay_entries: u64,
}

impl Status {
    /// The document as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// The page a browser gets: tables, inline CSS, no script; every value escaped.
    pub fn html(&self) -> String {
        html::render(self)
    }

    /// What `ward status` prints: a few lines per provider and route, control
    /// characters escaped (an IdP's message cannot drive the terminal).
    pub fn text(&self) -> String {
        text::render(self)
    }
}

/// A URL as `/status` shows it: without userinfo, query or fragment (where credentials
/// and tokens travel). One that does not parse is not shown.
pub fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

/// `2026-12-03T05:13:54Z` for unix seconds `t` (UTC; proleptic Gregorian calendar).
pub fn rfc3339(t: u64) -> String {
    let days = i64::try_from(t / 86_400).unwrap_or(i64::MAX / 2);
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A duration in seconds, short: `42s`, `5m 3s`, `2h 10m`, `3d 4h`.
pub fn short_duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(2_000_000_000), "2033-05-18T03:33:20Z");
        assert_eq!(rfc3339(1_796_276_034), "2026-12-03T05:33:54Z");
    }

    #[test]
    fn public_url_drops_userinfo_query_and_fragment() {
        assert_eq!(
            public_url("https://user:pw@idp.example.com:8443/certs?key=abc#x"),
            "https://idp.example.com:8443/certs"
        );
        assert_eq!(public_url("not a url"), "(not a URL)");
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(59), "59s");
        assert_eq!(short_duration(61), "1m 1s");
        assert_eq!(short_duration(7260), "2h 1m");
        assert_eq!(short_duration(90_000), "1d 1h");
    }
}
