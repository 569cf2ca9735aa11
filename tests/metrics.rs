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
            &["route", "provider", "decision", "reason"],
        ),
        (
            "ward_credential_rejections_total",
            "counter",
            &["provider", "detail"],
        ),
        ("ward_token_cache_entries", "gauge", &[]),
        ("ward_config_info", "gauge", &["hash"]),
        (
            "ward_check_duration_seconds",
            "histogram",
            &["decision", "idp"],
        ),
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
    for (decision, reason, route, provider, count) in [
        ("allow", "ok", "api", "corp", 2.0),
        ("deny", "invalid_token", "api", "corp", 1.0),
        ("deny", "no_route", "none", "none", 1.0),
    ] {
        let labels = [
            ("decision", decision),
            ("provider", provider),
            ("reason", reason),
            ("route", route),
        ];
        assert_eq!(
            metric(&text, "ward_check_requests_total", &labels),
            Some(count),
            "{labels:?} in\n{text}"
        );
    }
    // One verified token in the cache (the garbage one was never verified).
    assert_eq!(metric(&text, "ward_token_cache_entries", &[]), Some(1.0));
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

#[tokio::test]
async fn failure_series_start_at_zero_and_leave_with_their_provider_or_route() {
    let key = TestKey::generate(Alg::HS256);
    let idp = idp::Idp::start(key.jwks()).await;
    let config = |extra_provider: &str, extra_route: &str| {
        format!(
            r#"
providers:
  - name: corp
    jwt: {{ issuer: https://corp.test, audiences: [api], algorithms: [HS256], jwks_uri: {uri} }}
{extra_provider}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
{extra_route}
"#,
            uri = idp.jwks_uri()
        )
    };
    let partner = format!(
        "  - name: partner\n    jwt: {{ issuer: https://partner.test, audiences: [api], algorithms: [HS256], jwks_uri: {} }}",
        idp.jwks_uri()
    );
    let partner_route =
        "  - name: partners\n    match: { path_prefix: /partners }\n    providers: [partner]";
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", config(&partner, partner_route))
        .start()
        .await;

    // Before any failure, every failure series is there at 0.
    let text = ward.metrics().await;
    for provider in ["corp", "partner"] {
        for detail in [
            "expired",
            "unknown_key",
            "audience",
            "signature",
            "issuer",
            "malformed",
            "type",
            "inactive",
            "other",
        ] {
            let labels = [("detail", detail), ("provider", provider)];
            assert_eq!(
                metric(&text, "ward_credential_rejections_total", &labels),
                Some(0.0),
                "{labels:?}"
            );
        }
    }
    let deny = |route, provider, reason| {
        [
            ("decision", "deny"),
            ("provider", provider),
            ("reason", reason),
            ("route", route),
        ]
    };
    for labels in [
        deny("partners", "partner", "invalid_token"),
        deny("partners", "partner", "authn_unavailable"),
        deny("api", "corp", "forbidden"),
        deny("api", "none", "missing_credential"),
    ] {
        assert_eq!(
            metric(&text, "ward_check_requests_total", &labels),
            Some(0.0),
            "{labels:?}"
        );
    }

    // A refused credential counts under its provider and detail.
    let expired = key.sign(
        &json!({"iss": "https://partner.test", "aud": "api", "sub": "p", "exp": now() - 3600}),
    );
    let req = Req::get("/partners/x").bearer(&expired).to_map();
    ward.wait_ready(200, Duration::from_secs(10)).await;
    ward.check(req).await;
    let labels = [("detail", "expired"), ("provider", "partner")];
    assert_eq!(
        ward.metric("ward_credential_rejections_total", &labels)
            .await,
        Some(1.0)
    );

    // One config, one hash.
    let hashes = |text: &str| -> Vec<String> {
        common::samples(text, "ward_config_info")
            .into_iter()
            .map(|(l, v)| {
                assert_eq!(v, 1.0);
                l["hash"].clone()
            })
            .collect()
    };
    let before = hashes(&ward.metrics().await);
    assert_eq!(before.len(), 1, "{before:?}");

    // The provider and its route leave the config: none of their series stays behind.
    std::fs::write(ward.config_file(), config("", "")).expect("rewrite the config");
    ward.reload().expect("reload");
    let text = ward.metrics().await;
    let after = hashes(&text);
    assert_eq!(after.len(), 1, "only the config ward decides by: {after:?}");
    assert_ne!(after, before, "another config, another hash");
    let stale: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.starts_with('#') && (l.contains("\"partner\"") || l.contains("\"partners\""))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "series of a removed provider or route:\n{}",
        stale.join("\n")
    );
    // The provider that stays keeps its series.
    let labels = [("detail", "expired"), ("provider", "corp")];
    assert_eq!(
        metric(&text, "ward_credential_rejections_total", &labels),
        Some(0.0)
    );
    assert!(metric(&text, "ward_jwks_keys", &[("provider", "corp")]).is_some());
}

#[tokio::test]
async fn cache_evictions_and_api_keys_are_counted_and_follow_the_config() {
    let key = TestKey::generate(Alg::HS256);
    let digest = |k: &str| ward::authn::apikey::sha256_hex(k.as_bytes());
    let config = |keys: &[&str]| {
        let machines = if keys.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = keys
                .iter()
                .map(|k| format!("{{ sha256: \"{}\", subject: {k} }}", digest(k)))
                .collect();
            format!(
                "  - name: machines\n    api_key: {{ header: x-api-key, keys: [{}] }}\n",
                list.join(", ")
            )
        };
        format!(
            r#"
token_cache: {{ max_entries: 4 }}
providers:
  - name: corp
    jwt: {{ issuer: https://corp.test, audiences: [api], algorithms: [HS256], jwks: {jwks} }}
{machines}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
            jwks = common::jwks_of(&[&key])
        )
    };
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", config(&["batch", "nightly"]))
        .start()
        .await;
    assert_eq!(
        ward.metric("ward_api_keys", &[("provider", "machines")])
            .await,
        Some(2.0)
    );
    assert_eq!(
        ward.metric("ward_token_cache_evictions_total", &[]).await,
        Some(0.0)
    );

    // Forty distinct tokens through a cache of four: what it does not hold was evicted.
    for i in 0..40 {
        let token = key.sign(
            &json!({"iss": "https://corp.test", "aud": "api", "sub": format!("u{i}"), "exp": now() + 60}),
        );
        let r = ward.check(Req::get("/api").bearer(&token).to_map()).await;
        common::allowed(&r);
    }
    let text = ward.metrics().await;
    let held = metric(&text, "ward_token_cache_entries", &[]).unwrap_or(-1.0);
    let evicted = metric(&text, "ward_token_cache_evictions_total", &[]).unwrap_or(-1.0);
    assert!((1.0..=4.0).contains(&held), "{held} held");
    assert_eq!(evicted, 40.0 - held);

    // A key revoked by a reload: the count follows; the provider gone: no series.
    std::fs::write(ward.config_file(), config(&["batch"])).expect("rewrite the config");
    ward.reload().expect("reload");
    assert_eq!(
        ward.metric("ward_api_keys", &[("provider", "machines")])
            .await,
        Some(1.0)
    );
    std::fs::write(ward.config_file(), config(&[])).expect("rewrite the config");
    ward.reload().expect("reload");
    let text = ward.metrics().await;
    assert!(!text.contains("ward_api_keys{"), "{text}");
}
