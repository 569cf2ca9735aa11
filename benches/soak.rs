//! Soak run: the real `ward serve` binary under a steady mixed load for a long time while
//! everything around it misbehaves, to show that what ward has cached keeps working, that
//! it recovers when its identity providers do, and that its memory stays flat.
//!
//! Everything runs on 127.0.0.1 with ephemeral ports and stops by itself:
//! - **JWKS server** (axum). Flaps on a fixed cycle: serves, answers 503, hangs past ward's
//!   `timeout`, serves, is down (listener closed, open connections reset), serves.
//! - **Key rotation** every `rotation` (2 min; 20 s in `--quick`): the new key is published
//!   beside the old one and signs every new token; half a period later the old key is
//!   removed, and its tokens (still sent until the next rotation) must then be refused.
//! - **RFC 7662 introspection server** (axum). Fails on its own cycle: 500, 429 with
//!   `Retry-After`, hangs past ward's `timeout`, down; recovers in between.
//! - **The config file is rewritten every 10 s** (two variants, alternating: a route
//!   renamed and one extra route), so ward's watcher reloads and swaps its engine.
//! - **Load**: an open loop at `--rate` checks/s (1500 by default) over four HTTP/2
//!   connections (checks dispatched every millisecond, latency counted from dispatch to
//!   answer, so a slow answer never delays the next checks): JWTs of a small
//!   pool per key (cached), freshly minted JWTs (new ones every 2 s), JWTs of the previous
//!   key, introspected opaque tokens from a pool (cached) and fresh ones (one a second),
//!   junk (malformed, unknown `kid`, bad signature, unknown opaque token), anonymous.
//!
//! Every answer is classified. A **valid check failed** when ward refused a valid
//! credential it had what it needs for: a JWT signed by a key that ward has already
//! verified a token with (an earlier allow) and that is still published, or an opaque
//! token whose active answer the introspection server gave less than `cache_ttl` − 2 s
//! ago. Refusals of valid credentials with nothing cached (503 `authn_unavailable` while
//! the provider is down, 401 for a `kid` ward could not fetch yet) are expected and
//! counted apart, as are refusals of a removed key's tokens ("revoked, expected"). Other
//! failures: a removed key's token allowed after ward fetched a key set without it, a
//! junk token allowed, an anonymous check refused, a valid opaque token refused for any
//! reason but 503, a 503 for one more than 8 s after the endpoint recovered (SPEC §7:
//! within 5 s, plus ward's 1 s timeout and slack), a transport error, a failed reload.
//!
//! Every 10 s a row: checks, p50/p99/max of the window, ward's VmRSS and open file
//! descriptors, failures so far, the injected states. At the end: totals, a table per
//! minute, and a non-zero exit on any failure or on RSS growth past warm-up beyond the
//! margin stated at [`rss_bound_kib`].
//!
//! `cargo bench --bench soak` runs 30 minutes; `-- --quick` runs 60 s (CI);
//! `-- --duration 10m --rate 1000 --ward-bin PATH` for others.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

use common::{AUD, ISS};

const JWT_PATH: &str = "/api/orders/42/items";
const INTRO_PATH: &str = "/partner/orders/7";
const ANON_PATH: &str = "/public/docs/index.html";
const INTRO_ISS: &str = "https://as.bench.example";
const SECRET_ENV: &str = "WARD_SOAK_INTROSPECTION_SECRET";
const CLIENT_ID: &str = "ward-soak";

/// ward's `timeout` for both providers (seconds); the servers "hang" for longer.
const PROVIDER_TIMEOUT: u64 = 1;
const HANG: Duration = Duration::from_secs(3);
/// The introspection provider's `cache_ttl`, and the margin under it within which an
/// answer still counts as cached (ward caches from when it *receives* the answer, a few
/// ms after the server sent it; moka's expiry is whole seconds at worst).
const INTRO_TTL: f64 = 20.0;
const INTRO_MARGIN: f64 = 2.0;
/// An introspection 503 this long after the endpoint came back is a failure: SPEC §7
/// says a recovered endpoint serves again within 5 s (the breaker's longest cool-down);
/// a call that started before the recovery may time out up to 1 s after it; 2 s slack.
const RECOVERY_BOUND: f64 = 8.0;
/// A removed key's token allowed this long after ward was seen to hold a key set fetched
/// after the removal is a failure (the metric is set a moment before the keys swap).
const REVOCATION_GRACE: f64 = 1.0;
const CONFIG_EVERY: f64 = 10.0;
const SAMPLE_EVERY: f64 = 10.0;
const POOL_PER_KEY: usize = 20;
const FRESH_BATCH: usize = 20;
const FRESH_EVERY: f64 = 2.0;
const INTRO_POOL: usize = 300;
const CONNECTIONS: usize = 4;
const MAX_IN_FLIGHT: u64 = 4096;
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

// === options ===

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    duration: Duration,
    rate: u64,
    rotation: f64,
    warmup: f64,
    ward_bin: PathBuf,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

impl Opts {
    fn parse() -> Result<Self, String> {
        let mut quick = false;
        let mut duration = None;
        let mut rate = 1500;
        let mut ward_bin = PathBuf::from(env!("CARGO_BIN_EXE_ward"));
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--bench" => {} // cargo bench passes it
                "--duration" => {
                    let v = args.next().unwrap_or_default();
                    duration = Some(
                        parse_duration(&v)
                            .ok_or("--duration takes 30m, 90s, 1h or a number of seconds")?,
                    );
                }
                "--rate" => {
                    rate = args
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|r| *r > 0)
                        .ok_or("--rate takes a positive number of checks per second")?;
                }
                "--ward-bin" => ward_bin = args.next().ok_or("--ward-bin takes a path")?.into(),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let duration = duration.unwrap_or(if quick {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(30 * 60)
        });
        let d = duration.as_secs_f64();
        // Two minutes between rotations, and at least three rotations in a short run.
        let rotation = (d / 3.0).clamp(20.0, 120.0);
        // Warm-up: every injected failure has happened once (the cycles are 48 s and
        // 62 s), the first rotation is done, caches are at their steady size.
        let warmup = (d / 3.0).clamp(20.0, 180.0);
        Ok(Opts {
            quick,
            duration,
            rate,
            rotation,
            warmup,
            ward_bin,
        })
    }
}

// === time ===

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the program started.
fn now_s() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

fn unix_now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// === injected states ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    /// Answers this status.
    Status(u16),
    /// 429 with `Retry-After: 2`.
    RateLimited,
    /// Answers 503 after [`HANG`], past ward's timeout.
    Hang,
    /// Listener closed, open connections reset.
    Down,
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Up => "up".into(),
            Mode::Status(s) => s.to_string(),
            Mode::RateLimited => "429".into(),
            Mode::Hang => "hang".into(),
            Mode::Down => "down".into(),
        }
    }
}

/// (seconds, state), repeated from the start of the load.
const JWKS_CYCLE: &[(u64, Mode)] = &[
    (12, Mode::Up),
    (6, Mode::Status(503)),
    (8, Mode::Up),
    (6, Mode::Hang),
    (8, Mode::Up),
    (8, Mode::Down),
];
const INTRO_CYCLE: &[(u64, Mode)] = &[
    (14, Mode::Up),
    (6, Mode::Status(500)),
    (8, Mode::Up),
    (6, Mode::RateLimited),
    (8, Mode::Up),
    (6, Mode::Hang),
    (8, Mode::Up),
    (6, Mode::Down),
];

fn mode_at(cycle: &[(u64, Mode)], t: f64) -> Mode {
    let period: u64 = cycle.iter().map(|(d, _)| d).sum();
    let mut at = t.max(0.0) % period as f64;
    for (d, m) in cycle {
        if at < *d as f64 {
            return *m;
        }
        at -= *d as f64;
    }
    Mode::Up
}

// === a server that can be taken down ===

/// A listener whose connections all fail at once when `kill` changes: "down" means no
/// new connection *and* none of the open keep-alive ones answering.
struct Killable {
    inner: tokio::net::TcpListener,
    kill: watch::Receiver<u64>,
}

struct KillableIo {
    stream: tokio::net::TcpStream,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    dead: bool,
}

impl KillableIo {
    fn check(&mut self, cx: &mut Context<'_>) -> Result<(), io::Error> {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            Err(io::ErrorKind::ConnectionReset.into())
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for Killable {
    type Io = KillableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (KillableIo, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let mut rx = self.kill.clone();
                    rx.borrow_and_update();
                    let killed = Box::pin(async move {
                        let _ = rx.changed().await;
                    });
                    return (
                        KillableIo {
                            stream,
                            killed,
                            dead: false,
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An HTTP server on a fixed port whose state the scheduler sets.
struct Flappy {
    name: &'static str,
    addr: SocketAddr,
    router: Router,
    state: Mutex<FlapState>,
    kill: watch::Sender<u64>,
}

struct FlapState {
    mode: Mode,
    /// When the server last came back up (None while it is failing).
    up_since: Option<f64>,
    task: Option<tokio::task::JoinHandle<()>>,
    downs: u64,
}

impl Flappy {
    async fn start(name: &'static str, router: Router) -> Result<Arc<Self>, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("{name}: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (kill, _) = watch::channel(0u64);
        let f = Arc::new(Flappy {
            name,
            addr,
            router,
            state: Mutex::new(FlapState {
                mode: Mode::Up,
                up_since: Some(now_s()),
                task: None,
                downs: 0,
            }),
            kill,
        });
        let task = f.serve(listener);
        lock(&f.state).task = Some(task);
        Ok(f)
    }

    fn serve(&self, inner: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let listener = Killable {
            inner,
            kill: self.kill.subscribe(),
        };
        let router = self.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        })
    }

    fn mode(&self) -> Mode {
        lock(&self.state).mode
    }

    fn up_since(&self) -> Option<f64> {
        lock(&self.state).up_since
    }

    async fn set_mode(&self, mode: Mode) -> Result<(), String> {
        let old = {
            let mut s = lock(&self.state);
            if s.mode == mode {
                return Ok(());
            }
            let old = s.mode;
            s.mode = mode;
            s.up_since = (mode == Mode::Up).then(now_s);
            if mode == Mode::Down {
                s.downs += 1;
                if let Some(t) = s.task.take() {
                    t.abort();
                }
                self.kill.send_modify(|e| *e += 1);
            }
            old
        };
        if old == Mode::Down {
            // Back on the same port; a moment of EADDRINUSE is retried.
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match tokio::net::TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => {
                        return Err(format!(
                            "{}: cannot listen again on {}: {e}",
                            self.name, self.addr
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            let task = self.serve(listener);
            lock(&self.state).task = Some(task);
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The answer of a failing server, or None when it should serve.
async fn failure(mode: Mode, counts: &Mutex<BTreeMap<String, u64>>) -> Option<Response> {
    let count = |what: &str| *lock(counts).entry(what.to_string()).or_default() += 1;
    match mode {
        Mode::Up => None,
        Mode::Status(s) => {
            count(&format!("{s}"));
            let code = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(
                (
                    code,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"server_error"}"#,
                )
                    .into_response(),
            )
        }
        Mode::RateLimited => {
            count("429 Retry-After: 2");
            Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        (header::RETRY_AFTER, "2"),
                        (header::CONTENT_TYPE, "application/json"),
                    ],
                    r#"{"error":"slow_down"}"#,
                )
                    .into_response(),
            )
        }
        Mode::Hang | Mode::Down => {
            count(if mode == Mode::Hang {
                "hung"
            } else {
                "down (in flight)"
            });
            if mode == Mode::Hang {
                tokio::time::sleep(HANG).await;
            }
            Some(StatusCode::SERVICE_UNAVAILABLE.into_response())
        }
    }
}

// === the identity providers' state ===

struct KeyEntry {
    key: Arc<SigningKey>,
    /// Tokens minted when the key was made, sent throughout its life (cached by ward).
    pool: Vec<String>,
    published_at: f64,
    removed_at: Option<f64>,
    /// When ward was first seen (metrics) to hold a key set fetched after the removal.
    refetched_at: Option<f64>,
    /// When ward first allowed a token signed by this key (the answer's arrival).
    verified_at: Option<f64>,
}

struct Keyring {
    keys: Vec<KeyEntry>,
    signing: usize,
    previous: Option<usize>,
    /// Tokens of the signing key minted a moment ago: (key, token).
    fresh: Vec<(usize, String)>,
}

impl Keyring {
    fn jwks(&self) -> serde_json::Value {
        let published: Vec<&SigningKey> = self
            .keys
            .iter()
            .filter(|k| k.removed_at.is_none())
            .map(|k| &*k.key)
            .collect();
        common::jwks_of(&published)
    }
}

struct Introspected {
    /// Active tokens, each with the times the server last answered `active: true` for it.
    valid: HashMap<String, VecDeque<f64>>,
    pool: Vec<String>,
    fresh: String,
}

struct World {
    keys: Mutex<Keyring>,
    intro: Mutex<Introspected>,
    jwks_counts: Mutex<BTreeMap<String, u64>>,
    intro_counts: Mutex<BTreeMap<String, u64>>,
    jwks_server: OnceLock<Arc<Flappy>>,
    intro_server: OnceLock<Arc<Flappy>>,
    /// Junk: tokens of a key never published, and tampered tokens.
    unknown_kid: Vec<String>,
    tally: Mutex<Tally>,
    in_flight: AtomicU64,
    stop: AtomicBool,
    basic_auth: String,
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

async fn jwks_handler(State(w): State<Arc<World>>) -> Response {
    let mode = w.jwks_server.get().map_or(Mode::Up, |s| s.mode());
    if let Some(r) = failure(mode, &w.jwks_counts).await {
        return r;
    }
    *lock(&w.jwks_counts).entry("200".into()).or_default() += 1;
    let doc = lock(&w.keys).jwks().to_string();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

async fn introspect_handler(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = w.intro_server.get().map_or(Mode::Up, |s| s.mode());
    if let Some(r) = failure(mode, &w.intro_counts).await {
        return r;
    }
    let count = |what: &str| *lock(&w.intro_counts).entry(what.to_string()).or_default() += 1;
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == w.basic_auth);
    if !authorized {
        count("401 bad client authentication");
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response();
    }
    let token = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| {
            b.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(|t| {
                    percent_encoding::percent_decode_str(t)
                        .decode_utf8_lossy()
                        .into_owned()
                })
        })
        .unwrap_or_default();
    let now = common::now();
    let active = {
        let mut i = lock(&w.intro);
        match i.valid.get_mut(&token) {
            Some(times) => {
                times.push_back(now_s());
                if times.len() > 4 {
                    times.pop_front();
                }
                true
            }
            None => false,
        }
    };
    let doc = if active {
        count("200 active");
        let sub = format!("svc-{}", &token[..8.min(token.len())]);
        json!({
            "active": true,
            "sub": sub,
            "client_id": "partner-batch",
            "token_type": "access_token",
            "iss": INTRO_ISS,
            "aud": AUD,
            "scope": "orders:read",
            "roles": ["orders-reader"],
            "iat": now,
            "exp": now + 7200,
        })
    } else {
        count("200 inactive");
        json!({ "active": false })
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

// === ward ===

fn ward_yaml(jwks: SocketAddr, intro: SocketAddr, variant: u64) -> String {
    // The two variants differ in a route's name and one extra route: enough for ward to
    // compile and swap a new engine, while the providers' settings (and so their key
    // sets, cached introspection answers and breakers) stay as they are. Two names only,
    // so the `route` metric label stays bounded.
    let (public, extra) = if variant.is_multiple_of(2) {
        ("public", "")
    } else {
        (
            "public-b",
            "  - name: extra\n    match: { path_prefix: /extra }\n    allow_anonymous: true\n",
        )
    };
    format!(
        r#"# soak variant {variant}
server:
  watch_interval: 1s
providers:
  - name: corp
    jwt:
      issuer: "{ISS}"
      audiences: [{AUD}]
      jwks_uri: http://{jwks}/jwks
      algorithms: [RS256]
      refresh_interval: 5s
      min_refetch_interval: 2s
      timeout: {PROVIDER_TIMEOUT}s
      claims: {{ roles: roles, scopes: scope }}
  - name: partners
    introspection:
      endpoint: http://{intro}/introspect
      client_id: {CLIENT_ID}
      client_secret: ${{{SECRET_ENV}}}
      issuer: "{INTRO_ISS}"
      audiences: [{AUD}]
      cache_ttl: {ttl}s
      negative_cache_ttl: 10s
      timeout: {PROVIDER_TIMEOUT}s
      circuit_breaker: {{ failures: 5, cool_down: 5s }}
      claims: {{ roles: roles, scopes: scope }}
routes:
  - name: {public}
    match: {{ path_prefix: /public }}
    allow_anonymous: true
{extra}  - name: orders
    match: {{ path: "/api/orders/**", methods: [GET, POST] }}
    providers: [corp]
    require: {{ roles_any: [orders-reader] }}
  - name: partner-orders
    match: {{ path: "/partner/orders/**" }}
    providers: [partners]
    require: {{ roles_any: [orders-reader] }}
"#,
        ttl = INTRO_TTL as u64,
    )
}

fn write_config(dir: &Path, yaml: &str) -> Result<(), String> {
    // Written beside and renamed over: ward never reads half a file.
    let tmp = dir.join("ward.yaml.tmp");
    std::fs::write(&tmp, yaml).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dir.join("ward.yaml")).map_err(|e| e.to_string())
}

struct Ward {
    child: Child,
    grpc: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Ward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ward {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

fn free_port() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

fn spawn_ward(bin: &Path, dir: &Path, secret: &str) -> Result<Ward, String> {
    let grpc = free_port()?;
    let admin = free_port()?;
    let log = dir.join("ward.log");
    let logfile = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("ward.yaml"))
        .arg("--grpc-addr")
        .arg(grpc.to_string())
        .arg("--admin-addr")
        .arg(admin.to_string())
        .arg("--log-format")
        .arg("json")
        // Warnings (fetch failures, reload errors) but not one line per denial: a
        // 30-minute run would write hundreds of MB of them.
        .env("RUST_LOG", "warn")
        .env(SECRET_ENV, secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .map_err(|e| format!("starting ward ({}): {e}", bin.display()))?;
    Ok(Ward {
        child,
        grpc,
        admin,
        log,
    })
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Whether process `pid` runs (a child that exited stays a zombie until reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| !st.trim_start().starts_with(['Z', 'X']))
    })
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn scrape(admin: SocketAddr, client: &reqwest::Client) -> Option<String> {
    let r = client
        .get(format!("http://{admin}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    r.text().await.ok()
}

/// Sum of the samples of `name` whose labels contain every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each label value of `label` in `name`'s samples, with the sum of its samples.
fn metric_by(text: &str, name: &str, filter: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for l in text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(filter))
    {
        let Some(at) = l.find(&key) else { continue };
        let rest = &l[at + key.len()..];
        let Some(end) = rest.find('"') else { continue };
        let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *out.entry(rest[..end].to_string()).or_default() += v;
    }
    out
}

// === classification ===

#[derive(Debug, Clone, Copy)]
enum Junk {
    Malformed,
    UnknownKid,
    Tampered,
    Opaque,
}

#[derive(Debug, Clone, Copy)]
enum Cred {
    Jwt { key: usize, fresh: bool },
    Intro { fresh: bool },
    Junk(Junk),
    Anon,
}

struct Answer {
    allowed: bool,
    http: i32,
    reason: String,
}

impl Answer {
    fn refusal(&self) -> String {
        format!("refused {} {}", self.http, self.reason)
    }
}

struct Window {
    hist: Histogram<u64>,
    /// Checks that need no identity provider: a JWT whose key ward holds, an opaque
    /// token whose answer is cached, an anonymous route.
    cached: Histogram<u64>,
    jwks: BTreeSet<String>,
    intro: BTreeSet<String>,
}

impl Window {
    fn new() -> Self {
        Window {
            hist: hist(),
            cached: hist(),
            jwks: BTreeSet::new(),
            intro: BTreeSet::new(),
        }
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

struct Tally {
    /// (what was sent, what came back) -> count.
    counts: BTreeMap<(String, String), u64>,
    valid_failed: u64,
    other_failed: u64,
    notes: Vec<String>,
    window: Window,
    total: Histogram<u64>,
    total_cached: Histogram<u64>,
    not_sent: u64,
}

impl Tally {
    fn count(&mut self, what: &str, outcome: String) {
        *self.counts.entry((what.to_string(), outcome)).or_default() += 1;
    }

    fn fail(&mut self, valid: bool, note: String) {
        if valid {
            self.valid_failed += 1;
        } else {
            self.other_failed += 1;
        }
        if self.notes.len() < 40 {
            self.notes.push(note);
        }
    }
}

/// Judges one answer. `sent` is the check's scheduled send time, `got` its arrival
/// (seconds since start), `token` the credential (for the introspection server's record).
/// True when the check needed no identity provider (see [`Window::cached`]).
fn judge(
    w: &World,
    cred: Cred,
    token: &str,
    sent: f64,
    got: f64,
    ans: Result<Answer, String>,
) -> bool {
    let cached = match cred {
        Cred::Jwt { key, .. } => {
            let keys = lock(&w.keys);
            let k = &keys.keys[key];
            k.verified_at.is_some_and(|v| v < sent) && k.removed_at.is_none_or(|r| r > sent)
        }
        Cred::Intro { .. } => introspection_cached(w, token, sent).0,
        Cred::Anon => true,
        Cred::Junk(_) => false,
    };
    classify(w, cred, token, sent, got, ans);
    cached
}

/// Whether the introspection server's active answer for `token` is younger than the
/// cache TTL (less the margin) at `sent`, and when it was given.
fn introspection_cached(w: &World, token: &str, sent: f64) -> (bool, Option<f64>) {
    let answered = lock(&w.intro)
        .valid
        .get(token)
        .and_then(|times| times.iter().rev().find(|a| **a <= sent).copied());
    (
        answered.is_some_and(|a| sent < a + INTRO_TTL - INTRO_MARGIN),
        answered,
    )
}

fn classify(w: &World, cred: Cred, token: &str, sent: f64, got: f64, ans: Result<Answer, String>) {
    let jwks_mode = w.jwks_server.get().map_or(Mode::Up, |s| s.mode()).label();
    let intro_mode = w.intro_server.get().map_or(Mode::Up, |s| s.mode()).label();
    let context = || {
        format!(
            "sent t={sent:.3}s, answered t={got:.3}s, JWKS {jwks_mode}, introspection {intro_mode}"
        )
    };
    let ans = match ans {
        Ok(a) => a,
        Err(e) => {
            let mut t = lock(&w.tally);
            t.count("any", "transport error".into());
            t.fail(false, format!("{cred:?}: {e} ({})", context()));
            return;
        }
    };
    match cred {
        Cred::Jwt { key, fresh } => {
            let mut keys = lock(&w.keys);
            let k = &mut keys.keys[key];
            let kind = if fresh { "fresh" } else { "pooled" };
            let removed = k.removed_at;
            let refetched = k.refetched_at;
            let verified = k.verified_at;
            if ans.allowed && verified.is_none() && removed.is_none() {
                k.verified_at = Some(got);
            }
            let key_age = sent - k.published_at;
            drop(keys);
            let mut t = lock(&w.tally);
            match removed {
                Some(r) if r <= sent => {
                    let what = "JWT of a removed key";
                    if !ans.allowed {
                        t.count(what, format!("{} (revoked, expected)", ans.refusal()));
                    } else if refetched.is_some_and(|f| sent > f + REVOCATION_GRACE) {
                        t.count(what, "ALLOWED after ward refetched the keys".into());
                        t.fail(
                            false,
                            format!(
                                "{kind} JWT of key #{key} removed at t={r:.1}s, ward refetched by t={:.1}s, allowed ({})",
                                refetched.unwrap_or(0.0),
                                context()
                            ),
                        );
                    } else {
                        t.count(
                            what,
                            "allowed before ward refetched the keys (expected)".into(),
                        );
                    }
                }
                _ => {
                    let cached = verified.is_some_and(|v| v < sent);
                    let what = if cached {
                        "valid JWT, key cached"
                    } else {
                        "valid JWT, key not yet verified by ward"
                    };
                    if ans.allowed {
                        t.count(what, "allowed".into());
                    } else if removed.is_some_and(|r| r < got) {
                        // Removed while the check was in flight.
                        t.count(
                            "JWT of a removed key",
                            format!("{} (revoked in flight, expected)", ans.refusal()),
                        );
                    } else if cached {
                        t.count(what, format!("{} FAILED", ans.refusal()));
                        t.fail(
                            true,
                            format!(
                                "{kind} JWT of key #{key} (published {key_age:.1}s before, verified by ward at t={:.3}s): {} ({})",
                                verified.unwrap_or(0.0),
                                ans.refusal(),
                                context()
                            ),
                        );
                    } else if ans.http == 403 {
                        t.count(what, format!("{} FAILED", ans.refusal()));
                        t.fail(
                            false,
                            format!(
                                "{kind} JWT of key #{key}: {} ({})",
                                ans.refusal(),
                                context()
                            ),
                        );
                    } else {
                        t.count(
                            what,
                            format!("{} (expected: key not fetched yet)", ans.refusal()),
                        );
                    }
                }
            }
        }
        Cred::Intro { fresh } => {
            let (cached, answered) = introspection_cached(w, token, sent);
            let up_since = w.intro_server.get().and_then(|s| s.up_since());
            let mut t = lock(&w.tally);
            let what = match (cached, fresh) {
                (true, _) => "introspected token, answer cached",
                (false, false) => "introspected token (pool), not cached",
                (false, true) => "introspected token (fresh), not cached",
            };
            if ans.allowed {
                t.count(what, "allowed".into());
            } else if cached {
                t.count(what, format!("{} FAILED", ans.refusal()));
                t.fail(
                    true,
                    format!(
                        "introspected token answered active at t={:.3}s: {} ({})",
                        answered.unwrap_or(0.0),
                        ans.refusal(),
                        context()
                    ),
                );
            } else if ans.http == 503 {
                if let Some(u) = up_since.filter(|u| sent - u > RECOVERY_BOUND) {
                    t.count(
                        what,
                        format!(
                            "{} > {RECOVERY_BOUND}s after recovery FAILED",
                            ans.refusal()
                        ),
                    );
                    t.fail(
                        false,
                        format!(
                            "introspected token refused {:.1}s after the endpoint came back at t={u:.1}s: {} ({})",
                            sent - u,
                            ans.refusal(),
                            context()
                        ),
                    );
                } else {
                    t.count(
                        what,
                        format!(
                            "{} (expected: endpoint failing, nothing cached)",
                            ans.refusal()
                        ),
                    );
                }
            } else {
                t.count(what, format!("{} FAILED", ans.refusal()));
                t.fail(
                    false,
                    format!(
                        "valid introspected token: {} ({})",
                        ans.refusal(),
                        context()
                    ),
                );
            }
        }
        Cred::Junk(j) => {
            let what = match j {
                Junk::Malformed => "junk: not a JWT",
                Junk::UnknownKid => "junk: JWT of an unknown kid",
                Junk::Tampered => "junk: JWT with a bad signature",
                Junk::Opaque => "junk: unknown opaque token",
            };
            let mut t = lock(&w.tally);
            if ans.allowed {
                t.count(what, "ALLOWED".into());
                t.fail(false, format!("{what}: allowed ({})", context()));
            } else {
                t.count(what, ans.refusal());
            }
        }
        Cred::Anon => {
            let mut t = lock(&w.tally);
            if ans.allowed {
                t.count("anonymous route", "allowed".into());
            } else {
                t.count("anonymous route", format!("{} FAILED", ans.refusal()));
                t.fail(
                    false,
                    format!("anonymous route: {} ({})", ans.refusal(), context()),
                );
            }
        }
    }
}

// === load ===

/// The credential of check `i`: a fixed pattern of 20 slots (7 pooled JWTs of the
/// signing key, 1 of the previous key, 3 fresh JWTs, 3 pooled and 1 fresh introspected
/// tokens, 3 junk, 2 anonymous).
fn pick(w: &World, i: u64) -> (Cred, String, &'static str) {
    const SLOTS: &[u8; 20] = b"CCFICJACIFCPIJCFNACJ";
    let round = i / 20;
    match SLOTS[(i % 20) as usize] {
        c @ (b'C' | b'P') => {
            let keys = lock(&w.keys);
            let key = match (c, keys.previous) {
                (b'P', Some(p)) => p,
                _ => keys.signing,
            };
            let pool = &keys.keys[key].pool;
            let tok = pool[(round as usize * 7 + (i % 20) as usize) % pool.len()].clone();
            (Cred::Jwt { key, fresh: false }, tok, JWT_PATH)
        }
        b'F' => {
            let keys = lock(&w.keys);
            let (key, tok) =
                keys.fresh[(round as usize * 3 + (i % 7) as usize) % keys.fresh.len()].clone();
            (Cred::Jwt { key, fresh: true }, tok, JWT_PATH)
        }
        b'I' => {
            let intro = lock(&w.intro);
            let tok =
                intro.pool[(round as usize * 3 + (i % 3) as usize) % intro.pool.len()].clone();
            (Cred::Intro { fresh: false }, tok, INTRO_PATH)
        }
        b'N' => (
            Cred::Intro { fresh: true },
            lock(&w.intro).fresh.clone(),
            INTRO_PATH,
        ),
        b'J' => match round % 4 {
            0 => (Cred::Junk(Junk::Malformed), random_token(), JWT_PATH),
            1 => {
                let tok = w.unknown_kid[round as usize / 4 % w.unknown_kid.len()].clone();
                (Cred::Junk(Junk::UnknownKid), tok, JWT_PATH)
            }
            2 => {
                let keys = lock(&w.keys);
                let pool = &keys.keys[keys.signing].pool;
                let tok = tamper(&pool[round as usize % pool.len()]);
                (Cred::Junk(Junk::Tampered), tok, JWT_PATH)
            }
            _ => (Cred::Junk(Junk::Opaque), random_token(), INTRO_PATH),
        },
        _ => (Cred::Anon, String::new(), ANON_PATH),
    }
}

/// The same token with one signature character changed.
fn tamper(token: &str) -> String {
    let sig_at = token.rfind('.').map_or(0, |i| i + 1);
    let mut b = token.as_bytes().to_vec();
    let i = sig_at + (b.len() - sig_at) / 2;
    if i < b.len() {
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(b).unwrap_or_default()
}

fn request(path: &str, token: &str) -> CheckRequest {
    let mut req = common::envoy_request(path);
    if !token.is_empty() {
        common::set_authorization(&mut req, format!("Bearer {token}"));
    }
    req
}

async fn check(
    mut client: AuthorizationClient<Channel>,
    req: CheckRequest,
) -> Result<Answer, String> {
    let resp = tokio::time::timeout(CHECK_DEADLINE, client.check(req))
        .await
        .map_err(|_| format!("no answer within {CHECK_DEADLINE:?}"))?
        .map_err(|s| format!("gRPC error {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let code = resp.status.map_or(-1, |s| s.code);
    match resp.http_response {
        Some(HttpResponse::OkResponse(_)) if code == 0 => Ok(Answer {
            allowed: true,
            http: 200,
            reason: String::new(),
        }),
        Some(HttpResponse::DeniedResponse(d)) if code != 0 => {
            let reason = serde_json::from_str::<serde_json::Value>(&d.body)
                .ok()
                .and_then(|b| b.get("error")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".into());
            Ok(Answer {
                allowed: false,
                http: d.status.map_or(0, |s| s.code),
                reason,
            })
        }
        _ => Err(format!("inconsistent answer: status {code}")),
    }
}

// === the run ===

struct Row {
    t: f64,
    checks: u64,
    hist: Histogram<u64>,
    cached: Histogram<u64>,
    rss_kib: u64,
    fds: usize,
    valid_failed: u64,
    other_failed: u64,
    jwks: BTreeSet<String>,
    intro: BTreeSet<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn states(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(",")
}

/// The largest RSS at the end that still counts as flat: 25 % + 8 MiB over the RSS after
/// warm-up. After warm-up every cache is at its steady size (the verified-token cache is
/// emptied by each reload; introspection answers live 20 s, refusals 10 s; the key sets
/// hold at most two keys), so what remains is allocator noise: mimalloc keeps freed
/// pages of its per-thread heaps, and which of Tokio's blocking threads (DNS-free HTTP
/// fetches, started and stopped on demand) exist at a sample moves RSS by a few MiB. A
/// leak of even 100 bytes per check is 270 MiB over 30 minutes at 1500 checks/s, far
/// outside this margin; the margin is what a small, healthy process moves by.
fn rss_bound_kib(warm: u64) -> u64 {
    warm + warm / 4 + 8 * 1024
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    START.get_or_init(Instant::now);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&opts)) {
        Ok(true) => {
            println!("soak: OK");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("soak: FAILED");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("soak: FAILED ({e})");
            ExitCode::FAILURE
        }
    }
}

/// A new RS256 key and its pool of tokens (a few hundred ms: run it on a blocking thread).
fn new_key(seq: u64) -> (Arc<SigningKey>, Vec<String>) {
    let key = common::key(Alg::RS256);
    let pool = common::mint_many(&key, ISS, AUD, seq * 1_000_000, POOL_PER_KEY);
    (Arc::new(key), pool)
}

fn mint_fresh(key: &SigningKey, seq: u64) -> Vec<String> {
    (0..FRESH_BATCH as u64)
        .filter_map(|n| {
            key.sign(&common::claims(ISS, AUD, 500_000_000 + seq * 100 + n))
                .ok()
        })
        .collect()
}

async fn run(opts: &Opts) -> Result<bool, String> {
    println!(
        "soak: duration {:?}, {} checks/s, key rotation every {:.0}s, warm-up {:.0}s, config rewritten every {CONFIG_EVERY:.0}s{}",
        opts.duration,
        opts.rate,
        opts.rotation,
        opts.warmup,
        if opts.quick { " (quick)" } else { "" }
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let secret = random_token();
    let (k0, pool0) = tokio::task::spawn_blocking(|| new_key(1))
        .await
        .map_err(|e| e.to_string())?;
    let fresh0: Vec<(usize, String)> = mint_fresh(&k0, 0).into_iter().map(|t| (0, t)).collect();
    let stranger = common::key(Alg::RS256);
    let unknown_kid = common::mint_many(&stranger, ISS, AUD, 900_000_000, 8);
    let intro_pool: Vec<String> = (0..INTRO_POOL).map(|_| random_token()).collect();
    let fresh_intro = random_token();
    let mut valid: HashMap<String, VecDeque<f64>> = intro_pool
        .iter()
        .map(|t| (t.clone(), VecDeque::new()))
        .collect();
    valid.insert(fresh_intro.clone(), VecDeque::new());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{secret}"));

    let world = Arc::new(World {
        keys: Mutex::new(Keyring {
            keys: vec![KeyEntry {
                key: k0,
                pool: pool0,
                published_at: now_s(),
                removed_at: None,
                refetched_at: None,
                verified_at: None,
            }],
            signing: 0,
            previous: None,
            fresh: fresh0,
        }),
        intro: Mutex::new(Introspected {
            valid,
            pool: intro_pool,
            fresh: fresh_intro,
        }),
        jwks_counts: Mutex::new(BTreeMap::new()),
        intro_counts: Mutex::new(BTreeMap::new()),
        jwks_server: OnceLock::new(),
        intro_server: OnceLock::new(),
        unknown_kid,
        tally: Mutex::new(Tally {
            counts: BTreeMap::new(),
            valid_failed: 0,
            other_failed: 0,
            notes: Vec::new(),
            window: Window::new(),
            total: hist(),
            total_cached: hist(),
            not_sent: 0,
        }),
        in_flight: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        basic_auth: format!("Basic {basic}"),
    });

    let jwks = Flappy::start(
        "JWKS server",
        Router::new()
            .route("/jwks", get(jwks_handler))
            .with_state(world.clone()),
    )
    .await?;
    let intro = Flappy::start(
        "introspection server",
        Router::new()
            .route("/introspect", post(introspect_handler))
            .with_state(world.clone()),
    )
    .await?;
    let _ = world.jwks_server.set(jwks.clone());
    let _ = world.intro_server.set(intro.clone());

    write_config(dir.path(), &ward_yaml(jwks.addr, intro.addr, 0))?;
    let ward = spawn_ward(&opts.ward_bin, dir.path(), &secret)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http
            .get(format!("http://{}/readyz", ward.admin))
            .send()
            .await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("ward never became ready\n{}", ward.log_tail()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let ch = Endpoint::from_shared(format!("http://{}", ward.grpc))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("connecting to ward: {e}"))?;
        clients.push(AuthorizationClient::new(ch).max_decoding_message_size(1 << 20));
    }
    let pid = ward.pid();
    println!(
        "soak: ward pid {pid} ready, RSS {:.1} MiB; JWKS on {}, introspection on {}",
        proc_kib(pid, "VmRSS:") as f64 / 1024.0,
        jwks.addr,
        intro.addr
    );
    println!(
        "{:>6} {:>7} {:>7} {:>8} {:>8} {:>8} {:>10} {:>8} {:>4} {:>6} {:>6}  {:<16} {:<16}",
        "t",
        "checks",
        "/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "p99 cached",
        "RSS MiB",
        "fds",
        "valid✗",
        "other✗",
        "JWKS",
        "introspection"
    );

    let t0 = now_s();
    let run_start = Instant::now();
    let end = opts.duration.as_secs_f64();
    let ward_died = Arc::new(AtomicBool::new(false));
    let config_writes = Arc::new(AtomicU64::new(1));
    let injected: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));

    // The scheduler: injected states, key rotation, fresh tokens, config rewrites.
    let scheduler = {
        let (w, opts, dir) = (world.clone(), opts.clone(), dir.path().to_path_buf());
        let (jwks, intro) = (jwks.clone(), intro.clone());
        let (writes, injected) = (config_writes.clone(), injected.clone());
        tokio::spawn(async move {
            let mut next_fresh = FRESH_EVERY;
            let mut next_intro_fresh = 1.0;
            let mut next_config = CONFIG_EVERY;
            let mut next_rotation = opts.rotation;
            let mut next_removal = f64::INFINITY;
            let mut seq = 1u64;
            let mut pending = Some(tokio::task::spawn_blocking(move || new_key(2)));
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !w.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = now_s() - t0;
                let (jm, im) = (mode_at(JWKS_CYCLE, t), mode_at(INTRO_CYCLE, t));
                for (server, m) in [(&jwks, jm), (&intro, im)] {
                    if server.mode() != m {
                        lock(&injected).push(format!("t={t:.1}s {}: {}", server.name, m.label()));
                        if let Err(e) = server.set_mode(m).await {
                            lock(&injected).push(format!("t={t:.1}s ERROR {e}"));
                        }
                    }
                }
                {
                    let mut tl = lock(&w.tally);
                    tl.window.jwks.insert(jm.label());
                    tl.window.intro.insert(im.label());
                }
                if t >= next_rotation {
                    next_rotation += opts.rotation;
                    if let Some(p) = pending.take()
                        && let Ok((key, pool)) = p.await
                    {
                        seq += 1;
                        let mut keys = lock(&w.keys);
                        let old = keys.signing;
                        keys.keys.push(KeyEntry {
                            key,
                            pool,
                            published_at: now_s(),
                            removed_at: None,
                            refetched_at: None,
                            verified_at: None,
                        });
                        keys.signing = keys.keys.len() - 1;
                        keys.previous = Some(old);
                        lock(&injected).push(format!(
                            "t={t:.1}s key #{} published beside #{old}, signs new tokens",
                            keys.signing
                        ));
                        next_removal = t + opts.rotation / 2.0;
                    }
                    pending = Some(tokio::task::spawn_blocking(move || new_key(seq + 1)));
                }
                if t >= next_removal {
                    next_removal = f64::INFINITY;
                    let mut keys = lock(&w.keys);
                    if let Some(p) = keys.previous {
                        keys.keys[p].removed_at = Some(now_s());
                        lock(&injected).push(format!("t={t:.1}s key #{p} removed from the JWKS"));
                    }
                }
                if t >= next_fresh {
                    next_fresh += FRESH_EVERY;
                    let (idx, key) = {
                        let keys = lock(&w.keys);
                        (keys.signing, keys.keys[keys.signing].key.clone())
                    };
                    let n = (t * 10.0) as u64;
                    if let Ok(toks) = tokio::task::spawn_blocking(move || mint_fresh(&key, n)).await
                        && !toks.is_empty()
                    {
                        lock(&w.keys).fresh = toks.into_iter().map(|t| (idx, t)).collect();
                    }
                }
                if t >= next_intro_fresh {
                    next_intro_fresh += 1.0;
                    let tok = random_token();
                    let mut i = lock(&w.intro);
                    i.valid.insert(tok.clone(), VecDeque::new());
                    i.fresh = tok;
                }
                if t >= next_config {
                    next_config += CONFIG_EVERY;
                    let n = writes.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = write_config(&dir, &ward_yaml(jwks.addr, intro.addr, n)) {
                        lock(&injected).push(format!("t={t:.1}s ERROR writing the config: {e}"));
                    }
                }
            }
        })
    };

    // The monitor: when ward holds a key set fetched after a removal; whether ward lives.
    let monitor = {
        let (w, http, admin) = (world.clone(), http.clone(), ward.admin);
        let died = ward_died.clone();
        tokio::spawn(async move {
            while !w.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !alive(pid) {
                    died.store(true, Ordering::Relaxed);
                    w.stop.store(true, Ordering::Relaxed);
                    return;
                }
                let Some(text) = scrape(admin, &http).await else {
                    continue;
                };
                let fetched = metric(
                    &text,
                    "ward_jwks_last_success_timestamp_seconds",
                    &["provider=\"corp\""],
                );
                // unix time of a removal, whole seconds: a fetch in that second may
                // have come before it.
                let now = now_s();
                let unix_at = |t: f64| unix_now_f() - (now - t);
                let mut keys = lock(&w.keys);
                for k in keys.keys.iter_mut() {
                    if let (Some(r), None) = (k.removed_at, k.refetched_at)
                        && fetched >= unix_at(r).floor() + 1.0
                    {
                        k.refetched_at = Some(now);
                    }
                }
            }
        })
    };

    // The sampler: a row every 10 s.
    let sampler = {
        let w = world.clone();
        tokio::spawn(async move {
            let mut rows: Vec<Row> = Vec::new();
            let mut last_checks = 0u64;
            let mut next = SAMPLE_EVERY;
            loop {
                let at = t0 + next;
                let wait = at - now_s();
                if wait > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
                let (window, total, vf, of) = {
                    let mut t = lock(&w.tally);
                    let win = std::mem::replace(&mut t.window, Window::new());
                    (win, t.total.len(), t.valid_failed, t.other_failed)
                };
                let checks = total - last_checks;
                last_checks = total;
                let row = Row {
                    t: next,
                    checks,
                    hist: window.hist,
                    cached: window.cached,
                    rss_kib: proc_kib(pid, "VmRSS:"),
                    fds: open_fds(pid),
                    valid_failed: vf,
                    other_failed: of,
                    jwks: window.jwks,
                    intro: window.intro,
                };
                println!(
                    "{:>5.0}s {:>7} {:>7.0} {:>8.2} {:>8.2} {:>8.1} {:>10.2} {:>8.1} {:>4} {:>6} {:>6}  {:<16} {:<16}",
                    row.t,
                    row.checks,
                    row.checks as f64 / SAMPLE_EVERY,
                    ms(row.hist.value_at_quantile(0.5)),
                    ms(row.hist.value_at_quantile(0.99)),
                    ms(row.hist.max()),
                    ms(row.cached.value_at_quantile(0.99)),
                    row.rss_kib as f64 / 1024.0,
                    row.fds,
                    row.valid_failed,
                    row.other_failed,
                    states(&row.jwks),
                    states(&row.intro),
                );
                rows.push(row);
                if next >= end || w.stop.load(Ordering::Relaxed) {
                    return rows;
                }
                next += SAMPLE_EVERY;
            }
        })
    };

    // The load: an open loop, dispatching what is due every millisecond.
    let rate = opts.rate as f64;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !world.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let el = run_start.elapsed().as_secs_f64();
        if el >= end {
            break;
        }
        let due = (el * rate) as u64;
        while sent < due {
            let dispatched = Instant::now();
            let sent_s = t0 + sent as f64 / rate;
            let (cred, token, path) = pick(&world, sent);
            let client = clients[(sent % CONNECTIONS as u64) as usize].clone();
            sent += 1;
            if world.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                lock(&world.tally).not_sent += 1;
                continue;
            }
            world.in_flight.fetch_add(1, Ordering::Relaxed);
            let w = world.clone();
            tokio::spawn(async move {
                let req = request(path, &token);
                let ans = check(client, req).await;
                let us = (dispatched.elapsed().as_micros() as u64).max(1);
                let cached = judge(&w, cred, &token, sent_s, now_s(), ans);
                {
                    let mut t = lock(&w.tally);
                    let _ = t.window.hist.record(us);
                    let _ = t.total.record(us);
                    if cached {
                        let _ = t.window.cached.record(us);
                        let _ = t.total_cached.record(us);
                    }
                }
                w.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
    // Let the checks in flight finish, then stop everything.
    let drain = Instant::now() + CHECK_DEADLINE + Duration::from_secs(2);
    while world.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = sampler.await.map_err(|e| e.to_string())?;
    world.stop.store(true, Ordering::Relaxed);
    let _ = scheduler.await;
    let _ = monitor.await;
    let metrics = scrape(ward.admin, &http).await.unwrap_or_default();

    report(
        opts,
        &world,
        &rows,
        &metrics,
        &ward,
        &injected,
        &config_writes,
        ward_died.load(Ordering::Relaxed),
        sent,
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &Opts,
    world: &World,
    rows: &[Row],
    metrics: &str,
    ward: &Ward,
    injected: &Mutex<Vec<String>>,
    config_writes: &AtomicU64,
    ward_died: bool,
    scheduled: u64,
) -> Result<bool, String> {
    let t = lock(&world.tally);
    let mut ok = true;
    println!();
    println!("## Answers (what was sent → what came back)");
    println!();
    println!("| credential | answer | checks |");
    println!("|---|---|---:|");
    for ((what, outcome), n) in &t.counts {
        println!("| {what} | {outcome} | {n} |");
    }
    println!();
    let cached_jwt: u64 = t
        .counts
        .iter()
        .filter(|((w, _), _)| w == "valid JWT, key cached")
        .map(|(_, n)| n)
        .sum();
    let cached_intro: u64 = t
        .counts
        .iter()
        .filter(|((w, _), _)| w == "introspected token, answer cached")
        .map(|(_, n)| n)
        .sum();
    println!(
        "- checks scheduled {scheduled}, answered {}, not sent (over {MAX_IN_FLIGHT} in flight) {}",
        t.total.len(),
        t.not_sent
    );
    println!(
        "- latency over the run: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms",
        ms(t.total.value_at_quantile(0.5)),
        ms(t.total.value_at_quantile(0.99)),
        ms(t.total.value_at_quantile(0.999)),
        ms(t.total.max())
    );
    println!(
        "- latency of the checks that needed no identity provider (a held key, a cached answer, an anonymous route): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms",
        ms(t.total_cached.value_at_quantile(0.5)),
        ms(t.total_cached.value_at_quantile(0.99)),
        ms(t.total_cached.value_at_quantile(0.999)),
        ms(t.total_cached.max())
    );
    println!(
        "- **valid checks failed: {}** (of {cached_jwt} JWTs whose key ward held and {cached_intro} introspected tokens whose answer was cached)",
        t.valid_failed
    );
    println!("- other failures: {}", t.other_failed);
    if t.valid_failed > 0 || t.other_failed > 0 {
        ok = false;
        for n in &t.notes {
            println!("  - {n}");
        }
    }
    if ward_died {
        ok = false;
        println!("- ward EXITED during the run\n{}", ward.log_tail());
    }

    // Reloads: every rewrite but perhaps the last (1 s watch interval) must have loaded.
    let writes = config_writes.load(Ordering::Relaxed) - 1;
    let reloaded = metric(
        metrics,
        "ward_config_reloads_total",
        &["result=\"success\""],
    ) as u64;
    let reload_failed = metric(
        metrics,
        "ward_config_reloads_total",
        &["result=\"failure\""],
    ) as u64;
    println!(
        "- config rewritten {writes} times; ward reloaded {reloaded} times, {reload_failed} reloads failed"
    );
    if reload_failed > 0 || reloaded + 1 < writes {
        ok = false;
        println!("  - FAILED: reloads missing or failed");
    }
    let fetches = metric_by(
        metrics,
        "ward_jwks_refresh_total",
        "provider=\"corp\"",
        "result",
    );
    println!("- ward's key fetches by result: {}", fmt_map(&fetches));
    let calls = metric_by(
        metrics,
        "ward_introspection_requests_total",
        "provider=\"partners\"",
        "result",
    );
    println!(
        "- ward's introspection calls by result: {}",
        fmt_map(&calls)
    );
    println!(
        "- JWKS server answers: {}",
        fmt_counts(&lock(&world.jwks_counts))
    );
    println!(
        "- introspection server answers: {}",
        fmt_counts(&lock(&world.intro_counts))
    );
    if lock(&world.intro_counts).contains_key("401 bad client authentication") {
        ok = false;
        println!("  - FAILED: ward's client authentication was refused");
    }
    let downs = |s: Option<&Arc<Flappy>>| s.map_or(0, |s| lock(&s.state).downs);
    println!(
        "- taken down (listener closed, connections reset): JWKS server {} times, introspection server {} times",
        downs(world.jwks_server.get()),
        downs(world.intro_server.get())
    );
    {
        let keys = lock(&world.keys);
        println!(
            "- keys: {} published over the run; removals seen fetched by ward after {}",
            keys.keys.len(),
            keys.keys
                .iter()
                .enumerate()
                .filter_map(|(i, k)| Some(format!("#{i} {:.1}s", k.refetched_at? - k.removed_at?)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // Memory.
    let warm = rows
        .iter()
        .find(|r| r.t >= opts.warmup)
        .map_or(0, |r| r.rss_kib);
    let last = rows.last().map_or(0, |r| r.rss_kib);
    let max = rows.iter().map(|r| r.rss_kib).max().unwrap_or(0);
    let bound = rss_bound_kib(warm);
    let flat = last <= bound;
    println!(
        "- ward RSS after warm-up ({:.0}s) {:.1} MiB, at the end {:.1} MiB, max {:.1} MiB, peak (VmHWM) {:.1} MiB; bound 1.25 × warm-up + 8 MiB = {:.1} MiB: {}",
        opts.warmup,
        warm as f64 / 1024.0,
        last as f64 / 1024.0,
        max as f64 / 1024.0,
        proc_kib(ward.pid(), "VmHWM:") as f64 / 1024.0,
        bound as f64 / 1024.0,
        if flat { "holds" } else { "EXCEEDED" }
    );
    if !flat || warm == 0 {
        ok = false;
    }

    // Per minute (per 10 s in a run of 3 minutes or less).
    let per = if rows.len() > 18 { 6 } else { 1 };
    println!();
    println!(
        "## Over time (per {})",
        if per == 6 { "minute" } else { "10 s" }
    );
    println!();
    println!(
        "| until | checks | p50 ms | p99 ms | max ms | p99 cached ms | RSS MiB | fds | valid failed | JWKS | introspection |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for chunk in rows.chunks(per) {
        let mut h = hist();
        let mut c = hist();
        let mut j = BTreeSet::new();
        let mut i = BTreeSet::new();
        for r in chunk {
            let _ = h.add(&r.hist);
            let _ = c.add(&r.cached);
            j.extend(r.jwks.iter().cloned());
            i.extend(r.intro.iter().cloned());
        }
        let r = chunk.last().expect("non-empty chunk");
        let until = if per == 6 {
            format!("{:.0} min", r.t / 60.0)
        } else {
            format!("{:.0} s", r.t)
        };
        println!(
            "| {until} | {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.1} | {} | {} | {} | {} |",
            chunk.iter().map(|r| r.checks).sum::<u64>(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            ms(c.value_at_quantile(0.99)),
            r.rss_kib as f64 / 1024.0,
            r.fds,
            r.valid_failed,
            states(&j),
            states(&i)
        );
    }
    if opts.quick || std::env::var_os("WARD_SOAK_EVENTS").is_some() {
        println!();
        println!("## Injected");
        for e in lock(injected).iter() {
            println!("- {e}");
        }
    } else {
        let ev = lock(injected);
        let errors: Vec<&String> = ev.iter().filter(|e| e.contains("ERROR")).collect();
        println!();
        println!(
            "- {} injected state changes and rotations (WARD_SOAK_EVENTS=1 lists them){}",
            ev.len(),
            if errors.is_empty() { "" } else { "; errors:" }
        );
        for e in errors {
            println!("  - {e}");
        }
    }
    if lock(injected).iter().any(|e| e.contains("ERROR")) {
        ok = false;
    }
    Ok(ok)
}

fn fmt_map(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
