//! OpenTelemetry traces (SPEC §7) from the real binary to a real OTLP/gRPC receiver
//! started by the test: `ward.check` nests under the request's `traceparent` and follows
//! its sampled flag; a key fetch or an introspection call a check needed is its child and
//! carries `traceparent` to the IdP; background refreshes are root spans; the HTTP edge
//! traces as the gRPC one does; no span carries a token or a subject; a shutdown sends
//! what is still queued; a bad `telemetry` section is refused with its path and line.

mod common;
mod idp;
mod introspect_server;
mod otlp;

use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;

use common::bin::{Serve, ward_out};
use common::{Asker, AuthReq, Req, TestKey, jwks_of, now};
use idp::Idp;
use introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect};
use otlp::{Collector, Span};
use ward::authn::jwt::Alg;

/// How long a span may take to reach the receiver (the tests' batch delay is 50 ms).
const PATIENCE: Duration = Duration::from_secs(10);

const ISS: &str = "https://idp.test";
const SUBJECT: &str = "alice@example.com";

/// A W3C trace context as Envoy would send it: version 00, the given ids and flags.
struct Parent {
    trace_id: String,
    span_id: String,
}

impl Parent {
    /// A fresh trace id and span id, distinct per `n`.
    fn new(n: u8) -> Parent {
        Parent {
            trace_id: format!("4bf92f3577b34da6a3ce929d0e0e47{n:02x}"),
            span_id: format!("00f067aa0ba902{n:02x}"),
        }
    }

    fn header(&self, sampled: bool) -> String {
        let flags = if sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace_id, self.span_id)
    }
}

/// `telemetry:` for `collector`, with a short batch delay (the queue is sent every
/// 50 ms), then `extra` lines.
fn telemetry(collector: &Collector, extra: &str) -> String {
    format!(
        "telemetry:\n  otlp_endpoint: {}\n  batch_delay: 50ms\n  service_name: ward-under-test\n{extra}",
        collector.endpoint()
    )
}

/// `ward serve` with `config` written to a fresh directory.
fn serve(config: &str, env: &[(&str, &str)]) -> (Serve, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, config).expect("write config");
    (Serve::start(dir.path(), &path, env), dir)
}

async fn check(ward: &Serve, req: CheckRequest) -> CheckResponse {
    let mut c = AuthorizationClient::connect(format!("http://{}", ward.grpc_addr))
        .await
        .expect("connect");
    c.check(req).await.expect("rpc").into_inner()
}

fn code(r: &CheckResponse) -> i32 {
    r.status.as_ref().map_or(-1, |s| s.code)
}

/// A provider `corp` fetching its keys from `idp`, on route `api`.
fn jwt_config(idp: &Idp) -> String {
    format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      algorithms: [RS256]
      jwks_uri: {jwks}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        jwks = idp.jwks_uri()
    )
}

fn token(k: &TestKey) -> String {
    k.sign(&json!({"iss": ISS, "aud": "api", "sub": SUBJECT, "exp": now() + 300}))
}

/// No attribute of any span holds a credential or the subject.
fn assert_no_secret(spans: &[Span], secrets: &[&str]) {
    for s in spans {
        for (k, v) in &s.attributes {
            for secret in secrets {
                assert!(
                    !v.contains(secret),
                    "span {} attribute {k} leaks {secret:?}",
                    s.name
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_check_span_nests_under_envoys_and_parents_the_key_fetch_it_needed() {
    let collector = Collector::start().await;
    let old = TestKey::generate(Alg::RS256);
    let new = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&old])).await;
    let config = format!("{}{}", jwt_config(&idp), telemetry(&collector, ""));
    let (mut ward, _dir) = serve(&config, &[]);

    // The fetch at start is no check's: a root span of its own.
    let background = collector
        .wait_for("background key fetch", PATIENCE, |s| {
            s.name == "ward.jwks.fetch"
        })
        .await;
    assert_eq!(background.parent_span_id, "", "{background:?}");
    assert_eq!(background.service, "ward-under-test");

    // A token signed by a key ward does not hold yet: this check fetches the keys.
    idp.set_jwks(jwks_of(&[&old, &new]));
    let t = token(&new);
    let envoy = Parent::new(1);
    let r = check(
        &ward,
        Req::get("/api/orders")
            .bearer(&t)
            .header("traceparent", &envoy.header(true))
            .header("tracestate", "vendor=1")
            .to_map(),
    )
    .await;
    assert_eq!(code(&r), 0, "{r:?}");

    let span = collector
        .wait_span("ward.check", &envoy.trace_id, PATIENCE)
        .await;
    assert_eq!(
        span.parent_span_id, envoy.span_id,
        "Envoy's span is the parent"
    );
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.attr("ward.route"), Some("api"));
    assert_eq!(span.attr("ward.provider"), Some("corp"));
    assert_eq!(span.attr("ward.decision"), Some("allow"));
    assert_eq!(span.attr("ward.reason"), Some("ok"));
    assert_eq!(span.attr("ward.edge"), Some("grpc"));

    let fetch = collector
        .wait_span("ward.jwks.fetch", &envoy.trace_id, PATIENCE)
        .await;
    assert_eq!(fetch.parent_span_id, span.span_id, "the check's child");
    assert_eq!(fetch.kind, SpanKind::Client);
    assert_eq!(fetch.attr("ward.provider"), Some("corp"));
    let sent = format!("00-{}-{}-01", envoy.trace_id, fetch.span_id);
    assert!(
        idp.jwks_traceparents().contains(&Some(sent.clone())),
        "the IdP saw {sent}: {:?}",
        idp.jwks_traceparents()
    );

    // A denial carries its reason; a cached allow needs no fetch.
    let denied = Parent::new(2);
    let r = check(
        &ward,
        Req::get("/api/orders")
            .bearer("not-a-jwt")
            .header("traceparent", &denied.header(true))
            .to_map(),
    )
    .await;
    assert_eq!(code(&r), 16, "{r:?}");
    let span = collector
        .wait_span("ward.check", &denied.trace_id, PATIENCE)
        .await;
    assert_eq!(span.attr("ward.decision"), Some("deny"));
    assert_eq!(span.attr("ward.reason"), Some("invalid_token"));

    assert!(ward.terminate().success());
    assert_no_secret(&collector.spans(), &[&t, SUBJECT, "not-a-jwt"]);
}

/// Envoy's ext_authz gRPC client sends its own span (the Check call's) in the call's
/// metadata: that is the parent, before a `traceparent` among the request's headers.
#[tokio::test(flavor = "multi_thread")]
async fn the_check_calls_own_trace_context_is_the_parent_when_envoy_sends_one() {
    let collector = Collector::start().await;
    let config = format!(
        "routes:\n  - name: open\n    match: {{ path_prefix: / }}\n    allow_anonymous: true\n{}",
        telemetry(&collector, "")
    );
    let (mut ward, _dir) = serve(&config, &[]);
    let call = Parent::new(10);
    let request = Parent::new(11);
    let mut c = AuthorizationClient::connect(format!("http://{}", ward.grpc_addr))
        .await
        .expect("connect");
    let mut rpc = tonic::Request::new(
        Req::get("/x")
            .header("traceparent", &request.header(true))
            .to_map(),
    );
    rpc.metadata_mut().insert(
        "traceparent",
        call.header(true).parse().expect("metadata value"),
    );
    let r = c.check(rpc).await.expect("rpc").into_inner();
    assert_eq!(code(&r), 0, "{r:?}");
    let span = collector
        .wait_span("ward.check", &call.trace_id, PATIENCE)
        .await;
    assert_eq!(span.parent_span_id, call.span_id);
    assert!(ward.terminate().success());
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| s.trace_id != request.trace_id),
        "one parent only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_sampled_traces_are_exported() {
    let collector = Collector::start().await;
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    // sample_ratio 0: a check without traceparent starts no sampled trace (nor does the
    // background key fetch); a traceparent's flag decides for the checks that carry one.
    let config = format!(
        "{}{}",
        jwt_config(&idp),
        telemetry(&collector, "  sample_ratio: 0.0\n")
    );
    let (mut ward, _dir) = serve(&config, &[]);
    let t = token(&k);
    let out = Parent::new(3);
    let sampled = Parent::new(4);
    let plain = Req::get("/api/orders").bearer(&t);
    for req in [
        plain.clone(),
        plain.clone().header("traceparent", &out.header(false)),
        plain.clone().header("traceparent", &sampled.header(true)),
    ] {
        assert_eq!(code(&check(&ward, req.to_map()).await), 0);
    }
    // The sampled check's span arrives after (or with) whatever the others would have
    // sent: the exporter keeps their order.
    collector
        .wait_span("ward.check", &sampled.trace_id, PATIENCE)
        .await;
    assert!(ward.terminate().success());
    let spans = collector.spans();
    let checks: Vec<&Span> = spans.iter().filter(|s| s.name == "ward.check").collect();
    assert_eq!(checks.len(), 1, "only the sampled check: {spans:?}");
    assert!(
        spans.iter().all(|s| s.trace_id == sampled.trace_id),
        "nothing else exported: {spans:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_introspection_call_is_the_checks_child_and_carries_traceparent() {
    let collector = Collector::start().await;
    let ep = Introspect::start().await;
    ep.set_token(
        "opaque-alice",
        json!({"active": true, "sub": SUBJECT, "exp": now() + 300}),
    );
    let config = format!(
        r#"
providers:
  - name: partners
    introspection:
      endpoint: {url}
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
      audiences: any
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [partners]
{telemetry}"#,
        url = ep.url(),
        telemetry = telemetry(&collector, "")
    );
    let (mut ward, _dir) = serve(&config, &[("PARTNERS_SECRET", CLIENT_SECRET)]);
    let envoy = Parent::new(5);
    let r = check(
        &ward,
        Req::get("/api/orders")
            .bearer("opaque-alice")
            .header("traceparent", &envoy.header(true))
            .to_map(),
    )
    .await;
    assert_eq!(code(&r), 0, "{r:?}");
    let span = collector
        .wait_span("ward.check", &envoy.trace_id, PATIENCE)
        .await;
    assert_eq!(span.attr("ward.provider"), Some("partners"));
    let call = collector
        .wait_span("ward.introspection", &envoy.trace_id, PATIENCE)
        .await;
    assert_eq!(call.parent_span_id, span.span_id);
    assert_eq!(call.kind, SpanKind::Client);
    let seen = ep.last().expect("an introspection request");
    assert_eq!(
        seen.traceparent,
        Some(format!("00-{}-{}-01", envoy.trace_id, call.span_id))
    );
    assert!(ward.terminate().success());
    assert_no_secret(
        &collector.spans(),
        &["opaque-alice", SUBJECT, CLIENT_SECRET],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_edge_traces_as_the_grpc_check_does() {
    let collector = Collector::start().await;
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let config = format!(
        "server:\n  http_addr: 127.0.0.1:0\n{}{}",
        jwt_config(&idp),
        telemetry(&collector, "")
    );
    let (mut ward, _dir) = serve(&config, &[]);
    let addr = ward.http_addr.parse().expect("http addr");
    let envoy = Parent::new(6);
    let t = token(&k);
    let answer = AuthReq::get("/api/orders")
        .bearer(&t)
        .header("traceparent", &envoy.header(true))
        .ask(addr, Asker::Envoy)
        .await;
    assert_eq!(answer.short().0, 200, "{answer:?}");
    let span = collector
        .wait_span("ward.check", &envoy.trace_id, PATIENCE)
        .await;
    assert_eq!(span.parent_span_id, envoy.span_id);
    assert_eq!(span.attr("ward.edge"), Some("http"));
    assert_eq!(span.attr("ward.decision"), Some("allow"));
    assert!(ward.terminate().success());
    assert_no_secret(&collector.spans(), &[&t, SUBJECT]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_sends_the_spans_still_queued() {
    let collector = Collector::start().await;
    let config = format!(
        "routes:\n  - name: open\n    match: {{ path_prefix: / }}\n    allow_anonymous: true\n{}",
        telemetry(&collector, "").replace("batch_delay: 50ms", "batch_delay: 1h")
    );
    let (mut ward, _dir) = serve(&config, &[]);
    let envoy = Parent::new(7);
    let r = check(
        &ward,
        Req::get("/x")
            .header("traceparent", &envoy.header(true))
            .to_map(),
    )
    .await;
    assert_eq!(code(&r), 0, "{r:?}");
    assert!(collector.spans().is_empty(), "held for the hour-long batch");
    assert!(ward.terminate().success());
    let span = collector
        .wait_span("ward.check", &envoy.trace_id, PATIENCE)
        .await;
    assert_eq!(span.attr("ward.route"), Some("open"));
}

#[test]
fn a_bad_telemetry_section_is_refused_with_its_path_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base =
        "routes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n";
    let cases = [
        (
            "telemetry:\n  otlp_endpoint: collector:4317\n",
            "ward.yaml:line 6: telemetry.otlp_endpoint: `collector:4317` is not an OTLP/gRPC endpoint: use http://host:4317 or https://host:4317",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  sample_ratio: 1.5\n",
            "ward.yaml:line 7: telemetry.sample_ratio: a fraction from 0.0 to 1.0",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  queue_size: 0\n",
            "ward.yaml:line 7: telemetry.queue_size: must be from 1 to 1048576 spans",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  batch_delay: 0s\n",
            "ward.yaml:line 7: telemetry.batch_delay: must be greater than 0s",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  export_timeout: 0s\n",
            "ward.yaml:line 7: telemetry.export_timeout: must be greater than 0s",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  service_name: \"\"\n",
            "ward.yaml:line 7: telemetry.service_name: must not be empty",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  sample_rate: 0.5\n",
            "ward.yaml:line 7: telemetry.sample_rate: unknown field `sample_rate`, expected one of `otlp_endpoint`, `sample_ratio`, `service_name`, `queue_size`, `batch_delay`, `export_timeout`; did you mean `sample_ratio`?",
        ),
        (
            "telemetry:\n  sample_ratio: 0.5\n",
            "ward.yaml:line 5: telemetry: missing field `otlp_endpoint`",
        ),
        (
            "telemetry:\n  otlp_endpoint: http://c:4317\n  batch_delay: 5\n",
            "ward.yaml:line 7: telemetry.batch_delay: invalid type: integer `5`, expected a duration string such as 30s or 5m",
        ),
    ];
    for (section, want) in cases {
        let path = dir.path().join("ward.yaml");
        std::fs::write(&path, format!("{base}{section}")).expect("write config");
        let (code, _, err) = ward_out(dir.path(), &["validate", "--config", "ward.yaml"]);
        assert_eq!(code, Some(1), "{section}: {err}");
        assert!(
            err.lines().any(|l| l.starts_with(want)),
            "{section}: want {want:?}, got {err}"
        );
    }
    let path = dir.path().join("ward.yaml");
    std::fs::write(
        &path,
        format!("{base}telemetry:\n  otlp_endpoint: https://collector.monitoring:4317\n  sample_ratio: 0.01\n"),
    )
    .expect("write config");
    let (code, out, err) = ward_out(dir.path(), &["validate", "--config", "ward.yaml"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// The tower layer in a service that installs ward's telemetry layer itself: the same
/// `ward.check` span, parented on the request's `traceparent` when the service has no
/// span of its own, and on the service's span when it has one.
#[test]
fn the_tower_layer_traces_in_the_embedding_service() {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tower::ServiceExt as _;
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    // The test's future runs on this thread (block_on), where the subscribers below are
    // set; the collector and the exporters' connections run on the runtime's workers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let collector = Collector::start().await;
        let settings = ward::config::load_str(
            &format!(
                "routes:\n  - name: open\n    match: {{ path_prefix: / }}\n    allow_anonymous: true\n{}",
                telemetry(&collector, "")
            ),
            Path::new("."),
            &std::collections::HashMap::<String, String>::new(),
        )
        .expect("config");
        let telemetry = ward::telemetry::Telemetry::start(settings.telemetry().expect("telemetry"))
            .expect("exporter");
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        let _default = tracing::subscriber::set_default(subscriber);
        let policy = ward::Ward::new(settings).expect("policy");
        let app = axum::Router::new()
            .route("/x", axum::routing::get(|| async { "ok" }))
            .layer(policy.layer());
        let ask = |traceparent: String| {
            axum::http::Request::get("/x")
                .header("traceparent", traceparent)
                .body(axum::body::Body::empty())
                .expect("request")
        };

        let envoy = Parent::new(8);
        let resp = app.clone().oneshot(ask(envoy.header(true))).await.expect("call");
        assert_eq!(resp.status(), 200);
        let span = collector.wait_span("ward.check", &envoy.trace_id, PATIENCE).await;
        assert_eq!(span.parent_span_id, envoy.span_id);
        assert_eq!(span.attr("ward.edge"), Some("layer"));
        assert_eq!(span.attr("ward.route"), Some("open"));

        drop(_default);
        telemetry.shutdown(Duration::from_secs(5));

        // A service with an OpenTelemetry layer of its own turns ward's spans on, and its
        // own span (say, its HTTP server span) is the parent instead of the header.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(collector.endpoint())
            .build()
            .expect("exporter");
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        let own_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("svc"));
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(own_layer));
        ward::telemetry::emit_spans(true);
        let own = tracing::info_span!("service.request");
        let ignored = Parent::new(9);
        let resp = app
            .clone()
            .oneshot(ask(ignored.header(true)))
            .instrument(own)
            .await
            .expect("call");
        assert_eq!(resp.status(), 200);
        let _ = provider.force_flush();
        let service = collector
            .wait_for("service", PATIENCE, |s| s.name == "service.request")
            .await;
        let span = collector
            .wait_span("ward.check", &service.trace_id, PATIENCE)
            .await;
        assert_eq!(span.parent_span_id, service.span_id);
        assert!(
            collector.spans().iter().all(|s| s.trace_id != ignored.trace_id),
            "the header is not a second parent"
        );
        drop(_default);
        let _ = provider.shutdown();
    });
}

/// `telemetry` is read at start: a reload that changes it says so, and exports nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_changes_telemetry_says_it_applies_on_restart() {
    let collector = Collector::start().await;
    let open = "server:\n  watch_interval: 100ms\nroutes:\n  - name: open\n    match: { path_prefix: / }\n    allow_anonymous: true\n";
    let (mut ward, dir) = serve(open, &[]);
    std::fs::write(
        dir.path().join("ward.yaml"),
        format!("{open}{}", telemetry(&collector, "")),
    )
    .expect("rewrite config");
    common::wait_until("the reload's warning", PATIENCE, async || {
        ward.lines()
            .iter()
            .any(|l| l.contains("telemetry changed in the config: it applies on restart only"))
    })
    .await;
    let envoy = Parent::new(12);
    let r = check(
        &ward,
        Req::get("/x")
            .header("traceparent", &envoy.header(true))
            .to_map(),
    )
    .await;
    assert_eq!(code(&r), 0, "{r:?}");
    assert!(ward.terminate().success());
    assert!(
        collector.spans().is_empty(),
        "no exporter was started: {:?}",
        collector.spans()
    );
}
