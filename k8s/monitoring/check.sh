#!/usr/bin/env bash
# k8s/monitoring/check.sh — validate ward's PrometheusRules with promtool.
#
#   bash k8s/monitoring/check.sh
#
# 1. Extracts spec (the rule groups) from prometheusrule.yaml (ward's metrics)
#    and envoy-prometheusrule.yaml (the calling Envoys' ext_authz statistics)
#    into plain rules files and runs `promtool check rules` on both (PromQL
#    syntax, durations, templates).
# 2. Runs every query of grafana-dashboard.json through `promtool check rules`
#    too, as a recording rule (needs python3 to read the JSON; skipped without).
# 3. Runs `promtool test rules` with the unit tests below: each alert fires on a
#    synthetic incident (labels and rendered annotations compared) and stays
#    quiet on the healthy or recovered twin, and the recording rules compute
#    the ratios the dashboard plots.
#    The Envoy-side rules get unit tests of their own (ward unreachable, a
#    steady error share, a fail-open Envoy, no Envoy scraped).
# 4. Feeds promtool a broken copy (a misspelled function) that it must reject,
#    a unit test expecting an alert that cannot fire, and one expecting the
#    fail-open alert quiet while it fires: each must fail.
#
# Metric names and labels are checked against ward's real /metrics output (and
# the Envoy-side rules against Envoy's ext_authz counter names) by
# `cargo test --test monitoring`, not here.
#
# Needs promtool (Debian/Ubuntu: `apt-get install -y prometheus`).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RULE="$HERE/prometheusrule.yaml"
ENVOY_RULE="$HERE/envoy-prometheusrule.yaml"
command -v promtool >/dev/null || { echo "check.sh: promtool not found (apt-get install -y prometheus)" >&2; exit 2; }
echo "promtool: $(promtool --version 2>&1 | head -n 1)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ward-rules.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A PrometheusRule's spec is a Prometheus rules file indented by two spaces:
# everything after the top-level `spec:` line, de-indented. Anything after spec
# that is not indented would be another top-level key: refuse it.
extract() {
  awk '
    found && /^[^ #]/ { print "check.sh: top-level key after spec: " $0 > "/dev/stderr"; bad = 1 }
    found { sub(/^  /, ""); print }
    /^spec:[ ]*$/ { found = 1 }
    END { if (!found) { print "check.sh: no top-level spec: in " FILENAME > "/dev/stderr"; bad = 1 }
          exit bad }
  ' "$1" >"$2"
  grep -q '^groups:' "$2" || { echo "check.sh: $1: spec has no groups" >&2; exit 1; }
}
extract "$RULE" "$WORK/rules.yaml"
extract "$ENVOY_RULE" "$WORK/envoy-rules.yaml"

echo "== promtool check rules"
promtool check rules "$WORK/rules.yaml" "$WORK/envoy-rules.yaml"

# Every PromQL query of the Grafana dashboard, as recording rules, so promtool
# parses them too (Grafana's interval variables replaced by durations).
if command -v python3 >/dev/null; then
  python3 - "$HERE/grafana-dashboard.json" >"$WORK/dashboard-rules.yaml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
subst = {"${__rate_interval}": "5m", "$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
print("groups:\n  - name: dashboard\n    rules:")
n = 0
def walk(panels):
    global n
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            expr = t["expr"]
            for k, v in subst.items():
                expr = expr.replace(k, v)
            n += 1
            print("      - record: dashboard_panel_%s_%s" % (p["id"], t["refId"]))
            print("        expr: %s" % json.dumps(expr))
walk(d["panels"])
if n == 0:
    sys.exit("check.sh: no queries in the dashboard")
PY
  echo "== promtool check rules (the dashboard's queries)"
  promtool check rules "$WORK/dashboard-rules.yaml"
else
  echo "== skipped: the dashboard's queries (python3 not found)"
fi

# Label sets of one ward pod as the Prometheus Operator scrapes it.
T='job="ward", namespace="ward", instance="10.0.0.1:9002", pod="ward-0"'
# runbook_url prefix of every alert.
R='https://github.com/ward-authz/ward/blob/main/docs/monitoring.md'
cat >"$WORK/tests.yaml" <<EOF
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # ---------------------------------------------------------------- WardDown
  - name: every target down, then back
    interval: 1m
    input_series:
      - series: 'up{$T}'
        values: '1x5 0x10 1x10'
    alert_rule_test:
      - { eval_time: 4m, alertname: WardDown, exp_alerts: [] }
      - eval_time: 10m
        alertname: WardDown
        exp_alerts:
          - exp_labels: { severity: critical }
            exp_annotations:
              summary: 'No ward replica is being scraped successfully.'
              description: 'Prometheus has had no healthy ward target (job="ward") for 2 minutes. Envoy runs ext_authz with failure_mode_allow false, so every request that needs ward is being denied.'
              runbook_url: $R#warddown
      - eval_time: 12m
        alertname: WardTargetDown
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002", pod: ward-0 }
            exp_annotations:
              summary: 'A ward replica cannot be scraped.'
              description: 'ward/ward-0 (10.0.0.1:9002) has failed its /metrics scrape for 5 minutes; the others still serve.'
              runbook_url: $R#wardtargetdown
      - { eval_time: 20m, alertname: WardDown, exp_alerts: [] }
  - name: no target at all (discovery lost)
    interval: 1m
    input_series:
      - series: 'up{job="other"}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: WardDown
        exp_alerts:
          - exp_labels: { severity: critical }
            exp_annotations:
              summary: 'No ward replica is being scraped successfully.'
              description: 'Prometheus has had no healthy ward target (job="ward") for 2 minutes. Envoy runs ext_authz with failure_mode_allow false, so every request that needs ward is being denied.'
              runbook_url: $R#warddown

  # ------------------------------------------------------------------ JWKS
  - name: JWKS stale and empty on one provider, fresh on another
    interval: 1m
    input_series:
      # corp: fetched at t=0, never again. partners: fetched every 10 minutes.
      - series: 'ward_jwks_last_success_timestamp_seconds{$T, provider="corp"}'
        values: '0x60'
      - series: 'ward_jwks_last_success_timestamp_seconds{$T, provider="partners"}'
        values: '0x9 600x10 1200x10 1800x10 2400x10 3000x10'
      - series: 'ward_jwks_keys{$T, provider="corp"}'
        values: '2x20 0x40'
      - series: 'ward_jwks_keys{$T, provider="partners"}'
        values: '3x60'
    alert_rule_test:
      - { eval_time: 30m, alertname: WardJWKSStale, exp_alerts: [] }
      - eval_time: 40m
        alertname: WardJWKSStale
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002", pod: ward-0, provider: corp }
            exp_annotations:
              summary: 'ward has not fetched a key set for 30 minutes.'
              description: 'ward-0 last fetched the keys of provider corp 40m 0s ago (3 refresh intervals of 10m). It keeps serving the last good keys, but a key rotation at the IdP would now fail every new token.'
              runbook_url: $R#wardjwksstale
      - { eval_time: 22m, alertname: WardJWKSNoKeys, exp_alerts: [] }
      - eval_time: 30m
        alertname: WardJWKSNoKeys
        exp_alerts:
          - exp_labels: { severity: critical, job: ward, namespace: ward, instance: "10.0.0.1:9002", pod: ward-0, provider: corp }
            exp_annotations:
              summary: 'ward holds no verification key for a JWT provider.'
              description: 'ward-0 has no usable key for provider corp: checks that need it answer 503 authn_unavailable and /readyz fails.'
              runbook_url: $R#wardjwksnokeys

  # ---------------------------------------------------------------- config
  - name: a broken config stays broken
    interval: 30s
    input_series:
      # started at t=0 (success timestamp 0), a failed reload at t=10m, no fix.
      - series: 'ward_config_reloads_total{$T, result="failure"}'
        values: '0x20 1x200'
      - series: 'ward_config_reloads_total{$T, result="success"}'
        values: '0x220'
      - series: 'ward_config_last_reload_success_timestamp_seconds{$T}'
        values: '0x220'
    alert_rule_test:
      - { eval_time: 10m, alertname: WardConfigReloadFailing, exp_alerts: [] }
      - eval_time: 20m
        alertname: WardConfigReloadFailing
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002" }
            exp_annotations:
              summary: 'ward rejects its new configuration.'
              description: 'ward/10.0.0.1:9002 failed to reload its config and has had no successful reload since; it keeps serving the last good config. A restarted pod would refuse to start with this file.'
              runbook_url: $R#wardconfigreloadfailing
      # still broken long after the last attempt
      - eval_time: 100m
        alertname: WardConfigReloadFailing
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002" }
            exp_annotations:
              summary: 'ward rejects its new configuration.'
              description: 'ward/10.0.0.1:9002 failed to reload its config and has had no successful reload since; it keeps serving the last good config. A restarted pod would refuse to start with this file.'
              runbook_url: $R#wardconfigreloadfailing
  - name: two replicas on two configs, then in step
    interval: 1m
    input_series:
      - series: 'ward_config_info{$T, hash="aaaaaaaaaaaaaaaa"}'
        values: '1x40'
      - series: 'ward_config_info{job="ward", namespace="ward", instance="10.0.0.2:9002", pod="ward-1", hash="bbbbbbbbbbbbbbbb"}'
        values: '1x20 _x20'
      - series: 'ward_config_info{job="ward", namespace="ward", instance="10.0.0.2:9002", pod="ward-1", hash="aaaaaaaaaaaaaaaa"}'
        values: '_x20 1x20'
    alert_rule_test:
      - { eval_time: 10m, alertname: WardConfigDiffers, exp_alerts: [] }
      - eval_time: 18m
        alertname: WardConfigDiffers
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward }
            exp_annotations:
              summary: 'ward replicas decide by different configs.'
              description: '2 different configs are in use in ward for 15 minutes; the same request may get different answers.'
              runbook_url: $R#wardconfigdiffers
      - { eval_time: 30m, alertname: WardConfigDiffers, exp_alerts: [] }
  - name: a broken config fixed a minute later never alerts
    interval: 30s
    input_series:
      # failed reload at t=10m, good reload at t=11m (success timestamp 660).
      - series: 'ward_config_reloads_total{$T, result="failure"}'
        values: '0x20 1x200'
      - series: 'ward_config_reloads_total{$T, result="success"}'
        values: '0x22 1x198'
      - series: 'ward_config_last_reload_success_timestamp_seconds{$T}'
        values: '0x22 660x198'
    alert_rule_test:
      - { eval_time: 12m, alertname: WardConfigReloadFailing, exp_alerts: [] }
      - { eval_time: 20m, alertname: WardConfigReloadFailing, exp_alerts: [] }
      - { eval_time: 60m, alertname: WardConfigReloadFailing, exp_alerts: [] }
  - name: a success long ago and a failure now
    interval: 30s
    input_series:
      - series: 'ward_config_reloads_total{$T, result="failure"}'
        values: '0x60 1x60'
      - series: 'ward_config_last_reload_success_timestamp_seconds{$T}'
        values: '0x10 300x110'
    alert_rule_test:
      - eval_time: 45m
        alertname: WardConfigReloadFailing
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002" }
            exp_annotations:
              summary: 'ward rejects its new configuration.'
              description: 'ward/10.0.0.1:9002 failed to reload its config and has had no successful reload since; it keeps serving the last good config. A restarted pod would refuse to start with this file.'
              runbook_url: $R#wardconfigreloadfailing

  # --------------------------------------------------------------- denials
  - name: denial spike over a quiet baseline
    interval: 1m
    input_series:
      # 7 checks/s allowed, 0.5/s shadow-denied throughout; denials 0.5/s for
      # 1h, then 5/s.
      - series: 'ward_check_requests_total{$T, route="api", decision="allow", reason="ok"}'
        values: '0+420x120'
      - series: 'ward_check_requests_total{$T, route="api", decision="deny", reason="invalid_token"}'
        values: '0+30x60 1800+300x60'
      - series: 'ward_check_requests_total{$T, route="api", decision="shadow_deny", reason="forbidden"}'
        values: '0+30x120'
    promql_expr_test:
      - expr: ward:check_requests_deny:ratio_rate5m
        eval_time: 30m
        exp_samples:
          - labels: 'ward:check_requests_deny:ratio_rate5m{job="ward", namespace="ward"}'
            value: 0.0625
      - expr: ward:check_requests_shadow_deny:ratio_rate5m
        eval_time: 30m
        exp_samples:
          - labels: 'ward:check_requests_shadow_deny:ratio_rate5m{job="ward", namespace="ward"}'
            value: 0.0625
    alert_rule_test:
      - { eval_time: 55m, alertname: WardDenialSpike, exp_alerts: [] }
      - eval_time: 80m
        alertname: WardDenialSpike
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward }
            exp_annotations:
              summary: 'ward denies far more requests than it did an hour ago.'
              description: '40% of checks in ward are denied, more than twice the share of the hour before. Look at the denials by reason and route on the dashboard.'
              runbook_url: $R#warddenialspike
      - { eval_time: 80m, alertname: WardDenialRatioHigh, exp_alerts: [] }
  - name: most checks denied
    interval: 1m
    input_series:
      - series: 'ward_check_requests_total{$T, route="api", decision="allow", reason="ok"}'
        values: '0+60x60'
      - series: 'ward_check_requests_total{$T, route="api", decision="deny", reason="forbidden"}'
        values: '0+600x60'
    alert_rule_test:
      - eval_time: 30m
        alertname: WardDenialRatioHigh
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward }
            exp_annotations:
              summary: 'ward denies more than half of all requests.'
              description: '90.91% of checks in ward have been denied for 10 minutes.'
              runbook_url: $R#warddenialratiohigh
  - name: a low-traffic namespace never alerts on ratios
    interval: 1m
    input_series:
      - series: 'ward_check_requests_total{$T, route="api", decision="deny", reason="forbidden"}'
        values: '0+6x60'
    alert_rule_test:
      - { eval_time: 30m, alertname: WardDenialRatioHigh, exp_alerts: [] }
  - name: authn unavailable
    interval: 1m
    input_series:
      - series: 'ward_check_requests_total{$T, route="api", decision="deny", reason="authn_unavailable"}'
        values: '0x10 0+30x20'
      - series: 'ward_check_requests_total{$T, route="public", decision="allow", reason="ok"}'
        values: '0+30x30'
    alert_rule_test:
      - { eval_time: 10m, alertname: WardAuthnUnavailable, exp_alerts: [] }
      - eval_time: 20m
        alertname: WardAuthnUnavailable
        exp_alerts:
          - exp_labels: { severity: critical, job: ward, namespace: ward, route: api }
            exp_annotations:
              summary: 'ward answers 503 because it cannot verify credentials.'
              description: 'Route api in ward denies 0.50 checks/s with authn_unavailable: a key source or introspection endpoint is unreachable and nothing usable is cached.'
              runbook_url: $R#wardauthnunavailable

  # --------------------------------------------------------------- latency
  - name: a quarter of checks slower than 5 ms
    interval: 1m
    input_series:
      # 10 checks/s; from t=30m, 2.5/s of them slower than 5 ms. The firing
      # value is read at 95m, when the whole 1h window lies inside the incident:
      # a window that straddles both phases depends on how the Prometheus
      # version extrapolates rate() at the window's edges.
      - series: 'ward_check_duration_seconds_bucket{$T, decision="allow", idp="none", le="0.005"}'
        values: '0+600x30 18000+450x70'
      - series: 'ward_check_duration_seconds_bucket{$T, decision="allow", idp="none", le="+Inf"}'
        values: '0+600x100'
      - series: 'ward_check_duration_seconds_count{$T, decision="allow", idp="none"}'
        values: '0+600x100'
    promql_expr_test:
      - expr: ward:check_slow:ratio_rate5m
        eval_time: 20m
        exp_samples:
          - labels: 'ward:check_slow:ratio_rate5m{job="ward", namespace="ward"}'
            value: 0
    alert_rule_test:
      - { eval_time: 30m, alertname: WardLatencySLOBurnFast, exp_alerts: [] }
      - eval_time: 95m
        alertname: WardLatencySLOBurnFast
        exp_alerts:
          - exp_labels: { severity: critical, job: ward, namespace: ward }
            exp_annotations:
              summary: 'ward burns its 5 ms latency budget fast.'
              description: '25% of checks in ward took longer than 5 ms over the last 1h (or 6h); the objective allows 1%. At this rate a 30-day error budget is gone within days.'
              runbook_url: $R#wardlatencysloburnfast
  - name: 4% of checks slower than 5 ms for a day
    interval: 5m
    input_series:
      - series: 'ward_check_duration_seconds_bucket{$T, decision="allow", idp="none", le="0.005"}'
        values: '0+2880x300'
      - series: 'ward_check_duration_seconds_count{$T, decision="allow", idp="none"}'
        values: '0+3000x300'
    alert_rule_test:
      - { eval_time: 25h, alertname: WardLatencySLOBurnFast, exp_alerts: [] }
      - eval_time: 25h
        alertname: WardLatencySLOBurnSlow
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward }
            exp_annotations:
              summary: 'ward slowly burns its 5 ms latency budget.'
              description: '4% of checks in ward took longer than 5 ms over the last 1d (or 3d); the objective allows 1%.'
              runbook_url: $R#wardlatencysloburnslow
  - name: fast checks never burn the budget
    interval: 1m
    input_series:
      - series: 'ward_check_duration_seconds_bucket{$T, decision="allow", idp="none", le="0.005"}'
        values: '0+600x90'
      - series: 'ward_check_duration_seconds_count{$T, decision="allow", idp="none"}'
        values: '0+600x90'
    alert_rule_test:
      - { eval_time: 90m, alertname: WardLatencySLOBurnFast, exp_alerts: [] }
      - { eval_time: 90m, alertname: WardLatencySLOBurnSlow, exp_alerts: [] }
  - name: checks that waited on a slow IdP are not ward's latency
    interval: 1m
    input_series:
      - series: 'ward_check_duration_seconds_bucket{$T, decision="allow", idp="none", le="0.005"}'
        values: '0+600x90'
      - series: 'ward_check_duration_seconds_count{$T, decision="allow", idp="none"}'
        values: '0+600x90'
      # A quarter of all checks waited on the IdP, every one slower than 5 ms.
      - series: 'ward_check_duration_seconds_bucket{$T, decision="allow", idp="waited", le="0.005"}'
        values: '0x90'
      - series: 'ward_check_duration_seconds_count{$T, decision="allow", idp="waited"}'
        values: '0+200x90'
    alert_rule_test:
      - { eval_time: 90m, alertname: WardLatencySLOBurnFast, exp_alerts: [] }

  # --------------------------------------------------------- introspection
  - name: introspection endpoint failing
    interval: 1m
    input_series:
      - series: 'ward_introspection_requests_total{$T, provider="partners", result="active"}'
        values: '0+60x40'
      - series: 'ward_introspection_requests_total{$T, provider="partners", result="timeout"}'
        values: '0x10 0+30x30'
      - series: 'ward_introspection_duration_seconds_bucket{$T, provider="partners", le="1"}'
        values: '0+60x40'
      - series: 'ward_introspection_duration_seconds_bucket{$T, provider="partners", le="2.5"}'
        values: '0+60x10 600+90x30'
      - series: 'ward_introspection_duration_seconds_bucket{$T, provider="partners", le="+Inf"}'
        values: '0+60x10 600+90x30'
    alert_rule_test:
      - { eval_time: 10m, alertname: WardIntrospectionErrors, exp_alerts: [] }
      - eval_time: 30m
        alertname: WardIntrospectionErrors
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, provider: partners }
            exp_annotations:
              summary: 'Token introspection calls are failing.'
              description: '33.33% of introspection calls for provider partners fail (unreachable, timeout, bad answer or circuit open). Opaque tokens not in the cache are answered 503.'
              runbook_url: $R#wardintrospectionerrors
      - eval_time: 35m
        alertname: WardIntrospectionSlow
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, provider: partners }
            exp_annotations:
              summary: 'Token introspection is slow.'
              description: 'The 99th percentile of introspection calls for provider partners is 2.455s; every cache miss waits that long.'
              runbook_url: $R#wardintrospectionslow
  - name: an introspection endpoint backed off, then answering again
    interval: 1m
    input_series:
      - series: 'ward_introspection_circuit_open{$T, provider="partners"}'
        values: '0x5 1x10 0x10'
      - series: 'ward_introspection_circuit_open{job="ward", namespace="ward", instance="10.0.0.2:9002", pod="ward-1", provider="partners"}'
        values: '0x25'
    alert_rule_test:
      - { eval_time: 8m, alertname: WardIntrospectionCircuitOpen, exp_alerts: [] }
      - eval_time: 12m
        alertname: WardIntrospectionCircuitOpen
        exp_alerts:
          - exp_labels: { severity: critical, job: ward, namespace: ward, provider: partners }
            exp_annotations:
              summary: 'ward has backed off an introspection endpoint.'
              description: 'The circuit breaker of provider partners has been open for 5 minutes in ward: ward sends one probe at a time, and opaque tokens not in the cache are answered 503 authn_unavailable.'
              runbook_url: $R#wardintrospectioncircuitopen
      - { eval_time: 20m, alertname: WardIntrospectionCircuitOpen, exp_alerts: [] }

  # ------------------------------------------------------------------ TLS
  - name: a certificate near its end, a renewal that does not load, then a good one
    interval: 1m
    input_series:
      # expires at 10d (864000 s) until the renewal at 40m moves it to 100d.
      - series: 'ward_tls_certificate_expiry_timestamp_seconds{$T}'
        values: '864000x39 8640000x20'
      - series: 'ward_tls_reloads_total{$T, result="failure"}'
        values: '0x10 1x50'
      - series: 'ward_tls_reloads_total{$T, result="success"}'
        values: '0x39 1x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: WardTLSReloadFailing
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002", pod: ward-0, result: failure }
            exp_annotations:
              summary: 'ward cannot load its renewed TLS certificate.'
              description: 'ward-0 saw its certificate files change but could not load them; it keeps serving the previous certificate until that expires.'
              runbook_url: $R#wardtlsreloadfailing
      - { eval_time: 35m, alertname: WardTLSReloadFailing, exp_alerts: [] }
      - { eval_time: 30m, alertname: WardTLSCertificateExpiring, exp_alerts: [] }
  - name: a certificate that really runs out
    interval: 1m
    input_series:
      # expires 6d 23h after the start: inside the 7-day window from the start.
      - series: 'ward_tls_certificate_expiry_timestamp_seconds{$T}'
        values: '601200x30'
    alert_rule_test:
      - { eval_time: 10m, alertname: WardTLSCertificateExpiring, exp_alerts: [] }
      - eval_time: 20m
        alertname: WardTLSCertificateExpiring
        exp_alerts:
          - exp_labels: { severity: warning, job: ward, namespace: ward, instance: "10.0.0.1:9002", pod: ward-0 }
            exp_annotations:
              summary: "ward's serving certificate expires within 7 days."
              description: 'The certificate ward-0 serves on its gRPC port expires in 6d 22h 40m 0s; once it has, Envoy''s TLS handshakes fail and every check with them.'
              runbook_url: $R#wardtlscertificateexpiring
EOF
# promtool compares labels and annotations: the expected annotations above are
# the rendered templates ($value, $labels), so a broken template fails too.
echo "== promtool test rules"
(cd "$WORK" && promtool test rules tests.yaml)

# The Envoy-side rules (envoy-prometheusrule.yaml), on one front-proxy Envoy pod
# as the PodMonitor of k8s/overlays/gateway scrapes it.
E='namespace="ward", pod="envoy-gateway-0", envoy_http_conn_manager_prefix="ingress_http"'
cat >"$WORK/envoy-tests.yaml" <<EOF
rule_files: [envoy-rules.yaml]
evaluation_interval: 1m
tests:
  - name: ward unreachable, then back
    interval: 1m
    input_series:
      # 10 checks/s answered; from t=20m to t=40m every check errors.
      - series: 'envoy_http_ext_authz_ok{$E}'
        values: '0+540x20 10800x20 10800+540x20'
      - series: 'envoy_http_ext_authz_denied{$E}'
        values: '0+60x20 1200x20 1200+60x20'
      - series: 'envoy_http_ext_authz_error{$E}'
        values: '0x20 0+600x20 12000x20'
      - series: 'envoy_http_ext_authz_failure_mode_allowed{$E}'
        values: '0x60'
    promql_expr_test:
      - expr: envoy_ext_authz:error:ratio_rate5m
        eval_time: 15m
        exp_samples:
          - labels: 'envoy_ext_authz:error:ratio_rate5m{namespace="ward"}'
            value: 0
    alert_rule_test:
      - { eval_time: 18m, alertname: EnvoyExtAuthzUnreachable, exp_alerts: [] }
      - eval_time: 35m
        alertname: EnvoyExtAuthzUnreachable
        exp_alerts:
          - exp_labels: { severity: critical, namespace: ward }
            exp_annotations:
              summary: "Envoy cannot get answers from ward."
              description: "100% of ext_authz checks by the Envoys in namespace ward end in an error (ward unreachable, refused, reset or too slow). Envoy fails closed: these requests are answered 503 (or 403 where status_on_error is not set)."
              runbook_url: $R#envoyextauthzunreachable
      - { eval_time: 55m, alertname: EnvoyExtAuthzUnreachable, exp_alerts: [] }
      - { eval_time: 35m, alertname: EnvoyExtAuthzFailureModeAllowed, exp_alerts: [] }
      - { eval_time: 35m, alertname: EnvoyExtAuthzStatsMissing, exp_alerts: [] }
  - name: one check in a hundred fails for half an hour
    interval: 1m
    input_series:
      - series: 'envoy_http_ext_authz_ok{$E}'
        values: '0+594x60'
      - series: 'envoy_http_ext_authz_error{$E}'
        values: '0x10 0+6x50'
    alert_rule_test:
      - { eval_time: 20m, alertname: EnvoyExtAuthzErrors, exp_alerts: [] }
      - eval_time: 40m
        alertname: EnvoyExtAuthzErrors
        exp_alerts:
          - exp_labels: { severity: warning, namespace: ward }
            exp_annotations:
              summary: "Some of Envoy's ext_authz checks fail."
              description: "1% of ext_authz checks by the Envoys in namespace ward have ended in an error for 15 minutes: timeouts or connection failures to some ward replicas."
              runbook_url: $R#envoyextauthzerrors
      - { eval_time: 40m, alertname: EnvoyExtAuthzUnreachable, exp_alerts: [] }
  - name: an Envoy that fails open passes requests unauthorised
    interval: 1m
    input_series:
      - series: 'envoy_http_ext_authz_ok{$E}'
        values: '0+600x30'
      - series: 'envoy_http_ext_authz_error{$E}'
        values: '0x10 3x20'
      - series: 'envoy_http_ext_authz_failure_mode_allowed{$E}'
        values: '0x10 3x20'
    alert_rule_test:
      - { eval_time: 9m, alertname: EnvoyExtAuthzFailureModeAllowed, exp_alerts: [] }
      - eval_time: 12m
        alertname: EnvoyExtAuthzFailureModeAllowed
        exp_alerts:
          - exp_labels: { severity: critical, namespace: ward, pod: envoy-gateway-0 }
            exp_annotations:
              summary: "Envoy let requests through without an authorization decision."
              description: "Envoy ward/envoy-gateway-0 forwarded 3 requests in 5 minutes that ward never decided on, because its ext_authz filter runs with failure_mode_allow true. These requests reached the upstream unauthorised."
              runbook_url: $R#envoyextauthzfailuremodeallowed
      # Five minutes after the last one, quiet again.
      - { eval_time: 20m, alertname: EnvoyExtAuthzFailureModeAllowed, exp_alerts: [] }
  - name: no Envoy scraped
    interval: 1m
    input_series:
      - series: 'up{job="other"}'
        values: '1x40'
    alert_rule_test:
      - { eval_time: 10m, alertname: EnvoyExtAuthzStatsMissing, exp_alerts: [] }
      - eval_time: 35m
        alertname: EnvoyExtAuthzStatsMissing
        exp_alerts:
          - exp_labels: { severity: warning }
            exp_annotations:
              summary: "Prometheus holds no ext_authz statistics from any Envoy."
              description: "No envoy_http_ext_authz_error series for 30 minutes: the Envoy scrape is broken or no Envoy runs the ext_authz filter, and the other Envoy-side alerts cannot fire."
              runbook_url: $R#envoyextauthzstatsmissing
EOF
echo "== promtool test rules (the Envoy-side rules)"
(cd "$WORK" && promtool test rules envoy-tests.yaml)

echo "== negative checks"
sed 's/rate(ward_check_requests_total{job="ward"}\[5m\])/rte(ward_check_requests_total{job="ward"}[5m])/' \
  "$WORK/rules.yaml" >"$WORK/broken.yaml"
cmp -s "$WORK/rules.yaml" "$WORK/broken.yaml" && { echo "check.sh: negative copy unchanged" >&2; exit 1; }
if promtool check rules "$WORK/broken.yaml" >/dev/null 2>&1; then
  echo "check.sh: promtool accepted a rule calling rte()" >&2; exit 1
fi
echo "  ok   promtool rejects a rule calling rte()"
sed 's/alertname: WardDenialRatioHigh, exp_alerts: \[\] }/alertname: WardDenialRatioHigh, exp_alerts: [{ exp_labels: { severity: critical } }] }/' \
  "$WORK/tests.yaml" >"$WORK/broken-tests.yaml"
cmp -s "$WORK/tests.yaml" "$WORK/broken-tests.yaml" && { echo "check.sh: negative test unchanged" >&2; exit 1; }
if (cd "$WORK" && promtool test rules broken-tests.yaml >/dev/null 2>&1); then
  echo "check.sh: promtool passed a unit test expecting an alert that cannot fire" >&2; exit 1
fi
echo "  ok   promtool fails a unit test that expects a quiet alert to fire"
sed 's/{ eval_time: 9m, alertname: EnvoyExtAuthzFailureModeAllowed, exp_alerts: \[\] }/{ eval_time: 12m, alertname: EnvoyExtAuthzFailureModeAllowed, exp_alerts: [] }/' \
  "$WORK/envoy-tests.yaml" >"$WORK/broken-envoy-tests.yaml"
cmp -s "$WORK/envoy-tests.yaml" "$WORK/broken-envoy-tests.yaml" && { echo "check.sh: negative Envoy test unchanged" >&2; exit 1; }
if (cd "$WORK" && promtool test rules broken-envoy-tests.yaml >/dev/null 2>&1); then
  echo "check.sh: promtool passed a unit test expecting EnvoyExtAuthzFailureModeAllowed quiet while it fires" >&2; exit 1
fi
echo "  ok   promtool fails a unit test that expects the failure-mode alert quiet while it fires"
echo "k8s/monitoring: rules (ward and Envoy-side) valid, unit tests pass"
