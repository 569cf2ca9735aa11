//! The credential phase: find the route's credential once, then verify it with the
//! provider that found it (or, for a JWT, the provider its issuer picks).

use std::sync::Arc;

use super::jwt;
use super::policy::{Provider, Route};
use crate::authn::introspection::Refusal;
use crate::authn::token::{self, Found};
use crate::authn::{Identity, ProviderKind, TokenError};
use crate::decision::DenyReason;
use crate::request::CheckInput;

/// Who a request was authenticated as, and by which provider (none when no credential
/// was found and the route lets the request through without one).
pub(super) struct Authenticated<'r> {
    pub identity: Option<Arc<Identity>>,
    pub by: Option<&'r Provider>,
}

/// Why a request was refused, and which provider refused it (none when no credential was
/// found).
pub(super) struct Refused {
    pub reason: DenyReason,
    pub provider: Option<Arc<str>>,
}

/// Finds and verifies the route's credential.
///
/// Precedence: the route's providers are tried in the order listed and the first one
/// that finds its credential in the request decides, success or failure; a credential
/// of another kind in the same request is ignored. A `mesh` provider finds one on every
/// mTLS connection, so it goes last on a route that also takes tokens.
pub(super) async fn authenticate<'r>(
    route: &'r Route,
    input: &CheckInput<'_>,
    now: u64,
) -> Result<Authenticated<'r>, Refused> {
    for p in &route.providers {
        let refused = |reason, by: &Provider| Refused {
            reason,
            provider: Some(by.settings.name.clone()),
        };
        let tok = match &p.settings.kind {
            ProviderKind::Mesh(m) => {
                let Some(peer) = m.find(input) else { continue };
                return match m.verify(peer, &p.settings.name) {
                    Ok(id) => Ok(Authenticated {
                        identity: Some(Arc::new(id)),
                        by: Some(p),
                    }),
                    Err(e) => Err(refused(DenyReason::InvalidToken(e), p)),
                };
            }
            _ => match token::find_in(&p.sources, input) {
                Found::Nothing => continue,
                Found::One(tok) => tok,
                Found::Duplicate => {
                    return Err(refused(DenyReason::InvalidToken(TokenError::Duplicate), p));
                }
                Found::Unreadable => {
                    return Err(refused(DenyReason::InvalidToken(TokenError::Malformed), p));
                }
            },
        };
        let (verified, by) = match &p.settings.kind {
            ProviderKind::Jwt(s) => {
                let (verified, by) = jwt::verify(route, p, s, &tok, input, now).await;
                (verified, &**by)
            }
            _ => (verify(p, &tok, now).await, &**p),
        };
        return match verified {
            Ok(id) => Ok(Authenticated {
                identity: Some(id),
                by: Some(by),
            }),
            Err(reason) => Err(refused(reason, by)),
        };
    }
    if route.providers.is_empty() || route.allow_anonymous {
        Ok(Authenticated {
            identity: None,
            by: None,
        })
    } else {
        Err(Refused {
            reason: DenyReason::MissingCredential,
            provider: None,
        })
    }
}

/// Verifies `tok`, the API key or opaque token `p` found (JWTs go to [`jwt::verify`]).
pub(super) async fn verify(p: &Provider, tok: &str, now: u64) -> Result<Arc<Identity>, DenyReason> {
    let invalid = DenyReason::InvalidToken;
    match &p.settings.kind {
        ProviderKind::ApiKey(ak) => ak
            .verify(tok, &p.settings.name)
            .map(Arc::new)
            .map_err(invalid),
        ProviderKind::Introspection(_) => match &p.introspector {
            // Boxed, as the key fetch: these futures are large (HTTP client, cache,
            // single flight) and would otherwise be part of every check's future,
            // copied on every request even when no call is made.
            Some(client) => Box::pin(client.verify(tok, now))
                .await
                .map_err(|r| match r {
                    Refusal::Token(e) => invalid(e),
                    Refusal::Unavailable(u) => DenyReason::AuthnUnavailable(u.0),
                }),
            None => Err(DenyReason::AuthnUnavailable(
                "introspection client unavailable",
            )),
        },
        // The peer identity is not a token: `authenticate` verifies it.
        ProviderKind::Mesh(_) => Err(invalid(TokenError::PeerIdentity)),
        // Never reached: `authenticate` hands JWTs to `jwt::verify`.
        ProviderKind::Jwt(_) => Err(invalid(TokenError::Malformed)),
    }
}
