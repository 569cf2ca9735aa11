//! RFC 7662 introspection through ward's gRPC API, against a real introspection
//! endpoint on 127.0.0.1: identity mapping, client authentication, caching (hits
//! counted), the exp bound, single flight, every endpoint fault, the circuit breaker,
//! metrics, and config validation of the new keys.

mod common;
mod introspect_server;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use serde_json::json;

use common::{Req, Shape, Ward, closed_port, metric, now};
use introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect, Reply};
use ward::authn::TokenError;
use ward::authn::claims::Part;

/// A config with one introspection provider `partners` on `/api`; `extra` is appended
/// to the provider's settings (indented by 6). Unless `extra` says otherwise it takes
/// any audience and a 500 ms timeout, and its breaker opens only after 50 failures.
fn config(ep: &Introspect, extra: &str) -> String {
    let defaults = [
        ("audiences:", "audiences: any"),
        ("timeout:", "timeout: 500ms"),
        (
            "circuit_breaker:",
            "circuit_breaker: { failures: 50, cool_down: 5s }",
        ),
    ];
    let mut settings = String::new();
    for (key, line) in defaults {
        if !extra.contains(key) {
            settings.push_str(&format!("      {line}\n"));
        }
    }
    for l in extra.lines().filter(|l| !l.trim().is_empty()) {
        settings.push_str(&format!("      {}\n", l.trim()));
    }
    format!(
        r#"
providers:
  - name: partners
    introspection:
      endpoint: {url}
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
{settings}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [partners]
"#,
        url = ep.url()
    )
}

async fn start(yaml: &str) -> Ward {
    Ward::builder(yaml)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await
}

/// `GET /api/x` with `Authorization: Bearer <token>`.
fn with_token(token: &str) -> CheckRequest {
    Req::get("/api/x").bearer(token).to_map()
}

fn active(sub: &str, ttl: u64) -> serde_json::Value {
    json!({"active": true, "sub": sub, "scope": "orders:read orders:write", "exp": now() + ttl})
}

const OK: (i32, u16, &str) = (0, 200, "ok");
const UNAVAILABLE: (i32, u16, &str) = (14, 503, "authn_unavailable");
const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");

// === identity and client authentication ===

#[tokio::test]
async fn active_token_maps_the_identity() {
    let ep = Introspect::start().await;
    ep.set_token(
        "opaque-alice",
        json!({
            "active": true, "sub": "alice", "username": "alice@example.com",
            "client_id": "partner-app", "scope": "orders:read orders:write",
            "iss": "https://idp.test", "aud": ["orders-api"], "exp": now() + 300,
            "realm_access": {"roles": ["orders-reader", "auditor"]}, "tenant": "acme"
        }),
    );
    let ward = start(&config(
        &ep,
        "claims: { roles: realm_access.roles }
         headers: { client_id: x-auth-client, username: x-auth-username }",
    ))
    .await;
    let r = ward
        .summary(Req::get("/api/orders").bearer("opaque-alice").to_map())
        .await;
    assert_eq!(r.short(), OK, "{r:?}");
    assert_eq!(r.subject(), Some("alice"));
    assert_eq!(r.header("x-auth-issuer"), Some("https://idp.test"));
    assert_eq!(r.header("x-auth-provider"), Some("partners"));
    assert_eq!(r.header("x-auth-roles"), Some("orders-reader,auditor"));
    assert_eq!(r.header("x-auth-scopes"), Some("orders:read orders:write"));
    assert_eq!(r.header("x-auth-client"), Some("partner-app"));
    assert_eq!(r.header("x-auth-username"), Some("alice@example.com"));

    // client_secret_basic (the default): credentials form-encoded in Basic, the token
    // and its hint in the form body, no secret in the body.
    let seen = ep.last().expect("a request");
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        seen.authorization
            .as_deref()
            .unwrap_or("")
            .starts_with("Basic ")
    );
    assert_eq!(
        seen.form.get("token").map(String::as_str),
        Some("opaque-alice")
    );
    assert_eq!(
        seen.form.get("token_type_hint").map(String::as_str),
        Some("access_token")
    );
    assert!(!seen.form.contains_key("client_secret"));
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_body() {
    let ep = Introspect::start().await;
    ep.set_token("t1", active("bob", 300));
    let ward = start(&config(&ep, "auth_method: client_secret_post")).await;
    let r = ward.summary(with_token("t1")).await;
    assert_eq!(r.short(), OK, "{r:?}");
    let seen = ep.last().expect("a request");
    assert_eq!(seen.authorization, None);
    assert_eq!(
        seen.form.get("client_id").map(String::as_str),
        Some(CLIENT_ID)
    );
    assert_eq!(
        seen.form.get("client_secret").map(String::as_str),
        Some(CLIENT_SECRET)
    );
}

#[tokio::test]
async fn rules_see_introspected_claims() {
    let ep = Introspect::start().await;
    ep.set_token("reader", active("r", 300));
    ep.set_token(
        "writer-only",
        json!({"active": true, "sub": "w", "scope": "orders:write", "exp": now() + 300}),
    );
    let yaml = config(&ep, "").replace(
        "providers: [partners]",
        "providers: [partners]\n    require: { scopes_any: [orders:read] }",
    );
    let ward = start(&yaml).await;
    assert_eq!(ward.summary(with_token("reader")).await.short(), OK);
    let r = ward.summary(with_token("writer-only")).await;
    assert_eq!(r.short(), (7, 403, "forbidden"));
}

#[tokio::test]
async fn issuer_and_audiences_are_checked() {
    let ep = Introspect::start().await;
    let base = |iss: &str, aud: serde_json::Value| json!({"active": true, "sub": "s", "iss": iss, "aud": aud, "exp": now() + 300});
    ep.set_token("good", base("https://idp.test", json!("orders-api")));
    ep.set_token(
        "good-list",
        base("https://idp.test", json!(["x", "orders-api"])),
    );
    ep.set_token("other-iss", base("https://evil.test", json!("orders-api")));
    ep.set_token("other-aud", base("https://idp.test", json!(["billing"])));
    ep.set_token(
        "no-aud",
        json!({"active": true, "sub": "s", "iss": "https://idp.test"}),
    );
    let ward = start(&config(
        &ep,
        "issuer: https://idp.test
         audiences: [orders-api]",
    ))
    .await;
    for (tok, want, detail) in [
        ("good", OK, ""),
        ("good-list", OK, ""),
        ("other-iss", INVALID, "issuer not accepted"),
        ("other-aud", INVALID, "audience not accepted"),
        ("no-aud", INVALID, "audience not accepted"),
    ] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!((r.short(), r.detail.as_str()), (want, detail), "{tok}");
    }
}

#[tokio::test]
async fn inactive_tokens_are_401_and_cached_briefly() {
    let ep = Introspect::start().await;
    let ward = start(&config(&ep, "negative_cache_ttl: 1s")).await;
    for _ in 0..3 {
        let r = ward.summary(with_token("revoked")).await;
        assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    }
    assert_eq!(ep.hits(), 1, "a refusal is cached for negative_cache_ttl");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ep.set_token("revoked", active("back", 300));
    let r = ward.summary(with_token("revoked")).await;
    assert_eq!(r.short(), OK, "asked again once negative_cache_ttl passed");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn an_active_answer_past_its_exp_is_refused() {
    let ep = Introspect::start().await;
    ep.set_token(
        "stale",
        json!({"active": true, "sub": "s", "exp": now() - 60}),
    );
    ep.set_token(
        "bad-exp",
        json!({"active": true, "sub": "s", "exp": "soon"}),
    );
    let ward = start(&config(&ep, "")).await;
    let r = ward.summary(with_token("stale")).await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token expired"));
    let r = ward.summary(with_token("bad-exp")).await;
    assert_eq!(
        (r.short(), r.detail.as_str()),
        (INVALID, "claim `exp` has the wrong type")
    );
}

// === caching ===

#[tokio::test]
async fn answers_are_cached_for_cache_ttl() {
    let ep = Introspect::start().await;
    ep.set_token("t-exp", active("with-exp", 3600));
    ep.set_token("t-noexp", json!({"active": true, "sub": "no-exp"}));
    let ward = start(&config(&ep, "cache_ttl: 1s")).await;
    for _ in 0..5 {
        assert_eq!(ward.summary(with_token("t-exp")).await.short(), OK);
        let r = ward.summary(with_token("t-noexp")).await;
        assert_eq!(r.subject(), Some("no-exp"));
    }
    assert_eq!((ep.hits_for("t-exp"), ep.hits_for("t-noexp")), (1, 1));
    let hits = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "partners"), ("result", "hit")],
        )
        .await;
    assert_eq!(hits, Some(8.0));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    ward.summary(with_token("t-exp")).await;
    ward.summary(with_token("t-noexp")).await;
    assert_eq!(
        (ep.hits_for("t-exp"), ep.hits_for("t-noexp")),
        (2, 2),
        "cache_ttl bounds both, with or without exp"
    );
}

#[tokio::test]
async fn the_cache_never_outlives_exp() {
    let ep = Introspect::start().await;
    let exp = now() + 2;
    ep.set_token("short", json!({"active": true, "sub": "s", "exp": exp}));
    let ward = start(&config(&ep, "cache_ttl: 1h")).await;
    assert_eq!(ward.summary(with_token("short")).await.short(), OK);
    assert_eq!(ward.summary(with_token("short")).await.short(), OK);
    assert_eq!(ep.hits(), 1);
    // After exp the IdP has expired it too.
    ep.set_token("short", json!({"active": false}));
    while now() < exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = ward.summary(with_token("short")).await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    assert_eq!(
        ep.hits(),
        2,
        "re-introspected once exp passed, despite cache_ttl: 1h"
    );
}

#[tokio::test]
async fn a_never_expiring_answer_is_still_asked_again_after_cache_ttl() {
    // `Long.MAX_VALUE` ("never") and a number beyond any clock: cached for cache_ttl
    // only, so a revocation is seen; and the check that caches them must not crash.
    let ep = Introspect::start().await;
    ep.set_token(
        "forever",
        json!({"active": true, "sub": "s", "exp": i64::MAX}),
    );
    ep.set_token("huge", json!({"active": true, "sub": "s", "exp": 1e300}));
    let ward = start(&config(&ep, "cache_ttl: 1s")).await;
    for t in ["forever", "huge"] {
        for _ in 0..2 {
            let r = ward
                .try_check(with_token(t))
                .await
                .expect("an answer, not a reset");
            assert_eq!(common::summary(&r).short(), OK, "{t}");
        }
        assert_eq!(ep.hits_for(t), 1, "{t} cached");
        ep.set_token(t, json!({"active": false}));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for t in ["forever", "huge"] {
        let r = ward.summary(with_token(t)).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "token inactive"),
            "{t}"
        );
        assert_eq!(ep.hits_for(t), 2, "{t} asked again once cache_ttl passed");
    }
}

#[tokio::test]
async fn a_reload_keeps_the_answers_of_an_unchanged_provider() {
    let ep = Introspect::start().await;
    ep.set_token("t", active("alice", 3600));
    let v1 = config(&ep, "cache_ttl: 60s");
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", &v1)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await;
    assert_eq!(ward.summary(with_token("t")).await.short(), OK);

    // Another route, the same provider: the cached answer still serves.
    let more_routes = format!(
        "{v1}  - name: health\n    match: {{ path: /healthz }}\n    allow_anonymous: true\n"
    );
    std::fs::write(ward.config_file(), &more_routes).expect("rewrite");
    ward.reload().expect("reload");
    assert_eq!(
        route_of_health(&ward).await,
        "health",
        "the new config serves"
    );
    assert_eq!(ward.summary(with_token("t")).await.short(), OK);
    assert_eq!(ep.hits_for("t"), 1, "the unchanged provider kept its cache");

    // A changed provider starts afresh: its answers were made under other settings.
    std::fs::write(ward.config_file(), config(&ep, "cache_ttl: 30s")).expect("rewrite");
    ward.reload().expect("reload");
    assert_eq!(ward.summary(with_token("t")).await.short(), OK);
    assert_eq!(ep.hits_for("t"), 2, "a changed provider asked again");
}

async fn route_of_health(ward: &Ward) -> String {
    let r = ward.check(common::Req::get("/healthz").to_map()).await;
    common::route_of(&r).unwrap_or_default()
}

#[tokio::test]
async fn concurrent_checks_of_one_token_share_one_call() {
    let ep = Introspect::start().await;
    ep.set_token("hot", active("hot", 300));
    ep.set_delay(Duration::from_millis(300));
    let ward = std::sync::Arc::new(start(&config(&ep, "")).await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let w = ward.clone();
        tasks.push(tokio::spawn(
            async move { w.summary(with_token("hot")).await },
        ));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!((r.short(), r.subject()), (OK, Some("hot")));
    }
    assert_eq!(ep.hits(), 1, "50 concurrent checks, one introspection call");
}

// === endpoint faults ===

/// Checks `tok` against an endpoint answering `reply` and expects a fast 503; then
/// the endpoint recovers and the next check is answered (failures are never cached).
async fn expect_unavailable(reply: Reply, label: &str) {
    let ep = Introspect::start().await;
    ep.set_token("t", active("s", 300));
    ep.set_reply(reply.clone());
    let ward = start(&config(&ep, "")).await;
    let t0 = Instant::now();
    let r = ward.summary(with_token("t")).await;
    assert_eq!(r.short(), UNAVAILABLE, "{reply:?}");
    assert_eq!(r.detail, "identity provider unavailable");
    assert!(t0.elapsed() < Duration::from_secs(2), "{reply:?}");
    let series = [("provider", "partners"), ("result", label)];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(1.0),
        "{reply:?}"
    );

    ep.set_reply(Reply::Table);
    let r = ward.summary(with_token("t")).await;
    assert_eq!(r.short(), OK, "a failure is not cached ({reply:?})");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn endpoint_error_status_is_503() {
    expect_unavailable(Reply::Status(500), "http_status").await;
    expect_unavailable(Reply::Status(401), "http_status").await;
}

#[tokio::test]
async fn non_json_answer_is_503() {
    expect_unavailable(Reply::Raw(b"<html>oops</html>".to_vec()), "not_json").await;
    expect_unavailable(Reply::Raw(b"[true]".to_vec()), "not_json").await;
    // A duplicate member is a parser differential waiting to happen: not accepted.
    expect_unavailable(
        Reply::Raw(br#"{"active":false,"active":true,"sub":"x"}"#.to_vec()),
        "not_json",
    )
    .await;
}

#[tokio::test]
async fn missing_or_non_boolean_active_is_401() {
    // RFC 7662 §2.2: `active` is a boolean; an answer without one authorizes nothing.
    for body in [r#"{"sub":"alice"}"#, r#"{"active":"true"}"#] {
        let ep = Introspect::start().await;
        ep.set_reply(Reply::Raw(body.as_bytes().to_vec()));
        let ward = start(&config(&ep, "")).await;
        let r = ward.summary(with_token("t")).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "claim `active` has the wrong type"),
            "{body}"
        );
        let series = [("provider", "partners"), ("result", "invalid")];
        assert_eq!(
            ward.metric("ward_introspection_requests_total", &series)
                .await,
            Some(1.0),
            "{body}"
        );
    }
}

#[tokio::test]
async fn huge_bodies_are_capped() {
    let two_mib = 2 * 1024 * 1024;
    expect_unavailable(Reply::Huge(two_mib), "too_large").await;
    expect_unavailable(Reply::HugeChunked(two_mib), "too_large").await;
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let ep = Introspect::start().await;
    ep.set_token("t", active("s", 300));
    ep.set_delay(Duration::from_secs(5));
    let ward = start(&config(&ep, "timeout: 300ms")).await;
    let t0 = Instant::now();
    let r = ward.summary(with_token("t")).await;
    let took = t0.elapsed();
    assert_eq!(r.short(), UNAVAILABLE);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    let series = [("provider", "partners"), ("result", "timeout")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(1.0)
    );
    assert_eq!(
        ward.metric(
            "ward_introspection_duration_seconds_count",
            &[("provider", "partners")]
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_503_at_once() {
    let closed = closed_port();
    let yaml = format!(
        r#"
providers:
  - name: partners
    introspection:
      endpoint: http://{closed}/introspect
      client_id: ward
      client_secret: x
      audiences: any
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [partners]
"#
    );
    let ward = start(&yaml).await;
    let t0 = Instant::now();
    let r = ward.summary(with_token("t")).await;
    assert_eq!(r.short(), UNAVAILABLE);
    assert!(t0.elapsed() < Duration::from_secs(1));
    let series = [("provider", "partners"), ("result", "unreachable")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn an_endpoint_going_away_keeps_cached_answers() {
    let ep = Introspect::start().await;
    ep.set_token("known", active("known", 300));
    let ward = start(&config(&ep, "")).await;
    assert_eq!(ward.summary(with_token("known")).await.short(), OK);
    ep.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ward.summary(with_token("known")).await.short(),
        OK,
        "cached identities keep serving"
    );
    assert_eq!(
        ward.summary(with_token("unknown")).await.short(),
        UNAVAILABLE,
        "nothing cached: 503"
    );
}

#[tokio::test]
async fn the_circuit_breaker_opens_then_recovers() {
    let ep = Introspect::start().await;
    ep.set_reply(Reply::Status(503));
    let ward = start(&config(
        &ep,
        "circuit_breaker: { failures: 3, cool_down: 1s }",
    ))
    .await;
    for i in 0..3 {
        let r = ward.summary(with_token(&format!("t{i}"))).await;
        assert_eq!(r.short(), UNAVAILABLE);
    }
    assert_eq!(ep.hits(), 3);
    // Open: answered at once, the endpoint is not called.
    let t0 = Instant::now();
    for i in 3..10 {
        let r = ward.summary(with_token(&format!("t{i}"))).await;
        assert_eq!(r.short(), UNAVAILABLE);
    }
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert_eq!(ep.hits(), 3, "an open breaker makes no calls");
    let open = [("provider", "partners"), ("result", "circuit_open")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &open)
            .await,
        Some(7.0)
    );

    // After the cool-down one probe goes through; it fails, so the breaker reopens.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ward.summary(with_token("p1")).await.short(), UNAVAILABLE);
    assert_eq!(ep.hits(), 4);
    assert_eq!(ward.summary(with_token("p2")).await.short(), UNAVAILABLE);
    assert_eq!(ep.hits(), 4, "reopened by the failed probe");

    // The endpoint recovers: the next probe succeeds and closes the breaker.
    ep.set_reply(Reply::Table);
    ep.set_token("p3", active("p3", 300));
    ep.set_token("p4", active("p4", 300));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ward.summary(with_token("p3")).await.short(), OK);
    assert_eq!(ward.summary(with_token("p4")).await.short(), OK);
    assert_eq!(
        ep.hits(),
        6,
        "closed again: every new token is introspected"
    );
}

// === bad input ===

#[tokio::test]
async fn malformed_tokens_never_reach_the_endpoint() {
    let ep = Introspect::start().await;
    let ward = start(&config(&ep, "max_token_bytes: 64")).await;
    let cases: Vec<(Req, Shape, &str)> = vec![
        (
            Req::get("/api/x").bearer(" padded"),
            Shape::Map,
            "malformed token",
        ),
        (
            Req::get("/api/x").header("authorization", "Bearer a b"),
            Shape::Raw,
            "malformed token",
        ),
        (
            Req::get("/api/x").header("authorization", "Bearer t\u{e9}"),
            Shape::Raw,
            "malformed token",
        ),
        (
            Req::get("/api/x").raw_header("authorization", b"Bearer t\xff"),
            Shape::Raw,
            "malformed token",
        ),
        (
            Req::get("/api/x").bearer(&"a".repeat(65)),
            Shape::Map,
            "token too large",
        ),
        (
            Req::get("/api/x").bearer("a").bearer("b"),
            Shape::Map,
            "more than one credential in the request",
        ),
        (
            Req::get("/api/x").bearer("a").bearer("b"),
            Shape::Raw,
            "more than one credential in the request",
        ),
    ];
    for (req, shape, detail) in cases {
        let r = ward.summary(req.build(shape)).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, detail),
            "{shape:?} {:?}",
            req.headers
        );
    }
    assert_eq!(ep.hits(), 0);
    let r = ward.summary(Req::get("/api/x").to_map()).await;
    assert_eq!(r.short(), (16, 401, "missing_credential"));
}

#[tokio::test]
async fn the_client_secret_is_never_printed() {
    let ep = Introspect::start().await;
    let config = Ward::builder(&config(&ep, ""))
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .load()
        .expect("config");
    let debug = format!("{config:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");
}

#[tokio::test]
async fn introspection_metrics_are_exported() {
    let ep = Introspect::start().await;
    ep.set_token("a", active("a", 300));
    let ward = start(&config(&ep, "")).await;
    ward.summary(with_token("a")).await;
    ward.summary(with_token("nope")).await;
    let m = ward.metrics().await;
    for (name, labels, want) in [
        (
            "ward_introspection_requests_total",
            &[("provider", "partners"), ("result", "active")][..],
            1.0,
        ),
        (
            "ward_introspection_requests_total",
            &[("provider", "partners"), ("result", "inactive")],
            1.0,
        ),
        (
            "ward_introspection_duration_seconds_count",
            &[("provider", "partners")],
            2.0,
        ),
    ] {
        assert_eq!(
            metric(&m, name, labels),
            Some(want),
            "{name}{labels:?} in\n{m}"
        );
    }
}

// === config validation ===

fn errors(yaml: &str) -> String {
    Ward::builder(yaml).config_error()
}

const ROUTES: &str = r#"
routes:
  - name: api
    match: { path_prefix: /api }
    providers: [p]
"#;

fn provider(body: &str) -> String {
    format!("providers:\n  - name: p\n{body}{ROUTES}")
}

#[test]
fn introspection_requires_endpoint_and_client() {
    let e = errors(&provider(
        "    introspection:\n      client_id: ward\n      client_secret: x\n      audiences: any\n",
    ));
    assert_eq!(
        e,
        "line 3: providers[0].introspection: give exactly one of `endpoint` and `discovery: true`"
    );
}

#[test]
fn introspection_values_are_checked_with_path_and_line() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: idp.example.com/introspect
      client_id: ""
      client_secret: ""
      auth_method: private_key_jwt
"#,
    ));
    assert_eq!(
        e,
        "line 7: providers[0].introspection.auth_method: unknown variant `private_key_jwt`, expected `client_secret_basic` or `client_secret_post`"
    );
    let e = errors(&provider(
        r#"    introspection:
      endpoint: idp.example.com/introspect
      client_id: ""
      client_secret: ""
      timeout: 0s
      audiences: [""]
      issuer: ""
      circuit_breaker: { failures: 0, cool_down: 0s }
      headers: { email: x-auth-subject }
"#,
    ));
    let want = [
        "line 4: providers[0].introspection.endpoint: `idp.example.com/introspect` is not an http(s) URL",
        "line 5: providers[0].introspection.client_id: must not be empty",
        "line 6: providers[0].introspection.client_secret: must not be empty (set it from the environment: `${WARD_INTROSPECTION_SECRET}`)",
        "line 7: providers[0].introspection.timeout: must be greater than 0",
        "line 8: providers[0].introspection.audiences: an audience must not be empty",
        "line 9: providers[0].introspection.issuer: must not be empty: leave it out to accept any `iss`",
        "line 10: providers[0].introspection.circuit_breaker.failures: must be at least 1",
        "line 10: providers[0].introspection.circuit_breaker.cool_down: must be greater than 0",
    ];
    assert_eq!(e, want.join("\n"));
}

#[test]
fn introspection_claim_headers_cannot_shadow_identity_headers() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: x
      audiences: any
      headers: { email: x-auth-subject }
"#,
    ));
    assert_eq!(
        e,
        "line 8: providers[0].introspection.headers: `x-auth-subject` is already used by identity_headers.subject"
    );
}

#[test]
fn unknown_introspection_keys_are_errors() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      secret: x
"#,
    ));
    assert!(
        e.starts_with("line 6: providers[0].introspection.secret: unknown field `secret`"),
        "{e}"
    );
}

#[test]
fn an_unset_secret_variable_is_an_error_not_an_empty_secret() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: ${WARD_MISSING_SECRET}
"#,
    ));
    assert!(
        e.contains(
            "line 6: providers[0].introspection.client_secret: environment variable WARD_MISSING_SECRET is not set"
        ),
        "{e}"
    );
}

// === under pressure (SPEC §7) ===

/// Checks `tok` until it is allowed, every 20 ms; the time it took, or the last answer
/// once `within` has passed.
async fn allowed_within(ward: &Ward, tok: &str, within: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let r = ward.summary(with_token(tok)).await;
        if r.short() == OK {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() >= within {
            return Err(format!("still {:?} after {:?}", r.short(), t0.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rate_limited(retry_after: Option<&'static str>) -> Reply {
    Reply::Error {
        status: 429,
        error: "slow_down",
        retry_after,
    }
}

#[tokio::test]
async fn junk_tokens_cannot_hold_valid_users_at_503_past_5s() {
    // Unauthenticated junk against a rate-limiting authorization server (the defaults:
    // five failures open the breaker), which asks for an hour's pause.
    let ep = Introspect::start().await;
    ep.set_reply(rate_limited(Some("3600")));
    let ward = start(&config(&ep, "circuit_breaker: { failures: 5 }")).await;
    for i in 0..12 {
        let r = ward.summary(with_token(&format!("junk{i}"))).await;
        assert_eq!(r.short(), UNAVAILABLE, "junk{i}");
    }
    assert_eq!(ep.hits(), 1, "a 429 with Retry-After backs off at once");

    // The server recovers: a valid user is served again within 5 s.
    ep.set_reply(Reply::Table);
    ep.set_token("valid", active("alice", 300));
    let took = allowed_within(&ward, "valid", Duration::from_millis(5500))
        .await
        .expect("a recovered endpoint serves again within 5 s");
    assert!(took <= Duration::from_millis(5200), "after {took:?}");
    assert_eq!(
        ep.hits(),
        2,
        "one probe while backing off, and it closed the breaker"
    );
    assert_eq!(ward.summary(with_token("valid")).await.short(), OK);
}

#[tokio::test]
async fn retry_after_sooner_than_the_cool_down_is_honoured() {
    let ep = Introspect::start().await;
    ep.set_reply(rate_limited(Some("1")));
    let ward = start(&config(
        &ep,
        "circuit_breaker: { failures: 5, cool_down: 5s }",
    ))
    .await;
    assert_eq!(ward.summary(with_token("junk")).await.short(), UNAVAILABLE);
    ep.set_reply(Reply::Table);
    ep.set_token("valid", active("alice", 300));
    let r = ward.summary(with_token("valid")).await;
    assert_eq!(r.short(), UNAVAILABLE, "backing off as Retry-After asked");
    assert_eq!(ep.hits(), 1, "no call while backing off");
    let took = allowed_within(&ward, "valid", Duration::from_millis(2500))
        .await
        .expect("probed again once Retry-After passed");
    assert!(took >= Duration::from_millis(700), "after {took:?}");
}

#[tokio::test]
async fn cached_answers_serve_while_backing_off() {
    let ep = Introspect::start().await;
    ep.set_token("known", active("known", 300));
    let ward = start(&config(
        &ep,
        "circuit_breaker: { failures: 1, cool_down: 5s }",
    ))
    .await;
    assert_eq!(ward.summary(with_token("known")).await.short(), OK);
    let r = ward.summary(with_token("revoked")).await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    ep.set_reply(Reply::Status(503));
    assert_eq!(ward.summary(with_token("other")).await.short(), UNAVAILABLE);
    let hits = ep.hits();
    for _ in 0..3 {
        assert_eq!(ward.summary(with_token("known")).await.short(), OK);
        let r = ward.summary(with_token("revoked")).await;
        assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
        assert_eq!(ward.summary(with_token("other")).await.short(), UNAVAILABLE);
    }
    assert_eq!(
        ep.hits(),
        hits,
        "open: cached answers serve, no call is made"
    );
}

#[tokio::test]
async fn a_repeated_junk_token_costs_one_call() {
    // A provider that cannot introspect a token says so with an OAuth error (a JWT sent
    // to an opaque-token endpoint): an inactive token, cached like one.
    let ep = Introspect::start().await;
    ep.set_unknown(Reply::Error {
        status: 400,
        error: "unsupported_token_type",
        retry_after: None,
    });
    let ward = start(&config(&ep, "negative_cache_ttl: 10s")).await;
    for _ in 0..20 {
        let r = ward.summary(with_token("junk")).await;
        assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    }
    assert_eq!(ep.hits_for("junk"), 1, "cached for negative_cache_ttl");
}

#[tokio::test]
async fn an_oauth_error_about_the_token_is_401_and_no_outage() {
    let ep = Introspect::start().await;
    ep.set_token("valid", active("alice", 300));
    let ward = start(&config(
        &ep,
        "circuit_breaker: { failures: 2, cool_down: 5s }",
    ))
    .await;
    for (i, error) in ["unsupported_token_type", "invalid_token", "invalid_grant"]
        .into_iter()
        .cycle()
        .take(9)
        .enumerate()
    {
        ep.set_unknown(Reply::Error {
            status: 400,
            error,
            retry_after: None,
        });
        let r = ward.summary(with_token(&format!("junk{i}"))).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "token inactive"),
            "{error}"
        );
    }
    assert_eq!(ep.hits(), 9);
    let r = ward.summary(with_token("valid")).await;
    assert_eq!(r.short(), OK, "token errors never open the breaker");
    let inactive = [("provider", "partners"), ("result", "inactive")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &inactive)
            .await,
        Some(9.0)
    );

    // An error about ward's own request is the provider's (or the config's): 503.
    ep.set_unknown(Reply::Error {
        status: 400,
        error: "invalid_request",
        retry_after: None,
    });
    let r = ward.summary(with_token("junk-x")).await;
    assert_eq!(r.short(), UNAVAILABLE);
}

// === what an answer must say (SPEC §3) ===

#[tokio::test]
async fn only_access_tokens_authorize() {
    let ep = Introspect::start().await;
    let with_type = |t: serde_json::Value| json!({"active": true, "sub": "s", "token_type": t, "exp": now() + 300});
    for (tok, t) in [
        ("refresh", json!("refresh_token")),
        ("id", json!("id_token")),
        ("at", json!("access_token")),
        ("bearer", json!("Bearer")),
        ("bearer-lower", json!("bearer")),
        ("na", json!("N_A")),
        ("numeric", json!(1)),
    ] {
        ep.set_token(tok, with_type(t));
    }
    ep.set_token("untyped", active("s", 300));
    let ward = start(&config(&ep, "")).await;
    for (tok, want, detail) in [
        ("refresh", INVALID, "token inactive"),
        ("id", INVALID, "token inactive"),
        ("numeric", INVALID, "claim `token_type` has the wrong type"),
        ("at", OK, ""),
        ("bearer", OK, ""),
        ("bearer-lower", OK, ""),
        ("na", OK, ""),
        ("untyped", OK, ""),
    ] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!((r.short(), r.detail.as_str()), (want, detail), "{tok}");
    }
}

#[tokio::test]
async fn nbf_and_exp_are_checked_with_the_leeway() {
    let ep = Introspect::start().await;
    let n = now();
    let answer = |nbf: u64, exp: u64| json!({"active": true, "sub": "s", "nbf": nbf, "exp": exp});
    ep.set_token("future", answer(n + 120, n + 300));
    ep.set_token("skewed", answer(n + 10, n + 300));
    ep.set_token("expired", answer(n - 600, n - 120));
    ep.set_token("just-expired", answer(n - 600, n - 2));
    let ward = start(&config(&ep, "leeway: 30s")).await;
    for (tok, want, detail) in [
        ("future", INVALID, "token not yet valid"),
        ("expired", INVALID, "token expired"),
        ("skewed", OK, ""),
        ("just-expired", OK, ""),
    ] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!((r.short(), r.detail.as_str()), (want, detail), "{tok}");
    }
    let ward = start(&config(&ep, "leeway: 0s")).await;
    for tok in ["skewed", "just-expired"] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!(r.short(), INVALID, "{tok} without leeway");
    }
}

#[tokio::test]
async fn fields_of_the_wrong_type_are_401() {
    // RFC 7662 §2.2 types (SPEC §3): a wrong one is never coerced, and names the field.
    let ep = Introspect::start().await;
    let exp = now() + 300;
    let cases = [
        (
            "sub-number",
            "sub",
            json!({"active": true, "sub": 42, "exp": exp}),
        ),
        (
            "client-id-number",
            "client_id",
            json!({"active": true, "sub": "s", "client_id": 7, "exp": exp}),
        ),
        (
            "username-array",
            "username",
            json!({"active": true, "sub": "s", "username": ["u"], "exp": exp}),
        ),
        (
            "iss-number",
            "iss",
            json!({"active": true, "sub": "s", "iss": 1, "exp": exp}),
        ),
        (
            "exp-string",
            "exp",
            json!({"active": true, "sub": "s", "exp": "soon"}),
        ),
        (
            "iat-string",
            "iat",
            json!({"active": true, "sub": "s", "iat": "now", "exp": exp}),
        ),
        (
            "nbf-bool",
            "nbf",
            json!({"active": true, "sub": "s", "nbf": true, "exp": exp}),
        ),
        (
            "aud-number",
            "aud",
            json!({"active": true, "sub": "s", "aud": 5, "exp": exp}),
        ),
        (
            "aud-mixed",
            "aud",
            json!({"active": true, "sub": "s", "aud": ["a", 1], "exp": exp}),
        ),
        (
            "active-string",
            "active",
            json!({"active": "true", "sub": "s", "exp": exp}),
        ),
        (
            "active-number",
            "active",
            json!({"active": 1, "sub": "s", "exp": exp}),
        ),
        ("no-active", "active", json!({"sub": "s", "exp": exp})),
    ];
    for (tok, _, answer) in &cases {
        ep.set_token(tok, answer.clone());
    }
    ep.set_token(
        "well-typed",
        json!({
            "active": true, "sub": "s", "client_id": "c", "username": "u", "iss": "i",
            "iat": 1, "nbf": 1, "aud": ["a"], "exp": exp
        }),
    );
    let ward = start(&config(&ep, "audiences: any")).await;
    for (tok, claim, _) in &cases {
        let r = ward.summary(with_token(tok)).await;
        let want = format!("claim `{claim}` has the wrong type");
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, want.as_str()),
            "{tok}"
        );
    }
    assert_eq!(ward.summary(with_token("well-typed")).await.short(), OK);
}

#[tokio::test]
async fn audiences_any_accepts_any_or_no_aud() {
    let ep = Introspect::start().await;
    let exp = now() + 300;
    ep.set_token("no-aud", json!({"active": true, "sub": "s", "exp": exp}));
    ep.set_token(
        "some-aud",
        json!({"active": true, "sub": "s", "aud": "billing", "exp": exp}),
    );
    let ward = start(&config(&ep, "audiences: any")).await;
    for tok in ["no-aud", "some-aud"] {
        assert_eq!(ward.summary(with_token(tok)).await.short(), OK, "{tok}");
    }
    let ward = start(&config(&ep, "audiences: [orders-api]")).await;
    for tok in ["no-aud", "some-aud"] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "audience not accepted"),
            "{tok}"
        );
    }
}

#[tokio::test]
async fn unrepresentable_identities_are_401() {
    let ep = Introspect::start().await;
    let exp = now() + 300;
    let cases = [
        (
            "sub-space",
            json!({"active": true, "sub": " admin", "exp": exp}),
            Part::Claim("sub"),
        ),
        (
            "sub-crlf",
            json!({"active": true, "sub": "a\r\nb", "exp": exp}),
            Part::Claim("sub"),
        ),
        (
            "role-space",
            json!({"active": true, "sub": "s", "roles": ["viewer", " admin"], "exp": exp}),
            Part::Role,
        ),
        (
            "role-comma",
            json!({"active": true, "sub": "s", "roles": ["viewer,admin"], "exp": exp}),
            Part::Role,
        ),
        (
            "scope-tab",
            json!({"active": true, "sub": "s", "scope": "read\twrite", "exp": exp}),
            Part::Scope,
        ),
        (
            "scope-control",
            json!({"active": true, "sub": "s", "scope": ["read\u{7}"], "exp": exp}),
            Part::Scope,
        ),
        (
            "client-id-space",
            json!({"active": true, "client_id": "svc ", "exp": exp}),
            Part::Claim("client_id"),
        ),
    ];
    for (tok, answer, _) in &cases {
        ep.set_token(tok, answer.clone());
    }
    ep.set_token("fine", json!({"active": true, "sub": "s", "roles": ["viewer", "admin"], "scope": "read write", "exp": exp}));
    let ward = start(&config(&ep, "subject: [sub, client_id]")).await;
    for (tok, _, part) in &cases {
        // The detail names the claim, never its value.
        let detail = TokenError::Unrepresentable(*part).to_string();
        let r = ward.summary(with_token(tok)).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, detail.as_str()),
            "{tok}"
        );
    }
    let r = ward.summary(with_token("fine")).await;
    assert_eq!(r.short(), OK);
    assert_eq!(r.header("x-auth-roles"), Some("viewer,admin"));
}

#[tokio::test]
async fn subject_claims_are_tried_in_order() {
    let ep = Introspect::start().await;
    let exp = now() + 300;
    ep.set_token(
        "client",
        json!({"active": true, "client_id": "billing-batch", "exp": exp}),
    );
    ep.set_token(
        "user",
        json!({"active": true, "sub": "alice", "client_id": "web", "exp": exp}),
    );
    ep.set_token("neither", json!({"active": true, "scope": "x", "exp": exp}));
    let ward = start(&config(&ep, "subject: [sub, client_id]")).await;
    for (tok, subject) in [
        ("client", Some("billing-batch")),
        ("user", Some("alice")),
        ("neither", None),
    ] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!((r.short(), r.subject()), (OK, subject), "{tok}");
    }
    // By default only `sub` is the subject.
    let ward = start(&config(&ep, "")).await;
    let r = ward.summary(with_token("client")).await;
    assert_eq!((r.short(), r.subject()), (OK, None));
}

/// A provider `partners` that finds its endpoint by discovery from `issuer`.
fn discovery_config(issuer: &str) -> String {
    format!(
        r#"
providers:
  - name: partners
    introspection:
      discovery: true
      issuer: {issuer}
      audiences: any
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
      timeout: 500ms
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [partners]
"#
    )
}

#[tokio::test]
async fn discovery_finds_the_introspection_endpoint() {
    let ep = Introspect::start().await;
    let answer =
        |sub: &str| json!({"active": true, "sub": sub, "iss": ep.issuer(), "exp": now() + 300});
    ep.set_token("a", answer("alice"));
    ep.set_token("b", answer("bob"));
    let ward = start(&discovery_config(&ep.issuer())).await;
    for (tok, sub) in [("a", "alice"), ("b", "bob"), ("a", "alice")] {
        let r = ward.summary(with_token(tok)).await;
        assert_eq!((r.short(), r.subject()), (OK, Some(sub)), "{tok}");
    }
    assert_eq!(ep.hits(), 2);
    assert_eq!(ep.discovery_hits(), 1, "the endpoint is discovered once");
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_not_trusted() {
    let ep = Introspect::start().await;
    ep.set_token(
        "a",
        json!({"active": true, "sub": "alice", "iss": ep.issuer(), "exp": now() + 300}),
    );
    ep.set_discovery_issuer("https://evil.test");
    let ward = start(&discovery_config(&ep.issuer())).await;
    for _ in 0..2 {
        assert_eq!(ward.summary(with_token("a")).await.short(), UNAVAILABLE);
    }
    assert_eq!(ep.hits(), 0, "the endpoint it names is never called");
    assert_eq!(ep.discovery_hits(), 2, "a failed discovery is not kept");
    let series = [("provider", "partners"), ("result", "invalid")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(2.0)
    );
}

#[test]
fn the_failure_log_names_the_oauth_error_never_the_token() {
    use common::bin::Serve;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ep = rt.block_on(Introspect::start());
    ep.set_reply(Reply::Error {
        status: 401,
        error: "invalid_client",
        retry_after: None,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, config(&ep, "audiences: any")).expect("write config");
    let mut ward = Serve::start(dir.path(), &path, &[("PARTNERS_SECRET", CLIENT_SECRET)]);
    let token = "opaque-secret-token-4711";
    rt.block_on(async {
        let mut c = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
            format!("http://{}", ward.grpc_addr),
        )
        .await
        .expect("connect");
        let r = c.check(with_token(token)).await.expect("rpc").into_inner();
        assert_eq!(common::summary(&r).short(), UNAVAILABLE);
    });
    assert!(ward.terminate().success());
    let all = ward.lines().join("\n");
    assert!(!all.contains(token), "the token is never logged:\n{all}");
    assert!(!all.contains(CLIENT_SECRET), "nor the secret:\n{all}");
    let line = ward
        .lines()
        .into_iter()
        .find(|l| l.contains("introspection") && l.contains("401"))
        .unwrap_or_else(|| panic!("no failure log:\n{all}"));
    assert!(line.contains("invalid_client"), "{line}");
}

#[test]
fn introspection_requires_audiences() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: x
"#,
    ));
    assert_eq!(
        e,
        "line 3: providers[0].introspection.audiences: list the audiences a token must name (`audiences: [orders-api]`), or write `audiences: any` for an authorization server that returns no `aud`"
    );
    for bad in ["audiences: []", "audiences: all", "audiences: 3"] {
        let e = errors(&provider(&format!(
            "    introspection:\n      endpoint: https://idp.example.com/introspect\n      client_id: ward\n      client_secret: x\n      {bad}\n"
        )));
        assert!(
            e.starts_with("line 7: providers[0].introspection.audiences: list the audiences"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn introspection_discovery_is_checked() {
    let body = |keys: &str| {
        provider(&format!(
            "    introspection:\n      client_id: ward\n      client_secret: x\n      audiences: any\n{keys}"
        ))
    };
    assert_eq!(
        errors(&body("      discovery: true\n")),
        "line 3: providers[0].introspection.issuer: `discovery: true` finds the endpoint from the issuer's OpenID configuration: set `issuer`"
    );
    assert_eq!(
        errors(&body(
            "      discovery: true\n      issuer: https://idp.test\n      endpoint: https://idp.test/introspect\n"
        )),
        "line 3: providers[0].introspection: give exactly one of `endpoint` and `discovery: true`"
    );
    assert_eq!(
        errors(&body("      issuer: https://idp.test\n")),
        "line 3: providers[0].introspection: give exactly one of `endpoint` and `discovery: true`"
    );
    assert_eq!(
        errors(&body("      discovery: true\n      issuer: idp.test\n")),
        "line 8: providers[0].introspection.issuer: `idp.test` is not an http(s) URL"
    );
}

#[test]
fn introspection_subject_and_cool_down_are_checked() {
    let body = |keys: &str| {
        provider(&format!(
            "    introspection:\n      endpoint: https://idp.test/introspect\n      client_id: ward\n      client_secret: x\n      audiences: any\n{keys}"
        ))
    };
    assert_eq!(
        errors(&body("      subject: []\n")),
        "line 8: providers[0].introspection.subject: list at least one claim, such as `[sub, client_id]`"
    );
    assert_eq!(
        errors(&body("      subject: [sub, \"a..b\"]\n")),
        "line 8: providers[0].introspection.subject[1]: `a..b` is not a claim path like `realm_access.roles`"
    );
    assert_eq!(
        errors(&body("      circuit_breaker: { cool_down: 30s }\n")),
        "line 8: providers[0].introspection.circuit_breaker.cool_down: must be at most 5s: an open breaker probes the endpoint at least every 5s, so a recovered endpoint serves again within 5s"
    );
}
