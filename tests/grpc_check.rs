//! `envoy.service.auth.v3.Authorization/Check` end to end: ward's real gRPC server on
//! 127.0.0.1, called through a tonic client with requests shaped as Envoy sends them,
//! tokens signed at test time with freshly generated keys of every family.
//!
//! Covers SPEC §4 (identity headers, the deny table, bodies and challenges, both header
//! shapes), §3's path and token rules, the token cache, the admin listener and shutdown.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use serde_json::{Value, json};

use common::{
    KeyRing, Req, Shape, TestKey, Ward, allowed, allowed_for, assert_overwrites, code, denial,
    describe, hs256_with_secret, jwks_of, jws, metadata_list, metadata_str, metric, now, removed,
    route_of, set_header_map, summary,
};
use ward::authn::jwt::Alg;

const ISS: &str = "https://idp.test";

/// Every header ward owns under the test config: the five identity headers and the one
/// configured claim header.
const OWNED: [&str; 6] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-provider",
    "x-auth-roles",
    "x-auth-scopes",
    "x-auth-email",
];

// === fixtures ===

/// The config most tests run against. `corp` accepts every family (keys in a jwks_file);
/// `rs-only`, `rs-hs` and `p384-only` hold a single key inline, for algorithm confusion.
fn config(keys: &KeyRing, extra_top: &str) -> String {
    let inline = |k: &TestKey| k.jwks().to_string();
    format!(
        r#"
{extra_top}
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_file: keys/corp.json
      algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
      max_token_bytes: 4096
      claims: {{ roles: roles, scopes: scope }}
      headers: {{ email: x-auth-email }}
  - name: rs-only
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {rsa}
      algorithms: [RS256]
  - name: rs-hs
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {rsa}
      algorithms: [RS256, HS256]
  - name: p384-only
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {p384}
      algorithms: [ES256, ES384]
routes:
  - name: internal
    match: {{ context: {{ ward_route: internal }} }}
    require: {{ source_principals: ["spiffe://cluster.local/ns/billing/sa/*"] }}
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
  - name: optional
    match: {{ path_prefix: /optional }}
    providers: [corp]
    allow_anonymous: true
  - name: admin
    match: {{ path_prefix: /admin }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
  - name: scoped
    match: {{ path_prefix: /scoped }}
    providers: [corp]
    require: {{ scopes_any: [orders.write] }}
  - name: rs-only
    match: {{ path_prefix: /rs }}
    providers: [rs-only]
  - name: rs-hs
    match: {{ path_prefix: /rshs }}
    providers: [rs-hs]
  - name: p384-only
    match: {{ path_prefix: /p384 }}
    providers: [p384-only]
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        rsa = inline(&keys.rs256),
        p384 = inline(&keys.es384),
    )
}

async fn start_with(extra_top: &str) -> Ward {
    let keys = KeyRing::shared();
    Ward::builder(&config(keys, extra_top))
        .file("keys/corp.json", jwks_of(&keys.all()).to_string())
        .start()
        .await
}

async fn start() -> Ward {
    start_with("").await
}

/// Claims that `corp` accepts: right issuer and audience, five minutes to live.
fn claims(sub: &str) -> Value {
    json!({"iss": ISS, "aud": "api", "sub": sub, "iat": now(), "exp": now() + 300})
}

/// `base` with `extra`'s members added or replaced (a `null` removes the member).
fn with(mut base: Value, extra: Value) -> Value {
    let obj = base.as_object_mut().expect("claims are an object");
    for (k, v) in extra.as_object().expect("extra claims are an object") {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    base
}

/// An RS256 token from `corp`'s RSA key.
fn token(claims: &Value) -> String {
    KeyRing::shared().rs256.sign(claims)
}

/// Asserts a 401 `invalid_token` denial with an RFC 6750 challenge; when `detail` is
/// given, the body's detail and the challenge's error_description must both be it.
fn assert_invalid_token(r: &CheckResponse, detail: Option<&str>, case: &str) {
    let d = denial(r);
    assert_eq!(
        d.short(),
        (code::UNAUTHENTICATED, 401, "invalid_token"),
        "{case}: {}",
        describe(r)
    );
    let challenge = d
        .www_authenticate()
        .unwrap_or_else(|| panic!("{case}: no www-authenticate"));
    assert!(
        challenge.starts_with(r#"Bearer realm="ward", error="invalid_token", error_description=""#),
        "{case}: challenge {challenge:?}"
    );
    let desc = d.error_description().unwrap_or_default();
    assert!(
        !desc.is_empty(),
        "{case}: empty error_description in {challenge:?}"
    );
    d.assert_json_body();
    if let Some(want) = detail {
        assert_eq!(d.detail, want, "{case}: body detail");
        assert_eq!(desc, want, "{case}: error_description");
    }
}

fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

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

// === spoofing and stripping ===

fn spoofed(path: &str) -> Req {
    Req::get(path)
        .header("x-auth-subject", "admin")
        .header("x-auth-roles", "admin")
        .header("x-auth-issuer", "https://evil.example")
        .header("x-auth-provider", "corp")
        .header("x-auth-scopes", "everything")
        .header("x-auth-email", "ceo@example.com")
}

#[tokio::test]
async fn spoofed_identity_headers_are_overwritten_or_removed() {
    let ward = start().await;
    let tok = token(&with(
        claims("grace"),
        json!({"roles": ["reader"], "email": "grace@example.com"}),
    ));
    for shape in Shape::BOTH {
        // Authenticated: the verified values overwrite, the rest (scopes) is removed.
        let r = ward.check(spoofed("/api").bearer(&tok).build(shape)).await;
        let ok = allowed(&r);
        assert_overwrites(ok);
        let set = set_header_map(ok);
        assert_eq!(set["x-auth-subject"], "grace", "{shape:?}");
        assert_eq!(set["x-auth-roles"], "reader", "{shape:?}");
        assert_eq!(set["x-auth-email"], "grace@example.com", "{shape:?}");
        assert_eq!(set["x-auth-issuer"], ISS, "{shape:?}");
        assert_eq!(removed(ok), set_of(&["x-auth-scopes"]), "{shape:?}");

        // Anonymous routes, with and without providers: every owned header removed.
        for path in ["/public/page", "/optional/page"] {
            let r = ward.check(spoofed(path).build(shape)).await;
            let ok = allowed(&r);
            assert!(
                ok.headers.is_empty(),
                "{shape:?} {path}: sets {:?}",
                ok.headers
            );
            assert_eq!(removed(ok), set_of(&OWNED), "{shape:?} {path}");
        }
    }
}

#[tokio::test]
async fn claim_with_control_characters_is_never_emitted() {
    // A subject or role that cannot be emitted as judged refuses the token (see
    // tests/identities.rs); a claim header that cannot is removed.
    let ward = start().await;
    let tok = token(&with(
        claims("heidi"),
        json!({
            "email": "heidi@example.com\r\nx-auth-roles: admin",
            "roles": ["reader"],
        }),
    ));
    let r = ward
        .check(
            Req::get("/api")
                .bearer(&tok)
                .header("x-auth-email", "x")
                .to_map(),
        )
        .await;
    let ok = allowed(&r);
    assert_overwrites(ok);
    let set = set_header_map(ok);
    assert!(!set.contains_key("x-auth-email"), "emitted: {set:?}");
    assert!(
        removed(ok).contains("x-auth-email"),
        "not removed: {:?}",
        ok.headers_to_remove
    );
    for v in set.values() {
        assert!(
            !v.chars().any(char::is_control),
            "control character in {v:?}"
        );
    }
    assert_eq!(set["x-auth-roles"], "reader");
    for refused in [
        with(claims("heidi\r\nx-auth-roles: admin"), json!({})),
        with(claims("heidi"), json!({"roles": ["reader", "x,admin"]})),
    ] {
        let r = ward
            .check(Req::get("/api").bearer(&token(&refused)).to_map())
            .await;
        assert_invalid_token(&r, None, &refused.to_string());
    }
}

#[tokio::test]
async fn strip_authorization_removes_the_credential() {
    let ward = start_with("strip_authorization: true").await;
    let tok = token(&claims("ivan"));
    let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    let ok = allowed(&r);
    assert_overwrites(ok);
    assert!(
        removed(ok).contains("authorization"),
        "{:?}",
        ok.headers_to_remove
    );
    assert_eq!(set_header_map(ok)["x-auth-subject"], "ivan");

    let r = ward.check(Req::get("/public").bearer(&tok).to_map()).await;
    let ok = allowed(&r);
    let mut want = set_of(&OWNED);
    want.insert("authorization".into());
    assert_eq!(removed(ok), want, "also on an anonymous route");
}

#[tokio::test]
async fn strip_authorization_removes_every_credential_header_the_route_reads() {
    let key = "k-3f9a2c";
    let yaml = format!(
        r#"
strip_authorization: true
providers:
  - name: batch
    api_key: {{ header: x-api-key, keys: [ {{ sha256: "{hash}", subject: job }} ] }}
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {jwks}
      token_from: [ {{ header: x-token }}, {{ cookie: session }} ]
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [batch, corp]
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
"#,
        hash = ward::authn::apikey::sha256_hex(key.as_bytes()),
        jwks = KeyRing::shared().rs256.jwks(),
    );
    let ward = Ward::start(&yaml).await;
    let credentials = ["authorization", "x-api-key", "x-token"];
    let r = ward
        .check(Req::get("/api").header("x-api-key", key).to_map())
        .await;
    let gone = removed(allowed(&r));
    for h in credentials {
        assert!(gone.contains(h), "{h} not removed: {gone:?}");
    }
    let tok = KeyRing::shared().rs256.sign(&claims("kim"));
    let r = ward
        .check(Req::get("/api").header("x-token", &tok).to_map())
        .await;
    assert_eq!(set_header_map(allowed(&r))["x-auth-subject"], "kim");
    assert!(removed(allowed(&r)).contains("x-token"));
    // A route without providers reads no credential but `authorization`.
    let r = ward.check(Req::get("/public").to_map()).await;
    let gone = removed(allowed(&r));
    assert!(
        gone.contains("authorization") && !gone.contains("x-api-key"),
        "{gone:?}"
    );
}

#[tokio::test]
async fn underscore_spellings_of_owned_headers_are_removed() {
    // CGI, WSGI and Rack read `x_auth_subject` as `x-auth-subject`.
    let ward = start().await;
    let tok = token(&claims("lee"));
    for (req, what) in [
        (Req::get("/public"), "anonymous"),
        (Req::get("/api").bearer(&tok), "verified"),
    ] {
        let req = req
            .header("x_auth_subject", "admin")
            .header("x-auth_roles", "admin")
            .header("x_auth_email", "root@example.com")
            .header("x_other", "kept");
        for shape in [Shape::Map, Shape::Raw] {
            let r = ward.check(req.build(shape)).await;
            let ok = allowed(&r);
            let gone = removed(ok);
            for h in ["x_auth_subject", "x-auth_roles", "x_auth_email"] {
                assert!(gone.contains(h), "{what} {shape:?}: {h} kept: {gone:?}");
            }
            assert!(!gone.contains("x_other"), "{what}: {gone:?}");
            assert_overwrites(ok);
        }
    }
}

#[tokio::test]
async fn owned_names_with_underscores_are_set_not_removed_and_their_hyphen_spelling_goes() {
    // An operator may name identity headers with `_`: the set one must survive, and a
    // client's `-` spelling (the same CGI variable) must not.
    let key = "k-51c0";
    let yaml = format!(
        r#"
identity_headers: {{ subject: x_auth_subject }}
providers:
  - name: batch
    api_key: {{ header: x-api-key, keys: [ {{ sha256: "{hash}", subject: job }} ] }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [batch]
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
"#,
        hash = ward::authn::apikey::sha256_hex(key.as_bytes()),
    );
    let ward = Ward::start(&yaml).await;
    let r = ward
        .check(
            Req::get("/api")
                .header("x-api-key", key)
                .header("x_auth_subject", "admin")
                .header("x-auth-subject", "admin")
                .to_map(),
        )
        .await;
    let ok = allowed(&r);
    assert_eq!(set_header_map(ok)["x_auth_subject"], "job");
    let gone = removed(ok);
    assert!(
        !gone.contains("x_auth_subject"),
        "set and removed: {gone:?}"
    );
    assert!(gone.contains("x-auth-subject"), "{gone:?}");
    assert_overwrites(ok);

    let r = ward
        .check(
            Req::get("/public")
                .header("x-auth-subject", "admin")
                .to_map(),
        )
        .await;
    let gone = removed(allowed(&r));
    assert!(
        gone.contains("x-auth-subject") && gone.contains("x_auth_subject"),
        "{gone:?}"
    );
}

// === header shapes ===

#[tokio::test]
async fn headers_map_and_raw_header_map_decide_the_same() {
    let ward = start().await;
    let good = token(&with(
        claims("judy"),
        json!({"roles": ["admin"], "scope": "a b"}),
    ));
    let expired = token(&with(claims("judy"), json!({"exp": now() - 3600})));
    let cases: Vec<(&str, Req, &str)> = vec![
        ("anonymous public", Req::get("/public"), "ok"),
        ("valid token", Req::get("/api").bearer(&good), "ok"),
        (
            "lower-case scheme",
            Req::get("/api").header("authorization", &format!("bearer {good}")),
            "ok",
        ),
        ("admin", Req::get("/admin").bearer(&good), "ok"),
        ("no token", Req::get("/api"), "missing_credential"),
        (
            "expired",
            Req::get("/api").bearer(&expired),
            "invalid_token",
        ),
        ("no route", Req::get("/nope"), "no_route"),
        ("bad path", Req::get("/a%2fb"), "invalid_request"),
        ("spoofed", spoofed("/api").bearer(&good), "ok"),
        (
            "non-UTF-8 other header",
            Req::get("/api")
                .bearer(&good)
                .raw_header("x-note", b"caf\xe9"),
            "ok",
        ),
    ];
    for (case, req, reason) in cases {
        let map = summary(&ward.check(req.to_map()).await);
        let raw = summary(&ward.check(req.to_raw()).await);
        assert_eq!(map.reason, reason, "{case} (headers map)");
        assert_eq!(map, raw, "{case}: the two shapes disagree");
    }
}

#[tokio::test]
async fn more_than_one_bearer_is_invalid_token_in_both_shapes() {
    let ward = start().await;
    let a = token(&claims("a"));
    let b = token(&claims("b"));
    // Two lines in header_map (raw), as Envoy sends them with encode_raw_headers.
    let two_lines = Req::get("/api").bearer(&a).bearer(&b);
    let r = ward.check(two_lines.to_raw()).await;
    assert_invalid_token(
        &r,
        Some("more than one credential in the request"),
        "two lines",
    );
    // The same request in the headers map: Envoy joins them into `Bearer a,Bearer b`.
    let r = ward.check(two_lines.to_map()).await;
    assert_invalid_token(
        &r,
        Some("more than one credential in the request"),
        "joined",
    );
    // A client that joins them itself.
    let joined = Req::get("/api").header("authorization", &format!("Bearer {a},Bearer {b}"));
    for shape in Shape::BOTH {
        let r = ward.check(joined.build(shape)).await;
        assert_invalid_token(
            &r,
            Some("more than one credential in the request"),
            "one line, two tokens",
        );
    }
}

#[tokio::test]
async fn other_scheme_joined_before_bearer_is_a_duplicate_in_both_shapes() {
    let ward = start().await;
    let t = token(&with(claims("mallory"), json!({"roles": ["admin"]})));
    let req = Req::get("/optional")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .bearer(&t);
    for shape in Shape::BOTH {
        let r = ward.check(req.build(shape)).await;
        assert_invalid_token(&r, None, &format!("{shape:?}"));
    }
}

#[tokio::test]
async fn non_utf8_authorization_is_401_not_a_crash() {
    let ward = start().await;
    for value in [
        &b"Bearer \xff\xfe\xfd"[..],
        b"Bearer abc.\xc3(.def",
        b"\xffBearer x",
    ] {
        for shape in Shape::BOTH {
            let req = Req::get("/api").raw_header("authorization", value);
            let r = ward.check(req.build(shape)).await;
            let d = denial(&r);
            assert_eq!(
                (d.grpc_code, d.http_status),
                (code::UNAUTHENTICATED, 401),
                "{shape:?} {value:?}: {}",
                describe(&r)
            );
            assert!(
                ["invalid_token", "missing_credential"].contains(&d.error.as_str()),
                "{shape:?} {value:?}: {}",
                describe(&r)
            );
        }
    }
    // A bearer whose token bytes are not UTF-8 is a presented but unreadable credential.
    let r = ward
        .check(
            Req::get("/api")
                .raw_header("authorization", b"Bearer \xff\xfe")
                .to_raw(),
        )
        .await;
    assert_invalid_token(&r, None, "raw non-UTF-8 token");
    allowed(&ward.check(Req::get("/public").to_raw()).await);
}

// === paths ===

#[tokio::test]
async fn dot_segments_and_encodings_cannot_dodge_the_admin_route() {
    let ward = start().await;
    for path in [
        "/admin",
        "/admin/",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/./../admin/x",
        "//admin",
        "/./admin",
        "/admin?x=/public",
        "/admin?next=/../public",
    ] {
        let r = ward.check(Req::get(path).to_map()).await;
        let d = denial(&r);
        assert_eq!(
            (d.http_status, d.error.as_str(), route_of(&r).as_deref()),
            (401, "missing_credential", Some("admin")),
            "{path}: {}",
            describe(&r)
        );
    }
    for path in [
        "/public",
        "/public/",
        "/public/x",
        "/public?x=/admin",
        "/admin/../public",
    ] {
        let r = ward.check(Req::get(path).to_map()).await;
        allowed(&r);
        assert_eq!(route_of(&r).as_deref(), Some("public"), "{path}");
    }
}

#[tokio::test]
async fn a_check_request_beyond_4_mib_is_decided_not_errored() {
    // A 5 MiB buffered body, and a 5 MiB header: a decision each, never a gRPC error
    // (which Envoy treats as a failure of ward, allowed under failure_mode_allow).
    let ward = start().await;
    let mut with_body = Req::get("/api").to_map();
    if let Some(http) = with_body
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.body = "a".repeat(5 << 20);
    }
    let big_header = Req::get("/api")
        .header("x-big", &"b".repeat(5 << 20))
        .to_raw();
    for (what, req) in [("body", with_body), ("header", big_header)] {
        let r = ward
            .try_check(req)
            .await
            .unwrap_or_else(|s| panic!("{what}: {s:?}"));
        assert_eq!(
            denial(&r).short(),
            (code::UNAUTHENTICATED, 401, "missing_credential"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn paths_that_cannot_be_normalised_are_400() {
    let ward = start().await;
    for path in [
        "/a%2fb",
        "/public%2f..%2fadmin",
        "/public%00",
        "/public/%00/x",
        "/public#/../admin",
        "/public\\..\\admin",
        "/public/%zz",
        "/public/%252e%252e/admin",
        "/public/%c0%ae%c0%ae/admin",
        "admin",
        // `..;` is `..` to servlet containers: /admin/users, not a public path.
        "/public/..;/admin/users",
        "/public/..%3B/admin/users",
        "/admin;jsessionid=1/users",
    ] {
        for shape in Shape::BOTH {
            let r = ward
                .check(Req::get(path).bearer("irrelevant").build(shape))
                .await;
            let d = denial(&r);
            assert_eq!(
                d.short(),
                (code::INVALID_ARGUMENT, 400, "invalid_request"),
                "{path} {shape:?}: {}",
                describe(&r)
            );
        }
    }
}

#[tokio::test]
async fn path_prefix_matches_whole_segments_only() {
    let ward = start().await;
    for (path, route) in [
        ("/public", Some("public")),
        ("/public/a/b", Some("public")),
        ("/publicity", None),
        ("/public-x", None),
        ("/rshs/x", Some("rs-hs")),
        ("/rs/x", Some("rs-only")),
    ] {
        let r = ward.check(Req::get(path).to_map()).await;
        assert_eq!(route_of(&r).as_deref(), route, "{path}: {}", describe(&r));
        if route.is_none() {
            assert_eq!(denial(&r).error, "no_route", "{path}");
        }
    }
}

// === context_extensions ===

#[tokio::test]
async fn context_extension_selects_the_internal_route() {
    let ward = start().await;
    let billing = "spiffe://cluster.local/ns/billing/sa/batch";
    let r = ward
        .check(
            Req::get("/anything")
                .context("ward_route", "internal")
                .principal(billing)
                .to_map(),
        )
        .await;
    allowed(&r);
    assert_eq!(route_of(&r).as_deref(), Some("internal"));

    // Same context, another workload: the internal route still decides, and refuses.
    let r = ward
        .check(
            Req::get("/public")
                .context("ward_route", "internal")
                .principal("spiffe://cluster.local/ns/web/sa/frontend")
                .to_map(),
        )
        .await;
    let d = denial(&r);
    assert_eq!(
        (d.http_status, d.error.as_str()),
        (403, "forbidden"),
        "{}",
        describe(&r)
    );
    assert_eq!(route_of(&r).as_deref(), Some("internal"));

    // No context, or another value: the internal route is never chosen.
    for req in [
        Req::get("/anything").principal(billing),
        Req::get("/anything")
            .context("ward_route", "external")
            .principal(billing),
        Req::get("/anything")
            .context("other", "internal")
            .principal(billing),
    ] {
        let r = ward.check(req.to_map()).await;
        assert_eq!(
            denial(&r).error,
            "no_route",
            "{:?}: {}",
            req.context,
            describe(&r)
        );
    }
    let r = ward
        .check(Req::get("/public").principal(billing).to_map())
        .await;
    assert_eq!(route_of(&r).as_deref(), Some("public"));
}

// === JWT attacks ===

#[tokio::test]
async fn every_algorithm_family_is_accepted() {
    let ward = start().await;
    let keys = KeyRing::shared();
    for k in keys.all() {
        let sub = format!("user-{}", k.alg.as_str());
        let tok = k.sign(&claims(&sub));
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        let ok = allowed(&r);
        assert_eq!(
            set_header_map(ok)["x-auth-subject"],
            sub,
            "{}",
            k.alg.as_str()
        );
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let payload = claims("root").to_string();
    let real_sig = keys
        .rs256
        .sign(&claims("root"))
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string();
    for (case, header) in [
        ("none", json!({"alg": "none", "typ": "JWT"})),
        ("None", json!({"alg": "None"})),
        (
            "NONE with kid",
            json!({"alg": "NONE", "kid": keys.rs256.kid()}),
        ),
    ] {
        for sig in ["", "c2ln", real_sig.as_str()] {
            let tok = jws(&header.to_string(), &payload, sig);
            let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
            assert_invalid_token(
                &r,
                None,
                &format!("{case} sig={:?}", &sig[..sig.len().min(8)]),
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let ward = start().await;
    let rsa = &KeyRing::shared().rs256;
    let payload = claims("root").to_string();
    let pem = rsa.rsa_public_pem();
    let secrets: [(&str, &[u8]); 4] = [
        ("SPKI PEM", pem.as_bytes()),
        ("SPKI PEM without newline", pem.trim_end().as_bytes()),
        ("SPKI DER", rsa.rsa_public_der()),
        ("PKCS#1 DER", rsa.rsa_public_pkcs1_der()),
    ];
    for (what, secret) in secrets {
        for header in [
            json!({"alg": "HS256", "typ": "JWT", "kid": rsa.kid()}),
            json!({"alg": "HS256", "typ": "JWT"}),
        ] {
            let tok = hs256_with_secret(&header.to_string(), &payload, secret);
            let case = format!("{what}, kid={}", header.get("kid").is_some());
            // The provider allows RS256 only: the algorithm itself is refused.
            let r = ward.check(Req::get("/rs").bearer(&tok).to_map()).await;
            assert_invalid_token(
                &r,
                Some("algorithm not allowed"),
                &format!("rs-only: {case}"),
            );
            // HS256 allowed too, but the only key is RSA: still refused.
            let r = ward.check(Req::get("/rshs").bearer(&tok).to_map()).await;
            assert_invalid_token(&r, None, &format!("rs-hs: {case}"));
        }
    }
    // Both routes do accept a genuine RS256 token.
    for path in ["/rs", "/rshs"] {
        allowed(
            &ward
                .check(Req::get(path).bearer(&rsa.sign(&claims("ok"))).to_map())
                .await,
        );
    }
}

/// For each case, a token whose claims are `claims(sub)` changed by the case (see
/// [`with`]): refused as `invalid_token` with the case's detail, or (`None`) allowed as
/// `sub`.
async fn assert_claim_cases(ward: &Ward, sub: &str, cases: Vec<(&str, Value, Option<&str>)>) {
    for (case, extra, refused) in cases {
        let tok = token(&with(claims(sub), extra));
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        match refused {
            Some(detail) => assert_invalid_token(&r, Some(detail), case),
            None => assert_eq!(
                set_header_map(allowed_for(&r, case))["x-auth-subject"],
                sub,
                "{case}"
            ),
        }
    }
}

#[tokio::test]
async fn time_claims_are_enforced_with_leeway() {
    let ward = start().await;
    let t = now();
    let expired = Some("token expired");
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("expired beyond leeway", json!({"exp": t - 120}), expired),
        ("expired within leeway", json!({"exp": t - 5}), None),
        (
            "nbf in the future",
            json!({"nbf": t + 300}),
            Some("token not yet valid"),
        ),
        (
            "exp as a string",
            json!({"exp": (t + 300).to_string()}),
            Some("claim `exp` has the wrong type"),
        ),
        (
            "missing exp",
            json!({"exp": null}),
            Some("token has no exp"),
        ),
        (
            "nbf as a string",
            json!({"nbf": t.to_string()}),
            Some("claim `nbf` has the wrong type"),
        ),
    ];
    assert_claim_cases(&ward, "kim", cases).await;
}

#[tokio::test]
async fn a_valid_nbf_is_accepted() {
    let ward = start().await;
    let t = now();
    let cases = vec![
        ("nbf in the past", json!({ "nbf": t - 60 }), None),
        ("nbf now", json!({ "nbf": t }), None),
        ("nbf within leeway", json!({ "nbf": t + 5 }), None),
    ];
    assert_claim_cases(&ward, "kim", cases).await;
}

#[tokio::test]
async fn issuer_and_audience_must_match_exactly() {
    let ward = start().await;
    let (iss, aud) = (Some("issuer not accepted"), Some("audience not accepted"));
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("wrong issuer", json!({"iss": "https://evil.test"}), iss),
        ("trailing slash", json!({"iss": "https://idp.test/"}), iss),
        ("issuer case", json!({"iss": "https://IDP.test"}), iss),
        ("no issuer", json!({"iss": null}), iss),
        ("wrong audience", json!({"aud": "other-api"}), aud),
        ("no audience", json!({"aud": null}), aud),
        (
            "audience array without ours",
            json!({"aud": ["x", "y"]}),
            aud,
        ),
        (
            "audience array with ours",
            json!({"aud": ["other-api", "api"]}),
            None,
        ),
    ];
    assert_claim_cases(&ward, "leo", cases).await;
}

#[tokio::test]
async fn tampered_and_unknown_key_tokens_are_refused() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let good = token(&with(claims("mia"), json!({"roles": ["reader"]})));
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3);

    // Payload swapped for an admin one, signature kept.
    let evil = common::b64url(with(claims("mia"), json!({"roles": ["admin"]})).to_string());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    let r = ward
        .check(Req::get("/admin").bearer(&tampered).to_map())
        .await;
    assert_invalid_token(
        &r,
        Some("signature verification failed"),
        "tampered payload",
    );

    // Signature of another token.
    let other = token(&claims("other"));
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.rsplit('.').next().unwrap_or_default()
    );
    let r = ward.check(Req::get("/api").bearer(&swapped).to_map()).await;
    assert_invalid_token(
        &r,
        Some("signature verification failed"),
        "foreign signature",
    );

    // A kid nobody published, signed by a key ward does not know.
    let stranger = TestKey::generate(Alg::ES256);
    let r = ward
        .check(
            Req::get("/api")
                .bearer(&stranger.sign(&claims("mia")))
                .to_map(),
        )
        .await;
    assert_invalid_token(&r, Some("unknown key id"), "unknown kid");

    // A known key's payload under a kid that does not exist.
    let header = json!({"alg": "RS256", "kid": "no-such-kid"}).to_string();
    let tok = keys.rs256.sign_parts(&header, &claims("mia").to_string());
    let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    assert_invalid_token(&r, Some("unknown key id"), "made-up kid");

    // The unmodified token is fine.
    allowed(&ward.check(Req::get("/api").bearer(&good).to_map()).await);
}

#[tokio::test]
async fn es256_is_never_verified_with_a_p384_key() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let payload = claims("nina").to_string();
    let cases = [
        // Signed by P-256, no kid: the only key is P-384.
        (
            "P-256 signature, no kid",
            keys.es256
                .sign_parts(&json!({"alg": "ES256"}).to_string(), &payload),
        ),
        // Signed by P-256, claiming the P-384 key.
        (
            "P-256 signature, P-384 kid",
            keys.es256.sign_parts(
                &json!({"alg": "ES256", "kid": keys.es384.kid()}).to_string(),
                &payload,
            ),
        ),
        // Signed by the P-384 key itself, labelled ES256.
        (
            "P-384 signature labelled ES256",
            keys.es384.sign_parts(
                &json!({"alg": "ES256", "kid": keys.es384.kid()}).to_string(),
                &payload,
            ),
        ),
    ];
    for (case, tok) in cases {
        let r = ward.check(Req::get("/p384").bearer(&tok).to_map()).await;
        assert_invalid_token(&r, None, case);
    }
    // A genuine P-256 token, verified and cached by `corp`, is verified again (and
    // refused) on the route of `p384-only`: the cache never lends one provider's
    // verdict to another.
    let tok = keys.es256.sign(&claims("nina"));
    allowed(&ward.check(Req::get("/api").bearer(&tok).to_map()).await);
    let r = ward.check(Req::get("/p384").bearer(&tok).to_map()).await;
    assert_invalid_token(&r, None, "P-256 token cached by another provider");
    // On `corp`, whose key set holds both curves, a P-256 signature under the P-384 kid
    // is still refused.
    let tok = keys.es256.sign_parts(
        &json!({"alg": "ES256", "kid": keys.es384.kid()}).to_string(),
        &payload,
    );
    assert_invalid_token(
        &ward.check(Req::get("/api").bearer(&tok).to_map()).await,
        None,
        "corp",
    );
    // The genuine ES384 token passes on both.
    let tok = keys.es384.sign(&claims("nina"));
    allowed(&ward.check(Req::get("/p384").bearer(&tok).to_map()).await);
    allowed(&ward.check(Req::get("/api").bearer(&tok).to_map()).await);
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let payload = claims("olga").to_string();
    let header = keys.rs256.header_json();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("abc", "abc".into(), Some("malformed token")),
        ("a.b", "a.b".into(), Some("malformed token")),
        ("a.b.c", "a.b.c".into(), None),
        ("a.b.c.d", "a.b.c.d".into(), Some("malformed token")),
        ("empty", String::new(), Some("malformed token")),
        (
            "leading space",
            format!(" {}", token(&claims("olga"))),
            Some("malformed token"),
        ),
        (
            "trailing space",
            format!("{} ", token(&claims("olga"))),
            Some("malformed token"),
        ),
        (
            "padded base64",
            format!("{}=", token(&claims("olga"))),
            Some("malformed token"),
        ),
        (
            "payload not JSON",
            keys.rs256.sign_parts(&header, "not json"),
            Some("malformed token"),
        ),
        (
            "payload an array",
            keys.rs256.sign_parts(&header, "[1]"),
            Some("malformed token"),
        ),
        (
            "duplicate sub",
            keys.rs256.sign_parts(
                &header,
                &format!(
                    r#"{{"iss":"{ISS}","aud":"api","exp":{},"sub":"a","sub":"b"}}"#,
                    now() + 300
                ),
            ),
            Some("duplicate JSON member in token"),
        ),
        (
            "duplicate alg in header",
            keys.rs256.sign_parts(
                &format!(
                    r#"{{"alg":"RS256","kid":"{}","alg":"none"}}"#,
                    keys.rs256.kid()
                ),
                &payload,
            ),
            Some("duplicate JSON member in token"),
        ),
        (
            "crit header",
            keys.rs256.sign_parts(
                &json!({"alg": "RS256", "kid": keys.rs256.kid(), "crit": ["exp"], "exp": 1})
                    .to_string(),
                &payload,
            ),
            None,
        ),
        (
            "kid not a string",
            keys.rs256
                .sign_parts(&json!({"alg": "RS256", "kid": 7}).to_string(), &payload),
            None,
        ),
    ];
    for (case, tok, detail) in cases {
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        assert_invalid_token(&r, detail, case);
    }
    // `Bearer ` followed by nothing, and by two spaces: a credential was presented.
    for value in ["Bearer ", "Bearer  x"] {
        let r = ward
            .check(Req::get("/api").header("authorization", value).to_raw())
            .await;
        assert_invalid_token(&r, Some("malformed token"), &format!("{value:?}"));
    }
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_verification() {
    let ward = start().await;
    let small = token(&with(claims("pat"), json!({"pad": "x".repeat(2500)})));
    assert!(small.len() <= 4096 && small.len() > 3000, "{}", small.len());
    allowed(&ward.check(Req::get("/api").bearer(&small).to_map()).await);

    let big = token(&with(claims("pat"), json!({"pad": "x".repeat(4000)})));
    assert!(big.len() > 4096);
    let r = ward.check(Req::get("/api").bearer(&big).to_map()).await;
    assert_invalid_token(&r, Some("token too large"), "over max_token_bytes");
    // Not even parsed: garbage of that size says the same.
    let r = ward
        .check(Req::get("/api").bearer(&"a".repeat(5000)).to_map())
        .await;
    assert_invalid_token(&r, Some("token too large"), "garbage over max_token_bytes");
}

// === token cache ===

#[tokio::test]
async fn the_same_token_twice_is_allowed_twice_and_hits_the_cache() {
    let ward = start().await;
    let tok = token(&with(claims("quinn"), json!({"roles": ["reader"]})));
    let hit = [("provider", "corp"), ("result", "hit")];

    let first = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    assert_eq!(set_header_map(allowed(&first))["x-auth-subject"], "quinn");
    let m = ward.metrics().await;
    assert_eq!(
        metric(&m, "ward_token_cache_requests_total", &hit).unwrap_or(0.0),
        0.0,
        "a first sight is not a hit"
    );
    assert!(
        metric(
            &m,
            "ward_token_cache_requests_total",
            &[("provider", "corp"), ("result", "miss")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "a first sight is a miss:\n{m}"
    );

    let second = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    assert_eq!(
        summary(&first),
        summary(&second),
        "the cached answer is the same"
    );
    let m = ward.metrics().await;
    assert!(
        metric(&m, "ward_token_cache_requests_total", &hit).unwrap_or(0.0) >= 1.0,
        "no cache hit recorded:\n{m}"
    );
    // A cached identity still goes through the route's rules.
    let r = ward.check(Req::get("/admin").bearer(&tok).to_map()).await;
    assert_eq!(denial(&r).error, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_keep_identities_apart() {
    let ward = start().await;
    let keys = KeyRing::shared();
    // 24 subjects over every key family; each token is sent twice, so cache hits and
    // misses interleave.
    let tokens: Vec<(String, String)> = (0..24)
        .map(|n| {
            let sub = format!("user-{n}");
            let tok = keys.all()[n % 6].sign(&claims(&sub));
            (sub, tok)
        })
        .collect();
    let client = ward.client().await;
    let mut tasks = tokio::task::JoinSet::new();
    for (sub, tok) in tokens.iter().chain(tokens.iter()).cloned() {
        let mut client = client.clone();
        tasks.spawn(async move {
            let r = client
                .check(Req::get("/api").bearer(&tok).to_map())
                .await
                .expect("check")
                .into_inner();
            (sub, r)
        });
    }
    let mut seen = 0;
    while let Some(done) = tasks.join_next().await {
        let (sub, r) = done.expect("check task");
        let ok = allowed_for(&r, &sub);
        assert_eq!(set_header_map(ok)["x-auth-subject"], sub);
        seen += 1;
    }
    assert_eq!(seen, 48);
}

// === admin ===

#[tokio::test]
async fn admin_endpoints_answer_and_metrics_hold_no_secrets() {
    let ward = start().await;
    assert_eq!(ward.admin_get("/healthz").await.0, 200);
    assert_eq!(
        ward.admin_get("/readyz").await.0,
        200,
        "static keys are loaded"
    );

    let secret_sub = "subject-7f3a9c1e";
    let tok = token(&with(
        claims(secret_sub),
        json!({"email": "s7f3a9c@example.com"}),
    ));
    allowed(
        &ward
            .check(
                Req::get("/api/v1/secret-path?access_token=zz")
                    .bearer(&tok)
                    .to_map(),
            )
            .await,
    );
    denial(&ward.check(Req::get("/api").to_map()).await);
    denial(&ward.check(Req::get("/nowhere").to_map()).await);

    let m = ward.metrics().await;
    let count = |labels: &[(&str, &str)]| metric(&m, "ward_check_requests_total", labels);
    assert_eq!(
        count(&[("route", "api"), ("decision", "allow"), ("reason", "ok")]),
        Some(1.0),
        "\n{m}"
    );
    assert_eq!(
        count(&[
            ("route", "api"),
            ("decision", "deny"),
            ("reason", "missing_credential")
        ]),
        Some(1.0),
        "\n{m}"
    );
    assert!(
        common::samples(&m, "ward_check_requests_total")
            .iter()
            .any(
                |(l, v)| l.get("reason").map(String::as_str) == Some("no_route")
                    && l.get("decision").map(String::as_str) == Some("deny")
                    && *v == 1.0
            ),
        "\n{m}"
    );
    assert!(
        m.contains("# TYPE ward_check_duration_seconds histogram"),
        "\n{m}"
    );
    assert_eq!(
        metric(
            &m,
            "ward_check_duration_seconds_count",
            &[("decision", "allow")]
        ),
        Some(1.0),
        "\n{m}"
    );
    assert_eq!(
        metric(
            &m,
            "ward_check_duration_seconds_count",
            &[("decision", "deny")]
        ),
        Some(2.0),
        "\n{m}"
    );

    for secret in [
        secret_sub,
        "s7f3a9c@example.com",
        "secret-path",
        "access_token",
    ]
    .into_iter()
    .chain(tok.split('.'))
    {
        assert!(!m.contains(secret), "/metrics leaks {secret:?}");
    }
}

// === shutdown ===

#[tokio::test]
async fn shutdown_stops_the_server_within_the_grace_period() {
    let keys = KeyRing::shared();
    let ward = Ward::builder(&config(keys, ""))
        .file("keys/corp.json", jwks_of(&keys.all()).to_string())
        .grace(Duration::from_secs(3))
        .start()
        .await;
    // An open, used connection must not hold the server up.
    let mut client = ward.client().await;
    allowed(
        &client
            .check(Req::get("/public").to_map())
            .await
            .expect("check")
            .into_inner(),
    );
    let (grpc, admin, grace) = (ward.grpc_addr, ward.admin_addr, ward.grace);

    let took = ward.shutdown().await;
    assert!(took < grace, "run took {took:?}, the grace is {grace:?}");
    let after = client.check(Req::get("/public").to_map()).await;
    assert!(
        after.is_err(),
        "the old connection still answers: {after:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "the gRPC listener still accepts"
    );
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin listener still accepts"
    );
}
