//! Decision logs of the real binary: one JSON line per decision with request id, route,
//! provider, reason and latency; never a token (header or query), never the raw query;
//! the subject hashed by default.

mod common;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use serde_json::{Value, json};

use common::bin::Serve;
use common::{Req, TestKey, now};
use ward::authn::jwt::Alg;

#[test]
fn decision_logs_carry_context_and_never_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::generate(Alg::HS256);
    let config = format!(
        r#"
logging: {{ allowed_sample: 1.0 }}
providers:
  - name: corp
    jwt:
      issuer: https://corp.test
      audiences: [api]
      algorithms: [HS256]
      jwks: {jwks}
      token_from: [ {{header: authorization, prefix: "Bearer "}}, {{query: access_token}} ]
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        jwks = key.jwks()
    );
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, config).expect("write config");
    let mut ward = Serve::start(dir.path(), &path, &[("RUST_LOG", "debug")]);

    let now = now();
    let good = key.sign(&json!({"iss": "https://corp.test", "aud": "api", "sub": "alice@example.com", "exp": now + 60}));
    let expired = key
        .sign(&json!({"iss": "https://corp.test", "aud": "api", "sub": "bob", "exp": now - 3600}));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut c = AuthorizationClient::connect(format!("http://{}", ward.grpc_addr))
            .await
            .expect("connect");
        for req in [
            Req::get("/api/orders")
                .bearer(&good)
                .request_id("req-allow"),
            Req::get("/api/orders")
                .bearer(&expired)
                .request_id("req-expired"),
            Req::get(&format!("/api/orders?access_token={expired}&x=1")).request_id("req-query"),
            Req::get("/nowhere").request_id("req-noroute"),
        ] {
            c.check(req.to_map()).await.expect("rpc");
        }
    });
    assert!(ward.terminate().success());

    let lines = ward.lines();
    let all = lines.join("\n");
    for secret in [
        good.as_str(),
        expired.as_str(),
        "alice@example.com",
        "access_token=",
    ] {
        assert!(!all.contains(secret), "logs leak {secret:?}:\n{all}");
    }
    let by_id = |id: &str| -> Value {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["request_id"] == id)
            .unwrap_or_else(|| panic!("no log line for {id}:\n{all}"))
    };
    let allow = by_id("req-allow");
    assert_eq!(allow["decision"], "allow");
    assert_eq!(
        allow["level"], "INFO",
        "allowed_sample: 1.0 logs every allow at info"
    );
    assert_eq!(allow["route"], "api");
    assert_eq!(allow["provider"], "corp");
    assert_eq!(
        allow["subject"].as_str().map(str::len),
        Some(16),
        "subject hashed: {allow}"
    );
    assert!(allow["latency_us"].is_u64());
    let expired_line = by_id("req-expired");
    assert_eq!(expired_line["level"], "INFO");
    assert_eq!(expired_line["reason"], "invalid_token");
    assert_eq!(expired_line["detail"], "token expired");
    assert_eq!(
        expired_line["provider"], "corp",
        "a refused credential names the provider that refused it"
    );
    let query_line = by_id("req-query");
    assert_eq!(
        query_line["path"], "/api/orders",
        "logged without the query string"
    );
    let no_route = by_id("req-noroute");
    assert_eq!(no_route["reason"], "no_route");
    assert_eq!(no_route["provider"], "", "no credential was judged");
}
