//! DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) is presented with the `DPoP`
//! authorization scheme and a proof, a JWS signed by that key over the request's method
//! and URL, the token's hash and a fresh `jti`.
//!
//! The proof's checks (RFC 9449 §4.3), cheapest first: exactly one `DPoP` header, at
//! most [`MAX_PROOF_BYTES`]; a compact JWS whose header and payload are JSON objects
//! without duplicate members; `typ: dpop+jwt`; an asymmetric `alg` ward accepts
//! ([`Alg::ASYMMETRIC`]); a `jwk` header holding a public key only, whose RFC 7638
//! thumbprint is the token's `cnf.jkt` (constant time); the signature by that key;
//! `htm` the request's method, `htu` its URL ([`htu`]); `iat` within the provider's
//! `dpop_iat_window` (plus its leeway, also for proofs from the future); `ath` the
//! base64url SHA-256 of the token (constant time); a `jti` not seen before within the
//! window ([`replay`]).

pub mod htu;
pub mod replay;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prometheus::IntCounter;
use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::authn::alg::Alg;
use crate::authn::binding::same;
use crate::authn::jwks::set::VerifyKey;
use crate::authn::strict_json;
use crate::digest::Sha256;
use crate::metrics::Metrics;
use crate::request::{CheckInput, Lookup};
use replay::{ReplayCache, Seen};

/// A proof larger than this is refused before it is decoded (an RSA-4096 proof with its
/// key is about 1.5 KiB).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` accepted.
const MAX_JTI_BYTES: usize = 256;

/// JWK members that only a private key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a DPoP proof was refused. The text is fixed: nothing from the proof is echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("more than one DPoP header")]
    Duplicate,
    #[error("proof too large")]
    TooLarge,
    #[error("malformed proof")]
    Malformed,
    #[error("proof `typ` is not dpop+jwt")]
    Type,
    #[error("proof algorithm not allowed")]
    Algorithm,
    #[error("proof `jwk` is not a usable public key")]
    Key,
    #[error("proof `jwk` holds private key material")]
    PrivateKey,
    #[error("proof key is not the key the token is bound to")]
    Thumbprint,
    #[error("proof signature verification failed")]
    Signature,
    #[error("proof `htm` does not match the request method")]
    Method,
    #[error("proof `htu` does not match the request URL")]
    Url,
    #[error("proof `iat` outside the accepted window")]
    Iat,
    #[error("proof `ath` does not match the access token")]
    Ath,
    #[error("proof `jti` missing or invalid")]
    Jti,
    #[error("proof replayed")]
    Replayed,
}

impl ProofError {
    /// Every value, in the order of [`ProofError::label`]'s series.
    const ALL: [ProofError; 15] = [
        ProofError::Duplicate,
        ProofError::TooLarge,
        ProofError::Malformed,
        ProofError::Type,
        ProofError::Algorithm,
        ProofError::Key,
        ProofError::PrivateKey,
        ProofError::Thumbprint,
        ProofError::Signature,
        ProofError::Method,
        ProofError::Url,
        ProofError::Iat,
        ProofError::Ath,
        ProofError::Jti,
        ProofError::Replayed,
    ];

    /// The `result` label of `ward_dpop_proofs_total`.
    pub fn label(self) -> &'static str {
        match self {
            ProofError::Duplicate => "duplicate",
            ProofError::TooLarge => "too_large",
            ProofError::Malformed => "malformed",
            ProofError::Type => "type",
            ProofError::Algorithm => "algorithm",
            ProofError::Key => "key",
            ProofError::PrivateKey => "private_key",
            ProofError::Thumbprint => "thumbprint",
            ProofError::Signature => "signature",
            ProofError::Method => "method",
            ProofError::Url => "url",
            ProofError::Iat => "iat",
            ProofError::Ath => "ath",
            ProofError::Jti => "jti",
            ProofError::Replayed => "replayed",
        }
    }
}

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    pub method: &'a str,
    /// The request's URL, normalised ([`htu::request_url`]).
    pub url: &'a str,
    /// The access token presented with the proof.
    pub token: &'a str,
    /// The token's `cnf.jkt`.
    pub jkt: &'a [u8; 32],
    /// Unix seconds.
    pub now: u64,
    /// How old `iat` may be, in seconds.
    pub window: u64,
    /// Clock skew allowed either way, in seconds.
    pub leeway: u64,
}

/// A proof that passed every check but the replay cache's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// SHA-256 of the key thumbprint and the `jti`: the replay cache's entry.
    pub entry: [u8; 32],
    /// When the entry may be forgotten: `iat` can no longer be accepted after it.
    pub forget_at: u64,
}

/// Checks one proof (the value of the `DPoP` header) against the request it came with.
pub fn verify(proof: &str, r: &ProofRequest<'_>) -> Result<Accepted, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLarge);
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| ProofError::Malformed)
    };
    let header = strict_json::parse_object(&decode(h)?).map_err(|_| ProofError::Malformed)?;
    let claims = strict_json::parse_object(&decode(p)?).map_err(|_| ProofError::Malformed)?;
    let signature = decode(s)?;
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(ProofError::Type);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .filter(|a| Alg::ASYMMETRIC.contains(a))
        .ok_or(ProofError::Algorithm)?;
    if header.contains_key("crit") {
        return Err(ProofError::Malformed);
    }
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError::Key)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    let thumbprint = thumbprint(jwk).ok_or(ProofError::Key)?;
    if !same(&thumbprint, r.jkt) {
        return Err(ProofError::Thumbprint);
    }
    let key = VerifyKey::from_jwk(&Value::Object(jwk.clone())).map_err(|_| ProofError::Key)?;
    if !key.allows(alg) {
        return Err(ProofError::Key);
    }
    let signing_input = &proof[..h.len() + 1 + p.len()];
    if !key.verify(alg, signing_input.as_bytes(), &signature) {
        return Err(ProofError::Signature);
    }
    check_claims(&claims, r, &thumbprint)
}

fn check_claims(
    c: &Map<String, Value>,
    r: &ProofRequest<'_>,
    thumbprint: &[u8; 32],
) -> Result<Accepted, ProofError> {
    if c.get("htm").and_then(Value::as_str) != Some(r.method) {
        return Err(ProofError::Method);
    }
    let htu = c
        .get("htu")
        .and_then(Value::as_str)
        .and_then(htu::normalise);
    if htu.as_deref() != Some(r.url) {
        return Err(ProofError::Url);
    }
    let iat = c
        .get("iat")
        .and_then(Value::as_f64)
        .filter(|i| i.is_finite())
        .ok_or(ProofError::Iat)?;
    let now = r.now as f64;
    if iat > now + r.leeway as f64 || iat + (r.window + r.leeway) as f64 <= now {
        return Err(ProofError::Iat);
    }
    let ath = c
        .get("ath")
        .and_then(Value::as_str)
        .ok_or(ProofError::Ath)?;
    let ath: [u8; 32] = URL_SAFE_NO_PAD
        .decode(ath)
        .ok()
        .and_then(|a| a.try_into().ok())
        .ok_or(ProofError::Ath)?;
    if !same(&ath, &crate::digest::sha256(r.token.as_bytes())) {
        return Err(ProofError::Ath);
    }
    let jti = c
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
        .ok_or(ProofError::Jti)?;
    let mut entry = Sha256::default();
    entry.update(thumbprint);
    entry.update(jti.as_bytes());
    // iat passed the checks above: a finite number within the window of `now`.
    let forget_at = (iat.max(0.0) as u64).saturating_add(r.window + r.leeway + 1);
    Ok(Accepted {
        entry: entry.finish(),
        forget_at,
    })
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: its required members, in
/// lexicographic order, as JSON without whitespace.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<[u8; 32]> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for m in members {
        canonical.insert((*m).into(), Value::String(jwk.get(*m)?.as_str()?.into()));
    }
    // serde_json's map is sorted by key: the members come out in RFC 7638's order.
    let text = serde_json::to_string(&canonical).ok()?;
    Some(crate::digest::sha256(text.as_bytes()))
}

/// The `www-authenticate` challenge for a refused DPoP-bound token (RFC 9449 §7.1):
/// `invalid_dpop_proof` for a bad proof, `invalid_token` for a missing one or a token
/// presented with the wrong scheme. `algs` lists what ward accepts for proofs.
pub fn challenge(e: &TokenError) -> Option<String> {
    let (error, description) = match e {
        TokenError::DpopProof(p) => ("invalid_dpop_proof", p.to_string()),
        TokenError::DpopRequired | TokenError::DpopUnbound => ("invalid_token", e.to_string()),
        _ => return None,
    };
    let algs: Vec<&str> = Alg::ASYMMETRIC.iter().map(|a| a.as_str()).collect();
    Some(format!(
        r#"DPoP algs="{}", error="{error}", error_description="{description}""#,
        algs.join(" ")
    ))
}

/// What a running ward shares for DPoP: the replay cache and the proof counters. It
/// survives reloads that keep `dpop_replay_cache.max_entries`.
#[derive(Debug)]
pub struct Dpop {
    pub replay: ReplayCache,
    accepted: IntCounter,
    missing: IntCounter,
    cache_full: IntCounter,
    refused: Box<[IntCounter]>,
}

/// A proof checked against the request and the replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused(TokenError),
    /// Not seen before, but the replay cache has no room (503).
    CacheFull,
}

impl Dpop {
    pub fn new(max_entries: u64, metrics: &Metrics) -> Arc<Self> {
        let series = |r: &str| metrics.dpop_proofs.with_label_values(&[r]);
        Arc::new(Self {
            replay: ReplayCache::new(max_entries, metrics.dpop_replay_cache_entries.clone()),
            accepted: series("accepted"),
            missing: series("missing"),
            cache_full: series("cache_full"),
            refused: ProofError::ALL.iter().map(|e| series(e.label())).collect(),
        })
    }

    fn refused(&self, e: ProofError) -> Outcome {
        if let Some(c) = self.refused.get(e as usize) {
            c.inc();
        }
        Outcome::Refused(TokenError::DpopProof(e))
    }

    /// Checks the request's proof for `token`, bound to `jkt`: the proof itself, then
    /// the replay cache. A request without a proof is refused as `invalid_token`.
    pub fn check(
        &self,
        input: &CheckInput<'_>,
        token: &str,
        jkt: &[u8; 32],
        now: u64,
        window: u64,
        leeway: u64,
    ) -> Outcome {
        let proof = match input.headers.get("dpop") {
            Lookup::Absent => {
                self.missing.inc();
                return Outcome::Refused(TokenError::DpopRequired);
            }
            Lookup::Many => return self.refused(ProofError::Duplicate),
            Lookup::One(v) => v,
        };
        // Envoy joins repeated headers with `,`, which no compact JWS holds.
        if proof.contains(&b',') {
            return self.refused(ProofError::Duplicate);
        }
        let Ok(proof) = std::str::from_utf8(proof) else {
            return self.refused(ProofError::Malformed);
        };
        let Some(url) = htu::request_url(input) else {
            return self.refused(ProofError::Url);
        };
        let r = ProofRequest {
            method: input.method,
            url: &url,
            token,
            jkt,
            now,
            window,
            leeway,
        };
        let accepted = match verify(proof, &r) {
            Ok(a) => a,
            Err(e) => return self.refused(e),
        };
        match self.replay.check(accepted.entry, accepted.forget_at, now) {
            Seen::New => {
                self.accepted.inc();
                Outcome::Accepted
            }
            Seen::Replayed => self.refused(ProofError::Replayed),
            Seen::Full => {
                self.cache_full.inc();
                Outcome::CacheFull
            }
        }
    }
}

#[cfg(test)]
mod tests;
