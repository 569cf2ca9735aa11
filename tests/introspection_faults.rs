//! An introspection endpoint that fails: error statuses, non-JSON and huge bodies,
//! timeouts, an endpoint down or going away, the circuit breaker, and under pressure
//! (SPEC §7): junk tokens, rate limiting with `Retry-After`, OAuth errors, cached answers
//! served while backing off, and a failure log that names the error, never the token.

mod common;
mod introspect_server;
mod introspection_setup;

use std::time::{Duration, Instant};

use common::{CLOCK_START, Ward, closed_port};
use introspect_server::{CLIENT_SECRET, Introspect, Reply};
use introspection_setup::{
    INVALID, OK, UNAVAILABLE, active, active_until, config, start, start_manual, with_token,
};
use ward::clock::ManualClock;

/// Checks `tok` against an endpoint answering `reply` and expects a fast 503; then
/// the endpoint recovers and the next check is answered (failures are never cached).
async fn expect_unavailable(reply: Reply, label: &str) {
    let ep = Introspect::start().await;
    ep.set_token("t", active("s", 300));
    ep.set_reply(reply.clone());
    let ward = start(&config(&ep, "")).await;
    let t0 = Instant::now();
    let r = ward.summary(with_token("t")).await;
    assert_eq!(r.short(), UNAVAILABLE, "{reply:?}");
    assert_eq!(r.detail, "identity provider unavailable");
    assert!(t0.elapsed() < Duration::from_secs(2), "{reply:?}");
    let series = [("provider", "partners"), ("result", label)];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(1.0),
        "{reply:?}"
    );

    ep.set_reply(Reply::Table);
    let r = ward.summary(with_token("t")).await;
    assert_eq!(r.short(), OK, "a failure is not cached ({reply:?})");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn endpoint_error_status_is_503() {
    expect_unavailable(Reply::Status(500), "http_status").await;
    expect_unavailable(Reply::Status(401), "http_status").await;
}

#[tokio::test]
async fn non_json_answer_is_503() {
    expect_unavailable(Reply::Raw(b"<html>oops</html>".to_vec()), "not_json").await;
    expect_unavailable(Reply::Raw(b"[true]".to_vec()), "not_json").await;
    // A duplicate member is a parser differential waiting to happen: not accepted.
    expect_unavailable(
        Reply::Raw(br#"{"active":false,"active":true,"sub":"x"}"#.to_vec()),
        "not_json",
    )
    .await;
}

#[tokio::test]
async fn missing_or_non_boolean_active_is_401() {
    // RFC 7662 §2.2: `active` is a boolean; an answer without one authorizes nothing.
    for body in [r#"{"sub":"alice"}"#, r#"{"active":"true"}"#] {
        let ep = Introspect::start().await;
        ep.set_reply(Reply::Raw(body.as_bytes().to_vec()));
        let ward = start(&config(&ep, "")).await;
        let r = ward.summary(with_token("t")).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "claim `active` has the wrong type"),
            "{body}"
        );
        let series = [("provider", "partners"), ("result", "invalid")];
        assert_eq!(
            ward.metric("ward_introspection_requests_total", &series)
                .await,
            Some(1.0),
            "{body}"
        );
    }
}

#[tokio::test]
async fn huge_bodies_are_capped() {
    let two_mib = 2 * 1024 * 1024;
    expect_unavailable(Reply::Huge(two_mib), "too_large").await;
    expect_unavailable(Reply::HugeChunked(two_mib), "too_large").await;
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let ep = Introspect::start().await;
    ep.set_token("t", active("s", 300));
    ep.set_delay(Duration::from_secs(5));
    let ward = start(&config(&ep, "timeout: 300ms")).await;
    let t0 = Instant::now();
    let r = ward.summary(with_token("t")).await;
    let took = t0.elapsed();
    assert_eq!(r.short(), UNAVAILABLE);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    let series = [("provider", "partners"), ("result", "timeout")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(1.0)
    );
    assert_eq!(
        ward.metric(
            "ward_introspection_duration_seconds_count",
            &[("provider", "partners")]
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_503_at_once() {
    let closed = closed_port();
    let yaml = format!(
        r#"
providers:
  - name: partners
    introspection:
      endpoint: http://{closed}/introspect
      client_id: ward
      client_secret: x
      audiences: any
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [partners]
"#
    );
    let ward = start(&yaml).await;
    let t0 = Instant::now();
    let r = ward.summary(with_token("t")).await;
    assert_eq!(r.short(), UNAVAILABLE);
    assert!(t0.elapsed() < Duration::from_secs(1));
    let series = [("provider", "partners"), ("result", "unreachable")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &series)
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn an_endpoint_going_away_keeps_cached_answers() {
    let ep = Introspect::start().await;
    ep.set_token("known", active("known", 300));
    let ward = start(&config(&ep, "")).await;
    assert_eq!(ward.summary(with_token("known")).await.short(), OK);
    ep.stop().await;
    assert_eq!(
        ward.summary(with_token("known")).await.short(),
        OK,
        "cached identities keep serving"
    );
    assert_eq!(
        ward.summary(with_token("unknown")).await.short(),
        UNAVAILABLE,
        "nothing cached: 503"
    );
}

#[tokio::test]
async fn the_circuit_breaker_opens_then_recovers() {
    let ep = Introspect::start().await;
    ep.set_reply(Reply::Status(503));
    let (ward, clock) = start_manual(&config(
        &ep,
        "circuit_breaker: { failures: 3, cool_down: 1s }",
    ))
    .await;
    let ward = &ward;
    let circuit = async |v| {
        let labels = [("provider", "partners")];
        assert_eq!(
            ward.metric("ward_introspection_circuit_open", &labels)
                .await,
            Some(v)
        );
    };
    circuit(0.0).await;
    for i in 0..3 {
        let r = ward.summary(with_token(&format!("t{i}"))).await;
        assert_eq!(r.short(), UNAVAILABLE);
    }
    assert_eq!(ep.hits(), 3);
    circuit(1.0).await;
    // Open: answered at once, the endpoint is not called.
    let t0 = Instant::now();
    for i in 3..10 {
        let r = ward.summary(with_token(&format!("t{i}"))).await;
        assert_eq!(r.short(), UNAVAILABLE);
    }
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert_eq!(ep.hits(), 3, "an open breaker makes no calls");
    let open = [("provider", "partners"), ("result", "circuit_open")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &open)
            .await,
        Some(7.0)
    );

    // After the cool-down one probe goes through; it fails, so the breaker reopens.
    clock.advance(Duration::from_millis(1100));
    assert_eq!(ward.summary(with_token("p1")).await.short(), UNAVAILABLE);
    assert_eq!(ep.hits(), 4);
    assert_eq!(ward.summary(with_token("p2")).await.short(), UNAVAILABLE);
    assert_eq!(ep.hits(), 4, "reopened by the failed probe");
    circuit(1.0).await;

    // The endpoint recovers: the next probe succeeds and closes the breaker.
    ep.set_reply(Reply::Table);
    ep.set_token("p3", active_until("p3", CLOCK_START + 300));
    ep.set_token("p4", active_until("p4", CLOCK_START + 300));
    clock.advance(Duration::from_millis(1100));
    assert_eq!(ward.summary(with_token("p3")).await.short(), OK);
    assert_eq!(ward.summary(with_token("p4")).await.short(), OK);
    assert_eq!(
        ep.hits(),
        6,
        "closed again: every new token is introspected"
    );
    circuit(0.0).await;
}

// === under pressure (SPEC §7) ===

/// Checks `tok` until it is allowed, moving ward's manual `clock` 20 ms between checks;
/// the clock time it took, or the last answer once `within` has passed on that clock.
async fn allowed_within(
    ward: &Ward,
    clock: &ManualClock,
    tok: &str,
    within: Duration,
) -> Result<Duration, String> {
    let t0 = clock.clock().elapsed();
    let took = || clock.clock().elapsed().saturating_sub(t0);
    loop {
        let r = ward.summary(with_token(tok)).await;
        if r.short() == OK {
            return Ok(took());
        }
        if took() >= within {
            return Err(format!("still {:?} after {:?}", r.short(), took()));
        }
        clock.advance(Duration::from_millis(20));
    }
}

fn rate_limited(retry_after: Option<&'static str>) -> Reply {
    Reply::Error {
        status: 429,
        error: "slow_down",
        retry_after,
    }
}

#[tokio::test]
async fn junk_tokens_cannot_hold_valid_users_at_503_past_5s() {
    // Unauthenticated junk against a rate-limiting authorization server (the defaults:
    // five failures open the breaker), which asks for an hour's pause.
    let ep = Introspect::start().await;
    ep.set_reply(rate_limited(Some("3600")));
    let (ward, clock) = start_manual(&config(&ep, "circuit_breaker: { failures: 5 }")).await;
    for i in 0..12 {
        let r = ward.summary(with_token(&format!("junk{i}"))).await;
        assert_eq!(r.short(), UNAVAILABLE, "junk{i}");
    }
    assert_eq!(ep.hits(), 1, "a 429 with Retry-After backs off at once");

    // The server recovers: a valid user is served again within 5 s.
    ep.set_reply(Reply::Table);
    ep.set_token("valid", active_until("alice", CLOCK_START + 300));
    let took = allowed_within(&ward, &clock, "valid", Duration::from_millis(5500))
        .await
        .expect("a recovered endpoint serves again within 5 s");
    assert!(took <= Duration::from_millis(5200), "after {took:?}");
    assert_eq!(
        ep.hits(),
        2,
        "one probe while backing off, and it closed the breaker"
    );
    assert_eq!(ward.summary(with_token("valid")).await.short(), OK);
}

#[tokio::test]
async fn retry_after_sooner_than_the_cool_down_is_honoured() {
    let ep = Introspect::start().await;
    ep.set_reply(rate_limited(Some("1")));
    let (ward, clock) = start_manual(&config(
        &ep,
        "circuit_breaker: { failures: 5, cool_down: 5s }",
    ))
    .await;
    assert_eq!(ward.summary(with_token("junk")).await.short(), UNAVAILABLE);
    ep.set_reply(Reply::Table);
    ep.set_token("valid", active_until("alice", CLOCK_START + 300));
    let r = ward.summary(with_token("valid")).await;
    assert_eq!(r.short(), UNAVAILABLE, "backing off as Retry-After asked");
    assert_eq!(ep.hits(), 1, "no call while backing off");
    let took = allowed_within(&ward, &clock, "valid", Duration::from_millis(2500))
        .await
        .expect("probed again once Retry-After passed");
    assert!(took >= Duration::from_millis(700), "after {took:?}");
}

#[tokio::test]
async fn cached_answers_serve_while_backing_off() {
    let ep = Introspect::start().await;
    ep.set_token("known", active("known", 300));
    let ward = start(&config(
        &ep,
        "circuit_breaker: { failures: 1, cool_down: 5s }",
    ))
    .await;
    assert_eq!(ward.summary(with_token("known")).await.short(), OK);
    let r = ward.summary(with_token("revoked")).await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    ep.set_reply(Reply::Status(503));
    assert_eq!(ward.summary(with_token("other")).await.short(), UNAVAILABLE);
    let hits = ep.hits();
    for _ in 0..3 {
        assert_eq!(ward.summary(with_token("known")).await.short(), OK);
        let r = ward.summary(with_token("revoked")).await;
        assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
        assert_eq!(ward.summary(with_token("other")).await.short(), UNAVAILABLE);
    }
    assert_eq!(
        ep.hits(),
        hits,
        "open: cached answers serve, no call is made"
    );
}

#[tokio::test]
async fn a_repeated_junk_token_costs_one_call() {
    // A provider that cannot introspect a token says so with an OAuth error (a JWT sent
    // to an opaque-token endpoint): an inactive token, cached like one.
    let ep = Introspect::start().await;
    ep.set_unknown(Reply::Error {
        status: 400,
        error: "unsupported_token_type",
        retry_after: None,
    });
    let ward = start(&config(&ep, "negative_cache_ttl: 10s")).await;
    for _ in 0..20 {
        let r = ward.summary(with_token("junk")).await;
        assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    }
    assert_eq!(ep.hits_for("junk"), 1, "cached for negative_cache_ttl");
}

#[tokio::test]
async fn an_oauth_error_about_the_token_is_401_and_no_outage() {
    let ep = Introspect::start().await;
    ep.set_token("valid", active("alice", 300));
    let ward = start(&config(
        &ep,
        "circuit_breaker: { failures: 2, cool_down: 5s }",
    ))
    .await;
    for (i, error) in ["unsupported_token_type", "invalid_token", "invalid_grant"]
        .into_iter()
        .cycle()
        .take(9)
        .enumerate()
    {
        ep.set_unknown(Reply::Error {
            status: 400,
            error,
            retry_after: None,
        });
        let r = ward.summary(with_token(&format!("junk{i}"))).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "token inactive"),
            "{error}"
        );
    }
    assert_eq!(ep.hits(), 9);
    let r = ward.summary(with_token("valid")).await;
    assert_eq!(r.short(), OK, "token errors never open the breaker");
    let inactive = [("provider", "partners"), ("result", "inactive")];
    assert_eq!(
        ward.metric("ward_introspection_requests_total", &inactive)
            .await,
        Some(9.0)
    );

    // An error about ward's own request is the provider's (or the config's): 503.
    ep.set_unknown(Reply::Error {
        status: 400,
        error: "invalid_request",
        retry_after: None,
    });
    let r = ward.summary(with_token("junk-x")).await;
    assert_eq!(r.short(), UNAVAILABLE);
}

#[test]
fn the_failure_log_names_the_oauth_error_never_the_token() {
    use common::bin::Serve;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ep = rt.block_on(Introspect::start());
    ep.set_reply(Reply::Error {
        status: 401,
        error: "invalid_client",
        retry_after: None,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, config(&ep, "audiences: any")).expect("write config");
    let mut ward = Serve::start(dir.path(), &path, &[("PARTNERS_SECRET", CLIENT_SECRET)]);
    let token = "opaque-secret-token-4711";
    rt.block_on(async {
        let mut c = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
            format!("http://{}", ward.grpc_addr),
        )
        .await
        .expect("connect");
        let r = c.check(with_token(token)).await.expect("rpc").into_inner();
        assert_eq!(common::summary(&r).short(), UNAVAILABLE);
    });
    assert!(ward.terminate().success());
    let all = ward.lines().join("\n");
    assert!(!all.contains(token), "the token is never logged:\n{all}");
    assert!(!all.contains(CLIENT_SECRET), "nor the secret:\n{all}");
    let line = ward
        .lines()
        .into_iter()
        .find(|l| l.contains("introspection") && l.contains("401"))
        .unwrap_or_else(|| panic!("no failure log:\n{all}"));
    assert!(line.contains("invalid_client"), "{line}");
}
