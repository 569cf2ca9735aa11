//! A plain loop of checks for profilers (callgrind, perf): no statistics, no threads,
//! and each step in its own `#[inline(never)]` function so that instruction counts can
//! be attributed. One iteration does what ward's gRPC handler does for one Check, minus
//! tonic and HTTP/2: the `CheckRequest`'s bytes -> `CheckInput` (`server::grpc::read`), the
//! engine's decision, the metrics (`AppState::record`), the answer and its protobuf
//! encoding (`response::Answer`, as the server writes it).
//!
//! ```text
//! cargo bench --bench profile --no-run
//! valgrind --tool=callgrind --toggle-collect='profile::one_check' \
//!     target/release/deps/profile-<hash> cached 20000
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//! Scenarios: `cached` (RS256 token in the verified-token cache), `cold` (RS256, cache
//! disabled), `cold-es256`, `anonymous`, `routes1000` (cached; the token's route is
//! 999th of 1000), `issuers20` (cached; token from the 20th issuer of the route),
//! `cached-subject-none` (`cached` with `logging: {subject: none}`: isolates the cost of
//! hashing the subject for the decision log), `cached-jwe` (`cached` with the token
//! nested in a JWE, ECDH-ES+A256KW / A256GCM: a cache hit decrypts nothing), `memory` (N distinct ES256 tokens checked
//! once each with the default cache bound: prints the resident memory each cached
//! identity costs), `dpop` (an ES256 token bound to an ES256 DPoP key, in the cache,
//! each check with a fresh proof made before the loop: one per check, since a proof is
//! accepted once), `es256-verify` (the bare ES256 signature check of such a proof,
//! `profile::verify_once`, for comparison), `cached-untraced` (`cached` asking the engine
//! without the `telemetry::on()` test every edge makes: what telemetry costs when off), `cached-traced-0.01` and `cached-traced-1` (`cached` with `telemetry` on, spans
//! exported to a local OTLP sink that drops them, sampling 1 % or all of the checks,
//! which carry no `traceparent`).
//! Without arguments, or with `--quick` (as `cargo bench -- --quick` runs it), it does a
//! short `cached` run.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use prost::Message as _;
use ward::authn::jwt::Alg;
use ward::metrics::Metrics;
use ward::state::AppState;

use common::{AUD, ISS, Keys, config_yaml, issuer};

/// The system allocator, counting live heap bytes and blocks (for `memory`).
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        LIVE_BLOCKS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench" && a != "--quick");
    let scenario = args.next().unwrap_or_else(|| "cached".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);

    let keys = Keys::new();
    if scenario == "memory" {
        memory(&keys, n);
        return;
    }
    let mut logging = "";
    // `minted`: the same cached check on a route that mints (a mint-cache hit after the
    // first); `sign`: one ES256 purpose token signed, alone (`profile::sign_once`).
    if scenario == "sign" {
        sign(n);
        return;
    }
    if scenario == "es256-verify" {
        es256_verify(n);
        return;
    }
    let untraced = scenario == "cached-untraced";
    let traced_ratio = match scenario.as_str() {
        "cached-traced-0.01" => Some(0.01),
        "cached-traced-1" => Some(1.0),
        _ => None,
    };
    let mint = scenario == "minted";
    let dpop = scenario == "dpop";
    let nested = scenario == "cached-jwe";
    let (routes, providers, cache, alg, iss, path, anonymous) = match scenario.as_str() {
        "cached" | "cached-untraced" | "cached-traced-0.01" | "cached-traced-1" => (
            10,
            1,
            None,
            Alg::RS256,
            0,
            "/api/orders/42/items?expand=lines",
            false,
        ),
        "cached-subject-none" => {
            logging = "logging: { subject: none }\n";
            (
                10,
                1,
                None,
                Alg::RS256,
                0,
                "/api/orders/42/items?expand=lines",
                false,
            )
        }
        "cold" => (
            10,
            1,
            Some(0),
            Alg::RS256,
            0,
            "/api/orders/42/items?expand=lines",
            false,
        ),
        "cold-es256" => (
            10,
            1,
            Some(0),
            Alg::ES256,
            0,
            "/api/orders/42/items?expand=lines",
            false,
        ),
        "anonymous" => (10, 1, None, Alg::RS256, 0, "/svc0/public/docs", true),
        "dpop" => (
            10,
            1,
            None,
            Alg::ES256,
            0,
            "/api/orders/42/items?expand=lines",
            false,
        ),
        "minted" | "cached-jwe" => (
            10,
            1,
            None,
            Alg::RS256,
            0,
            "/api/orders/42/items?expand=lines",
            false,
        ),

        "routes1000" => (
            1000,
            1,
            None,
            Alg::RS256,
            0,
            "/api/orders/42/items?expand=lines",
            false,
        ),
        "issuers20" => (
            10,
            20,
            None,
            Alg::RS256,
            19,
            "/api/orders/42/items?expand=lines",
            false,
        ),
        other => {
            eprintln!("profile: unknown scenario `{other}`");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = format!("{logging}{}", config_yaml(routes, true, providers, cache));
    if mint {
        let signing = testkeys::Key::generate(jsonwebtoken::Algorithm::ES256);
        std::fs::write(dir.path().join("signing.pem"), signing.key_file()).expect("key file");
        yaml = yaml.replace(
            "    require: { roles_any: [orders-reader, admin] }\n",
            "    require: { roles_any: [orders-reader, admin] }\n    mint: { audience: payments-api, ttl: 60s, header: x-auth-token, claims: [sub, roles, tenant] }\n",
        );
        yaml.push_str(
            "signing:\n  issuer: https://ward.bench\n  keys: [ { kid: bench, alg: ES256, key_file: signing.pem } ]\n",
        );
    }
    if dpop {
        // Proofs are made before the loop: a window long enough for a slow profiler.
        yaml = yaml.replace(
            "      claims: { roles: roles, scopes: scope }\n",
            "      claims: { roles: roles, scopes: scope }\n      bound_tokens: { dpop_iat_window: 1h }\n",
        );
    }
    // `cached-jwe`: the `cached` check with the RS256 token nested in a JWE
    // (ECDH-ES+A256KW, A256GCM) to a P-256 key the provider decrypts with; after the
    // first check the cache answers, keyed by the JWE, with no decryption.
    let recipient = testkeys::Key::generate(jsonwebtoken::Algorithm::ES256);
    if nested {
        std::fs::write(dir.path().join("enc.pem"), recipient.key_file()).expect("key file");
        // The kid is the one the recipient's JWK carries into the JWE header.
        yaml = yaml.replacen(
            "      claims: { roles: roles, scopes: scope }\n",
            &format!(
                "      claims: {{ roles: roles, scopes: scope }}\n      decryption: {{ keys: [ {{ kid: \"{}\", alg: ECDH-ES+A256KW, key_file: enc.pem }} ] }}\n",
                recipient.kid()
            ),
            1,
        );
    }
    let config = common::load(&yaml, dir.path(), &keys.jwks());
    let state = AppState::new(ward::engine::Engine::new(config, Arc::new(Metrics::new())));
    let mut req = common::envoy_request(path);
    // `dpop`: one request per check, each with its own proof.
    let mut proofs = Vec::new();
    if dpop {
        let client = dpop_key();
        let mut claims = common::claims(&issuer(iss), AUD, 1);
        claims["cnf"] = serde_json::json!({"jkt": client.thumbprint()});
        let tok = keys.get(alg).sign(&claims).expect("sign");
        common::set_authorization(&mut req, format!("DPoP {tok}"));
        let url = format!(
            "https://api.example.com{}",
            path.split('?').next().unwrap_or(path)
        );
        let now = ward::clock::unix_now();
        proofs = (0..=n)
            .map(|_| {
                let mut r = req.clone();
                let proof = client
                    .dpop_proof("GET", &url, Some(&tok), now)
                    .expect("proof");
                common::set_header(&mut r, "dpop", proof);
                r
            })
            .collect();
    } else if !anonymous {
        let tok = keys
            .get(alg)
            .sign(&common::claims(&issuer(iss), AUD, 1))
            .expect("sign");
        let _ = ISS;
        let tok = if nested {
            ward::devtoken::encrypt_to(&tok, recipient.jwk().to_string().as_bytes(), None, None)
                .expect("encrypt")
        } else {
            tok
        };
        common::set_authorization(&mut req, format!("Bearer {tok}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // The exporter and the sink run on a runtime of their own: their work is not the
    // check's (and callgrind, collecting only in `one_check`, does not count it).
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let telemetry = traced_ratio.map(|ratio| {
        let _in = background.enter();
        let endpoint = background.block_on(common::otlp_sink());
        let settings = ward::config::TelemetryConfig {
            otlp_endpoint: endpoint,
            sample_ratio: ratio,
            service_name: "ward-bench".into(),
            queue_size: 2048,
            batch_delay: std::time::Duration::from_millis(200),
            export_timeout: std::time::Duration::from_secs(5),
        };
        ward::telemetry::Telemetry::start(&settings).expect("exporter")
    });
    match &telemetry {
        None => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink)
            .init(),
        // As `ward serve` sets it up with `telemetry`.
        Some(t) => {
            use tracing_subscriber::Layer as _;
            use tracing_subscriber::filter::FilterExt as _;
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            let logs = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(std::io::sink)
                .with_filter(
                    tracing_subscriber::EnvFilter::new("info")
                        .and(tracing_subscriber::filter::filter_fn(|m| !m.is_span())),
                );
            tracing_subscriber::registry()
                .with(logs)
                .with(t.layer())
                .init();
        }
    }
    let decide = if untraced { decide_untraced } else { decide };
    // Once outside the loop: the first check fills the cache, and must allow.
    let first = proofs.pop().unwrap_or_else(|| req.clone()).encode_to_vec();
    let proofs: Vec<Vec<u8>> = proofs.iter().map(|p| p.encode_to_vec()).collect();
    let req = req.encode_to_vec();
    assert!(
        one_check(&state, &first, &rt, decide).1,
        "{scenario}: not allowed"
    );
    let t = Instant::now();
    let mut bytes = 0;
    if dpop {
        for r in &proofs {
            let (b, allowed) = one_check(&state, black_box(r), &rt, decide);
            assert!(allowed, "dpop: a fresh proof was refused");
            bytes += b;
        }
    } else {
        for _ in 0..n {
            bytes += one_check(&state, black_box(&req), &rt, decide).0;
        }
    }
    let el = t.elapsed();
    println!(
        "profile {scenario}: {n} checks in {:.3}s, {:.2} µs/check ({} response bytes)",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64,
        bytes / n.max(1)
    );
}

/// A fresh ES256 key for DPoP proofs.
fn dpop_key() -> ward::devtoken::SigningKey {
    let generated = testkeys::Key::generate(jsonwebtoken::Algorithm::ES256);
    ward::devtoken::SigningKey::from_bytes(generated.key_file(), Alg::ES256).expect("key")
}

/// `n` verifications of one ES256 DPoP proof's signature with its parsed public key: the
/// bare signature cost inside a `dpop` check.
fn es256_verify(n: usize) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let client = dpop_key();
    let proof = client
        .dpop_proof(
            "GET",
            "https://api.example.com/api/orders/42/items",
            Some("a.b.c"),
            1,
        )
        .expect("proof");
    let (input, sig) = proof.rsplit_once('.').expect("a JWS");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(input.split('.').next().expect("header"))
            .expect("base64url"),
    )
    .expect("JSON");
    let key = ward::authn::jwks::set::VerifyKey::from_jwk(&header["jwk"]).expect("jwk");
    let t = Instant::now();
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(verify_once(&key, black_box(input.as_bytes()), &sig));
    }
    let el = t.elapsed();
    assert_eq!(ok, n, "every signature verifies");
    println!(
        "profile es256-verify: {n} in {:.3}s, {:.2} µs/verify",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64
    );
}

#[inline(never)]
fn verify_once(key: &ward::authn::jwks::set::VerifyKey, input: &[u8], sig: &[u8]) -> bool {
    key.verify(Alg::ES256, input, sig)
}

/// `n` purpose tokens signed with one ES256 key, the payload of a minted token.
fn sign(n: usize) {
    use ward::issuer::keys::{SigningAlg, SigningKey};
    let generated = testkeys::Key::generate(jsonwebtoken::Algorithm::ES256);
    let key = SigningKey::from_pem("bench", SigningAlg::ES256, generated.key_file()).expect("key");
    let payload = serde_json::json!({"iss": "https://ward.bench", "aud": "payments-api",
        "sub": "user-00000001", "iat": 1, "exp": 61, "jti": "AAAAAAAAAAAAAAAAAAAAAA",
        "purpose": "orders", "act": {"iss": ISS, "sub": "user-00000001"},
        "roles": ["reader", "orders-reader"], "tenant": "acme"})
    .to_string();
    let t = Instant::now();
    let mut len = 0;
    for _ in 0..n {
        len += sign_once(&key, black_box(payload.as_bytes()));
    }
    let el = t.elapsed();
    println!(
        "profile sign: {n} ES256 tokens in {:.3}s, {:.2} µs/token ({} bytes)",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64,
        len / n.max(1)
    );
}

#[inline(never)]
fn sign_once(key: &ward::issuer::keys::SigningKey, payload: &[u8]) -> usize {
    key.sign(payload).expect("signs").len()
}

/// One Check as `server::grpc` handles it, without the transport.
#[inline(never)]
fn one_check(
    state: &Arc<AppState>,
    req: &[u8],
    rt: &tokio::runtime::Runtime,
    decide: Decide,
) -> (usize, bool) {
    let start = Instant::now();
    let engine = state.engine.load_full();
    let input = to_input(req);
    let decision = decide(&engine, &input, rt);
    let request_id = input.request_id().into_owned();
    let elapsed = start.elapsed();
    state.observer.record(&decision, elapsed);
    log(
        state,
        &engine,
        &decision,
        &request_id,
        input.path_only(),
        elapsed,
    );
    let allowed = decision.is_allow();
    let answer = respond(decision, &request_id);
    (encode(&answer), allowed)
}

#[inline(never)]
fn log(
    state: &AppState,
    engine: &ward::engine::Engine,
    d: &ward::Decision,
    request_id: &str,
    path: &str,
    elapsed: std::time::Duration,
) {
    let logging = engine.config().logging();
    state.observer.log(d, request_id, path, elapsed, logging);
}

#[inline(never)]
fn to_input(req: &[u8]) -> ward::CheckInput<'_> {
    ward::server::grpc::read::check_input(req)
        .expect("reads")
        .expect("http attributes")
}

/// How a scenario asks the engine: [`decide`] or [`decide_untraced`].
type Decide =
    fn(&ward::engine::Engine, &ward::CheckInput<'_>, &tokio::runtime::Runtime) -> ward::Decision;

/// The engine's decision as every edge asks for it: inside `telemetry::check` when
/// spans are on, directly when not.
#[inline(never)]
fn decide(
    engine: &ward::engine::Engine,
    input: &ward::CheckInput<'_>,
    rt: &tokio::runtime::Runtime,
) -> ward::Decision {
    if ward::telemetry::on() {
        rt.block_on(ward::telemetry::check(
            "grpc",
            &input.headers,
            engine.check(input),
        ))
    } else {
        rt.block_on(engine.check(input))
    }
}

/// The engine's decision alone (`cached-untraced`).
#[inline(never)]
fn decide_untraced(
    engine: &ward::engine::Engine,
    input: &ward::CheckInput<'_>,
    rt: &tokio::runtime::Runtime,
) -> ward::Decision {
    rt.block_on(engine.check(input))
}

#[inline(never)]
fn respond(d: ward::Decision, request_id: &str) -> ward::response::Answer {
    ward::response::Answer::new(d, request_id)
}

#[inline(never)]
fn encode(r: &ward::response::Answer) -> usize {
    r.encode_to_vec().len()
}

/// Resident memory per verified-and-cached token: `n` distinct tokens through
/// `Engine::check` with the default cache bound, VmRSS before and after.
fn memory(keys: &Keys, n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::load(&config_yaml(10, true, 1, None), dir.path(), &keys.jwks());
    let engine = ward::engine::Engine::new(config, Arc::new(Metrics::new()));
    let tokens = common::mint_many(keys.get(Alg::ES256), &issuer(0), AUD, 1, n);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut req = common::envoy_request("/api/orders/42/items");
    let rss = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let before = rss();
    let (bytes0, blocks0) = (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed));
    let t = Instant::now();
    for tok in &tokens {
        common::set_authorization(&mut req, format!("Bearer {tok}"));
        let bytes = req.encode_to_vec();
        let input = to_input(&bytes);
        assert!(
            decide(&engine, &input, &rt).is_allow(),
            "memory: not allowed"
        );
    }
    let el = t.elapsed();
    let after = rss();
    let per = |v: isize| v / n.max(1) as isize;
    let (bytes, blocks) = (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed));
    let cached = (per(bytes - bytes0), per(blocks - blocks0));
    drop(engine);
    let freed = (
        per(bytes - LIVE_BYTES.load(Relaxed)),
        per(blocks - LIVE_BLOCKS.load(Relaxed)),
    );
    println!(
        "profile memory: {n} distinct tokens in {:.2}s; RSS {:.1} -> {:.1} MiB, {} bytes per token; \
         live heap per token {} bytes in {} blocks, of which dropping the engine freed {} bytes in {} blocks",
        el.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        after.saturating_sub(before) / n.max(1) as u64,
        cached.0,
        cached.1,
        freed.0,
        freed.1,
    );
}
