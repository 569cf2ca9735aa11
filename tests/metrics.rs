//! `/metrics` as SREs scrape it: every metric of SPEC §6 with its type and label names,
//! and never a token, a subject or a raw path in it.

mod common;
mod idp;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use common::{Req, TestKey, Ward, families, metric, now};
use ward::authn::jwt::Alg;

const SUBJECT: &str = "subject-that-must-not-leak";

#[tokio::test]
async fn metrics_have_the_contracted_names_types_and_labels_and_leak_nothing() {
    let key = TestKey::generate(Alg::HS256);
    let idp = idp::Idp::start(key.jwks()).await;
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt: {{ issuer: https://corp.test, audiences: [api], algorithms: [HS256], jwks_uri: {uri} }}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        uri = idp.jwks_uri()
    );
    let ward = Ward::start(&yaml).await;

    let token = key.sign(
        &json!({"iss": "https://corp.test", "aud": "api", "sub": SUBJECT, "exp": now() + 60}),
    );
    let api = Req::get("/api/secret-path-1").bearer(&token).to_map();
    // The key set arrives from the stub IdP in the background.
    ward.wait_allowed(&api, Duration::from_secs(10)).await;
    ward.check(api).await;
    ward.check(
        Req::get("/api/secret-path-2?access_token=query-secret")
            .bearer("garbage-token")
            .to_map(),
    )
    .await;
    ward.check(Req::get("/elsewhere/secret-path-3").to_map())
        .await;

    let text = ward.metrics().await;
    let f = families(&text);
    let want: &[(&str, &str, &[&str])] = &[
        (
            "ward_check_requests_total",
            "counter",
            &["route", "decision", "reason"],
        ),
        ("ward_check_duration_seconds", "histogram", &["decision"]),
        (
            "ward_token_cache_requests_total",
            "counter",
            &["provider", "result"],
        ),
        (
            "ward_jwks_refresh_total",
            "counter",
            &["provider", "result"],
        ),
        ("ward_jwks_keys", "gauge", &["provider"]),
        (
            "ward_jwks_last_success_timestamp_seconds",
            "gauge",
            &["provider"],
        ),
        ("ward_config_reloads_total", "counter", &["result"]),
        (
            "ward_config_last_reload_success_timestamp_seconds",
            "gauge",
            &[],
        ),
        ("ward_build_info", "gauge", &["version"]),
        ("process_resident_memory_bytes", "gauge", &[]),
    ];
    for (name, ty, labels) in want {
        let Some(family) = f.get(*name) else {
            panic!("{name} missing from /metrics:\n{text}");
        };
        assert_eq!(family.ty, *ty, "{name} type");
        let expect: BTreeSet<String> = labels.iter().map(|s| s.to_string()).collect();
        assert_eq!(family.labels, expect, "{name} labels");
    }
    for (decision, reason, route, count) in [
        ("allow", "ok", "api", 2.0),
        ("deny", "invalid_token", "api", 1.0),
        ("deny", "no_route", "none", 1.0),
    ] {
        let labels = [("decision", decision), ("reason", reason), ("route", route)];
        assert_eq!(
            metric(&text, "ward_check_requests_total", &labels),
            Some(count),
            "{labels:?} in\n{text}"
        );
    }
    for secret in [
        token.as_str(),
        SUBJECT,
        "secret-path",
        "query-secret",
        "garbage-token",
    ] {
        assert!(!text.contains(secret), "/metrics leaks {secret:?}");
    }
}
