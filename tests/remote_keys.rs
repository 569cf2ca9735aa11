//! Remote key sources through ward's gRPC API, against a real HTTP IdP on 127.0.0.1:
//! jwks_uri and discovery, rotation, refresh failures, rate-limited refetch on unknown
//! kids, single-flight fetches, timeouts, body caps and the verified-token cache.

mod common;
mod idp;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use serde_json::json;

use common::{
    Req, TestKey, Ward, describe, eventually, jwks_of, jws, metric, now, summary, wait_until,
};
use idp::Idp;
use ward::authn::jwt::Alg;

/// How long a test waits for something ward does in the background.
const PATIENCE: Duration = Duration::from_secs(10);

/// A token from `iss` for audience `api`, valid for `ttl` seconds.
fn token(k: &TestKey, iss: &str, sub: &str, ttl: u64) -> String {
    k.sign(&json!({"iss": iss, "aud": "api", "sub": sub, "exp": now() + ttl, "roles": ["reader"]}))
}

/// `GET path`, with `Authorization: Bearer <token>` when a token is given.
fn get(path: &str, bearer: Option<&str>) -> CheckRequest {
    match bearer {
        Some(t) => Req::get(path).bearer(t).to_map(),
        None => Req::get(path).to_map(),
    }
}

/// (gRPC code, HTTP status, reason, subject header)
fn outcome(r: &CheckResponse) -> (i32, u16, String, Option<String>) {
    let s = summary(r);
    let subject = s.subject().map(str::to_string);
    (s.grpc_code, s.http_status, s.reason, subject)
}

fn config(iss: &str, key_source: &str, extra: &str) -> String {
    let timeout = if extra.contains("timeout:") {
        ""
    } else {
        "timeout: 500ms"
    };
    format!(
        r#"
providers:
  - name: idp
    jwt:
      issuer: "{iss}"
      audiences: [api]
      {key_source}
      algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
      {timeout}
      {extra}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [idp]
"#
    )
}

const ISS: &str = "https://idp.test";

/// ward with one provider `idp` (issuer [`ISS`]) fetching its keys from `idp`'s
/// jwks_uri, `extra` added to the provider's settings.
async fn start_on(idp: &Idp, extra: &str) -> Ward {
    Ward::start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        extra,
    ))
    .await
}

// === tests ===

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
    let ward = start_on(&idp, "refresh_interval: 1s\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    idp.set_status(500);
    let hits = idp.jwks_hits();
    // Wait for at least one failed refresh.
    wait_until("a refresh", PATIENCE, async || idp.jwks_hits() != hits).await;
    let r = ward
        .check(get("/api/x", Some(&token(&k, ISS, "alice", 60))))
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
    idp.stop();
    let r = ward
        .check(get("/api/x", Some(&token(&k, ISS, "bob", 60))))
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
    let ward = start_on(&idp, "refresh_interval: 1s\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    idp.set_raw(b"not json".to_vec());
    let hits = idp.jwks_hits();
    wait_until("a refresh", PATIENCE, async || idp.jwks_hits() > hits).await;
    let r = ward
        .check(get("/api/x", Some(&token(&k, ISS, "alice", 60))))
        .await;
    assert_eq!(outcome(&r).1, 200);
    assert_eq!(ward.admin_get("/readyz").await.0, 200);
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_and_removed_kid_stops_verifying() {
    let old = TestKey::generate(Alg::RS256);
    let new = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let ward = start_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1s").await;
    ward.wait_ready(200, PATIENCE).await;
    assert_eq!(
        outcome(
            &ward
                .check(get("/api/x", Some(&token(&old, ISS, "a", 60))))
                .await
        )
        .1,
        200
    );

    // The IdP rotates: the new key appears, the old one is gone.
    idp.set_jwks(jwks_of(&[&new]));
    // Wait out min_refetch_interval since the startup fetch, then a new-kid token refetches.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = ward
        .check(get("/api/x", Some(&token(&new, ISS, "b", 60))))
        .await;
    assert_eq!(
        outcome(&r),
        (0, 200, "ok".into(), Some("b".into())),
        "new kid fetched on demand"
    );
    let r = ward
        .check(get("/api/x", Some(&token(&old, ISS, "c", 60))))
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
    let _ward = start_on(&idp, "refresh_interval: 1h\n      min_refetch_interval: 1s").await;
    common::eventually(PATIENCE, async || match idp.jwks_hits() {
        n if n >= 3 => Ok(()),
        n => Err(format!("max-age=1 did not trigger refreshes ({n} hits)")),
    })
    .await;
}

#[tokio::test]
async fn cached_token_is_not_served_past_exp() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let ward = start_on(&idp, "leeway: 0s").await;
    ward.wait_ready(200, PATIENCE).await;
    let t = token(&k, ISS, "alice", 2);
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
    // Real time must pass the token's exp: this waits on the clock, not on readiness.
    tokio::time::sleep(Duration::from_millis(2100)).await;
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
    let engine = Ward::builder(&yaml).engine();
    let code = async |k: &TestKey| {
        let headers = [(
            "authorization".to_string(),
            format!("Bearer {}", token(k, ISS, "u", 60)),
        )];
        let input = ward::request::CheckInput::from_pairs("GET", "h", "/api/x", &headers, &[]);
        ward::decision::Report::new(&engine.check(&input).await).status()
    };
    assert_eq!(code(&old).await, 200);
    idp.set_jwks(jwks_of(&[&new]));
    eventually(PATIENCE, async || match code(&old).await {
        401 => Ok(()),
        c => Err(format!("the removed key still verifies ({c})")),
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

    idp.stop();
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
async fn shutdown_lets_an_in_flight_check_finish() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    // The only fetch takes 600ms: a check arriving now waits on it.
    idp.set_delay(Duration::from_millis(600));
    let ward = start_on(&idp, "timeout: 3s").await;
    let mut client = ward.client().await;
    let t = token(&k, ISS, "inflight", 60);
    let in_flight = tokio::spawn(async move { client.check(get("/api/x", Some(&t))).await });
    // Shut down while that check waits for keys.
    wait_until("the fetch started", Duration::from_secs(5), async || {
        idp.jwks_hits() > 0
    })
    .await;
    let stopping = ward.stop();
    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight check is answered, not cut");
    assert_eq!(
        outcome(&answer.into_inner()),
        (0, 200, "ok".into(), Some("inflight".into()))
    );
    // run returns within the grace period, and without an error.
    stopping.join().await;
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
    // Two APIs behind one issuer. `/b-then-a` lists `corp-b` first: a token that
    // `corp-b` finds is decided by `corp-b`, whose audience it lacks. Having been
    // verified for `corp` on another route must not change that.
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
    assert_eq!(cold.2, "invalid_token", "{cold:?}");
    assert_eq!(outcome(&ward.check(a).await).1, 200);
    assert_eq!(outcome(&ward.check(b).await), cold, "warm decides as cold");

    // Warm through /a first, then /b-then-a.
    let t2 = token(&k, ISS, "two", 600);
    let [b, a] = both(&t2);
    assert_eq!(outcome(&ward.check(a).await).1, 200);
    assert_eq!(outcome(&ward.check(b).await), cold);
}
