//! JWKS parsing: which keys are kept, which are skipped and why, and that one bad key
//! never voids the others. Real public keys come from keys generated with aws-lc-rs and
//! turned into JWKs by [`SigningKey`]; broken keys are those JWKs with one field changed.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::*;
use crate::devtoken::SigningKey;

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

/// The public JWK of a fresh key for `alg`, as `ward token jwks` prints it, minus `kid`,
/// `alg` and `use` (each test adds what it is about).
fn bare_jwk(pem_or_secret: &[u8], alg: Alg) -> Value {
    let key = SigningKey::from_bytes(pem_or_secret, alg).unwrap();
    let mut jwk = key.jwks()["keys"][0].clone();
    let o = jwk.as_object_mut().unwrap();
    o.remove("kid");
    o.remove("alg");
    o.remove("use");
    jwk
}

struct Jwks {
    rsa: Value,
    p256: Value,
    p384: Value,
    ed25519: Value,
    oct: Value,
}

fn jwks() -> &'static Jwks {
    static KEYS: OnceLock<Jwks> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa: Pkcs8V1Der<'static> = rsa.as_der().unwrap();
        let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        Jwks {
            rsa: bare_jwk(&pem(rsa.as_ref()), Alg::RS256),
            p256: bare_jwk(&pem(p256.to_pkcs8v1().unwrap().as_ref()), Alg::ES256),
            p384: bare_jwk(&pem(p384.to_pkcs8v1().unwrap().as_ref()), Alg::ES384),
            ed25519: bare_jwk(&pem(ed.to_pkcs8v1().unwrap().as_ref()), Alg::EdDSA),
            oct: bare_jwk(&[0x5a; 32], Alg::HS256),
        }
    })
}

/// `jwk` with `changes` merged in (a `null` removes the member).
fn with(jwk: &Value, changes: Value) -> Value {
    let mut out = jwk.clone();
    let o = out.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            o.remove(k);
        } else {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

fn parse(keys: &[Value]) -> (KeySet, Vec<String>) {
    KeySet::from_jwks(&json!({ "keys": keys })).expect("a JWKS")
}

/// The one key of `jwk` is skipped, for exactly this reason.
fn assert_skipped(jwk: Value, why: &str) {
    let (set, skipped) = parse(std::slice::from_ref(&jwk));
    assert!(set.is_empty(), "kept {jwk}");
    // How the key is named is `a_skipped_key_is_named_by_its_kid_and_alg`'s to test.
    assert_eq!(
        skipped,
        vec![format!("keys[0]{}: {why}", named(&jwk))],
        "{jwk}"
    );
}

/// The one key of `jwk` is kept, with this kind.
fn assert_kept(jwk: Value, kind: KeyKind) {
    let (set, skipped) = parse(std::slice::from_ref(&jwk));
    assert!(skipped.is_empty(), "{jwk}: {skipped:?}");
    assert_eq!(set.len(), 1);
    assert_eq!(set.keys[0].kind, kind, "{jwk}");
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// === usable keys ===

#[test]
fn one_key_of_every_family_is_kept() {
    let k = jwks();
    assert_kept(k.rsa.clone(), KeyKind::Rsa);
    assert_kept(k.p256.clone(), KeyKind::EcP256);
    assert_kept(k.p384.clone(), KeyKind::EcP384);
    assert_kept(k.ed25519.clone(), KeyKind::Ed25519);
    assert_kept(k.oct.clone(), KeyKind::Oct);
}

#[test]
fn kid_alg_and_use_sig_are_read() {
    let (set, skipped) = parse(&[with(
        &jwks().p256,
        json!({"kid": "k1", "alg": "ES256", "use": "sig", "key_ops": ["verify"]}),
    )]);
    assert!(skipped.is_empty(), "{skipped:?}");
    let key = &set.keys[0];
    assert_eq!(key.kid.as_deref(), Some("k1"));
    assert_eq!(key.alg, Some(Alg::ES256));
    assert!(set.has_kid("k1"));
    assert!(!set.has_kid("k2"));
}

// === keys that must never verify ===

#[test]
fn use_enc_is_skipped() {
    assert_skipped(
        with(&jwks().rsa, json!({"use": "enc"})),
        "`use` is not `sig`",
    );
    assert_skipped(
        with(&jwks().oct, json!({"use": "enc"})),
        "`use` is not `sig`",
    );
    assert_skipped(with(&jwks().p256, json!({"use": 1})), "`use` is not `sig`");
}

#[test]
fn key_ops_without_verify_is_skipped() {
    let why = "`key_ops` does not include `verify`";
    assert_skipped(
        with(&jwks().rsa, json!({"key_ops": ["encrypt", "wrapKey"]})),
        why,
    );
    assert_skipped(with(&jwks().rsa, json!({"key_ops": ["sign"]})), why);
    assert_skipped(with(&jwks().rsa, json!({"key_ops": []})), why);
    assert_skipped(with(&jwks().rsa, json!({"key_ops": "verify"})), why);
    assert_kept(
        with(&jwks().rsa, json!({"key_ops": ["sign", "verify"]})),
        KeyKind::Rsa,
    );
}

#[test]
fn ec_crv_must_match_the_coordinates() {
    let why = "EC coordinates do not match `crv`";
    // P-256 coordinates (32 bytes) labelled P-384, and the other way round.
    assert_skipped(with(&jwks().p256, json!({"crv": "P-384"})), why);
    assert_skipped(with(&jwks().p384, json!({"crv": "P-256"})), why);
    // One coordinate of the wrong length.
    let short_y = b64(&[1u8; 31]);
    assert_skipped(with(&jwks().p256, json!({"y": short_y})), why);
}

#[test]
fn ec_point_not_on_the_curve_is_skipped() {
    // Right lengths, but (1..1, 2..2) is not a P-256 point: this key can never verify,
    // so it must not count as usable (for `ward validate` and `/readyz`).
    let off_curve = with(
        &jwks().p256,
        json!({"x": b64(&[1; 32]), "y": b64(&[2; 32])}),
    );
    assert_skipped(off_curve, "EC point is not on the curve");
}

#[test]
fn ec_curves_other_than_p256_p384_and_p521_are_skipped() {
    let why = "EC `crv` must be P-256, P-384 or P-521";
    // P-256 coordinates under `crv: P-521` are the wrong length for it.
    assert_skipped(
        with(&jwks().p256, json!({"crv": "P-521"})),
        "EC coordinates do not match `crv`",
    );
    assert_skipped(with(&jwks().p256, json!({"crv": "secp256k1"})), why);
    assert_skipped(with(&jwks().p256, json!({"crv": null})), why);
}

#[test]
fn ec_with_missing_coordinate_is_skipped() {
    assert_skipped(with(&jwks().p256, json!({"y": null})), "missing `y`");
    assert_skipped(
        with(&jwks().p256, json!({"x": "not base64!"})),
        "`x` is not base64url",
    );
}

#[test]
fn rsa_below_2048_bits_is_skipped() {
    // A 1024-bit modulus (top bit set), and one of 2047 bits.
    let mut n1024 = vec![0xc5u8; 128];
    n1024[127] |= 1;
    assert_skipped(
        with(&jwks().rsa, json!({"n": b64(&n1024)})),
        "RSA modulus of 1024 bits is below 2048",
    );
    let mut n2047 = vec![0xc5u8; 256];
    n2047[0] = 0x7f;
    assert_skipped(
        with(&jwks().rsa, json!({"n": b64(&n2047)})),
        "RSA modulus of 2047 bits is below 2048",
    );
    // Leading zero bytes do not count as bits, nor against them.
    let mut padded = vec![0u8];
    padded.extend(
        URL_SAFE_NO_PAD
            .decode(jwks().rsa["n"].as_str().unwrap())
            .unwrap(),
    );
    assert_kept(with(&jwks().rsa, json!({"n": b64(&padded)})), KeyKind::Rsa);
    let mut padded_small = vec![0u8; 200];
    padded_small.extend(&n1024);
    assert_skipped(
        with(&jwks().rsa, json!({"n": b64(&padded_small)})),
        "RSA modulus of 1024 bits is below 2048",
    );
}

#[test]
fn rsa_empty_or_zero_modulus_is_skipped_not_a_panic() {
    for n in ["", "AA", "AAAA"] {
        let jwk = with(&jwks().rsa, json!({ "n": n }));
        let (set, skipped) = parse(&[jwk]);
        assert!(set.is_empty(), "n = {n:?} was kept");
        assert_eq!(skipped.len(), 1);
    }
}

#[test]
fn rsa_bad_exponent_is_skipped() {
    assert_skipped(
        with(&jwks().rsa, json!({"e": ""})),
        "RSA exponent is invalid",
    );
    assert_skipped(
        with(&jwks().rsa, json!({"e": b64(&[1; 9])})),
        "RSA exponent is invalid",
    );
    assert_skipped(with(&jwks().rsa, json!({"e": null})), "missing `e`");
}

#[test]
fn rsa_exponent_leading_zeros_are_not_part_of_it() {
    // Like the modulus, a big-endian integer: `AAEAAQ` is 65537, `AAA` is zero.
    assert_eq!(jwks().rsa["e"], "AQAB");
    assert_kept(
        with(&jwks().rsa, json!({"e": b64(&[0, 1, 0, 1])})),
        KeyKind::Rsa,
    );
    assert_skipped(
        with(&jwks().rsa, json!({"e": b64(&[0, 0])})),
        "RSA exponent is invalid",
    );
}

#[test]
fn okp_must_be_a_32_byte_ed25519_key() {
    assert_skipped(
        with(&jwks().ed25519, json!({"crv": "Ed448"})),
        "OKP `crv` must be Ed25519",
    );
    assert_skipped(
        with(&jwks().ed25519, json!({"crv": "X25519"})),
        "OKP `crv` must be Ed25519",
    );
    assert_skipped(
        with(&jwks().ed25519, json!({"x": b64(&[9; 31])})),
        "Ed25519 key is not 32 bytes",
    );
}

#[test]
fn unknown_or_missing_kty_is_skipped() {
    assert_skipped(
        with(&jwks().rsa, json!({"kty": "PQC"})),
        "unsupported `kty` PQC",
    );
    assert_skipped(
        with(&jwks().rsa, json!({"kty": "rsa"})),
        "unsupported `kty` rsa",
    );
    assert_skipped(with(&jwks().rsa, json!({"kty": null})), "missing `kty`");
}

#[test]
fn oct_shorter_than_32_bytes_is_skipped() {
    let why = "an HMAC key shorter than 32 bytes is refused";
    assert_skipped(with(&jwks().oct, json!({"k": b64(&[7; 31])})), why);
    assert_skipped(with(&jwks().oct, json!({"k": ""})), why);
    assert_kept(with(&jwks().oct, json!({"k": b64(&[7; 32])})), KeyKind::Oct);
}

#[test]
fn alg_disagreeing_with_the_key_is_skipped() {
    let why = "`alg` does not match the key type";
    let k = jwks();
    assert_skipped(with(&k.rsa, json!({"alg": "ES256"})), why);
    assert_skipped(with(&k.rsa, json!({"alg": "HS256"})), why);
    assert_skipped(with(&k.p256, json!({"alg": "ES384"})), why);
    assert_skipped(with(&k.p384, json!({"alg": "ES256"})), why);
    assert_skipped(with(&k.ed25519, json!({"alg": "ES256"})), why);
    assert_skipped(with(&k.oct, json!({"alg": "RS256"})), why);
    // Not a signature algorithm ward knows at all.
    let unknown = "`alg` is not a supported signature algorithm";
    assert_skipped(with(&k.rsa, json!({"alg": "RSA-OAEP"})), unknown);
    assert_skipped(with(&k.oct, json!({"alg": "none"})), unknown);
    assert_skipped(with(&k.rsa, json!({"alg": 256})), unknown);
}

#[test]
fn non_string_kid_is_skipped() {
    assert_skipped(
        with(&jwks().rsa, json!({"kid": 7})),
        "`kid` is not a string",
    );
    assert_skipped(
        with(&jwks().rsa, json!({"kid": ["a"]})),
        "`kid` is not a string",
    );
}

#[test]
fn a_key_that_is_not_an_object_is_skipped() {
    let (set, skipped) = parse(&[json!("RSA"), jwks().rsa.clone()]);
    assert_eq!(set.len(), 1);
    assert_eq!(skipped, vec!["keys[0]: not an object".to_string()]);
}

// === one bad key never voids the set ===

#[test]
fn a_bad_key_does_not_void_the_good_ones() {
    let k = jwks();
    let (set, skipped) = parse(&[
        with(&k.rsa, json!({"kid": "enc", "use": "enc"})),
        with(&k.p256, json!({"kid": "good"})),
        with(&k.oct, json!({"kid": "weak", "k": b64(&[1; 16])})),
    ]);
    assert_eq!(set.len(), 1);
    assert!(set.has_kid("good"));
    assert!(!set.has_kid("enc"), "a skipped key's kid is not known");
    assert!(!set.has_kid("weak"));
    assert_eq!(
        skipped,
        vec![
            r#"keys[0] (kid "enc"): `use` is not `sig`"#.to_string(),
            r#"keys[2] (kid "weak"): an HMAC key shorter than 32 bytes is refused"#.to_string(),
        ]
    );
}

#[test]
fn an_empty_set_is_a_jwks_without_keys() {
    let (set, skipped) = parse(&[]);
    assert!(set.is_empty());
    assert!(skipped.is_empty());
}

#[test]
fn not_a_jwks_is_an_error() {
    for doc in [
        json!([jwks().rsa.clone()]),
        jwks().rsa.clone(),
        json!({"keys": jwks().rsa.clone()}),
        json!({"keys": "none"}),
        json!("keys"),
        Value::Null,
    ] {
        assert_eq!(
            KeySet::from_jwks(&doc).err(),
            Some(JwksError::NotAJwks),
            "{doc}"
        );
    }
}

// === candidates ===

#[test]
fn candidates_follow_kid_and_alg() {
    let k = jwks();
    let (set, _) = parse(&[
        with(&k.rsa, json!({"kid": "r", "alg": "RS256"})),
        with(&k.rsa, json!({"kid": "any-rsa"})),
        with(&k.p256, json!({"kid": "r"})),
        with(&k.oct, json!({"kid": "h"})),
    ]);
    let kinds = |kid, alg| -> Vec<(Option<String>, KeyKind)> {
        set.candidates(kid, alg)
            .iter()
            .map(|k| (k.kid.clone(), k.kind))
            .collect()
    };
    // Same kid, two families: only the one that fits the alg.
    assert_eq!(
        kinds(Some("r"), Alg::RS256),
        vec![(Some("r".into()), KeyKind::Rsa)]
    );
    assert_eq!(
        kinds(Some("r"), Alg::ES256),
        vec![(Some("r".into()), KeyKind::EcP256)]
    );
    // A key with `alg: RS256` never verifies PS256; one without `alg` does.
    assert_eq!(kinds(Some("r"), Alg::PS256), vec![]);
    assert_eq!(
        kinds(Some("any-rsa"), Alg::PS256),
        vec![(Some("any-rsa".into()), KeyKind::Rsa)]
    );
    // No kid: every compatible key, in document order.
    assert_eq!(
        kinds(None, Alg::RS256),
        vec![
            (Some("r".into()), KeyKind::Rsa),
            (Some("any-rsa".into()), KeyKind::Rsa)
        ]
    );
    assert_eq!(
        kinds(None, Alg::HS256),
        vec![(Some("h".into()), KeyKind::Oct)]
    );
    assert_eq!(kinds(None, Alg::ES384), vec![]);
    assert_eq!(kinds(Some("nope"), Alg::RS256), vec![]);
}

#[test]
fn duplicate_kids_are_all_kept_in_order() {
    let k = jwks();
    let other = with(&k.oct, json!({"kid": "dup", "k": b64(&[2; 32])}));
    let (set, skipped) = parse(&[with(&k.oct, json!({"kid": "dup"})), other]);
    assert!(skipped.is_empty());
    assert_eq!(set.len(), 2);
    assert_eq!(set.candidates(Some("dup"), Alg::HS256).len(), 2);
}

#[test]
fn key_family_guards_every_algorithm() {
    use Alg::*;
    let all = [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, HS256,
        HS384, HS512,
    ];
    let fits =
        |kind: KeyKind| -> Vec<Alg> { all.into_iter().filter(|a| kind.allows(*a)).collect() };
    assert_eq!(
        fits(KeyKind::Rsa),
        vec![RS256, RS384, RS512, PS256, PS384, PS512]
    );
    assert_eq!(fits(KeyKind::EcP256), vec![ES256]);
    assert_eq!(fits(KeyKind::EcP384), vec![ES384]);
    assert_eq!(fits(KeyKind::EcP521), vec![ES512]);
    assert_eq!(fits(KeyKind::Ed25519), vec![EdDSA, Ed25519]);
    assert_eq!(fits(KeyKind::Oct), vec![HS256, HS384, HS512]);
}

#[test]
fn debug_never_prints_key_material() {
    let secret = b64(&[0x42; 32]);
    let (set, _) = parse(&[with(&jwks().oct, json!({"kid": "h", "k": secret}))]);
    let shown = format!("{set:?}");
    assert!(!shown.contains(&secret), "{shown}");
    assert!(!shown.contains("66, 66, 66"), "{shown}");
    assert!(shown.contains("Oct"), "{shown}");
}

// === key identity (revocation of cached verifications) ===

#[test]
fn a_key_keeps_its_id_in_a_refetched_set() {
    let k = jwks();
    let rsa = with(&k.rsa, json!({"kid": "r1", "alg": "RS256"}));
    let ed = with(&k.ed25519, json!({"kid": "e1"}));
    let (first, _) = parse(&[rsa.clone(), ed.clone()]);
    // The same keys in another order, with an unrelated key added and members reordered.
    let (again, _) = parse(&[with(&k.p256, json!({"kid": "p1"})), ed, rsa]);
    for key in &first.keys {
        assert!(again.holds(key.id()), "{key:?}");
    }
}

#[test]
fn a_removed_or_changed_key_is_no_longer_held() {
    let k = jwks();
    let rsa = with(&k.rsa, json!({"kid": "r1"}));
    let (set, _) = parse(std::slice::from_ref(&rsa));
    let id = set.keys[0].id();
    assert!(set.holds(id));
    // Removed: the set keeps only another key.
    let (other, _) = parse(&[with(&k.p256, json!({"kid": "r1"}))]);
    assert!(!other.holds(id), "another key under the same kid");
    // The same material under another kid, or pinned to another algorithm: a token
    // naming the old kid or alg would not verify cold, so its cached verification ends.
    for changed in [json!({"kid": "r2"}), json!({"alg": "PS256"})] {
        let (set, _) = parse(&[with(&rsa, changed.clone())]);
        assert!(!set.holds(id), "{changed}");
    }
    assert!(!KeySet::default().holds(id), "an empty set holds nothing");
}

#[test]
fn a_skipped_key_is_named_by_its_kid_and_alg() {
    let k = jwks();
    let (_, skipped) = parse(&[
        with(&k.rsa, json!({"kid": "rsa-1", "alg": "ES256"})),
        with(&k.p256, json!({"kid": "ec\n1", "use": "enc"})),
        with(&k.p384, json!({"alg": "HS256", "crv": "P-192"})),
        with(&k.ed25519, json!({"kid": 7, "crv": "X25519"})),
        with(&k.oct, json!({"k": "c2hvcnQ"})),
    ]);
    assert_eq!(
        skipped,
        [
            r#"keys[0] (kid "rsa-1", alg "ES256"): `alg` does not match the key type"#,
            r#"keys[1] (kid "ec\n1"): `use` is not `sig`"#,
            r#"keys[2] (alg "HS256"): EC `crv` must be P-256, P-384 or P-521"#,
            r#"keys[3] (kid (not a string)): `kid` is not a string"#,
            "keys[4]: an HMAC key shorter than 32 bytes is refused",
        ]
    );
}
