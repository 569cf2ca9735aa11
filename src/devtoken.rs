//! Development tokens: `ward token sign` and `ward token jwks`, and `ward test` cases
//! that mint their own tokens. The key id is the RFC 7638 thumbprint of the public key,
//! so the `kid` in a signed token always names the key `ward token jwks` prints.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use crate::authn::alg::Alg;

use std::path::Path;

/// Why a development key or token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    /// The key does not suit the algorithm (wrong type, too short a secret).
    #[error("the key does not fit {alg}: {why}")]
    Key {
        /// The algorithm asked for.
        alg: &'static str,
        /// What is wrong with the key.
        why: String,
    },
    /// An algorithm name ward does not know.
    #[error("unknown algorithm `{0}`")]
    UnknownAlg(String),
    /// The key file cannot be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why it cannot be read.
        error: std::io::Error,
    },
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
    /// The token cannot be encrypted to the given key (`--encrypt-to`).
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    /// An API key that ward would refuse when presented.
    #[error("an API key is printable ASCII without spaces; ward would refuse this one")]
    ApiKeySyntax,
}

/// A private key (PEM; for HS* the raw secret bytes) ready to sign with `alg`.
pub struct SigningKey {
    alg: Alg,
    key: Signer,
    kid: String,
    /// The public JWK (for HS*, the secret as an `oct` key), `kid`, `alg` and `use` set.
    jwk: Value,
}

/// What makes the signature: jsonwebtoken for the algorithms it knows, aws-lc-rs
/// directly for ES512, which jsonwebtoken lacks.
enum Signer {
    Jwt(EncodingKey, jsonwebtoken::Algorithm),
    P521(EcdsaKeyPair),
}

impl SigningKey {
    /// Reads a key file (PEM; for HS* the secret's raw bytes) for the algorithm named
    /// `alg` (`RS256`, `ES256`, `ES512`, `EdDSA`, `Ed25519`, `HS256`, ...).
    pub fn from_file(path: &Path, alg: &str) -> Result<Self, DevTokenError> {
        let alg = Alg::parse(alg).ok_or_else(|| DevTokenError::UnknownAlg(alg.to_string()))?;
        let bytes = std::fs::read(path).map_err(|error| DevTokenError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_bytes(&bytes, alg)
    }

    /// A key from its bytes (PEM; for HS* the raw secret) for `alg`.
    #[doc(hidden)]
    pub fn from_bytes(bytes: &[u8], alg: Alg) -> Result<Self, DevTokenError> {
        let Some(jalg) = alg.to_jsonwebtoken() else {
            return Self::p521(bytes, alg);
        };
        let err = |e: jsonwebtoken::errors::Error| DevTokenError::Key {
            alg: alg.as_str(),
            why: e.to_string(),
        };
        use Alg::*;
        let key = match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                EncodingKey::from_rsa_pem(bytes).map_err(err)?
            }
            ES256 | ES384 | ES512 => EncodingKey::from_ec_pem(bytes).map_err(err)?,
            EdDSA | Ed25519 => EncodingKey::from_ed_pem(bytes).map_err(err)?,
            HS256 | HS384 | HS512 => {
                if bytes.len() < 32 {
                    return Err(DevTokenError::Key {
                        alg: alg.as_str(),
                        why: "an HMAC secret must be at least 32 bytes".into(),
                    });
                }
                EncodingKey::from_secret(bytes).map_err(err)?
            }
        };
        let mut jwk = Jwk::from_encoding_key(&key, jalg).map_err(err)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(err)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let mut jwk = serde_json::to_value(&jwk).map_err(|e| DevTokenError::Sign(e.to_string()))?;
        // jsonwebtoken names the algorithm `EdDSA`; an `Ed25519` key says so.
        jwk["alg"] = alg.as_str().into();
        Ok(Self {
            alg,
            key: Signer::Jwt(key, jalg),
            kid,
            jwk,
        })
    }

    /// A P-521 key for ES512 (PKCS#8 or SEC1 PEM), through aws-lc-rs.
    fn p521(bytes: &[u8], alg: Alg) -> Result<Self, DevTokenError> {
        let wrong = |why: &str| DevTokenError::Key {
            alg: alg.as_str(),
            why: why.into(),
        };
        let der = PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|_| wrong("no PEM private key in the file"))?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Sec1(_) => EcdsaKeyPair::from_private_key_der(
                &ECDSA_P521_SHA512_FIXED_SIGNING,
                der.secret_der(),
            )
            .map_err(|_| wrong("not a P-521 EC private key"))?,
            _ => return Err(wrong("not a P-521 EC private key")),
        };
        // An uncompressed point: 0x04 || x || y, 66 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = point
            .get(1..67)
            .zip(point.get(67..133))
            .ok_or_else(|| wrong("not a P-521 EC private key"))?;
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638: the required members, sorted, no whitespace.
        let canonical = format!(r#"{{"crv":"P-521","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(crate::digest::sha256(canonical.as_bytes()));
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-521", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": alg.as_str(),
        });
        Ok(Self {
            alg,
            key: Signer::P521(pair),
            kid,
            jwk,
        })
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document holding this key's public half (for HS*, the secret itself).
    pub fn jwks(&self) -> Value {
        serde_json::json!({ "keys": [self.jwk] })
    }

    /// Signs `claims` with a header naming this key's `alg` and `kid`, `typ: JWT`.
    pub fn sign(&self, claims: &Value) -> Result<String, DevTokenError> {
        self.sign_typed(claims, Some("JWT"))
    }

    /// Signs `claims` with a header naming this key's `alg` and `kid`, and `typ` when
    /// given (`at+jwt` for an RFC 9068 access token).
    pub fn sign_typed(&self, claims: &Value, typ: Option<&str>) -> Result<String, DevTokenError> {
        let mut header = serde_json::json!({"alg": self.alg.as_str(), "kid": self.kid});
        if let Some(typ) = typ {
            header["typ"] = typ.into();
        }
        self.sign_with_header(&header, claims)
    }

    /// Signs `claims` under `header` as given (its `alg` is not checked against the
    /// key's: a test may want a lying header).
    #[doc(hidden)]
    pub fn sign_with_header(
        &self,
        header: &Value,
        claims: &Value,
    ) -> Result<String, DevTokenError> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match &self.key {
            Signer::Jwt(key, alg) => jsonwebtoken::crypto::sign(input.as_bytes(), key, *alg)
                .map_err(|e| DevTokenError::Sign(e.to_string()))?,
            Signer::P521(pair) => {
                let sig = pair
                    .sign(&SystemRandom::new(), input.as_bytes())
                    .map_err(|_| DevTokenError::Sign("ECDSA P-521 signing failed".into()))?;
                URL_SAFE_NO_PAD.encode(sig.as_ref())
            }
        };
        Ok(format!("{input}.{sig}"))
    }
}

/// How `ward token sign --encrypt-to` encrypts: the recipient's public key (a JWK or a
/// `PUBLIC KEY` PEM) and the algorithms, by name; `None` picks RSA-OAEP-256 for an RSA
/// key, ECDH-ES+A256KW for an EC key, and A256GCM.
pub fn encrypt_to(
    jws: &str,
    recipient: &[u8],
    alg: Option<&str>,
    enc: Option<&str>,
) -> Result<String, DevTokenError> {
    use crate::authn::jwe::encrypt::{self, Recipient};
    use crate::authn::jwe::{Enc, KeyAlg};
    let to = Recipient::parse(recipient).map_err(|e| DevTokenError::Encrypt(e.to_string()))?;
    let alg = match alg {
        None => to.key.default_alg(),
        Some(a) => KeyAlg::parse(a).ok_or_else(|| {
            DevTokenError::Encrypt(format!("`{a}` is not one of {}", KeyAlg::NAMES))
        })?,
    };
    let enc = match enc {
        None => Enc::A256Gcm,
        Some(e) => Enc::parse(e).ok_or_else(|| {
            DevTokenError::Encrypt(format!("`{e}` is not one of A128GCM, A256GCM"))
        })?,
    };
    encrypt::encrypt(jws, &to, alg, enc).map_err(|e| DevTokenError::Encrypt(e.to_string()))
}

impl SigningKey {
    /// The RFC 7638 SHA-256 thumbprint of the public key (the `kid`): what a token bound
    /// to this key carries as `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.kid
    }

    /// A DPoP proof (RFC 9449 §4.2) by this key for one request: `htm` `method`, `htu`
    /// `url` (its query and fragment dropped), `ath` the hash of `token` when given, `iat`
    /// `now` and a random `jti`. HMAC keys cannot make proofs.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        now: u64,
    ) -> Result<String, DevTokenError> {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        if !Alg::ASYMMETRIC.contains(&self.alg) {
            return Err(DevTokenError::Key {
                alg: self.alg.as_str(),
                why: "a DPoP proof is signed with a private key whose public half it carries"
                    .into(),
            });
        }
        // The public key alone: no kid, use, alg or other common parameters.
        let mut jwk = self.jwk.clone();
        if let Some(m) = jwk.as_object_mut() {
            for common in [
                "kid", "use", "alg", "key_ops", "x5u", "x5c", "x5t", "x5t#S256",
            ] {
                m.remove(common);
            }
        }
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": jwk});
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| DevTokenError::Sign("no randomness".into()))?;
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = serde_json::json!({
            "htm": method,
            "htu": htu,
            "iat": now,
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        if let Some(t) = token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(crate::digest::sha256(t.as_bytes()))
                .into();
        }
        self.sign_with_header(&header, &claims)
    }
}

/// The `cnf.x5t#S256` of a certificate (RFC 8705 §3.1): the base64url SHA-256 of the DER
/// of the first certificate in `pem`.
pub fn certificate_thumbprint(pem: &str) -> Result<String, DevTokenError> {
    use base64::Engine as _;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| DevTokenError::Key {
        alg: "x5t#S256",
        why: format!("no PEM certificate: {e}"),
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::digest::sha256(&der)))
}

/// The SHA-256 (hex) of an API key, for `api_key.keys[].sha256`. A key ward would refuse
/// when presented (spaces, control or non-ASCII bytes: never trimmed) is an error, since
/// it could never be used.
pub fn api_key_sha256(key: &str) -> Result<String, DevTokenError> {
    if !crate::authn::apikey::is_key_syntax(key) {
        return Err(DevTokenError::ApiKeySyntax);
    }
    Ok(crate::authn::apikey::sha256_hex(key.as_bytes()))
}
