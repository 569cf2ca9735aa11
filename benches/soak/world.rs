//! The soak run's world: the identity providers' state (keys and their tokens, the
//! introspection server's active tokens), their HTTP handlers, ward's config, and the
//! credential of each check.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes as Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use loadgen::clock::now_s;
use loadgen::flaky::{Flappy, Mode, failure};
use loadgen::load::lock;
use prost::bytes::Bytes;
use serde_json::json;
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

use crate::common::{self, AUD, ISS};
use crate::judge::{Cred, Junk, Tally};
use crate::{
    ANON_PATH, CLIENT_ID, FRESH_BATCH, HANG, INTRO_ISS, INTRO_PATH, INTRO_TTL, JWT_PATH,
    POOL_PER_KEY, PROVIDER_TIMEOUT, SECRET_ENV,
};

// === the identity providers' state ===

pub(crate) struct KeyEntry {
    pub(crate) key: Arc<SigningKey>,
    /// Tokens minted when the key was made, sent throughout its life (cached by ward).
    pub(crate) pool: Vec<String>,
    pub(crate) published_at: f64,
    pub(crate) removed_at: Option<f64>,
    /// When ward was first seen (metrics) to hold a key set fetched after the removal.
    pub(crate) refetched_at: Option<f64>,
    /// When ward first allowed a token signed by this key (the answer's arrival).
    pub(crate) verified_at: Option<f64>,
}

pub(crate) struct Keyring {
    pub(crate) keys: Vec<KeyEntry>,
    pub(crate) signing: usize,
    pub(crate) previous: Option<usize>,
    /// Tokens of the signing key minted a moment ago: (key, token).
    pub(crate) fresh: Vec<(usize, String)>,
}

impl Keyring {
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let published: Vec<&SigningKey> = self
            .keys
            .iter()
            .filter(|k| k.removed_at.is_none())
            .map(|k| &*k.key)
            .collect();
        common::jwks_of(&published)
    }
}

pub(crate) struct Introspected {
    /// Active tokens, each with the times the server last answered `active: true` for it.
    pub(crate) valid: HashMap<String, VecDeque<f64>>,
    pub(crate) pool: Vec<String>,
    pub(crate) fresh: String,
}

pub(crate) struct World {
    pub(crate) keys: Mutex<Keyring>,
    pub(crate) intro: Mutex<Introspected>,
    pub(crate) jwks_counts: Mutex<BTreeMap<String, u64>>,
    pub(crate) intro_counts: Mutex<BTreeMap<String, u64>>,
    pub(crate) jwks_server: OnceLock<Arc<Flappy>>,
    pub(crate) intro_server: OnceLock<Arc<Flappy>>,
    /// Junk: tokens of a key never published, and tampered tokens.
    pub(crate) unknown_kid: Vec<String>,
    pub(crate) tally: Mutex<Tally>,
    pub(crate) in_flight: AtomicU64,
    pub(crate) stop: AtomicBool,
    pub(crate) basic_auth: String,
}

pub(crate) fn random_token() -> String {
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(crate) async fn jwks_handler(State(w): State<Arc<World>>) -> Response {
    let mode = w.jwks_server.get().map_or(Mode::Up, |s| s.mode());
    if let Some(r) = failure(mode, HANG, &w.jwks_counts).await {
        return r;
    }
    *lock(&w.jwks_counts).entry("200".into()).or_default() += 1;
    let doc = lock(&w.keys).jwks().to_string();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

pub(crate) async fn introspect_handler(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mode = w.intro_server.get().map_or(Mode::Up, |s| s.mode());
    if let Some(r) = failure(mode, HANG, &w.intro_counts).await {
        return r;
    }
    let count = |what: &str| *lock(&w.intro_counts).entry(what.to_string()).or_default() += 1;
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == w.basic_auth);
    if !authorized {
        count("401 bad client authentication");
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response();
    }
    let token = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| {
            b.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(|t| {
                    percent_encoding::percent_decode_str(t)
                        .decode_utf8_lossy()
                        .into_owned()
                })
        })
        .unwrap_or_default();
    let now = common::now();
    let active = {
        let mut i = lock(&w.intro);
        match i.valid.get_mut(&token) {
            Some(times) => {
                times.push_back(now_s());
                if times.len() > 4 {
                    times.pop_front();
                }
                true
            }
            None => false,
        }
    };
    let doc = if active {
        count("200 active");
        let sub = format!("svc-{}", &token[..8.min(token.len())]);
        json!({
            "active": true,
            "sub": sub,
            "client_id": "partner-batch",
            "token_type": "access_token",
            "iss": INTRO_ISS,
            "aud": AUD,
            "scope": "orders:read",
            "roles": ["orders-reader"],
            "iat": now,
            "exp": now + 7200,
        })
    } else {
        count("200 inactive");
        json!({ "active": false })
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

// === ward ===

pub(crate) fn ward_yaml(jwks: SocketAddr, intro: SocketAddr, variant: u64) -> String {
    // The two variants differ in a route's name and one extra route: enough for ward to
    // compile and swap a new engine, while the providers' settings (and so their key
    // sets, cached introspection answers and breakers) stay as they are. Two names only,
    // so the `route` metric label stays bounded.
    let (public, extra) = if variant.is_multiple_of(2) {
        ("public", "")
    } else {
        (
            "public-b",
            "  - name: extra\n    match: { path_prefix: /extra }\n    allow_anonymous: true\n",
        )
    };
    format!(
        r#"# soak variant {variant}
server:
  watch_interval: 1s
providers:
  - name: corp
    jwt:
      issuer: "{ISS}"
      audiences: [{AUD}]
      jwks_uri: http://{jwks}/jwks
      algorithms: [RS256]
      refresh_interval: 5s
      min_refetch_interval: 2s
      timeout: {PROVIDER_TIMEOUT}s
      claims: {{ roles: roles, scopes: scope }}
  - name: partners
    introspection:
      endpoint: http://{intro}/introspect
      client_id: {CLIENT_ID}
      client_secret: ${{{SECRET_ENV}}}
      issuer: "{INTRO_ISS}"
      audiences: [{AUD}]
      cache_ttl: {ttl}s
      negative_cache_ttl: 10s
      timeout: {PROVIDER_TIMEOUT}s
      circuit_breaker: {{ failures: 5, cool_down: 5s }}
      claims: {{ roles: roles, scopes: scope }}
routes:
  - name: {public}
    match: {{ path_prefix: /public }}
    allow_anonymous: true
{extra}  - name: orders
    match: {{ path: "/api/orders/**", methods: [GET, POST] }}
    providers: [corp]
    require: {{ roles_any: [orders-reader] }}
  - name: partner-orders
    match: {{ path: "/partner/orders/**" }}
    providers: [partners]
    require: {{ roles_any: [orders-reader] }}
"#,
        ttl = INTRO_TTL as u64,
    )
}

pub(crate) fn write_config(dir: &Path, yaml: &str) -> Result<(), String> {
    // Written beside and renamed over: ward never reads half a file.
    let tmp = dir.join("ward.yaml.tmp");
    std::fs::write(&tmp, yaml).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dir.join("ward.yaml")).map_err(|e| e.to_string())
}

// === load ===

/// The credential of check `i`: a fixed pattern of 20 slots (7 pooled JWTs of the
/// signing key, 1 of the previous key, 3 fresh JWTs, 3 pooled and 1 fresh introspected
/// tokens, 3 junk, 2 anonymous).
pub(crate) fn pick(w: &World, i: u64) -> (Cred, String, &'static str) {
    const SLOTS: &[u8; 20] = b"CCFICJACIFCPIJCFNACJ";
    let round = i / 20;
    match SLOTS[(i % 20) as usize] {
        c @ (b'C' | b'P') => {
            let keys = lock(&w.keys);
            let key = match (c, keys.previous) {
                (b'P', Some(p)) => p,
                _ => keys.signing,
            };
            let pool = &keys.keys[key].pool;
            let tok = pool[(round as usize * 7 + (i % 20) as usize) % pool.len()].clone();
            (Cred::Jwt { key, fresh: false }, tok, JWT_PATH)
        }
        b'F' => {
            let keys = lock(&w.keys);
            let (key, tok) =
                keys.fresh[(round as usize * 3 + (i % 7) as usize) % keys.fresh.len()].clone();
            (Cred::Jwt { key, fresh: true }, tok, JWT_PATH)
        }
        b'I' => {
            let intro = lock(&w.intro);
            let tok =
                intro.pool[(round as usize * 3 + (i % 3) as usize) % intro.pool.len()].clone();
            (Cred::Intro { fresh: false }, tok, INTRO_PATH)
        }
        b'N' => (
            Cred::Intro { fresh: true },
            lock(&w.intro).fresh.clone(),
            INTRO_PATH,
        ),
        b'J' => match round % 4 {
            0 => (Cred::Junk(Junk::Malformed), random_token(), JWT_PATH),
            1 => {
                let tok = w.unknown_kid[round as usize / 4 % w.unknown_kid.len()].clone();
                (Cred::Junk(Junk::UnknownKid), tok, JWT_PATH)
            }
            2 => {
                let keys = lock(&w.keys);
                let pool = &keys.keys[keys.signing].pool;
                let tok = loadgen::tamper(&pool[round as usize % pool.len()]);
                (Cred::Junk(Junk::Tampered), tok, JWT_PATH)
            }
            _ => (Cred::Junk(Junk::Opaque), random_token(), INTRO_PATH),
        },
        _ => (Cred::Anon, String::new(), ANON_PATH),
    }
}

/// The check of `path` with `token` as a bearer token (none when empty), encoded.
pub(crate) fn request(path: &str, token: &str) -> Bytes {
    let mut req = common::envoy_request(path);
    if !token.is_empty() {
        common::set_authorization(&mut req, format!("Bearer {token}"));
    }
    loadgen::client::encode(&req)
}

/// A new RS256 key and its pool of tokens (a few hundred ms: run it on a blocking thread).
pub(crate) fn new_key(seq: u64) -> (Arc<SigningKey>, Vec<String>) {
    let key = common::key(Alg::RS256);
    let pool = common::mint_many(&key, ISS, AUD, seq * 1_000_000, POOL_PER_KEY);
    (Arc::new(key), pool)
}

pub(crate) fn mint_fresh(key: &SigningKey, seq: u64) -> Vec<String> {
    (0..FRESH_BATCH as u64)
        .filter_map(|n| {
            key.sign(&common::claims(ISS, AUD, 500_000_000 + seq * 100 + n))
                .ok()
        })
        .collect()
}
