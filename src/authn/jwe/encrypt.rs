//! Making nested JWTs, for `ward token sign --encrypt-to` (so a user can try a provider's
//! `decryption`): the JWS encrypted to a recipient's public key, given as a JWK or a
//! `PUBLIC KEY` PEM, with the algorithms [`decrypt`](super::decrypt) accepts.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrap as _};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Curve, Enc, KeyAlg, concat_kdf};

/// A recipient's public key.
pub enum Recipient {
    Rsa(PublicEncryptingKey),
    Ec(Curve, Vec<u8>),
}

/// Why a recipient key or an encryption is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error("not a public key: a JWK (RSA, or EC on P-256, P-384 or P-521) or a `PUBLIC KEY` PEM")]
    NotAKey,
    #[error("{0} does not fit this key (RSA-OAEP-256 for RSA, ECDH-ES* for EC)")]
    WrongAlg(&'static str),
    #[error("encryption failed")]
    Failed,
}

/// The recipient's `kid`, when its JWK has one.
pub struct Parsed {
    pub key: Recipient,
    pub kid: Option<String>,
}

impl Recipient {
    /// Reads a JWK (JSON) or a `PUBLIC KEY` PEM.
    pub fn parse(bytes: &[u8]) -> Result<Parsed, EncryptError> {
        if let Ok(jwk) = serde_json::from_slice::<Value>(bytes) {
            return from_jwk(&jwk);
        }
        use rustls::pki_types::SubjectPublicKeyInfoDer;
        use rustls::pki_types::pem::PemObject;
        let spki =
            SubjectPublicKeyInfoDer::from_pem_slice(bytes).map_err(|_| EncryptError::NotAKey)?;
        if let Ok(rsa) = PublicEncryptingKey::from_der(spki.as_ref()) {
            return Ok(Parsed {
                key: Recipient::Rsa(rsa),
                kid: None,
            });
        }
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let public = UnparsedPublicKey::new(curve.agreement(), spki.as_ref());
            if let Ok(parsed) = agreement::ParsedPublicKey::try_from(&public) {
                let point = parsed.as_ref().to_vec();
                // The SubjectPublicKeyInfo's point, as the JWK coordinates want it.
                let point = sec1_point(&point, curve).ok_or(EncryptError::NotAKey)?;
                return Ok(Parsed {
                    key: Recipient::Ec(curve, point),
                    kid: None,
                });
            }
        }
        Err(EncryptError::NotAKey)
    }

    /// The algorithm used when none is asked for.
    pub fn default_alg(&self) -> KeyAlg {
        match self {
            Recipient::Rsa(_) => KeyAlg::RsaOaep256,
            Recipient::Ec(..) => KeyAlg::EcdhEsA256Kw,
        }
    }
}

/// The uncompressed point at the end of an EC SubjectPublicKeyInfo (or the point
/// itself).
fn sec1_point(bytes: &[u8], curve: Curve) -> Option<Vec<u8>> {
    let len = 1 + 2 * curve.coordinate_len();
    let point = bytes.get(bytes.len().checked_sub(len)?..)?;
    (point[0] == 4).then(|| point.to_vec())
}

fn from_jwk(jwk: &Value) -> Result<Parsed, EncryptError> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| {
        text(name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or(EncryptError::NotAKey)
    };
    let kid = text("kid").map(str::to_owned);
    let key = match text("kty") {
        Some("RSA") => {
            let spki = rsa_spki(&bytes("n")?, &bytes("e")?);
            Recipient::Rsa(PublicEncryptingKey::from_der(&spki).map_err(|_| EncryptError::NotAKey)?)
        }
        Some("EC") => {
            let curve = match text("crv") {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                Some("P-521") => Curve::P521,
                _ => return Err(EncryptError::NotAKey),
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                return Err(EncryptError::NotAKey);
            }
            let point = [&[4u8][..], &x, &y].concat();
            agreement::ParsedPublicKey::try_from(&UnparsedPublicKey::new(
                curve.agreement(),
                &point,
            ))
            .map_err(|_| EncryptError::NotAKey)?;
            Recipient::Ec(curve, point)
        }
        _ => return Err(EncryptError::NotAKey),
    };
    Ok(Parsed { key, kid })
}

/// DER: a tag, a length, the content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of a big-endian unsigned value.
fn der_uint(v: &[u8]) -> Vec<u8> {
    let first = v
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(v.len().saturating_sub(1));
    let v = &v[first..];
    let mut content = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(v);
    der(0x02, &content)
}

/// The SubjectPublicKeyInfo of an RSA public key (RFC 8017 A.1.1, RFC 5280).
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    // 1.2.840.113549.1.1.1 rsaEncryption, with NULL parameters.
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let rsa_public = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let bits = der(0x03, &[&[0u8][..], &rsa_public].concat());
    der(0x30, &[&ALGORITHM[..], &bits].concat())
}

/// Encrypts `jws` to `to` as a nested JWT (`cty: JWT`) in compact form.
pub fn encrypt(jws: &str, to: &Parsed, alg: KeyAlg, enc: Enc) -> Result<String, EncryptError> {
    let rng = SystemRandom::new();
    let mut header = json!({"alg": alg.as_str(), "enc": enc.as_str(), "cty": "JWT"});
    if let Some(kid) = &to.kid {
        header["kid"] = kid.as_str().into();
    }
    let random = |len: usize| {
        let mut v = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut v)
            .map(|()| v)
            .map_err(|_| EncryptError::Failed)
    };
    let (cek, ek) = match (&to.key, alg) {
        (Recipient::Rsa(public), KeyAlg::RsaOaep256) => {
            let cek = random(enc.key_len())?;
            let oaep =
                OaepPublicEncryptingKey::new(public.clone()).map_err(|_| EncryptError::Failed)?;
            let mut out = vec![0u8; oaep.ciphertext_size()];
            let ek = oaep
                .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut out, None)
                .map_err(|_| EncryptError::Failed)?
                .to_vec();
            (cek, ek)
        }
        (
            Recipient::Ec(curve, point),
            KeyAlg::EcdhEs | KeyAlg::EcdhEsA128Kw | KeyAlg::EcdhEsA256Kw,
        ) => {
            let ephemeral = EphemeralPrivateKey::generate(curve.agreement(), &rng)
                .map_err(|_| EncryptError::Failed)?;
            let epk = ephemeral
                .compute_public_key()
                .map_err(|_| EncryptError::Failed)?;
            let epk = epk.as_ref();
            let l = curve.coordinate_len();
            header["epk"] = json!({
                "kty": "EC", "crv": curve.name(),
                "x": URL_SAFE_NO_PAD.encode(&epk[1..1 + l]),
                "y": URL_SAFE_NO_PAD.encode(&epk[1 + l..]),
            });
            let (algorithm_id, len) = match alg.kek_len() {
                None => (enc.as_str(), enc.key_len()),
                Some(len) => (alg.as_str(), len),
            };
            let derived = agreement::agree_ephemeral(
                ephemeral,
                UnparsedPublicKey::new(curve.agreement(), point),
                EncryptError::Failed,
                |z| Ok(concat_kdf(z, algorithm_id, b"", b"", len)),
            )?;
            match alg.kek_len() {
                None => (derived, Vec::new()),
                Some(_) => {
                    let cek = random(enc.key_len())?;
                    let cipher = if derived.len() == 16 {
                        &AES_128
                    } else {
                        &AES_256
                    };
                    let kek = AesKek::new(cipher, &derived).map_err(|_| EncryptError::Failed)?;
                    let mut out = vec![0u8; cek.len() + 8];
                    let ek = kek
                        .wrap(&cek, &mut out)
                        .map_err(|_| EncryptError::Failed)?
                        .to_vec();
                    (cek, ek)
                }
            }
        }
        _ => return Err(EncryptError::WrongAlg(alg.as_str())),
    };
    let protected = URL_SAFE_NO_PAD.encode(header.to_string());
    let iv = random(12)?;
    let key =
        LessSafeKey::new(UnboundKey::new(enc.aead(), &cek).map_err(|_| EncryptError::Failed)?);
    let nonce = Nonce::try_assume_unique_for_key(&iv).map_err(|_| EncryptError::Failed)?;
    let mut body = jws.as_bytes().to_vec();
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(protected.as_bytes()), &mut body)
        .map_err(|_| EncryptError::Failed)?;
    let e = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Ok(format!(
        "{protected}.{}.{}.{}.{}",
        e(&ek),
        e(&iv),
        e(&body),
        e(tag.as_ref())
    ))
}
