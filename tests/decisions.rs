//! `Authorization/Check` end to end, the decision itself (SPEC §4): an allow sets every
//! identity header and the dynamic metadata; the deny table (401 with or without an
//! RFC 6750 challenge, 403 forbidden or insufficient scope, 403 without a route, 400 for a
//! request without HTTP attributes), each with its JSON body and request id.

mod check_setup;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use serde_json::json;

use check_setup::{ISS, assert_invalid_token, claims, set_of, start, token, with};
use common::{
    KeyRing, Req, Shape, allowed, assert_overwrites, code, denial, describe, metadata_list,
    metadata_str, now, removed, route_of, set_header_map,
};

// === allow ===

#[tokio::test]
async fn allow_sets_every_identity_header_and_metadata() {
    let ward = start().await;
    let tok = KeyRing::shared().es256.sign(&with(
        claims("alice"),
        json!({
            "roles": ["reader", "writer"],
            "scope": "orders.read orders.write",
            "email": "alice@example.com",
        }),
    ));
    let r = ward
        .check(Req::get("/api/orders").bearer(&tok).to_map())
        .await;
    let ok = allowed(&r);
    assert_overwrites(ok);
    let want: BTreeMap<String, String> = [
        ("x-auth-subject", "alice"),
        ("x-auth-issuer", ISS),
        ("x-auth-provider", "corp"),
        ("x-auth-roles", "reader,writer"),
        ("x-auth-scopes", "orders.read orders.write"),
        ("x-auth-email", "alice@example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(set_header_map(ok), want);
    assert_eq!(removed(ok), BTreeSet::new(), "nothing owned is left unset");

    assert_eq!(metadata_str(&r, "subject").as_deref(), Some("alice"));
    assert_eq!(metadata_str(&r, "issuer").as_deref(), Some(ISS));
    assert_eq!(metadata_str(&r, "provider").as_deref(), Some("corp"));
    assert_eq!(metadata_str(&r, "route").as_deref(), Some("api"));
    assert_eq!(
        metadata_list(&r, "roles"),
        Some(vec!["reader".to_string(), "writer".to_string()])
    );
}

#[tokio::test]
async fn allow_removes_owned_headers_without_a_value() {
    let ward = start().await;
    // No scope and no email claim: those two headers are removed, the rest set.
    let tok = token(&with(claims("bob"), json!({"roles": ["reader"]})));
    let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    let ok = allowed(&r);
    assert_overwrites(ok);
    let set = set_header_map(ok);
    assert_eq!(
        set.keys().cloned().collect::<BTreeSet<_>>(),
        set_of(&[
            "x-auth-subject",
            "x-auth-issuer",
            "x-auth-provider",
            "x-auth-roles"
        ])
    );
    assert_eq!(set["x-auth-roles"], "reader");
    assert_eq!(removed(ok), set_of(&["x-auth-scopes", "x-auth-email"]));
    assert!(
        !ok.headers_to_remove.iter().any(|h| h == "authorization"),
        "strip_authorization is off by default"
    );
}

// === the deny table ===

#[tokio::test]
async fn missing_credential_is_401_with_a_bare_challenge() {
    let ward = start().await;
    for req in [
        Req::get("/api/orders"),
        // Another scheme is not this provider's credential.
        Req::get("/api/orders").header("authorization", "Basic dXNlcjpwYXNz"),
    ] {
        let r = ward.check(req.request_id("rid-1").to_map()).await;
        let d = denial(&r);
        assert_eq!(
            d.short(),
            (code::UNAUTHENTICATED, 401, "missing_credential"),
            "{}",
            describe(&r)
        );
        assert_eq!(d.www_authenticate(), Some(r#"Bearer realm="ward""#));
        d.assert_json_body();
        assert_eq!(d.request_id, "rid-1");
        assert_eq!(route_of(&r).as_deref(), Some("api"));
    }
}

#[tokio::test]
async fn invalid_token_is_401_with_an_rfc6750_challenge_and_no_token_echo() {
    let ward = start().await;
    let expired = token(&with(claims("carol"), json!({"exp": now() - 3600})));
    let r = ward.check(Req::get("/api").bearer(&expired).to_map()).await;
    assert_invalid_token(&r, Some("token expired"), "expired");
    let d = denial(&r);
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert_eq!(
        d.www_authenticate(),
        Some(r#"Bearer realm="ward", error="invalid_token", error_description="token expired""#)
    );
    let whole = format!("{r:?}");
    for part in expired.split('.') {
        assert!(!whole.contains(part), "the answer echoes part of the token");
    }
    assert!(!whole.contains("carol"), "the answer echoes the subject");
}

#[tokio::test]
async fn unmet_role_rule_is_403_forbidden() {
    let ward = start().await;
    let tok = token(&with(claims("dave"), json!({"roles": ["reader"]})));
    let r = ward
        .check(Req::get("/admin/users").bearer(&tok).to_map())
        .await;
    let d = denial(&r);
    assert_eq!(
        d.short(),
        (code::PERMISSION_DENIED, 403, "forbidden"),
        "{}",
        describe(&r)
    );
    assert!(
        !d.www_authenticate()
            .unwrap_or_default()
            .contains("insufficient_scope"),
        "a role rule is not a scope rule: {:?}",
        d.www_authenticate()
    );
    d.assert_json_body();
    assert_eq!(route_of(&r).as_deref(), Some("admin"));

    let admin = token(&with(claims("erin"), json!({"roles": ["admin"]})));
    let r = ward
        .check(Req::get("/admin/users").bearer(&admin).to_map())
        .await;
    assert_eq!(set_header_map(allowed(&r))["x-auth-subject"], "erin");
}

#[tokio::test]
async fn unmet_scope_rule_is_403_insufficient_scope() {
    let ward = start().await;
    let tok = token(&with(claims("frank"), json!({"scope": "orders.read"})));
    let r = ward.check(Req::get("/scoped").bearer(&tok).to_map()).await;
    let d = denial(&r);
    assert_eq!(
        d.short(),
        (code::PERMISSION_DENIED, 403, "forbidden"),
        "{}",
        describe(&r)
    );
    d.assert_json_body();
    let challenge = d
        .www_authenticate()
        .expect("a scope failure carries a challenge");
    assert!(
        challenge.starts_with(r#"Bearer realm="ward""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );

    let tok = token(&with(
        claims("frank"),
        json!({"scope": "orders.read orders.write"}),
    ));
    allowed(&ward.check(Req::get("/scoped").bearer(&tok).to_map()).await);
}

#[tokio::test]
async fn no_route_is_403() {
    let ward = start().await;
    for path in ["/nothing", "/publicity", "/", "/apix"] {
        let r = ward.check(Req::get(path).to_map()).await;
        let d = denial(&r);
        assert_eq!(
            d.short(),
            (code::PERMISSION_DENIED, 403, "no_route"),
            "{path}: {}",
            describe(&r)
        );
        d.assert_json_body();
    }
}

#[tokio::test]
async fn request_id_is_x_request_id_else_envoy_stream_id() {
    let ward = start().await;
    for shape in Shape::BOTH {
        let r = ward
            .check(
                Req::get("/api")
                    .request_id("7f9c-req")
                    .stream_id("99")
                    .build(shape),
            )
            .await;
        assert_eq!(denial(&r).request_id, "7f9c-req", "{shape:?}");
        let r = ward
            .check(Req::get("/api").stream_id("1234567").build(shape))
            .await;
        assert_eq!(
            denial(&r).request_id,
            "1234567",
            "{shape:?}: falls back to http.id"
        );
    }
}

#[tokio::test]
async fn request_without_http_attributes_is_400_not_a_crash() {
    let ward = start().await;
    let shapes = [
        CheckRequest::default(),
        CheckRequest {
            attributes: Some(AttributeContext::default()),
        },
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request::default()),
                ..Default::default()
            }),
        },
    ];
    for (i, req) in shapes.into_iter().enumerate() {
        let r = ward.check(req).await;
        let d = denial(&r);
        assert_eq!(
            d.short(),
            (code::INVALID_ARGUMENT, 400, "invalid_request"),
            "case {i}: {}",
            describe(&r)
        );
        d.assert_json_body();
    }
    // The server is still answering.
    allowed(&ward.check(Req::get("/public").to_map()).await);
}

// === a route's own answers: deny and on_unauthenticated ===

fn expired_token(keys: &KeyRing) -> String {
    keys.rs256
        .sign(&with(claims("u"), json!({"exp": now() - 3600})))
}

/// Status, headers (lower-case names) and body of a denied answer, whatever its body.
fn raw_denial(
    r: &envoy_types::pb::envoy::service::auth::v3::CheckResponse,
) -> (u16, BTreeMap<String, String>, String) {
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("expected a denial, got {}", describe(r));
    };
    let headers = d
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.to_ascii_lowercase(), h.value.clone()))
        .collect();
    let status = d.status.as_ref().map_or(0, |s| s.code as u16);
    (status, headers, d.body.clone())
}

#[tokio::test]
async fn routes_answer_denials_their_own_way_and_send_browsers_to_log_in() {
    let keys = KeyRing::shared();
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt: {{ issuer: "{ISS}", audiences: [api], algorithms: [RS256], jwks: {jwks} }}
  - name: down
    jwt: {{ issuer: "https://down.test", audiences: [api], jwks_uri: "http://127.0.0.1:9/keys", timeout: 200ms }}
  - name: links
    jwt:
      issuer: "{ISS}"
      audiences: [links]
      algorithms: [RS256]
      jwks: {jwks}
      token_from: [{{ query: access_token }}]
routes:
  - name: app
    match: {{ path_prefix: /app }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
    on_unauthenticated: {{ redirect: "https://login.example.com/start?rd={{url}}" }}
    deny:
      status: 404
      headers: {{ content-type: text/plain, x-denied-by: ward }}
      body: "{{reason}} ({{request_id}})"
  - name: outage
    match: {{ path_prefix: /down }}
    providers: [down]
    deny: {{ status: 404 }}
"#,
        jwks = common::jwks_of(&[&keys.rs256]),
    );
    let ward = common::Ward::start(&yaml).await;
    let browser = |r: Req| r.header("accept", "text/html,application/xhtml+xml;q=0.9");

    // A browser without a credential is sent to log in, with its own URL.
    let r = ward
        .check(
            browser(Req::get("/app/reports?week=3"))
                .header("x-forwarded-proto", "https")
                .to_map(),
        )
        .await;
    let (status, headers, body) = raw_denial(&r);
    assert_eq!(status, 302, "{}", describe(&r));
    assert_eq!(
        headers.get("location").map(String::as_str),
        Some(
            "https://login.example.com/start?rd=https%3A%2F%2Fapi.example.com%2Fapp%2Freports%3Fweek%3D3"
        ),
        "{headers:?}"
    );
    assert!(body.is_empty());
    // A token in the query (read by a provider of another route, and tampered so it is
    // refused) never travels on in the `location`: the redirect drops that parameter,
    // however it is spelled, and keeps the others.
    let link = format!("{}x", keys.rs256.sign(&claims("u")));
    let r = ward
        .check(
            browser(Req::get(&format!(
                "/app/r?week=3&access_token={link}&acc%65ss_token={link}"
            )))
            .bearer(&expired_token(keys))
            .to_map(),
        )
        .await;
    let (status, headers, _) = raw_denial(&r);
    assert_eq!(status, 302, "{}", describe(&r));
    let location = &headers["location"];
    assert_eq!(
        location,
        "https://login.example.com/start?rd=https%3A%2F%2Fapi.example.com%2Fapp%2Fr%3Fweek%3D3"
    );
    assert!(!location.contains(&link[..20]), "{location}");
    // An expired token, from a browser: the same.
    let expired = keys
        .rs256
        .sign(&with(claims("u"), json!({"exp": now() - 3600})));
    let r = ward
        .check(browser(Req::get("/app/x").bearer(&expired)).to_map())
        .await;
    assert_eq!(raw_denial(&r).0, 302);

    // An API client keeps the 401 with its challenge, shaped by `deny`.
    let r = ward
        .check(Req::get("/app/x").header("x-request-id", "req-7").to_map())
        .await;
    let (status, headers, body) = raw_denial(&r);
    assert_eq!(status, 404);
    assert_eq!(body, "missing_credential (req-7)");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-denied-by"], "ward");
    assert!(
        headers["www-authenticate"].starts_with("Bearer"),
        "{headers:?}"
    );
    assert_eq!(
        r.status.as_ref().map(|s| s.code),
        Some(code::UNAUTHENTICATED)
    );

    // A 403 from the rules, even from a browser: shaped, not redirected.
    let user = keys
        .rs256
        .sign(&with(claims("u"), json!({"roles": ["user"]})));
    let r = ward
        .check(
            browser(Req::get("/app/x").bearer(&user))
                .header("x-request-id", "req-8")
                .to_map(),
        )
        .await;
    let (status, _, body) = raw_denial(&r);
    assert_eq!((status, body.as_str()), (404, "forbidden (req-8)"));

    // An outage is never disguised: 503 as usual.
    let r = ward
        .check(
            Req::get("/down/x")
                .bearer(&keys.rs256.sign(&json!({
                    "iss": "https://down.test", "aud": "api", "sub": "u", "exp": now() + 60,
                })))
                .to_map(),
        )
        .await;
    assert_eq!(denial(&r).http_status, 503, "{}", describe(&r));
}
