//! Signing keys and tokens generated at run time, for ward's integration tests and
//! benchmarks: RSA 2048, P-256, P-384, P-521 (ES512, [`P521Key`]), Ed25519 and HMAC secrets, their PKCS#8 and PEM
//! encodings, public JWKs with RFC 7638 key ids, signed tokens, and hand-built JWS for
//! hostile inputs.
//!
//! It does not depend on ward: a token minted here is checked by ward's verifier, and a
//! key id computed here is compared with what `ward token jwks` prints, so the two
//! implementations check each other.

use aws_lc_rs::encoding::AsDer;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A private key generated for one algorithm, with everything needed to sign with it and
/// to publish its public half.
pub struct Key {
    alg: Algorithm,
    /// PKCS#8 DER of the private key (for HMAC: the secret itself).
    der: Vec<u8>,
    /// PKCS#8 PEM (for HMAC: the secret), as `ward token sign --key` reads it.
    key_file: Vec<u8>,
    encoding: EncodingKey,
    /// The public JWK, `kid` and `use: sig` set.
    jwk: Value,
    kid: String,
    /// RSA only: the public key as SubjectPublicKeyInfo DER and as PKCS#1 DER.
    rsa_public: Option<(Vec<u8>, Vec<u8>)>,
}

impl Key {
    /// A fresh key for `alg`: RSA 2048 for RS*/PS*, P-256 for ES256, P-384 for ES384,
    /// Ed25519 for EdDSA, 48 random bytes for HS*.
    pub fn generate(alg: Algorithm) -> Key {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair, KeyPair as _,
        };
        let family = Family::of(alg);
        let mut rsa_public = None;
        let der: Vec<u8> = match family {
            Family::Rsa => {
                let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("generate RSA 2048");
                let spki = kp.public_key().as_der().expect("RSA public SPKI DER");
                rsa_public = Some((spki.as_ref().to_vec(), kp.public_key().as_ref().to_vec()));
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
                    kp.as_der().expect("RSA private PKCS#8 DER");
                der.as_ref().to_vec()
            }
            Family::P256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("generate P-256")
                .to_pkcs8v1()
                .expect("P-256 PKCS#8")
                .as_ref()
                .to_vec(),
            Family::P384 => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                .expect("generate P-384")
                .to_pkcs8v1()
                .expect("P-384 PKCS#8")
                .as_ref()
                .to_vec(),
            Family::Ed25519 => Ed25519KeyPair::generate()
                .expect("generate Ed25519")
                .to_pkcs8v1()
                .expect("Ed25519 PKCS#8")
                .as_ref()
                .to_vec(),
            Family::Hmac => {
                let mut secret = vec![0u8; 48];
                aws_lc_rs::rand::fill(&mut secret).expect("random secret");
                secret
            }
        };
        let key_file = match family {
            Family::Hmac => der.clone(),
            _ => pem("PRIVATE KEY", &der).into_bytes(),
        };
        let encoding = match family {
            Family::Rsa => EncodingKey::from_rsa_pem(&key_file).expect("RSA PEM"),
            Family::P256 | Family::P384 => EncodingKey::from_ec_pem(&key_file).expect("EC PEM"),
            Family::Ed25519 => EncodingKey::from_ed_pem(&key_file).expect("Ed25519 PEM"),
            Family::Hmac => EncodingKey::from_secret(&der).expect("HMAC key"),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("a JWK for the key");
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .expect("RFC 7638 thumbprint");
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Key {
            alg,
            der,
            key_file,
            encoding,
            jwk: serde_json::to_value(&jwk).expect("JWK as JSON"),
            kid,
            rsa_public,
        }
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// PKCS#8 DER of the private key (for HMAC: the secret).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The private key as `ward token sign --key` and `ward token jwks --key` read it:
    /// PKCS#8 PEM, or the raw secret for HMAC.
    pub fn key_file(&self) -> &[u8] {
        &self.key_file
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (for HMAC: the secret as an `oct` key).
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// A JWKS holding only this key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Signs `claims` with header `{typ: JWT, alg, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign a token")
    }

    /// A compact JWS over exactly these header and payload texts (duplicate members, odd
    /// types and all), signed with this key's own algorithm whatever the header says.
    pub fn sign_parts(&self, header_json: &str, payload_json: &str) -> String {
        let input = format!("{}.{}", b64url(header_json), b64url(payload_json));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg)
            .expect("sign a raw JWS");
        format!("{input}.{sig}")
    }

    /// The standard header text `{"alg":..,"kid":..,"typ":"JWT"}`, for
    /// [`Key::sign_parts`].
    pub fn header_json(&self) -> String {
        json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"}).to_string()
    }

    /// RSA only: the public key as SubjectPublicKeyInfo DER.
    pub fn rsa_public_der(&self) -> &[u8] {
        &self.rsa_public.as_ref().expect("an RSA key").0
    }

    /// RSA only: the public key as PKCS#1 `RSAPublicKey` DER.
    pub fn rsa_public_pkcs1_der(&self) -> &[u8] {
        &self.rsa_public.as_ref().expect("an RSA key").1
    }

    /// RSA only: the `-----BEGIN PUBLIC KEY-----` PEM anyone can derive from the JWKS.
    pub fn rsa_public_pem(&self) -> String {
        pem("PUBLIC KEY", self.rsa_public_der())
    }
}

/// The kind of key an algorithm signs with.
#[derive(Clone, Copy)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
    Hmac,
}

impl Family {
    fn of(alg: Algorithm) -> Family {
        use Algorithm::*;
        match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
            ES256 => Family::P256,
            ES384 => Family::P384,
            EdDSA => Family::Ed25519,
            HS256 | HS384 | HS512 => Family::Hmac,
            other => panic!("no key family for {other:?}"),
        }
    }
}

/// A JWKS holding every given key.
pub fn jwks_of(keys: &[&Key]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// PEM armour around DER: base64 in lines of 64 between `BEGIN` and `END` lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Unpadded base64url, as every part of a JWS is encoded.
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS from header and payload texts and an already-encoded signature part.
pub fn jws(header_json: &str, payload_json: &str, signature_b64: &str) -> String {
    format!(
        "{}.{}.{signature_b64}",
        b64url(header_json),
        b64url(payload_json)
    )
}

/// A JWS whose HS256 signature uses `secret` (the algorithm-confusion attack when the
/// secret is a public key).
pub fn hs256_with_secret(header_json: &str, payload_json: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64url(header_json), b64url(payload_json));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(tag.as_ref()))
}

/// A P-521 key for ES512, which jsonwebtoken (and so [`Key`]) does not sign: the
/// signature is made by aws-lc-rs directly, the JWK and its RFC 7638 `kid` by hand.
pub struct P521Key {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    key_file: Vec<u8>,
    jwk: Value,
    kid: String,
}

impl P521Key {
    pub fn generate() -> P521Key {
        use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).expect("generate P-521");
        let der = pair.to_pkcs8v1().expect("P-521 PKCS#8");
        let key_file = pem("PRIVATE KEY", der.as_ref()).into_bytes();
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 133, "0x04 || x || y");
        let (x, y) = (b64url(&point[1..67]), b64url(&point[67..133]));
        let canonical = format!(r#"{{"crv":"P-521","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let kid = b64url(digest.as_ref());
        let jwk = json!({"kty": "EC", "crv": "P-521", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES512"});
        P521Key {
            pair,
            key_file,
            jwk,
            kid,
        }
    }

    /// The private key as PKCS#8 PEM, as `ward token sign --key` reads it.
    pub fn key_file(&self) -> &[u8] {
        &self.key_file
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Signs `claims` with header `{typ: JWT, alg: ES512, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES512", "kid": self.kid}).to_string();
        self.sign_parts(&header, &claims.to_string())
    }

    /// A compact JWS over exactly these header and payload texts, signed ES512.
    pub fn sign_parts(&self, header_json: &str, payload_json: &str) -> String {
        let input = format!("{}.{}", b64url(header_json), b64url(payload_json));
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign ES512");
        format!("{input}.{}", b64url(sig.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const ALL: [Algorithm; 12] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
    ];

    fn verify(key: &Key, token: &str) -> Value {
        let jwk: Jwk = serde_json::from_value(key.jwk()).expect("a JWK");
        let decoding = DecodingKey::from_jwk(&jwk).expect("a decoding key");
        let mut validation = Validation::new(key.alg());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .expect("the token verifies with the published JWK")
            .claims
    }

    #[test]
    fn every_algorithm_signs_tokens_its_jwk_verifies() {
        for alg in ALL {
            let key = Key::generate(alg);
            let claims = json!({"sub": "alice", "n": 1});
            assert_eq!(verify(&key, &key.sign(&claims)), claims, "{alg:?}");
            let raw = key.sign_parts(&key.header_json(), r#"{"sub":"bob"}"#);
            assert_eq!(verify(&key, &raw), json!({"sub": "bob"}), "{alg:?}");
            assert_eq!(key.jwk()["kid"], key.kid(), "{alg:?}");
        }
    }

    #[test]
    fn key_files_are_pkcs8_pem_or_the_raw_secret() {
        let rsa = Key::generate(Algorithm::RS256);
        let text = String::from_utf8(rsa.key_file().to_vec()).expect("PEM is text");
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 64), "{text}");
        let hmac = Key::generate(Algorithm::HS256);
        assert_eq!(hmac.key_file(), hmac.der());
        assert_eq!(hmac.der().len(), 48);
    }

    #[test]
    fn p521_tokens_verify_with_their_jwk_through_aws_lc() {
        use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED, UnparsedPublicKey};
        let key = P521Key::generate();
        let t = key.sign(&json!({"sub": "alice"}));
        let (input, sig) = t.rsplit_once('.').expect("a JWS");
        let jwk = key.jwk();
        let coord = |c: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[c].as_str().expect("coordinate"))
                .expect("base64url")
        };
        let point = [&[4u8][..], &coord("x"), &coord("y")].concat();
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
        assert_eq!(sig.len(), 132);
        UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, &point)
            .verify(input.as_bytes(), &sig)
            .expect("verifies");
        assert_ne!(P521Key::generate().kid(), key.kid());
    }

    #[test]
    fn kids_are_distinct_per_key() {
        let (a, b) = (
            Key::generate(Algorithm::ES256),
            Key::generate(Algorithm::ES256),
        );
        assert_ne!(a.kid(), b.kid());
        assert_eq!(jwks_of(&[&a, &b])["keys"].as_array().map(Vec::len), Some(2));
    }
}
