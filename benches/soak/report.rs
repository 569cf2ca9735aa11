//! The soak run's report: answers by credential, latencies, ward's fetches, reloads
//! and memory, and a table over time; and the rows printed every 10 s while it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use loadgen::clock::now_s;
use loadgen::flaky::Flappy;
use loadgen::load::lock;
use loadgen::metrics::{metric, metric_by};
use loadgen::process::Server;
use loadgen::procfs::{open_fds, proc_status_kib};
use loadgen::stats::ms;
use tokio::task::JoinHandle;

use crate::judge::{Window, hist};
use crate::world::World;
use crate::{MAX_IN_FLIGHT, Opts, SAMPLE_EVERY};

// === the run ===

pub(crate) struct Row {
    pub(crate) t: f64,
    pub(crate) checks: u64,
    pub(crate) hist: Histogram<u64>,
    pub(crate) cached: Histogram<u64>,
    pub(crate) rss_kib: u64,
    pub(crate) fds: usize,
    pub(crate) valid_failed: u64,
    pub(crate) other_failed: u64,
    pub(crate) jwks: BTreeSet<String>,
    pub(crate) intro: BTreeSet<String>,
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
pub(crate) fn rss_bound_kib(warm: u64) -> u64 {
    warm + warm / 4 + 8 * 1024
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    opts: &Opts,
    world: &World,
    rows: &[Row],
    metrics: &str,
    ward: &Server,
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
        println!("- ward EXITED during the run\n{}", ward.log_tail(15));
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
    let downs = |s: Option<&Arc<Flappy>>| s.map_or(0, |s| s.downs());
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
        proc_status_kib(ward.pid(), "VmHWM:") as f64 / 1024.0,
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

pub(crate) fn fmt_map(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// === the table over time ===

/// The header of the rows that [`spawn_sampler`] prints.
pub(crate) fn print_row_header() {
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
}

/// The sampler: a row every [`SAMPLE_EVERY`] seconds from `t0`, printed when taken, until
/// `end` seconds have passed or the run stops; the rows, for the report.
pub(crate) fn spawn_sampler(w: Arc<World>, t0: f64, end: f64, pid: u32) -> JoinHandle<Vec<Row>> {
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
                rss_kib: proc_status_kib(pid, "VmRSS:"),
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
}
