//! Purpose tokens minted on allow (SPEC §8) through `Authorization/Check`: the token is
//! set in the route's mint header and verifies with the keys ward publishes; the header
//! is owned (removed from clients on every route, other spellings too); the mint cache
//! hands the same token out until 80% of its lifetime; shadow allows and anonymous
//! requests mint nothing; a token never outlives the credential it was minted from.

mod common;
mod issuer_setup;

use std::time::Duration;

use serde_json::json;

use common::{CLOCK_START, Req, allowed, assert_overwrites, denial, removed, set_header_map};
use issuer_setup::{MINT_HEADER, WARD_ISS, parts, start, user, verify};

#[tokio::test]
async fn an_allow_carries_a_token_that_the_published_keys_verify() {
    let (ward, _clock) = start().await;
    let tok = user(
        "alice",
        json!({"roles": ["buyer", "viewer"], "tenant": "acme", "email": "a@x"}),
    );
    let r = ward
        .check(Req::get("/checkout/cart").bearer(&tok).to_map())
        .await;
    let ok = allowed(&r);
    assert_overwrites(ok);
    let minted = set_header_map(ok)
        .remove(MINT_HEADER)
        .expect("the minted token is set");
    let (header, _) = parts(&minted);
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": "2026-12", "typ": "JWT"})
    );
    let mut claims = verify(&ward, &minted, "payments-api")
        .await
        .expect("verifies");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    claims.as_object_mut().expect("claims").remove("jti");
    assert_eq!(
        claims,
        json!({
            "iss": WARD_ISS,
            "aud": "payments-api",
            "sub": "alice",
            "iat": CLOCK_START,
            "exp": CLOCK_START + 60,
            "purpose": "checkout",
            "act": {"iss": "https://corp.test", "sub": "alice"},
            "roles": ["buyer", "viewer"],
            "tenant": "acme",
        }),
        "the listed claims and nothing more (no email)"
    );
    // Another purpose's audience does not accept it.
    assert!(verify(&ward, &minted, "refunds-api").await.is_err());
}

#[tokio::test]
async fn the_mint_header_is_owned_on_every_route() {
    let (ward, _clock) = start().await;
    let buyer = user("alice", json!({"roles": ["buyer"]}));
    let smuggle = |path: &str| {
        Req::get(path)
            .header(MINT_HEADER, "forged.token.value")
            .header("x_auth_token", "forged")
    };
    // Allowed without a token (no mint, or anonymous): both spellings removed, none set.
    for (path, bearer) in [
        ("/api/orders", Some(&buyer)),
        ("/public/page", None),
        ("/optional/page", None),
    ] {
        let mut req = smuggle(path);
        if let Some(b) = bearer {
            req = req.bearer(b);
        }
        let r = ward.check(req.to_map()).await;
        let ok = allowed(&r);
        assert!(!set_header_map(ok).contains_key(MINT_HEADER), "{path}");
        let gone = removed(ok);
        assert!(gone.contains(MINT_HEADER), "{path}: {gone:?}");
        assert!(gone.contains("x_auth_token"), "{path}: {gone:?}");
    }
    // On the minting route the forged value is overwritten by the minted token.
    let r = ward
        .check(smuggle("/checkout").bearer(&buyer).to_map())
        .await;
    let ok = allowed(&r);
    assert_overwrites(ok);
    let set = set_header_map(ok);
    assert_ne!(set[MINT_HEADER], "forged.token.value");
    assert!(removed(ok).contains("x_auth_token"));
    // A denial mints nothing.
    let viewer = user("bob", json!({"roles": ["viewer"]}));
    let d = denial(
        &ward
            .check(Req::get("/checkout").bearer(&viewer).to_map())
            .await,
    );
    assert_eq!(d.short().1, 403);
    assert_eq!(
        ward.metric("ward_tokens_minted_total", &[("purpose", "checkout")])
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_hot_route_signs_once_per_identity_until_80_percent_of_the_ttl() {
    let (ward, clock) = start().await;
    let alice = user("alice", json!({"roles": ["buyer"]}));
    let mint = |tok: String| {
        let ward = &ward;
        async move {
            let r = ward
                .check(Req::get("/checkout").bearer(&tok).to_map())
                .await;
            set_header_map(allowed(&r))[MINT_HEADER].clone()
        }
    };
    let first = mint(alice.clone()).await;
    for _ in 0..5 {
        assert_eq!(mint(alice.clone()).await, first);
    }
    let count = || ward.metric("ward_tokens_minted_total", &[("purpose", "checkout")]);
    assert_eq!(count().await, Some(1.0));
    // Another identity, another token.
    let bob = mint(user("bob", json!({"roles": ["buyer"]}))).await;
    assert_ne!(bob, first);
    assert_eq!(count().await, Some(2.0));
    // 47 s into a 60 s token: still handed out; at 48 s (80%) a new one is signed.
    clock.advance(Duration::from_secs(47));
    assert_eq!(mint(alice.clone()).await, first);
    clock.advance(Duration::from_secs(1));
    let renewed = mint(alice.clone()).await;
    assert_ne!(renewed, first);
    assert_eq!(parts(&renewed).1["iat"], CLOCK_START + 48);
    assert_eq!(count().await, Some(3.0));
}

#[tokio::test]
async fn shadow_allows_and_anonymous_requests_mint_nothing() {
    let (ward, _clock) = start().await;
    // The rules fail (no admin role): shadow lets the request through, unminted.
    let buyer = user("alice", json!({"roles": ["buyer"]}));
    let r = ward
        .check(Req::get("/shadow/x").bearer(&buyer).to_map())
        .await;
    let ok = allowed(&r);
    assert!(!set_header_map(ok).contains_key(MINT_HEADER));
    assert!(removed(ok).contains(MINT_HEADER));
    // An anonymous request on a route that takes one: no identity, no token.
    let r = ward.check(Req::get("/optional").to_map()).await;
    assert!(removed(allowed(&r)).contains(MINT_HEADER));
    // With a credential, the same route mints.
    let r = ward
        .check(Req::get("/optional").bearer(&buyer).to_map())
        .await;
    assert!(set_header_map(allowed(&r)).contains_key(MINT_HEADER));
    assert_eq!(
        ward.metric("ward_tokens_minted_total", &[("purpose", "shadowed")])
            .await,
        Some(0.0)
    );
}

#[tokio::test]
async fn a_minted_token_never_outlives_its_credential() {
    let (ward, _clock) = start().await;
    let mut claims = json!({"iss": "https://corp.test", "aud": "api", "sub": "alice",
        "roles": ["buyer"], "exp": CLOCK_START + 10});
    let short = common::KeyRing::shared().es256.sign(&claims);
    let r = ward
        .check(Req::get("/checkout").bearer(&short).to_map())
        .await;
    let minted = set_header_map(allowed(&r))[MINT_HEADER].clone();
    assert_eq!(parts(&minted).1["exp"], CLOCK_START + 10);
    // Same identity, longer credential: not handed the shorter token.
    claims["exp"] = json!(CLOCK_START + 300);
    let long = common::KeyRing::shared().es256.sign(&claims);
    let r = ward
        .check(Req::get("/checkout").bearer(&long).to_map())
        .await;
    let again = set_header_map(allowed(&r))[MINT_HEADER].clone();
    assert_eq!(parts(&again).1["exp"], CLOCK_START + 60);
}

#[tokio::test]
async fn a_rewritten_signing_key_file_is_picked_up_by_the_watcher() {
    let ward = common::Ward::from_file("ward.yaml")
        .file("ward.yaml", issuer_setup::config(""))
        .file(
            "signing/current.pem",
            issuer_setup::signing_key().key_file(),
        )
        .watch(Some(Duration::from_millis(50)))
        .start()
        .await;
    let x = || async {
        let (_, body) = ward.admin_get("/.well-known/jwks.json").await;
        let jwks: serde_json::Value = serde_json::from_str(&body).expect("JWKS");
        jwks["keys"][0]["x"].clone()
    };
    assert_eq!(x().await, issuer_setup::signing_key().jwk()["x"]);
    let replacement = common::TestKey::generate(ward::authn::jwt::Alg::ES256);
    std::fs::write(
        ward.dir().join("signing/current.pem"),
        replacement.key_file(),
    )
    .expect("rotate");
    common::eventually(Duration::from_secs(10), async || {
        if x().await == replacement.jwk()["x"] {
            Ok(())
        } else {
            Err("the JWKS still holds the old key".to_string())
        }
    })
    .await;
    // Tokens are signed with the new key from the reload on (the mint cache starts anew).
    let tok = common::corp_token(&common::KeyRing::shared().es256, "alice");
    let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    allowed(&r);
    let buyer = common::KeyRing::shared()
        .es256
        .sign(&json!({"iss": "https://corp.test",
        "aud": "api", "sub": "alice", "roles": ["buyer"], "exp": common::now() + 300}));
    let r = ward
        .check(Req::get("/checkout").bearer(&buyer).to_map())
        .await;
    let minted = set_header_map(allowed(&r))[MINT_HEADER].clone();
    let claims = verify(&ward, &minted, "payments-api")
        .await
        .expect("verifies with the new key");
    assert_eq!(claims["sub"], "alice");
}
