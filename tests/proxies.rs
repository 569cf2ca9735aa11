//! ward behind real proxies (SPEC §9): nginx (`auth_request`) and Caddy (`forward_auth`)
//! run the shipped configurations in front of an upstream that echoes what it receives,
//! and every assertion is made at the client or at the upstream, through the proxy: the
//! identity reaches the upstream and nothing a client forged does; denials reach the
//! client with their challenge and JSON body; path tricks and query-string tokens are
//! decided as over gRPC; with ward down the proxy fails closed.

mod common;
mod proxy_setup;

use serde_json::json;

use common::{Answer, KeyRing, Ward, now};
use proxy_setup::{Echo, KINDS, Kind, Proxy, identity_received};

const ISS: &str = "https://idp.test";

fn config() -> String {
    let jwks = KeyRing::shared().rs256.jwks();
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
routes:
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
  - name: admin
    match: {{ path_prefix: /admin }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
  - name: scoped
    match: {{ path_prefix: /scoped }}
    providers: [corp]
    require: {{ scopes_any: [orders.write] }}
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#
    )
}

fn token(sub: &str, roles: &[&str], scope: &str) -> String {
    KeyRing::shared().rs256.sign(&json!({
        "iss": ISS, "aud": "api", "sub": sub, "exp": now() + 300,
        "roles": roles, "scope": scope,
    }))
}

/// ward (with its HTTP listener), the echo upstream and `kind` in front of both; `None`
/// when the proxy is missing and skipping was asked for.
struct World {
    ward: Ward,
    echo: Echo,
    proxy: Proxy,
}

async fn world(kind: Kind) -> Option<World> {
    let ward = Ward::builder(&config()).http().start().await;
    let echo = Echo::start().await;
    let proxy = Proxy::start(kind, ward.http_addr(), echo.addr).await?;
    Some(World { ward, echo, proxy })
}

/// Identity headers a client forges, in every spelling.
const FORGED: [(&str, &str); 5] = [
    ("x-auth-subject", "mallory"),
    ("X-AUTH-ROLES", "admin"),
    ("x_auth_roles", "admin"),
    ("x-auth_scopes", "orders.write"),
    ("x_auth-provider", "corp"),
];

fn with_forged<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FORGED
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(n, val)| (n.to_string(), val.to_string()))
        .collect()
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_its_identity_and_nothing_forged() {
    for kind in KINDS {
        let Some(w) = world(kind).await else { continue };
        let bearer = format!(
            "Bearer {}",
            token("alice", &["admin", "ops"], "orders.read")
        );
        let a = w
            .proxy
            .get(
                "/admin/users?page=2",
                &with_forged(&[("authorization", &bearer)]),
            )
            .await;
        assert_eq!(a.status, 200, "{kind:?}: {a:?}");
        assert_eq!(a.json()["uri"], "/admin/users?page=2", "{kind:?}");
        assert_eq!(
            identity_received(&a),
            pairs(&[
                ("x-auth-issuer", ISS),
                ("x-auth-provider", "corp"),
                ("x-auth-roles", "admin,ops"),
                ("x-auth-scopes", "orders.read"),
                ("x-auth-subject", "alice"),
            ]),
            "{kind:?}"
        );
        assert_eq!(w.echo.hits(), 1, "{kind:?}");
    }
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream_on_anonymous_routes() {
    for kind in KINDS {
        let Some(w) = world(kind).await else { continue };
        let a = w.proxy.get("/public/page", &with_forged(&[])).await;
        assert_eq!(a.status, 200, "{kind:?}: {a:?}");
        assert_eq!(identity_received(&a), Vec::new(), "{kind:?}: {a:?}");
        // An anonymous route that also reads a token: the token's identity, nothing forged.
        let bearer = format!("Bearer {}", token("bob", &[], ""));
        let a = w
            .proxy
            .get("/api/x", &with_forged(&[("authorization", &bearer)]))
            .await;
        assert_eq!(
            identity_received(&a),
            pairs(&[
                ("x-auth-issuer", ISS),
                ("x-auth-provider", "corp"),
                ("x-auth-subject", "bob"),
            ]),
            "{kind:?}: a header ward did not set is absent, not forged or empty"
        );
    }
}

/// The client's view of a denial: status, challenge, JSON body; the upstream untouched.
fn assert_denied(kind: Kind, a: &Answer, status: u16, error: &str, challenge: Option<&str>) {
    assert_eq!(a.status, status, "{kind:?}: {a:?}");
    assert_eq!(
        a.header("content-type"),
        Some("application/json"),
        "{kind:?}: {a:?}"
    );
    let body = a.json();
    assert_eq!(body["error"], error, "{kind:?}: {a:?}");
    assert_eq!(body["request_id"], "rid-1", "{kind:?}: {a:?}");
    assert_eq!(
        a.all("www-authenticate"),
        challenge.into_iter().collect::<Vec<_>>(),
        "{kind:?}"
    );
    assert!(
        a.header("x-ward-body").is_none(),
        "{kind:?}: ward's body header leaked: {a:?}"
    );
}

#[tokio::test]
async fn denials_reach_the_client_with_their_challenge_and_json_body() {
    for kind in KINDS {
        let Some(w) = world(kind).await else { continue };
        let rid = ("x-request-id", "rid-1");
        let a = w.proxy.get("/admin", &[rid]).await;
        assert_denied(
            kind,
            &a,
            401,
            "missing_credential",
            Some(r#"Bearer realm="ward""#),
        );

        let expired = KeyRing::shared()
            .rs256
            .sign(&json!({"iss": ISS, "aud": "api", "sub": "carol", "exp": 1_000_000}));
        let bearer = format!("Bearer {expired}");
        let a = w
            .proxy
            .get("/admin", &[rid, ("authorization", &bearer)])
            .await;
        assert_denied(
            kind,
            &a,
            401,
            "invalid_token",
            Some(
                r#"Bearer realm="ward", error="invalid_token", error_description="token expired""#,
            ),
        );
        assert!(!a.body.contains(&expired), "{kind:?}: token echoed");

        let viewer = format!("Bearer {}", token("dan", &["viewer"], ""));
        let a = w
            .proxy
            .get("/admin", &[rid, ("authorization", &viewer)])
            .await;
        assert_denied(kind, &a, 403, "forbidden", None);

        let a = w
            .proxy
            .get("/scoped", &[rid, ("authorization", &viewer)])
            .await;
        assert_denied(
            kind,
            &a,
            403,
            "forbidden",
            Some(r#"Bearer realm="ward", error="insufficient_scope""#),
        );

        let a = w.proxy.get("/nowhere", &[rid]).await;
        assert_denied(kind, &a, 403, "no_route", None);
        assert_eq!(
            w.echo.hits(),
            0,
            "{kind:?}: a denied request reached the upstream"
        );
    }
}

#[tokio::test]
async fn path_tricks_and_query_tokens_are_decided_as_over_grpc() {
    for kind in KINDS {
        let Some(w) = world(kind).await else { continue };
        let admin = token("alice", &["admin"], "");
        // Dot segments, plain and encoded, land on /admin: no token there is 401.
        for path in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2E/admin/x",
            "//admin",
        ] {
            let a = w.proxy.get(path, &[]).await;
            assert_eq!(
                a.short(),
                (401, "missing_credential".into()),
                "{kind:?} {path}: {a:?}"
            );
        }
        // A query-string token is not where `corp` reads tokens: still no credential.
        let a = w
            .proxy
            .get(&format!("/admin?access_token={admin}"), &[])
            .await;
        assert_eq!(
            a.short(),
            (401, "missing_credential".into()),
            "{kind:?}: {a:?}"
        );
        assert!(!a.body.contains(&admin), "{kind:?}: token echoed");
        // `..;` cannot be normalised safely: ward refuses it (400), which nginx turns
        // into its 500 and Caddy passes on. Never the upstream.
        let a = w.proxy.get("/public/..;/admin", &[]).await;
        assert_eq!(
            a.status,
            kind.fail_closed_status(Some(400)),
            "{kind:?}: {a:?}"
        );
        assert_eq!(
            w.echo.hits(),
            0,
            "{kind:?}: a path trick reached the upstream"
        );
        // The same path tricks with a valid token reach the upstream, decided on /admin.
        let bearer = format!("Bearer {admin}");
        let a = w
            .proxy
            .get("/public/%2e%2e/admin", &[("authorization", &bearer)])
            .await;
        assert_eq!(a.status, 200, "{kind:?}: {a:?}");
        assert_eq!(w.echo.hits(), 1, "{kind:?}");
    }
}

#[tokio::test]
async fn with_ward_down_the_proxy_fails_closed() {
    for kind in KINDS {
        let Some(w) = world(kind).await else { continue };
        let World { ward, echo, proxy } = w;
        assert_eq!(proxy.get("/public", &[]).await.status, 200, "{kind:?}");
        ward.shutdown().await;
        for path in ["/public", "/admin"] {
            let a = proxy.get(path, &with_forged(&[])).await;
            assert_eq!(
                a.status,
                kind.fail_closed_status(None),
                "{kind:?} {path}: {a:?}"
            );
        }
        assert_eq!(
            echo.hits(),
            1,
            "{kind:?}: a request went through without ward"
        );
    }
}
