//! Development tokens: `ward token sign` and `ward token jwks`, and `ward test` cases
//! that mint their own tokens. The key id is the RFC 7638 thumbprint of the public key,
//! so the `kid` in a signed token always names the key `ward token jwks` prints.

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;

use crate::authn::alg::Alg;

#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    #[error("the key does not fit {alg}: {why}")]
    Key { alg: &'static str, why: String },
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// A private key (PEM; for HS* the raw secret bytes) ready to sign with `alg`.
pub struct SigningKey {
    alg: Alg,
    key: EncodingKey,
    kid: String,
    jwk: Jwk,
}

impl SigningKey {
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
