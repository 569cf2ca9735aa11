//! ward as a library in a Rust service: a `tower` layer that decides each request in
//! process, with no network hop. Denials are answered directly (status, challenge, JSON
//! body, as Envoy would send them); allowed requests reach the inner service with the
//! identity headers set and ward's other headers removed, and with the verified
//! [`Identity`] in the request extensions. Every decision is counted in the engine's
//! metrics and logged as the server logs it (denials and shadow denials at info).
//!
//! The layer follows the [`Ward`] it was made from: after a reload, the next
//! request is decided by the new policy.
//!
//! ```no_run
//! # async fn example() -> Result<(), ward::LoadError> {
//! let ward = ward::Ward::from_file("ward.yaml")?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/orders", axum::routing::get(|| async { "orders" }))
//!     .layer(ward.layer());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::authn::Identity;
use crate::decision::{Denial, Verdict};
use crate::request::CheckInput;
use crate::state::AppState;
use crate::ward::Ward;

/// Wraps a service with ward's decision; made by [`Ward::layer`].
#[derive(Clone)]
pub struct WardLayer {
    state: Arc<AppState>,
}

impl Ward {
    /// A `tower` layer that decides each request in process with this policy, following
    /// its reloads.
    pub fn layer(&self) -> WardLayer {
        WardLayer {
            state: self.state().clone(),
        }
    }
}

impl<S> Layer<S> for WardLayer {
    type Service = WardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WardService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A service behind ward's decision (see [`WardLayer`]).
#[derive(Clone)]
pub struct WardService<S> {
    inner: S,
    state: Arc<AppState>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<Request<B>> for WardService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<String> + Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = self.state.clone();
        // The clone that was polled ready serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let start = std::time::Instant::now();
            let (decision, request_id) = {
                let host = parts
                    .headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                    .unwrap_or("");
                let mut input = CheckInput {
                    method: parts.method.as_str(),
                    host,
                    path: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                    stream_id: "",
                    ..Default::default()
                };
                for (name, value) in &parts.headers {
                    input.headers.push(name.as_str(), value.as_bytes());
                }
                let request_id = input.request_id().into_owned();
                // The policy as it is now: a reload applies from the next request.
                let engine = state.engine.load_full();
                let decision = if crate::telemetry::on() {
                    crate::telemetry::check("layer", &input.headers, engine.check(&input)).await
                } else {
                    engine.check(&input).await
                };
                let logging = &engine.config().logging;
                let path = input.path_only();
                state
                    .observer
                    .decided(&decision, &request_id, path, start.elapsed(), logging);
                (decision, request_id)
            };
            match &decision.verdict {
                Verdict::Deny(_) => {
                    let d = decision.denial(&request_id).unwrap_or_else(|| Denial {
                        status: 403,
                        headers: Vec::new(),
                        body: String::new(),
                    });
                    let mut resp = Response::new(R::from(d.body));
                    *resp.status_mut() =
                        StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
                    let h = resp.headers_mut();
                    for (name, value) in &d.headers {
                        if let (Ok(n), Ok(v)) = (
                            HeaderName::from_bytes(name.as_bytes()),
                            HeaderValue::from_str(value),
                        ) {
                            h.insert(n, v);
                        }
                    }
                    Ok(resp)
                }
                Verdict::Allow(m) => {
                    for name in &m.remove {
                        parts.headers.remove(name.as_str());
                    }
                    for (name, value) in &m.set {
                        if let (Ok(n), Ok(v)) = (
                            HeaderName::from_bytes(name.as_str().as_bytes()),
                            HeaderValue::from_str(value),
                        ) {
                            parts.headers.insert(n, v);
                        }
                    }
                    if let Some(id) = &decision.identity {
                        parts.extensions.insert::<Arc<Identity>>(id.clone());
                    }
                    inner.call(Request::from_parts(parts, body)).await
                }
            }
        })
    }
}
