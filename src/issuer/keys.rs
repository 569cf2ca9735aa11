//! ward's own signing keys: private keys read from PEM files, a JWS signer over the first
//! one, and the public half of every key as a JWK (`/.well-known/jwks.json`).
//!
//! Signing goes straight to aws-lc-rs (the crypto rustls and the verifier use), so the
//! key pair that signs is the one whose public half is published: no second parser
//! decides what the key is.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

/// The algorithms ward signs with (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlg {
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
}

impl SigningAlg {
    /// The names `signing.keys[].alg` accepts.
    pub const NAMES: &'static str = "ES256, EdDSA, RS256, PS256";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ES256" => Self::ES256,
            "EdDSA" => Self::EdDSA,
            "RS256" => Self::RS256,
            "PS256" => Self::PS256,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// One private key, its `kid` and algorithm, and its public JWK.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    public: Value,
}

/// The key is never printed: only its `kid` and algorithm.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a key file cannot sign, for the config error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "no PEM private key in the file (a `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` block)"
    )]
    NoPrivateKey,
    #[error("{alg} needs {wants}; this key is not one")]
    WrongKind {
        alg: &'static str,
        wants: &'static str,
    },
}

impl SigningKey {
    /// Reads the private key in `pem` (PKCS#8, SEC1 or PKCS#1) for `alg`.
    pub fn from_pem(kid: &str, alg: SigningAlg, pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPrivateKey)?;
        let wrong = |wants| KeyError::WrongKind {
            alg: alg.name(),
            wants,
        };
        let (pair, public) = match alg {
            SigningAlg::ES256 => {
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Sec1(_) => {
                        EcdsaKeyPair::from_private_key_der(
                            &ECDSA_P256_SHA256_FIXED_SIGNING,
                            der.secret_der(),
                        )
                        .map_err(|_| wrong("a P-256 EC private key"))?
                    }
                    _ => return Err(wrong("a P-256 EC private key")),
                };
                // An uncompressed point: 0x04 || x || y, 32 bytes each.
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..33)
                    .zip(point.get(33..65))
                    .ok_or(wrong("a P-256 EC private key"))?;
                let jwk =
                    json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)});
                (Pair::Ec(pair), jwk)
            }
            SigningAlg::EdDSA => {
                let PrivateKeyDer::Pkcs8(p8) = &der else {
                    return Err(wrong("an Ed25519 private key (PKCS#8)"));
                };
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(p8.secret_pkcs8_der())
                    .map_err(|_| wrong("an Ed25519 private key (PKCS#8)"))?;
                let x = B64.encode(pair.public_key().as_ref());
                (
                    Pair::Ed(pair),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
            SigningAlg::RS256 | SigningAlg::PS256 => {
                // aws-lc refuses RSA keys under 2048 bits (NIST SP 800-131A).
                let rsa = "an RSA private key of 2048 bits or more";
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(p8) => RsaKeyPair::from_pkcs8(p8.secret_pkcs8_der()),
                    PrivateKeyDer::Pkcs1(p1) => RsaKeyPair::from_der(p1.secret_pkcs1_der()),
                    _ => return Err(wrong(rsa)),
                }
                .map_err(|_| wrong(rsa))?;
                let public = pair.public_key();
                let n = B64.encode(public.modulus().big_endian_without_leading_zero());
                let e = B64.encode(public.exponent().big_endian_without_leading_zero());
                (Pair::Rsa(pair), json!({"kty": "RSA", "n": n, "e": e}))
            }
        };
        let mut public = public;
        if let Value::Object(m) = &mut public {
            m.insert("kid".into(), kid.into());
            m.insert("alg".into(), alg.name().into());
            m.insert("use".into(), "sig".into());
        }
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            pair,
            public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public JWK (with `kid`, `alg` and `use: sig`).
    pub fn public_jwk(&self) -> &Value {
        &self.public
    }

    /// A compact JWS of `payload` (a JSON object's bytes), with header `{alg, kid, typ: JWT}`.
    pub fn sign(&self, payload: &[u8]) -> Result<String, SignError> {
        let header = json!({"alg": self.alg.name(), "kid": self.kid, "typ": "JWT"});
        let mut jws = B64.encode(header.to_string());
        jws.push('.');
        B64.encode_string(payload, &mut jws);
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Ec(p) => p
                .sign(&rng, jws.as_bytes())
                .map_err(|_| SignError)?
                .as_ref()
                .to_vec(),
            Pair::Ed(p) => p.sign(jws.as_bytes()).as_ref().to_vec(),
            Pair::Rsa(p) => {
                let padding = if self.alg == SigningAlg::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(padding, &rng, jws.as_bytes(), &mut sig)
                    .map_err(|_| SignError)?;
                sig
            }
        };
        jws.push('.');
        B64.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

/// The crypto library refused to sign (never expected with a key that loaded).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("signing failed")]
pub struct SignError;

/// Every configured signing key, in config order: the first signs, all are published.
#[derive(Debug)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl SigningKeys {
    /// `keys` must not be empty (the config compiler refuses an empty list).
    pub fn new(keys: Vec<SigningKey>) -> Option<Self> {
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// The key that signs.
    pub fn current(&self) -> &SigningKey {
        &self.keys[0]
    }

    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    /// `{"keys": [...]}`: the public half of every key.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(SigningKey::public_jwk).collect::<Vec<_>>()})
    }
}

#[cfg(test)]
mod tests;
