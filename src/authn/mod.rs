//! Authentication: finding a credential, verifying it, and the identity it proves.

pub mod alg;
pub mod apikey;
pub mod binding;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod http;
pub mod introspection;
pub mod jwe;
pub mod jwks;
pub mod jwt;
pub mod mesh;
pub mod strict_json;
pub mod token;
pub mod typ;

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
    /// RFC 7662 introspection of opaque tokens.
    Introspection(Box<introspection::IntrospectionSettings>),
    /// The mTLS peer (Envoy's `source.principal` / `source.certificate`).
    Mesh(mesh::MeshSettings),
}

impl ProviderSettings {
    /// Where this provider looks for its credential in the request. Empty for `mesh`,
    /// whose credential is the connection's peer identity, not a header.
    pub fn sources(&self) -> Vec<token::TokenSource> {
        match &self.kind {
            ProviderKind::Jwt(j) => j.token_from.clone(),
            ProviderKind::Introspection(i) => i.token_from.clone(),
            ProviderKind::ApiKey(a) => vec![token::TokenSource::Header {
                name: a.header.clone(),
                prefix: None,
            }],
            ProviderKind::Mesh(_) => Vec::new(),
        }
    }

    /// The keys this provider verifies tokens with: None for a provider that verifies
    /// no JWT.
    pub fn keys_wanted(&self) -> Option<jwks::Wanted> {
        match &self.kind {
            ProviderKind::Jwt(j) => Some(j.keys_wanted(&self.name)),
            _ => None,
        }
    }

    /// `jwt`, `introspection`, `api_key` or `mesh`.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            ProviderKind::Jwt(_) => "jwt",
            ProviderKind::Introspection(_) => "introspection",
            ProviderKind::ApiKey(_) => "api_key",
            ProviderKind::Mesh(_) => "mesh",
        }
    }

    /// The longest a check may wait on this provider's IdP: a key fetch (discovery, then
    /// the JWKS: two requests), or an introspection call. None for a provider that never
    /// waits (static keys, API keys, the mesh peer).
    pub fn wait_timeout(&self) -> Option<std::time::Duration> {
        match &self.kind {
            ProviderKind::Jwt(j) => match &j.key_source {
                jwks::KeySource::Static(_) => None,
                jwks::KeySource::Remote(_) => Some(j.timeout),
                jwks::KeySource::Discovery(_) => Some(j.timeout * 2),
            },
            ProviderKind::Introspection(i) => Some(i.timeout),
            ProviderKind::ApiKey(_) | ProviderKind::Mesh(_) => None,
        }
    }

    /// The claim headers this provider may set upstream (ward owns them).
    pub fn claim_headers(&self) -> &[(claims::ClaimPath, crate::header::HeaderName)] {
        match &self.kind {
            ProviderKind::Jwt(j) => &j.claim_headers,
            ProviderKind::Introspection(i) => &i.claim_headers,
            ProviderKind::ApiKey(_) | ProviderKind::Mesh(_) => &[],
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
    /// A token of an issuer none of the route's providers trusts: refused before any key
    /// lookup, so it never makes ward fetch another issuer's keys.
    #[error("issuer not trusted on this route")]
    UntrustedIssuer,
    #[error("audience not accepted")]
    Audience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no exp")]
    MissingExp,
    /// A registered claim without its RFC 7519 type (a numeric `sub`).
    #[error("claim `{0}` has the wrong type")]
    ClaimType(&'static str),
    /// A subject, role or scope that would not reach the upstream as ward judged it.
    #[error("{0} is not representable")]
    Unrepresentable(claims::Part),
    #[error("unknown API key")]
    UnknownKey,
    #[error("token inactive")]
    Inactive,
    #[error("peer identity is not a SPIFFE ID")]
    PeerIdentity,
    #[error("peer trust domain not accepted")]
    TrustDomain,
    #[error("malformed peer certificate")]
    Certificate,
    /// A `cnf` claim that is not an object of base64url SHA-256 members.
    #[error("malformed cnf claim")]
    CnfMalformed,
    /// A `cnf` claim with no member ward can verify (`x5t#S256`, `jkt`).
    #[error("token binding cannot be verified")]
    UnverifiableBinding,
    /// A certificate-bound token without the certificate it is bound to.
    #[error("certificate binding not verified")]
    CertificateBinding,
    /// A DPoP-bound token without a proof, or not presented with the `DPoP` scheme.
    #[error("DPoP proof required")]
    DpopRequired,
    /// The `DPoP` scheme with a token that is not bound to a DPoP key.
    #[error("token is not DPoP-bound")]
    DpopUnbound,
    #[error("invalid DPoP proof: {0}")]
    DpopProof(dpop::ProofError),
    /// A JWS whose `typ` header names a use the provider does not accept (RFC 8725
    /// §3.11).
    #[error("token type not accepted")]
    TokenType,
    /// A JWE that ward cannot or will not decrypt: one text for every cause, so that
    /// the answer is no oracle.
    #[error("token cannot be decrypted")]
    Undecryptable,
}

/// The `detail` label values of `ward_credential_rejections_total`: a bounded set.
pub const REJECTION_DETAILS: [&str; 9] = [
    "expired",
    "unknown_key",
    "audience",
    "signature",
    "issuer",
    "malformed",
    "type",
    "inactive",
    "other",
];

impl TokenError {
    /// This refusal's `detail` label (one of [`REJECTION_DETAILS`]).
    pub fn metric_detail(&self) -> &'static str {
        match self {
            TokenError::Expired | TokenError::NotYetValid | TokenError::MissingExp => "expired",
            TokenError::UnknownKid | TokenError::UnknownKey => "unknown_key",
            TokenError::Audience => "audience",
            TokenError::Signature => "signature",
            TokenError::Issuer | TokenError::UntrustedIssuer => "issuer",
            TokenError::Malformed
            | TokenError::TooLarge
            | TokenError::Duplicate
            | TokenError::DuplicateMember => "malformed",
            TokenError::ClaimType(_) | TokenError::TokenType => "type",
            TokenError::Undecryptable | TokenError::CnfMalformed => "malformed",
            TokenError::Algorithm => "signature",
            TokenError::Inactive => "inactive",
            _ => "other",
        }
    }
}

/// A credential that cannot be judged right now: its provider's keys cannot be had (none
/// held yet and the identity provider unreachable) or its introspection endpoint gave
/// no verdict. Answered 503 `authn_unavailable`, never cached; the text is fixed and
/// names no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub &'static str);
