//! JSON Web Key sets: parsed once into verification keys, each bound to one key family.
//!
//! A key is used only if it is complete and consistent: `use: enc` keys and keys whose
//! `key_ops` exclude `verify` never verify; an EC key's `crv` must match its coordinates;
//! RSA moduli under 2048 bits are refused. One unusable key is skipped (and reported),
//! never voiding the rest of the set.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::authn::alg::Alg;
use crate::digest::Sha256;

/// The family a key belongs to; a token's `alg` must belong to the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
    Oct,
}

impl KeyKind {
    /// The family as `/status` names it: `RSA`, `EC P-256`, `OKP Ed25519`, `oct`.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::EcP521 => "EC P-521",
            KeyKind::Ed25519 => "OKP Ed25519",
            KeyKind::Oct => "oct",
        }
    }

    /// Whether `alg` may be verified with a key of this kind: the algorithm-confusion guard.
    pub fn allows(self, alg: Alg) -> bool {
        use Alg::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
            KeyKind::EcP521 => alg == ES512,
            KeyKind::Ed25519 => alg.is_ed25519(),
            KeyKind::Oct => matches!(alg, HS256 | HS384 | HS512),
        }
    }
}

pub struct VerifyKey {
    /// Which key this is, by content: the same JWK in a refetched set has the same id.
    id: KeyId,
    pub kid: Option<String>,
    /// The key's own `alg`, which then is the only one it verifies.
    pub alg: Option<Alg>,
    pub kind: KeyKind,
    key: PublicKey,
}

/// Key material, parsed into aws-lc-rs form once, when the JWKS is read: verifying a
/// token never decodes or rebuilds a key.
enum PublicKey {
    Rsa(Box<RsaKey>),
    /// An EC or Ed25519 key: it verifies the one algorithm its [`KeyKind`] allows.
    Single(ParsedPublicKey),
    /// An `oct` secret keyed for HS256, HS384 and HS512, in that order.
    Hmac(Box<[hmac::Key; 3]>),
}

/// An RSA public key. One modulus may verify RS256, RS384, RS512, PS256, PS384 and
/// PS512, but an aws-lc-rs [`ParsedPublicKey`] is bound to one padding and digest; so
/// the components are kept and the key is parsed for an algorithm the first time a token
/// of that algorithm is verified with it, then reused. A key with an `alg` only ever
/// parses that one; a key without pays for the algorithms its tokens actually use.
struct RsaKey {
    n: Box<[u8]>,
    e: Box<[u8]>,
    /// Indexed by [`rsa_params`]; `None` once parsing failed (never for a key that
    /// `parse_jwk` kept: it parses one algorithm up front).
    parsed: [OnceLock<Option<ParsedPublicKey>>; 6],
}

impl RsaKey {
    fn new(n: &[u8], e: &[u8]) -> Self {
        RsaKey {
            n: n.into(),
            e: e.into(),
            parsed: Default::default(),
        }
    }

    /// The key parsed for `alg`, or `None` if `alg` is not an RSA algorithm or the
    /// components do not form a key.
    fn parsed(&self, alg: Alg) -> Option<&ParsedPublicKey> {
        let (slot, params) = rsa_params(alg)?;
        self.parsed[slot]
            .get_or_init(|| {
                let c = RsaPublicKeyComponents {
                    n: &*self.n,
                    e: &*self.e,
                };
                c.to_parsed_public_key(params).ok()
            })
            .as_ref()
    }
}

/// The slot and the aws-lc-rs parameters of an RSA algorithm: the same ones
/// jsonwebtoken verifies with (moduli of 2048 to 8192 bits, PSS salt as long as the
/// digest).
fn rsa_params(alg: Alg) -> Option<(usize, &'static RsaParameters)> {
    Some(match alg {
        Alg::RS256 => (0, &sig::RSA_PKCS1_2048_8192_SHA256),
        Alg::RS384 => (1, &sig::RSA_PKCS1_2048_8192_SHA384),
        Alg::RS512 => (2, &sig::RSA_PKCS1_2048_8192_SHA512),
        Alg::PS256 => (3, &sig::RSA_PSS_2048_8192_SHA256),
        Alg::PS384 => (4, &sig::RSA_PSS_2048_8192_SHA384),
        Alg::PS512 => (5, &sig::RSA_PSS_2048_8192_SHA512),
        _ => return None,
    })
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

/// A key's identity by content: 64 bits of the SHA-256 of its `kty`, `crv`, `kid`, `alg`
/// and material as the JWKS wrote them. A verified token remembers the id of the key
/// that verified it; the token counts only while a key with that id is in the set, so a
/// key removed from the JWKS (or whose `kid` or `alg` changed) revokes its tokens.
///
/// 64 bits suffice: only the identity provider chooses the keys that are compared, and
/// one that wanted to sign a token could simply sign it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(u64);

impl KeyId {
    /// An id that names no real key, for tests of what holds one.
    #[cfg(test)]
    pub(crate) const fn fixed(n: u64) -> KeyId {
        KeyId(n)
    }

    fn of(jwk: &serde_json::Map<String, Value>) -> KeyId {
        let mut ctx = Sha256::default();
        for member in ["kty", "crv", "kid", "alg", "n", "e", "x", "y", "k"] {
            ctx.update(member.as_bytes());
            match jwk.get(member).and_then(Value::as_str) {
                Some(v) => {
                    ctx.update(&[1]);
                    ctx.update(&(v.len() as u64).to_be_bytes());
                    ctx.update(v.as_bytes());
                }
                None => ctx.update(&[0]),
            }
        }
        let digest = ctx.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        KeyId(u64::from_be_bytes(first))
    }
}

impl VerifyKey {
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn allows(&self, alg: Alg) -> bool {
        self.kind.allows(alg) && self.alg.is_none_or(|a| a.same_scheme(alg))
    }

    /// Whether `signature` (decoded bytes) is a valid `alg` signature of `message` by
    /// this key. `false` for an `alg` this key does not [allow](Self::allows): the
    /// family guard holds here too, whatever the caller checked. HMAC tags are compared
    /// in constant time.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        if !self.allows(alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa(rsa) => rsa
                .parsed(alg)
                .is_some_and(|k| k.verify_sig(message, signature).is_ok()),
            // `allows` above bound `alg` to this key's curve.
            PublicKey::Single(key) => key.verify_sig(message, signature).is_ok(),
            PublicKey::Hmac(keys) => {
                let key = match alg {
                    Alg::HS256 => &keys[0],
                    Alg::HS384 => &keys[1],
                    Alg::HS512 => &keys[2],
                    _ => return false,
                };
                hmac::verify(key, message, signature).is_ok()
            }
        }
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
                Err(why) => skipped.push(format!("keys[{i}]{}: {why}", named(k))),
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

    /// Whether the key with this id is in the set. A linear scan: a JWKS holds a
    /// handful of keys, and comparing a few integers beats hashing one.
    pub fn holds(&self, id: KeyId) -> bool {
        self.keys.iter().any(|k| k.id == id)
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

    /// Every key, in document order (for `/status`: kids, families, ids).
    pub fn keys(&self) -> impl Iterator<Item = &VerifyKey> {
        self.keys.iter().map(|k| &**k)
    }
}

/// How a skipped key is named in a message: its `kid` and `alg` when it has them
/// (quoted and escaped, at most 64 characters each: they come from the IdP).
fn named(k: &Value) -> String {
    let member = |m: &str| {
        k.get(m).map(|v| match v.as_str() {
            Some(s) => format!("{:?}", s.chars().take(64).collect::<String>()),
            None => "(not a string)".to_string(),
        })
    };
    match (member("kid"), member("alg")) {
        (None, None) => String::new(),
        (Some(kid), None) => format!(" (kid {kid})"),
        (None, Some(alg)) => format!(" (alg {alg})"),
        (Some(kid), Some(alg)) => format!(" (kid {kid}, alg {alg})"),
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
            // Like `n`, a big-endian integer: leading zero bytes are not part of it.
            let e = strip_leading_zeros(&e);
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent is invalid".into());
            }
            let rsa = RsaKey::new(n, e);
            // Parsed now for the algorithm it will most likely verify, so a key that
            // could never verify anything is reported, and the first token is not slower.
            let first = alg
                .filter(|a| KeyKind::Rsa.allows(*a))
                .unwrap_or(Alg::RS256);
            if rsa.parsed(first).is_none() {
                return Err("RSA key is invalid".into());
            }
            (KeyKind::Rsa, PublicKey::Rsa(Box::new(rsa)))
        }
        Some("EC") => {
            let (kind, len, params): (_, _, &'static dyn sig::VerificationAlgorithm) =
                match s("crv") {
                    Some("P-256") => (KeyKind::EcP256, 32, &sig::ECDSA_P256_SHA256_FIXED),
                    Some("P-384") => (KeyKind::EcP384, 48, &sig::ECDSA_P384_SHA384_FIXED),
                    Some("P-521") => (KeyKind::EcP521, 66, &sig::ECDSA_P521_SHA512_FIXED),
                    _ => return Err("EC `crv` must be P-256, P-384 or P-521".into()),
                };
            let x = b64(o.get("x"), "x")?;
            let y = b64(o.get("y"), "y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates do not match `crv`".into());
            }
            // The uncompressed point; it must lie on the curve, or the key could never
            // verify anything.
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            let key =
                ParsedPublicKey::new(params, &point).map_err(|_| "EC point is not on the curve")?;
            (kind, PublicKey::Single(key))
        }
        Some("OKP") => {
            if s("crv") != Some("Ed25519") {
                return Err("OKP `crv` must be Ed25519".into());
            }
            let x = b64(o.get("x"), "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".into());
            }
            let key =
                ParsedPublicKey::new(&sig::ED25519, &x).map_err(|_| "Ed25519 key is invalid")?;
            (KeyKind::Ed25519, PublicKey::Single(key))
        }
        Some("oct") => {
            let secret = b64(o.get("k"), "k")?;
            if secret.len() < 32 {
                return Err("an HMAC key shorter than 32 bytes is refused".into());
            }
            let keys = [hmac::HMAC_SHA256, hmac::HMAC_SHA384, hmac::HMAC_SHA512]
                .map(|a| hmac::Key::new(a, &secret));
            (KeyKind::Oct, PublicKey::Hmac(Box::new(keys)))
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
        id: KeyId::of(o),
        kid,
        alg,
        kind,
        key,
    })
}

impl VerifyKey {
    /// One JWK, checked as a key of a JWKS is (a DPoP proof's `jwk` header).
    pub fn from_jwk(k: &Value) -> Result<VerifyKey, String> {
        parse_jwk(k)
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

#[cfg(test)]
mod tests;
