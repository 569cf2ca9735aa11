//! Headers through `Authorization/Check`: spoofed identity headers are overwritten or
//! removed (underscore spellings too), claims with control characters are never emitted,
//! `strip_authorization` removes every credential header, and Envoy's two header shapes
//! (the `headers` map and the raw `header_map`) decide the same, duplicates included.

mod check_setup;
mod common;

use serde_json::json;

use check_setup::{
    ISS, OWNED, assert_invalid_token, claims, set_of, start, start_with, token, with,
};
use common::{
    KeyRing, Req, Shape, Ward, allowed, assert_overwrites, code, denial, describe, now, removed,
    set_header_map, summary,
};

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
