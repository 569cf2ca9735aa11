//! Certificate-bound tokens (RFC 8705) through ward's gRPC API: a token whose
//! `cnf.x5t#S256` names a client certificate is accepted only with that certificate in
//! `source.certificate` (URL-encoded PEM, as Envoy sends it with
//! `include_peer_certificate: true`), on every request, cached or not.

mod common;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use common::{KeyRing, Req, TestKey, Ward, b64url, corp_provider, now};

const OK: (i32, u16, &str) = (0, 200, "ok");
const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");

/// A self-signed client certificate: its PEM and DER.
fn client_cert() -> (String, Vec<u8>) {
    use rcgen::{CertificateParams, KeyPair};
    let params = CertificateParams::new(vec!["client.example.com".to_string()]).expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), cert.der().to_vec())
}

/// URL-encodes PEM the way Envoy fills `source.certificate`.
fn envoy_encode(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

fn x5t(der: &[u8]) -> String {
    b64url(ward::digest::sha256(der))
}

fn config(key: &TestKey) -> String {
    let loose = corp_provider(key).replace("name: corp", "name: loose");
    format!(
        "providers:\n{}{loose}      bound_tokens: {{ unsafe_ignore_binding: true }}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    providers: [corp]\n  - name: legacy\n    match: {{ path_prefix: /legacy }}\n    providers: [loose]\n",
        corp_provider(key)
    )
}

fn token(key: &TestKey, cnf: Value) -> String {
    key.sign(&json!({
        "iss": "https://corp.test", "aud": "api", "sub": "alice",
        "exp": now() + 300, "cnf": cnf,
    }))
}

#[tokio::test]
async fn a_bound_token_is_accepted_only_with_its_certificate() {
    let key = &KeyRing::shared().es256;
    let ward = Ward::start(&config(key)).await;
    let (pem, der) = client_cert();
    let (other_pem, _) = client_cert();
    let t = token(key, json!({"x5t#S256": x5t(&der)}));
    let with = |cert: &str| Req::get("/api/x").bearer(&t).certificate(cert).to_map();

    let r = ward.summary(with(&envoy_encode(&pem))).await;
    assert_eq!(r.short(), OK, "{r:?}");
    assert_eq!(r.subject(), Some("alice"));

    for (case, cert, detail) in [
        (
            "another certificate",
            envoy_encode(&other_pem),
            "certificate binding not verified",
        ),
        (
            "raw PEM, not URL-encoded",
            pem.clone(),
            "malformed peer certificate",
        ),
        (
            "broken escape",
            "%ZZ".to_string(),
            "malformed peer certificate",
        ),
        (
            "not a certificate",
            envoy_encode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            "malformed peer certificate",
        ),
        (
            "PEM of garbage DER",
            envoy_encode(&format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64_std(&[0x30, 0x03, 0x02, 0x01, 0x01])
            )),
            "malformed peer certificate",
        ),
    ] {
        let r = ward.summary(with(&cert)).await;
        assert_eq!(r.short(), INVALID, "{case}: {r:?}");
        assert_eq!(r.detail, detail, "{case}");
        let c = r.www_authenticate.as_deref().unwrap_or_default();
        assert!(
            c.starts_with("Bearer ") && c.contains(r#"error="invalid_token""#),
            "{case}: {c}"
        );
    }

    // No certificate at all: the token alone proves nothing.
    let r = ward.summary(Req::get("/api/x").bearer(&t).to_map()).await;
    assert_eq!(r.short(), INVALID, "{r:?}");
    assert_eq!(r.detail, "certificate binding not verified");
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn the_binding_is_checked_again_on_a_cached_token() {
    let key = &KeyRing::shared().es256;
    let ward = Ward::start(&config(key)).await;
    let (pem, der) = client_cert();
    let (other_pem, _) = client_cert();
    let t = token(key, json!({"x5t#S256": x5t(&der)}));
    let with = |cert: &str| Req::get("/api/x").bearer(&t).certificate(cert).to_map();

    assert_eq!(ward.summary(with(&envoy_encode(&pem))).await.short(), OK);
    let hits = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "corp"), ("result", "hit")],
        )
        .await
        .unwrap_or(0.0);
    let r = ward.summary(with(&envoy_encode(&other_pem))).await;
    assert_eq!(r.short(), INVALID, "{r:?}");
    assert_eq!(r.detail, "certificate binding not verified");
    let after = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "corp"), ("result", "hit")],
        )
        .await
        .unwrap_or(0.0);
    assert_eq!(after, hits + 1.0, "the refusal came from a cache hit");
    // The refusal cached nothing: the holder of the certificate is still let in.
    assert_eq!(ward.summary(with(&envoy_encode(&pem))).await.short(), OK);
    assert_eq!(
        ward.summary(Req::get("/api/x").bearer(&t).to_map())
            .await
            .short(),
        INVALID
    );
}

#[tokio::test]
async fn a_cnf_ward_cannot_verify_refuses_the_token() {
    let key = &KeyRing::shared().es256;
    let ward = Ward::start(&config(key)).await;
    let (pem, der) = client_cert();
    let cert = envoy_encode(&pem);
    for (case, cnf, detail) in [
        ("not an object", json!("x"), "malformed cnf claim"),
        ("a number", json!({"x5t#S256": 1}), "malformed cnf claim"),
        (
            "not SHA-256",
            json!({"x5t#S256": "abc"}),
            "malformed cnf claim",
        ),
        (
            "padded",
            json!({"x5t#S256": format!("{}=", x5t(&der))}),
            "malformed cnf claim",
        ),
        (
            "two bindings",
            json!({"x5t#S256": x5t(&der), "jkt": x5t(&der)}),
            "malformed cnf claim",
        ),
        (
            "only unknown members",
            json!({"jwk": {"kty": "EC"}}),
            "token binding cannot be verified",
        ),
        ("empty", json!({}), "token binding cannot be verified"),
    ] {
        let t = token(key, cnf);
        let r = ward
            .summary(Req::get("/api/x").bearer(&t).certificate(&cert).to_map())
            .await;
        assert_eq!(r.short(), INVALID, "{case}: {r:?}");
        assert_eq!(r.detail, detail, "{case}");
    }
}

#[tokio::test]
async fn unbound_tokens_are_unchanged_and_the_opt_out_is_explicit() {
    let key = &KeyRing::shared().es256;
    let ward = Ward::start(&config(key)).await;
    let (pem, der) = client_cert();
    // A token without `cnf` at all.
    let plain = key
        .sign(&json!({"iss": "https://corp.test", "aud": "api", "sub": "bob", "exp": now() + 300}));
    assert_eq!(
        ward.summary(Req::get("/api/x").bearer(&plain).to_map())
            .await
            .short(),
        OK
    );
    assert_eq!(
        ward.summary(
            Req::get("/api/x")
                .bearer(&plain)
                .certificate(&envoy_encode(&pem))
                .to_map()
        )
        .await
        .short(),
        OK
    );
    // `unsafe_ignore_binding`: the bound token passes as a bearer token.
    let bound = token(key, json!({"x5t#S256": x5t(&der)}));
    let r = ward
        .summary(Req::get("/legacy/x").bearer(&bound).to_map())
        .await;
    assert_eq!(r.short(), OK, "{r:?}");
}
