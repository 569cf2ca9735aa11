//! Shared harness for ward's integration tests: the real server on 127.0.0.1, requests
//! shaped the way Envoy builds them, keys and tokens minted at test time, and accessors
//! that pull the parts of a `CheckResponse` apart.
//!
//! - [`Ward`]: `ward::server::run` on two listeners bound to `127.0.0.1:0` before the
//!   server is spawned (so a client can connect at once, no sleeps), from a YAML string
//!   compiled with `ward::config::load_str` or from a config file read with
//!   `ward::config::load_file` (optionally watched for reloads, as `ward serve` does).
//!   Files the config names (`jwks_file`, TLS files, ...) go in a temporary directory
//!   that is the config's base directory. [`WardBuilder`] also compiles a config without
//!   serving it: its errors ([`WardBuilder::config_error`]) or an in-process
//!   [`ward::engine::Engine`] ([`WardBuilder::engine`]).
//! - [`Req`]: one request, encoded as Envoy's default `headers` map (repeated headers
//!   joined with `,`, invalid UTF-8 turned into `!`) or as `header_map` with raw bytes
//!   (Envoy's `encode_raw_headers: true`), see [`Shape`].
//! - [`TestKey`] / [`KeyRing`]: real keys of every family (RSA 2048, P-256, P-384,
//!   Ed25519, HMAC), and helpers to build hostile tokens by hand ([`jws`], [`b64url`]).
//! - [`allowed`], [`denial`], [`summary`], [`metadata_str`]: readers for answers, each
//!   failing with a message that shows what came back instead.
//! - [`metric`], [`samples`], [`families`]: readers for the Prometheus text of `/metrics`.
//! - [`eventually`], [`wait_until`]: polling with a deadline, never a fixed sleep.
//! - [`each_case`]: a table test that reports every failing row by name.
//! - [`bin`]: the real `ward` binary, for one-shot commands and `ward serve`.
//!
//! Each test binary uses a part of this module, hence the `dead_code` allowance.

#![allow(dead_code)]

pub mod bin;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use ward::ReloadError;
use ward::authn::jwt::Alg;
use ward::config::Config;
use ward::devtoken::SigningKey;

/// gRPC status codes as they appear in `CheckResponse.status.code`.
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

// === impl Ward ===

/// A running ward: gRPC (`Authorization/Check`, health, reflection) and admin HTTP, both
/// on 127.0.0.1 with ephemeral ports. Dropping it signals shutdown without waiting;
/// [`Ward::shutdown`] signals and waits for `run` to return.
pub struct Ward {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The grace period `run` was given.
    pub grace: Duration,
    /// The policy being served; [`Ward::reload`] reloads it.
    policy: ward::Ward,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    client: Option<AuthorizationClient<Channel>>,
    /// With [`WardBuilder::watch`]: the line that plays SIGHUP to the reload watcher.
    watcher: Option<mpsc::Sender<()>>,
    /// The config file, when ward was started from one.
    config_file: Option<PathBuf>,
    env: Arc<HashMap<String, String>>,
    /// Base directory of the config; lives as long as the server.
    dir: tempfile::TempDir,
}

/// Where the config comes from.
enum Source {
    /// YAML text, with the temporary directory as its base directory.
    Text(String),
    /// A file in the temporary directory, read as `ward serve --config` reads it.
    File(PathBuf),
}

/// How to start a [`Ward`] (or only compile its config): the config plus the files and
/// `${ENV}` values it needs. Files are written as they are added.
pub struct WardBuilder {
    source: Source,
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    grace: Duration,
    /// `Some(interval)` runs the reload watcher (`None` inside: on SIGHUP only).
    watch: Option<Option<Duration>>,
}

impl WardBuilder {
    fn new(source: impl FnOnce(&Path) -> Source) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the config");
        WardBuilder {
            source: source(dir.path()),
            dir,
            env: HashMap::new(),
            grace: Duration::from_secs(2),
            watch: None,
        }
    }

    /// Writes `contents` at `name` (relative, parent directories created) in the config's
    /// base directory, for `jwks_file:`, TLS files and the like.
    pub fn file(self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
        self
    }

    /// Makes `link` (relative to the base directory) a symbolic link to `target` (taken
    /// as written, so relative targets stay relative), as Kubernetes mounts a ConfigMap.
    pub fn symlink(self, link: &str, target: &str) -> Self {
        std::os::unix::fs::symlink(target, self.dir.path().join(link))
            .unwrap_or_else(|e| panic!("symlink {link} -> {target}: {e}"));
        self
    }

    /// Sets `${name}` for the config's environment expansion (the process environment is
    /// never read or changed).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// The grace period of `ward::Server` (default 2 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Runs the server's reload watcher on the config file (only with
    /// [`Ward::from_file`]): every `interval`, and on every [`Ward::sighup`]; with
    /// `None`, on SIGHUP only.
    pub fn watch(mut self, interval: Option<Duration>) -> Self {
        self.watch = Some(interval);
        self
    }

    /// The config's base directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Compiles the config as `try_start` would; an error is returned as ward prints it.
    pub fn load(&self) -> Result<Config, String> {
        self.load_tracked().map(|(config, _)| config)
    }

    /// [`WardBuilder::load`], with the files read (none for a config given as text).
    fn load_tracked(&self) -> Result<(Config, ward::config::Sources), String> {
        let (loaded, sources) = match &self.source {
            Source::Text(yaml) => (
                ward::config::load_str(yaml, self.dir.path(), &self.env),
                ward::config::Sources::default(),
            ),
            Source::File(path) => ward::config::load_file_tracked(path, &self.env),
        };
        loaded.map(|c| (c, sources)).map_err(|e| e.to_string())
    }

    /// The config's errors, one per line; fails the test if the config is accepted.
    pub fn config_error(&self) -> String {
        match self.load() {
            Ok(_) => match &self.source {
                Source::Text(yaml) => panic!("config accepted:\n{yaml}"),
                Source::File(path) => panic!("config accepted: {}", path.display()),
            },
            Err(e) => e,
        }
    }

    /// The config compiled into an in-process engine (no server, no remote key fetching:
    /// what `ward::layer` embeds); a config error fails the test.
    pub fn engine(&self) -> ward::engine::Engine {
        let config = self
            .load()
            .unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        ward::engine::Engine::new(config, Arc::new(ward::metrics::Metrics::new()))
    }

    /// Loads the config and starts the server (`ward::Server`, as `ward serve` runs it); a
    /// config error is returned as its text.
    pub async fn try_start(self) -> Result<Ward, String> {
        let env = Arc::new(self.env);
        let config_file = match &self.source {
            Source::File(path) => Some(path.clone()),
            Source::Text(_) => None,
        };
        let policy = match &self.source {
            Source::Text(yaml) => {
                let config = ward::config::load_str(yaml, self.dir.path(), &*env)
                    .map_err(|e| e.to_string())?;
                ward::Ward::new(config)
            }
            Source::File(path) => ward::Ward::from_file_with_env(path, env.clone()),
        }
        .map_err(|e| e.to_string())?;
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind grpc: {e}"))?;
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind admin: {e}"))?;
        let grpc_addr = grpc.local_addr().map_err(|e| e.to_string())?;
        let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
        let mut server = ward::Server::new(policy.clone(), grpc, admin).grace(self.grace);
        let watcher = match self.watch {
            None => None,
            Some(interval) => {
                if config_file.is_none() {
                    return Err("watch() needs a config file: start with Ward::from_file".into());
                }
                let (hup, hup_rx) = mpsc::channel(1);
                server = server.reload_on(hup_rx, interval);
                Some(hup)
            }
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        // The listener is already bound: the channel connects on first use, no waiting.
        let channel = Channel::from_shared(format!("http://{grpc_addr}"))
            .map_err(|e| e.to_string())?
            .connect_lazy();
        Ok(Ward {
            grpc_addr,
            admin_addr,
            grace: self.grace,
            policy,
            stop: Some(stop),
            task: Some(task),
            client: Some(AuthorizationClient::new(channel)),
            watcher,
            config_file,
            env,
            dir: self.dir,
        })
    }

    /// Like [`WardBuilder::try_start`], failing the test on a config error.
    pub async fn start(self) -> Ward {
        match self.try_start().await {
            Ok(w) => w,
            Err(e) => panic!("ward did not start:\n{e}"),
        }
    }
}

impl Ward {
    /// A config given as YAML text.
    pub fn builder(yaml: &str) -> WardBuilder {
        WardBuilder::new(|_| Source::Text(yaml.to_string()))
    }

    /// A config read from the file `name` in the base directory, which
    /// [`WardBuilder::file`] (or [`WardBuilder::symlink`]) must provide.
    pub fn from_file(name: &str) -> WardBuilder {
        WardBuilder::new(|dir| Source::File(dir.join(name)))
    }

    /// Starts ward from a config that needs no files or environment.
    pub async fn start(yaml: &str) -> Ward {
        Ward::builder(yaml).start().await
    }

    /// The config's base directory (where [`WardBuilder::file`] wrote).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file ward was started from ([`Ward::from_file`]).
    pub fn config_file(&self) -> &Path {
        self.config_file
            .as_deref()
            .expect("ward was started from YAML text, not a file")
    }

    /// Reloads the config file now, as a SIGHUP would, and returns the outcome.
    pub fn reload(&self) -> Result<(), ReloadError> {
        self.policy.reload()
    }

    /// Sends the reload watcher a SIGHUP (only with [`WardBuilder::watch`]).
    pub async fn sighup(&self) {
        let hup = self
            .watcher
            .as_ref()
            .expect("no reload watcher: start with .watch(..)");
        hup.send(()).await.expect("the reload watcher is running");
    }

    /// A new client on its own connection.
    pub async fn client(&self) -> AuthorizationClient<Channel> {
        AuthorizationClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("connect to ward's gRPC listener")
    }

    /// A new channel to the gRPC listener, for its other services (health, reflection).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .expect("gRPC URI")
            .connect()
            .await
            .expect("connect to ward's gRPC listener")
    }

    /// One `Check` call on the shared connection; a transport error fails the test.
    pub async fn check(&self, req: CheckRequest) -> CheckResponse {
        self.try_check(req).await.expect("Check RPC failed")
    }

    /// One `Check` call; the gRPC status is returned, not asserted.
    pub async fn try_check(&self, req: CheckRequest) -> Result<CheckResponse, tonic::Status> {
        let mut client = self
            .client
            .clone()
            .expect("the shared client exists until shutdown");
        client.check(req).await.map(tonic::Response::into_inner)
    }

    /// One `Check` call, read into a [`Summary`].
    pub async fn summary(&self, req: CheckRequest) -> Summary {
        summary(&self.check(req).await)
    }

    /// Sends `req` until it is allowed (remote keys arrive in the background), failing
    /// after `within`; returns the allowing answer.
    pub async fn wait_allowed(&self, req: &CheckRequest, within: Duration) -> CheckResponse {
        eventually(within, async || {
            let r = self.check(req.clone()).await;
            if grpc_code(&r) == code::OK {
                Ok(r)
            } else {
                Err(format!("still not allowed: {}", describe(&r)))
            }
        })
        .await
    }

    /// `GET` on the admin listener: status and body text.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.admin_addr))
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the admin listener: {e}"));
        let status = r.status().as_u16();
        (status, r.text().await.expect("admin body"))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let (status, body) = self.admin_get("/metrics").await;
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        body
    }

    /// One sample of `/metrics` (see [`metric`]).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(&self.metrics().await, name, labels)
    }

    /// Polls `/metrics` until the sample reaches `at_least` (an absent sample reads 0),
    /// failing after `within`.
    pub async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
        within: Duration,
    ) {
        eventually(within, async || {
            match self.metric(name, labels).await.unwrap_or(0.0) {
                v if v >= at_least => Ok(()),
                v => Err(format!("{name}{labels:?} is {v}, not yet {at_least}")),
            }
        })
        .await
    }

    /// Polls `/readyz` until it answers `want`, failing after `within`.
    pub async fn wait_ready(&self, want: u16, within: Duration) {
        eventually(within, async || match self.admin_get("/readyz").await {
            (status, _) if status == want => Ok(()),
            (status, _) => Err(format!("/readyz still answers {status}, not {want}")),
        })
        .await
    }

    /// Triggers the shutdown future now and hands back the running `run`, to be joined
    /// with [`Stopping::join`] (after, say, an in-flight check was answered).
    pub fn stop(mut self) -> Stopping {
        self.client = None;
        let task = self.task.take().expect("ward is running");
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        Stopping {
            task,
            started,
            limit: self.grace + Duration::from_secs(1),
        }
    }

    /// Triggers the shutdown future and waits for `run` to return (see
    /// [`Stopping::join`]). Returns how long `run` took to return after the signal.
    pub async fn shutdown(self) -> Duration {
        self.stop().join().await
    }
}

impl Drop for Ward {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A ward whose shutdown was signalled: `run` is draining.
pub struct Stopping {
    task: JoinHandle<std::io::Result<()>>,
    started: Instant,
    /// The grace period plus one second.
    limit: Duration,
}

impl Stopping {
    /// Waits for `run` to return; fails the test if it does not within the grace period
    /// plus one second, or returns an error. Returns how long it took since the signal.
    pub async fn join(self) -> Duration {
        let limit = self.limit;
        match tokio::time::timeout_at((self.started + limit).into(), self.task).await {
            Err(_) => panic!("run did not return within {limit:?} of the shutdown signal"),
            Ok(Err(join)) => panic!("run panicked or was cancelled: {join}"),
            Ok(Ok(Err(io))) => panic!("run returned an error: {io}"),
            Ok(Ok(Ok(()))) => self.started.elapsed(),
        }
    }
}

/// An address on 127.0.0.1 where nothing listens: an ephemeral port, bound and released,
/// so a connection to it is refused at once.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

// === table tests ===

/// Runs `check` on every case, then fails naming each case that failed: a table test
/// reports all of its broken rows (each row's own panic message is printed as it
/// happens), as separate tests would, not only the first.
pub fn each_case<N: std::fmt::Display, T>(
    cases: impl IntoIterator<Item = (N, T)>,
    check: impl Fn(T),
) {
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, case)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)))
                .err()
                .map(|_| name.to_string())
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed, see their messages above: {}",
        failed.len(),
        failed.join("; ")
    );
}

// === polling ===

/// Retries `attempt` every 20 ms until it returns `Ok`, and returns that value; fails the
/// test with the last `Err` once `within` has passed. For waiting on something that
/// happens in the background (readiness, a reload, a refresh), never with a fixed sleep.
pub async fn eventually<T>(
    within: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "after {within:?}: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`] for a plain condition: fails with `what` once `within` has passed.
pub async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    eventually(within, async || {
        if done().await {
            Ok(())
        } else {
            Err(format!("{what}: not yet"))
        }
    })
    .await
}

// === impl Req ===

/// How Envoy encodes request headers in `attributes.request.http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The default: the `headers` map, repeated headers joined with `,`, values
    /// UTF-8-sanitized (invalid bytes become `!`).
    Map,
    /// `encode_raw_headers: true`: `header_map`, one `raw_value` per header line,
    /// unjoined and unsanitized; `headers` is empty.
    Raw,
}

impl Shape {
    pub const BOTH: [Shape; 2] = [Shape::Map, Shape::Raw];
}

/// One HTTP request as Envoy describes it to an ext_authz server.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub host: String,
    /// `:path`, query string included.
    pub path: String,
    pub scheme: String,
    /// Envoy's stream id (`attributes.request.http.id`).
    pub stream_id: String,
    /// Header lines in order, lower-case names, raw values.
    pub headers: Vec<(String, Vec<u8>)>,
    pub context: BTreeMap<String, String>,
    /// `attributes.source.principal` (the peer's SPIFFE id in a mesh).
    pub principal: Option<String>,
    /// `attributes.source.certificate`: the peer's URL-encoded PEM certificate.
    pub certificate: Option<String>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            host: "api.example.com".to_string(),
            path: path.to_string(),
            scheme: "https".to_string(),
            stream_id: "4242".to_string(),
            headers: Vec::new(),
            context: BTreeMap::new(),
            principal: None,
            certificate: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_string();
        self
    }

    pub fn stream_id(mut self, id: &str) -> Self {
        self.stream_id = id.to_string();
        self
    }

    /// Adds a header line (the name is lower-cased, as Envoy sends it).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.raw_header(name, value.as_bytes())
    }

    /// Adds a header line with arbitrary bytes as its value.
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_vec()));
        self
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn request_id(self, id: &str) -> Self {
        self.header("x-request-id", id)
    }

    /// A per-route `context_extensions` entry.
    pub fn context(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_string(), value.to_string());
        self
    }

    pub fn principal(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_string());
        self
    }

    /// The peer certificate, as Envoy fills `source.certificate` (URL-encoded PEM).
    pub fn certificate(mut self, certificate: &str) -> Self {
        self.certificate = Some(certificate.to_string());
        self
    }

    /// Every header line Envoy would send, pseudo-headers first.
    fn lines(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![
            (":authority".to_string(), self.host.clone().into_bytes()),
            (":path".to_string(), self.path.clone().into_bytes()),
            (":method".to_string(), self.method.clone().into_bytes()),
            (":scheme".to_string(), self.scheme.clone().into_bytes()),
        ];
        out.extend(self.headers.iter().cloned());
        out
    }

    /// The `CheckRequest` Envoy would send with its default `headers` map.
    pub fn to_map(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> = HashMap::new();
        for (name, value) in self.lines() {
            let value = sanitize_utf8(&value);
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        self.request(headers, None)
    }

    /// The `CheckRequest` Envoy would send with `encode_raw_headers: true`.
    pub fn to_raw(&self) -> CheckRequest {
        let lines = self
            .lines()
            .into_iter()
            .map(|(key, raw_value)| HeaderValue {
                key,
                raw_value,
                ..Default::default()
            })
            .collect();
        self.request(HashMap::new(), Some(HeaderMap { headers: lines }))
    }

    pub fn build(&self, shape: Shape) -> CheckRequest {
        match shape {
            Shape::Map => self.to_map(),
            Shape::Raw => self.to_raw(),
        }
    }

    fn request(
        &self,
        headers: HashMap<String, String>,
        header_map: Option<HeaderMap>,
    ) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: (self.principal.is_some() || self.certificate.is_some()).then(|| Peer {
                    principal: self.principal.clone().unwrap_or_default(),
                    certificate: self.certificate.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                request: Some(Request {
                    http: Some(HttpRequest {
                        id: self.stream_id.clone(),
                        method: self.method.clone(),
                        host: self.host.clone(),
                        path: self.path.clone(),
                        scheme: self.scheme.clone(),
                        protocol: "HTTP/1.1".to_string(),
                        headers,
                        header_map,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: self
                    .context
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..Default::default()
            }),
        }
    }
}

/// Envoy's `MessageUtil::sanitizeUtf8String`: each invalid byte becomes `!`.
pub fn sanitize_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let skip = e.error_len().unwrap_or(bad.len());
                out.extend(std::iter::repeat_n('!', skip));
                rest = &bad[skip..];
            }
        }
    }
}

// === keys and tokens ===

/// A private key of one algorithm, generated at test time, with everything a test needs
/// to sign with it and to publish its public half.
pub struct TestKey {
    pub alg: Alg,
    /// PKCS#8 DER of the private key (for HMAC: the secret itself).
    pub private_der: Vec<u8>,
    /// The private key as `ward token sign --key` reads it: PKCS#8 PEM (HMAC: the secret).
    key_file: Vec<u8>,
    signing: SigningKey,
    encoding: EncodingKey,
    /// RSA only: the public key as SubjectPublicKeyInfo DER and as PKCS#1 DER.
    rsa_public: Option<(Vec<u8>, Vec<u8>)>,
}

impl TestKey {
    /// A fresh key for `alg`: RSA 2048 for RS*/PS*, P-256 for ES256, P-384 for ES384,
    /// Ed25519 for EdDSA, 48 random bytes for HS*.
    pub fn generate(alg: Alg) -> Self {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair, KeyPair as _,
        };
        let mut rsa_public = None;
        let der: Vec<u8> = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("generate RSA 2048");
                let spki = kp.public_key().as_der().expect("RSA public SPKI DER");
                rsa_public = Some((spki.as_ref().to_vec(), kp.public_key().as_ref().to_vec()));
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
                    kp.as_der().expect("RSA private PKCS#8 DER");
                der.as_ref().to_vec()
            }
            Alg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("generate P-256")
                .to_pkcs8v1()
                .expect("P-256 PKCS#8")
                .as_ref()
                .to_vec(),
            Alg::ES384 => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                .expect("generate P-384")
                .to_pkcs8v1()
                .expect("P-384 PKCS#8")
                .as_ref()
                .to_vec(),
            Alg::EdDSA => Ed25519KeyPair::generate()
                .expect("generate Ed25519")
                .to_pkcs8v1()
                .expect("Ed25519 PKCS#8")
                .as_ref()
                .to_vec(),
            Alg::HS256 | Alg::HS384 | Alg::HS512 => {
                let mut secret = vec![0u8; 48];
                aws_lc_rs::rand::fill(&mut secret).expect("random secret");
                secret
            }
        };
        let is_hmac = matches!(alg, Alg::HS256 | Alg::HS384 | Alg::HS512);
        let input = if is_hmac {
            der.clone()
        } else {
            pem("PRIVATE KEY", &der).into_bytes()
        };
        let signing = SigningKey::from_bytes(&input, alg).expect("ward accepts the test key");
        let encoding = match alg {
            Alg::ES256 | Alg::ES384 => EncodingKey::from_ec_pem(&input).expect("EC PEM"),
            Alg::EdDSA => EncodingKey::from_ed_pem(&input).expect("Ed25519 PEM"),
            Alg::HS256 | Alg::HS384 | Alg::HS512 => {
                EncodingKey::from_secret(&der).expect("HMAC encoding key")
            }
            _ => EncodingKey::from_rsa_pem(&input).expect("RSA PEM"),
        };
        Self {
            alg,
            private_der: der,
            key_file: input,
            signing,
            encoding,
            rsa_public,
        }
    }

    /// The private key as `ward token sign --key` and `ward token jwks --key` read it:
    /// PKCS#8 PEM, or the raw secret for HMAC.
    pub fn key_file(&self) -> &[u8] {
        &self.key_file
    }

    /// The key id: the RFC 7638 thumbprint ward's devtoken puts in every header.
    pub fn kid(&self) -> &str {
        self.signing.kid()
    }

    /// This key's public JWK (for HMAC: the secret as an `oct` key).
    pub fn jwk(&self) -> Value {
        self.signing.jwks()["keys"][0].clone()
    }

    /// A JWKS holding only this key.
    pub fn jwks(&self) -> Value {
        self.signing.jwks()
    }

    /// Signs `claims` with header `{alg, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.signing.sign(claims).expect("sign test token")
    }

    /// A compact JWS over exactly these header and payload texts (duplicate members,
    /// odd types and all), signed with this key's own algorithm whatever the header says.
    pub fn sign_parts(&self, header_json: &str, payload_json: &str) -> String {
        let input = format!("{}.{}", b64url(header_json), b64url(payload_json));
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &self.encoding,
            self.alg.to_jsonwebtoken(),
        )
        .expect("sign raw JWS");
        format!("{input}.{sig}")
    }

    /// The standard header text `{"alg":..,"kid":..,"typ":"JWT"}` for [`TestKey::sign_parts`].
    pub fn header_json(&self) -> String {
        json!({"alg": self.alg.as_str(), "kid": self.kid(), "typ": "JWT"}).to_string()
    }

    /// RSA only: the public key as SubjectPublicKeyInfo DER.
    pub fn rsa_public_der(&self) -> &[u8] {
        &self.rsa_public.as_ref().expect("an RSA key").0
    }

    /// RSA only: the public key as PKCS#1 `RSAPublicKey` DER.
    pub fn rsa_public_pkcs1_der(&self) -> &[u8] {
        &self.rsa_public.as_ref().expect("an RSA key").1
    }

    /// RSA only: the `-----BEGIN PUBLIC KEY-----` PEM an attacker would fetch from the JWKS.
    pub fn rsa_public_pem(&self) -> String {
        pem("PUBLIC KEY", self.rsa_public_der())
    }
}

/// One key of every family, generated once per test binary (RSA generation is slow).
pub struct KeyRing {
    pub rs256: TestKey,
    pub ps256: TestKey,
    pub es256: TestKey,
    pub es384: TestKey,
    pub eddsa: TestKey,
    pub hs256: TestKey,
}

impl KeyRing {
    pub fn shared() -> &'static KeyRing {
        static RING: OnceLock<KeyRing> = OnceLock::new();
        RING.get_or_init(|| KeyRing {
            rs256: TestKey::generate(Alg::RS256),
            ps256: TestKey::generate(Alg::PS256),
            es256: TestKey::generate(Alg::ES256),
            es384: TestKey::generate(Alg::ES384),
            eddsa: TestKey::generate(Alg::EdDSA),
            hs256: TestKey::generate(Alg::HS256),
        })
    }

    pub fn all(&self) -> [&TestKey; 6] {
        [
            &self.rs256,
            &self.ps256,
            &self.es256,
            &self.es384,
            &self.eddsa,
            &self.hs256,
        ]
    }
}

/// A JWT provider named `corp` (issuer `https://corp.test`, audience `api`) trusting
/// `key` inline and its algorithm only, as a YAML item of `providers:`.
pub fn corp_provider(key: &TestKey) -> String {
    format!(
        "  - name: corp\n    jwt:\n      issuer: https://corp.test\n      audiences: [api]\n      algorithms: [{}]\n      jwks: {}\n",
        key.alg.as_str(),
        key.jwks()
    )
}

/// A token [`corp_provider`] accepts, for `sub`, valid for five minutes.
pub fn corp_token(key: &TestKey, sub: &str) -> String {
    key.sign(&json!({"iss": "https://corp.test", "aud": "api", "sub": sub, "exp": now() + 300}))
}

/// A JWKS holding every given key.
pub fn jwks_of(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// PEM armour around DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS from header and payload texts and an already-encoded signature part.
pub fn jws(header_json: &str, payload_json: &str, signature_b64: &str) -> String {
    format!(
        "{}.{}.{signature_b64}",
        b64url(header_json),
        b64url(payload_json)
    )
}

/// A JWS whose HS256 signature uses `secret` (the algorithm-confusion attack when the
/// secret is a public key).
pub fn hs256_with_secret(header_json: &str, payload_json: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64url(header_json), b64url(payload_json));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(tag.as_ref()))
}

/// Seconds since the Unix epoch, on ward's own clock.
pub fn now() -> u64 {
    ward::authn::cache::unix_now()
}

// === responses ===

/// `CheckResponse.status.code` (a missing status reads as OK, as Envoy reads it).
pub fn grpc_code(r: &CheckResponse) -> i32 {
    r.status.as_ref().map_or(code::OK, |s| s.code)
}

/// The OK answer; fails the test with the denial if the request was denied.
pub fn allowed(r: &CheckResponse) -> &OkHttpResponse {
    allowed_for(r, "request")
}

/// Like [`allowed`], naming `case` in the failure message.
pub fn allowed_for<'r>(r: &'r CheckResponse, case: &str) -> &'r OkHttpResponse {
    assert_eq!(
        grpc_code(r),
        code::OK,
        "{case}: expected an allow, got {}",
        describe(r)
    );
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        _ => panic!("{case}: expected an OkHttpResponse, got {}", describe(r)),
    }
}

/// A denial read apart.
#[derive(Debug, Clone)]
pub struct Denial {
    pub grpc_code: i32,
    pub grpc_message: String,
    pub http_status: u16,
    /// `(name, value)` of every header in the denied response.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// `body.error`, `body.detail`, `body.request_id`.
    pub error: String,
    pub detail: String,
    pub request_id: String,
}

impl Denial {
    /// (gRPC code, HTTP status, `body.error`).
    pub fn short(&self) -> (i32, u16, &str) {
        (self.grpc_code, self.http_status, self.error.as_str())
    }

    /// The single value of a response header; fails if it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut it = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let first = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "header {name} repeated in {self:?}");
        first
    }

    /// The body is exactly `{"error","detail","request_id"}`, all strings, sent as
    /// `content-type: application/json`.
    pub fn assert_json_body(&self) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "denial content-type: {self:?}"
        );
        let keys: BTreeSet<&str> = self
            .body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            BTreeSet::from(["error", "detail", "request_id"]),
            "denial body: {}",
            self.body
        );
        for k in ["error", "detail", "request_id"] {
            assert!(
                self.body[k].is_string(),
                "{k} is not a string: {}",
                self.body
            );
        }
        assert!(!self.detail.is_empty(), "empty detail: {}", self.body);
    }

    pub fn www_authenticate(&self) -> Option<&str> {
        self.header("www-authenticate")
    }

    /// The `error_description` of the challenge, if any.
    pub fn error_description(&self) -> Option<String> {
        let c = self.www_authenticate()?;
        let start = c.find("error_description=\"")? + "error_description=\"".len();
        let len = c[start..].find('"')?;
        Some(c[start..start + len].to_string())
    }
}

/// The denial; fails the test if the request was allowed or the body is not JSON.
pub fn denial(r: &CheckResponse) -> Denial {
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("expected a denial, got {}", describe(r));
    };
    let body: Value = serde_json::from_str(&d.body)
        .unwrap_or_else(|e| panic!("denial body is not JSON ({e}): {:?}", d.body));
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    Denial {
        grpc_code: grpc_code(r),
        grpc_message: r
            .status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default(),
        http_status: d.status.as_ref().map_or(0, |s| s.code as u16),
        headers: d
            .headers
            .iter()
            .filter_map(|o| o.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
        error: text("error"),
        detail: text("detail"),
        request_id: text("request_id"),
        body,
    }
}

/// `(name, value)` of every header an OK answer sets, in order.
pub fn set_headers(ok: &OkHttpResponse) -> Vec<(String, String)> {
    ok.headers
        .iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

/// The headers an OK answer sets, by name; fails if a name is set twice.
pub fn set_header_map(ok: &OkHttpResponse) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in set_headers(ok) {
        assert!(
            out.insert(k.clone(), v).is_none(),
            "header {k} set twice: {ok:?}"
        );
    }
    out
}

/// `headers_to_remove` as a set; fails if a name is listed twice.
pub fn removed(ok: &OkHttpResponse) -> BTreeSet<String> {
    let set: BTreeSet<String> = ok.headers_to_remove.iter().cloned().collect();
    assert_eq!(
        set.len(),
        ok.headers_to_remove.len(),
        "a header listed twice in headers_to_remove: {:?}",
        ok.headers_to_remove
    );
    set
}

/// Every header option overwrites on every Envoy version: `append: false` explicitly,
/// `append_action: OVERWRITE_IF_EXISTS_OR_ADD`, the value in `value` (not `raw_value`),
/// and no header both set and removed.
#[allow(deprecated)]
pub fn assert_overwrites(ok: &OkHttpResponse) {
    for o in &ok.headers {
        assert_overwrite_option(o);
    }
    let set: BTreeSet<String> = set_headers(ok).into_iter().map(|(k, _)| k).collect();
    let both: Vec<String> = removed(ok)
        .into_iter()
        .filter(|h| set.contains(h))
        .collect();
    assert!(both.is_empty(), "headers both set and removed: {both:?}");
}

#[allow(deprecated)]
pub fn assert_overwrite_option(o: &HeaderValueOption) {
    let h = o
        .header
        .as_ref()
        .expect("a HeaderValueOption without header");
    assert_eq!(
        o.append,
        Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        "{}: `append` must be an explicit false",
        h.key
    );
    assert_eq!(
        o.append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        "{}: append_action must be OVERWRITE_IF_EXISTS_OR_ADD",
        h.key
    );
    assert!(
        h.raw_value.is_empty(),
        "{}: the value belongs in `value`, Envoy ignores `raw_value` here",
        h.key
    );
}

/// A field of `dynamic_metadata`.
fn metadata_kind<'r>(r: &'r CheckResponse, key: &str) -> Option<&'r Kind> {
    r.dynamic_metadata.as_ref()?.fields.get(key)?.kind.as_ref()
}

/// A string field of `dynamic_metadata`.
pub fn metadata_str(r: &CheckResponse, key: &str) -> Option<String> {
    match metadata_kind(r, key)? {
        Kind::StringValue(s) => Some(s.clone()),
        other => panic!("metadata {key} is not a string: {other:?}"),
    }
}

/// A list-of-strings field of `dynamic_metadata`.
pub fn metadata_list(r: &CheckResponse, key: &str) -> Option<Vec<String>> {
    match metadata_kind(r, key)? {
        Kind::ListValue(l) => Some(
            l.values
                .iter()
                .map(|v| match &v.kind {
                    Some(Kind::StringValue(s)) => s.clone(),
                    other => panic!("metadata {key} holds a non-string: {other:?}"),
                })
                .collect(),
        ),
        other => panic!("metadata {key} is not a list: {other:?}"),
    }
}

/// The route ward picked, from `dynamic_metadata.route`.
pub fn route_of(r: &CheckResponse) -> Option<String> {
    metadata_str(r, "route")
}

/// A one-line description of an answer, for failure messages.
pub fn describe(r: &CheckResponse) -> String {
    let status = r
        .status
        .as_ref()
        .map(|s| format!("{} {}", s.code, s.message))
        .unwrap_or_else(|| "no status".into());
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => format!(
            "allow [{status}] set={:?} remove={:?}",
            set_headers(ok),
            ok.headers_to_remove
        ),
        Some(HttpResponse::DeniedResponse(d)) => format!(
            "deny [{status}] http={:?} body={}",
            d.status.as_ref().map(|s| s.code),
            d.body
        ),
        Some(HttpResponse::ErrorResponse(e)) => format!("error [{status}] {e:?}"),
        None => format!("no http_response [{status}]"),
    }
}

/// A comparable summary of a decision: gRPC code, HTTP status (200 on allow), reason
/// (`ok` on allow), route, and the headers set and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub grpc_code: i32,
    pub http_status: u16,
    pub reason: String,
    pub route: Option<String>,
    /// The denial's body detail and challenge (empty and `None` on allow).
    pub detail: String,
    pub www_authenticate: Option<String>,
    pub set: Vec<(String, String)>,
    pub removed: BTreeSet<String>,
}

impl Summary {
    /// (gRPC code, HTTP status, reason).
    pub fn short(&self) -> (i32, u16, &str) {
        (self.grpc_code, self.http_status, self.reason.as_str())
    }

    /// The value of a header set upstream (the first, if set twice).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `x-auth-subject`, as set upstream.
    pub fn subject(&self) -> Option<&str> {
        self.header("x-auth-subject")
    }
}

pub fn summary(r: &CheckResponse) -> Summary {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => Summary {
            grpc_code: grpc_code(r),
            http_status: 200,
            reason: "ok".into(),
            route: route_of(r),
            detail: String::new(),
            www_authenticate: None,
            set: set_headers(ok),
            removed: removed(ok),
        },
        Some(HttpResponse::DeniedResponse(_)) => {
            let d = denial(r);
            Summary {
                grpc_code: d.grpc_code,
                http_status: d.http_status,
                www_authenticate: d.www_authenticate().map(str::to_string),
                detail: d.detail,
                reason: d.error,
                route: route_of(r),
                set: Vec::new(),
                removed: BTreeSet::new(),
            }
        }
        _ => panic!("neither allow nor deny: {}", describe(r)),
    }
}

// === metrics ===

/// The value of the sample `name{labels...}` in Prometheus text, where `labels` must
/// equal the sample's labels exactly (order does not matter). `None` if absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .find(|(n, ls, _)| {
            n == name
                && ls
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .eq(want.iter().map(|(k, v)| (*k, *v)))
        })
        .map(|(_, _, v)| v)
}

/// Every sample of `name` (any labels): labels and value.
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(n, _, _)| n == name)
        .map(|(_, ls, v)| (ls, v))
        .collect()
}

/// One metric family of a Prometheus text exposition.
#[derive(Debug, Default, Clone)]
pub struct Family {
    /// From `# TYPE`: counter, gauge, histogram, ...
    pub ty: String,
    /// Label names on its samples (without `le`).
    pub labels: BTreeSet<String>,
    /// The `le` bounds of a histogram's buckets, as exposed.
    pub le: BTreeSet<String>,
    /// Label values seen, by label name.
    pub values: BTreeMap<String, BTreeSet<String>>,
}

/// Every family declared by a `# TYPE` line, with what its samples carry. A histogram's
/// `_bucket`, `_sum` and `_count` samples count for the histogram. Fails the test on a
/// sample line that does not parse.
pub fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, ty) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            out.entry(name.to_string()).or_default().ty = ty.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (sample, labels, _) =
            parse_sample(line).unwrap_or_else(|| panic!("not a Prometheus sample: {line:?}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                sample
                    .strip_suffix(s)
                    .filter(|f| out.get(*f).is_some_and(|f| f.ty == "histogram"))
            })
            .unwrap_or(&sample)
            .to_string();
        let Some(f) = out.get_mut(&family) else {
            continue;
        };
        for (k, v) in labels {
            if k == "le" {
                f.le.insert(v);
            } else {
                f.labels.insert(k.clone());
                f.values.entry(k).or_default().insert(v);
            }
        }
    }
    out
}

fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            let mut s = body;
            while !s.is_empty() {
                let (k, after) = s.split_once("=\"")?;
                let mut val = String::new();
                let mut chars = after.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(match n {
                                    'n' => '\n',
                                    other => other,
                                });
                            }
                        }
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => val.push(c),
                    }
                }
                let end = end?;
                labels.insert(k.trim_start_matches(',').to_string(), val);
                s = after[end + 1..].trim_start_matches(',');
            }
            (name.to_string(), labels)
        }
    };
    Some((name, labels, value))
}
