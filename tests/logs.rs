//! Decision logs of the real binary: one JSON line per decision with request id, route,
//! provider, reason and latency; never a token (header or query), never the raw query;
//! the subject hashed by default.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

const SECRET: &[u8] = b"logs-test-secret-0123456789abcdef!!";

fn request(path: &str, headers: &[(&str, String)]) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: path.into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

#[test]
fn decision_logs_carry_context_and_never_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::from_bytes(SECRET, Alg::HS256).expect("key");
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["serve", "--config"])
        .arg(&path)
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(l);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let grpc = loop {
        let found = lines.lock().expect("lock").iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "ward serving")
                .then(|| v["grpc"].as_str().map(str::to_string))
                .flatten()
        });
        if let Some(g) = found {
            break g;
        }
        assert!(
            Instant::now() < deadline,
            "ward did not start: {:?}",
            lines.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let now = ward::authn::cache::unix_now();
    let good = key.sign(&serde_json::json!({"iss": "https://corp.test", "aud": "api", "sub": "alice@example.com", "exp": now + 60})).expect("sign");
    let expired = key.sign(&serde_json::json!({"iss": "https://corp.test", "aud": "api", "sub": "bob", "exp": now - 3600})).expect("sign");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut c = AuthorizationClient::connect(format!("http://{grpc}"))
            .await
            .expect("connect");
        let rid = |id: &str| ("x-request-id", id.to_string());
        c.check(request(
            "/api/orders",
            &[
                ("authorization", format!("Bearer {good}")),
                rid("req-allow"),
            ],
        ))
        .await
        .expect("rpc");
        c.check(request(
            "/api/orders",
            &[
                ("authorization", format!("Bearer {expired}")),
                rid("req-expired"),
            ],
        ))
        .await
        .expect("rpc");
        c.check(request(
            &format!("/api/orders?access_token={expired}&x=1"),
            &[rid("req-query")],
        ))
        .await
        .expect("rpc");
        c.check(request("/nowhere", &[rid("req-noroute")]))
            .await
            .expect("rpc");
    });
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(child.wait().expect("wait").success());
    reader.join().expect("reader");

    let lines = lines.lock().expect("lock").clone();
    let all = lines.join("\n");
    for secret in [
        good.as_str(),
        expired.as_str(),
        "alice@example.com",
        "access_token=",
    ] {
        assert!(!all.contains(secret), "logs leak {secret:?}:\n{all}");
    }
    let by_id = |id: &str| -> serde_json::Value {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
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
    let query_line = by_id("req-query");
    assert_eq!(
        query_line["path"], "/api/orders",
        "logged without the query string"
    );
    assert_eq!(by_id("req-noroute")["reason"], "no_route");
}
