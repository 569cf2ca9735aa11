//! Remote key sources through ward's gRPC API, against a real HTTP IdP on 127.0.0.1:
//! jwks_uri and discovery, rotation, refresh failures, rate-limited refetch on unknown
//! kids, single-flight fetches, timeouts, body caps and the verified-token cache.

mod idp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use serde_json::{Value, json};
use tonic::transport::Channel;

use idp::Idp;
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

// === keys ===

fn pem(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out.into_bytes()
}

/// A fresh key of `alg`'s family, generated now.
fn key(alg: Alg) -> SigningKey {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair,
    };
    let bytes = match alg {
        Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
            let kp =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = kp.as_der().expect("rsa der");
            pem(der.as_ref())
        }
        Alg::ES256 => pem(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("p256")
            .to_pkcs8v1()
            .expect("der")
            .as_ref()),
        Alg::ES384 => pem(EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
            .expect("p384")
            .to_pkcs8v1()
            .expect("der")
            .as_ref()),
        Alg::EdDSA => pem(Ed25519KeyPair::generate()
            .expect("ed25519")
            .to_pkcs8v1()
            .expect("der")
            .as_ref()),
        Alg::HS256 | Alg::HS384 | Alg::HS512 => {
            let mut secret = [0u8; 48];
            aws_lc_rs::rand::fill(&mut secret).expect("random");
            secret.to_vec()
        }
    };
    SigningKey::from_bytes(&bytes, alg).expect("signing key")
}

fn now() -> u64 {
    ward::authn::cache::unix_now()
}

/// A token from `iss` for audience `api`, valid for `ttl` seconds.
fn token(k: &SigningKey, iss: &str, sub: &str, ttl: u64) -> String {
    k.sign(&json!({"iss": iss, "aud": "api", "sub": sub, "exp": now() + ttl, "roles": ["reader"]}))
        .expect("sign")
}

fn jwks_of(keys: &[&SigningKey]) -> Value {
    let all: Vec<Value> = keys
        .iter()
        .flat_map(|k| k.jwks()["keys"].as_array().cloned().unwrap_or_default())
        .collect();
    json!({ "keys": all })
}

// === ward ===

struct Ward {
    grpc: SocketAddr,
    admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Ward {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(yaml: &str) -> Ward {
    let dir = tempfile::tempdir().expect("tempdir");
    let env: HashMap<String, String> = HashMap::new();
    let config =
        ward::config::load_str(yaml, dir.path(), &env).unwrap_or_else(|e| panic!("config: {e}"));
    let state = ward::server::AppState::start(config).expect("state");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind grpc");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(ward::server::run(
        grpc,
        admin,
        state,
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(1),
    ));
    Ward {
        grpc: grpc_addr,
        admin: admin_addr,
        stop: Some(tx),
        done: Some(done),
    }
}

impl Ward {
    async fn client(&self) -> AuthorizationClient<Channel> {
        AuthorizationClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("connect")
    }

    async fn check(&self, path: &str, bearer: Option<&str>) -> CheckResponse {
        let mut headers = HashMap::new();
        if let Some(t) = bearer {
            headers.insert("authorization".to_string(), format!("Bearer {t}"));
        }
        let req = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        id: "1".into(),
                        method: "GET".into(),
                        host: "api.example.com".into(),
                        path: path.into(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        self.client()
            .await
            .check(req)
            .await
            .expect("check rpc")
            .into_inner()
    }

    async fn admin_get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.admin))
            .await
            .expect("admin get");
        (r.status().as_u16(), r.text().await.expect("admin body"))
    }

    /// Polls `/readyz` until it answers `want`, or fails after 10 s.
    async fn wait_ready(&self, want: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.admin_get("/readyz").await.0 == want {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz never answered {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// (gRPC code, HTTP status, reason, subject header)
fn outcome(r: &CheckResponse) -> (i32, u16, String, Option<String>) {
    let code = r.status.as_ref().map_or(0, |s| s.code);
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            let sub = ok
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == "x-auth-subject")
                .map(|h| h.value.clone());
            (code, 200, "ok".into(), sub)
        }
        Some(HttpResponse::DeniedResponse(d)) => {
            let body: Value = serde_json::from_str(&d.body).expect("json body");
            (
                code,
                d.status.as_ref().map_or(0, |s| s.code as u16),
                body["error"].as_str().unwrap_or("").to_string(),
                None,
            )
        }
        other => panic!("unexpected response {other:?}"),
    }
}

fn config(iss: &str, key_source: &str, extra: &str) -> String {
    let timeout = if extra.contains("timeout:") {
        ""
    } else {
        "timeout: 500ms"
    };
    format!(
        r#"
providers:
  - name: idp
    jwt:
      issuer: "{iss}"
      audiences: [api]
      {key_source}
      algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
      {timeout}
      {extra}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [idp]
"#
    )
}

const ISS: &str = "https://idp.test";

// === tests ===

#[tokio::test]
async fn jwks_uri_keys_verify_every_family() {
    let algs = [
        Alg::RS256,
        Alg::PS256,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
    ];
    let keys: Vec<SigningKey> = algs.iter().map(|a| key(*a)).collect();
    let idp = Idp::start(jwks_of(&keys.iter().collect::<Vec<_>>())).await;
    let ward = start(&config(ISS, &format!("jwks_uri: {}", idp.jwks_uri()), "")).await;
    ward.wait_ready(200).await;
    for (alg, k) in algs.iter().zip(&keys) {
        let r = ward
            .check("/api/x", Some(&token(k, ISS, alg.as_str(), 60)))
            .await;
        assert_eq!(
            outcome(&r),
            (0, 200, "ok".into(), Some(alg.as_str().to_string())),
            "{alg:?}"
        );
    }
    let (_, metrics) = ward.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"ward_jwks_refresh_total{provider="idp",result="success"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ward_jwks_keys{provider="idp"} 6"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"ward_jwks_last_success_timestamp_seconds{provider="idp"}"#));
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let k = key(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let iss = idp.base();
    let ward = start(&config(&iss, "discovery: true", "")).await;
    ward.wait_ready(200).await;
    let r = ward
        .check("/api/x", Some(&token(&k, &iss, "alice", 60)))
        .await;
    assert_eq!(outcome(&r).1, 200);
    assert_eq!(idp.discovery_hits(), 1);
}

#[tokio::test]
async fn discovery_with_another_issuer_is_refused() {
    let k = key(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_discovery_issuer("https://evil.example");
    let iss = idp.base();
    let ward = start(&config(&iss, "discovery: true", "")).await;
    let r = ward
        .check("/api/x", Some(&token(&k, &iss, "alice", 60)))
        .await;
    assert_eq!(outcome(&r), (14, 503, "authn_unavailable".into(), None));
    assert_eq!(
        idp.jwks_hits(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
    assert_eq!(ward.admin_get("/readyz").await.0, 503);
}

#[tokio::test]
async fn idp_down_at_start_answers_503_and_not_ready() {
    // A port with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let k = key(Alg::RS256);
    let ward = start(&config(ISS, &format!("jwks_uri: http://{closed}/jwks"), "")).await;
    let t0 = Instant::now();
    let r = ward
        .check("/api/x", Some(&token(&k, ISS, "alice", 60)))
        .await;
    assert_eq!(outcome(&r), (14, 503, "authn_unavailable".into(), None));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a refused connection answers fast"
    );
    assert_eq!(ward.admin_get("/readyz").await.0, 503);
    // Missing credential is still a 401, not a 503: no key is needed to say so.
    assert_eq!(
        outcome(&ward.check("/api/x", None).await).2,
        "missing_credential"
    );
}

#[tokio::test]
async fn idp_down_after_start_keeps_serving_cached_keys() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "refresh_interval: 1s\n      min_refetch_interval: 1s",
    ))
    .await;
    ward.wait_ready(200).await;
    idp.set_status(500);
    let hits = idp.jwks_hits();
    // Wait for at least one failed refresh.
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.jwks_hits() == hits {
        assert!(Instant::now() < deadline, "no refresh happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = ward
        .check("/api/x", Some(&token(&k, ISS, "alice", 60)))
        .await;
    assert_eq!(outcome(&r).1, 200, "last good keys keep serving");
    let (_, metrics) = ward.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"ward_jwks_refresh_total{provider="idp",result="http_status"}"#),
        "{metrics}"
    );
    idp.stop();
    let r = ward.check("/api/x", Some(&token(&k, ISS, "bob", 60))).await;
    assert_eq!(
        outcome(&r).1,
        200,
        "an IdP that is gone does not void cached keys"
    );
}

#[tokio::test]
async fn slow_idp_times_out_without_hurting_other_providers() {
    let slow_key = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&slow_key])).await;
    idp.set_delay(Duration::from_secs(5));
    let local = key(Alg::ES256);
    let yaml = format!(
        r#"
providers:
  - name: slow
    jwt:
      issuer: "{ISS}"
      audiences: [api]
      jwks_uri: {uri}
      timeout: 300ms
  - name: local
    jwt:
      issuer: https://local.test
      audiences: [api]
      jwks: {jwks}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [slow, local]
"#,
        uri = idp.jwks_uri(),
        jwks = jwks_of(&[&local]),
    );
    let ward = start(&yaml).await;
    let t0 = Instant::now();
    let r = ward
        .check("/api/x", Some(&token(&slow_key, ISS, "alice", 60)))
        .await;
    let took = t0.elapsed();
    assert_eq!(outcome(&r).1, 503);
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}, past the 300ms timeout"
    );
    let t0 = Instant::now();
    let r = ward
        .check(
            "/api/x",
            Some(&token(&local, "https://local.test", "bob", 60)),
        )
        .await;
    assert_eq!(outcome(&r), (0, 200, "ok".into(), Some("bob".into())));
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "the local provider never waits on the slow IdP"
    );
}

#[tokio::test]
async fn broken_key_documents_leave_ward_without_keys() {
    let k = key(Alg::RS256);
    let huge = {
        let mut v = b"{\"keys\":[],\"pad\":\"".to_vec();
        v.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
        v.extend_from_slice(b"\"}");
        v
    };
    let cases: Vec<(&str, idp::Jwks)> = vec![
        ("not json", idp::Jwks::Raw(b"<html>oops</html>".to_vec())),
        ("no keys", idp::Jwks::Json(json!({"keys": []}))),
        ("not a jwks", idp::Jwks::Json(json!({"kid": "x"}))),
        (
            "malformed keys",
            idp::Jwks::Json(
                json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            ),
        ),
        ("huge", idp::Jwks::Raw(huge)),
    ];
    for (what, doc) in cases {
        let idp = Idp::start(json!({"keys": []})).await;
        match doc {
            idp::Jwks::Json(v) => idp.set_jwks(v),
            idp::Jwks::Raw(b) => idp.set_raw(b),
        }
        let ward = start(&config(ISS, &format!("jwks_uri: {}", idp.jwks_uri()), "")).await;
        let r = ward
            .check("/api/x", Some(&token(&k, ISS, "alice", 60)))
            .await;
        assert_eq!(
            outcome(&r),
            (14, 503, "authn_unavailable".into(), None),
            "{what}"
        );
        assert_eq!(ward.admin_get("/readyz").await.0, 503, "{what}");
    }
}

#[tokio::test]
async fn a_bad_refresh_keeps_the_last_good_keys() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "refresh_interval: 1s\n      min_refetch_interval: 1s",
    ))
    .await;
    ward.wait_ready(200).await;
    idp.set_raw(b"not json".to_vec());
    let hits = idp.jwks_hits();
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.jwks_hits() < hits + 1 {
        assert!(Instant::now() < deadline, "no refresh happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = ward
        .check("/api/x", Some(&token(&k, ISS, "alice", 60)))
        .await;
    assert_eq!(outcome(&r).1, 200);
    assert_eq!(ward.admin_get("/readyz").await.0, 200);
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_and_removed_kid_stops_verifying() {
    let old = key(Alg::RS256);
    let new = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "refresh_interval: 1h\n      min_refetch_interval: 1s",
    ))
    .await;
    ward.wait_ready(200).await;
    assert_eq!(
        outcome(&ward.check("/api/x", Some(&token(&old, ISS, "a", 60))).await).1,
        200
    );

    // The IdP rotates: the new key appears, the old one is gone.
    idp.set_jwks(jwks_of(&[&new]));
    // Wait out min_refetch_interval since the startup fetch, then a new-kid token refetches.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = ward.check("/api/x", Some(&token(&new, ISS, "b", 60))).await;
    assert_eq!(
        outcome(&r),
        (0, 200, "ok".into(), Some("b".into())),
        "new kid fetched on demand"
    );
    let r = ward.check("/api/x", Some(&token(&old, ISS, "c", 60))).await;
    assert_eq!(
        outcome(&r),
        (16, 401, "invalid_token".into(), None),
        "old kid no longer verifies"
    );
}

#[tokio::test]
async fn a_burst_of_unknown_kids_is_one_refetch() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "min_refetch_interval: 30s",
    ))
    .await;
    ward.wait_ready(200).await;
    let before = idp.jwks_hits();
    let mut tasks = Vec::new();
    for i in 0..200 {
        // Same key, random kid: signed by a real key, but no such kid at the IdP.
        let forged = {
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("random-{i}")});
            let claims = json!({"iss": ISS, "aud": "api", "sub": "x", "exp": now() + 60});
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.c2lnbmF0dXJl", b64(&header), b64(&claims))
        };
        let client = ward.client().await;
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            let mut headers = HashMap::new();
            headers.insert("authorization".to_string(), format!("Bearer {forged}"));
            let req = CheckRequest {
                attributes: Some(AttributeContext {
                    request: Some(Request {
                        http: Some(HttpRequest {
                            method: "GET".into(),
                            path: "/api/x".into(),
                            headers,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            };
            client.check(req).await.expect("rpc").into_inner()
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(outcome(&r).1, 401);
    }
    let extra = idp.jwks_hits() - before;
    assert!(
        extra <= 1,
        "{extra} fetches for 200 unknown kids; the bound is 1 per min_refetch_interval"
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_delay(Duration::from_millis(200));
    let ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "timeout: 2s",
    ))
    .await;
    let client = ward.client().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut c = client.clone();
        let t = token(&k, ISS, &format!("u{i}"), 60);
        tasks.push(tokio::spawn(async move {
            let mut headers = HashMap::new();
            headers.insert("authorization".to_string(), format!("Bearer {t}"));
            let req = CheckRequest {
                attributes: Some(AttributeContext {
                    request: Some(Request {
                        http: Some(HttpRequest {
                            method: "GET".into(),
                            path: "/api/x".into(),
                            headers,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            };
            c.check(req).await.expect("rpc").into_inner()
        }));
    }
    for t in tasks {
        assert_eq!(outcome(&t.await.expect("task")).1, 200);
    }
    assert!(
        idp.jwks_hits() <= 2,
        "{} fetches: startup plus at most one on demand",
        idp.jwks_hits()
    );
}

#[tokio::test]
async fn cache_control_max_age_shortens_refresh() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_cache_control(Some("public, max-age=1"));
    let _ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "refresh_interval: 1h\n      min_refetch_interval: 1s",
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.jwks_hits() < 3 {
        assert!(
            Instant::now() < deadline,
            "max-age=1 did not trigger refreshes ({} hits)",
            idp.jwks_hits()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cached_token_is_not_served_past_exp() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "leeway: 0s",
    ))
    .await;
    ward.wait_ready(200).await;
    let t = token(&k, ISS, "alice", 2);
    assert_eq!(outcome(&ward.check("/api/x", Some(&t)).await).1, 200);
    assert_eq!(
        outcome(&ward.check("/api/x", Some(&t)).await).1,
        200,
        "served from cache"
    );
    let (_, m) = ward.admin_get("/metrics").await;
    assert!(
        m.contains(r#"ward_token_cache_requests_total{provider="idp",result="hit"} 1"#),
        "{m}"
    );
    // Real time must pass the token's exp: this waits on the clock, not on readiness.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = ward.check("/api/x", Some(&t)).await;
    assert_eq!(outcome(&r), (16, 401, "invalid_token".into(), None));
}

#[tokio::test]
async fn the_issuer_picks_the_provider_on_a_multi_issuer_route() {
    let a = key(Alg::RS256);
    let b = key(Alg::ES256);
    let yaml = format!(
        r#"
providers:
  - name: first
    jwt: {{ issuer: https://a.test, audiences: [api], jwks: {ja} }}
  - name: second
    jwt: {{ issuer: https://b.test, audiences: [api], jwks: {jb} }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [first, second]
"#,
        ja = jwks_of(&[&a]),
        jb = jwks_of(&[&b]),
    );
    let ward = start(&yaml).await;
    let provider_of = |r: &CheckResponse| match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == "x-auth-provider")
            .map(|h| h.value.clone()),
        _ => None,
    };
    let r = ward
        .check("/api", Some(&token(&a, "https://a.test", "x", 60)))
        .await;
    assert_eq!(provider_of(&r).as_deref(), Some("first"));
    let r = ward
        .check("/api", Some(&token(&b, "https://b.test", "y", 60)))
        .await;
    assert_eq!(provider_of(&r).as_deref(), Some("second"));
    // An issuer no provider of the route trusts: refused.
    let r = ward
        .check("/api", Some(&token(&b, "https://c.test", "z", 60)))
        .await;
    assert_eq!(outcome(&r).2, "invalid_token");
    // Right issuer, wrong key (b's issuer, a's key): refused.
    let r = ward
        .check("/api", Some(&token(&a, "https://b.test", "z", 60)))
        .await;
    assert_eq!(outcome(&r).2, "invalid_token");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_check_finish() {
    let k = key(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    // The only fetch takes 600ms: a check arriving now waits on it.
    idp.set_delay(Duration::from_millis(600));
    let mut ward = start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "timeout: 3s",
    ))
    .await;
    let mut client = ward.client().await;
    let t = token(&k, ISS, "inflight", 60);
    let in_flight = tokio::spawn(async move {
        let mut headers = HashMap::new();
        headers.insert("authorization".to_string(), format!("Bearer {t}"));
        let req = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: "/api/x".into(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        client.check(req).await
    });
    // Shut down while that check waits for keys.
    let deadline = Instant::now() + Duration::from_secs(5);
    while idp.jwks_hits() == 0 {
        assert!(Instant::now() < deadline, "the fetch never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = ward.stop.take().expect("stop").send(());
    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight check is answered, not cut");
    assert_eq!(
        outcome(&answer.into_inner()),
        (0, 200, "ok".into(), Some("inflight".into()))
    );
    let stopped = tokio::time::timeout(Duration::from_secs(5), ward.done.take().expect("handle"))
        .await
        .expect("run returns within the grace period");
    assert!(stopped.expect("join").is_ok());
}
