//! Authentication: finding a credential, verifying it, and the identity it proves.

pub mod apikey;
pub mod cache;
pub mod claims;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod remote;
pub mod strict_json;
pub mod token;

use std::sync::Arc;

pub use claims::Identity;

/// A configured provider.
#[derive(Debug)]
pub struct ProviderSettings {
    pub name: Arc<str>,
    pub kind: ProviderKind,
}

#[derive(Debug)]
pub enum ProviderKind {
    Jwt(Box<jwt::JwtSettings>),
    ApiKey(apikey::ApiKeySettings),
}

impl ProviderSettings {
    /// Where this provider looks for its credential.
    pub fn sources(&self) -> Vec<token::TokenSource> {
        match &self.kind {
            ProviderKind::Jwt(j) => j.token_from.clone(),
            ProviderKind::ApiKey(a) => vec![token::TokenSource::Header {
                name: a.header.clone(),
                prefix: None,
            }],
        }
    }
}

/// Why a presented credential was refused (all answer 401 `invalid_token`). The detail
/// strings are fixed text: nothing from the token is ever echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token too large")]
    TooLarge,
    #[error("more than one credential in the request")]
    Duplicate,
    #[error("duplicate JSON member in token")]
    DuplicateMember,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown key id")]
    UnknownKid,
    #[error("signature verification failed")]
    Signature,
    #[error("issuer not accepted")]
    Issuer,
    #[error("audience not accepted")]
    Audience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no exp")]
    MissingExp,
    #[error("unknown API key")]
    UnknownKey,
}
