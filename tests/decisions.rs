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
