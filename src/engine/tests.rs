//! The header mutations of an allowed check: what ward sets, and what it removes so that a
//! client can never smuggle an identity header upstream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::Engine;
use crate::authn::Identity;
use crate::authn::claims::Names;
use crate::config;
use crate::decision::Mutations;
use crate::header::HeaderName;
use crate::metrics::Metrics;
use crate::request::CheckInput;

// === harness ===

/// `yaml` compiled by the real loader (a test config: errors fail the test).
fn load(yaml: &str) -> config::Config {
    let env: HashMap<String, String> = HashMap::new();
    match config::load_str(yaml, Path::new("."), &env) {
        Ok(c) => c,
        Err(e) => panic!("test config: {:?}", e.0),
    }
}

/// An engine for `yaml`, on the system clock.
fn engine_for(yaml: &str) -> Engine {
    Engine::new(load(yaml), Arc::new(Metrics::new()))
}

/// An engine with two JWT providers (claim headers `x-auth-email` and `x_tenant`) and an
/// API key provider, on routes `jwt` (0) and `keys` (1), with `extra` prepended to the
/// config (identity headers, `strip_authorization`).
fn engine(extra: &str) -> Engine {
    let yaml = format!(
        "\
{extra}
providers:
  - name: corp
    jwt:
      issuer: https://idp.example.com
      audiences: [orders-api]
      jwks_uri: https://idp.example.com/jwks
      headers: {{ email: x-auth-email }}
  - name: partner
    jwt:
      issuer: https://partner.example.com
      audiences: [orders-api]
      jwks_uri: https://partner.example.com/jwks
      headers: {{ tenant: x_tenant, tenant_id: x-tenant }}
      token_from: [{{ header: x-partner-token }}]
  - name: keys
    api_key:
      header: x-api-key
      keys:
        - {{ sha256: \"{digest}\", subject: batch }}
routes:
  - name: jwt
    match: {{ path_prefix: /jwt }}
    providers: [corp, partner]
  - name: keys
    match: {{ path_prefix: /keys }}
    providers: [keys]
",
        digest = crate::authn::apikey::sha256_hex(b"k1"),
    );
    engine_for(&yaml)
}

/// The mutations of an allowed check on the engine's `route`th route.
fn mutations(e: &Engine, route: usize, input: &CheckInput<'_>, id: Option<&Identity>) -> Mutations {
    e.policy.mutations(&e.policy.routes[route], input, id, None)
}

fn h(name: &str) -> HeaderName {
    HeaderName::parse(name).expect("test header name")
}

fn alice() -> Identity {
    Identity {
        provider: "corp".into(),
        subject: Some("alice".into()),
        issuer: Some("https://idp.example.com".into()),
        roles: Names::from(["admin", "ops"]),
        scopes: Names::from(["orders.read", "orders.write"]),
        claim_headers: vec![(h("x-auth-email"), "alice@example.com".into())].into(),
        ..Default::default()
    }
}

fn request<'a>(headers: &[(&'a str, &'a str)]) -> CheckInput<'a> {
    let mut i = CheckInput {
        method: "GET",
        host: "api.example.com",
        path: "/jwt",
        ..Default::default()
    };
    for (n, v) in headers {
        i.headers.push(n, v.as_bytes());
    }
    i
}

fn set_of(m: &Mutations) -> Vec<(&str, &str)> {
    m.set
        .iter()
        .map(|(h, v)| (h.as_str(), v.as_str()))
        .collect()
}

fn removed(m: &Mutations) -> Vec<&str> {
    m.remove.iter().map(HeaderName::as_str).collect()
}

// === set and removed ===

#[test]
fn an_identity_sets_its_headers_and_removes_every_other_owned_one() {
    let e = engine("");
    let m = mutations(&e, 0, &request(&[]), Some(&alice()));
    assert_eq!(
        set_of(&m),
        [
            ("x-auth-subject", "alice"),
            ("x-auth-issuer", "https://idp.example.com"),
            ("x-auth-provider", "corp"),
            ("x-auth-roles", "admin,ops"),
            ("x-auth-scopes", "orders.read orders.write"),
            ("x-auth-email", "alice@example.com"),
        ]
    );
    assert_eq!(removed(&m), ["x_tenant", "x-tenant"]);
}

#[test]
fn headers_without_a_value_are_removed_not_set_empty() {
    let e = engine("");
    let bare = Identity {
        provider: "keys".into(),
        subject: Some("batch".into()),
        ..Default::default()
    };
    let m = mutations(&e, 1, &request(&[]), Some(&bare));
    assert_eq!(
        set_of(&m),
        [("x-auth-subject", "batch"), ("x-auth-provider", "keys")]
    );
    assert_eq!(
        removed(&m),
        [
            "x-auth-issuer",
            "x-auth-roles",
            "x-auth-scopes",
            "x-auth-email",
            "x_tenant",
            "x-tenant",
        ]
    );
    // A value that would not arrive as written is not set either.
    let padded = Identity {
        issuer: Some(" https://idp.example.com".into()),
        ..alice()
    };
    let m = mutations(&e, 0, &request(&[]), Some(&padded));
    assert!(m.set.iter().all(|(h, _)| h.as_str() != "x-auth-issuer"));
    assert!(removed(&m).contains(&"x-auth-issuer"));
}

#[test]
fn an_anonymous_check_removes_every_owned_header() {
    let e = engine("");
    let m = mutations(&e, 0, &request(&[]), None);
    assert!(m.set.is_empty());
    assert_eq!(
        removed(&m),
        [
            "x-auth-subject",
            "x-auth-issuer",
            "x-auth-provider",
            "x-auth-roles",
            "x-auth-scopes",
            "x-auth-email",
            "x_tenant",
            "x-tenant",
        ]
    );
}

// === other spellings of owned names ===

#[test]
fn a_client_header_spelling_an_owned_name_with_underscores_is_removed() {
    let e = engine("");
    let sent = request(&[
        ("x_auth_subject", "admin"),
        ("x-auth_roles", "admin"),
        ("x_auth_subject", "again"),
        ("x-tenant", "acme"),
        ("x_auth-email", "a@x.io"),
    ]);
    let m = mutations(&e, 0, &sent, Some(&alice()));
    assert_eq!(
        removed(&m),
        [
            "x_tenant",
            "x-tenant",
            "x_auth_subject",
            "x-auth_roles",
            "x_auth-email"
        ],
        "each spelling once; x-tenant is itself owned"
    );
    assert!(m.set.iter().all(|(s, _)| !m.remove.contains(s)));
}

#[test]
fn headers_that_only_resemble_an_owned_name_are_kept() {
    let e = engine("");
    // Same lengths as owned names (12 to 15 bytes) but other text, a prefix spelling
    // of a shorter owned name, or a separator where the owned name has a letter.
    let sent = request(&[
        ("x-request-id", "1"),
        ("content-type", "text/plain"),
        ("x_auth_rolesx", "admin"),
        ("x-auth-r-les", "admin"),
        ("x-auth_subjec", "admin"),
        ("authorization", "Bearer t"),
    ]);
    let m = mutations(&e, 0, &sent, Some(&alice()));
    assert_eq!(removed(&m), ["x_tenant", "x-tenant"]);
}

#[test]
fn a_name_ward_sets_is_never_also_removed_as_another_spelling() {
    // The partner's claim headers own both `x_tenant` and `x-tenant`: an identity that has
    // only `x_tenant` gets it set, and a client `x_tenant` is not removed on top of that.
    let e = engine("");
    let partner = Identity {
        provider: "partner".into(),
        subject: Some("p".into()),
        issuer: Some("https://partner.example.com".into()),
        claim_headers: vec![(h("x_tenant"), "acme".into())].into(),
        ..Default::default()
    };
    let m = mutations(&e, 0, &request(&[("x_tenant", "evil")]), Some(&partner));
    assert!(set_of(&m).contains(&("x_tenant", "acme")));
    assert!(!removed(&m).contains(&"x_tenant"), "{:?}", removed(&m));
    assert!(removed(&m).contains(&"x-tenant"));
}

#[test]
fn spellings_are_found_when_every_owned_name_has_one_length() {
    // Every owned name is 7 bytes long (no claim headers): the length filter must still
    // let 7-byte names through to the comparison.
    let yaml = format!(
        "\
identity_headers: {{ subject: x-a-sub, issuer: x-a-iss, provider: x-a-pro, roles: x-a-rol, scopes: x-a-sco }}
providers:
  - name: keys
    api_key:
      header: x-api-key
      keys:
        - {{ sha256: \"{digest}\", subject: batch }}
routes:
  - name: keys
    match: {{ path_prefix: /keys }}
    providers: [keys]
",
        digest = crate::authn::apikey::sha256_hex(b"k1"),
    );
    let e = engine_for(&yaml);
    let m = mutations(
        &e,
        0,
        &request(&[("x_a_sub", "admin"), ("x-a-zzz", "1")]),
        None,
    );
    assert_eq!(
        removed(&m),
        [
            "x-a-sub", "x-a-iss", "x-a-pro", "x-a-rol", "x-a-sco", "x_a_sub"
        ]
    );
}

// === strip_authorization ===

#[test]
fn strip_authorization_removes_the_routes_credential_headers() {
    let e = engine("strip_authorization: true");
    let m = mutations(&e, 1, &request(&[]), None);
    let r = removed(&m);
    assert_eq!(&r[r.len() - 2..], ["authorization", "x-api-key"]);
    let m = mutations(&e, 0, &request(&[]), None);
    let r = removed(&m);
    assert_eq!(&r[r.len() - 2..], ["authorization", "x-partner-token"]);
    // Without it, credentials reach the upstream.
    let e = engine("");
    let m = mutations(&e, 1, &request(&[]), None);
    assert!(!removed(&m).contains(&"authorization"));
    assert!(!removed(&m).contains(&"x-api-key"));
}

// === time, by the engine's clock ===

/// An engine on a manual clock with one HS256 provider (inline JWKS, 30 s leeway), and a
/// token that expires 60 s after the clock's start.
fn engine_on_a_clock() -> (Engine, crate::clock::ManualClock, String) {
    use crate::authn::alg::Alg;
    use crate::devtoken::SigningKey;
    let start = 1_800_000_000;
    let (clock, hand) = crate::clock::Clock::manual(std::time::Duration::from_secs(start));
    let key = SigningKey::from_bytes(&[7u8; 32], Alg::HS256).expect("test key");
    let yaml = format!(
        "\
providers:
  - name: corp
    jwt:
      issuer: https://idp.example.com
      audiences: [orders-api]
      algorithms: [HS256]
      jwks: {jwks}
routes:
  - name: jwt
    match: {{ path_prefix: /jwt }}
    providers: [corp]
",
        jwks = key.jwks(),
    );
    let config = load(&yaml);
    let token = key
        .sign(&serde_json::json!({
            "iss": "https://idp.example.com",
            "aud": "orders-api",
            "sub": "alice",
            "exp": start + 60,
            "nbf": start + 10,
        }))
        .expect("test token");
    let engine = Engine::with_clock(config, Arc::new(Metrics::new()), clock);
    (engine, hand, token)
}

#[tokio::test]
async fn tokens_expire_by_the_engine_clock_cached_or_not() {
    use crate::authn::TokenError;
    use crate::decision::{DenyReason, Verdict};
    use std::time::Duration;
    let (e, hand, token) = engine_on_a_clock();
    let bearer = format!("Bearer {token}");
    let verdict = |d: crate::decision::Decision| d.verdict;
    let req = request(&[("authorization", &bearer)]);
    // nbf is 10 s ahead, within the 30 s leeway.
    assert!(matches!(verdict(e.check(&req).await), Verdict::Allow(_)));
    hand.advance(Duration::from_secs(89));
    assert!(
        matches!(verdict(e.check(&req).await), Verdict::Allow(_)),
        "exp + leeway - 1: still valid"
    );
    hand.advance(Duration::from_secs(1));
    assert!(
        matches!(
            verdict(e.check(&req).await),
            Verdict::Deny(DenyReason::InvalidToken(TokenError::Expired))
        ),
        "exp + leeway: expired, though cached a moment ago"
    );
}

// === the issuer pick ===

/// Routes `both` ([corp, partner]) and `partner` ([partner]): two HS256 providers of
/// one key, corp reading `authorization`, partner `x-partner-token`.
fn two_issuers() -> (Engine, crate::devtoken::SigningKey) {
    let key = crate::devtoken::SigningKey::from_bytes(&[7; 32], crate::authn::alg::Alg::HS256)
        .expect("test key");
    let yaml = format!(
        "\
providers:
  - name: corp
    jwt: {{ issuer: https://idp.example.com, audiences: [api], algorithms: [HS256], jwks: {j} }}
  - name: partner
    jwt:
      issuer: https://partner.example.com
      audiences: [api]
      algorithms: [HS256]
      jwks: {j}
      token_from: [{{ header: x-partner-token }}]
routes:
  - name: both
    match: {{ path_prefix: /both }}
    providers: [corp, partner]
  - name: partner
    match: {{ path_prefix: /partner }}
    providers: [partner]
",
        j = key.jwks(),
    );
    (engine_for(&yaml), key)
}

/// The reason code and deciding provider of a check of `path` with these headers.
async fn decided(e: &Engine, path: &str, headers: &[(&str, &str)]) -> (&'static str, String) {
    let input = CheckInput {
        path,
        ..request(headers)
    };
    let d = e.check(&input).await;
    (
        d.reason_code(),
        d.provider.as_deref().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn the_issuer_picks_a_provider_only_where_it_reads_the_same_token() {
    let (e, key) = two_issuers();
    let exp = crate::clock::unix_now() + 600;
    let tok = key
        .sign(&serde_json::json!({
            "iss": "https://partner.example.com", "aud": "api", "sub": "p", "exp": exp,
        }))
        .expect("sign");
    let bearer = format!("Bearer {tok}");
    let in_authorization = [("authorization", bearer.as_str())];
    let in_both = [
        ("authorization", bearer.as_str()),
        ("x-partner-token", tok.as_str()),
    ];
    let refused = ("invalid_token", "corp".to_string());
    let allowed = ("ok", "partner".to_string());

    // Cold: partner does not read `authorization`, so corp (which found it) decides.
    assert_eq!(decided(&e, "/both", &in_authorization).await, refused);
    // Partner finds the very same token in its own header: its issuer picks partner.
    assert_eq!(decided(&e, "/both", &in_both).await, allowed);

    // Warm (verified for partner on its own route): the same answers.
    let own = [("x-partner-token", tok.as_str())];
    assert_eq!(decided(&e, "/partner", &own).await, allowed);
    assert_eq!(decided(&e, "/both", &in_authorization).await, refused);
    assert_eq!(decided(&e, "/both", &in_both).await, allowed);

    // Another token in partner's header is not the one corp found.
    let other = [
        ("authorization", bearer.as_str()),
        ("x-partner-token", "x.y.z"),
    ];
    assert_eq!(decided(&e, "/both", &other).await, refused);
}

/// Two APIs of one realm: providers `orders` and `billing` share an issuer and key,
/// told apart by audience.
fn one_realm_two_apis() -> (Engine, crate::devtoken::SigningKey) {
    let key = crate::devtoken::SigningKey::from_bytes(&[9; 32], crate::authn::alg::Alg::HS256)
        .expect("test key");
    let yaml = format!(
        "\
providers:
  - name: orders
    jwt: {{ issuer: https://sso.example.com, audiences: [orders-api], algorithms: [HS256], jwks: {j} }}
  - name: billing
    jwt: {{ issuer: https://sso.example.com, audiences: [billing-api, invoices], algorithms: [HS256], jwks: {j} }}
routes:
  - name: billing-only
    match: {{ path_prefix: /billing }}
    providers: [billing]
  - name: both
    match: {{ path_prefix: /both }}
    providers: [orders, billing]
",
        j = key.jwks(),
    );
    (engine_for(&yaml), key)
}

#[tokio::test]
async fn providers_of_one_issuer_are_picked_by_audience_cold_and_warm() {
    let (e, key) = one_realm_two_apis();
    let exp = crate::clock::unix_now() + 600;
    let token = |aud: serde_json::Value| {
        let claims = serde_json::json!({
            "iss": "https://sso.example.com", "aud": aud, "sub": "u", "exp": exp,
        });
        format!("Bearer {}", key.sign(&claims).expect("sign"))
    };
    let orders = token("orders-api".into());
    let billing = token(serde_json::json!(["account", "invoices"]));
    let neither = token("account".into());
    let verified_elsewhere = token("billing-api".into());
    let ok = |p: &str| ("ok", p.to_string());

    // Warm the cache for one token on the route that lists billing alone.
    let h = [("authorization", verified_elsewhere.as_str())];
    assert_eq!(decided(&e, "/billing", &h).await, ok("billing"));
    for round in ["cold", "warm"] {
        let h = [("authorization", orders.as_str())];
        assert_eq!(decided(&e, "/both", &h).await, ok("orders"), "{round}");
        let h = [("authorization", billing.as_str())];
        assert_eq!(decided(&e, "/both", &h).await, ok("billing"), "{round}");
        let h = [("authorization", verified_elsewhere.as_str())];
        assert_eq!(decided(&e, "/both", &h).await, ok("billing"), "{round}");
        // No provider of the issuer names the audience: the first refuses it.
        let h = [("authorization", neither.as_str())];
        assert_eq!(
            decided(&e, "/both", &h).await,
            ("invalid_token", "orders".to_string()),
            "{round}"
        );
    }
    // A billing token on the billing-only route, and an orders token there: refused.
    let h = [("authorization", orders.as_str())];
    assert_eq!(
        decided(&e, "/billing", &h).await,
        ("invalid_token", "billing".to_string())
    );
}

#[tokio::test]
async fn a_providers_condition_holds_for_the_provider_that_verified() {
    let key = crate::devtoken::SigningKey::from_bytes(&[5; 32], crate::authn::alg::Alg::HS256)
        .expect("test key");
    let yaml = format!(
        "\
providers:
  - name: okta
    jwt: {{ issuer: https://okta.example.com, audiences: [api], algorithms: [HS256], jwks: {j} }}
  - name: keycloak
    jwt: {{ issuer: https://sso.example.com, audiences: [api], algorithms: [HS256], jwks: {j} }}
routes:
  - name: reports
    match: {{ path_prefix: /reports }}
    providers: [okta, keycloak]
    allow_anonymous: true
    require: {{ any: [{{ providers: [okta] }}, {{ roles_any: [auditor] }}] }}
",
        j = key.jwks(),
    );
    let e = engine_for(&yaml);
    let exp = crate::clock::unix_now() + 600;
    let bearer = |iss: &str, roles: &[&str]| {
        let claims = serde_json::json!({
            "iss": iss, "aud": "api", "sub": "u", "exp": exp, "roles": roles,
        });
        format!("Bearer {}", key.sign(&claims).expect("sign"))
    };
    let okta = bearer("https://okta.example.com", &[]);
    let keycloak = bearer("https://sso.example.com", &[]);
    let auditor = bearer("https://sso.example.com", &["auditor"]);
    let e = &e;
    let check = |h: String| async move { decided(e, "/reports", &[("authorization", &h)]).await };
    assert_eq!(check(okta).await, ("ok", "okta".to_string()));
    assert_eq!(check(keycloak).await, ("forbidden", "keycloak".to_string()));
    assert_eq!(check(auditor).await, ("ok", "keycloak".to_string()));
    // Anonymous: no provider, so only the other branch could let it through.
    assert_eq!(decided(e, "/reports", &[]).await.0, "forbidden");
}

#[tokio::test]
async fn defaults_apply_to_every_route_that_does_not_opt_out() {
    let key = crate::devtoken::SigningKey::from_bytes(&[3; 32], crate::authn::alg::Alg::HS256)
        .expect("test key");
    let yaml = format!(
        "\
defaults:
  require: {{ not: {{ claim: {{ name: banned, equals: true }} }} }}
providers:
  - name: corp
    jwt: {{ issuer: https://idp.example.com, audiences: [api], algorithms: [HS256], jwks: {j} }}
routes:
  - name: admin
    match: {{ path_prefix: /admin }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
  - name: appeal
    match: {{ path_prefix: /appeal }}
    providers: [corp]
    defaults: false
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
",
        j = key.jwks(),
    );
    let e = engine_for(&yaml);
    let exp = crate::clock::unix_now() + 600;
    let bearer = |extra: serde_json::Value| {
        let mut claims = serde_json::json!({
            "iss": "https://idp.example.com", "aud": "api", "sub": "u", "exp": exp,
        });
        for (k, v) in extra.as_object().expect("an object") {
            claims[k] = v.clone();
        }
        format!("Bearer {}", key.sign(&claims).expect("sign"))
    };
    let check = async |path: &str, h: &str| {
        let input = CheckInput {
            path,
            ..request(&[("authorization", h)])
        };
        e.check(&input).await
    };
    let banned_admin = bearer(serde_json::json!({"roles": ["admin"], "banned": true}));
    let d = check("/admin", &banned_admin).await;
    assert_eq!(d.reason_code(), "forbidden");
    let why = match &d.verdict {
        crate::decision::Verdict::Deny(r) => Some(r.explain().to_string()),
        crate::decision::Verdict::Allow(_) => None,
    };
    assert_eq!(
        why.as_deref(),
        Some(
            "condition not met: defaults.require.not (defaults.require.not.claim: banned equals true)"
        ),
        "the defaults are checked first, and named"
    );
    // The route's own rules still apply after the defaults.
    let user = bearer(serde_json::json!({"roles": ["user"]}));
    assert_eq!(check("/admin", &user).await.reason_code(), "forbidden");
    let admin = bearer(serde_json::json!({"roles": ["admin"], "banned": false}));
    assert_eq!(check("/admin", &admin).await.reason_code(), "ok");
    // An opted-out route, and an anonymous one (no claim: `not` holds).
    assert_eq!(check("/appeal", &banned_admin).await.reason_code(), "ok");
    let anon = CheckInput {
        path: "/public/x",
        ..request(&[])
    };
    assert_eq!(e.check(&anon).await.reason_code(), "ok");
}
