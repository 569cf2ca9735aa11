//! ES512 and the RFC 9864 name `Ed25519`: tokens signed with real keys (P-521 through
//! aws-lc-rs, as `ward token sign` makes them), the RFC 8037 Appendix A.4 test vector,
//! and Wycheproof-style negative vectors: a changed signature, signatures of the wrong
//! length, out-of-range scalars, a key of the wrong curve for the algorithm, and the
//! high-S twin of a valid signature (which aws-lc accepts: ECDSA signatures are
//! malleable, and JWS does not ask for low S).

use aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED_SIGNING;

use super::signatures::{signature_of, with_signature};
use super::*;

/// The order of the P-521 group, big-endian, 66 bytes (SEC 2 §2.6.1).
const P521_N: &str = "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409";

fn p521() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).unwrap();
        SigningKey::from_bytes(&pem(pair.to_pkcs8v1().unwrap().as_ref()), Alg::ES512).unwrap()
    })
}

fn ed25519(alg: Alg) -> SigningKey {
    let pair = Ed25519KeyPair::generate().unwrap();
    SigningKey::from_bytes(&pem(pair.to_pkcs8v1().unwrap().as_ref()), alg).unwrap()
}

fn with_algorithms(algs: &[Alg]) -> JwtSettings {
    let mut s = settings();
    s.algorithms = algs.to_vec();
    s
}

fn set_of(key: &SigningKey) -> KeySet {
    KeySet::from_jwks(&key.jwks()).unwrap().0
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `a - b` for big-endian integers of one length, `a >= b`.
fn sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + 256 * borrow) as u8;
    }
    assert_eq!(borrow, 0);
    out
}

// === ES512 ===

#[test]
fn es512_tokens_verify_with_the_p521_jwk() {
    let key = p521();
    let jwk = &key.jwks()["keys"][0];
    assert_eq!(jwk["crv"], "P-521");
    assert_eq!(jwk["alg"], "ES512");
    let set = set_of(key);
    assert_eq!(set.len(), 1);
    let t = key.sign(&claims(json!({}))).unwrap();
    assert_eq!(signature_of(&t).len(), 132, "r || s, 66 bytes each");
    let id = check(&t, &with_algorithms(&[Alg::ES512]), &set).unwrap();
    assert_eq!(id.subject.as_deref(), Some("alice"));
}

#[test]
fn es512_is_in_the_default_allow_list_but_not_in_an_explicit_one_without_it() {
    let yaml = format!(
        "providers:\n  - name: corp\n    jwt:\n      issuer: {ISS}\n      audiences: [orders-api]\n      jwks_uri: https://idp.example.com/jwks\nroutes:\n  - name: all\n    match: {{ path_prefix: / }}\n    providers: [corp]\n"
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = crate::config::load_str(&yaml, std::path::Path::new("."), &env).unwrap();
    let ProviderKind::Jwt(j) = &config.providers[0].kind else {
        unreachable!("a jwt provider")
    };
    for alg in [Alg::ES512, Alg::Ed25519, Alg::EdDSA] {
        assert!(j.algorithms.contains(&alg), "{alg:?}");
    }
    assert!(!j.algorithms.contains(&Alg::HS256));
    // The shared test settings list algorithms without ES512.
    let t = p521().sign(&claims(json!({}))).unwrap();
    assert_eq!(
        refused(&t, &settings(), &set_of(p521())),
        TokenError::Algorithm
    );
}

#[test]
fn a_changed_es512_signature_is_refused() {
    let s = with_algorithms(&[Alg::ES512]);
    let set = set_of(p521());
    let t = p521().sign(&claims(json!({}))).unwrap();
    let sig = signature_of(&t);
    for i in [0, 65, 66, 131] {
        let mut bad = sig.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            refused(&with_signature(&t, &bad), &s, &set),
            TokenError::Signature,
            "bit flipped in byte {i}"
        );
    }
    // Another payload under the same signature.
    let other = p521().sign(&claims(json!({"sub": "mallory"}))).unwrap();
    let (input, _) = other.rsplit_once('.').unwrap();
    let spliced = format!("{input}.{}", t.rsplit_once('.').unwrap().1);
    assert_eq!(refused(&spliced, &s, &set), TokenError::Signature);
}

#[test]
fn es512_signatures_of_the_wrong_length_or_out_of_range_are_refused() {
    let s = with_algorithms(&[Alg::ES512]);
    let set = set_of(p521());
    let t = p521().sign(&claims(json!({}))).unwrap();
    let sig = signature_of(&t);
    let (r, sv) = sig.split_at(66);
    let n = hex(P521_N);
    let zero = [0u8; 66];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one byte short", sig[..131].to_vec()),
        ("one byte long", [&sig[..], &[0]].concat()),
        ("one leading zero more", [&[0u8][..], &sig[..]].concat()),
        ("P-384 length (96)", sig[..96].to_vec()),
        ("P-256 length (64)", sig[..64].to_vec()),
        ("r only", r.to_vec()),
        // An ASN.1 DER signature, as some libraries emit instead of r || s.
        ("DER", {
            let int = |v: &[u8]| {
                let mut v = strip_leading_zeros_for_der(v);
                if v[0] & 0x80 != 0 {
                    v.insert(0, 0);
                }
                [&[0x02, v.len() as u8][..], &v].concat()
            };
            let body = [int(r), int(sv)].concat();
            [&[0x30, 0x81, body.len() as u8][..], &body].concat()
        }),
        ("r = 0", [&zero[..], sv].concat()),
        ("s = 0", [r, &zero[..]].concat()),
        ("r = n", [&n[..], sv].concat()),
        ("s = n", [r, &n[..]].concat()),
        ("all ones", vec![0xff; 132]),
    ];
    for (what, bad) in cases {
        assert_eq!(
            refused(&with_signature(&t, &bad), &s, &set),
            TokenError::Signature,
            "{what}"
        );
    }
}

fn strip_leading_zeros_for_der(v: &[u8]) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1);
    v[first..].to_vec()
}

#[test]
fn the_high_s_twin_of_an_es512_signature_is_accepted_as_aws_lc_does() {
    // (r, n - s) verifies whenever (r, s) does. aws-lc does not enforce low S (that is
    // a Bitcoin rule, not an ECDSA or JWS one); ward relies on neither form: a token is
    // identified by its whole text, and both forms say the same claims.
    let s = with_algorithms(&[Alg::ES512]);
    let set = set_of(p521());
    let t = p521().sign(&claims(json!({}))).unwrap();
    let sig = signature_of(&t);
    let high = [&sig[..66], &sub(&hex(P521_N), &sig[66..])].concat();
    assert_ne!(high, sig);
    assert!(check(&with_signature(&t, &high), &s, &set).is_ok());
}

#[test]
fn a_key_of_another_curve_never_verifies_es512() {
    let k = keys();
    let s = with_algorithms(&[Alg::ES256, Alg::ES384, Alg::ES512]);
    let c = claims(json!({}));
    // A P-384 JWK that claims ES512 is not a usable key.
    let mut lying = jwk(&k.p384, Some("p384"));
    lying["alg"] = "ES512".into();
    let (set, skipped) = KeySet::from_jwks(&json!({"keys": [lying]})).unwrap();
    assert!(set.is_empty());
    assert_eq!(
        skipped,
        vec![r#"keys[0] (kid "p384", alg "ES512"): `alg` does not match the key type"#]
    );
    // A P-521 key under a kid, with P-256 and P-384 keys under the same kid: an ES512
    // token is tried against the P-521 key only, and an ES256 or ES384 token (signed
    // by the P-521 key, header lying) is never tried against it.
    let mut p521_jwk = p521().jwks()["keys"][0].clone();
    p521_jwk["kid"] = "dup".into();
    let set = keyset(vec![
        jwk(&k.p256, Some("dup")),
        jwk(&k.p384, Some("dup")),
        p521_jwk,
    ]);
    let header = |alg: &str| json!({"typ": "JWT", "alg": alg, "kid": "dup"});
    let good = p521().sign_with_header(&header("ES512"), &c).unwrap();
    assert!(check(&good, &s, &set).is_ok());
    for alg in ["ES256", "ES384"] {
        let t = p521().sign_with_header(&header(alg), &c).unwrap();
        assert_eq!(refused(&t, &s, &set), TokenError::Signature, "{alg}");
    }
    // An ES512 header over a P-384 signature.
    let t = token_as(&k.p384, Alg::ES384, Some("dup"), &c);
    let (_, sig) = t.rsplit_once('.').unwrap();
    let h = URL_SAFE_NO_PAD.encode(header("ES512").to_string());
    let p = URL_SAFE_NO_PAD.encode(c.to_string());
    assert_eq!(
        refused(&format!("{h}.{p}.{sig}"), &s, &set),
        TokenError::Signature
    );
    // A P-521 JWK whose coordinates are P-384's length is skipped.
    let mut short = p521().jwks()["keys"][0].clone();
    short["x"] = jwk(&k.p384, None)["x"].clone();
    let (set, skipped) = KeySet::from_jwks(&json!({"keys": [short]})).unwrap();
    assert!(set.is_empty());
    assert!(
        skipped[0].ends_with("EC coordinates do not match `crv`"),
        "{skipped:?}"
    );
}

// === Ed25519 (RFC 9864) ===

/// RFC 8037 Appendix A.1 (the public key) and A.4 (a JWS over "Example of Ed25519
/// signing" with `{"alg":"EdDSA"}`).
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

#[test]
fn the_rfc_8037_vector_verifies_under_both_names_and_a_changed_one_does_not() {
    let (input, sig) = RFC8037_JWS.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    for jwk_alg in [None, Some("EdDSA"), Some("Ed25519")] {
        let mut j = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X});
        if let Some(a) = jwk_alg {
            j["alg"] = a.into();
        }
        let set = keyset(vec![j]);
        for alg in [Alg::EdDSA, Alg::Ed25519] {
            let key = set.candidates(None, alg)[0];
            assert!(
                key.verify(alg, input.as_bytes(), &sig),
                "{jwk_alg:?} {alg:?}"
            );
            let mut bad = sig.clone();
            bad[63] ^= 0x01;
            assert!(
                !key.verify(alg, input.as_bytes(), &bad),
                "{jwk_alg:?} {alg:?}"
            );
            assert!(!key.verify(alg, input.as_bytes(), &sig[..63]), "short");
            assert!(
                !key.verify(alg, b"Example of Ed25519 signinG", &sig),
                "message"
            );
        }
        // The Ed25519 key never verifies another family's algorithm.
        assert!(set.candidates(None, Alg::ES256).is_empty());
        assert!(set.candidates(None, Alg::ES512).is_empty());
    }
}

#[test]
fn ed25519_tokens_verify_with_keys_published_under_either_name() {
    let key = ed25519(Alg::Ed25519);
    assert_eq!(key.jwks()["keys"][0]["alg"], "Ed25519");
    let t = key.sign(&claims(json!({}))).unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "Ed25519");
    for listed in [
        &[Alg::Ed25519][..],
        &[Alg::EdDSA],
        &[Alg::RS256, Alg::Ed25519],
    ] {
        let s = with_algorithms(listed);
        for published in [Some("Ed25519"), Some("EdDSA"), None] {
            let mut j = key.jwks()["keys"][0].clone();
            match published {
                Some(a) => j["alg"] = a.into(),
                None => {
                    j.as_object_mut().unwrap().remove("alg");
                }
            }
            let set = keyset(vec![j]);
            let id = check(&t, &s, &set)
                .unwrap_or_else(|e| panic!("listed {listed:?}, published {published:?}: {e}"));
            assert_eq!(id.subject.as_deref(), Some("alice"));
        }
    }
    // Not listed at all: refused, under either name.
    let s = with_algorithms(&[Alg::RS256, Alg::ES256]);
    assert_eq!(refused(&t, &s, &set_of(&key)), TokenError::Algorithm);
    let eddsa = ed25519(Alg::EdDSA);
    let t = eddsa.sign(&claims(json!({}))).unwrap();
    assert_eq!(refused(&t, &s, &set_of(&eddsa)), TokenError::Algorithm);
}

#[test]
fn an_ed25519_token_by_another_key_or_changed_is_refused() {
    let s = with_algorithms(&[Alg::Ed25519]);
    let (a, b) = (ed25519(Alg::Ed25519), ed25519(Alg::Ed25519));
    let t = b.sign(&claims(json!({}))).unwrap();
    // b's token presented under a's kid.
    let mut j = a.jwks()["keys"][0].clone();
    j["kid"] = b.kid().into();
    assert_eq!(refused(&t, &s, &keyset(vec![j])), TokenError::Signature);
    let mut bad = signature_of(&t);
    bad[0] ^= 0x80;
    assert_eq!(
        refused(&with_signature(&t, &bad), &s, &set_of(&b)),
        TokenError::Signature
    );
    assert_eq!(
        refused(
            &with_signature(&t, &signature_of(&t)[..32]),
            &s,
            &set_of(&b)
        ),
        TokenError::Signature
    );
}
