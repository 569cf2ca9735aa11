//! The admin listener: `/healthz`, `/readyz` and `/metrics` answer, and the metrics
//! carry no subject, token or claim value.

mod check_setup;
mod common;

use serde_json::json;

use check_setup::{claims, start, token, with};
use common::{Req, allowed, denial, metric};

#[tokio::test]
async fn admin_endpoints_answer_and_metrics_hold_no_secrets() {
    let ward = start().await;
    assert_eq!(ward.admin_get("/healthz").await.0, 200);
    assert_eq!(
        ward.admin_get("/readyz").await.0,
        200,
        "static keys are loaded"
    );

    let secret_sub = "subject-7f3a9c1e";
    let tok = token(&with(
        claims(secret_sub),
        json!({"email": "s7f3a9c@example.com"}),
    ));
    allowed(
        &ward
            .check(
                Req::get("/api/v1/secret-path?access_token=zz")
                    .bearer(&tok)
                    .to_map(),
            )
            .await,
    );
    denial(&ward.check(Req::get("/api").to_map()).await);
    denial(&ward.check(Req::get("/nowhere").to_map()).await);

    let m = ward.metrics().await;
    let count = |labels: &[(&str, &str)]| metric(&m, "ward_check_requests_total", labels);
    assert_eq!(
        count(&[
            ("route", "api"),
            ("provider", "corp"),
            ("decision", "allow"),
            ("reason", "ok")
        ]),
        Some(1.0),
        "\n{m}"
    );
    assert_eq!(
        count(&[
            ("route", "api"),
            ("provider", "none"),
            ("decision", "deny"),
            ("reason", "missing_credential")
        ]),
        Some(1.0),
        "\n{m}"
    );
    assert!(
        common::samples(&m, "ward_check_requests_total")
            .iter()
            .any(
                |(l, v)| l.get("reason").map(String::as_str) == Some("no_route")
                    && l.get("decision").map(String::as_str) == Some("deny")
                    && *v == 1.0
            ),
        "\n{m}"
    );
    assert!(
        m.contains("# TYPE ward_check_duration_seconds histogram"),
        "\n{m}"
    );
    assert_eq!(
        metric(
            &m,
            "ward_check_duration_seconds_count",
            &[("decision", "allow"), ("idp", "none")]
        ),
        Some(1.0),
        "\n{m}"
    );
    assert_eq!(
        metric(
            &m,
            "ward_check_duration_seconds_count",
            &[("decision", "deny"), ("idp", "none")]
        ),
        Some(2.0),
        "\n{m}"
    );

    for secret in [
        secret_sub,
        "s7f3a9c@example.com",
        "secret-path",
        "access_token",
    ]
    .into_iter()
    .chain(tok.split('.'))
    {
        assert!(!m.contains(secret), "/metrics leaks {secret:?}");
    }
}
