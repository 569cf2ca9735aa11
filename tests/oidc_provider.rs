//! ward against a real, certified OpenID provider (`oidc-provider` from npm, see
//! tests/oidc/): discovery, RFC 9068 JWT access tokens in every algorithm both sides
//! support, authorization-code and client-credentials tokens, key rotation, RFC 7662
//! introspection of opaque tokens and RFC 7009 revocation, each decision asked through
//! ward's gRPC Check.
//!
//! Skipped (with a message) when Node.js is absent, except in CI (`CI=true`).

mod common;
mod oidc;

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use common::{Req, Summary, Ward, eventually};
use oidc::{ALGS, AUDIENCE, OPAQUE_RESOURCE, OTHER_RESOURCE, Op};
use ward::clock::Clock;

/// How long a test waits for something ward or the provider does in the background.
const PATIENCE: Duration = Duration::from_secs(10);

/// ward in front of `op`: provider `op` (JWTs, keys by discovery) on `/read` (scope
/// `read`) and `/write` (scope `write`); provider `op-opaque` (introspection, endpoint by
/// discovery, subject `sub` or else `client_id`) on `/opaque` (scope `read`).
async fn ward_for(op: &Op) -> Ward {
    ward_on(op, Clock::system()).await
}

/// [`ward_for`], judging time by `clock`.
async fn ward_on(op: &Op, clock: Clock) -> Ward {
    let iss = &op.issuer;
    let algs = ALGS.join(", ");
    let (client_id, _) = oidc::WARD_CLIENT;
    let yaml = format!(
        r#"
providers:
  - name: op
    jwt:
      issuer: "{iss}"
      audiences: [{AUDIENCE}]
      discovery: true
      algorithms: [{algs}]
      min_refetch_interval: 1s
      timeout: 2s
  - name: op-opaque
    introspection:
      issuer: "{iss}"
      discovery: true
      client_id: {client_id}
      client_secret: ${{OP_CLIENT_SECRET}}
      audiences: [{AUDIENCE}]
      subject: [sub, client_id]
      cache_ttl: 1s
      negative_cache_ttl: 1s
      timeout: 2s
routes:
  - name: read
    match: {{ path_prefix: /read }}
    providers: [op]
    require: {{ scopes_any: [read] }}
  - name: write
    match: {{ path_prefix: /write }}
    providers: [op]
    require: {{ scopes_all: [write] }}
  - name: opaque
    match: {{ path_prefix: /opaque }}
    providers: [op-opaque]
    require: {{ scopes_any: [read] }}
"#
    );
    let ward = Ward::builder(&yaml)
        .env("OP_CLIENT_SECRET", oidc::WARD_CLIENT.1)
        .clock(clock)
        .start()
        .await;
    ward.wait_ready(200, PATIENCE).await;
    ward
}

fn get(path: &str, token: &str) -> CheckRequest {
    Req::get(path).bearer(token).to_map()
}

/// Asserts an allow with these identity headers; `None` means the header is not set.
#[track_caller]
fn assert_allowed(s: &Summary, case: &str, provider: &str, subject: Option<&str>, scopes: &str) {
    assert_eq!(s.short(), (0, 200, "ok"), "{case}: {s:?}");
    assert_eq!(s.subject(), subject, "{case}: subject: {s:?}");
    assert_eq!(s.header("x-auth-scopes"), Some(scopes), "{case}: {s:?}");
    assert_eq!(s.header("x-auth-provider"), Some(provider), "{case}: {s:?}");
}

/// Asserts a denial with this reason whose detail mentions `detail`.
#[track_caller]
fn assert_denied(s: &Summary, case: &str, want: (i32, u16, &str), detail: &str) {
    assert_eq!(s.short(), want, "{case}: {s:?}");
    assert!(
        s.detail.contains(detail),
        "{case}: detail {:?} does not mention {detail:?}",
        s.detail
    );
}

const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");
const FORBIDDEN: (i32, u16, &str) = (7, 403, "forbidden");

// === tests ===

#[tokio::test]
async fn discovery_and_jwt_access_tokens_in_every_algorithm() {
    let Some(op) = Op::start().await else { return };
    let ward = ward_for(&op).await;
    for alg in ALGS {
        let resource = oidc::jwt_resource(alg);

        // Client credentials: RFC 9068 gives the token `sub` = client_id.
        let cc = op.client_credentials(&resource, "read").await.access_token;
        let header = oidc::jwt_header(&cc);
        assert_eq!(header["alg"], alg, "{alg}: {header}");
        assert_eq!(header["typ"], "at+jwt", "{alg}: {header}");
        let payload = oidc::jwt_payload(&cc);
        assert_eq!(
            payload["aud"], AUDIENCE,
            "{alg}: aud is a string: {payload}"
        );
        let s = ward.summary(get("/read/x", &cc)).await;
        assert_allowed(
            &s,
            &format!("{alg} client credentials"),
            "op",
            Some("app"),
            "read",
        );
        assert_eq!(s.header("x-auth-issuer"), Some(op.issuer.as_str()), "{s:?}");

        // Authorization code: the signed-in user is the subject.
        let user = op
            .code_flow("alice", &resource, "openid read write")
            .await
            .access_token;
        assert_eq!(oidc::jwt_header(&user)["alg"], alg);
        for path in ["/read/x", "/write/x"] {
            let s = ward.summary(get(path, &user)).await;
            assert_allowed(
                &s,
                &format!("{alg} code flow {path}"),
                "op",
                Some("alice"),
                "read write",
            );
        }
    }
    // One key per family: RSA (RS256 and PS256), P-256, P-384, Ed25519.
    assert_eq!(
        ward.metric("ward_jwks_keys", &[("provider", "op")]).await,
        Some(4.0)
    );
}

#[tokio::test]
async fn scopes_audiences_and_foreign_tokens_are_refused_with_reasons() {
    let Some(op) = Op::start().await else { return };
    let ward = ward_for(&op).await;

    let read_only = op
        .client_credentials(&oidc::jwt_resource("ES256"), "read")
        .await
        .access_token;
    let s = ward.summary(get("/write/x", &read_only)).await;
    assert_denied(&s, "read-only token on /write", FORBIDDEN, "");
    let challenge = s.www_authenticate.clone().unwrap_or_default();
    assert!(
        challenge.contains("insufficient_scope"),
        "the 403 names the missing scope: {s:?}"
    );

    // A JWT for another audience, signed by the same provider with a key ward holds.
    let other = op
        .client_credentials(OTHER_RESOURCE, "read")
        .await
        .access_token;
    assert_eq!(oidc::jwt_payload(&other)["aud"], "other");
    let s = ward.summary(get("/read/x", &other)).await;
    assert_denied(&s, "another audience", INVALID, "aud");

    // An ID token is a JWT from the same issuer and key set, but for the client.
    let tokens = op
        .code_flow("alice", &oidc::jwt_resource("RS256"), "openid read")
        .await;
    let id_token = tokens.id_token.expect("the code flow returns an ID token");
    assert_eq!(oidc::jwt_payload(&id_token)["aud"], "app");
    let s = ward.summary(get("/read/x", &id_token)).await;
    assert_denied(&s, "an ID token as access token", INVALID, "aud");

    // An opaque access token on a JWT route.
    let opaque = op
        .client_credentials(OPAQUE_RESOURCE, "read")
        .await
        .access_token;
    let s = ward.summary(get("/read/x", &opaque)).await;
    assert_eq!(s.short(), INVALID, "an opaque token on a JWT route: {s:?}");

    // A valid token whose signature is altered.
    let mut forged = tokens.access_token.clone();
    let last = forged.pop().expect("a non-empty token");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let s = ward.summary(get("/read/x", &forged)).await;
    assert_eq!(s.short(), INVALID, "an altered signature: {s:?}");
    let s = ward.summary(get("/read/x", &tokens.access_token)).await;
    assert_allowed(&s, "the unaltered token", "op", Some("alice"), "read");

    let s = ward.summary(Req::get("/read/x").to_map()).await;
    assert_eq!(s.short(), (16, 401, "missing_credential"), "{s:?}");
}

#[tokio::test]
async fn key_rotation_trusts_the_new_key_and_revokes_the_removed_one() {
    let Some(op) = Op::start().await else { return };
    let ward = ward_for(&op).await;
    let resource = oidc::jwt_resource("ES256");

    let checked = op.client_credentials(&resource, "read").await.access_token;
    let unchecked = op.client_credentials(&resource, "read").await.access_token;
    let other_family = op
        .client_credentials(&oidc::jwt_resource("RS256"), "read")
        .await
        .access_token;
    let s = ward.summary(get("/read/x", &checked)).await;
    assert_allowed(&s, "before rotation", "op", Some("app"), "read");

    let (removed, added) = op.rotate("ES256").await;
    let kids = op.kids().await;
    assert!(
        kids.contains(&added) && !kids.contains(&removed),
        "{kids:?}"
    );
    let fresh = op.client_credentials(&resource, "read").await.access_token;
    assert_eq!(oidc::jwt_header(&fresh)["kid"], added.as_str());

    // The unknown kid makes ward refetch the JWKS (at most once per
    // min_refetch_interval), after which the new key verifies.
    let r = ward.wait_allowed(&get("/read/x", &fresh), PATIENCE).await;
    assert_allowed(
        &common::summary(&r),
        "signed by the new key",
        "op",
        Some("app"),
        "read",
    );
    let s = ward.summary(get("/read/x", &other_family)).await;
    assert_allowed(&s, "a key that stayed", "op", Some("app"), "read");

    let s = ward.summary(get("/read/x", &unchecked)).await;
    assert_eq!(
        s.short(),
        INVALID,
        "signed by the removed key, never seen: {s:?}"
    );
    let s = ward.summary(get("/read/x", &checked)).await;
    assert_eq!(
        s.short(),
        INVALID,
        "signed by the removed key and verified before it was removed: a cached \
         verification must not outlive its key: {s:?}"
    );
}

#[tokio::test]
async fn opaque_tokens_through_introspection() {
    let Some(op) = Op::start().await else { return };
    let ward = ward_for(&op).await;

    let user = op
        .code_flow("alice", OPAQUE_RESOURCE, "openid offline_access read")
        .await;
    let (status, answer) = op.introspect(&user.access_token).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["sub"], &answer["aud"], &answer["token_type"]),
        (&"alice".into(), &AUDIENCE.into(), &"Bearer".into()),
        "{answer}"
    );
    let s = ward.summary(get("/opaque/x", &user.access_token)).await;
    assert_allowed(&s, "code flow", "op-opaque", Some("alice"), "read");
    assert_eq!(s.header("x-auth-issuer"), Some(op.issuer.as_str()), "{s:?}");

    // The provider's answer for a client-credentials token carries no `sub`, where its
    // JWT has `sub` = client_id: `subject: [sub, client_id]` gives one client one
    // subject whatever the token's format.
    let machine = op
        .client_credentials(OPAQUE_RESOURCE, "read write")
        .await
        .access_token;
    let (_, answer) = op.introspect(&machine).await;
    assert_eq!(answer["client_id"], "app", "{answer}");
    assert!(answer.get("sub").is_none(), "{answer}");
    let s = ward.summary(get("/opaque/x", &machine)).await;
    assert_allowed(
        &s,
        "client credentials",
        "op-opaque",
        Some("app"),
        "read write",
    );
    let as_jwt = op
        .client_credentials(&oidc::jwt_resource("ES256"), "read write")
        .await
        .access_token;
    let s = ward.summary(get("/read/x", &as_jwt)).await;
    assert_allowed(
        &s,
        "the same client, as a JWT",
        "op",
        Some("app"),
        "read write",
    );

    // A refresh token is active but has neither `aud` nor `token_type` in its answer:
    // the audience check is what keeps it out.
    let refresh = user
        .refresh_token
        .expect("offline_access gives a refresh token");
    let (_, answer) = op.introspect(&refresh).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert!(
        answer.get("aud").is_none() && answer.get("token_type").is_none(),
        "{answer}"
    );
    let s = ward.summary(get("/opaque/x", &refresh)).await;
    assert_denied(&s, "a refresh token", INVALID, "aud");
}

#[tokio::test]
async fn a_jwt_on_the_introspection_route_is_refused_not_an_outage() {
    let Some(op) = Op::start().await else { return };
    let ward = ward_for(&op).await;
    let user = op
        .code_flow("alice", OPAQUE_RESOURCE, "openid read")
        .await
        .access_token;
    // The provider refuses to introspect a JWT (400 unsupported_token_type): an OAuth
    // error about the token, so 401, never counted as the provider failing.
    let jwt = op
        .client_credentials(&oidc::jwt_resource("ES256"), "read")
        .await
        .access_token;
    let (status, answer) = op.introspect(&jwt).await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &"unsupported_token_type".into())
    );
    for i in 0..8 {
        let s = ward.summary(get("/opaque/x", &jwt)).await;
        assert_eq!(
            s.short(),
            INVALID,
            "a JWT on the introspection route, #{i}: {s:?}"
        );
    }
    let s = ward.summary(get("/opaque/x", &user)).await;
    assert_allowed(
        &s,
        "a valid token after them",
        "op-opaque",
        Some("alice"),
        "read",
    );
}

#[tokio::test]
async fn revocation_reaches_ward_through_introspection() {
    let Some(op) = Op::start().await else { return };
    // The provider stamps its tokens by the wall clock: ward's starts there too.
    let (clock, hand) = Clock::manual_from_now();
    let ward = ward_on(&op, clock).await;

    let revoked_first = op
        .code_flow("alice", OPAQUE_RESOURCE, "openid read")
        .await
        .access_token;
    let (status, body) = op.revoke(&revoked_first).await;
    assert_eq!(status, 200, "{body}");
    let s = ward.summary(get("/opaque/x", &revoked_first)).await;
    assert_denied(&s, "revoked before use", INVALID, "");

    // Revoked while ward holds it: refused once the cached answer (cache_ttl 1s) ends.
    let in_use = op
        .code_flow("bob", OPAQUE_RESOURCE, "openid read")
        .await
        .access_token;
    let s = ward.summary(get("/opaque/x", &in_use)).await;
    assert_allowed(&s, "before revocation", "op-opaque", Some("bob"), "read");
    let (status, body) = op.revoke(&in_use).await;
    assert_eq!(status, 200, "{body}");
    eventually(PATIENCE, async || {
        hand.advance(Duration::from_secs(1));
        let s = ward.summary(get("/opaque/x", &in_use)).await;
        if s.short() == INVALID {
            Ok(())
        } else {
            Err(format!("a revoked token is still answered {s:?}"))
        }
    })
    .await;

    // A JWT access token cannot be revoked at all: it is valid until its `exp`.
    let jwt = op
        .client_credentials(&oidc::jwt_resource("ES256"), "read")
        .await
        .access_token;
    let (status, body) = op.revoke(&jwt).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &"unsupported_token_type".into())
    );
    let s = ward.summary(get("/read/x", &jwt)).await;
    assert_allowed(&s, "a JWT after revocation", "op", Some("app"), "read");
    assert_eq!(
        ward.metric(
            "ward_introspection_requests_total",
            &[("provider", "op-opaque"), ("result", "inactive")]
        )
        .await
        .map(|n| n >= 2.0),
        Some(true),
        "{}",
        ward.metrics().await
    );
}

/// The issue's case: an ID token (its `aud` is the client id) on a route whose audience
/// is that client id passes every claim check; explicit typing refuses it, and the
/// provider's RFC 9068 access tokens (`typ: at+jwt`) still pass.
#[tokio::test]
async fn token_types_refuse_an_id_token_whose_audience_fits() {
    let Some(op) = Op::start().await else { return };
    let iss = &op.issuer;
    let algs = ALGS.join(", ");
    let provider = |name: &str, aud: &str, typed: bool| {
        let types = if typed {
            "      token_types: [at+jwt]\n"
        } else {
            ""
        };
        format!(
            "  - name: {name}\n    jwt:\n      issuer: \"{iss}\"\n      audiences: [{aud}]\n      discovery: true\n      algorithms: [{algs}]\n      timeout: 2s\n{types}"
        )
    };
    let yaml = format!(
        "providers:\n{}{}{}routes:\n  - name: client\n    match: {{ path_prefix: /client }}\n    providers: [client]\n  - name: client-typed\n    match: {{ path_prefix: /typed }}\n    providers: [client-typed]\n  - name: api-typed\n    match: {{ path_prefix: /api }}\n    providers: [api-typed]\n",
        provider("client", "app", false),
        provider("client-typed", "app", true),
        provider("api-typed", AUDIENCE, true),
    );
    let ward = Ward::builder(&yaml).start().await;
    ward.wait_ready(200, PATIENCE).await;
    let tokens = op
        .code_flow("alice", &oidc::jwt_resource("RS256"), "openid read")
        .await;
    let id_token = tokens.id_token.expect("the code flow returns an ID token");
    assert_eq!(oidc::jwt_payload(&id_token)["aud"], "app");
    let access_header = oidc::jwt_header(&tokens.access_token);
    assert_eq!(access_header["typ"], "at+jwt", "{access_header}");
    // Without token_types the ID token passes as an access token for `app`.
    let s = ward.summary(get("/client/x", &id_token)).await;
    assert_eq!(s.short(), (0, 200, "ok"), "{s:?}");
    let s = ward.summary(get("/typed/x", &id_token)).await;
    assert_denied(
        &s,
        "an ID token on a typed route",
        INVALID,
        "token type not accepted",
    );
    let s = ward.summary(get("/api/x", &tokens.access_token)).await;
    assert_allowed(
        &s,
        "an RFC 9068 access token",
        "api-typed",
        Some("alice"),
        "read",
    );
}
