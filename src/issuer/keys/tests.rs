use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use testkeys::{Key, pem};

use super::*;

fn loaded(alg: SigningAlg, jose: Algorithm) -> (SigningKey, Key) {
    let k = Key::generate(jose);
    let s = SigningKey::from_pem("k1", alg, k.key_file()).expect("the key loads");
    (s, k)
}

/// What jsonwebtoken (a second implementation) reads back from a token and a JWK.
fn verify_with_jwk(token: &str, jwk: &Value, alg: Algorithm) -> Value {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("a JWK jsonwebtoken reads");
    let key = DecodingKey::from_jwk(&jwk).expect("a decoding key");
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("verifies")
        .claims
}

#[test]
fn every_algorithm_signs_what_its_published_key_verifies() {
    let cases = [
        (SigningAlg::ES256, Algorithm::ES256, ["x", "y"].as_slice()),
        (SigningAlg::EdDSA, Algorithm::EdDSA, ["x"].as_slice()),
        (SigningAlg::RS256, Algorithm::RS256, ["n", "e"].as_slice()),
        (SigningAlg::PS256, Algorithm::PS256, ["n", "e"].as_slice()),
    ];
    for (alg, jose, members) in cases {
        let (s, k) = loaded(alg, jose);
        // The published half is the generated key's public half, member for member.
        for m in members {
            assert_eq!(s.public_jwk()[m], k.jwk()[m], "{alg:?} {m}");
        }
        assert_eq!(s.public_jwk()["kid"], "k1");
        assert_eq!(s.public_jwk()["alg"], alg.name());
        assert_eq!(s.public_jwk()["use"], "sig");
        assert!(
            s.public_jwk().get("d").is_none(),
            "no private member is published"
        );
        let token = s.sign(br#"{"sub":"alice"}"#).expect("signs");
        let header: Value = serde_json::from_slice(
            &B64.decode(token.split('.').next().expect("a header"))
                .expect("base64url"),
        )
        .expect("JSON header");
        assert_eq!(
            header,
            json!({"alg": alg.name(), "kid": "k1", "typ": "JWT"})
        );
        let claims = verify_with_jwk(&token, s.public_jwk(), jose);
        assert_eq!(claims, json!({"sub": "alice"}), "{alg:?}");
    }
}

#[test]
fn ecdsa_signatures_are_fixed_width_not_der() {
    let (s, _) = loaded(SigningAlg::ES256, Algorithm::ES256);
    let token = s.sign(b"{}").expect("signs");
    let sig = B64
        .decode(token.rsplit('.').next().expect("a signature"))
        .expect("base64url");
    assert_eq!(sig.len(), 64, "r || s, 32 bytes each (RFC 7518 §3.4)");
}

#[test]
fn sec1_and_pkcs1_keys_load_too() {
    use aws_lc_rs::encoding::AsDer;
    // SEC1 (`EC PRIVATE KEY`), as `openssl ecparam -genkey` writes it.
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256");
    let sec1 = ec.private_key().as_der().expect("SEC1 DER");
    let pem_sec1 = pem("EC PRIVATE KEY", sec1.as_ref());
    let loaded =
        SigningKey::from_pem("ec", SigningAlg::ES256, pem_sec1.as_bytes()).expect("SEC1 loads");
    let point = ec.public_key().as_ref();
    assert_eq!(loaded.public_jwk()["x"], B64.encode(&point[1..33]));
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA");
    let p8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = rsa.as_der().expect("PKCS#8");
    let from_p8 = SigningKey::from_pem(
        "r",
        SigningAlg::RS256,
        pem("PRIVATE KEY", p8.as_ref()).as_bytes(),
    )
    .expect("PKCS#8 loads");
    assert_eq!(from_p8.public_jwk()["kty"], "RSA");
    // PKCS#1 (`RSA PRIVATE KEY`), as `openssl genrsa -traditional` writes it.
    let p1 =
        SigningKey::from_pem("r", SigningAlg::PS256, PKCS1_RSA.as_bytes()).expect("PKCS#1 loads");
    let token = p1.sign(b"{}").expect("signs");
    verify_with_jwk(&token, p1.public_jwk(), Algorithm::PS256);
}

#[test]
fn a_key_of_another_kind_or_no_key_is_refused_by_name() {
    let ed = Key::generate(Algorithm::EdDSA);
    let rsa = Key::generate(Algorithm::RS256);
    let p384 = Key::generate(Algorithm::ES384);
    let cases: [(SigningAlg, &[u8]); 5] = [
        (SigningAlg::ES256, ed.key_file()),
        (SigningAlg::ES256, p384.key_file()),
        (SigningAlg::EdDSA, rsa.key_file()),
        (SigningAlg::RS256, ed.key_file()),
        (SigningAlg::PS256, p384.key_file()),
    ];
    for (alg, file) in cases {
        let e = SigningKey::from_pem("k", alg, file).expect_err("refused");
        assert!(matches!(e, KeyError::WrongKind { .. }), "{alg:?}: {e}");
        assert!(e.to_string().starts_with(alg.name()), "{e}");
    }
    // A public key, a certificate or text is no private key.
    let public = rsa.rsa_public_pem();
    for text in [public.as_bytes(), b"not a key".as_slice(), b"".as_slice()] {
        assert_eq!(
            SigningKey::from_pem("k", SigningAlg::RS256, text).expect_err("refused"),
            KeyError::NoPrivateKey
        );
    }
}

#[test]
fn short_rsa_keys_are_refused() {
    // PKCS#1, as `openssl genrsa -traditional 1024` writes it.
    let e =
        SigningKey::from_pem("k", SigningAlg::RS256, SHORT_RSA.as_bytes()).expect_err("refused");
    assert_eq!(
        e.to_string(),
        "RS256 needs an RSA private key of 2048 bits or more; this key is not one"
    );
}

#[test]
fn the_first_key_signs_and_all_are_published() {
    let (a, _) = loaded(SigningAlg::ES256, Algorithm::ES256);
    let b = SigningKey::from_pem(
        "k2",
        SigningAlg::EdDSA,
        Key::generate(Algorithm::EdDSA).key_file(),
    )
    .expect("loads");
    let keys = SigningKeys::new(vec![b, a]).expect("not empty");
    assert_eq!(keys.current().kid(), "k2");
    let jwks = keys.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, ["k2", "k1"]);
    assert!(SigningKeys::new(Vec::new()).is_none());
    assert!(
        !format!("{:?}", keys.current()).contains("pair"),
        "no key material in Debug"
    );
}

/// `openssl genrsa -traditional 1024` (a test key, signs nothing).
const SHORT_RSA: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXAIBAAKBgQDMcip1bTEvf+nf/boYaX6/avjxn8s3S/idKfmh6JB6SvB0q0u0
H3pNyhb5YY67/03Mn9W8u5MUhSfg5GkM+oofazMOaqG3OsyXPGZz0LtpXwyyPTDM
Efmh64eLxI+itfaZqf1BHTmCYzhxp5inlhznFylK7fdlWs+yczYDlNikrwIDAQAB
AoGBAMfFDqPrbFJDpR3P6ZWND+Ku/k3rnECOJYI8z8ZbX0GAFHGMJ877qyBzxfss
TrJ4h2bZD5r5loBIlGz2A4hBD9BdwZBfdddpXRHDBNX4K8LGkbkj755A/4EbEIoz
5aEXQheT0ctblm4mPMiQVg4xNrFhmUbJ9bHpDcrk3xwnAuXxAkEA/0b/726w5rhQ
XE60jbA+t/JIRw1JflPTzsUh7PfDLXiFm3Cz4fofPTCRSOZLyEw3DhpeAB5HJg5T
QUyimLKAdQJBAM0GVBV1eEOTOJJN94tgtDvWPVNJ0pMlGumXWpwFc8DtHv6kF87A
vE0LOzMSd6mPqO0rETbwVCexOso4n6rRLBMCQEfvlge+xZL+tYaNl0umMsZbPArp
r6Atty45VwoT96hEokHfTJGNjmgL26UTYJ+c+pa6z2pxHdOXjdaE5fzpsFECQBzU
xv49hqv6B/qK/ESdVLsVZYpQ10vZ6+7tWdCW87AtqC4m5TIt6EztR2XnMuylRxwS
8ljHcw4h3iKR0+IxiAECQBMaNbdMlF2JU1v5bll7z1vNnf2E7JAI8lxcrjyeH7ud
kp/SDAlhe5eKDuOMiyqryfcVaraFSAIjWCQYEw0/QtY=
-----END RSA PRIVATE KEY-----
";

/// `openssl genrsa -traditional 2048` (a test key, signs nothing outside this test).
const PKCS1_RSA: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEA8lGHrytuOMfSWulfLZuIoOPxAUJL7YxTflfZ9UAwYei5Ha/S
VGMxJdUt7FEkQy0Wy9yBlxM7e1e81970OQBLFDTcsLaKrJwDHqrsfYTm9MzWyRdz
Go7Iwq17mFO6erglIeWwN8wUpGd0kgAGkpLb5vpIbDV9hH1LZgWQ3kpBGJgzdHVh
ESw36dbJnJXflCjyYaeq2t8yZJT89Ci0b6OG3aXKuGFi64moyYVoaeEjd8WuM3P8
BXQS7KEb4SBrXMteQoQnRn1GJzZOUCOdaKCluYv17PxV/uoOsF14/nOGBT1aYrMf
G3NOPMRaUDG2eCr8gFLneQkOZuyS7YOywd+B7QIDAQABAoIBACUwUgyWM8JPGH+P
VWYgeqWGlhRFYnXAlYfMX8z93u8H0nE17Ke62W4e+39LLK+KmfcLjm/rKbPSUU8o
Dn85BkzBmCUevsWi4++u98CDxxZG4afXC3lF9JW8Hj3Qi8wNutUq9RJ7JafdoMxP
aLLSCyG1w6unwe21dP7hV8xlxPvLA5YkJR4WEbs5ITjYh/mjWK3KVqdYK2EFe5Mz
ZyQKuOD5y5LuUh7nZvvYsti0CwaaGo+Mew62/2c28BSSQqAdYtTcJAi/KOAs3SDy
OAtwduUSCqVrHOAtPdvS61fwwU2K6s497T7TjTeK8TfITSy5aF7NwjhSj+pjoi9J
WctOEdkCgYEA/AkA5u4Sr3DMI0oVlETnw03Brui7QS9pWRAq5fb93A8nnUUp6yvT
8m3eObcrPLkR7IL8fzPPASUPcEQ75BWtT/z9uQmYRN7hSqoMVA5loCa5JvNDxi2w
ckOTBwuWVm1ly6W5zl2IaKOQZplBlfzj+5CG4G89W5uWnnyjLEuAYccCgYEA9iFl
OXtwr8oPX1yWKY4wrsTRQS80hM0ZZq+I3p9JjpzyBdPjMZIphgSDH8xYCjWJOLam
jx08qSo2uLU3a/u6KBLzs0sEA/9XX6N15KvrcvrMTMZdOy5GpEm/n6OnWRKrag6o
Sb+tz2BJkTIJtSXyOCm5Kqtl/BKqMAbnuekQPqsCgYB5ILafReITEUn619shJDCi
y5b/Qfjk7i1aUYvcc+UzwtDOI/RuguTdCXKZGHAeQe/cVGOXmsWtDiuqUBDcoJJn
8/XY3USiLN/n62v7ZePvoUyw7I8xCrpXYCSkaSw6o18eDasMBCXP7HQ06wj7VcwY
FjDMYooBofg0eUBOxIaR9wKBgAPN7leeHdbJw8UQlE2eIgiBiE5+oUwwM2VP70ip
o6RtrpwCc2+Pt86XgUNbkDzQKQfUYuyxYf+nZGMkge/MW0tFR7kMvsolBz+2MhtP
wPrs/31sT4Kbq4Hclfasu+h3jmi8Q0Ooj9I1xc1VvaqsJHtTwcX0EkZ8L19ArBJG
lPazAoGAcHUYRgn7AQNHM+px2N9Pa7HY2MooCF1Fk2olZcGUXkIU/Kz22tcbKep9
Dnkoc8Ccqgnu4rB2nTfltmQASiWC4j7cPyPHTRo1Z3BWy9Ay74PASxQkVQ06Fgl+
EpbTtxp8rKCdXMvqiERyYTKOHAedL/y4M3c5pmS8SHpve5SKhTM=
-----END RSA PRIVATE KEY-----
";
