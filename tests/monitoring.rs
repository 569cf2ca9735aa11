//! k8s/monitoring/ against what ward really exports. A ward started here (a remote
//! JWT provider on a stub IdP, an introspection provider on a stub endpoint, a shadow
//! route) answers a few checks and two reloads, then its `/metrics` is scraped. Every
//! PromQL query of the Grafana dashboard and every rule of the PrometheusRule is then
//! parsed and checked against that scrape:
//!
//! - every `ward_*` / `process_*` name is a metric family ward exports (`_bucket`,
//!   `_sum`, `_count` only on histograms), every `ward:*` name is a recording rule
//!   defined in prometheusrule.yaml, and nothing else is queried but `up`;
//! - every label in a `{label=...}` matcher, `by (...)`, `without (...)`, `on (...)`,
//!   `ignoring (...)` or `group_left (...)` exists where it is used: label sets are
//!   followed through rate(), sum by, binary operators and recording rules, on top of
//!   the target labels the Prometheus Operator adds (job, namespace, pod, ...);
//! - matched values are values ward emits: decisions, reasons and results from the
//!   contract (README "Metrics"), `le` bounds from the histogram's real buckets;
//! - `histogram_quantile` gets its `le`, both sides of a one-to-one operator carry
//!   the same labels (or nothing would match), `rate` and friends get a range;
//! - alerts carry `for`, a severity, a summary, a description and a runbook_url whose
//!   anchor is a heading of docs/monitoring.md; the dashboard has its datasource,
//!   namespace and job variables.
//!
//! The checker's own teeth are tested on a canned exposition: misspelled metrics,
//! labels, values and buckets must each be reported. The PromQL parser and the label
//! checker are the `promql` crate (tools/promql), with unit tests of their own.
//!
//! The Envoy-side rules (envoy-prometheusrule.yaml) read another program's metrics: they
//! are checked apart, against the ext_authz counter names Envoy exports.
//!
//! PromQL syntax and the alerts' behaviour are checked by k8s/monitoring/check.sh
//! (promtool).

mod common;
mod idp;
mod introspect_server;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use promql::parse::is_range;
use promql::{Checker, Ty};
use serde_json::{Value, json};

use common::{Req, TestKey, Ward, families, grpc_code, metric, now};
use introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect};
use ward::authn::jwt::Alg;

/// Labels every scraped series carries, added by Prometheus and the Prometheus
/// Operator's ServiceMonitor (k8s/base/servicemonitor.yaml).
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "namespace",
    "pod",
    "service",
    "endpoint",
    "container",
];

/// The families the dashboard must show (directly or through a recording rule).
const DASHBOARD_MUST_SHOW: &[&str] = &[
    "ward_check_requests_total",
    "ward_check_duration_seconds",
    "ward_token_cache_requests_total",
    "ward_jwks_refresh_total",
    "ward_jwks_keys",
    "ward_jwks_last_success_timestamp_seconds",
    "ward_introspection_requests_total",
    "ward_introspection_duration_seconds",
    "ward_config_reloads_total",
    "ward_config_last_reload_success_timestamp_seconds",
    "ward_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
];

/// Label values of the metrics contract (README "Metrics", SPEC §6). A matcher on one
/// of these labels must name one of them (or a value seen in the scrape).
fn contract_values(family: &str, label: &str) -> Option<&'static [&'static str]> {
    const DECISIONS: &[&str] = &["allow", "deny", "shadow_deny"];
    Some(match (family, label) {
        ("ward_check_requests_total" | "ward_check_duration_seconds", "decision") => DECISIONS,
        ("ward_check_requests_total", "reason") => &[
            "ok",
            "missing_credential",
            "invalid_token",
            "forbidden",
            "no_route",
            "authn_unavailable",
            "invalid_request",
        ],
        ("ward_credential_rejections_total", "detail") => &[
            "expired",
            "unknown_key",
            "audience",
            "signature",
            "issuer",
            "malformed",
            "type",
            "inactive",
            "other",
        ],
        ("ward_check_duration_seconds", "idp") => &["none", "waited"],
        ("ward_token_cache_requests_total", "result") => &["hit", "miss"],
        ("ward_jwks_refresh_total", "result") => &[
            "success",
            "unreachable",
            "timeout",
            "http_status",
            "too_large",
            "not_json",
            "invalid",
        ],
        ("ward_introspection_requests_total", "result") => &[
            "active",
            "inactive",
            "unreachable",
            "timeout",
            "http_status",
            "too_large",
            "not_json",
            "invalid",
            "circuit_open",
        ],
        ("ward_config_reloads_total" | "ward_tls_reloads_total", "result") => {
            &["success", "failure"]
        }
        _ => return None,
    })
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A checker of queries against ward's scrape, the Operator's target labels and the
/// metrics contract.
fn checker(scrape: &str) -> Checker {
    let families = families(scrape)
        .into_iter()
        .map(|(name, f)| {
            let f = promql::Family {
                ty: f.ty,
                labels: f.labels,
                le: f.le,
                values: f.values,
            };
            (name, f)
        })
        .collect();
    Checker::new(families, TARGET_LABELS, contract_values)
}

// ======================================================= the files under check

/// Grafana's own variables, replaced as Grafana would before the query is sent.
fn grafana_expand(expr: &str) -> String {
    expr.replace("${__rate_interval}", "5m")
        .replace("$__rate_interval", "5m")
        .replace("${__interval}", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// A GitHub heading anchor: lower case, spaces to dashes, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Runs every check of the module over the rule file and the dashboard. Returns the
/// checker (its errors, and what each query used).
fn check_monitoring(scrape: &str, rules_yaml: &str, dashboard_json: &str, docs: &str) -> Checker {
    let mut c = checker(scrape);
    let doc_anchors: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();

    // --- the PrometheusRule
    let rule_doc = match ward::config::yaml::parse(rules_yaml) {
        Ok((v, _)) => v,
        Err(e) => {
            c.error(
                "prometheusrule.yaml",
                format!("line {}: {}", e.line, e.message),
            );
            Value::Null
        }
    };
    if rule_doc["apiVersion"] != "monitoring.coreos.com/v1" || rule_doc["kind"] != "PrometheusRule"
    {
        c.error(
            "prometheusrule.yaml",
            "not a monitoring.coreos.com/v1 PrometheusRule",
        );
    }
    let groups = rule_doc["spec"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if groups.is_empty() {
        c.error("prometheusrule.yaml", "spec.groups is empty");
    }
    let mut alerts = Vec::new();
    for g in &groups {
        let gname = g["name"].as_str().unwrap_or("?").to_string();
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            let expr = match &r["expr"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some(rec) = r["record"].as_str() {
                if !rec.contains(':') {
                    c.error(
                        &format!("rule group {gname}"),
                        format!(
                            "recording rule {rec}: name it level:metric:operation (with colons)"
                        ),
                    );
                }
                if c.rules.insert(rec.to_string(), expr).is_some() {
                    c.error(
                        &format!("rule group {gname}"),
                        format!("recording rule {rec} defined twice"),
                    );
                }
            } else if let Some(alert) = r["alert"].as_str() {
                alerts.push((
                    format!("alert {alert} (group {gname})"),
                    alert.to_string(),
                    r.clone(),
                    expr,
                ));
            } else {
                c.error(
                    &format!("rule group {gname}"),
                    "a rule with neither record nor alert",
                );
            }
        }
    }
    let names: Vec<String> = c.rules.keys().cloned().collect();
    for n in names {
        c.rule_labels(&n);
    }
    for (ctx, alert, r, expr) in alerts {
        c.query(&ctx, &expr);
        if !r["for"].as_str().is_some_and(is_range) {
            c.error(&ctx, "needs `for:` with a duration");
        }
        if !matches!(
            r["labels"]["severity"].as_str(),
            Some("critical" | "warning" | "info")
        ) {
            c.error(&ctx, "needs labels.severity: critical, warning or info");
        }
        for key in ["summary", "description", "runbook_url"] {
            if r["annotations"][key]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                c.error(&ctx, format!("needs annotations.{key}"));
            }
        }
        let want = format!("docs/monitoring.md#{}", alert.to_lowercase());
        match r["annotations"]["runbook_url"].as_str() {
            Some(u) if u.ends_with(&want) => {
                if !doc_anchors.contains(&alert.to_lowercase()) {
                    c.error(&ctx, format!("docs/monitoring.md has no heading `{alert}`"));
                }
            }
            _ => c.error(&ctx, format!("runbook_url must end with {want}")),
        }
    }

    // --- the Grafana dashboard
    let d: Value = match serde_json::from_str(dashboard_json) {
        Ok(d) => d,
        Err(e) => {
            c.error("grafana-dashboard.json", format!("not JSON: {e}"));
            Value::Null
        }
    };
    if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        c.error(
            "grafana-dashboard.json",
            "schemaVersion must be 36 or later",
        );
    }
    let vars = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).cloned();
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => c.error(
            "grafana-dashboard.json",
            "needs a `datasource` variable of type datasource, query prometheus",
        ),
    }
    for name in ["namespace", "job"] {
        match var(name) {
            Some(v) if v["type"] == "query" => {}
            _ => c.error(
                "grafana-dashboard.json",
                format!("needs a `{name}` query variable"),
            ),
        }
    }
    for v in &vars {
        if v["type"] != "query" {
            continue;
        }
        let ctx = format!("dashboard variable ${}", v["name"].as_str().unwrap_or("?"));
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .or(v["definition"].as_str())
            .unwrap_or("")
            .to_string();
        // label_values(selector, label)
        let inner = q
            .trim()
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'));
        let Some((sel, label)) = inner.and_then(|s| s.rsplit_once(',')) else {
            c.error(
                &ctx,
                format!("expected label_values(selector, label), got `{q}`"),
            );
            continue;
        };
        if let Some(Ty::Vector(l)) = c.query(&ctx, sel) {
            let label = label.trim().to_string();
            c.subset(&ctx, "label_values", &[label], &l);
        }
    }
    let mut ids = BTreeSet::new();
    let mut stack: Vec<Value> = d["panels"].as_array().cloned().unwrap_or_default();
    let mut dashboard_ctx = Vec::new();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().cloned().unwrap_or_default());
        let title = p["title"].as_str().unwrap_or("?").to_string();
        if !ids.insert(p["id"].to_string()) {
            c.error(
                "grafana-dashboard.json",
                format!("panel id {} used twice", p["id"]),
            );
        }
        if p["type"] == "row" {
            continue;
        }
        let ctx = format!("panel \"{title}\"");
        if p["datasource"]["uid"] != "${datasource}" {
            c.error(&ctx, "datasource must be ${datasource}");
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            c.error(&ctx, "has no query");
        }
        for t in targets {
            let tctx = format!("{ctx} ({})", t["refId"].as_str().unwrap_or("?"));
            if !t["datasource"].is_null() && t["datasource"]["uid"] != "${datasource}" {
                c.error(&tctx, "datasource must be ${datasource}");
            }
            match t["expr"].as_str() {
                Some(e) if !e.trim().is_empty() => {
                    c.query(&tctx, &grafana_expand(e));
                    dashboard_ctx.push(tctx);
                }
                _ => c.error(&tctx, "no expr"),
            }
        }
    }
    if dashboard_ctx.is_empty() {
        c.error("grafana-dashboard.json", "no panel queries found");
    }

    // The dashboard shows every family it must, directly or through recording rules.
    let mut shown = BTreeSet::new();
    let mut todo: Vec<String> = dashboard_ctx
        .iter()
        .flat_map(|ctx| c.used.get(ctx).cloned().unwrap_or_default())
        .collect();
    while let Some(n) = todo.pop() {
        if shown.insert(n.clone()) && n.contains(':') {
            todo.extend(
                c.used
                    .get(&format!("recording rule {n}"))
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    for f in DASHBOARD_MUST_SHOW {
        if !shown.contains(*f) {
            c.error("grafana-dashboard.json", format!("no panel shows {f}"));
        }
    }
    c
}

// ================================================================== live ward

/// Starts ward with every kind of provider the dashboard shows, makes it decide and
/// reload, and returns its `/metrics`.
async fn scrape_a_busy_ward() -> String {
    let key = TestKey::generate(Alg::HS256);
    let idp = idp::Idp::start(key.jwks()).await;
    let introspect = Introspect::start().await;
    let opaque = "opaque-partner-token";
    introspect.set_token(
        opaque,
        json!({"active": true, "sub": "partner-app", "exp": now() + 300}),
    );
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt: {{ issuer: https://corp.test, audiences: [api], algorithms: [HS256], jwks_uri: {jwks}, refresh_interval: 10m }}
  - name: partners
    introspection:
      endpoint: {endpoint}
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
      audiences: any
      timeout: 2s
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
  - name: partner
    match: {{ path_prefix: /partner }}
    providers: [partners]
  - name: beta
    mode: shadow
    match: {{ path_prefix: /beta }}
    providers: [corp]
"#,
        jwks = idp.jwks_uri(),
        endpoint = introspect.url(),
    );
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", &yaml)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await;

    let token = key.sign(
        &json!({"iss": "https://corp.test", "aud": "api", "sub": "alice", "exp": now() + 120}),
    );
    let orders = Req::get("/api/orders").bearer(&token);
    let code = async |req: &Req| grpc_code(&ward.check(req.to_map()).await);
    // The key set arrives from the stub IdP in the background.
    ward.wait_allowed(&orders.to_map(), Duration::from_secs(10))
        .await;
    assert_eq!(code(&orders).await, 0);
    assert_eq!(code(&Req::get("/api/orders").bearer("not-a-jwt")).await, 16);
    assert_eq!(code(&Req::get("/elsewhere")).await, 7);
    let partner = Req::get("/partner/x").bearer(opaque);
    assert_eq!(code(&partner).await, 0);
    assert_eq!(code(&partner).await, 0);
    // shadow_deny: let through, counted.
    assert_eq!(code(&Req::get("/beta/x")).await, 0);

    // One good reload, one rejected.
    std::fs::write(ward.config_file(), format!("{yaml}\n# touched\n")).expect("rewrite");
    ward.reload().expect("good reload");
    std::fs::write(ward.config_file(), "routes: [ { garbage").expect("garbage");
    assert!(ward.reload().is_err());
    // Checks still decided on the last good config.
    assert_eq!(code(&orders).await, 0);

    // The TLS series exist only where the gRPC listener serves TLS: a second ward that
    // does adds them to the scrape.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let tls = Ward::builder(
        "server:\n  tls: { cert_file: cert.pem, key_file: key.pem }\nroutes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n",
    )
    .file("cert.pem", cert.cert.pem())
    .file("key.pem", cert.signing_key.serialize_pem())
    .start()
    .await;
    let tls_lines: String = tls
        .metrics()
        .await
        .lines()
        .filter(|l| l.contains("ward_tls_"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{}{tls_lines}", ward.metrics().await)
}

// ======================================================================= tests

#[tokio::test]
async fn dashboard_and_alerts_query_only_what_ward_exports() {
    let scrape = scrape_a_busy_ward().await;
    let fams = families(&scrape);
    // The scrape exercised what the files query (labels are learnt from samples).
    for (name, labels) in [
        (
            "ward_check_requests_total",
            &["decision", "provider", "reason", "route"][..],
        ),
        ("ward_credential_rejections_total", &["detail", "provider"]),
        ("ward_check_duration_seconds", &["decision", "idp"]),
        ("ward_token_cache_requests_total", &["provider", "result"]),
        ("ward_jwks_refresh_total", &["provider", "result"]),
        ("ward_jwks_keys", &["provider"]),
        ("ward_jwks_last_success_timestamp_seconds", &["provider"]),
        ("ward_introspection_requests_total", &["provider", "result"]),
        ("ward_introspection_duration_seconds", &["provider"]),
        ("ward_config_reloads_total", &["result"]),
        ("ward_config_last_reload_success_timestamp_seconds", &[]),
        ("ward_build_info", &["version"]),
        ("ward_introspection_circuit_open", &["provider"]),
        ("ward_token_cache_evictions_total", &[]),
        ("ward_tls_reloads_total", &["result"]),
        ("ward_tls_certificate_expiry_timestamp_seconds", &[]),
    ] {
        let f = fams
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{scrape}"));
        let want: BTreeSet<String> = labels.iter().map(|s| s.to_string()).collect();
        assert_eq!(f.labels, want, "{name} labels in:\n{scrape}");
    }
    for (name, label, value) in [
        ("ward_check_requests_total", "decision", "shadow_deny"),
        ("ward_introspection_requests_total", "result", "active"),
        ("ward_token_cache_requests_total", "result", "hit"),
        ("ward_config_reloads_total", "result", "failure"),
    ] {
        assert!(
            fams[name].values[label].contains(value),
            "{name}{{{label}=\"{value}\"}} missing:\n{scrape}"
        );
    }
    for result in ["failure", "success"] {
        assert_eq!(
            metric(&scrape, "ward_config_reloads_total", &[("result", result)]),
            Some(1.0),
            "{result}: {scrape}"
        );
    }
    assert!(
        fams["ward_check_duration_seconds"].le.contains("0.005"),
        "the SLO's le=\"0.005\" bucket is gone: {:?}",
        fams["ward_check_duration_seconds"].le
    );

    let c = check_monitoring(
        &scrape,
        &read("k8s/monitoring/prometheusrule.yaml"),
        &read("k8s/monitoring/grafana-dashboard.json"),
        &read("docs/monitoring.md"),
    );
    assert!(
        c.errors.is_empty(),
        "k8s/monitoring/ does not match ward's /metrics:\n  {}\n\n/metrics was:\n{scrape}",
        c.errors.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
    // Not vacuous: the queries were read and resolved.
    let queried: BTreeSet<&String> = c.used.values().flatten().collect();
    assert!(queried.len() >= 20, "only {queried:?} queried");
}

/// A canned exposition for the checker's own tests.
const CANNED: &str = r#"# TYPE ward_check_requests_total counter
ward_check_requests_total{decision="allow",reason="ok",route="api"} 3
# TYPE ward_check_duration_seconds histogram
ward_check_duration_seconds_bucket{decision="allow",le="0.001"} 1
ward_check_duration_seconds_bucket{decision="allow",le="0.005"} 2
ward_check_duration_seconds_bucket{decision="allow",le="+Inf"} 3
ward_check_duration_seconds_sum{decision="allow"} 0.01
ward_check_duration_seconds_count{decision="allow"} 3
# TYPE ward_jwks_keys gauge
ward_jwks_keys{provider="corp"} 2
"#;

const CANNED_RULES: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: { name: t }
spec:
  groups:
    - name: g
      rules:
        - record: ward:check_requests:rate5m
          expr: sum by (namespace, job, route, decision) (rate(ward_check_requests_total[5m]))
"#;

fn canned_errors(expr: &str) -> Vec<String> {
    let dashboard = json!({
        "schemaVersion": 39,
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query", "query": {"query": "label_values(ward_jwks_keys, namespace)"}},
            {"name": "job", "type": "query", "query": {"query": "label_values(ward_jwks_keys{namespace=\"$namespace\"}, job)"}},
        ]},
        "panels": [{"id": 1, "type": "timeseries", "title": "t",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "targets": [{"refId": "A", "expr": expr}]}],
    });
    let c = check_monitoring(CANNED, CANNED_RULES, &dashboard.to_string(), "");
    c.errors
        .into_iter()
        .filter(|e| !e.contains("no panel shows"))
        .collect()
}

#[test]
fn the_checker_accepts_well_formed_queries() {
    for good in [
        r#"sum by (route, decision) (rate(ward_check_requests_total{namespace="$namespace", job="$job"}[$__rate_interval]))"#,
        r#"histogram_quantile(0.99, sum by (decision, le) (rate(ward_check_duration_seconds_bucket{instance=~"$instance"}[5m])))"#,
        r#"1 - (sum(rate(ward_check_duration_seconds_bucket{le="0.005"}[1h])) / sum(rate(ward_check_duration_seconds_count[1h])))"#,
        r#"sum by (route) (ward:check_requests:rate5m{decision="deny"}) / sum by (route) (ward:check_requests:rate5m)"#,
        r#"ward_jwks_keys == 0 and on (namespace, job) (sum by (namespace, job) (up) > 0)"#,
        r#"time() - ward_jwks_keys offset 1h > 30"#,
        r#"max_over_time((timestamp(increase(ward_check_requests_total{decision=~"deny|shadow_deny"}[2m]) > 0))[15m:1m])"#,
        r#"absent(up{job="ward"} == 1)"#,
    ] {
        assert_eq!(canned_errors(good), Vec::<String>::new(), "{good}");
    }
}

#[test]
fn the_checker_catches_misspellings() {
    for (bad, expect) in [
        (
            "sum(rate(ward_check_request_total[5m]))",
            "`ward_check_request_total` is not a metric ward exports",
        ),
        (
            "sum by (rute) (rate(ward_check_requests_total[5m]))",
            "sum by (rute): rute is not a label there",
        ),
        (
            r#"ward_check_requests_total{decison="deny"}"#,
            "decison is not a label of ward_check_requests_total",
        ),
        (
            r#"ward_check_requests_total{decision="dney"}"#,
            r#"never has decision="dney""#,
        ),
        (
            r#"ward_check_requests_total{decision!~"allow|dney"}"#,
            r#"never has decision="dney""#,
        ),
        (
            r#"ward_check_duration_seconds_bucket{le="0.004"}"#,
            r#"no bucket of ward_check_duration_seconds has le="0.004""#,
        ),
        (
            r#"ward_check_duration_seconds_count{le="0.005"}"#,
            "le is not a label of ward_check_duration_seconds_count",
        ),
        (
            "ward_check_duration_seconds",
            "`ward_check_duration_seconds` is a histogram: query its _bucket",
        ),
        (
            "histogram_quantile(0.99, sum by (decision) (rate(ward_check_duration_seconds_bucket[5m])))",
            "histogram_quantile() over a vector without le",
        ),
        (
            "sum by (route) (rate(ward_check_requests_total[5m])) / sum(rate(ward_check_requests_total[5m]))",
            "no series would match",
        ),
        (
            "ward:check_request:rate5m",
            "`ward:check_request:rate5m` is not a recording rule",
        ),
        (
            r#"ward:check_requests:rate5m{reason="ok"}"#,
            "reason is not a label of ward:check_requests:rate5m",
        ),
        (
            r#"sum by (route) (ward:check_requests:rate5m{decision="alow"})"#,
            r#"never has decision="alow""#,
        ),
        (
            "rate(ward_check_requests_total)",
            "rate() needs a range vector",
        ),
        (
            "rate(ward_check_requests_total[$__rate_intervall])",
            "is not a range or subquery",
        ),
        (
            "ward_jwks_keys > on (provder) ward_jwks_keys",
            "on (provder), left side: provder is not a label there",
        ),
        (
            "node_memory_MemFree_bytes",
            "is neither ward's metric, nor a recording rule, nor up",
        ),
        ("sum(rate(ward_jwks_keys[5m]) by (provider)", "cannot parse"),
    ] {
        let errors = canned_errors(bad);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "`{bad}` should be reported with {expect:?}; got {errors:#?}"
        );
    }
}

#[test]
fn the_checker_checks_alert_shape_and_runbooks() {
    let rules = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: { name: t }
spec:
  groups:
    - name: g
      rules:
        - alert: WardSomething
          expr: ward_jwks_keys == 0
          labels: { severity: page }
          annotations: { summary: s, runbook_url: "https://x/docs/monitoring.md#wardsomethingelse" }
        - record: ward_no_colon
          expr: ward_jwks_keys
"#;
    let c = check_monitoring(CANNED, rules, "{}", "### WardSomething\n");
    let all = c.errors.iter().cloned().collect::<Vec<_>>().join("\n");
    for expect in [
        "needs `for:`",
        "needs labels.severity",
        "needs annotations.description",
        "runbook_url must end with docs/monitoring.md#wardsomething",
        "name it level:metric:operation",
        "needs a `datasource` variable",
        "no panel queries found",
    ] {
        assert!(all.contains(expect), "expected {expect:?} in:\n{all}");
    }
}

/// The ext_authz counters Envoy's HTTP filter exports in Prometheus form
/// (`http.<stat_prefix>.ext_authz.*`), and the label its tag extraction adds.
const ENVOY_EXT_AUTHZ: &[&str] = &[
    "envoy_http_ext_authz_ok",
    "envoy_http_ext_authz_denied",
    "envoy_http_ext_authz_error",
    "envoy_http_ext_authz_disabled",
    "envoy_http_ext_authz_failure_mode_allowed",
    "envoy_http_conn_manager_prefix",
];

/// What is wrong with the Envoy-side rules (k8s/monitoring/envoy-prometheusrule.yaml):
/// they read only Envoy's ext_authz counters and their own `envoy_ext_authz:` recording
/// rules (never ward's metrics, whose rules live in prometheusrule.yaml), and every
/// alert has `for`, a severity, a summary, a description and a runbook section.
/// PromQL syntax and behaviour are promtool's (k8s/monitoring/check.sh).
fn envoy_rule_errors(rules_yaml: &str, docs: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let doc = match ward::config::yaml::parse(rules_yaml) {
        Ok((v, _)) => v,
        Err(e) => return vec![format!("line {}: {}", e.line, e.message)],
    };
    if doc["apiVersion"] != "monitoring.coreos.com/v1" || doc["kind"] != "PrometheusRule" {
        errors.push("not a monitoring.coreos.com/v1 PrometheusRule".to_string());
    }
    let anchors: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();
    let rules: Vec<Value> = doc["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let recorded: BTreeSet<&str> = rules.iter().filter_map(|r| r["record"].as_str()).collect();
    if rules.iter().all(|r| r["alert"].is_null()) {
        errors.push("no alerts".to_string());
    }
    for r in &rules {
        let name = r["record"].as_str().or(r["alert"].as_str()).unwrap_or("?");
        if let Some(rec) = r["record"].as_str()
            && !rec.starts_with("envoy_ext_authz:")
        {
            errors.push(format!("recording rule {rec}: name it envoy_ext_authz:..."));
        }
        let expr = r["expr"].as_str().unwrap_or_default();
        let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        for w in words.filter(|w| !w.is_empty()) {
            if w.starts_with("ward_") || w.starts_with("ward:") {
                errors.push(format!(
                    "{name}: reads ward's {w}; ward's rules belong in prometheusrule.yaml"
                ));
            } else if w.starts_with("envoy_ext_authz:") {
                if !recorded.contains(w) {
                    errors.push(format!("{name}: {w} is not a recording rule of this file"));
                }
            } else if w.starts_with("envoy_") && !ENVOY_EXT_AUTHZ.contains(&w) {
                errors.push(format!(
                    "{name}: {w} is not an ext_authz counter Envoy exports"
                ));
            }
        }
        let Some(alert) = r["alert"].as_str() else {
            continue;
        };
        if !r["for"].as_str().is_some_and(is_range) {
            errors.push(format!("{alert}: needs `for:` with a duration"));
        }
        if !matches!(
            r["labels"]["severity"].as_str(),
            Some("critical" | "warning")
        ) {
            errors.push(format!(
                "{alert}: needs labels.severity critical or warning"
            ));
        }
        for key in ["summary", "description", "runbook_url"] {
            if r["annotations"][key]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                errors.push(format!("{alert}: needs annotations.{key}"));
            }
        }
        let want = format!("docs/monitoring.md#{}", alert.to_lowercase());
        if !r["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&want))
        {
            errors.push(format!("{alert}: runbook_url must end with {want}"));
        } else if !anchors.contains(&alert.to_lowercase()) {
            errors.push(format!(
                "{alert}: docs/monitoring.md has no heading `{alert}`"
            ));
        }
    }
    errors
}

#[test]
fn the_envoy_rules_read_only_envoys_ext_authz_counters() {
    let rules = read("k8s/monitoring/envoy-prometheusrule.yaml");
    let docs = read("docs/monitoring.md");
    let errors = envoy_rule_errors(&rules, &docs);
    assert!(errors.is_empty(), "{errors:#?}");
    // Not vacuous: the outcomes an SRE acts on are all read.
    for counter in [
        "envoy_http_ext_authz_ok",
        "envoy_http_ext_authz_denied",
        "envoy_http_ext_authz_error",
        "envoy_http_ext_authz_failure_mode_allowed",
    ] {
        assert!(rules.contains(&format!("{counter}[")), "{counter} unused");
    }
    // ward's own rules stay free of Envoy's metrics (their checker refuses them).
    assert!(!read("k8s/monitoring/prometheusrule.yaml").contains("envoy_http_"));
}

#[test]
fn the_envoy_rules_checker_reports_each_mistake() {
    let rules = read("k8s/monitoring/envoy-prometheusrule.yaml");
    let docs = read("docs/monitoring.md");
    let broken = |from: &str, to: &str| {
        assert!(rules.contains(from), "{from:?} not in the rules");
        envoy_rule_errors(&rules.replacen(from, to, 1), &docs)
    };
    for (from, to, expect) in [
        (
            "rate(envoy_http_ext_authz_error[5m])",
            "rate(envoy_http_ext_authz_timeout[5m])",
            "envoy_http_ext_authz_timeout is not an ext_authz counter",
        ),
        (
            "envoy_ext_authz:error:ratio_rate5m > 0.05",
            "envoy_ext_authz:errors:ratio_rate5m > 0.05",
            "envoy_ext_authz:errors:ratio_rate5m is not a recording rule",
        ),
        (
            "envoy_ext_authz:checks:rate5m > 0.1\n          for: 5m",
            "ward:check_requests:rate5m > 0.1\n          for: 5m",
            "reads ward's ward:check_requests:rate5m",
        ),
        (
            "for: 0m",
            "",
            "EnvoyExtAuthzFailureModeAllowed: needs `for:`",
        ),
        (
            "severity: critical",
            "severity: page",
            "needs labels.severity",
        ),
        (
            "monitoring.md#envoyextauthzerrors",
            "monitoring.md#envoyerrors",
            "EnvoyExtAuthzErrors: runbook_url must end with",
        ),
        (
            "record: envoy_ext_authz:checks:rate5m",
            "record: ext_authz:checks:rate5m",
            "name it envoy_ext_authz:",
        ),
    ] {
        let errors = broken(from, to);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "{from:?} -> {to:?} should be reported with {expect:?}; got {errors:#?}"
        );
    }
    let no_runbook = envoy_rule_errors(&rules, "# Monitoring\n");
    assert!(
        no_runbook
            .iter()
            .any(|e| e.contains("has no heading `EnvoyExtAuthzUnreachable`")),
        "{no_runbook:#?}"
    );
}
