//! The config most gRPC `Check` suites run against, and the tokens it accepts: `corp`
//! trusts a key of every family (from a `jwks_file`); `rs-only`, `rs-hs` and `p384-only`
//! each hold a single key inline, for algorithm confusion. Routes cover anonymous,
//! optional, role- and scope-guarded paths and a `context_extensions` route.

#![allow(dead_code)]

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use serde_json::{Value, json};

use crate::common::{KeyRing, TestKey, Ward, code, denial, describe, jwks_of, now};

pub const ISS: &str = "https://idp.test";

/// Every header ward owns under the test config: the five identity headers and the one
/// configured claim header.
pub const OWNED: [&str; 6] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-provider",
    "x-auth-roles",
    "x-auth-scopes",
    "x-auth-email",
];

/// The config most tests run against. `corp` accepts every family (keys in a jwks_file);
/// `rs-only`, `rs-hs` and `p384-only` hold a single key inline, for algorithm confusion.
pub fn config(keys: &KeyRing, extra_top: &str) -> String {
    let inline = |k: &TestKey| k.jwks().to_string();
    format!(
        r#"
{extra_top}
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_file: keys/corp.json
      algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
      max_token_bytes: 4096
      claims: {{ roles: roles, scopes: scope }}
      headers: {{ email: x-auth-email }}
  - name: rs-only
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {rsa}
      algorithms: [RS256]
  - name: rs-hs
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {rsa}
      algorithms: [RS256, HS256]
  - name: p384-only
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {p384}
      algorithms: [ES256, ES384]
routes:
  - name: internal
    match: {{ context: {{ ward_route: internal }} }}
    require: {{ source_principals: ["spiffe://cluster.local/ns/billing/sa/*"] }}
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
  - name: optional
    match: {{ path_prefix: /optional }}
    providers: [corp]
    allow_anonymous: true
  - name: admin
    match: {{ path_prefix: /admin }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
  - name: scoped
    match: {{ path_prefix: /scoped }}
    providers: [corp]
    require: {{ scopes_any: [orders.write] }}
  - name: rs-only
    match: {{ path_prefix: /rs }}
    providers: [rs-only]
  - name: rs-hs
    match: {{ path_prefix: /rshs }}
    providers: [rs-hs]
  - name: p384-only
    match: {{ path_prefix: /p384 }}
    providers: [p384-only]
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        rsa = inline(&keys.rs256),
        p384 = inline(&keys.es384),
    )
}

pub async fn start_with(extra_top: &str) -> Ward {
    let keys = KeyRing::shared();
    Ward::builder(&config(keys, extra_top))
        .file("keys/corp.json", jwks_of(&keys.all()).to_string())
        .start()
        .await
}

pub async fn start() -> Ward {
    start_with("").await
}

/// Claims that `corp` accepts: right issuer and audience, five minutes to live.
pub fn claims(sub: &str) -> Value {
    json!({"iss": ISS, "aud": "api", "sub": sub, "iat": now(), "exp": now() + 300})
}

/// `base` with `extra`'s members added or replaced (a `null` removes the member).
pub fn with(mut base: Value, extra: Value) -> Value {
    let obj = base.as_object_mut().expect("claims are an object");
    for (k, v) in extra.as_object().expect("extra claims are an object") {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    base
}

/// An RS256 token from `corp`'s RSA key.
pub fn token(claims: &Value) -> String {
    KeyRing::shared().rs256.sign(claims)
}

/// Asserts a 401 `invalid_token` denial with an RFC 6750 challenge; when `detail` is
/// given, the body's detail and the challenge's error_description must both be it.
pub fn assert_invalid_token(r: &CheckResponse, detail: Option<&str>, case: &str) {
    let d = denial(r);
    assert_eq!(
        d.short(),
        (code::UNAUTHENTICATED, 401, "invalid_token"),
        "{case}: {}",
        describe(r)
    );
    let challenge = d
        .www_authenticate()
        .unwrap_or_else(|| panic!("{case}: no www-authenticate"));
    assert!(
        challenge.starts_with(r#"Bearer realm="ward", error="invalid_token", error_description=""#),
        "{case}: challenge {challenge:?}"
    );
    let desc = d.error_description().unwrap_or_default();
    assert!(
        !desc.is_empty(),
        "{case}: empty error_description in {challenge:?}"
    );
    d.assert_json_body();
    if let Some(want) = detail {
        assert_eq!(d.detail, want, "{case}: body detail");
        assert_eq!(desc, want, "{case}: error_description");
    }
}

pub fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// [`start`], with the plain-HTTP listener too.
pub async fn start_http() -> Ward {
    let keys = KeyRing::shared();
    Ward::builder(&config(keys, ""))
        .file("keys/corp.json", jwks_of(&keys.all()).to_string())
        .http()
        .start()
        .await
}
