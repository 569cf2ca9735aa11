//! JWT verification: parse strictly, pick keys by `kid` and `alg`, verify the signature
//! with aws-lc-rs against keys parsed once per JWKS (see [`VerifyKey`]), then check the
//! claims ourselves.
//!
//! ward does not use jsonwebtoken to verify: the `decode`/`Validation` defaults (60 s
//! leeway, no `nbf` check, JSON parsed with last-member-wins) are not ours, owning the
//! checks keeps every rule of the contract in one readable place, and its
//! `crypto::verify` rebuilds the public key on every call. jsonwebtoken still signs
//! (`ward token`).
//!
//! [`VerifyKey`]: crate::authn::jwks::VerifyKey

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::authn::TokenError;
pub use crate::authn::alg::Alg;
use crate::authn::claims::{self, ClaimPath, Identity, NameClaims};
use crate::authn::jwks::set::VerifyKey;
use crate::authn::jwks::{KeyId, KeySet, KeySource, Locator, RemoteSettings, Wanted};
use crate::authn::strict_json;
use crate::authn::token::TokenSource;
use crate::authn::typ::TokenTypes;
use crate::header::HeaderName;

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub issuer: Arc<str>,
    pub audiences: Vec<String>,
    pub key_source: KeySource,
    pub algorithms: Vec<Alg>,
    pub leeway: Duration,
    pub refresh_interval: Duration,
    pub min_refetch_interval: Duration,
    pub timeout: Duration,
    /// Extra CA certificates (PEM bundle) trusted for fetching keys.
    pub ca_file: Option<std::path::PathBuf>,
    pub max_token_bytes: usize,
    /// `jwks_fallback_file`: keys used only while the remote keys were never fetched.
    pub jwks_fallback: Option<Arc<KeySet>>,
    pub roles_claim: NameClaims,
    pub scopes_claim: NameClaims,
    pub token_from: Vec<TokenSource>,
    pub claim_headers: Vec<(ClaimPath, HeaderName)>,
    /// How tokens bound to a certificate or a DPoP key (`cnf`) are checked.
    pub binding: crate::authn::binding::BindingSettings,
    /// The `typ` header values accepted (`token_types`).
    pub token_types: TokenTypes,
    /// The keys that open nested JWTs (`decryption`); `None`: signed tokens only.
    pub decryption: Option<Arc<[crate::authn::jwe::DecryptionKey]>>,
    /// The `jwks_file` the static keys were read from (None: inline `jwks`, or remote).
    pub jwks_file: Option<std::path::PathBuf>,
    /// The `jwks_fallback_file`, if any.
    pub jwks_fallback_file: Option<std::path::PathBuf>,
}

impl JwtSettings {
    /// The keys this provider (named `provider`) verifies with.
    pub fn keys_wanted(&self, provider: &Arc<str>) -> Wanted {
        let locator = match &self.key_source {
            KeySource::Static(k) => return Wanted::Static(k.clone()),
            KeySource::Remote(u) => Locator::Jwks(u.clone()),
            KeySource::Discovery(u) => Locator::Discovery {
                url: u.clone(),
                issuer: self.issuer.to_string(),
            },
        };
        Wanted::Remote(
            RemoteSettings {
                provider: provider.clone(),
                locator,
                refresh_interval: self.refresh_interval,
                min_refetch_interval: self.min_refetch_interval,
                timeout: self.timeout,
                ca_file: self.ca_file.clone(),
            },
            self.jwks_fallback.clone(),
        )
    }
}

/// A token split and decoded, not yet trusted.
#[derive(Debug)]
pub struct Parsed<'t> {
    /// The whole token's length, checked again against the verifying provider's cap.
    len: usize,
    pub alg: Alg,
    pub kid: Option<String>,
    /// The header's `typ`, as written.
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
    signing_input: &'t str,
    /// The signature, base64url-decoded once here.
    signature: Vec<u8>,
}

impl Parsed<'_> {
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The key of `keys` that made this signature: the candidates are the keys of the
    /// token's `kid` (every key without one) that allow its `alg`.
    pub fn signed_by<'k>(&self, keys: &'k KeySet) -> Result<&'k VerifyKey, TokenError> {
        let candidates = keys.candidates(self.kid.as_deref(), self.alg);
        if candidates.is_empty() {
            return Err(match &self.kid {
                Some(kid) if !keys.has_kid(kid) => TokenError::UnknownKid,
                _ => TokenError::Signature,
            });
        }
        candidates
            .into_iter()
            .find(|k| k.verify(self.alg, self.signing_input.as_bytes(), &self.signature))
            .ok_or(TokenError::Signature)
    }
}

/// Splits and decodes a compact JWS. Checks only its shape: three base64url parts, JSON
/// objects without duplicate members, a known `alg`, no `crit` extensions.
pub fn parse(token: &str, max_bytes: usize) -> Result<Parsed<'_>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| TokenError::Malformed)?;
    let payload_bytes = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    if signature.is_empty() {
        return Err(TokenError::Malformed);
    }
    let mut header = strict_json::parse_object(&header_bytes).map_err(json_error)?;
    let claims = strict_json::parse_object(&payload_bytes).map_err(json_error)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .ok_or(TokenError::Algorithm)?;
    if header.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    let typ = match header.remove("typ") {
        None => None,
        Some(Value::String(t)) => Some(t),
        Some(_) => return Err(TokenError::Malformed),
    };
    Ok(Parsed {
        len: token.len(),
        alg,
        kid,
        typ,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
    })
}

fn json_error(e: String) -> TokenError {
    if e.contains("duplicate") {
        TokenError::DuplicateMember
    } else {
        TokenError::Malformed
    }
}

/// Verifies a parsed token against a provider and its keys at `now` (unix seconds). The
/// identity keeps the claims named in `kept_claims` (sorted), for `claim:` conditions.
/// For tests and fuzzers; the engine calls [`verify_keyed`].
#[cfg(any(test, feature = "internals"))]
pub fn verify(
    t: Parsed<'_>,
    s: &JwtSettings,
    keys: &KeySet,
    provider: &Arc<str>,
    now: u64,
    kept_claims: &[Arc<str>],
) -> Result<Identity, TokenError> {
    verify_keyed(t, s, keys, provider, now, kept_claims).map(|(id, _)| id)
}

/// Verifies a parsed token against a provider and its keys at `now` (unix seconds), as
/// `verify` does, also naming the key that verified the token: a cached verification
/// counts only while that key is still in its provider's key set.
pub fn verify_keyed(
    t: Parsed<'_>,
    s: &JwtSettings,
    keys: &KeySet,
    provider: &Arc<str>,
    now: u64,
    kept_claims: &[Arc<str>],
) -> Result<(Identity, KeyId), TokenError> {
    // Parsed under one provider's cap, the token may be verified by another (its `iss`
    // picks among the route's providers): the verifying provider's cap applies.
    if t.len > s.max_token_bytes {
        return Err(TokenError::TooLarge);
    }
    // `EdDSA` and `Ed25519` name one scheme: listing either allows both.
    if !s.algorithms.iter().any(|a| a.same_scheme(t.alg)) {
        return Err(TokenError::Algorithm);
    }
    if !s.token_types.accepts(t.typ.as_deref()) {
        return Err(TokenError::TokenType);
    }
    let key = t.signed_by(keys)?.id();
    check_claims(&t.claims, s, now)?;
    Ok((identity(t.claims, s, provider, kept_claims)?, key))
}

/// The registered claims: their types (RFC 7519, as Envoy's JWT library requires them),
/// then `iss`, `exp`, `nbf` and `aud`.
fn check_claims(c: &Map<String, Value>, s: &JwtSettings, now: u64) -> Result<(), TokenError> {
    claims::registered_types(c)?;
    let leeway = s.leeway.as_secs_f64();
    let now = now as f64;
    if c.get("iss").and_then(Value::as_str) != Some(&*s.issuer) {
        return Err(TokenError::Issuer);
    }
    let exp = c
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(TokenError::MissingExp)?;
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    let nbf = c.get("nbf").and_then(Value::as_f64);
    if nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err(TokenError::NotYetValid);
    }
    let aud_ok = claims::audience_ok(c.get("aud"), &s.audiences);
    if !aud_ok {
        return Err(TokenError::Audience);
    }
    Ok(())
}

/// The identity a verified token proves, refused when its subject, a role or a scope
/// would not reach the upstream as ward judges it (SPEC §3, "representable").
fn identity(
    c: Map<String, Value>,
    s: &JwtSettings,
    provider: &Arc<str>,
    kept_claims: &[Arc<str>],
) -> Result<Identity, TokenError> {
    Ok(Identity {
        provider: provider.clone(),
        subject: claims::subject(&c, "sub")?,
        issuer: Some(s.issuer.clone()),
        roles: s.roles_claim.read(&c, claims::List::Roles)?,
        scopes: s.scopes_claim.read(&c, claims::List::Scopes)?,
        expires_at: c
            .get("exp")
            .and_then(Value::as_f64)
            .map(|e| e.max(0.0) as u64),
        claim_headers: claims::claim_headers(&c, &s.claim_headers),
        claims: claims::Claims::kept(c, kept_claims),
    })
}

#[cfg(test)]
mod tests;
