//! Writes each fuzz target's starting corpus into `fuzz/corpus/<target>/` from ward's
//! example configs, test fixtures, the paths and patterns its tests use, and tokens
//! minted with the example keys. Deterministic: the same files on every run.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use prost::Message;
use serde_json::{Value, json};
use ward::authn::jwt::Alg;
use ward::devtoken::SigningKey;

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = fuzz.join("..");
    let corpus = fuzz.join("corpus");
    let mut out = Seeds::default();

    let ec = key(&repo, "examples/policies/keys/idp-ec.pem", Alg::ES256);
    let rogue = key(&repo, "examples/policies/keys/rogue-ec.pem", Alg::ES256);
    let dev = key(&repo, "examples/keys/dev-rsa.pem", Alg::RS256);
    let claims = claim_sets();
    let mut tokens = Vec::new();
    for c in &claims {
        for k in [&ec, &rogue, &dev] {
            tokens.push(k.sign(c).expect("signs"));
        }
    }

    // token: 0 + a compact token; 1 + header \n payload; 2 + payload to sign.
    for t in &tokens {
        out.add("token", [&[0u8][..], t.as_bytes()].concat());
    }
    for c in &claims {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": ec.kid()});
        out.add("token", format!("\x01{header}\n{c}").into_bytes());
        out.add("token", format!("\x02{c}").into_bytes());
    }
    for junk in ["", "a.b.c", "e30.e30.", "e30.e30.c2ln", "..", "a.b.c.d"] {
        out.add("token", [&[0u8][..], junk.as_bytes()].concat());
    }

    // dpop: 0 + a proof; 1 + header \n payload; 2 + method, URL, token, URL lines;
    // 3 + cnf \n certificate.
    let url = "https://api.example.com/orders";
    let proof = ec
        .dpop_proof("GET", url, Some("a.b.c"), 1_800_000_000)
        .expect("a proof");
    out.add("dpop", [&[0u8][..], proof.as_bytes()].concat());
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let payload = json!({"htm": "GET", "htu": url, "iat": 1_800_000_000u64, "jti": "j", "ath": "x"});
    out.add("dpop", format!("\x01{header}\n{payload}").into_bytes());
    for (m, u, other) in [
        ("GET", url, url),
        ("POST", "HTTPS://API.example.com:443/orders?x=1", url),
        ("GET", "https://api.example.com/%7eorders", "https://api.example.com/~orders"),
        ("GET", "http://h/a", "https://h/a"),
    ] {
        out.add("dpop", format!("\x02{m}\n{u}\na.b.c\n{other}").into_bytes());
    }
    for cnf in [
        r#"{"jkt":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}"#,
        r#"{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}"#,
        r#"{"jwk":{}}"#,
        r#""x""#,
    ] {
        out.add(
            "dpop",
            format!("\x03{cnf}\n-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A")
                .into_bytes(),
        );
    }

    // jwe: 0 + a compact JWE; 1 + protected header \n raw parts; 2 + plaintext to encrypt.
    let epk = json!({"kty": "EC", "crv": "P-256",
        "x": "-SqPOdXMklRZss2BR_hqN6lp9pvFpdpd5P8qJGnwbkc",
        "y": "rSelPVVmlQPyADn0ihKtjtwOX_Y6bG7mjnNIGed_0jA"});
    for alg in ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW", "dir"] {
        for enc in ["A128GCM", "A256GCM"] {
            let header = json!({"alg": alg, "enc": enc, "cty": "JWT", "epk": epk});
            let parts = [&[7u8; 40][..], &[1; 12], b"ciphertext", &[2; 16]].join(&b'\n');
            out.add("jwe", [format!("\x01{header}\n").as_bytes(), &parts].concat());
        }
    }
    for t in tokens.iter().take(3) {
        out.add("jwe", [&[2u8][..], t.as_bytes()].concat());
    }
    for junk in ["", "a.b.c.d.e", "e30....", "....", "e30.e30.e30.e30.e30"] {
        out.add("jwe", [&[0u8][..], junk.as_bytes()].concat());
    }

    // config: every example and fixture config, and the fuzz routes.
    for dir in ["examples", "tests/fixtures"] {
        for f in yaml_files(&repo.join(dir)) {
            out.add("config", fs::read(f).expect("reads"));
        }
    }
    out.add("config", fs::read(fuzz.join("routes.yaml")).expect("reads"));

    // path: method byte, host line, raw path.
    for (i, p) in PATHS.iter().enumerate() {
        for host in ["", "a.example.com", "files.example.com:8443"] {
            out.add(
                "path",
                format!("{}{host}\n{p}", char::from(i as u8 % 5)).into_bytes(),
            );
        }
    }

    // patterns: matcher byte, pattern line, input.
    for (which, pattern, input) in PATTERNS {
        out.add(
            "patterns",
            format!("{}{pattern}\n{input}", char::from(*which)).into_bytes(),
        );
    }

    // exchange: Content-Type line, form body.
    let grant = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
    let subject = "subject_token_type=urn:ietf:params:oauth:token-type:access_token";
    for body in [
        format!("{grant}&subject_token={}&{subject}&audience=payments-api", tokens[0]),
        format!("{grant}&subject_token=a.b.c&{subject}&resource=https%3A%2F%2Fpay&audience=x"),
        format!("{grant}&subject_token=+&{subject}&audience=a&audience=b"),
        format!("{grant}&actor_token=x&scope=read&audiance=y"),
        "grant_type=password&username=u&password=p".to_string(),
        "%ZZ=%FF&&=&a".to_string(),
    ] {
        for ct in ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8", "text/plain"] {
            out.add("exchange", format!("{ct}\n{body}").into_bytes());
        }
    }

    // check: requests on the example policy's routes, with and without tokens.
    let good = ec.sign(&claims[0]).expect("signs");
    let requests = [
        req("GET", "api.example.com", "/healthz", &[], None, &[]),
        req(
            "GET",
            "api.example.com",
            "/tenants/acme/orders/1",
            &[("authorization", format!("Bearer {good}"))],
            None,
            &[],
        ),
        req(
            "POST",
            "api.example.com:443",
            "/tenants/globex/orders?x=1",
            &[("authorization", format!("Bearer {}", tokens[1]))],
            None,
            &[],
        ),
        req(
            "POST",
            "api.example.com",
            "/graphql",
            &[
                ("authorization", format!("Bearer {good}")),
                ("x-tenant", "acme".into()),
            ],
            None,
            &[],
        ),
        req(
            "GET",
            "billing.internal",
            "/anything",
            &[],
            Some("spiffe://cluster.local/ns/billing/sa/batch"),
            &[("ward_route", "internal")],
        ),
        req(
            "GET",
            "api.example.com",
            "/invoices/7",
            &[("authorization", "Bearer x.y.z".into())],
            None,
            &[],
        ),
        req("GET", "api.example.com", "/a/%2e%2e/b", &[], None, &[]),
    ];
    for (i, r) in requests.iter().enumerate() {
        out.add("check", r.encode_to_vec());
        // The same request with raw header bytes, as `encode_raw_headers` sends it.
        let mut raw = r.clone();
        if let Some(http) = raw
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            let headers = std::mem::take(&mut http.headers);
            http.header_map = Some(HeaderMap {
                headers: headers
                    .into_iter()
                    .map(|(key, v)| HeaderValue {
                        key,
                        raw_value: v.into_bytes(),
                        ..Default::default()
                    })
                    .collect(),
            });
            if i % 2 == 0 {
                http.path.clear();
                http.host.clear();
            }
        }
        out.add("check", raw.encode_to_vec());
    }

    let total = out.write(&corpus);
    println!("wrote {total} seeds under {}", corpus.display());
}

const PATHS: &[&str] = &[
    "/",
    "/tenants/acme/orders",
    "/tenants/acme/orders/1/items?x=1#f",
    "/api/v1/users",
    "/api/42",
    "/a/x/b/x/c/y",
    "/q/r/s/z",
    "/caf%C3%A9/1",
    "/café/1",
    "/files/a//b/./c/../d",
    "/a/%2e%2e/b",
    "/a/%2F/b",
    "/a;v=1/b",
    "/a%3Bb",
    "/%00",
    "/a/b%",
    "/a/b%zz",
    "//a",
    "/a\\b",
    "*",
    "",
    "/x?y=/../z",
];

const PATTERNS: &[(u8, &str, &str)] = &[
    (
        0,
        "spiffe://cluster.local/ns/*/sa/*-*-*-*",
        "spiffe://cluster.local/ns/default/sa/a-b-c-d",
    ),
    (
        0,
        "spiffe://cluster.local/ns/*/sa/*-*-*-*",
        "spiffe://cluster.local/ns/default/sa/a-a-a-a-a-a/x",
    ),
    (
        0,
        "spiffe://cluster.local/ns/billing/sa/*",
        "spiffe://cluster.local/ns/billing/sa/batch",
    ),
    (0, "a*b*c", "abbbc"),
    (0, "**", "é"),
    (1, "*.example.com", "a.example.com:8443"),
    (1, "API.example.com", "api.example.com."),
    (1, "[::1]", "[::1]:80"),
    (2, "/tenants/{tenant}/orders/**", "/tenants/acme/orders/1"),
    (2, "/**/x/**/y/**/z", "/x/x/y/z"),
    (2, "/*/{a}/*", "/a/b/c"),
    (3, "/api/v1", "/api/v1/users"),
    (3, "/", "/anything"),
];

fn claim_sets() -> Vec<Value> {
    let base = json!({
        "iss": "https://sso.example.com/realms/acme",
        "aud": ["orders-api", "account"],
        "sub": "alice",
        "iat": 1_700_000_000,
        "exp": 4_102_444_800u64,
        "scope": "openid orders",
        "realm_access": {"roles": ["orders-reader"]},
        "resource_access": {"billing.api": {"roles": ["invoice-reader"]}},
        "tenant": "acme",
        "preferred_username": "alice",
    });
    let mut sets = vec![base.clone()];
    let mut with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        sets.push(c);
    };
    with("exp", json!(1_000));
    with("nbf", json!(4_000_000_000u64));
    with("aud", json!("other"));
    with("sub", json!(42));
    with("sub", json!(" admin"));
    with("realm_access", json!({"roles": ["orders-admin", " admin"]}));
    with("iss", json!("https://dev.ward.local"));
    with("tenant", json!(["acme"]));
    sets.push(json!({}));
    sets
}

fn key(repo: &Path, path: &str, alg: Alg) -> SigningKey {
    SigningKey::from_bytes(&fs::read(repo.join(path)).expect("reads key"), alg).expect("key")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("reads dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
    out
}

fn req(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    principal: Option<&str>,
    context: &[(&str, &str)],
) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: principal.map(|p| Peer {
                principal: p.to_string(),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "17".into(),
                    method: method.into(),
                    host: host.into(),
                    path: path.into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    }
}

#[derive(Default)]
struct Seeds(Vec<(&'static str, Vec<u8>)>);

impl Seeds {
    fn add(&mut self, target: &'static str, bytes: Vec<u8>) {
        self.0.push((target, bytes));
    }

    fn write(&self, corpus: &Path) -> usize {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (target, bytes) in &self.0 {
            let dir = corpus.join(target);
            fs::create_dir_all(&dir).expect("creates corpus dir");
            let n = counts.entry(target).or_default();
            fs::write(dir.join(format!("seed-{n:03}")), bytes).expect("writes seed");
            *n += 1;
        }
        self.0.len()
    }
}
