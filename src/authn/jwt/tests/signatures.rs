//! The algorithm allow-list, the key-family guard, signatures, and `kid` selection.

use super::*;

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
pub(super) fn with_signature(t: &str, sig: &[u8]) -> String {
    let (input, _) = t.rsplit_once('.').unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub(super) fn signature_of(t: &str) -> Vec<u8> {
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
