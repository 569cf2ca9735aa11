//! `/metrics` as SREs scrape it: every metric of SPEC §6 with its type and label names,
//! and never a token, a subject or a raw path in it.

mod idp;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

const SECRET: &[u8] = b"metrics-test-secret-0123456789abcdef";
const SUBJECT: &str = "subject-that-must-not-leak";

fn check(path: &str, auth: Option<&str>) -> CheckRequest {
    let mut headers = HashMap::new();
    if let Some(a) = auth {
        headers.insert("authorization".to_string(), a.to_string());
    }
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

/// Metric family -> (type, label names seen on its samples).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, ty) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            out.entry(name.to_string()).or_default().0 = ty.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let sample = &line[..name_end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| sample.strip_suffix(s).filter(|f| out.contains_key(*f)))
                .unwrap_or(sample);
            let labels = line[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.split('}').next())
                .map(|l| {
                    l.split(',')
                        .filter_map(|kv| kv.split('=').next())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(f) = out.get_mut(family) {
                f.1.extend::<BTreeSet<String>>(labels);
                f.1.remove("le");
            }
        }
    }
    out
}

#[tokio::test]
async fn metrics_have_the_contracted_names_types_and_labels_and_leak_nothing() {
    let key = SigningKey::from_bytes(SECRET, Alg::HS256).expect("key");
    let idp = idp::Idp::start(key.jwks()).await;
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt: {{ issuer: https://corp.test, audiences: [api], algorithms: [HS256], jwks_uri: {uri} }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        uri = idp.jwks_uri()
    );
    let env: HashMap<String, String> = HashMap::new();
    let config = ward::config::load_str(&yaml, std::path::Path::new("."), &env).expect("config");
    let state = ward::server::AppState::start(config).expect("state");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().expect("a"),
        admin.local_addr().expect("a"),
    );
    tokio::spawn(ward::server::run(
        grpc,
        admin,
        state,
        std::future::pending(),
        Duration::from_secs(1),
    ));

    let exp = ward::authn::cache::unix_now() + 60;
    let token = key
        .sign(&serde_json::json!({"iss": "https://corp.test", "aud": "api", "sub": SUBJECT, "exp": exp}))
        .expect("sign");
    let mut client = AuthorizationClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .check(check(
                "/api/secret-path-1",
                Some(&format!("Bearer {token}")),
            ))
            .await
            .expect("rpc");
        if r.into_inner().status.map_or(0, |s| s.code) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "keys never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
        .check(check(
            "/api/secret-path-1",
            Some(&format!("Bearer {token}")),
        ))
        .await
        .expect("rpc");
    client
        .check(check(
            "/api/secret-path-2?access_token=query-secret",
            Some("Bearer garbage-token"),
        ))
        .await
        .expect("rpc");
    client
        .check(check("/elsewhere/secret-path-3", None))
        .await
        .expect("rpc");

    let text = reqwest::get(format!("http://{admin_addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let f = families(&text);
    let want: &[(&str, &str, &[&str])] = &[
        (
            "ward_check_requests_total",
            "counter",
            &["route", "decision", "reason"],
        ),
        ("ward_check_duration_seconds", "histogram", &["decision"]),
        (
            "ward_token_cache_requests_total",
            "counter",
            &["provider", "result"],
        ),
        (
            "ward_jwks_refresh_total",
            "counter",
            &["provider", "result"],
        ),
        ("ward_jwks_keys", "gauge", &["provider"]),
        (
            "ward_jwks_last_success_timestamp_seconds",
            "gauge",
            &["provider"],
        ),
        ("ward_config_reloads_total", "counter", &["result"]),
        (
            "ward_config_last_reload_success_timestamp_seconds",
            "gauge",
            &[],
        ),
        ("ward_build_info", "gauge", &["version"]),
        ("process_resident_memory_bytes", "gauge", &[]),
    ];
    for (name, ty, labels) in want {
        let Some((got_ty, got_labels)) = f.get(*name) else {
            panic!("{name} missing from /metrics:\n{text}");
        };
        assert_eq!(got_ty, ty, "{name} type");
        let expect: BTreeSet<String> = labels.iter().map(|s| s.to_string()).collect();
        assert_eq!(got_labels, &expect, "{name} labels");
    }
    assert!(
        text.contains(r#"ward_check_requests_total{decision="allow",reason="ok",route="api"} 2"#),
        "{text}"
    );
    assert!(text.contains(
        r#"ward_check_requests_total{decision="deny",reason="invalid_token",route="api"} 1"#
    ));
    assert!(text.contains(
        r#"ward_check_requests_total{decision="deny",reason="no_route",route="none"} 1"#
    ));
    for secret in [
        token.as_str(),
        SUBJECT,
        "secret-path",
        "query-secret",
        "garbage-token",
    ] {
        assert!(!text.contains(secret), "/metrics leaks {secret:?}");
    }
}
