//! The gRPC listener over TLS and mTLS, with certificates generated in the test (rcgen).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let pem = params.self_signed(&key).expect("self-signed").pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate for `name` signed by `ca`; `expired` puts it in the past.
fn leaf(ca: &Ca, name: &str, expired: bool) -> (String, String) {
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 6, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

const ROUTES: &str =
    "routes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n";

/// Starts ward with TLS files in a temp dir; `client_ca` turns on mTLS.
async fn start(dir: &Path, server_ca: &Ca, client_ca: Option<&Ca>) -> std::net::SocketAddr {
    let (cert, key) = leaf(server_ca, "localhost", false);
    std::fs::write(dir.join("cert.pem"), cert).expect("write");
    std::fs::write(dir.join("key.pem"), key).expect("write");
    let mut tls =
        "server:\n  watch_interval: 50ms\n  tls: { cert_file: cert.pem, key_file: key.pem"
            .to_string();
    if let Some(c) = client_ca {
        std::fs::write(dir.join("clients.pem"), &c.pem).expect("write");
        tls.push_str(", client_ca_file: clients.pem");
    }
    tls.push_str(" }\n");
    let env: HashMap<String, String> = HashMap::new();
    let config = ward::config::load_str(&format!("{tls}{ROUTES}"), dir, &env).expect("config");
    let state = ward::server::AppState::start(config).expect("state");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = grpc.local_addr().expect("addr");
    tokio::spawn(ward::server::run(
        grpc,
        admin,
        state,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addr
}

async fn check(addr: std::net::SocketAddr, tls: Option<ClientTlsConfig>) -> Result<i32, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Channel::from_shared(format!("{scheme}://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(t) = tls {
        ep = ep.tls_config(t).map_err(|e| e.to_string())?;
    }
    let channel = ep.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    let req = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    AuthorizationClient::new(channel)
        .check(req)
        .await
        .map(|r| r.into_inner().status.map_or(0, |s| s.code))
        .map_err(|e| format!("rpc: {e}"))
}

fn client_tls(trust: &Ca, identity: Option<(String, String)>) -> ClientTlsConfig {
    let mut t = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&trust.pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        t = t.identity(Identity::from_pem(cert, key));
    }
    t
}

#[tokio::test]
async fn tls_serves_checks_and_refuses_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_ca = ca();
    let addr = start(dir.path(), &server_ca, None).await;
    assert_eq!(check(addr, Some(client_tls(&server_ca, None))).await, Ok(0));
    assert!(
        check(addr, None).await.is_err(),
        "a plaintext client must not get an answer"
    );
    // A client that trusts another CA refuses ward's certificate.
    assert!(check(addr, Some(client_tls(&ca(), None))).await.is_err());
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_configured_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_ca = ca();
    let clients = ca();
    let addr = start(dir.path(), &server_ca, Some(&clients)).await;
    let good = leaf(&clients, "envoy", false);
    assert_eq!(
        check(addr, Some(client_tls(&server_ca, Some(good)))).await,
        Ok(0)
    );
    assert!(
        check(addr, Some(client_tls(&server_ca, None)))
            .await
            .is_err(),
        "no client certificate"
    );
    let stranger = leaf(&ca(), "envoy", false);
    assert!(
        check(addr, Some(client_tls(&server_ca, Some(stranger))))
            .await
            .is_err(),
        "unknown CA"
    );
    let expired = leaf(&clients, "envoy", true);
    assert!(
        check(addr, Some(client_tls(&server_ca, Some(expired))))
            .await
            .is_err(),
        "expired client certificate"
    );
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_ca = ca();
    let addr = start(dir.path(), &old_ca, None).await;
    assert_eq!(check(addr, Some(client_tls(&old_ca, None))).await, Ok(0));

    // A broken replacement is ignored: the old certificate keeps serving.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(check(addr, Some(client_tls(&old_ca, None))).await, Ok(0));

    // cert-manager writes a new pair from a new CA.
    let new_ca = ca();
    let (cert, key) = leaf(&new_ca, "localhost", false);
    std::fs::write(dir.path().join("key.pem"), key).expect("write");
    std::fs::write(dir.path().join("cert.pem"), cert).expect("write");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while check(addr, Some(client_tls(&new_ca, None))).await != Ok(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        check(addr, Some(client_tls(&old_ca, None))).await.is_err(),
        "the old certificate is gone"
    );
}
