//! `ward render envoy|istio|envoy-gateway`: the proxy-side settings a config implies,
//! printed as YAML to paste (SPEC §11). One source of truth: the headers ward owns (the
//! proxy removes client-sent copies at the edge, before any route, also where ext_authz
//! does not run), the request headers ward reads (what an HTTP-service ext_authz must
//! forward), and an ext_authz timeout above the slowest provider's, so that a check
//! waiting on an IdP is answered by ward (503 `authn_unavailable`) rather than cut off by
//! the proxy. The shipped files under `envoy/` and `k8s/` are checked against it
//! (`tests/render.rs`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::Config;

/// Which proxy to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Envoy's own configuration (HTTP connection manager, ext_authz filter).
    Envoy,
    /// Istio's mesh config (`extensionProviders`).
    Istio,
    /// Envoy Gateway (`ClientTrafficPolicy`, `SecurityPolicy`).
    EnvoyGateway,
}

impl Target {
    /// `envoy`, `istio` or `envoy-gateway`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "envoy" => Target::Envoy,
            "istio" => Target::Istio,
            "envoy-gateway" => Target::EnvoyGateway,
            _ => return None,
        })
    }
}

/// What a proxy must know of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// The headers ward owns, in the order it lists them: client-sent copies must never
    /// reach an upstream.
    pub owned: Vec<String>,
    /// The request headers ward reads to decide (credentials, request id, headers that
    /// routes match on or conditions compare).
    pub read: Vec<String>,
    /// The ext_authz timeout: above the slowest provider's, at least 1 s.
    pub timeout: Duration,
    /// What sets the timeout: `providers[i] (kind): 2s`, or that no provider waits.
    pub timeout_from: String,
}

/// How much the ext_authz timeout stays above the slowest provider timeout: room for ward
/// to answer 503 itself once the provider gives up.
const MARGIN: Duration = Duration::from_millis(500);

impl ProxySettings {
    /// The settings `config` implies.
    pub fn of(config: &Config) -> Self {
        let owned = config
            .owned_headers()
            .iter()
            .map(|h| h.as_str().to_owned())
            .collect();
        let slowest = config
            .providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.kind_name(), p.wait_timeout()?)))
            .max_by_key(|(_, _, t)| *t);
        let (timeout, timeout_from) = match slowest {
            Some((i, kind, t)) => (
                (t + MARGIN).max(Duration::from_secs(1)),
                format!("providers[{i}] ({kind}) waits up to {}", seconds(t)),
            ),
            None => (
                Duration::from_secs(1),
                "no provider waits on an IdP".to_string(),
            ),
        };
        Self {
            owned,
            read: config.headers_read(),
            timeout,
            timeout_from,
        }
    }
}

/// A duration as Envoy and Istio write it: `2.5s`.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The YAML for `target`.
pub fn render(config: &Config, target: Target) -> String {
    let s = ProxySettings::of(config);
    let mut out = String::new();
    let w = &mut out;
    let why = if s.timeout_from.starts_with("no provider") {
        s.timeout_from.clone()
    } else {
        format!(
            "{}, plus {}ms for ward to answer 503 itself",
            s.timeout_from,
            MARGIN.as_millis()
        )
    };
    let _ = writeln!(
        w,
        "# Derived from ward's config by `ward render`: re-run it when the config changes.\n\
         # ext_authz timeout: {} ({why}).",
        seconds(s.timeout),
    );
    match target {
        Target::Envoy => envoy(w, &s),
        Target::Istio => istio(w, &s),
        Target::EnvoyGateway => envoy_gateway(w, &s),
    }
    out
}

fn envoy(w: &mut String, s: &ProxySettings) {
    let _ = writeln!(
        w,
        "\n# HttpConnectionManager: remove client-sent copies of the headers ward owns before\n\
         # any route or filter sees them (also on routes where ext_authz is disabled).\n\
         early_header_mutation_extensions:\n\
         \x20 - name: envoy.http.early_header_mutation.header_mutation\n\
         \x20   typed_config:\n\
         \x20     \"@type\": type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation\n\
         \x20     mutations:"
    );
    for h in &s.owned {
        let _ = writeln!(w, "        - remove: {h}");
    }
    let _ = writeln!(
        w,
        "\n# ext_authz filter, gRPC service (Envoy sends every request header):\n\
         grpc_service:\n\
         \x20 envoy_grpc: {{ cluster_name: ward }}\n\
         \x20 timeout: {}\n\
         \x20 # One retry when the call never reached ward or ward was shutting down; Check\n\
         \x20 # has no side effect, and the timeout above bounds both tries. Envoy >= 1.27.\n\
         \x20 retry_policy:\n\
         \x20   retry_on: connect-failure,refused-stream,unavailable\n\
         \x20   num_retries: 1\n\
         \x20   retry_back_off: {{ base_interval: 0.025s, max_interval: 0.1s }}\n\
         \n# ext_authz filter, HTTP service: the headers ward reads, and those it sets upstream\n\
         # (uri and cluster are yours).\n\
         http_service:\n\
         \x20 server_uri: {{ uri: \"http://ward:9003\", cluster: ward_http, timeout: {} }}\n\
         \x20 path_prefix: /auth/envoy\n\
         \x20 authorization_request:\n\
         \x20   allowed_headers:\n\
         \x20     patterns:",
        seconds(s.timeout),
        seconds(s.timeout)
    );
    for h in &s.read {
        let _ = writeln!(w, "        - exact: {h}");
    }
    let _ = writeln!(
        w,
        "\x20 authorization_response:\n\
         \x20   allowed_upstream_headers:\n\
         \x20     patterns:"
    );
    for h in &s.owned {
        let _ = writeln!(w, "        - exact: {h}");
    }
}

fn istio(w: &mut String, s: &ProxySettings) {
    let _ = writeln!(
        w,
        "\n# Merge this entry into the mesh config's extensionProviders list (istioctl and the\n\
         # istiod Helm chart replace the whole list: keep the providers already there):\n\
         # istiod Helm values meshConfig.extensionProviders, the `mesh` key of ConfigMap\n\
         # istio in istio-system, or an IstioOperator's spec.meshConfig.extensionProviders.\n\
         # Istio's provider has no retry setting.\n\
         # Istio applies no early header removal: ward removes client-sent copies of the\n\
         # headers it owns on every check it allows; paths that skip the CUSTOM policy must\n\
         # remove them themselves:\n\
         #   {}\n\
         extensionProviders:\n\
         \x20 - name: ward\n\
         \x20   envoyExtAuthzGrpc:\n\
         \x20     service: ward.ward.svc.cluster.local\n\
         \x20     port: 9001\n\
         \x20     timeout: {}\n\
         \x20     failOpen: false\n\
         \x20     statusOnError: \"503\"",
        s.owned.join(", "),
        seconds(s.timeout)
    );
}

fn envoy_gateway(w: &mut String, s: &ProxySettings) {
    let ms = s.timeout.as_millis();
    let _ = writeln!(
        w,
        "\n# ClientTrafficPolicy (on the Gateway): remove client-sent copies of the headers\n\
         # ward owns before any route, also routes without a SecurityPolicy.\n\
         spec:\n\
         \x20 headers:\n\
         \x20   earlyRequestHeaders:\n\
         \x20     remove:"
    );
    for h in &s.owned {
        let _ = writeln!(w, "        - {h}");
    }
    let _ = writeln!(
        w,
        "---\n\
         # SecurityPolicy extAuth (gRPC: every request header is sent):\n\
         spec:\n\
         \x20 extAuth:\n\
         \x20   failOpen: false\n\
         \x20   timeout: {ms}ms\n\
         \x20   headersToExtAuth:"
    );
    for h in &s.read {
        let _ = writeln!(w, "      - {h}");
    }
    let _ = writeln!(
        w,
        "    grpc:\n\
         \x20     # backendRefs: ward's Service, port 9001 (yours).\n\
         \x20     backendSettings:\n\
         \x20       # One retry when the call never reached ward or ward was shutting down.\n\
         \x20       retry:\n\
         \x20         numRetries: 1\n\
         \x20         retryOn:\n\
         \x20           triggers: [connect-failure, refused-stream, unavailable]\n\
         \x20         perRetry:\n\
         \x20           backOff: {{ baseInterval: 25ms, maxInterval: 100ms }}"
    );
}
