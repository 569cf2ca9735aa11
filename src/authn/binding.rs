//! Sender-constrained tokens: a token whose `cnf` claim (RFC 7800) binds it to a key
//! its holder must prove it has.
//!
//! - `cnf.x5t#S256` (RFC 8705 §3): the base64url SHA-256 of the DER of the client
//!   certificate. Envoy sends the peer certificate in `source.certificate` (URL-encoded
//!   PEM, with `include_peer_certificate: true`); ward hashes it and compares.
//! - `cnf.jkt` (RFC 9449 §6): the RFC 7638 thumbprint of the key that signs the
//!   request's DPoP proof ([`dpop`](crate::authn::dpop)).
//!
//! A token that carries `cnf` is accepted only when its binding is verified, on every
//! request: the verified-token cache keeps the token's [`Binding`] beside its identity,
//! never the outcome of a check (a cached token presented with another certificate is
//! refused). A `cnf` ward cannot verify (no known member, a malformed value) refuses the
//! token: accepting it as a bearer token is exactly the theft the binding prevents.
//! A provider may opt out with `bound_tokens: {unsafe_ignore_binding: true}`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::authn::TokenError;
use crate::authn::mesh;
use crate::request::{CheckInput, Lookup};

/// What a token is bound to, from its `cnf` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// `x5t#S256`: SHA-256 of the client certificate's DER.
    Certificate([u8; 32]),
    /// `jkt`: SHA-256 thumbprint (RFC 7638) of the DPoP key.
    Key([u8; 32]),
}

/// A provider's `bound_tokens` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingSettings {
    /// Accept bound tokens as bearer tokens, their binding unchecked (unsafe: a stolen
    /// bound token then works for whoever holds it).
    pub unsafe_ignore_binding: bool,
    /// How old a DPoP proof's `iat` may be (the provider's `leeway` is added, also to
    /// proofs from the future).
    pub dpop_iat_window: Duration,
}

/// The default `bound_tokens.dpop_iat_window`.
pub const DEFAULT_DPOP_IAT_WINDOW: Duration = Duration::from_secs(60);

impl Default for BindingSettings {
    fn default() -> Self {
        Self {
            unsafe_ignore_binding: false,
            dpop_iat_window: DEFAULT_DPOP_IAT_WINDOW,
        }
    }
}

/// The binding a token's claims declare: none without `cnf`. A `cnf` that is not an
/// object, whose known member is not a base64url SHA-256, that holds both kinds of
/// binding, or that holds no member ward can verify is refused.
pub fn from_claims(claims: &Map<String, Value>) -> Result<Option<Binding>, TokenError> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    let cnf = cnf.as_object().ok_or(TokenError::CnfMalformed)?;
    let digest = |v: &Value| -> Result<[u8; 32], TokenError> {
        let s = v.as_str().ok_or(TokenError::CnfMalformed)?;
        // 32 bytes are 43 base64url characters, unpadded.
        if s.len() != 43 {
            return Err(TokenError::CnfMalformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::CnfMalformed)?;
        bytes.try_into().map_err(|_| TokenError::CnfMalformed)
    };
    match (cnf.get("x5t#S256"), cnf.get("jkt")) {
        (Some(x), None) => Ok(Some(Binding::Certificate(digest(x)?))),
        (None, Some(j)) => Ok(Some(Binding::Key(digest(j)?))),
        (Some(_), Some(_)) => Err(TokenError::CnfMalformed),
        (None, None) => Err(TokenError::UnverifiableBinding),
    }
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Checks a certificate binding against the client certificate Envoy sent: none sent
/// is a binding not verified, a malformed one a malformed certificate.
pub fn check_certificate(expected: &[u8; 32], input: &CheckInput<'_>) -> Result<(), TokenError> {
    if input.source_certificate.is_empty() {
        return Err(TokenError::CertificateBinding);
    }
    let der = mesh::certificate_der(input.source_certificate)?;
    // Only a certificate is hashed: DER that does not parse as one is refused, not
    // compared.
    let cert = tonic::transport::CertificateDer::from(der.as_slice());
    webpki::EndEntityCert::try_from(&cert).map_err(|_| TokenError::Certificate)?;
    if same(expected, &crate::digest::sha256(&der)) {
        Ok(())
    } else {
        Err(TokenError::CertificateBinding)
    }
}

/// Whether `tok` arrived with the `DPoP` authorization scheme (RFC 9449 §7.1): the one
/// `authorization` header is `DPoP <tok>` (scheme case-insensitive).
pub fn dpop_scheme(input: &CheckInput<'_>, tok: &str) -> bool {
    const SCHEME: &[u8] = b"DPoP ";
    match input.headers.get("authorization") {
        Lookup::One(v) => {
            v.len() == SCHEME.len() + tok.len()
                && v[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
                && &v[SCHEME.len()..] == tok.as_bytes()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn cnf_members_are_read_strictly() {
        let h = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(from_claims(&claims(json!({}))), Ok(None));
        assert_eq!(
            from_claims(&claims(json!({"cnf": {"x5t#S256": h}}))),
            Ok(Some(Binding::Certificate([7; 32])))
        );
        assert_eq!(
            from_claims(&claims(json!({"cnf": {"jkt": h}}))),
            Ok(Some(Binding::Key([7; 32])))
        );
        for bad in [
            json!({"cnf": "x"}),
            json!({"cnf": []}),
            json!({"cnf": {"jkt": 1}}),
            json!({"cnf": {"jkt": "short"}}),
            json!({"cnf": {"jkt": format!("{h}=")}}),
            json!({"cnf": {"x5t#S256": h.replace('B', "+")}}),
            json!({"cnf": {"jkt": h, "x5t#S256": h}}),
        ] {
            assert_eq!(
                from_claims(&claims(bad.clone())),
                Err(TokenError::CnfMalformed),
                "{bad}"
            );
        }
        assert_eq!(
            from_claims(&claims(json!({"cnf": {"jwk": {"kty": "EC"}}}))),
            Err(TokenError::UnverifiableBinding)
        );
        assert_eq!(
            from_claims(&claims(json!({"cnf": {}}))),
            Err(TokenError::UnverifiableBinding)
        );
    }

    #[test]
    fn the_dpop_scheme_is_read_from_the_one_authorization_header() {
        let with = |v: &'static str| {
            let mut i = CheckInput::default();
            i.headers.push("authorization", v.as_bytes());
            i
        };
        assert!(dpop_scheme(&with("DPoP abc"), "abc"));
        assert!(dpop_scheme(&with("dpop abc"), "abc"));
        assert!(!dpop_scheme(&with("Bearer abc"), "abc"));
        assert!(!dpop_scheme(&with("DPoP abcd"), "abc"));
        assert!(!dpop_scheme(&CheckInput::default(), "abc"));
        let mut two = with("DPoP abc");
        two.headers.push("authorization", b"DPoP abc");
        assert!(!dpop_scheme(&two, "abc"));
    }

    #[test]
    fn a_missing_or_broken_certificate_never_verifies() {
        let mut i = CheckInput::default();
        assert_eq!(
            check_certificate(&[0; 32], &i),
            Err(TokenError::CertificateBinding)
        );
        i.source_certificate =
            "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A";
        assert_eq!(
            check_certificate(&[0; 32], &i),
            Err(TokenError::Certificate)
        );
        i.source_certificate = "%ZZ";
        assert_eq!(
            check_certificate(&[0; 32], &i),
            Err(TokenError::Certificate)
        );
    }
}
