//! nginx `auth_request` → ward's plain-HTTP listener, against nginx `auth_request` → a
//! location that answers 200 at once: the same nginx, the same content behind it, the
//! same load (wrk, one cached token), alternating runs.
//!
//! One nginx (`master_process off`, one process) serves four front ends, each proxying
//! allowed requests to the same upstream (an nginx server that answers `200 ok`):
//!
//! - `ward`: the shipped `proxies/nginx/ward.conf`, addresses replaced: the auth
//!   subrequest goes to `ward serve` over kept-alive HTTP/1.1 connections
//!   (`upstream ward { keepalive 32; }`);
//! - `ward-no-keepalive`: the same, with a new TCP connection to ward per check (the
//!   `keepalive` line removed);
//! - `stub`: the auth subrequest goes, the same way as ward's, to an nginx server that
//!   answers 200 at once (the cost of the hop without ward);
//! - `local`: the auth subrequest is an internal location that answers 200 at once (no
//!   hop at all).
//!
//! Targets (BENCHMARKS.md): against `local` (the baseline: a location of the same
//! nginx that answers 200 at once), ward's throughput ≥ 0.80× and p99 ≤ 1.5×. `stub` is
//! reported beside it: its auth server runs inside the one nginx process, so nginx does
//! the stub's work too, and ward, on the other CPU, outruns it.
//!
//! `cargo bench --bench http_edge` runs 3 reps of 5 s per front end; `-- --quick` one
//! rep of 1 s each (the CI smoke test); `--reps N --duration S --connections N
//! --ward-bin PATH`. Needs nginx and wrk (Debian packages; `.ci/run` installs them).

#[path = "http_edge/setup.rs"]
mod setup;

use std::process::ExitCode;

use setup::{Front, Opts, Rig, WrkRun};

fn main() -> ExitCode {
    // criterion's and libtest's flags (`--bench`) are not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("http_edge: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match rt.block_on(run(&opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_edge: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: &Opts) -> Result<(), String> {
    let rig = Rig::start(opts).await?;
    println!(
        "nginx {} | wrk, {} connections, {} s per run, {} reps, alternating | ward {}",
        rig.nginx_version,
        opts.connections,
        opts.duration.as_secs_f64(),
        opts.reps,
        opts.ward_bin.display()
    );
    let mut runs: Vec<(Front, Vec<WrkRun>)> = Front::ALL.iter().map(|f| (*f, Vec::new())).collect();
    for rep in 0..opts.reps {
        for (front, results) in runs.iter_mut() {
            let r = rig.wrk(*front, opts).await?;
            println!(
                "rep {rep} {:<18} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ward {:>5.1} us/req  nginx {:>5.1} us/req  other load {:>3.0}%",
                front.name(),
                r.rps,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.ward_cpu_per_req.as_secs_f64() * 1e6,
                r.nginx_cpu_per_req.as_secs_f64() * 1e6,
                r.other_load * 100.0
            );
            if r.non_2xx > 0 || r.errors > 0 {
                return Err(format!(
                    "{}: {} non-2xx answers, {} socket errors: every request must be allowed",
                    front.name(),
                    r.non_2xx,
                    r.errors
                ));
            }
            results.push(r);
        }
    }
    let median = |front: Front, f: &dyn Fn(&WrkRun) -> f64| {
        let mut v: Vec<f64> = runs
            .iter()
            .find(|(x, _)| *x == front)
            .map(|(_, r)| r.iter().map(f).collect())
            .unwrap_or_default();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let rps = |f| median(f, &|r: &WrkRun| r.rps);
    let p99 = |f| median(f, &|r: &WrkRun| r.p99.as_secs_f64() * 1e3);
    let p50 = |f| median(f, &|r: &WrkRun| r.p50.as_secs_f64() * 1e3);
    println!("\nmedians:");
    let ward_us = |f| median(f, &|r: &WrkRun| r.ward_cpu_per_req.as_secs_f64() * 1e6);
    let nginx_us = |f| median(f, &|r: &WrkRun| r.nginx_cpu_per_req.as_secs_f64() * 1e6);
    let other = |f| median(f, &|r: &WrkRun| r.other_load * 100.0);
    println!(
        "| front end | req/s | p50 ms | p99 ms | req/s vs local | p99 vs local | ward CPU µs/req | nginx CPU µs/req | other load |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for front in Front::ALL {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.2}x | {:.2}x | {:.1} | {:.1} | {:.0} % |",
            front.name(),
            rps(front),
            p50(front),
            p99(front),
            rps(front) / rps(Front::Local),
            p99(front) / p99(Front::Local),
            ward_us(front),
            nginx_us(front),
            other(front)
        );
    }
    let (t, l) = (
        rps(Front::Ward) / rps(Front::Local),
        p99(Front::Ward) / p99(Front::Local),
    );
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "\ntargets (ward vs local): throughput {t:.2}x >= 0.80x {}; p99 {l:.2}x <= 1.5x {}",
        verdict(t >= 0.80),
        verdict(l <= 1.5)
    );
    println!(
        "ward vs stub (the same hop to a server that answers at once): throughput {:.2}x, p99 {:.2}x",
        rps(Front::Ward) / rps(Front::Stub),
        p99(Front::Ward) / p99(Front::Stub)
    );
    drop(rig);
    Ok(())
}
