//! `parse` and `verify` against real keys of every family (generated with aws-lc-rs):
//! time boundaries, audience and issuer rules, the algorithm allow-list and the key-family
//! guard, kid selection, the shape checks, and the claims -> [`Identity`] mapping.
//!
//! Tokens are assembled by hand (header and payload text, then a real signature) so that
//! shapes no well-behaved signer would emit (duplicate members, `crit`, a numeric `kid`)
//! can be tested with valid signatures.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use super::*;
use crate::authn::ProviderKind;
use crate::authn::claims::Names;
use crate::authn::jwks::VerifyKey;
use crate::devtoken::SigningKey;

const ISS: &str = "https://idp.example.com/realms/corp";
/// "Now" for every check, so time boundaries are exact.
const NOW: u64 = 1_800_000_000;

// === keys ===

struct Signer {
    alg: Alg,
    key: EncodingKey,
    /// The public JWK, without `kid`.
    jwk: Value,
}

struct Keys {
    rsa_a: Signer,
    rsa_b: Signer,
    rsa_stranger: Signer,
    p256: Signer,
    p384: Signer,
    ed25519: Signer,
    hmac: Signer,
}

fn pem(der: &[u8]) -> Vec<u8> {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out.into_bytes()
}

fn signer(bytes: &[u8], alg: Alg) -> Signer {
    use Alg::*;
    let key = match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => EncodingKey::from_rsa_pem(bytes),
        ES256 | ES384 => EncodingKey::from_ec_pem(bytes),
        ES512 => unreachable!("ES512 keys sign through devtoken::SigningKey (tests/algorithms.rs)"),
        EdDSA | Ed25519 => EncodingKey::from_ed_pem(bytes),
        HS256 | HS384 | HS512 => EncodingKey::from_secret(bytes),
    }
    .unwrap();
    let mut jwk = SigningKey::from_bytes(bytes, alg).unwrap().jwks()["keys"][0].clone();
    let o = jwk.as_object_mut().unwrap();
    o.remove("kid");
    o.remove("alg");
    Signer { alg, key, jwk }
}

fn rsa_pem() -> Vec<u8> {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der<'static> = kp.as_der().unwrap();
    pem(der.as_ref())
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        let mut secret = [0u8; 48];
        aws_lc_rs::rand::fill(&mut secret).unwrap();
        Keys {
            rsa_a: signer(&rsa_pem(), Alg::RS256),
            rsa_b: signer(&rsa_pem(), Alg::RS256),
            rsa_stranger: signer(&rsa_pem(), Alg::RS256),
            p256: signer(&pem(p256.to_pkcs8v1().unwrap().as_ref()), Alg::ES256),
            p384: signer(&pem(p384.to_pkcs8v1().unwrap().as_ref()), Alg::ES384),
            ed25519: signer(&pem(ed.to_pkcs8v1().unwrap().as_ref()), Alg::EdDSA),
            hmac: signer(&secret, Alg::HS256),
        }
    })
}

/// The signer's public JWK under `kid` (or none).
fn jwk(s: &Signer, kid: Option<&str>) -> Value {
    let mut j = s.jwk.clone();
    if let Some(kid) = kid {
        j["kid"] = kid.into();
    }
    j
}

fn keyset(jwks: Vec<Value>) -> KeySet {
    let (set, skipped) = KeySet::from_jwks(&json!({ "keys": jwks })).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    set
}

// === tokens ===

/// A compact JWS of exactly this header and payload text, signed with `alg`.
fn raw_token(header: &str, payload: &str, key: &EncodingKey, alg: Alg) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, alg.to_jsonwebtoken().unwrap()).unwrap();
    format!("{input}.{sig}")
}

/// Valid claims: right issuer and audience, expiring 10 minutes after [`NOW`]. `extra`
/// members replace them; a `null` removes one.
fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISS,
        "aud": "orders-api",
        "sub": "alice",
        "iat": NOW - 60,
        "exp": NOW + 600,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A token by `s`, with `kid` in its header if given.
fn token(s: &Signer, kid: Option<&str>, claims: &Value) -> String {
    token_as(s, s.alg, kid, claims)
}

/// A token by `s`'s key but claiming (and signed with) `alg`.
fn token_as(s: &Signer, alg: Alg, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({ "typ": "JWT", "alg": alg.as_str() });
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    raw_token(&header.to_string(), &claims.to_string(), &s.key, alg)
}

// === settings ===

/// A provider as the config compiler builds it: audiences `orders-api` and
/// `billing-api`, every algorithm family allowed, 30 s leeway. Tests change fields.
fn settings() -> JwtSettings {
    let yaml = format!(
        "\
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [orders-api, billing-api]
      jwks_uri: https://idp.example.com/jwks
      algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
      leeway: 30s
routes:
  - name: all
    match: {{ path_prefix: / }}
    providers: [corp]
"
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = crate::config::load_str(&yaml, std::path::Path::new("."), &env).unwrap();
    match &config.providers[0].kind {
        ProviderKind::Jwt(j) => JwtSettings::clone(j),
        _ => unreachable!("a jwt provider"),
    }
}

fn provider() -> Arc<str> {
    "corp".into()
}

fn check_at(token: &str, s: &JwtSettings, keys: &KeySet, now: u64) -> Result<Identity, TokenError> {
    let parsed = parse(token, s.max_token_bytes)?;
    let kept: [Arc<str>; 2] = ["realm_access".into(), "tenant".into()];
    verify(parsed, s, keys, &provider(), now, &kept)
}

fn check(token: &str, s: &JwtSettings, keys: &KeySet) -> Result<Identity, TokenError> {
    check_at(token, s, keys, NOW)
}

/// The error of a check that must fail.
fn refused(token: &str, s: &JwtSettings, keys: &KeySet) -> TokenError {
    match check(token, s, keys) {
        Ok(id) => panic!("accepted as {:?}", id.subject),
        Err(e) => e,
    }
}

fn rsa_set() -> KeySet {
    keyset(vec![jwk(&keys().rsa_a, Some("a"))])
}

// === every family ===

#[test]
fn every_key_family_verifies_its_own_tokens() {
    let k = keys();
    let cases: [(&Signer, Alg); 6] = [
        (&k.rsa_a, Alg::RS256),
        (&k.rsa_a, Alg::PS256),
        (&k.p256, Alg::ES256),
        (&k.p384, Alg::ES384),
        (&k.ed25519, Alg::EdDSA),
        (&k.hmac, Alg::HS256),
    ];
    let s = settings();
    for (signer, alg) in cases {
        let set = keyset(vec![jwk(signer, Some("k"))]);
        let t = token_as(signer, alg, Some("k"), &claims(json!({})));
        let id = check(&t, &s, &set).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(id.subject.as_deref(), Some("alice"), "{alg:?}");
        assert_eq!(id.issuer.as_deref(), Some(ISS));
        assert_eq!(&*id.provider, "corp");
        assert_eq!(id.expires_at, Some(NOW + 600));
    }
}

#[test]
fn a_changed_payload_or_signature_is_refused() {
    let s = settings();
    let set = rsa_set();
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    let parts: Vec<&str> = t.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "admin"})).to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(refused(&forged, &s, &set), TokenError::Signature);
    // The signature of another token of the same key.
    let other = token(&keys().rsa_a, Some("a"), &claims(json!({"sub": "bob"})));
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.split('.').nth(2).unwrap()
    );
    assert_eq!(refused(&swapped, &s, &set), TokenError::Signature);
}

mod algorithms;
mod shape;
mod signatures;
mod time;
