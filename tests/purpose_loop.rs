//! The gateway shape and the plugin shape together (SPEC §1, §8): a gateway ward mints
//! a purpose token on an allowed check (asked through the real gRPC API), and a Rust
//! service embedding ward's tower layer, configured with the gateway as its only issuer
//! (`discovery: true` against the gateway's admin listener), verifies it offline and
//! reads the identity. What the service must refuse: a token for another audience or
//! purpose, the upstream IdP's own token, a tampered token, an expired one.

mod common;
mod purpose_setup;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use ward::authn::jwt::Alg;

use common::{CLOCK_START, manual_clock};
use purpose_setup::{
    AUDIENCE, Gateway, IDP, LEEWAY, Service, SigningKey, TTL, header_of, payload_of, user_token,
};

/// A gateway signing with one ES256 key and the service that trusts it, on one manual
/// clock.
async fn start() -> (Gateway, Service, ward::clock::ManualClock) {
    let (clock, hand) = manual_clock();
    let key = SigningKey::generate("gw-1", Alg::ES256);
    let gateway = Gateway::start(&[&key], clock.clone()).await;
    let service = Service::start(&gateway.issuer, clock).await;
    (gateway, service, hand)
}

#[tokio::test]
async fn the_service_verifies_the_gateways_token_and_reads_the_identity() {
    let (gateway, service, _hand) = start().await;
    let user = user_token("alice", &["buyer", "viewer"]);
    let token = gateway.mint("/checkout/cart", &user).await;

    // What the gateway signed: its own issuer, the service's audience, the purpose.
    let header = header_of(&token);
    assert_eq!(
        (
            header["alg"].as_str(),
            header["kid"].as_str(),
            header["typ"].as_str()
        ),
        (Some("ES256"), Some("gw-1"), Some("JWT")),
        "{header}"
    );
    let claims = payload_of(&token);
    assert_eq!(claims["iss"], gateway.issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], AUDIENCE, "{claims}");
    assert_eq!(claims["purpose"], "checkout", "{claims}");
    assert_eq!(
        claims["act"],
        json!({"iss": IDP, "sub": "alice"}),
        "{claims}"
    );
    assert_eq!(claims["exp"], CLOCK_START + TTL, "{claims}");

    // The client's own identity headers never reach the handler.
    let a = service
        .get(
            "/payments/charge",
            Some(&token),
            &[("x-auth-subject", "mallory"), ("x-auth-roles", "admin")],
        )
        .await;
    assert_eq!(a.short(), (200, "", ""), "{a:?}");
    assert_eq!(
        a.body,
        json!({
            "subject": "alice",
            "issuer": gateway.issuer,
            "provider": "ward",
            "roles": ["buyer", "viewer"],
            "expires_at": CLOCK_START + TTL,
            "headers": {
                "x-auth-subject": "alice",
                "x-auth-issuer": gateway.issuer,
                "x-auth-provider": "ward",
                "x-auth-roles": "buyer,viewer",
                "x-auth-purpose": "checkout",
                "x-auth-tenant": "acme",
            },
        })
    );
}

#[tokio::test]
async fn an_issuer_written_with_a_trailing_slash_is_that_string_on_both_sides() {
    let (clock, _hand) = manual_clock();
    let key = SigningKey::generate("gw-1", Alg::ES256);
    let gateway = Gateway::start_slashed(&[&key], clock.clone()).await;
    assert!(gateway.issuer.ends_with('/'), "{}", gateway.issuer);
    let (status, body) = gateway
        .ward
        .admin_get("/.well-known/openid-configuration")
        .await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["issuer"], gateway.issuer.as_str(), "{doc}");
    assert_eq!(
        doc["jwks_uri"],
        format!("{}.well-known/jwks.json", gateway.issuer),
        "{doc}"
    );

    let service = Service::start(&gateway.issuer, clock).await;
    let token = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    assert_eq!(payload_of(&token)["iss"], gateway.issuer.as_str());
    let a = service.pay(&token).await;
    assert_eq!(a.short(), (200, "", ""), "{a:?}");
    assert_eq!(a.body["issuer"], gateway.issuer.as_str(), "{a:?}");
}

#[tokio::test]
async fn the_service_keeps_verifying_with_the_gateway_gone() {
    let (gateway, service, _hand) = start().await;
    let token = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    let fetches = service.key_fetches();
    gateway.ward.shutdown().await;
    for _ in 0..3 {
        let a = service.pay(&token).await;
        assert_eq!(a.short(), (200, "", ""), "{a:?}");
    }
    assert_eq!(
        service.key_fetches(),
        fetches,
        "known keys verify offline: no fetch"
    );
}

#[tokio::test]
async fn tokens_for_another_audience_or_purpose_are_refused() {
    let (gateway, service, _hand) = start().await;
    let user = user_token("alice", &["buyer"]);

    // Same gateway, same key, same user: another service's audience.
    let reports = gateway.mint("/reports/q3", &user).await;
    assert_eq!(payload_of(&reports)["aud"], "reports-api");
    let a = service.pay(&reports).await;
    assert_eq!(
        a.short(),
        (401, "invalid_token", "audience not accepted"),
        "{a:?}"
    );

    // The service's audience, minted for another purpose (route `quote`).
    let quote = gateway.mint("/quote/42", &user).await;
    assert_eq!(payload_of(&quote)["aud"], AUDIENCE);
    let a = service.pay(&quote).await;
    assert_eq!(
        a.short(),
        (403, "forbidden", "access denied by policy"),
        "{a:?}"
    );

    // The upstream IdP's token is not ward's: the service trusts one issuer, and
    // refuses another's token before looking for its key.
    let a = service.pay(&user).await;
    assert_eq!(
        a.short(),
        (401, "invalid_token", "issuer not trusted on this route"),
        "{a:?}"
    );

    // The same token where the service does not read it is no credential.
    let a = service
        .get(
            "/payments/charge",
            None,
            &[(
                "authorization",
                &format!("Bearer {}", gateway.mint("/checkout/a", &user).await),
            )],
        )
        .await;
    assert_eq!(
        a.short(),
        (401, "missing_credential", "no credential"),
        "{a:?}"
    );

    // The purpose token the service accepts, as a control.
    let checkout = gateway.mint("/checkout/cart", &user).await;
    assert_eq!(service.pay(&checkout).await.short(), (200, "", ""));
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let (gateway, service, _hand) = start().await;
    let token = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");

    // Another subject, the gateway's signature kept.
    let mut claims = payload_of(&token);
    claims["sub"] = "mallory".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let swapped = format!("{}.{forged_payload}.{}", parts[0], parts[2]);

    // The gateway's payload, one bit of the signature flipped.
    let mut sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .expect("base64url signature");
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));

    // Signed by a key the gateway does not publish, under the gateway's kid.
    let stranger = SigningKey::generate("gw-1", Alg::ES256);
    let header_json = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).expect("base64url"))
        .expect("a UTF-8 header");
    let resigned = stranger
        .key
        .sign_parts(&header_json, &payload_of(&token).to_string());

    for (case, t) in [
        ("payload", &swapped),
        ("signature", &flipped),
        ("key", &resigned),
    ] {
        let a = service.pay(t).await;
        assert_eq!(
            a.short(),
            (401, "invalid_token", "signature verification failed"),
            "{case}: {a:?}"
        );
    }
    assert_eq!(
        service.pay(&token).await.short(),
        (200, "", ""),
        "the original"
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (gateway, service, hand) = start().await;
    let token = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    assert_eq!(payload_of(&token)["exp"], CLOCK_START + TTL);

    // Valid up to its exp and the service's leeway...
    hand.advance(Duration::from_secs(TTL + LEEWAY - 1));
    assert_eq!(service.pay(&token).await.short(), (200, "", ""));
    // ...and not a second past.
    hand.advance(Duration::from_secs(2));
    let a = service.pay(&token).await;
    assert_eq!(a.short(), (401, "invalid_token", "token expired"), "{a:?}");
    assert!(
        a.www_authenticate
            .as_deref()
            .is_some_and(|c| c.contains(r#"error="invalid_token""#)),
        "{a:?}"
    );

    // The gateway mints a fresh one for the same user.
    let fresh = gateway
        .mint("/checkout/cart", &user_token("alice", &["buyer"]))
        .await;
    assert_ne!(fresh, token);
    assert_eq!(service.pay(&fresh).await.short(), (200, "", ""));
}
