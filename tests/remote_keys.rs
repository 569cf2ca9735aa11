//! Remote key sources through ward's gRPC API, against a real HTTP IdP on 127.0.0.1:
//! jwks_uri and discovery, IdP outages and timeouts, broken key documents and bad
//! refreshes, rotation, rate-limited refetch on unknown kids, single-flight fetches and
//! `Cache-Control`.

mod common;
mod idp;
mod remote_keys_setup;

use std::time::{Duration, Instant};

use serde_json::json;

use common::{CLOCK_START, TestKey, Ward, denial, jwks_of, jws, metric, now};
use idp::Idp;
use remote_keys_setup::{
    ISS, PATIENCE, config, get, outcome, start_manual_on, start_on, token, token_until,
    wait_refresh,
};
use ward::authn::jwt::Alg;

#[tokio::test]
async fn jwks_uri_keys_verify_every_family() {
    let algs = [
        Alg::RS256,
        Alg::PS256,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
    ];
    let keys: Vec<TestKey> = algs.iter().map(|a| TestKey::generate(*a)).collect();
    let idp = Idp::start(jwks_of(&keys.iter().collect::<Vec<_>>())).await;
    let ward = start_on(&idp, "").await;
    ward.wait_ready(200, PATIENCE).await;
    for (alg, k) in algs.iter().zip(&keys) {
        let r = ward
            .check(get("/api/x", Some(&token(k, ISS, alg.as_str(), 60))))
            .await;
        assert_eq!(
            outcome(&r),
            (0, 200, "ok".into(), Some(alg.as_str().to_string())),
            "{alg:?}"
        );
    }
    let metrics = ward.metrics().await;
    assert!(
        metric(
            &metrics,
            "ward_jwks_refresh_total",
            &[("provider", "idp"), ("result", "success")]
        )
        .is_some(),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ward_jwks_keys", &[("provider", "idp")]),
        Some(6.0),
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "ward_jwks_last_success_timestamp_seconds",
            &[("provider", "idp")]
        )
        .is_some()
    );
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let k = TestKey::generate(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let iss = idp.base();
    let ward = Ward::start(&config(&iss, "discovery: true", "")).await;
    ward.wait_ready(200, PATIENCE).await;
    let r = ward
        .check(get("/api/x", Some(&token(&k, &iss, "alice", 60))))
        .await;
    assert_eq!(outcome(&r).1, 200);
    assert_eq!(idp.discovery_hits(), 1);
}

#[tokio::test]
async fn discovery_with_another_issuer_is_refused() {
    let k = TestKey::generate(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_discovery_issuer("https://evil.example");
    let iss = idp.base();
    let ward = Ward::start(&config(&iss, "discovery: true", "")).await;
    let r = ward
        .check(get("/api/x", Some(&token(&k, &iss, "alice", 60))))
        .await;
    assert_eq!(outcome(&r), (14, 503, "authn_unavailable".into(), None));
    assert_eq!(
        idp.jwks_hits(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
    assert_eq!(ward.admin_get("/readyz").await.0, 503);
}

#[tokio::test]
async fn idp_down_at_start_answers_503_and_not_ready() {
    let closed = common::closed_port();
    let k = TestKey::generate(Alg::RS256);
    let ward = Ward::start(&config(ISS, &format!("jwks_uri: http://{closed}/jwks"), "")).await;
    let t0 = Instant::now();
    let r = ward
        .check(get("/api/x", Some(&token(&k, ISS, "alice", 60))))
        .await;
    assert_eq!(outcome(&r), (14, 503, "authn_unavailable".into(), None));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a refused connection answers fast"
    );
    assert_eq!(
        ward.admin_get("/readyz").await,
        (503, "not ready: no keys yet for idp\n".to_string()),
        "names the provider without keys"
    );
    // Missing credential is still a 401, not a 503: no key is needed to say so.
    assert_eq!(
        outcome(&ward.check(get("/api/x", None)).await).2,
        "missing_credential"
    );
}

#[tokio::test]
async fn idp_down_after_start_keeps_serving_cached_keys() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let (ward, clock) =
        start_manual_on(&idp, "refresh_interval: 1s\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    idp.set_status(500);
    // Wait for at least one failed refresh.
    wait_refresh(&idp, &clock).await;
    let exp = CLOCK_START + 3600;
    let r = ward
        .check(get("/api/x", Some(&token_until(&k, ISS, "alice", exp))))
        .await;
    assert_eq!(outcome(&r).1, 200, "last good keys keep serving");
    let metrics = ward.metrics().await;
    assert!(
        metric(
            &metrics,
            "ward_jwks_refresh_total",
            &[("provider", "idp"), ("result", "http_status")]
        )
        .is_some(),
        "{metrics}"
    );
    idp.stop().await;
    let r = ward
        .check(get("/api/x", Some(&token_until(&k, ISS, "bob", exp))))
        .await;
    assert_eq!(
        outcome(&r).1,
        200,
        "an IdP that is gone does not void cached keys"
    );
}

#[tokio::test]
async fn slow_idp_times_out_without_hurting_other_providers() {
    let slow_key = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&slow_key])).await;
    idp.set_delay(Duration::from_secs(5));
    let local = TestKey::generate(Alg::ES256);
    let yaml = format!(
        r#"
providers:
  - name: slow
    jwt:
      issuer: "{ISS}"
      audiences: [api]
      jwks_uri: {uri}
      timeout: 300ms
  - name: local
    jwt:
      issuer: https://local.test
      audiences: [api]
      jwks: {jwks}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [slow, local]
"#,
        uri = idp.jwks_uri(),
        jwks = jwks_of(&[&local]),
    );
    let ward = Ward::start(&yaml).await;
    let t0 = Instant::now();
    let r = ward
        .check(get("/api/x", Some(&token(&slow_key, ISS, "alice", 60))))
        .await;
    let took = t0.elapsed();
    assert_eq!(outcome(&r).1, 503);
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}, past the 300ms timeout"
    );
    let t0 = Instant::now();
    let r = ward
        .check(get(
            "/api/x",
            Some(&token(&local, "https://local.test", "bob", 60)),
        ))
        .await;
    assert_eq!(outcome(&r), (0, 200, "ok".into(), Some("bob".into())));
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "the local provider never waits on the slow IdP"
    );
}

#[tokio::test]
async fn broken_key_documents_leave_ward_without_keys() {
    let k = TestKey::generate(Alg::RS256);
    let huge = {
        let mut v = b"{\"keys\":[],\"pad\":\"".to_vec();
        v.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
        v.extend_from_slice(b"\"}");
        v
    };
    let cases: Vec<(&str, idp::Jwks)> = vec![
        ("not json", idp::Jwks::Raw(b"<html>oops</html>".to_vec())),
        ("no keys", idp::Jwks::Json(json!({"keys": []}))),
        ("not a jwks", idp::Jwks::Json(json!({"kid": "x"}))),
        (
            "malformed keys",
            idp::Jwks::Json(
                json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            ),
        ),
        ("huge", idp::Jwks::Raw(huge)),
    ];
    for (what, doc) in cases {
        let idp = Idp::start(json!({"keys": []})).await;
        match doc {
            idp::Jwks::Json(v) => idp.set_jwks(v),
            idp::Jwks::Raw(b) => idp.set_raw(b),
        }
        let ward = start_on(&idp, "").await;
        let r = ward
            .check(get("/api/x", Some(&token(&k, ISS, "alice", 60))))
            .await;
        assert_eq!(
            outcome(&r),
            (14, 503, "authn_unavailable".into(), None),
            "{what}"
        );
        assert_eq!(ward.admin_get("/readyz").await.0, 503, "{what}");
    }
}

#[tokio::test]
async fn a_bad_refresh_keeps_the_last_good_keys() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let (ward, clock) =
        start_manual_on(&idp, "refresh_interval: 1s\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    idp.set_raw(b"not json".to_vec());
    wait_refresh(&idp, &clock).await;
    let r = ward
        .check(get(
            "/api/x",
            Some(&token_until(&k, ISS, "alice", CLOCK_START + 3600)),
        ))
        .await;
    assert_eq!(outcome(&r).1, 200);
    assert_eq!(ward.admin_get("/readyz").await.0, 200);
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_and_removed_kid_stops_verifying() {
    let old = TestKey::generate(Alg::RS256);
    let new = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let (ward, clock) =
        start_manual_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    let exp = CLOCK_START + 60;
    assert_eq!(
        outcome(
            &ward
                .check(get("/api/x", Some(&token_until(&old, ISS, "a", exp))))
                .await
        )
        .1,
        200
    );

    // The IdP rotates: the new key appears, the old one is gone.
    idp.set_jwks(jwks_of(&[&new]));
    // Past min_refetch_interval since the startup fetch, a new-kid token refetches.
    clock.advance(Duration::from_millis(1100));
    let r = ward
        .check(get("/api/x", Some(&token_until(&new, ISS, "b", exp))))
        .await;
    assert_eq!(
        outcome(&r),
        (0, 200, "ok".into(), Some("b".into())),
        "new kid fetched on demand"
    );
    let r = ward
        .check(get("/api/x", Some(&token_until(&old, ISS, "c", exp))))
        .await;
    assert_eq!(
        outcome(&r),
        (16, 401, "invalid_token".into(), None),
        "old kid no longer verifies"
    );
}

#[tokio::test]
async fn a_burst_of_unknown_kids_is_one_refetch() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start_on(&idp, "min_refetch_interval: 30s").await;
    ward.wait_ready(200, PATIENCE).await;
    let before = idp.jwks_hits();
    let mut tasks = Vec::new();
    for i in 0..200 {
        // Same key, random kid: signed by a real key, but no such kid at the IdP.
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("random-{i}")});
        let claims = json!({"iss": ISS, "aud": "api", "sub": "x", "exp": now() + 60});
        let forged = jws(&header.to_string(), &claims.to_string(), "c2lnbmF0dXJl");
        let mut client = ward.client().await;
        tasks.push(tokio::spawn(async move {
            let req = get("/api/x", Some(&forged));
            client.check(req).await.expect("rpc").into_inner()
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(outcome(&r).1, 401);
    }
    let extra = idp.jwks_hits() - before;
    assert!(
        extra <= 1,
        "{extra} fetches for 200 unknown kids; the bound is 1 per min_refetch_interval"
    );
}

#[tokio::test]
async fn another_issuers_token_fetches_no_keys() {
    // A Keycloak token on an Okta-only route: refused for its issuer, before its
    // unknown kid could make ward refetch the route provider's keys.
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start_on(&idp, "min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    let before = idp.jwks_hits();
    let other = TestKey::generate(Alg::RS256);
    let foreign = token(&other, "https://keycloak.test/realms/x", "k", 60);
    let r = ward.check(get("/api/x", Some(&foreign))).await;
    assert_eq!(outcome(&r), (16, 401, "invalid_token".into(), None));
    assert_eq!(denial(&r).detail, "issuer not trusted on this route");
    assert_eq!(
        idp.jwks_hits(),
        before,
        "no key fetch for another issuer's token"
    );
}

#[tokio::test]
async fn an_unknown_kid_while_the_idp_fails_is_an_outage_not_a_bad_token() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let (ward, clock) =
        start_manual_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    let exp = CLOCK_START + 600;
    let rotated = TestKey::generate(Alg::RS256);
    let new_kid = token_until(&rotated, ISS, "b", exp);

    // Healthy IdP: an unknown kid, refetched for, is a bad token.
    let r = ward.check(get("/api/x", Some(&new_kid))).await;
    assert_eq!(outcome(&r), (16, 401, "invalid_token".into(), None));

    // The IdP fails: the refetch an unknown kid makes fails, and the kid may be one
    // the IdP rotated to, so the check is 503 authn_unavailable.
    idp.set_status(500);
    clock.advance(Duration::from_millis(1100));
    let r = ward.check(get("/api/x", Some(&new_kid))).await;
    assert_eq!(outcome(&r).1, 503, "{:?}", outcome(&r));
    assert_eq!(denial(&r).detail, "identity provider unavailable");
    // Still within the refetch interval (no new fetch): the last fetch failed, so 503.
    assert_eq!(
        outcome(&ward.check(get("/api/x", Some(&new_kid))).await).1,
        503
    );
    // Tokens of the keys held still verify.
    let known = token_until(&k, ISS, "a", exp);
    assert_eq!(
        outcome(&ward.check(get("/api/x", Some(&known))).await).1,
        200
    );
    // The two checks that refetched waited on the IdP; the one within the refetch
    // interval did not: the latency SLO counts them apart.
    let count = |decision: &'static str, idp: &'static str| {
        let ward = &ward;
        async move {
            ward.metric(
                "ward_check_duration_seconds_count",
                &[("decision", decision), ("idp", idp)],
            )
            .await
        }
    };
    assert_eq!(count("deny", "waited").await, Some(2.0), "the refetches");
    assert_eq!(count("deny", "none").await, Some(1.0), "no refetch");

    // The IdP recovers (without the kid): a bad token again.
    idp.set_status(200);
    clock.advance(Duration::from_millis(1100));
    let r = ward.check(get("/api/x", Some(&new_kid))).await;
    assert_eq!(outcome(&r), (16, 401, "invalid_token".into(), None));
}

#[tokio::test]
async fn a_fallback_jwks_serves_a_cold_start_until_the_idp_answers() {
    let fallback = TestKey::generate(Alg::ES256);
    let live = TestKey::generate(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&live])).await;
    idp.set_status(503);
    let (clock, hand) = common::manual_clock();
    let yaml = config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        "min_refetch_interval: 1s\n      jwks_fallback_file: fallback.json",
    );
    let ward = Ward::builder(&yaml)
        .file("fallback.json", jwks_of(&[&fallback]).to_string())
        .clock(clock)
        .start()
        .await;
    // Ready with the fallback keys, while the IdP is down.
    ward.wait_ready(200, PATIENCE).await;
    let exp = CLOCK_START + 600;
    let old = token_until(&fallback, ISS, "cold", exp);
    let new = token_until(&live, ISS, "warm", exp);
    assert_eq!(outcome(&ward.check(get("/api/x", Some(&old))).await).1, 200);
    assert_eq!(outcome(&ward.check(get("/api/x", Some(&new))).await).1, 503);

    // The IdP answers: its keys replace the fallback for good.
    idp.set_status(200);
    hand.advance(Duration::from_millis(1100));
    assert_eq!(outcome(&ward.check(get("/api/x", Some(&new))).await).1, 200);
    let r = ward.check(get("/api/x", Some(&old))).await;
    assert_eq!(
        outcome(&r),
        (16, 401, "invalid_token".into(), None),
        "fallback no longer used"
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_delay(Duration::from_millis(200));
    let ward = start_on(&idp, "timeout: 2s").await;
    let client = ward.client().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut c = client.clone();
        let t = token(&k, ISS, &format!("u{i}"), 60);
        tasks.push(tokio::spawn(async move {
            c.check(get("/api/x", Some(&t)))
                .await
                .expect("rpc")
                .into_inner()
        }));
    }
    for t in tasks {
        assert_eq!(outcome(&t.await.expect("task")).1, 200);
    }
    assert!(
        idp.jwks_hits() <= 2,
        "{} fetches: startup plus at most one on demand",
        idp.jwks_hits()
    );
}

#[tokio::test]
async fn concurrent_first_uses_of_a_new_kid_share_one_fetch() {
    // After a rotation, many checks carry the new kid at once: one fetch, and every one
    // of them waits for it (none is refused for an "unknown key id" meanwhile).
    let old = TestKey::generate(Alg::RS256);
    let new = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let ward = start_on(
        &idp,
        "timeout: 2s\n      refresh_interval: 1h\n      min_refetch_interval: 1h",
    )
    .await;
    ward.wait_ready(200, PATIENCE).await;
    idp.set_jwks(jwks_of(&[&old, &new]));
    idp.set_delay(Duration::from_millis(300));
    let client = ward.client().await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mut c = client.clone();
            let t = token(&new, ISS, &format!("u{i}"), 60);
            tokio::spawn(async move {
                let r = c.check(get("/api/x", Some(&t))).await.expect("rpc");
                outcome(&r.into_inner())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").1, 200);
    }
    assert_eq!(
        idp.jwks_hits(),
        2,
        "startup, then one fetch for the new kid"
    );
}

#[tokio::test]
async fn cache_control_max_age_shortens_refresh() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_cache_control(Some("public, max-age=1"));
    let (_ward, clock) =
        start_manual_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1s").await;
    // A second of ward's time at a time: far from the hour of refresh_interval.
    common::eventually(PATIENCE, async || {
        clock.advance(Duration::from_secs(1));
        match idp.jwks_hits() {
            n if n >= 3 => Ok(()),
            n => Err(format!("max-age=1 did not trigger refreshes ({n} hits)")),
        }
    })
    .await;
}
