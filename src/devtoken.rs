//! Development tokens: `ward token sign` and `ward token jwks`, and `ward test` cases
//! that mint their own tokens. The key id is the RFC 7638 thumbprint of the public key,
//! so the `kid` in a signed token always names the key `ward token jwks` prints.

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{EncodingKey, Header};
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
    /// An API key that ward would refuse when presented.
    #[error("an API key is printable ASCII without spaces; ward would refuse this one")]
    ApiKeySyntax,
}

/// A private key (PEM; for HS* the raw secret bytes) ready to sign with `alg`.
pub struct SigningKey {
    alg: Alg,
    key: EncodingKey,
    kid: String,
    jwk: Jwk,
}

impl SigningKey {
    /// Reads a key file (PEM; for HS* the secret's raw bytes) for the algorithm named
    /// `alg` (`RS256`, `ES256`, `EdDSA`, `HS256`, ...).
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
        let err = |e: jsonwebtoken::errors::Error| DevTokenError::Key {
            alg: alg.as_str(),
            why: e.to_string(),
        };
        use Alg::*;
        let key = match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                EncodingKey::from_rsa_pem(bytes).map_err(err)?
            }
            ES256 | ES384 => EncodingKey::from_ec_pem(bytes).map_err(err)?,
            EdDSA => EncodingKey::from_ed_pem(bytes).map_err(err)?,
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
        let mut jwk = Jwk::from_encoding_key(&key, alg.to_jsonwebtoken()).map_err(err)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(err)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(Self { alg, key, kid, jwk })
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document holding this key's public half (for HS*, the secret itself).
    pub fn jwks(&self) -> Value {
        serde_json::json!({ "keys": [self.jwk] })
    }

    /// Signs `claims` with a header naming this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, DevTokenError> {
        let mut header = Header::new(self.alg.to_jsonwebtoken());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| DevTokenError::Sign(e.to_string()))
    }
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
        let mut header = Header::new(self.alg.to_jsonwebtoken());
        header.typ = Some("dpop+jwt".into());
        let mut jwk = self.jwk.clone();
        jwk.common = Default::default();
        header.jwk = Some(jwk);
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
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| DevTokenError::Sign(e.to_string()))
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
