//! ES512 and the RFC 9864 algorithm name `Ed25519` through `Authorization/Check`: tokens
//! signed with P-521 and Ed25519 keys generated at test time, keys from an inline JWKS
//! and a JWKS file; a changed signature, another key, a P-521 key with a lying header,
//! and an algorithm the provider does not list are each 401 `invalid_token` with its
//! challenge.

mod check_setup;
mod common;

use serde_json::json;

use check_setup::{ISS, assert_invalid_token, claims};
use common::{Req, TestKey, Ward, allowed, b64url, jwks_of, set_header_map};
use testkeys::P521Key;
use ward::authn::jwt::Alg;

struct Keys {
    p521: P521Key,
    ed25519: TestKey,
    p384: TestKey,
}

fn config(k: &Keys) -> String {
    format!(
        r#"
providers:
  - name: es512
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {p521}
      algorithms: [ES512]
  - name: ed
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_file: keys/ed.json
      algorithms: [Ed25519]
  - name: defaults
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_file: keys/all.json
  - name: no-es512
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_file: keys/all.json
      algorithms: [ES256, ES384, EdDSA]
routes:
  - name: es512
    match: {{ path_prefix: /es512 }}
    providers: [es512]
  - name: ed
    match: {{ path_prefix: /ed }}
    providers: [ed]
  - name: defaults
    match: {{ path_prefix: /defaults }}
    providers: [defaults]
  - name: no-es512
    match: {{ path_prefix: /no-es512 }}
    providers: [no-es512]
"#,
        p521 = k.p521.jwks(),
    )
}

async fn start() -> (Ward, Keys) {
    let k = Keys {
        p521: P521Key::generate(),
        ed25519: TestKey::generate(Alg::Ed25519),
        p384: TestKey::generate(Alg::ES384),
    };
    let all = json!({"keys": [k.p521.jwk(), k.ed25519.jwk(), k.p384.jwk()]});
    let ward = Ward::builder(&config(&k))
        .file("keys/ed.json", jwks_of(&[&k.ed25519]).to_string())
        .file("keys/all.json", all.to_string())
        .start()
        .await;
    (ward, k)
}

#[tokio::test]
async fn es512_and_ed25519_tokens_are_allowed() {
    let (ward, k) = start().await;
    let es512 = k.p521.sign(&claims("es512-user"));
    let ed = k.ed25519.sign(&claims("ed-user"));
    assert_eq!(
        k.ed25519.jwk()["alg"],
        "EdDSA",
        "testkeys publishes the key as EdDSA"
    );
    // The token's header names the algorithm `Ed25519`, as RFC 9864 signers write it.
    let ed_named = k.ed25519.sign_parts(
        &json!({"alg": "Ed25519", "kid": k.ed25519.kid(), "typ": "JWT"}).to_string(),
        &claims("ed-named").to_string(),
    );
    for (path, tok, sub) in [
        ("/es512", &es512, "es512-user"),
        ("/ed", &ed, "ed-user"),
        ("/ed", &ed_named, "ed-named"),
        ("/defaults", &es512, "es512-user"),
        ("/defaults", &ed_named, "ed-named"),
    ] {
        let r = ward.check(Req::get(path).bearer(tok).to_map()).await;
        assert_eq!(set_header_map(allowed(&r))["x-auth-subject"], sub, "{path}");
    }
}

#[tokio::test]
async fn bad_es512_tokens_are_invalid_token() {
    let (ward, k) = start().await;
    let good = k.p521.sign(&claims("alice"));
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{input}.{}", String::from_utf8(flipped).unwrap());
    let short = format!("{input}.{}", &sig[..sig.len() - 4]);
    let stranger = P521Key::generate().sign_parts(
        &json!({"alg": "ES512", "kid": k.p521.kid(), "typ": "JWT"}).to_string(),
        &claims("mallory").to_string(),
    );
    // A P-384 signature under an ES512 header naming the P-521 key's kid.
    let p384_sig = k.p384.sign(&claims("mallory"));
    let lying = format!(
        "{}.{}.{}",
        b64url(json!({"alg": "ES512", "kid": k.p521.kid()}).to_string()),
        b64url(claims("mallory").to_string()),
        p384_sig.rsplit_once('.').unwrap().1
    );
    let cases = [
        ("/es512", flipped.as_str(), "signature verification failed"),
        ("/es512", short.as_str(), "signature verification failed"),
        ("/es512", stranger.as_str(), "signature verification failed"),
        ("/defaults", lying.as_str(), "signature verification failed"),
        ("/no-es512", good.as_str(), "algorithm not allowed"),
        (
            "/es512",
            &k.ed25519.sign(&claims("eve")),
            "algorithm not allowed",
        ),
    ];
    for (path, tok, detail) in cases {
        let r = ward.check(Req::get(path).bearer(tok).to_map()).await;
        assert_invalid_token(&r, Some(detail), &format!("{path} {detail}"));
    }
}
