//! Introspection answers cached and shared: hits counted, the `cache_ttl` and `exp`
//! bounds, a reload that keeps an unchanged provider's answers, single flight for one
//! token; and what never reaches the endpoint or the logs (malformed tokens, the client
//! secret), with the metrics exported.

mod common;
mod introspect_server;
mod introspection_setup;

use std::time::Duration;

use serde_json::json;

use common::{CLOCK_START, Req, Shape, Ward, metric};
use introspect_server::{CLIENT_SECRET, Introspect};
use introspection_setup::{
    INVALID, OK, active, active_until, config, start, start_manual, with_token,
};

#[tokio::test]
async fn answers_are_cached_for_cache_ttl() {
    let ep = Introspect::start().await;
    ep.set_token("t-exp", active_until("with-exp", CLOCK_START + 3600));
    ep.set_token("t-noexp", json!({"active": true, "sub": "no-exp"}));
    let (ward, clock) = start_manual(&config(&ep, "cache_ttl: 1s")).await;
    for _ in 0..5 {
        assert_eq!(ward.summary(with_token("t-exp")).await.short(), OK);
        let r = ward.summary(with_token("t-noexp")).await;
        assert_eq!(r.subject(), Some("no-exp"));
    }
    assert_eq!((ep.hits_for("t-exp"), ep.hits_for("t-noexp")), (1, 1));
    let hits = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "partners"), ("result", "hit")],
        )
        .await;
    assert_eq!(hits, Some(8.0));

    clock.advance(Duration::from_millis(1200));
    ward.summary(with_token("t-exp")).await;
    ward.summary(with_token("t-noexp")).await;
    assert_eq!(
        (ep.hits_for("t-exp"), ep.hits_for("t-noexp")),
        (2, 2),
        "cache_ttl bounds both, with or without exp"
    );
}

#[tokio::test]
async fn the_cache_never_outlives_exp() {
    let ep = Introspect::start().await;
    let exp = CLOCK_START + 2;
    ep.set_token("short", json!({"active": true, "sub": "s", "exp": exp}));
    let (ward, clock) = start_manual(&config(&ep, "cache_ttl: 1h")).await;
    assert_eq!(ward.summary(with_token("short")).await.short(), OK);
    assert_eq!(ward.summary(with_token("short")).await.short(), OK);
    assert_eq!(ep.hits(), 1);
    // After exp the IdP has expired it too.
    ep.set_token("short", json!({"active": false}));
    clock.advance(Duration::from_secs(2));
    let r = ward.summary(with_token("short")).await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token inactive"));
    assert_eq!(
        ep.hits(),
        2,
        "re-introspected once exp passed, despite cache_ttl: 1h"
    );
}

#[tokio::test]
async fn a_never_expiring_answer_is_still_asked_again_after_cache_ttl() {
    // `Long.MAX_VALUE` ("never") and a number beyond any clock: cached for cache_ttl
    // only, so a revocation is seen; and the check that caches them must not crash.
    let ep = Introspect::start().await;
    ep.set_token(
        "forever",
        json!({"active": true, "sub": "s", "exp": i64::MAX}),
    );
    ep.set_token("huge", json!({"active": true, "sub": "s", "exp": 1e300}));
    let (ward, clock) = start_manual(&config(&ep, "cache_ttl: 1s")).await;
    for t in ["forever", "huge"] {
        for _ in 0..2 {
            let r = ward
                .try_check(with_token(t))
                .await
                .expect("an answer, not a reset");
            assert_eq!(common::summary(&r).short(), OK, "{t}");
        }
        assert_eq!(ep.hits_for(t), 1, "{t} cached");
        ep.set_token(t, json!({"active": false}));
    }
    clock.advance(Duration::from_millis(1200));
    for t in ["forever", "huge"] {
        let r = ward.summary(with_token(t)).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "token inactive"),
            "{t}"
        );
        assert_eq!(ep.hits_for(t), 2, "{t} asked again once cache_ttl passed");
    }
}

#[tokio::test]
async fn a_reload_keeps_the_answers_of_an_unchanged_provider() {
    let ep = Introspect::start().await;
    ep.set_token("t", active("alice", 3600));
    let v1 = config(&ep, "cache_ttl: 60s");
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", &v1)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await;
    assert_eq!(ward.summary(with_token("t")).await.short(), OK);

    // Another route, the same provider: the cached answer still serves.
    let more_routes = format!(
        "{v1}  - name: health\n    match: {{ path: /healthz }}\n    allow_anonymous: true\n"
    );
    std::fs::write(ward.config_file(), &more_routes).expect("rewrite");
    ward.reload().expect("reload");
    assert_eq!(
        route_of_health(&ward).await,
        "health",
        "the new config serves"
    );
    assert_eq!(ward.summary(with_token("t")).await.short(), OK);
    assert_eq!(ep.hits_for("t"), 1, "the unchanged provider kept its cache");

    // A changed provider starts afresh: its answers were made under other settings.
    std::fs::write(ward.config_file(), config(&ep, "cache_ttl: 30s")).expect("rewrite");
    ward.reload().expect("reload");
    assert_eq!(ward.summary(with_token("t")).await.short(), OK);
    assert_eq!(ep.hits_for("t"), 2, "a changed provider asked again");

    // A provider the config no longer has leaves no cache series behind.
    let cached = [("provider", "partners")];
    assert_eq!(
        ward.metric("ward_introspection_cache_entries", &cached)
            .await,
        Some(1.0)
    );
    std::fs::write(
        ward.config_file(),
        "routes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n",
    )
    .expect("rewrite");
    ward.reload().expect("reload");
    let m = ward.metrics().await;
    assert!(!m.contains("ward_introspection_cache_entries{"), "{m}");
}

async fn route_of_health(ward: &Ward) -> String {
    let r = ward.check(common::Req::get("/healthz").to_map()).await;
    common::route_of(&r).unwrap_or_default()
}

#[tokio::test]
async fn concurrent_checks_of_one_token_share_one_call() {
    let ep = Introspect::start().await;
    ep.set_token("hot", active("hot", 300));
    ep.set_delay(Duration::from_millis(300));
    let ward = std::sync::Arc::new(start(&config(&ep, "")).await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let w = ward.clone();
        tasks.push(tokio::spawn(
            async move { w.summary(with_token("hot")).await },
        ));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!((r.short(), r.subject()), (OK, Some("hot")));
    }
    assert_eq!(ep.hits(), 1, "50 concurrent checks, one introspection call");
}

#[tokio::test]
async fn malformed_tokens_never_reach_the_endpoint() {
    let ep = Introspect::start().await;
    let ward = start(&config(&ep, "max_token_bytes: 64")).await;
    let cases: Vec<(Req, Shape, &str)> = vec![
        (
            Req::get("/api/x").bearer(" padded"),
            Shape::Map,
            "malformed token",
        ),
        (
            Req::get("/api/x").header("authorization", "Bearer a b"),
            Shape::Raw,
            "malformed token",
        ),
        (
            Req::get("/api/x").header("authorization", "Bearer t\u{e9}"),
            Shape::Raw,
            "malformed token",
        ),
        (
            Req::get("/api/x").raw_header("authorization", b"Bearer t\xff"),
            Shape::Raw,
            "malformed token",
        ),
        (
            Req::get("/api/x").bearer(&"a".repeat(65)),
            Shape::Map,
            "token too large",
        ),
        (
            Req::get("/api/x").bearer("a").bearer("b"),
            Shape::Map,
            "more than one credential in the request",
        ),
        (
            Req::get("/api/x").bearer("a").bearer("b"),
            Shape::Raw,
            "more than one credential in the request",
        ),
    ];
    for (req, shape, detail) in cases {
        let r = ward.summary(req.build(shape)).await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, detail),
            "{shape:?} {:?}",
            req.headers
        );
    }
    assert_eq!(ep.hits(), 0);
    let r = ward.summary(Req::get("/api/x").to_map()).await;
    assert_eq!(r.short(), (16, 401, "missing_credential"));
}

#[tokio::test]
async fn the_client_secret_is_never_printed() {
    let ep = Introspect::start().await;
    let config = Ward::builder(&config(&ep, ""))
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .load()
        .expect("config");
    let debug = format!("{config:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");
}

#[tokio::test]
async fn introspection_metrics_are_exported() {
    let ep = Introspect::start().await;
    ep.set_token("a", active("a", 300));
    let ward = start(&config(&ep, "")).await;
    ward.summary(with_token("a")).await;
    ward.summary(with_token("nope")).await;
    let m = ward.metrics().await;
    for (name, labels, want) in [
        (
            "ward_introspection_requests_total",
            &[("provider", "partners"), ("result", "active")][..],
            1.0,
        ),
        (
            "ward_introspection_requests_total",
            &[("provider", "partners"), ("result", "inactive")],
            1.0,
        ),
        (
            "ward_introspection_duration_seconds_count",
            &[("provider", "partners")],
            2.0,
        ),
        // Both answers are cached, the refusal too (negative_cache_ttl).
        (
            "ward_introspection_cache_entries",
            &[("provider", "partners")],
            2.0,
        ),
    ] {
        assert_eq!(
            metric(&m, name, labels),
            Some(want),
            "{name}{labels:?} in\n{m}"
        );
    }
}
