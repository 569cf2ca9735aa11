//! The gRPC listener over TLS and mTLS, with certificates generated in the test (rcgen).

mod common;

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use common::{Req, Ward, grpc_code, wait_until};

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

/// A leaf certificate for `localhost` signed by `ca`, valid until the start of 2031.
fn leaf_until_2031(ca: &Ca) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_after = rcgen::date_time_ymd(2031, 1, 1);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// 2031-01-01T00:00:00Z.
const START_OF_2031: f64 = 1_924_992_000.0;
/// rcgen's default notAfter, 4096-01-01T00:00:00Z.
const START_OF_4096: f64 = 67_090_118_400.0;

const ROUTES: &str =
    "routes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n";

/// Starts ward serving a `localhost` certificate from `server_ca` (its TLS files in the
/// config's directory, watched every 50ms); `client_ca` turns on mTLS.
async fn start(server_ca: &Ca, client_ca: Option<&Ca>) -> Ward {
    let (cert, key) = leaf(server_ca, "localhost", false);
    let mtls = match client_ca {
        Some(_) => ", client_ca_file: clients.pem",
        None => "",
    };
    let yaml = format!(
        "server:\n  watch_interval: 50ms\n  tls: {{ cert_file: cert.pem, key_file: key.pem{mtls} }}\n{ROUTES}"
    );
    let mut builder = Ward::builder(&yaml)
        .file("cert.pem", cert)
        .file("key.pem", key);
    if let Some(c) = client_ca {
        builder = builder.file("clients.pem", &c.pem);
    }
    builder.start().await
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
    AuthorizationClient::new(channel)
        .check(Req::get("/").to_map())
        .await
        .map(|r| grpc_code(&r.into_inner()))
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
    let server_ca = ca();
    let ward = start(&server_ca, None).await;
    let addr = ward.grpc_addr;
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
    let server_ca = ca();
    let clients = ca();
    let ward = start(&server_ca, Some(&clients)).await;
    let addr = ward.grpc_addr;
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
    let old_ca = ca();
    let ward = start(&old_ca, None).await;
    let (addr, dir) = (ward.grpc_addr, ward.dir());
    assert_eq!(check(addr, Some(client_tls(&old_ca, None))).await, Ok(0));
    let expiry = "ward_tls_certificate_expiry_timestamp_seconds";
    let reloads = |result| ("ward_tls_reloads_total", [("result", result)]);
    assert_eq!(ward.metric(expiry, &[]).await, Some(START_OF_4096));
    for result in ["success", "failure"] {
        let (name, labels) = reloads(result);
        assert_eq!(ward.metric(name, &labels).await, Some(0.0), "{result}");
    }

    // A broken replacement is ignored: the old certificate keeps serving, and the
    // failure is counted.
    std::fs::write(dir.join("cert.pem"), "not a certificate").expect("write");
    ward.tls_watch_ticks(2).await;
    assert_eq!(check(addr, Some(client_tls(&old_ca, None))).await, Ok(0));
    let (name, labels) = reloads("failure");
    assert_eq!(ward.metric(name, &labels).await, Some(1.0));
    assert_eq!(ward.metric(expiry, &[]).await, Some(START_OF_4096));

    // cert-manager writes a new pair from a new CA.
    let new_ca = ca();
    let (cert, key) = leaf_until_2031(&new_ca);
    std::fs::write(dir.join("key.pem"), key).expect("write");
    std::fs::write(dir.join("cert.pem"), cert).expect("write");
    wait_until(
        "the new certificate is served",
        Duration::from_secs(10),
        async || check(addr, Some(client_tls(&new_ca, None))).await == Ok(0),
    )
    .await;
    assert!(
        check(addr, Some(client_tls(&old_ca, None))).await.is_err(),
        "the old certificate is gone"
    );
    // The watcher may have seen the key written before the certificate: at least one
    // success, and the expiry is the new certificate's.
    let (name, labels) = reloads("success");
    let done = ward.metric(name, &labels).await.unwrap_or(0.0);
    assert!(done >= 1.0, "{done} successful reloads");
    assert_eq!(ward.metric(expiry, &[]).await, Some(START_OF_2031));
}

#[tokio::test]
async fn without_tls_there_is_no_tls_series() {
    let ward = Ward::start(ROUTES).await;
    let text = ward.metrics().await;
    assert!(!text.contains("ward_tls_"), "{text}");
}
