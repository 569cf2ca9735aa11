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
//! margin stated at [`report::rss_bound_kib`].
//!
//! `cargo bench --bench soak` runs 30 minutes; `-- --quick` runs 60 s (CI);
//! `-- --duration 10m --rate 1000 --ward-bin PATH` for others.
//!
//! The load generator (client, answer classifier, misbehaving servers, /proc and
//! /metrics readings) is `tools/loadgen`; the options are in `soak/opts.rs`, the
//! identity providers' state and the load's credentials in `soak/world.rs`, the judging
//! of answers in `soak/judge.rs`, the rows every 10 s and the report in `soak/report.rs`.

mod common;
#[path = "soak/judge.rs"]
mod judge;
#[path = "soak/opts.rs"]
mod opts;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/world.rs"]
mod world;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use loadgen::client::Client;
use loadgen::clock::{now_s, unix_now_f};
use loadgen::flaky::{Flappy, Mode, mode_at};
use loadgen::load::lock;
use loadgen::metrics::{metric, scrape};
use loadgen::process::{Server, free_port, ward_command};
use loadgen::procfs::{alive, proc_status_kib};
use loadgen::verdict::Answer;
use prost::bytes::Bytes;
use ward::authn::jwt::Alg;

use common::{AUD, ISS};
use judge::{Tally, Window, judge};
use opts::Opts;
use report::{print_row_header, report, spawn_sampler};
use world::{
    Introspected, KeyEntry, Keyring, World, introspect_handler, jwks_handler, mint_fresh, new_key,
    pick, random_token, request, ward_yaml, write_config,
};

pub(crate) const JWT_PATH: &str = "/api/orders/42/items";
pub(crate) const INTRO_PATH: &str = "/partner/orders/7";
pub(crate) const ANON_PATH: &str = "/public/docs/index.html";
pub(crate) const INTRO_ISS: &str = "https://as.bench.example";
pub(crate) const SECRET_ENV: &str = "WARD_SOAK_INTROSPECTION_SECRET";
pub(crate) const CLIENT_ID: &str = "ward-soak";

/// ward's `timeout` for both providers (seconds); the servers "hang" for longer.
pub(crate) const PROVIDER_TIMEOUT: u64 = 1;
pub(crate) const HANG: Duration = Duration::from_secs(3);
/// The introspection provider's `cache_ttl`, and the margin under it within which an
/// answer still counts as cached (ward caches from when it *receives* the answer, a few
/// ms after the server sent it; moka's expiry is whole seconds at worst).
pub(crate) const INTRO_TTL: f64 = 20.0;
pub(crate) const INTRO_MARGIN: f64 = 2.0;
/// An introspection 503 this long after the endpoint came back is a failure: SPEC §7
/// says a recovered endpoint serves again within 5 s (the breaker's longest cool-down);
/// a call that started before the recovery may time out up to 1 s after it; 2 s slack.
pub(crate) const RECOVERY_BOUND: f64 = 8.0;
/// A removed key's token allowed this long after ward was seen to hold a key set fetched
/// after the removal is a failure (the metric is set a moment before the keys swap).
pub(crate) const REVOCATION_GRACE: f64 = 1.0;
pub(crate) const CONFIG_EVERY: f64 = 10.0;
pub(crate) const SAMPLE_EVERY: f64 = 10.0;
pub(crate) const POOL_PER_KEY: usize = 20;
pub(crate) const FRESH_BATCH: usize = 20;
pub(crate) const FRESH_EVERY: f64 = 2.0;
pub(crate) const INTRO_POOL: usize = 300;
pub(crate) const CONNECTIONS: usize = 4;
pub(crate) const MAX_IN_FLIGHT: u64 = 4096;
pub(crate) const CHECK_DEADLINE: Duration = Duration::from_secs(10);

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

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    loadgen::clock::start();
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

/// One check, answered within [`CHECK_DEADLINE`], classified.
async fn check(mut client: Client, req: Bytes) -> Result<Answer, String> {
    let v = tokio::time::timeout(CHECK_DEADLINE, client.check(req))
        .await
        .map_err(|_| format!("no answer within {CHECK_DEADLINE:?}"))?
        .map_err(|s| format!("gRPC error {:?}: {}", s.code(), s.message()))?;
    Answer::of(&v)
}

/// `ward serve`, its client secret in the environment; warnings only in its log (not
/// one line per denial: a 30-minute run would write hundreds of MB of them).
fn spawn_ward(
    opts: &Opts,
    dir: &std::path::Path,
    secret: &str,
) -> Result<(Server, std::net::SocketAddr), String> {
    let (grpc, admin) = (free_port()?, free_port()?);
    let mut cmd = ward_command(
        false,
        &opts.ward_bin,
        &dir.join("ward.yaml"),
        grpc,
        admin,
        "warn",
    );
    cmd.env(SECRET_ENV, secret);
    let ward = Server::spawn("ward", cmd, grpc, Some(admin), dir.join("ward.log"))
        .map_err(|e| format!("starting ward ({}): {e}", opts.ward_bin.display()))?;
    Ok((ward, admin))
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
            total: judge::hist(),
            total_cached: judge::hist(),
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
    let (ward, admin) = spawn_ward(opts, dir.path(), &secret)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    ward.wait_ready(&http, Duration::from_secs(30)).await?;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = Client::connect(ward.grpc)
            .await
            .map_err(|e| format!("connecting to ward: {e}"))?;
        clients.push(c.max_decoding_message_size(1 << 20));
    }
    let pid = ward.pid();
    println!(
        "soak: ward pid {pid} ready, RSS {:.1} MiB; JWKS on {}, introspection on {}",
        proc_status_kib(pid, "VmRSS:") as f64 / 1024.0,
        jwks.addr,
        intro.addr
    );
    print_row_header();

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
        let (w, http, admin) = (world.clone(), http.clone(), admin);
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
    let sampler = spawn_sampler(world.clone(), t0, end, pid);

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
    let metrics = scrape(admin, &http).await.unwrap_or_default();

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
