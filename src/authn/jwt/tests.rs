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
        EdDSA => EncodingKey::from_ed_pem(bytes),
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
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg.to_jsonwebtoken()).unwrap();
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

// === time ===

#[test]
fn exp_plus_leeway_is_the_first_expired_second() {
    let mut s = settings();
    let set = rsa_set();
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({"exp": NOW})));
    assert!(check_at(&t, &s, &set, NOW + 29).is_ok());
    assert_eq!(
        check_at(&t, &s, &set, NOW + 30).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        check_at(&t, &s, &set, NOW + 31).unwrap_err(),
        TokenError::Expired
    );
    s.leeway = Duration::ZERO;
    assert!(check_at(&t, &s, &set, NOW - 1).is_ok());
    assert_eq!(
        check_at(&t, &s, &set, NOW).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn nbf_beyond_leeway_is_not_yet_valid() {
    let mut s = settings();
    let set = rsa_set();
    let at = |nbf: u64| token(&keys().rsa_a, Some("a"), &claims(json!({ "nbf": nbf })));
    assert_eq!(
        check(&at(NOW + 31), &s, &set).unwrap_err(),
        TokenError::NotYetValid
    );
    assert_eq!(
        check(&at(NOW + 3600), &s, &set).unwrap_err(),
        TokenError::NotYetValid
    );
    s.leeway = Duration::ZERO;
    assert_eq!(
        check(&at(NOW + 1), &s, &set).unwrap_err(),
        TokenError::NotYetValid
    );
}

#[test]
fn nbf_now_or_within_leeway_is_accepted() {
    let mut s = settings();
    let set = rsa_set();
    let at = |nbf: u64| token(&keys().rsa_a, Some("a"), &claims(json!({ "nbf": nbf })));
    assert_eq!(
        check(&at(NOW - 60), &s, &set).err(),
        None,
        "nbf in the past"
    );
    assert_eq!(check(&at(NOW), &s, &set).err(), None, "nbf now");
    assert_eq!(
        check(&at(NOW + 30), &s, &set).err(),
        None,
        "nbf at now + leeway"
    );
    s.leeway = Duration::ZERO;
    assert_eq!(check(&at(NOW), &s, &set).err(), None, "nbf now, no leeway");
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    let s = settings();
    let set = rsa_set();
    let with = |extra: Value| token(&keys().rsa_a, Some("a"), &claims(extra));
    assert_eq!(
        refused(&with(json!({"exp": null})), &s, &set),
        TokenError::MissingExp
    );
    let exp = TokenError::ClaimType("exp");
    let as_string = json!({ "exp": (NOW + 600).to_string() });
    assert_eq!(refused(&with(as_string), &s, &set), exp);
    assert_eq!(refused(&with(json!({"exp": true})), &s, &set), exp);
    assert_eq!(refused(&with(json!({"exp": [NOW + 600]})), &s, &set), exp);
    let nbf_string = json!({ "nbf": NOW.to_string() });
    assert_eq!(
        refused(&with(nbf_string), &s, &set),
        TokenError::ClaimType("nbf")
    );
    // A fractional NumericDate is a number.
    assert!(check(&with(json!({"exp": NOW as f64 + 600.5})), &s, &set).is_ok());
}

#[test]
fn registered_claims_must_have_their_rfc_7519_types() {
    let s = settings();
    let set = rsa_set();
    let with = |extra: Value| token(&keys().rsa_a, Some("a"), &claims(extra));
    let cases = [
        ("sub", json!(42)),
        ("sub", json!(["alice"])),
        ("sub", json!({"id": "alice"})),
        ("sub", json!(true)),
        ("iss", json!(1)),
        ("iss", json!([ISS])),
        ("jti", json!(7)),
        ("jti", json!({})),
        ("aud", json!(1)),
        ("aud", json!([1])),
        ("aud", json!(["orders-api", 1])),
        ("aud", json!([["orders-api"]])),
        ("aud", json!({"orders-api": true})),
        ("iat", json!("1800000000")),
        ("iat", json!([1])),
        ("nbf", json!(false)),
    ];
    for (claim, value) in cases {
        let t = with(json!({ claim: value }));
        assert_eq!(
            refused(&t, &s, &set),
            TokenError::ClaimType(claim),
            "{claim}: {value}"
        );
    }
    // The error names the claim, never its value.
    let t = with(json!({"sub": 31337}));
    assert_eq!(
        refused(&t, &s, &set).to_string(),
        "claim `sub` has the wrong type"
    );
    // The right types, present or absent, are accepted.
    let fine =
        json!({"jti": "j-1", "iat": NOW as f64 - 0.5, "nbf": NOW - 1, "aud": ["x", "orders-api"]});
    assert!(check(&with(fine), &s, &set).is_ok());
    let bare = json!({"sub": null, "iat": null, "jti": null});
    let id = check(&with(bare), &s, &set).unwrap();
    assert_eq!(id.subject, None);
}

// === audience and issuer ===

#[test]
fn aud_as_string_or_array() {
    let s = settings();
    let set = rsa_set();
    let with = |aud: Value| token(&keys().rsa_a, Some("a"), &claims(json!({ "aud": aud })));
    assert!(check(&with(json!("orders-api")), &s, &set).is_ok());
    assert!(check(&with(json!("billing-api")), &s, &set).is_ok());
    assert!(check(&with(json!(["other", "billing-api"])), &s, &set).is_ok());
    for bad in [
        json!("other"),
        json!(["other", "third"]),
        json!([]),
        json!("Orders-API"),
        json!("orders-api "),
        json!("orders-api billing-api"),
    ] {
        assert_eq!(
            refused(&with(bad.clone()), &s, &set),
            TokenError::Audience,
            "{bad}"
        );
    }
    let no_aud = token(&keys().rsa_a, Some("a"), &claims(json!({"aud": null})));
    assert_eq!(refused(&no_aud, &s, &set), TokenError::Audience);
}

#[test]
fn iss_must_match_exactly() {
    let s = settings();
    let set = rsa_set();
    let with = |iss: Value| token(&keys().rsa_a, Some("a"), &claims(json!({ "iss": iss })));
    assert!(check(&with(json!(ISS)), &s, &set).is_ok());
    for bad in [
        json!(format!("{ISS}/")),
        json!("https://IDP.example.com/realms/corp"),
        json!("http://idp.example.com/realms/corp"),
        json!(format!(" {ISS}")),
    ] {
        assert_eq!(
            refused(&with(bad.clone()), &s, &set),
            TokenError::Issuer,
            "{bad}"
        );
    }
    let no_iss = token(&keys().rsa_a, Some("a"), &claims(json!({"iss": null})));
    assert_eq!(refused(&no_iss, &s, &set), TokenError::Issuer);
}

// === algorithms and key families ===

#[test]
fn alg_outside_the_allow_list_is_refused() {
    let mut s = settings();
    s.algorithms = vec![Alg::RS256];
    let set = keyset(vec![
        jwk(&keys().rsa_a, Some("a")),
        jwk(&keys().p256, Some("e")),
    ]);
    let c = claims(json!({}));
    assert!(check(&token(&keys().rsa_a, Some("a"), &c), &s, &set).is_ok());
    let ps = token_as(&keys().rsa_a, Alg::PS256, Some("a"), &c);
    assert_eq!(refused(&ps, &s, &set), TokenError::Algorithm);
    let es = token(&keys().p256, Some("e"), &c);
    assert_eq!(refused(&es, &s, &set), TokenError::Algorithm);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_never_accepted() {
    // The classic confusion: an HMAC "secret" that is public (the RSA key's JWK, its
    // modulus, its PEM-ish text), on a provider that allows both families.
    let s = settings();
    let rsa = &keys().rsa_a;
    let set = keyset(vec![jwk(rsa, Some("a"))]);
    let n = URL_SAFE_NO_PAD
        .decode(rsa.jwk["n"].as_str().unwrap())
        .unwrap();
    let secrets: Vec<Vec<u8>> = vec![
        rsa.jwk.to_string().into_bytes(),
        n,
        rsa.jwk["n"].as_str().unwrap().as_bytes().to_vec(),
    ];
    let c = claims(json!({}));
    for secret in secrets {
        let key = EncodingKey::from_secret(&secret).unwrap();
        for kid in [Some("a"), None] {
            let mut header = json!({"typ": "JWT", "alg": "HS256"});
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            let t = raw_token(&header.to_string(), &c.to_string(), &key, Alg::HS256);
            assert_eq!(refused(&t, &s, &set), TokenError::Signature, "kid {kid:?}");
        }
    }
}

#[test]
fn a_token_never_verifies_with_a_key_of_another_family() {
    let s = settings();
    let k = keys();
    let c = claims(json!({}));
    // Each token is verified against a set holding only keys of other families, all
    // under the token's kid.
    let signers: [&Signer; 5] = [&k.rsa_a, &k.p256, &k.p384, &k.ed25519, &k.hmac];
    for (i, signer) in signers.iter().enumerate() {
        let others: Vec<Value> = signers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| jwk(o, Some("k")))
            .collect();
        let set = keyset(others);
        let t = token(signer, Some("k"), &c);
        assert_eq!(
            refused(&t, &s, &set),
            TokenError::Signature,
            "{:?}",
            signer.alg
        );
        let t = token(signer, None, &c);
        assert_eq!(
            refused(&t, &s, &set),
            TokenError::Signature,
            "{:?}",
            signer.alg
        );
    }
}

#[test]
fn a_key_with_an_alg_verifies_only_that_alg() {
    let s = settings();
    let mut rs256_only = jwk(&keys().rsa_a, Some("a"));
    rs256_only["alg"] = "RS256".into();
    let set = keyset(vec![rs256_only]);
    let c = claims(json!({}));
    assert!(check(&token(&keys().rsa_a, Some("a"), &c), &s, &set).is_ok());
    let ps = token_as(&keys().rsa_a, Alg::PS256, Some("a"), &c);
    assert_eq!(refused(&ps, &s, &set), TokenError::Signature);
}

// === signatures ===

/// Every algorithm ward knows allowed, for tests that go beyond the default settings.
fn all_algorithms() -> JwtSettings {
    use Alg::*;
    let mut s = settings();
    s.algorithms = vec![
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512,
    ];
    s
}

/// `t` with its signature replaced by `sig` (base64url-encoded here).
fn with_signature(t: &str, sig: &[u8]) -> String {
    let (input, _) = t.rsplit_once('.').unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn signature_of(t: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(t.rsplit_once('.').unwrap().1)
        .unwrap()
}

#[test]
fn one_rsa_key_verifies_every_rsa_algorithm_in_any_order() {
    // A key without `alg` is parsed per algorithm on first use; interleaving the
    // algorithms, twice, checks that each use finds its own parsed key.
    let s = all_algorithms();
    let set = keyset(vec![jwk(&keys().rsa_a, Some("a"))]);
    let c = claims(json!({}));
    use Alg::*;
    for _ in 0..2 {
        for alg in [PS256, RS256, PS512, RS384, PS384, RS512] {
            let t = token_as(&keys().rsa_a, alg, Some("a"), &c);
            assert!(check(&t, &s, &set).is_ok(), "{alg:?}");
            // Another RSA key's signature of the same algorithm never verifies.
            let other = token_as(&keys().rsa_b, alg, Some("a"), &c);
            assert_eq!(refused(&other, &s, &set), TokenError::Signature, "{alg:?}");
        }
    }
}

#[test]
fn a_signature_under_one_rsa_algorithm_does_not_verify_as_another() {
    // The same key, the same signing input: a PKCS#1 v1.5 signature presented as PSS
    // (and SHA-256 as SHA-512) is refused.
    let s = all_algorithms();
    let set = keyset(vec![jwk(&keys().rsa_a, Some("a"))]);
    let c = claims(json!({}));
    let rs256 = token_as(&keys().rsa_a, Alg::RS256, Some("a"), &c);
    for (alg, other) in [
        (Alg::PS256, Alg::RS256),
        (Alg::RS512, Alg::RS256),
        (Alg::RS256, Alg::PS256),
    ] {
        let t = token_as(&keys().rsa_a, alg, Some("a"), &c);
        let signed_as_other = token_as(&keys().rsa_a, other, Some("a"), &c);
        let forged = with_signature(&t, &signature_of(&signed_as_other));
        assert_eq!(
            refused(&forged, &s, &set),
            TokenError::Signature,
            "{other:?} as {alg:?}"
        );
    }
    assert!(check(&rs256, &s, &set).is_ok());
}

#[test]
fn an_rsa_key_whose_exponent_has_a_leading_zero_verifies() {
    let s = settings();
    let mut padded = jwk(&keys().rsa_a, Some("a"));
    assert_eq!(padded["e"], "AQAB");
    padded["e"] = URL_SAFE_NO_PAD.encode([0, 1, 0, 1]).into();
    let set = keyset(vec![padded]);
    let c = claims(json!({}));
    assert!(check(&token(&keys().rsa_a, Some("a"), &c), &s, &set).is_ok());
    let stranger = token(&keys().rsa_stranger, Some("a"), &c);
    assert_eq!(refused(&stranger, &s, &set), TokenError::Signature);
}

#[test]
fn an_ecdsa_signature_of_the_wrong_length_is_refused() {
    let s = settings();
    let set = keyset(vec![jwk(&keys().p256, Some("e"))]);
    let t = token(&keys().p256, Some("e"), &claims(json!({})));
    assert!(check(&t, &s, &set).is_ok());
    let sig = signature_of(&t);
    assert_eq!(sig.len(), 64, "ES256 signatures are r || s, 32 bytes each");
    let mut long = sig.clone();
    long.push(0);
    let mut zero_padded = vec![0];
    zero_padded.extend(&sig);
    for bad in [
        sig[..63].to_vec(),
        sig[1..].to_vec(),
        long,
        zero_padded,
        [&sig[..], &sig[..]].concat(),
        vec![0; 64],
        vec![0xff; 64],
        vec![1],
    ] {
        let forged = with_signature(&t, &bad);
        assert_eq!(
            refused(&forged, &s, &set),
            TokenError::Signature,
            "{} bytes",
            bad.len()
        );
    }
}

#[test]
fn ed25519_and_p384_signatures_of_the_wrong_length_are_refused() {
    let s = settings();
    for signer in [&keys().ed25519, &keys().p384] {
        let set = keyset(vec![jwk(signer, Some("k"))]);
        let t = token(signer, Some("k"), &claims(json!({})));
        assert!(check(&t, &s, &set).is_ok());
        let sig = signature_of(&t);
        for bad in [sig[..sig.len() - 1].to_vec(), [&sig[..], &[0]].concat()] {
            let forged = with_signature(&t, &bad);
            assert_eq!(
                refused(&forged, &s, &set),
                TokenError::Signature,
                "{:?}",
                signer.alg
            );
        }
    }
}

#[test]
fn an_hmac_token_with_another_secret_or_a_cut_tag_is_refused() {
    let s = all_algorithms();
    let set = keyset(vec![jwk(&keys().hmac, Some("h"))]);
    let c = claims(json!({}));
    let mut other = [0u8; 48];
    aws_lc_rs::rand::fill(&mut other).unwrap();
    let stranger = EncodingKey::from_secret(&other).unwrap();
    for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
        let t = token_as(&keys().hmac, alg, Some("h"), &c);
        assert!(check(&t, &s, &set).is_ok(), "{alg:?}");
        let header = json!({"typ": "JWT", "alg": alg.as_str(), "kid": "h"}).to_string();
        let wrong = raw_token(&header, &c.to_string(), &stranger, alg);
        assert_eq!(refused(&wrong, &s, &set), TokenError::Signature, "{alg:?}");
        // A prefix of the right tag, or the tag of another HMAC algorithm, never passes.
        let tag = signature_of(&t);
        for bad in [
            tag[..tag.len() / 2].to_vec(),
            tag[..tag.len() - 1].to_vec(),
            [&tag[..], &[0]].concat(),
        ] {
            let forged = with_signature(&t, &bad);
            assert_eq!(refused(&forged, &s, &set), TokenError::Signature, "{alg:?}");
        }
        for other_alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
            if other_alg == alg {
                continue;
            }
            let as_other = token_as(&keys().hmac, other_alg, Some("h"), &c);
            let forged = with_signature(&t, &signature_of(&as_other));
            assert_eq!(refused(&forged, &s, &set), TokenError::Signature, "{alg:?}");
        }
    }
}

#[test]
fn a_key_never_verifies_an_algorithm_outside_its_family_even_when_asked_directly() {
    // `VerifyKey::verify` holds the family and `alg` guard itself, not only `candidates`.
    let k = keys();
    let c = claims(json!({}));
    let mut rs256_only = jwk(&k.rsa_a, Some("r256"));
    rs256_only["alg"] = "RS256".into();
    let set = keyset(vec![
        jwk(&k.rsa_a, Some("rsa")),
        rs256_only,
        jwk(&k.p256, Some("p256")),
        jwk(&k.p384, Some("p384")),
        jwk(&k.ed25519, Some("ed")),
        jwk(&k.hmac, Some("hmac")),
    ]);
    use Alg::*;
    let every = [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512,
    ];
    let cases: [(&str, &Signer, &[Alg]); 6] = [
        ("rsa", &k.rsa_a, &[RS256, RS384, RS512, PS256, PS384, PS512]),
        ("r256", &k.rsa_a, &[RS256]),
        ("p256", &k.p256, &[ES256]),
        ("p384", &k.p384, &[ES384]),
        ("ed", &k.ed25519, &[EdDSA]),
        ("hmac", &k.hmac, &[HS256, HS384, HS512]),
    ];
    for (kid, signer, own) in cases {
        let vk: &VerifyKey = set.candidates(Some(kid), own[0])[0];
        for alg in every {
            // A valid `alg` signature by this key where its family can make one (an
            // `alg`-bound key must still refuse it); otherwise a valid signature of the
            // key's own algorithm, presented as `alg`.
            let signed_as = if vk.kind.allows(alg) { alg } else { signer.alg };
            let t = token_as(signer, signed_as, None, &c);
            let (input, _) = t.rsplit_once('.').unwrap();
            let ok = vk.verify(alg, input.as_bytes(), &signature_of(&t));
            assert_eq!(ok, own.contains(&alg), "key {kid}, {alg:?}");
        }
    }
}

// === kid ===

#[test]
fn with_duplicate_kids_the_key_that_verifies_is_used() {
    let s = settings();
    let k = keys();
    let set = keyset(vec![jwk(&k.rsa_a, Some("dup")), jwk(&k.rsa_b, Some("dup"))]);
    let c = claims(json!({}));
    assert!(check(&token(&k.rsa_b, Some("dup"), &c), &s, &set).is_ok());
    assert!(check(&token(&k.rsa_a, Some("dup"), &c), &s, &set).is_ok());
    let stranger = token(&k.rsa_stranger, Some("dup"), &c);
    assert_eq!(refused(&stranger, &s, &set), TokenError::Signature);
    // The same kid on keys of two families: the family of the token's alg is tried.
    let set = keyset(vec![jwk(&k.p256, Some("dup")), jwk(&k.rsa_b, Some("dup"))]);
    assert!(check(&token(&k.rsa_b, Some("dup"), &c), &s, &set).is_ok());
    assert!(check(&token(&k.p256, Some("dup"), &c), &s, &set).is_ok());
}

#[test]
fn a_token_without_kid_tries_every_compatible_key() {
    let s = settings();
    let k = keys();
    let set = keyset(vec![
        jwk(&k.p256, Some("e")),
        jwk(&k.rsa_a, Some("a")),
        jwk(&k.rsa_b, None),
    ]);
    let c = claims(json!({}));
    assert!(check(&token(&k.rsa_a, None, &c), &s, &set).is_ok());
    assert!(check(&token(&k.rsa_b, None, &c), &s, &set).is_ok());
    assert!(check(&token(&k.p256, None, &c), &s, &set).is_ok());
    let stranger = token(&k.rsa_stranger, None, &c);
    assert_eq!(refused(&stranger, &s, &set), TokenError::Signature);
    let no_key_of_family = token(&k.ed25519, None, &c);
    assert_eq!(refused(&no_key_of_family, &s, &set), TokenError::Signature);
}

#[test]
fn a_kid_limits_the_keys_tried() {
    let s = settings();
    let k = keys();
    let set = keyset(vec![jwk(&k.rsa_a, Some("a")), jwk(&k.rsa_b, Some("b"))]);
    let c = claims(json!({}));
    // Signed by `a` but naming `b`: `a` is not tried.
    let t = token(&k.rsa_a, Some("b"), &c);
    assert_eq!(refused(&t, &s, &set), TokenError::Signature);
}

#[test]
fn an_unknown_kid_is_unknown_kid() {
    let s = settings();
    let set = rsa_set();
    let t = token(&keys().rsa_a, Some("rotated-away"), &claims(json!({})));
    assert_eq!(refused(&t, &s, &set), TokenError::UnknownKid);
    let empty = keyset(vec![]);
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    assert_eq!(refused(&t, &s, &empty), TokenError::UnknownKid);
}

// === shape ===

#[test]
fn max_token_bytes_is_inclusive() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    assert!(parse(&t, t.len()).is_ok());
    assert_eq!(parse(&t, t.len() - 1).unwrap_err(), TokenError::TooLarge);
    let mut s = settings();
    s.max_token_bytes = t.len() - 1;
    assert_eq!(refused(&t, &s, &rsa_set()), TokenError::TooLarge);
    // Parsed under a larger cap (the provider that found it), verified by one whose cap
    // it exceeds (picked by `iss`): the verifier's cap holds.
    let parsed = parse(&t, t.len()).unwrap();
    let err = verify(parsed, &s, &rsa_set(), &provider(), NOW, &[]).unwrap_err();
    assert_eq!(err, TokenError::TooLarge);
    // Too large is decided before anything is decoded.
    let junk = "x".repeat(20_000);
    assert_eq!(parse(&junk, 16_384).unwrap_err(), TokenError::TooLarge);
}

#[test]
fn duplicate_members_are_refused_with_valid_signatures() {
    let s = settings();
    let set = rsa_set();
    let key = &keys().rsa_a.key;
    let good_payload = claims(json!({})).to_string();
    let header = r#"{"alg":"RS256","kid":"a","alg":"RS256"}"#;
    let t = raw_token(header, &good_payload, key, Alg::RS256);
    assert_eq!(refused(&t, &s, &set), TokenError::DuplicateMember);

    let header = r#"{"alg":"RS256","kid":"a"}"#;
    let exp = NOW + 600;
    for payload in [
        format!(r#"{{"iss":"{ISS}","aud":"orders-api","exp":{exp},"sub":"alice","sub":"admin"}}"#),
        format!(
            r#"{{"iss":"{ISS}","aud":"orders-api","exp":{exp},"sub":"alice","s\u0075b":"admin"}}"#
        ),
        format!(
            r#"{{"iss":"{ISS}","aud":"orders-api","exp":{exp},"realm_access":{{"roles":[],"roles":["admin"]}}}}"#
        ),
    ] {
        let t = raw_token(header, &payload, key, Alg::RS256);
        assert_eq!(
            refused(&t, &s, &set),
            TokenError::DuplicateMember,
            "{payload}"
        );
    }
}

#[test]
fn crit_header_is_refused() {
    let s = settings();
    let set = rsa_set();
    let payload = claims(json!({})).to_string();
    for header in [
        r#"{"alg":"RS256","kid":"a","crit":["exp"],"exp":1}"#,
        r#"{"alg":"RS256","kid":"a","crit":[]}"#,
    ] {
        let t = raw_token(header, &payload, &keys().rsa_a.key, Alg::RS256);
        assert_eq!(refused(&t, &s, &set), TokenError::Malformed, "{header}");
    }
}

#[test]
fn a_kid_that_is_not_a_string_is_malformed() {
    let s = settings();
    let set = rsa_set();
    let payload = claims(json!({})).to_string();
    for kid in [json!(7), Value::Null, json!(["a"]), json!({"a": 1})] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        let t = raw_token(&header, &payload, &keys().rsa_a.key, Alg::RS256);
        assert_eq!(refused(&t, &s, &set), TokenError::Malformed, "{kid}");
    }
}

#[test]
fn alg_none_missing_or_unknown_is_an_algorithm_error() {
    let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
    let sig = URL_SAFE_NO_PAD.encode([1u8; 32]);
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"rs256"}"#,
        r#"{"alg":"ES512"}"#,
        r#"{"alg":256}"#,
    ] {
        let t = format!("{}.{payload}.{sig}", URL_SAFE_NO_PAD.encode(header));
        assert_eq!(
            parse(&t, 16_384).unwrap_err(),
            TokenError::Algorithm,
            "{header}"
        );
    }
}

#[test]
fn malformed_shapes_are_refused_never_repaired() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    let (h, rest) = t.split_once('.').unwrap();
    let (p, sig) = rest.split_once('.').unwrap();
    let not_object = URL_SAFE_NO_PAD.encode("[1]");
    let not_json = URL_SAFE_NO_PAD.encode("{\"alg\":");
    for bad in [
        String::new(),
        format!("{h}.{p}"),
        format!("{h}.{p}."),
        format!("{t}.{sig}"),
        format!("{h}=.{p}.{sig}"),
        format!("{h}.{p}.{sig}="),
        format!(" {t}"),
        format!("{t} "),
        format!("{t}\n"),
        format!("{h}.{p}.{}", sig.replace(['-', '_'], "+")),
        format!("{not_object}.{p}.{sig}"),
        format!("{h}.{not_object}.{sig}"),
        format!("{not_json}.{p}.{sig}"),
    ] {
        if bad == t {
            continue;
        }
        assert_eq!(
            parse(&bad, 16_384).unwrap_err(),
            TokenError::Malformed,
            "{bad:?}"
        );
    }
}

// === claims -> identity ===

#[test]
fn claims_map_to_identity() {
    let mut s = settings();
    s.roles_claim = ClaimPath::parse("realm_access.roles").unwrap();
    s.scopes_claim = ClaimPath::parse("scope").unwrap();
    let h = |n: &str| HeaderName::parse(n).unwrap();
    let p = |n: &str| ClaimPath::parse(n).unwrap();
    s.claim_headers = vec![
        (p("email"), h("x-auth-email")),
        (p("tenant"), h("x-auth-tenant")),
        (p("groups"), h("x-auth-groups")),
        (p("org.name"), h("x-auth-org")),
        (p("absent"), h("x-auth-absent")),
    ];
    let c = claims(json!({
        "realm_access": {"roles": ["orders-reader", "admin"]},
        "roles": ["not-these"],
        "scope": "orders.read  orders.write",
        "email": "alice@example.com",
        "tenant": 42,
        "groups": ["eng", "ops"],
        "org": {"name": "Zoë & Co"},
    }));
    let t = token(&keys().rsa_a, Some("a"), &c);
    let id = check(&t, &s, &rsa_set()).unwrap();
    assert_eq!(id.roles, Names::from(["orders-reader", "admin"]));
    assert_eq!(id.scopes, Names::from(["orders.read", "orders.write"]));
    assert_eq!(
        *id.claim_headers,
        [
            (h("x-auth-email"), "alice@example.com".into()),
            (h("x-auth-tenant"), "42".into()),
            (h("x-auth-groups"), "eng,ops".into()),
            (h("x-auth-org"), "Zoë & Co".into()),
        ]
    );
    assert_eq!(id.claims.get("tenant"), Some(&json!(42)));
    assert_eq!(id.claims.get("realm_access").unwrap()["roles"][1], "admin");
    // Only the claims that conditions read are kept with the identity.
    let kept: Vec<&str> = id.claims.names().collect();
    assert_eq!(kept, ["realm_access", "tenant"]);
    assert_eq!(id.expires_at, Some(NOW + 600));
}

#[test]
fn default_claim_paths_are_roles_and_scope() {
    let s = settings();
    let c = claims(json!({"roles": ["a", 1, "b"], "scope": ["x", "y"]}));
    let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
    assert_eq!(id.roles, Names::from(["a", "b"]));
    assert_eq!(id.scopes, Names::from(["x", "y"]));
    // Wrong types give nothing, never a coerced value.
    let c = claims(json!({"roles": {"admin": true}, "scope": 7}));
    let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
    assert!(id.roles.is_empty());
    assert!(id.scopes.is_empty());
}

#[test]
fn claim_headers_with_unsafe_values_are_dropped() {
    let mut s = settings();
    let email = HeaderName::parse("x-auth-email").unwrap();
    s.claim_headers = vec![(ClaimPath::parse("email").unwrap(), email.clone())];
    for bad in [
        "alice@example.com\r\nx-auth-subject: admin",
        "alice@example.com\nx-admin: 1",
        "alice\r",
        "alice\0",
        "alice\tbob",
        "alice\u{7f}",
        "alice\u{85}",
    ] {
        let c = claims(json!({ "email": bad }));
        let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
        assert!(id.claim_headers.is_empty(), "{bad:?} was emitted");
    }
    let c = claims(json!({"email": ["a@x.io", "b\r\n@x.io"]}));
    let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
    assert!(id.claim_headers.is_empty(), "{:?}", id.claim_headers);
}

#[test]
fn claim_headers_that_would_be_trimmed_or_split_are_dropped() {
    let mut s = settings();
    let h = |n: &str| HeaderName::parse(n).unwrap();
    s.claim_headers = vec![
        (ClaimPath::parse("email").unwrap(), h("x-auth-email")),
        (ClaimPath::parse("groups").unwrap(), h("x-auth-groups")),
    ];
    let emitted = |c: Value| {
        let id = check(&token(&keys().rsa_a, Some("a"), &claims(c)), &s, &rsa_set()).unwrap();
        id.claim_headers
            .iter()
            .map(|(h, v)| (h.as_str().to_owned(), v.to_string()))
            .collect::<Vec<_>>()
    };
    for bad in [" a@x.io", "a@x.io ", "\u{a0}a@x.io", ""] {
        let c = json!({"email": bad, "groups": [bad]});
        assert_eq!(emitted(c), [], "{bad:?}");
    }
    let c = json!({"email": "a@x.io", "groups": ["eng", "ops,admin"]});
    assert_eq!(
        emitted(c),
        [("x-auth-email".to_owned(), "a@x.io".to_owned())]
    );
    let c = json!({"groups": []});
    assert_eq!(emitted(c), []);
    let c = json!({"email": "Zoë O'Neil <z@x.io>", "groups": ["on call", "eng"]});
    assert_eq!(
        emitted(c),
        [
            ("x-auth-email".to_owned(), "Zoë O'Neil <z@x.io>".to_owned()),
            ("x-auth-groups".to_owned(), "on call,eng".to_owned()),
        ]
    );
}

#[test]
fn unrepresentable_subjects_roles_and_scopes_refuse_the_token() {
    use crate::authn::claims::Part;
    let mut s = settings();
    s.roles_claim = ClaimPath::parse("realm_access.roles").unwrap();
    let with = |extra: Value| token(&keys().rsa_a, Some("a"), &claims(extra));
    let set = rsa_set();
    let sub = TokenError::Unrepresentable(Part::Claim("sub"));
    let role = TokenError::Unrepresentable(Part::Role);
    let scope = TokenError::Unrepresentable(Part::Scope);
    let cases = [
        (json!({"sub": " admin"}), sub),
        (json!({"sub": "admin\t"}), sub),
        (json!({"sub": "alice\r\nx-admin: 1"}), sub),
        (json!({"sub": "\u{2003}admin"}), sub),
        (json!({"sub": "alice\u{85}"}), sub),
        (json!({"sub": ""}), sub),
        (
            json!({"realm_access": {"roles": ["viewer", " admin"]}}),
            role,
        ),
        (json!({"realm_access": {"roles": ["viewer,admin"]}}), role),
        (
            json!({"realm_access": {"roles": ["viewer", "admin\u{0}"]}}),
            role,
        ),
        (json!({"realm_access": {"roles": "viewer\tadmin"}}), role),
        (json!({"scope": ["orders.read orders.write"]}), scope),
        (json!({"scope": ["orders.read\u{a0}"]}), scope),
        (json!({"scope": "orders.read\u{3000}orders.write"}), scope),
        (json!({"scope": "orders.read\norders.write"}), scope),
    ];
    for (extra, want) in cases {
        assert_eq!(refused(&with(extra.clone()), &s, &set), want, "{extra}");
    }
    assert_eq!(sub.to_string(), "claim `sub` is not representable");
    assert_eq!(role.to_string(), "the roles claim is not representable");
    assert_eq!(scope.to_string(), "the scopes claim is not representable");
    // Inner spaces are fine in a subject and a role; empty members and non-strings are
    // no names at all; the roles of another claim than the configured one are not read.
    let fine = json!({
        "sub": "Zoë O'Neil",
        "realm_access": {"roles": ["read only", "", 7, "admin"]},
        "roles": [" not read"],
        "scope": "  orders.read   orders.write ",
    });
    let id = check(&with(fine), &s, &set).unwrap();
    assert_eq!(id.subject.as_deref(), Some("Zoë O'Neil"));
    assert_eq!(id.roles, Names::from(["read only", "admin"]));
    assert_eq!(id.scopes, Names::from(["orders.read", "orders.write"]));
}

// === the size cap in verify ===

#[test]
fn a_token_of_exactly_max_token_bytes_verifies() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    let mut s = settings();
    s.max_token_bytes = t.len();
    assert!(check(&t, &s, &rsa_set()).is_ok());
    // Parsed under a larger cap, verified under one of exactly its length.
    let parsed = parse(&t, t.len() + 100).unwrap();
    let id = verify(parsed, &s, &rsa_set(), &provider(), NOW, &[]);
    assert!(id.is_ok(), "{id:?}");
    s.max_token_bytes = t.len() - 1;
    let parsed = parse(&t, t.len() + 100).unwrap();
    let err = verify(parsed, &s, &rsa_set(), &provider(), NOW, &[]).unwrap_err();
    assert_eq!(err, TokenError::TooLarge);
}

// === the issuer a token names, before it is trusted ===

#[test]
fn a_parsed_token_names_its_issuer_for_picking_a_provider() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    assert_eq!(parse(&t, 16_384).unwrap().issuer(), Some(ISS));
    let other = token(
        &keys().rsa_a,
        Some("a"),
        &claims(json!({"iss": "https://other.example.com"})),
    );
    assert_eq!(
        parse(&other, 16_384).unwrap().issuer(),
        Some("https://other.example.com")
    );
    let none = token(&keys().rsa_a, Some("a"), &claims(json!({"iss": null})));
    assert_eq!(parse(&none, 16_384).unwrap().issuer(), None);
    let number = token(&keys().rsa_a, Some("a"), &claims(json!({"iss": 7})));
    assert_eq!(
        parse(&number, 16_384).unwrap().issuer(),
        None,
        "not a string"
    );
}
