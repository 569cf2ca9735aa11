//! A stand-in OpenTelemetry collector for tests: the OTLP/gRPC `TraceService` (from the
//! official protobuf definitions, as `opentelemetry-proto` generates them) on 127.0.0.1
//! with an ephemeral port, keeping every span it is sent, with readers for the tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::common::eventually;

/// One exported span, its ids in lower-case hex as W3C `traceparent` writes them.
#[derive(Clone, Debug)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub kind: SpanKind,
    /// Every attribute, its value as text.
    pub attributes: Vec<(String, String)>,
    /// The `service.name` of the resource it was exported under.
    pub service: String,
}

impl Span {
    /// The attribute `key` as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Span {
                        kind: SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified),
                        name: s.name,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        attributes: s
                            .attributes
                            .into_iter()
                            .map(|kv| {
                                (
                                    kv.key,
                                    text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                                )
                            })
                            .collect(),
                        service: service.clone(),
                    });
                }
            }
        }
        self.spans.lock().expect("sink lock").extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The collector, serving until dropped with the test's runtime.
pub struct Collector {
    pub addr: SocketAddr,
    sink: Sink,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let addr = listener.local_addr().expect("collector addr");
        let sink = Sink::default();
        let service = TraceServiceServer::new(sink.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Collector { addr, sink }
    }

    /// `http://127.0.0.1:PORT`, for `telemetry.otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.sink.spans.lock().expect("sink lock").clone()
    }

    /// Waits (at most `within`) for a span named `name` in trace `trace_id`.
    pub async fn wait_span(&self, name: &str, trace_id: &str, within: Duration) -> Span {
        eventually(within, async || {
            self.spans()
                .into_iter()
                .find(|s| s.name == name && s.trace_id == trace_id)
                .ok_or_else(|| {
                    format!("no {name} span in trace {trace_id}; got {:?}", self.spans())
                })
        })
        .await
    }

    /// Waits (at most `within`) for a span that `pick` chooses.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pick: impl Fn(&Span) -> bool,
    ) -> Span {
        eventually(within, async || {
            self.spans()
                .into_iter()
                .find(|s| pick(s))
                .ok_or_else(|| format!("no {what} span; got {:?}", self.spans()))
        })
        .await
    }
}
