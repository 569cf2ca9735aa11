//! ward embedded as a tower layer: the same decisions with no network hop.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use tower::ServiceExt;
use ward::authn::Identity;
use ward::authn::jwt::Alg;

use common::{TestKey, Ward, now};

/// The config of one HS256 provider `local` trusting `key`, and `routes` (YAML items).
fn config(key: &TestKey, routes: &str) -> ward::Config {
    let yaml = format!(
        "providers:\n  - name: local\n    jwt: {{ issuer: https://local.test, audiences: [svc], algorithms: [HS256], jwks: {} }}\nroutes:\n{routes}",
        key.jwks()
    );
    Ward::builder(&yaml)
        .load()
        .unwrap_or_else(|e| panic!("config does not load:\n{e}"))
}

/// A policy of `config(key, routes)`, as a service embedding ward makes it.
fn policy(key: &TestKey, routes: &str) -> ward::Ward {
    ward::Ward::new(config(key, routes)).expect("the policy starts")
}

fn app() -> (Router, TestKey) {
    let key = TestKey::generate(Alg::HS256);
    let policy = policy(
        &key,
        r#"
  - name: health
    match: { path: /healthz }
    allow_anonymous: true
  - name: orders
    match: { path_prefix: /orders }
    providers: [local]
    require: { roles_any: [reader] }
"#,
    );
    let router = Router::new()
        .route(
            "/healthz",
            get(|req: Request<Body>| async move { headers_seen(&req) }),
        )
        .route(
            "/orders",
            get(
                |Extension(id): Extension<Arc<Identity>>, req: Request<Body>| async move {
                    format!(
                        "{}|{}",
                        id.subject.clone().unwrap_or_default(),
                        headers_seen(&req)
                    )
                },
            ),
        )
        .layer(policy.layer());
    (router, key)
}

/// The x-auth-* headers the handler received, sorted.
fn headers_seen(req: &Request<Body>) -> String {
    let mut seen: Vec<String> = req
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-auth-"))
        .map(|(n, v)| format!("{}={}", n, v.to_str().unwrap_or("?")))
        .collect();
    seen.sort();
    seen.join(",")
}

async fn body(r: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf8")
}

fn token(key: &TestKey, roles: &[&str]) -> String {
    key.sign(&serde_json::json!({"iss": "https://local.test", "aud": "svc", "sub": "alice", "exp": now() + 60, "roles": roles}))
}

#[tokio::test]
async fn allowed_requests_carry_identity_and_lose_spoofed_headers() {
    let (app, key) = app();
    let req = Request::get("/orders")
        .header(
            "authorization",
            format!("Bearer {}", token(&key, &["reader"])),
        )
        .header("x-auth-subject", "mallory")
        .header("x-auth-scopes", "admin:all")
        .body(Body::empty())
        .expect("request");
    let r = app.oneshot(req).await.expect("response");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body(r).await,
        "alice|x-auth-issuer=https://local.test,x-auth-provider=local,x-auth-roles=reader,x-auth-subject=alice"
    );
}

#[tokio::test]
async fn denials_are_answered_in_process() {
    let (app, key) = app();
    let r = app
        .clone()
        .oneshot(Request::get("/orders").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="ward""#);
    assert!(body(r).await.contains(r#""error":"missing_credential""#));

    let req = Request::get("/orders")
        .header(
            "authorization",
            format!("Bearer {}", token(&key, &["guest"])),
        )
        .header("x-request-id", "req-7")
        .body(Body::empty())
        .expect("req");
    let r = app.clone().oneshot(req).await.expect("resp");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let b = body(r).await;
    assert!(
        b.contains(r#""error":"forbidden""#) && b.contains(r#""request_id":"req-7""#),
        "{b}"
    );

    let r = app
        .oneshot(Request::get("/nowhere").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn anonymous_routes_strip_identity_headers() {
    let (app, _) = app();
    let req = Request::get("/healthz")
        .header("x-auth-roles", "admin")
        .body(Body::empty())
        .expect("req");
    let r = app.oneshot(req).await.expect("resp");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, "", "no identity header reaches the handler");
}

/// A `tracing` writer into a shared buffer, to read the log lines a test produced.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every JSON log line of this test binary. The subscriber is the global default: a
/// thread-scoped one can miss events whose callsite another test thread registered first.
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

#[tokio::test]
async fn decisions_are_counted_and_logged_as_the_server_does() {
    // Shadow mode is only useful if its would-be denials show up somewhere.
    let policy = policy(
        &TestKey::generate(Alg::HS256),
        r#"
  - name: trial
    match: { path_prefix: /trial }
    providers: [local]
    mode: shadow
  - name: orders
    match: { path_prefix: /orders }
    providers: [local]
"#,
    );
    let app = Router::new()
        .route("/trial", get(|| async { "trial" }))
        .route("/orders", get(|| async { "orders" }))
        .layer(policy.layer());
    let logs = captured_logs();
    for (path, status) in [
        ("/trial", StatusCode::OK),
        ("/orders", StatusCode::UNAUTHORIZED),
    ] {
        let req = Request::get(path)
            .header("x-request-id", format!("req{path}"))
            .body(Body::empty())
            .expect("req");
        let r = app.clone().oneshot(req).await.expect("resp");
        assert_eq!(r.status(), status, "{path}");
    }
    let logs = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf8");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON log line"))
        .filter(|l| {
            let id = l["fields"]["request_id"].as_str().unwrap_or("");
            id == "req/trial" || id == "req/orders"
        })
        .collect();
    let fields = |i: usize, k: &str| lines[i]["fields"][k].as_str().unwrap_or("").to_string();
    assert_eq!(lines.len(), 2, "{logs}");
    assert_eq!(
        (
            fields(0, "decision"),
            fields(0, "route"),
            fields(0, "request_id")
        ),
        ("shadow_deny".into(), "trial".into(), "req/trial".into())
    );
    assert_eq!(
        (fields(1, "decision"), fields(1, "reason")),
        ("deny".into(), "missing_credential".into())
    );
    let m = policy.metrics().render();
    for series in [
        r#"ward_check_requests_total{decision="shadow_deny",provider="none",reason="missing_credential",route="trial"} 1"#,
        r#"ward_check_requests_total{decision="deny",provider="none",reason="missing_credential",route="orders"} 1"#,
    ] {
        assert!(m.contains(series), "{series} not in\n{m}");
    }
}

#[tokio::test]
async fn the_layer_follows_reloads_of_its_policy() {
    // An embedded ward must be able to change its policy without rebuilding the service.
    let key = TestKey::generate(Alg::HS256);
    let open =
        "  - name: reports\n    match: { path_prefix: /reports }\n    allow_anonymous: true\n";
    let closed =
        "  - name: reports\n    match: { path_prefix: /reports }\n    providers: [local]\n";
    let policy = policy(&key, open);
    let app = Router::new()
        .route("/reports", get(|| async { "reports" }))
        .layer(policy.layer());
    let status = |app: Router| async move {
        let req = Request::get("/reports").body(Body::empty()).expect("req");
        app.oneshot(req).await.expect("resp").status()
    };
    assert_eq!(status(app.clone()).await, StatusCode::OK);
    policy
        .replace(config(&key, closed))
        .expect("the new policy is valid");
    assert_eq!(status(app.clone()).await, StatusCode::UNAUTHORIZED);
    policy.replace(config(&key, open)).expect("valid");
    assert_eq!(status(app).await, StatusCode::OK);
}

#[tokio::test]
async fn a_policy_not_loaded_from_a_file_cannot_reload_one() {
    // `reload` rereads the file a policy came from; one built from a `Config` has none,
    // and says so instead of keeping silent.
    let policy = policy(
        &TestKey::generate(Alg::HS256),
        "  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n",
    );
    assert!(policy.config_file().is_none());
    let err = policy.reload().expect_err("no file to reload");
    assert!(matches!(err, ward::ReloadError::NoFile), "{err}");
    assert_eq!(err.to_string(), "this policy was not loaded from a file");
}
