//! RFC 8693 token exchange (SPEC §8): the exchange that answers for the audience asked
//! for verifies the subject token with its providers, runs its rules, and ward mints a
//! token for that audience. Each refusal is an RFC 6749 error, and the reason, worded
//! as `ward check` words a denial, goes to the debug log (never the token).

use std::sync::Arc;

use super::Engine;
use super::jwt;
use super::policy::{Exchange, Provider};
use crate::authn::{Identity, ProviderKind, TokenError};
use crate::authz::condition::EvalCtx;
use crate::authz::path::Params;
use crate::decision::DenyReason;
use crate::issuer::exchange::{ExchangeRequest, OAuthError};
use crate::issuer::mint::{MintError, Minted};
use crate::request::CheckInput;

/// What a token request is answered with, and what the log says of it.
pub enum Exchanged {
    /// The token, and its lifetime from now in seconds (`expires_in`).
    Issued(Minted, u64),
    /// Refused: the error sent, and the operator's explanation.
    Refused(OAuthError, String),
}

impl Engine {
    /// Whether any exchange is configured (`POST /token` is served only then).
    pub fn exchanges(&self) -> bool {
        !self.policy.exchanges.is_empty()
    }

    /// Answers one token exchange request.
    pub async fn exchange(&self, req: &ExchangeRequest) -> Exchanged {
        let (Some(issuer), Some(x)) = (&self.policy.issuer, self.find(&req.target)) else {
            return Exchanged::Refused(
                OAuthError::invalid_target("no exchange issues tokens for this audience"),
                "no exchange lists this audience".into(),
            );
        };
        let now = self.clock.unix_secs();
        let id = match verify_subject(x, &req.subject_token, now).await {
            Ok(id) => id,
            Err((reason, provider)) => {
                let why = format!(
                    "exchange `{}`: subject token refused by {}: {}",
                    x.grant.purpose,
                    provider.as_deref().unwrap_or("no provider"),
                    reason.explain()
                );
                let err = match reason {
                    DenyReason::AuthnUnavailable(_) => OAuthError {
                        error: "server_error",
                        description: "identity provider unavailable".into(),
                    },
                    other => OAuthError::invalid_grant(format!(
                        "the subject token is not accepted: {}",
                        other.detail()
                    )),
                };
                return Exchanged::Refused(err, why);
            }
        };
        if let Some(rules) = x.route.rules() {
            let input = token_request();
            let ctx = EvalCtx {
                identity: &id,
                params: &Params::default(),
                input: &input,
            };
            if let Err(f) = rules.eval(&ctx) {
                let why = format!(
                    "exchange `{}` for {}: {}",
                    x.grant.purpose,
                    id.provider,
                    DenyReason::Forbidden(f).explain()
                );
                return Exchanged::Refused(
                    OAuthError::invalid_grant("the subject does not meet this exchange's rules"),
                    why,
                );
            }
        }
        match issuer.mint(&x.grant, &id, now, false, &x.minted) {
            Ok(m) => {
                let expires_in = m.expires_at.saturating_sub(now);
                Exchanged::Issued(m, expires_in)
            }
            Err(e @ MintError::Sign(_)) => Exchanged::Refused(
                OAuthError {
                    error: "server_error",
                    description: "the token could not be signed".into(),
                },
                format!("exchange `{}`: {e}", x.grant.purpose),
            ),
            Err(e) => Exchanged::Refused(
                OAuthError::invalid_grant(e.to_string()),
                format!("exchange `{}`: {e}", x.grant.purpose),
            ),
        }
    }

    fn find(&self, audience: &str) -> Option<&Exchange> {
        self.policy
            .exchanges
            .iter()
            .find(|x| *x.grant.audience == *audience)
    }
}

/// What an exchange's request conditions see: the token request itself.
fn token_request() -> CheckInput<'static> {
    CheckInput::from_pairs("POST", "", "/token", &[], &[])
}

/// The subject token goes to the first of the exchange's providers that takes its
/// shape: a JWT provider takes a JWS (and the token's issuer may pick another JWT
/// provider of the exchange), an API key or introspection provider any token; a mesh
/// provider none (a peer certificate is not a token).
async fn verify_subject(
    x: &Exchange,
    tok: &str,
    now: u64,
) -> Result<Arc<Identity>, (DenyReason, Option<Arc<str>>)> {
    let jws = tok.bytes().filter(|&b| b == b'.').count() == 2;
    let takes = |p: &&Arc<Provider>| match &p.settings.kind {
        ProviderKind::Jwt(_) => jws,
        ProviderKind::ApiKey(_) | ProviderKind::Introspection(_) => true,
        ProviderKind::Mesh(_) => false,
    };
    let Some(p) = x.route.providers.iter().find(takes) else {
        return Err((DenyReason::InvalidToken(TokenError::Malformed), None));
    };
    let input = token_request();
    let (verified, by) = match &p.settings.kind {
        ProviderKind::Jwt(s) => {
            let (v, by) = jwt::verify(&x.route, p, s, tok, &input, now).await;
            (v, by.settings.name.clone())
        }
        _ => (
            super::authenticate::verify(p, tok, now).await,
            p.settings.name.clone(),
        ),
    };
    verified.map_err(|reason| (reason, Some(by)))
}
