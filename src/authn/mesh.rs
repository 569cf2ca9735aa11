//! Mesh peer identity: the SPIFFE ID of the mTLS peer, as Envoy reports it.
//!
//! Envoy (or an Istio sidecar) terminates mTLS and tells ward who the peer is in
//! `source.principal`: the certificate's first URI SAN, which in a mesh is a SPIFFE ID
//! such as `spiffe://cluster.local/ns/billing/sa/batch`. With
//! `include_peer_certificate` it also sends the certificate itself, URL-encoded PEM, in
//! `source.certificate`; when the principal is empty ward reads the URI SAN from it.
//!
//! ward does not verify the certificate chain: Envoy did, in the TLS handshake, and
//! ward trusts what Envoy reports exactly as it trusts `source.principal`. What ward
//! checks is the shape of the ID (SPIFFE ID rules, strictly: no repair, no
//! case-folding) and that its trust domain is one the provider accepts.

use std::sync::Arc;

use percent_encoding::percent_decode;
use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::authn::claims::{Identity, Names};
use crate::request::CheckInput;

/// A `source.certificate` larger than this is refused (a leaf certificate is 1–3 KiB).
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// SPIFFE IDs are at most 2048 bytes (SPIFFE-ID §2.3).
const MAX_SPIFFE_ID_BYTES: usize = 2048;

#[derive(Debug, Clone)]
pub struct MeshSettings {
    /// Accepted trust domains, lower-case, without the scheme: `cluster.local`.
    pub trust_domains: Vec<String>,
    /// Read the URI SAN from `source.certificate` when `source.principal` is empty.
    pub from_certificate: bool,
}

/// Where the peer identity was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer<'a> {
    /// `source.principal`, as Envoy derived it from the peer certificate.
    Principal(&'a str),
    /// `source.certificate`, URL-encoded PEM.
    Certificate(&'a str),
}

impl MeshSettings {
    /// The peer credential of this request, if the connection carried one.
    pub fn find<'a>(&self, input: &CheckInput<'a>) -> Option<Peer<'a>> {
        if !input.source_principal.is_empty() {
            Some(Peer::Principal(input.source_principal))
        } else if self.from_certificate && !input.source_certificate.is_empty() {
            Some(Peer::Certificate(input.source_certificate))
        } else {
            None
        }
    }

    /// The identity of the peer: its SPIFFE ID, when well formed and in an accepted
    /// trust domain.
    pub fn verify(&self, peer: Peer<'_>, provider: &Arc<str>) -> Result<Identity, TokenError> {
        let from_cert;
        let id = match peer {
            Peer::Principal(p) => p,
            Peer::Certificate(c) => {
                from_cert = uri_san_from_certificate(c)?;
                from_cert.as_str()
            }
        };
        let spiffe = SpiffeId::parse(id).ok_or(TokenError::PeerIdentity)?;
        if !self.trust_domains.iter().any(|t| t == spiffe.trust_domain) {
            return Err(TokenError::TrustDomain);
        }
        Ok(spiffe.identity(provider))
    }
}

// === impl SpiffeId ===

/// A syntactically valid SPIFFE ID, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffeId<'a> {
    pub id: &'a str,
    pub trust_domain: &'a str,
    /// Empty, or `/seg/seg`.
    pub path: &'a str,
}

impl<'a> SpiffeId<'a> {
    /// Parses strictly by the SPIFFE ID rules: scheme `spiffe://` in lower case; a trust
    /// domain of `[a-z0-9._-]`; path segments of `[a-zA-Z0-9._-]`, none empty, `.` or
    /// `..`; no trailing `/`, port, user info, query, fragment or percent-encoding.
    pub fn parse(id: &'a str) -> Option<Self> {
        if id.len() > MAX_SPIFFE_ID_BYTES {
            return None;
        }
        let rest = id.strip_prefix("spiffe://")?;
        let (trust_domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !valid_trust_domain(trust_domain) {
            return None;
        }
        if !path.is_empty() {
            let segments_ok = path[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            });
            if !segments_ok {
                return None;
            }
        }
        Some(Self {
            id,
            trust_domain,
            path,
        })
    }

    fn identity(&self, provider: &Arc<str>) -> Identity {
        let mut claims = Map::new();
        claims.insert("sub".into(), self.id.into());
        claims.insert("trust_domain".into(), self.trust_domain.into());
        claims.insert("path".into(), self.path.into());
        // Istio's service-account IDs: spiffe://<td>/ns/<namespace>/sa/<service account>.
        let segs: Vec<&str> = self.path.split('/').skip(1).collect();
        if let ["ns", ns, "sa", sa] = segs.as_slice() {
            claims.insert("namespace".into(), (*ns).into());
            claims.insert("service_account".into(), (*sa).into());
        }
        Identity {
            provider: provider.clone(),
            subject: Some(self.id.into()),
            issuer: Some(format!("spiffe://{}", self.trust_domain).into()),
            roles: Names::default(),
            scopes: Names::default(),
            claims: Value::Object(claims).into(),
            claim_headers: Box::default(),
            expires_at: None,
        }
    }
}

/// A trust domain as SPIFFE allows it: `[a-z0-9._-]`, 1 to 255 bytes.
pub fn valid_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.len() <= 255
        && td.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

// === certificate ===

/// The first URI SAN of the URL-encoded PEM certificate Envoy sends in
/// `source.certificate` (the same SAN Envoy puts in `source.principal`).
///
/// Envoy always percent-encodes the PEM, so its newlines, spaces, `+`, `/` and `=` never
/// appear raw: a value holding them (raw PEM, say) did not come from Envoy as
/// documented and is refused rather than guessed at, as is a broken `%` escape.
pub fn uri_san_from_certificate(encoded: &str) -> Result<String, TokenError> {
    let der = certificate_der(encoded)?;
    let der = tonic::transport::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| TokenError::Certificate)?;
    let first = cert.valid_uri_names().next().map(str::to_owned);
    first.ok_or(TokenError::PeerIdentity)
}

/// The DER bytes of the URL-encoded PEM certificate Envoy sends in
/// `source.certificate`, read as strictly as [`uri_san_from_certificate`] reads it
/// (the certificate-bound tokens of RFC 8705 hash these bytes). Only decoded, not
/// parsed: callers that need an X.509 certificate parse it.
pub fn certificate_der(encoded: &str) -> Result<Vec<u8>, TokenError> {
    let bad = TokenError::Certificate;
    if encoded.len() > MAX_CERTIFICATE_BYTES {
        return Err(bad);
    }
    let raw = encoded.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(bad)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad);
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => i += 1,
            _ => return Err(bad),
        }
    }
    let pem = percent_decode(raw).decode_utf8().map_err(|_| bad)?;
    first_pem_certificate(&pem).ok_or(bad)
}

/// The DER bytes of the first `CERTIFICATE` block of `pem`, which must start with one.
fn first_pem_certificate(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let body = pem.strip_prefix(BEGIN)?;
    let end = body.find(END)?;
    let b64: String = body[..end].split(['\n', '\r']).collect::<Vec<_>>().concat();
    if b64.is_empty()
        || !b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_parse_strictly() {
        let ok = SpiffeId::parse("spiffe://cluster.local/ns/billing/sa/batch").unwrap();
        assert_eq!(ok.trust_domain, "cluster.local");
        assert_eq!(ok.path, "/ns/billing/sa/batch");
        assert!(SpiffeId::parse("spiffe://example.org").is_some());
        for bad in [
            "",
            "spiffe://",
            "SPIFFE://cluster.local/x",
            "spiffe://Cluster.local/x",
            "spiffe://cluster.local/",
            "spiffe://cluster.local//x",
            "spiffe://cluster.local/a/../admin",
            "spiffe://cluster.local/./a",
            "spiffe://cluster.local:8080/x",
            "spiffe://user@cluster.local/x",
            "spiffe://cluster.local/x?y=1",
            "spiffe://cluster.local/x#y",
            "spiffe://cluster.local/a%2Fb",
            "spiffe://cluster.local/a b",
            "https://cluster.local/x",
            "cluster.local/ns/a",
        ] {
            assert!(SpiffeId::parse(bad).is_none(), "{bad}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(2048));
        assert!(SpiffeId::parse(&long).is_none());
    }

    #[test]
    fn istio_ids_expose_namespace_and_service_account() {
        let m = MeshSettings {
            trust_domains: vec!["cluster.local".into()],
            from_certificate: true,
        };
        let p: Arc<str> = "mesh".into();
        let id = m
            .verify(
                Peer::Principal("spiffe://cluster.local/ns/billing/sa/batch"),
                &p,
            )
            .unwrap();
        assert_eq!(
            id.subject.as_deref(),
            Some("spiffe://cluster.local/ns/billing/sa/batch")
        );
        assert_eq!(id.issuer.as_deref(), Some("spiffe://cluster.local"));
        assert_eq!(id.claims.get("namespace"), Some(&"billing".into()));
        assert_eq!(id.claims.get("service_account"), Some(&"batch".into()));
        assert_eq!(
            m.verify(Peer::Principal("spiffe://other.td/ns/a/sa/b"), &p)
                .unwrap_err(),
            TokenError::TrustDomain
        );
        assert_eq!(
            m.verify(Peer::Principal("CN=client,O=corp"), &p)
                .unwrap_err(),
            TokenError::PeerIdentity
        );
    }

    #[test]
    fn peer_identities_are_representable_by_construction() {
        // A SPIFFE ID holds no whitespace, control character or `,`: whatever Envoy
        // reports, the subject ward judges is the one the upstream reads.
        let m = MeshSettings {
            trust_domains: vec!["cluster.local".into()],
            from_certificate: false,
        };
        let p: Arc<str> = "mesh".into();
        for bad in [
            " spiffe://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/b ",
            "spiffe://cluster.local/ns/a/sa/b\r\nx-admin: 1",
            "spiffe://cluster.local/ns/a/sa/b\t",
            "spiffe://cluster.local/ns/a/sa/b,admin",
            "spiffe://cluster.local/ns/a/sa/b\u{a0}",
        ] {
            assert_eq!(
                m.verify(Peer::Principal(bad), &p).unwrap_err(),
                TokenError::PeerIdentity,
                "{bad:?}"
            );
        }
        let id = m
            .verify(
                Peer::Principal("spiffe://cluster.local/ns/a-b/sa/c.d_e"),
                &p,
            )
            .unwrap();
        let subject = id.subject.as_deref().unwrap();
        assert!(crate::authn::claims::representable(subject, |c| c == ','));
        assert!(crate::header::is_exact_value(id.issuer.as_deref().unwrap()));
    }

    #[test]
    fn broken_certificate_values_are_refused() {
        for bad in [
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "%2D%2D%2D",
            "%ZZ",
            "abc%2",
            "%FF%FE",
            "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A",
            "-----BEGIN%20CERTIFICATE-----%0A%21%21%0A-----END%20CERTIFICATE-----%0A",
        ] {
            assert_eq!(
                uri_san_from_certificate(bad).unwrap_err(),
                TokenError::Certificate,
                "{bad}"
            );
        }
        let huge = "A".repeat(MAX_CERTIFICATE_BYTES + 1);
        assert_eq!(
            uri_san_from_certificate(&huge).unwrap_err(),
            TokenError::Certificate
        );
    }
}
