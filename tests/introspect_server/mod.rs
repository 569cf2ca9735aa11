//! A stand-in RFC 7662 introspection endpoint for tests: a real HTTP server on
//! 127.0.0.1 (ephemeral port) at `/introspect`. It authenticates its client
//! (`client_secret_basic` or `client_secret_post`), answers from a token table the test
//! fills (`{"active": false}` for any other token), and can be made to fail, stall,
//! bloat its body or go away while ward runs. It counts its hits and keeps the last
//! request it saw. It also serves an OpenID configuration at
//! `/.well-known/openid-configuration` naming itself as issuer and its endpoint, for
//! `discovery: true`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tokio::sync::watch;

pub const CLIENT_ID: &str = "ward client";
pub const CLIENT_SECRET: &str = "s3cr3t:with/odd+chars";

/// How the endpoint answers every request (after authenticating the client).
#[derive(Clone, Debug)]
pub enum Reply {
    /// From the token table.
    Table,
    /// This status with an RFC 7662-looking body.
    Status(u16),
    /// This status with the OAuth error code `error` (RFC 6749 §5.2) and, when given, a
    /// `Retry-After` header.
    Error {
        status: u16,
        error: &'static str,
        retry_after: Option<&'static str>,
    },
    /// These bytes with status 200.
    Raw(Vec<u8>),
    /// `n` bytes of valid JSON, with a Content-Length.
    Huge(usize),
    /// `n` bytes of valid JSON, chunked: no Content-Length to go by.
    HugeChunked(usize),
}

/// What the endpoint saw in the last request.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub form: HashMap<String, String>,
    /// The W3C `traceparent` ward sent along, if any.
    pub traceparent: Option<String>,
}

struct Inner {
    tokens: HashMap<String, Value>,
    /// How a token missing from the table is answered (default `{"active": false}`).
    unknown: Option<Reply>,
    /// The issuer the OpenID configuration names, when not its own.
    discovery_issuer: Option<String>,
    reply: Reply,
    delay: Duration,
    last: Option<Seen>,
}

#[derive(Clone)]
pub struct Introspect {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    hits: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
    token_hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Set to stop serving.
    stop: watch::Sender<bool>,
    /// Set by the server task once it has stopped: its listener is closed.
    stopped: watch::Receiver<bool>,
}

impl Introspect {
    pub async fn start() -> Introspect {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind introspection endpoint");
        let addr = listener.local_addr().expect("addr");
        let (stopped_tx, stopped) = watch::channel(false);
        let ep = Introspect {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                tokens: HashMap::new(),
                unknown: None,
                discovery_issuer: None,
                reply: Reply::Table,
                delay: Duration::ZERO,
                last: None,
            })),
            hits: Arc::new(AtomicUsize::new(0)),
            discovery_hits: Arc::new(AtomicUsize::new(0)),
            token_hits: Arc::new(Mutex::new(HashMap::new())),
            stop: watch::Sender::new(false),
            stopped,
        };
        let app = Router::new()
            .route("/introspect", post(handler))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(ep.clone());
        let mut stop = ep.stop.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
            // `serve` returns once its listener is dropped and its connections closed.
            let _ = stopped_tx.send(true);
        });
        ep
    }

    pub fn url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    /// The issuer its OpenID configuration names: `http://<addr>`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many calls to `/.well-known/openid-configuration` there were.
    pub fn discovery_hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }

    /// Makes the OpenID configuration name `issuer` instead of [`Self::issuer`].
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.lock().discovery_issuer = Some(issuer.into());
    }

    /// How a token missing from the table is answered, from now on (`Reply::Table`:
    /// `{"active": false}`, the default).
    pub fn set_unknown(&self, reply: Reply) {
        self.lock().unknown = Some(reply);
    }

    /// What the endpoint answers for `token`.
    pub fn set_token(&self, token: &str, response: Value) {
        self.lock().tokens.insert(token.into(), response);
    }

    pub fn set_reply(&self, reply: Reply) {
        self.lock().reply = reply;
    }

    pub fn set_delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn hits_for(&self, token: &str) -> usize {
        self.token_hits
            .lock()
            .expect("lock")
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    pub fn last(&self) -> Option<Seen> {
        self.lock().last.clone()
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("endpoint lock")
    }
}

/// `application/x-www-form-urlencoded` body to a map.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let dec = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// The client ward authenticated as, by either RFC 6749 §2.3.1 method.
fn client_ok(seen: &Seen) -> bool {
    if let Some(auth) = &seen.authorization {
        let Some(b64) = auth.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let pair = String::from_utf8_lossy(&pair).into_owned();
        let Some((id, secret)) = pair.split_once(':') else {
            return false;
        };
        let dec = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        return dec(id) == CLIENT_ID
            && dec(secret) == CLIENT_SECRET
            && !seen.form.contains_key("client_secret");
    }
    seen.form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && seen.form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
}

fn padded_json(n: usize) -> Vec<u8> {
    let mut v = br#"{"active":true,"sub":"big","pad":""#.to_vec();
    v.resize(n.saturating_sub(2), b'x');
    v.extend_from_slice(br#""}"#);
    v
}

async fn handler(State(ep): State<Introspect>, headers: HeaderMap, body: Bytes) -> Response {
    ep.hits.fetch_add(1, Ordering::SeqCst);
    let seen = Seen {
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form: parse_form(&body),
    };
    let token = seen.form.get("token").cloned().unwrap_or_default();
    *ep.token_hits
        .lock()
        .expect("lock")
        .entry(token.clone())
        .or_default() += 1;
    let (reply, delay, answer) = {
        let mut i = ep.lock();
        i.last = Some(seen.clone());
        let answer = i.tokens.get(&token).cloned();
        let reply = match (&i.reply, &answer, &i.unknown) {
            (Reply::Table, None, Some(unknown)) => unknown.clone(),
            (reply, _, _) => reply.clone(),
        };
        (reply, i.delay, answer)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !client_ok(&seen) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "invalid_client"}).to_string(),
        )
            .into_response();
    }
    let json_ct = [(header::CONTENT_TYPE, "application/json")];
    match reply {
        Reply::Table => {
            let body = answer.unwrap_or_else(|| json!({"active": false}));
            (json_ct, body.to_string()).into_response()
        }
        Reply::Status(s) => (
            StatusCode::from_u16(s).expect("status"),
            json_ct,
            json!({"error": "server_error"}).to_string(),
        )
            .into_response(),
        Reply::Error {
            status,
            error,
            retry_after,
        } => {
            let mut resp = (
                StatusCode::from_u16(status).expect("status"),
                json_ct,
                json!({"error": error, "error_description": "refused"}).to_string(),
            )
                .into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, ra.parse().expect("header value"));
            }
            resp
        }
        Reply::Raw(b) => (json_ct, b).into_response(),
        Reply::Huge(n) => (json_ct, padded_json(n)).into_response(),
        Reply::HugeChunked(n) => {
            let body = padded_json(n);
            let chunks: Vec<Result<Bytes, Infallible>> = body
                .chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            (json_ct, Body::from_stream(tokio_stream::iter(chunks))).into_response()
        }
    }
}

async fn discovery(State(ep): State<Introspect>) -> Response {
    ep.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let issuer = ep.lock().discovery_issuer.clone();
    let doc = json!({
        "issuer": issuer.unwrap_or_else(|| ep.issuer()),
        "introspection_endpoint": ep.url(),
        "token_endpoint": format!("{}/token", ep.issuer()),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}
