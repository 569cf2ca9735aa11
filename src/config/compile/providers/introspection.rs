//! An `introspection` provider (RFC 7662): endpoint, client credentials, audiences,
//! caching and the circuit breaker.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{
    DEFAULT_MAX_TOKEN_BYTES, RawClaimMap, RawTokenSource, check_url, claim_headers, claim_map,
    claim_path, token_from,
};
use crate::authn::claims::ClaimPath;
use crate::authn::introspection::{
    self, Audiences, AuthMethod, BreakerSettings, Endpoint, IntrospectionSettings, Secret,
};
use crate::config::{Dur, Errors, Sources};

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

pub(super) fn compile_introspection(
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
