//! Proof checks against proofs signed with real keys (tools/testkeys), assembled by hand
//! so that each check can be failed on its own with a valid signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use testkeys::Key;

use super::*;

const NOW: u64 = 1_800_000_000;
const URL: &str = "https://api.example.com/orders";
const TOKEN: &str = "a.b.c";

fn jkt(k: &Key) -> [u8; 32] {
    URL_SAFE_NO_PAD.decode(k.kid()).unwrap().try_into().unwrap()
}

fn public_jwk(k: &Key) -> Value {
    let mut jwk = k.jwk();
    let o = jwk.as_object_mut().unwrap();
    o.remove("kid");
    o.remove("use");
    jwk
}

fn claims() -> Value {
    json!({
        "htm": "GET",
        "htu": URL,
        "iat": NOW,
        "jti": "j-1",
        "ath": URL_SAFE_NO_PAD.encode(crate::digest::sha256(TOKEN.as_bytes())),
    })
}

fn proof(k: &Key, header: Value, claims: Value) -> String {
    k.sign_parts(&header.to_string(), &claims.to_string())
}

fn header(k: &Key, alg: &str) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(k)})
}

fn request(k: &Key) -> ([u8; 32], String) {
    (jkt(k), htu::normalise(URL).unwrap())
}

fn check(proof: &str, jkt: &[u8; 32], url: &str) -> Result<Accepted, ProofError> {
    verify(
        proof,
        &ProofRequest {
            method: "GET",
            url,
            token: TOKEN,
            jkt,
            now: NOW,
            window: 60,
            leeway: 5,
        },
    )
}

#[test]
fn a_proof_from_every_asymmetric_family_is_accepted() {
    for (alg, name) in [
        (Algorithm::ES256, "ES256"),
        (Algorithm::ES384, "ES384"),
        (Algorithm::EdDSA, "EdDSA"),
        (Algorithm::RS256, "RS256"),
        (Algorithm::PS256, "PS256"),
    ] {
        let k = Key::generate(alg);
        let (jkt, url) = request(&k);
        let ok = check(&proof(&k, header(&k, name), claims()), &jkt, &url);
        assert_eq!(ok.map(|a| a.forget_at), Ok(NOW + 66), "{name}");
    }
}

#[test]
fn each_check_refuses_on_its_own() {
    let k = Key::generate(Algorithm::ES256);
    let other = Key::generate(Algorithm::ES256);
    let (jkt, url) = request(&k);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        proof(&k, header(&k, "ES256"), c)
    };
    let cases: Vec<(String, ProofError)> = vec![
        (with(&|c| c["htm"] = "POST".into()), ProofError::Method),
        (
            with(&|c| c["htu"] = "https://api.example.com/admin".into()),
            ProofError::Url,
        ),
        (with(&|c| c["htu"] = "not a url".into()), ProofError::Url),
        (with(&|c| c["iat"] = (NOW - 66).into()), ProofError::Iat),
        (with(&|c| c["iat"] = (NOW + 6).into()), ProofError::Iat),
        (with(&|c| c["iat"] = "now".into()), ProofError::Iat),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("ath");
            }),
            ProofError::Ath,
        ),
        (
            with(&|c| c["ath"] = URL_SAFE_NO_PAD.encode([0u8; 32]).into()),
            ProofError::Ath,
        ),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            ProofError::Jti,
        ),
        (with(&|c| c["jti"] = "".into()), ProofError::Jti),
        // Signed by another key than the one in its header.
        (
            proof(&other, header(&k, "ES256"), claims()),
            ProofError::Signature,
        ),
        // The right signature by a key the token is not bound to.
        (
            proof(&other, header(&other, "ES256"), claims()),
            ProofError::Thumbprint,
        ),
        (
            proof(
                &k,
                json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk(&k)}),
                claims(),
            ),
            ProofError::Type,
        ),
        (
            proof(&k, json!({"alg": "ES256", "jwk": public_jwk(&k)}), claims()),
            ProofError::Type,
        ),
        (
            proof(&k, header(&k, "HS256"), claims()),
            ProofError::Algorithm,
        ),
        (
            proof(&k, header(&k, "none"), claims()),
            ProofError::Algorithm,
        ),
        (
            proof(&k, json!({"typ": "dpop+jwt", "alg": "ES256"}), claims()),
            ProofError::Key,
        ),
        ("a.b".into(), ProofError::Malformed),
        ("x".repeat(MAX_PROOF_BYTES + 1), ProofError::TooLarge),
    ];
    for (p, want) in cases {
        assert_eq!(check(&p, &jkt, &url), Err(want), "{want:?}");
    }
}

#[test]
fn a_private_key_in_the_header_is_refused() {
    let k = Key::generate(Algorithm::ES256);
    let (jkt, url) = request(&k);
    let mut jwk = public_jwk(&k);
    jwk["d"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
    let p = proof(
        &k,
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
        claims(),
    );
    assert_eq!(check(&p, &jkt, &url), Err(ProofError::PrivateKey));
    let secret = Key::generate(Algorithm::HS256);
    let p = proof(
        &secret,
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": secret.jwk()}),
        claims(),
    );
    assert_eq!(check(&p, &jkt, &url), Err(ProofError::PrivateKey));
}

#[test]
fn the_thumbprint_is_rfc_7638s() {
    // RFC 7638 §3.1's example key and thumbprint.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    let t = thumbprint(jwk.as_object().unwrap()).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(t),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    let k = Key::generate(Algorithm::EdDSA);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(thumbprint(k.jwk().as_object().unwrap()).unwrap()),
        k.kid(),
        "jsonwebtoken's thumbprint agrees"
    );
}

#[test]
fn the_challenge_lists_the_proof_algorithms() {
    let c = challenge(&TokenError::DpopProof(ProofError::Replayed)).unwrap();
    assert!(c.starts_with(r#"DPoP algs="RS256 "#), "{c}");
    assert!(c.contains(r#"error="invalid_dpop_proof""#), "{c}");
    assert!(!c.contains("HS256"), "{c}");
    let c = challenge(&TokenError::DpopRequired).unwrap();
    assert!(c.contains(r#"error="invalid_token""#), "{c}");
    assert_eq!(challenge(&TokenError::Expired), None);
}
