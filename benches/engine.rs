//! Micro-benchmarks of the decision engine, on prebuilt state (config compiled, keys
//! parsed, tokens minted and requests built outside the measured loop):
//!
//! - `route_match/*`: picking a route among 200 through the route index (path
//!   normalisation included);
//! - `verify_cold/*`: one `Engine::check` whose token is verified from scratch, per
//!   algorithm (token cache disabled with `token_cache: {max_entries: 0}`, and a pool of
//!   distinct tokens rotated so that no cache could help);
//! - `verify_cached/*`: the same check with the token already in the verified-token cache;
//! - `parts/*`: pieces of a check, for attribution (the cache key's SHA-256, the JWT
//!   parse, `block_on` itself, each signature verification alone: `signature_ward_*` as
//!   ward verifies, `signature_*` through jsonwebtoken, `signature_*_parsed_key` through
//!   aws-lc-rs directly);
//! - `response/*`: a decision turned into Envoy's `CheckResponse`, and encoded;
//! - `scale_routes/*`, `scale_issuers/*`: the cached check as the config grows (10, 100,
//!   1000 routes with the token's route second to last; 1, 5, 20 JWT issuers on one route
//!   with the token from the last one). Flat is the target.
//!
//! Run: `cargo bench --bench engine` (add `-- --quick` for a fast pass, or a filter such
//! as `-- scale_`). Results and their reading are in BENCHMARKS.md.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prost::Message as _;
use serde_json::json;
use ward::Decision;
use ward::authn::jwt::Alg;
use ward::authz::{path, route};
use ward::engine::Engine;
use ward::metrics::Metrics;
use ward::request::CheckInput;

use common::{AUD, ISS, Keys, config_yaml, issuer};

const TARGET_PATH: &str = "/api/orders/42/items?expand=lines";

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
}

fn engine(yaml: &str, keys: &Keys) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::load(yaml, dir.path(), &keys.jwks());
    Setup {
        engine: Engine::new(config, Arc::new(Metrics::new())),
        _dir: dir,
    }
}

/// The owned parts of one Envoy-shaped request; `input()` borrows them.
struct Req {
    headers: Vec<(String, String)>,
}

impl Req {
    fn new(token: &str) -> Self {
        // Envoy's headers in a fixed order (a map's order changes from run to run), the
        // credential last.
        let mut headers: Vec<(String, String)> = common::envoy_request(TARGET_PATH)
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http)
            .map(|h| h.headers.into_iter().collect())
            .unwrap_or_default();
        headers.sort();
        headers.push(("authorization".into(), format!("Bearer {token}")));
        Self { headers }
    }

    fn input(&self) -> CheckInput<'_> {
        let mut input = CheckInput {
            method: "GET",
            host: "api.example.com",
            path: TARGET_PATH,
            source_address: "10.0.3.17",
            stream_id: "8412003",
            ..Default::default()
        };
        for (k, v) in &self.headers {
            input.headers.push(k, v.as_bytes());
        }
        input
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn assert_allowed(d: &Decision, what: &str) {
    assert!(d.is_allow(), "{what}: expected allow, got {d:?}");
}

fn cache_counts(e: &Engine, provider: &str) -> (u64, u64) {
    let text = e.metrics().render();
    let count = |result: &str| {
        let series = format!(
            "ward_token_cache_requests_total{{provider=\"{provider}\",result=\"{result}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    (count("hit"), count("miss"))
}

// === benches ===

fn route_match(c: &mut Criterion) {
    let keys = Keys::new();
    let s = engine(&config_yaml(200, false, 1, None), &keys);
    let routes = s.engine.config().routes();
    assert_eq!(routes.len(), 200);
    let index = route::RouteIndex::new(routes);
    let mut g = c.benchmark_group("route_match");
    let cases = [
        ("first_of_200", "/svc0/public/x", "GET"),
        ("middle_of_200", "/svc101/v1/items/7", "GET"),
        ("last_of_200", TARGET_PATH, "GET"),
        ("none_of_200", "/nothing/here", "GET"),
    ];
    for (name, p, method) in cases {
        let input = CheckInput {
            method,
            host: "api.example.com",
            path: p,
            ..Default::default()
        };
        let expect_some = name != "none_of_200";
        let segs = path::normalize(p).expect("path");
        assert_eq!(index.select(routes, &input, &segs).is_some(), expect_some);
        g.bench_function(name, |b| {
            b.iter(|| {
                let segs = path::normalize(black_box(input.path)).expect("path");
                index
                    .select(routes, black_box(&input), &segs)
                    .map(|(i, _, p)| (i, p.len()))
            })
        });
    }
    g.bench_function("normalize_only", |b| {
        b.iter(|| path::normalize(black_box("/api/orders/%34%32/./items/../items?x=1")))
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let keys = Keys::new();
    let algs = [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256];
    let rt = rt();

    // Cold: no cache, and distinct tokens in rotation anyway.
    let cold = engine(&config_yaml(10, true, 1, Some(0)), &keys);
    let mut g = c.benchmark_group("verify_cold");
    g.measurement_time(Duration::from_secs(4));
    for alg in algs {
        let reqs: Vec<Req> = common::mint_many(keys.get(alg), ISS, AUD, 0, 64)
            .iter()
            .map(|t| Req::new(t))
            .collect();
        let inputs: Vec<CheckInput<'_>> = reqs.iter().map(Req::input).collect();
        assert_allowed(&rt.block_on(cold.engine.check(&inputs[0])), alg.as_str());
        let before = cache_counts(&cold.engine, "idp0");
        let mut i = 0usize;
        g.bench_function(BenchmarkId::from_parameter(alg.as_str()), |b| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                rt.block_on(cold.engine.check(black_box(&inputs[i])))
            })
        });
        let after = cache_counts(&cold.engine, "idp0");
        assert_eq!(
            after.0, before.0,
            "verify_cold/{alg:?}: a check hit the cache"
        );
    }
    g.finish();

    // Cached: one token, verified once before measuring.
    let warm = engine(&config_yaml(10, true, 1, None), &keys);
    let mut g = c.benchmark_group("verify_cached");
    for alg in algs {
        let tok = keys
            .get(alg)
            .sign(&common::claims(ISS, AUD, 1))
            .expect("sign");
        let req = Req::new(&tok);
        let input = req.input();
        assert_allowed(&rt.block_on(warm.engine.check(&input)), alg.as_str());
        let before = cache_counts(&warm.engine, "idp0");
        g.bench_function(BenchmarkId::from_parameter(alg.as_str()), |b| {
            b.iter(|| rt.block_on(warm.engine.check(black_box(&input))))
        });
        let after = cache_counts(&warm.engine, "idp0");
        assert_eq!(
            after.1, before.1,
            "verify_cached/{alg:?}: a check missed the cache"
        );
    }
    g.finish();

    // The pieces of a cached check, for attribution.
    let tok = keys
        .get(Alg::RS256)
        .sign(&common::claims(ISS, AUD, 1))
        .expect("sign");
    let mut g = c.benchmark_group("parts");
    g.bench_function("cache_key_sha256", |b| {
        b.iter(|| ward::authn::cache::TokenCache::key(black_box(&tok)))
    });
    g.bench_function("jwt_parse_rs256", |b| {
        b.iter(|| ward::authn::jwt::parse(black_box(&tok), 16384).map(|p| p.alg))
    });
    g.bench_function("block_on_ready", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
    // The signature alone, as ward verifies it: a `VerifyKey` from the JWKS (public key
    // parsed once) and the signature bytes decoded by `jwt::parse`.
    let jwks_set = ward::authn::jwks::KeySet::from_jwks(&keys.jwks())
        .expect("jwks")
        .0;
    for alg in algs {
        let k = keys.get(alg);
        let t = k.sign(&common::claims(ISS, AUD, 1)).expect("sign");
        let (input, sig) = t.rsplit_once('.').expect("jws");
        let sig = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(sig)
                .expect("signature")
        };
        let key = jwks_set
            .candidates(None, alg)
            .into_iter()
            .find(|key| key.verify(alg, input.as_bytes(), &sig))
            .expect("a key of the JWKS verifies");
        g.bench_function(format!("signature_ward_{}", alg.as_str()), |b| {
            b.iter(|| key.verify(alg, black_box(input.as_bytes()), black_box(&sig)))
        });
    }
    // The same signatures through jsonwebtoken over aws-lc-rs (how ward verified before
    // it held parsed keys): the key is rebuilt and the signature decoded on every call.
    for alg in algs {
        let k = keys.get(alg);
        let t = k.sign(&common::claims(ISS, AUD, 1)).expect("sign");
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(k.jwks()["keys"][0].clone()).expect("jwk");
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let (input, sig) = t.rsplit_once('.').expect("jws");
        let jalg = alg
            .to_jsonwebtoken()
            .expect("jsonwebtoken knows the benched algorithms");
        assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, jalg).expect("verify"));
        g.bench_function(format!("signature_{}", alg.as_str()), |b| {
            b.iter(|| jsonwebtoken::crypto::verify(black_box(sig), input.as_bytes(), &key, jalg))
        });
    }
    // The same signatures through aws-lc-rs directly, the public key parsed once: the
    // floor under `signature_ward_*`.
    for (alg, params) in [
        (
            Alg::RS256,
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256 as _,
        ),
        (
            Alg::ES256,
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED as _,
        ),
    ] {
        let k = keys.get(alg);
        let t = k.sign(&common::claims(ISS, AUD, 1)).expect("sign");
        let jwk = k.jwks()["keys"][0].clone();
        let b64 = |f: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk[f].as_str().expect("jwk member"))
                .expect("base64url")
        };
        let parsed = match alg {
            Alg::RS256 => aws_lc_rs::signature::RsaPublicKeyComponents {
                n: b64("n"),
                e: b64("e"),
            }
            .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
            .expect("rsa key"),
            _ => {
                let mut point = vec![4u8];
                point.extend(b64("x"));
                point.extend(b64("y"));
                aws_lc_rs::signature::ParsedPublicKey::new(params, point).expect("ec key")
            }
        };
        let (input, sig) = t.rsplit_once('.').expect("jws");
        let sig = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(sig)
                .expect("signature")
        };
        assert!(parsed.verify_sig(input.as_bytes(), &sig).is_ok());
        g.bench_function(format!("signature_{}_parsed_key", alg.as_str()), |b| {
            b.iter(|| parsed.verify_sig(black_box(input.as_bytes()), black_box(&sig)))
        });
    }
    g.finish();
}

fn response(c: &mut Criterion) {
    let keys = Keys::new();
    let rt = rt();
    let s = engine(&config_yaml(10, true, 1, None), &keys);
    let tok = keys
        .get(Alg::ES256)
        .sign(&common::claims(ISS, AUD, 1))
        .expect("sign");
    let allow = rt.block_on(s.engine.check(&Req::new(&tok).input()));
    assert_allowed(&allow, "response");
    let mut bad = tok.clone();
    bad.truncate(bad.len() - 4);
    bad.push_str("AAAA");
    let deny = rt.block_on(s.engine.check(&Req::new(&bad).input()));
    assert!(!deny.is_allow(), "tampered token allowed");
    let rid = "5f0c6a2e-8d1b-4c3a-9e7f-0a1b2c3d4e5f";
    let mut g = c.benchmark_group("response");
    for (name, d) in [("allow", &allow), ("deny_invalid_token", &deny)] {
        g.bench_function(name, |b| {
            b.iter(|| ward::response::check_response(black_box(d), black_box(rid)))
        });
        g.bench_function(format!("{name}_and_encode"), |b| {
            b.iter(|| ward::response::check_response(black_box(d), black_box(rid)).encode_to_vec())
        });
        // What the server sends: `Answer` (written straight from the decision when
        // allowed). The clone of the decision is part of the measured loop.
        g.bench_function(format!("{name}_answer_encode"), |b| {
            b.iter(|| {
                ward::response::Answer::new(black_box(d).clone(), black_box(rid)).encode_to_vec()
            })
        });
    }
    g.finish();
}

fn scaling(c: &mut Criterion) {
    let keys = Keys::new();
    let rt = rt();
    let mut g = c.benchmark_group("scale_routes");
    for n in [10usize, 100, 1000] {
        let s = engine(&config_yaml(n, true, 1, None), &keys);
        let tok = keys
            .get(Alg::ES256)
            .sign(&common::claims(ISS, AUD, 1))
            .expect("sign");
        let req = Req::new(&tok);
        let input = req.input();
        let d = rt.block_on(s.engine.check(&input));
        assert_allowed(&d, "scale_routes");
        assert_eq!(d.route.as_deref(), Some("orders"));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| rt.block_on(s.engine.check(black_box(&input))))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("scale_issuers");
    for n in [1usize, 5, 20] {
        let s = engine(&config_yaml(10, true, n, None), &keys);
        let tok = keys
            .get(Alg::ES256)
            .sign(&common::claims(&issuer(n - 1), AUD, 1))
            .expect("sign");
        let req = Req::new(&tok);
        let input = req.input();
        let d = rt.block_on(s.engine.check(&input));
        assert_allowed(&d, "scale_issuers");
        assert_eq!(
            d.identity.as_ref().map(|i| i.provider.to_string()),
            Some(format!("idp{}", n - 1))
        );
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| rt.block_on(s.engine.check(black_box(&input))))
        });
    }
    g.finish();
}

/// What minting costs alone: a signature per algorithm ward signs with, and a mint-cache
/// hit (the claims built and hashed, the cached token handed out).
fn mint(c: &mut Criterion) {
    use ward::issuer::keys::{SigningAlg, SigningKey, SigningKeys};
    use ward::issuer::mint::{Grant, Issuer};
    let mut g = c.benchmark_group("mint");
    let payload =
        json!({"iss": "https://ward.bench", "aud": "payments-api", "sub": "user-00000042",
        "iat": 1, "exp": 61, "jti": "AAAAAAAAAAAAAAAAAAAAAA", "purpose": "minting",
        "act": {"iss": ISS, "sub": "user-00000042"}, "roles": ["reader", "orders-reader"],
        "tenant": "acme"})
        .to_string();
    let mut es256 = None;
    for (alg, jose) in [
        (SigningAlg::ES256, jsonwebtoken::Algorithm::ES256),
        (SigningAlg::EdDSA, jsonwebtoken::Algorithm::EdDSA),
        (SigningAlg::RS256, jsonwebtoken::Algorithm::RS256),
        (SigningAlg::PS256, jsonwebtoken::Algorithm::PS256),
    ] {
        let generated = testkeys::Key::generate(jose);
        let key = SigningKey::from_pem("bench", alg, generated.key_file()).expect("signing key");
        g.bench_function(format!("sign_{}", alg.name()), |b| {
            b.iter(|| key.sign(black_box(payload.as_bytes())).expect("signs"))
        });
        if alg == SigningAlg::ES256 {
            es256 = Some(key);
        }
    }
    let keys = SigningKeys::new(vec![es256.expect("an ES256 key")]).expect("one key");
    let issuer = Issuer::new("https://ward.bench".into(), Arc::new(keys), 100_000);
    let grant = Grant {
        purpose: "minting".into(),
        audience: "payments-api".into(),
        ttl_secs: 60,
        claims: ["sub".into(), "roles".into(), "tenant".into()].into(),
    };
    let id = ward::Identity {
        provider: "idp".into(),
        subject: Some("user-00000042".into()),
        issuer: Some(ISS.into()),
        roles: ["reader", "orders-reader"].into_iter().collect(),
        claims: ward::authn::claims::Claims::from(json!({"tenant": "acme"})),
        expires_at: Some(u64::MAX / 2),
        ..ward::Identity::default()
    };
    let counter = prometheus::IntCounter::new("minted", "bench").expect("counter");
    let now = common::now();
    issuer
        .mint(&grant, &id, now, true, &counter)
        .expect("mints");
    g.bench_function("cache_hit", |b| {
        b.iter(|| {
            issuer
                .mint(black_box(&grant), &id, now, true, &counter)
                .expect("mints")
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = route_match, verify, response, scaling, mint
}
criterion_main!(benches);
