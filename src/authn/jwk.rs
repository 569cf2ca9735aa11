//! JSON Web Key sets: parsed once into verification keys, each bound to one key family.
//!
//! A key is used only if it is complete and consistent: `use: enc` keys and keys whose
//! `key_ops` exclude `verify` never verify; an EC key's `crv` must match its coordinates;
//! RSA moduli under 2048 bits are refused. One unusable key is skipped (and reported),
//! never voiding the rest of the set.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use crate::authn::jwt::Alg;

/// The family a key belongs to; a token's `alg` must belong to the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Oct,
}

impl KeyKind {
    /// Whether `alg` may be verified with a key of this kind: the algorithm-confusion guard.
    pub fn allows(self, alg: Alg) -> bool {
        use Alg::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
            KeyKind::Oct => matches!(alg, HS256 | HS384 | HS512),
        }
    }
}

pub struct VerifyKey {
    pub kid: Option<String>,
    /// The key's own `alg`, which then is the only one it verifies.
    pub alg: Option<Alg>,
    pub kind: KeyKind,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (an `oct` key is a secret).
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish()
    }
}

impl VerifyKey {
    pub fn allows(&self, alg: Alg) -> bool {
        self.kind.allows(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
    by_kid: HashMap<String, Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("a JWKS is a JSON object with a `keys` array")]
    NotAJwks,
}

impl KeySet {
    /// Parses a JWKS document; returns the usable keys and why each other key was skipped.
    pub fn from_jwks(doc: &Value) -> Result<(KeySet, Vec<String>), JwksError> {
        let keys = doc
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAJwks)?;
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match parse_jwk(k) {
                Ok(key) => set.push(key),
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        Ok((set, skipped))
    }

    fn push(&mut self, key: VerifyKey) {
        if let Some(kid) = &key.kid {
            self.by_kid
                .entry(kid.clone())
                .or_default()
                .push(self.keys.len());
        }
        self.keys.push(Arc::new(key));
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The keys that may verify a token with this `kid` (if any) and `alg`, in document
    /// order: with a kid, only keys of that kid; without, every compatible key.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Vec<&VerifyKey> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map(|idx| {
                    idx.iter()
                        .map(|i| &*self.keys[*i])
                        .filter(|k| k.allows(alg))
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .keys
                .iter()
                .map(|k| &**k)
                .filter(|k| k.allows(alg))
                .collect(),
        }
    }
}

fn b64(v: Option<&Value>, field: &str) -> Result<Vec<u8>, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{field}`"))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("`{field}` is not base64url"))
}

fn parse_jwk(k: &Value) -> Result<VerifyKey, String> {
    let o = k.as_object().ok_or("not an object")?;
    let s = |f: &str| o.get(f).and_then(Value::as_str);
    if let Some(u) = o.get("use")
        && u.as_str() != Some("sig")
    {
        return Err("`use` is not `sig`".into());
    }
    if let Some(ops) = o.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|op| op.as_str() == Some("verify")));
        if !verify {
            return Err("`key_ops` does not include `verify`".into());
        }
    }
    let alg = match o.get("alg") {
        None => None,
        Some(a) => Some(
            a.as_str()
                .and_then(Alg::parse)
                .ok_or("`alg` is not a supported signature algorithm")?,
        ),
    };
    let kid = match o.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("`kid` is not a string".into()),
    };
    let (kind, key) = match s("kty") {
        Some("RSA") => {
            let n = b64(o.get("n"), "n")?;
            let e = b64(o.get("e"), "e")?;
            let n = strip_leading_zeros(&n);
            let bits = n
                .first()
                .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if bits < 2048 {
                return Err(format!("RSA modulus of {bits} bits is below 2048"));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent is invalid".into());
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(n, &e))
        }
        Some("EC") => {
            let (kind, len) = match s("crv") {
                Some("P-256") => (KeyKind::EcP256, 32),
                Some("P-384") => (KeyKind::EcP384, 48),
                _ => return Err("EC `crv` must be P-256 or P-384".into()),
            };
            let x = b64(o.get("x"), "x")?;
            let y = b64(o.get("y"), "y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates do not match `crv`".into());
            }
            // The point must lie on the curve, or the key could never verify anything.
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match kind {
                KeyKind::EcP256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                _ => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
            };
            if aws_lc_rs::signature::ParsedPublicKey::new(alg, &point).is_err() {
                return Err("EC point is not on the curve".into());
            }
            let key = DecodingKey::from_ec_components(
                s("x").unwrap_or_default(),
                s("y").unwrap_or_default(),
            )
            .map_err(|_| "EC key is invalid")?;
            (kind, key)
        }
        Some("OKP") => {
            if s("crv") != Some("Ed25519") {
                return Err("OKP `crv` must be Ed25519".into());
            }
            let x = b64(o.get("x"), "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".into());
            }
            if aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ED25519, &x)
                .is_err()
            {
                return Err("Ed25519 key is invalid".into());
            }
            let key = DecodingKey::from_ed_components(s("x").unwrap_or_default())
                .map_err(|_| "Ed25519 key is invalid")?;
            (KeyKind::Ed25519, key)
        }
        Some("oct") => {
            let secret = b64(o.get("k"), "k")?;
            if secret.len() < 32 {
                return Err("an HMAC key shorter than 32 bytes is refused".into());
            }
            let key = DecodingKey::from_secret(&secret).map_err(|_| "HMAC key is invalid")?;
            (KeyKind::Oct, key)
        }
        Some(other) => return Err(format!("unsupported `kty` {other}")),
        None => return Err("missing `kty`".into()),
    };
    if let Some(a) = alg
        && !kind.allows(a)
    {
        return Err("`alg` does not match the key type".into());
    }
    Ok(VerifyKey {
        kid,
        alg,
        kind,
        key,
    })
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

#[cfg(test)]
mod tests;
