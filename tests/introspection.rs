//! RFC 7662 introspection through ward's gRPC API, against a real introspection
//! endpoint on 127.0.0.1: identity mapping, client authentication, what an active answer
//! must say (token type, `nbf` and `exp`, field types, audiences, subjects), and finding
//! the endpoint by discovery.

mod common;
mod introspect_server;
mod introspection_setup;

use std::time::Duration;

use serde_json::json;

use common::{CLOCK_START, Req, now};
use introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect};
use introspection_setup::{
    INVALID, OK, UNAVAILABLE, active, active_until, config, start, start_manual, with_token,
};
use ward::authn::TokenError;
use ward::authn::claims::Part;

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
    let (ward, clock) = start_manual(&config(&ep, "negative_cache_ttl: 1s")).await;
    for _ in 0..3 {
        let r = ward.summary(with_token("revoked")).await;
        assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    }
    assert_eq!(ep.hits(), 1, "a refusal is cached for negative_cache_ttl");
    clock.advance(Duration::from_millis(1200));
    ep.set_token("revoked", active_until("back", CLOCK_START + 300));
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
