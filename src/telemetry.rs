//! OpenTelemetry traces (SPEC §7, "Traces"): the `ward.check` span of every decided
//! request, parented on the request's W3C `traceparent`, and a child span for every call
//! ward makes to an identity provider, which carries `traceparent` onward.
//!
//! Off unless `telemetry:` is configured. `ward serve` then builds a [`Telemetry`] (the
//! OTLP/gRPC exporter behind a batch processor with a bounded queue) and installs its
//! [`layer`](Telemetry::layer) in the `tracing` subscriber; without it no layer is
//! installed, no span is made, and a check pays one relaxed atomic load.
//!
//! What a span carries is fixed here and nowhere else: the names in [`attr`], whose values
//! come from the config (route and provider names) or from closed sets (decision, reason
//! code, edge). Never a token, a secret, a subject, a path or a header value.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::TelemetryConfig;
use crate::decision::Decision;
use crate::request::Headers;

/// The attribute names ward's spans carry.
pub mod attr {
    /// The route that matched (its config name).
    pub const ROUTE: &str = "ward.route";
    /// The provider that judged the credential (its config name).
    pub const PROVIDER: &str = "ward.provider";
    /// `allow`, `deny` or `shadow_deny`.
    pub const DECISION: &str = "ward.decision";
    /// `ok`, or the denial's reason code (`invalid_token`, `no_route`, …).
    pub const REASON: &str = "ward.reason";
    /// Which front end decided: `grpc` (Envoy's ext_authz), `http` (plain-HTTP
    /// authorization) or `layer` (the tower layer).
    pub const EDGE: &str = "ward.edge";
}

/// Whether spans are made. Set once a [`Telemetry`] layer is handed to the subscriber
/// (or by [`emit_spans`]); a process-wide flag because the subscriber it stands for is
/// process-wide too.
static ON: AtomicBool = AtomicBool::new(false);

/// Whether ward makes spans (a [`Telemetry`] layer is installed, or [`emit_spans`] said
/// so). The edges ask before wrapping a decision in its `ward.check` span: without spans
/// they ask the engine directly.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Turns ward's spans on (or off) in a process whose subscriber already has an
/// OpenTelemetry layer of its own: for a Rust service that embeds ward's
/// [`WardLayer`](crate::WardLayer) and exports its own traces.
pub fn emit_spans(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// The OTLP exporter and its tracer provider, as `telemetry:` configures them. Built once
/// at start; [`shutdown`](Self::shutdown) sends what is still queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Builds the exporter (the connection to the collector is made lazily, on the first
    /// export) and the provider: W3C trace context, `ParentBased(TraceIdRatioBased(
    /// sample_ratio))`, a batch processor whose queue holds `queue_size` spans and drops
    /// the rest. Must be called inside a tokio runtime, which then carries the exports.
    pub fn start(config: &TelemetryConfig) -> Result<Self, String> {
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .with_timeout(config.export_timeout);
        if config.otlp_endpoint.starts_with("https://") {
            builder = builder
                .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
        }
        let exporter = builder
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.queue_size)
            .with_max_export_batch_size(config.queue_size.min(512))
            .with_scheduled_delay(config.batch_delay)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }

    /// The `tracing` layer that turns ward's spans into OpenTelemetry spans. Only ward's
    /// own spans reach it (no log events, no other crate's spans): a decision log line
    /// may name a subject, a span never does. Installing it turns ward's spans on.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        ON.store(true, Ordering::Relaxed);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("ward"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && (m.target() == "ward" || m.target().starts_with("ward::"))
            }))
    }

    /// Sends the spans still queued, waiting at most `within`; later spans are dropped.
    /// Blocks the calling thread: call it once the server has stopped.
    pub fn shutdown(self, within: Duration) {
        ON.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown_with_timeout(within) {
            tracing::warn!(error = %e, "traces not all sent at shutdown");
        }
    }
}

// === the spans ===

/// The request's headers as a W3C trace-context carrier.
struct HeaderCarrier<'h, 'a>(&'h Headers<'a>);

impl Extractor for HeaderCarrier<'_, '_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

/// The trace context of the call that carried a request to ward, when it differs from
/// the request's own: Envoy's ext_authz gRPC client starts a span for its Check call and
/// sends it in the call's metadata, while the request's headers hold a `traceparent` only
/// when the downstream client (or a proxy before Envoy) sent one.
#[derive(Debug, Default)]
pub(crate) struct CallContext {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl CallContext {
    /// The W3C fields of a gRPC call's metadata; read only while spans are on.
    pub(crate) fn of_grpc(metadata: &tonic::metadata::MetadataMap) -> Option<Self> {
        if !on() {
            return None;
        }
        let text = |k: &str| {
            metadata
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let traceparent = text("traceparent")?;
        Some(Self {
            traceparent: Some(traceparent),
            tracestate: text("tracestate"),
        })
    }
}

impl Extractor for CallContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Decides a request inside its `ward.check` span (when spans are on), parented on the
/// first of: the current span (a service embedding the tower layer), the call's trace
/// context (Envoy's ext_authz span), the request's `traceparent`/`tracestate`. Its
/// attributes are recorded from the decision.
///
/// Not API: public only for ward's own benches, which measure what it costs.
#[doc(hidden)]
pub async fn check<F>(edge: &'static str, headers: &Headers<'_>, decide: F) -> Decision
where
    F: Future<Output = Decision>,
{
    check_in(edge, None, headers, decide).await
}

/// [`check`], with the trace context of the call that carried the request.
pub(crate) async fn check_in<F>(
    edge: &'static str,
    call: Option<&CallContext>,
    headers: &Headers<'_>,
    decide: F,
) -> Decision
where
    F: Future<Output = Decision>,
{
    if !on() {
        return decide.await;
    }
    let span = tracing::info_span!(
        target: "ward::check",
        "ward.check",
        otel.kind = "server",
        ward.edge = edge,
        ward.route = tracing::field::Empty,
        ward.provider = tracing::field::Empty,
        ward.decision = tracing::field::Empty,
        ward.reason = tracing::field::Empty,
    );
    if tracing::Span::current().is_none() {
        let propagator = TraceContextPropagator::new();
        let parent = match call {
            Some(call) => propagator.extract(call),
            None => propagator.extract(&HeaderCarrier(headers)),
        };
        // A span not yet started always takes its parent.
        let _ = span.set_parent(parent);
    }
    let decision = decide.instrument(span.clone()).await;
    record(&span, &decision);
    decision
}

/// The decision's attributes on its `ward.check` span.
fn record(span: &tracing::Span, d: &Decision) {
    if let Some(route) = d.route.as_deref() {
        span.record(attr::ROUTE, route);
    }
    if let Some(provider) = d.provider.as_deref() {
        span.record(attr::PROVIDER, provider);
    }
    span.record(attr::DECISION, d.label());
    span.record(attr::REASON, d.reason_code());
}

/// A call to an identity provider: which kind of call it is, as its span name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdpCall {
    /// `ward.jwks.fetch`: a JWT provider's key set.
    Jwks,
    /// `ward.oidc.discovery`: an OpenID Provider's configuration document.
    Discovery,
    /// `ward.introspection`: an RFC 7662 introspection call.
    Introspection,
}

impl IdpCall {
    fn name(self) -> &'static str {
        match self {
            Self::Jwks => "ward.jwks.fetch",
            Self::Discovery => "ward.oidc.discovery",
            Self::Introspection => "ward.introspection",
        }
    }
}

/// Sends `req` (to an identity provider, for `provider`) inside a client span of its own
/// (when spans are on), with that span's `traceparent` (and `tracestate`) added to the
/// request. The span is the child of the current one: the check that needed the call,
/// or none for a background refresh (a root span of its own).
pub(crate) async fn idp_call<T, F>(
    call: IdpCall,
    provider: &str,
    req: reqwest::RequestBuilder,
    send: impl FnOnce(reqwest::RequestBuilder) -> F,
) -> T
where
    F: Future<Output = T>,
{
    if !on() {
        return send(req).await;
    }
    let span = tracing::info_span!(
        target: "ward::idp",
        "ward.idp",
        otel.name = call.name(),
        otel.kind = "client",
        ward.provider = provider,
    );
    let mut fields = Vec::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut FieldInjector(&mut fields));
    let mut req = req;
    for (k, v) in fields {
        req = req.header(k, v);
    }
    send(req).instrument(span).await
}

/// Collects the trace-context fields to add to an outgoing request.
struct FieldInjector<'a>(&'a mut Vec<(&'static str, String)>);

impl Injector for FieldInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((key, value));
    }
}
