//! Reading ward's `/metrics` (Prometheus text exposition).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The exposition at `http://{admin}/metrics`, or None when it cannot be had in 2 s.
pub async fn scrape(admin: SocketAddr, client: &reqwest::Client) -> Option<String> {
    let r = client
        .get(format!("http://{admin}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    r.text().await.ok()
}

/// Sum of the samples of `name` whose labels contain every one of `labels`
/// (`result="hit"`).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each value of label `label` in `name`'s samples that contain `filter`, with the sum
/// of its samples.
pub fn metric_by(text: &str, name: &str, filter: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for l in text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(filter))
    {
        let Some(at) = l.find(&key) else { continue };
        let rest = &l[at + key.len()..];
        let Some(end) = rest.find('"') else { continue };
        let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *out.entry(rest[..end].to_string()).or_default() += v;
    }
    out
}

/// ward's verified-token cache counters (hits, misses) in an exposition.
pub fn cache_counters(text: &str) -> (u64, u64) {
    let sum = |result: &str| {
        metric(
            text,
            "ward_token_cache_requests_total",
            &[&format!("result=\"{result}\"")],
        ) as u64
    };
    (sum("hit"), sum("miss"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ward_token_cache_requests_total Token cache lookups.
# TYPE ward_token_cache_requests_total counter
ward_token_cache_requests_total{provider="idp",result="hit"} 120
ward_token_cache_requests_total{provider="idp",result="miss"} 7
ward_token_cache_requests_total{provider="other",result="hit"} 3
ward_token_cache_requests_total_extra{result="hit"} 1000
ward_jwks_refresh_total{provider="corp",result="success"} 4
ward_jwks_refresh_total{provider="corp",result="timeout"} 2
ward_jwks_refresh_total{provider="other",result="success"} 9
ward_up 1
ward_jwks_last_success_timestamp_seconds{provider="corp"} 1.7e9
"#;

    #[test]
    fn samples_are_summed_by_labels() {
        assert_eq!(
            metric(TEXT, "ward_token_cache_requests_total", &["result=\"hit\""]),
            123.0
        );
        assert_eq!(
            metric(
                TEXT,
                "ward_token_cache_requests_total",
                &["provider=\"idp\"", "result=\"miss\""]
            ),
            7.0
        );
        assert_eq!(metric(TEXT, "ward_up", &[]), 1.0);
        assert_eq!(
            metric(
                TEXT,
                "ward_jwks_last_success_timestamp_seconds",
                &["provider=\"corp\""]
            ),
            1.7e9
        );
        assert_eq!(metric(TEXT, "ward_missing", &[]), 0.0);
    }

    #[test]
    fn samples_are_grouped_by_a_label() {
        let m = metric_by(
            TEXT,
            "ward_jwks_refresh_total",
            "provider=\"corp\"",
            "result",
        );
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![("success".to_string(), 4.0), ("timeout".to_string(), 2.0)]
        );
        assert!(metric_by(TEXT, "ward_up", "", "result").is_empty());
    }

    #[test]
    fn cache_counters_sum_every_provider() {
        assert_eq!(cache_counters(TEXT), (123, 7));
        assert_eq!(cache_counters(""), (0, 0));
    }
}
