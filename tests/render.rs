//! `ward render`: what a proxy must know of a config, derived from it; and the shipped
//! proxy files kept in step with what it prints for the bundled config
//! (`k8s/base/configmap.yaml`), so a header ward owns or a provider timeout cannot drift
//! from the files that strip it or wait for it.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::bin::ward_out;
use ward::render::{ProxySettings, Target, render};

fn repo(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn load(yaml: &str) -> ward::config::Config {
    let env: HashMap<String, String> = HashMap::new();
    match ward::config::load_str(yaml, Path::new("."), &env) {
        Ok(c) => c,
        Err(e) => panic!("config: {:?}", e.0),
    }
}

/// The `ward.yaml` the Kubernetes base ships, from its ConfigMap.
fn bundled() -> ward::config::Config {
    let map = repo("k8s/base/configmap.yaml");
    let (_, body) = map
        .split_once("  ward.yaml: |\n")
        .expect("the ConfigMap holds ward.yaml");
    let yaml: Vec<&str> = body
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    load(&yaml.join("\n"))
}

/// The `- item` lines right after the first line of `text` that ends with `key`.
fn list_after(text: &str, key: &str, file: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.trim_end().ends_with(key));
    assert!(lines.next().is_some(), "{file}: no `{key}`");
    lines
        .map(str::trim)
        .skip_while(|l| l.starts_with('#'))
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- ").to_string())
        .collect()
}

/// The value of the first `timeout:` line after the first line containing `after`.
fn timeout_after(text: &str, after: &str, file: &str) -> String {
    text.lines()
        .skip_while(|l| !l.contains(after))
        .map(str::trim)
        .find_map(|l| l.strip_prefix("timeout: "))
        .unwrap_or_else(|| panic!("{file}: no timeout after `{after}`"))
        .to_string()
}

#[test]
fn settings_follow_the_config() {
    let config = load(
        r#"
identity_headers: { subject: x-user }
providers:
  - name: keycloak
    jwt:
      issuer: https://sso.example.com
      audiences: [api]
      discovery: true
      timeout: 1500ms
      headers: { email: x-user-email }
  - name: opaque
    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: x
      audiences: any
      timeout: 2s
      token_from: [{ header: x-session }]
  - name: machines
    api_key: { header: x-api-key, keys: [{ sha256: "0000000000000000000000000000000000000000000000000000000000000000", subject: batch }] }
routes:
  - name: orders
    match: { path_prefix: /orders, headers: { x-tenant: { present: true } } }
    providers: [keycloak, opaque, machines]
    require: { claim: { name: tenant, equals_header: x-tenant-id } }
"#,
    );
    let s = ProxySettings::of(&config);
    assert_eq!(
        s.owned,
        [
            "x-user",
            "x-auth-issuer",
            "x-auth-provider",
            "x-auth-roles",
            "x-auth-scopes",
            "x-user-email"
        ]
    );
    assert_eq!(
        s.read,
        [
            "authorization",
            "x-session",
            "x-api-key",
            "x-request-id",
            "dpop",
            "x-forwarded-proto",
            "x-tenant",
            "x-tenant-id"
        ]
    );
    // Discovery then the JWKS: two fetches of 1.5s, the slowest wait; plus 500ms.
    assert_eq!(s.timeout, Duration::from_millis(3500));
    assert_eq!(s.timeout_from, "providers[0] (jwt) waits up to 3s");
    let envoy = render(&config, Target::Envoy);
    assert!(
        envoy.contains("        - remove: x-user-email\n"),
        "{envoy}"
    );
    assert!(envoy.contains("  timeout: 3.5s\n"), "{envoy}");
    assert!(envoy.contains("        - exact: x-session\n"), "{envoy}");
    let eg = render(&config, Target::EnvoyGateway);
    assert!(eg.contains("    timeout: 3500ms\n"), "{eg}");
    assert!(eg.contains("        - x-user\n"), "{eg}");
    let istio = render(&config, Target::Istio);
    assert!(istio.contains("      timeout: 3.5s\n"), "{istio}");

    // Static keys never wait: the floor of 1s.
    let offline = load(
        "providers:\n  - name: dev\n    jwt: { issuer: https://dev, audiences: [a], algorithms: [HS256], jwks: { keys: [{ kty: oct, kid: k, alg: HS256, k: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0 }] } }\nroutes:\n  - name: r\n    match: { path_prefix: / }\n    providers: [dev]\n",
    );
    let s = ProxySettings::of(&offline);
    assert_eq!(s.timeout, Duration::from_secs(1));
    assert_eq!(s.timeout_from, "no provider waits on an IdP");
}

#[test]
fn the_shipped_proxy_files_follow_the_bundled_config() {
    let s = ProxySettings::of(&bundled());
    let owned: Vec<String> = s.owned.clone();
    let secs = {
        let ms = s.timeout.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{}s", s.timeout.as_secs_f64())
        }
    };
    for file in [
        "envoy/gateway.yaml",
        "k8s/overlays/gateway/gateway.yaml",
        "envoy/sidecar.yaml",
    ] {
        let text = repo(file);
        assert_eq!(
            list_after(&text, "request_headers_to_remove:", file),
            owned,
            "{file}: the owned headers removed where ext_authz is disabled"
        );
        assert_eq!(
            timeout_after(&text, "envoy_grpc: { cluster_name: ward }", file),
            secs,
            "{file}: ext_authz timeout"
        );
    }
    let eg = repo("envoy/envoy-gateway-securitypolicy.yaml");
    assert_eq!(
        list_after(&eg, "remove:", "envoy-gateway-securitypolicy.yaml"),
        owned
    );
    let eg_timeouts: Vec<&str> = eg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("timeout: "))
        .collect();
    assert!(!eg_timeouts.is_empty());
    for t in eg_timeouts {
        assert_eq!(
            t,
            format!("{}ms", s.timeout.as_millis()),
            "envoy-gateway timeout"
        );
    }
    let istio = repo("k8s/overlays/istio/mesh-config.yaml");
    assert_eq!(
        timeout_after(&istio, "envoyExtAuthzGrpc:", "mesh-config.yaml"),
        secs
    );
    let http = repo("envoy/http-service.yaml");
    assert_eq!(
        timeout_after(&http, "server_uri:", "http-service.yaml"),
        secs
    );
}

#[test]
fn the_command_prints_each_target_and_refuses_a_bad_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.yaml");
    let c = config.to_str().expect("utf-8 path");
    for target in ["envoy", "istio", "envoy-gateway"] {
        let (code, stdout, stderr) = ward_out(dir.path(), &["render", target, "--config", c]);
        assert_eq!(code, Some(0), "{target}: {stderr}");
        assert!(
            stdout.starts_with("# Derived from ward's config"),
            "{stdout}"
        );
        assert!(stdout.contains("x-auth-subject"), "{target}: {stdout}");
    }
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "routes: []\n").expect("write");
    let (code, stdout, stderr) = ward_out(
        dir.path(),
        &["render", "envoy", "--config", bad.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(stderr.contains("routes"), "{stderr}");
    let (code, _, _) = ward_out(dir.path(), &["render", "nginx", "--config", c]);
    assert_eq!(code, Some(2), "an unknown target is a usage error");
}

#[test]
fn a_cookie_credential_and_a_login_redirect_are_forwarded_by_an_http_ext_authz() {
    let config = load(
        r#"
providers:
  - name: web
    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: x
      audiences: any
      token_from: [{ cookie: session }, { query: access_token }]
routes:
  - name: app
    match: { path_prefix: /app }
    providers: [web]
    on_unauthenticated: { redirect: "https://login.example.com/?rd={url}" }
"#,
    );
    let s = ProxySettings::of(&config);
    // The cookie header carries the credential; a query source needs no header (the
    // path travels whole); the login redirect reads `accept` and the scheme.
    assert_eq!(
        s.read,
        ["cookie", "x-request-id", "accept", "x-forwarded-proto"]
    );
    let envoy = render(&config, Target::Envoy);
    for h in ["cookie", "accept", "x-forwarded-proto"] {
        assert!(
            envoy.contains(&format!("        - exact: {h}\n")),
            "{h}: {envoy}"
        );
    }
    assert!(!envoy.contains("access_token"), "{envoy}");
}

/// The lines of `block` (trimmed, comments and blank lines left out) in the order
/// `text` holds them, each found after the previous one.
fn holds_in_order(text: &str, block: &str, file: &str) {
    let mut rest = text.lines().map(str::trim);
    for want in block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            rest.any(|l| l == want),
            "{file}: `{want}` missing or out of order (from `ward render`)"
        );
    }
}

#[test]
fn the_shipped_istio_fragment_is_what_render_prints() {
    let want = render(&bundled(), Target::Istio);
    let shipped = repo("k8s/overlays/istio/extension-provider.yaml");
    assert_eq!(
        shipped, want,
        "k8s/overlays/istio/extension-provider.yaml drifted: regenerate it with \
         `ward render istio --config <the ConfigMap's ward.yaml>`"
    );
    assert!(shipped.contains("extensionProviders:\n  - name: ward\n"));
    // The IstioOperator for istioctl carries the same provider.
    let op = repo("k8s/overlays/istio/mesh-config.yaml");
    let entry = want
        .split_once("extensionProviders:\n")
        .map(|(_, e)| e)
        .expect("an extensionProviders list");
    holds_in_order(&op, entry, "mesh-config.yaml");
}

#[test]
fn the_shipped_envoy_files_carry_the_rendered_retry_policy() {
    let config = bundled();
    let envoy = render(&config, Target::Envoy);
    let retry = envoy
        .split_once("  retry_policy:\n")
        .and_then(|(_, r)| r.split_once("\n\n").map(|(r, _)| r))
        .expect("render envoy prints a retry_policy");
    assert!(retry.contains("num_retries: 1"), "{retry}");
    for file in [
        "envoy/gateway.yaml",
        "k8s/overlays/gateway/gateway.yaml",
        "envoy/sidecar.yaml",
    ] {
        let text = repo(file);
        let after = text
            .split_once("envoy_grpc: { cluster_name: ward }")
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{file}: no ward grpc_service"));
        holds_in_order(after, &format!("retry_policy:\n{retry}"), file);
    }
    let eg = render(&config, Target::EnvoyGateway);
    let retry = eg
        .split_once("backendSettings:\n")
        .map(|(_, r)| r)
        .expect("render envoy-gateway prints backendSettings");
    let file = repo("envoy/envoy-gateway-securitypolicy.yaml");
    for policy in file.split("\n---\n").filter(|d| d.contains("extAuth:")) {
        holds_in_order(
            policy,
            &format!("backendSettings:\n{retry}"),
            "envoy-gateway-securitypolicy.yaml",
        );
    }
}
