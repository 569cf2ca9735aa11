//! Plain-HTTP authorization (SPEC §9, `server.http_addr`): the same decisions as the gRPC
//! Check, for proxies that ask over HTTP/1.1 (keep-alive) or h2c: Envoy's `http_service`,
//! nginx's `auth_request`, Traefik's ForwardAuth and Caddy's `forward_auth`.
//!
//! One request is one check: [`shape`] reads the original request from where the proxy's
//! shape puts it (refusing what is missing, repeated or malformed with 400
//! `invalid_request`), the current engine decides the [`CheckInput`], and [`render`]
//! writes the decision: an allow is 200 with every header the decision sets (so a header
//! added to the decision reaches the proxy without a change here), and for Envoy
//! `x-envoy-auth-headers-to-remove` naming what it removes; a denial is its status,
//! challenge and JSON body. The observer counts and logs it as it does a gRPC check.
//!
//! Limits: a request head must arrive within `server.request_timeout` and fit in
//! `server.http_max_header_bytes`; the auth request's body is never read.

pub mod shape;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::decision::{Decision, DenyReason, Verdict};
use crate::request::{CheckInput, Headers};
use crate::state::AppState;
pub use shape::Shape;

/// nginx's `auth_request` passes a denial's status and `WWW-Authenticate` on, but never
/// the subrequest's body: ward sends the JSON body in this header too (nginx shape only),
/// so the shipped config can answer the client with it.
pub const NGINX_BODY_HEADER: &str = "x-ward-body";

/// Envoy's `http_service` removes the request headers named here (comma-separated).
pub const ENVOY_REMOVE_HEADER: &str = "x-envoy-auth-headers-to-remove";

/// What the HTTP listener reads from the config once, when it starts (a reload does not
/// change them, as for the gRPC listener).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A request head must arrive within this (`server.request_timeout`).
    pub request_timeout: Duration,
    /// The largest request head read (`server.http_max_header_bytes`).
    pub max_header_bytes: usize,
    /// HTTP/2 streams one connection may have open (`server.max_concurrent_streams`).
    pub max_concurrent_streams: u32,
}

impl Settings {
    /// The settings of the policy `state` holds now.
    pub fn of(state: &AppState) -> Self {
        let engine = state.engine.load();
        let server = &engine.config().server;
        Settings {
            request_timeout: server.limits.request_timeout,
            max_header_bytes: server.http_max_header_bytes,
            max_concurrent_streams: server.limits.max_concurrent_streams,
        }
    }
}

/// Serves plain-HTTP authorization on `listener` until `stop` resolves; then stops
/// accepting and waits for the open connections to finish their requests in flight
/// (the caller bounds that wait by the shutdown grace).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    settings: Settings,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.request_timeout)
        .max_buf_size(settings.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: let connections close before trying again.
                    tracing::warn!(error = %e, "HTTP listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(answer(&state, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that leaves mid-request is its own business.
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers one auth request: the original request read as its shape says, decided by the
/// current engine, observed, and rendered for that shape.
pub async fn answer<B>(state: &AppState, req: Request<B>) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let (parts, _body) = req.into_parts();
    let mut headers = Headers::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        headers.push(name.as_str(), value.as_bytes());
    }
    let shape = match parts.method {
        Method::CONNECT => None,
        _ => Shape::of(parts.uri.path()),
    };
    let Some(shape) = shape else {
        let input = CheckInput {
            headers,
            ..Default::default()
        };
        let (status, why) = if parts.method == Method::CONNECT {
            (StatusCode::BAD_REQUEST, "CONNECT is not an auth request")
        } else {
            (
                StatusCode::NOT_FOUND,
                "not an auth endpoint: ask /auth/envoy/<path>, /auth/nginx or /auth/forward",
            )
        };
        tracing::debug!(request_id = %input.request_id(), status = status.as_u16(), "HTTP auth request refused: {why}");
        let response = refusal(status, why, &input.request_id());
        state.metrics.count_http("none", status.as_u16());
        return response;
    };
    let engine = state.engine.load_full();
    let original = shape::read(
        shape,
        &parts.method,
        &parts.uri,
        parts.version,
        &parts.headers,
    );
    let (decision, input) = match original {
        Ok(o) => {
            let input = CheckInput {
                method: o.method,
                host: o.host,
                path: o.uri,
                headers,
                ..Default::default()
            };
            let decision = if crate::telemetry::on() {
                let decided = engine.check(&input);
                crate::telemetry::check("http", &input.headers, decided).await
            } else {
                engine.check(&input).await
            };
            (decision, input)
        }
        Err(why) => {
            let input = CheckInput {
                headers,
                ..Default::default()
            };
            (Decision::deny(DenyReason::InvalidRequest(why)), input)
        }
    };
    let request_id = input.request_id();
    state.observer.decided(
        &decision,
        &request_id,
        input.path_only(),
        start.elapsed(),
        &engine.config().logging,
    );
    let response = render(shape, &decision, &request_id);
    state
        .metrics
        .count_http(shape.label(), response.status().as_u16());
    response
}

/// The answer to a decided request, written as `shape` reads it (see the module docs).
pub fn render(shape: Shape, decision: &Decision, request_id: &str) -> Response<Full<Bytes>> {
    let m = match &decision.verdict {
        Verdict::Deny(_) => return denial(shape, decision, request_id),
        Verdict::Allow(m) => m,
    };
    let mut response = Response::new(Full::default());
    let h = response.headers_mut();
    // Every value was checked when the decision was made; one that still cannot be a
    // header value is removed rather than left to what the client sent.
    let mut unsent = Vec::new();
    for (name, value) in &m.set {
        match (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(n), Ok(v)) => {
                h.insert(n, v);
            }
            _ => unsent.push(name.as_str()),
        }
    }
    if shape == Shape::Envoy {
        let remove: Vec<&str> = m.remove.iter().map(|n| n.as_str()).chain(unsent).collect();
        if !remove.is_empty()
            && let Ok(v) = HeaderValue::from_str(&remove.join(", "))
        {
            h.insert(ENVOY_REMOVE_HEADER, v);
        }
    }
    response
}

/// A denial: its status, headers and body ([`Decision::denial`]), and for nginx the body
/// again in [`NGINX_BODY_HEADER`]. nginx's `auth_request` turns any status but 401 and 403
/// into a 500, so it gets ward's usual answer, never a route's own (`error_page` in nginx
/// does what `deny:` and `on_unauthenticated` do elsewhere).
fn denial(shape: Shape, decision: &Decision, request_id: &str) -> Response<Full<Bytes>> {
    let d = if shape == Shape::Nginx {
        decision.usual_denial(request_id)
    } else {
        decision.denial(request_id)
    };
    let Some(d) = d else {
        return refusal(StatusCode::FORBIDDEN, "no denial", request_id);
    };
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = Response::new(Full::new(Bytes::from(d.body.clone())));
    *response.status_mut() = status;
    let h = response.headers_mut();
    for (name, value) in &d.headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    if shape == Shape::Nginx
        && let Ok(v) = HeaderValue::from_str(&d.body)
    {
        h.insert(NGINX_BODY_HEADER, v);
    }
    response
}

/// A request that is not an auth request at all: its status and an `invalid_request` body.
fn refusal(status: StatusCode, why: &'static str, request_id: &str) -> Response<Full<Bytes>> {
    let body = DenyReason::InvalidRequest(why.into()).body(request_id);
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
