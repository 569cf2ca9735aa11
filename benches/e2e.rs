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
//!
//! The load generator itself (clients, load shapes, the answer classifier, the baseline
//! server, /proc readings) is `tools/loadgen`; this file holds the workloads, the runs
//! and the report.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use loadgen::args::{list, number};
use loadgen::client::{Client, encode};
use loadgen::load::{Requests, closed_loop, open_loop};
use loadgen::process::{Server, free_port, spawn_baseline, ward_command};
use loadgen::procfs::{Noise, proc_status_kib, process_cpu};
use loadgen::summary::{RunResult, Summary, summarize};
use loadgen::verdict::Expect;
use ward::authn::jwt::Alg;

use common::{AUD, ISS};

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
        let num = number;
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
                "--workloads" => o.only = list(args.next(), "--workloads", "a,e")?,
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
    if let Some(code) = loadgen::baseline::serve_if_asked() {
        return code;
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

// === servers under test ===

fn spawn_ward(opts: &Opts, dir: &Path) -> Result<Server, String> {
    let (grpc, admin) = (free_port()?, free_port()?);
    let cmd = ward_command(
        opts.pin,
        &opts.ward_bin,
        &dir.join("ward.yaml"),
        grpc,
        admin,
        "info",
    );
    Server::spawn("ward", cmd, grpc, Some(admin), dir.join("ward.log"))
        .map_err(|e| format!("starting ward: {e}"))
}

/// ward's verified-token cache counters (hits, misses), from /metrics.
async fn cache_counters(server: &Server) -> (u64, u64) {
    let Some(admin) = server.admin else {
        return (0, 0);
    };
    let Ok(r) = reqwest::get(format!("http://{admin}/metrics")).await else {
        return (0, 0);
    };
    loadgen::metrics::cache_counters(&r.text().await.unwrap_or_default())
}

// === workloads ===

struct Workload {
    key: &'static str,
    title: &'static str,
    /// Each request, encoded, with ward's expected answer; request `i` uses entry
    /// `i % len`.
    creds: Requests,
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

fn bearer(t: &str) -> Option<String> {
    Some(format!("Bearer {t}"))
}

/// The `authorization` header value (None: no credential) set in `template`, each
/// request encoded once, before any run.
fn encoded(
    template: &CheckRequest,
    creds: impl IntoIterator<Item = (Option<String>, Expect)>,
) -> Requests {
    let list = creds
        .into_iter()
        .map(|(cred, expect)| {
            let mut req = template.clone();
            if let Some(c) = cred {
                common::set_authorization(&mut req, c);
            }
            (encode(&req), expect)
        })
        .collect();
    Arc::new(list)
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
        &w.creds,
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
    let pids = t.all.map(Server::pid);
    let noise = Noise::start(&pids);
    let (mut stats, elapsed) = match mode {
        Mode::Closed { concurrency } => {
            closed_loop(
                &t.clients,
                &w.creds,
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
            open_loop(&t.clients, &w.creds, cursor, *rate, d, t.is_baseline).await
        }
    };
    let server_cpu = t.server.cpu().saturating_sub(cpu0);
    let foreign_cpu = noise.foreign(&pids);
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

fn drive(opts: &Opts) -> Result<u64, String> {
    let t_all = Instant::now();
    let mut pin = opts.pin;
    if pin && !loadgen::process::can_pin() {
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
            .map(|t| loadgen::tamper(t))
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
    let base = spawn_baseline(opts.pin, dir.path())?;
    if opts.pin {
        loadgen::process::pin_self(1)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let errors = Arc::new(AtomicU64::new(0));
    let result = rt.block_on(async {
        ward.wait_ready(&reqwest::Client::new(), Duration::from_secs(20))
            .await?;
        let targets = [
            Target {
                clients: base.connect(opts.connections).await?,
                server: &base,
                all: [&base, &ward],
                is_baseline: true,
            },
            Target {
                clients: ward.connect(opts.connections).await?,
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
                        &w.creds,
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
