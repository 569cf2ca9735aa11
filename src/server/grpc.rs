//! The `envoy.service.auth.v3.Authorization` gRPC service: the only reader of
//! `CheckRequest`. It reads the request's bytes into a
//! [`CheckInput`](crate::request::CheckInput) once ([`read::check_input`]), asks the
//! engine, records the outcome and hands the decision to `response.rs` ([`Answer`]).

pub mod read;

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

#[cfg(any(test, feature = "internals"))]
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::codegen::{Body, BoxFuture, Bytes, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

use crate::decision::{Decision, DenyReason};
#[cfg(any(test, feature = "internals"))]
use crate::request::{CheckInput, Headers};
use crate::response::Answer;
use crate::state::AppState;
use crate::telemetry::CallContext;

use read::check_input;

/// Borrows Envoy's request, decoded by prost, as ward's input. Headers come from
/// `header_map` (raw bytes, when Envoy's `encode_raw_headers` is on) or else from the
/// `headers` map. The server reads the bytes instead ([`check_input`]); this is what that
/// reader is held to, in its tests, the `check` fuzz target and the `profile` bench.
#[cfg(any(test, feature = "internals"))]
pub fn input_from(attrs: &AttributeContext) -> Option<CheckInput<'_>> {
    let http = attrs.request.as_ref()?.http.as_ref()?;
    let mut headers;
    match http.header_map.as_ref().filter(|m| !m.headers.is_empty()) {
        Some(map) => {
            headers = Headers::with_capacity(map.headers.len());
            for h in &map.headers {
                let v: &[u8] = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                };
                headers.push(&h.key, v);
            }
        }
        None => {
            headers = Headers::with_capacity(http.headers.len());
            for (k, v) in &http.headers {
                headers.push(k, v.as_bytes());
            }
        }
    }
    let header = |name: &str| headers.get_str(name).unwrap_or("");
    let method = if http.method.is_empty() {
        header(":method")
    } else {
        &http.method
    };
    let host = if http.host.is_empty() {
        header(":authority")
    } else {
        &http.host
    };
    let path = if http.path.is_empty() {
        header(":path")
    } else {
        &http.path
    };
    let scheme = if http.scheme.is_empty() {
        header(":scheme")
    } else {
        &http.scheme
    };
    let source = attrs.source.as_ref();
    let source_address = source
        .and_then(|s| s.address.as_ref())
        .and_then(|a| a.address.as_ref())
        .and_then(|a| match a {
            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => {
                Some(s.address.as_str())
            }
            _ => None,
        })
        .unwrap_or("");
    Some(CheckInput {
        method,
        host,
        path,
        context: attrs
            .context_extensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        source_principal: source.map_or("", |s| s.principal.as_str()),
        source_certificate: source.map_or("", |s| s.certificate.as_str()),
        source_address,
        stream_id: &http.id,
        headers,
        scheme,
    })
}

/// Decides one Check: the request read once, the engine's decision, metrics, the log
/// line, and the answer (written to the wire by [`Answer`]).
async fn check(state: &AppState, req: Bytes, call: Option<CallContext>) -> Result<Answer, Status> {
    let start = Instant::now();
    let input = check_input(&req)
        .map_err(|e| Status::invalid_argument(format!("malformed CheckRequest: {e}")))?;
    let engine = state.engine.load_full();
    let (decision, request_id, path) = match &input {
        // Without telemetry the engine is asked directly: no wrapper future to move.
        Some(input) if !crate::telemetry::on() => (
            engine.check(input).await,
            input.request_id(),
            input.path_only(),
        ),
        Some(input) => (
            crate::telemetry::check_in("grpc", call.as_ref(), &input.headers, engine.check(input))
                .await,
            input.request_id(),
            input.path_only(),
        ),
        None => (
            Decision::deny(DenyReason::InvalidRequest(
                "no HTTP request attributes".into(),
            )),
            Cow::Borrowed(""),
            "",
        ),
    };
    let elapsed = start.elapsed();
    let logging = &engine.config().logging;
    state
        .observer
        .decided(&decision, &request_id, path, elapsed, logging);
    Ok(Answer::new(decision, &request_id))
}

/// `envoy.service.auth.v3.Authorization` as a tower service for tonic's router. It does
/// what envoy-types' generated `AuthorizationServer` does (same path, `UNIMPLEMENTED` for
/// any other method) but reads the request from its bytes ([`check_input`]) and answers
/// with an [`Answer`], which writes an allowed `CheckResponse` straight into the output
/// buffer.
#[derive(Clone)]
pub struct AuthorizationService {
    state: Arc<AppState>,
}

impl AuthorizationService {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl NamedService for AuthorizationService {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

impl<B> Service<http::Request<B>> for AuthorizationService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == CHECK_PATH {
            let method = CheckMethod(self.state.clone());
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(CheckCodec)
                    .max_decoding_message_size(MAX_CHECK_REQUEST_BYTES);
                Ok(grpc.unary(method, req).await)
            });
        }
        Box::pin(async move {
            let mut response = http::Response::new(tonic::body::Body::default());
            let headers = response.headers_mut();
            headers.insert(
                Status::GRPC_STATUS,
                (tonic::Code::Unimplemented as i32).into(),
            );
            headers.insert(
                http::header::CONTENT_TYPE,
                tonic::metadata::GRPC_CONTENT_TYPE,
            );
            Ok(response)
        })
    }
}

/// The largest CheckRequest decided rather than refused with a gRPC error. tonic's default
/// (4 MiB) is below what Envoy may send: headers up to 8 MiB (`max_request_headers_kb`),
/// a buffered body (`with_request_body`), and a gRPC error is Envoy's "error", not a
/// denial (`failure_mode_allow: true` would let the request through).
pub const MAX_CHECK_REQUEST_BYTES: usize = 32 * 1024 * 1024;

struct CheckMethod(Arc<AppState>);

impl UnaryService<Bytes> for CheckMethod {
    type Response = Answer;
    type Future = BoxFuture<Response<Answer>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        let call = CallContext::of_grpc(request.metadata());
        Box::pin(async move {
            check(&state, request.into_inner(), call)
                .await
                .map(Response::new)
        })
    }
}

/// The Check method's codec: the request stays bytes, read by [`check_input`]; the
/// answer is encoded as a prost message.
struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = Answer;
    type Decode = Bytes;
    type Encoder = ProstEncoder<Answer>;
    type Decoder = MessageBytes;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageBytes
    }
}

/// Hands over a whole gRPC message's bytes as they are (no copy: tonic's buffer is
/// split off).
struct MessageBytes;

impl Decoder for MessageBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
