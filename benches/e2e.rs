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
//!   invalid (bad signature) RS256 tokens, (e) an anonymous route, (f) one RS256 token on
//!   a route that mints a purpose token (mint-cache hit), (g) distinct RS256 tokens on
//!   that route (every check verifies and signs).
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
//! --workloads a,e --ward-bin PATH` (another ward build, for before/after numbers),
//! `--telemetry RATIO` (ward exports traces, sampling RATIO of the checks, to an OTLP
//! sink in this process that drops them).
//!
//! The load generator itself (clients, load shapes, the answer classifier, the baseline
//! server, /proc readings) is `tools/loadgen`; this file holds the servers under test,
//! the runs and the driver; the options are in `e2e/opts.rs`, the workloads (ward's
//! config, the tokens, each request with its expected answer) in `e2e/workloads.rs`, the
//! table and the targets in `e2e/report.rs`.

mod common;
#[path = "e2e/opts.rs"]
mod opts;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/workloads.rs"]
mod workloads;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loadgen::client::Client;
use loadgen::load::{closed_loop, open_loop};
use loadgen::process::{Server, free_port, spawn_baseline, ward_command};
use loadgen::procfs::{Noise, proc_status_kib, process_cpu};
use loadgen::summary::{RunResult, summarize};

use opts::Opts;
use report::{Row, print_table, print_targets};
use workloads::{Workload, prepare};

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

// === runs ===

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
    let (dir, workloads) = prepare(opts)?;
    // `--telemetry`: the sink runs on a thread of its own for the whole run.
    let _sink = match opts.telemetry {
        None => None,
        Some(ratio) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let endpoint = rt.block_on(common::otlp_sink());
            let mut yaml =
                std::fs::read_to_string(dir.path().join("ward.yaml")).map_err(|e| e.to_string())?;
            yaml.push_str(&format!(
                "telemetry:\n  otlp_endpoint: {endpoint}\n  sample_ratio: {ratio}\n"
            ));
            std::fs::write(dir.path().join("ward.yaml"), yaml).map_err(|e| e.to_string())?;
            Some(rt)
        }
    };

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
