//! Shared by the benches: signing keys generated with aws-lc-rs, token minting, and
//! configs written next to their JWKS in a temporary directory.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::google::protobuf::Timestamp;
use serde_json::{Value, json};
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

pub const ISS: &str = "https://idp.bench.example/realms/corp";
pub const AUD: &str = "orders-api";

fn pem(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out.into_bytes()
}

/// A fresh key of `alg`'s family (RSA 2048, P-256, P-384, Ed25519, 48-byte HMAC secret).
pub fn key(alg: Alg) -> SigningKey {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair,
    };
    let bytes = match alg {
        Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
            let kp =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = kp.as_der().expect("rsa der");
            pem(der.as_ref())
        }
        Alg::ES256 => pem(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("p256")
            .to_pkcs8v1()
            .expect("der")
            .as_ref()),
        Alg::ES384 => pem(EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
            .expect("p384")
            .to_pkcs8v1()
            .expect("der")
            .as_ref()),
        Alg::EdDSA => pem(Ed25519KeyPair::generate()
            .expect("ed25519")
            .to_pkcs8v1()
            .expect("der")
            .as_ref()),
        Alg::HS256 | Alg::HS384 | Alg::HS512 => {
            let mut secret = [0u8; 48];
            aws_lc_rs::rand::fill(&mut secret).expect("random");
            secret.to_vec()
        }
    };
    SigningKey::from_bytes(&bytes, alg).expect("signing key")
}

pub fn now() -> u64 {
    ward::clock::unix_now()
}

/// Claims shaped like a real IdP's access token (Keycloak-ish: ~15 members), so parse,
/// cache and identity costs are those of a realistic token, not of a toy one.
pub fn claims(iss: &str, aud: &str, n: u64) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": aud,
        "sub": format!("user-{n:08}"),
        "azp": "web-frontend",
        "typ": "Bearer",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 7200,
        "jti": format!("9f2c1e7a-{n:012x}"),
        "sid": "5b7a8c3e-2d4f-4e1a-9c6b-8f0d2e4a6c1b",
        "scope": "openid profile email orders:read",
        "email": format!("user{n}@example.com"),
        "email_verified": true,
        "preferred_username": format!("user{n}"),
        "roles": ["reader", "orders-reader"],
        "tenant": "acme",
    })
}

pub fn jwks_of(keys: &[&SigningKey]) -> Value {
    let all: Vec<Value> = keys
        .iter()
        .flat_map(|k| k.jwks()["keys"].as_array().cloned().unwrap_or_default())
        .collect();
    json!({ "keys": all })
}

/// Writes `jwks.json` into `dir` and compiles `yaml` there (so `jwks_file: jwks.json`
/// resolves). Panics with every config error.
pub fn load(yaml: &str, dir: &Path, jwks: &Value) -> ward::Config {
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("write jwks");
    let env: HashMap<String, String> = HashMap::new();
    ward::config::load_str(yaml, dir, &env).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"))
}

/// Mints `n` distinct tokens (claims `claims(iss, aud, offset + i)`) on every core.
pub fn mint_many(k: &SigningKey, iss: &str, aud: &str, offset: u64, n: usize) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let lo = t * per;
                    let hi = ((t + 1) * per).min(n);
                    (lo..hi)
                        .map(|i| k.sign(&claims(iss, aud, offset + i as u64)).expect("sign"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("minting thread"))
            .collect()
    })
}

// === engine configs ===

/// `n` filler routes of four realistic shapes (prefix, `{param}` pattern with methods,
/// `**` with hosts, conditions with `equals_param`), each one matching a different
/// service prefix, so a request for `/api/orders/...` is tested against every one.
pub fn filler_routes(n: usize, providers: &str) -> String {
    let mut y = String::new();
    for i in 0..n {
        let r = match i % 4 {
            0 => format!(
                "  - name: r{i}\n    match: {{ path_prefix: /svc{i}/public }}\n    allow_anonymous: true\n"
            ),
            1 => format!(
                "  - name: r{i}\n    match: {{ path: \"/svc{i}/v1/items/{{id}}\", methods: [GET, POST] }}\n    providers: [{providers}]\n    require: {{ roles_any: [reader] }}\n"
            ),
            2 => format!(
                "  - name: r{i}\n    match: {{ path: \"/svc{i}/v1/**\", hosts: [\"svc{i}.example.com\"] }}\n    providers: [{providers}]\n"
            ),
            _ => format!(
                "  - name: r{i}\n    match: {{ path: \"/svc{i}/admin/{{tenant}}/**\", methods: [DELETE] }}\n    providers: [{providers}]\n    require:\n      all:\n        - roles_any: [admin]\n        - claim: {{ name: tenant, equals_param: tenant }}\n"
            ),
        };
        y.push_str(&r);
    }
    y
}

/// A config of `routes` routes: fillers, then the request's route (`/api/orders/**`,
/// needing a role), then, with `catch_all`, a last `/` route; so the token's route is
/// last or second to last. `providers` JWT providers (issuers `ISS`, `ISS-1`, ...) all
/// read the bearer header and share one JWKS; the target route lists all of them.
pub fn config_yaml(routes: usize, catch_all: bool, providers: usize, cache: Option<u64>) -> String {
    let mut y = String::new();
    if let Some(n) = cache {
        y.push_str(&format!("token_cache: {{ max_entries: {n} }}\n"));
    }
    y.push_str("providers:\n");
    let names: Vec<String> = (0..providers).map(|i| format!("idp{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        y.push_str(&format!(
            "  - name: {name}\n    jwt:\n      issuer: \"{}\"\n      audiences: [{AUD}]\n      jwks_file: jwks.json\n      algorithms: [RS256, PS256, ES256, EdDSA, HS256]\n      claims: {{ roles: roles, scopes: scope }}\n",
            issuer(i)
        ));
    }
    let list = names.join(", ");
    y.push_str("routes:\n");
    let fillers = routes - 1 - usize::from(catch_all);
    y.push_str(&filler_routes(fillers, &names[0]));
    y.push_str(&format!(
        "  - name: orders\n    match: {{ path: \"/api/orders/**\", methods: [GET, POST] }}\n    providers: [{list}]\n    require: {{ roles_any: [orders-reader, admin] }}\n"
    ));
    if catch_all {
        y.push_str(&format!(
            "  - name: fallback\n    match: {{ path_prefix: / }}\n    providers: [{}]\n    require: {{ roles_any: [admin] }}\n",
            names[0]
        ));
    }
    y
}

pub fn issuer(i: usize) -> String {
    if i == 0 {
        ISS.to_string()
    } else {
        format!("{ISS}-{i}")
    }
}

/// Every algorithm the issue names, with one key each, in one JWKS.
pub struct Keys {
    pub keys: Vec<(Alg, SigningKey)>,
}

impl Keys {
    pub fn new() -> Self {
        let algs = [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256];
        Self {
            keys: algs.iter().map(|a| (*a, key(*a))).collect(),
        }
    }

    pub fn get(&self, alg: Alg) -> &SigningKey {
        &self.keys.iter().find(|(a, _)| *a == alg).expect("key").1
    }

    pub fn jwks(&self) -> Value {
        jwks_of(&self.keys.iter().map(|(_, k)| k).collect::<Vec<_>>())
    }
}

// === Envoy requests ===

/// Sets `authorization: {value}` in an Envoy request's headers map.
pub fn set_authorization(req: &mut CheckRequest, value: String) {
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.headers.insert("authorization".into(), value);
    }
}

/// A CheckRequest as Envoy sends it for `GET https://api.example.com{path}` (headers map,
/// pseudo-headers included; source and destination peers; request time).
pub fn envoy_request(path: &str) -> CheckRequest {
    let headers: HashMap<String, String> = [
        (":authority", "api.example.com"),
        (":method", "GET"),
        (":path", path),
        (":scheme", "https"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "5f0c6a2e-8d1b-4c3a-9e7f-0a1b2c3d4e5f"),
        ("x-envoy-internal", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let addr = |ip: &str, port: u32| Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(addr("10.0.3.17", 43512)),
                ..Default::default()
            }),
            destination: Some(Peer {
                address: Some(addr("10.0.5.2", 8080)),
                ..Default::default()
            }),
            request: Some(Request {
                time: Some(Timestamp {
                    seconds: now() as i64,
                    nanos: 0,
                }),
                http: Some(HttpRequest {
                    id: "8412003".into(),
                    method: "GET".into(),
                    headers,
                    path: path.into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}
