//! The label checker on a small hand-made scrape.

use super::*;

fn family(ty: &str, labels: &[(&str, &[&str])], le: &[&str]) -> Family {
    Family {
        ty: ty.into(),
        labels: labels.iter().map(|(l, _)| l.to_string()).collect(),
        le: le.iter().map(|b| b.to_string()).collect(),
        values: labels
            .iter()
            .map(|(l, vs)| (l.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
    }
}

fn contract(family: &str, label: &str) -> Option<&'static [&'static str]> {
    match (family, label) {
        ("ward_requests_total", "decision") => Some(&["allow", "deny"]),
        _ => None,
    }
}

fn checker() -> Checker {
    let mut f = BTreeMap::new();
    f.insert(
        "ward_requests_total".to_string(),
        family(
            "counter",
            &[("route", &["orders"]), ("decision", &["allow"])],
            &[],
        ),
    );
    f.insert(
        "ward_duration_seconds".to_string(),
        family("histogram", &[("decision", &["allow"])], &["0.005", "+Inf"]),
    );
    f.insert(
        "ward_keys".to_string(),
        family("gauge", &[("provider", &["idp"])], &[]),
    );
    Checker::new(f, &["job", "namespace"], contract)
}

/// The errors of one query, without their context.
fn errors(q: &str) -> Vec<String> {
    let mut c = checker();
    c.query("q", q);
    c.errors
        .iter()
        .map(|e| e.trim_start_matches("q: ").to_string())
        .collect()
}

fn labels(q: &str) -> Vec<String> {
    let mut c = checker();
    match c.query("q", q) {
        Some(Ty::Vector(l)) => {
            assert!(c.errors.is_empty(), "{:?}", c.errors);
            l.into_keys().collect()
        }
        other => panic!("{q}: {other:?}"),
    }
}

#[test]
fn labels_flow_through_rate_and_sum() {
    assert_eq!(
        labels("ward_requests_total"),
        ["decision", "job", "namespace", "route"]
    );
    assert_eq!(
        labels("sum by (job, route) (rate(ward_requests_total{decision=\"deny\"}[5m]))"),
        ["job", "route"]
    );
    assert_eq!(
        labels("sum without (route) (ward_requests_total)"),
        ["decision", "job", "namespace"]
    );
    assert_eq!(
        labels("histogram_quantile(0.99, sum by (le) (rate(ward_duration_seconds_bucket[5m])))"),
        Vec::<String>::new()
    );
    assert_eq!(
        labels("sum(ward_keys) / sum(ward_keys)"),
        Vec::<String>::new()
    );
    assert_eq!(
        labels("ward_keys > on (job) group_left (route) ward_requests_total"),
        ["job", "namespace", "provider", "route"]
    );
}

#[test]
fn unknown_names_labels_and_values() {
    assert_eq!(
        errors("ward_request_total"),
        ["`ward_request_total` is not a metric ward exports on /metrics"]
    );
    assert_eq!(
        errors("ward_duration_seconds"),
        ["`ward_duration_seconds` is a histogram: query its _bucket, _sum or _count series"]
    );
    assert_eq!(
        errors("ward_keys{route=\"x\"}"),
        ["{route=...}: route is not a label of ward_keys (labels: job, namespace, provider)"]
    );
    assert_eq!(
        errors("ward_requests_total{decision=\"denied\"}"),
        ["ward_requests_total never has decision=\"denied\" (it has: allow, deny)"]
    );
    assert_eq!(
        errors("ward_duration_seconds_bucket{le=\"0.05\"}"),
        ["no bucket of ward_duration_seconds has le=\"0.05\" (it has: +Inf, 0.005)"]
    );
    assert_eq!(
        errors("node_load1"),
        ["`node_load1` is neither ward's metric, nor a recording rule, nor up"]
    );
    // Grafana variables and regexes that are not plain lists are left alone.
    assert!(errors("ward_requests_total{decision=~\"$d\", route=~\".*\"}").is_empty());
}

#[test]
fn shape_errors() {
    assert_eq!(
        errors("rate(ward_requests_total)"),
        ["rate() needs a range vector, like x[5m]"]
    );
    assert_eq!(
        errors("histogram_quantile(0.9, sum by (job) (rate(ward_duration_seconds_bucket[5m])))"),
        [
            "histogram_quantile() over a vector without le (labels: job): keep le in the sum by (...)"
        ]
    );
    assert_eq!(
        errors("sum by (job) (ward_keys) / sum by (route) (ward_requests_total)"),
        [
            "`/` between vectors with different labels (job) and (route): no series would match; aggregate both sides alike or use on(...)"
        ]
    );
    assert_eq!(
        errors("sum by (provider) (ward_requests_total)"),
        [
            "sum by (provider): provider is not a label there (labels: decision, job, namespace, route)"
        ]
    );
    assert_eq!(
        errors("ward_keys > on (route) ward_requests_total"),
        ["on (route), left side: route is not a label there (labels: job, namespace, provider)"]
    );
    assert_eq!(
        errors("holt_winters(ward_keys[5m], 0.5, 0.5)"),
        ["function holt_winters() is not modelled by the promql checker (add it to Checker::call)"]
    );
    assert_eq!(
        errors("sum(ward_keys"),
        ["cannot parse `sum(ward_keys`: unexpected end"]
    );
}

#[test]
fn recording_rules_carry_their_labels() {
    let mut c = checker();
    c.rules.insert(
        "ward:requests:rate5m".into(),
        "sum by (job, route) (rate(ward_requests_total[5m]))".into(),
    );
    c.rules.insert("ward:loop".into(), "ward:loop".into());
    assert_eq!(
        c.query("a", "ward:requests:rate5m{route=\"orders\"}"),
        Some(Ty::Vector(
            [
                ("job", BTreeSet::new()),
                ("route", ["ward_requests_total".to_string()].into())
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        ))
    );
    c.query("b", "ward:requests:rate5m{decision=\"allow\"}");
    c.query("c", "ward:unknown");
    c.query("d", "ward:loop");
    let errors: Vec<&String> = c.errors.iter().collect();
    assert_eq!(
        errors,
        [
            "b: {decision=...}: decision is not a label of ward:requests:rate5m (labels: job, route)",
            "c: `ward:unknown` is not a recording rule of prometheusrule.yaml",
        ]
    );
    assert_eq!(
        c.used
            .get("a")
            .map(|u| u.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["ward:requests:rate5m".to_string()])
    );
}
