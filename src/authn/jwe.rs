//! Nested JWTs (RFC 7519 §5.2): a JWE in compact form (RFC 7516) whose plaintext is the
//! JWS that ward then verifies as any other. This module only decrypts.
//!
//! Built on aws-lc-rs, the crypto library ward already verifies signatures and serves TLS
//! with (shared with rustls): RSA-OAEP with SHA-256 (`RSA-OAEP-256`), ECDH on P-256,
//! P-384 and P-521 with the Concat KDF of RFC 7518 §4.6 (`ECDH-ES`, and with AES key
//! wrap, `ECDH-ES+A128KW`, `ECDH-ES+A256KW`), AES-GCM content encryption (`A128GCM`,
//! `A256GCM`). Nothing else is accepted: not `dir`, not `RSA1_5` (Bleichenbacher), not a
//! bare `A128KW` (a shared secret), not compression (`zip`: a decompression bomb).
//!
//! Every failure is the one [`Undecryptable`] error, whatever failed (header, key id,
//! key agreement, key unwrap, tag): a caller learns nothing from it but "no". An RSA
//! unwrap that fails continues with a random key so that it fails at the tag like any
//! other wrong key (RFC 7516 §11.5).

use std::fmt;

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, ECDH_P384, ECDH_P521, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrap as _};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::authn::strict_json;
use crate::authn::typ::short_form;

/// A key management algorithm ward decrypts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    RsaOaep256,
    EcdhEs,
    EcdhEsA128Kw,
    EcdhEsA256Kw,
}

impl KeyAlg {
    pub const NAMES: &'static str = "RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, ECDH-ES+A256KW";

    pub fn parse(s: &str) -> Option<KeyAlg> {
        Some(match s {
            "RSA-OAEP-256" => KeyAlg::RsaOaep256,
            "ECDH-ES" => KeyAlg::EcdhEs,
            "ECDH-ES+A128KW" => KeyAlg::EcdhEsA128Kw,
            "ECDH-ES+A256KW" => KeyAlg::EcdhEsA256Kw,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::RsaOaep256 => "RSA-OAEP-256",
            KeyAlg::EcdhEs => "ECDH-ES",
            KeyAlg::EcdhEsA128Kw => "ECDH-ES+A128KW",
            KeyAlg::EcdhEsA256Kw => "ECDH-ES+A256KW",
        }
    }

    /// The key-wrapping key's length for the `+A*KW` variants.
    fn kek_len(self) -> Option<usize> {
        match self {
            KeyAlg::EcdhEsA128Kw => Some(16),
            KeyAlg::EcdhEsA256Kw => Some(32),
            _ => None,
        }
    }
}

/// A content encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    A128Gcm,
    A256Gcm,
}

impl Enc {
    pub fn parse(s: &str) -> Option<Enc> {
        Some(match s {
            "A128GCM" => Enc::A128Gcm,
            "A256GCM" => Enc::A256Gcm,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enc::A128Gcm => "A128GCM",
            Enc::A256Gcm => "A256GCM",
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Enc::A128Gcm => 16,
            Enc::A256Gcm => 32,
        }
    }

    fn aead(self) -> &'static aws_lc_rs::aead::Algorithm {
        match self {
            Enc::A128Gcm => &AES_128_GCM,
            Enc::A256Gcm => &AES_256_GCM,
        }
    }
}

/// An elliptic curve of an ECDH key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Bytes of one coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    pub fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Curve::P256 => &ECDH_P256,
            Curve::P384 => &ECDH_P384,
            Curve::P521 => &ECDH_P521,
        }
    }
}

enum Private {
    Rsa(OaepPrivateDecryptingKey),
    Ec(Curve, agreement::PrivateKey),
}

/// One configured decryption key: `kid`, the algorithm it is used with, and the private
/// key. Never printed beyond its `kid` and algorithm.
pub struct DecryptionKey {
    pub kid: String,
    pub alg: KeyAlg,
    key: Private,
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a key file cannot decrypt, for the config error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no PEM private key in the file (a PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` block)"
    )]
    NoPrivateKey,
    #[error("{0} needs an RSA private key of 2048 bits or more (PKCS#8)")]
    NotRsa(&'static str),
    #[error("{0} needs a P-256, P-384 or P-521 EC private key")]
    NotEc(&'static str),
}

impl DecryptionKey {
    /// Reads the private key in `pem` for `alg`.
    pub fn from_pem(kid: &str, alg: KeyAlg, pem: &[u8]) -> Result<Self, KeyError> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPrivateKey)?;
        let key = match alg {
            KeyAlg::RsaOaep256 => {
                let PrivateKeyDer::Pkcs8(p8) = &der else {
                    return Err(KeyError::NotRsa(alg.as_str()));
                };
                let key = PrivateDecryptingKey::from_pkcs8(p8.secret_pkcs8_der())
                    .map_err(|_| KeyError::NotRsa(alg.as_str()))?;
                Private::Rsa(
                    OaepPrivateDecryptingKey::new(key)
                        .map_err(|_| KeyError::NotRsa(alg.as_str()))?,
                )
            }
            _ => {
                let (curve, key) = [Curve::P256, Curve::P384, Curve::P521]
                    .into_iter()
                    .find_map(|c| {
                        agreement::PrivateKey::from_private_key_der(c.agreement(), der.secret_der())
                            .ok()
                            .map(|k| (c, k))
                    })
                    .ok_or(KeyError::NotEc(alg.as_str()))?;
                Private::Ec(curve, key)
            }
        };
        Ok(DecryptionKey {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }

    /// The curve of an ECDH key.
    #[cfg(any(test, feature = "internals"))]
    pub fn curve(&self) -> Option<Curve> {
        match &self.key {
            Private::Ec(c, _) => Some(*c),
            Private::Rsa(_) => None,
        }
    }
}

/// Every way a JWE fails, as one: the header is not one ward accepts, no configured key
/// fits, or the ciphertext does not decrypt and authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token cannot be decrypted")]
pub struct Undecryptable;

/// Whether `token` has the five parts of a compact JWE (a JWS has three).
pub fn is_jwe(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 4
}

fn b64(part: &str) -> Result<Vec<u8>, Undecryptable> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Undecryptable)
}

/// Decrypts a compact JWE with one of `keys` and returns its plaintext, the nested JWS.
/// The caller has already applied its size cap to `token`.
pub fn decrypt(token: &str, keys: &[DecryptionKey]) -> Result<String, Undecryptable> {
    let mut parts = token.split('.');
    let (Some(h), Some(ek), Some(iv), Some(ct), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Undecryptable);
    };
    let header = strict_json::parse_object(&b64(h)?).map_err(|_| Undecryptable)?;
    let text = |name: &str| header.get(name).and_then(Value::as_str);
    let alg = text("alg").and_then(KeyAlg::parse).ok_or(Undecryptable)?;
    let enc = text("enc").and_then(Enc::parse).ok_or(Undecryptable)?;
    // Nested only (RFC 7519 §5.2): the plaintext must be a JWT. No extension ward does
    // not know, no compression.
    let nested = text("cty").is_some_and(|c| short_form(c).eq_ignore_ascii_case("JWT"));
    if !nested || header.contains_key("crit") || header.contains_key("zip") {
        return Err(Undecryptable);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(Undecryptable),
    };
    let (ek, iv, ct, tag) = (b64(ek)?, b64(iv)?, b64(ct)?, b64(tag)?);
    if iv.len() != 12 || tag.len() != 16 {
        return Err(Undecryptable);
    }
    let candidates = keys
        .iter()
        .filter(|k| k.alg == alg && kid.is_none_or(|kid| k.kid == kid));
    for key in candidates {
        let Ok(cek) = content_key(key, alg, enc, &header, &ek) else {
            continue;
        };
        if let Ok(plain) = open(enc, &cek, &iv, h.as_bytes(), &ct, &tag) {
            return String::from_utf8(plain).map_err(|_| Undecryptable);
        }
    }
    Err(Undecryptable)
}

/// The content encryption key, from the encrypted key (`ek`) or the key agreement.
fn content_key(
    key: &DecryptionKey,
    alg: KeyAlg,
    enc: Enc,
    header: &Map<String, Value>,
    ek: &[u8],
) -> Result<Vec<u8>, Undecryptable> {
    match &key.key {
        Private::Rsa(rsa) => {
            let mut out = vec![0u8; rsa.min_output_size()];
            let unwrapped = rsa
                .decrypt(&OAEP_SHA256_MGF1SHA256, ek, &mut out, None)
                .ok()
                .filter(|k| k.len() == enc.key_len())
                .map(|k| k.to_vec());
            // RFC 7516 §11.5: a failed unwrap goes on with a random key, failing at the
            // tag as a wrong key does.
            Ok(unwrapped.unwrap_or_else(|| {
                let mut random = vec![0u8; enc.key_len()];
                let _ = aws_lc_rs::rand::fill(&mut random);
                random
            }))
        }
        Private::Ec(curve, private) => {
            let epk = header
                .get("epk")
                .and_then(Value::as_object)
                .ok_or(Undecryptable)?;
            let point = epk_point(epk, *curve)?;
            let peer = UnparsedPublicKey::new(curve.agreement(), point);
            let party = |name: &str| match header.get(name) {
                None => Ok(Vec::new()),
                Some(Value::String(s)) => b64(s),
                Some(_) => Err(Undecryptable),
            };
            let (apu, apv) = (party("apu")?, party("apv")?);
            let (algorithm_id, key_len) = match alg.kek_len() {
                None => (enc.as_str(), enc.key_len()),
                Some(len) => (alg.as_str(), len),
            };
            let derived = agreement::agree(private, peer, Undecryptable, |z| {
                Ok(concat_kdf(z, algorithm_id, &apu, &apv, key_len))
            })?;
            match alg.kek_len() {
                None if ek.is_empty() => Ok(derived),
                None => Err(Undecryptable),
                Some(_) => {
                    if ek.len() != enc.key_len() + 8 {
                        return Err(Undecryptable);
                    }
                    let cipher = if derived.len() == 16 {
                        &AES_128
                    } else {
                        &AES_256
                    };
                    let kek = AesKek::new(cipher, &derived).map_err(|_| Undecryptable)?;
                    let mut out = vec![0u8; ek.len()];
                    let cek = kek.unwrap(ek, &mut out).map_err(|_| Undecryptable)?;
                    Ok(cek.to_vec())
                }
            }
        }
    }
}

/// The ephemeral public key of the header, as an uncompressed point on `curve`: an EC
/// JWK of that curve with coordinates of its length. aws-lc checks the point lies on
/// the curve when it is used.
fn epk_point(epk: &Map<String, Value>, curve: Curve) -> Result<Vec<u8>, Undecryptable> {
    let text = |name: &str| epk.get(name).and_then(Value::as_str);
    if text("kty") != Some("EC") || text("crv") != Some(curve.name()) {
        return Err(Undecryptable);
    }
    let x = b64(text("x").ok_or(Undecryptable)?)?;
    let y = b64(text("y").ok_or(Undecryptable)?)?;
    let len = curve.coordinate_len();
    if x.len() != len || y.len() != len {
        return Err(Undecryptable);
    }
    Ok([&[4u8][..], &x, &y].concat())
}

/// The Concat KDF of NIST SP 800-56A as RFC 7518 §4.6.2 uses it, with SHA-256: `len`
/// bytes (at most 32, so one round) from the shared secret `z`.
pub(crate) fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    len: usize,
) -> Vec<u8> {
    let field = |ctx: &mut crate::digest::Sha256, v: &[u8]| {
        ctx.update(&(v.len() as u32).to_be_bytes());
        ctx.update(v);
    };
    let mut ctx = crate::digest::Sha256::default();
    ctx.update(&1u32.to_be_bytes());
    ctx.update(z);
    field(&mut ctx, algorithm_id.as_bytes());
    field(&mut ctx, apu);
    field(&mut ctx, apv);
    ctx.update(&((len * 8) as u32).to_be_bytes());
    ctx.finish()[..len.min(32)].to_vec()
}

/// AES-GCM decryption of `ct` with tag `tag`, the protected header's encoded text as
/// additional data.
fn open(
    enc: Enc,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, Undecryptable> {
    if cek.len() != enc.key_len() {
        return Err(Undecryptable);
    }
    let key = LessSafeKey::new(UnboundKey::new(enc.aead(), cek).map_err(|_| Undecryptable)?);
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| Undecryptable)?;
    let mut buf = [ct, tag].concat();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| Undecryptable)?;
    Ok(plain.to_vec())
}

pub mod encrypt;

#[cfg(test)]
mod tests;
