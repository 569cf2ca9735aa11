//! Identities reach the upstream exactly as ward judged them (SPEC §3, "representable"),
//! end to end through ward's gRPC server with tokens signed by a real key: a subject,
//! role or scope with surrounding whitespace, a control character or its list's
//! separator refuses the token; a claim header that could not reach the upstream as
//! written is removed; registered claims of the wrong RFC 7519 type refuse the token;
//! API keys whose configured identity could not be represented are config errors.

mod common;

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use serde_json::{Value, json};

use common::{
    KeyRing, Req, Ward, allowed_for, code, denial, describe, jwks_of, now, removed, set_header_map,
};
use ward::authn::apikey::sha256_hex;

const ISS: &str = "https://idp.test";

fn config() -> String {
    let key = &KeyRing::shared().rs256;
    format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {jwks}
      algorithms: [RS256]
      claims: {{ roles: roles, scopes: scope }}
      headers: {{ email: x-auth-email, groups: x-auth-groups }}
routes:
  - name: admin
    match: {{ path_prefix: /admin }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        jwks = jwks_of(&[key]),
    )
}

/// Valid claims for `corp`, with `extra`'s members added or replaced (`null` removes).
fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISS, "aud": "api", "sub": "alice", "iat": now(), "exp": now() + 300,
        "roles": ["viewer"], "scope": "orders.read",
    });
    for (k, v) in extra.as_object().expect("an object") {
        match v {
            Value::Null => c.as_object_mut().expect("an object").remove(k),
            v => c
                .as_object_mut()
                .expect("an object")
                .insert(k.clone(), v.clone()),
        };
    }
    c
}

async fn check(ward: &Ward, path: &str, extra: Value) -> CheckResponse {
    let tok = KeyRing::shared().rs256.sign(&claims(extra));
    ward.check(
        Req::get(path)
            .bearer(&tok)
            .header("x-auth-subject", "admin")
            .header("x-auth-roles", "admin")
            .header("x-auth-email", "ceo@example.com")
            .to_map(),
    )
    .await
}

/// A 401 `invalid_token` whose detail is `detail`, and whose body and challenge never
/// echo `secret` (the claim's value).
fn assert_refused(r: &CheckResponse, detail: &str, secret: &str, case: &str) {
    let d = denial(r);
    assert_eq!(
        d.short(),
        (code::UNAUTHENTICATED, 401, "invalid_token"),
        "{case}: {}",
        describe(r)
    );
    assert_eq!(d.detail, detail, "{case}");
    assert_eq!(d.error_description().unwrap_or_default(), detail, "{case}");
    let challenge = d.www_authenticate().unwrap_or_default();
    if !secret.trim().is_empty() {
        assert!(!challenge.contains(secret.trim()), "{case}: {challenge}");
    }
}

#[tokio::test]
async fn unrepresentable_subjects_roles_and_scopes_are_invalid_token() {
    let ward = Ward::start(&config()).await;
    let sub = "claim `sub` is not representable";
    let role = "the roles claim is not representable";
    let scope = "the scopes claim is not representable";
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "leading space in sub",
            "/api",
            json!({"sub": " admin"}),
            sub,
        ),
        (
            "trailing space in sub",
            "/api",
            json!({"sub": "admin "}),
            sub,
        ),
        (
            "CR LF in sub",
            "/api",
            json!({"sub": "alice\r\nx-admin: 1"}),
            sub,
        ),
        ("tab in sub", "/api", json!({"sub": "al\tice"}), sub),
        ("NUL in sub", "/api", json!({"sub": "alice\u{0}"}), sub),
        (
            "no-break space around sub",
            "/api",
            json!({"sub": "\u{a0}admin"}),
            sub,
        ),
        ("empty sub", "/api", json!({"sub": ""}), sub),
        (
            "leading space in a role, where admin was refused",
            "/admin",
            json!({"roles": ["viewer", " admin"]}),
            role,
        ),
        (
            "leading space in a role",
            "/api",
            json!({"roles": ["viewer", " admin"]}),
            role,
        ),
        (
            "comma in a role",
            "/api",
            json!({"roles": ["viewer,admin"]}),
            role,
        ),
        (
            "LF in a role",
            "/api",
            json!({"roles": ["viewer\nadmin"]}),
            role,
        ),
        (
            "space in an array scope",
            "/api",
            json!({"scope": ["orders.read orders.write"]}),
            scope,
        ),
        (
            "leading space in an array scope",
            "/api",
            json!({"scope": [" orders.write"]}),
            scope,
        ),
        (
            "tab in a scope string",
            "/api",
            json!({"scope": "orders.read\torders.write"}),
            scope,
        ),
        (
            "no-break space in a scope string",
            "/api",
            json!({"scope": "a\u{a0}b"}),
            scope,
        ),
    ];
    for (case, path, extra, detail) in cases {
        let secret = extra
            .as_object()
            .and_then(|o| o.values().next())
            .map(Value::to_string)
            .unwrap_or_default();
        let r = check(&ward, path, extra).await;
        assert_refused(&r, detail, &secret, case);
    }
    // The same claims, representable, are allowed and reach the upstream as they are.
    let r = check(
        &ward,
        "/admin",
        json!({"sub": "zoë o'neil", "roles": ["viewer", "admin", "read only"], "scope": " orders.read  orders.write"}),
    )
    .await;
    let set = set_header_map(allowed_for(&r, "representable"));
    assert_eq!(set["x-auth-subject"], "zoë o'neil");
    assert_eq!(set["x-auth-roles"], "viewer,admin,read only");
    assert_eq!(set["x-auth-scopes"], "orders.read orders.write");
}

#[tokio::test]
async fn registered_claims_of_the_wrong_type_are_invalid_token() {
    let ward = Ward::start(&config()).await;
    let t = now();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("numeric sub", json!({"sub": 42}), "sub"),
        ("array sub", json!({"sub": ["alice"]}), "sub"),
        ("object sub", json!({"sub": {"id": "alice"}}), "sub"),
        ("numeric iss", json!({"iss": 1}), "iss"),
        ("array iss", json!({"iss": [ISS]}), "iss"),
        ("numeric jti", json!({"jti": 7}), "jti"),
        ("string exp", json!({"exp": (t + 300).to_string()}), "exp"),
        ("string nbf", json!({"nbf": t.to_string()}), "nbf"),
        ("string iat", json!({"iat": t.to_string()}), "iat"),
        ("numeric aud array", json!({"aud": [1]}), "aud"),
        ("mixed aud array", json!({"aud": ["api", 1]}), "aud"),
        ("numeric aud", json!({"aud": 1}), "aud"),
        ("object aud", json!({"aud": {"api": true}}), "aud"),
    ];
    for (case, extra, claim) in cases {
        let r = check(&ward, "/api", extra).await;
        let detail = format!("claim `{claim}` has the wrong type");
        assert_refused(&r, &detail, "", case);
    }
    // The right types are allowed.
    let r = check(
        &ward,
        "/api",
        json!({"jti": "j-1", "nbf": t - 10, "iat": t as f64 - 0.5, "aud": ["other", "api"]}),
    )
    .await;
    assert_eq!(
        set_header_map(allowed_for(&r, "typed"))["x-auth-subject"],
        "alice"
    );
}

#[tokio::test]
async fn unrepresentable_claim_headers_are_removed_not_set() {
    let ward = Ward::start(&config()).await;
    let cases: Vec<(&str, Value)> = vec![
        ("leading space", json!(" ceo@example.com")),
        ("trailing space", json!("ceo@example.com ")),
        ("CR LF", json!("a@example.com\r\nx-auth-subject: admin")),
        ("empty", json!("")),
        (
            "a member with a leading space",
            json!(["a@example.com", " ceo@example.com"]),
        ),
        (
            "a member holding a comma",
            json!(["a@example.com,ceo@example.com"]),
        ),
    ];
    for (case, email) in cases {
        let r = check(&ward, "/api", json!({"email": email, "groups": email})).await;
        let ok = allowed_for(&r, case);
        let set = set_header_map(ok);
        let removed = removed(ok);
        for h in ["x-auth-email", "x-auth-groups"] {
            assert!(!set.contains_key(h), "{case}: {h} set: {set:?}");
            assert!(removed.contains(h), "{case}: {h} not removed: {removed:?}");
        }
        assert_eq!(set["x-auth-subject"], "alice", "{case}");
    }
    let r = check(
        &ward,
        "/api",
        json!({"email": "a b@example.com", "groups": ["eng", "on call"]}),
    )
    .await;
    let set = set_header_map(allowed_for(&r, "representable"));
    assert_eq!(set["x-auth-email"], "a b@example.com");
    assert_eq!(set["x-auth-groups"], "eng,on call");
}

#[tokio::test]
async fn a_token_refused_once_is_refused_from_the_cache_too() {
    // Nothing unrepresentable is cached as an identity: the second check decides alike.
    let ward = Ward::start(&config()).await;
    let tok = KeyRing::shared()
        .rs256
        .sign(&claims(json!({"sub": " admin"})));
    for round in 0..2 {
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        assert_refused(
            &r,
            "claim `sub` is not representable",
            "admin",
            &format!("round {round}"),
        );
    }
}

const ROUTES: &str =
    "routes:\n  - name: api\n    match: { path_prefix: /api }\n    providers: [m]\n";

#[test]
fn api_keys_with_unrepresentable_identities_are_config_errors() {
    let yaml = format!(
        "providers:\n  - name: m\n    api_key:\n      keys:\n        - {{ sha256: {}, subject: \" batch\" }}\n        - {{ sha256: {}, subject: batch, roles: [ok, \"a,b\", \"c\\td\", \"\"] }}\n{ROUTES}",
        sha256_hex(b"x"),
        sha256_hex(b"y"),
    );
    assert_eq!(
        Ward::builder(&yaml).config_error(),
        [
            "line 5: providers[0].api_key.keys[0].subject: must have no leading or trailing whitespace and no control character",
            "line 6: providers[0].api_key.keys[1].roles[1]: a role must have no leading or trailing whitespace, no control character and no `,`",
            "line 6: providers[0].api_key.keys[1].roles[2]: a role must have no leading or trailing whitespace, no control character and no `,`",
            "line 6: providers[0].api_key.keys[1].roles[3]: must not be empty",
        ]
        .join("\n")
    );
}

#[test]
fn api_keys_files_with_unrepresentable_identities_are_config_errors() {
    let yaml =
        format!("providers:\n  - name: m\n    api_key:\n      keys_file: keys.yaml\n{ROUTES}");
    let config = Ward::builder(&yaml).file(
        "keys.yaml",
        format!(
            "- sha256: {}\n  subject: \"batch\\n\"\n- sha256: {}\n  subject: ok\n  roles:\n    - fine\n    - \"admin \"\n",
            sha256_hex(b"a"),
            sha256_hex(b"b"),
        ),
    );
    let f = config.dir().join("keys.yaml");
    let f = f.display();
    assert_eq!(
        config.config_error(),
        [
            format!("line 4: providers[0].api_key.keys_file: {f}: line 2: [0].subject: must have no leading or trailing whitespace and no control character"),
            format!("line 4: providers[0].api_key.keys_file: {f}: line 7: [1].roles[1]: a role must have no leading or trailing whitespace, no control character and no `,`"),
        ]
        .join("\n")
    );
}

// === roles and scopes from several claims (SPEC §11) ===

/// Keycloak's shape: realm roles, client roles under a client id holding a dot, scopes
/// in `scope` and Okta's `scp`.
fn keycloak_config() -> String {
    let key = &KeyRing::shared().rs256;
    format!(
        r#"
providers:
  - name: keycloak
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {jwks}
      algorithms: [RS256]
      claims:
        roles: [realm_access.roles, 'resource_access["orders.api"].roles']
        scopes: [scope, scp]
routes:
  - name: refunds
    match: {{ path_prefix: /refunds }}
    providers: [keycloak]
    require:
      all:
        - {{ roles_all: [orders-admin, auditor] }}
        - {{ scopes_all: [orders.read, refunds] }}
  - name: api
    match: {{ path_prefix: /api }}
    providers: [keycloak]
"#,
        jwks = jwks_of(&[key]),
    )
}

#[tokio::test]
async fn roles_and_scopes_unite_several_claims() {
    let ward = Ward::start(&keycloak_config()).await;
    let both = json!({
        "roles": null,
        "realm_access": {"roles": ["auditor", "user"]},
        "resource_access": {"orders.api": {"roles": ["orders-admin", "user"]}},
        "scope": "orders.read",
        "scp": ["refunds"],
    });
    let r = check(&ward, "/refunds/7", both.clone()).await;
    let set = set_header_map(allowed_for(&r, "realm and client roles together"));
    assert_eq!(
        set["x-auth-roles"], "auditor,user,orders-admin",
        "each once"
    );
    assert_eq!(set["x-auth-scopes"], "orders.read refunds");

    // Either claim alone lacks a role the route needs.
    let realm_only = json!({"resource_access": null});
    let client_only = json!({"realm_access": null});
    for (case, extra) in [
        ("realm roles only", realm_only),
        ("client roles only", client_only),
    ] {
        let mut claims = both.clone();
        for (k, v) in extra.as_object().expect("an object") {
            claims[k] = v.clone();
        }
        let r = check(&ward, "/refunds/7", claims).await;
        assert_eq!(denial(&r).short().1, 403, "{case}: {}", describe(&r));
    }

    // An unrepresentable member of any of the claims refuses the token.
    let mut bad = both.clone();
    bad["resource_access"]["orders.api"]["roles"] = json!(["a,b"]);
    let r = check(&ward, "/api", bad).await;
    assert_refused(
        &r,
        "the roles claim is not representable",
        "a,b",
        "client role",
    );
}
