//! End-to-end load benchmark: ward's gRPC port against a do-nothing ext_authz server,
//! both driven by the same load generator in the same invocation, alternating.
//!
//! - The servers run as child processes pinned to CPU 0 (`taskset -c 0`): ward is the
//!   real `ward serve` binary with its default settings (JSON logs to a file, metrics,
//!   cache bound 100 000); the baseline is this binary re-executed as a tonic server that
//!   answers every Check with OK and nothing else. The load generator pins itself to
//!   CPU 1 and runs on one thread (a current-thread Tokio runtime).
//! - Load: tonic gRPC clients over several HTTP/2 connections; closed loop at
//!   a fixed concurrency, one request in flight, and an open loop at a fixed rate
//!   (latency counted from each request's scheduled send time, so a stalled server is
//!   not hidden by coordinated omission). Latencies go to HdrHistograms.
//! - Workloads: (a) one valid RS256 token repeated (cache hit), (b) distinct valid RS256
//!   tokens (cache miss), (c) distinct ES256 tokens, (d) 50/50 valid (repeated) and
//!   invalid (bad signature) RS256 tokens, (e) an anonymous route.
//! - Every answer is checked (allowed when it should be, 401 when it should be); any
//!   error fails the run with a non-zero exit.
//! - The load generator must cost the same whatever server answers: requests are
//!   encoded once, before the runs, and an answer is decoded only as far as the check
//!   needs (its gRPC status, which `http_response` it holds, the denial's HTTP status).
//!   Decoding ward's whole answer (identity headers and metadata, ~440 bytes, against the
//!   baseline's empty OK) kept the generator's one CPU saturated on ward's runs only.
//!
//! `cargo bench --bench e2e` runs the full benchmark (a few minutes; it first mints
//! 100 000 RS256 and 100 000 ES256 tokens). `cargo bench --bench e2e -- --quick` runs a
//! few hundred requests per workload without pinning: the CI smoke test. Other options:
//! `--reps N --duration S --concurrency N --connections N --rate N --tokens N --no-pin
//! --workloads a,e --ward-bin PATH` (another ward build, for before/after numbers).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status;
use hdrhistogram::Histogram;
use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use ward::authn::jwt::Alg;

use common::{AUD, ISS};

const BASELINE_ENV: &str = "WARD_BENCH_BASELINE_ADDR";

// === options ===

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    pin: bool,
    reps: usize,
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    connections: usize,
    rate: u64,
    tokens: usize,
    single_duration: Duration,
    /// Workload keys to run (`a`..`e`); all when empty.
    only: Vec<String>,
    /// The ward binary to serve with (before/after comparisons); this build's by default.
    ward_bin: PathBuf,
}

impl Opts {
    fn parse() -> Result<Self, String> {
        let mut o = Opts {
            quick: false,
            pin: true,
            reps: 3,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            concurrency: 64,
            connections: 2,
            rate: 20_000,
            tokens: 100_000,
            single_duration: Duration::from_secs(3),
            only: Vec::new(),
            ward_bin: PathBuf::from(env!("CARGO_BIN_EXE_ward")),
        };
        let mut args = std::env::args().skip(1);
        let num = |v: Option<String>, name: &str| -> Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} takes a number"))
        };
        let mut explicit_tokens = None;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--no-pin" => o.pin = false,
                "--bench" => {} // cargo bench passes it
                "--reps" => o.reps = num(args.next(), "--reps")?.max(1) as usize,
                "--duration" => o.duration = Duration::from_secs(num(args.next(), "--duration")?),
                "--concurrency" => {
                    o.concurrency = num(args.next(), "--concurrency")?.max(1) as usize
                }
                "--connections" => {
                    o.connections = num(args.next(), "--connections")?.max(1) as usize
                }
                "--rate" => o.rate = num(args.next(), "--rate")?.max(1),
                "--tokens" => explicit_tokens = Some(num(args.next(), "--tokens")? as usize),
                "--ward-bin" => {
                    o.ward_bin = args.next().ok_or("--ward-bin takes a path")?.into();
                }
                "--workloads" => {
                    o.only = args
                        .next()
                        .ok_or("--workloads takes a list such as a,e")?
                        .split(',')
                        .map(str::to_owned)
                        .collect()
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if o.quick {
            o.pin = false;
            o.reps = 1;
            o.tokens = 300;
            o.rate = 1_000;
            o.concurrency = o.concurrency.min(16);
        }
        if let Some(t) = explicit_tokens {
            o.tokens = t.max(10);
        }
        Ok(o)
    }
}

// === main ===

fn main() -> ExitCode {
    if let Ok(addr) = std::env::var(BASELINE_ENV) {
        return baseline_server(&addr);
    }
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::from(2);
        }
    };
    match drive(&opts) {
        Ok(0) => {
            println!("e2e: OK (no errors)");
            ExitCode::SUCCESS
        }
        Ok(errors) => {
            println!("e2e: FAILED ({errors} errors)");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("e2e: FAILED ({e})");
            ExitCode::FAILURE
        }
    }
}

// === the baseline server ===

/// An ext_authz server that does nothing: every Check is OK with an empty OkHttpResponse.
struct Baseline;

#[tonic::async_trait]
impl Authorization for Baseline {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(Status {
                code: 0,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        }))
    }
}

/// Served like ward serves: a default multi-thread runtime (one worker per CPU it may
/// run on), TCP_NODELAY, tonic's default HTTP/2 settings.
fn baseline_server(addr: &str) -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r: Result<(), Box<dyn std::error::Error>> = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(Baseline))
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

// === servers under test ===

/// A child process we started; killed (by its own pid) when dropped.
struct Server {
    name: &'static str,
    child: Child,
    grpc: SocketAddr,
    admin: Option<SocketAddr>,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (VmRSS) in KiB.
    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Times a thread of the server went to sleep (voluntary context switches): near 0
    /// per check when the server is the bottleneck, 1 when it waits for every request.
    fn sleeps(&self) -> u64 {
        let mut n = 0;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) {
            for t in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                    n += s
                        .lines()
                        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        n
    }

    /// CPU time used by every thread of the process so far.
    fn cpu(&self) -> Duration {
        process_cpu(&self.pid().to_string())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
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

fn free_port() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

/// `cmd`, pinned to CPU 0 when pinning.
fn pinned(pin: bool, program: &Path) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn spawn_ward(opts: &Opts, dir: &Path) -> Result<Server, String> {
    let grpc = free_port()?;
    let admin = free_port()?;
    let log = dir.join("ward.log");
    let logfile = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = pinned(opts.pin, &opts.ward_bin)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("ward.yaml"))
        .arg("--grpc-addr")
        .arg(grpc.to_string())
        .arg("--admin-addr")
        .arg(admin.to_string())
        .arg("--log-format")
        .arg("json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .map_err(|e| format!("starting ward: {e}"))?;
    Ok(Server {
        name: "ward",
        child,
        grpc,
        admin: Some(admin),
        log,
    })
}

fn spawn_baseline(opts: &Opts, dir: &Path) -> Result<Server, String> {
    let grpc = free_port()?;
    let log = dir.join("baseline.log");
    let logfile = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = pinned(opts.pin, &me)
        .env(BASELINE_ENV, grpc.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .map_err(|e| format!("starting the baseline: {e}"))?;
    Ok(Server {
        name: "baseline",
        child,
        grpc,
        admin: None,
        log,
    })
}

async fn connect(server: &Server, n: usize) -> Result<Vec<Client>, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut clients = Vec::with_capacity(n);
    while clients.len() < n {
        let ep = Endpoint::from_shared(format!("http://{}", server.grpc))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true);
        match ep.connect().await {
            Ok(ch) => clients.push(Client(tonic::client::Grpc::new(ch))),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "{} never accepted a connection: {e}\n{}",
                    server.name,
                    server.log_tail()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Ok(clients)
}

async fn wait_ready(server: &Server) -> Result<(), String> {
    let Some(admin) = server.admin else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("http://{admin}/readyz")).await
            && r.status().as_u16() == 200
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} never became ready\n{}",
                server.name,
                server.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// ward's verified-token cache counters (hits, misses), from /metrics.
async fn cache_counters(server: &Server) -> (u64, u64) {
    let Some(admin) = server.admin else {
        return (0, 0);
    };
    let Ok(r) = reqwest::get(format!("http://{admin}/metrics")).await else {
        return (0, 0);
    };
    let text = r.text().await.unwrap_or_default();
    let sum = |result: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with("ward_token_cache_requests_total{"))
            .filter(|l| l.contains(&format!("result=\"{result}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (sum("hit"), sum("miss"))
}

// === the client ===

/// A gRPC client of `Authorization/Check` that sends pre-encoded requests and reads only
/// the parts of the answer that [`judge`] checks.
#[derive(Clone)]
struct Client(tonic::client::Grpc<Channel>);

impl Client {
    async fn check(&mut self, req: Bytes) -> Result<Verdict, tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/envoy.service.auth.v3.Authorization/Check",
        );
        let resp = self.0.unary(tonic::Request::new(req), path, Raw).await?;
        Ok(resp.into_inner())
    }
}

/// The members of a `CheckResponse` the load generator checks, by their field numbers;
/// prost skips the others (headers, metadata) without decoding them.
#[derive(Clone, PartialEq, prost::Message)]
struct Verdict {
    /// `status` (google.rpc.Status)
    #[prost(message, optional, tag = "1")]
    status: Option<Code>,
    /// `denied_response`
    #[prost(message, optional, tag = "2")]
    denied: Option<Denied>,
    /// `ok_response`, present or not (its content is not read)
    #[prost(bytes = "bytes", optional, tag = "3")]
    ok: Option<Bytes>,
}

/// `google.rpc.Status.code`, and `HttpStatus.code` in a denial.
#[derive(Clone, PartialEq, prost::Message)]
struct Code {
    #[prost(int32, tag = "1")]
    code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Denied {
    #[prost(message, optional, tag = "1")]
    status: Option<Code>,
    #[prost(string, tag = "3")]
    body: String,
}

/// Sends bytes as they are, decodes a [`Verdict`].
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Verdict;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Verdict;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Verdict>, tonic::Status> {
        Verdict::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable answer: {e}")))
    }
}

// === workloads ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny401,
}

struct Workload {
    key: &'static str,
    title: &'static str,
    /// Each request, encoded, with ward's expected answer; request `i` uses entry
    /// `i % len`.
    creds: Arc<Vec<(Bytes, Expect)>>,
    /// Every request carries a token not sent before: runs consume the list in order
    /// (ward's cursor persists across repetitions) and stop when their share is used.
    distinct: bool,
}

fn ward_yaml() -> String {
    format!(
        r#"
providers:
  - name: idp
    jwt:
      issuer: "{ISS}"
      audiences: [{AUD}]
      jwks_file: jwks.json
      algorithms: [RS256, ES256]
      claims: {{ roles: roles, scopes: scope }}
      headers: {{ email: x-auth-email }}
routes:
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
  - name: orders
    match: {{ path: "/api/orders/**", methods: [GET, POST], hosts: ["api.example.com"] }}
    providers: [idp]
    require:
      all:
        - roles_any: [orders-reader, admin]
        - claim: {{ name: tenant, equals: acme }}
"#
    )
}

/// The same token with one signature character changed: well-formed, known kid, bad
/// signature (ward has to run the RSA verification to refuse it).
fn tamper(token: &str) -> String {
    let sig_at = token.rfind('.').expect("three parts") + 1;
    let mut b = token.as_bytes().to_vec();
    let i = sig_at + (b.len() - sig_at) / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).expect("ascii")
}

fn bearer(t: &str) -> Option<String> {
    Some(format!("Bearer {t}"))
}

// === measurement ===

#[derive(Clone)]
struct Stats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    dropped: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram"),
            ok: 0,
            errors: 0,
            first_error: None,
            dropped: 0,
        }
    }

    fn add(&mut self, o: &Stats) {
        self.hist.add(&o.hist).expect("same bounds");
        self.ok += o.ok;
        self.errors += o.errors;
        self.dropped += o.dropped;
        if self.first_error.is_none() {
            self.first_error = o.first_error.clone();
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

struct RunResult {
    stats: Stats,
    elapsed: Duration,
    server_cpu: Duration,
    /// CPU time used on the machine by neither server under test nor this process
    /// during the run (other jobs: the measurement's noise).
    foreign_cpu: Duration,
    /// How many times the server went to sleep during the run.
    server_sleeps: u64,
    /// CPU time of this process (the load generator) during the run.
    client_cpu: Duration,
}

impl RunResult {
    fn rate(&self) -> f64 {
        self.stats.hist.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn p(&self, q: f64) -> f64 {
        self.stats.hist.value_at_quantile(q) as f64 / 1000.0
    }
    fn cpu_per_check_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.stats.hist.len().max(1) as f64
    }
    fn per_check(&self, n: u64) -> f64 {
        n as f64 / self.stats.hist.len().max(1) as f64
    }
    /// The load generator's CPU time as a share of its one CPU: near 100 %, it and not
    /// the server may be what limits the rate.
    fn client_share(&self) -> f64 {
        self.client_cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Foreign load as a share of one CPU.
    fn foreign_share(&self) -> f64 {
        self.foreign_cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// CPU time spent by every thread of process `pid` so far.
fn process_cpu(pid: &str) -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(ns)
}

/// Busy CPU time of the whole machine (all CPUs: user, system and stolen time).
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .enumerate()
                // user nice system [idle iowait irq softirq] steal [guest guest_nice]:
                // interrupt time is the network stack working for the servers.
                .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 7))
                .filter_map(|(_, v)| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Everything the machine did that was neither a server, nor this process, nor the
/// kernel's network threads (`ksoftirqd`, which carry the servers' traffic too).
struct Noise {
    busy: Duration,
    ours: Duration,
}

fn ksoftirqd_cpu() -> Duration {
    let mut total = Duration::ZERO;
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            if comm.starts_with("ksoftirqd") {
                total += process_cpu(pid);
            }
        }
    }
    total
}

impl Noise {
    fn ours(servers: &[&Server]) -> Duration {
        servers.iter().map(|s| s.cpu()).sum::<Duration>() + process_cpu("self") + ksoftirqd_cpu()
    }

    fn start(servers: &[&Server]) -> Self {
        Self {
            busy: machine_busy(),
            ours: Self::ours(servers),
        }
    }

    fn foreign(&self, servers: &[&Server]) -> Duration {
        let busy = machine_busy().saturating_sub(self.busy);
        let ours = Self::ours(servers).saturating_sub(self.ours);
        busy.saturating_sub(ours)
    }
}

fn judge(resp: Result<Verdict, tonic::Status>, expect: Expect) -> Result<(), String> {
    let r = resp.map_err(|s| format!("rpc error: {s}"))?;
    let code = r.status.as_ref().map_or(0, |s| s.code);
    match (&r.denied, &r.ok, expect) {
        (None, Some(_), Expect::Allow) if code == 0 => Ok(()),
        (Some(d), None, Expect::Deny401)
            if d.status.as_ref().is_some_and(|s| s.code == 401) && code == 16 =>
        {
            Ok(())
        }
        (denied, ok, _) => Err(format!(
            "expected {expect:?}, got code {code} {}",
            match (denied, ok) {
                (Some(d), _) => format!("denied: {}", d.body),
                (None, Some(_)) => "ok".into(),
                (None, None) => "no http_response".into(),
            }
        )),
    }
}

/// The `authorization` header value (None: no credential) set in `template`, each
/// request encoded once, before any run.
fn encoded(
    template: &CheckRequest,
    creds: impl IntoIterator<Item = (Option<String>, Expect)>,
) -> Arc<Vec<(Bytes, Expect)>> {
    let list = creds
        .into_iter()
        .map(|(cred, expect)| {
            let mut req = template.clone();
            if let Some(c) = cred {
                common::set_authorization(&mut req, c);
            }
            (Bytes::from(req.encode_to_vec()), expect)
        })
        .collect();
    Arc::new(list)
}

fn build(w: &Workload, i: usize) -> (Bytes, Expect) {
    let (req, expect) = &w.creds[i % w.creds.len()];
    (req.clone(), *expect)
}

/// Closed loop: `concurrency` workers, each sending its next request when the previous
/// answers, until `duration` passes or the cursor reaches `limit`.
async fn closed_loop(
    clients: &[Client],
    w: &Arc<Workload>,
    cursor: &Arc<AtomicUsize>,
    limit: usize,
    concurrency: usize,
    duration: Duration,
    is_baseline: bool,
) -> (Stats, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for k in 0..concurrency {
        let mut client = clients[k % clients.len()].clone();
        let w = w.clone();
        let cursor = cursor.clone();
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new();
            while Instant::now() < deadline {
                let i = cursor.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let (req, expect) = build(&w, i);
                let expect = if is_baseline { Expect::Allow } else { expect };
                let t0 = Instant::now();
                let resp = client.check(req).await;
                let lat = t0.elapsed();
                match judge(resp, expect) {
                    Ok(()) => st.ok += 1,
                    Err(e) => st.error(e),
                }
                st.hist.saturating_record(lat.as_nanos() as u64);
            }
            st
        }));
    }
    let mut all = Stats::new();
    for t in tasks {
        all.add(&t.await.expect("worker"));
    }
    (all, start.elapsed())
}

/// Open loop: request `i` is due at `start + i / rate`, sent then whatever the server's
/// state, its latency counted from that due time. More than `max_outstanding` requests
/// in flight are dropped (and counted) rather than queued without bound.
async fn open_loop(
    clients: &[Client],
    w: &Arc<Workload>,
    cursor: &Arc<AtomicUsize>,
    rate: u64,
    duration: Duration,
    is_baseline: bool,
) -> (Stats, Duration) {
    let max_outstanding = 4096usize;
    let period_ns = 1_000_000_000 / rate;
    let total = (duration.as_secs_f64() * rate as f64) as u64;
    let shared = Arc::new(Mutex::new(Stats::new()));
    let outstanding = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let mut dropped = 0;
    let mut n = 0u64;
    while n < total {
        let now = Instant::now();
        while n < total && start + Duration::from_nanos(period_ns * n) <= now {
            let due = start + Duration::from_nanos(period_ns * n);
            n += 1;
            if outstanding.load(Ordering::Relaxed) >= max_outstanding {
                dropped += 1;
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            let (req, expect) = build(w, i);
            let expect = if is_baseline { Expect::Allow } else { expect };
            let mut client = clients[i % clients.len()].clone();
            let (shared, outstanding, done) = (shared.clone(), outstanding.clone(), done.clone());
            tokio::spawn(async move {
                let resp = client.check(req).await;
                let lat = due.elapsed();
                let verdict = judge(resp, expect);
                {
                    let mut st = shared.lock().expect("stats");
                    match verdict {
                        Ok(()) => st.ok += 1,
                        Err(e) => st.error(e),
                    }
                    st.hist.saturating_record(lat.as_nanos() as u64);
                }
                if outstanding.fetch_sub(1, Ordering::Relaxed) == 1 {
                    done.notify_one();
                }
            });
        }
        tokio::task::yield_now().await;
    }
    while outstanding.load(Ordering::Relaxed) > 0 {
        let _ = tokio::time::timeout(Duration::from_millis(10), done.notified()).await;
    }
    let elapsed = start.elapsed();
    let mut st = shared.lock().expect("stats").clone();
    st.dropped = dropped;
    (st, elapsed)
}

enum Mode {
    Closed { concurrency: usize },
    Open { rate: u64 },
}

struct Target<'a> {
    server: &'a Server,
    /// Both servers, for the noise measurement.
    all: [&'a Server; 2],
    clients: Vec<Client>,
    is_baseline: bool,
}

/// One measured run (after an unmeasured warm-up) against one server. Distinct-token
/// workloads use at most their share of the token list (list / reps) per run.
async fn run(
    opts: &Opts,
    t: &Target<'_>,
    w: &Arc<Workload>,
    cursor: &Arc<AtomicUsize>,
    mode: &Mode,
) -> RunResult {
    const UNBOUNDED: usize = usize::MAX / 4;
    let share = (w.creds.len() / opts.reps).max(2);
    let (warm_n, meas_n) = match (opts.quick, w.distinct) {
        (true, false) => (10, 300),
        (true, true) => (
            (share / 20).clamp(1, 10),
            (share - (share / 20).clamp(1, 10)).min(300),
        ),
        (false, true) => ((share / 20).max(1), share - (share / 20).max(1)),
        (false, false) => (UNBOUNDED, UNBOUNDED),
    };
    let (warm_dur, meas_dur) = if opts.quick {
        (Duration::from_secs(2), Duration::from_secs(10))
    } else {
        (opts.warmup, opts.duration)
    };
    let warm_conc = match mode {
        Mode::Closed { concurrency } => *concurrency,
        Mode::Open { .. } => opts.concurrency,
    };

    // Warm-up (connections, allocator, CPU caches): answers checked, not timed.
    let warm_limit = cursor.load(Ordering::Relaxed).saturating_add(warm_n);
    let (warm, _) = closed_loop(
        &t.clients,
        w,
        cursor,
        warm_limit,
        warm_conc,
        warm_dur,
        t.is_baseline,
    )
    .await;
    // Workers that found the list used up still advanced the cursor: take that back.
    cursor.fetch_min(warm_limit, Ordering::Relaxed);

    let limit = cursor.load(Ordering::Relaxed).saturating_add(meas_n);
    let cpu0 = t.server.cpu();
    let sleeps0 = t.server.sleeps();
    let client0 = process_cpu("self");
    let noise = Noise::start(&t.all);
    let (mut stats, elapsed) = match mode {
        Mode::Closed { concurrency } => {
            closed_loop(
                &t.clients,
                w,
                cursor,
                limit,
                *concurrency,
                meas_dur,
                t.is_baseline,
            )
            .await
        }
        Mode::Open { rate } => {
            let d = if opts.quick {
                Duration::from_millis(200)
            } else {
                meas_dur
            };
            open_loop(&t.clients, w, cursor, *rate, d, t.is_baseline).await
        }
    };
    let server_cpu = t.server.cpu().saturating_sub(cpu0);
    let foreign_cpu = noise.foreign(&t.all);
    let server_sleeps = t.server.sleeps().saturating_sub(sleeps0);
    let client_cpu = process_cpu("self").saturating_sub(client0);
    cursor.fetch_min(limit, Ordering::Relaxed);
    stats.errors += warm.errors;
    if stats.first_error.is_none() {
        stats.first_error = warm.first_error;
    }
    RunResult {
        stats,
        elapsed,
        server_cpu,
        foreign_cpu,
        server_sleeps,
        client_cpu,
    }
}

// === reporting ===

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[derive(Default)]
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu: f64,
    sleeps: f64,
    /// The load generator's median CPU share.
    client: f64,
    rates: Vec<f64>,
    dropped: u64,
    /// The largest foreign load seen in one of the runs, as a share of one CPU (none
    /// when the runs were too short for /proc/stat's 10 ms ticks).
    noise: Option<f64>,
}

fn summarize(runs: &[RunResult]) -> Summary {
    Summary {
        rate: median(runs.iter().map(RunResult::rate).collect()),
        p50: median(runs.iter().map(|r| r.p(0.5)).collect()),
        p99: median(runs.iter().map(|r| r.p(0.99)).collect()),
        p999: median(runs.iter().map(|r| r.p(0.999)).collect()),
        cpu: median(runs.iter().map(RunResult::cpu_per_check_us).collect()),
        sleeps: median(runs.iter().map(|r| r.per_check(r.server_sleeps)).collect()),
        client: median(runs.iter().map(RunResult::client_share).collect()),
        rates: runs.iter().map(RunResult::rate).collect(),
        dropped: runs.iter().map(|r| r.stats.dropped).sum(),
        noise: runs
            .iter()
            .filter(|r| r.elapsed >= Duration::from_secs(1))
            .map(RunResult::foreign_share)
            .reduce(f64::max),
    }
}

struct Row {
    workload: String,
    mode: String,
    base: Summary,
    ward: Summary,
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| workload | mode | server | checks/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/check | server sleeps/check | load gen busy | runs (checks/s) | other load |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for r in rows {
        for (name, s) in [("baseline", &r.base), ("ward", &r.ward)] {
            let runs: Vec<String> = s.rates.iter().map(|x| format!("{x:.0}")).collect();
            let dropped = if s.dropped > 0 {
                format!(" ({} dropped)", s.dropped)
            } else {
                String::new()
            };
            println!(
                "| {} | {} | {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.2} | {:.0}% | {}{dropped} | {} |",
                r.workload,
                r.mode,
                s.rate,
                s.p50,
                s.p99,
                s.p999,
                s.cpu,
                s.sleeps,
                s.client * 100.0,
                runs.join(", "),
                s.noise
                    .map_or_else(|| "-".to_string(), |n| format!("{:.0}%", n * 100.0))
            );
        }
        println!(
            "| {} | {} | **ward/baseline** | **{:.2}** | {:.2} | **{:.2}** | {:.2} | {:.2} | | | | |",
            r.workload,
            r.mode,
            r.ward.rate / r.base.rate,
            r.ward.p50 / r.base.p50,
            r.ward.p99 / r.base.p99,
            r.ward.p999 / r.base.p999,
            r.ward.cpu / r.base.cpu,
        );
    }
}

// === the driver ===

fn pin_self(cpu: usize) -> Result<(), String> {
    let st = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("taskset exited with {st}"))
    }
}

fn drive(opts: &Opts) -> Result<u64, String> {
    let t_all = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pin = opts.pin;
    if pin && (cpus < 2 || Command::new("taskset").arg("-V").output().is_err()) {
        eprintln!("e2e: fewer than 2 CPUs or no taskset: not pinning");
        pin = false;
    }
    let opts = &Opts {
        pin,
        ..opts.clone()
    };
    println!(
        "e2e: mode={} pin={} reps={} duration={:?} concurrency={} connections={} rate={}/s tokens={}",
        if opts.quick { "quick" } else { "full" },
        opts.pin,
        opts.reps,
        opts.duration,
        opts.concurrency,
        opts.connections,
        opts.rate,
        opts.tokens
    );

    // Keys, config, tokens: all before anything is measured (and before pinning, so
    // minting uses every core).
    let rs = common::key(Alg::RS256);
    let es = common::key(Alg::ES256);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("jwks.json"),
        common::jwks_of(&[&rs, &es]).to_string(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("ward.yaml"), ward_yaml()).map_err(|e| e.to_string())?;

    let want = |k: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == k);
    let t = Instant::now();
    let rs_tokens = if want("b") {
        common::mint_many(&rs, ISS, AUD, 1_000_000, opts.tokens)
    } else {
        Vec::new()
    };
    let rs_mint = t.elapsed();
    let t = Instant::now();
    let es_tokens = if want("c") {
        common::mint_many(&es, ISS, AUD, 2_000_000, opts.tokens)
    } else {
        Vec::new()
    };
    let es_mint = t.elapsed();
    let invalid: Vec<String> = if want("d") {
        common::mint_many(&rs, ISS, AUD, 3_000_000, 1000.min(opts.tokens))
            .iter()
            .map(|t| tamper(t))
            .collect()
    } else {
        Vec::new()
    };
    let one = rs
        .sign(&common::claims(ISS, AUD, 42))
        .map_err(|e| e.to_string())?;
    println!(
        "e2e: minted {} RS256 tokens in {:.1}s ({:.0}/s), {} ES256 in {:.1}s; an RS256 token is {} bytes, an ES256 one {}",
        rs_tokens.len(),
        rs_mint.as_secs_f64(),
        rs_tokens.len() as f64 / rs_mint.as_secs_f64().max(1e-9),
        es_tokens.len(),
        es_mint.as_secs_f64(),
        one.len(),
        es.sign(&common::claims(ISS, AUD, 42))
            .map_or(0, |t| t.len()),
    );

    let api = common::envoy_request("/api/orders/42/items?expand=lines");
    let public = common::envoy_request("/public/docs/index.html");
    let mut mixed = Vec::with_capacity(2 * invalid.len());
    for bad in &invalid {
        mixed.push((bearer(&one), Expect::Allow));
        mixed.push((bearer(bad), Expect::Deny401));
    }
    let workloads: Vec<Arc<Workload>> = vec![
        Workload {
            key: "a",
            title: "(a) one RS256 token, cache hit",
            creds: encoded(&api, [(bearer(&one), Expect::Allow)]),
            distinct: false,
        },
        Workload {
            key: "b",
            title: "(b) distinct RS256 tokens, cache miss",
            creds: encoded(&api, rs_tokens.iter().map(|t| (bearer(t), Expect::Allow))),
            distinct: true,
        },
        Workload {
            key: "c",
            title: "(c) distinct ES256 tokens, cache miss",
            creds: encoded(&api, es_tokens.iter().map(|t| (bearer(t), Expect::Allow))),
            distinct: true,
        },
        Workload {
            key: "d",
            title: "(d) 50% valid (cached) / 50% bad-signature RS256",
            creds: encoded(&api, mixed),
            distinct: false,
        },
        Workload {
            key: "e",
            title: "(e) anonymous route",
            creds: encoded(&public, [(None, Expect::Allow)]),
            distinct: false,
        },
    ]
    .into_iter()
    .filter(|w| opts.only.is_empty() || opts.only.iter().any(|k| k == w.key))
    .map(Arc::new)
    .collect();
    drop(rs_tokens);
    drop(es_tokens);

    // Servers on CPU 0, this process on CPU 1.
    let ward = spawn_ward(opts, dir.path())?;
    let base = spawn_baseline(opts, dir.path())?;
    if opts.pin {
        pin_self(1)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let errors = Arc::new(AtomicU64::new(0));
    let result = rt.block_on(async {
        wait_ready(&ward).await?;
        let targets = [
            Target {
                clients: connect(&base, opts.connections).await?,
                server: &base,
                all: [&base, &ward],
                is_baseline: true,
            },
            Target {
                clients: connect(&ward, opts.connections).await?,
                server: &ward,
                all: [&base, &ward],
                is_baseline: false,
            },
        ];
        let single = [
            Target {
                clients: targets[0].clients[..1].to_vec(),
                server: &base,
                all: [&base, &ward],
                is_baseline: true,
            },
            Target {
                clients: targets[1].clients[..1].to_vec(),
                server: &ward,
                all: [&base, &ward],
                is_baseline: false,
            },
        ];
        let idle_rss = ward.rss_kib();
        let base_idle_rss = base.rss_kib();
        let mut rss_after: Vec<(String, u64)> = Vec::new();
        let mut rows = Vec::new();
        let mut cache_notes = Vec::new();

        let record_errors = |name: &str, label: &str, r: &RunResult| {
            if r.stats.errors > 0 {
                errors.fetch_add(r.stats.errors, Ordering::Relaxed);
                eprintln!(
                    "e2e: {label} {name}: {} errors, first: {}",
                    r.stats.errors,
                    r.stats.first_error.as_deref().unwrap_or("")
                );
            }
        };

        let closed = Mode::Closed {
            concurrency: opts.concurrency,
        };
        for w in &workloads {
            // Baseline and ward alternate; distinct-token workloads keep one cursor per
            // server so ward never sees a token twice.
            let cursors = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
            let mut res: [Vec<RunResult>; 2] = [Vec::new(), Vec::new()];
            let before = cache_counters(&ward).await;
            for _ in 0..opts.reps {
                for (k, t) in targets.iter().enumerate() {
                    let r = run(opts, t, w, &cursors[k], &closed).await;
                    record_errors(t.server.name, w.title, &r);
                    res[k].push(r);
                }
            }
            let after = cache_counters(&ward).await;
            let (hits, misses) = (after.0 - before.0, after.1 - before.1);
            cache_notes.push(format!(
                "{}: ward token cache {hits} hits, {misses} misses ({:.1}% hits)",
                w.title,
                100.0 * hits as f64 / (hits + misses).max(1) as f64
            ));
            let [b, wd] = res;
            rows.push(Row {
                workload: w.title.to_string(),
                mode: format!("{} in flight, {} conns", opts.concurrency, opts.connections),
                base: summarize(&b),
                ward: summarize(&wd),
            });
            println!(
                "e2e: {} done: baseline {:.0}/s, ward {:.0}/s",
                w.title,
                rows.last().expect("row").base.rate,
                rows.last().expect("row").ward.rate
            );
            if w.distinct {
                // Send every remaining token of the pool (unmeasured), so ward has
                // verified all of them and its cache is at (or past) its bound.
                let at = cursors[1].load(Ordering::Relaxed);
                let limit = w.creds.len();
                if at < limit {
                    let (st, _) = closed_loop(
                        &targets[1].clients,
                        w,
                        &cursors[1],
                        limit,
                        opts.concurrency,
                        Duration::from_secs(600),
                        false,
                    )
                    .await;
                    if st.errors > 0 {
                        errors.fetch_add(st.errors, Ordering::Relaxed);
                        eprintln!("e2e: {} fill: {} errors", w.title, st.errors);
                    }
                }
                rss_after.push((
                    format!("after {} ({} distinct tokens verified)", w.title, limit),
                    ward.rss_kib(),
                ));
            } else {
                rss_after.push((format!("after {}", w.title), ward.rss_kib()));
            }
        }

        // One check in flight: the server's per-check latency without queueing.
        let one_in_flight = Mode::Closed { concurrency: 1 };
        let single_opts = Opts {
            duration: opts.single_duration,
            ..opts.clone()
        };
        for w in workloads.iter().filter(|w| w.key == "a" || w.key == "e") {
            let cursors = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
            let mut res: [Vec<RunResult>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..opts.reps {
                for (k, t) in single.iter().enumerate() {
                    let r = run(&single_opts, t, w, &cursors[k], &one_in_flight).await;
                    record_errors(t.server.name, w.title, &r);
                    res[k].push(r);
                }
            }
            let [b, wd] = res;
            rows.push(Row {
                workload: w.title.to_string(),
                mode: "1 in flight".into(),
                base: summarize(&b),
                ward: summarize(&wd),
            });
        }

        // Open loop at a fixed rate, the same for both servers.
        let open = Mode::Open { rate: opts.rate };
        for w in workloads.iter().filter(|w| w.key == "a" || w.key == "e") {
            let cursors = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
            let mut res: [Vec<RunResult>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..opts.reps {
                for (k, t) in targets.iter().enumerate() {
                    let r = run(opts, t, w, &cursors[k], &open).await;
                    record_errors(t.server.name, w.title, &r);
                    res[k].push(r);
                }
            }
            let [b, wd] = res;
            rows.push(Row {
                workload: w.title.to_string(),
                mode: format!("open loop {}/s", opts.rate),
                base: summarize(&b),
                ward: summarize(&wd),
            });
        }

        print_table(&rows);
        println!();
        for n in &cache_notes {
            println!("- {n}");
        }
        println!();
        println!(
            "- ward RSS idle: {:.1} MiB (baseline idle: {:.1} MiB)",
            idle_rss as f64 / 1024.0,
            base_idle_rss as f64 / 1024.0
        );
        for (when, kib) in &rss_after {
            println!("- ward RSS {when}: {:.1} MiB", *kib as f64 / 1024.0);
        }
        println!(
            "- ward peak RSS (VmHWM): {:.1} MiB; token cache bound: 100000 entries (default)",
            proc_status_kib(ward.pid(), "VmHWM:") as f64 / 1024.0
        );
        println!("- total time {:.0}s", t_all.elapsed().as_secs_f64());
        if !opts.quick {
            print_targets(&rows, idle_rss, &rss_after);
        }
        Ok::<(), String>(())
    });
    result?;
    Ok(errors.load(Ordering::Relaxed))
}

fn print_targets(rows: &[Row], idle_rss: u64, rss_after: &[(String, u64)]) {
    let find = |w: &str, m: &str| {
        rows.iter()
            .find(|r| r.workload.starts_with(w) && r.mode.starts_with(m))
    };
    let verdict = |ok: bool| if ok { "holds" } else { "MISSED" };
    if rows.is_empty() {
        return;
    }
    println!();
    if let Some(r) = find("(a)", rows[0].mode.as_str()) {
        let t = r.ward.rate / r.base.rate;
        let p = r.ward.p99 / r.base.p99;
        println!(
            "- target (a) throughput >= 0.90x baseline: {t:.2}x {}",
            verdict(t >= 0.90)
        );
        println!(
            "- target (a) p99 <= 1.3x baseline: {p:.2}x {}",
            verdict(p <= 1.3)
        );
    }
    if let Some(r) = find("(b)", rows[0].mode.as_str()) {
        let t = r.ward.rate / r.base.rate;
        println!(
            "- target (b) throughput >= 0.60x baseline: {t:.2}x {}",
            verdict(t >= 0.60)
        );
    }
    if let Some(r) = find("(e)", rows[0].mode.as_str()) {
        let t = r.ward.rate / r.base.rate;
        println!(
            "- target (e) throughput >= 0.95x baseline: {t:.2}x {}",
            verdict(t >= 0.95)
        );
    }
    for w in ["(a)", "(e)"] {
        if let Some(r) = find(w, "1 in flight") {
            let p = r.ward.p50 / r.base.p50;
            println!(
                "- target {w} one in flight p50 <= 1.1x baseline: {p:.2}x {}",
                verdict(p <= 1.1)
            );
        }
    }
    let idle = idle_rss as f64 / 1024.0;
    println!(
        "- target idle RSS <= 20 MiB: {idle:.1} MiB {}",
        verdict(idle <= 20.0)
    );
    if let Some((_, kib)) = rss_after.iter().find(|(w, _)| w.contains("(b)")) {
        let m = *kib as f64 / 1024.0;
        println!(
            "- target RSS after (b) <= 64 MiB: {m:.1} MiB {}",
            verdict(m <= 64.0)
        );
    }
}
