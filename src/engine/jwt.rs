//! A JWT on a route: the verified-token cache, the issuer pick among the route's JWT
//! providers, and the provider's keys, in one pass.
//!
//! A warm cache decides as a cold one: a cached verification counts only where the
//! route would pick the provider that verified it for this token, and only while the key
//! that verified it is in that provider's current key set (a key removed from the JWKS
//! revokes its tokens, cached or not). The cache is keyed by the token alone.

use std::sync::Arc;

use super::policy::{Provider, Route};
use crate::authn::cache::TokenCache;
use crate::authn::jwe;
use crate::authn::jwt::{self, JwtSettings};
use crate::authn::token::{self, Found};
use crate::authn::{Identity, ProviderKind, TokenError};
use crate::decision::DenyReason;
use crate::request::CheckInput;

/// The JWT provider of `route` that decides `tok`, which `found_by` (of issuer
/// `own_issuer`) found: the token's issuer picks among the route's JWT providers that
/// read the same credential (one lookup, not a trial of every provider's keys); a token
/// of `found_by`'s own issuer, of none, or of an issuer the route does not trust is
/// `found_by`'s to decide.
fn pick<'r>(
    route: &'r Route,
    found_by: &'r Arc<Provider>,
    own_issuer: &str,
    iss: Option<&str>,
    tok: &str,
    input: &CheckInput<'_>,
) -> &'r Arc<Provider> {
    iss.filter(|iss| *iss != own_issuer)
        .and_then(|iss| route.issuers.get(iss))
        .and_then(|candidates| {
            candidates
                .iter()
                .find(|c| route.one_credential || reads_same_credential(found_by, c, tok, input))
        })
        .unwrap_or(found_by)
}

/// Whether `c` finds `tok`, the credential `found_by` found, in `input`. Providers that
/// read from the same places do without looking again.
fn reads_same_credential(
    found_by: &Provider,
    c: &Provider,
    tok: &str,
    input: &CheckInput<'_>,
) -> bool {
    found_by.reads == c.reads || token::find_in(&c.sources, input) == Found::One(tok.into())
}

/// Verifies `tok`, the JWT that `found_by` (whose settings are `s`) found on `route`.
/// Returns the identity or the denial, and the provider that decided: `found_by`, or
/// another JWT provider of the route that the token's issuer picked.
pub(super) async fn verify<'r>(
    route: &'r Route,
    found_by: &'r Arc<Provider>,
    s: &JwtSettings,
    tok: &str,
    input: &CheckInput<'_>,
    now: u64,
) -> (Result<Arc<Identity>, DenyReason>, &'r Arc<Provider>) {
    let invalid = DenyReason::InvalidToken;
    let Some(own) = &found_by.jwt else {
        return (Err(invalid(TokenError::Issuer)), found_by);
    };
    if tok.len() > s.max_token_bytes {
        return (Err(invalid(TokenError::TooLarge)), found_by);
    }
    let key = TokenCache::key(tok);
    if let Some(v) = own.cache.get(&key, now) {
        let c = pick(
            route,
            found_by,
            &s.issuer,
            v.identity.issuer.as_deref(),
            tok,
            input,
        );
        if let Some(cv) = &c.jwt
            && cv.vouches_for(&c.settings.name, &v)
        {
            cv.counters.count(true);
            return (Ok(v.identity), c);
        }
    }
    // A nested JWT (five parts) is opened with the keys of the provider that found it,
    // after the size cap above and only on a cache miss: a cached one (keyed by the JWE
    // as presented) costs no decryption. Its JWS is then verified as any other.
    let nested;
    let jws = if jwe::is_jwe(tok)
        && let (Some(keys), Some(counters)) = (&s.decryption, &own.decryptions)
    {
        let opened = jwe::decrypt(tok, keys);
        counters.count(opened.is_ok());
        match opened {
            Ok(inner) => {
                nested = inner;
                nested.as_str()
            }
            Err(jwe::Undecryptable) => {
                own.counters.count(false);
                return (Err(invalid(TokenError::Undecryptable)), found_by);
            }
        }
    } else {
        tok
    };
    let parsed = match jwt::parse(jws, s.max_token_bytes) {
        Ok(t) => t,
        Err(e) => {
            own.counters.count(false);
            return (Err(invalid(e)), found_by);
        }
    };
    let chosen = pick(route, found_by, &s.issuer, parsed.issuer(), tok, input);
    let (ProviderKind::Jwt(cs), Some(cv)) = (&chosen.settings.kind, &chosen.jwt) else {
        return (Err(invalid(TokenError::Issuer)), chosen);
    };
    cv.counters.count(false);
    let Some(store) = &cv.keys else {
        return (
            Err(DenyReason::AuthnUnavailable("provider has no key source")),
            chosen,
        );
    };
    // Boxed: a remote key fetch is a large future that would otherwise be part of every
    // check's future, copied on every request even when no fetch is made.
    let keys = match Box::pin(store.keys_for(parsed.kid.as_deref())).await {
        Ok(keys) => keys,
        Err(u) => return (Err(DenyReason::AuthnUnavailable(u.0)), chosen),
    };
    (cv.verified(&chosen.settings.name, cs, parsed, &keys, key, now), chosen)
}
