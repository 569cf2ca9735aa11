//! The config the purpose-token suites (`mint.rs`, `exchange.rs`) run against: `corp`
//! (issuer [`ISS`], a P-256 key) verifies users; ward signs with its own ES256 key; the
//! `checkout` route mints for `payments-api`, `shadowed` is a minting route in shadow
//! mode, and the `payments` exchange issues tokens for `payments-exchange`. Tokens
//! decode and verify here with jsonwebtoken against the JWKS ward publishes.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};

use crate::common::{CLOCK_START, KeyRing, TestKey, Ward, WardBuilder, manual_clock};
use ward::clock::ManualClock;

pub const ISS: &str = "https://corp.test";
pub const WARD_ISS: &str = "https://ward.internal";
pub const MINT_HEADER: &str = "x-auth-token";

/// ward's own signing key (its PEM goes in `signing/current.pem`).
pub fn signing_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| TestKey::generate(ward::authn::jwt::Alg::ES256))
}

pub fn config(extra_top: &str) -> String {
    let corp = KeyRing::shared().es256.jwks();
    format!(
        r#"
{extra_top}
signing:
  issuer: {WARD_ISS}
  keys:
    - {{ kid: "2026-12", alg: ES256, key_file: signing/current.pem }}
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {corp}
      claims: {{ roles: roles }}
routes:
  - name: checkout
    match: {{ path_prefix: /checkout }}
    providers: [corp]
    require: {{ roles_any: [buyer] }}
    mint:
      audience: payments-api
      ttl: 60s
      header: {MINT_HEADER}
      claims: [sub, roles, tenant]
  - name: shadowed
    match: {{ path_prefix: /shadow }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
    mode: shadow
    mint: {{ audience: payments-api, ttl: 60s, header: {MINT_HEADER} }}
  - name: optional
    match: {{ path_prefix: /optional }}
    providers: [corp]
    allow_anonymous: true
    mint: {{ audience: payments-api, ttl: 60s, header: {MINT_HEADER} }}
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
exchange:
  - name: payments
    audience: payments-exchange
    providers: [corp]
    require: {{ roles_any: [checkout] }}
    ttl: 5m
    claims: [sub, roles, tenant]
"#
    )
}

/// A builder for [`config`] with the signing key's file written.
pub fn builder(extra_top: &str) -> WardBuilder {
    Ward::builder(&config(extra_top)).file("signing/current.pem", signing_key().key_file())
}

/// ward on a manual clock at `CLOCK_START`.
pub async fn start() -> (Ward, ManualClock) {
    let (clock, hand) = manual_clock();
    (builder("").clock(clock).start().await, hand)
}

/// A `corp` token for `sub` with `extra` claims, valid for five minutes of the manual
/// clock.
pub fn user(sub: &str, extra: Value) -> String {
    let mut claims = json!({"iss": ISS, "aud": "api", "sub": sub, "exp": CLOCK_START + 300});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    KeyRing::shared().es256.sign(&claims)
}

/// The JOSE header and payload of a compact JWS, unverified.
pub fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let mut next = || -> Value {
        let part = it.next().expect("a JWS part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    (next(), next())
}

/// Verifies `token` against the JWKS `ward` publishes, for `audience` and ward's
/// issuer, at the manual clock's time; returns its claims.
pub async fn verify(ward: &Ward, token: &str, audience: &str) -> Result<Value, String> {
    let (status, body) = ward.admin_get("/.well-known/jwks.json").await;
    assert_eq!(status, 200, "{body}");
    let set: JwkSet = serde_json::from_str(&body).expect("a JWKS");
    let (header, _) = parts(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = set.find(kid).ok_or(format!("kid {kid} is not published"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[audience]);
    v.set_issuer(&[WARD_ISS]);
    // The manual clock is ahead of the wall clock: expiry is asserted from the claims.
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}
