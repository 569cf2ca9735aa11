//! Mesh peer identity through ward's gRPC API: routes keyed on Envoy's
//! `source.principal` (a SPIFFE ID), the URI SAN of `source.certificate` when only the
//! certificate is sent, malformed certificates, and precedence with a JWT provider.

mod common;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use common::{Req, TestKey, Ward, corp_provider, corp_token};
use ward::authn::jwt::Alg;

const OK: (i32, u16, &str) = (0, 200, "ok");
const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");
const FORBIDDEN: (i32, u16, &str) = (7, 403, "forbidden");

const BILLING: &str = "spiffe://cluster.local/ns/billing/sa/batch";
const ORDERS: &str = "spiffe://cluster.local/ns/orders/sa/api";

fn config(mesh: &str, extra_providers: &str, providers: &str) -> String {
    format!(
        r#"
providers:
  - name: mesh
    mesh: {mesh}
{extra_providers}
routes:
  - name: internal
    match: {{ path_prefix: /internal }}
    providers: [{providers}]
    require: {{ source_principals: ["spiffe://cluster.local/ns/billing/sa/*"] }}
  - name: by-namespace
    match: {{ path_prefix: /ns }}
    providers: [{providers}]
    require: {{ claim: {{ name: namespace, equals: orders }} }}
  - name: any-peer
    match: {{ path_prefix: /api }}
    providers: [{providers}]
  - name: optional
    match: {{ path_prefix: /public }}
    providers: [mesh]
    allow_anonymous: true
"#
    )
}

fn default_config() -> String {
    config("{ trust_domains: [cluster.local] }", "", "mesh")
}

/// A self-signed certificate with these URI and DNS SANs, as PEM.
fn cert_pem(uris: &[&str], dns: &[&str]) -> String {
    use rcgen::{CertificateParams, KeyPair, SanType};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    for u in uris {
        params
            .subject_alt_names
            .push(SanType::URI((*u).try_into().expect("ia5")));
    }
    for d in dns {
        params
            .subject_alt_names
            .push(SanType::DnsName((*d).try_into().expect("ia5")));
    }
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("cert").pem()
}

/// URL-encodes PEM the way Envoy fills `source.certificate`.
fn envoy_encode(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn principal_based_routes() {
    let ward = Ward::start(&default_config()).await;
    let r = ward
        .summary(Req::get("/internal/jobs").principal(BILLING).to_map())
        .await;
    assert_eq!(r.short(), OK, "{r:?}");
    assert_eq!(r.subject(), Some(BILLING));
    assert_eq!(r.header("x-auth-issuer"), Some("spiffe://cluster.local"));
    assert_eq!(r.header("x-auth-provider"), Some("mesh"));

    let r = ward
        .summary(Req::get("/internal/jobs").principal(ORDERS).to_map())
        .await;
    assert_eq!(r.short(), FORBIDDEN, "another service account");
    let r = ward
        .summary(Req::get("/ns/x").principal(ORDERS).to_map())
        .await;
    assert_eq!(r.short(), OK, "Istio namespace is a claim");
    let r = ward
        .summary(Req::get("/ns/x").principal(BILLING).to_map())
        .await;
    assert_eq!(r.short(), FORBIDDEN);
}

#[tokio::test]
async fn peers_outside_the_trust_domains_or_not_spiffe_are_401() {
    let ward = Ward::start(&default_config()).await;
    for (principal, detail) in [
        (
            "spiffe://evil.example/ns/billing/sa/batch",
            "peer trust domain not accepted",
        ),
        // Envoy falls back to a DNS SAN or the subject when there is no URI SAN.
        (
            "billing.svc.cluster.local",
            "peer identity is not a SPIFFE ID",
        ),
        ("CN=batch,O=corp", "peer identity is not a SPIFFE ID"),
        (
            "spiffe://cluster.local/ns/billing/../admin",
            "peer identity is not a SPIFFE ID",
        ),
        (
            "SPIFFE://cluster.local/ns/billing/sa/batch",
            "peer identity is not a SPIFFE ID",
        ),
    ] {
        let r = ward
            .summary(Req::get("/api/x").principal(principal).to_map())
            .await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, detail),
            "{principal}"
        );
    }
    let r = ward.summary(Req::get("/api/x").to_map()).await;
    assert_eq!(
        r.short(),
        (16, 401, "missing_credential"),
        "plain-text peer"
    );
    let r = ward.summary(Req::get("/public/x").to_map()).await;
    assert_eq!(
        (r.short(), r.subject()),
        (OK, None),
        "anonymous allowed there"
    );
}

#[tokio::test]
async fn the_certificate_uri_san_is_the_identity_when_no_principal_is_sent() {
    let ward = Ward::start(&default_config()).await;
    let cert = envoy_encode(&cert_pem(&[BILLING], &["batch.billing.svc"]));
    let r = ward
        .summary(Req::get("/internal/jobs").certificate(&cert).to_map())
        .await;
    assert_eq!(r.short(), OK, "{r:?}");
    assert_eq!(
        r.subject(),
        Some(BILLING),
        "source_principals sees the certificate's SPIFFE ID"
    );

    // The principal, when sent, wins over the certificate.
    let r = ward
        .summary(
            Req::get("/internal/jobs")
                .principal(ORDERS)
                .certificate(&cert)
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.subject()), (FORBIDDEN, None));

    // No URI SAN: no SPIFFE ID.
    let dns_only = envoy_encode(&cert_pem(&[], &["batch.billing.svc"]));
    let r = ward
        .summary(Req::get("/api/x").certificate(&dns_only).to_map())
        .await;
    assert_eq!(
        (r.short(), r.detail.as_str()),
        (INVALID, "peer identity is not a SPIFFE ID")
    );
    let other_td = envoy_encode(&cert_pem(&["spiffe://evil.example/x"], &[]));
    let r = ward
        .summary(Req::get("/api/x").certificate(&other_td).to_map())
        .await;
    assert_eq!(
        (r.short(), r.detail.as_str()),
        (INVALID, "peer trust domain not accepted")
    );
}

#[tokio::test]
async fn malformed_certificates_are_401_never_a_crash() {
    let ward = Ward::start(&default_config()).await;
    let pem = cert_pem(&[BILLING], &[]);
    let encoded = envoy_encode(&pem);
    let body_start = pem.find('\n').expect("newline") + 1;
    let truncated_der = {
        // Valid PEM framing and base64 around a certificate cut in half.
        let b64: String = pem[body_start..]
            .lines()
            .take_while(|l| !l.starts_with("-----"))
            .collect();
        let half = &b64[..(b64.len() / 2) & !3];
        envoy_encode(&format!(
            "-----BEGIN CERTIFICATE-----\n{half}\n-----END CERTIFICATE-----\n"
        ))
    };
    let cases: Vec<(&str, String)> = vec![
        ("raw PEM, not URL-encoded", pem.clone()),
        ("broken % escape", format!("{}%G0", &encoded[..40])),
        ("dangling %", format!("{encoded}%")),
        ("not PEM", envoy_encode("hello world")),
        (
            "not base64",
            envoy_encode("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        ),
        (
            "base64 of garbage",
            envoy_encode("-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n"),
        ),
        ("truncated DER", truncated_der),
        ("no END line", envoy_encode(&pem[..pem.len() / 2])),
        ("invalid UTF-8", "%FF%FE%FD".to_string()),
        ("huge", "A".repeat(70 * 1024)),
    ];
    for (what, cert) in cases {
        let r = ward
            .summary(Req::get("/api/x").certificate(&cert).to_map())
            .await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "malformed peer certificate"),
            "{what}"
        );
    }
    // ward is still serving.
    let r = ward
        .summary(Req::get("/api/x").certificate(&encoded).to_map())
        .await;
    assert_eq!(r.short(), OK);
}

#[tokio::test]
async fn certificates_can_be_ignored() {
    let ward = Ward::start(&config(
        "{ trust_domains: [cluster.local], from_certificate: false }",
        "",
        "mesh",
    ))
    .await;
    let cert = envoy_encode(&cert_pem(&[BILLING], &[]));
    let r = ward
        .summary(Req::get("/api/x").certificate(&cert).to_map())
        .await;
    assert_eq!(r.short(), (16, 401, "missing_credential"));
    let r = ward
        .summary(Req::get("/api/x").principal(BILLING).to_map())
        .await;
    assert_eq!(r.short(), OK);
}

#[tokio::test]
async fn a_user_token_first_then_the_peer_identity() {
    let k = TestKey::generate(Alg::ES256);
    let ward = Ward::start(&config(
        "{ trust_domains: [cluster.local] }",
        &corp_provider(&k),
        "corp, mesh",
    ))
    .await;
    // Both present: the JWT is listed first and decides.
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer(&corp_token(&k, "alice"))
                .principal(BILLING)
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.subject()), (OK, Some("alice")));
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer("bad.jwt.here")
                .principal(BILLING)
                .to_map(),
        )
        .await;
    assert_eq!(r.short(), INVALID, "a bad token is not rescued by the peer");
    // No token: the peer identity decides.
    let r = ward
        .summary(Req::get("/api/x").principal(BILLING).to_map())
        .await;
    assert_eq!((r.short(), r.subject()), (OK, Some(BILLING)));

    // Mesh listed first: every mTLS request has a peer, so the token is never looked at.
    let ward = Ward::start(&config(
        "{ trust_domains: [cluster.local] }",
        &corp_provider(&k),
        "mesh, corp",
    ))
    .await;
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer(&corp_token(&k, "alice"))
                .principal(BILLING)
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.subject()), (OK, Some(BILLING)));
    let r = ward
        .summary(Req::get("/api/x").bearer(&corp_token(&k, "alice")).to_map())
        .await;
    assert_eq!(
        (r.short(), r.subject()),
        (OK, Some("alice")),
        "no peer: the JWT"
    );
}

// === config validation ===

fn errors(yaml: &str) -> String {
    Ward::builder(yaml).config_error()
}

const ROUTES: &str =
    "routes:\n  - name: api\n    match: { path_prefix: /api }\n    providers: [mesh]\n";

#[test]
fn trust_domains_are_validated() {
    let e = errors(&format!(
        "providers:\n  - name: mesh\n    mesh:\n      trust_domains:\n        - spiffe://cluster.local\n        - Cluster.Local\n        - ok.example\n{ROUTES}"
    ));
    let msg = |v: &str| {
        format!(
            "`{v}` is not a SPIFFE trust domain: lower-case letters, digits, `.`, `-`, `_`, without `spiffe://` (e.g. `cluster.local`)"
        )
    };
    assert_eq!(
        e,
        [
            format!(
                "line 5: providers[0].mesh.trust_domains[0]: {}",
                msg("spiffe://cluster.local")
            ),
            format!(
                "line 6: providers[0].mesh.trust_domains[1]: {}",
                msg("Cluster.Local")
            ),
        ]
        .join("\n")
    );
    let e = errors(&format!(
        "providers:\n  - name: mesh\n    mesh: {{ trust_domains: [] }}\n{ROUTES}"
    ));
    assert_eq!(
        e,
        "line 3: providers[0].mesh.trust_domains: list at least one trust domain, such as `cluster.local`"
    );
}

#[test]
fn mesh_keys_and_kinds_are_checked() {
    let e = errors(&format!(
        "providers:\n  - name: mesh\n    mesh: {{ trust_domain: cluster.local }}\n{ROUTES}"
    ));
    assert!(
        e.starts_with("line 3: providers[0].mesh.trust_domain: unknown field `trust_domain`"),
        "{e}"
    );
    let e = errors(&format!(
        "providers:\n  - name: mesh\n    mesh: {{ trust_domains: [cluster.local] }}\n    api_key: {{ keys: [] }}\n{ROUTES}"
    ));
    assert_eq!(
        e,
        "line 2: providers[0]: a provider has exactly one of `jwt`, `api_key`, `introspection`, `mesh`"
    );
}
