//! Judging an introspection answer (SPEC §3): the RFC 7662 §2.2 field types, an access
//! token's `token_type`, `nbf`/`exp` within the leeway, `iss`, `aud`, and an identity
//! that reaches the upstream as judged (representable).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::authn::claims::{self, ClaimPath, Identity, List, Part};
use crate::authn::introspection::{Audiences, IntrospectionSettings};

/// The identity an answer gives, or why ward refuses the token (SPEC §3): `provider`'s
/// `settings` judge it at `now` (unix seconds); the identity keeps `kept_claims`.
pub(super) fn verdict(
    provider: &Arc<str>,
    s: &IntrospectionSettings,
    kept_claims: &[Arc<str>],
    doc: Map<String, Value>,
    now: u64,
) -> Result<Identity, TokenError> {
    match doc.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(TokenError::Inactive),
        _ => return Err(TokenError::ClaimType("active")),
    }
    // A token bound to a certificate or a DPoP key (RFC 8705 §3.2, RFC 9449 §6.2):
    // introspection providers do not verify bindings, so such a token is refused rather
    // than accepted as a bearer token.
    if doc.contains_key("cnf") {
        return Err(TokenError::UnverifiableBinding);
    }
    // RFC 7662 §2.2 types: those of RFC 7519, and these strings.
    claims::registered_types(&doc)?;
    for name in ["client_id", "username", "token_type"] {
        if doc.get(name).is_some_and(|v| !v.is_string()) {
            return Err(TokenError::ClaimType(name));
        }
    }
    // A refresh token (or any other kind) never authorizes.
    if let Some(Value::String(t)) = doc.get("token_type")
        && !is_access_token_type(t)
    {
        return Err(TokenError::Inactive);
    }
    let (now_f, leeway) = (now as f64, s.leeway.as_secs_f64());
    let exp = doc.get("exp").and_then(Value::as_f64);
    if exp.is_some_and(|e| now_f >= e + leeway) {
        return Err(TokenError::Expired);
    }
    let nbf = doc.get("nbf").and_then(Value::as_f64);
    if nbf.is_some_and(|nbf| now_f + leeway < nbf) {
        return Err(TokenError::NotYetValid);
    }
    let iss: Option<Arc<str>> = match (doc.get("iss").and_then(Value::as_str), &s.issuer) {
        (None, None) => None,
        (Some(i), Some(want)) if **want == *i => Some(want.clone()),
        (Some(i), None) => Some(i.into()),
        (_, Some(_)) => return Err(TokenError::Issuer),
    };
    if let Audiences::OneOf(accepted) = &s.audiences
        && !claims::audience_ok(doc.get("aud"), accepted)
    {
        return Err(TokenError::Audience);
    }
    let subject = subject(&doc, &s.subject)?;
    Ok(Identity {
        provider: provider.clone(),
        subject,
        issuer: iss,
        roles: s.roles_claim.read(&doc, List::Roles)?,
        scopes: s.scopes_claim.read(&doc, List::Scopes)?,
        expires_at: exp.map(|e| e.max(0.0) as u64),
        claim_headers: claims::claim_headers(&doc, &s.claim_headers),
        claims: claims::Claims::kept(doc, kept_claims),
    })
}

/// The subject: the first of `claims` present in the answer, which must be a
/// representable string. None when none is present.
fn subject(doc: &Map<String, Value>, claims: &[ClaimPath]) -> Result<Option<Box<str>>, TokenError> {
    let Some((path, v)) = claims.iter().find_map(|p| Some((p, p.lookup_in(doc)?))) else {
        return Ok(None);
    };
    match v {
        Value::String(s) if claims::representable(s, |_| false) => Ok(Some(s.as_str().into())),
        Value::String(_) => Err(TokenError::Unrepresentable(Part::Claim(claim_name(path)))),
        _ => Err(TokenError::ClaimType(claim_name(path))),
    }
}

/// The name a refusal's detail gives a subject claim: the claims RFC 7662 and OpenID
/// define by their name, any other as `subject` (a detail is fixed text).
fn claim_name(path: &ClaimPath) -> &'static str {
    const NAMED: &[&str] = &[
        "sub",
        "client_id",
        "username",
        "email",
        "preferred_username",
        "azp",
    ];
    NAMED
        .iter()
        .find(|n| **n == path.as_str())
        .copied()
        .unwrap_or("subject")
}

/// `token_type` of an access token: `access_token` (RFC 8693), `Bearer` (RFC 6750),
/// `N_A` (RFC 8693's "not applicable"), in any case.
fn is_access_token_type(t: &str) -> bool {
    ["access_token", "bearer", "n_a"]
        .iter()
        .any(|a| t.eq_ignore_ascii_case(a))
}

#[cfg(test)]
mod tests;
