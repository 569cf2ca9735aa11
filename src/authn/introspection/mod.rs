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
//!
//! The parts: [`client`] (the exchange, and whose fault a failure is), `answer` (judging
//! an answer), `cache` (verdicts and how long they count) and `breaker`. Token time,
//! cache lifetimes and the breaker's waits are read from the provider's
//! [`Clock`](crate::clock::Clock).

mod answer;
mod breaker;
mod cache;
pub mod client;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::authn::claims::{ClaimPath, NameClaims};
use crate::authn::http::HttpError;
use crate::authn::token::TokenSource;
use crate::authn::{TokenError, Unavailable};
use crate::header::HeaderName;

pub use client::Introspector;

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
    pub roles_claim: NameClaims,
    pub scopes_claim: NameClaims,
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
    Unavailable(Unavailable),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
    }
}
