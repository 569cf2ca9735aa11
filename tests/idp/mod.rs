//! A stand-in identity provider for tests: a real HTTP server on 127.0.0.1 with an
//! ephemeral port, serving a discovery document and a JWKS whose content, status,
//! latency and availability the test changes while ward runs. It counts its hits.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio::sync::watch;

/// What the IdP answers on the JWKS path.
#[derive(Clone)]
pub enum Jwks {
    Json(Value),
    Raw(Vec<u8>),
}

struct Inner {
    jwks: Jwks,
    status: StatusCode,
    delay: Duration,
    cache_control: Option<String>,
    discovery_issuer: Option<String>,
}

#[derive(Clone)]
pub struct Idp {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    jwks_hits: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
    /// Set to stop serving.
    stop: watch::Sender<bool>,
    /// Set by the server task once it has stopped: its listener is closed.
    stopped: watch::Receiver<bool>,
    /// The `traceparent` header of each JWKS request, in order (`None`: not sent).
    jwks_traceparents: Arc<Mutex<Vec<Option<String>>>>,
}

impl Idp {
    /// Starts serving `/jwks` and `/.well-known/openid-configuration` (whose issuer is
    /// the server's own base URL unless set otherwise).
    pub async fn start(jwks: Value) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind idp");
        let addr = listener.local_addr().expect("idp addr");
        let (stopped_tx, stopped) = watch::channel(false);
        let idp = Idp {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                jwks: Jwks::Json(jwks),
                status: StatusCode::OK,
                delay: Duration::ZERO,
                cache_control: None,
                discovery_issuer: None,
            })),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            discovery_hits: Arc::new(AtomicUsize::new(0)),
            stop: watch::Sender::new(false),
            stopped,
            jwks_traceparents: Arc::default(),
        };
        let app = Router::new()
            .route("/jwks", get(jwks_handler))
            .route("/.well-known/openid-configuration", get(discovery_handler))
            .with_state(idp.clone());
        let mut stop = idp.stop.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
            // `serve` returns once its listener is dropped and its connections closed.
            let _ = stopped_tx.send(true);
        });
        idp
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base())
    }

    pub fn set_jwks(&self, jwks: Value) {
        self.inner.lock().expect("idp lock").jwks = Jwks::Json(jwks);
    }

    pub fn set_raw(&self, body: Vec<u8>) {
        self.inner.lock().expect("idp lock").jwks = Jwks::Raw(body);
    }

    pub fn set_status(&self, status: u16) {
        self.inner.lock().expect("idp lock").status = StatusCode::from_u16(status).expect("status");
    }

    pub fn set_delay(&self, d: Duration) {
        self.inner.lock().expect("idp lock").delay = d;
    }

    pub fn set_cache_control(&self, v: Option<&str>) {
        self.inner.lock().expect("idp lock").cache_control = v.map(str::to_owned);
    }

    pub fn set_discovery_issuer(&self, iss: &str) {
        self.inner.lock().expect("idp lock").discovery_issuer = Some(iss.to_owned());
    }

    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// The `traceparent` header of each JWKS request so far, in order.
    pub fn jwks_traceparents(&self) -> Vec<Option<String>> {
        self.jwks_traceparents.lock().expect("idp lock").clone()
    }

    pub fn discovery_hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }

    /// Stops listening and returns once the listener is closed and open connections
    /// are done: later connections are refused.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let mut stopped = self.stopped.clone();
        match tokio::time::timeout(Duration::from_secs(10), stopped.wait_for(|s| *s)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("the server task ended without saying it stopped"),
            Err(_) => panic!("the server did not stop within 10 s"),
        }
    }
}

async fn jwks_handler(State(idp): State<Idp>, headers: axum::http::HeaderMap) -> Response {
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    idp.jwks_traceparents
        .lock()
        .expect("idp lock")
        .push(traceparent);
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let (jwks, status, delay, cc) = {
        let i = idp.inner.lock().expect("idp lock");
        (i.jwks.clone(), i.status, i.delay, i.cache_control.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = match jwks {
        Jwks::Json(v) => v.to_string().into_bytes(),
        Jwks::Raw(b) => b,
    };
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cc) = cc {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            cc.parse().expect("cache-control value"),
        );
    }
    resp
}

async fn discovery_handler(State(idp): State<Idp>) -> Response {
    idp.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let issuer = idp
        .inner
        .lock()
        .expect("idp lock")
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| idp.base());
    let doc = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": idp.jwks_uri(),
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}
