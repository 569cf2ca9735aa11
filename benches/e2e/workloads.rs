//! The e2e benchmark's workloads: ward's config, the keys and tokens, and each request
//! encoded once with the answer ward must give it.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use loadgen::client::encode;
use loadgen::load::Requests;
use loadgen::verdict::Expect;
use ward::authn::jwt::Alg;

use crate::Opts;
use crate::common::{self, AUD, ISS};

pub(crate) struct Workload {
    pub(crate) key: &'static str,
    pub(crate) title: &'static str,
    /// Each request, encoded, with ward's expected answer; request `i` uses entry
    /// `i % len`.
    pub(crate) creds: Requests,
    /// Every request carries a token not sent before: runs consume the list in order
    /// (ward's cursor persists across repetitions) and stop when their share is used.
    pub(crate) distinct: bool,
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
signing:
  issuer: https://ward.bench
  keys: [ {{ kid: bench, alg: ES256, key_file: signing.pem }} ]
routes:
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
  - name: minting
    match: {{ path: "/mint/orders/**", methods: [GET, POST], hosts: ["api.example.com"] }}
    providers: [idp]
    require:
      all:
        - roles_any: [orders-reader, admin]
        - claim: {{ name: tenant, equals: acme }}
    mint: {{ audience: payments-api, ttl: 60s, header: x-auth-token, claims: [sub, roles, tenant] }}
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

/// Keys, config and tokens, written to a temporary directory (which the servers run
/// in), and the workloads `opts` asks for.
pub(crate) fn prepare(opts: &Opts) -> Result<(tempfile::TempDir, Vec<Arc<Workload>>), String> {
    let rs = common::key(Alg::RS256);
    let es = common::key(Alg::ES256);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("jwks.json"),
        common::jwks_of(&[&rs, &es]).to_string(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("ward.yaml"), ward_yaml()).map_err(|e| e.to_string())?;
    // ward's own signing key, for the minting route.
    let signing = testkeys::Key::generate(jsonwebtoken::Algorithm::ES256);
    std::fs::write(dir.path().join("signing.pem"), signing.key_file())
        .map_err(|e| e.to_string())?;

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
    // Distinct identities on the minting route: every check signs a token.
    let mint_tokens = if want("g") {
        common::mint_many(&rs, ISS, AUD, 4_000_000, opts.tokens)
    } else {
        Vec::new()
    };
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
    let minting = common::envoy_request("/mint/orders/42/items?expand=lines");
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
        Workload {
            key: "f",
            title: "(f) one RS256 token on a minting route, mint cache hit",
            creds: encoded(&minting, [(bearer(&one), Expect::Allow)]),
            distinct: false,
        },
        Workload {
            key: "g",
            title: "(g) distinct RS256 tokens on a minting route, every check signs",
            creds: encoded(
                &minting,
                mint_tokens.iter().map(|t| (bearer(t), Expect::Allow)),
            ),
            distinct: true,
        },
    ]
    .into_iter()
    .filter(|w| opts.only.is_empty() || opts.only.iter().any(|k| k == w.key))
    .map(Arc::new)
    .collect();
    Ok((dir, workloads))
}
