//! A JWT on a route: the verified-token cache, the issuer pick among the route's JWT
//! providers, and the provider's keys, in one pass.
//!
//! A warm cache decides as a cold one: a cached verification counts only where the
//! route would pick the provider that verified it for this token, and only while the key
//! that verified it is in that provider's current key set (a key removed from the JWKS
//! revokes its tokens, cached or not). The cache is keyed by the token alone.
//!
//! Several providers of a route may share an issuer (one per API of a Keycloak realm):
//! among them, the one whose `audiences` the token's `aud` names decides. The config
//! refuses two such providers whose audiences overlap, so at most one can name a token;
//! a cached verification by that one is therefore the cold pick too.

use std::sync::Arc;

use super::policy::{Provider, Route};
use crate::authn::binding::{self, Binding};
use crate::authn::cache::TokenCache;
use crate::authn::dpop::Outcome;
use crate::authn::jwe;
use crate::authn::jwt::{self, JwtSettings};
use crate::authn::token::{self, Found};
use crate::authn::{Identity, ProviderKind, TokenError, claims};
use crate::decision::DenyReason;
use crate::request::CheckInput;

/// Who may decide `tok`, which `found_by` (of issuer `own_issuer`) found, by the token's
/// issuer: one lookup among the route's JWT providers, not a trial of their keys.
enum Pick<'r> {
    /// This provider decides: the issuer's only one on the route, or `found_by` for a
    /// token of no issuer or one the route does not trust.
    One(&'r Arc<Provider>),
    /// Several providers of the issuer: the one whose audiences the token names.
    ByAudience(&'r [Arc<Provider>]),
}

fn pick<'r>(
    route: &'r Route,
    found_by: &'r Arc<Provider>,
    own_issuer: &str,
    iss: Option<&str>,
) -> Pick<'r> {
    match iss.and_then(|iss| route.issuers.get(iss)) {
        Some(several) if several.len() > 1 => Pick::ByAudience(several),
        Some(one) if iss != Some(own_issuer) => one.first().map_or(Pick::One(found_by), Pick::One),
        _ => Pick::One(found_by),
    }
}

impl<'r> Pick<'r> {
    /// For a token whose `aud` is `aud`: the first provider, among those that read the
    /// same credential as `found_by`, whose audiences it names; none naming it, the
    /// first of them (which refuses the audience), or `found_by`.
    fn by_audience(
        self,
        found_by: &'r Arc<Provider>,
        aud: Option<&serde_json::Value>,
        reads: impl Fn(&Provider) -> bool,
    ) -> &'r Arc<Provider> {
        let several = match self {
            Pick::One(p) => return if reads(p) { p } else { found_by },
            Pick::ByAudience(several) => several,
        };
        let mut usable = several.iter().filter(|c| reads(c));
        let named = |c: &&Arc<Provider>| match &c.settings.kind {
            ProviderKind::Jwt(j) => claims::audience_ok(aud, &j.audiences),
            _ => false,
        };
        usable
            .clone()
            .find(named)
            .or_else(|| usable.next())
            .unwrap_or(found_by)
    }

    /// For a cached verification by `verified_by`: that provider, when it is one that
    /// may decide here (with overlapping audiences refused, no other could name the
    /// token); `None` sends the token through the cold path.
    fn cached(
        self,
        found_by: &'r Arc<Provider>,
        verified_by: &Arc<str>,
        reads: impl Fn(&Provider) -> bool,
    ) -> Option<&'r Arc<Provider>> {
        match self {
            Pick::One(p) => Some(if reads(p) { p } else { found_by }),
            Pick::ByAudience(several) => several
                .iter()
                .find(|c| Arc::ptr_eq(&c.settings.name, verified_by) && reads(c)),
        }
    }
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

/// Verifies `tok`, the JWT that `found_by` (whose settings are `s`) found on `route`,
/// and its binding to this request (a certificate or a DPoP proof), cached or not.
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
    let (verified, by) = verify_token(route, found_by, s, tok, input, now).await;
    let bound = verified.and_then(|(id, b)| bound_to_request(by, b, tok, input, now).map(|()| id));
    (bound, by)
}

/// Whether this request proves the binding of `tok` (verified by `by`): the client
/// certificate it is bound to, or a DPoP proof by its key. A token with no binding
/// passes, unless it came with the `DPoP` scheme.
fn bound_to_request(
    by: &Provider,
    binding: Option<Binding>,
    tok: &str,
    input: &CheckInput<'_>,
    now: u64,
) -> Result<(), DenyReason> {
    let invalid = DenyReason::InvalidToken;
    let (ProviderKind::Jwt(s), Some(v)) = (&by.settings.kind, &by.jwt) else {
        return Err(invalid(TokenError::Issuer));
    };
    if s.binding.unsafe_ignore_binding {
        return Ok(());
    }
    let dpop_scheme = binding::dpop_scheme(input, tok);
    match binding {
        None | Some(Binding::Certificate(_)) if dpop_scheme => {
            Err(invalid(TokenError::DpopUnbound))
        }
        None => Ok(()),
        Some(Binding::Certificate(c)) => binding::check_certificate(&c, input).map_err(invalid),
        Some(Binding::Key(_)) if !dpop_scheme => Err(invalid(TokenError::DpopRequired)),
        Some(Binding::Key(jkt)) => {
            let window = s.binding.dpop_iat_window.as_secs();
            match v
                .dpop
                .check(input, tok, &jkt, now, window, s.leeway.as_secs())
            {
                Outcome::Accepted => Ok(()),
                Outcome::Refused(e) => Err(invalid(e)),
                Outcome::CacheFull => Err(DenyReason::AuthnUnavailable("DPoP replay cache full")),
            }
        }
    }
}

/// The token's identity and binding, from the cache or verified.
async fn verify_token<'r>(
    route: &'r Route,
    found_by: &'r Arc<Provider>,
    s: &JwtSettings,
    tok: &str,
    input: &CheckInput<'_>,
    now: u64,
) -> (
    Result<(Arc<Identity>, Option<Binding>), DenyReason>,
    &'r Arc<Provider>,
) {
    let invalid = DenyReason::InvalidToken;
    let Some(own) = &found_by.jwt else {
        return (Err(invalid(TokenError::Issuer)), found_by);
    };
    if tok.len() > s.max_token_bytes {
        return (Err(invalid(TokenError::TooLarge)), found_by);
    }
    let reads = |c: &Provider| {
        route.one_credential
            || std::ptr::eq(c, &**found_by)
            || reads_same_credential(found_by, c, tok, input)
    };
    let key = TokenCache::key(tok);
    if let Some(v) = own.cache.get(&key, now)
        && let Some(c) = pick(route, found_by, &s.issuer, v.identity.issuer.as_deref()).cached(
            found_by,
            &v.identity.provider,
            reads,
        )
        && let Some(cv) = &c.jwt
        && cv.vouches_for(&c.settings.name, &v)
    {
        cv.counters.count(true);
        return (Ok((v.identity, v.binding)), c);
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
    let chosen = pick(route, found_by, &s.issuer, parsed.issuer()).by_audience(
        found_by,
        parsed.claims.get("aud"),
        reads,
    );
    let (ProviderKind::Jwt(cs), Some(cv)) = (&chosen.settings.kind, &chosen.jwt) else {
        return (Err(invalid(TokenError::Issuer)), chosen);
    };
    cv.counters.count(false);
    match parsed.issuer() {
        Some(iss) if iss != &*cs.issuer => {
            return (Err(invalid(TokenError::UntrustedIssuer)), chosen);
        }
        _ => {}
    }
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
    (
        cv.verified(&chosen.settings.name, cs, parsed, &keys, key, now),
        chosen,
    )
}
