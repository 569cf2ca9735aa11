//! The verified-token cache and provider choice against keys fetched from a real HTTP IdP
//! on 127.0.0.1: a cached token is not served past `exp`, a removed key revokes the
//! tokens it signed even when cached, a warm cache decides as a cold one, key fetches
//! outlive the check that started them, a reload keeps keys while the IdP is down, and
//! on a multi-issuer route the token's issuer picks the provider (and its size cap).

mod common;
mod idp;
mod remote_keys_setup;

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use serde_json::json;

use common::{
    CLOCK_START, TestKey, Ward, describe, eventually, jwks_of, manual_clock, metric, now, summary,
};
use idp::Idp;
use remote_keys_setup::{
    ISS, PATIENCE, config, get, outcome, start_manual_on, start_on, token, token_until,
};
use ward::authn::jwt::Alg;

#[tokio::test]
async fn cached_token_is_not_served_past_exp() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let (ward, clock) = start_manual_on(&idp, "leeway: 0s").await;
    ward.wait_ready(200, PATIENCE).await;
    let t = token_until(&k, ISS, "alice", CLOCK_START + 2);
    assert_eq!(outcome(&ward.check(get("/api/x", Some(&t))).await).1, 200);
    assert_eq!(
        outcome(&ward.check(get("/api/x", Some(&t))).await).1,
        200,
        "served from cache"
    );
    let m = ward.metrics().await;
    assert_eq!(
        metric(
            &m,
            "ward_token_cache_requests_total",
            &[("provider", "idp"), ("result", "hit")]
        ),
        Some(1.0),
        "{m}"
    );
    // ward's clock reaches the token's exp.
    clock.advance(Duration::from_secs(2));
    let r = ward.check(get("/api/x", Some(&t))).await;
    assert_eq!(outcome(&r), (16, 401, "invalid_token".into(), None));
}

#[tokio::test]
async fn a_key_fetch_outlives_the_check_that_started_it() {
    // Envoy cancels a check that waits longer than its timeout. The key fetch that check
    // started must not be abandoned with it: min_refetch_interval (here 1h) would then
    // keep the new key out until the next scheduled refresh.
    let old = TestKey::generate(Alg::RS256);
    let new = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let ward = start_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1h").await;
    ward.wait_ready(200, PATIENCE).await;
    idp.set_jwks(jwks_of(&[&old, &new]));
    idp.set_delay(Duration::from_millis(400));
    let t = token(&new, ISS, "alice", 60);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        ward.check(get("/api/x", Some(&t))),
    )
    .await;
    assert!(cancelled.is_err(), "the check waits for the slow fetch");
    eventually(PATIENCE, async || {
        match outcome(&ward.check(get("/api/x", Some(&t))).await) {
            (0, ..) => Ok(()),
            o => Err(format!("the new key never arrived: {o:?}")),
        }
    })
    .await;
    assert_eq!(idp.jwks_hits(), 2, "startup, then the one on-demand fetch");
}

#[tokio::test]
async fn an_engine_without_background_refresh_still_drops_a_removed_key() {
    // `Engine::new` (the tower layer, `ward check`) runs no refresh task: a check that
    // finds its keys older than refresh_interval refetches them behind itself.
    let old = TestKey::generate(Alg::RS256);
    let new = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let yaml = config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "refresh_interval: 1s\n      min_refetch_interval: 1s",
    );
    let (clock, hand) = manual_clock();
    let engine = Ward::builder(&yaml).clock(clock).engine();
    let code = async |k: &TestKey| {
        let headers = [(
            "authorization".to_string(),
            format!("Bearer {}", token_until(k, ISS, "u", CLOCK_START + 3600)),
        )];
        let input = ward::request::CheckInput::from_pairs("GET", "h", "/api/x", &headers, &[]);
        ward::decision::Report::new(&engine.check(&input).await).status()
    };
    assert_eq!(code(&old).await, 200);
    idp.set_jwks(jwks_of(&[&new]));
    // A second of the engine's time per check: the keys grow older than refresh_interval.
    eventually(PATIENCE, async || {
        hand.advance(Duration::from_secs(1));
        match code(&old).await {
            401 => Ok(()),
            c => Err(format!("the removed key still verifies ({c})")),
        }
    })
    .await;
    assert_eq!(code(&new).await, 200);
}

#[tokio::test]
async fn a_reload_that_changes_how_keys_are_fetched_keeps_them_while_the_idp_is_down() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let source = format!("jwks_uri: {}", idp.jwks_uri());
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", config(ISS, &source, "timeout: 500ms"))
        .start()
        .await;
    ward.wait_ready(200, PATIENCE).await;
    let t = token(&k, ISS, "alice", 60);
    assert_eq!(outcome(&ward.check(get("/api/x", Some(&t))).await).1, 200);

    idp.stop().await;
    // Every fetch setting changes: a new store, which must start from the old keys.
    let v2 = config(ISS, &source, "timeout: 900ms\n      refresh_interval: 5m")
        .replace("name: idp", "name: idp-v2")
        .replace("providers: [idp]", "providers: [idp-v2]");
    std::fs::write(ward.config_file(), v2).expect("rewrite");
    ward.reload().expect("a valid config");
    let t = token(&k, ISS, "bob", 60);
    let r = ward.check(get("/api/x", Some(&t))).await;
    assert_eq!(outcome(&r).1, 200, "{}", describe(&r));
    assert_eq!(ward.admin_get("/readyz").await.0, 200, "still holding keys");
    assert_eq!(
        ward.metric("ward_jwks_keys", &[("provider", "idp-v2")])
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn the_picked_provider_caps_the_token_size_too() {
    // `first` finds the credential (its cap is the default 8 KiB); the token's `iss`
    // picks `small`, whose own cap the token exceeds: refused, as on a `small`-only route.
    let a = TestKey::generate(Alg::RS256);
    let b = TestKey::generate(Alg::RS256);
    let yaml = format!(
        r#"
providers:
  - name: first
    jwt: {{ issuer: https://a.test, audiences: [api], jwks: {ja} }}
  - name: small
    jwt: {{ issuer: https://b.test, audiences: [api], jwks: {jb}, max_token_bytes: 1200 }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [first, small]
"#,
        ja = jwks_of(&[&a]),
        jb = jwks_of(&[&b]),
    );
    let ward = Ward::start(&yaml).await;
    let claims = |pad: usize| json!({"iss": "https://b.test", "aud": "api", "sub": "m", "exp": now() + 60, "pad": "x".repeat(pad)});
    let fits = b.sign(&claims(0));
    let big = b.sign(&claims(1000));
    assert!(
        fits.len() <= 1200 && big.len() > 1200,
        "{} {}",
        fits.len(),
        big.len()
    );
    let r = ward.check(get("/api", Some(&fits))).await;
    assert_eq!(outcome(&r).0, 0, "{}", describe(&r));
    let r = ward.check(get("/api", Some(&big))).await;
    assert_eq!(summary(&r).short(), (16, 401, "invalid_token"));
    assert_eq!(summary(&r).detail, "token too large");
}

#[tokio::test]
async fn the_issuer_picks_the_provider_on_a_multi_issuer_route() {
    let a = TestKey::generate(Alg::RS256);
    let b = TestKey::generate(Alg::ES256);
    let yaml = format!(
        r#"
providers:
  - name: first
    jwt: {{ issuer: https://a.test, audiences: [api], jwks: {ja} }}
  - name: second
    jwt: {{ issuer: https://b.test, audiences: [api], jwks: {jb} }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [first, second]
  - name: first-only
    match: {{ path_prefix: /first }}
    providers: [first]
"#,
        ja = jwks_of(&[&a]),
        jb = jwks_of(&[&b]),
    );
    let ward = Ward::start(&yaml).await;
    let provider_of = |r: &CheckResponse| summary(r).header("x-auth-provider").map(str::to_string);
    let r = ward
        .check(get("/api", Some(&token(&a, "https://a.test", "x", 60))))
        .await;
    assert_eq!(provider_of(&r).as_deref(), Some("first"));
    let r = ward
        .check(get("/api", Some(&token(&b, "https://b.test", "y", 60))))
        .await;
    assert_eq!(provider_of(&r).as_deref(), Some("second"));
    // An issuer no provider of the route trusts: refused.
    let r = ward
        .check(get("/api", Some(&token(&b, "https://c.test", "z", 60))))
        .await;
    assert_eq!(outcome(&r).2, "invalid_token");
    // Right issuer, wrong key (b's issuer, a's key): refused.
    let r = ward
        .check(get("/api", Some(&token(&a, "https://b.test", "z", 60))))
        .await;
    assert_eq!(outcome(&r).2, "invalid_token");

    // A token that does not even parse is a miss of the provider that found it.
    let r = ward.check(get("/api", Some("not.a-jwt"))).await;
    assert_eq!(outcome(&r).2, "invalid_token");

    // A repeated token is one cache lookup, counted under the provider that verified
    // it: never a miss under the route's first provider.
    let tb = token(&b, "https://b.test", "w", 60);
    for _ in 0..2 {
        let r = ward.check(get("/api", Some(&tb))).await;
        assert_eq!(provider_of(&r).as_deref(), Some("second"));
    }
    let m = ward.metrics().await;
    let count = |provider: &str, result: &str| {
        metric(
            &m,
            "ward_token_cache_requests_total",
            &[("provider", provider), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        (count("first", "miss"), count("first", "hit")),
        (3.0, 0.0),
        "{m}"
    );
    assert_eq!(
        (count("second", "miss"), count("second", "hit")),
        (3.0, 1.0),
        "{m}"
    );
    // Cached for `second`, the token is no credential on a route that only trusts
    // `first`: verified again there, and refused.
    let r = ward.check(get("/first", Some(&tb))).await;
    assert_eq!(outcome(&r).2, "invalid_token");
}

#[tokio::test]
async fn a_removed_key_revokes_the_tokens_it_signed_even_when_cached() {
    // A token verified once sits in the cache until its own exp, which the holder of a
    // leaked key chooses. Removing the key from the JWKS must revoke it at the next
    // check, cached or not.
    let leaked = TestKey::generate(Alg::ES256);
    let kept = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&leaked, &kept])).await;
    let ward = start_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    let forged = token(&leaked, ISS, "mallory", 4_102_444_800 - now());
    let honest = token(&kept, ISS, "alice", 600);
    for _ in 0..2 {
        assert_eq!(
            outcome(&ward.check(get("/api/x", Some(&forged))).await).1,
            200
        );
        assert_eq!(
            outcome(&ward.check(get("/api/x", Some(&honest))).await).1,
            200
        );
    }

    // The IdP drops the leaked key. A token with a new kid makes ward refetch (once
    // min_refetch_interval allows); from then on the leaked key's tokens are refused.
    let new = TestKey::generate(Alg::RS256);
    idp.set_jwks(jwks_of(&[&kept, &new]));
    let fresh = token(&new, ISS, "bob", 600);
    eventually(PATIENCE, async || {
        match outcome(&ward.check(get("/api/x", Some(&fresh))).await) {
            (0, ..) => Ok(()),
            o => Err(format!("the new key never arrived: {o:?}")),
        }
    })
    .await;
    assert_eq!(
        outcome(&ward.check(get("/api/x", Some(&forged))).await),
        (16, 401, "invalid_token".into(), None),
        "a cached token of a removed key is revoked"
    );
    // A key still in the set keeps its cached tokens.
    assert_eq!(
        outcome(&ward.check(get("/api/x", Some(&honest))).await),
        (0, 200, "ok".into(), Some("alice".into()))
    );
    let hits = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "idp"), ("result", "hit")],
        )
        .await;
    assert_eq!(hits, Some(3.0), "the kept key's token is still a cache hit");
}

#[tokio::test]
async fn a_warm_cache_decides_as_a_cold_one() {
    // Two APIs behind one issuer. `/b-then-a` lists `corp-b` first, but the token's
    // audience picks `corp` there too (SPEC §11; `corp-b` would refuse `api`), cold or
    // warm, whichever route saw the token first.
    let k = TestKey::generate(Alg::RS256);
    let yaml = format!(
        r#"
providers:
  - name: corp-b
    jwt: {{ issuer: "{ISS}", audiences: [api-b], jwks: {j} }}
  - name: corp
    jwt: {{ issuer: "{ISS}", audiences: [api], jwks: {j} }}
routes:
  - name: b-then-a
    match: {{ path_prefix: /b-then-a }}
    providers: [corp-b, corp]
  - name: a
    match: {{ path_prefix: /a }}
    providers: [corp]
"#,
        j = jwks_of(&[&k]),
    );
    let ward = Ward::start(&yaml).await;
    let both = |t: &str| [get("/b-then-a", Some(t)), get("/a", Some(t))];

    // Cold on /b-then-a first, then warm through /a.
    let t1 = token(&k, ISS, "one", 600);
    let [b, a] = both(&t1);
    let cold = outcome(&ward.check(b.clone()).await);
    assert_eq!(cold, (0, 200, "ok".into(), Some("one".into())));
    assert_eq!(outcome(&ward.check(a).await).1, 200);
    assert_eq!(outcome(&ward.check(b).await), cold, "warm decides as cold");

    // Warm through /a first, then /b-then-a.
    let t2 = token(&k, ISS, "two", 600);
    let [b, a] = both(&t2);
    assert_eq!(outcome(&ward.check(a).await).1, 200);
    assert_eq!(
        outcome(&ward.check(b).await),
        (0, 200, "ok".into(), Some("two".into()))
    );
}
