//! ward in-process: [`Ward`] runs `ward::Server` on listeners bound to
//! `127.0.0.1:0` (gRPC and admin; plain HTTP too with [`WardBuilder::http`]) before the
//! server is spawned (so a client can connect at once, no
//! sleeps), from a YAML string compiled with `ward::config::load_str` or from a config
//! file read with `ward::config::load_file` (optionally watched for reloads, as `ward
//! serve` does). Files the config names (`jwks_file`, TLS files, ...) go in a temporary
//! directory that is the config's base directory. [`WardBuilder`] also compiles a config
//! without serving it: its errors ([`WardBuilder::config_error`]) or an in-process
//! `ward::engine::Engine` ([`WardBuilder::engine`]). [`WardBuilder::clock`] runs it on a
//! manual clock, so a test moves time instead of waiting for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use ward::ReloadError;
use ward::clock::{Clock, ManualClock};
use ward::config::Config;
use ward::server::WatchTicks;

use super::{Summary, code, describe, eventually, grpc_code, metric, summary};

/// The unix time (2033-05-18) at which [`manual_clock`] starts: fixed, so a token minted
/// for a ward on that clock (`exp: CLOCK_START + 60`) means the same on every run,
/// whatever the wall clock says.
pub const CLOCK_START: u64 = 2_000_000_000;

/// A manual clock at [`CLOCK_START`] for [`WardBuilder::clock`], and the hand that moves
/// it.
pub fn manual_clock() -> (Clock, ManualClock) {
    Clock::manual(Duration::from_secs(CLOCK_START))
}

/// How long a test waits for a file watcher to tick.
const TICK_PATIENCE: Duration = Duration::from_secs(10);

/// A running ward: gRPC (`Authorization/Check`, health, reflection) and admin HTTP, both
/// on 127.0.0.1 with ephemeral ports. Dropping it signals shutdown without waiting;
/// [`Ward::shutdown`] signals and waits for `run` to return.
pub struct Ward {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The plain-HTTP authorization listener, with [`WardBuilder::http`].
    http_addr: Option<SocketAddr>,
    /// The grace period `run` was given.
    pub grace: Duration,
    /// What every handler shares; [`Ward::reload`] swaps its engine.
    policy: ward::Ward,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    client: Option<AuthorizationClient<Channel>>,
    /// With [`WardBuilder::watch`]: the line that plays SIGHUP to the reload watcher.
    watcher: Option<mpsc::Sender<()>>,
    /// How many ticks the config and TLS file watchers have finished.
    ticks: WatchTicks,
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
    /// The clock ward judges time by (the system's unless a test gives one).
    clock: Option<Clock>,
    /// `Some(interval)` runs the reload watcher (`None` inside: on SIGHUP only).
    watch: Option<Option<Duration>>,
    /// The admin listener, when the test bound it before writing the config.
    admin: Option<std::net::TcpListener>,
    /// Serve plain-HTTP authorization too.
    http: bool,
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
            clock: None,
            admin: None,
            http: false,
        }
    }

    /// Also serves plain-HTTP authorization (`ward::Server::http`) on an ephemeral port:
    /// [`Ward::http_addr`].
    pub fn http(mut self) -> Self {
        self.http = true;
        self
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

    /// Runs ward on `clock` (from `ward::clock::Clock::manual`): tokens, caches, key
    /// refreshes and the introspection breaker then see time move only when the test
    /// advances it.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Runs the server's reload watcher on the config file (only with
    /// [`Ward::from_file`]): every `interval`, and on every [`Ward::sighup`]; with
    /// `None`, on SIGHUP only.
    pub fn watch(mut self, interval: Option<Duration>) -> Self {
        self.watch = Some(interval);
        self
    }

    /// Serves the admin listener on `listener` (from [`bind_local`]) instead of a port
    /// bound at start: for a config that names its own admin address, as
    /// `signing.issuer` does.
    pub fn admin_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.admin = Some(listener);
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
    /// what `ward::layer` embeds), on [`WardBuilder::clock`] if given; a config error
    /// fails the test.
    pub fn engine(&self) -> ward::engine::Engine {
        let config = self
            .load()
            .unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        let clock = self.clock.clone().unwrap_or_else(Clock::system);
        ward::engine::Engine::with_clock(config, Arc::new(ward::metrics::Metrics::new()), clock)
    }

    /// Loads the config and starts the server (`ward::Server`, as `ward serve` runs it); a
    /// config error is returned as its text.
    pub async fn try_start(self) -> Result<Ward, String> {
        let env = Arc::new(self.env);
        let clock = self.clock.unwrap_or_else(Clock::system);
        let config_file = match &self.source {
            Source::File(path) => Some(path.clone()),
            Source::Text(_) => None,
        };
        let policy = match &self.source {
            Source::Text(yaml) => {
                let config = ward::config::load_str(yaml, self.dir.path(), &*env)
                    .map_err(|e| e.to_string())?;
                ward::Ward::with_clock(config, clock)
            }
            Source::File(path) => ward::Ward::from_file_with(path, env.clone(), clock),
        }
        .map_err(|e| e.to_string())?;
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind grpc: {e}"))?;
        let admin = match self.admin {
            Some(l) => tokio::net::TcpListener::from_std(l),
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await,
        }
        .map_err(|e| format!("bind admin: {e}"))?;
        let grpc_addr = grpc.local_addr().map_err(|e| e.to_string())?;
        let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
        let mut server = ward::Server::new(policy.clone(), grpc, admin).grace(self.grace);
        let mut http_addr = None;
        if self.http {
            let http = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("bind http: {e}"))?;
            http_addr = Some(http.local_addr().map_err(|e| e.to_string())?);
            server = server.http(http);
        }
        let ticks = server.watch_ticks();
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
            http_addr,
            grace: self.grace,
            policy,
            stop: Some(stop),
            task: Some(task),
            client: Some(AuthorizationClient::new(channel)),
            watcher,
            ticks,
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

    /// The plain-HTTP authorization listener (started with [`WardBuilder::http`]).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
            .expect("ward was started without its HTTP listener: use .http()")
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

    /// Waits until the config file watcher ([`WardBuilder::watch`] with an interval) has
    /// looked at its files `n` times since this call: `n` whole ticks that began after
    /// it, so whatever was written before the call has been seen `n` times.
    pub async fn config_watch_ticks(&self, n: u64) {
        wait_ticks("the config file watcher", &self.ticks.config, n).await
    }

    /// Like [`Ward::config_watch_ticks`], for the TLS certificate watcher
    /// (`server.tls` with `server.watch_interval`).
    pub async fn tls_watch_ticks(&self, n: u64) {
        wait_ticks("the TLS file watcher", &self.ticks.tls, n).await
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

/// Waits for `n` ticks of `ticks` that began after the call: the tick under way when it
/// is made may have read its files before, so it does not count.
async fn wait_ticks(watcher: &str, ticks: &ward::reload::Ticks, n: u64) {
    let mut count = ticks.subscribe();
    let start = *count.borrow_and_update();
    let waited = tokio::time::timeout(TICK_PATIENCE, count.wait_for(|c| *c > start + n))
        .await
        .map(|r| r.is_ok());
    match waited {
        Ok(true) => {}
        Ok(false) => panic!("{watcher} is gone"),
        Err(_) => panic!(
            "{watcher}: {} ticks began in {TICK_PATIENCE:?}, not {n}",
            count.borrow().saturating_sub(start + 1)
        ),
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

/// A listener on an ephemeral port of 127.0.0.1, bound now (non-blocking, as tokio takes
/// it): its address can go into a config before the server that serves it starts.
pub fn bind_local() -> std::net::TcpListener {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.set_nonblocking(true).expect("a non-blocking listener");
    l
}

/// An address on 127.0.0.1 where nothing listens: an ephemeral port, bound and released,
/// so a connection to it is refused at once.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Ward {
    /// `GET /status` with `Accept: accept`: status, headers (lower-case names) and body.
    pub async fn status_as(&self, accept: &str) -> (u16, Vec<(String, String)>, String) {
        let r = reqwest::Client::new()
            .get(format!("http://{}/status", self.admin_addr))
            .header("accept", accept)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /status on the admin listener: {e}"));
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), v)
            })
            .collect();
        (status, headers, r.text().await.expect("/status body"))
    }

    /// `GET /status` as JSON (what the admin listener answers a client that does not
    /// ask for HTML); fails the test on another status or a body that is not JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (status, _, body) = self.status_as("application/json").await;
        assert_eq!(status, 200, "/status answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// The hash of the config ward runs now (`Config::hash`).
    pub fn config_hash(&self) -> String {
        self.policy.config().hash().to_string()
    }
}
